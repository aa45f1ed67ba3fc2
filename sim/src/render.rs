//! The Render side: services with environment variables, and deploys that
//! each snapshot the variables when they are created. A new deploy goes
//! `build_in_progress` → `live` (the previous live deploy becomes
//! `deactivated`) or → `build_failed`; the service serves the snapshot of its
//! live deploy. Shapes follow Render's public API (its OpenAPI spec, read by
//! the tests through `KEYROT_SPECS_DIR` when it is there).

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::builds::{Build, BuildPlan};
use crate::credentials::Credentials;
use crate::openai::bearer;
use crate::reply::{ApiError, Reply};

/// The one workspace every simulated Render token belongs to.
const OWNER_ID: &str = "tea-keyrotsim0000000000";
use crate::state::{
    Shared, fingerprint, now_millis, random_alphanumeric, random_lowercase, rfc3339_millis,
};

pub(crate) struct Render {
    tokens: Credentials,
    builds: BuildPlan,
    services: Vec<Service>,
}

struct Service {
    id: String,
    /// (key, value) in the order keys were first set.
    env: Vec<(String, String)>,
    /// Creation order.
    deploys: Vec<Deploy>,
}

struct Deploy {
    id: String,
    status: Status,
    trigger: &'static str,
    created_at: i64,
    updated_at: i64,
    finished_at: Option<i64>,
    /// While `build_in_progress`: when it ends and how.
    build: Option<Build>,
    /// The variables it was built with.
    env: Vec<(String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    BuildInProgress,
    Live,
    Deactivated,
    BuildFailed,
    Canceled,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Self::BuildInProgress => "build_in_progress",
            Self::Live => "live",
            Self::Deactivated => "deactivated",
            Self::BuildFailed => "build_failed",
            Self::Canceled => "canceled",
        }
    }
}

impl Render {
    pub(crate) fn new() -> Self {
        Self {
            tokens: Credentials::new("rndkey-", || format!("rnd_{}", random_alphanumeric(32))),
            builds: BuildPlan::new(),
            services: Vec::new(),
        }
    }

    pub(crate) fn token(&self) -> &str {
        self.tokens.primary()
    }

    pub(crate) fn tokens_mut(&mut self) -> &mut Credentials {
        &mut self.tokens
    }

    pub(crate) fn builds(&mut self) -> &mut BuildPlan {
        &mut self.builds
    }

    /// A service with an empty env and one live deploy of it.
    pub(crate) fn create_service(&mut self) -> String {
        let id = format!("srv-{}", random_lowercase(20));
        let now = now_millis();
        self.services.push(Service {
            id: id.clone(),
            env: Vec::new(),
            deploys: vec![Deploy {
                id: new_deploy_id(),
                status: Status::Live,
                trigger: "new_commit",
                created_at: now,
                updated_at: now,
                finished_at: Some(now),
                build: None,
                env: Vec::new(),
            }],
        });
        id
    }

    /// Ends the builds whose time has come, in the order they finish, so a
    /// deploy going live deactivates exactly the deploy that was live before it.
    pub(crate) fn settle(&mut self) {
        let now = Instant::now();
        for service in &mut self.services {
            loop {
                let next = service
                    .deploys
                    .iter()
                    .enumerate()
                    .filter_map(|(i, d)| d.build.map(|b| (i, b)))
                    .filter(|(_, b)| b.is_finished(now))
                    .min_by_key(|(_, b)| b.finishes_at);
                let Some((index, build)) = next else {
                    break;
                };
                service.finish(index, build);
            }
        }
    }

    pub(crate) fn cancel(&mut self, service_id: &str, deploy_id: &str) -> bool {
        let Some(deploy) = self
            .service_mut(service_id)
            .and_then(|s| s.deploys.iter_mut().find(|d| d.id == deploy_id))
        else {
            return false;
        };
        if deploy.status != Status::BuildInProgress {
            return false;
        }
        let now = now_millis();
        deploy.build = None;
        deploy.status = Status::Canceled;
        deploy.finished_at = Some(now);
        deploy.updated_at = now;
        true
    }

    pub(crate) fn has_service(&self, service_id: &str) -> bool {
        self.service(service_id).is_some()
    }

    pub(crate) fn env_value(&self, service_id: &str, key: &str) -> Option<String> {
        lookup(&self.service(service_id)?.env, key).map(str::to_owned)
    }

    pub(crate) fn served_value(&self, service_id: &str, key: &str) -> Option<String> {
        let live = self
            .service(service_id)?
            .deploys
            .iter()
            .find(|d| d.status == Status::Live)?;
        lookup(&live.env, key).map(str::to_owned)
    }

