//! Every Vercel response the simulator gives, checked against the response
//! schema of its operation in Vercel's official OpenAPI spec. Prism checks
//! Vercel requests but lets responses through unchecked, so without this
//! nothing would notice a
//! response that lost a required field.
//!
//! The spec is found through `KEYROT_SPECS_DIR`; without it the tests that
//! need it say loudly that they were skipped.

use std::path::PathBuf;
use std::sync::OnceLock;

use jsonschema::{Draft, Validator};
use keyrot_sim::Simulator;
use reqwest::{Client, Method};
use serde_json::{Map, Value, json};

use crate::client;
use crate::vercel::{settled, vercel};

const ENV: &str = "/v10/projects/{idOrName}/env";
const ENV_BY_ID: &str = "/v9/projects/{idOrName}/env/{id}";
const DEPLOYMENTS: &str = "/v6/deployments";
const CREATE_DEPLOYMENT: &str = "/v13/deployments";
const DEPLOYMENT: &str = "/v13/deployments/{idOrUrl}";
const PROJECT: &str = "/v9/projects/{idOrName}";
const PROMOTE: &str = "/v10/projects/{projectId}/promote/{deploymentId}";

/// The spec from `KEYROT_SPECS_DIR`, converted to JSON Schema once for all tests. Unset: `None`, and
/// the tests that need it say they were skipped (a user's clone has no specs); set but without the
/// spec: a misconfiguration, which fails.
fn loaded_spec() -> Option<&'static Value> {
    static SPEC: OnceLock<Option<Value>> = OnceLock::new();
    SPEC.get_or_init(|| {
        let path = PathBuf::from(std::env::var_os("KEYROT_SPECS_DIR")?).join("vercel-openapi.json");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "cannot read {} ({e}); KEYROT_SPECS_DIR must name the folder holding vercel-openapi.json",
                path.display()
            )
        });
        let mut spec: Value = serde_json::from_str(&text).unwrap();
        to_json_schema(&mut spec);
        Some(spec)
    })
    .as_ref()
}

/// Whether the spec is there; says loudly that `test` was skipped when it is not.
fn spec_present(test: &str) -> bool {
    let present = loaded_spec().is_some();
    if !present {
        eprintln!(
            "SKIPPED {test}: it needs the official vercel-openapi.json; set KEYROT_SPECS_DIR to the \
             folder that holds the provider specs (scripts/fetch-specs.sh downloads them) to run it"
        );
    }
    present
}

fn spec() -> &'static Value {
    loaded_spec().expect("the test checked that the spec is present")
}

fn to_json_schema(node: &mut Value) {
    match node {
        Value::Array(items) => items.iter_mut().for_each(to_json_schema),
        Value::Object(schema) => {
            schema.values_mut().for_each(to_json_schema);
            if schema.get("oneOf").is_some_and(Value::is_array) {
                let alternatives = schema.remove("oneOf").unwrap_or_default();
                // The spec has a few `oneOf: []` (no alternative listed): they constrain nothing.
                if alternatives.as_array().is_some_and(|a| !a.is_empty()) {
                    add_any_of(schema, alternatives);
                }
            }
            if schema.get("nullable") == Some(&Value::Bool(true)) {
                schema.remove("nullable");
                let inner = Value::Object(std::mem::take(schema));
                schema.insert("anyOf".into(), json!([inner, {"type": "null"}]));
            }
        }
        _ => {}
    }
}

/// Adds an `anyOf`, keeping one that is already there (both must hold).
fn add_any_of(schema: &mut Map<String, Value>, alternatives: Value) {
    if schema.contains_key("anyOf") {
        let all_of = schema.entry("allOf").or_insert_with(|| json!([]));
        if let Some(all_of) = all_of.as_array_mut() {
            all_of.push(json!({ "anyOf": alternatives }));
        }
    } else {
        schema.insert("anyOf".into(), alternatives);
    }
}

