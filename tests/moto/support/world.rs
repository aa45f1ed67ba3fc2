//! The one world every integration test runs in: moto playing AWS, the simulator playing the
//! providers, and the ports the Lambdas build (one rotator), with base URLs pointed at the simulator.

use aws_sdk_secretsmanager::types::Tag;
use keyrot::config::Config;
use keyrot::entrypoints::rotator::{self, StepFailure};
use keyrot::ports::Ports;
use keyrot::rotation::Rotator;
use keyrot::wiring::{self, Aws};
use keyrot_sim::Simulator;
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{Value, json};

use super::{Moto, moto, unique};

/// moto plus a simulator, and a rotator whose provider base URLs point at the simulator.
pub struct World {
    pub moto: Moto,
    pub sim: Simulator,
    pub ports: Ports<Aws>,
    pub config: Config,
}

impl World {
    pub async fn new() -> World {
        let sim = Simulator::start().await.expect("simulator starts");
        Self::with_urls(sim, None).await
    }

    /// A world whose OpenAI calls go to `openai_base_url` (a proxy in front of the simulator).
    pub async fn with_urls(sim: Simulator, openai_base_url: Option<String>) -> World {
        Self::with_proxies(sim, openai_base_url, None).await
    }

    /// A world whose OpenAI and Vercel calls may go through proxies in front of the simulator.
    pub async fn with_proxies(
        sim: Simulator,
        openai_base_url: Option<String>,
        vercel_base_url: Option<String>,
    ) -> World {
        Self::built(sim, openai_base_url, vercel_base_url, |_| {}).await
    }

    /// A world on the simulator `sim`, its configuration adjusted by `change` (a proxy's URL).
    pub async fn on(sim: Simulator, change: impl FnOnce(&mut Config)) -> World {
        Self::built(sim, None, None, change).await
    }

    /// A world whose configuration `change` adjusts (as an operator's environment would).
    pub async fn configured(change: impl FnOnce(&mut Config)) -> World {
        let sim = Simulator::start().await.expect("simulator starts");
        Self::built(sim, None, None, change).await
    }

    async fn built(
        sim: Simulator,
        openai_base_url: Option<String>,
        vercel_base_url: Option<String>,
        change: impl FnOnce(&mut Config),
    ) -> World {
        let moto = moto().await;
        let mut config = Config {
            openai_base_url: openai_base_url.unwrap_or_else(|| sim.openai_base_url()),
            anthropic_base_url: sim.anthropic_base_url(),
            vercel_base_url: vercel_base_url.unwrap_or_else(|| sim.vercel_base_url()),
            render_base_url: sim.render_base_url(),
            stripe_base_url: sim.stripe_base_url(),
            github_base_url: sim.github_base_url(),
            ..moto.config.clone()
        };
        change(&mut config);
        let ports = wiring::build(&config).await.expect("ports build");
        World {
            moto,
            sim,
            ports,
            config,
        }
    }

    /// An admin secret under the admin prefix that serves every test secret (`it/`), as an operator
    /// tags one (docs/security.md).
    pub async fn admin_secret(&self, value: &str) -> String {
        self.admin_secret_serving(value, Some("it/")).await
    }

    /// An admin secret whose `keyrot-admin:serves` tag is `serves` (no tag with `None`).
    pub async fn admin_secret_serving(&self, value: &str, serves: Option<&str>) -> String {
        let name = format!("keyrot-admin/{}", unique("admin"));
        self.moto
            .sm
            .create_secret()
            .name(&name)
            .secret_string(value)
            .set_tags(serves.map(|serves| {
                vec![
                    Tag::builder()
                        .key("keyrot-admin:serves")
                        .value(serves)
                        .build(),
                ]
            }))
            .send()
            .await
            .expect("admin secret");
        name
    }

