//! Web-UI users: Argon2id password hashes, roles, sessions. The rules
//! (email shape, password length, which role needs a merchant) live here so
//! that the CLI, the UI and the API apply the same ones.

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Argon2, PasswordHash};
use shipsync_db::users::UserRow;
use shipsync_db::{Db, new_id, now_micros};

use crate::secrets::{hash_token, random_token};
use crate::{Engine, EngineError};

pub const MIN_PASSWORD_CHARS: usize = 12;
/// A session lasts this long after sign-in.
pub const SESSION_MICROS: i64 = 12 * 3600 * 1_000_000;

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Everything, including users.
    Admin,
    /// Everything but users; optionally limited to one merchant.
    Staff,
    /// Only its own merchant's data.
    Merchant,
}

impl Role {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "admin" => Some(Self::Admin),
            "staff" => Some(Self::Staff),
            "merchant" => Some(Self::Merchant),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Staff => "staff",
            Self::Merchant => "merchant",
        }
    }

    /// The name the UI shows.
    pub fn label(self) -> &'static str {
        match self {
            Self::Admin => "Administrator",
            Self::Staff => "Staff",
            Self::Merchant => "Merchant",
        }
    }
}

fn invalid(field: &'static str, message: impl Into<String>) -> EngineError {
    EngineError::Invalid {
        field,
        message: message.into(),
    }
}

/// An Argon2id hash (default parameters, random salt) in PHC format.
pub fn hash_password(password: &str) -> Result<String, EngineError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| EngineError::Internal(format!("password hashing: {e}")))
}

/// Constant-time check of a password against a stored PHC hash.
pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Checks the rules for a new user's fields; returns the normalised email.
pub fn check_new_user(
    email: &str,
    password: &str,
    role: Role,
    merchant_id: Option<&str>,
) -> Result<String, EngineError> {
    let email = email.trim().to_lowercase();
    let valid = email.len() <= 254
        && email
            .split_once('@')
            .is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !d.starts_with('.'))
        && !email.chars().any(char::is_whitespace);
    if !valid {
        return Err(invalid(
            "email",
            "must be an email address such as ops@example.com",
        ));
    }
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(invalid(
            "password",
            format!("must be at least {MIN_PASSWORD_CHARS} characters"),
        ));
    }
    if role == Role::Merchant && merchant_id.is_none_or(str::is_empty) {
        return Err(invalid(
            "merchant_id",
            "a Merchant user needs the merchant it belongs to (mer_…)",
        ));
    }
    if role == Role::Admin && merchant_id.is_some_and(|m| !m.is_empty()) {
        return Err(invalid(
            "merchant_id",
            "an Administrator sees every merchant: leave it out",
        ));
    }
    Ok(email)
}

/// Creates a user after checking the rules; the merchant must exist. (The
/// CLI calls this without an engine.)
pub async fn create_user(
    db: &Db,
    email: &str,
    password: &str,
    role: Role,
    merchant_id: Option<&str>,
) -> Result<UserRow, EngineError> {
    let email = check_new_user(email, password, role, merchant_id)?;
    let merchant_id = merchant_id.filter(|m| !m.is_empty()).map(str::to_string);
    if let Some(m) = &merchant_id
        && db.get_merchant(m).await?.is_none()
    {
        return Err(invalid(
            "merchant_id",
            format!("{m} names no merchant: see the Merchants page or GET /api/v1/merchants"),
        ));
    }
    let now = now_micros();
    let user = UserRow {
        id: new_id("usr"),
        email,
        password_hash: hash_password(password)?,
        role: role.as_str().into(),
        merchant_id,
        created_at: now,
        updated_at: now,
    };
    if !db.insert_user(&user).await? {
        return Err(invalid("email", "a user with this email exists already"));
    }
    Ok(user)
}

impl Engine {
    pub async fn create_user(
        &self,
        email: &str,
        password: &str,
        role: Role,
        merchant_id: Option<&str>,
    ) -> Result<UserRow, EngineError> {
        create_user(self.db(), email, password, role, merchant_id).await
    }

    /// Checks an email and password; the user on success. Hashes even for
    /// an unknown email so that timing does not tell which emails exist.
    pub async fn sign_in(
        &self,
        email: &str,
        password: &str,
    ) -> Result<Option<UserRow>, EngineError> {
        let email = email.trim().to_lowercase();
        let user = self.db().user_by_email(&email).await?;
        let ok = match &user {
            Some(u) => verify_password(password, &u.password_hash),
            None => {
                let _ = hash_password(password);
                false
            }
        };
        Ok(user.filter(|_| ok))
    }

    /// Starts a session: (session token for the cookie, CSRF token).
    pub async fn start_session(&self, user_id: &str) -> Result<(String, String), EngineError> {
        let token = random_token("ses");
        let csrf = random_token("csrf");
        self.db()
            .insert_session(
                &hash_token(&token),
                user_id,
                &csrf,
                now_micros() + SESSION_MICROS,
            )
            .await?;
        Ok((token, csrf))
    }

    /// The user and CSRF token of a session cookie's value.
    pub async fn session(&self, token: &str) -> Result<Option<(UserRow, String)>, EngineError> {
        Ok(self.db().session_user(&hash_token(token)).await?)
    }

    pub async fn end_session(&self, token: &str) -> Result<(), EngineError> {
        Ok(self.db().delete_session(&hash_token(token)).await?)
    }

    /// A new API token acting as `user_id`; its value is returned once.
    pub async fn create_user_token(
        &self,
        user_id: &str,
        label: &str,
    ) -> Result<String, EngineError> {
        let label = label.trim();
        if label.is_empty() || label.chars().count() > 100 {
            return Err(invalid("label", "is required (at most 100 characters)"));
        }
        let token = random_token("sst");
        self.db()
            .insert_user_api_token(&hash_token(&token), label, user_id)
            .await?;
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_and_verify() {
        let h = hash_password("correct horse battery").expect("hash");
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify_password("correct horse battery", &h));
        assert!(!verify_password("correct horse batterz", &h));
        assert!(!verify_password("x", "not a hash"));
    }

    #[test]
    fn new_user_rules() {
        let ok = check_new_user(" Ops@Example.com ", "twelve chars!", Role::Admin, None);
        assert_eq!(ok.ok().as_deref(), Some("ops@example.com"));
        let field = |r: Result<String, EngineError>| match r {
            Err(EngineError::Invalid { field, .. }) => field,
            other => panic!("expected Invalid, got {other:?}"),
        };
        assert_eq!(
            field(check_new_user("nope", "twelve chars!", Role::Admin, None)),
            "email"
        );
        assert_eq!(
            field(check_new_user("a@b.co", "short", Role::Admin, None)),
            "password"
        );
        assert_eq!(
            field(check_new_user(
                "a@b.co",
                "twelve chars!",
                Role::Merchant,
                None
            )),
            "merchant_id"
        );
        assert_eq!(
            field(check_new_user(
                "a@b.co",
                "twelve chars!",
                Role::Admin,
                Some("mer_1")
            )),
            "merchant_id"
        );
        assert!(check_new_user("a@b.co", "twelve chars!", Role::Staff, Some("mer_1")).is_ok());
    }
}
