//! Harness for end-to-end tests: the real servers (reused from the environment when `local/test.sh`
//! started them, otherwise started here through `local/stack.sh`) and the platform's own processes
//! (gateway, socket nodes, bridge) built from this workspace.

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::net::TcpStream as AsyncTcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

mod operator;
mod stack;
pub use operator::Operator;
pub use stack::{RedisCluster, Stack};

/// Resident memory of a process, in bytes (Linux `/proc`).
pub fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("process status");
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kib * 1024
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

fn wait_for_port(port: u16, what: &str, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited early with {status}; see its log");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} did not listen on {port}");
}

/// The platform's processes for one test, isolated by database name and consumer-group suffix.
pub struct Platform {
    pub stack: Stack,
    pub database: String,
    pub admin_token: String,
    pub gateway_url: String,
    pub socket_urls: Vec<String>,
    children: Vec<(String, Child)>,
    /// How each process was started (binary, environment), for [`Platform::respawn`].
    specs: HashMap<String, (String, Vec<(String, String)>)>,
    log_dir: PathBuf,
}

fn binary_dir() -> PathBuf {
    // Test executables live in <target>/<profile>/deps; the workspace binaries one level up.
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent()
        .and_then(Path::parent)
        .expect("target profile dir")
        .to_path_buf()
}

/// A workspace binary, built first unless `local/test.sh` already did.
pub fn workspace_binary(name: &str) -> PathBuf {
    build_binaries();
    binary_dir().join(name)
}

/// Builds the binaries the tests run, so a plain `cargo test` never exercises stale ones. `local/test.sh`
/// builds them before the tests and sets `CAAS_E2E_BINARIES_BUILT=1` to skip this.
fn build_binaries() {
    if std::env::var("CAAS_E2E_BINARIES_BUILT").is_ok_and(|v| v == "1") {
        return;
    }
    static BUILD: std::sync::Once = std::sync::Once::new();
    BUILD.call_once(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .current_dir(workspace_root())
            .args(["build", "--workspace", "--bins", "--quiet"])
            .status()
            .expect("running cargo build");
        assert!(status.success(), "building the platform binaries failed");
    });
}

impl Platform {
    pub fn start(name: &str, socket_nodes: usize) -> Self {
        Self::start_with(name, socket_nodes, &[])
    }

    /// [`Self::start`] with extra environment for every process (a test's own limits, say).
    pub fn start_with(name: &str, socket_nodes: usize, extra_env: &[(&str, &str)]) -> Self {
        Self::start_on(Stack::obtain(), name, socket_nodes, extra_env)
    }

