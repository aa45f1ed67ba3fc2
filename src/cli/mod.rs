//! The operator CLI `keyrot`: one subcommand per job. Exit codes: 0 ok, 1 failure, 2 usage, 3 still
//! running (`rotate --wait`).

mod args;
mod audit;
mod context;
mod csv_out;
mod keys;
mod onboard;
mod policy;
mod report;
mod rotate;
mod status;

use clap::{Parser, Subcommand};

use crate::cli::context::Deployment;
use crate::error::Error;

#[derive(Debug, Parser)]
#[command(
    name = "keyrot",
    version,
    about = "Operate keyrot: zero-downtime rotation of LLM provider API keys in AWS Secrets Manager",
    long_about = "Operate keyrot: zero-downtime rotation of LLM provider API keys in AWS Secrets Manager.\n\n\
        keyrot uses the AWS SDK's usual configuration: credentials and region from the environment or \
        the shared config files (AWS_PROFILE, AWS_REGION), and AWS_ENDPOINT_URL to talk to a local \
        stand-in such as moto. It finds the deployed stack's table, topic and rotator from the stack's \
        outputs (TableName, TopicArn, RotatorArn; --stack, default keyrot), and with them the grace \
        keeper's ManagedPrefix and DefaultGraceInHours; KEYROT_AUDIT_TABLE, KEYROT_ALERT_TOPIC_ARN, \
        KEYROT_ROTATOR_ARN, KEYROT_MANAGED_PREFIX and KEYROT_DEFAULT_GRACE_HOURS, when set, take their place.\n\n\
        Keys are read from standard input or --key-file, never from arguments.\n\n\
        Exit codes: 0 success, 1 failure (the message says why and what to do), 2 usage error, 3 \
        `rotate --wait` stopped waiting with the rotation still running.",
    after_help = "Examples:\n  \
        keyrot status\n  \
        keyrot onboard prod/openai --provider openai --project-id proj_abc \\\n      \
        --admin-key-secret keyrot-admin/openai \\\n      \
        --vercel prj_web:OPENAI_API_KEY --every-days 30 < key.txt\n  \
        keyrot rotate prod/openai --emergency --wait\n  \
        keyrot audit --month 2026-11 --format csv > evidence.csv"
)]
pub struct Cli {
    /// The deployed keyrot stack, whose outputs (TableName, TopicArn, RotatorArn, ManagedPrefix,
    /// DefaultGraceInHours) stand in for the KEYROT_* variables left unset.
    #[arg(long, global = true, env = "KEYROT_STACK", default_value = "keyrot")]
    pub stack: String,
    /// The AWS profile of the shared config files to use (as the AWS CLI's --profile).
    #[arg(long, global = true, env = "AWS_PROFILE")]
    pub profile: Option<String>,
    /// The AWS region the stack lives in (as the AWS CLI's --region).
    #[arg(long, global = true, env = "AWS_REGION")]
    pub region: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The managed secrets: provider, targets, key hint, last and next rotation, age and state
    /// (OK, DUE, OVERDUE, ROTATING, STUCK, GRACE).
    Status(status::StatusArgs),
    /// Put a secret under keyrot's management: write it in keyrot's format, tag it, enable rotation.
    ///
    /// Validates the key at its provider and the admin credentials first, and refuses with the reason
    /// when either fails; nothing is written then. The current key is read from standard input or
    /// --key-file. Rotation is enabled with RotateImmediately=false (Secrets Manager only tests the
    /// configuration) unless --rotate-now is given.
    Onboard(Box<onboard::OnboardArgs>),
    /// A secret's rotation policy: its tier (prod-critical, prod, staging, dev), schedule and grace.
    Policy(policy::PolicyArgs),
    /// Rotate a secret now. With --emergency the old key dies as the new one goes live.
    ///
    /// Refuses, changing nothing, when rotation is not configured or a rotation is in progress or
    /// stuck (AWSPENDING on a version that is not AWSCURRENT: see `keyrot status`, `keyrot repair`).
    /// Sets the one-shot tags keyrot:trigger and keyrot:next-grace-hours (finishSecret removes them, so
    /// the secret's permanent policy never changes) and calls RotateSecret; if RotateSecret fails, the
    /// tags are put back as they were. With --wait, follows the rotation step by step through the
    /// audit trail until it succeeds (exit 0) or fails (exit 1), saying every 10 s what it waits for
    /// (the redeploys and how each stands); a failure Secrets Manager retries (the error is retryable
    /// and the version is still AWSPENDING) is followed through its retries, until --wait-seconds runs
    /// out (exit 3: still running). At a terminal, --emergency (or --grace-hours 0) asks to type the
    /// secret's name first, unless --yes.
    Rotate(rotate::RotateArgs),
    /// Stage a key a person created (Anthropic, Stripe, GitHub) for the next rotation to adopt.
    ///
    /// Only for providers with no API that creates keys (OpenAI, database and generic rotations make
    /// their own). Validates the key (from standard input or --key-file), refuses one of another
    /// account (or Stripe mode), reports how a GitHub token's scopes differ from the current one's,
    /// and writes it under KEYROT_STAGED; clears an empty AWSPENDING left by a rotation that found
    /// nothing staged, so the next rotation can start.
    Stage(keys::StageArgs),
    /// Record that you revoked an old key keyrot left to a person (a revocation task).
    ///
    /// Stripe keys, and keys whose provider id keyrot never recorded, are revoked by a person in the
    /// provider's console; the grace keeper's daily revocation_task alert says how. This records it:
    /// while the old version still holds the key, the provider is asked first, and a key that still
    /// works is refused, changing nothing. --version picks the task when several are open.
    Revoked(keys::RevokedArgs),
    /// During the grace period, go back to the previous key.
    ///
    /// In this order: AWSCURRENT moves back to the previous version; that key goes back on every
    /// target and the redeploys are waited for; the pending revocation is cancelled; the rolled-back
    /// key is recorded for revocation now. Refuses, changing nothing, when the previous key is already
    /// revoked, holds the same key as AWSCURRENT, or was not left by a keyrot rotation, and while a
    /// rotation is in progress or stuck (clear it with `keyrot repair`). Run again after a failure, it
    /// goes on where the first run stopped instead of moving AWSCURRENT again.
    Rollback(keys::NameArgs),
    /// Say that every service keyrot does not redeploy runs the current key.
    ///
    /// For targets with "redeploy": false (Vercel) or "deploy": false (Render), keyrot cannot tell
    /// when the service picks up a new value, so the old key's revocation waits for this (or for the
    /// target's restart_within_hours). Refuses, changing nothing, when such a target's variable does
    /// not hold the current key, or when no revocation waits. Audited with the caller.
    Confirm(keys::NameArgs),
    /// Check a key at its provider and report which key every target holds (by fingerprint).
    ///
    /// Each target is reported as holding the current, previous, pending or an unknown key. Exit code
    /// 0 when the checked key is valid and every target holds AWSCURRENT's key (whatever --stage is
    /// checked: during a grace period the targets rightly serve the current key), else 1.
    Validate(keys::ValidateArgs),
    /// Clear a stuck rotation (AWSPENDING on a version that is not AWSCURRENT).
    ///
    /// Targets that hold the pending key get the current one back first (and are redeployed); then the
    /// pending key, if keyrot minted it, is recorded for revocation now, and the label goes. A pending
    /// version younger than an hour is a rotation still running: refused unless --force.
    Repair(keys::RepairArgs),
    /// List (or with --delete, delete) keys keyrot minted that no version or revocation knows.
    ///
    /// --delete attempts every deletion, prints each result, audits each as a `revoke`, and exits 1
    /// when any failed.
    Orphans(keys::OrphansArgs),
    /// The compliance report of a month: rotations, failures, overdue keys, emergency rotations and
    /// the mean time between rotations of every managed secret.
    Report(report::ReportArgs),
    /// The audit trail: every step, revocation and alert, as a table, CSV or JSON.
    ///
    /// Without --secret, lists every secret's events of one calendar month (the current one unless
    /// --month or --since says otherwise), read from the month index. With --secret, lists that
    /// secret's history, newest first. CSV has a header row and RFC 4180 quoting, suitable as SOC 2 /
    /// ISO 27001 evidence.
    Audit(audit::AuditArgs),
    /// Print the shell completion script for bash, zsh, fish, elvish or PowerShell.
    ///
    /// For example `keyrot completions bash > ~/.local/share/bash-completion/completions/keyrot`.
    Completions {
        /// The shell to complete in.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), for example `keyrot man > ~/.local/share/man/man1/keyrot.1`.
    Man,
}

/// Runs the command and returns its exit code; an error is reported by the caller with exit code 1.
pub async fn run(cli: Cli) -> Result<i32, Error> {
    let deployment = Deployment {
        stack: cli.stack,
        profile: cli.profile,
        region: cli.region,
    };
    run_command(cli.command, &deployment)
        .await
        .map_err(|err| explain_credentials(err, &deployment))
        .map_err(explain)
}

/// The manual page of `keyrot`, from the same definitions as `--help`.
fn man_page() -> Result<(), Error> {
    let page = clap_mangen::Man::new(<Cli as clap::CommandFactory>::command());
    page.render(&mut std::io::stdout()).map_err(|err| {
        Error::external(
            "stdout",
            "write the manual page",
            err,
            crate::error::Transience::Final,
        )
    })
}

/// No credentials, or refused ones: say how to log in, and with which profile and region.
fn explain_credentials(err: Error, deployment: &Deployment) -> Error {
    let Error::External { detail, .. } = &err else {
        return err;
    };
    if !detail.starts_with(crate::adapters::aws::CREDENTIALS_PROBLEM) {
        return err;
    }
    let profile = deployment.profile.as_deref().unwrap_or("default");
    let region = deployment
        .region
        .clone()
        .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
        .unwrap_or_else(|| "the profile's".to_owned());
    Error::config(
        "(AWS)",
        "credentials",
        format!("{detail} (profile {profile}, region {region})"),
        format!(
            "log in with `aws sso login --profile {profile}` (or `aws configure --profile {profile}`), \
             or pass --profile with a profile that has credentials, then run the command again"
        ),
    )
}

/// Secrets Manager's answer to an unknown name says nothing of what to do: say it.
fn explain(err: Error) -> Error {
    if let Error::External {
        system: "secretsmanager",
        operation,
        detail,
        ..
    } = &err
        && detail.starts_with("ResourceNotFoundException")
        && let Some(name) = operation
            .strip_prefix("DescribeSecret(")
            .and_then(|rest| rest.strip_suffix(')'))
    {
        return Error::config(
            name,
            "NAME",
            "Secrets Manager has no secret of this name here (ResourceNotFoundException)",
            "check the name and the account and region (AWS_PROFILE, AWS_REGION); `keyrot status` lists \
             the managed secrets",
        );
    }
    err
}

async fn run_command(command: Command, stack: &Deployment) -> Result<i32, Error> {
    match command {
        Command::Status(args) => status::run(args, stack).await.map(|()| 0),
        Command::Onboard(args) => onboard::run(*args, stack).await.map(|()| 0),
        Command::Policy(args) => policy::run(args, stack).await.map(|()| 0),
        Command::Rotate(args) => rotate::run(args, stack).await,
        Command::Stage(args) => keys::stage(args, stack).await.map(|()| 0),
        Command::Rollback(args) => keys::rollback(args, stack).await.map(|()| 0),
        Command::Confirm(args) => keys::confirm(args, stack).await.map(|()| 0),
        Command::Revoked(args) => keys::revoked(args, stack).await.map(|()| 0),
        Command::Validate(args) => keys::validate(args, stack).await,
        Command::Repair(args) => keys::repair(args, stack).await.map(|()| 0),
        Command::Orphans(args) => keys::orphans(args, stack).await,
        Command::Report(args) => report::run(args, stack).await.map(|()| 0),
        Command::Audit(args) => audit::run(args, stack).await.map(|()| 0),
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut <Cli as clap::CommandFactory>::command(),
                "keyrot",
                &mut std::io::stdout(),
            );
            Ok(0)
        }
        Command::Man => man_page().map(|()| 0),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::Cli;

