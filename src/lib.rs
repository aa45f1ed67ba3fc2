//! keyrot: zero-downtime rotation of LLM provider API keys with AWS Secrets Manager.
//!
//! Layers (see docs/architecture.md): [`domain`] holds the types of the contract, [`ports`] the traits the
//! rotation is written over, [`rotation`] the protocol's four steps, [`adapters`] the AWS and HTTP
//! implementations of the ports, and [`entrypoints`] what the binaries in `src/bin/` call.

pub mod adapters;
pub mod cli;
pub mod config;
pub mod domain;
pub mod entrypoints;
pub mod error;
pub mod keeper;
pub mod operator;
pub mod patience;
pub mod ports;
pub mod revocation;
pub mod rotation;
pub mod wiring;

pub use error::{Error, Result};
