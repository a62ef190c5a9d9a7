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
//! it (one ordered transport), so a pong confirms the `message.new` written before its ping. Live
//! messages of one conversation can arrive out of seq order (two senders on two nodes publish
//! independently), so a floor only advances through consecutive seqs: a gap holds it back until the
//! missing message has been written and confirmed too. What may be replayed twice is at most what was
//! written since the last confirmed ping; the protocol already lets clients drop a `message.new` whose
//! seq they hold. The client's `offset` is not needed (it names one event, which says nothing about a
//! gap before it), so events carry none and a reconnect is recognised by its `pid` alone.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

/// What the cache keeps for one recovery id.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Only this user may resume it.
    pub user_id: String,
    /// The socket id of the connection that saves it: a connection that was replaced by the client's
    /// reconnection must not overwrite its successor's record when it finally closes.
    #[serde(default)]
    pub owner: String,
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
            owner: String::new(),
            subscriptions: BTreeMap::new(),
        }
    }
}

/// One Socket.IO connection's recovery state: the confirmed record, and what has been written since.
pub struct Tracker {
    pub pid: String,
    state: Mutex<State>,
}

/// Seqs written above a conversation's floor kept to find the consecutive run; past this many (a
/// client far behind a gap) later ones are not noted, which only means more is replayed.
const MAX_WRITTEN_AHEAD: usize = 4096;

struct State {
    /// Floors confirmed by subscriptions and pongs: what is saved.
    record: Record,
    /// Seqs written above the confirmed floor, per conversation.
    written: HashMap<String, BTreeSet<i64>>,
    /// The floor each conversation's consecutive written seqs reached when the last ping was written;
    /// confirmed by its pong.
    at_ping: Option<HashMap<String, i64>>,
}

impl Tracker {
    /// Tracks `record` for the connection `owner` (its socket id).
    pub fn new(pid: String, mut record: Record, owner: &str) -> Self {
        record.owner = owner.to_owned();
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

    /// The client subscribed: it holds the conversation up to `floor` (its `since_seq` when the reply
    /// recovered, else the conversation's last seq: what came before, it reads as history), and the
    /// reply carries `replayed`, written but not confirmed yet. A conversation already tracked in the
    /// same epoch keeps its floor.
    pub fn subscribed(&self, conversation_id: &str, epoch: &str, floor: i64, replayed: &[i64]) -> Record {
        let mut state = self.state();
        let keep = state
            .record
            .subscriptions
            .get(conversation_id)
            .is_some_and(|kept| kept.epoch == epoch);
        if !keep {
            state.record.subscriptions.insert(
                conversation_id.to_owned(),
                Floor {
                    epoch: epoch.to_owned(),
                    seq: floor,
                },
            );
            state.written.remove(conversation_id);
        }
        for &seq in replayed {
            note(&mut state, conversation_id, seq);
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

    /// A `message.new` of `conversation_id` with `seq` is being written.
    pub fn written(&self, conversation_id: &str, seq: i64) {
        note(&mut self.state(), conversation_id, seq);
    }

    /// A ping is being written: what is consecutive above each floor now is what its pong confirms.
    pub fn ping_written(&self) {
        let mut state = self.state();
        let reached = state
            .record
            .subscriptions
            .iter()
            .filter_map(|(conversation_id, floor)| {
                let written = state.written.get(conversation_id)?;
                let mut reached = floor.seq;
                while written.contains(&(reached + 1)) {
                    reached += 1;
                }
                (reached > floor.seq).then(|| (conversation_id.clone(), reached))
            })
            .collect();
        state.at_ping = Some(reached);
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
                    if let Some(written) = state.written.get_mut(&conversation_id) {
                        *written = written.split_off(&(seq + 1));
                    }
                }
            }
        }
        moved.then(|| state.record.clone())
    }
}

/// Notes `seq` as written for a tracked conversation, above its floor.
fn note(state: &mut State, conversation_id: &str, seq: i64) {
    let Some(floor) = state.record.subscriptions.get(conversation_id) else {
        return;
    };
    if seq <= floor.seq {
        return;
    }
    let written = state.written.entry(conversation_id.to_owned()).or_default();
    if written.len() < MAX_WRITTEN_AHEAD {
        written.insert(seq);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pong_confirms_what_was_written_before_its_ping_and_no_more() {
        let tracker = Tracker::new("p".into(), Record::new("u"), "s1");
        tracker.subscribed("c1", "e1", 10, &[]);
        tracker.written("c1", 11);
        tracker.written("c2", 5); // not subscribed: never recovered
        tracker.ping_written();
        tracker.written("c1", 12); // after the ping: unconfirmed
        let saved = tracker.ponged().expect("the floor moved");
        assert_eq!(saved.subscriptions["c1"].seq, 11);
        assert_eq!(saved.owner, "s1");
        assert!(!saved.subscriptions.contains_key("c2"));
        assert_eq!(tracker.ponged(), None, "a pong without a ping confirms nothing");
        tracker.ping_written();
        assert_eq!(tracker.ponged().unwrap().subscriptions["c1"].seq, 12);
    }

    #[test]
    fn a_floor_never_passes_a_message_not_yet_written() {
        // Two senders on two nodes: 13 is written before 12.
        let tracker = Tracker::new("p".into(), Record::new("u"), "s1");
        tracker.subscribed("c", "e", 11, &[]);
        tracker.written("c", 13);
        tracker.ping_written();
        assert_eq!(tracker.ponged(), None, "12 is missing: the floor stays at 11");
        tracker.written("c", 12);
        tracker.ping_written();
        assert_eq!(tracker.ponged().unwrap().subscriptions["c"].seq, 13);
    }

    #[test]
    fn a_resubscribe_keeps_the_floor_unless_the_epoch_changed() {
        let tracker = Tracker::new("p".into(), Record::new("u"), "s1");
        tracker.subscribed("c", "e1", 3, &[]);
        assert_eq!(tracker.subscribed("c", "e1", 9, &[]).subscriptions["c"].seq, 3);
        let renumbered = tracker.subscribed("c", "e2", 1, &[]);
        assert_eq!(
            renumbered.subscriptions["c"],
            Floor {
                epoch: "e2".into(),
                seq: 1
            }
        );
        // A replay in the subscribe reply counts once a pong confirms it.
        tracker.subscribed("c", "e2", 1, &[2, 3]);
        tracker.ping_written();
        assert_eq!(tracker.ponged().unwrap().subscriptions["c"].seq, 3);
        assert!(tracker.unsubscribed("c").subscriptions.is_empty());
    }
}
