//! HTTP for shipsync: the Deposco webhook endpoint, the JSON API, health and
//! metrics. Thin: parse, authorise, call the engine, render.

mod api;
pub mod auth;
pub mod client;
mod deadline;
mod error;
mod json;
mod shopify_webhook;
pub mod throttle;
mod ui;
mod webhook;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use shipsync_engine::Engine;

pub use error::ApiError;
pub use webhook::WEBHOOK_MAX_IN_FLIGHT;

/// Settings the HTTP layer needs.
#[derive(Clone)]
pub struct WebConfig {
    /// Base URL used in the webhook URLs shown to users.
    pub public_url: String,
    pub webhook_max_bytes: usize,
    /// Webhook requests handled at once ([`WEBHOOK_MAX_IN_FLIGHT`]).
    pub webhook_max_in_flight: usize,
    /// `SHIPSYNC_ADMIN_TOKEN`, always accepted when set.
    pub admin_token: Option<String>,
    /// A request body not read whole within this long is answered 408
    /// (`SHIPSYNC_BODY_TIMEOUT_SECS`).
    pub body_timeout: std::time::Duration,
    /// Reverse proxies whose `X-Forwarded-For` names the client
    /// (`SHIPSYNC_TRUSTED_PROXIES`, [`client`]).
    pub trusted_proxies: client::TrustedProxies,
}

impl std::fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self {
            public_url,
            webhook_max_bytes,
            webhook_max_in_flight,
            admin_token,
            body_timeout,
            trusted_proxies,
        } = self;
        f.debug_struct("WebConfig")
            .field("public_url", public_url)
            .field("webhook_max_bytes", webhook_max_bytes)
            .field("webhook_max_in_flight", webhook_max_in_flight)
            .field("admin_token", &admin_token.as_ref().map(|_| "[REDACTED]"))
            .field("body_timeout", body_timeout)
            .field("trusted_proxies", trusted_proxies)
            .finish()
    }
}

#[derive(Clone)]
pub struct AppState {
    pub engine: Engine,
    pub config: Arc<WebConfig>,
    /// Set while the server drains: readiness answers 503.
    pub draining: Arc<std::sync::atomic::AtomicBool>,
    /// Failed sign-ins and bearer tokens (in memory, per node).
    pub throttle: throttle::Throttle,
}

pub fn router(state: AppState) -> Router {
    let in_flight =
        webhook::InFlight::new(state.config.webhook_max_in_flight, state.engine.clone());
    let gauge = in_flight.clone();
    Router::new()
        .merge(ui::routes())
        .route("/healthz", get(healthz))
        .route(
            "/metrics",
            get(move |s: State<AppState>| metrics(s, gauge.clone())),
        )
        .route(
            "/webhooks/deposco/{key}",
            post(webhook::receive).layer(axum::middleware::from_fn_with_state(
                in_flight.clone(),
                webhook::limit_in_flight,
            )),
        )
        .route(
            "/webhooks/shopify/{key}",
            post(shopify_webhook::receive).layer(axum::middleware::from_fn_with_state(
                in_flight,
                webhook::limit_in_flight,
            )),
        )
        .route("/api/v1/openapi.json", get(api::openapi_json))
        .nest(api::PREFIX, api::router(state.clone()))
        .layer(axum::middleware::map_response(browser_headers))
        .layer(axum::middleware::from_fn_with_state(
            state.config.body_timeout,
            deadline::limit,
        ))
        .with_state(state)
}

/// What every answer tells a browser (the UI's pages above all): load
/// scripts, styles, images and fonts from this origin only (the UI has no
/// inline script or style), never be framed, never sniff a content type, and
/// send no referrer to other sites.
pub const CONTENT_SECURITY_POLICY: &str =
    "default-src 'self'; base-uri 'none'; object-src 'none'; frame-ancestors 'none'";

async fn browser_headers(mut r: axum::response::Response) -> axum::response::Response {
    let h = r.headers_mut();
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            header::HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            header::HeaderValue::from_static("nosniff"),
        ),
        (
            header::REFERRER_POLICY,
            header::HeaderValue::from_static("same-origin"),
        ),
    ] {
        h.entry(name).or_insert(value);
    }
    r
}

async fn healthz(State(s): State<AppState>) -> impl IntoResponse {
    let draining = s.draining.load(std::sync::atomic::Ordering::Relaxed);
    if !draining && s.engine.ping().await {
        (
            StatusCode::OK,
            axum::Json(serde_json::json!({"status": "ok"})),
        )
    } else {
        let status = if draining {
            "draining"
        } else {
            "database_unavailable"
        };
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({"status": status})),
        )
    }
}

async fn metrics(State(s): State<AppState>, in_flight: webhook::InFlight) -> impl IntoResponse {
    let metrics = s.engine.metrics();
    metrics.set_webhooks_in_flight(in_flight.current());
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics.encode(),
    )
}
