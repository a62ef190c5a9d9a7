//! The moderation mirror and rate counters in Redis.

use super::RedisCache;
use crate::domain::moderation::{GateCheck, RateScope, SendGate, RESTRICTIONS_TTL};
use crate::ports::cache::RestrictionCache;
use crate::Result;
use async_trait::async_trait;
use redis::AsyncCommands;

/// The gate as a Lua function, `gate(k, a)`, for [`GATE_SCRIPT`] and the send script (which runs it
/// first on a single server, saving a round trip per send): KEYS[k..k+2] are the app's restriction
/// mirror, the user's and the app's rate counter of this second; ARGV[a] is now (ms), ARGV[a+1] and
/// ARGV[a+2] the user's and the app's limit per second (0: none), ARGV[a+3..] the restrictions asked
/// about. Atomically: the first of those restrictions in force (its 1-based position and expiry), else
/// the rate counters, which count the send when it fits. `{-2, 0}`: the app's restrictions are not
/// mirrored; `{0, 0}`: allowed; `{-1, ms}` / `{-3, ms}`: the user's / app's rate limit is reached, retry
/// in `ms`. The mirror's marker and every restriction asked about are read with one HMGET; an app without
/// rate limits (the default) returns right after it, before the limits' tables are built (a tenth of the
/// send script's Redis time, measured with `redis-benchmark -P 16`).
macro_rules! gate_lua {
    () => {
        r#"
local function gate(k, a)
  local found = redis.call('HMGET', KEYS[k], '_loaded', unpack(ARGV, a + 3))
  if not found[1] then return {-2, 0} end
  local now = tonumber(ARGV[a])
  for i = 2, #found do
    if found[i] then
      local t = tonumber(found[i])
      if t == 0 or t > now then return {i - 1, t} end
    end
  end
  if ARGV[a + 1] == '0' and ARGV[a + 2] == '0' then return {0, 0} end
  local retry = 1000 - (now % 1000)
  local limits = {{KEYS[k + 1], tonumber(ARGV[a + 1]), -1}, {KEYS[k + 2], tonumber(ARGV[a + 2]), -3}}
  for _, limit in ipairs(limits) do
    if limit[2] > 0 and tonumber(redis.call('GET', limit[1]) or '0') >= limit[2] then return {limit[3], retry} end
  end
  for _, limit in ipairs(limits) do
    if limit[2] > 0 then
      redis.call('INCR', limit[1])
      redis.call('PEXPIRE', limit[1], 2000)
    end
  end
  return {0, 0}
end
"#
    };
}
pub(super) use gate_lua;

/// `RestrictionCache::gate`: [`gate_lua`] over KEYS[1..3] and ARGV[1..].
pub(super) const GATE_SCRIPT: &str = concat!(gate_lua!(), "return gate(1, 1)\n");

/// Counts a change to the app's restrictions, then applies it where the app's mirror is loaded
/// (elsewhere the next check loads it from the store, so no mirror is ever left without its expiry).
/// The count keeps the key's expiry (or gets one), so an unloaded mirror does not live forever.
/// ARGV: field, expiry ('' to remove), TTL.
pub(super) const MIRROR_ONE_SCRIPT: &str = r#"
redis.call('HINCRBY', KEYS[1], '_version', 1)
if redis.call('TTL', KEYS[1]) < 0 then redis.call('EXPIRE', KEYS[1], ARGV[3]) end
if redis.call('HEXISTS', KEYS[1], '_loaded') == 0 then return 0 end
if ARGV[2] == '' then return redis.call('HDEL', KEYS[1], ARGV[1]) end
return redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
"#;

/// A reload of the app's mirror, only if no change was counted since the reloader read the count
/// (ARGV[1]) before reading the store: 1 when mirrored, 0 when a change raced it. ARGV: count, TTL,
/// then field and expiry pairs.
pub(super) const MIRROR_ALL_SCRIPT: &str = r#"
if tonumber(redis.call('HGET', KEYS[1], '_version') or '0') ~= tonumber(ARGV[1]) then return 0 end
local loaded = redis.call('HEXISTS', KEYS[1], '_loaded') == 1
for first = 3, #ARGV, 200 do
  redis.call('HSET', KEYS[1], unpack(ARGV, first, math.min(first + 199, #ARGV)))
end
redis.call('HSET', KEYS[1], '_loaded', 1)
if not loaded then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return 1
"#;

/// An app's moderation keys share its hash tag, so the gate script touches one slot.
fn restrictions_key(app_id: &str) -> String {
    format!("caas:{{{app_id}}}:restrictions")
}

#[async_trait]
impl RestrictionCache for RedisCache {
    async fn restrictions_version(&self, app_id: &str) -> Result<u64> {
        let version: Option<u64> = self.conn().hget(restrictions_key(app_id), "_version").await?;
        Ok(version.unwrap_or(0))
    }

    async fn mirror_restrictions(&self, app_id: &str, entries: &[(String, i64)], version: u64) -> Result<bool> {
        let mut invocation = self.mirror_all_script.prepare_invoke();
        invocation
            .key(restrictions_key(app_id))
            .arg(version)
            .arg(RESTRICTIONS_TTL.as_secs());
        for (field, expiry) in entries {
            invocation.arg(field).arg(expiry);
        }
        let mirrored: i64 = invocation.invoke_async(&mut self.conn()).await?;
        Ok(mirrored == 1)
    }

    async fn mirror_restriction(&self, app_id: &str, field: &str, expiry: Option<i64>) -> Result<()> {
        let _: i64 = self
            .mirror_one_script
            .key(restrictions_key(app_id))
            .arg(field)
            .arg(expiry.map(|e| e.to_string()).unwrap_or_default())
            .arg(RESTRICTIONS_TTL.as_secs())
            .invoke_async(&mut self.conn())
            .await?;
        Ok(())
    }

    async fn gate(&self, check: &GateCheck<'_>) -> Result<SendGate> {
        let mut invocation = self.gate_script.prepare_invoke();
        add_gate(&mut invocation, check);
        let (status, value): (i64, i64) = invocation.invoke_async(&mut self.conn()).await?;
        Ok(gate_verdict(check, status, value))
    }
}

/// Adds [`gate_lua`]'s keys and arguments for `check` after those `invocation` has.
pub(super) fn add_gate(invocation: &mut redis::ScriptInvocation<'_>, check: &GateCheck<'_>) {
    let (app_id, user_id) = (check.app_id, check.user_id);
    let second = check.now_ms / 1000;
    let (user_limit, app_limit) = check
        .limits
        .map_or((0, 0), |l| (l.user_messages_per_second, l.app_messages_per_second));
    invocation
        .key(restrictions_key(app_id))
        .key(format!("caas:{{{app_id}}}:rate:{user_id}:{second}"))
        .key(format!("caas:{{{app_id}}}:rate:{second}"))
        .arg(check.now_ms)
        .arg(user_limit)
        .arg(app_limit);
    for field in check.fields() {
        invocation.arg(field);
    }
}

/// What [`gate_lua`]'s answer `{status, value}` means for `check`.
pub(super) fn gate_verdict(check: &GateCheck<'_>, status: i64, value: i64) -> SendGate {
    match status {
        0 => SendGate::Allowed,
        -2 => SendGate::Unloaded,
        -1 => SendGate::RateLimited {
            scope: RateScope::User,
            retry_after_ms: value,
        },
        -3 => SendGate::RateLimited {
            scope: RateScope::App,
            retry_after_ms: value,
        },
        index => check.restricted(index as usize - 1, value),
    }
}
