//! The grace keeper against moto and the simulator, with a clock the test moves past grace periods.

use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};
use keyrot::keeper::{GraceKeeper, KeeperReport, KeeperSettings};
use keyrot::ports::Clock;
use keyrot::ports::Ports;
use keyrot::wiring::{self, AwsWith};
use keyrot_sim::{Fault, FaultKind};

use crate::support::{AlertQueue, World, unique};

/// Real time plus an offset the test sets.
#[derive(Default)]
struct ShiftedClock(Mutex<Duration>);

impl ShiftedClock {
    fn shift(&self, by: Duration) {
        if let Ok(mut offset) = self.0.lock() {
            *offset = by;
        }
    }
}

impl Clock for ShiftedClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.0.lock().map(|o| *o).unwrap_or_default()
    }
}

/// Runs keeper passes over one test's secrets only (its own name prefix), at a shifted time.
pub(crate) struct Keeper {
    ports: Ports<AwsWith<ShiftedClock>>,
    settings: KeeperSettings,
}

impl Keeper {
    pub(crate) async fn new(world: &World, scope: &str) -> Keeper {
        let ports = wiring::build_with_clock(&world.config, ShiftedClock::default())
            .await
            .expect("ports");
        let settings = KeeperSettings {
            rotator_arn: Some(world.moto.rotator_arn.clone()),
            name_prefix: Some(scope.to_owned()),
            ..KeeperSettings::default()
        };
        Keeper { ports, settings }
    }

    /// A keeper that also manages keyrot's own credentials under `credentials` (a prefix of the
    /// admin prefix that only this test uses).
    pub(crate) async fn with_credentials(world: &World, scope: &str, credentials: &str) -> Keeper {
        let mut keeper = Keeper::new(world, scope).await;
        keeper.settings.credentials = keyrot::keeper::Credentials::Read(credentials.to_owned());
        keeper
    }

    pub(crate) async fn pass_at(&self, offset: Duration) -> KeeperReport {
        self.ports.clock.shift(offset);
        GraceKeeper::new(&self.ports, self.settings.clone())
            .run()
            .await
            .expect("keeper pass")
    }
}

/// A name prefix no other test uses: `it/<scope>-xxxxxxxx/`.
pub(crate) fn scope() -> (String, String) {
    let scope = unique("keeper");
    let prefix = format!("{}/s", scope.trim_start_matches("it/"));
    (format!("{scope}/"), prefix)
}

