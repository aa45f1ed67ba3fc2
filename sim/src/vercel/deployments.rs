//! Deployments: list, redeploy, follow. A deployment snapshots its project's
//! variables for its target when it is created and serves that snapshot
//! forever after; only a newer READY deployment changes what is served.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use serde_json::{Map, Value, json};

use super::{
    TEAM_SLUG, Target, Vercel, bad_request, body_object, error, parse_body, project_not_found,
};
use crate::builds::Build;
use crate::reply::{ApiError, Reply};
use crate::state::{self, Shared, new_id, now_millis, random_lowercase};

const LIST_DEFAULT_LIMIT: usize = 20;
const LIST_MAX_LIMIT: usize = 100;
/// The states `GET /v6/deployments?state=` accepts, per the spec.
const FILTERABLE_STATES: [&str; 6] = [
    "BUILDING",
    "ERROR",
    "INITIALIZING",
    "QUEUED",
    "READY",
    "CANCELED",
];
/// Every top-level field `POST /v13/deployments` allows (the spec forbids others).
const CREATE_FIELDS: [&str; 12] = [
    "customEnvironmentSlugOrId",
    "deploymentId",
    "files",
    "gitMetadata",
    "gitSource",
    "meta",
    "monorepoManager",
    "name",
    "project",
    "projectSettings",
    "target",
    "withLatestCommit",
];

pub(super) struct Deployment {
    pub(super) id: String,
    pub(super) project_id: String,
    /// The project's name, which Vercel also calls the deployment's name.
    name: String,
    url: String,
    /// `Preview` is what Vercel reports as `target: null`.
    pub(super) target: Target,
    pub(super) state: ReadyState,
    /// `cli` for the project's first deployment, `redeploy` after that.
    source: &'static str,
    meta: Map<String, Value>,
    pub(super) created: i64,
    /// While BUILDING: when it ends and how.
    build: Option<Build>,
    /// When it became READY, failed or was canceled (unix ms).
    finished: Option<i64>,
    /// The variables (key, value) it was built with.
    env: Vec<(String, String)>,
    /// The code it runs (a git sha): a redeploy rebuilds the code of the deployment it names.
    pub(super) commit: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ReadyState {
    Building,
    Error,
    Ready,
    Canceled,
}

impl ReadyState {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Self::Building => "BUILDING",
            Self::Error => "ERROR",
            Self::Ready => "READY",
            Self::Canceled => "CANCELED",
        }
    }
}

impl Deployment {
    fn new(project_id: &str, name: &str, target: Target, created: i64) -> Self {
        Self {
            id: new_id("dpl_"),
            project_id: project_id.to_owned(),
            name: name.to_owned(),
            url: format!("{name}-{}-{TEAM_SLUG}.vercel.app", random_lowercase(9)),
            target,
            state: ReadyState::Building,
            source: "redeploy",
            meta: Map::new(),
            created,
            build: None,
            finished: None,
            env: Vec::new(),
            commit: random_lowercase(40),
        }
    }

    /// A project's first deployment: already READY, built from no variables.
    pub(super) fn ready(project_id: &str, name: &str, target: Target, created: i64) -> Self {
        Self {
            state: ReadyState::Ready,
            source: "cli",
            finished: Some(created),
            ..Self::new(project_id, name, target, created)
        }
    }

    /// Ends the build if its time has come; returns whether it just became READY.
    pub(super) fn settle(&mut self, now: Instant) -> bool {
        let Some(build) = self.build.filter(|b| b.is_finished(now)) else {
            return false;
        };
        self.build = None;
        self.finished = Some(build.finishes_at_millis);
        self.state = if build.fails {
            ReadyState::Error
        } else {
            ReadyState::Ready
        };
        self.state == ReadyState::Ready
    }

    pub(super) fn cancel(&mut self, now: i64) -> bool {
        if self.state != ReadyState::Building {
            return false;
        }
        self.build = None;
        self.finished = Some(now);
        self.state = ReadyState::Canceled;
        true
    }

