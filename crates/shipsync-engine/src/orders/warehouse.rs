//! Job `update_warehouse_order`: a store change to an order Deposco has —
//! a cancellation or an edit — applied in Deposco while Deposco still
//! allows it, else the order goes to `needs_attention` saying what differs.
//!
//! The job decides again from the order's stored store view (the latest
//! one: later deliveries only replace it), so a repeated or late job
//! applies the latest change once. Deposco's rules (which statuses still
//! allow what) are `shipsync_deposco::api::SalesOrderStage`'s.

use serde_json::Value;
use shipsync_core::order_lifecycle::{self as lifecycle, Decision, LineChange};
use shipsync_core::states::OrderStatus;
use shipsync_db::orders::{self as db_orders, OrderRecord};
use shipsync_db::{activity, now_micros};
use shipsync_deposco::api::{DeposcoError, SalesOrderStage};
use shipsync_shopify::StoreOrderForWarehouse;

use super::dto::sales_order_dto;
use super::push::to_send;
use super::stored_store_order;
use super::take::{facts_of, known_of};
use crate::Engine;
use crate::error::EngineError;

/// What a cancellation applied to Deposco says (activity and event reason).
const CANCELLED_IN_BOTH: &str =
    "Cancelled in the store (order webhook or pull): cancelled in Deposco too";

/// What Deposco did with the change.
enum Applied {
    /// Cancelled there (or found cancelled already).
    Cancelled,
    /// Its lines now match the store's.
    Amended,
    /// Too late: what a person must do.
    TooLate(String),
}

