//! A catalogue of malformed input: events, secret values, tags and admin secrets. Each is refused with
//! an error that names what is wrong, and changes nothing in Secrets Manager or at the provider.

use serde_json::{Value, json};

use crate::support::{Labels, World, assert_no_key};

const KEY: &str = "sk-proj-BADINPUTbadinputBADINPUTbadinput0001";

struct Case {
    what: &'static str,
    value: Option<Value>,
    tags: Vec<(&'static str, &'static str)>,
    expected: Vec<&'static str>,
}

fn value_case(what: &'static str, value: Value, expected: &[&'static str]) -> Case {
    Case {
        what,
        value: Some(value),
        tags: vec![],
        expected: expected.to_vec(),
    }
}

fn tag_case(
    what: &'static str,
    tag: (&'static str, &'static str),
    expected: &[&'static str],
) -> Case {
    Case {
        what,
        value: None,
        tags: vec![tag],
        expected: expected.to_vec(),
    }
}

async fn snapshot(world: &World, name: &str) -> (Labels, Option<Value>, Option<Value>, usize) {
    let pending = world.moto.version_of(name, "AWSPENDING").await;
    let pending_value = match &pending {
        Some(v) => world.moto.value(name, "AWSPENDING", Some(v)).await,
        None => None,
    };
    let mints = world
        .sim
        .calls()
        .iter()
        .filter(|c| c.method == "POST")
        .count();
    (
        world.moto.labels(name).await,
        world.moto.value(name, "AWSCURRENT", None).await,
        pending_value,
        mints,
    )
}

#[tokio::test]
async fn every_malformed_input_is_refused_by_name_and_changes_nothing() {
    let world = World::new().await;
    let project = world.sim.openai_create_project();
    let admin = world.admin_secret(&world.sim.openai_admin_key()).await;
    let empty_admin = world.admin_secret(" ").await;
    let wrong_admin = world.admin_secret("sk-admin-wrong-wrong").await;
    let openai = |admin: &str| json!({"provider": "openai", "api_key": KEY, "openai": {"project_id": project, "admin_key_secret": admin}});
    let generic = |extra: Value| {
        let mut value = json!({"provider": "generic", "api_key": KEY});
        if let (Some(v), Some(e)) = (value.as_object_mut(), extra.as_object()) {
            v.extend(e.clone());
        }
        value
    };
    let huge = "k".repeat(64 * 1024);
    let cases = vec![
        value_case(
            "value: JSON array",
            json!(["openai"]),
            &["is JSON but not an object"],
        ),
        value_case(
            "value: JSON string",
            json!("sk-proj-x"),
            &["is JSON but not an object"],
        ),
        value_case("value: number", json!(42), &["is JSON but not an object"]),
        value_case(
            "provider missing",
            json!({"api_key": KEY}),
            &["provider: is missing"],
        ),
        value_case(
            "provider unknown",
            json!({"provider": "mistral", "api_key": KEY}),
            &["provider: names a provider keyrot does not know"],
        ),
        value_case(
            "provider a number",
            json!({"provider": 1, "api_key": KEY}),
            &["provider: must be a string"],
        ),
        value_case(
            "api_key missing",
            json!({"provider": "generic"}),
            &["api_key: is missing"],
        ),
        value_case(
            "api_key empty",
            json!({"provider": "generic", "api_key": ""}),
            &["api_key: is empty"],
        ),
        value_case(
            "api_key a number",
            json!({"provider": "generic", "api_key": 7}),
            &["api_key: must be a string"],
        ),
        value_case(
            "api_key of 64 KiB",
            json!({"provider": "generic", "api_key": huge}),
            &["api_key: is 65536 bytes long"],
        ),
        value_case(
            "openai block missing",
            json!({"provider": "openai", "api_key": KEY}),
            &["openai: is missing"],
        ),
        value_case(
            "openai block a string",
            json!({"provider": "openai", "api_key": KEY, "openai": "proj"}),
            &["openai: must be an object"],
        ),
        value_case(
            "openai project missing",
            json!({"provider": "openai", "api_key": KEY, "openai": {"admin_key_secret": admin}}),
            &["openai.project_id: is missing"],
        ),
        value_case(
            "openai admin secret missing",
            json!({"provider": "openai", "api_key": KEY, "openai": {"project_id": project}}),
            &["openai.admin_key_secret: is missing"],
        ),
        value_case(
            "anthropic admin missing",
            json!({"provider": "anthropic", "api_key": KEY, "anthropic": {}}),
            &["anthropic.admin_key_secret: is missing"],
        ),
        value_case(
            "generic length too small",
            generic(json!({"generic": {"length": 3}})),
            &["generic.length: 3 is out of range"],
        ),
        value_case(
            "generic length a string",
            generic(json!({"generic": {"length": "48"}})),
            &["generic.length: must be a number"],
        ),
        value_case(
            "generic prefix with a space",
            generic(json!({"generic": {"prefix": "sk live"}})),
            &["generic.prefix"],
        ),
        value_case(
            "generic validate_url not http",
            generic(json!({"generic": {"validate_url": "ftp://x"}})),
            &["generic.validate_url"],
        ),
        value_case(
            "targets an object",
            generic(json!({"targets": {"type": "vercel"}})),
            &["targets: must be an array"],
        ),
        value_case(
            "target type unknown",
            generic(json!({"targets": [{"type": "netlify"}]})),
            &["targets[0].type"],
        ),
        value_case(
            "vercel project missing",
            generic(json!({"targets": [{"type": "vercel", "env_key": "K", "token_secret": "t"}]})),
            &["targets[0].project: is missing"],
        ),
        value_case(
            "vercel environment unknown",
            generic(
                json!({"targets": [{"type": "vercel", "project": "p", "env_key": "K", "token_secret": "t", "environments": ["staging"]}]}),
            ),
            &["targets[0].environments"],
        ),
        value_case(
            "render env_key invalid",
            generic(
                json!({"targets": [{"type": "render", "service_id": "srv-1", "env_key": "OPENAI-KEY", "token_secret": "t"}]}),
            ),
            &["targets[0].env_key"],
        ),
        // Ids end up in the paths of requests made with keyrot's admin credentials: an id that could
        // walk a path elsewhere is refused before any request is made.
        value_case(
            "openai project_id walks to the admin keys",
            json!({"provider": "openai", "api_key": KEY, "openai": {"project_id": "../admin_api_keys/key_1?", "admin_key_secret": admin}}),
            &["openai.project_id", "is not an OpenAI project id", "proj_"],
        ),
        value_case(
            "openai project_id percent-encoded dots",
            json!({"provider": "openai", "api_key": KEY, "openai": {"project_id": "proj_1%2e%2e", "admin_key_secret": admin}}),
            &["openai.project_id", "proj_"],
        ),
        value_case(
            "openai key_id names a path",
            {
                let mut value = openai(&admin);
                value["key_id"] = json!("svc_acct_1/../../users/user_1");
                value
            },
            &["key_id", "is not an OpenAI service account id"],
        ),
        value_case(
            "openai api_key_id with a query",
            {
                let mut value = openai(&admin);
                value["api_key_id"] = json!("key_1?limit=100");
                value
            },
            &["api_key_id", "is not an OpenAI project API key id"],
        ),
        value_case(
            "vercel project walks up",
            generic(
                json!({"targets": [{"type": "vercel", "project": "prj_1/../../prj_2", "env_key": "K", "token_secret": "t"}]}),
            ),
            &["targets[0].project", "is not a Vercel project id"],
        ),
        value_case(
            "vercel team with a fragment",
            generic(
                json!({"targets": [{"type": "vercel", "project": "prj_1", "team_id": "team_1#x", "env_key": "K", "token_secret": "t"}]}),
            ),
            &["targets[0].team_id", "is not a Vercel team id"],
        ),
        value_case(
            "render service id with a query",
            generic(
                json!({"targets": [{"type": "render", "service_id": "srv-1?x=y", "env_key": "K", "token_secret": "t"}]}),
            ),
            &["targets[0].service_id", "is not a Render service id"],
        ),
        value_case(
            "key_id a number",
            generic(json!({"key_id": 5})),
            &["key_id: must be a string"],
        ),
        value_case(
            "admin secret does not exist",
            openai("keyrot-admin/nowhere"),
            &["openai.admin_key_secret", "does not exist"],
        ),
        value_case(
            "admin secret empty",
            openai(&empty_admin),
            &["openai.admin_key_secret", "holds no credential"],
        ),
        value_case(
            "admin key refused",
            openai(&wrong_admin),
            &["openai.admin_key_secret", "was refused"],
        ),
        tag_case(
            "grace hours not a number",
            ("keyrot:grace-hours", "a day"),
            &["tag keyrot:grace-hours", "tag-resource"],
        ),
        tag_case(
            "max age negative",
            ("keyrot:max-age-days", "-3"),
            &["tag keyrot:max-age-days"],
        ),
        tag_case(
            "next grace not a number",
            ("keyrot:next-grace-hours", "soon"),
            &["tag keyrot:next-grace-hours"],
        ),
        tag_case(
            "trigger unknown",
            ("keyrot:trigger", "panic"),
            &["tag keyrot:trigger", "untag-resource"],
        ),
        tag_case(
            "alert days NaN",
            ("keyrot:alert-days", "NaN"),
            &["tag keyrot:alert-days"],
        ),
    ];
    let mut count = 0;
    for case in cases {
        let value = case.value.clone().unwrap_or_else(|| generic(json!({})));
        let name = world.moto.create_secret("bad", &value, &case.tags).await;
        let token = world.moto.rotate_secret(&name, true).await;
        let before = snapshot(&world, &name).await;
        let err = world
            .step("createSecret", &name, &token)
            .await
            .expect_err(case.what);
        for fragment in case.expected.iter().chain([&name.as_str()]) {
            assert!(
                err.contains(fragment),
                "{}: expected {fragment:?} in {err}",
                case.what
            );
        }
        assert_no_key(&err, KEY, case.what);
        assert_eq!(
            snapshot(&world, &name).await,
            before,
            "{}: changed something",
            case.what
        );
        count += 1;
    }

    // SecretBinary, not UTF-8.
    let name = crate::support::unique("binary");
    world
        .moto
        .sm
        .create_secret()
        .name(&name)
        .secret_binary(aws_sdk_secretsmanager::primitives::Blob::new(vec![
            0xff, 0xfe, 0x00, 0x80,
        ]))
        .send()
        .await
        .expect("binary");
    let token = world.moto.rotate_secret(&name, true).await;
    let err = world
        .step("createSecret", &name, &token)
        .await
        .expect_err("binary");
    assert!(err.contains("SecretBinary") && err.contains(&name), "{err}");
    count += 1;

    // Events.
    let name = world
        .moto
        .create_secret("events", &generic(json!({})), &[])
        .await;
    let token = world.moto.rotate_secret(&name, true).await;
    let events: Vec<(Value, &str)> = vec![
        (
            json!({"SecretId": name, "ClientRequestToken": token}),
            "missing field Step",
        ),
        (
            json!({"Step": "createSecret", "ClientRequestToken": token}),
            "missing field SecretId",
        ),
        (
            json!({"Step": "createSecret", "SecretId": name}),
            "missing field ClientRequestToken",
        ),
        (
            json!({"Step": "deleteSecret", "SecretId": name, "ClientRequestToken": token}),
            "unknown Step",
        ),
        (
            json!({"Step": 1, "SecretId": name, "ClientRequestToken": token}),
            "field Step must be a string",
        ),
        (
            json!({"Step": "createSecret", "SecretId": 12, "ClientRequestToken": token}),
            "field SecretId must be a string",
        ),
        (
            json!({"Step": "createSecret", "SecretId": name, "ClientRequestToken": ["t"]}),
            "field ClientRequestToken must be a string",
        ),
        (
            json!({"Step": "createSecret", "SecretId": "", "ClientRequestToken": token}),
            "field SecretId is empty",
        ),
        (
            json!({"Step": "createSecret", "SecretId": "x".repeat(100_000), "ClientRequestToken": token}),
            "SecretId is 100000 bytes long",
        ),
        (
            json!({"Step": "createSecret", "SecretId": name, "ClientRequestToken": token, "RotationToken": 5}),
            "RotationToken",
        ),
        (json!(null), "expected a JSON object"),
        (json!("createSecret"), "expected a JSON object"),
    ];
    for (payload, expected) in events {
        let before = snapshot(&world, &name).await;
        let err = world
            .invoke_raw(payload.clone())
            .await
            .expect_err("refused");
        assert!(err.contains(expected), "{payload}: {err}");
        assert_eq!(snapshot(&world, &name).await, before);
        count += 1;
    }
    assert!(count >= 30, "the catalogue holds {count} cases");
}

/// Secrets Manager names a secret by its ARN. A payload refused before any step ran, and a step whose
/// DescribeSecret fails, are audited under the secret's name, where `keyrot audit --secret` and the
/// report look, not under the ARN.
#[tokio::test]
async fn refusals_before_describe_secret_are_filed_under_the_secrets_name() {
    let world = World::new().await;
    let name = world
        .moto
        .create_secret(
            "refused",
            &json!({"provider": "generic", "api_key": KEY}),
            &[],
        )
        .await;
    let arn = world.moto.arn(&name).await;
    let err = world
        .invoke_raw(
            json!({"Step": "dropSecret", "SecretId": arn, "ClientRequestToken": "t-refused"}),
        )
        .await
        .expect_err("an unknown step");
    assert!(err.contains("unknown Step"), "{err}");
    // The ARN of a secret that is gone: DescribeSecret fails before anything is known of it.
    let gone = arn.replace(&name, &format!("{name}-gone"));
    world
        .step("createSecret", &gone, "t-gone")
        .await
        .expect_err("no such secret");

    let filed = |items: Vec<std::collections::BTreeMap<String, String>>| {
        items
            .into_iter()
            .filter(|item| item.get("sk").is_some_and(|sk| sk.starts_with("EVENT#")))
            .map(|item| {
                (
                    item["action"].clone(),
                    item["outcome"].clone(),
                    item["version_id"].clone(),
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        filed(world.moto.items(&name).await),
        [(
            "invoke".to_owned(),
            "failed".to_owned(),
            "t-refused".to_owned()
        )]
    );
    assert_eq!(
        filed(world.moto.items(&format!("{name}-gone")).await),
        [(
            "createSecret".to_owned(),
            "failed".to_owned(),
            "t-gone".to_owned()
        )]
    );
    assert!(filed(world.moto.partition(&format!("SECRET#{arn}")).await).is_empty());
}
