//! Store orders of the Sales Orders channel: the local record of each order
//! shipsync sends to the warehouse (state, error, Deposco number and id),
//! and the queries the engine and the API need. SQL lives here only.

use serde::{Deserialize, Serialize};
use shipsync_core::states::{OrderStatus, Source};
use sqlx::any::AnyRow;
use sqlx::{Any, Executor, Row};

use crate::decode::{self, Cols, to_json};
use crate::unit::Conn;
use crate::{DbError, for_update, new_id, now_micros, one_of, quoted};

/// A store order's line as kept in `orders.lines_json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLineRow {
    /// The store's line id.
    pub id: String,
    pub sku: Option<String>,
    pub name: Option<String>,
    #[serde(default)]
    pub quantity: u64,
    /// The bundle (line item group) it belongs to.
    pub group: Option<String>,
    /// Units the warehouse has for it; `None` on records from before the
    /// order lifecycle (then `quantity` once the order was sent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent: Option<u64>,
    /// Why the line sends nothing to the warehouse
    /// (`shipsync_core::order_lifecycle::Skip`'s word), if so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    /// Units the warehouse should get, as last planned (the rest being
    /// fulfilled elsewhere, say); `None`: `quantity`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_send: Option<u64>,
}

/// Every column of `orders`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRecord {
    pub id: String,
    pub connection_id: String,
    /// Shopify GID of the order.
    pub store_order_id: String,
    /// Store order name, e.g. `#1001`.
    pub name: String,
    pub status: OrderStatus,
    /// The store's lines (`lines_json`).
    pub lines: Vec<OrderLineRow>,
    pub created_at: i64,
    pub updated_at: i64,
    /// Why the order is in `error` (Deposco's message), or the last failure
    /// while a push waits to retry.
    pub error: Option<String>,
    /// The store order as last pulled (`StoreOrderForWarehouse`), JSON.
    pub store_json: Option<String>,
    /// The store's `updatedAt` of that pull.
    pub store_updated_at: Option<String>,
    /// Deposco's order number, once sent (or adopted).
    pub warehouse_number: Option<String>,
    /// Deposco's order id, once sent (or adopted).
    pub warehouse_id: Option<String>,
    pub sent_at: Option<i64>,
    /// How shipsync first learned of it (`None`: before the order
    /// lifecycle, a poll).
    pub first_seen_via: Option<Source>,
    /// Until when a `held` order waits (its hold period, microseconds).
    pub hold_until: Option<i64>,
    /// Why a `held` order waits.
    pub hold_reason: Option<String>,
}

const COLS: &str = "id, connection_id, store_order_id, name, status, lines_json, created_at, updated_at, error, store_json, store_updated_at, warehouse_number, warehouse_id, sent_at, first_seen_via, hold_until, hold_reason";

impl TryFrom<AnyRow> for OrderRecord {
    type Error = DbError;

    fn try_from(row: AnyRow) -> Result<Self, DbError> {
        let c = Cols::of(&row, "orders");
        Ok(Self {
            id: c.get("id")?,
            connection_id: c.get("connection_id")?,
            store_order_id: c.get("store_order_id")?,
            name: c.get("name")?,
            status: c.word("status")?,
            lines: c.json("lines_json")?,
            created_at: c.get("created_at")?,
            updated_at: c.get("updated_at")?,
            error: c.get("error")?,
            store_json: c.get("store_json")?,
            store_updated_at: c.get("store_updated_at")?,
            warehouse_number: c.get("warehouse_number")?,
            warehouse_id: c.get("warehouse_id")?,
            sent_at: c.get("sent_at")?,
            first_seen_via: c.word_opt("first_seen_via")?,
            hold_until: c.get("hold_until")?,
            hold_reason: c.get("hold_reason")?,
        })
    }
}

