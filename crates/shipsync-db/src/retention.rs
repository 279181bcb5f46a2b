//! Retention: what the daily job removes. Each statement works through at
//! most [`BATCH`] rows at a time (short write transactions, SQLite's lock
//! held briefly) and is safe to run twice or on two nodes at once: it only
//! removes what is already past its time.
//!
//! Never removed, whatever its age: what an open shipment (not `completed`
//! or `archived`), an open order (not `shipped`, `closed` or
//! `archived`), an active run (`queued`, `running`) or a pending outbound
//! event delivery still needs; bodies of
//! events not processed yet or needing attention (they are replayed once the
//! mapping is fixed).
//!
//! On SQLite, events, activity and shipment versions are found by id,
//! through the primary key: their ids are ULIDs made when the row was
//! written (at or just after its time), so every row older than the
//! cutoff has an id below [`crate::least_id_at`] of the cutoff plus
//! [`ID_MARGIN`]. The time itself still decides; no index on it is kept
//! for a job that runs once a day while every delivery would pay for it
//! (issue 17, migration 20). PostgreSQL keeps those indexes and selects by
//! time alone: there ids compare in the database's collation, and some
//! locales (Danish's "aa", Estonian's "z") do not sort them by time.

use shipsync_core::states::{DeliveryState, EventOutcome, OrderStatus, RunStatus, ShipmentStatus};

use crate::{Backend, Db, DbError, least_id_at, quoted};

/// Rows per statement.
const BATCH: i64 = 1000;

/// How much later than its time a row's id may have been made (the
/// time is read first, the id made in the same unit; a clock stepped back
/// keeps ids ahead of it, the generator being monotonic). A row whose id
/// is later still waits for the next day's pass.
const ID_MARGIN: i64 = 3600 * 1_000_000;

/// The condition "older than `before`" (bound as `$1`) on the `time`
/// column of `alias` (`"e."`, or `""` for the statement's own table), with,
/// on SQLite, the bound on the ids of rows with `prefix` to bind as `$3`.
fn older(db: &Db, alias: &str, time: &str, prefix: &str, before: i64) -> (String, Option<String>) {
    let by_time = format!("{alias}{time} < $1");
    match db.backend() {
        Backend::Sqlite => (
            format!("{alias}id < $3 AND {by_time}"),
            Some(least_id_at(prefix, before.saturating_add(ID_MARGIN))),
        ),
        Backend::Postgres => (by_time, None),
    }
}

/// Orders still being worked on.
fn open_orders() -> String {
    let done = [
        OrderStatus::Shipped,
        OrderStatus::Closed,
        OrderStatus::Archived,
    ]
    .map(OrderStatus::as_str);
    format!(
        "SELECT o.id FROM orders o WHERE o.status NOT IN ({})",
        quoted(&done)
    )
}

/// Shipments still being worked on, and finished shipments of an order
/// still being worked on.
fn open_shipments() -> String {
    let done = [ShipmentStatus::Completed, ShipmentStatus::Archived].map(ShipmentStatus::as_str);
    format!(
        "SELECT s.id FROM shipments s WHERE s.status NOT IN ({})
        OR s.order_id IN ({})",
        quoted(&done),
        open_orders()
    )
}

/// Clears the raw body of accepted events received before `before` whose
/// shipments are all completed or archived (the summary, headers and
/// body hash stay). Returns how many bodies were cleared.
pub async fn clear_event_bodies(db: &Db, before: i64) -> Result<u64, DbError> {
    let accepted = EventOutcome::Accepted.as_str();
    let open_shipments = open_shipments();
    let (old, ids) = older(db, "e.", "received_at", "evt", before);
    let sql = sql!(
        "UPDATE events SET body = NULL WHERE id IN (
           SELECT e.id FROM events e
           WHERE {old} AND e.body IS NOT NULL AND e.outcome = '{accepted}'
             AND e.shipment_ids <> '[]'
             AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.dedupe_key = 'event:' || e.id)
             AND NOT EXISTS (SELECT 1 FROM shipment_versions v WHERE v.event_id = e.id
                             AND v.shipment_id IN ({open_shipments}))
           LIMIT $2)"
    );
    in_batches(db, sql, before, ids).await
}

