//! Serving the capped listener's connections (HTTP/1.1), with the two
//! connection timeouts `axum::serve` does not offer:
//!
//! - header read (`SHIPSYNC_HEADER_TIMEOUT_SECS`, default 10 s): a new
//!   connection must send a whole request head within it; so must a request
//!   on a kept-alive connection, counted from its first byte;
//! - keep-alive idle (`SHIPSYNC_IDLE_TIMEOUT_SECS`, default 60 s): a
//!   connection with no request in progress, nothing read and nothing
//!   written for this long is closed.
//!
//! Neither cuts a request being handled or an answer being sent: a request
//! is in progress from its last header byte until its answer's last body
//! byte is handed to hyper (and the idle clock then starts from the last
//! write). One thing is cut while in progress: an answer of which the client
//! has taken no byte for the idle timeout (a client that never reads would
//! otherwise hold its connection for ever). The request body has its own
//! deadline (`shipsync_web`'s body deadline, 408).
//!
//! Why not hyper's `header_read_timeout`: hyper starts that timer as soon as
//! it waits for a request head, which on a kept-alive connection is right
//! after the previous answer; it would close every idle connection after the
//! header timeout and leave no separate idle timeout.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::serve::Listener;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::watch;
use tokio::time::Instant;
use tower::Service;

use crate::listener::{Capped, Counted};

/// The connection timeouts.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub header: Duration,
    pub idle: Duration,
}

impl Timeouts {
    /// How often a connection's watch wakes at most: an event can bring its
    /// deadline no closer than this.
    fn step(&self) -> Duration {
        self.header.min(self.idle)
    }
}

/// Serves `app` on the listener until `stop` resolves, then stops
/// accepting, lets every connection finish the request it is handling
/// (idle ones close at once), and returns when all are closed.
pub async fn serve(
    mut listener: Capped,
    app: Router,
    timeouts: Timeouts,
    stop: impl Future<Output = ()>,
) {
    // Each connection holds a receiver of `signal`, and watches `signal` to
    // learn of the shutdown; `closed` tells when the last one has ended.
    let (signal_tx, signal_rx) = watch::channel(());
    let (closed_tx, closed_rx) = watch::channel(());
    let mut stop = pin!(stop);
    loop {
        let (io, peer) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut stop => break,
        };
        let signal = signal_rx.clone();
        let closed = closed_rx.clone();
        tokio::spawn(serve_connection(
            io,
            peer,
            app.clone(),
            timeouts,
            signal,
            closed,
        ));
    }
    drop(listener);
    drop(signal_rx);
    signal_tx.send_replace(());
    drop(signal_tx);
    drop(closed_rx);
    closed_tx.closed().await;
}

async fn serve_connection(
    io: Counted,
    peer: SocketAddr,
    app: Router,
    timeouts: Timeouts,
    mut signal: watch::Receiver<()>,
    _closed: watch::Receiver<()>,
) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched {
        inner: io,
        activity: Arc::clone(&activity),
    });
    let tracked = Arc::clone(&activity);
    let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        let in_progress = InProgress::begin(&tracked);
        let mut app = app.clone();
        async move {
            let resp = app.call(req.map(Body::new)).await?;
            in_progress.answering();
            Ok::<_, Infallible>(resp.map(|body| {
                Body::new(Tracked {
                    body,
                    _in_progress: in_progress,
                })
            }))
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    // Replaced by the watch below (see the module's documentation).
    builder.header_read_timeout(None);
    let mut conn = pin!(builder.serve_connection(io, service));
    let mut shutting_down = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, %peer, "connection ended with an error");
                }
                return;
            }
            _ = signal.changed(), if !shutting_down => {
                // A connection that has sent nothing yet has nothing to
                // finish (hyper would wait for its first request).
                if activity.state().silent() {
                    return;
                }
                shutting_down = true;
                conn.as_mut().graceful_shutdown();
            }
            why = activity.expired(timeouts) => {
                tracing::debug!(%peer, why, "closing the connection");
                return;
            }
        }
    }
}

/// What the connection is doing, for its timeouts.
struct Activity(Mutex<State>);

struct State {
    /// Requests whose answer is not yet handed over whole.
    in_progress: usize,
    /// Requests received on this connection.
    received: u64,
    /// When the last answer was handed over (or the connection opened).
    idle_since: Instant,
    /// The first byte read while idle: a request head is arriving.
    head_since: Option<Instant>,
    /// The last write that made progress (an answer still being flushed).
    last_write: Instant,
    /// When the answer of the request in progress was ready to be sent.
    answering_since: Option<Instant>,
}

impl State {
    fn new(now: Instant) -> Self {
        Self {
            in_progress: 0,
            received: 0,
            idle_since: now,
            head_since: None,
            last_write: now,
            answering_since: None,
        }
    }

    /// Nothing read or written yet.
    fn silent(&self) -> bool {
        self.received == 0 && self.head_since.is_none()
    }

