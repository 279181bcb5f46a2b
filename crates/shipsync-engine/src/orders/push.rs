//! Job `push_order`: an order created in Deposco exactly once (looked up
//! before it is created), or put in `error` with Deposco's reason.

use serde_json::Value;
use shipsync_core::states::{Channel, OrderStatus};
use shipsync_db::jobs::{self, Job};
use shipsync_db::orders::{self as db_orders, OrderLineRow, OrderRecord};
use shipsync_db::{activity, channels, now_micros};
use shipsync_deposco::api::DeposcoError;
use shipsync_shopify::StoreOrderForWarehouse;
use tracing::field::Empty;

use super::dto::{deposco_id, sales_order_dto, warehouse_number};
use super::stored_store_order;
use super::take::Cause;
use crate::Engine;
use crate::error::EngineError;

impl Engine {
    /// Queues (again) the push of an order.
    pub async fn enqueue_push(&self, order_id: &str) -> Result<(), EngineError> {
        let mut tx = self.db().begin().await?;
        enqueue_push_tx(&mut tx, order_id, now_micros()).await?;
        tx.commit().await?;
        self.wake();
        Ok(())
    }

    /// Job `push_order`: create the order in Deposco, once.
    #[tracing::instrument(
        name = "push_order",
        skip_all,
        fields(order = %order_id, order_name = Empty, connection = Empty, merchant = Empty)
    )]
    pub async fn push_order(&self, order_id: &str) -> Result<(), EngineError> {
        let db = self.db();
        let Some(mut o) = db_orders::get(db.pool(), order_id).await? else {
            return Ok(());
        };
        let span = tracing::Span::current();
        span.record("order_name", o.name.as_str());
        span.record("connection", o.connection_id.as_str());
        if o.status == OrderStatus::Held && o.warehouse_id.is_none() {
            return self.hold_over(&o).await;
        }
        if o.status != OrderStatus::Queued || o.warehouse_id.is_some() {
            // Sent already, waiting for a person, cancelled, or archived.
            return Ok(());
        }
        let connection = self.order_connection(&o).await?;
        let channel = channels::get(db.pool(), &connection.id, Channel::SalesOrders).await?;
        if !connection.enabled || channel.is_none_or(|c| !c.enabled) {
            let why = format!(
                "waiting: connection {} or its Sales Orders channel is disabled; the order goes out with the next run after both are on",
                connection.name
            );
            if o.error.as_deref() != Some(why.as_str()) {
                o.error = Some(why.clone());
                o.updated_at = now_micros();
                db_orders::update(db.pool(), &o).await?;
                activity::add(db.pool(), &o.id, "waiting", &why).await?;
            }
            return Ok(());
        }
        let merchant = self.connection_merchant(&connection).await?;
        span.record("merchant", merchant.id.as_str());
        let store: StoreOrderForWarehouse = stored_store_order(&o).ok_or_else(|| {
            EngineError::Permanent(format!(
                "store order {} was not pulled by the Sales Orders channel; nothing to send",
                o.name
            ))
        })?;
        let number = warehouse_number(&connection.order_prefix, &o.name);
        let warehouse: Value = serde_json::from_str(&merchant.warehouse_json).unwrap_or_default();
        let business_unit = warehouse
            .get("business_unit")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let mappings = self.mappings_of(&merchant).await?;
        let dto = match sales_order_dto(
            &number,
            business_unit,
            &to_send(&store, &o.lines),
            &mappings,
        ) {
            Ok(dto) => dto,
            Err(why) => return self.order_error(order_id, &why).await,
        };
        let client = self.deposco_client(&merchant)?;
        // Idempotent: an earlier attempt may have reached Deposco (its answer
        // lost, or a crash before it was recorded): adopt it.
        let found = client.sales_order_by_number(&number).await;
        self.warehouse_answered(&merchant.id, found.as_ref().err())
            .await?;
        if let Some(existing) = found? {
            return self
                .order_sent(order_id, &number, deposco_id(&existing), true)
                .await;
        }
        match client.create_sales_order(&dto).await {
            Ok(answer) => {
                self.order_sent(order_id, &number, deposco_id(&answer), false)
                    .await
            }
            Err(DeposcoError::Rejected { message, .. }) => {
                self.order_error(order_id, &format!("Deposco refused the order: {message}"))
                    .await
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Records that Deposco has the order.
    async fn order_sent(
        &self,
        order_id: &str,
        number: &str,
        warehouse_id: Option<String>,
        adopted: bool,
    ) -> Result<(), EngineError> {
        let mut tx = self.db().begin().await?;
        let Some(mut o) = db_orders::get_for_update(&mut tx, order_id).await? else {
            return Ok(());
        };
        let now = now_micros();
        for l in &mut o.lines {
            l.sent = Some(l.to_send.unwrap_or(l.quantity));
        }
        o.warehouse_number = Some(number.to_string());
        o.warehouse_id = warehouse_id.clone().or(Some(String::new()));
        o.sent_at = Some(now);
        o.updated_at = now;
        let before = o.status;
        if matches!(
            o.status,
            OrderStatus::New | OrderStatus::Queued | OrderStatus::Error
        ) {
            o.status = OrderStatus::Open;
            o.error = None;
        }
        db_orders::update(&mut *tx, &o).await?;
        let id_text = warehouse_id
            .map(|i| format!(" (id {i})"))
            .unwrap_or_default();
        let message = if adopted {
            format!("Deposco already had it as {number}{id_text}: adopted, not sent again")
        } else {
            format!("Sent to Deposco as {number}{id_text}")
        };
        activity::add(&mut *tx, order_id, "sent", &message).await?;
        let queued = self.order_changed(&mut tx, before, &o, None).await?;
        tx.commit().await?;
        if queued {
            self.wake();
        }
        Ok(())
    }

    /// Puts the order in `error` with a reason a person can act on; it
    /// stays there until `reprocess`.
    async fn order_error(&self, order_id: &str, why: &str) -> Result<(), EngineError> {
        let mut tx = self.db().begin().await?;
        let Some(mut o) = db_orders::get_for_update(&mut tx, order_id).await? else {
            return Ok(());
        };
        if o.status == OrderStatus::Archived {
            return Ok(());
        }
        let before = o.status;
        o.status = OrderStatus::Error;
        o.error = Some(why.to_string());
        o.updated_at = now_micros();
        db_orders::update(&mut *tx, &o).await?;
        activity::add(&mut *tx, order_id, "failed", why).await?;
        let queued = self.order_changed(&mut tx, before, &o, None).await?;
        tx.commit().await?;
        if queued {
            self.wake();
        }
        self.queue_alert_check().await?;
        Ok(())
    }

    /// A `push_order` attempt failed: show why while it waits to retry, or
    /// put the order in `error` when shipsync gives up.
    pub(crate) async fn push_failed(
        &self,
        order_id: &str,
        message: &str,
        give_up: bool,
        attempts: i64,
    ) -> Result<(), EngineError> {
        if give_up {
            return self
                .order_error(
                    order_id,
                    &format!("Failed after {attempts} attempt(s): {message}"),
                )
                .await;
        }
        let db = self.db();
        if let Some(mut o) = db_orders::get(db.pool(), order_id).await?
            && o.status == OrderStatus::Queued
        {
            o.error = Some(message.to_string());
            o.updated_at = now_micros();
            db_orders::update(db.pool(), &o).await?;
            activity::add(
                db.pool(),
                order_id,
                "retry",
                &format!("Attempt {attempts} failed, will retry: {message}"),
            )
            .await?;
        }
        Ok(())
    }
}

/// The store order with only what goes to the warehouse: each line at its
/// planned units, skipped lines and lines with nothing to send left out
/// (their position, which numbers Deposco's lines, is kept by
/// [`sales_order_dto`]).
pub(crate) fn to_send(
    store: &StoreOrderForWarehouse,
    lines: &[OrderLineRow],
) -> StoreOrderForWarehouse {
    let mut out = store.clone();
    for l in &mut out.line_items {
        if let Some(row) = lines.iter().find(|r| r.id == l.id) {
            l.quantity = if row.skipped.is_some() {
                0
            } else {
                row.to_send.unwrap_or(row.quantity)
            };
        }
    }
    out
}

impl Engine {
    /// A held order's push job, due when its hold period ends: look at it
    /// again with what the store last said (a later store change, or a
    /// person, may have released, cancelled or re-held it meanwhile).
    async fn hold_over(&self, o: &OrderRecord) -> Result<(), EngineError> {
        if o.hold_until.is_none_or(|until| until > now_micros()) {
            // Held by a tag or the store: a store change releases it.
            return Ok(());
        }
        let Some(store) = stored_store_order(o) else {
            return Ok(());
        };
        let connection = self.order_connection(o).await?;
        self.take_store_order(&connection, &store, Cause::HoldEnded)
            .await?;
        Ok(())
    }
}

pub(super) async fn enqueue_push_tx(
    tx: &mut shipsync_db::Tx<'_>,
    order_id: &str,
    at: i64,
) -> Result<(), EngineError> {
    let job = Job::PushOrder {
        order_id: order_id.to_string(),
    };
    jobs::enqueue(&mut **tx, &job, at).await?;

    Ok(())
}
