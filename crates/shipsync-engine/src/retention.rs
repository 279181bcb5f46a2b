//! The daily retention job: raw bodies, activity, shipment versions,
//! settled outbound event deliveries and refused deliveries past their time (`SHIPSYNC_RETAIN_*_DAYS`) are removed;
//! nothing an open shipment, order or run still needs (see
//! `shipsync_db::retention`). One node a day claims the job (a
//! compare-and-set in `meta`), a worker runs it under a lease, and running
//! it twice removes nothing more.

use shipsync_db::jobs::{self, Job};
use shipsync_db::{meta, now_micros, retention};

use crate::Engine;
use crate::error::EngineError;

const DAY_MICROS: i64 = 24 * 3600 * 1_000_000;
/// The first run, an hour after the database's first start: not in the
/// middle of setting it up.
const FIRST_RUN_AFTER_MICROS: i64 = 3600 * 1_000_000;
/// The periodic task's name in `meta`.
const TASK: &str = "retention";

/// What one retention pass removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionCounts {
    pub event_bodies: u64,
    pub refused_events: u64,
    pub activity: u64,
    pub shipment_versions: u64,
    /// Settled outbound event deliveries (with their attempts and events).
    pub event_deliveries: u64,
}

impl Engine {
    /// Queues the retention job when its day has come (one node wins).
    pub(crate) async fn retention_tick(&self) -> Result<(), EngineError> {
        let db = self.db();
        if meta::claim_periodic(db, TASK, now_micros(), DAY_MICROS, FIRST_RUN_AFTER_MICROS).await? {
            jobs::enqueue(db.pool(), &Job::Retention, now_micros()).await?;
            self.wake();
        }
        Ok(())
    }

    /// Removes what is past its time as of `now` (Unix microseconds), per
    /// the engine's [`crate::Retention`]; counts go to `/metrics`
    /// (`shipsync_retention_removed_total{kind}`).
    pub async fn apply_retention(&self, now: i64) -> Result<RetentionCounts, EngineError> {
        let r = self.config().retention;
        let before = |days: u32| now - i64::from(days) * DAY_MICROS;
        let db = self.db();
        let counts = RetentionCounts {
            event_bodies: retention::clear_event_bodies(db, before(r.event_bodies_days)).await?,
            refused_events: retention::delete_refused_events(db, before(r.refused_days)).await?,
            activity: retention::delete_old_activity(db, before(r.activity_days)).await?,
            shipment_versions: retention::delete_old_versions(db, before(r.activity_days)).await?,
            event_deliveries: retention::delete_old_deliveries(db, before(r.activity_days)).await?,
        };
        let m = self.metrics();
        m.retention_removed("event_bodies", counts.event_bodies);
        m.retention_removed("refused_events", counts.refused_events);
        m.retention_removed("activity", counts.activity);
        m.retention_removed("shipment_versions", counts.shipment_versions);
        m.retention_removed("event_deliveries", counts.event_deliveries);
        tracing::info!(?counts, "retention pass done");
        Ok(counts)
    }
}
