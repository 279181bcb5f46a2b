//! The demo's world: shipsync wired to both sandboxes on loopback, seeded
//! with a merchant and its store connection. Everything goes over real HTTP.
//!
//! The integration tests, the benchmark and the fault suite reach it through
//! `shipsync-testkit`, which adds what only tests need; this module holds
//! what `demo` uses.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use shipsync_engine::EngineConfig;
use shipsync_sandbox_deposco::{DeposcoSandbox, RunningDeposco, Shape, ShipmentSpec, Signing};
use shipsync_sandbox_shopify::{OrderSpec, RunningShopify, ShopifySandbox};

use super::session::{Hop, Session};
use crate::config::{Flags, Settings};
use crate::server::{self, Running};

pub const SHOPIFY_TOKEN: &str = "shpat_sandbox";
/// The sandbox app's API secret key (signs its order webhooks).
pub const SHOPIFY_API_SECRET: &str = "shpss_sandbox_api_secret";

/// The app the world's Shopify sandbox knows, for the install flow and
/// client credentials.
pub const APP_CLIENT_ID: &str = "sandbox-app";
pub const APP_CLIENT_SECRET: &str = "sandbox-app-secret-0123456789";

/// What a world is started with.
#[derive(Debug, Clone)]
pub struct Options {
    /// The server's settings: those of a `serve` given no configuration,
    /// but on `127.0.0.1:0`, with JSON logs and calls to private addresses
    /// allowed (the sandboxes listen on loopback). An unset admin token or
    /// secret key is made up at start.
    pub settings: Settings,
    pub engine: EngineConfig,
    /// A shared secret for the merchant's webhooks (None: unsigned).
    pub shared_secret: Option<String>,
    pub kit_policy: &'static str,
    /// Enable the connection and its Shipments channel right away.
    pub enable: bool,
    /// The Shopify sandbox's cost bucket (default: a Standard plan's 1000
    /// points restored at 100/s; Shopify Plus restores 1000/s).
    pub shopify_throttle: shipsync_sandbox_shopify::ThrottleConfig,
    /// The Deposco sandbox's behaviour (e.g. `items_must_exist`).
    pub deposco: shipsync_sandbox_deposco::SandboxConfig,
    /// Create the "Acme Outdoor" merchant and its connection (default);
    /// false leaves the database empty (`merchant_id`, `connection_id` and
    /// `webhook_url` stay blank), e.g. for a test that creates them in the UI.
    pub seed: bool,
    /// Shopify order webhooks: the sandbox accepts shipsync's `http://`
    /// loopback URL (its one opt-in deviation from Shopify) and the
    /// connection carries the app's API secret that signs them. Off: the
    /// store refuses the subscription, as Shopify refuses a non-https URL,
    /// and only the scheduled pull brings orders.
    pub order_webhooks: bool,
}

impl Options {
    pub fn new(database_url: impl Into<String>) -> Self {
        let flags = Flags {
            database_url: Some(database_url.into()),
            listen: Some("127.0.0.1:0".into()),
            public_url: Some("http://127.0.0.1:0".into()),
            log_format: Some("json".into()),
            allow_private_targets: Some(true),
            ..Flags::default()
        };
        // No environment and no file: only these flags and the defaults,
        // which always resolve.
        let settings =
            Settings::resolve_with(&flags, |_| None).expect("the default settings resolve");
        Self {
            settings,
            engine: fast_engine(),
            shared_secret: Some("whsec_c2hpcHN5bmMtZGVtby1zZWNyZXQtMzJieXRlcyE=".into()),
            kit_policy: "complete_kits",
            enable: true,
            shopify_throttle: Default::default(),
            deposco: Default::default(),
            seed: true,
            order_webhooks: false,
        }
    }
}

/// Engine settings for the demo and the tests: short waits, same logic.
pub fn fast_engine() -> EngineConfig {
    EngineConfig {
        workers: 4,
        lease: Duration::from_secs(30),
        backoff_base: Duration::from_millis(50),
        backoff_max: Duration::from_millis(800),
        max_attempts: 6,
        ingest_capacity: 4096,
        http_timeout: Duration::from_secs(5),
        unknown_outcome_margin: Duration::from_secs(1),
        // The sandboxes listen on loopback.
        allow_private_targets: true,
        ..EngineConfig::default()
    }
}

