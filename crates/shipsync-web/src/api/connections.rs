//! `/api/v1/connections` and their channels.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use shipsync_core::states::RunTrigger;
use shipsync_db::{channels::ChannelRow, connections::ConnectionRow, runs::QueueRun};
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::schema::{self, List};
use super::{Page, Query, body_json, list};
use crate::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::json::{opt_time, time};
use shipsync_engine::StoreSettings;
use shipsync_engine::tokens::StoreAuth;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_connections, create))
        .routes(routes!(show, update, remove))
        .routes(routes!(show_channel, update_channel))
        .routes(routes!(authorize))
        .routes(routes!(run_now))
        .routes(routes!(show_run))
}

/// A connection as answers show it; `public_url` is where stores reach
/// this server (its order webhook URL is built from it).
pub fn render(c: &ConnectionRow, public_url: &str) -> Value {
    let mut store: Value = serde_json::from_str(&c.store_json).unwrap_or_else(|_| json!({}));
    let auth = StoreSettings::parse(c)
        .map(|st| st.auth())
        .unwrap_or(StoreAuth::AccessToken);
    let legacy = auth == StoreAuth::AccessToken;
    let mut shown = json!({
        "type": auth.kind(),
        "client_id": auth.client_id(),
        "connected": if legacy { c.store_token.is_some() } else { c.token_held },
        "expires_at": if legacy { Value::Null } else { opt_time(c.token_expires_at) },
        "scopes": shipsync_engine::Engine::granted_scopes(c),
        "missing_scopes": shipsync_engine::Engine::missing_scopes(c),
    });
    if legacy {
        shown["access_token_set"] = json!(c.store_token.is_some());
    } else {
        shown["client_secret_set"] = json!(c.store_client_secret.is_some());
    }
    if let StoreAuth::AuthorizationCode {
        scopes: Some(asked),
        ..
    } = &auth
    {
        shown["requested_scopes"] = json!(asked);
    }
    if let Some(o) = store.as_object_mut() {
        o.insert("access_token_set".into(), json!(c.store_token.is_some()));
        o.insert("api_secret_set".into(), json!(c.store_api_secret.is_some()));
        o.insert("auth".into(), shown);
    }
    let hooks = &c.order_webhooks;
    json!({
        "id": c.id,
        "name": c.name,
        "merchant_id": c.merchant_id,
        "enabled": c.enabled,
        "order_prefix": c.order_prefix,
        "store": store,
        "store_status": c.store_status,
        "store_error": c.store_error,
        "order_rules": c.order_rules,
        "order_webhooks": {
            "url": format!("{}/webhooks/shopify/{}", public_url.trim_end_matches('/'), c.id),
            "topics": hooks.topics,
            "subscribed": hooks.subscribed,
            "checked_at": opt_time(hooks.checked_at),
            "error": hooks.error,
        },
        "created_at": time(c.created_at),
        "updated_at": time(c.updated_at),
    })
}

/// The connection, when the principal may see its merchant (else 404).
pub async fn load(s: &AppState, p: &Principal, id: &str) -> ApiResult<ConnectionRow> {
    s.engine
        .connection(id)
        .await?
        .filter(|c| p.sees(&c.merchant_id))
        .ok_or_else(|| ApiError::not_found("connection"))
}

/// Filters of `GET /connections`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only this merchant's.
    merchant_id: Option<String>,
    #[serde(flatten)]
    #[param(ignore)]
    page: Page,
}

