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

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use axum::body::Body;
use axum::extract::{Request as AxumRequest, State};
use axum::middleware::Next;
use axum::response::Response;
use bytes::Bytes;
use http_body_util::BodyExt;
use serde::Serialize;
use serde_json::json;
use shipsync_sandbox_deposco::{
    DeposcoSandbox, LineSpec, PackageSpec, SandboxConfig, Shape, ShipmentSpec,
};
use shipsync_sandbox_shopify::{OrderSpec, ShopifySandbox, ThrottleConfig};

use crate::load::{self, Factory, Outcome, Request};
use crate::process::{Instance, Serve};
use crate::stats::{Percentiles, percentiles};
use crate::table::{Table, verdict_at_most};
use crate::webhooks::{SHARED_SECRET, signed_headers};
use crate::{init_tls, rss};

pub const TARGET_P50_MS: f64 = 50.0;
pub const TARGET_P99_MS: f64 = 250.0;
pub const TARGET_RATE: f64 = 200.0;
const TOKEN: &str = "shpat_bench";
const TRACKING_PREFIX: &[u8] = b"1ZSTS";
const TRACKING_DIGITS: usize = 10;

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

/// Successful `fulfillmentCreate` responses per tracking number, and
/// throttled answers, as seen leaving one Shopify sandbox.
#[derive(Clone, Default)]
struct Recorder {
    acked: Arc<Mutex<HashMap<u64, Instant>>>,
    throttled: Arc<AtomicU64>,
    requests: Arc<AtomicU64>,
    /// Sum of `actualQueryCost` over the answers.
    cost: Arc<AtomicU64>,
}

impl Recorder {
    fn counters(&self) -> (u64, u64, u64) {
        (
            self.throttled.load(Ordering::Relaxed),
            self.requests.load(Ordering::Relaxed),
            self.cost.load(Ordering::Relaxed),
        )
    }

