//! Settings: flag > environment > config file (TOML) > default.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
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
    database_url: Option<String>,
    listen: Option<String>,
    public_url: Option<String>,
    webhook_max_bytes: Option<usize>,
    log_format: Option<String>,
    admin_token: Option<String>,
    secret_key: Option<String>,
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

#[derive(Clone)]
pub struct Settings {
    pub database_url: String,
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
    pub admin_token: Option<String>,
    pub secret_key: Option<String>,
    /// `SHIPSYNC_ALLOW_PRIVATE_TARGETS`: outbound calls (and saved URLs) may
    /// reach non-public addresses.
    pub allow_private_targets: bool,
    /// What is kept, and for how long.
    pub storage: Storage,
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
        let engine = shipsync_engine::EngineConfig::default();
        Self {
            retention: engine.retention,
            refused_record_per_minute: engine.refused_record_per_minute,
        }
    }
}

impl Storage {
    fn resolve(env: &impl Fn(&str) -> Option<String>, file: &FileConfig) -> Result<Self> {
        let d = Self::default();
        let number = |name: &str, from_file: Option<u32>, default: u32, min: u32| -> Result<u32> {
            let n = match env(name) {
                Some(v) => v
                    .trim()
                    .parse()
                    .with_context(|| format!("{name}={v:?} is not a whole number"))?,
                None => from_file.unwrap_or(default),
            };
            if n < min {
                bail!("{name} must be at least {min}");
            }
            Ok(n)
        };
        Ok(Self {
            retention: shipsync_engine::Retention {
                event_bodies_days: number(
                    "SHIPSYNC_RETAIN_EVENT_BODIES_DAYS",
                    file.retain_event_bodies_days,
                    d.retention.event_bodies_days,
                    1,
                )?,
                activity_days: number(
                    "SHIPSYNC_RETAIN_ACTIVITY_DAYS",
                    file.retain_activity_days,
                    d.retention.activity_days,
                    1,
                )?,
                refused_days: number(
                    "SHIPSYNC_RETAIN_REFUSED_DAYS",
                    file.retain_refused_days,
                    d.retention.refused_days,
                    1,
                )?,
            },
            refused_record_per_minute: number(
                "SHIPSYNC_REFUSED_RECORD_PER_MINUTE",
                file.refused_record_per_minute,
                d.refused_record_per_minute,
                0,
            )?,
        })
    }

    /// Puts these settings into an engine configuration.
    pub fn apply(&self, engine: &mut shipsync_engine::EngineConfig) {
        engine.retention = self.retention;
        engine.refused_record_per_minute = self.refused_record_per_minute;
    }
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("database_url", &self.database_url)
            .field("listen", &self.listen)
            .field("public_url", &self.public_url)
            .field("webhook_max_bytes", &self.webhook_max_bytes)
            .field("log_format", &self.log_format)
            .field("allow_private_targets", &self.allow_private_targets)
            .field("storage", &self.storage)
            .field(
                "max_connections_per_client",
                &self.max_connections_per_client,
            )
            .field("trusted_proxies", &self.trusted_proxies)
            .field("header_timeout", &self.header_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("body_timeout", &self.body_timeout)
            .finish_non_exhaustive()
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// A whole number of seconds (at least 1) from the environment, the config
/// file (the same name in lower case without `SHIPSYNC_`) or `default`.
fn seconds(
    name: &str,
    env: impl Fn(&str) -> Option<String>,
    file: Option<u64>,
    default: u64,
) -> Result<Duration> {
    let secs = match env(name) {
        Some(v) => v
            .trim()
            .parse()
            .with_context(|| format!("{name}={v:?} is not a whole number of seconds"))?,
        None => file.unwrap_or(default),
    };
    if secs == 0 {
        bail!("{name} must be at least 1 second");
    }
    Ok(Duration::from_secs(secs))
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
        let database_url = flags
            .database_url
            .clone()
            .or_else(|| env("SHIPSYNC_DATABASE_URL"))
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
        let max_connections_per_client = match env("SHIPSYNC_MAX_CONNECTIONS_PER_CLIENT") {
            Some(v) => v.trim().parse().with_context(|| {
                format!("SHIPSYNC_MAX_CONNECTIONS_PER_CLIENT={v:?} is not a number of connections")
            })?,
            None => file
                .max_connections_per_client
                .unwrap_or(crate::listener::MAX_CONNECTIONS_PER_CLIENT),
        };
        if max_connections_per_client == 0 {
            bail!("SHIPSYNC_MAX_CONNECTIONS_PER_CLIENT must be at least 1");
        }
        let trusted_proxies = match env("SHIPSYNC_TRUSTED_PROXIES") {
            Some(v) => v.parse().context("SHIPSYNC_TRUSTED_PROXIES")?,
            None => match file.trusted_proxies {
                Some(ProxyList::Text(v)) => v.parse(),
                Some(ProxyList::Entries(v)) => v.join(",").parse(),
                None => Ok(Default::default()),
            }
            .context("trusted_proxies in the config file")?,
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
            admin_token: env("SHIPSYNC_ADMIN_TOKEN").or(file.admin_token),
            secret_key: env("SHIPSYNC_SECRET_KEY").or(file.secret_key),
            allow_private_targets,
            storage,
        })
    }

    /// The SQLite database file, when the database is SQLite.
    pub fn sqlite_path(&self) -> Option<PathBuf> {
        let rest = self.database_url.strip_prefix("sqlite:")?;
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
        assert_eq!(s.database_url, "sqlite://file.db");
        assert_eq!(s.sqlite_path().unwrap(), PathBuf::from("file.db"));
        let s = Settings::resolve_with(&Flags::default(), env_of(&[])).unwrap();
        assert_eq!(s.database_url, "sqlite://shipsync.db");
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
}
