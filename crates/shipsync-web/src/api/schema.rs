//! The types of `/api/v1`'s bodies, for the OpenAPI document.
//!
//! Requests are read as JSON documents (merge patches, with 422 answers that
//! name the field) and answers are rendered by functions the web UI shares,
//! so most handlers keep `serde_json::Value`: these types say what those
//! documents hold. The integration test `openapi` validates real answers
//! against them, so they cannot drift from what the handlers render.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

/// Every error answer: `{"error": {"code", "message"}}` with a 4xx/5xx
/// status (see `crate::error::ApiError`).
#[derive(Serialize, Deserialize, ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// snake_case code: `malformed` (400), `unauthorized` (401), `forbidden`
    /// (403), `not_found` (404), `has_connections`, `run_in_progress`,
    /// `channel_disabled`, `not_authorization_code`, `in_use`,
    /// `alert_closed`, `conflict` (409), `request_timeout` (408),
    /// `invalid_field`, `private_target`, `credentials_missing`,
    /// `invalid_mapping` (422), `too_many_attempts` (429), `internal` (500),
    /// `send_failed` (502: a notification channel's server refused the test
    /// message), `unavailable` (503, with `Retry-After`).
    pub code: String,
    /// What went wrong and how to fix it; a 422 names the field.
    pub message: String,
    /// `run_in_progress` only: the active run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// `invalid_mapping` only: the rule refused, e.g. `ship_methods.rules[2]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
}

/// A page of a list: `{"items": [...], "next_cursor": "…" | null}`.
#[derive(Serialize, ToSchema)]
pub struct List<T> {
    pub items: Vec<T>,
    /// Pass as `cursor=` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

// ---------------------------------------------------------------- merchants

/// A merchant: the warehouse side and its shipment webhooks.
#[derive(Serialize, ToSchema)]
pub struct Merchant {
    /// `mer_…`
    pub id: String,
    pub name: String,
    pub warehouse: Warehouse,
    pub shipment_webhooks: ShipmentWebhooks,
    pub kit_policy: KitPolicy,
    /// Warehouse carrier name → the store's carrier name.
    pub carrier_overrides: BTreeMap<String, String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
}

#[derive(Serialize, ToSchema)]
pub struct Warehouse {
    /// Always `deposco`.
    pub platform: String,
    /// Base URL; requests go to `{api_url}/shipments/outboundShipments`, …
    pub api_url: String,
    pub business_unit: String,
    /// The credentials, secrets shown only as `…_set`; `null` when none.
    pub auth: Option<WarehouseAuth>,
}

// Described only: the renderer writes this as JSON.
#[allow(dead_code)]
#[derive(Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WarehouseAuth {
    Basic {
        username: String,
        password_set: bool,
    },
    Oauth {
        token_url: String,
        client_id: String,
        client_secret_set: bool,
        refresh_token_set: bool,
    },
}

#[derive(Serialize, ToSchema)]
pub struct ShipmentWebhooks {
    pub enabled: bool,
    pub shared_secret_set: bool,
    /// `true` when a shared secret is set (deliveries must be signed).
    pub signed: bool,
    /// Where Deposco posts shipments: `{public_url}/webhooks/deposco/whk_…`.
    pub url: String,
}

/// `complete_kits`: a kit line counts as shipped only when all its
/// components have; `first_component`: when the first one has.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum KitPolicy {
    CompleteKits,
    FirstComponent,
}

/// A new merchant. Unknown fields → 422.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct MerchantInput {
    /// At most 200 characters.
    name: String,
    /// Default: Deposco at `https://api.deposco.com/latest`, no credentials.
    warehouse: Option<WarehouseInput>,
    shipment_webhooks: Option<ShipmentWebhooksInput>,
    /// Default `complete_kits`.
    kit_policy: Option<KitPolicy>,
    carrier_overrides: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct WarehouseInput {
    /// `deposco` (the default), the only warehouse so far.
    platform: Option<String>,
    /// Default `https://api.deposco.com/latest`; a public http(s) URL
    /// unless private targets are allowed (else 422 `private_target`).
    api_url: Option<String>,
    business_unit: Option<String>,
    auth: Option<WarehouseAuthInput>,
}

#[derive(Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
#[allow(dead_code)]
pub enum WarehouseAuthInput {
    Basic {
        username: String,
        /// Write-only; left out of a PATCH: kept.
        password: Option<String>,
    },
    Oauth {
        token_url: String,
        client_id: String,
        /// Write-only.
        client_secret: Option<String>,
        /// Write-only.
        refresh_token: Option<String>,
    },
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct ShipmentWebhooksInput {
    enabled: Option<bool>,
    /// Write-only; at least 16 bytes (after `whsec_` decoding); blank or
    /// `null`: no signature required.
    shared_secret: Option<String>,
}

/// A JSON merge patch (RFC 7396) of a merchant: any part of
/// `MerchantInput` (nested objects may be partial), `null` clears a
/// nullable field, a secret left out is kept. Read-only fields sent back
/// (`id`, `created_at`, `…_set`, `url`, `signed`) are ignored.
#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct MerchantPatch {
    name: Option<String>,
    /// Part of `WarehouseInput`; a new `auth.type` replaces the whole auth.
    warehouse: Option<BTreeMap<String, Value>>,
    /// Part of `ShipmentWebhooksInput`.
    shipment_webhooks: Option<BTreeMap<String, Value>>,
    kit_policy: Option<KitPolicy>,
    carrier_overrides: Option<BTreeMap<String, Option<String>>>,
}

