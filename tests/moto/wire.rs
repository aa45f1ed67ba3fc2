//! Faults on the wire. A full rotation (OpenAI key, a Vercel and a Render target) runs with the real
//! adapters through fault proxies in front of moto and the simulator, so every HTTP request it makes,
//! the SDK's and the adapters' retries included, is a fault point: an error answer in the service's own
//! shape (unavailable, throttled, access denied, once or for good), a connection reset before the
//! request was forwarded, or an answer lost after the server acted on it. Secrets Manager's part is played as it plays it:
//! each failed step is invoked again. A rotation that never succeeds is repaired and the grace keeper
//! run, and then held to the same invariant (docs/steps.md, "The guarantees").
//!
//! `make test` runs the diagonal: every request once, each with one kind in turn. `make chaos`
//! (`KEYROT_CHAOS=1`) runs every request with every kind.

use std::collections::BTreeMap;
use std::sync::Arc;

use keyrot::config::Config;
use keyrot::domain::{RotationEvent, Step};
use keyrot::keeper::{GraceKeeper, KeeperSettings};
use keyrot::ports::Ports;
use keyrot::rotation::{Invocation, Rotator, RotatorSettings};
use keyrot::wiring::{self, AwsWith};
use keyrot_sim::{FaultPlan, FaultProxy, WireError, WireFault};

use crate::support::{Later, World};

type Clock = keyrot::adapters::clock::SystemClock;

/// The kinds every request meets: once, or (`Lasting::Yes`) from then on for that operation.
const KINDS: [(&str, WireFault, Lasting); 6] = [
    ("503", WireFault::Error(WireError::Unavailable), Lasting::No),
    (
        "throttled",
        WireFault::Error(WireError::Throttled),
        Lasting::No,
    ),
    ("denied", WireFault::Error(WireError::Denied), Lasting::No),
    (
        "denied for good",
        WireFault::Error(WireError::Denied),
        Lasting::Yes,
    ),
    ("reset", WireFault::Reset, Lasting::No),
    ("answer lost", WireFault::LoseAnswer, Lasting::No),
];

/// Whether a fault lasts past the request it first meets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lasting {
    No,
    Yes,
}

/// How often Secrets Manager (here: the harness) invokes a failing step before the rotation is
/// abandoned.
const ATTEMPTS: usize = 4;

/// The rotator's ports, every request of which goes through the proxies of one plan.
struct Wire {
    plan: Arc<FaultPlan>,
    ports: Ports<AwsWith<Clock>>,
    _proxies: [FaultProxy; 2],
}

impl Wire {
    async fn new(world: &World) -> Wire {
        let plan = FaultPlan::new();
        let endpoint = std::env::var("AWS_ENDPOINT_URL").expect("moto's endpoint");
        let moto = FaultProxy::start("moto", &endpoint, plan.clone())
            .await
            .expect("moto proxy");
        let sim = FaultProxy::start("sim", &world.sim.base_url(), plan.clone())
            .await
            .expect("simulator proxy");
        let config = Config {
            openai_base_url: format!("{}/v1", sim.url()),
            anthropic_base_url: sim.url(),
            vercel_base_url: sim.url(),
            render_base_url: sim.url(),
            ..world.config.clone()
        };
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(moto.url())
            .load()
            .await;
        let ports = wiring::build_from(&config, &sdk, Clock::default()).expect("ports");
        Wire {
            plan,
            ports,
            _proxies: [moto, sim],
        }
    }
}

fn settings() -> RotatorSettings {
    RotatorSettings {
        deploy_poll_interval: std::time::Duration::from_millis(50),
        fresh_key_patience: std::time::Duration::from_secs(2),
        fresh_key_retry: std::time::Duration::from_millis(100),
        revocation_check: keyrot::patience::Patience::new(
            std::time::Duration::from_secs(1),
            std::time::Duration::from_millis(100),
        ),
        ..RotatorSettings::default()
    }
}

/// What one scenario did.
struct Run {
    /// Requests made through the proxies.
    requests: usize,
    /// The request the fault hit, as `upstream operation`.
    fired: Option<String>,
    /// The rotation never succeeded and was repaired.
    aborted: bool,
    violations: Vec<String>,
}

/// The rotations the matrix runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rotation {
    /// A minted OpenAI key pushed to a Vercel and a Render target, with the default grace.
    OpenAi,
    /// A staged Anthropic key adopted with grace 0, so the old key is revoked (and checked) at once.
    Anthropic,
}

