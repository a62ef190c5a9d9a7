//! Engine.IO long-polling sessions: a Socket.IO client that starts without a WebSocket (the default of
//! `socket.io-client`) sends its packets in POST bodies and receives in held GETs, each request naming
//! its session by `sid`. A session is the same connection as any other — one [`Outbox`], one connection
//! task reading its client's packets in order — with HTTP requests in place of a socket: a POST hands
//! its packets to the task, a held GET drains the outbox (it *is* the writer while the client polls).
//! When the client upgrades, the probed WebSocket is handed to the task, which carries on with the same
//! outbox, so nothing queued is lost or reordered.
//!
//! A sid lives on the node that created it: polling across several nodes needs sticky sessions at the
//! load balancer; WebSocket-only clients do not.

use crate::outbox::Outbox;
use crate::socketio::wire::Transcoder;
use crate::WebSocket;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use tokio::sync::{Notify, OwnedSemaphorePermit};

/// One long-polling session.
pub struct PollingSession {
    pub sid: String,
    /// What the client is sent; drained by held GETs, then by the WebSocket writer after an upgrade.
    pub outbox: Arc<Outbox>,
    /// How the held GETs encode the outbox's frames, set once the client is connected (with its
    /// recovery tracker); plain before.
    pub transcoder: OnceLock<Transcoder>,
    /// Packets from POST bodies, waiting for the connection task; holds one body at most.
    inbound: Mutex<Inbound>,
    /// Wakes the connection task when packets arrive or the client is gone.
    inbound_ready: Notify,
    /// Wakes a POST waiting for the task to take its packets.
    inbound_taken: Notify,
    /// A GET is being held (a second at once ends the session, as in the reference server).
    pub polling: AtomicBool,
    /// A POST is in progress.
    pub posting: AtomicBool,
    /// The client probed a WebSocket: a held GET is released with a noop.
    pub release_poll: Notify,
    /// The client probed a WebSocket and has not switched yet: polls are answered with a noop at once.
    pub upgrading: AtomicBool,
    /// The client switched to its WebSocket: no more polls.
    pub upgraded: AtomicBool,
    /// The upgraded WebSocket, for the connection task to take.
    upgrade: Mutex<Option<WebSocket>>,
    pub upgrade_ready: Notify,
    /// Signalled when a held GET found the outbox closed and drained: the client has had everything.
    pub drained: Notify,
    /// The session's place among the node's connections.
    _slot: OwnedSemaphorePermit,
}

#[derive(Default)]
struct Inbound {
    packets: VecDeque<String>,
    /// The client closed or the session ended: no more packets.
    closed: bool,
}

impl PollingSession {
    pub fn new(sid: String, outbox: Arc<Outbox>, slot: OwnedSemaphorePermit) -> Self {
        Self {
            sid,
            outbox,
            transcoder: OnceLock::new(),
            inbound: Mutex::default(),
            inbound_ready: Notify::new(),
            inbound_taken: Notify::new(),
            polling: AtomicBool::new(false),
            posting: AtomicBool::new(false),
            release_poll: Notify::new(),
            upgrading: AtomicBool::new(false),
            upgraded: AtomicBool::new(false),
            upgrade: Mutex::new(None),
            upgrade_ready: Notify::new(),
            drained: Notify::new(),
            _slot: slot,
        }
    }

    /// Hands a POST body's packets to the connection task and waits until it has taken them, so a
    /// client's packets are bounded by one body and are answered in order. `false` when the session
    /// has ended.
    pub async fn post(&self, packets: Vec<String>) -> bool {
        {
            let mut inbound = self.inbound.lock().expect("inbound lock");
            if inbound.closed {
                return false;
            }
            inbound.packets.extend(packets);
        }
        self.inbound_ready.notify_one();
        loop {
            let taken = self.inbound_taken.notified();
            {
                let inbound = self.inbound.lock().expect("inbound lock");
                if inbound.packets.is_empty() || inbound.closed {
                    return !inbound.closed;
                }
            }
            taken.await;
        }
    }

    /// The client's next packet; `None` once the session is closed.
    pub async fn recv(&self) -> Option<String> {
        loop {
            let ready = self.inbound_ready.notified();
            {
                let mut inbound = self.inbound.lock().expect("inbound lock");
                if let Some(packet) = inbound.packets.pop_front() {
                    if inbound.packets.is_empty() {
                        self.inbound_taken.notify_waiters();
                    }
                    return Some(packet);
                }
                if inbound.closed {
                    return None;
                }
            }
            ready.await;
        }
    }

    /// No more packets will be taken; a waiting POST and the connection task are told.
    pub fn close_inbound(&self) {
        self.inbound.lock().expect("inbound lock").closed = true;
        self.inbound_ready.notify_one();
        self.inbound_taken.notify_waiters();
    }

    /// Hands the client's upgraded WebSocket to the connection task.
    pub fn hand_over(&self, socket: WebSocket) {
        self.upgraded.store(true, Ordering::SeqCst);
        *self.upgrade.lock().expect("upgrade lock") = Some(socket);
        self.upgrade_ready.notify_one();
    }

    /// The upgraded WebSocket, once the client has switched.
    pub async fn upgraded_socket(&self) -> WebSocket {
        loop {
            if let Some(socket) = self.upgrade.lock().expect("upgrade lock").take() {
                return socket;
            }
            self.upgrade_ready.notified().await;
        }
    }
}

/// The node's long-polling sessions by sid.
#[derive(Default)]
pub struct PollingSessions {
    sessions: Mutex<HashMap<String, Arc<PollingSession>>>,
}

impl PollingSessions {
    pub fn insert(&self, session: Arc<PollingSession>) {
        let sid = session.sid.clone();
        self.sessions.lock().expect("sessions lock").insert(sid, session);
    }

    pub fn get(&self, sid: &str) -> Option<Arc<PollingSession>> {
        self.sessions.lock().expect("sessions lock").get(sid).cloned()
    }

    pub fn remove(&self, sid: &str) {
        self.sessions.lock().expect("sessions lock").remove(sid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_post_waits_until_its_packets_are_taken_in_order() {
        let slots = Arc::new(tokio::sync::Semaphore::new(1));
        let session = Arc::new(PollingSession::new(
            "s".into(),
            Arc::new(Outbox::new(1024)),
            slots.try_acquire_owned().unwrap(),
        ));
        let post = tokio::spawn({
            let session = Arc::clone(&session);
            async move { session.post(vec!["42[\"a\"]".into(), "3".into()]).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!post.is_finished(), "answered before the task took the packets");
        assert_eq!(session.recv().await.as_deref(), Some("42[\"a\"]"));
        assert_eq!(session.recv().await.as_deref(), Some("3"));
        assert!(post.await.unwrap());
        session.close_inbound();
        assert_eq!(session.recv().await, None);
        assert!(!session.post(vec!["3".into()]).await, "a closed session takes nothing");
    }
}
