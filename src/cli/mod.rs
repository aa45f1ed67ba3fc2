//! The operator CLI `keyrot`: one subcommand per job. Exit codes: 0 ok, 1 failure, 2 usage.

mod audit;

use clap::{Parser, Subcommand};

use crate::error::Error;

#[derive(Debug, Parser)]
#[command(
    name = "keyrot",
    version,
    about = "Operate keyrot: zero-downtime rotation of LLM provider API keys in AWS Secrets Manager",
    long_about = "Operate keyrot: zero-downtime rotation of LLM provider API keys in AWS Secrets Manager.\n\n\
        keyrot uses the AWS SDK's usual configuration: credentials and region from the environment or \
        the shared config files (AWS_PROFILE, AWS_REGION), and AWS_ENDPOINT_URL to talk to a local \
        stand-in such as moto. KEYROT_AUDIT_TABLE names the audit table."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show the audit trail: every step, revocation and alert, as a table, CSV or JSON.
    ///
    /// Without --secret, lists every secret's events of one calendar month (the current one unless
    /// --month or --since says otherwise), read from the month index. With --secret, lists that
    /// secret's history, newest first. CSV has a header row and RFC 4180 quoting, suitable as SOC 2 /
    /// ISO 27001 evidence.
    Audit(audit::AuditArgs),
}

/// Runs the command; the caller turns an error into exit code 1.
pub async fn run(cli: Cli) -> Result<(), Error> {
    match cli.command {
        Command::Audit(args) => audit::run(args).await,
    }
}
