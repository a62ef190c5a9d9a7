//! persist-messages against the real MongoDB-protocol server and Kafka-protocol broker: a redelivered
//! batch changes nothing, an undecodable record is skipped without failing the batch, and edits,
//! deletions and reactions converge to one final document whatever order they arrive in.

use base64::Engine;
use caas_e2e::Stack;
use caas_shared::domain::events::MessageEvent;
use caas_shared::domain::model::{Message, Reaction};
use caas_shared::ports::bus;
use caas_shared::ports::store::MongoStore;
use caas_shared::runtime::kafka_function::KafkaFunction;
use mongodb::bson::{doc, Document};
use persist_messages::PersistMessages;
use serde_json::json;
use std::sync::Arc;

fn kafka_event(values: &[Option<String>]) -> aws_lambda_events::event::kafka::KafkaEvent {
    let records: Vec<_> = values
        .iter()
        .enumerate()
        .map(|(offset, value)| {
            json!({"topic": "caas.messages", "partition": 0, "offset": offset, "timestamp": 1_700_000_000_000_i64,
                   "timestampType": "CREATE_TIME", "key": null, "value": value, "headers": []})
        })
        .collect();
    serde_json::from_value(json!({"eventSource": "SelfManagedKafka", "records": {"caas.messages-0": records}})).unwrap()
}

fn encoded(message: &Message) -> Option<String> {
    encoded_event(&MessageEvent::Created(message.clone()))
}

fn encoded_event(event: &MessageEvent) -> Option<String> {
    let bytes = serde_json::to_vec(event).unwrap();
    Some(base64::engine::general_purpose::STANDARD.encode(bytes))
}

async fn snapshot(collection: mongodb::Collection<Document>) -> Vec<Document> {
    let mut cursor = collection.find(doc! {}).sort(doc! {"_id": 1}).await.unwrap();
    let mut documents = Vec::new();
    while cursor.advance().await.unwrap() {
        documents.push(cursor.deserialize_current().unwrap());
    }
    documents
}

