//! Scenario `order-latency`: an order created in the Shopify store → its
//! sales order created in Deposco, measured from outside shipsync; through
//! Shopify's order webhooks, next to the Sales Orders channel's pull.
//!
//! Target (issue 14): p99 ≤ 1 s with the hold period at 0 (the default).
//! Reference, measured in the same run: the same number of orders at the
//! same rate brought by the pull instead.
//!
//! `shipsync serve` runs as a child process on a fresh SQLite database. The
//! bench hosts the two Shopify sandboxes and the Deposco sandbox in this
//! process. Deposco's router sits behind a recorder: the instant a `POST
//! /orders/salesOrders` is answered 201 (the sales order now exists) is
//! stored per Deposco number. Orders are created open-loop at a steady rate
//! by calling the store sandbox directly; **latency = the 201 − the instant
//! before the order was created in the store**, both on this process's
//! monotonic clock. shipsync's own `sent_at` is not used.
//!
//! Two connections of one merchant (one Deposco account, so one ≈4 req/s
//! budget, as in production), measured one after the other:
//!
//! - **webhooks**: a store that delivers order webhooks to shipsync's
//!   loopback URL (the sandbox's `allow_http_webhooks`); the Sales Orders
//!   channel on, so shipsync subscribed it; no pull runs at all (the channel
//!   has no schedule by default, and the bench starts none). Every order
//!   must come back `first_seen_via = webhook`.
//! - **pull**: a store that refuses shipsync's `http://` address, as Shopify
//!   does, so only the channel's pull brings orders. The bench starts the
//!   channel's run (`POST …/channels/sales_orders/runs`, what a schedule
//!   does) at a fixed interval: **measured**, not computed. What a 5- or
//!   15-minute schedule would add is computed from the interval alone (the
//!   wait for the next run: half of it on average, all of it at worst) and
//!   labelled so.
//!
//! Beside the latency: when the store's `orders/create` delivery was
//! answered 2xx (the Shopify sandbox's delivery log, wall clock, against the
//! wall-clock instant of creation in this same process), Deposco requests
//! per order (the sandbox's own count, 429s included), and the CPU seconds
//! of shipsync and of this process (load, the sandboxes validating every
//! GraphQL document) during each phase: everything shares the 2 cores.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use axum::body::Body;
use axum::extract::{Request as AxumRequest, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use http_body_util::BodyExt;
use serde::Serialize;
use serde_json::{Value, json};
use shipsync_sandbox_deposco::{DeposcoSandbox, SandboxConfig as DeposcoConfig};
use shipsync_sandbox_shopify::{
    LineSpec, OrderSpec, RunningShopify, SandboxConfig as ShopifyConfig, ShopifySandbox,
};

use crate::process::{Instance, Serve};
use crate::stats::{Percentiles, percentiles};
use crate::table::{Table, verdict_at_most};
use crate::webhooks::SHARED_SECRET;
use crate::{init_tls, rss};

/// Issue 14: an order reaches Deposco within 1 s at p99, hold period 0.
pub const TARGET_P99_MS: f64 = 1000.0;
const TOKEN: &str = "shpat_bench_orders";
/// The legacy custom app's API secret key: signs the store's order webhooks.
const API_SECRET: &str = "shpss_bench_orders_secret";
/// Schedules whose wait is computed (not measured) next to the measured pull.
const COMPUTED_SCHEDULES_MIN: [u64; 2] = [5, 15];

#[derive(Debug, Clone)]
pub struct Options {
    pub shipsync: PathBuf,
    /// Orders per path.
    pub orders: usize,
    /// Orders created per second in the store, steady (open loop).
    pub rate: f64,
    /// The pull path: the channel's run started this often; `None` skips it.
    pub pull_every: Option<Duration>,
    /// The Deposco sandbox's account limit, requests/s (0: none). shipsync
    /// keeps to ≈4 req/s per account whatever the sandbox allows.
    pub deposco_rate: f64,
    /// How long to wait for the last orders after the last creation (the
    /// pull path adds one interval).
    pub settle: Duration,
    pub verbose: bool,
}

impl Options {
    pub fn full(shipsync: PathBuf) -> Self {
        Self {
            shipsync,
            orders: 200,
            rate: 1.0,
            pull_every: Some(Duration::from_secs(60)),
            deposco_rate: 4.0,
            settle: Duration::from_secs(120),
            verbose: true,
        }
    }

    pub fn quick(shipsync: PathBuf) -> Self {
        Self {
            orders: 10,
            // Deposco's budget: 4 req/s ÷ 2 requests per order.
            rate: 2.0,
            pull_every: Some(Duration::from_secs(1)),
            settle: Duration::from_secs(60),
            verbose: false,
            ..Self::full(shipsync)
        }
    }
}

/// When each sales order was created in Deposco (a 201 left the sandbox),
/// by Deposco number.
#[derive(Clone, Default)]
struct Arrivals {
    at: Arc<Mutex<HashMap<String, Instant>>>,
}

impl Arrivals {
    fn get(&self, number: &str) -> Option<Instant> {
        self.at
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(number)
            .copied()
    }

    fn count(&self, numbers: &[String]) -> usize {
        let map = self.at.lock().unwrap_or_else(|p| p.into_inner());
        numbers.iter().filter(|n| map.contains_key(*n)).count()
    }
}

async fn record(State(arr): State<Arrivals>, req: AxumRequest, next: Next) -> Response {
    let create = req.method() == Method::POST && req.uri().path().ends_with("/orders/salesOrders");
    let resp = next.run(req).await;
    if !create || resp.status() != StatusCode::CREATED {
        return resp;
    }
    // The handler has stored the order: it exists in Deposco from here.
    let at = Instant::now();
    let (parts, body) = resp.into_parts();
    let bytes = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    if let Some(number) = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|v| v["number"].as_str().map(str::to_owned))
    {
        arr.at
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(number)
            .or_insert(at);
    }
    Response::from_parts(parts, Body::from(bytes))
}

