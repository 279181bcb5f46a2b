//! `sessions`: a signed-in browser's session (only the hash of its id is
//! stored) and its CSRF token.

use sqlx::{Any, Executor};

use crate::users::{self, UserRow};
use crate::{Db, DbError, now_micros};

pub async fn insert<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    id_hash: &str,
    user_id: &str,
    csrf_token: &str,
    expires_at: i64,
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO sessions (id_hash, user_id, csrf_token, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id_hash)
    .bind(user_id)
    .bind(csrf_token)
    .bind(now_micros())
    .bind(expires_at)
    .execute(ex)
    .await?;
    Ok(())
}

/// The user and CSRF token of an unexpired session.
pub async fn user(db: &Db, id_hash: &str) -> Result<Option<(UserRow, String)>, DbError> {
    let row: Option<(String, String)> = sqlx::query_as(
        "SELECT user_id, csrf_token FROM sessions WHERE id_hash = $1 AND expires_at > $2",
    )
    .bind(id_hash)
    .bind(now_micros())
    .fetch_optional(db.pool())
    .await?;
    let Some((user_id, csrf)) = row else {
        return Ok(None);
    };
    Ok(users::get(db, &user_id).await?.map(|u| (u, csrf)))
}

/// Deletes a session, and every expired one while at it.
pub async fn delete<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    id_hash: &str,
) -> Result<(), DbError> {
    sqlx::query("DELETE FROM sessions WHERE id_hash = $1 OR expires_at <= $2")
        .bind(id_hash)
        .bind(now_micros())
        .execute(ex)
        .await?;
    Ok(())
}
