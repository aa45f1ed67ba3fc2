//! The `keyrot` operator CLI against moto and the simulator, run as an operator runs it.

use std::process::Stdio;

use tokio::process::Command;

use serde_json::{Value, json};

use crate::support::cli::{Ran, cli};
use crate::support::{World, assert_no_key, aws, unique};
use keyrot::ports::SecretStore;
use keyrot_sim::{Fault, FaultKind};

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

/// Whether the secret exists: what a refusal must not have changed.
async fn exists(world: &World, name: &str) -> bool {
    world
        .moto
        .sm
        .describe_secret()
        .secret_id(name)
        .send()
        .await
        .is_ok()
}

#[tokio::test]
async fn onboard_rotate_with_wait_validate_and_status_work_end_to_end() {
    let world = World::new().await;
    let project = world.sim.openai_create_project();
    let (first_key, first_id) = world.sim.openai_create_user_key(&project);
    let admin = world.admin_secret(&world.sim.openai_admin_key()).await;
    let name = unique("cli");
    let out = cli(&world)
        .args(["onboard", &name])
        .flag("--provider", "openai")
        .flag("--project-id", &project)
        .flag("--admin-key-secret", &admin)
        .flag("--api-key-id", &first_id)
        .flag("--every-days", "30")
        .flag("--grace-hours", "2")
        .stdin(&first_key)
        .run()
        .await
        .success();
    assert!(
        !out.text().contains(&first_key[8..]),
        "the key is never printed"
    );
    // moto's gap: a RotateImmediately=false configuration test leaves its AWSPENDING version behind
    // (AWS removes it once testSecret ran). Play AWS's part, or every later rotation would see a
    // rotation in progress.
    clear_configuration_test(&world, &name).await;
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
    // The rotation's version is the empty placeholder rotate-secret creates.
    let token = world.moto.placeholder_token(&name).await;
    for step in ["createSecret", "setSecret", "testSecret", "finishSecret"] {
        world
            .step(step, &name, &token)
            .await
            .unwrap_or_else(|err| panic!("{step}: {err}"));
    }
    let out = Ran(child.wait_with_output().await.expect("rotate finishes"));
    assert!(out.status.success(), "{}", out.text());
    let shown = out.text();
    assert!(
        shown.contains("finishSecret") && shown.contains("finished"),
        "{shown}"
    );

    let out = cli(&world)
        .args(["validate", &name, "--json"])
        .run()
        .await
        .success();
    let report = out.json();
    assert_eq!(report["provider"], "valid");
    let out = cli(&world)
        .args(["validate", &name, "--stage", "AWSPREVIOUS", "--json"])
        .run()
        .await;
    let previous = out.json();
    assert_eq!(
        previous["provider"], "valid",
        "the old key works through its grace period"
    );

    let out = cli(&world)
        .args(["status", "--secret", &name, "--json"])
        .run()
        .await
        .success();
    let rows = out.json();
    assert!(
        rows[0]["state"]
            .as_str()
            .is_some_and(|s| s.starts_with("GRACE")),
        "{rows}"
    );
    assert_eq!(rows[0]["provider"], "openai");

    cli(&world).args(["rollback", &name]).run().await.success();
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
        let out = cli(&world).args(&args).run().await;
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", out.text());
        for expected in [missing.as_str(), "no secret of this name", "fix:"] {
            assert!(
                out.text().contains(expected),
                "{args:?}: {expected:?} in {}",
                out.text()
            );
        }
    }

    // Onboarding with an admin key OpenAI refuses writes nothing.
    let project = world.sim.openai_create_project();
    let (key, _) = world.sim.openai_create_user_key(&project);
    let bad_admin = world.admin_secret("sk-admin-wrong").await;
    let name = unique("cli-bad-admin");
    let out = cli(&world)
        .args(["onboard", &name])
        .flag("--provider", "openai")
        .flag("--project-id", &project)
        .flag("--admin-key-secret", &bad_admin)
        .flag("--every-days", "30")
        .stdin(&key)
        .run()
        .await;
    out.exits_with(1);
    assert!(
        out.text().contains("openai.admin_key_secret"),
        "{}",
        out.text()
    );
    assert!(!exists(&world, &name).await, "nothing was created");

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
    let out = cli(&world)
        .args(["stage", &secret])
        .stdin("sk-ant-api03-not-a-real-key-000000000000000000AA")
        .run()
        .await;
    out.exits_with(1);
    out.says(&["rejected", "fix:", "keyrot stage"]);
    assert!(
        world
            .moto
            .version_of(&secret, "KEYROT_STAGED")
            .await
            .is_none()
    );
    let (staged, _) = world.sim.anthropic_create_key("second");
    cli(&world)
        .args(["stage", &secret])
        .stdin(&staged)
        .run()
        .await
        .success();
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
    let out = cli(&world).args(["rollback", &name]).run().await;
    out.exits_with(1);
    out.says(&["already revoked", "fix:", "keyrot rotate"]);
    assert_eq!(world.moto.labels(&name).await, before);

    let out = cli(&world).args(["rotate"]).run().await;
    assert_eq!(out.status.code(), Some(2), "usage errors exit 2");
}

