//! Configuration from `CAAS_*` environment variables.
//!
//! Backends are chosen by URL so the same binaries run against local servers or managed services.

use crate::{Error, Result};
use std::time::Duration;

/// Everything an entry point may need; each binary reads only the parts it uses.
#[derive(Clone, Debug)]
pub struct Config {
    /// `mongodb://…` connection string.
    pub store_url: String,
    /// Database name inside the store.
    pub store_database: String,
    /// `kafka://host:port,host:port` bootstrap servers.
    pub bus_url: String,
    /// `redis://…` or `memory://`: the cache (sequences, idempotency, membership, recent window,
    /// presence, restrictions) and the socket nodes' fan-out (`CAAS_CACHE_URL`;
    /// `CAAS_REDIS_SOCKET_URL`, its older name, still overrides it).
    pub cache_url: String,
    /// HMAC secret used to sign and verify SDK tokens.
    pub jwt_secret: String,
    /// The `iss` claim SDK tokens carry and must carry to verify (`CAAS_JWT_ISSUER`, default `caas`).
    pub jwt_issuer: String,
    /// The `aud` claim SDK tokens carry and must carry to verify (`CAAS_JWT_AUDIENCE`, default `caas-sdk`).
    pub jwt_audience: String,
    /// How long an SDK token is valid after it is issued or refreshed (`CAAS_TOKEN_TTL_SECS`, default 86400 s).
    pub token_ttl: Duration,
    /// Operator token guarding `/api/v1/admin/*`; admin routes refuse every call when it is unset.
    pub admin_token: Option<String>,
    /// WebSocket URLs advertised to clients in token responses.
    pub socket_urls: Vec<String>,
    /// Where attachments live: `s3://bucket?endpoint=…&region=…` or `file:///dir`; empty when unset.
    pub blob_url: String,
    /// Static S3 credentials (`CAAS_S3_*`, else the `AWS_*` variables Lambda sets for the role).
    pub s3_access_key: Option<String>,
    /// The secret key paired with `s3_access_key` (`CAAS_S3_SECRET_KEY`, else `AWS_SECRET_ACCESS_KEY`).
    pub s3_secret_key: Option<String>,
    /// The session token of temporary credentials (`AWS_SESSION_TOKEN`, as Lambda sets it); `None` for static keys.
    pub s3_session_token: Option<String>,
    /// The gateway's address as clients reach it; local (`file://`) blob URLs point there.
    pub public_url: String,
    /// Directory of the message search index (`CAAS_SEARCH_DIR`; an EFS mount when deployed).
    pub search_dir: Option<std::path::PathBuf>,
    /// Appended to every consumer-group name, so several deployments (or test runs) can share a broker.
    pub consumer_group_suffix: String,
    /// Where the local gateway listens (`CAAS_GATEWAY_BIND`).
    pub gateway_bind: String,
    /// How often the local bridge applies retention (`CAAS_RETENTION_INTERVAL_SECS`); deployed, the
    /// template's Schedule does.
    pub retention_interval: Duration,
    /// Bytes one user's uploads may hold in one app, pending and completed (`CAAS_MEDIA_USER_QUOTA_BYTES`,
    /// default 1 GiB).
    pub media_user_quota_bytes: u64,
    /// Devices one caller may claim one-time keys of a minute (`CAAS_KEYS_CLAIMS_PER_CALLER_PER_MINUTE`,
    /// default 100), per keys-function instance.
    pub key_claims_per_caller_per_minute: u32,
    /// Claims on one user's devices a minute from all callers (`CAAS_KEYS_CLAIMS_ON_USER_PER_MINUTE`,
    /// default 60), per keys-function instance.
    pub key_claims_on_user_per_minute: u32,
    /// Searches one user may run a minute (`CAAS_SEARCH_PER_USER_PER_MINUTE`, default 60), per
    /// search-function instance.
    pub searches_per_user_per_minute: u32,
    /// Records produced before this Unix-ms time are committed by the local bridge without being handled
    /// (`CAAS_BRIDGE_SKIP_BEFORE_MS`): a fresh group on a shared broker skips older runs' records.
    pub bridge_skip_before_ms: Option<i64>,
    /// `CAAS_SECRETS_KEY` (or the file `CAAS_SECRETS_KEY_FILE` names): 32 bytes in base64 that seal
    /// the secrets the platform must read back (webhook signing secrets); without it webhooks answer
    /// `not_configured`.
    pub secrets_key: Option<String>,
    /// `CAAS_WEBHOOKS_ALLOW_LOOPBACK_HTTP=1`: webhook endpoints may be plain `http://` to a loopback
    /// host (dev mode and tests; deployed endpoints are https).
    pub webhooks_allow_loopback_http: bool,
    /// `CAAS_WEBHOOK_RETRY_SCHEDULE`: the waits before each webhook retry, in seconds, comma-separated
    /// (default `5,30,120,600,1800,7200,21600`).
    pub webhook_retry_schedule: Vec<Duration>,
    /// `CAAS_WEBHOOK_RETENTION_DAYS` (default 7): how long webhook events stay readable and replayable,
    /// and finished deliveries listed.
    pub webhook_retention: Duration,
}

