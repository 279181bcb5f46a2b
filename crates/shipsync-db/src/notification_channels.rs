//! `notification_channels`: where alert messages go (issue 16). The kind's
//! settings are one JSON document; the SMTP password is sealed apart.

use shipsync_core::alerts::ChannelSettings;
use sqlx::any::AnyRow;
use sqlx::{Any, Executor};

use crate::DbError;
use crate::decode::{self, Cols, to_json};

#[derive(Debug, Clone)]
pub struct NotificationChannelRow {
    pub id: String,
    pub name: String,
    pub settings: ChannelSettings,
    /// Sealed with the engine's key; `None`: no password.
    pub smtp_password: Option<Vec<u8>>,
    pub created_at: i64,
    pub updated_at: i64,
}

const COLS: &str = "id, name, kind, config_json, smtp_password, created_at, updated_at";

impl TryFrom<AnyRow> for NotificationChannelRow {
    type Error = DbError;

    fn try_from(row: AnyRow) -> Result<Self, DbError> {
        let c = Cols::of(&row, "notification_channels");
        let settings: ChannelSettings = c.json("config_json")?;
        let kind: shipsync_core::states::NotificationKind = c.word("kind")?;
        if kind != settings.kind() {
            return Err(DbError::Corrupt(format!(
                "notification_channels.kind: {kind} but the settings are of another kind"
            )));
        }
        Ok(Self {
            id: c.get("id")?,
            name: c.get("name")?,
            settings,
            smtp_password: c.get("smtp_password")?,
            created_at: c.get("created_at")?,
            updated_at: c.get("updated_at")?,
        })
    }
}

/// Inserts or replaces a channel.
pub async fn save<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    c: &NotificationChannelRow,
) -> Result<(), DbError> {
    sqlx::query(sql!(
        "INSERT INTO notification_channels ({COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (id) DO UPDATE SET name = excluded.name, kind = excluded.kind,
           config_json = excluded.config_json, smtp_password = excluded.smtp_password,
           updated_at = excluded.updated_at"
    ))
    .bind(&c.id)
    .bind(&c.name)
    .bind(c.settings.kind().as_str())
    .bind(to_json("notification_channels.config_json", &c.settings)?)
    .bind(&c.smtp_password)
    .bind(c.created_at)
    .bind(c.updated_at)
    .execute(ex)
    .await?;
    Ok(())
}

pub async fn get<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    id: &str,
) -> Result<Option<NotificationChannelRow>, DbError> {
    decode::opt(
        sqlx::query(sql!(
            "SELECT {COLS} FROM notification_channels WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(ex)
        .await?,
    )
}

/// Every channel, oldest first.
pub async fn list<'e, E: Executor<'e, Database = Any>>(
    ex: E,
) -> Result<Vec<NotificationChannelRow>, DbError> {
    decode::all(
        sqlx::query(sql!("SELECT {COLS} FROM notification_channels ORDER BY id"))
            .fetch_all(ex)
            .await?,
    )
}

pub async fn delete<'e, E: Executor<'e, Database = Any>>(ex: E, id: &str) -> Result<bool, DbError> {
    let r = sqlx::query("DELETE FROM notification_channels WHERE id = $1")
        .bind(id)
        .execute(ex)
        .await?;
    Ok(r.rows_affected() == 1)
}
