//! Search on the real stack: messages sent over the WebSocket become searchable through the search
//! function (via Kafka → index-messages), edits change what matches, deletions remove matches, and
//! nobody outside a conversation (another member of the app, or another app) ever sees its messages.

use caas_e2e::{ok, Client, Platform};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

struct Search<'a> {
    http: reqwest::Client,
    base: &'a str,
}

impl Search<'_> {
    async fn get(&self, token: Option<&Value>, query: &[(&str, &str)]) -> (u16, Value) {
        let mut request = self
            .http
            .get(format!("{}/api/v1/search/messages", self.base))
            .query(query);
        if let Some(token) = token {
            request = request.bearer_auth(token["token"].as_str().unwrap());
        }
        let response = request.send().await.unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }

    /// The ids of the hits for `q`, once they equal `expected` (indexing is asynchronous).
    async fn until(&self, token: &Value, query: &[(&str, &str)], expected: &[&str]) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (status, body) = self.get(Some(token), query).await;
            assert_eq!(status, 200, "{body}");
            let ids: Vec<&str> = body["hits"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| h["message_id"].as_str().unwrap())
                .collect();
            if ids == expected {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "{query:?}: wanted {expected:?}, still {body}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Asserts that `q` finds nothing for this caller; called once the index holds what it could match.
    async fn never(&self, token: &Value, query: &[(&str, &str)]) {
        let (status, body) = self.get(Some(token), query).await;
        assert_eq!((status, &body["hits"]), (200, &json!([])), "{query:?}: {body}");
    }
}

