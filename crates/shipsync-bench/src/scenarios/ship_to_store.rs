//! Scenario `ship-to-store`: Deposco webhook received → Shopify fulfillment
//! acknowledged, measured from outside shipsync.
//!
//! Target (docs/quality.md): p50 ≤ 50 ms, p99 ≤ 250 ms at 200 shipments/s
//! with the store answering at once. Reference: the scheduled-pull path
//! (default every 4 h), i.e. hours.
//!
//! `shipsync serve` runs as a child process on a fresh SQLite database. The
//! bench hosts the Shopify sandboxes in this process behind a recorder: the
//! instant each successful `fulfillmentCreate` response leaves the sandbox is
//! stored per tracking number. Each shipment (one order, one line, one
//! package, its own tracking number) is sent open-loop at a fixed rate as a
//! signed current-API webhook; **latency = fulfillment acknowledged − the
//! shipment's scheduled send time**, both read on this process's monotonic
//! clock. shipsync's own `ship_to_store` histogram (`/metrics`) is not used.
//!
//! Then the throttled store: a second merchant whose store's cost bucket is
//! small gets shipments at a rate its bucket cannot sustain while the first
//! (fast) store gets its usual load; the table shows the slow store's
//! backlog growing and draining, and the fast store's latency next to its
//! latency alone at the same rate.
//!
//! Per phase, beside the latency (issue 17): store requests and Shopify cost
//! points per shipment, as the sandbox charged them (the sum of each
//! answer's `actualQueryCost`); shipsync's CPU milliseconds per shipment
//! (utime + stime of the `serve` process from `/proc/<pid>/stat`, first send
//! → last acknowledgement, ÷ the shipments handled meanwhile, so idle time
//! within the phase is included); and the exactly-once check read from the
//! store's own orders afterwards (one fulfillment of the shipped unit with
//! the shipment's tracking number), with duplicates counted as fulfillments
//! beyond the first plus `fulfillmentCreate` requests for a shipment already
//! fulfilled (must be 0).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;
use shipsync_sandbox_deposco::{DeposcoSandbox, SandboxConfig};
use shipsync_sandbox_shopify::ThrottleConfig;

use crate::process::{Instance, Serve};
use crate::stats::{Percentiles, percentiles};
use crate::store::{
    Counters, ExactlyOnce, Sent, Store, connect_store, cpu_ms_per, prepare, send_open_loop,
    start_fast_store, start_store,
};
use crate::table::{Table, num, verdict_at_most};
use crate::{init_tls, rss};

pub const TARGET_P50_MS: f64 = 50.0;
pub const TARGET_P99_MS: f64 = 250.0;
pub const TARGET_RATE: f64 = 200.0;
/// How long shipsync's idle CPU is measured before the first phase.
pub const IDLE_WINDOW: Duration = Duration::from_secs(3);

#[derive(Debug, Clone)]
pub struct Throttle {
    /// The slow store's bucket.
    pub bucket: ThrottleConfig,
    /// Shipments/s to the slow store, and to the fast store meanwhile.
    pub slow_rate: f64,
    pub fast_rate: f64,
    pub secs: Duration,
}

#[derive(Debug, Clone)]
pub struct Options {
    pub shipsync: PathBuf,
    pub rates: Vec<f64>,
    pub secs: Duration,
    /// At most this many shipments per rate (the duration shrinks).
    pub max_shipments: usize,
    pub throttle: Option<Throttle>,
    /// How long to wait for the last fulfillments after sending.
    pub settle: Duration,
    pub verbose: bool,
}

impl Options {
    pub fn full(shipsync: PathBuf) -> Self {
        Self {
            shipsync,
            rates: vec![50.0, TARGET_RATE, 1000.0],
            secs: Duration::from_secs(10),
            max_shipments: 5000,
            throttle: Some(Throttle {
                bucket: ThrottleConfig {
                    maximum_available: 200.0,
                    restore_rate: 50.0,
                },
                slow_rate: 10.0,
                fast_rate: 50.0,
                secs: Duration::from_secs(10),
            }),
            settle: Duration::from_secs(180),
            verbose: true,
        }
    }

