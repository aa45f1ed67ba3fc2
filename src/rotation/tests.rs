//! Each step over in-memory fakes of the ports: the entry checks' refusals, each step run twice, the
//! configuration test, crash completion in finishSecret, and the audit and alert of every attempt.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, TimeZone, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use super::*;
use crate::domain::audit::{Revocation, RevocationStatus};
use crate::domain::policy::{AWSPREVIOUS, KEYROT_STAGED, TAG_NEXT_GRACE_HOURS, TAG_TRIGGER};
use crate::domain::targets::TargetSpec;
use crate::domain::{NewKey, SecretDescription};
use crate::ports::{DeploymentState, PutOutcome};

const NAME: &str = "prod/generic";
const OLD_KEY: &str = "sk_live_OLDOLDOLDOLDOLDOLDOLD0ld1";

#[derive(Clone, Default)]
struct Version {
    value: Option<String>,
    stages: Vec<String>,
}

#[derive(Default)]
struct FakeStore {
    rotation_enabled: Cell<bool>,
    versions: RefCell<BTreeMap<String, Version>>,
    tags: RefCell<BTreeMap<String, String>>,
    calls: RefCell<Vec<String>>,
    /// Makes the next put behave as if a concurrent delivery stored another value first.
    lose_next_put: Cell<bool>,
}

impl FakeStore {
    fn with_current(value: Value) -> Self {
        let store = FakeStore::default();
        store.rotation_enabled.set(true);
        store.versions.borrow_mut().insert(
            "v0".into(),
            Version {
                value: Some(value.to_string()),
                stages: vec![AWSCURRENT.into()],
            },
        );
        store
    }

    /// What rotate-secret does: a placeholder version labelled AWSPENDING.
    fn start_rotation(&self, token: &str) {
        let mut versions = self.versions.borrow_mut();
        for version in versions.values_mut() {
            version.stages.retain(|s| s != AWSPENDING);
        }
        versions.insert(
            token.into(),
            Version {
                value: None,
                stages: vec![AWSPENDING.into()],
            },
        );
    }

    fn stages(&self) -> BTreeMap<String, Vec<String>> {
        self.versions
            .borrow()
            .iter()
            .filter(|(_, v)| !v.stages.is_empty())
            .map(|(id, v)| (id.clone(), v.stages.clone()))
            .collect()
    }

    fn value_of(&self, version: &str) -> Option<Value> {
        let versions = self.versions.borrow();
        let text = versions.get(version)?.value.as_ref()?;
        serde_json::from_str(text).ok()
    }

    fn version_with_stage(&self, stage: &str) -> Option<String> {
        self.stages()
            .into_iter()
            .find(|(_, s)| s.iter().any(|l| l == stage))
            .map(|(id, _)| id)
    }

    fn count(&self, call: &str) -> usize {
        self.calls
            .borrow()
            .iter()
            .filter(|c| c.as_str() == call)
            .count()
    }
}

impl SecretStore for FakeStore {
    async fn describe(&self, _secret_id: &str) -> Result<SecretDescription> {
        self.calls.borrow_mut().push("DescribeSecret".into());
        Ok(SecretDescription {
            arn: format!("arn:aws:secretsmanager:us-east-1:123456789012:secret:{NAME}-AbCdEf"),
            name: NAME.into(),
            rotation_enabled: self.rotation_enabled.get(),
            rotate_every_days: Some(30),
            versions: self.stages(),
            tags: self.tags.borrow().clone(),
            ..SecretDescription::default()
        })
    }

    async fn value(
        &self,
        _secret_id: &str,
        stage: &str,
        version_id: Option<&str>,
    ) -> Result<Option<SecretString>> {
        self.calls.borrow_mut().push("GetSecretValue".into());
        let versions = self.versions.borrow();
        let found = versions.iter().find(|(id, v)| {
            v.stages.iter().any(|s| s == stage) && version_id.is_none_or(|want| want == id.as_str())
        });
        Ok(found
            .and_then(|(_, v)| v.value.clone())
            .map(SecretString::from))
    }

