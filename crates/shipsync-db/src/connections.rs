//! `connections`: a store of a merchant (its settings, sealed credentials
//! and store status), read together with its token (`store_tokens`) and
//! whether its channels are on.

use serde::{Deserialize, Serialize};
use shipsync_core::order_rules::OrderRules;
use shipsync_core::states::{Channel, StoreStatus};
use sqlx::any::AnyRow;
use sqlx::{Any, Executor};

use crate::channels::ChannelRow;
use crate::decode::{self, Cols, to_json};
use crate::{Db, DbError, one_of};

#[derive(Debug, Clone)]
pub struct ConnectionRow {
    pub id: String,
    pub name: String,
    pub merchant_id: String,
    pub enabled: bool,
    pub order_prefix: String,
    /// The store's settings (the engine's document), JSON.
    pub store_json: String,
    pub store_token: Option<Vec<u8>>,
    /// An app's client secret, sealed (client credentials, authorization code).
    pub store_client_secret: Option<Vec<u8>>,
    /// Whether the store accepts the credentials.
    pub store_status: StoreStatus,
    pub store_error: Option<String>,
    /// The import rules of its Sales Orders channel (`order_rules_json`;
    /// `NULL` is the defaults).
    pub order_rules: OrderRules,
    /// The Shopify app's API secret key, sealed: signs order webhooks for a
    /// legacy access token.
    pub store_api_secret: Option<Vec<u8>>,
    /// Read only here (see [`set_order_webhooks`]): the store's order
    /// webhook subscriptions as last checked.
    pub order_webhooks: OrderWebhooks,
    pub created_at: i64,
    pub updated_at: i64,
    /// Read only (from `store_tokens`): whether an app token is held, when
    /// it expires, and the scopes the store granted (comma-separated).
    pub token_held: bool,
    pub token_expires_at: Option<i64>,
    pub granted_scopes: Option<String>,
    /// Read only: whether the Shipments and Sales Orders channels are on.
    pub shipments_on: bool,
    pub sales_orders_on: bool,
}

/// What shipsync last knew of a store's order webhook subscriptions
/// (`order_webhooks_json`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct OrderWebhooks {
    /// Every order topic is subscribed at shipsync's URL.
    pub subscribed: bool,
    /// The subscribed topics (`ORDERS_CREATE`, …).
    pub topics: Vec<String>,
    /// The store's subscription ids, to remove them.
    pub ids: Vec<String>,
    /// The URL they deliver to.
    pub uri: Option<String>,
    /// When they were last checked (microseconds).
    pub checked_at: Option<i64>,
    /// Why the last check or change failed.
    pub error: Option<String>,
}

/// The stored columns, in the order [`insert`] binds them.
const STORED: &str = "id, name, merchant_id, enabled, order_prefix, store_json, store_token,
    store_client_secret, store_status, store_error, created_at, updated_at, order_rules_json,
    store_api_secret";

/// Every column of a [`ConnectionRow`] (`c`: connections, `t`: its token),
/// then `FROM`.
fn select() -> String {
    let on = |channel: Channel| {
        format!(
            "CAST(COALESCE((SELECT ch.enabled FROM channels ch WHERE ch.connection_id = c.id AND ch.channel = '{}'), 0) AS BIGINT)",
            channel.as_str()
        )
    };
    format!(
        "SELECT c.id, c.name, c.merchant_id, c.enabled, c.order_prefix, c.store_json,
         c.store_token, c.store_client_secret, c.store_status, c.store_error, c.created_at, c.updated_at,
         c.order_rules_json, c.store_api_secret, c.order_webhooks_json,
         CAST(CASE WHEN t.access_token IS NULL THEN 0 ELSE 1 END AS BIGINT) AS token_held,
         t.expires_at AS token_expires_at, t.scopes AS granted_scopes,
         {} AS shipments_on, {} AS sales_orders_on
         FROM connections c LEFT JOIN store_tokens t ON t.connection_id = c.id",
        on(Channel::Shipments),
        on(Channel::SalesOrders)
    )
}

impl TryFrom<AnyRow> for ConnectionRow {
    type Error = DbError;

    fn try_from(row: AnyRow) -> Result<Self, DbError> {
        let c = Cols::of(&row, "connections");
        Ok(Self {
            id: c.get("id")?,
            name: c.get("name")?,
            merchant_id: c.get("merchant_id")?,
            enabled: c.flag("enabled")?,
            order_prefix: c.get("order_prefix")?,
            store_json: c.get("store_json")?,
            store_token: c.get("store_token")?,
            store_client_secret: c.get("store_client_secret")?,
            store_status: c.word("store_status")?,
            store_error: c.get("store_error")?,
            order_rules: c.json_or_default("order_rules_json")?,
            store_api_secret: c.get("store_api_secret")?,
            order_webhooks: c.json_or_default("order_webhooks_json")?,
            created_at: c.get("created_at")?,
            updated_at: c.get("updated_at")?,
            token_held: c.flag("token_held")?,
            token_expires_at: c.get("token_expires_at")?,
            granted_scopes: c.get("granted_scopes")?,
            shipments_on: c.flag("shipments_on")?,
            sales_orders_on: c.flag("sales_orders_on")?,
        })
    }
}

