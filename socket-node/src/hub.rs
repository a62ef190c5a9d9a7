//! Routes events to local connections and across nodes.
//!
//! Each node subscribes to a fan-out channel (Redis pub/sub, or the in-process broker in the embedded
//! mode) only while at least one of its connections wants it, so a message is published once and reaches only nodes with an interested
//! client. Payloads are serialised once and shared by every recipient. Each channel puts a
//! conversation's messages back in seq order ([`InOrder`]) before they reach a connection.

use crate::in_order::InOrder;
use crate::outbox::Outbox;
use caas_shared::domain::protocol;
use caas_shared::ports::cache::PresenceHolder;
use caas_shared::ports::fanout::{self, FanOut, MemoryBroker, MemoryFanOut};
use caas_shared::Result;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::{mpsc, Notify};
use tokio_tungstenite::tungstenite::Utf8Bytes;

pub type ConnectionId = u64;

/// What the fan-out driver received: `(channel, payload)` for the channels this node subscribed to.
pub type FanIn = mpsc::UnboundedReceiver<(String, String)>;

/// The sending side of one client connection.
pub struct Outlet {
    /// The session of the token the connection authenticated with, so ending one session closes only
    /// its connections.
    pub session_id: String,
    /// Names the connection's presence uniquely across nodes (`node:connection`); the node renews it.
    pub presence: PresenceHolder,
    /// The connection's byte-bounded queue; a delivery that does not fit closes the connection instead
    /// of being silently dropped.
    pub outbox: Arc<Outbox>,
    /// Signalled after a `session.revoked` frame was queued: the connection closes once the frame is
    /// written.
    pub revoked: Arc<Notify>,
    /// The client's device in the key directory, when it named one.
    pub device_id: Option<String>,
}

/// A channel with local subscribers.
#[derive(Default)]
struct Channel {
    subscribers: HashSet<ConnectionId>,
    order: InOrder<Utf8Bytes>,
}

#[derive(Default)]
struct Routes {
    outlets: HashMap<ConnectionId, Outlet>,
    channels: HashMap<String, Channel>,
    channels_of: HashMap<ConnectionId, HashSet<String>>,
    /// The channels holding messages for a gap (usually none), so the fan-in finds them without a scan.
    holding: HashSet<String>,
}

/// The routes borrowed for delivery: the outlets shared by every frame queued, the channels' order changed.
struct Delivery<'r> {
    outlets: &'r HashMap<ConnectionId, Outlet>,
    channels: &'r mut HashMap<String, Channel>,
    holding: &'r mut HashSet<String>,
}

impl<'r> Delivery<'r> {
    /// Hands `payload` to the channel's order and queues what it releases for the channel's subscribers,
    /// without waking their writers; each outbox that took a frame is added to `corked`.
    fn deliver(
        &mut self,
        name: &str,
        seq: Option<u64>,
        payload: Utf8Bytes,
        now: Instant,
        corked: &mut Vec<&'r Arc<Outbox>>,
    ) {
        self.with_order(name, corked, |order, release| order.admit(seq, payload, now, release));
    }

    /// Runs `step` on the channel's order with a release that queues for its subscribers, then keeps
    /// [`Routes::holding`] in step with what the order holds.
    fn with_order(
        &mut self,
        name: &str,
        corked: &mut Vec<&'r Arc<Outbox>>,
        step: impl FnOnce(&mut InOrder<Utf8Bytes>, &mut dyn FnMut(Utf8Bytes)),
    ) {
        let Some(Channel { subscribers, order }) = self.channels.get_mut(name) else {
            return;
        };
        let outlets = self.outlets;
        step(order, &mut |frame| queue_for(outlets, subscribers, frame, corked));
        match order.deadline() {
            Some(_) if !self.holding.contains(name) => {
                self.holding.insert(name.to_owned());
            }
            None if !self.holding.is_empty() => {
                self.holding.remove(name);
            }
            _ => {}
        }
    }
}

