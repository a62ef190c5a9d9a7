//! The conversations HTTP function through the local gateway, beside live socket clients: the same
//! rules and the same history as the socket, changes made over HTTP reach live connections, and every
//! bad request gets a clear JSON error.

use caas_e2e::{Client, Platform};
use serde_json::{json, Value};

struct Http<'a> {
    client: reqwest::Client,
    base: &'a str,
}

impl Http<'_> {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&Value>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token["token"].as_str().unwrap());
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversations_over_http_match_the_socket_and_reach_live_clients() {
    let platform = Platform::start("conversations_http", 1);
    let http = Http {
        client: reqwest::Client::new(),
        base: &platform.gateway_url,
    };
    let app = platform.create_app(&http.client).await;
    let other_app = platform.create_app(&http.client).await;
    let (alice, bob, carol) = (
        platform.token(&http.client, &app, "alice").await,
        platform.token(&http.client, &app, "bob").await,
        platform.token(&http.client, &app, "carol").await,
    );
    let stranger = platform.token(&http.client, &other_app, "stranger").await;
    let user = |token: &Value| token["user"]["id"].as_str().unwrap().to_owned();
    let mut b = Client::connect(&platform.socket_urls[0], bob["token"].as_str().unwrap(), "http-bob").await;
    let mut c = Client::connect(&platform.socket_urls[0], carol["token"].as_str().unwrap(), "http-carol").await;
    use reqwest::Method;

    // Create over HTTP; bob hears of it live.
    let (status, group) = http
        .call(
            Method::POST,
            "/api/v1/conversations",
            Some(&alice),
            Some(json!({"kind": "group", "name": "ops", "member_ids": [user(&bob)]})),
        )
        .await;
    assert_eq!(status, 201, "{group}");
    let id = group["id"].as_str().unwrap().to_owned();
    assert_eq!(b.event("conversation.created").await["id"], id.as_str());

    // Messages sent over the socket show in HTTP history exactly as in socket history.
    let subscribed = b.call("conversation.subscribe", json!({"conversation_id": id})).await;
    assert_eq!(subscribed["ok"], true);
    for n in 1..=3 {
        let sent = b
            .call(
                "message.send",
                json!({"conversation_id": id, "client_msg_id": format!("h{n}"), "text": format!("via socket {n}")}),
            )
            .await;
        assert_eq!(sent["ok"], true, "{sent}");
    }
    let (status, page) = http
        .call(
            Method::GET,
            &format!("/api/v1/conversations/{id}/messages?after_seq=1&limit=5"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(status, 200, "{page}");
    let texts: Vec<&str> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["via socket 2", "via socket 3"]);
    let socket_page = b
        .call(
            "conversation.history",
            json!({"conversation_id": id, "after_seq": 1, "limit": 5}),
        )
        .await;
    let socket_ids: Vec<&Value> = socket_page["data"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| &m["id"])
        .collect();
    let http_ids: Vec<&Value> = page["messages"].as_array().unwrap().iter().map(|m| &m["id"]).collect();
    assert_eq!(socket_ids, http_ids, "socket and HTTP history agree");

    // List with unread counts, then read.
    let (_, listed) = http
        .call(Method::GET, "/api/v1/conversations?limit=10", Some(&alice), None)
        .await;
    assert_eq!(listed["conversations"][0]["unread_count"], 3);
    let (status, read) = http
        .call(
            Method::POST,
            &format!("/api/v1/conversations/{id}/read"),
            Some(&alice),
            Some(json!({"seq": 3})),
        )
        .await;
    assert_eq!((status, read["seq"].as_i64()), (200, Some(3)));
    let (_, listed) = http
        .call(Method::GET, "/api/v1/conversations", Some(&alice), None)
        .await;
    assert_eq!(listed["conversations"][0]["unread_count"], 0);

    // Members over HTTP: carol joins (and hears of it live), then is removed and loses live delivery.
    let (status, _) = http
        .call(
            Method::POST,
            &format!("/api/v1/conversations/{id}/members"),
            Some(&alice),
            Some(json!({"member_ids": [user(&carol)]})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(c.event("conversation.joined").await["id"], id.as_str());
    let (_, members) = http
        .call(
            Method::GET,
            &format!("/api/v1/conversations/{id}/members"),
            Some(&carol),
            None,
        )
        .await;
    assert_eq!(members["members"].as_array().unwrap().len(), 3);
    let (status, renamed) = http
        .call(
            Method::PATCH,
            &format!("/api/v1/conversations/{id}"),
            Some(&alice),
            Some(json!({"name": "ops-2"})),
        )
        .await;
    assert_eq!((status, renamed["name"].as_str()), (200, Some("ops-2")));
    let (status, _) = http
        .call(
            Method::DELETE,
            &format!("/api/v1/conversations/{id}/members/{}", user(&carol)),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(c.event("conversation.removed").await["conversation_id"], id.as_str());

    // Clear errors: no token, a bad token, another app, a non-member, bad queries and bodies.
    let expect = |(status, body): (u16, Value), want_status: u16, want_code: &str| {
        assert_eq!(status, want_status, "{body}");
        assert_eq!(body["error"]["code"], want_code, "{body}");
        assert!(body["error"]["correlation_id"].is_string());
    };
    expect(
        http.call(Method::GET, "/api/v1/conversations", None, None).await,
        401,
        "unauthorized",
    );
    expect(
        http.call(
            Method::GET,
            "/api/v1/conversations",
            Some(&json!({"token": "not.a.jwt"})),
            None,
        )
        .await,
        401,
        "unauthorized",
    );
    expect(
        http.call(
            Method::GET,
            &format!("/api/v1/conversations/{id}"),
            Some(&stranger),
            None,
        )
        .await,
        404,
        "not_found",
    );
    expect(
        http.call(
            Method::GET,
            &format!("/api/v1/conversations/{id}/messages"),
            Some(&carol),
            None,
        )
        .await,
        403,
        "forbidden",
    );
    expect(
        http.call(
            Method::GET,
            &format!("/api/v1/conversations/{id}/messages?limit=abc"),
            Some(&alice),
            None,
        )
        .await,
        400,
        "validation_failed",
    );
    expect(
        http.call(
            Method::GET,
            &format!("/api/v1/conversations/{id}/messages?limit=5000"),
            Some(&alice),
            None,
        )
        .await,
        400,
        "validation_failed",
    );
    expect(
        http.call(
            Method::POST,
            "/api/v1/conversations",
            Some(&alice),
            Some(json!({"kind": "direct", "member_ids": []})),
        )
        .await,
        400,
        "validation_failed",
    );
    expect(
        http.call(
            Method::POST,
            &format!("/api/v1/conversations/{id}/members"),
            Some(&bob),
            Some(json!({"member_ids": [user(&carol)]})),
        )
        .await,
        403,
        "forbidden",
    );
}
