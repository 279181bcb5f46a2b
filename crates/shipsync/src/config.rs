//! Settings: flag > environment > config file (TOML) > default.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// Values given on the command line (None = not given).
#[derive(Debug, Default, Clone, clap::Args)]
pub struct Flags {
    /// Database URL: sqlite://FILE (default sqlite://shipsync.db) or postgres://…
    #[arg(long, global = true)]
    pub database_url: Option<String>,
    /// Address to listen on (default 127.0.0.1:8080).
    #[arg(long, global = true)]
    pub listen: Option<String>,
    /// Public base URL used in webhook URLs (default http://<listen>).
    #[arg(long, global = true)]
    pub public_url: Option<String>,
    /// Largest accepted webhook body in bytes (default 1048576).
    #[arg(long, global = true)]
    pub webhook_max_bytes: Option<usize>,
    /// Log format: pretty or json (default pretty on a terminal, json otherwise).
    #[arg(long, global = true)]
    pub log_format: Option<String>,
    /// Allow calls to stores and warehouses at loopback, private, link-local
    /// and other non-public addresses (sandboxes on this machine); default
    /// false. `--allow-private-targets=false` turns it off again.
    #[arg(long, global = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub allow_private_targets: Option<bool>,
    /// TOML configuration file; keys are the environment names in lower case
    /// without the SHIPSYNC_ prefix.
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    database_url: Option<SecretString>,
    listen: Option<String>,
    public_url: Option<String>,
    webhook_max_bytes: Option<usize>,
    log_format: Option<String>,
    admin_token: Option<SecretString>,
    secret_key: Option<SecretString>,
    allow_private_targets: Option<bool>,
    // Storage and retention (issue 11 § 6).
    retain_event_bodies_days: Option<u32>,
    retain_activity_days: Option<u32>,
    retain_refused_days: Option<u32>,
    refused_record_per_minute: Option<u32>,
    header_timeout_secs: Option<u64>,
    idle_timeout_secs: Option<u64>,
    body_timeout_secs: Option<u64>,
    max_connections_per_client: Option<usize>,
    trusted_proxies: Option<ProxyList>,
    // Hidden (see [`Jobs`]).
    job_lease_secs: Option<u64>,
    http_timeout_secs: Option<u64>,
    unknown_outcome_margin_secs: Option<u64>,
    backoff_max_secs: Option<u64>,
    event_retry_delays_ms: Option<String>,
    alert_check_secs: Option<u64>,
    alert_gather_secs: Option<u64>,
    alert_minute_secs: Option<f64>,
    ingest_burst_per_sec: Option<u32>,
}

/// `trusted_proxies` in the config file: the environment's comma-separated
/// text, or an array of entries.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ProxyList {
    Text(String),
    Entries(Vec<String>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// Every setting of shipsync, resolved once: flag > environment > config
/// file > default. Secrets are [`SecretString`]s, and `Debug` shows neither
/// them nor the database password.
#[derive(Clone)]
pub struct Settings {
    /// `SHIPSYNC_DATABASE_URL`: secret as a whole, since a PostgreSQL URL may
    /// carry a password (see [`Settings::database_url_redacted`]).
    pub database_url: SecretString,
    pub listen: String,
    pub public_url: String,
    pub webhook_max_bytes: usize,
    /// Webhook requests handled at once (not a setting: the tests lower it).
    pub webhook_max_in_flight: usize,
    /// Connections served at once (not a setting either).
    pub max_connections: usize,
    /// Connections served at once per client address
    /// (`SHIPSYNC_MAX_CONNECTIONS_PER_CLIENT`).
    pub max_connections_per_client: usize,
    /// Reverse proxies whose `X-Forwarded-For` names the client, and whose
    /// connections are not capped per client (`SHIPSYNC_TRUSTED_PROXIES`).
    pub trusted_proxies: shipsync_web::client::TrustedProxies,
    /// From a connection's start, or a request's first byte, to its last
    /// header byte (`SHIPSYNC_HEADER_TIMEOUT_SECS`).
    pub header_timeout: Duration,
    /// A keep-alive connection with no request for this long is closed
    /// (`SHIPSYNC_IDLE_TIMEOUT_SECS`).
    pub idle_timeout: Duration,
    /// A request body not read whole within this long is answered 408
    /// (`SHIPSYNC_BODY_TIMEOUT_SECS`).
    pub body_timeout: Duration,
    pub log_format: LogFormat,
    /// `RUST_LOG`: which log lines are written (default `info,sqlx=warn`).
    pub log_filter: Option<String>,
    /// `SHIPSYNC_ADMIN_TOKEN`: always accepted as an administrator's token.
    pub admin_token: Option<SecretString>,
    /// `SHIPSYNC_SECRET_KEY`: the key that encrypts stored credentials.
    pub secret_key: Option<SecretString>,
    /// `SHIPSYNC_ALLOW_PRIVATE_TARGETS`: outbound calls (and saved URLs) may
    /// reach non-public addresses.
    pub allow_private_targets: bool,
    /// What is kept, and for how long.
    pub storage: Storage,
    /// How jobs run (hidden settings).
    pub jobs: Jobs,
}

/// What is stored and kept (issue 11 § 6): `SHIPSYNC_RETAIN_EVENT_BODIES_DAYS`
/// (90), `SHIPSYNC_RETAIN_ACTIVITY_DAYS` (365), `SHIPSYNC_RETAIN_REFUSED_DAYS`
/// (7) and `SHIPSYNC_REFUSED_RECORD_PER_MINUTE` (10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Storage {
    pub retention: shipsync_engine::Retention,
    /// Refused deliveries (401, 413) recorded per merchant per minute.
    pub refused_record_per_minute: u32,
}

