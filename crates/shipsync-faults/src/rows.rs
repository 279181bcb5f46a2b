//! The rows of the fault suite (docs/quality.md, "Reliability"). Each row
//! starts its own world (database, sandboxes, `shipsync serve` processes),
//! drives load over HTTP, injects its fault, and checks the store: every
//! shipped unit fulfilled, none twice.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rand::seq::SliceRandom;
use serde::Serialize;
use serde_json::json;
use shipsync_sandbox_shopify::{FaultKind, Faults, ThrottleConfig};

use crate::proxy::CutProxy;
use crate::world::{Backend, Node, SendPlan, SendStats, Verdict, World, WorldOptions, send_all};

/// The rows, in the order they run.
pub const ROWS: [&str; 8] = [
    "kill9",
    "repeat3",
    "drop20",
    "store-faults",
    "deposco-faults",
    "two-nodes",
    "db-outage",
    "shared-budget",
];

/// What a row is about (for `--help` and the table).
pub fn describe(row: &str) -> &'static str {
    match row {
        "kill9" => "kill -9 of the only node during a webhook load, then restart",
        "repeat3" => {
            "every webhook delivered 3x (shuffled, concurrent) plus a pull over the same shipments"
        }
        "drop20" => "20 % of webhooks never sent; then the fallback pull",
        "store-faults" => "the store answers 30 % 5xx / THROTTLED / 429 / timeouts",
        "deposco-faults" => "Deposco answers 429 and 5xx, slowly, during a pull; kill -9 mid-pull",
        "two-nodes" => "two nodes on PostgreSQL, one killed mid-load; schedule slots",
        "db-outage" => "PostgreSQL unreachable during load (a TCP proxy cuts the link)",
        "shared-budget" => {
            "a large plan's bucket (20,000 points, 1,000/s) shared by two nodes on PostgreSQL, one killed halfway; against one node on SQLite"
        }
        _ => "unknown row",
    }
}

#[derive(Debug, Clone)]
pub struct Options {
    pub bin: PathBuf,
    pub quick: bool,
    /// The backend of the rows that run on either (kill9, repeat3, drop20,
    /// store-faults, deposco-faults); two-nodes and db-outage always use
    /// PostgreSQL.
    pub backend: Backend,
}

#[derive(Debug, Clone, Serialize)]
pub struct RowResult {
    pub row: String,
    pub backend: Backend,
    pub load: String,
    pub passed: bool,
    pub verdict: Option<Verdict>,
    pub sender: Option<SendStats>,
    /// Row-specific figures, in order.
    pub figures: Vec<(String, String)>,
    pub seconds: f64,
    /// Why it failed (or could not run).
    pub failure: Option<String>,
    /// Where the nodes' logs were (removed after a passing row).
    pub logs: Option<String>,
}

impl RowResult {
    fn new(row: &str, backend: Backend, load: String) -> Self {
        Self {
            row: row.to_owned(),
            backend,
            load,
            passed: false,
            verdict: None,
            sender: None,
            figures: Vec::new(),
            seconds: 0.0,
            failure: None,
            logs: None,
        }
    }

    fn figure(&mut self, name: &str, value: impl ToString) {
        self.figures.push((name.to_owned(), value.to_string()));
    }

    /// Passes when every check holds; the first failing check is the reason.
    fn judge(&mut self, checks: &[(&str, bool)]) {
        self.passed = checks.iter().all(|(_, ok)| *ok);
        if let Some((what, _)) = checks.iter().find(|(_, ok)| !ok) {
            self.failure = Some(format!("failed: {what}"));
        }
    }
}

/// Runs one row; an error inside the row is a failed row, not a crash.
pub async fn run(row: &str, opts: &Options) -> RowResult {
    let start = Instant::now();
    let backend = match row {
        "two-nodes" | "db-outage" | "shared-budget" => Backend::Postgres,
        _ => opts.backend,
    };
    let result = match row {
        "kill9" => kill9(opts, backend).await,
        "repeat3" => repeat3(opts, backend).await,
        "drop20" => drop20(opts, backend).await,
        "store-faults" => store_faults(opts, backend).await,
        "deposco-faults" => deposco_faults(opts, backend).await,
        "two-nodes" => two_nodes(opts).await,
        "db-outage" => db_outage(opts).await,
        "shared-budget" => shared_budget(opts).await,
        other => Err(anyhow::anyhow!(
            "unknown row {other:?}; rows: {}",
            ROWS.join(", ")
        )),
    };
    let mut r = match result {
        // The row's nodes have stopped (dropped with the row); its logs are
        // kept if it failed, then its sandboxes and database go.
        Ok((mut r, world)) => {
            keep_logs(&mut r, &world);
            world.finish().await;
            r
        }
        Err(e) => {
            let mut r = RowResult::new(row, backend, String::new());
            r.failure = Some(format!("{e:#}"));
            r
        }
    };
    r.seconds = start.elapsed().as_secs_f64();
    r
}

