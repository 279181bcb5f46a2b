//! Job `pull_orders`: the store's paid, unfulfilled orders recorded, each
//! new one with its push job.

use std::collections::BTreeSet;

use shipsync_core::states::{Source, StoreStatus};
use shipsync_db::orders::{self as db_orders, OrderLineRow};
use shipsync_db::runs;
use shipsync_shopify::StoreLineItem;
use tracing::field::Empty;

use super::take::{Cause, Taken};
use crate::Engine;
use crate::error::EngineError;
use crate::runs::{Opened, Progress, RunCounts};

/// Orders of a connection still `queued` that a run re-queues at its end
/// (after the connection or channel was off, say).
const REQUEUE_LIMIT: i64 = 500;

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
        // Shopify deletes subscriptions that kept failing: check them at
        // each pull (a failure shows on the connection, the pull goes on).
        if let Err(e) = self.ensure_order_webhooks(&connection).await {
            tracing::warn!(connection = %connection.id, error = %e, "order webhooks not checked");
        }
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
                match self
                    .take_store_order(&connection, o, Cause::Store(Source::Poll))
                    .await
                {
                    Ok(Taken::New) => counts.new += 1,
                    Ok(Taken::Updated) => counts.updated += 1,
                    // Not an order to send (another financial status, say):
                    // nothing changed in shipsync.
                    Ok(Taken::Unchanged | Taken::Ignored) => counts.unchanged += 1,
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
}
