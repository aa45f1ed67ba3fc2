//! Fault injection: a full rotation (OpenAI key, a Vercel and a Render target) with a fault injected at
//! every external call in turn, of every kind, then driven to its end as Secrets Manager would (it retries
//! a failed step); after each scenario the invariant of docs/steps.md ("The guarantees") is checked. Prints the matrix.
//!
//! Faults are injected at the ports, around the real adapters talking to moto and the simulator: an
//! error answer (500/503), throttling (429), a timeout and a dropped connection surface to the domain as
//! retryable errors, and a crash is a panic right after the call succeeded (the process dies; nothing
//! after it runs, not even the audit of the attempt).

use crate::support::World;
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::rc::Rc;

use chrono::{DateTime, Utc};
use futures::FutureExt;
use keyrot::domain::audit::{AuditEvent, Expected, KeyHandle, Revocation, RevocationStatus};
use keyrot::domain::policy::Stage;
use keyrot::domain::provenance::KeyRecord;
use keyrot::domain::targets::TargetSpec;
use keyrot::domain::{ManagedSecret, NewKey, RotationEvent, SecretDescription, Step};
use keyrot::error::{Error, Result, Transience};
use keyrot::ports::{
    Alert, AlertKind, Alerts, AuditLog, Clock, DeploymentState, Family, KeyIssuer, MintedKey,
    Ports, PutOutcome, SecretStore, StageMove, Target,
};
use keyrot::rotation::{Invocation, Rotator, RotatorSettings};
use secrecy::SecretString;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    ServerError,
    Throttled,
    Timeout,
    Dropped,
    Crash,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::ServerError,
        Kind::Throttled,
        Kind::Timeout,
        Kind::Dropped,
        Kind::Crash,
    ];

    fn name(self) -> &'static str {
        match self {
            Kind::ServerError => "500/503",
            Kind::Throttled => "429",
            Kind::Timeout => "timeout",
            Kind::Dropped => "dropped",
            Kind::Crash => "crash",
        }
    }

    fn error(self, call: &str) -> Error {
        let detail = match self {
            Kind::ServerError => "HTTP 503 (injected)",
            Kind::Throttled => "HTTP 429 (injected)",
            Kind::Timeout => "timed out (injected)",
            Kind::Dropped => "the connection failed (injected)",
            Kind::Crash => "crash",
        };
        Error::external("injected", call, detail, Transience::Retryable)
    }
}

/// Counts every external call and injects one fault at call number `at`.
#[derive(Default)]
pub struct Injector {
    count: Cell<usize>,
    at: Cell<Option<(usize, Kind)>>,
    calls: RefCell<Vec<&'static str>>,
    fired: Cell<Option<&'static str>>,
}

impl Injector {
    async fn call<T>(
        &self,
        name: &'static str,
        call: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        let n = self.count.get();
        self.count.set(n + 1);
        self.calls.borrow_mut().push(name);
        let fault = self
            .at
            .get()
            .filter(|(at, _)| *at == n)
            .map(|(_, kind)| kind);
        if let Some(kind) = fault.filter(|k| *k != Kind::Crash) {
            self.fired.set(Some(name));
            return Err(kind.error(name));
        }
        let result = call.await;
        if fault == Some(Kind::Crash) && result.is_ok() {
            self.fired.set(Some(name));
            std::panic::panic_any(Crashed);
        }
        result
    }
}

/// The payload of an injected crash.
pub struct Crashed;

pub struct Faulty<P> {
    inner: P,
    inj: Rc<Injector>,
}

