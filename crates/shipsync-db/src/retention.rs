//! Retention: what the daily job removes. Each statement works through at
//! most [`BATCH`] rows at a time (short write transactions, SQLite's lock
//! held briefly) and is safe to run twice or on two nodes at once: it only
//! removes what is already past its time.
//!
//! Never removed, whatever its age: what an open shipment (not `completed`
//! or `archived`), an open order (not `shipped`, `closed`, `cancelled` or
//! `archived`) or an active run (`queued`, `running`) still needs; bodies of
//! events not processed yet or needing attention (they are replayed once the
//! mapping is fixed).

use crate::{Db, DbError};

/// Rows per statement.
const BATCH: i64 = 1000;

/// Orders still being worked on (a macro so that [`OPEN_SHIPMENTS`] can be
/// built from it at compile time).
macro_rules! open_orders {
    () => {
        "SELECT o.id FROM orders o WHERE o.status NOT IN ('shipped', 'closed', 'cancelled', 'archived')"
    };
}

/// Orders still being worked on.
const OPEN_ORDERS: &str = open_orders!();

/// Shipments still being worked on, and finished shipments of an order
/// still being worked on.
const OPEN_SHIPMENTS: &str = concat!(
    "SELECT s.id FROM shipments s WHERE s.status NOT IN ('completed', 'archived')
    OR s.order_id IN (",
    open_orders!(),
    ")"
);

impl Db {
    /// Clears the raw body of accepted events received before `before` whose
    /// shipments are all completed or archived (the summary, headers and
    /// body hash stay). Returns how many bodies were cleared.
    pub async fn clear_event_bodies(&self, before: i64) -> Result<u64, DbError> {
        let sql = sql!(
            "UPDATE events SET body = NULL WHERE id IN (
               SELECT e.id FROM events e
               WHERE e.received_at < $1 AND e.body IS NOT NULL AND e.outcome = 'accepted'
                 AND e.shipment_ids <> '[]'
                 AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.dedupe_key = 'event:' || e.id)
                 AND NOT EXISTS (SELECT 1 FROM shipment_versions v WHERE v.event_id = e.id
                                 AND v.shipment_id IN ({OPEN_SHIPMENTS}))
               LIMIT $2)"
        );
        self.in_batches(sql, before).await
    }

    /// Deletes refused deliveries (`invalid_signature`, `too_large`,
    /// `rejected`) received before `before`.
    pub async fn delete_refused_events(&self, before: i64) -> Result<u64, DbError> {
        let sql = sql!(
            "DELETE FROM events WHERE id IN (
               SELECT id FROM events
               WHERE received_at < $1 AND outcome IN ('invalid_signature', 'too_large', 'rejected')
               LIMIT $2)"
        );
        self.in_batches(sql, before).await
    }

    /// Deletes activity from before `before`, except that of open
    /// shipments, open orders and active runs.
    pub async fn delete_old_activity(&self, before: i64) -> Result<u64, DbError> {
        let sql = sql!(
            "DELETE FROM activity WHERE id IN (
               SELECT a.id FROM activity a
               WHERE a.at < $1
                 AND a.subject_id NOT IN ({OPEN_SHIPMENTS})
                 AND a.subject_id NOT IN ({OPEN_ORDERS})
                 AND a.subject_id NOT IN (SELECT r.id FROM runs r WHERE r.status IN ('queued', 'running'))
               LIMIT $2)"
        );
        self.in_batches(sql, before).await
    }

    /// Deletes shipment versions received before `before`, except those of
    /// open shipments (the shipment keeps its current version in its row).
    pub async fn delete_old_versions(&self, before: i64) -> Result<u64, DbError> {
        let sql = sql!(
            "DELETE FROM shipment_versions WHERE id IN (
               SELECT v.id FROM shipment_versions v
               WHERE v.received_at < $1 AND v.shipment_id NOT IN ({OPEN_SHIPMENTS})
               LIMIT $2)"
        );
        self.in_batches(sql, before).await
    }

    /// Runs `sql` (binding `before` and the batch size) until it affects
    /// fewer rows than a batch; returns the total affected.
    async fn in_batches(
        &self,
        sql: sqlx::AssertSqlSafe<String>,
        before: i64,
    ) -> Result<u64, DbError> {
        let text = sql.0;
        let mut total = 0;
        loop {
            let n = sqlx::query(sqlx::AssertSqlSafe(text.clone()))
                .bind(before)
                .bind(BATCH)
                .execute(self.pool())
                .await?
                .rows_affected();
            total += n;
            if n < u64::try_from(BATCH).unwrap_or(u64::MAX) {
                return Ok(total);
            }
        }
    }

    /// Claims a periodic task named `name` across nodes: true (for exactly
    /// one caller) when it is due at `now`, and then it is next due
    /// `every` later. Before the first claim it is due `first_after` after
    /// the first call.
    pub async fn claim_periodic(
        &self,
        name: &str,
        now: i64,
        every: i64,
        first_after: i64,
    ) -> Result<bool, DbError> {
        let key = format!("next_run_at:{name}");
        // Read first: the scheduler asks every second, and a read takes no
        // write lock.
        match self
            .meta_get(&key)
            .await?
            .and_then(|v| v.parse::<i64>().ok())
        {
            None => {
                self.meta_init(&key, &(now + first_after).to_string())
                    .await?;
                return Ok(false);
            }
            Some(at) if at > now => return Ok(false),
            Some(_) => {}
        }
        let r = sqlx::query(
            "UPDATE meta SET value = $2 WHERE key = $1 AND CAST(value AS BIGINT) <= $3",
        )
        .bind(&key)
        .bind((now + every).to_string())
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() == 1)
    }
}