/// A validator for `schema`, with the spec's components beside it so that
/// `#/components/schemas/...` references resolve within the document.
fn compile(schema: &Value) -> Validator {
    let mut root = json!({ "allOf": [schema] });
    root["components"] = spec()["components"].clone();
    jsonschema::options()
        .with_draft(Draft::Draft7)
        .build(&root)
        .unwrap_or_else(|e| panic!("the spec's schema does not compile: {e}"))
}

fn operation(path: &str, method: &Method) -> &'static Value {
    let operation = &spec()["paths"][path][method.as_str().to_ascii_lowercase()];
    assert!(operation.is_object(), "no {method} {path} in the spec");
    operation
}

/// The schema of the operation's JSON response for `status`; for an error
/// status the operation gives no body for, the spec's generic Vercel error.
///
/// One error status is answered although the spec does not list it: 404 for
/// an unknown project on `GET /v10/projects/{idOrName}/env` (the spec lists
/// only 200/400/401/403 there, but Vercel, and keyrot's error handling, use
/// 404 for every unknown project). Its body must still be a Vercel error.
fn response_schema(path: &str, method: &Method, status: u16) -> Value {
    let response = &operation(path, method)["responses"][status.to_string()];
    let undocumented_not_found = status == 404 && path == ENV && *method == Method::GET;
    assert!(
        response.is_object() || undocumented_not_found,
        "{method} {path} has no {status} response in the spec"
    );
    let schema = &response["content"]["application/json"]["schema"];
    if !schema.is_null() {
        return schema.clone();
    }
    let generic = match status {
        // The spec gives these no body (promote's 201 and 409).
        201 | 409 => return json!({}),
        400 => "VercelBadRequestError",
        403 => "VercelForbiddenError",
        404 => "VercelNotFoundError",
        _ => panic!("{method} {path} {status}: no schema to check the body against"),
    };
    json!({ "$ref": format!("#/components/schemas/{generic}") })
}

fn violations(validator: &Validator, instance: &Value) -> Vec<String> {
    validator
        .iter_errors(instance)
        .map(|e| format!("at '{}': {e}", e.instance_path()))
        .collect()
}

fn assert_valid(what: &str, schema: &Value, instance: &Value) {
    let problems = violations(&compile(schema), instance);
    assert!(
        problems.is_empty(),
        "{what} does not match the spec:\n  {}\nbody: {instance:#}",
        problems.join("\n  ")
    );
}

/// Sends a request to the simulator, checking the request body against the
/// spec (when `spec_valid`) and the response body always; keeps a record of
/// which operation/status pairs were covered.
struct Checker<'a> {
    client: Client,
    sim: &'a Simulator,
    covered: Vec<String>,
}

impl Checker<'_> {
    async fn call(
        &mut self,
        method: Method,
        operation_path: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        if let Some(body) = &body {
            let schema = &operation(operation_path, &method)["requestBody"]["content"]["application/json"]
                ["schema"];
            assert_valid(&format!("request {method} {path}"), schema, body);
        }
        self.call_unchecked(method, operation_path, path, body)
            .await
    }

    /// For requests that are meant to be wrong: only the response is checked.
    async fn call_unchecked(
        &mut self,
        method: Method,
        operation_path: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = vercel(&self.client, self.sim, method.clone(), path);
        if let Some(body) = &body {
            request = request.json(body);
        }
        let (status, response) = crate::send(request).await;
        let schema = response_schema(operation_path, &method, status);
        assert_valid(
            &format!("response {status} to {method} {path}"),
            &schema,
            &response,
        );
        self.covered
            .push(format!("{method} {operation_path} {status}"));
        (status, response)
    }
}

