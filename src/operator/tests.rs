//! Stage, rollback and repair over in-memory fakes.

use secrecy::SecretString;
use serde_json::json;

use std::time::Duration as StdDuration;

use chrono::{Duration, Utc};

use crate::domain::Step;
use crate::domain::audit::{CLAIM_LEASE, RevocationStatus};
use crate::domain::policy::{
    AWSCURRENT, AWSPENDING, AWSPREVIOUS, KEYROT_STAGED, TAG_NEXT_GRACE_HOURS, TAG_TRIGGER,
};
use crate::keeper::Orphan;
use crate::operator::{FollowEnd, Holds, Placeholder, RotateRequest};
use crate::ports::fakes::*;
use crate::ports::{Clock, MintedKey};
use crate::rotation::Invocation;

const RENDER: &str = "render:srv-1:API_KEY";

fn with_target() -> World {
    let r = world_with(
        json!({"provider": "generic", "api_key": OLD_KEY, "targets": [
        {"type": "render", "service_id": "srv-1", "env_key": "API_KEY", "token_secret": "t"}]}),
    );
    r.targets.hold(RENDER, OLD_KEY);
    r
}

async fn step(r: &World, step: Step, token: &str) {
    run(r, step, token)
        .await
        .unwrap_or_else(|err| panic!("{step}: {err}"));
}

