//! Puts one conversation's live messages back in seq order before they reach this node's connections.
//!
//! A seq is handed out when a send is claimed, but the message is published to the fan-out only once the
//! bus has it, and sends finish in any order: two senders (on one node or two) can be numbered 5 and 6
//! and published 6 then 5. Clients, and Socket.IO's connection-state recovery above all, need each
//! conversation's `message.new` in seq order, so the fan-in holds a message that arrives ahead of a gap
//! until the gap fills, and gives up on the gap after [`GAP_WAIT`] (a send that failed after its seq was
//! handed out leaves a gap until the client's retry republishes it, which then arrives late and is
//! delivered at once: late, never lost). Events without a seq (edits, reactions, typing) that arrive
//! while messages are held wait behind them, so nothing overtakes a message it followed.
//!
//! One [`InOrder`] per locally subscribed channel, owned by the hub's routes: a few words per channel
//! and nothing allocated while messages arrive in order.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// How long a message waits for the seqs below it before the gap is given up.
pub const GAP_WAIT: Duration = Duration::from_secs(1);

/// A message held for a gap below it, with the unsequenced events that arrived after it.
struct Held<F> {
    frame: F,
    after: Vec<F>,
}

/// The delivery order of one channel.
pub struct InOrder<F> {
    /// The highest seq delivered; `None` until the channel's first sequenced frame (or its start).
    delivered: Option<u64>,
    /// Messages that arrived ahead of a gap, by seq.
    held: BTreeMap<u64, Held<F>>,
    /// When the lowest gap is given up; set while anything is held.
    deadline: Option<Instant>,
}

impl<F> Default for InOrder<F> {
    fn default() -> Self {
        Self {
            delivered: None,
            held: BTreeMap::new(),
            deadline: None,
        }
    }
}

impl<F> InOrder<F> {
    /// Where the channel starts when nothing was delivered yet: the conversation's counter read after the
    /// live subscription was confirmed, so every message numbered later arrives here and none is
    /// mistaken for the first.
    pub fn start_after(&mut self, seq: u64) {
        if self.delivered.is_none() {
            self.delivered = Some(seq);
        }
    }

    /// Takes a frame (`seq` for `message.new`, `None` for any other event) and hands `release` every
    /// frame that may be delivered now, in order.
    pub fn admit(&mut self, seq: Option<u64>, frame: F, now: Instant, mut release: impl FnMut(F)) {
        let Some(seq) = seq else {
            match self.held.values_mut().next_back() {
                Some(last) => last.after.push(frame),
                None => release(frame),
            }
            return;
        };
        match self.delivered {
            Some(delivered) if seq > delivered + 1 => {
                if self.held.is_empty() {
                    self.deadline = Some(now + GAP_WAIT);
                }
                match self.held.get_mut(&seq) {
                    // The same seq twice (a republished send): both are delivered, in arrival order.
                    Some(earlier) => earlier.after.push(frame),
                    None => {
                        self.held.insert(seq, Held { frame, after: Vec::new() });
                    }
                }
            }
            // At or below what was delivered: its gap was given up, or it is a republication; the
            // client drops a seq it holds.
            Some(delivered) if seq <= delivered => release(frame),
            _ => {
                self.delivered = Some(seq);
                release(frame);
                self.release_following(now, &mut release);
            }
        }
    }

    /// Gives up the lowest gap if its time has come; returns whether anything is still held.
    pub fn expire(&mut self, now: Instant, mut release: impl FnMut(F)) -> bool {
        if self.deadline.is_some_and(|deadline| deadline <= now) {
            if let Some((seq, held)) = self.held.pop_first() {
                self.delivered = Some(seq);
                release(held.frame);
                held.after.into_iter().for_each(&mut release);
            }
            self.deadline = None;
            self.release_following(now, &mut release);
        }
        !self.held.is_empty()
    }

