//! Puts one conversation's live messages back in seq order before they reach this node's connections.
//!
//! A seq is handed out when a send is claimed, but the message is published to the fan-out only once the
//! bus has it, and sends finish in any order: two senders (on one node or two) can be numbered 5 and 6
//! and published 6 then 5. Clients, and Socket.IO's connection-state recovery above all, need each
//! conversation's `message.new` in seq order, so the fan-in holds a message that arrives ahead of a gap
//! until the gap fills, and gives the gap up once the message after it has waited [`GAP_WAIT`] (a send
//! that failed after its seq was handed out leaves a gap until the client's retry republishes it, which
//! then arrives late and is delivered at once: late, never lost). Events without a seq (edits,
//! reactions, typing) that arrive while messages are held wait behind them, so nothing overtakes a
//! message it followed.
//!
//! A channel starts at the conversation's counter as read after its subscription was confirmed
//! ([`InOrder::start_after`]); what arrives before that waits for it (or for [`GAP_WAIT`]).
//!
//! One [`InOrder`] per locally subscribed channel, owned by the hub's routes: a few words per channel
//! and nothing allocated while messages arrive in order. At most [`MAX_HELD`] messages wait per channel.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// How long a message waits for the seqs below it before the gap is given up.
pub const GAP_WAIT: Duration = Duration::from_secs(1);

/// Messages one channel holds for gaps at most; one more gives the lowest gap up at once.
pub const MAX_HELD: usize = 1000;

/// A message held for a gap below it, with the unsequenced events that arrived after it.
struct Held<F> {
    frame: F,
    after: Vec<F>,
    /// When it arrived: its gap is given up [`GAP_WAIT`] later.
    since: Instant,
}

/// The delivery order of one channel.
pub struct InOrder<F> {
    /// The highest seq delivered (or the channel's start); `None` until the channel starts.
    delivered: Option<u64>,
    /// Messages that arrived ahead of a gap (or before the start), by seq.
    held: BTreeMap<u64, Held<F>>,
}

impl<F> Default for InOrder<F> {
    fn default() -> Self {
        Self {
            delivered: None,
            held: BTreeMap::new(),
        }
    }
}

