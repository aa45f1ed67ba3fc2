//! Least privilege, proven: the rotator through a rotation, the grace keeper through a revocation and
//! the CLI's read commands, each as an IAM user holding exactly the policy template.yaml gives it,
//! against a moto with IAM enforcement on. Every call each makes is allowed (by moto for its action, by
//! the evaluator in `support::iam` for its resource and conditions), and the writes an attacker would
//! want (an admin secret, an audit event) are denied by IAM, not only refused by keyrot's code.

use chrono::TimeDelta;
use keyrot::config::Config;
use keyrot::entrypoints::rotator;
use keyrot::keeper::{GraceKeeper, KeeperSettings};
use keyrot::rotation::Rotator;
use keyrot::wiring;
use keyrot_sim::Simulator;
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{Value, json};

use crate::support::iam::{
    Decision, Deployment, EnforcingMoto, Request, actions_only, decide, sdk, tagged,
};
use crate::support::{Later, Moto, assert_no_key, unique};

struct Principal {
    name: &'static str,
    policy: Value,
    key: (String, String),
}

/// moto's own resources (tables, topic, the rotator's function), made by its administrator.
async fn resources(moto: &EnforcingMoto) {
    let out = tokio::process::Command::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scripts/moto-resources.sh"
    ))
    .env("AWS_ENDPOINT_URL", &moto.endpoint)
    .env("AWS_ACCESS_KEY_ID", &moto.admin_key.0)
    .env("AWS_SECRET_ACCESS_KEY", &moto.admin_key.1)
    .env_remove("AWS_SESSION_TOKEN")
    .output()
    .await
    .expect("moto-resources.sh");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An OpenAI secret with a Vercel target under `it/`, onboarded (its first key on record), and the
/// admin secrets it is served by, all as the administrator. Returns the secret and its first key.
async fn scene(aws: &Moto, sim: &Simulator, admin_prefix: &str) -> (String, String, String) {
    let serves = |value: String| async move {
        let name = format!("{admin_prefix}{}", unique("iam").trim_start_matches("it/"));
        aws.sm
            .create_secret()
            .name(&name)
            .secret_string(value)
            .tags(
                aws_sdk_secretsmanager::types::Tag::builder()
                    .key("keyrot-admin:serves")
                    .value("it/")
                    .build(),
            )
            .send()
            .await
            .expect("admin secret");
        name
    };
    let project = sim.openai_create_project();
    let (first_key, first_id) = sim.openai_create_user_key(&project);
    let admin = serves(sim.openai_admin_key()).await;
    let vercel_token = serves(sim.vercel_token()).await;
    let vercel = sim.vercel_create_project("web");
    let value = json!({"provider": "openai", "api_key": first_key, "api_key_id": first_id,
        "openai": {"project_id": project, "admin_key_secret": admin},
        "targets": [{"type": "vercel", "project": vercel, "team_id": sim.vercel_team_id(),
            "env_key": "OPENAI_API_KEY", "environments": ["production"], "redeploy": true,
            "token_secret": vercel_token}]});
    // Onboarded: the first key's ids are on record. The one-shot tag makes finishSecret remove it:
    // UntagResource, under its policy's condition.
    let name = aws
        .onboard_secret(
            "iam",
            &value,
            &[
                ("keyrot:grace-hours", "1"),
                ("keyrot:next-grace-hours", "1"),
            ],
        )
        .await;
    (name, first_key, admin)
}

/// The tags of the OpenAI admin key keyrot rotates as one of its own credentials.
const OWN_CREDENTIAL_TAGS: [(&str, &str); 2] = [
    ("keyrot-admin:rotated", "true"),
    ("keyrot:grace-hours", "1"),
];

