//! Durable webhook ingest with group commit.
//!
//! Handlers do the cheap checks, then hand each delivery to one writer task
//! through a bounded channel and wait. The writer stores every delivery of a
//! batch (event row + its processing job) in one transaction, commits once,
//! and only then answers the waiting handlers: one fsync serves many
//! webhooks, and none is acknowledged before it is durable. A full channel
//! means 503 (the sender retries), so memory stays flat under overload.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;

use shipsync_db::events::{self, EventRow};
use shipsync_db::ingest as ingest_rows;
use shipsync_db::jobs::Job;
use shipsync_db::unit::{Conn, Unit};
use shipsync_db::{Db, DbError, new_id, now_micros};
use tokio::sync::{Notify, mpsc, oneshot};

use crate::metrics::Metrics;

/// Repeats of the same body are recognised for this long.
const REPEAT_WINDOW_MICROS: i64 = 24 * 3600 * 1_000_000;
const MAX_BATCH: usize = 256;

/// What the endpoint decided about a delivery before storing it.
pub use shipsync_core::states::EventOutcome as Outcome;

#[derive(Debug)]
pub struct Delivery {
    pub merchant_id: String,
    /// The connection of a store (Shopify) delivery; `None` for Deposco's.
    pub connection_id: Option<String>,
    /// `(name, value)`, in order.
    pub headers: Vec<(String, String)>,
    /// `None` when the body is not kept (too large, bad signature). The
    /// request's own buffer: never copied on its way to the database.
    pub body: Option<Bytes>,
    pub body_size: i64,
    pub webhook_id: Option<String>,
    pub verified: bool,
    pub outcome: Outcome,
    pub detail: Option<String>,
}

