//! `merchant_mappings`: one mappings document per merchant (issue 15). A
//! merchant without a row has not edited its mappings: the engine reads the
//! defaults then (see `shipsync_core::mappings::Mappings::for_new_merchant`).

use shipsync_core::mappings::Mappings;
use sqlx::any::AnyRow;
use sqlx::{Any, Executor};

use crate::DbError;
use crate::decode::{Cols, to_json};

#[derive(Debug, Clone, PartialEq)]
pub struct MappingsRow {
    pub merchant_id: String,
    pub doc: Mappings,
    pub updated_at: i64,
    /// Who saved it last (a user's email, a token's name, `cli`).
    pub updated_by: Option<String>,
}

impl TryFrom<AnyRow> for MappingsRow {
    type Error = DbError;

    fn try_from(row: AnyRow) -> Result<Self, DbError> {
        let c = Cols::of(&row, "merchant_mappings");
        Ok(Self {
            merchant_id: c.get("merchant_id")?,
            doc: c.json("doc_json")?,
            updated_at: c.get("updated_at")?,
            updated_by: c.get("updated_by")?,
        })
    }
}

/// A merchant's stored document, if it ever saved one.
pub async fn get<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    merchant_id: &str,
) -> Result<Option<MappingsRow>, DbError> {
    sqlx::query(
        "SELECT merchant_id, doc_json, updated_at, updated_by FROM merchant_mappings WHERE merchant_id = $1",
    )
    .bind(merchant_id)
    .fetch_optional(ex)
    .await?
    .map(MappingsRow::try_from)
    .transpose()
}

/// Saves a merchant's document (inserted or replaced).
pub async fn save<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    row: &MappingsRow,
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO merchant_mappings (merchant_id, doc_json, updated_at, updated_by) VALUES ($1, $2, $3, $4)
         ON CONFLICT (merchant_id) DO UPDATE SET doc_json = excluded.doc_json, updated_at = excluded.updated_at,
           updated_by = excluded.updated_by",
    )
    .bind(&row.merchant_id)
    .bind(to_json("merchant_mappings.doc_json", &row.doc)?)
    .bind(row.updated_at)
    .bind(&row.updated_by)
    .execute(ex)
    .await?;
    Ok(())
}
