//! The durable job queue: a table, not in-memory tasks, so that work
//! acknowledged to a sender survives a crash.
//!
//! A job with a `dedupe_key` exists at most once; enqueueing it again while it
//! is leased marks it to run once more after the current run (`rerun`), so a
//! newer shipment version is never missed by a run already in progress.

use sqlx::Row;

use crate::{Backend, Db, DbError, Tx, new_id, now_micros};

/// Appended to the lease owner of a job held at shutdown.
const HELD: &str = ":held";

#[derive(Debug, Clone)]
pub struct Job {
    pub id: String,
    pub kind: String,
    pub payload: String,
    pub attempts: i64,
}

fn job_of(r: &sqlx::any::AnyRow) -> Result<Job, DbError> {
    Ok(Job {
        id: r.try_get("id")?,
        kind: r.try_get("kind")?,
        payload: r.try_get("payload")?,
        attempts: r.try_get("attempts")?,
    })
}

/// Enqueues a job inside the caller's transaction.
pub async fn enqueue(
    tx: &mut Tx<'_>,
    kind: &str,
    dedupe_key: Option<&str>,
    payload: &str,
    run_at: i64,
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO jobs (id, kind, dedupe_key, payload, run_at, created_at) VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (dedupe_key) DO UPDATE SET rerun = 1,
           run_at = CASE WHEN jobs.run_at < excluded.run_at THEN jobs.run_at ELSE excluded.run_at END,
           payload = excluded.payload",
    )
    .bind(new_id("job"))
    .bind(kind)
    .bind(dedupe_key)
    .bind(payload)
    .bind(run_at)
    .bind(now_micros())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Db {
    /// Claims up to `n` due jobs for `owner` for `lease_micros`.
    pub async fn claim_jobs(
        &self,
        owner: &str,
        n: i64,
        lease_micros: i64,
    ) -> Result<Vec<Job>, DbError> {
        let now = now_micros();
        let lock = match self.backend() {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let sql = format!(
            "UPDATE jobs SET lease_owner = $1, lease_until = $2, rerun = 0
             WHERE id IN (SELECT id FROM jobs WHERE run_at <= $3 AND (lease_until IS NULL OR lease_until < $3)
                          ORDER BY run_at LIMIT $4{lock})
             RETURNING id, kind, payload, attempts"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(owner)
            .bind(now + lease_micros)
            .bind(now)
            .bind(n)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(job_of).collect()
    }

    /// Claims one specific job by its dedupe key (the CLI running a job it
    /// queued itself); `None` when it is not claimable now.
    pub async fn claim_job_by_key(
        &self,
        dedupe_key: &str,
        owner: &str,
        lease_micros: i64,
    ) -> Result<Option<Job>, DbError> {
        let now = now_micros();
        let rows = sqlx::query(
            "UPDATE jobs SET lease_owner = $1, lease_until = $2, rerun = 0
             WHERE dedupe_key = $3 AND (lease_until IS NULL OR lease_until < $4)
             RETURNING id, kind, payload, attempts",
        )
        .bind(owner)
        .bind(now + lease_micros)
        .bind(dedupe_key)
        .bind(now)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(job_of).next().transpose()
    }

    /// The job is done: delete it, unless it was re-enqueued meanwhile, in
    /// which case it runs again at once.
    pub async fn complete_job(&self, id: &str, owner: &str) -> Result<(), DbError> {
        let deleted =
            sqlx::query("DELETE FROM jobs WHERE id = $1 AND lease_owner = $2 AND rerun = 0")
                .bind(id)
                .bind(owner)
                .execute(self.pool())
                .await?;
        if deleted.rows_affected() == 0 {
            sqlx::query(
                "UPDATE jobs SET rerun = 0, lease_owner = NULL, lease_until = NULL, attempts = 0, last_error = NULL, run_at = $2
                 WHERE id = $1 AND lease_owner = $3",
            )
            .bind(id)
            .bind(now_micros())
            .bind(owner)
            .execute(self.pool())
            .await?;
        }
        Ok(())
    }

    /// The job failed: run it again at `run_at` with one more attempt counted
    /// (or at once when it was re-enqueued meanwhile).
    pub async fn retry_job(
        &self,
        id: &str,
        owner: &str,
        run_at: i64,
        error: &str,
    ) -> Result<(), DbError> {
        sqlx::query(
            "UPDATE jobs SET attempts = attempts + 1, last_error = $2,
               run_at = CASE WHEN rerun = 1 THEN $3 ELSE $4 END,
               lease_owner = NULL, lease_until = NULL
             WHERE id = $1 AND lease_owner = $5",
        )
        .bind(id)
        .bind(error)
        .bind(now_micros())
        .bind(run_at)
        .bind(owner)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Runs the job again at `run_at` without counting an attempt (the other
    /// side asked us to wait).
    pub async fn defer_job(&self, id: &str, owner: &str, run_at: i64) -> Result<(), DbError> {
        sqlx::query(
            "UPDATE jobs SET run_at = CASE WHEN rerun = 1 THEN $2 ELSE $3 END, lease_owner = NULL, lease_until = NULL
             WHERE id = $1 AND lease_owner = $4",
        )
        .bind(id)
        .bind(now_micros())
        .bind(run_at)
        .bind(owner)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Extends the lease of a job `owner` still holds; false when it lost it
    /// (expired and taken by another worker, or finished).
    pub async fn renew_lease(&self, id: &str, owner: &str, until: i64) -> Result<bool, DbError> {
        let r = sqlx::query("UPDATE jobs SET lease_until = $1 WHERE id = $2 AND lease_owner = $3")
            .bind(until)
            .bind(id)
            .bind(owner)
            .execute(self.pool())
            .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Frees the leases `owner` holds (a worker stopped mid-job at shutdown):
    /// another node may take the jobs at once instead of after the lease.
    pub async fn release_leases(&self, owner: &str) -> Result<u64, DbError> {
        let r = sqlx::query(
            "UPDATE jobs SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = $1",
        )
        .bind(owner)
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected())
    }

    /// Keeps the jobs `owner` holds (a worker stopped at shutdown in the
    /// middle of a store write) leased until `until`, whoever may claim
    /// them: the write's outcome may still change until then. Marked as
    /// held, so a restart on SQLite does not free them early either.
    pub async fn hold_leases(&self, owner: &str, until: i64) -> Result<u64, DbError> {
        let r = sqlx::query(
            "UPDATE jobs SET lease_owner = lease_owner || $3, lease_until = $2 WHERE lease_owner = $1",
        )
        .bind(owner)
        .bind(until)
        .bind(HELD)
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected())
    }

    /// Frees every lease: on a single-node database (SQLite) a lease found at
    /// start-up belongs to a process that died, so its jobs may run at once
    /// — except those held at shutdown until a store write's outcome is
    /// settled ([`Db::hold_leases`]).
    pub async fn release_all_leases(&self) -> Result<u64, DbError> {
        let r = sqlx::query(
            "UPDATE jobs SET lease_owner = NULL, lease_until = NULL
             WHERE lease_owner IS NOT NULL AND (lease_owner NOT LIKE $1 OR lease_until < $2)",
        )
        .bind(format!("%{HELD}"))
        .bind(now_micros())
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected())
    }

    /// Removes a job whatever its state (e.g. its subject was archived).
    pub async fn drop_job(&self, id: &str) -> Result<(), DbError> {
        sqlx::query("DELETE FROM jobs WHERE id = $1")
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// The earliest `run_at` of a job not currently leased, to sleep until.
    pub async fn next_job_at(&self) -> Result<Option<i64>, DbError> {
        let row = sqlx::query(
            "SELECT MIN(run_at) AS t FROM jobs WHERE lease_until IS NULL OR lease_until < $1",
        )
        .bind(now_micros())
        .fetch_one(self.pool())
        .await?;
        Ok(row.try_get::<Option<i64>, _>("t")?)
    }

    pub async fn count_jobs(&self) -> Result<i64, DbError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM jobs")
            .fetch_one(self.pool())
            .await?;
        Ok(row.try_get::<i64, _>("n")?)
    }
}
