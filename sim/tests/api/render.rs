use std::time::{Duration, Instant};

use keyrot_sim::Simulator;
use reqwest::{Client, Method, RequestBuilder};
use serde_json::{Value, json};

use crate::{client, send};

fn render(client: &Client, sim: &Simulator, method: Method, path: &str) -> RequestBuilder {
    client
        .request(method, format!("{}/v1{path}", sim.render_base_url()))
        .bearer_auth(sim.render_token())
}

async fn put_var(client: &Client, sim: &Simulator, service: &str, key: &str, value: &str) {
    let path = format!("/services/{service}/env-vars/{key}");
    let (status, body) =
        send(render(client, sim, Method::PUT, &path).json(&json!({ "value": value }))).await;
    assert_eq!((status, body), (200, json!({ "key": key, "value": value })));
}

async fn deploy(client: &Client, sim: &Simulator, service: &str) -> Value {
    let path = format!("/services/{service}/deploys");
    let (status, body) = send(render(client, sim, Method::POST, &path).json(&json!({}))).await;
    assert_eq!(status, 201, "{body}");
    body
}

/// Polls the deploy until its build is over (bounded).
async fn finished(client: &Client, sim: &Simulator, service: &str, id: &str) -> Value {
    let started = Instant::now();
    loop {
        let path = format!("/services/{service}/deploys/{id}");
        let (status, body) = send(render(client, sim, Method::GET, &path)).await;
        assert_eq!(status, 200, "{body}");
        if body["status"] != "build_in_progress" {
            return body;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{id} still building"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn is_render_error(body: &Value) -> bool {
    body["id"].is_string() && body["message"].is_string() && body.as_object().unwrap().len() == 2
}

#[tokio::test]
async fn a_deploy_serves_the_value_set_before_it_once_live() {
    let sim = Simulator::start().await.unwrap();
    let client = client();
    let service = sim.render_create_service();
    assert!(service.starts_with("srv-"));
    assert!(sim.render_token().starts_with("rnd_"));
    let first = sim.render_deploys(&service);
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].1, "live");

    let path = format!("/services/{service}/env-vars/API_KEY");
    let (status, body) = send(render(&client, &sim, Method::GET, &path)).await;
    assert_eq!(status, 404);
    assert!(is_render_error(&body), "{body}");

    put_var(&client, &sim, &service, "API_KEY", "sk-one").await;
    let (status, body) = send(render(&client, &sim, Method::GET, &path)).await;
    assert_eq!(
        (status, body),
        (200, json!({"key":"API_KEY","value":"sk-one"}))
    );
    assert_eq!(
        sim.render_env_value(&service, "API_KEY").as_deref(),
        Some("sk-one")
    );
    assert_eq!(sim.render_served_value(&service, "API_KEY"), None);

    let created = deploy(&client, &sim, &service).await;
    let id = created["id"].as_str().unwrap();
    assert!(id.starts_with("dep-"));
    assert_eq!(created["status"], "build_in_progress");
    assert_eq!(created["trigger"], "api");
    assert!(created["createdAt"].is_string() && created["updatedAt"].is_string());
    // Set after the deploy started: not in its snapshot.
    put_var(&client, &sim, &service, "API_KEY", "sk-two").await;
    assert_eq!(
        sim.render_served_value(&service, "API_KEY"),
        None,
        "served before the build finished"
    );

    let done = finished(&client, &sim, &service, id).await;
    assert_eq!(done["status"], "live");
    assert!(done["finishedAt"].is_string());
    assert_eq!(
        sim.render_served_value(&service, "API_KEY").as_deref(),
        Some("sk-one")
    );
    let statuses: Vec<String> = sim
        .render_deploys(&service)
        .into_iter()
        .map(|(_, status)| status)
        .collect();
    assert_eq!(statuses, ["deactivated", "live"]);

    let second = deploy(&client, &sim, &service).await;
    finished(&client, &sim, &service, second["id"].as_str().unwrap()).await;
    assert_eq!(
        sim.render_served_value(&service, "API_KEY").as_deref(),
        Some("sk-two")
    );
}

