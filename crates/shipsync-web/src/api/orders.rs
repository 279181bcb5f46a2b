//! `/api/v1/orders`: store orders the Sales Orders channel sends to the
//! warehouse (and those shipments were matched to), with their lines,
//! shipments and activity.

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::{Value, json};
use shipsync_core::states::{OrderStatus, listed};
use shipsync_db::orders::{OrderFilter, OrderRecord};
use shipsync_engine::OrderAction;
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
        .routes(routes!(list_orders))
        .routes(routes!(show))
        .routes(routes!(reprocess))
        .routes(routes!(archive))
}

/// Filters of `GET /orders` (empty = any).
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    connection_id: Option<String>,
    #[param(value_type = Option<schema::OrderStatus>)]
    status: Option<String>,
    /// The store's order name, e.g. `#1001`.
    name: Option<String>,
    /// Orders whose shipments carry this tracking number.
    tracking_number: Option<String>,
    /// `webhook` or `poll`: how shipsync first learned of the order (what
    /// only the scheduled pull found).
    #[param(value_type = Option<schema::FirstSeenVia>)]
    first_seen_via: Option<String>,
    #[serde(flatten)]
    #[param(ignore)]
    page: Page,
}

/// The principal's orders whose name is `q` or whose shipments carry
/// tracking number `q` (the UI's one search box), newest first, optionally
/// in one status.
pub async fn search(
    s: &AppState,
    p: &Principal,
    status: Option<OrderStatus>,
    q: &str,
    limit: i64,
) -> ApiResult<Vec<OrderRecord>> {
    Ok(s.engine.search_orders(p.scope(), status, q, limit).await?)
}

fn summary(o: &OrderRecord) -> Value {
    json!({
        "id": o.id,
        "connection_id": o.connection_id,
        "name": o.name,
        "status": o.status,
        "error": o.error,
        "store_order_id": o.store_order_id,
        "warehouse_order_number": o.warehouse_number,
        "warehouse_order_id": o.warehouse_id.as_deref().filter(|i| !i.is_empty()),
        "sent_at": opt_time(o.sent_at),
        "first_seen_via": o.first_seen_via.unwrap_or(shipsync_core::states::Source::Poll),
        "hold_reason": o.hold_reason,
        "hold_until": opt_time(o.hold_until),
        "created_at": time(o.created_at),
        "updated_at": time(o.updated_at),
    })
}

