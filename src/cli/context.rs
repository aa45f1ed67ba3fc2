//! What every command needs: the ports built from the environment, and who is calling.

use std::io::Read;
use std::path::Path;

use secrecy::SecretString;

use crate::adapters::aws;
use crate::adapters::clock::SystemClock;
use crate::adapters::dynamodb::DynamoAuditLog;
use crate::adapters::issuers::ProviderIssuers;
use crate::adapters::secrets_manager::SecretsManagerStore;
use crate::adapters::sns::SnsAlerts;
use crate::adapters::targets::PlatformTargets;
use crate::config::Config;
use crate::entrypoints::rotator::{self, AwsRotator};
use crate::error::{Error, Result, Transience};
use crate::keeper::{GraceKeeper, KeeperSettings};

pub type AwsKeeper<'a> = GraceKeeper<
    'a,
    SecretsManagerStore,
    ProviderIssuers,
    PlatformTargets,
    DynamoAuditLog,
    SnsAlerts,
    SystemClock,
>;

pub struct Operator {
    pub ports: AwsRotator,
    pub config: Config,
    /// The caller's ARN (STS GetCallerIdentity), recorded as the actor of audit events.
    pub actor: String,
}

impl Operator {
    pub async fn connect() -> Result<Operator> {
        let config = Config::from_env()?;
        let ports = rotator::build(&config).await?;
        let sdk = aws::sdk_config().await;
        let actor = match aws_sdk_sts::Client::new(&sdk)
            .get_caller_identity()
            .send()
            .await
        {
            Ok(identity) => identity.arn().unwrap_or("unknown caller").to_owned(),
            Err(err) => {
                tracing::warn!(error = %err, "GetCallerIdentity failed; the audit trail names the caller as unknown");
                "unknown caller".to_owned()
            }
        };
        Ok(Operator {
            ports,
            config,
            actor,
        })
    }

    pub fn keeper(&self) -> AwsKeeper<'_> {
        GraceKeeper {
            ports: &self.ports,
            settings: KeeperSettings {
                rotator_arn: self.config.rotator_arn.clone(),
                name_prefix: self.config.managed_prefix.clone(),
                ..KeeperSettings::default()
            },
        }
    }
}

/// Reads a key from a file or, without one, from standard input — never from an argument, which would
/// land in shell history and process listings.
pub fn read_key(key_file: Option<&Path>) -> Result<SecretString> {
    let mut text = String::new();
    match key_file {
        Some(path) => {
            text = std::fs::read_to_string(path).map_err(|err| {
                Error::config(
                    "(command line)",
                    "--key-file",
                    format!("{} cannot be read: {err}", path.display()),
                    "pass a readable file",
                )
            })?;
        }
        None => {
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|err| Error::external("stdin", "read", err, Transience::Final))?;
        }
    }
    let key = text.trim();
    if key.is_empty() {
        return Err(Error::config(
            "(command line)",
            "key",
            "no key was given",
            "pipe the key on standard input (for example `pbpaste | keyrot ...`) or pass --key-file",
        ));
    }
    Ok(SecretString::from(key.to_owned()))
}

/// Prints `rows` as aligned columns under `header`.
pub fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .map(|r| r.get(i).map_or(0, |c| c.chars().count()))
                .max()
                .unwrap_or(0)
                .max(header[i].len())
        })
        .collect();
    let line = |cells: Vec<&str>| {
        cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    println!("{}", line(header.to_vec()));
    for row in rows {
        println!("{}", line(row.iter().map(String::as_str).collect()));
    }
}

pub fn print_json(value: &serde_json::Value) -> Result<()> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|err| Error::external("stdout", "serialise", err, Transience::Final))?;
    println!("{text}");
    Ok(())
}
