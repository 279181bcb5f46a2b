//! `/api/v1/connections` and their channels.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use shipsync_db::now_micros;
use shipsync_db::{
    channels::ChannelRow, connections::ConnectionRow, merchants::MerchantRow, runs::QueueRun,
};
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::merchants::{self, check_url};
use super::schema::{self, List};
use super::targets::{check_public, forbid_scoped, gives, missing_credentials};
use super::{Page, Query, body_json, list};
use crate::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::json::{merge_patch, opt_time, time};
use shipsync_core::states::{Channel, RunTrigger, StoreStatus};
use shipsync_engine::StoreSettings;
use shipsync_engine::tokens::StoreAuth;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_connections, create))
        .routes(routes!(show, update, remove))
        .routes(routes!(show_channel, update_channel))
        .routes(routes!(authorize))
        .routes(routes!(run_now))
        .routes(routes!(show_run))
}

/// A new connection's channels, in the order they are created.
const CHANNELS: [Channel; 2] = [Channel::SalesOrders, Channel::Shipments];
const DEFAULT_API_VERSION: &str = "2026-10";

/// The default Shipments schedule: every 4 hours.
fn default_schedules(channel: Channel) -> Value {
    if channel == Channel::Shipments {
        json!([{"id": shipsync_db::new_id("sch"), "kind": "hourly", "every": 4, "minute": 0, "time_zone": "UTC"}])
    } else {
        json!([])
    }
}

fn defaults() -> Value {
    json!({
        "enabled": false,
        "order_prefix": "",
        "store": {"platform": "shopify", "api_version": DEFAULT_API_VERSION, "location_id": null, "notify_customer": true},
    })
}

fn strip_read_only(patch: &mut Value) {
    if let Some(o) = patch.as_object_mut() {
        for k in ["id", "created_at", "updated_at"] {
            o.remove(k);
        }
        for k in ["store_status", "store_error"] {
            o.remove(k);
        }
        if let Some(st) = o.get_mut("store").and_then(Value::as_object_mut) {
            st.remove("access_token_set");
            if let Some(a) = st.get_mut("auth").and_then(Value::as_object_mut) {
                for k in AUTH_READ_ONLY {
                    a.remove(k);
                }
            }
        }
    }
}

/// What answers show of `store.auth` and a request may send back unchanged.
const AUTH_READ_ONLY: [&str; 6] = [
    "client_secret_set",
    "access_token_set",
    "connected",
    "expires_at",
    "missing_scopes",
    "requested_scopes",
];

/// A stored (sealed) secret, opened.
fn open(s: &AppState, sealed: &Option<Vec<u8>>) -> ApiResult<Option<String>> {
    sealed
        .as_ref()
        .map(|b| s.engine.secrets().open_string(b))
        .transpose()
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))
}

fn to_doc(s: &AppState, c: &ConnectionRow) -> ApiResult<Value> {
    let mut store: Value = serde_json::from_str(&c.store_json).unwrap_or_else(|_| json!({}));
    if let (Some(token), Some(o)) = (open(s, &c.store_token)?, store.as_object_mut()) {
        o.insert("access_token".into(), json!(token));
    }
    if let (Some(secret), Some(a)) = (
        open(s, &c.store_client_secret)?,
        store.get_mut("auth").and_then(Value::as_object_mut),
    ) {
        a.insert("client_secret".into(), json!(secret));
    }
    Ok(
        json!({"name": c.name, "merchant_id": c.merchant_id, "enabled": c.enabled, "order_prefix": c.order_prefix, "store": store}),
    )
}

struct Parts {
    name: String,
    merchant_id: String,
    enabled: bool,
    order_prefix: String,
    store_json: String,
    access_token: Option<String>,
    client_secret: Option<String>,
}