/// What Secrets Manager does after a RotateImmediately=false configuration test and moto does not:
/// the test's AWSPENDING version goes.
pub(crate) async fn clear_configuration_test(world: &World, name: &str) {
    world.moto.clear_pending(name).await;
}

#[tokio::test]
async fn an_emergency_rotation_sets_the_one_shot_tags_and_says_the_old_key_dies_now() {
    let world = World::new().await;
    let (name, _, _) = world.openai_secret(&[("keyrot:grace-hours", "24")]).await;
    // A first rotation, as the schedule runs it, configures rotation in moto.
    world.rotate(&name).await;
    let old_key = world.current_key(&name).await;

    let out = cli(&world)
        .args(["rotate", &name, "--emergency"])
        .run()
        .await
        .success();
    assert!(
        out.text().contains("the old key dies now"),
        "{}",
        out.text()
    );
    let set = world.moto.tags(&name).await;
    assert_eq!(
        set.get("keyrot:trigger").map(String::as_str),
        Some("emergency")
    );
    assert_eq!(
        set.get("keyrot:next-grace-hours").map(String::as_str),
        Some("0")
    );
    assert_eq!(
        set.get("keyrot:grace-hours").map(String::as_str),
        Some("24"),
        "the permanent policy is untouched"
    );
    let started = world
        .moto
        .items(&name)
        .await
        .into_iter()
        .find(|item| item.get("action").map(String::as_str) == Some("rotate"))
        .expect("keyrot rotate is audited");
    assert_eq!(started["trigger"], "emergency");
    assert!(!started["actor"].is_empty(), "{started:?}");

    let token = world
        .moto
        .version_of(&name, "AWSPENDING")
        .await
        .expect("the rotation's version");
    for step in ["createSecret", "setSecret", "testSecret", "finishSecret"] {
        world
            .step(step, &name, &token)
            .await
            .unwrap_or_else(|err| panic!("{step}: {err}"));
    }
    assert!(
        !world.sim.openai_key_works(&old_key),
        "the old key was revoked as the rotation finished"
    );
    let set = world.moto.tags(&name).await;
    assert!(
        !set.contains_key("keyrot:trigger") && !set.contains_key("keyrot:next-grace-hours"),
        "{set:?}"
    );
}

#[tokio::test]
async fn a_refused_rotate_leaves_the_tags_and_labels_as_they_were() {
    let world = World::new().await;
    let (name, _, _) = world
        .openai_secret(&[("keyrot:next-grace-hours", "5")])
        .await;
    world.rotate(&name).await;
    // A rotation that started and never finished: AWSPENDING on a version that is not AWSCURRENT.
    world.moto.rotate_secret(&name, true).await;
    let (tags_before, labels_before) =
        (world.moto.tags(&name).await, world.moto.labels(&name).await);
    let out = cli(&world)
        .args(["rotate", &name, "--emergency"])
        .run()
        .await;
    out.exits_with(1);
    out.says(&[
        "in progress or stuck",
        "keyrot status",
        &format!("keyrot repair {name}"),
    ]);
    assert_eq!(world.moto.tags(&name).await, tags_before);
    assert_eq!(world.moto.labels(&name).await, labels_before);

    // A secret whose rotation was never configured.
    let (name, _, _) = world.openai_secret(&[]).await;
    let out = cli(&world).args(["rotate", &name]).run().await;
    out.exits_with(1);
    assert!(out.text().contains("not enabled"), "{}", out.text());
    assert!(world.moto.tags(&name).await.is_empty());
}

