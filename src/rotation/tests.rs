//! Each step over in-memory fakes of the ports: the entry checks' refusals, each step run twice, the
//! configuration test, crash completion in finishSecret, and the audit and alert of every attempt.

use chrono::Duration;
use serde_json::json;

use super::*;
use crate::domain::audit::RevocationStatus;
use crate::domain::policy::{
    AWSCURRENT, AWSPREVIOUS, KEYROT_STAGED, TAG_NEXT_GRACE_HOURS, TAG_ONE_SHOT_FOR, TAG_TRIGGER,
};
use crate::ports::fakes::*;
use crate::ports::{Metric, SecretStore, StageMove};

#[tokio::test]
async fn a_full_rotation_moves_the_labels_and_schedules_the_old_key() {
    let r = world();
    rotate(&r, "t1").await;

    let stages = r.store.stages();
    assert_eq!(stages.get("t1"), Some(&vec![AWSCURRENT.to_string()]));
    assert_eq!(stages.get("v0"), Some(&vec![AWSPREVIOUS.to_string()]));
    let new_value = r.store.value_of("t1").expect("new version has a value");
    assert_ne!(new_value["api_key"], OLD_KEY);
    assert_eq!(new_value["team"], "ml", "unknown fields are kept");
    assert_eq!(new_value["key_id"], "key_1");

    let revocation = r
        .audit
        .revocations
        .borrow()
        .get("v0")
        .cloned()
        .expect("old key scheduled");
    assert_eq!(revocation.due, now() + Duration::hours(24));
    assert_eq!(revocation.status, RevocationStatus::Pending);
    assert!(
        r.issuer.revoked_versions().is_empty(),
        "the old key lives through its grace"
    );

    let outcomes = r.audit.outcomes();
    let expected: Vec<(String, &str)> = Step::ALL
        .iter()
        .map(|s| (s.to_string(), "succeeded"))
        .collect();
    assert_eq!(outcomes, expected);
    let alerts = r.alerts.sent.borrow();
    assert_eq!(
        alerts.iter().map(|a| a.event).collect::<Vec<_>>(),
        ["rotation_succeeded"]
    );
    assert!(alerts[0].text.contains("...0ld1"), "{}", alerts[0].text);
    // The pending key was validated in setSecret and again in testSecret.
    assert_eq!(r.issuer.validated.borrow().len(), 2);
}

#[tokio::test]
async fn every_step_run_twice_in_a_row_does_its_work_once() {
    let r = world();
    r.store.start_rotation("t1");
    for step in Step::ALL {
        assert_eq!(
            run(&r, step, "t1").await.expect("first"),
            Progress::Done,
            "{step}"
        );
        let stages_before = r.store.stages();
        let value_before = r.store.value_of("t1");
        let second = run(&r, step, "t1").await.expect("second");
        assert_eq!(
            r.store.stages(),
            stages_before,
            "{step} repeated changed labels"
        );
        assert_eq!(
            r.store.value_of("t1"),
            value_before,
            "{step} repeated changed the value"
        );
        if matches!(step, Step::Create | Step::Finish) {
            assert_eq!(second, Progress::AlreadyDone, "{step}");
        }
    }
    assert_eq!(r.issuer.minted.get(), 1, "createSecret twice mints once");
    assert_eq!(r.audit.revocations.borrow().len(), 1);
    let outcomes = r.audit.outcomes();
    for step in Step::ALL {
        let of_step: Vec<&str> = outcomes
            .iter()
            .filter(|(a, _)| *a == step.as_str())
            .map(|(_, o)| *o)
            .collect();
        assert_eq!(of_step, ["succeeded", "skipped"], "{step}");
    }
}

#[tokio::test]
async fn steps_for_a_token_already_current_succeed_doing_nothing() {
    let r = world();
    rotate(&r, "t1").await;
    let calls_before = r.store.calls.borrow().len();
    for step in [Step::Create, Step::Set, Step::Test] {
        assert_eq!(
            run(&r, step, "t1").await.expect("finished rotation"),
            Progress::AlreadyDone
        );
    }
    let writes = r.store.calls.borrow()[calls_before..]
        .iter()
        .filter(|c| !c.starts_with("Describe"))
        .count();
    assert_eq!(
        writes, 0,
        "only DescribeSecret is needed to see the rotation is finished"
    );
    assert_eq!(r.issuer.minted.get(), 1);
}

