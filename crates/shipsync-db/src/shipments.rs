//! `shipments`: one row per warehouse shipment, holding its current version
//! and where it stands with the store.

use shipsync_core::ShipmentVersion;
use shipsync_core::states::{ShipmentStatus, Source};
use sqlx::any::AnyRow;
use sqlx::{Any, Executor};

use crate::decode::{self, Cols, to_json};
use crate::unit::Conn;
use crate::{DbError, for_update, like_escape, one_of, placeholders};

#[derive(Debug, Clone)]
pub struct ShipmentRow {
    pub id: String,
    pub merchant_id: String,
    pub number: String,
    pub connection_id: Option<String>,
    pub order_id: Option<String>,
    pub order_name: String,
    pub status: ShipmentStatus,
    pub error: Option<String>,
    /// Every way its versions came in, first first.
    pub sources: Vec<Source>,
    pub first_seen_via: Source,
    /// The current warehouse version (`version_json`).
    pub version: ShipmentVersion,
    pub version_at: Option<String>,
    pub content_hash: String,
    pub received_at: i64,
    pub updated_at: i64,
    pub completed_at: Option<i64>,
}

const COLS: &str = "id, merchant_id, number, connection_id, order_id, order_name, status, error, sources, first_seen_via, version_json, version_at, content_hash, received_at, updated_at, completed_at";

impl TryFrom<AnyRow> for ShipmentRow {
    type Error = DbError;

    fn try_from(row: AnyRow) -> Result<Self, DbError> {
        let c = Cols::of(&row, "shipments");
        Ok(Self {
            id: c.get("id")?,
            merchant_id: c.get("merchant_id")?,
            number: c.get("number")?,
            connection_id: c.get("connection_id")?,
            order_id: c.get("order_id")?,
            order_name: c.get("order_name")?,
            status: c.word("status")?,
            error: c.get("error")?,
            sources: c.words("sources")?,
            first_seen_via: c.word("first_seen_via")?,
            version: c.json("version_json")?,
            version_at: c.get("version_at")?,
            content_hash: c.get("content_hash")?,
            received_at: c.get("received_at")?,
            updated_at: c.get("updated_at")?,
            completed_at: c.get("completed_at")?,
        })
    }
}

/// The shipment, locked for the rest of the transaction (SQLite's write
/// transactions lock the whole database already; PostgreSQL locks the row),
/// so that concurrent merges and runs never overwrite each other.
pub async fn by_number(
    tx: &mut impl Conn,
    merchant_id: &str,
    number: &str,
) -> Result<Option<ShipmentRow>, DbError> {
    let lock = for_update(tx);
    decode::opt(
        sqlx::query(sql!(
            "SELECT {COLS} FROM shipments WHERE merchant_id = $1 AND number = $2{lock}"
        ))
        .bind(merchant_id)
        .bind(number)
        .fetch_optional(tx.ex())
        .await?,
    )
}

pub async fn insert<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    s: &ShipmentRow,
) -> Result<(), DbError> {
    sqlx::query(sql!(
        "INSERT INTO shipments ({COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"
    ))
    .bind(&s.id)
    .bind(&s.merchant_id)
    .bind(&s.number)
    .bind(&s.connection_id)
    .bind(&s.order_id)
    .bind(&s.order_name)
    .bind(s.status.as_str())
    .bind(&s.error)
    .bind(decode::join_words(&s.sources))
    .bind(s.first_seen_via.as_str())
    .bind(to_json("shipments.version_json", &s.version)?)
    .bind(&s.version_at)
    .bind(&s.content_hash)
    .bind(s.received_at)
    .bind(s.updated_at)
    .bind(s.completed_at)
    .execute(ex)
    .await?;
    Ok(())
}

pub async fn update<'e, E: Executor<'e, Database = Any>>(
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
    .bind(s.status.as_str())
    .bind(&s.error)
    .bind(decode::join_words(&s.sources))
    .bind(s.first_seen_via.as_str())
    .bind(to_json("shipments.version_json", &s.version)?)
    .bind(&s.version_at)
    .bind(&s.content_hash)
    .bind(s.updated_at)
    .bind(s.completed_at)
    .execute(ex)
    .await?;
    Ok(())
}

/// Saves what a run decided about shipment `s` — its match, status,
/// error, completion — and nothing a merge owns (version, hash, sources):
/// one statement, no read first. An archived shipment stays archived.
/// `only_moving`: only when the stored status is neither `s.status` nor
/// archived. Whether the row was written.
pub async fn save_run<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    s: &ShipmentRow,
    only_moving: bool,
) -> Result<bool, DbError> {
    let archived = ShipmentStatus::Archived.as_str();
    let guard = if only_moving {
        format!(" AND status <> $5 AND status <> '{archived}'")
    } else {
        String::new()
    };
    let done = sqlx::query(sql!(
        "UPDATE shipments SET connection_id = $2, order_id = $3, order_name = $4,
           status = CASE WHEN status = '{archived}' THEN status ELSE $5 END, error = $6,
           updated_at = $7, completed_at = $8 WHERE id = $1{guard}"
    ))
    .bind(&s.id)
    .bind(&s.connection_id)
    .bind(&s.order_id)
    .bind(&s.order_name)
    .bind(s.status.as_str())
    .bind(&s.error)
    .bind(s.updated_at)
    .bind(s.completed_at)
    .execute(ex)
    .await?;
    Ok(done.rows_affected() > 0)
}

