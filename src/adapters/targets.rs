//! [`Target`] for every platform: dispatches each call to the adapter of the target's type.

use secrecy::SecretString;

use crate::adapters::render::RenderClient;
use crate::adapters::vercel::VercelClient;
use crate::domain::targets::TargetSpec;
use crate::error::Result;
use crate::ports::{DeploymentState, Target};

pub struct PlatformTargets {
    pub vercel: VercelClient,
    pub render: RenderClient,
}

impl Target for PlatformTargets {
    async fn stale_deployments(
        &self,
        secret_name: &str,
        target: &TargetSpec,
        now: chrono::DateTime<chrono::Utc>,
        minted: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<Vec<String>> {
        match target {
            TargetSpec::Vercel(v) => {
                self.vercel
                    .stale_previews(secret_name, v, now, minted)
                    .await
            }
            TargetSpec::Render(_) => Ok(Vec::new()),
        }
    }

    async fn held_fingerprint(
        &self,
        secret_name: &str,
        target: &TargetSpec,
    ) -> Result<Option<String>> {
        match target {
            TargetSpec::Vercel(v) => self.vercel.held_fingerprint(secret_name, v).await,
            TargetSpec::Render(r) => self.render.held_fingerprint(secret_name, r).await,
        }
    }

    async fn holds(
        &self,
        secret_name: &str,
        target: &TargetSpec,
        fingerprint: &str,
    ) -> Result<bool> {
        match target {
            TargetSpec::Vercel(v) => Ok(self
                .vercel
                .fingerprints(secret_name, v)
                .await?
                .iter()
                .any(|held| held.as_deref() == Some(fingerprint))),
            TargetSpec::Render(r) => Ok(self
                .render
                .held_fingerprint(secret_name, r)
                .await?
                .as_deref()
                == Some(fingerprint)),
        }
    }

    async fn push(&self, secret_name: &str, target: &TargetSpec, key: &SecretString) -> Result<()> {
        match target {
            TargetSpec::Vercel(v) => self.vercel.push(secret_name, v, key).await,
            TargetSpec::Render(r) => self.render.push(secret_name, r, key).await,
        }
    }

    async fn redeploy(&self, secret_name: &str, target: &TargetSpec) -> Result<String> {
        match target {
            TargetSpec::Vercel(v) => self.vercel.redeploy(secret_name, v).await,
            TargetSpec::Render(r) => self.render.redeploy(secret_name, r).await,
        }
    }

    async fn deployment_state(
        &self,
        secret_name: &str,
        target: &TargetSpec,
        deployment_id: &str,
    ) -> Result<DeploymentState> {
        match target {
            TargetSpec::Vercel(v) => {
                self.vercel
                    .deployment_state(secret_name, v, deployment_id)
                    .await
            }
            TargetSpec::Render(r) => {
                self.render
                    .deployment_state(secret_name, r, deployment_id)
                    .await
            }
        }
    }
}
