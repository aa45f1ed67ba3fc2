//! The OpenAI side: project service accounts (each owning one key), keys
//! people made by hand, the admin API that manages them, and `/v1/models`
//! as the "does this key work" probe.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::{delete, get};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::ServiceAccountInfo;
use crate::credentials::{Credential, Credentials};
use crate::reply::{ApiError, Reply};
use crate::state::{self, Shared, new_id, now, random_alphanumeric};

/// Fixed creation time of the person who owns hand-made keys.
const USER_CREATED_AT: i64 = 1_700_000_000;
const LIST_DEFAULT_LIMIT: usize = 20;
const LIST_MAX_LIMIT: usize = 100;

pub(crate) struct OpenAi {
    /// The organisation's admin keys: the first made by hand, the others through the admin API.
    admin_keys: Credentials,
    projects: Vec<Project>,
    /// Every key ever issued; revoked ones stay (flagged) so `/_sim/state`
    /// can show a user key as revoked rather than forget it.
    keys: Vec<ApiKey>,
}

struct Project {
    id: String,
    /// Creation order; deleted accounts stay (flagged) so a pagination cursor
    /// naming one still has a position.
    service_accounts: Vec<ServiceAccount>,
}

struct ServiceAccount {
    id: String,
    name: String,
    created_at: i64,
    api_key_id: Option<String>,
    deleted: bool,
}

struct ApiKey {
    id: String,
    value: String,
    name: String,
    project_id: String,
    created_at: i64,
    last_used_at: Option<i64>,
    owner: Owner,
    revoked: bool,
}

enum Owner {
    User,
    ServiceAccount(String),
}

impl OpenAi {
    pub(crate) fn new() -> Self {
        Self {
            admin_keys: Credentials::new("key_", || {
                format!("sk-admin-{}", random_alphanumeric(64))
            }),
            projects: Vec::new(),
            keys: Vec::new(),
        }
    }

    pub(crate) fn admin_key(&self) -> &str {
        self.admin_keys.primary()
    }

    pub(crate) fn admin_keys(&self) -> &Credentials {
        &self.admin_keys
    }

    pub(crate) fn admin_keys_mut(&mut self) -> &mut Credentials {
        &mut self.admin_keys
    }

    pub(crate) fn create_project(&mut self) -> String {
        let id = new_id("proj_");
        self.projects.push(Project {
            id: id.clone(),
            service_accounts: Vec::new(),
        });
        id
    }

    /// Makes sure a project with exactly this id exists (tests may pick their own ids).
    pub(crate) fn ensure_project(&mut self, project_id: &str) {
        if self.project(project_id).is_none() {
            self.projects.push(Project {
                id: project_id.to_owned(),
                service_accounts: Vec::new(),
            });
        }
    }

    /// A key a person made in the dashboard. `None` if the project is unknown.
    pub(crate) fn create_user_key(&mut self, project_id: &str) -> Option<(String, String)> {
        self.project(project_id)?;
        let key = self.issue_key(project_id, "Personal key", Owner::User);
        Some((key.value.clone(), key.id.clone()))
    }

    /// Would `GET /v1/models` succeed with this key? Does not touch `last_used_at`.
    pub(crate) fn key_works(&self, value: &str) -> bool {
        self.live_key_by_value(value).is_some()
    }

