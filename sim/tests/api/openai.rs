use std::collections::HashSet;
use std::time::Duration;

use keyrot_sim::Simulator;
use reqwest::Client;
use serde_json::{Value, json};

use crate::{client, send};

async fn models(client: &Client, sim: &Simulator, key: &str) -> (u16, Value) {
    send(
        client
            .get(format!("{}/models", sim.openai_base_url()))
            .bearer_auth(key),
    )
    .await
}

fn accounts_url(sim: &Simulator, project: &str) -> String {
    format!(
        "{}/organization/projects/{project}/service_accounts",
        sim.openai_base_url()
    )
}

fn api_key_url(sim: &Simulator, project: &str, key_id: &str) -> String {
    format!(
        "{}/organization/projects/{project}/api_keys/{key_id}",
        sim.openai_base_url()
    )
}

async fn mint(client: &Client, sim: &Simulator, project: &str, name: &str) -> Value {
    let (status, body) = send(
        client
            .post(accounts_url(sim, project))
            .bearer_auth(sim.openai_admin_key())
            .json(&json!({ "name": name })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test]
async fn minted_key_works_and_records_last_use() {
    let sim = Simulator::start().await.unwrap();
    let client = client();
    let project = sim.openai_create_project();

    let account = mint(&client, &sim, &project, "keyrot-1").await;
    assert_eq!(account["object"], "organization.project.service_account");
    assert_eq!(account["name"], "keyrot-1");
    assert_eq!(account["role"], "member");
    assert!(account["id"].as_str().unwrap().starts_with("svc_acct_"));
    let api_key = &account["api_key"];
    assert_eq!(
        api_key["object"],
        "organization.project.service_account.api_key"
    );
    assert_eq!(api_key["name"], "Secret Key");
    assert_eq!(api_key["created_at"], account["created_at"]);
    let value = api_key["value"].as_str().unwrap();
    assert_eq!(value.strip_prefix("sk-svcacct-").unwrap().len(), 64);
    let key_id = api_key["id"].as_str().unwrap();
    assert!(key_id.starts_with("key_"));

    assert_eq!(
        sim.openai_service_accounts(&project),
        [keyrot_sim::ServiceAccountInfo {
            id: account["id"].as_str().unwrap().to_owned(),
            name: "keyrot-1".to_owned(),
            created_at: account["created_at"].as_i64().unwrap(),
            api_key_id: Some(key_id.to_owned()),
        }]
    );
    assert!(sim.openai_key_works(value));
    assert_eq!(sim.openai_last_used_at(key_id), None);

    let (status, body) = models(&client, &sim, value).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"object":"list","data":[{"id":"gpt-4o-mini","object":"model","created":1700000000,"owned_by":"system"}]})
    );
    let first_use = sim.openai_last_used_at(key_id).unwrap();

    // Unix seconds: wait for the clock to tick so the second use is visibly later.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(models(&client, &sim, value).await.0, 200);
    let second_use = sim.openai_last_used_at(key_id).unwrap();
    assert!(second_use > first_use);

    let (status, body) = send(
        client
            .get(api_key_url(&sim, &project, key_id))
            .bearer_auth(sim.openai_admin_key()),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["object"], "organization.project.api_key");
    assert_eq!(body["last_used_at"], second_use);
    assert_eq!(body["owner_project_access"], "active");
    assert_eq!(
        body["redacted_value"],
        format!("sk-...{}", &value[value.len() - 4..])
    );
    assert_eq!(body["owner"]["type"], "service_account");
    assert_eq!(body["owner"]["service_account"]["id"], account["id"]);
    assert_eq!(body["owner"]["service_account"]["role"], "member");
}

