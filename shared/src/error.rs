//! The one error type of the domain core, and its stable public codes.
//!
//! HTTP functions render it through [`crate::runtime::http`]; the socket node sends the same `code` and
//! `message` in WebSocket error replies, so clients see one vocabulary everywhere.

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid JSON: {0}")]
    InvalidJson(String),
    #[error("{0}")]
    Validation(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Banned(String),
    #[error("{0}")]
    Muted(String),
    /// The message contains terms the app's content policy blocks.
    #[error("{0}")]
    ContentBlocked(String),
    #[error("{message}")]
    RateLimited { message: String, retry_after_ms: i64 },
    /// A legal hold forbids the requested erasure.
    #[error("{0}")]
    LegalHold(String),
    #[error("request body exceeds {0} bytes")]
    PayloadTooLarge(usize),
    #[error("{0}")]
    RouteNotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("unknown event type {0:?}")]
    UnknownEvent(String),
    #[error("configuration: {0}")]
    Config(String),
    #[error("store: {0}")]
    Store(#[from] mongodb::error::Error),
    #[error("cache: {0}")]
    Cache(#[from] redis::RedisError),
    #[error("bus: {0}")]
    Bus(String),
    #[error("search index: {0}")]
    Search(String),
    #[error("blob store: {0}")]
    Blob(String),
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
            Error::PayloadTooLarge(_) => "payload_too_large",
            Error::RouteNotFound(_) => "route_not_found",
            Error::MethodNotAllowed(_) => "method_not_allowed",
            Error::UnknownEvent(_) => "unknown_event",
            Error::Store(_) | Error::Cache(_) | Error::Bus(_) | Error::Search(_) | Error::Blob(_) => "unavailable",
            Error::Config(_) | Error::Internal(_) => "internal",
        }
    }

    pub fn http_status(&self) -> u16 {
        match self {
            Error::InvalidJson(_) | Error::Validation(_) | Error::UnknownEvent(_) => 400,
            Error::Unauthorized(_) => 401,
            Error::Forbidden(_) | Error::Banned(_) | Error::Muted(_) => 403,
            Error::ContentBlocked(_) => 422,
            Error::RateLimited { .. } => 429,
            Error::LegalHold(_) => 409,
            Error::NotFound(_) | Error::RouteNotFound(_) => 404,
            Error::MethodNotAllowed(_) => 405,
            Error::Conflict(_) => 409,
            Error::PayloadTooLarge(_) => 413,
            Error::Store(_) | Error::Cache(_) | Error::Bus(_) | Error::Search(_) | Error::Blob(_) => 503,
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
