//! A Shopify Admin GraphQL sandbox: an independent, in-memory implementation
//! of the part of Shopify's API shipsync uses (orders, fulfillment orders,
//! `fulfillmentCreate`, `fulfillmentTrackingInfoUpdate`, cost and throttling,
//! app authentication and access scopes), with fault injection.
//!
//! It deliberately shares no code with shipsync's own Shopify client: every
//! request is checked against Shopify's real schema
//! ([`shipsync_shopify_schema`]) and executed by apollo-compiler's executor
//! over resolvers written from Shopify's documentation, so a client mistake
//! shows up here as it would against Shopify.
//!
//! # HTTP surface
//!
//! - `POST /admin/api/{API_VERSION}/graphql.json` with
//!   `X-Shopify-Access-Token`: the legacy token of [`SandboxConfig`] (a
//!   custom app made in the store's admin before 2026, never expiring) or a
//!   token the OAuth endpoints issued that has neither expired nor been
//!   revoked; anything else is 401 with Shopify's body. The token's access
//!   scopes decide what it may read and write (`ACCESS_DENIED` errors, as
//!   Shopify answers them) and are what
//!   `currentAppInstallation { accessScopes { handle } }` lists.
//! - `POST /admin/oauth/access_token` (form or JSON): the client credentials
//!   grant, the authorization code exchange and the refresh token grant of
//!   the configured Dev Dashboard [`SandboxApp`].
//! - `GET /admin/oauth/authorize?client_id&scope&redirect_uri&state`:
//!   approved at once (no merchant is asked) with a 302 to `redirect_uri`
//!   carrying `code`, `hmac`, `host`, `shop`, `state`, `timestamp`, `shop`
//!   being the sandbox's own `host:port`; refusals are Shopify-like 400 pages.
//! - Controls: `POST /_sandbox/orders`, `GET /_sandbox/orders/{name}`,
//!   `POST /_sandbox/faults`, `POST /_sandbox/fulfillment_orders/status`,
//!   `POST /_sandbox/app` (a [`SandboxApp`] as JSON), `POST /_sandbox/revoke`
//!   (uninstall: issued tokens refused), `POST /_sandbox/expire` (issued
//!   access tokens expire, refresh tokens stay), `GET /_sandbox/token-requests`.
//!   The order lifecycle: `POST /_sandbox/orders/{name}/cancel`
//!   (`{"reason"}`), `POST /_sandbox/orders/{name}/edit` (`{"changes": […]}`,
//!   each a [`LineEdit`], e.g. `{"op": "set_quantity", "line": "A",
//!   "quantity": 0}`), `POST /_sandbox/orders/{name}/tags` (`{"tags"}`),
//!   `POST /_sandbox/orders/{name}/financial_status` (`{"status"}`),
//!   `POST /_sandbox/fulfillment_orders/hold` (`{"fulfillment_order_id",
//!   "reason", "reason_notes"}`), `POST /_sandbox/fulfillment_orders/release`
//!   (`{"fulfillment_order_id"}`). Webhooks: `GET /_sandbox/webhook-deliveries`,
//!   `GET /_sandbox/webhook-subscriptions`, `POST /_sandbox/webhook-faults`
//!   (a [`WebhookFaults`]), `POST /_sandbox/webhook-faults/release`.
//!   Each has a method on [`ShopifySandbox`].
//! - Webhooks: apps subscribe with `webhookSubscriptionCreate`; every change
//!   of an order (a control above, a `fulfillmentCreate`) is POSTed, signed,
//!   to the subscriptions of its topic from a background thread, with
//!   retries; see `webhooks.rs`.
//!
//! Where the rules come from, and what is assumed where Shopify's
//! documentation is silent, is written once: authentication in `auth.rs`,
//! scopes in `access.rs`, the order lifecycle in `lifecycle.rs`, webhooks
//! (and the sandbox's one deliberate deviation, `http://` addresses on
//! request) in `webhooks.rs`.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use shipsync_sandbox_shopify::*;
//! let sandbox = ShopifySandbox::new(SandboxConfig {
//!     app: Some(SandboxApp {
//!         client_id: "id".into(),
//!         client_secret: "secret".into(),
//!         redirect_urls: vec!["http://127.0.0.1:8080/connect/shopify/callback".into()],
//!         ..Default::default()
//!     }),
//!     ..Default::default()
//! });
//! sandbox.create_order(OrderSpec {
//!     name: "#1001".into(),
//!     lines: vec![LineSpec { sku: "A".into(), quantity: 2, ..Default::default() }],
//!     ..Default::default()
//! });
//! let running = sandbox.start("127.0.0.1:0".parse().unwrap()).await?;
//! println!("shop URL {}, POST {}", running.url, running.graphql_url());
//! # Ok(()) }
//! ```

