//! The HTTP side: Deposco's REST API (auth, rate limit, paging, shipments,
//! sales orders, items), the OAuth token endpoint, and `/_sandbox` control
//! endpoints for the standalone sandbox.

use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use jiff::Timestamp;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::config::Faults;
use crate::lifecycle;
use crate::orders::{self, OrderRules, SalesOrderRecord};
use crate::render::{Shape, stable_id};
use crate::signing::Signing;
use crate::spec::{ItemSpec, ShipmentSpec};
use crate::{DeposcoSandbox, State as SandboxState, now};

pub(crate) fn router(sandbox: DeposcoSandbox) -> Router {
    let rest = Router::new()
        .route("/shipments/outboundShipments", get(list_shipments))
        .route("/shipments/outboundShipments/{id}", get(get_shipment))
        .route(
            "/shipments/outboundShipments/{id}/shipmentLines",
            get(shipment_lines),
        )
        .route("/orders/salesOrders", get(list_orders).post(post_order))
        .route("/orders/salesOrders/{id}", get(get_order))
        .route("/orders/salesOrders/{id}/orderLines", get(order_lines))
        .route(
            "/orders/salesOrders/{id}/status",
            get(get_order_status).post(post_order_status),
        )
        .route(
            "/orders/salesOrders/{id}/cancellations",
            post(post_cancellation),
        )
        .route("/items", get(list_items))
        .route("/items/{number}", get(get_item))
        .route_layer(middleware::from_fn_with_state(sandbox.clone(), gate));
    let control = Router::new()
        .route(
            "/_sandbox/shipments",
            get(control_list_shipments).post(control_add_shipment),
        )
        .route("/_sandbox/shipments/{number}", get(control_get_shipment))
        .route("/_sandbox/shipments/{number}/render", get(control_render))
        .route(
            "/_sandbox/shipments/{number}/webhook",
            post(control_webhook),
        )
        .route(
            "/_sandbox/faults",
            get(control_get_faults).post(control_set_faults),
        )
        .route("/_sandbox/items", post(control_add_item))
        .route("/_sandbox/sales_orders", get(control_sales_orders))
        .route(
            "/_sandbox/sales_orders/{number}/status",
            post(control_sales_order_status),
        );
    rest.route("/oauth2/token", post(token))
        .merge(control)
        .with_state(sandbox)
}

// ---------------------------------------------------------------------------
// Errors, auth, rate limit, faults

fn errors(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        Json(json!({ "errors": [ { "errorMessage": message.into() } ] })),
    )
        .into_response()
}

/// A Deposco error answer, before it becomes a response.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        errors(self.0, self.1)
    }
}

fn too_many_requests() -> Response {
    // Deposco answers 429 with an empty body; Retry-After tells the client when to come back.
    (
        StatusCode::TOO_MANY_REQUESTS,
        [(header::RETRY_AFTER, HeaderValue::from_static("1"))],
    )
        .into_response()
}

impl SandboxState {
    /// Token bucket for the account (the sandbox is one Deposco account).
    fn take_rate_token(&mut self) -> bool {
        let rate = self.config.rate_limit_per_sec;
        if !(rate.is_finite() && rate > 0.0) {
            return true;
        }
        let burst = self.config.rate_limit_burst.max(1.0);
        let now = Instant::now();
        let (tokens, last) = self.bucket.unwrap_or((burst, now));
        let tokens = (tokens + now.duration_since(last).as_secs_f64() * rate).min(burst);
        if tokens >= 1.0 {
            self.bucket = Some((tokens - 1.0, now));
            true
        } else {
            self.bucket = Some((tokens, now));
            self.rate_limited_count += 1;
            false
        }
    }

