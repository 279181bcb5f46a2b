//! `alert_cursors`: per (policy, channel), what the policy's messages to
//! the channel have reached, and how the last try went.

use sqlx::any::AnyRow;
use sqlx::{Any, Executor};

use crate::DbError;
use crate::decode::{self, Cols};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertCursorRow {
    pub policy_id: String,
    pub channel_id: String,
    /// Alert changes up to this time (µs) were sent.
    pub sent_through: i64,
    pub last_sent_at: Option<i64>,
    pub last_error: Option<String>,
    /// Failed tries since the last success.
    pub failures: i64,
    /// After a failure: when to try again.
    pub retry_at: Option<i64>,
}

const COLS: &str =
    "policy_id, channel_id, sent_through, last_sent_at, last_error, failures, retry_at";

impl TryFrom<AnyRow> for AlertCursorRow {
    type Error = DbError;

    fn try_from(row: AnyRow) -> Result<Self, DbError> {
        let c = Cols::of(&row, "alert_cursors");
        Ok(Self {
            policy_id: c.get("policy_id")?,
            channel_id: c.get("channel_id")?,
            sent_through: c.get("sent_through")?,
            last_sent_at: c.get("last_sent_at")?,
            last_error: c.get("last_error")?,
            failures: c.get("failures")?,
            retry_at: c.get("retry_at")?,
        })
    }
}

/// The policy's cursors.
pub async fn of_policy<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    policy_id: &str,
) -> Result<Vec<AlertCursorRow>, DbError> {
    decode::all(
        sqlx::query(sql!(
            "SELECT {COLS} FROM alert_cursors WHERE policy_id = $1 ORDER BY channel_id"
        ))
        .bind(policy_id)
        .fetch_all(ex)
        .await?,
    )
}

/// Inserts or replaces a cursor.
pub async fn save<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    c: &AlertCursorRow,
) -> Result<(), DbError> {
    sqlx::query(sql!(
        "INSERT INTO alert_cursors ({COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (policy_id, channel_id) DO UPDATE SET sent_through = excluded.sent_through,
           last_sent_at = excluded.last_sent_at, last_error = excluded.last_error,
           failures = excluded.failures, retry_at = excluded.retry_at"
    ))
    .bind(&c.policy_id)
    .bind(&c.channel_id)
    .bind(c.sent_through)
    .bind(c.last_sent_at)
    .bind(&c.last_error)
    .bind(c.failures)
    .bind(c.retry_at)
    .execute(ex)
    .await?;
    Ok(())
}

/// Forgets the cursors of a policy or of a channel that is gone
/// (`of_channel`: a channel's, else a policy's).
pub async fn forget<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    of_channel: bool,
    id: &str,
) -> Result<(), DbError> {
    let col = if of_channel {
        "channel_id"
    } else {
        "policy_id"
    };
    sqlx::query(sql!("DELETE FROM alert_cursors WHERE {col} = $1"))
        .bind(id)
        .execute(ex)
        .await?;
    Ok(())
}
