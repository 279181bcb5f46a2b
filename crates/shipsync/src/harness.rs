//! shipsync wired to both sandboxes on loopback: what `demo` runs and what
//! the integration tests drive. Everything goes over real HTTP.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};
use shipsync_engine::EngineConfig;
use shipsync_sandbox_deposco::{DeposcoSandbox, RunningDeposco, Shape, ShipmentSpec, Signing};
use shipsync_sandbox_shopify::{OrderSpec, RunningShopify, ShopifySandbox};

use crate::config::{LogFormat, Settings};
use crate::server::{self, Running};

pub const SHOPIFY_TOKEN: &str = "shpat_sandbox";

/// Options of a harness.
#[derive(Debug, Clone)]
pub struct Options {
    pub database_url: String,
    /// A shared secret for the merchant's webhooks (None: unsigned).
    pub shared_secret: Option<String>,
    pub kit_policy: &'static str,
    pub engine: EngineConfig,
    /// Enable the connection and its Shipments channel right away.
    pub enable: bool,
    /// `SHIPSYNC_WEBHOOK_MAX_BYTES` of the server (default 1 MiB).
    pub webhook_max_bytes: usize,
    /// Webhook requests the server handles at once (default
    /// [`shipsync_web::WEBHOOK_MAX_IN_FLIGHT`]).
    pub webhook_max_in_flight: usize,
    /// Connections the server holds at once (default
    /// [`crate::listener::MAX_CONNECTIONS`]).
    pub max_connections: usize,
    /// `SHIPSYNC_MAX_CONNECTIONS_PER_CLIENT` (default
    /// [`crate::listener::MAX_CONNECTIONS_PER_CLIENT`]).
    pub max_connections_per_client: usize,
    /// `SHIPSYNC_TRUSTED_PROXIES` (default: none).
    pub trusted_proxies: shipsync_web::client::TrustedProxies,
    /// `SHIPSYNC_HEADER_TIMEOUT_SECS` (default 10 s).
    pub header_timeout: Duration,
    /// `SHIPSYNC_IDLE_TIMEOUT_SECS` (default 60 s).
    pub idle_timeout: Duration,
    /// `SHIPSYNC_BODY_TIMEOUT_SECS` (default 30 s).
    pub body_timeout: Duration,
    /// The Shopify sandbox's cost bucket (default: a Standard plan's 1000
    /// points restored at 100/s; Shopify Plus restores 1000/s).
    pub shopify_throttle: shipsync_sandbox_shopify::ThrottleConfig,
    /// The Deposco sandbox's behaviour (e.g. `items_must_exist`).
    pub deposco: shipsync_sandbox_deposco::SandboxConfig,
    /// Create the "Acme Outdoor" merchant and its connection (default);
    /// false leaves the database empty (`merchant_id`, `connection_id` and
    /// `webhook_url` stay blank), e.g. for a test that creates them in the UI.
    pub seed: bool,
    /// The secret key (64 hex characters); None: the one this process's
    /// harnesses already gave the database, else a new random one.
    pub secret_key: Option<String>,
}

impl Options {
    pub fn new(database_url: impl Into<String>) -> Self {
        Self {
            database_url: database_url.into(),
            shared_secret: Some("whsec_c2hpcHN5bmMtZGVtby1zZWNyZXQtMzJieXRlcyE=".into()),
            kit_policy: "complete_kits",
            engine: fast_engine(),
            enable: true,
            webhook_max_bytes: 1_048_576,
            webhook_max_in_flight: shipsync_web::WEBHOOK_MAX_IN_FLIGHT,
            max_connections: crate::listener::MAX_CONNECTIONS,
            max_connections_per_client: crate::listener::MAX_CONNECTIONS_PER_CLIENT,
            trusted_proxies: Default::default(),
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            body_timeout: Duration::from_secs(30),
            shopify_throttle: Default::default(),
            deposco: Default::default(),
            seed: true,
            secret_key: None,
        }
    }
}

/// The secret key a harness gave a database in this process: a test that
/// starts a second harness on the same database (a loop over settings, say)
/// gets the first one's key, since `serve` refuses a key that does not open
/// the stored credentials.
fn key_of_database(database_url: &str, new: impl FnOnce() -> String) -> String {
    static KEYS: std::sync::LazyLock<std::sync::Mutex<std::collections::HashMap<String, String>>> =
        std::sync::LazyLock::new(Default::default);
    let mut keys = KEYS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    keys.entry(database_url.to_string())
        .or_insert_with(new)
        .clone()
}

