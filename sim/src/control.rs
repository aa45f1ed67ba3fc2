//! `/_sim/*`: the JSON control API a demo uses to seed and inspect a simulator
//! running as a separate process. These routes bypass faults and the call log
//! (see `server.rs`), so driving the demo never disturbs what it shows.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::faults::Fault;
use crate::reply::{ApiError, Reply};
use crate::state::Shared;

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/_sim/state", get(snapshot))
        .route("/_sim/openai/projects", post(create_project))
        .route(
            "/_sim/openai/projects/{project_id}/user_keys",
            post(create_user_key),
        )
        .route("/_sim/anthropic/keys", post(create_anthropic_key))
        .route("/_sim/stripe/keys", post(create_stripe_key))
        .route("/_sim/stripe/keys/delete", post(delete_stripe_key))
        .route("/_sim/github/tokens", post(create_github_token))
        .route("/_sim/vercel/projects", post(create_vercel_project))
        .route(
            "/_sim/vercel/projects/{project_id}/served",
            get(vercel_served),
        )
        .route("/_sim/vercel/fail_next", post(vercel_fail_next))
        .route("/_sim/render/services", post(create_render_service))
        .route(
            "/_sim/render/services/{service_id}/served",
            get(render_served),
        )
        .route("/_sim/render/fail_next", post(render_fail_next))
        .route("/_sim/build_millis", post(set_build_millis))
        .route("/_sim/faults", post(inject_fault).delete(clear_faults))
        .route("/_sim/check", post(check_key))
        .route("/_sim/credentials", post(create_credential))
        .route("/_sim/credentials/delete", post(delete_credential))
}

async fn snapshot(State(shared): State<Arc<Shared>>) -> Json<Value> {
    Json(state(&shared))
}

pub(crate) fn state(shared: &Shared) -> Value {
    let openai = shared.openai().snapshot();
    let anthropic = shared.anthropic().snapshot();
    let vercel = shared.vercel().snapshot();
    let render = shared.render().snapshot();
    let stripe = shared.stripe().snapshot();
    let github = shared.github().snapshot();
    json!({ "openai": openai, "anthropic": anthropic, "vercel": vercel, "render": render,
        "stripe": stripe, "github": github })
}

async fn create_project(State(shared): State<Arc<Shared>>) -> Json<Value> {
    Json(json!({ "id": shared.openai().create_project() }))
}

async fn create_user_key(
    State(shared): State<Arc<Shared>>,
    Path(project_id): Path<String>,
) -> Reply {
    let (value, id) = shared
        .openai()
        .create_user_key(&project_id)
        .ok_or_else(|| error(StatusCode::NOT_FOUND, &format!("no project '{project_id}'")))?;
    Ok(Json(json!({ "value": value, "id": id })))
}

#[derive(Deserialize)]
struct NewAnthropicKey {
    name: String,
}

async fn create_anthropic_key(State(shared): State<Arc<Shared>>, body: Bytes) -> Reply {
    let request: NewAnthropicKey = parse(&body)?;
    let (value, id) = shared.anthropic().create_key(&request.name);
    Ok(Json(json!({ "value": value, "id": id })))
}

#[derive(Deserialize)]
struct NewStripeKey {
    /// The simulator's own account when absent.
    account: Option<String>,
}

async fn create_stripe_key(State(shared): State<Arc<Shared>>, body: Bytes) -> Reply {
    let request: NewStripeKey = parse(&body)?;
    let mut stripe = shared.stripe();
    let account = request
        .account
        .unwrap_or_else(|| stripe.default_account().to_owned());
    let value = stripe.create_key(&account, true);
    Ok(Json(json!({ "value": value, "account": account })))
}

#[derive(Deserialize)]
struct DeleteStripeKey {
    key: String,
}

/// A person deleting a key in the Dashboard (the revocation task of a Stripe key).
async fn delete_stripe_key(State(shared): State<Arc<Shared>>, body: Bytes) -> Reply {
    let request: DeleteStripeKey = parse(&body)?;
    let deleted = shared.stripe().delete_key(&request.key);
    Ok(Json(json!({ "deleted": deleted })))
}

#[derive(Deserialize)]
struct NewGitHubToken {
    login: String,
    /// A classic token's scopes; a fine-grained token when absent.
    scopes: Option<Vec<String>>,
}

async fn create_github_token(State(shared): State<Arc<Shared>>, body: Bytes) -> Reply {
    let request: NewGitHubToken = parse(&body)?;
    let scopes: Option<Vec<&str>> = request
        .scopes
        .as_ref()
        .map(|s| s.iter().map(String::as_str).collect());
    let value = shared
        .github()
        .create_token(&request.login, scopes.as_deref());
    Ok(Json(json!({ "value": value })))
}

#[derive(Deserialize)]
struct NewVercelProject {
    name: String,
}

async fn create_vercel_project(State(shared): State<Arc<Shared>>, body: Bytes) -> Reply {
    let request: NewVercelProject = parse(&body)?;
    if request.name.is_empty() {
        return Err(error(StatusCode::BAD_REQUEST, "name must not be empty"));
    }
    Ok(Json(
        json!({ "id": shared.vercel().create_project(&request.name) }),
    ))
}

