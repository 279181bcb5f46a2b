//! `api_tokens`: API tokens (only their hashes are stored), an
//! administrator's (no user) or a user's.

use sqlx::{Any, Executor, FromRow};

use crate::users::{self, UserRow};
use crate::{Db, DbError, new_id, now_micros};

/// An API token of a user (never its value).
#[derive(Debug, Clone, FromRow)]
pub struct TokenRow {
    pub id: String,
    pub label: String,
    /// The token's first characters (None for tokens made before 0011).
    pub prefix: Option<String>,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub expires_at: Option<i64>,
}

const COLS: &str = "id, label, prefix, created_at, last_used_at, expires_at";

/// `last_used_at` is written at most this often per token (a write per API
/// call would cost more than the answer).
pub const LAST_USED_GRANULARITY_MICROS: i64 = 60 * 1_000_000;

/// Stores an administrator token (its hash); returns its id.
pub async fn insert_admin<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    token_hash: &str,
    label: &str,
) -> Result<String, DbError> {
    let id = new_id("tok");
    sqlx::query(
        "INSERT INTO api_tokens (id, token_hash, label, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(&id)
    .bind(token_hash)
    .bind(label)
    .bind(now_micros())
    .execute(ex)
    .await?;
    Ok(id)
}

pub async fn count<'e, E: Executor<'e, Database = Any>>(ex: E) -> Result<i64, DbError> {
    let row: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM api_tokens")
        .fetch_one(ex)
        .await?;
    Ok(row.0)
}

/// Stores a user's token (its hash); `expires_at` None: never.
pub async fn insert_for_user<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    token_hash: &str,
    label: &str,
    prefix: &str,
    user_id: &str,
    expires_at: Option<i64>,
) -> Result<TokenRow, DbError> {
    let row = TokenRow {
        id: new_id("tok"),
        label: label.to_string(),
        prefix: Some(prefix.to_string()),
        created_at: now_micros(),
        last_used_at: None,
        expires_at,
    };
    sqlx::query(
        "INSERT INTO api_tokens (id, token_hash, label, prefix, created_at, expires_at, user_id) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&row.id)
    .bind(token_hash)
    .bind(&row.label)
    .bind(&row.prefix)
    .bind(row.created_at)
    .bind(row.expires_at)
    .bind(user_id)
    .execute(ex)
    .await?;
    Ok(row)
}

/// Who an unexpired token acts as: `None` unknown (or expired),
/// `Some(None)` an administrator token, `Some(Some(user))` a user's
/// token. Records the use (see [`LAST_USED_GRANULARITY_MICROS`]).
pub async fn user_of(db: &Db, token_hash: &str) -> Result<Option<Option<UserRow>>, DbError> {
    let now = now_micros();
    let row: Option<(String, Option<String>, Option<i64>)> = sqlx::query_as(
        "SELECT id, user_id, last_used_at FROM api_tokens WHERE token_hash = $1 AND (expires_at IS NULL OR expires_at > $2)",
    )
    .bind(token_hash)
    .bind(now)
    .fetch_optional(db.pool())
    .await?;
    let Some((id, user_id, last_used)) = row else {
        return Ok(None);
    };
    if last_used.is_none_or(|t| now - t >= LAST_USED_GRANULARITY_MICROS) {
        sqlx::query("UPDATE api_tokens SET last_used_at = $2 WHERE id = $1")
            .bind(&id)
            .bind(now)
            .execute(db.pool())
            .await?;
    }
    match user_id {
        None => Ok(Some(None)),
        Some(uid) => Ok(users::get(db, &uid).await?.map(Some)),
    }
}

/// A user's tokens, newest first.
pub async fn of_user<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    user_id: &str,
) -> Result<Vec<TokenRow>, DbError> {
    Ok(sqlx::query_as(sql!(
        "SELECT {COLS} FROM api_tokens WHERE user_id = $1 ORDER BY created_at DESC, id"
    ))
    .bind(user_id)
    .fetch_all(ex)
    .await?)
}

/// Deletes one of a user's tokens; whether it existed.
pub async fn delete_of_user<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    user_id: &str,
    id: &str,
) -> Result<bool, DbError> {
    let r = sqlx::query("DELETE FROM api_tokens WHERE id = $1 AND user_id = $2")
        .bind(id)
        .bind(user_id)
        .execute(ex)
        .await?;
    Ok(r.rows_affected() == 1)
}
