//! `/api/v1/merchants/{id}/event-subscriptions`: where a merchant's own
//! systems receive outbound events (issue 16), their deliveries, and
//! replays. Whoever sees the merchant manages them (a Merchant user its
//! own; Staff its merchants), as for its mappings. A subscription's secret
//! is in the answers of its creation and rotation only.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};
use shipsync_db::event_subscriptions::SubscriptionRow;
use shipsync_engine::events_out::DeliveryView;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::schema::{self, List};
use super::{Page, Query, body_json, list};
use crate::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::json::{opt_time, time};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_subscriptions, create))
        .routes(routes!(show, update, remove))
        .routes(routes!(rotate_secret))
        .routes(routes!(deliveries))
        .routes(routes!(replay))
}

/// A subscription as answers show it (never its secret).
pub fn render(r: &SubscriptionRow) -> Value {
    let now = shipsync_db::now_micros();
    json!({
        "id": r.id,
        "merchant_id": r.merchant_id,
        "url": r.url,
        "events": r.events,
        "enabled": r.enabled,
        "status": r.status,
        "failing_since": opt_time(r.failing_since),
        "secret_set": true,
        "previous_secret_until": opt_time(r.previous_until.filter(|&u| u > now)),
        "created_at": time(r.created_at),
        "updated_at": time(r.updated_at),
    })
}

/// The answer that shows a secret (creation, rotation).
fn with_secret(r: &SubscriptionRow, secret: String) -> Value {
    let mut v = render(r);
    v["secret"] = Value::String(secret);
    v
}

/// A delivery with its attempts and the body it posts.
pub fn render_delivery(v: &DeliveryView) -> Value {
    let d = &v.delivery;
    let event: Value = v
        .event
        .as_ref()
        .and_then(|e| serde_json::from_str(&e.body).ok())
        .unwrap_or(Value::Null);
    json!({
        "id": d.id,
        "event_id": d.event_id,
        "event_type": v.event.as_ref().map(|e| e.kind),
        "subject_id": d.subject_id,
        "state": d.state,
        "attempts": v.attempts.iter().map(|a| json!({
            "at": time(a.at),
            "status_code": a.status_code,
            "latency_ms": a.latency_ms,
            "excerpt": a.excerpt,
            "error": a.error,
        })).collect::<Vec<_>>(),
        "next_attempt_at": opt_time(d.next_attempt_at),
        "last_error": d.last_error,
        "event": event,
        "created_at": time(d.created_at),
        "updated_at": time(d.updated_at),
    })
}

/// Checks that the principal sees the merchant (else 404).
async fn merchant(s: &AppState, p: &Principal, id: &str) -> ApiResult<()> {
    super::merchants::load(s, p, id).await.map(|_| ())
}

fn not_found(e: shipsync_engine::EngineError) -> ApiError {
    ApiError::from_engine(e, "event subscription")
}

#[utoipa::path(
    get,
    path = "/merchants/{id}/event-subscriptions",
    operation_id = "list_event_subscriptions",
    tag = "events_out",
    summary = "A merchant's event subscriptions",
    params(("id" = String, Path, description = "mer_…")),
    responses(
        (status = 200, description = "Every subscription of the merchant, oldest first (one page)", body = List<schema::EventSubscription>),
        (status = 404, description = "no merchant with this id, or one the caller may not see (`not_found`)", body = schema::ErrorBody)
    )
)]
async fn list_subscriptions(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<List<Value>>> {
    merchant(&s, &p, &id).await?;
    let rows = s.engine.event_subscriptions(&id).await?;
    Ok(Json(List {
        items: rows.iter().map(render).collect(),
        next_cursor: None,
    }))
}

#[utoipa::path(
    post,
    path = "/merchants/{id}/event-subscriptions",
    operation_id = "create_event_subscription",
    tag = "events_out",
    summary = "Subscribe a URL to outbound events",
    description = "Answers the secret (`whsec_…`) once: deliveries are signed with it per Standard Webhooks.",
    params(("id" = String, Path, description = "mer_…")),
    request_body = schema::EventSubscriptionInput,
    responses(
        (status = 201, description = "The subscription, with its secret (shown this once)", body = schema::EventSubscriptionWithSecret),
        (status = 400, description = "the body is not valid JSON, or not an object (`malformed`)", body = schema::ErrorBody),
        (status = 404, description = "no merchant with this id, or one the caller may not see (`not_found`)", body = schema::ErrorBody),
        (status = 422, description = "a missing or wrong `url` (not https, or a private address the outbound-address policy refuses), an unknown event type, no event, or an unknown field (`invalid_field`, naming it)", body = schema::ErrorBody)
    )
)]
async fn create(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let doc = body_json(&body)?;
    merchant(&s, &p, &id).await?;
    let (row, secret) = s.engine.create_event_subscription(&id, &doc).await?;
    Ok((StatusCode::CREATED, Json(with_secret(&row, secret))))
}

