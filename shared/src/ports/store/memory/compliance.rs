//! The audit chain, legal holds and restrictions in the in-memory store.

use super::Change::Changed;
use super::{app_scoped_key, MemoryStore};
use crate::domain::audit::{AuditQuery, AuditRecord};
use crate::domain::model::{LegalHold, Restriction};
use crate::ports::store::ComplianceStore;
use crate::{Error, Result};
use async_trait::async_trait;

#[async_trait]
impl ComplianceStore for MemoryStore {
    async fn last_audit_record(&self, app_id: &str) -> Result<Option<AuditRecord>> {
        self.read(|tables| tables.audit.get(app_id).and_then(|chain| chain.last().cloned()))
    }

    async fn stored_audit_ids(&self, app_id: &str, ids: &[String]) -> Result<Vec<String>> {
        self.read(|tables| {
            let chain = tables.audit.get(app_id).map(Vec::as_slice).unwrap_or_default();
            ids.iter()
                .filter(|id| chain.iter().any(|record| record.event.id == **id))
                .cloned()
                .collect()
        })
    }

    async fn append_audit_records(&self, records: &[AuditRecord]) -> Result<()> {
        // A taken seq fails the batch, but the records before it stay (they continue the chain), so the
        // snapshot is rewritten either way.
        self.write(|tables| {
            for record in records {
                let chain = tables.audit.entry(record.event.app_id.clone()).or_default();
                let taken = chain.last().is_some_and(|last| last.seq >= record.seq)
                    || chain.iter().any(|stored| stored.event.id == record.event.id);
                if taken {
                    let conflict = Error::Conflict("the audit chain moved on; retry the batch".into());
                    return Ok(Changed(Err(conflict)));
                }
                chain.push(record.clone());
            }
            Ok(Changed(Ok(())))
        })?
    }

    async fn list_audit_records(&self, app_id: &str, query: &AuditQuery) -> Result<Vec<AuditRecord>> {
        self.read(|tables| {
            let chain = tables.audit.get(app_id).map(Vec::as_slice).unwrap_or_default();
            chain
                .iter()
                .filter(|record| query.matches(record))
                .take(query.limit)
                .cloned()
                .collect()
        })
    }

    async fn insert_hold(&self, hold: &LegalHold) -> Result<()> {
        self.write(|tables| {
            tables.holds.insert(hold.id.clone(), hold.clone());
            Ok(Changed(()))
        })
    }

    async fn release_hold(&self, app_id: &str, hold_id: &str, released_at: i64) -> Result<LegalHold> {
        self.write(|tables| {
            let hold = tables
                .holds
                .get_mut(hold_id)
                .filter(|h| h.app_id == app_id && h.released_at.is_none())
                .ok_or_else(|| Error::NotFound(format!("no active legal hold {hold_id}")))?;
            hold.released_at = Some(released_at);
            Ok(Changed(hold.clone()))
        })
    }

    async fn active_holds(&self, app_id: &str) -> Result<Vec<LegalHold>> {
        let mut holds: Vec<LegalHold> = self.read(|tables| {
            tables
                .holds
                .values()
                .filter(|h| h.app_id == app_id && h.released_at.is_none())
                .cloned()
                .collect()
        })?;
        holds.sort_by_key(|h| h.created_at);
        Ok(holds)
    }

    async fn put_restriction(&self, restriction: &Restriction) -> Result<()> {
        self.write(|tables| {
            let key = app_scoped_key(&restriction.app_id, &restriction.id);
            tables.restrictions.insert(key, restriction.clone());
            Ok(Changed(()))
        })
    }

    async fn remove_restriction(&self, app_id: &str, restriction_id: &str) -> Result<Option<Restriction>> {
        self.write(|tables| {
            Ok(Changed(
                tables.restrictions.remove(&app_scoped_key(app_id, restriction_id)),
            ))
        })
    }

    async fn list_restrictions(&self, app_id: &str) -> Result<Vec<Restriction>> {
        let mut restrictions: Vec<Restriction> = self.read(|tables| {
            tables
                .restrictions
                .values()
                .filter(|r| r.app_id == app_id)
                .cloned()
                .collect()
        })?;
        restrictions.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(restrictions)
    }

    async fn find_restriction(&self, app_id: &str, restriction_id: &str) -> Result<Option<Restriction>> {
        self.read(|tables| {
            tables
                .restrictions
                .get(&app_scoped_key(app_id, restriction_id))
                .cloned()
        })
    }
}
