//! One module per scenario. Each exposes `Options`, a `Report` (Serialize)
//! with a `table()` for stdout, and `async fn run(&Options) -> Result<Report>`.

pub mod pull;