#[tokio::test]
async fn entry_checks_refuse_with_a_clear_error_and_change_nothing() {
    let r = world();
    r.store.start_rotation("t1");
    let before = r.store.stages();

    r.store.rotation_enabled.set(false);
    let err = run(&r, Step::Create, "t1").await.expect_err("disabled");
    assert!(err.to_string().contains("rotation is not enabled"), "{err}");
    r.store.rotation_enabled.set(true);

    let err = run(&r, Step::Create, "no-such-version")
        .await
        .expect_err("unknown token");
    assert!(
        err.to_string().contains("no-such-version is not a version"),
        "{err}"
    );

    let err = run(&r, Step::Set, "v0-not")
        .await
        .expect_err("unknown token");
    assert!(err.to_string().contains("is not a version"), "{err}");

    r.store.versions.borrow_mut().insert(
        "old".into(),
        Version {
            value: Some("{}".into()),
            stages: vec!["CUSTOM".into()],
        },
    );
    let err = run(&r, Step::Set, "old").await.expect_err("not pending");
    assert!(
        err.to_string().contains("is not labelled AWSPENDING"),
        "{err}"
    );

    assert!(
        err.to_string().contains(NAME) && err.to_string().contains("setSecret"),
        "{err}"
    );
    assert!(!err.is_retryable());
    r.store.versions.borrow_mut().remove("old");
    assert_eq!(r.store.stages(), before);
    assert_eq!(
        r.store.count("PutSecretValue") + r.store.count("UpdateSecretVersionStage(AWSCURRENT)"),
        0
    );
    assert_eq!(r.issuer.minted.get(), 0);
    assert!(r.audit.outcomes().iter().all(|(_, o)| *o == "failed"));
    assert_eq!(
        r.alerts
            .sent
            .borrow()
            .iter()
            .filter(|a| a.event == "rotation_failed")
            .count(),
        4
    );
}

#[tokio::test]
async fn a_secret_without_awscurrent_is_refused() {
    let r = world();
    if let Some(v) = r.store.versions.borrow_mut().get_mut("v0") {
        v.stages.clear();
    }
    r.store.start_rotation("t1");
    let err = run(&r, Step::Create, "t1").await.expect_err("no current");
    assert!(
        err.to_string()
            .contains("no version is labelled AWSCURRENT"),
        "{err}"
    );
    assert_eq!(r.issuer.minted.get(), 0);
}

#[tokio::test]
async fn bad_current_values_are_refused_naming_the_field_without_minting() {
    let cases = [
        (json!("just a string"), "is JSON but not an object"),
        (json!({"api_key": OLD_KEY}), "provider: is missing"),
        (
            json!({"provider": "cohere", "api_key": OLD_KEY}),
            "provider: names a provider keyrot does not know",
        ),
        (json!({"provider": "generic"}), "api_key: is missing"),
        (
            json!({"provider": "generic", "api_key": OLD_KEY, "targets": [{"type": "vercel"}]}),
            "targets",
        ),
    ];
    for (value, expected) in cases {
        let r = world_with(value.clone());
        r.store.start_rotation("t1");
        let err = run(&r, Step::Create, "t1").await.expect_err("refused");
        let text = err.to_string();
        assert!(
            text.contains(expected) && text.contains("fix:") && text.contains(NAME),
            "{value}: {text}"
        );
        assert!(!text.contains(OLD_KEY), "{text}");
        assert_eq!(r.issuer.minted.get(), 0);
        assert_eq!(
            r.store.value_of("t1"),
            None,
            "the pending version stays empty"
        );
    }
    let r = world();
    if let Some(v) = r.store.versions.borrow_mut().get_mut("v0") {
        v.value = Some("{not json".into());
    }
    r.store.start_rotation("t1");
    let err = run(&r, Step::Create, "t1").await.expect_err("not json");
    assert!(err.to_string().contains("not valid JSON"), "{err}");
}

#[tokio::test]
async fn a_rejected_pending_key_fails_set_and_never_reaches_awscurrent() {
    let r = world();
    r.store.start_rotation("t1");
    run(&r, Step::Create, "t1").await.expect("create");
    let pending = r.store.api_key_of("t1");
    r.issuer.reject(&pending.clone());
    let err = run(&r, Step::Set, "t1").await.expect_err("rejected");
    assert!(!err.is_retryable());
    assert!(!err.to_string().contains(&pending), "{err}");
    assert_eq!(
        r.store.stages().get("v0"),
        Some(&vec![AWSCURRENT.to_string()])
    );
    let failure = r.alerts.sent.borrow().last().cloned().expect("alert");
    assert_eq!(failure.event, "rotation_failed");
    assert!(
        failure.details["cause"]
            .as_str()
            .unwrap_or_default()
            .contains("rejected")
    );
    let audit_text = format!("{:?}", r.audit.events.borrow());
    assert!(!audit_text.contains(&pending) && !audit_text.contains(OLD_KEY));
}

#[tokio::test]
async fn the_configuration_test_validates_the_current_key_on_an_empty_placeholder() {
    let r = world();
    r.store.start_rotation("t-config");
    assert_eq!(
        run(&r, Step::Test, "t-config").await.expect("config test"),
        Progress::Done
    );
    assert_eq!(r.issuer.validated.borrow().as_slice(), [OLD_KEY.to_owned()]);
    r.issuer.reject(OLD_KEY);
    run(&r, Step::Test, "t-config")
        .await
        .expect_err("a bad current key fails the configuration test");
}

