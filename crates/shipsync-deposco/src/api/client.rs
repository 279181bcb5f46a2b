use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use jiff::Timestamp;
use reqwest::{Method, StatusCode, header};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use shipsync_outbound::{BodyError, TargetPolicy};
use tokio::sync::Mutex;
use tokio::time::Instant;
use url::Url;

use super::lifecycle::{SalesOrderStage, same_status};
use super::model::{self, Collection};
use super::{
    Auth, DeposcoConfig, DeposcoError, FailedShipment, Item, PulledShipment, RateBudget,
    RetryPolicy, SalesOrderLine, ShipmentPage,
};

/// Guards against a server that always says "next page" (nested line lists
/// and lookups; the shipment pull pages under the caller's control).
const MAX_PAGES: usize = 1000;
/// Pages scanned by a lookup whose filter Deposco might ignore.
const MAX_LOOKUP_PAGES: usize = 50;
/// A `Retry-After` longer than this is not slept through inside a call: the
/// call returns `RateLimited` and the caller reschedules.
const MAX_IN_CALL_WAIT: Duration = Duration::from_secs(30);
/// 429 without `Retry-After`.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);
/// Tokens are refreshed this long before Deposco says they expire.
const TOKEN_MARGIN: Duration = Duration::from_secs(60);
/// Largest answer read: a page holds at most 100 shipments (`MAX_PAGE_SIZE`)
/// with their nested lines, well under this; more is not Deposco.
pub const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// Deposco REST client for one connection (API base, business unit,
/// credentials). Clones share the access token, the request counter and the
/// account's [`RateBudget`].
#[derive(Clone)]
pub struct DeposcoClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    config: DeposcoConfig,
    base: Url,
    token_url: Option<Url>,
    limiter: Arc<dyn RateBudget>,
    token: Mutex<Option<CachedToken>>,
    requests: AtomicU64,
}

struct CachedToken {
    value: SecretString,
    refresh_at: Instant,
}

impl fmt::Debug for DeposcoClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeposcoClient")
            .field("api_url", &self.inner.base.as_str())
            .field("business_unit", &self.inner.config.business_unit)
            .field("principal", &self.inner.config.auth.principal())
            .finish_non_exhaustive()
    }
}

/// What goes in the request body.
enum Payload<'a> {
    Empty,
    /// No body, sent as JSON (`Content-Type: application/json`, length 0):
    /// an endpoint whose JSON body is optional.
    EmptyJson,
    Json(&'a Value),
    Form(Vec<(&'static str, &'a str)>),
}

/// What authenticates one request (token requests carry their client
/// credentials in the form, never the API's Basic credentials).
enum Credentials<'a> {
    None,
    Basic {
        username: &'a str,
        password: &'a SecretString,
    },
    Bearer(&'a SecretString),
}

/// How one HTTP exchange went, before retries are decided.
enum Failure {
    RateLimited(Duration),
    Conflict(String),
    /// `applied`: Deposco may have carried the request out (a 5xx, a
    /// timeout or a broken answer), as opposed to never having received it
    /// (no connection, 408).
    Transient {
        message: String,
        retry_after: Option<Duration>,
        applied: Maybe,
    },
    Unauthorized(String),
    Fatal(DeposcoError),
}

/// Whether a failed request may have taken effect in Deposco.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Maybe {
    No,
    Perhaps,
}

/// Which failures a call may be repeated after.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Repeat {
    /// Reads, and writes that come out the same when done twice.
    Always,
    /// Writes that would do it twice (cancelling units of a line): repeated
    /// only when Deposco cannot have received them.
    OnlyUnreceived,
}

/// Counts retries of one call and says how long to wait before the next.
struct Attempts<'a> {
    policy: &'a RetryPolicy,
    repeat: Repeat,
    rate_limited: u32,
    transient: u32,
    conflict: u32,
}

impl<'a> Attempts<'a> {
    fn new(policy: &'a RetryPolicy, repeat: Repeat) -> Self {
        Self {
            policy,
            repeat,
            rate_limited: 0,
            transient: 0,
            conflict: 0,
        }
    }

