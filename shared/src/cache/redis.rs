//! The Redis driver of the cache port.
//!
//! Keys of one conversation share a hash tag (`{app:conversation}`) so the claim script touches a
//! single slot and stays atomic on Redis Cluster too.

use super::{
    Cache, Claim, ClaimResult, ClaimState, SendKey, IDEMPOTENCY_TTL, MEMBERSHIP_TTL, PRESENCE_TTL, RECENT_MESSAGES,
    RECENT_TTL,
};
use crate::moderation::{GateCheck, RateScope, SendGate, RESTRICTIONS_TTL};
use crate::{Error, Result};
use async_trait::async_trait;
use redis::aio::ConnectionManager;
use redis::AsyncCommands;

/// Atomically: return the existing claim of this `client_msg_id`, or take the next sequence number and
/// record the claim. Returns `[-1, ""]` when the conversation has no counter (Redis lost it), so the
/// caller can re-seed it from the store instead of restarting at 1.
const CLAIM_SCRIPT: &str = r#"
local existing = redis.call('GET', KEYS[2])
if existing then return {0, existing} end
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1, ''} end
local seq = redis.call('INCR', KEYS[1])
local value = ARGV[1] .. '|' .. seq .. '|pending'
redis.call('SET', KEYS[2], value, 'EX', ARGV[2])
return {1, value}
"#;

/// Atomically: the first restriction among ARGV[4..] in force (its 1-based position and expiry), else
/// the rate counters of this second (user, then app), which count the send when it fits.
/// `{-2, 0}`: the app's restrictions are not mirrored; `{0, 0}`: allowed; `{-1, ms}` / `{-3, ms}`:
/// the user's / app's rate limit is reached, retry in `ms`.
const GATE_SCRIPT: &str = r#"
if redis.call('HEXISTS', KEYS[1], '_loaded') == 0 then return {-2, 0} end
local now = tonumber(ARGV[1])
for i = 4, #ARGV do
  local expiry = redis.call('HGET', KEYS[1], ARGV[i])
  if expiry then
    local t = tonumber(expiry)
    if t == 0 or t > now then return {i - 3, t} end
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
const MIRROR_ONE_SCRIPT: &str = r#"
if redis.call('HEXISTS', KEYS[1], '_loaded') == 0 then return 0 end
if ARGV[2] == '' then return redis.call('HDEL', KEYS[1], ARGV[1]) end
return redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
"#;

/// An app's moderation keys share its hash tag, so the gate script touches one slot.
fn restrictions_key(app_id: &str) -> String {
    format!("caas:{{{app_id}}}:restrictions")
}

fn parse_claim(value: &str, is_new: bool) -> Result<Claim> {
    let mut parts = value.split('|');
    let (Some(id), Some(seq), Some(state)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(Error::Internal(format!("malformed claim {value:?}")));
    };
    let state = match state {
        "pending" => ClaimState::Pending,
        "published" => ClaimState::Published,
        "failed" => ClaimState::Failed,
        other => return Err(Error::Internal(format!("unknown claim state {other:?}"))),
    };
    let seq = seq
        .parse()
        .map_err(|_| Error::Internal(format!("malformed claim seq {value:?}")))?;
    Ok(Claim {
        message_id: id.to_owned(),
        seq,
        state,
        is_new,
    })
}

/// Per user: a sorted set of live connections scored by when their presence lapses.
fn presence_key(app_id: &str, user_id: &str) -> String {
    format!("caas:presence:{{{app_id}:{user_id}}}")
}

fn conversation_tag(app_id: &str, conversation_id: &str) -> String {
    format!("caas:{{{app_id}:{conversation_id}}}")
}

#[derive(Clone)]
pub struct RedisCache {
    connection: ConnectionManager,
    claim_script: redis::Script,
    gate_script: redis::Script,
    mirror_one_script: redis::Script,
}

impl RedisCache {
    pub async fn connect(url: &str) -> Result<Self> {
        let client = redis::Client::open(url)?;
        let connection = ConnectionManager::new(client).await?;
        Ok(Self {
            connection,
            claim_script: redis::Script::new(CLAIM_SCRIPT),
            gate_script: redis::Script::new(GATE_SCRIPT),
            mirror_one_script: redis::Script::new(MIRROR_ONE_SCRIPT),
        })
    }

    fn conn(&self) -> ConnectionManager {
        self.connection.clone()
    }

    fn claim_key(key: SendKey<'_>) -> String {
        let tag = conversation_tag(key.app_id, key.conversation_id);
        format!("{tag}:idem:{}:{}", key.sender_id, key.client_msg_id)
    }
}

#[async_trait]
impl Cache for RedisCache {
    async fn ensure_sequence(&self, app_id: &str, conversation_id: &str, floor: i64) -> Result<()> {
        let key = format!("{}:seq", conversation_tag(app_id, conversation_id));
        let _: bool = self.conn().set_nx(key, floor).await?;
        Ok(())
    }

    async fn current_seq(&self, app_id: &str, conversation_id: &str) -> Result<Option<i64>> {
        let key = format!("{}:seq", conversation_tag(app_id, conversation_id));
        Ok(self.conn().get(key).await?)
    }

    async fn claim_message(&self, key: SendKey<'_>, message_id: &str) -> Result<ClaimResult> {
        let seq_key = format!("{}:seq", conversation_tag(key.app_id, key.conversation_id));
        let claim_key = Self::claim_key(key);
        let (status, value): (i64, String) = self
            .claim_script
            .key(seq_key)
            .key(claim_key)
            .arg(message_id)
            .arg(IDEMPOTENCY_TTL.as_secs())
            .invoke_async(&mut self.conn())
            .await?;
        match status {
            -1 => Ok(ClaimResult::CounterMissing),
            _ => Ok(ClaimResult::Claimed(parse_claim(&value, status == 1)?)),
        }
    }

