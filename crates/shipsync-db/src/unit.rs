//! Units of work: a piece of database work with nothing else to wait for in
//! it (a job's reads and writes between two store calls), run atomically —
//! on PostgreSQL as a transaction of its own; on SQLite in one transaction
//! with the units queued behind it that fit, each in a savepoint of its own
//! (group commit, [`Inline::group`]), its caller answered once that
//! transaction has ended.
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

/// Opens a savepoint inside a unit, around a part of it that may fail
/// alone: [`end_nested`] keeps or undoes what ran since. Not nested again.
pub async fn nested(c: &mut impl Conn) -> Result<(), DbError> {
    sqlx::query("SAVEPOINT nested").execute(c.ex()).await?;
    Ok(())
}

/// Ends the savepoint [`nested`] opened: what ran since stays (`keep`) or
/// is undone.
pub async fn end_nested(c: &mut impl Conn, keep: bool) -> Result<(), DbError> {
    if !keep {
        sqlx::query("ROLLBACK TO nested").execute(c.ex()).await?;
    }
    sqlx::query("RELEASE nested").execute(c.ex()).await?;
    Ok(())
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

/// A unit waiting for the unit thread: what decides which transaction it
/// may share ([`Inline::group`]), and the unit itself.
struct Work {
    lane: Lane,
    relaxed: bool,
    writes: bool,
    job: Box<dyn Job>,
}

/// A unit as the unit thread handles it, whatever its output's type.
trait Job: Send {
    /// Runs the unit inside the open transaction, keeping its outcome.
    fn run(&mut self, inline: &mut Inline);
    /// Whether the unit's work stands (it returned `Ok`).
    fn succeeded(&self) -> bool;
    /// Answers the unit's caller once its transaction has ended: the
    /// unit's own outcome, or `failed` when the transaction did not commit
    /// (a unit that failed on its own answers its own error).
    fn answer(self: Box<Self>, failed: Option<&Failure>);
}

/// A [`Unit`] with its caller's answer channel and logging context.
struct Pending<U: Unit> {
    unit: Option<U>,
    out: Option<Result<U::Output, U::Error>>,
    done: tokio::sync::oneshot::Sender<Result<U::Output, U::Error>>,
    span: tracing::Span,
    logs: tracing::Dispatch,
}

impl<U: Unit> Job for Pending<U> {
    fn run(&mut self, inline: &mut Inline) {
        let Some(unit) = self.unit.take() else {
            return;
        };
        // The unit logs as its caller would: to the caller's subscriber,
        // inside the caller's span.
        let out = tracing::dispatcher::with_default(&self.logs, || {
            let _entered = self.span.enter();
            futures::executor::block_on(unit.run(inline))
        });
        self.out = Some(out);
    }

    fn succeeded(&self) -> bool {
        matches!(self.out, Some(Ok(_)))
    }

    fn answer(self: Box<Self>, failed: Option<&Failure>) {
        let out = match (self.out, failed) {
            (Some(Err(e)), _) => Err(e),
            (Some(Ok(out)), None) => Ok(out),
            (_, Some(f)) => Err(DbError::Sqlx(f.error()).into()),
            (None, None) => Err(DbError::Sqlx(sqlx::Error::WorkerCrashed).into()),
        };
        let _ = self.done.send(out);
    }
}

/// Why a group's transaction did not commit, for each of its units.
#[derive(Debug)]
pub(crate) struct Failure {
    code: Option<i32>,
    message: String,
}

impl Failure {
    fn of(e: &rusqlite::Error) -> Self {
        match e {
            rusqlite::Error::SqliteFailure(f, message) => Self {
                code: Some(f.extended_code),
                message: message.clone().unwrap_or_else(|| f.to_string()),
            },
            other => Self {
                code: None,
                message: format!("SQLite: {other}"),
            },
        }
    }

    /// The log could not be made durable (see [`Syncer::failed`]).
    fn sync_lost() -> Self {
        Self {
            code: None,
            message: "the SQLite log could not be made durable (an fsync failed, or the sync thread stopped): restart shipsync".into(),
        }
    }

    fn lost() -> Self {
        Self {
            code: None,
            message: "SQLite rolled the transaction back".into(),
        }
    }

    fn error(&self) -> sqlx::Error {
        match self.code {
            Some(code) => sqlx::Error::Database(Box::new(InlineError {
                code: Some(code),
                message: self.message.clone(),
            })),
            None => sqlx::Error::Protocol(self.message.clone()),
        }
    }
}

/// Which of the unit thread's queues a unit waits in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
    /// Groups of units committed or rolled back ([`Inline::group`]).
    groups: std::sync::atomic::AtomicU64,
    /// How long a relaxed group of job units waits for more ([`LINGER`]).
    linger: std::time::Duration,
    /// Fsyncs of the log done by the [`Syncer`].
    fsyncs: Arc<std::sync::atomic::AtomicU64>,
    /// Tests: while set, the [`Syncer`]'s fsyncs fail (the kernel's error
    /// cannot be provoked on a real file without a faulty device).
    #[cfg(test)]
    fsync_fault: Arc<std::sync::atomic::AtomicBool>,
}

