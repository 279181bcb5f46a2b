//! One world for a fault row: a throwaway database (SQLite, or PostgreSQL
//! on the server of `SHIPSYNC_TEST_POSTGRES_URL`; dropped with the world,
//! also when the row fails), the Deposco and Shopify sandboxes, and
//! `shipsync serve` nodes started as real child processes on that database.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use futures::StreamExt;
use serde::Serialize;
use serde_json::{Value, json};
use shipsync_bench::process::{Instance, free_port};
use shipsync_sandbox_deposco::{
    DeposcoSandbox, LineSpec, PackageSpec, RunningDeposco, SentWebhook, Shape, ShipmentSpec,
    Signing,
};
use shipsync_sandbox_shopify::{OrderSpec, RunningShopify, ShopifySandbox, ThrottleConfig};
use shipsync_testkit::{POSTGRES_ENV, TestDb, postgres_server};
use tokio::process::Child;

pub const SECRET: &str = "whsec_c2hpcHN5bmMtZmF1bHRzLXNlY3JldC0zMmJ5dGVzIQ==";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
        }
    }
}

/// What a row needs of the sandboxes.
#[derive(Debug, Clone)]
pub struct WorldOptions {
    pub shopify_throttle: ThrottleConfig,
    pub deposco: shipsync_sandbox_deposco::SandboxConfig,
}

impl Default for WorldOptions {
    fn default() -> Self {
        Self {
            // A store that does not limit the run (the rows are about faults,
            // not the cost budget; Plus restores 1000/s).
            shopify_throttle: ThrottleConfig {
                maximum_available: 20_000.0,
                restore_rate: 10_000.0,
            },
            deposco: Default::default(),
        }
    }
}

pub struct World {
    pub backend: Backend,
    /// The nodes' installation; its database is dropped with it.
    pub inst: Instance,
    pub shopify: RunningShopify,
    pub deposco: RunningDeposco,
    pub http: reqwest::Client,
    pub merchant_id: String,
    pub connection_id: String,
    pub webhook_key: String,
}

/// One placed order and the Deposco shipment that ships it whole.
#[derive(Debug, Clone)]
pub struct Case {
    pub name: String,
    pub number: String,
}

impl World {
    pub async fn start(
        bin: &Path,
        backend: Backend,
        label: &str,
        opts: WorldOptions,
    ) -> Result<Self> {
        shipsync_bench::init_tls();
        let db = match backend {
            Backend::Sqlite => TestDb::sqlite()?,
            Backend::Postgres => {
                let server = postgres_server()
                    .ok_or_else(|| anyhow!("this row needs PostgreSQL: set {POSTGRES_ENV}"))?;
                TestDb::postgres_on(&server).await?
            }
        };
        let inst = Instance::on(bin, label, db)?;
        let shopify = ShopifySandbox::new(shipsync_sandbox_shopify::SandboxConfig {
            access_token: "shpat_sandbox".into(),
            throttle: opts.shopify_throttle,
            ..Default::default()
        })
        .start("127.0.0.1:0".parse()?)
        .await?;
        let deposco = DeposcoSandbox::new(opts.deposco)
            .start("127.0.0.1:0".parse()?)
            .await?;
        Ok(Self {
            backend,
            inst,
            shopify,
            deposco,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .pool_max_idle_per_host(64)
                .build()?,
            merchant_id: String::new(),
            connection_id: String::new(),
            webhook_key: String::new(),
        })
    }

    pub fn log_dir(&self) -> &Path {
        self.inst.dir.path()
    }

    /// Starts a `shipsync serve` node on the world's database (or on
    /// `database_url`, e.g. through a proxy) and waits until it is ready.
    pub async fn node(&self, name: &str) -> Result<Node> {
        self.node_with(name, None, &[]).await
    }

