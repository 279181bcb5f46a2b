//! The durable job queue: a table, not in-memory tasks, so that work
//! acknowledged to a sender survives a crash.
//!
//! A job with a `dedupe_key` exists at most once; enqueueing it again while it
//! is leased marks it to run once more after the current run (`rerun`), so a
//! newer shipment version is never missed by a run already in progress.
//!
//! A job is a [`Job`]: stored as its kind (a column) and its payload (JSON
//! without the kind), so rows queued before the enum existed still decode;
//! a row whose kind is unknown or whose payload does not fit is
//! [`DbError::Corrupt`].

use serde::{Deserialize, Serialize};
use shipsync_core::states::Channel;
use sqlx::any::AnyRow;
use sqlx::{Any, Executor, Row};

use crate::unit::{Conn, Unit};
use crate::{Backend, Db, DbError, new_id, now_micros};

/// Appended to the lease owner of a job held at shutdown.
const HELD: &str = ":held";

/// A unit of work of the queue, with what it works on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Job {
    /// Process a stored webhook delivery.
    ProcessEvent { event_id: String },
    /// Bring the store up to date for one shipment.
    SyncShipment { shipment_id: String },
    /// A run of a Shipments channel.
    PullShipments { run_id: String },
    /// A run of a Sales Orders channel.
    PullOrders { run_id: String },
    /// Send one store order to the warehouse (or, while it is held, look
    /// whether its hold period is over).
    PushOrder { order_id: String },
    /// Apply a store change (cancellation, edit) to an order the warehouse
    /// has, while the warehouse allows it.
    UpdateWarehouseOrder { order_id: String },
    /// Subscribe a store to the order webhooks, or remove them (the Sales
    /// Orders channel switched off, the connection disabled).
    OrderWebhooks { connection_id: String },
    /// The daily retention pass.
    Retention,
    /// Send one outbound event to one subscription (an attempt; retried on
    /// the delivery's own schedule).
    DeliverEvent { delivery_id: String },
    /// Evaluate the alert policies' conditions (issue 16).
    CheckAlerts,
    /// Send a policy's grouped alert messages that are due.
    NotifyAlerts { policy_id: String },
}

impl Job {
    /// The run `run_id` of `channel`.
    pub fn pull(channel: Channel, run_id: String) -> Self {
        match channel {
            Channel::Shipments => Job::PullShipments { run_id },
            Channel::SalesOrders => Job::PullOrders { run_id },
        }
    }

    /// The stored kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Job::ProcessEvent { .. } => "process_event",
            Job::SyncShipment { .. } => "sync_shipment",
            Job::PullShipments { .. } => "pull_shipments",
            Job::PullOrders { .. } => "pull_orders",
            Job::PushOrder { .. } => "push_order",
            Job::UpdateWarehouseOrder { .. } => "update_warehouse_order",
            Job::OrderWebhooks { .. } => "order_webhooks",
            Job::Retention => "retention",
            Job::DeliverEvent { .. } => "deliver_event",
            Job::CheckAlerts => "check_alerts",
            Job::NotifyAlerts { .. } => "notify_alerts",
        }
    }

    /// The key that keeps the job at most once in the queue.
    pub fn dedupe_key(&self) -> String {
        match self {
            Job::ProcessEvent { event_id } => format!("event:{event_id}"),
            Job::SyncShipment { shipment_id } => format!("sync:{shipment_id}"),
            Job::PullShipments { run_id } | Job::PullOrders { run_id } => format!("run:{run_id}"),
            Job::PushOrder { order_id } => format!("push:{order_id}"),
            Job::UpdateWarehouseOrder { order_id } => format!("warehouse:{order_id}"),
            Job::OrderWebhooks { connection_id } => format!("order_webhooks:{connection_id}"),
            Job::Retention => "retention".into(),
            Job::DeliverEvent { delivery_id } => format!("deliver:{delivery_id}"),
            Job::CheckAlerts => "check_alerts".into(),
            Job::NotifyAlerts { policy_id } => format!("notify_alerts:{policy_id}"),
        }
    }

    /// The stored payload: the job as JSON, without its kind.
    pub fn payload(&self) -> Result<String, DbError> {
        let corrupt = |e: &dyn std::fmt::Display| DbError::Corrupt(format!("jobs.payload: {e}"));
        let mut doc = match serde_json::to_value(self).map_err(|e| corrupt(&e))? {
            serde_json::Value::Object(doc) => doc,
            other => return Err(corrupt(&format!("not an object: {other}"))),
        };
        doc.remove("kind");
        serde_json::to_string(&doc).map_err(|e| corrupt(&e))
    }

    /// The job of a stored kind and payload.
    pub fn decode(kind: &str, payload: &str) -> Result<Self, DbError> {
        let corrupt = |e: &dyn std::fmt::Display| {
            DbError::Corrupt(format!("jobs.payload of a {kind:?} job: {e}"))
        };
        let mut doc: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(payload).map_err(|e| corrupt(&e))?;
        doc.insert("kind".into(), kind.into());
        serde_json::from_value(serde_json::Value::Object(doc)).map_err(|e| corrupt(&e))
    }
}

