//! Keys a person creates, end to end on moto and the simulator: a Stripe key and a GitHub token
//! staged with `keyrot stage`, adopted by a rotation Secrets Manager drives, the old GitHub token
//! revoked by its value, and the old Stripe key left as a revocation task that the keeper reminds of,
//! `keyrot status` and the report show, and `keyrot revoked` closes once Stripe refuses the key.

use chrono::Duration;
use serde_json::{Value, json};

use crate::keeper::{Keeper, scope};
use crate::support::cli::cli;
use crate::support::{AlertQueue, World};

fn events_of(alerts: &[Value]) -> Vec<(String, String)> {
    alerts
        .iter()
        .filter_map(|m| {
            let event = m["MessageAttributes"]["event"]["Value"].as_str()?;
            Some((
                event.to_owned(),
                m["Message"].as_str().unwrap_or_default().to_owned(),
            ))
        })
        .collect()
}

fn assert_no_key(text: &str, keys: &[&str]) {
    for key in keys {
        assert!(!text.contains(key), "a key leaked into: {text}");
    }
}

#[tokio::test]
async fn a_stripe_key_is_adopted_and_its_old_key_is_a_task_until_a_person_records_it() {
    let world = World::new().await;
    let (scope, prefix) = scope();
    let account = world.sim.stripe_account();
    let first = world.sim.stripe_create_key(&account);
    let value = json!({"provider": "stripe", "api_key": first, "stripe": {"account": account}});
    let name = world
        .moto
        .onboard_secret(&prefix, &value, &[("keyrot:grace-hours", "1")])
        .await;
    let alerts = AlertQueue::subscribe(&world.moto.config.alert_topic_arn, &name);

    // Another account's key and a test mode key are refused, and nothing is staged.
    let foreign = world.sim.stripe_create_key("acct_someoneelse0001");
    let test_mode = world.sim.stripe_create_test_key(&account);
    for (key, says) in [
        (&foreign, "acct_someoneelse0001"),
        (&test_mode, "test mode"),
    ] {
        let out = cli(&world).args(["stage", &name]).stdin(key).run().await;
        out.exits_with(1);
        out.says(&[&name, "KEYROT_STAGED", says, "keyrot stage"]);
        assert_no_key(&out.text(), &[key, &first]);
    }
    assert!(
        world
            .moto
            .version_of(&name, "KEYROT_STAGED")
            .await
            .is_none()
    );

    let second = world.sim.stripe_create_key(&account);
    let staged = cli(&world)
        .args(["stage", &name])
        .stdin(&second)
        .run()
        .await
        .success();
    assert_no_key(&staged.text(), &[&first, &second]);
    world.rotate(&name).await;
    assert_eq!(world.current_key(&name).await, second);

    let keeper = Keeper::new(&world, &scope).await;
    let report = keeper.pass_at(Duration::hours(2)).await;
    assert_eq!((report.revoked, report.tasks), (0, 1), "{report:?}");
    assert!(
        world.sim.stripe_key_works(&first),
        "keyrot cannot revoke a Stripe key"
    );
    let status = cli(&world)
        .args(["status", "--secret", &name])
        .run()
        .await
        .success();
    status.says(&["REVOKE BY HAND", "keyrot revoked"]);
    let month = chrono::Utc::now().format("%Y-%m").to_string();
    let report_md = cli(&world)
        .args(["report", "--month", &month])
        .run()
        .await
        .success();
    report_md.says(&["Open revocation tasks", &name]);

    let early = cli(&world).args(["revoked", &name]).run().await;
    early.exits_with(1);
    early.says(&["still works at Stripe", "nothing was changed"]);

    assert!(
        world.sim.stripe_delete_key(&first),
        "the person deletes it in the Dashboard"
    );
    let done = cli(&world).args(["revoked", &name]).run().await.success();
    done.says(&["as revoked", "the provider refuses it"]);
    let report = keeper.pass_at(Duration::days(1)).await;
    assert_eq!(report.tasks, 0, "{report:?}");
    cli(&world)
        .args(["status", "--secret", &name])
        .run()
        .await
        .success()
        .says(&["OK"]);

    let sent = events_of(&alerts.drain());
    let tasks: Vec<&String> = sent
        .iter()
        .filter(|(event, _)| event == "revocation_task")
        .map(|(_, text)| text)
        .collect();
    assert_eq!(tasks.len(), 1, "one reminder before the record: {sent:?}");
    assert!(
        tasks[0].contains("https://dashboard.stripe.com/apikeys")
            && tasks[0].contains(&format!("keyrot revoked {name}")),
        "{}",
        tasks[0]
    );
    for (_, text) in &sent {
        assert_no_key(text, &[&first, &second, &foreign, &test_mode]);
    }
}