#[tokio::test]
async fn rollback_during_grace_restores_the_previous_key_everywhere_and_schedules_the_abandoned_one()
 {
    let r = with_target();
    rotate(&r, "t1").await;
    let new_key = r.store.api_key_of("t1");
    assert_eq!(r.targets.held_by(RENDER), Some(new_key.clone()));

    let done = r
        .operator()
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
    assert_eq!(stages.get("v0"), Some(&vec![AWSCURRENT.to_string()]));
    assert_eq!(stages.get("t1"), Some(&vec![AWSPREVIOUS.to_string()]));
    assert_eq!(r.targets.held_by(RENDER).as_deref(), Some(OLD_KEY));
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

/// A rollback undid itself: AWSCURRENT, and what the target serves, are t1's working key again.
fn assert_undone_to_t1(r: &World, err: &crate::Error, new_key: String) {
    assert!(
        err.to_string().contains("AWSCURRENT is back on version t1"),
        "{err}"
    );
    assert_eq!(
        r.store.version_with_stage(AWSCURRENT).as_deref(),
        Some("t1")
    );
    assert_eq!(
        r.targets.served(RENDER),
        Some(new_key),
        "the working key is served again"
    );
}

/// The keeper claims the kept key's record between the rollback's read and its first write. The
/// rollback's first write is its hold on that record, before AWSCURRENT or any target changes: it
/// loses, and stops with nothing changed (it used to move AWSCURRENT and push the key being revoked to
/// every target, then undo).
#[tokio::test]
async fn a_rollback_whose_key_the_keeper_claims_first_changes_nothing() {
    for raced in [RevocationStatus::Revoking, RevocationStatus::Retired] {
        let r = with_target();
        rotate(&r, "t1").await;
        let new_key = r.store.api_key_of("t1");
        let (stages, pushes) = (r.store.stages(), r.targets.pushes.get());
        *r.audit.raced_before_update.borrow_mut() = Some(("v0".into(), raced));

        let err = r
            .operator()
            .rollback(NAME, "ops")
            .await
            .expect_err("the key it would go back to was taken");
        let text = err.to_string();
        assert!(
            text.contains(&format!("its record is now {}", raced.as_str())),
            "{text}"
        );
        assert!(text.contains("nothing was changed"), "{text}");
        assert_eq!(r.store.stages(), stages, "no label moved");
        assert_eq!(r.targets.pushes.get(), pushes, "no target touched");
        assert_eq!(r.targets.served(RENDER), Some(new_key));
        assert!(r.audit.revocations.borrow().get("t1").is_none());
        assert!(
            !r.alerts
                .sent
                .borrow()
                .iter()
                .any(|a| a.event == "rotation_rolled_back")
        );
    }
}

/// While a rollback holds the kept key (it died after its hold, or is redeploying), the grace keeper
/// leaves the record alone; once the hold's lease lapses, the keeper decides by the labels.
#[tokio::test]
async fn the_keeper_leaves_a_key_a_rollback_holds_until_the_hold_lapses() {
    let r = with_target();
    rotate(&r, "t1").await;
    let held = r
        .audit
        .revocation_of("v0")
        .expect("record")
        .held_for_rollback(r.clock.now());
    r.audit.revocations.borrow_mut().insert("v0".into(), held);
    r.clock.0.set(r.clock.now() + Duration::hours(25));
    // The grace has ended, but the hold is younger than its lease: a rollback in flight.
    let mut held = r.audit.revocation_of("v0").expect("record");
    held.claimed_at = Some(r.clock.now() - Duration::minutes(5));
    r.audit.revocations.borrow_mut().insert("v0".into(), held);
    r.keeper().run().await.expect("pass");
    assert!(r.issuer.revoked_versions().is_empty());
    assert_eq!(r.audit.status_of("v0"), Some(RevocationStatus::Restoring));

    // The rollback died before it moved AWSCURRENT: no rollback happened, and the grace is over.
    r.clock.0.set(r.clock.now() + CLAIM_LEASE);
    r.keeper().run().await.expect("pass");
    assert_eq!(r.issuer.revoked_versions(), ["v0"]);
}

/// A rotation that starts between the rollback's first read and its hold would move AWSCURRENT
/// behind the rollback's back: the hold is released and nothing else changes.
#[tokio::test]
async fn a_rollback_refuses_a_rotation_started_after_it_read_the_labels() {
    let r = with_target();
    rotate(&r, "t1").await;
    let stages = r.store.stages();
    // Just before the rollback's second DescribeSecret, a rotation puts AWSPENDING on a new version.
    *r.store.pending_before_describe.borrow_mut() = Some((2, "t2".into()));
    let err = r
        .operator()
        .rollback(NAME, "ops")
        .await
        .expect_err("a rotation started");
    assert!(
        err.to_string().contains("a rotation is in progress"),
        "{err}"
    );
    assert_eq!(
        r.audit.status_of("v0"),
        Some(RevocationStatus::Pending),
        "released"
    );
    let mut now = r.store.stages();
    now.remove("t2");
    assert_eq!(now, stages, "AWSCURRENT did not move");
}

/// A rotation to t1, then a rollback that moved AWSCURRENT back to v0 and put the old key on the
/// target, whose redeploy failed. Returns t1's (working) key.
async fn rollback_stopped_at_its_redeploy() -> (World, String) {
    let r = with_target();
    rotate(&r, "t1").await;
    let new_key = r.store.api_key_of("t1");
    r.targets.fail_deployments.set(1);
    r.operator()
        .rollback(NAME, "ops")
        .await
        .expect_err("the redeploy failed");
    assert_eq!(
        r.store.version_with_stage(AWSCURRENT).as_deref(),
        Some("v0")
    );
    (r, new_key)
}

#[tokio::test]
async fn a_resumed_rollback_whose_key_the_keeper_claimed_goes_back_without_touching_that_key() {
    let (r, new_key) = rollback_stopped_at_its_redeploy().await;
    // Before it is run again, the keeper claims v0's record: that key is being revoked.
    r.audit.claim("v0", r.clock.now());
    let validated_before = r.issuer.validated.borrow().len();

    let err = r
        .operator()
        .rollback(NAME, "ops")
        .await
        .expect_err("undone");
    assert_undone_to_t1(&r, &err, new_key);
    assert_eq!(
        r.issuer.validated.borrow().len(),
        validated_before,
        "the claimed key was not validated or put anywhere"
    );
}

#[tokio::test]
async fn a_resumed_rollback_whose_key_was_revoked_meanwhile_goes_back_to_the_working_key() {
    let (r, new_key) = rollback_stopped_at_its_redeploy().await;
    // The keeper revoked v0 (its claim predates the rollback's move) before the re-run.
    r.audit
        .set_revocation_status(NAME, "v0", RevocationStatus::Revoked)
        .await
        .expect("revoked");
    let err = r
        .operator()
        .rollback(NAME, "ops")
        .await
        .expect_err("undone");
    assert_undone_to_t1(&r, &err, new_key);
}

#[tokio::test]
async fn rollback_is_refused_once_the_old_key_is_revoked_and_changes_nothing() {
    let r = with_target();
    rotate(&r, "t1").await;
    r.audit.set_status("v0", RevocationStatus::Revoked);
    let before = r.store.stages();
    let err = r
        .operator()
        .rollback(NAME, "ops")
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("already revoked"), "{err}");
    assert_eq!(r.store.stages(), before);
    let err = world()
        .operator()
        .rollback(NAME, "ops")
        .await
        .expect_err("nothing to go back to");
    assert!(err.to_string().contains("no AWSPREVIOUS"), "{err}");
}

