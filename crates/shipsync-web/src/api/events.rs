//! `/api/v1/events`: inbound webhook deliveries, raw, with replay.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Value, json};
use shipsync_core::states::listed;
use shipsync_db::{events::EventFilter, events::EventRow};
use shipsync_engine::Outcome;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::schema::{self, List};
use super::{Page, Query, list};
use crate::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::json::time;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_events))
        .routes(routes!(show))
        .routes(routes!(replay))
}

/// Signature headers are credentials of a kind: shown redacted.
const REDACTED_HEADERS: [&str; 2] = ["webhook-signature", "x-deposco-signature"];

/// Filters of `GET /events` (empty = any).
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    merchant_id: Option<String>,
    #[param(value_type = Option<schema::Outcome>)]
    outcome: Option<String>,
    #[serde(flatten)]
    #[param(ignore)]
    page: Page,
}

pub fn summary(e: &EventRow) -> Value {
    json!({
        "id": e.id,
        "merchant_id": e.merchant_id,
        "connection_id": e.connection_id,
        "received_at": time(e.received_at),
        "verified": e.verified,
        "outcome": e.outcome,
        "detail": e.detail,
        "size": e.body_size,
        "repeat_count": e.repeat_count,
        "webhook_id": e.webhook_id,
        "shipment_ids": e.shipment_ids,
    })
}

#[utoipa::path(
    get,
    path = "/events",
    operation_id = "list_events",
    tag = "events",
    summary = "Inbound webhook deliveries the caller sees",
    params(Page, ListQuery),
    responses(
        (status = 200, description = "A page of events, newest first (no body, no headers)", body = schema::List<schema::EventSummary>),
        (status = 400, description = "the query string cannot be read (`malformed`)", body = schema::ErrorBody),
        (status = 422, description = "`limit` or `outcome` is wrong (`invalid_field`, naming the field)", body = schema::ErrorBody)
    )
)]
async fn list_events(
    State(s): State<AppState>,
    p: Principal,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<List<Value>>> {
    let limit = q.page.limit()?;
    let outcome = match q.outcome.filter(|o| !o.is_empty()) {
        None => None,
        Some(o) => Some(o.parse::<Outcome>().map_err(|_| {
            ApiError::invalid(
                "outcome",
                format!("must be one of {}", listed(Outcome::ALL)),
            )
        })?),
    };
    let filter = EventFilter {
        merchant_ids: p.narrow(q.merchant_id),
        outcome,
    };
    let rows = s
        .engine
        .events(&filter, q.page.cursor.as_deref(), limit + 1)
        .await?;
    Ok(Json(list(rows, limit, |e| e.id.clone(), summary)))
}

/// The event, when the principal may see its merchant (else 404).
pub async fn load(s: &AppState, p: &Principal, id: &str) -> ApiResult<EventRow> {
    s.engine
        .event(id)
        .await?
        .filter(|e| p.sees(&e.merchant_id))
        .ok_or_else(|| ApiError::not_found("event"))
}

#[utoipa::path(
    get,
    path = "/events/{id}",
    operation_id = "get_event",
    tag = "events",
    summary = "One event with its headers and raw body",
    params(("id" = String, Path, description = "evt_…")),
    responses(
        (status = 200, description = "The event", body = schema::Event),
        (status = 404, description = "no event with this id, or one the caller may not see (`not_found`)", body = schema::ErrorBody)
    )
)]
async fn show(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let e = load(&s, &p, &id).await?;
    Ok(Json(raw(&e)))
}

/// The event with its headers (signatures redacted) and body.
pub fn raw(e: &EventRow) -> Value {
    let mut out = summary(e);
    out["headers"] = e
        .headers
        .iter()
        .map(|(k, v)| {
            let v = if REDACTED_HEADERS.contains(&k.to_ascii_lowercase().as_str()) {
                "[redacted]".to_string()
            } else {
                v.clone()
            };
            json!([k, v])
        })
        .collect();
    match &e.body {
        Some(b) => match std::str::from_utf8(b) {
            Ok(text) => {
                out["body"] = json!(text);
                out["body_encoding"] = json!("utf-8");
            }
            Err(_) => {
                out["body"] = json!(base64::engine::general_purpose::STANDARD.encode(b));
                out["body_encoding"] = json!("base64");
            }
        },
        None => out["body"] = Value::Null,
    }
    out
}

#[utoipa::path(
    post,
    path = "/events/{id}/replay",
    operation_id = "replay_event",
    tag = "events",
    summary = "Process the stored delivery again",
    params(("id" = String, Path, description = "evt_…")),
    responses(
        (status = 202, description = "Queued", body = schema::Replayed),
        (status = 404, description = "no event with this id, or one the caller may not see (`not_found`)", body = schema::ErrorBody),
        (status = 409, description = "the event cannot be replayed (`conflict`)", body = schema::ErrorBody)
    )
)]
async fn replay(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<schema::Replayed>)> {
    load(&s, &p, &id).await?;
    s.engine
        .replay_event(&id)
        .await
        .map_err(|e| ApiError::from_engine(e, "event"))?;
    let e = s
        .engine
        .event(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("event"))?;
    Ok((
        StatusCode::ACCEPTED,
        Json(schema::Replayed {
            status: "queued".into(),
            event: summary(&e),
        }),
    ))
}