    async fn put_pending(
        &self,
        _secret_id: &str,
        token: &str,
        value: &SecretString,
        _rt: Option<&str>,
    ) -> Result<PutOutcome> {
        self.calls.borrow_mut().push("PutSecretValue".into());
        let mut versions = self.versions.borrow_mut();
        let version = versions.entry(token.into()).or_default();
        if self.lose_next_put.replace(false) {
            version.value = Some(
                json!({"provider": "generic", "api_key": "sk_live_WINNERWINNERWINNERWIN1"})
                    .to_string(),
            );
            return Ok(PutOutcome::LostRace);
        }
        match &version.value {
            Some(existing) if existing != value.expose_secret() => Ok(PutOutcome::LostRace),
            _ => {
                version.value = Some(value.expose_secret().to_owned());
                if !version.stages.iter().any(|s| s == AWSPENDING) {
                    version.stages.push(AWSPENDING.into());
                }
                Ok(PutOutcome::Stored)
            }
        }
    }

    async fn move_stage(
        &self,
        _secret_id: &str,
        stage: &str,
        to: Option<&str>,
        from: Option<&str>,
    ) -> Result<()> {
        self.calls
            .borrow_mut()
            .push(format!("UpdateSecretVersionStage({stage})"));
        let mut versions = self.versions.borrow_mut();
        if let Some(from) = from {
            let version = versions
                .get_mut(from)
                .filter(|v| v.stages.iter().any(|s| s == stage))
                .ok_or_else(|| Error::protocol(NAME, format!("{stage} is not on {from}")))?;
            version.stages.retain(|s| s != stage);
        }
        if let Some(to) = to {
            if stage == AWSCURRENT {
                for version in versions.values_mut() {
                    version.stages.retain(|s| s != AWSPREVIOUS);
                }
                if let Some(from) = from {
                    versions
                        .entry(from.into())
                        .or_default()
                        .stages
                        .push(AWSPREVIOUS.into());
                }
            }
            versions
                .entry(to.into())
                .or_default()
                .stages
                .push(stage.into());
        }
        Ok(())
    }

    async fn untag(&self, _secret_id: &str, tag_keys: &[&str]) -> Result<()> {
        self.calls.borrow_mut().push("UntagResource".into());
        let mut tags = self.tags.borrow_mut();
        for key in tag_keys {
            tags.remove(*key);
        }
        Ok(())
    }
}

#[derive(Default)]
struct FakeIssuer {
    minted: Cell<u32>,
    rejected: RefCell<BTreeSet<String>>,
    revoked: RefCell<Vec<String>>,
    validated: RefCell<Vec<String>>,
    leftovers_removed: RefCell<Vec<String>>,
}

impl KeyIssuer for FakeIssuer {
    async fn mint(
        &self,
        _secret_name: &str,
        _current: &ManagedSecret,
        token: &str,
    ) -> Result<NewKey> {
        let n = self.minted.get() + 1;
        self.minted.set(n);
        Ok(NewKey {
            api_key: SecretString::from(format!("sk_live_NEWKEY{n:04}{token}XXXXXXXX")),
            key_id: Some(format!("key_{n}")),
            api_key_id: None,
        })
    }

    async fn remove_leftovers(
        &self,
        _secret_name: &str,
        _current: &ManagedSecret,
        _token: &str,
        kept: &NewKey,
    ) -> Result<()> {
        self.leftovers_removed
            .borrow_mut()
            .push(kept.key_id.clone().unwrap_or_default());
        Ok(())
    }

    async fn identify(
        &self,
        _secret_name: &str,
        _settings: &ManagedSecret,
        key: &SecretString,
    ) -> Result<Option<String>> {
        Ok(Some(format!(
            "apikey_{}",
            crate::domain::keys::fingerprint(key)
        )))
    }

