//! What a rollback will do, decided from the labels and the revocation records alone: no I/O, so every
//! refusal is a plain unit test.

use crate::domain::SecretDescription;
use crate::domain::audit::{Revocation, RevocationStatus};
use crate::domain::keys::KeyView;
use crate::domain::policy::{AWSCURRENT, AWSPENDING, AWSPREVIOUS};
use crate::error::{Error, Result};

/// Where a rollback starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Start {
    /// AWSCURRENT is on the rotation's new version: move it back to AWSPREVIOUS first.
    Fresh,
    /// AWSCURRENT was already moved back by an earlier rollback that stopped before its end.
    Resume,
}

/// The two versions a rollback is about, as the labels name them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Labels {
    pub(super) previous: String,
    pub(super) current: String,
}

/// The version to go back to and its record; the abandoned version and its record.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Plan {
    pub(super) start: Start,
    pub(super) keep: String,
    pub(super) keep_record: Option<Revocation>,
    pub(super) abandon: String,
    pub(super) abandon_record: Option<Revocation>,
}

/// Whether the key of a version with this record is gone or going: claimed for revocation, revoked,
/// or left for a person to revoke. (A retired generic key still works.)
pub(super) fn is_lost(record: &Revocation) -> bool {
    record.revoke_sent_at.is_some()
        || matches!(
            record.status,
            RevocationStatus::Revoking | RevocationStatus::Revoked | RevocationStatus::Manual
        )
}

pub(super) fn refusal(
    secret: &SecretDescription,
    field: impl Into<String>,
    problem: String,
    fix: String,
) -> Error {
    Error::config(
        &secret.name,
        field,
        format!("cannot roll back: {problem}"),
        fix,
    )
}

/// The versions under AWSPREVIOUS and AWSCURRENT, unless a rotation is under way: it would move
/// AWSCURRENT again behind the rollback's back, and its finishSecret would schedule the key we go
/// back to for revocation.
pub(super) fn labels(secret: &SecretDescription) -> Result<Labels> {
    let name = &secret.name;
    if let Some(pending) = secret.version_with(AWSPENDING)
        && !secret.has_stage(pending, AWSCURRENT)
    {
        return Err(refusal(
            secret,
            AWSPENDING,
            format!("a rotation is in progress or stuck (AWSPENDING is on version {pending})"),
            format!(
                "let it finish and roll back afterwards, or clear it first with `keyrot repair {name}` \
                 (`keyrot status --secret {name}` shows which)"
            ),
        ));
    }
    let previous = secret.version_with(AWSPREVIOUS).ok_or_else(|| {
        refusal(
            secret,
            AWSPREVIOUS,
            "there is no AWSPREVIOUS version to go back to".into(),
            format!("to change the key, rotate it: `keyrot rotate {name}`"),
        )
    })?;
    let current = secret.version_with(AWSCURRENT).ok_or_else(|| {
        refusal(
            secret,
            AWSCURRENT,
            "no version is AWSCURRENT".into(),
            "label the version that holds the working key AWSCURRENT \
             (aws secretsmanager update-secret-version-stage)"
                .into(),
        )
    })?;
    Ok(Labels {
        previous: previous.to_owned(),
        current: current.to_owned(),
    })
}

/// Did an earlier rollback already move AWSCURRENT back? No rotation leaves a revocation record on the
/// version it makes current: finishSecret records the version *leaving* AWSCURRENT. So a record
/// (held by the rollback that moved it, pending, or cancelled by a rollback or by the grace keeper,
/// which cancels a record whose version is current again) on the AWSCURRENT version means AWSCURRENT was moved back to a key a rotation had
/// retired: by a rollback that stopped before its end (or by hand). Then the rollback goes on from the
/// target step, and the version now AWSPREVIOUS is the abandoned one; moving AWSCURRENT again would
/// put the abandoned key back in service. A claimed or revoked record there means the keeper took that
/// key meanwhile: the rollback goes back.
fn start(current_record: Option<&Revocation>) -> Start {
    match current_record.map(|r| r.status) {
        Some(
            RevocationStatus::Pending
            | RevocationStatus::Revoking
            | RevocationStatus::Restoring
            | RevocationStatus::Revoked
            | RevocationStatus::Manual
            | RevocationStatus::Cancelled,
        ) => Start::Resume,
        _ => Start::Fresh,
    }
}

