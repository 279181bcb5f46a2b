//! The seed article "Deposco – Use Webhooks for Shipments", followed step by
//! step in headless Chromium through ChromeDriver (WebDriver), against the
//! real server and both sandboxes: sign in, create a merchant, edit it to use
//! shipment webhooks (secret left blank, Deposco URL copied), add the
//! connection, enable its Shipments channel, replace its schedule with one
//! daily run at 12:00 am; then a webhook posted to the copied URL and the
//! shipment seen reaching "completed" in the UI.
//!
//! Every failing step saves a screenshot to `target/screenshots/`. With
//! `SHIPSYNC_UPDATE_SCREENSHOTS=1` the SQLite run also rewrites the
//! screenshots committed under `docs/screenshots/`.
//!
//! Skipped with a notice when `/usr/bin/chromedriver` is not installed
//! (`.ci/run` installs Debian's `chromium` and `chromium-driver`).

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use shipsync_engine::users::Role;
use shipsync_sandbox_deposco::{LineSpec, PackageSpec, Shape, ShipmentSpec, Signing};
use shipsync_testkit::{APP_CLIENT_ID, APP_CLIENT_SECRET, Harness, Options};

use crate::support::SETTLE;

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
const WINDOW: (u32, u32) = (1366, 900);
/// Bound for one element or page to appear (normally milliseconds).
const WAIT: Duration = Duration::from_secs(15);
const POLL: Duration = Duration::from_millis(100);

const EMAIL: &str = "ops@example.com";
const PASSWORD: &str = "a long password for the browser";

/// ChromeDriver on a free loopback port, in its own process group (so the
/// Chromium it starts goes with it), with a fresh, empty Chromium profile.
struct Driver {
    child: Child,
    url: String,
    profile: PathBuf,
}

impl Driver {
    async fn start() -> Option<Self> {
        if !Path::new(CHROMEDRIVER).exists() || !Path::new(CHROMIUM).exists() {
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let profile = std::env::temp_dir().join(format!(
            "shipsync-chromium-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&profile).expect("profile dir");
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start chromedriver");
        let driver = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            profile,
        };
        // Ready when /status says so.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::new();
        let start = Instant::now();
        loop {
            if let Ok(r) = http.get(format!("{}/status", driver.url)).send().await
                && let Ok(v) = r.json::<Value>().await
                && v["value"]["ready"] == true
            {
                return Some(driver);
            }
            assert!(
                start.elapsed() < WAIT,
                "chromedriver did not answer {}/status within {WAIT:?}",
                driver.url
            );
            tokio::time::sleep(POLL).await;
        }
    }

    async fn session(&self) -> Client {
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            &format!("--window-size={},{}", WINDOW.0, WINDOW.1),
            &format!("--user-data-dir={}", self.profile.display()),
        ];
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({"binary": CHROMIUM, "args": args}),
        );
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&self.url)
            .await
            .expect("a Chromium session from chromedriver")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The whole group: chromedriver and the Chromium it started.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// The cargo target directory (the test binary is `<target>/<profile>/deps/it-…`).
fn target_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.ancestors().nth(3).map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"))
}

/// A signed-in browser tab, and the step of the article being followed.
struct Browser {
    client: Client,
    base: String,
    test: String,
    step: Mutex<String>,
}

