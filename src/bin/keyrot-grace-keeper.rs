#![recursion_limit = "256"]
//! The grace keeper Lambda: an EventBridge schedule invokes it every 15 minutes.

use keyrot::config::Config;
use keyrot::entrypoints::{self, grace_keeper};
use keyrot::keeper::GraceKeeper;
use keyrot::wiring;
use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    entrypoints::init_tracing();
    let config = Config::from_env()?;
    let ports = wiring::build(&config).await?;
    let keeper = GraceKeeper::new(&ports, grace_keeper::settings(&config));
    let keeper = &keeper;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        grace_keeper::handle(keeper, event)
    }))
    .await
}
