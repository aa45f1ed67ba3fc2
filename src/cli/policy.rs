//! A secret's rotation policy, as `keyrot onboard` and `keyrot policy set` write it: its tier (the tag
//! `keyrot:tier`), its schedule (the secret's own rotation rules, so Secrets Manager keeps driving it),
//! its grace and maximum age (tags). Explicit `--every-days`, `--schedule` and `--grace-hours` win over
//! the tier's and are reported as overrides.

use clap::{Args, Subcommand};

use crate::adapters::secrets_manager::Schedule;
use crate::cli::args;
use crate::cli::context::{Deployment, Session};
use crate::domain::SecretDescription;
use crate::domain::Trigger;
use crate::domain::audit::{Action, AuditEvent, Outcome};
use crate::domain::policy::{AWSCURRENT, TAG_GRACE_HOURS, TAG_MAX_AGE_DAYS};
use crate::domain::tier::{TAG_TIER, Tier, Tiers};
use crate::error::{Error, Result};
use crate::ports::{Clock, Ports, SecretStore};
use crate::wiring::Aws;

/// The deployment's tiers, from `KEYROT_TIERS` and `KEYROT_DEFAULT_TIER` (built in when unset).
pub fn tiers() -> Result<Tiers> {
    let get = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    Tiers::from_settings(
        get("KEYROT_TIERS").as_deref(),
        get("KEYROT_DEFAULT_TIER").as_deref(),
    )
}

/// What a person chose: a tier, and any explicit setting that overrides it. Only what was chosen is
/// written; `in_tier` is the tier the secret is in already (for the overrides it keeps).
#[derive(Debug, Clone, Default)]
pub struct Choice<'a> {
    pub tier: Option<&'a Tier>,
    pub in_tier: Option<&'a Tier>,
    pub schedule: Option<&'a str>,
    pub every_days: Option<i64>,
    pub grace_hours: Option<f64>,
}

impl Choice<'_> {
    /// The rotation rules to write, when any were chosen: the explicit schedule, else the explicit
    /// interval, else the chosen tier's.
    fn schedule(&self) -> Option<Schedule> {
        match (self.schedule, self.every_days, self.tier) {
            (Some(expression), _, _) => Some(Schedule::Expression(expression.to_owned())),
            (None, Some(days), _) => Some(Schedule::EveryDays(days)),
            (None, None, Some(tier)) => Some(Schedule::EveryDays(tier.every_days)),
            (None, None, None) => None,
        }
    }

    /// The tags to write: the chosen tier; the maximum age of the interval chosen (an expression's
    /// cannot be told, so the tag stays); the grace chosen, or the chosen tier's.
    fn tags(&self) -> Vec<(&'static str, String)> {
        let mut tags = Vec::new();
        if let Some(tier) = self.tier {
            tags.push((TAG_TIER, tier.name.clone()));
        }
        // Only a tiered secret's maximum age follows its interval; others keep their own tag.
        let tiered = self.tier.or(self.in_tier).is_some();
        let days = match (self.schedule, self.every_days, self.tier) {
            _ if !tiered => None,
            (Some(_), _, _) => None,
            (None, Some(days), _) => Some(days),
            (None, None, tier) => tier.map(|t| t.every_days),
        };
        if let Some(days) = days {
            tags.push((TAG_MAX_AGE_DAYS, format!("{}", Tier::max_age_for(days))));
        }
        if let Some(hours) = self.grace_hours.or(self.tier.map(|t| t.grace_hours)) {
            tags.push((TAG_GRACE_HOURS, format!("{hours}")));
        }
        tags
    }

    /// The explicit settings that differ from the tier's, as words (`every 45 days`).
    pub fn overrides(&self) -> Vec<String> {
        let Some(tier) = self.tier.or(self.in_tier) else {
            return Vec::new();
        };
        let mut overrides = Vec::new();
        if let Some(expression) = self.schedule {
            overrides.push(format!("schedule {expression}"));
        } else if let Some(days) = self.every_days.filter(|d| *d != tier.every_days) {
            overrides.push(format!("every {days} days"));
        }
        if let Some(hours) = self.grace_hours.filter(|h| *h != tier.grace_hours) {
            overrides.push(format!("grace {hours} h"));
        }
        overrides
    }
}