struct Deposco {
    sandbox: DeposcoSandbox,
    url: String,
    arrivals: Arrivals,
    _task: tokio::task::JoinHandle<()>,
}

async fn start_deposco(rate: f64) -> Result<Deposco> {
    let sandbox = DeposcoSandbox::new(DeposcoConfig {
        rate_limit_per_sec: rate,
        ..DeposcoConfig::default()
    });
    let arrivals = Arrivals::default();
    let app = sandbox.router().layer(axum::middleware::from_fn_with_state(
        arrivals.clone(),
        record,
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(Deposco {
        sandbox,
        url,
        arrivals,
        _task: task,
    })
}

/// A store; `webhooks`: it accepts shipsync's `http://` loopback address.
async fn start_store(webhooks: bool) -> Result<RunningShopify> {
    ShopifySandbox::new(ShopifyConfig {
        access_token: TOKEN.into(),
        api_secret: API_SECRET.into(),
        allow_http_webhooks: webhooks,
        ..ShopifyConfig::default()
    })
    .start("127.0.0.1:0".parse()?)
    .await
    .context("cannot start a Shopify sandbox")
}

/// A connection of `merchant_id` to `store` with its Sales Orders channel
/// on and Deposco numbers `prefix` + name; returns its id once shipsync has
/// checked the store's order webhooks (subscribed, or refused).
async fn connect(
    serve: &Serve,
    merchant_id: &str,
    store: &RunningShopify,
    name: &str,
    prefix: &str,
) -> Result<String> {
    let c = serve
        .api(
            "POST",
            "/api/v1/connections",
            Some(&json!({
                "name": name,
                "merchant_id": merchant_id,
                "enabled": true,
                "store": {"platform": "shopify", "shop_url": store.url, "access_token": TOKEN,
                          "api_secret": API_SECRET},
            })),
            201,
        )
        .await?;
    let id = c["id"]
        .as_str()
        .ok_or_else(|| anyhow!("no connection id in {c}"))?
        .to_owned();
    serve
        .api(
            "PATCH",
            &format!("/api/v1/connections/{id}"),
            Some(&json!({"order_prefix": prefix})),
            200,
        )
        .await?;
    serve
        .api(
            "PATCH",
            &format!("/api/v1/connections/{id}/channels/sales_orders"),
            Some(&json!({"enabled": true})),
            200,
        )
        .await?;
    let start = Instant::now();
    loop {
        let c = serve
            .api("GET", &format!("/api/v1/connections/{id}"), None, 200)
            .await?;
        let hooks = &c["order_webhooks"];
        if hooks["subscribed"] == true || hooks["error"].is_string() {
            return Ok(id);
        }
        if start.elapsed() > Duration::from_secs(30) {
            bail!("{name}: order webhooks not checked after 30 s: {hooks}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A paid order of one line that Deposco accepts (the sandbox's sample
/// ship-to, a ship method).
fn order_spec(name: &str) -> OrderSpec {
    OrderSpec {
        name: name.into(),
        lines: vec![LineSpec {
            sku: "SKU-BENCH".into(),
            quantity: 1,
            ..Default::default()
        }],
        email: Some("bench@example.com".into()),
        shipping_line: Some("Standard".into()),
        ..Default::default()
    }
}

/// One order the bench created: its Deposco number and when it was created.
struct Created {
    name: String,
    number: String,
    at: Instant,
    wall: jiff::Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Path {
    Webhooks,
    Pull,
}

#[derive(Debug, Clone, Serialize)]
pub struct Phase {
    pub path: Path,
    pub label: String,
    pub rate: f64,
    pub orders: usize,
    /// Orders whose sales order was created in Deposco before the deadline.
    pub reached: usize,
    /// Deposco 201 − creation in the store, µs.
    pub latency: Percentiles,
    /// The store's `orders/create` delivery answered 2xx − creation, µs
    /// (wall clock; webhooks only).
    pub webhook_answered: Option<Percentiles>,
    /// The orders' `first_seen_via` in shipsync's API.
    pub first_seen_via_webhook: usize,
    pub first_seen_via_poll: usize,
    /// The pull path's interval between runs, seconds.
    pub pull_every_secs: Option<f64>,
    /// Runs started, and ticks refused because the previous run was still
    /// going (409 `run_in_progress`).
    pub pull_runs: usize,
    pub pull_ticks_refused: usize,
    /// When each run was started (202), seconds after the first creation.
    pub pull_runs_at_secs: Vec<f64>,
    /// Every order: created (seconds after the first creation) and its
    /// latency (ms), `None` when it did not reach Deposco.
    pub samples: Vec<(f64, Option<f64>)>,
    pub deposco_requests: u64,
    pub deposco_rate_limited: u64,
    /// GraphQL requests the phase's store answered (subscription checks
    /// included), those answered `THROTTLED`, and the count per operation.
    pub store_requests: usize,
    pub store_throttled: usize,
    pub store_operations: std::collections::BTreeMap<String, usize>,
    /// First creation → last arrival (or the deadline), seconds.
    pub wall_secs: f64,
    pub shipsync_cpu_secs: Option<f64>,
    pub bench_cpu_secs: Option<f64>,
}

impl Phase {
    fn deposco_per_order(&self) -> f64 {
        self.deposco_requests as f64 / self.orders.max(1) as f64
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub shipsync_binary: String,
    /// The Deposco sandbox's account limit, requests/s (0: none).
    pub deposco_rate_limit: f64,
    pub phases: Vec<Phase>,
    pub shipsync_peak_rss_kib: u64,
    pub verdict_p99: String,
}

impl Report {
    /// Requests/s one Deposco account allows shipsync: the sandbox's limit,
    /// or shipsync's own ≈4 req/s when the sandbox has none.
    fn budget_per_sec(&self) -> f64 {
        if self.deposco_rate_limit > 0.0 {
            self.deposco_rate_limit.min(4.0)
        } else {
            4.0
        }
    }

    pub fn phase(&self, path: Path) -> Option<&Phase> {
        self.phases.iter().find(|p| p.path == path)
    }

    /// Every order reached Deposco, each by the path measured.
    pub fn check_complete(&self) -> Result<()> {
        if self.phases.is_empty() {
            bail!("no phase ran");
        }
        for p in &self.phases {
            if p.reached != p.orders {
                bail!(
                    "{}: {} orders created, {} reached Deposco",
                    p.label,
                    p.orders,
                    p.reached
                );
            }
            let by_path = match p.path {
                Path::Webhooks => p.first_seen_via_webhook,
                Path::Pull => p.first_seen_via_poll,
            };
            if by_path != p.orders {
                bail!(
                    "{}: {} of {} orders first seen via the path measured (webhook {}, poll {})",
                    p.label,
                    by_path,
                    p.orders,
                    p.first_seen_via_webhook,
                    p.first_seen_via_poll
                );
            }
        }
        Ok(())
    }

    pub fn table(&self) -> String {
        let mut out = format!(
            "order-latency: order created in the Shopify sandbox → sales order created in the Deposco sandbox (201 answered; measured outside shipsync), one line per order, hold period 0, open loop; Deposco limited to {}\n\n",
            if self.deposco_rate_limit > 0.0 {
                format!("{} req/s", self.deposco_rate_limit)
            } else {
                "nothing (shipsync still keeps ≈4 req/s)".into()
            }
        );
        let mut t = Table::new([
            "path",
            "rate (/s)",
            "orders",
            "reached Deposco",
            "p50 (ms)",
            "p95 (ms)",
            "p99 (ms)",
            "max (ms)",
            "mean (ms)",
            "webhook answered p50 / p99 (ms)",
            "first seen via webhook / poll",
            "Deposco requests per order",
            "store requests per order (THROTTLED)",
            "CPU s: shipsync / bench+sandboxes",
        ]);
        for p in &self.phases {
            t.row([
                p.label.clone(),
                format!("{:.1}", p.rate),
                p.orders.to_string(),
                p.reached.to_string(),
                format!("{:.1}", p.latency.p50_ms()),
                format!("{:.1}", p.latency.p95_ms()),
                format!("{:.1}", p.latency.p99_ms()),
                format!("{:.1}", p.latency.max_ms()),
                format!("{:.1}", p.latency.mean_ms()),
                p.webhook_answered.map_or("—".into(), |w| {
                    format!("{:.1} / {:.1}", w.p50_ms(), w.p99_ms())
                }),
                format!("{} / {}", p.first_seen_via_webhook, p.first_seen_via_poll),
                format!("{:.2}", p.deposco_per_order()),
                format!(
                    "{:.2} ({})",
                    p.store_requests as f64 / p.orders.max(1) as f64,
                    p.store_throttled
                ),
                format!(
                    "{} / {}",
                    p.shipsync_cpu_secs
                        .map_or("n/a".into(), |c| format!("{c:.1}")),
                    p.bench_cpu_secs.map_or("n/a".into(), |c| format!("{c:.1}"))
                ),
            ]);
        }
        out.push_str(&t.render());
        out.push('\n');
        let mut v = Table::new(["figure", "value", "target / basis", "verdict"]);
        let hooks = self.phase(Path::Webhooks);
        let pull = self.phase(Path::Pull);
        if let Some(w) = hooks {
            v.row([
                "p99 through webhooks, hold 0".into(),
                format!("{:.1} ms", w.latency.p99_ms()),
                format!("≤ {TARGET_P99_MS} ms"),
                self.verdict_p99.clone(),
            ]);
        }
        if let (Some(w), Some(p)) = (hooks, pull) {
            let every = p.pull_every_secs.unwrap_or(0.0);
            for (what, wv, pv) in [
                ("p50", w.latency.p50_ms(), p.latency.p50_ms()),
                ("p99", w.latency.p99_ms(), p.latency.p99_ms()),
            ] {
                v.row([
                    format!("{what}: pull every {every:.0} s ÷ webhooks"),
                    format!(
                        "{:.1} s ÷ {:.3} s = {:.0}×",
                        pv / 1000.0,
                        wv / 1000.0,
                        pv / wv.max(1e-9)
                    ),
                    "measured, same run".into(),
                    "—".into(),
                ]);
            }
            for minutes in COMPUTED_SCHEDULES_MIN {
                let secs = (minutes * 60) as f64;
                let batch = p.rate * secs;
                v.row([
                    format!("pull every {minutes} min"),
                    format!(
                        "wait for the run: mean {:.0} s, worst {:.0} s; then up to {:.0} s to send its {batch:.0} orders",
                        secs / 2.0,
                        secs,
                        batch * p.deposco_per_order() / self.budget_per_sec()
                    ),
                    "computed from the schedule, not measured".into(),
                    format!(
                        "{:.2} Deposco requests per order (measured) at {} req/s",
                        p.deposco_per_order(),
                        self.budget_per_sec()
                    ),
                ]);
            }
        }
        if let Some(w) = hooks {
            let capacity = self.budget_per_sec() / w.deposco_per_order().max(1e-9);
            v.row([
                "orders/s offered ÷ Deposco's budget".into(),
                format!("{:.1} ÷ {capacity:.1} = {:.2}", w.rate, w.rate / capacity),
                format!(
                    "{} req/s ÷ {:.2} requests per order",
                    self.budget_per_sec(),
                    w.deposco_per_order()
                ),
                "above 1 a queue forms and the latency is the queue's".into(),
            ]);
        }
        out.push_str(&v.render());
        out
    }
}

struct Ctx<'a> {
    opts: &'a Options,
    serve: &'a Serve,
    deposco: &'a Deposco,
}

impl Ctx<'_> {
    fn say(&self, msg: String) {
        if self.opts.verbose {
            eprintln!("[order-latency] {msg}");
        }
    }
}

/// Starts the connection's Sales Orders run at `t0 + k × every` (k = 1,
/// 2, …), what a schedule does; a tick while the previous run still goes is
/// refused (409 `run_in_progress`) and counted. Runs until dropped.
async fn tick(
    serve: &Serve,
    connection_id: &str,
    t0: Instant,
    every: Duration,
    started: &Mutex<Vec<f64>>,
    refused: &AtomicUsize,
) -> Result<()> {
    let path = format!("/api/v1/connections/{connection_id}/channels/sales_orders/runs");
    for k in 1u32.. {
        tokio::time::sleep_until((t0 + every * k).into()).await;
        match serve.api_answer("POST", &path, None).await? {
            (202, _) => started
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(t0.elapsed().as_secs_f64()),
            (409, _) => {
                refused.fetch_add(1, Ordering::Relaxed);
            }
            (status, body) => bail!("starting the pull: HTTP {status}: {body}"),
        }
    }
    Ok(())
}

/// `first_seen_via` of the connection's orders: (webhook, poll), among `names`.
async fn first_seen(
    serve: &Serve,
    connection_id: &str,
    names: &[String],
) -> Result<(usize, usize)> {
    let wanted: std::collections::HashSet<&str> = names.iter().map(String::as_str).collect();
    let (mut webhook, mut poll) = (0, 0);
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/api/v1/orders?connection_id={connection_id}&limit=500");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page = serve.api("GET", &path, None, 200).await?;
        for o in page["items"].as_array().into_iter().flatten() {
            if !o["name"].as_str().is_some_and(|n| wanted.contains(n)) {
                continue;
            }
            match o["first_seen_via"].as_str() {
                Some("webhook") => webhook += 1,
                Some("poll") => poll += 1,
                _ => {}
            }
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return Ok((webhook, poll)),
        }
    }
}

/// CPU seconds of (shipsync, this process) so far.
fn cpu(pid: u32) -> (Option<f64>, Option<f64>) {
    (rss::cpu_secs(pid), rss::own_cpu_secs())
}

async fn run_phase(
    ctx: &Ctx<'_>,
    path: Path,
    store: &RunningShopify,
    connection_id: &str,
    prefix: &str,
    first_id: u64,
) -> Result<Phase> {
    let opts = ctx.opts;
    let pid = ctx.serve.pid().context("no pid")?;
    let requests_before = ctx.deposco.sandbox.request_count();
    let store_before = store.sandbox.requests().len();
    let limited_before = ctx.deposco.sandbox.rate_limited_count();
    let cpu_before = cpu(pid);
    let label = match (path, opts.pull_every) {
        (Path::Webhooks, _) => "webhooks, hold 0".to_owned(),
        (Path::Pull, Some(every)) => format!("pull, run every {:.0} s", every.as_secs_f64()),
        (Path::Pull, None) => bail!("the pull path needs an interval"),
    };
    let t0 = Instant::now();
    let (started, refused) = (Mutex::new(Vec::new()), AtomicUsize::new(0));
    let creating = async {
        let mut created = Vec::with_capacity(opts.orders);
        for k in 0..opts.orders {
            tokio::time::sleep_until((t0 + Duration::from_secs_f64(k as f64 / opts.rate)).into())
                .await;
            let id = first_id + k as u64;
            let name = format!("#{id}");
            let (at, wall) = (Instant::now(), jiff::Timestamp::now());
            store.sandbox.create_order(order_spec(&name));
            created.push(Created {
                number: format!("{prefix}{id}"),
                name,
                at,
                wall,
            });
        }
        let numbers: Vec<String> = created.iter().map(|c| c.number.clone()).collect();
        let deadline = Instant::now() + opts.settle + opts.pull_every.unwrap_or_default();
        while ctx.deposco.arrivals.count(&numbers) < numbers.len() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        created
    };
    let ticking = async {
        match (path, opts.pull_every) {
            (Path::Pull, Some(every)) => {
                tick(ctx.serve, connection_id, t0, every, &started, &refused).await
            }
            _ => std::future::pending().await,
        }
    };
    let created = tokio::select! {
        created = creating => created,
        Err(e) = ticking => return Err(e.context("the pull's runs")),
    };
    let cpu_after = cpu(pid);
    let mut lat = Vec::new();
    let mut samples = Vec::with_capacity(created.len());
    let mut last = t0;
    for c in &created {
        let arrived = ctx.deposco.arrivals.get(&c.number);
        if let Some(a) = arrived {
            lat.push(a.saturating_duration_since(c.at).as_micros() as u64);
            last = last.max(a);
        }
        samples.push((
            c.at.saturating_duration_since(t0).as_secs_f64(),
            arrived.map(|a| a.saturating_duration_since(c.at).as_secs_f64() * 1000.0),
        ));
    }
    let runs_at = started.into_inner().unwrap_or_else(|p| p.into_inner());
    let store_requests: Vec<_> = store
        .sandbox
        .requests()
        .into_iter()
        .skip(store_before)
        .collect();
    let mut store_operations = std::collections::BTreeMap::new();
    for r in &store_requests {
        *store_operations
            .entry(r.operation_name.clone().unwrap_or_else(|| "?".into()))
            .or_insert(0) += 1;
    }
    let reached = lat.len();
    let webhook_answered = (path == Path::Webhooks).then(|| {
        let mut answered: HashMap<String, jiff::Timestamp> = HashMap::new();
        for d in store.sandbox.webhook_deliveries() {
            if d.topic == "orders/create"
                && d.succeeded()
                && let Some(name) = d.body["name"].as_str()
            {
                let e = answered.entry(name.to_owned()).or_insert(d.at);
                *e = (*e).min(d.at);
            }
        }
        let mut v: Vec<u64> = created
            .iter()
            .filter_map(|c| {
                let at = answered.get(&c.name)?;
                Some(at.duration_since(c.wall).as_micros().max(0) as u64)
            })
            .collect();
        percentiles(&mut v)
    });
    let names: Vec<String> = created.iter().map(|c| c.name.clone()).collect();
    let (via_webhook, via_poll) = first_seen(ctx.serve, connection_id, &names).await?;
    let phase = Phase {
        path,
        label,
        rate: opts.rate,
        orders: created.len(),
        reached,
        latency: percentiles(&mut lat),
        webhook_answered,
        first_seen_via_webhook: via_webhook,
        first_seen_via_poll: via_poll,
        pull_every_secs: (path == Path::Pull)
            .then(|| opts.pull_every.map(|e| e.as_secs_f64()))
            .flatten(),
        pull_runs: runs_at.len(),
        pull_ticks_refused: refused.load(Ordering::Relaxed),
        pull_runs_at_secs: runs_at,
        samples,
        deposco_requests: ctx.deposco.sandbox.request_count() - requests_before,
        deposco_rate_limited: ctx.deposco.sandbox.rate_limited_count() - limited_before,
        store_requests: store_requests.len(),
        store_throttled: store_requests
            .iter()
            .filter(|r| r.error_codes.iter().any(|c| c == "THROTTLED"))
            .count(),
        store_operations,
        wall_secs: last.saturating_duration_since(t0).as_secs_f64(),
        shipsync_cpu_secs: cpu_after.0.zip(cpu_before.0).map(|(a, b)| a - b),
        bench_cpu_secs: cpu_after.1.zip(cpu_before.1).map(|(a, b)| a - b),
    };
    ctx.say(format!(
        "{}: {}/{} reached Deposco, p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms, max {:.1} ms; first seen via webhook {} / poll {}; {} pull runs",
        phase.label,
        phase.reached,
        phase.orders,
        phase.latency.p50_ms(),
        phase.latency.p95_ms(),
        phase.latency.p99_ms(),
        phase.latency.max_ms(),
        phase.first_seen_via_webhook,
        phase.first_seen_via_poll,
        phase.pull_runs
    ));
    Ok(phase)
}

pub async fn run(opts: &Options) -> Result<Report> {
    init_tls();
    if opts.orders == 0 || opts.rate <= 0.0 {
        bail!("order-latency needs at least one order and a positive rate");
    }
    let deposco = start_deposco(opts.deposco_rate).await?;
    let hooked = start_store(true).await?;
    let pulled = start_store(false).await?;
    let instance = Instance::sqlite(&opts.shipsync, "order-latency")?;
    let serve = instance.serve().await?;
    let result = async {
        let (merchant_id, _) = serve
            .webhook_merchant("Bench Orders", &deposco.url, SHARED_SECRET)
            .await?;
        let hooked_id = connect(&serve, &merchant_id, &hooked, "Bench webhooks", "WH-").await?;
        let ctx = Ctx {
            opts,
            serve: &serve,
            deposco: &deposco,
        };
        ctx.say(format!(
            "webhooks: {} orders at {}/s; store subscribed: {:?}",
            opts.orders,
            opts.rate,
            hooked
                .sandbox
                .webhook_subscriptions()
                .iter()
                .map(|s| s.topic.clone())
                .collect::<Vec<_>>()
        ));
        let mut phases =
            vec![run_phase(&ctx, Path::Webhooks, &hooked, &hooked_id, "WH-", 300_001).await?];
        if opts.pull_every.is_some() {
            let pulled_id = connect(&serve, &merchant_id, &pulled, "Bench pull", "PL-").await?;
            ctx.say(format!(
                "pull: {} orders at {}/s, a run every {:?}",
                opts.orders,
                opts.rate,
                opts.pull_every.unwrap_or_default()
            ));
            phases.push(run_phase(&ctx, Path::Pull, &pulled, &pulled_id, "PL-", 400_001).await?);
        }
        let pid = serve.pid().context("no pid")?;
        let peak = rss::read(pid).map_or(0, |r| r.hwm_kib);
        Ok::<_, anyhow::Error>((phases, peak))
    }
    .await;
    let stopped = serve.stop().await;
    let (phases, peak) = result?;
    stopped?;
    let verdict_p99 = phases
        .iter()
        .find(|p| p.path == Path::Webhooks)
        .map_or("not measured".into(), |p| {
            verdict_at_most(Some(p.latency.p99_ms()), TARGET_P99_MS, " ms")
        });
    Ok(Report {
        shipsync_binary: opts.shipsync.display().to_string(),
        deposco_rate_limit: opts.deposco_rate,
        phases,
        shipsync_peak_rss_kib: peak,
        verdict_p99,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phase(path: Path, latencies_ms: &[u64]) -> Phase {
        let mut v: Vec<u64> = latencies_ms.iter().map(|ms| ms * 1000).collect();
        let n = v.len();
        Phase {
            path,
            label: match path {
                Path::Webhooks => "webhooks, hold 0".into(),
                Path::Pull => "pull, run every 60 s".into(),
            },
            rate: 1.0,
            orders: n,
            reached: n,
            latency: percentiles(&mut v),
            webhook_answered: None,
            first_seen_via_webhook: if path == Path::Webhooks { n } else { 0 },
            first_seen_via_poll: if path == Path::Pull { n } else { 0 },
            pull_every_secs: (path == Path::Pull).then_some(60.0),
            pull_runs: 1,
            pull_ticks_refused: 0,
            pull_runs_at_secs: vec![0.0],
            samples: Vec::new(),
            deposco_requests: 2 * n as u64,
            deposco_rate_limited: 0,
            store_requests: 3 * n,
            store_throttled: 0,
            store_operations: Default::default(),
            wall_secs: 1.0,
            shipsync_cpu_secs: None,
            bench_cpu_secs: None,
        }
    }

    fn report(phases: Vec<Phase>) -> Report {
        Report {
            shipsync_binary: "shipsync".into(),
            deposco_rate_limit: 4.0,
            phases,
            shipsync_peak_rss_kib: 0,
            verdict_p99: "met".into(),
        }
    }

    #[test]
    fn complete_only_when_every_order_came_by_its_path() {
        let ok = report(vec![
            phase(Path::Webhooks, &[10, 20]),
            phase(Path::Pull, &[30_000, 60_000]),
        ]);
        ok.check_complete().expect("complete");

        let mut missing = ok.clone();
        missing.phases[0].reached = 1;
        assert!(missing.check_complete().is_err());

        // An order the pull found is not a measurement of the webhook path.
        let mut pulled = ok.clone();
        pulled.phases[0].first_seen_via_webhook = 1;
        pulled.phases[0].first_seen_via_poll = 1;
        assert!(pulled.check_complete().is_err());

        assert!(report(Vec::new()).check_complete().is_err());
    }

    #[test]
    fn table_sets_the_pull_beside_the_webhooks() {
        let r = report(vec![
            phase(Path::Webhooks, &[10, 20]),
            phase(Path::Pull, &[30_000, 60_000]),
        ]);
        let t = r.table();
        assert!(t.contains("p99: pull every 60 s ÷ webhooks"), "{t}");
        assert!(t.contains("60.0 s ÷ 0.020 s = 3000×"), "{t}");
        // 5 minutes at 1 order/s: 300 orders × 2 requests ÷ 4 req/s.
        assert!(
            t.contains("mean 150 s, worst 300 s; then up to 150 s to send its 300 orders"),
            "{t}"
        );
        assert!(t.contains("1.0 ÷ 2.0 = 0.50"), "{t}");
    }
}
