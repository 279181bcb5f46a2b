//! Webhooks: the subscriptions apps make through GraphQL, the events the
//! store's changes raise, the bodies Shopify sends for them, and their
//! signed delivery (with retries and injected faults).
//!
//! # What Shopify does, and where that comes from
//!
//! From the project's notes (`shared/docs/orders-lifecycle.md`, "Shopify
//! order webhooks"), Shopify's GraphQL Admin reference for 2026-10 and
//! shopify.dev's webhook guides:
//!
//! - `webhookSubscriptionCreate(topic:, webhookSubscription: {uri, format})`,
//!   `webhookSubscriptions(first:, after:, topics:, uri:)` and
//!   `webhookSubscriptionDelete(id:)`. An app sees and deletes only its own
//!   subscriptions. A topic needs the read scope of its resource: the
//!   `ORDERS_*` topics `read_orders`, the `FULFILLMENT_ORDERS_*` ones one of
//!   the fulfillment order read scopes. The same topic and address twice is
//!   refused: "Address for this topic has already been taken".
//! - A delivery is a POST of the REST resource's JSON (the order, except
//!   `orders/edited`, whose body describes the edit) with `X-Shopify-Topic`,
//!   `X-Shopify-Hmac-Sha256` (base64 of the HMAC-SHA256 of the raw body,
//!   keyed with the app's client secret / API secret key),
//!   `X-Shopify-Shop-Domain`, `X-Shopify-API-Version`,
//!   `X-Shopify-Webhook-Id` (one per delivery), `X-Shopify-Event-Id` (the
//!   same for every delivery of one event) and `X-Shopify-Triggered-At`.
//! - The receiver has 5 s (1 s to connect); anything but a 2xx, 3xx
//!   included, is a failure, retried 8 times over 4 hours with the original
//!   payload. An event may come twice and out of order.
//! - An app that is uninstalled loses its webhook subscriptions.
//!
//! # The sandbox's one deliberate deviation
//!
//! Shopify accepts only `https://` addresses for HTTP subscriptions (and
//! `pubsub://`, `arn:aws:events:`, which the sandbox does not model). With
//! [`SandboxConfig::allow_http_webhooks`](crate::SandboxConfig) set, the
//! sandbox also accepts `http://` — so tests can receive deliveries on a
//! plain loopback listener. It is off by default, and refused as Shopify
//! refuses it when off.
//!
//! # Assumptions
//!
//! Where the documentation is silent the sandbox does the following. Each is
//! marked **Assumption** here and nowhere else.
//!
//! - **Assumption**: a topic the token's scopes do not cover is a user error
//!   on `["topic"]`: "You do not have the required access scope for the
//!   {topic} topic: {Shopify's requiredAccess text}" (Shopify documents the
//!   rule, not the words); an
//!   `http://` address (flag off) "Address protocol http:// is not
//!   supported"; an address that is not a URL "Address is invalid"; no
//!   address "Address can't be blank"; the duplicate error is on the address
//!   field (`uri`, or `callbackUrl` when that was used). Deleting an unknown
//!   or another app's subscription: `["id"]`, "Webhook subscription does not
//!   exist".
//! - **Assumption**: only the topics the sandbox raises may be subscribed
//!   ([`TOPICS`]); others are a GraphQL error saying so, not a silent
//!   subscription that never fires. `format: XML` is refused the same way.
//! - **Assumption**: the `orders/edited` body is Shopify's documented one in
//!   outline: `{"order_edit": {"id", "app_id", "created_at",
//!   "notify_customer", "order_id", "staff_note", "user_id", "line_items":
//!   {"additions": [{"id", "delta"}], "removals": [{"id", "delta"}]},
//!   "discounts": {...}, "shipping_lines": {...}}}` (ids numeric, `app_id`
//!   and `user_id` null, discounts and shipping lines empty).
//! - **Assumption**: the fulfillment order topics' bodies are
//!   `{"fulfillment_order": {"id": GID, "status": lower case}}`, plus
//!   `"fulfillment_hold": {"id", "reason", "reason_notes"}` (reason lower
//!   case) for `placed_on_hold` and `"replacement_fulfillment_order": null`
//!   for `cancelled`.
//! - **Assumption**: REST times are written in UTC with a `+00:00` offset
//!   (the sandbox shop's time zone); `tags` are joined with ", " as REST
//!   shows them; `fulfillment_status` is null, `partial` or `fulfilled`.
//! - **Assumption**: a creation sends `orders/create` only; every later
//!   change that bumps `updatedAt` sends `orders/updated`, plus its own
//!   topic (`orders/cancelled`, `orders/edited`, `orders/paid`,
//!   `orders/fulfilled`, `orders/partially_fulfilled`).
//! - **Assumption** (a simplification): first attempts are made one at a
//!   time, in the order the events happened, so an unfaulted run is
//!   deterministic; a receiver that hangs delays the deliveries after it
//!   by up to the timeout. Disorder comes from retries and from
//!   [`WebhookFaults::hold`].
//! - **Assumption**: the retry schedule is
//!   [`SandboxConfig::webhook_retry_delays_ms`](crate::SandboxConfig) (Shopify:
//!   8 retries over 4 hours; the default is short, for tests), and a
//!   subscription is never deleted for failing.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::access::Need;
use crate::lock;
use crate::model::{Order, State, UserError, gid};

