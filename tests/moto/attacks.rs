//! The attack suite: someone who may write one managed secret (a team's CI role, a developer with
//! PutSecretValue on `it/*`) tries to steer keyrot's admin credentials beyond that secret. Each attack is
//! a value (or a tag) such a writer could put, driven through a rotation as Secrets Manager drives it.
//! Each must be refused by a final error that names the secret, the field and the fix; nothing may reach
//! a provider or target API beyond the secret's own validation, no loopback service may be called, and
//! AWSCURRENT must be as it was. Prints the count (README's Security section reports it).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use keyrot_sim::{Call, Fault, FaultKind};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::support::{World, assert_no_key};

const KEY: &str = "sk-attackerattackerattackerattacker0001";

/// A loopback service an attacker would like keyrot to call with a key; counts the connections.
struct Bait {
    port: u16,
    hits: Arc<AtomicUsize>,
}

async fn bait(answer: String) -> Bait {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let mut buf = vec![0; 4096];
            let _ = socket.read(&mut buf).await;
            let _ = socket.write_all(answer.as_bytes()).await;
        }
    });
    Bait { port, hits }
}

const OK: &str = "HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";

struct Attack {
    what: &'static str,
    value: Value,
    /// What the refusal must say, beside the secret's name.
    expected: Vec<String>,
}

fn attack(what: &'static str, value: Value, expected: &[&str]) -> Attack {
    Attack {
        what,
        value,
        expected: expected.iter().map(|s| (*s).to_owned()).collect(),
    }
}

/// A provider or target call: anything but a key's own validation (`GET /v1/models`).
fn reaches_beyond_validation(call: &Call) -> bool {
    call.path != "/v1/models"
}

/// Runs the rotation until a step fails; the failure must be final and say what `attack` expects,
/// with nothing sent anywhere it should not go.
async fn refused(world: &World, attack: &Attack, baits: &[&Bait]) {
    let name = world.moto.create_secret("attack", &attack.value, &[]).await;
    let current_before = world.moto.value(&name, "AWSCURRENT", None).await;
    let calls_before = world.sim.calls().len();
    let hits_before: Vec<usize> = baits
        .iter()
        .map(|b| b.hits.load(Ordering::SeqCst))
        .collect();
    let token = world.moto.rotate_secret(&name, true).await;
    let mut failure = None;
    for step in ["createSecret", "setSecret", "testSecret", "finishSecret"] {
        if let Err(err) = world
            .invoke(json!({"Step": step, "SecretId": name, "ClientRequestToken": token}))
            .await
        {
            failure = Some(err.0);
            break;
        }
    }
    let err = failure.unwrap_or_else(|| panic!("{}: the rotation went through", attack.what));
    let text = err.to_string();
    assert!(
        !err.is_retryable(),
        "{}: refusals are final: {text}",
        attack.what
    );
    for fragment in attack
        .expected
        .iter()
        .map(String::as_str)
        .chain([name.as_str(), "fix:"])
    {
        assert!(
            text.contains(fragment),
            "{}: {fragment:?} in {text}",
            attack.what
        );
    }
    assert_no_key(&text, KEY, attack.what);
    let beyond: Vec<Call> = world.sim.calls()[calls_before..]
        .iter()
        .filter(|c| reaches_beyond_validation(c))
        .cloned()
        .collect();
    assert!(beyond.is_empty(), "{}: reached {beyond:?}", attack.what);
    for (bait, before) in baits.iter().zip(hits_before) {
        assert_eq!(
            bait.hits.load(Ordering::SeqCst),
            before,
            "{}: the loopback service was called",
            attack.what
        );
    }
    assert_eq!(
        world.moto.value(&name, "AWSCURRENT", None).await,
        current_before,
        "{}: AWSCURRENT changed",
        attack.what
    );
}

