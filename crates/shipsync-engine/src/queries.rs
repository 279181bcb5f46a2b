//! What the web reads: one function per page or answer need, over the
//! stored rows (shipments, orders, events, runs, the dashboard's counts).
//! Rows are returned as stored; who may see them is the caller's check.

use shipsync_core::states::{OrderStatus, ShipmentStatus, Source};
use shipsync_db::activity::{self, ActivityRow};
use shipsync_db::events::{self, EventFilter, EventRow};
use shipsync_db::fulfillments::{self, StoreFulfillmentRow};
use shipsync_db::orders::{self as db_orders, OrderFilter, OrderRecord};
use shipsync_db::shipments::{self, ShipmentFilter, ShipmentRow};
use shipsync_db::{DbError, jobs};

use crate::Engine;

/// At most this many shipments carrying one tracking number are looked at
/// when orders are searched by tracking number.
const TRACKING_SHIPMENTS: i64 = 500;

/// What the dashboard shows of the stored shipments.
#[derive(Debug, Clone, Default)]
pub struct DashboardCounts {
    /// Shipments by state (every merchant's; empty for a limited caller).
    pub by_status: Vec<(ShipmentStatus, i64)>,
    /// Shipments by how they were first seen (webhook, poll).
    pub by_first_seen: Vec<(Source, i64)>,
    /// Orders by how they were first seen (order webhook, pull).
    pub orders_by_first_seen: Vec<(Source, i64)>,
    /// (completed at, ship-to-store µs) of shipments completed since.
    pub completions: Vec<(i64, i64)>,
}

fn carries(r: &ShipmentRow, tracking: &str) -> bool {
    r.version.packages.iter().any(|pk| {
        pk.tracking_number
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case(tracking))
    })
}

impl Engine {
    /// Whether the database answers.
    pub async fn ping(&self) -> bool {
        self.db().ping().await
    }

    /// Closes the database pool (at shutdown).
    pub async fn close(&self) {
        self.db().close().await
    }

    /// How many jobs are queued or running.
    pub async fn count_jobs(&self) -> Result<i64, DbError> {
        jobs::count(self.db().pool()).await
    }

    /// A page of shipments matching `f`, newest first, before `cursor`.
    pub async fn shipments(
        &self,
        f: &ShipmentFilter,
        cursor: Option<&str>,
        limit: i64,
    ) -> Result<Vec<ShipmentRow>, DbError> {
        shipments::list(self.db().pool(), f, cursor, limit).await
    }

    /// One shipment by id.
    pub async fn shipment(&self, id: &str) -> Result<Option<ShipmentRow>, DbError> {
        shipments::get(self.db().pool(), id).await
    }

    /// The store fulfillments made for a shipment.
    pub async fn shipment_fulfillments(
        &self,
        shipment_id: &str,
    ) -> Result<Vec<StoreFulfillmentRow>, DbError> {
        fulfillments::of_shipment(self.db().pool(), shipment_id).await
    }

    /// The activity of a shipment or order, oldest first.
    pub async fn activity(&self, subject_id: &str) -> Result<Vec<ActivityRow>, DbError> {
        activity::of(self.db().pool(), subject_id).await
    }

    /// The shipments of these merchants (None: all) whose order name is `q`
    /// or one of whose packages carries tracking number `q` (one search
    /// box), newest first, optionally in one status.
    pub async fn search_shipments(
        &self,
        merchant_ids: Option<&[String]>,
        status: Option<ShipmentStatus>,
        q: &str,
        limit: i64,
    ) -> Result<Vec<ShipmentRow>, DbError> {
        let q = q.trim();
        let filter = ShipmentFilter {
            merchant_ids: merchant_ids.map(<[String]>::to_vec),
            status,
            order_name: Some(q.to_string()).filter(|x| !x.is_empty()),
            ..Default::default()
        };
        let mut rows = shipments::list(self.db().pool(), &filter, None, limit).await?;
        if q.is_empty() {
            return Ok(rows);
        }
        for r in self.shipments_carrying(merchant_ids, q, limit).await? {
            if status.is_none_or(|st| st == r.status) && !rows.iter().any(|x| x.id == r.id) {
                rows.push(r);
            }
        }
        rows.sort_by(|a, b| b.id.cmp(&a.id));
        rows.truncate(limit.max(0) as usize);
        Ok(rows)
    }

    /// The shipments of these merchants (newest first, at most `limit`) one
    /// of whose packages carries tracking number `tracking` (ASCII case
    /// ignored).
    pub async fn shipments_carrying(
        &self,
        merchant_ids: Option<&[String]>,
        tracking: &str,
        limit: i64,
    ) -> Result<Vec<ShipmentRow>, DbError> {
        let tracking = tracking.trim();
        if tracking.is_empty() {
            return Ok(Vec::new());
        }
        // The database finds the shipments whose stored version mentions
        // the text anywhere; only those with it as a package's tracking
        // number count.
        let mentioning =
            shipments::mentioning(self.db().pool(), merchant_ids, tracking, limit).await?;
        Ok(mentioning
            .into_iter()
            .filter(|r| carries(r, tracking))
            .collect())
    }

