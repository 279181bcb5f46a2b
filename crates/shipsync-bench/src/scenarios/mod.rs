//! One module per scenario. Each exposes `Options`, a `Report` (Serialize)
//! with a `table()` for stdout, and `async fn run(&Options) -> Result<Report>`.

pub mod footprint;
pub mod ingest;
pub mod order_latency;
pub mod pull;
pub mod scale_out;
pub mod ship_to_store;
pub mod wave;
