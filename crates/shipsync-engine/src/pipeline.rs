//! Shipments: merge each reported version, then bring the store up to date
//! with exactly what it still lacks.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use shipsync_core::fulfillment::{self, FoLineItem, FoProblem, FulfillmentOrderView};
use shipsync_core::ledger::{self, KitPolicy, LineShare, OrderLine, Recipes, ShipmentInput};
use shipsync_core::states::{
    Channel, EventOutcome, FulfillmentState, OrderStatus, ShipmentStatus, Source, StoreStatus,
};
use shipsync_core::{ShipmentVersion, WarehouseStatus, tracking};
use shipsync_db::connections::{self, ConnectionRow};
use shipsync_db::fulfillments::{self, StoreFulfillmentRow};
use shipsync_db::jobs::{self, Job};
use shipsync_db::orders::{self as db_orders, OrderLineRow};
use shipsync_db::shipments::{self, ShipmentRow};
use shipsync_db::versions::{self, VersionRow};
use shipsync_db::{DbError, activity, channels, events, merchants, new_id, now_micros, recipes};
use shipsync_shopify::{FulfillmentRequest, ShopifyError, StoreOrder, Tracking};
use tracing::field::Empty;

use crate::Engine;
use crate::spans::list_field;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Worth retrying later (store or database unavailable, throttled…).
    #[error("{message}")]
    Retry {
        message: String,
        after: Option<Duration>,
    },
    /// The other side asked us to slow down (rate limit): run again later
    /// without counting a failed attempt.
    #[error("{message}")]
    Deferred { message: String, after: Duration },
    /// A person must act; retrying will not help.
    #[error("{0}")]
    Permanent(String),
    #[error("not found")]
    NotFound,
    /// Input a person can correct: `field` names what to fix.
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    /// The channel or its connection is switched off.
    #[error("the channel or its connection is disabled")]
    ChannelDisabled,
    #[error("internal error: {0}")]
    Internal(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

fn retry(message: impl Into<String>) -> EngineError {
    EngineError::Retry {
        message: message.into(),
        after: None,
    }
}

impl From<shipsync_db::SqlxError> for EngineError {
    fn from(e: shipsync_db::SqlxError) -> Self {
        EngineError::Db(DbError::from(e))
    }
}

impl From<ShopifyError> for EngineError {
    fn from(e: ShopifyError) -> Self {
        if let ShopifyError::Throttled { retry_after } = &e {
            EngineError::Deferred {
                message: e.to_string(),
                after: *retry_after,
            }
        } else if e.is_retryable() {
            EngineError::Retry {
                after: e.retry_after(),
                message: e.to_string(),
            }
        } else {
            EngineError::Permanent(e.to_string())
        }
    }
}

/// What merging a version did to its shipment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MergeOutcome {
    New,
    Updated,
    Unchanged,
}

/// A user's action on a shipment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShipmentAction {
    Reprocess,
    Reset,
    Archive,
}

/// How soon a shipment whose earlier attempt is undecided looks in the
/// store again (a store can show an applied create a few seconds late).
const LOOK_AGAIN: Duration = Duration::from_secs(2);
const LOOK_AGAIN_MIN: Duration = Duration::from_millis(200);

/// What a shipment waiting for its store's reconnection says.
fn reconnect_wait(c: &ConnectionRow) -> String {
    format!(
        "waiting: connection {} needs reconnecting ({}); the shipment goes out when it is reconnected",
        c.name,
        c.store_error
            .as_deref()
            .unwrap_or("the store refused its credentials")
    )
}

/// What a shipment says, whatever shape it came in: metadata that only some
/// shapes carry (Deposco's id, `updatedDate`, the ship date) is left out, so
/// the same shipment by webhook XML and by the REST pull is "unchanged".
fn content_hash(v: &ShipmentVersion) -> String {
    let mut core = v.clone();
    core.warehouse_id = None;
    core.updated_at = None;
    core.shipped_at = None;
    crate::secrets::hash_bytes(serde_json::to_string(&core).unwrap_or_default().as_bytes())
}

/// True when `new` is older than `current` by their `updatedDate`s.
fn is_older(new: Option<&str>, current: Option<&str>) -> bool {
    match (new, current) {
        (Some(n), Some(c)) => match (n.parse::<jiff::Timestamp>(), c.parse::<jiff::Timestamp>()) {
            (Ok(n), Ok(c)) => n < c,
            _ => n < c,
        },
        _ => false,
    }
}

/// True when `new` would move a shipped shipment back to an earlier
/// warehouse status (`New`, `Shipping`): statuses only move forward, so such
/// a report changes nothing. (`Rolled Back` is not "back": it goes through
/// and becomes an error for a person.)
fn goes_back(stored: &ShipmentVersion, new: &ShipmentVersion) -> bool {
    matches!(new.status, WarehouseStatus::New | WarehouseStatus::Shipping)
        && stored.status == WarehouseStatus::Shipped
}

/// Adds `source` to a shipment's sources, once.
fn add_source(sources: &mut Vec<Source>, source: Source) {
    if !sources.contains(&source) {
        sources.push(source);
    }
}

/// `v` with only a tracking URL the store may be given
/// ([`tracking::trusted_url`]): `signed` says whether the report's origin
/// is authenticated (a verified webhook signature, or the Deposco API).
pub(crate) fn with_trusted_tracking(mut v: ShipmentVersion, signed: bool) -> ShipmentVersion {
    v.tracking_url = tracking::trusted_url(v.tracking_url.as_deref(), signed);
    v
}