fn size(opts: &Options, quick: usize, full: usize) -> usize {
    if opts.quick { quick } else { full }
}

fn targets(urls: &[String], path: &str) -> Arc<RwLock<Vec<String>>> {
    Arc::new(RwLock::new(
        urls.iter().map(|u| format!("{u}{path}")).collect(),
    ))
}

fn fmt_verdict(r: &mut RowResult, v: &Verdict) {
    r.figure("fulfilled", format!("{}/{}", v.complete, v.orders));
    r.figure("duplicates", v.duplicate_fulfillments + v.extra_units);
}

/// Keeps the logs of a failed row (prints where), removes a passed one's.
fn keep_logs(r: &mut RowResult, world: &World) {
    if !r.passed {
        let keep =
            std::env::temp_dir().join(format!("shipsync-faults-{}-{}", r.row, std::process::id()));
        let _ = copy_dir(world.log_dir(), &keep);
        r.logs = Some(keep.display().to_string());
    }
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        if e.path().extension().is_some_and(|x| x == "log") {
            std::fs::copy(e.path(), to.join(e.file_name()))?;
        }
    }
    Ok(())
}

const SETTLE: Duration = Duration::from_secs(600);

// ---------------------------------------------------------------------------

/// `kill -9` of the only node once 40 % of the load is acknowledged; the
/// node restarts on the same database 1 s later and the sender goes on with
/// what was not acknowledged (never resending an acknowledged delivery):
/// every acknowledged delivery must still end fulfilled, exactly once.
async fn kill9(opts: &Options, backend: Backend) -> Result<(RowResult, World)> {
    let n = size(opts, 300, 10_000);
    let mut r = RowResult::new("kill9", backend, format!("{n} webhooks, 64 concurrent"));
    let mut world = World::start(&opts.bin, backend, "kill9", WorldOptions::default()).await?;
    let node = world.node("node-1").await?;
    world.seed(&node).await?;
    let cases = world.orders("K", n);
    let deliveries = world.deliveries(&cases)?;
    let path = world.webhook_path();
    let targets = targets(std::slice::from_ref(&node.url), &path);
    let threshold = (n as u64 * 2) / 5;
    let reached = Arc::new(tokio::sync::Notify::new());
    let acked_at_kill = Arc::new(AtomicU64::new(0));
    let plan = SendPlan {
        concurrency: 64,
        rate: None,
        retry_for: Duration::from_secs(300),
    };
    let killer = {
        let reached = reached.clone();
        let targets = targets.clone();
        let world = &world;
        let path = path.clone();
        async move {
            let mut node = node;
            reached.notified().await;
            node.kill9().await?;
            let killed = Instant::now();
            tokio::time::sleep(Duration::from_secs(1)).await;
            let node = world.node("node-1").await?;
            *targets.write().unwrap_or_else(|e| e.into_inner()) =
                vec![format!("{}{path}", node.url)];
            anyhow::Ok((node, killed.elapsed()))
        }
    };
    let counter = acked_at_kill.clone();
    let sender = send_all(&world.http, targets.clone(), deliveries, &plan, |acked| {
        if acked == threshold {
            counter.store(acked, Ordering::SeqCst);
            reached.notify_one();
        }
    });
    let (stats, restarted) = tokio::join!(sender, killer);
    // Held to the end of the row: dropping a node stops it.
    let (_node, down_for) = restarted?;
    let verdict = world.wait_complete(&cases, SETTLE).await;
    r.figure("acked before kill", acked_at_kill.load(Ordering::SeqCst));
    r.figure("down (s)", format!("{:.1}", down_for.as_secs_f64()));
    r.figure(
        "refused while down",
        stats.connection_errors + stats.status_503,
    );
    fmt_verdict(&mut r, &verdict);
    r.judge(&[
        (
            "the node was killed mid-load",
            acked_at_kill.load(Ordering::SeqCst) > 0,
        ),
        (
            "every delivery acknowledged in the end",
            stats.acknowledged == n,
        ),
        (
            "every acknowledged delivery fulfilled exactly once",
            verdict.exact(),
        ),
    ]);
    r.verdict = Some(verdict);
    r.sender = Some(stats);
    Ok((r, world))
}