#[utoipa::path(
    get,
    path = "/connections",
    operation_id = "list_connections",
    tag = "connections",
    summary = "The connections the caller sees",
    params(Page, ListQuery),
    responses(
        (status = 200, description = "A page of connections", body = schema::List<schema::Connection>),
        (status = 400, description = "the query string cannot be read (`malformed`)", body = schema::ErrorBody),
        (status = 422, description = "`limit` out of range (`invalid_field`, naming the field)", body = schema::ErrorBody)
    )
)]
async fn list_connections(
    State(s): State<AppState>,
    p: Principal,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<List<Value>>> {
    let limit = q.page.limit()?;
    let rows = visible(&s, &p, q.merchant_id, q.page.cursor.as_deref(), limit + 1).await?;
    Ok(Json(list(
        rows,
        limit,
        |c| c.id.clone(),
        |c| render(c, &s.config.public_url),
    )))
}

/// The connections a principal sees (of one merchant when `merchant_id`).
pub async fn visible(
    s: &AppState,
    p: &Principal,
    merchant_id: Option<String>,
    cursor: Option<&str>,
    limit: i64,
) -> ApiResult<Vec<ConnectionRow>> {
    Ok(s.engine
        .connections_of(p.narrow(merchant_id).as_deref(), cursor, limit)
        .await?)
}

#[utoipa::path(
    post,
    path = "/connections",
    operation_id = "create_connection",
    tag = "connections",
    summary = "Create a connection (off, with its channels)",
    request_body = schema::ConnectionInput,
    responses(
        (status = 201, description = "The new connection", body = schema::Connection),
        (status = 400, description = "the body (or query string) is not valid JSON, or not an object (`malformed`)", body = schema::ErrorBody),
        (status = 422, description = "a field is missing or wrong (`invalid_field`), the shop URL is not public (`private_target`), or enabling it lacks credentials (`credentials_missing`) (`invalid_field`, naming the field)", body = schema::ErrorBody)
    )
)]
async fn create(
    State(s): State<AppState>,
    p: Principal,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let patch = body_json(&body)?;
    let c = create_connection(&s, &p, patch).await?;
    Ok((StatusCode::CREATED, Json(render(&c, &s.config.public_url))))
}

/// Creates a connection and its channels (off, default schedules).
pub async fn create_connection(
    s: &AppState,
    p: &Principal,
    patch: Value,
) -> ApiResult<ConnectionRow> {
    Ok(s.engine.create_connection(patch, p.caller()).await?)
}

#[utoipa::path(
    get,
    path = "/connections/{id}",
    operation_id = "get_connection",
    tag = "connections",
    summary = "One connection",
    params(("id" = String, Path, description = "con_…")),
    responses(
        (status = 200, description = "The connection", body = schema::Connection),
        (status = 404, description = "no connection with this id, or one the caller may not see (`not_found`)", body = schema::ErrorBody)
    )
)]
async fn show(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(render(
        &load(&s, &p, &id).await?,
        &s.config.public_url,
    )))
}

#[utoipa::path(
    patch,
    path = "/connections/{id}",
    operation_id = "update_connection",
    tag = "connections",
    summary = "Change a connection (JSON merge patch)",
    params(("id" = String, Path, description = "con_…")),
    request_body = schema::ConnectionPatch,
    responses(
        (status = 200, description = "The connection", body = schema::Connection),
        (status = 400, description = "the body (or query string) is not valid JSON, or not an object (`malformed`)", body = schema::ErrorBody),
        (status = 403, description = "a limited caller changed the shop URL (`forbidden`)", body = schema::ErrorBody),
        (status = 404, description = "no connection with this id, or one the caller may not see (`not_found`)", body = schema::ErrorBody),
        (status = 422, description = "a field is wrong (`invalid_field`), the shop URL is not public (`private_target`), or enabling it lacks credentials (`credentials_missing`) (`invalid_field`, naming the field)", body = schema::ErrorBody)
    )
)]
async fn update(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let patch = body_json(&body)?;
    Ok(Json(render(
        &update_connection(&s, &p, &id, patch).await?,
        &s.config.public_url,
    )))
}

/// Applies a JSON merge patch to a connection (the API's PATCH, or the UI's
/// switch turned into one).
pub async fn update_connection(
    s: &AppState,
    p: &Principal,
    id: &str,
    patch: Value,
) -> ApiResult<ConnectionRow> {
    let c = load(s, p, id).await?;
    Ok(s.engine.update_connection(c, patch, p.caller()).await?)
}

