//! The engine wires jobs to domain functions: ingest → merge → ledger →
//! store notification, with workers, retries and backoff.

pub mod alerts;
mod budgets;
mod check;
pub mod connect;
pub mod connections;
pub mod edit;
mod error;
pub mod events_out;
pub mod ingest;
pub mod mappings;
pub mod merchants;
pub mod metrics;
pub mod orders;
pub mod queries;

mod retention;
pub mod runs;
pub mod secrets;
mod shipments;
mod shutdown;
pub mod spans;
mod stores;
pub mod tokens;
pub mod users;
mod worker;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use shipsync_db::{Db, jobs};
use tokio::sync::Notify;

pub use check::{ConnectionTest, Probe, TestReason};
pub use connect::InstallError;
pub use error::EngineError;
pub use ingest::{Delivery, Ingest, IngestError, Outcome, Stored};
pub use metrics::Metrics;
pub use orders::OrderAction;
pub use retention::RetentionCounts;
pub use runs::{Progress, RunCounts};
pub use secrets::SecretBox;
pub use shipments::{MergeOutcome, ShipmentAction};
/// Shopify's order deliveries: signature and contents (the web layer checks
/// them before storing a delivery).
pub use shipsync_shopify::webhook as order_webhook;
pub use shutdown::{Shutdown, ShutdownTrigger, shutdown_pair};
pub use stores::StoreSettings;

/// Tunables; the defaults suit production, tests shorten the waits.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Worker tasks executing jobs.
    pub workers: usize,
    /// How long a claimed job stays leased before another worker may take it.
    pub lease: Duration,
    /// First retry delay; doubles per attempt, with ±20 % jitter.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// After this many failed attempts a shipment goes to `error`.
    pub max_attempts: i64,
    /// Ingest queue capacity (deliveries waiting for their commit).
    pub ingest_capacity: usize,
    /// Deliveries per second from which ingest is in a burst
    /// (`SHIPSYNC_INGEST_BURST_PER_SEC`, 0: never): while it is, the
    /// workers pause (the first runs a job a second), so that the 202 path
    /// has the CPU and the database's write lock; processing catches up
    /// after.
    pub ingest_burst_per_sec: u32,
    /// Timeouts of calls to stores and warehouses.
    pub http_timeout: Duration,
    /// `SHIPSYNC_ALLOW_PRIVATE_TARGETS`: whether calls to stores and
    /// warehouses may reach loopback, private and link-local addresses (and
    /// URLs pointing there may be saved). Off by default.
    pub allow_private_targets: bool,
    /// Refused deliveries (401, 413) recorded per merchant per minute
    /// (`SHIPSYNC_REFUSED_RECORD_PER_MINUTE`); the rest are only counted.
    pub refused_record_per_minute: u32,
    /// What the daily retention job keeps.
    pub retention: Retention,
    /// How long after a store write could have ended (its request timed
    /// out) the store may still show it: a write whose outcome is unknown
    /// is looked for that long before it counts as not made.
    pub unknown_outcome_margin: Duration,
    /// Waits before the 2nd, 3rd, … attempt of an outbound event delivery
    /// (±20 % jitter each); after the last the delivery fails. The hidden
    /// `SHIPSYNC_EVENT_RETRY_DELAYS_MS` replaces it in tests.
    pub event_retry_delays: Vec<Duration>,
    /// Timeout of one outbound event delivery.
    pub event_timeout: Duration,
    /// Alerts (issue 16): how often the conditions are checked
    /// (`SHIPSYNC_ALERT_CHECK_SECS`), how long the first change after a
    /// quiet period waits for more (`SHIPSYNC_ALERT_GATHER_SECS`), and the
    /// length of a policy's "minute" (`SHIPSYNC_ALERT_MINUTE_SECS`, for
    /// tests; an hour is 60 of them).
    pub alerts: alerts::AlertTimes,
}

/// How long stored data is kept (days; `SHIPSYNC_RETAIN_*_DAYS`). Nothing an
/// open shipment, order or run still needs is removed, whatever its age.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Raw bodies of events whose shipments are all completed or archived.
    pub event_bodies_days: u32,
    /// Activity and shipment versions.
    pub activity_days: u32,
    /// Refused deliveries (`invalid_signature`, `too_large`, `rejected`).
    pub refused_days: u32,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            event_bodies_days: 90,
            activity_days: 365,
            refused_days: 7,
        }
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            // Most of a job is waiting on a store or a warehouse: 16 tasks
            // keep their calls overlapping (each store's budget still paces
            // its own calls).
            workers: 16,
            lease: Duration::from_secs(120),
            backoff_base: Duration::from_secs(2),
            backoff_max: Duration::from_secs(600),
            max_attempts: 15,
            ingest_capacity: 4096,
            // Above the 200 shipments/s of the latency target (store calls
            // overlap across workers there), below the 2,000/s of ingest's.
            ingest_burst_per_sec: 1500,
            http_timeout: Duration::from_secs(20),
            unknown_outcome_margin: Duration::from_secs(30),
            refused_record_per_minute: 10,
            retention: Retention::default(),
            allow_private_targets: false,
            event_retry_delays: shipsync_core::outbound_events::RETRY_DELAYS.to_vec(),
            event_timeout: Duration::from_secs(15),
            alerts: alerts::AlertTimes::default(),
        }
    }
}