#[tokio::test]
async fn repair_records_the_minted_keys_revocation_before_the_label_goes() {
    let r = with_target();
    r.store.start_rotation("t1");
    step(&r, Step::Create, "t1").await;
    *r.store.fail_next_move_of.borrow_mut() = Some(AWSPENDING);
    r.operator()
        .repair(NAME, "ops", true)
        .await
        .expect_err("removing the label failed");
    let status = |r: &World| r.audit.status_of("t1");
    assert_eq!(
        status(&r),
        Some(RevocationStatus::Pending),
        "the minted key is known before it loses its label"
    );
    // A record cancelled meanwhile (by hand, say) is armed again by the re-run.
    r.audit
        .set_revocation_status(NAME, "t1", RevocationStatus::Cancelled)
        .await
        .expect("cancel");
    r.operator()
        .repair(NAME, "ops", true)
        .await
        .expect("the re-run repairs");
    assert_eq!(r.store.version_with_stage(AWSPENDING), None);
    assert_eq!(status(&r), Some(RevocationStatus::Pending));
}

#[tokio::test]
async fn a_repair_rerun_after_a_failed_redeploy_redeploys_the_target_it_already_put_back() {
    let r = with_target();
    r.store.start_rotation("t1");
    step(&r, Step::Create, "t1").await;
    step(&r, Step::Set, "t1").await;
    // The first repair puts the current key back, but its redeploy fails: the live deployment still
    // serves the pending key while the variable holds the current one.
    r.targets.fail_deployments.set(1);
    r.operator()
        .repair(NAME, "ops", true)
        .await
        .expect_err("the redeploy failed");
    assert_eq!(r.targets.held_by(RENDER).as_deref(), Some(OLD_KEY));
    assert_ne!(r.targets.served(RENDER).as_deref(), Some(OLD_KEY));
    assert!(
        r.store.version_with_stage(AWSPENDING).is_some(),
        "the label stays"
    );

    r.operator()
        .repair(NAME, "ops", true)
        .await
        .expect("the re-run repairs");
    assert_eq!(
        r.targets.served(RENDER).as_deref(),
        Some(OLD_KEY),
        "redeployed, so nothing serves the key now due for revocation"
    );
    assert!(r.store.version_with_stage(AWSPENDING).is_none());
}

#[tokio::test]
async fn repair_puts_the_current_key_back_then_clears_the_label_then_schedules_the_pending_key() {
    let r = with_target();
    // An emergency rotation (grace 0) that dies: its one-shot tags must not outlive it.
    r.store.set_tag(TAG_NEXT_GRACE_HOURS, "0");
    r.store.set_tag(TAG_TRIGGER, "emergency");
    r.store.start_rotation("t1");
    step(&r, Step::Create, "t1").await;
    step(&r, Step::Set, "t1").await;
    // The rotation dies here: the target holds the pending key, AWSPENDING stays.
    let done = r
        .operator()
        .repair(NAME, "ops", false)
        .await
        .expect("repair");
    assert_eq!(done.targets, [RENDER]);
    assert!(done.revocation_scheduled);
    assert_eq!(r.targets.held_by(RENDER).as_deref(), Some(OLD_KEY));
    assert!(r.store.version_with_stage(AWSPENDING).is_none());
    assert_eq!(r.audit.status_of("t1"), Some(RevocationStatus::Pending));
    assert!(
        r.store.untagged(),
        "the abandoned rotation's one-shot tags are gone: {:?}",
        r.store.tags.borrow()
    );
    let err = r
        .operator()
        .repair(NAME, "ops", false)
        .await
        .expect_err("nothing left to repair");
    assert!(err.to_string().contains("nothing to repair"), "{err}");
    // The next rotation can start and finish.
    rotate(&r, "t2").await;
}

fn anthropic() -> World {
    world_with(
        json!({"provider": "anthropic", "api_key": OLD_KEY, "anthropic": {"admin_key_secret": "keyrot-admin/anthropic"}}),
    )
}