impl Shared {
    /// How the [`Syncer`] fsyncs the log.
    #[cfg(not(test))]
    fn fsync(&self) -> impl FnMut(&std::fs::File) -> std::io::Result<()> + Send + 'static {
        std::fs::File::sync_data
    }

    /// How the [`Syncer`] fsyncs the log: failing while `fsync_fault` is
    /// set.
    #[cfg(test)]
    fn fsync(&self) -> impl FnMut(&std::fs::File) -> std::io::Result<()> + Send + 'static {
        let fault = Arc::clone(&self.fsync_fault);
        move |log: &std::fs::File| {
            if fault.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(std::io::Error::other("injected fsync failure"));
            }
            log.sync_data()
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queues> {
        // A unit never runs under this lock: a poisoned lock only means a
        // push or pop panicked, and the queues are still whole.
        self.queues
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The next unit to run (the first lane's before the normal one's),
    /// if `fits`; `None` when there is none or it does not fit.
    fn next_if(&self, fits: impl FnOnce(&Work) -> bool) -> Option<Work> {
        let mut q = self.lock();
        let lane = if q.first.is_empty() {
            &mut q.normal
        } else {
            &mut q.first
        };
        if lane.front().is_some_and(fits) {
            lane.pop_front()
        } else {
            None
        }
    }

    /// Returns once a unit is queued, the handle is gone, or `for_` has
    /// passed.
    fn wait_for_more(&self, for_: std::time::Duration) {
        let until = std::time::Instant::now() + for_;
        let mut q = self.lock();
        while q.open && q.first.is_empty() && q.normal.is_empty() {
            let left = until.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return;
            }
            q = self
                .ready
                .wait_timeout(q, left)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
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
        Self::start_lingering(path, LINGER)
    }

    /// [`Units::start`], a relaxed group waiting `linger` for more units.
    fn start_lingering(
        path: std::path::PathBuf,
        linger: std::time::Duration,
    ) -> Result<Self, DbError> {
        let shared = Arc::new(Shared {
            linger,
            ..Shared::default()
        });
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
                    // A unit that panics fails alone (`Inline::step`); a
                    // panic in the group's own code fails its group (the
                    // callers' answers are dropped: `WorkerCrashed`), and
                    // the thread goes on, the transaction rolled back.
                    let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        inline.group(w, &work);
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

    /// Groups of units ended so far.
    #[cfg(test)]
    fn groups(&self) -> u64 {
        self.shared
            .groups
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Fsyncs of the log done off the unit thread so far.
    pub(crate) fn fsyncs(&self) -> u64 {
        self.shared
            .fsyncs
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Units queued, not yet started.
    pub(crate) fn waiting(&self) -> usize {
        let q = self.shared.lock();
        q.first.len() + q.normal.len()
    }

    /// Runs `unit` on the unit thread, atomically (its work stands if it
    /// returns `Ok` and its group commits, and is undone otherwise; see
    /// [`Inline::group`]), queued in `lane`;
    /// `relaxed`: see [`crate::relaxed`].
    pub(crate) async fn run<U: Unit>(
        &self,
        unit: U,
        relaxed: bool,
        lane: Lane,
    ) -> Result<U::Output, U::Error> {
        let (done, answer) = tokio::sync::oneshot::channel();
        let work = Work {
            lane,
            relaxed,
            writes: U::WRITES,
            job: Box::new(Pending {
                unit: Some(unit),
                out: None,
                done,
                span: tracing::Span::current(),
                logs: tracing::dispatcher::get_default(Clone::clone),
            }),
        };
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

/// How long a group of units ([`Inline::group`]) takes in more units: a
/// unit that waits behind it waits for at most this and the one unit
/// running.
const GROUP_FOR: std::time::Duration = if cfg!(test) {
    // The tests' groups are decided by what is queued, not by the clock.
    std::time::Duration::from_secs(3600)
} else {
    std::time::Duration::from_millis(2)
};
/// The most units in one group.
const GROUP_MAX: usize = 64;

/// How long a relaxed unit of the normal lane waits for another to share
/// its commit when none is queued ([`Inline::group`]): at 50–200
/// shipments/s, where units seldom queue, more units then share a commit
/// (the WAL frames of the pages they both change, written once), for
/// ≈ 3 ms more per shipment (BENCHMARKS.md, the seventh session).
const LINGER: std::time::Duration = std::time::Duration::from_millis(1);

/// Statements kept prepared on the unit thread's connection.
const STATEMENT_CACHE: usize = 256;

/// The unit thread's SQLite connection; its statements execute in place.
pub struct Inline {
    conn: rusqlite::Connection,
    /// The `synchronous` setting in force: `true` for NORMAL.
    relaxed: bool,
    /// How durable groups are made durable ([`Durability`]).
    sync: Durability,
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

/// How the unit thread's durable groups are made durable.
enum Durability {
    /// No durable group has committed yet (the log may not exist): SQLite's
    /// own fsync (`synchronous=FULL`), and the [`Syncer`] starts after it.
    NotYet,
    /// By the [`Syncer`].
    Syncer(Syncer),
    /// The syncer could not start: SQLite's own fsync, for good.
    Sqlite,
}

/// Makes durable groups durable off the unit thread: a durable group
/// commits with `synchronous=NORMAL` (its frames written to the log, not
/// yet fsynced) and hands its units here; this thread fsyncs the log and
/// only then answers them. Units handed over while an fsync runs share the
/// next one. Meanwhile the unit thread runs the next group instead of
/// waiting for the disk.
///
/// Why it is as durable as SQLite's own fsync at commit (`FULL`): an fsync
/// of the log begun after a commit returned covers that commit's frames
/// and every frame before them (`fdatasync` covers the file's growth).
/// Frames leave the log only through a checkpoint, which, run with
/// `synchronous` other than OFF (every connection of shipsync's runs with
/// FULL or NORMAL), fsyncs the log before copying them and the database
/// file after, before the log may be reused from its start. The log file
/// is never truncated nor replaced while the database is open (no
/// `journal_size_limit`, no `wal_checkpoint(TRUNCATE)`, no VACUUM, no
/// change of journal mode); SQLite unlinks it only when its last
/// connection closes, and this thread's connection stays open. Its path is
/// SQLite's own (`sqlite3_db_filename`, symbolic links resolved). The
/// descriptor is this thread's own, closed when the unit thread ends;
/// SQLite holds no lock on the log file itself (its locks are on the
/// database file and the `-shm` index), so closing it releases none. SQLite's unix default `POWERSAFE_OVERWRITE` is assumed, as it is
/// for `synchronous=NORMAL` everywhere: a torn write of a later commit
/// does not damage the frames of an earlier one.
///
/// What differs from `FULL`: a durable group's writes are visible to
/// other units and connections before its fsync, as a relaxed unit's
/// always are. Every call to a store or to Deposco is made after a durable
/// unit (the record of the write, made before the call) has been answered,
/// and that unit's fsync covers everything committed before it.
struct Syncer {
    tx: mpsc::Sender<Vec<Box<dyn Job>>>,
    /// Set once an fsync failed, or the thread is gone: every durable
    /// group that writes fails from then on (restart shipsync). After a
    /// failed fsync the kernel may have dropped the pages it could not
    /// write and report the next fsync as a success, so no later
    /// durability can be trusted — the choice PostgreSQL makes too.
    failed: Arc<std::sync::atomic::AtomicBool>,
}

impl Syncer {
    /// Opens the log at `wal_path` and starts the thread; `None` (durable
    /// groups keep SQLite's own fsync) when either fails.
    /// `fsyncs` counts the fsyncs done; `fsync` does one.
    fn start(
        wal_path: &std::path::Path,
        fsyncs: Arc<std::sync::atomic::AtomicU64>,
        mut fsync: impl FnMut(&std::fs::File) -> std::io::Result<()> + Send + 'static,
    ) -> Option<Self> {
        let log = match std::fs::OpenOptions::new().write(true).open(wal_path) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(error = %e, path = %wal_path.display(), "the SQLite log cannot be opened for fsync: durable commits fsync inside SQLite");
                return None;
            }
        };
        let failed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (tx, rx) = mpsc::channel::<Vec<Box<dyn Job>>>();
        let flag = Arc::clone(&failed);
        let spawned = std::thread::Builder::new()
            .name("sqlite-sync".into())
            .spawn(move || {
                let mut failure: Option<Failure> = None;
                while let Ok(first) = rx.recv() {
                    let mut waiting = first;
                    while let Ok(more) = rx.try_recv() {
                        waiting.extend(more);
                    }
                    if failure.is_none() {
                        match fsync(&log) {
                            Ok(()) => {
                                fsyncs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            }
                            Err(e) => {
                                flag.store(true, std::sync::atomic::Ordering::SeqCst);
                                tracing::error!(error = %e, "fsync of the SQLite log failed: the units waiting for it fail, and so does every durable write from now on; restart shipsync");
                                failure = Some(Failure {
                                    code: None,
                                    message: format!("fsync of the SQLite log failed: {e}"),
                                });
                            }
                        }
                    }
                    // Once an fsync failed, nothing handed over later is
                    // answered as durable either.
                    for job in waiting {
                        job.answer(failure.as_ref());
                    }
                }
            });
        match spawned {
            Ok(_) => Some(Self { tx, failed }),
            Err(e) => {
                tracing::warn!(error = %e, "cannot start the SQLite sync thread: durable commits fsync inside SQLite");
                None
            }
        }
    }

    fn failed(&self) -> bool {
        self.failed.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Answers `ran` (a committed group's units) after an fsync of the log
    /// begun from now on.
    fn answer_after_fsync(&self, ran: Vec<Box<dyn Job>>) {
        if let Err(mpsc::SendError(ran)) = self.tx.send(ran) {
            // The thread is gone: nothing can make these durable now.
            self.failed.store(true, std::sync::atomic::Ordering::SeqCst);
            let failed = Failure::sync_lost();
            for job in ran {
                job.answer(Some(&failed));
            }
        }
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
    /// connections ([`crate::Db::connect`]), and the journals of a group's
    /// savepoints ([`Inline::group`]) in memory, not in temporary files.
    fn open(path: &std::path::Path) -> Result<Self, DbError> {
        let conn = rusqlite::Connection::open(path).map_err(error)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        conn.execute_batch(&format!(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;
             PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}; PRAGMA foreign_keys=ON;
             PRAGMA temp_store=MEMORY;"
        ))
        .map_err(error)?;
        conn.busy_handler(Some(busy)).map_err(error)?;
        // The query planner's stability guarantee: a prepared statement's
        // plan does not depend on the values bound to it. Without it SQLite
        // marks a statement whose `LIMIT` (or `LIKE` pattern) is a
        // parameter as depending on that value, and each new binding
        // expires it: the statement cache then compiled the job claim and
        // the connections' listing again at every run (≈ 0.1 ms each;
        // BENCHMARKS.md, the twelfth session). What the guarantee turns off
        // changes no plan of a unit today: a `LIMIT`'s value (the units'
        // statements with one have a single index to use), the `LIKE`
        // prefix (no unit's `LIKE` is on an indexed column), a partial
        // index matched by a bound value (the only partial index is read
        // through sqlx's pool) and statistics (no `ANALYZE`). A partial
        // index that a unit should use needs its condition written as
        // literals.
        conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
            true,
        )
        .map_err(error)?;
        Ok(Self {
            conn,
            relaxed: false,
            sync: Durability::NotYet,
            shapes: std::collections::HashMap::new(),
        })
    }

    /// Runs `first`, and the units queued behind it that fit, as one
    /// transaction (group commit): each unit in a savepoint of its own, so
    /// that one that fails is undone alone; every unit's caller is answered
    /// once the transaction has ended, so that no answer says more than is
    /// committed. A unit joins while the group has run for less than
    /// [`GROUP_FOR`] (and holds fewer than [`GROUP_MAX`]) if it is of the
    /// same lane — a webhook batch waiting for its 202 never waits for job
    /// units behind it, and job units behind a webhook batch leave the
    /// group at once —, needs no stronger durability than the group's (a
    /// durable unit never joins a relaxed group: `synchronous` is set per
    /// transaction), and the group took the write lock (see
    /// [`Unit::WRITES`]): a group begun by a unit that only reads takes in
    /// no other, whose reads could come from a snapshot older than a write
    /// committed meanwhile through sqlx's pool (a write group's snapshot is
    /// the latest: nobody else commits while it holds the lock). A relaxed
    /// unit of the normal lane with nothing queued behind it first waits
    /// up to [`LINGER`] for another, before the transaction begins.
    ///
    /// Why: each commit writes every page it changed to the WAL, and the
    /// units of different shipments change many of the same pages (the
    /// last leaf of each table and index keyed by a ULID, the jobs table):
    /// one commit for a group writes them once (BENCHMARKS.md, the sixth
    /// session).
    fn group(&mut self, first: Work, queue: &Shared) {
        let (lane, relaxed, writes) = (first.lane, first.relaxed, first.writes);
        if relaxed && writes && lane == Lane::Normal {
            // A relaxed unit of the jobs waits a little for another to share
            // its commit (its caller waits for nothing outside): before its
            // transaction, so that nobody waits for the write lock meanwhile.
            // Webhook batches and durable units never wait, and any unit
            // queued ends the wait.
            queue.wait_for_more(queue.linger);
        }
        let durable_write = !relaxed && writes;
        if durable_write && matches!(&self.sync, Durability::Syncer(s) if s.failed()) {
            first.job.answer(Some(&Failure::sync_lost()));
            return;
        }
        // A durable group that writes commits without SQLite's fsync when
        // the syncer runs: its callers are answered after the syncer's
        // fsync of the log, while this thread goes on with the next group.
        // (Handing over only when units were queued behind it was measured:
        // at 1,000 shipments/s the queue is often empty at that moment, and
        // the backlog came back; BENCHMARKS.md, the ninth session.)
        let deferred = durable_write && matches!(self.sync, Durability::Syncer(_));
        // A group that only reads keeps the setting in force: it commits
        // nothing.
        let nosync = if writes {
            relaxed || deferred
        } else {
            self.relaxed
        };
        if let Err(e) = self.begin(nosync, writes) {
            first.job.answer(Some(&Failure::of(&e)));
            return;
        }
        let started = std::time::Instant::now();
        let mut ran: Vec<Box<dyn Job>> = Vec::new();
        let mut next = Some(first.job);
        let mut failed = None;
        while let Some(mut job) = next.take() {
            if let Err(e) = self.step(&mut job) {
                // The transaction is gone (SQLite rolled it back, or a
                // savepoint could not end): none of the group's work stands.
                failed = Some(e);
                ran.push(job);
                break;
            }
            ran.push(job);
            if ran.len() < GROUP_MAX && started.elapsed() < GROUP_FOR {
                next = queue
                    .next_if(|w| w.lane == lane && writes && (!relaxed || w.relaxed))
                    .map(|w| w.job);
            }
        }
        let failed = match failed {
            Some(f) => Some(f),
            None => self.control("COMMIT").err().map(|e| Failure::of(&e)),
        };
        if failed.is_some() && !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        queue
            .groups
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if failed.is_none() && durable_write {
            match &self.sync {
                Durability::Syncer(syncer) if deferred => {
                    syncer.answer_after_fsync(ran);
                    return;
                }
                Durability::NotYet => {
                    // The log exists now that a write committed.
                    let wal = self.wal_path();
                    if wal.is_none() {
                        tracing::warn!(
                            "SQLite names no file for the database: durable commits fsync inside SQLite"
                        );
                    }
                    self.sync = match wal.and_then(|wal| {
                        Syncer::start(&wal, Arc::clone(&queue.fsyncs), queue.fsync())
                    }) {
                        Some(syncer) => Durability::Syncer(syncer),
                        None => Durability::Sqlite,
                    };
                }
                _ => {}
            }
        }
        for job in ran {
            job.answer(failed.as_ref());
        }
    }

    /// The write-ahead log's path: SQLite's path of the database file
    /// (symbolic links resolved) with `-wal`.
    fn wal_path(&self) -> Option<std::path::PathBuf> {
        let db = self.conn.path().filter(|p| !p.is_empty())?;
        Some(std::path::PathBuf::from(format!("{db}-wal")))
    }

    /// Begins a group's transaction (see [`Unit::WRITES`]) with
    /// `synchronous` as `relaxed` says.
    fn begin(&mut self, relaxed: bool, writes: bool) -> Result<(), rusqlite::Error> {
        if relaxed != self.relaxed {
            let sync = if relaxed {
                "PRAGMA synchronous=NORMAL"
            } else {
                "PRAGMA synchronous=FULL"
            };
            self.control(sync)?;
            self.relaxed = relaxed;
        }
        self.control(if writes { "BEGIN IMMEDIATE" } else { "BEGIN" })
    }

    /// Runs one unit of a group in a savepoint: released if the unit
    /// succeeded, rolled back to if it failed or panicked (a unit that
    /// panics fails alone: its caller gets `WorkerCrashed`).
    /// An error here means the group's transaction is lost.
    fn step(&mut self, job: &mut Box<dyn Job>) -> Result<(), Failure> {
        self.control("SAVEPOINT unit")
            .map_err(|e| Failure::of(&e))?;
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job.run(self)));
        if self.conn.is_autocommit() {
            return Err(Failure::lost());
        }
        if ran.is_err() || !job.succeeded() {
            self.control("ROLLBACK TO unit")
                .map_err(|e| Failure::of(&e))?;
        }
        self.control("RELEASE unit").map_err(|e| Failure::of(&e))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The test's units.
    enum Step {
        /// Runs a statement: the rows it changed.
        Sql(&'static str),
        /// Inserts 0, then holds the unit thread until released (a test's
        /// stand-in for a long unit: units queue behind it).
        Hold {
            started: mpsc::Sender<()>,
            release: mpsc::Receiver<()>,
        },
        /// Inserts 9, then panics.
        Panics,
    }

    impl Unit for Step {
        type Output = u64;
        type Error = DbError;

        async fn run<C: Conn>(self, c: &mut C) -> Result<u64, DbError> {
            let sql: &'static str = match &self {
                Step::Sql(sql) => sql,
                Step::Hold { .. } => "INSERT INTO t VALUES (0)",
                Step::Panics => "INSERT INTO t VALUES (9)",
            };
            let changed = sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(c.ex())
                .await?
                .rows_affected();
            match self {
                Step::Sql(_) => Ok(changed),
                Step::Hold { started, release } => {
                    let _ = started.send(());
                    let _ = release.recv();
                    Ok(changed)
                }
                Step::Panics => panic!("a unit that panics"),
            }
        }
    }

    /// A [`Step`] that only reads (no write lock: `BEGIN`).
    struct Reads(Step);

    impl Unit for Reads {
        type Output = u64;
        type Error = DbError;
        const WRITES: bool = false;

        async fn run<C: Conn>(self, c: &mut C) -> Result<u64, DbError> {
            self.0.run(c).await
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_read_groups_nothing_and_a_durable_group_takes_relaxed_units() {
        let (units, path) = with_table(LINGER).await;
        let (started_tx, started) = mpsc::channel();
        let (release, held) = mpsc::channel();
        // The held unit is one that begins without the write lock (its
        // insert takes it when it runs).
        let hold = tokio::spawn({
            let units = Arc::clone(&units);
            async move {
                let hold = Reads(Step::Hold {
                    started: started_tx,
                    release: held,
                });
                units.run(hold, true, Lane::Normal).await
            }
        });
        tokio::task::spawn_blocking(move || started.recv())
            .await
            .unwrap()
            .unwrap();
        let before = units.groups();
        let mut answers = Vec::new();
        let queue: [(bool, Step, bool); 4] = [
            // Two reads behind a read: a group each (a read group takes in
            // nothing).
            (false, Step::Sql("SELECT 1"), true),
            (false, Step::Sql("SELECT 2"), true),
            // A durable write, and a relaxed one behind it that joins it.
            (true, Step::Sql("INSERT INTO t VALUES (1)"), false),
            (true, Step::Sql("INSERT INTO t VALUES (2)"), true),
        ];
        for (n, (writes, step, relaxed)) in queue.into_iter().enumerate() {
            let units2 = Arc::clone(&units);
            answers.push(tokio::spawn(async move {
                if writes {
                    units2.run(step, relaxed, Lane::Normal).await
                } else {
                    units2.run(Reads(step), relaxed, Lane::Normal).await
                }
                .map_err(|e| e.to_string())
            }));
            while units.waiting() < n + 1 {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
        }
        release.send(()).unwrap();
        assert!(hold.await.unwrap().is_ok());
        for a in answers {
            assert!(a.await.unwrap().is_ok());
        }
        assert_eq!(
            units.groups() - before,
            4,
            "the held read's, each other read's, and the two writes' together"
        );
        drop(units);
        let _ = std::fs::remove_file(&path);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn durable_groups_are_answered_after_an_fsync_of_the_log_off_the_unit_thread() {
        // `with_table`'s CREATE was the first durable commit: SQLite's own
        // fsync, after which the syncer starts.
        let (units, path) = with_table(LINGER).await;
        let run = runner(&units);
        assert_eq!(units.fsyncs(), 0);
        assert_eq!(
            run(Step::Sql("INSERT INTO t VALUES (1)"), false)
                .await
                .unwrap(),
            Ok(1)
        );
        assert_eq!(units.fsyncs(), 1, "answered after an fsync of the log");
        // A relaxed unit is answered at its commit, with no fsync.
        assert_eq!(
            run(Step::Sql("INSERT INTO t VALUES (4)"), true)
                .await
                .unwrap(),
            Ok(1)
        );
        assert_eq!(units.fsyncs(), 1);
        // Two durable units queued behind a held one: the second joins the
        // first's group, and both are answered after one fsync.
        let (hold, release) = held(&run).await;
        let mut answers = Vec::new();
        for (n, sql) in ["INSERT INTO t VALUES (2)", "INSERT INTO t VALUES (3)"]
            .into_iter()
            .enumerate()
        {
            answers.push(run(Step::Sql(sql), false));
            while units.waiting() < n + 1 {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
        }
        release.send(()).unwrap();
        assert_eq!(hold.await.unwrap(), Ok(1));
        for a in answers {
            assert_eq!(a.await.unwrap(), Ok(1));
        }
        assert_eq!(units.fsyncs(), 2, "one fsync of the log for the group");
        // What they wrote stands, seen from a connection of its own.
        let other = rusqlite::Connection::open(&path).unwrap();
        let n: i64 = other
            .query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 5, "the held unit's 0, and 1, 2, 3, 4");
        drop(other);
        drop(units);
        let _ = std::fs::remove_file(&path);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn after_a_failed_fsync_no_durable_write_is_answered_as_done_until_a_restart() {
        use std::sync::atomic::Ordering::SeqCst;
        let (units, path) = with_table(LINGER).await;
        let run = runner(&units);
        assert_eq!(
            run(Step::Sql("INSERT INTO t VALUES (1)"), false)
                .await
                .unwrap(),
            Ok(1)
        );
        assert_eq!(units.fsyncs(), 1);
        // The fsync its answer waits for fails: the unit fails.
        units.shared.fsync_fault.store(true, SeqCst);
        let failed = run(Step::Sql("INSERT INTO t VALUES (2)"), false)
            .await
            .unwrap();
        assert!(
            failed
                .as_ref()
                .is_err_and(|e| e.contains("fsync of the SQLite log failed")),
            "{failed:?}"
        );
        // The disk "works" again, but the kernel may have dropped the pages
        // the failed fsync could not write: no durable write is answered as
        // done from now on, and none is fsynced.
        units.shared.fsync_fault.store(false, SeqCst);
        for sql in ["INSERT INTO t VALUES (3)", "INSERT INTO t VALUES (4)"] {
            let later = run(Step::Sql(sql), false).await.unwrap();
            assert!(
                later
                    .as_ref()
                    .is_err_and(|e| e.contains("could not be made durable")),
                "{later:?}"
            );
        }
        assert_eq!(units.fsyncs(), 1, "no fsync after the failed one");
        // Relaxed units (which never wait for an fsync) go on.
        for sql in ["INSERT INTO t VALUES (5)", "UPDATE t SET k = k WHERE k = 1"] {
            assert_eq!(run(Step::Sql(sql), true).await.unwrap(), Ok(1), "{sql}");
        }
        drop(run);
        drop(units);
        // A restart (a new unit thread on the same file) writes durably
        // again.
        let units = Arc::new(Units::start_lingering(path.clone(), LINGER).unwrap());
        let run = runner(&units);
        for sql in ["INSERT INTO t VALUES (6)", "INSERT INTO t VALUES (7)"] {
            assert_eq!(run(Step::Sql(sql), false).await.unwrap(), Ok(1), "{sql}");
        }
        assert_eq!(
            units.fsyncs(),
            1,
            "the first durable commit fsyncs inside SQLite, the second by the new thread's syncer"
        );
        drop(run);
        drop(units);
        let _ = std::fs::remove_file(&path);
    }

    /// A unit thread on a new database file holding table `t`, a relaxed
    /// unit waiting `linger` for more: the thread, and the file.
    async fn with_table(linger: std::time::Duration) -> (Arc<Units>, std::path::PathBuf) {
        let path = std::env::temp_dir().join(format!("{}.db", crate::new_id("units")));
        let units = Arc::new(Units::start_lingering(path.clone(), linger).unwrap());
        units
            .run(
                Step::Sql("CREATE TABLE t (k INTEGER PRIMARY KEY)"),
                false,
                Lane::Normal,
            )
            .await
            .unwrap();
        (units, path)
    }

    type Answer = tokio::task::JoinHandle<Result<u64, String>>;

    /// Runs a step on `units`' normal lane, relaxed or not, in a task of
    /// its own: its answer.
    fn runner(units: &Arc<Units>) -> impl Fn(Step, bool) -> Answer + use<> {
        let units = Arc::clone(units);
        move |step: Step, relaxed: bool| {
            let units = Arc::clone(&units);
            tokio::spawn(async move {
                units
                    .run(step, relaxed, Lane::Normal)
                    .await
                    .map_err(|e| e.to_string())
            })
        }
    }

    /// Runs a relaxed [`Step::Hold`] and waits until it holds the unit
    /// thread: its answer, and what releases it.
    async fn held(run: &impl Fn(Step, bool) -> Answer) -> (Answer, mpsc::Sender<()>) {
        let (started_tx, started) = mpsc::channel();
        let (release, held) = mpsc::channel();
        let answer = run(
            Step::Hold {
                started: started_tx,
                release: held,
            },
            true,
        );
        tokio::task::spawn_blocking(move || started.recv())
            .await
            .unwrap()
            .unwrap();
        (answer, release)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_relaxed_group_waits_for_units_and_stops_for_a_durable_one() {
        let (units, path) = with_table(std::time::Duration::from_secs(600)).await;
        let run = runner(&units);
        let before = units.groups();
        // A relaxed unit with nothing queued waits (600 s here) for another
        // before it begins: nobody is answered meanwhile. A relaxed unit
        // queued then shares its commit; a durable one ends the wait too,
        // and commits alone.
        let cases = [
            (
                "INSERT INTO t VALUES (1)",
                "INSERT INTO t VALUES (2)",
                true,
                1,
            ),
            (
                "INSERT INTO t VALUES (3)",
                "INSERT INTO t VALUES (4)",
                false,
                3,
            ),
        ];
        for (waiting, next, relaxed, groups) in cases {
            let first = run(Step::Sql(waiting), true);
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            assert!(!first.is_finished(), "{waiting}");
            let second = run(Step::Sql(next), relaxed);
            let answers = tokio::time::timeout(std::time::Duration::from_secs(60), async {
                (first.await.unwrap(), second.await.unwrap())
            })
            .await
            .expect("a unit queued ended the wait");
            assert_eq!(answers, (Ok(1), Ok(1)), "{next}");
            assert_eq!(units.groups() - before, groups, "after {next}");
        }
        drop(units);
        let _ = std::fs::remove_file(&path);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn units_queued_together_commit_together_and_fail_alone() {
        let (units, path) = with_table(LINGER).await;
        let run = runner(&units);

        let (hold, release) = held(&run).await;
        let before = units.groups();

        // Queued behind the held (relaxed) unit, in this order (each once
        // the one before is queued): four relaxed units join its group —
        // one fails, one panics —; the durable one does not fit (the group
        // is not fsynced) and starts the next group.
        let queue = [
            (Step::Sql("INSERT INTO t VALUES (1)"), true),
            (Step::Sql("INSERT INTO t VALUES (1)"), true),
            (Step::Panics, true),
            (Step::Sql("INSERT INTO t VALUES (2)"), true),
            (Step::Sql("INSERT INTO t VALUES (3)"), false),
        ];
        let mut answers = Vec::new();
        for (n, (step, relaxed)) in queue.into_iter().enumerate() {
            answers.push(run(step, relaxed));
            while units.waiting() < n + 1 {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
        }
        release.send(()).unwrap();
        assert_eq!(hold.await.unwrap(), Ok(1));
        let mut got = Vec::new();
        for a in answers {
            got.push(a.await.unwrap().map_err(|e| e.contains("UNIQUE")));
        }
        assert_eq!(got, [Ok(1), Err(true), Err(false), Ok(1), Ok(1)]);
        assert_eq!(
            units.groups() - before,
            2,
            "the held unit's group and the durable one's"
        );

        let kept = run(Step::Sql("DELETE FROM t WHERE k IN (0, 1, 2, 3)"), false);
        assert_eq!(kept.await.unwrap(), Ok(4), "every unit's write that stands");
        let rest = run(Step::Sql("DELETE FROM t"), false);
        assert_eq!(
            rest.await.unwrap(),
            Ok(0),
            "the failed and the panicking units' writes undone"
        );
        drop(units);
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn a_statement_bound_to_new_values_is_not_compiled_again() {
        // The job claim's shape: a range and a `LIMIT` bound as parameters.
        // Without the planner's stability guarantee each new binding of the
        // `LIMIT` expired the prepared statement, and SQLite compiled it
        // again at its next step.
        let path = std::env::temp_dir().join(format!("{}.db", crate::new_id("units")));
        let mut inline = Inline::open(&path).unwrap();
        inline
            .conn
            .execute_batch("CREATE TABLE t (k INTEGER PRIMARY KEY)")
            .unwrap();
        let sql = "SELECT k FROM t WHERE k > $1 ORDER BY k LIMIT $2";
        for n in 1..=4_i64 {
            inline.run(sqlx::query(sql).bind(n).bind(n), None).unwrap();
        }
        let compiled_again = inline
            .conn
            .prepare_cached(sql)
            .unwrap()
            .get_status(rusqlite::StatementStatus::RePrepare);
        assert_eq!(compiled_again, 0);
        drop(inline);
        let _ = std::fs::remove_file(&path);
    }

    /// A unit with a part in a savepoint of its own ([`nested`]): 1
    /// before it, `inner` in it (kept when `keep` and it succeeded), 3
    /// after it.
    struct WithNested {
        inner: &'static str,
        keep: bool,
    }

    impl Unit for WithNested {
        type Output = ();
        type Error = DbError;

        async fn run<C: Conn>(self, c: &mut C) -> Result<(), DbError> {
            sqlx::query("INSERT INTO t VALUES (1)")
                .execute(c.ex())
                .await?;
            nested(c).await?;
            let ran = sqlx::query(sqlx::AssertSqlSafe(self.inner))
                .execute(c.ex())
                .await;
            end_nested(c, self.keep && ran.is_ok()).await?;
            sqlx::query("INSERT INTO t VALUES (3)")
                .execute(c.ex())
                .await?;
            Ok(())
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_nested_part_of_a_unit_is_kept_or_undone_alone() {
        let (units, path) = with_table(LINGER).await;
        let table: [(&'static str, bool, &[i64]); 3] = [
            ("INSERT INTO t VALUES (2)", true, &[1, 2, 3]),
            ("INSERT INTO t VALUES (2)", false, &[1, 3]),
            // A part that fails is undone alone; the unit goes on.
            ("INSERT INTO missing VALUES (2)", true, &[1, 3]),
        ];
        for (inner, keep, want) in table {
            units
                .run(Step::Sql("DELETE FROM t"), false, Lane::Normal)
                .await
                .unwrap();
            units
                .run(WithNested { inner, keep }, false, Lane::Normal)
                .await
                .unwrap_or_else(|e| panic!("{inner}: {e}"));
            let other = rusqlite::Connection::open(&path).unwrap();
            let rows: Vec<i64> = other
                .prepare("SELECT k FROM t ORDER BY k")
                .unwrap()
                .query_map([], |r| r.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            assert_eq!(rows, want, "{inner} keep={keep}");
        }
        drop(units);
        let _ = std::fs::remove_file(&path);
    }
}
