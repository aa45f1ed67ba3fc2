//! Audit events and revocation records: the evidence trail (docs/tables.md).

use std::fmt;

use chrono::{DateTime, Utc};

use crate::domain::event::Step;
use crate::domain::keys::KeyView;
use crate::domain::policy::Trigger;
use crate::domain::secret::Provider;
use crate::error::Error;

/// What an audit event records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// One of the four steps, as Secrets Manager invoked it.
    Step(Step),
    Revoke,
    Rollback,
    Stage,
    Repair,
    Alert,
    /// `keyrot rotate` started a rotation.
    Rotate,
    /// `keyrot onboard` wrote a secret's value and rotation settings.
    Onboard,
    /// An invocation of the rotator refused before any step ran (its payload could not be read).
    Invoke,
    /// `keyrot confirm`: a person said the services keyrot does not redeploy run the current key.
    Confirm,
    /// `keyrot policy set`: a secret's tier, schedule or grace changed.
    Policy,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Step(step) => step.as_str(),
            Action::Revoke => "revoke",
            Action::Rollback => "rollback",
            Action::Stage => "stage",
            Action::Repair => "repair",
            Action::Alert => "alert",
            Action::Rotate => "rotate",
            Action::Onboard => "onboard",
            Action::Invoke => "invoke",
            Action::Confirm => "confirm",
            Action::Policy => "policy",
        }
    }

    pub fn parse(text: &str) -> Option<Action> {
        Step::parse(text).map(Action::Step).or_else(|| {
            [
                Action::Revoke,
                Action::Rollback,
                Action::Stage,
                Action::Repair,
                Action::Alert,
                Action::Rotate,
                Action::Onboard,
                Action::Invoke,
                Action::Confirm,
                Action::Policy,
            ]
            .into_iter()
            .find(|action| action.as_str() == text)
        })
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Tests and filters compare actions with their stored names.
impl PartialEq<&str> for Action {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    Failed,
    Skipped,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::Failed => "failed",
            Outcome::Skipped => "skipped",
        }
    }
}

/// One audit item. Keys appear only as their last four characters.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEvent {
    pub at: DateTime<Utc>,
    pub secret_arn: String,
    pub secret_name: String,
    pub action: Action,
    pub outcome: Outcome,
    /// The rotation's token (the pending version id), or the version acted on.
    pub version_id: String,
    pub provider: String,
    pub old_key_hint: Option<String>,
    pub new_key_hint: Option<String>,
    pub trigger: String,
    pub actor: String,
    pub targets: Vec<String>,
    pub duration_ms: u64,
    pub error: Option<String>,
    /// For a failure: whether it was transient (Secrets Manager retries the step, and it may still
    /// succeed) rather than final.
    pub retryable: bool,
}

impl AuditEvent {
    /// An event of `action` on version `version_id` of a secret, at `at`: the rest is empty until the
    /// builder methods below fill it.
    pub fn new(
        at: DateTime<Utc>,
        (secret_arn, secret_name): (&str, &str),
        action: Action,
        outcome: Outcome,
        version_id: &str,
    ) -> AuditEvent {
        AuditEvent {
            at,
            secret_arn: secret_arn.to_owned(),
            secret_name: secret_name.to_owned(),
            action,
            outcome,
            version_id: version_id.to_owned(),
            provider: String::new(),
            old_key_hint: None,
            new_key_hint: None,
            trigger: String::new(),
            actor: String::new(),
            targets: Vec::new(),
            duration_ms: 0,
            error: None,
            retryable: false,
        }
    }

    pub fn by(mut self, actor: &str) -> Self {
        actor.clone_into(&mut self.actor);
        self
    }

    pub fn provider(mut self, provider: &str) -> Self {
        provider.clone_into(&mut self.provider);
        self
    }

    /// Why the rotation ran; `None` leaves it empty (not known yet).
    pub fn triggered(mut self, trigger: Option<Trigger>) -> Self {
        self.trigger = trigger.map(Trigger::as_str).unwrap_or_default().to_owned();
        self
    }

