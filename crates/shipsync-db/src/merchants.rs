//! `merchants` (the warehouse side of a tenant, its webhook keys) and
//! `retired_webhook_keys` (rotated-out keys in their grace period).

use std::collections::BTreeMap;

use shipsync_core::ledger::KitPolicy;
use sqlx::any::AnyRow;
use sqlx::{Any, Executor};

use crate::decode::{self, Cols, to_json};
use crate::{Db, DbError, now_micros};

#[derive(Debug, Clone)]
pub struct MerchantRow {
    pub id: String,
    pub name: String,
    /// The warehouse's settings (the engine's document), JSON.
    pub warehouse_json: String,
    pub warehouse_secrets: Option<Vec<u8>>,
    pub webhooks_enabled: bool,
    pub shared_secret: Option<Vec<u8>>,
    pub webhook_key: Vec<u8>,
    pub webhook_key_hash: String,
    pub kit_policy: KitPolicy,
    /// Warehouse carrier name → the store's carrier name.
    pub carrier_overrides: BTreeMap<String, String>,
    pub created_at: i64,
    pub updated_at: i64,
}

const COLS: &str = "id, name, warehouse_json, warehouse_secrets, webhooks_enabled, shared_secret, webhook_key, webhook_key_hash, kit_policy, carrier_overrides, created_at, updated_at";

impl TryFrom<AnyRow> for MerchantRow {
    type Error = DbError;

    fn try_from(row: AnyRow) -> Result<Self, DbError> {
        let c = Cols::of(&row, "merchants");
        Ok(Self {
            id: c.get("id")?,
            name: c.get("name")?,
            warehouse_json: c.get("warehouse_json")?,
            warehouse_secrets: c.get("warehouse_secrets")?,
            webhooks_enabled: c.flag("webhooks_enabled")?,
            shared_secret: c.get("shared_secret")?,
            webhook_key: c.get("webhook_key")?,
            webhook_key_hash: c.get("webhook_key_hash")?,
            kit_policy: c.word("kit_policy")?,
            carrier_overrides: c.json("carrier_overrides")?,
            created_at: c.get("created_at")?,
            updated_at: c.get("updated_at")?,
        })
    }
}

pub async fn insert<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    m: &MerchantRow,
) -> Result<(), DbError> {
    sqlx::query(sql!(
        "INSERT INTO merchants ({COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
    ))
    .bind(&m.id)
    .bind(&m.name)
    .bind(&m.warehouse_json)
    .bind(&m.warehouse_secrets)
    .bind(i64::from(m.webhooks_enabled))
    .bind(&m.shared_secret)
    .bind(&m.webhook_key)
    .bind(&m.webhook_key_hash)
    .bind(m.kit_policy.as_str())
    .bind(to_json(
        "merchants.carrier_overrides",
        &m.carrier_overrides,
    )?)
    .bind(m.created_at)
    .bind(m.updated_at)
    .execute(ex)
    .await?;
    Ok(())
}

pub async fn update<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    m: &MerchantRow,
) -> Result<(), DbError> {
    sqlx::query(
        "UPDATE merchants SET name = $2, warehouse_json = $3, warehouse_secrets = $4, webhooks_enabled = $5,
           shared_secret = $6, webhook_key = $7, webhook_key_hash = $8, kit_policy = $9,
           carrier_overrides = $10, updated_at = $11
         WHERE id = $1",
    )
    .bind(&m.id)
    .bind(&m.name)
    .bind(&m.warehouse_json)
    .bind(&m.warehouse_secrets)
    .bind(i64::from(m.webhooks_enabled))
    .bind(&m.shared_secret)
    .bind(&m.webhook_key)
    .bind(&m.webhook_key_hash)
    .bind(m.kit_policy.as_str())
    .bind(to_json("merchants.carrier_overrides", &m.carrier_overrides)?)
    .bind(m.updated_at)
    .execute(ex)
    .await?;
    Ok(())
}

pub async fn get<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    id: &str,
) -> Result<Option<MerchantRow>, DbError> {
    decode::opt(
        sqlx::query(sql!("SELECT {COLS} FROM merchants WHERE id = $1"))
            .bind(id)
            .fetch_optional(ex)
            .await?,
    )
}

pub async fn list<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<MerchantRow>, DbError> {
    decode::all(
        sqlx::query(sql!(
            "SELECT {COLS} FROM merchants WHERE id > $1 ORDER BY id LIMIT $2"
        ))
        .bind(after.unwrap_or(""))
        .bind(limit)
        .fetch_all(ex)
        .await?,
    )
}

/// The merchant whose current webhook key, or a rotated-out key still
/// within its grace period, hashes to `hash`.
pub async fn by_key_hash<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    hash: &str,
) -> Result<Option<MerchantRow>, DbError> {
    decode::opt(
        sqlx::query(sql!(
            "SELECT {COLS} FROM merchants WHERE webhook_key_hash = $1
             OR id = (SELECT merchant_id FROM retired_webhook_keys WHERE key_hash = $1 AND expires_at > $2) LIMIT 1"
        ))
        .bind(hash)
        .bind(now_micros())
        .fetch_optional(ex)
        .await?,
    )
}

/// One value sealed under the key (the newest merchant's webhook key,
/// which every merchant has), to check a key against a database that
/// holds sealed data but no key check yet.
pub async fn sample_sealed<'e, E: Executor<'e, Database = Any>>(
    ex: E,
) -> Result<Option<Vec<u8>>, DbError> {
    let row: Option<(Vec<u8>,)> =
        sqlx::query_as("SELECT webhook_key FROM merchants ORDER BY created_at DESC, id LIMIT 1")
            .fetch_optional(ex)
            .await?;
    Ok(row.map(|r| r.0))
}

/// Replaces a merchant's webhook key; the old one keeps working until
/// `old_expires_at`, or with `None` stops at once, together with every
/// key of the merchant still in its grace period.
pub async fn rotate_webhook_key(
    db: &Db,
    merchant_id: &str,
    new_key_sealed: &[u8],
    new_key_hash: &str,
    old_expires_at: Option<i64>,
) -> Result<(), DbError> {
    let mut tx = db.begin().await?;
    match old_expires_at {
        Some(at) => {
            sqlx::query(
                "INSERT INTO retired_webhook_keys (key_hash, merchant_id, expires_at)
                 SELECT webhook_key_hash, id, $2 FROM merchants WHERE id = $1",
            )
            .bind(merchant_id)
            .bind(at)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "DELETE FROM retired_webhook_keys WHERE merchant_id = $1 AND expires_at <= $2",
            )
            .bind(merchant_id)
            .bind(now_micros())
            .execute(&mut *tx)
            .await?;
        }
        None => {
            sqlx::query("DELETE FROM retired_webhook_keys WHERE merchant_id = $1")
                .bind(merchant_id)
                .execute(&mut *tx)
                .await?;
        }
    }
    sqlx::query(
        "UPDATE merchants SET webhook_key = $2, webhook_key_hash = $3, updated_at = $4 WHERE id = $1",
    )
    .bind(merchant_id)
    .bind(new_key_sealed)
    .bind(new_key_hash)
    .bind(now_micros())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Deletes a merchant without connections; `Ok(false)` when it has some.
pub async fn delete(db: &Db, id: &str) -> Result<bool, DbError> {
    let mut tx = db.begin().await?;
    let n: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM connections WHERE merchant_id = $1")
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
    if n.0 > 0 {
        return Ok(false);
    }
    sqlx::query("DELETE FROM retired_webhook_keys WHERE merchant_id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM merchant_mappings WHERE merchant_id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM merchants WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(true)
}