/// Every delivery sent 3 times, shuffled, 48 at a time, while a pull of the
/// same shipments runs.
async fn repeat3(opts: &Options, backend: Backend) -> Result<(RowResult, World)> {
    let n = size(opts, 150, 2_000);
    let mut r = RowResult::new(
        "repeat3",
        backend,
        format!("{n} shipments × 3 deliveries + 1 pull"),
    );
    let mut world = World::start(&opts.bin, backend, "repeat3", WorldOptions::default()).await?;
    let node = world.node("node-1").await?;
    world.seed(&node).await?;
    let cases = world.orders("R", n);
    let once = world.deliveries(&cases)?;
    let mut deliveries: Vec<_> = once.iter().chain(&once).chain(&once).cloned().collect();
    deliveries.shuffle(&mut rand::rng());
    let plan = SendPlan {
        concurrency: 48,
        rate: None,
        retry_for: Duration::from_secs(120),
    };
    let targets = targets(std::slice::from_ref(&node.url), &world.webhook_path());
    let (stats, run) = tokio::join!(
        send_all(&world.http, targets, deliveries, &plan, |_| {}),
        async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            world.run_shipments(&node, SETTLE).await
        }
    );
    let run = run?;
    let verdict = world.wait_complete(&cases, SETTLE).await;
    r.figure(
        "pull",
        format!(
            "{} (fetched {})",
            run["status"].as_str().unwrap_or("?"),
            run["counts"]["fetched"]
        ),
    );
    fmt_verdict(&mut r, &verdict);
    r.judge(&[
        ("every delivery acknowledged", stats.acknowledged == 3 * n),
        ("the pull succeeded", run["status"] == "succeeded"),
        ("every unit fulfilled exactly once", verdict.exact()),
    ]);
    r.verdict = Some(verdict);
    r.sender = Some(stats);
    Ok((r, world))
}

/// A random 20 % of the deliveries are never sent; after the others are
/// processed, one fallback run finds the rest.
async fn drop20(opts: &Options, backend: Backend) -> Result<(RowResult, World)> {
    let n = size(opts, 150, 2_000);
    let mut r = RowResult::new(
        "drop20",
        backend,
        format!("{n} shipments, 20 % of webhooks dropped"),
    );
    let mut world = World::start(&opts.bin, backend, "drop20", WorldOptions::default()).await?;
    let node = world.node("node-1").await?;
    world.seed(&node).await?;
    let cases = world.orders("D", n);
    let all = world.deliveries(&cases)?;
    let mut idx: Vec<usize> = (0..n).collect();
    idx.shuffle(&mut rand::rng());
    let dropped = n / 5;
    let mut keep = vec![true; n];
    for &i in &idx[..dropped] {
        keep[i] = false;
    }
    let sent: Vec<_> = all
        .into_iter()
        .zip(&keep)
        .filter_map(|(d, k)| k.then_some(d))
        .collect();
    let sent_cases: Vec<_> = cases
        .iter()
        .zip(&keep)
        .filter_map(|(c, k)| k.then_some(c.clone()))
        .collect();
    let plan = SendPlan {
        concurrency: 32,
        rate: None,
        retry_for: Duration::from_secs(120),
    };
    let targets = targets(std::slice::from_ref(&node.url), &world.webhook_path());
    let stats = send_all(&world.http, targets, sent, &plan, |_| {}).await;
    let before = world.wait_complete(&sent_cases, SETTLE).await;
    let partial = world.verdict(&cases);
    let run = world.run_shipments(&node, SETTLE).await?;
    let verdict = world.wait_complete(&cases, SETTLE).await;
    let by_poll = world.count_first_seen_by_poll(&node).await?;
    r.figure("dropped", dropped);
    r.figure(
        "fulfilled before the pull",
        format!("{}/{n}", partial.complete),
    );
    r.figure("found by the pull (first_seen_via=poll)", by_poll);
    fmt_verdict(&mut r, &verdict);
    r.judge(&[
        ("the sent ones fulfilled by webhook", before.exact()),
        (
            "the dropped ones not fulfilled before the pull",
            partial.complete == n - dropped,
        ),
        ("the pull succeeded", run["status"] == "succeeded"),
        (
            "100 % fulfilled exactly once after the pull",
            verdict.exact(),
        ),
        (
            "the dropped ones show first_seen_via = poll",
            by_poll == dropped,
        ),
    ]);
    r.verdict = Some(verdict);
    r.sender = Some(stats);
    Ok((r, world))
}

