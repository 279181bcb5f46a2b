//! Units of work: a piece of database work with nothing else to wait for in
//! it (a job's reads and writes between two store calls), run as one
//! transaction.
//!
//! Why: sqlx's SQLite driver runs each connection on a thread of its own
//! and hands every statement to it and back — two thread switches per
//! statement, which were most of shipsync's CPU per shipment on SQLite
//! (BENCHMARKS.md, the profile of 2026-12-04). On SQLite a unit runs whole
//! on the unit thread, against a connection of its own (rusqlite, with a
//! statement cache) whose statements execute in place: one switch there and
//! one back per unit. On PostgreSQL a unit runs as before, in a sqlx
//! transaction on the caller's task.
//!
//! A unit's code is the same for both backends: this crate's query
//! functions take a sqlx [`Executor`], which a unit's executor ([`Ex`])
//! implements over the unit thread's connection ([`Inline`]) too, its
//! values mapped into the `Any` driver's rows exactly as sqlx's SQLite
//! driver maps them; functions that run
//! several statements take a [`Conn`] (a sqlx transaction is one).
//!
//! The rules for a unit's code: await only this crate's queries on the
//! [`Conn`] it is given (on SQLite it is polled on the unit thread, where
//! nothing else runs: a wait on a timer, a lock or the network would hold
//! every other unit up), and never start a unit while holding a sqlx
//! transaction open (the unit would wait for its write lock).

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::mpsc;

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use sqlx::any::{AnyQueryResult, AnyRow, AnyStatement, AnyTypeInfo, AnyTypeInfoKind, AnyValue};
use sqlx::error::{DatabaseError, ErrorKind};
use sqlx::{Any, AnyConnection, AnyPool, Either, Execute, Executor};
use sqlx_core::any::{AnyColumn, AnyValueKind};
use sqlx_core::ext::ustr::UStr;

use crate::{Backend, DbError, Tx, WAL_AUTOCHECKPOINT_PAGES};

/// Where the statements of a transaction run: a sqlx transaction, or a
/// unit's connection on the SQLite unit thread.
pub trait Conn: Send {
    /// An executor for one statement (what `&mut **tx` is for a sqlx
    /// transaction).
    fn ex(&mut self) -> Ex<'_>;
    fn backend(&self) -> Backend;
}

impl Conn for Tx<'_> {
    fn ex(&mut self) -> Ex<'_> {
        Ex::Sqlx(self)
    }

    fn backend(&self) -> Backend {
        Backend::of_connection(self)
    }
}

impl Conn for Inline {
    fn ex(&mut self) -> Ex<'_> {
        Ex::Inline(self)
    }

    fn backend(&self) -> Backend {
        Backend::Sqlite
    }
}

/// The pool as a [`Conn`] (each statement on its own, committed at once):
/// for code written for a unit, run outside one ([`crate::Db::pooled`]).
#[derive(Debug)]
pub struct Pooled<'p> {
    pub(crate) pool: &'p AnyPool,
    pub(crate) backend: Backend,
}

impl Conn for Pooled<'_> {
    fn ex(&mut self) -> Ex<'_> {
        Ex::Pool(self.pool)
    }

    fn backend(&self) -> Backend {
        self.backend
    }
}