/// A job a worker claimed: its row, and the job it holds.
#[derive(Debug)]
pub struct Claimed {
    pub id: String,
    /// The stored kind, also when it is not a known one.
    pub kind: String,
    pub attempts: i64,
    /// The job, or why its row does not decode ([`DbError::Corrupt`]).
    pub job: Result<Job, DbError>,
}

impl TryFrom<AnyRow> for Claimed {
    type Error = DbError;

    fn try_from(r: AnyRow) -> Result<Self, DbError> {
        let kind: String = r.try_get("kind")?;
        let payload: String = r.try_get("payload")?;
        Ok(Claimed {
            id: r.try_get("id")?,
            job: Job::decode(&kind, &payload),
            kind,
            attempts: r.try_get("attempts")?,
        })
    }
}

/// The insert of [`enqueue`] and [`enqueue_many`]: `rows` tuples.
pub(crate) fn insert_sql(tuples: &str) -> String {
    format!(
        "INSERT INTO jobs (id, kind, dedupe_key, payload, run_at, created_at) VALUES {tuples}
         ON CONFLICT (dedupe_key) DO UPDATE SET rerun = 1,
           run_at = CASE WHEN jobs.run_at < excluded.run_at THEN jobs.run_at ELSE excluded.run_at END,
           payload = excluded.payload"
    )
}

/// Enqueues a job (e.g. inside the caller's transaction), due at `run_at`.
pub async fn enqueue<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    job: &Job,
    run_at: i64,
) -> Result<(), DbError> {
    sqlx::query(sqlx::AssertSqlSafe(insert_sql("($1, $2, $3, $4, $5, $6)")))
        .bind(new_id("job"))
        .bind(job.kind())
        .bind(job.dedupe_key())
        .bind(job.payload()?)
        .bind(run_at)
        .bind(now_micros())
        .execute(ex)
        .await?;
    Ok(())
}

/// Claims up to `n` due jobs for `owner` for `lease_micros`.
pub async fn claim(
    db: &Db,
    owner: &str,
    n: i64,
    lease_micros: i64,
) -> Result<Vec<Claimed>, DbError> {
    claim_in(&mut db.pooled(), owner, n, lease_micros).await
}

