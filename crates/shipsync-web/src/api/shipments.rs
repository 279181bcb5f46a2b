//! `/api/v1/shipments`: what the warehouse shipped, and what the store knows.

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::{Value, json};
use shipsync_core::states::{ShipmentStatus, Source, listed};
use shipsync_db::{shipments::ShipmentFilter, shipments::ShipmentRow};
use shipsync_engine::ShipmentAction;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::schema::{self, List};
use super::{Page, Query, list};
use crate::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::json::{opt_time, time};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_shipments))
        .routes(routes!(show))
        .routes(routes!(reprocess))
        .routes(routes!(reset))
        .routes(routes!(archive))
}

/// Filters of `GET /shipments` (empty = any).
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    merchant_id: Option<String>,
    connection_id: Option<String>,
    #[param(value_type = Option<schema::ShipmentStatus>)]
    status: Option<String>,
    /// The store's order name; a leading `#` is ignored.
    order_name: Option<String>,
    #[param(value_type = Option<schema::Source>)]
    source: Option<String>,
    #[serde(flatten)]
    #[param(ignore)]
    page: Page,
}

fn summary(s: &ShipmentRow) -> Value {
    json!({
        "id": s.id,
        "merchant_id": s.merchant_id,
        "connection_id": s.connection_id,
        "status": s.status,
        "error": s.error,
        "order_name": s.order_name,
        "warehouse_shipment_number": s.number,
        "sources": s.sources,
        "first_seen_via": s.first_seen_via,
        "received_at": time(s.received_at),
        "updated_at": time(s.updated_at),
        "completed_at": opt_time(s.completed_at),
    })
}

#[utoipa::path(
    get,
    path = "/shipments",
    operation_id = "list_shipments",
    tag = "shipments",
    summary = "The shipments the caller sees",
    params(Page, ListQuery),
    responses(
        (status = 200, description = "A page of shipments, newest first", body = schema::List<schema::ShipmentSummary>),
        (status = 400, description = "the query string cannot be read (`malformed`)", body = schema::ErrorBody),
        (status = 422, description = "`limit`, `status` or `source` is wrong (`invalid_field`, naming the field)", body = schema::ErrorBody)
    )
)]
async fn list_shipments(
    State(s): State<AppState>,
    p: Principal,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<List<Value>>> {
    let limit = q.page.limit()?;
    let non_empty = |v: Option<String>| v.filter(|x| !x.is_empty());
    let status = match non_empty(q.status) {
        None => None,
        Some(st) => Some(st.parse::<ShipmentStatus>().map_err(|_| {
            ApiError::invalid(
                "status",
                format!("must be one of {}", listed(ShipmentStatus::ALL)),
            )
        })?),
    };
    let source = match non_empty(q.source) {
        None => None,
        Some(src) => Some(
            src.parse::<Source>()
                .map_err(|_| ApiError::invalid("source", "must be webhook or poll"))?,
        ),
    };
    let filter = ShipmentFilter {
        merchant_ids: p.narrow(q.merchant_id),
        connection_id: non_empty(q.connection_id),
        status,
        order_name: non_empty(q.order_name),
        source,
    };
    let rows = s
        .engine
        .shipments(&filter, q.page.cursor.as_deref(), limit + 1)
        .await?;
    Ok(Json(list(rows, limit, |r| r.id.clone(), summary)))
}

/// The principal's shipments whose order name is `q` or one of whose
/// packages carries tracking number `q` (either, one search box), newest
/// first, optionally in one status.
pub async fn search(
    s: &AppState,
    p: &Principal,
    status: Option<ShipmentStatus>,
    q: &str,
    limit: i64,
) -> ApiResult<Vec<ShipmentRow>> {
    Ok(s.engine
        .search_shipments(p.scope(), status, q, limit)
        .await?)
}

/// The shipment, when the principal may see its merchant (else 404).
pub async fn load(s: &AppState, p: &Principal, id: &str) -> ApiResult<ShipmentRow> {
    s.engine
        .shipment(id)
        .await?
        .filter(|r| p.sees(&r.merchant_id))
        .ok_or_else(|| ApiError::not_found("shipment"))
}

pub async fn detail(s: &AppState, p: &Principal, id: &str) -> ApiResult<Value> {
    let row = load(s, p, id).await?;
    let mut out = summary(&row);
    {
        let v = &row.version;
        let sku_of = |line: &str| {
            v.lines
                .iter()
                .find(|l| l.line_number == line)
                .map(|l| l.sku.clone())
        };
        out["warehouse_status"] = json!(v.status);
        out["carrier"] = json!(v.carrier);
        out["service"] = json!(v.service);
        out["shipped_at"] = json!(v.shipped_at);
        out["packages"] = v
            .packages
            .iter()
            .map(|p| {
                json!({
                    "key": p.key,
                    "tracking_number": p.tracking_number,
                    "carrier": p.carrier,
                    "service": p.service,
                    "lines": p.lines.iter().map(|l| json!({"sku": sku_of(&l.line_number).unwrap_or_else(|| l.sku.clone()), "quantity": l.quantity})).collect::<Vec<_>>(),
                })
            })
            .collect();
        out["lines"] = v
            .lines
            .iter()
            .map(|l| {
                json!({
                    "line_number": l.line_number,
                    "sku": l.sku,
                    "quantity": l.quantity,
                    "store_line_id": l.store_line_id,
                    "kit_sku": l.kit.as_ref().and_then(|k| k.sku.clone()),
                })
            })
            .collect();
    }
    let fulfillments = s.engine.shipment_fulfillments(id).await?;
    out["store_fulfillments"] = fulfillments
        .iter()
        .map(|f| {
            json!({
                "id": f.store_fulfillment_id,
                "state": f.state,
                "store_order_id": f.store_order_id,
                "fulfillment_order_id": f.fulfillment_order_id,
                "carrier": f.carrier,
                "quantities": f.lines,
                "tracking_numbers": shipsync_core::tracking::numbers(&f.tracking),
                "created_at": time(f.created_at),
            })
        })
        .collect();
    out["store_order_id"] = json!(row.order_id);
    out["activity"] = s
        .engine
        .activity(id)
        .await?
        .iter()
        .map(|a| json!({"at": time(a.at), "kind": a.kind, "message": a.message}))
        .collect();
    Ok(out)
}

#[utoipa::path(
    get,
    path = "/shipments/{id}",
    operation_id = "get_shipment",
    tag = "shipments",
    summary = "One shipment, in full",
    params(("id" = String, Path, description = "shp_…")),
    responses(
        (status = 200, description = "The shipment", body = schema::Shipment),
        (status = 404, description = "no shipment with this id, or one the caller may not see (`not_found`)", body = schema::ErrorBody)
    )
)]
async fn show(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(detail(&s, &p, &id).await?))
}