impl Routes {
    fn split(&mut self) -> Delivery<'_> {
        Delivery {
            outlets: &self.outlets,
            channels: &mut self.channels,
            holding: &mut self.holding,
        }
    }

    /// The outlets of the local subscribers of `channel`.
    fn outlets_on<'r>(&'r self, channel: &str) -> impl Iterator<Item = &'r Outlet> + 'r {
        self.channels
            .get(channel)
            .into_iter()
            .flat_map(|channel| &channel.subscribers)
            .filter_map(|id| self.outlets.get(id))
    }
}

pub struct Hub {
    fan_out: Arc<dyn FanOut>,
    routes: Mutex<Routes>,
    /// Serialises fan-out subscribe/unsubscribe with the route changes that cause them, so a channel is
    /// never left unsubscribed while a local connection still wants it.
    subscriptions: tokio::sync::Mutex<()>,
    /// Held while presence is renewed and while a leaving connection drops its presence, so a renewal
    /// that saw the connection cannot land after its drop (and keep the user online for a TTL).
    presence: tokio::sync::Mutex<()>,
    next_id: AtomicU64,
}

impl Hub {
    /// Builds the hub over a fan-out driver. What the driver receives arrives on the driver's
    /// [`caas_shared::ports::fanout::Inbox`]; the node's fan-in relay hands it to
    /// [`Hub::deliver_local`].
    pub fn new(fan_out: Arc<dyn FanOut>) -> Arc<Self> {
        Arc::new(Self {
            fan_out,
            routes: Mutex::new(Routes::default()),
            subscriptions: tokio::sync::Mutex::new(()),
            presence: tokio::sync::Mutex::new(()),
            next_id: AtomicU64::new(1),
        })
    }

    /// A hub over the fan-out named by `url`: Redis pub/sub (`redis://…`, sharded on a cluster:
    /// `redis+cluster://…`), or for a single-process
    /// deployment (`memory://`) an in-process broker; with the receiving end of its inbox.
    pub async fn connect(url: &str) -> Result<(Arc<Self>, FanIn)> {
        let (inbox, received) = mpsc::unbounded_channel();
        let fan_out: Arc<dyn FanOut> = if url.starts_with("memory://") {
            Arc::new(MemoryFanOut::new(MemoryBroker::new(), inbox))
        } else {
            fanout::connect_redis(url, inbox).await?
        };
        Ok((Self::new(fan_out), received))
    }

    /// Sends `payload` to every subscriber of `channel` on every node, this one included.
    pub async fn publish(&self, channel: &str, payload: &str) -> Result<()> {
        self.fan_out.publish(channel, payload).await
    }

