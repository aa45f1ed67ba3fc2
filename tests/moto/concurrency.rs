//! Concurrency as AWS allows it: a second RotateSecret refused while a rotation is in progress, each
//! step delivered twice at once, the grace keeper with a revocation due against a rollback to that
//! key, a grace-0 finishSecret and the next rotation, `keyrot rotate` against the schedule, and
//! `keyrot stage` against createSecret. Each race runs with the second party starting at several
//! moments of the first; each ends with the key in service working everywhere.

use keyrot::domain::{RotationEvent, Step};
use keyrot::keeper::{GraceKeeper, KeeperSettings};
use keyrot::operator::Operator;
use keyrot::ports::Ports;
use keyrot::rotation::{Invocation, Rotator};
use keyrot::wiring::{self, AwsWith};
use keyrot_sim::WireFault;
use secrecy::SecretString;

use crate::support::cli::cli;
use crate::support::invariant::{Rotation, served, set_up, settings};
use crate::support::wire::Proxies;
use crate::support::{Later, World, unique};

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

/// How long the second party waits before it starts, in each scenario of a race: from "at once" to
/// "after the first is well under way", so that each phase of the first meets the second.
const HEADSTARTS_MS: [u64; 6] = [0, 20, 60, 150, 300, 600];

/// The adapters with their clock `hours` on, as the keeper (or a rotation) sees time then.
async fn later(world: &World, hours: i64) -> Ports<AwsWith<Later>> {
    wiring::build_with_clock(&world.config, Later(chrono::Duration::hours(hours)))
        .await
        .expect("ports")
}

fn keeper_of<'a>(
    world: &World,
    ports: &'a Ports<AwsWith<Later>>,
    name: &str,
) -> GraceKeeper<'a, AwsWith<Later>> {
    GraceKeeper::new(
        ports,
        KeeperSettings {
            rotator_arn: Some(world.moto.rotator_arn.clone()),
            name_prefix: Some(name.to_owned()),
            ..KeeperSettings::default()
        },
    )
}

async fn after(headstart_ms: u64) {
    tokio::time::sleep(std::time::Duration::from_millis(headstart_ms)).await;
}

/// What users see after a race: AWSCURRENT's key works and both targets serve it.
async fn served_and_working(world: &World, name: &str, vercel: &str, render: &str) -> Vec<String> {
    let current = world.current_key(name).await;
    let mut problems = Vec::new();
    if !world.sim.openai_key_works(&current) {
        problems.push("AWSCURRENT's key does not work".to_owned());
    }
    let served = served(world, (vercel, render));
    for (target, key) in served {
        if key.as_deref() != Some(current.as_str()) {
            problems.push(format!("{target} does not serve AWSCURRENT's key"));
        }
    }
    problems
}

/// The keeper, two hours on, revokes the old key whose grace (one hour) has passed, while an operator
/// rolls back to that very key. Whichever gets there first wins and the other stands back: the key
/// rolled back to is never revoked, and a rollback the keeper beat is refused, not half done.
#[tokio::test]
async fn the_keeper_revoking_the_key_a_rollback_returns_to_never_revokes_it_in_use() {
    let world = World::new().await;
    world.sim.vercel_set_build_millis(30);
    world.sim.render_set_build_millis(30);
    let ports = later(&world, 2).await;
    let operator = Operator::new(&ports, settings());
    let mut outcomes = Vec::new();
    for headstart in HEADSTARTS_MS {
        let (name, old_key, vercel, render) = world
            .openai_secret_with_targets(&[("keyrot:grace-hours", "1")])
            .await;
        world.rotate(&name).await;
        let keeper = keeper_of(&world, &ports, &name);
        let (pass, rollback) = tokio::join!(keeper.run(), async {
            after(headstart).await;
            operator.rollback(&name, "it-operator").await
        });
        pass.expect("keeper pass");
        let mut problems = served_and_working(&world, &name, &vercel, &render).await;
        match &rollback {
            Ok(_) if !world.sim.openai_key_works(&old_key) => {
                problems.push("the key rolled back to was revoked".to_owned())
            }
            Ok(_) if world.current_key(&name).await != old_key => {
                problems.push("the rollback succeeded but AWSCURRENT is not the old key".to_owned())
            }
            Err(err) if !err.to_string().contains(&name) => {
                problems.push(format!("the refusal does not name the secret: {err}"))
            }
            _ => {}
        }
        assert!(
            problems.is_empty(),
            "headstart {headstart} ms: {problems:?} ({rollback:?})"
        );
        outcomes.push(rollback.is_ok());
    }
    println!("rollbacks that won against the keeper, by headstart {HEADSTARTS_MS:?}: {outcomes:?}");
}

