//! What a test says about a shipment, and what the sandbox stored for it.
//!
//! The spec is deliberately close to how a warehouse person would describe a
//! shipment ("order 1001, two T-shirts, one in each box"); the renderers turn
//! it into every Deposco shape.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// One outbound shipment as a test describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ShipmentSpec {
    /// Deposco's order number, e.g. `"1001"`.
    pub order_number: String,
    /// The store's order name as sent to Deposco, e.g. `"#1001"`.
    pub customer_order_number: Option<String>,
    /// `Shipped` (default), `New`, `Shipping` or `Rolled Back`; any text is passed through.
    pub status: String,
    pub ship_vendor: Option<String>,
    pub ship_via: Option<String>,
    pub ship_method: Option<String>,
    /// Header tracking number; `None` means the first package's.
    pub tracking_number: Option<String>,
    pub tracking_url: Option<String>,
    pub lines: Vec<LineSpec>,
    /// Empty: no containers at all (header tracking only).
    pub packages: Vec<PackageSpec>,
    /// `None`: the creation time when the status is `Shipped`, otherwise absent.
    pub actual_ship_date: Option<Timestamp>,
    /// `None`: the time `add_shipment` was called.
    pub created_date: Option<Timestamp>,
    /// `None`: maintained by the sandbox (creation, then bumped on every update).
    pub updated_date: Option<Timestamp>,
}

impl Default for ShipmentSpec {
    fn default() -> Self {
        Self {
            order_number: String::new(),
            customer_order_number: None,
            status: "Shipped".to_owned(),
            ship_vendor: Some("UPS".to_owned()),
            ship_via: Some("UPS Ground".to_owned()),
            ship_method: None,
            tracking_number: None,
            tracking_url: None,
            lines: Vec::new(),
            packages: Vec::new(),
            actual_ship_date: None,
            created_date: None,
            updated_date: None,
        }
    }
}

impl ShipmentSpec {
    /// A shipped UPS shipment for Deposco order `order_number`, customer order `#<order_number>`.
    pub fn new(order_number: impl Into<String>) -> Self {
        let order_number = order_number.into();
        Self {
            customer_order_number: Some(format!("#{order_number}")),
            order_number,
            ..Self::default()
        }
    }

    pub fn status(mut self, status: impl Into<String>) -> Self {
        self.status = status.into();
        self
    }

    pub fn carrier(mut self, ship_vendor: impl Into<String>, ship_via: impl Into<String>) -> Self {
        self.ship_vendor = Some(ship_vendor.into());
        self.ship_via = Some(ship_via.into());
        self
    }

    pub fn tracking(mut self, tracking_number: impl Into<String>) -> Self {
        self.tracking_number = Some(tracking_number.into());
        self
    }

    pub fn line(mut self, line: LineSpec) -> Self {
        self.lines.push(line);
        self
    }

    pub fn package(mut self, package: PackageSpec) -> Self {
        self.packages.push(package);
        self
    }

    /// The header tracking number: the explicit one, else the first package's.
    pub fn header_tracking(&self) -> Option<&str> {
        self.tracking_number
            .as_deref()
            .or_else(|| self.packages.first().map(|p| p.tracking_number.as_str()))
    }

    /// The plain two-package shipment of `tests/fixtures/simple.*` (order 1001).
    pub fn example_simple() -> Self {
        Self::new("1001")
            .carrier("UPS", "UPS Ground")
            .line(
                LineSpec::new(1, "TSHIRT-M-BLU", 2)
                    .customer_line("gid://shopify/LineItem/13542875496701"),
            )
            .line(
                LineSpec::new(2, "MUG-CLASSIC", 1)
                    .customer_line("gid://shopify/LineItem/13542875529469"),
            )
            .package(PackageSpec::new("LPN0000731", "1Z999AA10123456784").line(1, 1))
            .package(
                PackageSpec::new("LPN0000732", "1Z999AA10123456791")
                    .line(1, 1)
                    .line(2, 1),
            )
    }

