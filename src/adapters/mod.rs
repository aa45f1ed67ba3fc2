//! One adapter per external system, each thin: it maps the system's calls and errors onto a port.

pub mod admin_keys;
pub mod anthropic;
pub mod aws;
pub mod clock;
pub mod cloudformation;
pub mod credentials;
pub mod dynamodb;
pub mod generic;
pub mod github;
pub mod http;
pub mod issuers;
pub mod metrics;
pub mod openai;
pub mod postgres;
pub mod random;
pub mod render;
pub mod secrets_manager;
pub mod sns;
pub mod stripe;
pub mod targets;
pub mod url_policy;
pub mod vercel;
