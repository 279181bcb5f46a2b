//! A `kill -9` after the 202 and before the fulfillment still ends in exactly
//! one fulfillment after a restart on the same database.
//!
//! The real binary runs as a child process (`shipsync serve`); the sandboxes
//! run in the test process. Between the binary and the Shopify sandbox sits a
//! small proxy that can hold requests, so the crash lands at a chosen point:
//!
//! - the `fulfillmentCreate` reached the store and was applied, but its
//!   answer never came back (the worst case: a retry must adopt it, not
//!   create a second one);
//! - the `fulfillmentCreate` was sent and never reached the store (a stalled
//!   connection whose work is dropped, like the sandbox's Timeout fault);
//! - right after the 202, before any store call was answered.
//!
//! (The sandbox's own Timeout fault records a request only once it is
//! served, so "the request reached the store" cannot be observed through
//! `requests()` while it stalls: hence the proxy.)

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use shipsync_sandbox_deposco::{
    DeposcoSandbox, LineSpec, PackageSpec, RunningDeposco, Shape, ShipmentRecord, ShipmentSpec,
    Signing,
};
use shipsync_sandbox_shopify::{OrderSpec, RunningShopify, ShopifySandbox};

use crate::support::SETTLE;

const SECRET: &str = "whsec_c2hpcHN5bmMtZGVtby1zZWNyZXQtMzJieXRlcyE=";
const TOKEN: &str = "adm_crash_test_token_0123456789abcdef";

// ---------------------------------------------------------------------------
// The proxy

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Forward everything.
    Pass,
    /// Hold every request (never answer, never forward).
    HoldAll,
    /// Forward `fulfillmentCreate`, then hold its answer.
    ApplyThenHold,
    /// Hold `fulfillmentCreate` without forwarding it.
    HoldCreate,
    /// Hold every request until the gate opens, then forward it.
    Gate,
}

/// A proxy in front of the Shopify sandbox that can hold requests.
#[derive(Clone)]
pub(crate) struct Proxy {
    target: String,
    http: reqwest::Client,
    mode: Arc<Mutex<Mode>>,
    /// Requests received.
    seen: Arc<AtomicUsize>,
    /// Requests held (never answered, or waiting for the gate).
    pub(crate) held: Arc<AtomicUsize>,
    gate: Arc<tokio::sync::watch::Sender<bool>>,
}

impl Proxy {
    pub(crate) fn set(&self, mode: Mode) {
        if mode == Mode::Gate {
            self.gate.send_replace(false);
        }
        *self.mode.lock().expect("mode") = mode;
    }

    /// Lets the requests waiting at the gate (and later ones) through.
    pub(crate) fn open_gate(&self) {
        *self.mode.lock().expect("mode") = Mode::Pass;
        self.gate.send_replace(true);
    }

    async fn hold(&self) -> Response {
        self.held.fetch_add(1, Ordering::SeqCst);
        std::future::pending::<()>().await;
        StatusCode::INTERNAL_SERVER_ERROR.into_response()
    }
}