    fn is_authorized(&mut self, headers: &HeaderMap) -> bool {
        let Some(value) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        else {
            return false;
        };
        let (scheme, credentials) = value.split_once(' ').unwrap_or((value, ""));
        let credentials = credentials.trim();
        if scheme.eq_ignore_ascii_case("Basic") {
            let Some(basic) = &self.config.basic else {
                return false;
            };
            let decoded = BASE64
                .decode(credentials)
                .ok()
                .and_then(|b| String::from_utf8(b).ok());
            decoded.is_some_and(|d| {
                d.split_once(':') == Some((basic.username.as_str(), basic.password.as_str()))
            })
        } else if scheme.eq_ignore_ascii_case("Bearer") {
            let now = Timestamp::now();
            self.tokens.retain(|_, expires| *expires > now);
            self.tokens.contains_key(credentials)
        } else {
            false
        }
    }
}

enum Admission {
    Go,
    Refuse(Response),
}

/// Counting, injected slowness and 5xx, and the rate limit: shared by the
/// REST API and the token endpoint.
async fn admit(sandbox: &DeposcoSandbox) -> Admission {
    let (slow_ms, fail) = {
        let mut state = sandbox.lock();
        state.request_count += 1;
        let Faults {
            rest_5xx_rate,
            slow_ms,
            ..
        } = state.faults;
        (
            slow_ms,
            rest_5xx_rate > 0.0 && rand::random::<f64>() < rest_5xx_rate,
        )
    };
    if slow_ms > 0 {
        tokio::time::sleep(Duration::from_millis(slow_ms)).await;
    }
    if !sandbox.lock().take_rate_token() {
        return Admission::Refuse(too_many_requests());
    }
    if fail {
        let status = if rand::random::<bool>() {
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        let mut response = errors(
            status,
            "Internal error (injected by the sandbox); retry later",
        );
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        return Admission::Refuse(response);
    }
    Admission::Go
}

async fn gate(State(sandbox): State<DeposcoSandbox>, request: Request, next: Next) -> Response {
    if let Admission::Refuse(response) = admit(&sandbox).await {
        return response;
    }
    if !sandbox.lock().is_authorized(request.headers()) {
        let mut response = errors(
            StatusCode::UNAUTHORIZED,
            "Unauthorized: send Authorization: Bearer <access token> or Basic credentials",
        );
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"deposco\""),
        );
        return response;
    }
    next.run(request).await
}

// ---------------------------------------------------------------------------
// OAuth

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        Json(json!({ "error": error, "error_description": description })),
    )
        .into_response()
}

async fn token(State(sandbox): State<DeposcoSandbox>, headers: HeaderMap, body: Bytes) -> Response {
    if let Admission::Refuse(response) = admit(&sandbox).await {
        return response;
    }
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
    let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    // client_secret_basic is allowed as well as form fields.
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| BASE64.decode(b.trim()).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.split_once(':').map(|(a, b)| (a.to_owned(), b.to_owned())));
    let client_id = field("client_id").or_else(|| basic.as_ref().map(|b| b.0.clone()));
    let client_secret = field("client_secret").or_else(|| basic.as_ref().map(|b| b.1.clone()));

    if field("grant_type").as_deref() != Some("refresh_token") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "grant_type must be refresh_token",
        );
    }
    let mut state = sandbox.lock();
    let Some(client) = state.config.oauth.clone() else {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "this account has no OAuth client",
        );
    };
    if client_id.as_deref() != Some(client.client_id.as_str())
        || client_secret.as_deref() != Some(client.client_secret.as_str())
    {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client_id or client_secret is wrong",
        );
    }
    if field("refresh_token").as_deref() != Some(client.refresh_token.as_str()) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "refresh_token is invalid or revoked",
        );
    }
    let access_token = hex::encode(rand::random::<[u8; 24]>());
    let ttl = state.config.token_ttl_secs;
    let expires = Timestamp::now()
        .checked_add(jiff::SignedDuration::from_secs(
            i64::try_from(ttl).unwrap_or(i64::MAX / 2),
        ))
        .unwrap_or(Timestamp::MAX);
    state.tokens.insert(access_token.clone(), expires);
    Json(json!({ "access_token": access_token, "token_type": "Bearer", "expires_in": ttl }))
        .into_response()
}

