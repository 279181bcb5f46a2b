//! An order's lines with what happened to them (sent, shipped, fulfilled),
//! the order's state as its shipments reach the store, and the order a
//! shipment names.

use std::collections::{BTreeMap, BTreeSet};

use shipsync_core::ShipmentVersion;
use shipsync_core::ledger::{self, KitPolicy, OrderLine, ShipmentInput};
use shipsync_db::now_micros;
use shipsync_db::orders::{self as db_orders, OrderRecord};
use shipsync_db::rows::{self};
use shipsync_shopify::StoreOrder;

use crate::Engine;
use crate::error::EngineError;

/// One line of an order with what happened to it, for the API.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct OrderLineView {
    pub id: String,
    pub sku: Option<String>,
    pub name: Option<String>,
    /// Units ordered (after store-side removals).
    pub quantity: u64,
    /// Units sent to the warehouse.
    pub sent_quantity: u64,
    /// Units the warehouse reported shipped (kit lines in kits).
    pub shipped_quantity: u64,
    /// Units fulfilled in the store by shipsync.
    pub fulfilled_quantity: u64,
    /// Shopify bundle (line item group) title, when the line is part of one.
    pub group: Option<String>,
    /// Kit components (SKU and units per kit) when the SKU is a known kit.
    pub kit: Option<Vec<KitComponentView>>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KitComponentView {
    pub sku: String,
    pub quantity: u64,
}

#[derive(serde::Deserialize)]
struct StoredLine {
    id: String,
    sku: Option<String>,
    name: Option<String>,
    #[serde(default)]
    quantity: u64,
    group: Option<String>,
}

impl Engine {
    /// The order's lines with ordered, sent, shipped and fulfilled units.
    pub async fn order_lines(&self, o: &OrderRecord) -> Result<Vec<OrderLineView>, EngineError> {
        let db = self.db();
        let stored: Vec<StoredLine> = serde_json::from_str(&o.lines_json).unwrap_or_default();
        let mut fulfilled: BTreeMap<String, u64> = BTreeMap::new();
        for f in db.store_fulfillments_for_order(&o.store_order_id).await? {
            if f.connection_id != o.connection_id || f.state != "done" {
                continue;
            }
            let lines: BTreeMap<String, u64> =
                serde_json::from_str(&f.lines_json).unwrap_or_default();
            for (line, q) in lines {
                *fulfilled.entry(line).or_default() += q;
            }
        }
        let merchant = match db.get_connection(&o.connection_id).await? {
            Some(c) => db.get_merchant(&c.merchant_id).await?,
            None => None,
        };
        let mut recipes: ledger::Recipes = BTreeMap::new();
        if let Some(m) = &merchant {
            for (kit, comp, per) in db.recipes(&m.id).await? {
                recipes
                    .entry(kit)
                    .or_default()
                    .insert(comp, u64::try_from(per).unwrap_or(0));
            }
        }
        let policy = match merchant.as_ref().map(|m| m.kit_policy.as_str()) {
            Some("first_component") => KitPolicy::FirstComponent,
            _ => KitPolicy::CompleteKits,
        };
        let versions: Vec<(String, ShipmentVersion)> = db
            .shipments_for_order(&o.store_order_id)
            .await?
            .into_iter()
            .filter(|s| {
                s.status != "archived" && s.connection_id.as_deref() == Some(&o.connection_id)
            })
            .filter_map(|s| {
                serde_json::from_str::<ShipmentVersion>(&s.version_json)
                    .ok()
                    .map(|v| (s.id, v))
            })
            .collect();
        let order_lines: Vec<OrderLine> = stored
            .iter()
            .map(|l| OrderLine {
                id: l.id.clone(),
                sku: l.sku.clone(),
                quantity: l.quantity,
            })
            .collect();
        let inputs: Vec<ShipmentInput<'_>> = versions
            .iter()
            .map(|(k, v)| ShipmentInput { key: k, version: v })
            .collect();
        let mut shipped: BTreeMap<String, u64> = BTreeMap::new();
        for result in ledger::attribute(&order_lines, &recipes, policy, &inputs) {
            for share in result.result.unwrap_or_default() {
                *shipped.entry(share.store_line_id).or_default() += share.quantity;
            }
        }
        let sent = o.warehouse_number.is_some();
        Ok(stored
            .into_iter()
            .map(|l| {
                let kit = l.sku.as_ref().and_then(|s| recipes.get(s)).map(|comps| {
                    comps
                        .iter()
                        .map(|(sku, q)| KitComponentView {
                            sku: sku.clone(),
                            quantity: *q,
                        })
                        .collect()
                });
                let fulfilled_quantity = fulfilled.get(&l.id).copied().unwrap_or(0);
                OrderLineView {
                    sent_quantity: if sent { l.quantity } else { 0 },
                    shipped_quantity: shipped
                        .get(&l.id)
                        .copied()
                        .unwrap_or(0)
                        .max(fulfilled_quantity),
                    fulfilled_quantity,
                    id: l.id,
                    sku: l.sku,
                    name: l.name,
                    quantity: l.quantity,
                    group: l.group,
                    kit,
                }
            })
            .collect())
    }