impl EngineConfig {
    /// Where outbound calls may go.
    pub fn target_policy(&self) -> shipsync_outbound::TargetPolicy {
        shipsync_outbound::TargetPolicy {
            allow_private: self.allow_private_targets,
        }
    }
}

/// Shared state of one shipsync process.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    secrets: SecretBox,
    config: EngineConfig,
    metrics: Metrics,
    wake: Arc<Notify>,
    /// Set while one idle worker watches the clock for due jobs.
    clock_watcher: AtomicBool,
    ingest: Ingest,
    stores: stores::Stores,
    owner: String,
    passwords: users::PasswordWork,
    /// Per worker: when the store write it has under way was recorded
    /// (µs), 0 when none.
    mutations: Vec<AtomicI64>,
    /// Where stores reach this server (`SHIPSYNC_PUBLIC_URL`, known once it
    /// listens): order webhooks are subscribed there.
    public_url: std::sync::RwLock<Option<String>>,
    /// The client of outbound webhooks — event deliveries and alert
    /// messages — built once with the outbound-address policy.
    webhooks_http: reqwest::Client,
    /// When this engine last recorded a 503 of the ingest (µs), for
    /// `ingest.saturated` (recorded at most every few seconds).
    saturated_recorded: AtomicI64,
    /// Webhook key → merchant, for a second at most.
    webhook_keys: merchants::KeyCache,
    /// Stores' open fulfillment orders read ahead.
    read_ahead: shipments::ReadAhead,
}