impl Rotation {
    fn name(self) -> &'static str {
        match self {
            Rotation::OpenAi => "openai",
            Rotation::Anthropic => "anthropic",
        }
    }
}

/// A secret ready for its rotation: its name, first key and targets (Vercel project, Render service).
struct Secret {
    name: String,
    first_key: String,
    targets: Option<(String, String)>,
}

async fn set_up(world: &World, rotation: Rotation) -> Secret {
    match rotation {
        Rotation::OpenAi => {
            let (name, first_key, vercel, render) = world.openai_secret_with_targets(&[]).await;
            Secret {
                name,
                first_key,
                targets: Some((vercel, render)),
            }
        }
        Rotation::Anthropic => {
            let (first_key, first_id) = world.sim.anthropic_create_key("first");
            let admin = world
                .admin_secret(
                    &serde_json::json!({"admin_key": world.sim.anthropic_admin_key()}).to_string(),
                )
                .await;
            let value = serde_json::json!({"provider": "anthropic", "api_key": first_key,
                "key_id": first_id, "anthropic": {"admin_key_secret": admin}});
            let name = world
                .moto
                .onboard_secret("wire-anthropic", &value, &[("keyrot:grace-hours", "0")])
                .await;
            let (staged, _) = world.sim.anthropic_create_key("staged");
            world
                .moto
                .sm
                .put_secret_value()
                .secret_id(&name)
                .secret_string(serde_json::json!({"api_key": staged}).to_string())
                .version_stages("KEYROT_STAGED")
                .send()
                .await
                .expect("stage");
            Secret {
                name,
                first_key,
                targets: None,
            }
        }
    }
}

async fn scenario(
    world: &World,
    wire: &Wire,
    rotation: Rotation,
    fault: Option<(usize, WireFault, Lasting)>,
) -> Run {
    let secret = set_up(world, rotation).await;
    let name = secret.name.clone();
    let token = world.moto.rotate_secret(&name, true).await;
    wire.plan.clear();
    match fault {
        Some((at, kind, Lasting::No)) => wire.plan.inject(at, kind),
        Some((at, kind, Lasting::Yes)) => wire.plan.inject_lasting(at, kind),
        None => {}
    }
    let rotator = Rotator::new(&wire.ports, settings());
    let (aborted, mut watched) =
        watching(world, rotation, &secret, drive(&rotator, &name, &token)).await;
    let requests = wire.plan.seen().len();
    let fired = wire
        .plan
        .fired()
        .map(|s| format!("{} {}", s.upstream, without_ids(&s.operation)));
    wire.plan.clear();
    if aborted {
        repair(world, &name).await;
    }
    keeper_pass(world, &name).await;
    let mut violations = invariant(world, rotation, &secret, aborted).await;
    violations.append(&mut watched);
    Run {
        requests,
        fired,
        aborted,
        violations,
    }
}

/// Plays Secrets Manager: each step is invoked until it succeeds, [`ATTEMPTS`] times at most. Returns
/// whether the rotation was abandoned.
async fn drive(rotator: &Rotator<'_, AwsWith<Clock>>, name: &str, token: &str) -> bool {
    for step in Step::ALL {
        let event = RotationEvent {
            step,
            secret_id: name.to_owned(),
            client_request_token: token.to_owned(),
            rotation_token: None,
        };
        let mut done = false;
        for _ in 0..ATTEMPTS {
            if rotator.handle(&event, &Invocation::default()).await.is_ok() {
                done = true;
                break;
            }
        }
        if !done {
            return true;
        }
    }
    false
}