    /// After a shipment of a store order reached the store: move the local
    /// order to `partially_shipped` or `shipped` (never back).
    pub(crate) async fn order_shipment_done(
        &self,
        connection_id: &str,
        store_order_id: &str,
    ) -> Result<(), EngineError> {
        let db = self.db();
        let Some(o) = db
            .order_of_store_order(connection_id, store_order_id)
            .await?
        else {
            return Ok(());
        };
        if matches!(o.status.as_str(), "shipped" | "closed" | "archived") {
            return Ok(());
        }
        let lines = self.order_lines(&o).await?;
        let ordered: u64 = lines.iter().map(|l| l.quantity).sum();
        let shipped: u64 = lines
            .iter()
            .map(|l| l.shipped_quantity.min(l.quantity))
            .sum();
        let status = if ordered > 0 && lines.iter().all(|l| l.shipped_quantity >= l.quantity) {
            "shipped"
        } else if lines.iter().any(|l| l.shipped_quantity > 0) {
            "partially_shipped"
        } else {
            return Ok(());
        };
        if status == o.status {
            return Ok(());
        }
        let mut tx = db.begin().await?;
        let Some(mut o) = db_orders::order_for_update(&mut tx, &o.id).await? else {
            return Ok(());
        };
        if matches!(o.status.as_str(), "shipped" | "closed" | "archived") {
            return Ok(());
        }
        o.status = status.into();
        o.error = None;
        o.updated_at = now_micros();
        db_orders::update_order(&mut *tx, &o).await?;
        let message = if status == "shipped" {
            format!("Shipped in full: {shipped} of {ordered} unit(s)")
        } else {
            format!("Partially shipped: {shipped} of {ordered} unit(s)")
        };
        rows::add_activity(&mut *tx, &o.id, status, &message).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The order shipsync sent to Deposco that a shipment names, when
    /// exactly one connection of the merchant has it: its connection and the
    /// store order (id and name; the caller reads the rest from the store).
    pub(crate) async fn sent_order_for(
        &self,
        merchant_id: &str,
        version: &ShipmentVersion,
    ) -> Result<Option<(String, StoreOrder)>, EngineError> {
        let rows = self
            .db()
            .sent_orders_for_refs(merchant_id, &version.order_refs)
            .await?;
        let targets: BTreeSet<(&str, &str)> = rows
            .iter()
            .map(|r| (r.connection_id.as_str(), r.store_order_id.as_str()))
            .collect();
        if targets.len() != 1 {
            return Ok(None);
        }
        let r = &rows[0];
        Ok(Some((
            r.connection_id.clone(),
            StoreOrder::named(r.store_order_id.clone(), r.name.clone()),
        )))
    }
}
