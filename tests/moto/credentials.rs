//! keyrot's own credentials, end to end on moto and the simulator: a Vercel token under the admin
//! prefix, tagged by its owner for rotation, is staged, adopted by a rotation Secrets Manager drives,
//! serves the next deploy, and its old token is a revocation task until a person deletes it.

use chrono::Duration;
use keyrot_sim::CredentialSystem;
use serde_json::json;

use crate::keeper::{Keeper, scope};
use crate::support::cli::cli;
use crate::support::{World, assert_no_key};

#[tokio::test]
async fn a_vercel_token_is_staged_rotated_serves_the_next_deploy_and_its_old_token_is_a_task() {
    let world = World::new().await;
    let (scope, prefix) = scope();
    let credentials = format!(
        "{}{}/",
        world.config.admin_prefix,
        uuid::Uuid::new_v4().simple()
    );
    let first = world.sim.vercel_token();
    let token = world
        .moto
        .create_secret_named(
            &format!("{credentials}vercel"),
            &json!({"provider": "vercel-token", "token": first}),
            &[
                ("keyrot-admin:serves", scope.as_str()),
                ("keyrot-admin:rotated", "true"),
                ("keyrot:grace-hours", "1"),
            ],
        )
        .await;
    let project = world.sim.vercel_create_project("web");
    let value = json!({"provider": "generic", "api_key": "gk-first-000000000000000000",
        "targets": [{"type": "vercel", "project": project, "team_id": world.sim.vercel_team_id(),
            "env_key": "API_KEY", "environments": ["production"], "redeploy": true,
            "token_secret": token}]});
    let managed = world.moto.create_secret(&prefix, &value, &[]).await;

    // A Render key staged into the Vercel credential fails Vercel's own check; nothing is staged.
    let (render_key, _) = world.sim.create_credential(CredentialSystem::Render);
    let wrong = cli(&world)
        .args(["stage", &token])
        .stdin(&render_key)
        .run()
        .await;
    wrong.exits_with(1);
    wrong.says(&[&token, "vercel-token"]);
    assert_no_key(&wrong.text(), &render_key, "stage's refusal");
    assert!(
        world
            .moto
            .version_of(&token, "KEYROT_STAGED")
            .await
            .is_none()
    );

    let (second, _) = world.sim.create_credential(CredentialSystem::Vercel);
    let staged = cli(&world)
        .args(["stage", &token])
        .stdin(&second)
        .run()
        .await
        .success();
    world.rotate(&token).await;
    let current = world
        .moto
        .value(&token, "AWSCURRENT", None)
        .await
        .expect("current");
    assert_eq!(
        current["token"],
        second.as_str(),
        "the token stays in its own field"
    );

    // The old token stops working at Vercel; the managed secret's deploy reads the new one.
    assert!(
        world
            .sim
            .delete_credential(CredentialSystem::Vercel, &first)
    );
    world.rotate(&managed).await;
    let key = world.current_key(&managed).await;
    assert_eq!(
        world
            .sim
            .vercel_served_value(&project, "production", "API_KEY")
            .as_deref(),
        Some(key.as_str())
    );

    // The old token was not deleted by keyrot (Vercel tokens are a person's to delete): a task, which
    // `keyrot revoked` closes once Vercel refuses the token.
    let keeper = Keeper::with_credentials(&world, &scope, &credentials).await;
    let report = keeper.pass_at(Duration::hours(2)).await;
    assert_eq!(report.tasks, 1, "{report:?}");
    let done = cli(&world).args(["revoked", &token]).run().await.success();
    done.says(&["as revoked"]);
    let report = keeper.pass_at(Duration::days(1)).await;
    assert_eq!(report.tasks, 0, "{report:?}");
    for text in [staged.text(), done.text(), crate::support::captured_logs()] {
        for secret in [&first, &second] {
            assert_no_key(&text, secret, "the CLI's output and the logs");
        }
    }
}

#[tokio::test]
async fn a_rotated_credential_serves_only_its_own_kind() {
    let world = World::new().await;
    let (scope, prefix) = scope();
    let vercel = world
        .moto
        .create_secret_named(
            &format!(
                "{}{}",
                world.config.admin_prefix,
                uuid::Uuid::new_v4().simple()
            ),
            &json!({"provider": "vercel-token", "token": world.sim.vercel_token()}),
            &[
                ("keyrot-admin:serves", scope.as_str()),
                ("keyrot-admin:rotated", "true"),
            ],
        )
        .await;
    let project = world.sim.openai_create_project();
    let (key, id) = world.sim.openai_create_user_key(&project);
    let value = json!({"provider": "openai", "api_key": key, "api_key_id": id,
        "openai": {"project_id": project, "admin_key_secret": vercel}});
    let name = world.moto.create_secret(&prefix, &value, &[]).await;
    let token = world.moto.rotate_secret(&name, true).await;
    let err = world
        .step("createSecret", &name, &token)
        .await
        .expect_err("a Vercel token is never sent to OpenAI");
    for part in [
        name.as_str(),
        "openai.admin_key_secret",
        "vercel-token",
        "fix:",
    ] {
        assert!(err.contains(part), "{part}: {err}");
    }
    assert!(
        world.sim.openai_service_accounts(&project).is_empty(),
        "nothing minted"
    );
}

