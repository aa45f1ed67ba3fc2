//! The Vercel side: a team's projects, their environment variables, and
//! deployments that each serve the variables as they were when the
//! deployment was created. A changed variable therefore reaches the running
//! service only through a redeploy, which is why keyrot redeploys at all.
//!
//! Requests and responses follow Vercel's official OpenAPI spec
//! (`vercel-openapi.json`); `tests/api/vercel_schema.rs` checks
//! every response against it, because Prism lets Vercel responses through
//! unchecked.

mod deployments;
mod env;
mod projects;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::Query;
use axum::extract::rejection::QueryRejection;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Map, Value, json};

use crate::builds::BuildPlan;
use crate::credentials::Credentials;
use crate::openai::bearer;
use crate::reply::ApiError;
use crate::state::{Shared, fingerprint, new_id, now_millis, random_alphanumeric};
use crate::{VercelDeploymentInfo, VercelEnvInfo};
use deployments::{Deployment, ReadyState};
use env::EnvVar;

/// The team's URL slug, in deployment hostnames and inspector links.
const TEAM_SLUG: &str = "keyrot-sim";

pub(crate) struct Vercel {
    tokens: Credentials,
    team_id: String,
    /// The user every variable and deployment is attributed to.
    user_id: String,
    builds: BuildPlan,
    projects: Vec<Project>,
    /// Every project's deployments in creation order, which is also the
    /// order "newest" is judged by (two can share a millisecond).
    deployments: Vec<Deployment>,
}

struct Project {
    id: String,
    name: String,
    /// Creation order.
    env: Vec<EnvVar>,
    /// The deployment the production domains point at (the production alias).
    production: Option<String>,
    /// Whether a new READY production deployment takes the production domains by itself. An Instant
    /// Rollback turns this off, pinning the domains to an older deployment; a promote turns it on.
    auto_assign: bool,
}

/// A deployment environment, as variables and deployments name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Production,
    Preview,
    Development,
}

impl Target {
    fn parse(raw: &str) -> Option<Self> {
        match raw {
            "production" => Some(Self::Production),
            "preview" => Some(Self::Preview),
            "development" => Some(Self::Development),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Production => "production",
            Self::Preview => "preview",
            Self::Development => "development",
        }
    }
}

impl Vercel {
    pub(crate) fn new() -> Self {
        Self {
            tokens: Credentials::new("tok_", || format!("vcp_{}", random_alphanumeric(48))),
            team_id: new_id("team_"),
            user_id: random_alphanumeric(24),
            builds: BuildPlan::new(),
            projects: Vec::new(),
            deployments: Vec::new(),
        }
    }

    pub(crate) fn token(&self) -> &str {
        self.tokens.primary()
    }

    pub(crate) fn tokens_mut(&mut self) -> &mut Credentials {
        &mut self.tokens
    }

    pub(crate) fn team_id(&self) -> &str {
        &self.team_id
    }

    /// A project with one READY production deployment built from an empty
    /// env, so there is always something to redeploy. Project names are
    /// unique in a team, as on Vercel: an existing name returns that project.
    pub(crate) fn create_project(&mut self, name: &str) -> String {
        if let Some(existing) = self.projects.iter().find(|p| p.name == name) {
            return existing.id.clone();
        }
        let id = new_id("prj_");
        let first = Deployment::ready(&id, name, Target::Production, now_millis());
        self.projects.push(Project {
            id: id.clone(),
            name: name.to_owned(),
            env: Vec::new(),
            production: Some(first.id.clone()),
            auto_assign: true,
        });
        self.deployments.push(first);
        id
    }

    pub(crate) fn builds(&mut self) -> &mut BuildPlan {
        &mut self.builds
    }

    /// Ends the builds whose time has come (see `builds.rs`). A production deployment that becomes
    /// READY takes its project's production domains, unless an Instant Rollback pinned them.
    pub(crate) fn settle(&mut self) {
        let now = Instant::now();
        for deployment in &mut self.deployments {
            if deployment.settle(now) && deployment.target == Target::Production {
                let project = self
                    .projects
                    .iter_mut()
                    .find(|p| p.id == deployment.project_id);
                if let Some(project) = project.filter(|p| p.auto_assign) {
                    project.production = Some(deployment.id.clone());
                }
            }
        }
    }

