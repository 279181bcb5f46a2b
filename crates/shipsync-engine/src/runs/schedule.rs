//! The scheduler: runs fired from the channels' schedule slots, and a run
//! queued now (API, CLI).

use std::time::Duration;

use crate::shutdown::Shutdown;
use shipsync_core::schedule;
use shipsync_core::states::{Channel, RunTrigger};
use shipsync_db::channels;
use shipsync_db::connections;
use shipsync_db::runs::{self, QueueRun};

use crate::Engine;
use crate::error::EngineError;

impl Engine {
    /// Queues a run now (`POST …/runs`, the CLI). Refuses when the channel or
    /// its connection is off.
    pub async fn run_now(
        &self,
        connection_id: &str,
        channel: Channel,
        trigger: RunTrigger,
    ) -> Result<QueueRun, EngineError> {
        let db = self.db();
        let c = connections::get(db.pool(), connection_id)
            .await?
            .ok_or(EngineError::NotFound)?;
        let ch = channels::get(db.pool(), connection_id, channel)
            .await?
            .ok_or(EngineError::NotFound)?;
        if !c.enabled || !ch.enabled {
            return Err(EngineError::ChannelDisabled);
        }
        let q = runs::queue(db, connection_id, channel, trigger, None).await?;
        self.wake();
        Ok(q)
    }

    /// One scheduler pass: fires every due slot once (across nodes: the
    /// schedule advances by compare-and-set, the run by a unique index), and
    /// collapses missed slots into one catch-up run.
    pub async fn scheduler_tick(&self) -> Result<(), EngineError> {
        let db = self.db();
        let now = jiff::Timestamp::now();
        for ch in channels::enabled(db.pool()).await? {
            let Ok(rules) = schedule::parse_schedules(&ch.schedules) else {
                continue;
            };
            if rules.is_empty() {
                continue;
            }
            let next = schedule::next_fire(&rules, now).map(|t| t.as_microsecond());
            match ch.next_run_at {
                None => {
                    channels::advance_schedule(
                        db.pool(),
                        &ch.connection_id,
                        ch.channel,
                        None,
                        next,
                    )
                    .await?;
                }
                Some(due) if due <= now.as_microsecond() => {
                    if channels::advance_schedule(
                        db.pool(),
                        &ch.connection_id,
                        ch.channel,
                        Some(due),
                        next,
                    )
                    .await?
                    {
                        match runs::queue(
                            db,
                            &ch.connection_id,
                            ch.channel,
                            RunTrigger::Schedule,
                            Some(due),
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
                if let Err(e) = engine.alerts_tick().await {
                    tracing::warn!(error = %e, "could not queue the alert check");
                }
                tokio::select! {
                    _ = shutdown.wait() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        })
    }
}
