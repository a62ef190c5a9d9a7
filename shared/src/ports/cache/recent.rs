//! The recent window: each conversation's newest messages, for clients that reconnect before
//! persistence has caught up.

use crate::Result;
use async_trait::async_trait;
use std::time::Duration;

/// How many of a conversation's newest messages are kept for reconnecting clients, and for how long
/// after the last one. Older ones come from the store, where persistence has long caught up.
pub const RECENT_MESSAGES: usize = 1000;
/// Most bytes of a conversation's window (its entries' payloads, about): messages of up to ~64 KiB would
/// otherwise let one conversation hold 64 MiB of cache. The oldest entries go first; the newest always stays.
pub const RECENT_BYTES: usize = 4 << 20;
/// How long a conversation's window lives after its newest message was remembered.
pub const RECENT_TTL: Duration = Duration::from_secs(3600);

/// Each conversation's newest accepted messages, by seq.
#[async_trait]
pub trait RecentWindow: Send + Sync {
    /// Keeps `payload` (the message as clients see it) as the conversation's message `seq` among its
    /// newest [`RECENT_MESSAGES`] and [`RECENT_BYTES`]: a reconnecting client may have missed messages that are accepted but
    /// not persisted yet. A later call for the same seq replaces the earlier payload.
    async fn remember_recent(&self, app_id: &str, conversation_id: &str, seq: i64, payload: &str) -> Result<()>;
    /// Remembered messages with `seq > after_seq`, ascending.
    async fn recent_after(&self, app_id: &str, conversation_id: &str, after_seq: i64) -> Result<Vec<(i64, String)>> {
        let all = RecentSlice {
            after_seq,
            before_seq: None,
            limit: RECENT_MESSAGES,
            newest: false,
        };
        self.recent_in(app_id, conversation_id, all).await
    }
    /// Remembered messages in `slice`, ascending: only what is asked for is read.
    async fn recent_in(&self, app_id: &str, conversation_id: &str, slice: RecentSlice) -> Result<Vec<(i64, String)>>;
}

/// Which remembered messages to read: those with `after_seq < seq < before_seq`, at most `limit` of
/// them — the oldest, or the `newest`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecentSlice {
    /// Only messages with a higher seq.
    pub after_seq: i64,
    /// Only messages with a lower seq, when set.
    pub before_seq: Option<i64>,
    /// Most messages read.
    pub limit: usize,
    /// The newest `limit` in the range rather than the oldest.
    pub newest: bool,
}

impl RecentSlice {
    /// Exactly the message at `seq`.
    pub fn at(seq: i64) -> Self {
        Self {
            after_seq: seq - 1,
            before_seq: Some(seq + 1),
            limit: 1,
            newest: false,
        }
    }
}
