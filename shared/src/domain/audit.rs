//! The audit trail: every security-relevant action becomes an [`AuditEvent`] on `caas.audit` (keyed by
//! app, so one app's events stay in order), and the write-audit function appends it to that app's hash
//! chain in MongoDB. Each [`AuditRecord`] carries the hash of the one before it, so editing, removing or
//! reordering any stored record breaks every hash after it, which [`verify`] reports.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// What the chain of an app starts from.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The actions recorded; each is the `action` of its events.
pub mod actions {
    /// The operator created the app (auth function); target: the app.
    pub const APP_CREATED: &str = "app.created";
    /// The operator rotated the app secret; target: the app.
    pub const APP_SECRET_ROTATED: &str = "app.secret_rotated";
    /// The operator replaced the app's settings; details hold the settings `before` and `after`.
    pub const APP_SETTINGS_CHANGED: &str = "app.settings_changed";
    /// An SDK token was issued to the app's backend for a user, starting a session; target: the user.
    pub const TOKEN_ISSUED: &str = "token.issued";
    /// An SDK token was refused, e.g. for an app-wide ban; details name the `reason` and the restriction.
    pub const TOKEN_REFUSED: &str = "token.refused";
    /// A user refreshed their token (same session, new expiry); target: the session.
    pub const TOKEN_REFRESHED: &str = "token.refreshed";
    /// A session ended (logout, another device revoked, an app-wide ban); one event per session, target: the
    /// session.
    pub const SESSION_REVOKED: &str = "session.revoked";
    /// A message was deleted by its sender or a group owner or admin; target: the message.
    pub const MESSAGE_DELETED: &str = "message.deleted";
    /// A sent message matched a blocked term under the `flag` policy and needs a review; details list the terms.
    pub const MESSAGE_FLAGGED: &str = "message.flagged";
    /// A member was removed by someone else (an owner or admin, or the operator through a conversation ban);
    /// target: the removed user.
    pub const MEMBER_REMOVED: &str = "member.removed";
    /// The operator banned or muted a user; details carry the restriction.
    pub const USER_RESTRICTED: &str = "user.restricted";
    /// The operator lifted a ban or mute.
    pub const USER_RESTRICTION_LIFTED: &str = "user.restriction_lifted";
    /// The operator placed a legal hold; target: the hold.
    pub const LEGAL_HOLD_PLACED: &str = "legal_hold.placed";
    /// The operator released a legal hold; target: the hold.
    pub const LEGAL_HOLD_RELEASED: &str = "legal_hold.released";
    /// The operator exported a user's data; details carry the export id and counts.
    pub const USER_EXPORTED: &str = "user.exported";
    /// The operator erased a user (messages tombstoned, attachments deleted, user pseudonymised).
    pub const USER_ERASED: &str = "user.erased";
    /// The retention job purged an app's expired messages; actor: `system`/`retention`.
    pub const RETENTION_APPLIED: &str = "retention.applied";
    /// The operator registered a webhook endpoint; target: the endpoint, details its URL and events.
    pub const WEBHOOK_CREATED: &str = "webhook.created";
    /// The operator changed a webhook endpoint; details hold it `before` and `after` (no secrets).
    pub const WEBHOOK_CHANGED: &str = "webhook.changed";
    /// The operator rotated an endpoint's signing secret; details carry the overlap.
    pub const WEBHOOK_SECRET_ROTATED: &str = "webhook.secret_rotated";
    /// The operator removed a webhook endpoint.
    pub const WEBHOOK_DELETED: &str = "webhook.deleted";
    /// The platform disabled a webhook endpoint: it answered `410 Gone` (details `reason` `gone`) or
    /// failed every attempt for a day (`failing`); actor: `system`/`webhooks`.
    pub const WEBHOOK_DISABLED: &str = "webhook.disabled";
}

/// Who did it: the platform operator, a user (SDK token), an app backend (app credentials) or the
/// platform itself (scheduled jobs).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Actor {
    /// `operator`, `user`, `app` or `system`.
    pub kind: String,
    /// The platform user id for `user`, the app id for `app`, the job name for `system`, and `operator` for the
    /// operator; what the audit query's `actor` filter matches.
    pub id: String,
}

impl Actor {
    /// The platform operator (a request with the `CAAS_ADMIN_TOKEN`).
    pub fn operator() -> Self {
        Self {
            kind: "operator".into(),
            id: "operator".into(),
        }
    }

