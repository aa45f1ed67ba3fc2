//! What every command needs: the ports built from the environment, and who is calling.

use std::collections::HashMap;
use std::io::{IsTerminal, Read};
use std::path::Path;

use aws_config::SdkConfig;
use chrono::{DateTime, Utc};
use secrecy::SecretString;

use crate::adapters::clock::SystemClock;
use crate::adapters::cloudformation;
use crate::adapters::dynamodb::DynamoAuditLog;
use crate::adapters::secrets_manager::SecretsManagerStore;
use crate::config::{Config, STACK_OUTPUTS, STACK_REQUIRED};
use crate::domain::audit::AuditEvent;
use crate::error::{Error, Result, Transience};
use crate::keeper::{GraceKeeper, KeeperSettings};
use crate::operator::Operator;
use crate::ports::{AuditHistory, Listed, Ports, SecretAdmin};
use crate::wiring::{self, Aws};

/// Which deployment a command talks to: the stack, and the AWS profile and region to reach it with
/// (`--profile`, `--region`; the SDK's usual sources when absent).
#[derive(Debug, Clone, Default)]
pub struct Deployment {
    pub stack: String,
    pub profile: Option<String>,
    pub region: Option<String>,
}

impl Deployment {
    /// The SDK configuration: credentials and region from the profile and region given, else from
    /// the environment and the shared config files, as every AWS tool finds them.
    pub async fn sdk_config(&self) -> SdkConfig {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if let Some(profile) = &self.profile {
            loader = loader.profile_name(profile);
        }
        if let Some(region) = &self.region {
            loader = loader.region(aws_config::Region::new(region.clone()));
        }
        loader.load().await
    }
}

/// One CLI invocation's connection to the deployment: the ports, the configuration and the caller.
pub struct Session {
    pub ports: Ports<Aws>,
    pub config: Config,
    /// The caller's ARN (STS GetCallerIdentity), recorded as the actor of audit events.
    pub actor: String,
    stack: StackOutputs,
}

impl Session {
    /// Builds the ports from the configuration: the `KEYROT_*` variables, and for those unset the
    /// outputs of the deployed stack named `stack`.
    pub async fn connect(deployment: &Deployment) -> Result<Session> {
        let sdk = deployment.sdk_config().await;
        let stack = StackOutputs::read_unless_set(
            &sdk,
            &deployment.stack,
            &STACK_OUTPUTS.map(|(var, _)| var)[..STACK_REQUIRED],
        )
        .await;
        let config =
            Config::from_lookup(|var| stack.lookup(var)).map_err(|err| stack.explain(err))?;
        let ports = wiring::build_from(&config, &sdk, SystemClock::from_env())?;
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
        Ok(Session {
            ports,
            config,
            actor,
            stack,
        })
    }

    /// The rotator's ARN: `flag` when given, else KEYROT_ROTATOR_ARN, else the stack's RotatorArn output.
    pub fn rotator_arn(&self, secret: &str, flag: Option<&str>) -> Result<String> {
        flag.map(str::to_owned)
            .or_else(|| self.config.rotator_arn.clone())
            .ok_or_else(|| {
                Error::config(
                    secret,
                    "--rotator-arn",
                    format!(
                        "no rotator is named: the flag is absent, KEYROT_ROTATOR_ARN is unset, and {}",
                        self.stack.why_missing("RotatorArn")
                    ),
                    "pass --rotator-arn with the stack's RotatorArn output, or --stack NAME (KEYROT_STACK) \
                     naming the deployed keyrot stack",
                )
            })
    }

    /// The grace keeper's view of the deployment: which secrets are managed, and their state.
    pub fn keeper(&self) -> GraceKeeper<'_, Aws> {
        GraceKeeper::new(
            &self.ports,
            KeeperSettings {
                rotator_arn: self.config.rotator_arn.clone(),
                name_prefix: self.config.managed_prefix.clone(),
                credentials: crate::keeper::Credentials::Listed(self.config.admin_prefix.clone()),
                default_grace_hours: self.config.default_grace_hours,
                ..KeeperSettings::default()
            },
        )
    }

    /// The operator actions, as the caller.
    pub fn actions(&self) -> Operator<'_, Aws> {
        Operator::new(&self.ports, wiring::rotator_settings(&self.config))
    }
}

// The operator-only ports on the AWS adapters: their calls exist as inherent methods there; these
// impls let the operator actions in `crate::operator` run over fakes in the unit tests.
impl SecretAdmin for SecretsManagerStore {
    async fn set_tags(&self, secret_id: &str, tags: &[(&str, String)]) -> Result<()> {
        self.tag(secret_id, tags).await
    }

    async fn rotate_now(
        &self,
        secret_id: &str,
        rotator_arn: Option<&str>,
        token: &str,
    ) -> Result<Option<String>> {
        self.rotate(secret_id, rotator_arn, None, true, Some(token))
            .await
    }
}

impl AuditHistory for DynamoAuditLog {
    async fn history(
        &self,
        secret_name: &str,
        since: Option<DateTime<Utc>>,
    ) -> Result<Listed<AuditEvent>> {
        self.events().secret_history(secret_name, since, None).await
    }
}

/// The deployed keyrot stack's outputs, which stand in for the `KEYROT_*` variables left unset
/// (`config::STACK_OUTPUTS`). Read at most once, and not at all when every variable is set.
pub struct StackOutputs {
    name: String,
    outputs: Option<Result<HashMap<String, String>>>,
}

