//! What every AWS adapter shares: building the SDK configuration, and turning an `SdkError` into the
//! domain's error with its retryability.

use aws_sdk_secretsmanager::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use crate::error::{Error, Transience};

/// The shared SDK configuration: region, credentials and `AWS_ENDPOINT_URL` from the environment.
/// Loaded once per process and reused across invocations.
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}

/// Error codes that mean "try again later" across the services keyrot calls.
const RETRYABLE_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "ProvisionedThroughputExceededException",
    "TransactionConflictException",
    "InternalServiceError",
    "InternalServerError",
    "InternalFailure",
    "ServiceUnavailable",
    "ServiceUnavailableException",
];

/// The service's error code, when the error is an answer from the service.
pub(crate) fn error_code<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> Option<&str> {
    err.as_service_error().and_then(ProvideErrorMetadata::code)
}

/// How an error that is about the caller's AWS credentials begins, so that the CLI can say how to log
/// in instead of "could not reach the service".
pub const CREDENTIALS_PROBLEM: &str = "AWS credentials:";

/// Error codes that mean the caller's credentials were refused (expired, unknown or malformed).
const CREDENTIAL_CODES: &[&str] = &[
    "ExpiredToken",
    "ExpiredTokenException",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
];

pub(crate) fn sdk_error<E, R>(system: &'static str, operation: &str, err: &SdkError<E, R>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    if let Some(detail) = credentials_problem(err) {
        return Error::external(system, operation, detail, Transience::Final);
    }
    let (detail, transience) = match err {
        SdkError::ServiceError(service) => {
            let meta = service.err();
            let code = meta.code().unwrap_or("unknown error");
            let message = meta.message().unwrap_or("");
            let transience = if RETRYABLE_CODES.contains(&code) {
                Transience::Retryable
            } else {
                Transience::Final
            };
            (format!("{code}: {message}"), transience)
        }
        SdkError::ConstructionFailure(_) => (
            "the request could not be built".to_owned(),
            Transience::Final,
        ),
        SdkError::TimeoutError(_) => ("timed out".to_owned(), Transience::Retryable),
        SdkError::DispatchFailure(_) => (
            "could not reach the service".to_owned(),
            Transience::Retryable,
        ),
        SdkError::ResponseError(_) => ("unreadable response".to_owned(), Transience::Retryable),
        _ => ("unexpected SDK error".to_owned(), Transience::Retryable),
    };
    Error::external(system, operation, detail, transience)
}

/// A refusal of the caller's credentials, or no credentials at all (the SDK found none, or an SSO
/// session has expired): said as such, since no retry helps.
fn credentials_problem<E, R>(err: &SdkError<E, R>) -> Option<String>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    if let Some(code) = error_code(err).filter(|code| CREDENTIAL_CODES.contains(code)) {
        let message = err
            .as_service_error()
            .and_then(ProvideErrorMetadata::message)
            .unwrap_or("");
        return Some(format!(
            "{CREDENTIALS_PROBLEM} refused by AWS ({code}: {message}); the session may have expired"
        ));
    }
    if err.as_service_error().is_some() {
        return None;
    }
    let chain = DisplayErrorContext(err).to_string();
    let lower = chain.to_ascii_lowercase();
    (lower.contains("credential") || lower.contains("sso")).then(|| {
        format!("{CREDENTIALS_PROBLEM} none could be loaded, or the session has expired ({chain})")
    })
}
