//! `runs`: the runs of a channel (scheduled, run now, CLI), where each
//! stands and where its pull resumes.

use shipsync_core::states::{Channel, RunStatus, RunTrigger};
use sqlx::any::AnyRow;
use sqlx::{Any, Executor};

use crate::decode::{self, Cols, to_json};
use crate::jobs::{self, Job};
use crate::{Db, DbError, new_id, now_micros, placeholders};

#[derive(Debug, Clone)]
pub struct RunRow {
    pub id: String,
    pub connection_id: String,
    pub channel: Channel,
    pub status: RunStatus,
    pub trigger_kind: RunTrigger,
    /// The schedule slot that fired it (scheduled runs).
    pub slot_at: Option<i64>,
    /// Lower bound of the pull (cursor minus overlap), fixed when it starts.
    pub since_at: Option<i64>,
    /// Next page still to read (resume point after a crash).
    pub page_href: Option<String>,
    /// What the run counted so far (`counts_json`, an object).
    pub counts: serde_json::Value,
    pub error: Option<String>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

const COLS: &str = "id, connection_id, channel, status, trigger_kind, slot_at, since_at, page_href, counts_json, error, created_at, started_at, finished_at";

impl TryFrom<AnyRow> for RunRow {
    type Error = DbError;

    fn try_from(row: AnyRow) -> Result<Self, DbError> {
        let c = Cols::of(&row, "runs");
        Ok(Self {
            id: c.get("id")?,
            connection_id: c.get("connection_id")?,
            channel: c.word("channel")?,
            status: c.word("status")?,
            trigger_kind: c.word("trigger_kind")?,
            slot_at: c.get("slot_at")?,
            since_at: c.get("since_at")?,
            page_href: c.get("page_href")?,
            counts: c.json("counts_json")?,
            error: c.get("error")?,
            created_at: c.get("created_at")?,
            started_at: c.get("started_at")?,
            finished_at: c.get("finished_at")?,
        })
    }
}

/// Why a run could not be queued.
#[derive(Debug, Clone)]
pub enum QueueRun {
    Queued(Box<RunRow>),
    /// Another run of the channel is queued or running: its id.
    InProgress(String),
}

/// `status IN (…)` for the active states, bound from `$first` on.
fn active(first: usize) -> String {
    format!(
        "status IN ({})",
        placeholders(first, RunStatus::ACTIVE.len())
    )
}

/// Saves a run's state, e.g. its resume point inside the transaction that
/// stores the page before it.
pub async fn save<'e, E: Executor<'e, Database = Any>>(ex: E, r: &RunRow) -> Result<(), DbError> {
    sqlx::query(
        "UPDATE runs SET status = $2, since_at = $3, page_href = $4, counts_json = $5, error = $6,
           started_at = $7, finished_at = $8 WHERE id = $1",
    )
    .bind(&r.id)
    .bind(r.status.as_str())
    .bind(r.since_at)
    .bind(&r.page_href)
    .bind(to_json("runs.counts_json", &r.counts)?)
    .bind(&r.error)
    .bind(r.started_at)
    .bind(r.finished_at)
    .execute(ex)
    .await?;
    Ok(())
}

/// Queues a run and its job in one transaction, unless one is already
/// queued or running for the channel (a unique index decides, so this
/// holds across nodes).
pub async fn queue(
    db: &Db,
    connection_id: &str,
    channel: Channel,
    trigger: RunTrigger,
    slot_at: Option<i64>,
) -> Result<QueueRun, DbError> {
    let now = now_micros();
    let run = RunRow {
        id: new_id("run"),
        connection_id: connection_id.to_string(),
        channel,
        status: RunStatus::Queued,
        trigger_kind: trigger,
        slot_at,
        since_at: None,
        page_href: None,
        counts: serde_json::json!({}),
        error: None,
        created_at: now,
        started_at: None,
        finished_at: None,
    };
    let mut tx = db.begin().await?;
    if let Some(id) = active_id(&mut *tx, connection_id, channel).await? {
        return Ok(QueueRun::InProgress(id));
    }
    let inserted = sqlx::query(sql!(
        "INSERT INTO runs ({COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
    ))
    .bind(&run.id)
    .bind(&run.connection_id)
    .bind(run.channel.as_str())
    .bind(run.status.as_str())
    .bind(run.trigger_kind.as_str())
    .bind(run.slot_at)
    .bind(run.since_at)
    .bind(&run.page_href)
    .bind(to_json("runs.counts_json", &run.counts)?)
    .bind(&run.error)
    .bind(run.created_at)
    .bind(run.started_at)
    .bind(run.finished_at)
    .execute(&mut *tx)
    .await;
    if let Err(e) = inserted {
        let e = DbError::from(e);
        if e.is_unique_violation() {
            drop(tx);
            let id = active_id(db.pool(), connection_id, channel)
                .await?
                .unwrap_or_default();
            return Ok(QueueRun::InProgress(id));
        }
        return Err(e);
    }
    jobs::enqueue(&mut *tx, &Job::pull(channel, run.id.clone()), now).await?;
    tx.commit().await?;
    Ok(QueueRun::Queued(Box::new(run)))
}

/// The id of the channel's queued or running run.
async fn active_id<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    connection_id: &str,
    channel: Channel,
) -> Result<Option<String>, DbError> {
    let mut q = sqlx::query_as::<_, (String,)>(sql!(
        "SELECT id FROM runs WHERE connection_id = $1 AND channel = $2 AND {}",
        active(3)
    ))
    .bind(connection_id)
    .bind(channel.as_str());
    for s in RunStatus::ACTIVE {
        q = q.bind(s.as_str());
    }
    Ok(q.fetch_optional(ex).await?.map(|r| r.0))
}

pub async fn get<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    id: &str,
) -> Result<Option<RunRow>, DbError> {
    decode::opt(
        sqlx::query(sql!("SELECT {COLS} FROM runs WHERE id = $1"))
            .bind(id)
            .fetch_optional(ex)
            .await?,
    )
}

/// The channel's newest run.
pub async fn last<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    connection_id: &str,
    channel: Channel,
) -> Result<Option<RunRow>, DbError> {
    decode::opt(
        sqlx::query(sql!(
            "SELECT {COLS} FROM runs WHERE connection_id = $1 AND channel = $2 ORDER BY id DESC LIMIT 1"
        ))
        .bind(connection_id)
        .bind(channel.as_str())
        .fetch_optional(ex)
        .await?,
    )
}