#[tokio::test]
async fn a_failed_build_leaves_the_live_deploy_serving() {
    let sim = Simulator::start().await.unwrap();
    let client = client();
    let service = sim.render_create_service();
    sim.render_set_build_millis(20);
    put_var(&client, &sim, &service, "API_KEY", "sk-one").await;
    let first = deploy(&client, &sim, &service).await;
    finished(&client, &sim, &service, first["id"].as_str().unwrap()).await;

    put_var(&client, &sim, &service, "API_KEY", "sk-two").await;
    sim.render_fail_next_deploys(1);
    let failed = deploy(&client, &sim, &service).await;
    let failed = finished(&client, &sim, &service, failed["id"].as_str().unwrap()).await;
    assert_eq!(failed["status"], "build_failed");
    assert_eq!(
        sim.render_served_value(&service, "API_KEY").as_deref(),
        Some("sk-one")
    );
    let statuses: Vec<String> = sim
        .render_deploys(&service)
        .into_iter()
        .map(|(_, status)| status)
        .collect();
    assert_eq!(statuses, ["deactivated", "live", "build_failed"]);

    sim.render_set_build_millis(60_000);
    let building = deploy(&client, &sim, &service).await;
    let building = building["id"].as_str().unwrap();
    assert!(sim.render_cancel_deploy(&service, building));
    let canceled = finished(&client, &sim, &service, building).await;
    assert_eq!(canceled["status"], "canceled");
    assert_eq!(
        sim.render_served_value(&service, "API_KEY").as_deref(),
        Some("sk-one")
    );
}

#[tokio::test]
async fn render_refuses_bad_tokens_unknown_services_and_bad_bodies() {
    let sim = Simulator::start().await.unwrap();
    let client = client();
    let service = sim.render_create_service();
    let base = format!("{}/v1", sim.render_base_url());
    let deploy_id = sim.render_deploys(&service)[0].0.clone();

    let paths = [
        (Method::GET, format!("/services/{service}/env-vars/K")),
        (Method::PUT, format!("/services/{service}/env-vars/K")),
        (Method::POST, format!("/services/{service}/deploys")),
        (
            Method::GET,
            format!("/services/{service}/deploys/{deploy_id}"),
        ),
    ];
    for (method, path) in &paths {
        for token in [Some("rnd_wrong"), None] {
            let mut request = client
                .request(method.clone(), format!("{base}{path}"))
                .json(&json!({"value":"v"}));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let (status, body) = send(request).await;
            assert_eq!(status, 401, "{method} {path}");
            assert!(is_render_error(&body), "{body}");
        }
        let unknown = path.replace(&service, "srv-missing");
        let (status, body) =
            send(render(&client, &sim, method.clone(), &unknown).json(&json!({"value":"v"}))).await;
        assert_eq!(status, 404, "{method} {unknown}");
        assert!(is_render_error(&body), "{body}");
    }

    let var = format!("/services/{service}/env-vars/K");
    for bad in [json!({}), json!({"value": 5}), json!("v")] {
        let (status, body) = send(render(&client, &sim, Method::PUT, &var).json(&bad)).await;
        assert_eq!(status, 400, "{bad}");
        assert!(is_render_error(&body), "{body}");
    }
    let deploys = format!("/services/{service}/deploys");
    let (status, _) = send(
        render(&client, &sim, Method::POST, &deploys).json(&json!({"clearCache":"sometimes"})),
    )
    .await;
    assert_eq!(status, 400);
    let (status, _) = send(render(&client, &sim, Method::POST, &deploys).body("not json")).await;
    assert_eq!(status, 400);
    assert_eq!(sim.render_deploys(&service).len(), 1);

    // No body at all, or asking to keep the cache, are both fine.
    let (status, _) = send(render(&client, &sim, Method::POST, &deploys)).await;
    assert_eq!(status, 201);
    let (status, _) = send(
        render(&client, &sim, Method::POST, &deploys).json(&json!({"clearCache":"do_not_clear"})),
    )
    .await;
    assert_eq!(status, 201);
    let (status, body) = send(render(
        &client,
        &sim,
        Method::GET,
        &format!("/services/{service}/deploys/dep-missing"),
    ))
    .await;
    assert_eq!(status, 404);
    assert!(is_render_error(&body), "{body}");
}
