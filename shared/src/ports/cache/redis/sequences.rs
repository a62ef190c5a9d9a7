//! Sequence counters and send claims in Redis.

use super::{conversation_tag, RedisCache};
use crate::ports::cache::{Claim, ClaimResult, ClaimState, SendKey, SequenceCache, IDEMPOTENCY_TTL};
use crate::{Error, Result};
use async_trait::async_trait;
use redis::AsyncCommands;

/// Atomically: return the existing claim of this `client_msg_id`, or take the next sequence number and
/// record the claim; either way with the mirrored seq reservation. Returns `[-1, "", r]` when the
/// conversation has no counter (Redis lost it), so the caller can re-seed it above the store's
/// reservation instead of restarting at 1.
pub(super) const CLAIM_SCRIPT: &str = r#"
local reserved = tonumber(redis.call('GET', KEYS[3]) or '0')
local existing = redis.call('GET', KEYS[2])
if existing then return {0, existing, reserved} end
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1, '', reserved} end
local seq = redis.call('INCR', KEYS[1])
local value = ARGV[1] .. '|' .. seq .. '|pending'
redis.call('SET', KEYS[2], value, 'EX', ARGV[2])
return {1, value, reserved}
"#;

/// Raises the mirrored reservation to ARGV[1], never lowering it.
pub(super) const MIRROR_RESERVATION_SCRIPT: &str = r#"
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > current then redis.call('SET', KEYS[1], ARGV[1]) end
return 1
"#;

fn parse_claim(value: &str, is_new: bool, reserved_through: i64) -> Result<Claim> {
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
        reserved: seq <= reserved_through,
    })
}

impl RedisCache {
    fn claim_key(key: SendKey<'_>) -> String {
        let tag = conversation_tag(key.app_id, key.conversation_id);
        format!("{tag}:idem:{}:{}", key.sender_id, key.client_msg_id)
    }
}

#[async_trait]
impl SequenceCache for RedisCache {
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
        let tag = conversation_tag(key.app_id, key.conversation_id);
        let claim_key = Self::claim_key(key);
        let (status, value, reserved_through): (i64, String, i64) = self
            .claim_script
            .key(format!("{tag}:seq"))
            .key(claim_key)
            .key(format!("{tag}:reserved"))
            .arg(message_id)
            .arg(IDEMPOTENCY_TTL.as_secs())
            .invoke_async(&mut self.conn())
            .await?;
        match status {
            -1 => Ok(ClaimResult::CounterMissing),
            _ => Ok(ClaimResult::Claimed(parse_claim(
                &value,
                status == 1,
                reserved_through,
            )?)),
        }
    }

    async fn mirror_reservation(&self, app_id: &str, conversation_id: &str, through: i64) -> Result<()> {
        let key = format!("{}:reserved", conversation_tag(app_id, conversation_id));
        let _: i64 = self
            .mirror_reservation_script
            .key(key)
            .arg(through)
            .invoke_async(&mut self.conn())
            .await?;
        Ok(())
    }

    async fn set_claim_state(&self, key: SendKey<'_>, claim: &Claim, state: ClaimState) -> Result<()> {
        let claim_key = Self::claim_key(key);
        let value = format!("{}|{}|{}", claim.message_id, claim.seq, state.as_str());
        let _: () = self.conn().set_ex(claim_key, value, IDEMPOTENCY_TTL.as_secs()).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_round_trip_through_their_stored_form() {
        let claim = parse_claim("m-1|42|published", false, 42).unwrap();
        assert_eq!(
            claim,
            Claim {
                message_id: "m-1".into(),
                seq: 42,
                state: ClaimState::Published,
                is_new: false,
                reserved: true,
            }
        );
        assert!(!parse_claim("m-1|43|pending", true, 42).unwrap().reserved);
        assert!(parse_claim("m-1|x|pending", true, 0).is_err());
        assert!(parse_claim("garbage", true, 0).is_err());
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
