//! The load benchmark's CI-sized run (a few seconds, small sizes), so the tool never rots: every server
//! — the socket node on the real stack (with native and with Socket.IO clients), the plain Socket.IO
//! baseline, the Socket.IO + Redis adapter + kafkajs stack on the same Redis and broker, and the two floor
//! relays (fan-out only) — must take
//! every connection, deliver every message to every member and take every client back after a
//! reconnect storm; the persistence comparison must store what it produced.
//! Figures are printed, never asserted (these machines are shared and noisy).

use caas_e2e::{workspace_binary, workspace_root, Stack};
use serde_json::Value;
use std::process::Command;

#[test]
fn the_smoke_run_delivers_everything_on_every_server() {
    let stack = Stack::obtain();
    let run = uuid::Uuid::new_v4().simple().to_string();
    let dir = workspace_root()
        .join("target")
        .join("e2e-logs")
        .join(format!("load-bench-{run}"));
    std::fs::create_dir_all(&dir).unwrap();
    let output = Command::new(workspace_binary("load-bench"))
        .args(["--smoke", "--out"])
        .arg(dir.join("report"))
        .arg("--logs")
        .arg(&dir)
        .envs(&stack.env)
        .env("CAAS_STORE_DATABASE", format!("e2e_load_{}", &run[..8]))
        .output()
        .expect("running load-bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "load-bench failed: {}\n{stdout}\n(server logs in {})",
        String::from_utf8_lossy(&output.stderr),
        dir.display()
    );
    println!("{stdout}");
    assert!(stdout.contains("## Ours / floor (relay, no backends)\n"), "{stdout}");
    assert!(
        stdout.contains("## Ours / floor + Redis script + Kafka produce\n"),
        "{stdout}"
    );
    assert!(stdout.contains("## Ours / Socket.IO 4\n"), "{stdout}");
    assert!(stdout.contains("## Ours / Socket.IO 4 + Redis adapter"), "{stdout}");
    assert!(stdout.contains("## Socket.IO clients / native clients"), "{stdout}");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();

    let wanted = report["plan"]["idle"]["connections"].as_u64().unwrap();
    let idle = report["idle"].as_array().unwrap();
    assert_eq!(idle.len(), 3, "{idle:?}");
    for result in idle {
        assert_eq!(result["connections"].as_u64(), Some(wanted), "{result}");
        assert_eq!(result["failed"].as_u64(), Some(0), "{result}");
        assert!(result["rss_after_bytes"].as_u64() > Some(0), "{result}");
    }

    let fan_out = report["fan_out"].as_array().unwrap();
    let servers: Vec<&str> = fan_out.iter().filter_map(|r| r["flavor"].as_str()).collect();
    assert_eq!(
        servers,
        [
            "caas",
            "caas_socket_io",
            "socket_io",
            "floor",
            "socket_io_stack",
            "floor_backends"
        ],
        "{fan_out:?}"
    );
    for result in fan_out {
        let sent = result["sent"].as_u64().unwrap();
        assert!(sent > 0, "{result}");
        assert_eq!(
            result["acknowledged"].as_u64(),
            Some(sent),
            "every send acknowledged: {result}"
        );
        assert_eq!(
            result["deliveries"], result["expected_deliveries"],
            "nothing lost: {result}"
        );
        assert_eq!(result["errors"].as_u64(), Some(0), "{result}");
        assert!(result["latency_ms"]["max"].as_f64() > Some(0.0), "{result}");
    }

    let storm = report["storm"].as_array().unwrap();
    assert_eq!(storm.len(), 3, "{storm:?}");
    for result in storm {
        assert_eq!(result["failed"].as_u64(), Some(0), "{result}");
        assert_eq!(result["resubscribed"], result["clients"], "every client back: {result}");
    }

    let persist = &report["persist"];
    assert!(persist["persist_messages_per_sec"].as_f64() > Some(0.0), "{persist}");
    assert!(persist["naive_written"].as_u64() > Some(0), "{persist}");
}