impl StackOutputs {
    /// Reads stack `name`'s outputs unless every variable in `vars` is set. A stack that cannot be read
    /// is not an error yet: only a setting that nothing provides is, and [`Self::explain`] then says why.
    pub async fn read_unless_set(sdk: &SdkConfig, name: &str, vars: &[&str]) -> StackOutputs {
        let outputs = if vars.iter().all(|var| env_var(var).is_some()) {
            None
        } else {
            Some(cloudformation::stack_outputs(sdk, name).await)
        };
        StackOutputs {
            name: name.to_owned(),
            outputs,
        }
    }

    /// `var` from the environment, else from the output that stands in for it.
    pub fn lookup(&self, var: &str) -> Option<String> {
        env_var(var).or_else(|| {
            let (_, output) = STACK_OUTPUTS.iter().find(|(name, _)| *name == var)?;
            self.outputs.as_ref()?.as_ref().ok()?.get(*output).cloned()
        })
    }

    fn why_missing(&self, output: &str) -> String {
        match &self.outputs {
            Some(Ok(_)) => format!("stack {} has no output {output}", self.name),
            Some(Err(reason)) => format!("stack {} could not be read ({reason})", self.name),
            None => format!("stack {} was not read", self.name),
        }
    }

    /// `var` from the environment or the stack, or an error that says why neither has it.
    pub fn require(&self, var: &str) -> Result<String> {
        self.lookup(var).ok_or_else(|| self.missing(var))
    }

    /// Turns "variable not set" into a message that also says why the stack did not answer for it.
    pub fn explain(&self, err: Error) -> Error {
        match &err {
            Error::Config { field, .. } if STACK_OUTPUTS.iter().any(|(var, _)| var == field) => {
                self.missing(field)
            }
            _ => err,
        }
    }

    fn missing(&self, var: &str) -> Error {
        // Credentials that could not be loaded are the problem to fix, not the variable: said as such,
        // the CLI adds how to log in.
        if let Some(Err(Error::External {
            system,
            operation,
            detail,
            transience,
        })) = &self.outputs
            && detail.starts_with(crate::adapters::aws::CREDENTIALS_PROBLEM)
        {
            return Error::external(system, operation.clone(), detail, *transience);
        }
        let output = STACK_OUTPUTS
            .iter()
            .find(|(name, _)| *name == var)
            .map_or("(none)", |(_, output)| output);
        Error::config(
            "(configuration)",
            var,
            format!("is not set, and {}", self.why_missing(output)),
            format!(
                "set {var}, or pass --stack NAME (KEYROT_STACK) naming the deployed keyrot stack"
            ),
        )
    }
}

fn env_var(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .filter(|value| !value.trim().is_empty())
}

/// Reads a key from a file or, without one, from standard input — never from an argument, which would
/// land in shell history and process listings.
/// The longest key accepted from the command line: well above any provider's (OpenAI's are about 170
/// characters), far below Secrets Manager's 64 KiB value limit.
const MAX_KEY_BYTES: usize = 4096;

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
        // A key typed at a terminal is read without echo, after a prompt (not silently, in clear).
        None if std::io::stdin().is_terminal() => {
            text = match rpassword::prompt_password("Paste the key, then Enter (input hidden): ") {
                Ok(typed) => typed,
                // The terminal closed with nothing typed: no key, said as such below.
                Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => String::new(),
                Err(err) => {
                    return Err(Error::external(
                        "terminal",
                        "read the key",
                        err,
                        Transience::Final,
                    ));
                }
            };
        }
        None => {
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|err| Error::external("stdin", "read", err, Transience::Final))?;
        }
    }
    one_key(&text)
}

/// At a terminal, asks the person to type `expected` before something that cannot be undone; a script
/// (standard input not a terminal) and `--yes` go on without asking. Anything else typed changes
/// nothing.
pub fn ask_to_confirm(warning: &str, expected: &str, yes: bool) -> Result<()> {
    if yes || !std::io::stdin().is_terminal() {
        return Ok(());
    }
    eprintln!("{warning}");
    eprint!("Type {expected} to go on: ");
    let mut typed = String::new();
    std::io::stdin().read_line(&mut typed).map_err(|err| {
        Error::external("terminal", "read the confirmation", err, Transience::Final)
    })?;
    if typed.trim() == expected {
        return Ok(());
    }
    Err(Error::config(
        "(command line)",
        "confirmation",
        format!("{:?} is not {expected}: nothing was changed", typed.trim()),
        format!("type {expected} exactly, or pass --yes"),
    ))
}

const PIPE_THE_KEY: &str =
    "pipe the key on standard input (for example `pbpaste | keyrot ...`) or pass --key-file";

/// The key in `text`: one line, surrounding white space and a final newline ignored.
fn one_key(text: &str) -> Result<SecretString> {
    let key = text.trim();
    if key.is_empty() {
        return Err(Error::config(
            "(command line)",
            "key",
            "no key was given",
            PIPE_THE_KEY,
        ));
    }
    if key.contains(['\n', '\r']) {
        return Err(Error::config(
            "(command line)",
            "key",
            "is more than one line: one key, alone, is expected",
            "pass the key alone (a file with one line, or `printf %s \"$KEY\" | keyrot ...`)",
        ));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(Error::config(
            "(command line)",
            "key",
            format!(
                "is {} bytes long; no provider key is longer than {MAX_KEY_BYTES}",
                key.len()
            ),
            "check that the file or the pipe holds only the key",
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
