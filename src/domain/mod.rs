//! The domain: what a rotation is about, free of any SDK or HTTP type.

pub mod admin;
pub mod audit;
pub mod credential;
pub mod event;
mod fields;
pub mod keys;
pub mod policy;
pub mod postgres;
pub mod provenance;
pub mod secret;
pub mod staged;
pub mod targets;
pub mod tier;

pub use event::{RotationEvent, Step};
pub use keys::NewKey;
pub use policy::{Policy, SecretDescription, Trigger};
pub use secret::{ManagedSecret, ProviderSettings};
