//! `/api/v1`: bearer-token JSON API.

pub(crate) mod account;
pub(crate) mod connections;
pub(crate) mod events;
pub(crate) mod merchants;
pub(crate) mod orders;
pub(crate) mod shipments;
mod targets;
pub(crate) mod users;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};

pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .merge(merchants::routes())
        .merge(connections::routes())
        .merge(shipments::routes())
        .merge(orders::routes())
        .merge(events::routes())
        .merge(users::routes())
        .merge(account::routes())
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such API endpoint")
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this endpoint does not take this HTTP method (see docs/contract.md)",
            )
        })
        .layer(middleware::from_fn_with_state(state, authenticate))
}

async fn authenticate(
    State(s): State<AppState>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .unwrap_or("");
    let unauthorized = || {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or invalid bearer token: send Authorization: Bearer <token>",
        )
    };
    if token.is_empty() {
        return Err(unauthorized());
    }
    let client = crate::client::of(req.extensions(), req.headers(), &s);
    s.throttle
        .bearer_check(client)
        .map_err(ApiError::too_many_attempts)?;
    let admin_ok = s.config.admin_token.as_deref().is_some_and(|a| {
        a.len() == token.len() && bool::from(a.as_bytes().ct_eq(token.as_bytes()))
    });
    let principal = if admin_ok {
        Principal::admin_token()
    } else {
        let hash = shipsync_engine::secrets::hash_token(token);
        match s.engine.db().api_token_user(&hash).await? {
            None => {
                s.throttle.bearer_failed(client);
                return Err(unauthorized());
            }
            Some(None) => Principal::admin_token(),
            Some(Some(user)) => Principal::from_user(user),
        }
    };
    req.extensions_mut().insert(principal);
    Ok(next.run(req).await)
}

/// `axum::extract::Query` whose rejection is a JSON 400 in the API's error
/// shape (axum's own answers in plain text).
pub struct Query<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for Query<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Query(q.0))
            .map_err(|e| {
                ApiError::bad_request(format!(
                    "the query string cannot be read: {}",
                    e.body_text()
                ))
            })
    }
}

/// `cursor` and `limit` of list endpoints.
#[derive(Debug, Deserialize, Default)]
pub struct Page {
    pub cursor: Option<String>,
    pub limit: Option<String>,
}

impl Page {
    pub fn limit(&self) -> ApiResult<i64> {
        match self.limit.as_deref() {
            None | Some("") => Ok(50),
            Some(l) => match l.parse::<i64>() {
                Ok(n) if (1..=500).contains(&n) => Ok(n),
                Ok(_) => Err(ApiError::invalid("limit", "must be between 1 and 500")),
                Err(_) => Err(ApiError::invalid("limit", "must be a whole number")),
            },
        }
    }
}

/// `{"items": […], "next_cursor": …}` from rows fetched with `limit + 1`.
pub fn list<T>(
    mut rows: Vec<T>,
    limit: i64,
    id: impl Fn(&T) -> String,
    render: impl Fn(&T) -> serde_json::Value,
) -> serde_json::Value {
    let limit = usize::try_from(limit).unwrap_or(50);
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next = if more { rows.last().map(&id) } else { None };
    serde_json::json!({ "items": rows.iter().map(render).collect::<Vec<_>>(), "next_cursor": next })
}

/// A JSON body, with a 400 that says what is wrong.
pub fn body_json(bytes: &[u8]) -> ApiResult<serde_json::Value> {
    let v: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}")))?;
    if !v.is_object() {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    }
    Ok(v)
}