    /// The id the next registered connection gets (so its presence holder can be named first).
    pub fn next_connection_id(&self) -> ConnectionId {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Routes to the connection `id` (from [`Self::next_connection_id`]).
    pub fn register(&self, id: ConnectionId, outlet: Outlet) {
        self.routes.lock().expect("routes lock").outlets.insert(id, outlet);
    }

    /// Exclusive use of presence for the caller (see the field's docs).
    pub async fn hold_presence(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.presence.lock().await
    }

    /// The presence of every connection on this node, to renew.
    pub fn presence_holders(&self) -> Vec<PresenceHolder> {
        let routes = self.routes.lock().expect("routes lock");
        routes.outlets.values().map(|outlet| outlet.presence.clone()).collect()
    }

    /// Routes `channel` to the connection; returns once Redis confirmed the subscription, so anything
    /// published afterwards is guaranteed to arrive.
    pub async fn subscribe(&self, connection: ConnectionId, channel: &str) -> Result<()> {
        let _serialised = self.subscriptions.lock().await;
        let first_local_subscriber = {
            let mut routes = self.routes.lock().expect("routes lock");
            if !routes.outlets.contains_key(&connection) {
                return Ok(());
            }
            routes
                .channels_of
                .entry(connection)
                .or_default()
                .insert(channel.to_owned());
            let subscribers = &mut routes.channels.entry(channel.to_owned()).or_default().subscribers;
            subscribers.insert(connection);
            subscribers.len() == 1
        };
        if first_local_subscriber {
            if let Err(e) = self.fan_out.subscribe(channel).await {
                self.remove_route(connection, channel);
                return Err(e);
            }
        }
        Ok(())
    }

    fn remove_route(&self, connection: ConnectionId, channel: &str) -> bool {
        let mut routes = self.routes.lock().expect("routes lock");
        if let Some(channels) = routes.channels_of.get_mut(&connection) {
            channels.remove(channel);
        }
        let now_empty = match routes.channels.get_mut(channel) {
            Some(routed) => {
                routed.subscribers.remove(&connection);
                routed.subscribers.is_empty()
            }
            None => false,
        };
        if now_empty {
            // What it held was for nobody here any more.
            routes.channels.remove(channel);
            routes.holding.remove(channel);
        }
        now_empty
    }

    /// Forgets a closed connection and drops Redis subscriptions nobody on this node needs any more.
    pub async fn unregister(&self, connection: ConnectionId) {
        let _serialised = self.subscriptions.lock().await;
        let channels = {
            let mut routes = self.routes.lock().expect("routes lock");
            routes.outlets.remove(&connection);
            routes.channels_of.remove(&connection).unwrap_or_default()
        };
        let mut abandoned = Vec::new();
        for channel in channels {
            if self.remove_route(connection, &channel) {
                abandoned.push(channel);
            }
        }
        if !abandoned.is_empty() {
            if let Err(e) = self.fan_out.unsubscribe(&abandoned).await {
                tracing::warn!(error = %e, "fan-out unsubscribe failed");
            }
        }
    }

    /// Ends the live subscriptions to `conversation_channel` of every local connection on `user_channel`
    /// (a removed member stops receiving the conversation at once).
    pub fn revoke(&self, user_channel: &str, conversation_channel: &str) {
        let connections: Vec<ConnectionId> = {
            let routes = self.routes.lock().expect("routes lock");
            routes
                .channels
                .get(user_channel)
                .map(|c| c.subscribers.iter().copied().collect())
                .unwrap_or_default()
        };
        for connection in connections {
            // The fan-out subscription may linger until the node's last subscriber of the conversation
            // leaves; with no local route it delivers to nobody.
            self.remove_route(connection, conversation_channel);
        }
    }

    /// Starts `channel`'s order after `seq`, the conversation's counter read after the subscription was
    /// confirmed, delivering what waited for that ([`InOrder::start_after`]).
    pub fn start_after(&self, channel: &str, seq: u64) {
        let mut routes = self.routes.lock().expect("routes lock");
        let mut corked = Vec::new();
        let mut delivery = routes.split();
        delivery.with_order(channel, &mut corked, |order, release| order.start_after(seq, release));
        wake_each(corked);
    }

    /// Queues `payload`, an event without a seq, for every local subscriber of `channel` (behind any
    /// message the channel holds for a gap); returns how many it was queued for now.
    pub fn deliver_local(&self, channel: &str, payload: Utf8Bytes) -> usize {
        let mut routes = self.routes.lock().expect("routes lock");
        let mut corked = Vec::new();
        routes
            .split()
            .deliver(channel, None, payload, Instant::now(), &mut corked);
        let queued = corked.len();
        wake_each(corked);
        queued
    }

    /// [`Self::deliver_local`] for each `(channel, payload)` the fan-out delivered, in order, under one
    /// hold of the routes: the fan-in hands over everything Redis delivered since its last turn at once.
    /// Corked: each recipient's writer is woken once, after the whole batch, so it writes all of its
    /// frames at once. Returns when a message held for a gap is to be given up
    /// ([`Self::release_overdue`]).
    pub fn deliver_batch(&self, batch: impl IntoIterator<Item = (String, String)>) -> Option<Instant> {
        let mut routes = self.routes.lock().expect("routes lock");
        let mut corked = Vec::new();
        let now = Instant::now();
        let mut delivery = routes.split();
        for (channel, payload) in batch {
            let seq = protocol::message_new_seq(&payload);
            delivery.deliver(&channel, seq, Utf8Bytes::from(payload), now, &mut corked);
        }
        wake_each(corked);
        Self::next_deadline(&routes)
    }

    /// Delivers what waited too long for a gap; returns the next deadline.
    pub fn release_overdue(&self, now: Instant) -> Option<Instant> {
        let mut routes = self.routes.lock().expect("routes lock");
        // Only on a gap's deadline, and few channels hold anything: copying their names is cheap.
        let holding: Vec<String> = routes.holding.iter().cloned().collect();
        let mut corked = Vec::new();
        let mut delivery = routes.split();
        for name in &holding {
            delivery.with_order(name, &mut corked, |order, release| {
                order.expire(now, release);
            });
        }
        wake_each(corked);
        Self::next_deadline(&routes)
    }

    fn next_deadline(routes: &Routes) -> Option<Instant> {
        routes
            .holding
            .iter()
            .filter_map(|name| routes.channels.get(name)?.order.deadline())
            .min()
    }

    /// Sends `frame` (a `session.revoked` event) to the local connections on `user_channel` of
    /// `session_id`, or all of them when `None`, and closes them; returns how many.
    pub fn end_sessions(&self, user_channel: &str, session_id: Option<&str>, frame: Utf8Bytes) -> usize {
        let routes = self.routes.lock().expect("routes lock");
        let mut ended = 0;
        for outlet in routes.outlets_on(user_channel) {
            if session_id.is_some_and(|session_id| session_id != outlet.session_id) {
                continue;
            }
            // Queued if there is room; the connection closes either way.
            let _ = outlet.outbox.push(frame.clone());
            outlet.revoked.notify_one();
            ended += 1;
        }
        ended
    }

    /// Queues `payload` for the local connections on `user_channel` that named `device_id`; returns how
    /// many got it.
    pub fn deliver_to_device(&self, user_channel: &str, device_id: &str, payload: Utf8Bytes) -> usize {
        let routes = self.routes.lock().expect("routes lock");
        routes
            .outlets_on(user_channel)
            .filter(|outlet| outlet.device_id.as_deref() == Some(device_id))
            .filter(|outlet| outlet.outbox.push(payload.clone()).is_ok())
            .count()
    }

    /// The channels `connection` is routed that start with `prefix`.
    pub fn channels_of(&self, connection: ConnectionId, prefix: &str) -> HashSet<String> {
        let routes = self.routes.lock().expect("routes lock");
        routes
            .channels_of
            .get(&connection)
            .map(|channels| channels.iter().filter(|c| c.starts_with(prefix)).cloned().collect())
            .unwrap_or_default()
    }

    /// How many channels starting with `prefix` `connection` is routed (without copying them).
    pub fn count_channels_of(&self, connection: ConnectionId, prefix: &str) -> usize {
        let routes = self.routes.lock().expect("routes lock");
        routes
            .channels_of
            .get(&connection)
            .map_or(0, |channels| channels.iter().filter(|c| c.starts_with(prefix)).count())
    }

    /// `(app id, user id, session id)` of every connection on this node.
    pub fn sessions(&self) -> Vec<(String, String, String)> {
        let routes = self.routes.lock().expect("routes lock");
        routes
            .outlets
            .values()
            .map(|o| {
                (
                    o.presence.app_id.clone(),
                    o.presence.user_id.clone(),
                    o.session_id.clone(),
                )
            })
            .collect()
    }

    pub fn connection_count(&self) -> usize {
        self.routes.lock().expect("routes lock").outlets.len()
    }

    /// The channels that have a local subscriber and start with `prefix`.
    pub fn local_channels(&self, prefix: &str) -> Vec<String> {
        self.routes
            .lock()
            .expect("routes lock")
            .channels
            .keys()
            .filter(|channel| channel.starts_with(prefix))
            .cloned()
            .collect()
    }
}

/// Queues `frame` for each of `subscribers`; every recipient shares the frame's one allocation. A
/// refused push needs no wake: the overflow ends the connection.
fn queue_for<'r>(
    outlets: &'r HashMap<ConnectionId, Outlet>,
    subscribers: &HashSet<ConnectionId>,
    frame: Utf8Bytes,
    corked: &mut Vec<&'r Arc<Outbox>>,
) {
    for id in subscribers {
        let Some(outlet) = outlets.get(id) else { continue };
        if outlet.outbox.push_corked(frame.clone()).is_ok() {
            corked.push(&outlet.outbox);
        }
    }
}