    /// (connection id, store order id) of the orders whose shipments carry
    /// tracking number `tracking`.
    pub async fn store_orders_carrying(
        &self,
        merchant_ids: Option<&[String]>,
        tracking: &str,
    ) -> Result<Vec<(String, String)>, DbError> {
        let mut pairs: Vec<(String, String)> = self
            .shipments_carrying(merchant_ids, tracking, TRACKING_SHIPMENTS)
            .await?
            .into_iter()
            .filter_map(|sh| Some((sh.connection_id?, sh.order_id?)))
            .collect();
        pairs.sort();
        pairs.dedup();
        Ok(pairs)
    }

    /// A page of orders matching `f`, newest first, before `cursor`.
    pub async fn orders(
        &self,
        f: &OrderFilter,
        cursor: Option<&str>,
        limit: i64,
    ) -> Result<Vec<OrderRecord>, DbError> {
        db_orders::list(self.db().pool(), f, cursor, limit).await
    }

    /// The orders of these merchants (None: all) whose name is `q` or whose
    /// shipments carry tracking number `q` (one search box), newest first,
    /// optionally in one status.
    pub async fn search_orders(
        &self,
        merchant_ids: Option<&[String]>,
        status: Option<OrderStatus>,
        q: &str,
        limit: i64,
    ) -> Result<Vec<OrderRecord>, DbError> {
        let q = q.trim();
        let by_name = OrderFilter {
            merchant_ids: merchant_ids.map(<[String]>::to_vec),
            status,
            name: Some(q.to_string()).filter(|x| !x.is_empty()),
            ..Default::default()
        };
        let mut rows = db_orders::list(self.db().pool(), &by_name, None, limit).await?;
        if q.is_empty() {
            return Ok(rows);
        }
        let by_tracking = OrderFilter {
            name: None,
            store_orders: Some(self.store_orders_carrying(merchant_ids, q).await?),
            ..by_name
        };
        for o in db_orders::list(self.db().pool(), &by_tracking, None, limit).await? {
            if !rows.iter().any(|x| x.id == o.id) {
                rows.push(o);
            }
        }
        rows.sort_by(|a, b| b.id.cmp(&a.id));
        rows.truncate(limit.max(0) as usize);
        Ok(rows)
    }

    /// One order by id.
    pub async fn order(&self, id: &str) -> Result<Option<OrderRecord>, DbError> {
        db_orders::get(self.db().pool(), id).await
    }

    /// The ids of the shipments matched to an order (of its connection).
    pub async fn order_shipment_ids(&self, o: &OrderRecord) -> Result<Vec<String>, DbError> {
        Ok(shipments::for_order(self.db().pool(), &o.store_order_id)
            .await?
            .into_iter()
            .filter(|sh| sh.connection_id.as_deref() == Some(&o.connection_id))
            .map(|sh| sh.id)
            .collect())
    }

    /// The order a connection made of a store order, if any.
    pub async fn order_of_store_order(
        &self,
        connection_id: &str,
        store_order_id: &str,
    ) -> Result<Option<OrderRecord>, DbError> {
        db_orders::of_store_order(self.db().pool(), connection_id, store_order_id).await
    }

    /// A page of events matching `f`, newest first, before `cursor`.
    pub async fn events(
        &self,
        f: &EventFilter,
        cursor: Option<&str>,
        limit: i64,
    ) -> Result<Vec<EventRow>, DbError> {
        events::list(self.db().pool(), f, cursor, limit).await
    }

    /// One event by id.
    pub async fn event(&self, id: &str) -> Result<Option<EventRow>, DbError> {
        events::get(self.db().pool(), id).await
    }

    /// The dashboard's counts for these merchants (None: all; the count by
    /// state only then), completions since `since` (µs).
    pub async fn dashboard_counts(
        &self,
        merchant_ids: Option<&[String]>,
        since: i64,
    ) -> Result<DashboardCounts, DbError> {
        let pool = self.db().pool();
        let by_status = if merchant_ids.is_none() {
            shipments::count_by_status(pool).await?
        } else {
            Vec::new()
        };
        Ok(DashboardCounts {
            by_status,
            by_first_seen: shipments::count_by_first_seen(pool, merchant_ids).await?,
            orders_by_first_seen: shipsync_db::orders::count_by_first_seen(pool, merchant_ids)
                .await?,
            completions: shipments::completions_since(pool, merchant_ids, since).await?,
        })
    }
}
