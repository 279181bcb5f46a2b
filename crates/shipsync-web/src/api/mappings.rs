//! `/api/v1/merchants/{id}/mappings`: a merchant's mappings as one
//! document (read, replaced, merge-patched). Whoever sees the merchant may
//! read and edit them (a Merchant user its own; Staff its merchants); the
//! engine checks the document and logs every change.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use serde_json::Value;
use shipsync_core::mappings::Mappings;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use serde::Deserialize;
use shipsync_engine::mappings::Preview;
use utoipa::IntoParams;

use super::{Page, Query, body_json, schema};
use crate::AppState;
use crate::auth::Principal;
use crate::error::ApiResult;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(show, replace, patch))
        .routes(routes!(preview))
}

/// Who a change is logged as: the user's email, else the admin token.
pub fn who(p: &Principal) -> String {
    p.user
        .as_ref()
        .map_or_else(|| "administrator token".to_string(), |u| u.email.clone())
}

/// The merchant's mappings as shown, when the principal sees the merchant.
pub async fn mappings(s: &AppState, p: &Principal, id: &str) -> ApiResult<Mappings> {
    super::merchants::load(s, p, id).await?;
    Ok(s.engine.mappings(id).await?)
}

/// Replaces (or, `merge`, merge-patches) the merchant's mappings.
pub async fn save_mappings(
    s: &AppState,
    p: &Principal,
    id: &str,
    doc: Value,
    merge: bool,
) -> ApiResult<Mappings> {
    super::merchants::load(s, p, id).await?;
    let by = who(p);
    Ok(if merge {
        s.engine.patch_mappings(id, doc, &by).await?
    } else {
        s.engine.replace_mappings(id, doc, &by).await?
    })
}

#[utoipa::path(
    get,
    path = "/merchants/{id}/mappings",
    operation_id = "get_mappings",
    tag = "mappings",
    summary = "A merchant's mappings",
    params(("id" = String, Path, description = "mer_…")),
    responses(
        (status = 200, description = "The mappings (a merchant that never saved any: the built-in shipping-method rules)", body = schema::MappingsDoc),
        (status = 404, description = "no merchant with this id, or one the caller may not see (`not_found`)", body = schema::ErrorBody)
    )
)]
async fn show(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Mappings>> {
    Ok(Json(mappings(&s, &p, &id).await?))
}

#[utoipa::path(
    put,
    path = "/merchants/{id}/mappings",
    operation_id = "replace_mappings",
    tag = "mappings",
    summary = "Replace a merchant's mappings (all or nothing)",
    params(("id" = String, Path, description = "mer_…")),
    request_body = schema::MappingsDoc,
    responses(
        (status = 200, description = "The mappings as stored", body = schema::MappingsDoc),
        (status = 400, description = "the body is not valid JSON, or not an object (`malformed`)", body = schema::ErrorBody),
        (status = 404, description = "no merchant with this id, or one the caller may not see (`not_found`)", body = schema::ErrorBody),
        (status = 422, description = "a rule is wrong or conflicts with another, or a field is unknown (`invalid_mapping`, naming the rule in `rule`); nothing was applied", body = schema::ErrorBody)
    )
)]
async fn replace(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Mappings>> {
    let doc = body_json(&body)?;
    Ok(Json(save_mappings(&s, &p, &id, doc, false).await?))
}

#[utoipa::path(
    patch,
    path = "/merchants/{id}/mappings",
    operation_id = "update_mappings",
    tag = "mappings",
    summary = "Change a merchant's mappings (JSON merge patch; a list is replaced whole)",
    params(("id" = String, Path, description = "mer_…")),
    request_body = schema::MappingsDoc,
    responses(
        (status = 200, description = "The mappings as stored", body = schema::MappingsDoc),
        (status = 400, description = "the body is not valid JSON, or not an object (`malformed`)", body = schema::ErrorBody),
        (status = 404, description = "no merchant with this id, or one the caller may not see (`not_found`)", body = schema::ErrorBody),
        (status = 422, description = "the patched document has a wrong or conflicting rule, or an unknown field (`invalid_mapping`, naming the rule in `rule`); nothing was applied", body = schema::ErrorBody)
    )
)]
async fn patch(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Mappings>> {
    let doc = body_json(&body)?;
    Ok(Json(save_mappings(&s, &p, &id, doc, true).await?))
}

/// The merchant's preview of `doc` (`None`: the stored mappings), when the
/// principal sees the merchant; nothing is saved or sent.
pub async fn preview_mappings(
    s: &AppState,
    p: &Principal,
    id: &str,
    doc: Option<Value>,
    limit: i64,
) -> ApiResult<Preview> {
    super::merchants::load(s, p, id).await?;
    Ok(s.engine.preview_mappings(id, doc, Some(limit)).await?)
}

/// `limit` of a preview.
#[derive(Debug, Deserialize, Default, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PreviewQuery {
    /// Latest orders and latest shipments looked at (each): 1 to 500 (else
    /// 422), default 50.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 500)]
    pub limit: Option<String>,
}

#[utoipa::path(
    post,
    path = "/merchants/{id}/mappings/preview",
    operation_id = "preview_mappings",
    tag = "mappings",
    summary = "What a mappings document would change, without saving or sending anything",
    params(("id" = String, Path, description = "mer_…"), PreviewQuery),
    request_body(content = schema::MappingsDoc, description = "The edited document; an empty body previews the stored one"),
    responses(
        (status = 200, description = "The latest orders and shipments whose output or state the document changes", body = schema::MappingsPreview),
        (status = 400, description = "the body is not valid JSON, or not an object; or the query string cannot be read (`malformed`)", body = schema::ErrorBody),
        (status = 404, description = "no merchant with this id, or one the caller may not see (`not_found`)", body = schema::ErrorBody),
        (status = 422, description = "a rule is wrong or conflicts with another, or a field is unknown (`invalid_mapping`, naming the rule in `rule`); or `limit` out of range (`invalid_field`)", body = schema::ErrorBody)
    )
)]
async fn preview(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    Query(q): Query<PreviewQuery>,
    body: Bytes,
) -> ApiResult<Json<Preview>> {
    let limit = Page {
        cursor: None,
        limit: q.limit,
    }
    .limit()?;
    let doc = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        Some(body_json(&body)?)
    };
    Ok(Json(preview_mappings(&s, &p, &id, doc, limit).await?))
}