impl<P: SecretStore> SecretStore for Faulty<P> {
    async fn describe(&self, id: &str) -> Result<SecretDescription> {
        self.inj
            .call("secretsmanager.DescribeSecret", self.inner.describe(id))
            .await
    }
    async fn list(&self, name_prefix: Option<&str>) -> Result<Vec<SecretDescription>> {
        self.inj
            .call("secretsmanager.ListSecrets", self.inner.list(name_prefix))
            .await
    }
    async fn version_created(&self, id: &str, v: &str) -> Result<Option<DateTime<Utc>>> {
        self.inj
            .call(
                "secretsmanager.ListSecretVersionIds",
                self.inner.version_created(id, v),
            )
            .await
    }
    async fn value(&self, id: &str, stage: Stage, v: Option<&str>) -> Result<Option<SecretString>> {
        self.inj
            .call(
                "secretsmanager.GetSecretValue",
                self.inner.value(id, stage, v),
            )
            .await
    }
    async fn unlabelled_value(&self, id: &str, v: &str) -> Result<Option<SecretString>> {
        self.inj
            .call(
                "secretsmanager.GetSecretValue",
                self.inner.unlabelled_value(id, v),
            )
            .await
    }
    async fn put_pending(
        &self,
        id: &str,
        t: &str,
        value: &SecretString,
        rt: Option<&str>,
    ) -> Result<PutOutcome> {
        self.inj
            .call(
                "secretsmanager.PutSecretValue",
                self.inner.put_pending(id, t, value, rt),
            )
            .await
    }
    async fn put_staged(&self, id: &str, value: &SecretString) -> Result<String> {
        self.inj
            .call(
                "secretsmanager.PutSecretValue",
                self.inner.put_staged(id, value),
            )
            .await
    }
    async fn move_stage(&self, id: &str, stage: Stage, movement: StageMove<'_>) -> Result<()> {
        self.inj
            .call(
                "secretsmanager.UpdateSecretVersionStage",
                self.inner.move_stage(id, stage, movement),
            )
            .await
    }
    async fn untag(&self, id: &str, keys: &[&str]) -> Result<()> {
        self.inj
            .call("secretsmanager.UntagResource", self.inner.untag(id, keys))
            .await
    }
}

impl<P: KeyIssuer> KeyIssuer for Faulty<P> {
    async fn mint(&self, s: &str, c: &ManagedSecret, t: &str) -> Result<NewKey> {
        self.inj
            .call("provider.mint", self.inner.mint(s, c, t))
            .await
    }
    async fn remove_leftovers(
        &self,
        s: &str,
        c: &ManagedSecret,
        t: &str,
        k: &NewKey,
    ) -> Result<()> {
        self.inj
            .call(
                "provider.remove_leftovers",
                self.inner.remove_leftovers(s, c, t, k),
            )
            .await
    }
    async fn identify(
        &self,
        s: &str,
        c: &ManagedSecret,
        k: &SecretString,
    ) -> Result<Option<String>> {
        self.inj
            .call("provider.identify", self.inner.identify(s, c, k))
            .await
    }
    async fn validate(&self, s: &str, c: &ManagedSecret, k: &SecretString) -> Result<()> {
        self.inj
            .call("provider.validate", self.inner.validate(s, c, k))
            .await
    }
    async fn revoke(&self, r: &KeyHandle) -> Result<RevocationStatus> {
        self.inj.call("provider.revoke", self.inner.revoke(r)).await
    }
    async fn last_used(&self, r: &KeyHandle) -> Result<Option<DateTime<Utc>>> {
        self.inj
            .call("provider.last_used", self.inner.last_used(r))
            .await
    }
    async fn minted_keys(&self, s: &str, c: &ManagedSecret) -> Result<Vec<MintedKey>> {
        self.inj
            .call("provider.minted_keys", self.inner.minted_keys(s, c))
            .await
    }
}

impl<P: Target> Target for Faulty<P> {
    async fn held_fingerprint(&self, s: &str, t: &TargetSpec) -> Result<Option<String>> {
        self.inj
            .call("target.held_fingerprint", self.inner.held_fingerprint(s, t))
            .await
    }
    async fn holds(&self, s: &str, t: &TargetSpec, fingerprint: &str) -> Result<bool> {
        self.inj
            .call("target.holds", self.inner.holds(s, t, fingerprint))
            .await
    }
    async fn push(&self, s: &str, t: &TargetSpec, k: &SecretString) -> Result<()> {
        self.inj.call("target.push", self.inner.push(s, t, k)).await
    }
    async fn redeploy(&self, s: &str, t: &TargetSpec) -> Result<String> {
        self.inj
            .call("target.redeploy", self.inner.redeploy(s, t))
            .await
    }
    async fn deployment_state(&self, s: &str, t: &TargetSpec, d: &str) -> Result<DeploymentState> {
        self.inj
            .call(
                "target.deployment_state",
                self.inner.deployment_state(s, t, d),
            )
            .await
    }
}

