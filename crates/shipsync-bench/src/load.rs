//! The load generator: HTTP/1.1 POSTs over raw hyper connections (one
//! connection per in-flight request, no pool logic in the measured path).
//!
//! - [`closed_loop`]: `concurrency` workers, each sending its next request as
//!   soon as the previous one is answered — the throughput a server sustains.
//! - [`open_loop`]: requests started at a fixed rate whatever the answers —
//!   latency at a given load. Latency is measured from each request's
//!   *scheduled* start (no coordinated omission), so a generator or server
//!   falling behind shows up in the figures.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::TcpStream;

use crate::stats::{Percentiles, percentiles};

/// One request to send.
#[derive(Debug, Clone)]
pub struct Request {
    pub path: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Bytes,
}

/// Makes the `i`-th request (0-based, unique over a whole scenario).
pub type Factory = Arc<dyn Fn(u64) -> Request + Send + Sync>;

type Conn = SendRequest<Full<Bytes>>;

/// What a load run measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Outcome {
    /// Requests answered 2xx inside the measured window.
    pub ok: u64,
    /// Requests answered with another status inside the window.
    pub not_ok: u64,
    /// 503 answers carrying `Retry-After` (whole run, warm-up included).
    pub unavailable_with_retry_after: u64,
    /// 503 answers without `Retry-After` (whole run).
    pub unavailable_without_retry_after: u64,
    /// Connection or protocol errors (whole run).
    pub errors: u64,
    /// 202 answers over the whole run, warm-up included (for the durability check).
    pub accepted_total: u64,
    /// Requests not sent because the generator hit its in-flight cap (open loop).
    pub not_sent: u64,
    /// The measured window, seconds.
    pub window_secs: f64,
    /// 2xx answers per second over the window.
    pub ok_per_sec: f64,
    /// Latency of the 2xx answers in the window, µs (open loop: from the
    /// scheduled start).
    pub latency: Percentiles,
    /// Open loop only: from the actual send, µs.
    pub service: Option<Percentiles>,
    /// Largest number of requests in flight (open loop).
    pub max_in_flight: u64,
}

#[derive(Default)]
struct Tally {
    ok: u64,
    not_ok: u64,
    ra503: u64,
    plain503: u64,
    errors: u64,
    accepted: u64,
    lat_us: Vec<u64>,
    service_us: Vec<u64>,
}

impl Tally {
    fn merge(&mut self, o: Tally) {
        self.ok += o.ok;
        self.not_ok += o.not_ok;
        self.ra503 += o.ra503;
        self.plain503 += o.plain503;
        self.errors += o.errors;
        self.accepted += o.accepted;
        self.lat_us.extend(o.lat_us);
        self.service_us.extend(o.service_us);
    }

    fn answer(&mut self, a: &Answer, measured: bool, lat: Duration, service: Option<Duration>) {
        if a.status == 202 {
            self.accepted += 1;
        }
        if a.status == 503 {
            if a.retry_after {
                self.ra503 += 1;
            } else {
                self.plain503 += 1;
            }
        }
        if !measured {
            return;
        }
        if (200..300).contains(&a.status) {
            self.ok += 1;
            self.lat_us.push(lat.as_micros() as u64);
            if let Some(s) = service {
                self.service_us.push(s.as_micros() as u64);
            }
        } else {
            self.not_ok += 1;
        }
    }

    fn into_outcome(mut self, window: Duration, open: bool, max_in_flight: u64) -> Outcome {
        let secs = window.as_secs_f64();
        Outcome {
            ok: self.ok,
            not_ok: self.not_ok,
            unavailable_with_retry_after: self.ra503,
            unavailable_without_retry_after: self.plain503,
            errors: self.errors,
            accepted_total: self.accepted,
            not_sent: 0,
            window_secs: secs,
            ok_per_sec: if secs > 0.0 {
                self.ok as f64 / secs
            } else {
                0.0
            },
            latency: percentiles(&mut self.lat_us),
            service: open.then(|| percentiles(&mut self.service_us)),
            max_in_flight,
        }
    }
}