/// The topics the sandbox raises, as GraphQL names them, with the scope
/// each needs.
pub(crate) const TOPICS: &[(&str, Need)] = &[
    ("ORDERS_CREATE", Need::Orders),
    ("ORDERS_UPDATED", Need::Orders),
    ("ORDERS_CANCELLED", Need::Orders),
    ("ORDERS_EDITED", Need::Orders),
    ("ORDERS_PAID", Need::Orders),
    ("ORDERS_FULFILLED", Need::Orders),
    ("ORDERS_PARTIALLY_FULFILLED", Need::Orders),
    (
        "FULFILLMENT_ORDERS_PLACED_ON_HOLD",
        Need::ReadFulfillmentOrders,
    ),
    (
        "FULFILLMENT_ORDERS_HOLD_RELEASED",
        Need::ReadFulfillmentOrders,
    ),
    ("FULFILLMENT_ORDERS_CANCELLED", Need::ReadFulfillmentOrders),
];

/// `ORDERS_CREATE` → `orders/create`.
pub(crate) fn rest_topic(topic: &str) -> String {
    let lower = topic.to_lowercase();
    match lower.strip_prefix("fulfillment_orders_") {
        Some(rest) => format!("fulfillment_orders/{rest}"),
        None => lower.replacen('_', "/", 1),
    }
}

/// Which app a token (and so a subscription) belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AppKey {
    /// The legacy custom app of [`SandboxConfig::access_token`](crate::SandboxConfig).
    Legacy,
    /// The Dev Dashboard app with this client id.
    Dev(String),
}

