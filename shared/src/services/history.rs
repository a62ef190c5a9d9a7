//! Reading a conversation's messages the way clients need them: the store holds what persistence has
//! written, the cache's recent window holds what was accepted moments ago and may still be on its way
//! through the bus. Both the socket node (reconnect replay, `conversation.history`) and the HTTP history
//! route read through here, so they always agree.

use crate::domain::model::{Message, SeqReservation};
use crate::ports::cache::{Cache, RecentSlice};
use crate::ports::store::{SeqRange, Store};
use crate::Result;
use std::collections::BTreeMap;
use std::time::Duration;

/// Most messages in one replay page; a client with more to catch up asks again from the last one it got.
pub const REPLAY_PAGE: usize = 1000;
/// Most bytes of message JSON in one replay page (at least one message is always included). It keeps
/// one replay reply well under a connection's outbound budget, however long the messages are.
pub const REPLAY_PAGE_BYTES: usize = 256 * 1024;
/// Largest page a history request may ask for.
pub const MAX_HISTORY_PAGE: usize = 200;

/// Keeps the messages of a history or replies page that fit [`REPLAY_PAGE_BYTES`] of JSON (at least
/// one), from the end the page starts at — the oldest of a forward page, the newest of one read
/// backwards (`newest_first`) — so no single reply outgrows a connection's outbound budget; returns
/// whether any were left out (the client pages on from the last one it got).
pub fn fit_page_bytes(messages: &mut Vec<serde_json::Value>, newest_first: bool) -> bool {
    let mut bytes = 0;
    let fits = |message: &serde_json::Value, bytes: &mut usize| {
        *bytes += serde_json::to_vec(message).map_or(0, |encoded| encoded.len());
        *bytes <= REPLAY_PAGE_BYTES
    };
    let total = messages.len();
    let kept = match newest_first {
        false => messages.iter().take_while(|m| fits(m, &mut bytes)).count().max(1),
        true => messages.iter().rev().take_while(|m| fits(m, &mut bytes)).count().max(1),
    }
    .min(total);
    match newest_first {
        false => messages.truncate(kept),
        true => {
            messages.drain(..total - kept);
        }
    }
    kept < total
}

/// A page of messages in ascending `seq` order, from the store completed by the recent window. Where
/// both have a message, the higher `version` wins (edits and deletions reach both).
pub async fn page(
    store: &dyn Store,
    cache: &dyn Cache,
    app_id: &str,
    conversation_id: &str,
    range: SeqRange,
) -> Result<Vec<Message>> {
    let (stored, recent) = tokio::try_join!(
        store.list_messages(app_id, conversation_id, range),
        // Only the part of the window the page can use: a `before_seq` page reads the newest
        // entries below it, not the whole window from seq 0.
        cache.recent_in(
            app_id,
            conversation_id,
            RecentSlice {
                after_seq: range.after_seq.unwrap_or(0),
                before_seq: range.before_seq,
                limit: range.limit,
                newest: !range.reads_forward(),
            },
        ),
    )?;
    let mut merged: BTreeMap<i64, Message> = BTreeMap::new();
    for (seq, payload) in recent.into_iter().filter(|(seq, _)| range.contains(*seq)) {
        match serde_json::from_str::<Message>(&payload) {
            Ok(message) => {
                merged.insert(seq, message);
            }
            Err(e) => tracing::warn!(seq, error = %e, "unreadable recent message skipped"),
        }
    }
    for message in stored {
        // The higher version wins: the window may hold an edit persistence has not written yet.
        match merged.get(&message.seq) {
            Some(recent) if recent.id == message.id && recent.version > message.version => {}
            _ => {
                merged.insert(message.seq, message);
            }
        }
    }
    let mut messages: Vec<Message> = merged.into_values().collect();
    if range.reads_forward() {
        messages.truncate(range.limit);
    } else {
        messages.drain(..messages.len().saturating_sub(range.limit));
    }
    Ok(messages)
}

/// How many messages of the conversation a member sees as unread past `read_seq`: others' messages,
/// not deleted, persisted (counted in the store) or accepted moments ago (still in the recent window
/// above the highest stored seq); at most `cap`. Seqs a re-created counter skipped are not messages,
/// so they are never counted.
pub async fn unread_count(
    store: &dyn Store,
    cache: &dyn Cache,
    app_id: &str,
    conversation_id: &str,
    user_id: &str,
    read_seq: i64,
    cap: usize,
) -> Result<usize> {
    let (persisted, stored_max) = tokio::try_join!(
        store.count_unread(app_id, conversation_id, user_id, read_seq, cap),
        store.max_seq(app_id, conversation_id),
    )?;
    let pending = RecentSlice {
        after_seq: read_seq.max(stored_max),
        before_seq: None,
        limit: cap,
        newest: false,
    };
    let recent = cache.recent_in(app_id, conversation_id, pending).await?;
    let pending = recent
        .iter()
        .filter_map(|(_, payload)| serde_json::from_str::<Message>(payload).ok())
        .filter(|message| message.sender_id != user_id && message.deleted_at.is_none())
        .count();
    Ok((persisted + pending).min(cap))
}

