//! An order's lines with what happened to them (sent, shipped, fulfilled),
//! the order's state as its shipments reach the store, and the order a
//! shipment names.

use std::collections::{BTreeMap, BTreeSet};

use shipsync_core::ShipmentVersion;
use shipsync_core::ledger::{self, OrderLine, ShipmentInput};
use shipsync_core::mappings::Mappings;
use shipsync_core::states::{FulfillmentState, OrderStatus, ShipmentStatus};
use shipsync_db::merchants::MerchantRow;
use shipsync_db::orders::{self as db_orders, OrderRecord};
use shipsync_db::unit::Conn;
use shipsync_db::{activity, connections, fulfillments, merchants, now_micros, shipments};
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
    /// Why the line sends nothing to the warehouse, if so.
    pub skipped: Option<String>,
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

/// The merchant's settings an order's lines are read with, when the caller
/// has them loaded already (a shipment's run).
#[derive(Clone, Copy)]
pub(crate) struct OrderConfig<'a> {
    pub merchant: &'a MerchantRow,
    pub mappings: &'a Mappings,
    pub recipes: &'a ledger::Recipes,
}

impl Engine {
    /// The order's lines with ordered, sent, shipped and fulfilled units.
    pub async fn order_lines(&self, o: &OrderRecord) -> Result<Vec<OrderLineView>, EngineError> {
        let db = self.db();
        let merchant = match connections::get(db.pool(), &o.connection_id).await? {
            Some(c) => merchants::get(db.pool(), &c.merchant_id).await?,
            None => None,
        };
        match &merchant {
            Some(m) => {
                let mappings = self.mappings_of(m).await?;
                let recipes = self.recipes_of(&m.id, &mappings).await?;
                let config = OrderConfig {
                    merchant: m,
                    mappings: &mappings,
                    recipes: &recipes,
                };
                order_lines_in(&mut db.pooled(), o, Some(config)).await
            }
            None => order_lines_in(&mut db.pooled(), o, None).await,
        }
    }
}

/// The order shipsync sent to Deposco that a shipment names, when exactly
/// one connection of the merchant has it: its connection and the store
/// order (id and name; the caller reads the rest from the store).
pub(crate) async fn sent_order_for(
    c: &mut impl Conn,
    merchant_id: &str,
    version: &ShipmentVersion,
) -> Result<Option<(String, StoreOrder)>, EngineError> {
    let rows = db_orders::sent_for_refs(c.ex(), merchant_id, &version.order_refs).await?;
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

/// [`Engine::order_lines`] on `c`, with the merchant's settings given (`None`:
/// the merchant is gone; defaults).
pub(crate) async fn order_lines_in(
    c: &mut impl Conn,
    o: &OrderRecord,
    config: Option<OrderConfig<'_>>,
) -> Result<Vec<OrderLineView>, EngineError> {
    let stored = &o.lines;
    let mut fulfilled: BTreeMap<String, u64> = BTreeMap::new();
    for f in fulfillments::of_store_order(c.ex(), &o.store_order_id).await? {
        if f.connection_id != o.connection_id || f.state != FulfillmentState::Done {
            continue;
        }
        for (line, q) in f.lines {
            *fulfilled.entry(line).or_default() += q;
        }
    }
    let (no_doc, no_recipes) = (Mappings::default(), ledger::Recipes::new());
    let (doc, recipes) = match config {
        Some(c) => (c.mappings, c.recipes),
        None => (&no_doc, &no_recipes),
    };
    let policy = config.map(|c| c.merchant.kit_policy).unwrap_or_default();
    let versions: Vec<(String, ShipmentVersion)> = shipments::for_order(c.ex(), &o.store_order_id)
        .await?
        .into_iter()
        .filter(|s| {
            s.status != ShipmentStatus::Archived
                && s.connection_id.as_deref() == Some(&o.connection_id)
        })
        .map(|s| (s.id, s.version))
        .collect();
    // The ledger sees store SKUs (see the shipment sync).
    let order_skus: BTreeSet<&str> = stored.iter().filter_map(|l| l.sku.as_deref()).collect();
    let versions: Vec<(String, ShipmentVersion)> = versions
        .into_iter()
        .map(|(k, v)| (k, doc.in_store_skus(&v, &order_skus)))
        .collect();
    let order_lines: Vec<OrderLine> = stored
        .iter()
        .map(|l| OrderLine {
            id: l.id.clone(),
            sku: l.sku.clone(),
            quantity: l.quantity,
            removed: 0,
        })
        .collect();
    let inputs: Vec<ShipmentInput<'_>> = versions
        .iter()
        .map(|(k, v)| ShipmentInput { key: k, version: v })
        .collect();
    let mut shipped: BTreeMap<String, u64> = BTreeMap::new();
    for result in ledger::attribute(&order_lines, recipes, policy, &inputs) {
        for share in result.result.unwrap_or_default() {
            *shipped.entry(share.store_line_id).or_default() += share.quantity;
        }
    }
    let sent = o.warehouse_number.is_some();
    Ok(stored
        .iter()
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
                sent_quantity: super::take::units_sent(l, sent),
                skipped: l.skipped.clone(),
                shipped_quantity: shipped
                    .get(&l.id)
                    .copied()
                    .unwrap_or(0)
                    .max(fulfilled_quantity),
                fulfilled_quantity,
                id: l.id.clone(),
                sku: l.sku.clone(),
                name: l.name.clone(),
                quantity: l.quantity,
                group: l.group.clone(),
                kit,
            }
        })
        .collect())
}

/// After a shipment of a store order reached the store: move the local
/// order to `partially_shipped` or `shipped` (never back). `config`:
/// the merchant's settings as the shipment's run loaded them; inside the
/// run's last unit.
pub(crate) async fn order_shipment_done(
    c: &mut impl Conn,
    connection_id: &str,
    store_order_id: &str,
    config: OrderConfig<'_>,
) -> Result<(), EngineError> {
    let Some(o) = db_orders::of_store_order(c.ex(), connection_id, store_order_id).await? else {
        return Ok(());
    };
    if o.status.is_settled() {
        return Ok(());
    }
    let lines = order_lines_in(c, &o, Some(config)).await?;
    // What the warehouse was asked for: the lines sent (skipped ones,
    // another location's say, are not the warehouse's to ship).
    let sent = o.warehouse_number.is_some();
    let wanted = |l: &OrderLineView| if sent { l.sent_quantity } else { l.quantity };
    let ordered: u64 = lines.iter().map(wanted).sum();
    let shipped: u64 = lines
        .iter()
        .map(|l| l.shipped_quantity.min(wanted(l)))
        .sum();
    let status = if ordered > 0 && lines.iter().all(|l| l.shipped_quantity >= wanted(l)) {
        OrderStatus::Shipped
    } else if lines.iter().any(|l| l.shipped_quantity > 0) {
        OrderStatus::PartiallyShipped
    } else {
        return Ok(());
    };
    if status == o.status {
        return Ok(());
    }
    if !db_orders::move_unless_settled(c.ex(), &o.id, status, now_micros()).await? {
        return Ok(());
    }
    let message = if status == OrderStatus::Shipped {
        format!("Shipped in full: {shipped} of {ordered} unit(s)")
    } else {
        format!("Partially shipped: {shipped} of {ordered} unit(s)")
    };
    activity::add(c.ex(), &o.id, status.as_str(), &message).await?;
    Ok(())
}