/// The executor of a [`Conn`]: one type for all, so that code generic
/// over the connection needs no bounds on its executor.
#[derive(Debug)]
pub enum Ex<'c> {
    Sqlx(&'c mut AnyConnection),
    Pool(&'c AnyPool),
    Inline(&'c mut Inline),
}

impl<'c> Executor<'c> for Ex<'c> {
    type Database = Any;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<AnyQueryResult, AnyRow>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Any>,
    {
        match self {
            Ex::Sqlx(c) => c.fetch_many(query),
            Ex::Pool(p) => p.fetch_many(query),
            Ex::Inline(c) => {
                let items: Vec<Result<Either<AnyQueryResult, AnyRow>, sqlx::Error>> =
                    match c.run(query, None) {
                        Ok((done, rows)) => rows
                            .into_iter()
                            .map(|r| Ok(Either::Right(r)))
                            .chain(std::iter::once(Ok(Either::Left(done))))
                            .collect(),
                        Err(e) => vec![Err(e)],
                    };
                Box::pin(futures::stream::iter(items))
            }
        }
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<AnyRow>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Any>,
    {
        match self {
            Ex::Sqlx(c) => c.fetch_optional(query),
            Ex::Pool(p) => p.fetch_optional(query),
            Ex::Inline(c) => Box::pin(std::future::ready(
                c.run(query, Some(1))
                    .map(|(_, rows)| rows.into_iter().next()),
            )),
        }
    }

    fn prepare_with<'e>(
        self,
        sql: sqlx::SqlStr,
        parameters: &'e [AnyTypeInfo],
    ) -> BoxFuture<'e, Result<AnyStatement, sqlx::Error>>
    where
        'c: 'e,
    {
        match self {
            Ex::Sqlx(c) => c.prepare_with(sql, parameters),
            Ex::Pool(p) => p.prepare_with(sql, parameters),
            Ex::Inline(_) => Box::pin(std::future::ready(Err(sqlx::Error::Protocol(format!(
                "a unit's statements are prepared as they run, not ahead: {}",
                sql.as_str()
            ))))),
        }
    }
}

/// A unit of work (see the module's documentation): what it needs, owned,
/// and the work, generic over where it runs.
pub trait Unit: Send + 'static {
    type Output: Send + 'static;
    type Error: From<DbError> + Send + 'static;
    /// Whether the unit writes: on SQLite a writing unit takes the write
    /// lock at its start (`BEGIN IMMEDIATE`, as [`crate::Db::begin`]); one
    /// that only reads takes none (`BEGIN`: a snapshot at its first read).
    const WRITES: bool = true;
    fn run<C: Conn>(
        self,
        c: &mut C,
    ) -> impl Future<Output = Result<Self::Output, Self::Error>> + Send;
}

/// A unit's work, boxed for the unit thread.
type Work = Box<dyn FnOnce(&mut Inline) + Send>;

/// Which of the unit thread's queues a unit waits in.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Lane {
    /// In the order they come.
    Normal,
    /// Ahead of every unit of the normal lane not yet started: for work
    /// someone outside is waiting for (the webhook ingest's batches, whose
    /// 202s wait for their commit), so that it waits for at most the one
    /// unit running, never for a queue of job units.
    First,
}

/// The unit thread's two queues.
#[derive(Default)]
struct Queues {
    first: std::collections::VecDeque<Work>,
    normal: std::collections::VecDeque<Work>,
    /// Cleared when the last handle is dropped: the thread ends once both
    /// queues are empty.
    open: bool,
}

#[derive(Default)]
struct Shared {
    queues: std::sync::Mutex<Queues>,
    ready: std::sync::Condvar,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queues> {
        // A unit never runs under this lock: a poisoned lock only means a
        // push or pop panicked, and the queues are still whole.
        self.queues
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The next unit to run (the first lane's before the normal one's);
    /// `None` when the handle is gone and nothing is left.
    fn next(&self) -> Option<Work> {
        let mut q = self.lock();
        loop {
            if let Some(w) = q.first.pop_front().or_else(|| q.normal.pop_front()) {
                return Some(w);
            }
            if !q.open {
                return None;
            }
            q = self
                .ready
                .wait(q)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }
}

/// The SQLite unit thread: its queues. The thread opens its connection on
/// start and ends when the last [`crate::Db`] clone is dropped.
pub(crate) struct Units {
    shared: Arc<Shared>,
}

impl fmt::Debug for Units {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Units").finish_non_exhaustive()
    }
}

impl Drop for Units {
    fn drop(&mut self) {
        self.shared.lock().open = false;
        self.shared.ready.notify_one();
    }
}

impl Units {
    /// Starts the unit thread on the SQLite database file `path`.
    pub(crate) fn start(path: std::path::PathBuf) -> Result<Self, DbError> {
        let shared = Arc::new(Shared::default());
        shared.lock().open = true;
        let work = Arc::clone(&shared);
        let (ready_tx, ready) = mpsc::channel();
        std::thread::Builder::new()
            .name("sqlite-units".into())
            .spawn(move || {
                let mut inline = match Inline::open(&path) {
                    Ok(c) => {
                        let _ = ready_tx.send(Ok(()));
                        c
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                while let Some(w) = work.next() {
                    // A unit that panics fails alone (its caller sees the
                    // thread's answer dropped); the thread goes on, its
                    // transaction rolled back.
                    let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        w(&mut inline);
                    }));
                    if ran.is_err() && !inline.conn.is_autocommit() {
                        let _ = inline.conn.execute_batch("ROLLBACK");
                    }
                }
            })
            .map_err(|e| DbError::Config(format!("cannot start the SQLite unit thread: {e}")))?;
        ready
            .recv()
            .map_err(|_| DbError::Sqlx(sqlx::Error::WorkerCrashed))??;
        Ok(Self { shared })
    }

