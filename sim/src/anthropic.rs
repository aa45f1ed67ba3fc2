//! The Anthropic side: API keys people create in the Console, the Admin API
//! that lists and updates them (keys are never deleted, only deactivated or
//! archived), and `/v1/models` as the "does this key work" probe.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::credentials::Credentials;
use crate::reply::{ApiError, Reply};
use crate::state::{self, Shared, new_id, now, random_url_safe};

const LIST_DEFAULT_LIMIT: usize = 20;
const LIST_MAX_LIMIT: usize = 1000;

pub(crate) struct Anthropic {
    admin_keys: Credentials,
    /// Creation order; keys are never removed.
    keys: Vec<ApiKey>,
    /// Every successful use of a key: its id and the unix second, for the usage report.
    uses: Vec<(String, i64)>,
}

struct ApiKey {
    id: String,
    name: String,
    value: String,
    status: Status,
    created_at: i64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Status {
    Active,
    Inactive,
    Archived,
}

impl Status {
    fn parse(raw: &str) -> Option<Self> {
        match raw {
            "active" => Some(Self::Active),
            "inactive" => Some(Self::Inactive),
            "archived" => Some(Self::Archived),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Inactive => "inactive",
            Self::Archived => "archived",
        }
    }
}

impl Anthropic {
    pub(crate) fn new() -> Self {
        Self {
            admin_keys: Credentials::new("adminkey_", || {
                format!("sk-ant-admin01-{}AA", random_url_safe(86))
            }),
            keys: Vec::new(),
            uses: Vec::new(),
        }
    }

    pub(crate) fn admin_key(&self) -> &str {
        self.admin_keys.primary()
    }

    pub(crate) fn admin_keys_mut(&mut self) -> &mut Credentials {
        &mut self.admin_keys
    }

    /// An active key, as a person creates it in the Console. Returns (value, id).
    pub(crate) fn create_key(&mut self, name: &str) -> (String, String) {
        let key = ApiKey {
            id: new_id("apikey_"),
            name: name.to_owned(),
            value: format!("sk-ant-api03-{}AA", random_url_safe(86)),
            status: Status::Active,
            created_at: now(),
        };
        let created = (key.value.clone(), key.id.clone());
        self.keys.push(key);
        created
    }

    /// Would `GET /v1/models` succeed with this key?
    pub(crate) fn key_works(&self, value: &str) -> bool {
        self.keys
            .iter()
            .any(|k| k.value == value && k.status == Status::Active)
    }

    /// A request made with the key now (what a service's call would count in the usage report).
    pub(crate) fn record_use(&mut self, value: &str) -> bool {
        let Some(id) = self
            .keys
            .iter()
            .find(|k| k.value == value && k.status == Status::Active)
            .map(|k| k.id.clone())
        else {
            return false;
        };
        self.uses.push((id, now()));
        true
    }

    pub(crate) fn key_status(&self, api_key_id: &str) -> Option<String> {
        self.key(api_key_id).map(|k| k.status.as_str().to_owned())
    }

    /// The `/_sim/state` view: ids, names and statuses, never key values.
    pub(crate) fn snapshot(&self) -> Value {
        let keys: Vec<Value> = self
            .keys
            .iter()
            .map(|k| json!({ "id": k.id, "name": k.name, "status": k.status.as_str() }))
            .collect();
        json!({ "admin_key": self.admin_key(), "admin_keys": self.admin_keys.snapshot(), "keys": keys })
    }

    fn key(&self, api_key_id: &str) -> Option<&ApiKey> {
        self.keys.iter().find(|k| k.id == api_key_id)
    }

    fn authorize_admin(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        require_version(headers)?;
        if self
            .admin_keys
            .works(api_key_header(headers).unwrap_or_default())
        {
            Ok(())
        } else {
            Err(invalid_api_key())
        }
    }
}

impl ApiKey {
    fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "type": "api_key",
            "name": self.name,
            "status": self.status.as_str(),
            "created_at": state::rfc3339(self.created_at),
            "partial_key_hint": partial_key_hint(&self.value),
            "workspace_id": null,
            "created_by": { "id": "user_abc", "type": "user" },
        })
    }
}

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/v1/organizations/api_keys", get(list_keys))
        .route(
            "/v1/organizations/api_keys/{api_key_id}",
            get(get_key).post(update_key),
        )
        .route("/v1/organizations/usage_report/messages", get(usage_report))
}