#[tokio::test]
async fn every_vercel_response_matches_the_official_spec() {
    if !spec_present("every_vercel_response_matches_the_official_spec") {
        return;
    }
    let sim = Simulator::start().await.unwrap();
    let mut check = Checker {
        client: client(),
        sim: &sim,
        covered: Vec::new(),
    };
    let project = sim.vercel_create_project("web");
    let env = format!("/v10/projects/{project}/env");
    sim.vercel_set_build_millis(50);

    // The token's user, as keyrot validates a staged Vercel token.
    let (status, user) = check.call(Method::GET, "/v2/user", "/v2/user", None).await;
    assert_eq!(status, 200);
    assert_eq!(user["user"]["limited"], true, "{user}");

    // Env vars of every type, one object and one batch with a failure.
    let (status, _) = check
        .call(
            Method::POST,
            ENV,
            &format!("{env}?upsert=true"),
            Some(json!({"key":"API_KEY","value":"sk-one","type":"sensitive","target":["production","preview"],"comment":"keyrot:111111111111"})),
        )
        .await;
    assert_eq!(status, 201);
    let (status, batch) = check
        .call(
            Method::POST,
            ENV,
            &env,
            Some(json!([
                {"key":"API_KEY","value":"clash","type":"plain","target":["production"]},
                {"key":"ENCRYPTED","value":"e","type":"encrypted","target":["production"]},
                {"key":"PLAIN","value":"p","type":"plain","target":["development"]},
                {"key":"BRANCHED","value":"b","type":"plain","target":["preview"],"gitBranch":"feature-1"},
            ])),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(batch["failed"].as_array().unwrap().len(), 1);
    let (status, _) = check
        .call(
            Method::POST,
            ENV,
            &env,
            Some(json!({"key":"API_KEY","value":"clash","type":"plain","target":["production"]})),
        )
        .await;
    assert_eq!(status, 400);
    check
        .call_unchecked(Method::POST, ENV, &env, Some(json!({"key":"K"})))
        .await;
    for query in [
        "",
        "?decrypt=true",
        "?target=production",
        "?gitBranch=feature-1",
    ] {
        let (status, _) = check
            .call(Method::GET, ENV, &format!("{env}{query}"), None)
            .await;
        assert_eq!(status, 200);
    }
    check
        .call(Method::GET, ENV, "/v10/projects/prj_missing/env", None)
        .await;

    let id = batch["created"][0]["id"].as_str().unwrap().to_owned();
    let by_id = format!("/v9/projects/{project}/env/{id}");
    let (status, _) = check
        .call(
            Method::PATCH,
            ENV_BY_ID,
            &by_id,
            Some(json!({"value":"e2","type":"sensitive","comment":"rotated","target":["production","preview"]})),
        )
        .await;
    assert_eq!(status, 200);
    check
        .call_unchecked(
            Method::PATCH,
            ENV_BY_ID,
            &by_id,
            Some(json!({"colour":"blue"})),
        )
        .await;
    let (status, _) = check.call(Method::DELETE, ENV_BY_ID, &by_id, None).await;
    assert_eq!(status, 200);
    check.call(Method::DELETE, ENV_BY_ID, &by_id, None).await;

    // Deployments in every state: READY (the first), BUILDING, ERROR, CANCELED.
    let list = format!("/v6/deployments?projectId={project}&target=production&state=READY&limit=1");
    let (_, latest) = check.call(Method::GET, DEPLOYMENTS, &list, None).await;
    let redeploy = json!({"name": "web", "deploymentId": latest["deployments"][0]["uid"], "target": "production"});
    let (status, building) = check
        .call(
            Method::POST,
            CREATE_DEPLOYMENT,
            "/v13/deployments",
            Some(redeploy.clone()),
        )
        .await;
    assert_eq!((status, &building["readyState"]), (200, &json!("BUILDING")));
    let building = building["id"].as_str().unwrap().to_owned();
    check
        .call(
            Method::GET,
            DEPLOYMENT,
            &format!("/v13/deployments/{building}"),
            None,
        )
        .await;
    settled(&check.client, &sim, &building).await;

    sim.vercel_fail_next_deployments(1);
    let (_, failed) = check
        .call(
            Method::POST,
            CREATE_DEPLOYMENT,
            "/v13/deployments",
            Some(redeploy.clone()),
        )
        .await;
    let failed = failed["id"].as_str().unwrap().to_owned();
    settled(&check.client, &sim, &failed).await;
    sim.vercel_set_build_millis(60_000);
    let (_, canceled) = check
        .call(
            Method::POST,
            CREATE_DEPLOYMENT,
            "/v13/deployments",
            Some(json!({"name": "web", "deploymentId": building, "meta": {"by": "keyrot"}})),
        )
        .await;
    let canceled = canceled["id"].as_str().unwrap().to_owned();
    assert!(sim.vercel_cancel_deployment(&canceled));
    let (_, still_building) = check
        .call(
            Method::POST,
            CREATE_DEPLOYMENT,
            "/v13/deployments",
            Some(redeploy),
        )
        .await;

    let mut states = Vec::new();
    for id in [
        &building,
        &failed,
        &canceled,
        still_building["id"].as_str().unwrap(),
    ] {
        let (status, deployment) = check
            .call(
                Method::GET,
                DEPLOYMENT,
                &format!("/v13/deployments/{id}"),
                None,
            )
            .await;
        assert_eq!(status, 200);
        states.push(deployment["readyState"].as_str().unwrap().to_owned());
    }
    assert_eq!(states, ["READY", "ERROR", "CANCELED", "BUILDING"]);
    for query in [
        "",
        &format!("?projectId={project}"),
        "?state=BUILDING,ERROR,CANCELED&limit=2",
    ] {
        let (status, body) = check
            .call(
                Method::GET,
                DEPLOYMENTS,
                &format!("/v6/deployments{query}"),
                None,
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    check
        .call(Method::GET, DEPLOYMENTS, "/v6/deployments?state=DONE", None)
        .await;
    check
        .call(
            Method::GET,
            DEPLOYMENTS,
            "/v6/deployments?projectId=prj_missing",
            None,
        )
        .await;
    check
        .call_unchecked(
            Method::POST,
            CREATE_DEPLOYMENT,
            "/v13/deployments",
            Some(json!({"name":"web"})),
        )
        .await;
    check
        .call(
            Method::POST,
            CREATE_DEPLOYMENT,
            "/v13/deployments",
            Some(json!({"name":"web","deploymentId":"dpl_missing"})),
        )
        .await;
    check
        .call(
            Method::GET,
            DEPLOYMENT,
            "/v13/deployments/dpl_missing",
            None,
        )
        .await;

    // The project says which deployment its production domains serve; promoting moves them.
    let (status, described) = check
        .call(
            Method::GET,
            PROJECT,
            &format!("/v9/projects/{project}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{described}");
    let serving = described["targets"]["production"]["id"]
        .as_str()
        .expect("a production target")
        .to_owned();
    let (status, _) = check
        .call(
            Method::POST,
            PROMOTE,
            &format!("/v10/projects/{project}/promote/{serving}"),
            None,
        )
        .await;
    assert_eq!(status, 201);
    let (status, _) = check
        .call(
            Method::POST,
            PROMOTE,
            &format!("/v10/projects/{project}/promote/dpl_missing"),
            None,
        )
        .await;
    assert_eq!(status, 409);

    // A refused token is answered in Vercel's error shape on every operation.
    for (method, operation_path, path) in [
        (Method::GET, ENV, env.clone()),
        (Method::GET, DEPLOYMENTS, "/v6/deployments".to_owned()),
    ] {
        let request = check
            .client
            .request(method.clone(), format!("{}{path}", sim.vercel_base_url()))
            .bearer_auth("vcp_wrong");
        let (status, body) = crate::send(request).await;
        assert_eq!(status, 403);
        let schema = response_schema(operation_path, &method, status);
        assert_valid("the 403 body", &schema, &body);
    }

    let expected = [
        "GET /v10/projects/{idOrName}/env 200",
        "GET /v10/projects/{idOrName}/env 404",
        "POST /v10/projects/{idOrName}/env 201",
        "POST /v10/projects/{idOrName}/env 400",
        "PATCH /v9/projects/{idOrName}/env/{id} 200",
        "PATCH /v9/projects/{idOrName}/env/{id} 400",
        "DELETE /v9/projects/{idOrName}/env/{id} 200",
        "DELETE /v9/projects/{idOrName}/env/{id} 404",
        "GET /v6/deployments 200",
        "GET /v6/deployments 400",
        "GET /v6/deployments 404",
        "POST /v13/deployments 200",
        "POST /v13/deployments 400",
        "POST /v13/deployments 404",
        "GET /v13/deployments/{idOrUrl} 200",
        "GET /v13/deployments/{idOrUrl} 404",
        "GET /v9/projects/{idOrName} 200",
        "POST /v10/projects/{projectId}/promote/{deploymentId} 201",
        "POST /v10/projects/{projectId}/promote/{deploymentId} 409",
    ];
    for operation in expected {
        assert!(
            check.covered.iter().any(|c| c == operation),
            "{operation} was never exercised"
        );
    }
}

/// The check is only worth having if it fails on a response that lost a
/// required field; this proves it does, on real responses.
#[tokio::test]
async fn the_check_refuses_responses_missing_a_required_field() {
    if !spec_present("the_check_refuses_responses_missing_a_required_field") {
        return;
    }
    let sim = Simulator::start().await.unwrap();
    let client = client();
    let project = sim.vercel_create_project("web");
    sim.vercel_set_build_millis(0);
    let env = format!("/v10/projects/{project}/env");
    let (_, created) = crate::send(
        vercel(&client, &sim, Method::POST, &env)
            .json(&json!({"key":"K","value":"v","type":"sensitive","target":["production"]})),
    )
    .await;
    let (_, listed) = crate::send(vercel(&client, &sim, Method::GET, &env)).await;
    let first = &sim.vercel_deployments(&project)[0].id;
    let (_, deployment) = crate::send(vercel(
        &client,
        &sim,
        Method::GET,
        &format!("/v13/deployments/{first}"),
    ))
    .await;
    let (_, deployments) = crate::send(vercel(&client, &sim, Method::GET, "/v6/deployments")).await;

    let cases: [(&str, Method, u16, &Value, &str); 7] = [
        (ENV, Method::POST, 201, &created, "/created/key"),
        (ENV, Method::POST, 201, &created, "/failed"),
        (ENV, Method::GET, 200, &listed, "/envs/0/type"),
        (DEPLOYMENT, Method::GET, 200, &deployment, "/readyState"),
        (DEPLOYMENT, Method::GET, 200, &deployment, "/creator/uid"),
        (
            DEPLOYMENTS,
            Method::GET,
            200,
            &deployments,
            "/deployments/0/uid",
        ),
        (
            DEPLOYMENTS,
            Method::GET,
            200,
            &deployments,
            "/pagination/next",
        ),
    ];
    for (path, method, status, body, field) in cases {
        let validator = compile(&response_schema(path, &method, status));
        assert_eq!(violations(&validator, body), Vec::<String>::new(), "{path}");
        let mut broken = body.clone();
        let (parent, name) = field.rsplit_once('/').unwrap();
        broken
            .pointer_mut(parent)
            .and_then(Value::as_object_mut)
            .and_then(|object| object.remove(name))
            .unwrap_or_else(|| panic!("{field} not in {body}"));
        assert!(
            !violations(&validator, &broken).is_empty(),
            "{method} {path}: a body without {field} passed"
        );
    }
    // A wrong enum value is caught too.
    let mut broken = deployment.clone();
    broken["readyState"] = json!("DONE");
    let validator = compile(&response_schema(DEPLOYMENT, &Method::GET, 200));
    assert!(!violations(&validator, &broken).is_empty());
}

#[test]
fn nullable_and_one_of_are_rewritten_into_json_schema() {
    let mut schema = json!({
        "properties": {
            "target": {"type": "string", "enum": ["production"], "nullable": true},
            "nullable": {"type": "string"},
        },
        "oneOf": [{"required": ["a"]}, {"type": "object"}],
        "anyOf": [{"required": ["b"]}],
    });
    to_json_schema(&mut schema);
    let validator = jsonschema::options()
        .with_draft(Draft::Draft7)
        .build(&schema)
        .unwrap();
    assert!(validator.is_valid(&json!({"target": null, "b": 1})));
    assert!(validator.is_valid(&json!({"target": "production", "a": 1, "b": 1})));
    assert!(!validator.is_valid(&json!({"target": "preview", "b": 1})));
    assert!(!validator.is_valid(&json!({"target": null})));
    assert!(!validator.is_valid(&json!({"nullable": null, "b": 1})));
}
