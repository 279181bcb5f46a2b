//! Scenario `wave`: a burst of shipments for one store on the Standard
//! plan's budget, drained against the bound the store's cost bucket sets.
//!
//! Target (issue 17): 2,000 shipments drain within 1.5× the bound, the bound
//! being shipments × the points of one `fulfillmentCreate` (10) ÷ the
//! bucket's restore rate (100 points/s on the Standard plan, docs/shopify.md):
//! 200 s for 2,000. Only the mutation is counted in the bound; any read a
//! shipment needs shows as a ratio above 1.
//!
//! `shipsync serve` runs as a child process on a fresh SQLite database; the
//! store is a Shopify sandbox in the bench process behind the recorder of
//! [`crate::store`], with the cost bucket of the options (default: the
//! sandbox's Standard plan, 1,000 points restoring 100/s; docs/shopify.md
//! names only the restore rate, `--bucket` changes the size). Each shipment
//! is one order of one unit, one line, one package with its own tracking
//! number, sent as a signed current-API Deposco webhook; all of them as fast
//! as ingest takes them (closed loop, a 503 is retried as Deposco would).
//! **Drain time = first send → last `fulfillmentCreate` acknowledged** by
//! the sandbox, on the bench's monotonic clock.
//!
//! Two variants, each on its own store and merchant, one after the other:
//!
//! - **a**: the orders exist only in the store; shipsync reads the store's
//!   open fulfillment orders ahead, in the background at half the restore
//!   rate, and matches each shipment to its order from them (the mutation
//!   alone; by name — a search, then the mutation — for one not read
//!   ahead). The bench waits, after creating the orders, until shipsync's
//!   `shipsync_store_read_ahead_fulfillment_orders` holds them all (or
//!   gives up after a limit, and says so): orders are placed well before
//!   they ship. That read's requests and points are reported on their own,
//!   and together with the wave's.
//! - **b**: the orders go store → shipsync → Deposco first, through the
//!   Sales Orders channel (its runs started by the bench, the store
//!   refusing shipsync's `http://` webhook address as Shopify does), then
//!   their shipments come back: shipsync fulfills from the order view it
//!   recorded when it sent the order (the mutation alone). Sending the
//!   orders is set-up, not measured: it goes at Deposco's ≈4 requests/s
//!   (2 per order), about N ÷ 2 seconds.
//!
//! Before each wave the bench waits until the bucket is full again and
//! measures shipsync's idle CPU meanwhile. Reported per variant: drain time
//! ÷ bound, store requests, cost points (as the sandbox charged them) and
//! `THROTTLED` answers per shipment, shipsync's CPU ms per shipment (and
//! the idle share of it), and the exactly-once check read from the store's
//! orders: every order exactly one fulfillment of its unit with its
//! tracking number, no duplicate.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde::Serialize;
use serde_json::json;
use shipsync_sandbox_deposco::{DeposcoSandbox, SandboxConfig as DeposcoConfig};
use shipsync_sandbox_shopify::ThrottleConfig;

use crate::load::{self, Delivered};
use crate::process::{Instance, Serve};
use crate::store::{
    ExactlyOnce, Store, connect_store, cpu_ms_per, order_spec, prepare, render, start_store,
    tracking, webhook,
};
use crate::table::{Table, num, verdict_at_most};
use crate::{init_tls, rss};

/// Issue 17: the wave drains within 1.5× the bound.
pub const TARGET_RATIO: f64 = 1.5;
/// Cost points of one `fulfillmentCreate` (a mutation: 10).
pub const FULFILLMENT_CREATE_POINTS: f64 = 10.0;
/// A wave still draining after this many bounds (plus the settle time) is
/// reported as not drained.
pub const DEADLINE_BOUNDS: f64 = 10.0;
/// The Sales Orders channel's Deposco order numbers in variant b.
const PREFIX: &str = "WV-";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Variant {
    /// Orders only in the store, read ahead.
    A,
    /// Orders sent store → shipsync → Deposco first.
    B,
}

