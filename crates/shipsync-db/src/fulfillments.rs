//! `store_fulfillments`: each fulfillment shipsync created in a store (or
//! is creating: `pending` until the store's answer is known), with the
//! units it carries — the ledger of what was sent, read on the
//! exactly-once path.

use std::collections::BTreeMap;

use shipsync_core::states::FulfillmentState;
use sqlx::any::AnyRow;
use sqlx::{Any, Executor};

use crate::decode::{self, Cols, to_json};
use crate::{DbError, now_micros};

#[derive(Debug, Clone)]
pub struct StoreFulfillmentRow {
    pub id: String,
    pub shipment_id: String,
    pub connection_id: String,
    pub store_order_id: String,
    pub fulfillment_order_id: String,
    pub store_fulfillment_id: Option<String>,
    pub carrier: Option<String>,
    /// Store line id → units (`lines_json`).
    pub lines: BTreeMap<String, u64>,
    /// Fulfillment-order line item id → units (`items_json`).
    pub items: BTreeMap<String, u64>,
    /// `(package key, tracking number)` (`tracking_json`).
    pub tracking: Vec<(String, String)>,
    pub state: FulfillmentState,
    pub created_at: i64,
    pub updated_at: i64,
}

const COLS: &str = "id, shipment_id, connection_id, store_order_id, fulfillment_order_id, store_fulfillment_id, carrier, lines_json, items_json, tracking_json, state, created_at, updated_at";

impl TryFrom<AnyRow> for StoreFulfillmentRow {
    type Error = DbError;

    fn try_from(row: AnyRow) -> Result<Self, DbError> {
        let c = Cols::of(&row, "store_fulfillments");
        Ok(Self {
            id: c.get("id")?,
            shipment_id: c.get("shipment_id")?,
            connection_id: c.get("connection_id")?,
            store_order_id: c.get("store_order_id")?,
            fulfillment_order_id: c.get("fulfillment_order_id")?,
            store_fulfillment_id: c.get("store_fulfillment_id")?,
            carrier: c.get("carrier")?,
            lines: c.json("lines_json")?,
            items: c.json("items_json")?,
            tracking: c.json("tracking_json")?,
            state: c.word("state")?,
            created_at: c.get("created_at")?,
            updated_at: c.get("updated_at")?,
        })
    }
}

pub async fn insert<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    f: &StoreFulfillmentRow,
) -> Result<(), DbError> {
    sqlx::query(sql!(
        "INSERT INTO store_fulfillments ({COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
    ))
    .bind(&f.id)
    .bind(&f.shipment_id)
    .bind(&f.connection_id)
    .bind(&f.store_order_id)
    .bind(&f.fulfillment_order_id)
    .bind(&f.store_fulfillment_id)
    .bind(&f.carrier)
    .bind(to_json("store_fulfillments.lines_json", &f.lines)?)
    .bind(to_json("store_fulfillments.items_json", &f.items)?)
    .bind(to_json("store_fulfillments.tracking_json", &f.tracking)?)
    .bind(f.state.as_str())
    .bind(f.created_at)
    .bind(f.updated_at)
    .execute(ex)
    .await?;
    Ok(())
}

/// Saves what the store answered: its fulfillment id, the tracking and the
/// state.
pub async fn update<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    f: &StoreFulfillmentRow,
) -> Result<(), DbError> {
    sqlx::query(
        "UPDATE store_fulfillments SET store_fulfillment_id = $2, tracking_json = $3, state = $4, updated_at = $5
         WHERE id = $1",
    )
    .bind(&f.id)
    .bind(&f.store_fulfillment_id)
    .bind(to_json("store_fulfillments.tracking_json", &f.tracking)?)
    .bind(f.state.as_str())
    .bind(now_micros())
    .execute(ex)
    .await?;
    Ok(())
}

pub async fn delete<'e, E: Executor<'e, Database = Any>>(ex: E, id: &str) -> Result<(), DbError> {
    sqlx::query("DELETE FROM store_fulfillments WHERE id = $1")
        .bind(id)
        .execute(ex)
        .await?;
    Ok(())
}

pub async fn of_shipment<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    shipment_id: &str,
) -> Result<Vec<StoreFulfillmentRow>, DbError> {
    decode::all(
        sqlx::query(sql!(
            "SELECT {COLS} FROM store_fulfillments WHERE shipment_id = $1 ORDER BY id"
        ))
        .bind(shipment_id)
        .fetch_all(ex)
        .await?,
    )
}

pub async fn of_store_order<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    store_order_id: &str,
) -> Result<Vec<StoreFulfillmentRow>, DbError> {
    decode::all(
        sqlx::query(sql!(
            "SELECT {COLS} FROM store_fulfillments WHERE store_order_id = $1 ORDER BY id"
        ))
        .bind(store_order_id)
        .fetch_all(ex)
        .await?,
    )
}
