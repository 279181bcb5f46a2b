//! One sync run of a shipment (job `sync_shipment`): match its store order,
//! take its share of the order from the ledger, settle earlier attempts
//! whose outcome is unknown, then send what the store lacks and correct
//! tracking — see [`super::plan`] for the decisions, [`super::notify`] for
//! the store write.

use std::collections::BTreeSet;
use std::time::Duration;

use shipsync_core::landed::Landed;
use shipsync_core::ledger::{self, KitPolicy, LineShare, OrderLine, Recipes, ShipmentInput};
use shipsync_core::mappings::Mappings;
use shipsync_core::states::{FulfillmentState, OrderStatus, ShipmentStatus, StoreStatus};
use shipsync_core::{ShipmentVersion, WarehouseStatus};
use shipsync_db::connections::{self, ConnectionRow};
use shipsync_db::fulfillments::{self, StoreFulfillmentRow};
use shipsync_db::merchants::{self, MerchantRow};
use shipsync_db::orders::{self as db_orders, OrderLineRow, OrderRecord};
use shipsync_db::shipments::{self, ShipmentRow};
use shipsync_db::unit::{Conn, Unit};
use shipsync_db::{Backend, activity, now_micros};
use shipsync_shopify::{ShopifyClient, StoreLineItem, StoreOrder, StoreOrderForWarehouse};
use tracing::field::Empty;

use super::actions::{OrderDone, SaveRun};
use super::notify::{Recorded, Target};
use super::plan::{self, Inputs, Plan};
use super::reconnect_wait;
use crate::Engine;
use crate::error::{EngineError, retry};
use crate::mappings::{mappings_in, recipes_in};
use crate::orders::sent_order_for;
use crate::stores::StoreSettings;

/// A store line as the ledger counts it: its current quantity, and the
/// units an edit removed (shipping those is not an over-shipment).
pub(crate) fn ledger_line(l: &StoreLineItem) -> OrderLine {
    OrderLine {
        id: l.id.clone(),
        sku: l.sku.clone(),
        quantity: l.quantity,
        removed: l.ordered_quantity.saturating_sub(l.quantity),
    }
}

/// How soon a shipment whose earlier attempt is undecided looks in the
/// store again (a store can show an applied create a few seconds late).
const LOOK_AGAIN: Duration = Duration::from_secs(2);
const LOOK_AGAIN_MIN: Duration = Duration::from_millis(200);

/// Where matching a shipment to a store order ended.
enum Found {
    One {
        connection_id: String,
        order: StoreOrder,
        /// Whether `order` was read whole (else only its id and name).
        read: bool,
        /// Whether `order` is what was read ahead (`read_ahead`), not the
        /// store's answer now.
        ahead: bool,
    },
    None,
    NoConnection,
    /// Not found in the stores asked; a store that refused its credentials
    /// was not asked (what the shipment waits for).
    Reconnect(String),
    Ambiguous(Vec<String>),
}

/// The store a matched shipment goes to.
struct Store {
    connection_id: String,
    order_id: String,
    client: ShopifyClient,
    settings: StoreSettings,
}

