//! Contract tests: the OpenAI traffic of full rotations passes through Stoplight Prism in proxy mode with
//! `--errors`, so every request our client sends and every response the simulator returns must satisfy
//! OpenAI's official OpenAPI spec (`openai-openapi.json` in `KEYROT_SPECS_DIR`), or the rotation fails.
//! Without `KEYROT_SPECS_DIR` (a user's clone has no specs) each test says loudly that it was skipped.

use crate::support::World;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use keyrot::ports::AuditLog;
use keyrot_sim::Simulator;
use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};

struct Prism {
    url: String,
    child: Child,
}

/// The official spec `name` from `KEYROT_SPECS_DIR`. Unset: `None`, and the test says it was
/// skipped. Set but without the spec: a misconfiguration, which fails the test.
fn spec_file(test: &str, name: &str) -> Option<PathBuf> {
    let Some(dir) = std::env::var_os("KEYROT_SPECS_DIR") else {
        eprintln!(
            "SKIPPED {test}: it needs the official spec {name}; set KEYROT_SPECS_DIR to the folder \
             that holds the provider specs (scripts/fetch-specs.sh downloads them) to run it"
        );
        return None;
    };
    let spec = PathBuf::from(dir).join(name);
    assert!(
        spec.is_file(),
        "{} is missing: KEYROT_SPECS_DIR must name the folder holding {name}",
        spec.display()
    );
    Some(spec)
}

