//! `keyrot repair`: clear a rotation stuck with AWSPENDING on a version that is not AWSCURRENT, in an
//! order that keeps every target on a working key.

use crate::domain::audit::{AuditEvent, Outcome};
use crate::domain::keys::KeyView;
use crate::domain::policy::{AWSCURRENT, AWSPENDING};
use crate::domain::targets::TargetSpec;
use crate::domain::{ManagedSecret, ProviderSettings};
use crate::error::{Error, Result};
use crate::ports::{Alerts, AuditLog, Clock, KeyIssuer, SecretStore, Target};
use crate::rotation::Rotator;
use crate::rotation::finish::revocation_of;

/// How old a pending version must be before repair takes it for stuck (the grace keeper's
/// `rotation_stuck` alert uses the same hour).
pub const STUCK_AFTER: chrono::Duration = chrono::Duration::hours(1);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repaired {
    pub pending_version: String,
    /// Targets that held the pending key and got the current one back.
    pub targets: Vec<String>,
    /// Whether the pending key (minted by keyrot) is now due for revocation.
    pub revocation_scheduled: bool,
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
    /// Clears the stuck rotation. A pending version younger than [`STUCK_AFTER`] is a rotation still
    /// running (Secrets Manager may be retrying a step), which repair would cut short: refused unless
    /// `force`.
    pub async fn repair(&self, secret_id: &str, actor: &str, force: bool) -> Result<Repaired> {
        let started = self.clock.now();
        let secret = self.store.describe(secret_id).await?;
        let pending = secret
            .version_with(AWSPENDING)
            .filter(|v| !secret.has_stage(v, AWSCURRENT))
            .ok_or_else(|| {
                Error::config(
                    &secret.name,
                    AWSPENDING,
                    "nothing to repair: no rotation is pending",
                    format!(
                        "none needed; `keyrot status --secret {}` shows the secret's state",
                        secret.name
                    ),
                )
            })?
            .to_owned();
        if !force {
            // Without a creation time the age is unknown; the label alone then has to do, as for the
            // grace keeper's stuck check.
            let created = self.store.version_created(secret_id, &pending).await?;
            if let Some(created) = created
                && started - created < STUCK_AFTER
            {
                return Err(Error::config(
                    &secret.name,
                    AWSPENDING,
                    format!(
                        "version {pending} was created {} minutes ago: that is a rotation in progress, not a stuck one",
                        (started - created).num_minutes().max(0)
                    ),
                    format!(
                        "let it finish (`keyrot status --secret {0}`, `keyrot audit --secret {0}`); if it is \
                         really stuck, run `keyrot repair {0} --force`",
                        secret.name
                    ),
                ));
            }
        }
        let current = self.current_value(secret_id, &secret).await?;
        let pending_value = match self
            .store
            .value(secret_id, AWSPENDING, Some(&pending))
            .await?
        {
            Some(text) => Some(ManagedSecret::parse(&secret.name, AWSPENDING, &text)?),
            None => None,
        };

        // 1. Targets that may serve the pending key get the current key back and are redeployed: those
        // whose variable holds it, and those where a redeploy of this rotation (setSecret's, or a
        // rollback's) is still on record, since only a redeploy seen READY clears its record: the
        // variable may be right while the live deployment serves the pending key.
        let mut changed = Vec::new();
        let mut redeployed = Vec::new();
        if let Some(pending_value) = &pending_value {
            let pending_fingerprint = KeyView::of(&pending_value.api_key).fingerprint;
            let mut serving = Vec::new();
            for target in TargetSpec::parse_all(&secret.name, &current.targets)? {
                let label = target.label();
                let holds_pending = self
                    .targets
                    .holds(&secret.name, &target, &pending_fingerprint)
                    .await?;
                let mut deployed = false;
                for record in [label.clone(), format!("rollback:{label}")] {
                    deployed |= self
                        .audit
                        .deployment(&secret.name, &pending, &record)
                        .await?
                        .is_some();
                }
                if holds_pending || (deployed && target.redeploys()) {
                    serving.push(target);
                }
            }
            changed = self
                .put_key_on_targets(&secret, &serving, &current.api_key, true)
                .await?;
            redeployed = serving;
        }
        for target in &redeployed {
            let label = target.label();
            for record in [label.clone(), format!("rollback:{label}")] {
                self.audit
                    .clear_deployment(&secret.name, &pending, &record)
                    .await?;
            }
        }
        // 2. The label goes, so the next rotation can start; 3. a key keyrot minted for the abandoned
        // rotation must not stay alive. Its revocation is recorded before the label goes, so that no
        // crash leaves a minted key that nothing knows of (the grace keeper waits while the version
        // carries AWSPENDING), and again after, which re-arms a record cancelled meanwhile.
        // An adopted (Anthropic) key was made by a person, who may stage it again: it is not revoked.
        let revocation = pending_value
            .as_ref()
            .filter(|value| !matches!(value.provider, ProviderSettings::Anthropic(_)))
            .map(|value| {
                revocation_of(
                    &secret,
                    &pending,
                    &value.provider,
                    &value.into(),
                    self.clock.now(),
                )
            });
        if let Some(revocation) = &revocation {
            self.audit.schedule_revocation(revocation).await?;
        }
        self.store
            .move_stage(secret_id, AWSPENDING, None, Some(&pending))
            .await?;
        if let Some(revocation) = &revocation {
            self.audit.schedule_revocation(revocation).await?;
        }
        let revocation_scheduled = revocation.is_some();
        let event = AuditEvent {
            at: started,
            secret_arn: secret.arn.clone(),
            secret_name: secret.name.clone(),
            action: "repair".to_owned(),
            outcome: Outcome::Succeeded,
            version_id: pending.clone(),
            provider: current.provider.name().to_owned(),
            old_key_hint: pending_value
                .as_ref()
                .map(|p| KeyView::of(&p.api_key).last4),
            new_key_hint: Some(KeyView::of(&current.api_key).last4),
            trigger: "manual".to_owned(),
            actor: actor.to_owned(),
            targets: changed.clone(),
            duration_ms: (self.clock.now() - started).num_milliseconds().max(0) as u64,
            error: None,
            retryable: false,
        };
        if let Err(err) = self.audit.record(&event).await {
            tracing::warn!(error = %err, "audit item could not be written");
        }
        Ok(Repaired {
            pending_version: pending,
            targets: changed,
            revocation_scheduled,
        })
    }
}
