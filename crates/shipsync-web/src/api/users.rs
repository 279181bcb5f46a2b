//! `/api/v1/users`: web-UI users. Administrators only (403 `forbidden`
//! for Staff and Merchant users).
//!
//! Which merchants a user sees: `merchant_id` is a Merchant user's merchant;
//! `all_merchants` (true/false) whether a Staff user sees every merchant,
//! else `merchant_ids` the merchants they are limited to (empty: none).
//! `all_merchants` left out: true for a new Staff user given no merchant;
//! on PATCH, kept, and false once merchants are listed — removing a limited
//! user's last merchant never widens their access. For compatibility a Staff user limited to exactly one merchant also shows
//! it as `merchant_id`, and `merchant_id` is accepted for Staff as a
//! one-merchant limit.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::Value;
use shipsync_db::users::UserRow;
use shipsync_engine::users::Role;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::body_json;
use super::schema::{self, List};
use crate::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::json::time;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_users, create))
        .routes(routes!(show, update, remove))
}

/// A user's merchants as the engine takes them: a Staff user's limit, or a
/// Merchant user's own merchant.
pub fn merchants(u: &UserRow) -> Vec<String> {
    if u.role == Role::Staff {
        u.merchant_ids.clone()
    } else {
        u.merchant_id.iter().cloned().collect()
    }
}

pub fn render(u: &UserRow) -> schema::User {
    let merchant_id = match (u.role, u.merchant_ids.as_slice()) {
        (Role::Staff, [one]) => Some(one.clone()),
        _ => u.merchant_id.clone(),
    };
    schema::User {
        id: u.id.clone(),
        email: u.email.clone(),
        role: u.role.to_string(),
        merchant_id,
        merchant_ids: merchants(u),
        all_merchants: match u.role {
            Role::Admin => true,
            Role::Staff => u.all_merchants,
            Role::Merchant => false,
        },
        created_at: time(u.created_at),
    }
}

/// The merchants of a user document: `merchant_id` and `merchant_ids`
/// together (`None` when the body has neither).
pub fn merchants_of(b: &Value) -> ApiResult<Option<Vec<String>>> {
    let mut out = Vec::new();
    let mut given = false;
    match b.get("merchant_id") {
        None => {}
        Some(Value::Null) => given = true,
        Some(Value::String(m)) => {
            given = true;
            out.push(m.clone());
        }
        Some(_) => return Err(ApiError::invalid("merchant_id", "must be a string (mer_…)")),
    }
    match b.get("merchant_ids") {
        None => {}
        Some(Value::Null) => given = true,
        Some(Value::Array(list)) => {
            given = true;
            for m in list {
                let m = m.as_str().ok_or_else(|| {
                    ApiError::invalid("merchant_ids", "must be an array of merchant ids (mer_…)")
                })?;
                out.push(m.to_string());
            }
        }
        Some(_) => {
            return Err(ApiError::invalid(
                "merchant_ids",
                "must be an array of merchant ids (mer_…)",
            ));
        }
    }
    Ok(given.then_some(out))
}

/// `all_merchants` of a user document (None when left out or null).
fn all_merchants_of(b: &Value) -> ApiResult<Option<bool>> {
    match b.get("all_merchants") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(a)) => Ok(Some(*a)),
        Some(_) => Err(ApiError::invalid("all_merchants", "must be true or false")),
    }
}

fn role_of(b: &Value) -> ApiResult<Option<Role>> {
    match b.get("role") {
        None => Ok(None),
        Some(r) => r
            .as_str()
            .and_then(|r| r.parse().ok())
            .map(Some)
            .ok_or_else(|| ApiError::invalid("role", "must be admin, staff or merchant")),
    }
}

#[utoipa::path(
    get,
    path = "/users",
    operation_id = "list_users",
    tag = "users",
    summary = "Every user (one page)",
    responses(
        (status = 200, description = "The users; `next_cursor` is always null", body = schema::List<schema::User>),
        (status = 403, description = "the caller is not an Administrator (`forbidden`)", body = schema::ErrorBody)
    )
)]
async fn list_users(
    State(s): State<AppState>,
    p: Principal,
) -> ApiResult<Json<List<schema::User>>> {
    p.require_admin()?;
    let users = s.engine.users().await?;
    Ok(Json(List {
        items: users.iter().map(render).collect(),
        next_cursor: None,
    }))
}

