//! A shipment as the warehouse reported it, normalised from whichever wire
//! shape it arrived in (webhook JSON, XML, its JSON mirror, or the API pull).

use serde::{Deserialize, Serialize};

/// The warehouse's own status of a shipment. Only `Shipped` reaches the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WarehouseStatus {
    New,
    Shipping,
    Shipped,
    RolledBack,
    /// Any other status text, kept verbatim.
    Other(String),
}

impl WarehouseStatus {
    /// Maps Deposco's status text (case- and space-insensitive).
    pub fn from_text(s: &str) -> Self {
        let norm: String = s
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '_' && *c != '-')
            .flat_map(char::to_lowercase)
            .collect();
        match norm.as_str() {
            "new" => Self::New,
            "shipping" => Self::Shipping,
            "shipped" => Self::Shipped,
            "rolledback" => Self::RolledBack,
            _ => Self::Other(s.to_string()),
        }
    }
}

/// One report of one warehouse shipment (a "version": the same shipment may
/// be reported again, by a webhook retry, by the pull, or changed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShipmentVersion {
    /// Deposco shipment number, unique per business unit.
    pub number: String,
    /// Deposco's internal id (`self.id`), when given.
    pub warehouse_id: Option<String>,
    pub status: WarehouseStatus,
    /// Order references, best first: `customerOrderNumber`, then the Deposco
    /// order `number`. Compared with store order names with and without `#`.
    pub order_refs: Vec<String>,
    /// Header carrier (`shipVendor`) as the warehouse wrote it.
    pub carrier: Option<String>,
    /// Header service (`shipVia`, else `shipMethod`).
    pub service: Option<String>,
    /// Header tracking URL base, when given.
    pub tracking_url: Option<String>,
    /// `actualShipDate`, verbatim.
    pub shipped_at: Option<String>,
    /// `updatedDate`, verbatim (RFC 3339 when the warehouse sends it so);
    /// orders versions of the same shipment.
    pub updated_at: Option<String>,
    /// Shipped item lines (plain items and kit components). A kit's own line,
    /// which carries no shipped units itself, is not listed here: its
    /// components point at it through `kit`.
    pub lines: Vec<ShipmentLine>,
    /// Packages (containers / LPNs). Never empty for a shipped shipment with
    /// units: without containers, one package with the header tracking.
    pub packages: Vec<Package>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShipmentLine {
    /// Deposco order line number (or id when no number is known); unique
    /// within the shipment.
    pub line_number: String,
    pub sku: String,
    /// Units shipped on this line (whole units).
    pub quantity: u64,
    /// Units ordered on this Deposco order line (`orderPackQuantity`).
    pub ordered_quantity: Option<u64>,
    /// The store's line id as sent to Deposco (`customerLineNumber`).
    pub store_line_id: Option<String>,
    /// Set when this line is a component of a kit line.
    pub kit: Option<KitLink>,
}

/// A component line's link to the kit (bundle) line it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KitLink {
    /// The kit line's Deposco line number (or id).
    pub line_number: String,
    /// Kit SKU, when the payload names it.
    pub sku: Option<String>,
    /// The kit line's store line id (`customerLineNumber`), when given.
    pub store_line_id: Option<String>,
    /// Kits ordered on the kit line (`orderPackQuantity`), when given.
    pub kit_quantity: Option<u64>,
    /// Units of this component per kit = component ordered / kit ordered,
    /// when both are known and divide evenly.
    pub per_kit: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Package {
    /// Container number / LPN; `"shipment"` for the implicit single package.
    pub key: String,
    pub tracking_number: Option<String>,
    pub carrier: Option<String>,
    pub service: Option<String>,
    pub lines: Vec<PackageLine>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageLine {
    /// `line_number` of the shipment line these units belong to.
    pub line_number: String,
    pub sku: String,
    pub quantity: u64,
}

impl ShipmentVersion {
    /// Total shipped units over all lines.
    pub fn shipped_units(&self) -> u64 {
        self.lines.iter().map(|l| l.quantity).sum()
    }
}