impl Variant {
    fn label(self) -> &'static str {
        match self {
            Variant::A => "a: orders only in the store (read ahead)",
            Variant::B => "b: orders sent to Deposco by shipsync first",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Options {
    pub shipsync: PathBuf,
    pub shipments: usize,
    /// The store's cost bucket.
    pub bucket: ThrottleConfig,
    pub variants: Vec<Variant>,
    /// Connections sending the webhooks.
    pub concurrency: usize,
    /// How long to wait beyond [`DEADLINE_BOUNDS`] × the bound before giving up.
    pub settle: Duration,
    /// Seconds between progress lines on stderr (0: none).
    pub progress_every: Duration,
    pub verbose: bool,
}

impl Options {
    pub fn full(shipsync: PathBuf) -> Self {
        Self {
            shipsync,
            shipments: 2000,
            bucket: ThrottleConfig::default(),
            variants: vec![Variant::A, Variant::B],
            concurrency: 32,
            settle: Duration::from_secs(120),
            progress_every: Duration::from_secs(5),
            verbose: true,
        }
    }

    pub fn quick(shipsync: PathBuf) -> Self {
        Self {
            // The Standard plan's bucket: a smaller one than a search's
            // requested cost (a few hundred points) would refuse it forever.
            shipments: 40,
            concurrency: 8,
            settle: Duration::from_secs(60),
            progress_every: Duration::ZERO,
            verbose: false,
            ..Self::full(shipsync)
        }
    }

    /// Shipments × 10 points ÷ the restore rate, seconds.
    pub fn bound_secs(&self) -> f64 {
        self.shipments as f64 * FULFILLMENT_CREATE_POINTS / self.bucket.restore_rate
    }
}

/// What shipsync's read ahead of the store's open fulfillment orders took,
/// from the orders' creation until it held them all.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ReadAhead {
    pub secs: f64,
    /// Fulfillment orders held at the end (all of them unless it gave up).
    pub held: u64,
    pub store_requests: u64,
    pub store_cost_points: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub variant: Variant,
    pub label: String,
    pub shipments: usize,
    /// Variant b: creating the orders and sending them to Deposco, seconds.
    pub setup_secs: f64,
    /// Variant a: shipsync's read ahead of the orders before the wave.
    pub read_ahead: Option<ReadAhead>,
    pub delivered: Delivered,
    pub fulfilled: usize,
    /// First send → last fulfillment acknowledged, seconds (`None`: not all
    /// were fulfilled in time).
    pub drain_secs: Option<f64>,
    pub bound_secs: f64,
    /// (bound − a full bucket's worth) ÷ the restore rate: no client can
    /// drain faster than this.
    pub floor_secs: f64,
    pub store_requests: u64,
    pub store_cost_points: u64,
    pub throttled_answers: u64,
    /// shipsync's CPU over the wave (first send → last acknowledgement).
    pub shipsync_cpu_secs: Option<f64>,
    /// shipsync's CPU per second while idle, just before the wave.
    pub idle_cpu_per_sec: Option<f64>,
    pub bench_cpu_secs: Option<f64>,
    pub exactly_once: ExactlyOnce,
    /// `fulfillmentCreate` requests for a shipment already fulfilled.
    pub repeated_creates: u64,
    /// The store's requests during the wave per GraphQL operation (the
    /// sandbox's own request log).
    pub store_operations: std::collections::BTreeMap<String, u64>,
    /// (seconds since the first send, fulfillments acknowledged).
    pub progress: Vec<(f64, usize)>,
}

impl Run {
    pub fn ratio(&self) -> Option<f64> {
        self.drain_secs.map(|d| d / self.bound_secs)
    }

    fn per(&self, v: u64) -> f64 {
        v as f64 / self.shipments.max(1) as f64
    }

    pub fn cpu_ms_per_shipment(&self) -> Option<f64> {
        cpu_ms_per(self.shipsync_cpu_secs, self.shipments)
    }