    /// [`Self::start_with`] on a given stack (a [`Stack::dedicated`] one, to break its servers).
    pub fn start_on(stack: Stack, name: &str, socket_nodes: usize, extra_env: &[(&str, &str)]) -> Self {
        build_binaries();
        let run_id = uuid::Uuid::new_v4().simple().to_string();
        let database = format!("e2e_{name}_{}", &run_id[..8]);
        let log_dir = workspace_root().join("target").join("e2e-logs").join(&database);
        std::fs::create_dir_all(&log_dir).expect("log dir");
        let gateway_port = free_port();
        let node_ports: Vec<u16> = (0..socket_nodes).map(|_| free_port()).collect();
        let socket_urls: Vec<String> = node_ports.iter().map(|p| format!("ws://127.0.0.1:{p}/ws")).collect();
        let mut platform = Self {
            admin_token: format!("admin-{run_id}"),
            gateway_url: format!("http://127.0.0.1:{gateway_port}"),
            socket_urls: socket_urls.clone(),
            stack,
            database,
            children: Vec::new(),
            specs: HashMap::new(),
            log_dir,
        };
        let mut common: Vec<(String, String)> =
            platform.stack.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        common.extend([
            ("CAAS_STORE_DATABASE".into(), platform.database.clone()),
            ("CAAS_JWT_SECRET".into(), format!("jwt-secret-{run_id}-0123456789")),
            ("CAAS_ADMIN_TOKEN".into(), platform.admin_token.clone()),
            (
                "CAAS_SECRETS_KEY".into(),
                caas_shared::domain::sealing::SealingKey::generate_base64(),
            ),
            // The tests' webhook receivers listen on loopback over plain http.
            ("CAAS_WEBHOOKS_ALLOW_LOOPBACK_HTTP".into(), "1".into()),
            ("CAAS_SOCKET_URLS".into(), socket_urls.join(",")),
            ("CAAS_CONSUMER_GROUP_SUFFIX".into(), format!("-{run_id}")),
            (
                "CAAS_SEARCH_DIR".into(),
                platform.log_dir.join("search").display().to_string(),
            ),
            // The broker is shared with earlier tests: this run's fresh groups skip their records.
            (
                "CAAS_BRIDGE_SKIP_BEFORE_MS".into(),
                (caas_shared::now_ms() - 1_000).to_string(),
            ),
            ("RUST_LOG".into(), "info".into()),
            // A test client answers the native heartbeat's ping only while the test awaits its frames,
            // and a test may leave one unread for longer than the heartbeat's 45 s while it works
            // elsewhere (a browser answers pings by itself). The heartbeat's own test sets its own.
            ("CAAS_SOCKET_PING_INTERVAL_MS".into(), "600000".into()),
        ]);
        common.extend(extra_env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let gateway_env = [("CAAS_GATEWAY_BIND".to_owned(), format!("127.0.0.1:{gateway_port}"))];
        platform.spawn("caas-gateway", "gateway", &common, &gateway_env);
        platform.spawn("caas-bridge", "bridge", &common, &[]);
        for (index, port) in node_ports.iter().enumerate() {
            let env = [
                ("CAAS_SOCKET_BIND".to_owned(), format!("127.0.0.1:{port}")),
                ("CAAS_NODE_ID".to_owned(), format!("{run_id}-{index}")),
            ];
            platform.spawn("socket-node", &format!("node{}", index + 1), &common, &env);
        }
        let waits: Vec<(String, u16)> = std::iter::once(("gateway".to_owned(), gateway_port))
            .chain(
                node_ports
                    .iter()
                    .enumerate()
                    .map(|(i, p)| (format!("node{}", i + 1), *p)),
            )
            .collect();
        for (label, port) in waits {
            wait_for_port(port, &label, platform.child(&label));
        }
        platform
    }

    /// Starts one more gateway process (labelled `label`), as a second Lambda instance of every HTTP
    /// function would be, on the same platform; returns its URL once it listens.
    pub fn start_gateway(&mut self, label: &str) -> String {
        let (binary, env) = self.specs.get("gateway").cloned().expect("the platform's gateway");
        let port = free_port();
        let env: Vec<(String, String)> = env
            .into_iter()
            .filter(|(key, _)| key != "CAAS_GATEWAY_BIND")
            .chain([("CAAS_GATEWAY_BIND".to_owned(), format!("127.0.0.1:{port}"))])
            .collect();
        self.spawn(&binary, label, &env, &[]);
        wait_for_port(port, label, self.child(label));
        format!("http://127.0.0.1:{port}")
    }

    fn spawn(&mut self, binary: &str, label: &str, common: &[(String, String)], extra: &[(String, String)]) {
        let env: Vec<(String, String)> = common.iter().chain(extra).cloned().collect();
        self.specs.insert(label.to_owned(), (binary.to_owned(), env));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_dir.join(format!("{label}.log")))
            .expect("log file");
        let child = Command::new(binary_dir().join(binary))
            .envs(common.iter().chain(extra).map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {binary}: {e}"));
        self.children.push((label.to_owned(), child));
    }

    fn child(&mut self, label: &str) -> &mut Child {
        &mut self
            .children
            .iter_mut()
            .find(|(l, _)| l == label)
            .unwrap_or_else(|| panic!("no process labelled {label}"))
            .1
    }

    /// The process id of the process labelled `label` (`gateway`, `bridge`, `node1`, …).
    pub fn pid(&mut self, label: &str) -> u32 {
        self.child(label).id()
    }

    /// Sends SIGTERM to one process and waits (bounded) for it to exit; returns whether it exited cleanly.
    pub fn terminate(&mut self, label: &str) -> bool {
        signal_and_wait(self.child(label), "TERM")
    }

    /// Sends `signal` (`STOP`, `CONT`, …) to one process without waiting.
    pub fn signal(&mut self, label: &str, signal: &str) {
        let pid = self.pid(label).to_string();
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{signal} {label}");
    }

    /// Starts a stopped or killed process again, as it was first started (its log continues).
    pub fn respawn(&mut self, label: &str) {
        let (binary, env) = self
            .specs
            .get(label)
            .cloned()
            .unwrap_or_else(|| panic!("no process labelled {label}"));
        self.children.retain(|(l, _)| l != label);
        self.spawn(&binary, label, &env, &[]);
    }

    /// SIGKILL: the process dies at once, with no chance to close connections or flush anything.
    pub fn kill(&mut self, label: &str) {
        let child = self.child(label);
        child.kill().expect("kill -9");
        child.wait().expect("reaping the killed process");
    }

    pub fn log_dir(&self) -> &Path {
        &self.log_dir
    }

    /// True while every platform process is still running (bad input must never crash one).
    pub fn all_alive(&mut self) -> bool {
        self.children
            .iter_mut()
            .all(|(_, child)| matches!(child.try_wait(), Ok(None)))
    }

    pub async fn mongo(&self) -> mongodb::Database {
        let client = mongodb::Client::with_uri_str(self.stack.get("CAAS_STORE_URL"))
            .await
            .expect("mongo client");
        client.database(&self.database)
    }

    pub fn gateway(&self) -> Gateway {
        Gateway {
            url: self.gateway_url.clone(),
            admin_token: self.admin_token.clone(),
        }
    }

    pub async fn create_app(&self, http: &reqwest::Client) -> (String, String) {
        self.gateway().create_app(http).await
    }

    /// Gets an SDK token; returns the whole response body.
    pub async fn token(&self, http: &reqwest::Client, app: &(String, String), external_id: &str) -> Value {
        self.gateway().token(http, app, external_id).await
    }
}

/// Sends `signal` (`TERM`, `INT`, …) to a process and waits (bounded) for it to exit; returns whether it
/// exited cleanly.
pub fn signal_and_wait(child: &mut Child, signal: &str) -> bool {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(child.id().to_string())
        .status()
        .expect("kill");
    assert!(status.success(), "kill -{signal} failed");
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return status.success();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// The HTTP side of a running platform: what an app backend talks to.
pub struct Gateway {
    pub url: String,
    pub admin_token: String,
}

impl Gateway {
    pub async fn create_app(&self, http: &reqwest::Client) -> (String, String) {
        let response = http
            .post(format!("{}/api/v1/admin/apps", self.url))
            .bearer_auth(&self.admin_token)
            .json(&json!({"name": "e2e"}))
            .send()
            .await
            .expect("create app");
        assert_eq!(response.status(), 201);
        let body: Value = response.json().await.expect("app json");
        (
            body["app_id"].as_str().unwrap().to_owned(),
            body["app_secret"].as_str().unwrap().to_owned(),
        )
    }

    /// Gets an SDK token; returns the whole response body.
    pub async fn token(&self, http: &reqwest::Client, app: &(String, String), external_id: &str) -> Value {
        let response = http
            .post(format!("{}/api/v1/auth/sdk/token", self.url))
            .json(&json!({"app_id": app.0, "app_secret": app.1, "user_external_id": external_id}))
            .send()
            .await
            .expect("token request");
        assert_eq!(response.status(), 200, "token request failed");
        response.json().await.expect("token json")
    }
}

/// The embedded dev mode (`caas-dev`) as a newcomer runs it: one process, no server, nothing from the
/// real stack's environment.
pub struct DevMode {
    child: Child,
    pub gateway: Gateway,
    pub socket_url: String,
    pub log: PathBuf,
}

impl DevMode {
    /// Starts `caas-dev --data-dir data_dir` on free ports and waits until both ports listen.
    pub fn start(data_dir: &Path) -> Self {
        build_binaries();
        let (gateway_port, socket_port) = (free_port(), free_port());
        let log_dir = workspace_root().join("target").join("e2e-logs").join("dev-mode");
        std::fs::create_dir_all(&log_dir).expect("log dir");
        let log = log_dir.join(format!("{}.log", uuid::Uuid::new_v4().simple()));
        let file = std::fs::File::create(&log).expect("log file");
        let mut child = Command::new(binary_dir().join("caas-dev"))
            .arg("--data-dir")
            .arg(data_dir)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "info")
            .env("CAAS_GATEWAY_BIND", format!("127.0.0.1:{gateway_port}"))
            .env("CAAS_SOCKET_BIND", format!("127.0.0.1:{socket_port}"))
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log handle"))
            .stderr(file)
            .spawn()
            .expect("starting caas-dev");
        wait_for_port(gateway_port, "caas-dev gateway", &mut child);
        wait_for_port(socket_port, "caas-dev socket node", &mut child);
        // The ports are bound before the backends connect; the banner means everything is up.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while !std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("caas-dev is running")
        {
            assert!(
                std::time::Instant::now() < deadline,
                "caas-dev printed no banner; see {}",
                log.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            child,
            gateway: Gateway {
                url: format!("http://127.0.0.1:{gateway_port}"),
                admin_token: "dev-admin-token".into(),
            },
            socket_url: format!("ws://127.0.0.1:{socket_port}/ws"),
            log,
        }
    }

    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The process id of `caas-dev`.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Ctrl-C, as a developer would; returns whether it exited cleanly.
    pub fn interrupt(&mut self) -> bool {
        signal_and_wait(&mut self.child, "INT")
    }
}

impl Drop for DevMode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Platform {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub type Socket = WebSocketStream<MaybeTlsStream<AsyncTcpStream>>;

/// A test client speaking the documented frame protocol.
pub struct Client {
    pub socket: Socket,
    next_id: u64,
}

impl Client {
    /// Connects with `Authorization: Bearer` and an `x-correlation-id` header, and waits for `ready`.
    pub async fn connect(url: &str, token: &str, correlation_id: &str) -> Self {
        let mut request = url.into_client_request().expect("ws request");
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        request
            .headers_mut()
            .insert("x-correlation-id", correlation_id.parse().unwrap());
        let (socket, _) = tokio_tungstenite::connect_async(request).await.expect("ws connect");
        let mut client = Self { socket, next_id: 0 };
        let ready = client.next_json().await;
        assert_eq!(ready["type"], "ready", "first frame: {ready}");
        client
    }

    /// Connects with a token the node must refuse; returns the `data` of the `error` event it sends
    /// before closing.
    pub async fn refused_handshake(url: &str, token: &str) -> Value {
        let mut request = url.into_client_request().expect("ws request");
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        let (socket, _) = tokio_tungstenite::connect_async(request).await.expect("ws connect");
        let first = Self::from_socket(socket).next_json().await;
        assert_eq!(first["type"], "error", "first frame: {first}");
        first["data"].clone()
    }

    /// Waits for the server to close the connection; returns the close code (`None` when the socket
    /// ended without a close frame).
    pub async fn closed_with(&mut self) -> Option<u16> {
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match self.socket.next().await {
                    Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                    Some(Ok(_)) => continue,
                    _ => return None,
                }
            }
        })
        .await
        .expect("the connection was not closed")
    }

