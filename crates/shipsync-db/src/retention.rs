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

use shipsync_core::states::{DeliveryState, EventOutcome, OrderStatus, RunStatus, ShipmentStatus};

use crate::{Db, DbError, quoted};

/// Rows per statement.
const BATCH: i64 = 1000;

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
    let sql = sql!(
        "UPDATE events SET body = NULL WHERE id IN (
           SELECT e.id FROM events e
           WHERE e.received_at < $1 AND e.body IS NOT NULL AND e.outcome = '{accepted}'
             AND e.shipment_ids <> '[]'
             AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.dedupe_key = 'event:' || e.id)
             AND NOT EXISTS (SELECT 1 FROM shipment_versions v WHERE v.event_id = e.id
                             AND v.shipment_id IN ({open_shipments}))
           LIMIT $2)"
    );
    in_batches(db, sql, before).await
}

/// Deletes refused deliveries (`invalid_signature`, `too_large`,
/// `rejected`) received before `before`.
pub async fn delete_refused_events(db: &Db, before: i64) -> Result<u64, DbError> {
    let refused = quoted(&EventOutcome::REFUSED.map(EventOutcome::as_str));
    let sql = sql!(
        "DELETE FROM events WHERE id IN (
           SELECT id FROM events
           WHERE received_at < $1 AND outcome IN ({refused})
           LIMIT $2)"
    );
    in_batches(db, sql, before).await
}

/// Deletes activity from before `before`, except that of open
/// shipments, open orders and active runs.
pub async fn delete_old_activity(db: &Db, before: i64) -> Result<u64, DbError> {
    let (open_shipments, open_orders) = (open_shipments(), open_orders());
    let active = quoted(&RunStatus::ACTIVE.map(RunStatus::as_str));
    let sql = sql!(
        "DELETE FROM activity WHERE id IN (
           SELECT a.id FROM activity a
           WHERE a.at < $1
             AND a.subject_id NOT IN ({open_shipments})
             AND a.subject_id NOT IN ({open_orders})
             AND a.subject_id NOT IN (SELECT r.id FROM runs r WHERE r.status IN ({active}))
           LIMIT $2)"
    );
    in_batches(db, sql, before).await
}

/// Deletes shipment versions received before `before`, except those of
/// open shipments (the shipment keeps its current version in its row).
pub async fn delete_old_versions(db: &Db, before: i64) -> Result<u64, DbError> {
    let open_shipments = open_shipments();
    let sql = sql!(
        "DELETE FROM shipment_versions WHERE id IN (
           SELECT v.id FROM shipment_versions v
           WHERE v.received_at < $1 AND v.shipment_id NOT IN ({open_shipments})
           LIMIT $2)"
    );
    in_batches(db, sql, before).await
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
    )
    .await?;
    let deleted = in_batches(
        db,
        sql!("DELETE FROM event_deliveries WHERE id IN ({settled} LIMIT $2)"),
        before,
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
    )
    .await?;
    Ok(deleted)
}

/// Runs `sql` (binding `before` and the batch size) until it affects
/// fewer rows than a batch; returns the total affected.
async fn in_batches(
    db: &Db,
    sql: sqlx::AssertSqlSafe<String>,
    before: i64,
) -> Result<u64, DbError> {
    let text = sql.0;
    let mut total = 0;
    loop {
        let n = sqlx::query(sqlx::AssertSqlSafe(text.clone()))
            .bind(before)
            .bind(BATCH)
            .execute(db.pool())
            .await?
            .rows_affected();
        total += n;
        if n < u64::try_from(BATCH).unwrap_or(u64::MAX) {
            return Ok(total);
        }
    }
}
