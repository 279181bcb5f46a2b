//! Open fulfillment orders read ahead, per connection, in memory: how a
//! shipment of an order that is only in the store (shipsync did not send
//! it to the warehouse) reaches the store with one request at the peak —
//! the `fulfillmentCreate` — instead of a name search and the mutation.
//!
//! Shopify's root `fulfillmentOrders` query lists the open fulfillment
//! orders (of the connection's location, when it has one) with their
//! order's id and name as free scalars (`docs/shopify.md`); read again by
//! their last change (`updated_at:>=…`), a store's new orders cost ≈5
//! points each (a one-line fulfillment order) when the store's budget is
//! otherwise idle, against ≈16 for a search at the moment the shipment
//! arrives. Every [`FULL_EVERY`] the whole list is read again, and what
//! it no longer holds (closed, held, moved, fulfilled elsewhere) is
//! dropped. Both read the oldest change first: warehouses mostly ship the
//! oldest orders first.
//!
//! It is a cache, never the truth: what it holds can be stale (shipsync
//! does not follow Shopify's fulfillment order webhooks, and its search
//! lags). So a shipment matched from it is handled like one matched from
//! the view recorded when shipsync sent the order: the store's refusal of
//! the fulfillment, or any doubt of the ledger, is followed at once by a
//! run that reads the store (`sync_shipment`). An order is taken out when a
//! shipment uses it, and not taken in again before the next full read is
//! over (a second shipment of it searches); a name two held orders share is not
//! used. Each node keeps its own; a restart reads again. Only connections
//! whose orders do not come through shipsync's Sales Orders channel read
//! ahead: for the others, shipsync already holds the order as it sent it.

use std::collections::{HashMap, HashSet};
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
/// A change older than this (by this node's clock) is taken as indexed by
/// Shopify's search: reads after it ask only for later ones.
const SETTLED: jiff::SignedDuration = jiff::SignedDuration::from_secs(60);
/// How often the whole list is read again (what it no longer holds is
/// dropped).
const FULL_EVERY: Duration = Duration::from_secs(6 * 3600);
/// A shipment that finds nothing reads the store's changes since the last
/// read first, unless a read finished less than this ago.
const MISS_READ_EVERY: Duration = Duration::from_secs(2);
/// After a read failed, shipments read again only this much later (the
/// store is failing: each shipment's search says so, alone).
const AFTER_FAILURE: Duration = Duration::from_secs(30);
/// Pages a shipment reads at most (10 fulfillment orders each), and only
/// while the read under way has read fewer than this: deeper in a full
/// read, the fulfillment orders are older than a shipment's order is likely
/// to be.
const MISS_PAGES: usize = 5;
/// How long the view handed to a shipment stays for that shipment's next
/// runs (a run put back for the store's budget before it sent anything).
const HANDED_FOR: Duration = Duration::from_secs(15 * 60);
/// How often the background read looks for new orders.
pub(crate) const BACKGROUND_EVERY: Duration = Duration::from_secs(15);
/// Pages the background reads of one connection per round.
pub(crate) const BACKGROUND_PAGES: usize = 100;
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

/// A read under way: its search, its order, the cursor of its next page,
/// the pages read, and the newest change it has seen.
#[derive(Debug, Clone)]
struct Pass {
    query: String,
    /// A full read (what it does not see is dropped at its end), else the
    /// changes since the last read; both oldest change first, as
    /// warehouses mostly ship.
    full: bool,
    after: Option<String>,
    pages: usize,
    newest: Option<String>,
    /// A full read: the fulfillment orders it has seen, and the orders
    /// with one it could not hold whole.
    seen: HashSet<String>,
    incomplete: HashSet<String>,
}

#[derive(Debug, Default)]
struct Mirror {
    /// The location the mirror was read for (`None`: every location).
    location: Option<String>,
    /// Counts the resets (a location changed): a page read before one is
    /// not taken in after it.
    generation: u64,
    /// By order name without `#`: usually one order, two or more when
    /// orders share a name (then none is used).
    by_name: HashMap<String, Vec<Held>>,
    held: usize,
    /// Orders a shipment took since the last full read: not taken in again.
    taken: HashSet<String>,
    /// The views handed to shipments, by order id, for their next runs.
    handed: HashMap<String, (Instant, StoreOrder)>,
    /// Orders with an open fulfillment order of more lines than a read
    /// holds: not used (their view would lack those lines).
    incomplete: HashSet<String>,
    /// The newest change a finished read saw (RFC 3339, to the second).
    newest: Option<String>,
    /// When the last full read finished.
    full_at: Option<Instant>,
    pass: Option<Pass>,
    read_at: Option<Instant>,
    failed_at: Option<Instant>,
}