/// A placeholder younger than an hour is a rotation under way: its createSecret may be storing the
/// key it adopted right now, and clearing AWSPENDING then would strand that rotation.
#[tokio::test]
async fn staging_leaves_the_placeholder_of_a_rotation_under_way_to_it() {
    let r = anthropic();
    r.store.start_rotation("under-way");
    r.store
        .created
        .borrow_mut()
        .insert("under-way".into(), now() - Duration::minutes(2));
    let staged = r
        .operator()
        .stage_key(
            NAME,
            SecretString::from("sk_live_STAGEDSTAGEDSTAGED0001"),
            "ops",
        )
        .await
        .expect("staged");
    assert_eq!(
        staged.placeholder,
        Placeholder::UnderWay("under-way".into())
    );
    assert_eq!(
        r.store.version_with_stage(AWSPENDING).as_deref(),
        Some("under-way")
    );
}

#[tokio::test]
async fn staging_validates_the_key_and_clears_an_empty_placeholder() {
    let r = anthropic();
    r.store.start_rotation("stuck-empty");
    let staged = r
        .operator()
        .stage_key(
            NAME,
            SecretString::from("sk_live_STAGEDSTAGEDSTAGED0001"),
            "ops",
        )
        .await
        .expect("staged");
    assert_eq!(
        staged.placeholder,
        Placeholder::Cleared("stuck-empty".into())
    );
    assert_eq!(
        r.store.version_with_stage(KEYROT_STAGED).as_deref(),
        Some(staged.version_id.as_str())
    );
    assert!(r.store.version_with_stage(AWSPENDING).is_none());
    assert_eq!(staged.key, "...0001");

    r.issuer.reject("sk_live_REJECTEDREJECTED00002");
    let before = r.store.stages();
    let err = r
        .operator()
        .stage_key(
            NAME,
            SecretString::from("sk_live_REJECTEDREJECTED00002"),
            "ops",
        )
        .await
        .expect_err("rejected");
    assert!(!err.to_string().contains("REJECTEDREJECTED"), "{err}");
    for expected in ["rejected", "fix:", "keyrot stage prod/generic"] {
        assert!(err.to_string().contains(expected), "{expected:?} in {err}");
    }
    assert_eq!(r.store.stages(), before, "a refused stage changes nothing");
    let err = r
        .operator()
        .stage_key(NAME, SecretString::from(OLD_KEY), "ops")
        .await
        .expect_err("same key");
    assert!(err.to_string().contains("already holds"), "{err}");
}

#[tokio::test]
async fn staging_a_key_an_earlier_rotation_retired_is_refused_and_changes_nothing() {
    let r = anthropic();
    r.operator()
        .stage_key(
            NAME,
            SecretString::from("sk_live_STAGEDSTAGEDSTAGED0003"),
            "ops",
        )
        .await
        .expect("staged");
    rotate(&r, "t1").await;
    assert_eq!(
        r.audit.status_of("v0"),
        Some(RevocationStatus::Pending),
        "the old key is due for revocation"
    );
    let before = r.store.stages();
    let err = r
        .operator()
        .stage_key(NAME, SecretString::from(OLD_KEY), "ops")
        .await
        .expect_err("an old key");
    for expected in ["old key of this secret", "keyrot stage prod/generic"] {
        assert!(err.to_string().contains(expected), "{expected:?} in {err}");
    }
    assert_eq!(r.store.stages(), before);
}

#[tokio::test]
async fn staging_is_refused_for_providers_that_mint_their_own_keys() {
    for r in [
        world(),
        world_with(json!({"provider": "openai", "api_key": OLD_KEY,
            "openai": {"project_id": "proj_1", "admin_key_secret": "keyrot-admin/openai"}})),
    ] {
        let before = r.store.stages();
        let err = r
            .operator()
            .stage_key(
                NAME,
                SecretString::from("sk_live_STAGEDSTAGEDSTAGED0001"),
                "ops",
            )
            .await
            .expect_err("refused");
        for expected in ["only Anthropic", "keyrot rotate prod/generic", "fix:"] {
            assert!(err.to_string().contains(expected), "{expected:?} in {err}");
        }
        assert_eq!(r.store.stages(), before, "nothing written");
        assert!(r.issuer.validated.borrow().is_empty(), "not even validated");
    }
}

