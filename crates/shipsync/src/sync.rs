//! `shipsync sync shipments`: a shipment pull run by hand, with progress.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, anyhow};
use indicatif::{ProgressBar, ProgressStyle};
use shipsync_engine::{EngineError, RunCounts};

use crate::config::Settings;
use crate::server::command_engine;

pub async fn shipments(
    settings: &Settings,
    connection_id: &str,
    since: Option<jiff::Timestamp>,
) -> Result<()> {
    let (engine, db) = command_engine(settings).await?;
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    bar.set_message("starting the pull…");
    let shown = bar.clone();
    let progress: shipsync_engine::Progress = Arc::new(move |c: &RunCounts| {
        shown.set_message(format!(
            "pages {} · shipments {} · new {} · updated {} · unchanged {} · failed {}",
            c.pages, c.fetched, c.new, c.updated, c.unchanged, c.failed
        ));
    });
    let result = engine
        .sync_shipments_now(connection_id, since, Some(progress))
        .await;
    bar.finish_and_clear();
    db.close().await;
    match result {
        Ok((run_id, c)) => {
            println!(
                "run {run_id} succeeded: {} page(s), {} shipment(s) fetched — {} new (found by this pull), {} updated, {} unchanged, {} failed",
                c.pages, c.fetched, c.new, c.updated, c.unchanged, c.failed
            );
            if c.failed > 0 {
                return Err(anyhow!(
                    "{} shipment(s) could not be read; see the server log and GET /api/v1/events",
                    c.failed
                ));
            }
            Ok(())
        }
        Err(EngineError::NotFound) => Err(anyhow!(
            "no connection {connection_id}: list them with GET /api/v1/connections"
        )),
        Err(e) => Err(anyhow!("the shipment pull failed: {e}")),
    }
}
