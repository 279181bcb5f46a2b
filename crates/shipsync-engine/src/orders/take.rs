//! The store's latest view of an order, applied: from an order webhook, a
//! pull, or a hold period ending. The rules are
//! [`shipsync_core::order_lifecycle`]'s; this module reads and writes.

use std::collections::BTreeMap;

use shipsync_core::order_lifecycle::{
    self as lifecycle, Decision, Known, KnownLine, LinePlan, StoreFacts, StoreFulfillmentOrder,
    StoreLine,
};
use shipsync_core::states::{OrderStatus, Source};
use shipsync_db::connections::ConnectionRow;
use shipsync_db::jobs::{self, Job};
use shipsync_db::orders::{self as db_orders, OrderLineRow, OrderRecord};
use shipsync_db::{activity, new_id, now_micros};
use shipsync_shopify::StoreOrderForWarehouse;

use super::push::enqueue_push_tx;
use crate::Engine;
use crate::error::EngineError;

/// What taking one store order did (counted by the pull).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Taken {
    New,
    Updated,
    Unchanged,
    /// Not an order to send (and not recorded): another financial status,
    /// cancelled before shipsync saw it, nothing to ship.
    Ignored,
}

/// The store's view of an order, as the lifecycle rules read it.
pub(crate) fn facts_of(o: &StoreOrderForWarehouse) -> StoreFacts {
    StoreFacts {
        cancelled: o.cancelled_at.is_some(),
        cancel_reason: o.cancel_reason.clone(),
        financial_status: o.financial_status.clone(),
        fulfillment_status: o.fulfillment_status.clone(),
        tags: o.tags.clone(),
        lines: o
            .line_items
            .iter()
            .map(|l| StoreLine {
                id: l.id.clone(),
                sku: l.sku.clone(),
                current_quantity: l.quantity,
                requires_shipping: l.requires_shipping,
                unfulfilled: l.unfulfilled_quantity,
            })
            .collect(),
        fulfillment_orders: o
            .fulfillment_orders
            .iter()
            .map(|fo| StoreFulfillmentOrder {
                status: fo.status.clone(),
                location_id: fo.location_id.clone(),
                holds: fo.holds.clone(),
                lines: fo
                    .lines
                    .iter()
                    .map(|l| (l.line_item_id.clone(), l.remaining_quantity))
                    .collect(),
            })
            .collect(),
    }
}

/// What shipsync did with an order so far, as the rules read it.
pub(crate) fn known_of(r: &OrderRecord, shipped: &BTreeMap<String, u64>) -> Known {
    let sent = r.warehouse_id.is_some();
    Known {
        status: r.status,
        sent,
        lines: r
            .lines
            .iter()
            .map(|l| KnownLine {
                id: l.id.clone(),
                sent: units_sent(l, sent),
                store_quantity: l.quantity,
                shipped: shipped.get(&l.id).copied().unwrap_or(0),
            })
            .collect(),
    }
}

/// Units the warehouse has for a line (records from before the order
/// lifecycle kept no count: then the whole line, once the order was sent).
pub(crate) fn units_sent(l: &OrderLineRow, order_sent: bool) -> u64 {
    match l.sent {
        Some(n) => n,
        None if order_sent => l.quantity,
        None => 0,
    }
}

/// The lines an unsent order keeps: the store's, each with its plan.
pub(crate) fn planned_lines(o: &StoreOrderForWarehouse, plan: &[LinePlan]) -> Vec<OrderLineRow> {
    o.line_items
        .iter()
        .zip(plan)
        .map(|(l, p)| OrderLineRow {
            skipped: p.skipped.map(|s| s.as_str().to_string()),
            to_send: Some(p.quantity),
            ..super::pull::line_row(l)
        })
        .collect()
}

/// Queues the job that applies a store change to Deposco.
async fn enqueue_warehouse_update(
    tx: &mut shipsync_db::Tx<'_>,
    order_id: &str,
    at: i64,
) -> Result<(), EngineError> {
    let job = Job::UpdateWarehouseOrder {
        order_id: order_id.to_string(),
    };
    jobs::enqueue(&mut **tx, &job, at).await?;
    Ok(())
}