    /// [`World::node`] on another database URL and with more environment.
    pub async fn node_with(
        &self,
        name: &str,
        database_url: Option<&str>,
        env: &[(&str, &str)],
    ) -> Result<Node> {
        let listen = format!("127.0.0.1:{}", free_port()?);
        let log = self.log_dir().join(format!("{name}.log"));
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)?;
        let mut cmd = self.inst.command(["serve"]);
        cmd.env("SHIPSYNC_LISTEN", &listen)
            .env(
                "SHIPSYNC_DATABASE_URL",
                database_url.unwrap_or(&self.inst.database_url),
            )
            // A dead node's jobs are taken over within 3 s (PostgreSQL).
            .env("SHIPSYNC_JOB_LEASE_SECS", "3")
            .env("RUST_LOG", "info,sqlx=warn")
            .stdout(Stdio::from(out.try_clone()?))
            .stderr(Stdio::from(out));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().context("cannot start shipsync serve")?;
        let mut node = Node {
            name: name.to_owned(),
            child,
            url: format!("http://{listen}"),
            log,
        };
        let start = Instant::now();
        loop {
            if let Some(status) = node.child.try_wait()? {
                bail!("{name} exited at start-up ({status}):\n{}", node.log_tail());
            }
            if let Ok(r) = self.http.get(format!("{}/healthz", node.url)).send().await
                && r.status().is_success()
            {
                return Ok(node);
            }
            if start.elapsed() > Duration::from_secs(60) {
                bail!("{name} not ready after 60 s:\n{}", node.log_tail());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub async fn api(
        &self,
        node: &Node,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value)> {
        let m = reqwest::Method::from_bytes(method.as_bytes())?;
        let mut req = self
            .http
            .request(m, format!("{}{path}", node.url))
            .bearer_auth(&self.inst.admin_token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let text = resp.text().await?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    async fn api_ok(
        &self,
        node: &Node,
        method: &str,
        path: &str,
        body: Option<Value>,
        want: u16,
    ) -> Result<Value> {
        let (status, v) = self.api(node, method, path, body).await?;
        if status != want {
            bail!("{method} {path}: HTTP {status} (expected {want}): {v}");
        }
        Ok(v)
    }

    /// Creates the merchant (signed webhooks) and its enabled connection
    /// with the Shipments channel on.
    pub async fn seed(&mut self, node: &Node) -> Result<()> {
        let merchant = self
            .api_ok(
                node,
                "POST",
                "/api/v1/merchants",
                Some(json!({
                    "name": "Fault Outdoor",
                    "warehouse": {
                        "platform": "deposco",
                        "api_url": self.deposco.url,
                        "business_unit": "ACME",
                        "auth": {"type": "basic", "username": "sandbox", "password": "sandbox"},
                    },
                    "shipment_webhooks": {"enabled": true, "shared_secret": SECRET},
                    "kit_policy": "complete_kits",
                })),
                201,
            )
            .await?;
        self.merchant_id = merchant["id"].as_str().unwrap_or_default().to_owned();
        self.webhook_key = merchant["shipment_webhooks"]["url"]
            .as_str()
            .and_then(|u| u.rsplit('/').next())
            .unwrap_or_default()
            .to_owned();
        let connection = self
            .api_ok(
                node,
                "POST",
                "/api/v1/connections",
                Some(json!({
                    "name": "Fault Shopify",
                    "merchant_id": self.merchant_id,
                    "enabled": true,
                    "store": {"platform": "shopify", "shop_url": self.shopify.url, "access_token": "shpat_sandbox"},
                })),
                201,
            )
            .await?;
        self.connection_id = connection["id"].as_str().unwrap_or_default().to_owned();
        self.set_shipments_channel(node, json!({"enabled": true}))
            .await
    }

    pub async fn set_shipments_channel(&self, node: &Node, patch: Value) -> Result<()> {
        self.api_ok(
            node,
            "PATCH",
            &format!(
                "/api/v1/connections/{}/channels/shipments",
                self.connection_id
            ),
            Some(patch),
            200,
        )
        .await
        .map(|_| ())
    }

    /// Places `n` orders (2 × A and 1 × B each) and registers in Deposco a
    /// shipment shipping each whole, in one package or (every other order)
    /// two.
    pub fn orders(&self, prefix: &str, n: usize) -> Vec<Case> {
        (0..n)
            .map(|i| {
                let bare = format!("{prefix}{i:05}");
                let name = format!("#{bare}");
                self.shopify.sandbox.create_order(OrderSpec {
                    name: name.clone(),
                    lines: ["A", "B"]
                        .iter()
                        .zip([2, 1])
                        .map(|(sku, quantity)| shipsync_sandbox_shopify::LineSpec {
                            sku: (*sku).to_owned(),
                            quantity,
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                });
                let mut spec = ShipmentSpec::new(bare.clone())
                    .line(LineSpec::new(1, "A", 2))
                    .line(LineSpec::new(2, "B", 1));
                spec = if i % 2 == 0 {
                    spec.package(
                        PackageSpec::new("C1", format!("1Z{bare}A"))
                            .line(1, 2)
                            .line(2, 1),
                    )
                } else {
                    spec.package(PackageSpec::new("C1", format!("1Z{bare}A")).line(1, 2))
                        .package(PackageSpec::new("C2", format!("1Z{bare}B")).line(2, 1))
                };
                let record = self.deposco.sandbox.add_shipment(spec);
                Case {
                    name,
                    number: record.number,
                }
            })
            .collect()
    }

    /// The signed deliveries of these shipments, prepared once: a retry
    /// resends the same bytes and headers, as a real sender does.
    pub fn deliveries(&self, cases: &[Case]) -> Result<Vec<SentWebhook>> {
        cases
            .iter()
            .map(|c| {
                Ok(self
                    .deposco
                    .sandbox
                    .webhook_request(
                        &c.number,
                        Shape::Current,
                        Signing::Standard {
                            secret: SECRET.into(),
                        },
                    )
                    .map_err(|e| anyhow!("{e}"))?
                    .prepare())
            })
            .collect()
    }

    pub fn webhook_path(&self) -> String {
        format!("/webhooks/deposco/{}", self.webhook_key)
    }

    /// The store's side of every case: complete, missing, duplicated.
    pub fn verdict(&self, cases: &[Case]) -> Verdict {
        let mut v = Verdict {
            orders: cases.len(),
            ..Default::default()
        };
        for c in cases {
            let Some(o) = self.shopify.sandbox.order(&c.name) else {
                v.missing_units += 3;
                continue;
            };
            let mut complete = true;
            for l in &o.lines {
                if l.fulfilled_quantity < l.quantity {
                    v.missing_units += u64::from(l.quantity - l.fulfilled_quantity);
                    complete = false;
                }
                if l.fulfilled_quantity > l.quantity {
                    v.extra_units += u64::from(l.fulfilled_quantity - l.quantity);
                }
            }
            if o.fulfillments.len() > 1 {
                v.duplicate_fulfillments += o.fulfillments.len() as u64 - 1;
            }
            if complete {
                v.complete += 1;
            }
        }
        v
    }

    /// Waits until every case is complete (or `timeout`); the last verdict.
    pub async fn wait_complete(&self, cases: &[Case], timeout: Duration) -> Verdict {
        let start = Instant::now();
        loop {
            let v = self.verdict(cases);
            if v.complete == v.orders || start.elapsed() > timeout {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Runs the shipments channel now and waits for the run to finish.
    pub async fn run_shipments(&self, node: &Node, timeout: Duration) -> Result<Value> {
        let runs = format!(
            "/api/v1/connections/{}/channels/shipments/runs",
            self.connection_id
        );
        let queued = self.api_ok(node, "POST", &runs, None, 202).await?;
        let id = queued["id"].as_str().unwrap_or_default().to_owned();
        self.wait_run(node, &id, timeout).await
    }

    pub async fn wait_run(&self, node: &Node, id: &str, timeout: Duration) -> Result<Value> {
        let path = format!(
            "/api/v1/connections/{}/channels/shipments/runs/{id}",
            self.connection_id
        );
        let start = Instant::now();
        loop {
            if let Ok((200, run)) = self.api(node, "GET", &path, None).await
                && (run["status"] == "succeeded" || run["status"] == "failed")
            {
                return Ok(run);
            }
            if start.elapsed() > timeout {
                bail!("run {id} did not finish within {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Shipments shipsync first saw through a pull (`first_seen_via =
    /// poll`).
    pub async fn count_first_seen_by_poll(&self, node: &Node) -> Result<usize> {
        let mut n = 0;
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!(
                "/api/v1/shipments?merchant_id={}&limit=500",
                self.merchant_id
            );
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let page = self.api_ok(node, "GET", &path, None, 200).await?;
            n += page["items"]
                .as_array()
                .map(|a| a.iter().filter(|s| s["first_seen_via"] == "poll").count())
                .unwrap_or(0);
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => return Ok(n),
            }
        }
    }

    /// A read-only connection to the world's database, for checks the API
    /// does not expose (schedule slots).
    pub async fn sql(&self) -> Result<sqlx::AnyConnection> {
        sqlx::any::install_default_drivers();
        let c = <sqlx::AnyConnection as sqlx::Connection>::connect(&self.inst.database_url).await?;
        Ok(c)
    }

    /// Stops the sandboxes and drops the database.
    pub async fn finish(self) {
        drop(self.shopify);
        self.deposco.shutdown().await;
    }
}

/// What the store holds against what was shipped.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Verdict {
    pub orders: usize,
    /// Orders whose every unit is fulfilled.
    pub complete: usize,
    pub missing_units: u64,
    pub extra_units: u64,
    /// Fulfillments beyond the one each order's single shipment makes.
    pub duplicate_fulfillments: u64,
}

impl Verdict {
    pub fn exact(&self) -> bool {
        self.complete == self.orders
            && self.missing_units == 0
            && self.extra_units == 0
            && self.duplicate_fulfillments == 0
    }
}

/// A `shipsync serve` child process.
pub struct Node {
    pub name: String,
    pub child: Child,
    pub url: String,
    pub log: PathBuf,
}

impl Node {
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// SIGKILL: nothing flushed, nothing released.
    pub async fn kill9(&mut self) -> Result<()> {
        self.child.kill().await?;
        Ok(())
    }

    /// True while the process runs.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        shipsync_bench::process::tail(&text, 30)
    }
}

/// How a load of deliveries went, from the sender's side.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SendStats {
    pub deliveries: usize,
    /// Deliveries answered 2xx (each at most once: an acknowledged delivery
    /// is never sent again).
    pub acknowledged: usize,
    pub attempts: u64,
    pub status_503: u64,
    pub connection_errors: u64,
    /// Other statuses seen (status → count).
    pub other: BTreeMap<u16, u64>,
}

/// How the sender behaves.
#[derive(Debug, Clone)]
pub struct SendPlan {
    pub concurrency: usize,
    /// Deliveries per second (None: as fast as the concurrency allows).
    pub rate: Option<f64>,
    /// Retry a failed delivery (connection error, 5xx) until this long
    /// after the start; then give up on it.
    pub retry_for: Duration,
}

/// Counters shared by the sender tasks.
#[derive(Default)]
struct Counters {
    attempts: AtomicU64,
    s503: AtomicU64,
    conn: AtomicU64,
    acked: AtomicU64,
    other: std::sync::Mutex<BTreeMap<u16, u64>>,
}

/// Sends each delivery to one of `targets` (round robin; after a failure the
/// next one, like a load balancer), retrying with a short backoff until it
/// is acknowledged or the plan's retry time is over. `on_ack` is called with
/// the number acknowledged so far after each acknowledgement (to kill a node
/// mid-load, say).
pub async fn send_all(
    http: &reqwest::Client,
    targets: Arc<std::sync::RwLock<Vec<String>>>,
    deliveries: Vec<SentWebhook>,
    plan: &SendPlan,
    on_ack: impl Fn(u64) + Sync,
) -> SendStats {
    let counters = Counters::default();
    let start = Instant::now();
    let n = deliveries.len();
    futures::stream::iter(deliveries.into_iter().enumerate())
        .for_each_concurrent(plan.concurrency, |(i, d)| {
            let counters = &counters;
            let targets = targets.clone();
            let on_ack = &on_ack;
            async move {
                if let Some(rate) = plan.rate {
                    let at = start + Duration::from_secs_f64(i as f64 / rate);
                    tokio::time::sleep_until(at.into()).await;
                }
                let mut attempt = 0usize;
                loop {
                    let url = {
                        let t = targets.read().unwrap_or_else(|e| e.into_inner());
                        t[(i + attempt) % t.len()].clone()
                    };
                    attempt += 1;
                    counters.attempts.fetch_add(1, Ordering::Relaxed);
                    let mut req = http.post(&url).body(d.body.clone());
                    for (k, v) in &d.headers {
                        req = req.header(k, v);
                    }
                    match req.send().await {
                        Ok(r) if r.status().is_success() => {
                            let acked = counters.acked.fetch_add(1, Ordering::SeqCst) + 1;
                            on_ack(acked);
                            return;
                        }
                        Ok(r) => {
                            let s = r.status().as_u16();
                            if s == 503 {
                                counters.s503.fetch_add(1, Ordering::Relaxed);
                            } else {
                                *counters
                                    .other
                                    .lock()
                                    .unwrap_or_else(|e| e.into_inner())
                                    .entry(s)
                                    .or_default() += 1;
                                if s < 500 {
                                    return; // refused for good: not retried
                                }
                            }
                        }
                        Err(_) => {
                            counters.conn.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    if start.elapsed() > plan.retry_for {
                        return;
                    }
                    let backoff = Duration::from_millis((100 * attempt as u64).min(1_000));
                    tokio::time::sleep(backoff).await;
                }
            }
        })
        .await;
    SendStats {
        deliveries: n,
        acknowledged: usize::try_from(counters.acked.load(Ordering::SeqCst)).unwrap_or(0),
        attempts: counters.attempts.load(Ordering::Relaxed),
        status_503: counters.s503.load(Ordering::Relaxed),
        connection_errors: counters.conn.load(Ordering::Relaxed),
        other: counters.other.into_inner().unwrap_or_default(),
    }
}
