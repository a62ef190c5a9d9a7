//! `caas-dev`: the whole platform in one process — the gateway with every HTTP function (port 3000),
//! a socket node (port 3002) and the function bridge — on in-memory drivers, so trying the product
//! needs no server. Every `CAAS_*` variable still applies: point it at `mongodb://`, `redis://` (and,
//! built with `--features kafka`, `kafka://`) to run the same process against real infrastructure.
//!
//! `--data-dir DIR` (or `CAAS_DEV_DATA_DIR`) keeps the store and the token-signing secret in `DIR`, so
//! a restart keeps apps, users, conversations, messages and issued tokens.

use caas_local::{Platform, StopSignal};
use caas_shared::config::Config;
use caas_shared::domain::sealing::SealingKey;
use socket_node::config::NodeSettings;
use socket_node::{server::Listener, Node};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::net::TcpListener;

const DEV_ADMIN_TOKEN: &str = "dev-admin-token";
const SECRET_FILE: &str = "jwt-secret";
/// The key sealing webhook secrets, kept in the data directory beside the JWT secret.
const SEALING_KEY_FILE: &str = "secrets-key";

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    caas_shared::runtime::telemetry::init_with_default("warn");
    let data_dir = data_dir()?;
    let gateway_listener = TcpListener::bind(env_or("CAAS_GATEWAY_BIND", "127.0.0.1:3000")).await?;
    let socket_listener = TcpListener::bind(env_or("CAAS_SOCKET_BIND", "127.0.0.1:3002")).await?;
    let api_url = format!("http://{}", gateway_listener.local_addr()?);
    let ws_url = format!("ws://{}/ws", socket_listener.local_addr()?);

    let mut defaults = HashMap::from([
        ("CAAS_BUS_URL", "memory://".to_owned()),
        ("CAAS_CACHE_URL", "memory://".to_owned()),
        ("CAAS_ADMIN_TOKEN", DEV_ADMIN_TOKEN.to_owned()),
        ("CAAS_SOCKET_URLS", ws_url.clone()),
        (
            "CAAS_STORE_URL",
            match &data_dir {
                Some(dir) => format!("file://{}", dir.display()),
                None => "memory://".to_owned(),
            },
        ),
    ]);
    defaults.insert("CAAS_PUBLIC_URL", api_url.clone());
    // Attachments need a directory even without --data-dir; a fresh one per run then.
    let blob_dir = match &data_dir {
        Some(dir) => dir.join("blobs"),
        None => std::env::temp_dir().join(format!("caas-dev-blobs-{}", std::process::id())),
    };
    defaults.insert("CAAS_BLOB_URL", format!("file://{}", blob_dir.display()));
    if let Some(dir) = &data_dir {
        defaults.insert("CAAS_SEARCH_DIR", dir.join("search").display().to_string());
    }
    if env("CAAS_JWT_SECRET").is_none() && env("CAAS_JWT_SECRET_FILE").is_none() {
        let secret = dev_secret(
            data_dir.as_deref(),
            SECRET_FILE,
            caas_shared::services::auth::generate_secret,
        )?;
        defaults.insert("CAAS_JWT_SECRET", secret);
    }
    if env("CAAS_SECRETS_KEY").is_none() && env("CAAS_SECRETS_KEY_FILE").is_none() {
        // Kept beside the data, so webhook secrets sealed before a restart still open after it.
        let key = dev_secret(data_dir.as_deref(), SEALING_KEY_FILE, SealingKey::generate_base64)?;
        defaults.insert("CAAS_SECRETS_KEY", key);
    }
    let lookup = |key: &str| env(key).or_else(|| defaults.get(key).cloned());
    let local_only = only_local_backends(lookup);
    if local_only {
        // A local receiver (`http://localhost:…`) is what a developer points webhooks at.
        defaults.insert("CAAS_WEBHOOKS_ALLOW_LOOPBACK_HTTP", "1".to_owned());
    }
    if env("CAAS_ADMIN_TOKEN").is_none() && !local_only {
        // A well-known operator token on real servers would give anyone who reads this README the
        // admin API of that deployment.
        defaults.remove("CAAS_ADMIN_TOKEN");
        eprintln!(
            "WARNING: caas-dev is pointed at real servers or listens beyond loopback, and CAAS_ADMIN_TOKEN is \
             not set: the admin API is disabled (the dev token \"{DEV_ADMIN_TOKEN}\" applies only to in-memory \
             and file backends behind a loopback gateway)."
        );
    }
    let config = Config::from_lookup(|key| env(key).or_else(|| defaults.get(key).cloned()))?;
    // Without a data directory the search index lives in memory, like everything else.
    let platform = Platform::connect(config, true).await?;
    let mut settings = NodeSettings::from_env()?;
    settings.bind = socket_listener.local_addr()?.to_string();
    let node = Node::start(
        &platform.config,
        settings,
        Arc::clone(&platform.store),
        Arc::clone(&platform.cache),
        Arc::clone(&platform.bus),
    )
    .await?;

    // Whichever part stops first (Ctrl-C, SIGTERM, or a failure) stops the others.
    let stop = StopSignal::new();
    // The demo page's users live in an app of their own; on real servers only one named by
    // CAAS_DEMO_APP_ID / CAAS_DEMO_APP_SECRET (no app is created in someone's database).
    let demo_app = match local_only {
        true => Some(caas_local::demo::ensure_demo_app(platform.store.as_ref(), data_dir.as_deref()).await?),
        false => caas_local::demo::DemoApp::from_env(),
    };
    let router = caas_local::gateway(&platform, demo_app);
    let gateway = stop.trigger_after(async {
        axum::serve(
            gateway_listener,
            // The peer address is the caller's source for the token endpoint's failure limits.
            router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown(stop.wait())
        .await
        .map_err(BoxError::from)
    });
    let socket_node = stop.trigger_after(
        Listener {
            node,
            listener: socket_listener,
        }
        .run(stop.wait()),
    );
    let functions = stop.trigger_after(async {
        caas_local::run_functions(&platform, stop.wait())
            .await
            .map_err(BoxError::from)
    });
    let signals = stop.trigger_on(caas_shared::runtime::shutdown_signal());
    print_banner(&platform.config, &api_url, &ws_url);
    let (gateway, (), functions, ()) = tokio::join!(gateway, socket_node, functions, signals);
    if data_dir.is_none() {
        // Nothing is kept without --data-dir, uploads included.
        let _ = std::fs::remove_dir_all(&blob_dir);
    }
    gateway?;
    functions?;
    println!("caas-dev stopped");
    Ok(())
}

