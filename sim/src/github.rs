//! The GitHub side: personal access tokens people generate in their settings (no API creates one),
//! `GET /user` as the "does this token work" probe (with `X-OAuth-Scopes` for classic tokens and the
//! expiry header), and `POST /credentials/revoke`, which revokes tokens by value, unauthenticated, as
//! GitHub's REST API description says (an authenticated call gets 403).

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::reply::ApiError;
use crate::state::{Shared, random_alphanumeric};

const DOCS: &str = "https://docs.github.com/rest";

#[derive(Default)]
pub(crate) struct GitHub {
    tokens: Vec<Token>,
}

struct Token {
    value: String,
    login: String,
    /// A classic token's scopes; `None` for a fine-grained one.
    scopes: Option<Vec<String>>,
    revoked: bool,
}

impl GitHub {
    /// A classic token (`ghp_`) with `scopes`, or with `None` a fine-grained one (`github_pat_`).
    pub(crate) fn create_token(&mut self, login: &str, scopes: Option<&[&str]>) -> String {
        let value = match scopes {
            Some(_) => format!("ghp_{}", random_alphanumeric(36)),
            None => format!(
                "github_pat_11{}_{}",
                random_alphanumeric(20),
                random_alphanumeric(59)
            ),
        };
        self.tokens.push(Token {
            value: value.clone(),
            login: login.to_owned(),
            scopes: scopes.map(|s| s.iter().map(|scope| (*scope).to_owned()).collect()),
            revoked: false,
        });
        value
    }

    pub(crate) fn token_works(&self, value: &str) -> bool {
        self.live(value).is_some()
    }

    /// `/_sim/state`: users and how many live tokens each has, never token values.
    pub(crate) fn snapshot(&self) -> Value {
        let live: Vec<Value> = self
            .tokens
            .iter()
            .filter(|t| !t.revoked)
            .map(|t| json!({"login": t.login, "classic": t.scopes.is_some()}))
            .collect();
        json!({ "tokens": live })
    }

    fn live(&self, value: &str) -> Option<&Token> {
        self.tokens.iter().find(|t| t.value == value && !t.revoked)
    }
}

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/user", get(user))
        .route("/credentials/revoke", post(revoke))
}

async fn user(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let github = shared.github();
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("token "))
        })
        .and_then(|value| github.live(value));
    let Some(token) = token else {
        return error(StatusCode::UNAUTHORIZED, "Bad credentials").into_response();
    };
    let mut response = Json(private_user(&token.login)).into_response();
    let headers = response.headers_mut();
    if let Some(scopes) = &token.scopes
        && let Ok(value) = HeaderValue::from_str(&scopes.join(", "))
    {
        headers.insert("x-oauth-scopes", value);
    }
    headers.insert(
        "github-authentication-token-expiration",
        HeaderValue::from_static("2027-06-01 00:00:00 UTC"),
    );
    response
}

#[derive(Deserialize)]
struct RevokeRequest {
    credentials: Vec<String>,
}

async fn revoke(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    if headers.contains_key(header::AUTHORIZATION) {
        return error(
            StatusCode::FORBIDDEN,
            "Authenticated requests are not accepted",
        )
        .into_response();
    }
    let request: RevokeRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(_) => return validation_failed("credentials is required").into_response(),
    };
    if request.credentials.is_empty() || request.credentials.len() > 1000 {
        return validation_failed("credentials must hold 1 to 1000 items").into_response();
    }
    let mut github = shared.github();
    for token in github.tokens.iter_mut() {
        if request.credentials.contains(&token.value) {
            token.revoked = true;
        }
    }
    (StatusCode::ACCEPTED, Json(json!({}))).into_response()
}

/// `private-user` with every field the 2022 description requires.
fn private_user(login: &str) -> Value {
    let url = format!("https://api.github.com/users/{login}");
    json!({
        "login": login, "id": 583231, "node_id": "MDQ6VXNlcjU4MzIzMQ==",
        "avatar_url": "https://avatars.githubusercontent.com/u/583231?v=4", "gravatar_id": "",
        "url": url, "html_url": format!("https://github.com/{login}"),
        "followers_url": format!("{url}/followers"), "following_url": format!("{url}/following{{/other_user}}"),
        "gists_url": format!("{url}/gists{{/gist_id}}"), "starred_url": format!("{url}/starred{{/owner}}{{/repo}}"),
        "subscriptions_url": format!("{url}/subscriptions"), "organizations_url": format!("{url}/orgs"),
        "repos_url": format!("{url}/repos"), "events_url": format!("{url}/events{{/privacy}}"),
        "received_events_url": format!("{url}/received_events"), "type": "User", "site_admin": false,
        "name": "The Octocat", "company": "GitHub", "blog": "https://github.blog", "location": "San Francisco",
        "email": "octocat@github.com", "hireable": false, "bio": "", "public_repos": 8, "public_gists": 8,
        "followers": 20, "following": 0, "created_at": "2011-01-25T18:44:36Z", "updated_at": "2026-11-01T10:00:00Z",
        "private_gists": 0, "total_private_repos": 2, "owned_private_repos": 2, "disk_usage": 1024,
        "collaborators": 0, "two_factor_authentication": true,
    })
}

fn error(status: StatusCode, message: &str) -> ApiError {
    ApiError {
        status,
        body: json!({"message": message, "documentation_url": DOCS, "status": status.as_u16().to_string()}),
    }
}

fn validation_failed(message: &str) -> ApiError {
    ApiError {
        status: StatusCode::UNPROCESSABLE_ENTITY,
        body: json!({"message": message, "documentation_url": DOCS}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classic_and_fine_grained_tokens_have_their_shapes() {
        let mut github = GitHub::default();
        let classic = github.create_token("octo", Some(&["repo"]));
        let fine = github.create_token("octo", None);
        assert!(classic.starts_with("ghp_") && classic.len() == 40);
        assert!(fine.starts_with("github_pat_11"));
        assert!(github.token_works(&classic) && github.token_works(&fine));
        assert!(!github.token_works("ghp_unknown"));
    }
}
