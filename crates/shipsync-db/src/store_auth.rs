//! The tokens a store's app credentials obtain, the lease of the one worker
//! (on any node) refreshing them, the connection's store status, and the
//! single-use `state` of install links: `store_tokens` and `oauth_states`.
//! (The connection's store status is in [`crate::connections`].)

use sqlx::{Any, Executor, FromRow};

use crate::{Db, DbError};

/// A store's app token, sealed.
#[derive(Debug, Clone, Default, FromRow)]
pub struct StoreTokenRow {
    pub connection_id: String,
    pub access_token: Option<Vec<u8>>,
    pub obtained_at: Option<i64>,
    /// `None`: the token does not expire.
    pub expires_at: Option<i64>,
    pub refresh_token: Option<Vec<u8>>,
    pub refresh_expires_at: Option<i64>,
    /// Comma-separated; `None`: not known yet.
    pub scopes: Option<String>,
    pub refreshing_until: Option<i64>,
    pub generation: i64,
}

/// An install link's `state`, as stored.
#[derive(Debug, Clone, FromRow)]
pub struct OauthStateRow {
    pub state_hash: String,
    pub connection_id: String,
    pub user_id: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
}

const TOKEN_COLS: &str = "connection_id, access_token, obtained_at, expires_at, refresh_token,
    refresh_expires_at, scopes, refreshing_until, generation";

pub async fn token<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    connection_id: &str,
) -> Result<Option<StoreTokenRow>, DbError> {
    Ok(sqlx::query_as(sql!(
        "SELECT {TOKEN_COLS} FROM store_tokens WHERE connection_id = $1"
    ))
    .bind(connection_id)
    .fetch_optional(ex)
    .await?)
}

/// Stores a newly obtained token (a new generation), releasing any
/// refresh lease.
pub async fn save_token(db: &Db, t: &StoreTokenRow) -> Result<(), DbError> {
    ensure_token_row(db, &t.connection_id).await?;
    sqlx::query(
        "UPDATE store_tokens SET access_token = $2, obtained_at = $3, expires_at = $4,
           refresh_token = $5, refresh_expires_at = $6, scopes = $7, refreshing_until = NULL,
           generation = generation + 1
         WHERE connection_id = $1",
    )
    .bind(&t.connection_id)
    .bind(&t.access_token)
    .bind(t.obtained_at)
    .bind(t.expires_at)
    .bind(&t.refresh_token)
    .bind(t.refresh_expires_at)
    .bind(&t.scopes)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Forgets a connection's app token (its credentials or shop changed).
pub async fn delete_token<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    connection_id: &str,
) -> Result<(), DbError> {
    sqlx::query("DELETE FROM store_tokens WHERE connection_id = $1")
        .bind(connection_id)
        .execute(ex)
        .await?;
    Ok(())
}

/// Records the scopes the store granted (read back from the store).
pub async fn set_scopes(db: &Db, connection_id: &str, scopes: &str) -> Result<(), DbError> {
    ensure_token_row(db, connection_id).await?;
    sqlx::query("UPDATE store_tokens SET scopes = $2 WHERE connection_id = $1")
        .bind(connection_id)
        .bind(scopes)
        .execute(db.pool())
        .await?;
    Ok(())
}

async fn ensure_token_row(db: &Db, connection_id: &str) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO store_tokens (connection_id, generation) VALUES ($1, 0)
         ON CONFLICT (connection_id) DO NOTHING",
    )
    .bind(connection_id)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Takes the lease to refresh a connection's token until `until`, when
/// nobody holds it (or theirs ran out) and the token is still
/// generation `generation` (nobody refreshed it meanwhile). Whether it
/// was taken.
pub async fn take_refresh_lease(
    db: &Db,
    connection_id: &str,
    generation: i64,
    now: i64,
    until: i64,
) -> Result<bool, DbError> {
    ensure_token_row(db, connection_id).await?;
    let r = sqlx::query(
        "UPDATE store_tokens SET refreshing_until = $4
         WHERE connection_id = $1 AND generation = $2
           AND (refreshing_until IS NULL OR refreshing_until < $3)",
    )
    .bind(connection_id)
    .bind(generation)
    .bind(now)
    .bind(until)
    .execute(db.pool())
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Gives the refresh lease back without a new token (the refresh failed).
pub async fn release_refresh_lease<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    connection_id: &str,
) -> Result<(), DbError> {
    sqlx::query("UPDATE store_tokens SET refreshing_until = NULL WHERE connection_id = $1")
        .bind(connection_id)
        .execute(ex)
        .await?;
    Ok(())
}

pub async fn insert_oauth_state(db: &Db, s: &OauthStateRow) -> Result<(), DbError> {
    // Links nobody followed are forgotten a day after they expired.
    sqlx::query("DELETE FROM oauth_states WHERE expires_at < $1")
        .bind(s.created_at - 86_400_000_000)
        .execute(db.pool())
        .await?;
    sqlx::query(
        "INSERT INTO oauth_states (state_hash, connection_id, user_id, created_at, expires_at, used_at)
         VALUES ($1, $2, $3, $4, $5, NULL)",
    )
    .bind(&s.state_hash)
    .bind(&s.connection_id)
    .bind(&s.user_id)
    .bind(s.created_at)
    .bind(s.expires_at)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// An install `state` as stored; `None` when unknown.
pub async fn oauth_state<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    state_hash: &str,
) -> Result<Option<OauthStateRow>, DbError> {
    Ok(sqlx::query_as(
        "SELECT state_hash, connection_id, user_id, created_at, expires_at, used_at
         FROM oauth_states WHERE state_hash = $1",
    )
    .bind(state_hash)
    .fetch_optional(ex)
    .await?)
}

/// Marks an install `state` used; whether this call did (only one
/// caller ever does).
pub async fn mark_oauth_state_used<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    state_hash: &str,
    now: i64,
) -> Result<bool, DbError> {
    let r = sqlx::query(
        "UPDATE oauth_states SET used_at = $2 WHERE state_hash = $1 AND used_at IS NULL",
    )
    .bind(state_hash)
    .bind(now)
    .execute(ex)
    .await?;
    Ok(r.rows_affected() == 1)
}
