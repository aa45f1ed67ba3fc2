//! The domain's one error type.
//!
//! Every variant says whether a retry can help ([`Error::is_retryable`]): Secrets Manager retries a failed
//! step by itself, so a transient cause should fail the step and let it come again, while a configuration
//! problem should say plainly what to fix. No variant ever carries key material: adapters build messages
//! from ids, names and status codes only.

use std::fmt;

/// Why a call to an external system failed, as far as retrying is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transience {
    /// Throttling, 5xx, timeouts, dropped connections: the same call may succeed later.
    Retryable,
    /// The request itself is wrong (bad credentials, missing resource): repeating it cannot help.
    Final,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The invocation payload is not a rotation event.
    #[error("invalid rotation event: {0}")]
    BadEvent(String),

    /// The secret, its tags or its value are not usable as they are; `fix` tells the operator what to do.
    #[error("secret {secret}: {field}: {problem}; fix: {fix}")]
    Config {
        secret: String,
        field: String,
        problem: String,
        fix: String,
    },

    /// The rotation protocol was invoked in a state it refuses (token not pending, rotation disabled, ...).
    #[error("secret {secret}: {problem}")]
    Protocol { secret: String, problem: String },

    /// The provider answered that the key is not valid (401/403). Final: the key will not start working.
    #[error("secret {secret}: the {provider} key {hint} was rejected: {detail}")]
    KeyRejected {
        secret: String,
        provider: String,
        hint: String,
        detail: String,
    },

    /// A call to an external system failed.
    #[error("{system}: {operation} failed: {detail}")]
    External {
        system: &'static str,
        operation: String,
        detail: String,
        transience: Transience,
    },

    /// A step failed; wraps the cause with the secret and step so the message that reaches Secrets
    /// Manager (and the operator reading CloudWatch) says where it happened.
    #[error("keyrot {step} for secret {secret} failed: {source}")]
    Step {
        step: String,
        secret: String,
        #[source]
        source: Box<Error>,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn config(
        secret: impl Into<String>,
        field: impl Into<String>,
        problem: impl fmt::Display,
        fix: impl Into<String>,
    ) -> Self {
        Error::Config {
            secret: secret.into(),
            field: field.into(),
            problem: problem.to_string(),
            fix: fix.into(),
        }
    }

    pub fn protocol(secret: impl Into<String>, problem: impl fmt::Display) -> Self {
        Error::Protocol {
            secret: secret.into(),
            problem: problem.to_string(),
        }
    }

    pub fn external(
        system: &'static str,
        operation: impl Into<String>,
        detail: impl fmt::Display,
        transience: Transience,
    ) -> Self {
        Error::External {
            system,
            operation: operation.into(),
            detail: detail.to_string(),
            transience,
        }
    }

    /// Whether repeating the failed work later can succeed without anyone changing anything.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::External { transience, .. } => *transience == Transience::Retryable,
            Error::Step { source, .. } => source.is_retryable(),
            Error::BadEvent(_)
            | Error::Config { .. }
            | Error::Protocol { .. }
            | Error::KeyRejected { .. } => false,
        }
    }

    /// A short machine-readable name for the kind of failure, used in audit items and alerts.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::BadEvent(_) => "bad_event",
            Error::Config { .. } => "configuration",
            Error::Protocol { .. } => "protocol",
            Error::KeyRejected { .. } => "key_rejected",
            Error::External { .. } => "external",
            Error::Step { source, .. } => source.kind(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_errors_name_secret_step_and_cause_and_inherit_retryability() {
        let cause = Error::external(
            "secretsmanager",
            "GetSecretValue",
            "throttled",
            Transience::Retryable,
        );
        let err = Error::Step {
            step: "createSecret".into(),
            secret: "prod/openai".into(),
            source: Box::new(cause),
        };
        let text = err.to_string();
        assert!(text.contains("createSecret"), "{text}");
        assert!(text.contains("prod/openai"), "{text}");
        assert!(text.contains("throttled"), "{text}");
        assert!(err.is_retryable());

        let final_err = Error::config("s", "api_key", "missing", "put the key in api_key");
        assert!(!final_err.is_retryable());
        assert_eq!(final_err.kind(), "configuration");
    }
}
