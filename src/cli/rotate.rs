//! `keyrot rotate`: start a rotation now (manual or emergency), and optionally follow it to its end.

use std::time::Duration as StdDuration;

use chrono::{Duration, Utc};
use clap::Args;

use crate::cli::context::Operator;
use crate::domain::Step;
use crate::domain::audit::Outcome;
use crate::domain::policy::{TAG_NEXT_GRACE_HOURS, TAG_TRIGGER};
use crate::error::{Error, Result};
use crate::ports::SecretStore;

#[derive(Debug, Args)]
pub struct RotateArgs {
    /// The secret to rotate.
    name: String,
    /// An emergency: the old key's grace defaults to 0, so it is revoked as the rotation finishes.
    #[arg(long)]
    emergency: bool,
    /// Grace of the old key for this rotation only, in hours (tag keyrot:next-grace-hours).
    #[arg(long)]
    grace_hours: Option<f64>,
    /// Follow the rotation step by step until it succeeds or fails.
    #[arg(long)]
    wait: bool,
    /// How long --wait follows the rotation, in seconds.
    #[arg(long, default_value_t = 900)]
    wait_seconds: u64,
}

pub async fn run(args: RotateArgs, stack: &str) -> Result<i32> {
    let operator = Operator::connect(stack).await?;
    let ports = &operator.ports;
    let secret = ports.store.describe(&args.name).await?;
    if args.grace_hours.is_some_and(|h| !h.is_finite() || h < 0.0) {
        return Err(Error::config(
            &secret.name,
            "--grace-hours",
            "must be 0 or more",
            "pass a number of hours such as 0.5",
        ));
    }
    let grace = args.grace_hours.or(args.emergency.then_some(0.0));
    let mut tags = vec![(
        TAG_TRIGGER,
        if args.emergency {
            "emergency"
        } else {
            "manual"
        }
        .to_owned(),
    )];
    if let Some(hours) = grace {
        tags.push((TAG_NEXT_GRACE_HOURS, format!("{hours}")));
    }
    // One-shot tags: finishSecret removes them, so the permanent policy is never changed.
    ports.store.tag(&secret.arn_or_name(), &tags).await?;
    match grace {
        Some(0.0) => println!(
            "EMERGENCY rotation of {}: the old key is revoked as soon as the new one is live. Services still using it will fail.",
            secret.name
        ),
        Some(hours) => println!(
            "Rotating {}: the old key stays valid for {hours} h after the rotation.",
            secret.name
        ),
        None => println!(
            "Rotating {}: the old key stays valid for the secret's usual grace period.",
            secret.name
        ),
    }
    let started = Utc::now() - Duration::seconds(1);
    let token = ports
        .store
        .rotate(
            &secret.arn_or_name(),
            secret.rotation_lambda_arn.as_deref(),
            None,
            true,
        )
        .await?
        .ok_or_else(|| Error::protocol(&secret.name, "RotateSecret returned no version id"))?;
    println!("Rotation started: version {token}.");
    if !args.wait {
        return Ok(0);
    }
    follow(
        &operator,
        &secret.name,
        &token,
        started,
        StdDuration::from_secs(args.wait_seconds),
    )
    .await
}

/// Follows the rotation through its audit events: one line per step as it succeeds; exit code 0 when
/// finishSecret succeeded, 1 at the first failure or when the wait runs out.
async fn follow(
    operator: &Operator,
    name: &str,
    token: &str,
    since: chrono::DateTime<Utc>,
    limit: StdDuration,
) -> Result<i32> {
    let deadline = std::time::Instant::now() + limit;
    let mut shown = 0;
    loop {
        let mut events = operator
            .ports
            .audit
            .secret_history(name, Some(since), None)
            .await?;
        events.reverse();
        let mine: Vec<_> = events
            .into_iter()
            .filter(|e| e.version_id == token && e.step().is_some())
            .collect();
        for event in mine.iter().skip(shown) {
            let mark = match event.outcome {
                Outcome::Succeeded => "done",
                Outcome::Skipped => "already done",
                Outcome::Failed => "FAILED",
            };
            println!("  {:<13} {mark} ({} ms)", event.action, event.duration_ms);
            if event.outcome == Outcome::Failed {
                if let Some(error) = &event.error {
                    println!("  cause: {error}");
                }
                return Ok(1);
            }
            if event.step() == Some(Step::Finish) && event.outcome == Outcome::Succeeded {
                println!("Rotation of {name} finished.");
                return Ok(0);
            }
        }
        shown = mine.len();
        if std::time::Instant::now() >= deadline {
            println!(
                "Still running after {} s; follow it with `keyrot audit --secret {name}`.",
                limit.as_secs()
            );
            return Ok(1);
        }
        tokio::time::sleep(StdDuration::from_secs(1)).await;
    }
}
