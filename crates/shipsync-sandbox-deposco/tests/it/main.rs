//! Drives the sandbox over real HTTP, as shipsync's client would.

mod lifecycle;
mod rest;
mod webhooks;

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::{Value, json};
use shipsync_sandbox_deposco::{DeposcoSandbox, RunningDeposco, SandboxConfig};

/// A `SalesOrderDTO` for order `number` with `(sku, quantity)` lines numbered from 1.
pub fn sales_order(number: &str, lines: &[(&str, u32)]) -> Value {
    let lines: Vec<Value> = lines
        .iter()
        .enumerate()
        .map(|(i, (sku, quantity))| {
            json!({
                "lineNumber": (i + 1).to_string(),
                "item": {"businessKey": {"number": sku}},
                "pack": {"businessKey": {"item.number": sku, "quantity": 1}},
                "orderPackQuantity": quantity,
                "customerLineNumber": format!("gid://shopify/LineItem/{}", i + 1),
            })
        })
        .collect();
    json!({
        "businessUnit": {"businessKey": {"code": "ACME"}},
        "number": number,
        "customerOrderNumber": format!("#{number}"),
        "orderStatus": "New",
        "shipToContact": {"name": "Ada"},
        "shipToAddress": {"addressLine1": "1 Main St", "city": "Springfield", "country": "US"},
        "orderLines": lines,
    })
}

pub fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

pub async fn start(config: SandboxConfig) -> (DeposcoSandbox, RunningDeposco) {
    let sandbox = DeposcoSandbox::new(config);
    let running = sandbox
        .clone()
        .start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    (sandbox, running)
}

pub fn unlimited() -> SandboxConfig {
    SandboxConfig {
        rate_limit_per_sec: 0.0,
        ..SandboxConfig::default()
    }
}

/// A webhook receiver that records what it got and answers 202.
#[derive(Clone, Default)]
pub struct Receiver {
    pub got: Arc<Mutex<Vec<(HeaderMap, Bytes)>>>,
}

impl Receiver {
    pub async fn start() -> (Receiver, String) {
        let receiver = Receiver::default();
        let got = receiver.got.clone();
        let app = axum::Router::new().route(
            "/hook",
            post(move |headers: HeaderMap, body: Bytes| {
                let got = got.clone();
                async move {
                    got.lock().unwrap().push((headers, body));
                    (
                        StatusCode::ACCEPTED,
                        r#"{"status":"accepted","event_id":"evt_1"}"#,
                    )
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (receiver, url)
    }

    pub fn deliveries(&self) -> Vec<(HeaderMap, Bytes)> {
        self.got.lock().unwrap().clone()
    }
}