fn validate(doc: &Value) -> ApiResult<Parts> {
    let obj = doc
        .as_object()
        .ok_or_else(|| ApiError::bad_request("the body must be a JSON object"))?;
    for k in obj.keys() {
        if !["name", "merchant_id", "enabled", "order_prefix", "store"].contains(&k.as_str()) {
            return Err(ApiError::invalid(k, "unknown field"));
        }
    }
    let string = |o: &Map<String, Value>,
                  k: &str,
                  field: &str,
                  required: bool|
     -> ApiResult<Option<String>> {
        match o.get(k) {
            Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.trim().to_string())),
            Some(Value::String(_)) | None | Some(Value::Null) if required => {
                Err(ApiError::invalid(field, "is required"))
            }
            Some(Value::String(_)) | None | Some(Value::Null) => Ok(None),
            Some(_) => Err(ApiError::invalid(field, "must be a string")),
        }
    };
    let name = string(obj, "name", "name", true)?.unwrap_or_default();
    if name.chars().count() > 200 {
        return Err(ApiError::invalid("name", "must be at most 200 characters"));
    }
    let merchant_id = string(obj, "merchant_id", "merchant_id", true)?.unwrap_or_default();
    let enabled = match obj.get("enabled") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(ApiError::invalid("enabled", "must be true or false")),
    };
    let order_prefix = string(obj, "order_prefix", "order_prefix", false)?.unwrap_or_default();
    if order_prefix.len() > 20 {
        return Err(ApiError::invalid(
            "order_prefix",
            "must be at most 20 characters",
        ));
    }
    let st = obj
        .get("store")
        .and_then(Value::as_object)
        .ok_or_else(|| ApiError::invalid("store", "must be an object"))?;
    for k in st.keys() {
        if ![
            "platform",
            "shop_url",
            "access_token",
            "api_version",
            "location_id",
            "notify_customer",
            "auth",
        ]
        .contains(&k.as_str())
        {
            return Err(ApiError::invalid(&format!("store.{k}"), "unknown field"));
        }
    }
    let platform = string(st, "platform", "store.platform", true)?.unwrap_or_default();
    if platform != "shopify" {
        return Err(ApiError::invalid(
            "store.platform",
            "must be \"shopify\" (the only store supported so far)",
        ));
    }
    let shop_url = string(st, "shop_url", "store.shop_url", true)?.unwrap_or_default();
    check_url(&shop_url, "store.shop_url")?;
    let api_version = string(st, "api_version", "store.api_version", false)?
        .unwrap_or_else(|| DEFAULT_API_VERSION.into());
    let valid_version = api_version.len() == 7
        && api_version.as_bytes()[4] == b'-'
        && api_version
            .chars()
            .enumerate()
            .all(|(i, c)| i == 4 || c.is_ascii_digit())
        || api_version == "unstable";
    if !valid_version {
        return Err(ApiError::invalid(
            "store.api_version",
            "must look like 2026-10",
        ));
    }
    let location_id = string(st, "location_id", "store.location_id", false)?;
    let notify_customer = match st.get("notify_customer") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(ApiError::invalid(
                "store.notify_customer",
                "must be true or false",
            ));
        }
    };
    let mut access_token = string(st, "access_token", "store.access_token", false)?;
    let mut client_secret = None;
    let auth = match st.get("auth") {
        None | Some(Value::Null) => StoreAuth::AccessToken,
        Some(Value::Object(a)) => {
            for k in a.keys() {
                if ![
                    "type",
                    "client_id",
                    "client_secret",
                    "scopes",
                    "access_token",
                ]
                .contains(&k.as_str())
                {
                    return Err(ApiError::invalid(
                        &format!("store.auth.{k}"),
                        "unknown field",
                    ));
                }
            }
            let kind = string(a, "type", "store.auth.type", true)?.unwrap_or_default();
            let client_id = || -> ApiResult<String> {
                let id = string(a, "client_id", "store.auth.client_id", true)?.unwrap_or_default();
                if id.len() > 200 {
                    return Err(ApiError::invalid(
                        "store.auth.client_id",
                        "must be at most 200 characters",
                    ));
                }
                Ok(id)
            };
            match kind.as_str() {
                "access_token" => {
                    if let Some(t) = string(a, "access_token", "store.auth.access_token", false)? {
                        access_token = Some(t);
                    }
                    StoreAuth::AccessToken
                }
                "client_credentials" => StoreAuth::ClientCredentials {
                    client_id: client_id()?,
                },
                "authorization_code" => StoreAuth::AuthorizationCode {
                    client_id: client_id()?,
                    scopes: scopes_of(a.get("scopes"))?,
                },
                _ => {
                    return Err(ApiError::invalid(
                        "store.auth.type",
                        "must be access_token, client_credentials or authorization_code",
                    ));
                }
            }
        }
        Some(_) => return Err(ApiError::invalid("store.auth", "must be an object")),
    };
    if auth != StoreAuth::AccessToken {
        // An app's token comes from its client id and secret: a legacy
        // token left in the document is dropped.
        access_token = None;
        client_secret = st
            .get("auth")
            .and_then(|a| a.as_object())
            .map(|a| string(a, "client_secret", "store.auth.client_secret", false))
            .transpose()?
            .flatten();
    }
    let mut store = json!({
        "platform": platform,
        "shop_url": shop_url.trim_end_matches('/'),
        "api_version": api_version,
        "location_id": location_id,
        "notify_customer": notify_customer,
    });
    if auth != StoreAuth::AccessToken {
        store["auth"] = serde_json::to_value(&auth).map_err(|e| {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
        })?;
    }
    let store_json = store.to_string();
    Ok(Parts {
        name,
        merchant_id,
        enabled,
        order_prefix,
        store_json,
        access_token,
        client_secret,
    })
}

