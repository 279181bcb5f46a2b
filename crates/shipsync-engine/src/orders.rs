//! The Sales Orders channel: pull paid, unfulfilled store orders changed
//! since the channel's cursor, create each in Deposco exactly once, and
//! follow it through the warehouse (open → partially shipped → shipped).
//!
//! Exactly once: an order is recorded (with its push job, in one
//! transaction) before anything is sent; the push looks the Deposco number
//! up before creating it and adopts what it finds, so a repeated run, a
//! retried job or a crash between Deposco's answer and our record never makes
//! a second Deposco order. A refusal by Deposco (unknown item, field too
//! long, …) puts the order in `error` with Deposco's message; nothing is
//! retried until a person fixes the cause and asks to `reprocess`.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};
use shipsync_core::ShipmentVersion;
use shipsync_core::ledger::{self, OrderLine, ShipmentInput};
use shipsync_core::states::{
    Channel, FulfillmentState, OrderStatus, RunStatus, ShipmentStatus, StoreStatus,
};
use shipsync_db::connections::{self, ConnectionRow};
use shipsync_db::jobs::{self, Job};
use shipsync_db::orders::{self as db_orders, OrderLineRow, OrderRecord};
use shipsync_db::{
    activity, channels, fulfillments, merchants, new_id, now_micros, recipes, runs, shipments,
};
use shipsync_deposco::api::DeposcoError;
use shipsync_shopify::{ShippingAddress, StoreLineItem, StoreOrder, StoreOrderForWarehouse};
use tracing::field::Empty;

use crate::Engine;
use crate::pipeline::EngineError;
use crate::runs::{Progress, RunCounts};

/// Deposco takes at most this many lines per sales order.
const MAX_LINES: usize = 100;

/// Orders of a connection still `queued` that a run re-queues at its end
/// (after the connection or channel was off, say).
const REQUEUE_LIMIT: i64 = 500;

/// A user's action on an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderAction {
    /// error (or still queued) → queued, and send again.
    Reprocess,
    /// Stop all processing of it.
    Archive,
}

/// One line of an order with what happened to it, for the API.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct OrderLineView {
    pub id: String,
    pub sku: Option<String>,
    pub name: Option<String>,
    /// Units ordered (after store-side removals).
    pub quantity: u64,
    /// Units sent to the warehouse.
    pub sent_quantity: u64,
    /// Units the warehouse reported shipped (kit lines in kits).
    pub shipped_quantity: u64,
    /// Units fulfilled in the store by shipsync.
    pub fulfilled_quantity: u64,
    /// Shopify bundle (line item group) title, when the line is part of one.
    pub group: Option<String>,
    /// Kit components (SKU and units per kit) when the SKU is a known kit.
    pub kit: Option<Vec<KitComponentView>>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KitComponentView {
    pub sku: String,
    pub quantity: u64,
}

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
    }
}

/// The Deposco order number of a store order: the name without `#`, after
/// the connection's prefix.
pub fn warehouse_number(prefix: &str, name: &str) -> String {
    format!("{prefix}{}", name.trim().trim_start_matches('#'))
}

/// Deposco's `shipVia` / `shipMethod` for a store shipping-line title. Known
/// titles map to Deposco's usual service levels; anything else is passed
/// through as it is (assumed; adjust here when a warehouse names its methods
/// differently).
pub fn ship_method(title: &str) -> (String, String) {
    const TABLE: &[(&[&str], &str, &str)] = &[
        (
            &[
                "standard",
                "standard shipping",
                "economy",
                "ground",
                "free shipping",
            ],
            "Ground",
            "Standard",
        ),
        (
            &["express", "express shipping", "expedited", "priority"],
            "Expedited",
            "Expedited",
        ),
        (
            &["2 day", "2-day", "two day", "second day", "2nd day"],
            "2nd Day Air",
            "2 Day",
        ),
        (
            &["overnight", "next day", "next day air", "1 day"],
            "Next Day Air",
            "Overnight",
        ),
    ];
    let key = title.trim().to_lowercase();
    TABLE
        .iter()
        .find(|(titles, _, _)| titles.contains(&key.as_str()))
        .map(|(_, via, method)| ((*via).to_string(), (*method).to_string()))
        .unwrap_or_else(|| (title.trim().to_string(), title.trim().to_string()))
}

fn insert_some(map: &mut Map<String, Value>, key: &str, value: Option<&String>) {
    if let Some(v) = value.filter(|v| !v.trim().is_empty()) {
        map.insert(key.to_string(), json!(v));
    }
}

