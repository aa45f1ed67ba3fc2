//! Vercel: the key goes into a project environment variable, upserted in place with its fingerprint in
//! the variable's `comment` (sensitive values cannot be read back), and reaches the service through a
//! redeploy of the latest READY production deployment.

use reqwest::{RequestBuilder, Response};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::adapters::admin_keys::AdminKeys;
use crate::adapters::http::{self, Refusal, RetryPolicy};
use crate::domain::admin::AdminRequest;
use crate::domain::keys::fingerprint;
use crate::domain::targets::VercelTarget;
use crate::error::{Error, Result};
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
    #[serde(default)]
    envs: Vec<EnvVar>,
}

#[derive(Deserialize)]
struct EnvVar {
    key: String,
    #[serde(default)]
    target: Option<Value>,
    #[serde(default)]
    comment: Option<String>,
}

#[derive(Deserialize)]
struct DeploymentList {
    deployments: Vec<ListedDeployment>,
}

#[derive(Deserialize)]
struct ListedDeployment {
    uid: String,
    name: String,
}

#[derive(Deserialize)]
struct Deployment {
    id: String,
    #[serde(rename = "readyState")]
    ready_state: Option<String>,
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
        let token = self.token(secret_name, target).await?;
        let url = http::endpoint(&self.base_url, &["v10", "projects", &target.project, "env"])?;
        let response = http::send(self.retry, SYSTEM, "GET env", || {
            self.authed(self.http.get(url.clone()), &token, target)
        })
        .await?;
        let list: EnvList = read_json(secret_name, target, response, "GET env").await?;
        Ok(target
            .environments
            .iter()
            .map(|environment| {
                list.envs
                    .iter()
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

    /// Redeploys the latest READY production deployment, so it picks up the variables as they are now.
    pub async fn redeploy(&self, secret_name: &str, target: &VercelTarget) -> Result<String> {
        let token = self.token(secret_name, target).await?;
        let url = http::endpoint(&self.base_url, &["v6", "deployments"])?;
        let response = http::send(self.retry, SYSTEM, "GET deployments", || {
            self.authed(self.http.get(url.clone()), &token, target)
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
        let url = http::endpoint(&self.base_url, &["v13", "deployments"])?;
        let body =
            json!({ "name": latest.name, "deploymentId": latest.uid, "target": "production" });
        let response = http::send(self.retry, SYSTEM, "POST deployments", || {
            self.authed(self.http.post(url.clone()), &token, target)
                .json(&body)
        })
        .await?;
        let created: Deployment =
            read_json(secret_name, target, response, "POST deployments").await?;
        Ok(created.id)
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
        Ok(match deployment.ready_state.as_deref() {
            Some("READY") => DeploymentState::Ready,
            Some(state @ ("ERROR" | "CANCELED")) => DeploymentState::Failed(state.to_owned()),
            _ => DeploymentState::Building,
        })
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
