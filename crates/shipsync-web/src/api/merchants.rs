//! `/api/v1/merchants`: the warehouse side and the shipment-webhook settings.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Map, Value, json};
use shipsync_core::ledger::KitPolicy;
use shipsync_db::merchants::MerchantRow;
use shipsync_db::now_micros;
use shipsync_engine::secrets::{hash_token, random_token};
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::schema::{self, List};
use super::targets::{check_public, forbid_scoped, gives};
use super::{Page, Query, body_json, list};
use crate::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::json::{merge_patch, time};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_merchants, create))
        .routes(routes!(show, update, remove))
        .routes(routes!(rotate))
}

const DEFAULT_API_URL: &str = "https://api.deposco.com/latest";
/// A rotated-out key keeps working this long.
const OLD_KEY_GRACE_MICROS: i64 = 24 * 3600 * 1_000_000;
const SECRET_FIELDS: [&str; 3] = ["password", "client_secret", "refresh_token"];

fn defaults() -> Value {
    json!({
        "warehouse": {"platform": "deposco", "api_url": DEFAULT_API_URL, "business_unit": ""},
        "shipment_webhooks": {"enabled": false},
        "kit_policy": KitPolicy::default(),
        "carrier_overrides": {},
    })
}

/// Read-only fields a client may send back unchanged; they are ignored.
fn strip_read_only(patch: &mut Value) {
    if let Some(o) = patch.as_object_mut() {
        for k in ["id", "created_at", "updated_at"] {
            o.remove(k);
        }
        if let Some(w) = o
            .get_mut("shipment_webhooks")
            .and_then(Value::as_object_mut)
        {
            w.remove("url");
            w.remove("shared_secret_set");
            w.remove("signed");
        }
        if let Some(a) = o
            .get_mut("warehouse")
            .and_then(Value::as_object_mut)
            .and_then(|w| w.get_mut("auth"))
            .and_then(Value::as_object_mut)
        {
            for k in ["password_set", "client_secret_set", "refresh_token_set"] {
                a.remove(k);
            }
        }
    }
}

/// The merchant as an editable document, secrets included (never rendered).
fn to_doc(s: &AppState, m: &MerchantRow) -> ApiResult<Value> {
    let secrets = s.engine.secrets();
    let mut warehouse: Value =
        serde_json::from_str(&m.warehouse_json).unwrap_or_else(|_| json!({}));
    if let Some(sealed) = &m.warehouse_secrets {
        let plain = secrets.open_string(sealed).map_err(|e| {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
        })?;
        let extra: Value = serde_json::from_str(&plain).unwrap_or_else(|_| json!({}));
        if let (Some(auth), Some(extra)) = (
            warehouse.get_mut("auth").and_then(Value::as_object_mut),
            extra.as_object(),
        ) {
            auth.extend(extra.clone());
        }
    }
    let shared_secret = match &m.shared_secret {
        Some(sealed) => Value::String(secrets.open_string(sealed).map_err(|e| {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
        })?),
        None => Value::Null,
    };
    Ok(json!({
        "name": m.name,
        "warehouse": warehouse,
        "shipment_webhooks": {"enabled": m.webhooks_enabled, "shared_secret": shared_secret},
        "kit_policy": m.kit_policy,
        "carrier_overrides": m.carrier_overrides,
    }))
}

fn check_keys(obj: &Map<String, Value>, allowed: &[&str], prefix: &str) -> ApiResult<()> {
    for k in obj.keys() {
        if !allowed.contains(&k.as_str()) {
            return Err(ApiError::invalid(&format!("{prefix}{k}"), "unknown field"));
        }
    }
    Ok(())
}

fn req_str<'a>(obj: &'a Map<String, Value>, key: &str, field: &str) -> ApiResult<&'a str> {
    match obj.get(key) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s),
        Some(Value::String(_)) | None | Some(Value::Null) => {
            Err(ApiError::invalid(field, "is required"))
        }
        Some(_) => Err(ApiError::invalid(field, "must be a string")),
    }
}

fn opt_str<'a>(obj: &'a Map<String, Value>, key: &str, field: &str) -> ApiResult<Option<&'a str>> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ApiError::invalid(field, "must be a string")),
    }
}