// ---------------------------------------------------------------------------
// Paging

/// A stored search: what matched when it started, and how it pages.
pub(crate) struct Search {
    kind: SearchKind,
    page_size: usize,
    started: Instant,
}

/// Searches kept at once; the oldest expires first (a long-running sandbox pulls forever).
const MAX_SEARCHES: usize = 1000;

enum SearchKind {
    Shipments(Vec<u64>),
    ShipmentLines(u64),
    SalesOrders(Vec<u64>),
    OrderLines(u64),
    Items(Vec<String>),
}

struct Params(Vec<(String, String)>);

impl Params {
    fn parse(query: Option<String>) -> Self {
        Params(
            query
                .map(|q| {
                    url::form_urlencoded::parse(q.as_bytes())
                        .into_owned()
                        .collect()
                })
                .unwrap_or_default(),
        )
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    fn timestamp(&self, name: &str) -> Result<Option<Timestamp>, ApiError> {
        let Some(raw) = self.get(name) else {
            return Ok(None);
        };
        parse_time(raw).map(Some).ok_or_else(|| {
            ApiError(
                StatusCode::BAD_REQUEST,
                format!("{name} must be an ISO-8601 date-time, got {raw:?}"),
            )
        })
    }
}

/// `2026-11-27T21:14:05Z`, with an offset, or without one (taken as UTC), or a date.
fn parse_time(raw: &str) -> Option<Timestamp> {
    if let Ok(t) = raw.parse::<Timestamp>() {
        return Some(t);
    }
    if let Ok(dt) = raw.parse::<jiff::civil::DateTime>() {
        return dt
            .to_zoned(jiff::tz::TimeZone::UTC)
            .ok()
            .map(|z| z.timestamp());
    }
    raw.parse::<jiff::civil::Date>()
        .ok()
        .and_then(|d| d.to_zoned(jiff::tz::TimeZone::UTC).ok())
        .map(|z| z.timestamp())
}

/// Where links point: the address the client used, so `next` hrefs are absolute.
struct LinkBase(String);

impl LinkBase {
    fn new(headers: &HeaderMap, uri: &OriginalUri) -> Self {
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("localhost");
        LinkBase(format!("http://{host}{}", uri.0.path()))
    }
}

/// Answers a collection request: continues the search named by `searchId`
/// (which overrides every other parameter), or starts one from `start`.
fn collection(
    sandbox: &DeposcoSandbox,
    params: &Params,
    base: &LinkBase,
    start: impl FnOnce(&SandboxState) -> Result<SearchKind, ApiError>,
) -> Response {
    let page = match params.get("page").map(str::parse::<usize>) {
        None => 1,
        Some(Ok(p)) if p >= 1 => p,
        Some(_) => {
            return errors(
                StatusCode::BAD_REQUEST,
                "page must be a whole number from 1",
            );
        }
    };
    let mut state = sandbox.lock();
    let search_id = match params.get("searchId") {
        Some(id) => {
            if !state.searches.contains_key(id) {
                return errors(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "searchId {id} is unknown or expired; start the search again without it"
                    ),
                );
            }
            id.to_owned()
        }
        None => {
            let max = state.config.max_page_size;
            let page_size = match params.get("pageSize").map(str::parse::<usize>) {
                None => state.config.default_page_size,
                Some(Ok(n)) if (1..=max).contains(&n) => n,
                Some(Ok(n)) if n > max => {
                    return errors(
                        StatusCode::BAD_REQUEST,
                        format!("pageSize {n} exceeds the maximum of {max}"),
                    );
                }
                Some(_) => {
                    return errors(
                        StatusCode::BAD_REQUEST,
                        format!("pageSize must be a whole number from 1 to {max}"),
                    );
                }
            };
            let kind = match start(&state) {
                Ok(kind) => kind,
                Err(e) => return e.into_response(),
            };
            let id = hex::encode(rand::random::<[u8; 12]>());
            if state.searches.len() >= MAX_SEARCHES
                && let Some(oldest) = state
                    .searches
                    .iter()
                    .min_by_key(|(_, s)| s.started)
                    .map(|(k, _)| k.clone())
            {
                state.searches.remove(&oldest);
            }
            let search = Search {
                kind,
                page_size,
                started: Instant::now(),
            };
            state.searches.insert(id.clone(), search);
            id
        }
    };
    let Some(search) = state.searches.get(&search_id) else {
        return errors(StatusCode::BAD_REQUEST, "searchId is unknown");
    };
    let page_size = search.page_size;
    let (total, data) = search_page(&state, &search.kind, (page - 1) * page_size, page_size);
    let pages = total.div_ceil(page_size).max(1);
    let complete = page >= pages;
    let links: Vec<Value> = if complete {
        Vec::new()
    } else {
        vec![
            json!({ "rel": "next", "href": format!("{}?searchId={search_id}&page={}", base.0, page + 1) }),
        ]
    };
    Json(json!({ "data": data, "links": links, "complete": complete, "pages": pages }))
        .into_response()
}

