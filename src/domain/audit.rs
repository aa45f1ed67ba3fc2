//! Audit events and revocation records: the evidence trail (design.md, "DynamoDB").

use chrono::{DateTime, Utc};

use crate::domain::event::Step;

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
    /// A step name, or `revoke`, `rollback`, `stage`, `alert`.
    pub action: String,
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
    /// The step this event records, when it records one.
    pub fn step(&self) -> Option<Step> {
        Step::parse(&self.action)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevocationStatus {
    Pending,
    /// Claimed by the process revoking it now (the grace keeper, or finishSecret with grace 0): a
    /// rollback can no longer cancel it. Still due, so a claim whose process died is taken up again.
    Revoking,
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
            RevocationStatus::Revoked => "revoked",
            RevocationStatus::Retired => "retired",
            RevocationStatus::Manual => "manual",
            RevocationStatus::Cancelled => "cancelled",
        }
    }

    /// Still owed: pending, or claimed by a revocation that may not have finished.
    pub fn is_owed(self) -> bool {
        matches!(self, RevocationStatus::Pending | RevocationStatus::Revoking)
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::Pending,
            Self::Revoking,
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
    pub provider: String,
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

    /// This record with `status` and no claim: a claim settled (revoked, cancelled) or released
    /// (pending again).
    pub fn settled(&self, status: RevocationStatus) -> Revocation {
        Revocation {
            status,
            claimed_at: None,
            ..self.clone()
        }
    }

    /// Whether a process may be revoking the key right now: claimed less than [`CLAIM_LEASE`] ago.
    pub fn claim_is_live(&self, now: DateTime<Utc>) -> bool {
        self.status == RevocationStatus::Revoking
            && self.claimed_at.is_some_and(|at| now - at < CLAIM_LEASE)
    }
}