fn person_name(a: &ShippingAddress) -> Option<String> {
    a.name.clone().or_else(|| {
        let parts: Vec<&str> = [&a.first_name, &a.last_name]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .collect();
        (!parts.is_empty()).then(|| parts.join(" "))
    })
}

/// The `SalesOrderDTO` shipsync posts for a store order; `Err` says what a
/// person must fix first.
pub fn sales_order_dto(
    number: &str,
    business_unit: &str,
    o: &StoreOrderForWarehouse,
) -> Result<Value, String> {
    let a = o.shipping_address.as_ref().ok_or_else(|| {
        format!(
            "store order {} has no shipping address; Deposco needs one to ship it: add it in the store, then reprocess",
            o.name
        )
    })?;
    let name = person_name(a).or_else(|| a.company.clone());
    let mut contact = Map::new();
    insert_some(&mut contact, "name", name.as_ref());
    insert_some(&mut contact, "firstName", a.first_name.as_ref());
    insert_some(&mut contact, "lastName", a.last_name.as_ref());
    insert_some(&mut contact, "companyName", a.company.as_ref());
    insert_some(&mut contact, "email", o.email.as_ref());
    insert_some(&mut contact, "phone", a.phone.as_ref());
    let mut address = Map::new();
    insert_some(&mut address, "name", name.as_ref());
    insert_some(&mut address, "companyName", a.company.as_ref());
    insert_some(&mut address, "addressLine1", a.address1.as_ref());
    insert_some(&mut address, "addressLine2", a.address2.as_ref());
    insert_some(&mut address, "city", a.city.as_ref());
    insert_some(
        &mut address,
        "stateProvince",
        a.province_code.as_ref().or(a.province.as_ref()),
    );
    insert_some(&mut address, "postalCode", a.zip.as_ref());
    insert_some(
        &mut address,
        "country",
        a.country_code.as_ref().or(a.country.as_ref()),
    );
    insert_some(&mut address, "phone", a.phone.as_ref());
    insert_some(&mut address, "email", o.email.as_ref());
    if !address.contains_key("addressLine1") {
        return Err(format!(
            "the shipping address of store order {} has no street line; fix it in the store, then reprocess",
            o.name
        ));
    }
    let mut lines = Vec::new();
    for l in o.line_items.iter().filter(|l| l.quantity > 0) {
        let sku = l.sku.as_deref().filter(|s| !s.trim().is_empty()).ok_or_else(|| {
            format!(
                "line \"{}\" of store order {} has no SKU, so Deposco cannot know the item: give the variant a SKU in the store, then reprocess",
                l.name, o.name
            )
        })?;
        lines.push(json!({
            "lineNumber": (lines.len() + 1).to_string(),
            "item": {"businessKey": {"number": sku}},
            "pack": {"type": "Each", "quantity": 1},
            "orderPackQuantity": l.quantity,
            "customerLineNumber": l.id,
        }));
    }
    if lines.is_empty() {
        return Err(format!(
            "store order {} has nothing left to ship (every line was removed)",
            o.name
        ));
    }
    if lines.len() > MAX_LINES {
        return Err(format!(
            "store order {} has {} lines; Deposco takes at most {MAX_LINES} per order",
            o.name,
            lines.len()
        ));
    }
    let mut dto = Map::new();
    dto.insert(
        "businessUnit".into(),
        json!({"businessKey": {"code": business_unit}}),
    );
    dto.insert("number".into(), json!(number));
    dto.insert("customerOrderNumber".into(), json!(o.name));
    dto.insert("orderStatus".into(), json!("New"));
    dto.insert("shipToContact".into(), Value::Object(contact));
    dto.insert("shipToAddress".into(), Value::Object(address));
    if let Some(title) = o
        .shipping_method
        .as_deref()
        .filter(|t| !t.trim().is_empty())
    {
        let (via, method) = ship_method(title);
        dto.insert("shipVia".into(), json!(via));
        dto.insert("shipMethod".into(), json!(method));
    }
    dto.insert("orderLines".into(), Value::Array(lines));
    Ok(Value::Object(dto))
}