/// `POST /connections/{id}/store/authorize`: the install link (with a new
/// single-use state bound to the connection and the caller, 10 minutes).
#[utoipa::path(
    post,
    path = "/connections/{id}/store/authorize",
    operation_id = "authorize_store",
    tag = "connections",
    summary = "The store's install link (authorization_code)",
    params(("id" = String, Path, description = "con_…")),
    responses(
        (status = 200, description = "Send the browser there; Shopify comes back to /connect/shopify/callback", body = schema::AuthorizeLink),
        (status = 404, description = "no connection with this id, or one the caller may not see (`not_found`)", body = schema::ErrorBody),
        (status = 409, description = "the store does not authenticate with authorization_code (`not_authorization_code`)", body = schema::ErrorBody),
        (status = 422, description = "the app's client secret is not set (`credentials_missing`)", body = schema::ErrorBody)
    )
)]
async fn authorize(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<schema::AuthorizeLink>> {
    let authorize_url = authorize_link(&s, &p, &id).await?;
    Ok(Json(schema::AuthorizeLink { authorize_url }))
}

/// Where Shopify sends the browser back after an install.
pub fn callback_url(s: &AppState) -> String {
    format!(
        "{}/connect/shopify/callback",
        s.config.public_url.trim_end_matches('/')
    )
}

/// The install link of connection `id` for `p` (the API's authorize, and
/// the UI's Connect to Shopify button).
pub async fn authorize_link(s: &AppState, p: &Principal, id: &str) -> ApiResult<String> {
    let c = load(s, p, id).await?;
    let user = p.user.as_ref().map(|u| u.id.as_str());
    let auth = StoreSettings::parse(&c).map_err(ApiError::from)?.auth();
    if !matches!(auth, StoreAuth::AuthorizationCode { .. }) {
        return Err(ApiError::conflict(
            "not_authorization_code",
            format!(
                "this connection's store authenticates with {}: set store.auth.type to authorization_code (with the app's client_id and client_secret) to connect it with the install flow",
                auth.kind()
            ),
        ));
    }
    s.engine
        .authorize_url(&c, user, &callback_url(s))
        .await?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "credentials_missing",
                "store.auth.client_secret: give the app's client secret first",
            )
        })
}

