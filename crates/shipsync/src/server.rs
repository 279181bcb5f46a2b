//! Starting and stopping a shipsync server (used by `serve`, `demo` and the
//! integration tests).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use secrecy::ExposeSecret;
use shipsync_db::Db;
use shipsync_engine::{Engine, EngineConfig, SecretBox, ShutdownTrigger, shutdown_pair};
use shipsync_web::{AppState, WebConfig};

use crate::config::Settings;

/// An engine for a command that works on the database without serving
/// (`sync`, `mappings`): the database, its key, no workers. The caller
/// closes the returned database when done.
pub async fn command_engine(settings: &Settings) -> Result<(Engine, Db)> {
    let db = settings.open_database().await?;
    let secrets = secret_box(settings, &db).await?;
    let config = EngineConfig {
        allow_private_targets: settings.allow_private_targets,
        ..EngineConfig::default()
    };
    let engine = Engine::new(db.clone(), secrets, config).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok((engine, db))
}

/// The key that encrypts stored secrets: `SHIPSYNC_SECRET_KEY`, or for
/// SQLite a key file kept beside the database (created, mode 0600, while
/// the database holds nothing sealed). Refused — never replaced — when it
/// does not open what the database holds, or the key file is missing while
/// the database holds sealed data, or other users may read the key file.
pub async fn secret_box(settings: &Settings, db: &Db) -> Result<SecretBox> {
    use shipsync_engine::secrets::{holds_sealed_data, key_fits};
    let key_file = settings.sqlite_path().map(|p| {
        let mut key = p.into_os_string();
        key.push(".key");
        std::path::PathBuf::from(key)
    });
    let (secrets, source) = match (&settings.secret_key, &key_file) {
        (Some(k), _) => (
            SecretBox::from_text(k.expose_secret()).context("SHIPSYNC_SECRET_KEY")?,
            "SHIPSYNC_SECRET_KEY".to_string(),
        ),
        (None, Some(path)) => match SecretBox::load_key_file(path)? {
            Some(b) => (b, format!("the key file {}", path.display())),
            None if holds_sealed_data(db).await? => bail!(
                "the database holds encrypted credentials but its key file {} is missing. Restore {} from your backup (it is the file `<database>.key` next to the database), or set SHIPSYNC_SECRET_KEY to the key they were encrypted with. shipsync did not start; no stored credential was changed.",
                path.display(),
                path.display()
            ),
            None => (
                SecretBox::create_key_file(path)?,
                format!("the key file {}", path.display()),
            ),
        },
        (None, None) if settings.is_sqlite() => {
            bail!("an in-memory SQLite database needs SHIPSYNC_SECRET_KEY")
        }
        (None, None) => bail!(
            "SHIPSYNC_SECRET_KEY is required with PostgreSQL: 32 bytes as 64 hex characters (e.g. `openssl rand -hex 32`), the same on every node"
        ),
    };
    if !key_fits(db, &secrets).await? {
        let restore = match (&settings.secret_key, &key_file) {
            (Some(_), Some(path)) => format!(
                "set SHIPSYNC_SECRET_KEY to the key they were encrypted with, or unset it to use the key file {} (restored from your backup if need be)",
                path.display()
            ),
            (None, Some(path)) => format!(
                "restore the key file {} from your backup, or set SHIPSYNC_SECRET_KEY (it wins over the file) to the key they were encrypted with",
                path.display()
            ),
            (_, None) => "set SHIPSYNC_SECRET_KEY to the key they were encrypted with (the same on every node)".into(),
        };
        bail!(
            "the secret key from {source} does not open the credentials stored in this database (a different key): {restore}. shipsync did not start; no stored credential was changed."
        );
    }
    Ok(secrets)
}

/// The generated admin token's file: next to a SQLite database
/// (`<database>.admin-token`), else `shipsync-admin-token` in the working
/// directory.
pub fn admin_token_path(settings: &Settings) -> std::path::PathBuf {
    match settings.sqlite_path() {
        Some(p) => {
            let mut f = p.into_os_string();
            f.push(".admin-token");
            f.into()
        }
        None => std::path::PathBuf::from("shipsync-admin-token"),
    }
}

/// An `SHIPSYNC_ADMIN_TOKEN` shorter than this is refused: it is always
/// accepted, so it must not be guessable.
pub const MIN_ADMIN_TOKEN_CHARS: usize = 32;