#[utoipa::path(
    post,
    path = "/users",
    operation_id = "create_user",
    tag = "users",
    summary = "Create a user",
    request_body = schema::UserInput,
    responses(
        (status = 201, description = "The new user", body = schema::User),
        (status = 400, description = "the body (or query string) is not valid JSON, or not an object (`malformed`)", body = schema::ErrorBody),
        (status = 403, description = "the caller is not an Administrator (`forbidden`)", body = schema::ErrorBody),
        (status = 409, description = "a user with this email exists (`conflict`)", body = schema::ErrorBody),
        (status = 422, description = "a field is missing or wrong (`invalid_field`, naming the field)", body = schema::ErrorBody)
    )
)]
async fn create(
    State(s): State<AppState>,
    p: Principal,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<schema::User>)> {
    p.require_admin()?;
    let b = body_json(&body)?;
    let text = |k: &str| b.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let role = role_of(&b)?
        .ok_or_else(|| ApiError::invalid("role", "must be admin, staff or merchant"))?;
    let merchants = merchants_of(&b)?.unwrap_or_default();
    let u = s
        .engine
        .add_user(
            &text("email"),
            &text("password"),
            role,
            &merchants,
            all_merchants_of(&b)?,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(render(&u))))
}

async fn load(s: &AppState, id: &str) -> ApiResult<UserRow> {
    s.engine
        .user(id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))
}

#[utoipa::path(
    get,
    path = "/users/{id}",
    operation_id = "get_user",
    tag = "users",
    summary = "One user",
    params(("id" = String, Path, description = "usr_…")),
    responses(
        (status = 200, description = "The user", body = schema::User),
        (status = 403, description = "the caller is not an Administrator (`forbidden`)", body = schema::ErrorBody),
        (status = 404, description = "no user with this id, or one the caller may not see (`not_found`)", body = schema::ErrorBody)
    )
)]
async fn show(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<schema::User>> {
    p.require_admin()?;
    Ok(Json(render(&load(&s, &id).await?)))
}

/// `role`, `merchant_id`, `merchant_ids` and `all_merchants` (omitted:
/// unchanged; the merchants are replaced as a whole when either is given).
#[utoipa::path(
    patch,
    path = "/users/{id}",
    operation_id = "update_user",
    tag = "users",
    summary = "Change a user's role or merchants",
    params(("id" = String, Path, description = "usr_…")),
    request_body = schema::UserPatch,
    responses(
        (status = 200, description = "The user", body = schema::User),
        (status = 400, description = "the body (or query string) is not valid JSON, or not an object (`malformed`)", body = schema::ErrorBody),
        (status = 403, description = "the caller is not an Administrator (`forbidden`)", body = schema::ErrorBody),
        (status = 404, description = "no user with this id, or one the caller may not see (`not_found`)", body = schema::ErrorBody),
        (status = 422, description = "a field is wrong, or cannot be changed here (`invalid_field`, naming the field)", body = schema::ErrorBody)
    )
)]
async fn update(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<schema::User>> {
    p.require_admin()?;
    let b = body_json(&body)?;
    for k in b.as_object().into_iter().flat_map(|o| o.keys()) {
        if ![
            "role",
            "merchant_id",
            "merchant_ids",
            "all_merchants",
            "id",
            "created_at",
        ]
        .contains(&k.as_str())
        {
            return Err(ApiError::invalid(
                k,
                "cannot be changed here (only role, merchant_id, merchant_ids and all_merchants)",
            ));
        }
    }
    let u = load(&s, &id).await?;
    let role = role_of(&b)?.unwrap_or(u.role);
    let merchants = match merchants_of(&b)? {
        Some(m) => m,
        None if role == u.role => merchants(&u),
        None => Vec::new(),
    };
    let u = s
        .engine
        .update_user_access(&id, role, &merchants, all_merchants_of(&b)?)
        .await
        .map_err(|e| ApiError::from_engine(e, "user"))?;
    Ok(Json(render(&u)))
}

#[utoipa::path(
    delete,
    path = "/users/{id}",
    operation_id = "delete_user",
    tag = "users",
    summary = "Delete a user",
    params(("id" = String, Path, description = "usr_…")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "the caller is not an Administrator (`forbidden`)", body = schema::ErrorBody),
        (status = 404, description = "no user with this id, or one the caller may not see (`not_found`)", body = schema::ErrorBody)
    )
)]
async fn remove(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    p.require_admin()?;
    if s.engine.delete_user(&id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("user"))
    }
}