#[tokio::test]
async fn repair_clears_a_stuck_rotation_after_giving_the_targets_the_current_key_back() {
    let world = World::new().await;
    let (name, first_key, vercel, render) = world.openai_secret_with_targets(&[]).await;
    let token = world.moto.rotate_secret(&name, true).await;
    for step in ["createSecret", "setSecret"] {
        world
            .step(step, &name, &token)
            .await
            .unwrap_or_else(|err| panic!("{step}: {err}"));
    }
    // The rotation dies here: both targets hold the pending key, AWSPENDING stays.
    let pending_key = world
        .moto
        .value(&name, "AWSPENDING", Some(&token))
        .await
        .expect("pending")["api_key"]
        .as_str()
        .expect("api_key")
        .to_owned();
    assert_eq!(
        world.sim.render_env_value(&render, "OPENAI_API_KEY"),
        Some(pending_key.clone())
    );

    // Minutes old, it is a rotation in progress: refused without --force.
    let before = world.moto.labels(&name).await;
    let out = cli(&world).args(["repair", &name]).run().await;
    out.exits_with(1);
    out.says(&["in progress", "--force"]);
    assert_eq!(world.moto.labels(&name).await, before);

    // Targets first: while Vercel refuses the write, the label stays, so nothing is cleared halfway.
    world.sim.inject(Fault {
        method: Some("POST".into()),
        path_prefix: format!("/v10/projects/{vercel}/env"),
        nth: 1,
        times: 100,
        kind: FaultKind::Status {
            code: 403,
            retry_after_secs: None,
        },
    });
    let out = cli(&world).args(["repair", &name, "--force"]).run().await;
    out.exits_with(1);
    assert_eq!(
        world.moto.version_of(&name, "AWSPENDING").await.as_deref(),
        Some(token.as_str()),
        "the label goes only after the targets"
    );
    world.sim.clear_faults();

    let out = cli(&world)
        .args(["repair", &name, "--force"])
        .run()
        .await
        .success();
    assert!(
        out.text().contains("Targets given the current key back"),
        "{}",
        out.text()
    );
    assert_eq!(world.moto.version_of(&name, "AWSPENDING").await, None);
    assert_eq!(
        world
            .sim
            .vercel_served_value(&vercel, "production", "OPENAI_API_KEY"),
        Some(first_key.clone())
    );
    assert_eq!(
        world.sim.render_served_value(&render, "OPENAI_API_KEY"),
        Some(first_key.clone())
    );
    let items = world.moto.items(&name).await;
    assert!(
        items
            .iter()
            .any(|item| item["sk"] == format!("REVOKE#{token}")),
        "the minted pending key is scheduled for revocation"
    );
    assert!(
        world
            .moto
            .audit_trail(&name)
            .await
            .contains(&("repair".to_owned(), "succeeded".to_owned()))
    );
    // The next rotation can start.
    world.rotate(&name).await;
}