fn env(key: &str) -> Option<String> {
    std::env::var(key).ok().filter(|v| !v.is_empty())
}

fn env_or(key: &str, default: &str) -> String {
    env(key).unwrap_or_else(|| default.to_owned())
}

/// `--data-dir DIR` wins over `CAAS_DEV_DATA_DIR`; the directory is created and made absolute.
fn data_dir() -> Result<Option<PathBuf>, BoxError> {
    let mut args = std::env::args().skip(1);
    let mut chosen = env("CAAS_DEV_DATA_DIR");
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--data-dir" => chosen = Some(args.next().ok_or("--data-dir needs a directory")?),
            "-h" | "--help" => {
                println!(
                    "usage: caas-dev [--data-dir DIR]   (every CAAS_* variable applies; see docs/configuration.md)"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}; try --help").into()),
        }
    }
    let Some(dir) = chosen else { return Ok(None) };
    std::fs::create_dir_all(&dir)?;
    Ok(Some(std::fs::canonicalize(dir)?))
}

/// A fresh secret per run, or the one kept in the data directory's `file` so tokens (and sealed
/// secrets) outlive a restart.
fn dev_secret(data_dir: Option<&Path>, file: &str, generate: fn() -> String) -> Result<String, BoxError> {
    let Some(dir) = data_dir else {
        return Ok(generate());
    };
    let path = dir.join(file);
    match std::fs::read_to_string(&path) {
        Ok(secret) => Ok(secret.trim().to_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let secret = generate();
            caas_local::write_private(&path, &secret)?;
            Ok(secret)
        }
        Err(e) => Err(format!("reading {}: {e}", path.display()).into()),
    }
}

/// Whether the store, cache, bus and blobs (as `lookup` resolves them) all live in this process or
/// its data directory, and the gateway listens on loopback only: the only case the well-known dev
/// admin token is offered in (anyone who can reach the gateway could use it).
fn only_local_backends(lookup: impl Fn(&str) -> Option<String>) -> bool {
    let backends_local = ["CAAS_STORE_URL", "CAAS_CACHE_URL", "CAAS_BUS_URL", "CAAS_BLOB_URL"]
        .iter()
        .all(|key| lookup(key).is_some_and(|url| url.starts_with("memory://") || url.starts_with("file://")));
    let bind = lookup("CAAS_GATEWAY_BIND").unwrap_or_else(|| "127.0.0.1:3000".into());
    let loopback = bind
        .parse::<std::net::SocketAddr>()
        .is_ok_and(|address| address.ip().is_loopback())
        || bind.starts_with("localhost:");
    backends_local && loopback
}

