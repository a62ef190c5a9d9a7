//! The MongoDB driver of the store port. Models use `id`; documents use `_id`.

use super::{InsertOutcome, RetentionExceptions, SeqRange, Store};
use crate::audit::{AuditQuery, AuditRecord};
use crate::model::{
    App, AppSettings, Attachment, Conversation, ConversationSummary, LegalHold, Member, Message, Reaction,
    ReactionCount, Restriction, Session, User,
};
use crate::{Error, Result};
use async_trait::async_trait;
use futures_util::TryStreamExt;
use mongodb::bson::{self, doc, Bson, Document};
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::options::{ClientOptions, IndexOptions, ReturnDocument};
use mongodb::{Collection, Database, IndexModel};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::HashMap;
use std::time::Duration;

const DUPLICATE_KEY: i32 = 11000;

pub struct MongoStore {
    db: Database,
}

fn to_document<T: Serialize>(value: &T) -> Result<Document> {
    let mut document = bson::to_document(value).map_err(|e| Error::Internal(format!("encoding document: {e}")))?;
    if let Some(id) = document.remove("id") {
        document.insert("_id", id);
    }
    Ok(document)
}

fn from_document<T: DeserializeOwned>(mut document: Document) -> Result<T> {
    if let Some(id) = document.remove("_id") {
        document.insert("id", id);
    }
    bson::from_document(document).map_err(|e| Error::Internal(format!("decoding document: {e}")))
}

fn is_duplicate_key(err: &mongodb::error::Error) -> bool {
    matches!(err.kind.as_ref(), ErrorKind::Write(WriteFailure::WriteError(e)) if e.code == DUPLICATE_KEY)
}

impl MongoStore {
    pub async fn connect(url: &str, database: &str) -> Result<Self> {
        let mut options = ClientOptions::parse(url).await?;
        // The MongoDB-protocol test server drops connections idle for 300 s; recycle them earlier.
        options.max_idle_time = Some(Duration::from_secs(240));
        options.app_name = Some("caas".into());
        let client = mongodb::Client::with_options(options)?;
        let store = Self {
            db: client.database(database),
        };
        store.ensure_indexes().await?;
        Ok(store)
    }

    pub fn database(&self) -> &Database {
        &self.db
    }

    fn collection(&self, name: &str) -> Collection<Document> {
        self.db.collection(name)
    }

    async fn ensure_indexes(&self) -> Result<()> {
        let unique = |keys: Document| {
            IndexModel::builder()
                .keys(keys)
                .options(IndexOptions::builder().unique(true).build())
                .build()
        };
        self.collection("users")
            .create_index(unique(doc! {"app_id": 1, "external_id": 1}))
            .await?;
        self.collection("members")
            .create_index(unique(doc! {"app_id": 1, "user_id": 1, "conversation_id": 1}))
            .await?;
        self.collection("messages")
            .create_index(unique(doc! {"app_id": 1, "conversation_id": 1, "seq": 1}))
            .await?;
        let plain = |keys: Document| IndexModel::builder().keys(keys).build();
        self.collection("messages")
            .create_index(plain(doc! {"app_id": 1, "conversation_id": 1, "reply_to": 1, "seq": 1}))
            .await?;
        self.collection("reactions")
            .create_index(plain(doc! {"app_id": 1, "conversation_id": 1, "message_id": 1}))
            .await?;
        self.collection("conversations")
            .create_index(plain(doc! {"app_id": 1, "member_ids": 1, "created_at": -1}))
            .await?;
        self.collection("reads")
            .create_index(unique(doc! {"app_id": 1, "user_id": 1, "conversation_id": 1}))
            .await?;
        self.collection("audit_events")
            .create_index(unique(doc! {"app_id": 1, "seq": 1}))
            .await?;
        self.collection("messages")
            .create_index(plain(doc! {"app_id": 1, "sender_id": 1, "_id": 1}))
            .await?;
        self.collection("messages")
            .create_index(plain(doc! {"app_id": 1, "created_at": 1}))
            .await?;
        self.collection("attachments")
            .create_index(plain(doc! {"app_id": 1, "uploader_id": 1}))
            .await?;
        self.collection("sessions")
            .create_index(plain(doc! {"app_id": 1, "user_id": 1, "created_at": 1}))
            .await?;
        Ok(())
    }

