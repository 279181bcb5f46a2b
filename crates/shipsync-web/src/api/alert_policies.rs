//! `/api/v1/alert-policies`: which events alert, for which merchants and
//! connections, to which channels, grouped how (issue 16). Administrators
//! only.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};
use shipsync_engine::alerts::PolicyView;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::alerts_schema as s_;
use super::body_json;
use super::notification_channels::require_admin;
use super::schema::{self, List};
use crate::AppState;
use crate::auth::Principal;
use crate::error::ApiResult;
use crate::json::{opt_time, time};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_policies, create))
        .routes(routes!(show, update, remove))
}

pub fn render(v: &PolicyView) -> Value {
    let d = &v.row.doc;
    let channels: Vec<Value> = d
        .channel_ids
        .iter()
        .map(|c| {
            let cursor = v.cursors.iter().find(|k| &k.channel_id == c);
            json!({
                "channel_id": c,
                "last_sent_at": opt_time(cursor.and_then(|k| k.last_sent_at)),
                "last_error": cursor.and_then(|k| k.last_error.clone()),
            })
        })
        .collect();
    json!({
        "id": v.row.id,
        "name": d.name,
        "events": d.events,
        "merchant_ids": d.merchant_ids,
        "connection_ids": d.connection_ids,
        "channel_ids": d.channel_ids,
        "group_minutes": d.group_minutes,
        "notify_resolved": d.notify_resolved,
        "enabled": d.enabled,
        "webhooks_stopped_hours": d.webhooks_stopped_hours,
        "latency_p99_seconds": d.latency_p99_seconds,
        "latency_window_minutes": d.latency_window_minutes,
        "channels": channels,
        "created_at": time(v.row.created_at),
        "updated_at": time(v.row.updated_at),
    })
}

#[utoipa::path(
    get,
    path = "/alert-policies",
    operation_id = "list_alert_policies",
    tag = "alerts",
    summary = "Every alert policy",
    responses(
        (status = 200, description = "The policies; `next_cursor` is always null", body = schema::List<s_::AlertPolicy>),
        (status = 403, description = "the caller is not an Administrator (`forbidden`)", body = schema::ErrorBody)
    )
)]
async fn list_policies(State(s): State<AppState>, p: Principal) -> ApiResult<Json<List<Value>>> {
    require_admin(&p, "alert policies")?;
    Ok(Json(List {
        items: s
            .engine
            .alert_policies()
            .await?
            .iter()
            .map(render)
            .collect(),
        next_cursor: None,
    }))
}

#[utoipa::path(
    post,
    path = "/alert-policies",
    operation_id = "create_alert_policy",
    tag = "alerts",
    summary = "Create an alert policy",
    request_body = s_::AlertPolicyInput,
    responses(
        (status = 201, description = "The new policy", body = s_::AlertPolicy),
        (status = 400, description = "the body is not valid JSON, or not an object (`malformed`)", body = schema::ErrorBody),
        (status = 403, description = "the caller is not an Administrator (`forbidden`)", body = schema::ErrorBody),
        (status = 422, description = "a field is missing or wrong, or names an unknown event, merchant, connection or channel (`invalid_field`, naming the field)", body = schema::ErrorBody)
    )
)]
async fn create(
    State(s): State<AppState>,
    p: Principal,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    require_admin(&p, "alert policies")?;
    let v = s.engine.create_alert_policy(body_json(&body)?).await?;
    Ok((StatusCode::CREATED, Json(render(&v))))
}

#[utoipa::path(
    get,
    path = "/alert-policies/{id}",
    operation_id = "get_alert_policy",
    tag = "alerts",
    summary = "One alert policy, with how sending to each channel went",
    params(("id" = String, Path, description = "pol_…")),
    responses(
        (status = 200, description = "The policy", body = s_::AlertPolicy),
        (status = 403, description = "the caller is not an Administrator (`forbidden`)", body = schema::ErrorBody),
        (status = 404, description = "no policy with this id (`not_found`)", body = schema::ErrorBody)
    )
)]
async fn show(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    require_admin(&p, "alert policies")?;
    Ok(Json(render(&s.engine.alert_policy(&id).await?)))
}

#[utoipa::path(
    patch,
    path = "/alert-policies/{id}",
    operation_id = "update_alert_policy",
    tag = "alerts",
    summary = "Change an alert policy (JSON merge patch)",
    params(("id" = String, Path, description = "pol_…")),
    request_body = s_::AlertPolicyInput,
    responses(
        (status = 200, description = "The policy", body = s_::AlertPolicy),
        (status = 400, description = "the body is not valid JSON, or not an object (`malformed`)", body = schema::ErrorBody),
        (status = 403, description = "the caller is not an Administrator (`forbidden`)", body = schema::ErrorBody),
        (status = 404, description = "no policy with this id (`not_found`)", body = schema::ErrorBody),
        (status = 422, description = "a field is wrong (`invalid_field`, naming the field)", body = schema::ErrorBody)
    )
)]
async fn update(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    require_admin(&p, "alert policies")?;
    let v = s.engine.patch_alert_policy(&id, body_json(&body)?).await?;
    Ok(Json(render(&v)))
}

#[utoipa::path(
    delete,
    path = "/alert-policies/{id}",
    operation_id = "delete_alert_policy",
    tag = "alerts",
    summary = "Delete an alert policy and its alerts",
    params(("id" = String, Path, description = "pol_…")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "the caller is not an Administrator (`forbidden`)", body = schema::ErrorBody),
        (status = 404, description = "no policy with this id (`not_found`)", body = schema::ErrorBody)
    )
)]
async fn remove(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    require_admin(&p, "alert policies")?;
    s.engine.delete_alert_policy(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}
