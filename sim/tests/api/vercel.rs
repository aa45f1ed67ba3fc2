use std::time::{Duration, Instant};

use keyrot_sim::{Simulator, VercelDeploymentInfo};
use reqwest::{Client, Method, RequestBuilder};
use serde_json::{Value, json};

use crate::{client, send};

/// A request to the simulated Vercel API with the right token and team.
pub fn vercel(client: &Client, sim: &Simulator, method: Method, path: &str) -> RequestBuilder {
    let separator = if path.contains('?') { '&' } else { '?' };
    let url = format!(
        "{}{path}{separator}teamId={}",
        sim.vercel_base_url(),
        sim.vercel_team_id()
    );
    client.request(method, url).bearer_auth(sim.vercel_token())
}

/// `POST /v10/projects/{project}/env` (with `?upsert=true` when asked).
pub async fn write_env(
    client: &Client,
    sim: &Simulator,
    project: &str,
    upsert: bool,
    body: Value,
) -> (u16, Value) {
    let path = format!("/v10/projects/{project}/env?upsert={upsert}");
    send(vercel(client, sim, Method::POST, &path).json(&body)).await
}

/// Redeploys the project's latest READY production deployment, as keyrot does.
pub async fn redeploy(client: &Client, sim: &Simulator, project: &str) -> (u16, Value) {
    let (status, list) = send(vercel(
        client,
        sim,
        Method::GET,
        &format!("/v6/deployments?projectId={project}&target=production&state=READY&limit=1"),
    ))
    .await;
    assert_eq!(status, 200, "{list}");
    let latest = &list["deployments"][0];
    let body =
        json!({"name": latest["name"], "deploymentId": latest["uid"], "target": "production"});
    send(vercel(client, sim, Method::POST, "/v13/deployments").json(&body)).await
}

