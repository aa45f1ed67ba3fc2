//! OpenAI and Anthropic rotations against moto and the provider simulator.

use keyrot_sim::{Fault, FaultKind};
use serde_json::json;

use crate::support::{AlertQueue, World, assert_no_key};

#[tokio::test]
async fn an_openai_key_is_minted_validated_twice_promoted_and_the_old_one_works_through_its_grace()
{
    let world = World::new().await;
    let (name, project, first_key) = world.openai_secret(&[]).await;
    let alerts = AlertQueue::subscribe(&world.moto.config.alert_topic_arn, &name);
    let original = world
        .moto
        .version_of(&name, "AWSCURRENT")
        .await
        .expect("current");
    let models_before = world.model_calls();

    let token = world.rotate(&name).await;

    let new_key = world.current_key(&name).await;
    assert!(
        new_key.starts_with("sk-svcacct-"),
        "minted through the Admin API"
    );
    let value = world
        .moto
        .value(&name, "AWSCURRENT", None)
        .await
        .expect("current");
    let accounts = world.sim.openai_service_accounts(&project);
    assert_eq!(accounts.len(), 1);
    assert_eq!(value["key_id"], accounts[0].id.as_str());
    assert_eq!(
        value["api_key_id"].as_str(),
        accounts[0].api_key_id.as_deref()
    );
    assert_eq!(
        accounts[0].name,
        keyrot::domain::keys::AccountOwner::of(&name, &world.moto.arn(&name).await)
            .account_name(&token)
    );
    assert_eq!(
        world.model_calls() - models_before,
        2,
        "validated in setSecret and again in testSecret"
    );
    assert!(world.sim.openai_key_works(&new_key));
    assert!(
        world.sim.openai_key_works(&first_key),
        "the old key stays valid through the grace period"
    );

    let items = world.moto.items(&name).await;
    let revocation = items
        .iter()
        .find(|i| i["sk"] == format!("REVOKE#{original}"))
        .expect("revocation");
    assert_eq!(revocation["provider"], "openai");
    assert_eq!(revocation["project_id"], project.as_str());
    assert!(
        revocation["api_key_id"].starts_with("key_"),
        "the person's key is revocable by its id"
    );
    let delivered = alerts.drain();
    let everything = format!("{items:?}{delivered:?}");
    let logs = crate::support::captured_logs();
    assert!(logs.contains("step succeeded"), "the logs were captured");
    for key in [&first_key, &new_key, &world.sim.openai_admin_key()] {
        assert_no_key(&everything, key, "audit items and alerts");
        assert_no_key(&logs, key, "the log lines");
    }
}

#[tokio::test]
async fn grace_zero_revokes_a_persons_key_and_then_a_minted_key_at_the_provider() {
    let world = World::new().await;
    let (name, _project, first_key) = world.openai_secret(&[("keyrot:grace-hours", "0")]).await;
    world.rotate(&name).await;
    assert!(
        !world.sim.openai_key_works(&first_key),
        "the person's key was deleted by its api_key_id"
    );
    let minted = world.current_key(&name).await;
    world.rotate(&name).await;
    assert!(
        !world.sim.openai_key_works(&minted),
        "the minted key's service account was deleted"
    );
    assert!(world.sim.openai_key_works(&world.current_key(&name).await));
    let statuses: Vec<String> = world
        .moto
        .items(&name)
        .await
        .into_iter()
        .filter(|i| i["sk"].starts_with("REVOKE#"))
        .map(|i| i["status"].clone())
        .collect();
    assert_eq!(statuses, ["revoked", "revoked"]);
}