async fn handler_on_fresh_database(stack: &Stack, name: &str) -> (Arc<MongoStore>, PersistMessages) {
    let database = format!("e2e_{name}_{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let store = Arc::new(
        MongoStore::connect(stack.get("CAAS_STORE_URL"), &database)
            .await
            .unwrap(),
    );
    let bus = bus::connect(stack.get("CAAS_BUS_URL")).await.unwrap();
    bus.ensure_topics(&caas_shared::domain::events::topics::ALL)
        .await
        .unwrap();
    let handler = PersistMessages::new(Arc::clone(&store) as _, bus);
    (store, handler)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redelivered_batches_leave_mongodb_unchanged() {
    let stack = Stack::obtain();
    let (store, handler) = handler_on_fresh_database(&stack, "redelivery").await;

    let messages: Vec<Message> = (1..=50)
        .map(|seq| Message {
            id: format!("m-{seq}"),
            app_id: "app".into(),
            conversation_id: "conv".into(),
            seq,
            sender_id: "alice".into(),
            client_msg_id: format!("c-{seq}"),
            text: format!("text {seq}"),
            reply_to: None,
            created_at: 1_700_000_000_000 + seq,
            correlation_id: format!("corr-{seq}"),
            ..Default::default()
        })
        .collect();
    let mut values: Vec<Option<String>> = messages.iter().map(encoded).collect();
    values.insert(10, Some("not base64 at all %%%".into()));
    let event = kafka_event(&values);

    let first = handler.handle(&event).await.unwrap();
    assert_eq!(
        (first.records, first.inserted, first.duplicates, first.rejected),
        (51, 50, 0, 1)
    );
    let collection = store.database().collection::<Document>("messages");
    let before = snapshot(collection.clone()).await;
    assert_eq!(before.len(), 50);
    let first_doc = before.iter().find(|d| d.get_str("_id") == Ok("m-1")).unwrap();
    assert_eq!(first_doc.get_str("correlation_id").unwrap(), "corr-1");

    // The whole batch again, then a batch that overlaps it: nothing new, nothing changed.
    let second = handler.handle(&event).await.unwrap();
    assert_eq!((second.inserted, second.duplicates), (0, 50));
    let overlapping = kafka_event(&messages[40..].iter().map(encoded).collect::<Vec<_>>());
    let third = handler.handle(&overlapping).await.unwrap();
    assert_eq!((third.inserted, third.duplicates), (0, 10));
    assert_eq!(snapshot(collection).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_deletions_and_reactions_converge_in_any_order() {
    let stack = Stack::obtain();
    let message = |id: &str, seq: i64| Message {
        id: id.into(),
        app_id: "app".into(),
        conversation_id: "conv".into(),
        seq,
        sender_id: "alice".into(),
        client_msg_id: format!("c-{seq}"),
        text: "original".into(),
        created_at: 1,
        correlation_id: format!("corr-{seq}"),
        ..Default::default()
    };
    let (edited_m, deleted_m) = (message("edited", 1), message("deleted", 2));
    let edit = |text: &str, version: i64| Message {
        text: text.into(),
        version,
        edited_at: Some(version),
        ..edited_m.clone()
    };
    let tombstone = Message {
        text: String::new(),
        version: 5,
        deleted_at: Some(5),
        ..deleted_m.clone()
    };
    let reaction = |active: bool, version: i64| Reaction {
        id: Reaction::id_for("edited", "bob", "👍"),
        app_id: "app".into(),
        conversation_id: "conv".into(),
        message_id: "edited".into(),
        user_id: "bob".into(),
        emoji: "👍".into(),
        active,
        version,
        correlation_id: "corr-r".into(),
    };
    let in_order = [
        MessageEvent::Created(edited_m.clone()),
        MessageEvent::Created(deleted_m.clone()),
        MessageEvent::Edited(edit("first", 3)),
        MessageEvent::Reacted(reaction(true, 4)),
        MessageEvent::Deleted(tombstone.clone()),
        MessageEvent::Edited(edit("second", 6)),
        MessageEvent::Reacted(reaction(false, 7)),
    ];
    let batch = |events: &[MessageEvent]| kafka_event(&events.iter().map(encoded_event).collect::<Vec<_>>());

    let (ordered_store, ordered) = handler_on_fresh_database(&stack, "converge_ordered").await;
    ordered.handle(&batch(&in_order)).await.unwrap();
    // The reverse order, one record per batch (an edit before its message), then everything redelivered.
    let (reversed_store, reversed) = handler_on_fresh_database(&stack, "converge_reversed").await;
    for event in in_order.iter().rev() {
        reversed.handle(&batch(std::slice::from_ref(event))).await.unwrap();
    }
    reversed.handle(&batch(&in_order)).await.unwrap();

    for collection in ["messages", "reactions"] {
        let expected = snapshot(ordered_store.database().collection(collection)).await;
        let actual = snapshot(reversed_store.database().collection(collection)).await;
        assert_eq!(actual, expected, "{collection} converged");
    }
    let messages = snapshot(ordered_store.database().collection("messages")).await;
    let by_id = |id: &str| messages.iter().find(|d| d.get_str("_id") == Ok(id)).unwrap().clone();
    assert_eq!(by_id("edited").get_str("text").unwrap(), "second");
    assert_eq!(by_id("deleted").get_str("text").unwrap(), "");
    let reactions = snapshot(ordered_store.database().collection("reactions")).await;
    assert_eq!(reactions.len(), 1);
    assert!(!reactions[0].get_bool("active").unwrap(), "the later removal wins");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversation_summaries_ignore_redelivered_and_reordered_batches() {
    let stack = Stack::obtain();
    let (store, _) = handler_on_fresh_database(&stack, "summaries").await;
    let handler = persist_conversations::PersistConversations::new(Arc::clone(&store) as _);
    let message = |conversation: &str, seq: i64| Message {
        id: format!("{conversation}-{seq}"),
        app_id: "app".into(),
        conversation_id: conversation.into(),
        seq,
        sender_id: "alice".into(),
        client_msg_id: format!("c-{seq}"),
        text: format!("text {seq}"),
        created_at: 1,
        correlation_id: format!("corr-{seq}"),
        ..Default::default()
    };
    let mut events: Vec<MessageEvent> = ["one", "two", "three"]
        .iter()
        .flat_map(|conversation| (1..=20).map(move |seq| MessageEvent::Created(message(conversation, seq))))
        .collect();
    events.push(MessageEvent::Edited(Message {
        text: "last, edited".into(),
        version: 9,
        ..message("two", 20)
    }));
    let batch = |events: &[MessageEvent]| kafka_event(&events.iter().map(encoded_event).collect::<Vec<_>>());

    let first = handler.handle(&batch(&events)).await.unwrap();
    assert_eq!(first.summaries_applied, 3);
    let collection = store.database().collection::<Document>("conversation_summaries");
    let before = snapshot(collection.clone()).await;
    let texts: Vec<&str> = before
        .iter()
        .map(|d| d.get_document("last_message").unwrap().get_str("text").unwrap())
        .collect();
    assert_eq!(texts, ["text 20", "text 20", "last, edited"]);

    // The whole batch again, then every record alone in reverse order: nothing changes.
    assert_eq!(handler.handle(&batch(&events)).await.unwrap().summaries_applied, 0);
    for event in events.iter().rev() {
        handler.handle(&batch(std::slice::from_ref(event))).await.unwrap();
    }
    assert_eq!(snapshot(collection).await, before);
}
