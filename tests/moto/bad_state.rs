//! Bad input after state exists. Each case spoils a secret that has a history (rotated once, its old
//! key in its grace with a revocation on record, targets deployed, and for some a rotation under way
//! with a minted key): a corrupted AWSPENDING or AWSPREVIOUS value, a malformed or lying DynamoDB
//! record, a malformed tag, a provider answer that is malformed or lies, or a bad command line. Then
//! one of keyrot's actions meets it: a step, a rollback, a grace keeper pass, a `keyrot` command. Each
//! must be refused with an error that names what is wrong, and change nothing: Secrets Manager's
//! labels, values and tags, keyrot's state records, the simulator's keys, variables and deployments
//! are compared with a snapshot taken before, and the only alerts allowed are failures'. The spoil is
//! then undone, and the next case meets the same state.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::AttributeValue;
use keyrot::operator::Operator;
use keyrot_sim::{Fault, FaultKind};
use serde_json::{Value, json};

use crate::support::cli::cli;
use crate::support::invariant::{keeper_pass_at, settings};
use crate::support::{AlertQueue, World, assert_no_key};

/// What the spoil does to the secret before the action.
enum Spoil {
    /// AWSPENDING moves to a new version holding this text (the rotation's value, corrupted).
    Pending(String),
    /// AWSPREVIOUS moves to a new version holding this text.
    Previous(String),
    /// The old key's revocation record gets this attribute (`None`: loses it).
    Revocation(&'static str, Option<AttributeValue>),
    /// The secret gets this tag.
    Tag(&'static str, &'static str),
    /// The simulator answers the first matching request with this status and body.
    Answer(&'static str, &'static str, u16, Value),
    /// Nothing: the action itself is the bad input.
    Nothing,
}

/// What meets the spoiled state.
#[derive(Clone)]
enum Act {
    /// A step of the rotation whose version AWSPENDING is on.
    Step(&'static str),
    /// `keyrot rollback` in process.
    Rollback,
    /// A grace keeper pass this many hours on (the old key's grace is 48).
    Keeper(i64),
    /// A new rotation's createSecret (RotateSecret first, as Secrets Manager does).
    NewRotation,
    /// The `keyrot` binary with these arguments and this standard input (`{name}` is the secret).
    Cli(Vec<&'static str>, Stdin),
}

#[derive(Clone)]
enum Stdin {
    Text(String),
    /// A terminal, at which a person types this.
    Terminal(&'static str),
}

struct Case {
    what: String,
    spoil: Spoil,
    act: Act,
    /// Phrases the refusal must hold, besides the secret's name.
    expected: Vec<&'static str>,
}

fn case(what: impl Into<String>, spoil: Spoil, act: Act, expected: &[&'static str]) -> Case {
    Case {
        what: what.into(),
        spoil,
        act,
        expected: expected.to_vec(),
    }
}

/// A secret with a history, and every key value it has held.
struct Scene {
    name: String,
    keys: Vec<String>,
    alerts: AlertQueue,
}

/// Grace 48 h: a keeper pass 50 hours on finds the old key due.
async fn scene_for(world: &World, rotating: bool) -> Scene {
    let (name, first, _vercel, _render) = world
        .openai_secret_with_targets(&[("keyrot:grace-hours", "48")])
        .await;
    world.rotate(&name).await;
    let mut keys = vec![first, world.current_key(&name).await];
    if rotating {
        let token = world.moto.rotate_secret(&name, true).await;
        world
            .step("createSecret", &name, &token)
            .await
            .expect("createSecret");
        let value = world.moto.value(&name, "AWSPENDING", Some(&token)).await;
        keys.extend(value.and_then(|v| v["api_key"].as_str().map(str::to_owned)));
    }
    let alerts = AlertQueue::subscribe(&world.moto.config.alert_topic_arn, &name);
    Scene { name, keys, alerts }
}

/// Everything a refusal must leave as it was.
#[derive(Debug, PartialEq)]
struct Snapshot {
    labels: BTreeMap<String, Vec<String>>,
    values: BTreeMap<String, Option<Value>>,
    tags: BTreeMap<String, String>,
    /// keyrot's state records of the secret (step guards, revocations, deployments, key records);
    /// audit events and alert dedupe records are a refusal's own.
    records: Vec<BTreeMap<String, String>>,
    simulator: Value,
}

async fn snapshot(world: &World, name: &str) -> Snapshot {
    let labels = world.moto.labels(name).await;
    let mut values = BTreeMap::new();
    for (version, stages) in &labels {
        let stage = stages.first().map(String::as_str).unwrap_or("AWSCURRENT");
        values.insert(
            version.clone(),
            world.moto.value(name, stage, Some(version)).await,
        );
    }
    let records = world
        .moto
        .items(name)
        .await
        .into_iter()
        .filter(|item| {
            item.get("sk").is_some_and(|sk| {
                ["DONE#", "REVOKE#", "DEPLOY#", "KEY#"]
                    .iter()
                    .any(|p| sk.starts_with(p))
            })
        })
        .collect();
    Snapshot {
        labels,
        values,
        tags: world.moto.tags(name).await,
        records,
        simulator: world.sim.state(),
    }
}

/// Alerts a refusal may send: it failed, and says so.
const FAILURE_ALERTS: [&str; 4] = [
    "rotation_failed",
    "rollback_failed",
    "revocation_failed",
    "key_needed",
];

fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    cases.extend(pending_cases());
    cases.extend(previous_cases());
    cases.extend(record_cases());
    cases.extend(tag_cases());
    cases.extend(answer_cases());
    cases.extend(cli_cases());
    cases
}

/// Corrupted values of the rotation under way, met by each later step.
fn pending_cases() -> Vec<Case> {
    let corrupt = [
        ("not JSON", "{\"provider\": \"openai\", ".to_owned(), "AWSPENDING"),
        ("a JSON array", "[1, 2]".to_owned(), "AWSPENDING"),
        ("null", "null".to_owned(), "AWSPENDING"),
        ("no api_key", json!({"provider": "openai"}).to_string(), "api_key"),
        (
            "an empty api_key",
            json!({"provider": "openai", "api_key": ""}).to_string(),
            "api_key",
        ),
        (
            "an unknown provider",
            json!({"provider": "cohere", "api_key": "co-0000000000000000000000"}).to_string(),
            "provider",
        ),
        (
            "targets that are not a list",
            json!({"provider": "openai", "api_key": "sk-proj-AAAAAAAAAAAAAAAAAAAAAAAA", "targets": "all"})
                .to_string(),
            "targets",
        ),
        (
            "a 60,000-character key",
            json!({"provider": "openai", "api_key": format!("sk-proj-{}", "A".repeat(60_000))})
                .to_string(),
            "api_key",
        ),
    ];
    let mut cases = Vec::new();
    for step in ["setSecret", "testSecret", "finishSecret"] {
        for (what, text, field) in &corrupt {
            // finishSecret makes current only a version testSecret passed, whatever it holds.
            let field = if step == "finishSecret" {
                "testSecret has not succeeded"
            } else {
                field
            };
            cases.push(case(
                format!("AWSPENDING holds {what}, at {step}"),
                Spoil::Pending(text.clone()),
                Act::Step(step),
                &[field],
            ));
        }
    }
    cases
}

/// Corrupted values under AWSPREVIOUS, met by a rollback and by the keeper.
fn previous_cases() -> Vec<Case> {
    let corrupt = [
        ("not JSON", "}{".to_owned()),
        ("no api_key", json!({"provider": "openai"}).to_string()),
        (
            "another provider",
            json!({"provider": "generic", "api_key": "gk-0000000000000000000000000"}).to_string(),
        ),
        ("a bare string", "\"sk-proj-bare\"".to_owned()),
        ("an empty object", "{}".to_owned()),
        ("only white space", "   ".to_owned()),
    ];
    let mut cases = Vec::new();
    for (what, text) in &corrupt {
        cases.push(case(
            format!("AWSPREVIOUS holds {what}, at rollback"),
            Spoil::Previous(text.clone()),
            Act::Rollback,
            &["AWSPREVIOUS"],
        ));
        // A value that parses is a key the keeper records for revocation: no bad input to it.
        if *what != "another provider" {
            cases.push(case(
                format!("AWSPREVIOUS holds {what}, at a keeper pass"),
                Spoil::Previous(text.clone()),
                Act::Keeper(2),
                &[],
            ));
        }
    }
    cases
}

/// The old key's revocation record, malformed or lying, met by the keeper and by a rollback.
fn record_cases() -> Vec<Case> {
    let s = |text: &str| Some(AttributeValue::S(text.to_owned()));
    let spoils: [(&str, &str, Option<AttributeValue>); 8] = [
        ("a status of bogus", "status", s("bogus")),
        ("a due time of yesterday", "due", s("yesterday")),
        ("attempts that are text", "attempts", s("many")),
        ("no fingerprint", "fingerprint", None),
        ("an unknown provider", "provider", s("cohere")),
        ("no provider", "provider", None),
        ("a kind of key", "kind", s("key")),
        (
            "a fingerprint of 4000 characters",
            "fingerprint",
            s(&"f".repeat(4000)),
        ),
    ];
    let mut cases = Vec::new();
    for (what, attribute, value) in spoils {
        // 50 hours on, the record is due: a good one would be acted on.
        for act in [Act::Keeper(50), Act::Rollback] {
            let at = if matches!(act, Act::Keeper(_)) {
                "a keeper pass"
            } else {
                "rollback"
            };
            cases.push(case(
                format!("the old key's revocation record has {what}, at {at}"),
                Spoil::Revocation(attribute, value.clone()),
                act,
                &[],
            ));
        }
    }
    cases
}

/// Malformed tags, met by a new rotation and by the keeper.
fn tag_cases() -> Vec<Case> {
    let tags = [
        ("keyrot:grace-hours", "1e6"),
        ("keyrot:grace-hours", "inf"),
        ("keyrot:grace-hours", "NaN"),
        ("keyrot:grace-hours", "0x10"),
        ("keyrot:grace-hours", "1_000"),
        ("keyrot:max-age-days", "inf"),
        ("keyrot:alert-days", "-1"),
        ("keyrot:next-grace-hours", "NaN"),
        ("keyrot:trigger", "panic"),
        ("keyrot:next-grace-hours", "24h"),
    ];
    let mut cases = Vec::new();
    for (tag, value) in tags {
        cases.push(case(
            format!("the tag {tag}={value}, at a new rotation"),
            Spoil::Tag(tag, value),
            Act::NewRotation,
            &[tag],
        ));
        cases.push(case(
            format!("the tag {tag}={value}, at a keeper pass"),
            Spoil::Tag(tag, value),
            Act::Keeper(2),
            &[],
        ));
    }
    cases
}

/// Provider answers that are malformed or lie, met by the first call of a step, before any write.
fn answer_cases() -> Vec<Case> {
    let lie = |what: &str, method, path, code, body: Value, act: Act| {
        case(
            what.to_owned(),
            Spoil::Answer(method, path, code, body),
            act,
            &[],
        )
    };
    vec![
        lie(
            "OpenAI lists service accounts with has_more and no last_id",
            "GET",
            "/v1/organization/projects/",
            200,
            json!({"object": "list", "data": [], "has_more": true, "last_id": null}),
            Act::NewRotation,
        ),
        lie(
            "OpenAI lists service accounts with no data",
            "GET",
            "/v1/organization/projects/",
            200,
            json!({"object": "list", "has_more": false}),
            Act::NewRotation,
        ),
        lie(
            "OpenAI answers a list with a string",
            "GET",
            "/v1/organization/projects/",
            200,
            json!("service accounts"),
            Act::NewRotation,
        ),
        lie(
            "Vercel lists variables with no envs",
            "GET",
            "/v10/projects/",
            200,
            json!({"pagination": {"count": 0, "next": null}}),
            Act::Step("setSecret"),
        ),
        lie(
            "Vercel lists variables whose pagination never ends",
            "GET",
            "/v10/projects/",
            200,
            json!({"envs": [], "pagination": {"count": 0, "next": 1, "prev": null}}),
            Act::Step("setSecret"),
        ),
        lie(
            "Vercel lists a variable with no key",
            "GET",
            "/v10/projects/",
            200,
            json!({"envs": [{"id": "env_1", "type": "sensitive", "target": ["production"]}],
                "pagination": {"count": 1, "next": null}}),
            Act::Step("setSecret"),
        ),
    ]
}

/// Command lines that are wrong, met before anything is written.
fn cli_cases() -> Vec<Case> {
    let text = |t: &str| Stdin::Text(t.to_owned());
    let line = |what: &str, args: &[&'static str], stdin: Stdin, expected: &[&'static str]| {
        case(
            format!("keyrot {}: {what}", args.join(" ")),
            Spoil::Nothing,
            Act::Cli(args.to_vec(), stdin),
            expected,
        )
    };
    vec![
        line(
            "a negative grace",
            &["rotate", "{name}", "--grace-hours", "-1"],
            text(""),
            &["--grace-hours"],
        ),
        line(
            "an infinite grace",
            &["rotate", "{name}", "--grace-hours", "inf"],
            text(""),
            &["--grace-hours"],
        ),
        line(
            "a grace that is no number",
            &["rotate", "{name}", "--grace-hours", "NaN"],
            text(""),
            &["--grace-hours"],
        ),
        line(
            "a grace of a million hours",
            &["rotate", "{name}", "--grace-hours", "1e6"],
            text(""),
            &["--grace-hours"],
        ),
        line(
            "a wait that is not seconds",
            &["rotate", "{name}", "--wait", "--wait-seconds", "soon"],
            text(""),
            &["--wait-seconds"],
        ),
        line(
            "an unknown flag",
            &["rotate", "{name}", "--now"],
            text(""),
            &["--now"],
        ),
        line(
            "a key staged for OpenAI",
            &["stage", "{name}"],
            text("sk-proj-STAGEDSTAGEDSTAGED00000001"),
            &["only Anthropic"],
        ),
        line(
            "two keys on two lines",
            &["stage", "{name}"],
            text("sk-ant-api03-AAAA\nsk-ant-api03-BBBB\n"),
            &["more than one line"],
        ),
        line(
            "no key on standard input",
            &["stage", "{name}"],
            text("\n\n"),
            &["no key was given"],
        ),
        line(
            "a 5,000-byte key",
            &["stage", "{name}"],
            Stdin::Text("k".repeat(5000)),
            &["bytes long"],
        ),
        line(
            "only Enter typed at the terminal's prompt",
            &["stage", "{name}"],
            Stdin::Terminal("\n"),
            &["input hidden", "no key was given"],
        ),
        line(
            "a month that does not exist",
            &["audit", "--month", "2026-13"],
            text(""),
            &["--month"],
        ),
        line(
            "a report month of words",
            &["report", "--month", "last"],
            text(""),
            &["--month"],
        ),
        line(
            "a rollback with no secret",
            &["rollback"],
            text(""),
            &["<NAME>"],
        ),
        line(
            "a secret that does not exist",
            &["rollback", "it/no-such-secret-anywhere"],
            text(""),
            &["it/no-such-secret-anywhere"],
        ),
    ]
}

/// Puts the spoil in place; returns what undoes it.
async fn spoil(world: &World, scene: &Scene, spoil: &Spoil) -> Undo {
    let name = scene.name.as_str();
    match spoil {
        Spoil::Pending(text) | Spoil::Previous(text) => {
            let stage = if matches!(spoil, Spoil::Pending(_)) {
                "AWSPENDING"
            } else {
                "AWSPREVIOUS"
            };
            let was = world.moto.version_of(name, stage).await.expect("labelled");
            let put = world
                .moto
                .sm
                .put_secret_value()
                .secret_id(name)
                .secret_string(text)
                .version_stages(stage)
                .send()
                .await
                .expect("a spoiled version");
            Undo::Label(stage, was, put.version_id().unwrap_or_default().to_owned())
        }
        Spoil::Revocation(attribute, value) => {
            let previous = world
                .moto
                .version_of(name, "AWSPREVIOUS")
                .await
                .expect("previous");
            let key = revocation_key(name, &previous);
            let item = world
                .moto
                .raw_item(&key)
                .await
                .expect("the old key's revocation record");
            let mut spoiled = item.clone();
            match value {
                Some(value) => spoiled.insert((*attribute).to_owned(), value.clone()),
                None => spoiled.remove(*attribute),
            };
            world.moto.put_raw_item(spoiled).await;
            Undo::Item(item)
        }
        Spoil::Tag(tag, value) => {
            let was = world.moto.tags(name).await.get(*tag).cloned();
            world.moto.tag(name, tag, value).await;
            Undo::Tag(tag, was)
        }
        Spoil::Answer(method, path, code, body) => {
            world.sim.inject(Fault {
                method: Some((*method).to_owned()),
                path_prefix: (*path).to_owned(),
                nth: 1,
                times: 1000,
                kind: FaultKind::Answer {
                    code: *code,
                    body: body.clone(),
                },
            });
            Undo::Faults
        }
        Spoil::Nothing => Undo::Nothing,
    }
}

enum Undo {
    /// The label goes back from the spoiled version to the one it was on.
    Label(&'static str, String, String),
    Item(std::collections::HashMap<String, AttributeValue>),
    Tag(&'static str, Option<String>),
    Faults,
    Nothing,
}

async fn undo(world: &World, name: &str, undo: Undo) {
    match undo {
        Undo::Label(stage, was, _spoiled) => {
            // Wherever the label is now (a step may have moved it: the snapshot tells), it goes back.
            let now_on = world.moto.version_of(name, stage).await;
            world
                .moto
                .sm
                .update_secret_version_stage()
                .secret_id(name)
                .version_stage(stage)
                .move_to_version_id(was)
                .set_remove_from_version_id(now_on)
                .send()
                .await
                .expect("label back");
        }
        Undo::Item(item) => world.moto.put_raw_item(item).await,
        Undo::Tag(tag, Some(value)) => {
            world.moto.tag(name, tag, &value).await;
        }
        Undo::Tag(tag, None) => {
            world.moto.untag(name, tag).await;
        }
        Undo::Faults => world.sim.clear_faults(),
        Undo::Nothing => {}
    }
}

fn revocation_key(name: &str, version: &str) -> [(&'static str, String); 2] {
    [
        ("pk", format!("SECRET#{name}")),
        ("sk", format!("REVOKE#{version}")),
    ]
}

/// Runs the action; returns its error text (empty when it reported no error) and whether it ended in
/// success.
async fn act(world: &World, scene: &Scene, act: &Act) -> (String, bool) {
    let name = scene.name.as_str();
    match act {
        Act::Step(step) => {
            let token = world
                .moto
                .version_of(name, "AWSPENDING")
                .await
                .expect("a rotation under way");
            match world.step(step, name, &token).await {
                Ok(_) => (String::new(), true),
                Err(err) => (err, false),
            }
        }
        Act::Rollback => {
            let operator = Operator::new(&world.ports, settings());
            match operator.rollback(name, "it-operator").await {
                Ok(_) => (String::new(), true),
                Err(err) => (err.to_string(), false),
            }
        }
        Act::Keeper(hours) => keeper_pass(world, name, *hours).await,
        Act::NewRotation => {
            let token = world.moto.rotate_secret(name, true).await;
            let outcome = match world.step("createSecret", name, &token).await {
                Ok(_) => (String::new(), true),
                Err(err) => (err, false),
            };
            // RotateSecret's placeholder is Secrets Manager's, not keyrot's: it goes with the case.
            world.moto.clear_pending(name).await;
            outcome
        }
        Act::Cli(args, stdin) => {
            let args: Vec<String> = args.iter().map(|a| a.replace("{name}", name)).collect();
            let out = match stdin {
                Stdin::Text(text) => cli(world).args(&args).stdin(text).run().await,
                Stdin::Terminal(typed) => {
                    cli(world)
                        .args(&args)
                        .on_a_terminal()
                        .stdin(typed)
                        .run()
                        .await
                }
            };
            (out.text(), out.status.success())
        }
    }
}

/// A keeper pass `hours` on; its report as text.
async fn keeper_pass(world: &World, name: &str, hours: i64) -> (String, bool) {
    match keeper_pass_at(world, name, hours).await {
        Ok(report) => (format!("{report:?}"), true),
        Err(err) => (err.to_string(), false),
    }
}

#[tokio::test]
async fn bad_input_met_after_state_exists_is_refused_and_changes_nothing() {
    let world = World::new().await;
    world.sim.vercel_set_build_millis(30);
    world.sim.render_set_build_millis(30);
    let mut rotating = scene_for(&world, true).await;
    let mut settled = scene_for(&world, false).await;
    let cases = cases();
    let mut problems = Vec::new();
    for case in &cases {
        let on_rotating = matches!(
            (&case.spoil, &case.act),
            (Spoil::Pending(_), _) | (_, Act::Step(_))
        );
        let scene = if on_rotating { &rotating } else { &settled };
        let started = std::time::Instant::now();
        let before = snapshot(&world, &scene.name).await;
        let undo_it = spoil(&world, scene, &case.spoil).await;
        let (said, succeeded) = act(&world, scene, &case.act).await;
        undo(&world, &scene.name, undo_it).await;
        let after = snapshot(&world, &scene.name).await;
        let found = judge(case, scene, &before, &after, &said, succeeded);
        println!(
            "{:<90} {:>6} ms {}",
            case.what,
            started.elapsed().as_millis(),
            if found.is_empty() { "ok" } else { "PROBLEM" }
        );
        for problem in &found {
            println!("    {problem}");
        }
        // A case that changed the scene would hand the next one another state: it gets a new one.
        if !found.is_empty() {
            let fresh = scene_for(&world, on_rotating).await;
            let spent = if on_rotating {
                std::mem::replace(&mut rotating, fresh)
            } else {
                std::mem::replace(&mut settled, fresh)
            };
            problems.extend(alert_problems(&spent));
        }
        problems.extend(found);
    }
    problems.extend(alert_problems(&rotating));
    problems.extend(alert_problems(&settled));
    println!(
        "{} cases of bad input after state exists, {} problems",
        cases.len(),
        problems.len()
    );
    assert!(
        cases.len() >= 80,
        "the catalogue holds {} cases",
        cases.len()
    );
    assert!(problems.is_empty(), "{problems:#?}");
}

/// What is wrong with how one case went.
fn judge(
    case: &Case,
    scene: &Scene,
    before: &Snapshot,
    after: &Snapshot,
    said: &str,
    succeeded: bool,
) -> Vec<String> {
    let mut problems = Vec::new();
    let what = &case.what;
    if before != after {
        problems.push(format!("{what}: changed {}", differences(before, after)));
    }
    let refusal_expected = !matches!(case.act, Act::Keeper(_));
    if refusal_expected && succeeded {
        problems.push(format!("{what}: was not refused"));
    }
    for phrase in &case.expected {
        if !said.contains(phrase) {
            problems.push(format!(
                "{what}: the refusal does not say {phrase:?}: {said}"
            ));
        }
    }
    let names_secret = matches!(case.act, Act::Step(_) | Act::Rollback | Act::NewRotation);
    if names_secret && !said.contains(&scene.name) {
        problems.push(format!(
            "{what}: the refusal does not name the secret: {said}"
        ));
    }
    for key in &scene.keys {
        assert_no_key(said, key, &format!("{what}: the refusal"));
    }
    problems
}

/// The alerts a scene's cases sent (read once, at the end: the AWS CLI takes a second a call): only
/// failures', none with a key.
fn alert_problems(scene: &Scene) -> Vec<String> {
    let mut problems = Vec::new();
    for alert in scene.alerts.drain() {
        let event = alert["MessageAttributes"]["event"]["Value"]
            .as_str()
            .unwrap_or_default();
        if !FAILURE_ALERTS.contains(&event) {
            problems.push(format!("a case on {} alerted {event}", scene.name));
        }
        for key in &scene.keys {
            assert_no_key(&alert.to_string(), key, "an alert");
        }
    }
    problems
}

fn differences(before: &Snapshot, after: &Snapshot) -> String {
    let mut changed = Vec::new();
    if before.labels != after.labels {
        changed.push(format!("labels {:?} -> {:?}", before.labels, after.labels));
    }
    if before.values != after.values {
        changed.push("values".to_owned());
    }
    if before.tags != after.tags {
        changed.push(format!("tags {:?} -> {:?}", before.tags, after.tags));
    }
    if before.records != after.records {
        let gone: Vec<_> = before
            .records
            .iter()
            .filter(|r| !after.records.contains(r))
            .collect();
        let new: Vec<_> = after
            .records
            .iter()
            .filter(|r| !before.records.contains(r))
            .collect();
        changed.push(format!("records {gone:?} -> {new:?}"));
    }
    if before.simulator != after.simulator {
        changed.push("the simulator's state".to_owned());
    }
    changed.join("; ")
}
