//! A generic secret rotated end to end against moto: labels after each step, repeats, the
//! configuration test, two rotations, bad input refused without change, the audit trail and alerts.

use serde_json::{Value, json};

use crate::support::{AlertQueue, Labels, Moto, World, assert_no_key};

const OLD_KEY: &str = "gk-ORIGINALkeyOFtheSERVICE0001";

fn generic(extra: Value) -> Value {
    let mut value = json!({"provider": "generic", "api_key": OLD_KEY, "generic": {"length": 40, "prefix": "gk-"},
        "owner": "platform-team"});
    if let (Some(value), Some(extra)) = (value.as_object_mut(), extra.as_object()) {
        value.extend(extra.clone());
    }
    value
}

fn stages(labels: &Labels, version: &str) -> Vec<String> {
    labels.get(version).cloned().unwrap_or_default()
}

#[tokio::test]
async fn a_generic_secret_rotates_end_to_end_with_the_labels_secrets_manager_shows() {
    let world = World::new().await;
    let moto = &world.moto;
    let name = moto.create_secret("e2e", &generic(json!({})), &[]).await;
    let original = moto.version_of(&name, "AWSCURRENT").await.expect("current");
    let alerts = AlertQueue::subscribe(&moto.config.alert_topic_arn, &name);

    let token = moto.rotate_secret(&name, true).await;
    let labels = moto.labels(&name).await;
    assert_eq!(stages(&labels, &token), ["AWSPENDING"]);
    assert_eq!(stages(&labels, &original), ["AWSCURRENT"]);
    assert_eq!(
        moto.value(&name, "AWSPENDING", Some(&token)).await,
        None,
        "rotate-secret leaves a placeholder"
    );

    world
        .step("createSecret", &name, &token)
        .await
        .expect("createSecret");
    let pending = moto
        .value(&name, "AWSPENDING", Some(&token))
        .await
        .expect("pending value");
    let new_key = pending["api_key"].as_str().expect("api_key").to_owned();
    assert!(
        new_key.starts_with("gk-") && new_key.len() == 43,
        "prefix + 40 random characters"
    );
    assert_ne!(new_key, OLD_KEY);
    assert_eq!(
        pending["owner"], "platform-team",
        "unknown fields are carried to the new version"
    );
    assert_eq!(stages(&moto.labels(&name).await, &original), ["AWSCURRENT"]);

    for step in ["setSecret", "testSecret"] {
        world.step(step, &name, &token).await.expect(step);
        let labels = moto.labels(&name).await;
        assert_eq!(
            stages(&labels, &token),
            ["AWSPENDING"],
            "{step} moves no label"
        );
        assert_eq!(
            stages(&labels, &original),
            ["AWSCURRENT"],
            "{step} moves no label"
        );
    }

    world
        .step("finishSecret", &name, &token)
        .await
        .expect("finishSecret");
    let labels = moto.labels(&name).await;
    assert_eq!(stages(&labels, &token), ["AWSCURRENT"]);
    assert_eq!(stages(&labels, &original), ["AWSPREVIOUS"]);
    assert_eq!(
        moto.value(&name, "AWSCURRENT", None)
            .await
            .expect("current")["api_key"],
        new_key.as_str()
    );
    assert_eq!(
        moto.value(&name, "AWSPREVIOUS", None)
            .await
            .expect("previous")["api_key"],
        OLD_KEY
    );

    let trail = moto.audit_trail(&name).await;
    let expected: Vec<(String, String)> =
        ["createSecret", "setSecret", "testSecret", "finishSecret"]
            .iter()
            .map(|s| (s.to_string(), "succeeded".to_string()))
            .collect();
    assert_eq!(trail, expected, "one succeeded event per step, in order");
    let items = moto.items(&name).await;
    let revocation = items
        .iter()
        .find(|i| i["sk"] == format!("REVOKE#{original}"))
        .expect("the old key's revocation is recorded");
    assert_eq!(revocation["status"], "pending");
    assert_eq!(revocation["gsi2pk"], "REVOKE#PENDING");
    assert_eq!(
        items
            .iter()
            .filter(|i| i["sk"].starts_with("DONE#"))
            .count(),
        4
    );

    let delivered = alerts.drain();
    let events: Vec<&str> = delivered
        .iter()
        .filter_map(|m| m["MessageAttributes"]["event"]["Value"].as_str())
        .collect();
    assert_eq!(events, ["rotation_succeeded"]);
    let machine: Value = serde_json::from_str(delivered[0]["Message"].as_str().expect("Message"))
        .expect("machine JSON");
    assert_eq!(machine["event"], "rotation_succeeded");
    assert_eq!(machine["secret"], name.as_str());
    assert_eq!(machine["version_id"], token.as_str());

    let everything = format!("{items:?}{delivered:?}");
    for key in [OLD_KEY, new_key.as_str()] {
        assert_no_key(&everything, key, "audit items and alerts");
    }
}

