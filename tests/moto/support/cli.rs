//! The `keyrot` binary run as an operator runs it, against the world's stand-ins: moto through the
//! variables `scripts/moto.sh` exports, the simulator through the base URLs. A test reads
//! `cli(&world).args(["status", "--json"]).run().await.success()`.

use std::ffi::OsStr;
use std::process::{Output, Stdio};

use keyrot::config::STACK_OUTPUTS;
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use super::World;

/// One `keyrot` command line, built up before it runs.
pub struct Cli {
    command: Command,
    stdin: String,
    /// Run under a pseudo-terminal ([`Cli::on_a_terminal`]).
    terminal: bool,
}

/// `keyrot` with the world's stand-ins.
pub fn cli(world: &World) -> Cli {
    let mut command = Command::new(env!("CARGO_BIN_EXE_keyrot"));
    command
        .env("KEYROT_OPENAI_BASE_URL", &world.config.openai_base_url)
        .env(
            "KEYROT_ANTHROPIC_BASE_URL",
            &world.config.anthropic_base_url,
        )
        .env("KEYROT_VERCEL_BASE_URL", &world.config.vercel_base_url)
        .env("KEYROT_RENDER_BASE_URL", &world.config.render_base_url)
        .env("KEYROT_STRIPE_BASE_URL", &world.config.stripe_base_url)
        .env("KEYROT_GITHUB_BASE_URL", &world.config.github_base_url)
        .env("KEYROT_ROTATOR_ARN", &world.moto.rotator_arn);
    Cli {
        command,
        stdin: String::new(),
        terminal: false,
    }
}

impl Cli {
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.command.arg(arg);
        self
    }

    pub fn args(mut self, args: impl IntoIterator<Item = impl AsRef<OsStr>>) -> Self {
        self.command.args(args);
        self
    }

    /// `--name value`.
    pub fn flag(self, name: &str, value: impl AsRef<OsStr>) -> Self {
        self.arg(name).arg(value)
    }

    /// What the command reads on standard input (a key, for onboard and stage).
    pub fn stdin(mut self, text: &str) -> Self {
        text.clone_into(&mut self.stdin);
        self
    }

    pub fn env(mut self, name: &str, value: impl AsRef<OsStr>) -> Self {
        self.command.env(name, value);
        self
    }

    pub fn env_remove(mut self, name: &str) -> Self {
        self.command.env_remove(name);
        self
    }

    pub fn envs<'a>(mut self, vars: impl IntoIterator<Item = &'a (&'a str, &'a str)>) -> Self {
        self.command.envs(vars.into_iter().copied());
        self
    }

    /// As on an operator's machine with none of the variables a stack's outputs stand in for.
    pub fn without_keyrot_variables(mut self) -> Self {
        for (var, _) in STACK_OUTPUTS {
            self.command.env_remove(var);
        }
        self
    }

    /// Runs it with a terminal (a pseudo-terminal, through util-linux `script`) as its standard input
    /// and output, as a person at a shell runs it, with nobody typing.
    pub fn on_a_terminal(mut self) -> Self {
        let std = self.command.as_std();
        let line = std::iter::once(std.get_program())
            .chain(std.get_args())
            .map(|part| format!("'{}'", part.to_string_lossy().replace('\'', "'\\''")))
            .collect::<Vec<_>>()
            .join(" ");
        let mut command = Command::new("script");
        command.args(["-qec", &line, "/dev/null"]);
        for (name, value) in std.get_envs() {
            match value {
                Some(value) => command.env(name, value),
                None => command.env_remove(name),
            };
        }
        self.command = command;
        self.terminal = true;
        self
    }

    /// Runs it to its end. Async, so that the simulator this test runs on the same runtime keeps
    /// answering while the CLI waits for it.
    pub async fn run(mut self) -> Ran {
        let mut child = self
            .command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("keyrot runs");
        if let Some(mut input) = child.stdin.take() {
            // At a terminal, what is typed goes in once the command waits for it: a prompt that
            // turns echo off flushes whatever was typed before (as a person's terminal would).
            if self.terminal {
                tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
            }
            // A command that exits before reading (a usage error) closes the pipe: no failure here.
            match input.write_all(self.stdin.as_bytes()).await {
                Err(err) if err.kind() != std::io::ErrorKind::BrokenPipe => panic!("stdin: {err}"),
                _ => {}
            }
        }
        // A command waiting at a terminal for what nobody types would hang the suite: it fails.
        let waited = std::time::Duration::from_secs(if self.terminal { 30 } else { 300 });
        let output = tokio::time::timeout(waited, child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("keyrot did not finish within {} s", waited.as_secs()));
        Ran(output.expect("keyrot finishes"))
    }
}

/// What a `keyrot` command did; derefs to its [`Output`].
pub struct Ran(pub Output);

impl std::ops::Deref for Ran {
    type Target = Output;

    fn deref(&self) -> &Output {
        &self.0
    }
}

impl Ran {
    /// Standard output and standard error, one after the other.
    pub fn text(&self) -> String {
        format!(
            "{}{}",
            String::from_utf8_lossy(&self.0.stdout),
            String::from_utf8_lossy(&self.0.stderr)
        )
    }

    pub fn code(&self) -> Option<i32> {
        self.0.status.code()
    }

    /// Fails unless the command exited 0.
    pub fn success(self) -> Self {
        assert!(self.0.status.success(), "{}", self.text());
        self
    }

    /// Fails unless the command exited with `code`.
    pub fn exits_with(&self, code: i32) -> &Self {
        assert_eq!(self.code(), Some(code), "{}", self.text());
        self
    }

    /// Fails unless the output says every one of `expected`.
    pub fn says(&self, expected: &[&str]) -> &Self {
        let said = self.text();
        for phrase in expected {
            assert!(said.contains(phrase), "{phrase:?} in {said}");
        }
        self
    }

    /// Standard output, parsed as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.0.stdout)
            .unwrap_or_else(|err| panic!("JSON on stdout ({err}): {}", self.text()))
    }
}
