//! Conversations, members, read horizons and summaries in the MongoDB store.

use super::{insert_many_idempotent, is_duplicate_key, seq_of, to_document, MongoStore};
use crate::domain::model::{Conversation, ConversationSummary, Member};
use crate::ports::store::ConversationStore;
use crate::{Error, Result};
use async_trait::async_trait;
use futures_util::TryStreamExt;
use mongodb::bson::{doc, Document};
use std::collections::{HashMap, HashSet};

/// Most of a user's conversations a presence check looks through.
const MAX_CONTACT_SCAN: usize = 10_000;

impl MongoStore {
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
}

#[async_trait]
impl ConversationStore for MongoStore {
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

    async fn contacts(&self, app_id: &str, user_id: &str, candidates: &[String]) -> Result<HashSet<String>> {
        if candidates.is_empty() {
            return Ok(HashSet::new());
        }
        // Two small indexed reads of the members collection rather than whole conversations with their
        // member lists: the user's conversations, then which candidates are members of any of them.
        let mine: Vec<Member> = self
            .find_all(
                "members",
                doc! {"app_id": app_id, "user_id": user_id},
                doc! {},
                MAX_CONTACT_SCAN,
            )
            .await?;
        if mine.is_empty() {
            return Ok(HashSet::new());
        }
        let conversation_ids: Vec<&str> = mine.iter().map(|m| m.conversation_id.as_str()).collect();
        let filter = doc! {
            "app_id": app_id,
            "conversation_id": {"$in": conversation_ids},
            "user_id": {"$in": candidates},
        };
        let theirs: Vec<Member> = self.find_all("members", filter, doc! {}, usize::MAX).await?;
        Ok(theirs.into_iter().map(|m| m.user_id).collect())
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
}