impl Engine {
    /// Job `sync_shipment`: bring the store up to date for one shipment.
    /// When the store refused the connection's credentials meanwhile, the
    /// shipment waits for the reconnection instead of failing.
    #[tracing::instrument(
        name = "sync_shipment",
        skip_all,
        fields(
            shipment = %shipment_id,
            shipment_number = Empty,
            merchant = Empty,
            connection = Empty,
            order = Empty,
        )
    )]
    pub(crate) async fn sync_shipment(&self, shipment_id: &str) -> Result<(), EngineError> {
        let mut from_record = false;
        let mut result = self
            .sync_shipment_once(shipment_id, true, &mut from_record)
            .await;
        if from_record
            && matches!(
                result,
                Err(EngineError::Permanent(_) | EngineError::Retry { .. })
            )
            && !self.has_pending_attempt(shipment_id).await?
        {
            // What shipsync knew of the order was not good enough (the store
            // refused the fulfillment, or the plan says wait): the store's
            // own view decides, now.
            tracing::debug!(shipment = %shipment_id, error = ?result, "order record stale; reading the store");
            result = self
                .sync_shipment_once(shipment_id, false, &mut from_record)
                .await;
        }
        match result {
            Err(EngineError::Permanent(message)) => {
                let Some(mut s) = shipments::get(self.db().pool(), shipment_id).await? else {
                    return Err(EngineError::Permanent(message));
                };
                match self.reconnect_reason(&s).await? {
                    Some(why) if s.status != ShipmentStatus::Archived => {
                        self.wait(&mut s, &why).await
                    }
                    _ => Err(EngineError::Permanent(message)),
                }
            }
            other => other,
        }
    }

    /// Why a shipment waits for its store to be reconnected: its
    /// connection's (or, not matched yet, one of its merchant's enabled
    /// connections') store refused the credentials.
    async fn reconnect_reason(&self, s: &ShipmentRow) -> Result<Option<String>, EngineError> {
        let candidates = match &s.connection_id {
            Some(id) => connections::get(self.db().pool(), id)
                .await?
                .into_iter()
                .collect(),
            None => connections::list(
                self.db().pool(),
                Some(std::slice::from_ref(&s.merchant_id)),
                None,
                500,
            )
            .await?
            .into_iter()
            .filter(|c| c.enabled)
            .collect::<Vec<_>>(),
        };
        Ok(candidates
            .iter()
            .find(|c| c.store_status == StoreStatus::ReconnectNeeded)
            .map(reconnect_wait))
    }

    /// Whether an attempt of this shipment's whose outcome is unknown is
    /// recorded (the next run must look in the store first).
    async fn has_pending_attempt(&self, shipment_id: &str) -> Result<bool, EngineError> {
        Ok(fulfillments::of_shipment(self.db().pool(), shipment_id)
            .await?
            .iter()
            .any(|r| r.state == FulfillmentState::Pending))
    }

    /// One run. With `may_use_record`, an order shipsync itself sent to the
    /// warehouse, of which nothing reached the store yet, is fulfilled from
    /// the store's view recorded then (no read: one request, the
    /// mutation); `from_record` tells the caller so, for Shopify's refusal
    /// of a stale view to be followed by a run that reads the store.
    async fn sync_shipment_once(
        &self,
        shipment_id: &str,
        may_use_record: bool,
        from_record: &mut bool,
    ) -> Result<(), EngineError> {
        *from_record = false;
        let db = self.db();
        // What the merge that queued this run read for it, in the unit that
        // committed the change (once: a second run reads again).
        let loaded = match crate::worker::handed::<Loaded>(shipment_id) {
            Some(read) => Some(*read),
            None => {
                db.unit(Load {
                    shipment_id: shipment_id.to_string(),
                })
                .await?
            }
        };
        let Some(loaded) = loaded else {
            return Ok(());
        };
        let Loaded {
            mut s,
            recorded,
            merchant,
            sent,
            candidates,
            order: mut side,
        } = loaded;
        let span = tracing::Span::current();
        span.record("shipment_number", s.number.as_str());
        span.record("merchant", s.merchant_id.as_str());
        if s.status == ShipmentStatus::Archived {
            return Ok(());
        }
        let version = s.version.clone();
        match &version.status {
            WarehouseStatus::Shipped => {}
            WarehouseStatus::RolledBack if !recorded.is_empty() => {
                return Err(EngineError::Permanent(
                    "Deposco reports this shipment Rolled Back after it was shipped; the store keeps its fulfillment — check the order in Deposco and the store, then archive this shipment".into(),
                ));
            }
            other => {
                return self
                    .wait(&mut s, &format!("waiting: Deposco status is {other:?}; only Shipped shipments reach the store"))
                    .await;
            }
        }
        if version.shipped_units() == 0 {
            s.status = ShipmentStatus::Completed;
            s.error = None;
            s.completed_at = Some(now_micros());
            self.save_run_noting(
                &s,
                Some((
                    "completed",
                    "Nothing shipped (no units): nothing to tell the store",
                )),
            )
            .await?;
            return Ok(());
        }
        let (merchant, doc, recipes) = merchant.ok_or_else(|| {
            EngineError::Permanent("the merchant of this shipment was deleted".into())
        })?;

        // Which connection and store order? (A match is saved with the
        // order's side read, in one unit.)
        let Some(searched) = self
            .match_order(
                &mut s,
                &version,
                sent,
                candidates,
                &mut side,
                (may_use_record, from_record),
            )
            .await?
        else {
            return Ok(());
        };
        // The order's side: as the load (or the match) read it when it
        // knew the order, else read now, in one unit.
        let (Some(connection_id), Some(order_id)) = (s.connection_id.clone(), s.order_id.clone())
        else {
            return Err(EngineError::Internal(
                "shipment without order after matching".into(),
            ));
        };
        let side = match side.filter(|o| o.connection_id == connection_id && o.order_id == order_id)
        {
            Some(side) => side,
            None => {
                db.unit(LoadSide {
                    connection_id: connection_id.clone(),
                    order_id: order_id.clone(),
                })
                .await?
            }
        };
        let OrderSide {
            connection,
            of_order,
            record,
            siblings,
            ..
        } = side;
        let Some(store) = self
            .open_store(&mut s, connection_id, order_id, connection)
            .await?
        else {
            return Ok(());
        };
        span.record("connection", store.connection_id.as_str());
        span.record("order", store.order_id.as_str());
        let of_order: Vec<StoreFulfillmentRow> = of_order
            .into_iter()
            .filter(|r| r.connection_id == store.connection_id)
            .collect();
        let record = match searched {
            Some(_) => None,
            // Only on a shipment's first try: after any failure (a refusal
            // of the recorded view included) it reads the store. A
            // shipment matched from what was read ahead, whose run was put
            // back before it sent anything, uses that view again.
            None if may_use_record
                && s.error.is_none()
                && of_order.is_empty()
                && recorded.is_empty() =>
            {
                match (
                    self.inner
                        .read_ahead
                        .again(&store.connection_id, &store.order_id),
                    record,
                ) {
                    (Some(order), Some(local)) => Some((order, local)),
                    (_, record) => order_as_sent(record),
                }
            }
            None => None,
        };
        let (mut order, local) = match (searched, record) {
            (_, Some((order, local))) => {
                *from_record = true;
                (order, local)
            }
            (Some((order, local)), None) => (order, local),
            (None, None) => {
                let order = store
                    .client
                    .order_for_fulfilling(&store.order_id)
                    .await?
                    .ok_or_else(|| {
                        EngineError::Permanent(format!(
                            "store order {} no longer exists in the store",
                            s.order_name
                        ))
                    })?;
                let local = self
                    .db()
                    .unit(RecordOrder::of(&store.connection_id, &order))
                    .await?;
                (order, local)
            }
        };
        if let Some(why) = cancelled_in_store(&local, &order) {
            return Err(EngineError::Permanent(why));
        }
        let (shares, recipes) = self
            .shares_of(
                &s,
                &version,
                (&merchant, &doc, recipes),
                &order,
                &store,
                siblings,
            )
            .await?;
        self.note_removed_units(&s, &version, &order).await?;

        // Settle attempts whose outcome is unknown before sending anything.
        let shown = self.shown_if_pending(&store, &mut order, &recorded).await?;
        let adopted: BTreeSet<String> = of_order
            .iter()
            .filter_map(|r| r.store_fulfillment_id.clone())
            .collect();
        let plan = plan::plan(Inputs {
            shares: &shares,
            version: &version,
            recorded,
            shown: &shown,
            adopted: &adopted,
            now: now_micros(),
            hold: i64::try_from(self.unknown_outcome_hold().as_micros()).unwrap_or(i64::MAX),
        });
        let Plan {
            create,
            told,
            correct,
            ..
        } = self.settle(shipment_id, plan).await?;

        // Send what the store lacks, then correct tracking.
        let to = Target {
            connection_id: &store.connection_id,
            order: &order,
            client: &store.client,
            settings: &store.settings,
            carriers: &doc,
        };
        // No save before sending: each store write is recorded on its own
        // just before it goes (what a crash or a retry looks for), and the
        // run's end saves the shipment once; a failed run is saved `open`
        // with its error by the worker.
        // The outcomes of the writes are saved with the run's end (one
        // unit), or on their own when it stops before.
        let outcomes = match create.is_empty() {
            true => Vec::new(),
            false => self.send_new(&s, &version, &create, &told, &to).await?,
        };
        if let Err(e) = self.update_tracking(&s, &version, correct, &to).await {
            self.record_outcomes(outcomes).await?;
            return Err(e);
        }
        let order = OrderDone {
            connection_id: store.connection_id.clone(),
            store_order_id: store.order_id.clone(),
            merchant,
            mappings: doc,
            recipes,
        };
        self.completed(&mut s, order, outcomes).await
    }

    /// Matches the shipment to a store order when it is not yet (saved):
    /// `Some` with the order and its local record when the search read it
    /// whole, `Some(None)` when it is matched without a read (before, or
    /// by what shipsync sent), `None` when it waits (saved too). The match
    /// is saved, the order a search read recorded and, unless `side` holds
    /// it, the order's side read into `side`: one unit.
    /// `candidates`: the merchant's connections, as the load read them.
    /// `record`: whether the run may use what shipsync holds of the order
    /// instead of the store's answer, and where to say it did.
    async fn match_order(
        &self,
        s: &mut ShipmentRow,
        version: &ShipmentVersion,
        sent: Option<(String, StoreOrder)>,
        candidates: Vec<ConnectionRow>,
        side: &mut Option<OrderSide>,
        record: (bool, &mut bool),
    ) -> Result<Option<Option<(StoreOrder, OrderRecord)>>, EngineError> {
        if s.connection_id.is_some() && s.order_id.is_some() {
            return Ok(Some(None));
        }
        let (may_use_record, from_record) = record;
        match self
            .find_order(version, sent, candidates, may_use_record)
            .await?
        {
            Found::One {
                connection_id,
                order,
                read,
                ahead,
            } => {
                *from_record |= ahead;
                s.connection_id = Some(connection_id.clone());
                s.order_id = Some(order.id.clone());
                s.order_name = order.name.clone();
                let known = side
                    .as_ref()
                    .is_some_and(|o| o.connection_id == connection_id && o.order_id == order.id);
                let (queued, local, read_side) = self
                    .db()
                    .unit(SaveMatch {
                        engine: self.clone(),
                        s: s.clone(),
                        record: read.then(|| match ahead {
                            true => RecordOrder::known(&connection_id, &order),
                            false => RecordOrder::of(&connection_id, &order),
                        }),
                        side: (!known).then(|| (connection_id, order.id.clone())),
                    })
                    .await?;
                if queued {
                    self.wake();
                }
                if read_side.is_some() {
                    *side = read_side;
                }
                Ok(Some(local.map(|l| (order, l))))
            }
            Found::NoConnection => {
                self.wait(s, "waiting: the merchant has no enabled connection; the shipment goes out when one is enabled")
                    .await?;
                Ok(None)
            }
            Found::Reconnect(why) => {
                self.wait(s, &why).await?;
                Ok(None)
            }
            Found::None => Err(retry(format!(
                "order {} not found in any store of this merchant's enabled connections",
                refs_text(version)
            ))),
            Found::Ambiguous(names) => Err(EngineError::Permanent(format!(
                "ambiguous order: {} exists in several stores ({}); archive this shipment or disable the wrong connection, then reprocess",
                refs_text(version),
                names.join(", ")
            ))),
        }
    }

    /// The store of a matched shipment, ready to be written to; `None`
    /// when the shipment waits for it (saved).
    /// `connection`: the row of the shipment's connection as the run read
    /// it.
    async fn open_store(
        &self,
        s: &mut ShipmentRow,
        connection_id: String,
        order_id: String,
        connection: Option<ConnectionRow>,
    ) -> Result<Option<Store>, EngineError> {
        let connection = connection.ok_or_else(|| {
            EngineError::Permanent(format!(
                "connection {connection_id} was deleted; reset this shipment"
            ))
        })?;
        // (The row says whether its Shipments channel is on.)
        if !connection.enabled || !connection.shipments_on {
            self.wait(s, &format!("waiting: connection {} or its Shipments channel is disabled; the shipment goes out when both are on", connection.name))
                .await?;
            return Ok(None);
        }
        if connection.store_status == StoreStatus::ReconnectNeeded {
            self.wait(s, &reconnect_wait(&connection)).await?;
            return Ok(None);
        }
        let (client, settings) = self.inner.stores.client(&connection, self.secrets())?;
        Ok(Some(Store {
            connection_id,
            order_id,
            client,
            settings,
        }))
    }

    /// This shipment's share of its order's lines, by the ledger over every
    /// shipment of the order; recipes missing from the ledger are read from
    /// Deposco's item data once. With the merchant's kit recipes it used.
    /// `settings`: the merchant, its mappings and kit recipes as loaded;
    /// `siblings`: the order's shipments as the run's load read them.
    async fn shares_of(
        &self,
        s: &ShipmentRow,
        version: &ShipmentVersion,
        settings: (&MerchantRow, &Mappings, Recipes),
        order: &StoreOrder,
        store: &Store,
        siblings: Vec<ShipmentRow>,
    ) -> Result<(Vec<LineShare>, Recipes), EngineError> {
        let (merchant, doc, mut recipes) = settings;
        // Order ids are only unique within one store: count the shipments
        // matched to this order through this connection only.
        let connection_id = store.connection_id.as_str();
        let siblings = with_this(siblings, s);
        let mut versions: Vec<(String, ShipmentVersion)> = Vec::new();
        for sib in &siblings {
            if sib.id != s.id
                && (sib.status == ShipmentStatus::Archived
                    || sib.connection_id.as_deref() != Some(connection_id))
            {
                continue;
            }
            if sib.id == s.id {
                // This run works on the version it read at its start (its
                // packages and tracking too); a newer one merged meanwhile
                // re-runs the job.
                versions.push((s.id.clone(), version.clone()));
            } else {
                versions.push((sib.id.clone(), sib.version.clone()));
            }
        }
        // The ledger sees store SKUs: warehouse item numbers go back through
        // the merchant's aliases first.
        let order_skus: BTreeSet<&str> = order
            .line_items
            .iter()
            .filter_map(|l| l.sku.as_deref())
            .collect();
        let versions: Vec<(String, ShipmentVersion)> = versions
            .into_iter()
            .map(|(k, v)| (k, doc.in_store_skus(&v, &order_skus)))
            .collect();
        let inputs: Vec<ShipmentInput<'_>> = versions
            .iter()
            .map(|(k, v)| ShipmentInput { key: k, version: v })
            .collect();
        let order_lines: Vec<OrderLine> = order.line_items.iter().map(ledger_line).collect();
        let policy = merchant.kit_policy;
        let mut mine = ledger_for(&order_lines, &recipes, policy, &inputs, &s.id)?;
        if mine.is_err()
            && self
                .learn_recipes_from_items(merchant, doc, &order_lines, &versions, &recipes)
                .await
        {
            // The pull may not say which component belongs to which kit: the
            // warehouse's item data does. Try again with what it taught.
            recipes = self.recipes_of(&merchant.id, doc).await?;
            mine = ledger_for(&order_lines, &recipes, policy, &inputs, &s.id)?;
        }
        let mine = mine.map_err(|p| EngineError::Permanent(p.message))?;
        Ok((mine, recipes))
    }

    /// The store's fulfillments of the order when an attempt's outcome is
    /// unknown (only then are they needed): all of them, through every
    /// fulfillment order of the order and the ones the attempts named.
    async fn shown_if_pending(
        &self,
        store: &Store,
        order: &mut StoreOrder,
        recorded: &[StoreFulfillmentRow],
    ) -> Result<Vec<Landed>, EngineError> {
        if !recorded
            .iter()
            .any(|r| r.state == FulfillmentState::Pending)
        {
            return Ok(Vec::new());
        }
        let mut fo_ids: Vec<String> = order
            .fulfillment_orders
            .iter()
            .map(|fo| fo.id.clone())
            .collect();
        for r in recorded
            .iter()
            .filter(|r| r.state == FulfillmentState::Pending)
        {
            if !fo_ids.contains(&r.fulfillment_order_id) {
                fo_ids.push(r.fulfillment_order_id.clone());
            }
        }
        order.fulfillments = store.client.fulfillments_of(&fo_ids).await?;
        Ok(order
            .fulfillments
            .iter()
            .map(|f| Landed {
                id: f.id.clone(),
                line_items: f.line_items.clone(),
                tracking_numbers: f.tracking.iter().filter_map(|t| t.number.clone()).collect(),
            })
            .collect())
    }

    /// Applies what the plan settled (attempts adopted, attempts forgotten);
    /// while one is still undecided, looks again later instead of sending.
    async fn settle(&self, shipment_id: &str, plan: Plan) -> Result<Plan, EngineError> {
        let db = self.db();
        for r in &plan.adopt {
            fulfillments::update(db.pool(), r).await?;
            let fid = r.store_fulfillment_id.as_deref().unwrap_or_default();
            activity::add(
                db.pool(),
                shipment_id,
                "notified",
                &format!("An earlier attempt had reached the store: adopted fulfillment {fid}"),
            )
            .await?;
        }
        for r in &plan.forget {
            fulfillments::delete(db.pool(), &r.id).await?;
        }
        if let Some(until) = plan.undecided_until {
            let left = Duration::from_micros(u64::try_from(until - now_micros()).unwrap_or(0));
            return Err(EngineError::Deferred {
                message: format!(
                    "an earlier fulfillment attempt's outcome is unknown and the store does not show it yet; looking again before sending anything (at most {} s more)",
                    left.as_secs() + 1
                ),
                after: left.clamp(LOOK_AGAIN_MIN, LOOK_AGAIN),
            });
        }
        Ok(plan)
    }

    /// Everything acknowledged: the outcomes of the run's store writes are
    /// recorded, the shipment is completed, its order's state follows what
    /// reached the store and, run by a worker, the job is completed and the
    /// worker's next claimed — one unit, the run's last step. A failure of
    /// the unit runs the job again: the writes' intent rows are still
    /// pending, so the run looks in the store first and adopts what it
    /// finds, sending nothing twice.
    async fn completed(
        &self,
        s: &mut ShipmentRow,
        order: OrderDone,
        outcomes: Vec<Recorded>,
    ) -> Result<(), EngineError> {
        let save = s.status != ShipmentStatus::Completed;
        let first = s.completed_at.is_none();
        let now = now_micros();
        if save {
            s.status = ShipmentStatus::Completed;
            s.error = None;
            s.completed_at = Some(now);
            s.updated_at = now;
        }
        // The job ends in this unit, with the worker's next claim, unless
        // the workers are stepping aside for an ingest burst; only on
        // SQLite, where a commit's outcome is always known (on PostgreSQL
        // a connection cut during COMMIT could leave the job gone while
        // its run reports a failure, which nothing would then retry).
        let ending = (self.db().backend() == Backend::Sqlite && !self.ingest().in_burst())
            .then(|| crate::worker::ending(&s.id))
            .flatten();
        let (queued, turn) = self
            .db()
            .unit(SaveRun {
                engine: self.clone(),
                ending,
                s: save.then(|| s.clone()),
                note: save.then(|| {
                    (
                        "completed".to_string(),
                        "The store has everything this shipment shipped".to_string(),
                    )
                }),
                order: Some(order),
                outcomes,
            })
            .await?;
        if save && first {
            self.metrics()
                .ship_to_store((now - s.received_at) as f64 / 1e6);
        }
        if let Some(turn) = turn {
            crate::worker::ended(turn);
        }
        if queued {
            self.wake();
        }
        Ok(())
    }

    /// Records, once, in the shipment's activity the units Deposco shipped
    /// of lines the store removed (an edit that came too late for the
    /// warehouse): the ledger does not send them, the rest goes on.
    async fn note_removed_units(
        &self,
        s: &ShipmentRow,
        version: &ShipmentVersion,
        order: &StoreOrder,
    ) -> Result<(), EngineError> {
        let mut notes = Vec::new();
        for l in order
            .line_items
            .iter()
            .filter(|l| l.ordered_quantity > l.quantity)
        {
            let tail = l.id.rsplit('/').next().unwrap_or(&l.id);
            let shipped: u64 = version
                .lines
                .iter()
                .filter(|v| match v.store_line_id.as_deref() {
                    Some(id) => id == l.id || id == tail,
                    None => l.sku.as_deref() == Some(v.sku.as_str()),
                })
                .map(|v| v.quantity)
                .sum();
            if shipped > l.quantity {
                notes.push(format!(
                    "Deposco shipped {shipped} unit(s) of {} but the store now wants {} (it removed {} after the order reached the warehouse): the extra unit(s) are recorded here and not sent to the store",
                    l.sku.as_deref().unwrap_or(&l.name),
                    l.quantity,
                    l.ordered_quantity - l.quantity
                ));
            }
        }
        if notes.is_empty() {
            return Ok(());
        }
        let seen = activity::of(self.db().pool(), &s.id).await?;
        for note in notes {
            if !seen.iter().any(|a| a.message == note) {
                activity::add(self.db().pool(), &s.id, "removed_units", &note).await?;
            }
        }
        Ok(())
    }

    /// `sent`: the order shipsync sent to Deposco that the shipment names,
    /// as the run's load found it. With `ahead`, an order read ahead
    /// (`read_ahead`) may be used, when the merchant has one enabled
    /// connection.
    async fn find_order(
        &self,
        version: &ShipmentVersion,
        sent: Option<(String, StoreOrder)>,
        candidates: Vec<ConnectionRow>,
        ahead: bool,
    ) -> Result<Found, EngineError> {
        // The connection whose order it is, when shipsync sent it to Deposco.
        if let Some((connection_id, order)) = sent {
            return Ok(Found::One {
                connection_id,
                order,
                read: false,
                ahead: false,
            });
        }
        let connections: Vec<_> = candidates.into_iter().filter(|c| c.enabled).collect();
        if connections.is_empty() {
            return Ok(Found::NoConnection);
        }
        if let [c] = connections.as_slice()
            && ahead
            && super::read_ahead::reads_ahead(c)
        {
            // The first name only: the search goes on to the next only
            // when the store has no order of that name, which what was
            // read ahead cannot tell.
            let (client, settings) = self.inner.stores.client(c, self.secrets())?;
            if let Some(name) = order_names(version, c).next()
                && let Some(order) = self
                    .inner
                    .read_ahead
                    .find(&c.id, settings.location_id.as_deref(), &client, name)
                    .await
            {
                return Ok(Found::One {
                    connection_id: c.id.clone(),
                    order,
                    read: true,
                    ahead: true,
                });
            }
        }
        let mut found: Vec<(String, StoreOrder)> = Vec::new();
        let mut unreachable: Option<&ConnectionRow> = None;
        for c in &connections {
            // A store that refused its credentials is not asked until
            // reconnected.
            if c.store_status == StoreStatus::ReconnectNeeded {
                unreachable = unreachable.or(Some(c));
                continue;
            }
            let (client, _) = self.inner.stores.client(c, self.secrets())?;
            for name in order_names(version, c) {
                // The search reads the orders it finds whole: matching and
                // reading are one request.
                if let Some(order) = client.find_order_to_fulfill(name).await? {
                    found.push((c.id.clone(), order));
                    break;
                }
            }
        }
        Ok(match found.len() {
            0 if unreachable.is_some() => {
                Found::Reconnect(unreachable.map(reconnect_wait).unwrap_or_default())
            }
            0 => Found::None,
            1 => {
                let (connection_id, order) = found.remove(0);
                Found::One {
                    connection_id,
                    order,
                    read: true,
                    ahead: false,
                }
            }
            _ => Found::Ambiguous(
                found
                    .iter()
                    .map(|(c, o)| format!("{} in {c}", o.name))
                    .collect(),
            ),
        })
    }
}

