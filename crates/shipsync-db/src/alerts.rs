//! `alerts`: one condition of one policy for one scope, from when it was
//! seen until none of its subjects is in the condition any more (issue 16).

use shipsync_core::alerts::AlertSubject;
use shipsync_core::states::{AlertEvent, AlertStatus};
use sqlx::any::AnyRow;
use sqlx::{Any, Executor};

use crate::decode::{self, Cols, to_json};
use crate::{DbError, one_of};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertRow {
    pub id: String,
    pub policy_id: String,
    pub event: AlertEvent,
    /// `installation`, `merchant:<id>` or `connection:<id>`.
    pub scope_key: String,
    pub merchant_id: Option<String>,
    pub connection_id: Option<String>,
    /// Every record seen in the condition during the alert.
    pub subjects: Vec<AlertSubject>,
    pub status: AlertStatus,
    pub summary: String,
    pub opened_at: i64,
    /// When subjects were last added after it opened.
    pub grown_at: Option<i64>,
    pub acknowledged_at: Option<i64>,
    pub acknowledged_by: Option<String>,
    pub closed_at: Option<i64>,
    pub last_seen_at: i64,
}

const COLS: &str = "id, policy_id, event, scope_key, merchant_id, connection_id, subjects_json, status, summary, opened_at, grown_at, acknowledged_at, acknowledged_by, closed_at, last_seen_at";

impl TryFrom<AnyRow> for AlertRow {
    type Error = DbError;

    fn try_from(row: AnyRow) -> Result<Self, DbError> {
        let c = Cols::of(&row, "alerts");
        Ok(Self {
            id: c.get("id")?,
            policy_id: c.get("policy_id")?,
            event: c.word("event")?,
            scope_key: c.get("scope_key")?,
            merchant_id: c.get("merchant_id")?,
            connection_id: c.get("connection_id")?,
            subjects: c.json("subjects_json")?,
            status: c.word("status")?,
            summary: c.get("summary")?,
            opened_at: c.get("opened_at")?,
            grown_at: c.get("grown_at")?,
            acknowledged_at: c.get("acknowledged_at")?,
            acknowledged_by: c.get("acknowledged_by")?,
            closed_at: c.get("closed_at")?,
            last_seen_at: c.get("last_seen_at")?,
        })
    }
}

/// Inserts a new alert.
pub async fn insert<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    a: &AlertRow,
) -> Result<(), DbError> {
    sqlx::query(sql!(
        "INSERT INTO alerts ({COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
    ))
    .bind(&a.id)
    .bind(&a.policy_id)
    .bind(a.event.as_str())
    .bind(&a.scope_key)
    .bind(&a.merchant_id)
    .bind(&a.connection_id)
    .bind(to_json("alerts.subjects_json", &a.subjects)?)
    .bind(a.status.as_str())
    .bind(&a.summary)
    .bind(a.opened_at)
    .bind(a.grown_at)
    .bind(a.acknowledged_at)
    .bind(&a.acknowledged_by)
    .bind(a.closed_at)
    .bind(a.last_seen_at)
    .execute(ex)
    .await?;
    Ok(())
}

/// An alert still in its condition: its subjects (grown or not), summary
/// and when it was last seen; its status (open or acknowledged) is left
/// as it is.
pub async fn seen<'e, E: Executor<'e, Database = Any>>(ex: E, a: &AlertRow) -> Result<(), DbError> {
    sqlx::query(
        "UPDATE alerts SET subjects_json = $2, summary = $3, grown_at = $4, last_seen_at = $5
         WHERE id = $1 AND status <> $6",
    )
    .bind(&a.id)
    .bind(to_json("alerts.subjects_json", &a.subjects)?)
    .bind(&a.summary)
    .bind(a.grown_at)
    .bind(a.last_seen_at)
    .bind(AlertStatus::Closed.as_str())
    .execute(ex)
    .await?;
    Ok(())
}

/// Closes an alert (open or acknowledged) at `at`.
pub async fn close<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    id: &str,
    at: i64,
) -> Result<(), DbError> {
    sqlx::query("UPDATE alerts SET status = $2, closed_at = $3 WHERE id = $1 AND status <> $2")
        .bind(id)
        .bind(AlertStatus::Closed.as_str())
        .bind(at)
        .execute(ex)
        .await?;
    Ok(())
}

