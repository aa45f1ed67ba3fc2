use keyrot_sim::Simulator;
use reqwest::{Client, RequestBuilder};
use serde_json::{Value, json};

use crate::client;

/// The answer to `request`; an error's `request_id` (new with every answer, and required by the
/// published excerpt) is checked and taken out, so that bodies compare whole.
async fn send(request: RequestBuilder) -> (u16, Value) {
    let (status, mut body) = crate::send(request).await;
    if body["type"] == "error" {
        let id = body
            .as_object_mut()
            .and_then(|fields| fields.remove("request_id"));
        assert!(
            id.as_ref()
                .and_then(Value::as_str)
                .is_some_and(|id| id.starts_with("req_")),
            "an error names its request: {id:?}"
        );
    }
    (status, body)
}

const VERSION: &str = "2023-06-01";

fn with_key(request: RequestBuilder, key: &str) -> RequestBuilder {
    request
        .header("x-api-key", key)
        .header("anthropic-version", VERSION)
}

async fn models(client: &Client, sim: &Simulator, key: &str) -> (u16, Value) {
    send(with_key(
        client.get(format!("{}/v1/models", sim.anthropic_base_url())),
        key,
    ))
    .await
}

fn keys_url(sim: &Simulator) -> String {
    format!("{}/v1/organizations/api_keys", sim.anthropic_base_url())
}

async fn update(client: &Client, sim: &Simulator, id: &str, body: Value) -> (u16, Value) {
    let url = format!("{}/{id}", keys_url(sim));
    send(with_key(client.post(url), &sim.anthropic_admin_key()).json(&body)).await
}

fn invalid_key_body() -> Value {
    json!({"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}})
}

#[tokio::test]
async fn created_key_works_on_models() {
    let sim = Simulator::start().await.unwrap();
    let client = client();
    let (value, id) = sim.anthropic_create_key("console key");
    let body = value
        .strip_prefix("sk-ant-api03-")
        .unwrap()
        .strip_suffix("AA")
        .unwrap();
    assert_eq!(body.len(), 86);
    assert!(
        body.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    );
    assert!(id.starts_with("apikey_"));
    assert!(sim.anthropic_admin_key().starts_with("sk-ant-admin01-"));

    let (status, body) = models(&client, &sim, &value).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"data":[{"type":"model","id":"claude-sonnet-4-5","display_name":"Claude Sonnet 4.5","created_at":"2025-09-29T00:00:00Z"}],
               "has_more":false,"first_id":"claude-sonnet-4-5","last_id":"claude-sonnet-4-5"})
    );
    assert!(sim.anthropic_key_works(&value));

    let (status, body) = send(
        client
            .get(format!("{}/v1/models", sim.anthropic_base_url()))
            .header("x-api-key", &value),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({"type":"error","error":{"type":"invalid_request_error","message":"anthropic-version: header is required"}})
    );

    assert_eq!(
        models(&client, &sim, "sk-ant-api03-nope").await,
        (401, invalid_key_body())
    );
    // Admin keys cannot call the inference API.
    assert_eq!(
        models(&client, &sim, &sim.anthropic_admin_key()).await,
        (401, invalid_key_body())
    );
}

#[tokio::test]
async fn status_changes_gate_the_key_and_archiving_is_final() {
    let sim = Simulator::start().await.unwrap();
    let client = client();
    let (value, id) = sim.anthropic_create_key("rotating");

    let (status, body) = update(&client, &sim, &id, json!({"status":"inactive"})).await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "inactive");
    assert_eq!(sim.anthropic_key_status(&id).as_deref(), Some("inactive"));
    assert_eq!(
        models(&client, &sim, &value).await,
        (401, invalid_key_body())
    );

    let (status, body) = update(
        &client,
        &sim,
        &id,
        json!({"status":"active","name":"renamed"}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["name"], "renamed");
    assert_eq!(models(&client, &sim, &value).await.0, 200);

    assert_eq!(
        update(&client, &sim, &id, json!({"status":"archived"}))
            .await
            .0,
        200
    );
    assert_eq!(models(&client, &sim, &value).await.0, 401);
    let (status, body) = update(&client, &sim, &id, json!({"status":"active"})).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert_eq!(sim.anthropic_key_status(&id).as_deref(), Some("archived"));
    assert!(!sim.anthropic_key_works(&value));

    assert_eq!(
        update(&client, &sim, &id, json!({"status":"deleted"}))
            .await
            .0,
        400
    );
    let (status, body) = update(
        &client,
        &sim,
        "apikey_missing",
        json!({"status":"inactive"}),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["type"], "not_found_error");
}

