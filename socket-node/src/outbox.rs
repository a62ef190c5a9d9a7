//! A connection's outbound queue, bounded in bytes rather than frames.
//!
//! Replies and hub deliveries both go through [`Outbox::push`], which never waits: a client that does
//! not read fills its queue, the push that would pass the byte limit fails, and the connection is
//! closed as too slow (the client reconnects and resumes by `since_seq`). So a client can hold at most
//! the limit, plus the one frame the writer is writing, in the node's memory — however much it asks for.

use std::collections::VecDeque;
use std::sync::Mutex;
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Utf8Bytes;

/// The queue would pass its byte limit: the connection must close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overflow;

#[derive(Default)]
struct Queue {
    frames: VecDeque<Utf8Bytes>,
    bytes: usize,
    /// Set by the first refused push; every later push is refused too, so the queue stops growing.
    overflowed: bool,
    /// No more frames will be pushed; the writer drains what is left, then stops.
    closed: bool,
}

/// One connection's frames waiting for its writer.
pub struct Outbox {
    limit_bytes: usize,
    queue: Mutex<Queue>,
    /// Wakes the writer when a frame arrives or the outbox closes.
    ready: Notify,
    /// Wakes the reader when a push was refused.
    overflow: Notify,
}

impl Outbox {
    /// An empty outbox holding at most `limit_bytes` of frames. One frame larger than the limit is still
    /// accepted into an empty queue: replies are bounded by the protocol's page sizes, and refusing them
    /// would make large pages impossible rather than slow.
    pub fn new(limit_bytes: usize) -> Self {
        Self {
            limit_bytes,
            queue: Mutex::new(Queue::default()),
            ready: Notify::new(),
            overflow: Notify::new(),
        }
    }

    /// Queues `frame` without waiting, or refuses it when the queue would pass its limit (then every
    /// later push is refused too, and [`Self::overflowed`] completes).
    pub fn push(&self, frame: Utf8Bytes) -> Result<(), Overflow> {
        self.push_corked(frame)?;
        self.wake();
        Ok(())
    }

    /// [`Self::push`] without waking the writer: whoever queues several frames for several connections
    /// at once wakes each writer once at the end ([`Self::wake`]), so it writes them all in one go.
    pub fn push_corked(&self, frame: Utf8Bytes) -> Result<(), Overflow> {
        {
            let mut queue = self.queue.lock().expect("outbox lock");
            if queue.closed {
                return Ok(()); // The connection is ending; nobody will read this.
            }
            let fits = queue.frames.is_empty() || queue.bytes + frame.len() <= self.limit_bytes;
            if queue.overflowed || !fits {
                if !queue.overflowed {
                    queue.overflowed = true;
                    // What is queued will not be written: the connection closes as too slow.
                    queue.frames.clear();
                    queue.bytes = 0;
                    self.overflow.notify_one();
                }
                return Err(Overflow);
            }
            queue.bytes += frame.len();
            queue.frames.push_back(frame);
        }
        Ok(())
    }

    /// Queues `frames` ahead of everything queued, in their order: a connection's greeting, which must
    /// come before events the hub queued while the connection was being set up. Never refused (a
    /// greeting is small and comes first).
    pub fn push_front(&self, frames: Vec<Utf8Bytes>) {
        {
            let mut queue = self.queue.lock().expect("outbox lock");
            if queue.closed || queue.overflowed {
                return;
            }
            for frame in frames.into_iter().rev() {
                queue.bytes += frame.len();
                queue.frames.push_front(frame);
            }
        }
        self.wake();
    }

    /// Wakes the writer for what [`Self::push_corked`] queued.
    pub fn wake(&self) {
        self.ready.notify_one();
    }

    /// Completes once a push has been refused.
    pub async fn overflowed(&self) {
        self.overflow.notified().await;
    }

    /// No more frames: the writer writes what is queued and stops.
    pub fn close(&self) {
        self.queue.lock().expect("outbox lock").closed = true;
        self.ready.notify_one();
    }

    /// The next frame, waiting for one; `None` once the outbox is closed and drained.
    pub async fn next(&self) -> Option<Utf8Bytes> {
        loop {
            if let Some(frame) = self.try_next() {
                return Some(frame);
            }
            if self.queue.lock().expect("outbox lock").closed {
                return None;
            }
            // `notify_one` stores a permit when the writer is not waiting yet, so no wake-up is lost
            // between the check above and this wait.
            self.ready.notified().await;
        }
    }

    /// The next frame if one is queued.
    pub fn try_next(&self) -> Option<Utf8Bytes> {
        let mut queue = self.queue.lock().expect("outbox lock");
        let frame = queue.frames.pop_front()?;
        queue.bytes -= frame.len();
        Some(frame)
    }

    /// Whether the outbox is closed and nothing is left to write.
    pub fn is_closed_and_empty(&self) -> bool {
        let queue = self.queue.lock().expect("outbox lock");
        queue.closed && queue.frames.is_empty()
    }

    /// Bytes queued now.
    #[cfg(test)]
    pub fn queued_bytes(&self) -> usize {
        self.queue.lock().expect("outbox lock").bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_past_the_byte_limit_and_keeps_refusing() {
        let outbox = Outbox::new(10);
        assert_eq!(outbox.push("12345".into()), Ok(()));
        assert_eq!(outbox.push("12345".into()), Ok(()));
        assert_eq!(outbox.queued_bytes(), 10);
        assert_eq!(outbox.push("1".into()), Err(Overflow));
        // Draining does not reopen an overflowed outbox: the connection is closing.
        assert_eq!(outbox.try_next(), None);
        assert_eq!(outbox.push("1".into()), Err(Overflow));
        assert_eq!(outbox.queued_bytes(), 0);
    }

    #[test]
    fn a_greeting_goes_ahead_of_what_was_queued() {
        let outbox = Outbox::new(100);
        outbox.push("live".into()).unwrap();
        outbox.push_front(vec!["hello".into(), "ready".into()]);
        let order: Vec<_> = std::iter::from_fn(|| outbox.try_next()).collect();
        assert_eq!(order, ["hello", "ready", "live"]);
        assert_eq!(outbox.queued_bytes(), 0);
    }

    #[test]
    fn one_large_frame_fits_an_empty_queue() {
        let outbox = Outbox::new(4);
        assert_eq!(outbox.push("a large reply".into()), Ok(()));
        assert_eq!(outbox.push("x".into()), Err(Overflow));
    }

    #[tokio::test]
    async fn the_writer_drains_in_order_then_stops_after_close() {
        let outbox = std::sync::Arc::new(Outbox::new(100));
        let writer = {
            let outbox = std::sync::Arc::clone(&outbox);
            tokio::spawn(async move {
                let mut written = Vec::new();
                while let Some(frame) = outbox.next().await {
                    written.push(frame.as_str().to_owned());
                }
                written
            })
        };
        outbox.push("one".into()).unwrap();
        tokio::task::yield_now().await;
        outbox.push("two".into()).unwrap();
        outbox.close();
        assert_eq!(writer.await.unwrap(), ["one", "two"]);
        tokio::time::timeout(std::time::Duration::from_millis(10), outbox.overflowed())
            .await
            .expect_err("no overflow happened");
    }
}
