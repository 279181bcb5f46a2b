//! `/api/v1/connections` and their channels.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use shipsync_db::now_micros;
use shipsync_db::rows::{ChannelRow, ConnectionRow, MerchantRow, QueueRun};

use super::merchants::{self, check_url};
use super::targets::{check_public, forbid_scoped, gives, missing_credentials};
use super::{Page, Query, body_json, list};
use crate::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::json::{merge_patch, opt_time, time};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/connections", get(list_connections).post(create))
        .route("/connections/{id}", get(show).patch(update).delete(remove))
        .route(
            "/connections/{id}/channels/{channel}",
            get(show_channel).patch(update_channel),
        )
        .route("/connections/{id}/channels/{channel}/runs", post(run_now))
        .route(
            "/connections/{id}/channels/{channel}/runs/{run_id}",
            get(show_run),
        )
}

pub const CHANNELS: [&str; 2] = ["sales_orders", "shipments"];
const DEFAULT_API_VERSION: &str = "2026-10";

/// The default Shipments schedule: every 4 hours.
fn default_schedules(channel: &str) -> String {
    if channel == "shipments" {
        json!([{"id": shipsync_db::new_id("sch"), "kind": "hourly", "every": 4, "minute": 0, "time_zone": "UTC"}]).to_string()
    } else {
        "[]".into()
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
        if let Some(st) = o.get_mut("store").and_then(Value::as_object_mut) {
            st.remove("access_token_set");
        }
    }
}

fn to_doc(s: &AppState, c: &ConnectionRow) -> ApiResult<Value> {
    let mut store: Value = serde_json::from_str(&c.store_json).unwrap_or_else(|_| json!({}));
    if let (Some(sealed), Some(o)) = (&c.store_token, store.as_object_mut()) {
        let token = s.engine.secrets().open_string(sealed).map_err(|e| {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
        })?;
        o.insert("access_token".into(), json!(token));
    }
    Ok(
        json!({"name": c.name, "merchant_id": c.merchant_id, "enabled": c.enabled == 1, "order_prefix": c.order_prefix, "store": store}),
    )
}

struct Parts {
    name: String,
    merchant_id: String,
    enabled: bool,
    order_prefix: String,
    store_json: String,
    access_token: Option<String>,
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
    let access_token = string(st, "access_token", "store.access_token", false)?;
    let store_json = json!({
        "platform": platform,
        "shop_url": shop_url.trim_end_matches('/'),
        "api_version": api_version,
        "location_id": location_id,
        "notify_customer": notify_customer,
    })
    .to_string();
    Ok(Parts {
        name,
        merchant_id,
        enabled,
        order_prefix,
        store_json,
        access_token,
    })
}

fn render(c: &ConnectionRow) -> Value {
    let mut store: Value = serde_json::from_str(&c.store_json).unwrap_or_else(|_| json!({}));
    if let Some(o) = store.as_object_mut() {
        o.insert("access_token_set".into(), json!(c.store_token.is_some()));
    }
    json!({
        "id": c.id,
        "name": c.name,
        "merchant_id": c.merchant_id,
        "enabled": c.enabled == 1,
        "order_prefix": c.order_prefix,
        "store": store,
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
        s.engine.db().get_merchant(&p.merchant_id).await?
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
    if c.store_token.is_none() {
        return Some("store.access_token");
    }
    merchants::missing_secret(s, m)
}

fn set(s: &AppState, c: &mut ConnectionRow, p: Parts) {
    c.name = p.name;
    c.merchant_id = p.merchant_id;
    c.enabled = i64::from(p.enabled);
    c.order_prefix = p.order_prefix;
    c.store_json = p.store_json;
    c.store_token = p.access_token.map(|t| s.engine.secrets().seal_str(&t));
}

/// The connection, when the principal may see its merchant (else 404).
pub async fn load(s: &AppState, p: &Principal, id: &str) -> ApiResult<ConnectionRow> {
    s.engine
        .db()
        .get_connection(id)
        .await?
        .filter(|c| p.sees(&c.merchant_id))
        .ok_or_else(|| ApiError::not_found("connection"))
}

#[derive(Deserialize)]
struct ListQuery {
    merchant_id: Option<String>,
    #[serde(flatten)]
    page: Page,
}

async fn list_connections(
    State(s): State<AppState>,
    p: Principal,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
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
    Ok(s.engine
        .db()
        .list_connections_of(p.narrow(merchant_id).as_deref(), cursor, limit)
        .await?)
}

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
        enabled: 0,
        order_prefix: String::new(),
        store_json: String::new(),
        store_token: None,
        created_at: now,
        updated_at: now,
    };
    let merchant = match new_merchant {
        Some(m) if m.id == parts.merchant_id => {
            set(s, &mut c, parts);
            m.clone()
        }
        _ => apply(s, p, &mut c, parts).await?,
    };
    check_public(s, "store.shop_url", &url).await?;
    if c.enabled == 1
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
            channel: ch.to_string(),
            enabled: 0,
            schedules_json: default_schedules(ch),
            last_completed_at: None,
            next_run_at: None,
        })
        .collect();
    s.engine.db().insert_connection(c, &channels).await?;
    Ok(())
}