    async fn validate(
        &self,
        secret_name: &str,
        _settings: &ManagedSecret,
        key: &SecretString,
    ) -> Result<()> {
        self.validated
            .borrow_mut()
            .push(key.expose_secret().to_owned());
        if self.rejected.borrow().contains(key.expose_secret()) {
            return Err(Error::KeyRejected {
                secret: secret_name.into(),
                provider: "generic".into(),
                hint: crate::domain::keys::redacted(key),
                detail: "HTTP 401".into(),
            });
        }
        Ok(())
    }

    async fn revoke(&self, revocation: &Revocation) -> Result<RevocationStatus> {
        self.revoked
            .borrow_mut()
            .push(revocation.old_version_id.clone());
        Ok(RevocationStatus::Revoked)
    }
}

/// Targets in memory: what each holds, the pushes, and deployments that build for a few polls.
#[derive(Default)]
struct FakeTargets {
    held: RefCell<BTreeMap<String, String>>,
    pushes: Cell<u32>,
    /// (deployment id, target label, key deployed)
    deployments: RefCell<Vec<(String, String, String)>>,
    polls: RefCell<BTreeMap<String, u32>>,
    /// Polls a deployment answers Building before it is Ready.
    build_polls: Cell<u32>,
    /// The next deployments end in ERROR.
    fail_deployments: Cell<u32>,
    failed: RefCell<BTreeSet<String>>,
}

impl FakeTargets {
    fn served(&self, label: &str) -> Option<String> {
        // What the newest deployment that reached Ready serves.
        let polls = self.polls.borrow();
        self.deployments
            .borrow()
            .iter()
            .rev()
            .find(|(id, l, _)| {
                l == label
                    && !self.failed.borrow().contains(id)
                    && polls.get(id).copied().unwrap_or(0) > self.build_polls.get()
            })
            .map(|(_, _, key)| key.clone())
    }
}

impl Target for FakeTargets {
    async fn held_fingerprint(
        &self,
        _secret_name: &str,
        target: &TargetSpec,
    ) -> Result<Option<String>> {
        Ok(self
            .held
            .borrow()
            .get(&target.label())
            .map(|key| crate::domain::keys::fingerprint(&SecretString::from(key.clone()))))
    }

    async fn push(
        &self,
        _secret_name: &str,
        target: &TargetSpec,
        key: &SecretString,
    ) -> Result<()> {
        self.pushes.set(self.pushes.get() + 1);
        self.held
            .borrow_mut()
            .insert(target.label(), key.expose_secret().to_owned());
        Ok(())
    }

    async fn redeploy(&self, _secret_name: &str, target: &TargetSpec) -> Result<String> {
        let mut deployments = self.deployments.borrow_mut();
        let id = format!("dpl_{}", deployments.len() + 1);
        let key = self
            .held
            .borrow()
            .get(&target.label())
            .cloned()
            .unwrap_or_default();
        if self.fail_deployments.get() > 0 {
            self.fail_deployments.set(self.fail_deployments.get() - 1);
            self.failed.borrow_mut().insert(id.clone());
        }
        deployments.push((id.clone(), target.label(), key));
        Ok(id)
    }

    async fn deployment_state(
        &self,
        _secret_name: &str,
        _target: &TargetSpec,
        id: &str,
    ) -> Result<DeploymentState> {
        let mut polls = self.polls.borrow_mut();
        let count = polls.entry(id.to_owned()).or_default();
        *count += 1;
        if *count <= self.build_polls.get() {
            return Ok(DeploymentState::Building);
        }
        if self.failed.borrow().contains(id) {
            return Ok(DeploymentState::Failed("ERROR".into()));
        }
        Ok(DeploymentState::Ready)
    }
}

#[derive(Default)]
struct FakeAudit {
    events: RefCell<Vec<AuditEvent>>,
    guards: RefCell<BTreeSet<String>>,
    revocations: RefCell<BTreeMap<String, Revocation>>,
    deployments: RefCell<BTreeMap<String, String>>,
    fail_writes: Cell<bool>,
}