impl Delivery {
    /// A delivery refused at the door (`outcome`, why), recorded without its
    /// body.
    pub fn refused(
        merchant_id: &str,
        connection_id: Option<&str>,
        headers: Vec<(String, String)>,
        outcome: Outcome,
        body_size: i64,
        detail: String,
    ) -> Self {
        Self {
            merchant_id: merchant_id.to_string(),
            connection_id: connection_id.map(str::to_string),
            headers,
            body: None,
            body_size,
            webhook_id: None,
            verified: false,
            outcome,
            detail: Some(detail),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    New {
        event_id: String,
    },
    /// A repeat: the original event's id; nothing new was stored.
    Repeat {
        event_id: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("the ingest queue is full")]
    Full,
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
}

/// A delivery, its body hash when it is checked for repeats (computed by
/// the handler's task, not the writer's: see [`body_hash`]), and its
/// handler's answer channel.
type Item = (
    Delivery,
    Option<String>,
    oneshot::Sender<Result<Stored, IngestError>>,
);

#[derive(Clone)]
pub struct Ingest {
    tx: mpsc::Sender<Item>,
    refused: Arc<RefusedLimit>,
    burst: Arc<Burst>,
    metrics: Metrics,
}

/// Length of one window of the arrival count.
const BURST_WINDOW: Duration = Duration::from_millis(100);
/// Deliveries waiting for their commit from which ingest is in a burst,
/// whatever the rate.
const BURST_QUEUE: usize = MAX_BATCH;

/// Whether ingest is in a burst: deliveries arriving at `per_sec` or more
/// (counted per [`BURST_WINDOW`], this one or the last), or a queue
/// waiting for the writer. While it is, the processing workers pause (see
/// `worker::run`; the first runs a job a second), so that the 202 path has
/// the CPU and the database's write lock; processing catches up once the
/// burst is over.
struct Burst {
    /// Deliveries per window from which it is a burst; 0: never.
    per_window: u32,
    started: Instant,
    /// (window number since `started`, arrivals in it, arrivals in the one
    /// before).
    counts: Mutex<(u64, u32, u32)>,
}

impl Burst {
    fn new(per_sec: u32) -> Self {
        let per_window = if per_sec == 0 {
            0
        } else {
            (u64::from(per_sec) * BURST_WINDOW.as_millis() as u64)
                .div_ceil(1000)
                .max(1) as u32
        };
        Self {
            per_window,
            started: Instant::now(),
            counts: Mutex::new((0, 0, 0)),
        }
    }

    /// The window counts rolled forward to now; `arrived` adds one arrival.
    fn roll(&self, arrived: bool) -> (u32, u32) {
        let window = (self.started.elapsed().as_millis() / BURST_WINDOW.as_millis()) as u64;
        let Ok(mut c) = self.counts.lock() else {
            return (0, 0);
        };
        if c.0 != window {
            let last = if c.0 + 1 == window { c.1 } else { 0 };
            *c = (window, 0, last);
        }
        if arrived {
            c.1 = c.1.saturating_add(1);
        }
        (c.1, c.2)
    }

    fn over(&self, queued: usize) -> bool {
        if self.per_window == 0 {
            return false;
        }
        let (now, last) = self.roll(false);
        now >= self.per_window || last >= self.per_window || queued >= BURST_QUEUE
    }
}

/// How many refused deliveries (401, 413) of one merchant are recorded per
/// minute, per node; the rest are only counted. A sender hammering a
/// merchant's URL with bad signatures fills neither the database nor the
/// event list.
struct RefusedLimit {
    per_minute: u32,
    /// Merchant → (minute, deliveries recorded in it).
    seen: Mutex<HashMap<String, (i64, u32)>>,
}

impl RefusedLimit {
    /// Whether one more refused delivery of `merchant_id` may be recorded in
    /// the minute `minute`.
    fn take(&self, merchant_id: &str, minute: i64) -> bool {
        let Ok(mut seen) = self.seen.lock() else {
            return false;
        };
        if seen.len() > 10_000 {
            // Entries of past minutes are spent: forget them.
            seen.retain(|_, (m, _)| *m == minute);
        }
        let entry = seen.entry(merchant_id.to_string()).or_insert((minute, 0));
        if entry.0 != minute {
            *entry = (minute, 0);
        }
        if entry.1 >= self.per_minute {
            return false;
        }
        entry.1 += 1;
        true
    }
}

impl Ingest {
    /// `refused_per_minute`: refused deliveries recorded per merchant per
    /// minute (`SHIPSYNC_REFUSED_RECORD_PER_MINUTE`); `burst_per_sec`: the
    /// arrival rate from which ingest is in a burst
    /// (`SHIPSYNC_INGEST_BURST_PER_SEC`, 0: never).
    pub fn start(
        db: Db,
        wake: Arc<Notify>,
        metrics: Metrics,
        capacity: usize,
        refused_per_minute: u32,
        burst_per_sec: u32,
    ) -> Self {
        let (tx, rx) = mpsc::channel(capacity);
        tokio::spawn(writer(db, rx, wake, metrics.clone()));
        Self {
            tx,
            refused: Arc::new(RefusedLimit {
                per_minute: refused_per_minute,
                seen: Mutex::new(HashMap::new()),
            }),
            burst: Arc::new(Burst::new(burst_per_sec)),
            metrics,
        }
    }

    /// Whether deliveries are arriving in a burst now (see [`Burst`]):
    /// processing steps aside while it lasts.
    pub fn in_burst(&self) -> bool {
        self.burst.over(self.tx.max_capacity() - self.tx.capacity())
    }

    /// Stores a delivery durably; returns after its commit.
    pub async fn submit(&self, delivery: Delivery) -> Result<Stored, IngestError> {
        self.burst.roll(true);
        let (reply, wait) = oneshot::channel();
        let hash = body_hash(&delivery);
        self.tx
            .try_send((delivery, hash, reply))
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => IngestError::Full,
                mpsc::error::TrySendError::Closed(_) => {
                    IngestError::Unavailable("ingest writer stopped".into())
                }
            })?;
        match tokio::time::timeout(Duration::from_secs(10), wait).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(IngestError::Unavailable("ingest writer stopped".into())),
            Err(_) => Err(IngestError::Unavailable(
                "timed out waiting for the database".into(),
            )),
        }
    }

    /// Records a delivery without waiting (refused deliveries: their answer
    /// does not depend on the write).
    pub fn record(&self, delivery: Delivery) {
        let (reply, _) = oneshot::channel();
        let hash = body_hash(&delivery);
        let _ = self.tx.try_send((delivery, hash, reply));
    }

    /// Records a refused delivery (bad signature, too large) unless its
    /// merchant had its share of them this minute; past it, the delivery is
    /// only counted (`shipsync_webhooks_received` and
    /// `shipsync_webhooks_refused_unrecorded`).
    pub fn record_refused(&self, delivery: Delivery) {
        let minute = now_micros().div_euclid(60_000_000);
        if self.refused.take(&delivery.merchant_id, minute) {
            self.record(delivery);
        } else {
            self.metrics.ingested(delivery.outcome.as_str(), false);
            self.metrics.refused_unrecorded(delivery.outcome.as_str());
        }
    }
}

