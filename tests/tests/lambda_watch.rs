//! `cargo lambda watch` serves the functions as Lambda would: the auth function answers through its
//! function URL, and persist-messages accepts the sample KafkaEvent kept in local/events/.

use caas_e2e::{cargo_lambda_path, free_port, workspace_root, KillOnDrop, Stack};
use mongodb::bson::doc;
use serde_json::{json, Value};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cargo_lambda_watch_serves_the_functions() {
    let stack = Stack::obtain();
    stack.ensure_topics().await;
    let port = free_port();
    let database = format!("e2e_watch_{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let path = cargo_lambda_path();
    let log_dir = workspace_root().join("target/e2e-logs").join(&database);
    std::fs::create_dir_all(&log_dir).unwrap();
    let log = std::fs::File::create(log_dir.join("watch.log")).unwrap();
    let _watch = KillOnDrop(
        Command::new("cargo")
            .args(["lambda", "watch", "-A", "127.0.0.1", "-P", &port.to_string()])
            .current_dir(workspace_root())
            .env("PATH", &path)
            .envs(&stack.env)
            .env("CAAS_STORE_DATABASE", &database)
            .env("CAAS_JWT_SECRET", "watch-smoke-test-secret-0123456789abcdef")
            .env("CAAS_ADMIN_TOKEN", "watch-admin")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting cargo lambda watch"),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "cargo lambda watch did not listen");
        std::thread::sleep(Duration::from_millis(100));
    }

    // The first call compiles the function, so it may take minutes.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(1200))
        .build()
        .unwrap();
    let response = http
        .post(format!("http://127.0.0.1:{port}/lambda-url/auth/api/v1/admin/apps"))
        .bearer_auth("watch-admin")
        .header("x-correlation-id", "watch-smoke")
        .json(&json!({"name": "watch"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["x-correlation-id"], "watch-smoke");
    let app: Value = response.json().await.unwrap();
    let response = http
        .post(format!("http://127.0.0.1:{port}/lambda-url/auth/api/v1/auth/sdk/token"))
        .json(&json!({"app_id": app["app_id"], "app_secret": "wrong", "user_external_id": "u"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);

    // The Kafka-triggered function, invoked with the sample event from the repository.
    let event = workspace_root().join("local/events/persist-messages.json");
    let output = Command::new("cargo")
        .args([
            "lambda",
            "invoke",
            "--invoke-address",
            "127.0.0.1",
            "--invoke-port",
            &port.to_string(),
        ])
        .arg("persist-messages")
        .arg("--data-file")
        .arg(&event)
        .current_dir(workspace_root())
        .env("PATH", &path)
        .output()
        .expect("cargo lambda invoke");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "invoke failed: {stdout} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_str(stdout.trim()).expect("the handler returns its batch report");
    assert_eq!(report["records"], 1);
    let client = mongodb::Client::with_uri_str(stack.get("CAAS_STORE_URL"))
        .await
        .unwrap();
    let stored = client
        .database(&database)
        .collection::<mongodb::bson::Document>("messages")
        .find_one(doc! {"client_msg_id": "sample-1"})
        .await
        .unwrap()
        .expect("the sample message is stored");
    assert_eq!(stored.get_str("correlation_id").unwrap(), "sample-correlation-id");
}
