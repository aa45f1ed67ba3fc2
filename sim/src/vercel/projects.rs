//! A project and its production domains: `GET /v9/projects/{idOrName}` says which deployment the
//! production domains serve (`targets.production`), and `POST /v10/projects/{projectId}/promote/
//! {deploymentId}` points them at another READY production deployment.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::{error, project_not_found};
use crate::reply::{ApiError, Reply};
use crate::state::Shared;

pub(super) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/v9/projects/{id_or_name}", get(get_project))
        .route(
            "/v10/projects/{project_id}/promote/{deployment_id}",
            post(promote),
        )
}

async fn get_project(
    State(shared): State<Arc<Shared>>,
    Path(id_or_name): Path<String>,
    headers: HeaderMap,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Reply {
    let vercel = shared.vercel();
    vercel.authorize(&headers, query)?;
    let project = vercel.project(&id_or_name).ok_or_else(project_not_found)?;
    let resources = json!({ "functionDefaultRegions": ["iad1"] });
    let mut targets = serde_json::Map::new();
    if let Some(production) = project
        .production
        .as_deref()
        .and_then(|id| vercel.deployments.iter().find(|d| d.id == id))
    {
        targets.insert("production".to_owned(), production.target_json_of(&vercel));
    }
    Ok(Json(json!({
        "accountId": vercel.team_id,
        "directoryListing": false,
        "id": project.id,
        "name": project.name,
        "nodeVersion": "22.x",
        "resourceConfig": resources,
        "defaultResourceConfig": resources,
        "autoAssignCustomDomains": project.auto_assign,
        "targets": targets,
    })))
}

/// Points the production domains at a READY production deployment of the project, and lets later
/// deployments take them again (what promoting after an Instant Rollback does). 201, as the spec has it.
async fn promote(
    State(shared): State<Arc<Shared>>,
    Path((project_id, deployment_id)): Path<(String, String)>,
    headers: HeaderMap,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let mut vercel = shared.vercel();
    vercel.authorize(&headers, query)?;
    let index = vercel
        .project_index(&project_id)
        .ok_or_else(project_not_found)?;
    let id = vercel.projects[index].id.clone();
    let ready = vercel
        .deployments
        .iter()
        .any(|d| d.id == deployment_id && d.project_id == id && d.is_production_ready());
    if !ready {
        return Err(error(
            StatusCode::CONFLICT,
            "deployment_not_ready",
            "Only a READY production deployment of this project can be promoted",
        ));
    }
    let project = &mut vercel.projects[index];
    project.production = Some(deployment_id);
    project.auto_assign = true;
    Ok((StatusCode::CREATED, Json(json!({}))))
}
