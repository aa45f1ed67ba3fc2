use std::time::{Duration, Instant};

use keyrot_sim::{Fault, FaultKind, Simulator};
use reqwest::Client;

use crate::{client, read, send};

fn models_fault(nth: u32, times: u32, kind: FaultKind) -> Fault {
    Fault {
        method: Some("GET".to_owned()),
        path_prefix: "/v1/models".to_owned(),
        nth,
        times,
        kind,
    }
}

/// A simulator with one working OpenAI user key.
async fn seeded() -> (Simulator, String) {
    let sim = Simulator::start().await.unwrap();
    let project = sim.openai_create_project();
    let (key, _) = sim.openai_create_user_key(&project);
    (sim, key)
}

async fn models_status(client: &Client, sim: &Simulator, key: &str) -> u16 {
    send(
        client
            .get(format!("{}/models", sim.openai_base_url()))
            .bearer_auth(key),
    )
    .await
    .0
}

#[tokio::test]
async fn status_fault_fires_on_the_nth_call_only_with_retry_after() {
    let (sim, key) = seeded().await;
    let client = client();
    sim.inject(models_fault(
        2,
        1,
        FaultKind::Status {
            code: 429,
            retry_after_secs: Some(1),
        },
    ));

    assert_eq!(models_status(&client, &sim, &key).await, 200);
    let response = client
        .get(format!("{}/models", sim.openai_base_url()))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["retry-after"], "1");
    let (status, body) = read(response).await;
    assert_eq!(status, 429);
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
    assert!(body["error"]["message"].is_string());
    let response = client
        .get(format!("{}/models", sim.openai_base_url()))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("retry-after").is_none());

    let statuses: Vec<u16> = sim.calls().iter().map(|c| c.status).collect();
    assert_eq!(statuses, [200, 429, 200]);
}

#[tokio::test]
async fn times_counts_consecutive_matching_calls_and_other_paths_are_untouched() {
    let (sim, key) = seeded().await;
    let client = client();
    sim.inject(models_fault(
        1,
        3,
        FaultKind::Status {
            code: 503,
            retry_after_secs: None,
        },
    ));

    // A call on another path neither fires nor counts.
    let (status, _) = send(
        client
            .get(format!(
                "{}/organization/projects/x/service_accounts",
                sim.openai_base_url()
            ))
            .bearer_auth(sim.openai_admin_key()),
    )
    .await;
    assert_eq!(status, 404);

    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(models_status(&client, &sim, &key).await);
    }
    assert_eq!(statuses, [503, 503, 503, 200]);

    sim.inject(models_fault(
        1,
        10,
        FaultKind::Status {
            code: 500,
            retry_after_secs: None,
        },
    ));
    assert_eq!(models_status(&client, &sim, &key).await, 500);
    sim.clear_faults();
    assert_eq!(models_status(&client, &sim, &key).await, 200);
}

#[tokio::test]
async fn delay_fault_stalls_then_answers_normally() {
    let (sim, key) = seeded().await;
    let client = client();
    sim.inject(models_fault(1, 1, FaultKind::Delay { millis: 300 }));

    let started = Instant::now();
    assert_eq!(models_status(&client, &sim, &key).await, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));

    let started = Instant::now();
    assert_eq!(models_status(&client, &sim, &key).await, 200);
    assert!(started.elapsed() < Duration::from_millis(300));
}

#[tokio::test]
async fn drop_fault_closes_the_connection_without_a_response() {
    let (sim, key) = seeded().await;
    let client = client();
    // Warm the pool first so the drop also hits a reused keep-alive connection.
    assert_eq!(models_status(&client, &sim, &key).await, 200);
    sim.inject(Fault {
        method: None,
        path_prefix: "/v1/".to_owned(),
        nth: 1,
        times: 1,
        kind: FaultKind::Drop,
    });

    let error = client
        .get(format!("{}/models", sim.openai_base_url()))
        .bearer_auth(&key)
        .send()
        .await
        .expect_err("a dropped connection must not produce a response");
    assert!(error.status().is_none(), "{error:?}");

    // Only that one call was dropped; the next one gets a fresh connection and an answer.
    assert_eq!(models_status(&client, &sim, &key).await, 200);
    let statuses: Vec<u16> = sim.calls().iter().map(|c| c.status).collect();
    assert_eq!(statuses, [200, 0, 200]);
}