    /// The part of [`Self::cpu_ms_per_shipment`] shipsync spends idle.
    pub fn idle_ms_per_shipment(&self) -> Option<f64> {
        let idle = self.idle_cpu_per_sec? * self.drain_secs?;
        cpu_ms_per(Some(idle), self.shipments)
    }

    pub fn duplicates(&self) -> u64 {
        self.exactly_once.duplicates as u64 + self.repeated_creates
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub shipsync_binary: String,
    pub bucket: ThrottleConfig,
    pub runs: Vec<Run>,
    pub shipsync_peak_rss_kib: u64,
}

impl Report {
    /// Every shipment accepted and fulfilled exactly once, in every run.
    pub fn check_complete(&self) -> Result<()> {
        if self.runs.is_empty() {
            bail!("no wave ran");
        }
        for r in &self.runs {
            if r.delivered.ok != r.shipments as u64 || r.fulfilled != r.shipments {
                bail!(
                    "wave {}: {} shipments, {} webhooks accepted, {} fulfilled",
                    r.label,
                    r.shipments,
                    r.delivered.ok,
                    r.fulfilled
                );
            }
            if !r.exactly_once.ok() || r.repeated_creates > 0 {
                bail!(
                    "wave {}: {}; {} fulfillmentCreate for a shipment already fulfilled",
                    r.label,
                    r.exactly_once.summary(),
                    r.repeated_creates
                );
            }
        }
        Ok(())
    }

