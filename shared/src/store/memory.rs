//! The in-memory reference driver of the store port: the embedded dev mode's store and the fast unit
//! tests' store. It enforces the same unique constraints as the MongoDB indexes.
//!
//! Opened on a directory, it also keeps a snapshot there (written atomically after every change, read
//! back on open) so a dev-mode restart keeps apps, users, conversations and messages.

use super::{InsertOutcome, RetentionExceptions, SeqRange, Store};
use crate::audit::{AuditQuery, AuditRecord};
use crate::model::{
    App, AppSettings, Attachment, AttachmentStatus, Conversation, ConversationSummary, LegalHold, Member, Message,
    Reaction, ReactionCount, Restriction, Session, User,
};
use crate::{Error, Result};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

const SNAPSHOT_FILE: &str = "store.json";

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
        tables
    }

    fn conversation_mut(&mut self, app_id: &str, conversation_id: &str) -> Result<&mut Conversation> {
        self.conversations
            .get_mut(conversation_id)
            .filter(|c| c.app_id == app_id)
            .ok_or_else(|| Error::NotFound(format!("conversation {conversation_id} not found")))
    }

    /// Inserts messages not stored yet (by id, or by `(app, conversation, seq)`).
    fn add_messages(&mut self, messages: impl IntoIterator<Item = Message>) -> InsertOutcome {
        let mut outcome = InsertOutcome::default();
        for message in messages {
            let key = (message.app_id.clone(), message.conversation_id.clone());
            let seq_taken = self
                .sequences
                .get(&key)
                .is_some_and(|seqs| seqs.contains_key(&message.seq));
            if self.messages.contains_key(&message.id) || seq_taken {
                outcome.duplicates += 1;
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

#[derive(Default)]
pub struct MemoryStore {
    tables: Mutex<Tables>,
    /// Where the snapshot lives; `None` keeps everything in memory only.
    snapshot_path: Option<PathBuf>,
}

impl MemoryStore {
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

    /// Writes the snapshot while the caller still holds the lock, so snapshots land in change order.
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

#[async_trait]
impl Store for MemoryStore {
    async fn insert_app(&self, app: &App) -> Result<()> {
        let mut tables = self.tables();
        if tables.apps.contains_key(&app.id) {
            return Err(Error::Conflict(format!("app {} already exists", app.id)));
        }
        tables.apps.insert(app.id.clone(), app.clone());
        self.persist(&tables)
    }

    async fn find_app(&self, app_id: &str) -> Result<Option<App>> {
        Ok(self.tables().apps.get(app_id).cloned())
    }

    async fn update_app_settings(&self, app_id: &str, settings: &AppSettings) -> Result<App> {
        let mut tables = self.tables();
        let app = tables
            .apps
            .get_mut(app_id)
            .ok_or_else(|| Error::NotFound(format!("app {app_id} not found")))?;
        app.settings = settings.clone();
        let app = app.clone();
        self.persist(&tables)?;
        Ok(app)
    }

    async fn replace_app_secret(&self, app_id: &str, secret_hash: &str) -> Result<App> {
        let mut tables = self.tables();
        let app = tables
            .apps
            .get_mut(app_id)
            .ok_or_else(|| Error::NotFound(format!("app {app_id} not found")))?;
        app.secret_hash = secret_hash.to_owned();
        let app = app.clone();
        self.persist(&tables)?;
        Ok(app)
    }

    async fn insert_attachment(&self, attachment: &Attachment) -> Result<()> {
        let mut tables = self.tables();
        if tables.attachments.contains_key(&attachment.id) {
            return Err(Error::Conflict(format!("attachment {} already exists", attachment.id)));
        }
        tables.attachments.insert(attachment.id.clone(), attachment.clone());
        self.persist(&tables)
    }

    async fn find_attachments(&self, app_id: &str, ids: &[String]) -> Result<Vec<Attachment>> {
        let tables = self.tables();
        Ok(ids
            .iter()
            .filter_map(|id| tables.attachments.get(id))
            .filter(|a| a.app_id == app_id)
            .cloned()
            .collect())
    }

    async fn complete_attachment(
        &self,
        app_id: &str,
        attachment_id: &str,
        completed_at: i64,
        thumbnail_key: Option<&str>,
    ) -> Result<Attachment> {
        let mut tables = self.tables();
        let attachment = tables
            .attachments
            .get_mut(attachment_id)
            .filter(|a| a.app_id == app_id)
            .ok_or_else(|| Error::NotFound(format!("attachment {attachment_id} not found")))?;
        if attachment.status == AttachmentStatus::Pending {
            attachment.status = AttachmentStatus::Complete;
            attachment.completed_at = Some(completed_at);
            attachment.thumbnail_key = thumbnail_key.map(str::to_owned);
        }
        let attachment = attachment.clone();
        self.persist(&tables)?;
        Ok(attachment)
    }

    async fn link_attachments(&self, messages: &[Message]) -> Result<usize> {
        let mut tables = self.tables();
        let mut linked = 0;
        for message in messages {
            for reference in &message.attachments {
                let stored = tables
                    .attachments
                    .get_mut(&reference.id)
                    .filter(|a| a.app_id == message.app_id && a.message_id.is_none());
                if let Some(attachment) = stored {
                    attachment.message_id = Some(message.id.clone());
                    linked += 1;
                }
            }
        }
        if linked > 0 {
            self.persist(&tables)?;
        }
        Ok(linked)
    }

    async fn upsert_user(&self, user: &User) -> Result<User> {
        let mut tables = self.tables();
        let key = (user.app_id.clone(), user.external_id.clone());
        let id = match tables.user_ids.get(&key) {
            Some(id) => id.clone(),
            None => {
                tables.user_ids.insert(key, user.id.clone());
                tables.users.insert(user.id.clone(), user.clone());
                self.persist(&tables)?;
                return Ok(user.clone());
            }
        };
        let stored = tables
            .users
            .get_mut(&id)
            .ok_or_else(|| Error::Internal("user index out of step".into()))?;
        if user.display_name.is_none() || stored.display_name == user.display_name {
            return Ok(stored.clone());
        }
        stored.display_name = user.display_name.clone();
        let updated = stored.clone();
        self.persist(&tables)?;
        Ok(updated)
    }

    async fn find_users(&self, app_id: &str, ids: &[String]) -> Result<Vec<User>> {
        let tables = self.tables();
        Ok(ids
            .iter()
            .filter_map(|id| tables.users.get(id))
            .filter(|user| user.app_id == app_id)
            .cloned()
            .collect())
    }

    async fn create_conversation(&self, conversation: &Conversation, members: &[Member]) -> Result<Conversation> {
        let mut tables = self.tables();
        if let Some(existing) = tables.conversations.get(&conversation.id) {
            return if existing.app_id == conversation.app_id {
                Ok(existing.clone())
            } else {
                Err(Error::Conflict("conversation id belongs to another app".into()))
            };
        }
        tables
            .conversations
            .insert(conversation.id.clone(), conversation.clone());
        for member in members {
            tables
                .members
                .entry(member.id.clone())
                .or_insert_with(|| member.clone());
        }
        self.persist(&tables)?;
        Ok(conversation.clone())
    }

    async fn find_conversation(&self, app_id: &str, conversation_id: &str) -> Result<Option<Conversation>> {
        Ok(self
            .tables()
            .conversations
            .get(conversation_id)
            .filter(|c| c.app_id == app_id)
            .cloned())
    }

    async fn insert_messages(&self, messages: &[Message]) -> Result<InsertOutcome> {
        let mut tables = self.tables();
        let outcome = tables.add_messages(messages.iter().cloned());
        if outcome.inserted > 0 {
            self.persist(&tables)?;
        }
        Ok(outcome)
    }

    async fn apply_message_revisions(&self, revisions: &[Message]) -> Result<usize> {
        let mut tables = self.tables();
        let mut applied = 0;
        for revision in revisions {
            match tables.messages.get_mut(&revision.id) {
                Some(stored) if stored.app_id == revision.app_id => {
                    if stored.version < revision.version {
                        *stored = revision.clone();
                        applied += 1;
                    }
                }
                Some(_) => return Err(Error::Conflict("message id belongs to another app".into())),
                None => applied += tables.add_messages([revision.clone()]).inserted,
            }
        }
        if applied > 0 {
            self.persist(&tables)?;
        }
        Ok(applied)
    }

    async fn find_message(&self, app_id: &str, conversation_id: &str, message_id: &str) -> Result<Option<Message>> {
        Ok(self
            .tables()
            .messages
            .get(message_id)
            .filter(|m| m.app_id == app_id && m.conversation_id == conversation_id)
            .cloned())
    }

    async fn reply_counts(
        &self,
        app_id: &str,
        conversation_id: &str,
        parent_ids: &[String],
    ) -> Result<HashMap<String, usize>> {
        let tables = self.tables();
        let mut counts = HashMap::new();
        for message in tables.messages.values() {
            if message.app_id != app_id || message.conversation_id != conversation_id {
                continue;
            }
            if let Some(parent) = message.reply_to.as_ref().filter(|p| parent_ids.contains(p)) {
                *counts.entry(parent.clone()).or_insert(0) += 1;
            }
        }
        Ok(counts)
    }

    async fn list_replies(
        &self,
        app_id: &str,
        conversation_id: &str,
        parent_id: &str,
        limit: usize,
    ) -> Result<Vec<Message>> {
        let tables = self.tables();
        let Some(seqs) = tables.sequences.get(&(app_id.to_owned(), conversation_id.to_owned())) else {
            return Ok(Vec::new());
        };
        Ok(seqs
            .values()
            .filter_map(|id| tables.messages.get(id))
            .filter(|m| m.reply_to.as_deref() == Some(parent_id))
            .take(limit)
            .cloned()
            .collect())
    }

    async fn apply_reactions(&self, reactions: &[Reaction]) -> Result<usize> {
        let mut tables = self.tables();
        let mut applied = 0;
        for reaction in reactions {
            let newer = tables
                .reactions
                .get(&reaction.id)
                .is_none_or(|stored| stored.version < reaction.version);
            if newer {
                tables.reactions.insert(reaction.id.clone(), reaction.clone());
                applied += 1;
            }
        }
        if applied > 0 {
            self.persist(&tables)?;
        }
        Ok(applied)
    }

    async fn reaction_counts(
        &self,
        app_id: &str,
        conversation_id: &str,
        message_ids: &[String],
        viewer_id: &str,
    ) -> Result<HashMap<String, Vec<ReactionCount>>> {
        let tables = self.tables();
        let mut matching: Vec<&Reaction> = tables
            .reactions
            .values()
            .filter(|r| {
                r.app_id == app_id && r.conversation_id == conversation_id && message_ids.contains(&r.message_id)
            })
            .collect();
        matching.sort_by_key(|r| r.version);
        Ok(super::count_reactions(matching, viewer_id))
    }

    async fn find_member(&self, app_id: &str, conversation_id: &str, user_id: &str) -> Result<Option<Member>> {
        Ok(self
            .tables()
            .members
            .values()
            .find(|m| m.app_id == app_id && m.conversation_id == conversation_id && m.user_id == user_id)
            .cloned())
    }

    async fn list_members(&self, app_id: &str, conversation_id: &str) -> Result<Vec<Member>> {
        let mut members: Vec<Member> = self
            .tables()
            .members
            .values()
            .filter(|m| m.app_id == app_id && m.conversation_id == conversation_id)
            .cloned()
            .collect();
        members.sort_by(|a, b| (a.joined_at, &a.user_id).cmp(&(b.joined_at, &b.user_id)));
        Ok(members)
    }

    async fn add_members(&self, app_id: &str, conversation_id: &str, members: &[Member]) -> Result<Conversation> {
        let mut tables = self.tables();
        let conversation = tables.conversation_mut(app_id, conversation_id)?;
        for member in members {
            if !conversation.has_member(&member.user_id) {
                conversation.member_ids.push(member.user_id.clone());
            }
        }
        let updated = conversation.clone();
        for member in members {
            tables
                .members
                .entry(member.id.clone())
                .or_insert_with(|| member.clone());
        }
        self.persist(&tables)?;
        Ok(updated)
    }

    async fn remove_member(&self, app_id: &str, conversation_id: &str, user_id: &str) -> Result<Conversation> {
        let mut tables = self.tables();
        let conversation = tables.conversation_mut(app_id, conversation_id)?;
        conversation.member_ids.retain(|m| m != user_id);
        let updated = conversation.clone();
        tables
            .members
            .retain(|_, m| !(m.app_id == app_id && m.conversation_id == conversation_id && m.user_id == user_id));
        self.persist(&tables)?;
        Ok(updated)
    }

    async fn rename_conversation(&self, app_id: &str, conversation_id: &str, name: &str) -> Result<Conversation> {
        let mut tables = self.tables();
        let conversation = tables.conversation_mut(app_id, conversation_id)?;
        conversation.name = Some(name.to_owned());
        let updated = conversation.clone();
        self.persist(&tables)?;
        Ok(updated)
    }

    async fn list_conversations(&self, app_id: &str, user_id: &str, limit: usize) -> Result<Vec<Conversation>> {
        let mut conversations: Vec<Conversation> = self
            .tables()
            .conversations
            .values()
            .filter(|c| c.app_id == app_id && c.has_member(user_id))
            .cloned()
            .collect();
        conversations.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
        conversations.truncate(limit);
        Ok(conversations)
    }

    async fn mark_read(&self, app_id: &str, conversation_id: &str, user_id: &str, seq: i64) -> Result<i64> {
        let mut tables = self.tables();
        let key = (app_id.to_owned(), conversation_id.to_owned(), user_id.to_owned());
        let horizon = tables.reads.entry(key).or_insert(0);
        if seq <= *horizon {
            return Ok(*horizon);
        }
        *horizon = seq;
        self.persist(&tables)?;
        Ok(seq)
    }

    async fn read_horizons(
        &self,
        app_id: &str,
        user_id: &str,
        conversation_ids: &[String],
    ) -> Result<HashMap<String, i64>> {
        let tables = self.tables();
        Ok(conversation_ids
            .iter()
            .map(|id| {
                let key = (app_id.to_owned(), id.clone(), user_id.to_owned());
                (id.clone(), tables.reads.get(&key).copied().unwrap_or(0))
            })
            .collect())
    }

    async fn apply_summaries(&self, summaries: &[ConversationSummary]) -> Result<usize> {
        let mut tables = self.tables();
        let mut applied = 0;
        for summary in summaries {
            let newer = match tables.summaries.get(&summary.id) {
                None => true,
                Some(stored) if stored.app_id != summary.app_id => false,
                Some(stored) => {
                    stored.last_seq < summary.last_seq
                        || (stored.last_message.id == summary.last_message.id
                            && stored.last_message.version < summary.last_message.version)
                }
            };
            if newer {
                tables.summaries.insert(summary.id.clone(), summary.clone());
                applied += 1;
            }
        }
        if applied > 0 {
            self.persist(&tables)?;
        }
        Ok(applied)
    }

    async fn summaries(
        &self,
        app_id: &str,
        conversation_ids: &[String],
    ) -> Result<HashMap<String, ConversationSummary>> {
        let tables = self.tables();
        Ok(conversation_ids
            .iter()
            .filter_map(|id| tables.summaries.get(id))
            .filter(|s| s.app_id == app_id)
            .map(|s| (s.id.clone(), s.clone()))
            .collect())
    }

    async fn list_messages(&self, app_id: &str, conversation_id: &str, range: SeqRange) -> Result<Vec<Message>> {
        let tables = self.tables();
        let key = (app_id.to_owned(), conversation_id.to_owned());
        let Some(seqs) = tables.sequences.get(&key) else {
            return Ok(Vec::new());
        };
        let in_range = seqs.iter().filter(|(seq, _)| range.contains(**seq));
        let mut ids: Vec<&String> = if range.reads_forward() {
            in_range.take(range.limit).map(|(_, id)| id).collect()
        } else {
            in_range.rev().take(range.limit).map(|(_, id)| id).collect()
        };
        if !range.reads_forward() {
            ids.reverse();
        }
        Ok(ids
            .into_iter()
            .filter_map(|id| tables.messages.get(id))
            .cloned()
            .collect())
    }

    async fn max_seq(&self, app_id: &str, conversation_id: &str) -> Result<i64> {
        let key = (app_id.to_owned(), conversation_id.to_owned());
        Ok(self
            .tables()
            .sequences
            .get(&key)
            .and_then(|seqs| seqs.keys().next_back().copied())
            .unwrap_or(0))
    }

    async fn last_audit_record(&self, app_id: &str) -> Result<Option<AuditRecord>> {
        Ok(self.tables().audit.get(app_id).and_then(|chain| chain.last().cloned()))
    }

    async fn stored_audit_ids(&self, app_id: &str, ids: &[String]) -> Result<Vec<String>> {
        let tables = self.tables();
        let chain = tables.audit.get(app_id).map(Vec::as_slice).unwrap_or_default();
        Ok(ids
            .iter()
            .filter(|id| chain.iter().any(|record| record.event.id == **id))
            .cloned()
            .collect())
    }

    async fn append_audit_records(&self, records: &[AuditRecord]) -> Result<()> {
        let mut tables = self.tables();
        for record in records {
            let chain = tables.audit.entry(record.event.app_id.clone()).or_default();
            let taken = chain.last().is_some_and(|last| last.seq >= record.seq)
                || chain.iter().any(|stored| stored.event.id == record.event.id);
            if taken {
                self.persist(&tables)?;
                return Err(Error::Conflict("the audit chain moved on; retry the batch".into()));
            }
            chain.push(record.clone());
        }
        self.persist(&tables)
    }

    async fn list_audit_records(&self, app_id: &str, query: &AuditQuery) -> Result<Vec<AuditRecord>> {
        let tables = self.tables();
        let chain = tables.audit.get(app_id).map(Vec::as_slice).unwrap_or_default();
        Ok(chain
            .iter()
            .filter(|record| query.matches(record))
            .take(query.limit)
            .cloned()
            .collect())
    }

    async fn insert_hold(&self, hold: &LegalHold) -> Result<()> {
        let mut tables = self.tables();
        tables.holds.insert(hold.id.clone(), hold.clone());
        self.persist(&tables)
    }

    async fn release_hold(&self, app_id: &str, hold_id: &str, released_at: i64) -> Result<LegalHold> {
        let mut tables = self.tables();
        let hold = tables
            .holds
            .get_mut(hold_id)
            .filter(|h| h.app_id == app_id && h.released_at.is_none())
            .ok_or_else(|| Error::NotFound(format!("no active legal hold {hold_id}")))?;
        hold.released_at = Some(released_at);
        let hold = hold.clone();
        self.persist(&tables)?;
        Ok(hold)
    }

    async fn active_holds(&self, app_id: &str) -> Result<Vec<LegalHold>> {
        let mut holds: Vec<LegalHold> = self
            .tables()
            .holds
            .values()
            .filter(|h| h.app_id == app_id && h.released_at.is_none())
            .cloned()
            .collect();
        holds.sort_by_key(|h| h.created_at);
        Ok(holds)
    }

    async fn put_restriction(&self, restriction: &Restriction) -> Result<()> {
        let mut tables = self.tables();
        let key = app_scoped_key(&restriction.app_id, &restriction.id);
        tables.restrictions.insert(key, restriction.clone());
        self.persist(&tables)
    }

    async fn remove_restriction(&self, app_id: &str, restriction_id: &str) -> Result<Option<Restriction>> {
        let mut tables = self.tables();
        let removed = tables.restrictions.remove(&app_scoped_key(app_id, restriction_id));
        self.persist(&tables)?;
        Ok(removed)
    }

    async fn list_restrictions(&self, app_id: &str) -> Result<Vec<Restriction>> {
        let mut restrictions: Vec<Restriction> = self
            .tables()
            .restrictions
            .values()
            .filter(|r| r.app_id == app_id)
            .cloned()
            .collect();
        restrictions.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(restrictions)
    }

    async fn insert_session(&self, session: &Session) -> Result<()> {
        let mut tables = self.tables();
        let key = app_scoped_key(&session.app_id, &session.id);
        if tables.sessions.contains_key(&key) {
            return Err(Error::Conflict(format!("session {} exists", session.id)));
        }
        tables.sessions.insert(key, session.clone());
        self.persist(&tables)
    }

    async fn find_session(&self, app_id: &str, session_id: &str) -> Result<Option<Session>> {
        Ok(self.tables().sessions.get(&app_scoped_key(app_id, session_id)).cloned())
    }

    async fn extend_session(&self, app_id: &str, session_id: &str, expires_at: i64) -> Result<Option<Session>> {
        let mut tables = self.tables();
        let Some(session) = tables
            .sessions
            .get_mut(&app_scoped_key(app_id, session_id))
            .filter(|s| s.revoked_at.is_none())
        else {
            return Ok(None);
        };
        session.expires_at = expires_at;
        let extended = session.clone();
        self.persist(&tables)?;
        Ok(Some(extended))
    }

    async fn revoke_sessions(
        &self,
        app_id: &str,
        user_id: &str,
        session_id: Option<&str>,
        revoked_at: i64,
    ) -> Result<Vec<Session>> {
        let mut tables = self.tables();
        let mut revoked = Vec::new();
        for session in tables.sessions.values_mut() {
            let chosen = session_id.is_none_or(|id| id == session.id);
            if session.app_id == app_id && session.user_id == user_id && chosen && session.revoked_at.is_none() {
                revoked.push(session.clone());
                session.revoked_at = Some(revoked_at);
            }
        }
        self.persist(&tables)?;
        revoked.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(revoked)
    }

    async fn list_sessions(&self, app_id: &str, user_id: &str) -> Result<Vec<Session>> {
        let mut sessions: Vec<Session> = self
            .tables()
            .sessions
            .values()
            .filter(|s| s.app_id == app_id && s.user_id == user_id)
            .cloned()
            .collect();
        sessions.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(sessions)
    }

    async fn find_restriction(&self, app_id: &str, restriction_id: &str) -> Result<Option<Restriction>> {
        Ok(self
            .tables()
            .restrictions
            .get(&app_scoped_key(app_id, restriction_id))
            .cloned())
    }

    async fn list_apps(&self) -> Result<Vec<App>> {
        let mut apps: Vec<App> = self.tables().apps.values().cloned().collect();
        apps.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(apps)
    }

    async fn messages_created_before(
        &self,
        app_id: &str,
        before: i64,
        except: &RetentionExceptions,
        limit: usize,
    ) -> Result<Vec<Message>> {
        let mut expired: Vec<Message> = self
            .tables()
            .messages
            .values()
            .filter(|m| m.app_id == app_id && m.created_at < before && !except.keeps(m))
            .cloned()
            .collect();
        expired.sort_by_key(|m| m.created_at);
        expired.truncate(limit);
        Ok(expired)
    }

    async fn purge_messages(&self, app_id: &str, message_ids: &[String]) -> Result<usize> {
        let mut tables = self.tables();
        let mut purged = 0;
        for id in message_ids {
            let Some(message) = tables.messages.get(id).filter(|m| m.app_id == app_id).cloned() else {
                continue;
            };
            tables.messages.remove(id);
            let key = (message.app_id.clone(), message.conversation_id.clone());
            if let Some(seqs) = tables.sequences.get_mut(&key) {
                seqs.remove(&message.seq);
            }
            tables.reactions.retain(|_, r| r.message_id != *id);
            purged += 1;
        }
        self.persist(&tables)?;
        Ok(purged)
    }

    async fn messages_by_sender(
        &self,
        app_id: &str,
        sender_id: &str,
        after_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Message>> {
        let mut sent: Vec<Message> = self
            .tables()
            .messages
            .values()
            .filter(|m| m.app_id == app_id && m.sender_id == sender_id)
            .filter(|m| after_id.is_none_or(|after| m.id.as_str() > after))
            .cloned()
            .collect();
        sent.sort_by(|a, b| a.id.cmp(&b.id));
        sent.truncate(limit);
        Ok(sent)
    }

    async fn attachments_by_uploader(&self, app_id: &str, uploader_id: &str) -> Result<Vec<Attachment>> {
        let mut uploaded: Vec<Attachment> = self
            .tables()
            .attachments
            .values()
            .filter(|a| a.app_id == app_id && a.uploader_id == uploader_id)
            .cloned()
            .collect();
        uploaded.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(uploaded)
    }

    async fn delete_attachments(&self, app_id: &str, attachment_ids: &[String]) -> Result<usize> {
        let mut tables = self.tables();
        let before = tables.attachments.len();
        tables
            .attachments
            .retain(|id, a| a.app_id != app_id || !attachment_ids.contains(id));
        let deleted = before - tables.attachments.len();
        self.persist(&tables)?;
        Ok(deleted)
    }

    async fn pseudonymise_user(&self, app_id: &str, user_id: &str, pseudonym: &str) -> Result<User> {
        let mut tables = self.tables();
        let user = tables
            .users
            .get_mut(user_id)
            .filter(|u| u.app_id == app_id)
            .ok_or_else(|| Error::NotFound(format!("user {user_id} not found")))?;
        let old_key = (user.app_id.clone(), user.external_id.clone());
        user.external_id = pseudonym.to_owned();
        user.display_name = None;
        let user = user.clone();
        tables.user_ids.remove(&old_key);
        tables
            .user_ids
            .insert((user.app_id.clone(), user.external_id.clone()), user.id.clone());
        self.persist(&tables)?;
        Ok(user)
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
        let outcome = super::Store::insert_messages(&reopened, &messages).await.unwrap();
        assert_eq!((outcome.inserted, outcome.duplicates), (0, messages.len()));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
