//! Prometheus metrics: ingest counts, processing outcomes, ship-to-store
//! latency, webhook requests in flight. Every metric is registered here;
//! `/metrics` is this registry's text.

use std::sync::{Arc, Mutex};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    kind: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RetentionLabels {
    kind: String,
}

#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Mutex<Registry>,
    webhooks: Family<OutcomeLabels, Counter>,
    repeats: Counter,
    refused_unrecorded: Family<OutcomeLabels, Counter>,
    retention: Family<RetentionLabels, Counter>,
    jobs: Family<JobLabels, Counter>,
    ship_to_store: Histogram,
    webhooks_in_flight: Gauge,
    budget_reservations: Family<OutcomeLabels, Counter>,
    budget_wait: Counter<f64, std::sync::atomic::AtomicU64>,
    burst_pauses: Counter,
    read_ahead: Gauge,
    latencies: Mutex<Vec<f64>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("shipsync");
        let webhooks = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "webhooks_received",
            "Deposco webhook deliveries by outcome",
            webhooks.clone(),
        );
        let repeats = Counter::default();
        registry.register(
            "webhook_repeats",
            "Repeat deliveries recognised (nothing new stored)",
            repeats.clone(),
        );
        let refused_unrecorded = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "webhooks_refused_unrecorded",
            "Refused deliveries (bad signature, too large) past SHIPSYNC_REFUSED_RECORD_PER_MINUTE for their merchant: counted, not stored",
            refused_unrecorded.clone(),
        );
        let retention = Family::<RetentionLabels, Counter>::default();
        registry.register(
            "retention_removed",
            "Rows removed (or raw bodies cleared) by the daily retention job, by kind",
            retention.clone(),
        );
        let jobs = Family::<JobLabels, Counter>::default();
        registry.register("jobs", "Processed jobs by kind and result", jobs.clone());
        let ship_to_store = Histogram::new([
            0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
            3600.0,
        ]);
        registry.register(
            "ship_to_store_seconds",
            "Shipment received until the store acknowledged all of it",
            ship_to_store.clone(),
        );
        // Set from the web layer's count when scraped
        // ([`Metrics::set_webhooks_in_flight`]).
        let webhooks_in_flight = Gauge::default();
        registry.register(
            "webhooks_in_flight",
            "Webhook requests being handled now.",
            webhooks_in_flight.clone(),
        );
        let budget_reservations = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "store_budget_reservations",
            "Store calls by what the shared cost budget (PostgreSQL) said: at_once, waited, turned_away (the wait was too long: the job is put back), first_call (the store's bucket not described yet: this call's answer describes it), unshared (the database did not answer: this node's own budget)",
            budget_reservations.clone(),
        );
        let budget_wait = Counter::<f64, std::sync::atomic::AtomicU64>::default();
        registry.register(
            "store_budget_wait_seconds",
            "Seconds store calls were told to wait by the shared cost budget, in total",
            budget_wait.clone(),
        );
        let burst_pauses = Counter::default();
        registry.register(
            "ingest_burst_pauses",
            "Times a processing worker paused while webhooks arrived in a burst (SHIPSYNC_INGEST_BURST_PER_SEC)",
            burst_pauses.clone(),
        );
        let read_ahead = Gauge::default();
        registry.register(
            "store_read_ahead_fulfillment_orders",
            "Open fulfillment orders of stores read ahead on this node, for shipments of orders only in the store",
            read_ahead.clone(),
        );
        Self {
            inner: Arc::new(Inner {
                registry: Mutex::new(registry),
                webhooks,
                repeats,
                refused_unrecorded,
                retention,
                jobs,
                ship_to_store,
                webhooks_in_flight,
                budget_reservations,
                budget_wait,
                burst_pauses,
                read_ahead,
                latencies: Mutex::new(Vec::new()),
            }),
        }
    }

    pub fn ingested(&self, outcome: &str, repeat: bool) {
        if repeat {
            self.inner.repeats.inc();
        } else {
            self.inner
                .webhooks
                .get_or_create(&OutcomeLabels {
                    outcome: outcome.to_string(),
                })
                .inc();
        }
    }

    /// A processing worker paused for an ingest burst.
    pub fn burst_pause(&self) {
        self.inner.burst_pauses.inc();
    }

    pub fn refused_unrecorded(&self, outcome: &str) {
        self.inner
            .refused_unrecorded
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_string(),
            })
            .inc();
    }

    /// `n` rows of `kind` removed by the retention job.
    pub fn retention_removed(&self, kind: &str, n: u64) {
        self.inner
            .retention
            .get_or_create(&RetentionLabels {
                kind: kind.to_string(),
            })
            .inc_by(n);
    }

    pub fn job(&self, kind: &str, result: &str) {
        self.inner
            .jobs
            .get_or_create(&JobLabels {
                kind: kind.to_string(),
                result: result.to_string(),
            })
            .inc();
    }

    pub fn ship_to_store(&self, seconds: f64) {
        self.inner.ship_to_store.observe(seconds);
        if let Ok(mut l) = self.inner.latencies.lock() {
            // A bounded sample for the demo's percentiles.
            if l.len() < 100_000 {
                l.push(seconds);
            }
        }
    }

    /// (p50, p99, count) of ship-to-store seconds observed by this process.
    pub fn ship_to_store_percentiles(&self) -> Option<(f64, f64, usize)> {
        let mut l = self.inner.latencies.lock().ok()?.clone();
        if l.is_empty() {
            return None;
        }
        l.sort_by(f64::total_cmp);
        let pick = |q: f64| l[((l.len() as f64 - 1.0) * q).round() as usize];
        Some((pick(0.5), pick(0.99), l.len()))
    }

    /// Webhook requests being handled now (the web layer counts them; it
    /// sets the gauge before each scrape).
    pub fn set_webhooks_in_flight(&self, n: usize) {
        self.inner
            .webhooks_in_flight
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// Open fulfillment orders read ahead on this node, now.
    pub fn set_read_ahead(&self, n: usize) {
        self.inner
            .read_ahead
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// One store call's reservation in the shared cost budget, and how
    /// long it was told to wait.
    pub fn store_budget(&self, outcome: &str, wait: std::time::Duration) {
        self.inner
            .budget_reservations
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_string(),
            })
            .inc();
        if !wait.is_zero() {
            self.inner.budget_wait.inc_by(wait.as_secs_f64());
        }
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Ok(r) = self.inner.registry.lock() {
            let _ = prometheus_client::encoding::text::encode(&mut out, &r);
        }
        out
    }
}
