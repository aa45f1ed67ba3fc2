#![recursion_limit = "256"]
//! The grace keeper Lambda: an EventBridge schedule invokes it every 15 minutes.

use keyrot::config::Config;
use keyrot::entrypoints::{self, grace_keeper, rotator};
use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    entrypoints::init_tracing();
    let config = Config::from_env()?;
    let ports = rotator::build(&config).await?;
    let settings = grace_keeper::settings(&config);
    let (ports, settings) = (&ports, &settings);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        grace_keeper::handle(ports, settings, event)
    }))
    .await
}