async fn proxy_handler(
    State(p): State<Proxy>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    p.seen.fetch_add(1, Ordering::SeqCst);
    let is_create = String::from_utf8_lossy(&body).contains("fulfillmentCreate");
    let mode = *p.mode.lock().expect("mode");
    if mode == Mode::HoldAll || (mode == Mode::HoldCreate && is_create) {
        return p.hold().await;
    }
    if mode == Mode::Gate {
        p.held.fetch_add(1, Ordering::SeqCst);
        let mut open = p.gate.subscribe();
        let _ = open.wait_for(|o| *o).await;
    }
    let path = uri.path_and_query().map(|x| x.as_str()).unwrap_or("/");
    let mut req = p
        .http
        .post(format!("{}{path}", p.target))
        .body(body.to_vec());
    for name in ["content-type", "x-shopify-access-token"] {
        if let Some(v) = headers.get(name) {
            req = req.header(name, v.as_bytes());
        }
    }
    let resp = match req.send().await {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let status = StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let retry_after = resp.headers().get("retry-after").cloned();
    let bytes = resp.bytes().await.unwrap_or_default();
    if mode == Mode::ApplyThenHold && is_create {
        // The store applied it; the answer is lost with the process.
        return p.hold().await;
    }
    let mut out = (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        bytes,
    )
        .into_response();
    if let Some(v) = retry_after {
        out.headers_mut().insert("retry-after", v);
    }
    out
}

/// Starts a proxy to `target`; returns it and its URL.
pub(crate) async fn start_proxy(target: &str) -> (Proxy, String) {
    let p = Proxy {
        target: target.to_string(),
        http: reqwest::Client::new(),
        mode: Arc::new(Mutex::new(Mode::Pass)),
        seen: Arc::new(AtomicUsize::new(0)),
        held: Arc::new(AtomicUsize::new(0)),
        gate: Arc::new(tokio::sync::watch::channel(false).0),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind proxy");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let app = axum::Router::new()
        .fallback(proxy_handler)
        .with_state(p.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (p, url)
}

// ---------------------------------------------------------------------------
// The child process

pub(crate) struct Node {
    child: Child,
    pub(crate) url: String,
    log: std::path::PathBuf,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

fn secret_key() -> String {
    (0..32)
        .map(|i| format!("{:02x}", (i * 7 + 3) as u8))
        .collect()
}

impl Node {
    async fn start(db_url: &str, log: std::path::PathBuf, http: &reqwest::Client) -> Node {
        // A write whose outcome is unknown is looked for 2 + 2 s.
        Node::start_with(
            db_url,
            log,
            http,
            &[
                ("SHIPSYNC_HTTP_TIMEOUT_SECS", "2"),
                ("SHIPSYNC_UNKNOWN_OUTCOME_MARGIN_SECS", "2"),
            ],
        )
        .await
    }

    pub(crate) async fn start_with(
        db_url: &str,
        log: std::path::PathBuf,
        http: &reqwest::Client,
        env: &[(&str, &str)],
    ) -> Node {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("log file");
        let err = out.try_clone().expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_shipsync"))
            .arg("serve")
            .env("SHIPSYNC_DATABASE_URL", db_url)
            .env("SHIPSYNC_LISTEN", &listen)
            .env("SHIPSYNC_ADMIN_TOKEN", TOKEN)
            .env("SHIPSYNC_SECRET_KEY", secret_key())
            .env("SHIPSYNC_LOG_FORMAT", "json")
            // A dead node's lease expires quickly (PostgreSQL; SQLite
            // releases leases at start-up).
            .env("SHIPSYNC_JOB_LEASE_SECS", "2")
            // The sandboxes listen on loopback.
            .env("SHIPSYNC_ALLOW_PRIVATE_TARGETS", "true")
            .env_remove("SHIPSYNC_PUBLIC_URL")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .expect("spawn shipsync");
        let mut node = Node {
            child,
            url: format!("http://{listen}"),
            log,
        };
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = node.child.try_wait() {
                panic!("shipsync exited at start-up ({status}): {}", node.logs());
            }
            if let Ok(r) = http.get(format!("{}/healthz", node.url)).send().await
                && r.status().is_success()
            {
                return node;
            }
            assert!(
                start.elapsed() < SETTLE,
                "shipsync did not start: {}",
                node.logs()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub(crate) fn logs(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(40).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    /// SIGTERM, then waits for the exit; returns its status and how long
    /// the drain took.
    fn sigterm(&mut self) -> (std::process::ExitStatus, Duration) {
        let start = Instant::now();
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(ok.success());
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return (status, start.elapsed());
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "shipsync did not exit after SIGTERM: {}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL (`Child::kill` on unix), then reap.
    pub(crate) fn kill9(&mut self) {
        self.child.kill().expect("kill");
        let _ = self.child.wait();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------

pub(crate) struct World {
    pub(crate) http: reqwest::Client,
    pub(crate) shopify: RunningShopify,
    pub(crate) deposco: RunningDeposco,
    pub(crate) proxy: Proxy,
    proxy_url: String,
    pub(crate) dir: std::path::PathBuf,
}

impl World {
    pub(crate) async fn start() -> World {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let shopify = ShopifySandbox::new(shipsync_sandbox_shopify::SandboxConfig {
            access_token: "shpat_sandbox".into(),
            ..Default::default()
        })
        .start("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("shopify sandbox");
        let deposco = DeposcoSandbox::new(Default::default())
            .start("127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("deposco sandbox");
        let (proxy, proxy_url) = start_proxy(&shopify.url).await;
        let dir = std::env::temp_dir().join(format!(
            "shipsync-crash-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir).expect("dir");
        World {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
            shopify,
            deposco,
            proxy,
            proxy_url,
            dir,
        }
    }

    async fn api(
        &self,
        node: &Node,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self
            .http
            .request(m, format!("{}{path}", node.url))
            .bearer_auth(TOKEN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("api call");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Creates the merchant and an enabled connection (through the proxy);
    /// returns (merchant id, webhook key).
    pub(crate) async fn setup(&self, node: &Node) -> (String, String) {
        let (status, merchant) = self
            .api(
                node,
                "POST",
                "/api/v1/merchants",
                Some(json!({
                    "name": "Acme Outdoor",
                    "warehouse": {
                        "platform": "deposco",
                        "api_url": self.deposco.url,
                        "business_unit": "ACME",
                        "auth": {"type": "basic", "username": "sandbox", "password": "sandbox"},
                    },
                    "shipment_webhooks": {"enabled": true, "shared_secret": SECRET},
                    "kit_policy": "complete_kits",
                })),
            )
            .await;
        assert_eq!(status, 201, "merchant: {merchant}");
        let merchant_id = merchant["id"].as_str().expect("id").to_string();
        let url = merchant["shipment_webhooks"]["url"].as_str().expect("url");
        let key = url.rsplit('/').next().expect("key").to_string();
        let (status, connection) = self
            .api(
                node,
                "POST",
                "/api/v1/connections",
                Some(json!({
                    "name": "Acme Shopify",
                    "merchant_id": merchant_id,
                    "enabled": true,
                    "store": {"platform": "shopify", "shop_url": self.proxy_url, "access_token": "shpat_sandbox"},
                })),
            )
            .await;
        assert_eq!(status, 201, "connection: {connection}");
        let cid = connection["id"].as_str().expect("id");
        let (status, body) = self
            .api(
                node,
                "PATCH",
                &format!("/api/v1/connections/{cid}/channels/shipments"),
                Some(json!({"enabled": true})),
            )
            .await;
        assert_eq!(status, 200, "channel: {body}");
        (merchant_id, key)
    }

    pub(crate) async fn post(&self, node: &Node, key: &str, number: &str) -> u16 {
        let r = self
            .deposco
            .sandbox
            .post_webhook(
                number,
                &format!("{}/webhooks/deposco/{key}", node.url),
                Shape::Current,
                Signing::Standard {
                    secret: SECRET.into(),
                },
            )
            .await
            .expect("post webhook");
        r.status().expect("delivered")
    }

    pub(crate) async fn shipment(
        &self,
        node: &Node,
        merchant_id: &str,
        number: &str,
    ) -> Option<Value> {
        let (status, list) = self
            .api(
                node,
                "GET",
                &format!("/api/v1/shipments?merchant_id={merchant_id}&limit=500"),
                None,
            )
            .await;
        assert_eq!(status, 200, "{list}");
        let item = list["items"]
            .as_array()?
            .iter()
            .find(|i| i["warehouse_shipment_number"] == number)?
            .clone();
        let id = item["id"].as_str()?;
        let (status, s) = self
            .api(node, "GET", &format!("/api/v1/shipments/{id}"), None)
            .await;
        (status == 200).then_some(s)
    }
}

impl World {
    /// Order `#{number}` (three of `A`) and Deposco shipment `number`
    /// shipping two of them in one package tracked `T1`.
    pub(crate) fn order_shipping_two_of_three(&self, number: &str) -> ShipmentRecord {
        self.shopify.sandbox.create_order(OrderSpec {
            name: format!("#{number}"),
            lines: vec![shipsync_sandbox_shopify::LineSpec {
                sku: "A".into(),
                quantity: 3,
                ..Default::default()
            }],
            ..Default::default()
        });
        self.deposco.sandbox.add_shipment(
            ShipmentSpec::new(number)
                .line(LineSpec::new(1, "A", 3).shipped(2))
                .package(PackageSpec::new("C1", "T1").line(1, 2)),
        )
    }

    /// Polls until shipment `number` is `settled`; `what` starts the
    /// message when it does not within [`SETTLE`].
    pub(crate) async fn wait_shipment(
        &self,
        node: &Node,
        merchant_id: &str,
        number: &str,
        what: &str,
        settled: impl Fn(&Value) -> bool,
    ) -> Value {
        let start = Instant::now();
        loop {
            if let Some(s) = self.shipment(node, merchant_id, number).await
                && settled(&s)
            {
                return s;
            }
            assert!(
                start.elapsed() < SETTLE,
                "{what}: the shipment did not settle after restart; log:\n{}",
                node.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Polls until the database at `db_url` holds no job (no work left that
/// could still create something); `what` starts the message when it still
/// does after [`SETTLE`].
pub(crate) async fn wait_no_jobs(db_url: &str, what: &str) {
    let db = shipsync_db::Db::open(db_url).await.expect("open db");
    let start = Instant::now();
    while shipsync_db::jobs::count(db.pool())
        .await
        .expect("count jobs")
        > 0
    {
        assert!(start.elapsed() < SETTLE, "{what}: jobs left");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    db.close().await;
}

impl World {
    /// `n` one-unit shipments numbered from `first`, for a pull.
    fn add_pull_shipments(&self, n: usize, first: usize, tracking: &str) {
        for i in 0..n {
            self.deposco.sandbox.add_shipment(
                ShipmentSpec::new(format!("{}", first + i))
                    .line(LineSpec::new(1, "A", 1))
                    .package(PackageSpec::new("C1", format!("{tracking}{i:04}")).line(1, 1)),
            );
        }
    }

    /// Makes every Deposco request take `slow_ms`, then starts a shipments
    /// run of the only connection; returns the run's URL path.
    async fn start_slow_pull(&self, node: &Node, slow_ms: u64) -> String {
        let (_, connections) = self.api(node, "GET", "/api/v1/connections", None).await;
        let cid = connections["items"][0]["id"]
            .as_str()
            .expect("connection")
            .to_string();
        self.deposco
            .sandbox
            .set_faults(shipsync_sandbox_deposco::Faults {
                slow_ms,
                ..Default::default()
            });
        let runs = format!("/api/v1/connections/{cid}/channels/shipments/runs");
        let (status, run) = self.api(node, "POST", &runs, None).await;
        assert_eq!(status, 202, "{run}");
        format!("{runs}/{}", run["id"].as_str().expect("run id"))
    }

    /// Waits until the run at `path` has finished; returns it.
    async fn wait_run_finished(&self, node: &Node, path: &str) -> Value {
        let start = Instant::now();
        loop {
            let (_, r) = self.api(node, "GET", path, None).await;
            if r["status"] == "succeeded" || r["status"] == "failed" {
                return r;
            }
            assert!(
                start.elapsed() < SETTLE * 2,
                "the pull did not finish: {r}\n{}",
                node.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

pub(crate) async fn wait_for(what: &str, node: &Node, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(
            start.elapsed() < SETTLE,
            "timed out waiting for {what}; shipsync log:\n{}",
            node.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Where the process dies.
#[derive(Debug, Clone, Copy)]
enum KillPoint {
    /// After `fulfillmentCreate` was applied by the store, before its answer.
    CreateApplied,
    /// While `fulfillmentCreate` is in flight and has not reached the store.
    CreateInFlight,
    /// Right after the 202, while the first store call is unanswered.
    BeforeAnyStoreCall,
}

async fn crash_once(db_url: &str, point: KillPoint) {
    let w = World::start().await;
    let log = w.dir.join("shipsync.log");
    let name = "#1001";
    let record = w.order_shipping_two_of_three("1001");

    let mut node = Node::start(db_url, log.clone(), &w.http).await;
    let (merchant_id, key) = w.setup(&node).await;
    w.proxy.set(match point {
        KillPoint::CreateApplied => Mode::ApplyThenHold,
        KillPoint::CreateInFlight => Mode::HoldCreate,
        KillPoint::BeforeAnyStoreCall => Mode::HoldAll,
    });
    assert_eq!(w.post(&node, &key, &record.number).await, 202);
    let held = w.proxy.held.clone();
    wait_for(&format!("{point:?}: a held store call"), &node, || {
        held.load(Ordering::SeqCst) >= 1
    })
    .await;
    let landed = w
        .shopify
        .sandbox
        .order(name)
        .expect("order")
        .fulfillments
        .len();
    match point {
        KillPoint::CreateApplied => assert_eq!(landed, 1, "the create was applied"),
        _ => assert_eq!(landed, 0, "nothing reached the store yet"),
    }
    node.kill9();

    // The store is healthy again; restart on the same database.
    w.proxy.set(Mode::Pass);
    let node = Node::start(db_url, log, &w.http).await;
    let what = format!("{point:?}");
    let s = w
        .wait_shipment(&node, &merchant_id, &record.number, &what, |s| {
            s["status"] == "completed"
        })
        .await;
    wait_no_jobs(db_url, &what).await;

    let o = w.shopify.sandbox.order(name).expect("order");
    assert_eq!(o.fulfillments.len(), 1, "{point:?}: {:?}", o.fulfillments);
    assert_eq!(
        w.shopify.sandbox.fulfillments_created(),
        1,
        "{point:?}: one create in all"
    );
    let f = &o.fulfillments[0];
    assert_eq!(
        f.line_items.iter().map(|l| l.quantity).sum::<u32>(),
        2,
        "{point:?}"
    );
    assert_eq!(f.tracking_numbers, vec!["T1"], "{point:?}");
    assert_eq!(o.lines[0].fulfilled_quantity, 2, "{point:?}");
    let sf = s["store_fulfillments"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(sf.len(), 1, "{point:?}: {s}");
    assert!(sf[0].to_string().contains(&f.id), "{point:?}: {s}");
    if matches!(point, KillPoint::CreateApplied) {
        assert!(
            s["activity"].to_string().contains("adopted"),
            "{point:?}: the landed create was adopted: {s}"
        );
    }
    drop(node);
    let _ = std::fs::remove_dir_all(&w.dir);
}

async fn kill9_after_create_applied(db_url: String) {
    crash_once(&db_url, KillPoint::CreateApplied).await;
}

async fn kill9_while_create_in_flight(db_url: String) {
    crash_once(&db_url, KillPoint::CreateInFlight).await;
}

async fn kill9_right_after_202(db_url: String) {
    crash_once(&db_url, KillPoint::BeforeAnyStoreCall).await;
}

/// A pull killed mid-way resumes from the page it reached after a restart,
/// and completes: every shipment imported once.
async fn kill9_mid_pull_resumes(db_url: String) {
    let w = World::start().await;
    let log = w.dir.join("shipsync.log");
    const N: usize = 250;
    w.add_pull_shipments(N, 5000, "TP");
    let mut node = Node::start(&db_url, log.clone(), &w.http).await;
    let (merchant_id, _) = w.setup(&node).await;
    // Every Deposco request takes a while, so the pull is caught mid-way.
    let run = w.start_slow_pull(&node, 700).await;
    let start = Instant::now();
    loop {
        let (_, r) = w.api(&node, "GET", &run, None).await;
        if r["counts"]["pages"].as_u64().unwrap_or(0) >= 1 {
            assert_eq!(r["status"], "running", "{r}");
            break;
        }
        assert!(
            start.elapsed() < SETTLE,
            "the pull did not start: {r}\n{}",
            node.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    node.kill9();
    w.deposco.sandbox.set_faults(Default::default());
    let node = Node::start(&db_url, log, &w.http).await;
    let done = w.wait_run_finished(&node, &run).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["counts"]["new"], N as u64, "{done}");
    // Three pages of 100: the restart read the rest, not everything again
    // (a page being read at the kill is read once more).
    let pages = done["counts"]["pages"].as_u64().unwrap_or(0);
    assert!((3..=4).contains(&pages), "{done}");
    assert!(
        done["counts"]["fetched"].as_u64().unwrap_or(0) >= N as u64,
        "{done}"
    );
    let (_, list) = w
        .api(
            &node,
            "GET",
            &format!("/api/v1/shipments?merchant_id={merchant_id}&source=poll&limit=500"),
            None,
        )
        .await;
    assert_eq!(
        list["items"].as_array().map(Vec::len),
        Some(N),
        "every shipment imported once"
    );
}

/// SIGTERM while a slow pull runs: the node exits within the drain bound
/// (10 s plus a moment), the pull's job is left unleased (another node could
/// take it at once), and a restarted node finishes the pull, each shipment
/// imported once.
async fn sigterm_mid_pull_frees_the_job(db_url: String) {
    let w = World::start().await;
    let log = w.dir.join("shipsync.log");
    const N: usize = 400;
    w.add_pull_shipments(N, 7000, "TT");
    let mut node = Node::start(&db_url, log.clone(), &w.http).await;
    w.setup(&node).await;
    // Each Deposco page (100 shipments) takes 4 s: the 4 pages take longer
    // than the drain waits.
    let run = w.start_slow_pull(&node, 4_000).await;
    let start = Instant::now();
    loop {
        let (_, r) = w.api(&node, "GET", &run, None).await;
        if r["status"] == "running" {
            break;
        }
        assert!(start.elapsed() < SETTLE, "the pull did not start: {r}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, took) = node.sigterm();
    assert!(status.success(), "exit status {status}: {}", node.logs());
    assert!(
        took < Duration::from_secs(20),
        "the drain is bounded (took {took:?})"
    );
    let logs = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(logs.contains("shipsync stopped"), "{logs}");
    // The job is still there, and nobody holds it.
    sqlx::any::install_default_drivers();
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&db_url)
        .await
        .expect("connect");
    let leased: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM jobs WHERE kind = 'pull_shipments' AND lease_owner IS NULL",
    )
    .fetch_one(&mut conn)
    .await
    .expect("jobs");
    assert_eq!(leased, 1, "the pull's job is left unleased: {logs}");
    let _ = sqlx::Connection::close(conn).await;
    w.deposco.sandbox.set_faults(Default::default());
    let node = Node::start(&db_url, log, &w.http).await;
    let done = w.wait_run_finished(&node, &run).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    // A page cut off mid-way by the drain is read again: its shipments
    // already stored count as unchanged, never twice.
    let c = &done["counts"];
    let seen = ["new", "updated", "unchanged"]
        .iter()
        .map(|k| c[*k].as_u64().unwrap_or(0))
        .sum::<u64>();
    assert!(seen >= N as u64, "{done}");
    let (_, list) = w
        .api(
            &node,
            "GET",
            "/api/v1/shipments?source=poll&limit=500",
            None,
        )
        .await;
    assert_eq!(
        list["items"].as_array().map(Vec::len),
        Some(N),
        "every shipment imported once"
    );
}

/// SQLite is single-node: a second `serve` on the same file is refused with
/// a clear message while `migrate` still works; once the first one stops,
/// a new `serve` starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_serve_on_sqlite_is_refused() {
    let db = shipsync_testkit::TestDb::sqlite().expect("test database");
    let http = reqwest::Client::new();
    let log = std::env::temp_dir().join(format!("shipsync-lock-{}.log", rand::random::<u32>()));
    let mut first = Node::start(&db.url, log.clone(), &http).await;
    let second = Command::new(env!("CARGO_BIN_EXE_shipsync"))
        .arg("serve")
        .env("SHIPSYNC_DATABASE_URL", &db.url)
        .env("SHIPSYNC_LISTEN", format!("127.0.0.1:{}", free_port()))
        .env("SHIPSYNC_ADMIN_TOKEN", TOKEN)
        .env("SHIPSYNC_SECRET_KEY", secret_key())
        .output()
        .expect("run a second serve");
    let err = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(1), "{err}");
    assert!(
        err.contains("already running on the SQLite database") && err.contains("PostgreSQL"),
        "{err}"
    );
    assert!(!err.contains("backtrace"), "one readable line: {err}");
    let migrate = Command::new(env!("CARGO_BIN_EXE_shipsync"))
        .args(["migrate", "--database-url", &db.url])
        .output()
        .expect("migrate");
    assert!(
        migrate.status.success(),
        "{}",
        String::from_utf8_lossy(&migrate.stderr)
    );
    let (status, _) = first.sigterm();
    assert!(status.success());
    let again = Node::start(&db.url, log.clone(), &http).await;
    drop(again);
    let _ = std::fs::remove_file(log);
}

both_backends!(
    sigterm_mid_pull_frees_the_job,
    kill9_after_create_applied,
    kill9_while_create_in_flight,
    kill9_right_after_202,
    kill9_mid_pull_resumes,
);