/// One of keyrot's own credentials: an OpenAI admin key under the admin prefix, its owner's tag on
/// it, onboarded. Returns its name and its first key.
async fn own_credential(aws: &Moto, sim: &Simulator, admin_prefix: &str) -> (String, String) {
    let (key, id) = sim.create_credential(keyrot_sim::CredentialSystem::Openai);
    let name = format!("{admin_prefix}{}", unique("own").trim_start_matches("it/"));
    let value = json!({"provider": "openai-admin", "admin_key": key, "key_id": id});
    aws.onboard_secret_named(&name, &value, &OWN_CREDENTIAL_TAGS)
        .await;
    (name, key)
}

async fn rotate_as(config: &Config, principal: &Principal, endpoint: &str, aws: &Moto, name: &str) {
    let ports = wiring::build_from(
        config,
        &sdk(endpoint, &principal.key).await,
        Later(TimeDelta::zero()),
    )
    .expect("ports");
    let token = aws.rotate_secret(name, true).await;
    let rotator = Rotator::new(&ports, wiring::rotator_settings(config));
    for step in ["createSecret", "setSecret", "testSecret", "finishSecret"] {
        let payload = json!({"Step": step, "SecretId": name, "ClientRequestToken": token});
        rotator::handle(&rotator, LambdaEvent::new(payload, Context::default()))
            .await
            .unwrap_or_else(|err| panic!("{step} as the rotator: {}", err.0));
    }
}

async fn keeper_pass_as(config: &Config, principal: &Principal, endpoint: &str) -> usize {
    let ports = wiring::build_from(
        config,
        &sdk(endpoint, &principal.key).await,
        Later(TimeDelta::hours(2)),
    )
    .expect("ports");
    let settings = KeeperSettings {
        rotator_arn: config.rotator_arn.clone(),
        name_prefix: Some("it/".into()),
        credentials: keyrot::keeper::Credentials::Read(config.admin_prefix.clone()),
        ..KeeperSettings::default()
    };
    let report = GraceKeeper::new(&ports, settings)
        .run()
        .await
        .expect("a keeper pass as the grace keeper");
    assert_eq!(report.failed, 0, "{report:?}");
    report.revoked
}

/// `keyrot ARGS` as `principal`, against this moto and the simulator.
async fn cli_as(config: &Config, principal: &Principal, endpoint: &str, args: &[&str]) -> String {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_keyrot"))
        .args(args)
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ACCESS_KEY_ID", &principal.key.0)
        .env("AWS_SECRET_ACCESS_KEY", &principal.key.1)
        .env_remove("AWS_SESSION_TOKEN")
        .env("KEYROT_MANAGED_PREFIX", "it/")
        .env(
            "KEYROT_ROTATOR_ARN",
            config.rotator_arn.as_deref().unwrap_or_default(),
        )
        .env("KEYROT_OPENAI_BASE_URL", &config.openai_base_url)
        .env("KEYROT_VERCEL_BASE_URL", &config.vercel_base_url)
        .output()
        .await
        .expect("keyrot");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "keyrot {args:?} as {}: {text}",
        principal.name
    );
    text
}

