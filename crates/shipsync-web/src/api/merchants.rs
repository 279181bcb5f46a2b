//! `/api/v1/merchants`: the warehouse side and the shipment-webhook settings.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Map, Value, json};
use shipsync_db::merchants::MerchantRow;

use shipsync_engine::merchants::SECRET_FIELDS;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::schema::{self, List};
use super::{Page, Query, body_json, list};
use crate::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::json::time;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_merchants, create))
        .routes(routes!(show, update, remove))
        .routes(routes!(rotate))
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
    s.engine
        .merchant(id)
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
    Ok(s.engine
        .visible_merchants(p.caller(), cursor, limit)
        .await?)
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
    p.require_unscoped("create merchants")?;
    Ok(s.engine.create_merchant(patch).await?)
}

/// A new merchant from a JSON document, checked but not saved (the
/// connection wizard tests its credentials first).
pub async fn draft_merchant(s: &AppState, p: &Principal, patch: Value) -> ApiResult<MerchantRow> {
    p.require_unscoped("create merchants")?;
    Ok(s.engine.draft_merchant(patch).await?)
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
    patch: Value,
) -> ApiResult<MerchantRow> {
    let m = load(s, p, id).await?;
    Ok(s.engine.update_merchant(m, patch, p.caller()).await?)
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
    s.engine.delete_merchant(&id).await?;
    Ok(StatusCode::NO_CONTENT)
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
    Ok(s.engine.rotate_webhook_key(id, revoke_old).await?)
}
