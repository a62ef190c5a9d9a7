//! The recent window in Redis: one sorted set per conversation, scored by seq, and beside it (same
//! hash tag) the bytes its entries hold.

/// Lua that adds `entry` at `seq` to the window at KEYS[w] (bytes at KEYS[b]) and trims the oldest
/// entries past `max_count` or `max_bytes` (the newest always stays), then renews both expiries to
/// `ttl`. Shared by the send script and [`REMEMBER_SCRIPT`]; expects those locals to be set. When the
/// byte tally cannot be trusted (a key evicted alone), a window trimmed to one entry re-counts.
macro_rules! window_add_lua {
    () => {
        r#"
redis.call('ZADD', window, seq, entry)
local bytes = redis.call('INCRBY', bytes_key, #entry)
local count = redis.call('ZCARD', window)
while count > 1 and (count > max_count or bytes > max_bytes) do
  local oldest = redis.call('ZPOPMIN', window)
  bytes = redis.call('DECRBY', bytes_key, #oldest[1])
  count = count - 1
end
if count == 1 then redis.call('SET', bytes_key, #redis.call('ZRANGE', window, 0, 0)[1]) end
redis.call('EXPIRE', window, ttl)
redis.call('EXPIRE', bytes_key, ttl)
"#
    };
}
pub(super) use window_add_lua;

/// `RecentWindow::remember_recent`: replaces any entry at the seq. KEYS: window, its bytes. ARGV: seq,
/// entry, most entries, most bytes, TTL.
pub(super) const REMEMBER_SCRIPT: &str = concat!(
    r#"
local window, bytes_key, seq, entry = KEYS[1], KEYS[2], ARGV[1], ARGV[2]
local max_count, max_bytes, ttl = tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
for _, old in ipairs(redis.call('ZRANGEBYSCORE', window, seq, seq)) do
  redis.call('ZREM', window, old)
  redis.call('DECRBY', bytes_key, #old)
end
"#,
    window_add_lua!(),
    "return 1\n"
);

use super::{conversation_tag, RedisCache};
use crate::ports::cache::{RecentSlice, RecentWindow, RECENT_BYTES, RECENT_MESSAGES, RECENT_TTL};
use crate::{Error, Result};
use async_trait::async_trait;
use redis::AsyncCommands;

#[async_trait]
impl RecentWindow for RedisCache {
    async fn remember_recent(&self, app_id: &str, conversation_id: &str, seq: i64, payload: &str) -> Result<()> {
        let tag = conversation_tag(app_id, conversation_id);
        let _: i64 = self
            .remember_script
            .key(format!("{tag}:recent"))
            .key(format!("{tag}:recent:bytes"))
            .arg(seq)
            // Members of a sorted set are unique: two messages with equal text must not collapse.
            .arg(format!("{seq}|{payload}"))
            .arg(RECENT_MESSAGES)
            .arg(RECENT_BYTES)
            .arg(RECENT_TTL.as_secs())
            .invoke_async(&mut self.conn())
            .await?;
        Ok(())
    }

    async fn recent_in(&self, app_id: &str, conversation_id: &str, slice: RecentSlice) -> Result<Vec<(i64, String)>> {
        let key = format!("{}:recent", conversation_tag(app_id, conversation_id));
        let low = format!("({}", slice.after_seq);
        let high = slice
            .before_seq
            .map_or_else(|| "+inf".to_owned(), |before| format!("({before}"));
        let limit = isize::try_from(slice.limit).unwrap_or(isize::MAX);
        let mut members: Vec<String> = match slice.newest {
            false => self.conn().zrangebyscore_limit(key, low, high, 0, limit).await?,
            true => self.conn().zrevrangebyscore_limit(key, high, low, 0, limit).await?,
        };
        if slice.newest {
            members.reverse();
        }
        members
            .into_iter()
            .map(|member| {
                let (seq, payload) = member
                    .split_once('|')
                    .ok_or_else(|| Error::Internal("malformed recent message".into()))?;
                let seq = seq
                    .parse()
                    .map_err(|_| Error::Internal("malformed recent message seq".into()))?;
                Ok((seq, payload.to_owned()))
            })
            .collect()
    }
}
