//! `shipment_versions`: every version of a shipment as reported, with the
//! event (or pull) it came from.

use shipsync_core::ShipmentVersion;
use shipsync_core::states::Source;
use sqlx::any::AnyRow;
use sqlx::{Any, Executor};

use crate::DbError;
use crate::decode::{self, Cols, to_json};

#[derive(Debug, Clone)]
pub struct VersionRow {
    pub id: String,
    pub shipment_id: String,
    pub event_id: Option<String>,
    pub source: Source,
    pub received_at: i64,
    pub content_hash: String,
    /// The version as reported (`version_json`).
    pub version: ShipmentVersion,
}

const COLS: &str = "id, shipment_id, event_id, source, received_at, content_hash, version_json";

impl TryFrom<AnyRow> for VersionRow {
    type Error = DbError;

    fn try_from(row: AnyRow) -> Result<Self, DbError> {
        let c = Cols::of(&row, "shipment_versions");
        Ok(Self {
            id: c.get("id")?,
            shipment_id: c.get("shipment_id")?,
            event_id: c.get("event_id")?,
            source: c.word("source")?,
            received_at: c.get("received_at")?,
            content_hash: c.get("content_hash")?,
            version: c.json("version_json")?,
        })
    }
}

pub async fn insert<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    v: &VersionRow,
) -> Result<(), DbError> {
    sqlx::query(sql!(
        "INSERT INTO shipment_versions ({COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
    ))
    .bind(&v.id)
    .bind(&v.shipment_id)
    .bind(&v.event_id)
    .bind(v.source.as_str())
    .bind(v.received_at)
    .bind(&v.content_hash)
    .bind(to_json("shipment_versions.version_json", &v.version)?)
    .execute(ex)
    .await?;
    Ok(())
}

/// A shipment's versions, first received first.
pub async fn of_shipment<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    shipment_id: &str,
) -> Result<Vec<VersionRow>, DbError> {
    decode::all(
        sqlx::query(sql!(
            "SELECT {COLS} FROM shipment_versions WHERE shipment_id = $1 ORDER BY id"
        ))
        .bind(shipment_id)
        .fetch_all(ex)
        .await?,
    )
}