/// The scopes an install asks for: `None` for shipsync's default set.
fn scopes_of(v: Option<&Value>) -> ApiResult<Option<Vec<String>>> {
    let field = "store.auth.scopes";
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => {
            let mut scopes = Vec::new();
            for item in items {
                let scope = item
                    .as_str()
                    .map(str::trim)
                    .filter(|x| {
                        !x.is_empty()
                            && x.len() <= 100
                            && x.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                    })
                    .ok_or_else(|| {
                        ApiError::invalid(
                            field,
                            "must be a list of scope names such as read_orders",
                        )
                    })?;
                scopes.push(scope.to_owned());
            }
            Ok(Some(scopes))
        }
        Some(_) => Err(ApiError::invalid(field, "must be a list of scope names")),
    }
}

pub fn render(c: &ConnectionRow) -> Value {
    let mut store: Value = serde_json::from_str(&c.store_json).unwrap_or_else(|_| json!({}));
    let auth = StoreSettings::parse(c)
        .map(|st| st.auth())
        .unwrap_or(StoreAuth::AccessToken);
    let legacy = auth == StoreAuth::AccessToken;
    let mut shown = json!({
        "type": auth.kind(),
        "client_id": auth.client_id(),
        "connected": if legacy { c.store_token.is_some() } else { c.token_held },
        "expires_at": if legacy { Value::Null } else { opt_time(c.token_expires_at) },
        "scopes": shipsync_engine::Engine::granted_scopes(c),
        "missing_scopes": shipsync_engine::Engine::missing_scopes(c),
    });
    if legacy {
        shown["access_token_set"] = json!(c.store_token.is_some());
    } else {
        shown["client_secret_set"] = json!(c.store_client_secret.is_some());
    }
    if let StoreAuth::AuthorizationCode {
        scopes: Some(asked),
        ..
    } = &auth
    {
        shown["requested_scopes"] = json!(asked);
    }
    if let Some(o) = store.as_object_mut() {
        o.insert("access_token_set".into(), json!(c.store_token.is_some()));
        o.insert("auth".into(), shown);
    }
    json!({
        "id": c.id,
        "name": c.name,
        "merchant_id": c.merchant_id,
        "enabled": c.enabled,
        "order_prefix": c.order_prefix,
        "store": store,
        "store_status": c.store_status,
        "store_error": c.store_error,
        "created_at": time(c.created_at),
        "updated_at": time(c.updated_at),
    })
}

/// Sets the connection from `p`; returns its merchant.
async fn apply(
    s: &AppState,
    who: &Principal,
    c: &mut ConnectionRow,
    p: Parts,
) -> ApiResult<MerchantRow> {
    let merchant = if who.sees(&p.merchant_id) {
        shipsync_db::merchants::get(s.engine.db().pool(), &p.merchant_id).await?
    } else {
        None
    };
    let Some(merchant) = merchant else {
        return Err(ApiError::invalid("merchant_id", "no merchant with this id"));
    };
    set(s, c, p);
    Ok(merchant)
}