pub fn check_url(value: &str, field: &str) -> ApiResult<()> {
    match url::Url::parse(value) {
        Ok(u) if (u.scheme() == "http" || u.scheme() == "https") && u.host().is_some() => Ok(()),
        _ => Err(ApiError::invalid(
            field,
            "must be an http(s) URL such as https://api.deposco.com/latest",
        )),
    }
}

/// Copies the auth secret `key` into `into`; required unless `missing_ok`
/// names it (then an absent or blank one stays absent).
fn secret(
    auth: &Map<String, Value>,
    key: &str,
    missing_ok: &[&str],
    into: &mut Map<String, Value>,
) -> ApiResult<()> {
    let field = format!("warehouse.auth.{key}");
    let value = if missing_ok.contains(&key) {
        opt_str(auth, key, &field)?.filter(|v| !v.trim().is_empty())
    } else {
        Some(req_str(auth, key, &field)?)
    };
    if let Some(v) = value {
        into.insert(key.into(), json!(v));
    }
    Ok(())
}

/// The endpoint fields (where the credentials go) that differ between two
/// stored warehouse documents. A token URL going away (OAuth → Basic) sends
/// nothing anywhere new.
fn endpoint_changes(old: &str, new: &str) -> Vec<&'static str> {
    let old: Value = serde_json::from_str(old).unwrap_or_else(|_| json!({}));
    let new: Value = serde_json::from_str(new).unwrap_or_else(|_| json!({}));
    let mut changed = Vec::new();
    for (pointer, field) in [
        ("/api_url", "warehouse.api_url"),
        ("/auth/token_url", "warehouse.auth.token_url"),
        ("/business_unit", "warehouse.business_unit"),
    ] {
        let (before, after) = (old.pointer(pointer), new.pointer(pointer));
        if after.is_some_and(|a| !a.is_null()) && before != after {
            changed.push(field);
        }
    }
    changed
}

/// 422 `private_target` for a changed URL whose host is not public.
async fn check_targets(s: &AppState, warehouse_json: &str, changed: &[&str]) -> ApiResult<()> {
    let w: Value = serde_json::from_str(warehouse_json).unwrap_or_else(|_| json!({}));
    for (pointer, field) in [
        ("/api_url", "warehouse.api_url"),
        ("/auth/token_url", "warehouse.auth.token_url"),
    ] {
        if changed.contains(&field)
            && let Some(url) = w.pointer(pointer).and_then(Value::as_str)
        {
            check_public(s, field, url).await?;
        }
    }
    Ok(())
}

/// The warehouse secret keys a merchant holds.
fn stored_secret_keys(s: &AppState, m: &MerchantRow) -> Vec<String> {
    m.warehouse_secrets
        .as_ref()
        .and_then(|sealed| s.engine.secrets().open_string(sealed).ok())
        .and_then(|p| serde_json::from_str::<Map<String, Value>>(&p).ok())
        .map(|o| {
            o.into_iter()
                .filter(|(_, v)| v.as_str().is_some_and(|v| !v.is_empty()))
                .map(|(k, _)| k)
                .collect()
        })
        .unwrap_or_default()
}

/// The warehouse secret a connection of this merchant needs and lacks
/// (cleared when the endpoint changed), as the field to give. A merchant
/// without warehouse credentials at all has none to lack.
pub fn missing_secret(s: &AppState, m: &MerchantRow) -> Option<&'static str> {
    let w: Value = serde_json::from_str(&m.warehouse_json).unwrap_or_else(|_| json!({}));
    let needed: &[&str] = match w.pointer("/auth/type").and_then(Value::as_str) {
        Some("basic") => &SECRET_FIELDS[..1],
        Some("oauth") => &SECRET_FIELDS[1..],
        _ => &[],
    };
    let held = stored_secret_keys(s, m);
    needed
        .iter()
        .find(|k| !held.iter().any(|h| h == *k))
        .map(|k| match *k {
            "password" => "warehouse.auth.password",
            "client_secret" => "warehouse.auth.client_secret",
            _ => "warehouse.auth.refresh_token",
        })
}

/// Validated parts of a merchant document.
struct Parts {
    name: String,
    warehouse_json: String,
    warehouse_secrets: Option<String>,
    webhooks_enabled: bool,
    shared_secret: Option<String>,
    kit_policy: KitPolicy,
    carrier_overrides: BTreeMap<String, String>,
}

