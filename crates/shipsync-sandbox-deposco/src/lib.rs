//! A Deposco sandbox: the REST API shipsync reads (shipments, sales orders,
//! items, OAuth tokens, paging, rate limits) and the shipment webhooks
//! Deposco sends, in every shape shipsync accepts.
//!
//! It is an independent implementation written from `docs/deposco.md` and the
//! fixtures; it shares no code with `shipsync-deposco`, so that the two can
//! disagree when one of them is wrong.
//!
//! HTTP surface of [`DeposcoSandbox::router`] (REST paths at the root of the base URL):
//!
//! | path | notes |
//! |---|---|
//! | `POST /oauth2/token` | form `grant_type=refresh_token`, `refresh_token`, `client_id`, `client_secret` (or Basic) |
//! | `GET /shipments/outboundShipments` | filters, `pageSize` ≤ 100, `searchId` + `page`, newest first |
//! | `GET /shipments/outboundShipments/{id}` | nested `shipmentLines` truncated to 10 |
//! | `GET /shipments/outboundShipments/{id}/shipmentLines` | paged |
//! | `POST/GET /orders/salesOrders`, `GET …/{id}`, `GET …/{id}/orderLines` | create-or-update by `number` (adds lines, raises quantities; lowering is refused) |
//! | `GET/POST /orders/salesOrders/{id}/status` | `{"orderStatus"}`; `?value=New\|Hold\|Canceled` within Deposco's transitions |
//! | `POST /orders/salesOrders/{id}/cancellations` | whole order, lines, or part of a line, while the status allows it |
//! | `GET /items/{number}`, `GET /items?number=` | kit `components[]` |
//! | `/_sandbox/shipments`, `/_sandbox/shipments/{number}/webhook`, `…/render?shape=`, `/_sandbox/faults`, `/_sandbox/items`, `/_sandbox/sales_orders`, `/_sandbox/sales_orders/{number}/status` | control; no auth, not counted |
//!
//! Sales orders follow Deposco's lifecycle (module `lifecycle`, from
//! `shared/docs/orders-lifecycle.md`): the API refuses, with 400 and
//! Deposco's kind of message, what Deposco refuses in the order's status;
//! the warehouse control moves an order to any status, and `Shipped`
//! shipments of an order raise its lines' shipped quantities and move it to
//! Partially Shipped or Ship Complete.
//!
//! Every REST and token request is counted, may be slowed or failed by
//! [`Faults`], is rate limited per account (429, `Retry-After: 1`, empty
//! body), and (except the token endpoint) needs Basic or Bearer auth (401).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use shipsync_sandbox_deposco::*;
//! let sandbox = DeposcoSandbox::new(SandboxConfig::default());
//! let shipment = sandbox.add_shipment(ShipmentSpec::example_simple());
//! let running = sandbox.clone().start("127.0.0.1:0".parse()?).await?;
//! let reply = sandbox
//!     .post_webhook(&shipment.number, "http://127.0.0.1:8080/webhooks/deposco/mer_1", Shape::Xml,
//!                   Signing::Standard { secret: "whsec_…".into() })
//!     .await?;
//! # drop(running); Ok(()) }
//! ```

mod api;
mod config;
mod error;
mod lifecycle;
mod node;
mod orders;
mod render;
mod signing;
mod spec;
mod webhook;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use jiff::{SignedDuration, Timestamp};

pub use config::{BasicAuth, Faults, OAuthClient, SandboxConfig};
pub use error::Error;
pub use orders::{SalesOrderLine, SalesOrderRecord};
pub use render::{QuantityStyle, Shape};
pub use signing::{Signing, sign_body_hmac, sign_standard, signing_key};
pub use spec::{
    ComponentSpec, ItemSpec, KitSpec, LineSpec, PackageSpec, ShipmentRecord, ShipmentSpec,
};
pub use webhook::{SentWebhook, WebhookRequest, WebhookResponse};

use render::Renderer;

/// The sandbox. Cheap to clone; all clones share one state.
#[derive(Clone)]
pub struct DeposcoSandbox {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    http: reqwest::Client,
}