impl AppKey {
    fn label(&self) -> String {
        match self {
            AppKey::Legacy => "legacy".into(),
            AppKey::Dev(id) => id.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Subscription {
    pub id: u64,
    pub app: AppKey,
    /// GraphQL topic name, e.g. `ORDERS_CREATE`.
    pub topic: String,
    pub uri: String,
    pub created_at: Timestamp,
}

/// A subscription, for assertions ([`ShopifySandbox::webhook_subscriptions`]).
///
/// [`ShopifySandbox::webhook_subscriptions`]: crate::ShopifySandbox::webhook_subscriptions
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookSubscriptionView {
    pub id: String,
    /// GraphQL topic name, e.g. `ORDERS_CREATE`.
    pub topic: String,
    pub uri: String,
    /// `legacy` (the config's access token) or the Dev Dashboard client id.
    pub app: String,
}

impl Subscription {
    pub fn view(&self) -> WebhookSubscriptionView {
        WebhookSubscriptionView {
            id: gid("WebhookSubscription", self.id),
            topic: self.topic.clone(),
            uri: self.uri.clone(),
            app: self.app.label(),
        }
    }
}

/// Where one event goes.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub subscription_id: u64,
    pub uri: String,
    pub app: AppKey,
}

/// A change the store made, with its body fixed at the time it happened.
#[derive(Debug, Clone)]
pub(crate) struct Event {
    /// REST topic, e.g. `orders/updated`.
    pub topic: String,
    pub event_id: String,
    pub triggered_at: Timestamp,
    pub body: Arc<Vec<u8>>,
    pub targets: Vec<Target>,
}

/// A change of an order edit: `{"id", "delta"}` in the `orders/edited` body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EditChange {
    pub id: u64,
    pub delta: u32,
}

pub(crate) struct OrderEditBody {
    pub id: u64,
    pub order_id: u64,
    pub created_at: Timestamp,
    pub additions: Vec<EditChange>,
    pub removals: Vec<EditChange>,
}

/// A random version-4 UUID, as Shopify's webhook and event ids are.
fn uuid() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// REST time: UTC with an explicit offset (see the Assumptions).
fn rest_time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S+00:00").to_string()
}

/// REST `fulfillment_status` from what is current and what was fulfilled.
fn rest_fulfillment_status(current: u32, fulfilled: u32) -> Value {
    if fulfilled == 0 {
        Value::Null
    } else if fulfilled >= current {
        json!("fulfilled")
    } else {
        json!("partial")
    }
}

/// The REST Order JSON of an `orders/*` webhook.
pub(crate) fn order_json(o: &Order) -> Value {
    let line_items: Vec<Value> = o
        .lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let fulfilled = o.fulfilled_quantity(i);
            json!({
                "id": l.id,
                "admin_graphql_api_id": gid("LineItem", l.id),
                "variant_id": l.variant_id,
                "sku": l.sku,
                "name": l.name,
                "title": l.name,
                "quantity": l.quantity,
                "current_quantity": l.current_quantity,
                "fulfillable_quantity": o.unfulfilled_quantity(i),
                "requires_shipping": l.requires_shipping,
                "fulfillment_status": rest_fulfillment_status(l.current_quantity, fulfilled),
            })
        })
        .collect();
    let shipping_lines: Vec<Value> = o
        .shipping_line
        .iter()
        .map(|s| {
            json!({
                "id": s.id,
                "code": s.code,
                "title": s.title,
                "source": s.source,
                "carrier_identifier": null,
            })
        })
        .collect();
    let current: u32 = o.lines.iter().map(|l| l.current_quantity).sum();
    let fulfilled: u32 = (0..o.lines.len()).map(|i| o.fulfilled_quantity(i)).sum();
    json!({
        "id": o.id,
        "admin_graphql_api_id": gid("Order", o.id),
        "name": o.name,
        "order_number": o.name.chars().filter(char::is_ascii_digit).collect::<String>().parse::<u64>().ok(),
        "email": o.email,
        "created_at": rest_time(o.created_at),
        "updated_at": rest_time(o.updated_at),
        "cancelled_at": o.cancelled_at.map(rest_time),
        "cancel_reason": o.cancel_reason.as_ref().map(|r| r.to_lowercase()),
        "closed_at": null,
        "financial_status": o.financial_status.to_lowercase(),
        "fulfillment_status": rest_fulfillment_status(current, fulfilled),
        "tags": o.tags.join(", "),
        "line_items": line_items,
        "shipping_lines": shipping_lines,
    })
}

fn edit_json(e: &OrderEditBody) -> Value {
    let changes = |v: &[EditChange]| -> Vec<Value> {
        v.iter()
            .map(|c| json!({ "id": c.id, "delta": c.delta }))
            .collect()
    };
    json!({
        "order_edit": {
            "id": e.id,
            "app_id": null,
            "created_at": rest_time(e.created_at),
            "notify_customer": false,
            "order_id": e.order_id,
            "staff_note": "",
            "user_id": null,
            "line_items": {
                "additions": changes(&e.additions),
                "removals": changes(&e.removals),
            },
            "discounts": { "line_item": { "additions": [], "removals": [] } },
            "shipping_lines": { "additions": [], "removals": [] },
        }
    })
}