#[tokio::test]
async fn an_onboarded_openai_admin_key_is_minted_anew_and_deleted_by_its_successor() {
    let world = World::new().await;
    let (scope, _) = scope();
    let credentials = format!(
        "{}{}/",
        world.config.admin_prefix,
        uuid::Uuid::new_v4().simple()
    );
    let (first, first_id) = world.sim.create_credential(CredentialSystem::Openai);

    // Under the managed prefix, keyrot's own credential is refused, and nothing is written.
    let outside = crate::support::unique("admin-key");
    let wrong = cli(&world)
        .args(["onboard", &outside])
        .flag("--provider", "openai-admin")
        .flag("--every-days", "30")
        .stdin(&first)
        .run()
        .await;
    wrong.exits_with(1);
    wrong.says(&[&outside, "--provider", "admin prefix"]);
    assert!(
        world
            .moto
            .value(&outside, "AWSCURRENT", None)
            .await
            .is_none()
    );

    let name = format!("{credentials}openai");
    let out = cli(&world)
        .args(["onboard", &name])
        .flag("--provider", "openai-admin")
        .flag("--every-days", "30")
        .flag("--grace-hours", "1")
        .stdin(&first)
        .run()
        .await
        .success();
    assert_no_key(&out.text(), &first, "onboard's output");
    let value = world
        .moto
        .value(&name, "AWSCURRENT", None)
        .await
        .expect("written");
    assert_eq!(value["provider"], "openai-admin");
    assert_eq!(
        value["key_id"],
        first_id.as_str(),
        "identified by its redacted value"
    );
    assert_eq!(world.moto.tags(&name).await["keyrot-admin:rotated"], "true");
    crate::cli::clear_configuration_test(&world, &name).await;

    world.rotate(&name).await;
    let next = world
        .moto
        .value(&name, "AWSCURRENT", None)
        .await
        .expect("current");
    let next_key = next["admin_key"].as_str().expect("admin_key").to_owned();
    assert_ne!(next_key, first);
    assert!(
        world
            .sim
            .credential_works(CredentialSystem::Openai, &next_key)
    );
    assert!(
        world.sim.credential_works(CredentialSystem::Openai, &first),
        "the old key works through its grace"
    );
    let keeper = Keeper::with_credentials(&world, &scope, &credentials).await;
    let report = keeper.pass_at(Duration::hours(2)).await;
    assert_eq!(report.revoked, 1, "{report:?}");
    assert!(!world.sim.credential_works(CredentialSystem::Openai, &first));
    assert!(
        world
            .sim
            .credential_works(CredentialSystem::Openai, &next_key)
    );
    assert_no_key(&crate::support::captured_logs(), &next_key, "the logs");
}

#[tokio::test]
async fn a_managed_secret_never_rotates_as_one_of_keyrot_s_own_credentials() {
    let world = World::new().await;
    let (_, prefix) = scope();
    let (token, _) = world.sim.create_credential(CredentialSystem::Vercel);
    // A writer of a managed secret may tag it too: the admin prefix is what they cannot reach.
    let name = world
        .moto
        .create_secret(
            &prefix,
            &json!({"provider": "vercel-token", "token": token}),
            &[("keyrot-admin:rotated", "true")],
        )
        .await;
    let pending = world.moto.rotate_secret(&name, true).await;
    let err = world
        .step("createSecret", &name, &pending)
        .await
        .expect_err("refused");
    for part in [name.as_str(), "provider", "admin prefix", "fix:"] {
        assert!(err.contains(part), "{part}: {err}");
    }
    assert_no_key(&err, &token, "the refusal");
    assert!(
        world
            .moto
            .value(&name, "AWSPENDING", Some(&pending))
            .await
            .is_none(),
        "nothing stored"
    );

    // Onboarding a copy of an admin secret's credential is refused: its rotation would revoke the key
    // the copy still serves.
    let copy = format!(
        "{}{}",
        world.config.admin_prefix,
        uuid::Uuid::new_v4().simple()
    );
    world
        .moto
        .create_secret_named(&copy, &json!({"token": token}), &[])
        .await;
    let other = format!(
        "{}{}",
        world.config.admin_prefix,
        uuid::Uuid::new_v4().simple()
    );
    let out = cli(&world)
        .args(["onboard", &other])
        .flag("--provider", "vercel-token")
        .flag("--every-days", "90")
        .stdin(&token)
        .run()
        .await;
    out.exits_with(1);
    out.says(&[&other, &copy]);
    assert!(
        world.moto.value(&other, "AWSCURRENT", None).await.is_none(),
        "nothing written"
    );
}
