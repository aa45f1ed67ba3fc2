use std::time::{Duration, Instant};

use keyrot_sim::{CredentialSystem, Simulator};
use reqwest::Method;
use serde_json::{Value, json};

use crate::vercel::{redeploy, settled, write_env};
use crate::{client, send};

#[tokio::test]
async fn control_api_seeds_and_reports_state_without_key_values() {
    let sim = Simulator::start().await.unwrap();
    let client = client();
    let base = sim.base_url();

    let (status, project) = send(client.post(format!("{base}/_sim/openai/projects"))).await;
    assert_eq!(status, 200);
    let project_id = project["id"].as_str().unwrap();
    assert!(project_id.starts_with("proj_"));

    let (status, user_key) = send(client.post(format!(
        "{base}/_sim/openai/projects/{project_id}/user_keys"
    )))
    .await;
    assert_eq!(status, 200);
    let user_value = user_key["value"].as_str().unwrap();
    assert!(sim.openai_key_works(user_value));
    let (status, _) =
        send(client.post(format!("{base}/_sim/openai/projects/proj_nope/user_keys"))).await;
    assert_eq!(status, 404);

    let (status, ant_key) = send(
        client
            .post(format!("{base}/_sim/anthropic/keys"))
            .json(&json!({"name":"demo"})),
    )
    .await;
    assert_eq!(status, 200);
    let ant_value = ant_key["value"].as_str().unwrap();
    assert_eq!(
        sim.anthropic_key_status(ant_key["id"].as_str().unwrap())
            .as_deref(),
        Some("active")
    );

    let (status, stripe_key) = send(
        client
            .post(format!("{base}/_sim/stripe/keys"))
            .json(&json!({})),
    )
    .await;
    assert_eq!(status, 200);
    let stripe_value = stripe_key["value"].as_str().unwrap();
    assert_eq!(stripe_key["account"], sim.stripe_account().as_str());
    let (status, token) = send(
        client
            .post(format!("{base}/_sim/github/tokens"))
            .json(&json!({"login": "octo", "scopes": ["repo"]})),
    )
    .await;
    assert_eq!(status, 200);
    let github_value = token["value"].as_str().unwrap();
    // A Vercel token a person creates in the console, beside the first.
    let (status, vercel_token) = send(
        client
            .post(format!("{base}/_sim/credentials"))
            .json(&json!({"system": "vercel", "name": "next"})),
    )
    .await;
    assert_eq!(status, 200);
    let vercel_value = vercel_token["value"].as_str().unwrap();
    let live = |id: &str, name: &str| json!([{"id": id, "name": "Initial key", "live": true}, {"id": vercel_token["id"], "name": name, "live": true}]);
    let first = |system| sim.live_credentials(system)[0].clone();
    let one = |system| json!([{"id": first(system), "name": "Initial key", "live": true}]);

    let (status, state) = send(client.get(format!("{base}/_sim/state"))).await;
    assert_eq!(status, 200);
    assert_eq!(
        state,
        json!({
            "openai": {
                "admin_key": sim.openai_admin_key(),
                "admin_keys": one(CredentialSystem::Openai),
                "projects": [{"id": project_id, "service_accounts": [], "user_keys": [{"id": user_key["id"], "revoked": false}]}],
            },
            "anthropic": {
                "admin_key": sim.anthropic_admin_key(),
                "admin_keys": one(CredentialSystem::Anthropic),
                "keys": [{"id": ant_key["id"], "name": "demo", "status": "active"}],
            },
            "vercel": {"token": sim.vercel_token(), "tokens": live(&first(CredentialSystem::Vercel), "next"), "team_id": sim.vercel_team_id(), "projects": []},
            "render": {"token": sim.render_token(), "tokens": one(CredentialSystem::Render), "services": []},
            "stripe": {"accounts": [{"id": sim.stripe_account(), "live_keys": 1}]},
            "github": {"tokens": [{"login": "octo", "classic": true}]},
        })
    );
    let text = state.to_string();
    for value in [
        user_value,
        ant_value,
        stripe_value,
        github_value,
        vercel_value,
    ] {
        assert!(!text.contains(value), "no key value in the state");
    }

    for (provider, key, works) in [
        ("openai", user_value, true),
        ("anthropic", ant_value, true),
        ("openai", ant_value, false),
        ("anthropic", "sk-ant-api03-nope", false),
        ("stripe", stripe_value, true),
        ("stripe", ant_value, false),
        ("github", github_value, true),
        ("github", stripe_value, false),
        ("vercel-token", vercel_value, true),
        ("render-token", vercel_value, false),
    ] {
        let (status, body) = send(
            client
                .post(format!("{base}/_sim/check"))
                .json(&json!({"provider": provider, "key": key})),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(body, json!({ "works": works }), "{provider}");
    }
    let (status, gone) = send(
        client
            .post(format!("{base}/_sim/credentials/delete"))
            .json(&json!({"system": "vercel", "key": vercel_value})),
    )
    .await;
    assert_eq!((status, gone), (200, json!({"deleted": true})));
    assert!(!sim.credential_works(CredentialSystem::Vercel, vercel_value));
    assert!(sim.calls().is_empty());
}

#[tokio::test]
async fn control_api_injects_and_clears_faults() {
    let sim = Simulator::start().await.unwrap();
    let client = client();
    let base = sim.base_url();
    let models = format!("{}/models", sim.openai_base_url());

    let fault = json!({"method":null,"path_prefix":"/v1/models","nth":1,"times":1,"kind":{"status":{"code":429,"retry_after_secs":1}}});
    let (status, body) = send(client.post(format!("{base}/_sim/faults")).json(&fault)).await;
    assert_eq!((status, body), (204, serde_json::Value::Null));
    let response = client.get(&models).send().await.unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "1");

    let fault = json!({"method":"GET","path_prefix":"/v1/models","nth":1,"times":5,"kind":"drop"});
    assert_eq!(
        send(client.post(format!("{base}/_sim/faults")).json(&fault))
            .await
            .0,
        204
    );
    assert!(client.get(&models).send().await.is_err());

    assert_eq!(
        send(client.delete(format!("{base}/_sim/faults"))).await.0,
        204
    );
    // With the faults gone the unauthenticated call reaches the OpenAI logic again.
    assert_eq!(send(client.get(&models)).await.0, 401);

    let (status, body) = send(
        client
            .post(format!("{base}/_sim/faults"))
            .json(&json!({"path_prefix":"/","kind":"explode"})),
    )
    .await;
    assert_eq!(status, 400);
    assert!(body["error"].is_string());
}