    /// Replaces the document `id` of this app with `document` unless the stored one has an equal or
    /// higher `version`; inserts it when missing. Returns whether anything was written.
    async fn store_if_newer(
        &self,
        collection: &str,
        app_id: &str,
        id: &str,
        version: i64,
        document: Document,
    ) -> Result<bool> {
        let filter = doc! {"_id": id, "app_id": app_id, "version": {"$lt": version}};
        match self
            .collection(collection)
            .replace_one(filter, document)
            .upsert(true)
            .await
        {
            Ok(result) => Ok(result.modified_count > 0 || result.upserted_id.is_some()),
            // The document exists with a newer version (or in another app): the filter missed, and the
            // upsert's insert hit the unique `_id`.
            Err(e) if is_duplicate_key(&e) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// [`Self::store_if_newer`] for each item, concurrently; `key` gives `(app_id, id, version)`.
    /// Returns how many were written.
    async fn store_all_if_newer<T: Serialize + Sync>(
        &self,
        collection: &str,
        items: &[T],
        key: impl Fn(&T) -> (&str, &str, i64) + Sync,
    ) -> Result<usize> {
        let writes = items.iter().map(|item| async {
            let (app_id, id, version) = key(item);
            self.store_if_newer(collection, app_id, id, version, to_document(item)?)
                .await
        });
        let written = futures_util::future::try_join_all(writes).await?;
        Ok(written.into_iter().filter(|written| *written).count())
    }

    async fn find_all<T: DeserializeOwned>(
        &self,
        collection: &str,
        filter: Document,
        sort: Document,
        limit: usize,
    ) -> Result<Vec<T>> {
        let documents: Vec<Document> = self
            .collection(collection)
            .find(filter)
            .sort(sort)
            // usize::MAX ("all") does not fit: 0 is MongoDB's "no limit".
            .limit(i64::try_from(limit).unwrap_or(0))
            .await?
            .try_collect()
            .await?;
        documents.into_iter().map(from_document).collect()
    }

    async fn update_conversation(&self, app_id: &str, conversation_id: &str, update: Document) -> Result<()> {
        let result = self
            .collection("conversations")
            .update_one(doc! {"_id": conversation_id, "app_id": app_id}, update)
            .await?;
        if result.matched_count == 0 {
            return Err(Error::NotFound(format!("conversation {conversation_id} not found")));
        }
        Ok(())
    }

    async fn conversation_or_not_found(&self, app_id: &str, conversation_id: &str) -> Result<Conversation> {
        self.find_conversation(app_id, conversation_id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("conversation {conversation_id} not found")))
    }

    async fn find_one_in<T: DeserializeOwned>(&self, collection: &str, filter: Document) -> Result<Option<T>> {
        self.collection(collection)
            .find_one(filter)
            .await?
            .map(from_document)
            .transpose()
    }
}

#[async_trait]
impl Store for MongoStore {
    async fn insert_app(&self, app: &App) -> Result<()> {
        match self.collection("apps").insert_one(to_document(app)?).await {
            Ok(_) => Ok(()),
            Err(e) if is_duplicate_key(&e) => Err(Error::Conflict(format!("app {} already exists", app.id))),
            Err(e) => Err(e.into()),
        }
    }

    async fn find_app(&self, app_id: &str) -> Result<Option<App>> {
        self.find_one_in("apps", doc! {"_id": app_id}).await
    }

    async fn update_app_settings(&self, app_id: &str, settings: &AppSettings) -> Result<App> {
        let settings = bson::to_document(settings).map_err(|e| Error::Internal(format!("encoding settings: {e}")))?;
        self.collection("apps")
            .update_one(doc! {"_id": app_id}, doc! {"$set": {"settings": settings}})
            .await?;
        self.find_app(app_id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("app {app_id} not found")))
    }

    async fn replace_app_secret(&self, app_id: &str, secret_hash: &str) -> Result<App> {
        self.collection("apps")
            .find_one_and_update(doc! {"_id": app_id}, doc! {"$set": {"secret_hash": secret_hash}})
            .return_document(ReturnDocument::After)
            .await?
            .map(from_document)
            .transpose()?
            .ok_or_else(|| Error::NotFound(format!("app {app_id} not found")))
    }

