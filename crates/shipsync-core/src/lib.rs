//! The shipsync domain, free of I/O: what a warehouse shipment *is* once
//! normalised, and the rules that turn shipments into store fulfillments.

pub mod alerts;
pub mod fulfillment;
pub mod landed;
pub mod ledger;
pub mod mappings;
pub mod order_lifecycle;
pub mod order_rules;
pub mod outbound_events;
pub mod schedule;
pub mod shipment;
pub mod states;

pub mod tracking;
pub mod versions;

pub use shipment::{KitLink, Package, PackageLine, ShipmentLine, ShipmentVersion, WarehouseStatus};