/// Optional body of `POST …/webhook-key/rotate` (or `?revoke_old=true`).
#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct RotateKey {
    /// The old key (and any key still in its 24 h grace) stops working at
    /// once instead of after 24 h.
    revoke_old: Option<bool>,
}

// -------------------------------------------------------------- connections

/// A connection: one store of a merchant.
#[derive(Serialize, ToSchema)]
pub struct Connection {
    /// `con_…`
    pub id: String,
    pub name: String,
    pub merchant_id: String,
    pub enabled: bool,
    pub order_prefix: String,
    pub store: Store,
    pub store_status: StoreStatus,
    /// Why the store refused the credentials (with `reconnect_needed`).
    pub store_error: Option<String>,
    pub order_rules: OrderRules,
    pub order_webhooks: OrderWebhooks,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
}

/// Which store orders the Sales Orders channel sends, and when
/// (merge-patchable; the values shown are the defaults).
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderRules {
    /// Shopify's `displayFinancialStatus` values to import, e.g. `PAID`,
    /// `AUTHORIZED`, `PARTIALLY_PAID`. Default `["PAID"]`.
    pub financial_statuses: Vec<String>,
    /// Send orders already partly fulfilled (only what is unfulfilled).
    /// Default false.
    pub include_partially_fulfilled: bool,
    /// Minutes an order waits before it goes to the warehouse (at most
    /// 10080); a cancellation or edit meanwhile costs nothing there.
    /// Default 0.
    pub hold_minutes: u32,
    /// Tags that hold an order until removed. Default `["HOLD"]`.
    pub hold_tags: Vec<String>,
    /// Tags that keep an order from ever being sent. Default empty.
    pub exclude_tags: Vec<String>,
    /// Shopify location ids (`gid://shopify/Location/N` or `N`) whose lines
    /// are sent; empty = every location.
    pub location_ids: Vec<String>,
}

/// The store's order webhook subscriptions (read-only).
#[derive(Serialize, ToSchema)]
pub struct OrderWebhooks {
    /// Where the store delivers: `{public_url}/webhooks/shopify/{id}`.
    pub url: String,
    /// Subscribed topics (`ORDERS_CREATE`, `ORDERS_UPDATED`,
    /// `ORDERS_CANCELLED`, `ORDERS_EDITED`).
    pub topics: Vec<String>,
    /// Every order topic is subscribed (the Sales Orders channel is on).
    pub subscribed: bool,
    #[schema(format = DateTime)]
    pub checked_at: Option<String>,
    /// Why the last check failed.
    pub error: Option<String>,
}

// Described only: the renderer writes this as JSON.
#[allow(dead_code)]
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StoreStatus {
    Ok,
    ReconnectNeeded,
}

#[derive(Serialize, ToSchema)]
pub struct Store {
    /// Always `shopify`.
    pub platform: String,
    pub shop_url: String,
    /// Like `2026-10`, or `unstable`.
    pub api_version: String,
    pub location_id: Option<String>,
    pub notify_customer: bool,
    /// A legacy access token is stored.
    pub access_token_set: bool,
    /// The app's API secret key is stored (signs order webhooks with a
    /// legacy access token).
    pub api_secret_set: bool,
    pub auth: StoreAuth,
}

/// How the store authenticates, as answers show it.
#[derive(Serialize, ToSchema)]
pub struct StoreAuth {
    #[serde(rename = "type")]
    pub kind: StoreAuthType,
    pub client_id: Option<String>,
    /// A token is held.
    pub connected: bool,
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
    /// What the store granted; `null` until known.
    pub scopes: Option<Vec<String>>,
    /// Scopes the enabled channels need and the store did not grant.
    pub missing_scopes: Option<Vec<String>>,
    /// `access_token` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_token_set: Option<bool>,
    /// `client_credentials` and `authorization_code` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret_set: Option<bool>,
    /// `authorization_code` asking for scopes other than shipsync's default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requested_scopes: Option<Vec<String>>,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StoreAuthType {
    AccessToken,
    ClientCredentials,
    AuthorizationCode,
}

