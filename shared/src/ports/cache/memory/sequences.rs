//! Sequence counters and send claims in memory.

use super::{conversation, ClaimKey, MemoryCache};
use crate::domain::moderation::SendGate;
use crate::ports::cache::RestrictionCache;
use crate::ports::cache::{
    Claim, ClaimResult, ClaimState, MembershipCache, RecentWindow, SendClaim, SendKey, SendRequest, SequenceCache,
    IDEMPOTENCY_TTL,
};
use crate::Result;
use async_trait::async_trait;
use std::time::Instant;

fn owned(key: SendKey<'_>) -> ClaimKey {
    (
        key.app_id.to_owned(),
        key.conversation_id.to_owned(),
        key.sender_id.to_owned(),
        key.client_msg_id.to_owned(),
    )
}

#[async_trait]
impl SequenceCache for MemoryCache {
    async fn ensure_sequence(&self, app_id: &str, conversation_id: &str, floor: i64) -> Result<()> {
        self.entries()?
            .sequences
            .entry(conversation(app_id, conversation_id))
            .or_insert(floor);
        Ok(())
    }

    async fn current_seq(&self, app_id: &str, conversation_id: &str) -> Result<Option<i64>> {
        Ok(self
            .entries()?
            .sequences
            .get(&conversation(app_id, conversation_id))
            .copied())
    }

    async fn claim_message(&self, key: SendKey<'_>, message_id: &str) -> Result<ClaimResult> {
        let mut entries = self.entries()?;
        let claim_key = owned(key);
        let reserved_through = entries
            .reservations
            .get(&conversation(key.app_id, key.conversation_id))
            .copied()
            .unwrap_or(0);
        if let Some((claim, expires)) = entries.claims.get(&claim_key) {
            if *expires > Instant::now() {
                return Ok(ClaimResult::Claimed(Claim {
                    is_new: false,
                    reserved: claim.seq <= reserved_through,
                    ..claim.clone()
                }));
            }
        }
        let Some(counter) = entries
            .sequences
            .get_mut(&conversation(key.app_id, key.conversation_id))
        else {
            return Ok(ClaimResult::CounterMissing);
        };
        *counter += 1;
        let claim = Claim {
            message_id: message_id.to_owned(),
            seq: *counter,
            state: ClaimState::Pending,
            is_new: true,
            reserved: *counter <= reserved_through,
        };
        entries
            .claims
            .insert(claim_key, (claim.clone(), Instant::now() + IDEMPOTENCY_TTL));
        Ok(ClaimResult::Claimed(claim))
    }

    async fn claim_send(&self, request: SendRequest<'_>) -> Result<SendClaim> {
        // Steps under their own lock holds: nobody learns the seq before this returns, which is all the
        // window entry needs; the gate and membership are point-in-time checks either way.
        let key = request.key;
        if let Some(check) = request.gate {
            match self.gate(check).await? {
                SendGate::Allowed => {}
                refused => return Ok(SendClaim::Gated(refused)),
            }
        }
        if request.check_member {
            match self.is_member(key.app_id, key.conversation_id, key.sender_id).await? {
                None => return Ok(SendClaim::MembersNotCached),
                Some(false) => return Ok(SendClaim::NotMember),
                Some(true) => {}
            }
        }
        let claim = match self.claim_message(key, request.message_id).await? {
            ClaimResult::Claimed(claim) => claim,
            ClaimResult::CounterMissing => return Ok(SendClaim::CounterMissing),
        };
        let remembered = claim.is_new && claim.reserved;
        if remembered {
            let entry = request.entry.with_seq(claim.seq);
            self.remember_recent(key.app_id, key.conversation_id, claim.seq, &entry)
                .await?;
        }
        Ok(SendClaim::Claimed { claim, remembered })
    }

    async fn mirror_reservation(&self, app_id: &str, conversation_id: &str, through: i64) -> Result<()> {
        let mut entries = self.entries()?;
        let mirrored = entries
            .reservations
            .entry(conversation(app_id, conversation_id))
            .or_insert(0);
        *mirrored = (*mirrored).max(through);
        Ok(())
    }

    async fn set_claim_state(&self, key: SendKey<'_>, claim: &Claim, state: ClaimState) -> Result<()> {
        let claim_key = owned(key);
        let stored = Claim {
            state,
            is_new: false,
            ..claim.clone()
        };
        self.entries()?
            .claims
            .insert(claim_key, (stored, Instant::now() + IDEMPOTENCY_TTL));
        Ok(())
    }
}
