//! Deposco, the warehouse side: what its shipment webhooks look like once
//! parsed ([`webhook`]), how their signatures are checked ([`signature`]),
//! how its carrier codes map to the store's carrier names ([`carrier`]), and
//! its REST API ([`api`]: shipments pull, sales orders, items).

pub mod api;
pub mod carrier;
pub mod signature;
pub mod webhook;

pub use webhook::{ParseError, parse_webhook, parse_webhook_reference};