/// Wakes each outbox once, however many frames it was given.
fn wake_each(mut corked: Vec<&Arc<Outbox>>) {
    corked.sort_unstable_by_key(|outbox| Arc::as_ptr(outbox));
    corked.dedup_by_key(|outbox| Arc::as_ptr(outbox));
    for outbox in corked {
        outbox.wake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use caas_shared::ports::fanout::{MemoryBroker, MemoryFanOut};
    use std::time::Duration;

    fn hub_on(broker: &MemoryBroker) -> Arc<Hub> {
        let (inbox, received) = mpsc::unbounded_channel();
        let hub = Hub::new(Arc::new(MemoryFanOut::new(broker.clone(), inbox)));
        let fan_in = Arc::clone(&hub);
        let mut received = received;
        tokio::spawn(async move {
            while let Some((channel, payload)) = received.recv().await {
                fan_in.deliver_batch([(channel, payload)]);
            }
        });
        hub
    }

    fn outlet(limit_bytes: usize) -> (Outlet, Arc<Outbox>) {
        let outbox = Arc::new(Outbox::new(limit_bytes));
        (
            Outlet {
                session_id: "session".into(),
                presence: PresenceHolder {
                    app_id: "app".into(),
                    user_id: "user".into(),
                    holder: "node:1".into(),
                },
                outbox: Arc::clone(&outbox),
                revoked: Arc::new(Notify::new()),
                device_id: None,
            },
            outbox,
        )
    }

    async fn next(received: &Outbox) -> String {
        tokio::time::timeout(Duration::from_secs(5), received.next())
            .await
            .unwrap()
            .unwrap()
            .as_str()
            .to_owned()
    }

    #[tokio::test]
    async fn events_reach_subscribers_on_other_nodes_and_stop_after_unregister() {
        let broker = MemoryBroker::new();
        let (node1, node2) = (hub_on(&broker), hub_on(&broker));
        let (out, received) = outlet(1024);
        let connection = node2.next_connection_id();
        node2.register(connection, out);
        node2.subscribe(connection, "conv").await.unwrap();
        node1.publish("conv", "first").await.unwrap();
        node1.publish("elsewhere", "ignored").await.unwrap();
        node1.publish("conv", "second").await.unwrap();
        assert_eq!(next(&received).await, "first");
        assert_eq!(next(&received).await, "second");
        node2.unregister(connection).await;
        assert_eq!(node2.connection_count(), 0);
        node1.publish("conv", "late").await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(received.try_next().is_none());
    }

    #[tokio::test]
    async fn a_batch_reaches_each_subscriber_in_order_with_one_wake() {
        let hub = hub_on(&MemoryBroker::new());
        let (out, received) = outlet(1024);
        let connection = hub.next_connection_id();
        hub.register(connection, out);
        hub.subscribe(connection, "conv").await.unwrap();
        hub.deliver_batch([("conv", "a"), ("elsewhere", "x"), ("conv", "b")].map(|(c, p)| (c.into(), p.into())));
        assert_eq!(next(&received).await, "a");
        assert_eq!(received.try_next().map(|f| f.as_str().to_owned()).as_deref(), Some("b"));
        assert!(received.try_next().is_none());
    }

    #[tokio::test]
    async fn a_full_outbox_signals_overflow_instead_of_blocking() {
        let hub = hub_on(&MemoryBroker::new());
        let (out, received) = outlet(5);
        let connection = hub.next_connection_id();
        hub.register(connection, out);
        hub.subscribe(connection, "conv").await.unwrap();
        assert_eq!(hub.deliver_local("conv", "one".into()), 1);
        assert_eq!(hub.deliver_local("conv", "two".into()), 0);
        tokio::time::timeout(Duration::from_secs(1), received.overflowed())
            .await
            .expect("overflow signalled");
        // The connection closes as too slow: what was queued is not written.
        assert!(received.try_next().is_none());
    }
}