impl State {
    /// The subscriptions an event of `topic` (REST name) goes to now.
    fn targets(&self, topic: &str) -> Vec<Target> {
        self.subscriptions
            .iter()
            .filter(|s| rest_topic(&s.topic) == topic)
            .map(|s| Target {
                subscription_id: s.id,
                uri: s.uri.clone(),
                app: s.app.clone(),
            })
            .collect()
    }

    fn push_event(&mut self, topic: &str, targets: Vec<Target>, body: Value) {
        let body = serde_json::to_vec(&body).unwrap_or_default();
        self.events.push(Event {
            topic: topic.to_string(),
            event_id: uuid(),
            triggered_at: Timestamp::now(),
            body: Arc::new(body),
            targets,
        });
    }

    /// Queues an `orders/*` event of order `oi`, its body as the order is now.
    pub fn order_event(&mut self, topic: &str, oi: usize) {
        let targets = self.targets(topic);
        if targets.is_empty() {
            return;
        }
        let body = order_json(&self.orders[oi]);
        self.push_event(topic, targets, body);
    }

    /// Queues the `orders/edited` event of an edit.
    pub fn edit_event(&mut self, edit: &OrderEditBody) {
        let targets = self.targets("orders/edited");
        if targets.is_empty() {
            return;
        }
        self.push_event("orders/edited", targets, edit_json(edit));
    }

    /// Queues a `fulfillment_orders/*` event; `hold` names the hold placed.
    pub fn fo_event(&mut self, topic: &str, oi: usize, fi: usize, hold: Option<u64>) {
        let targets = self.targets(topic);
        if targets.is_empty() {
            return;
        }
        let f = &self.orders[oi].fos[fi];
        let mut body = json!({
            "fulfillment_order": {
                "id": gid("FulfillmentOrder", f.id),
                "status": f.status.to_lowercase(),
            }
        });
        if let Some(h) = hold.and_then(|h| f.holds.iter().find(|x| x.id == h)) {
            body["fulfillment_hold"] = json!({
                "id": gid("FulfillmentHold", h.id),
                "reason": h.reason.to_lowercase(),
                "reason_notes": h.reason_notes,
            });
        }
        if topic == "fulfillment_orders/cancelled" {
            body["replacement_fulfillment_order"] = Value::Null;
        }
        self.push_event(topic, targets, body);
    }

    /// `webhookSubscriptionCreate` once the scope and topic were checked:
    /// the new subscription's id, or the user errors.
    pub fn subscribe(
        &mut self,
        app: &AppKey,
        topic: &str,
        uri: &str,
        address_field: &str,
    ) -> Result<u64, Vec<UserError>> {
        if self
            .subscriptions
            .iter()
            .any(|s| s.app == *app && s.topic == topic && s.uri == uri)
        {
            return Err(vec![UserError {
                field: Some(vec!["webhookSubscription".into(), address_field.into()]),
                message: "Address for this topic has already been taken".into(),
            }]);
        }
        let id = self.next_id();
        self.subscriptions.push(Subscription {
            id,
            app: app.clone(),
            topic: topic.to_string(),
            uri: uri.to_string(),
            created_at: crate::model::now_seconds(),
        });
        Ok(id)
    }

    /// `webhookSubscriptionDelete`: the deleted id, or the user errors.
    pub fn unsubscribe(&mut self, app: &AppKey, id: &str) -> Result<String, Vec<UserError>> {
        let found = crate::model::parse_gid(id)
            .filter(|(k, _)| *k == "WebhookSubscription")
            .and_then(|(_, n)| {
                self.subscriptions
                    .iter()
                    .position(|s| s.id == n && s.app == *app)
            });
        match found {
            Some(i) => {
                let s = self.subscriptions.remove(i);
                Ok(gid("WebhookSubscription", s.id))
            }
            None => Err(vec![UserError {
                field: Some(vec!["id".into()]),
                message: "Webhook subscription does not exist".into(),
            }]),
        }
    }