/// Writes the choice onto `name`: the tags first, then the rotation rules when any were chosen, else
/// `fallback` (onboard's, which always enables rotation), with RotateSecret (rotating now only when
/// `immediately`). Returns the schedule in words.
pub async fn apply(
    ports: &Ports<Aws>,
    name: &str,
    choice: &Choice<'_>,
    (rotator_arn, fallback): (&str, Option<Schedule>),
    immediately: bool,
) -> Result<String> {
    let tags = choice.tags();
    if !tags.is_empty() {
        ports.store.tag(name, &tags).await?;
    }
    let Some(schedule) = choice.schedule().or(fallback) else {
        return Ok("schedule unchanged".to_owned());
    };
    let words = match &schedule {
        Schedule::Expression(expression) => format!("rotation {expression}"),
        Schedule::EveryDays(days) => format!("rotation every {days} days"),
    };
    ports
        .store
        .rotate(name, Some(rotator_arn), Some(schedule), immediately, None)
        .await?;
    Ok(words)
}

/// The tier a secret is in, and what of its policy differs from the tier's, as words.
pub fn tier_of<'t>(
    tiers: &'t Tiers,
    secret: &SecretDescription,
) -> (Option<&'t Tier>, Vec<String>) {
    let Some(tier) = tiers.of(secret.tags.get(TAG_TIER).map(String::as_str)) else {
        return (None, Vec::new());
    };
    let mut overrides = Vec::new();
    match (secret.rotate_every_days, &secret.schedule_expression) {
        (Some(days), _) if days != tier.every_days => overrides.push(format!("every {days} days")),
        (None, Some(expression)) => overrides.push(format!("schedule {expression}")),
        _ => {}
    }
    let grace = secret
        .tags
        .get(TAG_GRACE_HOURS)
        .and_then(|h| h.trim().parse::<f64>().ok());
    if let Some(hours) = grace.filter(|h| *h != tier.grace_hours) {
        overrides.push(format!("grace {hours} h"));
    }
    (Some(tier), overrides)
}

#[derive(Debug, Args)]
pub struct PolicyArgs {
    #[command(subcommand)]
    command: PolicyCommand,
}

#[derive(Debug, Subcommand)]
enum PolicyCommand {
    /// Put a managed secret in a tier (its schedule, grace and maximum age), or override one setting.
    ///
    /// Writes the tag keyrot:tier, keyrot:grace-hours and keyrot:max-age-days, and the secret's rotation
    /// rules (RotateSecret with RotateImmediately=false: no rotation starts). Refused, changing nothing,
    /// for a tier the deployment does not define or a secret keyrot does not rotate.
    Set(SetArgs),
}

#[derive(Debug, Args)]
struct SetArgs {
    /// The managed secret.
    name: String,
    /// prod-critical, prod, staging or dev (or the tiers KEYROT_TIERS defines).
    #[arg(long)]
    tier: Option<String>,
    /// Override the tier's interval, in days (1 to 1000).
    #[arg(long, value_parser = clap::value_parser!(i64).range(1..=1000), conflicts_with = "schedule")]
    every_days: Option<i64>,
    /// Override the tier's interval with an expression: 'rate(45 days)' or 'cron(0 4 1 * ? *)'.
    #[arg(long, value_parser = args::schedule)]
    schedule: Option<String>,
    /// Override the tier's grace period, in hours.
    #[arg(long, value_parser = args::hours)]
    grace_hours: Option<f64>,
}

