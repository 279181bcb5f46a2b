//! `/api/v1/notification-channels`: where alert messages go (issue 16).
//! Administrators only. The SMTP password is write-only (`smtp.password_set`).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};
use shipsync_core::alerts::ChannelSettings;
use shipsync_engine::alerts::ChannelView;
use shipsync_engine::users::Role;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::alerts_schema as s_;
use super::body_json;
use super::schema::{self, List};
use crate::AppState;
use crate::auth::{Principal, forbidden};
use crate::error::{ApiError, ApiResult};
use crate::json::time;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_channels, create))
        .routes(routes!(show, update, remove))
        .routes(routes!(test))
}

/// 403 unless the caller is an Administrator.
pub fn require_admin(p: &Principal, what: &str) -> ApiResult<()> {
    if p.role == Role::Admin {
        Ok(())
    } else {
        Err(forbidden(format!(
            "only an Administrator may manage {what}: ask one to do it"
        )))
    }
}

pub fn render(c: &ChannelView) -> Value {
    let r = &c.row;
    let mut doc = json!({
        "id": r.id,
        "name": r.name,
        "kind": r.settings.kind(),
        "created_at": time(r.created_at),
        "updated_at": time(r.updated_at),
    });
    match &r.settings {
        ChannelSettings::Email { smtp, to } => {
            doc["smtp"] = json!({
                "host": smtp.host,
                "port": smtp.port,
                "tls": smtp.tls,
                "username": smtp.username,
                "from": smtp.from,
                "password_set": c.password_set,
            });
            doc["to"] = json!(to);
        }
        ChannelSettings::Webhook { url, format } => {
            doc["url"] = json!(url);
            doc["format"] = json!(format);
        }
    }
    doc
}

#[utoipa::path(
    get,
    path = "/notification-channels",
    operation_id = "list_notification_channels",
    tag = "alerts",
    summary = "Every notification channel",
    responses(
        (status = 200, description = "The channels; `next_cursor` is always null", body = schema::List<s_::NotificationChannel>),
        (status = 403, description = "the caller is not an Administrator (`forbidden`)", body = schema::ErrorBody)
    )
)]
async fn list_channels(State(s): State<AppState>, p: Principal) -> ApiResult<Json<List<Value>>> {
    require_admin(&p, "notification channels")?;
    Ok(Json(List {
        items: s
            .engine
            .notification_channels()
            .await?
            .iter()
            .map(render)
            .collect(),
        next_cursor: None,
    }))
}

#[utoipa::path(
    post,
    path = "/notification-channels",
    operation_id = "create_notification_channel",
    tag = "alerts",
    summary = "Create a notification channel (email over SMTP, or a webhook)",
    request_body = s_::NotificationChannelInput,
    responses(
        (status = 201, description = "The new channel", body = s_::NotificationChannel),
        (status = 400, description = "the body is not valid JSON, or not an object (`malformed`)", body = schema::ErrorBody),
        (status = 403, description = "the caller is not an Administrator (`forbidden`)", body = schema::ErrorBody),
        (status = 422, description = "a field is missing or wrong (`invalid_field`, naming the field), or the host is not public (`private_target`)", body = schema::ErrorBody)
    )
)]
async fn create(
    State(s): State<AppState>,
    p: Principal,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    require_admin(&p, "notification channels")?;
    let c = s
        .engine
        .create_notification_channel(body_json(&body)?)
        .await?;
    Ok((StatusCode::CREATED, Json(render(&c))))
}

#[utoipa::path(
    get,
    path = "/notification-channels/{id}",
    operation_id = "get_notification_channel",
    tag = "alerts",
    summary = "One notification channel",
    params(("id" = String, Path, description = "nch_…")),
    responses(
        (status = 200, description = "The channel", body = s_::NotificationChannel),
        (status = 403, description = "the caller is not an Administrator (`forbidden`)", body = schema::ErrorBody),
        (status = 404, description = "no channel with this id (`not_found`)", body = schema::ErrorBody)
    )
)]
async fn show(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    require_admin(&p, "notification channels")?;
    Ok(Json(render(&s.engine.notification_channel(&id).await?)))
}

/// A JSON merge patch; `smtp.password` replaces the password (`null`
/// removes it; left out, it is kept).
#[utoipa::path(
    patch,
    path = "/notification-channels/{id}",
    operation_id = "update_notification_channel",
    tag = "alerts",
    summary = "Change a notification channel",
    params(("id" = String, Path, description = "nch_…")),
    request_body = s_::NotificationChannelInput,
    responses(
        (status = 200, description = "The channel", body = s_::NotificationChannel),
        (status = 400, description = "the body is not valid JSON, or not an object (`malformed`)", body = schema::ErrorBody),
        (status = 403, description = "the caller is not an Administrator (`forbidden`)", body = schema::ErrorBody),
        (status = 404, description = "no channel with this id (`not_found`)", body = schema::ErrorBody),
        (status = 422, description = "a field is wrong (`invalid_field`, naming the field), or the host is not public (`private_target`)", body = schema::ErrorBody)
    )
)]
async fn update(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    require_admin(&p, "notification channels")?;
    let c = s
        .engine
        .patch_notification_channel(&id, body_json(&body)?)
        .await?;
    Ok(Json(render(&c)))
}

#[utoipa::path(
    delete,
    path = "/notification-channels/{id}",
    operation_id = "delete_notification_channel",
    tag = "alerts",
    summary = "Delete a notification channel no policy uses",
    params(("id" = String, Path, description = "nch_…")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "the caller is not an Administrator (`forbidden`)", body = schema::ErrorBody),
        (status = 404, description = "no channel with this id (`not_found`)", body = schema::ErrorBody),
        (status = 409, description = "an alert policy uses it (`in_use`, naming the policies)", body = schema::ErrorBody)
    )
)]
async fn remove(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    require_admin(&p, "notification channels")?;
    s.engine.delete_notification_channel(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    post,
    path = "/notification-channels/{id}/test",
    operation_id = "test_notification_channel",
    tag = "alerts",
    summary = "Send a test message now",
    params(("id" = String, Path, description = "nch_…")),
    responses(
        (status = 200, description = "The server accepted the message (SMTP 250, HTTP 2xx)", body = s_::TestSent),
        (status = 403, description = "the caller is not an Administrator (`forbidden`)", body = schema::ErrorBody),
        (status = 404, description = "no channel with this id (`not_found`)", body = schema::ErrorBody),
        (status = 502, description = "the server refused the message or could not be reached (`send_failed`, with its answer)", body = schema::ErrorBody)
    )
)]
async fn test(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    require_admin(&p, "notification channels")?;
    match s.engine.test_notification_channel(&id).await? {
        Ok(()) => Ok(Json(json!({"sent": true}))),
        Err(e) => Err(ApiError::new(StatusCode::BAD_GATEWAY, "send_failed", e.0)),
    }
}
