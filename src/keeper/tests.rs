//! The grace keeper over in-memory fakes: revocation after grace, postponement while in use or held by a
//! target, retry after failure, and each watch alerting once.

use chrono::Duration;
use serde_json::json;

use super::*;
use crate::domain::Step;
use crate::domain::audit::RevocationStatus;
use crate::domain::policy::{AWSCURRENT, AWSPENDING};
use crate::domain::policy::{TAG_GRACE_HOURS, TAG_TRIGGER};
use crate::ports::fakes::*;
use crate::ports::{AlertKind, MintedKey, StageMove};
use crate::ports::{Clock, SecretStore};
use crate::rotation::Progress;

fn keeper(r: &World) -> GraceKeeper<'_, Fake> {
    r.keeper()
}

/// A rotation that does its work in every step, dated now.
async fn rotate(r: &World, token: &str) {
    for (step, progress) in Step::ALL
        .into_iter()
        .zip(crate::ports::fakes::rotate(r, token).await)
    {
        assert_eq!(progress, Progress::Done, "{step}");
    }
    r.store.last_rotated.set(Some(r.clock.now()));
}

/// A rotator whose secret keeps old keys for one hour.
fn with_one_hour_grace() -> World {
    let r = world();
    r.store.set_tag(TAG_GRACE_HOURS, "1");
    r
}

/// A rotation to t1 whose old key's one-hour grace ended an hour ago.
async fn rotated_past_its_grace() -> World {
    let r = with_one_hour_grace();
    rotate(&r, "t1").await;
    advance(&r, Duration::hours(2));
    r
}

fn advance(r: &World, by: Duration) {
    r.clock.0.set(r.clock.now() + by);
}

fn events(r: &World) -> Vec<&'static str> {
    r.alerts
        .kinds()
        .into_iter()
        .map(AlertKind::as_str)
        .collect()
}

fn status_of(r: &World, version: &str) -> RevocationStatus {
    r.audit
        .revocations
        .borrow()
        .get(version)
        .map(|rev| rev.status)
        .unwrap_or(RevocationStatus::Cancelled)
}

#[tokio::test]
async fn a_panic_in_one_revocation_costs_the_others_nothing() {
    let r = with_one_hour_grace();
    rotate(&r, "t1").await;
    rotate(&r, "t2").await;
    advance(&r, Duration::hours(2));
    r.issuer.panic_revocations.set(1);
    let report = keeper(&r).run().await.expect("the pass goes on");
    assert_eq!(report.revoked, 1, "{report:?}");
    assert!(
        report
            .errors
            .iter()
            .any(|e| e.contains(NAME) && e.contains("failed unexpectedly")),
        "{report:?}"
    );
    assert_eq!(r.issuer.revoked_versions().len(), 1);
}

#[tokio::test]
async fn the_old_key_is_revoked_only_after_its_grace_and_only_once() {
    let r = world();
    r.store.set_tag(TAG_GRACE_HOURS, "2");
    rotate(&r, "t1").await;
    r.alerts.sent.borrow_mut().clear();

    advance(&r, Duration::minutes(119));
    let report = keeper(&r).run().await.expect("pass");
    assert_eq!(report.revoked, 0, "still in its grace period");
    assert_eq!(status_of(&r, "v0"), RevocationStatus::Pending);

    advance(&r, Duration::minutes(2));
    let report = keeper(&r).run().await.expect("pass");
    assert_eq!(report.revoked, 1);
    assert_eq!(r.issuer.revoked_versions(), ["v0".to_owned()]);
    assert_eq!(status_of(&r, "v0"), RevocationStatus::Revoked);
    assert_eq!(events(&r), ["key_revoked"]);

    let report = keeper(&r).run().await.expect("second pass");
    assert_eq!(
        (report.revoked, report.alerts_sent),
        (0, 0),
        "nothing twice"
    );
    assert_eq!(r.issuer.revoked_versions().len(), 1);
    let revokes = r
        .audit
        .events
        .borrow()
        .iter()
        .filter(|e| e.action == "revoke")
        .count();
    assert_eq!(revokes, 1);
}

