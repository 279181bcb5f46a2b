//! `event_deliveries` and `event_delivery_attempts`: each outbound event's
//! delivery to each subscription, and every attempt of it (issue 16). The
//! deliveries of one subject to one subscription go in id order: a delivery
//! waits while an earlier one is pending.

use shipsync_core::states::DeliveryState;
use sqlx::any::AnyRow;
use sqlx::{Any, Executor};

use crate::decode::{self, Cols};
use crate::unit::Conn;
use crate::{DbError, for_update, placeholders};

#[derive(Debug, Clone)]
pub struct DeliveryRow {
    pub id: String,
    pub event_id: String,
    pub subscription_id: String,
    /// The event's shipment or order.
    pub subject_id: String,
    pub state: DeliveryState,
    /// Failed attempts since it was queued or replayed: its place in the
    /// retry schedule.
    pub tries: i64,
    /// When the next attempt is due (µs); `None` once settled.
    pub next_attempt_at: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

const COLS: &str = "id, event_id, subscription_id, subject_id, state, tries, next_attempt_at, last_error, created_at, updated_at";

impl TryFrom<AnyRow> for DeliveryRow {
    type Error = DbError;

    fn try_from(row: AnyRow) -> Result<Self, DbError> {
        let c = Cols::of(&row, "event_deliveries");
        Ok(Self {
            id: c.get("id")?,
            event_id: c.get("event_id")?,
            subscription_id: c.get("subscription_id")?,
            subject_id: c.get("subject_id")?,
            state: c.word("state")?,
            tries: c.get("tries")?,
            next_attempt_at: c.get("next_attempt_at")?,
            last_error: c.get("last_error")?,
            created_at: c.get("created_at")?,
            updated_at: c.get("updated_at")?,
        })
    }
}

/// One attempt of a delivery.
#[derive(Debug, Clone)]
pub struct AttemptRow {
    pub id: String,
    pub delivery_id: String,
    pub at: i64,
    /// The answer's HTTP status; `None` when there was no answer.
    pub status_code: Option<i64>,
    pub latency_ms: i64,
    /// The start of the answer's body (at most 1 KiB, UTF-8).
    pub excerpt: Option<String>,
    pub error: Option<String>,
}

const ATTEMPT_COLS: &str = "id, delivery_id, at, status_code, latency_ms, excerpt, error";

impl TryFrom<AnyRow> for AttemptRow {
    type Error = DbError;

    fn try_from(row: AnyRow) -> Result<Self, DbError> {
        let c = Cols::of(&row, "event_delivery_attempts");
        Ok(Self {
            id: c.get("id")?,
            delivery_id: c.get("delivery_id")?,
            at: c.get("at")?,
            status_code: c.get("status_code")?,
            latency_ms: c.get("latency_ms")?,
            excerpt: c.get("excerpt")?,
            error: c.get("error")?,
        })
    }
}

pub async fn insert<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    r: &DeliveryRow,
) -> Result<(), DbError> {
    sqlx::query(sql!(
        "INSERT INTO event_deliveries ({COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
    ))
    .bind(&r.id)
    .bind(&r.event_id)
    .bind(&r.subscription_id)
    .bind(&r.subject_id)
    .bind(r.state.as_str())
    .bind(r.tries)
    .bind(r.next_attempt_at)
    .bind(&r.last_error)
    .bind(r.created_at)
    .bind(r.updated_at)
    .execute(ex)
    .await?;
    Ok(())
}

/// Saves the delivery's state, schedule and last error.
pub async fn update<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    r: &DeliveryRow,
) -> Result<(), DbError> {
    sqlx::query(
        "UPDATE event_deliveries SET state = $2, tries = $3, next_attempt_at = $4,
           last_error = $5, updated_at = $6
         WHERE id = $1",
    )
    .bind(&r.id)
    .bind(r.state.as_str())
    .bind(r.tries)
    .bind(r.next_attempt_at)
    .bind(&r.last_error)
    .bind(r.updated_at)
    .execute(ex)
    .await?;
    Ok(())
}

pub async fn get<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    id: &str,
) -> Result<Option<DeliveryRow>, DbError> {
    decode::opt(
        sqlx::query(sql!("SELECT {COLS} FROM event_deliveries WHERE id = $1"))
            .bind(id)
            .fetch_optional(ex)
            .await?,
    )
}

