//! `keyrot rollback`: during the grace period, go back to the previous key (design.md, "Rollback and
//! repair"), in an order that never leaves a service without a working key.

use serde_json::json;

use crate::domain::ManagedSecret;
use crate::domain::audit::{AuditEvent, Outcome, RevocationStatus};
use crate::domain::keys::KeyView;
use crate::domain::policy::{AWSCURRENT, AWSPREVIOUS};
use crate::domain::targets::TargetSpec;
use crate::error::{Error, Result};
use crate::ports::{Alert, Alerts, AuditLog, Clock, KeyIssuer, SecretStore, Severity, Target};
use crate::rotation::Rotator;
use crate::rotation::finish::revocation_of;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolledBack {
    /// The version AWSCURRENT is on again.
    pub current_version: String,
    /// The version rolled away from; its key is due for revocation now.
    pub abandoned_version: String,
    pub targets: Vec<String>,
    pub current_key: String,
    pub abandoned_key: String,
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
    pub async fn rollback(&self, secret_id: &str, actor: &str) -> Result<RolledBack> {
        let started = self.clock.now();
        let secret = self.store.describe(secret_id).await?;
        let refuse =
            |problem: String| Error::protocol(&secret.name, format!("cannot roll back: {problem}"));
        let previous = secret
            .version_with(AWSPREVIOUS)
            .ok_or_else(|| refuse("there is no AWSPREVIOUS version to go back to".into()))?
            .to_owned();
        let current_version = secret
            .version_with(AWSCURRENT)
            .ok_or_else(|| refuse("no version is AWSCURRENT".into()))?
            .to_owned();
        let revocation = self.audit.revocation(&secret.name, &previous).await?;
        if let Some(revocation) = &revocation
            && revocation.status != RevocationStatus::Pending
        {
            return Err(refuse(format!(
                "the previous key {} is already {} (rollback is only possible during the grace period)",
                revocation.hint,
                revocation.status.as_str()
            )));
        }
        let text = self
            .store
            .value(secret_id, AWSPREVIOUS, None)
            .await?
            .ok_or_else(|| refuse("the AWSPREVIOUS version holds no value".into()))?;
        let old = ManagedSecret::parse(&secret.name, AWSPREVIOUS, &text)?;
        let bad = self.current_value(secret_id, &secret).await?;
        // The key we go back to must work before anything depends on it again.
        self.issuer
            .validate(&secret.name, &old, &old.api_key)
            .await?;

        // AWSCURRENT first, so that a crash leaves the secret pointing at a key that works and is
        // alive; AWSPREVIOUS follows to the abandoned version.
        self.store
            .move_stage(
                secret_id,
                AWSCURRENT,
                Some(&previous),
                Some(&current_version),
            )
            .await?;
        let targets = TargetSpec::parse_all(&secret.name, &old.targets)?;
        let changed = self
            .put_key_on_targets(&secret, &targets, &old.api_key)
            .await?;
        if let Some(mut revocation) = revocation {
            revocation.status = RevocationStatus::Cancelled;
            self.audit.update_revocation(&revocation).await?;
        }
        // The abandoned key leaves service now; the grace keeper revokes it once no target holds it.
        let abandoned = revocation_of(
            &secret,
            &current_version,
            &bad.provider,
            &(&bad).into(),
            self.clock.now(),
        );
        self.audit.schedule_revocation(&abandoned).await?;

        let (old_view, bad_view) = (KeyView::of(&old.api_key), KeyView::of(&bad.api_key));
        let event = AuditEvent {
            at: started,
            secret_arn: secret.arn.clone(),
            secret_name: secret.name.clone(),
            action: "rollback".to_owned(),
            outcome: Outcome::Succeeded,
            version_id: previous.clone(),
            provider: old.provider.name().to_owned(),
            old_key_hint: Some(bad_view.last4.clone()),
            new_key_hint: Some(old_view.last4.clone()),
            trigger: "manual".to_owned(),
            actor: actor.to_owned(),
            targets: changed.clone(),
            duration_ms: (self.clock.now() - started).num_milliseconds().max(0) as u64,
            error: None,
        };
        if let Err(err) = self.audit.record(&event).await {
            tracing::warn!(error = %err, "audit item could not be written");
        }
        let alert = Alert {
            event: "rotation_rolled_back",
            severity: Severity::Warning,
            secret_name: secret.name.clone(),
            subject: format!("keyrot: {} rolled back", secret.name)
                .chars()
                .take(100)
                .collect(),
            text: format!(
                "{} was rolled back to its previous key {}; the abandoned key {} is revoked at the grace keeper's next pass.",
                secret.name, old_view.redacted, bad_view.redacted
            ),
            details: json!({"event": "rotation_rolled_back", "secret": secret.name, "current_version": previous,
                "abandoned_version": current_version, "targets": changed, "actor": actor}),
        };
        if let Err(err) = self.alerts.send(&alert).await {
            tracing::warn!(error = %err, "alert could not be published");
        }
        Ok(RolledBack {
            current_version: previous,
            abandoned_version: current_version,
            targets: changed,
            current_key: old_view.redacted,
            abandoned_key: bad_view.redacted,
        })
    }
}
