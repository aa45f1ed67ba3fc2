//! Revoking the old keys whose grace period ended.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::domain::audit::{Outcome, Revocation, RevocationStatus};
use crate::domain::keys::KeyView;
use crate::domain::policy::{AWSCURRENT, AWSPENDING};
use crate::domain::targets::TargetSpec;
use crate::domain::{ManagedSecret, SecretDescription};
use crate::ports::{Alert, Alerts, AuditLog, Clock, KeyIssuer, SecretStore, Severity, Target};

use super::{GraceKeeper, KeeperReport, Managed};

/// Why a due revocation did not happen in this pass.
enum Hold {
    /// The key is in service again: its version is AWSCURRENT again (a rollback), or AWSCURRENT
    /// holds the same key. Never revoke it.
    InService(String),
    /// A target still holds the key: revoking it would break that service.
    HeldBy(String),
    /// Which targets there are cannot be told (the current value is unreadable), or the version still
    /// carries AWSPENDING: revoking now could break a service, so wait.
    TargetsUnknown(String),
    /// The provider saw the key used recently.
    InUse(DateTime<Utc>),
}

impl<S, I, T, A, N, C> GraceKeeper<'_, S, I, T, A, N, C>
where
    S: SecretStore,
    I: KeyIssuer,
    T: Target,
    A: AuditLog,
    N: Alerts,
    C: Clock,
{
    pub(super) async fn revoke_due(
        &self,
        now: DateTime<Utc>,
        managed: &BTreeMap<&str, &Managed>,
        report: &mut KeeperReport,
    ) {
        let due = match self.ports.audit.pending_revocations(now).await {
            Ok(due) => due,
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
            self.settle(now, &secret, current, revocation, report).await;
        }
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
        current: Option<&ManagedSecret>,
        mut revocation: Revocation,
        report: &mut KeeperReport,
    ) {
        let hold = match self.hold(now, secret, current, &revocation).await {
            Ok(hold) => hold,
            Err(err) => {
                return self
                    .failed(secret, revocation, err.to_string(), report)
                    .await;
            }
        };
        let read = revocation.as_read();
        match hold {
            Some(Hold::InService(why)) => {
                // The key is in service again; its revocation no longer stands.
                revocation.status = RevocationStatus::Cancelled;
                match self.ports.audit.update_revocation(&revocation, read).await {
                    Ok(true) => {}
                    // Settled meanwhile by someone else: nothing of ours to record.
                    Ok(false) => return,
                    Err(err) => report.errors.push(format!("{}: {err}", secret.name)),
                }
                let note = format!("{why}: revocation cancelled");
                self.audit(
                    secret,
                    "revoke",
                    Outcome::Skipped,
                    &revocation.old_version_id,
                    Some(note),
                )
                .await;
            }
            Some(Hold::HeldBy(target)) => {
                report.postponed += 1;
                let reason = format!("target {target} still holds the key");
                self.postpone(now, secret, &mut revocation, &reason, false, report)
                    .await;
            }
            Some(Hold::TargetsUnknown(why)) => {
                report.postponed += 1;
                let reason = format!("{why}, so whether a target still holds the key is unknown");
                self.postpone(now, secret, &mut revocation, &reason, false, report)
                    .await;
            }
            Some(Hold::InUse(at)) if revocation.postponements < self.settings.postpone_limit => {
                report.postponed += 1;
                let reason = format!(
                    "the key was used at {}",
                    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                );
                self.postpone(now, secret, &mut revocation, &reason, true, report)
                    .await;
            }
            Some(Hold::InUse(_)) | None => {
                let forced = matches!(hold, Some(Hold::InUse(_)));
                self.revoke(secret, revocation, forced, report).await;
            }
        }
    }

    async fn hold(
        &self,
        now: DateTime<Utc>,
        secret: &SecretDescription,
        current: Option<&ManagedSecret>,
        revocation: &Revocation,
    ) -> crate::error::Result<Option<Hold>> {
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
        if KeyView::of(&current.api_key).fingerprint == revocation.fingerprint {
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
                return Ok(Some(Hold::HeldBy(target.label())));
            }
        }
        if let Some(used) = self.ports.issuer.last_used(revocation).await?
            && now - used < self.settings.in_use_window
        {
            return Ok(Some(Hold::InUse(used)));
        }
        Ok(None)
    }

    async fn postpone(
        &self,
        now: DateTime<Utc>,
        secret: &SecretDescription,
        revocation: &mut Revocation,
        reason: &str,
        counted: bool,
        report: &mut KeeperReport,
    ) {
        revocation.due = now + self.settings.in_use_window;
        if counted {
            revocation.postponements += 1;
        }
        // A claim a crashed pass left is released: until it is due again, a rollback may cancel it.
        let read = revocation.as_read();
        *revocation = revocation.settled(RevocationStatus::Pending);
        match self.ports.audit.update_revocation(revocation, read).await {
            Ok(true) => {}
            // A rollback or another pass settled the record since it was read.
            Ok(false) => return,
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
            "revoke",
            Outcome::Skipped,
            &revocation.old_version_id,
            Some(note.clone()),
        )
        .await;
        let alert = Alert {
            event: "revocation_postponed",
            severity: Severity::Warning,
            secret_name: secret.name.clone(),
            subject: subject(&format!(
                "keyrot: revocation of the old key of {} postponed",
                secret.name
            )),
            text: format!(
                "The old key {} of {} was not revoked yet: {reason}. keyrot tries again at {}.",
                revocation.hint,
                secret.name,
                revocation
                    .due
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
            details: json!({"event": "revocation_postponed", "secret": secret.name, "version_id": revocation.old_version_id,
                "key": revocation.hint, "reason": reason, "retry_at": revocation.due.to_rfc3339(), "postponements": revocation.postponements}),
        };
        let dedupe = format!("{}#{}", revocation.old_version_id, revocation.postponements);
        self.alert_once(secret, &dedupe, alert, report).await;
    }

    async fn revoke(
        &self,
        secret: &SecretDescription,
        mut revocation: Revocation,
        forced: bool,
        report: &mut KeeperReport,
    ) {
        // Claimed first: from here on a rollback cannot cancel the record and bring the key back
        // while the provider revokes it; it finds the claim and undoes itself instead. A claim whose
        // lease ran out (its process died) is taken over.
        let read = revocation.as_read();
        revocation = revocation.claimed(self.ports.clock.now());
        match self.ports.audit.update_revocation(&revocation, read).await {
            Ok(true) => {}
            // Settled meanwhile (a rollback cancelled it): nothing of ours to do.
            Ok(false) => return,
            Err(err) => {
                return report.errors.push(format!("{}: {err}", secret.name));
            }
        }
        // A rollback may have moved AWSCURRENT to this version after the pass looked (before the
        // claim): asked again now, so that the key is never revoked under AWSCURRENT.
        if self.current_now(secret, &revocation.old_version_id).await != Some(false) {
            let claim = revocation.as_read();
            revocation = revocation.settled(RevocationStatus::Pending);
            if let Err(err) = self.ports.audit.update_revocation(&revocation, claim).await {
                report.errors.push(format!("{}: {err}", secret.name));
            }
            report.postponed += 1;
            return;
        }
        let status = match self.ports.issuer.revoke(&revocation).await {
            Ok(status) => status,
            Err(err) => {
                return self
                    .failed(secret, revocation, err.to_string(), report)
                    .await;
            }
        };
        let claim = revocation.as_read();
        revocation = revocation.settled(status);
        let settled = match self.ports.audit.update_revocation(&revocation, claim).await {
            Ok(settled) => settled,
            Err(err) => {
                report.errors.push(format!("{}: {err}", secret.name));
                true
            }
        };
        // Neither should happen while claims hold; if one does, a person must look now.
        let current = self.current_now(secret, &revocation.old_version_id).await == Some(true);
        if !settled || current {
            let text = format!(
                "{}: the old key {} (version {}) was revoked, but {}: check that AWSCURRENT works with \
                 `keyrot validate {}`, and rotate now with `keyrot rotate {} --emergency` if it does not",
                secret.name,
                revocation.hint,
                revocation.old_version_id,
                if current {
                    "that version is AWSCURRENT now"
                } else {
                    "its record was settled or taken over by another process meanwhile"
                },
                secret.name,
                secret.name
            );
            report.errors.push(text.clone());
            let alert = Alert {
                event: "rollback_failed",
                severity: Severity::Critical,
                secret_name: secret.name.clone(),
                subject: subject(&format!(
                    "keyrot: {} may have lost its current key",
                    secret.name
                )),
                text,
                details: json!({"event": "rollback_failed", "secret": secret.name,
                    "version_id": revocation.old_version_id, "key": revocation.hint, "current": current}),
            };
            self.alert_once(secret, &revocation.old_version_id, alert, report)
                .await;
        }
        report.revoked += 1;
        let note = match status {
            RevocationStatus::Manual => {
                Some("no provider id is known for this key: a person must revoke it".to_owned())
            }
            RevocationStatus::Retired => {
                Some("generic key retired (nothing to revoke at a provider)".to_owned())
            }
            _ if forced => Some(
                "revoked although recently used: the postponement limit was reached".to_owned(),
            ),
            _ => None,
        };
        self.audit(
            secret,
            "revoke",
            Outcome::Succeeded,
            &revocation.old_version_id,
            note.clone(),
        )
        .await;
        let (severity, text) = match status {
            RevocationStatus::Manual => (
                Severity::Warning,
                format!(
                    "The old key {} of {} must be revoked by a person: keyrot knows no provider id for it (it was made by hand). Revoke it in the provider's console.",
                    revocation.hint, secret.name
                ),
            ),
            _ if forced => (
                Severity::Critical,
                format!(
                    "The old key {} of {} was revoked although it was still in use after {} postponements: a service may still be using it.",
                    revocation.hint, secret.name, revocation.postponements
                ),
            ),
            _ => (
                Severity::Info,
                format!(
                    "The old key {} of {} was {} after its grace period.",
                    revocation.hint,
                    secret.name,
                    status.as_str()
                ),
            ),
        };
        let alert = Alert {
            event: "key_revoked",
            severity,
            secret_name: secret.name.clone(),
            subject: subject(&format!(
                "keyrot: old key of {} {}",
                secret.name,
                status.as_str()
            )),
            text,
            details: json!({"event": "key_revoked", "secret": secret.name, "version_id": revocation.old_version_id,
                "key": revocation.hint, "status": status.as_str(), "forced": forced, "provider": revocation.provider}),
        };
        self.alert_once(secret, &revocation.old_version_id, alert, report)
            .await;
    }

    async fn failed(
        &self,
        secret: &SecretDescription,
        mut revocation: Revocation,
        error: String,
        report: &mut KeeperReport,
    ) {
        report.failed += 1;
        revocation.attempts += 1;
        // Back to pending (a claim is released), for the next pass to try again.
        let read = revocation.as_read();
        revocation = revocation.settled(RevocationStatus::Pending);
        match self.ports.audit.update_revocation(&revocation, read).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(err) => report.errors.push(format!("{}: {err}", secret.name)),
        }
        self.audit(
            secret,
            "revoke",
            Outcome::Failed,
            &revocation.old_version_id,
            Some(error.clone()),
        )
        .await;
        if revocation.attempts >= self.settings.failures_before_alert {
            let alert = Alert {
                event: "revocation_failed",
                severity: Severity::Critical,
                secret_name: secret.name.clone(),
                subject: subject(&format!(
                    "keyrot: cannot revoke the old key of {}",
                    secret.name
                )),
                text: format!(
                    "Revoking the old key {} of {} failed {} times: {error}. The key stays alive until this is fixed.",
                    revocation.hint, secret.name, revocation.attempts
                ),
                details: json!({"event": "revocation_failed", "secret": secret.name, "version_id": revocation.old_version_id,
                    "key": revocation.hint, "attempts": revocation.attempts, "cause": error}),
            };
            let dedupe = format!(
                "{}#{}",
                revocation.old_version_id,
                self.ports.clock.now().format("%Y-%m-%d")
            );
            self.alert_once(secret, &dedupe, alert, report).await;
        }
    }
}

impl Revocation {
    fn secret_arn_or_name(&self) -> String {
        if self.secret_arn.is_empty() {
            self.secret_name.clone()
        } else {
            self.secret_arn.clone()
        }
    }
}

pub(super) fn subject(text: &str) -> String {
    text.chars().take(100).collect()
}
