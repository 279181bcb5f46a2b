//! Web-UI users (`users`) and the merchants a Staff user is limited to
//! (`user_merchants`). Hashing happens above (the engine), never in SQL.

use shipsync_core::states::Role;
use sqlx::any::AnyRow;
use sqlx::{Any, Executor};

use crate::decode::{self, Cols};
use crate::{Db, DbError, Tx};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    pub id: String,
    /// Lower case.
    pub email: String,
    /// Argon2id, PHC string format.
    pub password_hash: String,
    pub role: Role,
    /// A Merchant user's merchant.
    pub merchant_id: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    /// A Staff user sees every merchant (false for other roles). Explicit,
    /// so that an empty `merchant_ids` never means "all".
    pub all_merchants: bool,
    /// The merchants a Staff user is limited to (`user_merchants`), sorted.
    pub merchant_ids: Vec<String>,
}

const COLS: &str =
    "id, email, password_hash, role, merchant_id, created_at, updated_at, all_merchants";

/// Without its merchants: [`with_merchants`] adds them.
impl TryFrom<AnyRow> for UserRow {
    type Error = DbError;

    fn try_from(row: AnyRow) -> Result<Self, DbError> {
        let c = Cols::of(&row, "users");
        Ok(Self {
            id: c.get("id")?,
            email: c.get("email")?,
            password_hash: c.get("password_hash")?,
            role: c.word("role")?,
            merchant_id: c.get("merchant_id")?,
            created_at: c.get("created_at")?,
            updated_at: c.get("updated_at")?,
            all_merchants: c.flag("all_merchants")?,
            merchant_ids: Vec::new(),
        })
    }
}

/// Replaces a user's `user_merchants` rows.
async fn write_merchants(tx: &mut Tx<'_>, u: &UserRow) -> Result<(), DbError> {
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

/// Inserts a user with its merchants; `Ok(false)` when the email is taken.
pub async fn insert(db: &Db, u: &UserRow) -> Result<bool, DbError> {
    let mut tx = db.begin().await?;
    let r = sqlx::query(sql!(
        "INSERT INTO users ({COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (email) DO NOTHING"
    ))
    .bind(&u.id)
    .bind(&u.email)
    .bind(&u.password_hash)
    .bind(u.role.as_str())
    .bind(&u.merchant_id)
    .bind(u.created_at)
    .bind(u.updated_at)
    .bind(i64::from(u.all_merchants))
    .execute(&mut *tx)
    .await?;
    if r.rows_affected() != 1 {
        return Ok(false);
    }
    write_merchants(&mut tx, u).await?;
    tx.commit().await?;
    Ok(true)
}

/// Saves a user's role, merchant and merchants (not email or password).
pub async fn update_access(db: &Db, u: &UserRow) -> Result<bool, DbError> {
    let mut tx = db.begin().await?;
    let r = sqlx::query(
        "UPDATE users SET role = $2, merchant_id = $3, updated_at = $4, all_merchants = $5 WHERE id = $1",
    )
    .bind(&u.id)
    .bind(u.role.as_str())
    .bind(&u.merchant_id)
    .bind(u.updated_at)
    .bind(i64::from(u.all_merchants))
    .execute(&mut *tx)
    .await?;
    if r.rows_affected() != 1 {
        return Ok(false);
    }
    write_merchants(&mut tx, u).await?;
    tx.commit().await?;
    Ok(true)
}

/// Fills `merchant_ids` of each user.
async fn with_merchants(db: &Db, rows: Vec<AnyRow>) -> Result<Vec<UserRow>, DbError> {
    let mut users: Vec<UserRow> = decode::all(rows)?;
    for u in &mut users {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT merchant_id FROM user_merchants WHERE user_id = $1 ORDER BY merchant_id",
        )
        .bind(&u.id)
        .fetch_all(db.pool())
        .await?;
        u.merchant_ids = rows.into_iter().map(|r| r.0).collect();
    }
    Ok(users)
}

async fn one_with_merchants(db: &Db, row: Option<AnyRow>) -> Result<Option<UserRow>, DbError> {
    Ok(with_merchants(db, row.into_iter().collect())
        .await?
        .into_iter()
        .next())
}

pub async fn by_email(db: &Db, email: &str) -> Result<Option<UserRow>, DbError> {
    let row = sqlx::query(sql!("SELECT {COLS} FROM users WHERE email = $1"))
        .bind(email)
        .fetch_optional(db.pool())
        .await?;
    one_with_merchants(db, row).await
}

pub async fn get(db: &Db, id: &str) -> Result<Option<UserRow>, DbError> {
    let row = sqlx::query(sql!("SELECT {COLS} FROM users WHERE id = $1"))
        .bind(id)
        .fetch_optional(db.pool())
        .await?;
    one_with_merchants(db, row).await
}

/// Every user, by email.
pub async fn list(db: &Db) -> Result<Vec<UserRow>, DbError> {
    let rows = sqlx::query(sql!("SELECT {COLS} FROM users ORDER BY email"))
        .fetch_all(db.pool())
        .await?;
    with_merchants(db, rows).await
}

pub async fn count<'e, E: Executor<'e, Database = Any>>(ex: E) -> Result<i64, DbError> {
    let row: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM users")
        .fetch_one(ex)
        .await?;
    Ok(row.0)
}

/// Deletes a user with their sessions and tokens.
pub async fn delete(db: &Db, id: &str) -> Result<bool, DbError> {
    let mut tx = db.begin().await?;
    for table in ["sessions", "api_tokens", "user_merchants"] {
        sqlx::query(sql!("DELETE FROM {table} WHERE user_id = $1"))
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    let r = sqlx::query("DELETE FROM users WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(r.rows_affected() == 1)
}
