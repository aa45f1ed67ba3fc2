//! `keyrot rollback`: during the grace period, go back to the previous key (design.md, "Rollback and
//! repair"), in an order that never leaves a service without a working key.

use serde_json::json;

use crate::domain::audit::{AuditEvent, Outcome, Revocation, RevocationStatus};
use crate::domain::keys::KeyView;
use crate::domain::policy::{AWSCURRENT, AWSPENDING, AWSPREVIOUS};
use crate::domain::targets::TargetSpec;
use crate::domain::{ManagedSecret, SecretDescription};
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
    /// An earlier rollback had already moved AWSCURRENT back; this one completed its later steps.
    pub resumed: bool,
}

/// Where a rollback starts from.
enum Start {
    /// AWSCURRENT is on the rotation's new version: move it back to AWSPREVIOUS first.
    Fresh,
    /// AWSCURRENT was already moved back by an earlier rollback that stopped before its end.
    Resume,
}

/// Whether the key of a version with this record is gone or going: claimed for revocation, revoked,
/// or left for a person to revoke. (A retired generic key still works.)
fn is_lost(record: &Revocation) -> bool {
    matches!(
        record.status,
        RevocationStatus::Revoking | RevocationStatus::Revoked | RevocationStatus::Manual
    )
}

fn refusal(secret: &SecretDescription, field: &str, problem: String, fix: String) -> Error {
    Error::config(
        &secret.name,
        field,
        format!("cannot roll back: {problem}"),
        fix,
    )
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
        let name = secret.name.clone();
        // A rotation under way would move AWSCURRENT again behind the rollback's back, and its
        // finishSecret would schedule the key we go back to for revocation.
        if let Some(pending) = secret.version_with(AWSPENDING)
            && !secret.has_stage(pending, AWSCURRENT)
        {
            return Err(refusal(
                &secret,
                AWSPENDING,
                format!("a rotation is in progress or stuck (AWSPENDING is on version {pending})"),
                format!(
                    "let it finish and roll back afterwards, or clear it first with `keyrot repair {name}` \
                     (`keyrot status --secret {name}` shows which)"
                ),
            ));
        }
        let previous = secret
            .version_with(AWSPREVIOUS)
            .ok_or_else(|| {
                refusal(
                    &secret,
                    AWSPREVIOUS,
                    "there is no AWSPREVIOUS version to go back to".into(),
                    format!("to change the key, rotate it: `keyrot rotate {name}`"),
                )
            })?
            .to_owned();
        let current_version = secret
            .version_with(AWSCURRENT)
            .ok_or_else(|| {
                refusal(
                    &secret,
                    AWSCURRENT,
                    "no version is AWSCURRENT".into(),
                    "label the version that holds the working key AWSCURRENT \
                     (aws secretsmanager update-secret-version-stage)"
                        .into(),
                )
            })?
            .to_owned();
        let current_record = self.audit.revocation(&name, &current_version).await?;
        let previous_record = self.audit.revocation(&name, &previous).await?;

        // Did an earlier rollback already move AWSCURRENT back? No rotation leaves a revocation record
        // on the version it makes current: finishSecret records the version *leaving* AWSCURRENT. So a
        // record (pending, or cancelled by a rollback or by the grace keeper, which cancels a record
        // whose version is current again) on the AWSCURRENT version means AWSCURRENT was moved back to
        // a key a rotation had retired: by a rollback that stopped before its end (or by hand). Then
        // the rollback goes on from the target step, and the version now AWSPREVIOUS is the abandoned
        // one; moving AWSCURRENT again would put the abandoned key back in service. A claimed or
        // revoked record there means the keeper took that key meanwhile: the rollback goes back.
        let start = match &current_record {
            Some(record)
                if matches!(
                    record.status,
                    RevocationStatus::Pending
                        | RevocationStatus::Revoking
                        | RevocationStatus::Revoked
                        | RevocationStatus::Manual
                        | RevocationStatus::Cancelled
                ) =>
            {
                Start::Resume
            }
            _ => Start::Fresh,
        };
        // The version to go back to and its record; the abandoned version and its record (a fresh
        // rollback's abandoned version is AWSCURRENT, which has none).
        let (keep, keep_record, abandon, abandon_record) = match start {
            Start::Fresh => (previous.clone(), previous_record, current_version, None),
            Start::Resume => (
                current_version,
                current_record,
                previous.clone(),
                previous_record,
            ),
        };
        match (&start, &keep_record, &abandon_record) {
            (Start::Fresh, None, _) => {
                return Err(refusal(
                    &secret,
                    AWSPREVIOUS,
                    format!(
                        "AWSPREVIOUS was not left by a keyrot rotation (no revocation record for version {previous})"
                    ),
                    format!(
                        "keyrot rolls back only its own rotations; move the labels by hand \
                         (aws secretsmanager update-secret-version-stage) or rotate: `keyrot rotate {name}`"
                    ),
                ));
            }
            (Start::Fresh, Some(record), _) if record.status != RevocationStatus::Pending => {
                return Err(refusal(
                    &secret,
                    AWSPREVIOUS,
                    format!(
                        "the previous key {} is {} (rollback is only possible during the grace period)",
                        record.hint,
                        match record.status {
                            RevocationStatus::Revoking =>
                                "being revoked right now (the grace keeper claimed it)".to_owned(),
                            status => format!("already {}", status.as_str()),
                        }
                    ),
                    format!(
                        "rotate to a new key instead: `keyrot rotate {name}` (with --emergency if the current key is compromised)"
                    ),
                ));
            }
            (Start::Resume, _, Some(record)) if record.status != RevocationStatus::Pending => {
                return Err(refusal(
                    &secret,
                    AWSCURRENT,
                    format!(
                        "AWSCURRENT is already back on version {keep} (an earlier rollback), and the abandoned key {} is {}",
                        record.hint,
                        record.status.as_str()
                    ),
                    format!(
                        "nothing is left to do; to change the key, rotate it: `keyrot rotate {name}`"
                    ),
                ));
            }
            _ => {}
        }

        let kept = self.labelled_value(&secret, secret_id, &keep).await?;
        let bad = self.labelled_value(&secret, secret_id, &abandon).await?;
        let (kept_view, bad_view) = (KeyView::of(&kept.api_key), KeyView::of(&bad.api_key));
        if matches!(start, Start::Fresh) && kept_view.fingerprint == bad_view.fingerprint {
            return Err(refusal(
                &secret,
                AWSPREVIOUS,
                format!(
                    "AWSPREVIOUS holds the same key ({}) as AWSCURRENT: there is nothing to go back to",
                    kept_view.redacted
                ),
                format!("to change the key, rotate it: `keyrot rotate {name}`"),
            ));
        }
        // A resumed rollback whose key is claimed or revoked (the keeper took it between the earlier
        // run and this one) must not put that key on the targets: it goes back at once.
        if matches!(start, Start::Resume) && keep_record.as_ref().is_some_and(is_lost) {
            let targets = TargetSpec::parse_all(&name, &bad.targets)?;
            return Err(self
                .undo_rollback(
                    &secret,
                    secret_id,
                    (&keep, keep_record),
                    (&abandon, &bad, abandon_record),
                    &targets,
                    actor,
                )
                .await);
        }
        // The key we go back to must work before anything depends on it again.
        self.issuer.validate(&name, &kept, &kept.api_key).await?;

        if matches!(start, Start::Fresh) {
            // AWSCURRENT first, so that a crash leaves the secret pointing at a key that works and is
            // alive; AWSPREVIOUS follows to the abandoned version.
            self.store
                .move_stage(secret_id, AWSCURRENT, Some(&keep), Some(&abandon))
                .await?;
        }
        let targets = TargetSpec::parse_all(&name, &kept.targets)?;
        // A resumed rollback redeploys every target: the earlier attempt may have written the key and
        // then failed its redeploy, leaving the live deployment on the abandoned key.
        let changed = match self
            .put_key_on_targets(
                &secret,
                &targets,
                &kept.api_key,
                matches!(start, Start::Resume),
            )
            .await
        {
            Ok(changed) => changed,
            Err(err) => {
                // Before leaving AWSCURRENT on the key we went back to: is it still alive? A claim
                // taken meanwhile means it is being revoked; then go back now, not on a re-run.
                let now = self.audit.revocation(&name, &keep).await.ok().flatten();
                if now.as_ref().is_some_and(is_lost) {
                    return Err(self
                        .undo_rollback(
                            &secret,
                            secret_id,
                            (&keep, now),
                            (&abandon, &bad, abandon_record),
                            &targets,
                            actor,
                        )
                        .await);
                }
                return Err(err);
            }
        };
        if let Some(mut record) = keep_record
            && record.status != RevocationStatus::Cancelled
        {
            record.status = RevocationStatus::Cancelled;
            if !self
                .audit
                .update_revocation(&record, RevocationStatus::Pending.into())
                .await?
            {
                // The grace keeper acted on the record after it was read: it cancels a record whose
                // version is current again (what we want), but it may have revoked the key first.
                let now = self.audit.revocation(&name, &keep).await?;
                match now.as_ref().map(|r| r.status) {
                    Some(RevocationStatus::Cancelled) => {}
                    // A generic key is retired, not revoked: it still works, and is current again.
                    Some(RevocationStatus::Retired) => {
                        self.audit
                            .set_revocation_status(&name, &keep, RevocationStatus::Cancelled)
                            .await?;
                    }
                    _ => {
                        return Err(self
                            .undo_rollback(
                                &secret,
                                secret_id,
                                (&keep, now),
                                (&abandon, &bad, abandon_record),
                                &targets,
                                actor,
                            )
                            .await);
                    }
                }
            }
        }
        // The abandoned key leaves service now; the grace keeper revokes it once no target holds it.
        // Written only when absent (a resumed rollback may have written it already), so a record
        // already pending keeps its due time and attempts.
        if abandon_record.is_none() {
            let abandoned: Revocation = revocation_of(
                &secret,
                &abandon,
                &bad.provider,
                &(&bad).into(),
                self.clock.now(),
            );
            self.audit.schedule_revocation(&abandoned).await?;
        }

        let event = AuditEvent {
            at: started,
            secret_arn: secret.arn.clone(),
            secret_name: name.clone(),
            action: "rollback".to_owned(),
            outcome: Outcome::Succeeded,
            version_id: keep.clone(),
            provider: kept.provider.name().to_owned(),
            old_key_hint: Some(bad_view.last4.clone()),
            new_key_hint: Some(kept_view.last4.clone()),
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
        let alert = Alert {
            event: "rotation_rolled_back",
            severity: Severity::Warning,
            secret_name: name.clone(),
            subject: format!("keyrot: {name} rolled back")
                .chars()
                .take(100)
                .collect(),
            text: format!(
                "{name} was rolled back to its previous key {}; the abandoned key {} is revoked at the grace keeper's next pass.",
                kept_view.redacted, bad_view.redacted
            ),
            details: json!({"event": "rotation_rolled_back", "secret": name, "current_version": keep,
                "abandoned_version": abandon, "targets": changed, "actor": actor,
                "resumed": matches!(start, Start::Resume)}),
        };
        if let Err(err) = self.alerts.send(&alert).await {
            tracing::warn!(error = %err, "alert could not be published");
        }
        Ok(RolledBack {
            current_version: keep,
            abandoned_version: abandon,
            targets: changed,
            current_key: kept_view.redacted,
            abandoned_key: bad_view.redacted,
            resumed: matches!(start, Start::Resume),
        })
    }

    /// The key the rollback went back to left its pending state while the rollback ran (the grace
    /// keeper claimed it for revocation): the abandoned key is the one that works. Its own record, if
    /// a resumed rollback wrote one, is cancelled first (so no keeper pass revokes it once it is back);
    /// then it goes back under AWSCURRENT and on every target, and the operator is told, loudly.
    async fn undo_rollback(
        &self,
        secret: &SecretDescription,
        secret_id: &str,
        (dead, dead_record): (&str, Option<Revocation>),
        (alive, alive_value, alive_record): (&str, &ManagedSecret, Option<Revocation>),
        targets: &[TargetSpec],
        actor: &str,
    ) -> Error {
        let started = self.clock.now();
        let name = &secret.name;
        let status = dead_record.map_or("gone", |r| r.status.as_str());
        let kept_alive = match alive_record.filter(|r| r.status != RevocationStatus::Cancelled) {
            None => Ok(()),
            Some(record) => {
                let cancelled = record.settled(RevocationStatus::Cancelled);
                let update = self
                    .audit
                    .update_revocation(&cancelled, RevocationStatus::Pending.into())
                    .await;
                // Not pending any more: cancelled by someone else is as good; anything else is not.
                let now = match update {
                    Ok(false) => self
                        .audit
                        .revocation(name, alive)
                        .await
                        .ok()
                        .flatten()
                        .map(|r| r.status),
                    _ => None,
                };
                match update {
                    Ok(true) => Ok(()),
                    Ok(false) if now == Some(RevocationStatus::Cancelled) => Ok(()),
                    Ok(false) => Err(format!(
                        "version {alive}'s key is {} too: neither key can be relied on; rotate to a new key now: \
                         `keyrot rotate {name} --emergency --wait`",
                        if record.status == RevocationStatus::Pending {
                            "claimed for revocation"
                        } else {
                            record.status.as_str()
                        }
                    )),
                    Err(err) => Err(format!(
                        "the revocation of version {alive}'s key could not be cancelled ({err}); rotate to a new \
                         key now: `keyrot rotate {name} --emergency --wait`"
                    )),
                }
            }
        };
        let moved = match kept_alive {
            Ok(()) => self
                .store
                .move_stage(secret_id, AWSCURRENT, Some(alive), Some(dead))
                .await
                .map_err(|err| {
                    format!(
                        "moving AWSCURRENT back to version {alive} failed ({err}): move it by hand \
                         (aws secretsmanager update-secret-version-stage {name} --version-stage AWSCURRENT \
                         --move-to-version-id {alive} --remove-from-version-id {dead}), then run \
                         `keyrot validate {name}`"
                    )
                }),
            Err(why) => Err(why),
        };
        let undone = match moved {
            Ok(()) => self
                .put_key_on_targets(secret, targets, &alive_value.api_key, true)
                .await
                .map_err(|err| {
                    format!(
                        "AWSCURRENT is back on version {alive}, but putting its key back on the targets failed \
                         ({err}): run `keyrot validate {name}` and put the current key on the targets it names"
                    )
                }),
            Err(why) => Err(why),
        };
        let outcome = match &undone {
            Ok(_) => format!(
                "AWSCURRENT is back on version {alive} and every target holds its key again (redeployed)"
            ),
            Err(what) => what.clone(),
        };
        let text = format!(
            "The rollback of {name} went back to version {dead}, whose revocation record is now {status}: \
             the grace keeper acted on it while the rollback ran. {outcome}."
        );
        let alert = Alert {
            event: "rollback_failed",
            severity: Severity::Critical,
            secret_name: name.clone(),
            subject: format!("keyrot: rollback of {name} undone")
                .chars()
                .take(100)
                .collect(),
            text: text.clone(),
            details: json!({"event": "rollback_failed", "secret": name, "version": dead,
                "record_status": status, "restored_version": alive, "restored": undone.is_ok()}),
        };
        if let Err(err) = self.alerts.send(&alert).await {
            tracing::warn!(error = %err, "alert could not be published");
        }
        let event = AuditEvent {
            at: started,
            secret_arn: secret.arn.clone(),
            secret_name: name.clone(),
            action: "rollback".to_owned(),
            outcome: Outcome::Failed,
            version_id: dead.to_owned(),
            provider: alive_value.provider.name().to_owned(),
            old_key_hint: None,
            new_key_hint: Some(KeyView::of(&alive_value.api_key).last4),
            trigger: "manual".to_owned(),
            actor: actor.to_owned(),
            targets: targets.iter().map(TargetSpec::label).collect(),
            duration_ms: (self.clock.now() - started).num_milliseconds().max(0) as u64,
            error: Some(text.clone()),
            retryable: false,
        };
        if let Err(err) = self.audit.record(&event).await {
            tracing::warn!(error = %err, "audit item could not be written");
        }
        refusal(
            secret,
            AWSPREVIOUS,
            text,
            format!(
                "check with `keyrot validate {name}`; rotate to a new key with `keyrot rotate {name}`"
            ),
        )
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
        let text = self
            .store
            .value(secret_id, stage, Some(version))
            .await?
            .ok_or_else(|| {
                refusal(
                    secret,
                    stage,
                    format!("the {stage} version {version} holds no value"),
                    "put the key back in that version (aws secretsmanager put-secret-value)".into(),
                )
            })?;
        ManagedSecret::parse(&secret.name, stage, &text)
    }
}
