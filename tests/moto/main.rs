//! Integration tests against moto_server: the rotator driven as Secrets Manager drives it.

mod attacks;
mod audit;
mod bad_input;
mod bad_state;
mod cli;
mod concurrency;
mod contract;
#[cfg(feature = "sim-clock")]
mod crashes;
mod credentials;
mod database;
mod iam;
mod keeper;
mod policy;
mod providers;
mod rotation;
mod staged;
mod support;
mod targets;
mod wire;

#[path = "../common/postgres.rs"]
mod pg;