    /// Units queued, not yet started.
    pub(crate) fn waiting(&self) -> usize {
        let q = self.shared.lock();
        q.first.len() + q.normal.len()
    }

    /// Runs `unit` on the unit thread as one transaction (committed when
    /// it returns `Ok`, rolled back otherwise), queued in `lane`;
    /// `relaxed`: see [`crate::relaxed`].
    pub(crate) async fn run<U: Unit>(
        &self,
        unit: U,
        relaxed: bool,
        lane: Lane,
    ) -> Result<U::Output, U::Error> {
        let (done, answer) = tokio::sync::oneshot::channel();
        // The unit logs as its caller would: to the caller's subscriber,
        // inside the caller's span.
        let span = tracing::Span::current();
        let logs = tracing::dispatcher::get_default(Clone::clone);
        let work: Work = Box::new(move |inline: &mut Inline| {
            tracing::dispatcher::with_default(&logs, || {
                let _entered = span.enter();
                let _ = done.send(inline.transaction(relaxed, unit));
            });
        });
        {
            let mut q = self.shared.lock();
            match lane {
                Lane::First => q.first.push_back(work),
                Lane::Normal => q.normal.push_back(work),
            }
        }
        self.shared.ready.notify_one();
        answer
            .await
            .map_err(|_| DbError::Sqlx(sqlx::Error::WorkerCrashed))?
    }
}

/// How long the unit thread waits for another connection's write lock
/// before its statement fails (the pool's `busy_timeout`).
const BUSY_FOR: std::time::Duration = std::time::Duration::from_secs(10);
/// How often it looks again meanwhile.
const BUSY_EVERY: std::time::Duration = std::time::Duration::from_micros(250);

/// The unit thread's wait for a write lock another connection (sqlx's
/// pool: the API, the order side) holds: a look every [`BUSY_EVERY`], up
/// to [`BUSY_FOR`]. SQLite's own handler (`busy_timeout`) sleeps 1, 2, 5,
/// 10 … 100 ms between looks, so a unit — a batch of webhooks waiting for
/// their 202 among them — could sleep on long after the lock was free.
fn busy(retries: i32) -> bool {
    let waited = BUSY_EVERY * u32::try_from(retries).unwrap_or(u32::MAX);
    if waited >= BUSY_FOR {
        return false;
    }
    std::thread::sleep(BUSY_EVERY);
    true
}

/// Statements kept prepared on the unit thread's connection.
const STATEMENT_CACHE: usize = 256;

/// The unit thread's SQLite connection; its statements execute in place.
pub struct Inline {
    conn: rusqlite::Connection,
    /// The `synchronous` setting in force: `true` for NORMAL.
    relaxed: bool,
    /// The columns of the prepared statements that returned rows, by SQL:
    /// built once, shared by every row.
    shapes: std::collections::HashMap<String, Arc<Shape>>,
}

/// The columns of a statement's rows, as the `Any` driver's rows hold them.
struct Shape {
    names: Vec<UStr>,
    by_name: Arc<sqlx_core::HashMap<UStr, usize>>,
}

impl Shape {
    fn of(stmt: &rusqlite::Statement<'_>) -> Arc<Self> {
        let names: Vec<UStr> = stmt.column_names().into_iter().map(UStr::new).collect();
        let by_name = Arc::new(
            names
                .iter()
                .enumerate()
                .map(|(i, n)| (n.clone(), i))
                .collect(),
        );
        Arc::new(Self { names, by_name })
    }
}

impl fmt::Debug for Inline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inline")
            .field("relaxed", &self.relaxed)
            .finish()
    }
}