/// A new connection (off until `enabled`). Unknown fields → 422.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct ConnectionInput {
    /// At most 200 characters.
    name: String,
    merchant_id: String,
    /// Default false; true needs the credentials (else 422
    /// `credentials_missing`).
    enabled: Option<bool>,
    /// At most 20 characters, put before the store order name in the
    /// warehouse order number.
    order_prefix: Option<String>,
    store: StoreInput,
    /// Any part of the rules; the rest are the defaults.
    order_rules: Option<OrderRulesPatch>,
}

/// A part of `OrderRules` (unknown fields → 422).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct OrderRulesPatch {
    financial_statuses: Option<Vec<String>>,
    include_partially_fulfilled: Option<bool>,
    hold_minutes: Option<u32>,
    hold_tags: Option<Vec<String>>,
    exclude_tags: Option<Vec<String>>,
    location_ids: Option<Vec<String>>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct StoreInput {
    /// `shopify` (the default), the only store so far.
    platform: Option<String>,
    /// A public http(s) URL unless private targets are allowed.
    shop_url: String,
    /// Legacy access token (write-only); same as `auth.type`
    /// `access_token`.
    access_token: Option<String>,
    /// Default `2026-10`.
    api_version: Option<String>,
    location_id: Option<String>,
    /// Default true.
    notify_customer: Option<bool>,
    auth: Option<StoreAuthInput>,
    /// Write-only: the Shopify app's API secret key, which signs its order
    /// webhooks; needed with a legacy access token only (an app's
    /// `client_secret` signs them otherwise).
    api_secret: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct StoreAuthInput {
    #[serde(rename = "type")]
    kind: StoreAuthType,
    /// `client_credentials` and `authorization_code`: the app's client id.
    client_id: Option<String>,
    /// Write-only: the app's client secret.
    client_secret: Option<String>,
    /// `authorization_code`: scopes to ask for (default: shipsync's set).
    scopes: Option<Vec<String>>,
    /// `access_token`: the token (write-only).
    access_token: Option<String>,
}

/// A JSON merge patch (RFC 7396) of a connection: any part of
/// `ConnectionInput` (`store` may be partial); read-only fields sent back
/// are ignored. A new `shop_url` clears the stored secrets unless given
/// again.
#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct ConnectionPatch {
    name: Option<String>,
    merchant_id: Option<String>,
    enabled: Option<bool>,
    order_prefix: Option<String>,
    /// Part of `StoreInput`.
    store: Option<BTreeMap<String, Value>>,
    order_rules: Option<OrderRulesPatch>,
}

/// `{"authorize_url"}`: where to send the browser to install the app.
#[derive(Serialize, ToSchema)]
pub struct AuthorizeLink {
    pub authorize_url: String,
}

// ----------------------------------------------------------------- channels

/// A channel of a connection: `sales_orders` or `shipments`.
#[derive(Serialize, ToSchema)]
pub struct Channel {
    pub channel: ChannelName,
    pub enabled: bool,
    pub schedules: Vec<Schedule>,
    #[schema(format = DateTime)]
    pub last_completed_at: Option<String>,
    #[schema(format = DateTime)]
    pub next_run_at: Option<String>,
    pub last_run: Option<Run>,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChannelName {
    SalesOrders,
    Shipments,
}

/// The path of a connection's channel: `…/connections/{id}/channels/{channel}`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct ChannelPath {
    /// `con_…`
    id: String,
    channel: ChannelName,
}

/// When a channel runs ("every N" counts from local midnight).
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Schedule {
    Daily {
        /// `sch_…`; given by the server when left out.
        id: Option<String>,
        /// `HH:MM`, local time.
        at: String,
        /// IANA name, e.g. `America/New_York`.
        time_zone: String,
    },
    Hourly {
        id: Option<String>,
        every: u32,
        minute: u32,
        time_zone: String,
    },
    Minutely {
        id: Option<String>,
        every: u32,
        time_zone: String,
    },
    Flexible {
        id: Option<String>,
        /// `mon` … `sun`.
        weekdays: Vec<String>,
        /// Inclusive.
        start_hour: u32,
        /// Exclusive.
        end_hour: u32,
        every_minutes: u32,
        time_zone: String,
    },
}

/// `enabled` and/or `schedules` (replaces the whole set; `null`: none).
/// Read-only fields sent back are ignored; others → 422.
#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct ChannelPatch {
    enabled: Option<bool>,
    schedules: Option<Vec<Schedule>>,
}

/// A run of a channel (an import or a push).
#[derive(Serialize, ToSchema)]
pub struct Run {
    /// `run_…`
    pub id: String,
    pub status: RunStatus,
    /// What started it: `schedule`, `manual`, …
    pub trigger: String,
    #[schema(format = DateTime)]
    pub started_at: Option<String>,
    #[schema(format = DateTime)]
    pub finished_at: Option<String>,
    pub counts: RunCounts,
    pub error: Option<String>,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
}