#[tokio::test]
async fn a_key_used_within_the_hour_is_postponed_up_to_the_limit_then_forced() {
    let r = with_one_hour_grace();
    rotate(&r, "t1").await;
    r.alerts.sent.borrow_mut().clear();
    let mut k = keeper(&r);
    k.settings.postpone_limit = 2;
    for round in 1..=2 {
        advance(&r, Duration::minutes(61));
        r.issuer
            .last_used
            .set(Some(r.clock.now() - Duration::minutes(5)));
        let report = k.run().await.expect("pass");
        assert_eq!((report.postponed, report.revoked), (1, 0), "round {round}");
    }
    assert_eq!(events(&r), ["revocation_postponed", "revocation_postponed"]);
    advance(&r, Duration::minutes(61));
    r.issuer
        .last_used
        .set(Some(r.clock.now() - Duration::minutes(5)));
    let report = k.run().await.expect("pass");
    assert_eq!(report.revoked, 1, "forced after the limit");
    let last = r.alerts.sent.borrow().last().cloned().expect("alert");
    assert_eq!(
        (last.event.as_str(), last.severity),
        ("key_revoked", crate::ports::Severity::Critical)
    );
}

#[tokio::test]
async fn a_key_still_held_by_a_target_or_current_again_is_never_revoked() {
    let r = world_with(
        json!({"provider": "generic", "api_key": OLD_KEY, "targets": [
        {"type": "render", "service_id": "srv-1", "env_key": "API_KEY", "token_secret": "t"}]}),
    );
    r.targets.hold("render:srv-1:API_KEY", OLD_KEY);
    r.store.set_tag(TAG_GRACE_HOURS, "1");
    rotate(&r, "t1").await;
    // Someone put the old key back on the service by hand.
    r.targets.hold("render:srv-1:API_KEY", OLD_KEY);
    advance(&r, Duration::hours(2));
    let report = keeper(&r).run().await.expect("pass");
    assert_eq!((report.revoked, report.postponed), (0, 1));
    assert!(r.issuer.revoked_versions().is_empty());

    // A version that carries AWSPENDING (a repair under way) is waited for, neither revoked nor
    // cancelled.
    r.targets.hold("render:srv-1:API_KEY", "another-key");
    r.store
        .move_stage(NAME, AWSPENDING, StageMove::Onto("v0"))
        .await
        .expect("label");
    advance(&r, Duration::hours(2));
    let report = keeper(&r).run().await.expect("pass");
    assert_eq!((report.revoked, report.postponed), (0, 1));
    assert_eq!(status_of(&r, "v0"), RevocationStatus::Pending);
    r.store
        .move_stage(NAME, AWSPENDING, StageMove::Off("v0"))
        .await
        .expect("unlabel");

    // A rollback made the old version current again: its revocation is cancelled, never executed.
    r.store
        .move_stage(
            NAME,
            AWSCURRENT,
            StageMove::Across {
                from: "t1",
                to: "v0",
            },
        )
        .await
        .expect("rollback");
    advance(&r, Duration::hours(2));
    keeper(&r).run().await.expect("pass");
    assert!(r.issuer.revoked_versions().is_empty());
    assert_eq!(status_of(&r, "v0"), RevocationStatus::Cancelled);
}

#[tokio::test]
async fn a_revocation_a_rollback_cancelled_after_the_pass_read_it_is_not_executed() {
    let r = rotated_past_its_grace().await;
    // The pass read the record as pending and found nothing holding the key; a rollback cancels the
    // record before the pass claims it.
    *r.audit.raced_before_update.borrow_mut() = Some(("v0".into(), RevocationStatus::Cancelled));
    let report = keeper(&r).run().await.expect("pass");
    assert_eq!(report.revoked, 0);
    assert!(
        r.issuer.revoked_versions().is_empty(),
        "the claim failed, so no call to the provider"
    );
    assert_eq!(status_of(&r, "v0"), RevocationStatus::Cancelled);
}

