//! The `keyrot` operator CLI against moto and the simulator, run as an operator runs it.

use std::process::{Output, Stdio};

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use serde_json::{Value, json};

use crate::providers::World;
use crate::support::unique;

/// Runs `keyrot` with the world's stand-ins, `stdin` piped in. Async, so that the simulator this test
/// runs on the same runtime keeps answering while the CLI waits for it.
async fn keyrot(world: &World, args: &[&str], stdin: &str, extra_env: &[(&str, &str)]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_keyrot"))
        .args(args)
        .env("KEYROT_OPENAI_BASE_URL", &world.config.openai_base_url)
        .env(
            "KEYROT_ANTHROPIC_BASE_URL",
            &world.config.anthropic_base_url,
        )
        .env("KEYROT_ROTATOR_ARN", &world.moto.rotator_arn)
        .envs(extra_env.iter().copied())
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
    let out = keyrot(
        &world,
        &["status", "--json"],
        "",
        &[("KEYROT_MANAGED_PREFIX", &prefix)],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    let rows: Value = serde_json::from_slice(&out.stdout).expect("--json parses");
    assert_eq!(rows.as_array().map(Vec::len), Some(200));
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
}