    /// A user acting with their SDK token; `user_id` is the platform user id.
    pub fn user(user_id: &str) -> Self {
        Self {
            kind: "user".into(),
            id: user_id.to_owned(),
        }
    }

    /// An app's backend acting with the app's credentials.
    pub fn app(app_id: &str) -> Self {
        Self {
            kind: "app".into(),
            id: app_id.to_owned(),
        }
    }

    /// The platform itself, running the scheduled job named `job` (e.g. `retention`).
    pub fn system(job: &str) -> Self {
        Self {
            kind: "system".into(),
            id: job.to_owned(),
        }
    }
}

/// What it was done to.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Target {
    /// What kind of record: `app`, `user`, `session`, `message`, `legal_hold`, …
    pub kind: String,
    /// The record's id; what the audit query's `target` filter matches.
    pub id: String,
}

impl Target {
    /// The record of `kind` with id `id`.
    pub fn new(kind: &str, id: &str) -> Self {
        Self {
            kind: kind.to_owned(),
            id: id.to_owned(),
        }
    }
}

/// One security-relevant action, as published on `caas.audit` and stored (flattened) in each [`AuditRecord`].
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct AuditEvent {
    /// Unique per event, so a redelivered event is stored once.
    pub id: String,
    /// The app whose chain records the event; also the bus key, so an app's events stay in order.
    pub app_id: String,
    /// One of [`actions`].
    pub action: String,
    /// Who did it.
    pub actor: Actor,
    /// What it was done to.
    pub target: Target,
    /// Action-specific facts (never secrets or message text).
    #[serde(default)]
    pub details: Value,
    /// When it happened, Unix ms.
    pub at: i64,
    /// The correlation id of the request (or job run) that did it, so the audit trail links to the logs.
    pub correlation_id: String,
}

impl AuditEvent {
    /// An event that happens now, with a fresh UUID v7 id and no details.
    pub fn new(app_id: &str, action: &str, actor: Actor, target: Target, correlation_id: &str) -> Self {
        Self {
            id: uuid::Uuid::now_v7().to_string(),
            app_id: app_id.to_owned(),
            action: action.to_owned(),
            actor,
            target,
            details: Value::Null,
            at: crate::now_ms(),
            correlation_id: correlation_id.to_owned(),
        }
    }

    /// The event with its action-specific `details` (never secrets or message text).
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }
}

/// One stored link of an app's chain.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct AuditRecord {
    /// The event, flattened into the record (its fields sit beside `seq` and the hashes).
    #[serde(flatten)]
    pub event: AuditEvent,
    /// 1, 2, 3… per app, without gaps.
    pub seq: i64,
    /// The `hash` of the record before this one; [`GENESIS_HASH`] for the first.
    pub prev_hash: String,
    /// Hex SHA-256 over `prev_hash`, `seq` and the event's canonical JSON; changes if any of them is edited.
    pub hash: String,
}

impl AuditRecord {
    /// The record that follows `previous` (or starts the chain) with `event`.
    pub fn chain(previous: Option<&AuditRecord>, event: AuditEvent) -> Self {
        let (seq, prev_hash) = match previous {
            Some(previous) => (previous.seq + 1, previous.hash.clone()),
            None => (1, GENESIS_HASH.to_owned()),
        };
        let hash = link_hash(&prev_hash, seq, &event);
        Self {
            event,
            seq,
            prev_hash,
            hash,
        }
    }
}

/// SHA-256 over the previous hash, the position and the event's canonical JSON (serde_json sorts
/// object keys, so the same content always gives the same bytes).
fn link_hash(prev_hash: &str, seq: i64, event: &AuditEvent) -> String {
    let canonical = serde_json::to_value(event)
        .map(|value| value.to_string())
        .unwrap_or_default();
    let mut hasher = Sha256::new();
    hasher.update(prev_hash.as_bytes());
    hasher.update(b"\n");
    hasher.update(seq.to_string().as_bytes());
    hasher.update(b"\n");
    hasher.update(canonical.as_bytes());
    hex::encode(hasher.finalize())
}

/// Where a chain stopped being trustworthy.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ChainBreak {
    /// The seq of the first record that is missing, out of place or altered.
    pub seq: i64,
    /// What is wrong there, for the operator.
    pub reason: String,
}