async fn writer(db: Db, mut rx: mpsc::Receiver<Item>, wake: Arc<Notify>, metrics: Metrics) {
    let mut batch: Vec<Item> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(item) => batch.push(item),
                Err(_) => break,
            }
        }
        let mut deliveries = Vec::with_capacity(batch.len());
        let mut hashes = Vec::with_capacity(batch.len());
        let mut replies = Vec::with_capacity(batch.len());
        for (d, hash, reply) in batch.drain(..) {
            replies.push((d.outcome, reply));
            hashes.push(hash);
            deliveries.push(d);
        }
        // One batch at a time, so that a repeat is always looked up after
        // its original's commit. (Several batches in flight were measured,
        // on SQLite and on PostgreSQL: no faster, and slower on PostgreSQL;
        // BENCHMARKS.md, the ninth session.)
        // Ahead of queued job units: the handlers wait for this commit.
        let stored = db.urgent_unit(WriteBatch { deliveries, hashes }).await;
        answer(stored, replies, &wake, &metrics);
    }
}

/// Answers the handlers waiting for a batch, and wakes a worker when it
/// stored a job.
fn answer(
    stored: Result<Vec<Stored>, DbError>,
    replies: Vec<(Outcome, oneshot::Sender<Result<Stored, IngestError>>)>,
    wake: &Notify,
    metrics: &Metrics,
) {
    match stored {
        Ok(stored) => {
            let mut any_job = false;
            for ((outcome, reply), s) in replies.into_iter().zip(stored) {
                if matches!(s, Stored::New { .. }) && outcome == Outcome::Accepted {
                    any_job = true;
                }
                metrics.ingested(outcome.as_str(), matches!(s, Stored::Repeat { .. }));
                let _ = reply.send(Ok(s));
            }
            if any_job {
                // One worker; each worker that finds a job wakes the
                // next, so a burst fans out without every idle worker
                // racing for the write lock at once.
                wake.notify_one();
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, n = replies.len(), "ingest batch failed");
            for (_, reply) in replies {
                let _ = reply.send(Err(IngestError::Unavailable(e.to_string())));
            }
        }
    }
}

/// A batch of deliveries stored in one transaction (a unit: on SQLite it
/// runs whole on the unit thread, ahead of the job units waiting there).
/// The bodies move into the rows (the deliveries are answered, not stored
/// again, when it fails).
struct WriteBatch {
    deliveries: Vec<Delivery>,
    /// Each delivery's body hash, for those checked for repeats (see
    /// [`body_hash`]): computed before the unit, off the unit thread.
    hashes: Vec<Option<String>>,
}

/// The body hash of a delivery checked for repeats: only deliveries that
/// count (accepted, needing attention) with a body are checked, and may be
/// found as originals.
fn body_hash(d: &Delivery) -> Option<String> {
    d.body
        .as_deref()
        .filter(|_| dedupes(d))
        .map(crate::secrets::hash_bytes)
}

impl Unit for WriteBatch {
    type Output = Vec<Stored>;
    type Error = DbError;