impl<P: AuditLog> AuditLog for Faulty<P> {
    async fn record_step_success(&self, e: &AuditEvent, t: &str) -> Result<bool> {
        self.inj
            .call(
                "dynamodb.TransactWriteItems",
                self.inner.record_step_success(e, t),
            )
            .await
    }
    async fn step_succeeded(&self, s: &str, t: &str, step: Step) -> Result<bool> {
        self.inj
            .call(
                "dynamodb.GetItem(step guard)",
                self.inner.step_succeeded(s, t, step),
            )
            .await
    }
    async fn record(&self, e: &AuditEvent) -> Result<()> {
        self.inj
            .call("dynamodb.PutItem(event)", self.inner.record(e))
            .await
    }
    async fn schedule_revocation(&self, r: &Revocation) -> Result<bool> {
        self.inj
            .call(
                "dynamodb.PutItem(revocation)",
                self.inner.schedule_revocation(r),
            )
            .await
    }
    async fn revocation(&self, s: &str, v: &str) -> Result<Option<Revocation>> {
        self.inj
            .call("dynamodb.GetItem(revocation)", self.inner.revocation(s, v))
            .await
    }
    async fn record_deployment(&self, s: &str, t: &str, target: &str, d: &str) -> Result<bool> {
        self.inj
            .call(
                "dynamodb.PutItem(deployment)",
                self.inner.record_deployment(s, t, target, d),
            )
            .await
    }
    async fn deployment(&self, s: &str, t: &str, target: &str) -> Result<Option<String>> {
        self.inj
            .call(
                "dynamodb.GetItem(deployment)",
                self.inner.deployment(s, t, target),
            )
            .await
    }
    async fn clear_deployment(&self, s: &str, t: &str, target: &str) -> Result<()> {
        self.inj
            .call(
                "dynamodb.DeleteItem(deployment)",
                self.inner.clear_deployment(s, t, target),
            )
            .await
    }
    async fn pending_revocations(
        &self,
        before: DateTime<Utc>,
    ) -> Result<keyrot::ports::Listed<Revocation>> {
        self.inj
            .call(
                "dynamodb.Query(pending)",
                self.inner.pending_revocations(before),
            )
            .await
    }
    async fn revocations_of(&self, s: &str) -> Result<keyrot::ports::Listed<Revocation>> {
        self.inj
            .call("dynamodb.Query(revocations)", self.inner.revocations_of(s))
            .await
    }
    async fn update_revocation(&self, r: &Revocation, expected: Expected) -> Result<bool> {
        self.inj
            .call(
                "dynamodb.PutItem(revocation update)",
                self.inner.update_revocation(r, expected),
            )
            .await
    }
    async fn record_key(&self, r: &KeyRecord) -> Result<bool> {
        self.inj
            .call("dynamodb.PutItem(key)", self.inner.record_key(r))
            .await
    }
    async fn first_failure(&self, s: &str, w: &str, at: DateTime<Utc>) -> Result<DateTime<Utc>> {
        self.inj
            .call(
                "dynamodb.PutItem(failure)",
                self.inner.first_failure(s, w, at),
            )
            .await
    }
    async fn key_record(&self, s: &str, f: &str) -> Result<Option<KeyRecord>> {
        self.inj
            .call("dynamodb.GetItem(key)", self.inner.key_record(s, f))
            .await
    }
    async fn record_alert_once(&self, s: &str, k: AlertKind, d: &str) -> Result<bool> {
        self.inj
            .call(
                "dynamodb.PutItem(alert)",
                self.inner.record_alert_once(s, k, d),
            )
            .await
    }
    async fn park_alert(&self, a: &Alert, at: DateTime<Utc>) -> Result<()> {
        self.inj
            .call("dynamodb.PutItem(parked)", self.inner.park_alert(a, at))
            .await
    }
    async fn parked_alerts(&self) -> Result<keyrot::ports::Listed<keyrot::ports::ParkedAlert>> {
        self.inj
            .call("dynamodb.Query(parked)", self.inner.parked_alerts())
            .await
    }
    async fn unpark_alert(&self, id: &str) -> Result<()> {
        self.inj
            .call("dynamodb.DeleteItem(parked)", self.inner.unpark_alert(id))
            .await
    }
}

