//! The webhook ingest's group commit in a few statements: the repeats of a
//! whole batch looked up at once, its events and jobs inserted as multi-row
//! statements, instead of four round trips per delivery.

use std::collections::HashMap;

use shipsync_core::states::EventOutcome;
use sqlx::Row;

use crate::events::{self, EventRow};
use crate::jobs::{self, Job};
use crate::unit::Conn;
use crate::{Backend, DbError, new_id, now_micros, quoted};

/// Rows per multi-row statement: 13 columns × 64 stays far under both
/// backends' limit on bound parameters.
const ROWS_PER_STATEMENT: usize = 64;
/// Values per `IN (…)` list.
const IN_LIST: usize = 500;

/// How the placeholders of a statement are written: SQLite's plain `?`
/// (bound in order; its `$N` names are looked up one by one, which costs
/// O(N²) over a long statement) or PostgreSQL's `$N`.
#[derive(Clone, Copy)]
struct Marks {
    numbered: bool,
}

impl Marks {
    fn of(c: &impl Conn) -> Self {
        Self {
            numbered: c.backend() == Backend::Postgres,
        }
    }

    fn push(self, out: &mut String, i: usize) {
        if self.numbered {
            out.push('$');
            out.push_str(&i.to_string());
        } else {
            out.push('?');
        }
    }

    /// `(…), (…)`: `rows` tuples of `cols` placeholders numbered from
    /// `first` (the placeholders before them must be numbered the same way).
    fn tuples(self, rows: usize, cols: usize, first: usize) -> String {
        let mut out = String::with_capacity(rows * cols * 5);
        for r in 0..rows {
            if r > 0 {
                out.push_str(", ");
            }
            out.push('(');
            for c in 0..cols {
                if c > 0 {
                    out.push_str(", ");
                }
                self.push(&mut out, first + r * cols + c);
            }
            out.push(')');
        }
        out
    }

    /// `n` placeholders numbered from `first`, comma-separated.
    fn list(self, n: usize, first: usize) -> String {
        let mut out = String::with_capacity(n * 5);
        for i in first..first + n {
            if i > first {
                out.push_str(", ");
            }
            self.push(&mut out, i);
        }
        out
    }

    /// Placeholder number `i` on its own.
    fn one(self, i: usize) -> String {
        let mut out = String::new();
        self.push(&mut out, i);
        out
    }
}

/// The stored events of `merchant_id` carrying one of `webhook_ids`:
/// webhook-id → event id.
pub async fn events_by_webhook_id(
    c: &mut impl Conn,
    merchant_id: &str,
    webhook_ids: &[&str],
) -> Result<HashMap<String, String>, DbError> {
    let marks = Marks::of(c);
    let mut found = HashMap::new();
    for chunk in webhook_ids.chunks(IN_LIST) {
        let sql = sql!(
            "SELECT webhook_id, id FROM events WHERE merchant_id = {} AND webhook_id IN ({})",
            marks.one(1),
            marks.list(chunk.len(), 2)
        );
        let mut q = sqlx::query(sql)
            .persistent(by_one(chunk.len()))
            .bind(merchant_id);
        for w in chunk {
            q = q.bind(*w);
        }
        for row in q.fetch_all(c.ex()).await? {
            found.insert(row.try_get("webhook_id")?, row.try_get("id")?);
        }
    }
    Ok(found)
}

/// The oldest counted event (accepted or needing attention) of
/// `merchant_id` received after `since` per body hash among `hashes`:
/// body hash → event id.
pub async fn events_by_body_hash(
    c: &mut impl Conn,
    merchant_id: &str,
    hashes: &[&str],
    since: i64,
) -> Result<HashMap<String, String>, DbError> {
    let marks = Marks::of(c);
    let mut found = HashMap::new();
    let counted = quoted(&EventOutcome::COUNTED.map(EventOutcome::as_str));
    for chunk in hashes.chunks(IN_LIST) {
        let sql = sql!(
            "SELECT body_hash, id FROM events WHERE merchant_id = {} AND received_at > {}
             AND outcome IN ({counted}) AND body_hash IN ({})
             ORDER BY received_at",
            marks.one(1),
            marks.one(2),
            marks.list(chunk.len(), 3)
        );
        let mut q = sqlx::query(sql)
            .persistent(by_one(chunk.len()))
            .bind(merchant_id)
            .bind(since);
        for h in chunk {
            q = q.bind(*h);
        }
        for row in q.fetch_all(c.ex()).await? {
            // Oldest first: keep the first one seen.
            found
                .entry(row.try_get("body_hash")?)
                .or_insert(row.try_get("id")?);
        }
    }
    Ok(found)
}