/// [`claim`] on `c`.
pub async fn claim_in(
    c: &mut impl Conn,
    owner: &str,
    n: i64,
    lease_micros: i64,
) -> Result<Vec<Claimed>, DbError> {
    let now = now_micros();
    let lock = match c.backend() {
        Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "",
    };
    let sql = format!(
        "UPDATE jobs SET lease_owner = $1, lease_until = $2, rerun = 0
         WHERE id IN (SELECT id FROM jobs WHERE run_at <= $3 AND (lease_until IS NULL OR lease_until < $3)
                      ORDER BY run_at LIMIT $4{lock})
         RETURNING id, kind, payload, attempts"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(owner)
        .bind(now + lease_micros)
        .bind(now)
        .bind(n)
        .fetch_all(c.ex())
        .await?;
    rows.into_iter().map(Claimed::try_from).collect()
}

/// Claims one specific job (the CLI running a job it queued itself);
/// `None` when it is not claimable now.
pub async fn claim_this(
    db: &Db,
    job: &Job,
    owner: &str,
    lease_micros: i64,
) -> Result<Option<Claimed>, DbError> {
    let now = now_micros();
    let rows = sqlx::query(
        "UPDATE jobs SET lease_owner = $1, lease_until = $2, rerun = 0
         WHERE dedupe_key = $3 AND (lease_until IS NULL OR lease_until < $4)
         RETURNING id, kind, payload, attempts",
    )
    .bind(owner)
    .bind(now + lease_micros)
    .bind(job.dedupe_key())
    .bind(now)
    .fetch_all(db.pool())
    .await?;
    rows.into_iter().map(Claimed::try_from).next().transpose()
}

/// The job is done: delete it, unless it was re-enqueued meanwhile, in
/// which case it runs again at once.
pub async fn complete(db: &Db, id: &str, owner: &str) -> Result<(), DbError> {
    complete_in(&mut db.pooled(), id, owner).await
}

/// [`complete`] on `c`.
pub async fn complete_in(c: &mut impl Conn, id: &str, owner: &str) -> Result<(), DbError> {
    let deleted = sqlx::query("DELETE FROM jobs WHERE id = $1 AND lease_owner = $2 AND rerun = 0")
        .bind(id)
        .bind(owner)
        .execute(c.ex())
        .await?;
    if deleted.rows_affected() == 0 {
        sqlx::query(
            "UPDATE jobs SET rerun = 0, lease_owner = NULL, lease_until = NULL, attempts = 0, last_error = NULL, run_at = $2
             WHERE id = $1 AND lease_owner = $3",
        )
        .bind(id)
        .bind(now_micros())
        .bind(owner)
        .execute(c.ex())
        .await?;
    }
    Ok(())
}

/// A worker's turn as one unit: the job it just ran to the end completed
/// ([`complete`]), and the next due jobs claimed ([`claim`]).
pub struct CompleteAndClaim {
    /// The job run to the end, if any.
    pub done: Option<String>,
    pub owner: String,
    pub n: i64,
    pub lease_micros: i64,
}

/// What a worker's turn claimed.
#[derive(Debug)]
pub struct Turn {
    pub jobs: Vec<Claimed>,
    /// Whether more jobs were due and free after the claim (another
    /// worker may take them; when none were, waking one would only have
    /// it claim nothing).
    pub more: bool,
}

impl Unit for CompleteAndClaim {
    type Output = Turn;
    type Error = DbError;

    async fn run<C: Conn>(self, c: &mut C) -> Result<Turn, DbError> {
        if let Some(id) = &self.done {
            complete_in(c, id, &self.owner).await?;
        }
        let jobs = claim_in(c, &self.owner, self.n, self.lease_micros).await?;
        let more = !jobs.is_empty() && any_due(c.ex()).await?;
        Ok(Turn { jobs, more })
    }
}

/// Turns the job `id` that `owner` holds into `next`, in place (same row,
/// same lease, attempts from zero): for a job whose follow-up its worker
/// runs at once, without a row of its own, a claim or a wake. `false`,
/// nothing changed, when the job was enqueued again while it ran
/// (`rerun`: it must run once more as itself) or `next` is queued already
/// (its own row, which the caller enqueues again instead).
pub async fn become_in(
    c: &mut impl Conn,
    id: &str,
    owner: &str,
    next: &Job,
) -> Result<bool, DbError> {
    let turned = sqlx::query(
        "UPDATE jobs SET kind = $1, payload = $2, dedupe_key = $3, attempts = 0, last_error = NULL
         WHERE id = $4 AND lease_owner = $5 AND rerun = 0
           AND NOT EXISTS (SELECT 1 FROM jobs queued WHERE queued.dedupe_key = $3)",
    )
    .bind(next.kind())
    .bind(next.payload()?)
    .bind(next.dedupe_key())
    .bind(id)
    .bind(owner)
    .execute(c.ex())
    .await?;
    Ok(turned.rows_affected() == 1)
}

/// Whether a job is due and free to claim now.
async fn any_due<'e, E: Executor<'e, Database = Any>>(ex: E) -> Result<bool, DbError> {
    let now = now_micros();
    Ok(sqlx::query(
        "SELECT 1 AS due FROM jobs WHERE run_at <= $1 AND (lease_until IS NULL OR lease_until < $1) LIMIT 1",
    )
    .bind(now)
    .fetch_optional(ex)
    .await?
    .is_some())
}

/// The job failed: run it again at `run_at` with one more attempt counted
/// (or at once when it was re-enqueued meanwhile).
pub async fn retry<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    id: &str,
    owner: &str,
    run_at: i64,
    error: &str,
) -> Result<(), DbError> {
    sqlx::query(
        "UPDATE jobs SET attempts = attempts + 1, last_error = $2,
           run_at = CASE WHEN rerun = 1 THEN $3 ELSE $4 END,
           lease_owner = NULL, lease_until = NULL
         WHERE id = $1 AND lease_owner = $5",
    )
    .bind(id)
    .bind(error)
    .bind(now_micros())
    .bind(run_at)
    .bind(owner)
    .execute(ex)
    .await?;
    Ok(())
}