#[tokio::test]
async fn a_version_made_current_after_the_pass_looked_is_not_revoked() {
    let r = rotated_past_its_grace().await;
    // A rollback moves AWSCURRENT back to v0 after the pass's fresh look at the secret (its second
    // DescribeSecret), before the look it takes once it holds the claim (the third).
    *r.store.current_moves_before_describe.borrow_mut() = Some((3, "v0".into()));
    let report = keeper(&r).run().await.expect("pass");
    assert_eq!(report.revoked, 0);
    assert!(
        r.issuer.revoked_versions().is_empty(),
        "never revoked under AWSCURRENT"
    );
    assert_eq!(
        status_of(&r, "v0"),
        RevocationStatus::Pending,
        "the claim is released"
    );
    // The next pass sees it current and cancels it.
    keeper(&r).run().await.expect("pass");
    assert_eq!(status_of(&r, "v0"), RevocationStatus::Cancelled);
}

#[tokio::test]
async fn a_claimed_revocation_whose_pass_died_is_taken_up_by_the_next_pass() {
    let r = rotated_past_its_grace().await;
    // A process claimed it just now: it is theirs, and this pass leaves it alone.
    r.audit.claim("v0", r.clock.now());
    let report = keeper(&r).run().await.expect("pass");
    assert_eq!((report.revoked, report.postponed, report.failed), (0, 0, 0));
    assert_eq!(status_of(&r, "v0"), RevocationStatus::Revoking);
    // That process died: once the claim's lease ends, the next pass takes it over.
    advance(&r, crate::domain::audit::CLAIM_LEASE);
    let report = keeper(&r).run().await.expect("pass");
    assert_eq!(report.revoked, 1);
    assert_eq!(status_of(&r, "v0"), RevocationStatus::Revoked);
    assert_eq!(r.audit.revocation_of("v0").and_then(|r| r.claimed_at), None);
}

#[tokio::test]
async fn the_same_key_back_under_another_version_is_never_revoked() {
    let r = with_one_hour_grace();
    rotate(&r, "t1").await;
    // Someone put the old key back as a new version (put-secret-value): AWSCURRENT is not v0, yet
    // it holds v0's key.
    let old_value = r.store.versions.borrow()["v0"].value.clone();
    r.store.versions.borrow_mut().insert(
        "by-hand".into(),
        Version {
            value: old_value,
            stages: Vec::new(),
        },
    );
    r.store
        .move_stage(
            NAME,
            AWSCURRENT,
            StageMove::Across {
                from: "t1",
                to: "by-hand",
            },
        )
        .await
        .expect("put back by hand");
    advance(&r, Duration::hours(2));
    keeper(&r).run().await.expect("pass");
    assert!(r.issuer.revoked_versions().is_empty());
    assert_eq!(status_of(&r, "v0"), RevocationStatus::Cancelled);
}

#[tokio::test]
async fn a_due_revocation_waits_while_the_current_value_cannot_be_read() {
    let r = world_with(
        json!({"provider": "generic", "api_key": OLD_KEY, "targets": [
        {"type": "render", "service_id": "srv-1", "env_key": "API_KEY", "token_secret": "t"}]}),
    );
    r.store.set_tag(TAG_GRACE_HOURS, "1");
    rotate(&r, "t1").await;
    // The current value is no longer keyrot's format: which targets may hold the old key is unknown.
    r.store
        .versions
        .borrow_mut()
        .get_mut("t1")
        .expect("current")
        .value = Some("not json".into());
    advance(&r, Duration::hours(2));
    let report = keeper(&r).run().await.expect("pass");
    assert_eq!((report.revoked, report.postponed), (0, 1));
    assert!(r.issuer.revoked_versions().is_empty());
    assert_eq!(status_of(&r, "v0"), RevocationStatus::Pending);
    assert!(
        report
            .errors
            .iter()
            .any(|e| e.contains("orphan check skipped")),
        "{:?}",
        report.errors
    );
}

