//! Socket.IO's connection-state recovery mapped onto the durable per-conversation `seq`.
//!
//! Socket.IO keeps a node's missed packets in that node's memory, so a client that comes back to
//! another node (or to a node that restarted) has lost them. Here a connection's [`Record`] — each
//! subscribed conversation, its epoch and the highest seq the client is known to hold — is kept in
//! the cache under the connection's recovery id (`pid`), and a client that reconnects with that pid,
//! on any node, is re-subscribed and gets what it missed from the conversation's recent window and
//! the store — exactly what it missed, nothing it holds.
//!
//! Two things say what the client holds:
//! - the saved record: the client answers the heartbeat's ping after everything written before it
//!   (one ordered transport), so a pong confirms the `message.new` written before its ping;
//! - the client's `offset`: every `message.new` carries, as Socket.IO's own recovery does, an offset
//!   argument the client library keeps (the last one it received) and sends back with its `pid`. Ours
//!   is an [`Offset`]: for each conversation written to since the last confirmation, the seqs the
//!   client holds there — so the event it last received names everything written before it, on this
//!   and every other conversation, including messages that arrived out of seq order (two senders on
//!   two nodes publish independently).
//!
//! A resume starts each conversation after the higher of the two and skips the seqs the offset lists
//! above a gap: nothing the client received is sent again, and nothing it did not receive is skipped,
//! whichever node it comes back to. The offset is bounded ([`MAX_OFFSET_CONVERSATIONS`],
//! [`MAX_OFFSET_AHEAD`]); what does not fit is confirmed by the next pong, and only a node dying
//! before that could then repeat a message (never lose one). A client can only claim to hold more
//! than it does of its own conversations, which costs it alone.

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
/// Conversations an offset names at most: the event's own first, then others written to since the
/// last confirmation.
pub const MAX_OFFSET_CONVERSATIONS: usize = 16;
/// Seqs above a conversation's gap an offset lists at most (the lowest ones).
pub const MAX_OFFSET_AHEAD: usize = 16;
/// Longest offset a client may send back that is read (longer ones are ignored: a plain resume).
const MAX_OFFSET_BYTES: usize = 16 * 1024;

/// What an offset says the client holds of each conversation: every seq up to `[0]`, and the seqs
/// listed after it. Encoded as JSON, `{"<conversation id>":[floor, seq above a gap, …], …}`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Offset(pub BTreeMap<String, Vec<i64>>);

impl Offset {
    /// Reads a client's offset; `None` when it is not one of ours (too long, not JSON, wrong shape).
    pub fn parse(text: &str) -> Option<Self> {
        if text.len() > MAX_OFFSET_BYTES {
            return None;
        }
        let held: BTreeMap<String, Vec<i64>> = serde_json::from_str(text).ok()?;
        let fits = held.len() <= MAX_OFFSET_CONVERSATIONS
            && held
                .values()
                .all(|seqs| !seqs.is_empty() && seqs.len() <= MAX_OFFSET_AHEAD + 1);
        fits.then_some(Self(held))
    }
}

/// A conversation's floor raised to what an offset says the client holds, and the seqs it holds
/// above that (never sent again).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Held {
    pub floor: i64,
    pub ahead: BTreeSet<i64>,
}

impl Record {
    /// What the client holds of each subscribed conversation, by this record and its `offset`.
    pub fn held(&self, offset: Option<&Offset>) -> BTreeMap<String, Held> {
        self.subscriptions
            .iter()
            .map(|(conversation_id, floor)| {
                let mut held = Held {
                    floor: floor.seq,
                    ahead: BTreeSet::new(),
                };
                if let Some(seqs) = offset.and_then(|offset| offset.0.get(conversation_id)) {
                    held.floor = held.floor.max(seqs[0]);
                    held.ahead = seqs[1..].iter().copied().filter(|seq| *seq > held.floor).collect();
                }
                (conversation_id.clone(), held)
            })
            .collect()
    }
}

struct State {
    /// Floors confirmed by subscriptions and pongs: what is saved.
    record: Record,
    /// Seqs written above the confirmed floor, per conversation.
    written: HashMap<String, BTreeSet<i64>>,
    /// The floor each conversation's consecutive written seqs reached when the last ping was written;
    /// confirmed by its pong.
    at_ping: Option<HashMap<String, i64>>,
    /// Conversations subscribed without a replay: the client may not hold the seqs up to this one
    /// (it reads them as history), so a late live delivery of one is written, not taken for a repeat.
    not_held_through: HashMap<String, i64>,
}

