//! keyrot's own credentials (domain::credential), through each platform's account API: OpenAI admin
//! keys are minted, listed and deleted with `/organization/admin_api_keys`; an Anthropic admin key is
//! validated by listing the organisation's keys, a Vercel token by `GET /v2/user` and a Render key by
//! `GET /v1/owners`. The three staged kinds have no API that deletes them: their old key is a
//! revocation task for a person.

use chrono::{DateTime, Utc};
use reqwest::{RequestBuilder, Response, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::adapters::admin_keys::AdminKeys;
use crate::adapters::http::{self, Refusal, RetryPolicy};
use crate::domain::NewKey;
use crate::domain::audit::{KeyHandle, RevocationStatus};
use crate::domain::credential::{CredentialKind, CredentialSettings};
use crate::domain::keys::redacted;
use crate::error::{Error, Result, Transience};

/// The API roots of the platforms whose credentials keyrot holds.
#[derive(Debug, Clone)]
pub struct CredentialApis {
    /// OpenAI's, including `/v1`.
    pub openai: String,
    pub anthropic: String,
    pub vercel: String,
    pub render: String,
}

#[derive(Clone)]
pub struct CredentialIssuer {
    http: reqwest::Client,
    apis: CredentialApis,
    admin_keys: AdminKeys,
    retry: RetryPolicy,
}

#[derive(Deserialize)]
struct AdminKey {
    id: String,
    name: Option<String>,
    last_used_at: Option<i64>,
    #[serde(default)]
    redacted_value: String,
}

#[derive(Deserialize)]
struct AdminKeyList {
    data: Vec<AdminKey>,
    has_more: bool,
    last_id: Option<String>,
}

#[derive(Deserialize)]
struct CreatedAdminKey {
    id: String,
    value: String,
}

#[derive(Deserialize)]
struct VercelUser {
    user: VercelUserId,
}

#[derive(Deserialize)]
struct VercelUserId {
    id: String,
}

#[derive(Deserialize)]
struct RenderOwner {
    owner: RenderOwnerId,
}

#[derive(Deserialize)]
struct RenderOwnerId {
    id: String,
}

const ANTHROPIC_VERSION: &str = "2023-06-01";

impl CredentialIssuer {
    pub fn new(http: reqwest::Client, apis: CredentialApis, admin_keys: AdminKeys) -> Self {
        CredentialIssuer {
            http,
            apis,
            admin_keys,
            retry: RetryPolicy::default(),
        }
    }

    /// One read-only call the credential must be allowed to make.
    pub async fn validate(
        &self,
        secret_name: &str,
        kind: CredentialKind,
        key: &SecretString,
    ) -> Result<()> {
        let (system, operation) = probe_of(kind);
        let response = self.probe(kind, key).await?;
        match response.status() {
            status if status.is_success() => Ok(()),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(Error::KeyRejected {
                secret: secret_name.to_owned(),
                provider: kind.provider().to_string(),
                hint: redacted(key),
                detail: format!("{operation} answered HTTP {}", response.status().as_u16()),
            }),
            status => Err(http::unexpected(system, operation, status)),
        }
    }

    /// Refuses a staged token of another Vercel user or Render workspace than the current one.
    pub async fn compare_staged(
        &self,
        secret_name: &str,
        kind: CredentialKind,
        current: &SecretString,
        staged: &SecretString,
    ) -> Result<Vec<String>> {
        let Some(is) = self.account_of(secret_name, kind, staged).await? else {
            return Ok(Vec::new());
        };
        let Some(was) = self
            .account_of(secret_name, kind, current)
            .await
            .ok()
            .flatten()
        else {
            return Ok(vec![format!(
                "The current {} token no longer answers, so the staged one's account ({is}) was not compared with it.",
                kind.provider().title()
            )]);
        };
        if was == is {
            return Ok(Vec::new());
        }
        let whose = match kind {
            CredentialKind::VercelToken => "Vercel user",
            _ => "Render workspaces",
        };
        Err(Error::config(
            secret_name,
            "staged key",
            format!("belongs to {whose} {is}, and the current token to {was}"),
            format!(
                "sign in as {was} and create the token there ({})",
                kind.provider().console().map_or("", |c| c.create_url)
            ),
        ))
    }

    /// The id of an OpenAI admin key, found by its redacted value among the organisation's admin keys
    /// (`keyrot onboard`); `None` when no key, or more than one, matches.
    pub async fn identify(&self, secret_name: &str, key: &SecretString) -> Result<Option<String>> {
        let mut matching = self
            .admin_keys_listed(secret_name, key)
            .await?
            .into_iter()
            .filter(|listed| redaction_fits(&listed.redacted_value, key.expose_secret()));
        Ok(match (matching.next(), matching.next()) {
            (Some(only), None) => Some(only.id),
            _ => None,
        })
    }

    /// Mints the next OpenAI admin key, named for this rotation and expiring as the secret says.
    /// Same-name keys an earlier attempt left are returned as leftovers (see `OpenAiIssuer::mint`).
    pub async fn mint(
        &self,
        secret_name: &str,
        settings: &CredentialSettings,
        current: &SecretString,
        name: &str,
    ) -> Result<NewKey> {
        let leftovers = self
            .admin_keys_listed(secret_name, current)
            .await?
            .into_iter()
            .filter(|key| key.name.as_deref() == Some(name))
            .map(|key| key.id)
            .collect();
        let url = http::endpoint(&self.apis.openai, &["organization", "admin_api_keys"])?;
        let body = serde_json::json!({
            "name": name,
            "expires_in_seconds": u64::from(settings.expires_in_days) * 86_400,
        });
        let response = http::send(
            self.retry.creating(),
            "openai",
            "POST admin_api_keys",
            || {
                self.http
                    .post(url.clone())
                    .bearer_auth(current.expose_secret())
                    .json(&body)
            },
        )
        .await?;
        let created: CreatedAdminKey =
            admin_json(secret_name, response, "POST admin_api_keys").await?;
        Ok(NewKey {
            api_key: SecretString::from(created.value),
            key_id: Some(created.id),
            api_key_id: None,
            leftovers,
            password: None,
        })
    }

    /// Deletes the admin keys an earlier attempt of this rotation minted and never stored.
    pub async fn remove_leftovers(
        &self,
        secret_name: &str,
        current: &SecretString,
        kept: &NewKey,
    ) -> Result<()> {
        for id in kept
            .leftovers
            .iter()
            .filter(|id| Some(*id) != kept.key_id.as_ref())
        {
            tracing::warn!(admin_key = %id, "deleting a leftover admin key of this rotation");
            self.delete_admin_key(secret_name, current, id).await?;
        }
        Ok(())
    }

    /// Revokes an old OpenAI admin key with the key that replaced it (the secret's AWSCURRENT); the
    /// staged kinds have no API for it.
    pub async fn revoke(&self, revocation: &KeyHandle) -> Result<RevocationStatus> {
        let (Some(CredentialKind::OpenAiAdmin), Some(id)) =
            (CredentialKind::of(revocation.provider), &revocation.key_id)
        else {
            return Ok(RevocationStatus::Manual);
        };
        let name = &revocation.secret_name;
        let current = self
            .admin_keys
            .read_own(name, CredentialKind::OpenAiAdmin)
            .await?;
        self.delete_admin_key(name, &current, id).await?;
        Ok(RevocationStatus::Revoked)
    }

    /// When OpenAI last saw the old admin key used, to hold its revocation while something uses it.
    pub async fn last_used(&self, revocation: &KeyHandle) -> Result<Option<DateTime<Utc>>> {
        let (Some(CredentialKind::OpenAiAdmin), Some(id)) =
            (CredentialKind::of(revocation.provider), &revocation.key_id)
        else {
            return Ok(None);
        };
        let name = &revocation.secret_name;
        let current = self
            .admin_keys
            .read_own(name, CredentialKind::OpenAiAdmin)
            .await?;
        let url = http::endpoint(&self.apis.openai, &["organization", "admin_api_keys", id])?;
        let response = http::send(self.retry, "openai", "GET admin_api_keys", || {
            self.http
                .get(url.clone())
                .bearer_auth(current.expose_secret())
        })
        .await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let key: AdminKey = admin_json(name, response, "GET admin_api_keys").await?;
        Ok(key
            .last_used_at
            .and_then(|secs| DateTime::from_timestamp(secs, 0)))
    }

    async fn probe(&self, kind: CredentialKind, key: &SecretString) -> Result<Response> {
        let (system, operation) = probe_of(kind);
        let url = match kind {
            CredentialKind::OpenAiAdmin => {
                http::endpoint(&self.apis.openai, &["organization", "admin_api_keys"])?
            }
            CredentialKind::AnthropicAdmin => {
                http::endpoint(&self.apis.anthropic, &["v1", "organizations", "api_keys"])?
            }
            CredentialKind::VercelToken => http::endpoint(&self.apis.vercel, &["v2", "user"])?,
            CredentialKind::RenderToken => http::endpoint(&self.apis.render, &["v1", "owners"])?,
        };
        http::send(self.retry, system, operation, || {
            let request = with_credential(kind, self.http.get(url.clone()), key);
            match kind {
                CredentialKind::VercelToken => request,
                _ => request.query(&[("limit", "20")]),
            }
        })
        .await
    }

    /// The account a token acts for: its Vercel user, or its Render workspaces; `None` for the
    /// admin keys, which belong to the one organisation their API serves.
    async fn account_of(
        &self,
        secret_name: &str,
        kind: CredentialKind,
        key: &SecretString,
    ) -> Result<Option<String>> {
        let (system, operation) = probe_of(kind);
        if !matches!(
            kind,
            CredentialKind::VercelToken | CredentialKind::RenderToken
        ) {
            return Ok(None);
        }
        self.validate(secret_name, kind, key).await?;
        let response = self.probe(kind, key).await?;
        let unreadable = |err: reqwest::Error| {
            Error::external(
                system,
                operation,
                format!("unreadable answer: {err}"),
                Transience::Retryable,
            )
        };
        Ok(Some(match kind {
            CredentialKind::VercelToken => {
                response
                    .json::<VercelUser>()
                    .await
                    .map_err(unreadable)?
                    .user
                    .id
            }
            _ => {
                let mut owners: Vec<String> = response
                    .json::<Vec<RenderOwner>>()
                    .await
                    .map_err(unreadable)?
                    .into_iter()
                    .map(|o| o.owner.id)
                    .collect();
                owners.sort();
                owners.join(" ")
            }
        }))
    }

    async fn admin_keys_listed(
        &self,
        secret_name: &str,
        current: &SecretString,
    ) -> Result<Vec<AdminKey>> {
        let url = http::endpoint(&self.apis.openai, &["organization", "admin_api_keys"])?;
        let (mut keys, mut after) = (Vec::new(), None::<String>);
        loop {
            let response = http::send(self.retry, "openai", "GET admin_api_keys", || {
                let mut request = self
                    .http
                    .get(url.clone())
                    .bearer_auth(current.expose_secret())
                    .query(&[("limit", "100")]);
                if let Some(after) = &after {
                    request = request.query(&[("after", after)]);
                }
                request
            })
            .await?;
            let page: AdminKeyList =
                admin_json(secret_name, response, "GET admin_api_keys").await?;
            keys.extend(page.data);
            match (page.has_more, page.last_id) {
                (false, _) => return Ok(keys),
                (true, Some(last)) if after.as_ref() != Some(&last) => after = Some(last),
                (true, _) => {
                    return Err(Error::external(
                        "openai",
                        "GET admin_api_keys",
                        "the answer says more keys follow (has_more) but gives no new last_id",
                        Transience::Retryable,
                    ));
                }
            }
        }
    }

    async fn delete_admin_key(
        &self,
        secret_name: &str,
        current: &SecretString,
        id: &str,
    ) -> Result<()> {
        let url = http::endpoint(&self.apis.openai, &["organization", "admin_api_keys", id])?;
        let response = http::send(self.retry, "openai", "DELETE admin_api_keys", || {
            self.http
                .delete(url.clone())
                .bearer_auth(current.expose_secret())
        })
        .await?;
        // Already gone is what a repeated revocation wanted.
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(());
        }
        admin_json::<serde_json::Value>(secret_name, response, "DELETE admin_api_keys").await?;
        Ok(())
    }
}