impl Config {
    /// Reads the configuration from the process environment; `Config` error when the JWT secret is missing or
    /// shorter than 32 bytes, or a number does not parse. Unset variables take their local-development defaults.
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|key| std::env::var(key).ok())
    }

    /// Reads configuration through `lookup` so tests can supply values without touching the process env.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let get = |key: &str, default: &str| {
            lookup(key)
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| default.to_owned())
        };
        let cache_url = get("CAAS_CACHE_URL", "redis://127.0.0.1:6379");
        let jwt_secret = match lookup("CAAS_JWT_SECRET").filter(|v| !v.is_empty()) {
            Some(secret) => secret,
            None => match lookup("CAAS_JWT_SECRET_FILE").filter(|v| !v.is_empty()) {
                Some(path) => std::fs::read_to_string(&path)
                    .map_err(|e| Error::Config(format!("CAAS_JWT_SECRET_FILE {path}: {e}")))?
                    .trim()
                    .to_owned(),
                None => {
                    return Err(Error::Config(
                        "CAAS_JWT_SECRET (or CAAS_JWT_SECRET_FILE) is required".into(),
                    ))
                }
            },
        };
        if jwt_secret.len() < 32 {
            return Err(Error::Config("the JWT secret must be at least 32 bytes".into()));
        }
        let secrets_key = match lookup("CAAS_SECRETS_KEY").filter(|v| !v.is_empty()) {
            Some(key) => Some(key),
            None => match lookup("CAAS_SECRETS_KEY_FILE").filter(|v| !v.is_empty()) {
                Some(path) => Some(
                    std::fs::read_to_string(&path)
                        .map_err(|e| Error::Config(format!("CAAS_SECRETS_KEY_FILE {path}: {e}")))?
                        .trim()
                        .to_owned(),
                ),
                None => None,
            },
        };
        if let Some(key) = &secrets_key {
            // A malformed key fails at startup rather than at the first webhook.
            crate::domain::sealing::SealingKey::from_base64(key)?;
        }
        let retention_interval_secs = get("CAAS_RETENTION_INTERVAL_SECS", "3600")
            .parse::<u64>()
            .ok()
            .filter(|s| *s > 0)
            .ok_or_else(|| Error::Config("CAAS_RETENTION_INTERVAL_SECS must be a positive number".into()))?;
        let bridge_skip_before_ms = match lookup("CAAS_BRIDGE_SKIP_BEFORE_MS").filter(|v| !v.is_empty()) {
            Some(value) => Some(
                value
                    .parse()
                    .map_err(|_| Error::Config("CAAS_BRIDGE_SKIP_BEFORE_MS must be Unix milliseconds".into()))?,
            ),
            None => None,
        };
        let webhook_retry_schedule =
            crate::domain::webhooks::retry::parse_schedule(&get("CAAS_WEBHOOK_RETRY_SCHEDULE", ""))
                .map_err(|e| Error::Config(format!("CAAS_WEBHOOK_RETRY_SCHEDULE: {e}")))?;
        let webhook_retention_days = get("CAAS_WEBHOOK_RETENTION_DAYS", "7")
            .parse::<u64>()
            .ok()
            .filter(|days| (1..=90).contains(days))
            .ok_or_else(|| Error::Config("CAAS_WEBHOOK_RETENTION_DAYS must be 1 to 90 days".into()))?;
        let token_ttl_secs: u64 = get("CAAS_TOKEN_TTL_SECS", "86400")
            .parse()
            .map_err(|_| Error::Config("CAAS_TOKEN_TTL_SECS must be a number of seconds".into()))?;
        let media_user_quota_bytes: u64 = get("CAAS_MEDIA_USER_QUOTA_BYTES", "1073741824")
            .parse()
            .map_err(|_| Error::Config("CAAS_MEDIA_USER_QUOTA_BYTES must be a number of bytes".into()))?;
        let per_minute = |key: &str, default: &str| -> Result<u32> {
            get(key, default)
                .parse()
                .map_err(|_| Error::Config(format!("{key} must be a number")))
        };
        Ok(Self {
            key_claims_per_caller_per_minute: per_minute("CAAS_KEYS_CLAIMS_PER_CALLER_PER_MINUTE", "100")?,
            key_claims_on_user_per_minute: per_minute("CAAS_KEYS_CLAIMS_ON_USER_PER_MINUTE", "60")?,
            searches_per_user_per_minute: per_minute("CAAS_SEARCH_PER_USER_PER_MINUTE", "60")?,
            media_user_quota_bytes,
            store_url: get("CAAS_STORE_URL", "mongodb://127.0.0.1:27017/?directConnection=true"),
            store_database: get("CAAS_STORE_DATABASE", "caas"),
            bus_url: get("CAAS_BUS_URL", "kafka://127.0.0.1:9092"),
            cache_url: lookup("CAAS_REDIS_SOCKET_URL")
                .filter(|v| !v.is_empty())
                .unwrap_or(cache_url),
            jwt_secret,
            jwt_issuer: get("CAAS_JWT_ISSUER", "caas"),
            jwt_audience: get("CAAS_JWT_AUDIENCE", "caas-sdk"),
            token_ttl: Duration::from_secs(token_ttl_secs),
            admin_token: lookup("CAAS_ADMIN_TOKEN").filter(|v| !v.is_empty()),
            socket_urls: get("CAAS_SOCKET_URLS", "ws://127.0.0.1:3002/ws")
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            consumer_group_suffix: get("CAAS_CONSUMER_GROUP_SUFFIX", ""),
            gateway_bind: get("CAAS_GATEWAY_BIND", "127.0.0.1:3000"),
            retention_interval: Duration::from_secs(retention_interval_secs),
            bridge_skip_before_ms,
            blob_url: get("CAAS_BLOB_URL", ""),
            s3_access_key: lookup("CAAS_S3_ACCESS_KEY")
                .or_else(|| lookup("AWS_ACCESS_KEY_ID"))
                .filter(|v| !v.is_empty()),
            s3_secret_key: lookup("CAAS_S3_SECRET_KEY")
                .or_else(|| lookup("AWS_SECRET_ACCESS_KEY"))
                .filter(|v| !v.is_empty()),
            s3_session_token: lookup("AWS_SESSION_TOKEN").filter(|v| !v.is_empty()),
            public_url: get("CAAS_PUBLIC_URL", "http://127.0.0.1:3000"),
            search_dir: lookup("CAAS_SEARCH_DIR").filter(|v| !v.is_empty()).map(Into::into),
            secrets_key,
            webhooks_allow_loopback_http: lookup("CAAS_WEBHOOKS_ALLOW_LOOPBACK_HTTP").is_some_and(|v| v == "1"),
            webhook_retry_schedule,
            webhook_retention: Duration::from_secs(webhook_retention_days * 24 * 3600),
        })
    }

    /// The consumer-group name of a function in this deployment.
    pub fn consumer_group(&self, function: &str) -> String {
        format!("{function}{}", self.consumer_group_suffix)
    }

    /// The key that seals secrets at rest; `not_configured` without `CAAS_SECRETS_KEY`.
    pub fn sealing_key(&self) -> Result<crate::domain::sealing::SealingKey> {
        let key = self.secrets_key.as_deref().ok_or_else(no_secrets_key)?;
        crate::domain::sealing::SealingKey::from_base64(key)
    }

    /// The search index directory, for the functions that cannot run without one.
    pub fn required_search_dir(&self) -> Result<&std::path::Path> {
        self.search_dir
            .as_deref()
            .ok_or_else(|| Error::Config("CAAS_SEARCH_DIR (the search index directory) is required".into()))
    }
}