/// The plan, or the refusal that says why there is nothing keyrot may go back to.
pub(super) fn plan(
    secret: &SecretDescription,
    labels: Labels,
    current_record: Option<Revocation>,
    previous_record: Option<Revocation>,
) -> Result<Plan> {
    let plan = match start(current_record.as_ref()) {
        // A fresh rollback's abandoned version is AWSCURRENT, which has no record.
        Start::Fresh => Plan {
            start: Start::Fresh,
            keep: labels.previous,
            keep_record: previous_record,
            abandon: labels.current,
            abandon_record: None,
        },
        Start::Resume => Plan {
            start: Start::Resume,
            keep: labels.current,
            keep_record: current_record,
            abandon: labels.previous,
            abandon_record: previous_record,
        },
    };
    plan.refusal(secret).map_or(Ok(plan), Err)
}

impl Plan {
    fn refusal(&self, secret: &SecretDescription) -> Option<Error> {
        let name = &secret.name;
        let (keep, rotate) = (&self.keep, format!("`keyrot rotate {name}`"));
        match (self.start, &self.keep_record, &self.abandon_record) {
            (Start::Fresh, None, _) => Some(refusal(
                secret,
                AWSPREVIOUS,
                format!(
                    "AWSPREVIOUS was not left by a keyrot rotation (no revocation record for version {keep})"
                ),
                format!(
                    "keyrot rolls back only its own rotations; move the labels by hand \
                     (aws secretsmanager update-secret-version-stage) or rotate: {rotate}"
                ),
            )),
            (Start::Fresh, Some(record), _) if record.revoke_sent_at.is_some() => Some(refusal(
                secret,
                AWSPREVIOUS,
                format!(
                    "the provider already accepted a revocation of the previous key {} (keyrot could not yet see it refused), so it may stop working at any moment",
                    record.hint
                ),
                format!(
                    "rotate to a new key instead: {rotate} (with --emergency if the current key is compromised)"
                ),
            )),
            (Start::Fresh, Some(record), _)
                if !matches!(
                    record.status,
                    RevocationStatus::Pending | RevocationStatus::Restoring
                ) =>
            {
                Some(refusal(
                    secret,
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
                        "rotate to a new key instead: {rotate} (with --emergency if the current key is compromised)"
                    ),
                ))
            }
            (Start::Resume, _, Some(record)) if record.status != RevocationStatus::Pending => {
                Some(refusal(
                    secret,
                    AWSCURRENT,
                    format!(
                        "AWSCURRENT is already back on version {keep} (an earlier rollback), and the abandoned key {} is {}",
                        record.hint,
                        record.status.as_str()
                    ),
                    format!("nothing is left to do; to change the key, rotate it: {rotate}"),
                ))
            }
            _ => None,
        }
    }

    /// A fresh rollback to the very key AWSCURRENT holds would change nothing.
    pub(super) fn check_keys(
        &self,
        secret: &SecretDescription,
        kept: &KeyView,
        bad: &KeyView,
    ) -> Result<()> {
        if self.start == Start::Fresh && kept.fingerprint == bad.fingerprint {
            return Err(refusal(
                secret,
                AWSPREVIOUS,
                format!(
                    "AWSPREVIOUS holds the same key ({}) as AWSCURRENT: there is nothing to go back to",
                    kept.redacted
                ),
                format!(
                    "to change the key, rotate it: `keyrot rotate {}`",
                    secret.name
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::domain::policy::Stage;

    fn secret(stages: &[(&str, Stage)]) -> SecretDescription {
        let mut versions: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (version, stage) in stages {
            versions
                .entry((*version).to_owned())
                .or_default()
                .push((*stage).into());
        }
        SecretDescription {
            name: "prod/x".into(),
            versions,
            ..SecretDescription::default()
        }
    }

    fn record(version: &str, status: RevocationStatus) -> Revocation {
        Revocation {
            secret_name: "prod/x".into(),
            secret_arn: String::new(),
            old_version_id: version.into(),
            provider: crate::domain::secret::Provider::Generic,
            project_id: None,
            key_id: None,
            api_key_id: None,
            admin_key_secret: None,
            fingerprint: "f".into(),
            hint: "sk_...0ld1".into(),
            due: Utc.timestamp_opt(0, 0).single().unwrap_or_default(),
            attempts: 0,
            postponements: 0,
            status,
            claimed_at: None,
            confirmed: None,
            revoke_sent_at: None,
        }
    }

    fn rotated() -> SecretDescription {
        secret(&[("v0", AWSPREVIOUS), ("t1", AWSCURRENT)])
    }

    fn plan_of(
        secret: &SecretDescription,
        current: Option<Revocation>,
        previous: Option<Revocation>,
    ) -> Result<Plan> {
        plan(secret, labels(secret)?, current, previous)
    }

    #[test]
    fn a_fresh_rollback_keeps_awsprevious_and_abandons_awscurrent() {
        let plan = plan_of(
            &rotated(),
            None,
            Some(record("v0", RevocationStatus::Pending)),
        )
        .expect("plan");
        assert_eq!(
            (plan.start, plan.keep.as_str(), plan.abandon.as_str()),
            (Start::Fresh, "v0", "t1")
        );
        assert_eq!(plan.abandon_record, None);
    }

    #[test]
    fn a_record_on_awscurrent_means_an_earlier_rollback_moved_it_back() {
        for status in [RevocationStatus::Pending, RevocationStatus::Cancelled] {
            let plan = plan_of(
                &rotated(),
                Some(record("t1", status)),
                Some(record("v0", RevocationStatus::Pending)),
            )
            .expect("plan");
            assert_eq!(
                (plan.start, plan.keep.as_str(), plan.abandon.as_str()),
                (Start::Resume, "t1", "v0"),
                "{status:?}"
            );
        }
    }

    #[test]
    fn refusals_name_the_label_and_say_why() {
        let pending = secret(&[("v0", AWSCURRENT), ("t2", AWSPENDING)]);
        let cases = [
            (plan_of(&pending, None, None), "a rotation is in progress"),
            (
                plan_of(&secret(&[("v0", AWSCURRENT)]), None, None),
                "no AWSPREVIOUS",
            ),
            (
                plan_of(&rotated(), None, None),
                "not left by a keyrot rotation",
            ),
            (
                plan_of(
                    &rotated(),
                    None,
                    Some(record("v0", RevocationStatus::Revoked)),
                ),
                "already revoked",
            ),
            (
                plan_of(
                    &rotated(),
                    None,
                    Some(record("v0", RevocationStatus::Revoking)),
                ),
                "being revoked right now",
            ),
            (
                plan_of(
                    &rotated(),
                    Some(record("t1", RevocationStatus::Cancelled)),
                    Some(record("v0", RevocationStatus::Revoked)),
                ),
                "already back on version t1",
            ),
        ];
        for (result, expected) in cases {
            let err = result.expect_err(expected).to_string();
            assert!(
                err.contains("cannot roll back") && err.contains(expected),
                "{err}"
            );
        }
    }

    #[test]
    fn a_fresh_rollback_to_the_same_key_is_refused() {
        let plan = plan_of(
            &rotated(),
            None,
            Some(record("v0", RevocationStatus::Pending)),
        )
        .expect("plan");
        let key = KeyView::of(&secrecy::SecretString::from("sk_live_SAMESAMESAME1"));
        let err = plan
            .check_keys(&rotated(), &key, &key)
            .expect_err("same key");
        assert!(err.to_string().contains("the same key"), "{err}");
    }
}