/// Checks records that continue a chain whose last verified link was `previous` (`None`: the start);
/// returns the first break, if any.
pub fn verify(previous: Option<&AuditRecord>, records: &[AuditRecord]) -> std::result::Result<(), ChainBreak> {
    let mut expected_prev = previous.map_or_else(|| GENESIS_HASH.to_owned(), |p| p.hash.clone());
    for (expected_seq, record) in (previous.map_or(1, |p| p.seq + 1)..).zip(records) {
        let broken = |reason: &str| ChainBreak {
            seq: record.seq,
            reason: reason.to_owned(),
        };
        if record.seq != expected_seq {
            return Err(ChainBreak {
                seq: expected_seq,
                reason: format!("record {expected_seq} is missing (found {} next)", record.seq),
            });
        }
        if record.prev_hash != expected_prev {
            return Err(broken("prev_hash does not match the previous record's hash"));
        }
        if link_hash(&record.prev_hash, record.seq, &record.event) != record.hash {
            return Err(broken("the record's content does not match its hash (edited)"));
        }
        expected_prev = record.hash.clone();
    }
    Ok(())
}

/// Filters of `GET /compliance/audit`; records come in chain order, after `after_seq`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Only events by this actor id ([`Actor::id`]).
    pub actor_id: Option<String>,
    /// Only events with this action (one of [`actions`]).
    pub action: Option<String>,
    /// Unix ms, inclusive.
    pub since: Option<i64>,
    /// Unix ms, exclusive.
    pub until: Option<i64>,
    /// Only events done by this request.
    pub correlation_id: Option<String>,
    /// Only events on this target id ([`Target::id`]).
    pub target_id: Option<String>,
    /// Only records with a higher seq (0: from the start); the page cursor.
    pub after_seq: i64,
    /// Most records to return.
    pub limit: usize,
}

impl AuditQuery {
    /// Whether `record` passes every filter that is set, and comes after `after_seq`.
    pub fn matches(&self, record: &AuditRecord) -> bool {
        let event = &record.event;
        record.seq > self.after_seq
            && self.actor_id.as_ref().is_none_or(|a| *a == event.actor.id)
            && self.action.as_ref().is_none_or(|a| *a == event.action)
            && self.since.is_none_or(|t| event.at >= t)
            && self.until.is_none_or(|t| event.at < t)
            && self.correlation_id.as_ref().is_none_or(|c| *c == event.correlation_id)
            && self.target_id.as_ref().is_none_or(|t| *t == event.target.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(n: u32) -> AuditEvent {
        AuditEvent::new(
            "app",
            actions::USER_RESTRICTED,
            Actor::operator(),
            Target::new("user", &format!("u{n}")),
            "corr",
        )
        .with_details(json!({"kind": "ban", "n": n}))
    }

    fn chain_of(n: u32) -> Vec<AuditRecord> {
        let mut records: Vec<AuditRecord> = Vec::new();
        for i in 0..n {
            let record = AuditRecord::chain(records.last(), event(i));
            records.push(record);
        }
        records
    }

    #[test]
    fn an_intact_chain_verifies_and_survives_a_storage_round_trip() {
        let records = chain_of(5);
        assert_eq!(records.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
        assert_eq!(verify(None, &records), Ok(()));
        let stored: Vec<AuditRecord> = records
            .iter()
            .map(|r| serde_json::from_value(serde_json::to_value(r).unwrap()).unwrap())
            .collect();
        assert_eq!(verify(None, &stored), Ok(()));
        assert_eq!(verify(Some(&records[1]), &records[2..]), Ok(()));
    }

    #[test]
    fn edits_removals_and_forged_links_are_detected() {
        let mut edited = chain_of(4);
        edited[2].event.target.id = "someone else".into();
        assert_eq!(verify(None, &edited).unwrap_err().seq, 3);

        let mut removed = chain_of(4);
        removed.remove(1);
        assert_eq!(verify(None, &removed).unwrap_err().seq, 2);

        // Rewriting a record together with its own hash still breaks the next link.
        let mut forged = chain_of(4);
        forged[1].event.details = json!({"kind": "mute"});
        let rehashed = AuditRecord::chain(Some(&forged[0]), forged[1].event.clone());
        forged[1] = rehashed;
        assert_eq!(verify(None, &forged).unwrap_err().seq, 3);
    }
}