fn describe(changes: &[LineChange]) -> String {
    changes
        .iter()
        .map(|c| {
            format!(
                "{} {} → {}",
                c.sku.as_deref().unwrap_or(c.line_id.as_str()),
                c.before,
                c.after
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

impl Engine {
    /// Job `update_warehouse_order`.
    #[tracing::instrument(name = "update_warehouse_order", skip_all, fields(order = %order_id))]
    pub(crate) async fn update_warehouse_order(&self, order_id: &str) -> Result<(), EngineError> {
        let db = self.db();
        let Some(o) = db_orders::get(db.pool(), order_id).await? else {
            return Ok(());
        };
        let (Some(warehouse_id), Some(store)) = (
            o.warehouse_id.clone().filter(|i| !i.is_empty()),
            stored_store_order(&o),
        ) else {
            return Ok(());
        };
        let connection = self.order_connection(&o).await?;
        let shipped = self.shipped_by_line(&o).await?;
        let (decision, _) = lifecycle::decide(
            &facts_of(&store),
            &connection.order_rules,
            Some(&known_of(&o, &shipped)),
            o.created_at,
            now_micros(),
        );
        if decision == Decision::Keep && o.status == OrderStatus::NeedsAttention {
            // The store and Deposco agree again (an edit undone, say).
            return self.attention_resolved(&o.id).await;
        }
        if !matches!(
            decision,
            Decision::CancelInWarehouse { .. } | Decision::Amend(_)
        ) {
            return Ok(());
        }
        let merchant = self.connection_merchant(&connection).await?;
        let client = self.deposco_client(&merchant)?;
        let status = client
            .sales_order_status(&warehouse_id)
            .await?
            .ok_or_else(|| {
                EngineError::Permanent(format!(
                    "Deposco no longer has order {} (id {warehouse_id})",
                    o.warehouse_number.as_deref().unwrap_or("?")
                ))
            })?;
        let stage = SalesOrderStage::of(&status);
        let applied = match &decision {
            Decision::CancelInWarehouse { reason } => match stage {
                SalesOrderStage::Cancelled => Applied::Cancelled,
                _ if stage.can_cancel_order() => {
                    match client.cancel_sales_order(&warehouse_id, &[]).await {
                        Ok(()) => Applied::Cancelled,
                        Err(DeposcoError::Rejected { message, .. }) => Applied::TooLate(format!(
                            "The order was {reason}, but Deposco refused to cancel it ({message}): stop it in the warehouse if you still can, then archive this order"
                        )),
                        Err(e) => return Err(e.into()),
                    }
                }
                _ => Applied::TooLate(format!(
                    "The order was {reason} after Deposco released it (Deposco status: {status}): stop the shipment in the warehouse if you still can, or arrange a return or refund with the customer; then archive this order"
                )),
            },
            Decision::Amend(changes) => match stage {
                _ if stage.can_update() => {
                    self.amend_in_deposco(&client, &o, &store, &warehouse_id, changes, &merchant)
                        .await?
                }
                _ => Applied::TooLate(format!(
                    "The order was edited in the store after Deposco released it (Deposco status: {status}): {} — change it in the warehouse if you still can, otherwise the customer gets what the warehouse ships; then archive this order",
                    describe(changes)
                )),
            },
            _ => return Ok(()),
        };
        self.record_applied(&o.id, &store, &decision, applied).await
    }

    /// Makes each changed line's live units in Deposco (ordered minus
    /// cancelled) equal to what the store now wants: more through Deposco's
    /// create-or-update by number (ordered raised, new lines added; lines
    /// left out stay as they are), fewer through its cancellations. Worked
    /// out from Deposco's lines as read now, so a repeat after a lost answer
    /// changes nothing twice. Deposco refusing either is "too late".
    async fn amend_in_deposco(
        &self,
        client: &shipsync_deposco::api::DeposcoClient,
        o: &OrderRecord,
        store: &StoreOrderForWarehouse,
        warehouse_id: &str,
        changes: &[LineChange],
        merchant: &shipsync_db::merchants::MerchantRow,
    ) -> Result<Applied, EngineError> {
        let too_late = |what: &str, message: &str| {
            Applied::TooLate(format!(
                "The order was edited in the store ({}), but Deposco refused {what}: {message} — change it in the warehouse, then archive this order",
                describe(changes)
            ))
        };
        let deposco_lines = client
            .sales_order_lines(warehouse_id)
            .await?
            .ok_or_else(|| {
                EngineError::Permanent(format!(
                    "Deposco no longer has order {} (id {warehouse_id})",
                    o.warehouse_number.as_deref().unwrap_or("?")
                ))
            })?;
        let line_of = |store_line: &str| {
            let tail = store_line.rsplit('/').next().unwrap_or(store_line);
            deposco_lines.iter().find(|d| {
                d.customer_line_number
                    .as_deref()
                    .is_some_and(|n| n == store_line || n == tail)
            })
        };
        // (store line, Deposco's lineNumber if it has the line, orderPackQuantity to post)
        let mut raise: Vec<(&str, Option<&str>, u64)> = Vec::new();
        let mut cancel: Vec<(String, Option<f64>)> = Vec::new();
        for c in changes {
            match line_of(&c.line_id) {
                Some(d) => {
                    let live = (d.order_pack_quantity - d.canceled_pack_quantity).max(0.0);
                    #[allow(clippy::cast_precision_loss)]
                    let after = c.after as f64;
                    if after > live {
                        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                        let ordered = (after + d.canceled_pack_quantity).round() as u64;
                        raise.push((&c.line_id, Some(d.line_number.as_str()), ordered));
                    } else if after < live {
                        cancel.push((d.id.clone(), Some(live - after)));
                    }
                }
                None if c.after > 0 => raise.push((&c.line_id, None, c.after)),
                None => {}
            }
        }
        if !raise.is_empty() {
            // Only the raised and new lines, at their new ordered units.
            let mut lines = o.lines.clone();
            for l in &mut lines {
                l.skipped = None;
                l.to_send = Some(0);
            }
            for (id, _, q) in &raise {
                match lines.iter_mut().find(|l| l.id == *id) {
                    Some(l) => l.to_send = Some(*q),
                    None => {
                        if let Some(sl) = store.line_items.iter().find(|s| s.id == *id) {
                            let mut row = super::pull::line_row(sl);
                            row.to_send = Some(*q);
                            lines.push(row);
                        }
                    }
                }
            }
            let warehouse: Value =
                serde_json::from_str(&merchant.warehouse_json).unwrap_or_default();
            let mappings = self.mappings_of(merchant).await?;
            let business_unit = warehouse
                .get("business_unit")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let number = o.warehouse_number.clone().unwrap_or_default();
            let mut dto =
                sales_order_dto(&number, business_unit, &to_send(store, &lines), &mappings)
                    .map_err(EngineError::Permanent)?;
            // A line Deposco has keeps the number it was created with.
            if let Some(rows) = dto.get_mut("orderLines").and_then(Value::as_array_mut) {
                for row in rows {
                    let id = row["customerLineNumber"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string();
                    if let Some((_, Some(n), _)) = raise.iter().find(|(l, _, _)| *l == id) {
                        row["lineNumber"] = Value::String((*n).to_string());
                    }
                }
            }
            match client.update_sales_order(&dto).await {
                Ok(_) => {}
                Err(DeposcoError::Rejected { message, .. }) => {
                    return Ok(too_late("the change", &message));
                }
                Err(e) => return Err(e.into()),
            }
        }
        if !cancel.is_empty() {
            match client.cancel_sales_order(warehouse_id, &cancel).await {
                Ok(()) => {}
                Err(DeposcoError::Rejected { message, .. }) => {
                    return Ok(too_late("to lower the lines", &message));
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(Applied::Amended)
    }

    /// Records what Deposco did: the order's lines, state and activity.
    async fn record_applied(
        &self,
        order_id: &str,
        store: &StoreOrderForWarehouse,
        decision: &Decision,
        applied: Applied,
    ) -> Result<(), EngineError> {
        let mut tx = self.db().begin().await?;
        let Some(mut o) = db_orders::get_for_update(&mut tx, order_id).await? else {
            return Ok(());
        };
        let now = now_micros();
        o.updated_at = now;
        let before = o.status;
        let mut cancelled = None;
        match applied {
            Applied::Cancelled => {
                cancelled = Some(CANCELLED_IN_BOTH);
                o.status = OrderStatus::Cancelled;
                o.error = None;
                activity::add(&mut *tx, order_id, "cancelled", CANCELLED_IN_BOTH).await?;
            }
            Applied::Amended => {
                let Decision::Amend(changes) = decision else {
                    return Ok(());
                };
                for c in changes {
                    let current = store
                        .line_items
                        .iter()
                        .find(|l| l.id == c.line_id)
                        .map(|l| l.quantity);
                    match o.lines.iter_mut().find(|l| l.id == c.line_id) {
                        Some(l) => {
                            l.sent = Some(c.after);
                            l.to_send = Some(c.after);
                            if let Some(q) = current {
                                l.quantity = q;
                            }
                        }
                        None => {
                            if let Some(sl) = store.line_items.iter().find(|l| l.id == c.line_id) {
                                let mut row = super::pull::line_row(sl);
                                row.sent = Some(c.after);
                                row.to_send = Some(c.after);
                                o.lines.push(row);
                            }
                        }
                    }
                }
                if o.status == OrderStatus::NeedsAttention {
                    o.status = OrderStatus::Open;
                    o.error = None;
                }
                activity::add(
                    &mut *tx,
                    order_id,
                    "updated",
                    &format!(
                        "Edited in the store: Deposco updated ({})",
                        describe(changes)
                    ),
                )
                .await?;
            }
            Applied::TooLate(why) => {
                if o.status != OrderStatus::NeedsAttention || o.error.as_deref() != Some(&why) {
                    o.status = OrderStatus::NeedsAttention;
                    o.error = Some(why.clone());
                    activity::add(&mut *tx, order_id, "needs_attention", &why).await?;
                }
            }
        }
        db_orders::update(&mut *tx, &o).await?;
        let queued = self.order_changed(&mut tx, before, &o, cancelled).await?;
        tx.commit().await?;
        if queued {
            self.wake();
        }
        Ok(())
    }

    /// A `needs_attention` order whose store and Deposco sides agree again
    /// goes back to `open`.
    async fn attention_resolved(&self, order_id: &str) -> Result<(), EngineError> {
        let mut tx = self.db().begin().await?;
        let Some(mut o) = db_orders::get_for_update(&mut tx, order_id).await? else {
            return Ok(());
        };
        if o.status != OrderStatus::NeedsAttention {
            return Ok(());
        }
        o.status = OrderStatus::Open;
        o.error = None;
        o.updated_at = now_micros();
        db_orders::update(&mut *tx, &o).await?;
        activity::add(
            &mut *tx,
            order_id,
            "resolved",
            "The store's order and Deposco's agree again: back to open",
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The warehouse update failed for good (Deposco unreachable through
    /// every retry): a person looks.
    pub(crate) async fn warehouse_update_failed(
        &self,
        order_id: &str,
        message: &str,
        attempts: i64,
    ) -> Result<(), EngineError> {
        let mut tx = self.db().begin().await?;
        let Some(mut o) = db_orders::get_for_update(&mut tx, order_id).await? else {
            return Ok(());
        };
        if o.status.is_settled() {
            return Ok(());
        }
        let why = format!(
            "The store changed this order, but updating Deposco failed after {attempts} attempt(s): {message} — check the order in Deposco, then reprocess or archive it"
        );
        o.status = OrderStatus::NeedsAttention;
        o.error = Some(why.clone());
        o.updated_at = now_micros();
        db_orders::update(&mut *tx, &o).await?;
        activity::add(&mut *tx, order_id, "needs_attention", &why).await?;
        tx.commit().await?;
        Ok(())
    }
}