impl Inline {
    /// Opens the database file with the settings of the sqlx pool's
    /// connections ([`crate::Db::connect`]).
    fn open(path: &std::path::Path) -> Result<Self, DbError> {
        let conn = rusqlite::Connection::open(path).map_err(error)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        conn.execute_batch(&format!(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;
             PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}; PRAGMA foreign_keys=ON;"
        ))
        .map_err(error)?;
        conn.busy_handler(Some(busy)).map_err(error)?;
        Ok(Self {
            conn,
            relaxed: false,
            shapes: std::collections::HashMap::new(),
        })
    }

    /// Runs `unit` as one transaction (see [`Unit::WRITES`]).
    fn transaction<U: Unit>(&mut self, relaxed: bool, unit: U) -> Result<U::Output, U::Error> {
        if relaxed != self.relaxed {
            let sync = if relaxed {
                "PRAGMA synchronous=NORMAL"
            } else {
                "PRAGMA synchronous=FULL"
            };
            self.control(sync).map_err(DbError::from)?;
            self.relaxed = relaxed;
        }
        let begin = if U::WRITES {
            "BEGIN IMMEDIATE"
        } else {
            "BEGIN"
        };
        self.control(begin).map_err(DbError::from)?;
        let out = futures::executor::block_on(unit.run(self));
        let end = if out.is_ok() { "COMMIT" } else { "ROLLBACK" };
        if let Err(e) = self.control(end) {
            if !self.conn.is_autocommit() {
                let _ = self.conn.execute_batch("ROLLBACK");
            }
            return Err(DbError::from(e).into());
        }
        out
    }

    /// Runs a transaction control statement, prepared once.
    fn control(&self, sql: &str) -> Result<(), rusqlite::Error> {
        self.conn.prepare_cached(sql)?.execute([]).map(|_| ())
    }

    /// Executes `query` in place: its rows (up to `limit`) and the rows it
    /// changed.
    fn run<'q, E: Execute<'q, Any>>(
        &mut self,
        mut query: E,
        limit: Option<usize>,
    ) -> Result<(AnyQueryResult, Vec<AnyRow>), sqlx::Error> {
        let persistent = query.persistent();
        let args = query.take_arguments().map_err(sqlx::Error::Encode)?;
        self.execute(query.sql().as_str(), args, persistent, limit)
    }

    /// Executes one statement in place: its rows (up to `limit`) and the
    /// rows it changed.
    fn execute(
        &mut self,
        sql: &str,
        args: Option<sqlx::any::AnyArguments>,
        persistent: bool,
        limit: Option<usize>,
    ) -> Result<(AnyQueryResult, Vec<AnyRow>), sqlx::Error> {
        let mut cached;
        let mut once;
        let stmt: &mut rusqlite::Statement<'_> = if persistent {
            cached = self.conn.prepare_cached(sql).map_err(error)?;
            &mut cached
        } else {
            once = self.conn.prepare(sql).map_err(error)?;
            &mut once
        };
        let values = args.map(|a| a.values.0).unwrap_or_default();
        bind(stmt, &values)?;
        let mut shape: Option<Arc<Shape>> = None;
        let mut rows = Vec::new();
        let mut raw = stmt.raw_query();
        while limit.is_none_or(|l| rows.len() < l) {
            let Some(row) = raw.next().map_err(error)? else {
                break;
            };
            // Only statements that return rows need their columns: built
            // at the first row, once per prepared statement.
            let shape = shape.get_or_insert_with(|| {
                if !persistent {
                    return Shape::of(row.as_ref());
                }
                // (A schema change that altered the columns of a `*` is
                // seen by their count at least; shipsync's statements name
                // their columns.)
                if let Some(known) = self.shapes.get(sql)
                    && known.names.len() == row.as_ref().column_count()
                {
                    return Arc::clone(known);
                }
                if self.shapes.len() >= STATEMENT_CACHE * 2 {
                    self.shapes.clear();
                }
                let new = Shape::of(row.as_ref());
                self.shapes.insert(sql.to_owned(), Arc::clone(&new));
                new
            });
            rows.push(any_row(row, &shape.names, &shape.by_name)?);
        }
        drop(raw);
        let changed = self.conn.changes();
        Ok((
            AnyQueryResult {
                rows_affected: changed,
                last_insert_id: None,
            },
            rows,
        ))
    }
}

