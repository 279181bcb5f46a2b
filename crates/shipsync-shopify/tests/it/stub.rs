//! A tiny stand-in for Shopify's GraphQL endpoint: each test scripts the
//! answers; the stub records what it was sent.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use secrecy::SecretString;
use serde_json::{Value, json};
use shipsync_shopify::{ShopifyClient, Timeouts};

pub const TOKEN: &str = "shpat_stub_token_123";
pub const VERSION: &str = "2026-10";

/// One request as the stub saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub at: Instant,
    pub token: Option<String>,
    pub operation: String,
    pub query: String,
    pub variables: Value,
    pub raw: String,
}

/// What the stub answers.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
    pub delay: Duration,
}

impl Reply {
    pub fn data(data: Value) -> Self {
        Self::json(
            200,
            json!({ "data": data, "extensions": cost(10.0, 990.0, 100.0) }),
        )
    }

    pub fn json(status: u16, body: Value) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: body.to_string(),
            delay: Duration::ZERO,
        }
    }

    pub fn raw(status: u16, body: &str) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: body.to_owned(),
            delay: Duration::ZERO,
        }
    }

    pub fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_owned()));
        self
    }

    pub fn delayed(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

/// `extensions` with a cost block.
pub fn cost(requested: f64, available: f64, restore_rate: f64) -> Value {
    json!({
        "cost": {
            "requestedQueryCost": requested,
            "actualQueryCost": requested,
            "throttleStatus": {
                "maximumAvailable": 1000.0,
                "currentlyAvailable": available,
                "restoreRate": restore_rate,
            }
        }
    })
}

type Handler = Arc<dyn Fn(&Seen) -> Reply + Send + Sync>;

#[derive(Clone)]
struct StubState {
    handler: Handler,
    seen: Arc<Mutex<Vec<Seen>>>,
}

pub struct Stub {
    pub base_url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Stub {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Stub {
    pub async fn start(handler: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> Self {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let state = StubState {
            handler: Arc::new(handler),
            seen: Arc::clone(&seen),
        };
        let app = Router::new()
            .route(&format!("/admin/api/{VERSION}/graphql.json"), post(answer))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind stub");
        let addr = listener.local_addr().expect("stub address");
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            base_url: format!("http://{addr}"),
            seen,
            server,
        }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("stub log").clone()
    }

    pub fn client(&self) -> ShopifyClient {
        self.client_with(Timeouts::default())
    }

    pub fn client_with(&self, timeouts: Timeouts) -> ShopifyClient {
        client_for(&self.base_url, timeouts)
    }
}

pub fn client_for(base_url: &str, timeouts: Timeouts) -> ShopifyClient {
    let http =
        ShopifyClient::http_client(&timeouts, shipsync_outbound::TargetPolicy::ALLOW_PRIVATE)
            .expect("http client");
    ShopifyClient::new(http, base_url, VERSION, SecretString::from(TOKEN))
        .expect("client")
        .with_timeouts(timeouts)
}

async fn answer(State(state): State<StubState>, headers: HeaderMap, body: Bytes) -> Response {
    let raw = String::from_utf8_lossy(&body).into_owned();
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let seen = Seen {
        at: Instant::now(),
        token: headers
            .get("x-shopify-access-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        operation: request["operationName"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        query: request["query"].as_str().unwrap_or_default().to_owned(),
        variables: request["variables"].clone(),
        raw,
    };
    let reply = (state.handler)(&seen);
    state.seen.lock().expect("stub log").push(seen);
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let mut out = HeaderMap::new();
    out.insert("content-type", HeaderValue::from_static("application/json"));
    for (name, value) in reply.headers {
        if let Ok(value) = HeaderValue::from_str(&value) {
            out.insert(HeaderName::from_static(name), value);
        }
    }
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, out, reply.body).into_response()
}
