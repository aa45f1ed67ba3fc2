//! A stateful HTTP simulator of the OpenAI, Anthropic, Stripe and GitHub
//! endpoints keyrot uses to mint, probe and retire keys, and of the Vercel and Render
//! endpoints it uses to hand a new key to the services that use it.
//!
//! Tests start one in-process with [`Simulator::start`], seed it through the
//! `openai_*` / `anthropic_*` / `vercel_*` / `render_*` methods, point
//! keyrot's clients at the `*_base_url` methods, and then check what happened
//! (key liveness, the value a deployed service is running with,
//! [`Simulator::calls`]). Faults ([`Fault`]) make chosen calls fail, stall or
//! lose their connection, on every provider alike.
//!
//! The `keyrot-sim` binary runs the same server as a process for the local
//! demo, which drives it through the `/_sim/` control API instead.

mod anthropic;
mod builds;
mod control;
mod credentials;
mod faults;
mod github;
mod openai;
mod proxy;
mod render;
mod reply;
mod runtime;
mod server;
mod state;
mod stripe;
mod vercel;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use control::CredentialSystem;
pub use faults::{Fault, FaultKind};
pub use proxy::{FaultPlan, FaultProxy, Seen, WireError, WireFault};
pub use runtime::{Outcome, RuntimeApi};
use state::Shared;

/// A service account as [`Simulator::openai_service_accounts`] reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceAccountInfo {
    pub id: String,
    pub name: String,
    pub created_at: i64,
    pub api_key_id: Option<String>,
}

/// A Vercel environment variable as [`Simulator::vercel_env`] reports it,
/// value included (the HTTP API never returns `sensitive` values).
#[derive(Debug, Clone, PartialEq)]
pub struct VercelEnvInfo {
    pub id: String,
    pub key: String,
    pub value: String,
    /// `"encrypted"`, `"sensitive"`, `"plain"`, `"secret"` or `"system"`.
    pub env_type: String,
    /// Each `"production"`, `"preview"` or `"development"`.
    pub targets: Vec<String>,
    pub comment: Option<String>,
}

/// A Vercel deployment as [`Simulator::vercel_deployments`] reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct VercelDeploymentInfo {
    pub id: String,
    /// `"production"` or `"preview"`.
    pub target: String,
    /// `"BUILDING"`, `"READY"`, `"ERROR"` or `"CANCELED"`.
    pub ready_state: String,
    /// Unix milliseconds.
    pub created: i64,
    /// The code it runs: a first deployment's own, and a redeploy's copied from what it rebuilt.
    pub commit: String,
}

/// One request the simulator received (control API calls excluded).
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    /// The request path, without the query string.
    pub path: String,
    /// The status answered; 0 while the request is in flight or when a
    /// [`FaultKind::Drop`] closed the connection instead of answering.
    pub status: u16,
}