/// Records seen so far (absent until the run has counted).
#[derive(Serialize, ToSchema)]
pub struct RunCounts {
    pub fetched: Option<u64>,
    pub new: Option<u64>,
    pub updated: Option<u64>,
    pub unchanged: Option<u64>,
    pub failed: Option<u64>,
    pub pages: Option<u64>,
}

/// `202 {"id": "run_…", "status": "queued"}`.
#[derive(Serialize, ToSchema)]
pub struct RunQueued {
    pub id: String,
    #[schema(value_type = RunStatus)]
    pub status: String,
}

// ---------------------------------------------------------------- shipments

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ShipmentStatus {
    New,
    Open,
    Completed,
    Error,
    Archived,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Webhook,
    Poll,
}

/// A shipment as lists show it.
#[derive(Serialize, ToSchema)]
pub struct ShipmentSummary {
    /// `shp_…`
    pub id: String,
    pub merchant_id: String,
    pub connection_id: Option<String>,
    pub status: ShipmentStatus,
    /// The reason in `error`, and the last failure's while it waits to retry.
    pub error: Option<String>,
    /// The store's order name when known, else the warehouse's reference.
    pub order_name: String,
    pub warehouse_shipment_number: String,
    pub sources: Vec<Source>,
    pub first_seen_via: Source,
    #[schema(format = DateTime)]
    pub received_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
    #[schema(format = DateTime)]
    pub completed_at: Option<String>,
}

/// A shipment with its packages, lines, store fulfillments and activity
/// (`warehouse_status` … `lines` only when its stored version is readable).
#[derive(Serialize, ToSchema)]
pub struct Shipment {
    #[serde(flatten)]
    pub summary: ShipmentSummary,
    /// The warehouse's status: `new`, `shipping`, `shipped`, `rolled_back`,
    /// or `{"other": "<text>"}`.
    pub warehouse_status: Option<Value>,
    pub carrier: Option<String>,
    pub service: Option<String>,
    /// As the warehouse wrote it.
    pub shipped_at: Option<String>,
    pub packages: Option<Vec<Package>>,
    pub lines: Option<Vec<ShipmentLine>>,
    pub store_fulfillments: Vec<StoreFulfillment>,
    /// The store order's id, once matched.
    pub store_order_id: Option<String>,
    pub activity: Vec<Activity>,
}

#[derive(Serialize, ToSchema)]
pub struct Package {
    /// Container number / LPN; `shipment` for the implicit single package.
    pub key: String,
    pub tracking_number: Option<String>,
    pub carrier: Option<String>,
    pub service: Option<String>,
    pub lines: Vec<PackageLine>,
}

#[derive(Serialize, ToSchema)]
pub struct PackageLine {
    pub sku: String,
    pub quantity: u64,
}

#[derive(Serialize, ToSchema)]
pub struct ShipmentLine {
    pub line_number: String,
    pub sku: String,
    pub quantity: u64,
    pub store_line_id: Option<String>,
    /// Set for a kit component: the kit's SKU.
    pub kit_sku: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct StoreFulfillment {
    /// The store's fulfillment id, once created.
    pub id: Option<String>,
    pub state: String,
    pub store_order_id: String,
    pub fulfillment_order_id: String,
    pub carrier: Option<String>,
    /// Quantities per store line.
    pub quantities: Value,
    pub tracking_numbers: Vec<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
}

/// One line of a record's history.
#[derive(Serialize, ToSchema)]
pub struct Activity {
    #[schema(format = DateTime)]
    pub at: String,
    pub kind: String,
    pub message: String,
}

// ------------------------------------------------------------------- orders

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    New,
    /// Waiting for its hold period, a hold tag to go, a payment or a
    /// Shopify fulfillment hold (`hold_reason`).
    Held,
    Queued,
    /// Sent to the warehouse.
    Open,
    PartiallyShipped,
    Shipped,
    /// Cancelled in the store (and in the warehouse when it had it).
    Cancelled,
    /// The store changed it after the warehouse could no longer follow:
    /// `error` says what a person must do.
    NeedsAttention,
    Error,
    /// Every line fulfilled or cancelled in the store.
    Closed,
    Archived,
}

/// How shipsync first learned of an order.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FirstSeenVia {
    Webhook,
    Poll,
}

/// A store order as lists show it.
#[derive(Serialize, ToSchema)]
pub struct OrderSummary {
    /// `ord_…`
    pub id: String,
    pub connection_id: String,
    /// The store's order name, e.g. `#1001`.
    pub name: String,
    pub status: OrderStatus,
    /// In `error`, what a person must do; else the last failure while it
    /// waits to retry.
    pub error: Option<String>,
    pub store_order_id: String,
    pub warehouse_order_number: Option<String>,
    pub warehouse_order_id: Option<String>,
    #[schema(format = DateTime)]
    pub sent_at: Option<String>,
    /// An order webhook or a pull (`poll`).
    pub first_seen_via: FirstSeenVia,
    /// Why a `held` order waits.
    pub hold_reason: Option<String>,
    /// When a `held` order's hold period ends.
    #[schema(format = DateTime)]
    pub hold_until: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
}

