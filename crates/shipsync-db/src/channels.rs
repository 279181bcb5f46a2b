//! `channels`: the Shipments and Sales Orders channels of a connection,
//! their schedules, and where their pulls stand.

use shipsync_core::states::Channel;
use sqlx::any::AnyRow;
use sqlx::{Any, Executor};

use crate::DbError;
use crate::decode::{self, Cols, to_json};

#[derive(Debug, Clone)]
pub struct ChannelRow {
    pub connection_id: String,
    pub channel: Channel,
    pub enabled: bool,
    /// The schedules as given (`shipsync_core::schedule` reads them).
    pub schedules: serde_json::Value,
    pub last_completed_at: Option<i64>,
    pub next_run_at: Option<i64>,
}

const COLS: &str = "ch.connection_id, ch.channel, ch.enabled, ch.schedules_json, ch.last_completed_at, ch.next_run_at";

impl TryFrom<AnyRow> for ChannelRow {
    type Error = DbError;

    fn try_from(row: AnyRow) -> Result<Self, DbError> {
        let c = Cols::of(&row, "channels");
        Ok(Self {
            connection_id: c.get("connection_id")?,
            channel: c.word("channel")?,
            enabled: c.flag("enabled")?,
            schedules: c.json("schedules_json")?,
            last_completed_at: c.get("last_completed_at")?,
            next_run_at: c.get("next_run_at")?,
        })
    }
}

pub async fn insert<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    ch: &ChannelRow,
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO channels (connection_id, channel, enabled, schedules_json) VALUES ($1, $2, $3, $4)",
    )
    .bind(&ch.connection_id)
    .bind(ch.channel.as_str())
    .bind(i64::from(ch.enabled))
    .bind(to_json("channels.schedules_json", &ch.schedules)?)
    .execute(ex)
    .await?;
    Ok(())
}

pub async fn get<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    connection_id: &str,
    channel: Channel,
) -> Result<Option<ChannelRow>, DbError> {
    decode::opt(
        sqlx::query(sql!(
            "SELECT {COLS} FROM channels ch WHERE ch.connection_id = $1 AND ch.channel = $2"
        ))
        .bind(connection_id)
        .bind(channel.as_str())
        .fetch_optional(ex)
        .await?,
    )
}

pub async fn update<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    ch: &ChannelRow,
) -> Result<(), DbError> {
    sqlx::query(
        "UPDATE channels SET enabled = $3, schedules_json = $4, last_completed_at = $5, next_run_at = $6
         WHERE connection_id = $1 AND channel = $2",
    )
    .bind(&ch.connection_id)
    .bind(ch.channel.as_str())
    .bind(i64::from(ch.enabled))
    .bind(to_json("channels.schedules_json", &ch.schedules)?)
    .bind(ch.last_completed_at)
    .bind(ch.next_run_at)
    .execute(ex)
    .await?;
    Ok(())
}

/// Channels whose connection is enabled and which are on.
pub async fn enabled<'e, E: Executor<'e, Database = Any>>(
    ex: E,
) -> Result<Vec<ChannelRow>, DbError> {
    decode::all(
        sqlx::query(sql!(
            "SELECT {COLS} FROM channels ch JOIN connections c ON c.id = ch.connection_id
             WHERE ch.enabled = 1 AND c.enabled = 1"
        ))
        .fetch_all(ex)
        .await?,
    )
}

/// Sets `next_run_at` only if it still is `expected` (so that one node
/// advances a channel's schedule per slot).
pub async fn advance_schedule<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    connection_id: &str,
    channel: Channel,
    expected: Option<i64>,
    next: Option<i64>,
) -> Result<bool, DbError> {
    let r = sqlx::query(
        "UPDATE channels SET next_run_at = $3 WHERE connection_id = $1 AND channel = $2
         AND (next_run_at = $4 OR (next_run_at IS NULL AND $5 = 1))",
    )
    .bind(connection_id)
    .bind(channel.as_str())
    .bind(next)
    .bind(expected.unwrap_or(-1))
    .bind(i64::from(expected.is_none()))
    .execute(ex)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// The pull cursor of a channel (`cursor_at`).
pub async fn cursor<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    connection_id: &str,
    channel: Channel,
) -> Result<Option<i64>, DbError> {
    let row: Option<(Option<i64>,)> =
        sqlx::query_as("SELECT cursor_at FROM channels WHERE connection_id = $1 AND channel = $2")
            .bind(connection_id)
            .bind(channel.as_str())
            .fetch_optional(ex)
            .await?;
    Ok(row.and_then(|r| r.0))
}

/// Records a completed run: the new cursor and `last_completed_at`.
pub async fn complete_run<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    connection_id: &str,
    channel: Channel,
    cursor_at: i64,
    completed_at: i64,
) -> Result<(), DbError> {
    sqlx::query(
        "UPDATE channels SET cursor_at = $3, last_completed_at = $4 WHERE connection_id = $1 AND channel = $2",
    )
    .bind(connection_id)
    .bind(channel.as_str())
    .bind(cursor_at)
    .bind(completed_at)
    .execute(ex)
    .await?;
    Ok(())
}
