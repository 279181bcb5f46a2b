//! Who is calling, and what they may see. The API's bearer tokens and the
//! UI's session cookies both end in a [`Principal`]; every handler asks it
//! before reading or changing a tenant's data.

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use shipsync_db::users::UserRow;
use shipsync_engine::edit::Caller;
use shipsync_engine::users::Role;

use crate::error::{ApiError, ApiResult};

#[derive(Debug, Clone)]
pub struct Principal {
    /// None for an administrator token.
    pub user: Option<UserRow>,
    pub role: Role,
    /// The merchants this principal is limited to (None: all; empty: none,
    /// a Merchant user whose merchant is missing).
    scope: Option<Vec<String>>,
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
        // (An unknown role string never gets here: the row does not load.)
        let role = user.role;
        let scope = match role {
            Role::Admin => None,
            // Only the explicit flag means every merchant: a limited Staff
            // user whose last merchant was removed sees none.
            Role::Staff if user.all_merchants => None,
            Role::Staff => Some(user.merchant_ids.clone()),
            Role::Merchant => Some(
                user.merchant_id
                    .iter()
                    .filter(|m| !m.is_empty())
                    .cloned()
                    .collect(),
            ),
        };
        Self {
            user: Some(user),
            role,
            scope,
        }
    }

    /// The merchants this principal is limited to, if any.
    pub fn scope(&self) -> Option<&[String]> {
        self.scope.as_deref()
    }

    /// What the engine is told of this principal's reach.
    pub fn caller(&self) -> Caller<'_> {
        Caller::new(self.scope())
    }

    /// May this principal see the merchant's data?
    pub fn sees(&self, merchant_id: &str) -> bool {
        self.scope
            .as_ref()
            .is_none_or(|s| s.iter().any(|m| m == merchant_id))
    }

    /// Like [`Self::sees`], as the 404 a hidden tenant's id gets.
    pub fn check(&self, merchant_id: &str, what: &str) -> ApiResult<()> {
        if self.sees(merchant_id) {
            Ok(())
        } else {
            Err(ApiError::not_found(what))
        }
    }

    /// The merchants a list may show when the caller asks for one merchant
    /// (or none): `None` any, an empty set none (the asked merchant is
    /// hidden).
    pub fn narrow(&self, asked: Option<String>) -> Option<Vec<String>> {
        match asked.filter(|m| !m.is_empty()) {
            Some(a) if self.sees(&a) => Some(vec![a]),
            Some(_) => Some(Vec::new()),
            None => self.scope.clone(),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn user(role: &str, merchant_id: Option<&str>, merchant_ids: &[&str]) -> Principal {
        user_all(role, merchant_id, merchant_ids, false)
    }

    fn user_all(
        role: &str,
        merchant_id: Option<&str>,
        merchant_ids: &[&str],
        all_merchants: bool,
    ) -> Principal {
        Principal::from_user(UserRow {
            id: "usr_1".into(),
            email: "a@b.co".into(),
            password_hash: String::new(),
            role: role.parse().expect("a role"),
            merchant_id: merchant_id.map(str::to_string),
            created_at: 0,
            updated_at: 0,
            all_merchants,
            merchant_ids: merchant_ids.iter().map(|m| m.to_string()).collect(),
        })
    }

    #[test]
    fn scopes_by_role() {
        let limited = user("staff", None, &["mer_a", "mer_b"]);
        assert!(limited.sees("mer_a") && limited.sees("mer_b") && !limited.sees("mer_c"));
        assert_eq!(
            limited.narrow(None),
            Some(vec!["mer_a".into(), "mer_b".into()])
        );
        assert_eq!(
            limited.narrow(Some("mer_b".into())),
            Some(vec!["mer_b".into()])
        );
        assert_eq!(limited.narrow(Some("mer_c".into())), Some(vec![]));
        assert!(limited.require_unscoped("create merchants").is_err());

        let all = user_all("staff", None, &[], true);
        assert!(all.sees("mer_c") && all.scope().is_none());
        // A limited Staff user without merchants sees none, not all.
        let emptied = user("staff", None, &[]);
        assert!(!emptied.sees("mer_c"));
        assert_eq!(emptied.narrow(None), Some(vec![]));
        assert!(emptied.require_unscoped("create merchants").is_err());
        assert_eq!(all.narrow(Some(String::new())), None);
        assert_eq!(all.narrow(Some("mer_c".into())), Some(vec!["mer_c".into()]));

        let brand = user("merchant", Some("mer_a"), &[]);
        assert!(brand.sees("mer_a") && !brand.sees("mer_b"));
        // A Merchant user without a merchant sees nothing, never everything.
        let orphan = user("merchant", None, &[]);
        assert!(!orphan.sees("mer_a"));
        assert_eq!(orphan.narrow(None), Some(vec![]));
        // An unknown role gets the narrowest rights.
        // An unknown role is no role: a user row holding one does not load.
        assert!("owner".parse::<Role>().is_err());
    }
}