/// Messages as history shows them: each with its `reply_count` and `reactions` (per emoji, with
/// `mine` for `viewer_id`), from what is persisted.
pub async fn annotate(
    store: &dyn Store,
    app_id: &str,
    conversation_id: &str,
    viewer_id: &str,
    messages: Vec<Message>,
) -> Result<Vec<serde_json::Value>> {
    let ids: Vec<String> = messages.iter().map(|m| m.id.clone()).collect();
    let (replies, mut reactions) = tokio::try_join!(
        store.reply_counts(app_id, conversation_id, &ids),
        store.reaction_counts(app_id, conversation_id, &ids, viewer_id),
    )?;
    messages
        .into_iter()
        .map(|message| {
            let reply_count = replies.get(&message.id).copied().unwrap_or(0);
            let message_reactions = reactions.remove(&message.id).unwrap_or_default();
            let mut value =
                serde_json::to_value(&message).map_err(|e| crate::Error::Internal(format!("encoding message: {e}")))?;
            value["reply_count"] = reply_count.into();
            value["reactions"] = serde_json::to_value(message_reactions)
                .map_err(|e| crate::Error::Internal(format!("encoding reactions: {e}")))?;
            Ok(value)
        })
        .collect()
}

/// How long a replay waits for a missing seq to show up (a send still between its claim and its
/// publish) before it declares the gap unrecoverable.
pub const REPLAY_GAP_PATIENCE: Duration = Duration::from_secs(2);

/// One page of a replay: the messages after the client's `since_seq`, in order and without a gap.
#[derive(Debug)]
pub struct ReplayPage {
    /// At most [`REPLAY_PAGE`] messages and [`REPLAY_PAGE_BYTES`] of them.
    pub messages: Vec<Message>,
    /// The page was cut short: ask again after its last message.
    pub has_more: bool,
}