/// Binds `values` to `stmt`'s parameters as sqlx's SQLite driver does:
/// `$N` (or `?N`) takes value N, a plain `?` the next one; parameters past
/// the values stay NULL.
fn bind(stmt: &mut rusqlite::Statement<'_>, values: &[AnyValueKind]) -> Result<(), sqlx::Error> {
    use rusqlite::types::ValueRef;
    let mut next = 0;
    for i in 1..=stmt.parameter_count() {
        let n = match stmt.parameter_name(i) {
            Some(name) => name
                .strip_prefix(['$', '?'])
                .and_then(|n| n.parse::<usize>().ok())
                .ok_or_else(|| {
                    sqlx::Error::Protocol(format!("unsupported SQL parameter: {name}"))
                })?,
            None => {
                next += 1;
                next
            }
        };
        let Some(v) = n.checked_sub(1).and_then(|k| values.get(k)) else {
            break;
        };
        let v = match v {
            AnyValueKind::Null(_) => ValueRef::Null,
            AnyValueKind::Bool(b) => ValueRef::Integer(i64::from(*b)),
            AnyValueKind::SmallInt(i) => ValueRef::Integer(i64::from(*i)),
            AnyValueKind::Integer(i) => ValueRef::Integer(i64::from(*i)),
            AnyValueKind::BigInt(i) => ValueRef::Integer(*i),
            AnyValueKind::Real(r) => ValueRef::Real(f64::from(*r)),
            AnyValueKind::Double(d) => ValueRef::Real(*d),
            AnyValueKind::Text(t) => ValueRef::Text(t.as_bytes()),
            AnyValueKind::TextSlice(t) => ValueRef::Text(t.as_bytes()),
            AnyValueKind::Blob(b) => ValueRef::Blob(b),
            other => {
                return Err(sqlx::Error::Protocol(format!(
                    "no SQLite value for {other:?}"
                )));
            }
        };
        stmt.raw_bind_parameter(i, rusqlite::types::ToSqlOutput::Borrowed(v))
            .map_err(error)?;
    }
    Ok(())
}

/// A row as sqlx's SQLite driver hands it to the `Any` driver: each value
/// typed by its storage class (INTEGER as `BigInt`, REAL as `Double`).
fn any_row(
    row: &rusqlite::Row<'_>,
    names: &[UStr],
    by_name: &Arc<sqlx_core::HashMap<UStr, usize>>,
) -> Result<AnyRow, sqlx::Error> {
    use rusqlite::types::ValueRef;
    let mut columns = Vec::with_capacity(names.len());
    let mut values = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        let (kind, value) = match row.get_ref(i).map_err(error)? {
            ValueRef::Null => (
                AnyTypeInfoKind::Null,
                AnyValueKind::Null(AnyTypeInfoKind::Null),
            ),
            ValueRef::Integer(v) => (AnyTypeInfoKind::BigInt, AnyValueKind::BigInt(v)),
            ValueRef::Real(v) => (AnyTypeInfoKind::Double, AnyValueKind::Double(v)),
            ValueRef::Text(t) => (
                AnyTypeInfoKind::Text,
                AnyValueKind::Text(Arc::new(String::from_utf8_lossy(t).into_owned())),
            ),
            ValueRef::Blob(b) => (
                AnyTypeInfoKind::Blob,
                AnyValueKind::Blob(Arc::new(b.to_vec())),
            ),
        };
        columns.push(AnyColumn {
            ordinal: i,
            name: name.clone(),
            type_info: AnyTypeInfo { kind },
        });
        values.push(AnyValue { kind: value });
    }
    Ok(AnyRow {
        column_names: Arc::clone(by_name),
        columns,
        values,
    })
}

/// A SQLite error from the unit thread's connection, as sqlx's own SQLite
/// errors present themselves (code: the extended result code).
#[derive(Debug)]
struct InlineError {
    code: Option<i32>,
    message: String,
}

impl fmt::Display for InlineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for InlineError {}

impl DatabaseError for InlineError {
    fn message(&self) -> &str {
        &self.message
    }

    fn code(&self) -> Option<Cow<'_, str>> {
        self.code.map(|c| Cow::Owned(c.to_string()))
    }

    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self
    }

    fn kind(&self) -> ErrorKind {
        use rusqlite::ffi;
        match self.code {
            Some(ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY) => {
                ErrorKind::UniqueViolation
            }
            Some(ffi::SQLITE_CONSTRAINT_FOREIGNKEY) => ErrorKind::ForeignKeyViolation,
            Some(ffi::SQLITE_CONSTRAINT_NOTNULL) => ErrorKind::NotNullViolation,
            Some(ffi::SQLITE_CONSTRAINT_CHECK) => ErrorKind::CheckViolation,
            _ => ErrorKind::Other,
        }
    }
}

/// A rusqlite error as a sqlx one.
fn error(e: rusqlite::Error) -> sqlx::Error {
    match e {
        rusqlite::Error::SqliteFailure(f, message) => {
            sqlx::Error::Database(Box::new(InlineError {
                code: Some(f.extended_code),
                message: message.unwrap_or_else(|| f.to_string()),
            }))
        }
        other => sqlx::Error::Protocol(format!("SQLite: {other}")),
    }
}

impl From<rusqlite::Error> for DbError {
    fn from(e: rusqlite::Error) -> Self {
        DbError::Sqlx(error(e))
    }
}