    pub fn quick(shipsync: PathBuf) -> Self {
        Self {
            rates: vec![20.0],
            secs: Duration::from_secs(1),
            throttle: Some(Throttle {
                bucket: ThrottleConfig {
                    maximum_available: 1000.0,
                    restore_rate: 100.0,
                },
                slow_rate: 10.0,
                fast_rate: 10.0,
                secs: Duration::from_secs(1),
            }),
            settle: Duration::from_secs(60),
            verbose: false,
            ..Self::full(shipsync)
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Phase {
    pub label: String,
    pub rate: f64,
    pub shipments: usize,
    pub webhooks_accepted: u64,
    pub webhook_latency: Percentiles,
    pub fulfilled: usize,
    /// Acknowledged − scheduled send, µs.
    pub latency: Percentiles,
    /// Last send → last fulfillment acknowledged, seconds.
    pub drain_secs: Option<f64>,
    pub throttled_answers: u64,
    pub store_requests: u64,
    /// Shopify cost points the store charged (sum of `actualQueryCost`).
    pub store_cost_points: u64,
    /// (seconds since the first send, shipments sent but not acknowledged).
    pub backlog: Vec<(f64, u64)>,
    pub peak_backlog: u64,
    /// CPU seconds during the phase (first send → last acknowledgement or
    /// timeout): shipsync, and this process (load generator + Shopify
    /// sandboxes validating every GraphQL document).
    pub shipsync_cpu_secs: Option<f64>,
    pub bench_cpu_secs: Option<f64>,
    /// What shipsync asked of the kernel in the same window: context
    /// switches, write calls (the WAL's frames, two calls each, and the
    /// sockets') and their bytes.
    pub shipsync_calls: Option<rss::Calls>,
    /// Shipments handled during the CPU window: this phase's, plus those of
    /// a phase run at the same time (the throttled store's).
    pub cpu_window_shipments: usize,
    /// Read from the store's orders after the phase.
    pub exactly_once: ExactlyOnce,
    /// `fulfillmentCreate` requests for a shipment already fulfilled.
    pub repeated_creates: u64,
}

impl Phase {
    pub fn requests_per_shipment(&self) -> f64 {
        self.store_requests as f64 / self.shipments.max(1) as f64
    }

    pub fn points_per_shipment(&self) -> f64 {
        self.store_cost_points as f64 / self.shipments.max(1) as f64
    }

    /// shipsync's CPU ms per shipment over the phase.
    pub fn cpu_ms_per_shipment(&self) -> Option<f64> {
        cpu_ms_per(self.shipsync_cpu_secs, self.cpu_window_shipments)
    }

    /// One of shipsync's [`rss::Calls`] per shipment over the phase.
    pub fn calls_per_shipment(&self, of: impl Fn(&rss::Calls) -> u64) -> Option<f64> {
        let c = self.shipsync_calls.as_ref()?;
        (self.cpu_window_shipments > 0).then(|| of(c) as f64 / self.cpu_window_shipments as f64)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub shipsync_binary: String,
    pub phases: Vec<Phase>,
    pub slow_bucket: Option<ThrottleConfig>,
    pub shipsync_peak_rss_kib: u64,
    /// shipsync's CPU seconds per second while idle (connected, no load),
    /// measured over [`IDLE_WINDOW`] before the first phase; included in
    /// the per-shipment figures, reported apart.
    pub shipsync_idle_cpu_per_sec: Option<f64>,
    pub verdict_p50: String,
    pub verdict_p99: String,
}

impl Report {
    pub fn check_complete(&self) -> Result<()> {
        for p in &self.phases {
            if p.fulfilled != p.shipments || p.webhooks_accepted != p.shipments as u64 {
                bail!(
                    "{}: {} shipments sent, {} webhooks accepted, {} fulfilled",
                    p.label,
                    p.shipments,
                    p.webhooks_accepted,
                    p.fulfilled
                );
            }
            if !p.exactly_once.ok() {
                bail!("{}: {}", p.label, p.exactly_once.summary());
            }
        }
        if self.phases.is_empty() {
            bail!("no phase ran");
        }
        Ok(())
    }

    pub fn table(&self) -> String {
        let mut out = String::from(
            "ship-to-store: signed webhook scheduled → Shopify sandbox fulfillmentCreate answered (measured outside shipsync), one order / line / package per shipment, open loop\n\n",
        );
        let mut t = Table::new([
            "phase",
            "rate (/s)",
            "shipments",
            "fulfilled",
            "p50 (ms)",
            "p99 (ms)",
            "max (ms)",
            "drain after last send (s)",
            "webhook p99 (ms)",
            "THROTTLED answers",
            "store requests per shipment",
            "cost points per shipment",
            "shipsync CPU ms per shipment",
            "shipsync context switches / write calls / KiB written per shipment",
            "CPU s: shipsync / bench+sandbox",
            "duplicate fulfillments",
        ]);
        for p in &self.phases {
            t.row([
                p.label.clone(),
                format!("{:.0}", p.rate),
                p.shipments.to_string(),
                p.fulfilled.to_string(),
                format!("{:.1}", p.latency.p50_ms()),
                format!("{:.1}", p.latency.p99_ms()),
                format!("{:.1}", p.latency.max_ms()),
                p.drain_secs.map_or("n/a".into(), |d| format!("{d:.2}")),
                format!("{:.1}", p.webhook_latency.p99_ms()),
                p.throttled_answers.to_string(),
                format!("{:.2}", p.requests_per_shipment()),
                format!("{:.1}", p.points_per_shipment()),
                num(p.cpu_ms_per_shipment(), 2),
                format!(
                    "{} / {} / {}",
                    num(p.calls_per_shipment(|c| c.context_switches), 1),
                    num(p.calls_per_shipment(|c| c.write_calls), 1),
                    num(p.calls_per_shipment(|c| c.write_bytes / 1024), 1)
                ),
                format!(
                    "{} / {}",
                    p.shipsync_cpu_secs
                        .map_or("n/a".into(), |c| format!("{c:.1}")),
                    p.bench_cpu_secs.map_or("n/a".into(), |c| format!("{c:.1}"))
                ),
                (p.exactly_once.duplicates as u64 + p.repeated_creates).to_string(),
            ]);
        }
        out.push_str(&t.render());
        if let Some(idle) = self.shipsync_idle_cpu_per_sec {
            out.push_str(&format!(
                "\nshipsync idle (stores connected, no load, {:.0} s before the first phase): {:.2} CPU ms per second; the per-shipment figures include it (at 50/s: {:.3} ms per shipment)\n",
                IDLE_WINDOW.as_secs_f64(),
                idle * 1000.0,
                idle * 1000.0 / 50.0
            ));
        }
        if let (Some(b), Some(slow)) = (
            &self.slow_bucket,
            self.phases
                .iter()
                .find(|p| p.label.starts_with("throttled")),
        ) {
            out.push_str(&format!(
                "\nslow store: cost bucket {:.0} points, restoring {:.0}/s; backlog (sent − acknowledged) over time: {}; peak {}\n",
                b.maximum_available,
                b.restore_rate,
                slow.backlog
                    .iter()
                    .step_by(slow.backlog.len().div_ceil(24).max(1))
                    .chain(slow.backlog.last())
                    .map(|(t, n)| format!("{t:.1}s:{n}"))
                    .collect::<Vec<_>>()
                    .join(" "),
                slow.peak_backlog
            ));
        }
        out.push('\n');
        let mut v = Table::new(["figure", "value", "target", "verdict"]);
        if let Some(p) = self
            .phases
            .iter()
            .find(|p| p.rate == TARGET_RATE && p.label.starts_with("fast"))
        {
            v.row([
                format!("p50 at {TARGET_RATE}/s"),
                format!("{:.1} ms", p.latency.p50_ms()),
                format!("≤ {TARGET_P50_MS} ms"),
                self.verdict_p50.clone(),
            ]);
            v.row([
                format!("p99 at {TARGET_RATE}/s"),
                format!("{:.1} ms", p.latency.p99_ms()),
                format!("≤ {TARGET_P99_MS} ms"),
                self.verdict_p99.clone(),
            ]);
        }
        let alone = self
            .phases
            .iter()
            .find(|p| p.label.starts_with("fast") && !p.label.contains("next to"));
        if let (Some(beside), Some(t)) = (
            self.phases.iter().find(|p| p.label.contains("next to")),
            self.phases
                .iter()
                .find(|p| p.label.starts_with("throttled")),
        ) {
            let same_rate_alone = self
                .phases
                .iter()
                .find(|p| {
                    p.label.starts_with("fast")
                        && !p.label.contains("next to")
                        && p.rate == beside.rate
                })
                .or(alone);
            if let Some(a) = same_rate_alone {
                v.row([
                    "fast store p99: beside the throttled store ÷ alone".into(),
                    format!(
                        "{:.1} ms ÷ {:.1} ms = {:.2}",
                        beside.latency.p99_ms(),
                        a.latency.p99_ms(),
                        beside.latency.p99_ms() / a.latency.p99_ms().max(1e-9)
                    ),
                    "≈ 1".into(),
                    format!(
                        "slow store: {} THROTTLED answers, peak backlog {}, drained {} s after its last send",
                        t.throttled_answers,
                        t.peak_backlog,
                        t.drain_secs.map_or("n/a".into(), |d| format!("{d:.1}"))
                    ),
                ]);
            }
        }
        out.push_str(&v.render());
        out
    }
}

struct Ctx<'a> {
    opts: &'a Options,
    serve: &'a Serve,
    deposco: &'a DeposcoSandbox,
    next_id: u64,
}

impl Ctx<'_> {
    fn say(&self, msg: String) {
        if self.opts.verbose {
            eprintln!("[ship-to-store] {msg}");
        }
    }
}

/// Waits until every id of `sent` is acknowledged by `store` (or `settle`),
/// sampling the backlog every 125 ms from `t0`.
#[allow(clippy::too_many_arguments)] // one call per phase kind; a struct would only rename them
async fn finish(
    label: &str,
    rate: f64,
    store: &Store,
    sent: Sent,
    ids: &[u64],
    t0: Instant,
    mut backlog: Vec<(f64, u64)>,
    settle: Duration,
    before: Counters,
) -> Phase {
    let deadline = Instant::now() + settle;
    loop {
        let acked = store.rec.count(ids);
        backlog.push((t0.elapsed().as_secs_f64(), (ids.len() - acked) as u64));
        if acked == ids.len() || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(125)).await;
    }
    let at = sent.at.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let mut lat = Vec::new();
    let mut last_ack: Option<Instant> = None;
    for id in ids {
        if let (Some(s), Some(a)) = (at.get(id), store.rec.get(*id)) {
            lat.push(a.saturating_duration_since(*s).as_micros() as u64);
            last_ack = Some(last_ack.map_or(a, |l: Instant| l.max(a)));
        }
    }
    let last_send = at.values().max().copied();
    let fulfilled = lat.len();
    let counted = store.rec.counters().since(before);
    Phase {
        label: label.to_owned(),
        rate,
        shipments: ids.len(),
        webhooks_accepted: sent.outcome.accepted_total,
        webhook_latency: sent.outcome.latency,
        fulfilled,
        latency: percentiles(&mut lat),
        drain_secs: match (last_send, last_ack) {
            (Some(s), Some(a)) if fulfilled == ids.len() => {
                Some(a.saturating_duration_since(s).as_secs_f64())
            }
            _ => None,
        },
        throttled_answers: counted.throttled,
        store_requests: counted.requests,
        store_cost_points: counted.cost,
        peak_backlog: backlog.iter().map(|(_, n)| *n).max().unwrap_or(0),
        backlog,
        shipsync_cpu_secs: None,
        bench_cpu_secs: None,
        shipsync_calls: None,
        cpu_window_shipments: ids.len(),
        exactly_once: ExactlyOnce::check(store, ids),
        repeated_creates: counted.repeats,
    }
}

/// CPU seconds of shipsync and of this process so far, and shipsync's
/// calls.
#[derive(Clone, Copy)]
struct Usage {
    shipsync: Option<f64>,
    bench: Option<f64>,
    calls: Option<rss::Calls>,
}

fn cpu(pid: u32) -> Usage {
    Usage {
        shipsync: rss::cpu_secs(pid),
        bench: rss::own_cpu_secs(),
        calls: rss::calls(pid),
    }
}

fn set_cpu(p: &mut Phase, before: Usage, after: Usage) {
    p.shipsync_cpu_secs = after.shipsync.zip(before.shipsync).map(|(a, b)| a - b);
    p.bench_cpu_secs = after.bench.zip(before.bench).map(|(a, b)| a - b);
    p.shipsync_calls = after.calls.zip(before.calls).map(|(a, b)| a.since(b));
}

async fn fast_phase(ctx: &mut Ctx<'_>, fast: &Store, path: &str, rate: f64) -> Result<Phase> {
    let n =
        ((rate * ctx.opts.secs.as_secs_f64()).round() as usize).clamp(1, ctx.opts.max_shipments);
    let items = prepare(fast, ctx.deposco, ctx.next_id, n);
    ctx.next_id += n as u64 + 1000;
    let ids: Vec<u64> = items.iter().map(|(id, _)| *id).collect();
    let before = fast.rec.counters();
    let pid = ctx.serve.pid().context("no pid")?;
    let cpu_before = cpu(pid);
    let t0 = Instant::now();
    let sent = send_open_loop(ctx.serve.addr()?, path, items, rate).await?;
    let mut p = finish(
        &format!("fast store alone, {rate:.0}/s"),
        rate,
        fast,
        sent,
        &ids,
        t0,
        Vec::new(),
        ctx.opts.settle,
        before,
    )
    .await;
    set_cpu(&mut p, cpu_before, cpu(pid));
    ctx.say(format!(
        "{}: {}/{} fulfilled, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; {:.2} requests, {:.1} points, {} CPU ms, {} context switches, {} write calls per shipment; {}",
        p.label,
        p.fulfilled,
        p.shipments,
        p.latency.p50_ms(),
        p.latency.p99_ms(),
        p.latency.max_ms(),
        p.requests_per_shipment(),
        p.points_per_shipment(),
        num(p.cpu_ms_per_shipment(), 2),
        num(p.calls_per_shipment(|c| c.context_switches), 1),
        num(p.calls_per_shipment(|c| c.write_calls), 1),
        p.exactly_once.summary()
    ));
    Ok(p)
}

pub async fn run(opts: &Options) -> Result<Report> {
    init_tls();
    let deposco = DeposcoSandbox::new(SandboxConfig::default());
    let deposco_running = deposco
        .clone()
        .start("127.0.0.1:0".parse()?)
        .await
        .context("cannot start the Deposco sandbox")?;
    // The fast store answers at once: no cost limit to speak of.
    let fast = start_fast_store().await?;
    let slow = match &opts.throttle {
        Some(t) => Some(start_store(t.bucket).await?),
        None => None,
    };
    let instance = Instance::sqlite(&opts.shipsync, "ship-to-store")?;
    let serve = instance.serve().await?;
    let result = async {
        let (fast_path, _) =
            connect_store(&serve, &deposco_running.url, &fast, "Bench Fast").await?;
        let slow_path = match &slow {
            Some(s) => Some(
                connect_store(&serve, &deposco_running.url, s, "Bench Slow")
                    .await?
                    .0,
            ),
            None => None,
        };
        let pid = serve.pid().context("no pid")?;
        let idle_before = rss::cpu_secs(pid);
        tokio::time::sleep(IDLE_WINDOW).await;
        let idle = rss::cpu_secs(pid)
            .zip(idle_before)
            .map(|(a, b)| (a - b) / IDLE_WINDOW.as_secs_f64());
        let mut ctx = Ctx {
            opts,
            serve: &serve,
            deposco: &deposco,
            next_id: 100_001,
        };
        let mut phases = Vec::new();
        for &rate in &opts.rates {
            phases.push(fast_phase(&mut ctx, &fast, &fast_path, rate).await?);
        }
        if let (Some(t), Some(slow), Some(slow_path)) = (&opts.throttle, &slow, &slow_path) {
            let n_slow = (t.slow_rate * t.secs.as_secs_f64()).round().max(1.0) as usize;
            let n_fast = (t.fast_rate * t.secs.as_secs_f64()).round().max(1.0) as usize;
            let slow_items = prepare(slow, &deposco, ctx.next_id, n_slow);
            ctx.next_id += n_slow as u64 + 1000;
            let fast_items = prepare(&fast, &deposco, ctx.next_id, n_fast);
            ctx.next_id += n_fast as u64 + 1000;
            let slow_ids: Vec<u64> = slow_items.iter().map(|(id, _)| *id).collect();
            let fast_ids: Vec<u64> = fast_items.iter().map(|(id, _)| *id).collect();
            let slow_before = slow.rec.counters();
            let fast_before = fast.rec.counters();
            let addr = serve.addr()?;
            let cpu_before = cpu(pid);
            let t0 = Instant::now();
            // Backlog of the slow store while sending.
            let sampling = Arc::new(std::sync::atomic::AtomicBool::new(true));
            let sampler = {
                let sampling = sampling.clone();
                let rec = slow.rec.clone();
                let ids = slow_ids.clone();
                let rate = t.slow_rate;
                tokio::spawn(async move {
                    let mut series = Vec::new();
                    while sampling.load(Ordering::Relaxed) {
                        let el = t0.elapsed().as_secs_f64();
                        let sent = ((el * rate) as usize + 1).min(ids.len());
                        let acked = ids[..sent].iter().filter(|id| rec.get(**id).is_some()).count();
                        series.push((el, (sent - acked) as u64));
                        tokio::time::sleep(Duration::from_millis(125)).await;
                    }
                    series
                })
            };
            let (s_sent, f_sent) = tokio::join!(
                send_open_loop(addr, slow_path, slow_items, t.slow_rate),
                send_open_loop(addr, &fast_path, fast_items, t.fast_rate)
            );
            sampling.store(false, Ordering::Relaxed);
            let series = sampler.await.unwrap_or_default();
            let (s_sent, f_sent) = (s_sent?, f_sent?);
            let fast_label = format!("fast store next to the throttled one, {:.0}/s", t.fast_rate);
            let slow_label = format!("throttled store, {:.0}/s", t.slow_rate);
            let (mut fast_phase, mut slow_phase) = tokio::join!(
                finish(
                    &fast_label,
                    t.fast_rate,
                    &fast,
                    f_sent,
                    &fast_ids,
                    t0,
                    Vec::new(),
                    opts.settle,
                    fast_before,
                ),
                finish(
                    &slow_label,
                    t.slow_rate,
                    slow,
                    s_sent,
                    &slow_ids,
                    t0,
                    series,
                    opts.settle,
                    slow_before,
                )
            );
            let cpu_after = cpu(pid);
            set_cpu(&mut fast_phase, cpu_before, cpu_after);
            set_cpu(&mut slow_phase, cpu_before, cpu_after);
            let both = fast_phase.shipments + slow_phase.shipments;
            fast_phase.cpu_window_shipments = both;
            slow_phase.cpu_window_shipments = both;
            for p in [&fast_phase, &slow_phase] {
                ctx.say(format!(
                    "{}: {}/{} fulfilled, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms, {} THROTTLED, peak backlog {}",
                    p.label,
                    p.fulfilled,
                    p.shipments,
                    p.latency.p50_ms(),
                    p.latency.p99_ms(),
                    p.latency.max_ms(),
                    p.throttled_answers,
                    p.peak_backlog
                ));
            }
            phases.push(fast_phase);
            phases.push(slow_phase);
        }
        let peak = rss::read(pid).map_or(0, |r| r.hwm_kib);
        Ok::<_, anyhow::Error>((phases, peak, idle))
    }
    .await;
    let stopped = serve.stop().await;
    deposco_running.shutdown().await;
    let (phases, peak, idle) = result?;
    stopped?;
    let target = phases
        .iter()
        .find(|p| p.rate == TARGET_RATE && p.label.starts_with("fast store alone"));
    Ok(Report {
        shipsync_binary: opts.shipsync.display().to_string(),
        verdict_p50: target.map_or("not measured".into(), |p| {
            verdict_at_most(Some(p.latency.p50_ms()), TARGET_P50_MS, " ms")
        }),
        verdict_p99: target.map_or("not measured".into(), |p| {
            verdict_at_most(Some(p.latency.p99_ms()), TARGET_P99_MS, " ms")
        }),
        phases,
        slow_bucket: opts.throttle.as_ref().map(|t| t.bucket),
        shipsync_peak_rss_kib: peak,
        shipsync_idle_cpu_per_sec: idle,
    })
}
