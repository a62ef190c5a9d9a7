//! The moderation mirror: each app's restrictions and the rate counters that gate a send.

use crate::domain::moderation::{GateCheck, SendGate};
use crate::Result;
use async_trait::async_trait;

/// Each app's restrictions mirrored from the store, and the gate every connection and send passes.
#[async_trait]
pub trait RestrictionCache: Send + Sync {
    /// Mirrors the app's restrictions (field → expiry, 0 for none; see [`crate::domain::moderation`]) for
    /// [`crate::domain::moderation::RESTRICTIONS_TTL`] and marks the mirror loaded, even when empty. Fields
    /// already mirrored stay, so a restriction added meanwhile is not lost.
    async fn mirror_restrictions(&self, app_id: &str, entries: &[(String, i64)]) -> Result<()>;
    /// Adds (`Some(expiry)`) or removes (`None`) one mirrored restriction, if the app's mirror is loaded.
    async fn mirror_restriction(&self, app_id: &str, field: &str, expiry: Option<i64>) -> Result<()>;
    /// Answers a [`GateCheck`]: a restriction in force, else (for a send) the rate limits, which count
    /// the send when it is allowed. `Unloaded` when the app's restrictions are not mirrored.
    async fn gate(&self, check: &GateCheck<'_>) -> Result<SendGate>;
}
