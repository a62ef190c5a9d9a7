//! The cache port: per-conversation sequence numbers, cross-node idempotency of sends and the
//! membership cache. Redis in production, an in-memory reference driver for the embedded mode; the
//! [`conformance`] suite runs the same checks on both.
//!
//! [`Cache`] is the whole port, made of one trait per aggregate: [`SequenceCache`],
//! [`MembershipCache`], [`RecentWindow`], [`PresenceCache`], [`RestrictionCache`] and [`ResumeCache`]. Their methods
//! resolve on `dyn Cache` without importing them.

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
mod memory;
mod redis;

mod channels;
mod membership;
mod presence;
mod recent;
mod restrictions;
mod resumes;
mod sequences;

pub use self::channels::{
    conversation_channel, presence_channel, presence_channel_user, user_channel, PRESENCE_CHANNEL_PREFIX,
};
pub use self::membership::{MembershipCache, MEMBERSHIP_TTL};
pub use self::memory::MemoryCache;
pub use self::presence::{PresenceCache, PresenceHolder, PRESENCE_TTL};
pub use self::recent::{RecentSlice, RecentWindow, RECENT_BYTES, RECENT_MESSAGES, RECENT_TTL};
pub use self::redis::RedisCache;
pub use self::restrictions::RestrictionCache;
pub use self::resumes::{ResumeCache, RESUME_TTL_CONNECTED, RESUME_TTL_DISCONNECTED};
pub use self::sequences::{
    Claim, ClaimResult, ClaimState, EntryAroundSeq, SendClaim, SendKey, SendRequest, SequenceCache, IDEMPOTENCY_TTL,
};

use crate::Result;

/// Everything the cache port offers; every type with all six aggregates is a `Cache`.
pub trait Cache:
    SequenceCache + MembershipCache + RecentWindow + PresenceCache + RestrictionCache + ResumeCache
{
}

impl<T> Cache for T where
    T: SequenceCache + MembershipCache + RecentWindow + PresenceCache + RestrictionCache + ResumeCache
{
}

/// Opens the cache named by `url`: `redis://…`, a Redis Cluster (`redis+cluster://host:port,…`) or
/// `memory://` (private to this process).
pub async fn connect(url: &str) -> Result<std::sync::Arc<dyn Cache>> {
    if url.starts_with("memory://") {
        Ok(std::sync::Arc::new(MemoryCache::new()))
    } else if crate::ports::redis_target::is_redis_url(url) {
        Ok(std::sync::Arc::new(RedisCache::connect(url).await?))
    } else {
        Err(crate::Error::Config(format!(
            "the cache URL must be redis://…, redis+cluster://… or memory://, got {url}"
        )))
    }
}
