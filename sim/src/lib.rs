//! A stateful HTTP simulator of the OpenAI and Anthropic endpoints keyrot
//! uses to mint, probe and retire API keys.
//!
//! Tests start one in-process with [`Simulator::start`], seed it through the
//! `openai_*` / `anthropic_*` methods, point keyrot's clients at
//! [`Simulator::openai_base_url`] / [`Simulator::anthropic_base_url`], and
//! then check what happened (key liveness, [`Simulator::calls`]). Faults
//! ([`Fault`]) make chosen calls fail, stall or lose their connection.
//!
//! The `keyrot-sim` binary runs the same server as a process for the local
//! demo, which drives it through the `/_sim/` control API instead.

mod anthropic;
mod control;
mod faults;
mod openai;
mod reply;
mod server;
mod state;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use faults::{Fault, FaultKind};
use state::Shared;

/// A service account as [`Simulator::openai_service_accounts`] reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceAccountInfo {
    pub id: String,
    pub name: String,
    pub created_at: i64,
    pub api_key_id: Option<String>,
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

    /// `"active"`, `"inactive"` or `"archived"`; `None` for an unknown id.
    pub fn anthropic_key_status(&self, api_key_id: &str) -> Option<String> {
        self.shared.anthropic().key_status(api_key_id)
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
