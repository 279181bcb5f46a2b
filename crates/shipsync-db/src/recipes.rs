//! `kit_recipes`: the components of a merchant's kits, learnt from the
//! warehouse (a shipment's kit links, or Deposco's item data). A person's
//! recipes are in the merchant's mappings document (see [`crate::mappings`])
//! and win over these.

use shipsync_core::mappings::RecipeSource;
use sqlx::any::AnyRow;
use sqlx::{Any, Executor};

use crate::decode::{self, Cols};
use crate::{DbError, now_micros};

/// One component of one learned kit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipeRow {
    pub kit_sku: String,
    pub component_sku: String,
    pub per_kit: i64,
    /// `webhook` or `items`.
    pub source: RecipeSource,
}

impl TryFrom<AnyRow> for RecipeRow {
    type Error = DbError;

    fn try_from(row: AnyRow) -> Result<Self, DbError> {
        let c = Cols::of(&row, "kit_recipes");
        Ok(Self {
            kit_sku: c.get("kit_sku")?,
            component_sku: c.get("component_sku")?,
            per_kit: c.get("per_kit")?,
            source: c.word("source")?,
        })
    }
}

/// Saves a kit recipe (inserted or replaced), e.g. inside the transaction
/// that stores a page of the pull.
pub async fn save<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    merchant_id: &str,
    kit_sku: &str,
    component_sku: &str,
    per_kit: i64,
    source: RecipeSource,
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO kit_recipes (merchant_id, kit_sku, component_sku, per_kit, updated_at, source) VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (merchant_id, kit_sku, component_sku) DO UPDATE SET per_kit = excluded.per_kit, updated_at = excluded.updated_at,
           source = excluded.source",
    )
    .bind(merchant_id)
    .bind(kit_sku)
    .bind(component_sku)
    .bind(per_kit)
    .bind(now_micros())
    .bind(source.as_str())
    .execute(ex)
    .await?;
    Ok(())
}

/// A merchant's learned recipes, by kit then component.
pub async fn of_merchant<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    merchant_id: &str,
) -> Result<Vec<RecipeRow>, DbError> {
    decode::all(
        sqlx::query(
            "SELECT kit_sku, component_sku, per_kit, source FROM kit_recipes WHERE merchant_id = $1 ORDER BY kit_sku, component_sku",
        )
        .bind(merchant_id)
        .fetch_all(ex)
        .await?,
    )
}