/// OpenAI answers 404 to the deletion of an API key id it does not know, which keyrot takes as "already
/// gone": without asking the provider afterwards, an id that names no key would close the record while
/// the old key works on.
#[tokio::test]
async fn a_revocation_by_an_id_that_names_no_key_stays_owed_while_the_key_works() {
    let world = World::new().await;
    let project = world.sim.openai_create_project();
    let (first_key, _) = world.sim.openai_create_user_key(&project);
    let admin = world.admin_secret(&world.sim.openai_admin_key()).await;
    let value = json!({"provider": "openai", "api_key": first_key, "api_key_id": "key_0000nosuchkey0000",
        "openai": {"project_id": project, "admin_key_secret": admin}});
    let name = world
        .moto
        .onboard_secret("wrong-id", &value, &[("keyrot:grace-hours", "0")])
        .await;
    let alerts = AlertQueue::subscribe(&world.moto.config.alert_topic_arn, &name);
    let original = world
        .moto
        .version_of(&name, "AWSCURRENT")
        .await
        .expect("current");
    world.rotate(&name).await;

    assert!(
        world.sim.openai_key_works(&first_key),
        "nothing revoked the key"
    );
    let items = world.moto.items(&name).await;
    let record = items
        .iter()
        .find(|i| i["sk"] == format!("REVOKE#{original}"))
        .expect("the old key's record");
    assert_eq!(record["status"], "pending", "{record:?}");
    let delivered = alerts.drain();
    let paged = delivered
        .iter()
        .find(|m| {
            m["Message"]
                .as_str()
                .is_some_and(|t| t.contains("key_still_works"))
        })
        .unwrap_or_else(|| panic!("a still-works alert: {delivered:?}"));
    assert_eq!(
        paged["MessageAttributes"]["severity"]["Value"], "critical",
        "{paged}"
    );
    assert_no_key(
        &format!("{items:?}{delivered:?}"),
        &first_key,
        "audit items and alerts",
    );
}

#[tokio::test]
async fn a_mint_whose_answer_was_lost_is_not_repeated_and_the_retried_step_leaves_one_account() {
    let world = World::new().await;
    let (name, project, _) = world.openai_secret(&[]).await;
    let token = world.moto.rotate_secret(&name, true).await;
    let mint_path = format!("/v1/organization/projects/{project}/service_accounts");
    // OpenAI creates the account, then the answer never arrives.
    world.sim.inject(Fault {
        method: Some("POST".into()),
        path_prefix: mint_path.clone(),
        nth: 1,
        times: 1,
        kind: FaultKind::DropAfter,
    });
    let err = world
        .step("createSecret", &name, &token)
        .await
        .expect_err("the step fails for Secrets Manager to retry");
    assert!(err.contains("not repeated"), "{err}");
    let posts = |world: &World| {
        world
            .sim
            .calls()
            .iter()
            .filter(|c| c.method == "POST" && c.path == mint_path)
            .count()
    };
    assert_eq!(posts(&world), 1, "a mint is never repeated blindly");
    assert_eq!(world.sim.openai_service_accounts(&project).len(), 1);

    world
        .step("createSecret", &name, &token)
        .await
        .expect("the retried createSecret mints anew");
    assert_eq!(posts(&world), 2);
    let accounts = world.sim.openai_service_accounts(&project);
    assert_eq!(
        accounts.len(),
        1,
        "the account whose answer was lost is deleted once the new key is stored: {accounts:?}"
    );
}

#[tokio::test]
async fn a_crashed_create_secret_retried_leaves_no_extra_service_account() {
    let world = World::new().await;
    let (name, project, _) = world.openai_secret(&[]).await;
    let token = world.moto.rotate_secret(&name, true).await;
    let current = keyrot::domain::ManagedSecret::parse(
        &name,
        "AWSCURRENT",
        &secrecy::SecretString::from(
            world
                .moto
                .value(&name, "AWSCURRENT", None)
                .await
                .expect("current")
                .to_string(),
        ),
    )
    .expect("parses");
    let keyrot::domain::ProviderSettings::OpenAi(settings) = &current.provider else {
        panic!("openai")
    };
    // Two earlier attempts minted and died before PutSecretValue: one long ago, one moments ago.
    let account = keyrot::domain::keys::AccountOwner::of(&name, &world.moto.arn(&name).await)
        .account_name(&token);
    let old = world
        .ports
        .issuer
        .openai
        .mint(&name, settings, &account)
        .await
        .expect("mint");
    let recent = world
        .ports
        .issuer
        .openai
        .mint(&name, settings, &account)
        .await
        .expect("mint");
    let old_id = old.key_id.clone().expect("id");
    world
        .sim
        .openai_set_created_at(&old_id, chrono::Utc::now().timestamp() - 3600);

    world
        .step("createSecret", &name, &token)
        .await
        .expect("createSecret");

    let accounts = world.sim.openai_service_accounts(&project);
    assert_eq!(
        accounts.len(),
        1,
        "only the stored key's account is left: {accounts:?}"
    );
    let stored = world
        .moto
        .value(&name, "AWSPENDING", Some(&token))
        .await
        .expect("pending");
    assert_eq!(stored["key_id"], accounts[0].id.as_str());
    for lost in [&old, &recent] {
        assert!(
            !world
                .sim
                .openai_key_works(secrecy::ExposeSecret::expose_secret(&lost.api_key))
        );
    }
}