impl Default for Storage {
    fn default() -> Self {
        Self::from(&shipsync_engine::EngineConfig::default())
    }
}

impl From<&shipsync_engine::EngineConfig> for Storage {
    fn from(engine: &shipsync_engine::EngineConfig) -> Self {
        Self {
            retention: engine.retention,
            refused_record_per_minute: engine.refused_record_per_minute,
        }
    }
}

impl Storage {
    fn resolve(env: &impl Fn(&str) -> Option<String>, file: &FileConfig) -> Result<Self> {
        let d = Self::default();
        let days = |name: &str, from_file: Option<u32>, default: u32| {
            whole(name, env, from_file, default, 1, Unit::None)
        };
        Ok(Self {
            retention: shipsync_engine::Retention {
                event_bodies_days: days(
                    "SHIPSYNC_RETAIN_EVENT_BODIES_DAYS",
                    file.retain_event_bodies_days,
                    d.retention.event_bodies_days,
                )?,
                activity_days: days(
                    "SHIPSYNC_RETAIN_ACTIVITY_DAYS",
                    file.retain_activity_days,
                    d.retention.activity_days,
                )?,
                refused_days: days(
                    "SHIPSYNC_RETAIN_REFUSED_DAYS",
                    file.retain_refused_days,
                    d.retention.refused_days,
                )?,
            },
            refused_record_per_minute: whole(
                "SHIPSYNC_REFUSED_RECORD_PER_MINUTE",
                env,
                file.refused_record_per_minute,
                d.refused_record_per_minute,
                0,
                Unit::None,
            )?,
        })
    }

    /// Puts these settings into an engine configuration.
    pub fn apply(&self, engine: &mut shipsync_engine::EngineConfig) {
        engine.retention = self.retention;
        engine.refused_record_per_minute = self.refused_record_per_minute;
    }
}

/// How jobs run. Hidden (not in `--help` or the README) but for
/// `ingest_burst_per_sec`: the crash tests and the fault suite shorten them;
/// production keeps the defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jobs {
    /// `SHIPSYNC_JOB_LEASE_SECS` (120): how long a claimed job stays leased
    /// to its node before another node may take it over. On PostgreSQL a job
    /// leased by a node that died (`kill -9`) runs again only once this lease
    /// expires, so the crash tests set it short; on SQLite (one node) leases
    /// are released at start-up anyway. Keep it well above the longest job
    /// (store calls time out after 20 s each).
    pub lease: Duration,
    /// `SHIPSYNC_HTTP_TIMEOUT_SECS` (20): the timeout of each store and
    /// warehouse call; the fault suite shortens it below the sandbox's stall
    /// so that a timeout is a real timeout.
    pub http_timeout: Duration,
    /// `SHIPSYNC_UNKNOWN_OUTCOME_MARGIN_SECS` (30, may be 0): how long after
    /// a store write could have ended its outcome may still show in the
    /// store. A write whose outcome is unknown and that the store does not
    /// show is kept (and its shipment waits) until its send time plus the
    /// request timeout plus this margin.
    pub unknown_outcome_margin: Duration,
    /// `SHIPSYNC_BACKOFF_MAX_SECS` (600): the longest pause between two
    /// attempts of a failing job; the fault suite shortens it so that a row
    /// under 30 % store faults ends in minutes, not hours.
    pub backoff_max: Duration,
    /// `SHIPSYNC_EVENT_RETRY_DELAYS_MS` (comma-separated milliseconds; by
    /// default 5 s, 30 s, 2 min, 10 min, 30 min, 1 h, 3 h, 6 h, 12 h): the
    /// waits before the 2nd, 3rd, … attempt of an outbound event delivery,
    /// replacing the whole schedule; the tests shorten it.
    pub event_retry_delays: Vec<Duration>,
    /// `SHIPSYNC_ALERT_CHECK_SECS` (30): how often the alert conditions
    /// are evaluated (the `CheckAlerts` job, one node at a time).
    pub alert_check: Duration,
    /// `SHIPSYNC_ALERT_GATHER_SECS` (30, may be 0): how long the first
    /// alert change after a quiet period waits for more, so that a burst
    /// goes in one message.
    pub alert_gather: Duration,
    /// `SHIPSYNC_ALERT_MINUTE_SECS` (60; decimals allowed, e.g. 0.1): the
    /// length of a "minute" in alert policies (`group_minutes`,
    /// `latency_window_minutes`, and 60 of them for an hour of
    /// `webhooks_stopped_hours`). Only the tests shorten it.
    pub alert_minute: Duration,
    /// `SHIPSYNC_INGEST_BURST_PER_SEC` (1,500; 0: never): webhook deliveries
    /// per second from which ingest is in a burst, and the processing
    /// workers pause until it is over (in the README's table).
    pub ingest_burst_per_sec: u32,
}

