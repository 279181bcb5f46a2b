//! Drives the sandbox over real HTTP, as shipsync's client would.

mod lifecycle;
mod rest;
mod webhooks;

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use shipsync_sandbox_deposco::{DeposcoSandbox, RunningDeposco, SandboxConfig};

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
