//! `/api/v1/account/tokens`: the caller's own API tokens — listed (never
//! their value), created (the value answered once), revoked (the token
//! answers 401 from the next request on). The administrator token belongs
//! to no user and has no account: 403 `forbidden`.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde_json::{Value, json};
use shipsync_db::users::TokenRow;

use super::body_json;
use crate::AppState;
use crate::auth::{Principal, forbidden};
use crate::error::{ApiError, ApiResult};
use crate::json::{opt_time, time};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/account/tokens", get(list_tokens).post(create))
        .route("/account/tokens/{id}", delete(revoke))
}

pub fn render(t: &TokenRow) -> Value {
    json!({
        "id": t.id,
        "name": t.label,
        "prefix": t.prefix,
        "created_at": time(t.created_at),
        "last_used_at": opt_time(t.last_used_at),
        "expires_at": opt_time(t.expires_at),
    })
}

fn own_user_id(p: &Principal) -> ApiResult<&str> {
    p.user.as_ref().map(|u| u.id.as_str()).ok_or_else(|| {
        forbidden(
            "the administrator token belongs to no user: use a user's token (`shipsync users token EMAIL`) to manage that user's tokens".to_string(),
        )
    })
}

async fn list_tokens(State(s): State<AppState>, p: Principal) -> ApiResult<Json<Value>> {
    let uid = own_user_id(&p)?;
    let tokens = s.engine.db().user_api_tokens(uid).await?;
    Ok(Json(
        json!({"items": tokens.iter().map(render).collect::<Vec<_>>(), "next_cursor": null}),
    ))
}

/// `{"name", "expires_in_days"?}` → 201 with the token's `token`, shown
/// only in this answer.
async fn create(
    State(s): State<AppState>,
    p: Principal,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
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
    let (row, token) =
        shipsync_engine::users::issue_user_token(s.engine.db(), uid, name, days).await?;
    let mut answer = render(&row);
    answer["token"] = Value::String(token);
    Ok((StatusCode::CREATED, Json(answer)))
}

async fn revoke(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let uid = own_user_id(&p)?;
    if s.engine.db().delete_user_api_token(uid, &id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("token"))
    }
}