    /// When the lowest gap is given up, while anything is held.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Releases the held messages that now follow on, and restarts the wait for the next gap.
    fn release_following(&mut self, now: Instant, release: &mut impl FnMut(F)) {
        while let Some(entry) = self.held.first_entry() {
            let next = self.delivered.map_or(0, |delivered| delivered + 1);
            if *entry.key() != next {
                break;
            }
            let held = entry.remove();
            self.delivered = Some(next);
            release(held.frame);
            held.after.into_iter().for_each(&mut *release);
        }
        self.deadline = if self.held.is_empty() {
            None
        } else {
            Some(self.deadline.unwrap_or(now + GAP_WAIT))
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One arrival: `(seq, frame)`, `seq` 0 for an unsequenced event; `"tick"` with a seq of the
    /// milliseconds since the start checks the gap's expiry instead.
    type Step = (u64, &'static str);

    fn run(start: Option<u64>, steps: &[Step]) -> Vec<&'static str> {
        let t0 = Instant::now();
        let mut order = InOrder::default();
        if let Some(seq) = start {
            order.start_after(seq);
        }
        let mut out = Vec::new();
        for &(seq, frame) in steps {
            if frame == "tick" {
                order.expire(t0 + Duration::from_millis(seq), |f| out.push(f));
            } else {
                let seq = (seq > 0).then_some(seq);
                order.admit(seq, frame, t0, |f| out.push(f));
            }
        }
        out
    }

    #[test]
    fn delivers_each_channels_messages_in_seq_order() {
        let gap = GAP_WAIT.as_millis() as u64;
        let cases: &[(&str, Option<u64>, &[Step], &[&str])] = &[
            ("in order passes straight through", None, &[(1, "1"), (2, "2"), (3, "3")], &["1", "2", "3"]),
            ("first arrival starts the channel", None, &[(7, "7"), (8, "8")], &["7", "8"]),
            ("a swapped pair is put back", Some(4), &[(6, "6"), (5, "5")], &["5", "6"]),
            (
                "a held run drains when its gap fills",
                Some(0),
                &[(3, "3"), (4, "4"), (2, "2"), (1, "1")],
                &["1", "2", "3", "4"],
            ),
            (
                "events wait behind the message they followed",
                Some(0),
                &[(0, "typing"), (2, "2"), (0, "edit-2"), (1, "1")],
                &["typing", "1", "2", "edit-2"],
            ),
            (
                "a gap is given up after the wait, the late message still delivered",
                Some(0),
                &[(2, "2"), (3, "3"), (gap - 1, "tick"), (gap, "tick"), (1, "1")],
                &["2", "3", "1"],
            ),
            (
                "only the lowest gap is given up; the next waits again",
                Some(0),
                &[(2, "2"), (4, "4"), (gap, "tick"), (3, "3")],
                &["2", "3", "4"],
            ),
            (
                "a republished seq is delivered again (the client drops it)",
                Some(0),
                &[(1, "1"), (1, "1 again"), (3, "3"), (3, "3 again"), (2, "2")],
                &["1", "1 again", "2", "3", "3 again"],
            ),
            ("messages numbered before the start pass", Some(10), &[(9, "9"), (11, "11")], &["9", "11"]),
        ];
        for (name, start, steps, expected) in cases {
            assert_eq!(&run(*start, steps), expected, "{name}");
        }
    }

    #[test]
    fn the_deadline_is_set_only_while_something_is_held() {
        let now = Instant::now();
        let mut order = InOrder::default();
        order.start_after(0);
        order.admit(Some(1), "1", now, drop);
        assert_eq!(order.deadline(), None);
        order.admit(Some(3), "3", now, drop);
        assert_eq!(order.deadline(), Some(now + GAP_WAIT));
        let mut out = Vec::new();
        order.admit(Some(2), "2", now, |f| out.push(f));
        assert_eq!((out, order.deadline()), (vec!["2", "3"], None));
        assert!(!order.expire(now + GAP_WAIT, drop));
    }
}
