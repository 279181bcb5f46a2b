//! Open fulfillment orders read ahead, per connection, in memory: how a
//! shipment of an order that is only in the store (shipsync did not send
//! it to the warehouse) reaches the store with one request at the peak —
//! the `fulfillmentCreate` — instead of a name search and the mutation.
//!
//! Shopify's root `fulfillmentOrders` query lists a location's open
//! fulfillment orders with their order's id and name as free scalars
//! (`docs/shopify.md`); read by their last change (`updated_at:>…`), a
//! store's new orders cost ≈5 points each (one-line fulfillment order), read
//! when the store's budget is otherwise idle, against ≈16 for a search at
//! the moment the shipment arrives.
//!
//! It is a cache, never the truth: what it holds can be stale (Shopify
//! sends no webhook when a fulfillment order changes, and its search lags).
//! So a shipment matched from it is handled like one matched from the view
//! recorded when shipsync sent the order: the store's refusal of the
//! fulfillment, or any doubt of the ledger, is followed at once by a run
//! that reads the store (`sync_shipment`). An order is taken out when a
//! shipment uses it (a second shipment of it searches), and a name two
//! orders share is not used. Each node keeps its own; a restart reads
//! again. Only connections whose orders do not come through shipsync's
//! Sales Orders channel read ahead: for the others, shipsync already holds
//! the order as it sent it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use shipsync_core::states::StoreStatus;
use shipsync_db::connections::ConnectionRow;
use shipsync_shopify::{
    OpenFulfillmentOrder, ShopifyClient, ShopifyError, StoreFulfillmentOrder, StoreLineItem,
    StoreOrder,
};

/// Most fulfillment orders held per connection: beyond, new ones are not
/// read ahead (their shipments search).
pub(crate) const MAX_HELD: usize = 20_000;
/// A shipment that finds nothing reads the store's changes since the last
/// read first, unless a read finished less than this ago.
const MISS_READ_EVERY: Duration = Duration::from_secs(2);
/// After a read failed, shipments read again only this much later (the
/// store is failing: each shipment's search says so, alone).
const AFTER_FAILURE: Duration = Duration::from_secs(30);
/// Pages a shipment's read takes at most (10 fulfillment orders each);
/// the rest is left to the background read.
const MISS_PAGES: usize = 5;
/// How often the background read looks for new orders.
pub(crate) const BACKGROUND_EVERY: Duration = Duration::from_secs(15);
/// The background read's share of the store's budget, in points per
/// second (half a Standard store's restore rate).
const BACKGROUND_POINTS_PER_SEC: f64 = 50.0;

/// The order a fulfillment order belongs to, with the open fulfillment
/// orders of it that were read.
#[derive(Debug, Clone)]
struct Held {
    order_id: String,
    order_name: String,
    fos: Vec<OpenFulfillmentOrder>,
}

/// A read under way: its search, the cursor of its next page, and the
/// newest change it has seen.
#[derive(Debug, Clone)]
struct Pass {
    query: String,
    after: Option<String>,
    newest: Option<String>,
}

#[derive(Debug, Default)]
struct Mirror {
    /// The location the mirror was read for (`None`: every location).
    location: Option<String>,
    /// By order name without `#`: usually one order, two or more when
    /// orders share a name (then none is used).
    by_name: HashMap<String, Vec<Held>>,
    held: usize,
    /// The newest change a finished read saw (RFC 3339, to the second).
    newest: Option<String>,
    pass: Option<Pass>,
    read_at: Option<Instant>,
    failed_at: Option<Instant>,
}

impl Mirror {
    fn search(&self) -> String {
        let mut q = String::from("status:open");
        if let Some(l) = &self.location {
            let n = l.rsplit('/').next().unwrap_or(l);
            q.push_str(&format!(" assigned_location_id:{n}"));
        }
        if let Some(t) = &self.newest {
            q.push_str(&format!(" updated_at:>'{t}'"));
        }
        q
    }

