//! A merchant's mappings (issue 15): read, replaced or patched as one
//! document, checked as a whole (a bad rule is refused naming it, nothing
//! applied), every change written to the merchant's activity with who,
//! when, and what was before and after.
//!
//! One source of truth each:
//! - ship methods, SKU aliases and carriers: the document
//!   (`merchant_mappings`); the merchant's older `carrier_overrides` field is
//!   kept as a view of `carriers` (written with it, both ways), and a
//!   merchant that never saved mappings reads the built-in rules with its
//!   `carrier_overrides` as carriers;
//! - kit recipes: a person's in the document; learned ones (a shipment's kit
//!   links, Deposco's item data) in `kit_recipes`. The document shown lists
//!   both, each with its source; a person's wins for its kit.

use shipsync_db::unit::Conn;
use std::collections::BTreeMap;

use serde_json::{Value, json};
use shipsync_core::ledger::Recipes;
use shipsync_core::mappings::{
    CarrierMapping, KitComponent, KitRecipe, MappingError, Mappings, RecipeSource,
};
use shipsync_db::mappings::{self as db_mappings, MappingsRow};
use shipsync_db::merchants::{self, MerchantRow};
use shipsync_db::{DbError, activity, now_micros, recipes as db_recipes};

mod preview;
pub use preview::{Change, DEFAULT_LIMIT, MAX_LIMIT, Preview, PreviewItem};

use crate::Engine;
use crate::edit::{EditError, EditResult, merge_patch};

/// The activity kind of a change of a merchant's mappings.
pub const ACTIVITY_KIND: &str = "mappings";

impl From<MappingError> for EditError {
    fn from(e: MappingError) -> Self {
        EditError::InvalidMapping {
            rule: e.rule,
            message: e.message,
        }
    }
}

/// The mappings of a merchant that never saved any: the built-in rules, and
/// its `carrier_overrides` as carriers (an override to an empty name, which
/// meant "unknown", has no carrier mapping).
fn defaults_of(m: &MerchantRow) -> Mappings {
    let mut doc = Mappings::for_new_merchant();
    doc.carriers = m
        .carrier_overrides
        .iter()
        .filter(|(_, to)| !to.trim().is_empty())
        .map(|(from, to)| CarrierMapping {
            warehouse_carrier: from.clone(),
            store_company: to.clone(),
            tracking_url_template: None,
        })
        .collect();
    doc.clone().validated().unwrap_or_else(|e| {
        tracing::warn!(merchant = %m.id, error = %e, "carrier_overrides do not read as carriers");
        Mappings::for_new_merchant()
    })
}

/// The learned recipes by kit, with where each came from.
fn learned_recipes(rows: Vec<db_recipes::RecipeRow>) -> Vec<KitRecipe> {
    let mut by_kit: BTreeMap<String, KitRecipe> = BTreeMap::new();
    for r in rows {
        let k = by_kit
            .entry(r.kit_sku.clone())
            .or_insert_with(|| KitRecipe {
                kit_sku: r.kit_sku.clone(),
                components: Vec::new(),
                source: r.source,
            });
        k.components.push(KitComponent {
            sku: r.component_sku,
            quantity: u64::try_from(r.per_kit).unwrap_or(0),
        });
    }
    by_kit.into_values().collect()
}

/// What changed between two documents, section by section (compact: the
/// sections that differ, before and after).
fn diff(before: &Mappings, after: &Mappings) -> Value {
    let (b, a) = (json!(before), json!(after));
    let mut out = serde_json::Map::new();
    for key in ["ship_methods", "sku_aliases", "kit_recipes", "carriers"] {
        if b.get(key) != a.get(key) {
            out.insert(key.into(), json!({"before": b[key], "after": a[key]}));
        }
    }
    Value::Object(out)
}

impl Engine {
    /// The mappings that apply to a merchant's orders and shipments (the
    /// stored document, else the defaults). Kit recipes here are a person's
    /// only: see [`Self::recipes_of`] for the ledger's.
    pub async fn mappings_of(&self, m: &MerchantRow) -> Result<Mappings, DbError> {
        mappings_in(&mut self.db().pooled(), m).await
    }

    /// The kit recipes the ledger uses for a merchant, in store SKUs: the
    /// learned ones (learned in warehouse item numbers: a kit aliased to
    /// several store SKUs is each of them, a component becomes its first
    /// store SKU), each kit a person set replaced by the person's recipe.
    pub async fn recipes_of(&self, merchant_id: &str, doc: &Mappings) -> Result<Recipes, DbError> {
        recipes_in(&mut self.db().pooled(), merchant_id, doc).await
    }

    /// The document as shown (API, export): the stored one, with the
    /// learned recipes of kits no person set, each with its source.
    pub async fn mappings(&self, merchant_id: &str) -> EditResult<Mappings> {
        let m = merchants::get(self.db().pool(), merchant_id)
            .await?
            .ok_or(EditError::NotFound("merchant"))?;
        let doc = self.mappings_of(&m).await?;
        Ok(self.shown(&m.id, doc).await?)
    }

    async fn shown(&self, merchant_id: &str, mut doc: Mappings) -> Result<Mappings, DbError> {
        let learned =
            learned_recipes(db_recipes::of_merchant(self.db().pool(), merchant_id).await?);
        for k in learned {
            if !doc.kit_recipes.iter().any(|p| p.kit_sku == k.kit_sku) {
                doc.kit_recipes.push(k);
            }
        }
        Ok(doc)
    }

