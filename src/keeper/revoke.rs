//! Revoking the old keys whose grace period ended.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::domain::audit::{Action, Outcome, Revocation, RevocationStatus};
use crate::domain::policy::{AWSCURRENT, AWSPENDING};
use crate::domain::provenance::Origin;
use crate::domain::targets::TargetSpec;
use crate::domain::{ManagedSecret, SecretDescription};
use crate::ports::{
    Alert, AlertKind, AuditLog, Clock, Family, KeyIssuer, SecretStore, Severity, Target,
};

use super::{GraceKeeper, KeeperReport, Managed};
use crate::error::{Error, Result};
use crate::revocation::{Revoke, Verified};

/// Why a key is revoked now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reason {
    /// Its grace period ended and nothing holds it.
    GraceEnded,
    /// It is still used, but its revocation was postponed as often as the settings allow.
    PostponedTooOften,
}

/// Whether a postponement counts towards the limit (only one for recent use does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Counted {
    Yes,
    No,
}

/// Why a due revocation did not happen in this pass.
enum Hold {
    /// The key is in service again: its version is AWSCURRENT again (a rollback), or AWSCURRENT
    /// holds the same key. Never revoke it.
    InService(String),
    /// Something still uses or may use the key (a target, another secret, a live preview, a service
    /// keyrot does not redeploy): revoking it would break that service. Says what, as a sentence.
    HeldBy(String),
    /// Which targets there are cannot be told (the current value is unreadable), or the version still
    /// carries AWSPENDING: revoking now could break a service, so wait.
    TargetsUnknown(String),
    /// The provider saw the key used recently.
    InUse(DateTime<Utc>),
}

/// What a revocation is decided on besides its own secret's labels.
#[derive(Clone, Copy)]
struct Context<'a> {
    /// The secret's AWSCURRENT value, when it could be read.
    current: Option<&'a ManagedSecret>,
    /// Where another managed secret holds the same key (its AWSCURRENT, its AWSPENDING or one of
    /// its targets), as a sentence.
    shared: Option<&'a str>,
}