/// Why shipsync looks at an order again: each transition in its activity
/// log names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cause {
    /// The store said it changed (an order webhook) or a pull found it.
    Store(Source),
    /// Its hold period is over.
    HoldEnded,
}

impl Cause {
    fn text(self) -> &'static str {
        match self {
            Cause::Store(Source::Webhook) => "order webhook",
            Cause::Store(Source::Poll) => "scheduled pull",
            Cause::HoldEnded => "hold period over",
        }
    }

    fn source(self) -> Source {
        match self {
            Cause::Store(s) => s,
            Cause::HoldEnded => Source::Poll,
        }
    }
}

impl Engine {
    /// Applies the store's latest view of an order: records it (or not),
    /// holds, releases, cancels, or queues the warehouse change. A view
    /// older than the one applied (by the order's `updatedAt`) changes
    /// nothing: deliveries come late and out of order.
    pub(crate) async fn take_store_order(
        &self,
        connection: &ConnectionRow,
        o: &StoreOrderForWarehouse,
        via: Cause,
    ) -> Result<Taken, EngineError> {
        let facts = facts_of(o);
        let store_json =
            serde_json::to_string(o).map_err(|e| EngineError::Internal(e.to_string()))?;
        // What the warehouse shipped, for the edits of a sent order (read
        // before the transaction: the ledger reads many rows).
        let shipped =
            match db_orders::of_store_order(self.db().pool(), &connection.id, &o.id).await? {
                Some(r) if r.warehouse_id.is_some() => self.shipped_by_line(&r).await?,
                _ => BTreeMap::new(),
            };
        let now = now_micros();
        let mut tx = self.db().begin().await?;
        let existing = db_orders::by_store_id(&mut tx, &connection.id, &o.id).await?;
        if let Some(r) = &existing
            && shipsync_core::versions::is_older(
                o.updated_at.as_deref(),
                r.store_updated_at.as_deref(),
            )
        {
            return Ok(Taken::Unchanged);
        }
        let known = existing.as_ref().map(|r| known_of(r, &shipped));
        let first_seen = existing.as_ref().map_or(now, |r| r.created_at);
        let (decision, plan) = lifecycle::decide(
            &facts,
            &connection.order_rules,
            known.as_ref(),
            first_seen,
            now,
        );
        let Some(mut r) = existing else {
            let status = match &decision {
                Decision::Ignore(why) => {
                    tracing::debug!(order = %o.name, why, "store order not imported");
                    return Ok(Taken::Ignored);
                }
                Decision::Hold { .. } => OrderStatus::Held,
                _ => OrderStatus::Queued,
            };
            let id = new_id("ord");
            let mut r = OrderRecord {
                id: id.clone(),
                connection_id: connection.id.clone(),
                store_order_id: o.id.clone(),
                name: o.name.clone(),
                status,
                lines: planned_lines(o, &plan),
                created_at: now,
                updated_at: now,
                error: None,
                store_json: Some(store_json),
                store_updated_at: o.updated_at.clone(),
                warehouse_number: None,
                warehouse_id: None,
                sent_at: None,
                first_seen_via: Some(via.source()),
                hold_until: None,
                hold_reason: None,
            };
            let to_send: u64 = plan.iter().map(|p| p.quantity).sum();
            let skipped = plan.iter().filter(|p| p.skipped.is_some()).count();
            let skipped_text = if skipped > 0 {
                format!(", {skipped} line(s) skipped")
            } else {
                String::new()
            };
            if let Decision::Hold { until, reason } = &decision {
                r.hold_until = *until;
                r.hold_reason = Some(reason.clone());
            }
            db_orders::insert(&mut *tx, &r).await.map_err(|e| {
                if e.is_unique_violation() {
                    EngineError::Retry {
                        message: format!("order {} was recorded meanwhile", o.name),
                        after: None,
                    }
                } else {
                    e.into()
                }
            })?;
            let next = match &decision {
                Decision::Hold { reason, .. } => format!("held: {reason}"),
                _ => "queued for Deposco".to_string(),
            };
            activity::add(
                &mut *tx,
                &id,
                "imported",
                &format!(
                    "Imported from the store by the {}: {} line(s), {to_send} unit(s) to send{skipped_text}; {next}",
                    via.text(),
                    o.line_items.len(),
                ),
            )
            .await?;
            match (&decision, r.hold_until) {
                (Decision::Hold { .. }, Some(until)) => {
                    enqueue_push_tx(&mut tx, &id, until).await?
                }
                (Decision::Hold { .. }, None) => {}
                _ => enqueue_push_tx(&mut tx, &id, now).await?,
            }
            tx.commit().await?;
            self.wake();
            return Ok(Taken::New);
        };

        let changed = r.store_json.as_deref() != Some(store_json.as_str());
        let sent = r.warehouse_id.is_some();
        r.store_json = Some(store_json);
        r.store_updated_at = o.updated_at.clone().or(r.store_updated_at);
        r.name = o.name.clone();
        if !sent {
            r.lines = planned_lines(o, &plan);
        }
        let by = via.text();
        let before = r.status;
        let mut cancel_reason = None;
        let mut moved = false;
        let mut wake = false;
        match decision {
            Decision::Keep if sent && r.status == OrderStatus::NeedsAttention && changed => {
                // The store changed again: its job looks whether Deposco and
                // the store agree now.
                enqueue_warehouse_update(&mut tx, &r.id, now).await?;
                wake = true;
            }
            Decision::Ignore(_) | Decision::Keep => {}
            Decision::Hold { until, reason } => {
                if r.status != OrderStatus::Held || r.hold_reason.as_deref() != Some(&reason) {
                    activity::add(&mut *tx, &r.id, "held", &format!("Held ({by}): {reason}"))
                        .await?;
                    moved = true;
                }
                r.status = OrderStatus::Held;
                r.hold_until = until;
                r.hold_reason = Some(reason);
                r.error = None;
                if let Some(until) = until {
                    enqueue_push_tx(&mut tx, &r.id, until).await?;
                }
            }
            Decision::Release => {
                let why = match r.status {
                    OrderStatus::Held => format!(
                        "Released ({by}): no longer {}; queued for Deposco",
                        r.hold_reason.as_deref().unwrap_or("held")
                    ),
                    _ => format!("Queued for Deposco ({by})"),
                };
                r.status = OrderStatus::Queued;
                r.hold_until = None;
                r.hold_reason = None;
                activity::add(&mut *tx, &r.id, "released", &why).await?;
                enqueue_push_tx(&mut tx, &r.id, now).await?;
                moved = true;
                wake = true;
            }
            Decision::Cancel { reason } => {
                cancel_reason = Some(reason.clone());
                r.status = OrderStatus::Cancelled;
                r.hold_until = None;
                r.hold_reason = None;
                r.error = None;
                activity::add(
                    &mut *tx,
                    &r.id,
                    "cancelled",
                    &format!("Cancelled ({by}): {reason}; it was never sent to Deposco"),
                )
                .await?;
                moved = true;
            }
            Decision::CancelInWarehouse { .. } | Decision::Amend(_) => {
                // Applied to Deposco by its own job, with retries.
                enqueue_warehouse_update(&mut tx, &r.id, now).await?;
                wake = true;
            }
            Decision::Close => {
                r.status = OrderStatus::Closed;
                r.error = None;
                activity::add(
                    &mut *tx,
                    &r.id,
                    "closed",
                    &format!("Closed ({by}): every line is fulfilled or cancelled in the store"),
                )
                .await?;
                moved = true;
            }
        }
        if changed || moved {
            r.updated_at = now;
            db_orders::update(&mut *tx, &r).await?;
            // order.cancelled, with the change.
            wake |= self
                .order_changed(&mut tx, before, &r, cancel_reason.as_deref())
                .await?;
        }
        tx.commit().await?;
        if wake {
            self.wake();
        }
        Ok(if changed || moved {
            Taken::Updated
        } else {
            Taken::Unchanged
        })
    }
}