impl<P: Alerts> Alerts for Faulty<P> {
    async fn send(&self, a: &Alert) -> Result<()> {
        self.inj.call("sns.Publish", self.inner.send(a)).await
    }
}

/// The AWS adapters, each behind the injector, with the clock `C`.
pub struct FaultyAws<C>(std::marker::PhantomData<C>);

impl<C: Clock> Family for FaultyAws<C> {
    type Store = Faulty<keyrot::adapters::secrets_manager::SecretsManagerStore>;
    type Issuer = Faulty<keyrot::adapters::issuers::ProviderIssuers>;
    type Targets = Faulty<keyrot::adapters::targets::PlatformTargets>;
    type Audit = Faulty<keyrot::adapters::dynamodb::DynamoAuditLog>;
    type Alerts = Faulty<keyrot::adapters::sns::SnsAlerts>;
    type Metrics = keyrot::adapters::metrics::EmfMetrics;
    type Clock = C;
}

/// The settings a faulty rotator runs with: redeploys polled often, so scenarios stay short.
pub fn faulty_settings() -> RotatorSettings {
    RotatorSettings {
        deploy_poll_interval: std::time::Duration::from_millis(50),
        ..RotatorSettings::default()
    }
}

/// The world's adapters, each behind one shared injector.
pub async fn faulty_ports<C: Clock>(
    world: &World,
    clock: C,
    inj: &Rc<Injector>,
) -> Ports<FaultyAws<C>> {
    let real = keyrot::wiring::build_with_clock(&world.config, clock)
        .await
        .expect("adapters");
    let wrap = |inner| Faulty {
        inner,
        inj: inj.clone(),
    };
    Ports {
        store: Faulty {
            inner: real.store,
            inj: inj.clone(),
        },
        issuer: Faulty {
            inner: real.issuer,
            inj: inj.clone(),
        },
        targets: Faulty {
            inner: real.targets,
            inj: inj.clone(),
        },
        audit: wrap(real.audit),
        alerts: Faulty {
            inner: real.alerts,
            inj: inj.clone(),
        },
        metrics: real.metrics,
        clock: real.clock,
    }
}