/// A running simulator. The server stops, and its connections close, when
/// this is dropped.
pub struct Simulator {
    base_url: String,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Simulator {
    /// Binds `127.0.0.1:0` and serves in a background tokio task until dropped.
    pub async fn start() -> std::io::Result<Simulator> {
        Self::start_on(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await
    }

    /// Binds `addr` and serves in a background tokio task until dropped.
    pub async fn start_on(addr: SocketAddr) -> std::io::Result<Simulator> {
        let listener = TcpListener::bind(addr).await?;
        let mut local = listener.local_addr()?;
        // A wildcard bind is reachable on loopback; clients cannot connect to 0.0.0.0.
        if local.ip().is_unspecified() {
            local.set_ip(Ipv4Addr::LOCALHOST.into());
        }
        let shared = Arc::new(Shared::new());
        let server = tokio::spawn(server::serve(listener, shared.clone()));
        Ok(Simulator {
            base_url: format!("http://{local}"),
            shared,
            server,
        })
    }

    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub fn base_url(&self) -> String {
        self.base_url.clone()
    }

    /// Base URL for an OpenAI client: paths below it omit `/v1`.
    pub fn openai_base_url(&self) -> String {
        format!("{}/v1", self.base_url)
    }

    /// Base URL for an Anthropic client: paths below it carry `/v1`.
    pub fn anthropic_base_url(&self) -> String {
        self.base_url.clone()
    }

    // ---- Admin credentials ---------------------------------------------

    /// A credential a person creates in `system`'s console: (value, id).
    pub fn create_credential(&self, system: CredentialSystem) -> (String, String) {
        control::with_credentials(&self.shared, system, |all| {
            let created = all.create("Created in the console", None);
            (created.value.clone(), created.id.clone())
        })
    }

    /// Whether `system` accepts the credential `value` (an admin key or a token).
    pub fn credential_works(&self, system: CredentialSystem, value: &str) -> bool {
        control::with_credentials(&self.shared, system, |all| all.works(value))
    }

    /// Deletes a credential by id or value, as a person would in the console.
    pub fn delete_credential(&self, system: CredentialSystem, id_or_value: &str) -> bool {
        control::with_credentials(&self.shared, system, |all| all.delete(id_or_value))
    }

    /// The ids of `system`'s live credentials, oldest first.
    pub fn live_credentials(&self, system: CredentialSystem) -> Vec<String> {
        control::with_credentials(&self.shared, system, |all| {
            all.live().map(|c| c.id.clone()).collect()
        })
    }

    // ---- OpenAI -------------------------------------------------------

    /// The organization admin key (`sk-admin-...`), created at start.
    pub fn openai_admin_key(&self) -> String {
        self.shared.openai().admin_key().to_owned()
    }

    /// Creates an empty project and returns its id (`proj_...`).
    pub fn openai_create_project(&self) -> String {
        self.shared.openai().create_project()
    }

    /// Creates a key a person made in the dashboard (owner type `user`) and
    /// returns `(value, id)`. An unknown `project_id` is created first, so a
    /// test may choose its own project ids.
    pub fn openai_create_user_key(&self, project_id: &str) -> (String, String) {
        let mut openai = self.shared.openai();
        openai.ensure_project(project_id);
        // `ensure_project` just guaranteed the project exists.
        openai.create_user_key(project_id).unwrap_or_default()
    }

    /// Whether `GET /v1/models` would succeed with this key (without marking it used).
    pub fn openai_key_works(&self, key: &str) -> bool {
        self.shared.openai().key_works(key)
    }

    /// The project's live service accounts in creation order; empty for an unknown project.
    pub fn openai_service_accounts(&self, project_id: &str) -> Vec<ServiceAccountInfo> {
        self.shared.openai().service_accounts(project_id)
    }

    /// Backdates (or postdates) a service account so tests can age it.
    /// Unknown ids are ignored.
    pub fn openai_set_created_at(&self, service_account_id: &str, unix_secs: i64) {
        self.shared
            .openai()
            .set_created_at(service_account_id, unix_secs);
    }

    /// When the key last succeeded on `/v1/models`; `None` if never or unknown.
    pub fn openai_last_used_at(&self, api_key_id: &str) -> Option<i64> {
        self.shared.openai().last_used_at(api_key_id)
    }

    // ---- Anthropic ----------------------------------------------------

    /// The Admin API key (`sk-ant-admin01-...`), created at start.
    pub fn anthropic_admin_key(&self) -> String {
        self.shared.anthropic().admin_key().to_owned()
    }

    /// Creates an active key as a person would in the Console; returns `(value, id)`.
    pub fn anthropic_create_key(&self, name: &str) -> (String, String) {
        self.shared.anthropic().create_key(name)
    }

    /// Whether `GET /v1/models` would succeed with this key.
    pub fn anthropic_key_works(&self, key: &str) -> bool {
        self.shared.anthropic().key_works(key)
    }

    /// A service's request with the key now, as the usage report counts it; false for a key that
    /// does not work.
    pub fn anthropic_use_key(&self, key: &str) -> bool {
        self.shared.anthropic().record_use(key)
    }

    /// `"active"`, `"inactive"` or `"archived"`; `None` for an unknown id.
    pub fn anthropic_key_status(&self, api_key_id: &str) -> Option<String> {
        self.shared.anthropic().key_status(api_key_id)
    }

    // ---- Stripe -------------------------------------------------------

    /// Base URL for a Stripe client: paths below it carry `/v1`.
    pub fn stripe_base_url(&self) -> String {
        self.base_url.clone()
    }

    /// The account (`acct_...`) keys are made in unless a test names another, created at start.
    pub fn stripe_account(&self) -> String {
        self.shared.stripe().default_account().to_owned()
    }

    /// A live secret key of `account` (created when unknown), as a person creates it in the Dashboard.
    pub fn stripe_create_key(&self, account: &str) -> String {
        self.shared.stripe().create_key(account, true)
    }

    /// A test mode secret key of `account`.
    pub fn stripe_create_test_key(&self, account: &str) -> String {
        self.shared.stripe().create_key(account, false)
    }

    /// Deletes a key as a person does in the Dashboard; false when no such key is alive.
    pub fn stripe_delete_key(&self, key: &str) -> bool {
        self.shared.stripe().delete_key(key)
    }

    /// Whether `GET /v1/balance` would succeed with this key.
    pub fn stripe_key_works(&self, key: &str) -> bool {
        self.shared.stripe().key_works(key)
    }

    // ---- GitHub -------------------------------------------------------

    /// Base URL for a GitHub client: paths below it carry no version (`/user`).
    pub fn github_base_url(&self) -> String {
        self.base_url.clone()
    }

    /// A classic token (`ghp_...`) of `login` with `scopes`, as a person generates it.
    pub fn github_create_token(&self, login: &str, scopes: &[&str]) -> String {
        self.shared.github().create_token(login, Some(scopes))
    }

    /// A fine-grained token (`github_pat_...`) of `login`, whose permissions GitHub does not report.
    pub fn github_create_fine_grained_token(&self, login: &str) -> String {
        self.shared.github().create_token(login, None)
    }

    /// Whether `GET /user` would succeed with this token.
    pub fn github_token_works(&self, token: &str) -> bool {
        self.shared.github().token_works(token)
    }

    // ---- Vercel -------------------------------------------------------

    /// Base URL for a Vercel client: paths below it carry their version (`/v10/...`).
    pub fn vercel_base_url(&self) -> String {
        self.base_url.clone()
    }

    /// The one access token (`vcp_...`) the API accepts, created at start.
    pub fn vercel_token(&self) -> String {
        self.shared.vercel().token().to_owned()
    }

    /// The team (`team_...`) every call must name in its `teamId` parameter.
    pub fn vercel_team_id(&self) -> String {
        self.shared.vercel().team_id().to_owned()
    }

    /// Creates a project (`prj_...`) with one READY production deployment
    /// built from an empty env. Names are unique, as on Vercel: an existing
    /// name returns that project's id.
    pub fn vercel_create_project(&self, name: &str) -> String {
        self.shared.vercel().create_project(name)
    }

    /// How long deployments created from now on build (default 300 ms).
    pub fn vercel_set_build_millis(&self, millis: u64) {
        self.shared.vercel().builds().set_build_millis(millis);
    }

    /// The next `n` deployments created end in ERROR instead of READY.
    pub fn vercel_fail_next_deployments(&self, n: u32) {
        self.shared.vercel().builds().fail_next(n);
    }

    /// Cancels a deployment that is still building; false if there is none.
    /// An Instant Rollback in the dashboard: the production domains go back to `deployment_id` (a
    /// READY production deployment) and stay there until a deployment is promoted.
    pub fn vercel_instant_rollback(&self, project_id: &str, deployment_id: &str) -> bool {
        self.shared
            .vercel()
            .instant_rollback(project_id, deployment_id)
    }

    /// A push to `branch`: a READY preview deployment built from the variables as they are now.
    pub fn vercel_create_preview(&self, project_id: &str, branch: &str) -> Option<String> {
        self.shared.vercel().create_preview(project_id, branch)
    }

    /// Adds a plain variable for every environment (someone else's configuration).
    pub fn vercel_add_plain_env(&self, project_id: &str, key: &str, value: &str) -> bool {
        self.shared.vercel().add_plain_env(project_id, key, value)
    }

    /// The deployment the project's production domains serve.
    pub fn vercel_production_deployment(&self, project_id: &str) -> Option<String> {
        self.shared.vercel().production_of(project_id)
    }

    pub fn vercel_cancel_deployment(&self, deployment_id: &str) -> bool {
        self.shared.vercel().cancel(deployment_id)
    }

    /// The project's variables (by project id or name) in creation order,
    /// values included; empty for an unknown project.
    pub fn vercel_env(&self, project_id: &str) -> Vec<VercelEnvInfo> {
        self.shared.vercel().env_info(project_id)
    }

    /// The project's deployments, oldest first; empty for an unknown project.
    pub fn vercel_deployments(&self, project_id: &str) -> Vec<VercelDeploymentInfo> {
        self.shared.vercel().deployment_info(project_id)
    }

    /// What the live service reads: `key` in the env snapshot of the newest
    /// READY deployment of `target` (`"production"`, `"preview"`).
    pub fn vercel_served_value(&self, project_id: &str, target: &str, key: &str) -> Option<String> {
        self.shared.vercel().served_value(project_id, target, key)
    }

    // ---- Render -------------------------------------------------------

    /// Base URL for a Render client: paths below it carry `/v1`.
    pub fn render_base_url(&self) -> String {
        self.base_url.clone()
    }

    /// The API key (`rnd_...`) the API accepts, created at start.
    pub fn render_token(&self) -> String {
        self.shared.render().token().to_owned()
    }

    /// Creates a service (`srv-...`) with an empty env and one `live` deploy.
    pub fn render_create_service(&self) -> String {
        self.shared.render().create_service()
    }

    /// How long deploys created from now on build (default 300 ms).
    pub fn render_set_build_millis(&self, millis: u64) {
        self.shared.render().builds().set_build_millis(millis);
    }

    /// The next `n` deploys created end in `build_failed` instead of `live`.
    pub fn render_fail_next_deploys(&self, n: u32) {
        self.shared.render().builds().fail_next(n);
    }

    /// Cancels a deploy that is still building; false if there is none.
    pub fn render_cancel_deploy(&self, service_id: &str, deploy_id: &str) -> bool {
        self.shared.render().cancel(service_id, deploy_id)
    }

    /// The variable as set now (what the next deploy would build with).
    pub fn render_env_value(&self, service_id: &str, key: &str) -> Option<String> {
        self.shared.render().env_value(service_id, key)
    }

    /// What the live service reads: `key` in the snapshot of the `live` deploy.
    pub fn render_served_value(&self, service_id: &str, key: &str) -> Option<String> {
        self.shared.render().served_value(service_id, key)
    }

    /// `(id, status)` of the service's deploys, oldest first.
    pub fn render_deploys(&self, service_id: &str) -> Vec<(String, String)> {
        self.shared.render().deploys(service_id)
    }

    /// Everything the simulator holds that a rotation can change (keys and service accounts,
    /// variables, deployments), as `/_sim/state` answers it: two equal states mean nothing changed.
    pub fn state(&self) -> serde_json::Value {
        control::state(&self.shared)
    }

    // ---- Faults and call log ------------------------------------------

    /// Adds a fault; its `nth` counts matching calls from now on.
    pub fn inject(&self, fault: Fault) {
        self.shared.faults().inject(fault);
    }

    /// Removes every fault.
    pub fn clear_faults(&self) {
        self.shared.faults().clear();
    }

    /// Every request received so far, in arrival order (control API excluded).
    pub fn calls(&self) -> Vec<Call> {
        self.shared.calls().clone()
    }
}
