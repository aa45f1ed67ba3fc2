//! `keyrot status`: the managed secrets, one line each, with the state an operator acts on.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use clap::Args;
use serde::Serialize;

use crate::cli::context::{Deployment, Session, print_json, print_table};
use crate::cli::policy;
use crate::domain::SecretDescription;
use crate::domain::audit::Revocation;
use crate::domain::policy::{AWSCURRENT, AWSPENDING};
use crate::domain::targets::TargetSpec;
use crate::domain::tier::Tiers;
use crate::error::{Error, Result, Transience};
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
    /// An old key (its hint) must be revoked by a person: a revocation task is open.
    RevokeByHand(String),
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
            State::RevokeByHand(hint) => {
                format!("REVOKE BY HAND (old key {hint}; then `keyrot revoked`)")
            }
        }
    }

    /// An open revocation task outranks a grace period and a rotation coming up; a rotation under
    /// way or an overdue key still comes first.
    fn with_task(self, task: Option<&Revocation>) -> State {
        match (self, task) {
            (state @ (State::Stuck | State::Rotating | State::Overdue), _) | (state, None) => state,
            (_, Some(task)) => State::RevokeByHand(task.hint.clone()),
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

/// One secret's line of `keyrot status`, as `--json` prints it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusRow {
    pub secret: String,
    /// The secret's tier (its `keyrot:tier` tag, or the deployment's default).
    pub tier: Option<String>,
    /// What of its policy differs from the tier's (`every 45 days`).
    pub overrides: Vec<String>,
    pub provider: Option<&'static str>,
    pub targets: Vec<String>,
    /// The current key, redacted.
    pub key: Option<String>,
    pub last_rotated: Option<String>,
    pub next_rotation: Option<String>,
    pub age_days: Option<f64>,
    pub state: String,
}

impl StatusRow {
    fn of(managed: &Managed, state: &State, now: DateTime<Utc>, tiers: &Tiers) -> StatusRow {
        let Managed { secret, current } = managed;
        let (tier, overrides) = policy::tier_of(tiers, secret);
        let targets = current
            .as_ref()
            .and_then(|c| TargetSpec::parse_all(&secret.name, &c.targets).ok())
            .unwrap_or_default();
        StatusRow {
            secret: secret.name.clone(),
            tier: tier.map(|t| t.name.clone()),
            overrides,
            provider: current.as_ref().map(|c| c.provider.name()),
            targets: targets.iter().map(TargetSpec::label).collect(),
            key: current.as_ref().map(|c| c.key_view().redacted),
            last_rotated: secret.last_rotated.map(|t| t.to_rfc3339()),
            next_rotation: secret.next_rotation_due().map(|t| t.to_rfc3339()),
            age_days: secret.days_since_rotation(now).map(f64::floor),
            state: state.text(),
        }
    }

    /// The table's cells, in the order of [`HEADER`].
    fn cells(&self) -> Vec<String> {
        let text = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_owned());
        let date = |v: &Option<String>| {
            v.as_ref()
                .map_or_else(|| "-".to_owned(), |t| t.chars().take(10).collect())
        };
        let tier = match (&self.tier, self.overrides.is_empty()) {
            (Some(tier), true) => tier.clone(),
            (Some(tier), false) => format!("{tier} ({})", self.overrides.join(", ")),
            (None, _) => "-".to_owned(),
        };
        vec![
            self.secret.clone(),
            tier,
            self.provider.unwrap_or("-").to_owned(),
            self.targets.len().to_string(),
            text(&self.key),
            date(&self.last_rotated),
            date(&self.next_rotation),
            self.age_days
                .map_or_else(|| "-".to_owned(), |d| format!("{d:.0}d")),
            self.state.clone(),
        ]
    }
}

const HEADER: [&str; 9] = [
    "SECRET", "TIER", "PROVIDER", "TARGETS", "KEY", "ROTATED", "NEXT", "AGE", "STATE",
];

pub async fn run(args: StatusArgs, deployment: &Deployment) -> Result<()> {
    let tiers = policy::tiers()?;
    let session = Session::connect(deployment).await?;
    let ports = &session.ports;
    let now = ports.clock.now();
    let mut managed = session.keeper().managed_secrets().await?;
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
    // Grouped by tier, in the order the policy lists the tiers.
    let rank = |secret: &SecretDescription| {
        let (tier, _) = policy::tier_of(&tiers, secret);
        tier.and_then(|t| tiers.all().iter().position(|x| x.name == t.name))
            .unwrap_or(usize::MAX)
    };
    managed
        .sort_by(|a, b| (rank(&a.secret), &a.secret.name).cmp(&(rank(&b.secret), &b.secret.name)));
    // One query of the pending-revocation index serves every secret's grace period.
    let far = now + Duration::days(3650);
    let mut grace: BTreeMap<String, Revocation> = BTreeMap::new();
    let pending = ports.audit.pending_revocations(far).await?;
    for revocation in pending.reporting(|problem| eprintln!("warning: {problem}")) {
        grace.insert(revocation.secret_name.clone(), revocation);
    }
    let mut tasks: BTreeMap<String, Revocation> = BTreeMap::new();
    let open = ports.audit.revocation_tasks().await?;
    for task in open.reporting(|problem| eprintln!("warning: {problem}")) {
        tasks.insert(task.secret_name.clone(), task);
    }
    let mut rows = Vec::new();
    for item in &managed {
        let secret = &item.secret;
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
        let grace_until = grace.get(&secret.name).map(|r| r.due);
        let state =
            state_of(secret, pending_since, grace_until, now).with_task(tasks.get(&secret.name));
        rows.push(StatusRow::of(item, &state, now, &tiers));
    }
    if args.json {
        let rows = serde_json::to_value(&rows)
            .map_err(|err| Error::external("stdout", "serialise", err, Transience::Final))?;
        return print_json(&rows);
    }
    let table: Vec<Vec<String>> = rows.iter().map(StatusRow::cells).collect();
    print_table(&HEADER, &table);
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