fn shop_url(store_json: &str) -> String {
    serde_json::from_str::<Value>(store_json)
        .ok()
        .and_then(|v| v["shop_url"].as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The credential an enabled connection needs and lacks, as the field to
/// give: the store's access token, or its merchant's warehouse secret.
fn missing_secret(s: &AppState, c: &ConnectionRow, m: &MerchantRow) -> Option<&'static str> {
    let auth = StoreSettings::parse(c)
        .map(|st| st.auth())
        .unwrap_or(StoreAuth::AccessToken);
    match auth {
        StoreAuth::AccessToken if c.store_token.is_none() => return Some("store.access_token"),
        StoreAuth::AccessToken => {}
        _ if c.store_client_secret.is_none() => return Some("store.auth.client_secret"),
        StoreAuth::AuthorizationCode { .. } if !c.token_held => {
            return Some(
                "the store's authorization (Connect to Shopify, or POST /api/v1/connections/{id}/store/authorize)",
            );
        }
        _ => {}
    }
    merchants::missing_secret(s, m)
}

fn set(s: &AppState, c: &mut ConnectionRow, p: Parts) {
    c.name = p.name;
    c.merchant_id = p.merchant_id;
    c.enabled = p.enabled;
    c.order_prefix = p.order_prefix;
    c.store_json = p.store_json;
    c.store_token = p.access_token.map(|t| s.engine.secrets().seal_str(&t));
    c.store_client_secret = p.client_secret.map(|t| s.engine.secrets().seal_str(&t));
}

/// The connection, when the principal may see its merchant (else 404).
pub async fn load(s: &AppState, p: &Principal, id: &str) -> ApiResult<ConnectionRow> {
    shipsync_db::connections::get(s.engine.db().pool(), id)
        .await?
        .filter(|c| p.sees(&c.merchant_id))
        .ok_or_else(|| ApiError::not_found("connection"))
}

/// Filters of `GET /connections`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only this merchant's.
    merchant_id: Option<String>,
    #[serde(flatten)]
    #[param(ignore)]
    page: Page,
}

#[utoipa::path(
    get,
    path = "/connections",
    operation_id = "list_connections",
    tag = "connections",
    summary = "The connections the caller sees",
    params(Page, ListQuery),
    responses(
        (status = 200, description = "A page of connections", body = schema::List<schema::Connection>),
        (status = 400, description = "the query string cannot be read (`malformed`)", body = schema::ErrorBody),
        (status = 422, description = "`limit` out of range (`invalid_field`, naming the field)", body = schema::ErrorBody)
    )
)]
async fn list_connections(
    State(s): State<AppState>,
    p: Principal,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<List<Value>>> {
    let limit = q.page.limit()?;
    let rows = visible(&s, &p, q.merchant_id, q.page.cursor.as_deref(), limit + 1).await?;
    Ok(Json(list(rows, limit, |c| c.id.clone(), render)))
}

/// The connections a principal sees (of one merchant when `merchant_id`).
pub async fn visible(
    s: &AppState,
    p: &Principal,
    merchant_id: Option<String>,
    cursor: Option<&str>,
    limit: i64,
) -> ApiResult<Vec<ConnectionRow>> {
    Ok(shipsync_db::connections::list(
        s.engine.db().pool(),
        p.narrow(merchant_id).as_deref(),
        cursor,
        limit,
    )
    .await?)
}

#[utoipa::path(
    post,
    path = "/connections",
    operation_id = "create_connection",
    tag = "connections",
    summary = "Create a connection (off, with its channels)",
    request_body = schema::ConnectionInput,
    responses(
        (status = 201, description = "The new connection", body = schema::Connection),
        (status = 400, description = "the body (or query string) is not valid JSON, or not an object (`malformed`)", body = schema::ErrorBody),
        (status = 422, description = "a field is missing or wrong (`invalid_field`), the shop URL is not public (`private_target`), or enabling it lacks credentials (`credentials_missing`) (`invalid_field`, naming the field)", body = schema::ErrorBody)
    )
)]
async fn create(
    State(s): State<AppState>,
    p: Principal,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let patch = body_json(&body)?;
    let c = create_connection(&s, &p, patch).await?;
    Ok((StatusCode::CREATED, Json(render(&c))))
}

/// Creates a connection and its channels (off, default schedules).
pub async fn create_connection(
    s: &AppState,
    p: &Principal,
    patch: Value,
) -> ApiResult<ConnectionRow> {
    let c = draft_connection(s, p, patch, None).await?;
    save_new(s, &c).await?;
    Ok(c)
}