#[tokio::test]
async fn every_step_repeated_changes_nothing_and_is_audited_as_skipped() {
    let world = World::new().await;
    let moto = &world.moto;
    let name = moto.create_secret("repeat", &generic(json!({})), &[]).await;
    let token = moto.rotate_secret(&name, true).await;
    for step in ["createSecret", "setSecret", "testSecret", "finishSecret"] {
        world.step(step, &name, &token).await.expect(step);
        let labels = moto.labels(&name).await;
        let value = moto.value(&name, "AWSCURRENT", None).await;
        let second = world.step(step, &name, &token).await.expect(step);
        assert_eq!(
            moto.labels(&name).await,
            labels,
            "{step} repeated moved a label"
        );
        assert_eq!(
            moto.value(&name, "AWSCURRENT", None).await,
            value,
            "{step} repeated changed AWSCURRENT"
        );
        if step == "createSecret" || step == "finishSecret" {
            assert_eq!(second["outcome"], "already-done", "{step}");
        }
    }
    let trail = moto.audit_trail(&name).await;
    for step in ["createSecret", "setSecret", "testSecret", "finishSecret"] {
        let outcomes: Vec<&str> = trail
            .iter()
            .filter(|(a, _)| a == step)
            .map(|(_, o)| o.as_str())
            .collect();
        assert_eq!(
            outcomes,
            ["succeeded", "skipped"],
            "{step}: never a second success"
        );
    }
    // The steps of a rotation that has finished succeed without doing anything.
    for step in ["createSecret", "setSecret", "testSecret"] {
        let answer = world.step(step, &name, &token).await.expect(step);
        assert_eq!(answer["outcome"], "already-done");
    }
}

#[tokio::test]
async fn two_rotations_in_a_row_keep_exactly_one_previous_version() {
    let world = World::new().await;
    let moto = &world.moto;
    let name = moto.create_secret("twice", &generic(json!({})), &[]).await;
    let original = moto.version_of(&name, "AWSCURRENT").await.expect("current");
    let first = world.rotate(&name).await;
    let first_key = moto
        .value(&name, "AWSCURRENT", None)
        .await
        .expect("current")["api_key"]
        .clone();
    let second = world.rotate(&name).await;
    let labels = moto.labels(&name).await;
    assert_eq!(stages(&labels, &second), ["AWSCURRENT"]);
    assert_eq!(stages(&labels, &first), ["AWSPREVIOUS"]);
    assert!(
        stages(&labels, &original).is_empty(),
        "the first key has left every label: {labels:?}"
    );
    assert_eq!(
        moto.value(&name, "AWSPREVIOUS", None)
            .await
            .expect("previous")["api_key"],
        first_key
    );
    let revocations = moto
        .items(&name)
        .await
        .into_iter()
        .filter(|i| i["sk"].starts_with("REVOKE#"))
        .count();
    assert_eq!(revocations, 2, "each rotation schedules its old key once");
}

#[tokio::test]
async fn the_configuration_test_passes_when_the_current_key_is_good() {
    let world = World::new().await;
    let moto = &world.moto;
    let name = moto.create_secret("config", &generic(json!({})), &[]).await;
    // RotateImmediately=false: Secrets Manager only runs testSecret.
    let token = moto.rotate_secret(&name, false).await;
    let answer = world
        .step("testSecret", &name, &token)
        .await
        .expect("config test");
    assert_eq!(answer["outcome"], "done");
    // On an empty placeholder (what AWS creates), testSecret tests the current key.
    let name = moto
        .create_secret("config-empty", &generic(json!({})), &[])
        .await;
    let token = moto.rotate_secret(&name, true).await;
    world
        .step("testSecret", &name, &token)
        .await
        .expect("config test");
    assert_eq!(
        moto.value(&name, "AWSPENDING", Some(&token)).await,
        None,
        "testSecret writes nothing"
    );
}