    /// Hands the queued events over, oldest first.
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }
}

/// Checks a subscription address: `Ok`, or `Err(Ok(user error))`, or
/// `Err(Err(message))` for an address kind the sandbox does not model.
pub(crate) fn check_address(
    uri: &str,
    field: &str,
    allow_http: bool,
) -> Result<(), Result<UserError, String>> {
    let error = |message: String| {
        Err(Ok(UserError {
            field: Some(vec!["webhookSubscription".into(), field.into()]),
            message,
        }))
    };
    if uri.trim().is_empty() {
        return error("Address can't be blank".into());
    }
    if uri.starts_with("pubsub://") || uri.starts_with("arn:aws:events:") {
        return Err(Err(format!(
            "the Shopify sandbox does not model Pub/Sub or EventBridge addresses ({uri})"
        )));
    }
    let Ok(url) = url::Url::parse(uri) else {
        return error("Address is invalid".into());
    };
    match url.scheme() {
        "https" if url.host().is_some() => Ok(()),
        "http" if allow_http && url.host().is_some() => Ok(()),
        "https" | "http" if url.host().is_none() => error("Address is invalid".into()),
        scheme => error(format!("Address protocol {scheme}:// is not supported")),
    }
}

// ---------------------------------------------------------------------------
// Delivery

/// Injected delivery failures, for tests of a receiver.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct WebhookFaults {
    /// The next N deliveries are lost: logged as dropped, never sent, never
    /// retried.
    pub drop_next: u32,
    /// The next N deliveries are sent twice: the same event id, each its
    /// own webhook id.
    pub duplicate_next: u32,
    /// Deliveries wait until [`release_held_webhooks`], which sends them in
    /// reverse order (newest first).
    ///
    /// [`release_held_webhooks`]: crate::ShopifySandbox::release_held_webhooks
    pub hold: bool,
}

/// One delivery attempt (or a dropped delivery), for assertions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookDelivery {
    /// REST topic, e.g. `orders/create` (the `X-Shopify-Topic` header).
    pub topic: String,
    /// `X-Shopify-Event-Id`: the same for every delivery of one event.
    pub event_id: String,
    /// `X-Shopify-Webhook-Id`: new for every attempt.
    pub webhook_id: String,
    /// The subscription's GID.
    pub subscription_id: String,
    pub uri: String,
    /// 1 for the first attempt, 2 for the first retry, …
    pub attempt: u32,
    /// The HTTP status answered, when there was an answer.
    pub status: Option<u16>,
    /// Why there was no answer (timeout, refused connection, …).
    pub error: Option<String>,
    /// Lost on purpose ([`WebhookFaults::drop_next`]): nothing was sent.
    pub dropped: bool,
    pub at: Timestamp,
    /// The body sent (parsed), for assertions.
    pub body: Value,
}

impl WebhookDelivery {
    /// Whether the receiver accepted it (a 2xx).
    pub fn succeeded(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

/// One delivery of one event to one subscription.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    pub topic: String,
    pub event_id: String,
    pub subscription_id: u64,
    pub uri: String,
    pub secret: String,
    pub body: Arc<Vec<u8>>,
    pub triggered_at: Timestamp,
    pub shop_domain: String,
}

/// Work for the sender. Every first attempt is awaited before the next one
/// starts; retries go on in the background.
enum Cmd {
    One(Job),
    /// Several deliveries, in this order (a release of held ones).
    InOrder(Vec<Job>),
}

/// How many attempts [`Hub::log`] remembers.
const MAX_LOGGED: usize = 10_000;

/// What the sender threads share with the sandbox.
pub(crate) struct Shared {
    log: Mutex<Vec<WebhookDelivery>>,
    delays: Vec<Duration>,
    timeout: Duration,
}

/// The sandbox's side of webhook delivery.
pub(crate) struct Hub {
    faults: WebhookFaults,
    held: Vec<Job>,
    tx: Option<tokio::sync::mpsc::UnboundedSender<Cmd>>,
    shared: Arc<Shared>,
}

impl Hub {
    pub fn new(delays_ms: &[u64], timeout_ms: u64) -> Self {
        Hub {
            faults: WebhookFaults::default(),
            held: Vec::new(),
            tx: None,
            shared: Arc::new(Shared {
                log: Mutex::new(Vec::new()),
                delays: delays_ms
                    .iter()
                    .map(|&ms| Duration::from_millis(ms))
                    .collect(),
                timeout: Duration::from_millis(timeout_ms),
            }),
        }
    }

