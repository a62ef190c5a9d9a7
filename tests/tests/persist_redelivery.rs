//! persist-messages against the real MongoDB-protocol server and Kafka-protocol broker: a redelivered
//! batch changes nothing, and an undecodable record is skipped without failing the batch.

use base64::Engine;
use caas_e2e::Stack;
use caas_shared::bus;
use caas_shared::events::MessageEvent;
use caas_shared::model::Message;
use caas_shared::store::MongoStore;
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
    let bytes = serde_json::to_vec(&MessageEvent::Created(message.clone())).unwrap();
    Some(base64::engine::general_purpose::STANDARD.encode(bytes))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redelivered_batches_leave_mongodb_unchanged() {
    let stack = Stack::obtain();
    let database = format!("e2e_redelivery_{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let store = Arc::new(
        MongoStore::connect(stack.get("CAAS_STORE_URL"), &database)
            .await
            .unwrap(),
    );
    let bus = bus::connect(stack.get("CAAS_BUS_URL")).await.unwrap();
    let handler = PersistMessages::new(Arc::clone(&store) as _, bus);

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
    let snapshot = |collection: mongodb::Collection<Document>| async move {
        let mut cursor = collection.find(doc! {}).sort(doc! {"seq": 1}).await.unwrap();
        let mut documents = Vec::new();
        while cursor.advance().await.unwrap() {
            documents.push(cursor.deserialize_current().unwrap());
        }
        documents
    };
    let before = snapshot(collection.clone()).await;
    assert_eq!(before.len(), 50);
    assert_eq!(before[0].get_str("correlation_id").unwrap(), "corr-1");

    // The whole batch again, then a batch that overlaps it: nothing new, nothing changed.
    let second = handler.handle(&event).await.unwrap();
    assert_eq!((second.inserted, second.duplicates), (0, 50));
    let overlapping = kafka_event(&messages[40..].iter().map(encoded).collect::<Vec<_>>());
    let third = handler.handle(&overlapping).await.unwrap();
    assert_eq!((third.inserted, third.duplicates), (0, 10));
    assert_eq!(snapshot(collection).await, before);
}