/// A store order with its lines, shipments and activity.
#[derive(Serialize, ToSchema)]
pub struct Order {
    #[serde(flatten)]
    pub summary: OrderSummary,
    pub lines: Vec<OrderLine>,
    /// Ids (`shp_…`) of the shipments of this order.
    pub shipments: Vec<String>,
    pub activity: Vec<Activity>,
}

#[derive(Serialize, ToSchema)]
pub struct OrderLine {
    pub id: String,
    pub sku: Option<String>,
    pub name: Option<String>,
    pub quantity: u64,
    pub sent_quantity: u64,
    pub shipped_quantity: u64,
    pub fulfilled_quantity: u64,
    /// Why the line sends nothing to the warehouse:
    /// `does_not_require_shipping`, `other_location`, `fulfillment_hold`,
    /// `removed` or `fulfilled`; `null` when it is sent.
    pub skipped: Option<String>,
    /// The store's bundle title, when the line is part of one.
    pub group: Option<String>,
    /// Kit components when the SKU is a known kit.
    pub kit: Option<Kit>,
}

#[derive(Serialize, ToSchema)]
pub struct Kit {
    pub components: Vec<KitComponent>,
}

#[derive(Serialize, ToSchema)]
pub struct KitComponent {
    pub sku: String,
    /// Units per kit.
    pub quantity: u64,
}

// ------------------------------------------------------------------- events

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Accepted,
    NeedsAttention,
    Rejected,
    TooLarge,
    InvalidSignature,
}

/// An inbound webhook delivery as lists show it (no body, no headers).
#[derive(Serialize, ToSchema)]
pub struct EventSummary {
    /// `evt_…`
    pub id: String,
    pub merchant_id: String,
    /// A store's order delivery (`POST /webhooks/shopify/{connection}`):
    /// its connection; `null` for the merchant's Deposco deliveries.
    pub connection_id: Option<String>,
    #[schema(format = DateTime)]
    pub received_at: String,
    /// The signature was checked and good.
    pub verified: bool,
    pub outcome: Outcome,
    pub detail: Option<String>,
    /// Body size in bytes.
    pub size: i64,
    pub repeat_count: i64,
    /// Only for Standard-Webhooks-verified deliveries.
    pub webhook_id: Option<String>,
    pub shipment_ids: Vec<String>,
}

/// An event with its stored headers (signatures redacted) and raw body.
#[derive(Serialize, ToSchema)]
pub struct Event {
    #[serde(flatten)]
    pub summary: EventSummary,
    /// `[name, value]` pairs, the allowlisted ones.
    pub headers: Vec<(String, String)>,
    /// `null` when not kept (too large, or past retention).
    pub body: Option<String>,
    /// How `body` is written (absent when it is `null`).
    pub body_encoding: Option<BodyEncoding>,
}

// Described only: the renderer writes this as JSON.
#[allow(dead_code)]
#[derive(Serialize, ToSchema)]
pub enum BodyEncoding {
    #[serde(rename = "utf-8")]
    Utf8,
    #[serde(rename = "base64")]
    Base64,
}

/// `202 {"status": "queued", "event"}`.
#[derive(Serialize, ToSchema)]
pub struct Replayed {
    /// Always `queued`.
    pub status: String,
    #[schema(value_type = EventSummary)]
    pub event: Value,
}

// -------------------------------------------------------- users and tokens

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Staff,
    Merchant,
}

/// A web-UI user.
#[derive(Serialize, ToSchema)]
pub struct User {
    /// `usr_…`
    pub id: String,
    pub email: String,
    #[schema(value_type = Role)]
    pub role: String,
    /// A Merchant user's merchant (and a Staff user's one merchant).
    pub merchant_id: Option<String>,
    /// A Staff user's merchants, or a Merchant user's own.
    pub merchant_ids: Vec<String>,
    /// Administrators true, Merchant users false; Staff: sees every merchant.
    pub all_merchants: bool,
    #[schema(format = DateTime)]
    pub created_at: String,
}

/// A new user.
#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct UserInput {
    email: String,
    /// Write-only.
    password: String,
    role: Role,
    merchant_id: Option<String>,
    merchant_ids: Option<Vec<String>>,
    /// Staff only; `true` with a non-empty `merchant_ids` → 422.
    all_merchants: Option<bool>,
}

/// What may change of a user (omitted: unchanged; the merchants are
/// replaced as a whole when either field is given). Other fields → 422.
#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct UserPatch {
    role: Option<Role>,
    merchant_id: Option<String>,
    merchant_ids: Option<Vec<String>>,
    all_merchants: Option<bool>,
}

