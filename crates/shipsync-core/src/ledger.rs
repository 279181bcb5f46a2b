//! The per-line ledger: how much of each store order line the warehouse has
//! shipped, attributed to the shipment that shipped it, with kit roll-up.
//!
//! Rules: `../../docs/kits-and-partials.md` (copied from shared/docs). Every
//! function here is pure and recomputes from all known shipments, never by
//! adding deltas, so a repeat can never double-count.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::shipment::ShipmentVersion;

/// How kit (bundle) lines count as shipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KitPolicy {
    /// A kit counts only when all its components have shipped.
    #[default]
    CompleteKits,
    /// A kit counts as soon as any component ships (capped at ordered).
    FirstComponent,
}

/// A store order line as the ledger needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    /// The store's line id (Shopify `gid://shopify/LineItem/…`).
    pub id: String,
    pub sku: Option<String>,
    /// Units ordered (after store-side removals).
    pub quantity: u64,
}

/// Known kit recipes: kit SKU → component SKU → units per kit.
pub type Recipes = BTreeMap<String, BTreeMap<String, u64>>;

/// One shipment known for the order, in stable order (first received first).
#[derive(Debug, Clone)]
pub struct ShipmentInput<'a> {
    /// The shipment's id in shipsync (`shp_…`).
    pub key: &'a str,
    /// Its newest version.
    pub version: &'a ShipmentVersion,
}

/// What one shipment contributes to one store line, per carrier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineShare {
    pub store_line_id: String,
    /// Store units (kits for a kit line) this shipment shipped on the line.
    pub quantity: u64,
    /// Carrier as the warehouse wrote it (package carrier, else header).
    pub carrier: Option<String>,
    /// Keys of the packages that carried these units (sorted, unique).
    pub package_keys: Vec<String>,
}

/// Why a shipment cannot go to the store; the message names what a person
/// must fix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerProblem {
    pub message: String,
}

/// The outcome for one shipment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShipmentShares {
    pub key: String,
    pub result: Result<Vec<LineShare>, LedgerProblem>,
}

/// Attributes every shipped unit of the order's shipments to store lines.
///
/// See the module docs of the implementation for the matching rules.
pub fn attribute(
    order_lines: &[OrderLine],
    recipes: &Recipes,
    policy: KitPolicy,
    shipments: &[ShipmentInput<'_>],
) -> Vec<ShipmentShares> {
    let _ = (order_lines, recipes, policy, shipments);
    unimplemented!("ledger::attribute")
}

/// Kit recipes a shipment teaches: for each component line with a kit SKU and
/// a `per_kit`, kit SKU → component SKU → per kit.
pub fn recipes_seen(version: &ShipmentVersion) -> Recipes {
    let _ = version;
    unimplemented!("ledger::recipes_seen")
}

/// Already acknowledged or in-flight store quantities for one shipment:
/// store line id → units.
pub type Sent = BTreeMap<String, u64>;

/// What the store still has to learn for one shipment: `shares − sent`, per
/// (store line, carrier), dropping non-positive differences (statuses only
/// move forward: nothing is ever un-fulfilled).
pub fn still_to_send(shares: &[LineShare], sent: &Sent) -> Vec<LineShare> {
    let _ = (shares, sent);
    unimplemented!("ledger::still_to_send")
}