    pub(crate) fn service_accounts(&self, project_id: &str) -> Vec<ServiceAccountInfo> {
        self.project(project_id)
            .map(|p| {
                p.live_service_accounts()
                    .map(|sa| ServiceAccountInfo {
                        id: sa.id.clone(),
                        name: sa.name.clone(),
                        created_at: sa.created_at,
                        api_key_id: sa.api_key_id.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    pub(crate) fn set_created_at(&mut self, service_account_id: &str, unix_secs: i64) {
        let account = self
            .projects
            .iter_mut()
            .flat_map(|p| p.service_accounts.iter_mut())
            .find(|sa| sa.id == service_account_id);
        if let Some(account) = account {
            account.created_at = unix_secs;
        }
    }

    pub(crate) fn last_used_at(&self, api_key_id: &str) -> Option<i64> {
        self.keys.iter().find(|k| k.id == api_key_id)?.last_used_at
    }

    /// The `/_sim/state` view: ids and names, never key values.
    pub(crate) fn snapshot(&self) -> Value {
        let projects: Vec<Value> = self
            .projects
            .iter()
            .map(|p| {
                let accounts: Vec<Value> = p
                    .live_service_accounts()
                    .map(|sa| {
                        json!({
                            "id": sa.id,
                            "name": sa.name,
                            "created_at": sa.created_at,
                            "api_key_id": sa.api_key_id,
                        })
                    })
                    .collect();
                let user_keys: Vec<Value> = self
                    .keys
                    .iter()
                    .filter(|k| k.project_id == p.id && matches!(k.owner, Owner::User))
                    .map(|k| json!({ "id": k.id, "revoked": k.revoked }))
                    .collect();
                json!({ "id": p.id, "service_accounts": accounts, "user_keys": user_keys })
            })
            .collect();
        json!({ "admin_key": self.admin_key(), "admin_keys": self.admin_keys.snapshot(), "projects": projects })
    }

    fn project(&self, project_id: &str) -> Option<&Project> {
        self.projects.iter().find(|p| p.id == project_id)
    }

    fn project_mut(&mut self, project_id: &str) -> Option<&mut Project> {
        self.projects.iter_mut().find(|p| p.id == project_id)
    }

    fn live_key_by_value(&self, value: &str) -> Option<&ApiKey> {
        self.keys.iter().find(|k| !k.revoked && k.value == value)
    }

    fn issue_key(&mut self, project_id: &str, name: &str, owner: Owner) -> &ApiKey {
        let value = match owner {
            Owner::User => format!("sk-proj-{}", random_alphanumeric(48)),
            Owner::ServiceAccount(_) => format!("sk-svcacct-{}", random_alphanumeric(64)),
        };
        self.keys.push(ApiKey {
            id: new_id("key_"),
            value,
            name: name.to_owned(),
            project_id: project_id.to_owned(),
            created_at: now(),
            last_used_at: None,
            owner,
            revoked: false,
        });
        &self.keys[self.keys.len() - 1]
    }

    fn authorize_admin(&mut self, headers: &HeaderMap) -> Result<(), ApiError> {
        if self.admin_keys.authorize(bearer(headers)) {
            Ok(())
        } else {
            Err(error(
                StatusCode::UNAUTHORIZED,
                "Invalid admin key",
                "invalid_request_error",
                None,
                Some("invalid_api_key"),
            ))
        }
    }

    /// Admin check, then project lookup: the order the real API reports them in.
    fn admin_project_mut(
        &mut self,
        headers: &HeaderMap,
        project_id: &str,
    ) -> Result<&mut Project, ApiError> {
        self.authorize_admin(headers)?;
        self.project_mut(project_id).ok_or_else(project_not_found)
    }
}

impl Project {
    fn live_service_accounts(&self) -> impl Iterator<Item = &ServiceAccount> {
        self.service_accounts.iter().filter(|sa| !sa.deleted)
    }
}

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route(
            "/v1/organization/projects/{project_id}/service_accounts",
            get(list_service_accounts).post(create_service_account),
        )
        .route(
            "/v1/organization/projects/{project_id}/service_accounts/{service_account_id}",
            delete(delete_service_account),
        )
        .route(
            "/v1/organization/projects/{project_id}/api_keys/{api_key_id}",
            get(get_api_key).delete(delete_api_key),
        )
        .route(
            "/v1/organization/admin_api_keys",
            get(list_admin_keys).post(create_admin_key),
        )
        .route(
            "/v1/organization/admin_api_keys/{key_id}",
            get(get_admin_key).delete(delete_admin_key),
        )
}

fn admin_key_json(key: &Credential) -> Value {
    json!({
        "object": "organization.admin_api_key",
        "id": key.id,
        "name": key.name,
        "redacted_value": redacted_value(&key.value),
        "created_at": key.created_at,
        "expires_at": key.expires_at,
        "last_used_at": key.last_used_at,
        "owner": {
            "type": "user",
            "object": "organization.user",
            "id": "user_owner",
            "name": "Owner",
            "created_at": USER_CREATED_AT,
            "role": "owner",
        },
    })
}

#[derive(Deserialize)]
struct CreateAdminKey {
    name: Option<String>,
    expires_in_seconds: Option<i64>,
}

/// `POST /organization/admin_api_keys`: a new admin key, its value shown once.
async fn create_admin_key(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Reply {
    let mut openai = shared.openai();
    openai.authorize_admin(&headers)?;
    let request: CreateAdminKey = serde_json::from_slice(&body)
        .map_err(|e| bad_request(&format!("Invalid JSON body: {e}"), None))?;
    let Some(name) = request.name.filter(|n| !n.is_empty()) else {
        return Err(bad_request(
            "Missing required parameter: 'name'.",
            Some("name"),
        ));
    };
    if let Some(secs) = request.expires_in_seconds
        && !(1..=31_536_000).contains(&secs)
    {
        return Err(bad_request(
            "expires_in_seconds must be between 1 and 31536000.",
            Some("expires_in_seconds"),
        ));
    }
    let key = openai.admin_keys.create(&name, request.expires_in_seconds);
    let mut answer = admin_key_json(key);
    answer["value"] = Value::String(key.value.clone());
    Ok(Json(answer))
}

#[derive(Deserialize)]
struct AdminKeyPage {
    after: Option<String>,
    limit: Option<String>,
}

/// `GET /organization/admin_api_keys`, oldest first, paged by `after`.
async fn list_admin_keys(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    query: Result<Query<AdminKeyPage>, QueryRejection>,
) -> Reply {
    let mut openai = shared.openai();
    openai.authorize_admin(&headers)?;
    let Query(page) = query.map_err(|e| bad_request(&e.body_text(), None))?;
    let limit = page
        .limit
        .as_deref()
        .map_or(Ok(LIST_DEFAULT_LIMIT), str::parse::<usize>)
        .ok()
        .filter(|n| (1..=LIST_MAX_LIMIT).contains(n))
        .ok_or_else(|| bad_request("limit must be between 1 and 100.", Some("limit")))?;
    let live: Vec<&Credential> = openai.admin_keys.live().collect();
    let start = page
        .after
        .as_deref()
        .and_then(|after| live.iter().position(|k| k.id == after))
        .map_or(0, |i| i + 1);
    let data: Vec<Value> = live
        .iter()
        .skip(start)
        .take(limit)
        .map(|k| admin_key_json(k))
        .collect();
    let has_more = start + data.len() < live.len();
    Ok(Json(json!({
        "object": "list",
        "first_id": data.first().map(|k| k["id"].clone()),
        "last_id": data.last().map(|k| k["id"].clone()),
        "has_more": has_more,
        "data": data,
    })))
}

async fn get_admin_key(
    State(shared): State<Arc<Shared>>,
    Path(key_id): Path<String>,
    headers: HeaderMap,
) -> Reply {
    let mut openai = shared.openai();
    openai.authorize_admin(&headers)?;
    match openai.admin_keys.by_id(&key_id) {
        Some(key) => Ok(Json(admin_key_json(key))),
        None => Err(admin_key_not_found(&key_id)),
    }
}

async fn delete_admin_key(
    State(shared): State<Arc<Shared>>,
    Path(key_id): Path<String>,
    headers: HeaderMap,
) -> Reply {
    let mut openai = shared.openai();
    openai.authorize_admin(&headers)?;
    if openai.admin_keys.by_id(&key_id).is_none() {
        return Err(admin_key_not_found(&key_id));
    }
    openai.admin_keys.delete(&key_id);
    Ok(Json(json!({
        "id": key_id,
        "object": "organization.admin_api_key.deleted",
        "deleted": true,
    })))
}

fn admin_key_not_found(key_id: &str) -> ApiError {
    error(
        StatusCode::NOT_FOUND,
        &format!("No admin API key found with id '{key_id}'."),
        "invalid_request_error",
        None,
        None,
    )
}

/// `GET /v1/models` with bearer auth; a success is what marks a key as used.
pub(crate) fn models(shared: &Shared, headers: &HeaderMap) -> Reply {
    let Some(presented) = bearer(headers) else {
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "You didn't provide an API key. You need to provide your API key in an Authorization \
             header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY). You can obtain an API \
             key from https://platform.openai.com/account/api-keys.",
            "invalid_request_error",
            None,
            None,
        ));
    };
    let mut openai = shared.openai();
    let key = openai
        .keys
        .iter_mut()
        .find(|k| !k.revoked && k.value == presented);
    match key {
        Some(key) => {
            key.last_used_at = Some(now());
            Ok(Json(json!({
                "object": "list",
                "data": [{
                    "id": "gpt-4o-mini",
                    "object": "model",
                    "created": 1_700_000_000,
                    "owned_by": "system",
                }],
            })))
        }
        None => Err(error(
            StatusCode::UNAUTHORIZED,
            &format!(
                "Incorrect API key provided: {}. You can find your API key at \
                 https://platform.openai.com/account/api-keys.",
                redact(presented)
            ),
            "invalid_request_error",
            None,
            Some("invalid_api_key"),
        )),
    }
}

#[derive(Deserialize)]
struct CreateServiceAccount {
    name: Option<String>,
}

async fn create_service_account(
    State(shared): State<Arc<Shared>>,
    Path(project_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Reply {
    let mut openai = shared.openai();
    openai.admin_project_mut(&headers, &project_id)?;
    let request: CreateServiceAccount = serde_json::from_slice(&body)
        .map_err(|e| bad_request(&format!("Invalid JSON body: {e}"), None))?;
    let name = request.name.filter(|n| !n.is_empty()).ok_or_else(|| {
        error(
            StatusCode::BAD_REQUEST,
            "Missing required parameter: 'name'.",
            "invalid_request_error",
            Some("name"),
            Some("missing_required_parameter"),
        )
    })?;

    let account_id = new_id("svc_acct_");
    let key = openai.issue_key(
        &project_id,
        "Secret Key",
        Owner::ServiceAccount(account_id.clone()),
    );
    let (key_id, key_value, created_at) = (key.id.clone(), key.value.clone(), key.created_at);
    let project = openai
        .project_mut(&project_id)
        .ok_or_else(project_not_found)?;
    project.service_accounts.push(ServiceAccount {
        id: account_id.clone(),
        name: name.clone(),
        created_at,
        api_key_id: Some(key_id.clone()),
        deleted: false,
    });
    Ok(Json(json!({
        "object": "organization.project.service_account",
        "id": account_id,
        "name": name,
        "role": "member",
        "created_at": created_at,
        "api_key": {
            "object": "organization.project.service_account.api_key",
            "value": key_value,
            "name": "Secret Key",
            "created_at": created_at,
            "id": key_id,
        },
    })))
}

async fn list_service_accounts(
    State(shared): State<Arc<Shared>>,
    Path(project_id): Path<String>,
    headers: HeaderMap,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Reply {
    let mut openai = shared.openai();
    let project = openai.admin_project_mut(&headers, &project_id)?;
    let Query(query) = query.map_err(|e| bad_request(&e.body_text(), None))?;
    let limit = state::parse_limit(query.get("limit"), LIST_DEFAULT_LIMIT, LIST_MAX_LIMIT)
        .map_err(|message| bad_request(&message, Some("limit")))?;
    let after = query.get("after").map(String::as_str);
    let start = state::start_after(&project.service_accounts, after, |sa| &sa.id)
        .ok_or_else(|| bad_request("Invalid 'after': no such service account.", Some("after")))?;
    let mut remaining = project.service_accounts[start..]
        .iter()
        .filter(|sa| !sa.deleted);
    let page: Vec<Value> = remaining
        .by_ref()
        .take(limit)
        .map(|sa| {
            json!({
                "object": "organization.project.service_account",
                "id": sa.id,
                "name": sa.name,
                "role": "member",
                "created_at": sa.created_at,
            })
        })
        .collect();
    let has_more = remaining.next().is_some();
    Ok(Json(json!({
        "object": "list",
        "first_id": page.first().map(|sa| sa["id"].clone()),
        "last_id": page.last().map(|sa| sa["id"].clone()),
        "data": page,
        "has_more": has_more,
    })))
}

async fn delete_service_account(
    State(shared): State<Arc<Shared>>,
    Path((project_id, account_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Reply {
    let mut openai = shared.openai();
    let project = openai.admin_project_mut(&headers, &project_id)?;
    let account = project
        .service_accounts
        .iter_mut()
        .find(|sa| sa.id == account_id && !sa.deleted)
        .ok_or_else(|| {
            not_found(&format!(
                "Service account with ID '{account_id}' not found."
            ))
        })?;
    account.deleted = true;
    // Deleting the account is the only way to kill its key, as on the real API.
    if let Some(key_id) = account.api_key_id.clone() {
        openai
            .keys
            .iter_mut()
            .filter(|k| k.id == key_id)
            .for_each(|k| k.revoked = true);
    }
    Ok(Json(json!({
        "object": "organization.project.service_account.deleted",
        "id": account_id,
        "deleted": true,
    })))
}

async fn get_api_key(
    State(shared): State<Arc<Shared>>,
    Path((project_id, key_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Reply {
    let mut openai = shared.openai();
    openai.admin_project_mut(&headers, &project_id)?;
    let openai = &*openai;
    let key = live_key_in_project(openai, &project_id, &key_id)?;
    let owner = match &key.owner {
        Owner::User => json!({
            "type": "user",
            "user": {
                "id": "user_abc",
                "email": "person@example.com",
                "name": "A Person",
                "created_at": USER_CREATED_AT,
                "role": "owner",
            },
        }),
        Owner::ServiceAccount(account_id) => {
            let account = openai
                .project(&project_id)
                .and_then(|p| p.service_accounts.iter().find(|sa| &sa.id == account_id));
            json!({
                "type": "service_account",
                "service_account": {
                    "id": account_id,
                    "name": account.map(|sa| sa.name.as_str()),
                    "created_at": account.map(|sa| sa.created_at),
                    "role": "member",
                },
            })
        }
    };
    Ok(Json(json!({
        "object": "organization.project.api_key",
        "redacted_value": redacted_value(&key.value),
        "name": key.name,
        "created_at": key.created_at,
        "last_used_at": key.last_used_at,
        "id": key.id,
        "owner_project_access": "active",
        "owner": owner,
    })))
}

async fn delete_api_key(
    State(shared): State<Arc<Shared>>,
    Path((project_id, key_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Reply {
    let mut openai = shared.openai();
    openai.admin_project_mut(&headers, &project_id)?;
    if let Owner::ServiceAccount(_) = live_key_in_project(&openai, &project_id, &key_id)?.owner {
        return Err(bad_request(
            "Cannot delete a service account's API key; delete the service account",
            None,
        ));
    }
    openai
        .keys
        .iter_mut()
        .filter(|k| k.id == key_id)
        .for_each(|k| k.revoked = true);
    Ok(Json(json!({
        "object": "organization.project.api_key.deleted",
        "id": key_id,
        "deleted": true,
    })))
}

fn live_key_in_project<'a>(
    openai: &'a OpenAi,
    project_id: &str,
    key_id: &str,
) -> Result<&'a ApiKey, ApiError> {
    openai
        .keys
        .iter()
        .find(|k| k.id == key_id && k.project_id == project_id && !k.revoked)
        .ok_or_else(|| not_found(&format!("API key with ID '{key_id}' not found.")))
}

/// The token of an `Authorization: Bearer <token>` header, if there is one.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// How the 401 message echoes a wrong key: enough to recognise it, not to use it.
fn redact(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    if chars.len() < 8 {
        return "*****".to_owned();
    }
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}*****{tail}")
}

fn redacted_value(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    let tail: String = chars[chars.len().saturating_sub(4)..].iter().collect();
    format!("sk-...{tail}")
}

/// An error in OpenAI's shape: `{"error":{"message","type","param","code"}}`.
pub(crate) fn error(
    status: StatusCode,
    message: &str,
    kind: &str,
    param: Option<&str>,
    code: Option<&str>,
) -> ApiError {
    let body = json!({
        "error": { "message": message, "type": kind, "param": param, "code": code },
    });
    ApiError { status, body }
}

fn bad_request(message: &str, param: Option<&str>) -> ApiError {
    error(
        StatusCode::BAD_REQUEST,
        message,
        "invalid_request_error",
        param,
        None,
    )
}

fn not_found(message: &str) -> ApiError {
    error(
        StatusCode::NOT_FOUND,
        message,
        "invalid_request_error",
        None,
        None,
    )
}

fn project_not_found() -> ApiError {
    not_found("Project not found")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_keeps_three_leading_and_four_trailing_characters() {
        assert_eq!(redact("sk-proj-abcdefgh1234"), "sk-*****1234");
        assert_eq!(redact("short"), "*****");
        assert_eq!(redacted_value("sk-proj-abcdefgh1234"), "sk-...1234");
    }

    #[test]
    fn bearer_token_is_extracted_case_insensitively() {
        let mut headers = HeaderMap::new();
        assert_eq!(bearer(&headers), None);
        headers.insert(header::AUTHORIZATION, "bearer sk-abc".parse().unwrap());
        assert_eq!(bearer(&headers), Some("sk-abc"));
        headers.insert(header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(bearer(&headers), None);
    }

    #[test]
    fn key_values_have_the_documented_shapes() {
        let mut openai = OpenAi::new();
        let project = openai.create_project();
        assert!(project.starts_with("proj_"));
        let (value, id) = openai.create_user_key(&project).unwrap();
        assert!(id.starts_with("key_"));
        let body = value.strip_prefix("sk-proj-").unwrap();
        assert_eq!(body.len(), 48);
        assert!(body.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert!(openai.key_works(&value));
        assert!(!openai.key_works(openai.admin_key()));
        assert!(openai.create_user_key("proj_missing").is_none());
    }
}
