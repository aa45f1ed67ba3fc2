//! The grace keeper's Lambda handler: an EventBridge schedule invokes it; the payload carries nothing
//! it needs.

use lambda_runtime::{Diagnostic, LambdaEvent};
use serde_json::Value;

use crate::config::Config;
use crate::error::Error;
use crate::keeper::{GraceKeeper, KeeperReport, KeeperSettings};
use crate::ports::Family;

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
        credentials: crate::keeper::Credentials::Read(config.admin_prefix.clone()),
        default_grace_hours: config.default_grace_hours,
        ..KeeperSettings::default()
    }
}

pub async fn handle<F: Family>(
    keeper: &GraceKeeper<'_, F>,
    _event: LambdaEvent<Value>,
) -> Result<KeeperReport, PassFailure> {
    keeper.run().await.map_err(PassFailure)
}
