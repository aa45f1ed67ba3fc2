//! Tiers on moto: `keyrot onboard --tier` and `keyrot policy set` write a secret's tier, grace and
//! maximum age as tags and the tier's interval as its own rotation rules; explicit settings win and are
//! shown as overrides; an unknown tier changes nothing.

use serde_json::Value;

use crate::support::cli::cli;
use crate::support::{World, aws, unique};

fn described(name: &str) -> Value {
    aws(&["secretsmanager", "describe-secret", "--secret-id", name])
}

fn tag(described: &Value, key: &str) -> Option<String> {
    described["Tags"]
        .as_array()?
        .iter()
        .find(|t| t["Key"] == key)
        .and_then(|t| t["Value"].as_str().map(str::to_owned))
}

async fn onboarded(world: &World, tier: &str) -> String {
    let project = world.sim.openai_create_project();
    let (key, key_id) = world.sim.openai_create_user_key(&project);
    let admin = world.admin_secret(&world.sim.openai_admin_key()).await;
    let name = unique("tier");
    cli(world)
        .args(["onboard", &name])
        .flag("--provider", "openai")
        .flag("--project-id", &project)
        .flag("--admin-key-secret", &admin)
        .flag("--api-key-id", &key_id)
        .flag("--tier", tier)
        .stdin(&key)
        .run()
        .await
        .success()
        .says(&[&format!("tier {tier}: rotation every")]);
    crate::cli::clear_configuration_test(world, &name).await;
    name
}

#[tokio::test]
async fn a_tier_sets_the_schedule_grace_and_maximum_age_and_explicit_settings_override_it() {
    let world = World::new().await;
    let name = onboarded(&world, "prod-critical").await;
    let secret = described(&name);
    assert_eq!(
        secret["RotationRules"]["AutomaticallyAfterDays"], 30,
        "{secret}"
    );
    assert_eq!(
        tag(&secret, "keyrot:tier").as_deref(),
        Some("prod-critical")
    );
    assert_eq!(tag(&secret, "keyrot:grace-hours").as_deref(), Some("24"));
    assert_eq!(tag(&secret, "keyrot:max-age-days").as_deref(), Some("31"));

    cli(&world)
        .args(["policy", "set", &name])
        .flag("--tier", "dev")
        .flag("--grace-hours", "12")
        .run()
        .await
        .success()
        .says(&[
            "tier dev: rotation every 180 days",
            "overrides the tier: grace 12 h",
        ]);
    let secret = described(&name);
    assert_eq!(
        secret["RotationRules"]["AutomaticallyAfterDays"], 180,
        "{secret}"
    );
    assert_eq!(tag(&secret, "keyrot:tier").as_deref(), Some("dev"));
    assert_eq!(tag(&secret, "keyrot:grace-hours").as_deref(), Some("12"));
    let status = cli(&world)
        .args(["status", "--secret", &name, "--json"])
        .run()
        .await
        .success()
        .json();
    assert_eq!(status[0]["tier"], "dev", "{status}");
    assert_eq!(status[0]["overrides"][0], "grace 12 h", "{status}");
}

#[tokio::test]
async fn an_unknown_tier_is_refused_with_the_tiers_there_are_and_nothing_changes() {
    let world = World::new().await;
    let name = onboarded(&world, "staging").await;
    let before = described(&name);
    let refused = cli(&world)
        .args(["policy", "set", &name])
        .flag("--tier", "gold")
        .run()
        .await;
    refused.exits_with(1);
    refused.says(&[
        &name,
        "--tier",
        "\"gold\" is not a tier",
        "prod-critical, prod, staging, dev",
    ]);
    let after = described(&name);
    assert_eq!(after["Tags"], before["Tags"]);
    assert_eq!(after["RotationRules"], before["RotationRules"]);

    let fresh = unique("tier-refused");
    let out = cli(&world)
        .args(["onboard", &fresh])
        .flag("--provider", "generic")
        .flag("--tier", "gold")
        .stdin("a-generic-key-of-thirty-two-chars-x")
        .run()
        .await;
    out.exits_with(1);
    out.says(&["--tier", "gold"]);
    let missing = aws(&[
        "secretsmanager",
        "list-secrets",
        "--filters",
        &format!("Key=name,Values={fresh}"),
    ]);
    assert_eq!(
        missing["SecretList"].as_array().map(Vec::len),
        Some(0),
        "nothing created"
    );
}