#[tokio::test]
async fn deleting_the_account_revokes_its_key() {
    let sim = Simulator::start().await.unwrap();
    let client = client();
    let project = sim.openai_create_project();
    let account = mint(&client, &sim, &project, "doomed").await;
    let account_id = account["id"].as_str().unwrap();
    let value = account["api_key"]["value"].as_str().unwrap();
    let key_id = account["api_key"]["id"].as_str().unwrap();
    let url = format!("{}/{account_id}", accounts_url(&sim, &project));

    let (status, body) = send(client.delete(&url).bearer_auth(sim.openai_admin_key())).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"object":"organization.project.service_account.deleted","id":account_id,"deleted":true})
    );

    let (status, body) = models(&client, &sim, value).await;
    assert_eq!(status, 401);
    let redacted = format!("sk-*****{}", &value[value.len() - 4..]);
    assert_eq!(
        body,
        json!({"error":{
            "message": format!("Incorrect API key provided: {redacted}. You can find your API key at https://platform.openai.com/account/api-keys."),
            "type":"invalid_request_error","param":null,"code":"invalid_api_key"}})
    );
    assert!(!sim.openai_key_works(value));
    assert!(sim.openai_service_accounts(&project).is_empty());

    let (status, body) = send(client.delete(&url).bearer_auth(sim.openai_admin_key())).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["type"], "invalid_request_error");
    let (status, _) = send(
        client
            .get(api_key_url(&sim, &project, key_id))
            .bearer_auth(sim.openai_admin_key()),
    )
    .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn listing_pages_through_accounts_in_creation_order() {
    let sim = Simulator::start().await.unwrap();
    let client = client();
    let project = sim.openai_create_project();
    let mut created = Vec::new();
    for i in 0..25 {
        created.push(mint(&client, &sim, &project, &format!("acct-{i}")).await["id"].clone());
    }

    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = Vec::new();
    loop {
        let url = match &after {
            Some(cursor) => format!("{}?limit=10&after={cursor}", accounts_url(&sim, &project)),
            None => format!("{}?limit=10", accounts_url(&sim, &project)),
        };
        let (status, page) = send(client.get(url).bearer_auth(sim.openai_admin_key())).await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["object"], "list");
        let data = page["data"].as_array().unwrap();
        assert_eq!(page["first_id"], data[0]["id"]);
        assert_eq!(page["last_id"], data[data.len() - 1]["id"]);
        for item in data {
            assert_eq!(item["object"], "organization.project.service_account");
            assert_eq!(item["role"], "member");
            assert!(item["created_at"].is_i64());
            seen.push(item["id"].clone());
        }
        pages.push(data.len());
        if !page["has_more"].as_bool().unwrap() {
            break;
        }
        after = Some(page["last_id"].as_str().unwrap().to_owned());
    }
    assert_eq!(pages, [10, 10, 5]);
    assert_eq!(seen, created);
    assert_eq!(
        seen.iter()
            .map(Value::to_string)
            .collect::<HashSet<_>>()
            .len(),
        25
    );

    // Default limit is 20; out-of-range limits are refused.
    let (_, page) = send(
        client
            .get(accounts_url(&sim, &project))
            .bearer_auth(sim.openai_admin_key()),
    )
    .await;
    assert_eq!(page["data"].as_array().unwrap().len(), 20);
    assert_eq!(page["has_more"], true);
    for bad in ["0", "101", "ten"] {
        let (status, body) = send(
            client
                .get(format!("{}?limit={bad}", accounts_url(&sim, &project)))
                .bearer_auth(sim.openai_admin_key()),
        )
        .await;
        assert_eq!(status, 400, "limit={bad}");
        assert_eq!(body["error"]["param"], "limit");
    }

    // An empty project lists as an empty page with null cursors.
    let empty = sim.openai_create_project();
    let (_, page) = send(
        client
            .get(accounts_url(&sim, &empty))
            .bearer_auth(sim.openai_admin_key()),
    )
    .await;
    assert_eq!(
        page,
        json!({"object":"list","data":[],"first_id":null,"last_id":null,"has_more":false})
    );
}

#[tokio::test]
async fn cursor_survives_deletion_of_the_account_it_names() {
    let sim = Simulator::start().await.unwrap();
    let client = client();
    let project = sim.openai_create_project();
    for i in 0..3 {
        mint(&client, &sim, &project, &format!("acct-{i}")).await;
    }
    let accounts = sim.openai_service_accounts(&project);
    let url = format!("{}/{}", accounts_url(&sim, &project), accounts[0].id);
    assert_eq!(
        send(client.delete(url).bearer_auth(sim.openai_admin_key()))
            .await
            .0,
        200
    );

    let (status, page) = send(
        client
            .get(format!(
                "{}?after={}",
                accounts_url(&sim, &project),
                accounts[0].id
            ))
            .bearer_auth(sim.openai_admin_key()),
    )
    .await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [accounts[1].id.as_str(), accounts[2].id.as_str()]);
}

#[tokio::test]
async fn user_keys_can_be_deleted_but_service_account_keys_cannot() {
    let sim = Simulator::start().await.unwrap();
    let client = client();
    let project = sim.openai_create_project();
    let admin = sim.openai_admin_key();

    let (value, key_id) = sim.openai_create_user_key(&project);
    assert_eq!(value.strip_prefix("sk-proj-").unwrap().len(), 48);
    assert_eq!(models(&client, &sim, &value).await.0, 200);
    let (status, body) = send(
        client
            .get(api_key_url(&sim, &project, &key_id))
            .bearer_auth(&admin),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["owner"]["type"], "user");
    assert_eq!(body["owner"]["user"]["email"], "person@example.com");
    assert_eq!(body["owner"]["user"]["role"], "owner");
    assert!(body["last_used_at"].is_i64());

    let (status, body) = send(
        client
            .delete(api_key_url(&sim, &project, &key_id))
            .bearer_auth(&admin),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"object":"organization.project.api_key.deleted","id":key_id,"deleted":true})
    );
    assert_eq!(models(&client, &sim, &value).await.0, 401);
    assert!(!sim.openai_key_works(&value));
    let (status, _) = send(
        client
            .get(api_key_url(&sim, &project, &key_id))
            .bearer_auth(&admin),
    )
    .await;
    assert_eq!(status, 404);

    let account = mint(&client, &sim, &project, "svc").await;
    let sa_key_id = account["api_key"]["id"].as_str().unwrap();
    let (status, body) = send(
        client
            .delete(api_key_url(&sim, &project, sa_key_id))
            .bearer_auth(&admin),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        body["error"]["message"],
        "Cannot delete a service account's API key; delete the service account"
    );
    assert!(sim.openai_key_works(account["api_key"]["value"].as_str().unwrap()));
}