/// How long a stopping server gives in-flight requests and jobs before it
/// stops the jobs where they are and frees their leases.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// A running server.
pub struct Running {
    pub addr: SocketAddr,
    pub url: String,
    pub engine: Engine,
    shutdown: ShutdownTrigger,
    draining: Arc<AtomicBool>,
    server: tokio::task::JoinHandle<()>,
    workers: Vec<tokio::task::JoinHandle<()>>,
    /// Held while serving a SQLite file: a second `serve` is refused.
    _lock: Option<ServeLock>,
}

impl Running {
    /// Drains and stops, within [`DRAIN_TIMEOUT`] plus a moment: readiness
    /// answers 503, no new connection is accepted, requests in flight are
    /// answered (a webhook's 202 only once stored), and workers finish their
    /// job. Whatever is still running at the deadline is stopped where it is
    /// (every job is safe to run again) and its lease freed, so another node
    /// takes it at once. The ingest writer commits what it was given before
    /// the database closes.
    pub async fn stop(self) {
        let started = std::time::Instant::now();
        self.draining
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self.shutdown.trigger();
        let deadline = tokio::time::Instant::now() + DRAIN_TIMEOUT;
        let mut server = self.server;
        if tokio::time::timeout_at(deadline, &mut server)
            .await
            .is_err()
        {
            tracing::warn!("requests still in flight at the drain deadline; closing them");
            server.abort();
        }
        let mut stopped_mid_job = 0;
        for mut w in self.workers {
            if tokio::time::timeout_at(deadline, &mut w).await.is_err() {
                w.abort();
                let _ = w.await;
                stopped_mid_job += 1;
            }
        }
        if stopped_mid_job > 0 {
            match self.engine.release_worker_leases().await {
                Ok((freed, held)) => tracing::info!(
                    workers = stopped_mid_job,
                    jobs = freed,
                    held,
                    "stopped jobs still running at the drain deadline; their leases are freed, except those stopped in the middle of a store write (held until its outcome is settled)"
                ),
                Err(e) => {
                    tracing::warn!(error = %e, "could not free the leases of stopped jobs; they run again when the leases expire")
                }
            }
        }
        let _ = tokio::time::timeout(Duration::from_secs(2), self.engine.close()).await;
        tracing::info!(
            seconds = started.elapsed().as_secs_f64(),
            "shipsync stopped"
        );
    }
}

/// An exclusive lock on `<database file>.lock` for as long as a `serve` runs
/// on a SQLite file: SQLite is single-node, and two servers on one file would
/// each take the other's jobs for a dead process's. Other commands (`sync`,
/// `users`, `migrate`) do not take it. The operating system frees the lock
/// when the process ends, however it ends.
pub struct ServeLock {
    _file: std::fs::File,
}

impl ServeLock {
    pub fn acquire(database: &std::path::Path) -> Result<Self> {
        use std::io::Write;
        let mut path = database.as_os_str().to_owned();
        path.push(".lock");
        let path = std::path::PathBuf::from(path);
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("cannot open the lock file {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&path).unwrap_or_default();
                let holder = holder.trim();
                bail!(
                    "another `shipsync serve` is already running on the SQLite database {}{} (it holds {}). \
                     SQLite runs one node only: stop the other server first, or use PostgreSQL to run several nodes. \
                     Other commands (sync, users, migrate) may still be used while it runs.",
                    database.display(),
                    if holder.is_empty() {
                        String::new()
                    } else {
                        format!(", process {holder}")
                    },
                    path.display()
                );
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("cannot lock {}", path.display()));
            }
        }
        file.set_len(0)?;
        write!(file, "{}", std::process::id())?;
        file.flush()?;
        Ok(Self { _file: file })
    }
}