#[tokio::test]
async fn each_function_runs_on_exactly_its_policy_and_writes_to_admin_secrets_and_events_are_denied()
 {
    crate::support::capture_logs();
    let moto = EnforcingMoto::start().await;
    resources(&moto).await;
    let sim = Simulator::start().await.expect("simulator");
    let base = Config::from_env().expect("KEYROT_* set by scripts/moto.sh");
    let config = Config {
        openai_base_url: sim.openai_base_url(),
        anthropic_base_url: sim.anthropic_base_url(),
        vercel_base_url: sim.vercel_base_url(),
        render_base_url: sim.render_base_url(),
        rotator_arn: std::env::var("KEYROT_TEST_ROTATOR_ARN").ok(),
        managed_prefix: Some("it/".into()),
        ..base
    };
    let deployment = Deployment {
        stack: "keyrot".into(),
        managed_prefix: "it/".into(),
        admin_prefix: config.admin_prefix.clone(),
        state_table: config.audit_table.clone(),
        events_table: config.events_table.clone(),
        topic_arn: config.alert_topic_arn.clone(),
    };
    let mut principals = Vec::new();
    for (name, resource) in [
        ("rotator", "RotatorRole"),
        ("keeper", "GraceKeeperRole"),
        ("cli", "CliReadPolicy"),
    ] {
        let policy = deployment.template_policy(resource);
        let key = moto.user(name, &actions_only(&policy)).await;
        principals.push(Principal { name, policy, key });
    }
    let [rotator_user, keeper_user, cli_user] = &principals[..] else {
        unreachable!()
    };
    let aws = Moto {
        sm: aws_sdk_secretsmanager::Client::new(&moto.admin),
        ddb: aws_sdk_dynamodb::Client::new(&moto.admin),
        rotator_arn: config.rotator_arn.clone().expect("KEYROT_TEST_ROTATOR_ARN"),
        config: config.clone(),
    };
    let (name, first_key, admin_secret) = scene(&aws, &sim, &config.admin_prefix).await;
    // A generic secret too: its keys are drawn in the rotator, with no AWS call.
    let first_generic =
        json!({"provider": "generic", "api_key": "gk-first-generic-key-000000000000"});
    let generic = aws.create_secret("iam-generic", &first_generic, &[]).await;
    let (own, first_admin_key) = own_credential(&aws, &sim, &config.admin_prefix).await;

    moto.start_recording().await;
    rotate_as(&config, rotator_user, &moto.endpoint, &aws, &name).await;
    rotate_as(&config, rotator_user, &moto.endpoint, &aws, &generic).await;
    rotate_as(&config, rotator_user, &moto.endpoint, &aws, &own).await;
    let revoked = keeper_pass_as(&config, keeper_user, &moto.endpoint).await;
    assert_eq!(
        revoked, 2,
        "the first key's and the first admin key's grace had ended"
    );
    assert!(
        !sim.openai_key_works(&first_key),
        "the keeper revoked the first key"
    );
    let system = keyrot_sim::CredentialSystem::Openai;
    assert!(
        !sim.credential_works(system, &first_admin_key),
        "the keeper deleted the first admin key with its successor"
    );
    let next = aws.value(&own, "AWSCURRENT", None).await.expect("current");
    let next_key = next["admin_key"]
        .as_str()
        .expect("the admin key, in its own field");
    assert!(sim.credential_works(system, next_key), "{next}");
    assert_eq!(next["provider"], "openai-admin");
    let status = cli_as(&config, cli_user, &moto.endpoint, &["status", "--json"]).await;
    assert!(status.contains(&name), "{status}");
    let audit = cli_as(
        &config,
        cli_user,
        &moto.endpoint,
        &["audit", "--secret", &name, "--json"],
    )
    .await;
    assert!(audit.contains("finishSecret"), "{audit}");
    assert_no_key(&format!("{status}{audit}"), &first_key, "the CLI's output");
    for key in [&first_admin_key, &sim.openai_admin_key()] {
        assert_no_key(&crate::support::captured_logs(), key, "the logs");
    }
    let mut recorded = moto.recorded().await;
    for requests in recorded.values_mut() {
        tagged(requests, &own, &OWN_CREDENTIAL_TAGS);
    }
    // Nothing keyrot does quietly (an alert, an audit event) was refused either.
    let logs = crate::support::captured_logs();
    let refused: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains(&name) || l.contains(&generic))
        .filter(|l| l.contains("\"WARN\"") || l.contains("\"ERROR\""))
        .collect();
    assert!(refused.is_empty(), "{refused:#?}");

    println!(
        "least privilege, against moto with IAM enforcement (moto: actions; evaluator: resources, Deny, conditions):"
    );
    for principal in &principals {
        let requests = recorded.get(&principal.key.0).cloned().unwrap_or_default();
        assert!(!requests.is_empty(), "{} made no request", principal.name);
        let mut actions: Vec<&str> = requests.iter().map(|r| r.action.as_str()).collect();
        actions.sort_unstable();
        actions.dedup();
        for request in &requests {
            assert_eq!(
                decide(&principal.policy, request),
                Decision::Allowed,
                "{}'s policy does not allow {request:?}",
                principal.name
            );
        }
        println!(
            "  {:<8} {:>4} calls, {:>2} actions, all allowed: {}",
            principal.name,
            requests.len(),
            actions.len(),
            actions.join(" ")
        );
    }

    attacks_are_denied(&moto, &deployment, &principals, &name, &admin_secret).await;
    // The rotator writes the credential its owner tagged for rotation; the keeper never.
    let own_arn = format!("arn:aws:secretsmanager:us-east-1:123456789012:secret:{own}-AbCdEf");
    for (principal, expected) in [
        (rotator_user, Decision::Allowed),
        (keeper_user, Decision::ExplicitDeny),
    ] {
        let mut request = Request::new("secretsmanager:PutSecretValue", &own_arn);
        tagged(
            std::slice::from_mut(&mut request),
            &own,
            &OWN_CREDENTIAL_TAGS,
        );
        assert_eq!(
            decide(&principal.policy, &request),
            expected,
            "{}",
            principal.name
        );
        let mut retag = Request::new("secretsmanager:UntagResource", &own_arn);
        retag.tag_keys = vec!["keyrot-admin:rotated".into()];
        tagged(std::slice::from_mut(&mut retag), &own, &OWN_CREDENTIAL_TAGS);
        assert_eq!(
            decide(&principal.policy, &retag),
            Decision::ExplicitDeny,
            "{} may not remove the owner's tag",
            principal.name
        );
    }
    let mut one_shot = Request::new("secretsmanager:UntagResource", &own_arn);
    one_shot.tag_keys = vec!["keyrot:trigger".into()];
    tagged(
        std::slice::from_mut(&mut one_shot),
        &own,
        &OWN_CREDENTIAL_TAGS,
    );
    assert_eq!(
        decide(&rotator_user.policy, &one_shot),
        Decision::Allowed,
        "finishSecret clears a credential's one-shot tags"
    );
}

