//! Users of an app and their sessions (one per issued token).

use serde::{Deserialize, Serialize};

/// One sign-in of a user: every SDK token carries its session id (`jti`), and refreshing keeps it, so
/// revoking the session (logout, a ban) ends every token and live connection of it at once.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Session {
    /// The session id, a UUID; SDK tokens carry it as their `jti` claim.
    pub id: String,
    /// The app the session belongs to.
    pub app_id: String,
    /// The platform user id the session signs in (the tokens' `sub`).
    pub user_id: String,
    /// Unix ms.
    pub created_at: i64,
    /// Unix seconds, the `exp` of the session's newest token.
    pub expires_at: i64,
    /// Unix ms; a revoked session's tokens are refused everywhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<i64>,
    /// The correlation id of the request that started the session.
    pub correlation_id: String,
}

impl Session {
    /// Not revoked, and its newest token not expired at `now_ms`.
    pub fn is_active(&self, now_ms: i64) -> bool {
        self.revoked_at.is_none() && self.expires_at * 1000 > now_ms
    }
}

/// A user of one app, created on first sight when the app's backend requests an SDK token for them.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct User {
    /// Platform user id (a UUID v7), used as `sub` in SDK tokens, `sender_id` and `member_ids`.
    pub id: String,
    /// The app the user belongs to.
    pub app_id: String,
    /// The id the app's own backend uses for this user; unique within the app.
    pub external_id: String,
    /// Name shown to other users, trimmed (at most [`limits::MAX_NAME_CHARS`](super::limits::MAX_NAME_CHARS) bytes); updated whenever a token
    /// request gives one, dropped on erasure. `None` when never given.
    #[serde(default)]
    pub display_name: Option<String>,
    /// When the user was first seen, Unix ms.
    pub created_at: i64,
    /// The correlation id of the request that created the user.
    pub correlation_id: String,
}