pub(crate) struct State {
    pub config: SandboxConfig,
    pub faults: Faults,
    pub shipments: Vec<ShipmentRecord>,
    pub next_seq: u64,
    pub items: BTreeMap<String, ItemSpec>,
    pub sales_orders: Vec<SalesOrderRecord>,
    pub tokens: HashMap<String, Timestamp>,
    pub searches: HashMap<String, api::Search>,
    pub bucket: Option<(f64, Instant)>,
    pub request_count: u64,
    pub rate_limited_count: u64,
}

impl State {
    pub(crate) fn renderer(&self) -> Renderer<'_> {
        Renderer::new(
            &self.config.business_unit,
            self.config.quantities,
            self.config.mirror_collapse_single,
        )
    }

    pub(crate) fn shipment_by_number(&self, number: &str) -> Option<&ShipmentRecord> {
        self.shipments.iter().find(|s| s.number == number)
    }

    /// The shipments of sales order `order_number` changed: its lines'
    /// shipped quantities are what its `Shipped` shipments carry, and its
    /// status follows.
    fn shipments_changed(&mut self, order_number: &str) {
        let Some(order) = self
            .sales_orders
            .iter_mut()
            .find(|o| o.number == order_number)
        else {
            return;
        };
        let shipped = orders::shipped_units(
            self.shipments
                .iter()
                .filter(|s| s.spec.order_number == order_number)
                .map(|s| &s.spec),
        );
        for line in &mut order.lines {
            line.shipped_quantity = shipped.get(&line.line_number).copied().unwrap_or(0.0);
        }
        lifecycle::shipped_changed(order);
    }

    fn sales_order_mut(&mut self, number: &str) -> Result<&mut SalesOrderRecord, Error> {
        self.sales_orders
            .iter_mut()
            .find(|o| o.number == number)
            .ok_or_else(|| Error::UnknownSalesOrder(number.to_owned()))
    }
}

/// Now, to the second (Deposco's dates have no fractions).
pub(crate) fn now() -> Timestamp {
    Timestamp::from_second(Timestamp::now().as_second()).unwrap_or(Timestamp::UNIX_EPOCH)
}