#[tokio::test]
async fn a_secrets_writer_cannot_steer_keyrots_credentials() {
    let world = World::new().await;
    let project = world.sim.openai_create_project();
    let other_project = world.sim.openai_create_project();
    let admin_key = world.sim.openai_admin_key();
    let admin = world.admin_secret(&admin_key).await;
    let untagged = world.admin_secret_serving(&admin_key, None).await;
    let other_team = world.admin_secret_serving(&admin_key, Some("dev/")).await;
    let scoped = world.admin_secret(&admin_key).await;
    tag(&world, &scoped, "keyrot-admin:scope", &project).await;
    let managed_looking = world.admin_secret(&admin_key).await;
    tag(&world, &managed_looking, "keyrot:grace-hours", "24").await;
    let vercel_token = world.admin_secret(&world.sim.vercel_token()).await;
    let render_token = world.admin_secret(&world.sim.render_token()).await;
    let anthropic_admin = world.admin_secret(&world.sim.anthropic_admin_key()).await;
    let vercel = world.sim.vercel_create_project("attacked");
    let render = world.sim.render_create_service();
    // Another team's managed secret: its key must never be sent as a credential.
    let (victim, _, victim_key) = world.openai_secret(&[]).await;
    let loopback = bait(OK.to_owned()).await;
    let port = loopback.port;

    let openai = |project_id: &str, admin: &str| json!({"provider": "openai", "api_key": KEY, "openai": {"project_id": project_id, "admin_key_secret": admin}});
    let with = |mut value: Value, field: &str, id: &str| {
        value[field] = json!(id);
        value
    };
    let generic = |extra: Value| {
        let mut value = json!({"provider": "generic", "api_key": KEY});
        if let (Some(v), Some(e)) = (value.as_object_mut(), extra.as_object()) {
            v.extend(e.clone());
        }
        value
    };
    let vercel_target = |project: &str, team: Option<&str>, token: &str| {
        generic(
            json!({"targets": [{"type": "vercel", "project": project, "team_id": team,
            "env_key": "OPENAI_API_KEY", "token_secret": token}]}),
        )
    };
    let render_target = |service: &str, token: &str| {
        generic(
            json!({"targets": [{"type": "render", "service_id": service, "env_key": "OPENAI_API_KEY",
            "token_secret": token}]}),
        )
    };
    let validate = |url: String| generic(json!({"generic": {"validate_url": url}}));

    let attacks = vec![
        // Ids that walk the admin API's paths.
        attack(
            "project_id climbs to the admin keys",
            openai("../admin_api_keys/key_x?", &admin),
            &["openai.project_id", "proj_"],
        ),
        attack(
            "project_id climbs after a real prefix",
            openai("proj_1/../../users/user_x", &admin),
            &["openai.project_id"],
        ),
        attack(
            "project_id with encoded dots",
            openai("proj_1%2e%2e%2fadmin", &admin),
            &["openai.project_id"],
        ),
        attack(
            "project_id with a fragment",
            openai("proj_1#x", &admin),
            &["openai.project_id"],
        ),
        attack(
            "project_id with a query",
            openai("proj_1?limit=100", &admin),
            &["openai.project_id"],
        ),
        attack(
            "key_id walks to another account",
            with(
                openai(&project, &admin),
                "key_id",
                "svc_acct_1/../../admin_api_keys/k",
            ),
            &["key_id", "svc_acct_"],
        ),
        attack(
            "api_key_id walks to the admin keys",
            with(
                openai(&project, &admin),
                "api_key_id",
                "../../admin_api_keys/key_1",
            ),
            &["api_key_id", "key_"],
        ),
        attack(
            "anthropic key_id walks",
            json!({"provider": "anthropic", "api_key": KEY, "key_id": "apikey_1/../../users",
            "anthropic": {"admin_key_secret": anthropic_admin}}),
            &["key_id", "apikey_"],
        ),
        attack(
            "vercel project climbs",
            vercel_target("../../v9/projects/prj_other", None, &vercel_token),
            &["targets[0].project", "prj_"],
        ),
        attack(
            "vercel project smuggles a team",
            vercel_target(&format!("{vercel}?teamId=team_other"), None, &vercel_token),
            &["targets[0].project"],
        ),
        attack(
            "vercel team with extra parameters",
            vercel_target(&vercel, Some("team_1&slug=x"), &vercel_token),
            &["targets[0].team_id", "team_"],
        ),
        attack(
            "render service climbs",
            render_target("srv-1/../../owners", &render_token),
            &["targets[0].service_id", "srv-"],
        ),
        attack(
            "render service with encoded slashes",
            render_target("srv-1%2F..%2F", &render_token),
            &["targets[0].service_id"],
        ),
        // Another team's admin credentials, projects and secrets.
        attack(
            "an admin secret that serves nobody",
            openai(&project, &untagged),
            &["keyrot-admin:serves", "tag-resource"],
        ),
        attack(
            "another team's admin secret",
            openai(&project, &other_team),
            &["keyrot-admin:serves", "dev/ it/"],
        ),
        attack(
            "another project than the admin secret's scope",
            openai(&other_project, &scoped),
            &["keyrot-admin:scope", &other_project],
        ),
        attack(
            "a managed secret under the admin prefix",
            openai(&project, &managed_looking),
            &["a secret keyrot manages"],
        ),
        attack(
            "another managed secret as the OpenAI admin key",
            openai(&project, &victim),
            &["not under the admin prefix"],
        ),
        attack(
            "another managed secret as the Vercel token",
            vercel_target(&vercel, None, &victim),
            &["targets[].token_secret", "not under the admin prefix"],
        ),
        attack(
            "another managed secret as the Render token",
            render_target(&render, &victim),
            &["targets[].token_secret", "not under the admin prefix"],
        ),
        attack(
            "a secret outside the admin prefix",
            openai(&project, "it/some-other-secret"),
            &["not under the admin prefix"],
        ),
        // validate_url: the key sent to internal services.
        attack(
            "validate_url over plain http to loopback",
            validate(format!("http://127.0.0.1:{port}/me")),
            &["generic.validate_url", "plain http"],
        ),
        attack(
            "validate_url over https to loopback",
            validate(format!("https://127.0.0.1:{port}/me")),
            &["generic.validate_url", "internal"],
        ),
        attack(
            "validate_url to localhost",
            validate(format!("https://localhost:{port}/me")),
            &["generic.validate_url"],
        ),
        attack(
            "validate_url to instance metadata",
            validate("https://169.254.169.254/latest/meta-data/".into()),
            &["generic.validate_url"],
        ),
        attack(
            "validate_url to the VPC",
            validate("https://10.0.0.1/internal".into()),
            &["generic.validate_url"],
        ),
        attack(
            "validate_url to IPv6 loopback",
            validate(format!("https://[::1]:{port}/me")),
            &["generic.validate_url"],
        ),
        attack(
            "validate_url to IPv4-mapped loopback",
            validate(format!("https://[::ffff:127.0.0.1]:{port}/me")),
            &["generic.validate_url"],
        ),
        attack(
            "validate_url with credentials to loopback",
            validate(format!("https://user:pw@127.0.0.1:{port}/me")),
            &["generic.validate_url"],
        ),
        attack(
            "validate_url not http",
            validate("file:///etc/passwd".into()),
            &["generic.validate_url"],
        ),
    ];
    for attack in &attacks {
        refused(&world, attack, &[&loopback]).await;
    }
    assert_no_key(&crate::support::captured_logs(), &victim_key, "the logs");
    println!("attacks: {} refused, 0 got through", attacks.len());
    assert!(
        attacks.len() >= 25,
        "the suite holds {} attacks",
        attacks.len()
    );
}

