//! The one place production ports are built: the AWS and provider adapters, from configuration. The
//! Lambdas and the CLI all wire themselves here.

use std::marker::PhantomData;

use crate::adapters::admin_keys::AdminKeys;
use crate::adapters::anthropic::AnthropicIssuer;
use crate::adapters::clock::SystemClock;
use crate::adapters::credentials::{CredentialApis, CredentialIssuer};
use crate::adapters::dynamodb::DynamoAuditLog;
use crate::adapters::generic::GenericIssuer;
use crate::adapters::github::GitHubIssuer;
use crate::adapters::issuers::ProviderIssuers;
use crate::adapters::metrics::EmfMetrics;
use crate::adapters::openai::OpenAiIssuer;
use crate::adapters::postgres::{PostgresDatabase, PostgresIssuer};
use crate::adapters::render::RenderClient;
use crate::adapters::secrets_manager::SecretsManagerStore;
use crate::adapters::sns::SnsAlerts;
use crate::adapters::stripe::StripeIssuer;
use crate::adapters::targets::PlatformTargets;
use crate::adapters::vercel::VercelClient;
use crate::adapters::{aws, http};
use crate::config::Config;
use crate::error::Error;
use crate::ports::{Clock, Family, Ports};
use crate::rotation::RotatorSettings;

/// The AWS adapters with the clock `C` (tests step past grace periods with a shifted one).
pub struct AwsWith<C>(PhantomData<C>);

/// The AWS adapters with the system clock: what the Lambdas and the CLI run on.
pub type Aws = AwsWith<SystemClock>;

impl<C: Clock> Family for AwsWith<C> {
    type Store = SecretsManagerStore;
    type Issuer = ProviderIssuers;
    type Targets = PlatformTargets;
    type Audit = DynamoAuditLog;
    type Alerts = SnsAlerts;
    type Metrics = EmfMetrics;
    type Clock = C;
}

/// Builds the adapters once per process; nothing here calls the network.
pub async fn build(config: &Config) -> Result<Ports<Aws>, Error> {
    build_with_clock(config, SystemClock::from_env()).await
}

/// The same adapters with another clock.
pub async fn build_with_clock<C: Clock>(
    config: &Config,
    clock: C,
) -> Result<Ports<AwsWith<C>>, Error> {
    build_from(config, &aws::sdk_config().await, clock)
}

/// The adapters on an SDK configuration of the caller's (its credentials, its endpoint): the tests
/// that run each function with exactly its IAM policy build them this way.
pub fn build_from<C: Clock>(
    config: &Config,
    sdk: &aws_config::SdkConfig,
    clock: C,
) -> Result<Ports<AwsWith<C>>, Error> {
    let sdk = with_timeouts(sdk, config.request_timeout);
    let secrets_manager = aws_sdk_secretsmanager::Client::new(&sdk);
    let http = http::client(config.request_timeout)?;
    // One reader for every adapter: when keyrot replaces one of its own credentials, the fresh read
    // of it is what every adapter of this process uses next.
    let shared_admin_keys = AdminKeys::new(
        secrets_manager.clone(),
        &config.admin_prefix,
        &config.rotators(),
    );
    let admin_keys = || shared_admin_keys.clone();
    Ok(Ports {
        store: SecretsManagerStore::new(secrets_manager.clone()),
        issuer: ProviderIssuers {
            generic: GenericIssuer::new(config.validate_url_http, config.request_timeout)?,
            openai: OpenAiIssuer::new(http.clone(), &config.openai_base_url, admin_keys()),
            anthropic: AnthropicIssuer::new(http.clone(), &config.anthropic_base_url, admin_keys()),
            postgres: PostgresIssuer::new(
                PostgresDatabase::new(config.request_timeout)?,
                admin_keys(),
            ),
            stripe: StripeIssuer::new(http.clone(), &config.stripe_base_url),
            github: GitHubIssuer::new(http.clone(), &config.github_base_url),
            credentials: CredentialIssuer::new(
                http.clone(),
                CredentialApis {
                    openai: config.openai_base_url.clone(),
                    anthropic: config.anthropic_base_url.clone(),
                    vercel: config.vercel_base_url.clone(),
                    render: config.render_base_url.clone(),
                },
                admin_keys(),
            ),
        },
        targets: PlatformTargets {
            vercel: VercelClient::new(http.clone(), &config.vercel_base_url, admin_keys()),
            render: RenderClient::new(http, &config.render_base_url, admin_keys()),
        },
        audit: DynamoAuditLog::new(
            aws_sdk_dynamodb::Client::new(&sdk),
            &config.audit_table,
            &config.events_table,
        ),
        alerts: SnsAlerts::new(aws_sdk_sns::Client::new(&sdk), &config.alert_topic_arn),
        metrics: EmfMetrics,
        clock,
    })
}

/// The rotator's deployment-wide settings from configuration.
/// The SDK configuration with the same per-request timeout as the providers' clients: the SDK has
/// none by default, so a hung connection to AWS would otherwise hold the invocation to its deadline.
/// A timed-out attempt is retried by the SDK's standard retry.
fn with_timeouts(
    sdk: &aws_config::SdkConfig,
    timeout: std::time::Duration,
) -> aws_config::SdkConfig {
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(http::CONNECT_TIMEOUT.min(timeout))
        .operation_attempt_timeout(timeout)
        .build();
    sdk.to_builder().timeout_config(timeouts).build()
}

pub fn rotator_settings(config: &Config) -> RotatorSettings {
    let settings = RotatorSettings {
        default_grace_hours: config.default_grace_hours,
        admin_prefix: config.admin_prefix.clone(),
        ..RotatorSettings::default()
    };
    #[cfg(feature = "sim-clock")]
    let settings = with_sim_polling(settings);
    settings
}

/// With the `sim-clock` feature, `KEYROT_DEPLOY_POLL_MS` sets how often a redeploy is polled, so that
/// the stand-ins' quick builds are followed quickly. Release artifacts leave the feature off.
#[cfg(feature = "sim-clock")]
fn with_sim_polling(settings: RotatorSettings) -> RotatorSettings {
    let millis = std::env::var("KEYROT_DEPLOY_POLL_MS")
        .ok()
        .and_then(|v| v.trim().parse().ok());
    match millis {
        Some(millis) => RotatorSettings {
            deploy_poll_interval: std::time::Duration::from_millis(millis),
            ..settings
        },
        None => settings,
    }
}