/// A new connection from a JSON document, checked but not saved. Its
/// merchant must exist and be visible, unless it is `new_merchant` (a
/// merchant created with it, not saved yet either).
pub async fn draft_connection(
    s: &AppState,
    p: &Principal,
    mut patch: Value,
    new_merchant: Option<&MerchantRow>,
) -> ApiResult<ConnectionRow> {
    strip_read_only(&mut patch);
    let mut doc = defaults();
    merge_patch(&mut doc, &patch);
    let parts = validate(&doc)?;
    let url = shop_url(&parts.store_json);
    let now = now_micros();
    let mut c = ConnectionRow {
        id: shipsync_db::new_id("con"),
        name: String::new(),
        merchant_id: String::new(),
        enabled: false,
        order_prefix: String::new(),
        store_json: String::new(),
        store_token: None,
        store_client_secret: None,
        store_status: StoreStatus::Ok,
        store_error: None,
        created_at: now,
        updated_at: now,
        token_held: false,
        token_expires_at: None,
        granted_scopes: None,
        shipments_on: false,
        sales_orders_on: false,
    };
    let merchant = match new_merchant {
        Some(m) if m.id == parts.merchant_id => {
            set(s, &mut c, parts);
            m.clone()
        }
        _ => apply(s, p, &mut c, parts).await?,
    };
    check_public(s, "store.shop_url", &url).await?;
    if c.enabled
        && let Some(missing) = missing_secret(s, &c, &merchant)
    {
        return Err(missing_credentials(missing));
    }
    Ok(c)
}

/// Saves a drafted connection with its channels (off, default schedules).
pub async fn save_new(s: &AppState, c: &ConnectionRow) -> ApiResult<()> {
    let channels: Vec<ChannelRow> = CHANNELS
        .iter()
        .map(|ch| ChannelRow {
            connection_id: c.id.clone(),
            channel: *ch,
            enabled: false,
            schedules: default_schedules(*ch),
            last_completed_at: None,
            next_run_at: None,
        })
        .collect();
    shipsync_db::connections::insert(s.engine.db(), c, &channels).await?;
    Ok(())
}

#[utoipa::path(
    get,
    path = "/connections/{id}",
    operation_id = "get_connection",
    tag = "connections",
    summary = "One connection",
    params(("id" = String, Path, description = "con_…")),
    responses(
        (status = 200, description = "The connection", body = schema::Connection),
        (status = 404, description = "no connection with this id, or one the caller may not see (`not_found`)", body = schema::ErrorBody)
    )
)]
async fn show(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(render(&load(&s, &p, &id).await?)))
}

#[utoipa::path(
    patch,
    path = "/connections/{id}",
    operation_id = "update_connection",
    tag = "connections",
    summary = "Change a connection (JSON merge patch)",
    params(("id" = String, Path, description = "con_…")),
    request_body = schema::ConnectionPatch,
    responses(
        (status = 200, description = "The connection", body = schema::Connection),
        (status = 400, description = "the body (or query string) is not valid JSON, or not an object (`malformed`)", body = schema::ErrorBody),
        (status = 403, description = "a limited caller changed the shop URL (`forbidden`)", body = schema::ErrorBody),
        (status = 404, description = "no connection with this id, or one the caller may not see (`not_found`)", body = schema::ErrorBody),
        (status = 422, description = "a field is wrong (`invalid_field`), the shop URL is not public (`private_target`), or enabling it lacks credentials (`credentials_missing`) (`invalid_field`, naming the field)", body = schema::ErrorBody)
    )
)]
async fn update(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let patch = body_json(&body)?;
    Ok(Json(render(&update_connection(&s, &p, &id, patch).await?)))
}