    async fn run<C: Conn>(self, c: &mut C) -> Result<Vec<Stored>, DbError> {
        let Self {
            mut deliveries,
            hashes,
        } = self;
        let now = now_micros();
        let since = now - REPEAT_WINDOW_MICROS;

        // The originals already stored, looked up once per merchant of
        // the batch.
        let mut by_webhook_id: HashMap<(&str, String), String> = HashMap::new();
        let mut by_hash: HashMap<(&str, String), String> = HashMap::new();
        let merchants: BTreeSet<&str> = deliveries
            .iter()
            .zip(&hashes)
            .filter(|(_, h)| h.is_some())
            .map(|(d, _)| d.merchant_id.as_str())
            .collect();
        for m in merchants {
            let mine = || {
                deliveries
                    .iter()
                    .zip(&hashes)
                    .filter(move |(d, h)| h.is_some() && d.merchant_id == m)
            };
            let webhook_ids: Vec<&str> = mine()
                .filter_map(|(d, _)| d.webhook_id.as_deref())
                .collect();
            let body_hashes: Vec<&str> = mine().filter_map(|(_, h)| h.as_deref()).collect();
            let (ids, hashes) =
                ingest_rows::originals(c, m, &webhook_ids, &body_hashes, since).await?;
            for (w, id) in ids {
                by_webhook_id.insert((m, w), id);
            }
            for (h, id) in hashes {
                by_hash.insert((m, h), id);
            }
        }

        let mut out = Vec::with_capacity(deliveries.len());
        let mut events = Vec::with_capacity(deliveries.len());
        let mut jobs = Vec::new();
        // Which delivery each new event stores.
        let mut stored_from = Vec::with_capacity(deliveries.len());
        for (i, (d, hash)) in deliveries.iter().zip(hashes).enumerate() {
            let m = d.merchant_id.as_str();
            if let Some(hash) = &hash {
                let original = d
                    .webhook_id
                    .as_ref()
                    .and_then(|w| by_webhook_id.get(&(m, w.clone())))
                    .or_else(|| by_hash.get(&(m, hash.clone())));
                if let Some(original) = original {
                    events::bump_repeat(c.ex(), original).await?;
                    out.push(Stored::Repeat {
                        event_id: original.clone(),
                    });
                    continue;
                }
            }
            let id = new_id("evt");
            if let Some(hash) = &hash {
                // A later delivery of this batch may repeat this one.
                if let Some(w) = &d.webhook_id {
                    by_webhook_id.insert((m, w.clone()), id.clone());
                }
                by_hash.insert((m, hash.clone()), id.clone());
            }
            let counts = dedupes(d);
            events.push(EventRow {
                id: id.clone(),
                merchant_id: d.merchant_id.clone(),
                connection_id: d.connection_id.clone(),
                received_at: now,
                headers: Vec::new(),
                body: None,
                body_size: d.body_size,
                body_hash: hash,
                // Only deliveries that count may claim a webhook-id: a
                // forged one with a bad signature must not block the
                // real one.
                webhook_id: if counts { d.webhook_id.clone() } else { None },
                verified: d.verified,
                outcome: d.outcome,
                detail: d.detail.clone(),
                repeat_count: 0,
                shipment_ids: Vec::new(),
            });
            stored_from.push(i);
            if d.outcome == Outcome::Accepted {
                jobs.push(Job::ProcessEvent {
                    event_id: id.clone(),
                });
            }
            out.push(Stored::New { event_id: id });
        }
        for (e, i) in events.iter_mut().zip(stored_from) {
            e.headers = std::mem::take(&mut deliveries[i].headers);
            e.body = deliveries[i].body.take();
        }
        ingest_rows::insert_events(c, &events).await?;
        ingest_rows::enqueue_jobs(c, &jobs, now).await?;
        Ok(out)
    }
}

/// Deliveries that count (accepted, needing attention) are the ones checked
/// for repeats.
fn dedupes(d: &Delivery) -> bool {
    matches!(d.outcome, Outcome::Accepted | Outcome::NeedsAttention)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_deliveries_are_recorded_up_to_the_limit_per_merchant_and_minute() {
        let limit = RefusedLimit {
            per_minute: 2,
            seen: Mutex::new(HashMap::new()),
        };
        assert!(limit.take("mer_a", 7));
        assert!(limit.take("mer_a", 7));
        assert!(!limit.take("mer_a", 7));
        assert!(limit.take("mer_b", 7), "another merchant has its own share");
        assert!(limit.take("mer_a", 8), "a new minute starts afresh");
        let none = RefusedLimit {
            per_minute: 0,
            seen: Mutex::new(HashMap::new()),
        };
        assert!(!none.take("mer_a", 7));
    }
}