/// A version put under AWSPENDING by someone else, which setSecret and testSecret never passed, is
/// never made current: finishSecret refuses it and moves no label.
#[tokio::test]
async fn finish_refuses_a_version_testsecret_never_passed() {
    let r = world();
    r.store.start_rotation("t1");
    run(&r, Step::Create, "t1").await.expect("createSecret");
    let labels = r.store.stages();
    let err = run(&r, Step::Finish, "t1")
        .await
        .expect_err("finish before testSecret");
    assert!(
        err.to_string().contains("testSecret has not succeeded"),
        "{err}"
    );
    assert_eq!(r.store.stages(), labels, "no label moved");
    assert!(
        r.audit.revocations.borrow().is_empty(),
        "no revocation scheduled"
    );
}

/// `keyrot rotate --emergency` wrote its tags for its own token; Secrets Manager started the schedule's
/// rotation first. That rotation keeps the secret's grace, is not audited as the emergency, and leaves
/// the tags to the CLI (which puts them back when its RotateSecret is refused).
#[tokio::test]
async fn one_shot_tags_for_another_rotation_neither_apply_nor_go() {
    let r = world();
    r.store.set_tag(TAG_NEXT_GRACE_HOURS, "0");
    r.store.set_tag(TAG_TRIGGER, "emergency");
    r.store.set_tag(TAG_ONE_SHOT_FOR, "t-cli");
    r.store.start_rotation("t-schedule");
    for step in Step::ALL {
        run(&r, step, "t-schedule").await.expect("step");
    }
    let revocation = r
        .audit
        .revocations
        .borrow()
        .get("v0")
        .cloned()
        .expect("revocation written");
    assert_eq!(
        revocation.due,
        now() + Duration::hours(24),
        "the usual grace"
    );
    assert!(r.issuer.revoked.borrow().is_empty(), "the old key lives");
    assert!(
        r.audit
            .events
            .borrow()
            .iter()
            .all(|e| e.trigger != "emergency"),
        "not audited as the emergency"
    );
    assert!(
        !r.store.untagged(),
        "the CLI's tags stay for it to put back"
    );
}

#[tokio::test]
async fn finish_repeated_after_a_crash_completes_what_the_first_attempt_left() {
    let r = world();
    r.store.set_tag(TAG_NEXT_GRACE_HOURS, "2");
    r.store.set_tag(TAG_TRIGGER, "manual");
    r.store.start_rotation("t1");
    for step in [Step::Create, Step::Set, Step::Test] {
        run(&r, step, "t1").await.expect("step");
    }
    // The first finishSecret died right after promoting the version.
    r.store
        .move_stage(
            NAME,
            AWSCURRENT,
            StageMove::Across {
                from: "v0",
                to: "t1",
            },
        )
        .await
        .expect("promote");

    assert_eq!(
        run(&r, Step::Finish, "t1").await.expect("completes"),
        Progress::Done
    );
    assert_eq!(
        r.store.stages().get("t1"),
        Some(&vec![AWSCURRENT.to_string()])
    );
    let revocation = r
        .audit
        .revocations
        .borrow()
        .get("v0")
        .cloned()
        .expect("revocation written");
    assert_eq!(
        revocation.due,
        now() + Duration::hours(2),
        "the one-shot grace still applies"
    );
    assert!(r.store.untagged(), "one-shot tags cleared");
    assert_eq!(
        run(&r, Step::Finish, "t1").await.expect("again"),
        Progress::AlreadyDone
    );
    assert_eq!(r.audit.revocations.borrow().len(), 1);
    let finishes: Vec<&str> = r
        .audit
        .outcomes()
        .iter()
        .filter(|(a, _)| a == "finishSecret")
        .map(|(_, o)| *o)
        .collect();
    assert_eq!(
        finishes,
        ["succeeded", "skipped"],
        "the crash hid the first success: recorded once"
    );
}

#[tokio::test]
async fn grace_zero_revokes_the_old_key_in_finish_secret() {
    let r = world();
    r.store.set_tag(TAG_NEXT_GRACE_HOURS, "0");
    r.store.set_tag(TAG_TRIGGER, "emergency");
    rotate(&r, "t1").await;
    assert_eq!(r.issuer.revoked_versions(), ["v0".to_owned()]);
    let revocation = r
        .audit
        .revocations
        .borrow()
        .get("v0")
        .cloned()
        .expect("recorded");
    assert_eq!(revocation.status, RevocationStatus::Revoked);
    assert!(
        r.audit
            .outcomes()
            .contains(&("revoke".to_owned(), "succeeded"))
    );
    assert!(
        r.audit
            .events
            .borrow()
            .iter()
            .all(|e| e.trigger == "emergency")
    );
    assert!(r.store.untagged());
    // The next rotation uses the permanent policy again.
    rotate(&r, "t2").await;
    assert_eq!(r.issuer.revoked_versions().len(), 1);
}