    fn get(&self, id: u64) -> Option<Instant> {
        self.acked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .copied()
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// The unsigned integer right after `key` in `text`.
fn number_after(text: &[u8], key: &[u8]) -> Option<u64> {
    let at = text.windows(key.len()).position(|w| w == key)? + key.len();
    let digits: Vec<u8> = text[at..]
        .iter()
        .skip_while(|b| **b == b' ')
        .take_while(|b| b.is_ascii_digit())
        .copied()
        .collect();
    std::str::from_utf8(&digits).ok()?.parse().ok()
}

/// The bench's tracking numbers (`1ZSTS` + 10 digits) in `text`.
fn tracking_ids(text: &[u8]) -> Vec<u64> {
    let mut out = Vec::new();
    let n = TRACKING_PREFIX.len();
    let mut i = 0;
    while i + n + TRACKING_DIGITS <= text.len() {
        if &text[i..i + n] == TRACKING_PREFIX {
            let digits = &text[i + n..i + n + TRACKING_DIGITS];
            if digits.iter().all(u8::is_ascii_digit)
                && let Ok(v) = std::str::from_utf8(digits).unwrap_or("x").parse::<u64>()
            {
                out.push(v);
            }
            i += n + TRACKING_DIGITS;
        } else {
            i += 1;
        }
    }
    out
}

async fn record(State(rec): State<Recorder>, req: AxumRequest, next: Next) -> Response {
    rec.requests.fetch_add(1, Ordering::Relaxed);
    let (parts, body) = req.into_parts();
    let bytes = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let create = contains(&bytes, b"fulfillmentCreate");
    let resp = next
        .run(AxumRequest::from_parts(parts, Body::from(bytes.clone())))
        .await;
    let (parts, body) = resp.into_parts();
    let rb: Bytes = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    if let Some(c) = number_after(&rb, b"\"actualQueryCost\":") {
        rec.cost.fetch_add(c, Ordering::Relaxed);
    }
    if contains(&rb, b"THROTTLED") {
        rec.throttled.fetch_add(1, Ordering::Relaxed);
    } else if create
        && parts.status.is_success()
        && !contains(&rb, b"\"errors\"")
        && contains(&rb, b"\"fulfillment\":{")
    {
        let at = Instant::now();
        let mut map = rec.acked.lock().unwrap_or_else(|p| p.into_inner());
        for id in tracking_ids(&bytes) {
            map.entry(id).or_insert(at);
        }
    }
    Response::from_parts(parts, Body::from(rb))
}

struct Store {
    sandbox: ShopifySandbox,
    url: String,
    rec: Recorder,
    _task: tokio::task::JoinHandle<()>,
}

async fn start_store(throttle: ThrottleConfig) -> Result<Store> {
    let sandbox = ShopifySandbox::new(shipsync_sandbox_shopify::SandboxConfig {
        access_token: TOKEN.into(),
        throttle,
        ..Default::default()
    });
    let rec = Recorder::default();
    let app = sandbox
        .router()
        .layer(axum::middleware::from_fn_with_state(rec.clone(), record));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(Store {
        sandbox,
        url,
        rec,
        _task: task,
    })
}

/// One merchant + connection (Shipments channel on) pointing at `store`.
async fn connect_store(
    serve: &Serve,
    deposco_url: &str,
    store: &Store,
    name: &str,
) -> Result<String> {
    let (merchant_id, path) = serve
        .webhook_merchant(name, deposco_url, SHARED_SECRET)
        .await?;
    let c = serve
        .api(
            "POST",
            "/api/v1/connections",
            Some(&json!({
                "name": format!("{name} Shopify"),
                "merchant_id": merchant_id,
                "enabled": true,
                "store": {"platform": "shopify", "shop_url": store.url, "access_token": TOKEN},
            })),
            201,
        )
        .await?;
    let id = c["id"]
        .as_str()
        .ok_or_else(|| anyhow!("no connection id in {c}"))?;
    serve
        .api(
            "PATCH",
            &format!("/api/v1/connections/{id}/channels/shipments"),
            Some(&json!({"enabled": true})),
            200,
        )
        .await?;
    Ok(path)
}

/// Shipments `first..first+n`: an order each in `store`, its webhook body.
fn prepare(store: &Store, deposco: &DeposcoSandbox, first: u64, n: usize) -> Vec<(u64, Bytes)> {
    (0..n as u64)
        .map(|k| {
            let id = first + k;
            let created = store.sandbox.create_order(OrderSpec {
                name: format!("#{id}"),
                lines: vec![shipsync_sandbox_shopify::LineSpec {
                    sku: "SKU-BENCH".into(),
                    quantity: 1,
                    ..Default::default()
                }],
                ..Default::default()
            });
            let tracking = format!("1ZSTS{id:010}");
            let spec = ShipmentSpec::new(id.to_string())
                .tracking(tracking.clone())
                .line(
                    LineSpec::new(1, "SKU-BENCH", 1)
                        .customer_line(created.line_item_ids[0].clone()),
                )
                .package(PackageSpec::new(format!("LPN{id}"), tracking).line(1, 1));
            let record = deposco.add_shipment(spec);
            let body = deposco
                .render(&record.number, Shape::Current)
                .expect("rendered");
            (id, Bytes::from(body))
        })
        .collect()
}

/// Sends `items` open-loop at `rate` to `path`; the send instants per id.
struct Sent {
    outcome: Outcome,
    at: Arc<Mutex<HashMap<u64, Instant>>>,
}

async fn send(
    addr: std::net::SocketAddr,
    path: &str,
    items: Vec<(u64, Bytes)>,
    rate: f64,
) -> Result<Sent> {
    let at: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
    let n = items.len();
    let items = Arc::new(items);
    let factory: Factory = {
        let at = at.clone();
        let path = path.to_owned();
        Arc::new(move |i| {
            let (id, body) = &items[i as usize];
            at.lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(*id, Instant::now());
            Request {
                path: path.clone(),
                headers: signed_headers(SHARED_SECRET, &format!("msg_sts_{id}"), body),
                body: body.clone(),
            }
        })
    };
    let outcome = load::open_loop(
        addr,
        factory,
        Arc::new(AtomicU64::new(0)),
        rate,
        Duration::ZERO,
        Duration::from_secs_f64(n as f64 / rate),
        10_000,
    )
    .await?;
    Ok(Sent { outcome, at })
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
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub shipsync_binary: String,
    pub phases: Vec<Phase>,
    pub slow_bucket: Option<ThrottleConfig>,
    pub shipsync_peak_rss_kib: u64,
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
            "store requests / cost points per shipment",
            "CPU s: shipsync / bench+sandbox",
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
                format!(
                    "{:.1} / {:.1}",
                    p.store_requests as f64 / p.shipments.max(1) as f64,
                    p.store_cost_points as f64 / p.shipments.max(1) as f64
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
    (throttled_before, requests_before, cost_before): (u64, u64, u64),
) -> Phase {
    let deadline = Instant::now() + settle;
    loop {
        let acked = ids
            .iter()
            .filter(|id| store.rec.get(**id).is_some())
            .count();
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
        throttled_answers: store.rec.throttled.load(Ordering::Relaxed) - throttled_before,
        store_requests: store.rec.requests.load(Ordering::Relaxed) - requests_before,
        store_cost_points: store.rec.cost.load(Ordering::Relaxed) - cost_before,
        peak_backlog: backlog.iter().map(|(_, n)| *n).max().unwrap_or(0),
        backlog,
        shipsync_cpu_secs: None,
        bench_cpu_secs: None,
    }
}

/// CPU seconds of (shipsync, this process) so far.
fn cpu(pid: u32) -> (Option<f64>, Option<f64>) {
    (rss::cpu_secs(pid), rss::own_cpu_secs())
}

fn set_cpu(p: &mut Phase, before: (Option<f64>, Option<f64>), after: (Option<f64>, Option<f64>)) {
    p.shipsync_cpu_secs = after.0.zip(before.0).map(|(a, b)| a - b);
    p.bench_cpu_secs = after.1.zip(before.1).map(|(a, b)| a - b);
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
    let sent = send(ctx.serve.addr()?, path, items, rate).await?;
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
        "{}: {}/{} fulfilled, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        p.label,
        p.fulfilled,
        p.shipments,
        p.latency.p50_ms(),
        p.latency.p99_ms(),
        p.latency.max_ms()
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
    let fast = start_store(ThrottleConfig {
        maximum_available: 1e12,
        restore_rate: 1e12,
    })
    .await?;
    let slow = match &opts.throttle {
        Some(t) => Some(start_store(t.bucket).await?),
        None => None,
    };
    let instance = Instance::sqlite(&opts.shipsync, "ship-to-store")?;
    let serve = instance.serve().await?;
    let result = async {
        let fast_path = connect_store(&serve, &deposco_running.url, &fast, "Bench Fast").await?;
        let slow_path = match &slow {
            Some(s) => Some(connect_store(&serve, &deposco_running.url, s, "Bench Slow").await?),
            None => None,
        };
        let pid = serve.pid().context("no pid")?;
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
                send(addr, slow_path, slow_items, t.slow_rate),
                send(addr, &fast_path, fast_items, t.fast_rate)
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
        Ok::<_, anyhow::Error>((phases, peak))
    }
    .await;
    let stopped = serve.stop().await;
    deposco_running.shutdown().await;
    let (phases, peak) = result?;
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
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_tracking_numbers() {
        let v = br#"{"numbers":["1ZSTS0000100001","1ZSTS00001"],"x":"1ZSTS0000100002B"}"#;
        assert_eq!(tracking_ids(v), vec![100_001, 100_002]);
        assert!(tracking_ids(b"nothing").is_empty());
    }
}