/// What [`originals`] found: webhook-id → event id, body hash → event id.
pub type Originals = (HashMap<String, String>, HashMap<String, String>);

/// [`events_by_webhook_id`] and [`events_by_body_hash`] in one statement
/// (one round trip fewer per batch on the ingest's critical path); on
/// PostgreSQL [`originals_probed`].
pub async fn originals(
    c: &mut impl Conn,
    merchant_id: &str,
    webhook_ids: &[&str],
    hashes: &[&str],
    since: i64,
) -> Result<Originals, DbError> {
    if c.backend() == Backend::Postgres {
        return originals_probed(c, merchant_id, webhook_ids, hashes, since).await;
    }
    if webhook_ids.is_empty() || webhook_ids.len() > IN_LIST || hashes.len() > IN_LIST {
        let by_id = if webhook_ids.is_empty() {
            HashMap::new()
        } else {
            events_by_webhook_id(c, merchant_id, webhook_ids).await?
        };
        let by_hash = events_by_body_hash(c, merchant_id, hashes, since).await?;
        return Ok((by_id, by_hash));
    }
    let marks = Marks::of(c);
    let counted = quoted(&EventOutcome::COUNTED.map(EventOutcome::as_str));
    let second = 2 + webhook_ids.len();
    let sql = sql!(
        "SELECT 'id' AS k, webhook_id AS v, id, received_at FROM events
         WHERE merchant_id = {} AND webhook_id IN ({})
         UNION ALL
         SELECT 'hash' AS k, body_hash AS v, id, received_at FROM events
         WHERE merchant_id = {} AND received_at > {} AND outcome IN ({counted})
         AND body_hash IN ({})
         ORDER BY received_at",
        marks.one(1),
        marks.list(webhook_ids.len(), 2),
        marks.one(second),
        marks.one(second + 1),
        marks.list(hashes.len(), second + 2)
    );
    let mut q = sqlx::query(sql)
        .persistent(by_one(webhook_ids.len().max(hashes.len())))
        .bind(merchant_id);
    for w in webhook_ids {
        q = q.bind(*w);
    }
    q = q.bind(merchant_id).bind(since);
    for h in hashes {
        q = q.bind(*h);
    }
    let (mut by_id, mut by_hash) = (HashMap::new(), HashMap::new());
    for row in q.fetch_all(c.ex()).await? {
        let k: String = row.try_get("k")?;
        let map = if k == "id" { &mut by_id } else { &mut by_hash };
        // Oldest first: keep the first one seen.
        map.entry(row.try_get("v")?).or_insert(row.try_get("id")?);
    }
    Ok((by_id, by_hash))
}