#[tokio::test]
async fn a_finish_secret_repeated_after_dying_before_the_grace_zero_revocation_revokes() {
    let r = world();
    let emergency = [(TAG_NEXT_GRACE_HOURS, "0"), (TAG_TRIGGER, "emergency")];
    for (tag, value) in emergency {
        r.store.set_tag(tag, value);
    }
    r.issuer.fail_revocations.set(1);
    rotate(&r, "t1").await;
    assert!(r.issuer.revoked_versions().is_empty());
    // What an attempt that died right after recording the revocation leaves: AWSCURRENT moved, the
    // record pending and due now, and the tags, which go only after the revocation.
    for (tag, value) in emergency {
        r.store.set_tag(tag, value);
    }

    run(&r, Step::Finish, "t1").await.expect("finish again");
    assert_eq!(r.issuer.revoked_versions(), ["v0".to_owned()]);
    assert_eq!(r.audit.status_of("v0"), Some(RevocationStatus::Revoked));
    assert!(r.store.untagged(), "then the tags go");
    // Without the tags, a repeated finishSecret leaves a record to the grace keeper and its checks.
    rotate(&r, "t2").await;
    r.audit
        .revocations
        .borrow_mut()
        .entry("t1".into())
        .and_modify(|x| x.due = r.clock.now());
    run(&r, Step::Finish, "t2").await.expect("finish again");
    assert_eq!(r.issuer.revoked_versions().len(), 1);
}

