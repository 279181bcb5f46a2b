//! The Sales Orders channel: pull paid, unfulfilled store orders changed
//! since the channel's cursor, create each in Deposco exactly once, and
//! follow it through the warehouse (open → partially shipped → shipped).
//!
//! Exactly once: an order is recorded (with its push job, in one
//! transaction) before anything is sent; the push looks the Deposco number
//! up before creating it and adopts what it finds, so a repeated run, a
//! retried job or a crash between Deposco's answer and our record never makes
//! a second Deposco order. A refusal by Deposco (unknown item, field too
//! long, …) puts the order in `error` with Deposco's message; nothing is
//! retried until a person fixes the cause and asks to `reprocess`.
//!
//! After release the order is followed (issue 14): every store change —
//! an order webhook ([`webhooks`]), a pull ([`pull`]), a hold period ending
//! — is applied by [`take`] under the connection's import rules and the
//! pure rules of `shipsync_core::order_lifecycle`: held, released,
//! cancelled before release, or, once Deposco has it, cancelled or edited
//! there while Deposco allows it ([`warehouse`]), else `needs_attention`.
//!
//! By flow: [`pull`] reads changed orders, [`take`] applies one, [`push`]
//! creates it in Deposco (the sales order it posts is [`dto`]),
//! [`warehouse`] applies later store changes there, [`webhooks`] keeps the
//! store subscribed and processes its deliveries, [`lines`] follows what
//! the warehouse shipped and the store was told, [`actions`] are a person's.

mod actions;
pub(crate) mod dto;
mod lines;
mod pull;
pub(crate) mod push;
mod take;
mod warehouse;
mod webhooks;

pub use actions::OrderAction;
pub use dto::{sales_order_dto, shipping_line, warehouse_number};
pub use lines::{KitComponentView, OrderLineView};
pub(crate) use lines::{OrderConfig, order_shipment_done, sent_order_for};
pub(crate) use pull::line_row;

use std::collections::BTreeMap;

use shipsync_db::connections::{self, ConnectionRow};
use shipsync_db::merchants::{self, MerchantRow};
use shipsync_db::orders::OrderRecord;
use shipsync_shopify::StoreOrderForWarehouse;

use crate::Engine;
use crate::error::EngineError;

/// The store order as the Sales Orders channel last read it, if it did.
pub(crate) fn stored_store_order(o: &OrderRecord) -> Option<StoreOrderForWarehouse> {
    o.store_json
        .as_deref()
        .and_then(|j| serde_json::from_str(j).ok())
}

impl Engine {
    /// The connection of an order (`Permanent` when it was deleted).
    pub(crate) async fn order_connection(
        &self,
        o: &OrderRecord,
    ) -> Result<ConnectionRow, EngineError> {
        connections::get(self.db().pool(), &o.connection_id)
            .await?
            .ok_or_else(|| {
                EngineError::Permanent("the connection of this order was deleted".into())
            })
    }

    /// The merchant of a connection (`Permanent` when it was deleted).
    pub(crate) async fn connection_merchant(
        &self,
        c: &ConnectionRow,
    ) -> Result<MerchantRow, EngineError> {
        merchants::get(self.db().pool(), &c.merchant_id)
            .await?
            .ok_or_else(|| EngineError::Permanent("the merchant of this order was deleted".into()))
    }

    /// Units the warehouse shipped, per line of an order.
    pub(crate) async fn shipped_by_line(
        &self,
        o: &OrderRecord,
    ) -> Result<BTreeMap<String, u64>, EngineError> {
        Ok(self
            .order_lines(o)
            .await?
            .into_iter()
            .map(|l| (l.id, l.shipped_quantity))
            .collect())
    }
}