/// Filters of the order list; empty strings mean "any".
#[derive(Debug, Default, Clone)]
pub struct OrderFilter {
    pub connection_id: Option<String>,
    /// Orders of these merchants' connections only (`None`: any; empty:
    /// none).
    pub merchant_ids: Option<Vec<String>>,
    pub status: Option<OrderStatus>,
    /// Store order name, with or without the leading `#`.
    pub name: Option<String>,
    /// How shipsync first learned of it (records from before the order
    /// lifecycle count as a poll).
    pub first_seen_via: Option<Source>,
    /// Only these (connection id, store order id) pairs, e.g. the orders of
    /// the shipments that carry a tracking number (`None`: any).
    pub store_orders: Option<Vec<(String, String)>>,
}

/// The order of a store order id on a connection, locked for the rest of the
/// transaction (PostgreSQL locks the row; SQLite's write transactions lock
/// the database already).
pub async fn by_store_id(
    tx: &mut impl Conn,
    connection_id: &str,
    store_order_id: &str,
) -> Result<Option<OrderRecord>, DbError> {
    let lock = for_update(tx);
    decode::opt(
        sqlx::query(sql!(
            "SELECT {COLS} FROM orders WHERE connection_id = $1 AND store_order_id = $2{lock}"
        ))
        .bind(connection_id)
        .bind(store_order_id)
        .fetch_optional(tx.ex())
        .await?,
    )
}

/// The order `id`, locked for the rest of the transaction.
pub async fn get_for_update(tx: &mut impl Conn, id: &str) -> Result<Option<OrderRecord>, DbError> {
    let lock = for_update(tx);
    decode::opt(
        sqlx::query(sql!("SELECT {COLS} FROM orders WHERE id = $1{lock}"))
            .bind(id)
            .fetch_optional(tx.ex())
            .await?,
    )
}

pub async fn insert<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    o: &OrderRecord,
) -> Result<(), DbError> {
    sqlx::query(sql!(
        "INSERT INTO orders ({COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)"
    ))
    .bind(&o.id)
    .bind(&o.connection_id)
    .bind(&o.store_order_id)
    .bind(&o.name)
    .bind(o.status.as_str())
    .bind(to_json("orders.lines_json", &o.lines)?)
    .bind(o.created_at)
    .bind(o.updated_at)
    .bind(&o.error)
    .bind(&o.store_json)
    .bind(&o.store_updated_at)
    .bind(&o.warehouse_number)
    .bind(&o.warehouse_id)
    .bind(o.sent_at)
    .bind(o.first_seen_via.map(Source::as_str))
    .bind(o.hold_until)
    .bind(&o.hold_reason)
    .execute(ex)
    .await?;
    Ok(())
}

/// Writes every mutable column of the order.
pub async fn update<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    o: &OrderRecord,
) -> Result<(), DbError> {
    sqlx::query(
        "UPDATE orders SET name = $2, status = $3, lines_json = $4, updated_at = $5, error = $6,
           store_json = $7, store_updated_at = $8, warehouse_number = $9, warehouse_id = $10, sent_at = $11,
           hold_until = $12, hold_reason = $13
         WHERE id = $1",
    )
    .bind(&o.id)
    .bind(&o.name)
    .bind(o.status.as_str())
    .bind(to_json("orders.lines_json", &o.lines)?)
    .bind(o.updated_at)
    .bind(&o.error)
    .bind(&o.store_json)
    .bind(&o.store_updated_at)
    .bind(&o.warehouse_number)
    .bind(&o.warehouse_id)
    .bind(o.sent_at)
    .bind(o.hold_until)
    .bind(&o.hold_reason)
    .execute(ex)
    .await?;
    Ok(())
}

/// Moves the order `id` to `status` (clearing its error) unless it is
/// settled ([`OrderStatus::is_settled`]) or there already: one statement,
/// no read first. Whether it moved.
pub async fn move_unless_settled<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    id: &str,
    status: OrderStatus,
    now: i64,
) -> Result<bool, DbError> {
    let settled: Vec<&'static str> = OrderStatus::ALL
        .iter()
        .filter(|s| s.is_settled())
        .map(|s| s.as_str())
        .collect();
    let settled = quoted(&settled);
    let moved = sqlx::query(sql!(
        "UPDATE orders SET status = $2, error = NULL, updated_at = $3
         WHERE id = $1 AND status <> $2 AND status NOT IN ({settled})"
    ))
    .bind(id)
    .bind(status.as_str())
    .bind(now)
    .execute(ex)
    .await?;
    Ok(moved.rows_affected() > 0)
}