/// The number of rows of a search and the rows `skip..skip + take`, rendered
/// now. Shipments are looked up through an index and only the requested page
/// is rendered, so paging through a large search stays linear (the pull
/// benchmark pages through 10,000 shipments with the sandbox on the same cores).
fn search_page(
    state: &SandboxState,
    kind: &SearchKind,
    skip: usize,
    take: usize,
) -> (usize, Vec<Value>) {
    if let SearchKind::Shipments(ids) = kind {
        let by_id: std::collections::HashMap<u64, &crate::ShipmentRecord> =
            state.shipments.iter().map(|s| (s.id, s)).collect();
        let live: Vec<&crate::ShipmentRecord> =
            ids.iter().filter_map(|id| by_id.get(id).copied()).collect();
        let renderer = state.renderer();
        let limit = state.config.nested_limit;
        let data = live
            .iter()
            .skip(skip)
            .take(take)
            .map(|s| renderer.shipment(s, Some(limit)).to_value())
            .collect();
        return (live.len(), data);
    }
    let rows = search_rows(state, kind);
    let total = rows.len();
    (total, rows.into_iter().skip(skip).take(take).collect())
}

/// The rows of a search, rendered now (records may have changed since it started).
fn search_rows(state: &SandboxState, kind: &SearchKind) -> Vec<Value> {
    let renderer = state.renderer();
    let limit = state.config.nested_limit;
    match kind {
        SearchKind::Shipments(ids) => ids
            .iter()
            .filter_map(|id| state.shipments.iter().find(|s| s.id == *id))
            .map(|s| renderer.shipment(s, Some(limit)).to_value())
            .collect(),
        SearchKind::ShipmentLines(id) => state
            .shipments
            .iter()
            .find(|s| s.id == *id)
            .map(|s| {
                renderer
                    .shipment_lines(s)
                    .iter()
                    .map(|n| n.to_value())
                    .collect()
            })
            .unwrap_or_default(),
        SearchKind::SalesOrders(ids) => ids
            .iter()
            .filter_map(|id| state.sales_orders.iter().find(|o| o.id == *id))
            .map(|o| orders::order_json(o, limit))
            .collect(),
        SearchKind::OrderLines(id) => state
            .sales_orders
            .iter()
            .find(|o| o.id == *id)
            .map(orders::order_lines_json)
            .unwrap_or_default(),
        SearchKind::Items(numbers) => numbers
            .iter()
            .filter_map(|n| state.items.get(n))
            .map(|item| item_json(&state.config.business_unit, item))
            .collect(),
    }
}

fn check_business_unit(state: &SandboxState, params: &Params) -> Result<(), ApiError> {
    match params.get("businessUnit") {
        Some(bu) if bu != state.config.business_unit => Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!("Business unit {bu} not found"),
        )),
        _ => Ok(()),
    }
}

