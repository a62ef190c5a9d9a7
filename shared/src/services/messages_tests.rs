//! The send path when the cache fails around the moment the bus takes a message.

use super::*;
use crate::domain::events::EventHeaders;
use crate::domain::model::{App, Conversation, ConversationKind, Member};
use crate::ports::bus::{Consumer, MemoryBus};
use crate::ports::cache::{MemoryCache, SequenceCache};
use crate::ports::store::{AppStore, ConversationStore, MemoryStore, MessageStore};
use crate::services::sequencing::RESERVATION_BLOCK;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A bus whose every publish on `caas.messages` is followed by the cache going down: what a Redis
/// crash between a send's publish and its bookkeeping looks like from the send path.
struct CacheDiesAfterPublish {
    bus: MemoryBus,
    cache: Arc<MemoryCache>,
    published: AtomicUsize,
}

#[async_trait::async_trait]
impl Bus for CacheDiesAfterPublish {
    fn source(&self) -> (&'static str, String) {
        self.bus.source()
    }

    async fn ensure_topics(&self, topics: &[&str]) -> Result<()> {
        self.bus.ensure_topics(topics).await
    }

    async fn publish(&self, topic: &str, key: &str, headers: &EventHeaders, payload: &[u8]) -> Result<()> {
        self.bus.publish(topic, key, headers, payload).await?;
        if topic == topics::MESSAGES {
            self.published.fetch_add(1, Ordering::Relaxed);
            self.cache.go_down();
        }
        Ok(())
    }

    async fn group_consumer(&self, topic: &str, group: &str) -> Result<Box<dyn Consumer>> {
        self.bus.group_consumer(topic, group).await
    }

    async fn tail(&self, topic: &str) -> Result<Box<dyn Consumer>> {
        self.bus.tail(topic).await
    }
}

fn draft(client_msg_id: &str) -> Draft {
    Draft {
        conversation_id: "c".into(),
        client_msg_id: client_msg_id.into(),
        text: "hello".into(),
        reply_to: None,
        forwarded_from: None,
        attachment_ids: Vec::new(),
    }
}

/// The store with the app `app` and the group `c` of alice (owner) and bob.
async fn app_with_alice_and_bob_in_c(store: &MemoryStore) {
    store
        .insert_app(&App::new("app".into(), "app".into(), String::new(), 1, "corr".into()))
        .await
        .unwrap();
    let conversation = Conversation {
        id: "c".into(),
        app_id: "app".into(),
        kind: ConversationKind::Group,
        name: None,
        created_by: "alice".into(),
        member_ids: vec!["alice".into(), "bob".into()],
        epoch: "e".into(),
        created_at: 1,
        correlation_id: "corr".into(),
    };
    let members = [
        Member::new(&conversation, "alice", Role::Owner),
        Member::new(&conversation, "bob", Role::Member),
    ];
    store.create_conversation(&conversation, &members).await.unwrap();
}

#[tokio::test]
async fn a_send_the_bus_took_is_accepted_even_if_the_cache_dies_right_after() {
    let (store, cache) = (MemoryStore::new(), Arc::new(MemoryCache::new()));
    let bus = CacheDiesAfterPublish {
        bus: MemoryBus::new(1),
        cache: Arc::clone(&cache),
        published: AtomicUsize::new(0),
    };
    bus.ensure_topics(&[topics::MESSAGES]).await.unwrap();
    app_with_alice_and_bob_in_c(&store).await;
    cache.ensure_sequence("app", "c", 0).await.unwrap();
    let settings = AppSettingsCache::default();
    let messages = Messages {
        store: &store,
        cache: &*cache,
        bus: &bus,
        settings: &settings,
    };
    let alice = Caller {
        app_id: "app",
        user_id: "alice",
        correlation_id: "corr",
    };

    // The bus has the message, then the cache is gone before the window entry and the claim state
    // are written. Answering an error here would make the client retry into a cache that forgot the
    // claim, and the retry would be stored as a second message.
    let sent = messages.send(alice, draft("c1")).await.expect("accepted");
    assert_eq!(
        (sent.reply["status"].as_str(), sent.reply["seq"].as_i64()),
        (Some("accepted"), Some(1))
    );
    assert!(sent.notice.is_some(), "subscribers are told");

    // The cache restarts empty: the next send gets a seq above every one that may be in use.
    cache.restart_empty();
    let next = messages.send(alice, draft("c2")).await.expect("accepted");
    assert!(next.reply["seq"].as_i64().unwrap() > RESERVATION_BLOCK);
    assert_eq!(bus.published.load(Ordering::Relaxed), 2, "each send published once");
}

#[tokio::test]
async fn a_message_takes_at_most_so_many_distinct_reactions() {
    let (store, cache, bus) = (MemoryStore::new(), MemoryCache::new(), MemoryBus::new(1));
    bus.ensure_topics(&[topics::MESSAGES]).await.unwrap();
    app_with_alice_and_bob_in_c(&store).await;
    let settings = AppSettingsCache::default();
    let messages = Messages {
        store: &store,
        cache: &cache,
        bus: &bus,
        settings: &settings,
    };
    let alice = Caller {
        app_id: "app",
        user_id: "alice",
        correlation_id: "corr",
    };
    let sent = messages.send(alice, draft("m")).await.unwrap();
    let message_id = sent.reply["message_id"].as_str().unwrap().to_owned();
    let message = Message {
        id: message_id.clone(),
        app_id: "app".into(),
        conversation_id: "c".into(),
        seq: sent.reply["seq"].as_i64().unwrap(),
        sender_id: "alice".into(),
        client_msg_id: "m".into(),
        text: "hello".into(),
        created_at: 1,
        correlation_id: "corr".into(),
        ..Default::default()
    };
    store.insert_messages(&[message]).await.unwrap();
    // Persisted reactions with every distinct emoji the limit allows.
    let reactions: Vec<Reaction> = (0..limits::MAX_DISTINCT_REACTIONS)
        .map(|n| Reaction {
            id: Reaction::id_for(&message_id, "bob", &format!("e{n}")),
            app_id: "app".into(),
            conversation_id: "c".into(),
            message_id: message_id.clone(),
            user_id: "bob".into(),
            emoji: format!("e{n}"),
            active: true,
            version: 1,
            correlation_id: "corr".into(),
        })
        .collect();
    store.apply_reactions(&reactions).await.unwrap();
    let react = |emoji: &str, active| {
        let request = ReactionRequest {
            conversation_id: "c".into(),
            message_id: message_id.clone(),
            emoji: emoji.into(),
        };
        messages.react(alice, request, active)
    };
    let refused = react("new", true)
        .await
        .expect_err("one more distinct emoji is refused");
    assert_eq!(refused.code(), "limit_exceeded");
    assert!(react("e7", true).await.is_ok(), "one already there is fine");
    assert!(react("new", false).await.is_ok(), "removing never is refused");
}
