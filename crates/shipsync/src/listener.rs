//! The HTTP listener, with a cap on the connections held open at once.
//!
//! The webhook route answers 503 past 1,024 requests in flight, but every
//! open connection costs memory before any request on it is looked at
//! (hyper's read and write buffers, some 20 KiB with a 4 KiB body): a flood
//! of 12,000 connections grew the process by 230 MB. Past
//! [`MAX_CONNECTIONS`], a new connection is answered at once with a fixed
//! `503` + `Retry-After: 1` (the contract's error body) and closed, without
//! reading its request, so memory stays bounded however many arrive.
//!
//! One client address (an IPv6 client's /64) may hold at most
//! `SHIPSYNC_MAX_CONNECTIONS_PER_CLIENT` of them (default
//! [`MAX_CONNECTIONS_PER_CLIENT`]); past it its new connections get the same
//! refusal, so one client cannot take every place. A trusted reverse proxy
//! (`SHIPSYNC_TRUSTED_PROXIES`) carries every client's connections, so its
//! own are not capped per client (the proxy must cap them per client
//! itself); they still count towards the global cap.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::serve::Listener;
use shipsync_web::client::TrustedProxies;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// Connections served at once (all routes): four times the webhook route's
/// in-flight limit, so that every admitted webhook request has a connection
/// and a burst of slow answers (2,000 webhooks/s answered in up to 2 s) is
/// queued, not refused, with room for the UI and the API. At ~20 KiB each,
/// some 80 MB at most.
pub const MAX_CONNECTIONS: usize = 4096;
/// Connections one client address may hold at once (default of
/// `SHIPSYNC_MAX_CONNECTIONS_PER_CLIENT`): a sixteenth of the global cap, a
/// quarter of the webhook route's in-flight limit.
pub const MAX_CONNECTIONS_PER_CLIENT: usize = 256;
/// Connections being refused at once (a few KiB each); past it a new one is
/// closed at once.
const MAX_REFUSING: usize = 16_384;
/// How long a refused connection may take to read its answer.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(2);

const REFUSAL_BODY: &str =
    r#"{"error":{"code":"unavailable","message":"shipsync is saturated; retry shortly"}}"#;

/// The whole refusal, built once.
fn refusal() -> &'static str {
    static REFUSAL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{REFUSAL_BODY}",
            REFUSAL_BODY.len()
        )
    });
    &REFUSAL
}

/// Open connections per client address.
type PerClient = Arc<std::sync::Mutex<HashMap<IpAddr, usize>>>;

/// A TCP listener serving at most `max` connections at once, and at most
/// `max_per_client` from one client address other than a trusted proxy's.
pub struct Capped {
    inner: TcpListener,
    max: usize,
    max_per_client: usize,
    trusted: TrustedProxies,
    open: Arc<AtomicUsize>,
    per_client: PerClient,
    refusing: Arc<AtomicUsize>,
    /// Refusals not yet logged, and when the last log line was written.
    unlogged: Refusals,
}

/// Refused connections, logged at most once per [`LOG_EVERY`] (a flood
/// would otherwise write a line per connection).
#[derive(Default)]
struct Refusals {
    full: u64,
    per_client: u64,
    last_client: Option<IpAddr>,
    logged_at: Option<tokio::time::Instant>,
}

const LOG_EVERY: Duration = Duration::from_secs(60);

impl Refusals {
    fn count(&mut self, client: IpAddr, per_client: bool, max_per_client: usize) {
        if per_client {
            self.per_client += 1;
            self.last_client = Some(client);
        } else {
            self.full += 1;
        }
        let now = tokio::time::Instant::now();
        if self.logged_at.is_some_and(|t| now - t < LOG_EVERY) {
            return;
        }
        tracing::warn!(
            at_global_cap = self.full,
            at_client_cap = self.per_client,
            client = ?self.last_client,
            max_per_client,
            "connections refused (503) since the last such line: the server at its connection cap, or a client at SHIPSYNC_MAX_CONNECTIONS_PER_CLIENT"
        );
        *self = Self {
            logged_at: Some(now),
            ..Self::default()
        };
    }
}

impl Capped {
    pub fn new(
        inner: TcpListener,
        max: usize,
        max_per_client: usize,
        trusted: TrustedProxies,
    ) -> Self {
        Self {
            inner,
            max,
            max_per_client,
            trusted,
            open: Arc::default(),
            per_client: Arc::default(),
            refusing: Arc::default(),
            unlogged: Refusals::default(),
        }
    }

    /// Counts a connection from `client` if its address is under its cap.
    fn admit_client(&self, client: IpAddr) -> bool {
        let mut map = self
            .per_client
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = map.entry(client).or_insert(0);
        if *n >= self.max_per_client {
            return false;
        }
        *n += 1;
        true
    }
}

impl Listener for Capped {
    type Io = Counted;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Counted, SocketAddr) {
        loop {
            let (stream, addr) = Listener::accept(&mut self.inner).await;
            let _ = stream.set_nodelay(true);
            let client = shipsync_web::client::key(addr.ip());
            let full = self.open.load(Ordering::Acquire) >= self.max;
            // A trusted proxy's connections are every client's.
            let proxy = self.trusted.contains(addr.ip());
            if !full && (proxy || self.admit_client(client)) {
                self.open.fetch_add(1, Ordering::AcqRel);
                let open = Arc::clone(&self.open);
                let per_client = Arc::clone(&self.per_client);
                return (
                    Counted {
                        stream,
                        open,
                        per_client,
                        client: (!proxy).then_some(client),
                    },
                    addr,
                );
            }
            self.unlogged.count(client, !full, self.max_per_client);
            if self.refusing.fetch_add(1, Ordering::AcqRel) < MAX_REFUSING {
                let refusing = Arc::clone(&self.refusing);
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(REFUSAL_TIMEOUT, refuse(stream)).await;
                    refusing.fetch_sub(1, Ordering::AcqRel);
                });
            } else {
                // A flood beyond even this: close at once.
                self.refusing.fetch_sub(1, Ordering::AcqRel);
                drop(stream);
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// Answers 503 without reading the request, then reads (and drops) what
/// the client sent until it closes: closing with unread data would reset
/// the connection, and the client could lose the answer.
async fn refuse(mut stream: TcpStream) -> io::Result<()> {
    stream.write_all(refusal().as_bytes()).await?;
    stream.shutdown().await?;
    let mut sink = [0u8; 1024];
    while stream.read(&mut sink).await? > 0 {}
    Ok(())
}

/// An accepted connection, counted (globally, and for its client unless it
/// is a trusted proxy) until it is dropped.
pub struct Counted {
    stream: TcpStream,
    open: Arc<AtomicUsize>,
    per_client: PerClient,
    client: Option<IpAddr>,
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::AcqRel);
        let Some(client) = self.client else {
            return;
        };
        let mut map = self
            .per_client
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = map.get_mut(&client) {
            *n -= 1;
            if *n == 0 {
                map.remove(&client);
            }
        }
    }
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_is_a_complete_response() {
        let r = refusal();
        let (head, body) = r.split_once("\r\n\r\n").expect("head and body");
        assert!(head.starts_with("HTTP/1.1 503 "));
        assert!(head.contains("\r\nretry-after: 1"));
        assert!(head.contains(&format!("\r\ncontent-length: {}", body.len())));
        let v: serde_json::Value = serde_json::from_str(body).expect("json");
        assert_eq!(v["error"]["code"], "unavailable");
    }
}