async fn tag(world: &World, secret: &str, key: &str, value: &str) {
    world
        .moto
        .sm
        .tag_resource()
        .secret_id(secret)
        .tags(
            aws_sdk_secretsmanager::types::Tag::builder()
                .key(key)
                .value(value)
                .build(),
        )
        .send()
        .await
        .expect("tag");
}

/// Even with plain http to loopback allowed (local tests), a validate URL's redirect is never followed
/// with the key.
#[tokio::test]
async fn a_validate_url_cannot_redirect_the_key_elsewhere() {
    let world = World::configured(|config| {
        config.validate_url_http = keyrot::adapters::url_policy::PlainHttp::LoopbackOnly;
    })
    .await;
    let elsewhere = bait(OK.to_owned()).await;
    let redirect = bait(format!(
        "HTTP/1.1 302 Found\r\nlocation: http://127.0.0.1:{}/steal\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
        elsewhere.port
    ))
    .await;
    let value = json!({"provider": "generic", "api_key": KEY,
        "generic": {"validate_url": format!("http://127.0.0.1:{}/me", redirect.port)}});
    let name = world.moto.create_secret("attack", &value, &[]).await;
    let token = world.moto.rotate_secret(&name, true).await;
    world
        .step("createSecret", &name, &token)
        .await
        .expect("a random key");
    let err = world
        .step("setSecret", &name, &token)
        .await
        .expect_err("a redirect is no answer");
    assert!(
        err.contains("generic.validate_url") && err.contains("302"),
        "{err}"
    );
    assert_eq!(redirect.hits.load(Ordering::SeqCst), 1);
    assert_eq!(
        elsewhere.hits.load(Ordering::SeqCst),
        0,
        "the key never went there"
    );
}

