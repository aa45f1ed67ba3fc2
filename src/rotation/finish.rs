//! finishSecret: promote the pending version and schedule the old key's end.

use crate::domain::audit::{Action, AuditEvent, Outcome, Revocation, RevocationStatus};
use crate::domain::keys::KeyView;
use crate::domain::policy::{
    AWSCURRENT, AWSPENDING, AWSPREVIOUS, KEYROT_STAGED, ONE_SHOT_TAGS, Policy, Stage,
};
use crate::domain::{ManagedSecret, RotationEvent, SecretDescription, Step};
use crate::error::{Error, Result};
use crate::ports::{AuditLog, Clock, Family, Ports, SecretStore, StageMove};

use super::create::staged_key;
use super::{Evidence, Progress, Rotator};
use crate::revocation::{Revoke, Verified};

impl<F: Family> Rotator<'_, F> {
    pub(super) async fn finish_secret(
        &self,
        event: &RotationEvent,
        secret: &SecretDescription,
        evidence: &mut Evidence,
    ) -> Result<Progress> {
        let token = event.client_request_token.as_str();
        let policy = secret.policy_of_rotation(self.settings.default_grace_hours, token)?;
        let current_version = secret
            .version_with(AWSCURRENT)
            .ok_or_else(|| Error::protocol(&secret.name, "no version is labelled AWSCURRENT"))?
            .to_owned();
        let old = self.ports.current_value(&event.secret_id, secret).await?;
        evidence.provider = Some(old.provider.name());
        evidence.old_key = Some(old.key_view());
        self.refuse_untested(secret, token).await?;
        let adopted = self.adopted_staged(event, secret, AWSPENDING).await?;

        // Secrets Manager moves AWSPREVIOUS to the version AWSCURRENT leaves.
        self.ports
            .store
            .move_stage(
                &event.secret_id,
                AWSCURRENT,
                StageMove::Across {
                    from: &current_version,
                    to: token,
                },
            )
            .await?;
        self.ports
            .store
            .move_stage(&event.secret_id, AWSPENDING, StageMove::Off(token))
            .await?;
        if let Some(staged) = adopted {
            self.ports
                .store
                .move_stage(&event.secret_id, KEYROT_STAGED, StageMove::Off(&staged))
                .await?;
        }

        let due = self.ports.clock.now() + policy.grace_for_this_rotation();
        let revocation = self
            .ports
            .revocation_for(secret, &current_version, &old, due)
            .await?;
        // Without this record nobody would ever revoke the old key: its failure fails the step, and the
        // retried finishSecret writes it.
        let revocation = self.ports.schedule(&revocation).await?;
        // The old key goes before the one-shot tags do: an attempt that dies in between leaves the
        // tags that asked for grace 0, so its retry still revokes. A revocation that fails does not
        // fail the step, so the tags still go and no emergency's grace 0 outlives this rotation.
        self.end_old_key(secret, &policy, &revocation, evidence)
            .await;
        self.clear_one_shot_tags(event, secret).await?;
        Ok(Progress::Done)
    }

    /// Refuses to make current a version that testSecret did not pass: Secrets Manager calls
    /// finishSecret only after testSecret succeeded, so a version without that success (one written
    /// under AWSPENDING by someone else, or a value never checked) must not reach the consumers.
    async fn refuse_untested(&self, secret: &SecretDescription, token: &str) -> Result<()> {
        if self
            .ports
            .audit
            .step_succeeded(&secret.name, token, Step::Test)
            .await?
        {
            return Ok(());
        }
        Err(Error::protocol(
            &secret.name,
            format!(
                "testSecret has not succeeded for version {token}, so finishSecret will not make it \
                 AWSCURRENT; let Secrets Manager run setSecret and testSecret for it, or clear the \
                 rotation with `keyrot repair {}`",
                secret.name
            ),
        ))
    }

    /// finishSecret for a token that is already AWSCURRENT: a first attempt promoted it and then died
    /// (or timed out). Completes whatever that attempt left: a leftover label, the old key's revocation
    /// record, the one-shot tags.
    pub(super) async fn complete_finish(
        &self,
        event: &RotationEvent,
        secret: &SecretDescription,
        evidence: &mut Evidence,
    ) -> Result<Progress> {
        let token = event.client_request_token.as_str();
        let mut progress = Progress::AlreadyDone;
        if secret.has_stage(token, AWSPENDING) {
            self.ports
                .store
                .move_stage(&event.secret_id, AWSPENDING, StageMove::Off(token))
                .await?;
            progress = Progress::Done;
        }
        if let Some(staged) = self.adopted_staged(event, secret, AWSCURRENT).await? {
            self.ports
                .store
                .move_stage(&event.secret_id, KEYROT_STAGED, StageMove::Off(&staged))
                .await?;
            progress = Progress::Done;
        }
        let mut owed = None;
        if let Some(previous) = secret.version_with(AWSPREVIOUS) {
            let policy = secret.policy_of_rotation(
                self.settings.default_grace_hours,
                &event.client_request_token,
            )?;
            match self.ports.audit.revocation(&secret.name, previous).await? {
                None => {
                    let text = self
                        .ports
                        .store
                        .value(&event.secret_id, AWSPREVIOUS, None)
                        .await?;
                    if let Some(text) = text {
                        let old = ManagedSecret::parse(&secret.name, AWSPREVIOUS, &text)?;
                        evidence.provider = Some(old.provider.name());
                        evidence.old_key = Some(old.key_view());
                        let due = self.ports.clock.now() + policy.grace_for_this_rotation();
                        let revocation = self
                            .ports
                            .revocation_for(secret, previous, &old, due)
                            .await?;
                        let revocation = self.ports.schedule(&revocation).await?;
                        owed = Some((policy, revocation));
                        progress = Progress::Done;
                    }
                }
                // Grace 0 means the old key dies in finishSecret: finish what the crashed attempt began
                // (it clears the one-shot tags only after revoking, so they still say grace 0).
                Some(revocation)
                    if revocation.status.is_owed()
                        && policy.grace_for_this_rotation().is_zero() =>
                {
                    owed = Some((policy, revocation));
                    progress = Progress::Done;
                }
                Some(_) => {}
            }
        }
        if let Some((policy, revocation)) = owed {
            self.end_old_key(secret, &policy, &revocation, evidence)
                .await;
        }
        if self.clear_one_shot_tags(event, secret).await? {
            progress = Progress::Done;
        }
        Ok(progress)
    }

    /// With a grace of 0, revokes the old key now; otherwise says until when it stays valid. Never fails
    /// the step: AWSCURRENT has moved already, and a revocation that fails here is due now, so the grace
    /// keeper retries it within its next pass.
    async fn end_old_key(
        &self,
        secret: &SecretDescription,
        policy: &Policy,
        revocation: &Revocation,
        evidence: &mut Evidence,
    ) {
        if policy.grace_for_this_rotation().is_zero() {
            self.revoke_now(secret, revocation, evidence).await;
        } else {
            evidence.notes.push(format!(
                "The old key {} stays valid until {} (grace period).",
                revocation.hint,
                revocation
                    .due
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ));
        }
    }

    async fn revoke_now(
        &self,
        secret: &SecretDescription,
        revocation: &Revocation,
        evidence: &mut Evidence,
    ) {
        let started = self.ports.clock.now();
        let hint = &revocation.hint;
        if revocation.claim_is_live(started) {
            // Another process (a keeper pass, or an attempt of this step that died) claimed it
            // moments ago; if that process died, the keeper takes it up when the claim's lease ends.
            return evidence.notes.push(format!(
                "The old key {hint} is being revoked by another process (claimed at {}); the grace keeper finishes it if that process died.",
                revocation
                    .claimed_at
                    .map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                    .unwrap_or_default()
            ));
        }
        // Claimed first, as the grace keeper does, so that no rollback takes the key back while it is
        // being revoked. A claim that cannot be made leaves the record due: the keeper revokes it.
        let patience = self.settings.revocation_check;
        let revoked = self
            .ports
            .revoke_recorded(revocation, patience, async |_| true)
            .await;
        let Some((outcome, result)) = self.outcome_of(secret, revocation, revoked, evidence).await
        else {
            return;
        };
        let audit = AuditEvent::new(
            started,
            (&secret.arn, &secret.name),
            Action::Revoke,
            outcome,
            &revocation.old_version_id,
        )
        .provider(revocation.provider.as_str())
        .keys(evidence.old_key.as_ref(), None)
        .triggered(evidence.trigger)
        .by(&evidence.actor)
        .took(started, self.ports.clock.now())
        .error(result);
        self.ports.record_quietly(&audit).await;
    }

    /// What a grace-0 revocation came to: notes for the success alert, and the audit outcome and error
    /// (`None` when there is nothing of this attempt's to audit: the record was settled or unclaimed).
    async fn outcome_of(
        &self,
        secret: &SecretDescription,
        revocation: &Revocation,
        revoked: Revoke,
        evidence: &mut Evidence,
    ) -> Option<(Outcome, Option<String>)> {
        let hint = &revocation.hint;
        match revoked {
            Revoke::Lost | Revoke::Declined { .. } => {
                evidence.notes.push(format!(
                    "The old key {hint} was not revoked at once: its record was settled meanwhile."
                ));
                None
            }
            Revoke::Unclaimed(err) => {
                self.ports.audit_failed(&revocation.secret_name, &err);
                evidence.notes.push(format!(
                    "The old key {hint} could NOT be revoked at once (its record could not be claimed: {err}); it is due now and the grace keeper revokes it on its next pass."
                ));
                None
            }
            Revoke::StillWorks { record, released } => {
                self.settle_written(revocation, released);
                self.ports
                    .send_quietly(&crate::revocation::still_works_alert(&record))
                    .await;
                evidence.notes.push(format!(
                    "The old key {hint} was revoked by its recorded id, but the provider still accepts it: it stays owed, and a person must revoke it by hand (see the alert)."
                ));
                Some((
                    Outcome::Failed,
                    Some("the provider still accepts the revoked key".to_owned()),
                ))
            }
            Revoke::Revoked {
                status,
                verified,
                settled,
                ..
            } => {
                self.settle_written(revocation, settled);
                if status == RevocationStatus::Manual {
                    evidence.notes.push(still_valid(secret, revocation));
                    return Some((
                        Outcome::Skipped,
                        Some("left to a person: a revocation task".to_owned()),
                    ));
                }
                evidence.notes.push(match status {
                    RevocationStatus::Retired => format!(
                        "The old key {hint} was retired at once (grace 0); {} keys cannot be revoked by keyrot.",
                        revocation.provider
                    ),
                    _ if verified == Verified::Refused => format!(
                        "The old key {hint} was revoked at once (grace 0); the provider now refuses it."
                    ),
                    _ => format!("The old key {hint} was revoked at once (grace 0)."),
                });
                Some((Outcome::Succeeded, None))
            }
            Revoke::Failed {
                error, released, ..
            } => {
                // Still owed: the keeper's next attempt retries it.
                self.settle_written(revocation, released);
                tracing::warn!(secret = %secret.name, error = %error, "revoking the old key at once failed; the grace keeper retries it");
                evidence.notes.push(format!(
                    "The old key {hint} could NOT be revoked at once ({error}); it is due now and the grace keeper retries it on its next pass."
                ));
                Some((Outcome::Failed, Some(error.to_string())))
            }
        }
    }

    /// Logs a settle or release of finishSecret's claim that did not land.
    fn settle_written(&self, revocation: &Revocation, written: Result<bool>) {
        match written {
            Ok(true) => {}
            Ok(false) => tracing::warn!(
                secret = %revocation.secret_name,
                version = %revocation.old_version_id,
                "the revocation record changed while finishSecret revoked the old key; check it with `keyrot status --secret {}`",
                revocation.secret_name
            ),
            Err(err) => self.ports.audit_failed(&revocation.secret_name, &err),
        }
    }

    /// The version under `KEYROT_STAGED` when it holds the key this rotation adopted (the token's, read
    /// under `stage`). A key a person staged after createSecret adopted another is the next rotation's,
    /// and keeps its label.
    async fn adopted_staged(
        &self,
        event: &RotationEvent,
        secret: &SecretDescription,
        stage: Stage,
    ) -> Result<Option<String>> {
        let Some(staged) = secret.version_with(KEYROT_STAGED) else {
            return Ok(None);
        };
        let token = event.client_request_token.as_str();
        let (Some(staged_text), Some(new_text)) = (
            self.ports
                .store
                .value(&event.secret_id, KEYROT_STAGED, Some(staged))
                .await?,
            self.ports
                .store
                .value(&event.secret_id, stage, Some(token))
                .await?,
        ) else {
            return Ok(None);
        };
        let new = ManagedSecret::parse(&secret.name, stage, &new_text)?;
        let same = staged_key(&staged_text)
            .is_some_and(|key| KeyView::of(&key).fingerprint == new.key_view().fingerprint);
        Ok(same.then(|| staged.to_owned()))
    }

    /// Removes this rotation's one-shot tags; returns whether any was there.
    async fn clear_one_shot_tags(
        &self,
        event: &RotationEvent,
        secret: &SecretDescription,
    ) -> Result<bool> {
        self.ports
            .clear_one_shot_tags(&event.secret_id, secret, &event.client_request_token)
            .await
    }
}

