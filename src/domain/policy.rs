//! What DescribeSecret tells about a secret, and the per-secret policy its `keyrot:` tags set.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Duration, Utc};

use crate::error::{Error, Result};

/// A staging label keyrot reads or moves: Secrets Manager's three, and keyrot's own for a staged key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    Current,
    Pending,
    Previous,
    /// keyrot's own label for a key a person staged by hand (Anthropic has no API that creates keys).
    Staged,
}

impl Stage {
    pub const fn as_str(self) -> &'static str {
        match self {
            Stage::Current => "AWSCURRENT",
            Stage::Pending => "AWSPENDING",
            Stage::Previous => "AWSPREVIOUS",
            Stage::Staged => "KEYROT_STAGED",
        }
    }

    /// The stage a label names, if it is one of keyrot's.
    pub fn parse(label: &str) -> Option<Stage> {
        [
            Stage::Current,
            Stage::Pending,
            Stage::Previous,
            Stage::Staged,
        ]
        .into_iter()
        .find(|stage| stage.as_str() == label)
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<Stage> for String {
    fn from(stage: Stage) -> String {
        stage.as_str().to_owned()
    }
}

/// Labels come from Secrets Manager as strings; they compare with the stages they name.
impl PartialEq<Stage> for String {
    fn eq(&self, stage: &Stage) -> bool {
        self == stage.as_str()
    }
}

impl PartialEq<Stage> for &String {
    fn eq(&self, stage: &Stage) -> bool {
        *self == stage.as_str()
    }
}

impl PartialEq<Stage> for str {
    fn eq(&self, stage: &Stage) -> bool {
        self == stage.as_str()
    }
}

impl PartialEq<Stage> for &str {
    fn eq(&self, stage: &Stage) -> bool {
        *self == stage.as_str()
    }
}

pub const AWSCURRENT: Stage = Stage::Current;
pub const AWSPENDING: Stage = Stage::Pending;
pub const AWSPREVIOUS: Stage = Stage::Previous;
pub const KEYROT_STAGED: Stage = Stage::Staged;

pub const TAG_GRACE_HOURS: &str = "keyrot:grace-hours";
pub const TAG_MAX_AGE_DAYS: &str = "keyrot:max-age-days";
pub const TAG_ALERT_DAYS: &str = "keyrot:alert-days";
pub const TAG_NEXT_GRACE_HOURS: &str = "keyrot:next-grace-hours";
pub const TAG_TRIGGER: &str = "keyrot:trigger";
/// The rotation (its token) the other one-shot tags are for. `keyrot rotate` sets it to the token it
/// then gives RotateSecret, so that a rotation Secrets Manager starts in between (the schedule) is not
/// taken for the one the operator asked for. Absent, the tags are for the next rotation, whichever.
pub const TAG_ONE_SHOT_FOR: &str = "keyrot:one-shot-for";
/// Tags that apply to one rotation only; finishSecret removes them.
pub const ONE_SHOT_TAGS: [&str; 3] = [TAG_NEXT_GRACE_HOURS, TAG_TRIGGER, TAG_ONE_SHOT_FOR];

/// The answer of DescribeSecret, in the terms the rotation needs.
#[derive(Debug, Clone, Default)]
pub struct SecretDescription {
    pub arn: String,
    pub name: String,
    pub rotation_enabled: bool,
    pub rotation_lambda_arn: Option<String>,
    pub rotate_every_days: Option<i64>,
    pub schedule_expression: Option<String>,
    pub created: Option<DateTime<Utc>>,
    pub last_rotated: Option<DateTime<Utc>>,
    pub next_rotation: Option<DateTime<Utc>>,
    /// Version id to its staging labels.
    pub versions: BTreeMap<String, Vec<String>>,
    pub tags: BTreeMap<String, String>,
}

impl SecretDescription {
    /// The version that carries `stage`, if any (a label is on at most one version).
    pub fn version_with(&self, stage: Stage) -> Option<&str> {
        self.versions
            .iter()
            .find(|(_, stages)| stages.iter().any(|s| s == stage))
            .map(|(id, _)| id.as_str())
    }

    pub fn has_stage(&self, version: &str, stage: Stage) -> bool {
        self.versions
            .get(version)
            .is_some_and(|stages| stages.iter().any(|s| s == stage))
    }

    /// The id to call Secrets Manager with: the ARN when known.
    pub fn arn_or_name(&self) -> String {
        if self.arn.is_empty() {
            self.name.clone()
        } else {
            self.arn.clone()
        }
    }

    /// Days since the key last changed (fractional).
    pub fn days_since_rotation(&self, now: DateTime<Utc>) -> Option<f64> {
        self.last_rotated
            .or(self.created)
            .map(|since| (now - since).num_seconds() as f64 / 86_400.0)
    }

    /// When the schedule next rotates the secret: what Secrets Manager says, else the last rotation (or
    /// creation) plus the interval; `None` when rotation is off.
    pub fn next_rotation_due(&self) -> Option<DateTime<Utc>> {
        if !self.rotation_enabled {
            return None;
        }
        self.next_rotation.or_else(|| {
            Some(self.last_rotated.or(self.created)? + Duration::days(self.rotate_every_days?))
        })
    }

    /// The secret's `keyrot:` policy; a malformed tag is an error that names the tag and the fix.
    pub fn policy(&self, default_grace_hours: f64) -> Result<Policy> {
        let number = |tag: &str, unit: &str| -> Result<Option<f64>> {
            let Some(raw) = self.tags.get(tag) else {
                return Ok(None);
            };
            match raw.trim().parse::<f64>() {
                Ok(value) if (0.0..=100_000.0).contains(&value) => Ok(Some(value)),
                _ => Err(Error::config(
                    &self.name,
                    format!("tag {tag}"),
                    format!("{:?} is not a number of {unit} (0 or more)", truncate(raw)),
                    format!(
                        "aws secretsmanager tag-resource --secret-id {} --tags Key={tag},Value=<{unit}>",
                        self.name
                    ),
                )),
            }
        };
        let trigger = match self.tags.get(TAG_TRIGGER).map(|t| t.trim()) {
            None => None,
            Some("manual") => Some(Trigger::Manual),
            Some("emergency") => Some(Trigger::Emergency),
            Some(other) => {
                return Err(Error::config(
                    &self.name,
                    format!("tag {TAG_TRIGGER}"),
                    format!("{:?} is neither manual nor emergency", truncate(other)),
                    format!(
                        "aws secretsmanager untag-resource --secret-id {} --tag-keys {TAG_TRIGGER}",
                        self.name
                    ),
                ));
            }
        };
        Ok(Policy {
            grace_hours: number(TAG_GRACE_HOURS, "hours")?.unwrap_or(default_grace_hours),
            max_age_days: number(TAG_MAX_AGE_DAYS, "days")?.unwrap_or(90.0),
            alert_days: number(TAG_ALERT_DAYS, "days")?.unwrap_or(7.0),
            next_grace_hours: number(TAG_NEXT_GRACE_HOURS, "hours")?,
            trigger,
        })
    }

    /// Whether the one-shot tags are this rotation's: they name no rotation, or the one of `token`.
    pub fn one_shot_tags_are_for(&self, token: &str) -> bool {
        self.tags
            .get(TAG_ONE_SHOT_FOR)
            .is_none_or(|bound| bound.trim() == token)
    }

    /// The policy of the rotation of `token`: [`Self::policy`], without the one-shot tags when they are
    /// another rotation's.
    pub fn policy_of_rotation(&self, default_grace_hours: f64, token: &str) -> Result<Policy> {
        let policy = self.policy(default_grace_hours)?;
        if self.one_shot_tags_are_for(token) {
            return Ok(policy);
        }
        Ok(Policy {
            next_grace_hours: None,
            trigger: None,
            ..policy
        })
    }

    /// Who asked for the rotation under way: the one-shot tag, else the schedule if it was due.
    pub fn trigger(&self, policy: &Policy, now: DateTime<Utc>) -> Trigger {
        if let Some(trigger) = policy.trigger {
            return trigger;
        }
        let since = self.last_rotated.or(self.created);
        match (self.rotate_every_days, since) {
            // Secrets Manager starts a scheduled rotation within its window, which may open up to a day early.
            (Some(days), Some(since))
                if since + Duration::days(days) <= now + Duration::hours(24) =>
            {
                Trigger::Scheduled
            }
            (None, _) if self.schedule_expression.is_some() => Trigger::Scheduled,
            _ => Trigger::OnDemand,
        }
    }
}

fn truncate(text: &str) -> String {
    text.chars().take(32).collect()
}

/// The policy of one secret, from its tags and the deployment's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub grace_hours: f64,
    pub max_age_days: f64,
    pub alert_days: f64,
    pub next_grace_hours: Option<f64>,
    pub trigger: Option<Trigger>,
}

