//! Messages, revisions, replies and reactions in the MongoDB store.

use super::{
    from_document, insert_many_noting_duplicates, is_duplicate_key, number_of, seq_of, to_document, MongoStore,
};
use crate::domain::model::{Message, Reaction, ReactionCount, SeqReservation, SeqSpan};
use crate::ports::store::{count_reactions, MessageInsert, MessageStore, RetentionExceptions, SeqRange};
use crate::Result;
use async_trait::async_trait;
use futures_util::TryStreamExt;
use mongodb::bson::{doc, Document};
use serde::Serialize;
use std::collections::HashMap;

impl MongoStore {
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
}

#[async_trait]
impl MessageStore for MongoStore {
    async fn insert_messages(&self, messages: &[Message]) -> Result<MessageInsert> {
        if messages.is_empty() {
            return Ok(MessageInsert::default());
        }
        let documents = messages.iter().map(to_document).collect::<Result<Vec<_>>>()?;
        let refused = insert_many_noting_duplicates(&self.collection("messages"), documents).await?;
        let mut outcome = MessageInsert {
            inserted: messages.len() - refused.len(),
            ..MessageInsert::default()
        };
        if refused.is_empty() {
            return Ok(outcome);
        }
        // A refused message is a redelivery only if this very message is stored under its seq; any
        // other stored message holding the seq makes it a conflict.
        let ids: Vec<&str> = refused.iter().map(|&i| messages[i].id.as_str()).collect();
        let stored: Vec<Document> = self
            .collection("messages")
            .find(doc! {"_id": {"$in": ids}})
            .projection(doc! {"app_id": 1, "conversation_id": 1, "seq": 1})
            .await?
            .try_collect()
            .await?;
        let stored: HashMap<&str, &Document> = stored
            .iter()
            .filter_map(|d| Some((d.get_str("_id").ok()?, d)))
            .collect();
        for message in refused.iter().map(|&i| &messages[i]) {
            let same = stored.get(message.id.as_str()).is_some_and(|d| {
                d.get_str("app_id") == Ok(message.app_id.as_str())
                    && d.get_str("conversation_id") == Ok(message.conversation_id.as_str())
                    && seq_of(d) == Some(message.seq)
            });
            if same {
                outcome.duplicates += 1;
            } else {
                outcome.conflicts.push(message.clone());
            }
        }
        Ok(outcome)
    }

    async fn keep_seq_conflicts(&self, conflicts: &[Message]) -> Result<usize> {
        let now = crate::now_ms();
        let documents = conflicts
            .iter()
            .map(|message| {
                let mut document = to_document(message)?;
                document.insert("detected_at", now);
                Ok(document)
            })
            .collect::<Result<Vec<_>>>()?;
        if documents.is_empty() {
            return Ok(0);
        }
        let refused = insert_many_noting_duplicates(&self.collection("message_conflicts"), documents).await?;
        Ok(conflicts.len() - refused.len())
    }

    async fn seq_conflicts(&self, app_id: &str, limit: usize) -> Result<Vec<Message>> {
        self.find_all(
            "message_conflicts",
            doc! {"app_id": app_id},
            doc! {"detected_at": 1, "_id": 1},
            limit,
        )
        .await
    }

    async fn count_unread(
        &self,
        app_id: &str,
        conversation_id: &str,
        user_id: &str,
        after_seq: i64,
        cap: usize,
    ) -> Result<usize> {
        // The unique (app_id, conversation_id, seq) index bounds the scan to the unread range.
        let filter = doc! {
            "app_id": app_id,
            "conversation_id": conversation_id,
            "seq": {"$gt": after_seq},
            "sender_id": {"$ne": user_id},
            "deleted_at": {"$exists": false},
        };
        let counted = self
            .collection("messages")
            .count_documents(filter)
            .limit(u64::try_from(cap).unwrap_or(u64::MAX))
            .await?;
        Ok(usize::try_from(counted).unwrap_or(usize::MAX))
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
                let count = usize::try_from(number_of(&group, "count")?).ok()?;
                Some((parent, count))
            })
            .collect())
    }

    async fn list_replies(
        &self,
        app_id: &str,
        conversation_id: &str,
        parent_id: &str,
        after_seq: i64,
        limit: usize,
    ) -> Result<Vec<Message>> {
        let filter = doc! {
            "app_id": app_id, "conversation_id": conversation_id, "reply_to": parent_id, "seq": {"$gt": after_seq},
        };
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
        Ok(count_reactions(&reactions, viewer_id))
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

    async fn reserve_seqs(&self, app_id: &str, conversation_id: &str, through: i64) -> Result<i64> {
        self.upsert_reservation(app_id, conversation_id, doc! {"$max": {"reserved_through": through}})
            .await?;
        Ok(self.seq_reservation(app_id, conversation_id).await?.reserved_through)
    }

    async fn seq_reservation(&self, app_id: &str, conversation_id: &str) -> Result<SeqReservation> {
        let found: Option<SeqReservation> = self
            .find_one_in("sequences", doc! {"_id": reservation_id(app_id, conversation_id)})
            .await?;
        Ok(found.unwrap_or_else(|| SeqReservation::none(app_id, conversation_id)))
    }

    async fn mark_uncertain(&self, app_id: &str, conversation_id: &str, span: SeqSpan) -> Result<()> {
        let span = doc! {"after": span.after, "through": span.through};
        self.upsert_reservation(app_id, conversation_id, doc! {"$addToSet": {"uncertain": span}})
            .await
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
}

/// The `_id` of a conversation's document in `sequences`.
fn reservation_id(app_id: &str, conversation_id: &str) -> String {
    format!("{app_id}/{conversation_id}")
}

impl MongoStore {
    /// Applies `update` to the conversation's reservation document, creating it (with zero reservation)
    /// first when it does not exist.
    async fn upsert_reservation(&self, app_id: &str, conversation_id: &str, update: Document) -> Result<()> {
        let filter = doc! {"_id": reservation_id(app_id, conversation_id)};
        let mut update = update;
        update.insert(
            "$setOnInsert",
            doc! {"app_id": app_id, "conversation_id": conversation_id},
        );
        let collection = self.collection("sequences");
        match collection.update_one(filter.clone(), update.clone()).upsert(true).await {
            Ok(_) => Ok(()),
            // Two first reservations raced on the _id; the other created the document.
            Err(e) if is_duplicate_key(&e) => {
                update.remove("$setOnInsert");
                collection.update_one(filter, update).await?;
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }
}
