//! Webhook events (issue 38): recording what the platform announced in each app's event log and
//! queueing its deliveries (the deliver-webhooks function), reading the log back with a cursor,
//! re-sending a time range of it to an endpoint, the operator's test event, and the retention purge.
//!
//! An app's log starts when it registers its first endpoint: apps without webhooks cost one endpoint
//! lookup per batch and nothing else.

use crate::domain::model::{EventQuery, WebhookDelivery, WebhookEndpoint, WebhookEvent};
use crate::domain::webhooks::events::{event_id, payload, Draft, TEST_EVENT};
use crate::ports::cache::Cache;
use crate::ports::store::Store;
use crate::{Error, Result};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;

/// How long events (and finished deliveries) are kept by default: a week.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// Most events one page of the events API returns.
pub const MAX_PAGE: usize = 500;

/// Most events one replay re-sends; a longer range is refused (ask for it in parts). Read and queued a
/// page ([`MAX_PAGE`]) at a time, so memory stays one page's payloads; bounded so one request's writes
/// stay well inside an HTTP function's timeout.
pub const MAX_REPLAY: usize = 10_000;

/// What one ingest did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct IngestReport {
    /// Events of apps with endpoints, recorded (or found recorded).
    pub events: usize,
    /// Deliveries queued (an event consumed again queues none).
    pub deliveries: usize,
}

/// Records events and queues their deliveries.
pub struct WebhookIngest<'a> {
    /// The event logs, the endpoints and the delivery queue.
    pub store: &'a dyn Store,
    /// Presence, for `message.new`'s `offline_member_ids`.
    pub cache: &'a dyn Cache,
}

impl WebhookIngest<'_> {
    /// Records `drafts` of apps that have endpoints in their logs at `now`, and queues a delivery of each
    /// to every enabled endpoint of its app that asked for its type. Idempotent: an event recorded before
    /// keeps its payload and its deliveries are not queued again.
    pub async fn ingest(&self, drafts: Vec<Draft>, now: i64) -> Result<IngestReport> {
        let mut endpoints: HashMap<String, Vec<WebhookEndpoint>> = HashMap::new();
        for draft in &drafts {
            if !endpoints.contains_key(&draft.app_id) {
                let found = self.store.list_webhooks(&draft.app_id).await?;
                endpoints.insert(draft.app_id.clone(), found);
            }
        }
        let mut events = Vec::new();
        let mut members = HashMap::new();
        for mut draft in drafts {
            if endpoints[&draft.app_id].is_empty() {
                continue;
            }
            if let Some((conversation_id, sender_id)) = &draft.offline_of {
                let offline = self
                    .offline_members(&mut members, &draft.app_id, conversation_id, sender_id)
                    .await?;
                draft.data["offline_member_ids"] = json!(offline);
            }
            let id = event_id(&draft.app_id, draft.event_type, &draft.key);
            events.push(WebhookEvent {
                payload: payload(
                    &id,
                    draft.event_type,
                    &draft.app_id,
                    now,
                    &draft.correlation_id,
                    &draft.data,
                ),
                id,
                app_id: draft.app_id,
                seq: 0,
                event_type: draft.event_type.to_owned(),
                created_at: now,
                correlation_id: draft.correlation_id,
            });
        }
        if events.is_empty() {
            return Ok(IngestReport::default());
        }
        let stored = self.store.append_webhook_events(&events).await?;
        let deliveries: Vec<WebhookDelivery> = stored
            .iter()
            .flat_map(|event| {
                endpoints[&event.app_id]
                    .iter()
                    .filter(|endpoint| endpoint.enabled && endpoint.event_types.contains(&event.event_type))
                    .map(move |endpoint| delivery_of(endpoint, event, now))
            })
            .collect();
        let queued = self.store.enqueue_webhook_deliveries(&deliveries).await?;
        Ok(IngestReport {
            events: stored.len(),
            deliveries: queued.inserted,
        })
    }

    /// The members of the conversation other than the sender with no live connection now (the
    /// platform's presence: a connection renews it while it lives). `members` keeps each conversation's
    /// members for the rest of the batch.
    async fn offline_members(
        &self,
        members: &mut HashMap<(String, String), Vec<String>>,
        app_id: &str,
        conversation_id: &str,
        sender_id: &str,
    ) -> Result<Vec<String>> {
        let key = (app_id.to_owned(), conversation_id.to_owned());
        if !members.contains_key(&key) {
            let conversation = self.store.find_conversation(app_id, conversation_id).await?;
            members.insert(key.clone(), conversation.map(|c| c.member_ids).unwrap_or_default());
        }
        let others: Vec<String> = members[&key]
            .iter()
            .filter(|member| *member != sender_id)
            .cloned()
            .collect();
        if others.is_empty() {
            return Ok(others);
        }
        let online = self.cache.online(app_id, &others).await?;
        Ok(others
            .into_iter()
            .zip(online)
            .filter_map(|(member, online)| (!online).then_some(member))
            .collect())
    }
}