/// `missing_ok`: secrets that may be absent (cleared when the endpoint
/// changed, and not given again yet).
fn validate(doc: &Value, missing_ok: &[&str]) -> ApiResult<Parts> {
    let obj = doc
        .as_object()
        .ok_or_else(|| ApiError::bad_request("the body must be a JSON object"))?;
    check_keys(
        obj,
        &[
            "name",
            "warehouse",
            "shipment_webhooks",
            "kit_policy",
            "carrier_overrides",
        ],
        "",
    )?;
    let name = req_str(obj, "name", "name")?.trim().to_string();
    if name.chars().count() > 200 {
        return Err(ApiError::invalid("name", "must be at most 200 characters"));
    }
    let w = obj
        .get("warehouse")
        .and_then(Value::as_object)
        .ok_or_else(|| ApiError::invalid("warehouse", "must be an object"))?;
    check_keys(
        w,
        &["platform", "api_url", "business_unit", "auth"],
        "warehouse.",
    )?;
    let platform = req_str(w, "platform", "warehouse.platform")?;
    if platform != "deposco" {
        return Err(ApiError::invalid(
            "warehouse.platform",
            "must be \"deposco\" (the only warehouse supported so far)",
        ));
    }
    let api_url = req_str(w, "api_url", "warehouse.api_url")?;
    check_url(api_url, "warehouse.api_url")?;
    let business_unit = opt_str(w, "business_unit", "warehouse.business_unit")?.unwrap_or("");
    let mut public_auth = Value::Null;
    let mut secret_auth = Map::new();
    match w.get("auth") {
        None | Some(Value::Null) => {}
        Some(Value::Object(a)) => {
            let kind = req_str(a, "type", "warehouse.auth.type")?;
            match kind {
                "basic" => {
                    check_keys(a, &["type", "username", "password"], "warehouse.auth.")?;
                    let username = req_str(a, "username", "warehouse.auth.username")?;
                    public_auth = json!({"type": "basic", "username": username});
                    secret(a, "password", missing_ok, &mut secret_auth)?;
                }
                "oauth" => {
                    check_keys(
                        a,
                        &[
                            "type",
                            "token_url",
                            "client_id",
                            "client_secret",
                            "refresh_token",
                        ],
                        "warehouse.auth.",
                    )?;
                    let token_url = req_str(a, "token_url", "warehouse.auth.token_url")?;
                    check_url(token_url, "warehouse.auth.token_url")?;
                    let client_id = req_str(a, "client_id", "warehouse.auth.client_id")?;
                    public_auth =
                        json!({"type": "oauth", "token_url": token_url, "client_id": client_id});
                    secret(a, "client_secret", missing_ok, &mut secret_auth)?;
                    secret(a, "refresh_token", missing_ok, &mut secret_auth)?;
                }
                _ => {
                    return Err(ApiError::invalid(
                        "warehouse.auth.type",
                        "must be \"basic\" or \"oauth\"",
                    ));
                }
            }
        }
        Some(_) => {
            return Err(ApiError::invalid(
                "warehouse.auth",
                "must be an object or null",
            ));
        }
    }
    let hooks = match obj.get("shipment_webhooks") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(h)) => h.clone(),
        Some(_) => return Err(ApiError::invalid("shipment_webhooks", "must be an object")),
    };
    check_keys(&hooks, &["enabled", "shared_secret"], "shipment_webhooks.")?;
    let webhooks_enabled = match hooks.get("enabled") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(ApiError::invalid(
                "shipment_webhooks.enabled",
                "must be true or false",
            ));
        }
    };
    let shared_secret = opt_str(&hooks, "shared_secret", "shipment_webhooks.shared_secret")?
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    if let Some(sec) = &shared_secret {
        check_shared_secret(sec)?;
    }
    let kit_policy = match obj.get("kit_policy") {
        None | Some(Value::Null) => Some(KitPolicy::default()),
        Some(Value::String(p)) => p.parse().ok(),
        Some(_) => None,
    }
    .ok_or_else(|| {
        ApiError::invalid(
            "kit_policy",
            "must be \"complete_kits\" or \"first_component\"",
        )
    })?;
    let carrier_overrides = match obj.get("carrier_overrides") {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(Value::Object(o)) => {
            let mut overrides = BTreeMap::new();
            for (k, v) in o {
                let Some(to) = v.as_str() else {
                    return Err(ApiError::invalid(
                        &format!("carrier_overrides.{k}"),
                        "must be a string (the store's carrier name)",
                    ));
                };
                overrides.insert(k.clone(), to.to_string());
            }
            overrides
        }
        Some(_) => {
            return Err(ApiError::invalid(
                "carrier_overrides",
                "must be an object of warehouse carrier → store carrier",
            ));
        }
    };
    let warehouse_json = json!({"platform": platform, "api_url": api_url.trim_end_matches('/'), "business_unit": business_unit, "auth": public_auth}).to_string();
    Ok(Parts {
        name,
        warehouse_json,
        warehouse_secrets: if secret_auth.is_empty() {
            None
        } else {
            Some(Value::Object(secret_auth).to_string())
        },
        webhooks_enabled,
        shared_secret,
        kit_policy,
        carrier_overrides,
    })
}