/// finishSecret with a grace of 0 revokes the old key itself, while a keeper pass finds that same
/// revocation due. The key is revoked once: one revocation succeeds on the trail, the new key is in
/// service everywhere, and nothing is left for a later pass but what is due.
#[tokio::test]
async fn a_grace_zero_finish_and_the_keeper_revoke_the_old_key_once() {
    let world = World::new().await;
    world.sim.vercel_set_build_millis(30);
    world.sim.render_set_build_millis(30);
    let ports = later(&world, 0).await;
    for headstart in HEADSTARTS_MS {
        let (name, old_key, vercel, render) = world
            .openai_secret_with_targets(&[("keyrot:grace-hours", "0")])
            .await;
        let token = world.moto.rotate_secret(&name, true).await;
        for step in ["createSecret", "setSecret", "testSecret"] {
            world.step(step, &name, &token).await.expect(step);
        }
        let keeper = keeper_of(&world, &ports, &name);
        let (finish, pass) = tokio::join!(world.step("finishSecret", &name, &token), async {
            after(headstart).await;
            keeper.run().await
        });
        pass.expect("keeper pass");
        if finish.is_err() {
            world
                .step("finishSecret", &name, &token)
                .await
                .expect("finishSecret retried");
        }
        // What either left half done, the next pass completes.
        keeper.run().await.expect("next keeper pass");
        let mut problems = served_and_working(&world, &name, &vercel, &render).await;
        if world.sim.openai_key_works(&old_key) {
            problems.push("the old key outlived its grace of 0".to_owned());
        }
        let revoked = world
            .moto
            .audit_trail(&name)
            .await
            .into_iter()
            .filter(|(action, outcome)| action == "revoke" && outcome == "succeeded")
            .count();
        if revoked != 1 {
            problems.push(format!("{revoked} successful revocations on the trail"));
        }
        assert!(
            problems.is_empty(),
            "headstart {headstart} ms: {problems:?} ({finish:?})"
        );
    }
}

/// The keeper, two hours on, revokes the first key (its grace of one hour passed) while Secrets
/// Manager runs the next rotation, which makes the second key AWSPREVIOUS. The keeper revokes only
/// what is due: the first key goes, the second keeps its new grace, the third is in service.
#[tokio::test]
async fn the_keeper_during_the_next_rotation_revokes_only_what_is_due() {
    let world = World::new().await;
    world.sim.vercel_set_build_millis(30);
    world.sim.render_set_build_millis(30);
    let ports = later(&world, 2).await;
    let rotator = Rotator::new(&ports, settings());
    for headstart in HEADSTARTS_MS {
        let (name, first_key, vercel, render) = world
            .openai_secret_with_targets(&[("keyrot:grace-hours", "1")])
            .await;
        world.rotate(&name).await;
        let second_key = world.current_key(&name).await;
        let token = world.moto.rotate_secret(&name, true).await;
        let keeper = keeper_of(&world, &ports, &name);
        let rotation = async {
            for step in Step::ALL {
                let event = RotationEvent {
                    step,
                    secret_id: name.clone(),
                    client_request_token: token.clone(),
                    rotation_token: None,
                };
                let handled = rotator.handle(&event, &Invocation::default()).await;
                let handled = match handled {
                    Ok(progress) => Ok(progress),
                    Err(_) => rotator.handle(&event, &Invocation::default()).await,
                };
                handled.unwrap_or_else(|err| panic!("{step}: {err}"));
            }
        };
        let ((), pass) = tokio::join!(rotation, async {
            after(headstart).await;
            keeper.run().await
        });
        pass.expect("keeper pass");
        keeper.run().await.expect("next keeper pass");
        let mut problems = served_and_working(&world, &name, &vercel, &render).await;
        if world.sim.openai_key_works(&first_key) {
            problems.push("the first key outlived its grace and two keeper passes".to_owned());
        }
        if !world.sim.openai_key_works(&second_key) {
            problems.push("the second key was revoked during its grace".to_owned());
        }
        assert!(
            problems.is_empty(),
            "headstart {headstart} ms: {problems:?}"
        );
    }
}