/// Runs the job again at `run_at` without counting an attempt (the other
/// side asked us to wait).
pub async fn defer<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    id: &str,
    owner: &str,
    run_at: i64,
) -> Result<(), DbError> {
    sqlx::query(
        "UPDATE jobs SET run_at = CASE WHEN rerun = 1 THEN $2 ELSE $3 END, lease_owner = NULL, lease_until = NULL
         WHERE id = $1 AND lease_owner = $4",
    )
    .bind(id)
    .bind(now_micros())
    .bind(run_at)
    .bind(owner)
    .execute(ex)
    .await?;
    Ok(())
}

/// Extends the lease of a job `owner` still holds; false when it lost it
/// (expired and taken by another worker, or finished).
pub async fn renew_lease<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    id: &str,
    owner: &str,
    until: i64,
) -> Result<bool, DbError> {
    let r = sqlx::query("UPDATE jobs SET lease_until = $1 WHERE id = $2 AND lease_owner = $3")
        .bind(until)
        .bind(id)
        .bind(owner)
        .execute(ex)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// Frees the leases `owner` holds (a worker stopped mid-job at shutdown):
/// another node may take the jobs at once instead of after the lease.
pub async fn release_leases<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    owner: &str,
) -> Result<u64, DbError> {
    let r = sqlx::query(
        "UPDATE jobs SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = $1",
    )
    .bind(owner)
    .execute(ex)
    .await?;
    Ok(r.rows_affected())
}

/// Keeps the jobs `owner` holds (a worker stopped at shutdown in the
/// middle of a store write) leased until `until`, whoever may claim
/// them: the write's outcome may still change until then. Marked as
/// held, so a restart on SQLite does not free them early either.
pub async fn hold_leases<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    owner: &str,
    until: i64,
) -> Result<u64, DbError> {
    let r = sqlx::query(
        "UPDATE jobs SET lease_owner = lease_owner || $3, lease_until = $2 WHERE lease_owner = $1",
    )
    .bind(owner)
    .bind(until)
    .bind(HELD)
    .execute(ex)
    .await?;
    Ok(r.rows_affected())
}

/// Frees every lease: on a single-node database (SQLite) a lease found at
/// start-up belongs to a process that died, so its jobs may run at once
/// — except those held at shutdown until a store write's outcome is
/// settled ([`hold_leases`]).
pub async fn release_all_leases<'e, E: Executor<'e, Database = Any>>(
    ex: E,
) -> Result<u64, DbError> {
    let r = sqlx::query(
        "UPDATE jobs SET lease_owner = NULL, lease_until = NULL
         WHERE lease_owner IS NOT NULL AND (lease_owner NOT LIKE $1 OR lease_until < $2)",
    )
    .bind(format!("%{HELD}"))
    .bind(now_micros())
    .execute(ex)
    .await?;
    Ok(r.rows_affected())
}

/// Removes a job whatever its state (e.g. its subject was archived).
pub async fn drop<'e, E: Executor<'e, Database = Any>>(ex: E, id: &str) -> Result<(), DbError> {
    sqlx::query("DELETE FROM jobs WHERE id = $1")
        .bind(id)
        .execute(ex)
        .await?;
    Ok(())
}

/// The earliest `run_at` of a job not currently leased, to sleep until.
pub async fn next_at<'e, E: Executor<'e, Database = Any>>(ex: E) -> Result<Option<i64>, DbError> {
    let row = sqlx::query(
        "SELECT MIN(run_at) AS t FROM jobs WHERE lease_until IS NULL OR lease_until < $1",
    )
    .bind(now_micros())
    .fetch_one(ex)
    .await?;
    Ok(row.try_get::<Option<i64>, _>("t")?)
}

pub async fn count<'e, E: Executor<'e, Database = Any>>(ex: E) -> Result<i64, DbError> {
    let row = sqlx::query("SELECT COUNT(*) AS n FROM jobs")
        .fetch_one(ex)
        .await?;
    Ok(row.try_get::<i64, _>("n")?)
}