/// What a reconnecting client missed after `since_seq`: the next page of messages without a gap, or
/// `None` when a gap stayed open for [`REPLAY_GAP_PATIENCE`] (the client must reload history).
pub async fn replay(
    store: &dyn Store,
    cache: &dyn Cache,
    app_id: &str,
    conversation_id: &str,
    since_seq: i64,
) -> Result<Option<ReplayPage>> {
    let range = SeqRange {
        after_seq: Some(since_seq),
        before_seq: None,
        limit: REPLAY_PAGE,
    };
    let deadline = tokio::time::Instant::now() + REPLAY_GAP_PATIENCE;
    loop {
        let messages = page(store, cache, app_id, conversation_id, range).await?;
        match first_gap(since_seq, &messages) {
            None => return Ok(Some(cut_to_budget(messages))),
            Some(_) if tokio::time::Instant::now() >= deadline => {
                // Seqs a re-created counter skipped may never exist: a gap made only of them is no gap.
                let reservation = store.seq_reservation(app_id, conversation_id).await?;
                let Some(missing) = first_real_gap(since_seq, &messages, &reservation) else {
                    return Ok(Some(cut_to_budget(messages)));
                };
                tracing::warn!(
                    conversation_id,
                    since_seq,
                    missing,
                    "replay has a gap; client must reload"
                );
                return Ok(None);
            }
            Some(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Keeps the leading messages that fit [`REPLAY_PAGE_BYTES`] (at least one).
fn cut_to_budget(mut messages: Vec<Message>) -> ReplayPage {
    let full = messages.len() == REPLAY_PAGE;
    let mut bytes = 0;
    let fitting = messages
        .iter()
        .take_while(|message| {
            // Exact: escaping can make a text several times longer than its bytes.
            bytes += serde_json::to_vec(message).map_or(usize::MAX / 2, |json| json.len());
            bytes <= REPLAY_PAGE_BYTES
        })
        .count()
        .max(1);
    let cut = fitting < messages.len();
    messages.truncate(fitting);
    ReplayPage {
        messages,
        has_more: full || cut,
    }
}

/// The first seq missing from a forward page that is not one a re-created counter skipped.
fn first_real_gap(after_seq: i64, messages: &[Message], reservation: &SeqReservation) -> Option<i64> {
    let mut expected = after_seq + 1;
    for message in messages {
        while expected < message.seq {
            if !reservation.may_be_void(expected) {
                return Some(expected);
            }
            expected += 1;
        }
        expected = message.seq + 1;
    }
    None
}

/// The first seq missing from a forward page that should continue right after `after_seq`.
fn first_gap(after_seq: i64, messages: &[Message]) -> Option<i64> {
    (after_seq + 1..)
        .zip(messages)
        .find(|(expected, message)| message.seq != *expected)
        .map(|(expected, _)| expected)
}

#[cfg(test)]
mod page_budget_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_page_keeps_what_fits_its_byte_budget_from_the_end_it_starts_at() {
        let big = "x".repeat(100_000);
        let page = || (1..=5).map(|seq| json!({"seq": seq, "text": big})).collect::<Vec<_>>();
        let mut forward = page();
        assert!(fit_page_bytes(&mut forward, false), "cut");
        assert_eq!(
            forward.iter().map(|m| m["seq"].as_i64().unwrap()).collect::<Vec<_>>(),
            [1, 2]
        );
        let mut backward = page();
        assert!(fit_page_bytes(&mut backward, true));
        assert_eq!(
            backward.iter().map(|m| m["seq"].as_i64().unwrap()).collect::<Vec<_>>(),
            [4, 5]
        );
        let mut one = vec![json!({"seq": 1, "text": "y".repeat(REPLAY_PAGE_BYTES * 2)})];
        assert!(!fit_page_bytes(&mut one, false), "at least one message, even too large");
        assert_eq!(one.len(), 1);
        let mut small = vec![json!({"seq": 1}), json!({"seq": 2})];
        assert!(!fit_page_bytes(&mut small, true));
        assert_eq!(small.len(), 2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::model::limits;
    use crate::ports::cache::{MemoryCache, RecentWindow};
    use crate::ports::store::{MemoryStore, MessageStore};

    fn message(seq: i64, text: &str) -> Message {
        Message {
            id: format!("m{seq}"),
            app_id: "app".into(),
            conversation_id: "c".into(),
            seq,
            sender_id: "u".into(),
            client_msg_id: format!("c{seq}"),
            text: text.into(),
            reply_to: None,
            created_at: 1,
            correlation_id: "corr".into(),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn pages_merge_stored_and_recent_messages() {
        let (store, cache) = (MemoryStore::new(), MemoryCache::new());
        store
            .insert_messages(&(1..=4).map(|seq| message(seq, "stored")).collect::<Vec<_>>())
            .await
            .unwrap();
        for seq in 3..=6 {
            let payload = serde_json::to_string(&message(seq, "recent")).unwrap();
            cache.remember_recent("app", "c", seq, &payload).await.unwrap();
        }
        let forward = SeqRange {
            after_seq: Some(1),
            before_seq: None,
            limit: 10,
        };
        let messages = page(&store, &cache, "app", "c", forward).await.unwrap();
        let seen: Vec<(i64, &str)> = messages.iter().map(|m| (m.seq, m.text.as_str())).collect();
        assert_eq!(
            seen,
            [
                (2, "stored"),
                (3, "stored"),
                (4, "stored"),
                (5, "recent"),
                (6, "recent")
            ]
        );
        assert_eq!(first_gap(1, &messages), None);
        assert_eq!(first_gap(0, &messages), Some(1));

        let long = "x".repeat(limits::MAX_TEXT_BYTES);
        let cut = cut_to_budget((1..=100).map(|seq| message(seq, &long)).collect());
        assert!(cut.has_more);
        assert!(cut.messages.len() * limits::MAX_TEXT_BYTES <= REPLAY_PAGE_BYTES);
        assert_eq!(cut.messages.last().map(|m| m.seq), Some(cut.messages.len() as i64));
        let whole = cut_to_budget((1..=3).map(|seq| message(seq, "short")).collect());
        assert_eq!((whole.messages.len(), whole.has_more), (3, false));

        let skipped = SeqReservation {
            uncertain: vec![crate::domain::model::SeqSpan { after: 2, through: 10 }],
            ..SeqReservation::default()
        };
        let across: Vec<Message> = [1, 2, 11, 12].map(|seq| message(seq, "m")).to_vec();
        assert_eq!(first_gap(0, &across), Some(3));
        assert_eq!(
            first_real_gap(0, &across, &skipped),
            None,
            "only skipped seqs are missing"
        );
        let holed: Vec<Message> = [1, 2, 11, 13].map(|seq| message(seq, "m")).to_vec();
        assert_eq!(first_real_gap(0, &holed, &skipped), Some(12));

        let latest = SeqRange {
            after_seq: None,
            before_seq: None,
            limit: 2,
        };
        let messages = page(&store, &cache, "app", "c", latest).await.unwrap();
        assert_eq!(messages.iter().map(|m| m.seq).collect::<Vec<_>>(), [5, 6]);
    }
}