/// Inserts or refreshes the local record of a store order; returns it as
/// stored. `status` applies to a new record only: an order's state is kept
/// (the Sales Orders channel and shipments move it). The lines of an order
/// the Sales Orders channel follows (`store_json` set) are its own: kept.
/// `lines`: `None` when the caller does not know all of them (a new record
/// has none, a known one keeps its own).
pub async fn upsert<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    connection_id: &str,
    store_order_id: &str,
    name: &str,
    status: OrderStatus,
    lines: Option<&[OrderLineRow]>,
) -> Result<OrderRecord, DbError> {
    let now = now_micros();
    let row = sqlx::query(sql!(
        "INSERT INTO orders (id, connection_id, store_order_id, name, status, lines_json, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7)
         ON CONFLICT (connection_id, store_order_id) DO UPDATE SET name = excluded.name,
           lines_json = CASE WHEN orders.store_json IS NULL AND $8 THEN excluded.lines_json
                             ELSE orders.lines_json END,
           updated_at = excluded.updated_at
         RETURNING {COLS}"
    ))
    .bind(new_id("ord"))
    .bind(connection_id)
    .bind(store_order_id)
    .bind(name)
    .bind(status.as_str())
    .bind(to_json("orders.lines_json", lines.unwrap_or(&[]))?)
    .bind(now)
    .bind(lines.is_some())
    .fetch_one(ex)
    .await?;
    OrderRecord::try_from(row)
}

pub async fn get<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    id: &str,
) -> Result<Option<OrderRecord>, DbError> {
    decode::opt(
        sqlx::query(sql!("SELECT {COLS} FROM orders WHERE id = $1"))
            .bind(id)
            .fetch_optional(ex)
            .await?,
    )
}

/// The local order of a store order on a connection.
pub async fn of_store_order<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    connection_id: &str,
    store_order_id: &str,
) -> Result<Option<OrderRecord>, DbError> {
    decode::opt(
        sqlx::query(sql!(
            "SELECT {COLS} FROM orders WHERE connection_id = $1 AND store_order_id = $2"
        ))
        .bind(connection_id)
        .bind(store_order_id)
        .fetch_optional(ex)
        .await?,
    )
}

/// Newest first; `before` is the cursor (an order id).
pub async fn list<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    f: &OrderFilter,
    before: Option<&str>,
    limit: i64,
) -> Result<Vec<OrderRecord>, DbError> {
    let name = f
        .name
        .as_deref()
        .map(|n| n.trim().trim_start_matches('#'))
        .unwrap_or("");
    // One text per pair: a store order id never contains a space.
    let pairs: Option<Vec<String>> = f
        .store_orders
        .as_ref()
        .map(|p| p.iter().map(|(c, o)| format!("{c} {o}")).collect());
    let merchants = match &f.merchant_ids {
        None => "1 = 1".to_string(),
        Some(m) => format!(
            "connection_id IN (SELECT id FROM connections WHERE {})",
            one_of("merchant_id", Some(m), 8)
        ),
    };
    let first_pair = 8 + f.merchant_ids.as_ref().map_or(0, Vec::len);
    let store_orders = one_of(
        "(connection_id || ' ' || store_order_id)",
        pairs.as_deref(),
        first_pair,
    );
    let mut q = sqlx::query(sql!(
        "SELECT {COLS} FROM orders WHERE ($1 = '' OR id < $1) AND ($2 = '' OR connection_id = $2)
         AND ($3 = '' OR status = $3) AND ($4 = '' OR name = $4 OR name = $5)
         AND ($7 = '' OR COALESCE(first_seen_via, 'poll') = $7)
         AND {merchants} AND {store_orders}
         ORDER BY id DESC LIMIT $6"
    ))
    .bind(before.unwrap_or(""))
    .bind(f.connection_id.as_deref().unwrap_or(""))
    .bind(f.status.map_or("", OrderStatus::as_str))
    .bind(name)
    .bind(format!("#{name}"))
    .bind(limit)
    .bind(f.first_seen_via.map_or("", Source::as_str));
    for v in f
        .merchant_ids
        .iter()
        .flatten()
        .chain(pairs.iter().flatten())
    {
        q = q.bind(v);
    }
    decode::all(q.fetch_all(ex).await?)
}