// ---------------------------------------------------------------------------
// Shipments

async fn list_shipments(
    State(sandbox): State<DeposcoSandbox>,
    headers: HeaderMap,
    uri: OriginalUri,
    RawQuery(query): RawQuery,
) -> Response {
    let params = Params::parse(query);
    let base = LinkBase::new(&headers, &uri);
    collection(&sandbox, &params, &base, |state| {
        check_business_unit(state, &params)?;
        let created_after = params.timestamp("createdAfter")?;
        let updated_after = params.timestamp("updatedAfter")?;
        let shipped_after = params.timestamp("shippedAfter")?;
        let mut matching: Vec<_> = state
            .shipments
            .iter()
            .filter(|s| created_after.is_none_or(|t| s.created_date >= t))
            .filter(|s| updated_after.is_none_or(|t| s.updated_date >= t))
            .filter(|s| shipped_after.is_none_or(|t| s.actual_ship_date().is_some_and(|d| d >= t)))
            .filter(|s| params.get("shipmentNumber").is_none_or(|n| s.number == n))
            .filter(|s| {
                params
                    .get("orderNumber")
                    .is_none_or(|n| s.spec.order_number == n)
            })
            .filter(|s| {
                params
                    .get("customerOrderNumber")
                    .is_none_or(|n| s.spec.customer_order_number.as_deref() == Some(n))
            })
            .filter(|s| {
                params
                    .get("shipmentStatus")
                    .is_none_or(|st| s.spec.status.eq_ignore_ascii_case(st))
            })
            .collect();
        // Newest first.
        matching.sort_by(|a, b| b.created_date.cmp(&a.created_date).then(b.id.cmp(&a.id)));
        Ok(SearchKind::Shipments(
            matching.iter().map(|s| s.id).collect(),
        ))
    })
}

fn shipment_id(state: &SandboxState, raw: &str) -> Option<u64> {
    let id = raw.parse::<u64>().ok()?;
    state.shipments.iter().any(|s| s.id == id).then_some(id)
}

async fn get_shipment(State(sandbox): State<DeposcoSandbox>, Path(id): Path<String>) -> Response {
    let state = sandbox.lock();
    let Some(record) =
        shipment_id(&state, &id).and_then(|id| state.shipments.iter().find(|s| s.id == id))
    else {
        return errors(
            StatusCode::NOT_FOUND,
            format!("Outbound shipment {id} not found"),
        );
    };
    let body = state
        .renderer()
        .shipment(record, Some(state.config.nested_limit))
        .to_value();
    if state.config.wrap_single_shipment {
        Json(json!({ "outboundShipment": body })).into_response()
    } else {
        Json(body).into_response()
    }
}

async fn shipment_lines(
    State(sandbox): State<DeposcoSandbox>,
    Path(id): Path<String>,
    headers: HeaderMap,
    uri: OriginalUri,
    RawQuery(query): RawQuery,
) -> Response {
    let params = Params::parse(query);
    let base = LinkBase::new(&headers, &uri);
    collection(&sandbox, &params, &base, |state| {
        shipment_id(state, &id)
            .map(SearchKind::ShipmentLines)
            .ok_or_else(|| {
                ApiError(
                    StatusCode::NOT_FOUND,
                    format!("Outbound shipment {id} not found"),
                )
            })
    })
}

// ---------------------------------------------------------------------------
// Sales orders

