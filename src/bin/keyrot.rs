#![recursion_limit = "256"]
//! The operator CLI. Exit codes: 0 ok, 1 failure, 2 usage (clap's own), 3 still running (`rotate
//! --wait` stopped waiting).

use std::process::ExitCode;

use clap::Parser;
use keyrot::cli::{self, Cli};

#[tokio::main]
async fn main() -> ExitCode {
    // Diagnostics go to stderr so that --json and CSV output stay clean on stdout.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,aws_config=error")),
        )
        .init();
    let cli = Cli::parse();
    match cli::run(cli).await {
        Ok(code) => u8::try_from(code).map_or(ExitCode::FAILURE, ExitCode::from),
        Err(err) => {
            eprintln!("keyrot: {err}");
            ExitCode::FAILURE
        }
    }
}