struct Answer {
    status: u16,
    retry_after: bool,
}

async fn connect(addr: SocketAddr) -> Result<Conn> {
    let stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("cannot connect to {addr}"))?;
    stream.set_nodelay(true)?;
    let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

async fn send(conn: &mut Conn, addr: SocketAddr, r: Request) -> Result<Answer> {
    conn.ready().await?;
    let mut b = hyper::Request::post(r.path)
        .header(hyper::header::HOST, addr.to_string())
        .header(hyper::header::CONTENT_TYPE, "application/json");
    for (k, v) in r.headers {
        b = b.header(k, v);
    }
    let resp = conn.send_request(b.body(Full::new(r.body))?).await?;
    let status = resp.status().as_u16();
    let retry_after = resp.headers().contains_key(hyper::header::RETRY_AFTER);
    resp.into_body().collect().await?;
    Ok(Answer {
        status,
        retry_after,
    })
}

/// `concurrency` connections, each sending back to back for `warmup +
/// window`; only answers to requests started inside the window count.
pub async fn closed_loop(
    addr: SocketAddr,
    factory: Factory,
    next: Arc<AtomicU64>,
    concurrency: usize,
    warmup: Duration,
    window: Duration,
) -> Result<Outcome> {
    let start = Instant::now();
    let measure_from = start + warmup;
    let end = measure_from + window;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let factory = factory.clone();
        let next = next.clone();
        tasks.spawn(async move {
            let mut t = Tally::default();
            let mut conn = None;
            loop {
                let now = Instant::now();
                if now >= end {
                    break;
                }
                let c = match conn.as_mut() {
                    Some(c) => c,
                    None => match connect(addr).await {
                        Ok(c) => conn.insert(c),
                        Err(_) => {
                            t.errors += 1;
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        }
                    },
                };
                let req = factory(next.fetch_add(1, Ordering::Relaxed));
                let t0 = Instant::now();
                match send(c, addr, req).await {
                    Ok(a) => {
                        let done = Instant::now();
                        // Counted when started and answered inside the window.
                        let measured = t0 >= measure_from && done <= end;
                        t.answer(&a, measured, done - t0, None);
                    }
                    Err(_) => {
                        t.errors += 1;
                        conn = None;
                    }
                }
            }
            t
        });
    }
    let mut all = Tally::default();
    while let Some(t) = tasks.join_next().await {
        all.merge(t?);
    }
    Ok(all.into_outcome(window, false, concurrency as u64))
}

/// What [`send_all`] measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Delivered {
    /// Requests finally answered 2xx (each request is sent until it is).
    pub ok: u64,
    /// Answers other than 2xx, and connection errors, each followed by a retry.
    pub retries: u64,
    /// Requests given up after [`SEND_ALL_ATTEMPTS`].
    pub given_up: u64,
    /// First send → last answer, seconds.
    pub secs: f64,
    /// From the first attempt to the 2xx, µs.
    pub latency: Percentiles,
}

/// Attempts per request in [`send_all`] before it is given up.
pub const SEND_ALL_ATTEMPTS: u32 = 100;

