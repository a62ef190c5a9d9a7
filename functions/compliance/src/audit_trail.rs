//! Reading and verifying the audit trail.

use crate::{number, parse_query, Api};
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::Json;
use caas_shared::domain::audit::{self, AuditQuery};
use caas_shared::{Error, Result};
use serde::Deserialize;
use serde_json::{json, Value};

const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1000;
/// Records read per round trip while verifying a chain.
const VERIFY_PAGE: usize = 1000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Filters {
    #[serde(default)]
    app_id: String,
    actor: Option<String>,
    action: Option<String>,
    target: Option<String>,
    correlation_id: Option<String>,
    since: Option<String>,
    until: Option<String>,
    after_seq: Option<String>,
    limit: Option<String>,
}

/// `GET /compliance/audit`: matching records in chain order, a page at a time (`after_seq`).
pub async fn list(State(api): Api, headers: HeaderMap, RawQuery(query): RawQuery) -> Result<Json<Value>> {
    api.require_operator(&headers)?;
    let filters: Filters = parse_query(query.as_deref())?;
    let app = api.app(&filters.app_id).await?;
    let limit = number::<usize>("limit", filters.limit.as_deref())?.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(Error::Validation(format!("limit must be 1 to {MAX_PAGE}")));
    }
    let query = AuditQuery {
        actor_id: filters.actor,
        action: filters.action,
        target_id: filters.target,
        correlation_id: filters.correlation_id,
        since: number("since", filters.since.as_deref())?,
        until: number("until", filters.until.as_deref())?,
        after_seq: number("after_seq", filters.after_seq.as_deref())?.unwrap_or(0),
        limit,
    };
    let records = api.store.list_audit_records(&app.id, &query).await?;
    let next_after_seq = (records.len() == limit)
        .then(|| records.last().map(|r| r.seq))
        .flatten();
    Ok(Json(
        json!({"app_id": app.id, "records": records, "next_after_seq": next_after_seq}),
    ))
}

/// `GET /compliance/audit/verify`: walks the app's whole chain and reports the first broken link.
pub async fn verify(State(api): Api, headers: HeaderMap, RawQuery(query): RawQuery) -> Result<Json<Value>> {
    let app = api.operator_app_from_query(&headers, query.as_deref()).await?;
    let mut page = AuditQuery {
        limit: VERIFY_PAGE,
        ..AuditQuery::default()
    };
    let mut last = None;
    let mut checked = 0;
    loop {
        let records = api.store.list_audit_records(&app.id, &page).await?;
        if let Err(broken) = audit::verify(last.as_ref(), &records) {
            tracing::warn!(app_id = %app.id, seq = broken.seq, reason = %broken.reason, "audit chain broken");
            return Ok(Json(json!({
                "app_id": app.id, "valid": false, "records": checked, "broken_at": broken,
            })));
        }
        checked += records.len();
        let Some(newest) = records.last() else { break };
        page.after_seq = newest.seq;
        last = Some(newest.clone());
        if records.len() < VERIFY_PAGE {
            break;
        }
    }
    Ok(Json(json!({
        "app_id": app.id, "valid": true, "records": checked,
        "head": last.map(|r| json!({"seq": r.seq, "hash": r.hash})),
    })))
}
