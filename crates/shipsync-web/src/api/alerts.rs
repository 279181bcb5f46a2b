//! `/api/v1/alerts`: what the alert policies raised (issue 16).
//! Administrators and Staff (Staff: their merchants' alerts and the
//! installation-wide ones); Merchant users may not (403).

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::{Value, json};
use shipsync_core::alerts::subject_path;
use shipsync_core::states::{AlertStatus, listed};
use shipsync_db::alerts::AlertRow;
use shipsync_engine::users::Role;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::alerts_schema as s_;
use super::schema::{self, List};
use super::{Page, Query, list};
use crate::AppState;
use crate::auth::{Principal, forbidden};
use crate::error::{ApiError, ApiResult};
use crate::json::{opt_time, time};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_alerts))
        .routes(routes!(show))
        .routes(routes!(acknowledge))
}

/// Filters of `GET /alerts`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// `open`, `acknowledged` or `closed` (empty: all).
    #[param(value_type = Option<s_::AlertStatusName>)]
    status: Option<String>,
    #[serde(flatten)]
    #[param(ignore)]
    page: Page,
}

/// 403 for Merchant users.
pub fn require_staff(p: &Principal) -> ApiResult<()> {
    if p.role == Role::Merchant {
        Err(forbidden(
            "alerts are for Administrators and Staff: ask one of them".to_string(),
        ))
    } else {
        Ok(())
    }
}

pub fn render(a: &AlertRow) -> Value {
    json!({
        "id": a.id,
        "policy_id": a.policy_id,
        "event": a.event,
        "merchant_id": a.merchant_id,
        "connection_id": a.connection_id,
        "subject_ids": a.subjects.iter().map(|s| s.id.clone()).collect::<Vec<_>>(),
        "subjects": a.subjects.iter().map(|s| json!({
            "id": s.id,
            "label": s.label,
            "added_at": time(s.added_at),
            "path": subject_path(&s.id),
        })).collect::<Vec<_>>(),
        "count": a.subjects.len(),
        "status": a.status,
        "summary": a.summary,
        "opened_at": time(a.opened_at),
        "acknowledged_at": opt_time(a.acknowledged_at),
        "acknowledged_by": a.acknowledged_by,
        "closed_at": opt_time(a.closed_at),
        "last_seen_at": time(a.last_seen_at),
    })
}

#[utoipa::path(
    get,
    path = "/alerts",
    operation_id = "list_alerts",
    tag = "alerts",
    summary = "Alerts the caller sees, newest first",
    params(Page, ListQuery),
    responses(
        (status = 200, description = "A page of alerts", body = schema::List<s_::Alert>),
        (status = 400, description = "the query string cannot be read (`malformed`)", body = schema::ErrorBody),
        (status = 403, description = "the caller is a Merchant user (`forbidden`)", body = schema::ErrorBody),
        (status = 422, description = "`limit` or `status` is wrong (`invalid_field`, naming the field)", body = schema::ErrorBody)
    )
)]
async fn list_alerts(
    State(s): State<AppState>,
    p: Principal,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<List<Value>>> {
    require_staff(&p)?;
    let limit = q.page.limit()?;
    let status = match q.status.filter(|v| !v.is_empty()) {
        None => None,
        Some(v) => Some(v.parse::<AlertStatus>().map_err(|_| {
            ApiError::invalid(
                "status",
                format!("must be one of {}", listed(AlertStatus::ALL)),
            )
        })?),
    };
    let rows = s
        .engine
        .alerts(p.caller(), status, q.page.cursor.clone(), limit + 1)
        .await?;
    Ok(Json(list(rows, limit, |a| a.id.clone(), render)))
}

#[utoipa::path(
    get,
    path = "/alerts/{id}",
    operation_id = "get_alert",
    tag = "alerts",
    summary = "One alert",
    params(("id" = String, Path, description = "alr_…")),
    responses(
        (status = 200, description = "The alert", body = s_::Alert),
        (status = 403, description = "the caller is a Merchant user (`forbidden`)", body = schema::ErrorBody),
        (status = 404, description = "no alert with this id, or one the caller may not see (`not_found`)", body = schema::ErrorBody)
    )
)]
async fn show(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    require_staff(&p)?;
    Ok(Json(render(&s.engine.alert(p.caller(), &id).await?)))
}

#[utoipa::path(
    post,
    path = "/alerts/{id}/acknowledge",
    operation_id = "acknowledge_alert",
    tag = "alerts",
    summary = "Acknowledge an alert (it still closes by itself when its condition clears)",
    params(("id" = String, Path, description = "alr_…")),
    responses(
        (status = 200, description = "The alert, acknowledged", body = s_::Alert),
        (status = 403, description = "the caller is a Merchant user (`forbidden`)", body = schema::ErrorBody),
        (status = 404, description = "no alert with this id, or one the caller may not see (`not_found`)", body = schema::ErrorBody),
        (status = 409, description = "the alert is closed (`alert_closed`)", body = schema::ErrorBody)
    )
)]
async fn acknowledge(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    require_staff(&p)?;
    let by = super::mappings::who(&p);
    Ok(Json(render(
        &s.engine.acknowledge_alert(p.caller(), &id, &by).await?,
    )))
}