    /// Takes in one fulfillment order as read: replaces what was held of
    /// it; one no longer open (or with more lines than read) is dropped.
    fn take_in(&mut self, fo: OpenFulfillmentOrder) {
        let key = bare(&fo.order_name).to_owned();
        if let Some(list) = self.by_name.get_mut(&key) {
            for h in list.iter_mut() {
                let before = h.fos.len();
                h.fos.retain(|f| f.id != fo.id);
                self.held -= before - h.fos.len();
            }
            list.retain(|h| !h.fos.is_empty());
            if list.is_empty() {
                self.by_name.remove(&key);
            }
        }
        if fo.status != "OPEN" || fo.lines.is_none() || self.held >= MAX_HELD {
            return;
        }
        self.held += 1;
        let list = self.by_name.entry(key).or_default();
        match list.iter_mut().find(|h| h.order_id == fo.order_id) {
            Some(h) => h.fos.push(fo),
            None => list.push(Held {
                order_id: fo.order_id.clone(),
                order_name: fo.order_name.clone(),
                fos: vec![fo],
            }),
        }
    }

    /// The order named `name` (without `#`), taken out: `None` when none
    /// is held or two orders share the name.
    fn take(&mut self, name: &str) -> Option<StoreOrder> {
        let list = self.by_name.get(bare(name))?;
        if list.len() != 1 {
            return None;
        }
        let h = self.by_name.remove(bare(name))?.remove(0);
        self.held -= h.fos.len();
        Some(order_of(h, self.location.as_deref()))
    }
}

fn bare(name: &str) -> &str {
    name.trim().trim_start_matches('#')
}

/// The order as fulfilling reads it, from what was read ahead: its lines
/// are the ones these fulfillment orders hold (each once).
fn order_of(h: Held, location: Option<&str>) -> StoreOrder {
    let mut line_items: Vec<StoreLineItem> = Vec::new();
    let mut fulfillment_orders = Vec::with_capacity(h.fos.len());
    for fo in h.fos {
        let mut fo_lines = Vec::new();
        for (fo_line, line) in fo.lines.unwrap_or_default() {
            if !line_items.iter().any(|l| l.id == line.id) {
                line_items.push(line);
            }
            fo_lines.push(fo_line);
        }
        fulfillment_orders.push(StoreFulfillmentOrder {
            id: fo.id,
            status: fo.status,
            location_id: location.map(str::to_owned),
            line_items: fo_lines,
        });
    }
    StoreOrder {
        id: h.order_id,
        name: h.order_name,
        updated_at: None,
        cancelled_at: None,
        line_items,
        fulfillment_orders,
        fulfillments: Vec::new(),
    }
}

/// Whether a connection reads ahead: a Shopify store that ships through
/// shipsync but whose orders do not come through its Sales Orders
/// channel, and whose credentials work.
pub(crate) fn reads_ahead(c: &ConnectionRow) -> bool {
    c.enabled
        && c.shipments_on
        && !c.sales_orders_on
        && c.store_status != StoreStatus::ReconnectNeeded
}