    async fn insert_attachment(&self, attachment: &Attachment) -> Result<()> {
        match self
            .collection("attachments")
            .insert_one(to_document(attachment)?)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_duplicate_key(&e) => {
                Err(Error::Conflict(format!("attachment {} already exists", attachment.id)))
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn find_attachments(&self, app_id: &str, ids: &[String]) -> Result<Vec<Attachment>> {
        let filter = doc! {"app_id": app_id, "_id": {"$in": ids}};
        self.find_all("attachments", filter, doc! {"_id": 1}, ids.len()).await
    }

    async fn complete_attachment(
        &self,
        app_id: &str,
        attachment_id: &str,
        completed_at: i64,
        thumbnail_key: Option<&str>,
    ) -> Result<Attachment> {
        let mut set = doc! {"status": "complete", "completed_at": completed_at};
        if let Some(thumbnail_key) = thumbnail_key {
            set.insert("thumbnail_key", thumbnail_key);
        }
        self.collection("attachments")
            .update_one(
                doc! {"_id": attachment_id, "app_id": app_id, "status": "pending"},
                doc! {"$set": set},
            )
            .await?;
        self.find_one_in("attachments", doc! {"_id": attachment_id, "app_id": app_id})
            .await?
            .ok_or_else(|| Error::NotFound(format!("attachment {attachment_id} not found")))
    }

    async fn link_attachments(&self, messages: &[Message]) -> Result<usize> {
        let mut linked = 0;
        for message in messages.iter().filter(|m| !m.attachments.is_empty()) {
            let ids: Vec<&str> = message.attachments.iter().map(|a| a.id.as_str()).collect();
            let result = self
                .collection("attachments")
                .update_many(
                    doc! {"app_id": &message.app_id, "_id": {"$in": ids}, "message_id": {"$exists": false}},
                    doc! {"$set": {"message_id": &message.id}},
                )
                .await?;
            linked += result.modified_count as usize;
        }
        Ok(linked)
    }

    async fn upsert_user(&self, user: &User) -> Result<User> {
        let filter = doc! {"app_id": &user.app_id, "external_id": &user.external_id};
        let mut on_insert = to_document(user)?;
        let mut set = Document::new();
        if let Some(name) = &user.display_name {
            on_insert.remove("display_name");
            set.insert("display_name", name);
        }
        let mut update = doc! {"$setOnInsert": on_insert};
        if !set.is_empty() {
            update.insert("$set", set);
        }
        let users = self.collection("users");
        let result = users
            .find_one_and_update(filter.clone(), update)
            .upsert(true)
            .return_document(ReturnDocument::After)
            .await;
        match result {
            Ok(Some(document)) => from_document(document),
            // Concurrent first logins of one user race on the unique index, and the server may answer
            // None for an upsert that did apply: either way the user now exists, so read it back.
            Ok(None) => self
                .find_one_in("users", filter)
                .await?
                .ok_or_else(|| Error::Internal("user vanished".into())),
            Err(e) if is_duplicate_key(&e) => self
                .find_one_in("users", filter)
                .await?
                .ok_or_else(|| Error::Internal("user vanished".into())),
            Err(e) => Err(e.into()),
        }
    }

    async fn find_users(&self, app_id: &str, ids: &[String]) -> Result<Vec<User>> {
        let cursor = self
            .collection("users")
            .find(doc! {"app_id": app_id, "_id": {"$in": ids}})
            .await?;
        let documents: Vec<Document> = cursor.try_collect().await?;
        documents.into_iter().map(from_document).collect()
    }

    async fn create_conversation(&self, conversation: &Conversation, members: &[Member]) -> Result<Conversation> {
        match self
            .collection("conversations")
            .insert_one(to_document(conversation)?)
            .await
        {
            Ok(_) => {}
            Err(e) if is_duplicate_key(&e) => {
                return self
                    .find_conversation(&conversation.app_id, &conversation.id)
                    .await?
                    .ok_or_else(|| Error::Conflict("conversation id belongs to another app".into()));
            }
            Err(e) => return Err(e.into()),
        }
        let documents = members.iter().map(to_document).collect::<Result<Vec<_>>>()?;
        if !documents.is_empty() {
            insert_many_idempotent(&self.collection("members"), documents).await?;
        }
        Ok(conversation.clone())
    }

    async fn find_conversation(&self, app_id: &str, conversation_id: &str) -> Result<Option<Conversation>> {
        self.find_one_in("conversations", doc! {"_id": conversation_id, "app_id": app_id})
            .await
    }

    async fn insert_messages(&self, messages: &[Message]) -> Result<InsertOutcome> {
        if messages.is_empty() {
            return Ok(InsertOutcome::default());
        }
        let documents = messages.iter().map(to_document).collect::<Result<Vec<_>>>()?;
        insert_many_idempotent(&self.collection("messages"), documents).await
    }

    async fn apply_message_revisions(&self, revisions: &[Message]) -> Result<usize> {
        self.store_all_if_newer("messages", revisions, |m| (&m.app_id, &m.id, m.version))
            .await
    }

    async fn find_message(&self, app_id: &str, conversation_id: &str, message_id: &str) -> Result<Option<Message>> {
        self.find_one_in(
            "messages",
            doc! {"_id": message_id, "app_id": app_id, "conversation_id": conversation_id},
        )
        .await
    }

    async fn reply_counts(
        &self,
        app_id: &str,
        conversation_id: &str,
        parent_ids: &[String],
    ) -> Result<HashMap<String, usize>> {
        let pipeline = [
            doc! {"$match": {"app_id": app_id, "conversation_id": conversation_id, "reply_to": {"$in": parent_ids}}},
            doc! {"$group": {"_id": "$reply_to", "count": {"$sum": 1}}},
        ];
        let groups: Vec<Document> = self
            .collection("messages")
            .aggregate(pipeline)
            .await?
            .try_collect()
            .await?;
        Ok(groups
            .into_iter()
            .filter_map(|group| {
                let parent = group.get_str("_id").ok()?.to_owned();
                let count = match group.get("count")? {
                    Bson::Int32(n) => *n as usize,
                    Bson::Int64(n) => *n as usize,
                    Bson::Double(n) => *n as usize,
                    _ => return None,
                };
                Some((parent, count))
            })
            .collect())
    }

    async fn list_replies(
        &self,
        app_id: &str,
        conversation_id: &str,
        parent_id: &str,
        limit: usize,
    ) -> Result<Vec<Message>> {
        let filter = doc! {"app_id": app_id, "conversation_id": conversation_id, "reply_to": parent_id};
        self.find_all("messages", filter, doc! {"seq": 1}, limit).await
    }

    async fn apply_reactions(&self, reactions: &[Reaction]) -> Result<usize> {
        self.store_all_if_newer("reactions", reactions, |r| (&r.app_id, &r.id, r.version))
            .await
    }

    async fn reaction_counts(
        &self,
        app_id: &str,
        conversation_id: &str,
        message_ids: &[String],
        viewer_id: &str,
    ) -> Result<HashMap<String, Vec<ReactionCount>>> {
        let filter = doc! {
            "app_id": app_id,
            "conversation_id": conversation_id,
            "message_id": {"$in": message_ids},
            "active": true,
        };
        let reactions: Vec<Reaction> = self.find_all("reactions", filter, doc! {"version": 1}, 100_000).await?;
        Ok(super::count_reactions(&reactions, viewer_id))
    }

    async fn find_member(&self, app_id: &str, conversation_id: &str, user_id: &str) -> Result<Option<Member>> {
        self.find_one_in(
            "members",
            doc! {"app_id": app_id, "conversation_id": conversation_id, "user_id": user_id},
        )
        .await
    }

    async fn list_members(&self, app_id: &str, conversation_id: &str) -> Result<Vec<Member>> {
        let filter = doc! {"app_id": app_id, "conversation_id": conversation_id};
        self.find_all("members", filter, doc! {"joined_at": 1, "user_id": 1}, 100_000)
            .await
    }

    async fn add_members(&self, app_id: &str, conversation_id: &str, members: &[Member]) -> Result<Conversation> {
        let user_ids: Vec<&str> = members.iter().map(|m| m.user_id.as_str()).collect();
        self.update_conversation(
            app_id,
            conversation_id,
            doc! {"$addToSet": {"member_ids": {"$each": user_ids}}},
        )
        .await?;
        let documents = members.iter().map(to_document).collect::<Result<Vec<_>>>()?;
        if !documents.is_empty() {
            insert_many_idempotent(&self.collection("members"), documents).await?;
        }
        self.conversation_or_not_found(app_id, conversation_id).await
    }

    async fn remove_member(&self, app_id: &str, conversation_id: &str, user_id: &str) -> Result<Conversation> {
        self.update_conversation(app_id, conversation_id, doc! {"$pull": {"member_ids": user_id}})
            .await?;
        self.collection("members")
            .delete_many(doc! {"app_id": app_id, "conversation_id": conversation_id, "user_id": user_id})
            .await?;
        self.conversation_or_not_found(app_id, conversation_id).await
    }

    async fn rename_conversation(&self, app_id: &str, conversation_id: &str, name: &str) -> Result<Conversation> {
        self.update_conversation(app_id, conversation_id, doc! {"$set": {"name": name}})
            .await?;
        self.conversation_or_not_found(app_id, conversation_id).await
    }

    async fn list_conversations(&self, app_id: &str, user_id: &str, limit: usize) -> Result<Vec<Conversation>> {
        let filter = doc! {"app_id": app_id, "member_ids": user_id};
        self.find_all("conversations", filter, doc! {"created_at": -1, "_id": -1}, limit)
            .await
    }

    async fn mark_read(&self, app_id: &str, conversation_id: &str, user_id: &str, seq: i64) -> Result<i64> {
        let filter = doc! {"app_id": app_id, "conversation_id": conversation_id, "user_id": user_id};
        let update = doc! {"$max": {"seq": seq}};
        match self
            .collection("reads")
            .update_one(filter.clone(), update)
            .upsert(true)
            .await
        {
            Ok(_) => {}
            // Two first reads raced on the unique index; the other one created the document.
            Err(e) if is_duplicate_key(&e) => {
                self.collection("reads")
                    .update_one(filter.clone(), doc! {"$max": {"seq": seq}})
                    .await?;
            }
            Err(e) => return Err(e.into()),
        }
        let stored = self.collection("reads").find_one(filter).await?;
        Ok(stored.as_ref().and_then(seq_of).unwrap_or(seq))
    }

    async fn read_horizons(
        &self,
        app_id: &str,
        user_id: &str,
        conversation_ids: &[String],
    ) -> Result<HashMap<String, i64>> {
        let filter = doc! {"app_id": app_id, "user_id": user_id, "conversation_id": {"$in": conversation_ids}};
        let documents: Vec<Document> = self.collection("reads").find(filter).await?.try_collect().await?;
        let mut horizons: HashMap<String, i64> = conversation_ids.iter().map(|id| (id.clone(), 0)).collect();
        for document in documents {
            if let (Ok(id), Some(seq)) = (document.get_str("conversation_id"), seq_of(&document)) {
                horizons.insert(id.to_owned(), seq);
            }
        }
        Ok(horizons)
    }

    async fn apply_summaries(&self, summaries: &[ConversationSummary]) -> Result<usize> {
        let writes = summaries.iter().map(|summary| async move {
            let document = to_document(summary)?;
            let newer_seq = doc! {"_id": &summary.id, "app_id": &summary.app_id, "last_seq": {"$lt": summary.last_seq}};
            let written = match self
                .collection("conversation_summaries")
                .replace_one(newer_seq, document.clone())
                .upsert(true)
                .await
            {
                Ok(result) => result.modified_count > 0 || result.upserted_id.is_some(),
                // The summary exists with this seq or a newer one (or belongs to another app).
                Err(e) if is_duplicate_key(&e) => false,
                Err(e) => return Err(Error::from(e)),
            };
            if written {
                return Ok::<bool, Error>(true);
            }
            let same_message_older_version = doc! {
                "_id": &summary.id,
                "app_id": &summary.app_id,
                "last_message.id": &summary.last_message.id,
                "last_message.version": {"$lt": summary.last_message.version},
            };
            let result = self
                .collection("conversation_summaries")
                .replace_one(same_message_older_version, document)
                .await?;
            Ok(result.modified_count > 0)
        });
        let applied = futures_util::future::try_join_all(writes).await?;
        Ok(applied.into_iter().filter(|written| *written).count())
    }

    async fn summaries(
        &self,
        app_id: &str,
        conversation_ids: &[String],
    ) -> Result<HashMap<String, ConversationSummary>> {
        let filter = doc! {"app_id": app_id, "_id": {"$in": conversation_ids}};
        let summaries: Vec<ConversationSummary> = self
            .find_all(
                "conversation_summaries",
                filter,
                doc! {"_id": 1},
                conversation_ids.len().max(1),
            )
            .await?;
        Ok(summaries.into_iter().map(|s| (s.id.clone(), s)).collect())
    }

    async fn list_messages(&self, app_id: &str, conversation_id: &str, range: SeqRange) -> Result<Vec<Message>> {
        let mut seq = Document::new();
        if let Some(after) = range.after_seq {
            seq.insert("$gt", after);
        }
        if let Some(before) = range.before_seq {
            seq.insert("$lt", before);
        }
        let mut filter = doc! {"app_id": app_id, "conversation_id": conversation_id};
        if !seq.is_empty() {
            filter.insert("seq", seq);
        }
        let direction = if range.reads_forward() { 1 } else { -1 };
        let documents: Vec<Document> = self
            .collection("messages")
            .find(filter)
            .sort(doc! {"seq": direction})
            .limit(i64::try_from(range.limit).unwrap_or(i64::MAX))
            .await?
            .try_collect()
            .await?;
        let mut messages = documents
            .into_iter()
            .map(from_document)
            .collect::<Result<Vec<Message>>>()?;
        if !range.reads_forward() {
            messages.reverse();
        }
        Ok(messages)
    }

    async fn max_seq(&self, app_id: &str, conversation_id: &str) -> Result<i64> {
        let latest = self
            .collection("messages")
            .find_one(doc! {"app_id": app_id, "conversation_id": conversation_id})
            .sort(doc! {"seq": -1})
            .projection(doc! {"seq": 1})
            .await?;
        Ok(latest.as_ref().and_then(seq_of).unwrap_or(0))
    }

    async fn last_audit_record(&self, app_id: &str) -> Result<Option<AuditRecord>> {
        let mut newest = self
            .find_all("audit_events", doc! {"app_id": app_id}, doc! {"seq": -1}, 1)
            .await?;
        Ok(newest.pop())
    }

    async fn stored_audit_ids(&self, app_id: &str, ids: &[String]) -> Result<Vec<String>> {
        let documents: Vec<Document> = self
            .collection("audit_events")
            .find(doc! {"app_id": app_id, "_id": {"$in": ids}})
            .projection(doc! {"_id": 1})
            .await?
            .try_collect()
            .await?;
        Ok(documents
            .iter()
            .filter_map(|d| d.get_str("_id").ok().map(str::to_owned))
            .collect())
    }

    async fn append_audit_records(&self, records: &[AuditRecord]) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let documents = records.iter().map(to_document).collect::<Result<Vec<_>>>()?;
        match self.collection("audit_events").insert_many(documents).await {
            Ok(_) => Ok(()),
            Err(e)
                if is_duplicate_key(&e)
                    || matches!(e.kind.as_ref(), ErrorKind::InsertMany(f) if f.write_errors.as_deref().unwrap_or_default().iter().any(|w| w.code == DUPLICATE_KEY)) =>
            {
                Err(Error::Conflict("the audit chain moved on; retry the batch".into()))
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn list_audit_records(&self, app_id: &str, query: &AuditQuery) -> Result<Vec<AuditRecord>> {
        let mut filter = doc! {"app_id": app_id, "seq": {"$gt": query.after_seq}};
        if let Some(actor) = &query.actor_id {
            filter.insert("actor.id", actor);
        }
        if let Some(action) = &query.action {
            filter.insert("action", action);
        }
        if let Some(correlation_id) = &query.correlation_id {
            filter.insert("correlation_id", correlation_id);
        }
        if let Some(target) = &query.target_id {
            filter.insert("target.id", target);
        }
        let mut at = Document::new();
        if let Some(since) = query.since {
            at.insert("$gte", since);
        }
        if let Some(until) = query.until {
            at.insert("$lt", until);
        }
        if !at.is_empty() {
            filter.insert("at", at);
        }
        self.find_all("audit_events", filter, doc! {"seq": 1}, query.limit)
            .await
    }

    async fn insert_hold(&self, hold: &LegalHold) -> Result<()> {
        self.collection("legal_holds").insert_one(to_document(hold)?).await?;
        Ok(())
    }

    async fn release_hold(&self, app_id: &str, hold_id: &str, released_at: i64) -> Result<LegalHold> {
        let released = self
            .collection("legal_holds")
            .find_one_and_update(
                doc! {"_id": hold_id, "app_id": app_id, "released_at": {"$exists": false}},
                doc! {"$set": {"released_at": released_at}},
            )
            .return_document(ReturnDocument::After)
            .await?;
        released
            .map(from_document)
            .transpose()?
            .ok_or_else(|| Error::NotFound(format!("no active legal hold {hold_id}")))
    }

    async fn active_holds(&self, app_id: &str) -> Result<Vec<LegalHold>> {
        let filter = doc! {"app_id": app_id, "released_at": {"$exists": false}};
        self.find_all("legal_holds", filter, doc! {"created_at": 1}, usize::MAX)
            .await
    }

    async fn put_restriction(&self, restriction: &Restriction) -> Result<()> {
        self.collection("restrictions")
            .replace_one(
                doc! {"_id": &restriction.id, "app_id": &restriction.app_id},
                to_document(restriction)?,
            )
            .upsert(true)
            .await?;
        Ok(())
    }

    async fn remove_restriction(&self, app_id: &str, restriction_id: &str) -> Result<Option<Restriction>> {
        self.collection("restrictions")
            .find_one_and_delete(doc! {"_id": restriction_id, "app_id": app_id})
            .await?
            .map(from_document)
            .transpose()
    }

    async fn list_restrictions(&self, app_id: &str) -> Result<Vec<Restriction>> {
        self.find_all("restrictions", doc! {"app_id": app_id}, doc! {"_id": 1}, usize::MAX)
            .await
    }

    async fn insert_session(&self, session: &Session) -> Result<()> {
        match self.collection("sessions").insert_one(to_document(session)?).await {
            Err(e) if is_duplicate_key(&e) => Err(Error::Conflict(format!("session {} exists", session.id))),
            result => result.map(|_| ()).map_err(Into::into),
        }
    }

    async fn find_session(&self, app_id: &str, session_id: &str) -> Result<Option<Session>> {
        self.find_one_in("sessions", doc! {"_id": session_id, "app_id": app_id})
            .await
    }

    async fn extend_session(&self, app_id: &str, session_id: &str, expires_at: i64) -> Result<Option<Session>> {
        self.collection("sessions")
            .find_one_and_update(
                doc! {"_id": session_id, "app_id": app_id, "revoked_at": {"$exists": false}},
                doc! {"$set": {"expires_at": expires_at}},
            )
            .return_document(ReturnDocument::After)
            .await?
            .map(from_document)
            .transpose()
    }

    async fn revoke_sessions(
        &self,
        app_id: &str,
        user_id: &str,
        session_id: Option<&str>,
        revoked_at: i64,
    ) -> Result<Vec<Session>> {
        let mut filter = doc! {"app_id": app_id, "user_id": user_id, "revoked_at": {"$exists": false}};
        if let Some(session_id) = session_id {
            filter.insert("_id", session_id);
        }
        let sessions: Vec<Session> = self
            .find_all("sessions", filter.clone(), doc! {"created_at": 1, "_id": 1}, usize::MAX)
            .await?;
        // Only what was found: a session created after the read is not revoked unseen.
        let ids: Vec<&str> = sessions.iter().map(|s| s.id.as_str()).collect();
        filter.insert("_id", doc! {"$in": ids});
        self.collection("sessions")
            .update_many(filter, doc! {"$set": {"revoked_at": revoked_at}})
            .await?;
        Ok(sessions)
    }

    async fn list_sessions(&self, app_id: &str, user_id: &str) -> Result<Vec<Session>> {
        self.find_all(
            "sessions",
            doc! {"app_id": app_id, "user_id": user_id},
            doc! {"created_at": 1, "_id": 1},
            usize::MAX,
        )
        .await
    }

    async fn find_restriction(&self, app_id: &str, restriction_id: &str) -> Result<Option<Restriction>> {
        self.find_one_in("restrictions", doc! {"_id": restriction_id, "app_id": app_id})
            .await
    }

    async fn list_apps(&self) -> Result<Vec<App>> {
        self.find_all("apps", doc! {}, doc! {"_id": 1}, usize::MAX).await
    }

    async fn messages_created_before(
        &self,
        app_id: &str,
        before: i64,
        except: &RetentionExceptions,
        limit: usize,
    ) -> Result<Vec<Message>> {
        let filter = doc! {
            "app_id": app_id,
            "created_at": {"$lt": before},
            "conversation_id": {"$nin": &except.conversation_ids},
            "sender_id": {"$nin": &except.sender_ids},
        };
        self.find_all("messages", filter, doc! {"created_at": 1}, limit).await
    }

    async fn purge_messages(&self, app_id: &str, message_ids: &[String]) -> Result<usize> {
        if message_ids.is_empty() {
            return Ok(0);
        }
        let deleted = self
            .collection("messages")
            .delete_many(doc! {"app_id": app_id, "_id": {"$in": message_ids}})
            .await?;
        self.collection("reactions")
            .delete_many(doc! {"app_id": app_id, "message_id": {"$in": message_ids}})
            .await?;
        Ok(deleted.deleted_count as usize)
    }

    async fn messages_by_sender(
        &self,
        app_id: &str,
        sender_id: &str,
        after_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Message>> {
        let mut filter = doc! {"app_id": app_id, "sender_id": sender_id};
        if let Some(after_id) = after_id {
            filter.insert("_id", doc! {"$gt": after_id});
        }
        self.find_all("messages", filter, doc! {"_id": 1}, limit).await
    }

    async fn attachments_by_uploader(&self, app_id: &str, uploader_id: &str) -> Result<Vec<Attachment>> {
        let filter = doc! {"app_id": app_id, "uploader_id": uploader_id};
        self.find_all("attachments", filter, doc! {"_id": 1}, usize::MAX).await
    }

    async fn delete_attachments(&self, app_id: &str, attachment_ids: &[String]) -> Result<usize> {
        if attachment_ids.is_empty() {
            return Ok(0);
        }
        let deleted = self
            .collection("attachments")
            .delete_many(doc! {"app_id": app_id, "_id": {"$in": attachment_ids}})
            .await?;
        Ok(deleted.deleted_count as usize)
    }

    async fn pseudonymise_user(&self, app_id: &str, user_id: &str, pseudonym: &str) -> Result<User> {
        self.collection("users")
            .find_one_and_update(
                doc! {"_id": user_id, "app_id": app_id},
                doc! {"$set": {"external_id": pseudonym}, "$unset": {"display_name": ""}},
            )
            .return_document(ReturnDocument::After)
            .await?
            .map(from_document)
            .transpose()?
            .ok_or_else(|| Error::NotFound(format!("user {user_id} not found")))
    }
}

/// The `seq` field of a document, whichever integer width the server stored.
fn seq_of(document: &Document) -> Option<i64> {
    match document.get("seq") {
        Some(Bson::Int64(n)) => Some(*n),
        Some(Bson::Int32(n)) => Some(i64::from(*n)),
        _ => None,
    }
}

/// Unordered bulk insert where duplicate keys mean "already stored" rather than failure.
async fn insert_many_idempotent(collection: &Collection<Document>, documents: Vec<Document>) -> Result<InsertOutcome> {
    let total = documents.len();
    match collection.insert_many(documents).ordered(false).await {
        Ok(result) => Ok(InsertOutcome {
            inserted: result.inserted_ids.len(),
            duplicates: 0,
        }),
        Err(e) => match e.kind.as_ref() {
            ErrorKind::InsertMany(failure) if failure.write_concern_error.is_none() => {
                let errors = failure.write_errors.as_deref().unwrap_or_default();
                if errors.iter().all(|w| w.code == DUPLICATE_KEY) {
                    Ok(InsertOutcome {
                        inserted: total - errors.len(),
                        duplicates: errors.len(),
                    })
                } else {
                    Err(e)?
                }
            }
            _ => Err(e)?,
        },
    }
}
