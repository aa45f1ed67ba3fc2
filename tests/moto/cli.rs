//! The `keyrot` operator CLI against moto and the simulator, run as an operator runs it.

use std::process::{Output, Stdio};

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use serde_json::{Value, json};

use crate::providers::World;
use crate::support::{aws, unique};
use keyrot::config::STACK_OUTPUTS;
use keyrot::ports::SecretStore;

/// `keyrot` with the world's stand-ins: moto through the variables `scripts/moto.sh` exports, the
/// simulator through the base URLs.
fn command(world: &World) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_keyrot"));
    command
        .env("KEYROT_OPENAI_BASE_URL", &world.config.openai_base_url)
        .env(
            "KEYROT_ANTHROPIC_BASE_URL",
            &world.config.anthropic_base_url,
        )
        .env("KEYROT_ROTATOR_ARN", &world.moto.rotator_arn);
    command
}

/// Runs `command` with `args`, `stdin` piped in. Async, so that the simulator this test runs on the
/// same runtime keeps answering while the CLI waits for it.
async fn run(mut command: Command, args: &[&str], stdin: &str) -> Output {
    let mut child = command
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("keyrot runs");
    if let Some(mut input) = child.stdin.take() {
        input.write_all(stdin.as_bytes()).await.expect("stdin");
    }
    child.wait_with_output().await.expect("keyrot finishes")
}

async fn keyrot(world: &World, args: &[&str], stdin: &str, extra_env: &[(&str, &str)]) -> Output {
    let mut command = command(world);
    command.envs(extra_env.iter().copied());
    run(command, args, stdin).await
}

/// `keyrot` as on an operator's machine with none of the variables a stack's outputs stand in for.
fn command_without_keyrot_variables(world: &World) -> Command {
    let mut command = command(world);
    for (var, _) in STACK_OUTPUTS {
        command.env_remove(var);
    }
    command
}