/// [`originals`] on PostgreSQL: one probe of the index per value, a
/// subquery for each row of a `VALUES` list, so that the plan does not
/// depend on the table's statistics. With `IN (…)` lists, a table that
/// grew by a burst faster than autovacuum analyzes it (a new database, a
/// merchant's first wave) was planned as if it were empty: a scan of the
/// merchant's every event, filtered by the list — 35–60 ms per batch at
/// 100,000 events, which held PostgreSQL's ingest to 2,900 webhooks/s and
/// its p99 at 2,000/s to 90 ms (BENCHMARKS.md, the eighth session); probed
/// one by one, the same lookup took 1.3 ms.
async fn originals_probed(
    c: &mut impl Conn,
    merchant_id: &str,
    webhook_ids: &[&str],
    hashes: &[&str],
    since: i64,
) -> Result<Originals, DbError> {
    let marks = Marks::of(c);
    let counted = quoted(&EventOutcome::COUNTED.map(EventOutcome::as_str));
    let (mut by_id, mut by_hash) = (HashMap::new(), HashMap::new());
    let chunks = webhook_ids.len().max(hashes.len()).div_ceil(IN_LIST).max(1);
    for n in 0..chunks {
        let (ids, hs) = (chunk(webhook_ids, n), chunk(hashes, n));
        // $1 merchant, $2 since, then the webhook ids, then the hashes,
        // one per row of a VALUES list.
        let values = |first: usize, n: usize| marks.tuples(n, 1, first);
        let mut parts = Vec::new();
        if !ids.is_empty() {
            parts.push(format!(
                "SELECT 'id' AS k, h.v, (SELECT e.id FROM events e
                   WHERE e.merchant_id = $1 AND e.webhook_id = h.v) AS id
                 FROM (VALUES {}) AS h(v)",
                values(3, ids.len())
            ));
        }
        if !hs.is_empty() {
            parts.push(format!(
                "SELECT 'hash' AS k, h.v, (SELECT e.id FROM events e
                   WHERE e.merchant_id = $1 AND e.body_hash = h.v AND e.received_at > $2
                   AND e.outcome IN ({counted}) ORDER BY e.received_at LIMIT 1) AS id
                 FROM (VALUES {}) AS h(v)",
                values(3 + ids.len(), hs.len())
            ));
        }
        if parts.is_empty() {
            break;
        }
        let sql = sqlx::AssertSqlSafe(parts.join(" UNION ALL "));
        let mut q = sqlx::query(sql)
            .persistent(by_one(ids.len().max(hs.len())))
            .bind(merchant_id)
            .bind(since);
        for v in ids.iter().chain(hs) {
            q = q.bind(*v);
        }
        for row in q.fetch_all(c.ex()).await? {
            let Some(id) = row.try_get::<Option<String>, _>("id")? else {
                continue;
            };
            let k: String = row.try_get("k")?;
            let map = if k == "id" { &mut by_id } else { &mut by_hash };
            map.insert(row.try_get("v")?, id);
        }
    }
    Ok((by_id, by_hash))
}

/// The `n`th [`IN_LIST`] values of `all` (empty past its end).
fn chunk<'a>(all: &'a [&'a str], n: usize) -> &'a [&'a str] {
    all.chunks(IN_LIST).nth(n).unwrap_or(&[])
}

/// Whether a statement sized by its batch (`rows`) keeps its place in the
/// statement cache: only for a batch of one, the usual one below a few
/// hundred webhooks a second, where preparing it each time was a third of
/// its cost (BENCHMARKS.md, the sixth session); a larger batch shares the
/// cost of preparing among its rows, and a place per size would crowd
/// out the statements every unit runs.
fn by_one(rows: usize) -> bool {
    rows == 1
}

/// Inserts `events`, a few dozen per statement.
pub async fn insert_events(c: &mut impl Conn, events: &[EventRow]) -> Result<(), DbError> {
    let marks = Marks::of(c);
    for chunk in events.chunks(ROWS_PER_STATEMENT) {
        let sql = sql!(
            "INSERT INTO events ({}) VALUES {}",
            events::COLS,
            marks.tuples(chunk.len(), events::COL_COUNT, 1)
        );
        let mut q = sqlx::query(sql).persistent(by_one(chunk.len()));
        for e in chunk {
            q = events::bind(q, e)?;
        }
        q.execute(c.ex()).await?;
    }
    Ok(())
}

/// Queues `jobs`, due at `run_at`, as [`jobs::enqueue`] does one by one.
/// Their dedupe keys must be distinct.
pub async fn enqueue_jobs(c: &mut impl Conn, jobs: &[Job], run_at: i64) -> Result<(), DbError> {
    let marks = Marks::of(c);
    let now = now_micros();
    for chunk in jobs.chunks(ROWS_PER_STATEMENT) {
        let sql = sqlx::AssertSqlSafe(jobs::insert_sql(&marks.tuples(chunk.len(), 6, 1)));
        let mut q = sqlx::query(sql).persistent(by_one(chunk.len()));
        for job in chunk {
            q = q
                .bind(new_id("job"))
                .bind(job.kind())
                .bind(job.dedupe_key())
                .bind(job.payload()?)
                .bind(run_at)
                .bind(now);
        }

        q.execute(c.ex()).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_across_rows() {
        let pg = Marks { numbered: true };
        assert_eq!(pg.tuples(2, 3, 1), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(pg.tuples(1, 2, 5), "($5, $6)");
        assert_eq!(pg.list(3, 2), "$2, $3, $4");
        assert_eq!(pg.one(7), "$7");
        let sqlite = Marks { numbered: false };
        assert_eq!(sqlite.tuples(2, 2, 1), "(?, ?), (?, ?)");
        assert_eq!(sqlite.list(3, 2), "?, ?, ?");
    }
}
