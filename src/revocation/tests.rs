//! A minted key's life over the fakes: keyrot revokes a key by the ids it recorded for that key, never
//! by ids a writer put into the secret's value; and a key minted but never stored does not outlive the
//! attempt that minted it.

use chrono::Duration;
use serde_json::{Value, json};

use crate::domain::Step;
use crate::domain::audit::RevocationStatus;
use crate::domain::policy::{AWSCURRENT, TAG_GRACE_HOURS};
use crate::error::Transience;
use crate::ports::fakes::*;
use crate::ports::{AlertKind, Clock};

const OLD: &str = "sk-proj-OLDOLDOLDOLDOLDOLDOLD0ld1";

fn openai(key_id: &str) -> Value {
    json!({"provider": "openai", "api_key": OLD, "key_id": key_id,
        "openai": {"project_id": "proj_a", "admin_key_secret": "keyrot-admin/openai"}})
}

/// The secret's writer puts `value` under AWSCURRENT (PutSecretValue), without onboarding it.
fn written_by_its_writer(r: &World, value: &Value) {
    r.store
        .versions
        .borrow_mut()
        .get_mut("v0")
        .expect("the first version")
        .value = Some(value.to_string());
}

fn grace_zero(r: &World) {
    r.store.set_tag(TAG_GRACE_HOURS, "0");
}

#[tokio::test]
async fn an_id_written_into_the_value_is_never_revoked() {
    // The writer's own key, with another secret's service account named as its id.
    let r = world_with(openai("svc_acct_victim"));
    r.audit.keys.borrow_mut().clear();
    grace_zero(&r);
    rotate(&r, "t1").await;
    assert!(
        r.issuer.revoked_ids.borrow().is_empty(),
        "{:?}",
        r.issuer.revoked_ids
    );
    let record = r.audit.revocation_of("v0").expect("the old key's record");
    assert_eq!((record.key_id, record.api_key_id), (None, None));
    assert_eq!(record.status, RevocationStatus::Manual);
    assert_eq!(
        r.store.version_with_stage(AWSCURRENT).as_deref(),
        Some("t1")
    );
}

#[tokio::test]
async fn the_recorded_ids_are_revoked_whatever_the_value_says_now() {
    let r = world_with(openai("svc_acct_mine"));
    // The same key, its id rewritten to another secret's account.
    written_by_its_writer(&r, &openai("svc_acct_victim"));
    grace_zero(&r);
    rotate(&r, "t1").await;
    assert_eq!(
        *r.issuer.revoked_ids.borrow(),
        vec![(Some("svc_acct_mine".to_owned()), None)]
    );
}

#[tokio::test]
async fn a_revocation_naming_ids_its_key_record_does_not_is_left_to_a_person() {
    let r = world_with(openai("svc_acct_mine"));
    r.store.set_tag(TAG_GRACE_HOURS, "1");
    rotate(&r, "t1").await;
    // A record written before provenance, carrying the ids of the value as it was then.
    r.audit
        .revocations
        .borrow_mut()
        .get_mut("v0")
        .expect("record")
        .key_id = Some("svc_acct_victim".into());
    r.clock.0.set(r.clock.now() + Duration::hours(2));
    r.keeper().run().await.expect("pass");
    assert!(r.issuer.revoked_ids.borrow().is_empty());
    assert_eq!(r.audit.status_of("v0"), Some(RevocationStatus::Manual));
    let alert = r
        .alerts
        .sent
        .borrow()
        .iter()
        .find(|alert| alert.event == AlertKind::RevocationTask)
        .map(|alert| alert.text.clone())
        .expect("a revocation_task alert");
    assert!(alert.contains("must be revoked by a person"), "{alert}");
    assert!(
        alert.contains("never acts on ids it did not record"),
        "{alert}"
    );
}

#[tokio::test]
async fn a_minted_key_is_revoked_later_by_the_ids_its_mint_recorded() {
    let r = world();
    rotate(&r, "t1").await;
    let minted = r.store.value_of("t1").expect("t1");
    // The writer renames the minted key's id in the value it now holds.
    let mut rewritten = minted.clone();
    rewritten["key_id"] = json!("key_999");
    r.store
        .versions
        .borrow_mut()
        .get_mut("t1")
        .expect("t1")
        .value = Some(rewritten.to_string());
    grace_zero(&r);
    rotate(&r, "t2").await;
    let revoked = r.issuer.revoked_ids.borrow().clone();
    assert_eq!(
        revoked.last(),
        Some(&(minted["key_id"].as_str().map(str::to_owned), None))
    );
}

#[tokio::test]
async fn a_minted_key_that_cannot_be_recorded_is_revoked_and_never_stored() {
    let r = world();
    r.audit.fail_key_records.set(true);
    r.store.start_rotation("t1");
    run(&r, Step::Create, "t1")
        .await
        .expect_err("no record, no key");
    assert_eq!(r.issuer.minted.get(), 1);
    assert_eq!(
        *r.issuer.revoked_ids.borrow(),
        vec![(Some("key_1".to_owned()), None)]
    );
    assert_eq!(r.store.value_of("t1"), None, "nothing stored");
}

