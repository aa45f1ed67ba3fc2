//! What every fault scenario is held to, the wire matrix's and the crash harness's alike: the
//! rotations they run ([`set_up`]), a watcher of what users see while a rotation runs ([`watching`]),
//! what a person and the grace keeper do afterwards ([`repair`], [`keeper_pass`]), and the invariant
//! checked at the end ([`invariant`]; docs/steps.md, "The guarantees").

use keyrot::domain::Step;
use keyrot::domain::targets::TargetSpec;
use keyrot::keeper::{GraceKeeper, KeeperSettings};
use keyrot::ports::Target;
use keyrot::rotation::RotatorSettings;
use keyrot::wiring;
use secrecy::SecretString;

use super::{Later, World};

/// Fast polling and patience, for rotations on the stand-ins.
pub fn settings() -> RotatorSettings {
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

/// The rotations the matrix runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    /// A minted OpenAI key pushed to a Vercel and a Render target, with the default grace.
    OpenAi,
    /// A staged Anthropic key adopted with grace 0, so the old key is revoked (and checked) at once.
    Anthropic,
}

impl Rotation {
    pub fn name(self) -> &'static str {
        match self {
            Rotation::OpenAi => "openai",
            Rotation::Anthropic => "anthropic",
        }
    }
}

/// A secret ready for its rotation: its name, first key and targets (Vercel project, Render service).
pub struct Secret {
    pub name: String,
    pub first_key: String,
    pub targets: Option<(String, String)>,
}

pub async fn set_up(world: &World, rotation: Rotation) -> Secret {
    match rotation {
        Rotation::OpenAi => {
            let (name, first_key, vercel, render) = world.openai_secret_with_targets(&[]).await;
            serve_in_a_preview(world, &name, &first_key, &vercel).await;
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

/// Runs `rotation` while a watcher checks, every 200 ms, what users see: AWSCURRENT's key works at
/// the provider, and every target's live deployment serves a key that works. Returns what `rotation`
/// returned and each moment the watcher saw otherwise.
/// The first key in the Vercel variable and a preview built with it, as a project keyrot takes over
/// has: the rotation redeploys production, and the preview keeps the old key.
async fn serve_in_a_preview(world: &World, name: &str, first_key: &str, vercel: &str) {
    let value = world
        .moto
        .value(name, "AWSCURRENT", None)
        .await
        .expect("value");
    let specs = TargetSpec::parse_all(name, value["targets"].as_array().expect("targets"))
        .expect("targets parse");
    let spec = specs
        .iter()
        .find(|spec| matches!(spec, TargetSpec::Vercel(_)))
        .expect("a Vercel target");
    world
        .ports
        .targets
        .push(name, spec, &SecretString::from(first_key.to_owned()))
        .await
        .expect("the first key in the variable");
    world
        .sim
        .vercel_create_preview(vercel, "feature")
        .expect("a preview");
}

pub async fn watching<T>(
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
pub fn served(
    world: &World,
    (vercel, render): (&str, &str),
) -> [(&'static str, Option<String>); 2] {
    // The preview is watched apart ([`preview_problem`]): it may serve the old key, in its grace.
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
        problems.extend(preview_problem(world, vercel));
    }
    problems
}

/// The Vercel preview [`set_up`] built before the rotation serves the old key until someone rebuilds
/// it: that key must keep working (keyrot holds its revocation while a preview serves it).
fn preview_problem(world: &World, vercel: &str) -> Option<String> {
    match world
        .sim
        .vercel_served_value(vercel, "preview", "OPENAI_API_KEY")
    {
        Some(key) if world.sim.openai_key_works(&key) => None,
        Some(_) => Some("the Vercel preview serves a key that does not work".to_owned()),
        None => Some("the Vercel preview serves no key".to_owned()),
    }
}

/// What a person does with a rotation that never succeeded: `keyrot repair`.
pub async fn repair(world: &World, name: &str) {
    let operator = keyrot::operator::Operator::new(&world.ports, settings());
    // Nothing pending (the rotation failed before its first step left anything) is no error here.
    let _ = operator.repair(name, "it-operator", true).await;
}

/// The grace keeper's next pass, two hours on: it revokes what is due (a key repair recorded, an
/// old key whose grace-0 revocation failed) once nothing uses it.
pub async fn keeper_pass(world: &World, name: &str) {
    let _ = keeper_pass_at(world, name, 2).await;
}

/// A grace keeper pass over the secrets named `name...`, `hours` on.
pub async fn keeper_pass_at(
    world: &World,
    name: &str,
    hours: i64,
) -> keyrot::error::Result<keyrot::keeper::KeeperReport> {
    let later = wiring::build_with_clock(&world.config, Later(chrono::Duration::hours(hours)))
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
    keeper.run().await
}

pub async fn invariant(
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
    let mut violations: Vec<String> = preview_problem(world, vercel).into_iter().collect();
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

/// Every service account of the project is AWSCURRENT's, or AWSPREVIOUS's in its grace. (The preview
/// [`set_up`] built holds no minted key's revocation: it was built before keyrot minted any.)
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