async fn send(client: &mut Client, conversation_id: &str, text: &str) -> String {
    let data = json!({"conversation_id": conversation_id, "client_msg_id": text, "text": text});
    ok(&client.call("message.send", data).await)["message_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sent_edited_and_deleted_messages_are_searchable_only_by_members() {
    // This test polls until indexing caught up; the per-user rate has its own test below.
    let platform = Platform::start_with("search", 1, &[("CAAS_SEARCH_PER_USER_PER_MINUTE", "100000")]);
    let search = Search {
        http: reqwest::Client::new(),
        base: &platform.gateway_url,
    };
    let app = platform.create_app(&search.http).await;
    let other_app = platform.create_app(&search.http).await;
    let (alice, bob, carol) = (
        platform.token(&search.http, &app, "alice").await,
        platform.token(&search.http, &app, "bob").await,
        platform.token(&search.http, &app, "carol").await,
    );
    let stranger = platform.token(&search.http, &other_app, "stranger").await;
    let strangers_friend = platform.token(&search.http, &other_app, "friend").await;
    let url = &platform.socket_urls[0];
    let mut a = Client::connect(url, alice["token"].as_str().unwrap(), "search-alice").await;
    let mut s = Client::connect(url, stranger["token"].as_str().unwrap(), "search-stranger").await;

    let conversation = a.create_group(&[&bob]).await;
    let lunch = send(&mut a, &conversation, "Lunch at the Italian place tomorrow?").await;
    let beijing = send(&mut a, &conversation, "我们明天在北京见面").await;
    let notes = send(&mut a, &conversation, "The release notes are ready").await;
    // The same words in another app's conversation must stay in that app.
    let elsewhere = s.create_group(&[&strangers_friend]).await;
    let foreign = send(&mut s, &elsewhere, "Italian place release notes 北京").await;

    // Sent over the WebSocket → searchable by a member, with highlights.
    let found = search.until(&bob, &[("q", "italian")], &[&lunch]).await;
    let hit = &found["hits"][0];
    assert_eq!(hit["conversation_id"], conversation.as_str());
    assert_eq!(hit["sender_id"], alice["user"]["id"]);
    assert_eq!(hit["highlight"], "Lunch at the <mark>Italian</mark> place tomorrow?");
    assert_eq!(found["next_cursor"], Value::Null);
    // CJK by a two-character query; phrases and prefixes.
    let cjk = search.until(&bob, &[("q", "北京")], &[&beijing]).await;
    assert_eq!(cjk["hits"][0]["highlight"], "我们明天在<mark>北京</mark>见面");
    search.until(&bob, &[("q", "\"italian place\"")], &[&lunch]).await;
    search.until(&bob, &[("q", "tomor*")], &[&lunch]).await;
    search.until(&bob, &[("q", "\"place italian\"")], &[]).await;
    // Filters narrow, and paging hands out a cursor.
    let everything = [("q", "the"), ("sort", "recent"), ("limit", "1")];
    let first = search.until(&bob, &everything, &[&notes]).await;
    let cursor = first["next_cursor"].as_str().expect("a second page").to_owned();
    let next = [
        ("q", "the"),
        ("sort", "recent"),
        ("limit", "1"),
        ("cursor", cursor.as_str()),
    ];
    search.until(&bob, &next, &[&lunch]).await;
    let bob_id = bob["user"]["id"].as_str().unwrap();
    search
        .until(&bob, &[("q", "italian"), ("sender_id", bob_id)], &[])
        .await;
    search
        .until(&bob, &[("q", "italian"), ("has_attachment", "true")], &[])
        .await;
    search.until(&bob, &[("q", "italian"), ("to", "1000")], &[]).await;

    // An edit changes what matches.
    ok(&a
        .call(
            "message.edit",
            json!({"conversation_id": conversation, "message_id": lunch, "text": "Dinner at the Thai place"}),
        )
        .await);
    search.until(&bob, &[("q", "thai")], &[&lunch]).await;
    search.until(&bob, &[("q", "italian")], &[]).await;

    // A deletion removes the message from search.
    ok(&a
        .call(
            "message.delete",
            json!({"conversation_id": conversation, "message_id": notes}),
        )
        .await);
    search.until(&bob, &[("q", "release")], &[]).await;

    // The stranger's own message is indexed in its own app …
    search.until(&stranger, &[("q", "release")], &[&foreign]).await;
    // … and nobody else sees across the boundaries, even when naming the conversation.
    search.never(&alice, &[("q", "release")]).await;
    search.never(&carol, &[("q", "thai")]).await;
    search.never(&carol, &[("q", "北京")]).await;
    search.never(&stranger, &[("q", "thai")]).await;
    for (outsider, conversation_id) in [
        (&carol, &conversation),
        (&stranger, &conversation),
        (&alice, &elsewhere),
    ] {
        let (status, body) = search
            .get(Some(outsider), &[("q", "thai"), ("conversation_id", conversation_id)])
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (403, Some("forbidden")),
            "{body}"
        );
    }

    // Bad requests get a clear JSON error.
    for (token, query, status, code) in [
        (None, vec![("q", "thai")], 401, "unauthorized"),
        (Some(&bob), vec![], 400, "validation_failed"),
        (Some(&bob), vec![("q", "\"open")], 400, "validation_failed"),
        (
            Some(&bob),
            vec![("q", "thai"), ("app_id", "x")],
            400,
            "validation_failed",
        ),
        (
            Some(&bob),
            vec![("q", "thai"), ("limit", "1000")],
            400,
            "validation_failed",
        ),
        (
            Some(&bob),
            vec![("q", "thai"), ("cursor", "nope")],
            400,
            "validation_failed",
        ),
    ] {
        let (got, body) = search.get(token, &query).await;
        assert_eq!(
            (got, body["error"]["code"].as_str()),
            (status, Some(code)),
            "{query:?}: {body}"
        );
        assert!(body["error"]["correlation_id"].is_string(), "{body}");
    }
}

/// Every search can walk a term dictionary all tenants share: one user's searches are rate-limited
/// (`CAAS_SEARCH_PER_USER_PER_MINUTE`), with `rate_limited` and the time to wait, and other users keep theirs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_users_searches_are_rate_limited() {
    let platform = Platform::start_with("search_rate", 0, &[("CAAS_SEARCH_PER_USER_PER_MINUTE", "3")]);
    let search = Search {
        http: reqwest::Client::new(),
        base: &platform.gateway_url,
    };
    let app = platform.create_app(&search.http).await;
    let (alice, bob) = (
        platform.token(&search.http, &app, "alice").await,
        platform.token(&search.http, &app, "bob").await,
    );
    for _ in 0..3 {
        let (status, body) = search.get(Some(&alice), &[("q", "北")]).await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, body) = search.get(Some(&alice), &[("q", "北")]).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");
    let wait = body["error"]["retry_after_ms"].as_i64().unwrap_or_default();
    assert!((1..=60_000).contains(&wait), "the wait is in the error body: {body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("searches"),
        "{body}"
    );
    let (status, body) = search.get(Some(&bob), &[("q", "北")]).await;
    assert_eq!(status, 200, "another user searches on: {body}");
}