    pub(super) fn served(&self, key: &str) -> Option<&str> {
        self.env
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub(super) fn snapshot(&self) -> Value {
        let env: Vec<Value> = self
            .env
            .iter()
            .map(|(key, value)| json!({ "key": key, "fingerprint": state::fingerprint(value) }))
            .collect();
        json!({
            "id": self.id,
            "target": self.target.as_str(),
            "ready_state": self.state.as_str(),
            "created": self.created,
            "env": env,
        })
    }

    fn target_json(&self) -> Value {
        match self.target {
            Target::Production => json!("production"),
            // The spec's deployment targets are production, staging or null (preview).
            Target::Preview | Target::Development => Value::Null,
        }
    }

    /// The deployment as a project's `targets.production` names it.
    pub(super) fn target_json_of(&self, vercel: &Vercel) -> Value {
        json!({
            "id": self.id,
            "createdAt": self.created,
            "createdIn": "sfo1",
            "creator": { "email": format!("{TEAM_SLUG}@example.com"), "uid": vercel.user_id, "username": TEAM_SLUG },
            "deploymentHostname": self.url.trim_end_matches(".vercel.app"),
            "name": self.name,
            "plan": "pro",
            "private": true,
            "readyState": self.state.as_str(),
            "type": "LAMBDAS",
            "url": self.url,
            "userId": vercel.user_id,
            "alias": [format!("{}.vercel.app", self.name)],
            "aliasAssigned": vercel.serves_production(&self.id),
        })
    }

    fn inspector_url(&self) -> String {
        let id = self.id.strip_prefix("dpl_").unwrap_or(&self.id);
        format!("https://vercel.com/{TEAM_SLUG}/{}/{id}", self.name)
    }

    pub(super) fn is_production_ready(&self) -> bool {
        self.state == ReadyState::Ready && self.target == Target::Production
    }

    /// The fields only a finished deployment has.
    fn add_outcome(&self, json: &mut Value, full: bool) {
        match (self.state, self.finished) {
            (ReadyState::Ready, Some(at)) => json["ready"] = json!(at),
            (ReadyState::Error, Some(at)) => {
                json["errorCode"] = json!("BUILD_FAILED");
                json["errorMessage"] = json!("The build failed (requested from the simulator).");
                if full {
                    json["buildErrorAt"] = json!(at);
                    json["readyStateReason"] = json!("Build failed");
                }
            }
            (ReadyState::Canceled, Some(at)) if full => json["canceledAt"] = json!(at),
            _ => {}
        }
    }

    /// An item of `GET /v6/deployments`.
    fn list_json(&self, vercel: &Vercel) -> Value {
        let mut json = json!({
            "uid": self.id,
            "name": self.name,
            "projectId": self.project_id,
            "url": self.url,
            "created": self.created,
            "createdAt": self.created,
            "buildingAt": self.created,
            "source": self.source,
            "state": self.state.as_str(),
            "readyState": self.state.as_str(),
            "type": "LAMBDAS",
            "creator": { "uid": vercel.user_id, "username": TEAM_SLUG },
            "meta": self.meta,
            "target": self.target_json(),
            "aliasError": null,
            "aliasAssigned": vercel.serves_production(&self.id),
            "inspectorUrl": self.inspector_url(),
        });
        self.add_outcome(&mut json, false);
        json
    }

    /// `POST /v13/deployments` and `GET /v13/deployments/{idOrUrl}`: the
    /// spec requires a great many fields; the ones with no meaning here
    /// carry plausible constants.
    fn full_json(&self, vercel: &Vercel) -> Value {
        let keys: Vec<&str> = self.env.iter().map(|(k, _)| k.as_str()).collect();
        let mut json = json!({
            "id": self.id,
            "name": self.name,
            "url": self.url,
            "projectId": self.project_id,
            "ownerId": vercel.team_id,
            "createdAt": self.created,
            "buildingAt": self.created,
            "bootedAt": self.created,
            "readyState": self.state.as_str(),
            "status": self.state.as_str(),
            "type": "LAMBDAS",
            "version": 2,
            "plan": "pro",
            "createdIn": "sfo1",
            "regions": ["iad1"],
            "routes": null,
            "meta": self.meta,
            "public": false,
            "source": self.source,
            "target": self.target_json(),
            "creator": { "uid": vercel.user_id, "username": TEAM_SLUG },
            "build": { "env": keys },
            "env": keys,
            "inspectorUrl": self.inspector_url(),
            "isInConcurrentBuildsQueue": false,
            "isInSystemBuildsQueue": false,
            "buildSkipped": false,
            "projectSettings": {},
            "alias": [],
            "aliasAssigned": vercel.serves_production(&self.id),
            "aliasAssignedAt": if vercel.serves_production(&self.id) { json!(self.finished) } else { Value::Null },
            "aliasError": null,
            "project": { "id": self.project_id, "name": self.name, "framework": null },
            "team": { "id": vercel.team_id, "name": TEAM_SLUG, "slug": TEAM_SLUG },
        });
        self.add_outcome(&mut json, true);
        json
    }
}

impl Vercel {
    /// A new BUILDING deployment of the project, serving its variables for
    /// `target` as they are at this instant.
    fn deploy(
        &mut self,
        project_index: usize,
        target: Target,
        meta: Map<String, Value>,
        commit: String,
    ) -> usize {
        let project = &self.projects[project_index];
        let created = now_millis();
        let mut deployment = Deployment::new(&project.id, &project.name, target, created);
        deployment.commit = commit;
        deployment.env = project
            .env
            .iter()
            .filter(|var| var.applies_to(target))
            .map(|var| (var.key.clone(), var.value.clone()))
            .collect();
        deployment.meta = meta;
        deployment.build = Some(self.builds.start(created));
        self.deployments.push(deployment);
        self.deployments.len() - 1
    }
}

impl Vercel {
    /// A READY preview deployment of `branch` (a push to it), built from the project's variables as
    /// they are now.
    pub(crate) fn create_preview(&mut self, project: &str, branch: &str) -> Option<String> {
        let index = self.project_index(project)?;
        let mut meta = Map::new();
        meta.insert("githubCommitRef".to_owned(), json!(branch));
        let at = self.deploy(index, Target::Preview, meta, random_lowercase(40));
        let deployment = &mut self.deployments[at];
        deployment.build = None;
        deployment.state = ReadyState::Ready;
        deployment.finished = Some(deployment.created);
        Some(deployment.id.clone())
    }
}

/// A validated `POST /v13/deployments` body. Only redeploys are simulated:
/// keyrot never uploads files or names a git ref.
struct Redeploy {
    /// The project, by id or name: `project` if given, else `name`.
    project: String,
    deployment_id: String,
    target: Target,
    meta: Map<String, Value>,
}

impl Redeploy {
    fn parse(fields: &Map<String, Value>) -> Result<Self, String> {
        if let Some(extra) = fields.keys().find(|k| !CREATE_FIELDS.contains(&k.as_str())) {
            return Err(format!("should NOT have additional property `{extra}`"));
        }
        for unsupported in ["files", "gitSource", "customEnvironmentSlugOrId"] {
            if fields.contains_key(unsupported) {
                return Err(format!(
                    "`{unsupported}` is not simulated; redeploy an existing deployment with `deploymentId`"
                ));
            }
        }
        let string = |name: &str| match fields.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(format!("`{name}` should be a string")),
        };
        let name = string("name")?.ok_or("missing required property `name`")?;
        let deployment_id = string("deploymentId")?.ok_or(
            "`deploymentId` is required: only redeploys of an existing deployment are simulated",
        )?;
        // Omitted means a preview deployment; staging and custom environments are not simulated.
        let target = match string("target")?.as_deref() {
            None => Target::Preview,
            Some("production") => Target::Production,
            Some(other) => {
                return Err(format!(
                    "`target` \"{other}\" is not simulated: use \"production\" or omit it"
                ));
            }
        };
        let meta = match fields.get("meta") {
            None => Map::new(),
            Some(Value::Object(meta)) if meta.values().all(Value::is_string) => meta.clone(),
            Some(_) => return Err("`meta` should be an object of strings".to_owned()),
        };
        Ok(Redeploy {
            project: string("project")?.unwrap_or(name),
            deployment_id,
            target,
            meta,
        })
    }
}

