//! The in-memory reference driver of the store port: the embedded dev mode's store and the fast unit
//! tests' store. It enforces the same unique constraints as the MongoDB indexes.
//!
//! Opened on a directory, it also keeps a snapshot there (written atomically after every change, read
//! back on open) so a dev-mode restart keeps apps, users, conversations and messages.

mod apps;
mod attachments;
mod compliance;
mod conversations;
mod keys;
mod messages;
mod users;
mod webhook_events;
mod webhooks;

use super::MessageInsert;
use crate::domain::audit::AuditRecord;
use crate::domain::model::{
    App, Attachment, Conversation, ConversationSummary, KeyDevice, LegalHold, Member, Message, Reaction, Restriction,
    SeqReservation, Session, StoredKey, User, WebhookDelivery, WebhookEndpoint, WebhookEvent,
};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

const SNAPSHOT_FILE: &str = "store.json";

/// (app_id, user_id, device_id): a device of the key directory.
type DeviceKey = (String, String, String);

#[derive(Default)]
struct Tables {
    apps: HashMap<String, App>,
    users: HashMap<String, User>,
    /// (app_id, external_id) → user id: the unique index of `users`.
    user_ids: HashMap<(String, String), String>,
    conversations: HashMap<String, Conversation>,
    members: HashMap<String, Member>,
    messages: HashMap<String, Message>,
    /// (app_id, conversation_id) → seq → message id: the unique index of `messages`.
    sequences: HashMap<(String, String), BTreeMap<i64, String>>,
    reactions: HashMap<String, Reaction>,
    /// (app_id, conversation_id, user_id) → read horizon.
    reads: HashMap<(String, String, String), i64>,
    summaries: HashMap<String, ConversationSummary>,
    attachments: HashMap<String, Attachment>,
    /// app_id → the app's audit chain in seq order.
    audit: HashMap<String, Vec<AuditRecord>>,
    holds: HashMap<String, LegalHold>,
    restrictions: HashMap<String, Restriction>,
    /// Keyed by [`app_scoped_key`], as session ids are only unique per app.
    sessions: HashMap<String, Session>,
    /// Messages refused because another message held their seq, kept for an operator, in arrival
    /// order (see `MessageStore::keep_seq_conflicts`).
    seq_conflicts: Vec<Message>,
    /// (app_id, conversation_id) → the conversation's seq reservation.
    seq_reservations: HashMap<(String, String), SeqReservation>,
    /// Ordered, so a user's devices are listed by device id.
    key_devices: BTreeMap<DeviceKey, KeyDevice>,
    /// Each device's unclaimed one-time keys, oldest first.
    one_time_keys: HashMap<DeviceKey, Vec<StoredKey>>,
    /// Each device's recently claimed one-time keys, with when (Unix ms): see `CLAIMED_KEY_MEMORY`.
    claimed_keys: HashMap<DeviceKey, Vec<(StoredKey, i64)>>,
    /// (app_id, user_id, device_id, algorithm) → the device's fallback key.
    fallback_keys: HashMap<(String, String, String, String), StoredKey>,
    /// Webhook endpoints by id.
    webhooks: HashMap<String, WebhookEndpoint>,
    /// The webhook delivery queue by delivery id.
    webhook_deliveries: HashMap<String, WebhookDelivery>,
    /// Each app's webhook event log: (app_id, seq) → the event.
    webhook_events: BTreeMap<(String, i64), WebhookEvent>,
    /// (app_id, event id) → its seq in the app's log.
    webhook_event_seqs: HashMap<(String, String), i64>,
    /// app_id → the last seq its log handed out (purging events does not lower it).
    webhook_event_counters: HashMap<String, i64>,
}