impl<F: Family> GraceKeeper<'_, F> {
    pub(super) async fn revoke_due(
        &self,
        now: DateTime<Utc>,
        managed: &BTreeMap<&str, &Managed>,
        report: &mut KeeperReport,
    ) {
        let due = match self.ports.audit.pending_revocations(now).await {
            Ok(due) => due.reporting(|problem| report.errors.push(problem)),
            Err(err) => return report.errors.push(format!("pending revocations: {err}")),
        };
        // A record another process is revoking right now (its claim is younger than the lease) is
        // theirs: deciding on it here could release or cancel a claim in use.
        let due = due
            .into_iter()
            .filter(|r| self.in_scope(&r.secret_name) && !r.claim_is_live(now));
        for revocation in due {
            // The listing's labels may lag behind a rollback (ListSecrets is eventually consistent):
            // whether the key is in service again is asked afresh right before deciding.
            let secret = match self
                .ports
                .store
                .describe(&revocation.secret_arn_or_name())
                .await
            {
                Ok(secret) => secret,
                Err(err) => {
                    report
                        .errors
                        .push(format!("{}: {err}", revocation.secret_name));
                    continue;
                }
            };
            let read;
            let current = match managed
                .get(revocation.secret_name.as_str())
                .and_then(|item| item.current.as_ref())
            {
                Some(current) => Some(current),
                None => {
                    read = self.current_value(&secret).await;
                    read.as_ref()
                }
            };
            let shared = self.held_elsewhere(&revocation, managed).await;
            let name = secret.name.clone();
            let context = Context {
                current,
                shared: shared.as_deref(),
            };
            super::isolated(&name, report, async |part| {
                self.settle(now, &secret, context, revocation, part).await
            })
            .await;
        }
    }

    /// The same key under another managed secret (one project key onboarded twice) is in service
    /// there: it is held while that secret's AWSCURRENT has it, or (for a secret of the same OpenAI
    /// project or Anthropic admin key, the only ones that could use it, so a pass stays cheap) its
    /// AWSPENDING or one of its targets does. Another secret that cannot be read, or a target of it
    /// that cannot be, holds nothing: they are that secret's writer's, and must not let one writer
    /// stall every other secret's revocation.
    async fn held_elsewhere(
        &self,
        revocation: &Revocation,
        managed: &BTreeMap<&str, &Managed>,
    ) -> Option<String> {
        let fingerprint = revocation.fingerprint.as_str();
        let others = managed.values().filter(|item| {
            item.secret.name != revocation.secret_name
                && item
                    .current
                    .as_ref()
                    .is_some_and(|c| c.provider.provider() == revocation.provider)
        });
        for item in others {
            let (secret, Some(current)) = (&item.secret, item.current.as_ref()) else {
                continue;
            };
            let name = &secret.name;
            if current.key_view().fingerprint == fingerprint {
                return Some(format!("managed secret {name} still holds the key"));
            }
            if !same_scope(revocation, current) {
                continue;
            }
            // Two secrets of one database logging in as one role: locking it out would stop the other.
            if revocation.provider == crate::domain::secret::Provider::Postgres
                && current.key_id == revocation.key_id
            {
                return Some(format!("managed secret {name} logs in as the same role"));
            }
            if self.pending_fingerprint(secret).await.as_deref() == Some(fingerprint) {
                return Some(format!(
                    "the rotation under way of managed secret {name} holds the key"
                ));
            }
            for target in TargetSpec::parse_all(name, &current.targets).unwrap_or_default() {
                match self.ports.targets.holds(name, &target, fingerprint).await {
                    Ok(false) => {}
                    Ok(true) => {
                        return Some(format!(
                            "target {} of managed secret {name} still holds the key",
                            target.label()
                        ));
                    }
                    Err(err) => tracing::warn!(
                        other = %name,
                        target = %target.label(),
                        error = %err,
                        "another secret's target could not be read; it does not hold this revocation"
                    ),
                }
            }
        }
        None
    }

    /// The fingerprint of the key a rotation under way of `secret` put under AWSPENDING.
    async fn pending_fingerprint(&self, secret: &SecretDescription) -> Option<String> {
        let pending = secret
            .version_with(AWSPENDING)
            .filter(|v| !secret.has_stage(v, AWSCURRENT))?;
        let text = self
            .ports
            .store
            .value(&secret.arn_or_name(), AWSPENDING, Some(pending))
            .await
            .ok()??;
        let value = ManagedSecret::parse(&secret.name, AWSPENDING, &text).ok()?;
        Some(value.key_view().fingerprint)
    }

    /// Whether `version` carries AWSCURRENT, asked afresh; `None` when DescribeSecret fails.
    async fn current_now(&self, secret: &SecretDescription, version: &str) -> Option<bool> {
        let now = self
            .ports
            .store
            .describe(&secret.arn_or_name())
            .await
            .ok()?;
        Some(now.has_stage(version, AWSCURRENT))
    }

    /// The secret's AWSCURRENT value, or None when it cannot be read or parsed.
    async fn current_value(&self, secret: &SecretDescription) -> Option<ManagedSecret> {
        let text = self
            .ports
            .store
            .value(&secret.arn_or_name(), AWSCURRENT, None)
            .await
            .ok()??;
        ManagedSecret::parse(&secret.name, AWSCURRENT, &text).ok()
    }

    async fn settle(
        &self,
        now: DateTime<Utc>,
        secret: &SecretDescription,
        context: Context<'_>,
        mut revocation: Revocation,
        report: &mut KeeperReport,
    ) {
        let hold = match self.hold(now, secret, context, &revocation).await {
            Ok(hold) => hold,
            Err(err) => {
                let counted = revocation.failed_attempt();
                let written = self
                    .ports
                    .rewrite_revocation(&revocation, counted.clone())
                    .await
                    .map(|written| written.is_some());
                return self.failed(secret, counted, err, written, report).await;
            }
        };
        match hold {
            Some(Hold::InService(why)) => {
                // The key is in service again; its revocation no longer stands.
                match self.ports.cancel_revocation(&revocation).await {
                    Ok(Some(_)) => {}
                    // Settled meanwhile by someone else: nothing of ours to record.
                    Ok(None) => return,
                    Err(err) => report.errors.push(format!("{}: {err}", secret.name)),
                }
                let note = format!("{why}: revocation cancelled");
                self.audit(
                    secret,
                    Action::Revoke,
                    Outcome::Skipped,
                    &revocation.old_version_id,
                    Some(note),
                )
                .await;
            }
            Some(Hold::HeldBy(holder)) => {
                report.postponed += 1;
                let reason = holder;
                self.postpone(now, secret, &mut revocation, &reason, Counted::No, report)
                    .await;
            }
            Some(Hold::TargetsUnknown(why)) => {
                report.postponed += 1;
                let reason = format!("{why}, so whether a target still holds the key is unknown");
                self.postpone(now, secret, &mut revocation, &reason, Counted::No, report)
                    .await;
            }
            Some(Hold::InUse(at)) if revocation.postponements < self.settings.postpone_limit => {
                report.postponed += 1;
                let reason = format!(
                    "the key was used at {}",
                    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                );
                self.postpone(now, secret, &mut revocation, &reason, Counted::Yes, report)
                    .await;
            }
            Some(Hold::InUse(_)) | None => {
                let reason = match hold {
                    Some(Hold::InUse(_)) => Reason::PostponedTooOften,
                    _ => Reason::GraceEnded,
                };
                self.revoke(secret, revocation, reason, report).await;
            }
        }
    }

    async fn hold(
        &self,
        now: DateTime<Utc>,
        secret: &SecretDescription,
        Context { current, shared }: Context<'_>,
        revocation: &Revocation,
    ) -> Result<Option<Hold>> {
        if let Some(elsewhere) = shared {
            return Ok(Some(Hold::HeldBy(elsewhere.to_owned())));
        }
        if secret.has_stage(&revocation.old_version_id, AWSCURRENT) {
            return Ok(Some(Hold::InService(format!(
                "version {} is AWSCURRENT again",
                revocation.old_version_id
            ))));
        }
        // A pending version with a record is one `keyrot repair` is taking apart (it records the
        // minted key before removing the label): wait for the label to go; cancelling would leave that
        // key alive and unknown.
        if secret.has_stage(&revocation.old_version_id, AWSPENDING) {
            return Ok(Some(Hold::TargetsUnknown(format!(
                "version {} still carries AWSPENDING",
                revocation.old_version_id
            ))));
        }
        let Some(current) = current else {
            return Ok(Some(Hold::TargetsUnknown(
                "the current value could not be read".to_owned(),
            )));
        };
        // The same key under another version: staged again by hand, or put back with
        // put-secret-value. Version labels alone would not see it.
        if current.key_view().fingerprint == revocation.fingerprint {
            return Ok(Some(Hold::InService(
                "AWSCURRENT holds this same key under another version".to_owned(),
            )));
        }
        let targets = match TargetSpec::parse_all(&secret.name, &current.targets) {
            Ok(targets) => targets,
            Err(err) => return Ok(Some(Hold::TargetsUnknown(err.to_string()))),
        };
        for target in &targets {
            if self
                .ports
                .targets
                .holds(&secret.name, target, &revocation.fingerprint)
                .await?
            {
                return Ok(Some(Hold::HeldBy(format!(
                    "target {} still holds the key",
                    target.label()
                ))));
            }
            if let Some(held) = self
                .unconfirmed(now, secret, current, target, revocation)
                .await?
            {
                return Ok(Some(held));
            }
            if let Some(held) = self.stale_hold(now, secret, target, revocation).await? {
                return Ok(Some(held));
            }
        }
        // Once a revocation was sent, the key is dying whatever this pass decides, and its last use may
        // be keyrot's own check that it is refused: use no longer holds it.
        if revocation.revoke_sent_at.is_none()
            && let Some(used) = self.ports.issuer.last_used(&revocation.handle()).await?
            && now - used < self.settings.in_use_window
        {
            return Ok(Some(Hold::InUse(used)));
        }
        Ok(None)
    }

    /// Live previews built before the variable last changed may run the old key, unless they were
    /// built before keyrot minted it: those cannot have it.
    async fn stale_hold(
        &self,
        now: DateTime<Utc>,
        secret: &SecretDescription,
        target: &TargetSpec,
        revocation: &Revocation,
    ) -> Result<Option<Hold>> {
        let minted = self
            .ports
            .audit
            .key_record(&secret.name, &revocation.fingerprint)
            .await?
            .filter(|record| record.origin == Origin::Minted)
            .map(|record| record.at);
        let stale = self
            .ports
            .targets
            .stale_deployments(&secret.name, target, now, minted)
            .await?;
        if stale.is_empty() {
            return Ok(None);
        }
        Ok(Some(Hold::HeldBy(format!(
            "the live preview deployment(s) {} of target {} were built before the key changed and may still use it: redeploy or delete them",
            stale.join(", "),
            target.label()
        ))))
    }

    /// A target keyrot does not redeploy holds the new key in its variable, but whether its service
    /// runs it only a person knows: the revocation waits for `keyrot confirm`, or for the target's
    /// `restart_within_hours` since the new key was made.
    async fn unconfirmed(
        &self,
        now: DateTime<Utc>,
        secret: &SecretDescription,
        current: &ManagedSecret,
        target: &TargetSpec,
        revocation: &Revocation,
    ) -> Result<Option<Hold>> {
        if target.redeploys() || revocation.confirmed.is_some() {
            return Ok(None);
        }
        if let Some(hours) = target.restart_within_hours() {
            let made = self
                .ports
                .audit
                .key_record(&secret.name, &current.key_view().fingerprint)
                .await?
                .map(|record| record.at);
            if made.is_some_and(|at| now - at >= chrono::Duration::hours(i64::from(hours))) {
                return Ok(None);
            }
        }
        let wait = target
            .restart_within_hours()
            .map(|hours| format!(" (or keyrot waits {hours} hours after the new key was made)"))
            .unwrap_or_default();
        Ok(Some(Hold::HeldBy(format!(
            "target {} is not redeployed by keyrot, so its service may still run the old key: once it runs the new one, say so with `keyrot confirm {}`{wait}",
            target.label(),
            secret.name
        ))))
    }

    async fn postpone(
        &self,
        now: DateTime<Utc>,
        secret: &SecretDescription,
        revocation: &mut Revocation,
        reason: &str,
        counted: Counted,
        report: &mut KeeperReport,
    ) {
        revocation.due = now + self.settings.in_use_window;
        if counted == Counted::Yes {
            revocation.postponements += 1;
        }
        // A claim a crashed pass left is released: until it is due again, a rollback may cancel it.
        let read = std::mem::replace(revocation, revocation.settled(RevocationStatus::Pending));
        match self
            .ports
            .rewrite_revocation(&read, revocation.clone())
            .await
        {
            Ok(Some(_)) => {}
            // A rollback or another pass settled the record since it was read.
            Ok(None) => return,
            Err(err) => report.errors.push(format!("{}: {err}", secret.name)),
        }
        let note = format!(
            "postponed to {}: {reason}",
            revocation
                .due
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
        self.audit(
            secret,
            Action::Revoke,
            Outcome::Skipped,
            &revocation.old_version_id,
            Some(note.clone()),
        )
        .await;
        let alert = Alert::new(AlertKind::RevocationPostponed, Severity::Warning, &secret.name)
            .subject(format!(
                "keyrot: revocation of the old key of {} postponed",
                secret.name
            ))
            .text(format!(
                "The old key {} of {} was not revoked yet: {reason}. keyrot tries again at {}.",
                revocation.hint,
                secret.name,
                revocation
                    .due
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ))
            .details(json!({"event": "revocation_postponed", "secret": secret.name, "version_id": revocation.old_version_id,
                "key": revocation.hint, "reason": reason, "retry_at": revocation.due.to_rfc3339(), "postponements": revocation.postponements}));
        let dedupe = format!("{}#{}", revocation.old_version_id, revocation.postponements);
        self.alert_once(secret, &dedupe, alert, report).await;
    }

    async fn revoke(
        &self,
        secret: &SecretDescription,
        revocation: Revocation,
        reason: Reason,
        report: &mut KeeperReport,
    ) {
        // Claimed first: from here on a rollback cannot cancel the record and bring the key back
        // while the provider revokes it; it finds the claim and undoes itself instead. A claim whose
        // lease ran out (its process died) is taken over. Holding the claim, AWSCURRENT is asked
        // again: a rollback may have moved it to this version after the pass looked.
        let outcome = self
            .ports
            .revoke_recorded(
                &revocation,
                self.settings.revocation_check,
                async |claimed| {
                    self.current_now(secret, &claimed.old_version_id).await == Some(false)
                },
            )
            .await;
        match outcome {
            // Settled meanwhile (a rollback cancelled it): nothing of ours to do.
            Revoke::Lost => {}
            Revoke::Unclaimed(err) => report.errors.push(format!("{}: {err}", secret.name)),
            Revoke::Declined { released } => {
                if let Err(err) = released {
                    report.errors.push(format!("{}: {err}", secret.name));
                }
                report.postponed += 1;
            }
            Revoke::Failed {
                record,
                error,
                released,
            } => self.failed(secret, record, error, released, report).await,
            Revoke::StillWorks { record, released } => {
                self.still_works(secret, record, released, report).await;
            }
            Revoke::Revoked {
                record,
                status,
                verified,
                settled,
            } => {
                let settled = settled.unwrap_or_else(|err| {
                    report.errors.push(format!("{}: {err}", secret.name));
                    true
                });
                self.revoked(secret, record, (status, verified), settled, reason, report)
                    .await;
            }
        }
    }

    /// Audits and alerts a revocation the provider made.
    async fn revoked(
        &self,
        secret: &SecretDescription,
        revocation: Revocation,
        (status, verified): (RevocationStatus, Verified),
        settled: bool,
        reason: Reason,
        report: &mut KeeperReport,
    ) {
        // Neither should happen while claims hold; if one does, a person must look now.
        let current = self.current_now(secret, &revocation.old_version_id).await == Some(true);
        if !settled || current {
            self.alert_lost_current(secret, &revocation, current, report)
                .await;
        }
        if status == RevocationStatus::Manual {
            // Not revoked: a task for a person, which `remind_tasks` announces in this same pass.
            let note = format!(
                "left to a person: revoke it in the provider's console, then record it with `keyrot revoked {} --version {}`",
                secret.name, revocation.old_version_id
            );
            let (action, version) = (Action::Revoke, &revocation.old_version_id);
            return self
                .audit(secret, action, Outcome::Skipped, version, Some(note))
                .await;
        }
        report.revoked += 1;
        let forced = reason == Reason::PostponedTooOften;
        let note = match status {
            RevocationStatus::Retired => {
                Some("generic key retired (nothing to revoke at a provider)".to_owned())
            }
            _ if forced => Some(
                "revoked although recently used: the postponement limit was reached".to_owned(),
            ),
            _ if verified == Verified::NotAsked => Some(
                "revoked; its old value could no longer be read, so whether the provider refuses it was not checked"
                    .to_owned(),
            ),
            _ => None,
        };
        self.audit(
            secret,
            Action::Revoke,
            Outcome::Succeeded,
            &revocation.old_version_id,
            note,
        )
        .await;
        let (name, hint) = (&secret.name, &revocation.hint);
        let (severity, text) = match status {
            _ if forced => (
                Severity::Critical,
                format!(
                    "The old key {hint} of {name} was revoked although it was still in use after {} postponements: a service may still be using it.",
                    revocation.postponements
                ),
            ),
            _ => (
                Severity::Info,
                format!(
                    "The old key {hint} of {name} was {} after its grace period.",
                    status.as_str()
                ),
            ),
        };
        let alert = Alert::new(AlertKind::KeyRevoked, severity, name)
            .subject(format!("keyrot: old key of {name} {}", status.as_str()))
            .text(text)
            .details(json!({"event": "key_revoked", "secret": name, "version_id": revocation.old_version_id,
                "key": hint, "status": status.as_str(), "forced": forced, "provider": revocation.provider.as_str()}));
        self.alert_once(secret, &revocation.old_version_id, alert, report)
            .await;
    }

    /// A key was revoked while its version is AWSCURRENT, or its record was settled by another process
    /// while this pass held the claim: the secret may have lost its working key.
    async fn alert_lost_current(
        &self,
        secret: &SecretDescription,
        revocation: &Revocation,
        current: bool,
        report: &mut KeeperReport,
    ) {
        let (name, hint) = (&secret.name, &revocation.hint);
        let text = format!(
            "{name}: the old key {hint} (version {}) was revoked, but {}: check that AWSCURRENT works with \
             `keyrot validate {name}`, and rotate now with `keyrot rotate {name} --emergency` if it does not",
            revocation.old_version_id,
            if current {
                "that version is AWSCURRENT now"
            } else {
                "its record was settled or taken over by another process meanwhile"
            },
        );
        report.errors.push(text.clone());
        let alert = Alert::new(AlertKind::RollbackFailed, Severity::Critical, name)
            .subject(format!("keyrot: {name} may have lost its current key"))
            .text(text)
            .details(json!({"event": "rollback_failed", "secret": name,
                "version_id": revocation.old_version_id, "key": hint, "current": current}));
        self.alert_once(secret, &revocation.old_version_id, alert, report)
            .await;
    }

    /// The provider still accepts a key keyrot revoked: the record stays owed (released with the
    /// attempt counted), and a person is paged once a day until the key is refused.
    async fn still_works(
        &self,
        secret: &SecretDescription,
        revocation: Revocation,
        released: Result<bool>,
        report: &mut KeeperReport,
    ) {
        report.failed += 1;
        match released {
            Ok(true) => {}
            Ok(false) => return,
            Err(err) => report.errors.push(format!("{}: {err}", secret.name)),
        }
        let note = "revoked by its recorded id, but the provider still accepts the key".to_owned();
        self.audit(
            secret,
            Action::Revoke,
            Outcome::Failed,
            &revocation.old_version_id,
            Some(note),
        )
        .await;
        let dedupe = format!(
            "{}#still-works#{}",
            revocation.old_version_id,
            self.ports.clock.now().format("%Y-%m-%d")
        );
        let alert = crate::revocation::still_works_alert(&revocation);
        self.alert_once(secret, &dedupe, alert, report).await;
    }

    /// Audits a failed attempt (already counted in `revocation`, written or not as `written` says) and
    /// alerts from the configured number of attempts on.
    async fn failed(
        &self,
        secret: &SecretDescription,
        revocation: Revocation,
        error: Error,
        written: Result<bool>,
        report: &mut KeeperReport,
    ) {
        report.failed += 1;
        let error = error.to_string();
        match written {
            Ok(true) => {}
            Ok(false) => return,
            Err(err) => report.errors.push(format!("{}: {err}", secret.name)),
        }
        self.audit(
            secret,
            Action::Revoke,
            Outcome::Failed,
            &revocation.old_version_id,
            Some(error.clone()),
        )
        .await;
        if revocation.attempts >= self.settings.failures_before_alert {
            let alert = Alert::new(AlertKind::RevocationFailed, Severity::Critical, &secret.name)
                .subject(format!("keyrot: cannot revoke the old key of {}", secret.name))
                .text(format!(
                    "Revoking the old key {} of {} failed {} times: {error}. The key stays alive until this is fixed.",
                    revocation.hint, secret.name, revocation.attempts
                ))
                .details(json!({"event": "revocation_failed", "secret": secret.name, "version_id": revocation.old_version_id,
                    "key": revocation.hint, "attempts": revocation.attempts, "cause": error}));
            let dedupe = format!(
                "{}#{}",
                revocation.old_version_id,
                self.ports.clock.now().format("%Y-%m-%d")
            );
            self.alert_once(secret, &dedupe, alert, report).await;
        }
    }
}

/// Whether a key of `revocation` could serve `current`'s secret: the same OpenAI project, or the same
/// Anthropic admin key, or the same database's master secret, or any Stripe or GitHub secret, or any
/// credential of the same kind. A generic key is a random string no other secret would share.
fn same_scope(revocation: &Revocation, current: &ManagedSecret) -> bool {
    match &current.provider {
        crate::domain::ProviderSettings::OpenAi(openai) => {
            revocation.project_id.as_deref() == Some(openai.project_id.as_str())
        }
        crate::domain::ProviderSettings::Anthropic(anthropic) => {
            revocation.admin_key_secret.as_deref() == Some(anthropic.admin_key_secret.as_str())
        }
        crate::domain::ProviderSettings::Generic(_) => false,
        // One Stripe or GitHub key is often kept under two secrets (two services, one account).
        crate::domain::ProviderSettings::Stripe(_)
        | crate::domain::ProviderSettings::GitHub(_)
        | crate::domain::ProviderSettings::Credential(_) => {
            revocation.provider == current.provider.provider()
        }
        crate::domain::ProviderSettings::Postgres(postgres) => {
            revocation.admin_key_secret.as_deref() == Some(postgres.master_secret.as_str())
        }
    }
}
