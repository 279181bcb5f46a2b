//! `activity`: what happened to a shipment, order, event or run, one line
//! per step, for people.

use sqlx::any::AnyRow;
use sqlx::{Any, Executor};

use crate::decode::{self, Cols};
use crate::{DbError, new_id, now_micros};

#[derive(Debug, Clone)]
pub struct ActivityRow {
    pub id: String,
    pub subject_id: String,
    pub at: i64,
    pub kind: String,
    pub message: String,
}

impl TryFrom<AnyRow> for ActivityRow {
    type Error = DbError;

    fn try_from(row: AnyRow) -> Result<Self, DbError> {
        let c = Cols::of(&row, "activity");
        Ok(Self {
            id: c.get("id")?,
            subject_id: c.get("subject_id")?,
            at: c.get("at")?,
            kind: c.get("kind")?,
            message: c.get("message")?,
        })
    }
}

/// Adds a line to `subject_id`'s activity, now.
pub async fn add<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    subject_id: &str,
    kind: &str,
    message: &str,
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO activity (id, subject_id, at, kind, message) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(new_id("act"))
    .bind(subject_id)
    .bind(now_micros())
    .bind(kind)
    .bind(message)
    .execute(ex)
    .await?;
    Ok(())
}

/// A subject's activity, oldest first.
pub async fn of<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    subject_id: &str,
) -> Result<Vec<ActivityRow>, DbError> {
    decode::all(
        sqlx::query(
            "SELECT id, subject_id, at, kind, message FROM activity WHERE subject_id = $1 ORDER BY id",
        )
        .bind(subject_id)
        .fetch_all(ex)
        .await?,
    )
}
