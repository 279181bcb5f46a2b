//! Where a merchant's credentials go (`warehouse.api_url`,
//! `warehouse.auth.token_url`, `warehouse.business_unit`, `store.shop_url`):
//! only an unlimited principal may change it, the address must be public
//! unless the operator allows private targets, and a change that does not
//! give the credentials again clears them, so that stored secrets never
//! follow a URL someone else chose.

use axum::http::StatusCode;
use serde_json::Value;

use crate::AppState;
use crate::auth::{Principal, forbidden};
use crate::error::{ApiError, ApiResult};

/// 403 `forbidden` naming the first endpoint field a limited principal
/// tried to change.
pub fn forbid_scoped(p: &Principal, changed: &[&str]) -> ApiResult<()> {
    match changed.first() {
        Some(field) if p.scope().is_some() => Err(forbidden(format!(
            "{field}: your role may not change where credentials are sent (API URL, token URL, \
             business unit, shop URL): ask an Administrator"
        ))),
        _ => Ok(()),
    }
}

/// 422 `private_target` when `url`'s host resolves to a non-public address
/// and the operator has not allowed private targets.
pub async fn check_public(s: &AppState, field: &str, url: &str) -> ApiResult<()> {
    let Ok(parsed) = url::Url::parse(url) else {
        // Not a URL: validation has already answered for that.
        return Ok(());
    };
    shipsync_outbound::check_target(s.engine.config().target_policy(), &parsed)
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "private_target",
                format!("{field}: {e}"),
            )
        })
}

/// Whether the patch gives the secret at `pointer` (a non-empty string).
pub fn gives(patch: &Value, pointer: &str) -> bool {
    patch
        .pointer(pointer)
        .and_then(Value::as_str)
        .is_some_and(|v| !v.trim().is_empty())
}

/// 422 for switching on a connection whose credentials are missing.
pub fn missing_credentials(missing: &str) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "credentials_missing",
        format!(
            "enabled: the connection cannot be enabled until {missing} is given (it is cleared \
             when where it is sent changes)"
        ),
    )
}
