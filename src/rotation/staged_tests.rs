//! Keys a person creates (Stripe, GitHub), over the fakes: a rotation with nothing staged asks for a
//! key with the provider's console steps, a staged key of another account is refused with nothing
//! changed, a GitHub token is revoked by its value after the grace, and a Stripe key becomes a
//! revocation task, reminded daily until `keyrot revoked` records it once the key is refused.

use chrono::Duration;
use secrecy::SecretString;
use serde_json::json;

use crate::domain::Step;
use crate::domain::audit::{Action, Outcome, RevocationStatus};
use crate::domain::policy::{AWSCURRENT, AWSPENDING, TAG_GRACE_HOURS};
use crate::ports::fakes::*;
use crate::ports::{AlertKind, Clock};

const STRIPE_OLD: &str = "sk_live_OLDOLDOLDOLDOLDOLDOLD0ld1";
const STRIPE_NEW: &str = "sk_live_NEWNEWNEWNEWNEWNEWNEWn3w2";
const GITHUB_OLD: &str = "ghp_OLDOLDOLDOLDOLDOLDOLDOLDOLDOLDOLD0ld1";
const GITHUB_NEW: &str = "ghp_NEWNEWNEWNEWNEWNEWNEWNEWNEWNEWNEWn3w2";

fn staged_world(provider: &str, key: &str) -> World {
    let r = world_with(json!({"provider": provider, "api_key": key, "targets": []}));
    r.store.set_tag(TAG_GRACE_HOURS, "1");
    r
}

async fn stage(r: &World, key: &str) -> crate::operator::Staged {
    r.operator()
        .stage_key(NAME, SecretString::from(key.to_owned()), "ops@example.com")
        .await
        .expect("staged")
}

fn advance(r: &World, by: Duration) {
    r.clock.0.set(r.clock.now() + by);
}

fn alerts_of(r: &World, kind: AlertKind) -> Vec<String> {
    r.alerts
        .sent
        .borrow()
        .iter()
        .filter(|a| a.event == kind)
        .map(|a| a.text.clone())
        .collect()
}

#[tokio::test]
async fn a_stripe_rotation_with_nothing_staged_asks_for_a_key_at_the_dashboard() {
    let r = staged_world("stripe", STRIPE_OLD);
    r.store.start_rotation("t1");
    let err = run(&r, Step::Create, "t1")
        .await
        .expect_err("nothing staged");
    let text = err.to_string();
    assert!(
        text.contains("Stripe has no API that creates one")
            && text.contains("https://dashboard.stripe.com/apikeys"),
        "{text}"
    );
    assert!(r.store.version_with_stage(AWSPENDING).is_none());
    let needed = alerts_of(&r, AlertKind::KeyNeeded);
    assert!(
        needed
            .iter()
            .any(|a| a.contains("Create secret key") && a.contains(&format!("keyrot stage {NAME}"))),
        "{needed:?}"
    );
    assert_eq!(r.issuer.minted.get(), 0, "nothing is minted for Stripe");
}

#[tokio::test]
async fn a_staged_key_of_another_account_is_refused_and_nothing_changes() {
    let r = staged_world("stripe", STRIPE_OLD);
    r.issuer.foreign.borrow_mut().insert(STRIPE_NEW.into());
    let before = r.store.stages();
    let err = r
        .operator()
        .stage_key(NAME, SecretString::from(STRIPE_NEW), "ops")
        .await
        .expect_err("another account's key");
    let text = err.to_string();
    assert!(
        text.contains(NAME) && text.contains("KEYROT_STAGED") && text.contains("another account"),
        "{text}"
    );
    assert!(!text.contains(STRIPE_NEW), "the key never shows: {text}");
    assert_eq!(r.store.stages(), before, "nothing was staged");
}

#[tokio::test]
async fn what_differs_in_a_staged_token_is_reported_at_staging_and_in_the_audit() {
    let r = staged_world("github", GITHUB_OLD);
    r.issuer
        .staged_notes
        .borrow_mut()
        .push("The new GitHub token is narrower: it lacks the scopes read:org.".into());
    let staged = stage(&r, GITHUB_NEW).await;
    assert_eq!(staged.notes.len(), 1, "{:?}", staged.notes);
    rotate(&r, "t1").await;
    let created = r
        .audit
        .events
        .borrow()
        .iter()
        .find(|e| e.action == Action::Step(Step::Create) && e.outcome == Outcome::Succeeded)
        .and_then(|e| e.error.clone())
        .expect("createSecret's audit event carries the comparison");
    assert!(created.contains("narrower"), "{created}");
}

#[tokio::test]
async fn an_old_github_token_is_revoked_by_its_value_after_the_grace() {
    let r = staged_world("github", GITHUB_OLD);
    stage(&r, GITHUB_NEW).await;
    rotate(&r, "t1").await;
    assert_eq!(
        r.store.value_of("t1").expect("new version")["api_key"],
        GITHUB_NEW
    );
    advance(&r, Duration::hours(2));
    let report = r.keeper().run().await.expect("pass");
    assert_eq!(report.revoked, 1, "{report:?}");
    assert_eq!(
        *r.issuer.revoked_values.borrow(),
        vec![GITHUB_OLD.to_owned()]
    );
    assert_eq!(r.audit.status_of("v0"), Some(RevocationStatus::Revoked));
}