#[tokio::test]
async fn calls_record_method_path_and_status_but_not_control_requests() {
    let (sim, key) = seeded().await;
    let client = client();
    assert_eq!(models_status(&client, &sim, &key).await, 200);
    let (status, _) = send(
        client
            .get(format!(
                "{}/organization/projects/p/service_accounts?limit=5",
                sim.openai_base_url()
            ))
            .bearer_auth("wrong"),
    )
    .await;
    assert_eq!(status, 401);
    let (status, _) = send(client.delete(format!("{}/v1/unknown", sim.base_url()))).await;
    assert_eq!(status, 404);
    let (status, _) = send(client.get(format!("{}/_sim/state", sim.base_url()))).await;
    assert_eq!(status, 200);

    let calls: Vec<(String, String, u16)> = sim
        .calls()
        .into_iter()
        .map(|c| (c.method, c.path, c.status))
        .collect();
    assert_eq!(
        calls,
        [
            ("GET".to_owned(), "/v1/models".to_owned(), 200),
            (
                "GET".to_owned(),
                "/v1/organization/projects/p/service_accounts".to_owned(),
                401
            ),
            ("DELETE".to_owned(), "/v1/unknown".to_owned(), 404),
        ]
    );
}

#[tokio::test]
async fn control_requests_are_never_faulted() {
    let sim = Simulator::start().await.unwrap();
    sim.inject(Fault {
        method: None,
        path_prefix: "/".to_owned(),
        nth: 1,
        times: 100,
        kind: FaultKind::Drop,
    });
    let (status, body) = send(client().get(format!("{}/_sim/state", sim.base_url()))).await;
    assert_eq!(status, 200);
    assert!(body["openai"]["admin_key"].is_string());
    assert!(sim.calls().is_empty());
}

#[tokio::test]
async fn faults_apply_to_vercel_and_render_routes_in_their_error_shapes() {
    let sim = Simulator::start().await.unwrap();
    let client = client();
    let project = sim.vercel_create_project("web");
    let service = sim.render_create_service();
    let env = |sim: &Simulator| {
        crate::vercel::vercel(
            &client,
            sim,
            reqwest::Method::GET,
            &format!("/v10/projects/{project}/env"),
        )
    };
    sim.inject(Fault {
        method: Some("GET".to_owned()),
        path_prefix: "/v10/projects/".to_owned(),
        nth: 2,
        times: 1,
        kind: FaultKind::Status {
            code: 429,
            retry_after_secs: Some(2),
        },
    });
    assert_eq!(send(env(&sim)).await.0, 200);
    let response = env(&sim).send().await.unwrap();
    assert_eq!(response.headers()["retry-after"], "2");
    let (status, body) = read(response).await;
    assert_eq!(status, 429);
    assert_eq!(body["error"]["code"], "rate_limited");
    assert!(body["error"]["message"].is_string());
    assert_eq!(send(env(&sim)).await.0, 200);

    let deploys = format!("{}/v1/services/{service}/deploys", sim.render_base_url());
    sim.inject(Fault {
        method: Some("POST".to_owned()),
        path_prefix: "/v1/services/".to_owned(),
        nth: 1,
        times: 1,
        kind: FaultKind::Status {
            code: 503,
            retry_after_secs: None,
        },
    });
    let (status, body) = send(client.post(&deploys).bearer_auth(sim.render_token())).await;
    assert_eq!(status, 503);
    assert!(
        body["id"].is_string() && body["message"].is_string(),
        "{body}"
    );
    // The faulted call never reached Render's logic: no deploy was started.
    assert_eq!(sim.render_deploys(&service).len(), 1);

    sim.inject(Fault {
        method: None,
        path_prefix: "/v13/deployments".to_owned(),
        nth: 1,
        times: 1,
        kind: FaultKind::Drop,
    });
    let deployment = sim.vercel_deployments(&project)[0].id.clone();
    let dropped = crate::vercel::vercel(
        &client,
        &sim,
        reqwest::Method::GET,
        &format!("/v13/deployments/{deployment}"),
    )
    .send()
    .await;
    assert!(dropped.is_err());

    sim.inject(Fault {
        method: None,
        path_prefix: "/v6/".to_owned(),
        nth: 1,
        times: 1,
        kind: FaultKind::Delay { millis: 200 },
    });
    let started = Instant::now();
    let (status, _) = send(crate::vercel::vercel(
        &client,
        &sim,
        reqwest::Method::GET,
        "/v6/deployments",
    ))
    .await;
    assert_eq!(status, 200);
    assert!(started.elapsed() >= Duration::from_millis(200));

    let calls: Vec<(String, u16)> = sim
        .calls()
        .into_iter()
        .map(|c| (c.path, c.status))
        .collect();
    let env_path = format!("/v10/projects/{project}/env");
    assert_eq!(
        calls,
        [
            (env_path.clone(), 200),
            (env_path.clone(), 429),
            (env_path, 200),
            (format!("/v1/services/{service}/deploys"), 503),
            (format!("/v13/deployments/{deployment}"), 0),
            ("/v6/deployments".to_owned(), 200),
        ]
    );
}
