//! OpenAI: keys are minted as one project service account per key through the Admin API, validated with
//! `GET /models`, and revoked by deleting their service account (or, for a key a person made, by
//! deleting the project API key).

use chrono::{DateTime, Utc};
use reqwest::{Response, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::adapters::admin_keys::AdminKeys;
use crate::adapters::http::{self, Refusal, RetryPolicy};
use crate::domain::NewKey;
use crate::domain::admin::AdminRequest;
use crate::domain::audit::{KeyHandle, RevocationStatus};
use crate::domain::keys::redacted;
use crate::domain::secret::OpenAiSettings;
use crate::error::{Error, Result, Transience};
use crate::ports::MintedKey;

const SYSTEM: &str = "openai";
const ADMIN_FIELD: &str = "openai.admin_key_secret";
/// Every service account keyrot mints is named with this prefix.
pub const MINTED_PREFIX: &str = "keyrot-";

#[derive(Clone)]
pub struct OpenAiIssuer {
    http: reqwest::Client,
    /// The API root including `/v1`.
    base_url: String,
    admin_keys: AdminKeys,
    retry: RetryPolicy,
}

#[derive(Debug, Deserialize)]
struct ServiceAccount {
    id: String,
    name: String,
    created_at: i64,
}

#[derive(Deserialize)]
struct ServiceAccountList {
    data: Vec<ServiceAccount>,
    has_more: bool,
    last_id: Option<String>,
}

#[derive(Deserialize)]
struct CreatedServiceAccount {
    id: String,
    api_key: Option<CreatedKey>,
}

#[derive(Deserialize)]
struct CreatedKey {
    value: String,
    id: String,
}

#[derive(Deserialize)]
struct ProjectApiKey {
    last_used_at: Option<i64>,
}

impl OpenAiIssuer {
    pub fn new(http: reqwest::Client, base_url: impl Into<String>, admin_keys: AdminKeys) -> Self {
        OpenAiIssuer {
            http,
            base_url: base_url.into(),
            admin_keys,
            retry: RetryPolicy::default(),
        }
    }

    pub async fn validate(&self, secret_name: &str, key: &SecretString) -> Result<()> {
        let url = http::endpoint(&self.base_url, &["models"])?;
        let response = http::send(self.retry, SYSTEM, "GET /models", || {
            self.http.get(url.clone()).bearer_auth(key.expose_secret())
        })
        .await?;
        match response.status() {
            status if status.is_success() => Ok(()),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(Error::KeyRejected {
                secret: secret_name.to_owned(),
                provider: SYSTEM.to_owned(),
                hint: redacted(key),
                detail: format!("GET /models answered HTTP {}", response.status().as_u16()),
            }),
            status => Err(http::unexpected(SYSTEM, "GET /models", status)),
        }
    }

    /// Mints a key as a new service account named `name` (for this secret and rotation). Same-name accounts an earlier
    /// attempt left are not deleted here, whatever their age (a clock's word, against OpenAI's, is no
    /// proof that their key was never stored): they are returned as leftovers, which createSecret
    /// deletes only once this key is stored, when no other key can be the pending one.
    pub async fn mint(
        &self,
        secret_name: &str,
        settings: &OpenAiSettings,
        name: &str,
    ) -> Result<NewKey> {
        let admin = self.admin_key(secret_name, settings).await?;
        let leftovers: Vec<String> = self
            .service_accounts(secret_name, settings, &admin)
            .await?
            .into_iter()
            .filter(|account| account.name == name)
            .map(|account| account.id)
            .collect();
        let url = self.project_url(settings, &["service_accounts"])?;
        let body = serde_json::json!({ "name": name });
        let response = http::send(
            self.retry.creating(),
            SYSTEM,
            "POST service_accounts",
            || {
                self.http
                    .post(url.clone())
                    .bearer_auth(admin.expose_secret())
                    .json(&body)
            },
        )
        .await?;
        let created: CreatedServiceAccount = self
            .admin_json(secret_name, settings, response, "POST service_accounts")
            .await?;
        let key = created.api_key.ok_or_else(|| {
            Error::external(
                SYSTEM,
                "POST service_accounts",
                "the answer held no API key",
                Transience::Retryable,
            )
        })?;
        Ok(NewKey {
            api_key: SecretString::from(key.value),
            key_id: Some(created.id),
            api_key_id: Some(key.id),
            leftovers,
            password: None,
        })
    }

    /// After the pending version stored `kept`, the other accounts named for this rotation that minting
    /// found (an earlier attempt's, whose key was never stored) are orphans: delete them.
    pub async fn remove_leftovers(
        &self,
        secret_name: &str,
        settings: &OpenAiSettings,
        kept: &NewKey,
    ) -> Result<()> {
        if kept.leftovers.is_empty() {
            return Ok(());
        }
        let admin = self.admin_key(secret_name, settings).await?;
        for id in kept
            .leftovers
            .iter()
            .filter(|id| Some(*id) != kept.key_id.as_ref())
        {
            tracing::warn!(service_account = %id, "deleting a leftover service account of this rotation");
            self.delete_service_account(secret_name, settings, &admin, id)
                .await?;
        }
        Ok(())
    }

    /// Revokes an old key: deletes its service account, or the project API key a person made.
    pub async fn revoke(&self, revocation: &KeyHandle) -> Result<RevocationStatus> {
        let settings = settings_of(revocation)?;
        let admin = self.admin_key(&revocation.secret_name, &settings).await?;
        match (&revocation.key_id, &revocation.api_key_id) {
            (Some(service_account), _) if service_account.starts_with("svc_acct_") => {
                self.delete_service_account(
                    &revocation.secret_name,
                    &settings,
                    &admin,
                    service_account,
                )
                .await?;
                Ok(RevocationStatus::Revoked)
            }
            (_, Some(api_key_id)) => {
                let url = self.project_url(&settings, &["api_keys", api_key_id])?;
                let response = http::send(self.retry, SYSTEM, "DELETE api_keys", || {
                    self.http
                        .delete(url.clone())
                        .bearer_auth(admin.expose_secret())
                })
                .await?;
                if response.status() == StatusCode::NOT_FOUND {
                    return Ok(RevocationStatus::Revoked);
                }
                self.admin_json::<serde_json::Value>(
                    &revocation.secret_name,
                    &settings,
                    response,
                    "DELETE api_keys",
                )
                .await?;
                Ok(RevocationStatus::Revoked)
            }
            // A key a person made, whose id nobody recorded: only a person can find and revoke it.
            _ => Ok(RevocationStatus::Manual),
        }
    }

    /// When the key was last used, as OpenAI reports it (to postpone revoking a key still in use).
    pub async fn last_used(&self, revocation: &KeyHandle) -> Result<Option<DateTime<Utc>>> {
        let (settings, Some(api_key_id)) = (settings_of(revocation)?, &revocation.api_key_id)
        else {
            return Ok(None);
        };
        let admin = self.admin_key(&revocation.secret_name, &settings).await?;
        let url = self.project_url(&settings, &["api_keys", api_key_id])?;
        let response = http::send(self.retry, SYSTEM, "GET api_keys", || {
            self.http
                .get(url.clone())
                .bearer_auth(admin.expose_secret())
        })
        .await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let key: ProjectApiKey = self
            .admin_json(&revocation.secret_name, &settings, response, "GET api_keys")
            .await?;
        Ok(key
            .last_used_at
            .and_then(|secs| DateTime::from_timestamp(secs, 0)))
    }

    /// The project's service accounts that keyrot named (`keyrot-...`), to find orphans.
    pub async fn minted_keys(
        &self,
        secret_name: &str,
        settings: &OpenAiSettings,
    ) -> Result<Vec<MintedKey>> {
        let admin = self.admin_key(secret_name, settings).await?;
        Ok(self
            .service_accounts(secret_name, settings, &admin)
            .await?
            .into_iter()
            .filter(|account| account.name.starts_with(MINTED_PREFIX))
            .map(|account| MintedKey {
                created_at: DateTime::from_timestamp(account.created_at, 0).unwrap_or_default(),
                id: account.id,
                name: account.name,
                scope: settings.project_id.clone(),
            })
            .collect())
    }

    /// An endpoint under the project: `organization/projects/<project_id>/<rest>`.
    fn project_url(&self, settings: &OpenAiSettings, rest: &[&str]) -> Result<reqwest::Url> {
        let mut segments = vec!["organization", "projects", settings.project_id.as_str()];
        segments.extend_from_slice(rest);
        http::endpoint(&self.base_url, &segments)
    }

    async fn admin_key(
        &self,
        secret_name: &str,
        settings: &OpenAiSettings,
    ) -> Result<SecretString> {
        self.admin_keys
            .read(AdminRequest {
                wants: Some(crate::domain::credential::CredentialKind::OpenAiAdmin),
                managed: secret_name,
                field: ADMIN_FIELD,
                admin_secret: &settings.admin_key_secret,
                resources: &[&settings.project_id],
            })
            .await
    }

    async fn service_accounts(
        &self,
        secret_name: &str,
        settings: &OpenAiSettings,
        admin: &SecretString,
    ) -> Result<Vec<ServiceAccount>> {
        let url = self.project_url(settings, &["service_accounts"])?;
        let mut accounts = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let response = http::send(self.retry, SYSTEM, "GET service_accounts", || {
                let mut request = self
                    .http
                    .get(url.clone())
                    .bearer_auth(admin.expose_secret())
                    .query(&[("limit", "100")]);
                if let Some(after) = &after {
                    request = request.query(&[("after", after)]);
                }
                request
            })
            .await?;
            let page: ServiceAccountList = self
                .admin_json(secret_name, settings, response, "GET service_accounts")
                .await?;
            accounts.extend(page.data);
            match (page.has_more, page.last_id) {
                (false, _) => return Ok(accounts),
                (true, Some(last)) if after.as_ref() != Some(&last) => after = Some(last),
                // A listing that says more follows but gives no new cursor would loop, or stop
                // short and hide an account: it is no answer to act on.
                (true, _) => {
                    return Err(Error::external(
                        SYSTEM,
                        "GET service_accounts",
                        "the answer says more service accounts follow (has_more) but gives no new \
                         last_id to continue from",
                        Transience::Retryable,
                    ));
                }
            }
        }
    }

    async fn delete_service_account(
        &self,
        secret_name: &str,
        settings: &OpenAiSettings,
        admin: &SecretString,
        id: &str,
    ) -> Result<()> {
        let url = self.project_url(settings, &["service_accounts", id])?;
        let response = http::send(self.retry, SYSTEM, "DELETE service_accounts", || {
            self.http
                .delete(url.clone())
                .bearer_auth(admin.expose_secret())
        })
        .await?;
        // Already gone is what we wanted: a repeated revocation has nothing left to do.
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(());
        }
        self.admin_json::<serde_json::Value>(
            secret_name,
            settings,
            response,
            "DELETE service_accounts",
        )
        .await?;
        Ok(())
    }

    /// Reads an Admin API answer, mapping refusals to errors that say what to fix.
    async fn admin_json<T: serde::de::DeserializeOwned>(
        &self,
        secret_name: &str,
        settings: &OpenAiSettings,
        response: Response,
        operation: &str,
    ) -> Result<T> {
        let refusal = Refusal {
            secret: secret_name,
            credential_field: ADMIN_FIELD,
            credential_secret: &settings.admin_key_secret,
            credential_kind: "OpenAI admin key (sk-admin-...)",
            not_found: Some((
                "openai.project_id",
                "set openai.project_id to the id (proj_...) of the project the key belongs to",
            )),
        };
        http::read_json(SYSTEM, operation, response, refusal).await
    }
}

/// The settings a revocation record carries for OpenAI.
fn settings_of(revocation: &KeyHandle) -> Result<OpenAiSettings> {
    match (&revocation.project_id, &revocation.admin_key_secret) {
        (Some(project_id), Some(admin_key_secret)) => Ok(OpenAiSettings {
            project_id: project_id.clone(),
            admin_key_secret: admin_key_secret.clone(),
        }),
        _ => Err(Error::protocol(
            &revocation.secret_name,
            format!(
                "the revocation of version {} lacks the OpenAI project or admin secret",
                revocation.old_version_id
            ),
        )),
    }
}
