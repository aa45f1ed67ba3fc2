//! The rotation Lambda's handler: payload in, one step run, a result or a typed error out.

use lambda_runtime::{Diagnostic, LambdaEvent};
use serde_json::{Value, json};

use crate::domain::RotationEvent;
use crate::domain::event::refused_ids;
use crate::error::Error;
use crate::ports::Family;
use crate::rotation::{Invocation, Rotator};

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

pub async fn handle<F: Family>(
    rotator: &Rotator<'_, F>,
    event: LambdaEvent<Value>,
) -> Result<Value, StepFailure> {
    let (payload, context) = event.into_parts();
    let event = match RotationEvent::from_payload(&payload) {
        Ok(event) => event,
        Err(err) => {
            tracing::error!(error = %err, "refused invocation payload");
            if let Some(ids) = refused_ids(&payload) {
                rotator.record_refused(ids, &err, &context.request_id).await;
            }
            return Err(StepFailure(err));
        }
    };
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
