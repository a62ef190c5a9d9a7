//! The servers under test, started as separate processes so their memory and CPU can be read from
//! `/proc`: socket nodes (the workspace's `socket-node` binary, on the real Redis, Kafka and MongoDB of
//! the environment) and Socket.IO servers (`node bench/socketio/server.js`, alone or as the Redis-adapter
//! and Kafka stack on the same Redis and broker).

use super::client::Flavor;
use crate::error::{BenchError, Result};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Where the binaries and scripts the servers run from are.
#[derive(Clone, Debug)]
pub struct Programs {
    /// The `socket-node` binary (by default beside the running benchmark binary).
    pub socket_node: PathBuf,
    /// The `floor-relay` binary (beside the running benchmark binary).
    pub floor_relay: PathBuf,
    /// `bench/socketio/server.js`.
    pub socketio_server: PathBuf,
    /// A `node_modules` folder holding `socket.io`.
    pub socketio_modules: PathBuf,
    /// Server logs go here.
    pub log_dir: PathBuf,
    /// Variables every started process gets on top of ours (the JWT secret the benchmark signs with).
    pub env: Vec<(String, String)>,
    /// The Redis URL and Kafka bootstrap servers the Socket.IO stack uses (the socket node's own).
    pub socketio_stack_backends: Option<(String, String)>,
}

/// One server under test: a single process, or for [`Flavor::SocketIoStack`] several processes that
/// share rooms through Redis (clients are spread over them).
pub struct Server {
    pub flavor: Flavor,
    pub addrs: Vec<SocketAddr>,
    children: Vec<Child>,
}

/// Processes the Socket.IO stack runs as: the replaced system ran its servers behind a load balancer
/// with the Redis adapter between them.
const SOCKETIO_STACK_PROCESSES: usize = 2;

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn log_file(dir: &Path, name: &str) -> Result<Stdio> {
    Ok(std::fs::File::create(dir.join(name))?.into())
}

impl Server {
    /// Starts one server of `flavor`; `index` tells several apart in the log folder.
    pub async fn start(flavor: Flavor, programs: &Programs, index: usize) -> Result<Self> {
        std::fs::create_dir_all(&programs.log_dir)?;
        match flavor {
            Flavor::Caas | Flavor::CaasSocketIo => {
                let port = free_port()?;
                let addr = SocketAddr::from(([127, 0, 0, 1], port));
                let child = Command::new(&programs.socket_node)
                    .envs(programs.env.iter().cloned())
                    .env("CAAS_SOCKET_BIND", addr.to_string())
                    .env("CAAS_NODE_ID", format!("bench-{index}"))
                    .stdout(log_file(&programs.log_dir, &format!("socket-node-{index}.log"))?)
                    .stderr(log_file(&programs.log_dir, &format!("socket-node-{index}.err"))?)
                    .kill_on_drop(true)
                    .spawn()
                    .map_err(|e| BenchError::Failed(format!("{}: {e}", programs.socket_node.display())))?;
                let server = Self {
                    flavor,
                    addrs: vec![addr],
                    children: vec![child],
                };
                server.wait_until_listening().await?;
                Ok(server)
            }
            Flavor::Floor | Flavor::FloorBackends => {
                let port = free_port()?;
                let addr = SocketAddr::from(([127, 0, 0, 1], port));
                let mut command = Command::new(&programs.floor_relay);
                command.args(["--bind", &addr.to_string()]);
                if flavor == Flavor::FloorBackends {
                    let (redis, kafka) = programs.socketio_stack_backends.clone().ok_or_else(|| {
                        BenchError::Failed(
                            "the floor with backends needs Redis and Kafka (CAAS_CACHE_URL, CAAS_BUS_URL)".into(),
                        )
                    })?;
                    command.args(["--redis", &redis, "--kafka", &kafka]);
                }
                let child = command
                    .stdout(log_file(&programs.log_dir, &format!("{}-{index}.log", flavor.name()))?)
                    .stderr(log_file(&programs.log_dir, &format!("{}-{index}.err", flavor.name()))?)
                    .kill_on_drop(true)
                    .spawn()
                    .map_err(|e| BenchError::Failed(format!("{}: {e}", programs.floor_relay.display())))?;
                let server = Self {
                    flavor,
                    addrs: vec![addr],
                    children: vec![child],
                };
                server.wait_until_listening().await?;
                Ok(server)
            }
            Flavor::SocketIo => {
                let (child, addr) = start_socketio(programs, &format!("socketio-{index}"), &[]).await?;
                Ok(Self {
                    flavor,
                    addrs: vec![addr],
                    children: vec![child],
                })
            }
            Flavor::SocketIoStack => {
                let (redis, kafka) = programs.socketio_stack_backends.clone().ok_or_else(|| {
                    BenchError::Failed(
                        "the Socket.IO stack needs Redis and Kafka (CAAS_CACHE_URL, CAAS_BUS_URL)".into(),
                    )
                })?;
                // A topic of its own per start: the broker may hold an earlier run's.
                let topic = format!("socketio-stack-{}", uuid::Uuid::new_v4().simple());
                let env = [("REDIS_URL", redis), ("KAFKA_BROKERS", kafka), ("KAFKA_TOPIC", topic)];
                let mut server = Self {
                    flavor,
                    addrs: Vec::new(),
                    children: Vec::new(),
                };
                for process in 0..SOCKETIO_STACK_PROCESSES {
                    let name = format!("socketio-stack-{index}-{process}");
                    let (child, addr) = start_socketio(programs, &name, &env).await?;
                    server.children.push(child);
                    server.addrs.push(addr);
                }
                Ok(server)
            }
        }
    }