    /// After `failure`: wait this long and try again, or give up with the error.
    async fn next(
        &mut self,
        failure: Failure,
        limiter: &dyn RateBudget,
    ) -> Result<Duration, DeposcoError> {
        match failure {
            Failure::RateLimited(retry_after) => {
                // Everybody on this account waits, not only this call.
                limiter.pause_for(retry_after).await;
                self.rate_limited += 1;
                if self.rate_limited > self.policy.rate_limited || retry_after > MAX_IN_CALL_WAIT {
                    return Err(DeposcoError::RateLimited { retry_after });
                }
                // The limiter does the waiting.
                Ok(Duration::ZERO)
            }
            Failure::Conflict(message) => {
                self.conflict += 1;
                if self.conflict > self.policy.conflict {
                    return Err(DeposcoError::Transient(format!(
                        "concurrent update in Deposco (409): {message}"
                    )));
                }
                Ok(backoff(self.policy, self.conflict))
            }
            Failure::Transient {
                message,
                applied: Maybe::Perhaps,
                ..
            } if self.repeat == Repeat::OnlyUnreceived => Err(DeposcoError::Transient(format!(
                "{message}; Deposco may have carried it out: read the order again before repeating it"
            ))),
            Failure::Transient {
                message,
                retry_after,
                ..
            } => {
                self.transient += 1;
                if self.transient > self.policy.transient {
                    return Err(DeposcoError::Transient(message));
                }
                let wait = backoff(self.policy, self.transient);
                Ok(retry_after.map_or(wait, |r| r.min(self.policy.max_backoff).max(wait)))
            }
            Failure::Unauthorized(message) => Err(DeposcoError::Unauthorized(message)),
            Failure::Fatal(error) => Err(error),
        }
    }
}

/// `backoff × 2^(n-1)`, capped, with jitter (50–100 %) so that clients
/// failing together do not retry together.
fn backoff(policy: &RetryPolicy, n: u32) -> Duration {
    let factor = 2f64.powi(i32::try_from(n.saturating_sub(1)).unwrap_or(30).min(30));
    let base = policy.backoff.mul_f64(factor).min(policy.max_backoff);
    base.mul_f64(0.5 + rand::random::<f64>() * 0.5)
}