impl FakeAudit {
    fn outcomes(&self) -> Vec<(String, &'static str)> {
        self.events
            .borrow()
            .iter()
            .map(|e| (e.action.clone(), e.outcome.as_str()))
            .collect()
    }

    fn check(&self) -> Result<()> {
        if self.fail_writes.get() {
            return Err(Error::external(
                "dynamodb",
                "PutItem",
                "unavailable",
                crate::error::Transience::Retryable,
            ));
        }
        Ok(())
    }
}

impl AuditLog for FakeAudit {
    async fn record_step_success(&self, event: &AuditEvent, token: &str) -> Result<bool> {
        self.check()?;
        if !self
            .guards
            .borrow_mut()
            .insert(format!("DONE#{token}#{}", event.action))
        {
            return Ok(false);
        }
        self.events.borrow_mut().push(event.clone());
        Ok(true)
    }

    async fn record(&self, event: &AuditEvent) -> Result<()> {
        self.check()?;
        self.events.borrow_mut().push(event.clone());
        Ok(())
    }

    async fn schedule_revocation(&self, revocation: &Revocation) -> Result<bool> {
        let mut revocations = self.revocations.borrow_mut();
        if revocations.contains_key(&revocation.old_version_id) {
            return Ok(false);
        }
        revocations.insert(revocation.old_version_id.clone(), revocation.clone());
        Ok(true)
    }

    async fn revocation(
        &self,
        _secret_name: &str,
        old_version_id: &str,
    ) -> Result<Option<Revocation>> {
        Ok(self.revocations.borrow().get(old_version_id).cloned())
    }

    async fn record_deployment(
        &self,
        _secret_name: &str,
        token: &str,
        target: &str,
        deployment_id: &str,
    ) -> Result<bool> {
        let mut deployments = self.deployments.borrow_mut();
        let key = format!("{token}#{target}");
        if deployments.contains_key(&key) {
            return Ok(false);
        }
        deployments.insert(key, deployment_id.to_owned());
        Ok(true)
    }

    async fn deployment(
        &self,
        _secret_name: &str,
        token: &str,
        target: &str,
    ) -> Result<Option<String>> {
        Ok(self
            .deployments
            .borrow()
            .get(&format!("{token}#{target}"))
            .cloned())
    }

    async fn clear_deployment(&self, _secret_name: &str, token: &str, target: &str) -> Result<()> {
        self.deployments
            .borrow_mut()
            .remove(&format!("{token}#{target}"));
        Ok(())
    }

    async fn set_revocation_status(
        &self,
        _secret_name: &str,
        old_version_id: &str,
        status: RevocationStatus,
    ) -> Result<()> {
        if let Some(revocation) = self.revocations.borrow_mut().get_mut(old_version_id) {
            revocation.status = status;
        }
        Ok(())
    }
}

#[derive(Default)]
struct FakeAlerts {
    sent: RefCell<Vec<Alert>>,
    fail: Cell<bool>,
}

impl Alerts for FakeAlerts {
    async fn send(&self, alert: &Alert) -> Result<()> {
        if self.fail.get() {
            return Err(Error::external(
                "sns",
                "Publish",
                "unavailable",
                crate::error::Transience::Retryable,
            ));
        }
        self.sent.borrow_mut().push(alert.clone());
        Ok(())
    }
}

struct FixedClock(DateTime<Utc>);

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        self.0
    }
}

type TestRotator = Rotator<FakeStore, FakeIssuer, FakeTargets, FakeAudit, FakeAlerts, FixedClock>;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0)
        .single()
        .unwrap_or_default()
}

fn rotator_with(value: Value) -> TestRotator {
    Rotator {
        store: FakeStore::with_current(value),
        issuer: FakeIssuer::default(),
        targets: FakeTargets::default(),
        audit: FakeAudit::default(),
        alerts: FakeAlerts::default(),
        clock: FixedClock(now()),
        settings: RotatorSettings {
            deploy_poll_interval: std::time::Duration::from_millis(1),
            ..RotatorSettings::default()
        },
    }
}

