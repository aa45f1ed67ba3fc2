//! The rollback's way back. The key it went back to left its pending state while it ran (the grace
//! keeper claimed it for revocation): the abandoned key is the one that works. Its own record, if a
//! resumed rollback wrote one, is cancelled first (so no keeper pass revokes it once it is back); then
//! it goes back under AWSCURRENT and on every target, and the operator is told, loudly.

use serde_json::json;

use crate::domain::Trigger;
use crate::domain::audit::{Action, AuditEvent, Outcome, Revocation, RevocationStatus};
use crate::domain::policy::AWSCURRENT;
use crate::domain::targets::TargetSpec;
use crate::error::Error;
use crate::ports::{Alert, AlertKind, AuditLog, Clock, Family, SecretStore, Severity, StageMove};
use crate::rotation::deploy::Redeploys;

use super::{Run, failed};
use crate::operator::Operator;

impl<F: Family> Operator<'_, F> {
    /// Undoes the rollback `run` and returns the error that says what happened and what is left.
    pub(super) async fn undo(
        &self,
        run: &Run<'_>,
        dead_record: Option<Revocation>,
        targets: &[TargetSpec],
    ) -> Error {
        let started = self.ports.clock.now();
        let undone = match self.keep_abandoned_alive(run).await {
            Ok(()) => self.move_back(run, targets).await,
            Err(why) => Err(why),
        };
        let status = dead_record.map_or("gone", |r| r.status.as_str());
        let (name, dead, alive) = (&run.secret.name, &run.plan.keep, &run.plan.abandon);
        let outcome = match &undone {
            Ok(()) => format!(
                "AWSCURRENT is back on version {alive} and every target holds its key again (redeployed)"
            ),
            Err(what) => what.clone(),
        };
        let text = format!(
            "The rollback of {name} went back to version {dead}, whose revocation record is now {status}: \
             the grace keeper acted on it while the rollback ran. {outcome}."
        );
        let alert = Alert::new(AlertKind::RollbackFailed, Severity::Critical, name)
            .subject(format!("keyrot: rollback of {name} undone"))
            .text(text.clone())
            .details(
                json!({"event": "rollback_failed", "secret": name, "version": dead,
                "record_status": status, "restored_version": alive, "restored": undone.is_ok()}),
            );
        self.ports.send_quietly(&alert).await;
        let event = AuditEvent::new(
            started,
            (&run.secret.arn, name),
            Action::Rollback,
            Outcome::Failed,
            dead,
        )
        .provider(run.bad.provider.name())
        .keys(None, Some(&run.bad.key_view()))
        .triggered(Some(Trigger::Manual))
        .by(run.actor)
        .targets(targets.iter().map(TargetSpec::label).collect())
        .took(started, self.ports.clock.now())
        .error(Some(text.clone()));
        self.ports.record_quietly(&event).await;
        failed(run.secret, text)
    }

    /// Cancels the abandoned key's revocation, if one was recorded: it is about to be current again.
    /// Cancelled by someone else is as good; anything else leaves no key to rely on.
    async fn keep_abandoned_alive(&self, run: &Run<'_>) -> Result<(), String> {
        let Some(record) = run
            .plan
            .abandon_record
            .as_ref()
            .filter(|r| r.status != RevocationStatus::Cancelled)
        else {
            return Ok(());
        };
        let (name, alive) = (&run.secret.name, &run.plan.abandon);
        let emergency =
            format!("rotate to a new key now: `keyrot rotate {name} --emergency --wait`");
        match self.ports.cancel_revocation(record).await {
            Ok(Some(_)) => Ok(()),
            Ok(None) => {
                let now = self
                    .ports
                    .audit
                    .revocation(name, alive)
                    .await
                    .ok()
                    .flatten();
                if now.map(|r| r.status) == Some(RevocationStatus::Cancelled) {
                    return Ok(());
                }
                Err(format!(
                    "version {alive}'s key is {} too: neither key can be relied on; {emergency}",
                    if record.status == RevocationStatus::Pending {
                        "claimed for revocation"
                    } else {
                        record.status.as_str()
                    }
                ))
            }
            Err(err) => Err(format!(
                "the revocation of version {alive}'s key could not be cancelled ({err}); {emergency}"
            )),
        }
    }

    /// AWSCURRENT back on the abandoned version, then its key on every target, redeployed.
    async fn move_back(&self, run: &Run<'_>, targets: &[TargetSpec]) -> Result<(), String> {
        let (name, dead, alive) = (&run.secret.name, &run.plan.keep, &run.plan.abandon);
        self.ports
            .store
            .move_stage(run.secret_id, AWSCURRENT, StageMove::Across { from: dead, to: alive })
            .await
            .map_err(|err| {
                format!(
                    "moving AWSCURRENT back to version {alive} failed ({err}): move it by hand \
                     (aws secretsmanager update-secret-version-stage {name} --version-stage AWSCURRENT \
                     --move-to-version-id {alive} --remove-from-version-id {dead}), then run \
                     `keyrot validate {name}`"
                )
            })?;
        self.deploys()
            .put_key_on_targets(run.secret, targets, &run.bad.api_key, Redeploys::All)
            .await
            .map(|_| ())
            .map_err(|err| {
                format!(
                    "AWSCURRENT is back on version {alive}, but putting its key back on the targets failed \
                     ({err}): run `keyrot validate {name}` and put the current key on the targets it names"
                )
            })
    }
}