/// A new random secret key: 32 bytes as 64 hex characters.
pub fn random_secret_key() -> String {
    let mut key = [0u8; 32];
    rand::Rng::fill_bytes(&mut rand::rng(), &mut key);
    key.iter().map(|b| format!("{b:02x}")).collect()
}

/// A running world: the server (None while stopped), both sandboxes, and
/// the seeded merchant and connection.
pub struct World {
    pub server: Option<Running>,
    /// The settings the server runs with (admin token and secret key filled
    /// in), to start it again on the same database.
    pub settings: Settings,
    pub engine_config: EngineConfig,
    pub shopify: RunningShopify,
    pub deposco: RunningDeposco,
    pub http: reqwest::Client,
    pub token: String,
    pub merchant_id: String,
    pub connection_id: String,
    pub webhook_url: String,
    pub shared_secret: Option<String>,
    next_order: u32,
}

impl World {
    /// Starts both sandboxes and the server, then (unless `opts.seed` is
    /// false) creates the merchant and its store connection.
    pub async fn start(opts: Options) -> Result<Self> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let shopify = ShopifySandbox::new(shipsync_sandbox_shopify::SandboxConfig {
            access_token: SHOPIFY_TOKEN.into(),
            api_secret: SHOPIFY_API_SECRET.into(),
            allow_http_webhooks: opts.order_webhooks,
            throttle: opts.shopify_throttle,
            ..Default::default()
        })
        .start("127.0.0.1:0".parse()?)
        .await?;
        let deposco = DeposcoSandbox::new(opts.deposco.clone())
            .start("127.0.0.1:0".parse()?)
            .await?;
        let mut settings = opts.settings.clone();
        let token = settings
            .admin_token
            .get_or_insert_with(|| shipsync_engine::secrets::random_token("adm").into())
            .expose_secret()
            .to_string();
        settings
            .secret_key
            .get_or_insert_with(|| random_secret_key().into());
        // What the engine below runs with.
        settings.jobs = crate::config::Jobs::from(&opts.engine);
        let running = server::start(&settings, opts.engine.clone()).await?;
        let mut h = Self {
            server: Some(running),
            settings,
            engine_config: opts.engine.clone(),
            shopify,
            deposco,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()?,
            token,
            merchant_id: String::new(),
            connection_id: String::new(),
            webhook_url: String::new(),
            shared_secret: opts.shared_secret.clone(),
            next_order: 1001,
        };
        if !opts.seed {
            return Ok(h);
        }
        let merchant = h
            .api(
                "POST",
                "/api/v1/merchants",
                Some(json!({
                    "name": "Acme Outdoor",
                    "warehouse": {
                        "platform": "deposco",
                        "api_url": h.deposco.url,
                        "business_unit": "ACME",
                        "auth": {"type": "basic", "username": "sandbox", "password": "sandbox"},
                    },
                    "shipment_webhooks": {"enabled": true, "shared_secret": opts.shared_secret},
                    "kit_policy": opts.kit_policy,
                })),
            )
            .await?
            .ok(201)?;
        h.merchant_id = merchant["id"].as_str().unwrap_or_default().to_string();
        h.webhook_url = merchant["shipment_webhooks"]["url"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let connection = h
            .api("POST", "/api/v1/connections", Some(json!({
                "name": "Acme Shopify",
                "merchant_id": h.merchant_id,
                "enabled": opts.enable,
                "store": {"platform": "shopify", "shop_url": h.shopify.url, "access_token": SHOPIFY_TOKEN,
                          "api_secret": SHOPIFY_API_SECRET},
            })))
            .await?
            .ok(201)?;
        h.connection_id = connection["id"].as_str().unwrap_or_default().to_string();
        if opts.enable {
            h.api(
                "PATCH",
                &format!("/api/v1/connections/{}/channels/shipments", h.connection_id),
                Some(json!({"enabled": true})),
            )
            .await?
            .ok(200)?;
        }
        Ok(h)
    }

    pub fn url(&self) -> String {
        self.server
            .as_ref()
            .map(|s| s.url.clone())
            .unwrap_or_default()
    }

    pub fn engine(&self) -> Option<&shipsync_engine::Engine> {
        self.server.as_ref().map(|s| &s.engine)
    }

    /// Calls the JSON API with the admin token.
    pub async fn api(&self, method: &str, path: &str, body: Option<Value>) -> Result<ApiAnswer> {
        let url = format!("{}{path}", self.url());
        let m = reqwest::Method::from_bytes(method.as_bytes())?;
        let mut req = self.http.request(m, url).bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let text = resp.text().await?;
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Ok(ApiAnswer { status, body })
    }