#[tokio::test]
async fn a_failed_revocation_is_retried_next_run_and_alerted_after_repeated_failures() {
    let r = with_one_hour_grace();
    rotate(&r, "t1").await;
    r.alerts.sent.borrow_mut().clear();
    advance(&r, Duration::hours(2));
    r.issuer.fail_revocations.set(3);
    for attempt in 1..=3 {
        let report = keeper(&r).run().await.expect("pass");
        assert_eq!(report.failed, 1, "attempt {attempt}");
        let attempts = r
            .audit
            .revocations
            .borrow()
            .get("v0")
            .map(|rev| rev.attempts);
        assert_eq!(attempts, Some(attempt));
    }
    assert_eq!(
        events(&r),
        ["revocation_failed"],
        "alerted once the failures repeat"
    );
    let report = keeper(&r).run().await.expect("pass");
    assert_eq!(report.revoked, 1, "the next run succeeds");
}

#[tokio::test]
async fn upcoming_overdue_stuck_and_orphans_each_alert_once() {
    let r = world();
    let now = r.clock.now();
    r.store.last_rotated.set(Some(now - Duration::days(95)));
    r.store.next_rotation.set(Some(now + Duration::days(3)));
    // A rotation left pending for two hours.
    r.store.start_rotation("stuck");
    r.store
        .created
        .borrow_mut()
        .insert("stuck".into(), now - Duration::hours(2));
    r.issuer.minted_keys.borrow_mut().push(MintedKey {
        id: "svc_acct_orphan".into(),
        name: "keyrot-prod-generic-deadbeef".into(),
        created_at: now - Duration::hours(5),
        scope: "proj_1".into(),
    });
    let report = keeper(&r).run().await.expect("pass");
    assert_eq!((report.upcoming, report.overdue, report.stuck), (1, 1, 1));
    assert_eq!(
        events(&r),
        ["rotation_upcoming", "rotation_overdue", "rotation_stuck"]
    );
    let stuck = r
        .alerts
        .sent
        .borrow()
        .iter()
        .find(|a| a.event == "rotation_stuck")
        .cloned()
        .expect("stuck");
    assert!(
        stuck.text.contains(&format!("keyrot repair {NAME}")),
        "{}",
        stuck.text
    );

    keeper(&r).run().await.expect("second pass");
    assert_eq!(events(&r).len(), 3, "each alerts once");
    let audited = r
        .audit
        .events
        .borrow()
        .iter()
        .filter(|e| e.action == "alert")
        .count();
    assert_eq!(audited, 3, "every alert sent is audited");
}

#[tokio::test]
async fn orphans_are_keys_no_version_or_pending_revocation_knows() {
    let r = world_with(
        json!({"provider": "openai", "api_key": OLD_KEY, "key_id": "svc_acct_current",
        "openai": {"project_id": "proj_1", "admin_key_secret": "a"}}),
    );
    let now = r.clock.now();
    let minted = |id: &str, age_hours: i64| MintedKey {
        id: id.into(),
        name: format!("keyrot-prod-generic-{}", &id[id.len().saturating_sub(8)..]),
        created_at: now - Duration::hours(age_hours),
        scope: "proj_1".into(),
    };
    r.issuer.minted_keys.borrow_mut().extend([
        minted("svc_acct_current", 48),
        minted("svc_acct_young", 0),
        minted("svc_acct_lost", 3),
    ]);
    let report = keeper(&r).run().await.expect("pass");
    assert_eq!(report.orphans, 1);
    let alert = r
        .alerts
        .sent
        .borrow()
        .iter()
        .find(|a| a.event == "orphan_key")
        .cloned()
        .expect("orphan alert");
    assert_eq!(alert.details["key_id"], "svc_acct_lost");
    assert!(alert.text.contains("keyrot orphans --delete"));
}