impl Default for Jobs {
    fn default() -> Self {
        Self::from(&shipsync_engine::EngineConfig::default())
    }
}

impl From<&shipsync_engine::EngineConfig> for Jobs {
    fn from(engine: &shipsync_engine::EngineConfig) -> Self {
        Self {
            lease: engine.lease,
            http_timeout: engine.http_timeout,
            unknown_outcome_margin: engine.unknown_outcome_margin,
            backoff_max: engine.backoff_max,
            event_retry_delays: engine.event_retry_delays.clone(),
            alert_check: engine.alerts.check_every,
            alert_gather: engine.alerts.gather,
            alert_minute: engine.alerts.minute,
            ingest_burst_per_sec: engine.ingest_burst_per_sec,
        }
    }
}

impl Jobs {
    fn resolve(env: &impl Fn(&str) -> Option<String>, file: &FileConfig) -> Result<Self> {
        let d = Self::default();
        let secs = |name: &str, from_file: Option<u64>, default: Duration, min: u64| {
            whole(name, env, from_file, default.as_secs(), min, Unit::Seconds)
                .map(Duration::from_secs)
        };
        Ok(Self {
            lease: secs("SHIPSYNC_JOB_LEASE_SECS", file.job_lease_secs, d.lease, 1)?,
            http_timeout: secs(
                "SHIPSYNC_HTTP_TIMEOUT_SECS",
                file.http_timeout_secs,
                d.http_timeout,
                1,
            )?,
            unknown_outcome_margin: secs(
                "SHIPSYNC_UNKNOWN_OUTCOME_MARGIN_SECS",
                file.unknown_outcome_margin_secs,
                d.unknown_outcome_margin,
                0,
            )?,
            backoff_max: secs(
                "SHIPSYNC_BACKOFF_MAX_SECS",
                file.backoff_max_secs,
                d.backoff_max,
                1,
            )?,
            event_retry_delays: match env("SHIPSYNC_EVENT_RETRY_DELAYS_MS")
                .or_else(|| file.event_retry_delays_ms.clone())
            {
                Some(text) => delays_ms("SHIPSYNC_EVENT_RETRY_DELAYS_MS", &text)?,
                None => d.event_retry_delays,
            },
            alert_check: secs(
                "SHIPSYNC_ALERT_CHECK_SECS",
                file.alert_check_secs,
                d.alert_check,
                1,
            )?,
            alert_gather: secs(
                "SHIPSYNC_ALERT_GATHER_SECS",
                file.alert_gather_secs,
                d.alert_gather,
                0,
            )?,
            alert_minute: {
                const NAME: &str = "SHIPSYNC_ALERT_MINUTE_SECS";
                let n: f64 = match env(NAME) {
                    Some(v) => v
                        .trim()
                        .parse()
                        .with_context(|| format!("{NAME}={v:?} is not a number of seconds"))?,
                    None => file
                        .alert_minute_secs
                        .unwrap_or(d.alert_minute.as_secs_f64()),
                };
                if !(0.001..=3600.0).contains(&n) {
                    bail!("{NAME} must be between 0.001 and 3600 seconds");
                }
                Duration::from_secs_f64(n)
            },
            ingest_burst_per_sec: whole(
                "SHIPSYNC_INGEST_BURST_PER_SEC",
                env,
                file.ingest_burst_per_sec,
                d.ingest_burst_per_sec,
                0,
                Unit::None,
            )?,
        })
    }

    /// Puts these settings into an engine configuration.
    pub fn apply(&self, engine: &mut shipsync_engine::EngineConfig) {
        engine.lease = self.lease;
        engine.http_timeout = self.http_timeout;
        engine.unknown_outcome_margin = self.unknown_outcome_margin;
        engine.backoff_max = self.backoff_max;
        engine.event_retry_delays = self.event_retry_delays.clone();
        engine.alerts = shipsync_engine::alerts::AlertTimes {
            check_every: self.alert_check,
            gather: self.alert_gather,
            minute: self.alert_minute,
        };
        engine.ingest_burst_per_sec = self.ingest_burst_per_sec;
    }
}

