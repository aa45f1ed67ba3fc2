//! The commands that act on one secret's keys: stage, rollback, repair, validate; and orphans.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use serde_json::json;

use crate::cli::context::{Operator, print_json, print_table, read_key};
use crate::domain::ManagedSecret;
use crate::domain::audit::{Revocation, RevocationStatus};
use crate::domain::keys::KeyView;
use crate::domain::policy::{AWSCURRENT, AWSPENDING, AWSPREVIOUS};
use crate::domain::targets::TargetSpec;
use crate::error::{Error, Result};
use crate::ports::{Clock, KeyIssuer, SecretStore, Target};

#[derive(Debug, Args)]
pub struct StageArgs {
    /// The secret whose next rotation adopts the key.
    name: String,
    /// Read the key from this file instead of standard input.
    #[arg(long)]
    key_file: Option<PathBuf>,
}

pub async fn stage(args: StageArgs, stack: &str) -> Result<()> {
    let key = read_key(args.key_file.as_deref())?;
    let operator = Operator::connect(stack).await?;
    let staged = operator
        .ports
        .stage_key(&args.name, key, &operator.actor)
        .await?;
    println!(
        "Staged {} for {} as version {} (KEYROT_STAGED).",
        staged.key, args.name, staged.version_id
    );
    if let Some(pending) = staged.cleared_pending {
        println!(
            "Cleared the empty AWSPENDING version {pending} left by a rotation that had no key."
        );
    }
    println!(
        "The next rotation adopts it: `aws secretsmanager rotate-secret --secret-id {}`.",
        args.name
    );
    Ok(())
}

#[derive(Debug, Args)]
pub struct NameArgs {
    name: String,
}

pub async fn rollback(args: NameArgs, stack: &str) -> Result<()> {
    let operator = Operator::connect(stack).await?;
    let done = operator.ports.rollback(&args.name, &operator.actor).await?;
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

pub async fn repair(args: NameArgs, stack: &str) -> Result<()> {
    let operator = Operator::connect(stack).await?;
    let done = operator.ports.repair(&args.name, &operator.actor).await?;
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
    name: String,
    /// Which version's key to check.
    #[arg(long, value_enum, default_value = "AWSCURRENT")]
    stage: Stage,
    /// Print JSON instead of a table: the provider's verdict and each target's fingerprint.
    #[arg(long)]
    json: bool,
}

pub async fn validate(args: ValidateArgs, stack: &str) -> Result<i32> {
    let operator = Operator::connect(stack).await?;
    let ports = &operator.ports;
    let label = match args.stage {
        Stage::Awscurrent => AWSCURRENT,
        Stage::Awsprevious => AWSPREVIOUS,
        Stage::Awspending => AWSPENDING,
    };
    let secret = ports.store.describe(&args.name).await?;
    let version = secret
        .version_with(label)
        .ok_or_else(|| Error::protocol(&secret.name, format!("no version is labelled {label}")))?
        .to_owned();
    let text = ports
        .store
        .value(&args.name, label, Some(&version))
        .await?
        .ok_or_else(|| {
            Error::protocol(&secret.name, format!("the {label} version holds no value"))
        })?;
    let value = ManagedSecret::parse(&secret.name, label, &text)?;
    let view = KeyView::of(&value.api_key);
    let provider = match ports
        .issuer
        .validate(&secret.name, &value, &value.api_key)
        .await
    {
        Ok(()) => "valid".to_owned(),
        Err(Error::KeyRejected { detail, .. }) => format!("REJECTED ({detail})"),
        Err(err) => return Err(err),
    };
    let mut targets = Vec::new();
    for target in TargetSpec::parse_all(&secret.name, &value.targets)? {
        let held = ports
            .targets
            .held_fingerprint(&secret.name, &target)
            .await?;
        let holds = match held.as_deref() {
            Some(fp) if fp == view.fingerprint => "this key".to_owned(),
            Some(fp) => format!("another key ({fp})"),
            None => "no key keyrot recognises".to_owned(),
        };
        targets.push((target.label(), held, holds));
    }
    let ok = provider == "valid"
        && targets
            .iter()
            .all(|(_, held, _)| held.as_deref() == Some(view.fingerprint.as_str()));
    if args.json {
        print_json(&json!({
            "secret": secret.name, "stage": label, "version": version, "key": view.redacted,
            "fingerprint": view.fingerprint, "provider": provider,
            "targets": targets.iter().map(|(t, held, holds)| json!({"target": t, "fingerprint": held, "holds": holds})).collect::<Vec<_>>(),
            "ok": ok,
        }))?;
    } else {
        println!(
            "{} {label} ({version}): key {} [{}] is {provider} at {}.",
            secret.name,
            view.redacted,
            view.fingerprint,
            value.provider.name()
        );
        let rows: Vec<Vec<String>> = targets
            .iter()
            .map(|(t, held, holds)| {
                vec![
                    t.clone(),
                    held.clone().unwrap_or_else(|| "-".into()),
                    holds.clone(),
                ]
            })
            .collect();
        if !rows.is_empty() {
            print_table(&["TARGET", "FINGERPRINT", "HOLDS"], &rows);
        }
    }
    Ok(if ok { 0 } else { 1 })
}

#[derive(Debug, Args)]
pub struct OrphansArgs {
    /// Delete the orphaned keys (their service accounts) instead of listing them.
    #[arg(long)]
    delete: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub async fn orphans(args: OrphansArgs, stack: &str) -> Result<()> {
    let operator = Operator::connect(stack).await?;
    let found = operator.keeper().orphans().await?;
    let mut rows = Vec::new();
    for orphan in &found {
        let mut outcome = "orphaned".to_owned();
        if args.delete {
            let revocation = Revocation {
                secret_name: orphan.secret.clone(),
                secret_arn: String::new(),
                old_version_id: format!("orphan:{}", orphan.key.id),
                provider: "openai".into(),
                project_id: Some(orphan.key.scope.clone()),
                key_id: Some(orphan.key.id.clone()),
                api_key_id: None,
                admin_key_secret: Some(orphan.admin_key_secret.clone()),
                fingerprint: String::new(),
                hint: orphan.key.name.clone(),
                due: operator.ports.clock.now(),
                attempts: 0,
                postponements: 0,
                status: RevocationStatus::Pending,
            };
            operator.ports.issuer.revoke(&revocation).await?;
            outcome = "deleted".to_owned();
        }
        rows.push(json!({"secret": orphan.secret, "key_id": orphan.key.id, "name": orphan.key.name,
            "project_id": orphan.key.scope, "created_at": orphan.key.created_at.to_rfc3339(), "status": outcome}));
    }
    if args.json {
        return print_json(&serde_json::Value::Array(rows));
    }
    if rows.is_empty() {
        println!("No orphaned keys.");
        return Ok(());
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
    Ok(())
}
