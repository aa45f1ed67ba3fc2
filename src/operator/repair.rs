//! `keyrot repair`: clear a rotation stuck with AWSPENDING on a version that is not AWSCURRENT, in an
//! order that keeps every target on a working key.

use super::Operator;
use crate::domain::Trigger;
use crate::domain::audit::{Action, AuditEvent, Outcome};
use crate::domain::policy::{AWSCURRENT, AWSPENDING};
use crate::domain::targets::{Redeploy, TargetSpec};
use crate::domain::{ManagedSecret, SecretDescription};
use crate::error::{Error, Result};
use crate::ports::{AuditLog, Clock, Family, SecretStore, StageMove, Target};
use crate::rotation::deploy::Redeploys;
use chrono::{DateTime, Utc};

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

impl<F: Family> Operator<'_, F> {
    /// Clears the stuck rotation. A pending version younger than [`STUCK_AFTER`] is a rotation still
    /// running (Secrets Manager may be retrying a step), which repair would cut short: refused unless
    /// `force`.
    pub async fn repair(&self, secret_id: &str, actor: &str, force: bool) -> Result<Repaired> {
        let started = self.ports.clock.now();
        let secret = self.ports.store.describe(secret_id).await?;
        let pending = stuck_version(&secret)?;
        if !force {
            // Without a creation time the age is unknown; the label alone then has to do, as for the
            // grace keeper's stuck check.
            let created = self
                .ports
                .store
                .version_created(secret_id, &pending)
                .await?;
            refuse_young(&secret, &pending, created, started)?;
        }
        let current = self.ports.current_value(secret_id, &secret).await?;
        let pending_value = self
            .ports
            .version_value(secret_id, &secret, AWSPENDING, &pending)
            .await?;
        // 1. Targets that may serve the pending key get the current key back and are redeployed.
        let changed = match &pending_value {
            Some(value) => {
                self.restore_current(&secret, &pending, &current, value)
                    .await?
            }
            None => Vec::new(),
        };
        // 2. The label goes, so the next rotation can start; 3. a key keyrot minted for the abandoned
        // rotation must not stay alive.
        let revocation_scheduled = self
            .drop_pending(&secret, secret_id, &pending, pending_value.as_ref())
            .await?;
        // 4. The one-shot tags were for the abandoned rotation: left, they would make the next
        // scheduled rotation an emergency (grace 0) weeks later.
        self.ports
            .clear_one_shot_tags(secret_id, &secret, &pending)
            .await?;
        let event = AuditEvent::new(
            started,
            (&secret.arn, &secret.name),
            Action::Repair,
            Outcome::Succeeded,
            &pending,
        )
        .provider(current.provider.name())
        .keys(
            pending_value.as_ref().map(|p| p.key_view()).as_ref(),
            Some(&current.key_view()),
        )
        .triggered(Some(Trigger::Manual))
        .by(actor)
        .targets(changed.clone())
        .took(started, self.ports.clock.now());
        self.ports.record_quietly(&event).await;
        Ok(Repaired {
            pending_version: pending,
            targets: changed,
            revocation_scheduled,
        })
    }

    /// Puts the current key back on the targets that may serve the pending one and redeploys them:
    /// those whose variable holds it, and those where a redeploy of this rotation (setSecret's, or a
    /// rollback's) is still on record, since only a redeploy seen READY clears its record: the variable
    /// may be right while the live deployment serves the pending key. Returns the targets changed.
    async fn restore_current(
        &self,
        secret: &SecretDescription,
        pending: &str,
        current: &ManagedSecret,
        pending_value: &ManagedSecret,
    ) -> Result<Vec<String>> {
        let pending_fingerprint = pending_value.key_view().fingerprint;
        let mut serving = Vec::new();
        for target in TargetSpec::parse_all(&secret.name, &current.targets)? {
            let holds_pending = self
                .ports
                .targets
                .holds(&secret.name, &target, &pending_fingerprint)
                .await?;
            let mut deployed = false;
            for redeploy in Redeploy::ALL {
                let record = target.deploy_record(redeploy);
                deployed |= self
                    .ports
                    .audit
                    .deployment(&secret.name, pending, &record)
                    .await?
                    .is_some();
            }
            if holds_pending || (deployed && target.redeploys()) {
                serving.push(target);
            }
        }
        let changed = self
            .deploys()
            .put_key_on_targets(secret, &serving, &current.api_key, Redeploys::All)
            .await?;
        for target in &serving {
            for redeploy in Redeploy::ALL {
                let record = target.deploy_record(redeploy);
                self.ports
                    .audit
                    .clear_deployment(&secret.name, pending, &record)
                    .await?;
            }
        }
        Ok(changed)
    }

    /// Removes AWSPENDING from the stuck version. A key keyrot minted for it has its revocation
    /// recorded before the label goes, so that no crash leaves a minted key that nothing knows of (the
    /// grace keeper waits while the version carries AWSPENDING), and again after, which re-arms a
    /// record cancelled meanwhile. An adopted (Anthropic) key was made by a person, who may stage it
    /// again: it is not revoked. Returns whether a revocation was recorded.
    async fn drop_pending(
        &self,
        secret: &SecretDescription,
        secret_id: &str,
        pending: &str,
        pending_value: Option<&ManagedSecret>,
    ) -> Result<bool> {
        let revocation = match pending_value.filter(|value| !value.provider.provider().is_staged())
        {
            Some(value) => Some(
                self.ports
                    .revocation_for(secret, pending, value, self.ports.clock.now())
                    .await?,
            ),
            None => None,
        };
        if let Some(revocation) = &revocation {
            self.ports.record_revocation(revocation).await?;
        }
        self.ports
            .store
            .move_stage(secret_id, AWSPENDING, StageMove::Off(pending))
            .await?;
        if let Some(revocation) = &revocation {
            self.ports.record_revocation(revocation).await?;
        }
        Ok(revocation.is_some())
    }
}

/// The version AWSPENDING is on, if it is not AWSCURRENT's.
fn stuck_version(secret: &SecretDescription) -> Result<String> {
    let name = &secret.name;
    secret
        .version_with(AWSPENDING)
        .filter(|v| !secret.has_stage(v, AWSCURRENT))
        .map(str::to_owned)
        .ok_or_else(|| {
            Error::config(
                name,
                AWSPENDING,
                "nothing to repair: no rotation is pending",
                format!("none needed; `keyrot status --secret {name}` shows the secret's state"),
            )
        })
}

/// Refuses a pending version created less than [`STUCK_AFTER`] before `now`.
fn refuse_young(
    secret: &SecretDescription,
    pending: &str,
    created: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<()> {
    let Some(created) = created.filter(|created| now - *created < STUCK_AFTER) else {
        return Ok(());
    };
    Err(Error::config(
        &secret.name,
        AWSPENDING,
        format!(
            "version {pending} was created {} minutes ago: that is a rotation in progress, not a stuck one",
            (now - created).num_minutes().max(0)
        ),
        format!(
            "let it finish (`keyrot status --secret {0}`, `keyrot audit --secret {0}`); if it is \
             really stuck, run `keyrot repair {0} --force`",
            secret.name
        ),
    ))
}