#[tokio::test]
async fn managed_secrets_are_those_of_our_rotator_or_with_a_keyrot_tag() {
    let r = world();
    r.store.set_tag(TAG_TRIGGER, "manual");
    let mut k = keeper(&r);
    k.settings.rotator_arn = Some("arn:aws:lambda:us-east-1:123456789012:function:another".into());
    let report = k.run().await.expect("pass");
    assert_eq!(
        report.secrets, 1,
        "a keyrot: tag marks the secret as managed"
    );
    r.store.tags.borrow_mut().clear();
    let report = k.run().await.expect("pass");
    assert_eq!(report.secrets, 0, "neither our rotator nor a keyrot: tag");
    k.settings.rotator_arn =
        Some("arn:aws:lambda:us-east-1:123456789012:function:keyrot-rotator".into());
    assert_eq!(
        k.run().await.expect("pass").secrets,
        1,
        "our rotator, whatever the alias"
    );
}

#[tokio::test]
async fn an_awsprevious_without_a_revocation_record_is_recorded_and_revoked_after_its_grace() {
    let r = with_one_hour_grace();
    rotate(&r, "t1").await;
    // finishSecret moved the label and died before it recorded the old key; nobody retried it.
    r.audit.revocations.borrow_mut().remove("v0");
    let report = keeper(&r).run().await.expect("pass");
    assert_eq!(report.previous_recorded, 1, "{report:?}");
    let record = r.audit.revocation_of("v0").expect("recorded");
    assert_eq!(
        record.due,
        r.clock.now() + Duration::hours(1),
        "the secret's grace, from now"
    );
    assert!(
        r.issuer.revoked_versions().is_empty(),
        "not before its grace"
    );
    advance(&r, Duration::hours(2));
    let report = keeper(&r).run().await.expect("pass");
    assert_eq!(
        (report.revoked, report.previous_recorded),
        (1, 0),
        "{report:?}"
    );
    assert_eq!(r.issuer.revoked_versions(), vec!["v0".to_owned()]);
}

#[tokio::test]
async fn a_rotation_finding_an_earlier_record_for_its_old_key_keeps_its_own_grace() {
    // The record a rotation with a 24 h grace writes for its old key.
    let with_grace = || {
        let r = world();
        r.store.set_tag(TAG_GRACE_HOURS, "24");
        r
    };
    let first = with_grace();
    rotate(&first, "t1").await;
    let promised = first.audit.revocation_of("v0").expect("record");
    // Another world in which a record for v0 already stands, due a day ago (the grace keeper found
    // the version first, or an earlier process left it): the rotation must not inherit that date.
    let r = with_grace();
    let stale = crate::domain::audit::Revocation {
        due: r.clock.now() - Duration::days(1),
        ..promised.clone()
    };
    r.audit.revocations.borrow_mut().insert("v0".into(), stale);
    rotate(&r, "t1").await;
    assert_eq!(
        r.audit.revocation_of("v0").map(|rec| rec.due),
        Some(promised.due)
    );
    advance(&r, Duration::hours(2));
    keeper(&r).run().await.expect("pass");
    assert!(
        r.issuer.revoked_versions().is_empty(),
        "no revocation before the grace the rotation promised"
    );
}

