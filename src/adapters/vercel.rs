//! Vercel: the key goes into a project environment variable, upserted in place with its fingerprint in
//! the variable's `comment` (sensitive values cannot be read back), and reaches the service through a
//! redeploy of the deployment the production domains serve, counted ready once they serve it.

use reqwest::{RequestBuilder, Response};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::adapters::admin_keys::AdminKeys;
use crate::adapters::http::{self, Refusal, RetryPolicy};
use crate::domain::admin::AdminRequest;
use crate::domain::keys::fingerprint;
use crate::domain::targets::VercelTarget;
use crate::error::{Error, Result, Transience};
use crate::ports::DeploymentState;

const SYSTEM: &str = "vercel";
/// The fingerprint travels in the variable's comment as `keyrot:<12 hex>`.
const COMMENT_PREFIX: &str = "keyrot:";

#[derive(Clone)]
pub struct VercelClient {
    http: reqwest::Client,
    base_url: String,
    tokens: AdminKeys,
    retry: RetryPolicy,
}

#[derive(Deserialize)]
struct EnvList {
    /// Required: a list without it is no answer about the variables (treated as none, it would hide
    /// the one keyrot wrote).
    envs: Vec<EnvVar>,
    #[serde(default)]
    pagination: Option<Pagination>,
}

#[derive(Deserialize)]
struct Pagination {
    /// The timestamp that asks for the next (older) page as `until`; none on the last page.
    #[serde(default)]
    next: Option<f64>,
}

fn unending_env_list(secret_name: &str, target: &VercelTarget) -> Error {
    Error::external(
        SYSTEM,
        format!("GET env of {} for {secret_name}", target.project),
        format!(
            "the variable list's pages do not end (pagination.next does not move back, or more \
             than {MAX_ENV_PAGES} pages)"
        ),
        Transience::Retryable,
    )
}

/// Pages of the env list followed at most: a project has far fewer variables than this many pages.
const MAX_ENV_PAGES: usize = 50;

#[derive(Deserialize)]
struct EnvVar {
    key: String,
    #[serde(default)]
    target: Option<Value>,
    #[serde(default)]
    comment: Option<String>,
    /// When its value last changed (unix ms).
    #[serde(default, rename = "updatedAt")]
    updated_at: Option<f64>,
}

#[derive(Deserialize)]
struct DeploymentList {
    deployments: Vec<ListedDeployment>,
}

#[derive(Deserialize)]
struct ListedDeployment {
    uid: String,
    name: String,
    #[serde(default)]
    url: Option<String>,
    #[serde(default, rename = "createdAt")]
    created_at: Option<f64>,
    #[serde(default)]
    meta: Option<Value>,
}

/// A preview deployment counts as live, and so as a user of the key it was built with, for this long.
/// An older one nobody replaced is a branch nobody works on; it stops working at the revocation.
const PREVIEW_LIVE: chrono::TimeDelta = chrono::TimeDelta::days(7);

/// `GET /v9/projects/{idOrName}`: the deployment the production domains serve.
#[derive(Deserialize)]
struct Project {
    name: String,
    #[serde(default)]
    targets: Option<ProjectTargets>,
    /// False after an Instant Rollback: new production deployments no longer take the domains.
    #[serde(default, rename = "autoAssignCustomDomains")]
    auto_assign: Option<bool>,
}

#[derive(Deserialize)]
struct ProjectTargets {
    #[serde(default)]
    production: Option<ProductionTarget>,
}

#[derive(Deserialize)]
struct ProductionTarget {
    id: String,
    #[serde(default, rename = "createdAt")]
    created_at: Option<f64>,
}

#[derive(Deserialize)]
struct Deployment {
    id: String,
    #[serde(rename = "readyState")]
    ready_state: Option<String>,
    #[serde(default, rename = "createdAt")]
    created_at: Option<f64>,
}

impl VercelClient {
    pub fn new(http: reqwest::Client, base_url: impl Into<String>, tokens: AdminKeys) -> Self {
        VercelClient {
            http,
            base_url: base_url.into(),
            tokens,
            retry: RetryPolicy::default(),
        }
    }

    async fn token(&self, secret_name: &str, target: &VercelTarget) -> Result<SecretString> {
        let mut resources = vec![target.project.as_str()];
        resources.extend(target.team_id.as_deref());
        self.tokens
            .read(AdminRequest {
                wants: Some(crate::domain::credential::CredentialKind::VercelToken),
                managed: secret_name,
                field: "targets[].token_secret",
                admin_secret: &target.token_secret,
                resources: &resources,
            })
            .await
    }

