//! The scheduler: runs fired from the channels' schedule slots, and a run
//! queued now (API, CLI).

use std::time::Duration;

use crate::shutdown::Shutdown;
use shipsync_core::schedule;
use shipsync_db::rows::QueueRun;

use crate::Engine;
use crate::error::EngineError;

fn job_kind(channel: &str) -> &'static str {
    match channel {
        "sales_orders" => "pull_orders",
        _ => "pull_shipments",
    }
}

impl Engine {
    /// Queues a run now (`POST …/runs`, the CLI). Refuses when the channel or
    /// its connection is off.
    pub async fn run_now(
        &self,
        connection_id: &str,
        channel: &str,
        trigger: &str,
    ) -> Result<QueueRun, EngineError> {
        let db = self.db();
        let c = db
            .get_connection(connection_id)
            .await?
            .ok_or(EngineError::NotFound)?;
        let ch = db
            .get_channel(connection_id, channel)
            .await?
            .ok_or(EngineError::NotFound)?;
        if c.enabled != 1 || ch.enabled != 1 {
            return Err(EngineError::ChannelDisabled);
        }
        let q = db
            .queue_run(connection_id, channel, trigger, None, job_kind(channel))
            .await?;
        self.wake();
        Ok(q)
    }

    /// One scheduler pass: fires every due slot once (across nodes: the
    /// schedule advances by compare-and-set, the run by a unique index), and
    /// collapses missed slots into one catch-up run.
    pub async fn scheduler_tick(&self) -> Result<(), EngineError> {
        let db = self.db();
        let now = jiff::Timestamp::now();
        for ch in db.enabled_channels().await? {
            let Ok(rules) = schedule::parse_schedules(
                &serde_json::from_str(&ch.schedules_json).unwrap_or_default(),
            ) else {
                continue;
            };
            if rules.is_empty() {
                continue;
            }
            let next = schedule::next_fire(&rules, now).map(|t| t.as_microsecond());
            match ch.next_run_at {
                None => {
                    db.advance_schedule(&ch.connection_id, &ch.channel, None, next)
                        .await?;
                }
                Some(due) if due <= now.as_microsecond() => {
                    if db
                        .advance_schedule(&ch.connection_id, &ch.channel, Some(due), next)
                        .await?
                    {
                        match db
                            .queue_run(
                                &ch.connection_id,
                                &ch.channel,
                                "schedule",
                                Some(due),
                                job_kind(&ch.channel),
                            )
                            .await?
                        {
                            QueueRun::Queued(run) => {
                                tracing::info!(run = %run.id, connection = %ch.connection_id, channel = %ch.channel, "scheduled run queued");
                                self.wake();
                            }
                            QueueRun::InProgress(id) => {
                                tracing::info!(active = %id, connection = %ch.connection_id, channel = %ch.channel, "slot skipped: a run is still in progress");
                            }
                        }
                    }
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// Runs the scheduler every second until `shutdown`.
    pub fn start_scheduler(&self, shutdown: &Shutdown) -> tokio::task::JoinHandle<()> {
        let engine = self.clone();
        let mut shutdown = shutdown.clone();
        tokio::spawn(async move {
            loop {
                if let Err(e) = engine.scheduler_tick().await {
                    tracing::warn!(error = %e, "scheduler pass failed");
                }
                if let Err(e) = engine.retention_tick().await {
                    tracing::warn!(error = %e, "could not queue the retention job");
                }
                tokio::select! {
                    _ = shutdown.wait() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        })
    }
}
