//! Web-UI users: Argon2id password hashes, roles, sessions. The rules
//! (email shape, password length, which role needs a merchant) live here so
//! that the CLI, the UI and the API apply the same ones.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Argon2, PasswordHash};
use shipsync_db::api_tokens::{self, TokenRow};
use shipsync_db::users::{self as db_users, UserRow};
use shipsync_db::{Db, merchants, new_id, now_micros, sessions};
use tokio::sync::Semaphore;

use crate::secrets::{hash_token, random_token};
use crate::{Engine, EngineError};

pub const MIN_PASSWORD_CHARS: usize = 12;
/// A session lasts this long after sign-in.
pub const SESSION_MICROS: i64 = 12 * 3600 * 1_000_000;

pub use shipsync_core::states::Role;

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

/// A hash of a random password nobody knows: an unknown email's sign-in is
/// checked against it, so it costs the same time as a known one's.
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| {
    // Hashing with the default parameters and a fresh salt cannot fail.
    hash_password(&random_token("dummy")).expect("an Argon2id hash of a random password")
});

/// Argon2id work (a sign-in's check, a new password's hash): some 19 MiB
/// and tens of milliseconds of one core each, so it runs on blocking
/// threads, at most one per core at once (else a few hundred sign-ins a
/// second would stall every route on the async runtime). A request that
/// cannot start within [`PASSWORD_WAIT`] is refused (503 + `Retry-After`).
#[derive(Clone)]
pub struct PasswordWork {
    permits: Arc<Semaphore>,
    workers: usize,
    wait: Duration,
}

/// How long a sign-in may wait for a free core before it is refused.
pub const PASSWORD_WAIT: Duration = Duration::from_secs(2);

impl PasswordWork {
    /// One worker per core ([`std::thread::available_parallelism`]).
    pub fn sized_to_cores() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        Self::new(cores, PASSWORD_WAIT)
    }

    pub fn new(workers: usize, wait: Duration) -> Self {
        let workers = workers.max(1);
        Self {
            permits: Arc::new(Semaphore::new(workers)),
            workers,
            wait,
        }
    }

    /// Checks and hashes running now.
    pub fn busy(&self) -> usize {
        self.workers - self.permits.available_permits()
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, EngineError> {
        let permit = tokio::time::timeout(self.wait, Arc::clone(&self.permits).acquire_owned())
            .await
            .ok()
            .and_then(Result::ok)
            .ok_or_else(|| EngineError::Retry {
                message: "too many sign-ins are being checked at once; retry in a few seconds"
                    .into(),
                after: None,
            })?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work()
        })
        .await
        .map_err(|e| EngineError::Internal(format!("password work: {e}")))
    }

    /// [`hash_password`] on a blocking thread.
    pub async fn hash(&self, password: &str) -> Result<String, EngineError> {
        let password = password.to_string();
        self.run(move || hash_password(&password)).await?
    }

    /// [`verify_password`] on a blocking thread; `None` (an unknown user)
    /// checks against a dummy hash and is false, in the same time.
    pub async fn verify(&self, password: &str, phc: Option<&str>) -> Result<bool, EngineError> {
        let password = password.to_string();
        let phc = phc.map(str::to_string);
        self.run(move || match phc {
            Some(phc) => verify_password(&password, &phc),
            None => {
                verify_password(&password, &DUMMY_HASH);
                false
            }
        })
        .await
    }
}

/// Which merchants a user sees, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    /// A Merchant user's merchant.
    pub merchant_id: Option<String>,
    /// The merchants a Staff user is limited to.
    pub merchant_ids: Vec<String>,
    /// A Staff user sees every merchant.
    pub all_merchants: bool,
}