/// `keyrot stage` while createSecret adopts the key staged before: either the rotation takes the
/// new key, or the new key stays staged for the next rotation; no staged key is lost, and the key in
/// service works.
#[tokio::test]
async fn a_key_staged_during_create_secret_is_adopted_or_kept_for_the_next_rotation() {
    let world = World::new().await;
    let operator = Operator::new(&world.ports, settings());
    for headstart in [0, 5, 15, 40, 100, 250] {
        let secret = set_up(&world, Rotation::Anthropic).await;
        let name = secret.name.clone();
        let token = world.moto.rotate_secret(&name, true).await;
        let (second, _) = world.sim.anthropic_create_key("second");
        let (create, staged) = tokio::join!(world.step("createSecret", &name, &token), async {
            after(headstart).await;
            operator
                .stage_key(&name, SecretString::from(second.clone()), "it-operator")
                .await
        });
        if create.is_err() {
            world
                .step("createSecret", &name, &token)
                .await
                .expect("createSecret retried");
        }
        for step in ["setSecret", "testSecret", "finishSecret"] {
            world.step(step, &name, &token).await.expect(step);
        }
        let current = world.current_key(&name).await;
        let still_staged = world
            .moto
            .value(&name, "KEYROT_STAGED", None)
            .await
            .and_then(|v| v["api_key"].as_str().map(str::to_owned));
        let mut problems = Vec::new();
        if !world.sim.anthropic_key_works(&current) {
            problems.push("AWSCURRENT's key does not work".to_owned());
        }
        if staged.is_ok() && current != second && still_staged.as_deref() != Some(second.as_str()) {
            problems.push("the key staged during createSecret was lost".to_owned());
        }
        assert!(
            problems.is_empty(),
            "headstart {headstart} ms: {problems:?} (create {create:?}, stage {:?})",
            staged.map(|s| s.version_id)
        );
    }
}

/// `keyrot rotate --emergency` racing the schedule: Secrets Manager starts the scheduled rotation
/// after the CLI wrote its one-shot tags and before its RotateSecret, which AWS then refuses. The
/// scheduled rotation must run as scheduled, with the secret's own grace (not as the emergency whose
/// request was refused, which would revoke the old key at once), and the CLI must say it was refused.
#[tokio::test]
async fn keyrot_rotate_racing_the_schedule_is_refused_and_the_schedule_keeps_its_grace() {
    let world = World::new().await;
    world.sim.vercel_set_build_millis(30);
    world.sim.render_set_build_millis(30);
    let (name, _, _vercel, _render) = world.openai_secret_with_targets(&[]).await;
    // Rotated once, so that it has its schedule and rotation function, as every managed secret has.
    world.rotate(&name).await;
    let first_key = world.current_key(&name).await;
    let proxies = Proxies::start(&world).await;
    proxies
        .plan
        .inject_on("secretsmanager.RotateSecret", WireFault::Hold);
    let emergency = cli(&world)
        .args(["rotate", &name, "--emergency"])
        .env("AWS_ENDPOINT_URL", proxies.moto.url())
        .run();
    let schedule = async {
        // The CLI's tags are written and its RotateSecret is on the wire: the schedule gets in first.
        tokio::time::timeout(
            std::time::Duration::from_secs(60),
            proxies.plan.until_fired(),
        )
        .await
        .expect("the CLI's RotateSecret reaches the proxy");
        let token = world.moto.rotate_secret(&name, true).await;
        world
            .step("createSecret", &name, &token)
            .await
            .expect("createSecret");
        (token, proxies.plan.clear())
    };
    let (out, (token, ())) = tokio::join!(emergency, schedule);
    assert_ne!(out.code(), Some(0), "{}", out.text());
    out.says(&[&name, "A previous rotation isn't complete"]);
    for step in ["setSecret", "testSecret", "finishSecret"] {
        world
            .step(step, &name, &token)
            .await
            .unwrap_or_else(|err| panic!("{step}: {err}"));
    }
    assert!(
        world.sim.openai_key_works(&first_key),
        "the scheduled rotation keeps the old key for its grace"
    );
    let tags = world.moto.tags(&name).await;
    assert!(
        !tags.contains_key("keyrot:trigger") && !tags.contains_key("keyrot:next-grace-hours"),
        "no one-shot tag outlives the refused request: {tags:?}"
    );
    let triggers = world.moto.triggers(&name).await;
    assert!(
        !triggers.iter().any(|t| t == "emergency"),
        "the scheduled rotation is not audited as the refused emergency: {triggers:?}"
    );
}