impl<F: Family> Ports<F> {
    /// Removes the one-shot tags ([`ONE_SHOT_TAGS`]), which belong to one rotation: the one of
    /// `token` that finishes, or that is abandoned (repair, nothing staged), so that they never make a
    /// later scheduled rotation an emergency. Tags for another rotation stay: that one is about to
    /// start, or `keyrot rotate` is putting them back after Secrets Manager refused it. Returns
    /// whether any was removed.
    pub(crate) async fn clear_one_shot_tags(
        &self,
        secret_id: &str,
        secret: &SecretDescription,
        token: &str,
    ) -> Result<bool> {
        if !secret.one_shot_tags_are_for(token) {
            return Ok(false);
        }
        let present: Vec<&str> = ONE_SHOT_TAGS
            .into_iter()
            .filter(|tag| secret.tags.contains_key(*tag))
            .collect();
        if present.is_empty() {
            return Ok(false);
        }
        self.store.untag(secret_id, &present).await?;
        Ok(true)
    }
}

/// A grace-0 revocation left to a person: nothing was revoked, and the key lives until a person
/// revokes it (a revocation task). Says so, with the console steps.
fn still_valid(secret: &SecretDescription, revocation: &Revocation) -> String {
    let hint = &revocation.hint;
    let steps = revocation.provider.console().map_or_else(
        || format!("revoke it in the {} console", revocation.provider.title()),
        |console| console.revoke_task(&secret.name, hint, &revocation.old_version_id),
    );
    format!(
        "The old key {hint} is STILL VALID: keyrot cannot revoke it, so a person must, now. {steps}"
    )
}