/// Inserts a connection with its channels.
pub async fn insert(db: &Db, c: &ConnectionRow, channels: &[ChannelRow]) -> Result<(), DbError> {
    let mut tx = db.begin().await?;
    sqlx::query(sql!(
        "INSERT INTO connections ({STORED}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
    ))
    .bind(&c.id)
    .bind(&c.name)
    .bind(&c.merchant_id)
    .bind(i64::from(c.enabled))
    .bind(&c.order_prefix)
    .bind(&c.store_json)
    .bind(&c.store_token)
    .bind(&c.store_client_secret)
    .bind(c.store_status.as_str())
    .bind(&c.store_error)
    .bind(c.created_at)
    .bind(c.updated_at)
    .bind(rules_json(&c.order_rules)?)
    .bind(&c.store_api_secret)
    .execute(&mut *tx)
    .await?;
    for ch in channels {
        crate::channels::insert(&mut *tx, ch).await?;
    }
    tx.commit().await?;
    Ok(())
}

pub async fn update<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    c: &ConnectionRow,
) -> Result<(), DbError> {
    sqlx::query(
        "UPDATE connections SET name = $2, merchant_id = $3, enabled = $4, order_prefix = $5,
           store_json = $6, store_token = $7, store_client_secret = $8, store_status = $9,
           store_error = $10, updated_at = $11, order_rules_json = $12, store_api_secret = $13
         WHERE id = $1",
    )
    .bind(&c.id)
    .bind(&c.name)
    .bind(&c.merchant_id)
    .bind(i64::from(c.enabled))
    .bind(&c.order_prefix)
    .bind(&c.store_json)
    .bind(&c.store_token)
    .bind(&c.store_client_secret)
    .bind(c.store_status.as_str())
    .bind(&c.store_error)
    .bind(c.updated_at)
    .bind(rules_json(&c.order_rules)?)
    .bind(&c.store_api_secret)
    .execute(ex)
    .await?;
    Ok(())
}

pub async fn get<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    id: &str,
) -> Result<Option<ConnectionRow>, DbError> {
    decode::opt(
        sqlx::query(sql!("{} WHERE c.id = $1", select()))
            .bind(id)
            .fetch_optional(ex)
            .await?,
    )
}

/// Connections of a set of merchants (`None`: all), by id.
pub async fn list<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    merchant_ids: Option<&[String]>,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<ConnectionRow>, DbError> {
    let merchants = one_of("c.merchant_id", merchant_ids, 3);
    let mut q = sqlx::query(sql!(
        "{} WHERE c.id > $1 AND {merchants} ORDER BY c.id LIMIT $2",
        select()
    ))
    .bind(after.unwrap_or(""))
    .bind(limit);
    for m in merchant_ids.into_iter().flatten() {
        q = q.bind(m);
    }
    decode::all(q.fetch_all(ex).await?)
}

/// Sets a connection's store status and its reason, without counting as an
/// edit of the connection. Whether it changed.
pub async fn set_store_status<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    connection_id: &str,
    status: StoreStatus,
    error: Option<&str>,
) -> Result<bool, DbError> {
    let r = sqlx::query(
        "UPDATE connections SET store_status = $2, store_error = $3
         WHERE id = $1 AND (store_status <> $2 OR COALESCE(store_error, '') <> COALESCE($3, ''))",
    )
    .bind(connection_id)
    .bind(status.as_str())
    .bind(error)
    .execute(ex)
    .await?;
    Ok(r.rows_affected() > 0)
}

/// The stored text of a connection's import rules: `NULL` for the
/// defaults, so that a later change of the defaults reaches them.
fn rules_json(rules: &OrderRules) -> Result<Option<String>, DbError> {
    if *rules == OrderRules::default() {
        Ok(None)
    } else {
        to_json("connections.order_rules_json", rules).map(Some)
    }
}

/// Records the store's order webhook subscriptions as checked, without
/// counting as an edit of the connection.
pub async fn set_order_webhooks<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    connection_id: &str,
    state: &OrderWebhooks,
) -> Result<(), DbError> {
    sqlx::query("UPDATE connections SET order_webhooks_json = $2 WHERE id = $1")
        .bind(connection_id)
        .bind(to_json("connections.order_webhooks_json", state)?)
        .execute(ex)
        .await?;
    Ok(())
}

/// Deletes a connection with its channels, token and install links.
pub async fn delete(db: &Db, id: &str) -> Result<bool, DbError> {
    let mut tx = db.begin().await?;
    for table in ["channels", "store_tokens", "oauth_states"] {
        sqlx::query(sql!("DELETE FROM {table} WHERE connection_id = $1"))
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    let r = sqlx::query("DELETE FROM connections WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(r.rows_affected() > 0)
}