impl<F> InOrder<F> {
    /// Starts the channel after `seq`, the conversation's counter read after the live subscription was
    /// confirmed: every message numbered later arrives here. Messages held at or below it are
    /// delivered (they were numbered before the read), then whatever follows on.
    pub fn start_after(&mut self, seq: u64, mut release: impl FnMut(F)) {
        let start = self.delivered.map_or(seq, |delivered| delivered.max(seq));
        self.delivered = Some(start);
        while let Some(entry) = self.held.first_entry() {
            if *entry.key() > start {
                break;
            }
            let held = entry.remove();
            release(held.frame);
            held.after.into_iter().for_each(&mut release);
        }
        self.release_following(&mut release);
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
            // At or below what was delivered: its gap was given up, or it is a republication; the
            // client drops a seq it holds.
            Some(delivered) if seq <= delivered => release(frame),
            Some(delivered) if seq == delivered + 1 => {
                self.delivered = Some(seq);
                release(frame);
                self.release_following(&mut release);
            }
            // Ahead of a gap, or before the channel started.
            _ => {
                match self.held.get_mut(&seq) {
                    // The same seq twice (a republished send): both are delivered, in arrival order.
                    Some(earlier) => earlier.after.push(frame),
                    None => {
                        let held = Held {
                            frame,
                            after: Vec::new(),
                            since: now,
                        };
                        self.held.insert(seq, held);
                    }
                }
                if self.held.len() > MAX_HELD {
                    self.give_up_lowest(&mut release);
                }
            }
        }
    }

    /// Gives up every gap whose next message has waited [`GAP_WAIT`]; returns whether anything is
    /// still held.
    pub fn expire(&mut self, now: Instant, mut release: impl FnMut(F)) -> bool {
        while self.deadline().is_some_and(|deadline| deadline <= now) {
            self.give_up_lowest(&mut release);
        }
        !self.held.is_empty()
    }

    /// When the lowest gap is given up, while anything is held.
    pub fn deadline(&self) -> Option<Instant> {
        self.held.first_key_value().map(|(_, held)| held.since + GAP_WAIT)
    }

    /// Delivers the lowest held message as if its gap had filled, and what follows on.
    fn give_up_lowest(&mut self, release: &mut impl FnMut(F)) {
        if let Some((seq, held)) = self.held.pop_first() {
            self.delivered = Some(self.delivered.map_or(seq, |delivered| delivered.max(seq)));
            release(held.frame);
            held.after.into_iter().for_each(&mut *release);
            self.release_following(release);
        }
    }

    /// Releases the held messages that now follow on.
    fn release_following(&mut self, release: &mut impl FnMut(F)) {
        let Some(mut delivered) = self.delivered else {
            return;
        };
        while let Some(entry) = self.held.first_entry() {
            if *entry.key() != delivered + 1 {
                break;
            }
            delivered += 1;
            let held = entry.remove();
            release(held.frame);
            held.after.into_iter().for_each(&mut *release);
        }
        self.delivered = Some(delivered);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One step: `(n, frame)` admits `frame` with seq `n` (0: an unsequenced event); `(n, "start")`
    /// starts the channel after `n`; `(ms, "tick")` gives up the gaps due `ms` after the start of the run.
    type Step = (u64, &'static str);

    fn run(steps: &[Step]) -> Vec<&'static str> {
        let t0 = Instant::now();
        let mut order = InOrder::default();
        let mut out = Vec::new();
        for &(n, frame) in steps {
            match frame {
                "start" => order.start_after(n, |f| out.push(f)),
                "tick" => {
                    order.expire(t0 + Duration::from_millis(n), |f| out.push(f));
                }
                _ => order.admit((n > 0).then_some(n), frame, t0, |f| out.push(f)),
            }
        }
        out
    }

    #[test]
    fn delivers_each_channels_messages_in_seq_order() {
        let gap = GAP_WAIT.as_millis() as u64;
        let cases: &[(&str, &[Step], &[&str])] = &[
            (
                "in order passes straight through",
                &[(0, "start"), (1, "1"), (2, "2")],
                &["1", "2"],
            ),
            (
                "a swapped pair is put back",
                &[(4, "start"), (6, "6"), (5, "5")],
                &["5", "6"],
            ),
            (
                "a held run drains when its gap fills",
                &[(0, "start"), (3, "3"), (4, "4"), (2, "2"), (1, "1")],
                &["1", "2", "3", "4"],
            ),
            (
                "events wait behind the message they followed",
                &[(0, "start"), (0, "typing"), (2, "2"), (0, "edit-2"), (1, "1")],
                &["typing", "1", "2", "edit-2"],
            ),
            (
                "a gap is given up after the wait, the late message still delivered",
                &[
                    (0, "start"),
                    (2, "2"),
                    (3, "3"),
                    (gap - 1, "tick"),
                    (gap, "tick"),
                    (1, "1"),
                ],
                &["2", "3", "1"],
            ),
            (
                "gaps that waited together are given up together",
                &[(0, "start"), (2, "2"), (4, "4"), (gap, "tick"), (3, "3")],
                &["2", "4", "3"],
            ),
            (
                "a republished seq is delivered again (the client drops it)",
                &[
                    (0, "start"),
                    (1, "1"),
                    (1, "1 again"),
                    (3, "3"),
                    (3, "3 again"),
                    (2, "2"),
                ],
                &["1", "1 again", "2", "3", "3 again"],
            ),
            (
                "messages numbered before the start pass",
                &[(10, "start"), (9, "9"), (11, "11")],
                &["9", "11"],
            ),
            (
                "what arrives before the start waits for it",
                &[(12, "12"), (11, "11"), (10, "start"), (13, "13")],
                &["11", "12", "13"],
            ),
            (
                "a start past what was held releases it in seq order",
                &[(12, "12"), (11, "11"), (12, "start"), (13, "13")],
                &["11", "12", "13"],
            ),
            (
                "a channel that never starts gives up after the wait",
                &[(5, "5"), (gap, "tick"), (6, "6")],
                &["5", "6"],
            ),
        ];
        for (name, steps, expected) in cases {
            assert_eq!(&run(steps), expected, "{name}");
        }
    }

    #[test]
    fn the_deadline_follows_the_lowest_held_message() {
        let now = Instant::now();
        let mut order = InOrder::default();
        order.start_after(0, drop);
        order.admit(Some(1), "1", now, drop);
        assert_eq!(order.deadline(), None);
        order.admit(Some(3), "3", now, drop);
        assert_eq!(order.deadline(), Some(now + GAP_WAIT));
        let mut out = Vec::new();
        order.admit(Some(2), "2", now, |f| out.push(f));
        assert_eq!((out, order.deadline()), (vec!["2", "3"], None));
        assert!(!order.expire(now + GAP_WAIT, drop));
    }

    #[test]
    fn a_channel_holds_at_most_max_held_messages() {
        let now = Instant::now();
        let mut order = InOrder::default();
        order.start_after(0, drop);
        let mut out = Vec::new();
        // Seq 1 never comes; every other seq does, from 2 on, in reverse so none follows on.
        for seq in (2..=MAX_HELD as u64 + 2).rev() {
            order.admit(Some(seq), seq, now, |f| out.push(f));
        }
        assert_eq!(
            out,
            (2..=MAX_HELD as u64 + 2).collect::<Vec<_>>(),
            "the lowest gap given up at the cap"
        );
        assert_eq!(order.deadline(), None);
    }
}
