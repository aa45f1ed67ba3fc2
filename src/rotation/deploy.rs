//! Waiting for redeploys, and putting the current key back on targets when testSecret fails for real.

use chrono::{DateTime, Utc};

use crate::domain::audit::{AuditEvent, Outcome};
use crate::domain::keys::KeyView;
use crate::domain::targets::TargetSpec;
use crate::domain::{RotationEvent, SecretDescription};
use crate::error::{Error, Result, Transience};
use crate::ports::{Alerts, AuditLog, Clock, DeploymentState, KeyIssuer, SecretStore, Target};

use super::{Evidence, Invocation, Rotator};

pub(crate) enum Wait {
    Ready,
    Failed { target: String, state: String },
}

impl<S, I, T, A, N, C> Rotator<S, I, T, A, N, C>
where
    S: SecretStore,
    I: KeyIssuer,
    T: Target,
    A: AuditLog,
    N: Alerts,
    C: Clock,
{
    /// Follows `deployments` until all are READY or one failed. One still building when the invocation
    /// nears its deadline is a retryable error: Secrets Manager runs the step again, and it resumes
    /// following the same recorded deployments.
    pub(crate) async fn wait_for_deployments(
        &self,
        secret: &SecretDescription,
        invocation: &Invocation,
        deployments: &[(&TargetSpec, String)],
    ) -> Result<Wait> {
        let now = self.clock.now();
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
            let next_poll = self.clock.now() + chrono::Duration::from_std(poll).unwrap_or_default();
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
        let started = self.clock.now();
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
        let audit = AuditEvent {
            at: started,
            secret_arn: secret.arn.clone(),
            secret_name: secret.name.clone(),
            action: "rollback".to_owned(),
            outcome,
            version_id: event.client_request_token.clone(),
            provider: evidence.provider.unwrap_or_default().to_owned(),
            old_key_hint: evidence.old_key.as_ref().map(|k| k.last4.clone()),
            new_key_hint: Some(new_view.last4.clone()),
            trigger: evidence
                .trigger
                .map(|t| t.as_str())
                .unwrap_or_default()
                .to_owned(),
            actor: evidence.actor.clone(),
            targets: targets.iter().map(TargetSpec::label).collect(),
            duration_ms: (self.clock.now() - started).num_milliseconds().max(0) as u64,
            error,
            retryable: false,
        };
        if let Err(err) = self.audit.record(&audit).await {
            super::log_audit_failure(&secret.name, &err);
        }
        Ok(())
    }

    async fn restore_current_key(
        &self,
        event: &RotationEvent,
        invocation: &Invocation,
        secret: &SecretDescription,
        targets: &[TargetSpec],
    ) -> Result<Vec<String>> {
        let current = self.current_value(&event.secret_id, secret).await?;
        let current_fingerprint = KeyView::of(&current.api_key).fingerprint;
        let token = &event.client_request_token;
        let mut restored = Vec::new();
        let mut deployments = Vec::new();
        // Each target's record of this rotation's redeploy (DEPLOY#<token>#<target>) is cleared only
        // after the rollback redeploy is recorded: a retry after a crash in between still sees that the
        // pending key was deployed there and redeploys the current one.
        for target in targets {
            let label = target.label();
            let rollback_label = format!("rollback:{label}");
            let holds_current = self
                .targets
                .held_fingerprint(&secret.name, target)
                .await?
                .as_deref()
                == Some(current_fingerprint.as_str());
            if !holds_current {
                self.targets
                    .push(&secret.name, target, &current.api_key)
                    .await?;
                restored.push(label.clone());
            }
            if !target.redeploys() {
                continue;
            }
            let redeploy = if !holds_current {
                // A rollback redeploy recorded before this push predates it: it cannot serve what was
                // just put back.
                self.audit
                    .clear_deployment(&secret.name, token, &rollback_label)
                    .await?;
                true
            } else if let Some(deployment) = self
                .audit
                .deployment(&secret.name, token, &rollback_label)
                .await?
            {
                // Put back and redeployed by an earlier attempt: follow its redeploy, unless that one
                // failed, which left the live deployment on the pending key; then redeploy anew.
                let failed = matches!(
                    self.targets
                        .deployment_state(&secret.name, target, &deployment)
                        .await?,
                    DeploymentState::Failed(_)
                );
                if failed {
                    self.audit
                        .clear_deployment(&secret.name, token, &rollback_label)
                        .await?;
                } else {
                    deployments.push((target, deployment));
                }
                failed
            } else {
                // Put back by an earlier attempt that died before redeploying, or never changed.
                self.audit
                    .deployment(&secret.name, token, &label)
                    .await?
                    .is_some()
            };
            if redeploy {
                let deployment = self.targets.redeploy(&secret.name, target).await?;
                self.audit
                    .record_deployment(&secret.name, token, &rollback_label, &deployment)
                    .await?;
                deployments.push((target, deployment));
            }
            // A retried rotation must redeploy the pending key anew, not follow the failed deployment.
            self.audit
                .clear_deployment(&secret.name, token, &label)
                .await?;
        }
        match self
            .wait_for_deployments(secret, invocation, &deployments)
            .await?
        {
            Wait::Ready => {
                for (target, _) in &deployments {
                    self.audit
                        .clear_deployment(
                            &secret.name,
                            token,
                            &format!("rollback:{}", target.label()),
                        )
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
}