#[tokio::test]
async fn a_minted_key_whose_store_fails_is_revoked_before_the_error_and_a_retry_leaves_one_key() {
    for transience in [Transience::Final, Transience::Retryable] {
        let r = world_with(openai("svc_acct_mine"));
        r.store.start_rotation("t1");
        r.store.fail_next_put.set(Some((transience, Stored::No)));
        run(&r, Step::Create, "t1")
            .await
            .expect_err("the put failed");
        assert_eq!(
            *r.issuer.revoked_ids.borrow(),
            vec![(Some("svc_acct_1".to_owned()), None)],
            "{transience:?}: the unstored key is revoked before the error"
        );
        // Secrets Manager's retry mints again and stores that key: one live key, known.
        run(&r, Step::Create, "t1").await.expect("the retry stores");
        assert_eq!(r.issuer.minted.get(), 2);
        assert_eq!(r.issuer.revoked_ids.borrow().len(), 1);
        assert_eq!(
            r.store.value_of("t1").expect("stored")["key_id"],
            "svc_acct_2"
        );
    }
}

#[tokio::test]
async fn a_minted_key_stored_before_its_answer_was_lost_is_kept_and_the_retry_uses_it() {
    let r = world_with(openai("svc_acct_mine"));
    r.store.start_rotation("t1");
    r.store
        .fail_next_put
        .set(Some((Transience::Retryable, Stored::Yes)));
    run(&r, Step::Create, "t1")
        .await
        .expect_err("the answer was lost");
    assert!(
        r.issuer.revoked_ids.borrow().is_empty(),
        "the stored key stays"
    );
    run(&r, Step::Create, "t1")
        .await
        .expect("the retry finds it");
    assert_eq!(r.issuer.minted.get(), 1, "no second key");
    assert_eq!(
        r.store.value_of("t1").expect("stored")["key_id"],
        "svc_acct_1"
    );
}

fn still_works_alerts(r: &World) -> Vec<String> {
    r.alerts
        .sent
        .borrow()
        .iter()
        .filter(|alert| alert.details["cause"] == "key_still_works")
        .map(|alert| alert.text.clone())
        .collect()
}

#[tokio::test]
async fn a_revocation_the_provider_does_not_honour_stays_owed_and_pages() {
    // The recorded id names another key (or one already deleted, which the provider's 404 hides).
    let r = world_with(openai("svc_acct_wrong"));
    r.store.set_tag(TAG_GRACE_HOURS, "1");
    rotate(&r, "t1").await;
    r.issuer.ineffective_revocations.set(1);
    r.clock.0.set(r.clock.now() + Duration::hours(2));
    let report = r.keeper().run().await.expect("pass");
    assert_eq!((report.revoked, report.failed), (0, 1), "{report:?}");
    let record = r.audit.revocation_of("v0").expect("record");
    assert_eq!(record.status, RevocationStatus::Pending, "still owed");
    assert_eq!(record.attempts, 1);
    let alerts = still_works_alerts(&r);
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert!(
        alerts[0].contains("...0ld1"),
        "names the key's hint: {}",
        alerts[0]
    );
    assert!(alerts[0].contains("svc_acct_wrong"), "{}", alerts[0]);
    assert!(alerts[0].contains("revoke it by hand"), "{}", alerts[0]);
    assert!(
        r.alerts
            .sent
            .borrow()
            .iter()
            .all(|a| a.event != AlertKind::KeyRevoked),
        "no alert says the key is revoked"
    );

    // Once the key is really gone, the next pass sees it refused and closes the record.
    r.keeper().run().await.expect("second pass");
    assert_eq!(r.audit.status_of("v0"), Some(RevocationStatus::Revoked));
}

#[tokio::test]
async fn a_key_revoked_at_once_is_checked_refused_before_its_record_closes() {
    let r = world_with(openai("svc_acct_wrong"));
    grace_zero(&r);
    r.issuer.ineffective_revocations.set(1);
    rotate(&r, "t1").await;
    assert_eq!(r.audit.status_of("v0"), Some(RevocationStatus::Pending));
    assert_eq!(still_works_alerts(&r).len(), 1);
    assert_eq!(
        r.store.version_with_stage(AWSCURRENT).as_deref(),
        Some("t1"),
        "the rotation itself stands"
    );

    let r = world_with(openai("svc_acct_mine"));
    grace_zero(&r);
    rotate(&r, "t1").await;
    assert_eq!(r.audit.status_of("v0"), Some(RevocationStatus::Revoked));
    assert!(still_works_alerts(&r).is_empty());
    assert!(
        r.issuer.validated.borrow().iter().any(|key| key == OLD),
        "the old key was asked for after its revocation"
    );
}

/// A key whose revocation the provider accepted may die at any moment, even while keyrot cannot yet
/// see it refused: no rollback goes back to it, and its last use (keyrot's own check) holds nothing.
#[tokio::test]
async fn a_key_whose_revocation_was_sent_is_never_rolled_back_to_nor_held_for_use() {
    let r = world_with(openai("svc_acct_slow"));
    r.store.set_tag(TAG_GRACE_HOURS, "1");
    rotate(&r, "t1").await;
    r.issuer.ineffective_revocations.set(1);
    r.clock.0.set(r.clock.now() + Duration::hours(2));
    r.keeper().run().await.expect("pass");
    let record = r.audit.revocation_of("v0").expect("record");
    assert!(record.revoke_sent_at.is_some(), "{record:?}");

    let err = r
        .operator()
        .rollback(NAME, "ops")
        .await
        .expect_err("the previous key may die at any moment");
    assert!(
        err.to_string().contains("already accepted a revocation"),
        "{err}"
    );
    assert_eq!(
        r.store.version_with_stage(AWSCURRENT).as_deref(),
        Some("t1"),
        "nothing moved"
    );

    // keyrot's own check used the key a moment ago: that holds nothing.
    r.issuer.last_used.set(Some(r.clock.now()));
    r.clock.0.set(r.clock.now() + Duration::hours(2));
    r.keeper().run().await.expect("second pass");
    assert_eq!(r.audit.status_of("v0"), Some(RevocationStatus::Revoked));
}