#[utoipa::path(
    get,
    path = "/merchants/{id}/event-subscriptions/{sid}",
    operation_id = "get_event_subscription",
    tag = "events_out",
    summary = "An event subscription",
    params(("id" = String, Path, description = "mer_…"), ("sid" = String, Path, description = "evs_…")),
    responses(
        (status = 200, description = "The subscription", body = schema::EventSubscription),
        (status = 404, description = "no such merchant or subscription, or one the caller may not see (`not_found`)", body = schema::ErrorBody)
    )
)]
async fn show(
    State(s): State<AppState>,
    p: Principal,
    Path((id, sid)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    merchant(&s, &p, &id).await?;
    let row = s
        .engine
        .event_subscription(&id, &sid)
        .await
        .map_err(not_found)?;
    Ok(Json(render(&row)))
}

#[utoipa::path(
    patch,
    path = "/merchants/{id}/event-subscriptions/{sid}",
    operation_id = "update_event_subscription",
    tag = "events_out",
    summary = "Change an event subscription's URL, events or `enabled`",
    params(("id" = String, Path, description = "mer_…"), ("sid" = String, Path, description = "evs_…")),
    request_body = schema::EventSubscriptionPatch,
    responses(
        (status = 200, description = "The subscription as stored", body = schema::EventSubscription),
        (status = 400, description = "the body is not valid JSON, or not an object (`malformed`)", body = schema::ErrorBody),
        (status = 404, description = "no such merchant or subscription, or one the caller may not see (`not_found`)", body = schema::ErrorBody),
        (status = 422, description = "a wrong field (`invalid_field`, naming it); nothing was changed", body = schema::ErrorBody)
    )
)]
async fn update(
    State(s): State<AppState>,
    p: Principal,
    Path((id, sid)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let doc = body_json(&body)?;
    merchant(&s, &p, &id).await?;
    let row = s
        .engine
        .update_event_subscription(&id, &sid, &doc)
        .await
        .map_err(not_found)?;
    Ok(Json(render(&row)))
}

#[utoipa::path(
    delete,
    path = "/merchants/{id}/event-subscriptions/{sid}",
    operation_id = "delete_event_subscription",
    tag = "events_out",
    summary = "Delete an event subscription and its deliveries",
    params(("id" = String, Path, description = "mer_…"), ("sid" = String, Path, description = "evs_…")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "no such merchant or subscription, or one the caller may not see (`not_found`)", body = schema::ErrorBody)
    )
)]
async fn remove(
    State(s): State<AppState>,
    p: Principal,
    Path((id, sid)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    merchant(&s, &p, &id).await?;
    s.engine
        .delete_event_subscription(&id, &sid)
        .await
        .map_err(not_found)?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    post,
    path = "/merchants/{id}/event-subscriptions/{sid}/rotate-secret",
    operation_id = "rotate_event_subscription_secret",
    tag = "events_out",
    summary = "Issue a new secret",
    description = "The previous secret keeps signing deliveries for 24 h beside the new one \
        (`webhook-signature` then carries two signatures, space-separated).",
    params(("id" = String, Path, description = "mer_…"), ("sid" = String, Path, description = "evs_…")),
    responses(
        (status = 200, description = "The subscription with its new secret (shown this once)", body = schema::EventSubscriptionWithSecret),
        (status = 404, description = "no such merchant or subscription, or one the caller may not see (`not_found`)", body = schema::ErrorBody)
    )
)]
async fn rotate_secret(
    State(s): State<AppState>,
    p: Principal,
    Path((id, sid)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    merchant(&s, &p, &id).await?;
    let (row, secret) = s
        .engine
        .rotate_event_secret(&id, &sid)
        .await
        .map_err(not_found)?;
    Ok(Json(with_secret(&row, secret)))
}

#[utoipa::path(
    get,
    path = "/merchants/{id}/event-subscriptions/{sid}/deliveries",
    operation_id = "list_event_deliveries",
    tag = "events_out",
    summary = "A subscription's deliveries, newest first, with their attempts",
    params(("id" = String, Path, description = "mer_…"), ("sid" = String, Path, description = "evs_…"), Page),
    responses(
        (status = 200, description = "A page of deliveries", body = List<schema::EventDelivery>),
        (status = 400, description = "the query string cannot be read (`malformed`)", body = schema::ErrorBody),
        (status = 404, description = "no such merchant or subscription, or one the caller may not see (`not_found`)", body = schema::ErrorBody),
        (status = 422, description = "`limit` out of range (`invalid_field`, naming the field)", body = schema::ErrorBody)
    )
)]
async fn deliveries(
    State(s): State<AppState>,
    p: Principal,
    Path((id, sid)): Path<(String, String)>,
    Query(page): Query<Page>,
) -> ApiResult<Json<List<Value>>> {
    let limit = page.limit()?;
    merchant(&s, &p, &id).await?;
    let rows = s
        .engine
        .event_deliveries(&id, &sid, page.cursor.as_deref(), limit + 1)
        .await
        .map_err(not_found)?;
    Ok(Json(list(
        rows,
        limit,
        |v| v.delivery.id.clone(),
        render_delivery,
    )))
}

#[utoipa::path(
    post,
    path = "/merchants/{id}/event-subscriptions/{sid}/deliveries/{did}/replay",
    operation_id = "replay_event_delivery",
    tag = "events_out",
    summary = "Send a delivery again",
    description = "Same `webhook-id`, a new timestamp and signature, a fresh retry schedule; \
        the attempts so far are kept.",
    params(("id" = String, Path, description = "mer_…"), ("sid" = String, Path, description = "evs_…"), ("did" = String, Path, description = "dlv_…")),
    responses(
        (status = 202, description = "Queued: the delivery, `pending`", body = schema::EventDelivery),
        (status = 404, description = "no such merchant, subscription or delivery, or one the caller may not see (`not_found`)", body = schema::ErrorBody)
    )
)]
async fn replay(
    State(s): State<AppState>,
    p: Principal,
    Path((id, sid, did)): Path<(String, String, String)>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    merchant(&s, &p, &id).await?;
    let v = s
        .engine
        .replay_event_delivery(&id, &sid, &did)
        .await
        .map_err(|e| ApiError::from_engine(e, "event delivery"))?;
    Ok((StatusCode::ACCEPTED, Json(render_delivery(&v))))
}