    async fn wait_until_listening(&self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if tokio::net::TcpStream::connect(self.addrs[0]).await.is_ok() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(BenchError::Failed(format!(
            "{} did not listen on {} within 60 s",
            self.flavor.label(),
            self.addrs[0]
        )))
    }

    /// Asks the server's processes to stop (SIGTERM, so a wrapper such as a profiler can write its output)
    /// and waits up to 20 s for each before killing it.
    pub async fn stop(self) {
        for mut child in self.children {
            if let Some(pid) = child.id() {
                let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status().await;
                if tokio::time::timeout(Duration::from_secs(20), child.wait())
                    .await
                    .is_ok()
                {
                    continue;
                }
            }
            let _ = child.kill().await;
        }
    }

    /// The process ids of the server's processes (while they run).
    pub fn pids(&self) -> Vec<u32> {
        self.children.iter().filter_map(Child::id).collect()
    }

    /// The resident memory and CPU time of all the server's processes together.
    pub fn usage(&self) -> Result<Usage> {
        let mut total: Option<Usage> = None;
        for child in &self.children {
            let pid = child
                .id()
                .ok_or_else(|| BenchError::Failed(format!("a {} process exited", self.flavor.label())))?;
            let usage = Usage::of(pid)?;
            total = Some(match total {
                None => usage,
                Some(sum) => Usage {
                    rss_bytes: sum.rss_bytes + usage.rss_bytes,
                    cpu_seconds: sum.cpu_seconds + usage.cpu_seconds,
                    at: usage.at,
                },
            });
        }
        total.ok_or_else(|| BenchError::Failed("no server process".into()))
    }
}

/// Starts `node bench/socketio/server.js` with `env` on top and waits for the port it prints.
async fn start_socketio(programs: &Programs, name: &str, env: &[(&str, String)]) -> Result<(Child, SocketAddr)> {
    let mut child = Command::new("node")
        .envs(programs.env.iter().cloned())
        .envs(env.iter().map(|(key, value)| (*key, value.as_str())))
        .arg(&programs.socketio_server)
        .env("NODE_PATH", &programs.socketio_modules)
        .env("PORT", "0")
        .stdout(Stdio::piped())
        .stderr(log_file(&programs.log_dir, &format!("{name}.err"))?)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| BenchError::Failed(format!("node: {e}")))?;
    let stdout = child.stdout.take().expect("piped");
    let mut lines = BufReader::new(stdout).lines();
    let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .map_err(|_| BenchError::Failed(format!("{name} did not start within 30 s")))??
        .ok_or_else(|| {
            BenchError::Failed(format!(
                "{name} exited; is socket.io installed? (see its .err log in {})",
                programs.log_dir.display()
            ))
        })?;
    let port = serde_json::from_str::<serde_json::Value>(&first)?["port"]
        .as_u64()
        .ok_or_else(|| BenchError::Failed(format!("unexpected output from {name}: {first}")))?;
    Ok((child, SocketAddr::from(([127, 0, 0, 1], port as u16))))
}

/// A process's resident memory and consumed CPU time at one moment.
#[derive(Clone, Copy, Debug)]
pub struct Usage {
    pub rss_bytes: u64,
    pub cpu_seconds: f64,
    pub at: Instant,
}

impl Usage {
    pub fn of(pid: u32) -> Result<Self> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let rss_kib: u64 = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|value| value.split_whitespace().next()?.parse().ok())
            .ok_or_else(|| BenchError::Failed(format!("no VmRSS for process {pid}")))?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
        // Fields after the parenthesised command name; utime and stime are the 12th and 13th of them.
        let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let ticks: Vec<u64> = after_name
            .split_whitespace()
            .skip(11)
            .take(2)
            .filter_map(|field| field.parse().ok())
            .collect();
        // Linux reports CPU time in USER_HZ ticks, 100 per second on every supported architecture.
        let cpu_seconds = ticks.iter().sum::<u64>() as f64 / 100.0;
        Ok(Self {
            rss_bytes: rss_kib * 1024,
            cpu_seconds,
            at: Instant::now(),
        })
    }

    /// CPU use between two readings, in cores (1.0 = one core busy).
    pub fn cores_since(&self, earlier: &Usage) -> f64 {
        let wall = self.at.duration_since(earlier.at).as_secs_f64();
        if wall <= 0.0 {
            return 0.0;
        }
        (self.cpu_seconds - earlier.cpu_seconds) / wall
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let usage = Usage::of(std::process::id()).unwrap();
        assert!(usage.rss_bytes > 1024 * 1024, "{usage:?}");
        let busy_until = Instant::now() + Duration::from_millis(300);
        while Instant::now() < busy_until {
            std::hint::black_box(0u64.wrapping_add(1));
        }
        let later = Usage::of(std::process::id()).unwrap();
        assert!(later.cpu_seconds > usage.cpu_seconds, "{usage:?} {later:?}");
    }
}