fn rotator() -> TestRotator {
    rotator_with(
        json!({"provider": "generic", "api_key": OLD_KEY, "generic": {"length": 32}, "team": "ml"}),
    )
}

fn event(step: Step, token: &str) -> RotationEvent {
    RotationEvent {
        step,
        secret_id: NAME.into(),
        client_request_token: token.into(),
        rotation_token: None,
    }
}

async fn run(rotator: &TestRotator, step: Step, token: &str) -> Result<Progress> {
    rotator
        .handle(
            &event(step, token),
            &Invocation {
                actor: "req-1".into(),
                deadline: None,
            },
        )
        .await
}

async fn rotate(rotator: &TestRotator, token: &str) {
    rotator.store.start_rotation(token);
    for step in Step::ALL {
        run(rotator, step, token)
            .await
            .unwrap_or_else(|err| panic!("{step}: {err}"));
    }
}

#[tokio::test]
async fn a_full_rotation_moves_the_labels_and_schedules_the_old_key() {
    let r = rotator();
    rotate(&r, "t1").await;

    let stages = r.store.stages();
    assert_eq!(stages.get("t1"), Some(&vec![AWSCURRENT.to_owned()]));
    assert_eq!(stages.get("v0"), Some(&vec![AWSPREVIOUS.to_owned()]));
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
        r.issuer.revoked.borrow().is_empty(),
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
    let r = rotator();
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
    let r = rotator();
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
    let r = rotator();
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
    let r = rotator();
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
        let r = rotator_with(value.clone());
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
    let r = rotator();
    if let Some(v) = r.store.versions.borrow_mut().get_mut("v0") {
        v.value = Some("{not json".into());
    }
    r.store.start_rotation("t1");
    let err = run(&r, Step::Create, "t1").await.expect_err("not json");
    assert!(err.to_string().contains("not valid JSON"), "{err}");
}

