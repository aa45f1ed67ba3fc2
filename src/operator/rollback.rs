//! `keyrot rollback`: during the grace period, go back to the previous key (docs/steps.md, "Rollback"),
//! in an order that never leaves a service without a working key.
//!
//! Three phases: [`plan`] decides from the labels and the revocation records alone (pure, so every
//! refusal is tested without fakes), [`Operator::rollback`] executes the plan, and the last part
//! records it (an audit event and an alert). A rollback whose key is taken for revocation while it
//! runs undoes itself (`undo.rs`).

mod plan;
mod undo;

use serde_json::json;

use crate::domain::Trigger;
use crate::domain::audit::{
    Action, AuditEvent, CLAIM_LEASE, Outcome, Revocation, RevocationStatus,
};
use crate::domain::policy::{AWSCURRENT, AWSPREVIOUS};
use crate::domain::targets::TargetSpec;
use crate::domain::{ManagedSecret, SecretDescription};
use crate::error::{Error, Result};
use crate::ports::{
    Alert, AlertKind, AuditLog, Clock, Family, KeyIssuer, SecretStore, Severity, StageMove,
};
use crate::rotation::deploy::Redeploys;

use super::Operator;
use plan::{Plan, Start, is_lost, refusal};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolledBack {
    /// The version AWSCURRENT is on again.
    pub current_version: String,
    /// The version rolled away from; its key is due for revocation now.
    pub abandoned_version: String,
    pub targets: Vec<String>,
    pub current_key: String,
    pub abandoned_key: String,
    /// An earlier rollback had already moved AWSCURRENT back; this one completed its later steps.
    pub resumed: bool,
}

/// What a rollback under way knows: the secret, its plan, the two values and who asked.
struct Run<'p> {
    secret: &'p SecretDescription,
    secret_id: &'p str,
    plan: Plan,
    /// The value of the version rolled back to, and of the abandoned one.
    kept: ManagedSecret,
    bad: ManagedSecret,
    actor: &'p str,
}