/// `GET /v1/models` with `x-api-key`; only active keys get through.
pub(crate) fn models(shared: &Shared, headers: &HeaderMap) -> Reply {
    require_version(headers)?;
    let works = api_key_header(headers).is_some_and(|key| shared.anthropic().record_use(key));
    if !works {
        return Err(invalid_api_key());
    }
    Ok(Json(json!({
        "data": [{
            "type": "model",
            "id": "claude-sonnet-4-5",
            "display_name": "Claude Sonnet 4.5",
            "created_at": "2025-09-29T00:00:00Z",
        }],
        "has_more": false,
        "first_id": "claude-sonnet-4-5",
        "last_id": "claude-sonnet-4-5",
    })))
}

async fn list_keys(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Reply {
    let anthropic = shared.anthropic();
    anthropic.authorize_admin(&headers)?;
    let Query(query) = query.map_err(|e| bad_request(&e.body_text()))?;
    let limit = state::parse_limit(query.get("limit"), LIST_DEFAULT_LIMIT, LIST_MAX_LIMIT)
        .map_err(|message| bad_request(&message))?;
    let status = match query.get("status") {
        None => None,
        Some(raw) => Some(Status::parse(raw).ok_or_else(|| {
            bad_request(&format!(
                "status: Input should be 'active', 'inactive' or 'archived', got '{raw}'"
            ))
        })?),
    };
    let after = query.get("after_id").map(String::as_str);
    let start = state::start_after(&anthropic.keys, after, |k| &k.id)
        .ok_or_else(|| bad_request("after_id: no such API key"))?;

    let mut remaining = anthropic.keys[start..]
        .iter()
        .filter(|k| status.is_none_or(|wanted| k.status == wanted));
    let page: Vec<&ApiKey> = remaining.by_ref().take(limit).collect();
    let has_more = remaining.next().is_some();
    Ok(Json(json!({
        "data": page.iter().map(|k| k.to_json()).collect::<Vec<_>>(),
        "has_more": has_more,
        "first_id": page.first().map(|k| &k.id),
        "last_id": page.last().map(|k| &k.id),
    })))
}

const BUCKET_SECS: i64 = 60;

/// `GET /v1/organizations/usage_report/messages` with `bucket_width=1m`: one bucket per minute from
/// `starting_at` to `ending_at` (or now), each with the token use of the keys named by `api_key_ids[]`
/// (every key without it), 60 buckets a page.
async fn usage_report(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Reply {
    let anthropic = shared.anthropic();
    anthropic.authorize_admin(&headers)?;
    let Query(query) = query.map_err(|e| bad_request(&e.body_text()))?;
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let time = |name: &str| -> Result<Option<i64>, ApiError> {
        param(name)
            .map(|raw| {
                state::parse_rfc3339(&raw)
                    .ok_or_else(|| bad_request(&format!("{name}: invalid datetime")))
            })
            .transpose()
    };
    let start = time("starting_at")?.ok_or_else(|| bad_request("starting_at: Field required"))?;
    let end = time("ending_at")?.unwrap_or_else(now);
    if param("bucket_width").as_deref().unwrap_or("1d") != "1m" {
        return Err(bad_request(
            "bucket_width: the simulator serves 1m buckets only",
        ));
    }
    let limit =
        state::parse_limit(param("limit").as_ref(), 60, 1440).map_err(|m| bad_request(&m))?;
    let wanted: Vec<&String> = query
        .iter()
        .filter(|(k, _)| k == "api_key_ids[]")
        .map(|(_, v)| v)
        .collect();
    let first = start - start.rem_euclid(BUCKET_SECS);
    let buckets: Vec<Value> = (0..)
        .map(|i| first + i * BUCKET_SECS)
        .take_while(|at| *at < end)
        .take(limit)
        .map(|at| {
            let tokens = anthropic
                .uses
                .iter()
                .filter(|(id, when)| (at..at + BUCKET_SECS).contains(when) && (wanted.is_empty() || wanted.contains(&id)))
                .count() as u64
                * 100;
            let results = if tokens == 0 { vec![] } else { vec![usage_result(tokens)] };
            json!({"starting_at": state::rfc3339(at), "ending_at": state::rfc3339(at + BUCKET_SECS), "results": results})
        })
        .collect();
    Ok(Json(
        json!({ "data": buckets, "has_more": false, "next_page": null }),
    ))
}

fn usage_result(tokens: u64) -> Value {
    json!({
        "uncached_input_tokens": tokens, "cache_read_input_tokens": 0, "output_tokens": tokens / 4,
        "cache_creation": {"ephemeral_1h_input_tokens": 0, "ephemeral_5m_input_tokens": 0},
        "server_tool_use": {"web_search_requests": 0},
        "api_key_id": null, "workspace_id": null, "model": null, "service_tier": null, "context_window": null,
    })
}

async fn get_key(
    State(shared): State<Arc<Shared>>,
    Path(api_key_id): Path<String>,
    headers: HeaderMap,
) -> Reply {
    let anthropic = shared.anthropic();
    anthropic.authorize_admin(&headers)?;
    let key = anthropic
        .key(&api_key_id)
        .ok_or_else(|| key_not_found(&api_key_id))?;
    Ok(Json(key.to_json()))
}

#[derive(Deserialize)]
struct UpdateKey {
    name: Option<String>,
    status: Option<String>,
}

async fn update_key(
    State(shared): State<Arc<Shared>>,
    Path(api_key_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Reply {
    let mut anthropic = shared.anthropic();
    anthropic.authorize_admin(&headers)?;
    let update: UpdateKey = serde_json::from_slice(&body)
        .map_err(|e| bad_request(&format!("Invalid JSON body: {e}")))?;
    let status = match update.status.as_deref() {
        None => None,
        Some(raw) => Some(Status::parse(raw).ok_or_else(|| {
            bad_request(&format!(
                "status: Input should be 'active', 'inactive' or 'archived', got '{raw}'"
            ))
        })?),
    };
    if update.name.as_deref() == Some("") {
        return Err(bad_request("name: String should have at least 1 character"));
    }

    let key = anthropic
        .keys
        .iter_mut()
        .find(|k| k.id == api_key_id)
        .ok_or_else(|| key_not_found(&api_key_id))?;
    // Archiving is one-way on the real API; it is how keyrot retires a key for good.
    if key.status == Status::Archived && status.is_some_and(|s| s != Status::Archived) {
        return Err(bad_request(
            "Cannot change the status of an archived API key.",
        ));
    }
    if let Some(name) = update.name {
        key.name = name;
    }
    if let Some(status) = status {
        key.status = status;
    }
    Ok(Json(key.to_json()))
}

fn api_key_header(headers: &HeaderMap) -> Option<&str> {
    headers.get("x-api-key")?.to_str().ok()
}

fn require_version(headers: &HeaderMap) -> Result<(), ApiError> {
    if headers.contains_key("anthropic-version") {
        Ok(())
    } else {
        Err(bad_request("anthropic-version: header is required"))
    }
}

/// `sk-ant-api03-R2D...igAA`: the first 16 and last 4 characters.
fn partial_key_hint(value: &str) -> String {
    let chars: Vec<char> = value.chars().collect();
    let head: String = chars.iter().take(16).collect();
    let tail: String = chars[chars.len().saturating_sub(4)..].iter().collect();
    format!("{head}...{tail}")
}

/// An error in Anthropic's shape: `{"type":"error","error":{"type","message"},"request_id"}` (the
/// published excerpt requires `request_id`).
pub(crate) fn error(status: StatusCode, kind: &str, message: &str) -> ApiError {
    let body = json!({ "type": "error", "error": { "type": kind, "message": message },
        "request_id": format!("req_{}", crate::state::random_alphanumeric(24)) });
    ApiError { status, body }
}

fn bad_request(message: &str) -> ApiError {
    error(StatusCode::BAD_REQUEST, "invalid_request_error", message)
}

fn invalid_api_key() -> ApiError {
    error(
        StatusCode::UNAUTHORIZED,
        "authentication_error",
        "invalid x-api-key",
    )
}

fn key_not_found(api_key_id: &str) -> ApiError {
    error(
        StatusCode::NOT_FOUND,
        "not_found_error",
        &format!("API key '{api_key_id}' not found"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_values_and_hints_have_the_documented_shapes() {
        let mut anthropic = Anthropic::new();
        let (value, id) = anthropic.create_key("ci");
        assert!(id.starts_with("apikey_"));
        let body = value
            .strip_prefix("sk-ant-api03-")
            .unwrap()
            .strip_suffix("AA")
            .unwrap();
        assert_eq!(body.len(), 86);
        let hint = partial_key_hint(&value);
        assert_eq!(
            hint,
            format!("{}...{}", &value[..16], &value[value.len() - 4..])
        );
        assert!(anthropic.key_works(&value));
        assert!(!anthropic.key_works(anthropic.admin_key()));
        assert_eq!(anthropic.key_status(&id).as_deref(), Some("active"));
        assert_eq!(anthropic.key_status("apikey_missing"), None);
    }
}