/// The records themselves; indexes are rebuilt from them on load.
#[derive(Default, Serialize, Deserialize)]
struct Snapshot {
    apps: Vec<App>,
    users: Vec<User>,
    conversations: Vec<Conversation>,
    members: Vec<Member>,
    messages: Vec<Message>,
    #[serde(default)]
    reactions: Vec<Reaction>,
    #[serde(default)]
    reads: Vec<(String, String, String, i64)>,
    #[serde(default)]
    summaries: Vec<ConversationSummary>,
    #[serde(default)]
    attachments: Vec<Attachment>,
    #[serde(default)]
    audit: Vec<AuditRecord>,
    #[serde(default)]
    holds: Vec<LegalHold>,
    #[serde(default)]
    restrictions: Vec<Restriction>,
    #[serde(default)]
    sessions: Vec<Session>,
    #[serde(default)]
    seq_reservations: Vec<SeqReservation>,
    #[serde(default)]
    key_devices: Vec<KeyDevice>,
    /// Each device's keys oldest first (restored in this order).
    #[serde(default)]
    one_time_keys: Vec<StoredKey>,
    #[serde(default)]
    fallback_keys: Vec<StoredKey>,
    #[serde(default)]
    claimed_keys: Vec<(StoredKey, i64)>,
    #[serde(default)]
    seq_conflicts: Vec<Message>,
    #[serde(default)]
    webhooks: Vec<WebhookEndpoint>,
    #[serde(default)]
    webhook_deliveries: Vec<WebhookDelivery>,
    #[serde(default)]
    webhook_events: Vec<WebhookEvent>,
    #[serde(default)]
    webhook_event_counters: Vec<(String, i64)>,
}

impl Tables {
    fn snapshot(&self) -> Snapshot {
        Snapshot {
            apps: self.apps.values().cloned().collect(),
            users: self.users.values().cloned().collect(),
            conversations: self.conversations.values().cloned().collect(),
            members: self.members.values().cloned().collect(),
            messages: self.messages.values().cloned().collect(),
            reactions: self.reactions.values().cloned().collect(),
            reads: self
                .reads
                .iter()
                .map(|((app, conversation, user), seq)| (app.clone(), conversation.clone(), user.clone(), *seq))
                .collect(),
            summaries: self.summaries.values().cloned().collect(),
            attachments: self.attachments.values().cloned().collect(),
            audit: self.audit.values().flatten().cloned().collect(),
            holds: self.holds.values().cloned().collect(),
            restrictions: self.restrictions.values().cloned().collect(),
            sessions: self.sessions.values().cloned().collect(),
            seq_reservations: self.seq_reservations.values().cloned().collect(),
            key_devices: self.key_devices.values().cloned().collect(),
            one_time_keys: self.one_time_keys.values().flatten().cloned().collect(),
            fallback_keys: self.fallback_keys.values().cloned().collect(),
            claimed_keys: self.claimed_keys.values().flatten().cloned().collect(),
            seq_conflicts: self.seq_conflicts.clone(),
            webhooks: self.webhooks.values().cloned().collect(),
            webhook_deliveries: self.webhook_deliveries.values().cloned().collect(),
            webhook_events: self.webhook_events.values().cloned().collect(),
            webhook_event_counters: self.webhook_event_counters.clone().into_iter().collect(),
        }
    }