    /// Registers the world's app in the Shopify sandbox, with this
    /// server's callback as its redirect URL, and `lifetime_secs` for its
    /// client-credentials tokens.
    pub fn register_app(&self, lifetime_secs: u64, grant_only: Option<Vec<String>>) {
        self.shopify
            .sandbox
            .set_app(shipsync_sandbox_shopify::SandboxApp {
                client_id: APP_CLIENT_ID.into(),
                client_secret: APP_CLIENT_SECRET.into(),
                redirect_urls: vec![format!("{}/connect/shopify/callback", self.url())],
                token_lifetime_secs: lifetime_secs,
                grant_only,
                ..Default::default()
            });
    }

    /// Switches the world's connection to the install flow and connects
    /// it as a person would: signs an Administrator in (created the first
    /// time), clicks Connect to Shopify, lets the sandbox approve,
    /// and follows Shopify's redirect back. Returns the last hop (the
    /// callback's answer).
    pub async fn connect_by_install(&self) -> Result<Hop> {
        self.api(
            "PATCH",
            &format!("/api/v1/connections/{}", self.connection_id),
            Some(json!({"store": {"auth": {
                "type": "authorization_code",
                "client_id": APP_CLIENT_ID,
                "client_secret": APP_CLIENT_SECRET,
            }}})),
        )
        .await?
        .ok(200)?;
        let email = "installer@example.com";
        let password = "a long installer password";
        let made = self
            .api(
                "POST",
                "/api/v1/users",
                Some(json!({"email": email, "role": "admin", "password": password})),
            )
            .await?;
        // Made by an earlier call, or now.
        if made.status >= 500 {
            bail!(
                "could not create the installing user: {} {}",
                made.status,
                made.body
            );
        }
        let mut session = Session::sign_in(&self.url(), email, password).await?;
        let csrf = session.csrf.clone();
        self.install_with(&mut session, &csrf).await
    }

    /// Connect to Shopify with a signed-in session: the button, the
    /// sandbox's approval, the callback. Returns the callback's answer.
    async fn install_with(&self, session: &mut Session, csrf: &str) -> Result<Hop> {
        let clicked = session
            .post(
                &format!("/connections/{}/authorize", self.connection_id),
                &[("csrf", csrf)],
            )
            .await?;
        if clicked.status != 303 || !clicked.location.starts_with(&self.shopify.url) {
            bail!(
                "Connect to Shopify did not lead to the store: HTTP {} {} {}",
                clicked.status,
                clicked.location,
                clicked.body
            );
        }
        let approved = session.get(&clicked.location).await?;
        if approved.status != 302 {
            bail!(
                "the store did not approve the install: HTTP {} {}",
                approved.status,
                approved.body
            );
        }
        session.get(&approved.location).await
    }