fn tags(r: &World) -> Vec<(String, String)> {
    r.store
        .tags
        .borrow()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[tokio::test]
async fn rotate_refuses_without_rotation_or_during_a_rotation_and_changes_nothing() {
    let r = world();
    r.store.set_tag(TAG_NEXT_GRACE_HOURS, "5");
    r.store.start_rotation("stuck");
    let before = (r.store.stages(), tags(&r));
    let err = r
        .operator()
        .start_rotation(
            NAME,
            RotateRequest {
                emergency: true,
                grace_hours: None,
                actor: "arn:aws:iam::123456789012:user/ops".into(),
            },
        )
        .await
        .expect_err("a rotation is pending");
    for expected in [
        "in progress or stuck",
        "keyrot status",
        "keyrot repair prod/generic",
    ] {
        assert!(err.to_string().contains(expected), "{expected:?} in {err}");
    }
    assert_eq!((r.store.stages(), tags(&r)), before);

    let r = world();
    r.store.rotation_enabled.set(false);
    let err = r
        .operator()
        .start_rotation(NAME, RotateRequest::default())
        .await
        .expect_err("rotation is off");
    assert!(err.to_string().contains("not enabled"), "{err}");
    assert!(tags(&r).is_empty());
    assert_eq!(
        r.store.count("TagResource") + r.store.count("RotateSecret"),
        0
    );
}

#[tokio::test]
async fn a_rotate_secret_whose_answer_was_lost_reports_the_rotation_it_started_and_keeps_the_tags()
{
    let r = world();
    r.store.lose_next_rotate_answer.set(true);
    let started = r
        .operator()
        .start_rotation(
            NAME,
            RotateRequest {
                emergency: true,
                grace_hours: None,
                actor: "arn:aws:iam::123456789012:user/ops".into(),
            },
        )
        .await
        .expect("the rotation started, though its answer was lost");
    assert_eq!(r.store.rotations_started.get(), 1);
    {
        let events = r.audit.events.borrow();
        let rotate = events
            .iter()
            .find(|e| e.action == "rotate")
            .expect("the start is audited");
        assert_eq!(
            (
                rotate.actor.as_str(),
                rotate.trigger.as_str(),
                rotate.version_id.as_str()
            ),
            (
                "arn:aws:iam::123456789012:user/ops",
                "emergency",
                started.token.as_str()
            )
        );
        assert!(
            rotate
                .error
                .as_deref()
                .is_some_and(|note| note.contains("0 h")),
            "{rotate:?}"
        );
    }
    assert_eq!(
        r.store.version_with_stage(AWSPENDING),
        Some(started.token),
        "the version the CLI chose"
    );
    let tags = tags(&r);
    assert!(
        tags.contains(&(TAG_TRIGGER.to_owned(), "emergency".to_owned()))
            && tags.contains(&(TAG_NEXT_GRACE_HOURS.to_owned(), "0".to_owned())),
        "the rotation under way consumes the one-shot tags: {tags:?}"
    );
}

#[tokio::test]
async fn a_failed_rotate_secret_puts_the_one_shot_tags_back_as_they_were() {
    let r = world();
    r.store.set_tag(TAG_NEXT_GRACE_HOURS, "5");
    let before = tags(&r);
    r.store.fail_next_rotate.set(true);
    let err = r
        .operator()
        .start_rotation(
            NAME,
            RotateRequest {
                emergency: true,
                grace_hours: None,
                actor: "arn:aws:iam::123456789012:user/ops".into(),
            },
        )
        .await
        .expect_err("RotateSecret fails");
    assert!(err.to_string().contains("put back"), "{err}");
    assert_eq!(
        tags(&r),
        before,
        "keyrot:trigger removed, keyrot:next-grace-hours back to 5"
    );

    let started = r
        .operator()
        .start_rotation(
            NAME,
            RotateRequest {
                emergency: true,
                grace_hours: None,
                actor: "arn:aws:iam::123456789012:user/ops".into(),
            },
        )
        .await
        .expect("started");
    assert_eq!(r.store.version_with_stage(AWSPENDING), Some(started.token));
    let set = r.store.tags.borrow().clone();
    assert_eq!(set.get(TAG_TRIGGER).map(String::as_str), Some("emergency"));
    assert_eq!(set.get(TAG_NEXT_GRACE_HOURS).map(String::as_str), Some("0"));
}

/// A rotation started through `keyrot rotate` whose testSecret ran out of time while the target's
/// redeploy was building: a retryable failure, the version still pending. Returns its token.
async fn rotation_waiting_for_a_redeploy(r: &World) -> String {
    r.targets.build_polls.set(1);
    let started = r
        .operator()
        .start_rotation(NAME, RotateRequest::default())
        .await
        .expect("started");
    step(r, Step::Create, &started.token).await;
    step(r, Step::Set, &started.token).await;
    let short = Invocation {
        actor: "req-2".into(),
        deadline: Some(now() + Duration::milliseconds(1)),
    };
    let err = r
        .rotator()
        .handle(&event(Step::Test, &started.token), &short)
        .await
        .expect_err("still building");
    assert!(err.is_retryable(), "{err}");
    started.token
}

fn follow_lines() -> std::cell::RefCell<Vec<String>> {
    std::cell::RefCell::new(Vec::new())
}

#[tokio::test]
async fn following_a_rotation_goes_on_through_a_retryable_failure_until_it_finishes() {
    let r = with_target();
    let token = rotation_waiting_for_a_redeploy(&r).await;

    let lines = follow_lines();
    let mut say = |line| lines.borrow_mut().push(line);
    let operator = r.operator();
    let follow = operator.follow_rotation(
        NAME,
        &token,
        now() - Duration::seconds(1),
        StdDuration::from_secs(10),
        StdDuration::from_millis(5),
        &mut say,
    );
    let retry = async {
        tokio::time::sleep(StdDuration::from_millis(30)).await;
        step(&r, Step::Test, &token).await;
        step(&r, Step::Finish, &token).await;
    };
    let (end, ()) = tokio::join!(follow, retry);
    let text = lines.borrow().join("\n");
    assert_eq!(end.expect("followed"), FollowEnd::Finished, "{text}");
    assert!(
        text.contains("FAILED") && text.contains("retries"),
        "{text}"
    );
}

#[tokio::test]
async fn following_stops_at_a_final_failure_and_when_the_rotation_is_abandoned() {
    let r = world();
    let started = r
        .operator()
        .start_rotation(NAME, RotateRequest::default())
        .await
        .expect("started");
    step(&r, Step::Create, &started.token).await;
    let pending = r.store.api_key_of(&started.token);
    r.issuer.reject(&pending);
    run(&r, Step::Set, &started.token)
        .await
        .expect_err("key rejected");
    let lines = follow_lines();
    let end = r
        .operator()
        .follow_rotation(
            NAME,
            &started.token,
            now() - Duration::seconds(1),
            StdDuration::from_secs(10),
            StdDuration::from_millis(5),
            &mut |line| lines.borrow_mut().push(line),
        )
        .await
        .expect("followed");
    assert_eq!(end, FollowEnd::Failed, "{}", lines.borrow().join("\n"));

    // A retryable failure, after which the rotation is cleared: the wait ends there.
    let r = with_target();
    let token = rotation_waiting_for_a_redeploy(&r).await;
    r.operator()
        .repair(NAME, "ops", true)
        .await
        .expect("repaired");
    let end = r
        .operator()
        .follow_rotation(
            NAME,
            &token,
            now() - Duration::seconds(1),
            StdDuration::from_secs(10),
            StdDuration::from_millis(5),
            &mut |_| {},
        )
        .await
        .expect("followed");
    assert_eq!(end, FollowEnd::Abandoned);
}

#[tokio::test]
async fn following_times_out_while_secrets_manager_keeps_retrying() {
    let r = with_target();
    let token = rotation_waiting_for_a_redeploy(&r).await;
    let lines = follow_lines();
    let end = r
        .operator()
        .follow_rotation(
            NAME,
            &token,
            now() - Duration::seconds(1),
            StdDuration::from_millis(30),
            StdDuration::from_millis(5),
            &mut |line| lines.borrow_mut().push(line),
        )
        .await
        .expect("followed");
    let text = lines.borrow().join("\n");
    assert_eq!(end, FollowEnd::TimedOut, "{text}");
    assert!(text.contains("still being retried"), "{text}");
}

#[tokio::test]
async fn validating_the_previous_key_during_its_grace_expects_the_targets_on_the_current_key() {
    let r = with_target();
    rotate(&r, "t1").await;
    let previous = r
        .operator()
        .validate_stage(NAME, AWSPREVIOUS)
        .await
        .expect("validated");
    assert_eq!(previous.version, "v0");
    assert_eq!(previous.rejected, None);
    assert_eq!(previous.targets[0].holds, Holds::Current);
    assert!(previous.ok(), "{previous:?}");

    // A target left on the previous key is reported as such, and fails the check.
    r.targets.hold(RENDER, OLD_KEY);
    let current = r
        .operator()
        .validate_stage(NAME, AWSCURRENT)
        .await
        .expect("validated");
    assert_eq!(current.targets[0].holds, Holds::Previous);
    assert!(!current.ok());
    r.targets.hold(RENDER, "sk_live_SOMETHINGELSEENTIRELY000");
    let current = r
        .operator()
        .validate_stage(NAME, AWSCURRENT)
        .await
        .expect("validated");
    assert_eq!(current.targets[0].holds, Holds::Unknown);

    // A rejected previous key is the provider's verdict, whatever the targets hold.
    r.targets.held.borrow_mut().remove(RENDER);
    r.issuer.reject(OLD_KEY);
    let previous = r
        .operator()
        .validate_stage(NAME, AWSPREVIOUS)
        .await
        .expect("validated");
    assert!(previous.rejected.is_some());
    assert_eq!(previous.targets[0].holds, Holds::Nothing);
    assert!(!previous.ok());
}

fn orphan(id: &str) -> Orphan {
    Orphan {
        key: MintedKey {
            id: id.into(),
            name: format!("keyrot-prod-generic-{}", &id[id.len().saturating_sub(8)..]),
            created_at: Utc::now() - Duration::hours(3),
            scope: "proj_1".into(),
        },
        secret: NAME.into(),
        admin_key_secret: "keyrot-admin/openai".into(),
    }
}

#[tokio::test]
async fn deleting_orphans_attempts_every_one_and_audits_each() {
    let r = world();
    r.issuer.fail_revocations.set(1);
    let done = r
        .operator()
        .delete_orphans(vec![orphan("svc_acct_1"), orphan("svc_acct_2")], "arn:ops")
        .await;
    assert_eq!(done.len(), 2);
    assert!(done[0].result.is_err(), "the first fails");
    assert_eq!(
        done[1].result.as_ref().ok(),
        Some(&RevocationStatus::Revoked),
        "the second is still attempted"
    );
    assert_eq!(
        r.audit.outcomes(),
        [
            ("revoke".to_owned(), "failed"),
            ("revoke".to_owned(), "succeeded")
        ]
    );
    let events = r.audit.events.borrow();
    assert!(events.iter().all(|e| e.actor == "arn:ops"));
    assert!(events[0].error.is_some());
    assert_eq!(events[1].version_id, "orphan:svc_acct_2");
}

#[tokio::test]
async fn rollback_is_refused_during_a_rotation_or_without_a_key_to_go_back_to() {
    let r = with_target();
    rotate(&r, "t1").await;
    r.store.start_rotation("t2");
    let before = r.store.stages();
    let err = r
        .operator()
        .rollback(NAME, "ops")
        .await
        .expect_err("rotation pending");
    for expected in ["in progress or stuck", "keyrot repair prod/generic", "fix:"] {
        assert!(err.to_string().contains(expected), "{expected:?} in {err}");
    }
    assert_eq!(r.store.stages(), before);

    // AWSPREVIOUS put there by hand: no revocation record.
    let r = with_target();
    r.store.versions.borrow_mut().insert(
        "by-hand".into(),
        Version {
            value: Some(
                json!({"provider": "generic", "api_key": "sk_live_BYHANDBYHANDBYHAND0001"})
                    .to_string(),
            ),
            stages: vec![AWSPREVIOUS.into()],
        },
    );
    let before = r.store.stages();
    let err = r
        .operator()
        .rollback(NAME, "ops")
        .await
        .expect_err("not keyrot's");
    assert!(
        err.to_string()
            .contains("AWSPREVIOUS was not left by a keyrot rotation"),
        "{err}"
    );
    assert_eq!(r.store.stages(), before);

    // AWSPREVIOUS holds the key AWSCURRENT holds.
    let r = with_target();
    rotate(&r, "t1").await;
    let current = r.store.value_of("t1").expect("current").to_string();
    if let Some(v0) = r.store.versions.borrow_mut().get_mut("v0") {
        v0.value = Some(current);
    }
    let before = r.store.stages();
    let err = r
        .operator()
        .rollback(NAME, "ops")
        .await
        .expect_err("same key");
    assert!(err.to_string().contains("same key"), "{err}");
    assert_eq!(r.store.stages(), before);
}

#[tokio::test]
async fn a_rollback_run_again_after_a_failed_redeploy_goes_on_instead_of_moving_awscurrent_again() {
    let r = with_target();
    rotate(&r, "t1").await;
    r.targets.fail_deployments.set(1);
    let err = r
        .operator()
        .rollback(NAME, "ops")
        .await
        .expect_err("redeploy fails");
    assert!(err.to_string().contains("ERROR"), "{err}");
    assert_eq!(
        r.store.version_with_stage(AWSCURRENT).as_deref(),
        Some("v0")
    );
    assert_ne!(
        r.targets.served(RENDER).as_deref(),
        Some(OLD_KEY),
        "the live deployment still serves the abandoned key"
    );

    let done = r.operator().rollback(NAME, "ops").await.expect("resumed");
    assert!(done.resumed);
    assert_eq!(
        (
            done.current_version.as_str(),
            done.abandoned_version.as_str()
        ),
        ("v0", "t1")
    );
    let stages = r.store.stages();
    assert_eq!(stages.get("v0"), Some(&vec![AWSCURRENT.to_string()]));
    assert_eq!(stages.get("t1"), Some(&vec![AWSPREVIOUS.to_string()]));
    assert_eq!(
        r.targets.served(RENDER).as_deref(),
        Some(OLD_KEY),
        "redeployed although the variable already held the key"
    );
    let revocations = r.audit.revocations.borrow().clone();
    assert_eq!(
        revocations.get("v0").map(|x| x.status),
        Some(RevocationStatus::Cancelled)
    );
    assert_eq!(
        revocations.get("t1").map(|x| (x.status, x.due)),
        Some((RevocationStatus::Pending, now()))
    );

    // Once the abandoned key is revoked there is nothing left to resume.
    r.audit
        .revocations
        .borrow_mut()
        .entry("t1".into())
        .and_modify(|x| x.status = RevocationStatus::Revoked);
    let before = r.store.stages();
    let err = r.operator().rollback(NAME, "ops").await.expect_err("done");
    assert!(
        err.to_string().contains("already back on version v0"),
        "{err}"
    );
    assert_eq!(r.store.stages(), before);
}

#[tokio::test]
async fn repair_leaves_a_young_pending_version_alone_unless_forced() {
    let r = with_target();
    r.store.start_rotation("t1");
    step(&r, Step::Create, "t1").await;
    r.store
        .created
        .borrow_mut()
        .insert("t1".into(), now() - Duration::minutes(10));
    let before = r.store.stages();
    let err = r
        .operator()
        .repair(NAME, "ops", false)
        .await
        .expect_err("young");
    for expected in ["10 minutes ago", "in progress", "--force"] {
        assert!(err.to_string().contains(expected), "{expected:?} in {err}");
    }
    assert_eq!(r.store.stages(), before);
    r.operator()
        .repair(NAME, "ops", true)
        .await
        .expect("forced");
    assert!(r.store.version_with_stage(AWSPENDING).is_none());
}

#[tokio::test]
async fn staging_during_a_rotation_that_adopted_a_key_is_refused_and_changes_nothing() {
    let r = anthropic();
    r.operator()
        .stage_key(
            NAME,
            SecretString::from("sk_live_STAGEDSTAGEDSTAGED0001"),
            "ops",
        )
        .await
        .expect("staged");
    r.store.start_rotation("t1");
    step(&r, Step::Create, "t1").await;
    let before = r.store.stages();
    let err = r
        .operator()
        .stage_key(
            NAME,
            SecretString::from("sk_live_ANOTHERANOTHERANOTH0002"),
            "ops",
        )
        .await
        .expect_err("a rotation holds an adopted key");
    let text = err.to_string();
    assert!(
        text.contains("rotation is under way") && text.contains("keyrot repair"),
        "{text}"
    );
    assert_eq!(r.store.stages(), before, "nothing changed");
}
