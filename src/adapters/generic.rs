//! The `generic` provider: random keys drawn in the process from the operating system's CSPRNG
//! (`adapters::random`), validated (when the secret names a `validate_url`) by calling that URL with the
//! key as a bearer token.

use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};

use crate::adapters::http::{self, RetryPolicy};
use crate::adapters::random;
use crate::adapters::url_policy::{PlainHttp, check_validate_url};
use crate::domain::NewKey;
use crate::domain::keys::redacted;
use crate::domain::secret::GenericSettings;
use crate::error::{Error, Result};

#[derive(Clone)]
pub struct GenericIssuer {
    /// Built with [`http::validate_client`]: public addresses only, no redirects.
    http: reqwest::Client,
    plain_http: PlainHttp,
    retry: RetryPolicy,
}

impl GenericIssuer {
    pub fn new(plain_http: PlainHttp, timeout: std::time::Duration) -> Result<Self> {
        Ok(GenericIssuer {
            http: http::validate_client(plain_http, timeout)?,
            plain_http,
            retry: RetryPolicy::default(),
        })
    }

    pub async fn mint(&self, _secret_name: &str, settings: &GenericSettings) -> Result<NewKey> {
        let random = random::alphanumeric(settings.length as usize)?;
        Ok(NewKey {
            api_key: SecretString::from(format!("{}{}", settings.prefix, random.expose_secret())),
            key_id: None,
            api_key_id: None,
            leftovers: Vec::new(),
            password: None,
        })
    }

    pub async fn validate(
        &self,
        secret_name: &str,
        settings: &GenericSettings,
        key: &SecretString,
    ) -> Result<()> {
        let Some(url) = &settings.validate_url else {
            tracing::info!(
                secret = secret_name,
                "no generic.validate_url: the key cannot be checked remotely"
            );
            return Ok(());
        };
        // The URL is the secret writer's: checked (https, a public address) before the key goes there.
        let url = check_validate_url(secret_name, url, self.plain_http).await?;
        let response = http::send(self.retry, "generic provider", "validate key", || {
            self.http.get(url.clone()).bearer_auth(key.expose_secret())
        })
        .await?;
        match response.status() {
            status if status.is_success() => Ok(()),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(Error::KeyRejected {
                secret: secret_name.to_owned(),
                provider: "generic".to_owned(),
                hint: redacted(key),
                detail: format!(
                    "generic.validate_url answered HTTP {}",
                    response.status().as_u16()
                ),
            }),
            status => Err(Error::config(
                secret_name,
                "generic.validate_url",
                format!(
                    "answered HTTP {} instead of 2xx or 401/403",
                    status.as_u16()
                ),
                "point validate_url at an endpoint that answers 2xx for a valid bearer key",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// A one-answer HTTP server on loopback; counts the requests that reach it and keeps the last.
    struct Server {
        url: String,
        hits: Arc<AtomicUsize>,
        seen: Arc<std::sync::Mutex<String>>,
    }

    async fn server(answer: String) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let hits = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(std::sync::Mutex::new(String::new()));
        let (counter, last) = (hits.clone(), seen.clone());
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                let mut buf = vec![0; 4096];
                let n = socket.read(&mut buf).await.unwrap_or(0);
                if let Ok(mut last) = last.lock() {
                    *last = String::from_utf8_lossy(&buf[..n]).into_owned();
                }
                let _ = socket.write_all(answer.as_bytes()).await;
            }
        });
        Server { url, hits, seen }
    }

    fn issuer(plain_http: PlainHttp) -> GenericIssuer {
        GenericIssuer::new(plain_http, std::time::Duration::from_secs(20)).expect("issuer")
    }

    #[tokio::test]
    async fn a_minted_key_is_the_prefix_and_the_length_asked_for() {
        let settings = GenericSettings {
            length: 32,
            prefix: "gk_".into(),
            validate_url: None,
        };
        let key = issuer(PlainHttp::Never)
            .mint("it/generic", &settings)
            .await
            .expect("minted");
        let key = key.api_key.expose_secret();
        assert!(key.starts_with("gk_") && key.len() == 35, "{}", key.len());
    }

    fn settings(url: &str) -> GenericSettings {
        GenericSettings {
            length: 48,
            prefix: String::new(),
            validate_url: Some(format!("{url}/me")),
        }
    }

    const OK: &str = "HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";

    #[tokio::test]
    async fn plain_http_to_loopback_is_refused_unless_the_operator_allows_it() {
        let service = server(OK.to_owned()).await;
        let key = SecretString::from("gk-validatevalidatevalidate0001".to_owned());
        let err = issuer(PlainHttp::Never)
            .validate("prod/x", &settings(&service.url), &key)
            .await
            .expect_err("refused");
        assert!(err.to_string().contains("generic.validate_url"), "{err}");
        assert!(!err.is_retryable(), "{err}");
        assert_eq!(service.hits.load(Ordering::SeqCst), 0, "nothing was sent");

        issuer(PlainHttp::LoopbackOnly)
            .validate("prod/x", &settings(&service.url), &key)
            .await
            .expect("valid");
        assert_eq!(service.hits.load(Ordering::SeqCst), 1);
        let seen = service.seen.lock().expect("lock").clone();
        assert!(seen.contains("Bearer gk-validate"), "{seen}");
    }

    #[tokio::test]
    async fn a_redirect_is_never_followed_with_the_key() {
        let elsewhere = server(OK.to_owned()).await;
        let redirect = server(format!(
            "HTTP/1.1 302 Found\r\nlocation: {}/steal\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            elsewhere.url
        ))
        .await;
        let key = SecretString::from("gk-validatevalidatevalidate0002".to_owned());
        let err = issuer(PlainHttp::LoopbackOnly)
            .validate("prod/x", &settings(&redirect.url), &key)
            .await
            .expect_err("a redirect is not an answer");
        assert!(err.to_string().contains("302"), "{err}");
        assert_eq!(redirect.hits.load(Ordering::SeqCst), 1);
        assert_eq!(
            elsewhere.hits.load(Ordering::SeqCst),
            0,
            "the key never went to the redirect's target"
        );
    }
}