    pub fn set_faults(&mut self, faults: WebhookFaults) {
        self.faults = faults;
    }

    pub fn log(&self) -> Vec<WebhookDelivery> {
        lock(&self.shared.log).clone()
    }

    /// Hands a delivery to the sender, after the faults had their say.
    pub fn submit(&mut self, job: Job) {
        if self.faults.drop_next > 0 {
            self.faults.drop_next -= 1;
            record(
                &self.shared,
                WebhookDelivery {
                    topic: job.topic.clone(),
                    event_id: job.event_id.clone(),
                    webhook_id: uuid(),
                    subscription_id: gid("WebhookSubscription", job.subscription_id),
                    uri: job.uri.clone(),
                    attempt: 1,
                    status: None,
                    error: Some("dropped (injected fault)".into()),
                    dropped: true,
                    at: Timestamp::now(),
                    body: serde_json::from_slice(&job.body).unwrap_or(Value::Null),
                },
            );
            return;
        }
        let copies = if self.faults.duplicate_next > 0 {
            self.faults.duplicate_next -= 1;
            2
        } else {
            1
        };
        for _ in 0..copies {
            if self.faults.hold {
                self.held.push(job.clone());
            } else {
                self.send(Cmd::One(job.clone()));
            }
        }
    }

    /// Sends what `hold` kept back, newest first; later deliveries are no
    /// longer held.
    pub fn release(&mut self) -> usize {
        self.faults.hold = false;
        let mut held = std::mem::take(&mut self.held);
        held.reverse();
        let n = held.len();
        if n > 0 {
            self.send(Cmd::InOrder(held));
        }
        n
    }

    fn send(&mut self, cmd: Cmd) {
        let tx = self
            .tx
            .get_or_insert_with(|| spawn_sender(self.shared.clone()));
        if let Err(e) = tx.send(cmd) {
            tracing::error!(error = %e, "Shopify sandbox webhook sender is gone");
        }
    }
}

fn record(shared: &Shared, delivery: WebhookDelivery) {
    let mut log = lock(&shared.log);
    if log.len() >= MAX_LOGGED {
        log.drain(..MAX_LOGGED / 10);
    }
    log.push(delivery);
}

/// Starts the sender: a thread with its own runtime, so deliveries do not
/// depend on the caller's runtime (a control may be called from plain
/// synchronous code). It stops when the sandbox, holding the sender's
/// channel, is dropped.
fn spawn_sender(shared: Arc<Shared>) -> tokio::sync::mpsc::UnboundedSender<Cmd> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Cmd>();
    let spawned = std::thread::Builder::new()
        .name("shopify-sandbox-webhooks".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!(error = %e, "Shopify sandbox: no runtime for webhooks");
                    return;
                }
            };
            runtime.block_on(async move {
                // reqwest is built without a default TLS provider; the
                // sandbox's client uses ring, as shipsync's does.
                let _ = rustls::crypto::ring::default_provider().install_default();
                let client = match reqwest::Client::builder()
                    .timeout(shared.timeout)
                    .connect_timeout(shared.timeout.min(Duration::from_secs(1)))
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::error!(error = %e, "Shopify sandbox: no HTTP client for webhooks");
                        return;
                    }
                };
                // First attempts go one at a time, in the order the events
                // happened (so tests see a stable order unless a fault says
                // otherwise); retries run in the background.
                while let Some(cmd) = rx.recv().await {
                    let jobs = match cmd {
                        Cmd::One(job) => vec![job],
                        Cmd::InOrder(jobs) => jobs,
                    };
                    for job in jobs {
                        if !attempt(&client, &shared, &job, 1).await {
                            let (client, shared) = (client.clone(), shared.clone());
                            tokio::spawn(async move {
                                deliver(&client, &shared, &job, 1).await;
                            });
                        }
                    }
                }
            });
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "Shopify sandbox: could not start the webhook sender");
    }
    tx
}