/// Runs one step; a crash (an injected panic) comes back as an error, as a dead invocation would look
/// to Secrets Manager.
pub async fn run_step<C: Clock>(
    rotator: &Rotator<'_, FaultyAws<C>>,
    step: Step,
    name: &str,
    token: &str,
) -> std::result::Result<(), String> {
    let event = RotationEvent {
        step,
        secret_id: name.into(),
        client_request_token: token.into(),
        rotation_token: None,
    };
    match AssertUnwindSafe(rotator.handle(&event, &Invocation::default()))
        .catch_unwind()
        .await
    {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(err)) => Err(err.to_string()),
        Err(panic) if panic.is::<Crashed>() => Err("crashed".into()),
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// One scenario's findings.
#[derive(Debug, Default)]
struct Outcome {
    violations: Vec<String>,
}

async fn scenario(
    world: &World,
    fault: Option<(usize, Kind)>,
) -> (usize, Outcome, Option<&'static str>) {
    let (name, first_key, vercel, render) = world.openai_secret_with_targets(&[]).await;
    let project = world
        .moto
        .value(&name, "AWSCURRENT", None)
        .await
        .unwrap_or_default()["openai"]["project_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let token = world.moto.rotate_secret(&name, true).await;

    let inj = Rc::new(Injector::default());
    inj.at.set(fault);
    let ports = faulty_ports(world, keyrot::adapters::clock::SystemClock::default(), &inj).await;
    let rotator = Rotator::new(&ports, faulty_settings());
    let mut failures = Vec::new();
    for step in Step::ALL {
        let mut attempts = 0;
        loop {
            attempts += 1;
            match run_step(&rotator, step, &name, &token).await {
                Ok(()) => break,
                Err(err) if attempts < 4 => failures.push((step, err)),
                Err(err) => {
                    failures.push((step, err.clone()));
                    let mut outcome = Outcome::default();
                    outcome
                        .violations
                        .push(format!("{step} never succeeded: {err}"));
                    return (inj.count.get(), outcome, inj.fired.get());
                }
            }
        }
    }

    // The invariant.
    let mut outcome = Outcome::default();
    let current = world.current_key(&name).await;
    if !world.sim.openai_key_works(&current) {
        outcome
            .violations
            .push("AWSCURRENT does not work at the provider".into());
    }
    for (target, served) in [
        (
            "vercel",
            world
                .sim
                .vercel_served_value(&vercel, "production", "OPENAI_API_KEY"),
        ),
        (
            "render",
            world.sim.render_served_value(&render, "OPENAI_API_KEY"),
        ),
    ] {
        match served {
            Some(key) if key == current => {}
            Some(key) if world.sim.openai_key_works(&key) => outcome
                .violations
                .push(format!("{target} serves the old key")),
            _ => outcome
                .violations
                .push(format!("{target} serves no working key")),
        }
    }
    if !world.sim.openai_key_works(&first_key) {
        outcome
            .violations
            .push("the old key was revoked during its grace period".into());
    }
    let value = world
        .moto
        .value(&name, "AWSCURRENT", None)
        .await
        .unwrap_or_default();
    let known = value["key_id"].as_str().unwrap_or_default().to_owned();
    for account in world.sim.openai_service_accounts(&project) {
        if account.id != known {
            outcome
                .violations
                .push(format!("orphaned service account {}", account.id));
        }
    }
    let audited_failures = world
        .moto
        .audit_trail(&name)
        .await
        .iter()
        .filter(|(_, o)| o == "failed")
        .count();
    let non_crash_failures = failures.iter().filter(|(_, err)| err != "crashed").count();
    let audit_fault = inj
        .fired
        .get()
        .is_some_and(|call| call.starts_with("dynamodb."));
    if non_crash_failures > 0 && audited_failures == 0 && !audit_fault {
        outcome
            .violations
            .push("the failed attempt is missing from the audit trail".into());
    }
    let logs = crate::support::captured_logs();
    for key in [&first_key, &current] {
        if logs.contains(key.as_str()) {
            outcome
                .violations
                .push("a key value appears in the log lines".into());
        }
    }
    (inj.count.get(), outcome, inj.fired.get())
}

#[tokio::test]
async fn a_fault_at_every_external_call_keeps_the_invariant() {
    let world = World::new().await;
    world.sim.vercel_set_build_millis(30);
    world.sim.render_set_build_millis(30);
    let (calls, clean, _) = scenario(&world, None).await;
    assert!(
        clean.violations.is_empty(),
        "the clean run violates the invariant: {:?}",
        clean.violations
    );

    // Scenario count is bounded: every call point, every kind.
    let mut table: BTreeMap<(&'static str, &'static str), (usize, usize)> = BTreeMap::new();
    let mut violations = Vec::new();
    for at in 0..calls {
        for kind in Kind::ALL {
            let (_, outcome, fired) = scenario(&world, Some((at, kind))).await;
            let point = fired.unwrap_or("(not reached)");
            let entry = table.entry((point, kind.name())).or_default();
            entry.0 += 1;
            entry.1 += outcome.violations.len();
            for v in outcome.violations {
                violations.push(format!("fault {} at call {at} ({point}): {v}", kind.name()));
            }
        }
    }
    println!(
        "\nfault injection over a full rotation ({calls} external calls, {} kinds):",
        Kind::ALL.len()
    );
    println!(
        "{:<40} {:>9} {:>10}",
        "call point x kind", "scenarios", "violations"
    );
    for ((point, kind), (runs, bad)) in &table {
        println!("{:<40} {runs:>9} {bad:>10}", format!("{point} x {kind}"));
    }
    println!(
        "{} scenarios, {} invariant violations",
        calls * Kind::ALL.len(),
        violations.len()
    );
    assert!(violations.is_empty(), "{violations:#?}");
}