pub async fn run(args: PolicyArgs, deployment: &Deployment) -> Result<()> {
    let PolicyCommand::Set(args) = args.command;
    let tiers = tiers()?;
    let tier = match &args.tier {
        Some(name) => Some(tiers.named(&args.name, "--tier", name)?),
        None => None,
    };
    let session = Session::connect(deployment).await?;
    let ports = &session.ports;
    let secret = ports.store.describe(&args.name).await?;
    let rotator_arn = session.rotator_arn(&args.name, None)?;
    if secret.rotation_lambda_arn.as_deref() != Some(rotator_arn.as_str()) {
        return Err(Error::config(
            &secret.name,
            "rotation",
            "is not rotated by keyrot's rotator, so it has no keyrot policy to set",
            format!(
                "put it under keyrot with `keyrot onboard {}` first",
                secret.name
            ),
        ));
    }
    let in_tier = tiers.of(secret.tags.get(TAG_TIER).map(String::as_str));
    let choice = Choice {
        tier,
        in_tier,
        schedule: args.schedule.as_deref(),
        every_days: args.every_days,
        grace_hours: args.grace_hours,
    };
    if choice.tags().is_empty() && choice.schedule().is_none() {
        return Err(Error::config(
            &secret.name,
            "keyrot policy set",
            "names nothing to set",
            "give --tier, --every-days, --schedule or --grace-hours",
        ));
    }
    let words = apply(ports, &secret.name, &choice, (&rotator_arn, None), false).await?;
    let overrides = choice.overrides();
    let said = describe(tier.or(in_tier), &words, &overrides);
    let event = AuditEvent::new(
        ports.clock.now(),
        (&secret.arn, &secret.name),
        Action::Policy,
        Outcome::Succeeded,
        secret.version_with(AWSCURRENT).unwrap_or_default(),
    )
    .triggered(Some(Trigger::Manual))
    .by(&session.actor)
    .error(Some(said.clone()));
    ports.record_quietly(&event).await;
    println!("{}: {said}.", secret.name);
    Ok(())
}

/// `tier prod: rotation every 90 days; overrides the tier: grace 12 h`.
pub fn describe(tier: Option<&Tier>, schedule: &str, overrides: &[String]) -> String {
    let mut said = match tier {
        Some(tier) => format!("tier {}: {schedule}", tier.name),
        None => schedule.to_owned(),
    };
    if !overrides.is_empty() {
        said.push_str(&format!("; overrides the tier: {}", overrides.join(", ")));
    }
    said
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_settings_win_over_the_tier_and_are_overrides() {
        let tiers = Tiers::default();
        let critical = tiers.get("prod-critical");
        let choice = Choice {
            tier: critical,
            every_days: Some(45),
            grace_hours: Some(24.0),
            ..Choice::default()
        };
        assert!(matches!(choice.schedule(), Some(Schedule::EveryDays(45))));
        assert_eq!(
            choice.overrides(),
            ["every 45 days"],
            "24 h is the tier's own grace"
        );
        let tags = choice.tags();
        assert!(tags.contains(&(TAG_TIER, "prod-critical".to_owned())));
        assert!(
            tags.contains(&(TAG_MAX_AGE_DAYS, "46".to_owned())),
            "the interval used: {tags:?}"
        );
        assert!(tags.contains(&(TAG_GRACE_HOURS, "24".to_owned())));
        let plain = Choice {
            tier: critical,
            ..Choice::default()
        };
        assert!(matches!(plain.schedule(), Some(Schedule::EveryDays(30))));
        assert!(plain.tags().contains(&(TAG_MAX_AGE_DAYS, "31".to_owned())));
        assert!(plain.overrides().is_empty());
    }

    #[test]
    fn a_grace_alone_leaves_the_schedule_the_tier_and_the_maximum_age_alone() {
        let tiers = Tiers::default();
        let choice = Choice {
            in_tier: tiers.get("prod"),
            grace_hours: Some(12.0),
            ..Choice::default()
        };
        assert!(choice.schedule().is_none());
        assert_eq!(choice.tags(), [(TAG_GRACE_HOURS, "12".to_owned())]);
        assert_eq!(choice.overrides(), ["grace 12 h"]);
    }
}
