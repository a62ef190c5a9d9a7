//! Bad input on the HTTP routes and the WebSocket gets a clear error and never crashes a process.

use caas_e2e::{Client, Platform};
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

async fn post(http: &reqwest::Client, url: &str, body: impl Into<reqwest::Body>, content_type: &str) -> (u16, Value) {
    let response = http
        .post(url)
        .header("content-type", content_type)
        .header("x-correlation-id", "bad-input")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    assert_eq!(response.headers()["x-correlation-id"], "bad-input");
    let body: Value = response.json().await.expect("error bodies are JSON");
    if status >= 400 {
        assert_eq!(body["error"]["correlation_id"], "bad-input", "{body}");
        assert!(
            body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{body}"
        );
    }
    (status, body)
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_and_websocket_refuse_bad_input_clearly() {
    let mut platform = Platform::start("bad_input", 1);
    let http = reqwest::Client::new();
    let json_type = "application/json";
    let apps = format!("{}/api/v1/admin/apps", platform.gateway_url);
    let token_url = format!("{}/api/v1/auth/sdk/token", platform.gateway_url);

    // Admin route: no token, wrong token.
    let (status, body) = post(&http, &apps, r#"{"name":"x"}"#, json_type).await;
    assert_eq!((status, code(&body)), (401, "unauthorized"));
    let response = http
        .post(&apps)
        .bearer_auth("wrong")
        .json(&json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let response = http
        .post(&apps)
        .bearer_auth(&platform.admin_token)
        .json(&json!({"name": ""}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);

    let app = platform.create_app(&http).await;
    let other_app = platform.create_app(&http).await;
    let token_body = |secret: &str, external: &str| {
        json!({"app_id": app.0, "app_secret": secret, "user_external_id": external}).to_string()
    };

    // Token route: each kind of bad request.
    let cases: Vec<(String, &str, u16, &str)> = vec![
        ("{not json".into(), json_type, 400, "invalid_json"),
        (String::new(), json_type, 400, "invalid_json"),
        (
            json!({"app_id": app.0}).to_string(),
            json_type,
            400,
            "validation_failed",
        ),
        (
            json!({"app_id": app.0, "app_secret": 5, "user_external_id": "u"}).to_string(),
            json_type,
            400,
            "validation_failed",
        ),
        (token_body(&app.1, ""), json_type, 400, "validation_failed"),
        (
            json!({"app_id": app.0, "app_secret": app.1, "user_external_id": "u", "display_name": "admin\u{202E}gnp.exe"})
                .to_string(),
            json_type,
            400,
            "validation_failed",
        ),
        (token_body("wrong-secret", "u"), json_type, 401, "unauthorized"),
        (
            json!({"app_id": "app_missing", "app_secret": app.1, "user_external_id": "u"}).to_string(),
            json_type,
            401,
            "unauthorized",
        ),
        (token_body(&other_app.1, "u"), json_type, 401, "unauthorized"),
        (token_body(&app.1, "u"), "text/plain", 400, "validation_failed"),
        (
            format!("{{\"pad\":\"{}\"}}", "x".repeat(100 * 1024)),
            json_type,
            413,
            "payload_too_large",
        ),
    ];
    for (body, content_type, expected_status, expected_code) in cases {
        let (status, reply) = post(&http, &token_url, body.clone(), content_type).await;
        assert_eq!(
            (status, code(&reply)),
            (expected_status, expected_code),
            "for body {:.80}",
            body
        );
    }
    let response = http
        .get(format!("{}/api/v1/nowhere", platform.gateway_url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let response = http.get(&token_url).send().await.unwrap();
    assert_eq!(response.status(), 405);
    let body: Value = response.json().await.unwrap();
    assert_eq!(code(&body), "method_not_allowed");

    // WebSocket: a wrong token is told why and disconnected.
    let url = &platform.socket_urls[0];
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("{url}?token=not-a-token"))
        .await
        .unwrap();
    let frame = socket.next().await.unwrap().unwrap();
    let error: Value = serde_json::from_str(frame.to_text().unwrap()).unwrap();
    assert_eq!(
        (error["type"].as_str(), error["data"]["code"].as_str()),
        (Some("error"), Some("unauthorized"))
    );
    assert!(matches!(socket.next().await, Some(Ok(Message::Close(_))) | None));

    // A token from the auth frame works (no token at the handshake).
    let alice = platform.token(&http, &app, "alice").await;
    let (mut socket, _) = tokio_tungstenite::connect_async(url.as_str()).await.unwrap();
    let auth = json!({"id": "a1", "type": "auth", "token": alice["token"]}).to_string();
    futures_util::SinkExt::send(&mut socket, Message::text(auth))
        .await
        .unwrap();
    let reply: Value = serde_json::from_str(socket.next().await.unwrap().unwrap().to_text().unwrap()).unwrap();
    assert_eq!(reply["ok"], true, "{reply}");
    drop(socket);

    let bob = platform.token(&http, &app, "bob").await;
    let carol = platform.token(&http, &app, "carol").await;
    let mallory = platform.token(&http, &other_app, "mallory").await;
    let mut a = Client::connect(url, alice["token"].as_str().unwrap(), "bad-a").await;
    let mut c = Client::connect(url, carol["token"].as_str().unwrap(), "bad-c").await;
    let mut m = Client::connect(url, mallory["token"].as_str().unwrap(), "bad-m").await;

    let created = a
        .call(
            "conversation.create",
            json!({"kind": "direct", "member_ids": [bob["user"]["id"]]}),
        )
        .await;
    assert_eq!(created["ok"], true);
    let conversation_id = created["data"]["id"].as_str().unwrap().to_owned();
    let send = |text: &str| json!({"conversation_id": conversation_id, "client_msg_id": "k1", "text": text});

    // Invalid JSON, not an object, unknown event, missing fields.
    a.send_raw("{oops").await;
    let reply = a.next_reply().await;
    assert_eq!((reply["ok"].as_bool(), code(&reply)), (Some(false), "invalid_json"));
    assert_eq!(reply["reply_to"], Value::Null);
    a.send_raw("[1,2]").await;
    assert_eq!(code(&a.next_reply().await), "validation_failed");
    let reply = a.call("message.teleport", json!({})).await;
    assert_eq!(code(&reply), "unknown_event");
    let reply = a
        .call("message.send", json!({"conversation_id": conversation_id}))
        .await;
    assert_eq!(code(&reply), "validation_failed");
    assert!(reply["error"]["message"].as_str().unwrap().contains("client_msg_id"));
    let reply = a.call("message.send", send("")).await;
    assert_eq!(code(&reply), "validation_failed");
    let reply = a.call("message.send", send(&"x".repeat(17 * 1024))).await;
    assert_eq!(code(&reply), "validation_failed");
    let reply = a
        .call("conversation.create", json!({"kind": "direct", "member_ids": []}))
        .await;
    assert_eq!(code(&reply), "validation_failed");
    let reply = a
        .call(
            "conversation.create",
            json!({"kind": "group", "member_ids": ["no-such-user"]}),
        )
        .await;
    assert_eq!(code(&reply), "not_found");
    // Another app's user cannot be added.
    let reply = a
        .call(
            "conversation.create",
            json!({"kind": "direct", "member_ids": [mallory["user"]["id"]]}),
        )
        .await;
    assert_eq!(code(&reply), "not_found");

    // A non-member of the same app may neither send nor subscribe.
    let reply = c.call("message.send", send("hi")).await;
    assert_eq!(code(&reply), "forbidden");
    let reply = c
        .call("conversation.subscribe", json!({"conversation_id": conversation_id}))
        .await;
    assert_eq!(code(&reply), "forbidden");
    // Another app does not even see that the conversation exists.
    let reply = m.call("message.send", send("hi")).await;
    assert_eq!(code(&reply), "not_found");
    let reply = m
        .call("conversation.subscribe", json!({"conversation_id": conversation_id}))
        .await;
    assert_eq!(code(&reply), "not_found");

    // After all that, the connection still works and no process died.
    let reply = a.call("message.send", send("still here")).await;
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(a.call("ping", json!({})).await["ok"], true);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        platform.all_alive(),
        "a platform process died; logs in {}",
        platform.log_dir().display()
    );
}
