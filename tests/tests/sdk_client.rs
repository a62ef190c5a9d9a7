//! The TypeScript client SDK (`sdk/js`, built by `npm run build`) under Node against the real stack with
//! two socket nodes. The scenario script (`sdk/js/test-integration/burst.ts`) drives the SDK as an app
//! would; this test owns the platform and the faults it cannot cause itself:
//! - while another user sends a burst of 300 messages, the reader's socket is cut twice — once on the
//!   network (the script's own TCP relay), once by killing the node it is connected to — and the
//!   reader's app-level message list ends complete, in seq order, without duplicates;
//! - the sender's own burst, interrupted the same ways, ends with every message stored exactly once.
//!
//! The script prints one JSON object per line: `{"kill_node":"<socket url>"}` asks for that node to be
//! killed (SIGKILL) and started again, answered with a line on its stdin once done; `{"result":…}` ends
//! the scenario; anything else is progress, echoed.

use caas_e2e::{workspace_root, Platform};
use mongodb::bson::doc;
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const MESSAGES: usize = 300;

fn sdk_dir() -> PathBuf {
    workspace_root().join("sdk/js")
}

/// The SDK compiled by its own build (`local/test.sh` builds it before the tests; built here otherwise).
fn built_script() -> PathBuf {
    let script = sdk_dir().join("dist/test-integration/burst.js");
    if std::env::var("CAAS_SDK_BUILT").is_ok_and(|v| v == "1") && script.exists() {
        return script;
    }
    let status = Command::new("npm")
        .args(["run", "build"])
        .current_dir(sdk_dir())
        .status()
        .expect("running npm (install Node.js and run npm ci in sdk/js)");
    assert!(status.success(), "building the SDK failed");
    script
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_keeps_every_message_once_and_in_order_through_cut_sockets_and_a_killed_node() {
    let script = built_script();
    let mut platform = Platform::start("sdk_client", 2);
    let http = reqwest::Client::new();
    let (app_id, app_secret) = platform.create_app(&http).await;
    let node_of_url: Vec<(String, String)> = platform
        .socket_urls
        .iter()
        .enumerate()
        .map(|(i, url)| (url.clone(), format!("node{}", i + 1)))
        .collect();

    let mut child = Command::new("node")
        .arg(&script)
        .env("CAAS_API_URL", &platform.gateway_url)
        .env("CAAS_APP_ID", &app_id)
        .env("CAAS_APP_SECRET", &app_secret)
        .env("CAAS_SOCKET_URLS", platform.socket_urls.join(","))
        .env("CAAS_MESSAGES", MESSAGES.to_string())
        .current_dir(sdk_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("running node");
    let mut stdin = child.stdin.take().expect("stdin");
    let stdout = child.stdout.take().expect("stdout");
    let (lines_tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                return;
            }
        }
    });

    let mut kills = 0;
    let result = loop {
        let line = lines
            .recv_timeout(Duration::from_secs(180))
            .expect("the SDK scenario went silent for 3 minutes (or ended without a result)");
        let Ok(frame) = serde_json::from_str::<Value>(&line) else {
            println!("sdk: {line}");
            continue;
        };
        if let Some(url) = frame["kill_node"].as_str() {
            let label = node_of_url
                .iter()
                .find(|(known, _)| url.starts_with(known.as_str()))
                .map(|(_, label)| label.clone())
                .unwrap_or_else(|| panic!("the script named no node of this platform: {url}"));
            platform.kill(&label);
            tokio::time::sleep(Duration::from_millis(300)).await;
            platform.respawn(&label);
            wait_for_listener(url).await;
            kills += 1;
            writeln!(stdin, "killed {label}").expect("answering the script");
            stdin.flush().expect("answering the script");
            continue;
        }
        if frame.get("result").is_some() {
            break frame["result"].clone();
        }
        println!("sdk: {line}");
    };
    let status = child.wait().expect("node exit");
    assert!(status.success(), "the SDK scenario failed: {result}");
    assert!(
        kills >= 2,
        "the script asked for {kills} node kills; both phases kill one"
    );
    println!("sdk result: {result}");

    // The reader saw every message of the other user's burst once, in seq order.
    let reader = &result["reader"];
    let seqs: Vec<i64> = reader["seqs"]
        .as_array()
        .expect("reader seqs")
        .iter()
        .map(|s| s.as_i64().unwrap())
        .collect();
    assert_eq!(seqs.len(), MESSAGES, "{reader}");
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "in seq order, no duplicates: {seqs:?}"
    );
    assert_eq!(reader["texts_missing"], 0, "{reader}");
    assert!(reader["socket_cuts"].as_u64().unwrap() >= 2, "{reader}");

    // The sender's own interrupted burst: each message stored exactly once, all of them persisted.
    let sender = &result["sender"];
    assert!(sender["socket_cuts"].as_u64().unwrap() >= 2, "{sender}");
    assert_eq!(sender["failed"], 0, "{sender}");
    assert_eq!(sender["stored"]["messages"], MESSAGES, "{sender}");
    let conversation_id = sender["conversation_id"].as_str().expect("conversation id");
    let messages = platform.mongo().await.collection::<mongodb::bson::Document>("messages");
    let filter = doc! {"app_id": &app_id, "conversation_id": conversation_id};
    // Persistence is asynchronous: the count may still be rising for a moment, never past the burst.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let stored = messages.count_documents(filter.clone()).await.unwrap() as usize;
        let distinct = messages.distinct("client_msg_id", filter.clone()).await.unwrap().len();
        assert!(stored <= MESSAGES, "{stored} messages stored for a burst of {MESSAGES}");
        if (stored, distinct) == (MESSAGES, MESSAGES) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the sender's burst: {stored} stored, {distinct} distinct client_msg_id (want {MESSAGES} once each)"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Waits until the node at `url` (`ws://host:port/ws`) accepts TCP connections again.
async fn wait_for_listener(url: &str) {
    let address = url
        .trim_start_matches("ws://")
        .split('/')
        .next()
        .expect("host:port")
        .to_owned();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(&address).await.is_err() {
        assert!(std::time::Instant::now() < deadline, "{url} did not come back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
