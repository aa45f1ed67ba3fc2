//! `keyrot status`: the managed secrets, one line each, with the state an operator acts on.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use clap::Args;
use serde_json::json;

use crate::cli::context::{Operator, print_json, print_table};
use crate::domain::SecretDescription;
use crate::domain::audit::Revocation;
use crate::domain::keys::KeyView;
use crate::domain::policy::{AWSCURRENT, AWSPENDING};
use crate::domain::targets::TargetSpec;
use crate::error::{Error, Result};
use crate::keeper::Managed;
use crate::ports::{AuditLog, Clock, SecretStore};

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Only this secret.
    #[arg(long)]
    secret: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// What an operator should know first about a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    Ok,
    /// A scheduled rotation is within `keyrot:alert-days`.
    Due,
    Overdue,
    Rotating,
    /// AWSPENDING on a non-current version for over an hour.
    Stuck,
    /// The old key is alive until the given time.
    Grace(DateTime<Utc>),
}

impl State {
    pub fn text(&self) -> String {
        match self {
            State::Ok => "OK".into(),
            State::Due => "DUE".into(),
            State::Overdue => "OVERDUE".into(),
            State::Rotating => "ROTATING".into(),
            State::Stuck => "STUCK".into(),
            State::Grace(until) => format!(
                "GRACE (old key alive until {})",
                until.format("%Y-%m-%d %H:%M UTC")
            ),
        }
    }
}

/// The most urgent state first: a stuck or running rotation, then an overdue key, then a grace period,
/// then a rotation coming up.
pub fn state_of(
    secret: &SecretDescription,
    pending_since: Option<DateTime<Utc>>,
    grace_until: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> State {
    let policy = secret.policy(24.0).ok();
    if secret
        .version_with(AWSPENDING)
        .is_some_and(|v| !secret.has_stage(v, AWSCURRENT))
    {
        return match pending_since {
            Some(since) if now - since > Duration::hours(1) => State::Stuck,
            _ => State::Rotating,
        };
    }
    let age = secret.days_since_rotation(now).unwrap_or(0.0);
    if policy.as_ref().is_some_and(|p| age > p.max_age_days) {
        return State::Overdue;
    }
    if let Some(until) = grace_until.filter(|until| *until > now) {
        return State::Grace(until);
    }
    let alert_days = policy.map_or(7.0, |p| p.alert_days);
    match secret.next_rotation_due() {
        Some(next) if next - now <= Duration::milliseconds((alert_days * 86_400_000.0) as i64) => {
            State::Due
        }
        _ => State::Ok,
    }
}

pub async fn run(args: StatusArgs, stack: &str) -> Result<()> {
    let operator = Operator::connect(stack).await?;
    let ports = &operator.ports;
    let now = ports.clock.now();
    let keeper = operator.keeper();
    let mut managed = keeper.managed_secrets().await?;
    if let Some(name) = &args.secret {
        managed.retain(|m| &m.secret.name == name || &m.secret.arn == name);
        if managed.is_empty() {
            return Err(Error::config(
                name,
                "--secret",
                "is not a secret keyrot manages (or does not exist)",
                "check the name with `aws secretsmanager list-secrets`, or onboard it with `keyrot onboard`",
            ));
        }
    }
    managed.sort_by(|a, b| a.secret.name.cmp(&b.secret.name));
    // One query of the pending-revocation index serves every secret's grace period.
    let far = now + Duration::days(3650);
    let mut grace: BTreeMap<String, Revocation> = BTreeMap::new();
    for revocation in ports.audit.pending_revocations(far).await? {
        grace.insert(revocation.secret_name.clone(), revocation);
    }
    let mut rows = Vec::new();
    for Managed { secret, current } in &managed {
        let pending_since = match secret
            .version_with(AWSPENDING)
            .filter(|v| !secret.has_stage(v, AWSCURRENT))
        {
            Some(version) => {
                ports
                    .store
                    .version_created(&secret.arn_or_name(), version)
                    .await?
            }
            None => None,
        };
        let state = state_of(
            secret,
            pending_since,
            grace.get(&secret.name).map(|r| r.due),
            now,
        );
        let targets: Vec<String> = current
            .as_ref()
            .and_then(|c| TargetSpec::parse_all(&secret.name, &c.targets).ok())
            .unwrap_or_default()
            .iter()
            .map(TargetSpec::label)
            .collect();
        rows.push(json!({
            "secret": secret.name,
            "provider": current.as_ref().map(|c| c.provider.name()),
            "targets": targets,
            "key": current.as_ref().map(|c| KeyView::of(&c.api_key).redacted),
            "last_rotated": secret.last_rotated.map(|t| t.to_rfc3339()),
            "next_rotation": secret.next_rotation_due().map(|t| t.to_rfc3339()),
            "age_days": secret.days_since_rotation(now).map(|d| d.floor()),
            "state": state.text(),
        }));
    }
    if args.json {
        return print_json(&serde_json::Value::Array(rows));
    }
    let text = |v: &serde_json::Value| {
        v.as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| "-".to_owned())
    };
    let date = |v: &serde_json::Value| {
        v.as_str()
            .map(|t| t.chars().take(10).collect())
            .unwrap_or_else(|| "-".to_owned())
    };
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                text(&r["secret"]),
                text(&r["provider"]),
                r["targets"].as_array().map_or(0, Vec::len).to_string(),
                text(&r["key"]),
                date(&r["last_rotated"]),
                date(&r["next_rotation"]),
                r["age_days"]
                    .as_f64()
                    .map_or_else(|| "-".to_owned(), |d| format!("{d:.0}d")),
                text(&r["state"]),
            ]
        })
        .collect();
    print_table(
        &[
            "SECRET", "PROVIDER", "TARGETS", "KEY", "ROTATED", "NEXT", "AGE", "STATE",
        ],
        &table,
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_urgent_state_wins() {
        let now = Utc::now();
        let mut secret = SecretDescription {
            name: "s".into(),
            rotation_enabled: true,
            rotate_every_days: Some(30),
            last_rotated: Some(now - Duration::days(10)),
            versions: [("v1".to_owned(), vec!["AWSCURRENT".to_owned()])].into(),
            ..SecretDescription::default()
        };
        assert_eq!(state_of(&secret, None, None, now), State::Ok);
        assert!(matches!(
            state_of(&secret, None, Some(now + Duration::hours(3)), now),
            State::Grace(_)
        ));
        secret.last_rotated = Some(now - Duration::days(25));
        assert_eq!(state_of(&secret, None, None, now), State::Due);
        secret.last_rotated = Some(now - Duration::days(91));
        assert_eq!(state_of(&secret, None, None, now), State::Overdue);
        secret
            .versions
            .insert("v2".into(), vec!["AWSPENDING".into()]);
        assert_eq!(
            state_of(&secret, Some(now - Duration::minutes(5)), None, now),
            State::Rotating
        );
        assert_eq!(
            state_of(&secret, Some(now - Duration::hours(2)), None, now),
            State::Stuck
        );
    }
}