/// Deposco's id of a sales order it answered with.
fn deposco_id(record: &Value) -> Option<String> {
    let text = |v: Option<&Value>| match v {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    text(record.pointer("/self/id")).or_else(|| text(record.get("id")))
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
        let mut run = runs::get(db.pool(), run_id)
            .await?
            .ok_or(EngineError::NotFound)?;
        let span = tracing::Span::current();
        span.record("connection", run.connection_id.as_str());
        span.record("channel", run.channel.as_str());
        let mut counts = RunCounts::of(&run)?;
        if matches!(run.status, RunStatus::Succeeded | RunStatus::Failed) {
            return Ok(counts);
        }
        let connection = connections::get(db.pool(), &run.connection_id)
            .await?
            .ok_or_else(|| {
                EngineError::Permanent("the connection of this run was deleted".into())
            })?;
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
        if o.status != OrderStatus::Queued || o.warehouse_id.is_some() {
            // Sent already, waiting for a person, or archived.
            return Ok(());
        }
        let connection = connections::get(db.pool(), &o.connection_id)
            .await?
            .ok_or_else(|| {
                EngineError::Permanent("the connection of this order was deleted".into())
            })?;
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
        let merchant = merchants::get(db.pool(), &connection.merchant_id)
            .await?
            .ok_or_else(|| {
                EngineError::Permanent("the merchant of this order was deleted".into())
            })?;
        span.record("merchant", merchant.id.as_str());
        let store: StoreOrderForWarehouse = o
            .store_json
            .as_deref()
            .and_then(|j| serde_json::from_str(j).ok())
            .ok_or_else(|| {
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
        let dto = match sales_order_dto(&number, business_unit, &store) {
            Ok(dto) => dto,
            Err(why) => return self.order_error(order_id, &why).await,
        };
        let client = self.deposco_client(&merchant)?;
        // Idempotent: an earlier attempt may have reached Deposco (its answer
        // lost, or a crash before it was recorded): adopt it.
        if let Some(existing) = client.sales_order_by_number(&number).await? {
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
        o.warehouse_number = Some(number.to_string());
        o.warehouse_id = warehouse_id.clone().or(Some(String::new()));
        o.sent_at = Some(now);
        o.updated_at = now;
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
        tx.commit().await?;
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
        o.status = OrderStatus::Error;
        o.error = Some(why.to_string());
        o.updated_at = now_micros();
        db_orders::update(&mut *tx, &o).await?;
        activity::add(&mut *tx, order_id, "failed", why).await?;
        tx.commit().await?;
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

    /// `reprocess` (error → queued, send again) or `archive`.
    pub async fn order_action(&self, id: &str, action: OrderAction) -> Result<(), EngineError> {
        let mut tx = self.db().begin().await?;
        let mut o = db_orders::get_for_update(&mut tx, id)
            .await?
            .ok_or(EngineError::NotFound)?;
        let now = now_micros();
        match action {
            OrderAction::Archive => {
                if o.status != OrderStatus::Archived {
                    o.status = OrderStatus::Archived;
                    o.updated_at = now;
                    db_orders::update(&mut *tx, &o).await?;
                    activity::add(&mut *tx, id, "archived", "Archived: no further processing")
                        .await?;
                }
            }
            OrderAction::Reprocess => {
                if !matches!(
                    o.status,
                    OrderStatus::Error | OrderStatus::Queued | OrderStatus::New
                ) {
                    return Err(EngineError::Permanent(format!(
                        "order {} is {}: only an order in error (or still waiting to be sent) can be reprocessed",
                        o.name, o.status
                    )));
                }
                if o.store_json.is_none() {
                    return Err(EngineError::Permanent(format!(
                        "order {} was not pulled by the Sales Orders channel; there is nothing to send",
                        o.name
                    )));
                }
                o.status = OrderStatus::Queued;
                o.error = None;
                o.updated_at = now;
                db_orders::update(&mut *tx, &o).await?;
                activity::add(
                    &mut *tx,
                    id,
                    "reprocess",
                    "Reprocess requested: it will be sent to Deposco again",
                )
                .await?;
                enqueue_push_tx(&mut tx, id, now).await?;
            }
        }
        tx.commit().await?;
        self.wake();
        Ok(())
    }

    /// The order's lines with ordered, sent, shipped and fulfilled units.
    pub async fn order_lines(&self, o: &OrderRecord) -> Result<Vec<OrderLineView>, EngineError> {
        let db = self.db();
        let stored = &o.lines;
        let mut fulfilled: BTreeMap<String, u64> = BTreeMap::new();
        for f in fulfillments::of_store_order(db.pool(), &o.store_order_id).await? {
            if f.connection_id != o.connection_id || f.state != FulfillmentState::Done {
                continue;
            }
            for (line, q) in f.lines {
                *fulfilled.entry(line).or_default() += q;
            }
        }
        let merchant = match connections::get(db.pool(), &o.connection_id).await? {
            Some(c) => merchants::get(db.pool(), &c.merchant_id).await?,
            None => None,
        };
        let mut recipes: ledger::Recipes = BTreeMap::new();
        if let Some(m) = &merchant {
            for (kit, comp, per) in recipes::of_merchant(db.pool(), &m.id).await? {
                recipes
                    .entry(kit)
                    .or_default()
                    .insert(comp, u64::try_from(per).unwrap_or(0));
            }
        }
        let policy = merchant.as_ref().map(|m| m.kit_policy).unwrap_or_default();
        let versions: Vec<(String, ShipmentVersion)> =
            shipments::for_order(db.pool(), &o.store_order_id)
                .await?
                .into_iter()
                .filter(|s| {
                    s.status != ShipmentStatus::Archived
                        && s.connection_id.as_deref() == Some(&o.connection_id)
                })
                .map(|s| (s.id, s.version))
                .collect();
        let order_lines: Vec<OrderLine> = stored
            .iter()
            .map(|l| OrderLine {
                id: l.id.clone(),
                sku: l.sku.clone(),
                quantity: l.quantity,
            })
            .collect();
        let inputs: Vec<ShipmentInput<'_>> = versions
            .iter()
            .map(|(k, v)| ShipmentInput { key: k, version: v })
            .collect();
        let mut shipped: BTreeMap<String, u64> = BTreeMap::new();
        for result in ledger::attribute(&order_lines, &recipes, policy, &inputs) {
            for share in result.result.unwrap_or_default() {
                *shipped.entry(share.store_line_id).or_default() += share.quantity;
            }
        }
        let sent = o.warehouse_number.is_some();
        Ok(stored
            .iter()
            .map(|l| {
                let kit = l.sku.as_ref().and_then(|s| recipes.get(s)).map(|comps| {
                    comps
                        .iter()
                        .map(|(sku, q)| KitComponentView {
                            sku: sku.clone(),
                            quantity: *q,
                        })
                        .collect()
                });
                let fulfilled_quantity = fulfilled.get(&l.id).copied().unwrap_or(0);
                OrderLineView {
                    sent_quantity: if sent { l.quantity } else { 0 },
                    shipped_quantity: shipped
                        .get(&l.id)
                        .copied()
                        .unwrap_or(0)
                        .max(fulfilled_quantity),
                    fulfilled_quantity,
                    id: l.id.clone(),
                    sku: l.sku.clone(),
                    name: l.name.clone(),
                    quantity: l.quantity,
                    group: l.group.clone(),
                    kit,
                }
            })
            .collect())
    }

    /// After a shipment of a store order reached the store: move the local
    /// order to `partially_shipped` or `shipped` (never back).
    pub(crate) async fn order_shipment_done(
        &self,
        connection_id: &str,
        store_order_id: &str,
    ) -> Result<(), EngineError> {
        let db = self.db();
        let Some(o) = db_orders::of_store_order(db.pool(), connection_id, store_order_id).await?
        else {
            return Ok(());
        };
        if o.status.is_settled() {
            return Ok(());
        }
        let lines = self.order_lines(&o).await?;
        let ordered: u64 = lines.iter().map(|l| l.quantity).sum();
        let shipped: u64 = lines
            .iter()
            .map(|l| l.shipped_quantity.min(l.quantity))
            .sum();
        let status = if ordered > 0 && lines.iter().all(|l| l.shipped_quantity >= l.quantity) {
            OrderStatus::Shipped
        } else if lines.iter().any(|l| l.shipped_quantity > 0) {
            OrderStatus::PartiallyShipped
        } else {
            return Ok(());
        };
        if status == o.status {
            return Ok(());
        }
        let mut tx = db.begin().await?;
        let Some(mut o) = db_orders::get_for_update(&mut tx, &o.id).await? else {
            return Ok(());
        };
        if o.status.is_settled() {
            return Ok(());
        }
        o.status = status;
        o.error = None;
        o.updated_at = now_micros();
        db_orders::update(&mut *tx, &o).await?;
        let message = if status == OrderStatus::Shipped {
            format!("Shipped in full: {shipped} of {ordered} unit(s)")
        } else {
            format!("Partially shipped: {shipped} of {ordered} unit(s)")
        };
        activity::add(&mut *tx, &o.id, status.as_str(), &message).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The order shipsync sent to Deposco that a shipment names, when
    /// exactly one connection of the merchant has it: its connection and the
    /// store order (id and name; the caller reads the rest from the store).
    pub(crate) async fn sent_order_for(
        &self,
        merchant_id: &str,
        version: &ShipmentVersion,
    ) -> Result<Option<(String, StoreOrder)>, EngineError> {
        let rows = db_orders::sent_for_refs(self.db(), merchant_id, &version.order_refs).await?;
        let targets: BTreeSet<(&str, &str)> = rows
            .iter()
            .map(|r| (r.connection_id.as_str(), r.store_order_id.as_str()))
            .collect();
        if targets.len() != 1 {
            return Ok(None);
        }
        let r = &rows[0];
        Ok(Some((
            r.connection_id.clone(),
            StoreOrder::named(r.store_order_id.clone(), r.name.clone()),
        )))
    }
}

async fn enqueue_push_tx(
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

#[cfg(test)]
mod tests {
    use super::*;
    use shipsync_shopify::StoreLineItem;

    fn order() -> StoreOrderForWarehouse {
        StoreOrderForWarehouse {
            id: "gid://shopify/Order/1".into(),
            name: "#1001".into(),
            updated_at: None,
            email: Some("jo@example.com".into()),
            shipping_address: Some(ShippingAddress {
                first_name: Some("Jo".into()),
                last_name: Some("Doe".into()),
                address1: Some("1 Main St".into()),
                city: Some("Springfield".into()),
                province_code: Some("IL".into()),
                zip: Some("62701".into()),
                country_code: Some("US".into()),
                ..Default::default()
            }),
            shipping_method: Some("Express".into()),
            line_items: vec![
                StoreLineItem {
                    id: "gid://shopify/LineItem/7".into(),
                    sku: Some("A".into()),
                    name: "A".into(),
                    quantity: 2,
                    group: None,
                },
                StoreLineItem {
                    id: "gid://shopify/LineItem/8".into(),
                    sku: Some("B".into()),
                    name: "B".into(),
                    quantity: 0,
                    group: None,
                },
                StoreLineItem {
                    id: "gid://shopify/LineItem/9".into(),
                    sku: Some("C".into()),
                    name: "C".into(),
                    quantity: 1,
                    group: None,
                },
            ],
        }
    }

    #[test]
    fn the_dto_carries_the_references_shipments_come_back_with() {
        let dto = sales_order_dto("PFX1001", "ACME", &order()).unwrap();
        assert_eq!(dto["number"], "PFX1001");
        assert_eq!(dto["customerOrderNumber"], "#1001");
        assert_eq!(dto["orderStatus"], "New");
        assert_eq!(dto["businessUnit"]["businessKey"]["code"], "ACME");
        assert_eq!(dto["shipToContact"]["name"], "Jo Doe");
        assert_eq!(dto["shipToAddress"]["addressLine1"], "1 Main St");
        assert_eq!(dto["shipToAddress"]["stateProvince"], "IL");
        assert_eq!(dto["shipVia"], "Expedited");
        let lines = dto["orderLines"].as_array().unwrap();
        // The removed line (quantity 0) is not sent; numbering has no gap.
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["lineNumber"], "1");
        assert_eq!(lines[0]["item"]["businessKey"]["number"], "A");
        assert_eq!(lines[0]["orderPackQuantity"], 2);
        assert_eq!(lines[0]["customerLineNumber"], "gid://shopify/LineItem/7");
        assert_eq!(lines[1]["lineNumber"], "2");
        assert_eq!(lines[1]["customerLineNumber"], "gid://shopify/LineItem/9");
    }

    #[test]
    fn what_deposco_cannot_take_is_refused_with_a_reason() {
        let mut o = order();
        o.line_items[0].sku = None;
        assert!(
            sales_order_dto("1001", "ACME", &o)
                .unwrap_err()
                .contains("has no SKU")
        );
        let mut o = order();
        o.shipping_address = None;
        assert!(
            sales_order_dto("1001", "ACME", &o)
                .unwrap_err()
                .contains("no shipping address")
        );
    }

    #[test]
    fn ship_methods_map_known_titles_and_pass_others_through() {
        assert_eq!(
            ship_method(" Standard Shipping "),
            ("Ground".into(), "Standard".into())
        );
        assert_eq!(
            ship_method("Overnight"),
            ("Next Day Air".into(), "Overnight".into())
        );
        assert_eq!(
            ship_method("UPS Ground"),
            ("UPS Ground".into(), "UPS Ground".into())
        );
        assert_eq!(warehouse_number("PFX", "#1001"), "PFX1001");
        assert_eq!(warehouse_number("", "1001"), "1001");
    }
}
