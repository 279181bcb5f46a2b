//! `kit_recipes`: the components of a merchant's kits, learnt from the
//! warehouse.

use sqlx::{Any, Executor};

use crate::{DbError, now_micros};

/// Saves a kit recipe (inserted or replaced), e.g. inside the transaction
/// that stores a page of the pull.
pub async fn save<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    merchant_id: &str,
    kit_sku: &str,
    component_sku: &str,
    per_kit: i64,
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO kit_recipes (merchant_id, kit_sku, component_sku, per_kit, updated_at) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (merchant_id, kit_sku, component_sku) DO UPDATE SET per_kit = excluded.per_kit, updated_at = excluded.updated_at",
    )
    .bind(merchant_id)
    .bind(kit_sku)
    .bind(component_sku)
    .bind(per_kit)
    .bind(now_micros())
    .execute(ex)
    .await?;
    Ok(())
}

/// (kit sku, component sku, per kit) for a merchant.
pub async fn of_merchant<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    merchant_id: &str,
) -> Result<Vec<(String, String, i64)>, DbError> {
    Ok(sqlx::query_as(
        "SELECT kit_sku, component_sku, per_kit FROM kit_recipes WHERE merchant_id = $1",
    )
    .bind(merchant_id)
    .fetch_all(ex)
    .await?)
}