fn parse_url(raw: &str, what: &str) -> Result<Url, DeposcoError> {
    let url = Url::parse(raw.trim())
        .map_err(|e| DeposcoError::Config(format!("{what} {raw:?} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
        return Err(DeposcoError::Config(format!(
            "{what} {raw:?} must be an http(s) URL"
        )));
    }
    Ok(url)
}

fn retry_after(headers: &header::HeaderMap) -> Option<Duration> {
    let value = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<f64>() {
        return Duration::try_from_secs_f64(secs.max(0.0)).ok();
    }
    let at = jiff::fmt::rfc2822::parse(value).ok()?.timestamp();
    let secs = at.duration_since(Timestamp::now()).as_secs_f64();
    Duration::try_from_secs_f64(secs.max(0.0)).ok()
}

impl DeposcoClient {
    /// An HTTP client suited to Deposco (rustls with ring, 10 s connect
    /// timeout) that goes only where `policy` allows (see
    /// `shipsync_outbound`). Share one across connections; per-request time
    /// limits come from [`DeposcoConfig::timeout`].
    pub fn http_client(policy: TargetPolicy) -> Result<reqwest::Client, DeposcoError> {
        shipsync_outbound::client_builder(policy)
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| DeposcoError::Config(format!("could not build the HTTP client: {e}")))
    }

    /// `limiter`: the account's budget, e.g.
    /// `shared_limiter(&config.limiter_key())`. Fails only on unusable
    /// settings (a URL that is not http(s)).
    pub fn new(
        http: reqwest::Client,
        config: DeposcoConfig,
        limiter: Arc<dyn RateBudget>,
    ) -> Result<Self, DeposcoError> {
        let base = parse_url(&config.api_url, "api_url")?;
        let token_url = match &config.auth {
            Auth::OAuth { token_url, .. } => Some(parse_url(token_url, "token_url")?),
            Auth::Basic { .. } => None,
        };
        if config.business_unit.trim().is_empty() {
            return Err(DeposcoError::Config("business_unit is empty".into()));
        }
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                config,
                base,
                token_url,
                limiter,
                token: Mutex::new(None),
                requests: AtomicU64::new(0),
            }),
        })
    }

    pub fn config(&self) -> &DeposcoConfig {
        &self.inner.config
    }

    pub fn limiter(&self) -> &Arc<dyn RateBudget> {
        &self.inner.limiter
    }

    /// HTTP requests sent by this client and its clones (API and token
    /// requests, retries included).
    pub fn requests_made(&self) -> u64 {
        self.inner.requests.load(Ordering::Relaxed)
    }

    // -----------------------------------------------------------------------
    // Shipments

    /// One page of shipments updated at or after `updated_after` (Deposco's
    /// `updatedAfter`; the caller overlaps its cursor and filters on
    /// [`PulledShipment::updated_date`] too, as Deposco may ignore filters),
    /// newest first as Deposco returns them. `page`: `None` for the first
    /// page, else the previous page's [`ShipmentPage::next`], used as is (it
    /// carries `searchId`). Truncated nested `shipmentLines` are read in full
    /// from the sub-resource. An expired `searchId` answers `Rejected` (400):
    /// start again from the first page.
    pub async fn shipments_page(
        &self,
        updated_after: Timestamp,
        page: Option<&str>,
    ) -> Result<ShipmentPage, DeposcoError> {
        let url = match page {
            Some(href) => self.link(href)?,
            None => {
                let mut url = self.endpoint(&["shipments", "outboundShipments"]);
                url.query_pairs_mut()
                    .append_pair("businessUnit", &self.inner.config.business_unit)
                    .append_pair("pageSize", &self.inner.config.page_size().to_string())
                    .append_pair("updatedAfter", &model::query_time(updated_after));
                url
            }
        };
        let collection = Collection::parse(self.get(url).await?)?;
        let raw_count = collection.data.len();
        let mut shipments = Vec::with_capacity(raw_count);
        let mut failed = Vec::new();
        for record in collection.data {
            match self.pull(record).await? {
                Ok(shipment) => shipments.push(shipment),
                Err(failure) => failed.push(failure),
            }
        }
        Ok(ShipmentPage {
            shipments,
            failed,
            next: collection
                .next
                .map(|href| self.link(&href))
                .transpose()?
                .map(String::from),
            complete: collection.complete,
            raw_count,
        })
    }

    /// The shipment with this number (for "reset": derive again from
    /// Deposco's current record). A record that does not parse is `Malformed`.
    pub async fn shipment_by_number(
        &self,
        number: &str,
    ) -> Result<Option<PulledShipment>, DeposcoError> {
        let mut url = self.endpoint(&["shipments", "outboundShipments"]);
        url.query_pairs_mut()
            .append_pair("businessUnit", &self.inner.config.business_unit)
            .append_pair("shipmentNumber", number)
            .append_pair("pageSize", &self.inner.config.page_size().to_string());
        let Some(record) = self.find(url, "shipmentNumber", number).await? else {
            return Ok(None);
        };
        self.pull(record).await?.map(Some).map_err(parse_failure)
    }

    /// The shipment with Deposco id `id` (`self.id`), bare or wrapped.
    pub async fn shipment_by_id(&self, id: &str) -> Result<Option<PulledShipment>, DeposcoError> {
        let url = self.endpoint(&["shipments", "outboundShipments", id]);
        let Some(record) = not_found_as_none(self.get(url).await)? else {
            return Ok(None);
        };
        let record = model::unwrap_record(record, "outboundShipment");
        self.pull(record).await?.map(Some).map_err(parse_failure)
    }

    /// Completes a shipment record's lines and parses it. `Err` is a failed
    /// call; `Ok(Err(_))` a record that does not parse.
    async fn pull(
        &self,
        record: Value,
    ) -> Result<Result<PulledShipment, FailedShipment>, DeposcoError> {
        let mut record = model::unwrap_record(record, "outboundShipment");
        if model::is_truncated(&record, "shipmentLines") {
            let Some(id) = model::record_id(&record) else {
                return Ok(Err(FailedShipment {
                    number: model::record_number(&record, "shipmentNumber"),
                    updated_date: model::timestamp(record.get("updatedDate")),
                    raw: record,
                    error: crate::ParseError::Unmapped(
                        "shipmentLines is truncated and the shipment has no id to read them".into(),
                    ),
                }));
            };
            let lines = self
                .read_all(self.paged(&["shipments", "outboundShipments", &id, "shipmentLines"]))
                .await?;
            model::splice(&mut record, "shipmentLines", lines);
        }
        Ok(model::pulled(record))
    }

    // -----------------------------------------------------------------------
    // Sales orders

    /// `POST /orders/salesOrders` (create, or update by `number`). Adds
    /// `businessUnit` when the order has none. Returns Deposco's answer
    /// (the order with its `self.id`). Refusals (unknown item, field too
    /// long, missing ship-to) are `Rejected` with Deposco's message.
    pub async fn create_sales_order(&self, order: &Value) -> Result<Value, DeposcoError> {
        let mut order = order.clone();
        if let Some(obj) = order.as_object_mut()
            && !obj.contains_key("businessUnit")
        {
            obj.insert(
                "businessUnit".into(),
                serde_json::json!({ "businessKey": { "code": self.inner.config.business_unit } }),
            );
        }
        let url = self.endpoint(&["orders", "salesOrders"]);
        let answer = self
            .call(Method::POST, url, Payload::Json(&order), Repeat::Always)
            .await?;
        Ok(model::unwrap_record(answer, "salesOrder"))
    }

    /// The sales order `number` with all its `orderLines` (read from the
    /// sub-resource when the nested list is truncated).
    pub async fn sales_order_by_number(&self, number: &str) -> Result<Option<Value>, DeposcoError> {
        let mut url = self.endpoint(&["orders", "salesOrders"]);
        url.query_pairs_mut()
            .append_pair("businessUnit", &self.inner.config.business_unit)
            .append_pair("number", number)
            .append_pair("pageSize", &self.inner.config.page_size().to_string());
        let Some(record) = self.find(url, "orderNumber", number).await? else {
            return Ok(None);
        };
        let mut record = model::unwrap_record(record, "salesOrder");
        if model::is_truncated(&record, "orderLines") {
            let id = model::record_id(&record).ok_or_else(|| {
                DeposcoError::Malformed(format!(
                    "sales order {number}: orderLines is truncated and the order has no id"
                ))
            })?;
            let lines = self
                .read_all(self.paged(&["orders", "salesOrders", &id, "orderLines"]))
                .await?;
            model::splice(&mut record, "orderLines", lines);
        }
        Ok(Some(record))
    }

    /// Changes a sales order Deposco already has, through create-or-update
    /// by `number` (`POST /orders/salesOrders`, the same full body as
    /// [`Self::create_sales_order`]): header fields, added lines, raised
    /// quantities, while [`SalesOrderStage::can_update`]. `orderStatus` is
    /// left out: orders-lifecycle.md says to send it only when creating (the
    /// update is assumed not to change it). Lines are matched by
    /// `lineNumber`, so number them as when the order was created. Lowering
    /// a quantity is a cancellation and Deposco refuses it (`Rejected`):
    /// use [`Self::cancel_sales_order`].
    pub async fn update_sales_order(&self, order: &Value) -> Result<Value, DeposcoError> {
        let mut order = order.clone();
        if let Some(obj) = order.as_object_mut() {
            obj.remove("orderStatus");
        }
        self.create_sales_order(&order).await
    }

    /// The `orderStatus` of sales order `id` (Deposco's numeric id, `self.id`
    /// of [`Self::sales_order_by_number`]); `None` when Deposco does not
    /// know the id. [`SalesOrderStage::of`] tells what it still allows.
    pub async fn sales_order_status(&self, id: &str) -> Result<Option<String>, DeposcoError> {
        let url = self.endpoint(&["orders", "salesOrders", id, "status"]);
        let Some(answer) = not_found_as_none(self.get(url).await)? else {
            return Ok(None);
        };
        let answer = model::unwrap_record(answer, "salesOrderStatus");
        model::text(answer.get("orderStatus"))
            .map(Some)
            .ok_or_else(|| {
                DeposcoError::Malformed(format!(
                    "sales order {id}: the status answer has no orderStatus"
                ))
            })
    }

    /// Every line of sales order `id` with its quantities and status (`GET
    /// …/{id}/orderLines`, all pages): the line ids a cancellation names.
    /// `None` when Deposco does not know the id.
    pub async fn sales_order_lines(
        &self,
        id: &str,
    ) -> Result<Option<Vec<SalesOrderLine>>, DeposcoError> {
        let url = self.paged(&["orders", "salesOrders", id, "orderLines"]);
        let rows = match self.read_all(url).await {
            Ok(rows) => rows,
            Err(DeposcoError::Rejected { status: 404, .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        rows.iter()
            .map(|row| {
                model::sales_order_line(row)
                    .map_err(|e| DeposcoError::Malformed(format!("sales order {id}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    /// `POST /orders/salesOrders/{id}/status?value=`: `value` is
    /// [`super::STATUS_HOLD`], [`super::STATUS_NEW`] or
    /// [`super::STATUS_CANCELED`], allowed from some statuses only
    /// ([`super::status_change_allowed`]). A refusal is `Rejected` with
    /// Deposco's message and is not retried (orders-lifecycle.md: a 400 here
    /// means "not possible"). An order already in `value` counts as done,
    /// so that a call repeated after a lost answer is not reported as refused.
    pub async fn set_sales_order_status(&self, id: &str, value: &str) -> Result<(), DeposcoError> {
        let mut url = self.endpoint(&["orders", "salesOrders", id, "status"]);
        url.query_pairs_mut().append_pair("value", value);
        match self
            .call(Method::POST, url, Payload::Empty, Repeat::Always)
            .await
        {
            Ok(_) => Ok(()),
            Err(rejected @ DeposcoError::Rejected { .. }) => {
                match self.sales_order_status(id).await {
                    Ok(Some(now)) if same_status(&now, value) => Ok(()),
                    _ => Err(rejected),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// `POST /orders/salesOrders/{id}/cancellations`. `lines` empty: the
    /// whole order; else `(order line id, units)` from
    /// [`Self::sales_order_lines`], `None` for every open unit of the line.
    /// Deposco allows it in some statuses only ([`SalesOrderStage`]); a
    /// refusal (too late, more than is open) is `Rejected` and is not
    /// retried. An order, or named lines, already cancelled in full count
    /// as done.
    ///
    /// Units are counted by Deposco, not set: "cancel 2" sent twice cancels
    /// 4. So a call naming units is not repeated after a failure Deposco may
    /// have carried out (a timeout, a 5xx): it comes back `Transient` saying
    /// so, and the caller reads the lines again and works out what is still
    /// to cancel before calling again.
    pub async fn cancel_sales_order(
        &self,
        id: &str,
        lines: &[(String, Option<f64>)],
    ) -> Result<(), DeposcoError> {
        let url = self.endpoint(&["orders", "salesOrders", id, "cancellations"]);
        let body = model::cancellation_body(lines);
        let counts_units = lines.iter().any(|(_, units)| units.is_some());
        let (payload, repeat) = match (&body, counts_units) {
            // orders-lifecycle.md (assumption): an empty body cancels the whole order.
            (None, _) => (Payload::EmptyJson, Repeat::Always),
            (Some(body), false) => (Payload::Json(body), Repeat::Always),
            (Some(body), true) => (Payload::Json(body), Repeat::OnlyUnreceived),
        };
        match self.call(Method::POST, url, payload, repeat).await {
            Ok(_) => Ok(()),
            Err(rejected @ DeposcoError::Rejected { .. }) => {
                if !counts_units && self.already_cancelled(id, lines).await {
                    Ok(())
                } else {
                    Err(rejected)
                }
            }
            Err(e) => Err(e),
        }
    }

    /// After a refused cancellation without units: is what it asked for
    /// cancelled already (a repeat after a lost answer)? Any doubt: no.
    async fn already_cancelled(&self, id: &str, lines: &[(String, Option<f64>)]) -> bool {
        if lines.is_empty() {
            return matches!(
                self.sales_order_status(id).await,
                Ok(Some(status)) if SalesOrderStage::of(&status) == SalesOrderStage::Cancelled
            );
        }
        let Ok(Some(current)) = self.sales_order_lines(id).await else {
            return false;
        };
        lines.iter().all(|(line_id, _)| {
            current.iter().any(|l| {
                &l.id == line_id && l.open_quantity() <= 0.0 && l.canceled_pack_quantity > 0.0
            })
        })
    }

    // -----------------------------------------------------------------------
    // Items

    /// Item `number` (`GET /items/{number}`) with its kit components; `None`
    /// when Deposco does not know it.
    pub async fn item(&self, number: &str) -> Result<Option<Item>, DeposcoError> {
        let url = self.endpoint(&["items", number]);
        match not_found_as_none(self.get(url).await)? {
            Some(record) => model::item(&model::unwrap_record(record, "item"), number).map(Some),
            None => Ok(None),
        }
    }

    // -----------------------------------------------------------------------
    // Connection test

    /// "Test connection": credentials (a token for OAuth), the API URL and
    /// the business unit, with one cheap call (one shipment).
    pub async fn check(&self) -> Result<(), DeposcoError> {
        let mut url = self.endpoint(&["shipments", "outboundShipments"]);
        url.query_pairs_mut()
            .append_pair("businessUnit", &self.inner.config.business_unit)
            .append_pair("pageSize", "1");
        Collection::parse(self.get(url).await?).map(|_| ())
    }

    // -----------------------------------------------------------------------
    // Plumbing

    /// `{api_url}/seg/seg…`, each segment percent-encoded.
    fn endpoint(&self, segments: &[&str]) -> Url {
        let mut url = self.inner.base.clone();
        url.set_query(None);
        url.set_fragment(None);
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    /// A sub-resource's first page at our page size.
    fn paged(&self, segments: &[&str]) -> Url {
        let mut url = self.endpoint(segments);
        url.query_pairs_mut()
            .append_pair("pageSize", &self.inner.config.page_size().to_string());
        url
    }

    /// A `next` href: absolute or relative to the API base, on the API's
    /// host only (credentials never go elsewhere). A link that names another
    /// scheme or port for that host (a proxy's view) is sent the API's way.
    fn link(&self, href: &str) -> Result<Url, DeposcoError> {
        let base = &self.inner.base;
        let mut url = base
            .join(href)
            .map_err(|e| DeposcoError::Malformed(format!("next link {href:?}: {e}")))?;
        if url.host_str() != base.host_str() {
            return Err(DeposcoError::Malformed(format!(
                "next link {href:?} leaves the API host {}",
                base.host_str().unwrap_or_default()
            )));
        }
        if url.scheme() != base.scheme()
            || url.port_or_known_default() != base.port_or_known_default()
        {
            let _ = url.set_scheme(base.scheme());
            let _ = url.set_port(base.port());
        }
        Ok(url)
    }

    /// Every row of a collection, following `next` links.
    async fn read_all(&self, first: Url) -> Result<Vec<Value>, DeposcoError> {
        let mut rows = Vec::new();
        let mut url = first;
        for _ in 0..MAX_PAGES {
            let page = Collection::parse(self.get(url).await?)?;
            rows.extend(page.data);
            match page.next {
                Some(href) => url = self.link(&href)?,
                None => return Ok(rows),
            }
        }
        Err(DeposcoError::Malformed(format!(
            "a collection still had a next page after {MAX_PAGES} pages"
        )))
    }

    /// The first record of a filtered search whose number is exactly
    /// `number` (checked here too: a filter Deposco ignores must not return
    /// the wrong record).
    async fn find(
        &self,
        first: Url,
        key: &str,
        number: &str,
    ) -> Result<Option<Value>, DeposcoError> {
        let mut url = first;
        for _ in 0..MAX_LOOKUP_PAGES {
            let page = Collection::parse(self.get(url).await?)?;
            if let Some(found) = page
                .data
                .into_iter()
                .find(|r| model::record_number(r, key).as_deref() == Some(number))
            {
                return Ok(Some(found));
            }
            match page.next {
                Some(href) => url = self.link(&href)?,
                None => return Ok(None),
            }
        }
        Err(DeposcoError::Malformed(format!(
            "{number} not found in {MAX_LOOKUP_PAGES} pages: Deposco seems to ignore the filter"
        )))
    }

    async fn get(&self, url: Url) -> Result<Value, DeposcoError> {
        self.call(Method::GET, url, Payload::Empty, Repeat::Always)
            .await
    }

    /// One API call with auth, rate limit and retries, in a
    /// `warehouse_call` span (method, path, business unit; never the query,
    /// credentials or body).
    #[tracing::instrument(
        name = "warehouse_call",
        skip_all,
        fields(
            method = %method,
            path = url.path(),
            business_unit = %self.inner.config.business_unit,
        )
    )]
    async fn call(
        &self,
        method: Method,
        url: Url,
        payload: Payload<'_>,
        repeat: Repeat,
    ) -> Result<Value, DeposcoError> {
        let inner = &self.inner;
        let mut attempts = Attempts::new(&inner.config.retry, repeat);
        let mut refreshed = false;
        loop {
            let bearer = match &inner.config.auth {
                Auth::OAuth { .. } => Some(self.access_token().await?),
                Auth::Basic { .. } => None,
            };
            let credentials = match (&bearer, &inner.config.auth) {
                (Some(token), _) => Credentials::Bearer(token),
                (None, Auth::Basic { username, password }) => {
                    Credentials::Basic { username, password }
                }
                (None, Auth::OAuth { .. }) => Credentials::None,
            };
            let failure = match self.exchange(&method, &url, &payload, credentials).await {
                Ok(value) => return Ok(value),
                Err(failure) => failure,
            };
            let wait = match failure {
                Failure::Unauthorized(message) => match &bearer {
                    // The token may have been revoked or expired early: get a
                    // new one once and try again.
                    Some(used) if !refreshed => {
                        refreshed = true;
                        tracing::info!(
                            path = url.path(),
                            "Deposco refused the access token; refreshing it"
                        );
                        self.forget_token(used).await;
                        Duration::ZERO
                    }
                    _ => return Err(DeposcoError::Unauthorized(message)),
                },
                other => {
                    log_retry(&method, &url, &other);
                    attempts.next(other, inner.limiter.as_ref()).await?
                }
            };
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
        }
    }

    /// One HTTP exchange: waits for the limiter, sends, classifies.
    async fn exchange(
        &self,
        method: &Method,
        url: &Url,
        payload: &Payload<'_>,
        credentials: Credentials<'_>,
    ) -> Result<Value, Failure> {
        let inner = &self.inner;
        inner.limiter.acquire().await;
        inner.requests.fetch_add(1, Ordering::Relaxed);
        let mut request = inner
            .http
            .request(method.clone(), url.clone())
            .timeout(inner.config.timeout)
            .header(header::ACCEPT, "application/json");
        request = match credentials {
            Credentials::Bearer(token) => request.bearer_auth(token.expose_secret()),
            Credentials::Basic { username, password } => {
                request.basic_auth(username, Some(password.expose_secret()))
            }
            Credentials::None => request,
        };
        request = match payload {
            Payload::Empty => request,
            Payload::EmptyJson => request
                .header(header::CONTENT_TYPE, "application/json")
                .body(Vec::<u8>::new()),
            Payload::Json(body) => request.json(body),
            Payload::Form(fields) => request.form(fields),
        };
        let response = request.send().await.map_err(transport_failure)?;
        let status = response.status();
        tracing::debug!(status = status.as_u16(), "Deposco call");
        let headers = response.headers().clone();
        let body = shipsync_outbound::read_capped(response, MAX_RESPONSE_BYTES)
            .await
            .map_err(|e| match e {
                BodyError::Read(e) => transport_failure(e),
                too_large @ BodyError::TooLarge { .. } => Failure::Fatal(DeposcoError::Malformed(
                    format!("{method} {}: {too_large}", url.path()),
                )),
            })?;
        if status.is_success() {
            if body.iter().all(u8::is_ascii_whitespace) {
                return Ok(Value::Null);
            }
            return serde_json::from_slice(&body).map_err(|e| {
                Failure::Fatal(DeposcoError::Malformed(format!(
                    "{method} {}: the answer is not JSON: {e}",
                    url.path()
                )))
            });
        }
        let message = || {
            model::error_message(&body)
                .unwrap_or_else(|| status.canonical_reason().unwrap_or("no message").to_owned())
        };
        Err(match status {
            StatusCode::TOO_MANY_REQUESTS => {
                Failure::RateLimited(retry_after(&headers).unwrap_or(DEFAULT_RETRY_AFTER))
            }
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                Failure::Unauthorized(format!("HTTP {}: {}", status.as_u16(), message()))
            }
            StatusCode::CONFLICT => Failure::Conflict(message()),
            StatusCode::REQUEST_TIMEOUT => {
                // The server gave up waiting for the request: it did nothing.
                Failure::Transient {
                    message: format!("HTTP 408: {}", message()),
                    retry_after: retry_after(&headers),
                    applied: Maybe::No,
                }
            }
            s if s.is_server_error() => Failure::Transient {
                message: format!("HTTP {}: {}", s.as_u16(), message()),
                retry_after: retry_after(&headers),
                applied: Maybe::Perhaps,
            },
            s => Failure::Fatal(DeposcoError::Rejected {
                status: s.as_u16(),
                message: message(),
            }),
        })
    }

    // -----------------------------------------------------------------------
    // OAuth

    /// The cached access token, or a new one from the refresh-token grant.
    async fn access_token(&self) -> Result<SecretString, DeposcoError> {
        let mut cached = self.inner.token.lock().await;
        if let Some(token) = cached.as_ref()
            && Instant::now() < token.refresh_at
        {
            return Ok(token.value.clone());
        }
        let token = self.fetch_token().await?;
        let value = token.value.clone();
        *cached = Some(token);
        Ok(value)
    }

    /// Drops `used` from the cache unless another call already replaced it.
    async fn forget_token(&self, used: &SecretString) {
        let mut cached = self.inner.token.lock().await;
        if cached
            .as_ref()
            .is_some_and(|t| t.value.expose_secret() == used.expose_secret())
        {
            *cached = None;
        }
    }

    async fn fetch_token(&self) -> Result<CachedToken, DeposcoError> {
        let inner = &self.inner;
        let (
            Auth::OAuth {
                client_id,
                client_secret,
                refresh_token,
                ..
            },
            Some(url),
        ) = (&inner.config.auth, &inner.token_url)
        else {
            return Err(DeposcoError::Config("no OAuth token URL".into()));
        };
        let payload = Payload::Form(vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.expose_secret()),
            ("client_id", client_id),
            ("client_secret", client_secret.expose_secret()),
        ]);
        let mut attempts = Attempts::new(&inner.config.retry, Repeat::Always);
        let answer = loop {
            match self
                .exchange(&Method::POST, url, &payload, Credentials::None)
                .await
            {
                Ok(answer) => break answer,
                // invalid_grant / invalid_client: only the merchant can fix it.
                Err(Failure::Fatal(DeposcoError::Rejected { status, message }))
                    if status == 400 || status == 401 =>
                {
                    return Err(DeposcoError::Unauthorized(format!(
                        "the token endpoint refused the refresh token or client: {message}"
                    )));
                }
                Err(failure) => {
                    log_retry(&Method::POST, url, &failure);
                    let wait = attempts.next(failure, inner.limiter.as_ref()).await?;
                    if !wait.is_zero() {
                        tokio::time::sleep(wait).await;
                    }
                }
            }
        };
        let value = model::text(answer.get("access_token")).ok_or_else(|| {
            DeposcoError::Malformed("the token endpoint answered without access_token".into())
        })?;
        let expires_in = match answer.get("expires_in") {
            Some(Value::Number(n)) => n.as_f64(),
            Some(Value::String(s)) => s.trim().parse().ok(),
            _ => None,
        }
        .filter(|s| s.is_finite() && *s > 0.0)
        .unwrap_or(3600.0);
        let lifetime = Duration::try_from_secs_f64(expires_in).unwrap_or(Duration::from_secs(3600));
        // Short-lived tokens: use half their life rather than none of it.
        let usable = lifetime
            .checked_sub(TOKEN_MARGIN)
            .filter(|d| !d.is_zero())
            .unwrap_or(lifetime / 2);
        tracing::debug!(expires_in, "Deposco access token refreshed");
        Ok(CachedToken {
            value: SecretString::from(value),
            refresh_at: Instant::now() + usable,
        })
    }
}

fn transport_failure(e: reqwest::Error) -> Failure {
    // Not Deposco's fault, and retrying will not help: the operator's
    // policy refused the address (the message says how to allow it).
    if let Some(refused) = shipsync_outbound::refusal(&e) {
        return Failure::Fatal(DeposcoError::Config(refused.to_string()));
    }
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    // Without a connection nothing was sent; anything later may have landed.
    let applied = if e.is_connect() {
        Maybe::No
    } else {
        Maybe::Perhaps
    };
    Failure::Transient {
        message: format!("{what}: {}", e.without_url()),
        retry_after: None,
        applied,
    }
}

fn log_retry(method: &Method, url: &Url, failure: &Failure) {
    let (kind, detail) = match failure {
        Failure::RateLimited(d) => ("rate limited", format!("retry after {d:?}")),
        Failure::Conflict(m) => ("conflict", m.clone()),
        Failure::Transient { message, .. } => ("transient", message.clone()),
        Failure::Unauthorized(m) => ("unauthorized", m.clone()),
        Failure::Fatal(e) => ("failed", e.to_string()),
    };
    tracing::debug!(%method, path = url.path(), kind, detail, "Deposco call did not succeed");
}

fn not_found_as_none(result: Result<Value, DeposcoError>) -> Result<Option<Value>, DeposcoError> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(DeposcoError::Rejected { status: 404, .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

fn parse_failure(failure: FailedShipment) -> DeposcoError {
    DeposcoError::Malformed(format!(
        "shipment {}: {}",
        failure.number.as_deref().unwrap_or("without number"),
        failure.error
    ))
}
