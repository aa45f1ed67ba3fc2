//! setSecret: the pending key must work at the provider; then every target gets it and a redeploy.

use crate::domain::keys::KeyView;
use crate::domain::provenance::Origin;
use crate::domain::targets::TargetSpec;
use crate::domain::{ManagedSecret, RotationEvent, SecretDescription};
use crate::error::{Error, Result};
use crate::patience::Patience;
use crate::ports::{AuditLog, Clock, Family, KeyIssuer, Target};

use super::{Evidence, Progress, Rotator};

impl<F: Family> Rotator<'_, F> {
    pub(super) async fn set_secret(
        &self,
        event: &RotationEvent,
        secret: &SecretDescription,
        evidence: &mut Evidence,
    ) -> Result<Progress> {
        let pending = self.ports.pending_value(event, secret).await?.ok_or_else(|| {
            Error::protocol(
                &secret.name,
                format!(
                    "the pending version {} holds no value, so createSecret has not run for it; let Secrets Manager run createSecret first",
                    event.client_request_token
                ),
            )
        })?;
        let new_view = pending.key_view();
        evidence.provider = Some(pending.provider.name());
        evidence.new_key = Some(new_view.clone());
        // A database's new password exists only once it is set on its role.
        self.ports.issuer.install(&secret.name, &pending).await?;
        self.validate_new_key(secret, &pending, &new_view).await?;

        let mut progress = Progress::AlreadyDone;
        for target in TargetSpec::parse_all(&secret.name, &pending.targets)? {
            let label = target.label();
            evidence.targets.push(label.clone());
            // A target that already holds the key is left alone: a repeated setSecret changes nothing.
            if self
                .ports
                .targets
                .held_fingerprint(&secret.name, &target)
                .await?
                != Some(new_view.fingerprint.clone())
            {
                self.ports
                    .targets
                    .push(&secret.name, &target, &pending.api_key)
                    .await?;
                progress = Progress::Done;
            }
            if target.redeploys()
                && self
                    .ports
                    .audit
                    .deployment(&secret.name, &event.client_request_token, &label)
                    .await?
                    .is_none()
            {
                let deployment = self.ports.targets.redeploy(&secret.name, &target).await?;
                // Recorded at once, so that a retried setSecret neither skips nor doubles the redeploy.
                self.ports
                    .audit
                    .record_deployment(
                        &secret.name,
                        &event.client_request_token,
                        &label,
                        &deployment,
                    )
                    .await?;
                tracing::info!(target = %label, %deployment, "redeploy started");
                progress = Progress::Done;
            }
        }
        // Validation alone is this step's work when there is no target.
        if evidence.targets.is_empty() {
            progress = Progress::Done;
        }
        Ok(progress)
    }

    /// Validates the pending key. A provider may refuse a key it minted moments ago until the key has
    /// propagated (a few seconds of 401): a key whose record says keyrot minted it less than
    /// `fresh_key_patience` ago is tried again, with growing pauses, until that much time has passed
    /// since its mint. Any other refusal, and a refusal after that, is final.
    async fn validate_new_key(
        &self,
        secret: &SecretDescription,
        pending: &ManagedSecret,
        view: &KeyView,
    ) -> Result<()> {
        let patience = Patience::new(
            self.patience_left(secret, view).await,
            self.settings.fresh_key_retry,
        );
        patience
            .ask(
                async || {
                    self.ports
                        .issuer
                        .validate(&secret.name, pending, &pending.api_key)
                        .await
                },
                |answer| !matches!(answer, Err(Error::KeyRejected { .. })),
            )
            .await
    }

    /// What is left of the propagation patience of the pending key: nothing unless keyrot minted it.
    async fn patience_left(
        &self,
        secret: &SecretDescription,
        view: &KeyView,
    ) -> std::time::Duration {
        let record = self
            .ports
            .audit
            .key_record(&secret.name, &view.fingerprint)
            .await;
        match record {
            Ok(Some(record)) if record.origin == Origin::Minted => {
                let age = (self.ports.clock.now() - record.at)
                    .to_std()
                    .unwrap_or_default();
                self.settings.fresh_key_patience.saturating_sub(age)
            }
            _ => std::time::Duration::ZERO,
        }
    }
}