/// Deletes refused deliveries (`invalid_signature`, `too_large`,
/// `rejected`) received before `before`.
pub async fn delete_refused_events(db: &Db, before: i64) -> Result<u64, DbError> {
    let refused = quoted(&EventOutcome::REFUSED.map(EventOutcome::as_str));
    let (old, ids) = older(db, "", "received_at", "evt", before);
    let sql = sql!(
        "DELETE FROM events WHERE id IN (
           SELECT id FROM events
           WHERE {old} AND outcome IN ({refused})
           LIMIT $2)"
    );
    in_batches(db, sql, before, ids).await
}

/// Deletes activity from before `before`, except that of open
/// shipments, open orders and active runs.
pub async fn delete_old_activity(db: &Db, before: i64) -> Result<u64, DbError> {
    let (open_shipments, open_orders) = (open_shipments(), open_orders());
    let active = quoted(&RunStatus::ACTIVE.map(RunStatus::as_str));
    let (old, ids) = older(db, "a.", "at", "act", before);
    let sql = sql!(
        "DELETE FROM activity WHERE id IN (
           SELECT a.id FROM activity a
           WHERE {old}
             AND a.subject_id NOT IN ({open_shipments})
             AND a.subject_id NOT IN ({open_orders})
             AND a.subject_id NOT IN (SELECT r.id FROM runs r WHERE r.status IN ({active}))
           LIMIT $2)"
    );
    in_batches(db, sql, before, ids).await
}

/// Deletes shipment versions received before `before`, except those of
/// open shipments (the shipment keeps its current version in its row).
pub async fn delete_old_versions(db: &Db, before: i64) -> Result<u64, DbError> {
    let open_shipments = open_shipments();
    let (old, ids) = older(db, "v.", "received_at", "ver", before);
    let sql = sql!(
        "DELETE FROM shipment_versions WHERE id IN (
           SELECT v.id FROM shipment_versions v
           WHERE {old} AND v.shipment_id NOT IN ({open_shipments})
           LIMIT $2)"
    );
    in_batches(db, sql, before, ids).await
}

/// Deletes outbound event deliveries settled (delivered or failed) and
/// queued before `before`, with their attempts, then the events left
/// without a delivery. A pending delivery stays, whatever its age. Returns
/// how many deliveries were deleted.
pub async fn delete_old_deliveries(db: &Db, before: i64) -> Result<u64, DbError> {
    let pending = DeliveryState::Pending.as_str();
    let settled = format!(
        "SELECT d.id FROM event_deliveries d WHERE d.created_at < $1 AND d.state <> '{pending}'"
    );
    in_batches(
        db,
        sql!(
            "DELETE FROM event_delivery_attempts WHERE id IN (
               SELECT a.id FROM event_delivery_attempts a WHERE a.delivery_id IN ({settled})
               LIMIT $2)"
        ),
        before,
        None,
    )
    .await?;
    let deleted = in_batches(
        db,
        sql!("DELETE FROM event_deliveries WHERE id IN ({settled} LIMIT $2)"),
        before,
        None,
    )
    .await?;
    in_batches(
        db,
        sql!(
            "DELETE FROM outbound_events WHERE id IN (
               SELECT e.id FROM outbound_events e
               WHERE e.created_at < $1
                 AND NOT EXISTS (SELECT 1 FROM event_deliveries d WHERE d.event_id = e.id)
               LIMIT $2)"
        ),
        before,
        None,
    )
    .await?;
    Ok(deleted)
}

/// Runs `sql` (binding `before`, the batch size and, when given, the
/// bound on ids as `$3`) until it affects fewer rows than a batch;
/// returns the total affected.
async fn in_batches(
    db: &Db,
    sql: sqlx::AssertSqlSafe<String>,
    before: i64,
    ids_below: Option<String>,
) -> Result<u64, DbError> {
    let text = sql.0;
    let mut total = 0;
    loop {
        let mut query = sqlx::query(sqlx::AssertSqlSafe(text.clone()))
            .bind(before)
            .bind(BATCH);
        if let Some(bound) = &ids_below {
            query = query.bind(bound.clone());
        }
        let n = query.execute(db.pool()).await?.rows_affected();
        total += n;
        if n < u64::try_from(BATCH).unwrap_or(u64::MAX) {
            return Ok(total);
        }
    }
}