#[tokio::test]
async fn admin_endpoints_require_the_admin_key() {
    let sim = Simulator::start().await.unwrap();
    let client = client();
    let project = sim.openai_create_project();
    let (user_key, _) = sim.openai_create_user_key(&project);
    let invalid_admin = json!({"error":{"message":"Invalid admin key","type":"invalid_request_error","param":null,"code":"invalid_api_key"}});

    for request in [
        client.get(accounts_url(&sim, &project)),
        client
            .get(accounts_url(&sim, &project))
            .bearer_auth(&user_key),
        client
            .post(accounts_url(&sim, &project))
            .bearer_auth("sk-admin-wrong")
            .json(&json!({"name":"x"})),
    ] {
        assert_eq!(send(request).await, (401, invalid_admin.clone()));
    }
    assert!(sim.openai_service_accounts(&project).is_empty());

    // The admin key is not an inference key.
    let (status, body) = models(&client, &sim, &sim.openai_admin_key()).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "invalid_api_key");

    let (status, body) = send(
        client
            .get(accounts_url(&sim, "proj_nope"))
            .bearer_auth(sim.openai_admin_key()),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(
        body,
        json!({"error":{"message":"Project not found","type":"invalid_request_error","param":null,"code":null}})
    );

    for body in [json!({}), json!({"name": ""})] {
        let (status, reply) = send(
            client
                .post(accounts_url(&sim, &project))
                .bearer_auth(sim.openai_admin_key())
                .json(&body),
        )
        .await;
        assert_eq!(status, 400);
        assert_eq!(reply["error"]["param"], "name");
    }
}

#[tokio::test]
async fn unknown_routes_get_an_openai_style_404() {
    let sim = Simulator::start().await.unwrap();
    let (status, body) = send(client().get(format!("{}/v1/nothing?x=1", sim.base_url()))).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["message"], "Invalid URL (GET /v1/nothing)");
    assert_eq!(body["error"]["type"], "invalid_request_error");
    let (status, _) = send(client().put(format!("{}/models", sim.openai_base_url()))).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn missing_bearer_token_is_a_401() {
    let sim = Simulator::start().await.unwrap();
    let (status, body) = send(client().get(format!("{}/models", sim.openai_base_url()))).await;
    assert_eq!(status, 401);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("You didn't provide an API key")
    );
}

#[tokio::test]
async fn admin_keys_are_created_with_an_expiry_listed_and_deleted() {
    let sim = Simulator::start().await.unwrap();
    let client = client();
    let url = format!("{}/organization/admin_api_keys", sim.openai_base_url());
    let first = sim.openai_admin_key();

    let (status, created) = send(
        client
            .post(&url)
            .bearer_auth(&first)
            .json(&json!({ "name": "keyrot-next", "expires_in_seconds": 86_400 })),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["object"], "organization.admin_api_key");
    let (id, value) = (
        created["id"].as_str().unwrap().to_owned(),
        created["value"].as_str().unwrap().to_owned(),
    );
    assert!(value.starts_with("sk-admin-"), "{created}");
    let expires = created["expires_at"].as_i64().unwrap() - created["created_at"].as_i64().unwrap();
    assert_eq!(expires, 86_400);

    // The new key lists both, with no values; a limit pages them.
    let (status, page) = send(client.get(format!("{url}?limit=1")).bearer_auth(&value)).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["data"].as_array().unwrap().len(), 1);
    assert_eq!(page["has_more"], true);
    assert!(page["data"][0].get("value").is_none());
    let (_, bad) = send(client.post(&url).bearer_auth(&value).json(&json!({}))).await;
    assert_eq!(bad["error"]["param"], "name", "{bad}");

    // The new key deletes the first, which is refused from then on.
    let first_id = &sim.live_credentials(keyrot_sim::CredentialSystem::Openai)[0];
    let (status, deleted) = send(
        client
            .delete(format!("{url}/{first_id}"))
            .bearer_auth(&value),
    )
    .await;
    assert_eq!(status, 200, "{deleted}");
    assert_eq!(deleted["object"], "organization.admin_api_key.deleted");
    let (status, _) = send(client.get(&url).bearer_auth(&first)).await;
    assert_eq!(status, 401);
    let (status, _) = send(
        client
            .delete(format!("{url}/{first_id}"))
            .bearer_auth(&value),
    )
    .await;
    assert_eq!(status, 404, "a deleted key is gone");
    let (status, one) = send(client.get(format!("{url}/{id}")).bearer_auth(&value)).await;
    assert_eq!(status, 200);
    assert!(one["last_used_at"].as_i64().is_some(), "{one}");
}