    pub(crate) fn deploys(&self, service_id: &str) -> Vec<(String, String)> {
        self.service(service_id)
            .map(|s| {
                s.deploys
                    .iter()
                    .map(|d| (d.id.clone(), d.status.as_str().to_owned()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The `/_sim/state` view: fingerprints, never values.
    pub(crate) fn snapshot(&self) -> Value {
        let fingerprints = |env: &[(String, String)]| -> Vec<Value> {
            env.iter()
                .map(|(key, value)| json!({ "key": key, "fingerprint": fingerprint(value) }))
                .collect()
        };
        let services: Vec<Value> = self
            .services
            .iter()
            .map(|s| {
                let deploys: Vec<Value> = s
                    .deploys
                    .iter()
                    .map(|d| {
                        json!({
                            "id": d.id,
                            "status": d.status.as_str(),
                            "env": fingerprints(&d.env),
                        })
                    })
                    .collect();
                json!({ "id": s.id, "env": fingerprints(&s.env), "deploys": deploys })
            })
            .collect();
        json!({ "token": self.token(), "tokens": self.tokens.snapshot(), "services": services })
    }

    fn service(&self, service_id: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.id == service_id)
    }

    fn service_mut(&mut self, service_id: &str) -> Option<&mut Service> {
        self.services.iter_mut().find(|s| s.id == service_id)
    }

    fn authorize(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        if self.tokens.works(bearer(headers).unwrap_or_default()) {
            Ok(())
        } else {
            Err(error(StatusCode::UNAUTHORIZED, "unauthorized"))
        }
    }

    /// Auth, then the service: the order Render reports them in.
    fn authorized_service_mut(
        &mut self,
        headers: &HeaderMap,
        service_id: &str,
    ) -> Result<&mut Service, ApiError> {
        self.authorize(headers)?;
        self.service_mut(service_id).ok_or_else(service_not_found)
    }
}

impl Service {
    fn finish(&mut self, index: usize, build: Build) {
        let at = build.finishes_at_millis;
        // A deploy that finishes after a newer one already went live is superseded.
        let newer_live = self.deploys[index + 1..]
            .iter()
            .any(|d| d.status == Status::Live);
        let status = match (build.fails, newer_live) {
            (true, _) => Status::BuildFailed,
            (false, true) => Status::Deactivated,
            (false, false) => {
                for older in self.deploys.iter_mut().filter(|d| d.status == Status::Live) {
                    older.status = Status::Deactivated;
                    older.updated_at = at;
                }
                Status::Live
            }
        };
        let deploy = &mut self.deploys[index];
        deploy.build = None;
        deploy.status = status;
        deploy.finished_at = Some(at);
        deploy.updated_at = at;
    }
}

impl Deploy {
    /// A deploy as Render's spec has it: `finishedAt` is a string, so an unfinished deploy has none.
    fn to_json(&self) -> Value {
        let mut json = json!({
            "id": self.id,
            "status": self.status.as_str(),
            "trigger": self.trigger,
            "createdAt": rfc3339_millis(self.created_at),
            "updatedAt": rfc3339_millis(self.updated_at),
            "startedAt": rfc3339_millis(self.created_at),
        });
        if let Some(at) = self.finished_at {
            json["finishedAt"] = json!(rfc3339_millis(at));
        }
        json
    }
}

fn lookup<'a>(env: &'a [(String, String)], key: &str) -> Option<&'a str> {
    env.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn new_deploy_id() -> String {
    format!("dep-{}", random_lowercase(20))
}

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route(
            "/v1/services/{service_id}/env-vars/{key}",
            get(get_env_var).put(put_env_var),
        )
        .route("/v1/services/{service_id}/deploys", post(create_deploy))
        .route("/v1/owners", get(owners))
        .route(
            "/v1/services/{service_id}/deploys/{deploy_id}",
            get(get_deploy),
        )
}

async fn get_env_var(
    State(shared): State<Arc<Shared>>,
    Path((service_id, key)): Path<(String, String)>,
    headers: HeaderMap,
) -> Reply {
    let mut render = shared.render();
    let service = render.authorized_service_mut(&headers, &service_id)?;
    let value = lookup(&service.env, &key)
        .ok_or_else(|| error(StatusCode::NOT_FOUND, "env var not found"))?;
    Ok(Json(json!({ "key": key, "value": value })))
}

async fn put_env_var(
    State(shared): State<Arc<Shared>>,
    Path((service_id, key)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Reply {
    let mut render = shared.render();
    let service = render.authorized_service_mut(&headers, &service_id)?;
    let body: Value = serde_json::from_slice(&body)
        .map_err(|e| error(StatusCode::BAD_REQUEST, &format!("invalid JSON body: {e}")))?;
    let value = body
        .get("value")
        .and_then(Value::as_str)
        .ok_or_else(|| error(StatusCode::BAD_REQUEST, "value: must be a string"))?
        .to_owned();
    match service.env.iter_mut().find(|(k, _)| *k == key) {
        Some((_, existing)) => *existing = value.clone(),
        None => service.env.push((key.clone(), value.clone())),
    }
    Ok(Json(json!({ "key": key, "value": value })))
}

async fn create_deploy(
    State(shared): State<Arc<Shared>>,
    Path(service_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let mut render = shared.render();
    render.authorized_service_mut(&headers, &service_id)?;
    check_deploy_body(&body)?;
    let created = now_millis();
    let build = render.builds.start(created);
    let service = render
        .service_mut(&service_id)
        .ok_or_else(service_not_found)?;
    let deploy = Deploy {
        id: new_deploy_id(),
        status: Status::BuildInProgress,
        trigger: "api",
        created_at: created,
        updated_at: created,
        finished_at: None,
        build: Some(build),
        env: service.env.clone(),
    };
    let json = deploy.to_json();
    service.deploys.push(deploy);
    Ok((StatusCode::CREATED, Json(json)))
}

/// Absent, `{}`, or `{"clearCache": "clear" | "do_not_clear"}`; other fields
/// (`commitId`, `imageUrl`) pick what to build, which has no meaning here.
fn check_deploy_body(body: &[u8]) -> Result<(), ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    let body: Value = serde_json::from_slice(body)
        .map_err(|e| error(StatusCode::BAD_REQUEST, &format!("invalid JSON body: {e}")))?;
    let Value::Object(fields) = body else {
        return Err(error(StatusCode::BAD_REQUEST, "body: must be an object"));
    };
    match fields.get("clearCache") {
        None => Ok(()),
        Some(Value::String(mode)) if mode == "clear" || mode == "do_not_clear" => Ok(()),
        Some(_) => Err(error(
            StatusCode::BAD_REQUEST,
            "clearCache: must be one of clear, do_not_clear",
        )),
    }
}

async fn get_deploy(
    State(shared): State<Arc<Shared>>,
    Path((service_id, deploy_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Reply {
    let mut render = shared.render();
    let service = render.authorized_service_mut(&headers, &service_id)?;
    let deploy = service
        .deploys
        .iter()
        .find(|d| d.id == deploy_id)
        .ok_or_else(|| error(StatusCode::NOT_FOUND, "deploy not found"))?;
    Ok(Json(deploy.to_json()))
}

/// An error in Render's shape: `{"id","message"}`, the id naming this occurrence.
pub(crate) fn error(status: StatusCode, message: &str) -> ApiError {
    ApiError {
        status,
        body: json!({ "id": random_lowercase(24), "message": message }),
    }
}

fn service_not_found() -> ApiError {
    error(StatusCode::NOT_FOUND, "service not found")
}

/// `GET /v1/owners`: the workspaces a token may act in (the simulator has one).
async fn owners(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Reply {
    shared.render().authorize(&headers)?;
    Ok(Json(json!([{
        "owner": {"id": OWNER_ID, "name": "keyrot-sim", "email": "keyrot-sim@example.com", "type": "team"},
        "cursor": "c0",
    }])))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deploy_with_env(render: &mut Render, service_id: &str, value: &str, fails: bool) {
        render.builds.fail_next(u32::from(fails));
        let build = render.builds.start(now_millis());
        let service = render.service_mut(service_id).unwrap();
        service.env = vec![("K".into(), value.into())];
        service.deploys.push(Deploy {
            id: new_deploy_id(),
            status: Status::BuildInProgress,
            trigger: "api",
            created_at: 0,
            updated_at: 0,
            finished_at: None,
            build: Some(build),
            env: service.env.clone(),
        });
    }

    fn statuses(render: &Render, service_id: &str) -> Vec<String> {
        render
            .deploys(service_id)
            .into_iter()
            .map(|(_, s)| s)
            .collect()
    }

    #[test]
    fn a_finished_build_goes_live_and_deactivates_the_previous_deploy() {
        let mut render = Render::new();
        let id = render.create_service();
        render.builds.set_build_millis(0);
        deploy_with_env(&mut render, &id, "one", false);
        assert_eq!(render.served_value(&id, "K"), None);
        render.settle();
        assert_eq!(statuses(&render, &id), ["deactivated", "live"]);
        assert_eq!(render.served_value(&id, "K").as_deref(), Some("one"));

        deploy_with_env(&mut render, &id, "two", true);
        render.settle();
        assert_eq!(
            statuses(&render, &id),
            ["deactivated", "live", "build_failed"]
        );
        assert_eq!(render.served_value(&id, "K").as_deref(), Some("one"));
        assert_eq!(render.env_value(&id, "K").as_deref(), Some("two"));
    }

    #[test]
    fn an_older_build_finishing_late_does_not_replace_a_newer_live_deploy() {
        let mut render = Render::new();
        let id = render.create_service();
        render.builds.set_build_millis(60_000);
        deploy_with_env(&mut render, &id, "slow", false);
        render.builds.set_build_millis(0);
        deploy_with_env(&mut render, &id, "fast", false);
        render.settle();
        assert_eq!(
            statuses(&render, &id),
            ["deactivated", "build_in_progress", "live"]
        );
        // Pretend the slow build is done now.
        let service = render.service_mut(&id).unwrap();
        let build = service.deploys[1].build.unwrap();
        service.finish(1, build);
        assert_eq!(
            statuses(&render, &id),
            ["deactivated", "deactivated", "live"]
        );
        assert_eq!(render.served_value(&id, "K").as_deref(), Some("fast"));
        assert!(!render.cancel(&id, "dep-missing"));
    }
}
