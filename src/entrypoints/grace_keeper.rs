//! The grace keeper's Lambda handler: an EventBridge schedule invokes it; the payload carries nothing
//! it needs.

use lambda_runtime::{Diagnostic, LambdaEvent};
use serde_json::Value;

use crate::config::Config;
use crate::entrypoints::rotator::AwsRotator;
use crate::error::Error;
use crate::keeper::{GraceKeeper, KeeperReport, KeeperSettings};

#[derive(Debug)]
pub struct PassFailure(pub Error);

impl From<PassFailure> for Diagnostic {
    fn from(failure: PassFailure) -> Self {
        Diagnostic {
            error_type: format!("keyrot.keeper.{}", failure.0.kind()),
            error_message: failure.0.to_string(),
        }
    }
}

pub fn settings(config: &Config) -> KeeperSettings {
    KeeperSettings {
        rotator_arn: config.rotator_arn.clone(),
        name_prefix: config.managed_prefix.clone(),
        ..KeeperSettings::default()
    }
}

pub async fn handle(
    ports: &AwsRotator,
    settings: &KeeperSettings,
    _event: LambdaEvent<Value>,
) -> Result<KeeperReport, PassFailure> {
    GraceKeeper {
        ports,
        settings: settings.clone(),
    }
    .run()
    .await
    .map_err(PassFailure)
}
