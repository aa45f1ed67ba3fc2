//! Anthropic: no API creates keys, so a person stages one (`keyrot stage`) and keyrot adopts it. Keys are
//! validated with `GET /v1/models`, found by their `partial_key_hint` through the Admin API, and revoked
//! by setting their status to `inactive` (reversible; archiving is a person's later decision). Whether an old
//! key is still in use is read from the messages usage report, filtered to its id.

use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::{RequestBuilder, Response, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::adapters::admin_keys::AdminKeys;
use crate::adapters::http::{self, Refusal, RetryPolicy};
use crate::domain::admin::AdminRequest;
use crate::domain::audit::{KeyHandle, RevocationStatus};
use crate::domain::keys::redacted;
use crate::domain::secret::AnthropicSettings;
use crate::error::{Error, Result};

const SYSTEM: &str = "anthropic";
const ADMIN_FIELD: &str = "anthropic.admin_key_secret";
const API_VERSION: &str = "2023-06-01";

#[derive(Clone)]
pub struct AnthropicIssuer {
    http: reqwest::Client,
    /// The API root without the version (the paths carry `/v1`).
    base_url: String,
    admin_keys: AdminKeys,
    retry: RetryPolicy,
}

#[derive(Debug, Deserialize)]
struct ApiKey {
    id: String,
    partial_key_hint: Option<String>,
}

/// One bucket of the usage report: its time span and the usage of each key in it.
#[derive(Deserialize)]
struct UsageBucket {
    ending_at: String,
    results: Vec<UsageResult>,
}

#[derive(Deserialize)]
struct UsageResult {
    #[serde(default)]
    uncached_input_tokens: u64,
    #[serde(default)]
    cache_read_input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
}

#[derive(Deserialize)]
struct UsageReport {
    data: Vec<UsageBucket>,
}

/// How far back the usage report is asked: the keeper holds a key used within its in-use window (an
/// hour), and the report's minute buckets cover that.
const USAGE_LOOKBACK: chrono::TimeDelta = chrono::TimeDelta::hours(1);

#[derive(Deserialize)]
struct ApiKeyList {
    data: Vec<ApiKey>,
    has_more: bool,
    last_id: Option<String>,
}

impl AnthropicIssuer {
    pub fn new(http: reqwest::Client, base_url: impl Into<String>, admin_keys: AdminKeys) -> Self {
        AnthropicIssuer {
            http,
            base_url: base_url.into(),
            admin_keys,
            retry: RetryPolicy::default(),
        }
    }

    fn with_key(&self, request: RequestBuilder, key: &SecretString) -> RequestBuilder {
        request
            .header("x-api-key", key.expose_secret())
            .header("anthropic-version", API_VERSION)
    }

    pub async fn validate(&self, secret_name: &str, key: &SecretString) -> Result<()> {
        let url = http::endpoint(&self.base_url, &["v1", "models"])?;
        let response = http::send(self.retry, SYSTEM, "GET /v1/models", || {
            self.with_key(self.http.get(url.clone()), key)
        })
        .await?;
        match response.status() {
            status if status.is_success() => Ok(()),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(Error::KeyRejected {
                secret: secret_name.to_owned(),
                provider: SYSTEM.to_owned(),
                hint: redacted(key),
                detail: format!(
                    "GET /v1/models answered HTTP {}",
                    response.status().as_u16()
                ),
            }),
            status => Err(http::unexpected(SYSTEM, "GET /v1/models", status)),
        }
    }

    /// The `apikey_...` id of `key`, found by matching its `partial_key_hint` among the organization's
    /// active keys; `None` when no key (or more than one) matches.
    pub async fn identify(
        &self,
        secret_name: &str,
        settings: &AnthropicSettings,
        key: &SecretString,
    ) -> Result<Option<String>> {
        let admin = self.admin_key(secret_name, settings).await?;
        let url = http::endpoint(&self.base_url, &["v1", "organizations", "api_keys"])?;
        let mut matches = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let response = http::send(self.retry, SYSTEM, "GET api_keys", || {
                let mut request = self
                    .with_key(self.http.get(url.clone()), &admin)
                    .query(&[("limit", "1000"), ("status", "active")]);
                if let Some(after) = &after {
                    request = request.query(&[("after_id", after)]);
                }
                request
            })
            .await?;
            let page: ApiKeyList =
                admin_json(secret_name, settings, response, "GET api_keys").await?;
            matches.extend(page.data.into_iter().filter(|candidate| {
                candidate
                    .partial_key_hint
                    .as_deref()
                    .is_some_and(|hint| hint_matches(hint, key))
            }));
            match page.last_id {
                Some(last) if page.has_more => after = Some(last),
                _ => break,
            }
        }
        if matches.len() > 1 {
            tracing::warn!(
                count = matches.len(),
                "several Anthropic keys match the staged key's hint"
            );
            return Ok(None);
        }
        Ok(matches.pop().map(|key| key.id))
    }

    pub async fn revoke(&self, revocation: &KeyHandle) -> Result<RevocationStatus> {
        let (Some(key_id), Some(admin_secret)) = (&revocation.key_id, &revocation.admin_key_secret)
        else {
            return Ok(RevocationStatus::Manual);
        };
        let settings = AnthropicSettings {
            admin_key_secret: admin_secret.clone(),
        };
        let admin = self.admin_key(&revocation.secret_name, &settings).await?;
        let url = http::endpoint(&self.base_url, &["v1", "organizations", "api_keys", key_id])?;
        let body = serde_json::json!({ "status": "inactive" });
        let response = http::send(self.retry, SYSTEM, "POST api_keys/{id}", || {
            self.with_key(self.http.post(url.clone()), &admin)
                .json(&body)
        })
        .await?;
        admin_json::<serde_json::Value>(
            &revocation.secret_name,
            &settings,
            response,
            "POST api_keys/{id}",
        )
        .await?;
        Ok(RevocationStatus::Revoked)
    }

    /// When the key was last used, from the Admin API's messages usage report over the last hour, in
    /// minute buckets filtered to the key's id (`api_key_ids[]`): the end of the latest bucket with any
    /// tokens. `None` for a key with no id, or no use in that hour.
    pub async fn last_used(&self, revocation: &KeyHandle) -> Result<Option<DateTime<Utc>>> {
        let (Some(key_id), Some(admin_secret)) = (&revocation.key_id, &revocation.admin_key_secret)
        else {
            return Ok(None);
        };
        let settings = AnthropicSettings {
            admin_key_secret: admin_secret.clone(),
        };
        let admin = self.admin_key(&revocation.secret_name, &settings).await?;
        let url = http::endpoint(
            &self.base_url,
            &["v1", "organizations", "usage_report", "messages"],
        )?;
        let since = (Utc::now() - USAGE_LOOKBACK).to_rfc3339_opts(SecondsFormat::Secs, true);
        let operation = "GET usage_report/messages";
        let response = http::send(self.retry, SYSTEM, operation, || {
            self.with_key(self.http.get(url.clone()), &admin).query(&[
                ("starting_at", since.as_str()),
                ("bucket_width", "1m"),
                // An hour of minutes is 61 buckets once the start is rounded down; room to spare.
                ("limit", "90"),
                ("api_key_ids[]", key_id.as_str()),
            ])
        })
        .await?;
        let report: UsageReport =
            admin_json(&revocation.secret_name, &settings, response, operation).await?;
        Ok(latest_use(&report))
    }

    async fn admin_key(
        &self,
        secret_name: &str,
        settings: &AnthropicSettings,
    ) -> Result<SecretString> {
        self.admin_keys
            .read(AdminRequest {
                wants: Some(crate::domain::credential::CredentialKind::AnthropicAdmin),
                managed: secret_name,
                field: ADMIN_FIELD,
                admin_secret: &settings.admin_key_secret,
                resources: &[],
            })
            .await
    }
}

