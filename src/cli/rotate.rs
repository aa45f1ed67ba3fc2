//! `keyrot rotate`: start a rotation now (manual or emergency), and optionally follow it to its end.

use std::time::Duration as StdDuration;

use chrono::{Duration, Utc};
use clap::Args;

use crate::cli::args;
use crate::cli::context::{Deployment, Session, ask_to_confirm};
use crate::error::Result;
use crate::operator::{FollowEnd, RotateRequest};

#[derive(Debug, Args)]
pub struct RotateArgs {
    /// The secret to rotate.
    name: String,
    /// An emergency: the old key's grace defaults to 0, so it is revoked as the rotation finishes.
    #[arg(long)]
    emergency: bool,
    /// Grace of the old key for this rotation only, in hours, 0 or more (tag keyrot:next-grace-hours).
    #[arg(long, value_parser = args::hours, allow_negative_numbers = true)]
    grace_hours: Option<f64>,
    /// Follow the rotation step by step until it succeeds or fails. A failure Secrets Manager retries
    /// (a redeploy still building, a provider briefly unavailable) is followed through its retries.
    #[arg(long)]
    wait: bool,
    /// Go on without asking (at a terminal, --emergency and --grace-hours 0 ask first; a script is
    /// never asked).
    #[arg(long)]
    yes: bool,
    /// How long --wait follows the rotation, in seconds; exit code 3 when it runs out.
    #[arg(long, default_value_t = 900)]
    wait_seconds: u64,
}

/// The exit code of `rotate --wait` when `--wait-seconds` ran out with the rotation still running.
pub const STILL_RUNNING: i32 = 3;

pub async fn run(args: RotateArgs, deployment: &Deployment) -> Result<i32> {
    let session = Session::connect(deployment).await?;
    let request = RotateRequest {
        emergency: args.emergency,
        grace_hours: args.grace_hours,
        actor: session.actor.clone(),
    };
    if request.grace_hours() == Some(0.0) {
        ask_to_confirm(
            &format!(
                "EMERGENCY rotation of {}: the old key is revoked as soon as the new one is live. \
                 Services still using it will fail.",
                args.name
            ),
            &args.name,
            args.yes,
        )?;
    }
    // The steps' events are stamped by the Lambda's clock, not this machine's: the window starts well
    // before now so that a skewed clock here hides none of them. The token picks this rotation's.
    let started_at = Utc::now() - Duration::minutes(15);
    let started = session
        .actions()
        .start_rotation(&args.name, request.clone())
        .await?;
    let name = &started.secret_name;
    match request.grace_hours() {
        Some(0.0) => println!(
            "EMERGENCY rotation of {name}: the old key dies now: it is revoked as soon as the new one is live. \
             Services still using it will fail."
        ),
        Some(hours) => {
            println!("Rotating {name}: the old key stays valid for {hours} h after the rotation.")
        }
        None => println!(
            "Rotating {name}: the old key stays valid for the secret's usual grace period."
        ),
    }
    println!("Rotation started: version {}.", started.token);
    if !args.wait {
        return Ok(0);
    }
    let end = session
        .actions()
        .follow_rotation(
            name,
            &started.token,
            started_at,
            StdDuration::from_secs(args.wait_seconds),
            StdDuration::from_secs(1),
            &mut |line| println!("{line}"),
        )
        .await?;
    Ok(match end {
        FollowEnd::Finished => 0,
        FollowEnd::Failed | FollowEnd::Abandoned => 1,
        // Not a failure: the rotation goes on, and a script can tell the two apart.
        FollowEnd::TimedOut => STILL_RUNNING,
    })
}
