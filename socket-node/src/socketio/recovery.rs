//! Socket.IO's connection-state recovery mapped onto the durable per-conversation `seq`.
//!
//! Socket.IO keeps a node's missed packets in that node's memory, so a client that comes back to
//! another node (or to a node that restarted) has lost them. Here a connection's [`Record`] — each
//! subscribed conversation, its epoch and the highest seq the client is known to have processed — is
//! kept in the cache under the connection's recovery id (`pid`), and a client that reconnects with
//! that pid, on any node, is re-subscribed with `since_seq` and gets what it missed from the
//! conversation's recent window and the store.
//!
//! "Known to have processed": the client answers the heartbeat's ping after everything written before
//! it (one ordered transport), so a pong confirms every `message.new` written before its ping. The
//! offset the client presents when it reconnects (the last string argument of the last event it
//! processed, `<seq>@<conversation>` on each `message.new`) tightens its conversation's floor further.
//! What may be replayed twice is at most what was written since the last confirmed ping; the protocol
//! already lets clients drop a `message.new` whose seq they hold.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

/// What the cache keeps for one recovery id.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Only this user may resume it.
    pub user_id: String,
    /// Conversation id → what the client holds of it.
    pub subscriptions: BTreeMap<String, Floor>,
}

/// The client holds every message of the conversation's `epoch` up to `seq`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Floor {
    pub epoch: String,
    pub seq: i64,
}

impl Record {
    pub fn new(user_id: &str) -> Self {
        Self {
            user_id: user_id.to_owned(),
            subscriptions: BTreeMap::new(),
        }
    }

    /// Raises the floor of the offset's conversation to the offset's seq: the client says it
    /// processed that message.
    pub fn tighten(&mut self, offset: &str) {
        let Some((seq, conversation_id)) = offset.split_once('@') else {
            return;
        };
        let (Ok(seq), Some(floor)) = (seq.parse::<i64>(), self.subscriptions.get_mut(conversation_id)) else {
            return;
        };
        floor.seq = floor.seq.max(seq);
    }
}

/// The offset appended to a `message.new`.
pub fn offset(conversation_id: &str, seq: i64) -> String {
    format!("{seq}@{conversation_id}")
}

/// One Socket.IO connection's recovery state: the confirmed record, and what has been written since.
pub struct Tracker {
    pub pid: String,
    state: Mutex<State>,
}

struct State {
    /// Floors confirmed by subscriptions and pongs: what is saved.
    record: Record,
    /// The highest seq written per conversation.
    written: HashMap<String, i64>,
    /// `written` as it was when the last ping was written; confirmed by its pong.
    at_ping: Option<HashMap<String, i64>>,
}

impl Tracker {
    pub fn new(pid: String, record: Record) -> Self {
        Self {
            pid,
            state: Mutex::new(State {
                record,
                written: HashMap::new(),
                at_ping: None,
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The record to save now.
    pub fn record(&self) -> Record {
        self.state().record.clone()
    }

    /// The client subscribed: live events follow `last_seq` (what came before it the client reads as
    /// history). A conversation already tracked in the same epoch keeps its floor.
    pub fn subscribed(&self, conversation_id: &str, epoch: &str, last_seq: i64) -> Record {
        let mut state = self.state();
        let keep = state
            .record
            .subscriptions
            .get(conversation_id)
            .is_some_and(|floor| floor.epoch == epoch);
        if !keep {
            state.record.subscriptions.insert(
                conversation_id.to_owned(),
                Floor {
                    epoch: epoch.to_owned(),
                    seq: last_seq,
                },
            );
        }
        state.record.clone()
    }

    /// The client left the conversation: nothing more to recover there.
    pub fn unsubscribed(&self, conversation_id: &str) -> Record {
        let mut state = self.state();
        state.record.subscriptions.remove(conversation_id);
        state.written.remove(conversation_id);
        state.record.clone()
    }

    /// A `message.new` of `conversation_id` with `seq` is being written; returns its offset.
    pub fn written(&self, conversation_id: &str, seq: i64) -> String {
        let mut state = self.state();
        let highest = state.written.entry(conversation_id.to_owned()).or_insert(seq);
        *highest = (*highest).max(seq);
        offset(conversation_id, seq)
    }

    /// A ping is being written.
    pub fn ping_written(&self) {
        let mut state = self.state();
        state.at_ping = Some(state.written.clone());
    }

    /// The client answered the last ping: what was written before it is confirmed. Returns the record
    /// to save when a floor moved.
    pub fn ponged(&self) -> Option<Record> {
        let mut state = self.state();
        let confirmed = state.at_ping.take()?;
        let mut moved = false;
        for (conversation_id, seq) in confirmed {
            if let Some(floor) = state.record.subscriptions.get_mut(&conversation_id) {
                if seq > floor.seq {
                    floor.seq = seq;
                    moved = true;
                }
            }
        }
        moved.then(|| state.record.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pong_confirms_what_was_written_before_its_ping_and_no_more() {
        let tracker = Tracker::new("p".into(), Record::new("u"));
        tracker.subscribed("c1", "e1", 10);
        assert_eq!(tracker.written("c1", 11), "11@c1");
        tracker.written("c2", 5); // not subscribed: never recovered
        tracker.ping_written();
        tracker.written("c1", 12); // after the ping: unconfirmed
        let saved = tracker.ponged().expect("the floor moved");
        assert_eq!(saved.subscriptions["c1"].seq, 11);
        assert!(!saved.subscriptions.contains_key("c2"));
        assert_eq!(tracker.ponged(), None, "a pong without a ping confirms nothing");
        tracker.ping_written();
        assert_eq!(tracker.ponged().unwrap().subscriptions["c1"].seq, 12);
    }

    #[test]
    fn a_resubscribe_keeps_the_floor_unless_the_epoch_changed() {
        let tracker = Tracker::new("p".into(), Record::new("u"));
        tracker.subscribed("c", "e1", 3);
        assert_eq!(tracker.subscribed("c", "e1", 9).subscriptions["c"].seq, 3);
        let renumbered = tracker.subscribed("c", "e2", 1);
        assert_eq!(
            renumbered.subscriptions["c"],
            Floor {
                epoch: "e2".into(),
                seq: 1
            }
        );
        assert!(tracker.unsubscribed("c").subscriptions.is_empty());
    }

    #[test]
    fn the_clients_offset_tightens_its_conversation_only() {
        let mut record = Record::new("u");
        for (conversation, seq) in [("c1", 4), ("c2", 7)] {
            record
                .subscriptions
                .insert(conversation.into(), Floor { epoch: "e".into(), seq });
        }
        record.tighten("9@c1");
        record.tighten("3@c2"); // lower than the floor: ignored
        record.tighten("bad");
        record.tighten("5@unknown");
        assert_eq!(record.subscriptions["c1"].seq, 9);
        assert_eq!(record.subscriptions["c2"].seq, 7);
    }
}