mod access;
mod auth;
mod cost;
mod http;
mod lifecycle;
mod model;
mod oauth;
mod resolve;
mod search;
mod webhooks;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

pub use auth::{SHIPSYNC_SCOPES, SandboxApp, TokenRequest};
pub use cost::{MAX_SINGLE_QUERY_COST, ThrottleConfig};
pub use lifecycle::{EditedOrder, LineEdit};
pub use model::{
    Address, CreatedOrder, DEFAULT_LOCATION_ID, FoLineView, FoSpec, FulfillmentLineView,
    FulfillmentOrderView, FulfillmentView, LineSpec, LineView, OrderSpec, OrderView,
};
pub use shipsync_shopify_schema::API_VERSION;
pub use webhooks::{WebhookDelivery, WebhookFaults, WebhookSubscriptionView};

/// What the sandbox answers to `shop { name }`.
pub const SHOP_NAME: &str = "shipsync sandbox shop";

/// Errors of the sandbox's own (non-GraphQL) API.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("invalid order spec: {0}; fix the spec and retry")]
    InvalidSpec(String),
    #[error("{0} does not exist in the sandbox")]
    NotFound(String),
    /// Shopify would refuse the change in the order's present state (e.g.
    /// cancelling an order twice, releasing a fulfillment order that is not
    /// on hold).
    #[error("refused: {0}")]
    Refused(String),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct SandboxConfig {
    /// A fixed `X-Shopify-Access-Token` (a legacy custom app's token) that
    /// GraphQL requests may carry; it never expires and is never revoked.
    pub access_token: String,
    /// The scopes of `access_token` (default: [`SHIPSYNC_SCOPES`]).
    pub access_token_scopes: Vec<String>,
    /// The Dev Dashboard app installed on the store, whose tokens the OAuth
    /// endpoints issue; `None`: no app (only `access_token` works).
    pub app: Option<SandboxApp>,
    pub throttle: ThrottleConfig,
    pub faults: Faults,
    /// The legacy custom app's "API secret key": it signs the webhooks of
    /// subscriptions made with `access_token` (a Dev Dashboard app's are
    /// signed with its `client_secret`).
    pub api_secret: String,
    /// Accept `http://` webhook addresses — the sandbox's one deliberate,
    /// opt-in deviation from Shopify, which accepts only `https://`; tests
    /// receive deliveries on a plain loopback listener with it. Default false:
    /// refused as Shopify refuses it.
    pub allow_http_webhooks: bool,
    /// Waits before each retry of a failed delivery (the first retry waits
    /// the first). Shopify retries 8 times over 4 hours; the default is 8
    /// short waits (50 ms doubling, 12.75 s in all) so tests see retries
    /// quickly. Empty: never retried.
    pub webhook_retry_delays_ms: Vec<u64>,
    /// How long a receiver has to answer a delivery (Shopify: 5 s).
    pub webhook_timeout_ms: u64,
    /// `X-Shopify-Shop-Domain` of deliveries; `None`: the sandbox's own
    /// `host:port` once [`ShopifySandbox::start`] bound it (as the OAuth
    /// `shop` parameter), `sandbox.myshopify.com` before.
    pub shop_domain: Option<String>,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            access_token: "shpat_sandbox".into(),
            access_token_scopes: auth::shipsync_scopes(),
            app: None,
            throttle: ThrottleConfig::default(),
            faults: Faults::default(),
            api_secret: "shpss_sandbox_secret".into(),
            allow_http_webhooks: false,
            webhook_retry_delays_ms: vec![50, 100, 200, 400, 800, 1_600, 3_200, 6_400],
            webhook_timeout_ms: 5_000,
            shop_domain: None,
        }
    }
}

