//! `alert_policies`: which events alert, for which merchants and
//! connections, to which channels, grouped how (issue 16).

use shipsync_core::alerts::PolicyDoc;
use sqlx::any::AnyRow;
use sqlx::{Any, Executor};

use crate::DbError;
use crate::decode::{self, Cols, to_json};

#[derive(Debug, Clone)]
pub struct AlertPolicyRow {
    pub id: String,
    /// The document; its `name` is also stored in the `name` column.
    pub doc: PolicyDoc,
    pub created_at: i64,
    pub updated_at: i64,
}

const COLS: &str = "id, name, doc_json, created_at, updated_at";

impl TryFrom<AnyRow> for AlertPolicyRow {
    type Error = DbError;

    fn try_from(row: AnyRow) -> Result<Self, DbError> {
        let c = Cols::of(&row, "alert_policies");
        Ok(Self {
            id: c.get("id")?,
            doc: c.json("doc_json")?,
            created_at: c.get("created_at")?,
            updated_at: c.get("updated_at")?,
        })
    }
}

/// Inserts or replaces a policy.
pub async fn save<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    p: &AlertPolicyRow,
) -> Result<(), DbError> {
    sqlx::query(sql!(
        "INSERT INTO alert_policies ({COLS}) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (id) DO UPDATE SET name = excluded.name, doc_json = excluded.doc_json,
           updated_at = excluded.updated_at"
    ))
    .bind(&p.id)
    .bind(&p.doc.name)
    .bind(to_json("alert_policies.doc_json", &p.doc)?)
    .bind(p.created_at)
    .bind(p.updated_at)
    .execute(ex)
    .await?;
    Ok(())
}

pub async fn get<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    id: &str,
) -> Result<Option<AlertPolicyRow>, DbError> {
    decode::opt(
        sqlx::query(sql!("SELECT {COLS} FROM alert_policies WHERE id = $1"))
            .bind(id)
            .fetch_optional(ex)
            .await?,
    )
}

/// Every policy, oldest first.
pub async fn list<'e, E: Executor<'e, Database = Any>>(
    ex: E,
) -> Result<Vec<AlertPolicyRow>, DbError> {
    decode::all(
        sqlx::query(sql!("SELECT {COLS} FROM alert_policies ORDER BY id"))
            .fetch_all(ex)
            .await?,
    )
}

pub async fn delete<'e, E: Executor<'e, Database = Any>>(ex: E, id: &str) -> Result<bool, DbError> {
    let r = sqlx::query("DELETE FROM alert_policies WHERE id = $1")
        .bind(id)
        .execute(ex)
        .await?;
    Ok(r.rows_affected() == 1)
}