#[tokio::test]
async fn an_old_stripe_key_is_a_task_reminded_daily_until_a_person_records_it() {
    let r = staged_world("stripe", STRIPE_OLD);
    stage(&r, STRIPE_NEW).await;
    rotate(&r, "t1").await;
    assert_eq!(
        r.store.version_with_stage(AWSCURRENT).as_deref(),
        Some("t1")
    );
    advance(&r, Duration::hours(2));
    let report = r.keeper().run().await.expect("pass");
    assert_eq!((report.revoked, report.tasks), (0, 1), "{report:?}");
    assert_eq!(r.audit.status_of("v0"), Some(RevocationStatus::Manual));
    let tasks = alerts_of(&r, AlertKind::RevocationTask);
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    assert!(
        tasks[0].contains("Stripe has no API that revokes keys")
            && tasks[0].contains("https://dashboard.stripe.com/apikeys")
            && tasks[0].contains(&format!("keyrot revoked {NAME} --version v0")),
        "{}",
        tasks[0]
    );
    r.keeper().run().await.expect("same day");
    assert_eq!(
        alerts_of(&r, AlertKind::RevocationTask).len(),
        1,
        "once a day"
    );
    advance(&r, Duration::days(1));
    r.keeper().run().await.expect("next day");
    assert_eq!(
        alerts_of(&r, AlertKind::RevocationTask).len(),
        2,
        "again the next day"
    );

    // The person says it is revoked before it is: refused, nothing recorded.
    let err = r
        .operator()
        .record_revoked(NAME, None, "ops@example.com")
        .await
        .expect_err("the key still works");
    assert!(err.to_string().contains("still works"), "{err}");
    assert_eq!(r.audit.status_of("v0"), Some(RevocationStatus::Manual));

    r.issuer.reject(STRIPE_OLD);
    let done = r
        .operator()
        .record_revoked(NAME, Some("v0"), "ops@example.com")
        .await
        .expect("recorded");
    assert!(done.verified);
    assert_eq!(r.audit.status_of("v0"), Some(RevocationStatus::Revoked));
    let recorded = r
        .audit
        .events
        .borrow()
        .iter()
        .any(|e| e.action == Action::Revoke && e.actor == "ops@example.com");
    assert!(
        recorded,
        "the person's record is audited with them as the actor"
    );
    advance(&r, Duration::days(1));
    let report = r.keeper().run().await.expect("after the record");
    assert_eq!(report.tasks, 0, "no task is open any more");
    for text in alerts_of(&r, AlertKind::RevocationTask) {
        assert!(!text.contains(STRIPE_OLD) && !text.contains(STRIPE_NEW));
    }
}

#[tokio::test]
async fn recording_a_revocation_with_no_task_open_is_refused() {
    let r = staged_world("stripe", STRIPE_OLD);
    let err = r
        .operator()
        .record_revoked(NAME, None, "ops")
        .await
        .expect_err("nothing is open");
    assert!(
        err.to_string().contains("no revocation task is open"),
        "{err}"
    );
}

#[tokio::test]
async fn an_openai_secret_takes_no_staged_key() {
    let r = world_with(
        json!({"provider": "openai", "api_key": OLD_KEY, "key_id": "svc_acct_1",
        "openai": {"project_id": "proj_1", "admin_key_secret": "keyrot-admin/openai"}}),
    );
    let err = r
        .operator()
        .stage_key(NAME, SecretString::from(STRIPE_NEW), "ops")
        .await
        .expect_err("OpenAI keys are minted");
    assert!(
        err.to_string()
            .contains("only Anthropic, Stripe and GitHub"),
        "{err}"
    );
}

#[tokio::test]
async fn an_emergency_stripe_rotation_says_the_old_key_still_works_and_asks_a_person() {
    let r = staged_world("stripe", STRIPE_OLD);
    r.store.set_tag(TAG_GRACE_HOURS, "0");
    stage(&r, STRIPE_NEW).await;
    rotate(&r, "t1").await;
    assert_eq!(r.audit.status_of("v0"), Some(RevocationStatus::Manual));
    let succeeded = alerts_of(&r, AlertKind::RotationSucceeded);
    assert!(
        succeeded.iter().any(|text| text.contains("STILL VALID")
            && text.contains("https://dashboard.stripe.com/apikeys")
            && !text.contains("revoked at once")),
        "{succeeded:?}"
    );
    let revokes: Vec<Outcome> = r
        .audit
        .events
        .borrow()
        .iter()
        .filter(|e| e.action == Action::Revoke)
        .map(|e| e.outcome)
        .collect();
    assert_eq!(
        revokes,
        [Outcome::Skipped],
        "audited as left to a person, never as revoked"
    );
}