/// Every connection's mirror on this node.
#[derive(Default)]
pub(crate) struct ReadAhead {
    mirrors: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Mirror>>>>,
    /// Fulfillment orders held, by connection (for the metric).
    counts: Mutex<HashMap<String, usize>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl ReadAhead {
    fn mirror(&self, connection_id: &str) -> Arc<tokio::sync::Mutex<Mirror>> {
        lock(&self.mirrors)
            .entry(connection_id.to_owned())
            .or_default()
            .clone()
    }

    fn count(&self, connection_id: &str, m: &Mirror) {
        lock(&self.counts).insert(connection_id.to_owned(), m.held);
    }

    /// Fulfillment orders held, over every connection.
    pub(crate) fn held(&self) -> usize {
        lock(&self.counts).values().sum()
    }

    /// Forgets the connections not in `live` (deleted, or no longer
    /// reading ahead).
    pub(crate) fn keep_only(&self, live: &[&str]) {
        lock(&self.mirrors).retain(|id, _| live.contains(&id.as_str()));
        lock(&self.counts).retain(|id, _| live.contains(&id.as_str()));
    }

    /// The order named `name` on this connection, from what was read
    /// ahead (taken out); on a miss, the store's changes since the last
    /// read are read first, a page at a time until it is found (a few
    /// pages at most), unless a read finished a moment ago. A failed read
    /// is a miss: the caller searches.
    pub(crate) async fn find(
        &self,
        connection_id: &str,
        location: Option<&str>,
        client: &ShopifyClient,
        name: &str,
    ) -> Option<StoreOrder> {
        let mirror = self.mirror(connection_id);
        let mut m = mirror.lock().await;
        reset_if_moved(&mut m, location);
        let mut found = m.take(name);
        // A read under way goes on a page at a time; a finished one is
        // read again only after a pause (an order that is not there, say
        // at another location, should not cost a read per shipment).
        let mut pages = 0;
        while found.is_none()
            && pages < MISS_PAGES
            && m.failed_at.is_none_or(|t| t.elapsed() >= AFTER_FAILURE)
            && (m.pass.is_some() || m.read_at.is_none_or(|t| t.elapsed() >= MISS_READ_EVERY))
        {
            pages += 1;
            if let Err(e) = read_page(&mut m, client).await {
                tracing::debug!(connection = %connection_id, error = %e, "reading open fulfillment orders ahead failed; the shipment searches");
                m.failed_at = Some(Instant::now());
                break;
            }
            m.failed_at = None;
            found = m.take(name);
        }
        self.count(connection_id, &m);
        found
    }

    /// The background read of one connection: every page of what changed
    /// since the last read, each followed by a pause of its cost ÷ half a
    /// Standard store's restore rate, so that fulfillments keep the rest of
    /// the budget (the mirror is free meanwhile: a shipment uses it).
    pub(crate) async fn refresh(
        &self,
        connection_id: &str,
        location: Option<&str>,
        client: &ShopifyClient,
    ) -> Result<(), ShopifyError> {
        let mirror = self.mirror(connection_id);
        loop {
            let (n, done) = {
                let mut m = mirror.lock().await;
                reset_if_moved(&mut m, location);
                let r = read_page(&mut m, client).await;
                self.count(connection_id, &m);
                r?
            };
            if done {
                return Ok(());
            }
            // 2 points a page and 5 a one-line fulfillment order: what an
            // answer costs (the store's own figure is the budget's).
            let points = 2.0 + 5.0 * n as f64;
            tokio::time::sleep(Duration::from_secs_f64(points / BACKGROUND_POINTS_PER_SEC)).await;
        }
    }
}

fn reset_if_moved(m: &mut Mirror, location: Option<&str>) {
    if m.location.as_deref() != location {
        *m = Mirror {
            location: location.map(str::to_owned),
            ..Mirror::default()
        };
    }
}

/// Reads the next page of the store's open fulfillment orders that
/// changed since the last finished read (resuming an unfinished one):
/// how many it held, and whether the read is finished.
async fn read_page(m: &mut Mirror, client: &ShopifyClient) -> Result<(usize, bool), ShopifyError> {
    let mut pass = match m.pass.take() {
        Some(p) => p,
        None => Pass {
            query: m.search(),
            after: None,
            newest: m.newest.clone(),
        },
    };
    let page = match client
        .open_fulfillment_orders(&pass.query, pass.after.as_deref())
        .await
    {
        Ok(page) => page,
        Err(e) => {
            m.pass = Some(pass);
            return Err(e);
        }
    };
    let n = page.fulfillment_orders.len();
    for fo in page.fulfillment_orders {
        if pass
            .newest
            .as_deref()
            .is_none_or(|t| fo.updated_at.as_str() > t)
        {
            pass.newest = Some(fo.updated_at.clone());
        }
        m.take_in(fo);
    }
    m.read_at = Some(Instant::now());
    match page.next {
        Some(next) => {
            pass.after = Some(next);
            m.pass = Some(pass);
            Ok((n, false))
        }
        None => {
            m.newest = pass.newest;
            Ok((n, true))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shipsync_shopify::StoreFulfillmentOrderLineItem;

    fn fo(
        id: &str,
        order: &str,
        name: &str,
        status: &str,
        lines: &[(&str, &str, u64)],
    ) -> OpenFulfillmentOrder {
        OpenFulfillmentOrder {
            id: id.into(),
            status: status.into(),
            updated_at: "2026-12-06T10:00:00Z".into(),
            order_id: order.into(),
            order_name: name.into(),
            lines: Some(
                lines
                    .iter()
                    .map(|(fo_line, line, q)| {
                        (
                            StoreFulfillmentOrderLineItem {
                                id: (*fo_line).into(),
                                line_item_id: (*line).into(),
                                total_quantity: *q,
                                remaining_quantity: *q,
                            },
                            StoreLineItem {
                                id: (*line).into(),
                                sku: Some(format!("SKU-{line}")),
                                name: "thing".into(),
                                quantity: *q,
                                ordered_quantity: *q,
                                requires_shipping: true,
                                unfulfilled_quantity: Some(*q),
                                group: None,
                            },
                        )
                    })
                    .collect(),
            ),
        }
    }

    #[test]
    fn an_order_is_built_from_its_open_fulfillment_orders_and_taken_once() {
        let mut m = Mirror {
            location: Some("gid://shopify/Location/7".into()),
            ..Mirror::default()
        };
        m.take_in(fo(
            "F1",
            "O1",
            "#1001",
            "OPEN",
            &[("FL1", "L1", 2), ("FL2", "L2", 1)],
        ));
        m.take_in(fo("F2", "O1", "#1001", "OPEN", &[("FL3", "L1", 1)]));
        m.take_in(fo("F3", "O2", "#1002", "OPEN", &[("FL4", "L3", 1)]));
        assert_eq!(m.held, 3);
        let o = m.take("1001").expect("held");
        assert_eq!((o.id.as_str(), o.name.as_str()), ("O1", "#1001"));
        // A line in two fulfillment orders is one order line.
        assert_eq!(
            o.line_items
                .iter()
                .map(|l| l.id.as_str())
                .collect::<Vec<_>>(),
            ["L1", "L2"]
        );
        assert_eq!(o.fulfillment_orders.len(), 2);
        assert_eq!(
            o.fulfillment_orders[0].location_id.as_deref(),
            Some("gid://shopify/Location/7")
        );
        assert_eq!(m.held, 1);
        assert!(m.take("#1001").is_none(), "taken once");
        assert!(m.take("#1002").is_some(), "with or without #");
        assert_eq!(m.held, 0);
    }

    #[test]
    fn a_fulfillment_order_read_again_replaces_or_leaves() {
        let mut m = Mirror::default();
        m.take_in(fo("F1", "O1", "#1", "OPEN", &[("FL1", "L1", 2)]));
        m.take_in(fo("F1", "O1", "#1", "OPEN", &[("FL1", "L1", 3)]));
        assert_eq!(m.held, 1);
        m.take_in(fo("F1", "O1", "#1", "IN_PROGRESS", &[("FL1", "L1", 3)]));
        assert_eq!(m.held, 0);
        assert!(m.take("1").is_none());
        let mut long = fo("F2", "O2", "#2", "OPEN", &[("FL2", "L2", 1)]);
        long.lines = None;
        m.take_in(long);
        assert!(m.take("2").is_none(), "more lines than read: not used");
    }

    #[test]
    fn a_name_two_orders_share_is_not_used() {
        let mut m = Mirror::default();
        m.take_in(fo("F1", "O1", "#1", "OPEN", &[("FL1", "L1", 1)]));
        m.take_in(fo("F2", "O2", "#1", "OPEN", &[("FL2", "L2", 1)]));
        assert!(m.take("1").is_none());
        assert_eq!(m.held, 2);
    }

    #[test]
    fn the_search_names_the_location_and_the_last_change() {
        let mut m = Mirror {
            location: Some("gid://shopify/Location/7".into()),
            ..Mirror::default()
        };
        assert_eq!(m.search(), "status:open assigned_location_id:7");
        m.newest = Some("2026-12-06T10:00:00Z".into());
        assert_eq!(
            m.search(),
            "status:open assigned_location_id:7 updated_at:>'2026-12-06T10:00:00Z'"
        );
        assert_eq!(Mirror::default().search(), "status:open");
    }
}