#[tokio::test]
async fn key_objects_have_the_documented_shape() {
    let sim = Simulator::start().await.unwrap();
    let client = client();
    let (value, id) = sim.anthropic_create_key("shape");
    let (status, key) = send(with_key(
        client.get(format!("{}/{id}", keys_url(&sim))),
        &sim.anthropic_admin_key(),
    ))
    .await;
    assert_eq!(status, 200);
    assert_eq!(key["id"], id.as_str());
    assert_eq!(key["type"], "api_key");
    assert_eq!(key["name"], "shape");
    assert_eq!(key["status"], "active");
    assert_eq!(key["workspace_id"], Value::Null);
    assert_eq!(key["created_by"], json!({"id":"user_abc","type":"user"}));
    assert_eq!(
        key["partial_key_hint"],
        format!("{}...{}", &value[..16], &value[value.len() - 4..])
    );
    assert!(
        key["partial_key_hint"]
            .as_str()
            .unwrap()
            .starts_with("sk-ant-api03-")
    );
    let created_at = key["created_at"].as_str().unwrap();
    assert_eq!(created_at.len(), "2025-09-29T00:00:00Z".len());
    assert!(created_at.ends_with('Z') && created_at.as_bytes()[10] == b'T');

    let (status, body) = send(with_key(
        client.get(format!("{}/apikey_missing", keys_url(&sim))),
        &sim.anthropic_admin_key(),
    ))
    .await;
    assert_eq!(status, 404);
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "not_found_error");
}

#[tokio::test]
async fn list_filters_by_status_and_pages_by_after_id() {
    let sim = Simulator::start().await.unwrap();
    let client = client();
    let admin = sim.anthropic_admin_key();
    let ids: Vec<String> = (0..5)
        .map(|i| sim.anthropic_create_key(&format!("k{i}")).1)
        .collect();
    update(&client, &sim, &ids[1], json!({"status":"inactive"})).await;
    update(&client, &sim, &ids[3], json!({"status":"archived"})).await;

    let list = |query: &str| {
        let request = with_key(client.get(format!("{}?{query}", keys_url(&sim))), &admin);
        let query = query.to_owned();
        async move {
            let (status, body) = send(request).await;
            assert_eq!(status, 200, "{query}: {body}");
            let ids: Vec<String> = body["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k["id"].as_str().unwrap().to_owned())
                .collect();
            (ids, body)
        }
    };

    let (all, body) = list("").await;
    assert_eq!(all, ids);
    assert_eq!(body["has_more"], false);
    assert_eq!(body["first_id"], ids[0].as_str());
    assert_eq!(body["last_id"], ids[4].as_str());
    assert_eq!(
        list("status=active").await.0,
        [ids[0].as_str(), ids[2].as_str(), ids[4].as_str()]
    );
    assert_eq!(list("status=inactive").await.0, [ids[1].as_str()]);
    assert_eq!(list("status=archived").await.0, [ids[3].as_str()]);

    let (page, body) = list("status=active&limit=2").await;
    assert_eq!(page, [ids[0].as_str(), ids[2].as_str()]);
    assert_eq!(body["has_more"], true);
    let (page, body) = list(&format!("status=active&limit=2&after_id={}", ids[2])).await;
    assert_eq!(page, [ids[4].as_str()]);
    assert_eq!(body["has_more"], false);

    for bad in [
        "status=gone",
        "limit=0",
        "limit=1001",
        "after_id=apikey_nope",
    ] {
        let request = with_key(client.get(format!("{}?{bad}", keys_url(&sim))), &admin);
        let (status, body) = send(request).await;
        assert_eq!(status, 400, "{bad}");
        assert_eq!(body["error"]["type"], "invalid_request_error");
    }
}

#[tokio::test]
async fn admin_endpoints_require_the_admin_key_and_version() {
    let sim = Simulator::start().await.unwrap();
    let client = client();
    let (value, id) = sim.anthropic_create_key("plain");

    for key in ["sk-ant-admin01-wrong", value.as_str()] {
        assert_eq!(
            send(with_key(client.get(keys_url(&sim)), key)).await,
            (401, invalid_key_body())
        );
        let url = format!("{}/{id}", keys_url(&sim));
        let request = with_key(client.post(url), key).json(&json!({"status":"inactive"}));
        assert_eq!(send(request).await, (401, invalid_key_body()));
    }
    assert_eq!(sim.anthropic_key_status(&id).as_deref(), Some("active"));

    let (status, _) = send(
        client
            .get(keys_url(&sim))
            .header("x-api-key", sim.anthropic_admin_key()),
    )
    .await;
    assert_eq!(status, 400);
}
