//! `retries_exhausted`: subjects whose job gave up after the engine's last
//! attempt, as opposed to work refused for good at once. Shipments and
//! orders stay in the condition while they are in error; a subject of any
//! other kind until its flow clears the row.

use sqlx::any::AnyRow;
use sqlx::{Any, Executor};

use crate::DbError;
use crate::decode::{self, Cols};

/// The kinds this crate knows; a flow may record others.
pub const SHIPMENT: &str = "shipment";
pub const ORDER: &str = "order";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExhaustedRow {
    pub subject_id: String,
    pub kind: String,
    pub merchant_id: Option<String>,
    pub connection_id: Option<String>,
    pub error: String,
    pub at: i64,
}

impl TryFrom<AnyRow> for ExhaustedRow {
    type Error = DbError;

    fn try_from(row: AnyRow) -> Result<Self, DbError> {
        let c = Cols::of(&row, "retries_exhausted");
        Ok(Self {
            subject_id: c.get("subject_id")?,
            kind: c.get("kind")?,
            merchant_id: c.get("merchant_id")?,
            connection_id: c.get("connection_id")?,
            error: c.get("error")?,
            at: c.get("at")?,
        })
    }
}

/// Records (or refreshes) a subject that ran out of retries.
pub async fn record<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    r: &ExhaustedRow,
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO retries_exhausted (subject_id, kind, merchant_id, connection_id, error, at)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (subject_id) DO UPDATE SET error = excluded.error, at = excluded.at",
    )
    .bind(&r.subject_id)
    .bind(&r.kind)
    .bind(&r.merchant_id)
    .bind(&r.connection_id)
    .bind(&r.error)
    .bind(r.at)
    .execute(ex)
    .await?;
    Ok(())
}

/// The subject is out of that condition (it succeeded, or failed for a
/// reason no retry changes).
pub async fn clear<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    subject_id: &str,
) -> Result<(), DbError> {
    sqlx::query("DELETE FROM retries_exhausted WHERE subject_id = $1")
        .bind(subject_id)
        .execute(ex)
        .await?;
    Ok(())
}

pub async fn all<'e, E: Executor<'e, Database = Any>>(ex: E) -> Result<Vec<ExhaustedRow>, DbError> {
    decode::all(
        sqlx::query(
            "SELECT subject_id, kind, merchant_id, connection_id, error, at FROM retries_exhausted ORDER BY subject_id",
        )
        .fetch_all(ex)
        .await?,
    )
}
