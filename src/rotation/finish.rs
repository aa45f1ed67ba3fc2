//! finishSecret: promote the pending version and schedule the old key's end.

use chrono::{DateTime, Utc};
use secrecy::SecretString;

use crate::domain::audit::{Action, AuditEvent, Outcome, Revocation, RevocationStatus};
use crate::domain::keys::{KeyView, NewKey};
use crate::domain::policy::{
    AWSCURRENT, AWSPENDING, AWSPREVIOUS, KEYROT_STAGED, ONE_SHOT_TAGS, Policy,
};
use crate::domain::{ManagedSecret, ProviderSettings, RotationEvent, SecretDescription};
use crate::error::{Error, Result};
use crate::ports::{AuditLog, Clock, Family, SecretStore, StageMove};

use super::{Evidence, Progress, Rotator};
use crate::revocation::Revoke;

impl<F: Family> Rotator<'_, F> {
    pub(super) async fn finish_secret(
        &self,
        event: &RotationEvent,
        secret: &SecretDescription,
        evidence: &mut Evidence,
    ) -> Result<Progress> {
        let token = event.client_request_token.as_str();
        let policy = secret.policy(self.settings.default_grace_hours)?;
        let current_version = secret
            .version_with(AWSCURRENT)
            .ok_or_else(|| Error::protocol(&secret.name, "no version is labelled AWSCURRENT"))?
            .to_owned();
        let old = self.ports.current_value(&event.secret_id, secret).await?;
        evidence.provider = Some(old.provider.name());
        evidence.old_key = Some(KeyView::of(&old.api_key));

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
        if let Some(staged) = secret.version_with(KEYROT_STAGED) {
            self.ports
                .store
                .move_stage(&event.secret_id, KEYROT_STAGED, StageMove::Off(staged))
                .await?;
        }

        let due = self.ports.clock.now() + policy.grace_for_this_rotation();
        let revocation =
            revocation_of(secret, &current_version, &old.provider, &(&old).into(), due);
        // Without this record nobody would ever revoke the old key: its failure fails the step, and the
        // retried finishSecret writes it.
        self.ports.record_revocation(&revocation).await?;
        // The old key goes before the one-shot tags do: an attempt that dies in between leaves the
        // tags that asked for grace 0, so its retry still revokes. A revocation that fails does not
        // fail the step, so the tags still go and no emergency's grace 0 outlives this rotation.
        self.end_old_key(secret, &policy, &revocation, evidence)
            .await;
        self.clear_one_shot_tags(event, secret).await?;
        Ok(Progress::Done)
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
        if let Some(staged) = secret.version_with(KEYROT_STAGED) {
            self.ports
                .store
                .move_stage(&event.secret_id, KEYROT_STAGED, StageMove::Off(staged))
                .await?;
            progress = Progress::Done;
        }
        let mut owed = None;
        if let Some(previous) = secret.version_with(AWSPREVIOUS) {
            let policy = secret.policy(self.settings.default_grace_hours)?;
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
                        evidence.old_key = Some(KeyView::of(&old.api_key));
                        let due = self.ports.clock.now() + policy.grace_for_this_rotation();
                        let revocation =
                            revocation_of(secret, previous, &old.provider, &(&old).into(), due);
                        self.ports.record_revocation(&revocation).await?;
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
        let (outcome, result) = match self.ports.revoke_recorded(revocation, async |_| true).await {
            Revoke::Lost | Revoke::Declined { .. } => {
                return evidence.notes.push(format!(
                    "The old key {hint} was not revoked at once: its record was settled meanwhile."
                ));
            }
            Revoke::Unclaimed(err) => {
                self.ports.audit_failed(&revocation.secret_name, &err);
                return evidence.notes.push(format!(
                    "The old key {hint} could NOT be revoked at once (its record could not be claimed: {err}); it is due now and the grace keeper revokes it on its next pass."
                ));
            }
            Revoke::Revoked {
                status, settled, ..
            } => {
                self.settle_written(revocation, settled);
                evidence.notes.push(match status {
                    RevocationStatus::Retired => format!(
                        "The old key {hint} was retired at once (grace 0); {} keys cannot be revoked by keyrot.",
                        revocation.provider
                    ),
                    _ => format!("The old key {hint} was revoked at once (grace 0)."),
                });
                (Outcome::Succeeded, None)
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
                (Outcome::Failed, Some(error.to_string()))
            }
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

    /// Removes `keyrot:next-grace-hours` and `keyrot:trigger`; returns whether any was there.
    async fn clear_one_shot_tags(
        &self,
        event: &RotationEvent,
        secret: &SecretDescription,
    ) -> Result<bool> {
        let present: Vec<&str> = ONE_SHOT_TAGS
            .into_iter()
            .filter(|tag| secret.tags.contains_key(*tag))
            .collect();
        if present.is_empty() {
            return Ok(false);
        }
        self.ports.store.untag(&event.secret_id, &present).await?;
        Ok(true)
    }
}

/// The key a revocation names, whichever record it comes from.
pub(crate) struct KeyRef<'a> {
    pub api_key: &'a SecretString,
    pub key_id: Option<&'a str>,
    pub api_key_id: Option<&'a str>,
}

impl<'a> From<&'a ManagedSecret> for KeyRef<'a> {
    fn from(secret: &'a ManagedSecret) -> Self {
        KeyRef {
            api_key: &secret.api_key,
            key_id: secret.key_id.as_deref(),
            api_key_id: secret.api_key_id.as_deref(),
        }
    }
}

impl<'a> From<&'a NewKey> for KeyRef<'a> {
    fn from(key: &'a NewKey) -> Self {
        KeyRef {
            api_key: &key.api_key,
            key_id: key.key_id.as_deref(),
            api_key_id: key.api_key_id.as_deref(),
        }
    }
}

/// What revoking a key later needs to know, without the key itself.
pub(crate) fn revocation_of(
    secret: &SecretDescription,
    version_id: &str,
    provider: &ProviderSettings,
    key: &KeyRef<'_>,
    due: DateTime<Utc>,
) -> Revocation {
    let view = KeyView::of(key.api_key);
    let (project_id, admin_key_secret) = match provider {
        ProviderSettings::OpenAi(openai) => (
            Some(openai.project_id.clone()),
            Some(openai.admin_key_secret.clone()),
        ),
        ProviderSettings::Anthropic(anthropic) => (None, Some(anthropic.admin_key_secret.clone())),
        ProviderSettings::Generic(_) => (None, None),
    };
    Revocation {
        secret_name: secret.name.clone(),
        secret_arn: secret.arn.clone(),
        old_version_id: version_id.to_owned(),
        provider: provider.provider(),
        project_id,
        key_id: key.key_id.map(str::to_owned),
        api_key_id: key.api_key_id.map(str::to_owned),
        admin_key_secret,
        fingerprint: view.fingerprint,
        hint: view.redacted,
        due,
        attempts: 0,
        postponements: 0,
        status: RevocationStatus::Pending,
        claimed_at: None,
    }
}