/// Sends every request of `requests` over `concurrency` connections, each
/// worker taking the next request as soon as its previous one is answered
/// (as fast as the server takes them). A request answered other than 2xx
/// (e.g. 503 under overload) is sent again after a short pause, as a
/// webhook sender retries, up to [`SEND_ALL_ATTEMPTS`] times.
pub async fn send_all(
    addr: SocketAddr,
    requests: Vec<Request>,
    concurrency: usize,
) -> Result<Delivered> {
    let start = Instant::now();
    let queue = Arc::new(Mutex::new(requests.into_iter().rev().collect::<Vec<_>>()));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let queue = queue.clone();
        tasks.spawn(async move {
            let mut d = Delivered::default();
            let mut lat = Vec::new();
            let mut conn: Option<Conn> = None;
            loop {
                let Some(req) = queue.lock().unwrap_or_else(|p| p.into_inner()).pop() else {
                    break;
                };
                let first = Instant::now();
                let mut delivered = false;
                for _ in 0..SEND_ALL_ATTEMPTS {
                    let c = match conn.as_mut() {
                        Some(c) => c,
                        None => match connect(addr).await {
                            Ok(c) => conn.insert(c),
                            Err(_) => {
                                d.retries += 1;
                                tokio::time::sleep(Duration::from_millis(50)).await;
                                continue;
                            }
                        },
                    };
                    match send(c, addr, req.clone()).await {
                        Ok(a) if (200..300).contains(&a.status) => {
                            delivered = true;
                            break;
                        }
                        Ok(_) => d.retries += 1,
                        Err(_) => {
                            d.retries += 1;
                            conn = None;
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                if delivered {
                    d.ok += 1;
                    lat.push(first.elapsed().as_micros() as u64);
                } else {
                    d.given_up += 1;
                }
            }
            (d, lat)
        });
    }
    let mut all = Delivered::default();
    let mut lat = Vec::new();
    while let Some(r) = tasks.join_next().await {
        let (d, l) = r?;
        all.ok += d.ok;
        all.retries += d.retries;
        all.given_up += d.given_up;
        lat.extend(l);
    }
    all.secs = start.elapsed().as_secs_f64();
    all.latency = percentiles(&mut lat);
    Ok(all)
}

/// `rate` requests/s for `warmup + window` (answers to requests scheduled in
/// the window count), at most `max_in_flight` at once (beyond that a request
/// is counted as not sent). Idle connections are reused; new ones are opened
/// when all are busy.
pub async fn open_loop(
    addr: SocketAddr,
    factory: Factory,
    next: Arc<AtomicU64>,
    rate: f64,
    warmup: Duration,
    window: Duration,
    max_in_flight: u64,
) -> Result<Outcome> {
    let idle: Arc<Mutex<Vec<Conn>>> = Arc::new(Mutex::new(Vec::new()));
    let in_flight = Arc::new(AtomicU64::new(0));
    let mut peak = 0u64;
    let mut not_sent = 0u64;
    let start = Instant::now();
    let total = warmup + window;
    let n_total = (total.as_secs_f64() * rate).round() as u64;
    let n_warm = (warmup.as_secs_f64() * rate).round() as u64;
    let mut tasks = tokio::task::JoinSet::new();
    let mut all = Tally::default();
    let mut k = 0u64;
    while k < n_total {
        let due = ((start.elapsed().as_secs_f64() * rate) as u64 + 1).min(n_total);
        while k < due {
            let scheduled = start + Duration::from_secs_f64(k as f64 / rate);
            let measured = k >= n_warm;
            k += 1;
            let now_in_flight = in_flight.load(Ordering::Relaxed);
            if now_in_flight >= max_in_flight {
                not_sent += 1;
                continue;
            }
            peak = peak.max(now_in_flight + 1);
            in_flight.fetch_add(1, Ordering::Relaxed);
            let req = factory(next.fetch_add(1, Ordering::Relaxed));
            let idle = idle.clone();
            let in_flight = in_flight.clone();
            tasks.spawn(async move {
                let mut t = Tally::default();
                let pooled = idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
                let conn = match pooled {
                    Some(c) => Ok(c),
                    None => connect(addr).await,
                };
                match conn {
                    Ok(mut c) => {
                        let sent = Instant::now();
                        match send(&mut c, addr, req).await {
                            Ok(a) => {
                                let done = Instant::now();
                                t.answer(&a, measured, done - scheduled, Some(done - sent));
                                idle.lock().unwrap_or_else(|p| p.into_inner()).push(c);
                            }
                            Err(_) => t.errors += 1,
                        }
                    }
                    Err(_) => t.errors += 1,
                }
                in_flight.fetch_sub(1, Ordering::Relaxed);
                t
            });
        }
        // Reap finished tasks as we go, so the set stays small.
        while let Some(r) = tasks.try_join_next() {
            all.merge(r?);
        }
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    while let Some(t) = tasks.join_next().await {
        all.merge(t?);
    }
    let mut o = all.into_outcome(window, true, peak);
    o.not_sent = not_sent;
    Ok(o)
}
