//! The Stripe side: accounts with secret keys people create and delete in the Dashboard (no API
//! creates or deletes one), `GET /v1/balance` as the "does this key work" probe, and `GET /v1/account`
//! naming the account a key belongs to. Balance answers follow `balance` in Stripe's spec (API version
//! 2023-08-16); errors are Stripe's `{"error": {"message", "type"}}`.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::get;
use serde_json::{Value, json};

use crate::reply::{ApiError, Reply};
use crate::state::{Shared, random_alphanumeric};

pub(crate) struct Stripe {
    /// The first account is the one tests use unless they name another.
    accounts: Vec<Account>,
}

struct Account {
    id: String,
    keys: Vec<Key>,
}

struct Key {
    value: String,
    live: bool,
    deleted: bool,
}

impl Stripe {
    pub(crate) fn new() -> Self {
        Self {
            accounts: vec![Account::new(format!("acct_{}", random_alphanumeric(16)))],
        }
    }

    pub(crate) fn default_account(&self) -> &str {
        self.accounts.first().map_or("", |a| a.id.as_str())
    }

    /// A secret key of `account` (created when unknown), as a person creates it in the Dashboard.
    pub(crate) fn create_key(&mut self, account: &str, live: bool) -> String {
        let value = format!(
            "sk_{}_51{}",
            if live { "live" } else { "test" },
            random_alphanumeric(96)
        );
        if !self.accounts.iter().any(|a| a.id == account) {
            self.accounts.push(Account::new(account.to_owned()));
        }
        if let Some(found) = self.accounts.iter_mut().find(|a| a.id == account) {
            found.keys.push(Key {
                value: value.clone(),
                live,
                deleted: false,
            });
        }
        value
    }

    /// What a person does in the Dashboard; false when no such key is alive.
    pub(crate) fn delete_key(&mut self, value: &str) -> bool {
        let key = self
            .accounts
            .iter_mut()
            .flat_map(|a| a.keys.iter_mut())
            .find(|k| k.value == value && !k.deleted);
        key.map(|k| k.deleted = true).is_some()
    }

    pub(crate) fn key_works(&self, value: &str) -> bool {
        self.owner(value).is_some()
    }

    /// `/_sim/state`: accounts and how many keys each holds alive, never key values.
    pub(crate) fn snapshot(&self) -> Value {
        let accounts: Vec<Value> = self
            .accounts
            .iter()
            .map(|a| json!({"id": a.id, "live_keys": a.keys.iter().filter(|k| !k.deleted).count()}))
            .collect();
        json!({ "accounts": accounts })
    }

    fn owner(&self, value: &str) -> Option<(&Account, &Key)> {
        self.accounts.iter().find_map(|account| {
            let key = account
                .keys
                .iter()
                .find(|k| k.value == value && !k.deleted)?;
            Some((account, key))
        })
    }

    fn authorize(&self, headers: &HeaderMap) -> Result<(&Account, &Key), ApiError> {
        let Some(value) = bearer(headers) else {
            return Err(error(
                StatusCode::UNAUTHORIZED,
                "You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').",
            ));
        };
        self.owner(value).ok_or_else(|| {
            error(
                StatusCode::UNAUTHORIZED,
                &format!("Invalid API Key provided: {}", redacted(value)),
            )
        })
    }
}

impl Account {
    fn new(id: String) -> Self {
        Self {
            id,
            keys: Vec::new(),
        }
    }
}

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/v1/balance", get(balance))
        .route("/v1/account", get(account))
}

async fn balance(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Reply {
    let stripe = shared.stripe();
    let (_, key) = stripe.authorize(&headers)?;
    let amount = |amount: i64| json!({"amount": amount, "currency": "usd", "source_types": {"card": amount}});
    Ok(Json(json!({
        "object": "balance",
        "available": [amount(125_000)],
        "pending": [amount(4_200)],
        "livemode": key.live,
    })))
}

async fn account(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Reply {
    let stripe = shared.stripe();
    let (account, _) = stripe.authorize(&headers)?;
    Ok(Json(json!({
        "id": account.id,
        "object": "account",
        "charges_enabled": true,
        "payouts_enabled": true,
        "country": "US",
        "default_currency": "usd",
    })))
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

/// Stripe shows a refused key as its prefix and last four characters.
fn redacted(value: &str) -> String {
    let tail: String = value
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("sk_****{tail}")
}

fn error(status: StatusCode, message: &str) -> ApiError {
    ApiError {
        status,
        body: json!({"error": {"message": message, "type": "invalid_request_error"}}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_belong_to_their_account_and_die_when_deleted() {
        let mut stripe = Stripe::new();
        let account = stripe.default_account().to_owned();
        let key = stripe.create_key(&account, true);
        assert!(key.starts_with("sk_live_51"));
        assert!(stripe.key_works(&key));
        let other = stripe.create_key("acct_other", false);
        assert_eq!(
            stripe.owner(&other).map(|(a, _)| a.id.as_str()),
            Some("acct_other")
        );
        assert!(stripe.delete_key(&key));
        assert!(!stripe.key_works(&key));
        assert!(
            !stripe.delete_key(&key),
            "a deleted key cannot be deleted again"
        );
    }
}