async fn post_order(State(sandbox): State<DeposcoSandbox>, body: Bytes) -> Response {
    let Ok(value) = serde_json::from_slice::<Value>(&body) else {
        return errors(StatusCode::BAD_REQUEST, "Request body is not valid JSON");
    };
    let mut state = sandbox.lock();
    let rules = OrderRules {
        business_unit: &state.config.business_unit,
        items: state.config.items_must_exist.then_some(&state.items),
        require_ship_to: state.config.require_ship_to,
    };
    let valid = match orders::validate(value, &rules) {
        Ok(valid) => valid,
        Err(message) => return errors(StatusCode::BAD_REQUEST, message),
    };
    let id = stable_id(&["order", &state.config.business_unit, &valid.number]);
    let now = now();
    let (status, record) = match state
        .sales_orders
        .iter_mut()
        .find(|o| o.number == valid.number)
    {
        Some(existing) => {
            // All or nothing: the rules run on a copy.
            let mut updated = existing.clone();
            if let Err(message) = lifecycle::update(&mut updated, valid, orders::MAX_LINES) {
                return errors(StatusCode::BAD_REQUEST, message);
            }
            updated.updated_date = now;
            updated.times_posted += 1;
            *existing = updated;
            (StatusCode::OK, existing.clone())
        }
        None => {
            let initial = match lifecycle::initial_status(valid.order_status.as_deref()) {
                Ok(initial) => initial,
                Err(message) => return errors(StatusCode::BAD_REQUEST, message),
            };
            let mut record = SalesOrderRecord {
                id,
                number: valid.number,
                customer_order_number: valid.customer_order_number,
                order_status: valid.order_status,
                status: initial.to_owned(),
                lines: valid.lines,
                body: valid.body,
                created_date: now,
                updated_date: now,
                times_posted: 1,
            };
            lifecycle::refresh_lines(&mut record);
            state.sales_orders.push(record.clone());
            (StatusCode::CREATED, record)
        }
    };
    (
        status,
        Json(orders::order_json(&record, state.config.nested_limit)),
    )
        .into_response()
}

async fn list_orders(
    State(sandbox): State<DeposcoSandbox>,
    headers: HeaderMap,
    uri: OriginalUri,
    RawQuery(query): RawQuery,
) -> Response {
    let params = Params::parse(query);
    let base = LinkBase::new(&headers, &uri);
    collection(&sandbox, &params, &base, |state| {
        check_business_unit(state, &params)?;
        let mut matching: Vec<&SalesOrderRecord> = state
            .sales_orders
            .iter()
            .filter(|o| params.get("number").is_none_or(|n| o.number == n))
            .filter(|o| {
                params
                    .get("customerOrderNumber")
                    .is_none_or(|n| o.customer_order_number.as_deref() == Some(n))
            })
            .collect();
        matching.sort_by(|a, b| {
            b.created_date
                .cmp(&a.created_date)
                .then(b.number.cmp(&a.number))
        });
        Ok(SearchKind::SalesOrders(
            matching.iter().map(|o| o.id).collect(),
        ))
    })
}

fn order_id(state: &SandboxState, raw: &str) -> Option<u64> {
    let id = raw.parse::<u64>().ok()?;
    state.sales_orders.iter().any(|o| o.id == id).then_some(id)
}

async fn get_order(State(sandbox): State<DeposcoSandbox>, Path(id): Path<String>) -> Response {
    let state = sandbox.lock();
    match order_id(&state, &id).and_then(|id| state.sales_orders.iter().find(|o| o.id == id)) {
        Some(order) => Json(orders::order_json(order, state.config.nested_limit)).into_response(),
        None => errors(StatusCode::NOT_FOUND, format!("Sales order {id} not found")),
    }
}

fn order_not_found(id: &str) -> Response {
    errors(StatusCode::NOT_FOUND, format!("Sales order {id} not found"))
}

async fn get_order_status(
    State(sandbox): State<DeposcoSandbox>,
    Path(id): Path<String>,
) -> Response {
    let state = sandbox.lock();
    match order_id(&state, &id).and_then(|id| state.sales_orders.iter().find(|o| o.id == id)) {
        Some(order) => Json(json!({ "orderStatus": order.status })).into_response(),
        None => order_not_found(&id),
    }
}

