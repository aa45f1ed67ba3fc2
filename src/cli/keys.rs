//! The commands that act on one secret's keys: stage, rollback, repair, validate; and orphans.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use serde_json::json;

use crate::cli::context::{Deployment, Session, ask_to_confirm, print_json, print_table, read_key};
use crate::domain::policy::{AWSCURRENT, AWSPENDING, AWSPREVIOUS};
use crate::error::Result;
use crate::operator::Placeholder;

#[derive(Debug, Args)]
pub struct StageArgs {
    /// The secret whose next rotation adopts the key.
    name: String,
    /// Read the key from this file instead of standard input.
    #[arg(long)]
    key_file: Option<PathBuf>,
}

pub async fn stage(args: StageArgs, deployment: &Deployment) -> Result<()> {
    let key = read_key(args.key_file.as_deref())?;
    let session = Session::connect(deployment).await?;
    let staged = session
        .actions()
        .stage_key(&args.name, key, &session.actor)
        .await?;
    println!(
        "Staged {} for {} as version {} (KEYROT_STAGED).",
        staged.key, args.name, staged.version_id
    );
    for note in &staged.notes {
        println!("{note}");
    }
    match staged.placeholder {
        Placeholder::UnderWay(pending) => {
            println!(
                "A rotation is under way (version {pending}, no key adopted yet): its createSecret adopts this key \
                 when Secrets Manager retries it. Follow it with `keyrot status --secret {}`.",
                args.name
            );
            return Ok(());
        }
        Placeholder::Cleared(pending) => println!(
            "Cleared the empty AWSPENDING version {pending} left by a rotation that had no key."
        ),
        Placeholder::None => {}
    }
    println!(
        "The next rotation adopts it: `aws secretsmanager rotate-secret --secret-id {}`.",
        args.name
    );
    Ok(())
}

#[derive(Debug, Args)]
pub struct NameArgs {
    /// The secret (name or ARN).
    name: String,
}

#[derive(Args, Debug)]
pub struct RevokedArgs {
    /// The secret (name).
    name: String,
    /// The version whose old key you revoked (the alert names it); needed when several are open.
    #[arg(long)]
    version: Option<String>,
}

pub async fn revoked(args: RevokedArgs, deployment: &Deployment) -> Result<()> {
    let session = Session::connect(deployment).await?;
    let done = session
        .actions()
        .record_revoked(&args.name, args.version.as_deref(), &session.actor)
        .await?;
    let checked = if done.verified {
        "the provider refuses it"
    } else {
        "its old value could no longer be read, so keyrot could not ask the provider"
    };
    println!(
        "Recorded the old key {} of {} (version {}) as revoked: {checked}.",
        done.key, args.name, done.version_id
    );
    Ok(())
}

pub async fn confirm(args: NameArgs, deployment: &Deployment) -> Result<()> {
    let session = Session::connect(deployment).await?;
    let done = session
        .actions()
        .confirm(&args.name, &session.actor)
        .await?;
    println!(
        "Confirmed for {} that {} run(s) the current key.",
        args.name,
        done.targets.join(", ")
    );
    println!(
        "The revocation(s) of version(s) {} no longer wait for a confirmation; the grace keeper revokes each once its grace ends.",
        done.versions.join(", ")
    );
    Ok(())
}

pub async fn rollback(args: NameArgs, deployment: &Deployment) -> Result<()> {
    let session = Session::connect(deployment).await?;
    let done = session
        .actions()
        .rollback(&args.name, &session.actor)
        .await?;
    if done.resumed {
        println!(
            "An earlier rollback of {} had already moved AWSCURRENT back; completed its remaining steps.",
            args.name
        );
    }
    println!(
        "{} is back on {} (version {}); targets updated and redeployed: {}.",
        args.name,
        done.current_key,
        done.current_version,
        if done.targets.is_empty() {
            "none needed".to_owned()
        } else {
            done.targets.join(", ")
        }
    );
    println!(
        "The abandoned key {} is revoked at the grace keeper's next pass.",
        done.abandoned_key
    );
    Ok(())
}

#[derive(Debug, Args)]
pub struct RepairArgs {
    /// The secret whose stuck rotation to clear (name or ARN).
    name: String,
    /// Repair even a pending version younger than an hour, which is normally a rotation still running
    /// (Secrets Manager may be retrying a step).
    #[arg(long)]
    force: bool,
}

pub async fn repair(args: RepairArgs, deployment: &Deployment) -> Result<()> {
    let session = Session::connect(deployment).await?;
    let done = session
        .actions()
        .repair(&args.name, &session.actor, args.force)
        .await?;
    println!(
        "Cleared the stuck rotation {} of {}.",
        done.pending_version, args.name
    );
    if !done.targets.is_empty() {
        println!(
            "Targets given the current key back: {}.",
            done.targets.join(", ")
        );
    }
    if done.revocation_scheduled {
        println!("The abandoned pending key is revoked at the grace keeper's next pass.");
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, ValueEnum)]
#[clap(rename_all = "SCREAMING_SNAKE_CASE")]
enum Stage {
    Awscurrent,
    Awsprevious,
    Awspending,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The secret whose key to check (name or ARN).
    name: String,
    /// Which version's key to check at the provider. Targets are always compared with AWSCURRENT's
    /// key, which is what they should serve whatever stage is checked.
    #[arg(long, value_enum, default_value = "AWSCURRENT")]
    stage: Stage,
    /// Print JSON instead of a table: the provider's verdict and which key each target holds.
    #[arg(long)]
    json: bool,
}

