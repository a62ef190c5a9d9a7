//! Giving a send its seq so that no seq is ever handed out twice, even when the cache loses its
//! counters (a `FLUSHALL`, an eviction, a failover to an empty node).
//!
//! The counter lives in the cache for speed, but the store keeps a reservation: before any message
//! carries a seq, the conversation's reservation covers it (one store write per [`RESERVATION_BLOCK`]
//! seqs). A counter re-created after a loss starts above the reservation, so it cannot collide with a
//! message accepted but still on its way through the bus. The seqs between the highest stored message
//! and the reservation may then never carry a message: they are recorded as uncertain, and a replay
//! does not wait for them.

use crate::domain::model::SeqSpan;
use crate::domain::moderation::SendGate;
use crate::ports::cache::{Cache, Claim, SendClaim, SendRequest};
use crate::ports::store::Store;
use crate::{Error, Result};

/// Seqs reserved in the store at a time, per conversation.
pub const RESERVATION_BLOCK: i64 = 1000;

/// Claims at most this many times before giving up (each retry follows a reservation or a re-seed).
const MAX_ATTEMPTS: usize = 8;

/// What [`claim`] decided.
#[derive(Debug)]
pub enum Sequenced {
    /// The send's claim (a new seq, or the earlier claim of a retried `client_msg_id`), covered by the
    /// store's reservation, so safe to publish under; `remembered` when the claim also wrote the
    /// recent-window entry.
    Claimed {
        /// The claim to publish under.
        claim: Claim,
        /// Whether the recent window holds the entry already.
        remembered: bool,
    },
    /// The request checked membership in the cache and the sender is not a member.
    NotMember,
    /// The request checked membership in the cache and the member set is not cached: check it
    /// against the store, then claim without the check.
    MembersNotCached,
    /// The request's gate did not allow the send, or could not answer ([`SendGate::Unloaded`]: mirror
    /// the restrictions and ask the gate on its own); nothing was claimed.
    Gated(SendGate),
}

/// Claims a seq for the send, covered by the store's reservation (reserving and re-seeding as needed).
pub async fn claim(store: &dyn Store, cache: &dyn Cache, mut request: SendRequest<'_>) -> Result<Sequenced> {
    let (app_id, conversation_id) = (request.key.app_id, request.key.conversation_id);
    for _ in 0..MAX_ATTEMPTS {
        let claimed = cache.claim_send(request).await?;
        // The gate let the send through (and counted it) once; the claims that follow do not ask again.
        request.gate = None;
        match claimed {
            SendClaim::Claimed { claim, remembered } if claim.reserved => {
                // A claim made under our own fresh id is ours even when it comes back from the
                // re-claim that follows a reservation (which reports it as an earlier claim).
                let is_new = claim.message_id == request.message_id;
                return Ok(Sequenced::Claimed {
                    claim: Claim { is_new, ..claim },
                    remembered,
                });
            }
            SendClaim::Claimed { claim, .. } => {
                let through = store
                    .reserve_seqs(app_id, conversation_id, claim.seq + RESERVATION_BLOCK - 1)
                    .await?;
                cache.mirror_reservation(app_id, conversation_id, through).await?;
                // Claim again rather than trust this one: if the cache lost it while the store was
                // written, the counter was re-created above the reservation and this seq is void.
            }
            SendClaim::CounterMissing => reseed(store, cache, app_id, conversation_id).await?,
            SendClaim::NotMember => return Ok(Sequenced::NotMember),
            SendClaim::MembersNotCached => return Ok(Sequenced::MembersNotCached),
            SendClaim::Gated(verdict) => return Ok(Sequenced::Gated(verdict)),
        }
    }
    Err(Error::Internal("could not claim a reserved seq".into()))
}

/// Re-creates a lost counter above every seq that may be in use: the reservation and the highest
/// stored seq. What lies between the two is recorded as uncertain.
async fn reseed(store: &dyn Store, cache: &dyn Cache, app_id: &str, conversation_id: &str) -> Result<()> {
    let (reservation, stored) = tokio::try_join!(
        store.seq_reservation(app_id, conversation_id),
        store.max_seq(app_id, conversation_id),
    )?;
    let floor = reservation.reserved_through.max(stored);
    if reservation.reserved_through > stored {
        let span = SeqSpan {
            after: stored,
            through: reservation.reserved_through,
        };
        store.mark_uncertain(app_id, conversation_id, span).await?;
        tracing::warn!(
            app_id,
            conversation_id,
            after = span.after,
            through = span.through,
            "sequence counter lost: re-created above the reservation"
        );
    }
    cache.ensure_sequence(app_id, conversation_id, floor).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::cache::{EntryAroundSeq, MemoryCache, SendKey, SequenceCache};
    use crate::ports::store::{MemoryStore, MessageStore};

    /// A claim of `client_msg_id` under `message_id`, membership checked by the caller.
    async fn claim(store: &MemoryStore, cache: &MemoryCache, client_msg_id: &str, message_id: &str) -> Result<Claim> {
        let request = SendRequest {
            key: SendKey {
                app_id: "app",
                conversation_id: "c",
                sender_id: "u",
                client_msg_id,
            },
            message_id,
            check_member: false,
            entry: EntryAroundSeq {
                head: r#"{"seq":"#,
                tail: "}",
            },
            gate: None,
        };
        match super::claim(store, cache, request).await? {
            Sequenced::Claimed { claim, .. } => Ok(claim),
            other => panic!("unchecked membership cannot refuse: {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_lost_counter_never_hands_out_a_seq_again() {
        let store = MemoryStore::new();
        let cache = MemoryCache::new();
        cache.ensure_sequence("app", "c", 0).await.unwrap();
        for n in 1..=5 {
            let claim = claim(&store, &cache, &format!("m{n}"), &format!("id{n}"))
                .await
                .unwrap();
            assert_eq!(
                (claim.seq, claim.reserved, claim.is_new),
                (n, true, true),
                "new even after reserving"
            );
        }
        let retried = claim(&store, &cache, "m5", "id5-retry").await.unwrap();
        assert_eq!((retried.seq, retried.is_new), (5, false), "a retry is not new");
        assert_eq!(
            store.seq_reservation("app", "c").await.unwrap().reserved_through,
            RESERVATION_BLOCK
        );
        // The cache loses everything; nothing was persisted yet (all five are still "in the bus").
        let cache = MemoryCache::new();
        let after = claim(&store, &cache, "m6", "id6").await.unwrap();
        assert_eq!(after.seq, RESERVATION_BLOCK + 1, "above every seq that may be in use");
        let reservation = store.seq_reservation("app", "c").await.unwrap();
        assert_eq!(
            reservation.uncertain,
            [SeqSpan {
                after: 0,
                through: RESERVATION_BLOCK
            }]
        );
        assert_eq!(reservation.reserved_through, 2 * RESERVATION_BLOCK);
    }
}