/// The end of the latest bucket in which the key used any tokens.
fn latest_use(report: &UsageReport) -> Option<DateTime<Utc>> {
    report
        .data
        .iter()
        .filter(|bucket| {
            bucket
                .results
                .iter()
                .any(|r| r.uncached_input_tokens + r.cache_read_input_tokens + r.output_tokens > 0)
        })
        .filter_map(|bucket| DateTime::parse_from_rfc3339(&bucket.ending_at).ok())
        .map(|at| at.with_timezone(&Utc))
        .max()
}

/// `sk-ant-api03-R2D...igAA` matches a key that starts with the part before `...` and ends with the part
/// after it.
fn hint_matches(hint: &str, key: &SecretString) -> bool {
    let key = key.expose_secret();
    match hint.split_once("...") {
        Some((head, tail)) if !head.is_empty() && !tail.is_empty() => {
            key.starts_with(head) && key.ends_with(tail)
        }
        _ => false,
    }
}

async fn admin_json<T: serde::de::DeserializeOwned>(
    secret_name: &str,
    settings: &AnthropicSettings,
    response: Response,
    operation: &str,
) -> Result<T> {
    let refusal = Refusal {
        secret: secret_name,
        credential_field: ADMIN_FIELD,
        credential_secret: &settings.admin_key_secret,
        credential_kind: "Anthropic admin key (sk-ant-admin...)",
        not_found: None,
    };
    http::read_json(SYSTEM, operation, response, refusal).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_bucket_with_tokens_is_the_last_use() {
        let report: UsageReport = serde_json::from_value(serde_json::json!({"data": [
            {"starting_at": "2026-12-02T10:00:00Z", "ending_at": "2026-12-02T10:01:00Z",
             "results": [{"uncached_input_tokens": 12, "output_tokens": 3}]},
            {"starting_at": "2026-12-02T10:05:00Z", "ending_at": "2026-12-02T10:06:00Z",
             "results": [{"uncached_input_tokens": 0, "output_tokens": 0}]},
            {"starting_at": "2026-12-02T10:06:00Z", "ending_at": "2026-12-02T10:07:00Z", "results": []},
        ]}))
        .expect("report");
        assert_eq!(
            latest_use(&report).map(|at| at.to_rfc3339()),
            Some("2026-12-02T10:01:00+00:00".to_owned())
        );
        let idle: UsageReport =
            serde_json::from_value(serde_json::json!({"data": []})).expect("report");
        assert_eq!(latest_use(&idle), None);
    }

    #[test]
    fn hints_match_on_both_ends_only() {
        let key = SecretString::from("sk-ant-api03-R2Dxxxxxxxxxxxxxxxxxxxxxxxx-igAA");
        assert!(hint_matches("sk-ant-api03-R2D...igAA", &key));
        assert!(!hint_matches("sk-ant-api03-R2E...igAA", &key));
        assert!(!hint_matches("sk-ant-api03-R2D...igAB", &key));
        assert!(!hint_matches("no-ellipsis", &key));
        assert!(!hint_matches("...igAA", &key));
    }
}
