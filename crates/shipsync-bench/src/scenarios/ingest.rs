//! Scenario `ingest`: durable Deposco webhook ingest against a bare handler
//! and a naive one-transaction-per-request handler, side by side in one run.
//!
//! Acceptance (docs/quality.md): shipsync's requests/s ≥ 0.5× the bare
//! handler's with 4 KiB bodies on SQLite (factor over the naive handler and
//! the disk's fsync p50/p99 beside it); p99 ≤ 10 ms at 2,000 webhooks/s.
//!
//! For each backend (SQLite; PostgreSQL when `SHIPSYNC_TEST_POSTGRES_URL` is
//! set, on throwaway databases) and each handler in turn — bare, naive,
//! shipsync (`shipsync serve`, a merchant with a shared secret, no
//! connection) — the load generator (this process) sends signed 4 KiB
//! deliveries, each a distinct shipment, closed-loop at each concurrency
//! level, then open-loop at the fixed rate (bare and shipsync). Processing
//! runs in shipsync as in production; it may lag behind a burst (its
//! workers step aside while deliveries arrive fast): after each shipsync
//! level the bench reads the processing backlog (`process_event` jobs
//! queued) and waits until it has drained, timing it, so each level starts
//! with none. Then, for
//! shipsync only: an overload burst far above what it can take (503 +
//! `Retry-After` expected, memory bounded), and the durability check:
//! SIGKILL, then the events table must hold at least one accepted event per
//! 202 answered.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::Serialize;
use shipsync_testkit::{POSTGRES_ENV, TempDir, TestDb, postgres_server};

use crate::baseline::{self, Mode};
use crate::fsync::{self, FsyncProbe};
use crate::load::{self, Factory, Outcome};
use crate::process::Instance;
use crate::table::{Table, num, verdict_at_most};
use crate::webhooks::{self, Template};
use crate::{init_tls, kib_to_mb, rss};

/// Target: shipsync req/s ≥ 0.5 × bare req/s (SQLite).
pub const TARGET_VS_BARE: f64 = 0.5;
/// Target: p99 ≤ 10 ms at 2,000 webhooks/s.
pub const TARGET_P99_MS: f64 = 10.0;
pub const TARGET_RATE: f64 = 2000.0;

#[derive(Debug, Clone)]
pub struct Options {
    pub shipsync: PathBuf,
    /// Runs the bare and naive handlers as `<exe> baseline …` child
    /// processes; `None`: each on its own runtime thread in this process.
    pub baseline_exe: Option<PathBuf>,
    pub concurrency: Vec<usize>,
    pub warmup: Duration,
    pub window: Duration,
    /// The open-loop rate (webhooks/s) and its measured window.
    pub open_rate: f64,
    pub open_window: Duration,
    /// The overload burst (requests/s offered, for how long); `None` skips it.
    pub overload: Option<(f64, Duration)>,
    pub max_in_flight: u64,
    pub fsync_samples: usize,
    /// PostgreSQL server URL (throwaway databases are created on it).
    pub postgres: Option<String>,
    pub verbose: bool,
}

impl Options {
    pub fn full(shipsync: PathBuf) -> Self {
        Self {
            shipsync,
            baseline_exe: None,
            concurrency: vec![1, 8, 32, 128],
            warmup: Duration::from_secs(1),
            window: Duration::from_secs(5),
            open_rate: TARGET_RATE,
            open_window: Duration::from_secs(10),
            overload: Some((20_000.0, Duration::from_millis(1500))),
            max_in_flight: 12_000,
            fsync_samples: 2000,
            postgres: postgres_server(),
            verbose: true,
        }
    }

