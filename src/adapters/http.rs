//! Calls to providers' HTTP APIs with retries: 429, 5xx, timeouts and dropped connections are retried
//! with exponential backoff and jitter, honouring Retry-After; any other answer is returned as it is.

use std::time::Duration;

use rand::Rng;
use reqwest::{RequestBuilder, Response, StatusCode};

use super::url_policy::{PlainHttp, PublicOnly};
use crate::error::{Error, Result, Transience};

/// How hard to try before giving the failure back to Secrets Manager, which retries the step itself.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// Whether repeating the request is harmless. A request that creates something (minting a key) is
    /// repeated only when the server surely did not act on it: a 429, or a connection never made.
    /// After a 5xx or a lost answer the step fails instead, and the retried step finds what the first
    /// request may have created by its name.
    pub idempotent: bool,
}

impl RetryPolicy {
    /// The same policy for a request that creates something.
    pub fn creating(self) -> Self {
        RetryPolicy {
            idempotent: false,
            ..self
        }
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 4,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
            idempotent: true,
        }
    }
}

/// `base` followed by `segments`, each percent-encoded as one path segment (`/`, `?`, `#` and `%`
/// included), so that an id can never add a segment, climb out with `..`, or start a query. An empty,
/// `.` or `..` segment is refused outright: no id has that form.
pub fn endpoint(base: &str, segments: &[&str]) -> Result<reqwest::Url> {
    let bad =
        |what: String| Error::external("http", "build a request URL", what, Transience::Final);
    let mut url = reqwest::Url::parse(base)
        .map_err(|err| bad(format!("the base URL is malformed ({err})")))?;
    if let Some(segment) = segments
        .iter()
        .find(|s| s.is_empty() || **s == "." || **s == "..")
    {
        return Err(bad(format!("a path segment may not be {segment:?}")));
    }
    url.path_segments_mut()
        .map_err(|()| bad("the base URL cannot take a path".to_owned()))?
        .pop_if_empty()
        .extend(segments);
    Ok(url)
}

/// How long a connection may take to open, whatever the request's own timeout.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A client with timeouts suited to a Lambda invocation; built once per process. It follows no
/// redirect: every request keyrot makes carries a key or an admin credential (`x-api-key` among them,
/// which reqwest would keep on a redirect to another host), and no provider API keyrot calls redirects.
pub fn client(timeout: Duration) -> Result<reqwest::Client> {
    builder(timeout)
        .build()
        .map_err(|err| Error::external("http", "build client", err, Transience::Final))
}

/// The client that calls a secret's `generic.validate_url`: the same, resolving names to public
/// addresses only (see [`url_policy`](super::url_policy)).
pub fn validate_client(http: PlainHttp, timeout: Duration) -> Result<reqwest::Client> {
    builder(timeout)
        .dns_resolver(std::sync::Arc::new(PublicOnly { http }))
        .build()
        .map_err(|err| Error::external("http", "build client", err, Transience::Final))
}

fn builder(timeout: Duration) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT.min(timeout))
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("keyrot/", env!("CARGO_PKG_VERSION")))
}

/// Sends the request `build` makes, retrying transient failures. `operation` names the call in errors;
/// it must not contain a key.
pub async fn send(
    policy: RetryPolicy,
    system: &'static str,
    operation: &str,
    build: impl Fn() -> RequestBuilder,
) -> Result<Response> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let last = attempt >= policy.attempts;
        let (detail, retry_after, unprocessed) = match build().send().await {
            Ok(response) if is_transient(response.status()) => {
                let retry_after = retry_after(&response, policy.max_delay);
                let unprocessed = response.status() == StatusCode::TOO_MANY_REQUESTS;
                (
                    format!("HTTP {}", response.status().as_u16()),
                    retry_after,
                    unprocessed,
                )
            }
            Ok(response) => return Ok(response),
            // A request that cannot even be built (a malformed URL) fails the same way every time.
            Err(err) if err.is_builder() => {
                return Err(Error::external(
                    system,
                    operation,
                    "the request could not be built (is the URL well formed?)",
                    Transience::Final,
                ));
            }
            Err(err) => (describe(&err), None, err.is_connect()),
        };
        if !(policy.idempotent || unprocessed) {
            return Err(Error::external(
                system,
                operation,
                format!("{detail} (not repeated here: the request creates something)"),
                Transience::Retryable,
            ));
        }
        if last {
            return Err(Error::external(
                system,
                operation,
                format!("{detail} after {attempt} attempts"),
                Transience::Retryable,
            ));
        }
        let delay = retry_after
            .unwrap_or_else(|| backoff(policy, attempt))
            .min(policy.max_delay);
        tracing::warn!(system, operation, attempt, %detail, delay_ms = delay.as_millis() as u64, "retrying");
        tokio::time::sleep(delay).await;
    }
}

fn is_transient(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
}

fn retry_after(response: &Response, cap: Duration) -> Option<Duration> {
    let header = response.headers().get(reqwest::header::RETRY_AFTER)?;
    retry_after_seconds(header.to_str().ok()?, cap)
}