/// How the platform's Kafka topics are created by the processes that create them (socket nodes, the
/// local gateway and bridge). An existing topic is never changed, only reported when it is below these.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TopicSettings {
    /// Copies of each partition (`CAAS_KAFKA_REPLICATION_FACTOR`, default 3, as on MSK with three
    /// brokers): with 1, one broker's loss loses accepted messages whatever `acks=all` says.
    pub replication_factor: i32,
    /// Replicas that must have a record before a write with `acks=all` succeeds
    /// (`CAAS_KAFKA_MIN_INSYNC_REPLICAS`, default 2). Local single-broker stacks set both to 1.
    pub min_insync_replicas: i32,
}

impl TopicSettings {
    /// Reads the settings from the process environment.
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|key| std::env::var(key).ok())
    }

    /// Reads the settings through `lookup`; both must be positive, and `min_insync_replicas` at most
    /// the replication factor (else no write could ever succeed).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let number = |key: &str, default: i32| -> Result<i32> {
            match lookup(key).filter(|v| !v.is_empty()) {
                None => Ok(default),
                Some(value) => value
                    .parse::<i32>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| Error::Config(format!("{key} must be a positive number"))),
            }
        };
        let settings = Self {
            replication_factor: number("CAAS_KAFKA_REPLICATION_FACTOR", 3)?,
            min_insync_replicas: number("CAAS_KAFKA_MIN_INSYNC_REPLICAS", 2)?,
        };
        if settings.min_insync_replicas > settings.replication_factor {
            return Err(Error::Config(
                "CAAS_KAFKA_MIN_INSYNC_REPLICAS must not exceed CAAS_KAFKA_REPLICATION_FACTOR".into(),
            ));
        }
        Ok(settings)
    }
}