/// Injected failures of the GraphQL endpoint.
///
/// A request fails when `fail_next` is still positive (it counts down), or
/// else with probability `fail_rate`. The kind is taken from `kinds` in turn
/// (`fail_next`) or at random (`fail_rate`); empty `kinds` means HTTP 500.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Faults {
    pub fail_rate: f64,
    pub fail_next: u32,
    pub kinds: Vec<FaultKind>,
    /// Only mutations fail (reads stay reliable, to test retry logic of writes).
    pub mutations_only: bool,
    /// How long a [`FaultKind::Timeout`] request stalls before being served.
    pub timeout_ms: u64,
    /// `Retry-After` of [`FaultKind::TooManyRequests`].
    pub retry_after_secs: u64,
    /// A `fulfillmentCreate` is applied at once (quantities taken, the
    /// answer names the new fulfillment) but reads show the fulfillment only
    /// this long afterwards, as a store whose reads lag its writes: in
    /// `Order.fulfillments`, `FulfillmentOrder.fulfillments` and lookups by
    /// id. 0: at once.
    pub fulfillments_visible_after_ms: u64,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            fail_rate: 0.0,
            fail_next: 0,
            kinds: Vec::new(),
            mutations_only: false,
            timeout_ms: 30_000,
            retry_after_secs: 2,
            fulfillments_visible_after_ms: 0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// HTTP 500, nothing done.
    Http500,
    /// HTTP 502, nothing done.
    Http502,
    /// HTTP 200 with a `THROTTLED` error, nothing done.
    Throttled,
    /// HTTP 429 with `Retry-After`, nothing done.
    TooManyRequests,
    /// Stall for `timeout_ms`, then serve normally. A client that gave up
    /// does not know whether a mutation landed (if the connection is gone by
    /// then, the server drops the work).
    Timeout,
    /// Perform the request, then answer HTTP 500: the write happened but the
    /// client cannot know.
    ApplyThenDrop,
}

/// One GraphQL request as received, for assertions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedRequest {
    /// The executed operation's name (from the document or `operationName`).
    pub operation_name: Option<String>,
    /// `query` or `mutation`, when the document parsed.
    pub operation_type: Option<String>,
    pub query: String,
    pub variables: serde_json::Value,
    /// HTTP status answered.
    pub status: u16,
    pub fault: Option<FaultKind>,
    /// The GraphQL `errors[].extensions.code`s answered, if any.
    pub error_codes: Vec<String>,
    /// The access token was missing, unknown, expired or revoked (answered
    /// 401).
    pub token_refused: bool,
}

pub(crate) struct Inner {
    access_token: String,
    access_token_scopes: Vec<String>,
    auth: Mutex<auth::Auth>,
    state: Mutex<model::State>,
    bucket: Mutex<cost::Bucket>,
    faults: Mutex<FaultState>,
    requests: Mutex<Vec<RecordedRequest>>,
    api_secret: String,
    allow_http_webhooks: bool,
    hub: Mutex<webhooks::Hub>,
    shop_domain: Mutex<String>,
}

pub(crate) struct FaultState {
    faults: Faults,
    /// Position in `kinds` for `fail_next`.
    turn: usize,
}