#[tokio::test]
async fn a_github_token_is_compared_adopted_and_the_old_one_revoked_by_its_value() {
    let world = World::new().await;
    let first = world
        .sim
        .github_create_token("octo-ops", &["repo", "read:org"]);
    let value = json!({"provider": "github", "api_key": first});
    let name = world
        .moto
        .onboard_secret("github", &value, &[("keyrot:grace-hours", "0")])
        .await;

    let someone_else = world
        .sim
        .github_create_token("mallory", &["repo", "read:org"]);
    let out = cli(&world)
        .args(["stage", &name])
        .stdin(&someone_else)
        .run()
        .await;
    out.exits_with(1);
    out.says(&["mallory", "octo-ops", "KEYROT_STAGED"]);
    assert!(
        world
            .moto
            .version_of(&name, "KEYROT_STAGED")
            .await
            .is_none()
    );

    let second = world
        .sim
        .github_create_token("octo-ops", &["repo", "workflow"]);
    let staged = cli(&world)
        .args(["stage", &name])
        .stdin(&second)
        .run()
        .await
        .success();
    staged.says(&["narrower", "read:org", "wider", "workflow"]);
    assert_no_key(&staged.text(), &[&first, &second]);

    world.rotate(&name).await;
    assert_eq!(world.current_key(&name).await, second);
    assert!(
        !world.sim.github_token_works(&first),
        "grace 0: the old token is revoked through POST /credentials/revoke"
    );
    assert!(world.sim.github_token_works(&second));
    assert!(
        world.sim.github_token_works(&someone_else),
        "only the old token was revoked"
    );
}

#[tokio::test]
async fn onboarding_a_stripe_key_records_its_account_and_refuses_another_one() {
    let world = World::new().await;
    let account = world.sim.stripe_account();
    let key = world.sim.stripe_create_key(&account);
    let name = crate::support::unique("stripe-onboard");
    let wrong = cli(&world)
        .args(["onboard", &name])
        .flag("--provider", "stripe")
        .flag("--stripe-account", "acct_notthisone0001")
        .flag("--every-days", "60")
        .stdin(&key)
        .run()
        .await;
    wrong.exits_with(1);
    wrong.says(&["stripe.account", "acct_notthisone0001", &account]);
    assert!(
        world.moto.value(&name, "AWSCURRENT", None).await.is_none(),
        "nothing written"
    );

    let out = cli(&world)
        .args(["onboard", &name])
        .flag("--provider", "stripe")
        .flag("--every-days", "60")
        .stdin(&key)
        .run()
        .await
        .success();
    assert_no_key(&out.text(), &[&key]);
    let value = world
        .moto
        .value(&name, "AWSCURRENT", None)
        .await
        .expect("written");
    assert_eq!(value["provider"], "stripe");
    assert_eq!(value["stripe"]["account"], account.as_str());
    assert!(
        value.get("key_id").is_none(),
        "Stripe keys have no id keyrot revokes by"
    );
}

#[tokio::test]
async fn onboarding_a_github_token_records_its_user() {
    let world = World::new().await;
    let token = world.sim.github_create_fine_grained_token("octo-ci");
    let name = crate::support::unique("github-onboard");
    cli(&world)
        .args(["onboard", &name])
        .flag("--provider", "github")
        .flag("--every-days", "180")
        .stdin(&token)
        .run()
        .await
        .success();
    let value = world
        .moto
        .value(&name, "AWSCURRENT", None)
        .await
        .expect("written");
    assert_eq!(value["github"]["login"], "octo-ci");
}
