//! In-process fan-out: the broker is shared by every node of one process.

use super::{FanOut, Inbox};
use crate::Result;
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The in-process broker shared by the nodes of one process; clones are the same broker.
#[derive(Clone, Default)]
pub struct MemoryBroker {
    /// channel → node id → that node's inbox.
    subscribers: Arc<Mutex<HashMap<String, HashMap<u64, Inbox>>>>,
    next_node: Arc<AtomicU64>,
}

impl MemoryBroker {
    /// A broker with no subscribers yet.
    pub fn new() -> Self {
        Self::default()
    }

    fn subscribers(&self) -> std::sync::MutexGuard<'_, HashMap<String, HashMap<u64, Inbox>>> {
        self.subscribers.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// One node's fan-out on a [`MemoryBroker`]: what it publishes reaches every node of the broker subscribed to the
/// channel, itself included.
pub struct MemoryFanOut {
    broker: MemoryBroker,
    node: u64,
    inbox: Inbox,
}

impl MemoryFanOut {
    /// A new node on `broker` whose subscribed payloads arrive on `inbox`.
    pub fn new(broker: MemoryBroker, inbox: Inbox) -> Self {
        let node = broker.next_node.fetch_add(1, Ordering::Relaxed);
        Self { broker, node, inbox }
    }
}

#[async_trait]
impl FanOut for MemoryFanOut {
    async fn publish(&self, channel: &str, payload: &str) -> Result<()> {
        if let Some(nodes) = self.broker.subscribers().get_mut(channel) {
            // A node that has gone away has dropped its inbox; forget it.
            nodes.retain(|_, inbox| inbox.send((channel.to_owned(), payload.to_owned())).is_ok());
        }
        Ok(())
    }

    async fn subscribe(&self, channel: &str) -> Result<()> {
        self.broker
            .subscribers()
            .entry(channel.to_owned())
            .or_default()
            .insert(self.node, self.inbox.clone());
        Ok(())
    }

    async fn unsubscribe(&self, channels: &[String]) -> Result<()> {
        let mut subscribers = self.broker.subscribers();
        for channel in channels {
            if let Some(nodes) = subscribers.get_mut(channel) {
                nodes.remove(&self.node);
                if nodes.is_empty() {
                    subscribers.remove(channel);
                }
            }
        }
        Ok(())
    }
}