/// Applies a JSON merge patch to a connection (the API's PATCH, or the UI's
/// switch turned into one).
pub async fn update_connection(
    s: &AppState,
    p: &Principal,
    id: &str,
    mut patch: Value,
) -> ApiResult<ConnectionRow> {
    let mut c = load(s, p, id).await?;
    let was_enabled = c.enabled;
    strip_read_only(&mut patch);
    let mut doc = to_doc(s, &c)?;
    // A legacy token given alone switches back from an app's credentials.
    if gives(&patch, "/store/access_token")
        && patch.pointer("/store/auth").is_none()
        && let Some(st) = doc.get_mut("store").and_then(Value::as_object_mut)
    {
        st.remove("auth");
    }
    let before = credentials(s, &c)?;
    merge_patch(&mut doc, &patch);
    let mut parts = validate(&doc)?;
    let new_url = shop_url(&parts.store_json);
    // Stored secrets never follow a new shop URL: kept only when given
    // again in this request.
    let mut cleared = false;
    if new_url != shop_url(&c.store_json) {
        forbid_scoped(p, &["store.shop_url"])?;
        check_public(s, "store.shop_url", &new_url).await?;
        if !gives(&patch, "/store/access_token") && !gives(&patch, "/store/auth/access_token") {
            cleared |= parts.access_token.take().is_some();
        }
        if !gives(&patch, "/store/auth/client_secret") {
            cleared |= parts.client_secret.take().is_some();
        }
    }
    let merchant = apply(s, p, &mut c, parts).await?;
    // New credentials: the app's token (of the old ones) is forgotten, and
    // a store that refused the old ones is tried again.
    let renewed = credentials(s, &c)? != before;
    if renewed {
        shipsync_db::store_auth::delete_token(s.engine.db().pool(), &c.id).await?;
        c.token_held = false;
        c.token_expires_at = None;
        c.granted_scopes = None;
        c.store_status = StoreStatus::Ok;
        c.store_error = None;
    }
    if c.enabled
        && let Some(missing) = missing_secret(s, &c, &merchant)
    {
        if patch.get("enabled") == Some(&Value::Bool(true)) {
            return Err(missing_credentials(missing));
        }
        if cleared {
            // Its token was just cleared: it cannot run until given again.
            c.enabled = false;
        }
    }
    c.updated_at = now_micros();
    shipsync_db::connections::update(s.engine.db().pool(), &c).await?;
    s.engine.connection_changed(&c.id);
    if (!was_enabled || renewed) && c.enabled {
        s.engine.release_waiting(&c.merchant_id).await?;
    }
    Ok(c)
}

/// Everything that decides which token the store gets: the shop, how it
/// authenticates, and the secrets (opened).
fn credentials(
    s: &AppState,
    c: &ConnectionRow,
) -> ApiResult<(String, StoreAuth, Option<String>, Option<String>)> {
    let settings = StoreSettings::parse(c).map_err(ApiError::from)?;
    Ok((
        settings.shop_url.clone(),
        settings.auth(),
        open(s, &c.store_token)?,
        open(s, &c.store_client_secret)?,
    ))
}

/// `POST /connections/{id}/store/authorize`: the install link (with a new
/// single-use state bound to the connection and the caller, 10 minutes).
#[utoipa::path(
    post,
    path = "/connections/{id}/store/authorize",
    operation_id = "authorize_store",
    tag = "connections",
    summary = "The store's install link (authorization_code)",
    params(("id" = String, Path, description = "con_…")),
    responses(
        (status = 200, description = "Send the browser there; Shopify comes back to /connect/shopify/callback", body = schema::AuthorizeLink),
        (status = 404, description = "no connection with this id, or one the caller may not see (`not_found`)", body = schema::ErrorBody),
        (status = 409, description = "the store does not authenticate with authorization_code (`not_authorization_code`)", body = schema::ErrorBody),
        (status = 422, description = "the app's client secret is not set (`credentials_missing`)", body = schema::ErrorBody)
    )
)]
async fn authorize(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<schema::AuthorizeLink>> {
    let authorize_url = authorize_link(&s, &p, &id).await?;
    Ok(Json(schema::AuthorizeLink { authorize_url }))
}

/// Where Shopify sends the browser back after an install.
pub fn callback_url(s: &AppState) -> String {
    format!(
        "{}/connect/shopify/callback",
        s.config.public_url.trim_end_matches('/')
    )
}

/// The install link of connection `id` for `p` (the API's authorize, and
/// the UI's Connect to Shopify button).
pub async fn authorize_link(s: &AppState, p: &Principal, id: &str) -> ApiResult<String> {
    let c = load(s, p, id).await?;
    let user = p.user.as_ref().map(|u| u.id.as_str());
    let auth = StoreSettings::parse(&c).map_err(ApiError::from)?.auth();
    if !matches!(auth, StoreAuth::AuthorizationCode { .. }) {
        return Err(ApiError::conflict(
            "not_authorization_code",
            format!(
                "this connection's store authenticates with {}: set store.auth.type to authorization_code (with the app's client_id and client_secret) to connect it with the install flow",
                auth.kind()
            ),
        ));
    }
    s.engine
        .authorize_url(&c, user, &callback_url(s))
        .await?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "credentials_missing",
                "store.auth.client_secret: give the app's client secret first",
            )
        })
}

