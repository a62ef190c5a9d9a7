//! Sequence counters and send claims in Redis.

use super::recent::window_add_lua;
use super::restrictions::{add_gate, gate_lua, gate_verdict};
use super::{conversation_tag, RedisCache};
use crate::domain::moderation::{GateCheck, SendGate};
use crate::ports::cache::RestrictionCache;
use crate::ports::cache::{
    Claim, ClaimResult, ClaimState, EntryAroundSeq, SendClaim, SendKey, SendRequest, SequenceCache, IDEMPOTENCY_TTL,
    RECENT_BYTES, RECENT_MESSAGES, RECENT_TTL,
};
use crate::{Error, Result};
use async_trait::async_trait;
use redis::AsyncCommands;

/// A new message's whole cache work in one call, in the conversation's slot: the membership check
/// (when ARGV[3] is '1'); then the existing claim of this `client_msg_id`, or the next sequence number
/// with a new claim recorded, either way with the mirrored seq reservation; then, for a new claim the
/// reservation covers and a window size (ARGV[7]) above 0, the recent-window entry (as
/// `RecentWindow::remember_recent` writes it) before anyone learns the seq. With no counter (Redis
/// lost it) it returns -1 and the reservation, so the caller re-seeds the counter above the store's
/// reservation instead of restarting at 1.
/// KEYS: seq, claim, reserved, members, recent, recent tally. ARGV: message id, claim TTL, check member,
/// sender, entry head, entry tail, window size, window TTL, window bytes. Status: -3 not a member, -2 members not cached,
/// -1 no counter, 0 an earlier claim, 1 new, 2 new and remembered.
///
/// With three more KEYS (and the gate's ARGV from ARGV[10]) the gate ([`gate_lua`]) runs first, on a
/// single server only (its keys are in the app's slot, not the conversation's): `{-4, verdict, value}`
/// when it does not allow the send, which then claims nothing.
///
/// Every send runs it, so it makes as few calls as it can (each `redis.call` costs about as much as a
/// small command of its own): a member is one SISMEMBER (only a miss asks whether the set is cached at
/// all), the reservation, the earlier claim, the counter and the window's tally are one MGET, the window
/// entry needs no ZREMRANGEBYSCORE first — the counter hands each seq out once, so nothing can sit at a
/// fresh seq's score — and the window is trimmed (by entries and bytes) only when the tally says so.
pub(super) const SEND_SCRIPT: &str = concat!(
    gate_lua!(),
    r#"
if #KEYS > 6 then
  local verdict = gate(7, 10)
  if verdict[1] ~= 0 then return {-4, tostring(verdict[1]), verdict[2]} end
end
if ARGV[3] == '1' and redis.call('SISMEMBER', KEYS[4], ARGV[4]) == 0 then
  if redis.call('EXISTS', KEYS[4]) == 0 then return {-2, '', 0} end
  return {-3, '', 0}
end
local found = redis.call('MGET', KEYS[3], KEYS[2], KEYS[1], KEYS[6])
local reserved = tonumber(found[1] or '0')
if found[2] then return {0, found[2], reserved} end
if not found[3] then return {-1, '', reserved} end
local seq = redis.call('INCR', KEYS[1])
local value = ARGV[1] .. '|' .. seq .. '|pending'
redis.call('SET', KEYS[2], value, 'EX', ARGV[2])
if seq > reserved or ARGV[7] == '0' then return {1, value, reserved} end
local window, tally_key, entry = KEYS[5], KEYS[6], seq .. '|' .. ARGV[5] .. seq .. ARGV[6]
local max_count, max_bytes, ttl = tonumber(ARGV[7]), tonumber(ARGV[9]), ARGV[8]
local tally, removed_count, removed_bytes = found[4], 0, 0
"#,
    window_add_lua!(),
    "return {2, value, reserved}\n"
);

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

    /// [`SEND_SCRIPT`] for `request`, with its gate when `gated`; a `window` of 0 leaves the recent
    /// window alone.
    async fn run_send_script(
        &self,
        request: SendRequest<'_>,
        window: usize,
        gated: Option<&GateCheck<'_>>,
    ) -> Result<(i64, String, i64)> {
        let key = request.key;
        let tag = conversation_tag(key.app_id, key.conversation_id);
        let mut invocation = self.send_script.prepare_invoke();
        invocation
            .key(format!("{tag}:seq"))
            .key(Self::claim_key(key))
            .key(format!("{tag}:reserved"))
            .key(format!("{tag}:members"))
            .key(format!("{tag}:recent"))
            .key(format!("{tag}:recent:tally"))
            .arg(request.message_id)
            .arg(IDEMPOTENCY_TTL.as_secs())
            .arg(if request.check_member { "1" } else { "0" })
            .arg(key.sender_id)
            .arg(request.entry.head)
            .arg(request.entry.tail)
            .arg(window)
            .arg(RECENT_TTL.as_secs())
            .arg(RECENT_BYTES);
        if let Some(check) = gated {
            add_gate(&mut invocation, check);
        }
        Ok(invocation.invoke_async(&mut self.conn()).await?)
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
        // The send script without its membership check and window entry.
        let request = SendRequest {
            key,
            message_id,
            check_member: false,
            entry: EntryAroundSeq { head: "", tail: "" },
            gate: None,
        };
        let (status, value, reserved_through) = self.run_send_script(request, 0, None).await?;
        match status {
            -1 => Ok(ClaimResult::CounterMissing),
            0 | 1 => Ok(ClaimResult::Claimed(parse_claim(
                &value,
                status == 1,
                reserved_through,
            )?)),
            other => Err(Error::Internal(format!("unknown claim status {other}"))),
        }
    }

    async fn claim_send(&self, request: SendRequest<'_>) -> Result<SendClaim> {
        // A cluster keeps the app's gate keys and the conversation's keys in different slots, so one
        // script cannot hold both there: the gate is its own call first.
        let mut in_script = request.gate;
        if let Some(check) = request.gate.filter(|_| self.connection.is_cluster()) {
            match self.gate(check).await? {
                SendGate::Allowed => in_script = None,
                refused => return Ok(SendClaim::Gated(refused)),
            }
        }
        let (status, value, reserved_through) = self.run_send_script(request, RECENT_MESSAGES, in_script).await?;
        Ok(match status {
            -4 => {
                let check = in_script.ok_or_else(|| Error::Internal("a gate answer to an ungated send".into()))?;
                let verdict = value
                    .parse()
                    .map_err(|_| Error::Internal(format!("malformed gate answer {value:?}")))?;
                SendClaim::Gated(gate_verdict(check, verdict, reserved_through))
            }
            -3 => SendClaim::NotMember,
            -2 => SendClaim::MembersNotCached,
            -1 => SendClaim::CounterMissing,
            0..=2 => SendClaim::Claimed {
                claim: parse_claim(&value, status >= 1, reserved_through)?,
                remembered: status == 2,
            },
            other => return Err(Error::Internal(format!("unknown send claim status {other}"))),
        })
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