impl Mirror {
    fn search(&self, full: bool) -> String {
        let mut q = String::from("status:open");
        if let Some(l) = &self.location {
            let n = l.rsplit('/').next().unwrap_or(l);
            q.push_str(&format!(" assigned_location_id:{n}"));
        }
        if let Some(t) = self.newest.as_ref().filter(|_| !full) {
            // `>=` while the newest change is recent: changes later in the
            // same second, or indexed late, are read again rather than
            // lost. Once it is settled, `>`: a quiet store's last orders
            // are not read again at every round.
            let settled = t
                .parse::<jiff::Timestamp>()
                .is_ok_and(|t| jiff::Timestamp::now().duration_since(t) > SETTLED);
            let op = if settled { ">" } else { ">=" };
            q.push_str(&format!(" updated_at:{op}'{t}'"));
        }
        q
    }

    /// The read under way, or a new one: a full read when none finished
    /// yet, or (`may_be_full`) when the last is [`FULL_EVERY`] old.
    fn pass(&mut self, may_be_full: bool) -> &mut Pass {
        let full = self.full_at.is_none()
            || (may_be_full && self.full_at.is_some_and(|t| t.elapsed() >= FULL_EVERY));
        if self.pass.is_none() {
            self.pass = Some(Pass {
                query: self.search(full),
                full,
                after: None,
                pages: 0,
                newest: None,
                seen: HashSet::new(),
                incomplete: HashSet::new(),
            });
        }
        self.pass.as_mut().expect("set above")
    }