    /// Replaces a merchant's mappings with `doc` (all or nothing) on behalf
    /// of `by`; answers the document as shown. A recipe given with a learned
    /// source that differs from what was learned becomes a person's.
    pub async fn replace_mappings(
        &self,
        merchant_id: &str,
        doc: Value,
        by: &str,
    ) -> EditResult<Mappings> {
        let m = merchants::get(self.db().pool(), merchant_id)
            .await?
            .ok_or(EditError::NotFound("merchant"))?;
        let new = Mappings::from_json(doc)?.validated()?;
        let learned = learned_recipes(db_recipes::of_merchant(self.db().pool(), &m.id).await?);
        let mut stored = new;
        stored.kit_recipes.retain_mut(|k| {
            if k.source == RecipeSource::Person {
                return true;
            }
            let same = learned
                .iter()
                .any(|l| l.kit_sku == k.kit_sku && l.components == k.components);
            k.source = RecipeSource::Person;
            !same
        });
        let before = self.mappings_of(&m).await?;
        if before != stored || db_mappings::get(self.db().pool(), &m.id).await?.is_none() {
            let mut tx = self.db().begin().await?;
            db_mappings::save(
                &mut *tx,
                &MappingsRow {
                    merchant_id: m.id.clone(),
                    doc: stored.clone(),
                    updated_at: now_micros(),
                    updated_by: Some(by.to_string()),
                },
            )
            .await?;
            let mut view = m.clone();
            view.carrier_overrides = stored.carrier_names();
            if view.carrier_overrides != m.carrier_overrides {
                view.updated_at = now_micros();
                merchants::update(&mut *tx, &view).await?;
            }
            let note = json!({"by": by, "changes": diff(&before, &stored)});
            activity::add(&mut *tx, &m.id, ACTIVITY_KIND, &note.to_string()).await?;
            tx.commit().await.map_err(DbError::from)?;
            self.webhook_targets_changed();
        }
        Ok(self.shown(&m.id, stored).await?)
    }

    /// Applies a JSON merge patch (RFC 7396) to the document as shown, then
    /// replaces it as [`Self::replace_mappings`] does.
    pub async fn patch_mappings(
        &self,
        merchant_id: &str,
        patch: Value,
        by: &str,
    ) -> EditResult<Mappings> {
        if !patch.is_object() {
            return Err(EditError::Malformed(
                "a merge patch must be a JSON object".into(),
            ));
        }
        let current = self.mappings(merchant_id).await?;
        let mut doc =
            serde_json::to_value(&current).map_err(|e| EditError::Internal(e.to_string()))?;
        merge_patch(&mut doc, &patch);
        self.replace_mappings(merchant_id, doc, by).await
    }

    /// The document's carriers after the merchant's `carrier_overrides`
    /// (its older view) change to `overrides` (URL templates kept), checked
    /// before anything is saved; `None` when the merchant never saved
    /// mappings (its overrides are read as carriers then) or nothing changes.
    pub(crate) async fn carriers_from_overrides(
        &self,
        merchant_id: &str,
        overrides: &BTreeMap<String, String>,
    ) -> EditResult<Option<(Mappings, MappingsRow)>> {
        let Some(row) = db_mappings::get(self.db().pool(), merchant_id).await? else {
            return Ok(None);
        };
        let before = row.doc;
        let mut after = before.clone();
        after.carriers = overrides
            .iter()
            .filter(|(_, to)| !to.trim().is_empty())
            .map(|(from, to)| CarrierMapping {
                warehouse_carrier: from.clone(),
                store_company: to.clone(),
                tracking_url_template: before
                    .carrier(from)
                    .and_then(|c| c.tracking_url_template.clone()),
            })
            .collect();
        let after = after.validated().map_err(|e| {
            EditError::invalid(
                "carrier_overrides",
                format!("as the mappings' carriers: {e}"),
            )
        })?;
        if after == before {
            return Ok(None);
        }
        Ok(Some((
            before,
            MappingsRow {
                merchant_id: merchant_id.to_string(),
                doc: after,
                updated_at: now_micros(),
                updated_by: Some(OVERRIDES_BY.into()),
            },
        )))
    }
}

/// Who a change of the carriers through the merchant's `carrier_overrides`
/// is logged as.
const OVERRIDES_BY: &str = "merchant settings (carrier_overrides)";

/// Saves the carriers [`Engine::carriers_from_overrides`] prepared, and logs
/// the change, inside the caller's transaction (the one that saves the
/// merchant).
pub(crate) async fn save_carriers(
    tx: &mut shipsync_db::Tx<'_>,
    before: &Mappings,
    row: &MappingsRow,
) -> Result<(), DbError> {
    db_mappings::save(&mut **tx, row).await?;
    let note = json!({"by": OVERRIDES_BY, "changes": diff(before, &row.doc)});
    activity::add(
        &mut **tx,
        &row.merchant_id,
        ACTIVITY_KIND,
        &note.to_string(),
    )
    .await
}

/// [`Engine::mappings_of`] on `c`.
pub(crate) async fn mappings_in(c: &mut impl Conn, m: &MerchantRow) -> Result<Mappings, DbError> {
    Ok(match db_mappings::get(c.ex(), &m.id).await? {
        Some(row) => row.doc,
        None => defaults_of(m),
    })
}

/// [`Engine::recipes_of`] on `c`.
pub(crate) async fn recipes_in(
    c: &mut impl Conn,
    merchant_id: &str,
    doc: &Mappings,
) -> Result<Recipes, DbError> {
    let mut learned: Recipes = BTreeMap::new();
    for r in db_recipes::of_merchant(c.ex(), merchant_id).await? {
        let per_kit = u64::try_from(r.per_kit).unwrap_or(0);
        let component = doc.store_skus(&r.component_sku)[0].to_string();
        for kit in doc.store_skus(&r.kit_sku) {
            learned
                .entry(kit.to_string())
                .or_default()
                .insert(component.clone(), per_kit);
        }
    }
    Ok(doc.recipes_over(learned))
}
