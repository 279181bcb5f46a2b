//! Starting and stopping a shipsync server (used by `serve`, `demo` and the
//! integration tests).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::{Context, Result, bail};
use shipsync_db::Db;
use shipsync_engine::{Engine, EngineConfig, SecretBox};
use shipsync_web::{AppState, WebConfig};
use tokio::sync::Notify;

use crate::config::Settings;

/// The key that encrypts stored secrets: `SHIPSYNC_SECRET_KEY`, or for
/// SQLite a key file kept beside the database.
pub fn secret_box(settings: &Settings) -> Result<SecretBox> {
    if let Some(k) = &settings.secret_key {
        return SecretBox::from_text(k).context("SHIPSYNC_SECRET_KEY");
    }
    match settings.sqlite_path() {
        Some(path) => {
            let mut key = path.into_os_string();
            key.push(".key");
            SecretBox::from_key_file(std::path::Path::new(&key)).context("the database's key file")
        }
        None if settings.database_url.starts_with("sqlite:") => {
            bail!("an in-memory SQLite database needs SHIPSYNC_SECRET_KEY")
        }
        None => bail!(
            "SHIPSYNC_SECRET_KEY is required with PostgreSQL: 32 bytes as 64 hex characters (e.g. `openssl rand -hex 32`), the same on every node"
        ),
    }
}

/// A running server.
pub struct Running {
    pub addr: SocketAddr,
    pub url: String,
    pub engine: Engine,
    shutdown: Arc<Notify>,
    draining: Arc<AtomicBool>,
    server: tokio::task::JoinHandle<()>,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Stops accepting, lets in-flight requests finish, stops the workers.
    pub async fn stop(self) {
        self.draining
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self.shutdown.notify_waiters();
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), self.server).await;
        for w in self.workers {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(10), w).await;
        }
        self.engine.db().close().await;
    }
}

/// Opens the database (migrating it), makes sure an admin token exists, and
/// serves HTTP on `settings.listen` with workers running.
pub async fn start(settings: &Settings, engine_config: EngineConfig) -> Result<Running> {
    let secrets = secret_box(settings)?;
    let db = Db::open(&settings.database_url).await.with_context(|| {
        format!(
            "cannot open the database {}",
            redact_url(&settings.database_url)
        )
    })?;
    ensure_admin_token(&db, settings).await?;
    if db.count_users().await? == 0 {
        eprintln!(
            "\nshipsync: no web-UI user exists yet. Create the first administrator with\n\n    shipsync users create --admin you@example.com\n\n(with the same --database-url), then sign in at {}/\n",
            settings.public_url.trim_end_matches('/')
        );
    }
    if db.backend() == shipsync_db::Backend::Sqlite {
        // SQLite runs one node: leases left behind are a dead process's.
        let n = db.release_all_leases().await?;
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
    let draining = Arc::new(AtomicBool::new(false));
    let state = AppState {
        engine: engine.clone(),
        config: Arc::new(WebConfig {
            public_url,
            webhook_max_bytes: settings.webhook_max_bytes,
            admin_token: settings.admin_token.clone(),
        }),
        draining: draining.clone(),
    };
    let shutdown = Arc::new(Notify::new());
    let mut workers = engine.start_workers(shutdown.clone());
    workers.push(engine.start_scheduler(shutdown.clone()));
    let app = shipsync_web::router(state);
    let stop = shutdown.clone();
    let server = tokio::spawn(async move {
        let r = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.notified().await })
            .await;
        if let Err(e) = r {
            tracing::error!(error = %e, "HTTP server failed");
        }
    });
    Ok(Running {
        addr,
        url: format!("http://{addr}"),
        engine,
        shutdown,
        draining,
        server,
        workers,
    })
}

/// With no `SHIPSYNC_ADMIN_TOKEN` and no stored token, generates one, stores
/// its hash and prints it once.
async fn ensure_admin_token(db: &Db, settings: &Settings) -> Result<()> {
    if settings.admin_token.is_some() || db.count_api_tokens().await? > 0 {
        return Ok(());
    }
    let token = shipsync_engine::secrets::random_token("sst");
    db.insert_api_token(
        &shipsync_engine::secrets::hash_token(&token),
        "admin (generated at first start)",
    )
    .await?;
    eprintln!(
        "\nshipsync: generated an admin API token (shown only this once; store it safely):\n\n    {token}\n\nUse it as `Authorization: Bearer {token}`.\n"
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