/// Opens the database (migrating it), makes sure an admin token exists, and
/// serves HTTP on `settings.listen` with workers running.
pub async fn start(settings: &Settings, mut engine_config: EngineConfig) -> Result<Running> {
    // The operator's setting, whatever the caller's engine tunables say.
    engine_config.allow_private_targets = settings.allow_private_targets;
    let lock = settings
        .sqlite_path()
        .map(|p| ServeLock::acquire(&p))
        .transpose()?;
    if let Some(t) = &settings.admin_token
        && t.expose_secret().chars().count() < MIN_ADMIN_TOKEN_CHARS
    {
        bail!(
            "SHIPSYNC_ADMIN_TOKEN (or admin_token in the config file) is {} characters long; it must be at least {MIN_ADMIN_TOKEN_CHARS} (generate one with `openssl rand -hex 32`), or leave it unset to have a token generated",
            t.expose_secret().chars().count()
        );
    }
    let db = settings.open_database().await?;
    let secrets = secret_box(settings, &db).await?;
    ensure_admin_token(&db, settings).await?;
    if shipsync_db::users::count(db.pool()).await? == 0 {
        eprintln!(
            "\nshipsync: no web-UI user exists yet. Create the first administrator with\n\n    shipsync users create --admin you@example.com\n\n(with the same --database-url), then sign in at {}/\n",
            settings.public_url.trim_end_matches('/')
        );
    }
    if db.backend() == shipsync_db::Backend::Sqlite {
        // SQLite runs one node: leases left behind are a dead process's.
        let n = shipsync_db::jobs::release_all_leases(db.pool()).await?;
        if n > 0 {
            tracing::info!(jobs = n, "resumed jobs left running by a previous process");
        }
    }
    let engine = Engine::new(db, secrets, engine_config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let listener = tokio::net::TcpListener::bind(&settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let addr = listener.local_addr()?;
    let public_url = if settings.public_url.ends_with(":0") {
        format!("http://{addr}")
    } else {
        settings.public_url.clone()
    };
    engine.set_public_url(&public_url);
    if !settings.trusted_proxies.is_empty() {
        tracing::info!(
            trusted_proxies = %settings.trusted_proxies,
            "the client of a request from these reverse proxies is read from X-Forwarded-For, and their connections are not capped per client"
        );
    }
    let draining = Arc::new(AtomicBool::new(false));
    let state = AppState {
        engine: engine.clone(),
        config: Arc::new(WebConfig {
            public_url,
            webhook_max_bytes: settings.webhook_max_bytes,
            webhook_max_in_flight: settings.webhook_max_in_flight,
            admin_token: settings
                .admin_token
                .as_ref()
                .map(|t| t.expose_secret().to_owned()),
            body_timeout: settings.body_timeout,
            trusted_proxies: settings.trusted_proxies.clone(),
        }),
        draining: draining.clone(),
        throttle: shipsync_web::throttle::Throttle::default(),
    };
    let (shutdown, signal) = shutdown_pair();
    let mut workers = engine.start_workers(&signal);
    workers.push(engine.start_scheduler(&signal));
    let app = shipsync_web::router(state);
    let mut stop = signal;
    let listener = crate::listener::Capped::new(
        listener,
        settings.max_connections,
        settings.max_connections_per_client,
        settings.trusted_proxies.clone(),
    );
    let timeouts = crate::connections::Timeouts {
        header: settings.header_timeout,
        idle: settings.idle_timeout,
    };
    let server = tokio::spawn(crate::connections::serve(
        listener,
        app,
        timeouts,
        async move { stop.wait().await },
    ));
    Ok(Running {
        addr,
        url: format!("http://{addr}"),
        engine,
        shutdown,
        draining,
        server,
        workers,
        _lock: lock,
    })
}

/// With no `SHIPSYNC_ADMIN_TOKEN` and no stored token, generates one,
/// writes it to a file only this user may read ([`admin_token_path`]),
/// stores its hash, and prints where it is — never the token itself, which
/// would end up in logs.
async fn ensure_admin_token(db: &Db, settings: &Settings) -> Result<()> {
    if settings.admin_token.is_some() || shipsync_db::api_tokens::count(db.pool()).await? > 0 {
        return Ok(());
    }
    let token = shipsync_engine::secrets::random_token("sst");
    let path = admin_token_path(settings);
    // A file left from an earlier database holds a token this one does not
    // know: replace it (written anew, so with mode 0600 whatever it had).
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot replace {}", path.display())),
    }
    shipsync_engine::secrets::write_private(&path, &format!("{token}\n"))
        .with_context(|| format!("cannot write the admin token to {}", path.display()))?;
    if let Err(e) = shipsync_db::api_tokens::insert_admin(
        db.pool(),
        &shipsync_engine::secrets::hash_token(&token),
        "admin (generated at first start)",
    )
    .await
    {
        let _ = std::fs::remove_file(&path);
        return Err(e.into());
    }
    let shown = std::fs::canonicalize(&path).unwrap_or(path);
    eprintln!(
        "\nshipsync: generated an admin API token and wrote it to {} (readable by this user only). Use it as `Authorization: Bearer $(cat {})`; move it somewhere safe and delete the file.\n",
        shown.display(),
        shown.display()
    );
    Ok(())
}

/// A database URL without its password, for messages.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}