    /// What an Instant Rollback does: the production domains go back to `deployment_id` and stay
    /// there, whatever is deployed next, until a deployment is promoted.
    pub(crate) fn instant_rollback(&mut self, project: &str, deployment_id: &str) -> bool {
        let Some(index) = self.project_index(project) else {
            return false;
        };
        let project = &mut self.projects[index];
        let ready = self.deployments.iter().any(|d| {
            d.id == deployment_id && d.project_id == project.id && d.is_production_ready()
        });
        if ready {
            project.production = Some(deployment_id.to_owned());
            project.auto_assign = false;
        }
        ready
    }

    pub(crate) fn production_of(&self, project: &str) -> Option<String> {
        self.project(project)?.production.clone()
    }

    /// Whether `deployment_id` is what its project's production domains serve.
    pub(super) fn serves_production(&self, deployment_id: &str) -> bool {
        self.projects
            .iter()
            .any(|p| p.production.as_deref() == Some(deployment_id))
    }

    /// Cancels a deployment that is still building; false if there is none.
    pub(crate) fn cancel(&mut self, deployment_id: &str) -> bool {
        self.deployments
            .iter_mut()
            .find(|d| d.id == deployment_id)
            .is_some_and(|d| d.cancel(now_millis()))
    }

    pub(crate) fn has_project(&self, id_or_name: &str) -> bool {
        self.project_index(id_or_name).is_some()
    }

    pub(crate) fn env_info(&self, id_or_name: &str) -> Vec<VercelEnvInfo> {
        let Some(project) = self.project(id_or_name) else {
            return Vec::new();
        };
        project
            .env
            .iter()
            .map(|var| VercelEnvInfo {
                id: var.id.clone(),
                key: var.key.clone(),
                value: var.value.clone(),
                env_type: var.env_type.as_str().to_owned(),
                targets: var.targets.iter().map(|t| t.as_str().to_owned()).collect(),
                comment: var.comment.clone(),
            })
            .collect()
    }

    pub(crate) fn deployment_info(&self, id_or_name: &str) -> Vec<VercelDeploymentInfo> {
        let Some(project) = self.project(id_or_name) else {
            return Vec::new();
        };
        self.deployments
            .iter()
            .filter(|d| d.project_id == project.id)
            .map(|d| VercelDeploymentInfo {
                id: d.id.clone(),
                target: d.target.as_str().to_owned(),
                ready_state: d.state.as_str().to_owned(),
                created: d.created,
                commit: d.commit.clone(),
            })
            .collect()
    }

    /// What the live service reads: `key` in the env snapshot of the deployment the production
    /// domains point at, or of the newest READY deployment of another target.
    pub(crate) fn served_value(&self, id_or_name: &str, target: &str, key: &str) -> Option<String> {
        let target = Target::parse(target)?;
        let project = self.project(id_or_name)?;
        let live = self.deployments.iter().rev().find(|d| {
            d.project_id == project.id
                && match target {
                    Target::Production => project.production.as_deref() == Some(d.id.as_str()),
                    _ => d.target == target && d.state == ReadyState::Ready,
                }
        })?;
        live.served(key).map(str::to_owned)
    }

    /// The `/_sim/state` view: fingerprints and comments, never values.
    pub(crate) fn snapshot(&self) -> Value {
        let projects: Vec<Value> = self
            .projects
            .iter()
            .map(|p| {
                let env: Vec<Value> = p
                    .env
                    .iter()
                    .map(|var| {
                        json!({
                            "id": var.id,
                            "key": var.key,
                            "type": var.env_type.as_str(),
                            "target": var.targets.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
                            "comment": var.comment,
                            "fingerprint": fingerprint(&var.value),
                        })
                    })
                    .collect();
                let deployments: Vec<Value> = self
                    .deployments
                    .iter()
                    .filter(|d| d.project_id == p.id)
                    .map(Deployment::snapshot)
                    .collect();
                json!({ "id": p.id, "name": p.name, "env": env, "deployments": deployments })
            })
            .collect();
        json!({ "token": self.token(), "tokens": self.tokens.snapshot(), "team_id": self.team_id, "projects": projects })
    }