#[utoipa::path(
    delete,
    path = "/connections/{id}",
    operation_id = "delete_connection",
    tag = "connections",
    summary = "Delete a connection",
    params(("id" = String, Path, description = "con_…")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "no connection with this id, or one the caller may not see (`not_found`)", body = schema::ErrorBody)
    )
)]
async fn remove(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    load(&s, &p, &id).await?;
    s.engine.delete_connection(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn render_channel(s: &AppState, ch: &ChannelRow) -> ApiResult<Value> {
    let last_run = s.engine.last_run(&ch.connection_id, ch.channel).await?;
    Ok(json!({
        "channel": ch.channel,
        "enabled": ch.enabled,
        "schedules": ch.schedules,
        "last_completed_at": opt_time(ch.last_completed_at),
        "next_run_at": opt_time(ch.next_run_at),
        "last_run": last_run.as_ref().map(shipsync_engine::runs::run_json),
    }))
}

pub async fn load_channel(
    s: &AppState,
    p: &Principal,
    id: &str,
    channel: &str,
) -> ApiResult<ChannelRow> {
    load(s, p, id).await?;
    Ok(s.engine.channel(id, channel).await?)
}

#[utoipa::path(
    get,
    path = "/connections/{id}/channels/{channel}",
    operation_id = "get_channel",
    tag = "connections",
    summary = "One channel of a connection",
    params(schema::ChannelPath),
    responses(
        (status = 200, description = "The channel", body = schema::Channel),
        (status = 404, description = "no connection or channel with this id, or one the caller may not see (`not_found`)", body = schema::ErrorBody)
    )
)]
async fn show_channel(
    State(s): State<AppState>,
    p: Principal,
    Path((id, channel)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let ch = load_channel(&s, &p, &id, &channel).await?;
    Ok(Json(render_channel(&s, &ch).await?))
}

#[utoipa::path(
    patch,
    path = "/connections/{id}/channels/{channel}",
    operation_id = "update_channel",
    tag = "connections",
    summary = "Switch a channel, or set its schedules",
    params(schema::ChannelPath),
    request_body = schema::ChannelPatch,
    responses(
        (status = 200, description = "The channel", body = schema::Channel),
        (status = 400, description = "the body (or query string) is not valid JSON, or not an object (`malformed`)", body = schema::ErrorBody),
        (status = 404, description = "no connection or channel with this id, or one the caller may not see (`not_found`)", body = schema::ErrorBody),
        (status = 422, description = "a field or schedule is wrong (`invalid_field`, naming the field)", body = schema::ErrorBody)
    )
)]
async fn update_channel(
    State(s): State<AppState>,
    p: Principal,
    Path((id, channel)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let patch = body_json(&body)?;
    let ch = patch_channel(&s, &p, &id, &channel, &patch).await?;
    Ok(Json(render_channel(&s, &ch).await?))
}

/// Applies `{"enabled"?, "schedules"?}` to a channel (the API's PATCH, or
/// the UI's switch and schedule dialog).
pub async fn patch_channel(
    s: &AppState,
    p: &Principal,
    id: &str,
    channel: &str,
    patch: &Value,
) -> ApiResult<ChannelRow> {
    let ch = load_channel(s, p, id, channel).await?;
    Ok(s.engine.update_channel(ch, patch).await?)
}

#[utoipa::path(
    post,
    path = "/connections/{id}/channels/{channel}/runs",
    operation_id = "run_channel",
    tag = "connections",
    summary = "Run a channel now",
    params(schema::ChannelPath),
    responses(
        (status = 202, description = "Queued", body = schema::RunQueued),
        (status = 404, description = "no connection or channel with this id, or one the caller may not see (`not_found`)", body = schema::ErrorBody),
        (status = 409, description = "a run is queued or running (`run_in_progress`, with its `run_id`), or the channel or connection is off (`channel_disabled`)", body = schema::ErrorBody)
    )
)]
async fn run_now(
    State(s): State<AppState>,
    p: Principal,
    Path((id, channel)): Path<(String, String)>,
) -> ApiResult<(StatusCode, Json<schema::RunQueued>)> {
    let (id, status) = queue_run(&s, &p, &id, &channel).await?;
    Ok((StatusCode::ACCEPTED, Json(schema::RunQueued { id, status })))
}

/// "Run now": (run id, status) of the queued run.
pub async fn queue_run(
    s: &AppState,
    p: &Principal,
    id: &str,
    channel: &str,
) -> ApiResult<(String, String)> {
    let ch = load_channel(s, p, id, channel).await?;
    match s.engine.run_now(id, ch.channel, RunTrigger::Manual).await {
        Ok(QueueRun::Queued(run)) => Ok((run.id.clone(), run.status.to_string())),
        Ok(QueueRun::InProgress(active)) => {
            let mut e = ApiError::conflict(
                "run_in_progress",
                format!("run {active} of this channel is queued or running; wait for it"),
            );
            e.extra = Some(json!({"run_id": active}));
            Err(e)
        }
        Err(shipsync_engine::EngineError::ChannelDisabled) => Err(ApiError::conflict(
            "channel_disabled",
            "this channel or its connection is disabled: enable both, then run again",
        )),
        Err(e) => Err(e.into()),
    }
}

#[utoipa::path(
    get,
    path = "/connections/{id}/channels/{channel}/runs/{run_id}",
    operation_id = "get_run",
    tag = "connections",
    summary = "One run of a channel",
    params(schema::ChannelPath, ("run_id" = String, Path, description = "run_…")),
    responses(
        (status = 200, description = "The run", body = schema::Run),
        (status = 404, description = "no connection, channel or run with this id, or one the caller may not see (`not_found`)", body = schema::ErrorBody)
    )
)]
async fn show_run(
    State(s): State<AppState>,
    p: Principal,
    Path((id, channel, run_id)): Path<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    let ch = load_channel(&s, &p, &id, &channel).await?;
    let run = s
        .engine
        .channel_run(&id, ch.channel, &run_id)
        .await?
        .ok_or_else(|| ApiError::not_found("run"))?;
    Ok(Json(shipsync_engine::runs::run_json(&run)))
}
