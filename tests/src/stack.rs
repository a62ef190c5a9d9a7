//! The real servers the end-to-end tests run against: the running stack `local/test.sh` started (found
//! through its environment), or one a test starts for itself.

use crate::workspace_root;
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

const STACK_KEYS: [&str; 3] = ["CAAS_CACHE_URL", "CAAS_BUS_URL", "CAAS_STORE_URL"];

/// Connection settings of the real servers.
pub struct Stack {
    pub env: HashMap<String, String>,
    /// Set when this process started the stack and must stop it.
    owned_dir: Option<PathBuf>,
}

impl Stack {
    pub fn obtain() -> Self {
        if STACK_KEYS.iter().all(|k| std::env::var(k).is_ok()) {
            let env = std::env::vars().filter(|(k, _)| k.starts_with("CAAS_")).collect();
            return Self { env, owned_dir: None };
        }
        Self::start_own(&[])
    }

    /// A stack of this test's own, never the shared one: for tests that break servers. With
    /// `durable_kafka` the broker keeps its log on disk, so a restarted broker still has it.
    pub fn dedicated(durable_kafka: bool) -> Self {
        Self::start_own(&[(
            "CAAS_STACK_KAFKA_STORAGE",
            if durable_kafka { "sqlite" } else { "memory" },
        )])
    }

    fn start_own(env: &[(&str, &str)]) -> Self {
        let dir = workspace_root()
            .join("target")
            .join("e2e-stack")
            .join(uuid::Uuid::new_v4().simple().to_string());
        let status = Command::new("bash")
            .arg(workspace_root().join("local/stack.sh"))
            .arg("start")
            .arg(&dir)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .status()
            .expect("running local/stack.sh");
        assert!(status.success(), "local/stack.sh start failed");
        let env = std::fs::read_to_string(dir.join("env"))
            .expect("stack env file")
            .lines()
            .filter_map(|line| line.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.trim_matches('\'').to_owned()))
            .collect();
        Self {
            env,
            owned_dir: Some(dir),
        }
    }

    /// Kills one server of a stack this test started (`redis`, `tansu`, `secantus`, `s3s`) with
    /// SIGKILL, waits `down`, and starts it again on the same port with the data it had kept.
    pub fn restart(&self, server: &str, down: Duration) {
        let dir = self
            .owned_dir
            .as_ref()
            .expect("only a stack this test started can be restarted");
        let status = Command::new("bash")
            .arg(workspace_root().join("local/stack.sh"))
            .args(["restart", &dir.display().to_string(), server])
            .arg(format!("{:.1}", down.as_secs_f64()))
            .stdout(Stdio::null())
            .status()
            .expect("running local/stack.sh restart");
        assert!(status.success(), "restarting {server} failed");
    }

    /// Creates the platform's topics (deployed, they exist before any function runs; a test that runs a
    /// function without the platform's binaries, which would create them, needs this first).
    pub async fn ensure_topics(&self) {
        caas_shared::ports::bus::connect(self.get("CAAS_BUS_URL"))
            .await
            .expect("connecting to the bus")
            .ensure_topics(&caas_shared::domain::events::topics::ALL)
            .await
            .expect("creating the topics");
    }

    pub fn get(&self, key: &str) -> &str {
        self.env
            .get(key)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("{key} missing from the stack"))
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if let Some(dir) = &self.owned_dir {
            let _ = Command::new("bash")
                .arg(workspace_root().join("local/stack.sh"))
                .arg("stop")
                .arg(dir)
                .status();
        }
    }
}

/// A Redis Cluster of this test's own (three masters on loopback, started by `local/stack.sh
/// redis-cluster`), stopped on drop.
pub struct RedisCluster {
    /// `redis+cluster://host:port,…`, for `CAAS_CACHE_URL`.
    pub url: String,
    dir: PathBuf,
}

impl RedisCluster {
    pub fn start() -> Self {
        let dir = workspace_root()
            .join("target")
            .join("e2e-stack")
            .join(format!("cluster-{}", uuid::Uuid::new_v4().simple()));
        let status = Command::new("bash")
            .arg(workspace_root().join("local/stack.sh"))
            .arg("redis-cluster")
            .arg(&dir)
            .stdout(Stdio::null())
            .status()
            .expect("running local/stack.sh redis-cluster");
        assert!(status.success(), "starting the redis cluster failed");
        let env = std::fs::read_to_string(dir.join("env")).expect("cluster env file");
        let url = env
            .lines()
            .find_map(|line| line.strip_prefix("CAAS_CACHE_URL="))
            .expect("CAAS_CACHE_URL in the cluster env")
            .to_owned();
        Self { url, dir }
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(workspace_root().join("local/stack.sh"))
            .arg("stop")
            .arg(&self.dir)
            .status();
    }
}