/// The store fails 30 % of all calls (reads and writes) with 500, 502,
/// THROTTLED, 429, a 1.5 s stall past shipsync's 1 s timeout, or a
/// fulfillment applied whose answer is lost.
async fn store_faults(opts: &Options, backend: Backend) -> Result<(RowResult, World)> {
    let n = size(opts, 40, 400);
    let mut r = RowResult::new(
        "store-faults",
        backend,
        format!("{n} shipments, 30 % store faults"),
    );
    let mut world = World::start(&opts.bin, backend, "store", WorldOptions::default()).await?;
    let node = world
        .node_with(
            "node-1",
            None,
            &[
                ("SHIPSYNC_HTTP_TIMEOUT_SECS", "1"),
                ("SHIPSYNC_BACKOFF_MAX_SECS", "20"),
            ],
        )
        .await?;
    world.seed(&node).await?;
    let cases = world.orders("S", n);
    world.shopify.sandbox.set_faults(Faults {
        fail_rate: 0.3,
        kinds: vec![
            FaultKind::Http500,
            FaultKind::Http502,
            FaultKind::Throttled,
            FaultKind::TooManyRequests,
            FaultKind::Timeout,
            FaultKind::ApplyThenDrop,
        ],
        mutations_only: false,
        timeout_ms: 1_500,
        retry_after_secs: 1,
        ..Default::default()
    });
    let plan = SendPlan {
        concurrency: 16,
        rate: None,
        retry_for: Duration::from_secs(120),
    };
    let targets = targets(std::slice::from_ref(&node.url), &world.webhook_path());
    let stats = send_all(
        &world.http,
        targets,
        world.deliveries(&cases)?,
        &plan,
        |_| {},
    )
    .await;
    let verdict = world.wait_complete(&cases, SETTLE).await;
    let faulted = world
        .shopify
        .sandbox
        .requests()
        .iter()
        .filter(|q| q.fault.is_some())
        .count();
    world.shopify.sandbox.set_faults(Faults::default());
    r.figure("store faults injected", faulted);
    fmt_verdict(&mut r, &verdict);
    r.judge(&[
        ("every delivery acknowledged", stats.acknowledged == n),
        ("faults were injected", faulted > 0),
        ("all fulfilled exactly once", verdict.exact()),
    ]);
    r.verdict = Some(verdict);
    r.sender = Some(stats);
    Ok((r, world))
}