/// Orders shipsync sent to the warehouse, among the merchant's
/// connections, that an order reference of a shipment names: first those
/// whose Deposco number is the reference, else those whose store name is
/// (with or without `#`).
pub async fn sent_for_refs<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    merchant_id: &str,
    refs: &[String],
) -> Result<Vec<OrderRecord>, DbError> {
    let numbers: Vec<String> = refs
        .iter()
        .map(|r| r.trim())
        .filter(|r| !r.is_empty())
        .map(str::to_owned)
        .collect();
    if numbers.is_empty() {
        return Ok(Vec::new());
    }
    let names: Vec<String> = numbers
        .iter()
        .flat_map(|r| {
            let bare = r.trim_start_matches('#');
            [bare.to_owned(), format!("#{bare}")]
        })
        .collect();
    // One statement: the orders by Deposco number, then those by name,
    // told apart by `by_number`.
    let cols = COLS
        .split(", ")
        .map(|c| format!("o.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let of_merchant = "o.warehouse_number IS NOT NULL
         AND o.connection_id IN (SELECT id FROM connections WHERE merchant_id = $1)";
    let by_number = one_of("o.warehouse_number", Some(&numbers), 2);
    let by_name = one_of("o.name", Some(&names), 2 + numbers.len());
    let mut q = sqlx::query(sql!(
        "SELECT CAST(1 AS BIGINT) AS by_number, {cols} FROM orders o WHERE {of_merchant} AND {by_number}
         UNION ALL
         SELECT CAST(0 AS BIGINT) AS by_number, {cols} FROM orders o WHERE {of_merchant} AND {by_name}"
    ))
    .bind(merchant_id);
    for v in numbers.iter().chain(&names) {
        q = q.bind(v);
    }
    let mut by_number: Vec<OrderRecord> = Vec::new();
    let mut by_name: Vec<OrderRecord> = Vec::new();
    for row in q.fetch_all(ex).await? {
        let number: i64 = row.try_get("by_number")?;
        let order = OrderRecord::try_from(row)?;
        if number == 1 {
            by_number.push(order);
        } else {
            by_name.push(order);
        }
    }
    let mut out = if by_number.is_empty() {
        by_name
    } else {
        by_number
    };
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out.dedup_by(|a, b| a.id == b.id);
    Ok(out)
}

/// Orders per `first_seen_via` (webhook, poll) among those the Sales
/// Orders channel recorded since the order lifecycle (the column is set),
/// optionally of some merchants' connections.
pub async fn count_by_first_seen<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    merchant_ids: Option<&[String]>,
) -> Result<Vec<(Source, i64)>, DbError> {
    let merchants = match merchant_ids {
        None => "1 = 1".to_string(),
        Some(m) => format!(
            "connection_id IN (SELECT id FROM connections WHERE {})",
            one_of("merchant_id", Some(m), 1)
        ),
    };
    let mut q = sqlx::query_as::<_, (String, i64)>(sql!(
        "SELECT first_seen_via, COUNT(*) FROM orders
         WHERE first_seen_via IS NOT NULL AND {merchants} GROUP BY first_seen_via"
    ));
    for m in merchant_ids.into_iter().flatten() {
        q = q.bind(m);
    }
    decode::counts("orders.first_seen_via", q.fetch_all(ex).await?)
}

/// Orders of a connection still waiting to be sent (`queued`), oldest
/// first: re-queued by every run so that none is left behind.
pub async fn queued_ids<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    connection_id: &str,
    limit: i64,
) -> Result<Vec<String>, DbError> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT id FROM orders WHERE connection_id = $1 AND status = $3 ORDER BY id LIMIT $2",
    )
    .bind(connection_id)
    .bind(limit)
    .bind(OrderStatus::Queued.as_str())
    .fetch_all(ex)
    .await?;
    Ok(rows.into_iter().map(|r| r.0).collect())
}