    /// The kit shipment of `tests/fixtures/kit.*` (order 1002: a gift set of
    /// 2 × (1 candle + 2 soaps), shipped as components in one box).
    pub fn example_kit() -> Self {
        let kit = KitSpec {
            kit_line_number: 1,
            kit_sku: "GIFTSET-01".to_owned(),
            kit_ordered: 2,
            kit_customer_line_number: Some("gid://shopify/LineItem/13542875660541".to_owned()),
        };
        Self::new("1002")
            .carrier("USPS", "USPS Ground Advantage")
            .line(LineSpec::new(2, "CANDLE-VAN", 2).kit(kit.clone()))
            .line(LineSpec::new(3, "SOAP-LAV", 4).kit(kit))
            .package(
                PackageSpec::new("LPN0000740", "9400111899223197428490")
                    .line(2, 2)
                    .line(3, 4),
            )
    }
}

/// One order line on the shipment. A kit component names its kit in `kit`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LineSpec {
    /// The Deposco order line number.
    pub line_number: u32,
    pub sku: String,
    pub ordered: u32,
    pub shipped: u32,
    /// The store's line id (for a kit component usually `None`: the kit line carries it).
    #[serde(default)]
    pub customer_line_number: Option<String>,
    #[serde(default)]
    pub kit: Option<KitSpec>,
}

impl LineSpec {
    /// A line ordered and shipped in full.
    pub fn new(line_number: u32, sku: impl Into<String>, quantity: u32) -> Self {
        Self {
            line_number,
            sku: sku.into(),
            ordered: quantity,
            shipped: quantity,
            customer_line_number: None,
            kit: None,
        }
    }

    pub fn shipped(mut self, shipped: u32) -> Self {
        self.shipped = shipped;
        self
    }

    pub fn customer_line(mut self, id: impl Into<String>) -> Self {
        self.customer_line_number = Some(id.into());
        self
    }

    pub fn kit(mut self, kit: KitSpec) -> Self {
        self.kit = Some(kit);
        self
    }
}

/// The kit order line a component line belongs to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KitSpec {
    pub kit_line_number: u32,
    pub kit_sku: String,
    pub kit_ordered: u32,
    #[serde(default)]
    pub kit_customer_line_number: Option<String>,
}

/// One shipped container (package).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PackageSpec {
    /// The container number.
    pub number: String,
    /// `None`: JSON `lpnNumber` repeats `number`, and XML names the container by `<number>`.
    #[serde(default)]
    pub lpn: Option<String>,
    pub tracking_number: String,
    /// `None`: the shipment's vendor.
    #[serde(default)]
    pub ship_vendor: Option<String>,
    /// `(order line number, quantity)` packed in this container.
    #[serde(default)]
    pub lines: Vec<(u32, u32)>,
}

impl PackageSpec {
    /// A container whose LPN equals its number (as in the fixtures).
    pub fn new(number: impl Into<String>, tracking_number: impl Into<String>) -> Self {
        let number = number.into();
        Self {
            lpn: Some(number.clone()),
            number,
            tracking_number: tracking_number.into(),
            ship_vendor: None,
            lines: Vec::new(),
        }
    }

    pub fn line(mut self, line_number: u32, quantity: u32) -> Self {
        self.lines.push((line_number, quantity));
        self
    }
}

/// A shipment as stored by the sandbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShipmentRecord {
    /// Deposco's `self.id`.
    pub id: u64,
    /// The shipment number, `SHP-…`.
    pub number: String,
    pub spec: ShipmentSpec,
    pub created_date: Timestamp,
    pub updated_date: Timestamp,
}

impl ShipmentRecord {
    /// The actual ship date: explicit, else the creation time for a shipped shipment.
    pub fn actual_ship_date(&self) -> Option<Timestamp> {
        self.spec.actual_ship_date.or_else(|| {
            (self.spec.status.eq_ignore_ascii_case("Shipped")).then_some(self.created_date)
        })
    }
}

/// An item of the catalogue; a kit when it has components.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemSpec {
    pub number: String,
    #[serde(default)]
    pub components: Vec<ComponentSpec>,
}

impl ItemSpec {
    pub fn new(number: impl Into<String>) -> Self {
        Self {
            number: number.into(),
            components: Vec::new(),
        }
    }

    pub fn component(mut self, sku: impl Into<String>, quantity: u32) -> Self {
        self.components.push(ComponentSpec {
            sku: sku.into(),
            quantity,
        });
        self
    }
}

/// `quantity` units of `sku` per unit of the kit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComponentSpec {
    pub sku: String,
    pub quantity: u32,
}