fn print_banner(config: &Config, api_url: &str, ws_url: &str) {
    let admin = config.admin_token.as_deref().unwrap_or("<CAAS_ADMIN_TOKEN>");
    let persistence = if config.store_url.starts_with("file://") {
        "kept across restarts"
    } else {
        "lost on exit; --data-dir DIR keeps it"
    };
    println!(
        "\
caas-dev is running — gateway, socket node and function bridge in one process
  Demo chat  {api_url}/demo   (open it in two browser windows, sign in as two names)
  HTTP API   {api_url}/api/v1
  WebSocket  {ws_url}
  store      {store} ({persistence})
  bus        {bus}
  cache      {cache}
  search     {search}
  blobs      {blobs}

Create an app, then a user token with the app's id and secret:
  curl -s -X POST {api_url}/api/v1/admin/apps -H 'authorization: Bearer {admin}' \\
       -H 'content-type: application/json' -d '{{\"name\":\"my app\"}}'
  curl -s -X POST {api_url}/api/v1/auth/sdk/token -H 'content-type: application/json' \\
       -d '{{\"app_id\":\"APP_ID\",\"app_secret\":\"APP_SECRET\",\"user_external_id\":\"alice\"}}'
Connect a WebSocket client to {ws_url}?token=TOKEN (protocol: docs/protocol.md).
Search what you sent: curl -s '{api_url}/api/v1/search/messages?q=hello' -H 'authorization: Bearer TOKEN'
Ctrl-C stops everything.",
        store = config.store_url,
        bus = config.bus_url,
        cache = config.cache_url,
        blobs = config.blob_url,
        search = config
            .search_dir
            .as_deref()
            .map_or("in memory".to_owned(), |dir| dir.display().to_string()),
    );
}

#[cfg(test)]
mod tests {
    use super::{only_local_backends, SealingKey};

    #[test]
    fn the_dev_admin_token_is_only_for_local_backends() {
        let local = |key: &str| match key {
            "CAAS_STORE_URL" => Some("file:///tmp/x".to_owned()),
            "CAAS_GATEWAY_BIND" => None,
            _ => Some("memory://".to_owned()),
        };
        assert!(only_local_backends(local));
        let real_store = |key: &str| match key {
            "CAAS_STORE_URL" => Some("mongodb://db.internal:27017/caas".to_owned()),
            "CAAS_GATEWAY_BIND" => None,
            _ => Some("memory://".to_owned()),
        };
        assert!(!only_local_backends(real_store));
        let real_cache = |key: &str| match key {
            "CAAS_CACHE_URL" => Some("redis://cache:6379".to_owned()),
            "CAAS_GATEWAY_BIND" => None,
            _ => Some("memory://".to_owned()),
        };
        assert!(!only_local_backends(real_cache));
        let exposed = |key: &str| match key {
            "CAAS_GATEWAY_BIND" => Some("0.0.0.0:3000".to_owned()),
            _ => Some("memory://".to_owned()),
        };
        assert!(!only_local_backends(exposed), "a gateway others can reach");
    }

    #[test]
    fn kept_secrets_are_readable_by_their_owner_only() {
        let dir = std::env::temp_dir().join(format!(
            "caas-dev-secret-{}-{}",
            std::process::id(),
            caas_shared::now_ms()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let kept = [
            (
                super::SECRET_FILE,
                caas_shared::services::auth::generate_secret as fn() -> String,
            ),
            (super::SEALING_KEY_FILE, SealingKey::generate_base64),
        ];
        for (file, generate) in kept {
            let secret = super::dev_secret(Some(&dir), file, generate).unwrap();
            assert_eq!(super::dev_secret(Some(&dir), file, generate).unwrap(), secret, "kept");
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let mode = std::fs::metadata(dir.join(file)).unwrap().permissions().mode();
                assert_eq!(mode & 0o777, 0o600, "{file}");
            }
        }
        SealingKey::from_base64(
            &super::dev_secret(Some(&dir), super::SEALING_KEY_FILE, SealingKey::generate_base64).unwrap(),
        )
        .expect("the kept sealing key is a valid key");
        let _ = std::fs::remove_dir_all(dir);
    }
}
