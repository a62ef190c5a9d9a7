//! The recent window in Redis: one sorted set per conversation, scored by seq, and beside it (same
//! hash tag) its tally, `count:bytes` of its entries — kept by the scripts that write the window, so a
//! send spends no call on it beyond the one write that renews its expiry.

/// Lua that adds `entry` at `seq` to the window (key `window`, tally at `tally_key`, `tally` its value
/// as read, or false) and trims the oldest entries past `max_count` or `max_bytes` (the newest always
/// stays), then writes the tally and renews both expiries to `ttl`. Shared by the send script and
/// [`REMEMBER_SCRIPT`], which set those locals first (and may have removed entries: `removed_count`,
/// `removed_bytes`). A tally that is gone while its window is not (evicted alone) is counted again
/// from the window, once.
macro_rules! window_add_lua {
    () => {
        r#"
local count, bytes
if tally then
  local sep = string.find(tally, ':', 1, true)
  count, bytes = tonumber(string.sub(tally, 1, sep - 1)), tonumber(string.sub(tally, sep + 1))
  count, bytes = count - removed_count, bytes - removed_bytes
else
  count, bytes = 0, 0
  for _, member in ipairs(redis.call('ZRANGE', window, 0, -1)) do
    count, bytes = count + 1, bytes + #member
  end
end
redis.call('ZADD', window, seq, entry)
count, bytes = count + 1, bytes + #entry
while count > 1 and (count > max_count or bytes > max_bytes) do
  local oldest = redis.call('ZPOPMIN', window)
  if #oldest == 0 then break end
  if tonumber(oldest[2]) == tonumber(seq) then
    -- The tally counted entries that are gone (the window expired before it): keep this one and count
    -- again what is there.
    redis.call('ZADD', window, seq, oldest[1])
    count, bytes = 0, 0
    for _, member in ipairs(redis.call('ZRANGE', window, 0, -1)) do
      count, bytes = count + 1, bytes + #member
    end
    break
  end
  count, bytes = count - 1, bytes - #oldest[1]
end
redis.call('SET', tally_key, count .. ':' .. bytes, 'EX', ttl)
redis.call('EXPIRE', window, ttl)
"#
    };
}
pub(super) use window_add_lua;

/// `RecentWindow::remember_recent`: replaces any entry at the seq. KEYS: window, its tally. ARGV: seq,
/// entry, most entries, most bytes, TTL.
pub(super) const REMEMBER_SCRIPT: &str = concat!(
    r#"
local window, tally_key, seq, entry = KEYS[1], KEYS[2], ARGV[1], ARGV[2]
local max_count, max_bytes, ttl = tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local tally = redis.call('GET', tally_key)
local removed_count, removed_bytes = 0, 0
for _, old in ipairs(redis.call('ZRANGEBYSCORE', window, seq, seq)) do
  redis.call('ZREM', window, old)
  removed_count, removed_bytes = removed_count + 1, removed_bytes + #old
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
            .key(format!("{tag}:recent:tally"))
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