    /// By id first, then by name: Vercel's `idOrName`.
    fn project_index(&self, id_or_name: &str) -> Option<usize> {
        self.projects
            .iter()
            .position(|p| p.id == id_or_name)
            .or_else(|| self.projects.iter().position(|p| p.name == id_or_name))
    }

    fn project(&self, id_or_name: &str) -> Option<&Project> {
        self.project_index(id_or_name).map(|i| &self.projects[i])
    }

    /// The token, then the team: Vercel refuses either with 403 before it
    /// looks at anything else. Returns the query parameters.
    /// `GET /v2/user`: the user a token belongs to (AuthUserLimited, the fields every token sees).
    fn user(&self, headers: &HeaderMap) -> Result<Value, ApiError> {
        if !self.tokens.works(bearer(headers).unwrap_or_default()) {
            return Err(forbidden());
        }
        Ok(json!({ "user": {
            "limited": true,
            "id": self.user_id,
            "email": format!("{TEAM_SLUG}@example.com"),
            "name": null,
            "username": TEAM_SLUG,
            "avatar": null,
            "defaultTeamId": self.team_id,
        }}))
    }

    fn authorize(
        &self,
        headers: &HeaderMap,
        query: Result<Query<HashMap<String, String>>, QueryRejection>,
    ) -> Result<HashMap<String, String>, ApiError> {
        if !self.tokens.works(bearer(headers).unwrap_or_default()) {
            return Err(forbidden());
        }
        let Query(query) = query.map_err(|e| bad_request(&e.body_text()))?;
        if query.get("teamId") != Some(&self.team_id) {
            return Err(forbidden());
        }
        Ok(query)
    }
}

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/v2/user", axum::routing::get(user))
        .merge(env::routes())
        .merge(deployments::routes())
        .merge(projects::routes())
}

/// An error in Vercel's shape: `{"error":{"code","message"}}`.
pub(crate) fn error(status: StatusCode, code: &str, message: &str) -> ApiError {
    ApiError {
        status,
        body: json!({ "error": { "code": code, "message": message } }),
    }
}

fn forbidden() -> ApiError {
    error(StatusCode::FORBIDDEN, "forbidden", "Not authorized")
}

fn bad_request(message: &str) -> ApiError {
    error(StatusCode::BAD_REQUEST, "bad_request", message)
}

fn project_not_found() -> ApiError {
    error(StatusCode::NOT_FOUND, "not_found", "Project not found")
}

/// Parses a request body, answering malformed JSON the way Vercel does.
fn parse_body(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        bad_request(&format!(
            "Invalid request: the body is not valid JSON ({e})."
        ))
    })
}

/// The body's fields, or a 400 if it is not a JSON object.
fn body_object(body: Value) -> Result<Map<String, Value>, ApiError> {
    match body {
        Value::Object(fields) => Ok(fields),
        _ => Err(bad_request(
            "Invalid request: the body should be an object.",
        )),
    }
}

async fn user(
    axum::extract::State(shared): axum::extract::State<Arc<Shared>>,
    headers: HeaderMap,
) -> crate::reply::Reply {
    Ok(axum::Json(shared.vercel().user(&headers)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_project_serves_an_empty_env_from_one_ready_deployment() {
        let mut vercel = Vercel::new();
        let id = vercel.create_project("web");
        assert!(id.starts_with("prj_"));
        assert_eq!(vercel.create_project("web"), id);
        let deployments = vercel.deployment_info("web");
        assert_eq!(deployments.len(), 1);
        assert_eq!(
            (
                deployments[0].target.as_str(),
                deployments[0].ready_state.as_str()
            ),
            ("production", "READY")
        );
        assert!(deployments[0].id.starts_with("dpl_"));
        assert_eq!(vercel.served_value(&id, "production", "API_KEY"), None);
        assert!(vercel.env_info(&id).is_empty());
        assert!(vercel.token().starts_with("vcp_"));
        assert!(vercel.team_id().starts_with("team_"));
    }
}
