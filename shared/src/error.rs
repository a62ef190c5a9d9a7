//! The one error type of the domain core, and its stable public codes.
//!
//! HTTP functions render it through [`crate::runtime::http`]; the socket node sends the same `code` and
//! `message` in WebSocket error replies, so clients see one vocabulary everywhere.

/// The result type of the domain core; the error type defaults to [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything a use case, port or entry point can fail with.
///
/// Each variant has one stable [`code`](Error::code) and one [`HTTP status`](Error::http_status), shared by the
/// HTTP functions' `{"error":{…}}` bodies and the socket node's error replies. The infrastructure variants
/// (`Store`, `Cache`, `Bus`, `Search`, `Blob`: `unavailable`, 503) and `Config`/`Internal` (`internal`, 500) are
/// server faults whose details stay in the logs (see [`Error::public_message`]).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The body or frame is not JSON at all, or is empty (`invalid_json`, 400). JSON of the wrong shape is
    /// [`Error::Validation`] instead (see the `From<serde_json::Error>` impl).
    #[error("invalid JSON: {0}")]
    InvalidJson(String),
    /// The request is well-formed JSON but breaks a rule: a missing or wrong-typed field, a bad value, an
    /// unsupported content type (`validation_failed`, 400).
    #[error("{0}")]
    Validation(String),
    /// No valid credential: a missing, invalid or expired SDK token, a revoked or unknown session, a wrong operator
    /// token (`unauthorized`, 401).
    #[error("{0}")]
    Unauthorized(String),
    /// The caller is authenticated but may not do this: not a member, not the owner or an admin, or the admin API is
    /// disabled (`forbidden`, 403).
    #[error("{0}")]
    Forbidden(String),
    /// The addressed app, user, conversation, message or attachment does not exist in the caller's app
    /// (`not_found`, 404).
    #[error("{0}")]
    NotFound(String),
    /// The request clashes with the current state: an id that is already taken (in any app), a message that was
    /// deleted, an upload not yet complete, an audit chain that moved on (`conflict`, 409).
    #[error("{0}")]
    Conflict(String),
    /// An active ban restriction refuses the user, app-wide or in the conversation (`user_banned`, 403).
    #[error("{0}")]
    Banned(String),
    /// An active mute restriction keeps the user from sending (`user_muted`, 403).
    #[error("{0}")]
    Muted(String),
    /// The message contains terms the app's content policy blocks.
    #[error("{0}")]
    ContentBlocked(String),
    /// The sender's or the whole app's message rate limit is reached (`rate_limited`, 429).
    #[error("{message}")]
    RateLimited {
        /// The human-readable reason, naming whose limit was reached and when to retry.
        message: String,
        /// How long to wait before retrying, in milliseconds.
        retry_after_ms: i64,
    },
    /// A per-user or per-device quota is full: devices per user, unclaimed one-time keys per device
    /// (`limit_exceeded`, 409). The message names the limit.
    #[error("{0}")]
    LimitExceeded(String),
    /// A legal hold forbids the requested erasure.
    #[error("{0}")]
    LegalHold(String),
    /// The request body is larger than the limit it carries, in bytes (see
    /// [`MAX_BODY_BYTES`](crate::runtime::http::MAX_BODY_BYTES)) (`payload_too_large`, 413).
    #[error("request body exceeds {0} bytes")]
    PayloadTooLarge(usize),
    /// No HTTP route matches the method and path (`route_not_found`, 404).
    #[error("{0}")]
    RouteNotFound(String),
    /// The path exists but not for this HTTP method (`method_not_allowed`, 405).
    #[error("{0}")]
    MethodNotAllowed(String),
    /// A socket frame's `type` is not an event the protocol knows; carries the type as sent (`unknown_event`, 400).
    #[error("unknown event type {0:?}")]
    UnknownEvent(String),
    /// A feature this deployment has not been set up for, e.g. webhooks without `CAAS_SECRETS_KEY`
    /// (`not_configured`, 503); the message names the missing setting.
    #[error("{0}")]
    NotConfigured(String),
    /// The process configuration is missing or invalid, e.g. a short JWT secret (`internal`, 500; details only in
    /// the logs).
    #[error("configuration: {0}")]
    Config(String),
    /// The MongoDB store failed (`unavailable`, 503; the caller may retry the same request).
    #[error("store: {0}")]
    Store(#[from] mongodb::error::Error),
    /// Redis (the cache, presence or fan-out) failed (`unavailable`, 503).
    #[error("cache: {0}")]
    Cache(#[from] redis::RedisError),
    /// The event bus (Kafka or the in-memory bus) failed: creating a client or topic, publishing, consuming
    /// (`unavailable`, 503).
    #[error("bus: {0}")]
    Bus(String),
    /// The embedded search index failed to open, write or read (`unavailable`, 503).
    #[error("search index: {0}")]
    Search(String),
    /// The blob store (S3 or the local directory) holding attachments failed (`unavailable`, 503).
    #[error("blob store: {0}")]
    Blob(String),
    /// A bug or an impossible state, such as a value that fails to encode (`internal`, 500; details only in the
    /// logs).
    #[error("internal: {0}")]
    Internal(String),
}

impl Error {
    /// Stable machine-readable code clients can branch on.
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidJson(_) => "invalid_json",
            Error::Validation(_) => "validation_failed",
            Error::Unauthorized(_) => "unauthorized",
            Error::Forbidden(_) => "forbidden",
            Error::NotFound(_) => "not_found",
            Error::Conflict(_) => "conflict",
            Error::Banned(_) => "user_banned",
            Error::Muted(_) => "user_muted",
            Error::ContentBlocked(_) => "content_blocked",
            Error::RateLimited { .. } => "rate_limited",
            Error::LegalHold(_) => "legal_hold",
            Error::LimitExceeded(_) => "limit_exceeded",
            Error::PayloadTooLarge(_) => "payload_too_large",
            Error::RouteNotFound(_) => "route_not_found",
            Error::MethodNotAllowed(_) => "method_not_allowed",
            Error::UnknownEvent(_) => "unknown_event",
            Error::NotConfigured(_) => "not_configured",
            Error::Store(_) | Error::Cache(_) | Error::Bus(_) | Error::Search(_) | Error::Blob(_) => "unavailable",
            Error::Config(_) | Error::Internal(_) => "internal",
        }
    }

    /// The HTTP status the error is answered with; the socket node uses [`Error::is_server_fault`] instead to pick
    /// its close code.
    pub fn http_status(&self) -> u16 {
        match self {
            Error::InvalidJson(_) | Error::Validation(_) | Error::UnknownEvent(_) => 400,
            Error::Unauthorized(_) => 401,
            Error::Forbidden(_) | Error::Banned(_) | Error::Muted(_) => 403,
            Error::ContentBlocked(_) => 422,
            Error::RateLimited { .. } => 429,
            Error::LegalHold(_) | Error::LimitExceeded(_) => 409,
            Error::NotFound(_) | Error::RouteNotFound(_) => 404,
            Error::MethodNotAllowed(_) => 405,
            Error::Conflict(_) => 409,
            Error::PayloadTooLarge(_) => 413,
            Error::Store(_) | Error::Cache(_) | Error::Bus(_) | Error::Search(_) | Error::Blob(_) => 503,
            Error::NotConfigured(_) => 503,
            Error::Config(_) | Error::Internal(_) => 500,
        }
    }

    /// The message shown to callers. Infrastructure details stay in the logs, not in responses.
    pub fn public_message(&self) -> String {
        match self {
            Error::Store(_) | Error::Cache(_) | Error::Bus(_) | Error::Search(_) | Error::Blob(_) => {
                "a backing service is unavailable; retry with the same request".to_owned()
            }
            Error::Config(_) | Error::Internal(_) => "internal error".to_owned(),
            other => other.to_string(),
        }
    }

    /// How long a `rate_limited` caller should wait, in milliseconds; sent beside the message (the
    /// socket's error body, HTTP's JSON body and its `Retry-After`) so clients need not parse text.
    pub fn retry_after_ms(&self) -> Option<i64> {
        match self {
            Error::RateLimited { retry_after_ms, .. } => Some(*retry_after_ms),
            _ => None,
        }
    }

    /// Whether the fault is the platform's (status 5xx) rather than the caller's: such errors are logged at error
    /// level, and a socket refused for one is closed with "try again" rather than "policy".
    pub fn is_server_fault(&self) -> bool {
        self.http_status() >= 500
    }
}

impl From<serde_json::Error> for Error {
    fn from(err: serde_json::Error) -> Self {
        match err.classify() {
            serde_json::error::Category::Data => Error::Validation(err.to_string()),
            _ => Error::InvalidJson(err.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_syntax_and_shape_errors_get_different_codes() {
        let syntax = serde_json::from_str::<serde_json::Value>("{nope").unwrap_err();
        assert_eq!(Error::from(syntax).code(), "invalid_json");
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Needs {
            field: String,
        }
        let shape = serde_json::from_str::<Needs>("{}").unwrap_err();
        let err = Error::from(shape);
        assert_eq!(err.code(), "validation_failed");
        assert!(err.public_message().contains("field"));
    }

    #[test]
    fn infrastructure_details_are_not_shown_to_callers() {
        let err = Error::Bus("broker 10.0.0.1 refused".into());
        assert_eq!(err.http_status(), 503);
        assert!(!err.public_message().contains("10.0.0.1"));
    }
}