    /// Creates a store order; returns its name and line ids.
    pub fn place_order(&mut self, lines: &[(&str, u32)]) -> (String, Vec<String>) {
        let name = format!("#{}", self.next_order);
        self.next_order += 1;
        let created = self.shopify.sandbox.create_order(OrderSpec {
            name: name.clone(),
            lines: lines
                .iter()
                .map(|(sku, q)| shipsync_sandbox_shopify::LineSpec {
                    sku: sku.to_string(),
                    quantity: *q,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        });
        (name, created.line_item_ids)
    }

    /// The signing for webhooks of this world's merchant.
    pub fn signing(&self, body_hmac: bool) -> Signing {
        match &self.shared_secret {
            None => Signing::None,
            Some(s) if body_hmac => Signing::BodyHmac { secret: s.clone() },
            Some(s) => Signing::Standard { secret: s.clone() },
        }
    }

    /// Registers a shipment in the Deposco sandbox and posts its webhook;
    /// returns (Deposco shipment number, HTTP status).
    pub async fn ship(&self, spec: ShipmentSpec, shape: Shape) -> Result<(String, u16)> {
        let record = self.deposco.sandbox.add_shipment(spec);
        let status = self.post(&record.number, shape).await?;
        Ok((record.number, status))
    }

    /// Posts (again) the current webhook of a Deposco shipment.
    pub async fn post(&self, number: &str, shape: Shape) -> Result<u16> {
        let r = self
            .deposco
            .sandbox
            .post_webhook(number, &self.webhook_url, shape, self.signing(false))
            .await
            .map_err(|e| anyhow!("{e}"))?;
        r.status()
            .ok_or_else(|| anyhow!("the webhook was dropped by the sandbox"))
    }

    /// True when no job is queued or running.
    pub async fn idle(&self) -> Result<bool> {
        let engine = self.engine().context("server stopped")?;
        Ok(engine.count_jobs().await? == 0)
    }

    /// Waits until no job is left.
    pub async fn settle(&self, timeout: Duration) -> Result<()> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if self.idle().await? {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        bail!("work still pending after {timeout:?}")
    }

    /// Starts a run of one of the connection's channels (`shipments` or
    /// `sales_orders`) and waits until it has finished and the work it queued
    /// is done; returns the run.
    pub async fn run_channel(&self, channel: &str, timeout: Duration) -> Result<Value> {
        let runs = format!(
            "/api/v1/connections/{}/channels/{channel}/runs",
            self.connection_id
        );
        let queued = self.api("POST", &runs, None).await?.ok(202)?;
        let id = queued["id"].as_str().unwrap_or_default().to_string();
        let start = Instant::now();
        let run = loop {
            let run = self
                .api("GET", &format!("{runs}/{id}"), None)
                .await?
                .ok(200)?;
            if run["status"] == "succeeded" || run["status"] == "failed" {
                break run;
            }
            if start.elapsed() > timeout {
                bail!("run {id} did not finish within {timeout:?}: {run}");
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        };
        self.settle(
            timeout
                .saturating_sub(start.elapsed())
                .max(Duration::from_secs(1)),
        )
        .await?;
        Ok(run)
    }

    /// Waits until shipsync shows the connection's store subscribed to its
    /// order webhooks (they are checked when the Sales Orders channel is
    /// switched on); returns the connection.
    pub async fn wait_order_webhooks(&self, timeout: Duration) -> Result<Value> {
        let start = Instant::now();
        loop {
            let c = self
                .api(
                    "GET",
                    &format!("/api/v1/connections/{}", self.connection_id),
                    None,
                )
                .await?
                .ok(200)?;
            if c["order_webhooks"]["subscribed"] == true {
                return Ok(c);
            }
            if start.elapsed() > timeout {
                bail!(
                    "the store's order webhooks are not subscribed after {timeout:?}: {}",
                    c["order_webhooks"]
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// The world connection's order named `name` (with or without `#`), in
    /// full (lines, activity), when shipsync has it.
    pub async fn order_by_name(&self, name: &str) -> Result<Option<Value>> {
        let list = self
            .api(
                "GET",
                &format!(
                    "/api/v1/orders?connection_id={}&name={}",
                    self.connection_id,
                    name.trim_start_matches('#')
                ),
                None,
            )
            .await?
            .ok(200)?;
        let Some(id) = list["items"]
            .as_array()
            .and_then(|items| items.first())
            .and_then(|o| o["id"].as_str())
        else {
            return Ok(None);
        };
        Ok(Some(
            self.api("GET", &format!("/api/v1/orders/{id}"), None)
                .await?
                .ok(200)?,
        ))
    }

    /// Polls order `name` until `done` holds for it (and whatever else it
    /// checks); returns the order. `what` names the wait in the error.
    pub async fn wait_order(
        &self,
        name: &str,
        what: &str,
        timeout: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Result<Value> {
        let start = Instant::now();
        loop {
            let order = self.order_by_name(name).await?;
            if let Some(o) = &order
                && done(o)
            {
                return Ok(o.clone());
            }
            if start.elapsed() > timeout {
                bail!(
                    "order {name}: {what} not seen after {timeout:?}: {}",
                    order.map_or_else(|| "shipsync does not have it".into(), |o| o.to_string())
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Stops the server (the database and sandboxes stay).
    pub async fn stop_server(&mut self) {
        if let Some(s) = self.server.take() {
            s.stop().await;
        }
    }

    /// Stops the server and the sandboxes.
    pub async fn shutdown(mut self) {
        self.stop_server().await;
    }
}

/// An API answer: status and JSON body.
#[derive(Debug, Clone)]
pub struct ApiAnswer {
    pub status: u16,
    pub body: Value,
}

impl ApiAnswer {
    /// The body when the status is `want`, else an error showing both.
    pub fn ok(self, want: u16) -> Result<Value> {
        if self.status == want {
            Ok(self.body)
        } else {
            Err(anyhow!(
                "expected HTTP {want}, got {}: {}",
                self.status,
                self.body
            ))
        }
    }
}