/// Runs a lifecycle rule on sales order `id`, all or nothing, and answers
/// with the order (200) or Deposco's refusal (400).
fn change_order(
    sandbox: &DeposcoSandbox,
    id: &str,
    rule: impl FnOnce(&mut SalesOrderRecord) -> Result<(), String>,
) -> Response {
    let mut state = sandbox.lock();
    let limit = state.config.nested_limit;
    let Some(order) =
        order_id(&state, id).and_then(|id| state.sales_orders.iter_mut().find(|o| o.id == id))
    else {
        return order_not_found(id);
    };
    let mut changed = order.clone();
    if let Err(message) = rule(&mut changed) {
        return errors(StatusCode::BAD_REQUEST, message);
    }
    changed.updated_date = now();
    *order = changed;
    Json(orders::order_json(order, limit)).into_response()
}

async fn post_order_status(
    State(sandbox): State<DeposcoSandbox>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let params = Params::parse(query);
    change_order(&sandbox, &id, |order| {
        lifecycle::change_status(order, params.get("value"))
    })
}

async fn post_cancellation(
    State(sandbox): State<DeposcoSandbox>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let request = match lifecycle::parse_cancellation(&body) {
        Ok(request) => request,
        Err(message) => return errors(StatusCode::BAD_REQUEST, message),
    };
    change_order(&sandbox, &id, |order| lifecycle::cancel(order, request))
}

async fn order_lines(
    State(sandbox): State<DeposcoSandbox>,
    Path(id): Path<String>,
    headers: HeaderMap,
    uri: OriginalUri,
    RawQuery(query): RawQuery,
) -> Response {
    let params = Params::parse(query);
    let base = LinkBase::new(&headers, &uri);
    collection(&sandbox, &params, &base, |state| {
        order_id(state, &id)
            .map(SearchKind::OrderLines)
            .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("Sales order {id} not found")))
    })
}

// ---------------------------------------------------------------------------
// Items

fn item_json(business_unit: &str, item: &ItemSpec) -> Value {
    let components: Vec<Value> = item
        .components
        .iter()
        .map(|c| json!({ "subComponent": { "businessKey": { "number": c.sku } }, "quantity": c.quantity }))
        .collect();
    json!({
        "self": { "id": stable_id(&["item", business_unit, &item.number]) },
        "businessUnit": { "businessKey": { "code": business_unit } },
        "businessKey": { "number": item.number },
        "number": item.number,
        "kitOrderOnly": !item.components.is_empty(),
        "kitStockOnly": false,
        "components": components,
    })
}

async fn get_item(State(sandbox): State<DeposcoSandbox>, Path(number): Path<String>) -> Response {
    let state = sandbox.lock();
    match state.items.get(&number) {
        Some(item) => Json(item_json(&state.config.business_unit, item)).into_response(),
        None => errors(StatusCode::NOT_FOUND, format!("Item {number} not found")),
    }
}

async fn list_items(
    State(sandbox): State<DeposcoSandbox>,
    headers: HeaderMap,
    uri: OriginalUri,
    RawQuery(query): RawQuery,
) -> Response {
    let params = Params::parse(query);
    let base = LinkBase::new(&headers, &uri);
    collection(&sandbox, &params, &base, |state| {
        check_business_unit(state, &params)?;
        let numbers = state
            .items
            .keys()
            .filter(|n| params.get("number").is_none_or(|want| n.as_str() == want))
            .cloned()
            .collect();
        Ok(SearchKind::Items(numbers))
    })
}

// ---------------------------------------------------------------------------
// Control endpoints (no auth, not counted)

async fn control_add_shipment(
    State(sandbox): State<DeposcoSandbox>,
    Json(spec): Json<ShipmentSpec>,
) -> Response {
    (StatusCode::CREATED, Json(sandbox.add_shipment(spec))).into_response()
}

async fn control_list_shipments(State(sandbox): State<DeposcoSandbox>) -> Response {
    Json(sandbox.shipments()).into_response()
}