/// Attempts a delivery until it succeeds or the retries run out; `done`
/// attempts were already made.
async fn deliver(client: &reqwest::Client, shared: &Shared, job: &Job, done: u32) {
    let mut n = done;
    loop {
        if n > 0 {
            let Some(delay) = shared.delays.get(n as usize - 1) else {
                return;
            };
            tokio::time::sleep(*delay).await;
        }
        n += 1;
        if attempt(client, shared, job, n).await {
            return;
        }
    }
}

/// The base64 HMAC-SHA256 of `body` keyed with `secret`.
pub(crate) fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(body);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// One POST; whether the receiver answered 2xx.
async fn attempt(client: &reqwest::Client, shared: &Shared, job: &Job, n: u32) -> bool {
    let webhook_id = uuid();
    let result = client
        .post(&job.uri)
        .header("Content-Type", "application/json")
        .header("X-Shopify-Topic", &job.topic)
        .header("X-Shopify-Hmac-Sha256", signature(&job.secret, &job.body))
        .header("X-Shopify-Shop-Domain", &job.shop_domain)
        .header("X-Shopify-API-Version", crate::API_VERSION)
        .header("X-Shopify-Webhook-Id", &webhook_id)
        .header("X-Shopify-Event-Id", &job.event_id)
        .header("X-Shopify-Triggered-At", job.triggered_at.to_string())
        .body(job.body.as_ref().clone())
        .send()
        .await;
    let (status, error) = match result {
        Ok(resp) => (Some(resp.status().as_u16()), None),
        Err(e) => (None, Some(e.to_string())),
    };
    let delivery = WebhookDelivery {
        topic: job.topic.clone(),
        event_id: job.event_id.clone(),
        webhook_id,
        subscription_id: gid("WebhookSubscription", job.subscription_id),
        uri: job.uri.clone(),
        attempt: n,
        status,
        error,
        dropped: false,
        at: Timestamp::now(),
        body: serde_json::from_slice(&job.body).unwrap_or(Value::Null),
    };
    let ok = delivery.succeeded();
    record(shared, delivery);
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_map_to_rest_names() {
        assert_eq!(rest_topic("ORDERS_CREATE"), "orders/create");
        assert_eq!(
            rest_topic("ORDERS_PARTIALLY_FULFILLED"),
            "orders/partially_fulfilled"
        );
        assert_eq!(
            rest_topic("FULFILLMENT_ORDERS_PLACED_ON_HOLD"),
            "fulfillment_orders/placed_on_hold"
        );
    }

    #[test]
    fn uuids_are_version_4() {
        let u = uuid();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert_ne!(u, uuid());
    }

    #[test]
    fn addresses() {
        assert!(check_address("https://example.com/hook", "uri", false).is_ok());
        assert!(check_address("http://127.0.0.1:1/hook", "uri", true).is_ok());
        let refused = check_address("http://127.0.0.1:1/hook", "uri", false);
        assert_eq!(
            refused.unwrap_err().unwrap().message,
            "Address protocol http:// is not supported"
        );
        assert_eq!(
            check_address("not a url", "uri", false)
                .unwrap_err()
                .unwrap()
                .message,
            "Address is invalid"
        );
        assert!(
            check_address("pubsub://project:topic", "uri", false)
                .unwrap_err()
                .is_err()
        );
    }
}