/// Whether OpenAI's redacted form of a key (`sk-admin...def`) fits `key`: its head and its tail.
fn redaction_fits(redacted: &str, key: &str) -> bool {
    match redacted.split_once("...") {
        Some((head, tail)) if !tail.is_empty() => key.starts_with(head) && key.ends_with(tail),
        _ => false,
    }
}

/// The platform and call that proves a credential works.
fn probe_of(kind: CredentialKind) -> (&'static str, &'static str) {
    match kind {
        CredentialKind::OpenAiAdmin => ("openai", "GET admin_api_keys"),
        CredentialKind::AnthropicAdmin => ("anthropic", "GET /v1/organizations/api_keys"),
        CredentialKind::VercelToken => ("vercel", "GET /v2/user"),
        CredentialKind::RenderToken => ("render", "GET /v1/owners"),
    }
}

fn with_credential(
    kind: CredentialKind,
    request: RequestBuilder,
    key: &SecretString,
) -> RequestBuilder {
    match kind {
        CredentialKind::AnthropicAdmin => request
            .header("x-api-key", key.expose_secret())
            .header("anthropic-version", ANTHROPIC_VERSION),
        _ => request.bearer_auth(key.expose_secret()),
    }
}

/// An admin-key answer; a refusal says the secret's own current key was refused.
async fn admin_json<T: serde::de::DeserializeOwned>(
    secret_name: &str,
    response: Response,
    operation: &str,
) -> Result<T> {
    let refusal = Refusal {
        secret: secret_name,
        credential_field: "admin_key",
        credential_secret: secret_name,
        credential_kind: "OpenAI admin key (sk-admin-...) that is still valid",
        not_found: None,
    };
    http::read_json("openai", operation, response, refusal).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_redacted_admin_key_fits_by_its_head_and_tail() {
        assert!(redaction_fits("sk-admin...9xQa", "sk-admin-abcdef9xQa"));
        assert!(!redaction_fits("sk-admin...9xQa", "sk-admin-abcdef0000"));
        assert!(!redaction_fits("sk-admin", "sk-admin-abcdef"));
    }
}
