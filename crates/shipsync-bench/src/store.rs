//! The Shopify side of the store scenarios (`ship-to-store`, `wave`,
//! `scale-out`): a sandbox store served by the bench behind a recorder, a
//! merchant and connection in shipsync pointing at it, one-line one-package
//! shipments sent as signed Deposco webhooks, and the exactly-once check
//! read back from the sandbox's own orders.
//!
//! The recorder is an axum middleware around the sandbox's router: it counts
//! every GraphQL request, the `THROTTLED` answers and the cost points the
//! sandbox charged (`extensions.cost.actualQueryCost` of each answer), and
//! stores the instant each successful `fulfillmentCreate` answer leaves the
//! sandbox per tracking number (on the bench's monotonic clock).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use axum::body::Body;
use axum::extract::{Request as AxumRequest, State};
use axum::middleware::Next;
use axum::response::Response;
use bytes::Bytes;
use http_body_util::BodyExt;
use serde::Serialize;
use serde_json::json;
use shipsync_sandbox_deposco::{DeposcoSandbox, LineSpec, PackageSpec, Shape, ShipmentSpec};
use shipsync_sandbox_shopify::{OrderSpec, ShopifySandbox, ThrottleConfig};

use crate::load::{self, Factory, Outcome, Request};
use crate::process::Serve;
use crate::webhooks::{SHARED_SECRET, signed_headers};

pub const TOKEN: &str = "shpat_bench";
const TRACKING_PREFIX: &[u8] = b"1ZSTS";
const TRACKING_DIGITS: usize = 10;

/// The bench's tracking number of shipment `id`.
pub fn tracking(id: u64) -> String {
    format!("1ZSTS{id:010}")
}

/// What one sandbox store answered, as seen leaving it.
#[derive(Clone, Default)]
pub struct Recorder {
    acked: Arc<Mutex<HashMap<u64, Instant>>>,
    pub throttled: Arc<AtomicU64>,
    pub requests: Arc<AtomicU64>,
    /// Sum of `actualQueryCost` over the answers.
    pub cost: Arc<AtomicU64>,
    /// `fulfillmentCreate` requests naming a tracking number whose
    /// fulfillment had already been acknowledged (a would-be duplicate; the
    /// store refuses it when nothing is left to fulfill).
    pub repeats: Arc<AtomicU64>,
}

/// The recorder's counters at one instant, to subtract.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counters {
    pub throttled: u64,
    pub requests: u64,
    pub cost: u64,
    pub repeats: u64,
}

impl Counters {
    pub fn since(self, before: Counters) -> Counters {
        Counters {
            throttled: self.throttled - before.throttled,
            requests: self.requests - before.requests,
            cost: self.cost - before.cost,
            repeats: self.repeats - before.repeats,
        }
    }
}

impl Recorder {
    pub fn counters(&self) -> Counters {
        Counters {
            throttled: self.throttled.load(Ordering::Relaxed),
            requests: self.requests.load(Ordering::Relaxed),
            cost: self.cost.load(Ordering::Relaxed),
            repeats: self.repeats.load(Ordering::Relaxed),
        }
    }

    /// When shipment `id`'s fulfillment was acknowledged.
    pub fn get(&self, id: u64) -> Option<Instant> {
        self.acked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .copied()
    }

