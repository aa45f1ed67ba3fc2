//! Concurrency as AWS allows it: a second RotateSecret refused while a rotation is in progress, each
//! step delivered twice at once, and the grace keeper running during a rotation. One rotation ends,
//! once, and nothing is left orphaned.

use keyrot::keeper::{GraceKeeper, KeeperSettings};

use crate::support::{World, unique};

/// Overlap as AWS allows it: a second RotateSecret while a rotation is in progress is refused (moto is
/// made to refuse it as AWS does, `scripts/moto_server.py`), and what can overlap is Secrets Manager
/// delivering the same step of the same rotation twice at once (a retry racing the first attempt). Each
/// step then runs twice concurrently: the rotation ends once, and nothing is left orphaned.
#[tokio::test]
async fn a_second_rotation_is_refused_and_twice_delivered_steps_end_one_rotation() {
    let world = World::new().await;
    let scope = unique("overlap");
    let prefix = format!("{}/s", scope.trim_start_matches("it/"));
    let (name, project, first_key) = world.openai_secret_named(&prefix, &[]).await;
    let token = world.moto.rotate_secret(&name, true).await;
    world
        .step("createSecret", &name, &token)
        .await
        .expect("the rotation mints its key");
    let refused = world
        .moto
        .sm
        .rotate_secret()
        .secret_id(&name)
        .rotation_lambda_arn(&world.moto.rotator_arn)
        .send()
        .await
        .expect_err("a second rotation while one is in progress");
    assert!(
        format!("{refused:?}").contains("A previous rotation isn't complete"),
        "{refused:?}"
    );
    for step in ["createSecret", "setSecret", "testSecret", "finishSecret"] {
        let (a, b) = tokio::join!(
            world.step(step, &name, &token),
            world.step(step, &name, &token)
        );
        assert!(a.is_ok() || b.is_ok(), "{step}: {a:?} {b:?}");
        // A delivery that lost its race failed retryably; Secrets Manager's retry finds it done.
        if a.is_err() || b.is_err() {
            world
                .step(step, &name, &token)
                .await
                .unwrap_or_else(|err| panic!("{step} retried: {err}"));
        }
    }
    assert_eq!(
        world.moto.version_of(&name, "AWSCURRENT").await.as_deref(),
        Some(token.as_str())
    );
    assert!(
        world.sim.openai_key_works(&first_key),
        "the old key keeps its grace period"
    );
    let trail = world.moto.audit_trail(&name).await;
    for step in ["createSecret", "setSecret", "testSecret", "finishSecret"] {
        let succeeded = trail
            .iter()
            .filter(|(action, outcome)| action == step && outcome == "succeeded")
            .count();
        assert_eq!(
            succeeded, 1,
            "{step} succeeded once on the trail: {trail:?}"
        );
    }

    let ports = keyrot::wiring::build(&world.config).await.expect("ports");
    let keeper = GraceKeeper::new(
        &ports,
        KeeperSettings {
            rotator_arn: Some(world.moto.rotator_arn.clone()),
            name_prefix: Some(format!("{scope}/")),
            ..KeeperSettings::default()
        },
    );
    keeper.run().await.expect("keeper pass");
    let current = world
        .moto
        .value(&name, "AWSCURRENT", None)
        .await
        .expect("current");
    let accounts = world.sim.openai_service_accounts(&project);
    assert_eq!(
        accounts.len(),
        1,
        "only the current key's account is left: {accounts:?}"
    );
    assert_eq!(current["key_id"], accounts[0].id.as_str());
    assert_eq!(keeper.orphans().await.expect("orphans").len(), 0);
}

#[tokio::test]
async fn the_grace_keeper_running_during_a_rotation_changes_nothing_of_it() {
    let world = World::new().await;
    let (name, first_key, vercel, _render) = world.openai_secret_with_targets(&[]).await;
    let token = world.moto.rotate_secret(&name, true).await;
    let ports = keyrot::wiring::build(&world.config).await.expect("ports");
    let keeper = GraceKeeper::new(
        &ports,
        KeeperSettings {
            rotator_arn: Some(world.moto.rotator_arn.clone()),
            name_prefix: Some(name.clone()),
            ..KeeperSettings::default()
        },
    );
    let rotation = async {
        for step in ["createSecret", "setSecret", "testSecret", "finishSecret"] {
            world
                .step(step, &name, &token)
                .await
                .unwrap_or_else(|err| panic!("{step}: {err}"));
        }
    };
    let passes = async {
        let mut reports = Vec::new();
        for _ in 0..5 {
            reports.push(keeper.run().await.expect("keeper pass"));
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        reports
    };
    let ((), reports) = tokio::join!(rotation, passes);
    assert!(
        reports.iter().all(|r| r.revoked == 0 && r.failed == 0),
        "{reports:?}"
    );
    let new_key = world.current_key(&name).await;
    assert!(world.sim.openai_key_works(&new_key));
    assert!(
        world.sim.openai_key_works(&first_key),
        "the old key is in its grace period"
    );
    assert_eq!(
        world
            .sim
            .vercel_served_value(&vercel, "production", "OPENAI_API_KEY")
            .as_deref(),
        Some(new_key.as_str())
    );
}
