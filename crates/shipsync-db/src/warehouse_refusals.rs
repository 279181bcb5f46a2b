//! `warehouse_refusals`: merchants whose warehouse (Deposco) refused the
//! credentials (401/403), until the next call it accepts.

use sqlx::{Any, Executor};

use crate::DbError;

/// Records a refusal (the latest one's time and error).
pub async fn record<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    merchant_id: &str,
    at: i64,
    error: &str,
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO warehouse_refusals (merchant_id, refused_at, error) VALUES ($1, $2, $3)
         ON CONFLICT (merchant_id) DO UPDATE SET refused_at = excluded.refused_at, error = excluded.error",
    )
    .bind(merchant_id)
    .bind(at)
    .bind(error)
    .execute(ex)
    .await?;
    Ok(())
}

/// Clears a merchant's refusal (the warehouse accepted a call); true when
/// there was one.
/// Whether the merchant's warehouse refusal is recorded (a read, so that
/// every accepted call need not write).
pub async fn is_recorded<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    merchant_id: &str,
) -> Result<bool, DbError> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT merchant_id FROM warehouse_refusals WHERE merchant_id = $1")
            .bind(merchant_id)
            .fetch_optional(ex)
            .await?;
    Ok(row.is_some())
}

pub async fn clear<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    merchant_id: &str,
) -> Result<bool, DbError> {
    let r = sqlx::query("DELETE FROM warehouse_refusals WHERE merchant_id = $1")
        .bind(merchant_id)
        .execute(ex)
        .await?;
    Ok(r.rows_affected() > 0)
}

/// Every refusal: `(merchant_id, refused_at, error)`.
pub async fn all<'e, E: Executor<'e, Database = Any>>(
    ex: E,
) -> Result<Vec<(String, i64, String)>, DbError> {
    Ok(sqlx::query_as(
        "SELECT merchant_id, refused_at, error FROM warehouse_refusals ORDER BY merchant_id",
    )
    .fetch_all(ex)
    .await?)
}