impl<F: Family> Operator<'_, F> {
    pub async fn rollback(&self, secret_id: &str, actor: &str) -> Result<RolledBack> {
        let started = self.ports.clock.now();
        let secret = self.ports.store.describe(secret_id).await?;
        let labels = plan::labels(&secret)?;
        let current_record = self
            .ports
            .audit
            .revocation(&secret.name, &labels.current)
            .await?;
        let previous_record = self
            .ports
            .audit
            .revocation(&secret.name, &labels.previous)
            .await?;
        let plan = plan::plan(&secret, labels, current_record, previous_record)?;
        let kept = self.labelled_value(&secret, secret_id, &plan.keep).await?;
        let bad = self
            .labelled_value(&secret, secret_id, &plan.abandon)
            .await?;
        plan.check_keys(&secret, &kept.key_view(), &bad.key_view())?;
        let run = Run {
            secret: &secret,
            secret_id,
            plan,
            kept,
            bad,
            actor,
        };
        let changed = self.execute(&run).await?;
        Ok(self.record(&run, started, changed).await)
    }

    /// Holds the kept key's revocation record, moves AWSCURRENT back, puts the kept key on every
    /// target, cancels its revocation and records the abandoned key's. Returns the targets changed.
    async fn execute(&self, run: &Run<'_>) -> Result<Vec<String>> {
        let (plan, name) = (&run.plan, &run.secret.name);
        // A resumed rollback whose key is claimed or revoked (the keeper took it between the earlier
        // run and this one) must not put that key on the targets: it goes back at once.
        if plan.start == Start::Resume && plan.keep_record.as_ref().is_some_and(is_lost) {
            let targets = TargetSpec::parse_all(name, &run.bad.targets)?;
            return Err(self.undo(run, plan.keep_record.clone(), &targets).await);
        }
        // The key we go back to must work before anything depends on it again.
        self.ports
            .issuer
            .validate(name, &run.kept, &run.kept.api_key)
            .await?;
        let kept_record = match plan.start {
            Start::Fresh => Some(self.move_current_back(run).await?),
            Start::Resume => plan.keep_record.clone(),
        };
        let targets = TargetSpec::parse_all(name, &run.kept.targets)?;
        let changed = self.restore_targets(run, &targets).await?;
        self.cancel_kept_revocation(run, kept_record.as_ref(), &targets)
            .await?;
        // The abandoned key leaves service now; the grace keeper revokes it once no target holds it.
        // Written only when absent (a resumed rollback may have written it already), so a record
        // already pending keeps its due time and attempts.
        if plan.abandon_record.is_none() {
            let abandoned = self
                .ports
                .revocation_for(run.secret, &plan.abandon, &run.bad, self.ports.clock.now())
                .await?;
            self.ports.record_revocation(&abandoned).await?;
        }
        Ok(changed)
    }

    /// Holds the kept key's revocation record, then moves AWSCURRENT back to it. The hold comes before
    /// any change: from then on neither the grace keeper nor finishSecret can claim the record, so no
    /// process revokes the key while this rollback puts it back in service. A record claimed or settled
    /// since it was read, or a rotation started since, refuses the rollback with nothing changed.
    async fn move_current_back(&self, run: &Run<'_>) -> Result<Revocation> {
        let held = self.hold_kept_key(run).await?;
        let release = async |err: Error| {
            let released = held.settled(RevocationStatus::Pending);
            if let Err(release) = self.ports.rewrite_revocation(&held, released).await {
                tracing::warn!(error = %release, "the rollback's hold could not be released; it lapses with its lease");
            }
            err
        };
        // The labels as they are now: a rotation that started after the first read would move
        // AWSCURRENT behind this rollback's back.
        let now = match self.ports.store.describe(run.secret_id).await {
            Ok(now) => now,
            Err(err) => return Err(release(err).await),
        };
        if let Err(err) = plan::labels(&now) {
            return Err(release(err).await);
        }
        // AWSCURRENT first, so that a crash leaves the secret pointing at a key that works and is
        // alive; AWSPREVIOUS follows to the abandoned version.
        let moved = self
            .ports
            .store
            .move_stage(
                run.secret_id,
                AWSCURRENT,
                StageMove::Across {
                    from: &run.plan.abandon,
                    to: &run.plan.keep,
                },
            )
            .await;
        match moved {
            Ok(()) => Ok(held),
            Err(err) => Err(release(err).await),
        }
    }

    /// Takes the kept key's record for this rollback (`restoring`), conditional on it being as read.
    async fn hold_kept_key(&self, run: &Run<'_>) -> Result<Revocation> {
        let (secret, plan) = (run.secret, &run.plan);
        let now = self.ports.clock.now();
        // The plan refuses a fresh rollback without a record to keep.
        let read = plan.keep_record.as_ref().ok_or_else(|| {
            Error::protocol(&secret.name, "a fresh rollback has no record to hold")
        })?;
        if read.claim_is_live(now) {
            return Err(refusal(
                secret,
                AWSPREVIOUS,
                format!(
                    "another process holds the previous key {} since {} ({})",
                    read.hint,
                    read.claimed_at
                        .map(|at| at.to_rfc3339())
                        .unwrap_or_default(),
                    read.status.as_str()
                ),
                format!(
                    "wait for it to finish; a hold whose process stopped lapses {} minutes after it was taken, then run the rollback again",
                    CLAIM_LEASE.num_minutes()
                ),
            ));
        }
        if let Some(held) = self
            .ports
            .rewrite_revocation(read, read.held_for_rollback(now))
            .await?
        {
            return Ok(held);
        }
        let changed = self
            .ports
            .audit
            .revocation(&secret.name, &plan.keep)
            .await?
            .map_or("gone".to_owned(), |r| r.status.as_str().to_owned());
        Err(refusal(
            secret,
            AWSPREVIOUS,
            format!(
                "the previous key {} changed while the rollback started: its record is now {changed} (the grace keeper took it)",
                read.hint
            ),
            format!(
                "nothing was changed; rotate to a new key instead: `keyrot rotate {}`",
                secret.name
            ),
        ))
    }

    /// Puts the kept key on the targets. A resumed rollback redeploys every target: the earlier
    /// attempt may have written the key and then failed its redeploy, leaving the live deployment on
    /// the abandoned key.
    async fn restore_targets(&self, run: &Run<'_>, targets: &[TargetSpec]) -> Result<Vec<String>> {
        let redeploys = match run.plan.start {
            Start::Resume => Redeploys::All,
            Start::Fresh => Redeploys::Changed,
        };
        let restored = self
            .deploys()
            .put_key_on_targets(run.secret, targets, &run.kept.api_key, redeploys)
            .await;
        let Err(err) = restored else {
            return restored;
        };
        // Before leaving AWSCURRENT on the key we went back to: is it still alive? A claim taken
        // meanwhile means it is being revoked; then go back now, not on a re-run.
        let now = self
            .ports
            .audit
            .revocation(&run.secret.name, &run.plan.keep)
            .await
            .ok()
            .flatten();
        if now.as_ref().is_some_and(is_lost) {
            return Err(self.undo(run, now, targets).await);
        }
        Err(err)
    }

    /// Cancels the kept key's revocation (`record`, as this rollback holds or read it). When the record
    /// changed since, the grace keeper acted on it: it cancels a record whose version is current again
    /// (what we want), but it may have revoked the key first (a resumed rollback, or a hold whose
    /// lease lapsed), and then the rollback undoes itself.
    async fn cancel_kept_revocation(
        &self,
        run: &Run<'_>,
        record: Option<&Revocation>,
        targets: &[TargetSpec],
    ) -> Result<()> {
        let Some(record) = record.filter(|r| r.status != RevocationStatus::Cancelled) else {
            return Ok(());
        };
        if self.ports.cancel_revocation(record).await?.is_some() {
            return Ok(());
        }
        let now = self
            .ports
            .audit
            .revocation(&run.secret.name, &run.plan.keep)
            .await?;
        match now.as_ref().map(|r| r.status) {
            Some(RevocationStatus::Cancelled) => Ok(()),
            // A generic key is retired, not revoked: it still works, and is current again.
            Some(RevocationStatus::Retired) => {
                if let Some(retired) = &now {
                    self.ports.cancel_revocation(retired).await?;
                }
                Ok(())
            }
            _ => Err(self.undo(run, now, targets).await),
        }
    }

    /// Audits and alerts the rollback that was made.
    async fn record(
        &self,
        run: &Run<'_>,
        started: chrono::DateTime<chrono::Utc>,
        changed: Vec<String>,
    ) -> RolledBack {
        let (plan, name) = (&run.plan, &run.secret.name);
        let (kept_view, bad_view) = (run.kept.key_view(), run.bad.key_view());
        let resumed = plan.start == Start::Resume;
        let event = AuditEvent::new(
            started,
            (&run.secret.arn, name),
            Action::Rollback,
            Outcome::Succeeded,
            &plan.keep,
        )
        .provider(run.kept.provider.name())
        .keys(Some(&bad_view), Some(&kept_view))
        .triggered(Some(Trigger::Manual))
        .by(run.actor)
        .targets(changed.clone())
        .took(started, self.ports.clock.now());
        self.ports.record_quietly(&event).await;
        let alert = Alert::new(AlertKind::RotationRolledBack, Severity::Warning, name)
            .subject(format!("keyrot: {name} rolled back"))
            .text(format!(
                "{name} was rolled back to its previous key {}; the abandoned key {} is revoked at the grace keeper's next pass.",
                kept_view.redacted, bad_view.redacted
            ))
            .details(json!({"event": "rotation_rolled_back", "secret": name, "current_version": plan.keep,
                "abandoned_version": plan.abandon, "targets": changed, "actor": run.actor,
                "resumed": resumed}));
        self.ports.send_quietly(&alert).await;
        RolledBack {
            current_version: plan.keep.clone(),
            abandoned_version: plan.abandon.clone(),
            targets: changed,
            current_key: kept_view.redacted,
            abandoned_key: bad_view.redacted,
            resumed,
        }
    }

    /// The value of `version`, which carries AWSCURRENT or AWSPREVIOUS.
    async fn labelled_value(
        &self,
        secret: &SecretDescription,
        secret_id: &str,
        version: &str,
    ) -> Result<ManagedSecret> {
        let stage = if secret.has_stage(version, AWSCURRENT) {
            AWSCURRENT
        } else {
            AWSPREVIOUS
        };
        self.ports
            .version_value(secret_id, secret, stage, version)
            .await?
            .ok_or_else(|| {
                refusal(
                    secret,
                    stage,
                    format!("the {stage} version {version} holds no value"),
                    "put the key back in that version (aws secretsmanager put-secret-value)".into(),
                )
            })
    }
}

/// Errors of a rollback are the operator's to read: the refusal of a plan, or an undo's report.
fn failed(secret: &SecretDescription, text: String) -> Error {
    let name = &secret.name;
    refusal(
        secret,
        AWSPREVIOUS,
        text,
        format!(
            "check with `keyrot validate {name}`; rotate to a new key with `keyrot rotate {name}`"
        ),
    )
}