#[tokio::test]
async fn orphans_are_listed_then_deleted_each_audited_going_on_past_a_failure() {
    let world = World::new().await;
    let (name, project, _) = world.openai_secret(&[]).await;
    // Two createSecrets whose rotations were then abandoned without a trace: their service accounts
    // are known to no version and no revocation.
    for _ in 0..2 {
        let token = world.moto.rotate_secret(&name, true).await;
        world
            .step("createSecret", &name, &token)
            .await
            .expect("createSecret");
        world
            .moto
            .sm
            .update_secret_version_stage()
            .secret_id(&name)
            .version_stage("AWSPENDING")
            .remove_from_version_id(&token)
            .send()
            .await
            .expect("drop the label");
    }
    let accounts = world.sim.openai_service_accounts(&project);
    assert_eq!(accounts.len(), 2);
    let hours_ago = chrono::Utc::now().timestamp() - 2 * 3600;
    for account in &accounts {
        world.sim.openai_set_created_at(&account.id, hours_ago);
    }
    let only_this = [("KEYROT_MANAGED_PREFIX", name.as_str())];

    let out = cli(&world)
        .args(["orphans", "--json"])
        .envs(&only_this)
        .run()
        .await
        .success();
    let listed = out.json();
    assert_eq!(listed.as_array().map(Vec::len), Some(2), "{listed}");
    assert!(
        listed
            .as_array()
            .into_iter()
            .flatten()
            .all(|o| o["status"] == "orphaned")
    );
    assert_eq!(
        world.sim.openai_service_accounts(&project).len(),
        2,
        "listing deletes nothing"
    );

    // The first deletion is refused; the second is still attempted.
    world.sim.inject(Fault {
        method: Some("DELETE".into()),
        path_prefix: format!("/v1/organization/projects/{project}/service_accounts/"),
        nth: 1,
        times: 1,
        kind: FaultKind::Status {
            code: 403,
            retry_after_secs: None,
        },
    });
    let out = cli(&world)
        .args(["orphans", "--delete"])
        .envs(&only_this)
        .run()
        .await;
    out.exits_with(1);
    let shown = out.text();
    assert!(
        shown.contains("FAILED") && shown.contains("deleted"),
        "{shown}"
    );
    assert_eq!(world.sim.openai_service_accounts(&project).len(), 1);
    let trail = world.moto.audit_trail(&name).await;
    for outcome in ["failed", "succeeded"] {
        assert!(
            trail.contains(&("revoke".to_owned(), outcome.to_owned())),
            "{outcome}: {trail:?}"
        );
    }

    let out = cli(&world)
        .args(["orphans", "--delete", "--json"])
        .envs(&only_this)
        .run()
        .await
        .success();
    let deleted = out.json();
    assert_eq!(deleted.as_array().map(Vec::len), Some(1), "{deleted}");
    assert_eq!(deleted[0]["status"], "deleted");
    assert!(world.sim.openai_service_accounts(&project).is_empty());
}

#[tokio::test]
async fn onboard_refuses_bad_values_and_a_refused_target_token_before_writing_anything() {
    let world = World::new().await;
    for bad in [
        ["--every-days", "0"],
        ["--schedule", "every month"],
        ["--grace-hours", "-1"],
        ["--vercel", "prj_without_env_key"],
    ] {
        let name = unique("cli-bad-value");
        let mut args = vec!["onboard", name.as_str(), "--provider", "generic"];
        args.extend_from_slice(&bad);
        if bad[0] != "--every-days" && bad[0] != "--schedule" {
            args.extend_from_slice(&["--every-days", "30"]);
        }
        let out = cli(&world)
            .args(args)
            .stdin("gk-neverwrittenneverwritten0000")
            .run()
            .await;
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {}", out.text());
        assert!(!exists(&world, &name).await, "{bad:?}: nothing created");
    }

    let vercel = world.sim.vercel_create_project("web");
    let bad_token = world.admin_secret("vcp_not_the_token").await;
    let name = unique("cli-bad-token");
    let target = format!("{vercel}:API_KEY");
    let out = cli(&world)
        .args(["onboard", &name])
        .flag("--provider", "generic")
        .flag("--vercel", &target)
        .flag("--vercel-team", world.sim.vercel_team_id())
        .flag("--vercel-token-secret", &bad_token)
        .flag("--every-days", "30")
        .stdin("gk-neverwrittenneverwritten0001")
        .run()
        .await;
    out.exits_with(1);
    assert!(out.text().contains(&bad_token), "{}", out.text());
    assert!(!exists(&world, &name).await, "nothing created");
}

