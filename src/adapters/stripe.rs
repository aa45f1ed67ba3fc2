//! Stripe: no API creates or deletes secret keys, so a person creates one in the Dashboard and stages
//! it, and revokes the old one there when keyrot asks (a revocation task). A key is validated with the
//! read-only `GET /v1/balance`; the account a key belongs to is `GET /v1/account`'s `id`.

use reqwest::{RequestBuilder, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::adapters::http::{self, RetryPolicy};
use crate::domain::audit::{KeyHandle, RevocationStatus};
use crate::domain::keys::redacted;
use crate::domain::policy::KEYROT_STAGED;
use crate::domain::secret::StripeSettings;
use crate::error::{Error, Result};

const SYSTEM: &str = "stripe";

#[derive(Clone)]
pub struct StripeIssuer {
    http: reqwest::Client,
    /// The API root without the version (the paths carry `/v1`).
    base_url: String,
    retry: RetryPolicy,
}

#[derive(Deserialize)]
struct Account {
    id: String,
}

/// Whether a key works on live or test data: a key of the other mode is another key set entirely.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Live,
    Test,
}

impl Mode {
    /// `sk_live_`, `rk_live_` (restricted) or the `_test_` pair; `None` for anything else.
    fn of(key: &SecretString) -> Option<Mode> {
        let key = key.expose_secret();
        let rest = key
            .strip_prefix("sk_")
            .or_else(|| key.strip_prefix("rk_"))?;
        if rest.starts_with("live_") {
            Some(Mode::Live)
        } else if rest.starts_with("test_") {
            Some(Mode::Test)
        } else {
            None
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Mode::Live => "live",
            Mode::Test => "test",
        }
    }
}

impl StripeIssuer {
    pub fn new(http: reqwest::Client, base_url: impl Into<String>) -> Self {
        StripeIssuer {
            http,
            base_url: base_url.into(),
            retry: RetryPolicy::default(),
        }
    }

    fn with_key(&self, request: RequestBuilder, key: &SecretString) -> RequestBuilder {
        request.bearer_auth(key.expose_secret())
    }

    /// `GET /v1/balance` answers: the key works. A restricted key without Balance read access is
    /// refused with 403, which says nothing of whether the key is alive, so it is a setting to fix.
    pub async fn validate(&self, secret_name: &str, key: &SecretString) -> Result<()> {
        let operation = "GET /v1/balance";
        let url = http::endpoint(&self.base_url, &["v1", "balance"])?;
        let response = http::send(self.retry, SYSTEM, operation, || {
            self.with_key(self.http.get(url.clone()), key)
        })
        .await?;
        match response.status() {
            status if status.is_success() => Ok(()),
            StatusCode::UNAUTHORIZED => Err(rejected(secret_name, key, operation, 401)),
            StatusCode::FORBIDDEN => Err(Error::config(
                secret_name,
                "api_key",
                format!(
                    "the restricted key {} may not read the balance, which is how keyrot checks a Stripe key",
                    redacted(key)
                ),
                "give the restricted key Balance: Read in the Dashboard, or use a secret key",
            )),
            status => Err(http::unexpected(SYSTEM, operation, status)),
        }
    }

    /// The staged key must be of the secret's account (`stripe.account`, or the current key's) and
    /// of the current key's mode.
    pub async fn compare_staged(
        &self,
        secret_name: &str,
        settings: &StripeSettings,
        current: &SecretString,
        staged: &SecretString,
    ) -> Result<Vec<String>> {
        let (was, is) = (Mode::of(current), Mode::of(staged));
        if let (Some(was), Some(is)) = (was, is)
            && was != is
        {
            return Err(wrong_account(
                secret_name,
                format!(
                    "is a {} mode key, and the current key is {}",
                    is.as_str(),
                    was.as_str()
                ),
                format!("create a {} mode key", was.as_str()),
            ));
        }
        let expected = match &settings.account {
            Some(account) => Some(account.clone()),
            None => self.account_of(secret_name, current).await.ok().flatten(),
        };
        let found = self.account_of(secret_name, staged).await?;
        match (expected, found) {
            (Some(expected), Some(found)) if expected != found => Err(wrong_account(
                secret_name,
                format!("belongs to Stripe account {found}, and the secret's account is {expected}"),
                format!("sign in to account {expected} in the Dashboard and create the key there"),
            )),
            (_, None) => Ok(vec![
                "Stripe did not say which account the staged key belongs to (a restricted key without Account read access), so that was not compared.".to_owned(),
            ]),
            (None, Some(_)) => Ok(vec![
                "The secret records no stripe.account and the current key did not name one, so the staged key's account was not compared.".to_owned(),
            ]),
            _ => Ok(Vec::new()),
        }
    }

    /// The account `key` belongs to; `None` when the key may not read it (a restricted key).
    pub async fn account_of(
        &self,
        secret_name: &str,
        key: &SecretString,
    ) -> Result<Option<String>> {
        let operation = "GET /v1/account";
        let url = http::endpoint(&self.base_url, &["v1", "account"])?;
        let response = http::send(self.retry, SYSTEM, operation, || {
            self.with_key(self.http.get(url.clone()), key)
        })
        .await?;
        match response.status() {
            status if status.is_success() => {
                let account: Account = response.json().await.map_err(|err| {
                    Error::external(SYSTEM, operation, err, crate::error::Transience::Final)
                })?;
                Ok(Some(account.id))
            }
            StatusCode::UNAUTHORIZED => Err(rejected(secret_name, key, operation, 401)),
            StatusCode::FORBIDDEN => Ok(None),
            status => Err(http::unexpected(SYSTEM, operation, status)),
        }
    }

    /// Stripe has no API that deletes a secret key: a person does, and records it.
    pub async fn revoke(&self, _revocation: &KeyHandle) -> Result<RevocationStatus> {
        Ok(RevocationStatus::Manual)
    }
}

fn rejected(secret_name: &str, key: &SecretString, operation: &str, status: u16) -> Error {
    Error::KeyRejected {
        secret: secret_name.to_owned(),
        provider: SYSTEM.to_owned(),
        hint: redacted(key),
        detail: format!("{operation} answered HTTP {status}"),
    }
}

fn wrong_account(secret_name: &str, problem: String, fix: String) -> Error {
    Error::config(
        secret_name,
        KEYROT_STAGED,
        format!("the staged key {problem}"),
        format!("{fix}, then stage it with `keyrot stage {secret_name}`"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_come_from_the_key_prefix() {
        let mode = |key: &str| Mode::of(&SecretString::from(key.to_owned()));
        assert_eq!(mode("sk_live_abc"), Some(Mode::Live));
        assert_eq!(mode("rk_live_abc"), Some(Mode::Live));
        assert_eq!(mode("sk_test_abc"), Some(Mode::Test));
        assert_eq!(mode("rk_test_abc"), Some(Mode::Test));
        assert_eq!(mode("pk_live_abc"), None);
        assert_eq!(mode("whsec_abc"), None);
    }
}
