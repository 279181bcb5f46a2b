//! Who is calling, and what they may see. The API's bearer tokens and the
//! UI's session cookies both end in a [`Principal`]; every handler asks it
//! before reading or changing a tenant's data.

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use shipsync_db::users::UserRow;
use shipsync_engine::users::Role;

use crate::error::{ApiError, ApiResult};

/// Matches no merchant id: the scope of a Merchant user whose merchant is
/// missing (never "any").
const NO_MERCHANT: &str = "mer_none";

#[derive(Debug, Clone)]
pub struct Principal {
    /// None for an administrator token.
    pub user: Option<UserRow>,
    pub role: Role,
    /// The one merchant this principal is limited to (None: all).
    scope: Option<String>,
}

impl Principal {
    /// `SHIPSYNC_ADMIN_TOKEN`, the generated token, or one from the CLI.
    pub fn admin_token() -> Self {
        Self {
            user: None,
            role: Role::Admin,
            scope: None,
        }
    }

    pub fn from_user(user: UserRow) -> Self {
        // An unknown role string gets the narrowest rights.
        let role = Role::parse(&user.role).unwrap_or(Role::Merchant);
        let scope = match role {
            Role::Admin => None,
            Role::Staff => user.merchant_id.clone().filter(|m| !m.is_empty()),
            Role::Merchant => Some(
                user.merchant_id
                    .clone()
                    .filter(|m| !m.is_empty())
                    .unwrap_or_else(|| NO_MERCHANT.into()),
            ),
        };
        Self {
            user: Some(user),
            role,
            scope,
        }
    }

    /// The merchant this principal is limited to, if any.
    pub fn scope(&self) -> Option<&str> {
        self.scope.as_deref()
    }

    /// May this principal see the merchant's data?
    pub fn sees(&self, merchant_id: &str) -> bool {
        self.scope.as_deref().is_none_or(|m| m == merchant_id)
    }

    /// Like [`Self::sees`], as the 404 a hidden tenant's id gets.
    pub fn check(&self, merchant_id: &str, what: &str) -> ApiResult<()> {
        if self.sees(merchant_id) {
            Ok(())
        } else {
            Err(ApiError::not_found(what))
        }
    }

    /// The merchant filter of a list: `Ok(filter)` to apply, `Err(())` when
    /// the asked merchant is hidden (the list is empty).
    #[allow(clippy::result_unit_err)]
    pub fn narrow(&self, asked: Option<String>) -> Result<Option<String>, ()> {
        let asked = asked.filter(|m| !m.is_empty());
        match (&self.scope, asked) {
            (None, asked) => Ok(asked),
            (Some(m), None) => Ok(Some(m.clone())),
            (Some(m), Some(a)) if *m == a => Ok(Some(a)),
            (Some(_), Some(_)) => Err(()),
        }
    }

    /// Only an unscoped principal (Administrator, or Staff for all
    /// merchants) may create or delete merchants.
    pub fn require_unscoped(&self, doing: &str) -> ApiResult<()> {
        if self.scope.is_none() {
            Ok(())
        } else {
            Err(forbidden(format!(
                "your role may not {doing}: ask an administrator"
            )))
        }
    }

    /// Only Administrators manage users.
    pub fn require_admin(&self) -> ApiResult<()> {
        if self.role == Role::Admin {
            Ok(())
        } else {
            Err(forbidden(
                "only an Administrator may manage users: ask one to do it".to_string(),
            ))
        }
    }
}

pub fn forbidden(message: String) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
}

/// Handlers take the principal the authentication layer put in the request.
impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Principal>().cloned().ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "missing or invalid bearer token: send Authorization: Bearer <token>",
            )
        })
    }
}