    pub fn table(&self) -> String {
        let mut out = format!(
            "wave: shipments for one store, cost bucket {:.0} points restoring {:.0}/s, sent as fast as ingest takes them; drain = first send → last fulfillmentCreate answered (measured outside shipsync); bound = shipments × {FULFILLMENT_CREATE_POINTS:.0} points ÷ {:.0}/s\n\n",
            self.bucket.maximum_available, self.bucket.restore_rate, self.bucket.restore_rate
        );
        let mut t = Table::new([
            "variant",
            "shipments",
            "fulfilled",
            "webhooks sent in (s)",
            "drain (s)",
            "bound (s)",
            "drain ÷ bound",
            "store requests per shipment",
            "cost points per shipment",
            "THROTTLED answers",
            "shipsync CPU ms per shipment (idle part)",
            "CPU s: shipsync / bench+sandbox",
            "exactly once",
            "duplicates",
        ]);
        for r in &self.runs {
            t.row([
                r.label.clone(),
                r.shipments.to_string(),
                r.fulfilled.to_string(),
                format!("{:.2}", r.delivered.secs),
                num(r.drain_secs, 1),
                format!("{:.1}", r.bound_secs),
                num(r.ratio(), 2),
                format!("{:.2}", r.per(r.store_requests)),
                format!("{:.1}", r.per(r.store_cost_points)),
                r.throttled_answers.to_string(),
                format!(
                    "{} ({})",
                    num(r.cpu_ms_per_shipment(), 2),
                    num(r.idle_ms_per_shipment(), 2)
                ),
                format!(
                    "{} / {}",
                    num(r.shipsync_cpu_secs, 1),
                    num(r.bench_cpu_secs, 1)
                ),
                format!("{} / {}", r.exactly_once.fulfilled_once, r.shipments),
                r.duplicates().to_string(),
            ]);
        }
        out.push_str(&t.render());
        for r in &self.runs {
            out.push_str(&format!(
                "\nvariant {}: store requests by operation: {}",
                variant_letter(r.variant),
                r.store_operations
                    .iter()
                    .map(|(op, n)| format!("{op} {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        for r in &self.runs {
            if let Some(a) = &r.read_ahead {
                out.push_str(&format!(
                    "\nvariant {}: read ahead before the wave (orders placed before they ship): {}/{} fulfillment orders held after {:.1} s, {:.2} requests and {:.1} points per shipment; with the wave's: {:.2} requests, {:.1} points per shipment",
                    variant_letter(r.variant),
                    a.held,
                    r.shipments,
                    a.secs,
                    r.per(a.store_requests),
                    r.per(a.store_cost_points),
                    r.per(r.store_requests + a.store_requests),
                    r.per(r.store_cost_points + a.store_cost_points),
                ));
            }
        }
        out.push_str("\n\n");
        let mut v = Table::new(["figure", "value", "target", "verdict"]);
        for r in &self.runs {
            v.row([
                format!("drain ÷ bound, variant {}", variant_letter(r.variant)),
                format!(
                    "{} s ÷ {:.1} s = {} (floor with a full bucket: {:.1} s = {:.2})",
                    num(r.drain_secs, 1),
                    r.bound_secs,
                    num(r.ratio(), 2),
                    r.floor_secs,
                    r.floor_secs / r.bound_secs
                ),
                format!("≤ {TARGET_RATIO}×"),
                verdict_at_most(r.ratio(), TARGET_RATIO, "×"),
            ]);
        }
        out.push_str(&v.render());
        out
    }
}

fn variant_letter(v: Variant) -> &'static str {
    match v {
        Variant::A => "a",
        Variant::B => "b",
    }
}

struct Ctx<'a> {
    opts: &'a Options,
    serve: &'a Serve,
    deposco: &'a DeposcoSandbox,
    deposco_url: &'a str,
}

impl Ctx<'_> {
    fn say(&self, msg: String) {
        if self.opts.verbose {
            eprintln!("[wave] {msg}");
        }
    }
}

/// Orders of `connection_id` whose status is `open` (sent to Deposco, the
/// view recorded).
async fn open_orders(serve: &Serve, connection_id: &str) -> Result<usize> {
    let mut open = 0;
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/api/v1/orders?connection_id={connection_id}&limit=500");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page = serve.api("GET", &path, None, 200).await?;
        open += page["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|o| o["status"] == "open")
            .count();
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return Ok(open),
        }
    }
}

/// Variant a's set-up: waits until shipsync holds the `n` orders' open
/// fulfillment orders read ahead (its metric), counting the store's
/// requests and points meanwhile; gives up after the read's expected time
/// at half the restore rate, twice over, plus two minutes.
async fn wait_read_ahead(ctx: &Ctx<'_>, store: &Store, n: usize) -> Result<ReadAhead> {
    const METRIC: &str = "shipsync_store_read_ahead_fulfillment_orders";
    let before = store.rec.counters();
    let start = Instant::now();
    let limit = Duration::from_secs_f64(
        2.0 * n as f64 * 5.0 / (ctx.opts.bucket.restore_rate / 2.0).max(1.0) + 120.0,
    );
    let mut last_say = Instant::now();
    let held = loop {
        let held = ctx.serve.metric(METRIC).await?.unwrap_or(0.0) as u64;
        if held >= n as u64 || start.elapsed() > limit {
            break held;
        }
        if last_say.elapsed() >= Duration::from_secs(10) {
            last_say = Instant::now();
            ctx.say(format!("read ahead: {held}/{n} fulfillment orders held"));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let c = store.rec.counters().since(before);
    let r = ReadAhead {
        secs: start.elapsed().as_secs_f64(),
        held,
        store_requests: c.requests,
        store_cost_points: c.cost,
    };
    ctx.say(format!(
        "read ahead: {}/{n} fulfillment orders held after {:.1} s, {} requests, {} points{}",
        r.held,
        r.secs,
        r.store_requests,
        r.store_cost_points,
        if r.held < n as u64 {
            " (gave up waiting)"
        } else {
            ""
        }
    ));
    Ok(r)
}

/// Variant b's set-up: the orders `ids` in the store, the connection's Sales
/// Orders channel on, its runs started until every order is a Deposco sales
/// order and `open` in shipsync; then the shipments' webhook bodies.
async fn send_orders_first(
    ctx: &Ctx<'_>,
    store: &Store,
    connection_id: &str,
    ids: &[u64],
) -> Result<Vec<(u64, bytes::Bytes)>> {
    let serve = ctx.serve;
    serve
        .api(
            "PATCH",
            &format!("/api/v1/connections/{connection_id}"),
            Some(&json!({"order_prefix": PREFIX})),
            200,
        )
        .await?;
    for id in ids {
        store.sandbox.create_order(order_spec(*id));
    }
    serve
        .api(
            "PATCH",
            &format!("/api/v1/connections/{connection_id}/channels/sales_orders"),
            Some(&json!({"enabled": true})),
            200,
        )
        .await?;
    let runs = format!("/api/v1/connections/{connection_id}/channels/sales_orders/runs");
    let numbers: Vec<String> = ids.iter().map(|id| format!("{PREFIX}{id}")).collect();
    let start = Instant::now();
    let limit = Duration::from_secs_f64(ids.len() as f64 + 120.0);
    let mut last_say = Instant::now();
    let mut run: Option<String> = None;
    // One run reads every order and queues them all for Deposco; another is
    // started only when a finished run left orders unsent and nothing has
    // reached Deposco for a while (each run reads the whole store again).
    let (mut arrived, mut progress_at) = (0, Instant::now());
    loop {
        let received: std::collections::HashSet<String> = ctx
            .deposco
            .sales_orders()
            .into_iter()
            .map(|o| o.number)
            .collect();
        let in_deposco = numbers.iter().filter(|n| received.contains(*n)).count();
        let open = if in_deposco == ids.len() {
            open_orders(serve, connection_id).await?
        } else {
            0
        };
        if open >= ids.len() {
            break;
        }
        if start.elapsed() > limit {
            bail!(
                "variant b set-up: {in_deposco} of {} orders in Deposco, {open} open in shipsync after {:.0} s",
                ids.len(),
                start.elapsed().as_secs_f64()
            );
        }
        if in_deposco > arrived {
            (arrived, progress_at) = (in_deposco, Instant::now());
        }
        let finished = match &run {
            None => true,
            Some(id) => {
                let r = serve.api("GET", &format!("{runs}/{id}"), None, 200).await?;
                r["status"] == "succeeded" || r["status"] == "failed"
            }
        };
        let stalled = run.is_none() || progress_at.elapsed() > Duration::from_secs(30);
        if finished && stalled && in_deposco < ids.len() {
            let (status, body) = serve.api_answer("POST", &runs, None).await?;
            match status {
                202 => {
                    run = Some(
                        body["id"]
                            .as_str()
                            .ok_or_else(|| anyhow!("no run id in {body}"))?
                            .to_owned(),
                    )
                }
                409 => {}
                _ => bail!("starting the Sales Orders run: HTTP {status}: {body}"),
            }
        }
        if ctx.opts.progress_every > Duration::ZERO && last_say.elapsed() >= ctx.opts.progress_every
        {
            last_say = Instant::now();
            ctx.say(format!(
                "variant b set-up: {in_deposco}/{} orders in Deposco after {:.0} s (≈4 req/s, 2 per order)",
                ids.len(),
                start.elapsed().as_secs_f64()
            ));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Ok(ids
        .iter()
        .map(|id| {
            let spec = ctx
                .deposco
                .ship_order_spec(&format!("{PREFIX}{id}"), &tracking(*id))
                .expect("the sales order was just seen in the sandbox");
            (*id, render(ctx.deposco, spec))
        })
        .collect())
}

async fn run_variant(ctx: &Ctx<'_>, variant: Variant, first_id: u64) -> Result<Run> {
    let opts = ctx.opts;
    let store = start_store(opts.bucket).await?;
    let name = format!("Bench Wave {}", variant_letter(variant).to_uppercase());
    let (path, connection_id) = connect_store(ctx.serve, ctx.deposco_url, &store, &name).await?;
    let ids: Vec<u64> = (first_id..first_id + opts.shipments as u64).collect();
    let setup = Instant::now();
    let items = match variant {
        Variant::A => prepare(&store, ctx.deposco, first_id, opts.shipments),
        Variant::B => send_orders_first(ctx, &store, &connection_id, &ids).await?,
    };
    let read_ahead = match variant {
        Variant::A => Some(wait_read_ahead(ctx, &store, opts.shipments).await?),
        Variant::B => None,
    };
    let setup_secs = setup.elapsed().as_secs_f64();
    let pid = ctx.serve.pid().context("no pid")?;
    // Whatever the set-up took from the bucket comes back; shipsync's idle
    // CPU is measured meanwhile.
    let refill = Duration::from_secs_f64(
        (opts.bucket.maximum_available / opts.bucket.restore_rate).clamp(1.0, 60.0),
    );
    ctx.say(format!(
        "{}: {} shipments ready (set-up {setup_secs:.1} s); {:.0} s for the bucket to refill",
        variant.label(),
        opts.shipments,
        refill.as_secs_f64()
    ));
    // The store must also have been quiet that long (no set-up work left).
    let mut quiet = false;
    let mut idle_cpu_per_sec = None;
    for _ in 0..12 {
        let (idle_before, asked) = (rss::cpu_secs(pid), store.rec.counters().requests);
        tokio::time::sleep(refill).await;
        idle_cpu_per_sec = rss::cpu_secs(pid)
            .zip(idle_before)
            .map(|(a, b)| (a - b) / refill.as_secs_f64());
        if store.rec.counters().requests == asked {
            quiet = true;
            break;
        }
        ctx.say("the store still gets requests from the set-up; waiting".into());
    }
    if !quiet {
        bail!("the store never went quiet before the wave");
    }

    let before = store.rec.counters();
    let log_before = store.sandbox.requests().len();
    let (cpu_before, bench_before) = (rss::cpu_secs(pid), rss::own_cpu_secs());
    let requests = items
        .iter()
        .map(|(id, body)| webhook(&path, *id, body))
        .collect();
    let t0 = Instant::now();
    let watching = Arc::new(AtomicBool::new(true));
    let progress = {
        let watching = watching.clone();
        let rec = store.rec.clone();
        let ids = ids.clone();
        let every = opts.progress_every;
        let verbose = opts.verbose;
        let bound = opts.bound_secs();
        tokio::spawn(async move {
            let mut series = Vec::new();
            let mut last_say = Instant::now();
            while watching.load(Ordering::Relaxed) {
                let el = t0.elapsed().as_secs_f64();
                let acked = rec.count(&ids);
                series.push((el, acked));
                if verbose && every > Duration::ZERO && last_say.elapsed() >= every {
                    last_say = Instant::now();
                    let c = rec.counters().since(before);
                    eprintln!(
                        "[wave] {el:.0} s: {acked}/{} fulfilled (bound {bound:.0} s), {} store requests, {} points, {} THROTTLED",
                        ids.len(),
                        c.requests,
                        c.cost,
                        c.throttled
                    );
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            series
        })
    };
    let delivered = load::send_all(ctx.serve.addr()?, requests, opts.concurrency).await;
    let deadline = t0 + Duration::from_secs_f64(DEADLINE_BOUNDS * opts.bound_secs()) + opts.settle;
    while store.rec.count(&ids) < ids.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (cpu_after, bench_after) = (rss::cpu_secs(pid), rss::own_cpu_secs());
    watching.store(false, Ordering::Relaxed);
    let mut series = progress.await.unwrap_or_default();
    let delivered = delivered?;
    let counted = store.rec.counters().since(before);
    let acks: Vec<Instant> = ids.iter().filter_map(|id| store.rec.get(*id)).collect();
    let fulfilled = acks.len();
    series.push((t0.elapsed().as_secs_f64(), fulfilled));
    let last = acks.iter().max().copied();
    let exactly_once = ExactlyOnce::check(&store, &ids);
    let mut store_operations = std::collections::BTreeMap::new();
    for r in store.sandbox.requests().into_iter().skip(log_before) {
        *store_operations
            .entry(r.operation_name.unwrap_or_else(|| "?".into()))
            .or_insert(0u64) += 1;
    }
    let bound_secs = opts.bound_secs();
    let run = Run {
        variant,
        label: variant.label().to_owned(),
        shipments: opts.shipments,
        setup_secs,
        read_ahead,
        delivered,
        fulfilled,
        drain_secs: last
            .filter(|_| fulfilled == ids.len())
            .map(|l| l.saturating_duration_since(t0).as_secs_f64()),
        bound_secs,
        floor_secs: ((opts.shipments as f64 * FULFILLMENT_CREATE_POINTS
            - opts.bucket.maximum_available)
            / opts.bucket.restore_rate)
            .max(0.0),
        store_requests: counted.requests,
        store_cost_points: counted.cost,
        throttled_answers: counted.throttled,
        shipsync_cpu_secs: cpu_after.zip(cpu_before).map(|(a, b)| a - b),
        idle_cpu_per_sec,
        bench_cpu_secs: bench_after.zip(bench_before).map(|(a, b)| a - b),
        exactly_once,
        repeated_creates: counted.repeats,
        store_operations,
        progress: thin(series, 200),
    };
    ctx.say(format!(
        "{}: {}/{} fulfilled in {} s (bound {:.1} s, ratio {}); {:.2} requests, {:.1} points per shipment, {} THROTTLED; {} CPU ms per shipment; {}",
        run.label,
        run.fulfilled,
        run.shipments,
        num(run.drain_secs, 1),
        run.bound_secs,
        num(run.ratio(), 2),
        run.per(run.store_requests),
        run.per(run.store_cost_points),
        run.throttled_answers,
        num(run.cpu_ms_per_shipment(), 2),
        run.exactly_once.summary()
    ));
    Ok(run)
}

/// At most `n` points of `series`, evenly spaced, the last kept.
fn thin<T: Copy>(series: Vec<T>, n: usize) -> Vec<T> {
    if series.len() <= n || n < 2 {
        return series;
    }
    let step = (series.len() - 1) as f64 / (n - 1) as f64;
    (0..n)
        .map(|i| series[((i as f64 * step).round() as usize).min(series.len() - 1)])
        .collect()
}

pub async fn run(opts: &Options) -> Result<Report> {
    init_tls();
    if opts.shipments == 0 || opts.bucket.restore_rate <= 0.0 || opts.variants.is_empty() {
        bail!("wave needs shipments, a positive restore rate and a variant");
    }
    let deposco = DeposcoSandbox::new(DeposcoConfig::default());
    let running = deposco
        .clone()
        .start("127.0.0.1:0".parse()?)
        .await
        .context("cannot start the Deposco sandbox")?;
    let instance = Instance::sqlite(&opts.shipsync, "wave")?;
    let serve = instance.serve().await?;
    let result = async {
        let ctx = Ctx {
            opts,
            serve: &serve,
            deposco: &deposco,
            deposco_url: &running.url,
        };
        let mut runs = Vec::new();
        for (k, v) in opts.variants.iter().enumerate() {
            runs.push(run_variant(&ctx, *v, 500_001 + k as u64 * 100_000).await?);
        }
        let peak = rss::read(serve.pid().context("no pid")?).map_or(0, |r| r.hwm_kib);
        Ok::<_, anyhow::Error>((runs, peak))
    }
    .await;
    let stopped = serve.stop().await;
    running.shutdown().await;
    let (runs, peak) = result?;
    stopped?;
    Ok(Report {
        shipsync_binary: opts.shipsync.display().to_string(),
        bucket: opts.bucket,
        runs,
        shipsync_peak_rss_kib: peak,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_is_the_mutations_points_over_the_restore_rate() {
        let o = Options::full(PathBuf::from("shipsync"));
        assert_eq!(o.shipments, 2000);
        assert_eq!(o.bound_secs(), 200.0);
        let q = Options::quick(PathBuf::from("shipsync"));
        assert_eq!(q.bound_secs(), 4.0);
    }

    #[test]
    fn thins_to_n_keeping_the_ends() {
        let v: Vec<u32> = (0..1000).collect();
        let t = thin(v, 11);
        assert_eq!(t.len(), 11);
        assert_eq!((t[0], t[10]), (0, 999));
        assert_eq!(thin(vec![1, 2], 11), vec![1, 2]);
    }
}