impl Engine {
    /// Must be called inside a Tokio runtime (it starts the ingest writer).
    pub fn new(db: Db, secrets: SecretBox, config: EngineConfig) -> Result<Self, EngineError> {
        let metrics = Metrics::new();
        let wake = Arc::new(Notify::new());
        let ingest = Ingest::start(
            db.clone(),
            wake.clone(),
            metrics.clone(),
            config.ingest_capacity,
            config.refused_record_per_minute,
            config.ingest_burst_per_sec,
        );
        let stores = stores::Stores::new(
            db.clone(),
            config.http_timeout,
            config.target_policy(),
            budgets::Budgets::new(&db, metrics.clone()),
        )?;
        let webhooks_http = shipsync_outbound::client_builder(config.target_policy())
            .timeout(config.event_timeout)
            .user_agent(concat!("shipsync-events/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| EngineError::Internal(format!("event delivery client: {e}")))?;
        let config_workers = config.workers.max(1);
        Ok(Self {
            inner: Arc::new(Inner {
                owner: shipsync_db::new_id("node"),
                db,
                secrets,
                config,
                metrics,
                wake,
                clock_watcher: AtomicBool::new(false),
                ingest,
                stores,
                passwords: users::PasswordWork::sized_to_cores(),
                mutations: (0..config_workers).map(|_| AtomicI64::new(0)).collect(),
                public_url: std::sync::RwLock::new(None),
                saturated_recorded: AtomicI64::new(0),
                webhook_keys: merchants::KeyCache::default(),
                webhooks_http,
                read_ahead: shipments::ReadAhead::default(),
            }),
        })
    }

    pub(crate) fn db(&self) -> &Db {
        &self.inner.db
    }

    pub fn secrets(&self) -> &SecretBox {
        &self.inner.secrets
    }

    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Where Argon2id work runs (sign-ins, new passwords).
    pub fn passwords(&self) -> &users::PasswordWork {
        &self.inner.passwords
    }

    pub fn ingest(&self) -> &Ingest {
        &self.inner.ingest
    }

    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    /// Wakes idle workers (after enqueueing work outside the ingest path).
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }

    /// Starts the worker tasks, and beside them the SQLite checkpointer and
    /// the stores' read-ahead (`shipments::read_ahead`);
    /// they stop when `shutdown` is notified.
    pub fn start_workers(&self, shutdown: &Shutdown) -> Vec<tokio::task::JoinHandle<()>> {
        let checkpointer = tokio::spawn(checkpointer(self.clone(), shutdown.clone()));
        let read_ahead = tokio::spawn(shipments::read_ahead_loop(self.clone(), shutdown.clone()));
        (0..self.inner.config.workers.max(1))
            // Job processing commits with relaxed durability (see
            // `shipsync_db::relaxed`): its inputs are durable and its steps
            // idempotent; the intent before a store mutation is durable.
            .map(|i| {
                tokio::spawn(shipsync_db::relaxed(worker::run(
                    self.clone(),
                    i,
                    shutdown.clone(),
                )))
            })
            .chain([checkpointer, read_ahead])
            .collect()
    }

    /// How long after it was sent (and recorded) a store write whose
    /// outcome is unknown may still show up in the store: the request
    /// timeout and the margin.
    pub fn unknown_outcome_hold(&self) -> Duration {
        self.inner.config.http_timeout + self.inner.config.unknown_outcome_margin
    }

    /// The current worker has a store write under way, recorded at
    /// `recorded_at` (µs).
    pub(crate) fn mutation_started(&self, recorded_at: i64) {
        if let Some(slot) = worker::current().and_then(|i| self.inner.mutations.get(i)) {
            slot.store(recorded_at.max(1), Ordering::Release);
        }
    }

    /// The current worker's store write is over (answered or failed).
    pub(crate) fn mutation_over(&self) {
        if let Some(slot) = worker::current().and_then(|i| self.inner.mutations.get(i)) {
            slot.store(0, Ordering::Release);
        }
    }

    /// Frees the leases of this process's workers (after stopping them
    /// mid-job at shutdown), so that another node takes their jobs at once;
    /// a worker stopped in the middle of a store write keeps its job's
    /// lease until the write's outcome can no longer change (see
    /// [`Self::unknown_outcome_hold`]). Returns (jobs freed, jobs held).
    pub async fn release_worker_leases(&self) -> Result<(u64, u64), shipsync_db::DbError> {
        let hold = i64::try_from(self.unknown_outcome_hold().as_micros()).unwrap_or(i64::MAX / 4);
        let (mut freed, mut held) = (0, 0);
        for i in 0..self.inner.config.workers.max(1) {
            let owner = worker::owner(self, i);
            let recorded = self.inner.mutations[i].load(Ordering::Acquire);
            if recorded > 0 {
                held += jobs::hold_leases(self.db().pool(), &owner, recorded.saturating_add(hold))
                    .await?;
            } else {
                freed += jobs::release_leases(self.db().pool(), &owner).await?;
            }
        }
        Ok((freed, held))
    }

    /// Forgets the cached store client of a connection (after an edit).
    /// Sets where stores reach this server (the server, once it listens).
    pub fn set_public_url(&self, url: &str) {
        if let Ok(mut u) = self.inner.public_url.write() {
            *u = Some(url.trim_end_matches('/').to_string());
        }
    }

    /// Where stores reach this server, when known.
    pub fn public_url(&self) -> Option<String> {
        self.inner.public_url.read().ok().and_then(|u| u.clone())
    }

    pub fn connection_changed(&self, connection_id: &str) {
        self.inner.stores.forget(connection_id);
        self.webhook_targets_changed();
    }
}

/// How often the SQLite write-ahead log is checkpointed in the background,
/// `in_burst` or not: while webhooks arrive in a burst, often, so that each
/// checkpoint's writes and its fsync of the database file are small (they
/// hold up the fsyncs the 202s wait for: at 2,000 webhooks/s the p99 was
/// 17–26 ms every 200 ms, 7–8 ms every 20 ms); otherwise seldom (each costs
/// CPU: every 20 ms cost 8–16 % more per shipment at 50–200/s).
/// BENCHMARKS.md, the seventh session.
fn checkpoint_every(in_burst: bool) -> Duration {
    Duration::from_millis(if in_burst { 20 } else { 200 })
}

/// Checkpoints the SQLite write-ahead log in the background
/// ([`checkpoint_every`]) until shutdown, so that commits (webhooks wait
/// for theirs) do not.
async fn checkpointer(engine: Engine, mut shutdown: Shutdown) {
    let db = engine.db().clone();
    if db.backend() != shipsync_db::Backend::Sqlite {
        return;
    }
    loop {
        let every = checkpoint_every(engine.ingest().in_burst());
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = tokio::time::sleep(every) => {}
        }
        if let Err(e) = db.checkpoint().await {
            tracing::debug!(error = %e, "background checkpoint failed; the next commit past the bound does it");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::checkpoint_every;

    #[test]
    fn the_log_is_checkpointed_more_often_during_a_burst() {
        assert!(checkpoint_every(true) < checkpoint_every(false));
        assert!(checkpoint_every(true) >= std::time::Duration::from_millis(10));
    }
}
