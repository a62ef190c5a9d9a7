//! Correlation ids: one id follows a request from the client through HTTP, the socket node, Kafka
//! headers, the functions and into every MongoDB document and log line it causes.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The HTTP header (and WebSocket upgrade header) a correlation id is read from and echoed in.
pub const HEADER: &str = "x-correlation-id";
/// Kafka header carrying the id (ARCHITECTURE.md: headers use snake_case names).
pub const KAFKA_HEADER: &str = "correlation_id";
const MAX_LEN: usize = 128;

/// A correlation id that is safe to echo in headers and write to logs: a caller-supplied id of at most 128 ASCII
/// letters, digits and `-_.:/+=`, or a generated UUID v4. Serialised as a plain string.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CorrelationId(String);

impl CorrelationId {
    /// A fresh id (a UUID v4), for requests that came without a usable one.
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }

    /// Accepts a caller-supplied id when it is safe to echo and log (printable ASCII, bounded length);
    /// anything else is replaced rather than rejected, so a bad header never fails a request.
    pub fn from_untrusted(value: Option<&str>) -> Self {
        match value.map(str::trim) {
            Some(v) if Self::is_acceptable(v) => Self(v.to_owned()),
            _ => Self::generate(),
        }
    }

    fn is_acceptable(value: &str) -> bool {
        !value.is_empty()
            && value.len() <= MAX_LEN
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:/+=".contains(&b))
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CorrelationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

tokio::task_local! {
    /// The id of the request being served, so errors rendered deep in a handler can quote it.
    pub static CURRENT: CorrelationId;
}

/// The current request's id, if the caller runs inside a correlation scope.
pub fn current() -> Option<CorrelationId> {
    CURRENT.try_with(Clone::clone).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_safe_ids_and_replaces_unsafe_ones() {
        assert_eq!(CorrelationId::from_untrusted(Some("req-42")).as_str(), "req-42");
        let replaced = CorrelationId::from_untrusted(Some("bad\nid"));
        assert_ne!(replaced.as_str(), "bad\nid");
        assert_eq!(replaced.as_str().len(), 36);
        let long = "a".repeat(MAX_LEN + 1);
        assert_ne!(CorrelationId::from_untrusted(Some(&long)).as_str(), long);
    }
}