/// A shared secret's HMAC key must hold at least this many bytes (after
/// `whsec_` decoding): shorter keys are guessable offline from one signed
/// delivery.
pub const MIN_SHARED_SECRET_BYTES: usize = 16;

/// Refuses a shared secret whose key (the bytes HMAC uses, as the signature
/// check derives them) is shorter than [`MIN_SHARED_SECRET_BYTES`], and a
/// `whsec_` secret whose rest is not base64.
fn check_shared_secret(secret: &str) -> ApiResult<()> {
    const FIELD: &str = "shipment_webhooks.shared_secret";
    if let Some(b64) = secret.strip_prefix("whsec_") {
        use base64::Engine as _;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map_err(|_| {
                ApiError::invalid(FIELD, "a secret written whsec_… must be followed by base64")
            })?;
        if decoded.len() < MIN_SHARED_SECRET_BYTES {
            return Err(ApiError::invalid(
                FIELD,
                format!(
                    "whsec_ decodes to {} bytes; use at least {MIN_SHARED_SECRET_BYTES} (e.g. whsec_ followed by `openssl rand -base64 32`), or blank for none",
                    decoded.len()
                ),
            ));
        }
    } else if secret.len() < MIN_SHARED_SECRET_BYTES {
        return Err(ApiError::invalid(
            FIELD,
            format!(
                "must be at least {MIN_SHARED_SECRET_BYTES} bytes (e.g. `openssl rand -hex 32`), or blank for none"
            ),
        ));
    }
    Ok(())
}

fn apply(s: &AppState, m: &mut MerchantRow, p: Parts) {
    let secrets = s.engine.secrets();
    m.name = p.name;
    m.warehouse_json = p.warehouse_json;
    m.warehouse_secrets = p.warehouse_secrets.map(|x| secrets.seal_str(&x));
    m.webhooks_enabled = p.webhooks_enabled;
    m.shared_secret = p.shared_secret.map(|x| secrets.seal_str(&x));
    m.kit_policy = p.kit_policy;
    m.carrier_overrides = p.carrier_overrides;
}

pub fn render(s: &AppState, m: &MerchantRow) -> Value {
    let mut warehouse: Value =
        serde_json::from_str(&m.warehouse_json).unwrap_or_else(|_| json!({}));
    let secret_keys: Vec<String> = m
        .warehouse_secrets
        .as_ref()
        .and_then(|sealed| s.engine.secrets().open_string(sealed).ok())
        .and_then(|p| serde_json::from_str::<Map<String, Value>>(&p).ok())
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    if let Some(auth) = warehouse.get_mut("auth").and_then(Value::as_object_mut) {
        let kind = auth
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let fields: &[&str] = if kind == "basic" {
            &SECRET_FIELDS[..1]
        } else {
            &SECRET_FIELDS[1..]
        };
        for f in fields {
            auth.insert(
                format!("{f}_set"),
                json!(secret_keys.iter().any(|k| k == f)),
            );
        }
    }
    let url = webhook_url(s, m).unwrap_or_default();
    json!({
        "id": m.id,
        "name": m.name,
        "warehouse": warehouse,
        "shipment_webhooks": {
            "enabled": m.webhooks_enabled,
            "shared_secret_set": m.shared_secret.is_some(),
            // Unsigned: anyone who learns the URL can post shipments.
            "signed": m.shared_secret.is_some(),
            "url": url,
        },
        "kit_policy": m.kit_policy,
        "carrier_overrides": m.carrier_overrides,
        "created_at": time(m.created_at),
        "updated_at": time(m.updated_at),
    })
}