/// Acknowledges an open alert; false when it is not open.
pub async fn acknowledge<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    id: &str,
    at: i64,
    by: &str,
) -> Result<bool, DbError> {
    let r = sqlx::query(
        "UPDATE alerts SET status = $2, acknowledged_at = $3, acknowledged_by = $4 WHERE id = $1 AND status = $5",
    )
    .bind(id)
    .bind(AlertStatus::Acknowledged.as_str())
    .bind(at)
    .bind(by)
    .bind(AlertStatus::Open.as_str())
    .execute(ex)
    .await?;
    Ok(r.rows_affected() == 1)
}

pub async fn get<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    id: &str,
) -> Result<Option<AlertRow>, DbError> {
    decode::opt(
        sqlx::query(sql!("SELECT {COLS} FROM alerts WHERE id = $1"))
            .bind(id)
            .fetch_optional(ex)
            .await?,
    )
}

/// The policy's alerts that are not closed.
pub async fn not_closed<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    policy_id: &str,
) -> Result<Vec<AlertRow>, DbError> {
    decode::all(
        sqlx::query(sql!(
            "SELECT {COLS} FROM alerts WHERE policy_id = $1 AND status <> $2 ORDER BY id"
        ))
        .bind(policy_id)
        .bind(AlertStatus::Closed.as_str())
        .fetch_all(ex)
        .await?,
    )
}

/// The policy's alerts a message after `since` may announce: not closed,
/// or closed after it.
pub async fn changed_since<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    policy_id: &str,
    since: i64,
) -> Result<Vec<AlertRow>, DbError> {
    decode::all(
        sqlx::query(sql!(
            "SELECT {COLS} FROM alerts WHERE policy_id = $1 AND (status <> $2 OR closed_at > $3) ORDER BY id"
        ))
        .bind(policy_id)
        .bind(AlertStatus::Closed.as_str())
        .bind(since)
        .fetch_all(ex)
        .await?,
    )
}

/// Which alerts a list shows.
#[derive(Debug, Clone, Default)]
pub struct AlertFilter {
    pub status: Option<AlertStatus>,
    /// `None`: every merchant; otherwise these merchants' alerts and the
    /// installation-wide ones.
    pub merchant_ids: Option<Vec<String>>,
    /// Ids below this one (newest first paging).
    pub before: Option<String>,
    pub limit: i64,
}

/// Alerts, newest first.
pub async fn list<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    f: &AlertFilter,
) -> Result<Vec<AlertRow>, DbError> {
    let merchants = match &f.merchant_ids {
        None => "1 = 1".to_string(),
        Some(ids) => format!(
            "(merchant_id IS NULL OR {})",
            one_of("merchant_id", Some(ids), 4)
        ),
    };
    let mut q = sqlx::query(sql!(
        "SELECT {COLS} FROM alerts WHERE ($1 = '' OR status = $1) AND ($2 = '' OR id < $2)
         AND {merchants} ORDER BY id DESC LIMIT $3"
    ))
    .bind(f.status.map(|s| s.as_str()).unwrap_or(""))
    .bind(f.before.clone().unwrap_or_default())
    .bind(f.limit);
    for m in f.merchant_ids.iter().flatten() {
        q = q.bind(m);
    }
    decode::all(q.fetch_all(ex).await?)
}

/// How many alerts are open (not acknowledged, not closed), for the nav.
pub async fn count_open<'e, E: Executor<'e, Database = Any>>(ex: E) -> Result<i64, DbError> {
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM alerts WHERE status = $1")
        .bind(AlertStatus::Open.as_str())
        .fetch_one(ex)
        .await?;
    Ok(n)
}

/// Removes a deleted policy's alerts.
pub async fn delete_of_policy<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    policy_id: &str,
) -> Result<(), DbError> {
    sqlx::query("DELETE FROM alerts WHERE policy_id = $1")
        .bind(policy_id)
        .execute(ex)
        .await?;
    Ok(())
}