#[tokio::test]
async fn a_minted_key_a_target_still_serves_is_no_orphan() {
    // The value was put over a rotated one (`keyrot onboard` with a new key): the minted key it
    // replaced is still what the target serves, and deleting it would break that service.
    const SERVED: &str = "sk-svcacct-SERVEDSERVEDSERVEDSERVED01";
    const LABEL: &str = "render:srv-1:API_KEY";
    let r = world_with(
        json!({"provider": "openai", "api_key": OLD_KEY, "key_id": "svc_acct_current",
        "openai": {"project_id": "proj_1", "admin_key_secret": "a"},
        "targets": [{"type": "render", "service_id": "srv-1", "env_key": "API_KEY", "token_secret": "t"}]}),
    );
    r.targets.hold(LABEL, SERVED);
    let record = crate::domain::provenance::KeyRecord {
        secret_name: NAME.into(),
        fingerprint: crate::domain::keys::fingerprint(&secrecy::SecretString::from(SERVED)),
        provider: crate::domain::secret::Provider::OpenAi,
        project_id: Some("proj_1".into()),
        key_id: Some("svc_acct_served".into()),
        api_key_id: None,
        origin: crate::domain::provenance::Origin::Minted,
        version_id: "t0".into(),
        at: r.clock.now() - Duration::days(30),
        by: "req-0".into(),
    };
    r.audit
        .keys
        .borrow_mut()
        .insert((NAME.into(), record.fingerprint.clone()), record);
    let now = r.clock.now();
    let minted = |id: &str| MintedKey {
        id: id.into(),
        name: format!("keyrot-prod-generic-{}", &id[id.len() - 8..]),
        created_at: now - Duration::days(30),
        scope: "proj_1".into(),
    };
    r.issuer.minted_keys.borrow_mut().extend([
        minted("svc_acct_current"),
        minted("svc_acct_served"),
        minted("svc_acct_lost"),
    ]);
    let orphans = keeper(&r).orphans().await.expect("orphans");
    let ids: Vec<&str> = orphans.iter().map(|o| o.key.id.as_str()).collect();
    assert_eq!(ids, ["svc_acct_lost"], "the served key is in service");
}

/// A critical alert whose Publish fails is parked and delivered by the next pass, once; an alert
/// that is not critical is at-most-once and is not parked.
#[tokio::test]
async fn a_critical_alert_that_could_not_be_published_goes_out_next_pass() {
    let r = world();
    let now = r.clock.now();
    r.store.last_rotated.set(Some(now - Duration::days(95)));
    r.store.next_rotation.set(Some(now + Duration::days(3)));
    r.alerts.fail.set(true);
    let report = keeper(&r).run().await.expect("pass");
    assert_eq!(report.alerts_sent, 0);
    let parked: Vec<AlertKind> = r
        .audit
        .parked
        .borrow()
        .values()
        .map(|p| p.alert.event)
        .collect();
    assert_eq!(
        parked,
        [AlertKind::RotationOverdue],
        "the upcoming notice (info) is not parked"
    );

    r.alerts.fail.set(false);
    let report = keeper(&r).run().await.expect("second pass");
    assert_eq!(report.parked_delivered, 1, "{report:?}");
    assert_eq!(r.alerts.kinds(), [AlertKind::RotationOverdue]);
    assert!(
        r.audit.parked.borrow().is_empty(),
        "forgotten once delivered"
    );

    keeper(&r).run().await.expect("third pass");
    assert_eq!(
        r.alerts.kinds(),
        [AlertKind::RotationOverdue],
        "delivered once"
    );
}

/// The rotator's critical alerts take the same way: a `rotation_failed` that SNS refused reaches
/// people through the keeper's next pass.
#[tokio::test]
async fn a_rotation_failure_alert_sns_refused_is_delivered_by_the_keeper() {
    let r = world();
    r.store.start_rotation("t1");
    r.alerts.fail.set(true);
    run(&r, Step::Create, "t1").await.expect("created");
    r.issuer.refuse_next_validations.set(u32::MAX);
    run(&r, Step::Set, "t1")
        .await
        .expect_err("final: the new key is refused");
    assert_eq!(r.audit.parked.borrow().len(), 1);

    r.alerts.fail.set(false);
    keeper(&r).run().await.expect("pass");
    assert!(
        r.alerts.kinds().contains(&AlertKind::RotationFailed),
        "{:?}",
        r.alerts.kinds()
    );
    assert!(r.audit.parked.borrow().is_empty());
}