#[tokio::test]
async fn a_grace_zero_revocation_that_fails_leaves_the_rotation_done_and_no_one_shot_tags() {
    let r = world();
    for (tag, value) in [(TAG_NEXT_GRACE_HOURS, "0"), (TAG_TRIGGER, "emergency")] {
        r.store.set_tag(tag, value);
    }
    r.issuer.fail_revocations.set(1);
    // Every step succeeds: AWSCURRENT moved, and a provider outage must not call that a failed rotation.
    rotate(&r, "t1").await;
    assert_eq!(
        r.store.version_with_stage(AWSCURRENT).as_deref(),
        Some("t1")
    );
    assert!(r.issuer.revoked_versions().is_empty());
    assert!(
        r.store.untagged(),
        "the emergency's grace 0 must not outlive this rotation"
    );
    let revocation = r
        .audit
        .revocations
        .borrow()
        .get("v0")
        .cloned()
        .expect("recorded");
    assert_eq!(revocation.status, RevocationStatus::Pending);
    assert!(
        revocation.due <= r.clock.now(),
        "due now, for the grace keeper to retry"
    );
    assert!(
        r.audit
            .outcomes()
            .contains(&("revoke".to_owned(), "failed"))
    );
    assert!(
        !r.alerts
            .sent
            .borrow()
            .iter()
            .any(|a| a.event == "rotation_failed"),
        "{:?}",
        r.alerts
            .sent
            .borrow()
            .iter()
            .map(|a| a.event)
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_rotation_away_from_a_key_once_rolled_back_schedules_its_revocation_again() {
    let r = world();
    rotate(&r, "t1").await;
    // A rollback put v0 back and cancelled its revocation; a later rotation moves away from it again.
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
    r.audit
        .revocations
        .borrow_mut()
        .get_mut("v0")
        .expect("recorded")
        .status = RevocationStatus::Cancelled;
    rotate(&r, "t2").await;
    let revocation = r
        .audit
        .revocations
        .borrow()
        .get("v0")
        .cloned()
        .expect("recorded");
    assert_eq!(
        revocation.status,
        RevocationStatus::Pending,
        "the old key is owed a revocation again"
    );
}

#[tokio::test]
async fn a_lost_put_race_discards_the_minted_key_and_succeeds() {
    let r = world();
    r.store.start_rotation("t1");
    r.store.lose_next_put.set(true);
    assert_eq!(
        run(&r, Step::Create, "t1")
            .await
            .expect("race lost cleanly"),
        Progress::AlreadyDone
    );
    assert_eq!(r.issuer.minted.get(), 1);
    assert_eq!(
        r.issuer.revoked_versions().len(),
        1,
        "the key minted here was discarded"
    );
    assert_eq!(
        r.store.value_of("t1").expect("winner")["api_key"],
        "sk_live_WINNERWINNERWINNERWIN1"
    );
}

/// Every action is audited: a step whose work is done but whose success cannot be written fails
/// retryably, and Secrets Manager's retry, finding the work done, writes it. An alert that cannot be
/// published never changes the step's outcome.
#[tokio::test]
async fn an_unwritten_success_fails_the_step_retryably_and_the_retry_records_it() {
    let r = world();
    r.alerts.fail.set(true);
    r.store.start_rotation("t1");
    for step in Step::ALL {
        r.audit.fail_writes.set(true);
        let err = run(&r, step, "t1")
            .await
            .expect_err("not on the audit trail yet");
        assert!(err.is_retryable(), "{step}: {err}");
        r.audit.fail_writes.set(false);
        run(&r, step, "t1")
            .await
            .unwrap_or_else(|err| panic!("{step} retried: {err}"));
    }
    assert_eq!(
        r.store.stages().get("t1"),
        Some(&vec![AWSCURRENT.to_string()])
    );
    for step in Step::ALL {
        let succeeded = r
            .audit
            .outcomes()
            .iter()
            .filter(|(action, outcome)| action == step.as_str() && *outcome == "succeeded")
            .count();
        assert_eq!(succeeded, 1, "{step} is on the trail once");
    }
    // Each failure is counted, for an alarm to act on; the success alert was attempted once.
    assert!(r.metrics.total(Metric::AuditWriteFailed) >= 4.0);
    assert_eq!(r.metrics.total(Metric::AlertPublishFailed), 1.0);
}

#[tokio::test]
async fn two_rotations_in_a_row_keep_one_previous_version() {
    let r = world();
    rotate(&r, "t1").await;
    rotate(&r, "t2").await;
    let stages = r.store.stages();
    assert_eq!(stages.get("t2"), Some(&vec![AWSCURRENT.to_string()]));
    assert_eq!(stages.get("t1"), Some(&vec![AWSPREVIOUS.to_string()]));
    assert_eq!(stages.get("v0"), None, "the first key has no label left");
    assert_eq!(r.audit.revocations.borrow().len(), 2);
}

const ANTHROPIC_OLD: &str = "sk-ant-api03-OLDOLDOLDOLDOLDOLDOLDOLD-0ldAA";
const ANTHROPIC_STAGED: &str = "sk-ant-api03-STAGEDSTAGEDSTAGEDSTAGED-n3wAA";

fn anthropic() -> World {
    world_with(
        json!({"provider": "anthropic", "api_key": ANTHROPIC_OLD, "anthropic": {"admin_key_secret": "keyrot-admin/anthropic"}}),
    )
}

fn stage(r: &World, key: &str) {
    r.store.versions.borrow_mut().insert(
        "staged".into(),
        Version {
            value: Some(json!({"provider": "anthropic", "api_key": key}).to_string()),
            stages: vec![KEYROT_STAGED.into()],
        },
    );
}

#[tokio::test]
async fn an_anthropic_rotation_adopts_the_staged_key_validated_and_identified() {
    let r = anthropic();
    stage(&r, ANTHROPIC_STAGED);
    rotate(&r, "t1").await;
    let current = r.store.value_of("t1").expect("new version");
    assert_eq!(current["api_key"], ANTHROPIC_STAGED);
    assert!(
        current["key_id"]
            .as_str()
            .is_some_and(|id| id.starts_with("apikey_")),
        "{current}"
    );
    assert_eq!(r.issuer.minted.get(), 0, "nothing is minted for Anthropic");
    assert_eq!(
        r.issuer.validated.borrow().first().map(String::as_str),
        Some(ANTHROPIC_STAGED),
        "validated before adoption"
    );
    assert!(
        r.store
            .stages()
            .values()
            .all(|s| !s.iter().any(|l| l == KEYROT_STAGED)),
        "finishSecret removes the label"
    );
}

#[tokio::test]
async fn a_staged_key_that_an_earlier_rotation_retired_is_refused() {
    let r = anthropic();
    stage(&r, ANTHROPIC_STAGED);
    rotate(&r, "t1").await;
    // Someone stages the key the first rotation retired (still due for revocation).
    stage(&r, ANTHROPIC_OLD);
    r.store.start_rotation("t2");
    let err = run(&r, Step::Create, "t2")
        .await
        .expect_err("an old key is not a new one");
    let text = err.to_string();
    assert!(
        text.contains("KEYROT_STAGED") && text.contains("old key") && text.contains("keyrot stage"),
        "{text}"
    );
    assert!(r.store.value_of("t2").is_none(), "nothing stored");
}

#[tokio::test]
async fn an_anthropic_rotation_without_a_staged_key_unblocks_the_secret_and_asks_for_one() {
    let r = anthropic();
    r.store.set_tag(TAG_NEXT_GRACE_HOURS, "0");
    r.store.start_rotation("t1");
    let err = run(&r, Step::Create, "t1")
        .await
        .expect_err("nothing staged");
    let text = err.to_string();
    assert!(
        text.contains("no key is staged") && text.contains(&format!("keyrot stage {NAME}")),
        "{text}"
    );
    assert!(
        r.store.version_with_stage(AWSPENDING).is_none(),
        "AWSPENDING is removed so the next rotation can start"
    );
    assert!(
        r.store.untagged(),
        "a later scheduled rotation must not inherit this one's grace 0"
    );
    let alerts = r.alerts.sent.borrow();
    let needed = alerts
        .iter()
        .find(|a| a.event == "key_needed")
        .expect("key_needed alert");
    assert_eq!(needed.details["command"], format!("keyrot stage {NAME}"));
}

#[tokio::test]
async fn a_staged_key_equal_to_the_current_one_is_refused() {
    let r = anthropic();
    stage(&r, ANTHROPIC_OLD);
    r.store.start_rotation("t1");
    let err = run(&r, Step::Create, "t1").await.expect_err("same key");
    assert!(err.to_string().contains("already holds"), "{err}");
    assert!(!err.to_string().contains(ANTHROPIC_OLD));
    assert_eq!(r.store.value_of("t1"), None);
}

#[tokio::test]
async fn a_rejected_staged_key_is_never_stored() {
    let r = anthropic();
    stage(&r, ANTHROPIC_STAGED);
    r.issuer.reject(ANTHROPIC_STAGED);
    r.store.start_rotation("t1");
    run(&r, Step::Create, "t1").await.expect_err("rejected");
    assert_eq!(r.store.value_of("t1"), None);
}

#[tokio::test]
async fn after_storing_a_minted_key_the_leftovers_of_other_attempts_are_removed() {
    let r = world();
    r.store.start_rotation("t1");
    run(&r, Step::Create, "t1").await.expect("create");
    assert_eq!(
        r.issuer.leftovers_removed.borrow().as_slice(),
        ["key_1".to_owned()]
    );
}

const VERCEL: &str = "vercel:prj_1:API_KEY";
const RENDER: &str = "render:srv-1:API_KEY";

/// A rotation started and carried through setSecret: the targets hold the pending key and are
/// redeploying.
async fn through_set(r: &World, token: &str) {
    r.store.start_rotation(token);
    run(r, Step::Create, token).await.expect("create");
    run(r, Step::Set, token).await.expect("set");
}

fn with_targets() -> World {
    let r = world_with(
        json!({"provider": "generic", "api_key": OLD_KEY, "targets": [
            {"type": "vercel", "project": "prj_1", "env_key": "API_KEY", "environments": ["production", "preview"], "token_secret": "t"},
            {"type": "render", "service_id": "srv-1", "env_key": "API_KEY", "token_secret": "t"},
        ]}),
    );
    for label in [VERCEL, RENDER] {
        r.targets.hold(label, OLD_KEY);
    }
    r
}

fn pending_key(r: &World, token: &str) -> String {
    r.store.value_of(token).expect("pending")["api_key"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn targets_get_the_key_and_one_redeploy_each_and_a_repeated_set_secret_changes_nothing() {
    let r = with_targets();
    r.targets.build_polls.set(2);
    through_set(&r, "t1").await;
    let new_key = pending_key(&r, "t1");
    assert_eq!(r.targets.held_by(VERCEL), Some(new_key.clone()));
    assert_eq!(r.targets.held_by(RENDER), Some(new_key.clone()));
    assert_eq!(
        (r.targets.pushes.get(), r.targets.deployments.borrow().len()),
        (2, 2)
    );

    assert_eq!(
        run(&r, Step::Set, "t1").await.expect("set again"),
        Progress::AlreadyDone
    );
    assert_eq!(
        (r.targets.pushes.get(), r.targets.deployments.borrow().len()),
        (2, 2),
        "no second push or redeploy"
    );

    run(&r, Step::Test, "t1")
        .await
        .expect("test waits for the redeploys");
    assert_eq!(r.targets.served(VERCEL), Some(new_key.clone()));
    assert_eq!(r.targets.served(RENDER), Some(new_key));
    run(&r, Step::Finish, "t1").await.expect("finish");
    let finish = r.audit.events.borrow().last().cloned().expect("event");
    assert_eq!(
        finish.targets,
        Vec::<String>::new(),
        "finishSecret touches no target"
    );
    let set = r
        .audit
        .events
        .borrow()
        .iter()
        .find(|e| e.action == "setSecret")
        .cloned()
        .expect("set event");
    assert_eq!(set.targets, [VERCEL, RENDER]);
}

#[tokio::test]
async fn a_redeploy_still_building_at_the_deadline_fails_as_retryable_without_rollback() {
    let r = with_targets();
    r.targets.build_polls.set(1000);
    through_set(&r, "t1").await;
    let invocation = Invocation {
        actor: "req".into(),
        deadline: Some(now() + Duration::milliseconds(1)),
    };
    let err = r
        .rotator()
        .handle(&event(Step::Test, "t1"), &invocation)
        .await
        .expect_err("still building");
    assert!(err.is_retryable(), "{err}");
    assert!(err.to_string().contains("still building"), "{err}");
    let new_key = pending_key(&r, "t1");
    assert_eq!(
        r.targets.held.borrow().get(VERCEL),
        Some(&new_key),
        "no rollback"
    );
    assert!(!r.audit.outcomes().iter().any(|(a, _)| a == "rollback"));
}

#[tokio::test]
async fn a_failed_redeploy_puts_the_current_key_back_everywhere_and_keeps_awscurrent() {
    let r = with_targets();
    r.targets.fail_deployments.set(1);
    through_set(&r, "t1").await;
    let err = run(&r, Step::Test, "t1")
        .await
        .expect_err("deployment failed");
    assert!(err.to_string().contains("ended ERROR"), "{err}");
    assert!(!err.is_retryable());
    for label in [VERCEL, RENDER] {
        assert_eq!(
            r.targets.held_by(label).as_deref(),
            Some(OLD_KEY),
            "{label} restored"
        );
        assert_eq!(
            r.targets.served(label).as_deref(),
            Some(OLD_KEY),
            "{label} redeployed with the current key"
        );
    }
    assert_eq!(
        r.store.stages().get("v0"),
        Some(&vec![AWSCURRENT.to_string()])
    );
    assert!(
        r.audit
            .outcomes()
            .contains(&("rollback".to_owned(), "succeeded"))
    );
    let alert = r.alerts.sent.borrow().last().cloned().expect("alert");
    assert_eq!(alert.event, "rotation_failed");
    assert!(alert.text.contains("put back"), "{}", alert.text);

    // Secrets Manager retries the rotation: setSecret pushes and redeploys anew, and it can succeed.
    let deployments_before = r.targets.deployments.borrow().len();
    run(&r, Step::Set, "t1").await.expect("set again");
    assert_eq!(
        r.targets.deployments.borrow().len(),
        deployments_before + 2,
        "a fresh redeploy per target"
    );
    run(&r, Step::Test, "t1").await.expect("test passes now");
}

#[tokio::test]
async fn a_rollback_redeploy_older_than_the_last_push_is_never_followed() {
    let r = with_targets();
    r.store.start_rotation("t1");
    run(&r, Step::Create, "t1").await.expect("create");
    // An earlier rollback of this rotation redeployed Vercel, and its wait ran out: its record stayed.
    r.audit
        .deployments
        .borrow_mut()
        .insert(format!("t1#rollback:{VERCEL}"), "dpl_before".into());
    // The retried rotation pushes and redeploys the pending key again, and fails again.
    run(&r, Step::Set, "t1").await.expect("set");
    r.targets
        .failed
        .borrow_mut()
        .insert(r.targets.deployments.borrow()[1].0.clone());
    run(&r, Step::Test, "t1")
        .await
        .expect_err("a deployment failed");
    assert_eq!(
        r.targets.served(VERCEL).as_deref(),
        Some(OLD_KEY),
        "the current key is served by a redeploy made after it was put back"
    );
}

#[tokio::test]
async fn a_rollback_redeploy_that_failed_is_made_again_not_followed() {
    let r = with_targets();
    through_set(&r, "t1").await;
    // An earlier attempt put the current key back on Vercel, and its rollback redeploy ended ERROR:
    // the live deployment still serves the pending key.
    r.targets.hold(VERCEL, OLD_KEY);
    r.audit.deployments.borrow_mut().insert(
        format!("t1#rollback:{VERCEL}"),
        "dpl_rollback_failed".into(),
    );
    r.targets.failed.borrow_mut().extend([
        "dpl_rollback_failed".to_owned(),
        r.targets.deployments.borrow()[0].0.clone(),
    ]);
    let err = run(&r, Step::Test, "t1")
        .await
        .expect_err("Vercel lost the pending key");
    assert!(
        err.to_string().contains("does not hold the pending key"),
        "{err}"
    );
    assert_eq!(
        r.targets.served(VERCEL).as_deref(),
        Some(OLD_KEY),
        "redeployed anew with the current key"
    );
    assert!(
        r.audit
            .outcomes()
            .contains(&("rollback".to_owned(), "succeeded")),
        "{:?}",
        r.audit.outcomes()
    );
}

#[tokio::test]
async fn a_target_put_back_by_a_rollback_that_died_before_redeploying_is_redeployed() {
    let r = with_targets();
    through_set(&r, "t1").await;
    // A rollback put the current key back on Vercel and died before starting the redeploy: the
    // variable holds the current key, the live deployment the pending one.
    r.targets.hold(VERCEL, OLD_KEY);
    r.targets
        .failed
        .borrow_mut()
        .insert(r.targets.deployments.borrow()[1].0.clone());
    run(&r, Step::Test, "t1")
        .await
        .expect_err("a deployment failed");
    assert_eq!(r.targets.served(VERCEL).as_deref(), Some(OLD_KEY));
    assert_eq!(r.targets.served(RENDER).as_deref(), Some(OLD_KEY));
}

#[tokio::test]
async fn a_target_holding_another_key_fails_test_secret_and_is_rolled_back() {
    let r = with_targets();
    through_set(&r, "t1").await;
    // Someone changed the variable by hand in the meantime.
    r.targets.hold(RENDER, "sk_live_SOMEONEELSESKEY000000000");
    let err = run(&r, Step::Test, "t1")
        .await
        .expect_err("wrong fingerprint");
    assert!(
        err.to_string().contains("does not hold the pending key"),
        "{err}"
    );
    assert_eq!(r.targets.held_by(RENDER).as_deref(), Some(OLD_KEY));
    assert_eq!(r.targets.held_by(VERCEL).as_deref(), Some(OLD_KEY));
}

#[tokio::test]
async fn a_pending_key_rejected_in_test_secret_rolls_the_targets_back() {
    let r = with_targets();
    through_set(&r, "t1").await;
    r.issuer.reject(&pending_key(&r, "t1"));
    run(&r, Step::Test, "t1").await.expect_err("rejected");
    assert_eq!(r.targets.held_by(VERCEL).as_deref(), Some(OLD_KEY));
}

#[tokio::test]
async fn a_create_secret_delivered_twice_at_once_keeps_one_key_and_discards_the_other() {
    let r = world();
    r.store.interleave.set(true);
    r.store.start_rotation("t1");
    let (a, b) = tokio::join!(run(&r, Step::Create, "t1"), run(&r, Step::Create, "t1"));
    let outcomes = [a.expect("first delivery"), b.expect("second delivery")];
    assert!(
        outcomes.contains(&Progress::Done) && outcomes.contains(&Progress::AlreadyDone),
        "{outcomes:?}"
    );
    assert_eq!(
        r.issuer.minted.get(),
        2,
        "both deliveries minted before either stored"
    );
    assert_eq!(
        r.issuer.revoked_versions().len(),
        1,
        "the loser's key was discarded at once"
    );
    let stored = r.store.value_of("t1").expect("pending value");
    assert!(stored["key_id"].as_str().is_some(), "{stored}");
    // The rotation goes on with the winner's key.
    for step in [Step::Set, Step::Test, Step::Finish] {
        run(&r, step, "t1").await.expect("step");
    }
}

#[tokio::test]
async fn a_just_minted_key_refused_while_it_propagates_is_tried_again_and_the_rotation_goes_on() {
    let r = world();
    r.store.start_rotation("t1");
    run(&r, Step::Create, "t1").await.expect("createSecret");
    r.issuer.refuse_next_validations.set(2);
    run(&r, Step::Set, "t1")
        .await
        .expect("a 401 within the key's first moments is propagation");
    assert_eq!(r.issuer.validated.borrow().len(), 3);
}

#[tokio::test]
async fn a_minted_key_refused_past_its_patience_fails_set_secret() {
    let r = world();
    r.store.start_rotation("t1");
    run(&r, Step::Create, "t1").await.expect("createSecret");
    r.issuer.refuse_next_validations.set(1_000);
    let err = run(&r, Step::Set, "t1")
        .await
        .expect_err("refused for good");
    assert!(err.to_string().contains("was rejected"), "{err}");
    let tries = r.issuer.validated.borrow().len();
    assert!(
        (2..1_000).contains(&tries),
        "tried again, then gave up: {tries}"
    );
}

#[tokio::test]
async fn a_staged_key_a_person_made_gets_no_propagation_patience() {
    let r = anthropic();
    stage(&r, ANTHROPIC_STAGED);
    r.store.start_rotation("t1");
    run(&r, Step::Create, "t1")
        .await
        .expect("createSecret adopts");
    let before = r.issuer.validated.borrow().len();
    r.issuer.refuse_next_validations.set(1);
    run(&r, Step::Set, "t1").await.expect_err("refused");
    assert_eq!(r.issuer.validated.borrow().len(), before + 1, "one try");
}

#[tokio::test]
async fn finish_removes_the_label_of_the_adopted_key_only() {
    let staged_label = |r: &World| -> Vec<String> {
        r.store
            .stages()
            .into_iter()
            .filter(|(_, stages)| stages.iter().any(|s| s == KEYROT_STAGED))
            .map(|(version, _)| version)
            .collect()
    };
    // The usual case: the adopted key's label goes with the rotation.
    let r = anthropic();
    stage(&r, ANTHROPIC_STAGED);
    rotate(&r, "t1").await;
    assert!(staged_label(&r).is_empty());

    // A person stages another key while the rotation runs (put-secret-value moves the label): that key
    // is the next rotation's, and keeps its label.
    let r = anthropic();
    stage(&r, ANTHROPIC_STAGED);
    r.store.start_rotation("t1");
    run(&r, Step::Create, "t1").await.expect("adopts");
    {
        let mut versions = r.store.versions.borrow_mut();
        if let Some(adopted) = versions.get_mut("staged") {
            adopted.stages.clear();
        }
        versions.insert(
            "staged-later".into(),
            Version {
                value: Some(
                    json!({"api_key": "sk-ant-api03-LATERLATERLATERLATER-l4tAA"}).to_string(),
                ),
                stages: vec![KEYROT_STAGED.into()],
            },
        );
    }
    for step in [Step::Set, Step::Test, Step::Finish] {
        run(&r, step, "t1")
            .await
            .unwrap_or_else(|err| panic!("{step}: {err}"));
    }
    assert_eq!(staged_label(&r), ["staged-later"]);
}

#[tokio::test]
async fn a_retryable_failure_pages_only_once_its_step_keeps_failing_then_once() {
    let r = world();
    r.store.start_rotation("t1");
    let failed_alerts = |r: &World| {
        r.alerts
            .sent
            .borrow()
            .iter()
            .filter(|a| a.event == "rotation_failed")
            .count()
    };
    let fail_once = async |r: &World| {
        r.store
            .fail_next_put
            .set(Some((crate::error::Transience::Retryable, Stored::No)));
        let err = run(r, Step::Create, "t1").await.expect_err("put fails");
        assert!(err.is_retryable());
    };
    fail_once(&r).await;
    r.clock.0.set(r.clock.now() + Duration::minutes(5));
    fail_once(&r).await;
    assert_eq!(
        failed_alerts(&r),
        0,
        "a passing failure is audited, not paged"
    );
    assert!(
        r.audit
            .outcomes()
            .contains(&("createSecret".to_owned(), "failed"))
    );
    r.clock.0.set(r.clock.now() + Duration::minutes(11));
    fail_once(&r).await;
    assert_eq!(failed_alerts(&r), 1, "failing for 16 minutes pages");
    fail_once(&r).await;
    assert_eq!(failed_alerts(&r), 1, "once");
}
