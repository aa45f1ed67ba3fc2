//! The audit trail's access patterns and `keyrot audit` against moto.

use std::process::Command;

use chrono::{Duration, TimeZone, Utc};
use keyrot::domain::audit::{Action, AuditEvent, Outcome};
use keyrot::ports::AuditLog;
use serde_json::{Value, json};

use crate::support::{World, unique};

fn event(secret: &str, at: chrono::DateTime<Utc>, action: &str) -> AuditEvent {
    AuditEvent {
        at,
        secret_arn: format!("arn:aws:secretsmanager:us-east-1:123456789012:secret:{secret}-AbCdEf"),
        secret_name: secret.to_owned(),
        action: Action::parse(action).expect("a known action"),
        outcome: Outcome::Succeeded,
        version_id: "5f0e7c1a-1111-4222-8333-444455556666".to_owned(),
        provider: "generic".to_owned(),
        old_key_hint: Some("0ld1".to_owned()),
        new_key_hint: Some("n3w2".to_owned()),
        trigger: "scheduled".to_owned(),
        actor: "req-1".to_owned(),
        targets: vec![],
        duration_ms: 12,
        error: Some("quote \" and, comma".to_owned()),
        retryable: false,
    }
}

fn keyrot(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_keyrot"))
        .args(args)
        .output()
        .expect("keyrot runs")
}