/// The AWSCURRENT value, parsed.
fn current_value(name: &str) -> Value {
    let out = aws(&[
        "secretsmanager",
        "get-secret-value",
        "--secret-id",
        name,
        "--version-stage",
        "AWSCURRENT",
    ]);
    serde_json::from_str(out["SecretString"].as_str().expect("a string")).expect("JSON")
}

#[tokio::test]
async fn onboard_over_an_existing_secret_keeps_what_it_does_not_set_and_waits_for_a_rotation() {
    let world = World::new().await;
    let name = unique("cli-existing");
    let before = json!({"provider": "generic", "api_key": "gk-before-onboard-0000000000000",
        "owner": "payments-team", "generic": {"length": 40, "runbook": "wiki/keys"}});
    aws(&[
        "secretsmanager",
        "create-secret",
        "--name",
        &name,
        "--secret-string",
        &before.to_string(),
    ]);
    let onboard = [
        "onboard",
        name.as_str(),
        "--provider",
        "generic",
        "--prefix",
        "gk_",
        "--every-days",
        "30",
    ];
    let out = cli(&world)
        .args(onboard)
        .stdin("gk-after-onboard-00000000000000")
        .run()
        .await
        .success();
    out.says(&["Updated"]);
    let after = current_value(&name);
    assert_eq!(after["api_key"], "gk-after-onboard-00000000000000");
    assert_eq!(after["owner"], "payments-team", "{after}");
    assert_eq!(
        after["generic"],
        json!({"length": 40, "runbook": "wiki/keys", "prefix": "gk_"})
    );

    // A rotation under way: its pending version holds a key of its own, which finishing would promote
    // over an onboarded one. Onboard refuses, and the value stays.
    clear_configuration_test(&world, &name).await;
    aws(&[
        "secretsmanager",
        "put-secret-value",
        "--secret-id",
        &name,
        "--secret-string",
        &json!({"provider": "generic", "api_key": "gk-pending-rotation-00000000000"}).to_string(),
        "--version-stages",
        "AWSPENDING",
    ]);
    let out = cli(&world)
        .args(onboard)
        .stdin("gk-never-onboarded-000000000000")
        .run()
        .await;
    out.exits_with(1);
    out.says(&["AWSPENDING", "rotation is under way", "keyrot repair"]);
    assert_eq!(current_value(&name), after, "nothing changed");
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
        .ports
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
    let out = cli(&world)
        .args(["status", "--json"])
        .env("KEYROT_MANAGED_PREFIX", &prefix)
        .run()
        .await;
    let requests = recording.stop().await;
    assert!(out.status.success(), "{}", out.text());
    let rows = out.json();
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
    let out = cli(&world)
        .args(["report", "--month", "2026-11", "--format", "csv"])
        .env("KEYROT_MANAGED_PREFIX", &prefix)
        .run()
        .await
        .success();
    let mut reader = csv::Reader::from_reader(out.stdout.as_slice());
    assert_eq!(reader.records().count(), 200);
    let out = cli(&world)
        .args(["report", "--month", "2026-11", "--json"])
        .env("KEYROT_MANAGED_PREFIX", &prefix)
        .run()
        .await
        .success();
    let report = out.json();
    assert_eq!(report["month"], "2026-11");
    assert_eq!(report["secrets"].as_array().map(Vec::len), Some(200));
    assert_eq!(report["secrets"][0]["provider"], "generic");
}