    /// The keys involved, as their last four characters.
    pub fn keys(mut self, old: Option<&KeyView>, new: Option<&KeyView>) -> Self {
        self.old_key_hint = old.map(|k| k.last4.clone());
        self.new_key_hint = new.map(|k| k.last4.clone());
        self
    }

    pub fn targets(mut self, targets: Vec<String>) -> Self {
        self.targets = targets;
        self
    }

    /// The time from `started` to `now`.
    pub fn took(mut self, started: DateTime<Utc>, now: DateTime<Utc>) -> Self {
        self.duration_ms = (now - started).num_milliseconds().max(0) as u64;
        self
    }

    /// A note, or the text of what went wrong.
    pub fn error(mut self, error: Option<String>) -> Self {
        self.error = error;
        self
    }

    /// The error that failed the action, and whether a retry may still succeed.
    pub fn failure(mut self, error: &Error) -> Self {
        self.outcome = Outcome::Failed;
        self.error = Some(error.to_string());
        self.retryable = error.is_retryable();
        self
    }

    /// The step this event records, when it records one.
    pub fn step(&self) -> Option<Step> {
        match self.action {
            Action::Step(step) => Some(step),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevocationStatus {
    Pending,
    /// Claimed by the process revoking it now (the grace keeper, or finishSecret with grace 0): a
    /// rollback can no longer cancel it. Still due, so a claim whose process died is taken up again.
    Revoking,
    /// Held by a rollback that is putting this key back in service: nobody may claim it for
    /// revocation. Still due, so a hold whose rollback died is taken up once its lease ends.
    Restoring,
    Revoked,
    /// The provider offers no way to revoke this key (generic keys): it was retired, not revoked.
    Retired,
    /// Nobody recorded the provider's id of this key (one a person made): a person must revoke it.
    Manual,
    Cancelled,
}

impl RevocationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RevocationStatus::Pending => "pending",
            RevocationStatus::Revoking => "revoking",
            RevocationStatus::Restoring => "restoring",
            RevocationStatus::Revoked => "revoked",
            RevocationStatus::Retired => "retired",
            RevocationStatus::Manual => "manual",
            RevocationStatus::Cancelled => "cancelled",
        }
    }

    /// Still owed: pending, or claimed (for revocation, or by a rollback) by a process that may not
    /// have finished.
    pub fn is_owed(self) -> bool {
        matches!(
            self,
            RevocationStatus::Pending | RevocationStatus::Revoking | RevocationStatus::Restoring
        )
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::Pending,
            Self::Revoking,
            Self::Restoring,
            Self::Revoked,
            Self::Retired,
            Self::Manual,
            Self::Cancelled,
        ]
        .into_iter()
        .find(|status| status.as_str() == text)
    }
}

/// The old key of a finished rotation, to be revoked when its grace ends. Never holds the key itself:
/// only what the provider needs to find and revoke it, and what people need to recognise it.
#[derive(Debug, Clone, PartialEq)]
pub struct Revocation {
    pub secret_name: String,
    pub secret_arn: String,
    /// The version that held the old key.
    pub old_version_id: String,
    pub provider: Provider,
    pub project_id: Option<String>,
    pub key_id: Option<String>,
    pub api_key_id: Option<String>,
    pub admin_key_secret: Option<String>,
    pub fingerprint: String,
    pub hint: String,
    pub due: DateTime<Utc>,
    /// Failed revocation attempts so far.
    pub attempts: u32,
    /// Times the revocation was put off because the key was still in use.
    pub postponements: u32,
    pub status: RevocationStatus,
    /// When the process revoking it claimed it (status `revoking`).
    pub claimed_at: Option<DateTime<Utc>>,
    /// A person's word (`keyrot confirm`) that every target keyrot does not redeploy runs the new
    /// key, so they no longer hold this one's revocation.
    pub confirmed: Option<Confirmation>,
    /// When the provider first accepted a revocation of the key that keyrot could not see take
    /// (the key still answered, or the check failed). The key may die at any moment: no rollback may
    /// go back to it, and its last use may be keyrot's own check.
    pub revoke_sent_at: Option<DateTime<Utc>>,
}

/// Who confirmed, and when, that the services keyrot does not redeploy run the new key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirmation {
    pub at: DateTime<Utc>,
    pub by: String,
}

