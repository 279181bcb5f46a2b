//! `meta`: settings of the database itself (the key check, periodic tasks'
//! next runs), one text value per key.

use sqlx::{Any, Executor};

use crate::{Db, DbError};

pub async fn get<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    key: &str,
) -> Result<Option<String>, DbError> {
    let row: Option<(String,)> = sqlx::query_as("SELECT value FROM meta WHERE key = $1")
        .bind(key)
        .fetch_optional(ex)
        .await?;
    Ok(row.map(|r| r.0))
}

/// Sets `key` only when absent; returns whether it was set.
pub async fn init<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    key: &str,
    value: &str,
) -> Result<bool, DbError> {
    let r =
        sqlx::query("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
            .bind(key)
            .bind(value)
            .execute(ex)
            .await?;
    Ok(r.rows_affected() == 1)
}

/// Claims a periodic task named `name` across nodes: true (for exactly
/// one caller) when it is due at `now`, and then it is next due
/// `every` later. Before the first claim it is due `first_after` after
/// the first call.
pub async fn claim_periodic(
    db: &Db,
    name: &str,
    now: i64,
    every: i64,
    first_after: i64,
) -> Result<bool, DbError> {
    let key = format!("next_run_at:{name}");
    // Read first: the scheduler asks every second, and a read takes no
    // write lock.
    match get(db.pool(), &key)
        .await?
        .and_then(|v| v.parse::<i64>().ok())
    {
        None => {
            init(db.pool(), &key, &(now + first_after).to_string()).await?;
            return Ok(false);
        }
        Some(at) if at > now => return Ok(false),
        Some(_) => {}
    }
    let r =
        sqlx::query("UPDATE meta SET value = $2 WHERE key = $1 AND CAST(value AS BIGINT) <= $3")
            .bind(&key)
            .bind((now + every).to_string())
            .bind(now)
            .execute(db.pool())
            .await?;
    Ok(r.rows_affected() == 1)
}

/// Sets `key` to `value` (inserted or replaced).
pub async fn set<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    key: &str,
    value: &str,
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )
    .bind(key)
    .bind(value)
    .execute(ex)
    .await?;
    Ok(())
}