/// Polls a `/_sim/.../served` URL until it reports `want` (bounded).
async fn served_becomes(url: &str, want: Value) {
    let client = client();
    let started = Instant::now();
    loop {
        let (status, body) = send(client.get(url)).await;
        assert_eq!(status, 200, "{body}");
        if body == json!({ "value": want }) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{url} still says {body}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn control_api_drives_vercel_and_render_for_the_demo() {
    let sim = Simulator::start().await.unwrap();
    let client = client();
    let base = sim.base_url();

    let (status, body) = send(
        client
            .post(format!("{base}/_sim/build_millis"))
            .json(&json!({"millis": 10})),
    )
    .await;
    assert_eq!((status, body), (204, Value::Null));
    let (status, project) = send(
        client
            .post(format!("{base}/_sim/vercel/projects"))
            .json(&json!({"name": "demo-web"})),
    )
    .await;
    assert_eq!(status, 200);
    let project = project["id"].as_str().unwrap().to_owned();
    assert!(project.starts_with("prj_"));
    assert_eq!(
        send(
            client
                .post(format!("{base}/_sim/vercel/projects"))
                .json(&json!({"name": ""}))
        )
        .await
        .0,
        400
    );
    let (status, service) = send(client.post(format!("{base}/_sim/render/services"))).await;
    assert_eq!(status, 200);
    let service = service["id"].as_str().unwrap().to_owned();
    assert!(service.starts_with("srv-"));

    let vercel_served =
        format!("{base}/_sim/vercel/projects/{project}/served?target=production&key=API_KEY");
    let render_served = format!("{base}/_sim/render/services/{service}/served?key=API_KEY");
    assert_eq!(
        send(client.get(&vercel_served)).await,
        (200, json!({"value": null}))
    );
    assert_eq!(
        send(client.get(&render_served)).await,
        (200, json!({"value": null}))
    );
    for url in [
        format!("{base}/_sim/vercel/projects/prj_missing/served?key=K"),
        format!("{base}/_sim/render/services/srv-missing/served?key=K"),
    ] {
        assert_eq!(send(client.get(&url)).await.0, 404, "{url}");
    }
    assert_eq!(
        send(client.get(format!("{base}/_sim/render/services/{service}/served")))
            .await
            .0,
        400
    );

    // Vercel: write, redeploy, and the served value follows once READY.
    write_env(
        &client,
        &sim,
        &project,
        true,
        json!({"key":"API_KEY","value":"sk-demo-one","type":"sensitive","target":["production"],"comment":"keyrot:abc"}),
    )
    .await;
    redeploy(&client, &sim, &project).await;
    served_becomes(&vercel_served, json!("sk-demo-one")).await;

    // A requested failure leaves it.
    let (status, _) = send(
        client
            .post(format!("{base}/_sim/vercel/fail_next"))
            .json(&json!({"n": 1})),
    )
    .await;
    assert_eq!(status, 204);
    write_env(
        &client,
        &sim,
        &project,
        true,
        json!({"key":"API_KEY","value":"sk-demo-two","type":"sensitive","target":["production"]}),
    )
    .await;
    let (_, failed) = redeploy(&client, &sim, &project).await;
    settled(&client, &sim, failed["id"].as_str().unwrap()).await;
    assert_eq!(
        send(client.get(&vercel_served)).await.1,
        json!({"value": "sk-demo-one"})
    );

    // Render likewise.
    let render = |method: Method, path: String| {
        client
            .request(method, format!("{base}/v1/services/{service}{path}"))
            .bearer_auth(sim.render_token())
    };
    let (status, _) =
        send(render(Method::PUT, "/env-vars/API_KEY".into()).json(&json!({"value":"sk-demo-one"})))
            .await;
    assert_eq!(status, 200);
    let (status, _) = send(
        client
            .post(format!("{base}/_sim/render/fail_next"))
            .json(&json!({"n": 1})),
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(send(render(Method::POST, "/deploys".into())).await.0, 201);
    assert_eq!(send(render(Method::POST, "/deploys".into())).await.0, 201);
    served_becomes(&render_served, json!("sk-demo-one")).await;
    let statuses: Vec<String> = sim
        .render_deploys(&service)
        .into_iter()
        .map(|(_, s)| s)
        .collect();
    assert_eq!(statuses, ["deactivated", "build_failed", "live"]);

    // The state shows fingerprints and comments, never values.
    let (status, state) = send(client.get(format!("{base}/_sim/state"))).await;
    assert_eq!(status, 200);
    let text = state.to_string();
    assert!(
        !text.contains("sk-demo-one") && !text.contains("sk-demo-two"),
        "{text}"
    );
    // The first 12 hex characters of sha256("sk-demo-one").
    let fingerprint_one = "47aff9752bf5";
    let var = &state["vercel"]["projects"][0]["env"][0];
    assert_eq!(var["key"], "API_KEY");
    assert_eq!(var["comment"], "keyrot:abc");
    assert_eq!(var["type"], "sensitive");
    assert_eq!(var["target"], json!(["production"]));
    assert_eq!(var["fingerprint"].as_str().unwrap().len(), 12);
    let deployments = state["vercel"]["projects"][0]["deployments"]
        .as_array()
        .unwrap();
    let ready_states: Vec<&Value> = deployments.iter().map(|d| &d["ready_state"]).collect();
    assert_eq!(
        ready_states,
        [&json!("READY"), &json!("READY"), &json!("ERROR")]
    );
    let service_state = &state["render"]["services"][0];
    assert_eq!(service_state["id"], service.as_str());
    assert_eq!(service_state["deploys"][2]["status"], "live");
    assert_eq!(
        service_state["deploys"][2]["env"],
        json!([{"key": "API_KEY", "fingerprint": fingerprint_one}])
    );
    assert_eq!(deployments[1]["env"][0]["fingerprint"], fingerprint_one);
    assert!(sim.calls().iter().all(|c| !c.path.starts_with("/_sim/")));
}
