//! The rotation Lambda's handler: payload in, one step run, a result or a typed error out.

use lambda_runtime::{Diagnostic, LambdaEvent};
use serde_json::{Value, json};

use crate::adapters::admin_keys::AdminKeys;
use crate::adapters::anthropic::AnthropicIssuer;
use crate::adapters::clock::SystemClock;
use crate::adapters::dynamodb::DynamoAuditLog;
use crate::adapters::generic::GenericIssuer;
use crate::adapters::issuers::ProviderIssuers;
use crate::adapters::openai::OpenAiIssuer;
use crate::adapters::render::RenderClient;
use crate::adapters::secrets_manager::SecretsManagerStore;
use crate::adapters::sns::SnsAlerts;
use crate::adapters::targets::PlatformTargets;
use crate::adapters::vercel::VercelClient;
use crate::adapters::{aws, http};
use crate::config::Config;
use crate::domain::RotationEvent;
use crate::error::Error;
use crate::ports::{Alerts, AuditLog, Clock, KeyIssuer, SecretStore, Target};
use crate::rotation::{Invocation, Rotator, RotatorSettings};

/// The rotator wired to AWS and the providers, with any clock.
pub type AwsRotatorWith<C> =
    Rotator<SecretsManagerStore, ProviderIssuers, PlatformTargets, DynamoAuditLog, SnsAlerts, C>;

/// The rotator wired to AWS and the providers.
pub type AwsRotator = Rotator<
    SecretsManagerStore,
    ProviderIssuers,
    PlatformTargets,
    DynamoAuditLog,
    SnsAlerts,
    SystemClock,
>;

/// Builds the adapters once per process; nothing here calls the network.
pub async fn build(config: &Config) -> Result<AwsRotator, Error> {
    build_with_clock(config, SystemClock::from_env()).await
}

/// The same adapters with another clock (tests step past grace periods with one).
pub async fn build_with_clock<C: Clock>(
    config: &Config,
    clock: C,
) -> Result<AwsRotatorWith<C>, Error> {
    let sdk = aws::sdk_config().await;
    let secrets_manager = aws_sdk_secretsmanager::Client::new(&sdk);
    let http = http::client()?;
    Ok(Rotator {
        store: SecretsManagerStore::new(secrets_manager.clone()),
        issuer: ProviderIssuers {
            generic: GenericIssuer::new(secrets_manager.clone(), http.clone()),
            openai: OpenAiIssuer::new(
                http.clone(),
                &config.openai_base_url,
                AdminKeys::new(secrets_manager.clone()),
            ),
            anthropic: AnthropicIssuer::new(
                http.clone(),
                &config.anthropic_base_url,
                AdminKeys::new(secrets_manager.clone()),
            ),
        },
        targets: PlatformTargets {
            vercel: VercelClient::new(
                http.clone(),
                &config.vercel_base_url,
                AdminKeys::new(secrets_manager.clone()),
            ),
            render: RenderClient::new(
                http,
                &config.render_base_url,
                AdminKeys::new(secrets_manager),
            ),
        },
        audit: DynamoAuditLog::new(aws_sdk_dynamodb::Client::new(&sdk), &config.audit_table),
        alerts: SnsAlerts::new(aws_sdk_sns::Client::new(&sdk), &config.alert_topic_arn),
        clock,
        settings: RotatorSettings {
            default_grace_hours: config.default_grace_hours,
            ..RotatorSettings::default()
        },
    })
}

/// The error Lambda reports to Secrets Manager: its type says whether a retry can help, its message
/// names the secret, the step and the cause (never a key).
#[derive(Debug)]
pub struct StepFailure(pub Error);

impl From<StepFailure> for Diagnostic {
    fn from(failure: StepFailure) -> Self {
        let kind = if failure.0.is_retryable() {
            "Retryable"
        } else {
            "Final"
        };
        Diagnostic {
            error_type: format!("keyrot.{kind}.{}", failure.0.kind()),
            error_message: failure.0.to_string(),
        }
    }
}

pub async fn handle<S, I, T, A, N, C>(
    rotator: &Rotator<S, I, T, A, N, C>,
    event: LambdaEvent<Value>,
) -> Result<Value, StepFailure>
where
    S: SecretStore,
    I: KeyIssuer,
    T: Target,
    A: AuditLog,
    N: Alerts,
    C: Clock,
{
    let (payload, context) = event.into_parts();
    let event = RotationEvent::from_payload(&payload).map_err(|err| {
        tracing::error!(error = %err, "refused invocation payload");
        StepFailure(err)
    })?;
    let invocation = Invocation {
        // Lambda's deadline is milliseconds since the epoch; 0 (a test's default context) means none.
        deadline: (context.deadline > 0)
            .then(|| chrono::DateTime::from_timestamp_millis(context.deadline as i64))
            .flatten(),
        actor: context.request_id,
    };
    let progress = rotator
        .handle(&event, &invocation)
        .await
        .map_err(StepFailure)?;
    Ok(json!({
        "step": event.step.as_str(),
        "secret": event.secret_id,
        "token": event.client_request_token,
        "outcome": match progress {
            crate::rotation::Progress::Done => "done",
            crate::rotation::Progress::AlreadyDone => "already-done",
        },
    }))
}