/// One of the caller's API tokens (never its value).
#[derive(Serialize, ToSchema)]
pub struct Token {
    pub id: String,
    pub name: String,
    /// The token's first characters, to tell tokens apart.
    pub prefix: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub last_used_at: Option<String>,
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
}

/// A new token: `token` is shown in this answer only.
#[derive(Serialize, ToSchema)]
pub struct NewToken {
    #[serde(flatten)]
    pub token: Token,
    /// Send as `Authorization: Bearer <token>`.
    #[serde(rename = "token")]
    pub value: String,
}

#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct TokenInput {
    name: Option<String>,
    /// 1–3650; left out: never expires.
    #[schema(minimum = 1, maximum = 3650)]
    expires_in_days: Option<i64>,
}

// ----------------------------------------------------------------- mappings

/// A merchant's mappings (`shipsync_core::mappings::Mappings`): how store
/// shipping methods become Deposco's, which warehouse item a store SKU is,
/// what a kit is made of, and what the store calls a warehouse carrier.
/// PUT takes the whole document, PATCH a JSON merge patch of it; unknown
/// fields and bad rules → 422 `invalid_mapping` naming the rule.
// Described only: the engine reads and writes the document.
#[allow(dead_code)]
#[derive(Serialize, Deserialize, ToSchema)]
#[schema(as = Mappings)]
pub struct MappingsDoc {
    pub ship_methods: ShipMethodsDoc,
    /// Store SKU → warehouse item number; one store SKU is one item,
    /// several store SKUs may be one item.
    pub sku_aliases: Vec<SkuAliasDoc>,
    /// A person's recipes (`source` `person`) and, shown, those learned
    /// from the warehouse (`webhook`, `items`); a person's wins.
    pub kit_recipes: Vec<KitRecipeDoc>,
    pub carriers: Vec<CarrierDoc>,
}

#[allow(dead_code)]
#[derive(Serialize, Deserialize, ToSchema)]
#[schema(as = ShipMethods)]
pub struct ShipMethodsDoc {
    /// In order; the first that matches wins.
    pub rules: Vec<ShipMethodRuleDoc>,
    /// For a shipping line no rule takes; `null`: such an order goes to
    /// `error` ("unmapped shipping method …") until a rule exists.
    pub default: Option<ShipTargetDoc>,
}

#[allow(dead_code)]
#[derive(Serialize, Deserialize, ToSchema)]
#[schema(as = ShipMethodRule)]
pub struct ShipMethodRuleDoc {
    #[serde(rename = "match")]
    pub matches: ShipMatchDoc,
    /// Compare ignoring case and surrounding spaces (default `true`).
    pub case_insensitive: bool,
    /// Deposco's `shipVia`.
    pub ship_via: String,
    /// Sent as Deposco's `shipVendor` when given.
    pub carrier: Option<String>,
    /// Sent as Deposco's `shipMethod` when given.
    pub service: Option<String>,
}

/// The store shipping line's fields a rule compares; `null` matches any.
#[allow(dead_code)]
#[derive(Serialize, Deserialize, ToSchema)]
#[schema(as = ShipMatch)]
pub struct ShipMatchDoc {
    pub title: Option<String>,
    pub code: Option<String>,
    pub carrier_identifier: Option<String>,
    pub source: Option<String>,
}

#[allow(dead_code)]
#[derive(Serialize, Deserialize, ToSchema)]
#[schema(as = ShipTarget)]
pub struct ShipTargetDoc {
    pub ship_via: String,
    pub carrier: Option<String>,
    pub service: Option<String>,
}

#[allow(dead_code)]
#[derive(Serialize, Deserialize, ToSchema)]
#[schema(as = SkuAlias)]
pub struct SkuAliasDoc {
    pub store_sku: String,
    pub warehouse_item: String,
}

#[allow(dead_code)]
#[derive(Serialize, Deserialize, ToSchema)]
#[schema(as = KitRecipe)]
pub struct KitRecipeDoc {
    pub kit_sku: String,
    pub components: Vec<KitComponentDoc>,
    pub source: RecipeSource,
}

#[allow(dead_code)]
#[derive(Serialize, Deserialize, ToSchema)]
#[schema(as = KitComponent)]
pub struct KitComponentDoc {
    pub sku: String,
    /// Units per kit, at least 1.
    pub quantity: u64,
}

/// Where a recipe came from: set by a `person`, learned from a shipment's
/// kit links (`webhook`, by webhook or pull) or Deposco's `items`.
#[allow(dead_code)]
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RecipeSource {
    Person,
    Webhook,
    Items,
}

#[allow(dead_code)]
#[derive(Serialize, Deserialize, ToSchema)]
#[schema(as = CarrierMapping)]
pub struct CarrierDoc {
    /// As Deposco writes it (`shipVendor`), compared ignoring case.
    pub warehouse_carrier: String,
    /// The store fulfillment's tracking company.
    pub store_company: String,
    /// A URL with `{tracking_number}`; `null`: the store's own link.
    pub tracking_url_template: Option<String>,
}