/// Snapshot of everything a refused invocation must leave unchanged.
async fn snapshot(moto: &Moto, name: &str) -> (Labels, Option<Value>, Option<Value>) {
    let pending = moto.version_of(name, "AWSPENDING").await;
    (
        moto.labels(name).await,
        moto.value(name, "AWSCURRENT", None).await,
        match pending {
            Some(v) => moto.value(name, "AWSPENDING", Some(&v)).await,
            None => None,
        },
    )
}

async fn assert_refused(world: &World, name: &str, payload: Value, expected: &[&str]) {
    let moto = &world.moto;
    let before = snapshot(moto, name).await;
    let err = world
        .invoke(payload.clone())
        .await
        .expect_err("must be refused")
        .0;
    let text = err.to_string();
    for fragment in expected {
        assert!(
            text.contains(fragment),
            "{payload}: expected {fragment:?} in {text}"
        );
    }
    assert!(!err.is_retryable(), "{text}");
    assert_no_key(&text, OLD_KEY, "the error");
    assert_eq!(
        snapshot(moto, name).await,
        before,
        "{payload}: a refused invocation changed the secret"
    );
}

#[tokio::test]
async fn bad_input_is_refused_with_a_clear_error_and_changes_nothing() {
    let world = World::new().await;
    let moto = &world.moto;

    // Rotation disabled: a pending version exists but rotation was never enabled.
    let name = moto
        .create_secret("disabled", &generic(json!({})), &[])
        .await;
    let token = uuid::Uuid::new_v4().to_string();
    moto.sm
        .put_secret_value()
        .secret_id(&name)
        .client_request_token(&token)
        .secret_string("{}")
        .version_stages("AWSPENDING")
        .send()
        .await
        .expect("put pending");
    assert_refused(
        &world,
        &name,
        json!({"Step": "createSecret", "SecretId": name, "ClientRequestToken": token}),
        &["rotation is not enabled", &name, "createSecret"],
    )
    .await;

    let name = moto.create_secret("tokens", &generic(json!({})), &[]).await;
    let token = moto.rotate_secret(&name, true).await;
    let current = moto.version_of(&name, "AWSCURRENT").await.expect("current");
    assert_refused(&world, &name, json!({"Step": "setSecret", "SecretId": name, "ClientRequestToken": "00000000-0000-4000-8000-000000000000"}),
        &["is not a version of this secret", &name]).await;
    // A token that is a version but neither pending nor current.
    world
        .step("createSecret", &name, &token)
        .await
        .expect("create");
    moto.sm
        .update_secret_version_stage()
        .secret_id(&name)
        .version_stage("AWSPENDING")
        .remove_from_version_id(&token)
        .send()
        .await
        .expect("unlabel");
    assert_refused(
        &world,
        &name,
        json!({"Step": "setSecret", "SecretId": name, "ClientRequestToken": token}),
        &["is not labelled AWSPENDING", &name],
    )
    .await;
    // No AWSCURRENT at all.
    moto.sm
        .update_secret_version_stage()
        .secret_id(&name)
        .version_stage("AWSPENDING")
        .move_to_version_id(&token)
        .send()
        .await
        .expect("relabel");
    moto.sm
        .update_secret_version_stage()
        .secret_id(&name)
        .version_stage("AWSCURRENT")
        .remove_from_version_id(&current)
        .send()
        .await
        .expect("remove current");
    assert_refused(
        &world,
        &name,
        json!({"Step": "finishSecret", "SecretId": name, "ClientRequestToken": token}),
        &["no version is labelled AWSCURRENT"],
    )
    .await;

    let values = [
        (
            json!("plain text, not JSON")
                .as_str()
                .map(str::to_owned)
                .unwrap_or_default(),
            "not valid JSON",
        ),
        (
            json!({"api_key": OLD_KEY}).to_string(),
            "provider: is missing",
        ),
        (
            json!({"provider": "mistral", "api_key": OLD_KEY}).to_string(),
            "provider: names a provider keyrot does not know",
        ),
        (
            json!({"provider": "generic"}).to_string(),
            "api_key: is missing",
        ),
    ];
    for (value, expected) in values {
        let name = moto.create_secret("bad-value", &json!({}), &[]).await;
        moto.sm
            .put_secret_value()
            .secret_id(&name)
            .secret_string(&value)
            .send()
            .await
            .expect("put current");
        let token = moto.rotate_secret(&name, true).await;
        assert_refused(
            &world,
            &name,
            json!({"Step": "createSecret", "SecretId": name, "ClientRequestToken": token}),
            &[expected, &name, "fix:"],
        )
        .await;
    }

    let name = moto.create_secret("events", &generic(json!({})), &[]).await;
    let token = moto.rotate_secret(&name, true).await;
    assert_refused(
        &world,
        &name,
        json!({"SecretId": name, "ClientRequestToken": token}),
        &["missing field Step"],
    )
    .await;
    assert_refused(
        &world,
        &name,
        json!({"Step": "createSecret", "ClientRequestToken": token}),
        &["missing field SecretId"],
    )
    .await;
    assert_refused(
        &world,
        &name,
        json!({"Step": "createSecret", "SecretId": name}),
        &["missing field ClientRequestToken"],
    )
    .await;
    assert_refused(
        &world,
        &name,
        json!({"Step": "rotateSecret", "SecretId": name, "ClientRequestToken": token}),
        &["unknown Step \"rotateSecret\""],
    )
    .await;
}