    /// Takes in one fulfillment order as read: replaces what was held of
    /// it; one no longer open (or with more lines than read, or of an order
    /// a shipment took) is dropped.
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
        if fo.status == "OPEN" && fo.lines.is_none() {
            self.incomplete.insert(fo.order_id.clone());
        }
        if fo.status != "OPEN"
            || fo.lines.is_none()
            || self.held >= MAX_HELD
            || self.taken.contains(&fo.order_id)
        {
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

    /// A full read is over: what it did not see is no longer open.
    fn keep_only(&mut self, seen: &HashSet<String>) {
        for list in self.by_name.values_mut() {
            for h in list.iter_mut() {
                h.fos.retain(|f| seen.contains(&f.id));
            }
            list.retain(|h| !h.fos.is_empty());
        }
        self.by_name.retain(|_, list| !list.is_empty());
        self.held = self
            .by_name
            .values()
            .flat_map(|list| list.iter().map(|h| h.fos.len()))
            .sum();
    }

    /// Takes in one page of the read under way.
    fn take_page(&mut self, fos: Vec<OpenFulfillmentOrder>, next: Option<String>) {
        let Some(mut pass) = self.pass.take() else {
            return;
        };
        pass.pages += 1;
        for fo in fos {
            if pass
                .newest
                .as_deref()
                .is_none_or(|t| fo.updated_at.as_str() > t)
            {
                pass.newest = Some(fo.updated_at.clone());
            }
            if pass.full {
                pass.seen.insert(fo.id.clone());
                if fo.lines.is_none() {
                    pass.incomplete.insert(fo.order_id.clone());
                }
            }
            self.take_in(fo);
        }
        self.read_at = Some(Instant::now());
        self.failed_at = None;
        if next.is_some() {
            pass.after = next;
            self.pass = Some(pass);
            return;
        }
        // Never back: a full read's newest is the newest of all, an
        // incremental one's no older than where it started.
        if pass.newest.as_deref() > self.newest.as_deref() {
            self.newest = pass.newest;
        }
        if pass.full {
            self.keep_only(&pass.seen);
            self.incomplete = pass.incomplete;
            self.taken.clear();
            self.full_at = Some(Instant::now());
        }
    }

    /// The order named `name` (without `#`), taken out: `None` when none
    /// is held, two orders share the name, or one of its open fulfillment
    /// orders has more lines than a read holds.
    fn take(&mut self, name: &str) -> Option<StoreOrder> {
        let list = self.by_name.get(bare(name))?;
        if list.len() != 1 || self.incomplete.contains(&list[0].order_id) {
            return None;
        }
        let h = self.by_name.remove(bare(name))?.remove(0);
        self.held -= h.fos.len();
        self.taken.insert(h.order_id.clone());
        let order = order_of(h, self.location.as_deref());
        self.handed.retain(|_, (at, _)| at.elapsed() < HANDED_FOR);
        self.handed
            .insert(order.id.clone(), (Instant::now(), order.clone()));
        Some(order)
    }

    /// The view handed to the shipment matched to order `order_id`, while
    /// it is fresh.
    fn handed(&self, order_id: &str) -> Option<StoreOrder> {
        self.handed
            .get(order_id)
            .filter(|(at, _)| at.elapsed() < HANDED_FOR)
            .map(|(_, order)| order.clone())
    }

    fn reset_if_moved(&mut self, location: Option<&str>) {
        if self.location.as_deref() != location {
            *self = Mirror {
                location: location.map(str::to_owned),
                generation: self.generation + 1,
                ..Mirror::default()
            };
        }
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

/// One connection's mirror, and the right to read the store for it (one
/// read at a time; the mirror is not locked while the store answers).
#[derive(Default)]
struct Slot {
    mirror: Mutex<Mirror>,
    reading: tokio::sync::Mutex<()>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Slot {
    /// Reads the next page of the read under way (a new one when none is,
    /// full when `may_be_full` and due): how many fulfillment orders it
    /// held, and whether the read is over. The caller holds `reading`.
    async fn read_page(
        &self,
        client: &ShopifyClient,
        may_be_full: bool,
    ) -> Result<(usize, bool), ShopifyError> {
        let (generation, query, after) = {
            let mut m = lock(&self.mirror);
            let generation = m.generation;
            let p = m.pass(may_be_full);
            (generation, p.query.clone(), p.after.clone())
        };
        let page = client
            .open_fulfillment_orders(&query, after.as_deref())
            .await;
        let mut m = lock(&self.mirror);
        if m.generation != generation {
            return Ok((0, true));
        }
        match page {
            Ok(page) => {
                let n = page.fulfillment_orders.len();
                let done = page.next.is_none();
                m.take_page(page.fulfillment_orders, page.next);
                Ok((n, done))
            }
            Err(e) => {
                m.failed_at = Some(Instant::now());
                Err(e)
            }
        }
    }
}

/// Whether a page's requested cost fits in the store's bucket, as its
/// answers described it (unknown: no). Shopify runs a query only once its
/// whole requested cost is in the bucket: in a smaller one, never.
fn fits(client: &ShopifyClient) -> bool {
    let page = shipsync_shopify::operations::documented_cost("OpenFulfillmentOrders")
        .unwrap_or(f64::INFINITY);
    client.bucket_size().is_some_and(|size| size >= page)
}

/// Every connection's mirror on this node.
#[derive(Default)]
pub(crate) struct ReadAhead {
    slots: Mutex<HashMap<String, Arc<Slot>>>,
}

impl ReadAhead {
    fn slot(&self, connection_id: &str) -> Arc<Slot> {
        lock(&self.slots)
            .entry(connection_id.to_owned())
            .or_default()
            .clone()
    }

    /// Fulfillment orders held, over every connection.
    pub(crate) fn held(&self) -> usize {
        let slots: Vec<Arc<Slot>> = lock(&self.slots).values().cloned().collect();
        slots.iter().map(|s| lock(&s.mirror).held).sum()
    }

    /// Forgets the connections not in `live` (deleted, or no longer
    /// reading ahead).
    pub(crate) fn keep_only(&self, live: &[&str]) {
        lock(&self.slots).retain(|id, _| live.contains(&id.as_str()));
    }

    /// The view of order `order_id` handed to the shipment matched to it
    /// by [`ReadAhead::find`] (within [`HANDED_FOR`]): for that shipment's
    /// next run when the one that matched it was put back before it sent
    /// anything (the store's budget said wait).
    pub(crate) fn again(&self, connection_id: &str, order_id: &str) -> Option<StoreOrder> {
        let slot = lock(&self.slots).get(connection_id).cloned()?;
        lock(&slot.mirror).handed(order_id)
    }

    /// The order named `name` on this connection, from what was read
    /// ahead (taken out). On a miss, the store is read first, a page at a
    /// time until the order is found (a few pages at most), unless another
    /// read is under way, a read finished a moment ago or failed lately,
    /// the read under way is already deep (past its first pages: those
    /// hold the oldest changes), or the store's bucket is not known to hold
    /// a page's requested cost. A failed read is a miss: the caller
    /// searches.
    pub(crate) async fn find(
        &self,
        connection_id: &str,
        location: Option<&str>,
        client: &ShopifyClient,
        name: &str,
    ) -> Option<StoreOrder> {
        let slot = self.slot(connection_id);
        {
            let mut m = lock(&slot.mirror);
            m.reset_if_moved(location);
            if let Some(order) = m.take(name) {
                return Some(order);
            }
        }
        // One read at a time, and never waited for: a worker waiting here
        // would not serve other stores (a read under way may wait for its
        // store's budget). The shipment searches instead.
        let Ok(_reading) = slot.reading.try_lock() else {
            return None;
        };
        if !fits(client) {
            return None;
        }
        for _ in 0..MISS_PAGES {
            {
                let mut m = lock(&slot.mirror);
                if let Some(order) = m.take(name) {
                    return Some(order);
                }
                let may_read = m.failed_at.is_none_or(|t| t.elapsed() >= AFTER_FAILURE)
                    && match &m.pass {
                        Some(p) => p.pages < MISS_PAGES,
                        None => m.read_at.is_none_or(|t| t.elapsed() >= MISS_READ_EVERY),
                    };
                if !may_read {
                    return None;
                }
            }
            if let Err(e) = slot.read_page(client, false).await {
                tracing::debug!(connection = %connection_id, error = %e, "reading open fulfillment orders ahead failed; the shipment searches");
                return None;
            }
        }
        lock(&slot.mirror).take(name)
    }

    /// The background read of one connection: up to `pages` pages of the
    /// read under way or a new one (a full one when due), each followed by
    /// a pause of its estimated cost ÷ half a Standard store's restore
    /// rate, so that fulfillments keep the rest of the budget. Between
    /// pages the store may be read by a shipment that needs it.
    pub(crate) async fn refresh(
        &self,
        connection_id: &str,
        location: Option<&str>,
        client: &ShopifyClient,
        pages: usize,
    ) -> Result<(), ShopifyError> {
        let slot = self.slot(connection_id);
        lock(&slot.mirror).reset_if_moved(location);
        if client.bucket_size().is_none() {
            // Learn the bucket's size first (1 point).
            client.shop_name().await?;
        }
        if !fits(client) {
            return Ok(());
        }
        for _ in 0..pages {
            let (n, done) = {
                let _reading = slot.reading.lock().await;
                slot.read_page(client, true).await?
            };
            if done {
                return Ok(());
            }
            // 2 points a page and 5 a one-line fulfillment order: what an
            // answer costs (the store's own figure is the budget's).
            let points = 2.0 + 5.0 * n as f64;
            tokio::time::sleep(Duration::from_secs_f64(points / BACKGROUND_POINTS_PER_SEC)).await;
        }
        Ok(())
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
        // Nor the order's other fulfillment order: its view would lack
        // the long one's lines.
        m.take_in(fo("F3", "O2", "#2", "OPEN", &[("FL3", "L3", 1)]));
        assert!(m.take("2").is_none(), "an order with a long one: not used");
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
        assert_eq!(m.search(false), "status:open assigned_location_id:7");
        let recent = jiff::Timestamp::now().to_string();
        m.newest = Some(recent.clone());
        assert_eq!(
            m.search(false),
            format!("status:open assigned_location_id:7 updated_at:>='{recent}'")
        );
        m.newest = Some("2026-01-01T10:00:00Z".into());
        assert_eq!(
            m.search(false),
            "status:open assigned_location_id:7 updated_at:>'2026-01-01T10:00:00Z'"
        );
        assert_eq!(m.search(true), "status:open assigned_location_id:7");
        assert_eq!(Mirror::default().search(false), "status:open");
    }

    fn at(mut f: OpenFulfillmentOrder, t: &str) -> OpenFulfillmentOrder {
        f.updated_at = t.into();
        f
    }

    #[test]
    fn the_first_read_is_full_and_later_ones_read_the_changes() {
        let mut m = Mirror::default();
        assert!(m.pass(false).full, "nothing read yet: the whole list");
        m.take_page(
            vec![at(
                fo("F2", "O2", "#2", "OPEN", &[("FL2", "L2", 1)]),
                "2026-01-06T10:00:05Z",
            )],
            Some("c1".into()),
        );
        assert_eq!(
            m.pass.as_ref().map(|p| (p.pages, p.after.clone())),
            Some((1, Some("c1".into())))
        );
        m.take_page(
            vec![at(
                fo("F1", "O1", "#1", "OPEN", &[("FL1", "L1", 1)]),
                "2026-01-06T10:00:01Z",
            )],
            None,
        );
        assert!(m.pass.is_none() && m.full_at.is_some());
        assert_eq!(m.newest.as_deref(), Some("2026-01-06T10:00:05Z"));
        assert_eq!(m.held, 2);
        let next = m.pass(true);
        assert!(!next.full, "a full read is due only after FULL_EVERY");
        assert!(
            next.query.ends_with("updated_at:>'2026-01-06T10:00:05Z'"),
            "settled"
        );
        // An older change seen again does not move the mark back.
        m.take_page(
            vec![at(
                fo("F1", "O1", "#1", "OPEN", &[("FL1", "L1", 2)]),
                "2026-01-06T10:00:05Z",
            )],
            None,
        );
        assert_eq!(m.newest.as_deref(), Some("2026-01-06T10:00:05Z"));
        assert_eq!(m.held, 2);
    }

    #[test]
    fn a_full_read_drops_what_it_did_not_see_and_a_taken_order_stays_out_until_then() {
        let mut m = Mirror::default();
        m.pass(false);
        m.take_page(
            vec![
                fo("F1", "O1", "#1", "OPEN", &[("FL1", "L1", 1)]),
                fo("F2", "O2", "#2", "OPEN", &[("FL2", "L2", 1)]),
                fo("F3", "O3", "#3", "OPEN", &[("FL3", "L3", 1)]),
            ],
            None,
        );
        assert!(m.take("1").is_some());
        // Read again while taken: not held again.
        m.pass(false);
        m.take_page(
            vec![fo("F1", "O1", "#1", "OPEN", &[("FL1", "L1", 1)])],
            None,
        );
        assert!(m.take("1").is_none());
        // The next full read: F2 closed meanwhile (not listed), F3 still
        // open, F1 listed but still taken during this read.
        m.full_at = Some(Instant::now() - FULL_EVERY);
        assert!(m.pass(true).full);
        m.take_page(
            vec![
                fo("F3", "O3", "#3", "OPEN", &[("FL3", "L3", 1)]),
                fo("F1", "O1", "#1", "OPEN", &[("FL1", "L1", 1)]),
            ],
            None,
        );
        assert_eq!(m.held, 1);
        assert!(m.take("2").is_none(), "closed: dropped");
        assert!(m.take("3").is_some());
        // After it, a change read again is taken in.
        m.pass(false);
        m.take_page(
            vec![fo("F1", "O1", "#1", "OPEN", &[("FL1", "L1", 1)])],
            None,
        );
        assert!(m.take("1").is_some(), "held again after the full read");
    }

    #[test]
    fn the_view_handed_to_a_shipment_stays_for_its_next_run() {
        let mut m = Mirror::default();
        m.take_in(fo("F1", "O1", "#1", "OPEN", &[("FL1", "L1", 2)]));
        let taken = m.take("1").expect("held");
        assert_eq!(m.handed("O1"), Some(taken), "the same view");
        assert!(m.take("1").is_none(), "but not for another shipment");
        assert!(m.handed("O2").is_none());
        m.reset_if_moved(Some("gid://shopify/Location/9"));
        assert!(m.handed("O1").is_none());
    }

    #[test]
    fn a_location_change_starts_over() {
        let mut m = Mirror::default();
        m.take_in(fo("F1", "O1", "#1", "OPEN", &[("FL1", "L1", 1)]));
        m.reset_if_moved(None);
        assert_eq!(m.held, 1, "same location: kept");
        m.reset_if_moved(Some("gid://shopify/Location/9"));
        assert_eq!((m.held, m.generation), (0, 1));
        assert!(m.take("1").is_none());
    }
}