/// What a deployment without `CAAS_SECRETS_KEY` answers to anything that seals or opens secrets.
pub fn no_secrets_key() -> Error {
    Error::NotConfigured("this deployment has no CAAS_SECRETS_KEY, which webhooks need to seal their secrets".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(pairs: &[(&str, &str)]) -> Result<Config> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn topics_are_replicated_unless_configured_for_one_broker() {
        let read = |pairs: &[(&str, &str)]| {
            let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            TopicSettings::from_lookup(|k| map.get(k).cloned())
        };
        let production = read(&[]).unwrap();
        assert_eq!((production.replication_factor, production.min_insync_replicas), (3, 2));
        let local = read(&[
            ("CAAS_KAFKA_REPLICATION_FACTOR", "1"),
            ("CAAS_KAFKA_MIN_INSYNC_REPLICAS", "1"),
        ])
        .unwrap();
        assert_eq!((local.replication_factor, local.min_insync_replicas), (1, 1));
        assert!(
            read(&[("CAAS_KAFKA_REPLICATION_FACTOR", "1")]).is_err(),
            "2 in sync of 1 copy"
        );
        assert!(read(&[("CAAS_KAFKA_REPLICATION_FACTOR", "0")]).is_err());
    }

    #[test]
    fn requires_a_long_enough_jwt_secret() {
        assert!(matches!(config(&[]), Err(Error::Config(_))));
        assert!(matches!(config(&[("CAAS_JWT_SECRET", "short")]), Err(Error::Config(_))));
    }

    #[test]
    fn the_older_cache_url_overrides_the_cache_url() {
        let secret = ("CAAS_JWT_SECRET", "0123456789abcdef0123456789abcdef");
        let base = config(&[secret, ("CAAS_CACHE_URL", "redis://a:1")]).unwrap();
        assert_eq!(base.cache_url, "redis://a:1");
        let split = config(&[
            secret,
            ("CAAS_CACHE_URL", "redis://a:1"),
            ("CAAS_REDIS_SOCKET_URL", "redis://b:2"),
        ])
        .unwrap();
        assert_eq!(split.cache_url, "redis://b:2");
    }
}