/// Engine settings for tests and the demo: short waits, same logic.
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

pub struct Harness {
    pub server: Option<Running>,
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

/// A browser's session with the web UI: cookies kept by hand, redirects
/// not followed (so that each hop can be seen). For the install flow, which
/// a person does in a browser.
pub struct Session {
    http: reqwest::Client,
    base: String,
    cookies: Vec<(String, String)>,
    /// The CSRF token of the signed-in session.
    pub csrf: String,
}

/// One answer to a [`Session`]: status, `Location` (empty when none), body.
#[derive(Debug, Clone)]
pub struct Hop {
    pub status: u16,
    pub location: String,
    pub body: String,
}

impl Session {
    /// Signs `email` in at `base` (the server's URL).
    pub async fn sign_in(base: &str, email: &str, password: &str) -> Result<Self> {
        let mut s = Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(60))
                .build()?,
            base: base.trim_end_matches('/').to_string(),
            cookies: Vec::new(),
            csrf: String::new(),
        };
        let login = s.get("/login").await?;
        let token = csrf_of(&login.body)?;
        let signed = s
            .post(
                "/login",
                &[("csrf", &token), ("email", email), ("password", password)],
            )
            .await?;
        if signed.status != 303 || signed.location != "/" {
            bail!(
                "sign-in of {email} failed: HTTP {} {}",
                signed.status,
                signed.body
            );
        }
        let home = s.get("/").await?;
        s.csrf = csrf_of(&home.body)?;
        Ok(s)
    }

    fn keep(&mut self, resp: &reqwest::Response) {
        for v in resp.headers().get_all("set-cookie") {
            let v = v.to_str().unwrap_or("");
            if let Some((k, rest)) = v.split_once('=') {
                let val = rest.split(';').next().unwrap_or("").to_string();
                self.cookies.retain(|(n, _)| n != k);
                self.cookies.push((k.to_string(), val));
            }
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn hop(&mut self, resp: reqwest::Response) -> Result<Hop> {
        self.keep(&resp);
        let location = resp
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap_or_default();
        Ok(Hop {
            status,
            location,
            body,
        })
    }

    /// GET a path of the server, or a full URL (another host gets no cookies).
    pub async fn get(&mut self, path_or_url: &str) -> Result<Hop> {
        let ours = !path_or_url.contains("://");
        let url = if ours {
            format!("{}{path_or_url}", self.base)
        } else {
            path_or_url.to_string()
        };
        let mut req = self.http.get(url);
        if ours || path_or_url.starts_with(&self.base) {
            req = req.header("cookie", self.cookie_header());
        }
        let resp = req.send().await?;
        self.hop(resp).await
    }

    /// POST a form to a path of the server.
    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Result<Hop> {
        let body: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await?;
        self.hop(resp).await
    }
}

/// The `csrf` hidden field of a page's first form.
fn csrf_of(page: &str) -> Result<String> {
    let at = page
        .find("name=\"csrf\" value=\"")
        .ok_or_else(|| anyhow!("no csrf field in the page"))?
        + 19;
    Ok(page[at..].split('"').next().unwrap_or("").to_string())
}

/// The app the harness's Shopify sandbox knows, for the install flow and
/// client credentials.
pub const APP_CLIENT_ID: &str = "sandbox-app";
pub const APP_CLIENT_SECRET: &str = "sandbox-app-secret-0123456789";

impl Harness {
    /// Registers the harness's app in the Shopify sandbox, with this
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

    /// Switches the harness's connection to the install flow and connects
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
    pub async fn install_with(&self, session: &mut Session, csrf: &str) -> Result<Hop> {
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

    pub async fn start(opts: Options) -> Result<Self> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let shopify = ShopifySandbox::new(shipsync_sandbox_shopify::SandboxConfig {
            access_token: SHOPIFY_TOKEN.into(),
            throttle: opts.shopify_throttle,
            ..Default::default()
        })
        .start("127.0.0.1:0".parse()?)
        .await?;
        let deposco = DeposcoSandbox::new(opts.deposco.clone())
            .start("127.0.0.1:0".parse()?)
            .await?;
        let token = shipsync_engine::secrets::random_token("adm");
        let mut key = [0u8; 32];
        rand::Rng::fill_bytes(&mut rand::rng(), &mut key);
        let settings = Settings {
            database_url: opts.database_url.clone().into(),
            listen: "127.0.0.1:0".into(),
            public_url: "http://127.0.0.1:0".into(),
            webhook_max_bytes: opts.webhook_max_bytes,
            webhook_max_in_flight: opts.webhook_max_in_flight,
            max_connections: opts.max_connections,
            max_connections_per_client: opts.max_connections_per_client,
            trusted_proxies: opts.trusted_proxies.clone(),
            header_timeout: opts.header_timeout,
            idle_timeout: opts.idle_timeout,
            body_timeout: opts.body_timeout,
            log_format: LogFormat::Json,
            log_filter: None,
            admin_token: Some(token.clone().into()),
            secret_key: Some(
                opts.secret_key
                    .clone()
                    .unwrap_or_else(|| {
                        key_of_database(&opts.database_url, || {
                            key.iter().map(|b| format!("{b:02x}")).collect()
                        })
                    })
                    .into(),
            ),
            // The sandboxes listen on loopback; a test may turn it off and
            // restart the server (`settings` is public).
            allow_private_targets: true,
            storage: crate::config::Storage::default(),
            // What the engine below runs with.
            jobs: crate::config::Jobs::from(&opts.engine),
        };
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
                "store": {"platform": "shopify", "shop_url": h.shopify.url, "access_token": SHOPIFY_TOKEN},
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

    /// Creates a store order from a full spec.
    pub fn place_order_spec(&mut self, spec: OrderSpec) -> shipsync_sandbox_shopify::CreatedOrder {
        self.shopify.sandbox.create_order(spec)
    }

    /// The signing for webhooks of this harness's merchant.
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

    /// The shipment shipsync made of a Deposco shipment number.
    pub async fn shipment_by_number(&self, number: &str) -> Result<Option<Value>> {
        let list = self
            .api(
                "GET",
                &format!(
                    "/api/v1/shipments?merchant_id={}&limit=500",
                    self.merchant_id
                ),
                None,
            )
            .await?
            .ok(200)?;
        for item in list["items"].as_array().cloned().unwrap_or_default() {
            if item["warehouse_shipment_number"] == number {
                let id = item["id"].as_str().unwrap_or_default();
                return Ok(Some(
                    self.api("GET", &format!("/api/v1/shipments/{id}"), None)
                        .await?
                        .ok(200)?,
                ));
            }
        }
        Ok(None)
    }

    /// Waits until the shipment reaches one of `statuses` (and has no job
    /// left), returning it.
    pub async fn wait_shipment(
        &self,
        number: &str,
        statuses: &[&str],
        timeout: Duration,
    ) -> Result<Value> {
        let start = Instant::now();
        let mut last = Value::Null;
        while start.elapsed() < timeout {
            // Read after the queue is seen empty, so the answer is not older
            // than the last job's writes.
            if self.idle().await?
                && let Some(s) = self.shipment_by_number(number).await?
            {
                if statuses.iter().any(|x| s["status"] == *x) {
                    return Ok(s);
                }
                last = s;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        bail!("shipment {number} did not reach {statuses:?} within {timeout:?}; last seen: {last}")
    }

    /// True when no job is queued or running.
    pub async fn idle(&self) -> Result<bool> {
        let engine = self.engine().context("server stopped")?;
        Ok(engine.db().count_jobs().await? == 0)
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

    /// Stops the server (the database and sandboxes stay).
    pub async fn stop_server(&mut self) {
        if let Some(s) = self.server.take() {
            s.stop().await;
        }
    }

    /// Starts the server again on the same database.
    pub async fn restart_server(&mut self) -> Result<()> {
        self.stop_server().await;
        let running = server::start(&self.settings, self.engine_config.clone()).await?;
        // The webhook URL carries the old port: rebuild it on the new one.
        let key = self
            .webhook_url
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_string();
        self.webhook_url = format!("{}/webhooks/deposco/{key}", running.url);
        self.server = Some(running);
        Ok(())
    }

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
