//! The users part of the store port: users, their sessions and their pseudonymisation on erasure.

use crate::domain::model::{Session, User};
use crate::Result;
use async_trait::async_trait;

/// Users, their sessions and their pseudonymisation on erasure.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Creates the user on first sight, updates the display name when one is given.
    async fn upsert_user(&self, user: &User) -> Result<User>;
    /// The users among `ids` that exist in this app.
    async fn find_users(&self, app_id: &str, ids: &[String]) -> Result<Vec<User>>;
    /// Records a new session.
    async fn insert_session(&self, session: &Session) -> Result<()>;
    /// Records many new sessions in one write (tokens issued for a whole fleet of users at once, as the
    /// load benchmark does); a session id already recorded is a conflict and the others are still written.
    async fn insert_sessions(&self, sessions: &[Session]) -> Result<()>;
    /// The session; `None` when it was never recorded in this app. Revoked and expired sessions are returned too.
    async fn find_session(&self, app_id: &str, session_id: &str) -> Result<Option<Session>>;
    /// The sessions among `session_ids` recorded in this app, in no particular order, with one read (the
    /// socket node checks a burst of connects this way). Revoked and expired sessions are returned too.
    async fn find_sessions(&self, app_id: &str, session_ids: &[String]) -> Result<Vec<Session>>;
    /// Moves an unrevoked session's expiry (a refresh); `None` when it is missing or revoked, so a
    /// refresh racing a logout cannot bring the session back.
    async fn extend_session(&self, app_id: &str, session_id: &str, expires_at: i64) -> Result<Option<Session>>;
    /// Revokes the user's unrevoked sessions (only `session_id` when given) and returns them as they
    /// were before.
    async fn revoke_sessions(
        &self,
        app_id: &str,
        user_id: &str,
        session_id: Option<&str>,
        revoked_at: i64,
    ) -> Result<Vec<Session>>;
    /// Revokes every unrevoked session of the app (a secret rotation that ends all sessions); returns how
    /// many it revoked.
    async fn revoke_app_sessions(&self, app_id: &str, revoked_at: i64) -> Result<u64>;
    /// The user's sessions, revoked and expired ones included, oldest first.
    async fn list_sessions(&self, app_id: &str, user_id: &str) -> Result<Vec<Session>>;
    /// Replaces the user's external id by `pseudonym` and drops the display name.
    async fn pseudonymise_user(&self, app_id: &str, user_id: &str, pseudonym: &str) -> Result<User>;
}