async fn act(
    s: AppState,
    p: Principal,
    id: String,
    action: ShipmentAction,
) -> ApiResult<Json<Value>> {
    act_on(&s, &p, &id, action).await?;
    Ok(Json(detail(&s, &p, &id).await?))
}

/// Reprocess, reset or archive a shipment the principal sees.
pub async fn act_on(
    s: &AppState,
    p: &Principal,
    id: &str,
    action: ShipmentAction,
) -> ApiResult<()> {
    load(s, p, id).await?;
    s.engine
        .shipment_action(id, action)
        .await
        .map_err(|e| ApiError::from_engine(e, "shipment"))
}

#[utoipa::path(
    post,
    path = "/shipments/{id}/reprocess",
    operation_id = "reprocess_shipment",
    tag = "shipments",
    summary = "Notify the store again of whatever it still lacks",
    params(("id" = String, Path, description = "shp_…")),
    responses(
        (status = 200, description = "The updated shipment", body = schema::Shipment),
        (status = 404, description = "no shipment with this id, or one the caller may not see (`not_found`)", body = schema::ErrorBody),
        (status = 409, description = "the shipment cannot be reprocessed now (`conflict`, `channel_disabled`)", body = schema::ErrorBody)
    )
)]
async fn reprocess(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    act(s, p, id, ShipmentAction::Reprocess).await
}

#[utoipa::path(
    post,
    path = "/shipments/{id}/reset",
    operation_id = "reset_shipment",
    tag = "shipments",
    summary = "Derive the shipment again from its stored payloads",
    params(("id" = String, Path, description = "shp_…")),
    responses(
        (status = 200, description = "The updated shipment", body = schema::Shipment),
        (status = 404, description = "no shipment with this id, or one the caller may not see (`not_found`)", body = schema::ErrorBody),
        (status = 409, description = "the shipment cannot be reset now (`conflict`)", body = schema::ErrorBody)
    )
)]
async fn reset(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    act(s, p, id, ShipmentAction::Reset).await
}

#[utoipa::path(
    post,
    path = "/shipments/{id}/archive",
    operation_id = "archive_shipment",
    tag = "shipments",
    summary = "Stop all processing of the shipment",
    params(("id" = String, Path, description = "shp_…")),
    responses(
        (status = 200, description = "The updated shipment", body = schema::Shipment),
        (status = 404, description = "no shipment with this id, or one the caller may not see (`not_found`)", body = schema::ErrorBody),
        (status = 409, description = "the shipment cannot be archived now (`conflict`)", body = schema::ErrorBody)
    )
)]
async fn archive(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    act(s, p, id, ShipmentAction::Archive).await
}
