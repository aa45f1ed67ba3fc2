use keyrot_sim::Simulator;
use serde_json::json;

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

    let (status, state) = send(client.get(format!("{base}/_sim/state"))).await;
    assert_eq!(status, 200);
    assert_eq!(
        state,
        json!({
            "openai": {
                "admin_key": sim.openai_admin_key(),
                "projects": [{"id": project_id, "service_accounts": [], "user_keys": [{"id": user_key["id"], "revoked": false}]}],
            },
            "anthropic": {
                "admin_key": sim.anthropic_admin_key(),
                "keys": [{"id": ant_key["id"], "name": "demo", "status": "active"}],
            },
        })
    );
    let text = state.to_string();
    assert!(!text.contains(user_value) && !text.contains(ant_value));

    for (provider, key, works) in [
        ("openai", user_value, true),
        ("anthropic", ant_value, true),
        ("openai", ant_value, false),
        ("anthropic", "sk-ant-api03-nope", false),
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
