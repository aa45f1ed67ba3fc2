//! GitHub: no API creates a personal access token, so a person generates one and stages it. A token is
//! validated with `GET /user`, which also names its user and, for a classic token, its scopes
//! (`X-OAuth-Scopes`); the old token is revoked by its value through `POST /credentials/revoke`, which
//! takes no authentication (an authenticated call is refused).

use std::collections::BTreeSet;

use reqwest::header::HeaderMap;
use reqwest::{RequestBuilder, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::adapters::http::{self, RetryPolicy};
use crate::domain::audit::{KeyHandle, RevocationStatus};
use crate::domain::keys::redacted;
use crate::domain::policy::KEYROT_STAGED;
use crate::domain::secret::GitHubSettings;
use crate::error::{Error, Result, Transience};

const SYSTEM: &str = "github";
const API_VERSION: &str = "2022-11-28";

#[derive(Clone)]
pub struct GitHubIssuer {
    http: reqwest::Client,
    base_url: String,
    retry: RetryPolicy,
}

#[derive(Deserialize)]
struct User {
    login: String,
}

/// What `GET /user` tells of a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    pub login: String,
    /// A classic token's scopes; `None` for a fine-grained token, whose permissions GitHub does not
    /// report.
    pub scopes: Option<BTreeSet<String>>,
    /// When GitHub will expire the token, as it says it (`2026-12-31 00:00:00 UTC`).
    pub expires: Option<String>,
}

impl GitHubIssuer {
    pub fn new(http: reqwest::Client, base_url: impl Into<String>) -> Self {
        GitHubIssuer {
            http,
            base_url: base_url.into(),
            retry: RetryPolicy::default(),
        }
    }

    fn request(&self, request: RequestBuilder) -> RequestBuilder {
        request
            .header("accept", "application/vnd.github+json")
            .header("x-github-api-version", API_VERSION)
    }

    pub async fn validate(&self, secret_name: &str, key: &SecretString) -> Result<()> {
        self.token_info(secret_name, key).await.map(|_| ())
    }

    /// `GET /user` with the token: its user, scopes and expiry.
    pub async fn token_info(&self, secret_name: &str, key: &SecretString) -> Result<TokenInfo> {
        let operation = "GET /user";
        let url = http::endpoint(&self.base_url, &["user"])?;
        let response = http::send(self.retry, SYSTEM, operation, || {
            self.request(self.http.get(url.clone()))
                .bearer_auth(key.expose_secret())
        })
        .await?;
        match response.status() {
            status if status.is_success() => {
                let headers = response.headers().clone();
                let user: User = response
                    .json()
                    .await
                    .map_err(|err| Error::external(SYSTEM, operation, err, Transience::Final))?;
                Ok(TokenInfo {
                    login: user.login,
                    scopes: scopes(&headers),
                    expires: header(&headers, "github-authentication-token-expiration"),
                })
            }
            StatusCode::UNAUTHORIZED => Err(Error::KeyRejected {
                secret: secret_name.to_owned(),
                provider: SYSTEM.to_owned(),
                hint: redacted(key),
                detail: format!("{operation} answered HTTP 401"),
            }),
            status => Err(http::unexpected(SYSTEM, operation, status)),
        }
    }

    /// The staged token must be the same user's (`github.login`, or the current token's); scopes it
    /// lacks or adds are reported, as is its expiry.
    pub async fn compare_staged(
        &self,
        secret_name: &str,
        settings: &GitHubSettings,
        current: &SecretString,
        staged: &SecretString,
    ) -> Result<Vec<String>> {
        let staged_info = self.token_info(secret_name, staged).await?;
        let current_info = self.token_info(secret_name, current).await.ok();
        let expected = settings
            .login
            .clone()
            .or_else(|| current_info.as_ref().map(|info| info.login.clone()));
        if let Some(expected) = expected.filter(|login| *login != staged_info.login) {
            return Err(Error::config(
                secret_name,
                KEYROT_STAGED,
                format!(
                    "the staged token belongs to GitHub user {}, and the secret's user is {expected}",
                    staged_info.login
                ),
                format!(
                    "sign in to GitHub as {expected}, generate the token there, and stage it with `keyrot stage {secret_name}`"
                ),
            ));
        }
        let mut notes = compare_tokens(current_info.as_ref(), &staged_info);
        if settings.login.is_none() && current_info.is_none() {
            notes.push("The secret records no github.login and the current token no longer answers, so the staged token's user was not compared.".to_owned());
        }
        Ok(notes)
    }