/// The delivery of `event` to `endpoint`, queued at `at`.
fn delivery_of(endpoint: &WebhookEndpoint, event: &WebhookEvent, at: i64) -> WebhookDelivery {
    WebhookDelivery::queued(
        endpoint,
        &event.id,
        &event.event_type,
        event.payload.clone(),
        &event.correlation_id,
        at,
    )
}

/// A page of an app's event log: the events after `after_seq` (of `types`, if any), and the cursor to
/// ask for the next page with.
pub async fn read_events(store: &dyn Store, app_id: &str, query: EventQuery) -> Result<Value> {
    let limit = query.limit.clamp(1, MAX_PAGE);
    let events = store
        .find_webhook_events(app_id, &EventQuery { limit, ..query.clone() })
        .await?;
    let next_cursor = events.last().map_or(query.after_seq, |event| event.seq);
    let bodies = events
        .iter()
        .map(|event| {
            let mut body: Value = serde_json::from_str(&event.payload)
                .map_err(|e| Error::Internal(format!("stored event {} is not JSON: {e}", event.id)))?;
            body["cursor"] = json!(event.seq.to_string());
            Ok(body)
        })
        .collect::<Result<Vec<Value>>>()?;
    Ok(json!({
        "events": bodies,
        "next_cursor": next_cursor.to_string(),
        "has_more": events.len() == limit,
    }))
}

/// Queues the app's events recorded between `from` and `to` (Unix ms, both included) that `endpoint`
/// asks for, to be sent to it again as new deliveries (with their original `webhook-id`s); how many.
/// `replay_id` names this replay, so a replay asked for twice sends twice and each once.
pub async fn replay(
    store: &dyn Store,
    endpoint: &WebhookEndpoint,
    (from, to): (i64, i64),
    replay_id: &str,
    now: i64,
) -> Result<usize> {
    if from > to {
        return Err(Error::Validation("from must not be after to".into()));
    }
    // Up to now: a window reaching into the future would grow while it is replayed.
    let mut query = EventQuery {
        after_seq: 0,
        types: endpoint.event_types.clone(),
        from_ms: Some(from),
        to_ms: Some(to.min(now)),
        limit: MAX_REPLAY + 1,
    };
    let count = store.count_webhook_events(&endpoint.app_id, &query).await? as usize;
    if count > MAX_REPLAY {
        return Err(Error::LimitExceeded(format!(
            "a replay re-sends at most {MAX_REPLAY} events and this window holds more; ask for it in parts"
        )));
    }
    // A page at a time, so a replay's memory is one page whatever its window, and no more than were
    // counted (an event recorded into the window since — a late record — waits for the next replay).
    let (mut queued, mut left) = (0, count);
    while left > 0 {
        query.limit = left.min(MAX_PAGE);
        let events = store.find_webhook_events(&endpoint.app_id, &query).await?;
        let Some(last) = events.last() else {
            break;
        };
        query.after_seq = last.seq;
        left = left.saturating_sub(events.len());
        let deliveries: Vec<WebhookDelivery> = events
            .iter()
            .map(|event| WebhookDelivery {
                id: format!("{}:{}:{replay_id}", endpoint.id, event.id),
                ..delivery_of(endpoint, event, now)
            })
            .collect();
        queued += store.enqueue_webhook_deliveries(&deliveries).await?.inserted;
    }
    Ok(queued)
}