#[tokio::test]
async fn a_failed_step_is_audited_and_alerted_with_its_cause() {
    let world = World::new().await;
    let moto = &world.moto;
    let name = moto
        .create_secret("fails", &json!({"provider": "generic"}), &[])
        .await;
    let alerts = AlertQueue::subscribe(&moto.config.alert_topic_arn, &name);
    let token = moto.rotate_secret(&name, true).await;
    world
        .step("createSecret", &name, &token)
        .await
        .expect_err("no api_key");
    let items = moto.items(&name).await;
    let failed = items
        .iter()
        .find(|i| i.get("outcome").is_some_and(|o| o == "failed"))
        .expect("failed event");
    assert_eq!(failed["action"], "createSecret");
    assert!(
        failed["error"].contains("api_key: is missing"),
        "{failed:?}"
    );
    let delivered = alerts.drain();
    assert_eq!(delivered.len(), 1);
    assert_eq!(
        delivered[0]["MessageAttributes"]["event"]["Value"],
        "rotation_failed"
    );
    assert_eq!(
        delivered[0]["MessageAttributes"]["severity"]["Value"],
        "critical"
    );
    let machine: Value = serde_json::from_str(delivered[0]["Message"].as_str().expect("Message"))
        .expect("JSON body");
    assert_eq!(machine["step"], "createSecret");
    assert!(
        machine["cause"]
            .as_str()
            .is_some_and(|c| c.contains("api_key"))
    );
    assert!(
        machine["fix"]
            .as_str()
            .is_some_and(|f| f.contains("keyrot repair"))
    );
}

#[tokio::test]
async fn an_emergency_rotation_with_grace_zero_retires_the_old_key_at_once_and_clears_the_one_shot_tags()
 {
    let world = World::new().await;
    let moto = &world.moto;
    let name = moto
        .create_secret(
            "emergency",
            &generic(json!({})),
            &[
                ("keyrot:next-grace-hours", "0"),
                ("keyrot:trigger", "emergency"),
            ],
        )
        .await;
    let original = moto.version_of(&name, "AWSCURRENT").await.expect("current");
    world.rotate(&name).await;
    let items = moto.items(&name).await;
    let revocation = items
        .iter()
        .find(|i| i["sk"] == format!("REVOKE#{original}"))
        .expect("revocation");
    assert_eq!(
        revocation["status"], "retired",
        "generic keys have nothing to revoke at a provider"
    );
    assert!(!revocation.contains_key("gsi2pk"), "no longer pending");
    assert!(
        items
            .iter()
            .filter(|i| i.get("trigger").is_some())
            .all(|i| i["trigger"] == "emergency")
    );
    let tags = moto
        .sm
        .describe_secret()
        .secret_id(&name)
        .send()
        .await
        .expect("describe")
        .tags()
        .to_vec();
    assert!(
        tags.iter()
            .all(|t| !t.key().unwrap_or_default().starts_with("keyrot:")),
        "{tags:?}"
    );
}
