//! The moderation mirror and rate counters in Redis.

use super::RedisCache;
use crate::domain::moderation::{GateCheck, RateScope, SendGate, RESTRICTIONS_TTL};
use crate::ports::cache::RestrictionCache;
use crate::Result;
use async_trait::async_trait;

/// Atomically: the first restriction among ARGV[4..] in force (its 1-based position and expiry), else
/// the rate counters of this second (user, then app), which count the send when it fits.
/// `{-2, 0}`: the app's restrictions are not mirrored; `{0, 0}`: allowed; `{-1, ms}` / `{-3, ms}`:
/// the user's / app's rate limit is reached, retry in `ms`. The mirror's marker and every restriction
/// asked about are read with one HMGET (every send runs this).
pub(super) const GATE_SCRIPT: &str = r#"
local found = redis.call('HMGET', KEYS[1], '_loaded', unpack(ARGV, 4))
if not found[1] then return {-2, 0} end
local now = tonumber(ARGV[1])
for i = 2, #found do
  if found[i] then
    local t = tonumber(found[i])
    if t == 0 or t > now then return {i - 1, t} end
  end
end
local retry = 1000 - (now % 1000)
local limits = {{KEYS[2], tonumber(ARGV[2]), -1}, {KEYS[3], tonumber(ARGV[3]), -3}}
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
"#;

/// Changes one mirrored restriction only where the app's mirror is loaded (elsewhere the next check
/// loads it from the store), so no mirror is ever left without its expiry.
pub(super) const MIRROR_ONE_SCRIPT: &str = r#"
if redis.call('HEXISTS', KEYS[1], '_loaded') == 0 then return 0 end
if ARGV[2] == '' then return redis.call('HDEL', KEYS[1], ARGV[1]) end
return redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
"#;

/// An app's moderation keys share its hash tag, so the gate script touches one slot.
fn restrictions_key(app_id: &str) -> String {
    format!("caas:{{{app_id}}}:restrictions")
}

#[async_trait]
impl RestrictionCache for RedisCache {
    async fn mirror_restrictions(&self, app_id: &str, entries: &[(String, i64)]) -> Result<()> {
        let key = restrictions_key(app_id);
        let mut fields: Vec<(&str, i64)> = entries
            .iter()
            .map(|(field, expiry)| (field.as_str(), *expiry))
            .collect();
        fields.push(("_loaded", 1));
        let _: () = redis::pipe()
            .atomic()
            .hset_multiple(&key, &fields)
            .expire(&key, RESTRICTIONS_TTL.as_secs() as i64)
            .query_async(&mut self.conn())
            .await?;
        Ok(())
    }

    async fn mirror_restriction(&self, app_id: &str, field: &str, expiry: Option<i64>) -> Result<()> {
        let _: i64 = self
            .mirror_one_script
            .key(restrictions_key(app_id))
            .arg(field)
            .arg(expiry.map(|e| e.to_string()).unwrap_or_default())
            .invoke_async(&mut self.conn())
            .await?;
        Ok(())
    }

    async fn gate(&self, check: &GateCheck<'_>) -> Result<SendGate> {
        let (app_id, user_id) = (check.app_id, check.user_id);
        let second = check.now_ms / 1000;
        let (user_limit, app_limit) = check
            .limits
            .map_or((0, 0), |l| (l.user_messages_per_second, l.app_messages_per_second));
        let mut invocation = self.gate_script.prepare_invoke();
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
        let (status, value): (i64, i64) = invocation.invoke_async(&mut self.conn()).await?;
        Ok(match status {
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
        })
    }
}