/// Queues a `webhook.test` event to `endpoint` (whatever it subscribes to; not kept in the log) and
/// returns its delivery.
pub async fn send_test(
    store: &dyn Store,
    endpoint: &WebhookEndpoint,
    correlation_id: &str,
    now: i64,
) -> Result<WebhookDelivery> {
    let id = format!("evt_test_{}", uuid::Uuid::now_v7().simple());
    let data = json!({"webhook_id": endpoint.id, "message": "a test event sent by the operator"});
    let body = payload(&id, TEST_EVENT, &endpoint.app_id, now, correlation_id, &data);
    let delivery = WebhookDelivery::queued(endpoint, &id, TEST_EVENT, body, correlation_id, now);
    store
        .enqueue_webhook_deliveries(std::slice::from_ref(&delivery))
        .await?;
    Ok(delivery)
}

/// Removes every app's events and finished deliveries older than `retention` at `now`.
pub async fn purge_history(store: &dyn Store, retention: Duration, now: i64) -> Result<(u64, u64)> {
    let before = now - retention.as_millis() as i64;
    let events = store.purge_webhook_events(before).await?;
    let deliveries = store.purge_finished_webhook_deliveries(before).await?;
    Ok((events, deliveries))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::events::MessageEvent;
    use crate::domain::model::Message;
    use crate::domain::webhooks::events::from_message_event;
    use crate::ports::cache::MemoryCache;
    use crate::ports::store::{MemoryStore, WebhookDeliveryStore, WebhookStore};

    fn endpoint(id: &str, types: &[&str]) -> WebhookEndpoint {
        WebhookEndpoint::for_tests("app", id, types, 0)
    }

    fn new_message(id: &str) -> Draft {
        let message = Message {
            id: id.into(),
            app_id: "app".into(),
            conversation_id: "c1".into(),
            sender_id: "alice".into(),
            ..Message::default()
        };
        from_message_event(&MessageEvent::Created(message)).unwrap()
    }

    /// A store with one endpoint `wh` for `message.new`, and its log's ingest (on a cache where nobody
    /// is online).
    async fn hooked() -> (MemoryStore, MemoryCache, WebhookEndpoint) {
        let store = MemoryStore::new();
        let hook = endpoint("wh", &["message.new"]);
        store.insert_webhook(&hook, 10).await.unwrap();
        (store, MemoryCache::new(), hook)
    }

    /// Three new messages recorded at 100, 200, 300 for an app with one endpoint.
    async fn logged() -> (MemoryStore, WebhookEndpoint) {
        let (store, cache, hook) = hooked().await;
        let ingest = WebhookIngest {
            store: &store,
            cache: &cache,
        };
        for (id, at) in [("m1", 100), ("m2", 200), ("m3", 300)] {
            ingest.ingest(vec![new_message(id)], at).await.unwrap();
        }
        (store, hook)
    }

    #[tokio::test]
    async fn the_log_is_read_in_pages_by_cursor() {
        let (store, _) = logged().await;
        let page = |after_seq| EventQuery {
            after_seq,
            limit: 2,
            ..EventQuery::default()
        };
        let first = read_events(&store, "app", page(0)).await.unwrap();
        let ids: Vec<&Value> = first["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| &e["data"]["message"]["id"])
            .collect();
        assert_eq!(ids, [&json!("m1"), &json!("m2")]);
        assert_eq!((&first["next_cursor"], &first["has_more"]), (&json!("2"), &json!(true)));
        assert_eq!(first["events"][1]["cursor"], "2");
        let second = read_events(&store, "app", page(2)).await.unwrap();
        assert_eq!(second["events"][0]["data"]["message"]["id"], "m3");
        let past_the_end = read_events(&store, "app", page(3)).await.unwrap();
        assert_eq!(
            (&past_the_end["events"], &past_the_end["next_cursor"]),
            (&json!([]), &json!("3")),
            "the cursor stays where it was"
        );
    }

    #[tokio::test]
    async fn a_replay_queues_a_window_again_each_time_it_is_asked() {
        let (store, hook) = logged().await;
        assert_eq!(store.list_webhook_deliveries("app", "wh", 10).await.unwrap().len(), 3);
        assert_eq!(replay(&store, &hook, (150, 300), "r1", 400).await.unwrap(), 2);
        assert_eq!(
            replay(&store, &hook, (150, 300), "r1", 400).await.unwrap(),
            0,
            "the same replay once"
        );
        assert_eq!(replay(&store, &hook, (0, 1_000), "r2", 400).await.unwrap(), 3);
        let queued = store.list_webhook_deliveries("app", "wh", 10).await.unwrap();
        assert_eq!(queued.len(), 8);
        let replayed = queued.iter().filter(|d| d.id.ends_with(":r1")).count();
        assert_eq!(replayed, 2);
        assert!(matches!(
            replay(&store, &hook, (300, 150), "r3", 400).await,
            Err(Error::Validation(_))
        ));
        let other_types = endpoint("wh2", &["member.added"]);
        assert_eq!(
            replay(&store, &other_types, (0, 1_000), "r4", 400).await.unwrap(),
            0,
            "only its types"
        );
    }

    #[tokio::test]
    async fn a_replay_reads_its_window_a_page_at_a_time_and_refuses_one_too_long() {
        let (store, cache, hook) = hooked().await;
        let ingest = WebhookIngest {
            store: &store,
            cache: &cache,
        };
        let drafts: Vec<Draft> = (0..=MAX_REPLAY).map(|i| new_message(&format!("m{i}"))).collect();
        ingest.ingest(drafts[..2 * MAX_PAGE + 1].to_vec(), 100).await.unwrap();
        assert_eq!(
            replay(&store, &hook, (0, 100), "r1", 200).await.unwrap(),
            2 * MAX_PAGE + 1,
            "every event of the window, over three pages"
        );
        ingest.ingest(drafts[2 * MAX_PAGE + 1..].to_vec(), 150).await.unwrap();
        assert!(matches!(
            replay(&store, &hook, (0, 150), "r2", 200).await,
            Err(Error::LimitExceeded(_))
        ));
        let replayed = store
            .list_webhook_deliveries("app", "wh", 2 * MAX_REPLAY)
            .await
            .unwrap();
        assert_eq!(
            replayed.iter().filter(|d| d.id.ends_with(":r2")).count(),
            0,
            "a refused replay queues nothing"
        );
    }

    #[tokio::test]
    async fn a_test_event_goes_to_its_endpoint_whatever_it_subscribes_to() {
        let store = MemoryStore::new();
        let hook = endpoint("wh", &["member.added"]);
        let delivery = send_test(&store, &hook, "corr", 5).await.unwrap();
        assert_eq!((delivery.event_type.as_str(), delivery.due_at), (TEST_EVENT, 5));
        let body: Value = serde_json::from_str(&delivery.payload).unwrap();
        assert_eq!(
            (&body["type"], &body["id"]),
            (&json!("webhook.test"), &json!(delivery.event_id))
        );
        assert_eq!(store.list_webhook_deliveries("app", "wh", 10).await.unwrap().len(), 1);
    }
}