    fn read(&mut self, now: Instant) {
        if self.in_progress == 0 && self.head_since.is_none() {
            self.head_since = Some(now);
        }
    }

    fn begin(&mut self) {
        self.in_progress += 1;
        self.received += 1;
        self.head_since = None;
        self.answering_since = None;
    }

    fn end(&mut self, now: Instant) {
        self.in_progress -= 1;
        self.answering_since = None;
        if self.in_progress == 0 {
            self.idle_since = now;
            self.head_since = None;
        }
    }

    /// When the connection is to be closed, and why (None while a request
    /// is handled, or its answer is being sent).
    fn deadline(&self, t: Timeouts) -> Option<(Instant, &'static str)> {
        if self.in_progress > 0 {
            return self.answering_since.map(|since| {
                (
                    since.max(self.last_write) + t.idle,
                    "the client took no byte of its answer within the idle timeout",
                )
            });
        }
        if let Some(head) = self.head_since {
            return Some((head + t.header, "header read timeout"));
        }
        let since = self.idle_since.max(self.last_write);
        Some(if self.received == 0 {
            (
                since + t.header,
                "no request within the header read timeout",
            )
        } else {
            (since + t.idle, "keep-alive idle timeout")
        })
    }
}

impl Activity {
    fn new() -> Self {
        Self(Mutex::new(State::new(Instant::now())))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Resolves when the connection has passed its deadline. It wakes at
    /// least every [`Timeouts::step`], so a deadline moved closer (a head
    /// starting to arrive) is never missed by more than that.
    async fn expired(&self, t: Timeouts) -> &'static str {
        loop {
            let now = Instant::now();
            let deadline = self.state().deadline(t);
            let wake = match deadline {
                Some((at, why)) if at <= now => return why,
                Some((at, _)) => at.min(now + t.step()),
                None => now + t.step(),
            };
            tokio::time::sleep_until(wake).await;
        }
    }
}

/// A request in progress, from its head until its answer's body is dropped
/// (hyper drops it once sent whole, or with the connection).
struct InProgress(Arc<Activity>);

impl InProgress {
    fn begin(activity: &Arc<Activity>) -> Self {
        activity.state().begin();
        Self(Arc::clone(activity))
    }

    /// The handler has answered; sending starts.
    fn answering(&self) {
        self.0.state().answering_since = Some(Instant::now());
    }
}

impl Drop for InProgress {
    fn drop(&mut self) {
        self.0.state().end(Instant::now());
    }
}

/// An answer's body, keeping its request in progress until dropped.
struct Tracked {
    body: Body,
    _in_progress: InProgress,
}

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The connection's socket, telling [`Activity`] of reads and writes.
struct Watched {
    inner: Counted,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.state().read(Instant::now());
        }
        r
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.state().last_write = Instant::now();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.state().last_write = Instant::now();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Timeouts = Timeouts {
        header: Duration::from_secs(10),
        idle: Duration::from_secs(60),
    };

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn deadlines_follow_the_connection() {
        let t0 = Instant::now();
        let at = |s: &State| s.deadline(T).map(|d| d.0);
        let mut s = State::new(t0);
        assert!(s.silent());
        // A new connection: the header timeout from its start, also once
        // bytes arrive.
        assert_eq!(at(&s), Some(t0 + secs(10)));
        s.read(t0 + secs(3));
        assert!(!s.silent());
        assert_eq!(at(&s), Some(t0 + secs(13)));
        // A request being handled has no deadline, however long it takes
        // and whatever it reads (its body).
        s.begin();
        s.read(t0 + secs(500));
        assert_eq!(at(&s), None);
        // Its answer being sent: cut only when the client takes nothing of
        // it for the idle timeout.
        s.answering_since = Some(t0 + secs(540));
        assert_eq!(at(&s), Some(t0 + secs(600)));
        s.last_write = t0 + secs(550);
        assert_eq!(at(&s), Some(t0 + secs(610)));
        // Answered: the idle timeout from then, or from the last write.
        s.end(t0 + secs(600));
        assert_eq!(at(&s), Some(t0 + secs(660)));
        s.last_write = t0 + secs(605);
        assert_eq!(at(&s), Some(t0 + secs(665)));
        // The next request's first byte: the header timeout from it.
        s.read(t0 + secs(640));
        assert_eq!(at(&s), Some(t0 + secs(650)));
        s.read(t0 + secs(645));
        assert_eq!(at(&s), Some(t0 + secs(650)));
        // Two requests at once (pipelined): in progress until both end.
        s.begin();
        s.begin();
        s.end(t0 + secs(700));
        assert_eq!(at(&s), None);
        s.end(t0 + secs(701));
        assert_eq!(at(&s), Some(t0 + secs(761)));
    }

    #[test]
    fn the_watch_wakes_often_enough() {
        let short_idle = Timeouts {
            header: secs(10),
            idle: secs(2),
        };
        assert_eq!(T.step(), secs(10));
        assert_eq!(short_idle.step(), secs(2));
    }
}
