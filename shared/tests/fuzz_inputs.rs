//! Property tests of the parsers that read untrusted input: client frames, the typed events inside them,
//! and the search box language. Whatever arrives, they answer with a client error or a value — never a
//! panic, never a server fault. CI runs the default 256 cases per property; `PROPTEST_CASES=100000 cargo
//! test -p caas-shared --test fuzz_inputs` is the long run (figures in docs/reliability.md).

use caas_shared::domain::protocol::{ClientEvent, ClientFrame};
use proptest::prelude::*;
use serde_json::{json, Value};

/// Every event type the protocol knows, plus near misses.
const KINDS: &[&str] = &[
    "ping",
    "auth",
    "conversation.create",
    "conversation.list",
    "conversation.members",
    "conversation.members.add",
    "conversation.members.remove",
    "conversation.leave",
    "conversation.update",
    "conversation.subscribe",
    "conversation.history",
    "read.mark",
    "typing.start",
    "typing.stop",
    "presence.subscribe",
    "message.send",
    "message.edit",
    "message.delete",
    "message.forward",
    "message.replies",
    "reaction.add",
    "reaction.remove",
    "message.Send",
    "",
    "__proto__",
];

/// Field names the payloads use, so random objects often hit real fields with wrong values.
const FIELDS: &[&str] = &[
    "conversation_id",
    "client_msg_id",
    "text",
    "since_seq",
    "epoch",
    "user_ids",
    "member_ids",
    "message_id",
    "emoji",
    "kind",
    "name",
    "limit",
    "after_seq",
    "before_seq",
    "seq",
    "role",
    "attachments",
    "reply_to",
    "source_conversation_id",
    "user_id",
];

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,40}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::from),
            prop::collection::vec((prop::sample::select(FIELDS), inner), 0..8)
                .prop_map(|pairs| { Value::Object(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()) }),
        ]
    })
}

proptest! {
    #[test]
    fn any_text_frame_parses_or_is_refused_without_panicking(text in ".{0,400}") {
        if let Ok(frame) = ClientFrame::parse(&text) {
            if let Err(e) = ClientEvent::from_frame(&frame) {
                prop_assert!(!e.is_server_fault(), "{e}");
            }
        }
    }

    #[test]
    fn any_payload_for_any_event_type_is_typed_or_refused_as_a_client_error(
        kind in prop::sample::select(KINDS),
        data in json_value(),
        id in proptest::option::of(".{0,20}"),
    ) {
        let text = json!({"type": kind, "id": id, "data": data}).to_string();
        let frame = ClientFrame::parse(&text).expect("an object with a type is a frame");
        if let Err(e) = ClientEvent::from_frame(&frame) {
            prop_assert!(!e.is_server_fault(), "{e}");
            prop_assert!(!e.public_message().is_empty());
        }
    }

    #[test]
    fn truncated_valid_frames_are_refused_cleanly(cut in 0usize..120) {
        let text = json!({"type": "message.send", "id": "r1",
            "data": {"conversation_id": "c", "client_msg_id": "m", "text": "héllo wörld"}}).to_string();
        let end = text.char_indices().map(|(i, _)| i).take_while(|i| *i <= cut).last().unwrap_or(0);
        if let Err(e) = ClientFrame::parse(&text[..end]) {
            prop_assert!(!e.is_server_fault());
        }
    }
}

#[cfg(feature = "search")]
proptest! {
    #[test]
    fn any_search_box_text_parses_into_bounded_clauses_or_is_refused(query in ".{0,300}") {
        match caas_shared::ports::search::query::parse(&query) {
            Ok(clauses) => prop_assert!(!clauses.is_empty() && clauses.len() <= 16),
            Err(e) => prop_assert!(!e.is_server_fault(), "{e}"),
        }
    }

    #[test]
    fn quotes_and_stars_never_break_the_search_parser(query in "[\"* a-zあ-ん]{0,80}") {
        if let Err(e) = caas_shared::ports::search::query::parse(&query) {
            prop_assert!(!e.is_server_fault(), "{e}");
        }
    }
}
