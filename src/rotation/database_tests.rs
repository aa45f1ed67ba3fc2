//! A database password with alternating users, over the fakes: the role not in use gets each new
//! password, the old role is locked out after its grace, and a rotation within the grace never ends an
//! old login early unless it is an emergency, nor locks out the role a later version logs in as.

use chrono::Duration;
use serde_json::{Value, json};

use crate::domain::Step;
use crate::domain::audit::RevocationStatus;
use crate::domain::policy::{AWSCURRENT, AWSPREVIOUS, TAG_GRACE_HOURS, TAG_TRIGGER};
use crate::ports::fakes::*;
use crate::ports::{Clock, SecretStore};

const FIRST_PASSWORD: &str = "FIRST-PASSWORD-0000";

fn database() -> World {
    let r = world_with(
        json!({"engine": "postgres", "username": "app", "password": FIRST_PASSWORD,
        "host": "db.internal", "port": 5432, "dbname": "shop",
        "masterarn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:keyrot-admin/db-AbCdEf",
        "targets": []}),
    );
    r.store.set_tag(TAG_GRACE_HOURS, "1");
    r.issuer
        .roles
        .borrow_mut()
        .insert("app".into(), FIRST_PASSWORD.into());
    r
}

fn value(r: &World, version: &str) -> Value {
    r.store.value_of(version).expect("the version has a value")
}

fn password_of(r: &World, role: &str) -> Option<String> {
    r.issuer.roles.borrow().get(role).cloned()
}

fn advance(r: &World, by: Duration) {
    r.clock.0.set(r.clock.now() + by);
}

#[tokio::test]
async fn each_rotation_sets_a_new_password_on_the_other_role_and_locks_out_the_old_one() {
    let r = database();
    rotate(&r, "t1").await;

    let next = value(&r, "t1");
    assert_eq!(next["username"], "app_clone");
    assert_eq!(
        next["masterarn"],
        value(&r, "v0")["masterarn"],
        "AWS's fields are kept"
    );
    assert!(next.get("api_key").is_none(), "{next}");
    let password = next["password"].as_str().expect("a password").to_owned();
    assert_ne!(password, FIRST_PASSWORD);
    assert_eq!(
        password_of(&r, "app_clone").as_deref(),
        Some(password.as_str())
    );
    assert_eq!(
        password_of(&r, "app").as_deref(),
        Some(FIRST_PASSWORD),
        "the old role logs in through its grace"
    );
    let revocation = r.audit.revocation_of("v0").expect("scheduled");
    assert_eq!(revocation.key_id.as_deref(), Some("app"));

    advance(&r, Duration::hours(2));
    let report = r.keeper().run().await.expect("pass");
    assert_eq!(report.revoked, 1, "{report:?}");
    assert_eq!(password_of(&r, "app").as_deref(), Some("LOCKED-OUT"));
    assert_eq!(r.audit.status_of("v0"), Some(RevocationStatus::Revoked));

    rotate(&r, "t2").await;
    assert_eq!(value(&r, "t2")["username"], "app", "back to the first role");
    assert_eq!(
        password_of(&r, "app").as_deref(),
        value(&r, "t2")["password"].as_str()
    );
}

#[tokio::test]
async fn a_scheduled_rotation_within_the_grace_is_refused_with_nothing_stored() {
    let r = database();
    rotate(&r, "t1").await;
    r.store.start_rotation("t2");
    let err = run(&r, Step::Create, "t2")
        .await
        .expect_err("the next role still serves AWSPREVIOUS");
    let text = err.to_string();
    assert!(text.contains("still serves AWSPREVIOUS"), "{text}");
    assert!(text.contains("--emergency"), "{text}");
    assert!(!text.contains(FIRST_PASSWORD), "{text}");
    assert!(r.store.value_of("t2").is_none(), "nothing stored");
    assert_eq!(r.issuer.minted.get(), 1, "nothing drawn for t2");
    assert_eq!(password_of(&r, "app").as_deref(), Some(FIRST_PASSWORD));
}

#[tokio::test]
async fn the_keeper_never_locks_out_the_role_a_later_version_logs_in_as() {
    let r = database();
    rotate(&r, "t1").await;
    // An emergency within the grace: the first role gets a new password at once.
    r.store.set_tag(TAG_TRIGGER, "emergency");
    rotate(&r, "t2").await;
    let current = value(&r, "t2");
    assert_eq!(current["username"], "app");
    assert_eq!(
        r.store.stages().get("t2"),
        Some(&vec![AWSCURRENT.to_string()])
    );
    assert_eq!(
        r.store.stages().get("t1"),
        Some(&vec![AWSPREVIOUS.to_string()])
    );

    // v0's revocation (role app, its first password) falls due while app is AWSCURRENT's role.
    advance(&r, Duration::hours(2));
    r.keeper().run().await.expect("pass");
    assert_eq!(
        password_of(&r, "app").as_deref(),
        current["password"].as_str(),
        "AWSCURRENT's login still works"
    );
    assert_eq!(r.audit.status_of("v0"), Some(RevocationStatus::Revoked));
    assert_eq!(
        password_of(&r, "app_clone").as_deref(),
        Some("LOCKED-OUT"),
        "t1's role went"
    );
    let text = r
        .store
        .value(NAME, AWSCURRENT, None)
        .await
        .expect("read")
        .expect("value");
    let managed = crate::domain::ManagedSecret::parse(NAME, AWSCURRENT, &text).expect("parses");
    assert_eq!(managed.key_id.as_deref(), Some("app"));
}

#[tokio::test]
async fn a_database_key_is_shown_by_its_password_not_by_its_connection_string() {
    let r = database();
    rotate(&r, "t1").await;
    let hints: Vec<Option<String>> = r
        .audit
        .events
        .borrow()
        .iter()
        .map(|e| e.old_key_hint.clone())
        .collect();
    assert!(
        hints.iter().flatten().all(|hint| hint == "0000"),
        "the old password's tail, never the connection string's (\"uire\"): {hints:?}"
    );
    let record = r.audit.revocation_of("v0").expect("scheduled");
    assert_eq!(record.hint, "...0000");
}