/// Locks a mutex; a panic in another request must not wedge the sandbox.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The sandbox: cheap to clone (a handle), `Send + Sync`.
#[derive(Clone)]
pub struct ShopifySandbox {
    inner: Arc<Inner>,
    /// The config named the shop domain (else `start` sets it).
    fixed_shop_domain: bool,
}

impl ShopifySandbox {
    pub fn new(config: SandboxConfig) -> Self {
        let fixed_shop_domain = config.shop_domain.is_some();
        ShopifySandbox {
            inner: Arc::new(Inner {
                access_token: config.access_token,
                access_token_scopes: config.access_token_scopes,
                auth: Mutex::new(auth::Auth::new(config.app)),
                state: Mutex::new(model::State::default()),
                bucket: Mutex::new(cost::Bucket::new(config.throttle)),
                faults: Mutex::new(FaultState {
                    faults: config.faults,
                    turn: 0,
                }),
                requests: Mutex::new(Vec::new()),
                api_secret: config.api_secret,
                allow_http_webhooks: config.allow_http_webhooks,
                hub: Mutex::new(webhooks::Hub::new(
                    &config.webhook_retry_delays_ms,
                    config.webhook_timeout_ms,
                )),
                shop_domain: Mutex::new(
                    config
                        .shop_domain
                        .unwrap_or_else(|| "sandbox.myshopify.com".into()),
                ),
            }),
            fixed_shop_domain,
        }
    }

    /// Runs `f` on the state, then hands the events it raised to the
    /// webhook sender (after the state's lock is released).
    fn change<R>(&self, f: impl FnOnce(&mut model::State) -> R) -> R {
        let (result, events) = {
            let mut st = lock(&self.inner.state);
            let result = f(&mut st);
            (result, st.take_events())
        };
        self.send_events(events);
        result
    }

    /// Turns events into deliveries: one per subscription, signed with the
    /// secret of the subscription's app (an app no longer installed gets
    /// nothing).
    pub(crate) fn send_events(&self, events: Vec<webhooks::Event>) {
        if events.is_empty() {
            return;
        }
        let shop_domain = lock(&self.inner.shop_domain).clone();
        let mut hub = lock(&self.inner.hub);
        for event in events {
            for target in event.targets {
                let secret = match &target.app {
                    webhooks::AppKey::Legacy => Some(self.inner.api_secret.clone()),
                    webhooks::AppKey::Dev(client_id) => lock(&self.inner.auth).secret_of(client_id),
                };
                let Some(secret) = secret else { continue };
                hub.submit(webhooks::Job {
                    topic: event.topic.clone(),
                    event_id: event.event_id.clone(),
                    subscription_id: target.subscription_id,
                    uri: target.uri,
                    secret,
                    body: event.body.clone(),
                    triggered_at: event.triggered_at,
                    shop_domain: shop_domain.clone(),
                });
            }
        }
    }

    /// The HTTP API: `POST /admin/api/{version}/graphql.json`,
    /// `GET /admin/oauth/authorize`, `POST /admin/oauth/access_token` and the
    /// `/_sandbox/...` control endpoints.
    pub fn router(&self) -> axum::Router {
        http::router(self.clone())
    }