    fn authed(
        &self,
        request: RequestBuilder,
        token: &SecretString,
        target: &VercelTarget,
    ) -> RequestBuilder {
        let request = request.bearer_auth(token.expose_secret());
        match &target.team_id {
            Some(team) => request.query(&[("teamId", team)]),
            None => request,
        }
    }

    /// The fingerprint every configured environment's variable carries, if they all carry the same one.
    pub async fn held_fingerprint(
        &self,
        secret_name: &str,
        target: &VercelTarget,
    ) -> Result<Option<String>> {
        let mut fingerprints = self.fingerprints(secret_name, target).await?.into_iter();
        let first = fingerprints.next().flatten();
        Ok(if fingerprints.all(|other| other == first) {
            first
        } else {
            None
        })
    }

    /// The fingerprint each of the target's environments holds, in the target's order (`None` where
    /// the variable is absent or was not written by keyrot).
    pub async fn fingerprints(
        &self,
        secret_name: &str,
        target: &VercelTarget,
    ) -> Result<Vec<Option<String>>> {
        let envs = self.env_vars(secret_name, target).await?;
        Ok(target
            .environments
            .iter()
            .map(|environment| {
                envs.iter()
                    .find(|var| {
                        var.key == target.env_key
                            && targets_include(var.target.as_ref(), environment)
                    })
                    .and_then(|var| var.comment.as_deref())
                    .and_then(|comment| comment.strip_prefix(COMMENT_PREFIX))
                    .map(|fp| fp.trim().to_owned())
            })
            .collect())
    }

    /// Every variable of the project, following the list's pages: the one keyrot wrote may be on any.
    async fn env_vars(&self, secret_name: &str, target: &VercelTarget) -> Result<Vec<EnvVar>> {
        let token = self.token(secret_name, target).await?;
        let url = http::endpoint(&self.base_url, &["v10", "projects", &target.project, "env"])?;
        let mut envs = Vec::new();
        let mut until: Option<f64> = None;
        for _ in 0..MAX_ENV_PAGES {
            let response = http::send(self.retry, SYSTEM, "GET env", || {
                let request = self.authed(self.http.get(url.clone()), &token, target);
                match until {
                    Some(until) => request.query(&[("until", format!("{until:.0}"))]),
                    None => request,
                }
            })
            .await?;
            let page: EnvList = read_json(secret_name, target, response, "GET env").await?;
            envs.extend(page.envs);
            match page.pagination.and_then(|p| p.next) {
                None => return Ok(envs),
                Some(next) if until.is_none_or(|until| next < until) => until = Some(next),
                // A next that does not move back in time would loop, and stopping there would
                // hide the variables of the pages not read.
                Some(_) => return Err(unending_env_list(secret_name, target)),
            }
        }
        Err(unending_env_list(secret_name, target))
    }

    /// The live previews built with an older value of the variable: for each branch, its newest READY
    /// preview deployment, made within [`PREVIEW_LIVE`] and before the variable's preview value last
    /// changed. Only for a target whose environments include `preview`.
    pub async fn stale_previews(
        &self,
        secret_name: &str,
        target: &VercelTarget,
        now: chrono::DateTime<chrono::Utc>,
        minted: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<Vec<String>> {
        if !target.environments.iter().any(|e| e == "preview") {
            return Ok(Vec::new());
        }
        let changed = self
            .env_vars(secret_name, target)
            .await?
            .into_iter()
            .find(|var| {
                var.key == target.env_key && targets_include(var.target.as_ref(), "preview")
            })
            .and_then(|var| var.updated_at);
        let Some(changed) = changed else {
            return Ok(Vec::new());
        };
        // A deployment built before keyrot minted the key cannot run it.
        let live_since = (now - PREVIEW_LIVE)
            .max(minted.unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC))
            .timestamp_millis() as f64;
        let mut branches = std::collections::BTreeSet::new();
        let mut stale = Vec::new();
        // Newest first: the first deployment of a branch is the one its preview URL serves.
        for deployment in self.previews(secret_name, target).await? {
            let branch = deployment
                .meta
                .as_ref()
                .and_then(|meta| meta["githubCommitRef"].as_str())
                .unwrap_or_default()
                .to_owned();
            let created = deployment.created_at.unwrap_or_default();
            if branches.insert(branch) && created >= live_since && created < changed {
                stale.push(deployment.url.unwrap_or(deployment.uid));
            }
        }
        Ok(stale)
    }