/// OpenAI may refuse a key for a few seconds after minting it: a 401 in that window is retried, and the
/// rotation goes on.
#[tokio::test]
async fn a_just_minted_key_refused_once_while_it_propagates_goes_through() {
    let world = World::new().await;
    let (name, _, _) = world.openai_secret(&[]).await;
    let token = world.moto.rotate_secret(&name, true).await;
    world
        .step("createSecret", &name, &token)
        .await
        .expect("createSecret");
    world.sim.inject(Fault {
        method: Some("GET".into()),
        path_prefix: "/v1/models".into(),
        nth: 1,
        times: 1,
        kind: FaultKind::Status {
            code: 401,
            retry_after_secs: None,
        },
    });
    world
        .step("setSecret", &name, &token)
        .await
        .expect("a 401 within the key's first seconds is propagation");
}

#[tokio::test]
async fn a_new_key_the_provider_rejects_never_reaches_awscurrent() {
    let world = World::new().await;
    let (name, _, first_key) = world.openai_secret(&[]).await;
    let token = world.moto.rotate_secret(&name, true).await;
    world
        .step("createSecret", &name, &token)
        .await
        .expect("createSecret");
    // Refused for longer than a new key's propagation is given.
    world.sim.inject(Fault {
        method: Some("GET".into()),
        path_prefix: "/v1/models".into(),
        nth: 1,
        times: 1_000,
        kind: FaultKind::Status {
            code: 401,
            retry_after_secs: None,
        },
    });
    let err = world
        .step("setSecret", &name, &token)
        .await
        .expect_err("rejected");
    assert!(err.contains("was rejected"), "{err}");
    let pending = world
        .moto
        .value(&name, "AWSPENDING", Some(&token))
        .await
        .expect("pending")["api_key"]
        .clone();
    assert_no_key(&err, pending.as_str().unwrap_or_default(), "the error");
    assert_eq!(
        world.current_key(&name).await,
        first_key,
        "AWSCURRENT still holds the old key"
    );
}

#[tokio::test]
async fn throttling_and_server_errors_are_retried_within_the_step() {
    let world = World::new().await;
    let (name, _, _) = world.openai_secret(&[]).await;
    let token = world.moto.rotate_secret(&name, true).await;
    world
        .step("createSecret", &name, &token)
        .await
        .expect("createSecret");
    world.sim.inject(Fault {
        method: None,
        path_prefix: "/v1/models".into(),
        nth: 1,
        times: 1,
        kind: FaultKind::Status {
            code: 429,
            retry_after_secs: Some(1),
        },
    });
    world.sim.inject(Fault {
        method: None,
        path_prefix: "/v1/models".into(),
        nth: 2,
        times: 1,
        kind: FaultKind::Drop,
    });
    world
        .step("setSecret", &name, &token)
        .await
        .expect("retried until it worked");
    let statuses: Vec<u16> = world
        .sim
        .calls()
        .iter()
        .filter(|c| c.path == "/v1/models")
        .map(|c| c.status)
        .collect();
    assert_eq!(statuses.first(), Some(&429));
    assert_eq!(statuses.last(), Some(&200));
}

