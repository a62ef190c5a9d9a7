//! Reading the records AWS's Kafka event source mapping delivers (`KafkaEvent`), shared by every
//! Kafka-triggered function.

use crate::correlation::KAFKA_HEADER;
use crate::events::MessageEvent;
use aws_lambda_events::event::kafka::KafkaRecord;
use base64::Engine;

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
    let bytes = base64::engine::general_purpose::STANDARD
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
