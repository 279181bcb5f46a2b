//! `events`: every webhook delivery as received (headers, body, what the
//! endpoint decided) and what processing it found.

use shipsync_core::states::EventOutcome;
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::{Any, Executor};

use crate::decode::{self, Cols, to_json};
use crate::unit::Conn;
use crate::{DbError, one_of, placeholders};

#[derive(Debug, Clone)]
pub struct EventRow {
    pub id: String,
    pub merchant_id: String,
    /// The connection of a store (Shopify) delivery; `None` for Deposco's.
    pub connection_id: Option<String>,
    pub received_at: i64,
    /// The delivery's headers, `(name, value)` in order (`headers_json`).
    pub headers: Vec<(String, String)>,
    /// Shared, not copied: the webhook handler's buffer on the way in.
    pub body: Option<bytes::Bytes>,
    pub body_size: i64,
    pub body_hash: Option<String>,
    pub webhook_id: Option<String>,
    pub verified: bool,
    pub outcome: EventOutcome,
    pub detail: Option<String>,
    pub repeat_count: i64,
    /// The shipments it carried, once processed.
    pub shipment_ids: Vec<String>,
}

pub(crate) const COLS: &str = "id, merchant_id, received_at, headers_json, body, body_size, body_hash, webhook_id, verified, outcome, detail, repeat_count, shipment_ids, connection_id";

/// The number of [`COLS`].
pub(crate) const COL_COUNT: usize = 14;

/// [`COLS`] without the headers and body.
const SUMMARY_COLS: &str = "id, merchant_id, received_at, '[]' AS headers_json, NULL AS body, body_size, body_hash, webhook_id, verified, outcome, detail, repeat_count, shipment_ids, connection_id";

impl TryFrom<AnyRow> for EventRow {
    type Error = DbError;

    fn try_from(row: AnyRow) -> Result<Self, DbError> {
        let c = Cols::of(&row, "events");
        Ok(Self {
            id: c.get("id")?,
            merchant_id: c.get("merchant_id")?,
            connection_id: c.get("connection_id")?,
            received_at: c.get("received_at")?,
            headers: c.json("headers_json")?,
            body: c.get::<Option<Vec<u8>>>("body")?.map(bytes::Bytes::from),
            body_size: c.get("body_size")?,
            body_hash: c.get("body_hash")?,
            webhook_id: c.get("webhook_id")?,
            verified: c.flag("verified")?,
            outcome: c.word("outcome")?,
            detail: c.get("detail")?,
            repeat_count: c.get("repeat_count")?,
            shipment_ids: c.json("shipment_ids")?,
        })
    }
}

pub async fn insert<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    e: &EventRow,
) -> Result<(), DbError> {
    let q = sqlx::query(sql!(
        "INSERT INTO events ({COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
    ));
    bind(q, e)?.execute(ex).await?;
    Ok(())
}

/// Binds the columns of [`COLS`] of `e`, in order.
pub(crate) fn bind<'q>(
    q: sqlx::query::Query<'q, Any, AnyArguments>,
    e: &'q EventRow,
) -> Result<sqlx::query::Query<'q, Any, AnyArguments>, DbError> {
    Ok(q.bind(&e.id)
        .bind(&e.merchant_id)
        .bind(e.received_at)
        .bind(to_json("events.headers_json", &e.headers)?)
        .bind(e.body.as_deref())
        .bind(e.body_size)
        .bind(&e.body_hash)
        .bind(&e.webhook_id)
        .bind(i64::from(e.verified))
        .bind(e.outcome.as_str())
        .bind(&e.detail)
        .bind(e.repeat_count)
        .bind(to_json("events.shipment_ids", &e.shipment_ids)?)
        .bind(&e.connection_id))
}

/// The original event of a repeat delivery: same `webhook-id`, or else the
/// same body hash since `since` (both for the same merchant).
pub async fn find_repeat(
    tx: &mut impl Conn,
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
                .fetch_optional(tx.ex())
                .await?;
        if let Some(r) = row {
            return Ok(Some(r.0));
        }
    }
    let mut q = sqlx::query_as::<_, (String,)>(sql!(
        "SELECT id FROM events WHERE merchant_id = $1 AND body_hash = $2 AND received_at > $3
         AND outcome IN ({}) ORDER BY received_at LIMIT 1",
        placeholders(4, EventOutcome::COUNTED.len())
    ))
    .bind(merchant_id)
    .bind(body_hash)
    .bind(since);
    for o in EventOutcome::COUNTED {
        q = q.bind(o.as_str());
    }
    let row = q.fetch_optional(tx.ex()).await?;
    Ok(row.map(|r| r.0))
}

pub async fn bump_repeat<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    event_id: &str,
) -> Result<(), DbError> {
    sqlx::query("UPDATE events SET repeat_count = repeat_count + 1 WHERE id = $1")
        .bind(event_id)
        .execute(ex)
        .await?;
    Ok(())
}

#[derive(Debug, Default, Clone)]
pub struct EventFilter {
    /// Events of these merchants only (`None`: any; empty: none).
    pub merchant_ids: Option<Vec<String>>,
    pub outcome: Option<EventOutcome>,
}

pub async fn get<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    id: &str,
) -> Result<Option<EventRow>, DbError> {
    decode::opt(
        sqlx::query(sql!("SELECT {COLS} FROM events WHERE id = $1"))
            .bind(id)
            .fetch_optional(ex)
            .await?,
    )
}

/// Newest first; `before` is the cursor (an event id). Summaries: the
/// rows come without their headers (empty) and body (`None`), which only
/// [`get`] reads.
pub async fn list<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    f: &EventFilter,
    before: Option<&str>,
    limit: i64,
) -> Result<Vec<EventRow>, DbError> {
    let merchants = one_of("merchant_id", f.merchant_ids.as_deref(), 4);
    let mut q = sqlx::query(sql!(
        "SELECT {SUMMARY_COLS} FROM events WHERE ($1 = '' OR id < $1) AND {merchants}
         AND ($2 = '' OR outcome = $2) ORDER BY id DESC LIMIT $3"
    ))
    .bind(before.unwrap_or(""))
    .bind(f.outcome.map_or("", EventOutcome::as_str))
    .bind(limit);
    for m in f.merchant_ids.iter().flatten() {
        q = q.bind(m);
    }
    decode::all(q.fetch_all(ex).await?)
}

/// Records what processing found: the outcome, why (if not accepted), and
/// the shipments the event carried.
pub async fn set_result<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    id: &str,
    outcome: EventOutcome,
    detail: Option<&str>,
    shipment_ids: &[String],
) -> Result<(), DbError> {
    sqlx::query("UPDATE events SET outcome = $2, detail = $3, shipment_ids = $4 WHERE id = $1")
        .bind(id)
        .bind(outcome.as_str())
        .bind(detail)
        .bind(to_json("events.shipment_ids", shipment_ids)?)
        .execute(ex)
        .await?;
    Ok(())
}