/// What a provider needs to find and revoke one key, and nothing else: never the key itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyHandle {
    pub secret_name: String,
    /// The version that held the key (or `orphan:<id>` for a key no version knows), for messages.
    pub old_version_id: String,
    pub provider: Provider,
    pub project_id: Option<String>,
    pub key_id: Option<String>,
    pub api_key_id: Option<String>,
    pub admin_key_secret: Option<String>,
    /// The key's fingerprint, where a version held it (an orphan's key was never read).
    pub fingerprint: Option<String>,
}

/// How long a claim is its claimant's: longer than any keyrot Lambda runs (the keeper's timeout is 15
/// minutes), so an older claim is one whose process died, and another may take it up.
pub const CLAIM_LEASE: chrono::TimeDelta = chrono::TimeDelta::minutes(20);

/// What a conditional update of a revocation record expects to find in it: the status, and the claim
/// (none, or the time of the one read), so that of two processes taking over the same stale claim only
/// the first succeeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expected {
    pub status: RevocationStatus,
    pub claimed_at: Option<DateTime<Utc>>,
}

impl From<RevocationStatus> for Expected {
    /// That status, unclaimed.
    fn from(status: RevocationStatus) -> Self {
        Expected {
            status,
            claimed_at: None,
        }
    }
}

impl Revocation {
    /// What the provider needs to revoke this record's key.
    pub fn handle(&self) -> KeyHandle {
        KeyHandle {
            secret_name: self.secret_name.clone(),
            old_version_id: self.old_version_id.clone(),
            provider: self.provider,
            project_id: self.project_id.clone(),
            key_id: self.key_id.clone(),
            api_key_id: self.api_key_id.clone(),
            admin_key_secret: self.admin_key_secret.clone(),
            fingerprint: Some(self.fingerprint.clone()),
        }
    }

    /// The id to call Secrets Manager with: the ARN when known.
    pub fn secret_arn_or_name(&self) -> String {
        if self.secret_arn.is_empty() {
            self.secret_name.clone()
        } else {
            self.secret_arn.clone()
        }
    }

    /// This record after a failed attempt: one more attempt counted, pending again (a claim released).
    pub fn failed_attempt(&self) -> Revocation {
        Revocation {
            attempts: self.attempts + 1,
            ..self.settled(RevocationStatus::Pending)
        }
    }

    /// What this record, as read, holds: for an update conditional on nobody having changed it.
    pub fn as_read(&self) -> Expected {
        Expected {
            status: self.status,
            claimed_at: self.claimed_at,
        }
    }

    /// This record claimed for revoking at `now`.
    pub fn claimed(&self, now: DateTime<Utc>) -> Revocation {
        Revocation {
            status: RevocationStatus::Revoking,
            claimed_at: Some(now),
            ..self.clone()
        }
    }

    /// This record after a failed attempt whose revocation the provider accepted at `now`.
    pub fn sent_but_unsettled(&self, now: DateTime<Utc>) -> Revocation {
        Revocation {
            revoke_sent_at: self.revoke_sent_at.or(Some(now)),
            ..self.failed_attempt()
        }
    }

    /// This record held at `now` by a rollback that puts its key back in service.
    pub fn held_for_rollback(&self, now: DateTime<Utc>) -> Revocation {
        Revocation {
            status: RevocationStatus::Restoring,
            claimed_at: Some(now),
            ..self.clone()
        }
    }

    /// This record with `status` and no claim: a claim settled (revoked, cancelled) or released
    /// (pending again).
    pub fn settled(&self, status: RevocationStatus) -> Revocation {
        Revocation {
            status,
            claimed_at: None,
            ..self.clone()
        }
    }

    /// Whether a process may be acting on the key right now (revoking it, or a rollback restoring
    /// it): claimed less than [`CLAIM_LEASE`] ago.
    pub fn claim_is_live(&self, now: DateTime<Utc>) -> bool {
        matches!(
            self.status,
            RevocationStatus::Revoking | RevocationStatus::Restoring
        ) && self.claimed_at.is_some_and(|at| now - at < CLAIM_LEASE)
    }
}