    /// The project's READY preview deployments, newest first (one page of 100).
    async fn previews(
        &self,
        secret_name: &str,
        target: &VercelTarget,
    ) -> Result<Vec<ListedDeployment>> {
        let token = self.token(secret_name, target).await?;
        let url = http::endpoint(&self.base_url, &["v6", "deployments"])?;
        let response = http::send(self.retry, SYSTEM, "GET deployments (previews)", || {
            self.authed(self.http.get(url.clone()), &token, target)
                .query(&[
                    ("projectId", target.project.as_str()),
                    ("target", "preview"),
                    ("state", "READY"),
                    ("limit", "100"),
                ])
        })
        .await?;
        let list: DeploymentList =
            read_json(secret_name, target, response, "GET deployments (previews)").await?;
        Ok(list.deployments)
    }

    pub async fn push(
        &self,
        secret_name: &str,
        target: &VercelTarget,
        key: &SecretString,
    ) -> Result<()> {
        let token = self.token(secret_name, target).await?;
        let url = http::endpoint(&self.base_url, &["v10", "projects", &target.project, "env"])?;
        let body = json!({
            "key": target.env_key,
            "value": key.expose_secret(),
            "type": if target.sensitive { "sensitive" } else { "encrypted" },
            "target": target.environments,
            "comment": format!("{COMMENT_PREFIX}{}", fingerprint(key)),
        });
        let response = http::send(self.retry, SYSTEM, "POST env (upsert)", || {
            self.authed(self.http.post(url.clone()), &token, target)
                .query(&[("upsert", "true")])
                .json(&body)
        })
        .await?;
        let answer: Value = read_json(secret_name, target, response, "POST env (upsert)").await?;
        match answer.get("failed").and_then(Value::as_array) {
            // A conflict (another variable with that key and another type, branch or target) that the
            // same request cannot get past, so a retry would only fail again. Only the codes are
            // reported: an entry's `value` field may echo what was sent.
            Some(failed) if !failed.is_empty() => {
                let codes: Vec<&str> = failed
                    .iter()
                    .map(|entry| entry["error"]["code"].as_str().unwrap_or("unknown"))
                    .collect();
                Err(Error::config(
                    secret_name,
                    format!("targets (vercel {}:{})", target.project, target.env_key),
                    format!(
                        "Vercel did not write {} of the variables ({})",
                        failed.len(),
                        codes.join(", ")
                    ),
                    format!(
                        "remove or fix the conflicting {} variable in the Vercel project, then rotate again",
                        target.env_key
                    ),
                ))
            }
            _ => Ok(()),
        }
    }

    /// Redeploys what the production domains serve, so it picks up the variables as they are now.
    /// After an Instant Rollback that is an older deployment than the latest READY one: rebuilding the
    /// latest would put code the team rolled back from in front of its users.
    pub async fn redeploy(&self, secret_name: &str, target: &VercelTarget) -> Result<String> {
        let token = self.token(secret_name, target).await?;
        let project = self.project(secret_name, target, &token).await?;
        let (name, served) = match project.targets.and_then(|t| t.production) {
            Some(served) => (project.name, served.id),
            None => self.latest_ready(secret_name, target, &token).await?,
        };
        let url = http::endpoint(&self.base_url, &["v13", "deployments"])?;
        let body = json!({ "name": name, "deploymentId": served, "target": "production" });
        let response = http::send(self.retry, SYSTEM, "POST deployments", || {
            self.authed(self.http.post(url.clone()), &token, target)
                .json(&body)
        })
        .await?;
        let created: Deployment =
            read_json(secret_name, target, response, "POST deployments").await?;
        Ok(created.id)
    }

    /// The project: its name, and the deployment its production domains serve.
    async fn project(
        &self,
        secret_name: &str,
        target: &VercelTarget,
        token: &SecretString,
    ) -> Result<Project> {
        let url = http::endpoint(&self.base_url, &["v9", "projects", &target.project])?;
        let response = http::send(self.retry, SYSTEM, "GET project", || {
            self.authed(self.http.get(url.clone()), token, target)
        })
        .await?;
        read_json(secret_name, target, response, "GET project").await
    }