#[tokio::test]
async fn a_rejected_pending_key_fails_set_and_never_reaches_awscurrent() {
    let r = rotator();
    r.store.start_rotation("t1");
    run(&r, Step::Create, "t1").await.expect("create");
    let pending = r.store.value_of("t1").expect("pending value")["api_key"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    r.issuer.rejected.borrow_mut().insert(pending.clone());
    let err = run(&r, Step::Set, "t1").await.expect_err("rejected");
    assert!(!err.is_retryable());
    assert!(!err.to_string().contains(&pending), "{err}");
    assert_eq!(
        r.store.stages().get("v0"),
        Some(&vec![AWSCURRENT.to_owned()])
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
    let r = rotator();
    r.store.start_rotation("t-config");
    assert_eq!(
        run(&r, Step::Test, "t-config").await.expect("config test"),
        Progress::Done
    );
    assert_eq!(r.issuer.validated.borrow().as_slice(), [OLD_KEY.to_owned()]);
    r.issuer.rejected.borrow_mut().insert(OLD_KEY.into());
    run(&r, Step::Test, "t-config")
        .await
        .expect_err("a bad current key fails the configuration test");
}

#[tokio::test]
async fn finish_repeated_after_a_crash_completes_what_the_first_attempt_left() {
    let r = rotator();
    r.store
        .tags
        .borrow_mut()
        .insert(TAG_NEXT_GRACE_HOURS.into(), "2".into());
    r.store
        .tags
        .borrow_mut()
        .insert(TAG_TRIGGER.into(), "manual".into());
    r.store.start_rotation("t1");
    for step in [Step::Create, Step::Set, Step::Test] {
        run(&r, step, "t1").await.expect("step");
    }
    // The first finishSecret died right after promoting the version.
    r.store
        .move_stage(NAME, AWSCURRENT, Some("t1"), Some("v0"))
        .await
        .expect("promote");

    assert_eq!(
        run(&r, Step::Finish, "t1").await.expect("completes"),
        Progress::Done
    );
    assert_eq!(
        r.store.stages().get("t1"),
        Some(&vec![AWSCURRENT.to_owned()])
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
    assert!(r.store.tags.borrow().is_empty(), "one-shot tags cleared");
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
    let r = rotator();
    r.store
        .tags
        .borrow_mut()
        .insert(TAG_NEXT_GRACE_HOURS.into(), "0".into());
    r.store
        .tags
        .borrow_mut()
        .insert(TAG_TRIGGER.into(), "emergency".into());
    rotate(&r, "t1").await;
    assert_eq!(r.issuer.revoked.borrow().as_slice(), ["v0".to_owned()]);
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
    assert!(r.store.tags.borrow().is_empty());
    // The next rotation uses the permanent policy again.
    rotate(&r, "t2").await;
    assert_eq!(r.issuer.revoked.borrow().len(), 1);
}

#[tokio::test]
async fn finish_removes_the_staged_label() {
    let r = rotator();
    r.store.versions.borrow_mut().insert(
        "staged".into(),
        Version {
            value: Some("{}".into()),
            stages: vec![KEYROT_STAGED.into()],
        },
    );
    rotate(&r, "t1").await;
    assert!(
        r.store
            .stages()
            .values()
            .all(|stages| !stages.iter().any(|s| s == KEYROT_STAGED))
    );
}

#[tokio::test]
async fn a_lost_put_race_discards_the_minted_key_and_succeeds() {
    let r = rotator();
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
        r.issuer.revoked.borrow().len(),
        1,
        "the key minted here was discarded"
    );
    assert_eq!(
        r.store.value_of("t1").expect("winner")["api_key"],
        "sk_live_WINNERWINNERWINNERWIN1"
    );
}

#[tokio::test]
async fn audit_and_alert_failures_never_change_the_steps_outcome() {
    let r = rotator();
    r.audit.fail_writes.set(true);
    r.alerts.fail.set(true);
    rotate(&r, "t1").await;
    assert_eq!(
        r.store.stages().get("t1"),
        Some(&vec![AWSCURRENT.to_owned()])
    );
}

#[tokio::test]
async fn two_rotations_in_a_row_keep_one_previous_version() {
    let r = rotator();
    rotate(&r, "t1").await;
    rotate(&r, "t2").await;
    let stages = r.store.stages();
    assert_eq!(stages.get("t2"), Some(&vec![AWSCURRENT.to_owned()]));
    assert_eq!(stages.get("t1"), Some(&vec![AWSPREVIOUS.to_owned()]));
    assert_eq!(stages.get("v0"), None, "the first key has no label left");
    assert_eq!(r.audit.revocations.borrow().len(), 2);
}

const ANTHROPIC_OLD: &str = "sk-ant-api03-OLDOLDOLDOLDOLDOLDOLDOLD-0ldAA";
const ANTHROPIC_STAGED: &str = "sk-ant-api03-STAGEDSTAGEDSTAGEDSTAGED-n3wAA";

fn anthropic() -> TestRotator {
    rotator_with(
        json!({"provider": "anthropic", "api_key": ANTHROPIC_OLD, "anthropic": {"admin_key_secret": "keyrot/admin/anthropic"}}),
    )
}

fn stage(r: &TestRotator, key: &str) {
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
async fn an_anthropic_rotation_without_a_staged_key_unblocks_the_secret_and_asks_for_one() {
    let r = anthropic();
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
    r.issuer
        .rejected
        .borrow_mut()
        .insert(ANTHROPIC_STAGED.into());
    r.store.start_rotation("t1");
    run(&r, Step::Create, "t1").await.expect_err("rejected");
    assert_eq!(r.store.value_of("t1"), None);
}

#[tokio::test]
async fn after_storing_a_minted_key_the_leftovers_of_other_attempts_are_removed() {
    let r = rotator();
    r.store.start_rotation("t1");
    run(&r, Step::Create, "t1").await.expect("create");
    assert_eq!(
        r.issuer.leftovers_removed.borrow().as_slice(),
        ["key_1".to_owned()]
    );
}

const VERCEL: &str = "vercel:prj_1:API_KEY";
const RENDER: &str = "render:srv-1:API_KEY";

fn with_targets() -> TestRotator {
    let r = rotator_with(
        json!({"provider": "generic", "api_key": OLD_KEY, "targets": [
            {"type": "vercel", "project": "prj_1", "env_key": "API_KEY", "environments": ["production", "preview"], "token_secret": "t"},
            {"type": "render", "service_id": "srv-1", "env_key": "API_KEY", "token_secret": "t"},
        ]}),
    );
    for label in [VERCEL, RENDER] {
        r.targets
            .held
            .borrow_mut()
            .insert(label.into(), OLD_KEY.into());
    }
    r
}

fn pending_key(r: &TestRotator, token: &str) -> String {
    r.store.value_of(token).expect("pending")["api_key"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn targets_get_the_key_and_one_redeploy_each_and_a_repeated_set_secret_changes_nothing() {
    let r = with_targets();
    r.targets.build_polls.set(2);
    r.store.start_rotation("t1");
    run(&r, Step::Create, "t1").await.expect("create");
    run(&r, Step::Set, "t1").await.expect("set");
    let new_key = pending_key(&r, "t1");
    assert_eq!(r.targets.held.borrow().get(VERCEL), Some(&new_key));
    assert_eq!(r.targets.held.borrow().get(RENDER), Some(&new_key));
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
    r.store.start_rotation("t1");
    run(&r, Step::Create, "t1").await.expect("create");
    run(&r, Step::Set, "t1").await.expect("set");
    let invocation = Invocation {
        actor: "req".into(),
        deadline: Some(now() + Duration::seconds(5)),
    };
    let err = r
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
    r.store.start_rotation("t1");
    run(&r, Step::Create, "t1").await.expect("create");
    run(&r, Step::Set, "t1").await.expect("set");
    let err = run(&r, Step::Test, "t1")
        .await
        .expect_err("deployment failed");
    assert!(err.to_string().contains("ended ERROR"), "{err}");
    assert!(!err.is_retryable());
    for label in [VERCEL, RENDER] {
        assert_eq!(
            r.targets.held.borrow().get(label).map(String::as_str),
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
        Some(&vec![AWSCURRENT.to_owned()])
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
async fn a_target_holding_another_key_fails_test_secret_and_is_rolled_back() {
    let r = with_targets();
    r.store.start_rotation("t1");
    run(&r, Step::Create, "t1").await.expect("create");
    run(&r, Step::Set, "t1").await.expect("set");
    // Someone changed the variable by hand in the meantime.
    r.targets
        .held
        .borrow_mut()
        .insert(RENDER.into(), "sk_live_SOMEONEELSESKEY000000000".into());
    let err = run(&r, Step::Test, "t1")
        .await
        .expect_err("wrong fingerprint");
    assert!(
        err.to_string().contains("does not hold the pending key"),
        "{err}"
    );
    assert_eq!(
        r.targets.held.borrow().get(RENDER).map(String::as_str),
        Some(OLD_KEY)
    );
    assert_eq!(
        r.targets.held.borrow().get(VERCEL).map(String::as_str),
        Some(OLD_KEY)
    );
}

#[tokio::test]
async fn a_pending_key_rejected_in_test_secret_rolls_the_targets_back() {
    let r = with_targets();
    r.store.start_rotation("t1");
    run(&r, Step::Create, "t1").await.expect("create");
    run(&r, Step::Set, "t1").await.expect("set");
    r.issuer.rejected.borrow_mut().insert(pending_key(&r, "t1"));
    run(&r, Step::Test, "t1").await.expect_err("rejected");
    assert_eq!(
        r.targets.held.borrow().get(VERCEL).map(String::as_str),
        Some(OLD_KEY)
    );
}