#[derive(Debug, Default, Clone)]
pub struct ShipmentFilter {
    /// Shipments of these merchants only (`None`: any; empty: none).
    pub merchant_ids: Option<Vec<String>>,
    pub connection_id: Option<String>,
    pub status: Option<ShipmentStatus>,
    pub order_name: Option<String>,
    pub source: Option<Source>,
}

pub async fn get<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    id: &str,
) -> Result<Option<ShipmentRow>, DbError> {
    decode::opt(
        sqlx::query(sql!("SELECT {COLS} FROM shipments WHERE id = $1"))
            .bind(id)
            .fetch_optional(ex)
            .await?,
    )
}

/// Newest first; `before` is the cursor (a shipment id).
pub async fn list<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    f: &ShipmentFilter,
    before: Option<&str>,
    limit: i64,
) -> Result<Vec<ShipmentRow>, DbError> {
    let order_name = f
        .order_name
        .as_deref()
        .map(|n| n.trim_start_matches('#'))
        .unwrap_or("");
    let source = f.source.map_or("", Source::as_str);
    let merchants = one_of("merchant_id", f.merchant_ids.as_deref(), 9);
    let mut q = sqlx::query(sql!(
        "SELECT {COLS} FROM shipments WHERE ($1 = '' OR id < $1) AND {merchants}
         AND ($2 = '' OR connection_id = $2) AND ($3 = '' OR status = $3)
         AND ($4 = '' OR order_name = $4 OR order_name = $5)
         AND ($6 = '' OR sources LIKE $7)
         ORDER BY id DESC LIMIT $8"
    ))
    .bind(before.unwrap_or(""))
    .bind(f.connection_id.as_deref().unwrap_or(""))
    .bind(f.status.map_or("", ShipmentStatus::as_str))
    .bind(order_name)
    .bind(format!("#{order_name}"))
    .bind(source)
    .bind(format!("%{source}%"))
    .bind(limit);
    for m in f.merchant_ids.iter().flatten() {
        q = q.bind(m);
    }
    decode::all(q.fetch_all(ex).await?)
}

/// Shipments whose stored warehouse version mentions `needle` (a tracking
/// number, say; ASCII case ignored), newest first; the caller checks where
/// it appears.
pub async fn mentioning<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    merchant_ids: Option<&[String]>,
    needle: &str,
    limit: i64,
) -> Result<Vec<ShipmentRow>, DbError> {
    let merchants = one_of("merchant_id", merchant_ids, 3);
    let mut q = sqlx::query(sql!(
        "SELECT {COLS} FROM shipments WHERE {merchants}
         AND LOWER(version_json) LIKE LOWER($1) ESCAPE '\\' ORDER BY id DESC LIMIT $2"
    ))
    .bind(format!("%{}%", like_escape(needle)))
    .bind(limit);
    for m in merchant_ids.into_iter().flatten() {
        q = q.bind(m);
    }
    decode::all(q.fetch_all(ex).await?)
}

/// Every shipment of one store order, first received first.
pub async fn for_order<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    order_id: &str,
) -> Result<Vec<ShipmentRow>, DbError> {
    decode::all(
        sqlx::query(sql!(
            "SELECT {COLS} FROM shipments WHERE order_id = $1 ORDER BY received_at, id"
        ))
        .bind(order_id)
        .fetch_all(ex)
        .await?,
    )
}

/// Ids of a merchant's shipments that still wait for the store.
pub async fn pending_ids<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    merchant_id: &str,
) -> Result<Vec<String>, DbError> {
    const WAITING: [ShipmentStatus; 2] = [ShipmentStatus::New, ShipmentStatus::Open];
    let mut q = sqlx::query_as::<_, (String,)>(sql!(
        "SELECT id FROM shipments WHERE merchant_id = $1 AND status IN ({}) ORDER BY id",
        placeholders(2, WAITING.len())
    ))
    .bind(merchant_id);
    for s in WAITING {
        q = q.bind(s.as_str());
    }
    Ok(q.fetch_all(ex).await?.into_iter().map(|r| r.0).collect())
}

/// Shipments per `first_seen_via`, optionally of some merchants.
pub async fn count_by_first_seen<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    merchant_ids: Option<&[String]>,
) -> Result<Vec<(Source, i64)>, DbError> {
    let merchants = one_of("merchant_id", merchant_ids, 1);
    let mut q = sqlx::query_as::<_, (String, i64)>(sql!(
        "SELECT first_seen_via, COUNT(*) FROM shipments WHERE {merchants}
         GROUP BY first_seen_via"
    ));
    for m in merchant_ids.into_iter().flatten() {
        q = q.bind(m);
    }
    decode::counts("shipments.first_seen_via", q.fetch_all(ex).await?)
}

/// `(received_at, completed_at)` of the shipments completed since `since`
/// (microseconds), optionally of some merchants.
pub async fn completions_since<'e, E: Executor<'e, Database = Any>>(
    ex: E,
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
    Ok(q.fetch_all(ex).await?)
}

/// Shipments per status.
pub async fn count_by_status<'e, E: Executor<'e, Database = Any>>(
    ex: E,
) -> Result<Vec<(ShipmentStatus, i64)>, DbError> {
    let rows = sqlx::query_as("SELECT status, COUNT(*) FROM shipments GROUP BY status")
        .fetch_all(ex)
        .await?;
    decode::counts("shipments.status", rows)
}