#[tokio::test]
async fn keyrot_audit_exports_one_month_across_secrets_as_csv_and_json() {
    let world = World::new().await;
    let moto = &world.moto;
    let log = moto.audit_log();
    // A month no other test writes to, so the month's partition holds exactly these events.
    let (a, b) = (unique("audit-a"), unique("audit-b"));
    let may = |day, hour| {
        Utc.with_ymd_and_hms(2031, 5, day, hour, 0, 0)
            .single()
            .expect("time")
    };
    for (secret, at, action) in [
        (&a, may(1, 0), "createSecret"),
        (&a, may(1, 1), "finishSecret"),
        (&b, may(31, 23), "createSecret"),
        (
            &b,
            Utc.with_ymd_and_hms(2031, 6, 1, 0, 0, 0)
                .single()
                .expect("time"),
            "finishSecret",
        ),
    ] {
        log.record(&event(secret, at, action))
            .await
            .expect("record");
        // A retried write of the same event changes nothing.
        log.record(&event(secret, at, action))
            .await
            .expect("record again");
    }

    let out = keyrot(&["audit", "--month", "2031-05", "--format", "csv"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut reader = csv::Reader::from_reader(out.stdout.as_slice());
    let header: Vec<String> = reader
        .headers()
        .expect("header")
        .iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(&header[..4], ["time", "secret", "action", "outcome"]);
    let rows: Vec<csv::StringRecord> = reader
        .records()
        .collect::<Result<_, _>>()
        .expect("RFC 4180 CSV");
    let seen: Vec<(String, String, String)> = rows
        .iter()
        .map(|r| (r[0].to_owned(), r[1].to_owned(), r[2].to_owned()))
        .collect();
    assert_eq!(
        seen,
        [
            (
                "2031-05-01T00:00:00.000Z".to_owned(),
                a.clone(),
                "createSecret".to_owned()
            ),
            (
                "2031-05-01T01:00:00.000Z".to_owned(),
                a.clone(),
                "finishSecret".to_owned()
            ),
            (
                "2031-05-31T23:00:00.000Z".to_owned(),
                b.clone(),
                "createSecret".to_owned()
            ),
        ],
        "May's events of both secrets, once each, and none from June"
    );
    assert_eq!(&rows[0][12], "quote \" and, comma");

    let out = keyrot(&["audit", "--secret", &b, "--format", "json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let actions: Vec<&str> = rows
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|r| r["action"].as_str())
        .collect();
    assert_eq!(actions, ["finishSecret", "createSecret"], "newest first");

    let out = keyrot(&["audit", "--secret", &a, "--since", "2031-05-01T00:30:00Z"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("finishSecret") && !table.contains("createSecret"),
        "{table}"
    );
}

/// A ClientRequestToken or an error text is chosen by whoever can call rotate-secret or write the
/// secret; opened in a spreadsheet, a cell that starts like a formula must stay text.
#[tokio::test]
async fn keyrot_audit_csv_never_hands_a_spreadsheet_a_formula() {
    let world = World::new().await;
    let moto = &world.moto;
    let log = moto.audit_log();
    let secret = unique("audit-formula");
    let at = Utc
        .with_ymd_and_hms(2031, 7, 4, 12, 0, 0)
        .single()
        .expect("time");
    let mut hostile = event(&secret, at, "createSecret");
    hostile.version_id = "=HYPERLINK(\"http://evil.example\",\"open\")".to_owned();
    hostile.error = Some("+cmd|' /C calc'!A0".to_owned());
    hostile.actor = "@SUM(1+1)".to_owned();
    log.record(&hostile).await.expect("record");

    let out = keyrot(&["audit", "--secret", &secret, "--format", "csv"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut reader = csv::Reader::from_reader(out.stdout.as_slice());
    let rows: Vec<csv::StringRecord> = reader
        .records()
        .collect::<Result<_, _>>()
        .expect("RFC 4180 CSV");
    assert_eq!(rows.len(), 1);
    for cell in rows[0].iter() {
        assert!(
            !cell.starts_with(['=', '+', '@']),
            "a cell a spreadsheet would run: {cell:?}"
        );
    }
    let cells: Vec<&str> = rows[0].iter().collect();
    assert!(cells.contains(&"'+cmd|' /C calc'!A0"), "{cells:?}");
    assert!(cells.contains(&"'@SUM(1+1)"), "{cells:?}");
}

#[tokio::test]
async fn keyrot_audit_refuses_bad_arguments_with_exit_code_2() {
    for args in [
        vec!["audit", "--month", "2031-13"],
        vec!["audit", "--since", "last week"],
        vec!["audit", "--month", "2031-05", "--since", "2031-05-02"],
        vec!["audit", "--format", "xml"],
        vec!["no-such-command"],
    ] {
        let out = keyrot(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(!out.stderr.is_empty(), "{args:?} says why");
    }
}

#[tokio::test]
async fn pending_revocations_are_found_by_due_time_and_leave_the_index_when_settled() {
    let world = World::new().await;
    let moto = &world.moto;
    let log = moto.audit_log();
    let name = moto
        .create_secret(
            "due",
            &json!({"provider": "generic", "api_key": "gk-duetimeDUETIMEduetime0001"}),
            &[("keyrot:grace-hours", "3000")],
        )
        .await;
    let old = moto.version_of(&name, "AWSCURRENT").await.expect("current");
    world.rotate(&name).await;
    let soon = log
        .pending_revocations(Utc::now() + Duration::hours(2999))
        .await
        .expect("query")
        .items;
    assert!(soon.iter().all(|r| r.secret_name != name), "not due yet");
    let later = log
        .pending_revocations(Utc::now() + Duration::hours(3001))
        .await
        .expect("query")
        .items;
    let mine: Vec<_> = later.iter().filter(|r| r.secret_name == name).collect();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].old_version_id, old);
    assert_eq!(mine[0].provider, "generic");
    log.set_revocation_status(
        &name,
        &old,
        keyrot::domain::audit::RevocationStatus::Retired,
    )
    .await
    .expect("settle");
    let after = log
        .pending_revocations(Utc::now() + Duration::hours(3001))
        .await
        .expect("query")
        .items;
    assert!(
        after.iter().all(|r| r.secret_name != name),
        "a settled revocation leaves the sparse index"
    );
}

#[tokio::test]
async fn a_cancelled_revocation_is_armed_again_and_a_settled_one_is_never_overwritten() {
    use keyrot::domain::audit::RevocationStatus;
    let world = World::new().await;
    let moto = &world.moto;
    let log = moto.audit_log();
    let name = moto
        .create_secret(
            "rearm",
            &json!({"provider": "generic", "api_key": "gk-rearmREARMrearmREARM00001"}),
            &[("keyrot:grace-hours", "3000")],
        )
        .await;
    let old = moto.version_of(&name, "AWSCURRENT").await.expect("current");
    world.rotate(&name).await;
    let due_after = Utc::now() + Duration::hours(3001);
    let mine = |all: Vec<keyrot::domain::audit::Revocation>| {
        all.into_iter()
            .filter(|r| r.secret_name == name)
            .collect::<Vec<_>>()
    };
    let mut revocation = mine(
        log.pending_revocations(due_after)
            .await
            .expect("query")
            .items,
    )
    .pop()
    .expect("scheduled by finishSecret");
    assert!(
        !log.schedule_revocation(&revocation).await.expect("put"),
        "a pending record stands: a retry writes nothing"
    );

    // A rollback cancelled it: an update from a keeper pass that read it before changes nothing.
    log.set_revocation_status(&name, &old, RevocationStatus::Cancelled)
        .await
        .expect("cancel");
    revocation.postponements = 1;
    assert!(
        !log.update_revocation(&revocation, RevocationStatus::Pending.into())
            .await
            .expect("update")
    );
    let stored = log
        .revocation(&name, &old)
        .await
        .expect("get")
        .expect("kept");
    assert_eq!(
        (stored.status, stored.postponements),
        (RevocationStatus::Cancelled, 0)
    );
    assert!(
        mine(
            log.pending_revocations(due_after)
                .await
                .expect("query")
                .items
        )
        .is_empty()
    );

    // The key goes out of service again: the cancelled record gives way to a pending one.
    revocation.postponements = 0;
    assert!(log.schedule_revocation(&revocation).await.expect("put"));
    assert_eq!(
        mine(
            log.pending_revocations(due_after)
                .await
                .expect("query")
                .items
        )
        .len(),
        1,
        "owed again, and back in the keeper's index"
    );

    // A keeper claims it before calling the provider: the claim stays due (a pass that died is taken
    // up again), and a rollback's cancel, conditional on pending, no longer applies.
    let claimed = revocation.claimed(chrono::Utc::now() - chrono::Duration::hours(1));
    assert!(
        log.update_revocation(&claimed, RevocationStatus::Pending.into())
            .await
            .expect("claim")
    );
    assert!(
        !log.update_revocation(&claimed, RevocationStatus::Pending.into())
            .await
            .expect("claim again"),
        "claimed once"
    );
    let listed = mine(
        log.pending_revocations(due_after)
            .await
            .expect("query")
            .items,
    );
    assert_eq!(
        listed.iter().map(|r| r.status).collect::<Vec<_>>(),
        [RevocationStatus::Revoking]
    );
    // Its process died; two later passes take the stale claim over: only the first does, since the
    // update names the claim it read.
    let stale = listed[0].as_read();
    let taken = listed[0].claimed(chrono::Utc::now());
    assert!(
        log.update_revocation(&taken, stale)
            .await
            .expect("take over")
    );
    assert!(
        !log.update_revocation(&listed[0].claimed(chrono::Utc::now()), stale)
            .await
            .expect("take over again"),
        "the claim is the first taker's"
    );
    let mut cancel = revocation.clone();
    cancel.status = RevocationStatus::Cancelled;
    assert!(
        !log.update_revocation(&cancel, RevocationStatus::Pending.into())
            .await
            .expect("cancel")
    );

    // Once revoked, nothing brings the record back.
    log.set_revocation_status(&name, &old, RevocationStatus::Revoked)
        .await
        .expect("settle");
    assert!(!log.schedule_revocation(&revocation).await.expect("put"));
    assert!(
        !log.update_revocation(&revocation, RevocationStatus::Pending.into())
            .await
            .expect("update")
    );
    let stored = log
        .revocation(&name, &old)
        .await
        .expect("get")
        .expect("kept");
    assert_eq!(stored.status, RevocationStatus::Revoked);
}

/// Two keeper alerts of one millisecond whose dedupe keys share their first eight characters used to
/// share a sort key, and the conditional put dropped the second in silence.
#[tokio::test]
async fn events_of_one_millisecond_action_and_token_prefix_are_all_kept() {
    let world = World::new().await;
    let log = world.moto.audit_log();
    let secret = unique("collide");
    let at = Utc::now();
    let alert = |dedupe: &str| AuditEvent {
        action: Action::Alert,
        version_id: dedupe.to_owned(),
        ..event(&secret, at, "alert")
    };
    for dedupe in ["v0000001#2031-05-01", "v0000001#2031-05-02"] {
        log.record(&alert(dedupe)).await.expect("record");
        log.record(&alert(dedupe))
            .await
            .expect("the same event again");
    }
    let kept: Vec<String> = world
        .moto
        .items(&secret)
        .await
        .into_iter()
        .filter(|item| item.get("sk").is_some_and(|sk| sk.starts_with("EVENT#")))
        .map(|item| item["version_id"].clone())
        .collect();
    assert_eq!(kept.len(), 2, "both kept, each once: {kept:?}");
}
