//! Job `pull_orders`: the store's paid, unfulfilled orders recorded, each
//! new one with its push job.

use std::collections::BTreeSet;

use shipsync_core::states::{OrderStatus, StoreStatus};
use shipsync_db::connections::ConnectionRow;
use shipsync_db::orders::{self as db_orders, OrderLineRow, OrderRecord};
use shipsync_db::{activity, new_id, now_micros, runs};
use shipsync_shopify::{StoreLineItem, StoreOrderForWarehouse};
use tracing::field::Empty;

use super::push::enqueue_push_tx;
use crate::Engine;
use crate::error::EngineError;
use crate::runs::{Opened, Progress, RunCounts};

/// Orders of a connection still `queued` that a run re-queues at its end
/// (after the connection or channel was off, say).
const REQUEUE_LIMIT: i64 = 500;

/// What taking one pulled order did.
enum Taken {
    New,
    Updated,
    Unchanged,
}

/// A store line as an order keeps it (`orders.lines_json`; the shipments
/// pipeline records orders the same way).
pub(crate) fn line_row(l: &StoreLineItem) -> OrderLineRow {
    OrderLineRow {
        id: l.id.clone(),
        sku: l.sku.clone(),
        name: Some(l.name.clone()),
        quantity: l.quantity,
        group: l.group.clone(),
        sent: None,
        skipped: None,
        to_send: None,
    }
}

