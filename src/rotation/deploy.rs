//! Waiting for redeploys, and putting the current key back on targets when testSecret fails for real.

use chrono::{DateTime, Utc};

use crate::domain::audit::{Action, AuditEvent, Outcome};
use crate::domain::keys::KeyView;
use crate::domain::targets::{Redeploy, TargetSpec};
use secrecy::SecretString;

use crate::domain::{RotationEvent, SecretDescription};
use crate::error::{Error, Result, Transience};
use crate::ports::{AuditLog, Clock, DeploymentState, Family, Ports, Target};

use super::{Evidence, Invocation, Rotator, RotatorSettings};

/// Which targets [`Deploys::put_key_on_targets`] redeploys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Redeploys {
    /// Those whose variable it changed.
    Changed,
    /// Every target that redeploys, changed or not.
    All,
}

pub(crate) enum Wait {
    Ready,
    Failed { target: String, state: String },
}

/// Following redeploys and putting a key on targets: what testSecret's rollback and the operator's
/// rollback and repair share.
pub(crate) struct Deploys<'a, F: Family> {
    pub(crate) ports: &'a Ports<F>,
    pub(crate) settings: &'a RotatorSettings,
}

impl<F: Family> Deploys<'_, F> {
    /// Follows `deployments` until all are READY or one failed. One still building when the invocation
    /// nears its deadline is a retryable error: Secrets Manager runs the step again, and it resumes
    /// following the same recorded deployments.
    pub(crate) async fn wait_for_deployments(
        &self,
        secret: &SecretDescription,
        invocation: &Invocation,
        deployments: &[(&TargetSpec, String)],
    ) -> Result<Wait> {
        let now = self.ports.clock.now();
        let give_up: DateTime<Utc> = match invocation.deadline {
            // A short invocation keeps a fifth of its time, a long one the configured margin, to fail
            // cleanly before Lambda stops it.
            Some(deadline) => deadline - self.settings.deadline_margin.min((deadline - now) / 5),
            None => now + self.settings.max_deploy_wait,
        };
        let mut building: Vec<(&TargetSpec, String)> = deployments.to_vec();
        loop {
            let mut still = Vec::new();
            for (target, id) in building {
                match self
                    .ports
                    .targets
                    .deployment_state(&secret.name, target, &id)
                    .await?
                {
                    DeploymentState::Ready => {}
                    DeploymentState::Failed(state) => {
                        return Ok(Wait::Failed {
                            target: target.label(),
                            state,
                        });
                    }
                    DeploymentState::Building => still.push((target, id)),
                }
            }
            if still.is_empty() {
                return Ok(Wait::Ready);
            }
            let poll = self.settings.deploy_poll_interval;
            let next_poll =
                self.ports.clock.now() + chrono::Duration::from_std(poll).unwrap_or_default();
            if next_poll >= give_up {
                let labels: Vec<String> = still
                    .iter()
                    .map(|(t, id)| format!("{} ({id})", t.label()))
                    .collect();
                return Err(Error::external(
                    "deployments",
                    "wait for redeploy",
                    format!(
                        "{} still building as the invocation nears its deadline",
                        labels.join(", ")
                    ),
                    Transience::Retryable,
                ));
            }
            tokio::time::sleep(poll).await;
            building = still;
        }
    }

    /// Puts `key` on every target that does not hold it, redeploys those, and waits until every
    /// redeploy is READY. Returns the targets changed. With [`Redeploys::All`], a target that already
    /// holds the key is redeployed too: after an interrupted attempt, a target may hold the key in its
    /// variables while its live deployment (whose redeploy failed or was never started) serves another.
    pub(crate) async fn put_key_on_targets(
        &self,
        secret: &SecretDescription,
        targets: &[TargetSpec],
        key: &SecretString,
        redeploys: Redeploys,
    ) -> Result<Vec<String>> {
        let fingerprint = KeyView::of(key).fingerprint;
        let mut changed = Vec::new();
        let mut deployments = Vec::new();
        for target in targets {
            let holds = self
                .ports
                .targets
                .held_fingerprint(&secret.name, target)
                .await?
                .as_deref()
                == Some(fingerprint.as_str());
            if !holds {
                self.ports.targets.push(&secret.name, target, key).await?;
                changed.push(target.label());
            }
            if (!holds || redeploys == Redeploys::All) && target.redeploys() {
                deployments.push((
                    target,
                    self.ports.targets.redeploy(&secret.name, target).await?,
                ));
            }
        }
        match self
            .wait_for_deployments(secret, &Invocation::default(), &deployments)
            .await?
        {
            Wait::Ready => Ok(changed),
            Wait::Failed { target, state } => Err(Error::protocol(
                &secret.name,
                format!(
                    "the redeploy of {target} ended {state}; its live deployment still serves the key it had"
                ),
            )),
        }
    }
}