pub(super) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/v6/deployments", get(list_deployments))
        .route("/v13/deployments", post(create_deployment))
        .route("/v13/deployments/{id_or_url}", get(get_deployment))
}

async fn list_deployments(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Reply {
    let vercel = shared.vercel();
    let query = vercel.authorize(&headers, query)?;
    let project_id = match query.get("projectId") {
        None => None,
        Some(id_or_name) => Some(
            vercel
                .project(id_or_name)
                .ok_or_else(project_not_found)?
                .id
                .as_str(),
        ),
    };
    let target = query.get("target").map(String::as_str);
    let states = match query.get("state") {
        None => None,
        Some(raw) => Some(parse_states(raw)?),
    };
    let limit = state::parse_limit(query.get("limit"), LIST_DEFAULT_LIMIT, LIST_MAX_LIMIT)
        .map_err(|m| bad_request(&m))?;
    let since = parse_millis(&query, "since")?;
    let until = parse_millis(&query, "until")?;

    let mut matching = vercel.deployments.iter().rev().filter(|d| {
        project_id.is_none_or(|id| d.project_id == id)
            && target.is_none_or(|t| d.target.as_str() == t)
            && states
                .as_ref()
                .is_none_or(|s| s.contains(&d.state.as_str()))
            && since.is_none_or(|since| d.created > since)
            && until.is_none_or(|until| d.created < until)
    });
    let page: Vec<&Deployment> = matching.by_ref().take(limit).collect();
    let more = matching.next().is_some();
    Ok(Json(json!({
        "deployments": page.iter().map(|d| d.list_json(&vercel)).collect::<Vec<_>>(),
        "pagination": {
            "count": page.len(),
            // `until=<next>` fetches the following (older) page.
            "next": if more { page.last().map(|d| d.created) } else { None },
            "prev": null,
        },
    })))
}

/// `READY` or `BUILDING,READY`: each must be a state the spec names.
fn parse_states(raw: &str) -> Result<Vec<&'static str>, ApiError> {
    raw.split(',')
        .map(|s| {
            let s = s.trim();
            FILTERABLE_STATES
                .iter()
                .find(|known| known.eq_ignore_ascii_case(s))
                .copied()
                .ok_or_else(|| {
                    bad_request(&format!(
                        "Invalid request: `state` should be a comma-separated list of {}, got \"{s}\".",
                        FILTERABLE_STATES.join(", ")
                    ))
                })
        })
        .collect()
}

