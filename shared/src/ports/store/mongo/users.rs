//! Users and sessions in the MongoDB store.

use super::{from_document, insert_many_idempotent, is_duplicate_key, to_document, MongoStore};
use crate::domain::model::{Session, User};
use crate::ports::store::UserStore;
use crate::{Error, Result};
use async_trait::async_trait;
use futures_util::TryStreamExt;
use mongodb::bson::{doc, Document};
use mongodb::options::ReturnDocument;

#[async_trait]
impl UserStore for MongoStore {
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

    async fn insert_session(&self, session: &Session) -> Result<()> {
        match self.collection("sessions").insert_one(to_document(session)?).await {
            Err(e) if is_duplicate_key(&e) => Err(Error::Conflict(format!("session {} exists", session.id))),
            result => result.map(|_| ()).map_err(Into::into),
        }
    }

    async fn insert_sessions(&self, sessions: &[Session]) -> Result<()> {
        if sessions.is_empty() {
            return Ok(());
        }
        let documents = sessions.iter().map(to_document).collect::<Result<Vec<_>>>()?;
        // One write for the whole batch: with writes journaled, each write costs a journal flush.
        let outcome = insert_many_idempotent(&self.collection("sessions"), documents).await?;
        match outcome.duplicates {
            0 => Ok(()),
            n => Err(Error::Conflict(format!("{n} of {} sessions exist", sessions.len()))),
        }
    }

    async fn find_session(&self, app_id: &str, session_id: &str) -> Result<Option<Session>> {
        self.find_one_in("sessions", doc! {"_id": session_id, "app_id": app_id})
            .await
    }

    async fn find_sessions(&self, app_id: &str, session_ids: &[String]) -> Result<Vec<Session>> {
        if session_ids.is_empty() {
            return Ok(Vec::new());
        }
        self.find_all(
            "sessions",
            doc! {"_id": {"$in": session_ids}, "app_id": app_id},
            doc! {"_id": 1},
            session_ids.len(),
        )
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

    async fn revoke_app_sessions(&self, app_id: &str, revoked_at: i64) -> Result<u64> {
        let result = self
            .collection("sessions")
            .update_many(
                doc! {"app_id": app_id, "revoked_at": {"$exists": false}},
                doc! {"$set": {"revoked_at": revoked_at}},
            )
            .await?;
        Ok(result.modified_count)
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