impl DeposcoSandbox {
    pub fn new(config: SandboxConfig) -> Self {
        let state = State {
            config,
            faults: Faults::default(),
            shipments: Vec::new(),
            next_seq: 1,
            items: BTreeMap::new(),
            sales_orders: Vec::new(),
            tokens: HashMap::new(),
            searches: HashMap::new(),
            bucket: None,
            request_count: 0,
            rate_limited_count: 0,
        };
        Self {
            inner: Arc::new(Inner {
                state: Mutex::new(state),
                http: webhook::http_client(),
            }),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind; keep serving.
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The REST API, the token endpoint and the `/_sandbox` control endpoints.
    pub fn router(&self) -> axum::Router {
        api::router(self.clone())
    }

    /// Serves [`Self::router`] on `addr` (port 0 picks a free one) until the
    /// returned handle is dropped or shut down.
    pub async fn start(self, addr: SocketAddr) -> std::io::Result<RunningDeposco> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let app = self.router();
        let task = tokio::spawn(async move {
            let shutdown = async {
                let _ = rx.await;
            };
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::warn!(error = %e, "deposco sandbox stopped");
            }
        });
        Ok(RunningDeposco {
            url: format!("http://{addr}"),
            addr,
            sandbox: self,
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    pub fn config(&self) -> SandboxConfig {
        self.lock().config.clone()
    }

    /// Stores a shipment for the REST API; assigns `self.id`, the `SHP-…`
    /// number and the dates (unless the spec fixes them).
    pub fn add_shipment(&self, spec: ShipmentSpec) -> ShipmentRecord {
        let mut state = self.lock();
        let seq = state.next_seq;
        state.next_seq += 1;
        let created = spec.created_date.unwrap_or_else(now);
        let updated = spec.updated_date.unwrap_or(created);
        let record = ShipmentRecord {
            id: 558_200 + seq,
            number: format!("SHP-{}", 100_000 + seq),
            spec,
            created_date: created,
            updated_date: updated,
        };
        state.shipments.push(record.clone());
        state.shipments_changed(&record.spec.order_number);
        record
    }

    /// Changes a stored shipment. `updatedDate` moves forward (at least one
    /// second past its previous value, so cursors see the change) unless
    /// `f` sets `updated_date` itself.
    pub fn update_shipment(
        &self,
        number: &str,
        f: impl FnOnce(&mut ShipmentSpec),
    ) -> Option<ShipmentRecord> {
        let mut state = self.lock();
        let record = state.shipments.iter_mut().find(|s| s.number == number)?;
        let before = record.spec.updated_date;
        let before_order = record.spec.order_number.clone();
        f(&mut record.spec);
        record.updated_date = match record.spec.updated_date {
            Some(explicit) if Some(explicit) != before => explicit,
            _ => {
                let bumped = record
                    .updated_date
                    .checked_add(SignedDuration::from_secs(1))
                    .unwrap_or(record.updated_date);
                now().max(bumped)
            }
        };
        record.spec.updated_date = Some(record.updated_date);
        let record = record.clone();
        if before_order != record.spec.order_number {
            state.shipments_changed(&before_order);
        }
        state.shipments_changed(&record.spec.order_number);
        Some(record)
    }

    pub fn shipment(&self, number: &str) -> Option<ShipmentRecord> {
        self.lock().shipment_by_number(number).cloned()
    }

    /// All stored shipments, oldest first.
    pub fn shipments(&self) -> Vec<ShipmentRecord> {
        self.lock().shipments.clone()
    }

    /// The webhook body for shipment `number` in `shape`.
    pub fn render(&self, number: &str, shape: Shape) -> Option<Vec<u8>> {
        let state = self.lock();
        let record = state.shipment_by_number(number)?;
        Some(state.renderer().body(record, shape))
    }

    /// Several shipments in one body: `{"data":[…]}`, one `<shipments>`
    /// document, or one mirror. `None` if any number is unknown.
    pub fn render_batch(&self, numbers: &[&str], shape: Shape) -> Option<Vec<u8>> {
        let state = self.lock();
        let records = numbers
            .iter()
            .map(|n| state.shipment_by_number(n).cloned())
            .collect::<Option<Vec<_>>>()?;
        Some(state.renderer().batch_body(&records, shape))
    }

    /// A ready-to-send delivery of shipment `number` (adjust id, timestamp or headers before sending).
    pub fn webhook_request(
        &self,
        number: &str,
        shape: Shape,
        signing: Signing,
    ) -> Result<WebhookRequest, Error> {
        let body = self
            .render(number, shape)
            .ok_or_else(|| Error::UnknownShipment(number.to_owned()))?;
        Ok(WebhookRequest::raw(body, shape.content_type()).signed(signing))
    }

    /// Renders shipment `number` in `shape`, signs it and POSTs it to `target_url`.
    pub async fn post_webhook(
        &self,
        number: &str,
        target_url: &str,
        shape: Shape,
        signing: Signing,
    ) -> Result<WebhookResponse, Error> {
        let request = self.webhook_request(number, shape, signing)?;
        self.send_webhook(target_url, request).await
    }

    /// Sends any delivery (raw bytes, fixed id, extra headers); subject to the drop fault.
    pub async fn send_webhook(
        &self,
        target_url: &str,
        request: WebhookRequest,
    ) -> Result<WebhookResponse, Error> {
        self.resend_webhook(target_url, request.prepare()).await
    }

    /// Sends exactly these headers and bytes again (a re-delivery); subject to the drop fault.
    pub async fn resend_webhook(
        &self,
        target_url: &str,
        sent: SentWebhook,
    ) -> Result<WebhookResponse, Error> {
        let drop_rate = self.lock().faults.drop_webhook_rate;
        if drop_rate > 0.0 && rand::random::<f64>() < drop_rate {
            return Ok(WebhookResponse::Dropped { sent });
        }
        webhook::deliver(&self.inner.http, target_url, sent).await
    }

    pub fn set_faults(&self, faults: Faults) {
        self.lock().faults = faults;
    }

    pub fn faults(&self) -> Faults {
        self.lock().faults.clone()
    }

    /// REST and token requests received (including rejected ones; not `/_sandbox`).
    pub fn request_count(&self) -> u64 {
        self.lock().request_count
    }

    /// Requests answered 429 by the account rate limit.
    pub fn rate_limited_count(&self) -> u64 {
        self.lock().rate_limited_count
    }

    /// Registers an item (a kit when it has components) for `GET /items` and order validation.
    pub fn add_item(&self, item: ItemSpec) {
        self.lock().items.insert(item.number.clone(), item);
    }

    /// Sales orders received through `POST /orders/salesOrders`, oldest
    /// first, with their status and line quantities now.
    pub fn sales_orders(&self) -> Vec<SalesOrderRecord> {
        self.lock().sales_orders.clone()
    }

    pub fn sales_order(&self, number: &str) -> Option<SalesOrderRecord> {
        self.lock()
            .sales_orders
            .iter()
            .find(|o| o.number == number)
            .cloned()
    }

    /// The warehouse moves sales order `number` to `status` (any of
    /// Deposco's `orderStatus` words, e.g. `Released`), with none of the
    /// API's rules: what Deposco's own floor does. Line statuses follow.
    pub fn set_sales_order_status(
        &self,
        number: &str,
        status: &str,
    ) -> Result<SalesOrderRecord, Error> {
        let word = lifecycle::status_word(status)
            .ok_or_else(|| Error::UnknownOrderStatus(status.to_owned()))?;
        let mut state = self.lock();
        let order = state.sales_order_mut(number)?;
        order.status = word.to_owned();
        order.updated_date = now();
        lifecycle::refresh_lines(order);
        Ok(order.clone())
    }

    /// The warehouse lacks stock: `units` of line `line_number` of sales
    /// order `number` wait as back-ordered (0 clears it). Those are the only
    /// units the API lets a client cancel while the order is Partially
    /// Released.
    pub fn set_back_ordered(
        &self,
        number: &str,
        line_number: &str,
        units: f64,
    ) -> Result<SalesOrderRecord, Error> {
        let mut state = self.lock();
        let order = state.sales_order_mut(number)?;
        let Some(line) = order
            .lines
            .iter_mut()
            .find(|l| l.line_number == line_number)
        else {
            return Err(Error::UnknownOrderLine {
                order: number.to_owned(),
                line_number: line_number.to_owned(),
            });
        };
        if !(units.is_finite() && units >= 0.0 && units <= line.open()) {
            return Err(Error::BackOrder {
                order: number.to_owned(),
                line_number: line_number.to_owned(),
                units,
                open: line.open(),
            });
        }
        line.back_ordered = units;
        order.updated_date = now();
        lifecycle::refresh_lines(order);
        Ok(order.clone())
    }

    /// Invalidates every issued access token (the next Bearer call gets 401).
    pub fn revoke_tokens(&self) {
        self.lock().tokens.clear();
    }

    /// A shipment spec that ships received sales order `order_number` in full
    /// in one package, expanding registered kit items into component lines.
    pub fn ship_order_spec(
        &self,
        order_number: &str,
        tracking_number: &str,
    ) -> Option<ShipmentSpec> {
        let state = self.lock();
        let order = state
            .sales_orders
            .iter()
            .find(|o| o.number == order_number)?;
        Some(orders::ship_in_full(order, &state.items, tracking_number))
    }
}

/// A sandbox serving HTTP. Dropping it stops the server.
pub struct RunningDeposco {
    /// Base URL, e.g. `http://127.0.0.1:PORT`: REST under it, token at `{url}/oauth2/token`.
    pub url: String,
    pub addr: SocketAddr,
    pub sandbox: DeposcoSandbox,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl RunningDeposco {
    /// `{url}/oauth2/token`.
    pub fn token_url(&self) -> String {
        format!("{}/oauth2/token", self.url)
    }

    /// Stops accepting connections and waits for open requests to finish.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// Serves until the process ends (for `shipsync sandbox deposco --listen`).
    pub async fn wait(mut self) {
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for RunningDeposco {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
