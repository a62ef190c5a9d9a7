//! Resume records: what a Socket.IO client's connection was subscribed to and how far it had got, so
//! the client can resume on any node (Socket.IO's connection-state recovery, mapped onto the
//! per-conversation seq). The socket node owns the record's format; the cache only keeps it, by app and
//! recovery id, for a while.

use crate::Result;
use async_trait::async_trait;
use std::time::Duration;

/// How long a live connection's record is kept after its last save: a node that dies cannot shorten
/// it, so it must outlive any connection a client could want to resume.
pub const RESUME_TTL_CONNECTED: Duration = Duration::from_secs(24 * 3600);
/// How long a record is kept once its connection has closed: Socket.IO's `maxDisconnectionDuration`.
pub const RESUME_TTL_DISCONNECTED: Duration = Duration::from_secs(120);

/// Resume records by app and recovery id.
#[async_trait]
pub trait ResumeCache: Send + Sync {
    /// Keeps `record` as the resume record `pid` of `app_id` for `ttl`, replacing an earlier one.
    async fn save_resume(&self, app_id: &str, pid: &str, record: &str, ttl: Duration) -> Result<()>;
    /// The record, unless it has expired or was never saved (for this app).
    async fn load_resume(&self, app_id: &str, pid: &str) -> Result<Option<String>>;
}