pub fn webhook_url(s: &AppState, m: &MerchantRow) -> Option<String> {
    let key = s.engine.secrets().open_string(&m.webhook_key).ok()?;
    Some(format!(
        "{}/webhooks/deposco/{key}",
        s.config.public_url.trim_end_matches('/')
    ))
}

/// The merchant, when the principal may see it (else 404, as for an
/// unknown id).
pub async fn load(s: &AppState, p: &Principal, id: &str) -> ApiResult<MerchantRow> {
    p.check(id, "merchant")?;
    shipsync_db::merchants::get(s.engine.db().pool(), id)
        .await?
        .ok_or_else(|| ApiError::not_found("merchant"))
}

/// The merchants a principal sees, after `cursor`.
pub async fn visible(
    s: &AppState,
    p: &Principal,
    cursor: Option<&str>,
    limit: i64,
) -> ApiResult<Vec<MerchantRow>> {
    let Some(ids) = p.scope() else {
        return Ok(shipsync_db::merchants::list(s.engine.db().pool(), cursor, limit).await?);
    };
    // A limited principal's few merchants, in the list's order (by id).
    let mut ids: Vec<&String> = ids
        .iter()
        .filter(|id| cursor.is_none_or(|c| id.as_str() > c))
        .collect();
    ids.sort();
    let mut rows = Vec::new();
    for id in ids {
        if rows.len() as i64 >= limit {
            break;
        }
        rows.extend(shipsync_db::merchants::get(s.engine.db().pool(), id).await?);
    }
    Ok(rows)
}

#[utoipa::path(
    get,
    path = "/merchants",
    operation_id = "list_merchants",
    tag = "merchants",
    summary = "The merchants the caller sees",
    params(Page),
    responses(
        (status = 200, description = "A page of merchants", body = schema::List<schema::Merchant>),
        (status = 400, description = "the query string cannot be read (`malformed`)", body = schema::ErrorBody),
        (status = 422, description = "`limit` out of range (`invalid_field`, naming the field)", body = schema::ErrorBody)
    )
)]
async fn list_merchants(
    State(s): State<AppState>,
    p: Principal,
    Query(page): Query<Page>,
) -> ApiResult<Json<List<Value>>> {
    let limit = page.limit()?;
    let rows = visible(&s, &p, page.cursor.as_deref(), limit + 1).await?;
    Ok(Json(list(rows, limit, |m| m.id.clone(), |m| render(&s, m))))
}

#[utoipa::path(
    post,
    path = "/merchants",
    operation_id = "create_merchant",
    tag = "merchants",
    summary = "Create a merchant",
    request_body = schema::MerchantInput,
    responses(
        (status = 201, description = "The new merchant", body = schema::Merchant),
        (status = 400, description = "the body (or query string) is not valid JSON, or not an object (`malformed`)", body = schema::ErrorBody),
        (status = 403, description = "the caller is limited to some merchants (`forbidden`)", body = schema::ErrorBody),
        (status = 422, description = "a field is missing or wrong; a URL to a non-public address answers `private_target` (`invalid_field`, naming the field)", body = schema::ErrorBody)
    )
)]
async fn create(
    State(s): State<AppState>,
    p: Principal,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let patch = body_json(&body)?;
    let m = create_merchant(&s, &p, patch).await?;
    Ok((StatusCode::CREATED, Json(render(&s, &m))))
}

/// Creates a merchant from a JSON document (the API's body, or the UI's
/// form turned into one).
pub async fn create_merchant(s: &AppState, p: &Principal, patch: Value) -> ApiResult<MerchantRow> {
    let m = draft_merchant(s, p, patch).await?;
    shipsync_db::merchants::insert(s.engine.db().pool(), &m).await?;
    Ok(m)
}