/// The outbox holds every secret's parked alerts: a keeper scoped to a prefix delivers its own only,
/// and leaves the others to theirs.
#[tokio::test]
async fn a_keeper_scoped_to_a_prefix_delivers_only_its_own_parked_alerts() {
    let r = world();
    r.store.start_rotation("t1");
    r.alerts.fail.set(true);
    run(&r, Step::Create, "t1").await.expect("created");
    r.issuer.refuse_next_validations.set(u32::MAX);
    run(&r, Step::Set, "t1").await.expect_err("final");
    assert_eq!(r.audit.parked.borrow().len(), 1);
    r.alerts.fail.set(false);
    let elsewhere = GraceKeeper::new(
        &r.ports,
        KeeperSettings {
            name_prefix: Some("staging/".into()),
            revocation_check: crate::ports::fakes::FAKE_PATIENCE,
            ..KeeperSettings::default()
        },
    );
    let report = elsewhere.run().await.expect("pass");
    assert_eq!(report.parked_delivered, 0, "{report:?}");
    assert_eq!(r.audit.parked.borrow().len(), 1, "left to its own keeper");
    keeper(&r).run().await.expect("its own keeper's pass");
    assert!(r.audit.parked.borrow().is_empty());
}

/// A revocation record that cannot be read may be the one that knows a key: the orphan check of that
/// project stops and says why, rather than send a person to delete a key in service.
#[tokio::test]
async fn an_unreadable_revocation_record_stops_the_orphan_check_and_is_reported() {
    let r = world_with(
        json!({"provider": "openai", "api_key": OLD_KEY, "key_id": "svc_acct_current",
        "openai": {"project_id": "proj_1", "admin_key_secret": "a"}}),
    );
    let now = r.clock.now();
    r.issuer.minted_keys.borrow_mut().push(MintedKey {
        id: "svc_acct_unknown".into(),
        name: "keyrot-prod-generic-0000beef".into(),
        created_at: now - Duration::hours(3),
        scope: "proj_1".into(),
    });
    let problem = "unreadable item SECRET#prod/generic/REVOKE#v9: field status is \"bogus\"";
    r.audit.unreadable.borrow_mut().push(problem.into());
    let report = keeper(&r).run().await.expect("pass");
    assert_eq!(report.orphans, 0);
    assert!(!r.alerts.kinds().contains(&AlertKind::OrphanKey));
    assert!(
        report.errors.iter().any(|e| e.contains(problem)),
        "{:?}",
        report.errors
    );
}

/// A target keyrot does not redeploy (`deploy: false`) got the new key in its variable, but whether its
/// service runs it only a person knows: the old key waits for `keyrot confirm`.
fn with_unredeployed_target(extra: serde_json::Value) -> World {
    let mut target = json!({"type": "render", "service_id": "srv-1", "env_key": "API_KEY",
        "token_secret": "t", "deploy": false});
    if let (Some(target), Some(extra)) = (target.as_object_mut(), extra.as_object()) {
        target.extend(extra.clone());
    }
    let r = world_with(json!({"provider": "generic", "api_key": OLD_KEY, "targets": [target]}));
    r.store.set_tag(TAG_GRACE_HOURS, "1");
    r.targets.hold("render:srv-1:API_KEY", OLD_KEY);
    r
}

#[tokio::test]
async fn an_unredeployed_target_holds_the_old_key_until_a_person_confirms() {
    let r = with_unredeployed_target(json!({}));
    rotate(&r, "t1").await;
    advance(&r, Duration::hours(2));
    let report = keeper(&r).run().await.expect("pass");
    assert_eq!((report.revoked, report.postponed), (0, 1), "{report:?}");
    let postponed = r
        .alerts
        .sent
        .borrow()
        .iter()
        .find(|a| a.event == AlertKind::RevocationPostponed)
        .map(|a| a.text.clone())
        .expect("a postponement alert");
    assert!(
        postponed.contains(&format!("keyrot confirm {NAME}")),
        "{postponed}"
    );

    let confirmed = r
        .operator()
        .confirm(NAME, "arn:ops")
        .await
        .expect("confirmed");
    assert_eq!(confirmed.versions, ["v0"]);
    assert_eq!(
        r.audit
            .revocation_of("v0")
            .and_then(|x| x.confirmed)
            .map(|c| c.by)
            .as_deref(),
        Some("arn:ops")
    );
    assert!(
        r.audit
            .outcomes()
            .contains(&("confirm".to_owned(), "succeeded"))
    );
    advance(&r, Duration::hours(2));
    let report = keeper(&r).run().await.expect("pass");
    assert_eq!(report.revoked, 1, "{report:?}");
}