fn parse_millis(query: &HashMap<String, String>, name: &str) -> Result<Option<i64>, ApiError> {
    query
        .get(name)
        .map(|raw| {
            raw.parse::<i64>().map_err(|_| {
                bad_request(&format!(
                    "Invalid request: `{name}` should be a timestamp in milliseconds, got \"{raw}\"."
                ))
            })
        })
        .transpose()
}

async fn create_deployment(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
    body: Bytes,
) -> Reply {
    let mut vercel = shared.vercel();
    vercel.authorize(&headers, query)?;
    let fields = body_object(parse_body(&body)?)?;
    let request =
        Redeploy::parse(&fields).map_err(|m| bad_request(&format!("Invalid request: {m}.")))?;
    let project_index = vercel
        .project_index(&request.project)
        .ok_or_else(project_not_found)?;
    let project_id = &vercel.projects[project_index].id;
    let rebuilt = vercel
        .deployments
        .iter()
        .find(|d| d.id == request.deployment_id && &d.project_id == project_id)
        .ok_or_else(deployment_not_found)?
        .commit
        .clone();
    let index = vercel.deploy(project_index, request.target, request.meta, rebuilt);
    // The spec answers a created deployment with 200, not 201.
    Ok(Json(vercel.deployments[index].full_json(&vercel)))
}

async fn get_deployment(
    State(shared): State<Arc<Shared>>,
    Path(id_or_url): Path<String>,
    headers: HeaderMap,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Reply {
    let vercel = shared.vercel();
    vercel.authorize(&headers, query)?;
    let url = id_or_url
        .strip_prefix("https://")
        .unwrap_or(id_or_url.as_str());
    let deployment = vercel
        .deployments
        .iter()
        .find(|d| d.id == id_or_url || d.url == url)
        .ok_or_else(deployment_not_found)?;
    Ok(Json(deployment.full_json(&vercel)))
}

fn deployment_not_found() -> ApiError {
    error(StatusCode::NOT_FOUND, "not_found", "Deployment not found")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redeploy(body: Value) -> Result<Redeploy, String> {
        match body {
            Value::Object(fields) => Redeploy::parse(&fields),
            _ => unreachable!(),
        }
    }

    #[test]
    fn only_redeploys_to_production_or_preview_are_accepted() {
        let ok = redeploy(json!({"name":"web","deploymentId":"dpl_1","target":"production","meta":{"by":"keyrot"}})).unwrap();
        assert_eq!(
            (ok.project.as_str(), ok.target),
            ("web", Target::Production)
        );
        let ok = redeploy(json!({"name":"web","project":"prj_1","deploymentId":"dpl_1"})).unwrap();
        assert_eq!((ok.project.as_str(), ok.target), ("prj_1", Target::Preview));
        for bad in [
            json!({"deploymentId":"dpl_1"}),
            json!({"name":"web"}),
            json!({"name":"web","deploymentId":"dpl_1","target":"staging"}),
            json!({"name":"web","deploymentId":"dpl_1","colour":"blue"}),
            json!({"name":"web","deploymentId":"dpl_1","files":[]}),
            json!({"name":"web","deploymentId":"dpl_1","meta":{"n":1}}),
            json!({"name":5,"deploymentId":"dpl_1"}),
        ] {
            assert!(redeploy(bad.clone()).is_err(), "{bad}");
        }
    }

    #[test]
    fn state_filters_are_checked_against_the_spec() {
        assert_eq!(parse_states("READY").unwrap(), ["READY"]);
        assert_eq!(
            parse_states("building, READY").unwrap(),
            ["BUILDING", "READY"]
        );
        assert!(parse_states("READY,DONE").is_err());
    }
}