#[utoipa::path(
    delete,
    path = "/connections/{id}",
    operation_id = "delete_connection",
    tag = "connections",
    summary = "Delete a connection",
    params(("id" = String, Path, description = "con_…")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "no connection with this id, or one the caller may not see (`not_found`)", body = schema::ErrorBody)
    )
)]
async fn remove(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    load(&s, &p, &id).await?;
    shipsync_db::connections::delete(s.engine.db(), &id).await?;
    s.engine.connection_changed(&id);
    Ok(StatusCode::NO_CONTENT)
}

pub async fn render_channel(s: &AppState, ch: &ChannelRow) -> ApiResult<Value> {
    let last_run =
        shipsync_db::runs::last(s.engine.db().pool(), &ch.connection_id, ch.channel).await?;
    Ok(json!({
        "channel": ch.channel,
        "enabled": ch.enabled,
        "schedules": ch.schedules,
        "last_completed_at": opt_time(ch.last_completed_at),
        "next_run_at": opt_time(ch.next_run_at),
        "last_run": last_run.as_ref().map(shipsync_engine::runs::run_json),
    }))
}

pub async fn load_channel(
    s: &AppState,
    p: &Principal,
    id: &str,
    channel: &str,
) -> ApiResult<ChannelRow> {
    load(s, p, id).await?;
    let Ok(channel) = channel.parse::<Channel>() else {
        return Err(ApiError::not_found(
            "channel (use sales_orders or shipments)",
        ));
    };
    shipsync_db::channels::get(s.engine.db().pool(), id, channel)
        .await?
        .ok_or_else(|| ApiError::not_found("channel"))
}

#[utoipa::path(
    get,
    path = "/connections/{id}/channels/{channel}",
    operation_id = "get_channel",
    tag = "connections",
    summary = "One channel of a connection",
    params(schema::ChannelPath),
    responses(
        (status = 200, description = "The channel", body = schema::Channel),
        (status = 404, description = "no connection or channel with this id, or one the caller may not see (`not_found`)", body = schema::ErrorBody)
    )
)]
async fn show_channel(
    State(s): State<AppState>,
    p: Principal,
    Path((id, channel)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let ch = load_channel(&s, &p, &id, &channel).await?;
    Ok(Json(render_channel(&s, &ch).await?))
}

#[utoipa::path(
    patch,
    path = "/connections/{id}/channels/{channel}",
    operation_id = "update_channel",
    tag = "connections",
    summary = "Switch a channel, or set its schedules",
    params(schema::ChannelPath),
    request_body = schema::ChannelPatch,
    responses(
        (status = 200, description = "The channel", body = schema::Channel),
        (status = 400, description = "the body (or query string) is not valid JSON, or not an object (`malformed`)", body = schema::ErrorBody),
        (status = 404, description = "no connection or channel with this id, or one the caller may not see (`not_found`)", body = schema::ErrorBody),
        (status = 422, description = "a field or schedule is wrong (`invalid_field`, naming the field)", body = schema::ErrorBody)
    )
)]
async fn update_channel(
    State(s): State<AppState>,
    p: Principal,
    Path((id, channel)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let patch = body_json(&body)?;
    let ch = patch_channel(&s, &p, &id, &channel, &patch).await?;
    Ok(Json(render_channel(&s, &ch).await?))
}

/// Applies `{"enabled"?, "schedules"?}` to a channel (the API's PATCH, or
/// the UI's switch and schedule dialog).
pub async fn patch_channel(
    s: &AppState,
    p: &Principal,
    id: &str,
    channel: &str,
    patch: &Value,
) -> ApiResult<ChannelRow> {
    let mut ch = load_channel(s, p, id, channel).await?;
    let was_enabled = ch.enabled;
    for (k, v) in patch.as_object().into_iter().flatten() {
        match k.as_str() {
            "enabled" => match v {
                Value::Bool(b) => ch.enabled = *b,
                _ => return Err(ApiError::invalid("enabled", "must be true or false")),
            },
            "schedules" => {
                let list = if v.is_null() { json!([]) } else { v.clone() };
                let mut parsed = shipsync_core::schedule::parse_schedules(&list)
                    .map_err(|e| ApiError::invalid(&e.field, &e.message))?;
                for sch in &mut parsed {
                    if sch.id.is_empty() {
                        sch.id = shipsync_db::new_id("sch");
                    }
                }
                ch.schedules = shipsync_core::schedule::to_json(&parsed);
                ch.next_run_at =
                    shipsync_core::schedule::next_fire(&parsed, jiff::Timestamp::now())
                        .map(|t| t.as_microsecond());
            }
            "channel" | "last_completed_at" | "next_run_at" | "last_run" => {}
            other => return Err(ApiError::invalid(other, "unknown field")),
        }
    }
    if !was_enabled && ch.enabled {
        // Switched on: the schedule starts from now, without catching up on
        // slots that passed while the channel was off.
        let rules = shipsync_core::schedule::parse_schedules(&ch.schedules).unwrap_or_default();
        ch.next_run_at = shipsync_core::schedule::next_fire(&rules, jiff::Timestamp::now())
            .map(|t| t.as_microsecond());
    }
    shipsync_db::channels::update(s.engine.db().pool(), &ch).await?;
    if !was_enabled && ch.enabled && ch.channel == Channel::Shipments {
        let c = load(s, p, id).await?;
        s.engine.release_waiting(&c.merchant_id).await?;
    }
    Ok(ch)
}

#[utoipa::path(
    post,
    path = "/connections/{id}/channels/{channel}/runs",
    operation_id = "run_channel",
    tag = "connections",
    summary = "Run a channel now",
    params(schema::ChannelPath),
    responses(
        (status = 202, description = "Queued", body = schema::RunQueued),
        (status = 404, description = "no connection or channel with this id, or one the caller may not see (`not_found`)", body = schema::ErrorBody),
        (status = 409, description = "a run is queued or running (`run_in_progress`, with its `run_id`), or the channel or connection is off (`channel_disabled`)", body = schema::ErrorBody)
    )
)]
async fn run_now(
    State(s): State<AppState>,
    p: Principal,
    Path((id, channel)): Path<(String, String)>,
) -> ApiResult<(StatusCode, Json<schema::RunQueued>)> {
    let (id, status) = queue_run(&s, &p, &id, &channel).await?;
    Ok((StatusCode::ACCEPTED, Json(schema::RunQueued { id, status })))
}