    fn restore(snapshot: Snapshot) -> Self {
        let mut tables = Tables::default();
        for app in snapshot.apps {
            tables.apps.insert(app.id.clone(), app);
        }
        for user in snapshot.users {
            let key = (user.app_id.clone(), user.external_id.clone());
            tables.user_ids.insert(key, user.id.clone());
            tables.users.insert(user.id.clone(), user);
        }
        for conversation in snapshot.conversations {
            tables.conversations.insert(conversation.id.clone(), conversation);
        }
        for member in snapshot.members {
            tables.members.insert(member.id.clone(), member);
        }
        tables.add_messages(snapshot.messages);
        for reaction in snapshot.reactions {
            tables.reactions.insert(reaction.id.clone(), reaction);
        }
        for (app, conversation, user, seq) in snapshot.reads {
            tables.reads.insert((app, conversation, user), seq);
        }
        for summary in snapshot.summaries {
            tables.summaries.insert(summary.id.clone(), summary);
        }
        for attachment in snapshot.attachments {
            tables.attachments.insert(attachment.id.clone(), attachment);
        }
        for record in snapshot.audit {
            tables
                .audit
                .entry(record.event.app_id.clone())
                .or_default()
                .push(record);
        }
        for chain in tables.audit.values_mut() {
            chain.sort_by_key(|record| record.seq);
        }
        for hold in snapshot.holds {
            tables.holds.insert(hold.id.clone(), hold);
        }
        for restriction in snapshot.restrictions {
            tables
                .restrictions
                .insert(app_scoped_key(&restriction.app_id, &restriction.id), restriction);
        }
        for session in snapshot.sessions {
            tables
                .sessions
                .insert(app_scoped_key(&session.app_id, &session.id), session);
        }
        for reservation in snapshot.seq_reservations {
            let key = (reservation.app_id.clone(), reservation.conversation_id.clone());
            tables.seq_reservations.insert(key, reservation);
        }
        for device in snapshot.key_devices {
            let key = (device.app_id.clone(), device.user_id.clone(), device.device_id.clone());
            tables.key_devices.insert(key, device);
        }
        for key in snapshot.one_time_keys {
            let device = (key.app_id.clone(), key.user_id.clone(), key.device_id.clone());
            tables.one_time_keys.entry(device).or_default().push(key);
        }
        for key in snapshot.fallback_keys {
            let id = (
                key.app_id.clone(),
                key.user_id.clone(),
                key.device_id.clone(),
                key.algorithm.clone(),
            );
            tables.fallback_keys.insert(id, key);
        }
        for (key, claimed_at) in snapshot.claimed_keys {
            let device = (key.app_id.clone(), key.user_id.clone(), key.device_id.clone());
            tables.claimed_keys.entry(device).or_default().push((key, claimed_at));
        }
        tables.seq_conflicts = snapshot.seq_conflicts;
        for endpoint in snapshot.webhooks {
            tables.webhooks.insert(endpoint.id.clone(), endpoint);
        }
        for delivery in snapshot.webhook_deliveries {
            tables.webhook_deliveries.insert(delivery.id.clone(), delivery);
        }
        tables.webhook_event_counters = snapshot.webhook_event_counters.into_iter().collect();
        for event in snapshot.webhook_events {
            tables.store_webhook_event(event);
        }
        tables
    }

    fn conversation_mut(&mut self, app_id: &str, conversation_id: &str) -> Result<&mut Conversation> {
        self.conversations
            .get_mut(conversation_id)
            .filter(|c| c.app_id == app_id)
            .ok_or_else(|| Error::NotFound(format!("conversation {conversation_id} not found")))
    }

    /// Inserts messages not stored yet; one whose id is stored is a duplicate, one whose seq another
    /// message holds a conflict (as the MongoDB driver tells them apart).
    fn add_messages(&mut self, messages: impl IntoIterator<Item = Message>) -> MessageInsert {
        let mut outcome = MessageInsert::default();
        for message in messages {
            let key = (message.app_id.clone(), message.conversation_id.clone());
            let holder = self.sequences.get(&key).and_then(|seqs| seqs.get(&message.seq));
            if let Some(holder) = holder {
                if *holder == message.id {
                    outcome.duplicates += 1;
                } else {
                    outcome.conflicts.push(message);
                }
                continue;
            }
            if self.messages.contains_key(&message.id) {
                // The id under another seq (or in another conversation): not this message either.
                outcome.conflicts.push(message);
                continue;
            }
            self.sequences
                .entry(key)
                .or_default()
                .insert(message.seq, message.id.clone());
            self.messages.insert(message.id.clone(), message);
            outcome.inserted += 1;
        }
        outcome
    }
}

/// Restriction and session ids are unique per app only.
fn app_scoped_key(app_id: &str, restriction_id: &str) -> String {
    format!("{app_id}\u{0}{restriction_id}")
}

/// What a change did to the tables: [`MemoryStore::write`] rewrites the snapshot only after one that
/// changed something.
enum Change<T> {
    /// The tables changed; `T` is returned once the snapshot is rewritten.
    Changed(T),
    /// Nothing changed (a duplicate, a stale version, a no-op); `T` is returned as it is.
    Unchanged(T),
}