impl Engine {
    // ---------- merge ----------

    /// Merges one reported version into its shipment (creating it when new).
    /// Returns the shipment id.
    pub async fn merge_version(
        &self,
        merchant_id: &str,
        version: &ShipmentVersion,
        source: Source,
        event_id: Option<&str>,
    ) -> Result<(String, MergeOutcome), EngineError> {
        let db = self.db();
        let mut tx = db.begin().await?;
        let merged = Self::merge_in(&mut tx, merchant_id, version, source, event_id).await?;
        tx.commit().await?;
        self.save_recipes_seen(merchant_id, version).await?;
        if merged.1 != MergeOutcome::Unchanged {
            self.wake();
        }
        Ok(merged)
    }

    /// Saves the kit recipes a merged version shows.
    async fn save_recipes_seen(
        &self,
        merchant_id: &str,
        version: &ShipmentVersion,
    ) -> Result<(), EngineError> {
        for (kit, comps) in ledger::recipes_seen(version) {
            for (comp, per_kit) in comps {
                recipes::save(
                    self.db().pool(),
                    merchant_id,
                    &kit,
                    &comp,
                    i64::try_from(per_kit).unwrap_or(i64::MAX),
                )
                .await?;
            }
        }
        Ok(())
    }

    /// [`Self::merge_version`] inside `tx`, which the caller commits (one
    /// version, or a whole page of the pull); kit recipes seen in the version
    /// are the caller's to save. Errors other than [`EngineError::Db`] come
    /// before any statement, so `tx` stays usable after them.
    pub(crate) async fn merge_in(
        tx: &mut shipsync_db::Tx<'_>,
        merchant_id: &str,
        version: &ShipmentVersion,
        source: Source,
        event_id: Option<&str>,
    ) -> Result<(String, MergeOutcome), EngineError> {
        let hash = content_hash(version);
        let now = now_micros();
        let existing = shipments::by_number(tx, merchant_id, &version.number).await?;
        let via = if source == Source::Webhook {
            "webhook"
        } else {
            "the scheduled pull"
        };
        let (id, changed, created) = match existing {
            None => {
                let id = new_id("shp");
                shipments::insert(
                    &mut **tx,
                    &ShipmentRow {
                        id: id.clone(),
                        merchant_id: merchant_id.to_string(),
                        number: version.number.clone(),
                        connection_id: None,
                        order_id: None,
                        order_name: version.order_refs.first().cloned().unwrap_or_default(),
                        status: ShipmentStatus::New,
                        error: None,
                        sources: vec![source],
                        first_seen_via: source,
                        version: version.clone(),
                        version_at: version.updated_at.clone(),
                        content_hash: hash.clone(),
                        received_at: now,
                        updated_at: now,
                        completed_at: None,
                    },
                )
                .await?;
                activity::add(
                    &mut **tx,
                    &id,
                    "imported",
                    &format!(
                        "Imported from {via}{}: Deposco shipment {}, {} unit(s) in {} package(s), status {:?}",
                        event_id.map(|e| format!(" (event {e})")).unwrap_or_default(),
                        version.number,
                        version.shipped_units(),
                        version.packages.len(),
                        version.status
                    ),
                )
                .await?;
                (id, true, true)
            }
            Some(mut s) => {
                add_source(&mut s.sources, source);
                let changed = if s.content_hash == hash {
                    activity::add(
                        &mut **tx,
                        &s.id,
                        "received",
                        &format!("Received again from {via}; unchanged"),
                    )
                    .await?;
                    false
                } else if goes_back(&s.version, version) {
                    activity::add(
                        &mut **tx,
                        &s.id,
                        "received",
                        &format!(
                            "Received status {:?} from {via} after Shipped; statuses only move forward: kept the shipped version",
                            version.status
                        ),
                    )
                    .await?;
                    false
                } else if is_older(version.updated_at.as_deref(), s.version_at.as_deref()) {
                    activity::add(
                        &mut **tx,
                        &s.id,
                        "received",
                        &format!(
                            "Received an older version from {via} (updated {}); kept the newer one",
                            version.updated_at.as_deref().unwrap_or("?")
                        ),
                    )
                    .await?;
                    false
                } else {
                    s.version = version.clone();
                    s.version_at = version.updated_at.clone();
                    s.content_hash = hash.clone();
                    if matches!(s.status, ShipmentStatus::Completed | ShipmentStatus::New) {
                        s.status = ShipmentStatus::Open;
                    }
                    activity::add(
                        &mut **tx,
                        &s.id,
                        "updated",
                        &format!(
                            "Updated from {via}: {} unit(s) in {} package(s)",
                            version.shipped_units(),
                            version.packages.len()
                        ),
                    )
                    .await?;
                    true
                };
                s.updated_at = now;
                shipments::update(&mut **tx, &s).await?;
                (s.id, changed, false)
            }
        };
        versions::insert(
            &mut **tx,
            &VersionRow {
                id: new_id("ver"),
                shipment_id: id.clone(),
                event_id: event_id.map(str::to_string),
                source,
                received_at: now,
                content_hash: hash,
                version: version.clone(),
            },
        )
        .await?;
        if changed {
            let job = Job::SyncShipment {
                shipment_id: id.clone(),
            };
            jobs::enqueue(&mut **tx, &job, now).await?;
        }
        let outcome = match (created, changed) {
            (true, _) => MergeOutcome::New,
            (false, true) => MergeOutcome::Updated,
            (false, false) => MergeOutcome::Unchanged,
        };
        Ok((id, outcome))
    }