/// No webhooks: a pull of every shipment from a Deposco that limits the
/// account to 1.5 requests/s (shipsync assumes 4, so it meets 429s), fails
/// 20 % of requests with 5xx and answers slowly; the node is killed after
/// the first page and restarted: the pull resumes from its cursor.
async fn deposco_faults(opts: &Options, backend: Backend) -> Result<(RowResult, World)> {
    let n = size(opts, 600, 4_000);
    let mut r = RowResult::new(
        "deposco-faults",
        backend,
        format!("pull of {n} shipments, 429/5xx, kill -9"),
    );
    let mut wopts = WorldOptions::default();
    wopts.deposco.rate_limit_per_sec = 1.5;
    wopts.deposco.rate_limit_burst = 1.0;
    let mut world = World::start(&opts.bin, backend, "deposco", wopts).await?;
    let mut node = world.node("node-1").await?;
    world.seed(&node).await?;
    let cases = world.orders("P", n);
    world
        .deposco
        .sandbox
        .set_faults(shipsync_sandbox_deposco::Faults {
            rest_5xx_rate: 0.2,
            slow_ms: 150,
            ..Default::default()
        });
    let runs = format!(
        "/api/v1/connections/{}/channels/shipments/runs",
        world.connection_id
    );
    let (status, queued) = world.api(&node, "POST", &runs, None).await?;
    if status != 202 {
        bail!("run now: HTTP {status}: {queued}");
    }
    let id = queued["id"].as_str().unwrap_or_default().to_owned();
    let start = Instant::now();
    loop {
        let (_, run) = world
            .api(&node, "GET", &format!("{runs}/{id}"), None)
            .await?;
        if run["counts"]["pages"].as_u64().unwrap_or(0) >= 1 {
            break;
        }
        if run["status"] == "succeeded" || run["status"] == "failed" || start.elapsed() > SETTLE {
            bail!("the pull ended before the kill: {run}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    node.kill9().await?;
    let node = world.node("node-1").await?;
    let run = world.wait_run(&node, &id, SETTLE).await?;
    let verdict = world.wait_complete(&cases, SETTLE).await;
    let limited = world.deposco.sandbox.rate_limited_count();
    let requests = world.deposco.sandbox.request_count();
    world.deposco.sandbox.set_faults(Default::default());
    let c = &run["counts"];
    let imported = ["new", "updated", "unchanged"]
        .iter()
        .map(|k| c[*k].as_u64().unwrap_or(0))
        .sum::<u64>();
    r.figure("Deposco requests", requests);
    r.figure("429s", limited);
    r.figure("pages", c["pages"].as_u64().unwrap_or(0));
    fmt_verdict(&mut r, &verdict);
    r.judge(&[
        (
            "the pull succeeded after the restart",
            run["status"] == "succeeded",
        ),
        ("every shipment imported", imported >= n as u64),
        ("Deposco answered 429s", limited > 0),
        (
            "the pages were not all read again",
            c["pages"].as_u64().unwrap_or(0) <= (n as u64).div_ceil(100) + 1,
        ),
        ("all fulfilled exactly once", verdict.exact()),
    ]);
    r.verdict = Some(verdict);
    Ok((r, world))
}

/// Two nodes behind a round-robin sender on one PostgreSQL database, the
/// Shipments channel scheduled every minute (full run); node A is killed at
/// 40 % of the load and comes back 5 s later. Every unit fulfilled once;
/// each schedule slot ran once.
async fn two_nodes(opts: &Options) -> Result<(RowResult, World)> {
    let n = size(opts, 300, 3_000);
    let watch_slots = !opts.quick;
    let mut r = RowResult::new(
        "two-nodes",
        Backend::Postgres,
        format!(
            "{n} webhooks over 2 nodes{}",
            if watch_slots {
                ", schedule every minute for 3 min"
            } else {
                ""
            }
        ),
    );
    let mut world = World::start(
        &opts.bin,
        Backend::Postgres,
        "nodes",
        WorldOptions::default(),
    )
    .await?;
    let a = world.node("node-a").await?;
    let b = world.node("node-b").await?;
    world.seed(&a).await?;
    let started = Instant::now();
    if watch_slots {
        world
            .set_shipments_channel(
                &b,
                json!({"schedules": [{"kind": "minutely", "every": 1, "time_zone": "UTC"}]}),
            )
            .await?;
    }
    let cases = world.orders("N", n);
    let path = world.webhook_path();
    let targets = targets(&[a.url.clone(), b.url.clone()], &path);
    let threshold = (n as u64 * 2) / 5;
    let reached = Arc::new(tokio::sync::Notify::new());
    let plan = SendPlan {
        concurrency: 48,
        rate: if opts.quick { None } else { Some(40.0) },
        retry_for: Duration::from_secs(300),
    };
    let killer = {
        let reached = reached.clone();
        let targets = targets.clone();
        let world = &world;
        let path = path.clone();
        async move {
            let mut a = a;
            reached.notified().await;
            a.kill9().await?;
            tokio::time::sleep(Duration::from_secs(5)).await;
            let a = world.node("node-a").await?;
            targets.write().unwrap_or_else(|e| e.into_inner())[0] = format!("{}{path}", a.url);
            anyhow::Ok(a)
        }
    };
    let sender = send_all(
        &world.http,
        targets,
        world.deliveries(&cases)?,
        &plan,
        |acked| {
            if acked == threshold {
                reached.notify_one();
            }
        },
    );
    let (stats, a) = tokio::join!(sender, killer);
    let _a = a?;
    let verdict = world.wait_complete(&cases, SETTLE).await;
    // Let at least three minute slots pass since the schedule was set.
    let mut slots_ok = true;
    if watch_slots {
        let wait = Duration::from_secs(190).saturating_sub(started.elapsed());
        tokio::time::sleep(wait).await;
        let mut sql = world.sql().await?;
        let rows: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT slot_at, COUNT(*) FROM runs WHERE trigger_kind = 'schedule' GROUP BY slot_at ORDER BY slot_at",
        )
        .fetch_all(&mut sql)
        .await
        .context("runs per slot")?;
        let twice = rows.iter().filter(|(_, c)| *c > 1).count();
        let failed: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM runs WHERE trigger_kind = 'schedule' AND status = 'failed'",
        )
        .fetch_one(&mut sql)
        .await?;
        r.figure("schedule slots run", rows.len());
        r.figure("slots run twice", twice);
        slots_ok = rows.len() >= 3 && twice == 0 && failed == 0;
    }
    fmt_verdict(&mut r, &verdict);
    r.figure("refused by the dead node", stats.connection_errors);
    r.judge(&[
        ("every delivery acknowledged", stats.acknowledged == n),
        ("every unit fulfilled exactly once", verdict.exact()),
        ("each schedule slot ran once (3 or more slots)", slots_ok),
    ]);
    r.verdict = Some(verdict);
    r.sender = Some(stats);
    Ok((r, world))
}

/// The node reaches PostgreSQL through a proxy; webhooks arrive at a steady
/// rate; the proxy cuts the link for 30 s (quick: 5 s) in the middle. While
/// it is cut the webhook answers 503 and `/healthz` 503; when it is back the
/// same process (no restart) stores and processes everything.
async fn db_outage(opts: &Options) -> Result<(RowResult, World)> {
    let (n, rate, cut_at, cut_for) = if opts.quick {
        (300, 50.0, Duration::from_secs(2), Duration::from_secs(5))
    } else {
        (
            3_000,
            50.0,
            Duration::from_secs(15),
            Duration::from_secs(30),
        )
    };
    let mut r = RowResult::new(
        "db-outage",
        Backend::Postgres,
        format!("{n} webhooks at {rate}/s, link cut {} s", cut_for.as_secs()),
    );
    let mut world = World::start(
        &opts.bin,
        Backend::Postgres,
        "outage",
        WorldOptions::default(),
    )
    .await?;
    let url = url_host_port(&world.inst.database_url)?;
    let proxy = CutProxy::start(url.1.clone()).await?;
    let proxied = world
        .inst
        .database_url
        .replacen(&url.1, &proxy.addr.to_string(), 1);
    if proxied == world.inst.database_url {
        bail!("the PostgreSQL URL must name its port (host:port) for the proxy to stand in");
    }
    let mut node = world.node_with("node-1", Some(&proxied), &[]).await?;
    let pid = node.pid();
    world.seed(&node).await?;
    let cases = world.orders("O", n);
    let plan = SendPlan {
        concurrency: 64,
        rate: Some(rate),
        retry_for: Duration::from_secs(300),
    };
    let targets = targets(std::slice::from_ref(&node.url), &world.webhook_path());
    let health = HealthSeen::default();
    let outage = async {
        tokio::time::sleep(cut_at).await;
        proxy.cut();
        let during = Instant::now();
        while during.elapsed() < cut_for {
            if let Ok(resp) = world.http.get(format!("{}/healthz", node.url)).send().await {
                health.record(resp.status().as_u16(), true);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        proxy.restore();
        let back = Instant::now();
        // Readiness comes back by itself.
        while back.elapsed() < Duration::from_secs(60) {
            if let Ok(resp) = world.http.get(format!("{}/healthz", node.url)).send().await {
                health.record(resp.status().as_u16(), false);
                if resp.status().is_success() {
                    return back.elapsed();
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        back.elapsed()
    };
    let sender = send_all(
        &world.http,
        targets,
        world.deliveries(&cases)?,
        &plan,
        |_| {},
    );
    let (stats, ready_after) = tokio::join!(sender, outage);
    let verdict = world.wait_complete(&cases, SETTLE).await;
    let same_process = node.alive() && node.pid() == pid;
    let (h503, h200_after) = health.summary();
    r.figure("503 answers", stats.status_503);
    r.figure("healthz 503 during the cut", h503);
    r.figure(
        "ready again after (s)",
        format!("{:.1}", ready_after.as_secs_f64()),
    );
    fmt_verdict(&mut r, &verdict);
    r.judge(&[
        (
            "webhooks answered 503 during the outage",
            stats.status_503 > 0,
        ),
        ("/healthz answered 503 during the outage", h503 > 0),
        ("/healthz back to 200 without a restart", h200_after),
        ("the same process throughout", same_process),
        (
            "every delivery acknowledged in the end",
            stats.acknowledged == n,
        ),
        ("every unit fulfilled exactly once", verdict.exact()),
    ]);
    r.verdict = Some(verdict);
    r.sender = Some(stats);
    Ok((r, world))
}

#[derive(Default)]
struct HealthSeen {
    during_503: AtomicU64,
    after_200: AtomicBool,
}

impl HealthSeen {
    fn record(&self, status: u16, during: bool) {
        if during && status == 503 {
            self.during_503.fetch_add(1, Ordering::Relaxed);
        }
        if !during && status == 200 {
            self.after_200.store(true, Ordering::Relaxed);
        }
    }

    fn summary(&self) -> (u64, bool) {
        (
            self.during_503.load(Ordering::Relaxed),
            self.after_200.load(Ordering::Relaxed),
        )
    }
}

/// (`scheme://user@`, `host:port`) of a PostgreSQL URL.
fn url_host_port(url: &str) -> Result<(String, String)> {
    let rest = url
        .split_once("://")
        .map(|(_, r)| r)
        .context("a database URL")?;
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    let hostport = authority.rsplit('@').next().unwrap_or(authority);
    let hostport = if hostport.contains(':') {
        hostport.to_owned()
    } else {
        format!("{hostport}:5432")
    };
    Ok((authority.to_owned(), hostport))
}

// ---------------------------------------------------------------------------

/// A large plan's bucket: 20,000 points restoring 1,000/s.
const LARGE_PLAN: ThrottleConfig = ThrottleConfig {
    maximum_available: 20_000.0,
    restore_rate: 1_000.0,
};

/// The nodes of [`shared_budget`] give up on a store call after 2 s and
/// look for a write whose outcome is unknown 1 s longer (the sandbox
/// answers in milliseconds): the creates the killed node had in flight hold
/// their shipments 3 s, not the default 20 + 30 s, which would measure
/// that rule rather than the budget.
const BUDGET_NODE_ENV: [(&str, &str); 2] = [
    ("SHIPSYNC_HTTP_TIMEOUT_SECS", "2"),
    ("SHIPSYNC_UNKNOWN_OUTCOME_MARGIN_SECS", "1"),
];

/// What one load run of [`shared_budget`] showed.
struct BudgetRun {
    verdict: Verdict,
    stats: SendStats,
    /// From the first delivery to the last order complete.
    seconds: f64,
    throttled: usize,
    exhausted_lines: usize,
}

/// Lines of the nodes' logs saying a job was turned away for the budget.
fn budget_exhausted_lines(world: &World) -> usize {
    std::fs::read_dir(world.log_dir())
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
        .map(|e| {
            std::fs::read_to_string(e.path())
                .unwrap_or_default()
                .lines()
                .filter(|l| l.contains("Shopify cost budget exhausted"))
                .count()
        })
        .sum()
}

/// Sends `n` deliveries to `nodes` and waits until every order is complete.
/// With two nodes, the first is SIGKILLed once half the load is
/// acknowledged (and not restarted): the sender goes on with the other.
async fn budget_load(world: &World, mut nodes: Vec<Node>, n: usize) -> Result<BudgetRun> {
    let cases = world.orders("S", n);
    let deliveries = world.deliveries(&cases)?;
    let path = world.webhook_path();
    let urls: Vec<String> = nodes.iter().map(|x| x.url.clone()).collect();
    let targets = targets(&urls, &path);
    let plan = SendPlan {
        concurrency: 48,
        rate: None,
        retry_for: Duration::from_secs(300),
    };
    let half = Arc::new(tokio::sync::Notify::new());
    let threshold = n as u64 / 2;
    let started = Instant::now();
    let killer = {
        let half = half.clone();
        let targets = targets.clone();
        let two = nodes.len() > 1;
        let victim = two.then(|| nodes.remove(0));
        async move {
            if let Some(mut victim) = victim {
                half.notified().await;
                victim.kill9().await?;
                let survivor = targets.read().unwrap_or_else(|e| e.into_inner())[1].clone();
                *targets.write().unwrap_or_else(|e| e.into_inner()) = vec![survivor];
            }
            anyhow::Ok(())
        }
    };
    let sender = send_all(&world.http, targets.clone(), deliveries, &plan, |acked| {
        if acked == threshold {
            half.notify_one();
        }
    });
    let (stats, killed) = tokio::join!(sender, killer);
    killed?;
    let verdict = world.wait_complete(&cases, SETTLE).await;
    let seconds = started.elapsed().as_secs_f64();
    // The survivor (and the single node) stop with the run.
    drop(nodes);
    let throttled = world
        .shopify
        .sandbox
        .requests()
        .iter()
        .filter(|r| r.error_codes.iter().any(|c| c == "THROTTLED"))
        .count();
    Ok(BudgetRun {
        verdict,
        stats,
        seconds,
        throttled,
        exhausted_lines: budget_exhausted_lines(world),
    })
}

/// Liveness of the store's shared cost budget: the same load against a
/// large plan's bucket, first on one node on SQLite (the budget in
/// process), then on two nodes sharing one PostgreSQL database (the budget
/// in the database), the first killed with SIGKILL halfway. Every order
/// fulfilled exactly once in both, and the two-node run no slower than
/// twice the one-node run: a dead node's reservations, jobs put back for the
/// budget, or a shared bucket that never learns Shopify has room again
/// would stall the survivor.
async fn shared_budget(opts: &Options) -> Result<(RowResult, World)> {
    let n = size(opts, 600, 1_200);
    // Quick: a smaller bucket, so that it limits a smaller load too.
    let bucket = if opts.quick {
        ThrottleConfig {
            maximum_available: 5_000.0,
            ..LARGE_PLAN
        }
    } else {
        LARGE_PLAN
    };
    let mut r = RowResult::new(
        "shared-budget",
        Backend::Postgres,
        format!(
            "{n} webhooks; bucket {} at {}/s; 1 node (SQLite), then 2 nodes (PostgreSQL), one SIGKILLed halfway",
            bucket.maximum_available, bucket.restore_rate
        ),
    );
    let world_opts = WorldOptions {
        shopify_throttle: bucket,
        ..WorldOptions::default()
    };
    let one = {
        let mut world =
            World::start(&opts.bin, Backend::Sqlite, "budget-one", world_opts.clone()).await?;
        let node = world.node_with("single", None, &BUDGET_NODE_ENV).await?;
        world.seed(&node).await?;
        let run = budget_load(&world, vec![node], n).await;
        world.finish().await;
        run?
    };
    let mut world = World::start(&opts.bin, Backend::Postgres, "budget-two", world_opts).await?;
    let a = world.node_with("node-a", None, &BUDGET_NODE_ENV).await?;
    let b = world.node_with("node-b", None, &BUDGET_NODE_ENV).await?;
    world.seed(&a).await?;
    let two = budget_load(&world, vec![a, b], n).await?;
    r.figure("1 node (s)", format!("{:.1}", one.seconds));
    r.figure("2 nodes, 1 killed (s)", format!("{:.1}", two.seconds));
    r.figure(
        "THROTTLED 1 / 2",
        format!("{} / {}", one.throttled, two.throttled),
    );
    r.figure(
        "budget exhausted lines 1 / 2",
        format!("{} / {}", one.exhausted_lines, two.exhausted_lines),
    );
    r.figure(
        "fulfilled 1 / 2",
        format!(
            "{}/{} / {}/{}",
            one.verdict.complete, one.verdict.orders, two.verdict.complete, two.verdict.orders
        ),
    );
    r.figure(
        "duplicates 1 / 2",
        format!(
            "{} / {}",
            one.verdict.duplicate_fulfillments + one.verdict.extra_units,
            two.verdict.duplicate_fulfillments + two.verdict.extra_units
        ),
    );
    r.judge(&[
        (
            "every delivery acknowledged",
            one.stats.acknowledged == n && two.stats.acknowledged == n,
        ),
        (
            "one node: every unit fulfilled exactly once",
            one.verdict.exact(),
        ),
        (
            "two nodes: every unit fulfilled exactly once",
            two.verdict.exact(),
        ),
        (
            "two nodes (one killed) no slower than twice one node",
            two.seconds <= 2.0 * one.seconds,
        ),
    ]);
    r.verdict = Some(two.verdict);
    r.sender = Some(two.stats);
    Ok((r, world))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_of_urls() {
        for (url, want) in [
            ("postgres://postgres@127.0.0.1:5432/test", "127.0.0.1:5432"),
            (
                "postgres://u:p@db.example:6543/x?sslmode=disable",
                "db.example:6543",
            ),
            ("postgres://localhost/x", "localhost:5432"),
        ] {
            assert_eq!(url_host_port(url).unwrap().1, want, "{url}");
        }
    }
}
