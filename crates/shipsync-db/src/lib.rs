//! Persistence for shipsync: one repository API over SQLite and PostgreSQL.
//!
//! The same SQL runs on both backends through sqlx's `Any` driver; queries
//! use `$N` placeholders (SQLite understands them too). Times are Unix
//! microseconds, flags 0/1, so every column type is portable.
//!
//! One module per table (or pair of tables that live together), each with
//! its row type, its columns, the row's decoding and its queries. Rows are
//! typed: flags are `bool`, states the enums of [`shipsync_core::states`],
//! JSON columns their decoded values; a stored value that does not decode
//! is [`DbError::Corrupt`], never a default.
//!
//! One calling convention: queries are free functions, named by their
//! module (`shipments::get`, `runs::queue`), whose first parameter says
//! where they run:
//! - `ex`, an executor, for one statement: pass `db.pool()`, or `&mut *tx`
//!   inside a transaction;
//! - `tx: &mut Tx`, for several statements inside the caller's transaction;
//! - `db: &Db`, for work that opens its own transaction, runs several
//!   statements, or depends on the backend.
//!
//! [`Db`] itself only holds the pool: connect, migrate, begin, ping, close.

/// A query text built from constant pieces (column lists); never from input.
macro_rules! sql {
    ($($t:tt)*) => { sqlx::AssertSqlSafe(format!($($t)*)) };
}

pub mod activity;
pub mod alert_cursors;
pub mod alert_policies;
pub mod alerts;
pub mod api_tokens;
pub mod budgets;
pub mod channels;
pub mod conditions;
pub mod connections;
mod decode;
mod error;
pub mod event_deliveries;
pub mod event_subscriptions;
pub mod events;
pub mod fulfillments;
pub mod ingest;
pub mod jobs;
pub mod mappings;
pub mod merchants;
pub mod meta;
mod migrate;
pub mod notification_channels;
pub mod orders;
pub mod outbound_events;
pub mod recipes;
pub mod retention;
pub mod retries_exhausted;
pub mod runs;
pub mod sessions;
pub mod shipments;
pub mod store_auth;
pub mod unit;
pub mod users;
pub mod versions;
pub mod warehouse_refusals;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};

pub use error::DbError;
pub use shipsync_core::states;
pub use sqlx::Any;
pub use sqlx::Error as SqlxError;
pub use sqlx::any::AnyRow;

pub type Tx<'a> = sqlx::Transaction<'a, sqlx::Any>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The backend a database URL names: `sqlite:…`, or `postgres:…` /
    /// `postgresql:…`; `None` for any other. The one place a URL's backend
    /// is told.
    pub fn of_url(url: &str) -> Option<Self> {
        if url.starts_with("sqlite:") {
            Some(Backend::Sqlite)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Some(Backend::Postgres)
        } else {
            None
        }
    }

    /// The backend of an open connection (or transaction): the only
    /// drivers built in are SQLite's and PostgreSQL's.
    pub fn of_connection(conn: &sqlx::AnyConnection) -> Self {
        if conn.backend_name() == <sqlx::Postgres as sqlx::Database>::NAME {
            Backend::Postgres
        } else {
            Backend::Sqlite
        }
    }
}

/// What locks the rows a `SELECT` inside `tx` reads for the rest of the
/// transaction: `FOR UPDATE` on PostgreSQL; nothing on SQLite, whose write
/// transactions lock the whole database already.
fn for_update(tx: &impl unit::Conn) -> &'static str {
    match tx.backend() {
        Backend::Postgres => " FOR UPDATE",
        Backend::Sqlite => "",
    }
}

/// SQL saying that `col` is one of a set of values bound from parameter
/// `$first` on (bind them in order after the query's other parameters):
/// `None` matches any value, an empty set none.
pub(crate) fn one_of(col: &str, set: Option<&[String]>, first: usize) -> String {
    match set {
        None => "1 = 1".into(),
        Some([]) => "1 = 0".into(),
        Some(values) => format!("{col} IN ({})", placeholders(first, values.len())),
    }
}

