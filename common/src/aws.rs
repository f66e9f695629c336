//! The AWS SDK configuration and the one way every AWS implementation classifies a failed call.
//!
//! Build the [`SdkConfig`] once at start-up with [`load_sdk_config`] and share it between the
//! S3, SQS and Glue clients. The endpoint comes from the environment (`AWS_ENDPOINT_URL`, which
//! moto and LocalStack use); there is no code branch for emulators.

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

/// Loads region, credentials, endpoint and retry settings from the environment and profile.
///
/// The SDK retries throttling and transient errors itself (standard mode, 3 attempts); what an
/// implementation sees afterwards has already survived those retries.
pub async fn load_sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).load().await
}

/// Error codes that mean "the same call may succeed later", across S3, SQS and Glue.
const TRANSIENT_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "SlowDown",
    "PriorRequestNotComplete",
    "RequestTimeout",
    "RequestTimeoutException",
    "InternalError",
    "InternalFailure",
    "InternalServiceException",
    "ServiceUnavailable",
    "OperationTimeoutException",
    "ConcurrentModificationException",
    "KmsThrottled",
];

/// A failed SDK call reduced to what callers and logs need. Never holds credentials: only the
/// service's error code and message, or the transport error chain, are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CallFailure {
    /// The service's error code (`NoSuchKey`, `EntityNotFoundException`), when it sent one.
    pub code: Option<String>,
    /// The HTTP status of the response, when there was one.
    pub status: Option<u16>,
    /// True when trying again later may succeed: throttling, 5xx, timeouts, a connection that
    /// failed or a response that broke off.
    pub transient: bool,
    pub message: String,
}

impl CallFailure {
    pub fn code_is(&self, code: &str) -> bool {
        self.code.as_deref() == Some(code)
    }
}

/// Classifies a failed call of any SDK client (the `SdkError` type is shared by all of them).
pub(crate) fn classify<E>(err: &SdkError<E>) -> CallFailure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let status = err.raw_response().map(|r| r.status().as_u16());
    let code = err.code().map(str::to_owned);
    let transient = match err {
        SdkError::TimeoutError(_) | SdkError::ResponseError(_) => true,
        // A connector error the caller caused (a malformed endpoint, say) will fail again.
        SdkError::DispatchFailure(failure) => !failure.is_user(),
        SdkError::ServiceError(_) => {
            status.is_some_and(|s| s == 429 || s >= 500)
                || code
                    .as_deref()
                    .is_some_and(|c| TRANSIENT_CODES.contains(&c))
        }
        _ => false,
    };
    let message = match (err, code.as_deref()) {
        (SdkError::ServiceError(_), Some(code)) => match err.message() {
            Some(text) => format!("{code}: {text}"),
            None => code.to_owned(),
        },
        _ => DisplayErrorContext(err).to_string(),
    };
    let message = match status {
        Some(status) => format!("{message} (http {status})"),
        None => message,
    };
    CallFailure {
        code,
        status,
        transient,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_s3::operation::get_object::GetObjectError;
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;

    fn service_error(code: &str, status: u16) -> SdkError<GetObjectError> {
        let meta = ErrorMetadata::builder()
            .code(code)
            .message("told so")
            .build();
        let response = aws_sdk_s3::config::http::HttpResponse::new(
            status.try_into().expect("a valid status"),
            SdkBody::empty(),
        );
        SdkError::service_error(GetObjectError::generic(meta), response)
    }

    #[test]
    fn throttling_and_server_errors_are_transient() {
        assert!(classify(&service_error("SlowDown", 503)).transient);
        assert!(classify(&service_error("ThrottlingException", 400)).transient);
        assert!(classify(&service_error("Whatever", 500)).transient);
        assert!(classify(&service_error("Whatever", 429)).transient);
    }

    #[test]
    fn client_errors_are_permanent_and_keep_code_and_status() {
        let failure = classify(&service_error("AccessDenied", 403));
        assert!(!failure.transient);
        assert!(failure.code_is("AccessDenied"));
        assert_eq!(failure.status, Some(403));
        assert_eq!(failure.message, "AccessDenied: told so (http 403)");
    }

    #[test]
    fn timeouts_are_transient() {
        let err: SdkError<GetObjectError> = SdkError::timeout_error("took too long");
        let failure = classify(&err);
        assert!(failure.transient);
        assert_eq!(failure.status, None);
    }
}
