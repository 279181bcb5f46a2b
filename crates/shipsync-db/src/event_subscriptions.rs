//! `event_subscriptions`: where a merchant's own systems want outbound
//! events (issue 16), with the sealed Standard Webhooks secret (and, during
//! a rotation's grace, the previous one) and whether deliveries are failing.

use shipsync_core::states::{EventType, SubscriptionStatus};
use sqlx::any::AnyRow;
use sqlx::{Any, Executor};

use crate::DbError;
use crate::decode::{self, Cols, join_words};

#[derive(Debug, Clone)]
pub struct SubscriptionRow {
    pub id: String,
    pub merchant_id: String,
    pub url: String,
    /// The event types it receives (`events`, comma-separated).
    pub events: Vec<EventType>,
    pub enabled: bool,
    /// The secret's key, sealed.
    pub secret: Vec<u8>,
    /// The key the last rotation replaced, sealed, valid until
    /// `previous_until` (µs).
    pub previous_secret: Option<Vec<u8>>,
    pub previous_until: Option<i64>,
    pub status: SubscriptionStatus,
    pub failing_since: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

const COLS: &str = "id, merchant_id, url, events, enabled, secret, previous_secret, previous_until, status, failing_since, created_at, updated_at";

impl TryFrom<AnyRow> for SubscriptionRow {
    type Error = DbError;

    fn try_from(row: AnyRow) -> Result<Self, DbError> {
        let c = Cols::of(&row, "event_subscriptions");
        Ok(Self {
            id: c.get("id")?,
            merchant_id: c.get("merchant_id")?,
            url: c.get("url")?,
            events: c.words("events")?,
            enabled: c.flag("enabled")?,
            secret: c.get("secret")?,
            previous_secret: c.get("previous_secret")?,
            previous_until: c.get("previous_until")?,
            status: c.word("status")?,
            failing_since: c.get("failing_since")?,
            created_at: c.get("created_at")?,
            updated_at: c.get("updated_at")?,
        })
    }
}

pub async fn insert<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    r: &SubscriptionRow,
) -> Result<(), DbError> {
    sqlx::query(sql!(
        "INSERT INTO event_subscriptions ({COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
    ))
    .bind(&r.id)
    .bind(&r.merchant_id)
    .bind(&r.url)
    .bind(join_words(&r.events))
    .bind(i64::from(r.enabled))
    .bind(&r.secret)
    .bind(&r.previous_secret)
    .bind(r.previous_until)
    .bind(r.status.as_str())
    .bind(r.failing_since)
    .bind(r.created_at)
    .bind(r.updated_at)
    .execute(ex)
    .await?;
    Ok(())
}

/// Saves what a person can change: URL, events, enabled, secrets.
pub async fn update<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    r: &SubscriptionRow,
) -> Result<(), DbError> {
    sqlx::query(
        "UPDATE event_subscriptions SET url = $2, events = $3, enabled = $4, secret = $5,
           previous_secret = $6, previous_until = $7, updated_at = $8
         WHERE id = $1",
    )
    .bind(&r.id)
    .bind(&r.url)
    .bind(join_words(&r.events))
    .bind(i64::from(r.enabled))
    .bind(&r.secret)
    .bind(&r.previous_secret)
    .bind(r.previous_until)
    .bind(r.updated_at)
    .execute(ex)
    .await?;
    Ok(())
}

pub async fn get<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    id: &str,
) -> Result<Option<SubscriptionRow>, DbError> {
    decode::opt(
        sqlx::query(sql!("SELECT {COLS} FROM event_subscriptions WHERE id = $1"))
            .bind(id)
            .fetch_optional(ex)
            .await?,
    )
}

/// A merchant's subscriptions, oldest first.
pub async fn of_merchant<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    merchant_id: &str,
) -> Result<Vec<SubscriptionRow>, DbError> {
    decode::all(
        sqlx::query(sql!(
            "SELECT {COLS} FROM event_subscriptions WHERE merchant_id = $1 ORDER BY id"
        ))
        .bind(merchant_id)
        .fetch_all(ex)
        .await?,
    )
}

/// The enabled subscriptions of a merchant: the one read on the path of
/// every state change that may emit an event.
pub async fn enabled_of_merchant<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    merchant_id: &str,
) -> Result<Vec<SubscriptionRow>, DbError> {
    decode::all(
        sqlx::query(sql!(
            "SELECT {COLS} FROM event_subscriptions WHERE merchant_id = $1 AND enabled = 1 ORDER BY id"
        ))
        .bind(merchant_id)
        .fetch_all(ex)
        .await?,
    )
}

/// The enabled subscriptions of the merchant of a connection (an order's).
pub async fn enabled_of_connection<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    connection_id: &str,
) -> Result<Vec<SubscriptionRow>, DbError> {
    decode::all(
        sqlx::query(sql!(
            "SELECT {COLS} FROM event_subscriptions
             WHERE merchant_id = (SELECT merchant_id FROM connections WHERE id = $1) AND enabled = 1
             ORDER BY id"
        ))
        .bind(connection_id)
        .fetch_all(ex)
        .await?,
    )
}

/// The subscriptions whose deliveries are failing (a delivery exhausted
/// its retries, and none succeeded since): what the `retries.exhausted`
/// alert watches.
pub async fn failing<'e, E: Executor<'e, Database = Any>>(
    ex: E,
) -> Result<Vec<SubscriptionRow>, DbError> {
    decode::all(
        sqlx::query(sql!(
            "SELECT {COLS} FROM event_subscriptions WHERE status = $1 ORDER BY failing_since, id"
        ))
        .bind(SubscriptionStatus::Failing.as_str())
        .fetch_all(ex)
        .await?,
    )
}

/// Marks the subscription failing since `now` (kept when it already was).
pub async fn mark_failing<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    id: &str,
    now: i64,
) -> Result<(), DbError> {
    sqlx::query(
        "UPDATE event_subscriptions SET status = $2, failing_since = COALESCE(failing_since, $3)
         WHERE id = $1",
    )
    .bind(id)
    .bind(SubscriptionStatus::Failing.as_str())
    .bind(now)
    .execute(ex)
    .await?;
    Ok(())
}

/// Marks the subscription active (a delivery succeeded); whether it was
/// failing.
pub async fn mark_active<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    id: &str,
) -> Result<bool, DbError> {
    let r = sqlx::query(
        "UPDATE event_subscriptions SET status = $2, failing_since = NULL
         WHERE id = $1 AND status <> $2",
    )
    .bind(id)
    .bind(SubscriptionStatus::Active.as_str())
    .execute(ex)
    .await?;
    Ok(r.rows_affected() == 1)
}

pub async fn delete<'e, E: Executor<'e, Database = Any>>(ex: E, id: &str) -> Result<bool, DbError> {
    let r = sqlx::query("DELETE FROM event_subscriptions WHERE id = $1")
        .bind(id)
        .execute(ex)
        .await?;
    Ok(r.rows_affected() == 1)
}