impl<F: Family> Rotator<'_, F> {
    pub(crate) fn deploys(&self) -> Deploys<'_, F> {
        Deploys {
            ports: self.ports,
            settings: &self.settings,
        }
    }

    /// Puts the AWSCURRENT key back on every target that no longer holds it, redeploys them and waits
    /// for the redeploys; audited as `rollback`. Never fails the step by itself: the step fails with
    /// the cause that made the rollback necessary.
    pub(super) async fn roll_back_targets(
        &self,
        event: &RotationEvent,
        invocation: &Invocation,
        secret: &SecretDescription,
        targets: &[TargetSpec],
        new_view: &KeyView,
        evidence: &mut Evidence,
    ) -> Result<()> {
        if targets.is_empty() {
            return Ok(());
        }
        let started = self.ports.clock.now();
        let result = self
            .restore_current_key(event, invocation, secret, targets)
            .await;
        let (outcome, error) = match &result {
            Ok(restored) => {
                evidence.notes.push(format!(
                    "The current key was put back on {}.",
                    if restored.is_empty() {
                        "no target (none had changed)".to_owned()
                    } else {
                        restored.join(", ")
                    }
                ));
                (Outcome::Succeeded, None)
            }
            Err(err) => {
                evidence.notes.push(format!(
                    "Putting the current key back on the targets failed: {err}."
                ));
                (Outcome::Failed, Some(err.to_string()))
            }
        };
        let audit = AuditEvent::new(
            started,
            (&secret.arn, &secret.name),
            Action::Rollback,
            outcome,
            &event.client_request_token,
        )
        .provider(evidence.provider.unwrap_or_default())
        .keys(evidence.old_key.as_ref(), Some(new_view))
        .triggered(evidence.trigger)
        .by(&evidence.actor)
        .targets(targets.iter().map(TargetSpec::label).collect())
        .took(started, self.ports.clock.now())
        .error(error);
        self.ports.record_quietly(&audit).await;
        Ok(())
    }

    async fn restore_current_key(
        &self,
        event: &RotationEvent,
        invocation: &Invocation,
        secret: &SecretDescription,
        targets: &[TargetSpec],
    ) -> Result<Vec<String>> {
        let current = self.ports.current_value(&event.secret_id, secret).await?;
        let token = &event.client_request_token;
        let mut restored = Vec::new();
        let mut deployments = Vec::new();
        for target in targets {
            let (put_back, deployment) = self
                .restore_target(secret, token, target, &current.api_key)
                .await?;
            if put_back {
                restored.push(target.label());
            }
            deployments.extend(deployment.map(|id| (target, id)));
        }
        match self
            .deploys()
            .wait_for_deployments(secret, invocation, &deployments)
            .await?
        {
            Wait::Ready => {
                for (target, _) in &deployments {
                    let record = target.deploy_record(Redeploy::Rollback);
                    self.ports
                        .audit
                        .clear_deployment(&secret.name, token, &record)
                        .await?;
                }
                Ok(restored)
            }
            Wait::Failed { target, state } => Err(Error::protocol(
                &secret.name,
                format!(
                    "the rollback redeploy of {target} ended {state}; the target's live deployment is unchanged"
                ),
            )),
        }
    }

    /// Puts the current `key` back on `target` if it lost it; returns whether it did, and the rollback
    /// redeploy to follow. The record of this rotation's redeploy (`DEPLOY#<token>#<target>`) is
    /// cleared only after the rollback redeploy is recorded: a retry after a crash in between still
    /// sees that the pending key was deployed there and redeploys the current one.
    async fn restore_target(
        &self,
        secret: &SecretDescription,
        token: &str,
        target: &TargetSpec,
        key: &SecretString,
    ) -> Result<(bool, Option<String>)> {
        let fingerprint = KeyView::of(key).fingerprint;
        let held = self
            .ports
            .targets
            .held_fingerprint(&secret.name, target)
            .await?;
        let holds_current = held.as_deref() == Some(fingerprint.as_str());
        if !holds_current {
            self.ports.targets.push(&secret.name, target, key).await?;
        }
        if !target.redeploys() {
            return Ok((!holds_current, None));
        }
        let deployment = match self
            .rollback_redeploy(secret, token, target, holds_current)
            .await?
        {
            RollbackRedeploy::Follow(deployment) => Some(deployment),
            RollbackRedeploy::Start => {
                let deployment = self.ports.targets.redeploy(&secret.name, target).await?;
                let record = target.deploy_record(Redeploy::Rollback);
                self.ports
                    .audit
                    .record_deployment(&secret.name, token, &record, &deployment)
                    .await?;
                Some(deployment)
            }
            RollbackRedeploy::None => None,
        };
        // A retried rotation must redeploy the pending key anew, not follow the failed deployment.
        let record = target.deploy_record(Redeploy::Rotation);
        self.ports
            .audit
            .clear_deployment(&secret.name, token, &record)
            .await?;
        Ok((!holds_current, deployment))
    }

    /// What the rollback redeploy of `target` is, given whether the target held the current key
    /// before this attempt put it back.
    async fn rollback_redeploy(
        &self,
        secret: &SecretDescription,
        token: &str,
        target: &TargetSpec,
        holds_current: bool,
    ) -> Result<RollbackRedeploy> {
        let record = target.deploy_record(Redeploy::Rollback);
        let audit = &self.ports.audit;
        if !holds_current {
            // A rollback redeploy recorded before this push predates it: it cannot serve what was
            // just put back.
            audit.clear_deployment(&secret.name, token, &record).await?;
            return Ok(RollbackRedeploy::Start);
        }
        let Some(deployment) = audit.deployment(&secret.name, token, &record).await? else {
            // Put back by an earlier attempt that died before redeploying, or never changed.
            let rotation = target.deploy_record(Redeploy::Rotation);
            let deployed = audit.deployment(&secret.name, token, &rotation).await?;
            return Ok(if deployed.is_some() {
                RollbackRedeploy::Start
            } else {
                RollbackRedeploy::None
            });
        };
        // Put back and redeployed by an earlier attempt: follow its redeploy, unless that one failed,
        // which left the live deployment on the pending key; then redeploy anew.
        let state = self
            .ports
            .targets
            .deployment_state(&secret.name, target, &deployment)
            .await?;
        if matches!(state, DeploymentState::Failed(_)) {
            audit.clear_deployment(&secret.name, token, &record).await?;
            return Ok(RollbackRedeploy::Start);
        }
        Ok(RollbackRedeploy::Follow(deployment))
    }
}

/// A rollback's redeploy of one target.
enum RollbackRedeploy {
    /// An earlier attempt started it: follow it.
    Follow(String),
    /// Start one now.
    Start,
    /// The target never changed: nothing to redeploy.
    None,
}