#[tokio::test]
async fn a_refused_admin_key_fails_create_secret_naming_the_admin_secret_and_mints_nothing() {
    let world = World::new().await;
    let project = world.sim.openai_create_project();
    let (first_key, _) = world.sim.openai_create_user_key(&project);
    let admin = world.admin_secret("sk-admin-not-a-real-admin-key").await;
    let value = json!({"provider": "openai", "api_key": first_key, "openai": {"project_id": project, "admin_key_secret": admin}});
    let name = world.moto.create_secret("bad-admin", &value, &[]).await;
    let token = world.moto.rotate_secret(&name, true).await;
    let err = world
        .step("createSecret", &name, &token)
        .await
        .expect_err("refused");
    assert!(
        err.contains("openai.admin_key_secret") && err.contains(&admin),
        "{err}"
    );
    assert!(world.sim.openai_service_accounts(&project).is_empty());
    assert_eq!(
        world.moto.value(&name, "AWSPENDING", Some(&token)).await,
        None
    );

    let value = json!({"provider": "openai", "api_key": first_key, "openai": {"project_id": project, "admin_key_secret": "keyrot-admin/missing"}});
    let name = world.moto.create_secret("no-admin", &value, &[]).await;
    let token = world.moto.rotate_secret(&name, true).await;
    let err = world
        .step("createSecret", &name, &token)
        .await
        .expect_err("refused");
    assert!(
        err.contains("keyrot-admin/missing, which does not exist"),
        "{err}"
    );
}

async fn anthropic_secret(world: &World, tags: &[(&str, &str)]) -> (String, String, String) {
    anthropic_secret_named(world, "anthropic", tags).await
}

/// An onboarded Anthropic secret under `prefix`: its name, first key and that key's id.
async fn anthropic_secret_named(
    world: &World,
    prefix: &str,
    tags: &[(&str, &str)],
) -> (String, String, String) {
    let (first_key, first_id) = world.sim.anthropic_create_key("first");
    let admin = world
        .admin_secret(&json!({"admin_key": world.sim.anthropic_admin_key()}).to_string())
        .await;
    let value = json!({"provider": "anthropic", "api_key": first_key, "key_id": first_id,
        "anthropic": {"admin_key_secret": admin}});
    (
        world.moto.onboard_secret(prefix, &value, tags).await,
        first_key,
        first_id,
    )
}

#[tokio::test]
async fn an_anthropic_secret_rotates_from_a_staged_key() {
    let world = World::new().await;
    let (name, first_key, first_id) =
        anthropic_secret(&world, &[("keyrot:grace-hours", "0")]).await;
    let (staged, staged_id) = world.sim.anthropic_create_key("staged");
    world
        .moto
        .sm
        .put_secret_value()
        .secret_id(&name)
        .secret_string(json!({"api_key": staged}).to_string())
        .version_stages("KEYROT_STAGED")
        .send()
        .await
        .expect("stage");

    world.rotate(&name).await;

    assert_eq!(world.current_key(&name).await, staged);
    let value = world
        .moto
        .value(&name, "AWSCURRENT", None)
        .await
        .expect("current");
    assert_eq!(
        value["key_id"],
        staged_id.as_str(),
        "found by its partial_key_hint"
    );
    assert_eq!(
        world.sim.anthropic_key_status(&first_id).as_deref(),
        Some("inactive"),
        "grace 0: the old key is deactivated"
    );
    assert!(!world.sim.anthropic_key_works(&first_key));
    assert!(
        world
            .moto
            .version_of(&name, "KEYROT_STAGED")
            .await
            .is_none(),
        "the staged label is removed"
    );
}

