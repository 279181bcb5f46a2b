//! The two reference handlers of the `ingest` scenario, on the same route as
//! shipsync (`POST /webhooks/deposco/{key}`), each in its own process
//! (`shipsync-bench baseline …`) or, for the in-process smoke test, on its
//! own tokio runtime with two worker threads (as `shipsync serve` has on two
//! cores):
//!
//! - **bare**: reads the body (same 1 MiB limit), answers 202 without storing.
//! - **naive**: reads the body, then one transaction per request (`BEGIN
//!   IMMEDIATE` on SQLite) inserting the raw delivery (headers + body), commit,
//!   202. It opens the database through `shipsync_db::Db::connect`, so it
//!   has shipsync's exact settings (SQLite WAL + `synchronous=FULL`, pool
//!   sizes; PostgreSQL defaults). It verifies no signature.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use http_body_util::{BodyExt, Limited};
use shipsync_db::Db;

const MAX_BODY: usize = 1_048_576;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Bare,
    Naive,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Bare => "bare",
            Mode::Naive => "naive",
        }
    }
}

async fn read_body(body: Body) -> Result<bytes::Bytes, StatusCode> {
    Limited::new(body, MAX_BODY)
        .collect()
        .await
        .map(|b| b.to_bytes())
        .map_err(|_| StatusCode::PAYLOAD_TOO_LARGE)
}

async fn bare(body: Body) -> impl IntoResponse {
    match read_body(body).await {
        Ok(_) => (StatusCode::ACCEPTED, r#"{"status":"accepted"}"#).into_response(),
        Err(s) => s.into_response(),
    }
}

async fn naive(State(db): State<Db>, headers: HeaderMap, body: Body) -> impl IntoResponse {
    let bytes = match read_body(body).await {
        Ok(b) => b,
        Err(s) => return s.into_response(),
    };
    let list: Vec<(&str, String)> = headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let headers_json = serde_json::to_string(&list).unwrap_or_default();
    let stored = async {
        let mut tx = db.begin().await?;
        sqlx::query(
            "INSERT INTO bench_naive_events (id, received_at, headers_json, body) VALUES ($1, $2, $3, $4)",
        )
        .bind(shipsync_db::new_id("evt"))
        .bind(shipsync_db::now_micros())
        .bind(headers_json)
        .bind(String::from_utf8_lossy(&bytes).into_owned())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok::<_, anyhow::Error>(())
    }
    .await;
    match stored {
        Ok(()) => (StatusCode::ACCEPTED, r#"{"status":"accepted"}"#).into_response(),
        Err(_) => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

/// The router for `mode` (naive: connects to `database_url`, creates its table).
pub async fn router(mode: Mode, database_url: Option<&str>) -> Result<Router> {
    Ok(match mode {
        Mode::Bare => Router::new().route("/webhooks/deposco/{key}", post(bare)),
        Mode::Naive => {
            let url = database_url.context("the naive handler needs a database URL")?;
            let db = Db::connect(url).await?;
            sqlx::query(
                "CREATE TABLE IF NOT EXISTS bench_naive_events (id TEXT PRIMARY KEY, received_at BIGINT NOT NULL, headers_json TEXT NOT NULL, body TEXT NOT NULL)",
            )
            .execute(db.pool())
            .await?;
            Router::new()
                .route("/webhooks/deposco/{key}", post(naive))
                .with_state(db)
        }
    })
}

/// Serves `mode` on `listener` until the process ends (`shipsync-bench baseline`).
pub async fn serve(
    mode: Mode,
    listener: tokio::net::TcpListener,
    database_url: Option<&str>,
) -> Result<()> {
    let app = router(mode, database_url).await?;
    axum::serve(listener, app).await?;
    Ok(())
}

/// Rows the naive handler stored.
pub async fn naive_rows(database_url: &str) -> Result<i64> {
    let db = Db::connect(database_url).await?;
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM bench_naive_events")
        .fetch_one(db.pool())
        .await?;
    Ok(n)
}

/// A running reference handler.
pub enum Running {
    /// `shipsync-bench baseline` as a child process.
    Process {
        child: tokio::process::Child,
        addr: SocketAddr,
    },
    /// On its own runtime thread in this process (smoke test).
    Thread {
        addr: SocketAddr,
        stop: Option<tokio::sync::oneshot::Sender<()>>,
        thread: Option<std::thread::JoinHandle<()>>,
    },
}

impl Running {
    pub fn addr(&self) -> SocketAddr {
        match self {
            Running::Process { addr, .. } | Running::Thread { addr, .. } => *addr,
        }
    }

    pub fn pid(&self) -> Option<u32> {
        match self {
            Running::Process { child, .. } => child.id(),
            Running::Thread { .. } => None,
        }
    }

    pub async fn stop(mut self) {
        match &mut self {
            Running::Process { child, .. } => {
                let _ = child.kill().await;
            }
            Running::Thread { stop, thread, .. } => {
                if let Some(s) = stop.take() {
                    let _ = s.send(());
                }
                if let Some(t) = thread.take() {
                    let _ = tokio::task::spawn_blocking(move || t.join()).await;
                }
            }
        }
    }
}

/// Starts `mode`: as `exe baseline …` when `exe` is given, else on a thread.
pub async fn start(mode: Mode, database_url: Option<&str>, exe: Option<&Path>) -> Result<Running> {
    match exe {
        Some(exe) => {
            let port = crate::process::free_port()?;
            let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
            let mut cmd = tokio::process::Command::new(exe);
            cmd.args([
                "baseline",
                "--mode",
                mode.as_str(),
                "--listen",
                &addr.to_string(),
            ])
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
            if let Some(u) = database_url {
                cmd.args(["--database-url", u]);
            }
            let mut child = cmd
                .spawn()
                .context("cannot start shipsync-bench baseline")?;
            let start = Instant::now();
            loop {
                if let Some(s) = child.try_wait()? {
                    bail!(
                        "shipsync-bench baseline {} exited at start ({s})",
                        mode.as_str()
                    );
                }
                if tokio::net::TcpStream::connect(addr).await.is_ok() {
                    break;
                }
                if start.elapsed() > Duration::from_secs(20) {
                    bail!(
                        "shipsync-bench baseline {} not listening after 20 s",
                        mode.as_str()
                    );
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Ok(Running::Process { child, addr })
        }
        None => {
            let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
            std_listener.set_nonblocking(true)?;
            let addr = std_listener.local_addr()?;
            let url = database_url.map(str::to_owned);
            let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
            let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<Result<()>>();
            let thread = std::thread::spawn(move || {
                let rt = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.into()));
                        return;
                    }
                };
                rt.block_on(async move {
                    let app = match router(mode, url.as_deref()).await {
                        Ok(a) => a,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    let listener = match tokio::net::TcpListener::from_std(std_listener) {
                        Ok(l) => l,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e.into()));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok(()));
                    let _ = axum::serve(listener, app)
                        .with_graceful_shutdown(async {
                            let _ = stop_rx.await;
                        })
                        .await;
                });
            });
            ready_rx.await.context("the baseline thread died")??;
            Ok(Running::Thread {
                addr,
                stop: Some(stop_tx),
                thread: Some(thread),
            })
        }
    }
}