    async fn set_claim_state(&self, key: SendKey<'_>, claim: &Claim, state: ClaimState) -> Result<()> {
        let claim_key = Self::claim_key(key);
        let value = format!("{}|{}|{}", claim.message_id, claim.seq, state.as_str());
        let _: () = self.conn().set_ex(claim_key, value, IDEMPOTENCY_TTL.as_secs()).await?;
        Ok(())
    }

    async fn cached_conversation(&self, app_id: &str, conversation_id: &str) -> Result<Option<String>> {
        let key = format!("{}:conversation", conversation_tag(app_id, conversation_id));
        Ok(self.conn().get(key).await?)
    }

    async fn cache_conversation(&self, app_id: &str, conversation_id: &str, json: &str) -> Result<()> {
        let key = format!("{}:conversation", conversation_tag(app_id, conversation_id));
        let _: () = self.conn().set_ex(key, json, MEMBERSHIP_TTL.as_secs()).await?;
        Ok(())
    }

    async fn cached_members(&self, app_id: &str, conversation_id: &str) -> Result<Option<Vec<String>>> {
        let key = format!("{}:members", conversation_tag(app_id, conversation_id));
        let members: Vec<String> = self.conn().smembers(key).await?;
        Ok(if members.is_empty() { None } else { Some(members) })
    }

    async fn is_member(&self, app_id: &str, conversation_id: &str, user_id: &str) -> Result<Option<bool>> {
        let key = format!("{}:members", conversation_tag(app_id, conversation_id));
        let (cached, member): (bool, bool) = redis::pipe()
            .exists(&key)
            .sismember(&key, user_id)
            .query_async(&mut self.conn())
            .await?;
        Ok(cached.then_some(member))
    }

    async fn cache_members(&self, app_id: &str, conversation_id: &str, members: &[String]) -> Result<()> {
        let key = format!("{}:members", conversation_tag(app_id, conversation_id));
        let mut pipe = redis::pipe();
        pipe.atomic().del(&key);
        // An empty set cannot be stored in Redis: no key means "not cached", and the next read goes to
        // the store.
        if !members.is_empty() {
            pipe.sadd(&key, members).expire(&key, MEMBERSHIP_TTL.as_secs() as i64);
        }
        let _: () = pipe.query_async(&mut self.conn()).await?;
        Ok(())
    }

    async fn remember_recent(&self, app_id: &str, conversation_id: &str, seq: i64, payload: &str) -> Result<()> {
        let key = format!("{}:recent", conversation_tag(app_id, conversation_id));
        let _: () = redis::pipe()
            .atomic()
            .zrembyscore(&key, seq, seq)
            // Members of a sorted set are unique: two messages with equal text must not collapse.
            .zadd(&key, format!("{seq}|{payload}"), seq)
            .zremrangebyrank(&key, 0, -(RECENT_MESSAGES as isize) - 1)
            .expire(&key, RECENT_TTL.as_secs() as i64)
            .query_async(&mut self.conn())
            .await?;
        Ok(())
    }

    async fn recent_after(&self, app_id: &str, conversation_id: &str, after_seq: i64) -> Result<Vec<(i64, String)>> {
        let key = format!("{}:recent", conversation_tag(app_id, conversation_id));
        let members: Vec<String> = self.conn().zrangebyscore(key, format!("({after_seq}"), "+inf").await?;
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

    async fn presence_touch(&self, app_id: &str, user_id: &str, holder: &str) -> Result<()> {
        let key = presence_key(app_id, user_id);
        let expires = crate::now_ms() + PRESENCE_TTL.as_millis() as i64;
        let _: () = redis::pipe()
            .zadd(&key, holder, expires)
            .expire(&key, PRESENCE_TTL.as_secs() as i64)
            .query_async(&mut self.conn())
            .await?;
        Ok(())
    }

    async fn presence_drop(&self, app_id: &str, user_id: &str, holder: &str) -> Result<bool> {
        let key = presence_key(app_id, user_id);
        let (_, live): ((), usize) = redis::pipe()
            .zrem(&key, holder)
            .zcount(&key, crate::now_ms(), "+inf")
            .query_async(&mut self.conn())
            .await?;
        Ok(live > 0)
    }

    async fn online(&self, app_id: &str, user_ids: &[String]) -> Result<Vec<bool>> {
        if user_ids.is_empty() {
            return Ok(Vec::new());
        }
        let now = crate::now_ms();
        let mut pipe = redis::pipe();
        for user_id in user_ids {
            pipe.zcount(presence_key(app_id, user_id), now, "+inf");
        }
        let counts: Vec<usize> = pipe.query_async(&mut self.conn()).await?;
        Ok(counts.into_iter().map(|live| live > 0).collect())
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_round_trip_through_their_stored_form() {
        let claim = parse_claim("m-1|42|published", false).unwrap();
        assert_eq!(
            claim,
            Claim {
                message_id: "m-1".into(),
                seq: 42,
                state: ClaimState::Published,
                is_new: false
            }
        );
        assert!(parse_claim("m-1|x|pending", true).is_err());
        assert!(parse_claim("garbage", true).is_err());
    }

    #[test]
    fn keys_of_one_conversation_share_a_hash_tag() {
        assert_eq!(conversation_tag("a", "c"), "caas:{a:c}");
        assert!(RedisCache::claim_key(SendKey {
            app_id: "a",
            conversation_id: "c",
            sender_id: "u",
            client_msg_id: "m"
        })
        .starts_with("caas:{a:c}:"));
    }
}