#[tokio::test]
async fn an_anthropic_rotation_with_nothing_staged_alerts_key_needed_and_leaves_no_pending_label() {
    let world = World::new().await;
    let (name, first_key, _) = anthropic_secret(&world, &[]).await;
    let alerts = AlertQueue::subscribe(&world.moto.config.alert_topic_arn, &name);
    let token = world.moto.rotate_secret(&name, true).await;
    let err = world
        .step("createSecret", &name, &token)
        .await
        .expect_err("nothing staged");
    assert!(err.contains(&format!("keyrot stage {name}")), "{err}");
    assert!(world.moto.version_of(&name, "AWSPENDING").await.is_none());
    assert_eq!(world.current_key(&name).await, first_key);
    let events: Vec<String> = alerts
        .drain()
        .iter()
        .filter_map(|m| {
            m["MessageAttributes"]["event"]["Value"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert!(events.contains(&"key_needed".to_owned()), "{events:?}");
    // The secret is not stuck: a new rotation can start.
    world.moto.rotate_secret(&name, true).await;
}

/// An admin secret serves only what its own `keyrot-admin:` tags say: the managed secret's writer can
/// name it, but not make it serve their secret, touch another project, or read another managed secret's
/// key as a credential. Each refusal names the admin secret and the command that would allow it, and
/// nothing reaches the provider.
#[tokio::test]
async fn an_admin_secret_serves_only_what_its_own_tags_allow() {
    let world = World::new().await;
    let project = world.sim.openai_create_project();
    let (first_key, first_id) = world.sim.openai_create_user_key(&project);
    let admin_key = world.sim.openai_admin_key();
    let untagged = world.admin_secret_serving(&admin_key, None).await;
    let other_team = world.admin_secret_serving(&admin_key, Some("dev/")).await;
    let scoped = world.admin_secret(&admin_key).await;
    world
        .moto
        .sm
        .tag_resource()
        .secret_id(&scoped)
        .tags(
            aws_sdk_secretsmanager::types::Tag::builder()
                .key("keyrot-admin:scope")
                .value("proj_someotherproject")
                .build(),
        )
        .send()
        .await
        .expect("scope");
    // Another managed secret, named as if it held an admin key: its key must never be sent anywhere.
    let (victim, _, victim_key) = world.openai_secret(&[]).await;
    let cases = [
        (
            untagged.as_str(),
            vec!["keyrot-admin:serves", "tag-resource", untagged.as_str()],
        ),
        (
            other_team.as_str(),
            vec!["keyrot-admin:serves", "Value=\"dev/ it/\""],
        ),
        (
            scoped.as_str(),
            vec!["keyrot-admin:scope", project.as_str()],
        ),
        (
            victim.as_str(),
            vec!["not under the admin prefix keyrot-admin/"],
        ),
    ];
    for (admin, expected) in cases {
        let value = json!({"provider": "openai", "api_key": first_key, "api_key_id": first_id,
            "openai": {"project_id": project, "admin_key_secret": admin}});
        let name = world.moto.create_secret("bound", &value, &[]).await;
        let calls_before = world.sim.calls().len();
        let token = world.moto.rotate_secret(&name, true).await;
        let err = world
            .step("createSecret", &name, &token)
            .await
            .expect_err("refused");
        for fragment in expected
            .iter()
            .chain([&"openai.admin_key_secret", &name.as_str()])
        {
            assert!(err.contains(fragment), "{admin}: {fragment:?} in {err}");
        }
        assert_no_key(&err, &victim_key, "the error");
        let admin_calls: Vec<_> = world.sim.calls()[calls_before..]
            .iter()
            .filter(|c| c.path.contains("/organization/"))
            .cloned()
            .collect();
        assert!(admin_calls.is_empty(), "{admin}: {admin_calls:?}");
        assert!(world.sim.openai_service_accounts(&project).is_empty());
        assert_eq!(
            world.moto.value(&name, "AWSPENDING", Some(&token)).await,
            None,
            "{admin}: nothing was stored"
        );
    }
}

/// Anthropic reports no last use on a key, but its usage report counts each key's tokens by minute: an
/// old key a service still used within the hour is held, as OpenAI's `last_used_at` holds one, and
/// revoked once the use is an hour old.
#[tokio::test]
async fn an_old_anthropic_key_still_used_within_the_hour_is_held_by_the_usage_report() {
    let world = World::new().await;
    let (scope, prefix) = crate::keeper::scope();
    let (name, first_key, first_id) =
        anthropic_secret_named(&world, &prefix, &[("keyrot:grace-hours", "0.001")]).await;
    let (staged, _) = world.sim.anthropic_create_key("staged");
    crate::support::cli::cli(&world)
        .args(["stage", &name])
        .stdin(&staged)
        .run()
        .await
        .success();
    world.rotate(&name).await;
    assert!(
        world.sim.anthropic_use_key(&first_key),
        "a service still calls with the old key"
    );

    let keeper = crate::keeper::Keeper::new(&world, &scope).await;
    let report = keeper.pass_at(chrono::Duration::seconds(10)).await;
    assert_eq!((report.revoked, report.postponed), (0, 1), "{report:?}");
    assert!(
        world.sim.anthropic_key_works(&first_key),
        "held while in use"
    );
    let report = keeper.pass_at(chrono::Duration::hours(2)).await;
    assert_eq!(report.revoked, 1, "{report:?}");
    assert_eq!(
        world.sim.anthropic_key_status(&first_id).as_deref(),
        Some("inactive")
    );
}