impl Engine {
    /// Job `pull_orders`: read the store's paid, unfulfilled orders updated
    /// since the channel's cursor (minus an overlap) page by page, record
    /// each new one with its push job, and move the cursor when the whole
    /// pull succeeded. The page reached is saved after each page, so a crash
    /// resumes there.
    #[tracing::instrument(
        name = "pull_orders",
        skip_all,
        fields(run = %run_id, connection = Empty, channel = Empty, merchant = Empty)
    )]
    pub async fn pull_orders(
        &self,
        run_id: &str,
        progress: Option<Progress>,
    ) -> Result<RunCounts, EngineError> {
        let db = self.db();
        let span = tracing::Span::current();
        let (mut run, mut counts, connection) = match self.open_run(run_id).await? {
            Opened::Over(counts) => return Ok(counts),
            Opened::Open(open) => *open,
        };
        if connection.store_status == StoreStatus::ReconnectNeeded {
            return Err(EngineError::Permanent(format!(
                "connection {} needs reconnecting: {}",
                connection.name,
                connection
                    .store_error
                    .as_deref()
                    .unwrap_or("the store refused its credentials")
            )));
        }
        span.record("merchant", connection.merchant_id.as_str());
        let (client, _) = self.inner.stores.client(&connection, self.secrets())?;
        self.start_run(&mut run, None).await?;
        // Shopify compares to the second: round down, and search with `>=`.
        let since = jiff::Timestamp::from_second(
            jiff::Timestamp::from_microsecond(run.since_at.unwrap_or(0))
                .map(|t| t.as_second())
                .unwrap_or(0),
        )
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .to_string();
        let mut seen: BTreeSet<String> = BTreeSet::new();
        loop {
            let page = client
                .orders_changed_since(&since, run.page_href.clone())
                .await?;
            counts.pages += 1;
            for o in &page.orders {
                // An order changed while we page may come twice.
                if !seen.insert(o.id.clone()) {
                    continue;
                }
                counts.fetched += 1;
                match self.take_order(&connection, o).await {
                    Ok(Taken::New) => counts.new += 1,
                    Ok(Taken::Updated) => counts.updated += 1,
                    Ok(Taken::Unchanged) => counts.unchanged += 1,
                    Err(e @ (EngineError::Db(_) | EngineError::Retry { .. })) => return Err(e),
                    Err(e) => {
                        counts.failed += 1;
                        tracing::warn!(order = %o.name, error = %e, "pulled order not recorded");
                    }
                }
            }
            run.page_href = page.next.clone();
            counts.put(&mut run)?;
            runs::save(db.pool(), &run).await?;
            self.wake();
            if let Some(p) = &progress {
                p(&counts);
            }
            if page.next.is_none() {
                break;
            }
        }
        // Orders still waiting from earlier runs (the channel was off, say).
        for id in db_orders::queued_ids(db.pool(), &connection.id, REQUEUE_LIMIT).await? {
            self.enqueue_push(&id).await?;
        }
        self.finish_run(&mut run).await?;
        tracing::info!(run = %run.id, ?counts, "order pull finished");
        Ok(counts)
    }

    /// Records one pulled order: a new one is queued with its push job (in
    /// one transaction); one still waiting or in error gets the store's
    /// latest data; one already in the warehouse is left alone (shipsync
    /// does not update orders Deposco has).
    async fn take_order(
        &self,
        connection: &ConnectionRow,
        o: &StoreOrderForWarehouse,
    ) -> Result<Taken, EngineError> {
        let store_json =
            serde_json::to_string(o).map_err(|e| EngineError::Internal(e.to_string()))?;
        let now = now_micros();
        let mut tx = self.db().begin().await?;
        let existing = db_orders::by_store_id(&mut tx, &connection.id, &o.id).await?;
        let taken = match existing {
            None => {
                let id = new_id("ord");
                db_orders::insert(
                    &mut *tx,
                    &OrderRecord {
                        id: id.clone(),
                        connection_id: connection.id.clone(),
                        store_order_id: o.id.clone(),
                        name: o.name.clone(),
                        status: OrderStatus::Queued,
                        lines: o.line_items.iter().map(line_row).collect(),
                        created_at: now,
                        updated_at: now,
                        error: None,
                        store_json: Some(store_json),
                        store_updated_at: o.updated_at.clone(),
                        warehouse_number: None,
                        warehouse_id: None,
                        sent_at: None,
                        first_seen_via: None,
                        hold_until: None,
                        hold_reason: None,
                    },
                )
                .await
                .map_err(|e| {
                    if e.is_unique_violation() {
                        EngineError::Retry {
                            message: format!("order {} was recorded meanwhile", o.name),
                            after: None,
                        }
                    } else {
                        e.into()
                    }
                })?;
                let units: u64 = o.line_items.iter().map(|l| l.quantity).sum();
                activity::add(
                    &mut *tx,
                    &id,
                    "imported",
                    &format!(
                        "Imported from the store: {} line(s), {units} unit(s); queued for Deposco",
                        o.line_items.len()
                    ),
                )
                .await?;
                enqueue_push_tx(&mut tx, &id, now).await?;
                Taken::New
            }
            Some(mut r) => {
                let changed = r.store_json.as_deref() != Some(store_json.as_str());
                match r.status {
                    OrderStatus::New | OrderStatus::Queued | OrderStatus::Error
                        if r.warehouse_id.is_none() =>
                    {
                        if changed {
                            r.store_json = Some(store_json);
                            r.store_updated_at = o.updated_at.clone();
                            r.lines = o.line_items.iter().map(line_row).collect();
                            r.name = o.name.clone();
                            r.updated_at = now;
                            db_orders::update(&mut *tx, &r).await?;
                            activity::add(&mut *tx, &r.id, "updated", "Updated from the store")
                                .await?;
                        }
                        // An order in error waits for a person (reprocess).
                        if r.status != OrderStatus::Error {
                            if r.status == OrderStatus::New {
                                r.status = OrderStatus::Queued;
                                db_orders::update(&mut *tx, &r).await?;
                            }

                            enqueue_push_tx(&mut tx, &r.id, now).await?;
                        }
                        if changed {
                            Taken::Updated
                        } else {
                            Taken::Unchanged
                        }
                    }
                    _ => Taken::Unchanged,
                }
            }
        };
        tx.commit().await?;
        Ok(taken)
    }
}
