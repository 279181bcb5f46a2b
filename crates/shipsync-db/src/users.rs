//! Web-UI users, sessions, and API tokens that act as a user. SQL lives
//! here only; hashing happens above (the engine), never in SQL.

use sqlx::FromRow;

use crate::{Db, DbError, Tx, new_id, now_micros};

#[derive(Debug, Clone, FromRow, PartialEq, Eq)]
pub struct UserRow {
    pub id: String,
    /// Lower case.
    pub email: String,
    /// Argon2id, PHC string format.
    pub password_hash: String,
    /// admin | staff | merchant
    pub role: String,
    /// A Merchant user's merchant.
    pub merchant_id: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    /// 1: a Staff user sees every merchant (0 for other roles). Explicit, so
    /// that an empty `merchant_ids` never means "all".
    pub all_merchants: i64,
    /// The merchants a Staff user is limited to (`user_merchants`), sorted.
    #[sqlx(skip)]
    pub merchant_ids: Vec<String>,
}

const USER_COLS: &str =
    "id, email, password_hash, role, merchant_id, created_at, updated_at, all_merchants";

/// An API token of a user (never its value).
#[derive(Debug, Clone, FromRow)]
pub struct TokenRow {
    pub id: String,
    pub label: String,
    /// The token's first characters (None for tokens made before 0011).
    pub prefix: Option<String>,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub expires_at: Option<i64>,
}

const TOKEN_COLS: &str = "id, label, prefix, created_at, last_used_at, expires_at";

/// `last_used_at` is written at most this often per token (a write per API
/// call would cost more than the answer).
pub const LAST_USED_GRANULARITY_MICROS: i64 = 60 * 1_000_000;

