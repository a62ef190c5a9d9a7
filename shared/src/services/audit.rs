//! Recording audit events: the domain's [`AuditEvent`] goes on `caas.audit`, keyed by app so one app's
//! events stay in order; the write-audit function appends them to the app's hash chain.

use crate::domain::audit::AuditEvent;
use crate::domain::events::{topics, EventHeaders};
use crate::ports::bus::Bus;
use crate::Result;

impl AuditEvent {
    /// Publishes the event on `caas.audit`; returns once the bus has it.
    pub async fn emit(&self, bus: &dyn Bus) -> Result<()> {
        let headers = EventHeaders::new(&self.app_id, &self.action, &self.correlation_id);
        bus.publish_json(topics::AUDIT, &self.app_id, &headers, self).await
    }
}