impl<T> Change<T> {
    fn when(changed: bool, value: T) -> Self {
        if changed {
            Self::Changed(value)
        } else {
            Self::Unchanged(value)
        }
    }
}

/// The in-memory reference driver of the store port (`memory://`, or `file:///dir` with a JSON snapshot):
/// behaves like [`MongoStore`](crate::ports::store::MongoStore) for the conformance suite.
#[derive(Default)]
pub struct MemoryStore {
    tables: Mutex<Tables>,
    /// Where the snapshot lives; `None` keeps everything in memory only.
    snapshot_path: Option<PathBuf>,
}

impl MemoryStore {
    /// An empty store that keeps everything in memory only (`memory://`); its contents are lost on exit.
    pub fn new() -> Self {
        Self::default()
    }

    /// A store that loads `dir/store.json` if present and rewrites it after every change.
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| Error::Config(format!("creating {}: {e}", dir.display())))?;
        let path = dir.join(SNAPSHOT_FILE);
        let tables = match std::fs::read(&path) {
            Ok(bytes) => Tables::restore(
                serde_json::from_slice(&bytes)
                    .map_err(|e| Error::Config(format!("reading {}: {e}", path.display())))?,
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Tables::default(),
            Err(e) => return Err(Error::Config(format!("reading {}: {e}", path.display()))),
        };
        Ok(Self {
            tables: Mutex::new(tables),
            snapshot_path: Some(path),
        })
    }

    fn tables(&self) -> MutexGuard<'_, Tables> {
        // A panic while holding the lock cannot leave a table half-written: every write is one insert.
        self.tables.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `query` on the locked tables.
    fn read<T>(&self, query: impl FnOnce(&Tables) -> T) -> Result<T> {
        Ok(query(&self.tables()))
    }

    /// Runs `change` on the locked tables and, when it reports a change, rewrites the snapshot before
    /// unlocking. After an error nothing is persisted, though what `change` did before failing stays in
    /// memory.
    fn write<T>(&self, change: impl FnOnce(&mut Tables) -> Result<Change<T>>) -> Result<T> {
        let mut tables = self.tables();
        match change(&mut tables)? {
            Change::Changed(value) => {
                self.persist(&tables)?;
                Ok(value)
            }
            Change::Unchanged(value) => Ok(value),
        }
    }

    /// Writes the snapshot while [`Self::write`] still holds the lock, so snapshots land in change order.
    /// Written to a temporary file and renamed, so a crash leaves the previous snapshot whole.
    fn persist(&self, tables: &Tables) -> Result<()> {
        let Some(path) = &self.snapshot_path else {
            return Ok(());
        };
        let bytes = serde_json::to_vec(&tables.snapshot())
            .map_err(|e| Error::Internal(format!("encoding the store snapshot: {e}")))?;
        let temporary = path.with_extension("json.tmp");
        std::fs::write(&temporary, bytes)
            .and_then(|()| std::fs::rename(&temporary, path))
            .map_err(|e| Error::Internal(format!("writing {}: {e}", path.display())))
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn passes_the_store_conformance_suite() {
        super::super::conformance::run(&super::MemoryStore::new()).await;
    }

    #[tokio::test]
    async fn a_store_opened_on_a_directory_survives_a_restart() {
        let dir = std::env::temp_dir().join(format!("caas-store-{}", uuid::Uuid::new_v4().simple()));
        {
            let store = super::MemoryStore::open(&dir).unwrap();
            super::super::conformance::run(&store).await;
        }
        let reopened = super::MemoryStore::open(&dir).unwrap();
        assert!(!reopened.tables().apps.is_empty(), "apps restored");
        assert!(!reopened.tables().messages.is_empty(), "messages restored");
        // The unique indexes are rebuilt too: re-inserting every stored message is all duplicates.
        let messages: Vec<_> = reopened.tables().messages.values().cloned().collect();
        let outcome = crate::ports::store::MessageStore::insert_messages(&reopened, &messages)
            .await
            .unwrap();
        assert_eq!((outcome.inserted, outcome.duplicates), (0, messages.len()));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