/// The writes a writer of a managed secret would want keyrot to make, denied by IAM: by the exact
/// policies (the evaluator), and where moto can tell (an action the user does not hold at all), by
/// moto's enforcement of a real attempt.
async fn attacks_are_denied(
    moto: &EnforcingMoto,
    deployment: &Deployment,
    principals: &[Principal],
    managed: &str,
    admin_secret: &str,
) {
    let admin_arn =
        format!("arn:aws:secretsmanager:us-east-1:123456789012:secret:{admin_secret}-AbCdEf");
    let events_arn = format!(
        "arn:aws:dynamodb:us-east-1:123456789012:table/{}",
        deployment.events_table
    );
    let mut denied = 0;
    for principal in &principals[..2] {
        for action in [
            "secretsmanager:PutSecretValue",
            "secretsmanager:UpdateSecretVersionStage",
            "secretsmanager:TagResource",
            "secretsmanager:UntagResource",
            "secretsmanager:DeleteSecret",
            "secretsmanager:PutResourcePolicy",
        ] {
            let mut request = Request::new(action, &admin_arn);
            request.tag_keys = vec!["keyrot-admin:serves".into()];
            assert_eq!(
                decide(&principal.policy, &request),
                Decision::ExplicitDeny,
                "{} {action}",
                principal.name
            );
            denied += 1;
        }
        for action in [
            "dynamodb:UpdateItem",
            "dynamodb:DeleteItem",
            "dynamodb:BatchWriteItem",
            "dynamodb:DeleteTable",
        ] {
            let request = Request::new(action, &events_arn);
            assert_eq!(
                decide(&principal.policy, &request),
                Decision::ExplicitDeny,
                "{} {action}",
                principal.name
            );
            denied += 1;
        }
    }
    // The keeper forgets a delivered parked alert, and deletes nothing else of the state table.
    let state_arn = format!(
        "arn:aws:dynamodb:us-east-1:123456789012:table/{}",
        deployment.state_table
    );
    let delete = |pk: &str| {
        let mut request = Request::new("dynamodb:DeleteItem", &state_arn);
        request.leading_keys = vec![pk.to_owned()];
        request
    };
    let keeper = &principals[1];
    assert_eq!(decide(&keeper.policy, &delete("OUTBOX")), Decision::Allowed);
    for pk in [format!("SECRET#{managed}"), "OUTBOXES".to_owned()] {
        assert_eq!(
            decide(&keeper.policy, &delete(&pk)),
            Decision::ImplicitDeny,
            "keeper DeleteItem on {pk}"
        );
        denied += 1;
    }
    let cli = &principals[2];
    for action in [
        "secretsmanager:PutSecretValue",
        "secretsmanager:TagResource",
        "dynamodb:PutItem",
    ] {
        let arn = if action.starts_with("dynamodb") {
            events_arn.clone()
        } else {
            format!("arn:aws:secretsmanager:us-east-1:123456789012:secret:{managed}-AbCdEf")
        };
        assert_eq!(
            decide(&cli.policy, &Request::new(action, &arn)),
            Decision::ImplicitDeny,
            "cli {action}"
        );
        denied += 1;
    }

    // Real attempts, which moto refuses because the user holds no such action at all.
    let keeper_sm =
        aws_sdk_secretsmanager::Client::new(&sdk(&moto.endpoint, &principals[1].key).await);
    let err = keeper_sm
        .put_secret_value()
        .secret_id(admin_secret)
        .secret_string("sk-stolen")
        .send()
        .await
        .expect_err("the keeper may not write an admin secret");
    assert_access_denied(
        err.raw_response().map(|r| r.status().as_u16()),
        "keeper PutSecretValue on an admin secret",
    );
    let rotator_sm =
        aws_sdk_secretsmanager::Client::new(&sdk(&moto.endpoint, &principals[0].key).await);
    let err = rotator_sm
        .tag_resource()
        .secret_id(admin_secret)
        .tags(
            aws_sdk_secretsmanager::types::Tag::builder()
                .key("keyrot-admin:serves")
                .value("")
                .build(),
        )
        .send()
        .await
        .expect_err("the rotator may not tag an admin secret");
    assert_access_denied(
        err.raw_response().map(|r| r.status().as_u16()),
        "rotator TagResource on an admin secret",
    );
    for principal in &principals[..2] {
        let ddb = aws_sdk_dynamodb::Client::new(&sdk(&moto.endpoint, &principal.key).await);
        let err = ddb
            .update_item()
            .table_name(&deployment.events_table)
            .key(
                "pk",
                aws_sdk_dynamodb::types::AttributeValue::S(format!("SECRET#{managed}")),
            )
            .key(
                "sk",
                aws_sdk_dynamodb::types::AttributeValue::S("EVENT#".into()),
            )
            .update_expression("SET outcome = :o")
            .expression_attribute_values(
                ":o",
                aws_sdk_dynamodb::types::AttributeValue::S("succeeded".into()),
            )
            .send()
            .await
            .expect_err("no function may change an audit event");
        assert_access_denied(
            err.raw_response().map(|r| r.status().as_u16()),
            &format!("{} UpdateItem on an audit event", principal.name),
        );
    }
    println!(
        "  {denied} attacker writes denied by the exact policies; 4 of them tried for real and refused by moto"
    );
}

/// moto answers a denied call with IAM's own 403 AccessDenied document, which the service's SDK does
/// not parse into an error code: the status is what tells.
fn assert_access_denied(status: Option<u16>, what: &str) {
    assert_eq!(status, Some(403), "{what}");
}