/// A provider (or whoever sits in front of it) answering `Retry-After: 18446744073709551615` used to
/// panic the step (and abort a keeper pass); it is bounded, and the retry goes through.
#[tokio::test]
async fn a_huge_retry_after_is_bounded_and_the_rotation_goes_on() {
    let world = World::new().await;
    let (name, _, _) = world.openai_secret(&[]).await;
    world.sim.inject(Fault {
        method: Some("GET".into()),
        path_prefix: "/v1/models".into(),
        nth: 1,
        times: 1,
        kind: FaultKind::Status {
            code: 429,
            retry_after_secs: Some(u64::MAX),
        },
    });
    world.rotate(&name).await;
    let current = world.current_key(&name).await;
    assert!(current.starts_with("sk-svcacct-"), "rotated: {current}");
}

/// A writer names another secret's service account (a well-formed id in the same project, under the
/// same admin key) as their key's `key_id`, then waits for a rotation with grace 0. keyrot revokes
/// the writer's old key by the ids it recorded when that key was onboarded; the other secret's key
/// keeps working.
#[tokio::test]
async fn a_writer_naming_another_secrets_key_cannot_have_it_revoked() {
    let world = World::new().await;
    let project = world.sim.openai_create_project();
    let admin = world.admin_secret(&world.sim.openai_admin_key()).await;
    let onboarded = |key: &str, key_id: &str| {
        json!({"provider": "openai", "api_key": key, "api_key_id": key_id,
            "openai": {"project_id": project, "admin_key_secret": admin}})
    };
    let (victim_key, victim_key_id) = world.sim.openai_create_user_key(&project);
    let victim = world
        .moto
        .onboard_secret("victim", &onboarded(&victim_key, &victim_key_id), &[])
        .await;
    world.rotate(&victim).await;
    let victims_value = world
        .moto
        .value(&victim, "AWSCURRENT", None)
        .await
        .expect("victim's value");
    let victims_account = victims_value["key_id"].as_str().expect("a minted account");

    let (own_key, own_key_id) = world.sim.openai_create_user_key(&project);
    let attacker = world
        .moto
        .onboard_secret("writer", &onboarded(&own_key, &own_key_id), &[])
        .await;
    let mut steered = onboarded(&own_key, &own_key_id);
    steered["key_id"] = json!(victims_account);
    world
        .moto
        .sm
        .put_secret_value()
        .secret_id(&attacker)
        .secret_string(steered.to_string())
        .send()
        .await
        .expect("the writer's PutSecretValue");
    tag(&world, &attacker, "keyrot:grace-hours", "0").await;
    world.rotate(&attacker).await;

    let victims_key = world.current_key(&victim).await;
    assert!(
        world.sim.openai_key_works(&victims_key),
        "the other secret's key was revoked"
    );
    assert!(
        world
            .sim
            .openai_service_accounts(&project)
            .iter()
            .any(|account| account.id == victims_account),
        "the other secret's service account was deleted"
    );
    assert!(
        !world.sim.openai_key_works(&own_key),
        "the writer's old key goes, by the id recorded at onboarding"
    );
}
