//! Where keyrot may send a key. Two sources name URLs: the operator (the `KEYROT_*_BASE_URL`
//! overrides, for local stand-ins) and a secret's writer (`generic.validate_url`). Neither may point a
//! credential at the Lambda runtime API, the instance metadata service or a VPC-internal service.
//!
//! - A base URL override is https, or plain http to a loopback host (the local stand-ins).
//! - A validate URL is https to a public address. Plain http to a loopback host is allowed only when the
//!   operator set `KEYROT_ALLOW_HTTP_VALIDATE_URL=1` (local tests); the secret can never allow it.
//!   Its host is resolved before the request, and the client that calls it resolves through
//!   [`PublicOnly`], so a name that resolves to a private address (now, or by the time of the connect)
//!   is refused too.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::error::{Error, Result};

/// Whether a request to `ip` stays on the public internet: not loopback, private, link-local
/// (169.254.0.0/16, where instance metadata lives), shared (100.64.0.0/10), unspecified, broadcast,
/// multicast or documentation space, in IPv4 or IPv6 (an IPv4-mapped IPv6 address counts as its IPv4).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    let shared = a == 100 && (64..128).contains(&b);
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || shared
        || a == 0)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    let unique_local = first & 0xfe00 == 0xfc00;
    let link_local = first & 0xffc0 == 0xfe80;
    !(ip.is_loopback() || ip.is_unspecified() || ip.is_multicast() || unique_local || link_local)
}

/// The URL's host as an IP address, when it is one (`[::1]` included).
fn ip_host(url: &Url) -> Option<IpAddr> {
    let host = url.host_str()?;
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

fn is_loopback_host(url: &Url) -> bool {
    match ip_host(url) {
        Some(ip) => ip.is_loopback(),
        None => url
            .host_str()
            .is_some_and(|name| name.eq_ignore_ascii_case("localhost")),
    }
}

/// Checks an operator's base URL override: https, or plain http to a loopback host.
pub fn check_base_url(variable: &str, value: &str) -> Result<()> {
    let bad = |problem: String| {
        Error::config(
            "(configuration)",
            variable,
            problem,
            "use https://..., or http://127.0.0.1:PORT for a local stand-in",
        )
    };
    let url = Url::parse(value).map_err(|err| bad(format!("is not a URL ({err})")))?;
    match url.scheme() {
        "https" if url.host().is_some() => Ok(()),
        "http" if is_loopback_host(&url) => Ok(()),
        "http" => Err(bad(
            "uses plain http to a host that is not loopback: credentials would travel in clear"
                .into(),
        )),
        _ => Err(bad("is not an https URL".into())),
    }
}

/// What plain http a validate URL may use: never (production), or to loopback hosts only (local tests,
/// `KEYROT_ALLOW_HTTP_VALIDATE_URL=1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PlainHttp {
    #[default]
    Never,
    LoopbackOnly,
}

/// Checks a secret's `generic.validate_url` before anything is sent to it, resolving its host.
pub async fn check_validate_url(secret: &str, value: &str, http: PlainHttp) -> Result<Url> {
    let field = "generic.validate_url";
    let fix = "point validate_url at the service's public https endpoint, such as https://api.example.com/v1/me";
    let bad = |problem: &str| Error::config(secret, field, problem, fix);
    let url = Url::parse(value).map_err(|_| bad("is not a URL"))?;
    let loopback_allowed = http == PlainHttp::LoopbackOnly && is_loopback_host(&url);
    match url.scheme() {
        "https" => {}
        "http" if loopback_allowed => return Ok(url),
        "http" => return Err(bad("uses plain http: the key would travel in clear")),
        _ => return Err(bad("is not an https URL")),
    }
    if loopback_allowed {
        return Ok(url);
    }
    let host = url.host_str().ok_or_else(|| bad("names no host"))?;
    let port = url.port_or_known_default().unwrap_or(443);
    let addrs: Vec<SocketAddr> = match ip_host(&url) {
        Some(ip) => vec![SocketAddr::new(ip, port)],
        None => tokio::net::lookup_host((host, port))
            .await
            .map_err(|_| bad("names a host that does not resolve"))?
            .collect(),
    };
    if addrs.is_empty() || addrs.iter().any(|addr| !is_public(addr.ip())) {
        return Err(bad(
            "names a loopback, private, link-local or otherwise internal address: keyrot sends keys to public services only",
        ));
    }
    Ok(url)
}

/// A resolver that answers only with public addresses: what the validate client connects through, so
/// that a name which resolved to a public address at the check cannot resolve to an internal one at the
/// connect.
#[derive(Debug, Clone, Copy, Default)]
pub struct PublicOnly {
    pub http: PlainHttp,
}

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let loopback_allowed = self.http == PlainHttp::LoopbackOnly;
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            let allowed = |addr: &SocketAddr| {
                is_public(addr.ip()) || (loopback_allowed && addr.ip().is_loopback())
            };
            if addrs.is_empty() || !addrs.iter().all(allowed) {
                return Err("the host resolves to an internal address".into());
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_addresses_are_public() {
        for internal in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
        ] {
            let ip: IpAddr = internal.parse().expect("ip");
            assert!(!is_public(ip), "{internal}");
        }
        for public in ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111"] {
            let ip: IpAddr = public.parse().expect("ip");
            assert!(is_public(ip), "{public}");
        }
    }

    #[test]
    fn base_urls_are_https_or_plain_http_to_loopback() {
        for ok in [
            "https://api.openai.com/v1",
            "http://127.0.0.1:4010/v1",
            "http://localhost:9",
            "http://[::1]:9",
        ] {
            assert!(check_base_url("KEYROT_OPENAI_BASE_URL", ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://api.openai.com/v1",
            "http://10.0.0.5",
            "ftp://x",
            "api.openai.com",
        ] {
            let err = check_base_url("KEYROT_OPENAI_BASE_URL", bad).expect_err(bad);
            assert!(err.to_string().contains("KEYROT_OPENAI_BASE_URL"), "{err}");
        }
    }

    #[tokio::test]
    async fn a_validate_url_must_be_https_to_a_public_address() {
        for bad in [
            "http://127.0.0.1:9/me",
            "http://api.example.com/me",
            "https://127.0.0.1/me",
            "https://localhost/me",
            "https://169.254.169.254/latest/meta-data",
            "https://10.0.0.1/",
            "https://[::1]/",
            "https://[::ffff:7f00:1]/",
            "https://user@127.0.0.1/",
            "file:///etc/passwd",
        ] {
            let err = check_validate_url("prod/x", bad, PlainHttp::Never)
                .await
                .expect_err(bad)
                .to_string();
            assert!(
                err.contains("prod/x") && err.contains("generic.validate_url"),
                "{err}"
            );
        }
        assert!(
            check_validate_url("prod/x", "https://93.184.216.34/me", PlainHttp::Never)
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn plain_http_to_loopback_only_when_the_operator_allows_it() {
        let local = "http://127.0.0.1:9/me";
        assert!(
            check_validate_url("s", local, PlainHttp::Never)
                .await
                .is_err()
        );
        assert!(
            check_validate_url("s", local, PlainHttp::LoopbackOnly)
                .await
                .is_ok()
        );
        assert!(
            check_validate_url("s", "http://10.0.0.1/me", PlainHttp::LoopbackOnly)
                .await
                .is_err()
        );
    }
}
