//! Deployment targets in memory.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};

use secrecy::{ExposeSecret, SecretString};

use crate::domain::targets::TargetSpec;
use crate::error::Result;
use crate::ports::{DeploymentState, Target};

/// Targets in memory: what each holds, the pushes, and deployments that build for a few polls.
#[derive(Default)]
pub(crate) struct FakeTargets {
    pub(crate) held: RefCell<BTreeMap<String, String>>,
    pub(crate) pushes: Cell<u32>,
    /// (deployment id, target label, key deployed)
    pub(crate) deployments: RefCell<Vec<(String, String, String)>>,
    pub(crate) polls: RefCell<BTreeMap<String, u32>>,
    /// Polls a deployment answers Building before it is Ready.
    pub(crate) build_polls: Cell<u32>,
    /// The next deployments end in ERROR.
    pub(crate) fail_deployments: Cell<u32>,
    pub(crate) failed: RefCell<BTreeSet<String>>,
    /// Live deployments per target label that were built before its variable last changed.
    pub(crate) stale: RefCell<BTreeMap<String, Vec<String>>>,
}

impl FakeTargets {
    /// The target labelled `label` holds `key` in its variable.
    pub(crate) fn hold(&self, label: &str, key: &str) {
        self.held
            .borrow_mut()
            .insert(label.to_owned(), key.to_owned());
    }

    /// The key the target labelled `label` holds in its variable.
    pub(crate) fn held_by(&self, label: &str) -> Option<String> {
        self.held.borrow().get(label).cloned()
    }

    pub(crate) fn served(&self, label: &str) -> Option<String> {
        // What the newest deployment that reached Ready serves.
        let polls = self.polls.borrow();
        self.deployments
            .borrow()
            .iter()
            .rev()
            .find(|(id, l, _)| {
                l == label
                    && !self.failed.borrow().contains(id)
                    && polls.get(id).copied().unwrap_or(0) > self.build_polls.get()
            })
            .map(|(_, _, key)| key.clone())
    }
}

impl Target for FakeTargets {
    async fn stale_deployments(
        &self,
        _secret_name: &str,
        target: &TargetSpec,
        _now: chrono::DateTime<chrono::Utc>,
        _minted: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<Vec<String>> {
        Ok(self
            .stale
            .borrow()
            .get(&target.label())
            .cloned()
            .unwrap_or_default())
    }

    async fn held_fingerprint(
        &self,
        _secret_name: &str,
        target: &TargetSpec,
    ) -> Result<Option<String>> {
        Ok(self
            .held
            .borrow()
            .get(&target.label())
            .map(|key| crate::domain::keys::fingerprint(&SecretString::from(key.clone()))))
    }

    async fn push(
        &self,
        _secret_name: &str,
        target: &TargetSpec,
        key: &SecretString,
    ) -> Result<()> {
        self.pushes.set(self.pushes.get() + 1);
        self.held
            .borrow_mut()
            .insert(target.label(), key.expose_secret().to_owned());
        Ok(())
    }

    async fn redeploy(&self, _secret_name: &str, target: &TargetSpec) -> Result<String> {
        let mut deployments = self.deployments.borrow_mut();
        let id = format!("dpl_{}", deployments.len() + 1);
        let key = self
            .held
            .borrow()
            .get(&target.label())
            .cloned()
            .unwrap_or_default();
        if self.fail_deployments.get() > 0 {
            self.fail_deployments.set(self.fail_deployments.get() - 1);
            self.failed.borrow_mut().insert(id.clone());
        }
        deployments.push((id.clone(), target.label(), key));
        Ok(id)
    }

    async fn deployment_state(
        &self,
        _secret_name: &str,
        _target: &TargetSpec,
        id: &str,
    ) -> Result<DeploymentState> {
        let mut polls = self.polls.borrow_mut();
        let count = polls.entry(id.to_owned()).or_default();
        *count += 1;
        if *count <= self.build_polls.get() {
            return Ok(DeploymentState::Building);
        }
        if self.failed.borrow().contains(id) {
            return Ok(DeploymentState::Failed("ERROR".into()));
        }
        Ok(DeploymentState::Ready)
    }
}