    /// An OpenAI secret with a Vercel target (production and preview, sensitive) and a Render target.
    /// Returns the secret, the first key, the Vercel project and the Render service.
    pub async fn openai_secret_with_targets(
        &self,
        tags: &[(&str, &str)],
    ) -> (String, String, String, String) {
        let project = self.sim.openai_create_project();
        let (first_key, first_key_id) = self.sim.openai_create_user_key(&project);
        let admin = self.admin_secret(&self.sim.openai_admin_key()).await;
        let vercel = self.sim.vercel_create_project("web");
        let render = self.sim.render_create_service();
        let vercel_token = self.admin_secret(&self.sim.vercel_token()).await;
        let render_token = self.admin_secret(&self.sim.render_token()).await;
        let value = json!({"provider": "openai", "api_key": first_key, "api_key_id": first_key_id,
            "openai": {"project_id": project, "admin_key_secret": admin},
            "targets": [
                {"type": "vercel", "project": vercel, "team_id": self.sim.vercel_team_id(), "env_key": "OPENAI_API_KEY",
                 "environments": ["production", "preview"], "sensitive": true, "redeploy": true, "token_secret": vercel_token},
                {"type": "render", "service_id": render, "env_key": "OPENAI_API_KEY", "deploy": true, "token_secret": render_token}]});
        let name = self.moto.onboard_secret("targets", &value, tags).await;
        (name, first_key, vercel, render)
    }

    /// An OpenAI secret whose first key a person made in `project`.
    pub async fn openai_secret(&self, tags: &[(&str, &str)]) -> (String, String, String) {
        self.openai_secret_named("openai", tags).await
    }

    /// The same, named `it/<prefix>-<unique>`.
    pub async fn openai_secret_named(
        &self,
        prefix: &str,
        tags: &[(&str, &str)],
    ) -> (String, String, String) {
        let project = self.sim.openai_create_project();
        let (first_key, first_key_id) = self.sim.openai_create_user_key(&project);
        let admin = self.admin_secret(&self.sim.openai_admin_key()).await;
        let value = json!({"provider": "openai", "api_key": first_key, "api_key_id": first_key_id,
            "openai": {"project_id": project, "admin_key_secret": admin}});
        let name = self.moto.onboard_secret(prefix, &value, tags).await;
        (name, project, first_key)
    }

    pub async fn step(&self, step: &str, name: &str, token: &str) -> Result<Value, String> {
        self.invoke_raw(json!({"Step": step, "SecretId": name, "ClientRequestToken": token}))
            .await
    }

    /// Invokes the rotator with any payload, as Lambda would deliver it.
    pub async fn invoke(&self, payload: Value) -> Result<Value, StepFailure> {
        // A new key's propagation is given 3 seconds here (30 in a deployment), and a revoked key's 2,
        // so that the tests of a key refused (or accepted) for good stay short.
        let settings = keyrot::rotation::RotatorSettings {
            fresh_key_patience: std::time::Duration::from_secs(3),
            fresh_key_retry: std::time::Duration::from_millis(200),
            revocation_check: keyrot::patience::Patience::new(
                std::time::Duration::from_secs(2),
                std::time::Duration::from_millis(200),
            ),
            ..wiring::rotator_settings(&self.config)
        };
        let rotator = Rotator::new(&self.ports, settings);
        rotator::handle(&rotator, LambdaEvent::new(payload, Context::default())).await
    }

    /// [`Self::invoke`], with the error as its text.
    pub async fn invoke_raw(&self, payload: Value) -> Result<Value, String> {
        self.invoke(payload)
            .await
            .map_err(|failure| failure.0.to_string())
    }

    pub async fn rotate(&self, name: &str) -> String {
        let token = self.moto.rotate_secret(name, true).await;
        for step in ["createSecret", "setSecret", "testSecret", "finishSecret"] {
            self.step(step, name, &token)
                .await
                .unwrap_or_else(|err| panic!("{step}: {err}"));
        }
        token
    }

    pub async fn current_key(&self, name: &str) -> String {
        self.moto
            .value(name, "AWSCURRENT", None)
            .await
            .expect("current")["api_key"]
            .as_str()
            .expect("api_key")
            .to_owned()
    }

    pub fn model_calls(&self) -> usize {
        self.sim
            .calls()
            .iter()
            .filter(|c| c.path == "/v1/models")
            .count()
    }
}