/// The store order names a shipment's order references stand for on
/// connection `c`: without `#` and the connection's order prefix.
fn order_names<'a>(
    version: &'a ShipmentVersion,
    c: &'a ConnectionRow,
) -> impl Iterator<Item = &'a str> {
    version.order_refs.iter().filter_map(|r| {
        let bare = r.trim().trim_start_matches('#');
        let name = bare
            .strip_prefix(c.order_prefix.as_str())
            .filter(|_| !c.order_prefix.is_empty())
            .unwrap_or(bare);
        (!name.is_empty()).then_some(name)
    })
}

/// Why a shipment of this order must not reach the store: the order was
/// cancelled there (the store says so, or shipsync cancelled it: `local`
/// is its record as just stored).
fn cancelled_in_store(local: &OrderRecord, order: &StoreOrder) -> Option<String> {
    if order.cancelled_at.is_none() && local.status != OrderStatus::Cancelled {
        return None;
    }
    Some(format!(
        "order {} was cancelled in the store, but Deposco shipped it anyway: this shipment is not sent to the store (no over-shipment is recorded) — arrange a return or a new order with the customer, then archive this shipment",
        order.name
    ))
}

/// The ledger's outcome for one shipment of an order.
fn ledger_for(
    order_lines: &[OrderLine],
    recipes: &Recipes,
    policy: KitPolicy,
    inputs: &[ShipmentInput<'_>],
    id: &str,
) -> Result<Result<Vec<LineShare>, ledger::LedgerProblem>, EngineError> {
    ledger::attribute(order_lines, recipes, policy, inputs)
        .into_iter()
        .find(|x| x.key == id)
        .map(|x| x.result)
        .ok_or_else(|| EngineError::Internal("shipment missing from its order's ledger".into()))
}

fn refs_text(v: &ShipmentVersion) -> String {
    if v.order_refs.is_empty() {
        "(no order reference)".into()
    } else {
        v.order_refs.join(" / ")
    }
}

/// The order's shipments as read before the run matched `s` to the order:
/// with `s` among them, in the order [`shipments::for_order`] gives.
fn with_this(mut rows: Vec<ShipmentRow>, s: &ShipmentRow) -> Vec<ShipmentRow> {
    if !rows.iter().any(|r| r.id == s.id) {
        rows.push(s.clone());
        rows.sort_by(|a, b| (a.received_at, &a.id).cmp(&(b.received_at, &b.id)));
    }
    rows
}

/// What a run reads before its first store request, in one unit: the
/// shipment and its recorded attempts; when it goes on, its merchant's
/// settings and, when its order is known (matched before, or an order
/// shipsync sent to Deposco), that order's connection, fulfillments, local
/// record and shipments. Also the end of the merge whose job becomes the
/// run (`super::merge`), handed on to it.
pub(super) struct Load {
    pub(super) shipment_id: String,
}

pub(super) struct Loaded {
    s: ShipmentRow,
    recorded: Vec<StoreFulfillmentRow>,
    /// The merchant with its mappings and kit recipes (`None`: deleted, or
    /// not read because the run stops before it needs them).
    merchant: Option<(MerchantRow, Mappings, Recipes)>,
    /// Not matched yet: the order shipsync sent that the shipment names.
    sent: Option<(String, StoreOrder)>,
    /// Not matched yet and not sent by shipsync: the merchant's
    /// connections, whose stores are searched.
    candidates: Vec<ConnectionRow>,
    order: Option<OrderSide>,
}

/// A store order as a run's load read it.
struct OrderSide {
    connection_id: String,
    order_id: String,
    connection: Option<ConnectionRow>,
    /// Its recorded fulfillments, of every connection.
    of_order: Vec<StoreFulfillmentRow>,
    record: Option<OrderRecord>,
    siblings: Vec<ShipmentRow>,
}

impl Unit for Load {
    type Output = Option<Loaded>;
    type Error = EngineError;
    const WRITES: bool = false;

    async fn run<C: Conn>(self, c: &mut C) -> Result<Option<Loaded>, EngineError> {
        let Some(s) = shipments::get(c.ex(), &self.shipment_id).await? else {
            return Ok(None);
        };
        let recorded = fulfillments::of_shipment(c.ex(), &s.id).await?;
        let goes_on = s.status != ShipmentStatus::Archived
            && s.version.status == WarehouseStatus::Shipped
            && s.version.shipped_units() > 0;
        let merchant = match goes_on {
            true => merchants::get(c.ex(), &s.merchant_id).await?,
            false => None,
        };
        let Some(merchant) = merchant else {
            return Ok(Some(Loaded {
                s,
                recorded,
                merchant: None,
                sent: None,
                candidates: Vec::new(),
                order: None,
            }));
        };
        let doc = mappings_in(c, &merchant).await?;
        let recipes = recipes_in(c, &merchant.id, &doc).await?;
        let mut candidates = Vec::new();
        let (sent, target) = match (&s.connection_id, &s.order_id) {
            (Some(connection_id), Some(order_id)) => {
                (None, Some((connection_id.clone(), order_id.clone())))
            }
            _ => {
                let sent = sent_order_for(c, &s.merchant_id, &s.version).await?;
                if sent.is_none() {
                    candidates = connections::list(
                        c.ex(),
                        Some(std::slice::from_ref(&s.merchant_id)),
                        None,
                        500,
                    )
                    .await?;
                }
                let target = sent.as_ref().map(|(cn, o)| (cn.clone(), o.id.clone()));
                (sent, target)
            }
        };
        let order = match target {
            Some((connection_id, order_id)) => Some(read_side(c, connection_id, order_id).await?),
            None => None,
        };
        Ok(Some(Loaded {
            s,
            recorded,
            merchant: Some((merchant, doc, recipes)),
            sent,
            candidates,
            order,
        }))
    }
}

/// The order as shipsync recorded it when it sent it to the warehouse,
/// with the local order (`record`, as the run's load read it): only while
/// it is open in the warehouse with nothing shipped, and its view holds
/// every id a fulfillment needs. Shopify refuses a fulfillment the order no
/// longer allows (a line fulfilled by hand meanwhile, a cancelled or moved
/// fulfillment order), and the caller then reads the store.
fn order_as_sent(record: Option<OrderRecord>) -> Option<(StoreOrder, OrderRecord)> {
    let r = record?;
    if r.status != OrderStatus::Open || r.warehouse_id.is_none() {
        return None;
    }
    let view = r
        .store_json
        .as_deref()
        .and_then(|j| serde_json::from_str::<StoreOrderForWarehouse>(j).ok())?;
    if view.cancelled_at.is_some() || view.fulfillment_orders.is_empty() {
        return None;
    }
    view.to_fulfill().map(|order| (order, r))
}

/// What a run reads of its store order: the connection, the order's
/// recorded fulfillments, its local record and its shipments.
async fn read_side(
    c: &mut impl Conn,
    connection_id: String,
    order_id: String,
) -> Result<OrderSide, EngineError> {
    Ok(OrderSide {
        connection: connections::get(c.ex(), &connection_id).await?,
        of_order: fulfillments::of_store_order(c.ex(), &order_id).await?,
        record: db_orders::of_store_order(c.ex(), &connection_id, &order_id).await?,
        siblings: shipments::for_order(c.ex(), &order_id).await?,
        connection_id,
        order_id,
    })
}

/// [`read_side`] as a unit: for an order matched by a store search, after
/// the load.
struct LoadSide {
    connection_id: String,
    order_id: String,
}

impl Unit for LoadSide {
    type Output = OrderSide;
    type Error = EngineError;
    const WRITES: bool = false;

    async fn run<C: Conn>(self, c: &mut C) -> Result<OrderSide, EngineError> {
        read_side(c, self.connection_id, self.order_id).await
    }
}

/// The local record of a store order as a run read it from the store
/// ([`db_orders::upsert`]), as a unit.
struct RecordOrder {
    connection_id: String,
    store_order_id: String,
    name: String,
    /// `None`: the order as read ahead, not all its lines known (those at
    /// other locations, or already fulfilled, were not read).
    lines: Option<Vec<OrderLineRow>>,
}

impl RecordOrder {
    fn of(connection_id: &str, order: &StoreOrder) -> Self {
        Self {
            connection_id: connection_id.to_string(),
            store_order_id: order.id.clone(),
            name: order.name.clone(),
            lines: Some(
                order
                    .line_items
                    .iter()
                    .map(crate::orders::line_row)
                    .collect(),
            ),
        }
    }

    /// Only what is sure of an order read ahead: it exists, and its name.
    fn known(connection_id: &str, order: &StoreOrder) -> Self {
        Self {
            connection_id: connection_id.to_string(),
            store_order_id: order.id.clone(),
            name: order.name.clone(),
            lines: None,
        }
    }

    async fn run_in(&self, c: &mut impl Conn) -> Result<OrderRecord, EngineError> {
        Ok(db_orders::upsert(
            c.ex(),
            &self.connection_id,
            &self.store_order_id,
            &self.name,
            OrderStatus::Open,
            self.lines.as_deref(),
        )
        .await?)
    }
}

impl Unit for RecordOrder {
    type Output = OrderRecord;
    type Error = EngineError;

    async fn run<C: Conn>(self, c: &mut C) -> Result<OrderRecord, EngineError> {
        self.run_in(c).await
    }
}

/// A shipment's match to a store order saved (with its line of activity),
/// the order as the search read it recorded, and the order's side read
/// (when the load did not): one unit.
struct SaveMatch {
    engine: Engine,
    s: ShipmentRow,
    record: Option<RecordOrder>,
    /// The order whose side to read (connection, store order).
    side: Option<(String, String)>,
}

impl Unit for SaveMatch {
    /// Whether an event delivery was queued; the order's local record;
    /// its side.
    type Output = (bool, Option<OrderRecord>, Option<OrderSide>);
    type Error = EngineError;

    async fn run<C: Conn>(self, c: &mut C) -> Result<Self::Output, EngineError> {
        let note = format!("Matched store order {}", self.s.order_name);
        let queued = self
            .engine
            .save_run_in(c, &self.s, Some(("matched", &note)))
            .await?;
        let record = match &self.record {
            Some(r) => Some(r.run_in(c).await?),
            None => None,
        };
        let side = match self.side {
            Some((connection_id, order_id)) => Some(read_side(c, connection_id, order_id).await?),
            None => None,
        };
        Ok((queued, record, side))
    }
}
