//! `/api/v1/users`: web-UI users. Administrators only (403 `forbidden`
//! for Staff and Merchant users).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde_json::{Value, json};
use shipsync_db::users::UserRow;
use shipsync_engine::users::Role;

use super::body_json;
use crate::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::json::time;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/users", get(list_users).post(create))
        .route("/users/{id}", delete(remove))
}

pub fn render(u: &UserRow) -> Value {
    json!({
        "id": u.id,
        "email": u.email,
        "role": u.role,
        "merchant_id": u.merchant_id,
        "created_at": time(u.created_at),
    })
}

async fn list_users(State(s): State<AppState>, p: Principal) -> ApiResult<Json<Value>> {
    p.require_admin()?;
    let users = s.engine.db().list_users().await?;
    Ok(Json(
        json!({"items": users.iter().map(render).collect::<Vec<_>>(), "next_cursor": null}),
    ))
}

async fn create(
    State(s): State<AppState>,
    p: Principal,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    p.require_admin()?;
    let b = body_json(&body)?;
    let text = |k: &str| b.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let role = Role::parse(&text("role"))
        .ok_or_else(|| ApiError::invalid("role", "must be admin, staff or merchant"))?;
    let merchant = text("merchant_id");
    let u = s
        .engine
        .create_user(
            &text("email"),
            &text("password"),
            role,
            Some(merchant.as_str()).filter(|m| !m.is_empty()),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(render(&u))))
}

async fn remove(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    p.require_admin()?;
    if s.engine.db().delete_user(&id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("user"))
    }
}