/// Replaces a user's `user_merchants` rows.
async fn write_user_merchants(tx: &mut Tx<'_>, u: &UserRow) -> Result<(), DbError> {
    sqlx::query("DELETE FROM user_merchants WHERE user_id = $1")
        .bind(&u.id)
        .execute(&mut **tx)
        .await?;
    for m in &u.merchant_ids {
        sqlx::query(
            "INSERT INTO user_merchants (user_id, merchant_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(&u.id)
        .bind(m)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

impl Db {
    /// Inserts a user with its merchants; `Ok(false)` when the email is taken.
    pub async fn insert_user(&self, u: &UserRow) -> Result<bool, DbError> {
        let mut tx = self.begin().await?;
        let r = sqlx::query(sql!(
            "INSERT INTO users ({USER_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (email) DO NOTHING"
        ))
        .bind(&u.id)
        .bind(&u.email)
        .bind(&u.password_hash)
        .bind(&u.role)
        .bind(&u.merchant_id)
        .bind(u.created_at)
        .bind(u.updated_at)
        .bind(u.all_merchants)
        .execute(&mut *tx)
        .await?;
        if r.rows_affected() != 1 {
            return Ok(false);
        }
        write_user_merchants(&mut tx, u).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Saves a user's role, merchant and merchants (not email or password).
    pub async fn update_user_access(&self, u: &UserRow) -> Result<bool, DbError> {
        let mut tx = self.begin().await?;
        let r = sqlx::query(
            "UPDATE users SET role = $2, merchant_id = $3, updated_at = $4, all_merchants = $5 WHERE id = $1",
        )
        .bind(&u.id)
        .bind(&u.role)
        .bind(&u.merchant_id)
        .bind(u.updated_at)
        .bind(u.all_merchants)
        .execute(&mut *tx)
        .await?;
        if r.rows_affected() != 1 {
            return Ok(false);
        }
        write_user_merchants(&mut tx, u).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Fills `merchant_ids` of each user.
    async fn with_merchants(&self, mut users: Vec<UserRow>) -> Result<Vec<UserRow>, DbError> {
        for u in &mut users {
            let rows: Vec<(String,)> = sqlx::query_as(
                "SELECT merchant_id FROM user_merchants WHERE user_id = $1 ORDER BY merchant_id",
            )
            .bind(&u.id)
            .fetch_all(self.pool())
            .await?;
            u.merchant_ids = rows.into_iter().map(|r| r.0).collect();
        }
        Ok(users)
    }

    async fn one_with_merchants(&self, u: Option<UserRow>) -> Result<Option<UserRow>, DbError> {
        Ok(self
            .with_merchants(u.into_iter().collect())
            .await?
            .into_iter()
            .next())
    }

    pub async fn user_by_email(&self, email: &str) -> Result<Option<UserRow>, DbError> {
        let u = sqlx::query_as(sql!("SELECT {USER_COLS} FROM users WHERE email = $1"))
            .bind(email)
            .fetch_optional(self.pool())
            .await?;
        self.one_with_merchants(u).await
    }

    pub async fn get_user(&self, id: &str) -> Result<Option<UserRow>, DbError> {
        let u = sqlx::query_as(sql!("SELECT {USER_COLS} FROM users WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        self.one_with_merchants(u).await
    }

    pub async fn list_users(&self) -> Result<Vec<UserRow>, DbError> {
        let users = sqlx::query_as(sql!("SELECT {USER_COLS} FROM users ORDER BY email"))
            .fetch_all(self.pool())
            .await?;
        self.with_merchants(users).await
    }

    pub async fn count_users(&self) -> Result<i64, DbError> {
        let row: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM users")
            .fetch_one(self.pool())
            .await?;
        Ok(row.0)
    }

    /// Deletes a user with their sessions and tokens.
    pub async fn delete_user(&self, id: &str) -> Result<bool, DbError> {
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM sessions WHERE user_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM api_tokens WHERE user_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM user_merchants WHERE user_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let r = sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(r.rows_affected() == 1)
    }

    pub async fn insert_session(
        &self,
        id_hash: &str,
        user_id: &str,
        csrf_token: &str,
        expires_at: i64,
    ) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO sessions (id_hash, user_id, csrf_token, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id_hash)
        .bind(user_id)
        .bind(csrf_token)
        .bind(now_micros())
        .bind(expires_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The user and CSRF token of an unexpired session.
    pub async fn session_user(&self, id_hash: &str) -> Result<Option<(UserRow, String)>, DbError> {
        let row: Option<(String, String)> = sqlx::query_as(
            "SELECT user_id, csrf_token FROM sessions WHERE id_hash = $1 AND expires_at > $2",
        )
        .bind(id_hash)
        .bind(now_micros())
        .fetch_optional(self.pool())
        .await?;
        let Some((user_id, csrf)) = row else {
            return Ok(None);
        };
        Ok(self.get_user(&user_id).await?.map(|u| (u, csrf)))
    }

    /// Deletes a session, and every expired one while at it.
    pub async fn delete_session(&self, id_hash: &str) -> Result<(), DbError> {
        sqlx::query("DELETE FROM sessions WHERE id_hash = $1 OR expires_at <= $2")
            .bind(id_hash)
            .bind(now_micros())
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Stores a user's token (its hash); `expires_at` None: never.
    pub async fn insert_user_api_token(
        &self,
        token_hash: &str,
        label: &str,
        prefix: &str,
        user_id: &str,
        expires_at: Option<i64>,
    ) -> Result<TokenRow, DbError> {
        let row = TokenRow {
            id: new_id("tok"),
            label: label.to_string(),
            prefix: Some(prefix.to_string()),
            created_at: now_micros(),
            last_used_at: None,
            expires_at,
        };
        sqlx::query(
            "INSERT INTO api_tokens (id, token_hash, label, prefix, created_at, expires_at, user_id) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&row.id)
        .bind(token_hash)
        .bind(&row.label)
        .bind(&row.prefix)
        .bind(row.created_at)
        .bind(row.expires_at)
        .bind(user_id)
        .execute(self.pool())
        .await?;
        Ok(row)
    }

    /// Who an unexpired token acts as: `None` unknown (or expired),
    /// `Some(None)` an administrator token, `Some(Some(user))` a user's
    /// token. Records the use (see [`LAST_USED_GRANULARITY_MICROS`]).
    pub async fn api_token_user(
        &self,
        token_hash: &str,
    ) -> Result<Option<Option<UserRow>>, DbError> {
        let now = now_micros();
        let row: Option<(String, Option<String>, Option<i64>)> = sqlx::query_as(
            "SELECT id, user_id, last_used_at FROM api_tokens WHERE token_hash = $1 AND (expires_at IS NULL OR expires_at > $2)",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(self.pool())
        .await?;
        let Some((id, user_id, last_used)) = row else {
            return Ok(None);
        };
        if last_used.is_none_or(|t| now - t >= LAST_USED_GRANULARITY_MICROS) {
            sqlx::query("UPDATE api_tokens SET last_used_at = $2 WHERE id = $1")
                .bind(&id)
                .bind(now)
                .execute(self.pool())
                .await?;
        }
        match user_id {
            None => Ok(Some(None)),
            Some(uid) => Ok(self.get_user(&uid).await?.map(Some)),
        }
    }

    /// A user's tokens, newest first.
    pub async fn user_api_tokens(&self, user_id: &str) -> Result<Vec<TokenRow>, DbError> {
        Ok(sqlx::query_as(sql!(
            "SELECT {TOKEN_COLS} FROM api_tokens WHERE user_id = $1 ORDER BY created_at DESC, id"
        ))
        .bind(user_id)
        .fetch_all(self.pool())
        .await?)
    }

    pub async fn delete_user_api_token(&self, user_id: &str, id: &str) -> Result<bool, DbError> {
        let r = sqlx::query("DELETE FROM api_tokens WHERE id = $1 AND user_id = $2")
            .bind(id)
            .bind(user_id)
            .execute(self.pool())
            .await?;
        Ok(r.rows_affected() == 1)
    }
}
