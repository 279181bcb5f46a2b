//! Log lines: pretty on a terminal, JSON otherwise (`SHIPSYNC_LOG_FORMAT`),
//! filtered by `RUST_LOG`.
//!
//! Work runs inside spans that carry the ids to follow it by: `webhook`
//! (merchant, event, shipment_number), `job` (job, kind, and the shipment,
//! event, run or order it is about), `sync_shipment`, `process_event`,
//! `pull_shipments`, `pull_orders`, `push_order`, `store_call` (operation,
//! connection, shop) and `warehouse_call` (method, path, business_unit). A
//! JSON line lists them all under `spans`, outermost first, so one
//! shipment's path can be followed (README, Operations).

use tracing::Dispatch;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::LogFormat;

/// What is written when `RUST_LOG` is unset or invalid.
pub const DEFAULT_FILTER: &str = "info,sqlx=warn";

/// The subscriber `serve` and the other commands log with, writing to
/// `writer`; `filter` is `RUST_LOG`'s syntax (default [`DEFAULT_FILTER`]).
pub fn dispatch<W>(format: LogFormat, filter: Option<&str>, writer: W) -> Dispatch
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = filter
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new(DEFAULT_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        // Each line carries its current span and the list of all spans.
        LogFormat::Json => Dispatch::new(builder.json().finish()),
        LogFormat::Pretty => Dispatch::new(builder.finish()),
    }
}

/// Logs to stderr for the rest of the process.
pub fn init(format: LogFormat, filter: Option<&str>) {
    dispatch(format, filter, std::io::stderr).init();
}