    /// Seconds: one level, a short open-loop run, no overload burst.
    pub fn quick(shipsync: PathBuf) -> Self {
        Self {
            concurrency: vec![8],
            warmup: Duration::from_millis(200),
            window: Duration::from_millis(500),
            open_rate: 200.0,
            open_window: Duration::from_millis(500),
            overload: None,
            fsync_samples: 50,
            verbose: false,
            ..Self::full(shipsync)
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Level {
    pub handler: String,
    pub concurrency: usize,
    pub outcome: Outcome,
    /// The handler process's CPU (utime + stime, `/proc`) over the level,
    /// warm-up included, ÷ the 202 answers it gave meanwhile, µs; `None`
    /// when it could not be read.
    pub cpu_us_per_answer: Option<f64>,
    /// shipsync only: the processing backlog the level left.
    pub drain: Option<Drain>,
}

/// The processing backlog a level left, and how long it took to drain.
#[derive(Debug, Clone, Serialize)]
pub struct Drain {
    /// Deliveries stored but not processed yet (`process_event` jobs) when
    /// the level's load stopped.
    pub backlog: i64,
    /// Seconds from then until none was left (polled every
    /// [`DRAIN_POLL`]); `None`: not within [`DRAIN_LIMIT`].
    pub secs: Option<f64>,
    /// shipsync's CPU while it drained ÷ the backlog, µs: what processing
    /// one delivery costs (parse, merge; no store is connected).
    pub cpu_us_per_delivery: Option<f64>,
}

/// How often the backlog is read while it drains.
const DRAIN_POLL: Duration = Duration::from_millis(100);
/// The longest wait for a backlog to drain.
const DRAIN_LIMIT: Duration = Duration::from_secs(600);

/// Reads the processing backlog of a running shipsync from its database
/// (a connection of the bench's own).
struct Backlog {
    db: shipsync_db::Db,
}

impl Backlog {
    async fn count(&self) -> Result<i64> {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM jobs WHERE kind = 'process_event'")
            .fetch_one(self.db.pool())
            .await?;
        Ok(n)
    }

    /// The backlog now, then waits until it is empty; `pid`: shipsync's,
    /// whose CPU meanwhile is divided by the backlog.
    async fn drain(&self, pid: Option<u32>) -> Result<Drain> {
        let cpu_before = pid.and_then(rss::cpu_secs);
        let start = std::time::Instant::now();
        let backlog = self.count().await?;
        let mut left = backlog;
        while left > 0 && start.elapsed() < DRAIN_LIMIT {
            tokio::time::sleep(DRAIN_POLL).await;
            left = self.count().await?;
        }
        Ok(Drain {
            backlog,
            secs: (left == 0).then(|| start.elapsed().as_secs_f64()),
            cpu_us_per_delivery: cpu_us_per(
                cpu_before,
                pid.and_then(rss::cpu_secs),
                u64::try_from(backlog).unwrap_or(0),
            ),
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Overload {
    pub offered_per_sec: f64,
    pub secs: f64,
    pub outcome: Outcome,
    pub rss_before_kib: u64,
    pub rss_peak_kib: u64,
    pub rss_after_kib: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Durability {
    /// 202 answers shipsync gave during the whole run.
    pub accepted_answers: u64,
    /// `events` rows with outcome `accepted` after SIGKILL.
    pub accepted_events: i64,
    pub naive_answers: u64,
    pub naive_rows: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct BackendReport {
    pub backend: String,
    pub closed: Vec<Level>,
    pub open: Vec<Level>,
    pub overload: Option<Overload>,
    pub durability: Durability,
    /// Best req/s over the levels, per handler.
    pub peak_bare: f64,
    pub peak_naive: f64,
    pub peak_shipsync: f64,
    pub shipsync_idle_rss_kib: u64,
}

impl BackendReport {
    pub fn vs_bare(&self) -> Option<f64> {
        (self.peak_bare > 0.0).then(|| self.peak_shipsync / self.peak_bare)
    }
    pub fn vs_naive(&self) -> Option<f64> {
        (self.peak_naive > 0.0).then(|| self.peak_shipsync / self.peak_naive)
    }
    pub fn open_for(&self, handler: &str) -> Option<&Outcome> {
        self.open
            .iter()
            .find(|l| l.handler == handler)
            .map(|l| &l.outcome)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub body_bytes: usize,
    pub shipsync_binary: String,
    pub baselines_in: &'static str,
    pub fsync: FsyncProbe,
    pub backends: Vec<BackendReport>,
    pub postgres_skipped: Option<String>,
    pub verdicts: Vec<(String, String)>,
}

impl Report {
    pub fn check_complete(&self) -> Result<()> {
        if self.fsync.samples == 0 {
            bail!("no fsync samples");
        }
        for b in &self.backends {
            for l in b.closed.iter().chain(&b.open) {
                if let Some(Drain {
                    secs: None,
                    backlog,
                    ..
                }) = &l.drain
                {
                    bail!(
                        "{} {} at {}: a backlog of {backlog} was not processed within {} s",
                        b.backend,
                        l.handler,
                        l.concurrency,
                        DRAIN_LIMIT.as_secs()
                    );
                }
            }
            for l in &b.closed {
                if l.outcome.ok == 0 {
                    bail!(
                        "{} {} at {}: no request answered 2xx ({:?})",
                        b.backend,
                        l.handler,
                        l.concurrency,
                        l.outcome
                    );
                }
            }
            let d = &b.durability;
            if d.accepted_events < d.accepted_answers as i64 {
                bail!(
                    "{}: {} deliveries answered 202 but only {} stored",
                    b.backend,
                    d.accepted_answers,
                    d.accepted_events
                );
            }
            if d.naive_rows < d.naive_answers as i64 {
                bail!(
                    "{}: naive handler answered {} but stored {}",
                    b.backend,
                    d.naive_answers,
                    d.naive_rows
                );
            }
        }
        Ok(())
    }

    pub fn table(&self) -> String {
        let mut out = format!(
            "ingest: signed {}-byte Deposco webhooks, each a distinct shipment; bare and naive handlers {}; load generator in the bench process on the same cores\n\n",
            self.body_bytes, self.baselines_in
        );
        let f = &self.fsync;
        out.push_str(&format!(
            "fsync reference ({}): write 4 KiB + fdatasync p50 {:.2} ms, p99 {:.2} ms over {} samples = {:.0} fsyncs/s for one writer\n\n",
            f.dir,
            f.latency.p50_ms(),
            f.latency.p99_ms(),
            f.samples,
            f.per_sec
        ));
        if let Some(s) = &self.postgres_skipped {
            out.push_str(&format!("PostgreSQL: {s}\n\n"));
        }
        let mut t = Table::new([
            "backend",
            "handler",
            "load",
            "req/s",
            "p50 (ms)",
            "p99 (ms)",
            "max (ms)",
            "non-2xx",
            "errors",
            "÷ bare",
            "CPU µs per 202",
            "backlog after",
            "drained in (s)",
            "processing CPU µs per delivery",
        ]);
        for b in &self.backends {
            for l in &b.closed {
                let bare = b
                    .closed
                    .iter()
                    .find(|x| x.handler == "bare" && x.concurrency == l.concurrency)
                    .map(|x| x.outcome.ok_per_sec);
                t.row(row(&b.backend, l, &format!("c={}", l.concurrency), bare));
            }
            for l in &b.open {
                t.row(row(
                    &b.backend,
                    l,
                    &format!("{:.0}/s open", l.concurrency),
                    None,
                ));
            }
        }
        out.push_str(&t.render());
        out.push('\n');
        let mut v = Table::new(["figure", "value", "target", "verdict"]);
        for b in &self.backends {
            v.row([
                format!("{}: peak req/s shipsync ÷ bare", b.backend),
                format!(
                    "{} ({:.0} ÷ {:.0})",
                    num(b.vs_bare(), 3),
                    b.peak_shipsync,
                    b.peak_bare
                ),
                format!("≥ {TARGET_VS_BARE}"),
                match b.vs_bare() {
                    Some(r) if r >= TARGET_VS_BARE => format!("met ({r:.2}× ≥ {TARGET_VS_BARE}×)"),
                    Some(r) => format!(
                        "MISSED by {:.0} % ({r:.2}× < {TARGET_VS_BARE}×)",
                        (1.0 - r / TARGET_VS_BARE) * 100.0
                    ),
                    None => "not measured".into(),
                },
            ]);
            v.row([
                format!("{}: peak req/s shipsync ÷ naive", b.backend),
                format!(
                    "{} ({:.0} ÷ {:.0})",
                    num(b.vs_naive(), 2),
                    b.peak_shipsync,
                    b.peak_naive
                ),
                "—".into(),
                "factor over one transaction per request".into(),
            ]);
            if b.backend == "sqlite" {
                v.row([
                    "sqlite: shipsync peak req/s ÷ fsync rate".to_string(),
                    format!("{:.1}", b.peak_shipsync / self.fsync.per_sec.max(1e-9)),
                    "> 1".into(),
                    if b.peak_shipsync > self.fsync.per_sec {
                        "group commit beats one fsync per webhook".into()
                    } else {
                        "NOT beating one fsync per webhook".into()
                    },
                ]);
            }
            if let Some(o) = b.open_for("shipsync") {
                let rate = b
                    .open
                    .iter()
                    .find(|l| l.handler == "shipsync")
                    .map_or(0, |l| l.concurrency);
                v.row([
                    format!("{}: shipsync p99 at {rate}/s (open loop)", b.backend),
                    format!("{:.2} ms", o.latency.p99_ms()),
                    format!("≤ {TARGET_P99_MS} ms"),
                    if o.ok == 0 {
                        format!(
                            "MISSED: no 2xx at all ({} non-2xx, {} errors, {} not sent)",
                            o.not_ok, o.errors, o.not_sent
                        )
                    } else if o.not_ok + o.errors + o.not_sent > 0 {
                        format!(
                            "{} ({} non-2xx, {} errors, {} not sent)",
                            verdict_at_most(Some(o.latency.p99_ms()), TARGET_P99_MS, " ms"),
                            o.not_ok,
                            o.errors,
                            o.not_sent
                        )
                    } else {
                        verdict_at_most(Some(o.latency.p99_ms()), TARGET_P99_MS, " ms")
                    },
                ]);
            }
            if let Some(o) = &b.overload {
                v.row([
                    format!(
                        "{}: overload {:.0}/s offered for {:.1} s",
                        b.backend, o.offered_per_sec, o.secs
                    ),
                    format!(
                        "{} × 202, {} × 503 + Retry-After, {} × 503 without, {} errors, {} not sent",
                        o.outcome.accepted_total,
                        o.outcome.unavailable_with_retry_after,
                        o.outcome.unavailable_without_retry_after,
                        o.outcome.errors,
                        o.outcome.not_sent
                    ),
                    "503 + Retry-After".into(),
                    format!(
                        "RSS {:.1} → peak {:.1} → {:.1} MB after",
                        kib_to_mb(o.rss_before_kib),
                        kib_to_mb(o.rss_peak_kib),
                        kib_to_mb(o.rss_after_kib)
                    ),
                ]);
            }
            let d = &b.durability;
            v.row([
                format!(
                    "{}: 202 answers vs accepted events after SIGKILL",
                    b.backend
                ),
                format!("{} vs {}", d.accepted_answers, d.accepted_events),
                "events ≥ answers".into(),
                if d.accepted_events >= d.accepted_answers as i64 {
                    "ok: every 202 was stored".into()
                } else {
                    "FAILED: a 202 was lost".into()
                },
            ]);
        }
        out.push_str(&v.render());
        out
    }
}

fn row(backend: &str, l: &Level, load: &str, bare: Option<f64>) -> Vec<String> {
    let o = &l.outcome;
    vec![
        backend.to_owned(),
        l.handler.clone(),
        load.to_owned(),
        format!("{:.0}", o.ok_per_sec),
        format!("{:.2}", o.latency.p50_ms()),
        format!("{:.2}", o.latency.p99_ms()),
        format!("{:.1}", o.latency.max_ms()),
        (o.not_ok + o.not_sent).to_string(),
        o.errors.to_string(),
        match bare {
            Some(b) if b > 0.0 && l.handler != "bare" => format!("{:.2}", o.ok_per_sec / b),
            _ => "—".into(),
        },
        l.cpu_us_per_answer
            .map_or("—".into(), |c| format!("{c:.1}")),
        l.drain
            .as_ref()
            .map_or("—".into(), |d| d.backlog.to_string()),
        match &l.drain {
            Some(Drain { secs: Some(s), .. }) => format!("{s:.1}"),
            Some(Drain { secs: None, .. }) => format!("> {}", DRAIN_LIMIT.as_secs()),
            None => "—".into(),
        },
        l.drain
            .as_ref()
            .and_then(|d| d.cpu_us_per_delivery)
            .map_or("—".into(), |c| format!("{c:.0}")),
    ]
}

/// A handler process under load: where it listens, and its pid (for its
/// CPU).
#[derive(Clone, Copy)]
struct Server {
    addr: std::net::SocketAddr,
    pid: Option<u32>,
}

struct Ctx<'a> {
    opts: &'a Options,
    template: Arc<Template>,
    next: Arc<AtomicU64>,
}

impl Ctx<'_> {
    fn say(&self, msg: String) {
        if self.opts.verbose {
            eprintln!("[ingest] {msg}");
        }
    }

    fn factory(&self, path: &str, run: &str) -> Factory {
        webhooks::ingest_factory(self.template.clone(), path.to_owned(), run)
    }

    /// Closed-loop levels, then (unless `open` is false) the open-loop rate;
    /// with `backlog`, each level's processing backlog is drained (and
    /// timed) before the next.
    async fn measure(
        &self,
        backend: &str,
        handler: &str,
        Server { addr, pid }: Server,
        path: &str,
        open: bool,
        backlog: Option<&Backlog>,
    ) -> Result<(Vec<Level>, Option<Level>)> {
        let drain = |label: String| async move {
            let Some(b) = backlog else {
                return Ok::<_, anyhow::Error>(None);
            };
            let d = b.drain(pid).await?;
            self.say(format!(
                "{backend} {handler} {label}: backlog {} drained in {}, {} CPU µs per delivery",
                d.backlog,
                d.secs
                    .map_or_else(|| "(not within the limit)".into(), |s| format!("{s:.1} s")),
                num(d.cpu_us_per_delivery, 0)
            ));
            Ok(Some(d))
        };
        let factory = self.factory(path, &format!("{backend}_{handler}"));
        let mut levels = Vec::new();
        let cpu = || pid.and_then(rss::cpu_secs);
        for &c in &self.opts.concurrency {
            let cpu_before = cpu();
            let o = load::closed_loop(
                addr,
                factory.clone(),
                self.next.clone(),
                c,
                self.opts.warmup,
                self.opts.window,
            )
            .await?;
            let cpu_us_per_answer = per_answer(cpu_before, cpu(), &o);
            self.say(format!(
                "{backend} {handler} c={c}: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, {} non-2xx, {} errors, {} CPU µs per 202",
                o.ok_per_sec,
                o.latency.p50_ms(),
                o.latency.p99_ms(),
                o.not_ok,
                o.errors,
                num(cpu_us_per_answer, 1)
            ));
            levels.push(Level {
                handler: handler.into(),
                concurrency: c,
                outcome: o,
                cpu_us_per_answer,
                drain: drain(format!("c={c}")).await?,
            });
        }
        let open_level = if open {
            let cpu_before = cpu();
            let o = load::open_loop(
                addr,
                factory,
                self.next.clone(),
                self.opts.open_rate,
                Duration::from_secs(1).min(self.opts.open_window),
                self.opts.open_window,
                self.opts.max_in_flight,
            )
            .await?;
            let cpu_us_per_answer = per_answer(cpu_before, cpu(), &o);
            self.say(format!(
                "{backend} {handler} open {:.0}/s: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, max {:.1} ms, {} CPU µs per 202",
                self.opts.open_rate,
                o.ok_per_sec,
                o.latency.p50_ms(),
                o.latency.p99_ms(),
                o.latency.max_ms(),
                num(cpu_us_per_answer, 1)
            ));
            Some(Level {
                handler: handler.into(),
                concurrency: self.opts.open_rate as usize,
                outcome: o,
                cpu_us_per_answer,
                drain: drain(format!("open {:.0}/s", self.opts.open_rate)).await?,
            })
        } else {
            None
        };
        Ok((levels, open_level))
    }
}

/// CPU µs per 202 answer between two readings of a handler's CPU seconds.
fn per_answer(before: Option<f64>, after: Option<f64>, o: &Outcome) -> Option<f64> {
    cpu_us_per(before, after, o.accepted_total)
}

/// CPU µs per item of `n` between two readings of a process's CPU seconds.
fn cpu_us_per(before: Option<f64>, after: Option<f64>, n: u64) -> Option<f64> {
    let used = after.zip(before).map(|(a, b)| a - b)?;
    (n > 0).then(|| used * 1e6 / n as f64)
}

fn accepted(levels: &[Level]) -> u64 {
    levels.iter().map(|l| l.outcome.accepted_total).sum()
}

fn peak(levels: &[Level], handler: &str) -> f64 {
    levels
        .iter()
        .filter(|l| l.handler == handler)
        .map(|l| l.outcome.ok_per_sec)
        .fold(0.0, f64::max)
}

/// Runs the scenario.
pub async fn run(opts: &Options) -> Result<Report> {
    init_tls();
    let ctx = Ctx {
        opts,
        template: Arc::new(Template::ingest()),
        next: Arc::new(AtomicU64::new(1)),
    };
    let probe_dir = TempDir::new("fsync")?;
    let probe_path = probe_dir.path().to_path_buf();
    let samples = opts.fsync_samples;
    let fsync = tokio::task::spawn_blocking(move || {
        fsync::probe(&probe_path, samples, Duration::from_secs(3))
    })
    .await??;
    ctx.say(format!(
        "fsync: p50 {:.2} ms, p99 {:.2} ms ({:.0}/s)",
        fsync.latency.p50_ms(),
        fsync.latency.p99_ms(),
        fsync.per_sec
    ));
    let mut backends = vec![backend(&ctx, None).await?];
    let postgres_skipped = match &opts.postgres {
        Some(url) => {
            backends.push(backend(&ctx, Some(url)).await?);
            None
        }
        None => {
            let note = format!("skipped: {POSTGRES_ENV} is not set");
            eprintln!("notice: PostgreSQL {note}");
            Some(note)
        }
    };
    let mut verdicts = Vec::new();
    for b in &backends {
        verdicts.push((
            format!("{}: shipsync ÷ bare", b.backend),
            match b.vs_bare() {
                Some(r) if r >= TARGET_VS_BARE => format!("met ({r:.2})"),
                Some(r) => format!("MISSED ({r:.2} < {TARGET_VS_BARE})"),
                None => "not measured".into(),
            },
        ));
        if let Some(o) = b.open_for("shipsync") {
            verdicts.push((
                format!("{}: p99 at {:.0}/s", b.backend, opts.open_rate),
                if o.ok == 0 {
                    "MISSED: no 2xx answer".into()
                } else {
                    verdict_at_most(Some(o.latency.p99_ms()), TARGET_P99_MS, " ms")
                },
            ));
        }
    }
    Ok(Report {
        body_bytes: ctx.template.len(),
        shipsync_binary: opts.shipsync.display().to_string(),
        baselines_in: if opts.baseline_exe.is_some() {
            "each in its own process"
        } else {
            "each on its own 2-thread runtime in the bench process"
        },
        fsync,
        backends,
        postgres_skipped,
        verdicts,
    })
}

async fn backend(ctx: &Ctx<'_>, postgres: Option<&str>) -> Result<BackendReport> {
    let name = if postgres.is_some() {
        "postgres"
    } else {
        "sqlite"
    };
    let opts = ctx.opts;
    // Dropped (PostgreSQL databases too) when this returns, with an error
    // as well.
    let naive_db = throwaway(postgres).await?;
    let served_db = throwaway(postgres).await?;
    let naive_url = naive_db.url.clone();
    let shipsync_url = served_db.url.clone();
    let mut closed = Vec::new();
    let mut open = Vec::new();
    // The reference handlers.
    let path = "/webhooks/deposco/bench_key";
    let bare = baseline::start(Mode::Bare, None, opts.baseline_exe.as_deref()).await?;
    let measured = ctx
        .measure(
            name,
            "bare",
            Server {
                addr: bare.addr(),
                pid: bare.pid(),
            },
            path,
            true,
            None,
        )
        .await;
    bare.stop().await;
    let (levels, o) = measured?;
    closed.extend(levels);
    open.extend(o);
    let naive =
        baseline::start(Mode::Naive, Some(&naive_url), opts.baseline_exe.as_deref()).await?;
    let measured = ctx
        .measure(
            name,
            "naive",
            Server {
                addr: naive.addr(),
                pid: naive.pid(),
            },
            path,
            false,
            None,
        )
        .await;
    naive.stop().await;
    let (levels, _) = measured?;
    let naive_answers = accepted(&levels);
    closed.extend(levels);
    let naive_rows = baseline::naive_rows(&naive_url).await?;

    // shipsync.
    let instance = Instance::on(&opts.shipsync, &format!("ingest-{name}"), served_db)?;
    let serve = instance.serve().await?;
    let measured = async {
        let (_, path) = serve
            .webhook_merchant("Bench Ingest", "http://127.0.0.1:9", webhooks::SHARED_SECRET)
            .await?;
        let addr = serve.addr()?;
        // One delivery first: the endpoint must accept the bench's bodies
        // and signatures as shipsync deliveries (not needs_attention).
        let req = ctx.factory(&path, "check")(0);
        let mut check = reqwest::Client::new()
            .post(format!("{}{}", serve.url, req.path))
            .header("content-type", "application/json")
            .body(req.body.clone());
        for (k, v) in &req.headers {
            check = check.header(*k, v);
        }
        let resp = check.send().await?;
        let status = resp.status().as_u16();
        let text = resp.text().await?;
        if status != 202 || !text.contains("\"accepted\"") {
            bail!("the first delivery was answered {status}: {text}");
        }
        let pid = serve.pid().context("serve has no pid")?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let idle_rss = rss::read(pid).map_or(0, |r| r.rss_kib);
        let backlog = Backlog {
            db: shipsync_db::Db::connect(&shipsync_url).await?,
        };
        let measured = ctx
            .measure(name, "shipsync", Server { addr, pid: Some(pid) }, &path, true, Some(&backlog))
            .await;
        backlog.db.pool().close().await;
        let (levels, o) = measured?;
        let mut answers = 1 + accepted(&levels) + o.as_ref().map_or(0, |l| l.outcome.accepted_total);
        let overload = match opts.overload {
            Some((rate, secs)) => {
                let before = rss::read(pid).map_or(0, |r| r.rss_kib);
                let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
                let sampler = {
                    let stop = stop.clone();
                    tokio::spawn(async move {
                        let mut peak = 0u64;
                        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                            if let Some(r) = rss::read(pid) {
                                peak = peak.max(r.rss_kib);
                            }
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        peak
                    })
                };
                let outcome = load::open_loop(
                    addr,
                    ctx.factory(&path, &format!("{name}_overload")),
                    ctx.next.clone(),
                    rate,
                    Duration::ZERO,
                    secs,
                    opts.max_in_flight,
                )
                .await?;
                stop.store(true, std::sync::atomic::Ordering::Relaxed);
                let peak = sampler.await.unwrap_or(0);
                tokio::time::sleep(Duration::from_secs(1)).await;
                let after = rss::read(pid).map_or(0, |r| r.rss_kib);
                answers += outcome.accepted_total;
                ctx.say(format!(
                    "{name} shipsync overload {rate:.0}/s: {} × 202, {} × 503 + Retry-After, {} × 503 without, {} errors, {} not sent; RSS {:.1} → {:.1} → {:.1} MB",
                    outcome.accepted_total,
                    outcome.unavailable_with_retry_after,
                    outcome.unavailable_without_retry_after,
                    outcome.errors,
                    outcome.not_sent,
                    kib_to_mb(before),
                    kib_to_mb(peak),
                    kib_to_mb(after)
                ));
                Some(Overload {
                    offered_per_sec: rate,
                    secs: secs.as_secs_f64(),
                    outcome,
                    rss_before_kib: before,
                    rss_peak_kib: peak.max(before),
                    rss_after_kib: after,
                })
            }
            None => None,
        };
        Ok((levels, o, overload, answers, idle_rss))
    }
    .await;
    // No graceful shutdown: what was acknowledged must already be stored.
    serve.kill().await?;
    let (levels, o, overload, accepted_answers, idle_rss) = measured?;
    closed.extend(levels);
    open.extend(o);
    let db = shipsync_db::Db::connect(&shipsync_url).await?;
    let (accepted_events,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM events WHERE outcome = 'accepted'")
            .fetch_one(db.pool())
            .await?;
    db.pool().close().await;
    ctx.say(format!(
        "{name}: {accepted_answers} × 202 answered, {accepted_events} accepted events stored after SIGKILL"
    ));
    Ok(BackendReport {
        backend: name.into(),
        peak_bare: peak(&closed, "bare"),
        peak_naive: peak(&closed, "naive"),
        peak_shipsync: peak(&closed, "shipsync"),
        closed,
        open,
        overload,
        durability: Durability {
            accepted_answers,
            accepted_events,
            naive_answers,
            naive_rows,
        },
        shipsync_idle_rss_kib: idle_rss,
    })
}

/// A throwaway database on the PostgreSQL server `postgres`, else SQLite.
async fn throwaway(postgres: Option<&str>) -> Result<TestDb> {
    match postgres {
        Some(server) => TestDb::postgres_on(server).await,
        None => TestDb::sqlite(),
    }
}
