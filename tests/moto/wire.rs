//! Faults on the wire. A full rotation (OpenAI key, a Vercel and a Render target) runs with the real
//! adapters through fault proxies in front of moto and the simulator, so every HTTP request it makes,
//! the SDK's and the adapters' retries included, is a fault point: an error answer in the service's own
//! shape (unavailable, throttled, access denied once or for good, credentials refused, not found, KMS
//! refused), a connection reset before the request was forwarded, an answer lost after the server
//! acted on it, or a request held past the client's timeout and then forwarded, so that the server
//! acts on it late (after the retry).
//! Secrets Manager's part is played as it plays it: each failed step is invoked again. A rotation that
//! never succeeds is repaired and the grace keeper run, and then held to the same invariant
//! (docs/steps.md, "The guarantees").
//!
//! `make test` runs the diagonal: every request once, each with one kind in turn. `make chaos`
//! (`KEYROT_CHAOS=1`) runs every request with every kind.

use std::collections::BTreeMap;
use std::sync::Arc;

use keyrot::config::Config;
use keyrot::domain::{RotationEvent, Step};
use keyrot::ports::Ports;
use keyrot::rotation::{Invocation, Rotator};
use keyrot::wiring::{self, AwsWith};
use keyrot_sim::{FaultPlan, WireError, WireFault};

use crate::support::World;
use crate::support::invariant::{
    Rotation, invariant, keeper_pass, repair, set_up, settings, watching,
};
use crate::support::wire::Proxies;

type Clock = keyrot::adapters::clock::SystemClock;

/// The kinds every request meets: once, or (`Lasting::Yes`) from then on for that operation.
const KINDS: [(&str, WireFault, Lasting); 10] = [
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
    (
        "unauthorized",
        WireFault::Error(WireError::Unauthorized),
        Lasting::No,
    ),
    (
        "not found",
        WireFault::Error(WireError::NotFound),
        Lasting::No,
    ),
    ("KMS refused", WireFault::Error(WireError::Kms), Lasting::No),
    ("reset", WireFault::Reset, Lasting::No),
    ("answer lost", WireFault::LoseAnswer, Lasting::No),
    (
        "past the timeout",
        WireFault::Delay(std::time::Duration::from_millis(1500)),
        Lasting::No,
    ),
];

/// The rotator's per-request timeout here: shorter than the delay above, so that the client gives up
/// (and retries) before the delayed request reaches the server, which then acts on it late.
const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

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
    _proxies: Proxies,
}

impl Wire {
    async fn new(world: &World) -> Wire {
        let proxies = Proxies::start(world).await;
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(proxies.moto.url())
            .load()
            .await;
        let config = Config {
            request_timeout: REQUEST_TIMEOUT,
            ..proxies.config(world)
        };
        let ports = wiring::build_from(&config, &sdk, Clock::default()).expect("ports");
        Wire {
            plan: proxies.plan.clone(),
            ports,
            _proxies: proxies,
        }
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

/// A request's operation with the ids in its path replaced by `{id}`, so that one table row gathers
/// the scenarios of one kind of request.
pub(crate) fn without_ids(operation: &str) -> String {
    operation
        .split('/')
        .map(|part| {
            let mixed = part.chars().any(|c| c.is_ascii_digit())
                || (part.chars().any(|c| c.is_ascii_uppercase())
                    && part.chars().any(|c| c.is_ascii_lowercase()));
            let id = part.len() > 8
                && mixed
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if id { "{id}" } else { part }
        })
        .collect::<Vec<_>>()
        .join("/")
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