/// Exit code 0 when the checked key is valid and every target holds AWSCURRENT's key, else 1.
pub async fn validate(args: ValidateArgs, deployment: &Deployment) -> Result<i32> {
    let session = Session::connect(deployment).await?;
    let label = match args.stage {
        Stage::Awscurrent => AWSCURRENT,
        Stage::Awsprevious => AWSPREVIOUS,
        Stage::Awspending => AWSPENDING,
    };
    let report = session.actions().validate_stage(&args.name, label).await?;
    let provider = match &report.rejected {
        None => "valid".to_owned(),
        Some(detail) => format!("REJECTED ({detail})"),
    };
    if args.json {
        print_json(&json!({
            "secret": report.secret_name, "stage": label.as_str(), "version": report.version,
            "key": report.key.redacted, "fingerprint": report.key.fingerprint, "provider": provider,
            "targets": report.targets.iter().map(|t| json!({"target": t.target, "fingerprint": t.fingerprint,
                "holds": t.holds.as_str()})).collect::<Vec<_>>(),
            "targets_on_current": report.targets_on_current(),
            "ok": report.ok(),
        }))?;
    } else {
        println!(
            "{} {label} ({}): key {} [{}] is {provider} at {}.",
            report.secret_name,
            report.version,
            report.key.redacted,
            report.key.fingerprint,
            report.provider
        );
        let rows: Vec<Vec<String>> = report
            .targets
            .iter()
            .map(|t| {
                vec![
                    t.target.clone(),
                    t.fingerprint.clone().unwrap_or_else(|| "-".into()),
                    t.holds.as_str().to_owned(),
                ]
            })
            .collect();
        if !rows.is_empty() {
            print_table(&["TARGET", "FINGERPRINT", "HOLDS"], &rows);
            if !report.targets_on_current() {
                println!(
                    "Not every target holds the AWSCURRENT key; `keyrot repair {}` or a rotation puts it back.",
                    report.secret_name
                );
            }
        }
    }
    Ok(if report.ok() { 0 } else { 1 })
}

#[derive(Debug, Args)]
pub struct OrphansArgs {
    /// Delete the orphaned keys (their service accounts) instead of listing them. Every deletion is
    /// attempted and audited; the exit code is 1 when any failed.
    #[arg(long)]
    delete: bool,
    /// Delete without asking (at a terminal, --delete asks first; a script is never asked).
    #[arg(long)]
    yes: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

fn orphan_row(
    orphan: &crate::keeper::Orphan,
    status: &str,
    error: Option<String>,
) -> serde_json::Value {
    json!({"secret": orphan.secret, "key_id": orphan.key.id, "name": orphan.key.name,
        "project_id": orphan.key.scope, "created_at": orphan.key.created_at.to_rfc3339(),
        "status": status, "error": error})
}

/// Deletes the orphans, after asking at a terminal; one row per deletion, and how many failed.
async fn delete_orphans(
    session: &Session,
    found: Vec<crate::keeper::Orphan>,
    yes: bool,
) -> Result<(Vec<serde_json::Value>, usize)> {
    if !found.is_empty() {
        ask_to_confirm(
            &format!(
                "This deletes {} key(s) keyrot minted that no version or revocation knows; a service \
                 that still uses one will fail.",
                found.len()
            ),
            "delete",
            yes,
        )?;
    }
    let mut rows = Vec::new();
    let mut failed = 0;
    for deletion in session
        .actions()
        .delete_orphans(found, &session.actor)
        .await
    {
        match &deletion.result {
            Ok(crate::domain::audit::RevocationStatus::Revoked) => {
                rows.push(orphan_row(&deletion.orphan, "deleted", None));
            }
            Ok(other) => rows.push(orphan_row(&deletion.orphan, other.as_str(), None)),
            Err(err) => {
                failed += 1;
                rows.push(orphan_row(
                    &deletion.orphan,
                    "FAILED",
                    Some(err.to_string()),
                ));
            }
        }
    }
    Ok((rows, failed))
}

pub async fn orphans(args: OrphansArgs, deployment: &Deployment) -> Result<i32> {
    let session = Session::connect(deployment).await?;
    let found = session.keeper().orphans().await?;
    let (rows, failed) = if args.delete {
        delete_orphans(&session, found, args.yes).await?
    } else {
        let rows = found
            .iter()
            .map(|orphan| orphan_row(orphan, "orphaned", None))
            .collect();
        (rows, 0)
    };
    let code = if failed > 0 { 1 } else { 0 };
    if args.json {
        print_json(&serde_json::Value::Array(rows))?;
        return Ok(code);
    }
    if rows.is_empty() {
        println!("No orphaned keys.");
        return Ok(code);
    }
    let text = |v: &serde_json::Value| v.as_str().unwrap_or("-").to_owned();
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                text(&r["key_id"]),
                text(&r["name"]),
                text(&r["project_id"]),
                text(&r["secret"]),
                text(&r["status"]),
            ]
        })
        .collect();
    print_table(&["KEY", "NAME", "PROJECT", "SECRET", "STATUS"], &table);
    for r in rows.iter().filter(|r| r["status"] == "FAILED") {
        println!("{}: {}", text(&r["key_id"]), text(&r["error"]));
    }
    if failed > 0 {
        println!(
            "{failed} deletion(s) failed (see above); each attempt is in the audit trail. Run `keyrot orphans --delete` again once the cause is fixed."
        );
    }
    Ok(code)
}
