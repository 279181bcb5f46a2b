//! The shipsync benchmark harness (`shipsync-bench`).
//!
//! One module per scenario under [`scenarios`]; the shared pieces are
//! [`process`] (the `shipsync` binary as a child process: `serve`, the JSON
//! API, one-shot commands with RSS sampling), [`store`] (a recorded Shopify
//! sandbox store, shipments for it, the exactly-once check), [`rss`] (`/proc/<pid>/status`
//! sampling), [`table`] (the stdout table), [`machine`] (what it ran on) and
//! [`report`] (the JSON file). Databases are throwaway ones from
//! `shipsync-testkit` (SQLite, or PostgreSQL on the server of
//! `SHIPSYNC_TEST_POSTGRES_URL`), dropped when the run ends or fails.
//!
//! Figures are reported as ratios against a bound measured in the same run
//! (`docs/quality.md`); nothing here asserts on time.

pub mod baseline;
pub mod fsync;
pub mod load;
pub mod machine;
pub mod process;
pub mod report;
pub mod rss;
pub mod scenarios;
pub mod stats;
pub mod store;
pub mod table;
pub mod webhooks;

pub use scenarios::{footprint, ingest, order_latency, pull, scale_out, ship_to_store, wave};

/// Installs the TLS crypto provider reqwest needs (idempotent).
pub fn init_tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// KiB → MB (10^6 bytes), for the tables.
pub fn kib_to_mb(kib: u64) -> f64 {
    kib as f64 * 1024.0 / 1_000_000.0
}