    /// Wraps an already connected socket (request ids start high to stay clear of the caller's own).
    pub fn from_socket(socket: Socket) -> Self {
        Self {
            socket,
            next_id: 1_000_000,
        }
    }

    pub async fn send_raw(&mut self, text: &str) {
        self.socket.send(Message::text(text.to_owned())).await.expect("ws send");
    }

    /// Sends a request and returns its id.
    pub async fn request(&mut self, kind: &str, data: Value) -> String {
        self.next_id += 1;
        let id = format!("r{}", self.next_id);
        self.send_raw(&json!({"id": id, "type": kind, "data": data}).to_string())
            .await;
        id
    }

    /// The next JSON frame (panics on close or after 60 s).
    pub async fn next_json(&mut self) -> Value {
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(60), self.socket.next())
                .await
                .expect("timed out waiting for a frame")
                .expect("socket closed")
                .expect("socket error");
            match frame {
                Message::Text(text) => return serde_json::from_str(text.as_str()).expect("frame json"),
                Message::Close(frame) => panic!("closed by server: {frame:?}"),
                _ => continue,
            }
        }
    }

    /// The next reply, whatever it answers, skipping events.
    pub async fn next_reply(&mut self) -> Value {
        loop {
            let frame = self.next_json().await;
            if frame.get("reply_to").is_some() {
                return frame;
            }
        }
    }

    /// Waits for the reply to `id`, skipping events.
    pub async fn reply(&mut self, id: &str) -> Value {
        loop {
            let frame = self.next_json().await;
            if frame["reply_to"] == id {
                return frame;
            }
        }
    }

    /// Sends a request and returns its reply.
    pub async fn call(&mut self, kind: &str, data: Value) -> Value {
        let id = self.request(kind, data).await;
        self.reply(&id).await
    }

    /// Creates a group named "g" with the users behind these token responses; returns its id.
    pub async fn create_group(&mut self, members: &[&Value]) -> String {
        let member_ids: Vec<&Value> = members.iter().map(|t| &t["user"]["id"]).collect();
        let created = ok(&self
            .call(
                "conversation.create",
                json!({"kind": "group", "name": "g", "member_ids": member_ids}),
            )
            .await);
        created["id"].as_str().unwrap().to_owned()
    }

    /// The `data` of the next event of `kind`, skipping other frames.
    pub async fn event(&mut self, kind: &str) -> Value {
        loop {
            let frame = self.next_json().await;
            if frame["type"] == kind {
                return frame["data"].clone();
            }
        }
    }
}

/// The data of a successful reply (panics with the reply otherwise).
pub fn ok(reply: &Value) -> Value {
    assert_eq!(reply["ok"], true, "{reply}");
    reply["data"].clone()
}

/// Asserts a failure reply with this error code.
pub fn refused(reply: &Value, code: &str) {
    assert_eq!(reply["ok"], false, "{reply}");
    assert_eq!(reply["error"]["code"], code, "{reply}");
}

/// PATH with the tools `local/stack.sh install` puts in `$CAAS_TOOLS_DIR/venv/bin` (cargo-lambda, and zig
/// from its wheel) in front.
pub fn cargo_lambda_path() -> String {
    let tools = std::env::var("CAAS_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/caas/tools"));
    let dir = tools.join("venv/bin");
    assert!(
        dir.join("cargo-lambda").exists(),
        "cargo-lambda missing: run `bash local/stack.sh install`"
    );
    format!("{}:{}", dir.display(), std::env::var("PATH").unwrap_or_default())
}

/// A child process that is killed (and reaped) when the test lets go of it, pass or fail.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