/// `?target=production&key=K` (target defaults to production): the value the
/// demo's stand-in service runs with, or `null`.
async fn vercel_served(
    State(shared): State<Arc<Shared>>,
    Path(project_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Reply {
    let key = required_key(&query)?;
    let target = query.get("target").map_or("production", String::as_str);
    let vercel = shared.vercel();
    if !vercel.has_project(&project_id) {
        return Err(error(
            StatusCode::NOT_FOUND,
            &format!("no project '{project_id}'"),
        ));
    }
    Ok(Json(
        json!({ "value": vercel.served_value(&project_id, target, key) }),
    ))
}

async fn create_render_service(State(shared): State<Arc<Shared>>) -> Json<Value> {
    Json(json!({ "id": shared.render().create_service() }))
}

async fn render_served(
    State(shared): State<Arc<Shared>>,
    Path(service_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Reply {
    let key = required_key(&query)?;
    let render = shared.render();
    if !render.has_service(&service_id) {
        return Err(error(
            StatusCode::NOT_FOUND,
            &format!("no service '{service_id}'"),
        ));
    }
    Ok(Json(
        json!({ "value": render.served_value(&service_id, key) }),
    ))
}

fn required_key(query: &HashMap<String, String>) -> Result<&str, ApiError> {
    query.get("key").map(String::as_str).ok_or_else(|| {
        error(
            StatusCode::BAD_REQUEST,
            "the 'key' query parameter is required",
        )
    })
}

#[derive(Deserialize)]
struct FailNext {
    n: u32,
}

async fn vercel_fail_next(
    State(shared): State<Arc<Shared>>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let request: FailNext = parse(&body)?;
    shared.vercel().builds().fail_next(request.n);
    Ok(StatusCode::NO_CONTENT)
}

async fn render_fail_next(
    State(shared): State<Arc<Shared>>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let request: FailNext = parse(&body)?;
    shared.render().builds().fail_next(request.n);
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct BuildMillis {
    millis: u64,
}

/// One build time for both platforms: the demo wants them alike.
async fn set_build_millis(
    State(shared): State<Arc<Shared>>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let request: BuildMillis = parse(&body)?;
    shared.vercel().builds().set_build_millis(request.millis);
    shared.render().builds().set_build_millis(request.millis);
    Ok(StatusCode::NO_CONTENT)
}

async fn inject_fault(
    State(shared): State<Arc<Shared>>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let fault: Fault = parse(&body)?;
    shared.faults().inject(fault);
    Ok(StatusCode::NO_CONTENT)
}

async fn clear_faults(State(shared): State<Arc<Shared>>) -> StatusCode {
    shared.faults().clear();
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum Provider {
    Openai,
    Anthropic,
    Stripe,
    Github,
    #[serde(rename = "openai-admin")]
    OpenaiAdmin,
    #[serde(rename = "anthropic-admin")]
    AnthropicAdmin,
    #[serde(rename = "vercel-token")]
    VercelToken,
    #[serde(rename = "render-token")]
    RenderToken,
}

#[derive(Deserialize)]
struct CheckKey {
    provider: Provider,
    key: String,
}

async fn check_key(State(shared): State<Arc<Shared>>, body: Bytes) -> Reply {
    let request: CheckKey = parse(&body)?;
    let works = match request.provider {
        Provider::Openai => shared.openai().key_works(&request.key),
        Provider::Anthropic => shared.anthropic().key_works(&request.key),
        Provider::Stripe => shared.stripe().key_works(&request.key),
        Provider::Github => shared.github().token_works(&request.key),
        Provider::OpenaiAdmin => shared.openai().admin_keys().works(&request.key),
        Provider::AnthropicAdmin => shared.anthropic().admin_keys_mut().works(&request.key),
        Provider::VercelToken => shared.vercel().tokens_mut().works(&request.key),
        Provider::RenderToken => shared.render().tokens_mut().works(&request.key),
    };
    Ok(Json(json!({ "works": works })))
}

/// The admin credentials of one platform, as a person manages them in its console.
#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
pub enum CredentialSystem {
    Openai,
    Anthropic,
    Vercel,
    Render,
}

pub(crate) fn with_credentials<T>(
    shared: &Shared,
    system: CredentialSystem,
    act: impl FnOnce(&mut crate::credentials::Credentials) -> T,
) -> T {
    match system {
        CredentialSystem::Openai => act(shared.openai().admin_keys_mut()),
        CredentialSystem::Anthropic => act(shared.anthropic().admin_keys_mut()),
        CredentialSystem::Vercel => act(shared.vercel().tokens_mut()),
        CredentialSystem::Render => act(shared.render().tokens_mut()),
    }
}

#[derive(Deserialize)]
struct NewCredential {
    system: CredentialSystem,
    name: Option<String>,
}

/// A credential a person creates in the platform's console: `{"value", "id"}`.
async fn create_credential(State(shared): State<Arc<Shared>>, body: Bytes) -> Reply {
    let request: NewCredential = parse(&body)?;
    let name = request
        .name
        .unwrap_or_else(|| "Created in the console".to_owned());
    let (value, id) = with_credentials(&shared, request.system, |all| {
        let created = all.create(&name, None);
        (created.value.clone(), created.id.clone())
    });
    Ok(Json(json!({ "value": value, "id": id })))
}

#[derive(Deserialize)]
struct GoneCredential {
    system: CredentialSystem,
    key: String,
}

/// A credential a person deletes in the console: `{"deleted": bool}`.
async fn delete_credential(State(shared): State<Arc<Shared>>, body: Bytes) -> Reply {
    let request: GoneCredential = parse(&body)?;
    let deleted = with_credentials(&shared, request.system, |all| all.delete(&request.key));
    Ok(Json(json!({ "deleted": deleted })))
}

/// Parses a JSON body ourselves (instead of axum's `Json` extractor) so a bad
/// body gets a JSON error rather than a plain-text one.
fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| error(StatusCode::BAD_REQUEST, &format!("invalid body: {e}")))
}

fn error(status: StatusCode, message: &str) -> ApiError {
    ApiError {
        status,
        body: json!({ "error": message }),
    }
}