/// A new merchant from a JSON document, checked but not saved (the
/// connection wizard tests its credentials first).
pub async fn draft_merchant(
    s: &AppState,
    p: &Principal,
    mut patch: Value,
) -> ApiResult<MerchantRow> {
    p.require_unscoped("create merchants")?;
    strip_read_only(&mut patch);
    let mut doc = defaults();
    merge_patch(&mut doc, &patch);
    let parts = validate(&doc, &[])?;
    let every = endpoint_changes("{}", &parts.warehouse_json);
    check_targets(s, &parts.warehouse_json, &every).await?;
    let key = random_token("whk");
    let now = now_micros();
    let mut m = MerchantRow {
        id: shipsync_db::new_id("mer"),
        name: String::new(),
        warehouse_json: String::new(),
        warehouse_secrets: None,
        webhooks_enabled: false,
        shared_secret: None,
        webhook_key: s.engine.secrets().seal_str(&key),
        webhook_key_hash: hash_token(&key),
        kit_policy: KitPolicy::default(),
        carrier_overrides: BTreeMap::new(),
        created_at: now,
        updated_at: now,
    };
    apply(s, &mut m, parts);
    Ok(m)
}

#[utoipa::path(
    get,
    path = "/merchants/{id}",
    operation_id = "get_merchant",
    tag = "merchants",
    summary = "One merchant",
    params(("id" = String, Path, description = "mer_…")),
    responses(
        (status = 200, description = "The merchant", body = schema::Merchant),
        (status = 404, description = "no merchant with this id, or one the caller may not see (`not_found`)", body = schema::ErrorBody)
    )
)]
async fn show(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let m = load(&s, &p, &id).await?;
    Ok(Json(render(&s, &m)))
}

#[utoipa::path(
    patch,
    path = "/merchants/{id}",
    operation_id = "update_merchant",
    tag = "merchants",
    summary = "Change a merchant (JSON merge patch)",
    params(("id" = String, Path, description = "mer_…")),
    request_body = schema::MerchantPatch,
    responses(
        (status = 200, description = "The merchant", body = schema::Merchant),
        (status = 400, description = "the body (or query string) is not valid JSON, or not an object (`malformed`)", body = schema::ErrorBody),
        (status = 403, description = "a limited caller changed where credentials are sent (`forbidden`)", body = schema::ErrorBody),
        (status = 404, description = "no merchant with this id, or one the caller may not see (`not_found`)", body = schema::ErrorBody),
        (status = 422, description = "a field is wrong; a URL to a non-public address answers `private_target` (`invalid_field`, naming the field)", body = schema::ErrorBody)
    )
)]
async fn update(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let patch = body_json(&body)?;
    let m = update_merchant(&s, &p, &id, patch).await?;
    Ok(Json(render(&s, &m)))
}

/// Applies a JSON merge patch to a merchant (the API's PATCH, or the UI's
/// edit form turned into one).
pub async fn update_merchant(
    s: &AppState,
    p: &Principal,
    id: &str,
    mut patch: Value,
) -> ApiResult<MerchantRow> {
    let mut m = load(s, p, id).await?;
    strip_read_only(&mut patch);
    let mut doc = to_doc(s, &m)?;
    // Switching the auth type replaces the whole auth object.
    let mut missing_ok: Vec<&str> = {
        let held = stored_secret_keys(s, &m);
        SECRET_FIELDS
            .into_iter()
            .filter(|k| !held.iter().any(|h| h == k))
            .collect()
    };
    if let (Some(new_type), Some(old_type)) = (
        patch
            .pointer("/warehouse/auth/type")
            .and_then(Value::as_str),
        doc.pointer("/warehouse/auth/type").and_then(Value::as_str),
    ) && new_type != old_type
        && let Some(w) = doc.get_mut("warehouse").and_then(Value::as_object_mut)
    {
        w.remove("auth");
        missing_ok.clear();
    }
    merge_patch(&mut doc, &patch);
    let mut parts = validate(&doc, &missing_ok)?;
    let changed = endpoint_changes(&m.warehouse_json, &parts.warehouse_json);
    forbid_scoped(p, &changed)?;
    check_targets(s, &parts.warehouse_json, &changed).await?;
    // Stored secrets never follow a new endpoint: only those given again
    // in this request are kept.
    let mut cleared = false;
    if !changed.is_empty()
        && let Some(plain) = &parts.warehouse_secrets
    {
        let mut held: Map<String, Value> = serde_json::from_str(plain).unwrap_or_default();
        let before = held.len();
        held.retain(|k, _| gives(&patch, &format!("/warehouse/auth/{k}")));
        cleared = held.len() < before;
        parts.warehouse_secrets = (!held.is_empty()).then(|| Value::Object(held).to_string());
    }
    apply(s, &mut m, parts);
    m.updated_at = now_micros();
    shipsync_db::merchants::update(s.engine.db().pool(), &m).await?;
    if cleared {
        switch_off_connections(s, &m.id).await?;
    }
    Ok(m)
}

