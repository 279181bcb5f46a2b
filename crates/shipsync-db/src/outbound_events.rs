//! `outbound_events`: the outbox of events for merchants' systems (issue
//! 16). A row is written in the transaction that changed its subject's
//! state; its id (`msg_…`) is the `webhook-id` of every delivery of it.

use shipsync_core::states::EventType;
use sqlx::any::AnyRow;
use sqlx::{Any, Executor};

use crate::decode::{self, Cols};
use crate::{DbError, placeholders};

#[derive(Debug, Clone)]
pub struct OutboundEventRow {
    pub id: String,
    pub merchant_id: String,
    pub kind: EventType,
    /// The shipment or order it is about.
    pub subject_id: String,
    /// The JSON body, as sent (and signed).
    pub body: String,
    pub created_at: i64,
}

const COLS: &str = "id, merchant_id, type, subject_id, body, created_at";

impl TryFrom<AnyRow> for OutboundEventRow {
    type Error = DbError;

    fn try_from(row: AnyRow) -> Result<Self, DbError> {
        let c = Cols::of(&row, "outbound_events");
        Ok(Self {
            id: c.get("id")?,
            merchant_id: c.get("merchant_id")?,
            kind: c.word("type")?,
            subject_id: c.get("subject_id")?,
            body: c.get("body")?,
            created_at: c.get("created_at")?,
        })
    }
}

pub async fn insert<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    r: &OutboundEventRow,
) -> Result<(), DbError> {
    sqlx::query(sql!(
        "INSERT INTO outbound_events ({COLS}) VALUES ($1, $2, $3, $4, $5, $6)"
    ))
    .bind(&r.id)
    .bind(&r.merchant_id)
    .bind(r.kind.as_str())
    .bind(&r.subject_id)
    .bind(&r.body)
    .bind(r.created_at)
    .execute(ex)
    .await?;
    Ok(())
}

pub async fn get<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    id: &str,
) -> Result<Option<OutboundEventRow>, DbError> {
    decode::opt(
        sqlx::query(sql!("SELECT {COLS} FROM outbound_events WHERE id = $1"))
            .bind(id)
            .fetch_optional(ex)
            .await?,
    )
}

/// The events of `ids` (those that exist), in no particular order.
pub async fn get_many<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    ids: &[String],
) -> Result<Vec<OutboundEventRow>, DbError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut q = sqlx::query(sql!(
        "SELECT {COLS} FROM outbound_events WHERE id IN ({})",
        placeholders(1, ids.len())
    ));
    for id in ids {
        q = q.bind(id);
    }
    decode::all(q.fetch_all(ex).await?)
}
