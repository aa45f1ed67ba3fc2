//! `keyrot-sim [--port N]`: runs the simulator as a process for the local demo.
//!
//! Prints exactly one JSON line on stdout (base URL, both admin keys, the
//! Vercel token and team, the Render token) so a script can read it, then
//! serves until SIGINT or SIGTERM.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;

use keyrot_sim::Simulator;
use serde::Serialize;

const USAGE: &str = "usage: keyrot-sim [--port N]";

#[tokio::main]
async fn main() -> ExitCode {
    let port = match parse_port(std::env::args().skip(1)) {
        Ok(Some(port)) => port,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("keyrot-sim: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };

    let simulator = match Simulator::start_on(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).await {
        Ok(simulator) => simulator,
        Err(e) => {
            eprintln!("keyrot-sim: cannot listen on 127.0.0.1:{port}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let shutdown = match shutdown_signal() {
        Ok(shutdown) => shutdown,
        Err(e) => {
            eprintln!("keyrot-sim: cannot listen for signals: {e}");
            return ExitCode::FAILURE;
        }
    };

    let ready = Ready {
        base_url: simulator.base_url(),
        openai_admin_key: simulator.openai_admin_key(),
        anthropic_admin_key: simulator.anthropic_admin_key(),
        vercel_token: simulator.vercel_token(),
        vercel_team_id: simulator.vercel_team_id(),
        render_token: simulator.render_token(),
    };
    if let Err(e) = print_line(&ready) {
        eprintln!("keyrot-sim: cannot write to stdout: {e}");
        return ExitCode::FAILURE;
    }

    shutdown.await;
    drop(simulator);
    ExitCode::SUCCESS
}

/// The one line a launching script reads; a struct so the keys keep this order.
#[derive(Serialize)]
struct Ready {
    base_url: String,
    openai_admin_key: String,
    anthropic_admin_key: String,
    vercel_token: String,
    vercel_team_id: String,
    render_token: String,
}

fn print_line(ready: &Ready) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    serde_json::to_writer(&mut stdout, ready)?;
    writeln!(stdout)?;
    // The reader is waiting for this line; it must go out now, not when a buffer fills.
    stdout.flush()
}

/// `Ok(None)` means help was asked for.
fn parse_port(mut args: impl Iterator<Item = String>) -> Result<Option<u16>, String> {
    let mut port = 0;
    while let Some(arg) = args.next() {
        let value = match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--port" => args.next().ok_or("--port needs a value")?,
            other => match other.strip_prefix("--port=") {
                Some(value) => value.to_owned(),
                None => return Err(format!("unexpected argument '{other}'")),
            },
        };
        port = value
            .parse()
            .map_err(|_| format!("invalid port '{value}'"))?;
    }
    Ok(Some(port))
}

/// Resolves on SIGINT or SIGTERM. The handlers are registered when this is
/// called, before the ready line goes out, so a signal sent as soon as the
/// line is read is never missed.
#[cfg(unix)]
fn shutdown_signal() -> std::io::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}

#[cfg(not(unix))]
fn shutdown_signal() -> std::io::Result<impl Future<Output = ()>> {
    Ok(async {
        // If Ctrl-C cannot be watched there is nothing better to do than stop.
        let _ = tokio::signal::ctrl_c().await;
    })
}

#[cfg(test)]
mod tests {
    use super::parse_port;

    fn parse(args: &[&str]) -> Result<Option<u16>, String> {
        parse_port(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn parses_port_forms() {
        assert_eq!(parse(&[]), Ok(Some(0)));
        assert_eq!(parse(&["--port", "8080"]), Ok(Some(8080)));
        assert_eq!(parse(&["--port=9090"]), Ok(Some(9090)));
        assert_eq!(parse(&["--help"]), Ok(None));
        assert!(parse(&["--port"]).is_err());
        assert!(parse(&["--port", "x"]).is_err());
        assert!(parse(&["--verbose"]).is_err());
    }
}