    /// Job `process_event`: parse a stored delivery and merge what it holds.
    #[tracing::instrument(
        name = "process_event",
        skip_all,
        fields(event = %event_id, merchant = Empty, shipment_number = Empty, shipment = Empty)
    )]
    pub(crate) async fn process_event(&self, event_id: &str) -> Result<(), EngineError> {
        let db = self.db();
        let Some(event) = events::get(db.pool(), event_id).await? else {
            return Ok(());
        };
        let span = tracing::Span::current();
        span.record("merchant", event.merchant_id.as_str());
        let body = event.body.clone().unwrap_or_default();
        let signed = event.verified;
        match shipsync_deposco::parse_webhook(&body) {
            Ok(versions) => {
                let versions: Vec<ShipmentVersion> = versions
                    .into_iter()
                    .map(|v| with_trusted_tracking(v, signed))
                    .collect();
                span.record(
                    "shipment_number",
                    list_field(versions.iter().map(|v| v.number.as_str())),
                );
                // The merges and the event's result in one transaction.
                let mut tx = db.begin().await?;
                let mut ids = Vec::new();
                let mut changed = false;
                for v in &versions {
                    let (id, outcome) = Self::merge_in(
                        &mut tx,
                        &event.merchant_id,
                        v,
                        Source::Webhook,
                        Some(event_id),
                    )
                    .await?;
                    changed |= outcome != MergeOutcome::Unchanged;
                    ids.push(id);
                }
                span.record("shipment", list_field(ids.iter().map(String::as_str)));
                events::set_result(&mut *tx, event_id, EventOutcome::Accepted, None, &ids).await?;
                tx.commit().await?;
                for v in &versions {
                    self.save_recipes_seen(&event.merchant_id, v).await?;
                }
                tracing::debug!(shipments = ids.len(), changed, "event merged");
                if changed {
                    self.wake();
                }
            }
            Err(e) => {
                events::set_result(
                    db.pool(),
                    event_id,
                    EventOutcome::NeedsAttention,
                    Some(&e.to_string()),
                    &[],
                )
                .await?;
            }
        }
        Ok(())
    }

    // ---------- user actions ----------

    pub async fn enqueue_sync(&self, shipment_id: &str) -> Result<(), EngineError> {
        let job = Job::SyncShipment {
            shipment_id: shipment_id.to_string(),
        };
        jobs::enqueue(self.db().pool(), &job, now_micros()).await?;
        self.wake();
        Ok(())
    }

    /// Re-queues every shipment of a merchant still waiting for the store
    /// (after a connection or channel was switched on).
    pub async fn release_waiting(&self, merchant_id: &str) -> Result<usize, EngineError> {
        let ids = shipments::pending_ids(self.db().pool(), merchant_id).await?;
        for id in &ids {
            self.enqueue_sync(id).await?;
        }
        Ok(ids.len())
    }

    pub async fn replay_event(&self, event_id: &str) -> Result<(), EngineError> {
        let db = self.db();
        let event = events::get(db.pool(), event_id)
            .await?
            .ok_or(EngineError::NotFound)?;
        if event.body.is_none() {
            return Err(EngineError::Permanent(
                "this event has no stored body to replay".into(),
            ));
        }
        let job = Job::ProcessEvent {
            event_id: event_id.to_string(),
        };
        jobs::enqueue(db.pool(), &job, now_micros()).await?;
        activity::add(db.pool(), event_id, "replayed", "Replay requested").await?;
        self.wake();
        Ok(())
    }

    pub async fn shipment_action(
        &self,
        id: &str,
        action: ShipmentAction,
    ) -> Result<(), EngineError> {
        let db = self.db();
        let mut s = shipments::get(db.pool(), id)
            .await?
            .ok_or(EngineError::NotFound)?;
        match action {
            ShipmentAction::Archive => {
                s.status = ShipmentStatus::Archived;
                s.updated_at = now_micros();
                shipments::update(db.pool(), &s).await?;
                activity::add(db.pool(), id, "archived", "Archived: no further processing").await?;
            }
            ShipmentAction::Reprocess => {
                s.status = ShipmentStatus::Open;
                s.error = None;
                s.updated_at = now_micros();
                shipments::update(db.pool(), &s).await?;
                activity::add(
                    db.pool(),
                    id,
                    "reprocess",
                    "Reprocess requested: the store will be told whatever it still lacks",
                )
                .await?;
                self.enqueue_sync(id).await?;
            }
            ShipmentAction::Reset => {
                // Re-derive from the stored payloads: re-parse every stored
                // delivery of this shipment and keep the newest version.
                let mut newest: Option<ShipmentVersion> = None;
                for v in versions::of_shipment(db.pool(), id).await? {
                    let stored = || Some(v.version.clone());
                    let parsed = match v.event_id.as_deref() {
                        Some(eid) => match events::get(db.pool(), eid).await? {
                            Some(e) if e.body.is_some() => shipsync_deposco::parse_webhook(
                                e.body.as_deref().unwrap_or_default(),
                            )
                            .ok()
                            .and_then(|vs| vs.into_iter().find(|x| x.number == s.number))
                            .map(|x| with_trusted_tracking(x, e.verified)),
                            // The body was removed by retention (or the
                            // event): the version as it was derived.
                            _ => stored(),
                        },
                        None => stored(),
                    };
                    if let Some(p) = parsed
                        && !newest.as_ref().is_some_and(|n| {
                            is_older(p.updated_at.as_deref(), n.updated_at.as_deref())
                                || (n.status == WarehouseStatus::Shipped
                                    && matches!(
                                        p.status,
                                        WarehouseStatus::New | WarehouseStatus::Shipping
                                    ))
                        })
                    {
                        newest = Some(p);
                    }
                }
                // Then ask Deposco for its current state of the shipment.
                let mut refetched =
                    "not re-fetched: the merchant has no Deposco credentials".to_string();
                if let Some(m) = merchants::get(db.pool(), &s.merchant_id).await?
                    && let Ok(client) = self.deposco_client(&m)
                {
                    refetched = match client.shipment_by_number(&s.number).await {
                        Ok(Some(p)) => {
                            let older = newest.as_ref().is_some_and(|n| {
                                is_older(p.version.updated_at.as_deref(), n.updated_at.as_deref())
                            });
                            if !older {
                                newest = Some(with_trusted_tracking(p.version, true));
                                add_source(&mut s.sources, Source::Poll);
                            }
                            "re-fetched from Deposco".to_string()
                        }
                        Ok(None) => {
                            "Deposco no longer has it; kept the stored payloads".to_string()
                        }
                        Err(e) => format!(
                            "could not re-fetch from Deposco ({e}); used the stored payloads"
                        ),
                    };
                }
                if let Some(v) = newest {
                    s.version_at = v.updated_at.clone();
                    s.content_hash = content_hash(&v);
                    s.version = v;
                }
                s.connection_id = None;
                s.order_id = None;
                s.status = ShipmentStatus::New;
                s.error = None;
                s.completed_at = None;
                s.updated_at = now_micros();
                shipments::update(db.pool(), &s).await?;
                activity::add(db.pool(),
                    id,
                    "reset",
                    &format!("Reset: derived again from the stored payloads, {refetched} (store fulfillments already made are kept)"),
                )
                .await?;
                self.enqueue_sync(id).await?;
            }
        }
        Ok(())
    }

    // ---------- store notification ----------

    /// Saves what a run decided about a shipment (match, status, error,
    /// completion) without undoing what a merge wrote meanwhile: the version,
    /// its hash and the sources are taken from the stored row, and an
    /// archived shipment stays archived. (A run holds the row it read at its
    /// start; saving that whole row would put back the version it replaced.)
    pub(crate) async fn save_run(&self, s: &ShipmentRow) -> Result<(), EngineError> {
        self.save_run_noting(s, None).await
    }

    /// [`Self::save_run`] and, in the same transaction, a line of the
    /// shipment's activity (`kind`, message): one write instead of two.
    pub(crate) async fn save_run_noting(
        &self,
        s: &ShipmentRow,
        note: Option<(&str, &str)>,
    ) -> Result<(), EngineError> {
        let mut tx = self.db().begin().await?;
        let mut row = s.clone();
        if let Some(cur) = shipments::by_number(&mut tx, &s.merchant_id, &s.number).await? {
            row.version = cur.version;
            row.version_at = cur.version_at;
            row.content_hash = cur.content_hash;
            row.sources = cur.sources;
            row.first_seen_via = cur.first_seen_via;
            if cur.status == ShipmentStatus::Archived {
                row.status = cur.status;
            }
        }
        shipments::update(&mut *tx, &row).await?;
        if let Some((kind, message)) = note {
            activity::add(&mut *tx, &s.id, kind, message).await?;
        }
        tx.commit().await?;
        Ok(())
    }

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
        match self.sync_shipment_once(shipment_id).await {
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

    async fn sync_shipment_once(&self, shipment_id: &str) -> Result<(), EngineError> {
        let db = self.db();
        let Some(mut s) = shipments::get(db.pool(), shipment_id).await? else {
            return Ok(());
        };
        let span = tracing::Span::current();
        span.record("shipment_number", s.number.as_str());
        span.record("merchant", s.merchant_id.as_str());
        if s.status == ShipmentStatus::Archived {
            return Ok(());
        }
        let version = s.version.clone();
        let done_rows = fulfillments::of_shipment(db.pool(), shipment_id).await?;
        match &version.status {
            WarehouseStatus::Shipped => {}
            WarehouseStatus::RolledBack if !done_rows.is_empty() => {
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
        let merchant = merchants::get(db.pool(), &s.merchant_id)
            .await?
            .ok_or_else(|| {
                EngineError::Permanent("the merchant of this shipment was deleted".into())
            })?;

        // Which connection and store order?
        if s.connection_id.is_none() || s.order_id.is_none() {
            match self.find_order(&merchant.id, &version).await? {
                Found::One {
                    connection_id,
                    order,
                } => {
                    s.connection_id = Some(connection_id);
                    s.order_id = Some(order.id.clone());
                    s.order_name = order.name.clone();
                    self.save_run_noting(
                        &s,
                        Some(("matched", &format!("Matched store order {}", order.name))),
                    )
                    .await?;
                }
                Found::NoConnection => {
                    return self
                        .wait(&mut s, "waiting: the merchant has no enabled connection; the shipment goes out when one is enabled")
                        .await;
                }
                Found::Reconnect(why) => return self.wait(&mut s, &why).await,
                Found::None => {
                    return Err(retry(format!(
                        "order {} not found in any store of this merchant's enabled connections",
                        refs_text(&version)
                    )));
                }
                Found::Ambiguous(names) => {
                    return Err(EngineError::Permanent(format!(
                        "ambiguous order: {} exists in several stores ({}); archive this shipment or disable the wrong connection, then reprocess",
                        refs_text(&version),
                        names.join(", ")
                    )));
                }
            }
        }
        let (Some(connection_id), Some(order_id)) = (s.connection_id.clone(), s.order_id.clone())
        else {
            return Err(EngineError::Internal(
                "shipment without order after matching".into(),
            ));
        };
        span.record("connection", connection_id.as_str());
        span.record("order", order_id.as_str());
        let connection = connections::get(db.pool(), &connection_id)
            .await?
            .ok_or_else(|| {
                EngineError::Permanent(format!(
                    "connection {connection_id} was deleted; reset this shipment"
                ))
            })?;
        let channel = channels::get(db.pool(), &connection_id, Channel::Shipments).await?;
        if !connection.enabled || channel.is_none_or(|c| !c.enabled) {
            return self
                .wait(&mut s, &format!("waiting: connection {} or its Shipments channel is disabled; the shipment goes out when both are on", connection.name))
                .await;
        }
        if connection.store_status == StoreStatus::ReconnectNeeded {
            return self.wait(&mut s, &reconnect_wait(&connection)).await;
        }
        let (client, settings) = self.inner.stores.client(&connection, self.secrets())?;
        let mut order = client
            .order_for_fulfilling(&order_id)
            .await?
            .ok_or_else(|| {
                EngineError::Permanent(format!(
                    "store order {} no longer exists in the store",
                    s.order_name
                ))
            })?;
        self.record_order(&connection_id, &order).await?;

        // The ledger over every shipment of this order.
        // Order ids are only unique within one store: count the shipments
        // matched to this order through this connection only.
        let siblings = shipments::for_order(db.pool(), &order_id).await?;
        let mut versions: Vec<(String, ShipmentVersion)> = Vec::new();
        for sib in &siblings {
            if sib.id != s.id
                && (sib.status == ShipmentStatus::Archived
                    || sib.connection_id.as_deref() != Some(&connection_id))
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
        let inputs: Vec<ShipmentInput<'_>> = versions
            .iter()
            .map(|(k, v)| ShipmentInput { key: k, version: v })
            .collect();
        let order_lines: Vec<OrderLine> = order
            .line_items
            .iter()
            .map(|l| OrderLine {
                id: l.id.clone(),
                sku: l.sku.clone(),
                quantity: l.quantity,
            })
            .collect();
        let recipes = self.recipes(&merchant.id).await?;
        let policy = merchant.kit_policy;
        let mut recipes = recipes;
        let mut mine = ledger_for(&order_lines, &recipes, policy, &inputs, &s.id)?;
        if mine.is_err()
            && self
                .learn_recipes_from_items(&merchant, &order_lines, &versions, &recipes)
                .await
        {
            // The pull may not say which component belongs to which kit: the
            // warehouse's item data does. Try again with what it taught.
            recipes = self.recipes(&merchant.id).await?;
            mine = ledger_for(&order_lines, &recipes, policy, &inputs, &s.id)?;
        }
        let shares = mine.map_err(|p| EngineError::Permanent(p.message))?;

        // Settle attempts whose outcome is unknown before sending anything.
        let order_rows = fulfillments::of_store_order(db.pool(), &order_id).await?;
        let adopted: BTreeSet<String> = order_rows
            .iter()
            .filter(|r| r.connection_id == connection_id)
            .filter_map(|r| r.store_fulfillment_id.clone())
            .collect();
        let mut rows_now = Vec::new();
        if done_rows
            .iter()
            .any(|r| r.state == FulfillmentState::Pending)
        {
            // Only an attempt whose outcome is unknown needs the store's
            // fulfillments: all of them, through every fulfillment order
            // of the order and the ones the attempts named.
            let mut fo_ids: Vec<String> = order
                .fulfillment_orders
                .iter()
                .map(|fo| fo.id.clone())
                .collect();
            for r in done_rows
                .iter()
                .filter(|r| r.state == FulfillmentState::Pending)
            {
                if !fo_ids.contains(&r.fulfillment_order_id) {
                    fo_ids.push(r.fulfillment_order_id.clone());
                }
            }
            order.fulfillments = client.fulfillments_of(&fo_ids).await?;
        }
        // The earliest time an attempt not found in the store may still show up.
        let mut undecided: Option<i64> = None;
        let hold = i64::try_from(self.unknown_outcome_hold().as_micros()).unwrap_or(i64::MAX);
        for mut r in done_rows {
            if r.state == FulfillmentState::Pending {
                match find_landed(&r, &order, &adopted) {
                    Some(fid) => {
                        r.store_fulfillment_id = Some(fid.clone());
                        r.state = FulfillmentState::Done;
                        fulfillments::update(db.pool(), &r).await?;
                        activity::add(db.pool(), shipment_id, "notified", &format!("An earlier attempt had reached the store: adopted fulfillment {fid}")).await?;
                        rows_now.push(r);
                    }
                    None => {
                        // The store may show an applied create only later:
                        // the record is kept until its send time (when it
                        // was recorded) plus the request timeout plus a
                        // margin has passed.
                        let until = r.created_at.saturating_add(hold);
                        if now_micros() < until {
                            undecided = Some(undecided.map_or(until, |u| u.min(until)));
                        } else {
                            fulfillments::delete(db.pool(), &r.id).await?;
                        }
                    }
                }
            } else {
                rows_now.push(r);
            }
        }
        if let Some(until) = undecided {
            let left = Duration::from_micros(u64::try_from(until - now_micros()).unwrap_or(0));
            return Err(EngineError::Deferred {
                message: format!(
                    "an earlier fulfillment attempt's outcome is unknown and the store does not show it yet; looking again before sending anything (at most {} s more)",
                    left.as_secs() + 1
                ),
                after: left.clamp(LOOK_AGAIN_MIN, LOOK_AGAIN),
            });
        }
        let mut sent: ledger::Sent = BTreeMap::new();
        for r in &rows_now {
            for (line, q) in &r.lines {
                *sent.entry(line.clone()).or_default() += q;
            }
        }
        let todo = ledger::still_to_send(&shares, &sent);
        let overrides = &merchant.carrier_overrides;
        if !todo.is_empty() {
            s.status = ShipmentStatus::Open;
            self.save_run(&s).await?;
            // Packages the store already has on this shipment's fulfillments.
            let told: BTreeSet<String> = rows_now
                .iter()
                .flat_map(|r| r.tracking.iter())
                .map(|(k, _)| k.clone())
                .collect();
            self.send_new(
                &s,
                &version,
                &todo,
                &told,
                &order,
                &connection_id,
                &settings,
                overrides,
                &client,
            )
            .await?;
        }
        self.update_tracking(&s, &version, rows_now, &client, &settings, overrides)
            .await?;

        // Everything acknowledged.
        if s.status != ShipmentStatus::Completed {
            let now = now_micros();
            if s.completed_at.is_none() {
                self.metrics()
                    .ship_to_store((now - s.received_at) as f64 / 1e6);
            }
            s.status = ShipmentStatus::Completed;
            s.error = None;
            s.completed_at = Some(now);
            s.updated_at = now;
            self.save_run_noting(
                &s,
                Some((
                    "completed",
                    "The store has everything this shipment shipped",
                )),
            )
            .await?;
        }
        // The order's state follows what reached the store.
        if let Err(e) = self.order_shipment_done(&connection_id, &order_id).await {
            tracing::warn!(shipment = %shipment_id, error = %e, "order state not updated");
        }
        Ok(())
    }

    async fn wait(&self, s: &mut ShipmentRow, why: &str) -> Result<(), EngineError> {
        if s.error.as_deref() != Some(why) || s.status != ShipmentStatus::New {
            s.status = ShipmentStatus::New;
            s.error = Some(why.to_string());
            s.updated_at = now_micros();
            self.save_run_noting(s, Some(("waiting", why))).await?;
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn send_new(
        &self,
        s: &ShipmentRow,
        version: &ShipmentVersion,
        todo: &[LineShare],
        told: &BTreeSet<String>,
        order: &StoreOrder,
        connection_id: &str,
        settings: &crate::stores::StoreSettings,
        overrides: &BTreeMap<String, String>,
        client: &shipsync_shopify::ShopifyClient,
    ) -> Result<(), EngineError> {
        let db = self.db();
        let fos: Vec<FulfillmentOrderView> = order
            .fulfillment_orders
            .iter()
            .map(|fo| FulfillmentOrderView {
                id: fo.id.clone(),
                status: fo.status.clone(),
                location_id: fo.location_id.clone(),
                line_items: fo
                    .line_items
                    .iter()
                    .map(|li| FoLineItem {
                        id: li.id.clone(),
                        line_item_id: li.line_item_id.clone(),
                        remaining_quantity: li.remaining_quantity,
                    })
                    .collect(),
            })
            .collect();
        // One fulfillment per (fulfillment order, carrier).
        let mut by_carrier: BTreeMap<Option<String>, Vec<&LineShare>> = BTreeMap::new();
        for share in todo {
            by_carrier
                .entry(share.carrier.clone())
                .or_default()
                .push(share);
        }
        // Plan everything first, so that a problem sends nothing.
        let mut plan = Vec::new();
        let mut remaining_fos = fos.clone();
        for (carrier, shares) in &by_carrier {
            let mut needs: BTreeMap<String, u64> = BTreeMap::new();
            for sh in shares {
                *needs.entry(sh.store_line_id.clone()).or_default() += sh.quantity;
            }
            let needs: Vec<(String, u64)> = needs.into_iter().collect();
            let assignments = fulfillment::assign(&needs, &remaining_fos, settings.location_id.as_deref()).map_err(|p| match p {
                FoProblem::Waiting(m) => retry(format!("waiting for the store: {m}")),
                FoProblem::Impossible(m) => EngineError::Permanent(format!(
                    "the store cannot take these quantities: {m}; check the order in the store (was it fulfilled by hand?)"
                )),
            })?;
            for a in &assignments {
                for (item, q) in &a.items {
                    for fo in remaining_fos
                        .iter_mut()
                        .filter(|f| f.id == a.fulfillment_order_id)
                    {
                        for li in fo.line_items.iter_mut().filter(|li| &li.id == item) {
                            li.remaining_quantity = li.remaining_quantity.saturating_sub(*q);
                        }
                    }
                }
            }
            let mut keys: BTreeSet<&String> = shares
                .iter()
                .flat_map(|sh| sh.package_keys.iter())
                .collect();
            // A changed shipment: the new units came in packages the store
            // does not know yet; those already on an earlier fulfillment of
            // this shipment keep their number there. When every package is
            // known (a package that grew), they all stay.
            let new_keys: BTreeSet<&String> = keys
                .iter()
                .copied()
                .filter(|k| !told.contains(*k))
                .collect();
            if !new_keys.is_empty() {
                keys = new_keys;
            }
            let pkg_tracking: Vec<(String, String)> = version
                .packages
                .iter()
                .filter(|p| keys.contains(&p.key))
                .filter_map(|p| {
                    p.tracking_number
                        .clone()
                        .filter(|t| !t.trim().is_empty())
                        .map(|t| (p.key.clone(), t))
                })
                .collect();
            for a in assignments {
                plan.push((carrier.clone(), a, pkg_tracking.clone()));
            }
        }
        for (carrier, a, pkg_tracking) in plan {
            let tracking = self.tracking_for(version, carrier.as_deref(), &pkg_tracking, overrides);
            let now = now_micros();
            let row = StoreFulfillmentRow {
                id: new_id("ful"),
                shipment_id: s.id.clone(),
                connection_id: connection_id.to_string(),
                store_order_id: order.id.clone(),
                fulfillment_order_id: a.fulfillment_order_id.clone(),
                store_fulfillment_id: None,
                carrier: tracking.company.clone().or(carrier.clone()),
                lines: a.store_lines.iter().cloned().collect(),
                items: a.items.iter().cloned().collect(),
                tracking: pkg_tracking.clone(),
                state: FulfillmentState::Pending,
                created_at: now,
                updated_at: now,
            };
            let req = FulfillmentRequest {
                fulfillment_order_id: a.fulfillment_order_id.clone(),
                items: a.items.clone(),
                tracking,
                notify_customer: settings.notify_customer,
            };
            // Recorded just before the request goes out (after any wait
            // for the store's budget), with its send time: if we crash or
            // lose the answer, the next attempt looks in the store before
            // creating anything, for as long as the store may still show
            // it. So it is durable even inside a job's relaxed scope: after
            // a power loss it is still there to be looked for.
            let record = async {
                let mut row = row.clone();
                row.created_at = now_micros();
                row.updated_at = row.created_at;
                shipsync_db::durable(fulfillments::insert(db.pool(), &row))
                    .await
                    .map_err(|e| e.to_string())?;
                // Not a guard: a job stopped mid-call (shutdown) leaves it set.
                self.mutation_started(row.created_at);
                Ok(())
            };
            let created = client
                .fulfillment_create_recorded(&req, Some(Box::pin(record)))
                .await;
            self.mutation_over();
            match created {
                Ok(created) => {
                    let mut row = row;
                    row.store_fulfillment_id = Some(created.id.clone());
                    row.state = FulfillmentState::Done;
                    fulfillments::update(db.pool(), &row).await?;
                    let units: u64 = a.items.iter().map(|(_, q)| q).sum();
                    activity::add(
                        db.pool(),
                        &s.id,
                        "notified",
                        &format!(
                            "Store fulfillment {} created: {} unit(s), tracking {}",
                            created.id,
                            units,
                            if req.tracking.numbers.is_empty() {
                                "none".into()
                            } else {
                                req.tracking.numbers.join(", ")
                            }
                        ),
                    )
                    .await?;
                }
                Err(e @ (ShopifyError::UnknownOutcome { .. } | ShopifyError::Transient { .. })) => {
                    // Maybe applied: keep the pending row; the retry checks the store first.
                    return Err(e.into());
                }
                Err(e) => {
                    fulfillments::delete(db.pool(), &row.id).await?;
                    return Err(e.into());
                }
            }
        }
        Ok(())
    }

    fn tracking_for(
        &self,
        version: &ShipmentVersion,
        carrier: Option<&str>,
        pkg_tracking: &[(String, String)],
        overrides: &BTreeMap<String, String>,
    ) -> Tracking {
        let company = shipsync_deposco::carrier::store_carrier(
            carrier,
            version.service.as_deref(),
            overrides,
        );
        let numbers = tracking::numbers(pkg_tracking);
        // Shopify builds the URL itself for carriers it knows.
        let urls = match (&company, &version.tracking_url) {
            (None, Some(base)) if !base.trim().is_empty() => {
                numbers.iter().map(|n| format!("{base}{n}")).collect()
            }
            _ => Vec::new(),
        };
        Tracking {
            company: company.or_else(|| carrier.map(str::to_string)),
            numbers,
            urls,
        }
    }

    /// Tracking corrections on fulfillments already made for this shipment.
    async fn update_tracking(
        &self,
        s: &ShipmentRow,
        version: &ShipmentVersion,
        rows_now: Vec<StoreFulfillmentRow>,
        client: &shipsync_shopify::ShopifyClient,
        settings: &crate::stores::StoreSettings,
        overrides: &BTreeMap<String, String>,
    ) -> Result<(), EngineError> {
        for mut r in rows_now {
            let Some(fid) = r.store_fulfillment_id.clone() else {
                continue;
            };
            let existing = r.tracking.clone();
            let incoming: Vec<(String, String)> = version
                .packages
                .iter()
                .filter(|p| existing.iter().any(|(k, _)| k == &p.key))
                .filter_map(|p| p.tracking_number.clone().map(|t| (p.key.clone(), t)))
                .collect();
            let merged = tracking::merge(&existing, &incoming);
            if merged == existing {
                continue;
            }
            let tracking = self.tracking_for(version, r.carrier.as_deref(), &merged, overrides);
            client
                .tracking_update(&fid, &tracking, settings.notify_customer)
                .await?;
            r.tracking = merged;
            fulfillments::update(self.db().pool(), &r).await?;
            activity::add(
                self.db().pool(),
                &s.id,
                "tracking",
                &format!(
                    "Tracking of store fulfillment {fid} updated to {}",
                    tracking.numbers.join(", ")
                ),
            )
            .await?;
        }
        Ok(())
    }

    /// Reads kit recipes from Deposco's item data for order lines that are
    /// neither shipped as such nor known kits; true when one was learned.
    /// Best effort: without warehouse credentials or on errors, nothing.
    async fn learn_recipes_from_items(
        &self,
        merchant: &shipsync_db::merchants::MerchantRow,
        order_lines: &[OrderLine],
        versions: &[(String, ShipmentVersion)],
        recipes: &Recipes,
    ) -> bool {
        let shipped: BTreeSet<&str> = versions
            .iter()
            .flat_map(|(_, v)| v.lines.iter().map(|l| l.sku.as_str()))
            .collect();
        let candidates: BTreeSet<&str> = order_lines
            .iter()
            .filter_map(|l| l.sku.as_deref())
            .filter(|sku| !shipped.contains(sku) && !recipes.contains_key(*sku))
            .take(20)
            .collect();
        if candidates.is_empty() {
            return false;
        }
        let Ok(client) = self.deposco_client(merchant) else {
            return false;
        };
        let mut learned = false;
        for sku in candidates {
            match client.item(sku).await {
                Ok(Some(item)) if !item.components.is_empty() => {
                    for c in &item.components {
                        let per_kit = i64::try_from(c.quantity).unwrap_or(i64::MAX);
                        if recipes::save(self.db().pool(), &merchant.id, sku, &c.sku, per_kit)
                            .await
                            .is_ok()
                        {
                            learned = true;
                        }
                    }
                    tracing::info!(kit = sku, "kit recipe read from Deposco item data");
                }
                Ok(_) => {}
                Err(e) => tracing::info!(sku, error = %e, "could not read Deposco item"),
            }
        }
        learned
    }

    async fn recipes(&self, merchant_id: &str) -> Result<Recipes, EngineError> {
        let mut out: Recipes = BTreeMap::new();
        for (kit, comp, per) in recipes::of_merchant(self.db().pool(), merchant_id).await? {
            out.entry(kit)
                .or_default()
                .insert(comp, u64::try_from(per).unwrap_or(0));
        }
        Ok(out)
    }

    async fn record_order(
        &self,
        connection_id: &str,
        order: &StoreOrder,
    ) -> Result<String, EngineError> {
        let lines: Vec<OrderLineRow> = order
            .line_items
            .iter()
            .map(crate::orders::line_row)
            .collect();
        Ok(db_orders::upsert(
            self.db(),
            connection_id,
            &order.id,
            &order.name,
            OrderStatus::Open,
            &lines,
        )
        .await?)
    }

    async fn find_order(
        &self,
        merchant_id: &str,
        version: &ShipmentVersion,
    ) -> Result<Found, EngineError> {
        // The connection whose order it is, when shipsync sent it to Deposco.
        if let Some((connection_id, order)) = self.sent_order_for(merchant_id, version).await? {
            return Ok(Found::One {
                connection_id,
                order,
            });
        }
        let db = self.db();
        let connections: Vec<_> =
            connections::list(db.pool(), Some(&[merchant_id.to_string()]), None, 500)
                .await?
                .into_iter()
                .filter(|c| c.enabled)
                .collect();
        if connections.is_empty() {
            return Ok(Found::NoConnection);
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
            for r in &version.order_refs {
                let bare = r.trim().trim_start_matches('#');
                let name = bare
                    .strip_prefix(c.order_prefix.as_str())
                    .filter(|_| !c.order_prefix.is_empty())
                    .unwrap_or(bare);
                if name.is_empty() {
                    continue;
                }
                // Matching needs the order's id and name only: the sync
                // reads the order itself next.
                let orders = client.find_order_names(name).await?;
                if let Some((id, name)) = orders.into_iter().next() {
                    found.push((c.id.clone(), StoreOrder::named(id, name)));
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

enum Found {
    One {
        connection_id: String,
        order: StoreOrder,
    },
    None,
    NoConnection,
    /// Not found in the stores asked; a store that refused its credentials
    /// was not asked (what the shipment waits for).
    Reconnect(String),
    Ambiguous(Vec<String>),
}

fn refs_text(v: &ShipmentVersion) -> String {
    if v.order_refs.is_empty() {
        "(no order reference)".into()
    } else {
        v.order_refs.join(" / ")
    }
}

/// A store fulfillment matching an attempt whose outcome is unknown: same
/// line quantities and the same tracking numbers, not yet claimed by another
/// attempt.
fn find_landed(
    r: &StoreFulfillmentRow,
    order: &StoreOrder,
    adopted: &BTreeSet<String>,
) -> Option<String> {
    let want_numbers: BTreeSet<String> = r.tracking.iter().map(|(_, n)| n.clone()).collect();
    order
        .fulfillments
        .iter()
        .filter(|f| !adopted.contains(&f.id))
        .find(|f| {
            let mut lines: BTreeMap<String, u64> = BTreeMap::new();
            for (id, q) in &f.line_items {
                *lines.entry(id.clone()).or_default() += q;
            }
            let numbers: BTreeSet<String> =
                f.tracking.iter().filter_map(|t| t.number.clone()).collect();
            lines == r.lines && numbers == want_numbers
        })
        .map(|f| f.id.clone())
}