    /// The newest READY production deployment: what to redeploy when the project names none as served.
    async fn latest_ready(
        &self,
        secret_name: &str,
        target: &VercelTarget,
        token: &SecretString,
    ) -> Result<(String, String)> {
        let url = http::endpoint(&self.base_url, &["v6", "deployments"])?;
        let response = http::send(self.retry, SYSTEM, "GET deployments", || {
            self.authed(self.http.get(url.clone()), token, target)
                .query(&[
                    ("projectId", target.project.as_str()),
                    ("target", "production"),
                    ("state", "READY"),
                    ("limit", "1"),
                ])
        })
        .await?;
        let list: DeploymentList =
            read_json(secret_name, target, response, "GET deployments").await?;
        let latest = list.deployments.into_iter().next().ok_or_else(|| {
            Error::config(
                secret_name,
                "targets[].project",
                format!(
                    "Vercel project {} has no READY production deployment to redeploy",
                    target.project
                ),
                "deploy the project once, or set redeploy to false for this target",
            )
        })?;
        Ok((latest.name, latest.uid))
    }

    pub async fn deployment_state(
        &self,
        secret_name: &str,
        target: &VercelTarget,
        id: &str,
    ) -> Result<DeploymentState> {
        let token = self.token(secret_name, target).await?;
        let url = http::endpoint(&self.base_url, &["v13", "deployments", id])?;
        let response = http::send(self.retry, SYSTEM, "GET deployment", || {
            self.authed(self.http.get(url.clone()), &token, target)
        })
        .await?;
        let deployment: Deployment =
            read_json(secret_name, target, response, "GET deployment").await?;
        match deployment.ready_state.as_deref() {
            Some("READY") => self.serving(secret_name, target, &token, &deployment).await,
            Some(state @ ("ERROR" | "CANCELED")) => Ok(DeploymentState::Failed(state.to_owned())),
            _ => Ok(DeploymentState::Building),
        }
    }

    /// A READY redeploy counts once the production domains serve it, or a deployment made after it
    /// (built with the variables as they are now). When an Instant Rollback pinned the domains, new
    /// deployments no longer take them: keyrot then promotes its redeploy, which is a rebuild of the
    /// very deployment they served, with the new variables. Asked again on the next poll.
    async fn serving(
        &self,
        secret_name: &str,
        target: &VercelTarget,
        token: &SecretString,
        ours: &Deployment,
    ) -> Result<DeploymentState> {
        let project = self.project(secret_name, target, token).await?;
        // A project that names no production deployment (keyrot redeployed its latest READY one) has
        // nothing to wait for beyond READY.
        let Some(served) = project.targets.and_then(|t| t.production) else {
            return Ok(DeploymentState::Ready);
        };
        let newer = match (served.created_at, ours.created_at) {
            (Some(theirs), Some(ours)) => theirs > ours,
            _ => false,
        };
        if served.id == ours.id || newer {
            return Ok(DeploymentState::Ready);
        }
        if project.auto_assign != Some(false) {
            // The domains move to a READY deployment by themselves, a moment after it is READY.
            return Ok(DeploymentState::Building);
        }
        let id = ours.id.as_str();
        let url = http::endpoint(
            &self.base_url,
            &["v10", "projects", &target.project, "promote", id],
        )?;
        tracing::info!(deployment = %id, "the production domains do not serve keyrot's redeploy yet; promoting it");
        let response = http::send(self.retry, SYSTEM, "POST promote", || {
            self.authed(self.http.post(url.clone()), token, target)
        })
        .await?;
        // A promote already under way may be refused (a conflict): the next poll looks again.
        if !response.status().is_success() {
            tracing::warn!(
                status = response.status().as_u16(),
                "Vercel did not accept the promote; asking again on the next poll"
            );
        }
        Ok(DeploymentState::Building)
    }
}

/// A variable's `target` is a list of environments, or one environment.
fn targets_include(target: Option<&Value>, environment: &str) -> bool {
    match target {
        Some(Value::Array(list)) => list.iter().any(|t| t.as_str() == Some(environment)),
        Some(Value::String(one)) => one == environment,
        _ => false,
    }
}

async fn read_json<T: serde::de::DeserializeOwned>(
    secret_name: &str,
    target: &VercelTarget,
    response: Response,
    operation: &str,
) -> Result<T> {
    let refusal = Refusal {
        secret: secret_name,
        credential_field: "targets[].token_secret",
        credential_secret: &target.token_secret,
        credential_kind: "Vercel token with access to the project (and team)",
        not_found: Some((
            "targets[].project",
            "check the target's project and team_id",
        )),
    };
    http::read_json(SYSTEM, operation, response, refusal).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_variable_targets_one_or_several_environments() {
        assert!(targets_include(
            Some(&json!(["production", "preview"])),
            "preview"
        ));
        assert!(targets_include(Some(&json!("production")), "production"));
        assert!(!targets_include(Some(&json!(["preview"])), "production"));
        assert!(!targets_include(None, "production"));
    }
}