/// Which merchants a user of `role` sees, from the merchants given: a
/// Merchant user exactly one (its own), an Administrator none (all), a Staff
/// user either every merchant (`all_merchants`) or the merchants listed —
/// possibly none, which means none. `all_merchants` None (not given): every
/// merchant when no merchant is listed, as when creating a user. Merchant
/// ids are deduplicated and sorted.
pub fn check_access(
    role: Role,
    merchants: &[String],
    all_merchants: Option<bool>,
) -> Result<Access, EngineError> {
    let mut ids: Vec<String> = merchants
        .iter()
        .map(|m| m.trim().to_string())
        .filter(|m| !m.is_empty())
        .collect();
    ids.sort();
    ids.dedup();
    let none = |merchant_id| Access {
        merchant_id,
        merchant_ids: Vec::new(),
        all_merchants: false,
    };
    match role {
        Role::Merchant if all_merchants == Some(true) => Err(invalid(
            "all_merchants",
            "a Merchant user sees only its own merchant: make it Staff to see every merchant",
        )),
        Role::Merchant => match ids.as_slice() {
            [one] => Ok(none(Some(one.clone()))),
            [] => Err(invalid(
                "merchant_id",
                "a Merchant user needs the merchant it belongs to (mer_…)",
            )),
            _ => Err(invalid(
                "merchant_id",
                "a Merchant user belongs to exactly one merchant: give one, or make it Staff",
            )),
        },
        Role::Admin if !ids.is_empty() => Err(invalid(
            "merchant_id",
            "an Administrator sees every merchant: leave merchants out",
        )),
        Role::Admin => Ok(none(None)),
        Role::Staff => {
            let all = all_merchants.unwrap_or(ids.is_empty());
            if all && !ids.is_empty() {
                return Err(invalid(
                    "all_merchants",
                    "a Staff user sees every merchant or only the merchants listed, not both: set all_merchants to false, or list no merchant",
                ));
            }
            Ok(Access {
                merchant_id: None,
                merchant_ids: ids,
                all_merchants: all,
            })
        }
    }
}

/// Checks the rules for a new user's fields; returns the normalised email.
pub fn check_new_user(
    email: &str,
    password: &str,
    role: Role,
    merchants: &[String],
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
    check_access(role, merchants, None)?;
    Ok(email)
}

/// Checks that each merchant exists.
async fn check_merchants_exist(
    db: &Db,
    merchant_id: Option<&String>,
    staff: &[String],
) -> Result<(), EngineError> {
    for (field, m) in merchant_id
        .map(|m| ("merchant_id", m))
        .into_iter()
        .chain(staff.iter().map(|m| ("merchant_ids", m)))
    {
        if merchants::get(db.pool(), m).await?.is_none() {
            return Err(invalid(
                field,
                format!("{m} names no merchant: see the Merchants page or GET /api/v1/merchants"),
            ));
        }
    }
    Ok(())
}