#[utoipa::path(
    get,
    path = "/orders",
    operation_id = "list_orders",
    tag = "orders",
    summary = "The orders the caller sees",
    params(Page, ListQuery),
    responses(
        (status = 200, description = "A page of orders, newest first", body = schema::List<schema::OrderSummary>),
        (status = 400, description = "the query string cannot be read (`malformed`)", body = schema::ErrorBody),
        (status = 422, description = "`limit` or `status` is wrong (`invalid_field`, naming the field)", body = schema::ErrorBody)
    )
)]
async fn list_orders(
    State(s): State<AppState>,
    p: Principal,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<List<Value>>> {
    let limit = q.page.limit()?;
    let non_empty = |v: Option<String>| v.filter(|x| !x.is_empty());
    let status = match non_empty(q.status) {
        None => None,
        Some(st) => Some(st.parse::<OrderStatus>().map_err(|_| {
            ApiError::invalid(
                "status",
                format!("must be one of {}", listed(OrderStatus::ALL)),
            )
        })?),
    };
    let first_seen_via = match non_empty(q.first_seen_via) {
        None => None,
        Some(v) => Some(
            v.parse::<shipsync_core::states::Source>()
                .map_err(|_| ApiError::invalid("first_seen_via", "must be webhook or poll"))?,
        ),
    };
    let tracking = non_empty(q.tracking_number);
    let store_orders = match &tracking {
        Some(t) => Some(s.engine.store_orders_carrying(p.scope(), t).await?),
        None => None,
    };
    let filter = OrderFilter {
        merchant_ids: p.narrow(None),
        connection_id: non_empty(q.connection_id),
        status,
        name: non_empty(q.name),
        first_seen_via,
        store_orders,
    };
    let rows = s
        .engine
        .orders(&filter, q.page.cursor.as_deref(), limit + 1)
        .await?;
    Ok(Json(list(rows, limit, |r| r.id.clone(), summary)))
}

/// The order, when the principal may see its connection's merchant.
pub async fn load(s: &AppState, p: &Principal, id: &str) -> ApiResult<OrderRecord> {
    let row = s
        .engine
        .order(id)
        .await?
        .ok_or_else(|| ApiError::not_found("order"))?;
    if p.scope().is_some() {
        let merchant = s
            .engine
            .connection(&row.connection_id)
            .await?
            .map(|c| c.merchant_id)
            .unwrap_or_default();
        p.check(&merchant, "order")?;
    }
    Ok(row)
}

pub async fn detail(s: &AppState, p: &Principal, id: &str) -> ApiResult<Value> {
    let row = load(s, p, id).await?;
    let mut out = summary(&row);
    out["lines"] = s
        .engine
        .order_lines(&row)
        .await?
        .iter()
        .map(|l| {
            json!({
                "id": l.id,
                "sku": l.sku,
                "name": l.name,
                "quantity": l.quantity,
                "sent_quantity": l.sent_quantity,
                "shipped_quantity": l.shipped_quantity,
                "fulfilled_quantity": l.fulfilled_quantity,
                "skipped": l.skipped,
                "group": l.group,
                "kit": l.kit.as_ref().map(|k| json!({"components": k})),
            })
        })
        .collect();
    out["shipments"] = json!(s.engine.order_shipment_ids(&row).await?);
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
    path = "/orders/{id}",
    operation_id = "get_order",
    tag = "orders",
    summary = "One order, in full",
    params(("id" = String, Path, description = "ord_…")),
    responses(
        (status = 200, description = "The order", body = schema::Order),
        (status = 404, description = "no order with this id, or one the caller may not see (`not_found`)", body = schema::ErrorBody)
    )
)]
async fn show(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(detail(&s, &p, &id).await?))
}

async fn act(s: AppState, p: Principal, id: String, action: OrderAction) -> ApiResult<Json<Value>> {
    act_on(&s, &p, &id, action).await?;
    Ok(Json(detail(&s, &p, &id).await?))
}

/// Reprocess or archive an order the principal sees.
pub async fn act_on(s: &AppState, p: &Principal, id: &str, action: OrderAction) -> ApiResult<()> {
    load(s, p, id).await?;
    s.engine
        .order_action(id, action)
        .await
        .map_err(|e| ApiError::from_engine(e, "order"))
}

#[utoipa::path(
    post,
    path = "/orders/{id}/reprocess",
    operation_id = "reprocess_order",
    tag = "orders",
    summary = "Try the order again",
    params(("id" = String, Path, description = "ord_…")),
    responses(
        (status = 200, description = "The updated order", body = schema::Order),
        (status = 404, description = "no order with this id, or one the caller may not see (`not_found`)", body = schema::ErrorBody),
        (status = 409, description = "the order cannot be reprocessed now (`conflict`, `channel_disabled`)", body = schema::ErrorBody)
    )
)]
async fn reprocess(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    act(s, p, id, OrderAction::Reprocess).await
}

#[utoipa::path(
    post,
    path = "/orders/{id}/archive",
    operation_id = "archive_order",
    tag = "orders",
    summary = "Stop all processing of the order",
    params(("id" = String, Path, description = "ord_…")),
    responses(
        (status = 200, description = "The updated order", body = schema::Order),
        (status = 404, description = "no order with this id, or one the caller may not see (`not_found`)", body = schema::ErrorBody),
        (status = 409, description = "the order cannot be archived now (`conflict`)", body = schema::ErrorBody)
    )
)]
async fn archive(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    act(s, p, id, OrderAction::Archive).await
}
