#![recursion_limit = "256"]
//! The rotation Lambda: Secrets Manager invokes it once per step.

use keyrot::config::Config;
use keyrot::entrypoints::{self, rotator};
use keyrot::rotation::Rotator;
use keyrot::wiring;
use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    entrypoints::init_tracing();
    let config = Config::from_env()?;
    // Built once, before the first request, and reused by every invocation of this process.
    let ports = wiring::build(&config).await?;
    let rotator = Rotator::new(&ports, wiring::rotator_settings(&config));
    let rotator = &rotator;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        rotator::handle(rotator, event)
    }))
    .await
}