/// The delivery, locked for the rest of the transaction.
pub async fn get_for_update(tx: &mut impl Conn, id: &str) -> Result<Option<DeliveryRow>, DbError> {
    let lock = for_update(tx);
    decode::opt(
        sqlx::query(sql!(
            "SELECT {COLS} FROM event_deliveries WHERE id = $1{lock}"
        ))
        .bind(id)
        .fetch_optional(tx.ex())
        .await?,
    )
}

/// The first pending delivery of the same subject to the same subscription
/// queued before `d`: `d` waits for it.
pub async fn earlier_pending<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    d: &DeliveryRow,
) -> Result<Option<DeliveryRow>, DbError> {
    decode::opt(
        sqlx::query(sql!(
            "SELECT {COLS} FROM event_deliveries
             WHERE subscription_id = $1 AND subject_id = $2 AND id < $3 AND state = $4
             ORDER BY id LIMIT 1"
        ))
        .bind(&d.subscription_id)
        .bind(&d.subject_id)
        .bind(&d.id)
        .bind(DeliveryState::Pending.as_str())
        .fetch_optional(ex)
        .await?,
    )
}

/// The first pending delivery of the same subject to the same subscription
/// queued after `d`: the one `d`, settled, lets go.
pub async fn next_pending<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    d: &DeliveryRow,
) -> Result<Option<DeliveryRow>, DbError> {
    decode::opt(
        sqlx::query(sql!(
            "SELECT {COLS} FROM event_deliveries
             WHERE subscription_id = $1 AND subject_id = $2 AND id > $3 AND state = $4
             ORDER BY id LIMIT 1"
        ))
        .bind(&d.subscription_id)
        .bind(&d.subject_id)
        .bind(&d.id)
        .bind(DeliveryState::Pending.as_str())
        .fetch_optional(ex)
        .await?,
    )
}

/// A subscription's deliveries, newest first, before `cursor` (an id).
pub async fn list<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    subscription_id: &str,
    cursor: Option<&str>,
    limit: i64,
) -> Result<Vec<DeliveryRow>, DbError> {
    decode::all(
        sqlx::query(sql!(
            "SELECT {COLS} FROM event_deliveries
             WHERE subscription_id = $1 AND ($2 = '' OR id < $2)
             ORDER BY id DESC LIMIT $3"
        ))
        .bind(subscription_id)
        .bind(cursor.unwrap_or(""))
        .bind(limit)
        .fetch_all(ex)
        .await?,
    )
}

/// The pending deliveries of a subscription (to queue again when it is
/// switched back on).
pub async fn pending_of<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    subscription_id: &str,
) -> Result<Vec<DeliveryRow>, DbError> {
    decode::all(
        sqlx::query(sql!(
            "SELECT {COLS} FROM event_deliveries WHERE subscription_id = $1 AND state = $2 ORDER BY id"
        ))
        .bind(subscription_id)
        .bind(DeliveryState::Pending.as_str())
        .fetch_all(ex)
        .await?,
    )
}

/// Removes a subscription's deliveries and their attempts.
pub async fn delete_of_subscription(
    tx: &mut impl Conn,
    subscription_id: &str,
) -> Result<(), DbError> {
    sqlx::query(
        "DELETE FROM event_delivery_attempts WHERE delivery_id IN
           (SELECT id FROM event_deliveries WHERE subscription_id = $1)",
    )
    .bind(subscription_id)
    .execute(tx.ex())
    .await?;
    sqlx::query("DELETE FROM event_deliveries WHERE subscription_id = $1")
        .bind(subscription_id)
        .execute(tx.ex())
        .await?;
    Ok(())
}

pub async fn add_attempt<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    a: &AttemptRow,
) -> Result<(), DbError> {
    sqlx::query(sql!(
        "INSERT INTO event_delivery_attempts ({ATTEMPT_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
    ))
    .bind(&a.id)
    .bind(&a.delivery_id)
    .bind(a.at)
    .bind(a.status_code)
    .bind(a.latency_ms)
    .bind(&a.excerpt)
    .bind(&a.error)
    .execute(ex)
    .await?;
    Ok(())
}

/// The attempts of `delivery_ids`, oldest first.
pub async fn attempts_of<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    delivery_ids: &[String],
) -> Result<Vec<AttemptRow>, DbError> {
    if delivery_ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut q = sqlx::query(sql!(
        "SELECT {ATTEMPT_COLS} FROM event_delivery_attempts WHERE delivery_id IN ({}) ORDER BY at, id",
        placeholders(1, delivery_ids.len())
    ));
    for id in delivery_ids {
        q = q.bind(id);
    }
    decode::all(q.fetch_all(ex).await?)
}