    /// How many of `ids` are acknowledged.
    pub fn count(&self, ids: &[u64]) -> usize {
        let map = self.acked.lock().unwrap_or_else(|p| p.into_inner());
        ids.iter().filter(|id| map.contains_key(id)).count()
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
    if create {
        let map = rec.acked.lock().unwrap_or_else(|p| p.into_inner());
        if tracking_ids(&bytes).iter().any(|id| map.contains_key(id)) {
            rec.repeats.fetch_add(1, Ordering::Relaxed);
        }
    }
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

/// A sandbox store served by the bench, behind a [`Recorder`].
pub struct Store {
    pub sandbox: ShopifySandbox,
    pub url: String,
    pub rec: Recorder,
    _task: tokio::task::JoinHandle<()>,
}

/// A store with the cost bucket `throttle`.
pub async fn start_store(throttle: ThrottleConfig) -> Result<Store> {
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

/// A store that answers at once: no cost limit to speak of.
pub async fn start_fast_store() -> Result<Store> {
    start_store(ThrottleConfig {
        maximum_available: 1e12,
        restore_rate: 1e12,
    })
    .await
}

/// A merchant + connection (Shipments channel on) pointing at `store`;
/// (webhook path, connection id).
pub async fn connect_store(
    serve: &Serve,
    deposco_url: &str,
    store: &Store,
    name: &str,
) -> Result<(String, String)> {
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
        .ok_or_else(|| anyhow!("no connection id in {c}"))?
        .to_owned();
    serve
        .api(
            "PATCH",
            &format!("/api/v1/connections/{id}/channels/shipments"),
            Some(&json!({"enabled": true})),
            200,
        )
        .await?;
    Ok((path, id))
}

/// A paid one-line order of one unit, named `#id`, that Deposco accepts
/// (an email and a shipping method; the sandbox's sample address).
pub fn order_spec(id: u64) -> OrderSpec {
    OrderSpec {
        name: format!("#{id}"),
        lines: vec![shipsync_sandbox_shopify::LineSpec {
            sku: "SKU-BENCH".into(),
            quantity: 1,
            ..Default::default()
        }],
        email: Some("bench@example.com".into()),
        shipping_line: Some("Standard".into()),
        ..Default::default()
    }
}

/// Shipments `first..first+n` of orders that exist only in the store
/// (shipsync matches them by name): an order each in `store`, the webhook
/// body of its shipment (one line, one package, tracking [`tracking`]).
pub fn prepare(store: &Store, deposco: &DeposcoSandbox, first: u64, n: usize) -> Vec<(u64, Bytes)> {
    (0..n as u64)
        .map(|k| {
            let id = first + k;
            let created = store.sandbox.create_order(order_spec(id));
            let spec = ShipmentSpec::new(id.to_string())
                .tracking(tracking(id))
                .line(
                    LineSpec::new(1, "SKU-BENCH", 1)
                        .customer_line(created.line_item_ids[0].clone()),
                )
                .package(PackageSpec::new(format!("LPN{id}"), tracking(id)).line(1, 1));
            (id, render(deposco, spec))
        })
        .collect()
}

/// The current-API webhook body of `spec`, recorded in `deposco`.
pub fn render(deposco: &DeposcoSandbox, spec: ShipmentSpec) -> Bytes {
    let record = deposco.add_shipment(spec);
    Bytes::from(
        deposco
            .render(&record.number, Shape::Current)
            .expect("a shipment just added renders"),
    )
}

/// The signed webhook of shipment `id`.
pub fn webhook(path: &str, id: u64, body: &Bytes) -> Request {
    Request {
        path: path.to_owned(),
        headers: signed_headers(SHARED_SECRET, &format!("msg_sts_{id}"), body),
        body: body.clone(),
    }
}

/// Sends `items` open-loop at `rate` to `path`; the send instants per id.
pub struct Sent {
    pub outcome: Outcome,
    pub at: Arc<Mutex<HashMap<u64, Instant>>>,
}

pub async fn send_open_loop(
    addr: SocketAddr,
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
            webhook(&path, *id, body)
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

/// Every shipment fulfilled exactly once, read from the store's own orders.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ExactlyOnce {
    pub orders: usize,
    /// Orders with exactly one fulfillment of the shipped quantity (1),
    /// carrying the shipment's tracking number, nothing left to fulfill.
    pub fulfilled_once: usize,
    /// Orders without a fulfillment.
    pub missing: usize,
    /// Fulfillments beyond the first, over all orders.
    pub duplicates: usize,
    /// Orders whose fulfilled quantity or tracking number is not the shipment's.
    pub wrong: usize,
}

impl ExactlyOnce {
    /// Reads orders `#id` of `ids` in `store`.
    pub fn check(store: &Store, ids: &[u64]) -> Self {
        let mut c = ExactlyOnce {
            orders: ids.len(),
            ..Default::default()
        };
        for id in ids {
            let Some(o) = store.sandbox.order(&format!("#{id}")) else {
                c.missing += 1;
                continue;
            };
            let n = o.fulfillments.len();
            c.duplicates += n.saturating_sub(1);
            if n == 0 {
                c.missing += 1;
                continue;
            }
            let units: u32 = o
                .fulfillments
                .iter()
                .flat_map(|f| &f.line_items)
                .map(|l| l.quantity)
                .sum();
            let right = units == 1
                && o.fulfillments[0].tracking_numbers == [tracking(*id)]
                && o.lines.iter().all(|l| l.fulfilled_quantity == l.quantity);
            if !right {
                c.wrong += 1;
            } else if n == 1 {
                c.fulfilled_once += 1;
            }
        }
        c
    }

    pub fn ok(&self) -> bool {
        self.fulfilled_once == self.orders
            && self.missing == 0
            && self.duplicates == 0
            && self.wrong == 0
    }

    pub fn summary(&self) -> String {
        format!(
            "{} / {} fulfilled once ({} missing, {} duplicate, {} wrong quantity or tracking)",
            self.fulfilled_once, self.orders, self.missing, self.duplicates, self.wrong
        )
    }
}

/// shipsync's CPU milliseconds per shipment.
pub fn cpu_ms_per(cpu_secs: Option<f64>, shipments: usize) -> Option<f64> {
    cpu_secs.map(|c| c * 1000.0 / shipments.max(1) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_tracking_numbers() {
        let v = br#"{"numbers":["1ZSTS0000100001","1ZSTS00001"],"x":"1ZSTS0000100002B"}"#;
        assert_eq!(tracking_ids(v), vec![100_001, 100_002]);
        assert!(tracking_ids(b"nothing").is_empty());
        assert_eq!(tracking_ids(tracking(42).as_bytes()), vec![42]);
    }

    #[test]
    fn reads_the_cost() {
        let v = br#"{"extensions":{"cost":{"requestedQueryCost":12,"actualQueryCost": 7}}}"#;
        assert_eq!(number_after(v, b"\"actualQueryCost\":"), Some(7));
        assert_eq!(number_after(b"{}", b"\"actualQueryCost\":"), None);
    }
}