    /// Revokes the token by its value; without it (the old version can no longer be read) a person
    /// must delete it in GitHub's settings.
    pub async fn revoke(
        &self,
        revocation: &KeyHandle,
        value: Option<&SecretString>,
    ) -> Result<RevocationStatus> {
        let Some(value) = value else {
            return Ok(RevocationStatus::Manual);
        };
        let operation = "POST /credentials/revoke";
        let url = http::endpoint(&self.base_url, &["credentials", "revoke"])?;
        let body = serde_json::json!({ "credentials": [value.expose_secret()] });
        let response = http::send(self.retry, SYSTEM, operation, || {
            self.request(self.http.post(url.clone())).json(&body)
        })
        .await?;
        match response.status() {
            status if status.is_success() => Ok(RevocationStatus::Revoked),
            status => {
                tracing::warn!(secret = %revocation.secret_name, status = status.as_u16(), "GitHub refused the revocation");
                Err(http::unexpected(SYSTEM, operation, status))
            }
        }
    }
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    let value = headers.get(name)?.to_str().ok()?.trim();
    (!value.is_empty()).then(|| value.to_owned())
}

/// A classic token's `X-OAuth-Scopes` (present, maybe empty); `None` when the header is absent.
fn scopes(headers: &HeaderMap) -> Option<BTreeSet<String>> {
    let value = headers.get("x-oauth-scopes")?.to_str().ok()?;
    Some(
        value
            .split(',')
            .map(str::trim)
            .filter(|scope| !scope.is_empty())
            .map(str::to_owned)
            .collect(),
    )
}

/// What a person should know of the staged token beside the current one, as sentences.
fn compare_tokens(current: Option<&TokenInfo>, staged: &TokenInfo) -> Vec<String> {
    let mut notes = Vec::new();
    match (current.and_then(|c| c.scopes.as_ref()), &staged.scopes) {
        (Some(was), Some(is)) => {
            let lacks: Vec<&str> = was.difference(is).map(String::as_str).collect();
            let adds: Vec<&str> = is.difference(was).map(String::as_str).collect();
            if !lacks.is_empty() {
                notes.push(format!(
                    "The new GitHub token is narrower: it lacks the scopes {} of the old one, and what uses them will fail.",
                    lacks.join(", ")
                ));
            }
            if !adds.is_empty() {
                notes.push(format!(
                    "The new GitHub token is wider: it adds the scopes {} to the old one's.",
                    adds.join(", ")
                ));
            }
        }
        (None, Some(_)) if current.is_some() => notes.push(
            "The new GitHub token is a classic token, and the old one was fine-grained.".to_owned(),
        ),
        (_, None) => notes.push(
            "The new GitHub token is fine-grained: GitHub does not report its permissions, so compare them with the old token's in Settings.".to_owned(),
        ),
        _ => {}
    }
    if let Some(expires) = &staged.expires {
        notes.push(format!("GitHub expires the new token at {expires}."));
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classic(scopes: &[&str]) -> TokenInfo {
        TokenInfo {
            login: "octo".into(),
            scopes: Some(scopes.iter().map(|s| (*s).to_owned()).collect()),
            expires: None,
        }
    }

    #[test]
    fn a_narrower_and_a_wider_token_are_told_apart() {
        let notes = compare_tokens(
            Some(&classic(&["repo", "read:org"])),
            &classic(&["repo", "workflow"]),
        );
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(
            notes[0].contains("narrower") && notes[0].contains("read:org"),
            "{notes:?}"
        );
        assert!(
            notes[1].contains("wider") && notes[1].contains("workflow"),
            "{notes:?}"
        );
        assert!(compare_tokens(Some(&classic(&["repo"])), &classic(&["repo"])).is_empty());
    }

    #[test]
    fn a_fine_grained_token_is_said_to_be_unreadable() {
        let fine = TokenInfo {
            scopes: None,
            expires: Some("2027-03-01 00:00:00 UTC".into()),
            ..classic(&[])
        };
        let notes = compare_tokens(Some(&classic(&["repo"])), &fine);
        assert!(notes[0].contains("fine-grained"), "{notes:?}");
        assert!(notes[1].contains("2027-03-01"), "{notes:?}");
    }

    #[test]
    fn scopes_are_read_from_the_header() {
        let mut headers = HeaderMap::new();
        assert_eq!(scopes(&headers), None);
        headers.insert("x-oauth-scopes", "repo, read:org".parse().expect("header"));
        let read = scopes(&headers).expect("scopes");
        assert!(read.contains("repo") && read.contains("read:org"));
    }
}