/// "Run now": (run id, status) of the queued run.
pub async fn queue_run(
    s: &AppState,
    p: &Principal,
    id: &str,
    channel: &str,
) -> ApiResult<(String, String)> {
    let ch = load_channel(s, p, id, channel).await?;
    match s.engine.run_now(id, ch.channel, RunTrigger::Manual).await {
        Ok(QueueRun::Queued(run)) => Ok((run.id.clone(), run.status.to_string())),
        Ok(QueueRun::InProgress(active)) => {
            let mut e = ApiError::conflict(
                "run_in_progress",
                format!("run {active} of this channel is queued or running; wait for it"),
            );
            e.extra = Some(json!({"run_id": active}));
            Err(e)
        }
        Err(shipsync_engine::EngineError::ChannelDisabled) => Err(ApiError::conflict(
            "channel_disabled",
            "this channel or its connection is disabled: enable both, then run again",
        )),
        Err(e) => Err(e.into()),
    }
}

#[utoipa::path(
    get,
    path = "/connections/{id}/channels/{channel}/runs/{run_id}",
    operation_id = "get_run",
    tag = "connections",
    summary = "One run of a channel",
    params(schema::ChannelPath, ("run_id" = String, Path, description = "run_…")),
    responses(
        (status = 200, description = "The run", body = schema::Run),
        (status = 404, description = "no connection, channel or run with this id, or one the caller may not see (`not_found`)", body = schema::ErrorBody)
    )
)]
async fn show_run(
    State(s): State<AppState>,
    p: Principal,
    Path((id, channel, run_id)): Path<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    let ch = load_channel(&s, &p, &id, &channel).await?;
    let run = shipsync_db::runs::get(s.engine.db().pool(), &run_id)
        .await?
        .filter(|r| r.connection_id == id && r.channel == ch.channel)
        .ok_or_else(|| ApiError::not_found("run"))?;
    Ok(Json(shipsync_engine::runs::run_json(&run)))
}
