//! The handler on the in-memory store and cache: which records become events, who is offline, and
//! that a batch consumed twice records and queues everything once.

use super::*;
use caas_shared::domain::events::MessageEvent;
use caas_shared::domain::model::{Conversation, EventQuery, Member, Message, Role, WebhookEndpoint};
use caas_shared::ports::cache::{MemoryCache, PresenceCache};
use caas_shared::ports::store::{
    ConversationStore, MemoryStore, WebhookDeliveryStore, WebhookEventStore, WebhookStore,
};
use caas_shared::runtime::lambda::sample_event;
use serde_json::{json, Value};

fn endpoint(id: &str, app_id: &str, event_types: &[&str]) -> WebhookEndpoint {
    WebhookEndpoint::for_tests(app_id, id, event_types, 0)
}

fn new_message(app_id: &str, id: &str) -> Value {
    let message = Message {
        id: id.into(),
        app_id: app_id.into(),
        conversation_id: "c1".into(),
        sender_id: "alice".into(),
        text: "hi".into(),
        correlation_id: format!("corr-{id}"),
        ..Message::default()
    };
    serde_json::to_value(MessageEvent::Created(message)).unwrap()
}

async fn setup() -> (DeliverWebhooks, Arc<MemoryStore>, Arc<MemoryCache>) {
    let store = Arc::new(MemoryStore::new());
    let cache = Arc::new(MemoryCache::new());
    let conversation: Conversation = serde_json::from_value(json!({
        "id": "c1", "app_id": "app", "kind": "group", "created_by": "alice",
        "member_ids": ["alice", "bob", "carol"], "epoch": "e", "created_at": 1, "correlation_id": "c",
    }))
    .unwrap();
    let members: Vec<Member> = ["alice", "bob", "carol"]
        .iter()
        .map(|user| Member::new(&conversation, user, Role::Member))
        .collect();
    store.create_conversation(&conversation, &members).await.unwrap();
    store
        .insert_webhook(&endpoint("wh-new", "app", &["message.new"]), 10)
        .await
        .unwrap();
    store
        .insert_webhook(&endpoint("wh-members", "app", &["member.added"]), 10)
        .await
        .unwrap();
    let function = DeliverWebhooks::new(store.clone(), cache.clone(), Arc::new(Notify::new()));
    (function, store, cache)
}

#[tokio::test]
async fn a_new_message_is_recorded_once_and_queued_for_the_endpoints_that_asked() {
    let (function, store, cache) = setup().await;
    cache.presence_touch("app", "alice", "node-1").await.unwrap();
    cache.presence_touch("app", "carol", "node-2").await.unwrap();
    let batch = sample_event(
        topics::MESSAGES,
        &[new_message("app", "m1"), new_message("app-without-webhooks", "m2")],
    );
    let report = function.handle(&batch).await.unwrap();
    assert_eq!(
        (
            report.records,
            report.rejected,
            report.ingested.events,
            report.ingested.deliveries
        ),
        (2, 0, 1, 1),
        "one event of the app with webhooks, to the one endpoint that asked for it"
    );
    let log = store
        .find_webhook_events(
            "app",
            &EventQuery {
                limit: 10,
                ..EventQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(log.len(), 1);
    let body: Value = serde_json::from_str(&log[0].payload).unwrap();
    assert_eq!(
        (
            &body["type"],
            &body["app_id"],
            &body["correlation_id"],
            &body["data"]["message"]["id"]
        ),
        (&json!("message.new"), &json!("app"), &json!("corr-m1"), &json!("m1"))
    );
    assert_eq!(
        body["data"]["offline_member_ids"],
        json!(["bob"]),
        "carol is connected; the sender is not listed"
    );
    assert_eq!(body["id"], json!(log[0].id));
    let queued = store.list_webhook_deliveries("app", "wh-new", 10).await.unwrap();
    assert_eq!(queued.len(), 1);
    assert_eq!(
        (queued[0].event_id.as_str(), &queued[0].payload),
        (log[0].id.as_str(), &log[0].payload)
    );
    assert!(store
        .list_webhook_deliveries("app", "wh-members", 10)
        .await
        .unwrap()
        .is_empty());

    // The batch again (a redelivery), after bob connected: nothing new, the first payload stands.
    cache.presence_touch("app", "bob", "node-1").await.unwrap();
    let again = function.handle(&batch).await.unwrap();
    assert_eq!((again.ingested.events, again.ingested.deliveries), (1, 0));
    let log_again = store
        .find_webhook_events(
            "app",
            &EventQuery {
                limit: 10,
                ..EventQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(log_again, log);
    assert!(
        store
            .find_webhook_events(
                "app-without-webhooks",
                &EventQuery {
                    limit: 10,
                    ..EventQuery::default()
                }
            )
            .await
            .unwrap()
            .is_empty(),
        "an app without endpoints keeps no log"
    );
}

#[tokio::test]
async fn membership_changes_and_moderation_reach_their_subscribers_and_bad_records_are_skipped() {
    let (function, store, _) = setup().await;
    let change = json!({
        "kind": "conversation.updated",
        "conversation": {"id": "c1", "app_id": "app", "kind": "group", "created_by": "alice",
                         "member_ids": ["alice", "bob", "carol", "dave"], "epoch": "e", "created_at": 1,
                         "correlation_id": "corr-add"},
        "added": ["dave"],
        "removed": [],
    });
    let keys = json!({"kind": "keys.low", "app_id": "app", "user_id": "u", "device_id": "D", "count": 1,
                      "correlation_id": "c"});
    let report = function
        .handle(&sample_event(
            topics::CONVERSATIONS,
            &[change, keys, json!("not a record")],
        ))
        .await
        .unwrap();
    assert_eq!((report.records, report.rejected, report.ingested.deliveries), (3, 1, 1));
    let queued = store.list_webhook_deliveries("app", "wh-members", 10).await.unwrap();
    let body: Value = serde_json::from_str(&queued[0].payload).unwrap();
    assert_eq!(
        (&body["type"], &body["data"]["user_ids"]),
        (&json!("member.added"), &json!(["dave"]))
    );
    assert_eq!(queued[0].correlation_id, "corr-add");

    let ban = AuditEvent::new(
        "app",
        caas_shared::domain::audit::actions::USER_RESTRICTED,
        caas_shared::domain::audit::Actor::operator(),
        caas_shared::domain::audit::Target::new("user", "bob"),
        "corr-ban",
    )
    .with_details(json!({"kind": "ban"}));
    let report = function
        .handle(&sample_event(topics::AUDIT, &[serde_json::to_value(ban).unwrap()]))
        .await
        .unwrap();
    assert_eq!(
        (report.ingested.events, report.ingested.deliveries),
        (1, 0),
        "recorded; nobody asked for it"
    );
    let log = store
        .find_webhook_events(
            "app",
            &EventQuery {
                types: vec!["user.banned".into()],
                limit: 10,
                ..EventQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(log.len(), 1);
}
