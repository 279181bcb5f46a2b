//! `/api/v1/account/tokens`: the caller's own API tokens — listed (never
//! their value), created (the value answered once), revoked (the token
//! answers 401 from the next request on). The administrator token belongs
//! to no user and has no account: 403 `forbidden`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::Value;
use shipsync_db::api_tokens::TokenRow;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::body_json;
use super::schema::{self, List};
use crate::AppState;
use crate::auth::{Principal, forbidden};
use crate::error::{ApiError, ApiResult};
use crate::json::time;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_tokens, create))
        .routes(routes!(revoke))
}

pub fn render(t: &TokenRow) -> schema::Token {
    schema::Token {
        id: t.id.clone(),
        name: t.label.clone(),
        prefix: t.prefix.clone(),
        created_at: time(t.created_at),
        last_used_at: t.last_used_at.map(time),
        expires_at: t.expires_at.map(time),
    }
}

fn own_user_id(p: &Principal) -> ApiResult<&str> {
    p.user.as_ref().map(|u| u.id.as_str()).ok_or_else(|| {
        forbidden(
            "the administrator token belongs to no user: use a user's token (`shipsync users token EMAIL`) to manage that user's tokens".to_string(),
        )
    })
}

#[utoipa::path(
    get,
    path = "/account/tokens",
    operation_id = "list_tokens",
    tag = "account",
    summary = "The caller's API tokens",
    responses(
        (status = 200, description = "The tokens (never their value); `next_cursor` is always null", body = schema::List<schema::Token>),
        (status = 403, description = "the administrator token belongs to no user (`forbidden`)", body = schema::ErrorBody)
    )
)]
async fn list_tokens(
    State(s): State<AppState>,
    p: Principal,
) -> ApiResult<Json<List<schema::Token>>> {
    let uid = own_user_id(&p)?;
    let tokens = s.engine.user_tokens(uid).await?;
    Ok(Json(List {
        items: tokens.iter().map(render).collect(),
        next_cursor: None,
    }))
}

/// `{"name", "expires_in_days"?}` → 201 with the token's `token`, shown
/// only in this answer.
#[utoipa::path(
    post,
    path = "/account/tokens",
    operation_id = "create_token",
    tag = "account",
    summary = "Create an API token for the caller",
    request_body = schema::TokenInput,
    responses(
        (status = 201, description = "The token, with its value shown this once", body = schema::NewToken),
        (status = 400, description = "the body (or query string) is not valid JSON, or not an object (`malformed`)", body = schema::ErrorBody),
        (status = 403, description = "the administrator token belongs to no user (`forbidden`)", body = schema::ErrorBody),
        (status = 422, description = "`name` or `expires_in_days` is wrong (`invalid_field`, naming the field)", body = schema::ErrorBody)
    )
)]
async fn create(
    State(s): State<AppState>,
    p: Principal,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<schema::NewToken>)> {
    let uid = own_user_id(&p)?;
    let b = body_json(&body)?;
    let name = match b.get("name") {
        Some(Value::String(n)) => n.as_str(),
        None | Some(Value::Null) => "",
        Some(_) => return Err(ApiError::invalid("name", "must be a string")),
    };
    let days = match b.get("expires_in_days") {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_i64().ok_or_else(|| {
            ApiError::invalid("expires_in_days", "must be a whole number of days")
        })?),
    };
    let (row, token) = s.engine.issue_token(uid, name, days).await?;
    Ok((
        StatusCode::CREATED,
        Json(schema::NewToken {
            token: render(&row),
            value: token,
        }),
    ))
}

#[utoipa::path(
    delete,
    path = "/account/tokens/{id}",
    operation_id = "revoke_token",
    tag = "account",
    summary = "Revoke one of the caller's tokens",
    params(("id" = String, Path, description = "tok_…")),
    responses(
        (status = 204, description = "Revoked: the token answers 401 from the next request on"),
        (status = 403, description = "the administrator token belongs to no user (`forbidden`)", body = schema::ErrorBody),
        (status = 404, description = "no token with this id, or one the caller may not see (`not_found`)", body = schema::ErrorBody)
    )
)]
async fn revoke(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let uid = own_user_id(&p)?;
    if s.engine.revoke_token(uid, &id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("token"))
    }
}
