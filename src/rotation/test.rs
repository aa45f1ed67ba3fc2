//! testSecret: the pending key must still work, every target must hold it, and every redeploy must be
//! READY before the key becomes AWSCURRENT. A real failure puts the current key back on the targets.

use crate::domain::keys::KeyView;
use crate::domain::targets::TargetSpec;
use crate::domain::{RotationEvent, SecretDescription};
use crate::error::{Error, Result};
use crate::ports::{AuditLog, Family, KeyIssuer, Target};

use super::deploy::Wait;
use super::{Evidence, Invocation, Progress, Rotator};

impl<F: Family> Rotator<'_, F> {
    pub(super) async fn test_secret(
        &self,
        event: &RotationEvent,
        invocation: &Invocation,
        secret: &SecretDescription,
        evidence: &mut Evidence,
    ) -> Result<Progress> {
        let Some(pending) = self.ports.pending_value(event, secret).await? else {
            // RotateImmediately=false: Secrets Manager tests the configuration on an empty placeholder,
            // so what can be tested is the current key and the access to the provider.
            let current = self.ports.current_value(&event.secret_id, secret).await?;
            evidence.provider = Some(current.provider.name());
            evidence.old_key = Some(current.key_view());
            self.ports
                .issuer
                .validate(&secret.name, &current, &current.api_key)
                .await?;
            return Ok(Progress::Done);
        };
        let new_view = pending.key_view();
        evidence.provider = Some(pending.provider.name());
        evidence.new_key = Some(new_view.clone());
        let targets = TargetSpec::parse_all(&secret.name, &pending.targets)?;
        evidence.targets = targets.iter().map(TargetSpec::label).collect();

        let failure = match self
            .ports
            .issuer
            .validate(&secret.name, &pending, &pending.api_key)
            .await
        {
            Err(err) if err.is_retryable() => return Err(err),
            Err(err) => Some(err),
            Ok(()) => {
                self.verify_targets(event, invocation, secret, &targets, &new_view)
                    .await?
            }
        };
        match failure {
            None => Ok(Progress::Done),
            Some(cause) => {
                self.roll_back_targets(event, invocation, secret, &targets, &new_view, evidence)
                    .await?;
                Err(cause)
            }
        }
    }

    /// `Ok(None)` when every target holds the key and its redeploy is READY; `Ok(Some(cause))` on a real
    /// failure (rollback follows); `Err` when waiting must continue in a retried invocation.
    async fn verify_targets(
        &self,
        event: &RotationEvent,
        invocation: &Invocation,
        secret: &SecretDescription,
        targets: &[TargetSpec],
        new_view: &KeyView,
    ) -> Result<Option<Error>> {
        let token = &event.client_request_token;
        let mut deployments = Vec::new();
        for target in targets {
            let label = target.label();
            let held = self
                .ports
                .targets
                .held_fingerprint(&secret.name, target)
                .await?;
            if held.as_deref() != Some(new_view.fingerprint.as_str()) {
                return Ok(Some(Error::protocol(
                    &secret.name,
                    format!(
                        "target {label} does not hold the pending key (fingerprint {} expected, {} found)",
                        new_view.fingerprint,
                        held.as_deref().unwrap_or("none")
                    ),
                )));
            }
            if target.redeploys() {
                match self
                    .ports
                    .audit
                    .deployment(&secret.name, token, &label)
                    .await?
                {
                    Some(deployment) => deployments.push((target, deployment)),
                    None => {
                        return Ok(Some(Error::protocol(
                            &secret.name,
                            format!(
                                "no redeploy was recorded for target {label}; setSecret must run first"
                            ),
                        )));
                    }
                }
            }
        }
        match self
            .deploys()
            .wait_for_deployments(secret, invocation, &deployments)
            .await?
        {
            Wait::Ready => Ok(None),
            Wait::Failed { target, state } => Ok(Some(Error::protocol(
                &secret.name,
                format!(
                    "the redeploy of target {target} ended {state}; the pending key never went live"
                ),
            ))),
        }
    }
}
