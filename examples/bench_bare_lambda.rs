//! A bare `lambda_runtime` function that echoes its payload: `make bench` starts it under the same
//! Runtime API emulator as `keyrot-rotator`, so the rotator's cold start and memory can be read against
//! the floor of the runtime crate itself (and the harness's own overhead). Not deployed anywhere.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move {
        Ok::<Value, Error>(event.payload)
    }))
    .await
}