/// What a mappings document would change (`POST …/mappings/preview`): the
/// merchant's latest orders and shipments whose output or state differs
/// from what the mappings in force give; the others are left out.
// Described only: the engine builds the answer.
#[allow(dead_code)]
#[derive(Serialize, Deserialize, ToSchema)]
pub struct MappingsPreview {
    pub items: Vec<MappingsPreviewItem>,
}

/// One record an edit would change.
#[allow(dead_code)]
#[derive(Serialize, Deserialize, ToSchema)]
pub struct MappingsPreviewItem {
    /// `order` or `shipment`.
    pub kind: String,
    /// `ord_…` or `shp_…`.
    pub id: String,
    /// The store order's name.
    pub name: String,
    pub changes: Vec<MappingsPreviewChange>,
    pub status_before: String,
    /// An order in `error` for an unmapped shipping method that the edit
    /// maps: `queued`; an order not sent yet that the edit leaves unmapped:
    /// `error`; a shipment in `error` the ledger refuses now and places with
    /// the edit: `completed`. Else as before.
    pub status_after: String,
}

/// One value that would change.
#[allow(dead_code)]
#[derive(Serialize, Deserialize, ToSchema)]
pub struct MappingsPreviewChange {
    /// Orders: `shipVia`, `shipVendor`, `shipMethod`,
    /// `orderLines[<lineNumber>].item`, `error` (why it would not be sent);
    /// shipments: `lines[<line_number>].store_sku`, `store_lines[<store
    /// line id>]` (units the ledger gives it), `ledger_error`,
    /// `kit[<sku>].recipe`, `carrier`, `tracking_url`.
    pub field: String,
    pub before: Value,
    pub after: Value,
}

// ------------------------------------------- outbound events (issue 16)

/// An outbound event type.
#[derive(Serialize, Deserialize, ToSchema)]
pub enum EventType {
    #[serde(rename = "shipment.completed")]
    ShipmentCompleted,
    #[serde(rename = "shipment.error")]
    ShipmentError,
    #[serde(rename = "order.sent")]
    OrderSent,
    #[serde(rename = "order.error")]
    OrderError,
    #[serde(rename = "order.cancelled")]
    OrderCancelled,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionStatus {
    /// Deliveries go through (or have not failed for good).
    Active,
    /// A delivery exhausted its retries; the next one that succeeds (a
    /// replay, say) makes it `active` again.
    Failing,
}

/// A merchant's event subscription. Its secret is never shown again after
/// the answer that made it (`secret_set`).
#[derive(Serialize, ToSchema)]
pub struct EventSubscription {
    /// `evs_…`
    pub id: String,
    pub merchant_id: String,
    /// Where events are posted.
    pub url: String,
    pub events: Vec<EventType>,
    pub enabled: bool,
    pub status: SubscriptionStatus,
    /// Since when deliveries fail (`status` `failing`).
    #[schema(format = DateTime)]
    pub failing_since: Option<String>,
    /// Always `true`: a secret signs every delivery.
    pub secret_set: bool,
    /// Until when the secret a rotation replaced still signs deliveries
    /// (beside the new one); `null` when none does.
    #[schema(format = DateTime)]
    pub previous_secret_until: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
}

/// A subscription with its secret: the answer of its creation and of a
/// rotation, the only ones that show it.
#[derive(Serialize, ToSchema)]
pub struct EventSubscriptionWithSecret {
    #[serde(flatten)]
    pub subscription: EventSubscription,
    /// `whsec_` + base64 of 32 random bytes: verify deliveries with it
    /// (Standard Webhooks). Shown this once.
    pub secret: String,
}

// Described only: the engine reads the JSON document.
#[allow(dead_code)]
#[derive(Deserialize, ToSchema)]
pub struct EventSubscriptionInput {
    /// `https://…` (plain `http` only where `SHIPSYNC_ALLOW_PRIVATE_TARGETS`
    /// is set); its host must be public unless that setting allows others.
    pub url: String,
    /// At least one.
    pub events: Vec<EventType>,
    /// Default `true`.
    pub enabled: Option<bool>,
}

// Described only: the engine reads the JSON document.
#[allow(dead_code)]
#[derive(Deserialize, ToSchema)]
pub struct EventSubscriptionPatch {
    pub url: Option<String>,
    pub events: Option<Vec<EventType>>,
    /// Switching it back on sends the deliveries that waited.
    pub enabled: Option<bool>,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    Pending,
    Delivered,
    Failed,
}

/// One attempt of a delivery.
#[derive(Serialize, ToSchema)]
pub struct DeliveryAttempt {
    #[schema(format = DateTime)]
    pub at: String,
    /// The answer's HTTP status; `null`: no answer (refused, timed out).
    pub status_code: Option<u16>,
    pub latency_ms: i64,
    /// The start of the answer (at most 1 KiB).
    pub excerpt: Option<String>,
    /// Why it did not count as delivered (`null` for a 2xx).
    pub error: Option<String>,
}

/// One event's delivery to the subscription.
#[derive(Serialize, ToSchema)]
pub struct EventDelivery {
    /// `dlv_…`
    pub id: String,
    /// `msg_…`: the `webhook-id` of every attempt.
    pub event_id: String,
    pub event_type: EventType,
    /// The shipment or order it is about.
    pub subject_id: String,
    pub state: DeliveryState,
    /// Oldest first.
    pub attempts: Vec<DeliveryAttempt>,
    /// When the next attempt is due (`pending` only).
    #[schema(format = DateTime)]
    pub next_attempt_at: Option<String>,
    pub last_error: Option<String>,
    /// The body every attempt posts.
    pub event: Option<OutboundEvent>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
}

/// The body of a delivery, signed per Standard Webhooks (`webhook-id`,
/// `webhook-timestamp`, `webhook-signature`).
#[derive(Serialize, ToSchema)]
#[schema(example = json!({
    "type": "shipment.completed",
    "timestamp": "2026-12-04T10:15:02.123456Z",
    "data": {
        "shipment_id": "shp_01jey6v4k8m3q2r7s9t0v1w2x3",
        "shipment_number": "SHP-100045",
        "merchant_id": "mer_01jey6r0a1b2c3d4e5f6g7h8j9",
        "connection_id": "con_01jey6s9z8y7x6w5v4t3s2r1q0",
        "store_order": {"id": "gid://shopify/Order/5012345678901", "name": "#1001"},
        "packages": [{"key": "LPN-1", "tracking_number": "1Z999AA10123456784",
                      "tracking_url": null, "carrier": "UPS", "service": "UPS Ground"}],
        "lines": [{"sku": "TENT-2P", "quantity": 1}, {"sku": "STAKES-8", "quantity": 2}],
        "store_fulfillment_ids": ["gid://shopify/Fulfillment/4123456789012"],
        "error": null
    }
}))]
pub struct OutboundEvent {
    #[serde(rename = "type")]
    pub kind: EventType,
    /// When it happened (RFC 3339, UTC).
    #[schema(format = DateTime)]
    pub timestamp: String,
    pub data: OutboundEventData,
}

