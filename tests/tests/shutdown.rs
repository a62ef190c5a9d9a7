//! SIGTERM makes a socket node close every connection with a close frame (1001) and exit cleanly.

use caas_e2e::{Client, Platform};
use futures_util::StreamExt;
use std::time::Duration;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_connections_with_a_close_frame() {
    let mut platform = Platform::start("shutdown", 1);
    let http = reqwest::Client::new();
    let app = platform.create_app(&http).await;
    let alice = platform.token(&http, &app, "alice").await;
    let mut client = Client::connect(&platform.socket_urls[0], alice["token"].as_str().unwrap(), "shutdown").await;

    let terminator = std::thread::spawn(move || {
        let clean = platform.terminate("node1");
        (clean, platform)
    });
    let close = loop {
        let frame = tokio::time::timeout(Duration::from_secs(30), client.socket.next())
            .await
            .expect("no close frame within 30 s")
            .expect("stream ended without a close frame")
            .expect("socket error");
        if let Message::Close(frame) = frame {
            break frame;
        }
    };
    assert_eq!(close.map(|f| f.code), Some(CloseCode::Away));
    let (clean, _platform) = terminator.join().unwrap();
    assert!(clean, "the node did not exit cleanly after SIGTERM");
}