/// What to do with a `message.new` about to be written to the client.
#[derive(Debug, PartialEq)]
pub enum Write {
    /// The client has it already (written before, or held when it resumed): not sent again.
    Held,
    /// New to the client: written with this offset (`None` when the conversation is not tracked).
    New(Option<String>),
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
                not_held_through: HashMap::new(),
            }),
        }
    }

    /// Tracks a resumed session: the record's floors raised to what the client holds (`held`, from
    /// [`Record::held`]), with the seqs it holds above a gap noted as written — not confirmed by a
    /// pong yet, but named in every offset until they are.
    pub fn resumed(pid: String, mut record: Record, held: &BTreeMap<String, Held>, owner: &str) -> Self {
        for (conversation_id, held) in held {
            if let Some(floor) = record.subscriptions.get_mut(conversation_id) {
                floor.seq = floor.seq.max(held.floor);
            }
        }
        let tracker = Self::new(pid, record, owner);
        {
            let mut state = tracker.state();
            for (conversation_id, held) in held {
                for &seq in &held.ahead {
                    note(&mut state, conversation_id, seq);
                }
            }
        }
        tracker
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The record to save now.
    pub fn record(&self) -> Record {
        self.state().record.clone()
    }

    /// The client subscribed: it holds the conversation up to `floor` (its `since_seq` when the reply
    /// recovered, else the conversation's last seq: what came before, it reads as history — then
    /// `holds_floor` is false, and a late live message at or below it is still written), and the reply
    /// carries `replayed`, written but not confirmed yet. A conversation already tracked in the same
    /// epoch keeps its floor.
    pub fn subscribed(
        &self,
        conversation_id: &str,
        epoch: &str,
        floor: i64,
        replayed: &[i64],
        holds_floor: bool,
    ) -> Record {
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
            match holds_floor {
                true => state.not_held_through.remove(conversation_id),
                false => state.not_held_through.insert(conversation_id.to_owned(), floor),
            };
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
        state.not_held_through.remove(conversation_id);
        state.record.clone()
    }

    /// A `message.new` of `conversation_id` with `seq` is being written.
    #[cfg(test)]
    pub fn written(&self, conversation_id: &str, seq: i64) {
        note(&mut self.state(), conversation_id, seq);
    }

    /// A `message.new` of `conversation_id` with `seq` is about to be written: [`Write::Held`] when the
    /// client has it already (a live delivery racing the replay of a subscribe or a resume), else
    /// notes it and returns the offset to send with it — what the client will hold once it has this
    /// event, beyond the confirmed record.
    pub fn write(&self, conversation_id: &str, seq: i64) -> Write {
        let mut state = self.state();
        let Some(floor) = state.record.subscriptions.get(conversation_id) else {
            return Write::New(None);
        };
        let below_floor = seq <= floor.seq
            && state
                .not_held_through
                .get(conversation_id)
                .is_none_or(|not_held| seq > *not_held);
        let written = state.written.get(conversation_id).is_some_and(|w| w.contains(&seq));
        if below_floor || written {
            return Write::Held;
        }
        if seq <= floor.seq {
            // A late live message the client may not have read as history: remembered, so a
            // second delivery of it is not written either.
            let late = state.written.entry(conversation_id.to_owned()).or_default();
            if late.len() < MAX_WRITTEN_AHEAD {
                late.insert(seq);
            }
        }
        note(&mut state, conversation_id, seq);
        let others = state
            .written
            .iter()
            .filter(|(id, written)| *id != conversation_id && !written.is_empty())
            .map(|(id, _)| id.as_str());
        let mut held = BTreeMap::new();
        for id in std::iter::once(conversation_id)
            .chain(others)
            .take(MAX_OFFSET_CONVERSATIONS)
        {
            let Some(floor) = state.record.subscriptions.get(id) else {
                continue;
            };
            let written = state.written.get(id);
            let mut reached = floor.seq;
            while written.is_some_and(|w| w.contains(&(reached + 1))) {
                reached += 1;
            }
            let mut seqs = vec![reached];
            if let Some(written) = written {
                seqs.extend(written.range(reached + 1..).take(MAX_OFFSET_AHEAD));
            }
            held.insert(id, seqs);
        }
        Write::New(Some(serde_json::to_string(&held).expect("an offset always encodes")))
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
        tracker.subscribed("c1", "e1", 10, &[], true);
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
        tracker.subscribed("c", "e", 11, &[], true);
        tracker.written("c", 13);
        tracker.ping_written();
        assert_eq!(tracker.ponged(), None, "12 is missing: the floor stays at 11");
        tracker.written("c", 12);
        tracker.ping_written();
        assert_eq!(tracker.ponged().unwrap().subscriptions["c"].seq, 13);
    }

    fn offset(text: &str) -> BTreeMap<String, Vec<i64>> {
        Offset::parse(text).expect("an offset").0
    }

    /// The offset [`Tracker::write`] gives a new message.
    fn offset_of(tracker: &Tracker, conversation_id: &str, seq: i64) -> Option<String> {
        match tracker.write(conversation_id, seq) {
            Write::New(offset) => offset,
            Write::Held => panic!("{conversation_id}/{seq} taken for a repeat"),
        }
    }

    #[test]
    fn what_the_client_has_is_never_written_again() {
        let tracker = Tracker::new("p".into(), Record::new("u"), "s1");
        tracker.subscribed("c", "e", 10, &[11, 12], true);
        assert_eq!(tracker.write("c", 12), Write::Held, "replayed, then live");
        assert_eq!(tracker.write("c", 9), Write::Held, "held since the subscribe");
        assert!(matches!(tracker.write("c", 13), Write::New(Some(_))));
        assert_eq!(tracker.write("c", 13), Write::Held);
        tracker.ping_written();
        tracker.ponged();
        assert_eq!(tracker.write("c", 11), Write::Held, "confirmed");
        // Subscribed without a replay: a late live message at or below the floor is still new.
        tracker.subscribed("d", "e", 20, &[], false);
        assert!(matches!(tracker.write("d", 20), Write::New(_)));
        assert_eq!(tracker.write("d", 20), Write::Held);
        assert_eq!(tracker.write("x", 1), Write::New(None), "not tracked");
    }

    #[test]
    fn each_offset_names_what_the_client_holds_beyond_the_confirmed_record() {
        let tracker = Tracker::new("p".into(), Record::new("u"), "s1");
        tracker.subscribed("c1", "e", 10, &[], true);
        tracker.subscribed("c2", "e", 3, &[], true);
        assert_eq!(offset(&offset_of(&tracker, "c1", 11).unwrap())["c1"], [11]);
        // 13 before 12 (two senders on two nodes): held above a gap.
        let after_13 = offset(&offset_of(&tracker, "c1", 13).unwrap());
        assert_eq!(after_13["c1"], [11, 13]);
        let other = offset(&offset_of(&tracker, "c2", 4).unwrap());
        assert_eq!(
            (other["c2"].as_slice(), other["c1"].as_slice()),
            (&[4][..], &[11, 13][..]),
            "names both"
        );
        assert_eq!(offset(&offset_of(&tracker, "c1", 12).unwrap())["c1"], [13]);
        assert_eq!(tracker.write("c9", 1), Write::New(None), "not tracked");
        // Confirmed by a pong: later offsets leave what the record holds out.
        tracker.ping_written();
        tracker.ponged();
        let next = offset(&offset_of(&tracker, "c2", 5).unwrap());
        assert_eq!(next.len(), 1, "{next:?}");
        assert_eq!(next["c2"], [5]);
    }

    #[test]
    fn a_resume_starts_after_what_the_record_and_the_offset_say_the_client_holds() {
        let mut record = Record::new("u");
        for (id, seq) in [("c1", 10), ("c2", 7), ("c3", 2)] {
            record.subscriptions.insert(id.into(), Floor { epoch: "e".into(), seq });
        }
        let client = Offset::parse(r#"{"c1":[11,13,9],"c2":[5],"elsewhere":[99]}"#).unwrap();
        let held = record.held(Some(&client));
        assert_eq!(
            held["c1"],
            Held {
                floor: 11,
                ahead: BTreeSet::from([13])
            }
        );
        assert_eq!(held["c2"].floor, 7, "the record knows more: the higher floor wins");
        assert_eq!(held["c3"].floor, 2);
        assert!(!held.contains_key("elsewhere"), "only the record's own subscriptions");
        let tracker = Tracker::resumed("p".into(), record, &held, "s2");
        assert_eq!(tracker.record().subscriptions["c1"].seq, 11);
        assert_eq!(
            offset(&offset_of(&tracker, "c1", 12).unwrap())["c1"],
            [13],
            "the held 13 closes the gap"
        );
        for bad in [
            "",
            "x",
            "[1]",
            r#"{"c":[]}"#,
            &format!("{{\"c\":[{}]}}", vec!["1"; 40].join(",")),
        ] {
            assert_eq!(Offset::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_resubscribe_keeps_the_floor_unless_the_epoch_changed() {
        let tracker = Tracker::new("p".into(), Record::new("u"), "s1");
        tracker.subscribed("c", "e1", 3, &[], true);
        assert_eq!(tracker.subscribed("c", "e1", 9, &[], true).subscriptions["c"].seq, 3);
        let renumbered = tracker.subscribed("c", "e2", 1, &[], true);
        assert_eq!(
            renumbered.subscriptions["c"],
            Floor {
                epoch: "e2".into(),
                seq: 1
            }
        );
        // A replay in the subscribe reply counts once a pong confirms it.
        tracker.subscribed("c", "e2", 1, &[2, 3], true);
        tracker.ping_written();
        assert_eq!(tracker.ponged().unwrap().subscriptions["c"].seq, 3);
        assert!(tracker.unsubscribed("c").subscriptions.is_empty());
    }
}
