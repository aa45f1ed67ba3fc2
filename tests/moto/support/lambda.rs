//! The real `keyrot-rotator` binary run as Lambda runs it: a process that takes its work from a
//! Runtime API ([`RuntimeApi`]), which a test can kill with SIGKILL at any moment and start again,
//! its clock moved on (the `sim-clock` feature's `KEYROT_CLOCK_OFFSET_SECS`), as a new execution
//! environment after a timeout would be.

use std::process::Stdio;

use keyrot::config::Config;
use keyrot_sim::{Outcome, RuntimeApi};
use serde_json::Value;
use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};

use super::World;

/// How long an invocation may run, as the function's timeout in template.yaml.
const TIMEOUT: chrono::Duration = chrono::Duration::minutes(5);

pub struct Function {
    api: RuntimeApi,
    env: Vec<(String, String)>,
    process: Option<Child>,
    /// How far the function's clock runs ahead of the system's.
    offset: chrono::Duration,
    /// Processes started, the first included.
    pub starts: usize,
}

impl Function {
    /// The rotator on `config` (its base URLs), talking to AWS at `aws_endpoint`. Not yet started.
    pub async fn rotator(world: &World, config: &Config, aws_endpoint: &str) -> Function {
        let arn = world.moto.rotator_arn.clone();
        let name = arn
            .rsplit(':')
            .next()
            .unwrap_or("keyrot-rotator")
            .to_owned();
        let api = RuntimeApi::start(&arn).await.expect("runtime API");
        let env = [
            ("AWS_LAMBDA_RUNTIME_API", api.address()),
            ("AWS_LAMBDA_FUNCTION_NAME", name.clone()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256".to_owned()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
            (
                "AWS_LAMBDA_LOG_STREAM_NAME",
                "2026/12/02/[$LATEST]it".to_owned(),
            ),
            ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}")),
            ("AWS_ENDPOINT_URL", aws_endpoint.to_owned()),
            ("KEYROT_OPENAI_BASE_URL", config.openai_base_url.clone()),
            (
                "KEYROT_ANTHROPIC_BASE_URL",
                config.anthropic_base_url.clone(),
            ),
            ("KEYROT_VERCEL_BASE_URL", config.vercel_base_url.clone()),
            ("KEYROT_RENDER_BASE_URL", config.render_base_url.clone()),
            ("KEYROT_STRIPE_BASE_URL", config.stripe_base_url.clone()),
            ("KEYROT_GITHUB_BASE_URL", config.github_base_url.clone()),
            ("KEYROT_ROTATOR_ARN", arn),
            // Quick polls of the simulator's builds (read only with the sim-clock feature).
            ("KEYROT_DEPLOY_POLL_MS", "50".to_owned()),
            ("RUST_LOG", "info,keyrot=debug".to_owned()),
        ];
        Function {
            api,
            env: env.map(|(k, v)| (k.to_owned(), v)).to_vec(),
            process: None,
            offset: chrono::Duration::zero(),
            starts: 0,
        }
    }

    /// Starts a new process (killing none: see [`Self::kill`]) and waits until it asks for work.
    pub async fn start(&mut self) {
        let mut command = Command::new(env!("CARGO_BIN_EXE_keyrot-rotator"));
        command
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env(
                "KEYROT_CLOCK_OFFSET_SECS",
                self.offset.num_seconds().to_string(),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().expect("keyrot-rotator starts");
        if let Some(stdout) = child.stdout.take() {
            tokio::spawn(keep_logs(stdout));
        }
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(keep_logs(stderr));
        }
        self.process = Some(child);
        self.starts += 1;
        tokio::time::timeout(std::time::Duration::from_secs(30), self.api.until_polled())
            .await
            .expect("keyrot-rotator asks the runtime API for work within 30 s");
    }

    /// Whether a process is running.
    pub fn running(&self) -> bool {
        self.process.is_some()
    }

    /// SIGKILL, as Lambda ends an invocation at its deadline, and waits for the process to go.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.process.take() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }

    /// Moves the clock of the processes started from now on.
    pub fn advance(&mut self, by: chrono::Duration) {
        self.offset += by;
    }

    /// One invocation with `event`, its deadline [`TIMEOUT`] away on the function's clock.
    pub async fn invoke(&self, event: &Value) -> Outcome {
        let deadline = chrono::Utc::now() + self.offset + TIMEOUT;
        self.api.invoke(event, deadline.timestamp_millis()).await
    }
}

/// Adds what the process writes to the test's captured logs, which the invariant scans for keys.
async fn keep_logs(mut output: impl tokio::io::AsyncRead + Unpin) {
    let mut buffer = [0u8; 8192];
    while let Ok(n) = output.read(&mut buffer).await {
        if n == 0 {
            break;
        }
        super::append_logs(&buffer[..n]);
    }
}
