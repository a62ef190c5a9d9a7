//! The audit chain, legal holds and restrictions in the MongoDB store.

use super::{from_document, is_duplicate_key, to_document, MongoStore, DUPLICATE_KEY};
use crate::domain::audit::{AuditQuery, AuditRecord};
use crate::domain::model::{LegalHold, Restriction};
use crate::ports::store::ComplianceStore;
use crate::{Error, Result};
use async_trait::async_trait;
use futures_util::TryStreamExt;
use mongodb::bson::{doc, Document};
use mongodb::error::ErrorKind;
use mongodb::options::ReturnDocument;

#[async_trait]
impl ComplianceStore for MongoStore {
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

    async fn find_restriction(&self, app_id: &str, restriction_id: &str) -> Result<Option<Restriction>> {
        self.find_one_in("restrictions", doc! {"_id": restriction_id, "app_id": app_id})
            .await
    }
}