/// A Retry-After in seconds, bounded by `cap` before it becomes a Duration: a server (or whoever sits
/// in front of it) may answer anything, and `Duration::from_secs_f64` panics on what it cannot hold.
/// An HTTP date, a negative or a non-finite number is ignored (the backoff applies).
fn retry_after_seconds(text: &str, cap: Duration) -> Option<Duration> {
    let seconds: f64 = text.trim().parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0)
        .then(|| Duration::from_secs_f64(seconds.min(cap.as_secs_f64())))
}

/// What a refused call means for the managed secret: which credential was refused and, for a 404,
/// which setting names something that does not exist.
pub struct Refusal<'a> {
    pub secret: &'a str,
    /// The field that names the secret holding the credential, such as `openai.admin_key_secret`.
    pub credential_field: &'a str,
    pub credential_secret: &'a str,
    /// What a valid credential looks like, for the fix.
    pub credential_kind: &'a str,
    /// For a 404: the field at fault and its fix; `None` when a 404 is simply unexpected.
    pub not_found: Option<(&'a str, &'a str)>,
}

/// Reads a JSON answer; refusals become configuration errors that say what to fix, and any other
/// status is unexpected (and final: retrying does not change it).
pub async fn read_json<T: serde::de::DeserializeOwned>(
    system: &'static str,
    operation: &str,
    response: Response,
    refusal: Refusal<'_>,
) -> Result<T> {
    let status = response.status();
    if status.is_success() {
        return response.json::<T>().await.map_err(|err| {
            Error::external(
                system,
                operation,
                format!("unreadable answer: {err}"),
                Transience::Retryable,
            )
        });
    }
    match (status, refusal.not_found) {
        (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN, _) => Err(Error::config(
            refusal.secret,
            refusal.credential_field,
            format!(
                "the credential in {} was refused (HTTP {}) by {system} {operation}",
                refusal.credential_secret,
                status.as_u16()
            ),
            format!(
                "put a valid {} in {}",
                refusal.credential_kind, refusal.credential_secret
            ),
        )),
        (StatusCode::NOT_FOUND, Some((field, fix))) => Err(Error::config(
            refusal.secret,
            field,
            format!("{system} answered 404 to {operation}"),
            fix,
        )),
        _ => Err(unexpected(system, operation, status)),
    }
}

/// An answer no call of keyrot's expects.
pub fn unexpected(system: &'static str, operation: &str, status: StatusCode) -> Error {
    Error::external(
        system,
        operation,
        format!("unexpected HTTP {}", status.as_u16()),
        Transience::Final,
    )
}

/// Full jitter: a random delay up to base * 2^(attempt-1), so that retries of many callers spread out.
fn backoff(policy: RetryPolicy, attempt: u32) -> Duration {
    let ceiling = policy
        .base_delay
        .saturating_mul(1 << (attempt - 1).min(16))
        .min(policy.max_delay);
    let millis = ceiling.as_millis().max(1) as u64;
    Duration::from_millis(rand::rng().random_range(millis / 2..=millis))
}

/// A transport error in words, without the URL (which may carry query parameters worth keeping private).
fn describe(err: &reqwest::Error) -> String {
    if err.is_timeout() {
        "timed out".to_owned()
    } else if err.is_connect() {
        "could not connect".to_owned()
    } else {
        "the connection failed".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_stays_one_path_segment() {
        let url = endpoint(
            "https://api.example.com/v1",
            &["organization", "projects", "proj_1"],
        )
        .expect("url");
        assert_eq!(
            url.as_str(),
            "https://api.example.com/v1/organization/projects/proj_1"
        );
        let url = endpoint(
            "http://127.0.0.1:9/v1/",
            &["projects", "../admin_api_keys/k?x#y%2e"],
        )
        .expect("url");
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:9/v1/projects/..%2Fadmin_api_keys%2Fk%3Fx%23y%252e"
        );
        for bad in ["", ".", ".."] {
            assert!(
                endpoint("https://api.example.com", &["a", bad]).is_err(),
                "{bad:?}"
            );
        }
        assert!(endpoint("not a url", &["a"]).is_err());
    }

    #[test]
    fn retry_after_is_bounded_before_it_becomes_a_duration() {
        let cap = Duration::from_secs(5);
        assert_eq!(retry_after_seconds("2", cap), Some(Duration::from_secs(2)));
        assert_eq!(
            retry_after_seconds(" 0.5 ", cap),
            Some(Duration::from_millis(500))
        );
        for huge in ["1e20", "18446744073709551616", "1e308"] {
            assert_eq!(retry_after_seconds(huge, cap), Some(cap), "{huge}");
        }
        for ignored in ["-1", "inf", "NaN", "Wed, 21 Oct 2026 07:28:00 GMT", ""] {
            assert_eq!(retry_after_seconds(ignored, cap), None, "{ignored}");
        }
    }

    #[test]
    fn backoff_grows_and_stays_under_the_cap() {
        let policy = RetryPolicy::default();
        for attempt in 1..10 {
            let delay = backoff(policy, attempt);
            assert!(delay <= policy.max_delay, "{delay:?}");
            assert!(delay >= Duration::from_millis(100), "{delay:?}");
        }
    }
}
