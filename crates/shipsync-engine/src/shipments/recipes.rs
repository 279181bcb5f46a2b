//! Kit recipes (kit SKU → components per kit): those saved from shipments
//! and those read from Deposco's item data when the ledger lacks one.

use std::collections::BTreeSet;

use shipsync_core::ShipmentVersion;
use shipsync_core::ledger::{OrderLine, Recipes};
use shipsync_core::mappings::{Mappings, RecipeSource};
use shipsync_db::recipes as db_recipes;

use crate::Engine;

impl Engine {
    /// Reads kit recipes from Deposco's item data for order lines that are
    /// neither shipped as such nor known kits; true when one was learned.
    /// Best effort: without warehouse credentials or on errors, nothing.
    pub(super) async fn learn_recipes_from_items(
        &self,
        merchant: &shipsync_db::merchants::MerchantRow,
        mappings: &Mappings,
        order_lines: &[OrderLine],
        versions: &[(String, ShipmentVersion)],
        recipes: &Recipes,
    ) -> bool {
        let shipped: BTreeSet<&str> = versions
            .iter()
            .flat_map(|(_, v)| v.lines.iter().map(|l| l.sku.as_str()))
            .collect();
        let candidates: BTreeSet<&str> = order_lines
            .iter()
            .filter_map(|l| l.sku.as_deref())
            .filter(|sku| !shipped.contains(sku) && !recipes.contains_key(*sku))
            .take(20)
            .collect();
        if candidates.is_empty() {
            return false;
        }
        let Ok(client) = self.deposco_client(merchant) else {
            return false;
        };
        let mut learned = false;
        for store_sku in candidates {
            // Deposco knows the item by its number; the recipe is kept in
            // item numbers, as the warehouse's kit links are.
            let sku = mappings.warehouse_item(store_sku);
            match client.item(sku).await {
                Ok(Some(item)) if !item.components.is_empty() => {
                    for c in &item.components {
                        let per_kit = i64::try_from(c.quantity).unwrap_or(i64::MAX);
                        if db_recipes::save(
                            self.db().pool(),
                            &merchant.id,
                            sku,
                            &c.sku,
                            per_kit,
                            RecipeSource::Items,
                        )
                        .await
                        .is_ok()
                        {
                            learned = true;
                        }
                    }
                    tracing::info!(kit = sku, "kit recipe read from Deposco item data");
                }
                Ok(_) => {}
                Err(e) => tracing::info!(sku, error = %e, "could not read Deposco item"),
            }
        }
        learned
    }
}
