//! The moderation mirror: each app's restrictions and the rate counters that gate a send.

use crate::domain::moderation::{GateCheck, SendGate};
use crate::Result;
use async_trait::async_trait;

/// Each app's restrictions mirrored from the store, and the gate every connection and send passes.
#[async_trait]
pub trait RestrictionCache: Send + Sync {
    /// How many single changes ([`Self::mirror_restriction`]) the app's mirror has seen; read before the
    /// store when reloading, so that [`Self::mirror_restrictions`] can tell whether a change raced it.
    async fn restrictions_version(&self, app_id: &str) -> Result<u64>;
    /// Mirrors the app's restrictions (field → expiry, 0 for none; see [`crate::domain::moderation`]) for
    /// [`crate::domain::moderation::RESTRICTIONS_TTL`] and marks the mirror loaded, even when empty —
    /// only if no single change came since [`Self::restrictions_version`] answered `version`; `false`
    /// otherwise (the entries may predate that change: read the store again). Without this check a
    /// reload that read the store just before a mute could overwrite the mute's mirror.
    async fn mirror_restrictions(&self, app_id: &str, entries: &[(String, i64)], version: u64) -> Result<bool>;
    /// Adds (`Some(expiry)`) or removes (`None`) one mirrored restriction, if the app's mirror is loaded,
    /// and counts the change either way (so a reload under way starts over).
    async fn mirror_restriction(&self, app_id: &str, field: &str, expiry: Option<i64>) -> Result<()>;
    /// Answers a [`GateCheck`]: a restriction in force, else (for a send) the rate limits, which count
    /// the send when it is allowed. `Unloaded` when the app's restrictions are not mirrored.
    async fn gate(&self, check: &GateCheck<'_>) -> Result<SendGate>;
}