#[tokio::test]
async fn without_keyrot_variables_the_cli_finds_the_rotator_table_and_topic_from_the_stack() {
    let world = World::new().await;
    let name = unique("cli-stack");
    let stack = create_stack(&[
        ("RotatorArn", &world.moto.rotator_arn),
        ("TableName", &world.config.audit_table),
        ("EventsTableName", &world.config.events_table),
        ("TopicArn", &world.config.alert_topic_arn),
        ("ManagedPrefix", &name),
        ("AdminPrefix", "keyrot-admin/"),
        ("DefaultGraceInHours", "24"),
    ]);
    cli(&world)
        .without_keyrot_variables()
        .args([
            "--stack",
            &stack,
            "onboard",
            &name,
            "--provider",
            "generic",
            "--every-days",
            "30",
        ])
        .stdin("gk-onboardedbythestack000000000000")
        .run()
        .await
        .success();
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

    // The stack's ManagedPrefix scopes the fleet as it scopes the grace keeper's: this secret only.
    let out = cli(&world)
        .without_keyrot_variables()
        .args(["--stack", &stack, "status", "--json"])
        .run()
        .await
        .success();
    let rows = out.json();
    let names: Vec<&str> = rows
        .as_array()
        .expect("rows")
        .iter()
        .filter_map(|row| row["secret"].as_str())
        .collect();
    assert_eq!(names, [name.as_str()]);

    // The audit trail of a rotation, read through the table the stack names (KEYROT_STACK this time).
    clear_configuration_test(&world, &name).await;
    world.rotate(&name).await;
    let out = cli(&world)
        .without_keyrot_variables()
        .env("KEYROT_STACK", &stack)
        .args(["audit", "--secret", &name, "--json"])
        .run()
        .await
        .success();
    let events = out.json();
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
    let without_rotator = create_stack(&[
        ("TableName", &world.config.audit_table),
        ("EventsTableName", &world.config.events_table),
    ]);
    for (stack, why) in [
        (absent_stack.as_str(), "does not exist"),
        (without_rotator.as_str(), "has no output RotatorArn"),
    ] {
        let name = unique("cli-no-rotator");
        let out = cli(&world)
            .env_remove("KEYROT_ROTATOR_ARN")
            .args([
                "--stack",
                stack,
                "onboard",
                &name,
                "--provider",
                "generic",
                "--every-days",
                "30",
            ])
            .stdin("gk-nevereverwritten0000000000000000")
            .run()
            .await;
        out.exits_with(1);
        out.says(&[
            name.as_str(),
            "--rotator-arn",
            "KEYROT_ROTATOR_ARN",
            stack,
            why,
        ]);
        assert!(!exists(&world, &name).await, "nothing was created");
    }

    // Without the variables and without a stack, any command names the variable it misses.
    let out = cli(&world)
        .without_keyrot_variables()
        .args(["--stack", &absent_stack, "status"])
        .run()
        .await;
    out.exits_with(1);
    out.says(&["KEYROT_AUDIT_TABLE", "--stack", absent_stack.as_str()]);
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
                let body = crate::support::recorded_body(&entry);
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

/// Onboarding lets the admin secret serve the new secret (the operator may tag it), says so, and only
/// then checks the admin key, which now serves it; the tag keeps what it served before.
#[tokio::test]
async fn onboard_tags_the_admin_secret_to_serve_the_new_secret_and_says_so() {
    let world = World::new().await;
    let project = world.sim.openai_create_project();
    let (first_key, first_id) = world.sim.openai_create_user_key(&project);
    let admin = world
        .admin_secret_serving(&world.sim.openai_admin_key(), Some("team-a/"))
        .await;
    let name = unique("cli-serves");
    let out = cli(&world)
        .args(["onboard", &name])
        .flag("--provider", "openai")
        .flag("--project-id", &project)
        .flag("--admin-key-secret", &admin)
        .flag("--api-key-id", &first_id)
        .flag("--every-days", "30")
        .stdin(&first_key)
        .run()
        .await
        .success();
    out.says(&[&format!(
        "Tagged {admin} keyrot-admin:serves=\"team-a/ it/\""
    )]);
    assert_eq!(
        world
            .moto
            .tags(&admin)
            .await
            .get("keyrot-admin:serves")
            .map(String::as_str),
        Some("team-a/ it/")
    );
    assert!(exists(&world, &name).await, "onboarded");
}

/// One key, two managed secrets: each rotation would revoke the key the other serves, so the second
/// onboarding is refused, naming the first, and writes nothing.
#[tokio::test]
async fn onboarding_a_key_another_managed_secret_holds_is_refused() {
    let world = World::new().await;
    let key = "gk-onboardedtwiceonboardedtwice00001";
    let first = unique("cli-twice");
    cli(&world)
        .args(["onboard", &first])
        .flag("--provider", "generic")
        .flag("--every-days", "30")
        .stdin(key)
        .run()
        .await
        .success();
    assert!(
        world
            .moto
            .audit_trail(&first)
            .await
            .contains(&("onboard".to_owned(), "succeeded".to_owned())),
        "keyrot onboard is audited"
    );
    let second = unique("cli-twice");
    let out = cli(&world)
        .args(["onboard", &second])
        .flag("--provider", "generic")
        .flag("--every-days", "30")
        .stdin(key)
        .run()
        .await;
    out.exits_with(1);
    out.says(&[second.as_str(), "api_key", first.as_str(), "fix:"]);
    assert!(!exists(&world, &second).await, "nothing was created");
    crate::support::assert_no_key(&out.text(), key, "the refusal");
}

/// A Render target with `deploy: false` gets the new key in its variable, but keyrot cannot tell when
/// the service runs it: `keyrot confirm` says so, audited with the caller, and is refused when nothing
/// waits for it.
#[tokio::test]
async fn confirm_lets_the_old_key_of_an_unredeployed_target_go() {
    let world = World::new().await;
    let project = world.sim.openai_create_project();
    let (first_key, first_id) = world.sim.openai_create_user_key(&project);
    let admin = world.admin_secret(&world.sim.openai_admin_key()).await;
    let render = world.sim.render_create_service();
    let token = world.admin_secret(&world.sim.render_token()).await;
    let value = json!({"provider": "openai", "api_key": first_key, "api_key_id": first_id,
        "openai": {"project_id": project, "admin_key_secret": admin},
        "targets": [{"type": "render", "service_id": render, "env_key": "OPENAI_API_KEY", "deploy": false, "token_secret": token}]});
    let name = world
        .moto
        .onboard_secret("confirm", &value, &[("keyrot:grace-hours", "1")])
        .await;
    let original = world
        .moto
        .version_of(&name, "AWSCURRENT")
        .await
        .expect("current");
    world.rotate(&name).await;

    cli(&world)
        .args(["confirm", &name])
        .run()
        .await
        .success()
        .says(&[
            "Confirmed for",
            &format!("render:{render}:OPENAI_API_KEY"),
            &original,
        ]);
    let items = world.moto.items(&name).await;
    let record = items
        .iter()
        .find(|i| i["sk"] == format!("REVOKE#{original}"))
        .expect("the old key's record");
    assert!(record.contains_key("confirmed_at"), "{record:?}");
    assert!(record["confirmed_by"].starts_with("arn:"), "{record:?}");
    assert!(
        world
            .moto
            .audit_trail(&name)
            .await
            .contains(&("confirm".to_owned(), "succeeded".to_owned()))
    );
    cli(&world)
        .args(["confirm", &name])
        .run()
        .await
        .exits_with(1)
        .says(&[
            "no pending revocation that waits for a confirmation",
            "nothing was changed",
        ]);
    assert_no_key(&format!("{items:?}"), &first_key, "audit items");
}

/// `rotate --wait` says, every ten seconds without a step, what it waits for (the redeploys and how
/// each stands), and when `--wait-seconds` runs out with the rotation still running it exits 3, not 1:
/// nothing failed.
#[tokio::test]
async fn rotate_wait_shows_the_builds_and_exits_3_while_the_rotation_runs() {
    let world = World::new().await;
    world.sim.vercel_set_build_millis(30);
    world.sim.render_set_build_millis(30);
    let (name, _, _vercel, _render) = world.openai_secret_with_targets(&[]).await;
    world.rotate(&name).await;
    world.sim.vercel_set_build_millis(120_000);
    world.sim.render_set_build_millis(120_000);
    let waiting = cli(&world)
        .args(["rotate", &name, "--wait", "--wait-seconds", "12"])
        .run();
    let steps = async {
        let token = world.moto.placeholder_token(&name).await;
        for step in ["createSecret", "setSecret"] {
            world.step(step, &name, &token).await.expect(step);
        }
    };
    let (out, ()) = tokio::join!(waiting, steps);
    out.exits_with(3);
    out.says(&[
        "setSecret",
        "... waiting",
        "redeploys: vercel:",
        "building",
        "still running",
    ]);
}

/// At a terminal, an emergency rotation asks for the secret's name first; anything else typed (here:
/// nothing) changes nothing. `--yes` skips the question; a script (no terminal) is never asked.
#[tokio::test]
async fn an_emergency_at_a_terminal_asks_for_the_name_first() {
    let world = World::new().await;
    let (name, _, _) = world.openai_secret(&[]).await;
    world.rotate(&name).await;
    let tags = world.moto.tags(&name).await;
    let out = cli(&world)
        .args(["rotate", &name, "--emergency"])
        .on_a_terminal()
        .run()
        .await;
    out.exits_with(1);
    out.says(&[
        "EMERGENCY",
        &format!("Type {name}"),
        "nothing was changed",
        "--yes",
    ]);
    assert!(world.moto.version_of(&name, "AWSPENDING").await.is_none());
    assert_eq!(
        world.moto.tags(&name).await,
        tags,
        "no one-shot tag written"
    );
    cli(&world)
        .args(["rotate", &name, "--emergency", "--yes"])
        .on_a_terminal()
        .run()
        .await
        .success();
    assert!(world.moto.version_of(&name, "AWSPENDING").await.is_some());
}

/// `--profile` and `--region` reach the SDK as the AWS CLI's do. Credentials that cannot be found are
/// said as such, with the command that logs in, instead of "could not reach the service".
#[tokio::test]
async fn profile_and_region_are_the_aws_clis_and_missing_credentials_say_how_to_log_in() {
    let world = World::new().await;
    let (name, _, _) = world.openai_secret(&[]).await;
    let empty = std::env::temp_dir().join(unique("no-aws-config").replace('/', "-"));
    std::fs::write(&empty, "").expect("an empty config file");
    let out = cli(&world)
        .args(["rollback", &name, "--profile", "keyrot-no-such-profile"])
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .env("AWS_CONFIG_FILE", &empty)
        .env("AWS_SHARED_CREDENTIALS_FILE", &empty)
        .run()
        .await;
    out.exits_with(1);
    out.says(&[
        "credentials",
        "profile keyrot-no-such-profile",
        "aws sso login --profile keyrot-no-such-profile",
    ]);
    let out = cli(&world)
        .args(["rollback", &name, "--region", "eu-west-3"])
        .run()
        .await;
    out.exits_with(1);
    out.says(&["no secret of this name here"]);
}

/// An SSO profile whose login has expired (no cached token), with the stack to be found from its outputs:
/// the CLI says to log in with that profile, in the profile's region, instead of "KEYROT_AUDIT_TABLE is
/// not set", and the SDK's own warnings stay off the terminal.
#[tokio::test]
async fn an_expired_sso_login_says_how_to_log_in_again() {
    let world = World::new().await;
    let home = std::env::temp_dir().join(unique("sso-home").replace('/', "-"));
    std::fs::create_dir_all(&home).expect("home");
    let config = home.join("config");
    std::fs::write(
        &config,
        "[profile corp-dev]\nsso_session = corp\nsso_account_id = 111122223333\nsso_role_name = Admin\nregion = eu-west-1\n\n\
         [sso-session corp]\nsso_start_url = https://corp.awsapps.com/start\nsso_region = eu-west-1\n",
    )
    .expect("config");
    let out = cli(&world)
        .without_keyrot_variables()
        .args(["status", "--profile", "corp-dev"])
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_REGION")
        .env_remove("AWS_DEFAULT_REGION")
        .env("HOME", &home)
        .env("AWS_CONFIG_FILE", &config)
        .env("AWS_SHARED_CREDENTIALS_FILE", home.join("none"))
        .run()
        .await;
    out.exits_with(1);
    out.says(&[
        "credentials",
        "SSO",
        "profile corp-dev",
        "aws sso login --profile corp-dev",
    ]);
    let text = out.text();
    assert!(!text.contains("KEYROT_AUDIT_TABLE: is not set"), "{text}");
    assert!(
        !text.contains(" WARN "),
        "the SDK's warnings reached the terminal: {text}"
    );
}