/// A list of waits given as comma-separated milliseconds, e.g. `50,100`.
fn delays_ms(name: &str, text: &str) -> Result<Vec<Duration>> {
    let delays = text
        .split(',')
        .map(|t| match t.trim().parse::<u64>() {
            Ok(ms) => Ok(Duration::from_millis(ms)),
            Err(_) => bail!(
                "{name}={text:?}: give whole milliseconds separated by commas, e.g. 50,100,200"
            ),
        })
        .collect::<Result<Vec<_>>>()?;
    if delays.is_empty() {
        bail!("{name} is empty: give at least one wait");
    }
    Ok(delays)
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Destructured, so that a new field cannot be left out unseen.
        let Self {
            database_url: _,
            listen,
            public_url,
            webhook_max_bytes,
            webhook_max_in_flight,
            max_connections,
            max_connections_per_client,
            trusted_proxies,
            header_timeout,
            idle_timeout,
            body_timeout,
            log_format,
            log_filter,
            admin_token,
            secret_key,
            allow_private_targets,
            storage,
            jobs,
        } = self;
        f.debug_struct("Settings")
            .field("database_url", &self.database_url_redacted())
            .field("listen", listen)
            .field("public_url", public_url)
            .field("webhook_max_bytes", webhook_max_bytes)
            .field("webhook_max_in_flight", webhook_max_in_flight)
            .field("max_connections", max_connections)
            .field("max_connections_per_client", max_connections_per_client)
            .field("trusted_proxies", trusted_proxies)
            .field("header_timeout", header_timeout)
            .field("idle_timeout", idle_timeout)
            .field("body_timeout", body_timeout)
            .field("log_format", log_format)
            .field("log_filter", log_filter)
            // SecretString's Debug shows "[REDACTED]".
            .field("admin_token", admin_token)
            .field("secret_key", secret_key)
            .field("allow_private_targets", allow_private_targets)
            .field("storage", storage)
            .field("jobs", jobs)
            .finish()
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// `RUST_LOG`, for commands that write logs only when it is set (`demo`,
/// `sync`); [`Settings::log_filter`] holds it for the others.
pub fn log_filter_from_env() -> Option<String> {
    env("RUST_LOG")
}

/// What a number counts, for messages.
#[derive(Clone, Copy)]
enum Unit {
    None,
    Seconds,
    Connections,
}

/// A whole number from the environment, the config file (the same name in
/// lower case without `SHIPSYNC_`) or `default`; at least `min`.
fn whole<T>(
    name: &str,
    env: impl Fn(&str) -> Option<String>,
    file: Option<T>,
    default: T,
    min: T,
    unit: Unit,
) -> Result<T>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display,
    T::Err: std::error::Error + Send + Sync + 'static,
{
    let n = match env(name) {
        Some(v) => v.trim().parse().with_context(|| {
            let what = match unit {
                Unit::None => "a whole number",
                Unit::Seconds => "a whole number of seconds",
                Unit::Connections => "a number of connections",
            };
            format!("{name}={v:?} is not {what}")
        })?,
        None => file.unwrap_or(default),
    };
    if n < min {
        // Settings in seconds have a minimum of 0 or 1: only 1 gets here.
        let unit = match unit {
            Unit::Seconds => " second",
            Unit::None | Unit::Connections => "",
        };
        bail!("{name} must be at least {min}{unit}");
    }
    Ok(n)
}

/// A whole number of seconds (at least 1), as [`whole`].
fn seconds(
    name: &str,
    env: impl Fn(&str) -> Option<String>,
    file: Option<u64>,
    default: u64,
) -> Result<Duration> {
    whole(name, env, file, default, 1, Unit::Seconds).map(Duration::from_secs)
}

impl Settings {
    pub fn resolve(flags: &Flags) -> Result<Self> {
        Self::resolve_with(flags, env)
    }

    pub fn resolve_with(flags: &Flags, env: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let file: FileConfig = match &flags.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read the config file {}", path.display()))?;
                toml::from_str(&text)
                    .with_context(|| format!("invalid config file {}", path.display()))?
            }
            None => FileConfig::default(),
        };
        let storage = Storage::resolve(&env, &file)?;
        let jobs = Jobs::resolve(&env, &file)?;
        let database_url = flags
            .database_url
            .clone()
            .or_else(|| env("SHIPSYNC_DATABASE_URL"))
            .map(SecretString::from)
            .or(file.database_url)
            .unwrap_or_else(|| "sqlite://shipsync.db".into());
        let listen = flags
            .listen
            .clone()
            .or_else(|| env("SHIPSYNC_LISTEN"))
            .or(file.listen)
            .unwrap_or_else(|| "127.0.0.1:8080".into());
        let public_url = flags
            .public_url
            .clone()
            .or_else(|| env("SHIPSYNC_PUBLIC_URL"))
            .or(file.public_url)
            .unwrap_or_else(|| format!("http://{listen}"));
        let webhook_max_bytes = match flags.webhook_max_bytes {
            Some(n) => n,
            None => match env("SHIPSYNC_WEBHOOK_MAX_BYTES") {
                Some(v) => v.trim().parse().with_context(|| {
                    format!("SHIPSYNC_WEBHOOK_MAX_BYTES={v:?} is not a number of bytes")
                })?,
                None => file.webhook_max_bytes.unwrap_or(1_048_576),
            },
        };
        if webhook_max_bytes == 0 {
            bail!("the webhook body limit must be at least 1 byte");
        }
        let log_format = match flags
            .log_format
            .clone()
            .or_else(|| env("SHIPSYNC_LOG_FORMAT"))
            .or(file.log_format)
        {
            Some(f) if f == "pretty" => LogFormat::Pretty,
            Some(f) if f == "json" => LogFormat::Json,
            Some(other) => bail!("unknown log format {other:?}: use pretty or json"),
            None => {
                if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
                    LogFormat::Pretty
                } else {
                    LogFormat::Json
                }
            }
        };
        let allow_private_targets = match flags.allow_private_targets {
            Some(b) => b,
            None => match env("SHIPSYNC_ALLOW_PRIVATE_TARGETS") {
                Some(v) => match v.trim().to_ascii_lowercase().as_str() {
                    "true" => true,
                    "false" => false,
                    _ => bail!("SHIPSYNC_ALLOW_PRIVATE_TARGETS={v:?}: use true or false"),
                },
                None => file.allow_private_targets.unwrap_or(false),
            },
        };
        let header_timeout = seconds(
            "SHIPSYNC_HEADER_TIMEOUT_SECS",
            &env,
            file.header_timeout_secs,
            10,
        )?;
        let idle_timeout = seconds(
            "SHIPSYNC_IDLE_TIMEOUT_SECS",
            &env,
            file.idle_timeout_secs,
            60,
        )?;
        let body_timeout = seconds(
            "SHIPSYNC_BODY_TIMEOUT_SECS",
            &env,
            file.body_timeout_secs,
            30,
        )?;
        let max_connections_per_client = whole(
            "SHIPSYNC_MAX_CONNECTIONS_PER_CLIENT",
            &env,
            file.max_connections_per_client,
            crate::listener::MAX_CONNECTIONS_PER_CLIENT,
            1,
            Unit::Connections,
        )?;
        let trusted_proxies = match env("SHIPSYNC_TRUSTED_PROXIES") {
            Some(v) => v.parse().context("SHIPSYNC_TRUSTED_PROXIES")?,
            None => match file.trusted_proxies {
                Some(ProxyList::Text(v)) => v.parse(),
                Some(ProxyList::Entries(v)) => v.join(",").parse(),
                None => Ok(Default::default()),
            }
            .context("trusted_proxies in the config file")?,
        };
        let secret = |name: &str, from_file: Option<SecretString>| {
            env(name).map(SecretString::from).or(from_file)
        };
        Ok(Self {
            database_url,
            listen,
            public_url,
            webhook_max_bytes,
            webhook_max_in_flight: shipsync_web::WEBHOOK_MAX_IN_FLIGHT,
            max_connections: crate::listener::MAX_CONNECTIONS,
            max_connections_per_client,
            trusted_proxies,
            header_timeout,
            idle_timeout,
            body_timeout,
            log_format,
            log_filter: env("RUST_LOG"),
            admin_token: secret("SHIPSYNC_ADMIN_TOKEN", file.admin_token),
            secret_key: secret("SHIPSYNC_SECRET_KEY", file.secret_key),
            allow_private_targets,
            storage,
            jobs,
        })
    }

    /// The engine's configuration for `serve`: its defaults, with what is
    /// stored and kept, how jobs run, and where outbound calls may go.
    pub fn engine_config(&self) -> shipsync_engine::EngineConfig {
        let mut config = shipsync_engine::EngineConfig {
            allow_private_targets: self.allow_private_targets,
            ..shipsync_engine::EngineConfig::default()
        };
        self.storage.apply(&mut config);
        self.jobs.apply(&mut config);
        config
    }

    /// The database URL without its password, for messages.
    pub fn database_url_redacted(&self) -> String {
        crate::server::redact_url(self.database_url.expose_secret())
    }

    /// Opens (and migrates) the database.
    pub async fn open_database(&self) -> Result<shipsync_db::Db> {
        shipsync_db::Db::open(self.database_url.expose_secret())
            .await
            .with_context(|| format!("cannot open the database {}", self.database_url_redacted()))
    }

    /// Whether the database is SQLite (a file or in memory).
    pub fn is_sqlite(&self) -> bool {
        shipsync_db::Backend::of_url(self.database_url.expose_secret())
            == Some(shipsync_db::Backend::Sqlite)
    }

    /// The SQLite database file, when the database is SQLite.
    pub fn sqlite_path(&self) -> Option<PathBuf> {
        let url = self.database_url.expose_secret();
        let rest = url.strip_prefix("sqlite:")?;
        let rest = rest.trim_start_matches("//");
        let path = rest.split('?').next().unwrap_or(rest);
        if path.is_empty() || path == ":memory:" {
            return None;
        }
        Some(PathBuf::from(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_flag_env_file_default() {
        let dir = std::env::temp_dir().join(format!("shipsync-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        std::fs::write(&file, "listen = \"127.0.0.1:7000\"\nwebhook_max_bytes = 10\ndatabase_url = \"sqlite://file.db\"\nidle_timeout_secs = 7\nmax_connections_per_client = 9\n").unwrap();
        let env_of = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let flags = Flags {
            config: Some(file.clone()),
            ..Flags::default()
        };
        let s = Settings::resolve_with(&flags, env_of(&[])).unwrap();
        assert_eq!(s.listen, "127.0.0.1:7000");
        assert_eq!(s.webhook_max_bytes, 10);
        assert_eq!(s.public_url, "http://127.0.0.1:7000");
        assert_eq!(s.idle_timeout, Duration::from_secs(7));
        assert_eq!(s.max_connections_per_client, 9);
        let s = Settings::resolve_with(&flags, env_of(&[("SHIPSYNC_LISTEN", "127.0.0.1:7001")]))
            .unwrap();
        assert_eq!(s.listen, "127.0.0.1:7001");
        let flags2 = Flags {
            listen: Some("127.0.0.1:7002".into()),
            ..flags.clone()
        };
        let s = Settings::resolve_with(&flags2, env_of(&[("SHIPSYNC_LISTEN", "127.0.0.1:7001")]))
            .unwrap();
        assert_eq!(s.listen, "127.0.0.1:7002");
        assert_eq!(s.database_url.expose_secret(), "sqlite://file.db");
        assert_eq!(s.sqlite_path().unwrap(), PathBuf::from("file.db"));
        let s = Settings::resolve_with(&Flags::default(), env_of(&[])).unwrap();
        assert_eq!(s.database_url.expose_secret(), "sqlite://shipsync.db");
        assert_eq!(s.listen, "127.0.0.1:8080");
        assert_eq!(s.webhook_max_bytes, 1_048_576);
        assert!(!s.allow_private_targets);
        std::fs::write(&file, "allow_private_targets = true\n").unwrap();
        let s = Settings::resolve_with(&flags, env_of(&[])).unwrap();
        assert!(s.allow_private_targets);
        let s = Settings::resolve_with(
            &flags,
            env_of(&[("SHIPSYNC_ALLOW_PRIVATE_TARGETS", "false")]),
        )
        .unwrap();
        assert!(!s.allow_private_targets);
        let on = Flags {
            allow_private_targets: Some(true),
            ..Flags::default()
        };
        let s = Settings::resolve_with(&on, env_of(&[("SHIPSYNC_ALLOW_PRIVATE_TARGETS", "false")]))
            .unwrap();
        assert!(s.allow_private_targets);
        assert!(
            Settings::resolve_with(
                &Flags::default(),
                env_of(&[("SHIPSYNC_ALLOW_PRIVATE_TARGETS", "yes please")])
            )
            .is_err()
        );
        assert_eq!(s.header_timeout, Duration::from_secs(10));
        assert_eq!(s.idle_timeout, Duration::from_secs(60));
        assert_eq!(s.body_timeout, Duration::from_secs(30));
        assert_eq!(s.max_connections_per_client, 256);
        let s = Settings::resolve_with(
            &Flags::default(),
            env_of(&[
                ("SHIPSYNC_HEADER_TIMEOUT_SECS", "2"),
                ("SHIPSYNC_IDLE_TIMEOUT_SECS", "3"),
                ("SHIPSYNC_BODY_TIMEOUT_SECS", "4"),
                ("SHIPSYNC_MAX_CONNECTIONS_PER_CLIENT", "5"),
            ]),
        )
        .unwrap();
        assert_eq!(s.header_timeout, Duration::from_secs(2));
        assert_eq!(s.idle_timeout, Duration::from_secs(3));
        assert_eq!(s.body_timeout, Duration::from_secs(4));
        assert_eq!(s.max_connections_per_client, 5);
        for bad in [
            ("SHIPSYNC_HEADER_TIMEOUT_SECS", "0"),
            ("SHIPSYNC_BODY_TIMEOUT_SECS", "soon"),
            ("SHIPSYNC_MAX_CONNECTIONS_PER_CLIENT", "0"),
        ] {
            let pairs: &'static [(&'static str, &'static str)] = Box::leak(Box::new([bad]));
            assert!(
                Settings::resolve_with(&Flags::default(), env_of(pairs)).is_err(),
                "{bad:?}"
            );
        }
        std::fs::write(&file, "bogus = 1\n").unwrap();
        assert!(Settings::resolve_with(&flags, env_of(&[])).is_err());
        assert!(
            Settings::resolve_with(
                &Flags {
                    log_format: Some("xml".into()),
                    ..Flags::default()
                },
                env_of(&[])
            )
            .is_err()
        );
    }

    #[test]
    fn trusted_proxies_env_file_default() {
        let dir = std::env::temp_dir().join(format!("shipsync-cfg-tp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        let flags = Flags {
            config: Some(file.clone()),
            ..Flags::default()
        };
        let proxies = |env: Option<&str>| {
            let env = env.map(str::to_string);
            Settings::resolve_with(&flags, move |k: &str| {
                env.clone().filter(|_| k == "SHIPSYNC_TRUSTED_PROXIES")
            })
            .map(|s| s.trusted_proxies.to_string())
            .map_err(|e| format!("{e:#}"))
        };
        std::fs::write(&file, "").unwrap();
        assert_eq!(proxies(None).unwrap(), "");
        assert!(
            Settings::resolve_with(&Flags::default(), |_: &str| None)
                .unwrap()
                .trusted_proxies
                .is_empty()
        );
        assert_eq!(
            proxies(Some("127.0.0.1,10.0.0.0/8,fd00::/8")).unwrap(),
            "127.0.0.1/32,10.0.0.0/8,fd00::/8"
        );
        std::fs::write(&file, "trusted_proxies = \"10.0.0.0/8, 192.168.0.1\"\n").unwrap();
        assert_eq!(proxies(None).unwrap(), "10.0.0.0/8,192.168.0.1/32");
        // The environment wins over the file.
        assert_eq!(proxies(Some("::1")).unwrap(), "::1/128");
        std::fs::write(&file, "trusted_proxies = [\"127.0.0.1\", \"fd00::/8\"]\n").unwrap();
        assert_eq!(proxies(None).unwrap(), "127.0.0.1/32,fd00::/8");
        // An invalid entry stops the start, named.
        let e = proxies(Some("127.0.0.1,proxy.internal")).unwrap_err();
        assert!(
            e.contains("SHIPSYNC_TRUSTED_PROXIES") && e.contains("\"proxy.internal\""),
            "{e}"
        );
        std::fs::write(&file, "trusted_proxies = [\"10.0.0.0/40\"]\n").unwrap();
        let e = proxies(None).unwrap_err();
        assert!(
            e.contains("trusted_proxies") && e.contains("\"10.0.0.0/40\""),
            "{e}"
        );
    }

    #[test]
    fn storage_settings_env_file_default() {
        let dir = std::env::temp_dir().join(format!("shipsync-cfg-st-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        std::fs::write(
            &file,
            "retain_event_bodies_days = 30\nrefused_record_per_minute = 3\n",
        )
        .unwrap();
        let none = |_: &str| None;
        let s = Settings::resolve_with(&Flags::default(), none).unwrap();
        assert_eq!(s.storage, Storage::default());
        assert_eq!(s.storage.retention.event_bodies_days, 90);
        assert_eq!(s.storage.retention.activity_days, 365);
        assert_eq!(s.storage.retention.refused_days, 7);
        assert_eq!(s.storage.refused_record_per_minute, 10);
        let flags = Flags {
            config: Some(file.clone()),
            ..Flags::default()
        };
        let s = Settings::resolve_with(&flags, |k: &str| {
            (k == "SHIPSYNC_RETAIN_REFUSED_DAYS").then(|| "2".to_string())
        })
        .unwrap();
        assert_eq!(s.storage.retention.event_bodies_days, 30);
        assert_eq!(s.storage.retention.refused_days, 2);
        assert_eq!(s.storage.refused_record_per_minute, 3);
        for bad in ["0", "-1", "many"] {
            let r = Settings::resolve_with(&Flags::default(), |k: &str| {
                (k == "SHIPSYNC_RETAIN_ACTIVITY_DAYS").then(|| bad.to_string())
            });
            assert!(r.is_err(), "{bad}");
        }
    }

    #[test]
    fn debug_shows_no_secret() {
        let token = "adm-token-0123456789abcdef0123456789abcdef";
        let key = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
        let password = "pg-pass-5ecret";
        let dir = std::env::temp_dir().join(format!("shipsync-cfg-dbg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        for (flags, env) in [
            // From the environment.
            (
                Flags::default(),
                vec![
                    ("SHIPSYNC_ADMIN_TOKEN", token.to_string()),
                    ("SHIPSYNC_SECRET_KEY", key.to_string()),
                    (
                        "SHIPSYNC_DATABASE_URL",
                        format!("postgres://shipsync:{password}@db.internal:5432/shipsync"),
                    ),
                ],
            ),
            // From the config file.
            (
                Flags {
                    config: Some(file.clone()),
                    ..Flags::default()
                },
                Vec::new(),
            ),
        ] {
            std::fs::write(
                &file,
                format!(
                    "admin_token = \"{token}\"\nsecret_key = \"{key}\"\ndatabase_url = \"postgres://shipsync:{password}@db.internal:5432/shipsync\"\n"
                ),
            )
            .unwrap();
            let s = Settings::resolve_with(&flags, |k: &str| {
                env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())
            })
            .unwrap();
            // The settings hold the secrets…
            assert_eq!(s.admin_token.as_ref().unwrap().expose_secret(), token);
            assert_eq!(s.secret_key.as_ref().unwrap().expose_secret(), key);
            assert!(s.database_url.expose_secret().contains(password));
            // …and `{:?}` (pretty too) shows none of them.
            for shown in [format!("{s:?}"), format!("{s:#?}")] {
                for secret in [token, key, password] {
                    assert!(!shown.contains(secret), "{secret} in {shown}");
                }
                assert!(shown.contains("[REDACTED]"), "{shown}");
                assert!(
                    shown.contains("postgres://shipsync:***@db.internal:5432/shipsync"),
                    "{shown}"
                );
                assert!(shown.contains("listen: \"127.0.0.1:8080\""), "{shown}");
            }
        }
    }

    #[test]
    fn hidden_job_settings_env_file_default() {
        let dir = std::env::temp_dir().join(format!("shipsync-cfg-jobs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        let d = shipsync_engine::EngineConfig::default();
        let s = Settings::resolve_with(&Flags::default(), |_: &str| None).unwrap();
        assert_eq!(s.jobs, Jobs::default());
        assert_eq!(s.jobs.lease, Duration::from_secs(120));
        assert_eq!(s.jobs.http_timeout, Duration::from_secs(20));
        assert_eq!(s.jobs.unknown_outcome_margin, Duration::from_secs(30));
        assert_eq!(s.jobs.backoff_max, Duration::from_secs(600));
        let e = s.engine_config();
        assert_eq!(
            (
                e.lease,
                e.http_timeout,
                e.unknown_outcome_margin,
                e.backoff_max
            ),
            (
                d.lease,
                d.http_timeout,
                d.unknown_outcome_margin,
                d.backoff_max
            )
        );
        assert_eq!((e.workers, e.max_attempts), (d.workers, d.max_attempts));

        std::fs::write(&file, "job_lease_secs = 7\nbackoff_max_secs = 9\n").unwrap();
        let flags = Flags {
            config: Some(file.clone()),
            allow_private_targets: Some(true),
            ..Flags::default()
        };
        let s = Settings::resolve_with(&flags, |k: &str| match k {
            "SHIPSYNC_HTTP_TIMEOUT_SECS" => Some("2".into()),
            "SHIPSYNC_UNKNOWN_OUTCOME_MARGIN_SECS" => Some("0".into()),
            "SHIPSYNC_BACKOFF_MAX_SECS" => Some("20".into()),
            "SHIPSYNC_REFUSED_RECORD_PER_MINUTE" => Some("4".into()),
            "SHIPSYNC_INGEST_BURST_PER_SEC" => Some("0".into()),
            _ => None,
        })
        .unwrap();
        let e = s.engine_config();
        assert_eq!(e.lease, Duration::from_secs(7));
        assert_eq!(e.http_timeout, Duration::from_secs(2));
        assert_eq!(e.unknown_outcome_margin, Duration::ZERO);
        // The environment wins over the file.
        assert_eq!(e.backoff_max, Duration::from_secs(20));
        assert_eq!(e.refused_record_per_minute, 4);
        assert_eq!(e.ingest_burst_per_sec, 0);
        assert!(e.allow_private_targets);

        for (name, bad) in [
            ("SHIPSYNC_JOB_LEASE_SECS", "0"),
            ("SHIPSYNC_HTTP_TIMEOUT_SECS", "0"),
            ("SHIPSYNC_BACKOFF_MAX_SECS", "0"),
            ("SHIPSYNC_UNKNOWN_OUTCOME_MARGIN_SECS", "-1"),
            ("SHIPSYNC_JOB_LEASE_SECS", "soon"),
        ] {
            let e = Settings::resolve_with(&Flags::default(), |k: &str| {
                (k == name).then(|| bad.to_string())
            })
            .map(|_| ())
            .unwrap_err();
            assert!(format!("{e:#}").contains(name), "{name}={bad}: {e:#}");
        }
    }

    /// `SHIPSYNC_EVENT_RETRY_DELAYS_MS` replaces the whole retry schedule of
    /// outbound event deliveries; by default it is the documented one.
    #[test]
    fn event_retry_delays() {
        let name = "SHIPSYNC_EVENT_RETRY_DELAYS_MS";
        let d = Settings::resolve_with(&Flags::default(), |_: &str| None).unwrap();
        assert_eq!(
            d.engine_config().event_retry_delays,
            shipsync_core::outbound_events::RETRY_DELAYS
        );
        let s = Settings::resolve_with(&Flags::default(), |k: &str| {
            (k == name).then(|| "50, 100,2000".to_string())
        })
        .unwrap();
        assert_eq!(
            s.engine_config().event_retry_delays,
            [50, 100, 2000].map(Duration::from_millis)
        );
        for bad in ["", "5s", "1,,2", "-1"] {
            let e = Settings::resolve_with(&Flags::default(), |k: &str| {
                (k == name).then(|| bad.to_string())
            })
            .map(|_| ())
            .unwrap_err();
            assert!(format!("{e:#}").contains(name), "{bad:?}: {e:#}");
        }
    }
}
