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

use super::{body_json, schema};
use crate::AppState;
use crate::auth::Principal;
use crate::error::ApiResult;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(show, replace, patch))
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
