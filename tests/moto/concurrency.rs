//! Concurrency: rotations that overlap, and the grace keeper running during a rotation. At most one
//! rotation wins, the other fails cleanly, and nothing is left orphaned.

use keyrot::keeper::{GraceKeeper, KeeperSettings};

use crate::support::{World, unique};

#[tokio::test]
async fn of_two_overlapping_rotations_one_wins_the_other_fails_cleanly_and_nothing_is_orphaned() {
    let world = World::new().await;
    let scope = unique("overlap");
    let prefix = format!("{}/s", scope.trim_start_matches("it/"));
    let (name, project, first_key) = world.openai_secret_named(&prefix, &[]).await;
    let first = world.moto.rotate_secret(&name, true).await;
    world
        .step("createSecret", &name, &first)
        .await
        .expect("the first rotation mints its key");
    // A second rotation starts before the first finished (moto lets it take AWSPENDING).
    let second = world.moto.rotate_secret(&name, true).await;
    assert_ne!(first, second);

    let run_all = |token: String| {
        let world = &world;
        let name = name.clone();
        async move {
            for step in ["createSecret", "setSecret", "testSecret", "finishSecret"] {
                world.step(step, &name, &token).await?;
            }
            Ok::<(), String>(())
        }
    };
    let (a, b) = tokio::join!(run_all(first.clone()), run_all(second.clone()));
    let err = a.expect_err("the overtaken rotation fails");
    assert!(err.contains("not labelled AWSPENDING"), "{err}");
    b.expect("the second rotation wins");
    assert_eq!(
        world.moto.version_of(&name, "AWSCURRENT").await.as_deref(),
        Some(second.as_str())
    );
    assert!(
        world.sim.openai_key_works(&first_key),
        "the old key keeps its grace period"
    );

    // The overtaken rotation's key was recorded for revocation; the keeper's next pass removes it.
    let ports = keyrot::wiring::build(&world.config).await.expect("ports");
    let keeper = GraceKeeper::new(
        &ports,
        KeeperSettings {
            rotator_arn: Some(world.moto.rotator_arn.clone()),
            name_prefix: Some(format!("{scope}/")),
            ..KeeperSettings::default()
        },
    );
    let report = keeper.run().await.expect("keeper pass");
    assert_eq!(report.revoked, 1, "{report:?}");
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