/// `data`: a shipment's (`shipment.*`) or an order's (`order.*`).
// Described only: the renderer writes the stored body.
#[allow(dead_code)]
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum OutboundEventData {
    Shipment(ShipmentEventData),
    Order(OrderEventData),
}

/// `data` of `shipment.completed` and `shipment.error`.
#[derive(Serialize, ToSchema)]
pub struct ShipmentEventData {
    pub shipment_id: String,
    /// Deposco's shipment number.
    pub shipment_number: String,
    pub merchant_id: String,
    pub connection_id: Option<String>,
    /// `null` while no store order is matched.
    pub store_order: Option<StoreOrderRef>,
    pub packages: Vec<EventPackage>,
    pub lines: Vec<EventLine>,
    /// The store fulfillments that carry it.
    pub store_fulfillment_ids: Vec<String>,
    /// Why shipsync gave up (`shipment.error`); else `null`.
    pub error: Option<String>,
}

/// `data` of `order.sent`, `order.error` and `order.cancelled`.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({
    "order_id": "ord_01jey7a2b3c4d5e6f7g8h9j0k1",
    "merchant_id": "mer_01jey6r0a1b2c3d4e5f6g7h8j9",
    "connection_id": "con_01jey6s9z8y7x6w5v4t3s2r1q0",
    "store_order": {"id": "gid://shopify/Order/5012345678902", "name": "#1002"},
    "warehouse_order_number": "SS-1002",
    "lines": [{"sku": "TENT-2P", "quantity": 1}],
    "error": null,
    "reason": null
}))]
pub struct OrderEventData {
    pub order_id: String,
    pub merchant_id: String,
    pub connection_id: String,
    pub store_order: StoreOrderRef,
    /// Deposco's order number, once sent.
    pub warehouse_order_number: Option<String>,
    pub lines: Vec<EventLine>,
    /// Why it could not be sent (`order.error`).
    pub error: Option<String>,
    /// Why it was cancelled (`order.cancelled`).
    pub reason: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct StoreOrderRef {
    /// The store's id (Shopify GID).
    pub id: String,
    /// e.g. `#1001`.
    pub name: String,
}

#[derive(Serialize, ToSchema)]
pub struct EventPackage {
    /// The warehouse's package key (LPN).
    pub key: String,
    pub tracking_number: Option<String>,
    /// From the merchant's carrier mapping or the warehouse; `null` when
    /// neither gives one.
    pub tracking_url: Option<String>,
    /// As the store shows it.
    pub carrier: Option<String>,
    pub service: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct EventLine {
    pub sku: Option<String>,
    pub quantity: u64,
}