impl Browser {
    fn step(&self, name: &str) {
        *self.step.lock().unwrap() = name.to_string();
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn goto(&self, path: &str) -> Result<()> {
        self.client
            .goto(&self.url(path))
            .await
            .with_context(|| format!("open {path}"))
    }

    /// Polls `f` until it gives `Some`, for at most `timeout`.
    async fn until<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut f: impl AsyncFnMut() -> Result<Option<T>>,
    ) -> Result<T> {
        let start = Instant::now();
        loop {
            let last = match f().await {
                Ok(Some(v)) => return Ok(v),
                Ok(None) => "not yet".to_string(),
                Err(e) => format!("{e:#}"),
            };
            if start.elapsed() > timeout {
                bail!("waited {timeout:?} for {what} (last check: {last})");
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The first displayed element matching `loc`.
    async fn displayed(&self, loc: Locator<'_>) -> Result<Option<Element>> {
        for e in self.client.find_all(loc).await? {
            if e.is_displayed().await? {
                return Ok(Some(e));
            }
        }
        Ok(None)
    }

    /// Waits until an element matching the CSS selector is displayed.
    async fn find(&self, css: &str) -> Result<Element> {
        self.until(&format!("`{css}` to be displayed"), WAIT, async || {
            self.displayed(Locator::Css(css)).await
        })
        .await
    }

    async fn gone(&self, css: &str) -> Result<()> {
        self.until(&format!("`{css}` to be gone"), WAIT, async || {
            Ok(self
                .displayed(Locator::Css(css))
                .await?
                .is_none()
                .then_some(()))
        })
        .await
    }

    async fn click(&self, css: &str) -> Result<()> {
        self.find(css).await?.click().await.context(css.to_string())
    }

    /// Clicks the displayed `tag` whose visible text is exactly `text`.
    async fn click_text(&self, tag: &str, text: &str) -> Result<()> {
        let xpath = format!("//{tag}[normalize-space()='{text}']");
        let e = self
            .until(&format!("a {tag} \"{text}\""), WAIT, async || {
                self.displayed(Locator::XPath(&xpath)).await
            })
            .await?;
        e.click()
            .await
            .with_context(|| format!("click {tag} \"{text}\""))
    }

    async fn fill(&self, css: &str, value: &str) -> Result<()> {
        let e = self.find(css).await?;
        e.clear().await.with_context(|| format!("clear {css}"))?;
        e.send_keys(value)
            .await
            .with_context(|| format!("type into {css}"))
    }

    async fn value(&self, css: &str) -> Result<String> {
        let e = self.client.find(Locator::Css(css)).await?;
        Ok(e.prop("value").await?.unwrap_or_default())
    }

    async fn text(&self, css: &str) -> Result<String> {
        Ok(self.find(css).await?.text().await?)
    }

    /// Waits until the element's text contains `needle`.
    async fn wait_text(&self, css: &str, needle: &str) -> Result<String> {
        self.until(&format!("`{css}` to read \"{needle}\""), WAIT, async || {
            let t = self.text(css).await?;
            Ok(t.contains(needle).then_some(t))
        })
        .await
    }

    /// Waits until the page's path (without the query) matches.
    async fn wait_path(&self, what: &str, ok: impl Fn(&str) -> bool) -> Result<String> {
        self.until(&format!("the page {what}"), WAIT, async || {
            let u = self.client.current_url().await?;
            Ok(ok(u.path()).then(|| u.path().to_string()))
        })
        .await
    }

    async fn png(&self) -> Result<Vec<u8>> {
        Ok(self.client.screenshot().await?)
    }

    /// The whole page (the window grown to the document's height, at most
    /// 2400 pixels).
    async fn full_page_png(&self) -> Result<Vec<u8>> {
        let h = self
            .client
            .execute(
                // The window is taller than the page's viewport by the
                // browser's own bars.
                "return Math.ceil(document.documentElement.scrollHeight \
                 + window.outerHeight - window.innerHeight);",
                vec![],
            )
            .await?
            .as_u64()
            .unwrap_or(WINDOW.1 as u64)
            .clamp(WINDOW.1 as u64, 2400) as u32;
        self.client.set_window_size(WINDOW.0, h).await?;
        let png = self.png().await;
        self.client.set_window_size(WINDOW.0, WINDOW.1).await?;
        png
    }

    /// Rewrites `docs/screenshots/<name>` when asked to
    /// (`SHIPSYNC_UPDATE_SCREENSHOTS=1`, SQLite run only).
    async fn doc_shot(&self, name: &str) -> Result<()> {
        if std::env::var("SHIPSYNC_UPDATE_SCREENSHOTS").as_deref() != Ok("1")
            || !self.test.ends_with("sqlite")
        {
            return Ok(());
        }
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots");
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(name), self.full_page_png().await?)?;
        Ok(())
    }

    /// On failure: a screenshot of the failing step, the session closed, and a
    /// panic naming both.
    async fn finish(self, result: Result<()>) {
        let step = self.step.lock().unwrap().clone();
        let failure = match result {
            Ok(()) => None,
            Err(e) => {
                let dir = target_dir().join("screenshots");
                let path = dir.join(format!("{}-{step}.png", self.test));
                let saved = match self.png().await {
                    Ok(png) => std::fs::create_dir_all(&dir)
                        .and_then(|_| std::fs::write(&path, png))
                        .map(|_| format!("screenshot saved to {}", path.display()))
                        .unwrap_or_else(|w| format!("screenshot not saved: {w}")),
                    Err(s) => format!("no screenshot: {s:#}"),
                };
                let at = self
                    .client
                    .current_url()
                    .await
                    .map(|u| u.to_string())
                    .unwrap_or_default();
                Some(format!(
                    "{}: step `{step}` failed at {at}: {e:#}\n{saved}",
                    self.test
                ))
            }
        };
        let _ = self.client.clone().close().await;
        if let Some(msg) = failure {
            panic!("{msg}");
        }
    }
}

async fn deposco_webhooks_article(db_url: String) {
    let backend = if shipsync_db::Backend::of_url(&db_url) == Some(shipsync_db::Backend::Sqlite) {
        "sqlite"
    } else {
        "postgres"
    };
    let Some(driver) = Driver::start().await else {
        eprintln!("skipped: {CHROMEDRIVER} or {CHROMIUM} is not installed");
        return;
    };
    // No merchant and no connection: the article creates them.
    let mut h = Harness::start(Options {
        seed: false,
        ..Options::new(db_url)
    })
    .await
    .expect("harness");
    // The first administrator, as `shipsync users create --admin` makes it.
    h.engine()
        .expect("engine")
        .create_user(EMAIL, PASSWORD, Role::Admin, &[])
        .await
        .expect("admin user");
    let b = Browser {
        client: driver.session().await,
        base: h.url(),
        test: format!("deposco_webhooks_article-{backend}"),
        step: Mutex::new("start".into()),
    };
    let result = article(&b, &mut h).await;
    b.finish(result).await;
    h.shutdown().await;
    drop(driver);
}

both_backends!(deposco_webhooks_article);

/// A JSON API read (admin token).
async fn api(h: &Harness, path: &str) -> Result<Value> {
    h.api("GET", path, None).await?.ok(200)
}

async fn article(b: &Browser, h: &mut Harness) -> Result<()> {
    b.step("sign-in");
    b.goto("/").await?;
    b.wait_path("to be the sign-in page", |p| p == "/login")
        .await?;
    b.fill("#email", EMAIL).await?;
    b.fill("#password", PASSWORD).await?;
    b.click_text("button", "Sign in").await?;
    b.wait_path("to be the dashboard", |p| p == "/").await?;
    b.wait_text("main h1", "Dashboard").await?;

    // "Save its other options first to create the merchant."
    b.step("create-merchant");
    b.click("nav.sidebar a[href='/merchants']").await?;
    b.wait_text("main h1", "Merchants").await?;
    b.click_text("a", "Add merchant").await?;
    let note = b.text("main .notice").await?;
    ensure!(
        note.contains("save this merchant first") && note.contains("Use webhooks for shipments"),
        "the create page explains webhooks come after saving: {note:?}"
    );
    b.fill("#name", "Acme Outdoor").await?;
    b.fill("#api_url", &h.deposco.url).await?;
    b.fill("#business_unit", "ACME").await?;
    b.fill("#username", "sandbox").await?;
    b.fill("#password", "sandbox").await?;
    b.click_text("button", "Save").await?;
    b.wait_text(".flash", "Merchant Acme Outdoor saved.")
        .await?;

    // 1. Merchants, then the merchant's name.
    b.step("edit-merchant");
    b.click("nav.sidebar a[href='/merchants']").await?;
    b.click_text("a", "Acme Outdoor").await?;
    let merchant_path = b
        .wait_path("to be the merchant's edit page", |p| {
            p.starts_with("/merchants/mer")
        })
        .await?;
    let merchant_id = merchant_path.trim_start_matches("/merchants/").to_string();
    b.wait_text("main h1", "Acme Outdoor").await?;
    // 2. Check "Use webhooks for shipments".
    let check = b.find("#webhooks_enabled").await?;
    ensure!(
        !check.is_selected().await?,
        "a new merchant starts without webhooks"
    );
    check.click().await?;
    ensure!(check.is_selected().await?, "the box is checked");
    // 3. Leave "Webhook Shared Secret" blank.
    ensure!(
        b.value("#shared_secret").await?.is_empty(),
        "the secret field is blank"
    );
    // 4. Copy the Deposco URL.
    let copied = b.value("#deposco_url").await?;
    ensure!(
        copied.starts_with(&format!("{}/webhooks/deposco/", h.url())),
        "the Deposco URL is the server's webhook endpoint: {copied:?}"
    );
    b.click("button[data-copy='deposco_url']").await?;
    b.wait_text("button[data-copy='deposco_url']", "Copied")
        .await?;
    // 5. Save Changes.
    b.click_text("button", "Save Changes").await?;
    b.wait_text(".flash", "Changes saved.").await?;
    ensure!(
        b.find("#webhooks_enabled").await?.is_selected().await?,
        "still checked after saving"
    );
    ensure!(
        b.value("#deposco_url").await? == copied,
        "saving keeps the Deposco URL"
    );
    let m = api(h, &format!("/api/v1/merchants/{merchant_id}")).await?;
    ensure!(
        m["shipment_webhooks"]["enabled"] == true
            && m["shipment_webhooks"]["shared_secret_set"] == false
            && m["shipment_webhooks"]["url"] == copied.as_str(),
        "the merchant as saved: {m}"
    );
    b.doc_shot("merchant-webhooks.png").await?;

    // The merchant's connection to its Shopify store (the sandbox).
    b.step("add-connection");
    b.click("nav.sidebar a[href='/connections']").await?;
    b.wait_text("main h1", "Connections").await?;
    b.click_text("a", "Add connection").await?;
    b.fill("#name", "Acme Shopify").await?;
    b.find("#merchant_id")
        .await?
        .select_by_label("Acme Outdoor")
        .await?;
    b.fill("#shop_url", &h.shopify.url).await?;
    // Since 2026: a Dev Dashboard app, installed from its link. The
    // sandbox store approves at once and sends the browser back.
    h.register_app(86_399, None);
    b.click("#store-auth-authorization_code").await?;
    b.fill("#client_id", APP_CLIENT_ID).await?;
    b.fill("#client_secret", APP_CLIENT_SECRET).await?;
    b.click("#save-connect").await?;
    b.wait_path("to be the new connection", |p| {
        p.starts_with("/connections/con")
    })
    .await?;
    b.wait_text("main", "Connected to Shopify").await?;
    b.wait_text("#store-auth", "connected").await?;

    // 1. Connections, then the merchant's connection name.
    b.step("open-connection");
    b.click("nav.sidebar a[href='/connections']").await?;
    b.click_text("a", "Acme Shopify").await?;
    let conn_path = b
        .wait_path("to be the connection", |p| {
            p.starts_with("/connections/con")
        })
        .await?;
    let conn_id = conn_path.trim_start_matches("/connections/").to_string();
    // 2. The Shipments tab.
    b.click("nav.tabs a[href$='tab=shipments']").await?;
    b.wait_text("nav.tabs a.active", "Shipments").await?;
    b.wait_text("#channel h2", "Shipments").await?;

    // 3. Enable order status import (and the connection, new ones start off).
    b.step("enable-shipments");
    if b.displayed(Locator::XPath(
        "//button[normalize-space()='Enable connection']",
    ))
    .await?
    .is_some()
    {
        b.click_text("button", "Enable connection").await?;
        b.until("the connection to be enabled", WAIT, async || {
            let on = b
                .displayed(Locator::XPath(
                    "//button[normalize-space()='Disable connection']",
                ))
                .await?;
            Ok(on.map(|_| ()))
        })
        .await?;
    }
    if !b.text("#channel-status").await?.contains("enabled") {
        b.click_text("button", "Enable order status import").await?;
    }
    b.wait_text("#channel-status", "enabled").await?;
    // The default schedule runs every 4 hours: with webhooks on, the card
    // recommends one daily run instead, as the article does.
    let advice = b.text("#recommendation").await?;
    ensure!(
        advice.contains("every day at 12:00 am"),
        "the off-hours recommendation: {advice:?}"
    );

    // 4. Edit Schedule.
    b.step("edit-schedule");
    b.click_text("button", "Edit schedule").await?;
    b.find("#schedule-dialog").await?;
    // 5. Delete next to any existing schedules.
    let rules = b
        .client
        .find_all(Locator::Css("#rules button[data-delete-rule]"))
        .await?;
    ensure!(!rules.is_empty(), "the default schedule is listed");
    for _ in 0..rules.len() {
        b.click("#rules button[data-delete-rule]").await?;
    }
    b.gone("#rules tr").await?;
    // 6. Add Schedule > Every day (the fields follow the choice).
    b.click_text("button", "Add schedule").await?;
    let kind = b.find("#new_kind").await?;
    kind.select_by_value("hourly").await?;
    b.find("#new_minute").await?;
    b.gone("#new_at").await?;
    kind.select_by_label("Every day").await?;
    b.find("#new_at").await?;
    b.gone("#new_minute").await?;
    // 7. An off-hours time: 12:00 am.
    let at = b.value("#new_at").await?;
    ensure!(at == "00:00", "the time defaults to 12:00 am, got {at:?}");
    // 8. Save Changes.
    b.click_text("button", "Save changes").await?;
    b.wait_text(".flash", "Schedule saved.").await?;
    let recurrence = b.text("#recurrence").await?;
    ensure!(
        recurrence == "every day at 12:00 am",
        "the channel's recurrence: {recurrence:?}"
    );
    b.gone("#recommendation").await?;
    b.wait_text("#channel-status", "enabled").await?;
    let ch = api(
        h,
        &format!("/api/v1/connections/{conn_id}/channels/shipments"),
    )
    .await?;
    let sched = ch["schedules"].as_array().cloned().unwrap_or_default();
    ensure!(
        ch["enabled"] == true
            && sched.len() == 1
            && sched[0]["kind"] == "daily"
            && sched[0]["at"] == "00:00",
        "the Shipments channel as saved: {ch}"
    );
    b.doc_shot("connection-shipments-schedule.png").await?;

    // In Deposco: the webhook URL configured; an order ships.
    b.step("post-webhook");
    let (order, _) = h.place_order(&[("A", 2)]);
    let record = h.deposco.sandbox.add_shipment(
        ShipmentSpec::new(order.trim_start_matches('#'))
            .line(LineSpec::new(1, "A", 2))
            .package(PackageSpec::new("C1", "1Z999AA10123456784").line(1, 2)),
    );
    let number = record.number.clone();
    let answer = h
        .deposco
        .sandbox
        .post_webhook(&number, &copied, Shape::Current, Signing::None)
        .await
        .map_err(|e| anyhow!("post the webhook: {e}"))?;
    ensure!(
        answer.status() == Some(202),
        "the webhook is accepted: {:?}",
        answer.status()
    );

    // The shipment reaches "completed" in the UI.
    b.step("shipment-completed");
    b.click("nav.sidebar a[href='/shipments']").await?;
    b.wait_text("main h1", "Shipments").await?;
    let badge = format!(
        "//table[@id='shipments']//tr[td/a[normalize-space()='{number}']]//span[contains(@class,'status')]"
    );
    b.until(
        &format!("shipment {number} to be listed as completed"),
        SETTLE,
        async || {
            let done = match b.client.find(Locator::XPath(&badge)).await {
                Ok(e) => e.text().await? == "completed",
                Err(_) => false,
            };
            if !done {
                b.client.refresh().await?;
            }
            Ok(done.then_some(()))
        },
    )
    .await?;
    b.click_text("a", &number).await?;
    b.wait_text("#shipment-status", "completed").await?;
    let page = b.text("main").await?;
    for want in [order.as_str(), "1Z999AA10123456784", "webhook"] {
        ensure!(page.contains(want), "the shipment page shows {want:?}");
    }
    let store = h.shopify.sandbox.order(&order).context("the store order")?;
    ensure!(
        store.fulfillments.len() == 1,
        "one fulfillment in the store: {:?}",
        store.fulfillments
    );
    b.doc_shot("shipment-completed.png").await?;
    Ok(())
}

/// Issue 15: a person edits a shipping-method rule on the merchant's
/// mappings page, previews it (the waiting order would clear, nothing is
/// saved or sent), then saves it.
async fn mappings_rule_preview(db_url: String) {
    let backend = if shipsync_db::Backend::of_url(&db_url) == Some(shipsync_db::Backend::Sqlite) {
        "sqlite"
    } else {
        "postgres"
    };
    let Some(driver) = Driver::start().await else {
        eprintln!("skipped: {CHROMEDRIVER} or {CHROMIUM} is not installed");
        return;
    };
    let mut h = Harness::start(Options::new(db_url)).await.expect("harness");
    h.engine()
        .expect("engine")
        .create_user(EMAIL, PASSWORD, Role::Admin, &[])
        .await
        .expect("admin user");
    crate::orders::enable_sales_orders(&h, "").await;
    let mut spec = crate::orders::paid_order("#6001", &[("A", 1)]);
    spec.shipping_line = Some("Free shipping over $50".into());
    spec.shipping_line_code = Some("FREE50".into());
    h.place_order_spec(spec);
    crate::orders::run_orders(&h).await;
    crate::orders::wait_order(&h, "#6001", "error").await;
    let b = Browser {
        client: driver.session().await,
        base: h.url(),
        test: format!("mappings_rule_preview-{backend}"),
        step: Mutex::new("start".into()),
    };
    let result = edit_and_preview_a_rule(&b, &h).await;
    b.finish(result).await;
    h.shutdown().await;
    drop(driver);
}

both_backends!(mappings_rule_preview);

async fn edit_and_preview_a_rule(b: &Browser, h: &Harness) -> Result<()> {
    let mappings = format!("/api/v1/merchants/{}/mappings", h.merchant_id);
    let stored = api(h, &mappings).await?;
    b.step("sign-in");
    b.goto("/login").await?;
    b.fill("#email", EMAIL).await?;
    b.fill("#password", PASSWORD).await?;
    b.click_text("button", "Sign in").await?;
    b.wait_path("to be the dashboard", |p| p == "/").await?;

    b.step("open-mappings");
    b.goto(&format!("/merchants/{}", h.merchant_id)).await?;
    b.click("#mappings-link").await?;
    b.wait_text("main h1", "Mappings").await?;
    ensure!(
        b.value("input[name='rule0_ship_via']").await?
            == stored["ship_methods"]["rules"][0]["ship_via"]
                .as_str()
                .unwrap_or_default(),
        "the first rule is the stored one"
    );

    // Edit the first rule: it now takes the store's free-shipping title.
    b.step("edit-rule");
    b.fill("input[name='rule0_title']", "Free shipping over $50")
        .await?;
    b.fill("input[name='rule0_code']", "").await?;
    b.fill("input[name='rule0_ship_via']", "UPS Ground").await?;
    b.fill("input[name='rule0_carrier']", "UPS").await?;
    b.fill("input[name='rule0_service']", "Ground").await?;

    b.step("preview");
    b.click("#preview").await?;
    let table = b.wait_text("#preview-result", "#6001").await?;
    ensure!(
        table.contains("shipVia")
            && table.contains("UPS Ground")
            && table.contains("error → queued"),
        "the preview shows the order's new ship via and its error clearing: {table:?}"
    );
    ensure!(
        b.value("input[name='rule0_ship_via']").await? == "UPS Ground",
        "the form keeps the edit after previewing"
    );
    ensure!(
        api(h, &mappings).await? == stored,
        "previewing saved nothing"
    );
    ensure!(
        h.deposco.sandbox.sales_orders().is_empty(),
        "previewing sent nothing"
    );
    b.doc_shot("mappings-preview.png").await?;

    b.step("save");
    b.click("#save").await?;
    b.wait_text(".flash", "Mappings saved.").await?;
    let saved = api(h, &mappings).await?;
    ensure!(
        saved["ship_methods"]["rules"][0]["match"]["title"] == "Free shipping over $50"
            && saved["ship_methods"]["rules"][0]["ship_via"] == "UPS Ground"
            && saved["ship_methods"]["rules"].as_array().map(Vec::len)
                == stored["ship_methods"]["rules"].as_array().map(Vec::len),
        "the edited rule is saved in place: {saved}"
    );
    Ok(())
}