#[tokio::test]
async fn an_old_openai_key_works_until_its_grace_ends_and_gets_401_after_the_next_pass() {
    let world = World::new().await;
    let (scope, prefix) = scope();
    let (name, _, first_key) = world
        .openai_secret_named(&prefix, &[("keyrot:grace-hours", "1")])
        .await;
    let alerts = AlertQueue::subscribe(&world.moto.config.alert_topic_arn, &name);
    world.rotate(&name).await;
    let keeper = Keeper::new(&world, &scope).await;

    let report = keeper.pass_at(Duration::minutes(30)).await;
    assert_eq!((report.secrets, report.revoked), (1, 0));
    assert!(
        world.sim.openai_key_works(&first_key),
        "still inside its grace period"
    );

    let report = keeper.pass_at(Duration::minutes(61)).await;
    assert_eq!(report.revoked, 1, "{report:?}");
    assert!(
        !world.sim.openai_key_works(&first_key),
        "revoked right after the grace period"
    );
    assert!(world.sim.openai_key_works(&world.current_key(&name).await));

    let report = keeper.pass_at(Duration::minutes(62)).await;
    assert_eq!(
        (report.revoked, report.alerts_sent),
        (0, 0),
        "a second pass does nothing twice"
    );
    let trail = world.moto.audit_trail(&name).await;
    assert_eq!(trail.iter().filter(|(a, _)| a == "revoke").count(), 1);
    let events: Vec<String> = alerts
        .drain()
        .iter()
        .filter_map(|m| {
            m["MessageAttributes"]["event"]["Value"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(
        events.iter().filter(|e| *e == "key_revoked").count(),
        1,
        "{events:?}"
    );
}

#[tokio::test]
async fn a_one_shot_grace_applies_to_one_rotation_only() {
    let world = World::new().await;
    let (_, prefix) = scope();
    let (name, _, first_key) = world
        .openai_secret_named(&prefix, &[("keyrot:next-grace-hours", "0")])
        .await;
    world.rotate(&name).await;
    assert!(
        !world.sim.openai_key_works(&first_key),
        "grace 0: revoked in finishSecret"
    );
    let second = world.current_key(&name).await;
    world.rotate(&name).await;
    assert!(
        world.sim.openai_key_works(&second),
        "the next rotation has the permanent 24 h grace again"
    );
}

#[tokio::test]
async fn a_recently_used_old_key_is_postponed() {
    let world = World::new().await;
    let (scope, prefix) = scope();
    let (name, _, first_key) = world
        .openai_secret_named(&prefix, &[("keyrot:grace-hours", "0.25")])
        .await;
    world.rotate(&name).await;
    // The last service still on the old key uses it now.
    let used = reqwest::Client::new()
        .get(format!("{}/models", world.sim.openai_base_url()))
        .bearer_auth(&first_key)
        .send()
        .await
        .expect("simulator answers");
    assert!(used.status().is_success());
    let keeper = Keeper::new(&world, &scope).await;
    let report = keeper.pass_at(Duration::minutes(20)).await;
    assert_eq!((report.postponed, report.revoked), (1, 0), "{report:?}");
    assert!(world.sim.openai_key_works(&first_key));
    let report = keeper.pass_at(Duration::minutes(90)).await;
    assert_eq!(
        report.revoked, 1,
        "an hour after its last use it goes: {report:?}"
    );
    assert!(!world.sim.openai_key_works(&first_key));
}

#[tokio::test]
async fn a_revocation_that_fails_at_the_provider_is_retried_on_the_next_pass() {
    let world = World::new().await;
    let (scope, prefix) = scope();
    let (name, _, _) = world
        .openai_secret_named(&prefix, &[("keyrot:grace-hours", "1")])
        .await;
    world.rotate(&name).await;
    let minted = world.current_key(&name).await;
    world.rotate(&name).await;
    world.sim.inject(Fault {
        method: Some("DELETE".into()),
        path_prefix: "/v1/organization/projects/".into(),
        nth: 1,
        times: 10,
        kind: FaultKind::Status {
            code: 503,
            retry_after_secs: None,
        },
    });
    let keeper = Keeper::new(&world, &scope).await;
    let report = keeper.pass_at(Duration::minutes(70)).await;
    assert!(report.failed >= 1, "{report:?}");
    assert!(world.sim.openai_key_works(&minted));
    world.sim.clear_faults();
    let report = keeper.pass_at(Duration::minutes(71)).await;
    assert!(report.revoked >= 1, "{report:?}");
    assert!(!world.sim.openai_key_works(&minted));
    let items = world.moto.items(&name).await;
    let attempts: Vec<&str> = items
        .iter()
        .filter(|i| i["sk"].starts_with("REVOKE#"))
        .map(|i| i["attempts"].as_str())
        .collect();
    assert!(
        attempts.contains(&"1"),
        "the failed attempt is counted: {attempts:?}"
    );
}

#[tokio::test]
async fn an_overdue_key_and_a_stuck_rotation_alert_once() {
    let world = World::new().await;
    let (scope, prefix) = scope();
    let (name, _, _) = world
        .openai_secret_named(&prefix, &[("keyrot:max-age-days", "1")])
        .await;
    world.moto.rotate_secret(&name, true).await; // left pending: nobody runs the steps
    let keeper = Keeper::new(&world, &scope).await;
    let report = keeper.pass_at(Duration::days(2)).await;
    assert_eq!((report.overdue, report.stuck), (1, 1), "{report:?}");
    let report = keeper
        .pass_at(Duration::days(2) + Duration::minutes(15))
        .await;
    assert_eq!(report.alerts_sent, 0, "deduplicated: {report:?}");
}

/// One key under two managed secrets (the same key onboarded twice): when one rotates away from it,
/// its revocation waits while the other's AWSCURRENT still holds it.
#[tokio::test]
async fn a_key_another_managed_secret_still_holds_is_not_revoked() {
    let world = World::new().await;
    let (scope, prefix) = scope();
    let shared =
        serde_json::json!({"provider": "generic", "api_key": "gk-sharedsharedsharedshared0001"});
    let rotating = world
        .moto
        .create_secret(&prefix, &shared, &[("keyrot:grace-hours", "1")])
        .await;
    let other = world.moto.create_secret(&prefix, &shared, &[]).await;
    // The keeper sees both as keyrot's: the second one is rotated by keyrot too.
    world.moto.rotate_secret(&other, false).await;
    world.rotate(&rotating).await;
    let keeper = Keeper::new(&world, &scope).await;
    let report = keeper.pass_at(Duration::hours(2)).await;
    assert_eq!((report.revoked, report.postponed), (0, 1), "{report:?}");
    let items = world.moto.items(&rotating).await;
    let record = items
        .iter()
        .find(|i| i["sk"].starts_with("REVOKE#"))
        .expect("the old key's record");
    assert_eq!(record["status"], "pending", "{record:?}");
    let trail = format!("{:?}", world.moto.items(&rotating).await);
    assert!(
        trail.contains(&format!("managed secret {other} still holds the key")),
        "{trail}"
    );
}

/// A critical alert SNS refused (here: a topic that does not exist) is parked in DynamoDB, and the
/// next keeper pass publishes it to the real topic: critical alerts are at-least-once.
#[tokio::test]
async fn a_critical_alert_sns_refused_reaches_people_on_the_next_keeper_pass() {
    let world = World::new().await;
    let topic = world.moto.config.alert_topic_arn.clone();
    let unreachable = World::configured(|config| config.alert_topic_arn.push_str("-gone")).await;
    let (scope, prefix) = scope();
    let name = unreachable
        .moto
        .create_secret(&prefix, &serde_json::json!({"provider": "generic"}), &[])
        .await;
    let alerts = AlertQueue::subscribe(&topic, &name);
    let token = unreachable.moto.rotate_secret(&name, true).await;
    unreachable
        .step("createSecret", &name, &token)
        .await
        .expect_err("no api_key");
    assert!(alerts.drain().is_empty(), "the Publish failed");
    let parked: Vec<_> = world
        .moto
        .partition("OUTBOX")
        .await
        .into_iter()
        .filter(|item| item["secret_name"] == name.as_str())
        .collect();
    assert_eq!(parked.len(), 1, "{parked:?}");
    assert_eq!(parked[0]["event"], "rotation_failed");

    Keeper::new(&world, &scope)
        .await
        .pass_at(Duration::zero())
        .await;
    let delivered = alerts.drain();
    let events: Vec<&str> = delivered
        .iter()
        .filter_map(|m| m["MessageAttributes"]["event"]["Value"].as_str())
        .collect();
    assert_eq!(events, ["rotation_failed"], "{delivered:?}");
    let left = world.moto.partition("OUTBOX").await;
    assert!(
        left.iter().all(|item| item["secret_name"] != name.as_str()),
        "forgotten once delivered"
    );
}

/// A revocation record keyrot cannot read (an unknown status, written by hand or by a newer release)
/// is named in the pass's errors, never skipped in silence: a key nobody revokes would be the result.
#[tokio::test]
async fn an_unreadable_revocation_record_is_reported_by_the_pass() {
    use aws_sdk_dynamodb::types::AttributeValue::S;
    let world = World::new().await;
    let (scope, prefix) = scope();
    let name = format!("{scope}{}", prefix.rsplit('/').next().unwrap_or("x"));
    let due = (Utc::now() - Duration::hours(1)).to_rfc3339();
    world
        .moto
        .ddb
        .put_item()
        .table_name(&world.config.audit_table)
        .item("pk", S(format!("SECRET#{name}")))
        .item("sk", S("REVOKE#v-unreadable".into()))
        .item("gsi2pk", S("REVOKE#PENDING".into()))
        .item("gsi2sk", S(due.clone()))
        .item("secret_name", S(name.clone()))
        .item("old_version_id", S("v-unreadable".into()))
        .item("provider", S("openai".into()))
        .item("kind", S("revocation".into()))
        .item("fingerprint", S("0123456789ab".into()))
        .item("due", S(due))
        .item("status", S("bogus".into()))
        .send()
        .await
        .expect("a hand-written record");
    let report = Keeper::new(&world, "it/nothing-else-")
        .await
        .pass_at(Duration::zero())
        .await;
    let named = report
        .errors
        .iter()
        .find(|e| e.contains(&format!("SECRET#{name}/REVOKE#v-unreadable")))
        .unwrap_or_else(|| panic!("{report:?}"));
    assert!(named.contains("field status is \"bogus\""), "{named}");
}

/// keyrot redeploys production only. A live preview (the newest of its branch, made this week) built
/// before the variable changed still runs the old key: its revocation waits, naming the preview, until
/// the branch has a preview built with the new key.
#[tokio::test]
async fn a_live_preview_built_with_the_old_key_holds_its_revocation() {
    let world = World::new().await;
    let (name, _, vercel, _) = world
        .openai_secret_with_targets(&[("keyrot:grace-hours", "1")])
        .await;
    world.rotate(&name).await;
    let old_key = world.current_key(&name).await;
    let preview = world
        .sim
        .vercel_create_preview(&vercel, "feature-x")
        .expect("a preview");
    world.rotate(&name).await;
    let keeper = Keeper::new(&world, &name).await;

    // Both earlier keys are due; the preview holds them (it may run either: keyrot cannot read what a
    // deployment was built with, only when).
    let report = keeper.pass_at(Duration::minutes(90)).await;
    assert_eq!((report.revoked, report.postponed), (0, 2), "{report:?}");
    assert!(
        world.sim.openai_key_works(&old_key),
        "the preview still works"
    );
    let items = world.moto.items(&name).await;
    let postponed = items
        .iter()
        .filter(|i| i.get("action").is_some_and(|a| a == "revoke"))
        .filter_map(|i| i.get("error"))
        .find(|note| note.contains("preview"))
        .unwrap_or_else(|| panic!("a postponement naming the preview: {items:?}"));
    let url = world
        .sim
        .vercel_deployments(&vercel)
        .into_iter()
        .find(|d| d.id == preview)
        .map(|d| d.id)
        .expect("listed");
    assert!(!url.is_empty());
    assert!(
        postponed.contains(".vercel.app"),
        "names where it runs: {postponed}"
    );

    // A push to the branch builds a preview with the new key: nothing runs the old one any more.
    world
        .sim
        .vercel_create_preview(&vercel, "feature-x")
        .expect("a new preview");
    let report = keeper.pass_at(Duration::minutes(160)).await;
    assert_eq!(report.revoked, 2, "{report:?}");
    assert!(!world.sim.openai_key_works(&old_key));
}

/// A preview built before keyrot minted a key cannot run it: that key's revocation goes ahead, while
/// the keys the preview may run stay held. Before, one old preview held every later key alive.
#[tokio::test]
async fn a_preview_older_than_a_minted_key_does_not_hold_its_revocation() {
    let world = World::new().await;
    let (name, _, vercel, _) = world
        .openai_secret_with_targets(&[("keyrot:grace-hours", "1")])
        .await;
    world.rotate(&name).await;
    let second = world.current_key(&name).await;
    world
        .sim
        .vercel_create_preview(&vercel, "feature-x")
        .expect("a preview, built with the second key");
    world.rotate(&name).await;
    let third = world.current_key(&name).await;
    world.rotate(&name).await;
    let keeper = Keeper::new(&world, &name).await;
    let report = keeper.pass_at(Duration::minutes(90)).await;
    // The first (onboarded: its birth unknown) and the second may run in the preview; the third
    // was minted after it was built.
    assert_eq!((report.revoked, report.postponed), (1, 2), "{report:?}");
    assert!(
        !world.sim.openai_key_works(&third),
        "the third key is revoked"
    );
    assert!(
        world.sim.openai_key_works(&second),
        "the preview's key lives"
    );
}

/// Another managed secret's target serving the same key (someone pasted one secret's key into another
/// secret's service) is a use of that key: its revocation waits, naming that target.
#[tokio::test]
async fn a_key_another_managed_secrets_target_serves_is_not_revoked() {
    let world = World::new().await;
    let (scope, prefix) = scope();
    let project = world.sim.openai_create_project();
    let admin = world.admin_secret(&world.sim.openai_admin_key()).await;
    let token = world.admin_secret(&world.sim.render_token()).await;
    let secret = |key: &str, id: &str, targets: serde_json::Value| {
        serde_json::json!({"provider": "openai", "api_key": key, "api_key_id": id, "targets": targets,
            "openai": {"project_id": project, "admin_key_secret": admin}})
    };
    let (first_key, first_id) = world.sim.openai_create_user_key(&project);
    let rotating = world
        .moto
        .onboard_secret(
            &prefix,
            &secret(&first_key, &first_id, serde_json::json!([])),
            &[("keyrot:grace-hours", "1")],
        )
        .await;
    let (other_key, other_id) = world.sim.openai_create_user_key(&project);
    let service = world.sim.render_create_service();
    let targets = serde_json::json!([{"type": "render", "service_id": service, "env_key": "OPENAI_API_KEY",
        "deploy": true, "token_secret": token}]);
    let other = world
        .moto
        .onboard_secret(
            &prefix,
            &secret(&other_key, &other_id, targets),
            &[("keyrot:grace-hours", "1")],
        )
        .await;
    let pasted = reqwest::Client::new()
        .put(format!(
            "{}/v1/services/{service}/env-vars/OPENAI_API_KEY",
            world.sim.render_base_url()
        ))
        .bearer_auth(world.sim.render_token())
        .json(&serde_json::json!({"value": first_key}))
        .send()
        .await
        .expect("put");
    assert!(pasted.status().is_success(), "{}", pasted.status());
    world.rotate(&rotating).await;

    let report = Keeper::new(&world, &scope)
        .await
        .pass_at(Duration::hours(2))
        .await;
    assert_eq!(report.revoked, 0, "{report:?}");
    assert!(
        world.sim.openai_key_works(&first_key),
        "the other service still uses it"
    );
    let trail = format!("{:?}", world.moto.items(&rotating).await);
    let holder = format!(
        "target render:{service}:OPENAI_API_KEY of managed secret {other} still holds the key"
    );
    assert!(trail.contains(&holder), "{trail}");
}