    /// Binds `addr` (port 0 picks a free one) and serves in a background task
    /// until the returned handle is dropped.
    pub async fn start(self, addr: SocketAddr) -> std::io::Result<RunningShopify> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        if !self.fixed_shop_domain {
            *lock(&self.inner.shop_domain) = local.to_string();
        }
        let router = self.router();
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router).await {
                tracing::error!(error = %e, "Shopify sandbox server stopped");
            }
        });
        Ok(RunningShopify {
            url: format!("http://{local}"),
            sandbox: self,
            task,
        })
    }

    /// Places an order. Panics on an inconsistent spec (a test bug); use
    /// [`try_create_order`](Self::try_create_order) for specs from outside.
    pub fn create_order(&self, spec: OrderSpec) -> CreatedOrder {
        self.try_create_order(spec)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Places an order; sends `orders/create`.
    pub fn try_create_order(&self, spec: OrderSpec) -> Result<CreatedOrder, SandboxError> {
        self.change(|st| st.create_order(spec))
    }

    /// Cancels an order (by name, with or without `#`) with an
    /// `OrderCancelReason` (`CUSTOMER`, `DECLINED`, `FRAUD`, `INVENTORY`,
    /// `OTHER`, `STAFF`), as a merchant would in the admin: `cancelledAt`
    /// set, current quantities 0, open fulfillment orders CANCELLED, payment
    /// REFUNDED or VOIDED. Sends `orders/cancelled` and `orders/updated`
    /// (and `fulfillment_orders/cancelled`). Refused when something was
    /// fulfilled or the order is already cancelled.
    pub fn cancel_order(&self, name: &str, reason: &str) -> Result<(), SandboxError> {
        self.change(|st| st.cancel_order(name, reason))
    }

    /// Edits an order: quantities raised or lowered (0 removes the line),
    /// lines added; the fulfillment orders follow and `edited` becomes true.
    /// All changes or none. Sends `orders/edited` (the edit only) and
    /// `orders/updated`.
    pub fn edit_order(
        &self,
        name: &str,
        changes: &[LineEdit],
    ) -> Result<EditedOrder, SandboxError> {
        self.change(|st| st.edit_order(name, changes))
    }

    /// Replaces an order's tags. Sends `orders/updated`.
    pub fn set_order_tags(&self, name: &str, tags: &[&str]) -> Result<(), SandboxError> {
        let tags = tags.iter().map(|t| t.to_string()).collect();
        self.change(|st| st.set_tags(name, tags))
    }

    /// Sets an order's `displayFinancialStatus` (e.g. `AUTHORIZED` → `PAID`,
    /// a capture). Sends `orders/updated`, and `orders/paid` on becoming PAID.
    pub fn set_financial_status(&self, name: &str, status: &str) -> Result<(), SandboxError> {
        self.change(|st| st.set_financial_status(name, status))
    }

    /// Puts a fulfillment order on hold with a `FulfillmentHoldReason`
    /// (e.g. `AWAITING_PAYMENT`, `OTHER`): status ON_HOLD, fulfilling it
    /// refused until released. Returns the hold's GID. Sends
    /// `fulfillment_orders/placed_on_hold` and `orders/updated`.
    pub fn hold_fulfillment_order(
        &self,
        fo_id: &str,
        reason: &str,
        reason_notes: Option<&str>,
    ) -> Result<String, SandboxError> {
        self.change(|st| st.hold_fo(fo_id, reason, reason_notes.map(str::to_string)))
    }

    /// Releases every hold of a fulfillment order (back to OPEN, or
    /// IN_PROGRESS when part of it was fulfilled). Sends
    /// `fulfillment_orders/hold_released` and `orders/updated`.
    pub fn release_fulfillment_order(&self, fo_id: &str) -> Result<(), SandboxError> {
        self.change(|st| st.release_fo(fo_id))
    }

    /// Every app's webhook subscriptions, oldest first.
    pub fn webhook_subscriptions(&self) -> Vec<WebhookSubscriptionView> {
        lock(&self.inner.state)
            .subscriptions
            .iter()
            .map(|s| s.view())
            .collect()
    }

    /// Every delivery attempt so far (and every dropped delivery), in the
    /// order they happened.
    pub fn webhook_deliveries(&self) -> Vec<WebhookDelivery> {
        lock(&self.inner.hub).log()
    }

    /// Waits until at least `count` attempts are logged, or `timeout`
    /// passed; returns the log either way.
    pub async fn wait_for_webhook_deliveries(
        &self,
        count: usize,
        timeout: std::time::Duration,
    ) -> Vec<WebhookDelivery> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let log = self.webhook_deliveries();
            if log.len() >= count || tokio::time::Instant::now() >= deadline {
                return log;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    /// Injects delivery faults (replacing the previous ones): lost,
    /// duplicated, or held back to be released out of order.
    pub fn set_webhook_faults(&self, faults: WebhookFaults) {
        lock(&self.inner.hub).set_faults(faults);
    }

    /// Sends the deliveries [`WebhookFaults::hold`] kept back, newest first,
    /// and stops holding. Returns how many there were.
    pub fn release_held_webhooks(&self) -> usize {
        lock(&self.inner.hub).release()
    }

    /// Snapshot of an order by name, with or without `#`.
    pub fn order(&self, name: &str) -> Option<OrderView> {
        let st = lock(&self.inner.state);
        st.find_order_by_name(name).map(|oi| st.view(oi))
    }

    /// Fulfillments created over all orders since the sandbox started.
    pub fn fulfillments_created(&self) -> usize {
        lock(&self.inner.state).fulfillments_created
    }

    pub fn set_faults(&self, faults: Faults) {
        *lock(&self.inner.faults) = FaultState { faults, turn: 0 };
    }

    /// Moves a fulfillment order to any status (ON_HOLD, SCHEDULED, …), as a
    /// merchant or another app would. Panics if it does not exist (a test bug).
    pub fn set_fulfillment_order_status(&self, fo_id: &str, status: &str) {
        self.try_set_fulfillment_order_status(fo_id, status)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn try_set_fulfillment_order_status(
        &self,
        fo_id: &str,
        status: &str,
    ) -> Result<(), SandboxError> {
        self.change(|st| st.set_fo_status(fo_id, status))
    }

    /// Empties the cost bucket, so the next request is throttled.
    pub fn drain_bucket(&self) {
        lock(&self.inner.bucket).drain();
    }

    /// Every GraphQL request received, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.inner.requests).clone()
    }

    /// Installs `app` (replacing the configured one), e.g. to add the
    /// redirect URL of a shipsync started after the sandbox. Tokens issued so
    /// far stay valid; an uninstalled app is installed again.
    pub fn set_app(&self, app: SandboxApp) {
        lock(&self.inner.auth).set_app(app);
    }

    /// Uninstalls the app: every issued access token, refresh token and
    /// pending authorization code is refused from now on, and the client
    /// credentials grant answers `app_not_installed` until the app is
    /// installed again (an approval on the authorize page, or
    /// [`set_app`](Self::set_app)). The legacy config token is unaffected.
    ///
    /// Shopify deletes an uninstalled app's webhook subscriptions; so does
    /// the sandbox (the legacy token's stay).
    pub fn revoke_tokens(&self) {
        let client_id = {
            let mut auth = lock(&self.inner.auth);
            auth.revoke();
            auth.client_id()
        };
        if let Some(client_id) = client_id {
            let app = webhooks::AppKey::Dev(client_id);
            lock(&self.inner.state)
                .subscriptions
                .retain(|s| s.app != app);
        }
    }

    /// Every issued access token expires now (GraphQL answers 401); refresh
    /// tokens stay valid, so a client can refresh.
    pub fn expire_tokens(&self) {
        lock(&self.inner.auth).expire();
    }

    /// Every `POST /admin/oauth/access_token` received, oldest first.
    pub fn token_requests(&self) -> Vec<TokenRequest> {
        lock(&self.inner.auth).requests()
    }
}

/// A sandbox serving HTTP; the server stops when this is dropped.
pub struct RunningShopify {
    /// Base URL, e.g. `http://127.0.0.1:PORT` (the shop URL to configure).
    pub url: String,
    pub sandbox: ShopifySandbox,
    task: tokio::task::JoinHandle<()>,
}

impl RunningShopify {
    /// The GraphQL endpoint for [`API_VERSION`].
    pub fn graphql_url(&self) -> String {
        format!("{}/admin/api/{API_VERSION}/graphql.json", self.url)
    }
}

impl Drop for RunningShopify {
    fn drop(&mut self) {
        self.task.abort();
    }
}
