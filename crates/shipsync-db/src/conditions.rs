//! The reads of the alert conditions (issue 16) across tables: which
//! records are in each condition now. Plain tuples: the engine turns them
//! into findings.

use shipsync_core::states::{EventOutcome, OrderStatus, RunStatus, ShipmentStatus, Source};
use sqlx::{Any, Executor};

use crate::{Backend, Db, DbError};

/// A record in a condition: `(id, merchant_id, connection_id, label)`.
pub type Record = (String, String, Option<String>, String);

/// Shipments in `status`, with their number and order as the label.
pub async fn shipments_in<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    status: ShipmentStatus,
) -> Result<Vec<Record>, DbError> {
    let rows: Vec<(String, String, Option<String>, String, String)> = sqlx::query_as(
        "SELECT id, merchant_id, connection_id, number, order_name FROM shipments WHERE status = $1 ORDER BY id",
    )
    .bind(status.as_str())
    .fetch_all(ex)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, m, c, number, order)| (id, m, c, format!("Shipment {number} (order {order})")))
        .collect())
}

/// Store orders in `status`, with their name as the label.
pub async fn orders_in<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    status: OrderStatus,
) -> Result<Vec<Record>, DbError> {
    let rows: Vec<(String, String, String, String)> = sqlx::query_as(
        "SELECT o.id, c.merchant_id, o.connection_id, o.name FROM orders o
         JOIN connections c ON c.id = o.connection_id WHERE o.status = $1 ORDER BY o.id",
    )
    .bind(status.as_str())
    .fetch_all(ex)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, m, c, name)| (id, m, Some(c), format!("Order {name}")))
        .collect())
}

/// Enabled channels of enabled connections whose latest finished run
/// failed: `(connection_id, merchant_id, connection name, channel, error)`.
pub async fn failed_channels<'e, E: Executor<'e, Database = Any>>(
    ex: E,
) -> Result<Vec<(String, String, String, String, Option<String>)>, DbError> {
    Ok(sqlx::query_as(
        "SELECT r.connection_id, c.merchant_id, c.name, r.channel, r.error FROM runs r
         JOIN connections c ON c.id = r.connection_id
         JOIN channels ch ON ch.connection_id = r.connection_id AND ch.channel = r.channel
         WHERE c.enabled = 1 AND ch.enabled = 1 AND r.status = $1
           AND r.id = (SELECT r2.id FROM runs r2 WHERE r2.connection_id = r.connection_id
                       AND r2.channel = r.channel AND r2.finished_at IS NOT NULL
                       ORDER BY r2.id DESC LIMIT 1)
         ORDER BY r.connection_id, r.channel",
    )
    .bind(RunStatus::Failed.as_str())
    .fetch_all(ex)
    .await?)
}

/// Per merchant, the newest shipment first seen by webhook received at or
/// after `since`: the merchants that send webhooks.
pub async fn webhook_merchants<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    since: i64,
) -> Result<Vec<(String, i64)>, DbError> {
    Ok(sqlx::query_as(
        "SELECT merchant_id, MAX(received_at) FROM shipments
         WHERE first_seen_via = $1 AND received_at >= $2 GROUP BY merchant_id ORDER BY merchant_id",
    )
    .bind(Source::Webhook.as_str())
    .bind(since)
    .fetch_all(ex)
    .await?)
}

/// When the merchant's last Deposco delivery that counted (accepted or
/// needing attention, not refused) arrived. On SQLite the newest is the
/// first such row of `events_merchant` read backwards (ids sort by
/// creation there: one node, bytewise), not the greatest of the
/// merchant's every event; PostgreSQL keeps its index on the time.
pub async fn last_webhook_at(db: &Db, merchant_id: &str) -> Result<Option<i64>, DbError> {
    const COUNTED: &str = "FROM events WHERE merchant_id = $1 AND connection_id IS NULL
         AND outcome IN ($2, $3)";
    let sql = match db.backend() {
        Backend::Sqlite => sql!("SELECT received_at {COUNTED} ORDER BY id DESC LIMIT 1"),
        Backend::Postgres => sql!("SELECT MAX(received_at) {COUNTED}"),
    };
    let at: Option<(Option<i64>,)> = sqlx::query_as(sql)
        .bind(merchant_id)
        .bind(EventOutcome::COUNTED[0].as_str())
        .bind(EventOutcome::COUNTED[1].as_str())
        .fetch_optional(db.pool())
        .await?;
    Ok(at.and_then(|(at,)| at))
}

/// The merchant's shipments first seen by a pull and received after
/// `since`.
pub async fn polled_since<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    merchant_id: &str,
    since: i64,
) -> Result<Vec<Record>, DbError> {
    let rows: Vec<(String, String, Option<String>, String)> = sqlx::query_as(
        "SELECT id, merchant_id, connection_id, number FROM shipments
         WHERE merchant_id = $1 AND first_seen_via = $2 AND received_at > $3 ORDER BY id",
    )
    .bind(merchant_id)
    .bind(Source::Poll.as_str())
    .bind(since)
    .fetch_all(ex)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, m, c, number)| (id, m, c, format!("Shipment {number} (found by the pull)")))
        .collect())
}

/// `(merchant_id, received_at, completed_at)` of the shipments completed
/// at or after `since`.
pub async fn completions<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    since: i64,
) -> Result<Vec<(String, i64, i64)>, DbError> {
    Ok(sqlx::query_as(
        "SELECT merchant_id, received_at, completed_at FROM shipments
         WHERE completed_at IS NOT NULL AND completed_at >= $1",
    )
    .bind(since)
    .fetch_all(ex)
    .await?)
}

/// The newest run of a channel created at or after `since`, or still
/// queued or running: whether the channel ran for a slot.
pub async fn ran_since<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    connection_id: &str,
    channel: &str,
    since: i64,
) -> Result<bool, DbError> {
    let (n,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM runs WHERE connection_id = $1 AND channel = $2
         AND (created_at >= $3 OR status IN ($4, $5))",
    )
    .bind(connection_id)
    .bind(channel)
    .bind(since)
    .bind(RunStatus::ACTIVE[0].as_str())
    .bind(RunStatus::ACTIVE[1].as_str())
    .fetch_one(ex)
    .await?;
    Ok(n > 0)
}
