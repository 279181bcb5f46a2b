//! What a person does to an order: reprocess or archive.

use shipsync_core::states::OrderStatus;
use shipsync_db::jobs::{self, Job};
use shipsync_db::orders::{self as db_orders};
use shipsync_db::{activity, now_micros};

use super::push::enqueue_push_tx;
use crate::Engine;
use crate::error::EngineError;

/// A user's action on an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderAction {
    /// error (or still queued) → queued, and send again; needs_attention
    /// (sent) → apply the store's change to Deposco again.
    Reprocess,
    /// Stop all processing of it.
    Archive,
}

impl Engine {
    /// `reprocess` (error → queued, send again) or `archive`.
    pub async fn order_action(&self, id: &str, action: OrderAction) -> Result<(), EngineError> {
        let mut tx = self.db().begin().await?;
        let mut o = db_orders::get_for_update(&mut tx, id)
            .await?
            .ok_or(EngineError::NotFound)?;
        let now = now_micros();
        match action {
            OrderAction::Archive => {
                if o.status != OrderStatus::Archived {
                    o.status = OrderStatus::Archived;
                    o.updated_at = now;
                    db_orders::update(&mut *tx, &o).await?;
                    activity::add(&mut *tx, id, "archived", "Archived: no further processing")
                        .await?;
                }
            }
            OrderAction::Reprocess
                if o.status == OrderStatus::NeedsAttention && o.warehouse_id.is_some() =>
            {
                // Apply the store's change to Deposco again (it may allow
                // it now, e.g. after the warehouse put the order back).
                o.updated_at = now;
                db_orders::update(&mut *tx, &o).await?;
                activity::add(
                    &mut *tx,
                    id,
                    "reprocess",
                    "Reprocess requested: the store's change is applied to Deposco again",
                )
                .await?;
                jobs::enqueue(
                    &mut *tx,
                    &Job::UpdateWarehouseOrder {
                        order_id: id.to_string(),
                    },
                    now,
                )
                .await?;
            }
            OrderAction::Reprocess => {
                if !matches!(
                    o.status,
                    OrderStatus::Error | OrderStatus::Queued | OrderStatus::New
                ) {
                    return Err(EngineError::Permanent(format!(
                        "order {} is {}: only an order in error (or still waiting to be sent) can be reprocessed",
                        o.name, o.status
                    )));
                }
                if o.store_json.is_none() {
                    return Err(EngineError::Permanent(format!(
                        "order {} was not pulled by the Sales Orders channel; there is nothing to send",
                        o.name
                    )));
                }
                o.status = OrderStatus::Queued;
                o.error = None;
                o.updated_at = now;
                db_orders::update(&mut *tx, &o).await?;
                activity::add(
                    &mut *tx,
                    id,
                    "reprocess",
                    "Reprocess requested: it will be sent to Deposco again",
                )
                .await?;
                enqueue_push_tx(&mut tx, id, now).await?;
            }
        }
        tx.commit().await?;
        self.wake();
        Ok(())
    }
}
