//! Rows and the queries that read and write them. SQL lives here only.

use sqlx::{Any, Executor, FromRow};

use crate::{Db, DbError, Tx, for_update, new_id, now_micros};

/// SQL saying that `col` is one of a set of values bound from parameter
/// `$first` on (bind them in order after the query's other parameters):
/// `None` matches any value, an empty set none.
pub(crate) fn one_of(col: &str, set: Option<&[String]>, first: usize) -> String {
    match set {
        None => "1 = 1".into(),
        Some([]) => "1 = 0".into(),
        Some(values) => format!(
            "{col} IN ({})",
            (first..first + values.len())
                .map(|i| format!("${i}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// `s` inside a `LIKE … ESCAPE '\'` pattern: its `\`, `%` and `_` taken
/// literally.
pub(crate) fn like_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

// ---------- meta and API tokens ----------

impl Db {
    pub async fn meta_get(&self, key: &str) -> Result<Option<String>, DbError> {
        let row: Option<(String,)> = sqlx::query_as("SELECT value FROM meta WHERE key = $1")
            .bind(key)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.map(|r| r.0))
    }

    /// Sets `key` only when absent; returns whether it was set.
    pub async fn meta_init(&self, key: &str, value: &str) -> Result<bool, DbError> {
        let r = sqlx::query(
            "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
        )
        .bind(key)
        .bind(value)
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// One value sealed under the key (the newest merchant's webhook key,
    /// which every merchant has), to check a key against a database that
    /// holds sealed data but no key check yet.
    pub async fn sample_sealed(&self) -> Result<Option<Vec<u8>>, DbError> {
        let row: Option<(Vec<u8>,)> = sqlx::query_as(
            "SELECT webhook_key FROM merchants ORDER BY created_at DESC, id LIMIT 1",
        )
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(|r| r.0))
    }

    pub async fn insert_api_token(&self, token_hash: &str, label: &str) -> Result<String, DbError> {
        let id = new_id("tok");
        sqlx::query(
            "INSERT INTO api_tokens (id, token_hash, label, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&id)
        .bind(token_hash)
        .bind(label)
        .bind(now_micros())
        .execute(self.pool())
        .await?;
        Ok(id)
    }

    pub async fn count_api_tokens(&self) -> Result<i64, DbError> {
        let row: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM api_tokens")
            .fetch_one(self.pool())
            .await?;
        Ok(row.0)
    }
}

// ---------- merchants ----------

#[derive(Debug, Clone, FromRow)]
pub struct MerchantRow {
    pub id: String,
    pub name: String,
    pub warehouse_json: String,
    pub warehouse_secrets: Option<Vec<u8>>,
    pub webhooks_enabled: i64,
    pub shared_secret: Option<Vec<u8>>,
    pub webhook_key: Vec<u8>,
    pub webhook_key_hash: String,
    pub kit_policy: String,
    pub carrier_overrides: String,
    pub created_at: i64,
    pub updated_at: i64,
}

const MERCHANT_COLS: &str = "id, name, warehouse_json, warehouse_secrets, webhooks_enabled, shared_secret, webhook_key, webhook_key_hash, kit_policy, carrier_overrides, created_at, updated_at";

impl Db {
    pub async fn insert_merchant(&self, m: &MerchantRow) -> Result<(), DbError> {
        sqlx::query(sql!(
            "INSERT INTO merchants ({MERCHANT_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
        ))
        .bind(&m.id)
        .bind(&m.name)
        .bind(&m.warehouse_json)
        .bind(&m.warehouse_secrets)
        .bind(m.webhooks_enabled)
        .bind(&m.shared_secret)
        .bind(&m.webhook_key)
        .bind(&m.webhook_key_hash)
        .bind(&m.kit_policy)
        .bind(&m.carrier_overrides)
        .bind(m.created_at)
        .bind(m.updated_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn update_merchant(&self, m: &MerchantRow) -> Result<(), DbError> {
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
        .bind(m.webhooks_enabled)
        .bind(&m.shared_secret)
        .bind(&m.webhook_key)
        .bind(&m.webhook_key_hash)
        .bind(&m.kit_policy)
        .bind(&m.carrier_overrides)
        .bind(m.updated_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn get_merchant(&self, id: &str) -> Result<Option<MerchantRow>, DbError> {
        Ok(
            sqlx::query_as(sql!("SELECT {MERCHANT_COLS} FROM merchants WHERE id = $1"))
                .bind(id)
                .fetch_optional(self.pool())
                .await?,
        )
    }

    pub async fn list_merchants(
        &self,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<MerchantRow>, DbError> {
        Ok(sqlx::query_as(sql!(
            "SELECT {MERCHANT_COLS} FROM merchants WHERE id > $1 ORDER BY id LIMIT $2"
        ))
        .bind(after.unwrap_or(""))
        .bind(limit)
        .fetch_all(self.pool())
        .await?)
    }

    /// The merchant whose current webhook key, or a rotated-out key still
    /// within its grace period, hashes to `hash`.
    pub async fn merchant_by_key_hash(&self, hash: &str) -> Result<Option<MerchantRow>, DbError> {
        Ok(sqlx::query_as(sql!(
            "SELECT {MERCHANT_COLS} FROM merchants WHERE webhook_key_hash = $1
             OR id = (SELECT merchant_id FROM retired_webhook_keys WHERE key_hash = $1 AND expires_at > $2) LIMIT 1"
        ))
        .bind(hash)
        .bind(now_micros())
        .fetch_optional(self.pool())
        .await?)
    }

    /// Replaces a merchant's webhook key; the old one keeps working until
    /// `old_expires_at`, or with `None` stops at once, together with every
    /// key of the merchant still in its grace period.
    pub async fn rotate_webhook_key(
        &self,
        merchant_id: &str,
        new_key_sealed: &[u8],
        new_key_hash: &str,
        old_expires_at: Option<i64>,
    ) -> Result<(), DbError> {
        let mut tx = self.begin().await?;
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
        sqlx::query("UPDATE merchants SET webhook_key = $2, webhook_key_hash = $3, updated_at = $4 WHERE id = $1")
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
    pub async fn delete_merchant(&self, id: &str) -> Result<bool, DbError> {
        let mut tx = self.begin().await?;
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
        sqlx::query("DELETE FROM merchants WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }
}

// ---------- connections and channels ----------

#[derive(Debug, Clone, FromRow)]
pub struct ConnectionRow {
    pub id: String,
    pub name: String,
    pub merchant_id: String,
    pub enabled: i64,
    pub order_prefix: String,
    pub store_json: String,
    pub store_token: Option<Vec<u8>>,
    /// An app's client secret, sealed (client credentials, authorization code).
    pub store_client_secret: Option<Vec<u8>>,
    /// `ok`, or `reconnect_needed` when the store refused the credentials.
    pub store_status: String,
    pub store_error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    /// Read only (from `store_tokens`): whether an app token is held, when
    /// it expires, and the scopes the store granted (comma-separated).
    pub token_held: i64,
    pub token_expires_at: Option<i64>,
    pub granted_scopes: Option<String>,
    /// Read only: whether the Shipments and Sales Orders channels are on.
    pub shipments_on: i64,
    pub sales_orders_on: i64,
}

/// The stored columns, in the order `insert_connection` binds them.
const CONNECTION_STORED: &str =
    "id, name, merchant_id, enabled, order_prefix, store_json, store_token,
    store_client_secret, store_status, store_error, created_at, updated_at";

/// Every column of a [`ConnectionRow`] (`c`: connections, `t`: its token).
const CONNECTION_COLS: &str = "c.id, c.name, c.merchant_id, c.enabled, c.order_prefix, c.store_json,
    c.store_token, c.store_client_secret, c.store_status, c.store_error, c.created_at, c.updated_at,
    CAST(CASE WHEN t.access_token IS NULL THEN 0 ELSE 1 END AS BIGINT) AS token_held,
    t.expires_at AS token_expires_at, t.scopes AS granted_scopes,
    CAST(COALESCE((SELECT ch.enabled FROM channels ch WHERE ch.connection_id = c.id AND ch.channel = 'shipments'), 0) AS BIGINT) AS shipments_on,
    CAST(COALESCE((SELECT ch.enabled FROM channels ch WHERE ch.connection_id = c.id AND ch.channel = 'sales_orders'), 0) AS BIGINT) AS sales_orders_on";

/// The connections with their tokens, for [`CONNECTION_COLS`].
const CONNECTION_FROM: &str = "connections c LEFT JOIN store_tokens t ON t.connection_id = c.id";

#[derive(Debug, Clone, FromRow)]
pub struct ChannelRow {
    pub connection_id: String,
    pub channel: String,
    pub enabled: i64,
    pub schedules_json: String,
    pub last_completed_at: Option<i64>,
    pub next_run_at: Option<i64>,
}

impl Db {
    /// Inserts a connection with its channels.
    pub async fn insert_connection(
        &self,
        c: &ConnectionRow,
        channels: &[ChannelRow],
    ) -> Result<(), DbError> {
        let mut tx = self.begin().await?;
        sqlx::query(sql!(
            "INSERT INTO connections ({CONNECTION_STORED}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
        ))
        .bind(&c.id)
        .bind(&c.name)
        .bind(&c.merchant_id)
        .bind(c.enabled)
        .bind(&c.order_prefix)
        .bind(&c.store_json)
        .bind(&c.store_token)
        .bind(&c.store_client_secret)
        .bind(&c.store_status)
        .bind(&c.store_error)
        .bind(c.created_at)
        .bind(c.updated_at)
        .execute(&mut *tx)
        .await?;
        for ch in channels {
            sqlx::query(
                "INSERT INTO channels (connection_id, channel, enabled, schedules_json) VALUES ($1, $2, $3, $4)",
            )
            .bind(&ch.connection_id)
            .bind(&ch.channel)
            .bind(ch.enabled)
            .bind(&ch.schedules_json)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn update_connection(&self, c: &ConnectionRow) -> Result<(), DbError> {
        sqlx::query(
            "UPDATE connections SET name = $2, merchant_id = $3, enabled = $4, order_prefix = $5,
               store_json = $6, store_token = $7, store_client_secret = $8, store_status = $9,
               store_error = $10, updated_at = $11 WHERE id = $1",
        )
        .bind(&c.id)
        .bind(&c.name)
        .bind(&c.merchant_id)
        .bind(c.enabled)
        .bind(&c.order_prefix)
        .bind(&c.store_json)
        .bind(&c.store_token)
        .bind(&c.store_client_secret)
        .bind(&c.store_status)
        .bind(&c.store_error)
        .bind(c.updated_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn get_connection(&self, id: &str) -> Result<Option<ConnectionRow>, DbError> {
        Ok(sqlx::query_as(sql!(
            "SELECT {CONNECTION_COLS} FROM {CONNECTION_FROM} WHERE c.id = $1"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await?)
    }

    pub async fn list_connections(
        &self,
        merchant_id: Option<&str>,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<ConnectionRow>, DbError> {
        let one = merchant_id.map(|m| vec![m.to_string()]);
        self.list_connections_of(one.as_deref(), after, limit).await
    }

    /// Connections of a set of merchants (`None`: all), by id.
    pub async fn list_connections_of(
        &self,
        merchant_ids: Option<&[String]>,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<ConnectionRow>, DbError> {
        let merchants = one_of("c.merchant_id", merchant_ids, 3);
        let mut q = sqlx::query_as::<_, ConnectionRow>(sql!(
            "SELECT {CONNECTION_COLS} FROM {CONNECTION_FROM} WHERE c.id > $1 AND {merchants}
             ORDER BY c.id LIMIT $2"
        ))
        .bind(after.unwrap_or(""))
        .bind(limit);
        for m in merchant_ids.into_iter().flatten() {
            q = q.bind(m);
        }
        Ok(q.fetch_all(self.pool()).await?)
    }

    pub async fn delete_connection(&self, id: &str) -> Result<bool, DbError> {
        let mut tx = self.begin().await?;
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

    pub async fn get_channel(
        &self,
        connection_id: &str,
        channel: &str,
    ) -> Result<Option<ChannelRow>, DbError> {
        Ok(sqlx::query_as(
            "SELECT connection_id, channel, enabled, schedules_json, last_completed_at, next_run_at
             FROM channels WHERE connection_id = $1 AND channel = $2",
        )
        .bind(connection_id)
        .bind(channel)
        .fetch_optional(self.pool())
        .await?)
    }

    pub async fn update_channel(&self, ch: &ChannelRow) -> Result<(), DbError> {
        sqlx::query(
            "UPDATE channels SET enabled = $3, schedules_json = $4, last_completed_at = $5, next_run_at = $6
             WHERE connection_id = $1 AND channel = $2",
        )
        .bind(&ch.connection_id)
        .bind(&ch.channel)
        .bind(ch.enabled)
        .bind(&ch.schedules_json)
        .bind(ch.last_completed_at)
        .bind(ch.next_run_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }
}

// ---------- events ----------

#[derive(Debug, Clone, FromRow)]
pub struct EventRow {
    pub id: String,
    pub merchant_id: String,
    pub received_at: i64,
    pub headers_json: String,
    pub body: Option<Vec<u8>>,
    pub body_size: i64,
    pub body_hash: Option<String>,
    pub webhook_id: Option<String>,
    pub verified: i64,
    pub outcome: String,
    pub detail: Option<String>,
    pub repeat_count: i64,
    pub shipment_ids: String,
}

pub(crate) const EVENT_COLS: &str = "id, merchant_id, received_at, headers_json, body, body_size, body_hash, webhook_id, verified, outcome, detail, repeat_count, shipment_ids";

/// [`EVENT_COLS`] without the headers and body.
const EVENT_SUMMARY_COLS: &str = "id, merchant_id, received_at, '[]' AS headers_json, NULL AS body, body_size, body_hash, webhook_id, verified, outcome, detail, repeat_count, shipment_ids";

pub async fn insert_event<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    e: &EventRow,
) -> Result<(), DbError> {
    let q = sqlx::query(sql!(
        "INSERT INTO events ({EVENT_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
    ));
    bind_event(q, e).execute(ex).await?;
    Ok(())
}

/// Binds the columns of [`EVENT_COLS`] of `e`, in order.
pub(crate) fn bind_event<'q>(
    q: sqlx::query::Query<'q, Any, sqlx::any::AnyArguments>,
    e: &'q EventRow,
) -> sqlx::query::Query<'q, Any, sqlx::any::AnyArguments> {
    q.bind(&e.id)
        .bind(&e.merchant_id)
        .bind(e.received_at)
        .bind(&e.headers_json)
        .bind(&e.body)
        .bind(e.body_size)
        .bind(&e.body_hash)
        .bind(&e.webhook_id)
        .bind(e.verified)
        .bind(&e.outcome)
        .bind(&e.detail)
        .bind(e.repeat_count)
        .bind(&e.shipment_ids)
}

/// The original event of a repeat delivery: same `webhook-id`, or else the
/// same body hash since `since` (both for the same merchant).
pub async fn find_repeat(
    tx: &mut Tx<'_>,
    merchant_id: &str,
    webhook_id: Option<&str>,
    body_hash: &str,
    since: i64,
) -> Result<Option<String>, DbError> {
    if let Some(wid) = webhook_id {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT id FROM events WHERE merchant_id = $1 AND webhook_id = $2")
                .bind(merchant_id)
                .bind(wid)
                .fetch_optional(&mut **tx)
                .await?;
        if let Some(r) = row {
            return Ok(Some(r.0));
        }
    }
    let row: Option<(String,)> = sqlx::query_as(
        "SELECT id FROM events WHERE merchant_id = $1 AND body_hash = $2 AND received_at > $3
         AND outcome IN ('accepted', 'needs_attention') ORDER BY received_at LIMIT 1",
    )
    .bind(merchant_id)
    .bind(body_hash)
    .bind(since)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.map(|r| r.0))
}

pub async fn bump_repeat(tx: &mut Tx<'_>, event_id: &str) -> Result<(), DbError> {
    sqlx::query("UPDATE events SET repeat_count = repeat_count + 1 WHERE id = $1")
        .bind(event_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

#[derive(Debug, Default, Clone)]
pub struct EventFilter {
    /// Events of these merchants only (`None`: any; empty: none).
    pub merchant_ids: Option<Vec<String>>,
    pub outcome: Option<String>,
}

impl Db {
    pub async fn get_event(&self, id: &str) -> Result<Option<EventRow>, DbError> {
        Ok(
            sqlx::query_as(sql!("SELECT {EVENT_COLS} FROM events WHERE id = $1"))
                .bind(id)
                .fetch_optional(self.pool())
                .await?,
        )
    }

    /// Newest first; `before` is the cursor (an event id). Summaries: the
    /// rows come without their headers (`[]`) and body (`None`), which only
    /// [`Db::get_event`] reads.
    pub async fn list_events(
        &self,
        f: &EventFilter,
        before: Option<&str>,
        limit: i64,
    ) -> Result<Vec<EventRow>, DbError> {
        let merchants = one_of("merchant_id", f.merchant_ids.as_deref(), 4);
        let mut q = sqlx::query_as::<_, EventRow>(sql!(
            "SELECT {EVENT_SUMMARY_COLS} FROM events WHERE ($1 = '' OR id < $1) AND {merchants}
             AND ($2 = '' OR outcome = $2) ORDER BY id DESC LIMIT $3"
        ))
        .bind(before.unwrap_or(""))
        .bind(f.outcome.as_deref().unwrap_or(""))
        .bind(limit);
        for m in f.merchant_ids.iter().flatten() {
            q = q.bind(m);
        }
        Ok(q.fetch_all(self.pool()).await?)
    }

    pub async fn set_event_result(
        &self,
        id: &str,
        outcome: &str,
        detail: Option<&str>,
        shipment_ids: &str,
    ) -> Result<(), DbError> {
        set_event_result(self.pool(), id, outcome, detail, shipment_ids).await
    }
}

/// [`Db::set_event_result`] on `ex` (inside a transaction, say).
pub async fn set_event_result<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    id: &str,
    outcome: &str,
    detail: Option<&str>,
    shipment_ids: &str,
) -> Result<(), DbError> {
    sqlx::query("UPDATE events SET outcome = $2, detail = $3, shipment_ids = $4 WHERE id = $1")
        .bind(id)
        .bind(outcome)
        .bind(detail)
        .bind(shipment_ids)
        .execute(ex)
        .await?;
    Ok(())
}

// ---------- shipments ----------

#[derive(Debug, Clone, FromRow)]
pub struct ShipmentRow {
    pub id: String,
    pub merchant_id: String,
    pub number: String,
    pub connection_id: Option<String>,
    pub order_id: Option<String>,
    pub order_name: String,
    pub status: String,
    pub error: Option<String>,
    pub sources: String,
    pub first_seen_via: String,
    pub version_json: String,
    pub version_at: Option<String>,
    pub content_hash: String,
    pub received_at: i64,
    pub updated_at: i64,
    pub completed_at: Option<i64>,
}

const SHIPMENT_COLS: &str = "id, merchant_id, number, connection_id, order_id, order_name, status, error, sources, first_seen_via, version_json, version_at, content_hash, received_at, updated_at, completed_at";

/// The shipment, locked for the rest of the transaction (SQLite's write
/// transactions lock the whole database already; PostgreSQL locks the row),
/// so that concurrent merges and runs never overwrite each other.
pub async fn shipment_by_number(
    tx: &mut Tx<'_>,
    merchant_id: &str,
    number: &str,
) -> Result<Option<ShipmentRow>, DbError> {
    let lock = for_update(tx);
    Ok(sqlx::query_as(sql!(
        "SELECT {SHIPMENT_COLS} FROM shipments WHERE merchant_id = $1 AND number = $2{lock}"
    ))
    .bind(merchant_id)
    .bind(number)
    .fetch_optional(&mut **tx)
    .await?)
}

pub async fn insert_shipment(tx: &mut Tx<'_>, s: &ShipmentRow) -> Result<(), DbError> {
    sqlx::query(sql!(
        "INSERT INTO shipments ({SHIPMENT_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"
    ))
    .bind(&s.id)
    .bind(&s.merchant_id)
    .bind(&s.number)
    .bind(&s.connection_id)
    .bind(&s.order_id)
    .bind(&s.order_name)
    .bind(&s.status)
    .bind(&s.error)
    .bind(&s.sources)
    .bind(&s.first_seen_via)
    .bind(&s.version_json)
    .bind(&s.version_at)
    .bind(&s.content_hash)
    .bind(s.received_at)
    .bind(s.updated_at)
    .bind(s.completed_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn update_shipment<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    s: &ShipmentRow,
) -> Result<(), DbError> {
    sqlx::query(
        "UPDATE shipments SET connection_id = $2, order_id = $3, order_name = $4, status = $5, error = $6,
           sources = $7, first_seen_via = $8, version_json = $9, version_at = $10, content_hash = $11,
           updated_at = $12, completed_at = $13 WHERE id = $1",
    )
    .bind(&s.id)
    .bind(&s.connection_id)
    .bind(&s.order_id)
    .bind(&s.order_name)
    .bind(&s.status)
    .bind(&s.error)
    .bind(&s.sources)
    .bind(&s.first_seen_via)
    .bind(&s.version_json)
    .bind(&s.version_at)
    .bind(&s.content_hash)
    .bind(s.updated_at)
    .bind(s.completed_at)
    .execute(ex)
    .await?;
    Ok(())
}

#[derive(Debug, Default, Clone)]
pub struct ShipmentFilter {
    /// Shipments of these merchants only (`None`: any; empty: none).
    pub merchant_ids: Option<Vec<String>>,
    pub connection_id: Option<String>,
    pub status: Option<String>,
    pub order_name: Option<String>,
    pub source: Option<String>,
}

impl Db {
    pub async fn get_shipment(&self, id: &str) -> Result<Option<ShipmentRow>, DbError> {
        Ok(
            sqlx::query_as(sql!("SELECT {SHIPMENT_COLS} FROM shipments WHERE id = $1"))
                .bind(id)
                .fetch_optional(self.pool())
                .await?,
        )
    }

    pub async fn save_shipment(&self, s: &ShipmentRow) -> Result<(), DbError> {
        update_shipment(self.pool(), s).await
    }

    /// Newest first; `before` is the cursor (a shipment id).
    pub async fn list_shipments(
        &self,
        f: &ShipmentFilter,
        before: Option<&str>,
        limit: i64,
    ) -> Result<Vec<ShipmentRow>, DbError> {
        let order_name = f
            .order_name
            .as_deref()
            .map(|n| n.trim_start_matches('#'))
            .unwrap_or("");
        let source = f.source.as_deref().unwrap_or("");
        let merchants = one_of("merchant_id", f.merchant_ids.as_deref(), 9);
        let mut q = sqlx::query_as::<_, ShipmentRow>(sql!(
            "SELECT {SHIPMENT_COLS} FROM shipments WHERE ($1 = '' OR id < $1) AND {merchants}
             AND ($2 = '' OR connection_id = $2) AND ($3 = '' OR status = $3)
             AND ($4 = '' OR order_name = $4 OR order_name = $5)
             AND ($6 = '' OR sources LIKE $7)
             ORDER BY id DESC LIMIT $8"
        ))
        .bind(before.unwrap_or(""))
        .bind(f.connection_id.as_deref().unwrap_or(""))
        .bind(f.status.as_deref().unwrap_or(""))
        .bind(order_name)
        .bind(format!("#{order_name}"))
        .bind(source)
        .bind(format!("%{source}%"))
        .bind(limit);
        for m in f.merchant_ids.iter().flatten() {
            q = q.bind(m);
        }
        Ok(q.fetch_all(self.pool()).await?)
    }

    /// Shipments whose stored warehouse version mentions `needle` (a tracking
    /// number, say; ASCII case ignored), newest first; the caller checks where
    /// it appears.
    pub async fn shipments_mentioning(
        &self,
        merchant_ids: Option<&[String]>,
        needle: &str,
        limit: i64,
    ) -> Result<Vec<ShipmentRow>, DbError> {
        let merchants = one_of("merchant_id", merchant_ids, 3);
        let mut q = sqlx::query_as::<_, ShipmentRow>(sql!(
            "SELECT {SHIPMENT_COLS} FROM shipments WHERE {merchants}
             AND LOWER(version_json) LIKE LOWER($1) ESCAPE '\\' ORDER BY id DESC LIMIT $2"
        ))
        .bind(format!("%{}%", like_escape(needle)))
        .bind(limit);
        for m in merchant_ids.into_iter().flatten() {
            q = q.bind(m);
        }
        Ok(q.fetch_all(self.pool()).await?)
    }

    /// Every shipment of one store order, first received first.
    pub async fn shipments_for_order(&self, order_id: &str) -> Result<Vec<ShipmentRow>, DbError> {
        Ok(sqlx::query_as(sql!(
            "SELECT {SHIPMENT_COLS} FROM shipments WHERE order_id = $1 ORDER BY received_at, id"
        ))
        .bind(order_id)
        .fetch_all(self.pool())
        .await?)
    }

    /// Ids of a merchant's shipments that still wait for the store.
    pub async fn pending_shipment_ids(&self, merchant_id: &str) -> Result<Vec<String>, DbError> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT id FROM shipments WHERE merchant_id = $1 AND status IN ('new', 'open') ORDER BY id",
        )
        .bind(merchant_id)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    /// Shipments per `first_seen_via` (webhook, poll), optionally of one merchant.
    pub async fn count_shipments_by_first_seen(
        &self,
        merchant_ids: Option<&[String]>,
    ) -> Result<Vec<(String, i64)>, DbError> {
        let merchants = one_of("merchant_id", merchant_ids, 1);
        let mut q = sqlx::query_as::<_, (String, i64)>(sql!(
            "SELECT first_seen_via, COUNT(*) FROM shipments WHERE {merchants}
             GROUP BY first_seen_via"
        ));
        for m in merchant_ids.into_iter().flatten() {
            q = q.bind(m);
        }
        Ok(q.fetch_all(self.pool()).await?)
    }

    /// `(received_at, completed_at)` of the shipments completed since `since`
    /// (microseconds), optionally of one merchant.
    pub async fn shipment_completions_since(
        &self,
        merchant_ids: Option<&[String]>,
        since: i64,
    ) -> Result<Vec<(i64, i64)>, DbError> {
        let merchants = one_of("merchant_id", merchant_ids, 2);
        let mut q = sqlx::query_as::<_, (i64, i64)>(sql!(
            "SELECT received_at, completed_at FROM shipments WHERE {merchants}
             AND completed_at IS NOT NULL AND completed_at >= $1"
        ))
        .bind(since);
        for m in merchant_ids.into_iter().flatten() {
            q = q.bind(m);
        }
        Ok(q.fetch_all(self.pool()).await?)
    }

    pub async fn count_shipments_by_status(&self) -> Result<Vec<(String, i64)>, DbError> {
        Ok(
            sqlx::query_as("SELECT status, COUNT(*) FROM shipments GROUP BY status")
                .fetch_all(self.pool())
                .await?,
        )
    }
}

// ---------- shipment versions ----------

#[derive(Debug, Clone, FromRow)]
pub struct VersionRow {
    pub id: String,
    pub shipment_id: String,
    pub event_id: Option<String>,
    pub source: String,
    pub received_at: i64,
    pub content_hash: String,
    pub version_json: String,
}

pub async fn insert_version(tx: &mut Tx<'_>, v: &VersionRow) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO shipment_versions (id, shipment_id, event_id, source, received_at, content_hash, version_json)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&v.id)
    .bind(&v.shipment_id)
    .bind(&v.event_id)
    .bind(&v.source)
    .bind(v.received_at)
    .bind(&v.content_hash)
    .bind(&v.version_json)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Db {
    pub async fn versions_for(&self, shipment_id: &str) -> Result<Vec<VersionRow>, DbError> {
        Ok(sqlx::query_as(
            "SELECT id, shipment_id, event_id, source, received_at, content_hash, version_json
             FROM shipment_versions WHERE shipment_id = $1 ORDER BY id",
        )
        .bind(shipment_id)
        .fetch_all(self.pool())
        .await?)
    }
}

// ---------- store fulfillments ----------

#[derive(Debug, Clone, FromRow)]
pub struct StoreFulfillmentRow {
    pub id: String,
    pub shipment_id: String,
    pub connection_id: String,
    pub store_order_id: String,
    pub fulfillment_order_id: String,
    pub store_fulfillment_id: Option<String>,
    pub carrier: Option<String>,
    /// store line id → units, JSON object
    pub lines_json: String,
    /// fulfillment-order line item id → units, JSON object
    pub items_json: String,
    /// `[[package key, tracking number], …]`
    pub tracking_json: String,
    /// `pending` (sent or about to be; outcome unknown) or `done`
    pub state: String,
    pub created_at: i64,
    pub updated_at: i64,
}

const SF_COLS: &str = "id, shipment_id, connection_id, store_order_id, fulfillment_order_id, store_fulfillment_id, carrier, lines_json, items_json, tracking_json, state, created_at, updated_at";

impl Db {
    pub async fn insert_store_fulfillment(&self, f: &StoreFulfillmentRow) -> Result<(), DbError> {
        sqlx::query(sql!(
            "INSERT INTO store_fulfillments ({SF_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
        ))
        .bind(&f.id)
        .bind(&f.shipment_id)
        .bind(&f.connection_id)
        .bind(&f.store_order_id)
        .bind(&f.fulfillment_order_id)
        .bind(&f.store_fulfillment_id)
        .bind(&f.carrier)
        .bind(&f.lines_json)
        .bind(&f.items_json)
        .bind(&f.tracking_json)
        .bind(&f.state)
        .bind(f.created_at)
        .bind(f.updated_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn update_store_fulfillment(&self, f: &StoreFulfillmentRow) -> Result<(), DbError> {
        sqlx::query(
            "UPDATE store_fulfillments SET store_fulfillment_id = $2, tracking_json = $3, state = $4, updated_at = $5
             WHERE id = $1",
        )
        .bind(&f.id)
        .bind(&f.store_fulfillment_id)
        .bind(&f.tracking_json)
        .bind(&f.state)
        .bind(now_micros())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn delete_store_fulfillment(&self, id: &str) -> Result<(), DbError> {
        sqlx::query("DELETE FROM store_fulfillments WHERE id = $1")
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub async fn store_fulfillments_for_shipment(
        &self,
        shipment_id: &str,
    ) -> Result<Vec<StoreFulfillmentRow>, DbError> {
        Ok(sqlx::query_as(sql!(
            "SELECT {SF_COLS} FROM store_fulfillments WHERE shipment_id = $1 ORDER BY id"
        ))
        .bind(shipment_id)
        .fetch_all(self.pool())
        .await?)
    }

    pub async fn store_fulfillments_for_order(
        &self,
        store_order_id: &str,
    ) -> Result<Vec<StoreFulfillmentRow>, DbError> {
        Ok(sqlx::query_as(sql!(
            "SELECT {SF_COLS} FROM store_fulfillments WHERE store_order_id = $1 ORDER BY id"
        ))
        .bind(store_order_id)
        .fetch_all(self.pool())
        .await?)
    }
}

// ---------- activity ----------

#[derive(Debug, Clone, FromRow)]
pub struct ActivityRow {
    pub id: String,
    pub subject_id: String,
    pub at: i64,
    pub kind: String,
    pub message: String,
}

pub async fn add_activity<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    subject_id: &str,
    kind: &str,
    message: &str,
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO activity (id, subject_id, at, kind, message) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(new_id("act"))
    .bind(subject_id)
    .bind(now_micros())
    .bind(kind)
    .bind(message)
    .execute(ex)
    .await?;
    Ok(())
}

impl Db {
    pub async fn activity(
        &self,
        subject_id: &str,
        kind: &str,
        message: &str,
    ) -> Result<(), DbError> {
        add_activity(self.pool(), subject_id, kind, message).await
    }

    pub async fn list_activity(&self, subject_id: &str) -> Result<Vec<ActivityRow>, DbError> {
        Ok(sqlx::query_as(
            "SELECT id, subject_id, at, kind, message FROM activity WHERE subject_id = $1 ORDER BY id",
        )
        .bind(subject_id)
        .fetch_all(self.pool())
        .await?)
    }
}

// ---------- kit recipes ----------

/// Saves a kit recipe (inserted or replaced), e.g. inside the transaction
/// that stores a page of the pull.
pub async fn save_recipe<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    merchant_id: &str,
    kit_sku: &str,
    component_sku: &str,
    per_kit: i64,
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO kit_recipes (merchant_id, kit_sku, component_sku, per_kit, updated_at) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (merchant_id, kit_sku, component_sku) DO UPDATE SET per_kit = excluded.per_kit, updated_at = excluded.updated_at",
    )
    .bind(merchant_id)
    .bind(kit_sku)
    .bind(component_sku)
    .bind(per_kit)
    .bind(now_micros())
    .execute(ex)
    .await?;
    Ok(())
}

impl Db {
    pub async fn save_recipe(
        &self,
        merchant_id: &str,
        kit_sku: &str,
        component_sku: &str,
        per_kit: i64,
    ) -> Result<(), DbError> {
        save_recipe(self.pool(), merchant_id, kit_sku, component_sku, per_kit).await
    }

    /// (kit sku, component sku, per kit) for a merchant.
    pub async fn recipes(&self, merchant_id: &str) -> Result<Vec<(String, String, i64)>, DbError> {
        Ok(sqlx::query_as(
            "SELECT kit_sku, component_sku, per_kit FROM kit_recipes WHERE merchant_id = $1",
        )
        .bind(merchant_id)
        .fetch_all(self.pool())
        .await?)
    }
}

// ---------- runs ----------

#[derive(Debug, Clone, FromRow)]
pub struct RunRow {
    pub id: String,
    pub connection_id: String,
    pub channel: String,
    /// queued | running | succeeded | failed
    pub status: String,
    /// schedule | manual | cli
    pub trigger_kind: String,
    /// The schedule slot that fired it (scheduled runs).
    pub slot_at: Option<i64>,
    /// Lower bound of the pull (cursor minus overlap), fixed when it starts.
    pub since_at: Option<i64>,
    /// Next page still to read (resume point after a crash).
    pub page_href: Option<String>,
    pub counts_json: String,
    pub error: Option<String>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

const RUN_COLS: &str = "id, connection_id, channel, status, trigger_kind, slot_at, since_at, page_href, counts_json, error, created_at, started_at, finished_at";

/// Why a run could not be queued.
#[derive(Debug, Clone)]
pub enum QueueRun {
    Queued(Box<RunRow>),
    /// Another run of the channel is queued or running: its id.
    InProgress(String),
}

/// Saves a run's state, e.g. its resume point inside the transaction that
/// stores the page before it.
pub async fn save_run_row<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    r: &RunRow,
) -> Result<(), DbError> {
    sqlx::query(
        "UPDATE runs SET status = $2, since_at = $3, page_href = $4, counts_json = $5, error = $6,
           started_at = $7, finished_at = $8 WHERE id = $1",
    )
    .bind(&r.id)
    .bind(&r.status)
    .bind(r.since_at)
    .bind(&r.page_href)
    .bind(&r.counts_json)
    .bind(&r.error)
    .bind(r.started_at)
    .bind(r.finished_at)
    .execute(ex)
    .await?;
    Ok(())
}

impl Db {
    /// Queues a run and its job in one transaction, unless one is already
    /// queued or running for the channel (a unique index decides, so this
    /// holds across nodes).
    pub async fn queue_run(
        &self,
        connection_id: &str,
        channel: &str,
        trigger_kind: &str,
        slot_at: Option<i64>,
        job_kind: &str,
    ) -> Result<QueueRun, DbError> {
        let now = now_micros();
        let run = RunRow {
            id: new_id("run"),
            connection_id: connection_id.to_string(),
            channel: channel.to_string(),
            status: "queued".into(),
            trigger_kind: trigger_kind.to_string(),
            slot_at,
            since_at: None,
            page_href: None,
            counts_json: "{}".into(),
            error: None,
            created_at: now,
            started_at: None,
            finished_at: None,
        };
        let mut tx = self.begin().await?;
        let active: Option<(String,)> = sqlx::query_as(
            "SELECT id FROM runs WHERE connection_id = $1 AND channel = $2 AND status IN ('queued', 'running')",
        )
        .bind(connection_id)
        .bind(channel)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some((id,)) = active {
            return Ok(QueueRun::InProgress(id));
        }
        let inserted = sqlx::query(sql!(
            "INSERT INTO runs ({RUN_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
        ))
        .bind(&run.id)
        .bind(&run.connection_id)
        .bind(&run.channel)
        .bind(&run.status)
        .bind(&run.trigger_kind)
        .bind(run.slot_at)
        .bind(run.since_at)
        .bind(&run.page_href)
        .bind(&run.counts_json)
        .bind(&run.error)
        .bind(run.created_at)
        .bind(run.started_at)
        .bind(run.finished_at)
        .execute(&mut *tx)
        .await;
        match inserted {
            Ok(_) => {}
            Err(e) => {
                let e = DbError::from(e);
                if e.is_unique_violation() {
                    drop(tx);
                    let id = self
                        .active_run(connection_id, channel)
                        .await?
                        .map(|r| r.id)
                        .unwrap_or_default();
                    return Ok(QueueRun::InProgress(id));
                }
                return Err(e);
            }
        }
        let payload = serde_json::json!({ "run_id": run.id }).to_string();
        crate::jobs::enqueue(
            &mut tx,
            job_kind,
            Some(&format!("run:{}", run.id)),
            &payload,
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(QueueRun::Queued(Box::new(run)))
    }

    pub async fn active_run(
        &self,
        connection_id: &str,
        channel: &str,
    ) -> Result<Option<RunRow>, DbError> {
        Ok(sqlx::query_as(sql!(
            "SELECT {RUN_COLS} FROM runs WHERE connection_id = $1 AND channel = $2 AND status IN ('queued', 'running')"
        ))
        .bind(connection_id)
        .bind(channel)
        .fetch_optional(self.pool())
        .await?)
    }

    pub async fn get_run(&self, id: &str) -> Result<Option<RunRow>, DbError> {
        Ok(
            sqlx::query_as(sql!("SELECT {RUN_COLS} FROM runs WHERE id = $1"))
                .bind(id)
                .fetch_optional(self.pool())
                .await?,
        )
    }

    pub async fn last_run(
        &self,
        connection_id: &str,
        channel: &str,
    ) -> Result<Option<RunRow>, DbError> {
        Ok(sqlx::query_as(sql!(
            "SELECT {RUN_COLS} FROM runs WHERE connection_id = $1 AND channel = $2 ORDER BY id DESC LIMIT 1"
        ))
        .bind(connection_id)
        .bind(channel)
        .fetch_optional(self.pool())
        .await?)
    }

    pub async fn save_run_row(&self, r: &RunRow) -> Result<(), DbError> {
        save_run_row(self.pool(), r).await
    }

    /// Channels whose connection is enabled and which are on.
    pub async fn enabled_channels(&self) -> Result<Vec<ChannelRow>, DbError> {
        Ok(sqlx::query_as(
            "SELECT ch.connection_id, ch.channel, ch.enabled, ch.schedules_json, ch.last_completed_at, ch.next_run_at
             FROM channels ch JOIN connections c ON c.id = ch.connection_id
             WHERE ch.enabled = 1 AND c.enabled = 1",
        )
        .fetch_all(self.pool())
        .await?)
    }

    /// Sets `next_run_at` only if it still is `expected` (so that one node
    /// advances a channel's schedule per slot).
    pub async fn advance_schedule(
        &self,
        connection_id: &str,
        channel: &str,
        expected: Option<i64>,
        next: Option<i64>,
    ) -> Result<bool, DbError> {
        let r = sqlx::query(
            "UPDATE channels SET next_run_at = $3 WHERE connection_id = $1 AND channel = $2
             AND (next_run_at = $4 OR (next_run_at IS NULL AND $5 = 1))",
        )
        .bind(connection_id)
        .bind(channel)
        .bind(next)
        .bind(expected.unwrap_or(-1))
        .bind(i64::from(expected.is_none()))
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// The pull cursor of a channel (`cursor_at`) and when it last completed.
    pub async fn channel_cursor(
        &self,
        connection_id: &str,
        channel: &str,
    ) -> Result<Option<i64>, DbError> {
        let row: Option<(Option<i64>,)> = sqlx::query_as(
            "SELECT cursor_at FROM channels WHERE connection_id = $1 AND channel = $2",
        )
        .bind(connection_id)
        .bind(channel)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.and_then(|r| r.0))
    }

    /// Records a completed run: the new cursor and `last_completed_at`.
    pub async fn complete_channel_run(
        &self,
        connection_id: &str,
        channel: &str,
        cursor_at: i64,
        completed_at: i64,
    ) -> Result<(), DbError> {
        sqlx::query(
            "UPDATE channels SET cursor_at = $3, last_completed_at = $4 WHERE connection_id = $1 AND channel = $2",
        )
        .bind(connection_id)
        .bind(channel)
        .bind(cursor_at)
        .bind(completed_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_of_a_set() {
        let two = ["mer_a".to_string(), "mer_b".to_string()];
        assert_eq!(one_of("merchant_id", None, 3), "1 = 1");
        assert_eq!(one_of("merchant_id", Some(&[]), 3), "1 = 0");
        assert_eq!(
            one_of("merchant_id", Some(&two), 3),
            "merchant_id IN ($3, $4)"
        );
    }

    #[test]
    fn like_patterns_take_wildcards_literally() {
        assert_eq!(like_escape(r"1Z_5%\x"), r"1Z\_5\%\\x");
    }
}