/// `$first, $first+1, …`: `n` placeholders, for the words of a state set
/// bound after the query's other parameters.
pub(crate) fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `'a', 'b'`: a set of state words as SQL literals, for statements built
/// once from constants (the words come from [`states`], never from input).
pub(crate) fn quoted(words: &[&'static str]) -> String {
    words
        .iter()
        .map(|w| format!("'{w}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `s` inside a `LIKE … ESCAPE '\'` pattern: its `\`, `%` and `_` taken
/// literally.
pub(crate) fn like_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// The largest SQLite write-ahead log (pages) before a commit checkpoints
/// it itself. SQLite's default, 1,000, is passed several times a second at
/// 2,000 webhooks/s, each time a multi-millisecond checkpoint inside a
/// commit that webhooks wait for; `serve` checkpoints in the background
/// instead ([`Db::checkpoint`]), and this is the fallback.
pub const WAL_AUTOCHECKPOINT_PAGES: u32 = 8192;

/// A handle on the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Db {
    pool: AnyPool,
    /// SQLite only: connections whose commits are not fsynced one by one
    /// (`synchronous=NORMAL`), used inside [`relaxed`] scopes.
    relaxed: Option<AnyPool>,
    backend: Backend,
    /// SQLite on a file: the unit thread ([`Db::unit`]).
    units: Option<Arc<unit::Units>>,
}

tokio::task_local! {
    /// Set by [`relaxed`] scopes.
    static RELAXED: bool;
}

/// Runs `work` with relaxed durability: on SQLite its commits go to the WAL
/// without an fsync each (`synchronous=NORMAL`). They survive a crash of the
/// process, and the next durable commit (any connection's: the WAL is one
/// file) makes them durable too; only an OS crash or power loss before that
/// can take back a suffix of them, never leaving the database torn.
///
/// For work whose every write can be done again: job processing, whose
/// inputs (the stored webhooks, the job rows) are committed durably and whose
/// steps are idempotent. Whatever is acknowledged to someone outside (a 202,
/// an API answer, the intent recorded before a store mutation) must be
/// written outside it, or through [`Db::durable_pool`]. No effect on
/// PostgreSQL, where every commit is durable.
pub async fn relaxed<F: Future>(work: F) -> F::Output {
    RELAXED.scope(true, work).await
}

/// Now, in Unix microseconds.
pub fn now_micros() -> i64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// The process's ULID source: monotonic, so that two ids made in the same
/// millisecond still sort in the order they were made.
static IDS: std::sync::Mutex<ulid::Generator> = std::sync::Mutex::new(ulid::Generator::new());

/// A new opaque id with a type prefix, e.g. `shp_01jd…`. ULIDs sort by
/// creation time — within a process strictly in the order they were made,
/// also inside one millisecond — which keeps list cursors simple and lets
/// the outbound event deliveries of one shipment go in the order they were
/// written. Ids are not secrets (the random part of ids made in the same
/// millisecond is consecutive).
pub fn new_id(prefix: &str) -> String {
    let id = IDS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .generate()
        // 2^80 ids in one millisecond: not reachable; a plain ULID then.
        .unwrap_or_else(|_| ulid::Ulid::generate());
    format!("{prefix}_{}", id.to_string().to_lowercase())
}

impl Db {
    /// Connects (creating a SQLite file when missing) without migrating.
    pub async fn connect(url: &str) -> Result<Self, DbError> {
        sqlx::any::install_default_drivers();
        let backend = Backend::of_url(url).ok_or_else(|| {
            DbError::Config(format!(
                "unsupported database URL {url:?}: use sqlite://FILE or postgres://…"
            ))
        })?;
        let url = match backend {
            Backend::Sqlite if !url.contains("mode=") => {
                let sep = if url.contains('?') { '&' } else { '?' };
                format!("{url}{sep}mode=rwc")
            }
            _ => url.to_string(),
        };
        let options = AnyConnectOptions::from_str(&url)
            .map_err(|e| DbError::Config(format!("invalid database URL: {e}")))?;
        let pool = Self::pool_with(backend, &options, "FULL").await?;
        let relaxed = match backend {
            Backend::Sqlite => Some(Self::pool_with(backend, &options, "NORMAL").await?),
            Backend::Postgres => None,
        };
        let units = match backend {
            Backend::Sqlite => {
                let file = sqlx::sqlite::SqliteConnectOptions::from_str(&url)
                    .map_err(|e| DbError::Config(format!("invalid database URL: {e}")))?
                    .get_filename()
                    .to_path_buf();
                let in_memory = file.as_os_str() == ":memory:" || url.contains("mode=memory");
                (!in_memory)
                    .then(|| unit::Units::start(file))
                    .transpose()?
                    .map(Arc::new)
            }
            Backend::Postgres => None,
        };
        Ok(Self {
            pool,
            relaxed,
            backend,
            units,
        })
    }

    /// Runs `unit` atomically: on SQLite (a file) whole on the unit thread,
    /// its statements executed in place, in one commit with the units
    /// queued with it (each in a savepoint of its own); otherwise in a
    /// transaction of the pool for the current scope ([`relaxed`]). See
    /// [`mod@unit`].
    pub async fn unit<U: unit::Unit>(&self, unit: U) -> Result<U::Output, U::Error> {
        let relaxed = RELAXED.try_with(|r| *r).unwrap_or(false);
        self.unit_in(unit, relaxed, unit::Lane::Normal).await
    }

    /// [`Db::unit`], durable (as [`Db::durable_unit`]) and run ahead of
    /// the units queued before it (the unit thread's first lane): for work someone
    /// outside waits for, e.g. the webhook ingest's batches.
    pub async fn urgent_unit<U: unit::Unit>(&self, unit: U) -> Result<U::Output, U::Error> {
        RELAXED
            .scope(false, self.unit_in(unit, false, unit::Lane::First))
            .await
    }

    /// Fsyncs of the SQLite log made off the unit thread so far, each
    /// before the durable units committed ahead of it were answered (0
    /// without a unit thread).
    pub fn log_fsyncs(&self) -> u64 {
        self.units.as_ref().map_or(0, |u| u.fsyncs())
    }

    /// Units queued on the SQLite unit thread, not yet started (0 without
    /// one).
    pub fn units_waiting(&self) -> usize {
        self.units.as_ref().map_or(0, |u| u.waiting())
    }

    async fn unit_in<U: unit::Unit>(
        &self,
        unit: U,
        relaxed: bool,
        lane: unit::Lane,
    ) -> Result<U::Output, U::Error> {
        match &self.units {
            Some(units) => units.run(unit, relaxed, lane).await,
            None => {
                let mut tx = self.begin().await?;
                let out = unit.run(&mut tx).await?;
                tx.commit().await.map_err(DbError::from)?;
                Ok(out)
            }
        }
    }

    async fn pool_with(
        backend: Backend,
        options: &AnyConnectOptions,
        synchronous: &'static str,
    ) -> Result<AnyPool, DbError> {
        Ok(AnyPoolOptions::new()
            .max_connections(match backend {
                Backend::Sqlite => 16,
                Backend::Postgres => 16,
            })
            .acquire_timeout(Duration::from_secs(5))
            // A SQLite connection is a local file handle: pinging it before
            // every use is a round trip to its thread for nothing. A
            // PostgreSQL connection may have been cut by the network.
            .test_before_acquire(backend == Backend::Postgres)
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL for concurrent readers; FULL so that a 202 survives
                        // power loss, not only a crash (NORMAL: see `relaxed`).
                        conn.execute("PRAGMA journal_mode=WAL").await?;
                        conn.execute(sqlx::AssertSqlSafe(format!(
                            "PRAGMA synchronous={synchronous}"
                        )))
                        .await?;
                        conn.execute("PRAGMA busy_timeout=10000").await?;
                        // `serve` checkpoints the WAL in the background
                        // ([`Db::checkpoint`]), off the commit path; this
                        // bound is the fallback (and what other commands
                        // use): the commit that passes it checkpoints.
                        conn.execute(sqlx::AssertSqlSafe(format!(
                            "PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}"
                        )))
                        .await?;
                        conn.execute("PRAGMA foreign_keys=ON").await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options.clone())
            .await?)
    }

    /// Connects and applies pending migrations.
    pub async fn open(url: &str) -> Result<Self, DbError> {
        let db = Self::connect(url).await?;
        db.migrate().await?;
        Ok(db)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The pool whose commits are durable one by one, also inside a
    /// [`relaxed`] scope: for a write acknowledged to someone outside.
    /// (An accessor rather than a scope: the pool is chosen where the call
    /// is written, not wherever its future happens to be built.)
    pub fn durable_pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The pool for the current scope: see [`relaxed`].
    pub fn pool(&self) -> &AnyPool {
        match &self.relaxed {
            Some(relaxed) if RELAXED.try_with(|r| *r).unwrap_or(false) => relaxed,
            _ => &self.pool,
        }
    }

    /// [`Db::unit`] with its commit durable also inside a [`relaxed`]
    /// scope (as [`Db::durable_pool`]): for a write acknowledged to someone
    /// outside.
    pub async fn durable_unit<U: unit::Unit>(&self, unit: U) -> Result<U::Output, U::Error> {
        RELAXED.scope(false, self.unit(unit)).await
    }

    /// The pool for the current scope as a [`unit::Conn`]: for code written
    /// for a unit, run outside one (each statement committed on its own).
    pub fn pooled(&self) -> unit::Pooled<'_> {
        unit::Pooled {
            pool: self.pool(),
            backend: self.backend,
        }
    }

    /// Begins a write transaction. On SQLite it takes the write lock at once
    /// (`BEGIN IMMEDIATE`), so it waits for other writers instead of failing
    /// when a read inside it would later have to be upgraded.
    pub async fn begin(&self) -> Result<Tx<'static>, DbError> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool().begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool().begin().await?,
        })
    }

    /// Copies what the SQLite write-ahead log holds into the database file,
    /// as far as readers allow, without waiting for anyone (`PASSIVE`): run
    /// every few hundred milliseconds by `serve`, so that the commit which
    /// fills the log past [`WAL_AUTOCHECKPOINT_PAGES`] (and acknowledges
    /// webhooks) does not do it. Nothing to do on PostgreSQL.
    pub async fn checkpoint(&self) -> Result<(), DbError> {
        if self.backend == Backend::Sqlite {
            sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    /// True when the database answers a trivial query.
    pub async fn ping(&self) -> bool {
        tokio::time::timeout(
            Duration::from_secs(2),
            sqlx::query("SELECT 1").execute(&self.pool),
        )
        .await
        .map(|r| r.is_ok())
        .unwrap_or(false)
    }

    pub async fn close(&self) {
        if let Some(relaxed) = &self.relaxed {
            relaxed.close().await;
        }
        self.pool.close().await;
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
        assert_eq!(placeholders(4, 2), "$4, $5");
        assert_eq!(quoted(&["new", "open"]), "'new', 'open'");
    }

    #[test]
    fn like_patterns_take_wildcards_literally() {
        assert_eq!(like_escape(r"1Z_5%\x"), r"1Z\_5\%\\x");
    }
}

#[cfg(test)]
mod id_tests {
    #[test]
    fn ids_made_together_sort_in_order() {
        let ids: Vec<String> = (0..1000).map(|_| super::new_id("dlv")).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
    }
}