async fn show(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(render(&load(&s, &p, &id).await?)))
}

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
    let was_enabled = c.enabled == 1;
    strip_read_only(&mut patch);
    let mut doc = to_doc(s, &c)?;
    merge_patch(&mut doc, &patch);
    let mut parts = validate(&doc)?;
    let new_url = shop_url(&parts.store_json);
    // The stored token never follows a new shop URL: kept only when given
    // again in this request.
    let mut cleared = false;
    if new_url != shop_url(&c.store_json) {
        forbid_scoped(p, &["store.shop_url"])?;
        check_public(s, "store.shop_url", &new_url).await?;
        if !gives(&patch, "/store/access_token") {
            cleared = parts.access_token.take().is_some();
        }
    }
    let merchant = apply(s, p, &mut c, parts).await?;
    if c.enabled == 1
        && let Some(missing) = missing_secret(s, &c, &merchant)
    {
        if patch.get("enabled") == Some(&Value::Bool(true)) {
            return Err(missing_credentials(missing));
        }
        if cleared {
            // Its token was just cleared: it cannot run until given again.
            c.enabled = 0;
        }
    }
    c.updated_at = now_micros();
    s.engine.db().update_connection(&c).await?;
    s.engine.connection_changed(&c.id);
    if !was_enabled && c.enabled == 1 {
        s.engine.release_waiting(&c.merchant_id).await?;
    }
    Ok(c)
}

async fn remove(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    load(&s, &p, &id).await?;
    s.engine.db().delete_connection(&id).await?;
    s.engine.connection_changed(&id);
    Ok(StatusCode::NO_CONTENT)
}

pub async fn render_channel(s: &AppState, ch: &ChannelRow) -> ApiResult<Value> {
    let last_run = s
        .engine
        .db()
        .last_run(&ch.connection_id, &ch.channel)
        .await?;
    Ok(json!({
        "channel": ch.channel,
        "enabled": ch.enabled == 1,
        "schedules": serde_json::from_str::<Value>(&ch.schedules_json).unwrap_or_else(|_| json!([])),
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
    if !CHANNELS.contains(&channel) {
        return Err(ApiError::not_found(
            "channel (use sales_orders or shipments)",
        ));
    }
    s.engine
        .db()
        .get_channel(id, channel)
        .await?
        .ok_or_else(|| ApiError::not_found("channel"))
}

async fn show_channel(
    State(s): State<AppState>,
    p: Principal,
    Path((id, channel)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let ch = load_channel(&s, &p, &id, &channel).await?;
    Ok(Json(render_channel(&s, &ch).await?))
}

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
    let was_enabled = ch.enabled == 1;
    for (k, v) in patch.as_object().into_iter().flatten() {
        match k.as_str() {
            "enabled" => match v {
                Value::Bool(b) => ch.enabled = i64::from(*b),
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
                ch.schedules_json = shipsync_core::schedule::to_json(&parsed).to_string();
                ch.next_run_at =
                    shipsync_core::schedule::next_fire(&parsed, jiff::Timestamp::now())
                        .map(|t| t.as_microsecond());
            }
            "channel" | "last_completed_at" | "next_run_at" | "last_run" => {}
            other => return Err(ApiError::invalid(other, "unknown field")),
        }
    }
    if !was_enabled && ch.enabled == 1 {
        // Switched on: the schedule starts from now, without catching up on
        // slots that passed while the channel was off.
        let rules = shipsync_core::schedule::parse_schedules(
            &serde_json::from_str(&ch.schedules_json).unwrap_or_else(|_| json!([])),
        )
        .unwrap_or_default();
        ch.next_run_at = shipsync_core::schedule::next_fire(&rules, jiff::Timestamp::now())
            .map(|t| t.as_microsecond());
    }
    s.engine.db().update_channel(&ch).await?;
    if !was_enabled && ch.enabled == 1 && channel == "shipments" {
        let c = load(s, p, id).await?;
        s.engine.release_waiting(&c.merchant_id).await?;
    }
    Ok(ch)
}

async fn run_now(
    State(s): State<AppState>,
    p: Principal,
    Path((id, channel)): Path<(String, String)>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let (run_id, status) = queue_run(&s, &p, &id, &channel).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"id": run_id, "status": status})),
    ))
}

/// "Run now": (run id, status) of the queued run.
pub async fn queue_run(
    s: &AppState,
    p: &Principal,
    id: &str,
    channel: &str,
) -> ApiResult<(String, String)> {
    load_channel(s, p, id, channel).await?;
    match s.engine.run_now(id, channel, "manual").await {
        Ok(QueueRun::Queued(run)) => Ok((run.id.clone(), run.status.clone())),
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

async fn show_run(
    State(s): State<AppState>,
    p: Principal,
    Path((id, channel, run_id)): Path<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    load_channel(&s, &p, &id, &channel).await?;
    let run = s
        .engine
        .db()
        .get_run(&run_id)
        .await?
        .filter(|r| r.connection_id == id && r.channel == channel)
        .ok_or_else(|| ApiError::not_found("run"))?;
    Ok(Json(shipsync_engine::runs::run_json(&run)))
}