/// A deployed stack, as far as the CLI can see one: its outputs.
fn create_stack(outputs: &[(&str, &str)]) -> String {
    let name = unique("stack").replace('/', "-");
    let template = json!({
        "Resources": {"Marker": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
        "Outputs": outputs.iter().map(|(key, value)| (key.to_string(), json!({"Value": value})))
            .collect::<serde_json::Map<_, _>>(),
    });
    aws(&[
        "cloudformation",
        "create-stack",
        "--stack-name",
        &name,
        "--template-body",
        &template.to_string(),
    ]);
    name
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test]
async fn onboard_rotate_with_wait_validate_and_status_work_end_to_end() {
    let world = World::new().await;
    let project = world.sim.openai_create_project();
    let (first_key, first_id) = world.sim.openai_create_user_key(&project);
    let admin = world.admin_secret(&world.sim.openai_admin_key()).await;
    let name = unique("cli");
    let out = keyrot(
        &world,
        &[
            "onboard",
            &name,
            "--provider",
            "openai",
            "--project-id",
            &project,
            "--admin-key-secret",
            &admin,
            "--api-key-id",
            &first_id,
            "--every-days",
            "30",
            "--grace-hours",
            "2",
        ],
        &first_key,
        &[],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        !text(&out).contains(&first_key[8..]),
        "the key is never printed"
    );
    let value = world
        .moto
        .value(&name, "AWSCURRENT", None)
        .await
        .expect("written");
    assert_eq!(
        (
            value["provider"].as_str(),
            value["openai"]["project_id"].as_str()
        ),
        (Some("openai"), Some(project.as_str()))
    );

    // `keyrot rotate --wait` follows the rotation while Secrets Manager (here: the test) runs the steps.
    let child = {
        let mut command = Command::new(env!("CARGO_BIN_EXE_keyrot"));
        command
            .args(["rotate", &name, "--wait", "--wait-seconds", "60"])
            .env("KEYROT_OPENAI_BASE_URL", &world.config.openai_base_url)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command.spawn().expect("rotate runs")
    };
    // The rotation's version is the empty placeholder rotate-secret creates (moto leaves onboard's
    // configuration test behind as a pending copy of the current value, which is not it).
    let mut token = None;
    for _ in 0..100 {
        if let Some(pending) = world.moto.version_of(&name, "AWSPENDING").await
            && world
                .moto
                .value(&name, "AWSPENDING", Some(&pending))
                .await
                .is_none()
        {
            token = Some(pending);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let token = token.expect("rotate-secret made a pending version");
    for step in ["createSecret", "setSecret", "testSecret", "finishSecret"] {
        world
            .step(step, &name, &token)
            .await
            .unwrap_or_else(|err| panic!("{step}: {err}"));
    }
    let out = child.wait_with_output().await.expect("rotate finishes");
    assert!(out.status.success(), "{}", text(&out));
    let shown = text(&out);
    assert!(
        shown.contains("finishSecret") && shown.contains("finished"),
        "{shown}"
    );

    let out = keyrot(&world, &["validate", &name, "--json"], "", &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).expect("--json parses");
    assert_eq!(report["provider"], "valid");
    let out = keyrot(
        &world,
        &["validate", &name, "--stage", "AWSPREVIOUS", "--json"],
        "",
        &[],
    )
    .await;
    let previous: Value = serde_json::from_slice(&out.stdout).expect("--json parses");
    assert_eq!(
        previous["provider"], "valid",
        "the old key works through its grace period"
    );

    let out = keyrot(&world, &["status", "--secret", &name, "--json"], "", &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    let rows: Value = serde_json::from_slice(&out.stdout).expect("--json parses");
    assert!(
        rows[0]["state"]
            .as_str()
            .is_some_and(|s| s.starts_with("GRACE")),
        "{rows}"
    );
    assert_eq!(rows[0]["provider"], "openai");

    let out = keyrot(&world, &["rollback", &name], "", &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        world.current_key(&name).await,
        first_key,
        "rolled back to the first key"
    );
}

#[tokio::test]
async fn refusals_say_why_exit_1_and_change_nothing() {
    let world = World::new().await;
    let missing = unique("missing");
    for args in [
        vec!["rollback", missing.as_str()],
        vec!["validate", missing.as_str()],
        vec!["repair", missing.as_str()],
    ] {
        let out = keyrot(&world, &args, "", &[]).await;
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", text(&out));
        assert!(
            text(&out).contains(&missing) || text(&out).contains("ResourceNotFound"),
            "{}",
            text(&out)
        );
    }

    // Onboarding with an admin key OpenAI refuses writes nothing.
    let project = world.sim.openai_create_project();
    let (key, _) = world.sim.openai_create_user_key(&project);
    let bad_admin = world.admin_secret("sk-admin-wrong").await;
    let name = unique("cli-bad-admin");
    let out = keyrot(
        &world,
        &[
            "onboard",
            &name,
            "--provider",
            "openai",
            "--project-id",
            &project,
            "--admin-key-secret",
            &bad_admin,
            "--every-days",
            "30",
        ],
        &key,
        &[],
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("openai.admin_key_secret"),
        "{}",
        text(&out)
    );
    assert!(
        world
            .moto
            .sm
            .describe_secret()
            .secret_id(&name)
            .send()
            .await
            .is_err(),
        "nothing was created"
    );

    // A key that fails validation is never staged.
    let (first, first_id) = world.sim.anthropic_create_key("first");
    let admin = world.admin_secret(&world.sim.anthropic_admin_key()).await;
    let secret = world
        .moto
        .create_secret(
            "cli-anthropic",
            &json!({"provider": "anthropic", "api_key": first, "key_id": first_id,
        "anthropic": {"admin_key_secret": admin}}),
            &[],
        )
        .await;
    let out = keyrot(
        &world,
        &["stage", &secret],
        "sk-ant-api03-not-a-real-key-000000000000000000AA",
        &[],
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("rejected"), "{}", text(&out));
    assert!(
        world
            .moto
            .version_of(&secret, "KEYROT_STAGED")
            .await
            .is_none()
    );
    let (staged, _) = world.sim.anthropic_create_key("second");
    let out = keyrot(&world, &["stage", &secret], &staged, &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        world
            .moto
            .version_of(&secret, "KEYROT_STAGED")
            .await
            .is_some()
    );

    // Rollback after the old key was revoked (grace 0) is refused.
    let (name, _, _) = world.openai_secret(&[("keyrot:grace-hours", "0")]).await;
    world.rotate(&name).await;
    let before = world.moto.labels(&name).await;
    let out = keyrot(&world, &["rollback", &name], "", &[]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("already revoked"), "{}", text(&out));
    assert_eq!(world.moto.labels(&name).await, before);

    let out = keyrot(&world, &["rotate"], "", &[]).await;
    assert_eq!(out.status.code(), Some(2), "usage errors exit 2");
}

#[tokio::test]
async fn status_lists_200_secrets_in_one_paginated_pass() {
    let world = World::new().await;
    let scope = unique("fleet");
    let prefix = format!("{}/", scope);
    for i in 0..200 {
        world
            .moto
            .sm
            .create_secret()
            .name(format!("{prefix}{i:03}"))
            .secret_string(
                json!({"provider": "generic", "api_key": format!("gk-fleetfleetfleet{i:05}")})
                    .to_string(),
            )
            .tags(
                aws_sdk_secretsmanager::types::Tag::builder()
                    .key("keyrot:grace-hours")
                    .value("24")
                    .build(),
            )
            .send()
            .await
            .expect("create");
    }
    // A secret just outside the prefix, which the name filter leaves out of the listing's pages.
    world
        .moto
        .sm
        .create_secret()
        .name(format!("{scope}-outside"))
        .secret_string(
            json!({"provider": "generic", "api_key": "gk-outsidetheprefix000000"}).to_string(),
        )
        .send()
        .await
        .expect("create");
    let listed = world
        .moto
        .rotator
        .store
        .list(Some(&prefix))
        .await
        .expect("ListSecrets");
    assert_eq!(
        listed.len(),
        200,
        "the listing holds the prefix's secrets only"
    );
    assert!(listed.iter().all(|secret| secret.name.starts_with(&prefix)));
    let recording = MotoRecording::start().await;
    let out = keyrot(
        &world,
        &["status", "--json"],
        "",
        &[("KEYROT_MANAGED_PREFIX", &prefix)],
    )
    .await;
    let requests = recording.stop().await;
    assert!(out.status.success(), "{}", text(&out));
    let rows: Value = serde_json::from_slice(&out.stdout).expect("--json parses");
    assert_eq!(rows.as_array().map(Vec::len), Some(200));
    // One paginated pass: the 200 secrets come in two pages of 100, each page asked for once.
    let pages: Vec<&RecordedRequest> = requests
        .iter()
        .filter(|r| r.target == "secretsmanager.ListSecrets" && r.body.contains(&prefix))
        .collect();
    assert_eq!(pages.len(), 2, "{pages:#?}");
    assert!(
        pages[1].body.contains("NextToken"),
        "the second page follows the first: {pages:#?}"
    );
    let out = keyrot(
        &world,
        &["report", "--month", "2026-11", "--format", "csv"],
        "",
        &[("KEYROT_MANAGED_PREFIX", &prefix)],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    let mut reader = csv::Reader::from_reader(out.stdout.as_slice());
    assert_eq!(reader.records().count(), 200);
    let out = keyrot(
        &world,
        &["report", "--month", "2026-11", "--json"],
        "",
        &[("KEYROT_MANAGED_PREFIX", &prefix)],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).expect("--json parses");
    assert_eq!(report["month"], "2026-11");
    assert_eq!(report["secrets"].as_array().map(Vec::len), Some(200));
    assert_eq!(report["secrets"][0]["provider"], "generic");
}

#[tokio::test]
async fn without_keyrot_variables_the_cli_finds_the_rotator_table_and_topic_from_the_stack() {
    let world = World::new().await;
    let stack = create_stack(&[
        ("RotatorArn", &world.moto.rotator_arn),
        ("TableName", &world.config.audit_table),
        ("TopicArn", &world.config.alert_topic_arn),
    ]);
    let name = unique("cli-stack");
    let out = run(
        command_without_keyrot_variables(&world),
        &[
            "--stack",
            &stack,
            "onboard",
            &name,
            "--provider",
            "generic",
            "--every-days",
            "30",
        ],
        "gk-onboardedbythestack000000000000",
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    let described = world
        .moto
        .sm
        .describe_secret()
        .secret_id(&name)
        .send()
        .await
        .expect("onboarded");
    assert_eq!(
        described.rotation_lambda_arn(),
        Some(world.moto.rotator_arn.as_str()),
        "rotation enabled with the stack's RotatorArn"
    );

    // The audit trail of a rotation, read through the table the stack names (KEYROT_STACK this time).
    world.rotate(&name).await;
    let mut audit = command_without_keyrot_variables(&world);
    audit.env("KEYROT_STACK", &stack);
    let out = run(audit, &["audit", "--secret", &name, "--json"], "").await;
    assert!(out.status.success(), "{}", text(&out));
    let events: Value = serde_json::from_slice(&out.stdout).expect("--json parses");
    let finished = events
        .as_array()
        .expect("a list of events")
        .iter()
        .filter(|event| event["action"] == "finishSecret" && event["outcome"] == "succeeded")
        .count();
    assert_eq!(finished, 1, "{events}");
}

#[tokio::test]
async fn with_no_rotator_named_anywhere_onboard_says_where_it_looked_and_writes_nothing() {
    let world = World::new().await;
    let absent_stack = unique("no-such-stack").replace('/', "-");
    let without_rotator = create_stack(&[("TableName", &world.config.audit_table)]);
    for (stack, why) in [
        (absent_stack.as_str(), "does not exist"),
        (without_rotator.as_str(), "has no output RotatorArn"),
    ] {
        let name = unique("cli-no-rotator");
        let mut onboard = command(&world);
        onboard.env_remove("KEYROT_ROTATOR_ARN");
        let out = run(
            onboard,
            &[
                "--stack",
                stack,
                "onboard",
                &name,
                "--provider",
                "generic",
                "--every-days",
                "30",
            ],
            "gk-nevereverwritten0000000000000000",
        )
        .await;
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        for expected in [
            name.as_str(),
            "--rotator-arn",
            "KEYROT_ROTATOR_ARN",
            stack,
            why,
        ] {
            assert!(
                text(&out).contains(expected),
                "{expected:?} in {}",
                text(&out)
            );
        }
        assert!(
            world
                .moto
                .sm
                .describe_secret()
                .secret_id(&name)
                .send()
                .await
                .is_err(),
            "nothing was created"
        );
    }

    // Without the variables and without a stack, any command names the variable it misses.
    let out = run(
        command_without_keyrot_variables(&world),
        &["--stack", &absent_stack, "status"],
        "",
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    for expected in ["KEYROT_AUDIT_TABLE", "--stack", absent_stack.as_str()] {
        assert!(
            text(&out).contains(expected),
            "{expected:?} in {}",
            text(&out)
        );
    }
}

/// A request moto received, as its recorder wrote it down.
#[derive(Debug)]
struct RecordedRequest {
    target: String,
    body: String,
}

/// moto's request recorder (`scripts/moto.sh` points it at a temporary file): what the CLI really sent.
/// Requests of tests running meanwhile are recorded too; callers pick theirs out by content.
struct MotoRecording {
    endpoint: String,
}

impl MotoRecording {
    async fn start() -> Self {
        let endpoint = std::env::var("AWS_ENDPOINT_URL").expect("AWS_ENDPOINT_URL");
        let http = reqwest::Client::new();
        for action in ["reset-recording", "start-recording"] {
            http.post(format!("{endpoint}/moto-api/recorder/{action}"))
                .send()
                .await
                .and_then(reqwest::Response::error_for_status)
                .unwrap_or_else(|err| panic!("{action}: {err}"));
        }
        MotoRecording { endpoint }
    }

    async fn stop(self) -> Vec<RecordedRequest> {
        let http = reqwest::Client::new();
        http.post(format!(
            "{}/moto-api/recorder/stop-recording",
            self.endpoint
        ))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .expect("stop-recording");
        let text = http
            .get(format!(
                "{}/moto-api/recorder/download-recording",
                self.endpoint
            ))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .expect("download-recording")
            .text()
            .await
            .expect("recording");
        text.lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .map(|entry| {
                let raw = entry["body"].as_str().unwrap_or_default();
                let body = if entry["body_encoded"].as_bool() == Some(true) {
                    use base64::Engine as _;
                    base64::engine::general_purpose::STANDARD
                        .decode(raw)
                        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
                        .unwrap_or_default()
                } else {
                    raw.to_owned()
                };
                RecordedRequest {
                    target: entry["headers"]["X-Amz-Target"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    body,
                }
            })
            .collect()
    }
}
