//! Stage, rollback and repair over in-memory fakes.

use secrecy::SecretString;
use serde_json::json;

use crate::domain::Step;
use crate::domain::audit::RevocationStatus;
use crate::domain::policy::{AWSCURRENT, AWSPENDING, AWSPREVIOUS, KEYROT_STAGED};
use crate::fakes::*;

const RENDER: &str = "render:srv-1:API_KEY";

fn with_target() -> TestRotator {
    let r = rotator_with(
        json!({"provider": "generic", "api_key": OLD_KEY, "targets": [
        {"type": "render", "service_id": "srv-1", "env_key": "API_KEY", "token_secret": "t"}]}),
    );
    r.targets
        .held
        .borrow_mut()
        .insert(RENDER.into(), OLD_KEY.into());
    r
}

async fn step(r: &TestRotator, step: Step, token: &str) {
    run(r, step, token)
        .await
        .unwrap_or_else(|err| panic!("{step}: {err}"));
}

#[tokio::test]
async fn rollback_during_grace_restores_the_previous_key_everywhere_and_schedules_the_abandoned_one()
 {
    let r = with_target();
    rotate(&r, "t1").await;
    let new_key = r.store.value_of("t1").expect("new")["api_key"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(r.targets.held.borrow().get(RENDER), Some(&new_key));

    let done = r
        .rollback(NAME, "arn:aws:iam::1:user/ops")
        .await
        .expect("rollback");
    assert_eq!(
        (
            done.current_version.as_str(),
            done.abandoned_version.as_str()
        ),
        ("v0", "t1")
    );
    let stages = r.store.stages();
    assert_eq!(stages.get("v0"), Some(&vec![AWSCURRENT.to_owned()]));
    assert_eq!(stages.get("t1"), Some(&vec![AWSPREVIOUS.to_owned()]));
    assert_eq!(
        r.targets.held.borrow().get(RENDER).map(String::as_str),
        Some(OLD_KEY)
    );
    assert_eq!(
        r.targets.served(RENDER).as_deref(),
        Some(OLD_KEY),
        "redeployed and READY before returning"
    );
    let revocations = r.audit.revocations.borrow();
    assert_eq!(
        revocations.get("v0").map(|x| x.status),
        Some(RevocationStatus::Cancelled)
    );
    let abandoned = revocations
        .get("t1")
        .cloned()
        .expect("the abandoned key is scheduled");
    assert_eq!(
        (abandoned.status, abandoned.due),
        (RevocationStatus::Pending, now())
    );
    assert!(
        r.alerts
            .sent
            .borrow()
            .iter()
            .any(|a| a.event == "rotation_rolled_back")
    );
}

#[tokio::test]
async fn rollback_is_refused_once_the_old_key_is_revoked_and_changes_nothing() {
    let r = with_target();
    rotate(&r, "t1").await;
    if let Some(revocation) = r.audit.revocations.borrow_mut().get_mut("v0") {
        revocation.status = RevocationStatus::Revoked;
    }
    let before = r.store.stages();
    let err = r.rollback(NAME, "ops").await.expect_err("refused");
    assert!(err.to_string().contains("already revoked"), "{err}");
    assert_eq!(r.store.stages(), before);
    let err = rotator()
        .rollback(NAME, "ops")
        .await
        .expect_err("nothing to go back to");
    assert!(err.to_string().contains("no AWSPREVIOUS"), "{err}");
}

#[tokio::test]
async fn repair_puts_the_current_key_back_then_clears_the_label_then_schedules_the_pending_key() {
    let r = with_target();
    r.store.start_rotation("t1");
    step(&r, Step::Create, "t1").await;
    step(&r, Step::Set, "t1").await;
    // The rotation dies here: the target holds the pending key, AWSPENDING stays.
    let done = r.repair(NAME, "ops").await.expect("repair");
    assert_eq!(done.targets, [RENDER]);
    assert!(done.revocation_scheduled);
    assert_eq!(
        r.targets.held.borrow().get(RENDER).map(String::as_str),
        Some(OLD_KEY)
    );
    assert!(r.store.version_with_stage(AWSPENDING).is_none());
    assert_eq!(
        r.audit.revocations.borrow().get("t1").map(|x| x.status),
        Some(RevocationStatus::Pending)
    );
    let err = r
        .repair(NAME, "ops")
        .await
        .expect_err("nothing left to repair");
    assert!(err.to_string().contains("nothing to repair"), "{err}");
    // The next rotation can start and finish.
    rotate(&r, "t2").await;
}

#[tokio::test]
async fn staging_validates_the_key_and_clears_an_empty_placeholder() {
    let r = rotator();
    r.store.start_rotation("stuck-empty");
    let staged = r
        .stage_key(
            NAME,
            SecretString::from("sk_live_STAGEDSTAGEDSTAGED0001"),
            "ops",
        )
        .await
        .expect("staged");
    assert_eq!(staged.cleared_pending.as_deref(), Some("stuck-empty"));
    assert_eq!(
        r.store.version_with_stage(KEYROT_STAGED).as_deref(),
        Some(staged.version_id.as_str())
    );
    assert!(r.store.version_with_stage(AWSPENDING).is_none());
    assert_eq!(staged.key, "...0001");

    r.issuer
        .rejected
        .borrow_mut()
        .insert("sk_live_REJECTEDREJECTED00002".into());
    let before = r.store.stages();
    let err = r
        .stage_key(
            NAME,
            SecretString::from("sk_live_REJECTEDREJECTED00002"),
            "ops",
        )
        .await
        .expect_err("rejected");
    assert!(!err.to_string().contains("REJECTEDREJECTED"), "{err}");
    assert_eq!(r.store.stages(), before, "a refused stage changes nothing");
    let err = r
        .stage_key(NAME, SecretString::from(OLD_KEY), "ops")
        .await
        .expect_err("same key");
    assert!(err.to_string().contains("already holds"), "{err}");
}