/// Switches off the merchant's enabled connections (its warehouse
/// credentials were cleared: they cannot run until given again).
async fn switch_off_connections(s: &AppState, merchant_id: &str) -> ApiResult<()> {
    let db = s.engine.db();
    let ids = [merchant_id.to_string()];
    let mut after: Option<String> = None;
    loop {
        let page =
            shipsync_db::connections::list(db.pool(), Some(&ids), after.as_deref(), 500).await?;
        for mut c in page.iter().filter(|c| c.enabled).cloned() {
            c.enabled = false;
            c.updated_at = now_micros();
            shipsync_db::connections::update(db.pool(), &c).await?;
            s.engine.connection_changed(&c.id);
        }
        match page.last() {
            Some(last) if page.len() == 500 => after = Some(last.id.clone()),
            _ => return Ok(()),
        }
    }
}

#[utoipa::path(
    delete,
    path = "/merchants/{id}",
    operation_id = "delete_merchant",
    tag = "merchants",
    summary = "Delete a merchant",
    params(("id" = String, Path, description = "mer_…")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "the caller is limited to some merchants (`forbidden`)", body = schema::ErrorBody),
        (status = 404, description = "no merchant with this id, or one the caller may not see (`not_found`)", body = schema::ErrorBody),
        (status = 409, description = "the merchant still has connections (`has_connections`)", body = schema::ErrorBody)
    )
)]
async fn remove(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    load(&s, &p, &id).await?;
    p.require_unscoped("delete merchants")?;
    if shipsync_db::merchants::delete(s.engine.db(), &id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::conflict(
            "has_connections",
            "this merchant still has connections: delete them first",
        ))
    }
}

/// `POST …/webhook-key/rotate`, optionally `{"revoke_old": true}` (or
/// `?revoke_old=true`): the old key stops working at once instead of after
/// the 24 h grace, e.g. after it leaked.
#[utoipa::path(
    post,
    path = "/merchants/{id}/webhook-key/rotate",
    operation_id = "rotate_webhook_key",
    tag = "merchants",
    summary = "Issue a new webhook key",
    params(("id" = String, Path, description = "mer_…"), RotateQuery),
    request_body = Option<schema::RotateKey>,
    responses(
        (status = 200, description = "The merchant with its new webhook URL", body = schema::Merchant),
        (status = 400, description = "the body (or query string) is not valid JSON, or not an object (`malformed`)", body = schema::ErrorBody),
        (status = 404, description = "no merchant with this id, or one the caller may not see (`not_found`)", body = schema::ErrorBody),
        (status = 422, description = "`revoke_old` is not a boolean (`invalid_field`, naming the field)", body = schema::ErrorBody)
    )
)]
async fn rotate(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    Query(q): Query<RotateQuery>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    // Whose key it is first: another tenant's merchant is a 404 whatever
    // the body. Other fields of the body are ignored, as before.
    load(&s, &p, &id).await?;
    let from_body = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        let doc = body_json(&body)?;
        match doc.get("revoke_old") {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => return Err(ApiError::invalid("revoke_old", "must be true or false")),
        }
    };
    let revoke_old = from_body.or(q.revoke_old).unwrap_or(false);
    let m = rotate_key(&s, &p, &id, revoke_old).await?;
    Ok(Json(render(&s, &m)))
}

#[derive(serde::Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct RotateQuery {
    /// The same as the body's `revoke_old`.
    revoke_old: Option<bool>,
}

/// Issues a new webhook key; the old one keeps working for 24 h, or stops at
/// once with `revoke_old` (together with any key still in its grace period).
pub async fn rotate_key(
    s: &AppState,
    p: &Principal,
    id: &str,
    revoke_old: bool,
) -> ApiResult<MerchantRow> {
    load(s, p, id).await?;
    let key = random_token("whk");
    let old_expires_at = if revoke_old {
        None
    } else {
        Some(now_micros() + OLD_KEY_GRACE_MICROS)
    };
    shipsync_db::merchants::rotate_webhook_key(
        s.engine.db(),
        id,
        &s.engine.secrets().seal_str(&key),
        &hash_token(&key),
        old_expires_at,
    )
    .await?;
    load(s, p, id).await
}
