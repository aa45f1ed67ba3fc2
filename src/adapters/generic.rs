//! The `generic` provider: random keys from Secrets Manager's GetRandomPassword, validated (when the
//! secret names a `validate_url`) by calling that URL with the key as a bearer token.

use aws_sdk_secretsmanager::Client;
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};

use crate::adapters::aws::sdk_error;
use crate::adapters::http::{self, RetryPolicy};
use crate::domain::NewKey;
use crate::domain::keys::redacted;
use crate::domain::secret::GenericSettings;
use crate::error::{Error, Result, Transience};

#[derive(Clone)]
pub struct GenericIssuer {
    secrets_manager: Client,
    http: reqwest::Client,
    retry: RetryPolicy,
}

impl GenericIssuer {
    pub fn new(secrets_manager: Client, http: reqwest::Client) -> Self {
        GenericIssuer {
            secrets_manager,
            http,
            retry: RetryPolicy::default(),
        }
    }

    pub async fn mint(&self, secret_name: &str, settings: &GenericSettings) -> Result<NewKey> {
        let out = self
            .secrets_manager
            .get_random_password()
            .password_length(i64::from(settings.length))
            // Keys travel in headers and env vars, where punctuation needs quoting.
            .exclude_punctuation(true)
            .send()
            .await
            .map_err(|err| sdk_error("secretsmanager", "GetRandomPassword", &err))?;
        let random = out.random_password().ok_or_else(|| {
            Error::external(
                "secretsmanager",
                format!("GetRandomPassword for {secret_name}"),
                "the answer held no password",
                Transience::Retryable,
            )
        })?;
        Ok(NewKey {
            api_key: SecretString::from(format!("{}{random}", settings.prefix)),
            key_id: None,
            api_key_id: None,
            leftovers: Vec::new(),
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
        let response = http::send(self.retry, "generic provider", "validate key", || {
            self.http.get(url).bearer_auth(key.expose_secret())
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