impl Policy {
    /// The secret's own grace, without any one-shot override.
    pub fn grace(&self) -> Duration {
        Duration::milliseconds((self.grace_hours * 3_600_000.0).round() as i64)
    }

    /// The grace of the rotation under way: the one-shot override wins over the permanent setting.
    pub fn grace_for_this_rotation(&self) -> Duration {
        let hours = self.next_grace_hours.unwrap_or(self.grace_hours);
        Duration::milliseconds((hours * 3_600_000.0).round() as i64)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Scheduled,
    OnDemand,
    Manual,
    Emergency,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Scheduled => "scheduled",
            Trigger::OnDemand => "on-demand",
            Trigger::Manual => "manual",
            Trigger::Emergency => "emergency",
        }
    }
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn described(tags: &[(&str, &str)]) -> SecretDescription {
        SecretDescription {
            name: "prod/openai".into(),
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..SecretDescription::default()
        }
    }

    #[test]
    fn tags_set_the_policy_and_the_one_shot_grace_wins() {
        let policy = described(&[
            (TAG_GRACE_HOURS, "48"),
            (TAG_NEXT_GRACE_HOURS, "0.01"),
            (TAG_TRIGGER, "emergency"),
        ])
        .policy(24.0)
        .expect("valid tags");
        assert_eq!(policy.grace_hours, 48.0);
        assert_eq!(policy.grace_for_this_rotation(), Duration::seconds(36));
        assert_eq!(policy.trigger, Some(Trigger::Emergency));
        let defaults = described(&[]).policy(24.0).expect("no tags");
        assert_eq!(defaults.grace_for_this_rotation(), Duration::hours(24));
        assert_eq!((defaults.max_age_days, defaults.alert_days), (90.0, 7.0));
    }

    #[test]
    fn malformed_tags_name_the_tag_and_the_command_that_fixes_it() {
        for (tag, value) in [
            (TAG_GRACE_HOURS, "a day"),
            (TAG_MAX_AGE_DAYS, "-3"),
            (TAG_ALERT_DAYS, "NaN"),
            (TAG_TRIGGER, "panic"),
        ] {
            let err = described(&[(tag, value)])
                .policy(24.0)
                .expect_err("refused");
            let text = err.to_string();
            assert!(
                text.contains(tag)
                    && text.contains("prod/openai")
                    && text.contains("aws secretsmanager"),
                "{text}"
            );
        }
    }

    #[test]
    fn a_rotation_is_scheduled_only_when_the_schedule_made_it_due() {
        let now = Utc::now();
        let mut secret = described(&[]);
        secret.rotate_every_days = Some(30);
        secret.last_rotated = Some(now - Duration::days(30));
        let policy = secret.policy(24.0).expect("policy");
        assert_eq!(secret.trigger(&policy, now), Trigger::Scheduled);
        secret.last_rotated = Some(now - Duration::days(3));
        assert_eq!(secret.trigger(&policy, now), Trigger::OnDemand);
    }
}
