//! In-memory reference bus for the embedded dev mode: per-topic partitioned logs, keyed partitioning,
//! consumer groups with committed offsets and partitions shared among live members, like Kafka's.
//! Nothing survives the process; the durable state lives in the store.

use super::{partition_for, Bus, Consumer, Position, Record};
use crate::domain::events::EventHeaders;
use crate::{Error, Result};
use async_trait::async_trait;
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::watch;

/// The in-memory bus (`memory://`); clones share the same logs, so publishers and consumers of one process meet.
#[derive(Clone)]
pub struct MemoryBus {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    /// Bumped on every append and membership change, so waiting consumers look again.
    changes: watch::Sender<u64>,
    partitions: i32,
    next_member: AtomicU64,
}

#[derive(Default)]
struct State {
    /// topic → partition → records (offset = index).
    logs: HashMap<String, Vec<Vec<Record>>>,
    /// (group, topic) → the group's progress and live members.
    groups: HashMap<(String, String), Group>,
}

#[derive(Default)]
struct Group {
    committed: HashMap<i32, i64>,
    members: BTreeSet<u64>,
}

impl MemoryBus {
    /// An empty bus whose topics get `partitions` partitions (at least 1); create them with [`Bus::ensure_topics`].
    pub fn new(partitions: i32) -> Self {
        Self {
            inner: Arc::new(Inner {
                state: Mutex::new(State::default()),
                changes: watch::channel(0).0,
                partitions: partitions.max(1),
                next_member: AtomicU64::new(1),
            }),
        }
    }
}

impl Inner {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn announce_change(&self) {
        self.changes.send_modify(|version| *version += 1);
    }
}

fn unknown_topic(topic: &str) -> Error {
    Error::Bus(format!("unknown topic {topic}"))
}

#[async_trait]
impl Bus for MemoryBus {
    fn source(&self) -> (&'static str, String) {
        ("SelfManagedKafka", "memory://".into())
    }

    async fn ensure_topics(&self, topics: &[&str]) -> Result<()> {
        let mut state = self.inner.state();
        for topic in topics {
            state
                .logs
                .entry((*topic).to_owned())
                .or_insert_with(|| vec![Vec::new(); self.inner.partitions as usize]);
        }
        Ok(())
    }

    async fn publish(&self, topic: &str, key: &str, headers: &EventHeaders, payload: &[u8]) -> Result<()> {
        {
            let mut state = self.inner.state();
            let log = state.logs.get_mut(topic).ok_or_else(|| unknown_topic(topic))?;
            let partition = partition_for(key, log.len() as i32);
            let records = &mut log[partition as usize];
            records.push(Record {
                topic: topic.to_owned(),
                partition,
                offset: records.len() as i64,
                timestamp_ms: crate::now_ms(),
                key: Some(key.as_bytes().to_vec()),
                payload: payload.to_vec(),
                headers: headers
                    .pairs()
                    .iter()
                    .map(|(name, value)| ((*name).to_owned(), value.as_bytes().to_vec()))
                    .collect(),
            });
        }
        self.inner.announce_change();
        Ok(())
    }

    async fn group_consumer(&self, topic: &str, group: &str) -> Result<Box<dyn Consumer>> {
        let member = self.inner.next_member.fetch_add(1, Ordering::Relaxed);
        {
            let mut state = self.inner.state();
            if !state.logs.contains_key(topic) {
                return Err(unknown_topic(topic));
            }
            state
                .groups
                .entry((group.to_owned(), topic.to_owned()))
                .or_default()
                .members
                .insert(member);
        }
        self.inner.announce_change();
        Ok(Box::new(MemoryConsumer {
            changes: self.inner.changes.subscribe(),
            bus: Arc::clone(&self.inner),
            topic: topic.to_owned(),
            membership: Some((group.to_owned(), member)),
            positions: HashMap::new(),
            cursor: 0,
        }))
    }

    async fn tail(&self, topic: &str) -> Result<Box<dyn Consumer>> {
        let positions = {
            let state = self.inner.state();
            let log = state.logs.get(topic).ok_or_else(|| unknown_topic(topic))?;
            (0..).zip(log.iter().map(|records| records.len() as i64)).collect()
        };
        Ok(Box::new(MemoryConsumer {
            changes: self.inner.changes.subscribe(),
            bus: Arc::clone(&self.inner),
            topic: topic.to_owned(),
            membership: None,
            positions,
            cursor: 0,
        }))
    }
}

struct MemoryConsumer {
    bus: Arc<Inner>,
    changes: watch::Receiver<u64>,
    topic: String,
    /// `(group, member id)`; `None` for a tail reader.
    membership: Option<(String, u64)>,
    /// partition → next offset to read, for the partitions this consumer holds now.
    positions: HashMap<i32, i64>,
    /// Where the next round-robin scan starts, so no partition starves another.
    cursor: usize,
}

impl MemoryConsumer {
    /// Takes the next record this consumer may read, rebalancing first if the group changed.
    fn poll(&mut self) -> Option<Record> {
        let state = self.bus.state();
        let log = state.logs.get(&self.topic)?;
        if let Some((group, member)) = &self.membership {
            let group = state.groups.get(&(group.clone(), self.topic.clone()))?;
            let members: Vec<u64> = group.members.iter().copied().collect();
            let index = members.iter().position(|m| m == member)?;
            let assigned: Vec<i32> = (0..log.len() as i32)
                .filter(|p| *p as usize % members.len() == index)
                .collect();
            // Partitions moved to another member are dropped; new ones resume from the group's commit.
            self.positions.retain(|p, _| assigned.contains(p));
            for partition in assigned {
                self.positions
                    .entry(partition)
                    .or_insert_with(|| group.committed.get(&partition).copied().unwrap_or(0));
            }
        }
        let mut partitions: Vec<i32> = self.positions.keys().copied().collect();
        partitions.sort_unstable();
        for step in 0..partitions.len() {
            let partition = partitions[(self.cursor + step) % partitions.len()];
            let position = self.positions.get_mut(&partition)?;
            if let Some(record) = log[partition as usize].get(*position as usize) {
                *position += 1;
                self.cursor = (self.cursor + step + 1) % partitions.len();
                return Some(record.clone());
            }
        }
        None
    }
}

#[async_trait]
impl Consumer for MemoryConsumer {
    async fn next(&mut self) -> Result<Record> {
        loop {
            self.changes.borrow_and_update();
            if let Some(record) = self.poll() {
                return Ok(record);
            }
            self.changes
                .changed()
                .await
                .map_err(|_| Error::Bus("the in-memory bus was dropped".into()))?;
        }
    }

    async fn commit(&mut self, positions: &[Position]) -> Result<()> {
        let Some((group, _)) = &self.membership else {
            return Ok(());
        };
        let mut state = self.bus.state();
        if let Some(group) = state.groups.get_mut(&(group.clone(), self.topic.clone())) {
            for position in positions.iter().filter(|p| p.topic == self.topic) {
                let committed = group.committed.entry(position.partition).or_insert(0);
                *committed = (*committed).max(position.next_offset);
            }
        }
        Ok(())
    }
}

impl Drop for MemoryConsumer {
    fn drop(&mut self) {
        if let Some((group, member)) = &self.membership {
            if let Some(group) = self.bus.state().groups.get_mut(&(group.clone(), self.topic.clone())) {
                group.members.remove(member);
            }
            self.bus.announce_change();
        }
    }
}
