//! Reading the records AWS's Kafka event source mapping delivers (`KafkaEvent`), shared by every
//! Kafka-triggered function.

use crate::domain::correlation::KAFKA_HEADER;
use crate::domain::events::MessageEvent;
use crate::ports::bus::Record;
use crate::{Error, Result};
use aws_lambda_events::event::kafka::{KafkaEvent, KafkaRecord};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Decodes one record; the `correlation_id` header fills in a message that lacks one.
pub fn decode(record: &KafkaRecord) -> std::result::Result<MessageEvent, String> {
    let mut event: MessageEvent = decode_json(record, "a message event")?;
    let correlation_id = event.correlation_id_mut();
    if correlation_id.is_empty() {
        if let Some(id) = header(record, KAFKA_HEADER) {
            *correlation_id = id;
        }
    }
    Ok(event)
}

/// Decodes one record's JSON value (base64 in Lambda's shape); `what` names it in the reason.
pub fn decode_json<T: serde::de::DeserializeOwned>(record: &KafkaRecord, what: &str) -> std::result::Result<T, String> {
    let encoded = record.value.as_deref().ok_or("record has no value")?;
    let bytes = BASE64
        .decode(encoded)
        .map_err(|e| format!("value is not base64: {e}"))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("value is not {what}: {e}"))
}

/// Lambda delivers header values as arrays of signed bytes.
pub fn header(record: &KafkaRecord, name: &str) -> Option<String> {
    record
        .headers
        .iter()
        .find_map(|h| h.get(name))
        .map(|bytes| bytes.iter().map(|b| *b as u8).collect::<Vec<u8>>())
        .and_then(|bytes| String::from_utf8(bytes).ok())
}

/// One record in the JSON form Lambda receives (key and value base64, headers as signed bytes).
fn lambda_record(record: &Record) -> Value {
    let headers: Vec<Value> = record
        .headers
        .iter()
        .map(|(name, value)| {
            let bytes: Vec<i8> = value.iter().map(|b| *b as i8).collect();
            json!({ name: bytes })
        })
        .collect();
    json!({
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp": record.timestamp_ms,
        "timestampType": "CREATE_TIME",
        "key": record.key.as_ref().map(|k| BASE64.encode(k)),
        "value": BASE64.encode(&record.payload),
        "headers": headers,
    })
}

/// A batch as Lambda's event source mapping delivers it, grouped `"topic-partition"` → records; the
/// local bridge invokes functions with it, and unit tests build their events with it.
pub fn kafka_event((event_source, bootstrap_servers): (&str, String), batch: &[Record]) -> Result<KafkaEvent> {
    let mut records: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for record in batch {
        records
            .entry(format!("{}-{}", record.topic, record.partition))
            .or_default()
            .push(lambda_record(record));
    }
    serde_json::from_value(json!({
        "eventSource": event_source,
        "bootstrapServers": bootstrap_servers,
        "records": records,
    }))
    .map_err(|e| Error::Internal(format!("building KafkaEvent: {e}")))
}

/// A one-partition `KafkaEvent` of JSON values on `topic`, as AWS's event source mapping would deliver
/// them; for handler tests that run without a broker.
pub fn sample_event(topic: &str, values: &[Value]) -> KafkaEvent {
    let records: Vec<Record> = values
        .iter()
        .zip(0..)
        .map(|(value, offset)| Record {
            topic: topic.to_owned(),
            partition: 0,
            offset,
            timestamp_ms: 0,
            key: None,
            payload: value.to_string().into_bytes(),
            headers: Vec::new(),
        })
        .collect();
    kafka_event(("aws:kafka", String::new()), &records).expect("records always form an event")
}