/// Polls `GET /v13/deployments/{id}` until it leaves BUILDING (bounded).
pub async fn settled(client: &Client, sim: &Simulator, id: &str) -> Value {
    let started = Instant::now();
    loop {
        let (status, body) = send(vercel(
            client,
            sim,
            Method::GET,
            &format!("/v13/deployments/{id}"),
        ))
        .await;
        assert_eq!(status, 200, "{body}");
        if body["readyState"] != "BUILDING" {
            return body;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "deployment {id} still building"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn env_body(key: &str, value: &str, env_type: &str, comment: &str) -> Value {
    json!({"key": key, "value": value, "type": env_type, "target": ["production", "preview"], "comment": comment})
}

fn forbidden() -> Value {
    json!({"error":{"code":"forbidden","message":"Not authorized"}})
}

#[tokio::test]
async fn upsert_updates_the_variable_in_place_and_keeps_its_id() {
    let sim = Simulator::start().await.unwrap();
    let client = client();
    let project = sim.vercel_create_project("web");
    assert!(project.starts_with("prj_"));

    let (status, body) = write_env(
        &client,
        &sim,
        &project,
        false,
        env_body("API_KEY", "sk-one", "encrypted", "keyrot:111111111111"),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["failed"], json!([]));
    let id = body["created"]["id"].as_str().unwrap().to_owned();
    assert_eq!(body["created"]["key"], "API_KEY");
    assert_eq!(body["created"]["target"], json!(["production", "preview"]));

    // Without upsert an overlapping target is refused, as Vercel does.
    let (status, body) = write_env(
        &client,
        &sim,
        &project,
        false,
        json!({"key":"API_KEY","value":"sk-two","type":"encrypted","target":["preview"]}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "ENV_ALREADY_EXISTS");
    assert_eq!(body["error"]["envVarId"], id.as_str());

    let (status, body) = write_env(
        &client,
        &sim,
        &project,
        true,
        env_body("API_KEY", "sk-two", "sensitive", "keyrot:222222222222"),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["created"]["id"], id.as_str());
    assert_eq!(body["created"]["value"], "");

    let env = sim.vercel_env(&project);
    assert_eq!(env.len(), 1);
    assert_eq!(env[0].id, id);
    assert_eq!(env[0].value, "sk-two");
    assert_eq!(env[0].env_type, "sensitive");
    assert_eq!(env[0].targets, ["production", "preview"]);
    assert_eq!(env[0].comment.as_deref(), Some("keyrot:222222222222"));

    // An upsert without a comment keeps the old one; a different key is a new variable.
    let (status, _) = write_env(
        &client,
        &sim,
        "web",
        true,
        json!({"key":"API_KEY","value":"sk-three","type":"sensitive","target":["production","preview"]}),
    )
    .await;
    assert_eq!(status, 201);
    let (status, _) = write_env(
        &client,
        &sim,
        &project,
        true,
        json!({"key":"OTHER","value":"x","type":"plain","target":["development"]}),
    )
    .await;
    assert_eq!(status, 201);
    let env = sim.vercel_env(&project);
    assert_eq!(env.len(), 2);
    assert_eq!(
        (env[0].id.as_str(), env[0].value.as_str()),
        (id.as_str(), "sk-three")
    );
    assert_eq!(env[0].comment.as_deref(), Some("keyrot:222222222222"));
}

#[tokio::test]
async fn sensitive_values_never_come_back_from_the_list() {
    let sim = Simulator::start().await.unwrap();
    let client = client();
    let project = sim.vercel_create_project("web");
    let batch = json!([
        env_body("SENSITIVE", "sk-sensitive-value", "sensitive", "keyrot:aaaaaaaaaaaa"),
        {"key":"ENCRYPTED","value":"sk-encrypted-value","type":"encrypted","target":["production"]},
        {"key":"PLAIN","value":"plain-value","type":"plain","target":["development"]},
    ]);
    let (status, body) = write_env(&client, &sim, &project, false, batch).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["created"].as_array().unwrap().len(), 3);

    for query in ["", "?decrypt=true", "?decrypt=false"] {
        let (status, body) = send(vercel(
            &client,
            &sim,
            Method::GET,
            &format!("/v10/projects/{project}/env{query}"),
        ))
        .await;
        assert_eq!(status, 200);
        assert!(
            !body.to_string().contains("sk-sensitive-value"),
            "{query}: {body}"
        );
        let envs = body["envs"].as_array().unwrap();
        let value = |key: &str| {
            envs.iter().find(|v| v["key"] == key).unwrap()["value"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        assert_eq!(value("SENSITIVE"), "");
        assert_eq!(value("PLAIN"), "plain-value");
        // Encrypted values come back only when asked to decrypt, as on Vercel.
        assert_eq!(
            value("ENCRYPTED") == "sk-encrypted-value",
            query == "?decrypt=true",
            "{query}"
        );
        let sensitive = envs.iter().find(|v| v["key"] == "SENSITIVE").unwrap();
        assert_eq!(sensitive["comment"], "keyrot:aaaaaaaaaaaa");
        assert_eq!(sensitive["type"], "sensitive");
    }

    let (status, body) = send(vercel(
        &client,
        &sim,
        Method::GET,
        &format!("/v10/projects/{project}/env?target=development"),
    ))
    .await;
    assert_eq!(status, 200);
    let keys: Vec<&Value> = body["envs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| &v["key"])
        .collect();
    assert_eq!(keys, [&json!("PLAIN")]);
    for query in ["?target=staging", "?decrypt=yes"] {
        let (status, body) = send(vercel(
            &client,
            &sim,
            Method::GET,
            &format!("/v10/projects/{project}/env{query}"),
        ))
        .await;
        assert_eq!(status, 400, "{query}");
        assert_eq!(body["error"]["code"], "bad_request");
    }
    assert_eq!(sim.vercel_env(&project)[0].value, "sk-sensitive-value");
}

#[tokio::test]
async fn invalid_env_bodies_are_refused_whole() {
    let sim = Simulator::start().await.unwrap();
    let client = client();
    let project = sim.vercel_create_project("web");
    for bad in [
        json!({"value":"v","type":"plain","target":["production"]}),
        json!({"key":"K","type":"plain","target":["production"]}),
        json!({"key":"K","value":"v","type":"public","target":["production"]}),
        json!({"key":"K","value":"v","type":"plain","target":[]}),
        json!({"key":"K","value":"v","type":"plain","target":["staging"]}),
        json!({"key":"K","value":"v","type":"plain"}),
        json!("K=v"),
        json!([]),
        // One bad item spoils the batch: nothing is written.
        json!([{"key":"GOOD","value":"v","type":"plain","target":["production"]}, {"key":"BAD"}]),
    ] {
        let (status, body) = write_env(&client, &sim, &project, true, bad.clone()).await;
        assert_eq!(status, 400, "{bad}");
        assert_eq!(body["error"]["code"], "bad_request", "{bad}");
        assert!(body["error"]["message"].is_string());
    }
    let (status, body) = send(
        vercel(
            &client,
            &sim,
            Method::POST,
            &format!("/v10/projects/{project}/env"),
        )
        .body("{not json"),
    )
    .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (400, &json!("bad_request"))
    );
    assert!(sim.vercel_env(&project).is_empty());

    // In a batch a clash is reported in `failed` while the rest is written.
    write_env(
        &client,
        &sim,
        &project,
        false,
        json!({"key":"TAKEN","value":"v","type":"plain","target":["production"]}),
    )
    .await;
    let (status, body) = write_env(
        &client,
        &sim,
        &project,
        false,
        json!([
            {"key":"TAKEN","value":"w","type":"plain","target":["production","preview"]},
            {"key":"FREE","value":"w","type":"plain","target":["production"]},
        ]),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["created"].as_array().unwrap().len(), 1);
    assert_eq!(body["failed"][0]["error"]["code"], "ENV_ALREADY_EXISTS");
    assert_eq!(body["failed"][0]["error"]["key"], "TAKEN");
    assert_eq!(sim.vercel_env(&project).len(), 2);
}

#[tokio::test]
async fn variables_can_be_edited_and_deleted_by_id() {
    let sim = Simulator::start().await.unwrap();
    let client = client();
    let project = sim.vercel_create_project("web");
    let (_, body) = write_env(
        &client,
        &sim,
        &project,
        false,
        json!([
            {"key":"API_KEY","value":"one","type":"encrypted","target":["production"]},
            {"key":"API_KEY","value":"dev","type":"plain","target":["development"]},
        ]),
    )
    .await;
    let id = body["created"][0]["id"].as_str().unwrap().to_owned();
    let dev_id = body["created"][1]["id"].as_str().unwrap().to_owned();
    let env_path = |id: &str| format!("/v9/projects/{project}/env/{id}");

    let (status, body) = send(vercel(&client, &sim, Method::PATCH, &env_path(&id)).json(
        &json!({"value":"two","comment":"keyrot:bbbbbbbbbbbb","target":["production","preview"]}),
    ))
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], id.as_str());
    assert_eq!(body["comment"], "keyrot:bbbbbbbbbbbb");
    assert_eq!(body["target"], json!(["production", "preview"]));
    let edited = &sim.vercel_env(&project)[0];
    assert_eq!(
        (edited.value.as_str(), edited.env_type.as_str()),
        ("two", "encrypted")
    );

    for (bad, code) in [
        // Moving it onto development would clash with the other API_KEY.
        (json!({"target":["development"]}), "ENV_ALREADY_EXISTS"),
        (json!({"colour":"blue"}), "bad_request"),
        (json!({"type":"public"}), "bad_request"),
        (json!({"target":[]}), "bad_request"),
        (json!([]), "bad_request"),
    ] {
        let (status, body) =
            send(vercel(&client, &sim, Method::PATCH, &env_path(&id)).json(&bad)).await;
        assert_eq!(status, 400, "{bad}");
        assert_eq!(body["error"]["code"], code, "{bad}");
    }
    let (status, body) =
        send(vercel(&client, &sim, Method::PATCH, &env_path("nope")).json(&json!({"value":"x"})))
            .await;
    assert_eq!((status, &body["error"]["code"]), (404, &json!("not_found")));

    let (status, body) = send(vercel(&client, &sim, Method::DELETE, &env_path(&dev_id))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], dev_id.as_str());
    assert_eq!(body["key"], "API_KEY");
    let (status, _) = send(vercel(&client, &sim, Method::DELETE, &env_path(&dev_id))).await;
    assert_eq!(status, 404);
    assert_eq!(sim.vercel_env(&project).len(), 1);

    let (status, body) = send(vercel(
        &client,
        &sim,
        Method::GET,
        "/v10/projects/prj_missing/env",
    ))
    .await;
    assert_eq!(
        (status, body),
        (
            404,
            json!({"error":{"code":"not_found","message":"Project not found"}})
        )
    );
}

#[tokio::test]
async fn a_redeploy_serves_the_env_it_was_created_with_once_ready() {
    let sim = Simulator::start().await.unwrap();
    let client = client();
    let project = sim.vercel_create_project("web");
    sim.vercel_set_build_millis(400);
    write_env(
        &client,
        &sim,
        &project,
        true,
        env_body("API_KEY", "sk-one", "sensitive", "keyrot:1"),
    )
    .await;
    // Setting a variable changes nothing the service sees.
    assert_eq!(
        sim.vercel_served_value(&project, "production", "API_KEY"),
        None
    );

    let (status, created) = redeploy(&client, &sim, &project).await;
    assert_eq!(status, 200, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("dpl_"));
    assert_eq!(created["readyState"], "BUILDING");
    assert_eq!(created["target"], "production");
    assert_eq!(created["env"], json!(["API_KEY"]));

    // A change made after the deployment was created is not in its snapshot.
    write_env(
        &client,
        &sim,
        &project,
        true,
        env_body("API_KEY", "sk-two", "sensitive", "keyrot:2"),
    )
    .await;
    assert_eq!(
        sim.vercel_served_value(&project, "production", "API_KEY"),
        None,
        "served before the build finished"
    );
    let done = settled(&client, &sim, &id).await;
    assert_eq!(done["readyState"], "READY");
    assert!(done["ready"].as_i64().unwrap() >= done["createdAt"].as_i64().unwrap() + 400);
    assert_eq!(
        sim.vercel_served_value(&project, "production", "API_KEY")
            .as_deref(),
        Some("sk-one")
    );
    assert_eq!(
        sim.vercel_served_value(&project, "preview", "API_KEY"),
        None
    );

    let (_, second) = redeploy(&client, &sim, &project).await;
    let second = second["id"].as_str().unwrap().to_owned();
    settled(&client, &sim, &second).await;
    assert_eq!(
        sim.vercel_served_value("web", "production", "API_KEY")
            .as_deref(),
        Some("sk-two")
    );
    let states: Vec<(String, String)> = sim
        .vercel_deployments(&project)
        .into_iter()
        .map(|d: VercelDeploymentInfo| (d.target, d.ready_state))
        .collect();
    let ready = ("production".to_owned(), "READY".to_owned());
    assert_eq!(states, [ready.clone(), ready.clone(), ready]);
    assert_eq!(sim.vercel_deployments(&project)[2].id, second);
}

#[tokio::test]
async fn a_failed_or_canceled_deployment_leaves_the_served_value_alone() {
    let sim = Simulator::start().await.unwrap();
    let client = client();
    let project = sim.vercel_create_project("web");
    sim.vercel_set_build_millis(20);
    write_env(
        &client,
        &sim,
        &project,
        true,
        env_body("API_KEY", "sk-one", "encrypted", "keyrot:1"),
    )
    .await;
    let (_, first) = redeploy(&client, &sim, &project).await;
    let first = first["id"].as_str().unwrap().to_owned();
    settled(&client, &sim, &first).await;

    write_env(
        &client,
        &sim,
        &project,
        true,
        env_body("API_KEY", "sk-two", "encrypted", "keyrot:2"),
    )
    .await;
    sim.vercel_fail_next_deployments(1);
    let (status, failed) = redeploy(&client, &sim, &project).await;
    assert_eq!((status, &failed["readyState"]), (200, &json!("BUILDING")));
    let failed = settled(&client, &sim, failed["id"].as_str().unwrap()).await;
    assert_eq!(failed["readyState"], "ERROR");
    assert_eq!(failed["status"], "ERROR");
    assert!(failed["errorMessage"].is_string());
    assert_eq!(
        sim.vercel_served_value(&project, "production", "API_KEY")
            .as_deref(),
        Some("sk-one")
    );

    // The failed one is not what keyrot would redeploy next.
    let (_, list) = send(vercel(
        &client,
        &sim,
        Method::GET,
        &format!("/v6/deployments?projectId={project}&target=production&state=READY&limit=1"),
    ))
    .await;
    assert_eq!(list["deployments"][0]["uid"], first.as_str());
    let (_, list) = send(vercel(
        &client,
        &sim,
        Method::GET,
        &format!("/v6/deployments?projectId={project}&state=ERROR,CANCELED"),
    ))
    .await;
    assert_eq!(list["deployments"][0]["uid"], failed["id"]);
    assert_eq!(list["deployments"][0]["errorCode"], "BUILD_FAILED");

    sim.vercel_set_build_millis(60_000);
    let (_, building) = redeploy(&client, &sim, &project).await;
    let building = building["id"].as_str().unwrap().to_owned();
    assert!(sim.vercel_cancel_deployment(&building));
    assert!(!sim.vercel_cancel_deployment(&building));
    let canceled = settled(&client, &sim, &building).await;
    assert_eq!(canceled["readyState"], "CANCELED");
    assert!(canceled["canceledAt"].is_i64());
    assert_eq!(
        sim.vercel_served_value(&project, "production", "API_KEY")
            .as_deref(),
        Some("sk-one")
    );
}

#[tokio::test]
async fn deployments_list_newest_first_with_filters_and_pages() {
    let sim = Simulator::start().await.unwrap();
    let client = client();
    let project = sim.vercel_create_project("web");
    let other = sim.vercel_create_project("api");
    sim.vercel_set_build_millis(0);
    // Timestamps are milliseconds and `until` is exclusive, as on Vercel:
    // keep creation times apart so the page boundary is unambiguous.
    let pause = || tokio::time::sleep(Duration::from_millis(3));
    pause().await;
    let (_, a) = redeploy(&client, &sim, &project).await;
    pause().await;
    let (_, b) = redeploy(&client, &sim, &project).await;
    // A preview redeploy: no target.
    let (status, preview) = send(
        vercel(&client, &sim, Method::POST, "/v13/deployments")
            .json(&json!({"name":"web","deploymentId":b["id"]})),
    )
    .await;
    assert_eq!(status, 200, "{preview}");
    assert_eq!(preview["target"], Value::Null);

    let list = |query: String| {
        let request = vercel(
            &client,
            &sim,
            Method::GET,
            &format!("/v6/deployments{query}"),
        );
        async move { send(request).await }
    };
    let (status, page) = list(format!("?projectId={project}&target=production&limit=2")).await;
    assert_eq!(status, 200, "{page}");
    let uids: Vec<&Value> = page["deployments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| &d["uid"])
        .collect();
    assert_eq!(uids, [&b["id"], &a["id"]]);
    assert_eq!(page["pagination"]["count"], 2);
    let next = page["pagination"]["next"].as_i64().unwrap();
    let (_, rest) = list(format!(
        "?projectId={project}&target=production&limit=2&until={next}"
    ))
    .await;
    assert_eq!(rest["pagination"]["next"], Value::Null);
    let initial = &sim.vercel_deployments(&project)[0].id;
    assert_eq!(rest["deployments"][0]["uid"], initial.as_str());

    let (_, previews) = list("?projectId=web&target=preview".to_owned()).await;
    assert_eq!(previews["deployments"][0]["uid"], preview["id"]);
    assert_eq!(previews["deployments"].as_array().unwrap().len(), 1);
    let (_, all) = list(String::new()).await;
    assert_eq!(all["deployments"].as_array().unwrap().len(), 5);

    for (query, status) in [
        ("?state=DONE", 400),
        ("?limit=0", 400),
        ("?limit=many", 400),
        ("?projectId=prj_missing", 404),
    ] {
        assert_eq!(list(query.to_owned()).await.0, status, "{query}");
    }

    // Redeploys must name a deployment of that very project.
    let other_deployment = sim.vercel_deployments(&other)[0].id.clone();
    for (body, status) in [
        (json!({"name":"web","deploymentId":other_deployment}), 404),
        (json!({"name":"web","deploymentId":"dpl_missing"}), 404),
        (json!({"name":"nope","deploymentId":a["id"]}), 404),
        (json!({"name":"web"}), 400),
        (
            json!({"name":"web","deploymentId":a["id"],"target":"staging"}),
            400,
        ),
        (
            json!({"name":"web","deploymentId":a["id"],"colour":"blue"}),
            400,
        ),
        (json!(["web"]), 400),
    ] {
        let (got, answer) =
            send(vercel(&client, &sim, Method::POST, "/v13/deployments").json(&body)).await;
        assert_eq!(got, status, "{body}: {answer}");
        assert!(answer["error"]["code"].is_string());
    }
    let (status, body) = send(
        vercel(&client, &sim, Method::POST, "/v13/deployments").json(
            &json!({"name":"api","project":project,"deploymentId":a["id"],"target":"production"}),
        ),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["projectId"], project.as_str());

    // Deployments can be looked up by URL too.
    let url = a["url"].as_str().unwrap();
    let (status, by_url) = send(vercel(
        &client,
        &sim,
        Method::GET,
        &format!("/v13/deployments/{url}"),
    ))
    .await;
    assert_eq!((status, &by_url["id"]), (200, &a["id"]));
    let (status, body) = send(vercel(
        &client,
        &sim,
        Method::GET,
        "/v13/deployments/dpl_missing",
    ))
    .await;
    assert_eq!(
        (status, body),
        (
            404,
            json!({"error":{"code":"not_found","message":"Deployment not found"}})
        )
    );
}

#[tokio::test]
async fn every_vercel_endpoint_wants_the_token_and_the_team() {
    let sim = Simulator::start().await.unwrap();
    let client = client();
    let project = sim.vercel_create_project("web");
    let deployment = sim.vercel_deployments(&project)[0].id.clone();
    let base = sim.vercel_base_url();
    let team = sim.vercel_team_id();
    let calls = [
        (Method::GET, format!("/v10/projects/{project}/env")),
        (Method::POST, format!("/v10/projects/{project}/env")),
        (Method::PATCH, format!("/v9/projects/{project}/env/x")),
        (Method::DELETE, format!("/v9/projects/{project}/env/x")),
        (Method::GET, "/v6/deployments".to_owned()),
        (Method::POST, "/v13/deployments".to_owned()),
        (Method::GET, format!("/v13/deployments/{deployment}")),
    ];
    for (method, path) in calls {
        let attempts = [
            (
                format!("{base}{path}?teamId={team}"),
                Some("vcp_wrong".to_owned()),
            ),
            (format!("{base}{path}?teamId={team}"), None),
            (format!("{base}{path}"), Some(sim.vercel_token())),
            (
                format!("{base}{path}?teamId=team_other"),
                Some(sim.vercel_token()),
            ),
        ];
        for (url, token) in attempts {
            let mut request = client.request(method.clone(), &url).json(&json!({}));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            assert_eq!(send(request).await, (403, forbidden()), "{method} {url}");
        }
    }
    assert!(sim.vercel_env(&project).is_empty());
    assert_eq!(sim.vercel_deployments(&project).len(), 1);
}

/// The production domains serve one deployment: a new READY production deployment takes them, unless
/// an Instant Rollback pinned them to an older one; promoting moves them and ends the pin.
#[tokio::test]
async fn production_domains_follow_new_deployments_until_an_instant_rollback_pins_them() {
    let sim = Simulator::start().await.unwrap();
    sim.vercel_set_build_millis(10);
    let client = client();
    let project = sim.vercel_create_project("pinned");
    let first = sim
        .vercel_production_deployment(&project)
        .expect("the first deployment");
    let production = |body: &Value| {
        body["targets"]["production"]["id"]
            .as_str()
            .map(str::to_owned)
    };
    let describe = async || {
        let (status, body) = send(vercel(
            &client,
            &sim,
            Method::GET,
            &format!("/v9/projects/{project}"),
        ))
        .await;
        assert_eq!(status, 200, "{body}");
        body
    };

    let (_, second) = redeploy(&client, &sim, &project).await;
    let second = second["id"].as_str().unwrap().to_owned();
    assert_eq!(settled(&client, &sim, &second).await["readyState"], "READY");
    assert_eq!(
        production(&describe().await).as_deref(),
        Some(second.as_str())
    );

    assert!(sim.vercel_instant_rollback(&project, &first));
    let (_, third) = redeploy(&client, &sim, &project).await;
    let third = third["id"].as_str().unwrap().to_owned();
    let ready = settled(&client, &sim, &third).await;
    assert_eq!(ready["readyState"], "READY");
    assert_eq!(ready["aliasAssigned"], false, "{ready}");
    let body = describe().await;
    assert_eq!(production(&body).as_deref(), Some(first.as_str()), "pinned");
    assert_eq!(body["autoAssignCustomDomains"], false);

    let (status, _) = send(vercel(
        &client,
        &sim,
        Method::POST,
        &format!("/v10/projects/{project}/promote/{third}"),
    ))
    .await;
    assert_eq!(status, 201);
    assert_eq!(
        production(&describe().await).as_deref(),
        Some(third.as_str())
    );
    assert_eq!(sim.vercel_production_deployment(&project), Some(third));
}

/// A long env list comes in pages, newest first; `until=<next>` gives the older variables.
#[tokio::test]
async fn a_long_env_list_comes_in_pages_newest_first() {
    let sim = Simulator::start().await.unwrap();
    let client = client();
    let project = sim.vercel_create_project("many");
    for n in 0..60 {
        assert!(sim.vercel_add_plain_env(&project, &format!("VAR_{n:02}"), "v"));
    }
    let path = format!("/v10/projects/{project}/env");
    let (status, first) = send(vercel(&client, &sim, Method::GET, &path)).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["envs"].as_array().map(Vec::len), Some(50));
    assert_eq!(first["envs"][0]["key"], "VAR_59", "newest first");
    let next = first["pagination"]["next"].as_i64().expect("a next page");
    let (_, second) = send(vercel(
        &client,
        &sim,
        Method::GET,
        &format!("{path}?until={next}"),
    ))
    .await;
    let keys: Vec<&str> = second["envs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v["key"].as_str())
        .collect();
    assert_eq!(keys.len(), 10);
    assert_eq!(keys.last(), Some(&"VAR_00"));
    assert!(second["pagination"]["next"].is_null(), "{second}");
}