/// Runs `rotation` while a watcher checks, every 200 ms, what users see: AWSCURRENT's key works at
/// the provider, and every target's live deployment serves a key that works. Returns what `rotation`
/// returned and each moment the watcher saw otherwise.
async fn watching<T>(
    world: &World,
    provider: Rotation,
    secret: &Secret,
    rotation: impl std::future::Future<Output = T>,
) -> (T, Vec<String>) {
    let mut seen = Vec::new();
    let started = std::time::Instant::now();
    let watch = async {
        loop {
            for problem in users_see(world, provider, secret).await {
                let at = started.elapsed().as_millis();
                if !seen.iter().any(|(_, p): &(u128, String)| *p == problem) {
                    seen.push((at, problem));
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    };
    let result = tokio::select! {
        result = rotation => result,
        never = watch => never,
    };
    let violations = seen
        .into_iter()
        .map(|(at, problem)| format!("while rotating, at {at} ms: {problem}"))
        .collect();
    (result, violations)
}

/// The key each target's live deployment serves, by target.
fn served(world: &World, (vercel, render): (&str, &str)) -> [(&'static str, Option<String>); 2] {
    [
        (
            "vercel",
            world
                .sim
                .vercel_served_value(vercel, "production", "OPENAI_API_KEY"),
        ),
        (
            "render",
            world.sim.render_served_value(render, "OPENAI_API_KEY"),
        ),
    ]
}

/// What is wrong for users right now.
async fn users_see(world: &World, provider: Rotation, secret: &Secret) -> Vec<String> {
    let works = |key: &str| match provider {
        Rotation::OpenAi => world.sim.openai_key_works(key),
        Rotation::Anthropic => world.sim.anthropic_key_works(key),
    };
    let mut problems = Vec::new();
    let current = world.moto.value(&secret.name, "AWSCURRENT", None).await;
    if let Some(key) = current.as_ref().and_then(|v| v["api_key"].as_str())
        && !works(key)
    {
        problems.push("AWSCURRENT's key does not work".to_owned());
    }
    if let Some((vercel, render)) = &secret.targets {
        for (target, served) in served(world, (vercel, render)) {
            if served.is_some_and(|key| !works(&key)) {
                problems.push(format!("{target} serves a key that does not work"));
            }
        }
    }
    problems
}

/// A request's operation with the ids in its path replaced by `{id}`, so that one table row gathers
/// the scenarios of one kind of request.
fn without_ids(operation: &str) -> String {
    operation
        .split('/')
        .map(|part| {
            let id = part.len() > 8
                && part.chars().any(|c| c.is_ascii_digit())
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if id { "{id}" } else { part }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// What a person does with a rotation that never succeeded: `keyrot repair`.
async fn repair(world: &World, name: &str) {
    let operator = keyrot::operator::Operator::new(&world.ports, settings());
    // Nothing pending (the rotation failed before its first step left anything) is no error here.
    let _ = operator.repair(name, "it-operator", true).await;
}

/// The grace keeper's next pass, two hours on: it revokes what is due (a key repair recorded, an
/// old key whose grace-0 revocation failed) once nothing uses it.
async fn keeper_pass(world: &World, name: &str) {
    let later = wiring::build_with_clock(&world.config, Later(chrono::Duration::hours(2)))
        .await
        .expect("ports");
    let keeper = GraceKeeper::new(
        &later,
        KeeperSettings {
            rotator_arn: Some(world.moto.rotator_arn.clone()),
            name_prefix: Some(name.to_owned()),
            ..KeeperSettings::default()
        },
    );
    let _ = keeper.run().await;
}

async fn invariant(
    world: &World,
    rotation: Rotation,
    secret: &Secret,
    aborted: bool,
) -> Vec<String> {
    let mut violations = Vec::new();
    let works = |key: &str| match rotation {
        Rotation::OpenAi => world.sim.openai_key_works(key),
        Rotation::Anthropic => world.sim.anthropic_key_works(key),
    };
    let (name, first_key) = (secret.name.as_str(), secret.first_key.as_str());
    let current = world.current_key(name).await;
    if !works(&current) {
        violations.push("AWSCURRENT's key does not work at the provider".to_owned());
    }
    if let Some((vercel, render)) = &secret.targets {
        violations.extend(targets(world, (vercel, render), &current, aborted));
    }
    match rotation {
        Rotation::OpenAi if !aborted && !works(first_key) => {
            violations.push("the old key was revoked during its grace period".to_owned());
        }
        Rotation::Anthropic if !aborted && works(first_key) => {
            violations.push("the old key outlived its grace of 0 and the keeper's pass".to_owned());
        }
        _ => {}
    }
    if rotation == Rotation::OpenAi {
        violations.extend(orphans(world, name).await);
    }
    if !aborted {
        violations.extend(steps_audited_once(world, name).await);
    }
    let logs = crate::support::captured_logs();
    if logs.contains(first_key) || logs.contains(current.as_str()) {
        violations.push("a key value appears in the log lines".to_owned());
    }
    violations
}

/// What the targets' live deployments serve: AWSCURRENT's key, or after an aborted rotation (repaired)
/// a key that still works.
fn targets(
    world: &World,
    (vercel, render): (&str, &str),
    current: &str,
    aborted: bool,
) -> Vec<String> {
    let mut violations = Vec::new();
    for (target, served) in served(world, (vercel, render)) {
        match served {
            Some(key) if key == current => {}
            // Before its first redeploy a target serves nothing of keyrot's; that is no outage.
            None if aborted => {}
            Some(key) if world.sim.openai_key_works(&key) && aborted => {}
            Some(_) => violations.push(format!("{target} serves a key that is not AWSCURRENT's")),
            None => violations.push(format!("{target} serves no key")),
        }
    }
    violations
}

/// Every service account of the project is AWSCURRENT's, or AWSPREVIOUS's in its grace.
async fn orphans(world: &World, name: &str) -> Vec<String> {
    let value = |stage| async move {
        world
            .moto
            .value(name, stage, None)
            .await
            .unwrap_or_default()
    };
    let current = value("AWSCURRENT").await;
    let previous = value("AWSPREVIOUS").await;
    let known: Vec<&str> = [&current, &previous]
        .iter()
        .filter_map(|v| v["key_id"].as_str())
        .collect();
    let project = current["openai"]["project_id"].as_str().unwrap_or_default();
    world
        .sim
        .openai_service_accounts(project)
        .into_iter()
        .filter(|account| !known.contains(&account.id.as_str()))
        .map(|account| format!("service account {} is alive and unknown", account.id))
        .collect()
}

/// One succeeded event per step: a repeated success would be two rotations' worth of evidence.
async fn steps_audited_once(world: &World, name: &str) -> Vec<String> {
    let trail = world.moto.audit_trail(name).await;
    Step::ALL
        .iter()
        .filter_map(|step| {
            let succeeded = trail
                .iter()
                .filter(|(action, outcome)| action == step.as_str() && outcome == "succeeded")
                .count();
            (succeeded != 1).then(|| format!("{step} audited as succeeded {succeeded} times"))
        })
        .collect()
}

#[tokio::test]
async fn a_fault_at_every_request_of_a_rotation_keeps_the_invariant() {
    let world = World::new().await;
    world.sim.vercel_set_build_millis(30);
    world.sim.render_set_build_millis(30);
    let wire = Wire::new(&world).await;
    let full = std::env::var_os("KEYROT_CHAOS").is_some();
    let mut table: BTreeMap<(&str, String, &str), (usize, usize, usize)> = BTreeMap::new();
    let (mut scenarios, mut unfired, mut violations) = (0, 0, Vec::new());
    let mut requests = BTreeMap::new();
    for rotation in [Rotation::OpenAi, Rotation::Anthropic] {
        let clean = scenario(&world, &wire, rotation, None).await;
        assert!(
            clean.violations.is_empty() && !clean.aborted,
            "the clean {} run: {:?}",
            rotation.name(),
            clean.violations
        );
        requests.insert(rotation.name(), clean.requests);
        for at in 0..clean.requests {
            for (index, (kind, fault, lasting)) in KINDS.iter().enumerate() {
                // The diagonal: each request meets one kind, the kinds taking turns.
                if !full && index != at % KINDS.len() {
                    continue;
                }
                let run = scenario(&world, &wire, rotation, Some((at, *fault, *lasting))).await;
                scenarios += 1;
                let point = run.fired.clone().unwrap_or_else(|| {
                    unfired += 1;
                    "(not reached)".to_owned()
                });
                let entry = table
                    .entry((rotation.name(), point.clone(), kind))
                    .or_default();
                entry.0 += 1;
                entry.1 += usize::from(run.aborted);
                entry.2 += run.violations.len();
                for v in run.violations {
                    violations.push(format!(
                        "{}: {kind} at request {at} ({point}): {v}",
                        rotation.name()
                    ));
                }
            }
        }
    }
    println!(
        "\nfaults on the wire ({requests:?} requests per rotation, {} kinds, {}):",
        KINDS.len(),
        if full {
            "every kind at every request"
        } else {
            "one kind per request, in turn"
        }
    );
    println!(
        "{:<72} {:>9} {:>8} {:>10}",
        "rotation: request x kind", "scenarios", "aborted", "violations"
    );
    for ((rotation, point, kind), (runs, aborted, bad)) in &table {
        println!(
            "{:<72} {runs:>9} {aborted:>8} {bad:>10}",
            format!("{rotation}: {point} x {kind}")
        );
    }
    println!(
        "{scenarios} scenarios, {} invariant violations, {unfired} whose fault never fired",
        violations.len()
    );
    assert!(violations.is_empty(), "{violations:#?}");
}
