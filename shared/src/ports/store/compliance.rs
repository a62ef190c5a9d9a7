//! The compliance part of the store port: the audit chain, legal holds and restrictions.

use crate::domain::audit::{AuditQuery, AuditRecord};
use crate::domain::model::{LegalHold, Restriction};
use crate::Result;
use async_trait::async_trait;

/// Compliance: the audit chain, legal holds and restrictions.
#[async_trait]
pub trait ComplianceStore: Send + Sync {
    /// The newest record of the app's audit chain.
    async fn last_audit_record(&self, app_id: &str) -> Result<Option<AuditRecord>>;
    /// Which of these event ids the app's chain already holds (a redelivered event).
    async fn stored_audit_ids(&self, app_id: &str, ids: &[String]) -> Result<Vec<String>>;
    /// Appends records, in order, that continue the chain; `Conflict` when a seq is taken (another
    /// writer got there first). Records before the conflicting one stay: they continue the chain.
    async fn append_audit_records(&self, records: &[AuditRecord]) -> Result<()>;
    /// Matching records in chain order, at most `query.limit`.
    async fn list_audit_records(&self, app_id: &str, query: &AuditQuery) -> Result<Vec<AuditRecord>>;
    /// Stores a newly placed hold.
    async fn insert_hold(&self, hold: &LegalHold) -> Result<()>;
    /// Releases an active hold; `NotFound` for an unknown or already released one.
    async fn release_hold(&self, app_id: &str, hold_id: &str, released_at: i64) -> Result<LegalHold>;
    /// The app's unreleased holds, oldest first.
    async fn active_holds(&self, app_id: &str) -> Result<Vec<LegalHold>>;
    /// Stores the restriction, replacing one with the same id.
    async fn put_restriction(&self, restriction: &Restriction) -> Result<()>;
    /// Removes a restriction and returns it; `None` when there was none.
    async fn remove_restriction(&self, app_id: &str, restriction_id: &str) -> Result<Option<Restriction>>;
    /// Every restriction of the app, expired ones included (until removed), ordered by id.
    async fn list_restrictions(&self, app_id: &str) -> Result<Vec<Restriction>>;
    /// The restriction with this id (see [`Restriction::id_for`]); `None` when there is none, whether or not it is
    /// still in force.
    async fn find_restriction(&self, app_id: &str, restriction_id: &str) -> Result<Option<Restriction>>;
}