impl Prism {
    async fn proxy(spec: &std::path::Path, upstream: &str) -> Prism {
        let prism = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tools/node_modules/.bin/prism");
        assert!(
            prism.is_file(),
            "Prism is not installed: run `make test` (scripts/tools.sh installs it)"
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("free port")
            .local_addr()
            .expect("addr")
            .port();
        let child = Command::new(prism)
            .args([
                "proxy",
                &spec.to_string_lossy(),
                upstream,
                "--errors",
                "--host",
                "127.0.0.1",
                "--port",
            ])
            .arg(port.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("prism starts");
        let url = format!("http://127.0.0.1:{port}");
        // Prism parses the 3 MB spec before it listens: allow it a while.
        for _ in 0..240 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Prism { url, child };
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        panic!("prism did not listen on {port} within 60 s");
    }

    /// Stops Prism and fails if it logged any violation of the spec.
    async fn assert_no_violations(self) {
        let output = self.log().await;
        assert!(
            !output.contains("Request terminated with error"),
            "Prism found violations:\n{output}"
        );
        let violations = violations(&output);
        assert!(
            violations.is_empty(),
            "Prism found violations: {violations:#?}\n{output}"
        );
    }

    /// Stops Prism and returns everything it logged.
    async fn log(mut self) -> String {
        let _ = self.child.start_kill();
        let mut text = String::new();
        if let Some(mut out) = self.child.stdout.take() {
            let _ = out.read_to_string(&mut text).await;
        }
        if let Some(mut err) = self.child.stderr.take() {
            let _ = err.read_to_string(&mut text).await;
        }
        text
    }
}

#[tokio::test]
async fn the_openai_traffic_of_full_rotations_satisfies_the_official_spec() {
    let Some(spec) = spec_file("the OpenAI contract test", "openai-openapi.json") else {
        return;
    };
    let sim = Simulator::start().await.expect("simulator");
    // Prism serves the spec's paths without `/v1`; the upstream carries it.
    let prism = Prism::proxy(&spec, &sim.openai_base_url()).await;
    let world = World::with_urls(sim, Some(prism.url.clone())).await;
    let (name, _, first_key) = world.openai_secret(&[("keyrot:grace-hours", "0")]).await;

    // First rotation: validate, list and mint service accounts, revoke the person's key by api_key_id.
    world.rotate(&name).await;
    let minted_version = world
        .moto
        .version_of(&name, "AWSCURRENT")
        .await
        .expect("current");
    // Second rotation: the same again, and the minted key's service account is deleted.
    world.rotate(&name).await;
    assert!(!world.sim.openai_key_works(&first_key));

    // The grace keeper's last-use lookup of a minted key.
    let log = world.moto.audit_log();
    let mut revocation = log
        .revocation(&name, &minted_version)
        .await
        .expect("query")
        .expect("recorded");
    let current = world
        .moto
        .value(&name, "AWSCURRENT", None)
        .await
        .expect("current");
    revocation.api_key_id = current["api_key_id"].as_str().map(str::to_owned);
    let last_used = world
        .ports
        .issuer
        .openai
        .last_used(&revocation.handle())
        .await
        .expect("last_used through Prism");
    assert!(
        last_used.is_some(),
        "the current key was used by testSecret"
    );
    rotate_own_admin_key(&world).await;

    let paths: Vec<String> = world
        .sim
        .calls()
        .iter()
        .map(|c| format!("{} {}", c.method, c.path))
        .collect();
    for expected in [
        "GET /v1/models",
        "POST /v1/organization/projects/",
        "GET /v1/organization/projects/",
        "DELETE /v1/organization/projects/",
        "GET /v1/organization/admin_api_keys",
        "POST /v1/organization/admin_api_keys",
        "DELETE /v1/organization/admin_api_keys/",
    ] {
        assert!(
            paths.iter().any(|p| p.starts_with(expected)),
            "no {expected} went through Prism: {paths:?}"
        );
    }
    prism.assert_no_violations().await;
}

/// keyrot's own OpenAI admin key, onboarded, rotated (listed, minted) and its old key deleted at once
/// by the new one.
async fn rotate_own_admin_key(world: &World) {
    let system = keyrot_sim::CredentialSystem::Openai;
    let (first, first_id) = world.sim.create_credential(system);
    let name = format!(
        "{}{}",
        world.config.admin_prefix,
        uuid::Uuid::new_v4().simple()
    );
    let value =
        serde_json::json!({"provider": "openai-admin", "admin_key": first, "key_id": first_id});
    world
        .moto
        .onboard_secret_named(
            &name,
            &value,
            &[
                ("keyrot-admin:rotated", "true"),
                ("keyrot:grace-hours", "0"),
            ],
        )
        .await;
    world.rotate(&name).await;
    assert!(
        !world.sim.credential_works(system, &first),
        "deleted at once"
    );
}

/// A staged token of keyrot's own (a Vercel token, a Render key) validated and compared with the
/// current one, through the platform's spec.
async fn check_own_token(world: &World, system: keyrot_sim::CredentialSystem) {
    use keyrot::domain::credential::CredentialKind;
    let kind = match system {
        keyrot_sim::CredentialSystem::Vercel => CredentialKind::VercelToken,
        _ => CredentialKind::RenderToken,
    };
    let credentials = &world.ports.issuer.credentials;
    let current = secrecy::SecretString::from(world.sim.create_credential(system).0);
    let staged = secrecy::SecretString::from(world.sim.create_credential(system).0);
    credentials
        .validate("contract", kind, &staged)
        .await
        .expect("a working token");
    let notes = credentials
        .compare_staged("contract", kind, &current, &staged)
        .await
        .expect("the same account");
    assert!(notes.is_empty(), "{notes:?}");
}

#[tokio::test]
async fn the_vercel_traffic_of_a_rotation_satisfies_the_official_spec() {
    let Some(spec) = spec_file("the Vercel contract test", "vercel-openapi.json") else {
        return;
    };
    let sim = Simulator::start().await.expect("simulator");
    sim.vercel_set_build_millis(50);
    sim.render_set_build_millis(50);
    // Prism checks our requests against Vercel's spec (it lets Vercel responses through unchecked; the
    // simulator's own tests check those against the spec's response schemas).
    let prism = Prism::proxy(&spec, &sim.vercel_base_url()).await;
    let world = World::with_proxies(sim, None, Some(prism.url.clone())).await;
    let (name, _, vercel, _) = world.openai_secret_with_targets(&[]).await;
    world.rotate(&name).await;
    let current = world.current_key(&name).await;
    assert_eq!(
        world
            .sim
            .vercel_served_value(&vercel, "production", "OPENAI_API_KEY")
            .as_deref(),
        Some(current.as_str())
    );
    check_own_token(&world, keyrot_sim::CredentialSystem::Vercel).await;

    let paths: Vec<String> = world
        .sim
        .calls()
        .iter()
        .map(|c| format!("{} {}", c.method, c.path))
        .collect();
    for expected in [
        "GET /v2/user",
        "GET /v10/projects/",
        "POST /v10/projects/",
        "GET /v9/projects/",
        "POST /v13/deployments",
        "GET /v13/deployments/",
    ] {
        assert!(
            paths.iter().any(|p| p.starts_with(expected)),
            "no {expected} went through Prism: {paths:?}"
        );
    }
    prism.assert_no_violations().await;
}

/// The violations in Prism's log, but one: OpenAI's spec documents only the 200 of `GET /models` and
/// of `GET /organization/admin_api_keys`, while OpenAI answers a key it refuses with 401 (its
/// error-codes guide). keyrot asks with a revoked key on purpose, to check that the revocation took, so
/// that answer is expected.
fn violations(log: &str) -> Vec<String> {
    let lines: Vec<&str> = log.lines().collect();
    lines
        .iter()
        .enumerate()
        .filter(|(_, line)| line.to_lowercase().contains("violation"))
        .filter(|(i, line)| {
            let refused_key = line.contains("Unable to match the returned status code")
                && lines[i.saturating_sub(3)..*i].iter().any(|before| {
                    ["/models", "/organization/admin_api_keys"]
                        .iter()
                        .any(|path| {
                            before
                                .contains(&format!("The upstream call to {path} has returned 401"))
                        })
                });
            !refused_key
        })
        .map(|(_, line)| (*line).to_owned())
        .collect()
}

#[test]
fn only_a_refused_key_s_401_on_models_is_let_through() {
    let refused = "x The upstream call to /models has returned 401\nx < Received forward response\n\
        x [VALIDATOR] warning Violation: response Unable to match the returned status code with those defined in the document: 200";
    assert!(violations(refused).is_empty());
    let other = "x The upstream call to /organization/projects has returned 401\nx < Received\n\
        x [VALIDATOR] warning Violation: response Unable to match the returned status code with those defined in the document: 200";
    assert_eq!(violations(other).len(), 1);
    assert_eq!(
        violations("x Violation: request body missing name").len(),
        1
    );
}

/// Render's spec names its paths without the `/v1` its server URL carries, where keyrot's paths carry
/// it: a copy of the spec (in a temporary folder, never in the repository) with every path under `/v1`.
fn spec_under_v1(spec: &std::path::Path) -> PathBuf {
    let mut document: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(spec).expect("the spec reads"))
            .expect("JSON");
    if let Some(paths) = document["paths"].as_object_mut() {
        *paths = std::mem::take(paths)
            .into_iter()
            .map(|(path, operations)| (format!("/v1{path}"), operations))
            .collect();
    }
    document["servers"] = serde_json::json!([{"url": "https://api.render.com"}]);
    // The spec's own references into its paths move with them.
    let text = document
        .to_string()
        .replace("\"#/paths/~1", "\"#/paths/~1v1~1");
    let copy = std::env::temp_dir().join(format!("keyrot-render-spec-{}.json", std::process::id()));
    std::fs::write(&copy, text).expect("the copy writes");
    copy
}

#[tokio::test]
async fn the_render_traffic_of_a_rotation_satisfies_the_official_spec() {
    let Some(spec) = spec_file("the Render contract test", "render-openapi.json") else {
        return;
    };
    let sim = Simulator::start().await.expect("simulator");
    sim.vercel_set_build_millis(50);
    sim.render_set_build_millis(50);
    let prism = Prism::proxy(&spec_under_v1(&spec), &sim.render_base_url()).await;
    let world = World::on(sim, |config| config.render_base_url = prism.url.clone()).await;
    let (name, _, _, render) = world.openai_secret_with_targets(&[]).await;
    world.rotate(&name).await;
    let current = world.current_key(&name).await;
    assert_eq!(
        world
            .sim
            .render_served_value(&render, "OPENAI_API_KEY")
            .as_deref(),
        Some(current.as_str())
    );
    check_own_token(&world, keyrot_sim::CredentialSystem::Render).await;
    let paths: Vec<String> = world
        .sim
        .calls()
        .iter()
        .filter(|c| c.path.starts_with("/v1/services") || c.path == "/v1/owners")
        .map(|c| format!("{} {}", c.method, c.path))
        .collect();
    for expected in [
        "GET /v1/services/",
        "PUT /v1/services/",
        "POST /v1/services/",
        "GET /v1/owners",
    ] {
        assert!(
            paths.iter().any(|p| p.starts_with(expected)),
            "no {expected} went through Prism: {paths:?}"
        );
    }
    prism.assert_no_violations().await;
}

/// Anthropic publishes no spec of its Admin API (docs/simulator.md says where the simulator's
/// behaviour comes from); the key validation it does publish is checked here, for a working key and for
/// an unknown one.
#[tokio::test]
async fn anthropic_key_validation_satisfies_the_published_excerpt() {
    let Some(spec) = spec_file(
        "the Anthropic contract test",
        "anthropic-openapi-excerpt.yaml",
    ) else {
        return;
    };
    let sim = Simulator::start().await.expect("simulator");
    let prism = Prism::proxy(&spec, &sim.anthropic_base_url()).await;
    let world = World::on(sim, |config| config.anthropic_base_url = prism.url.clone()).await;
    let (working, _) = world.sim.anthropic_create_key("working");
    let anthropic = &world.ports.issuer.anthropic;
    anthropic
        .validate("it/anthropic", &secrecy::SecretString::from(working))
        .await
        .expect("a working key");
    let err = anthropic
        .validate(
            "it/anthropic",
            &secrecy::SecretString::from("sk-ant-api03-NOTAKEY-000000000000AA"),
        )
        .await
        .expect_err("an unknown key");
    assert!(matches!(err, keyrot::Error::KeyRejected { .. }), "{err}");
    prism.assert_no_violations().await;
}

/// Stripe's balance endpoint, the one keyrot calls to validate a key, through Prism on the subset of
/// Stripe's spec that Prism loads (`stripe-openapi-excerpt-prism.json`: `GET /v1/balance` and its 200).
/// The subset declares no error answer, so only a working key goes through Prism; a refused key's
/// 401 is checked against Stripe's error shape by the simulator's own tests.
#[tokio::test]
async fn stripe_key_validation_satisfies_the_published_excerpt() {
    let Some(spec) = spec_file(
        "the Stripe contract test",
        "stripe-openapi-excerpt-prism.json",
    ) else {
        return;
    };
    let sim = Simulator::start().await.expect("simulator");
    let prism = Prism::proxy(&spec, &sim.stripe_base_url()).await;
    let world = World::on(sim, |config| config.stripe_base_url = prism.url.clone()).await;
    let key = world.sim.stripe_create_key(&world.sim.stripe_account());
    world
        .ports
        .issuer
        .stripe
        .validate("it/stripe", &secrecy::SecretString::from(key))
        .await
        .expect("a working key");
    assert!(
        world
            .sim
            .calls()
            .iter()
            .any(|c| c.path == "/v1/balance" && c.status == 200),
        "the balance call went through Prism to the simulator"
    );
    prism.assert_no_violations().await;
}

/// GitHub's `GET /user` (validation, for a working and for a revoked token) and the unauthenticated
/// `POST /credentials/revoke` (revocation by value) through Prism on the excerpt of GitHub's REST API
/// description (`github-openapi-excerpt.json`).
#[tokio::test]
async fn github_validation_and_revocation_satisfy_the_published_excerpt() {
    let Some(spec) = spec_file("the GitHub contract test", "github-openapi-excerpt.json") else {
        return;
    };
    let sim = Simulator::start().await.expect("simulator");
    let prism = Prism::proxy(&spec, &sim.github_base_url()).await;
    let world = World::on(sim, |config| config.github_base_url = prism.url.clone()).await;
    let token = world.sim.github_create_token("octo-ops", &["repo"]);
    let key = secrecy::SecretString::from(token.clone());
    let github = &world.ports.issuer.github;
    let info = github
        .token_info("it/github", &key)
        .await
        .expect("a working token");
    assert_eq!(info.login, "octo-ops");
    let handle = keyrot::domain::audit::KeyHandle {
        secret_name: "it/github".into(),
        old_version_id: "v0".into(),
        provider: keyrot::domain::secret::Provider::GitHub,
        project_id: None,
        key_id: None,
        api_key_id: None,
        admin_key_secret: None,
        fingerprint: None,
    };
    let status = github.revoke(&handle, Some(&key)).await.expect("revoked");
    assert_eq!(status, keyrot::domain::audit::RevocationStatus::Revoked);
    assert!(!world.sim.github_token_works(&token));
    let err = github
        .validate("it/github", &key)
        .await
        .expect_err("revoked");
    assert!(matches!(err, keyrot::Error::KeyRejected { .. }), "{err}");
    prism.assert_no_violations().await;
}
