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

use crate::support::World;

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

async fn scenario(world: &World, wire: &Wire, fault: Option<(usize, WireFault, Lasting)>) -> Run {
    let (name, first_key, vercel, render) = world.openai_secret_with_targets(&[]).await;
    let token = world.moto.rotate_secret(&name, true).await;
    wire.plan.clear();
    match fault {
        Some((at, kind, Lasting::No)) => wire.plan.inject(at, kind),
        Some((at, kind, Lasting::Yes)) => wire.plan.inject_lasting(at, kind),
        None => {}
    }
    let rotator = Rotator::new(&wire.ports, settings());
    let mut aborted = false;
    'steps: for step in Step::ALL {
        for attempt in 1..=ATTEMPTS {
            let event = RotationEvent {
                step,
                secret_id: name.clone(),
                client_request_token: token.clone(),
                rotation_token: None,
            };
            match rotator.handle(&event, &Invocation::default()).await {
                Ok(_) => continue 'steps,
                Err(_) if attempt < ATTEMPTS => {}
                Err(_) => {
                    aborted = true;
                    break 'steps;
                }
            }
        }
    }
    let requests = wire.plan.seen().len();
    let fired = wire
        .plan
        .fired()
        .map(|s| format!("{} {}", s.upstream, without_ids(&s.operation)));
    wire.plan.clear();
    if aborted {
        repair(world, &name).await;
    }
    let violations = invariant(world, &name, &first_key, (&vercel, &render), aborted).await;
    Run {
        requests,
        fired,
        aborted,
        violations,
    }
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

/// Real time, `ahead` later: the grace keeper's pass once the hour in which keyrot's own checks used
/// the key (OpenAI's last use) is over.
struct Later(chrono::Duration);

impl keyrot::ports::Clock for Later {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        chrono::Utc::now() + self.0
    }
}

/// What a person does with a rotation that never succeeded: `keyrot repair`, then the grace keeper's
/// next pass (two hours on) revokes the key the repair recorded.
async fn repair(world: &World, name: &str) {
    let operator = keyrot::operator::Operator::new(&world.ports, settings());
    // Nothing pending (the rotation failed before its first step left anything) is no error here.
    let _ = operator.repair(name, "it-operator", true).await;
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
    name: &str,
    first_key: &str,
    (vercel, render): (&str, &str),
    aborted: bool,
) -> Vec<String> {
    let mut violations = Vec::new();
    let current = world.current_key(name).await;
    if !world.sim.openai_key_works(&current) {
        violations.push("AWSCURRENT's key does not work at the provider".to_owned());
    }
    for (target, served) in [
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
    ] {
        match served {
            Some(key) if key == current => {}
            // Before its first redeploy a target serves nothing of keyrot's; that is no outage.
            None if aborted => {}
            Some(key) if world.sim.openai_key_works(&key) && aborted => {}
            Some(_) => violations.push(format!("{target} serves a key that is not AWSCURRENT's")),
            None => violations.push(format!("{target} serves no key")),
        }
    }
    if !aborted && !world.sim.openai_key_works(first_key) {
        violations.push("the old key was revoked during its grace period".to_owned());
    }
    violations.extend(orphans(world, name).await);
    if !aborted {
        violations.extend(steps_audited_once(world, name).await);
    }
    let logs = crate::support::captured_logs();
    if logs.contains(first_key) || logs.contains(current.as_str()) {
        violations.push("a key value appears in the log lines".to_owned());
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
    let clean = scenario(&world, &wire, None).await;
    assert!(
        clean.violations.is_empty() && !clean.aborted,
        "the clean run: {:?}",
        clean.violations
    );
    let full = std::env::var_os("KEYROT_CHAOS").is_some();
    let mut table: BTreeMap<(String, &str), (usize, usize, usize)> = BTreeMap::new();
    let (mut scenarios, mut unfired, mut violations) = (0, 0, Vec::new());
    for at in 0..clean.requests {
        for (index, (kind, fault, lasting)) in KINDS.iter().enumerate() {
            // The diagonal: each request meets one kind, the kinds taking turns.
            if !full && index != at % KINDS.len() {
                continue;
            }
            let run = scenario(&world, &wire, Some((at, *fault, *lasting))).await;
            scenarios += 1;
            let point = run.fired.clone().unwrap_or_else(|| {
                unfired += 1;
                "(not reached)".to_owned()
            });
            let entry = table.entry((point.clone(), kind)).or_default();
            entry.0 += 1;
            entry.1 += usize::from(run.aborted);
            entry.2 += run.violations.len();
            for v in run.violations {
                violations.push(format!("{kind} at request {at} ({point}): {v}"));
            }
        }
    }
    println!(
        "\nfaults on the wire over a full rotation ({} requests, {} kinds, {}):",
        clean.requests,
        KINDS.len(),
        if full {
            "every kind at every request"
        } else {
            "one kind per request, in turn"
        }
    );
    println!(
        "{:<60} {:>9} {:>8} {:>10}",
        "request x kind", "scenarios", "aborted", "violations"
    );
    for ((point, kind), (runs, aborted, bad)) in &table {
        println!(
            "{:<60} {runs:>9} {aborted:>8} {bad:>10}",
            format!("{point} x {kind}")
        );
    }
    println!(
        "{scenarios} scenarios, {} invariant violations, {unfired} whose fault never fired",
        violations.len()
    );
    assert!(violations.is_empty(), "{violations:#?}");
}