/// Creates a user after checking the rules (see [`check_access`] for
/// `merchants` and `all_merchants`); the merchants must exist. (The CLI
/// calls this without an engine.)
pub async fn create_user(
    db: &Db,
    passwords: &PasswordWork,
    email: &str,
    password: &str,
    role: Role,
    merchants: &[String],
    all_merchants: Option<bool>,
) -> Result<UserRow, EngineError> {
    let email = check_new_user(email, password, role, merchants)?;
    let access = check_access(role, merchants, all_merchants)?;
    check_merchants_exist(db, access.merchant_id.as_ref(), &access.merchant_ids).await?;
    let now = now_micros();
    let user = UserRow {
        id: new_id("usr"),
        email,
        password_hash: passwords.hash(password).await?,
        role,
        merchant_id: access.merchant_id,
        created_at: now,
        updated_at: now,
        all_merchants: access.all_merchants,
        merchant_ids: access.merchant_ids,
    };
    if !db_users::insert(db, &user).await? {
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
        merchants: &[String],
    ) -> Result<UserRow, EngineError> {
        self.add_user(email, password, role, merchants, None).await
    }

    /// Changes a user's role and merchants (see [`check_access`]);
    /// `NotFound` for an unknown user. Sessions and tokens keep working
    /// with the new rights. `all_merchants` None (not given) keeps a Staff
    /// user's "every merchant" unless merchants are listed; it never widens
    /// a limited user: removing their last merchant leaves them seeing none.
    pub async fn update_user_access(
        &self,
        user_id: &str,
        role: Role,
        merchants: &[String],
        all_merchants: Option<bool>,
    ) -> Result<UserRow, EngineError> {
        let mut user = db_users::get(self.db(), user_id)
            .await?
            .ok_or(EngineError::NotFound)?;
        let listed = merchants.iter().any(|m| !m.trim().is_empty());
        let all_merchants = all_merchants.or_else(|| {
            (role == Role::Staff && !listed)
                .then_some(user.role == Role::Staff && user.all_merchants)
        });
        let access = check_access(role, merchants, all_merchants)?;
        check_merchants_exist(self.db(), access.merchant_id.as_ref(), &access.merchant_ids).await?;
        user.role = role;
        user.merchant_id = access.merchant_id;
        user.merchant_ids = access.merchant_ids;
        user.all_merchants = access.all_merchants;
        user.updated_at = now_micros();
        if !db_users::update_access(self.db(), &user).await? {
            return Err(EngineError::NotFound);
        }
        Ok(user)
    }

    /// Checks an email and password; the user on success. An unknown email
    /// is checked against a dummy hash, so that timing does not tell which
    /// emails exist. `Retry` when every core is busy checking others.
    pub async fn sign_in(
        &self,
        email: &str,
        password: &str,
    ) -> Result<Option<UserRow>, EngineError> {
        let email = email.trim().to_lowercase();
        let user = db_users::by_email(self.db(), &email).await?;
        let ok = self
            .passwords()
            .verify(password, user.as_ref().map(|u| u.password_hash.as_str()))
            .await?;
        Ok(user.filter(|_| ok))
    }

    /// Starts a session: (session token for the cookie, CSRF token).
    pub async fn start_session(&self, user_id: &str) -> Result<(String, String), EngineError> {
        let token = random_token("ses");
        let csrf = random_token("csrf");
        sessions::insert(
            self.db().pool(),
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
        Ok(sessions::user(self.db(), &hash_token(token)).await?)
    }

    pub async fn end_session(&self, token: &str) -> Result<(), EngineError> {
        Ok(sessions::delete(self.db().pool(), &hash_token(token)).await?)
    }

    /// A new API token acting as `user_id`, never expiring; its value is
    /// returned once.
    pub async fn create_user_token(
        &self,
        user_id: &str,
        label: &str,
    ) -> Result<String, EngineError> {
        Ok(issue_user_token(self.db(), user_id, label, None).await?.1)
    }
}

/// Longest token lifetime one may ask for.
pub const MAX_TOKEN_DAYS: i64 = 3650;

/// Characters of a token kept (in clear) to tell tokens apart in lists:
/// `sst_` and 4 of its 32 random characters.
const TOKEN_PREFIX_CHARS: usize = 8;

/// A new API token acting as `user_id` (named `label`, expiring after
/// `expires_in_days` when given): its row and its value, shown once. (The
/// CLI calls this without an engine.)
pub async fn issue_user_token(
    db: &Db,
    user_id: &str,
    label: &str,
    expires_in_days: Option<i64>,
) -> Result<(TokenRow, String), EngineError> {
    let label = label.trim();
    if label.is_empty() || label.chars().count() > 100 {
        return Err(invalid("name", "is required (at most 100 characters)"));
    }
    let expires_at = match expires_in_days {
        None => None,
        Some(d) if (1..=MAX_TOKEN_DAYS).contains(&d) => Some(now_micros() + d * 86_400_000_000),
        Some(_) => {
            return Err(invalid(
                "expires_in_days",
                format!(
                    "must be a whole number of days from 1 to {MAX_TOKEN_DAYS}, or left out for a token that does not expire"
                ),
            ));
        }
    };
    let token = random_token("sst");
    let prefix: String = token.chars().take(TOKEN_PREFIX_CHARS).collect();
    let row = api_tokens::insert_for_user(
        db.pool(),
        &hash_token(&token),
        label,
        &prefix,
        user_id,
        expires_at,
    )
    .await?;
    Ok((row, token))
}

/// Users and their API tokens, as the web's handlers reach them.
impl Engine {
    /// Every user, by email.
    pub async fn users(&self) -> Result<Vec<UserRow>, shipsync_db::DbError> {
        db_users::list(self.db()).await
    }

    /// One user by id.
    pub async fn user(&self, id: &str) -> Result<Option<UserRow>, shipsync_db::DbError> {
        db_users::get(self.db(), id).await
    }

    /// Creates a user (see [`create_user`]), `all_merchants` as given.
    pub async fn add_user(
        &self,
        email: &str,
        password: &str,
        role: Role,
        merchants: &[String],
        all_merchants: Option<bool>,
    ) -> Result<UserRow, EngineError> {
        create_user(
            self.db(),
            self.passwords(),
            email,
            password,
            role,
            merchants,
            all_merchants,
        )
        .await
    }

    /// Deletes a user; false when there was none.
    pub async fn delete_user(&self, id: &str) -> Result<bool, shipsync_db::DbError> {
        db_users::delete(self.db(), id).await
    }

    /// A user's API tokens.
    pub async fn user_tokens(&self, user_id: &str) -> Result<Vec<TokenRow>, shipsync_db::DbError> {
        api_tokens::of_user(self.db().pool(), user_id).await
    }

    /// A new API token of a user (see [`issue_user_token`]).
    pub async fn issue_token(
        &self,
        user_id: &str,
        label: &str,
        expires_in_days: Option<i64>,
    ) -> Result<(TokenRow, String), EngineError> {
        issue_user_token(self.db(), user_id, label, expires_in_days).await
    }

    /// Revokes one of a user's API tokens; false when it has none such.
    pub async fn revoke_token(
        &self,
        user_id: &str,
        id: &str,
    ) -> Result<bool, shipsync_db::DbError> {
        api_tokens::delete_of_user(self.db().pool(), user_id, id).await
    }

    /// Who a bearer token acts as: None for an unknown or expired token,
    /// `Some(None)` for an administrator token, else its user.
    pub async fn token_user(
        &self,
        token: &str,
    ) -> Result<Option<Option<UserRow>>, shipsync_db::DbError> {
        api_tokens::user_of(self.db(), &hash_token(token)).await
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

    #[tokio::test]
    async fn password_work_runs_off_the_runtime_and_refuses_when_busy() {
        let work = PasswordWork::new(1, Duration::from_millis(50));
        let h = work.hash("correct horse battery").await.expect("hash");
        assert!(
            work.verify("correct horse battery", Some(&h))
                .await
                .unwrap()
        );
        assert!(
            !work
                .verify("correct horse batterz", Some(&h))
                .await
                .unwrap()
        );
        // An unknown user: checked against the dummy hash, never true.
        assert!(!work.verify("correct horse battery", None).await.unwrap());
        // Every worker busy past the wait: refused, to be retried.
        let _busy = Arc::clone(&work.permits).acquire_owned().await.unwrap();
        assert!(matches!(
            work.verify("correct horse battery", Some(&h)).await,
            Err(EngineError::Retry { .. })
        ));
    }

    #[test]
    fn new_user_rules() {
        let ok = check_new_user(" Ops@Example.com ", "twelve chars!", Role::Admin, &[]);
        assert_eq!(ok.ok().as_deref(), Some("ops@example.com"));
        let field = |r: Result<String, EngineError>| match r {
            Err(EngineError::Invalid { field, .. }) => field,
            other => panic!("expected Invalid, got {other:?}"),
        };
        assert_eq!(
            field(check_new_user("nope", "twelve chars!", Role::Admin, &[])),
            "email"
        );
        assert_eq!(
            field(check_new_user("a@b.co", "short", Role::Admin, &[])),
            "password"
        );
        assert_eq!(
            field(check_new_user(
                "a@b.co",
                "twelve chars!",
                Role::Merchant,
                &[]
            )),
            "merchant_id"
        );
        assert_eq!(
            field(check_new_user(
                "a@b.co",
                "twelve chars!",
                Role::Admin,
                &["mer_1".into()]
            )),
            "merchant_id"
        );
        assert!(check_new_user("a@b.co", "twelve chars!", Role::Staff, &["mer_1".into()]).is_ok());
    }

    #[test]
    fn access_by_role() {
        let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let access = |merchant_id: Option<&str>, merchant_ids: &[&str], all_merchants| Access {
            merchant_id: merchant_id.map(str::to_string),
            merchant_ids: ids(merchant_ids),
            all_merchants,
        };
        // Staff: any number, deduplicated and sorted.
        assert_eq!(
            check_access(Role::Staff, &ids(&["mer_b", " mer_a", "mer_b", ""]), None).ok(),
            Some(access(None, &["mer_a", "mer_b"], false))
        );
        // None listed and nothing said: every merchant (a new user); said
        // false: none, never every merchant.
        assert_eq!(
            check_access(Role::Staff, &[], None).ok(),
            Some(access(None, &[], true))
        );
        assert_eq!(
            check_access(Role::Staff, &[], Some(false)).ok(),
            Some(access(None, &[], false))
        );
        assert!(check_access(Role::Staff, &ids(&["mer_a"]), Some(true)).is_err());
        // Merchant: exactly one, kept in users.merchant_id.
        assert_eq!(
            check_access(Role::Merchant, &ids(&["mer_a"]), None).ok(),
            Some(access(Some("mer_a"), &[], false))
        );
        assert!(check_access(Role::Merchant, &ids(&["mer_a", "mer_b"]), None).is_err());
        assert!(check_access(Role::Merchant, &[], None).is_err());
        assert!(check_access(Role::Merchant, &ids(&["mer_a"]), Some(true)).is_err());
        // Administrator: none.
        assert!(check_access(Role::Admin, &ids(&["mer_a"]), None).is_err());
        assert_eq!(
            check_access(Role::Admin, &[], None).ok(),
            Some(access(None, &[], false))
        );
    }
}