    /// clap's verdict on a command line: its exit code (2 for a usage error), or 0 when it parses.
    fn exit_code(args: &[&str]) -> i32 {
        match Cli::try_parse_from(std::iter::once("keyrot").chain(args.iter().copied())) {
            Ok(_) => 0,
            Err(err) => err.exit_code(),
        }
    }

    #[test]
    fn bad_argument_values_are_usage_errors_before_anything_runs() {
        let onboard = |extra: &[&str]| {
            let mut args = vec!["onboard", "prod/x", "--provider", "generic"];
            args.extend_from_slice(extra);
            exit_code(&args)
        };
        assert_eq!(onboard(&["--every-days", "30"]), 0);
        assert_eq!(onboard(&["--schedule", "rate(30 days)"]), 0);
        assert_eq!(
            onboard(&["--every-days", "30", "--vercel", "prj_1:OPENAI_API_KEY"]),
            0
        );
        for bad in [
            vec!["--every-days", "0"],
            vec!["--every-days", "1001"],
            vec!["--every-days", "-3"],
            vec!["--schedule", "30 days"],
            vec!["--schedule", "rate(30 weeks)"],
            vec!["--every-days", "30", "--grace-hours", "-1"],
            vec!["--every-days", "30", "--grace-hours", "NaN"],
            vec!["--every-days", "30", "--grace-hours", "inf"],
            vec!["--every-days", "30", "--vercel", "prj_1"],
            vec!["--every-days", "30", "--vercel", "prj_1:"],
            vec!["--every-days", "30", "--render", ":API_KEY"],
        ] {
            assert_eq!(onboard(&bad), 2, "{bad:?}");
        }
        assert_eq!(exit_code(&["rotate", "prod/x", "--grace-hours", "0.5"]), 0);
        for bad in ["-1", "NaN", "-inf", "soon"] {
            assert_eq!(
                exit_code(&["rotate", "prod/x", "--grace-hours", bad]),
                2,
                "{bad}"
            );
        }
        assert_eq!(exit_code(&["repair", "prod/x", "--force"]), 0);
    }

    #[test]
    fn an_unknown_secret_is_reported_with_its_name_and_the_fix() {
        let err = super::explain(crate::error::Error::external(
            "secretsmanager",
            "DescribeSecret(prod/missing)",
            "ResourceNotFoundException: Secrets Manager can't find the specified secret.",
            crate::error::Transience::Final,
        ));
        let text = err.to_string();
        for expected in [
            "prod/missing",
            "no secret of this name",
            "fix:",
            "keyrot status",
        ] {
            assert!(text.contains(expected), "{expected:?} in {text}");
        }
    }
}
