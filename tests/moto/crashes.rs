//! Real crashes. The real `keyrot-rotator` binary runs under a Lambda Runtime API, every request it
//! makes going through the fault proxies. At a chosen request the proxy holds the request, before
//! forwarding it or after the server acted on it, and the harness kills the process with SIGKILL, as
//! Lambda ends an invocation at its deadline. Secrets Manager then invokes the step again: on a new
//! process whose clock is 25 minutes on, past the five-minute leftover rule and the 20-minute claim
//! lease. The rotation ends as any other (after `keyrot repair` if it never succeeded), the keeper
//! passes two hours later, past the one-hour orphan age, and the invariant is checked as in
//! [`crate::wire`], with a watcher through the whole of it.
//!
//! `make test` kills after every write reached its server and before every fourth request; `make
//! chaos` (`KEYROT_CHAOS=1`) kills on both sides of every request.

use std::collections::BTreeMap;

use keyrot::domain::Step;
use keyrot_sim::{FaultPlan, Seen, WireFault};
use serde_json::json;

use crate::support::World;
use crate::support::invariant::{Rotation, invariant, keeper_pass, repair, set_up, watching};
use crate::support::lambda::Function;
use crate::support::wire::Proxies;

/// Where the process dies: with the held request unforwarded, or after the server acted on it.
const SIDES: [(&str, WireFault); 2] = [
    ("killed before it reached the server", WireFault::Hold),
    ("killed after the server acted", WireFault::ForwardAndHold),
];

/// How often Secrets Manager (here: the harness) invokes a failing step before giving up.
const ATTEMPTS: usize = 4;

/// How far the clock moves between the killed process and the next one.
fn after_a_crash() -> chrono::Duration {
    chrono::Duration::minutes(25)
}

struct Run {
    /// The requests made through the proxies, in order.
    requests: Vec<Seen>,
    /// The request the process died at, as `upstream operation`.
    killed_at: Option<String>,
    aborted: bool,
    violations: Vec<String>,
}

async fn scenario(
    world: &World,
    proxies: &Proxies,
    function: &mut Function,
    fault: Option<(usize, WireFault)>,
) -> Run {
    let secret = set_up(world, Rotation::OpenAi).await;
    let token = world.moto.rotate_secret(&secret.name, true).await;
    if !function.running() {
        function.start().await;
    }
    proxies.plan.clear();
    if let Some((at, kind)) = fault {
        proxies.plan.inject(at, kind);
    }
    let (aborted, mut watched) = watching(
        world,
        Rotation::OpenAi,
        &secret,
        drive(function, &proxies.plan, &secret.name, &token),
    )
    .await;
    let requests = proxies.plan.seen();
    let killed_at = proxies
        .plan
        .fired()
        .map(|s| format!("{} {}", s.upstream, crate::wire::without_ids(&s.operation)));
    proxies.plan.clear();
    if aborted {
        repair(world, &secret.name).await;
    }
    keeper_pass(world, &secret.name).await;
    let mut violations = invariant(world, Rotation::OpenAi, &secret, aborted).await;
    violations.append(&mut watched);
    Run {
        requests,
        killed_at,
        aborted,
        violations,
    }
}

/// Plays Secrets Manager over the Runtime API: each step is invoked until it succeeds, [`ATTEMPTS`]
/// times at most. When the plan's fault fires the process is killed, and the step invoked again on a
/// new one, later; that process is stopped once the rotation is over, so that the next scenario starts
/// on the system's time. Returns whether the rotation was abandoned.
async fn drive(function: &mut Function, plan: &FaultPlan, name: &str, token: &str) -> bool {
    let mut killed = false;
    let mut aborted = false;
    for step in Step::ALL {
        let event = json!({"Step": step.as_str(), "SecretId": name, "ClientRequestToken": token});
        let mut done = false;
        for _ in 0..ATTEMPTS {
            let outcome = tokio::select! {
                outcome = function.invoke(&event) => Some(outcome),
                () = plan.until_fired(), if !killed => None,
            };
            match outcome {
                Some(outcome) if outcome.is_ok() => {
                    done = true;
                    break;
                }
                Some(_) => {}
                None => {
                    function.kill().await;
                    killed = true;
                    function.advance(after_a_crash());
                    function.start().await;
                }
            }
        }
        if !done {
            aborted = true;
            break;
        }
    }
    if killed {
        function.kill().await;
        function.advance(-after_a_crash());
    }
    aborted
}

/// `make test`'s part of the matrix: a death after every write reached its server (the dangerous
/// side: the server acted, the process never heard), and a death before every fourth request. Dying
/// after a read is dying before it, to the process.
fn in_the_fast_part(at: usize, request: &Seen, fault: WireFault) -> bool {
    match fault {
        WireFault::ForwardAndHold => !reads(request),
        _ => at.is_multiple_of(4),
    }
}

/// Whether a request only reads: a provider's GET, or an AWS operation that gets, lists or queries.
fn reads(request: &Seen) -> bool {
    let operation = request.operation.rsplit('.').next().unwrap_or_default();
    request.method == "GET"
        || ["Get", "Describe", "List", "Query", "Scan", "BatchGet"]
            .iter()
            .any(|verb| operation.starts_with(verb))
}

#[tokio::test]
async fn a_rotator_killed_at_any_request_keeps_the_invariant() {
    let world = World::new().await;
    world.sim.vercel_set_build_millis(30);
    world.sim.render_set_build_millis(30);
    let proxies = Proxies::start(&world).await;
    let mut function =
        Function::rotator(&world, &proxies.config(&world), &proxies.moto.url()).await;
    let full = std::env::var_os("KEYROT_CHAOS").is_some();

    let clean = scenario(&world, &proxies, &mut function, None).await;
    assert!(
        clean.violations.is_empty() && !clean.aborted,
        "the clean run under the Runtime API: {:?}",
        clean.violations
    );
    let mut table: BTreeMap<(String, &str), (usize, usize, usize)> = BTreeMap::new();
    let (mut scenarios, mut unfired, mut violations) = (0, 0, Vec::new());
    for (at, request) in clean.requests.iter().enumerate() {
        for (side, fault) in SIDES {
            if !full && !in_the_fast_part(at, request, fault) {
                continue;
            }
            let run = scenario(&world, &proxies, &mut function, Some((at, fault))).await;
            scenarios += 1;
            let point = run.killed_at.clone().unwrap_or_else(|| {
                unfired += 1;
                "(not reached)".to_owned()
            });
            let entry = table.entry((point.clone(), side)).or_default();
            entry.0 += 1;
            entry.1 += usize::from(run.aborted);
            entry.2 += run.violations.len();
            for v in run.violations {
                violations.push(format!("{side} at request {at} ({point}): {v}"));
            }
        }
    }
    function.kill().await;
    println!(
        "\nreal crashes ({} requests per rotation, {} processes started, {}):",
        clean.requests.len(),
        function.starts,
        if full {
            "both sides of every request"
        } else {
            "after every write, before every fourth request"
        }
    );
    println!(
        "{:<80} {:>9} {:>8} {:>10}",
        "request x where the process died", "scenarios", "aborted", "violations"
    );
    for ((point, side), (runs, aborted, bad)) in &table {
        println!(
            "{:<80} {runs:>9} {aborted:>8} {bad:>10}",
            format!("{point} x {side}")
        );
    }
    println!(
        "{scenarios} scenarios, {} invariant violations, {unfired} whose kill never came",
        violations.len()
    );
    assert!(violations.is_empty(), "{violations:#?}");
    assert_eq!(
        unfired, 0,
        "every request of the clean run is a point to die at"
    );
}