#[tokio::test]
async fn an_unredeployed_target_with_a_restart_time_holds_the_old_key_that_long() {
    let r = with_unredeployed_target(json!({"restart_within_hours": 6}));
    rotate(&r, "t1").await;
    advance(&r, Duration::hours(2));
    assert_eq!(
        keeper(&r).run().await.expect("pass").revoked,
        0,
        "2 of 6 hours"
    );
    advance(&r, Duration::hours(5));
    assert_eq!(
        keeper(&r).run().await.expect("pass").revoked,
        1,
        "past 6 hours"
    );
}

#[tokio::test]
async fn confirm_is_refused_when_the_target_never_got_the_current_key() {
    let r = with_unredeployed_target(json!({}));
    rotate(&r, "t1").await;
    r.targets.hold("render:srv-1:API_KEY", OLD_KEY);
    let err = r
        .operator()
        .confirm(NAME, "arn:ops")
        .await
        .expect_err("refused");
    assert!(
        err.to_string().contains("does not hold the current key"),
        "{err}"
    );
    assert!(
        r.audit
            .revocation_of("v0")
            .and_then(|x| x.confirmed)
            .is_none(),
        "nothing changed"
    );

    let plain = world();
    let err = plain
        .operator()
        .confirm(NAME, "arn:ops")
        .await
        .expect_err("refused");
    assert!(
        err.to_string().contains("redeploy (or deploy) false"),
        "{err}"
    );
}

/// keyrot's own credentials are managed under the admin prefix only with their owner's tag and a
/// rotation of keyrot's, and not at all by a keeper that ignores them.
#[test]
fn own_credentials_are_managed_only_under_the_admin_prefix_with_their_owner_s_tag() {
    let rotator = "arn:aws:lambda:us-east-1:1:function:keyrot-rotator";
    let settings = KeeperSettings {
        rotator_arn: Some(rotator.into()),
        name_prefix: Some("prod/".into()),
        credentials: Credentials::Read("keyrot-admin/".into()),
        ..KeeperSettings::default()
    };
    let secret = |name: &str, tags: &[(&str, &str)]| SecretDescription {
        name: name.into(),
        tags: tags
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        rotation_lambda_arn: Some(rotator.into()),
        ..SecretDescription::default()
    };
    let credential = secret("keyrot-admin/openai", &[("keyrot-admin:rotated", "true")]);
    assert!(settings.manages(&credential));
    let mut elsewhere = credential.clone();
    elsewhere.rotation_lambda_arn = Some("arn:aws:lambda:us-east-1:1:function:other".into());
    assert!(!settings.manages(&elsewhere), "rotated by another function");
    for other in [
        secret("keyrot-admin/openai", &[("keyrot:tier", "prod")]),
        secret("keyrot-admin/openai", &[("keyrot-admin:rotated", "yes")]),
        secret("team/x", &[("keyrot-admin:rotated", "true")]),
    ] {
        assert!(
            !settings.manages(&other),
            "{}: {:?}",
            other.name,
            other.tags
        );
    }
    assert!(settings.manages(&secret("prod/x", &[("keyrot:tier", "prod")])));
    let ignoring = KeeperSettings {
        credentials: Credentials::Ignored,
        ..settings
    };
    assert!(!ignoring.manages(&credential));
}
