#![recursion_limit = "256"]
//! The operator CLI. Exit codes: 0 ok, 1 failure, 2 usage (clap's own).

use std::process::ExitCode;

use clap::Parser;
use keyrot::cli::{self, Cli};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("keyrot: {err}");
            ExitCode::FAILURE
        }
    }
}