async fn control_get_shipment(
    State(sandbox): State<DeposcoSandbox>,
    Path(number): Path<String>,
) -> Response {
    match sandbox.shipment(&number) {
        Some(record) => Json(record).into_response(),
        None => errors(
            StatusCode::NOT_FOUND,
            format!("Shipment {number} not found"),
        ),
    }
}

#[derive(Deserialize)]
struct RenderQuery {
    #[serde(default = "default_shape")]
    shape: Shape,
}

fn default_shape() -> Shape {
    Shape::Current
}

async fn control_render(
    State(sandbox): State<DeposcoSandbox>,
    Path(number): Path<String>,
    axum::extract::Query(q): axum::extract::Query<RenderQuery>,
) -> Response {
    match sandbox.render(&number, q.shape) {
        Some(body) => ([(header::CONTENT_TYPE, q.shape.content_type())], body).into_response(),
        None => errors(
            StatusCode::NOT_FOUND,
            format!("Shipment {number} not found"),
        ),
    }
}

#[derive(Deserialize)]
struct WebhookCommand {
    url: String,
    #[serde(default = "default_shape")]
    shape: Shape,
    #[serde(default)]
    signing: Signing,
    #[serde(default)]
    webhook_id: Option<String>,
}

async fn control_webhook(
    State(sandbox): State<DeposcoSandbox>,
    Path(number): Path<String>,
    Json(cmd): Json<WebhookCommand>,
) -> Response {
    let mut request = match sandbox.webhook_request(&number, cmd.shape, cmd.signing) {
        Ok(request) => request,
        Err(e) => return errors(StatusCode::NOT_FOUND, e.to_string()),
    };
    request.webhook_id = cmd.webhook_id;
    match sandbox.send_webhook(&cmd.url, request).await {
        Ok(response) => Json(json!({
            "dropped": response.is_dropped(),
            "status": response.status(),
            "body": String::from_utf8_lossy(response.body()),
            "webhook_id": response.sent().webhook_id,
        }))
        .into_response(),
        Err(e) => errors(StatusCode::BAD_GATEWAY, e.to_string()),
    }
}

async fn control_get_faults(State(sandbox): State<DeposcoSandbox>) -> Response {
    Json(sandbox.faults()).into_response()
}

async fn control_set_faults(
    State(sandbox): State<DeposcoSandbox>,
    Json(faults): Json<Faults>,
) -> Response {
    sandbox.set_faults(faults.clone());
    Json(faults).into_response()
}

async fn control_add_item(
    State(sandbox): State<DeposcoSandbox>,
    Json(item): Json<ItemSpec>,
) -> Response {
    sandbox.add_item(item.clone());
    (StatusCode::CREATED, Json(item)).into_response()
}

async fn control_sales_orders(State(sandbox): State<DeposcoSandbox>) -> Response {
    Json(sandbox.sales_orders()).into_response()
}

/// The warehouse moves an order: `{"status": "Released"}` (any status word,
/// no rules), optionally `"back_ordered": {"<lineNumber>": units}`.
#[derive(Deserialize)]
struct WarehouseStatus {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    back_ordered: std::collections::BTreeMap<String, f64>,
}

async fn control_sales_order_status(
    State(sandbox): State<DeposcoSandbox>,
    Path(number): Path<String>,
    Json(cmd): Json<WarehouseStatus>,
) -> Response {
    let mut result = sandbox
        .sales_order(&number)
        .ok_or_else(|| crate::Error::UnknownSalesOrder(number.clone()));
    for (line_number, units) in &cmd.back_ordered {
        result = result.and_then(|_| sandbox.set_back_ordered(&number, line_number, *units));
    }
    if let Some(status) = &cmd.status {
        result = result.and_then(|_| sandbox.set_sales_order_status(&number, status));
    }
    match result {
        Ok(record) => Json(record).into_response(),
        Err(e @ crate::Error::UnknownSalesOrder(_)) => errors(StatusCode::NOT_FOUND, e.to_string()),
        Err(e) => errors(StatusCode::BAD_REQUEST, e.to_string()),
    }
}
