//! Render: one environment variable set with `PUT`, then a deploy followed until `live`. Render returns
//! values, so the fingerprint a service holds is computed from the value itself.

use reqwest::{Response, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;

use crate::adapters::admin_keys::AdminKeys;
use crate::adapters::http::{self, Refusal, RetryPolicy};
use crate::domain::admin::AdminRequest;
use crate::domain::keys::fingerprint;
use crate::domain::targets::RenderTarget;
use crate::error::Result;
use crate::ports::DeploymentState;

const SYSTEM: &str = "render";

#[derive(Clone)]
pub struct RenderClient {
    http: reqwest::Client,
    base_url: String,
    tokens: AdminKeys,
    retry: RetryPolicy,
}

#[derive(Deserialize)]
struct EnvVar {
    value: Option<String>,
}

#[derive(Deserialize)]
struct Deploy {
    id: String,
    status: Option<String>,
}

impl RenderClient {
    pub fn new(http: reqwest::Client, base_url: impl Into<String>, tokens: AdminKeys) -> Self {
        RenderClient {
            http,
            base_url: base_url.into(),
            tokens,
            retry: RetryPolicy::default(),
        }
    }

    /// The target's environment variable's endpoint.
    fn env_var_url(&self, target: &RenderTarget) -> Result<reqwest::Url> {
        http::endpoint(
            &self.base_url,
            &[
                "v1",
                "services",
                &target.service_id,
                "env-vars",
                &target.env_key,
            ],
        )
    }

    async fn token(&self, secret_name: &str, target: &RenderTarget) -> Result<SecretString> {
        self.tokens
            .read(AdminRequest {
                wants: Some(crate::domain::credential::CredentialKind::RenderToken),
                managed: secret_name,
                field: "targets[].token_secret",
                admin_secret: &target.token_secret,
                resources: &[&target.service_id],
            })
            .await
    }

    pub async fn held_fingerprint(
        &self,
        secret_name: &str,
        target: &RenderTarget,
    ) -> Result<Option<String>> {
        let token = self.token(secret_name, target).await?;
        let url = self.env_var_url(target)?;
        let response = http::send(self.retry, SYSTEM, "GET env-var", || {
            self.http
                .get(url.clone())
                .bearer_auth(token.expose_secret())
        })
        .await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let var: EnvVar = read_json(secret_name, target, response, "GET env-var").await?;
        Ok(var
            .value
            .map(|value| fingerprint(&SecretString::from(value))))
    }

    pub async fn push(
        &self,
        secret_name: &str,
        target: &RenderTarget,
        key: &SecretString,
    ) -> Result<()> {
        let token = self.token(secret_name, target).await?;
        let url = self.env_var_url(target)?;
        let body = json!({ "value": key.expose_secret() });
        let response = http::send(self.retry, SYSTEM, "PUT env-var", || {
            self.http
                .put(url.clone())
                .bearer_auth(token.expose_secret())
                .json(&body)
        })
        .await?;
        read_json::<serde_json::Value>(secret_name, target, response, "PUT env-var").await?;
        Ok(())
    }

    pub async fn redeploy(&self, secret_name: &str, target: &RenderTarget) -> Result<String> {
        let token = self.token(secret_name, target).await?;
        let url = http::endpoint(
            &self.base_url,
            &["v1", "services", &target.service_id, "deploys"],
        )?;
        let response = http::send(self.retry, SYSTEM, "POST deploys", || {
            self.http
                .post(url.clone())
                .bearer_auth(token.expose_secret())
                .json(&json!({}))
        })
        .await?;
        let deploy: Deploy = read_json(secret_name, target, response, "POST deploys").await?;
        Ok(deploy.id)
    }

    pub async fn deployment_state(
        &self,
        secret_name: &str,
        target: &RenderTarget,
        id: &str,
    ) -> Result<DeploymentState> {
        let token = self.token(secret_name, target).await?;
        let url = http::endpoint(
            &self.base_url,
            &["v1", "services", &target.service_id, "deploys", id],
        )?;
        let response = http::send(self.retry, SYSTEM, "GET deploy", || {
            self.http
                .get(url.clone())
                .bearer_auth(token.expose_secret())
        })
        .await?;
        let deploy: Deploy = read_json(secret_name, target, response, "GET deploy").await?;
        Ok(match deploy.status.as_deref() {
            // Deactivated: a later deploy replaced this one. That deploy started after keyrot set the
            // variable, so it serves the value keyrot set as well.
            Some("live" | "deactivated") => DeploymentState::Ready,
            Some(state @ ("build_failed" | "update_failed" | "canceled" | "pre_deploy_failed")) => {
                DeploymentState::Failed(state.to_owned())
            }
            _ => DeploymentState::Building,
        })
    }
}

async fn read_json<T: serde::de::DeserializeOwned>(
    secret_name: &str,
    target: &RenderTarget,
    response: Response,
    operation: &str,
) -> Result<T> {
    let refusal = Refusal {
        secret: secret_name,
        credential_field: "targets[].token_secret",
        credential_secret: &target.token_secret,
        credential_kind: "Render API key (rnd_...) with access to the service",
        not_found: Some(("targets[].service_id", "check the target's service_id")),
    };
    http::read_json(SYSTEM, operation, response, refusal).await
}
