//! The demo's world as the integration tests drive it: the same start, with
//! the helpers only tests need (waiting for a shipment, restarting the
//! server, one secret key per database).

use std::ops::{Deref, DerefMut};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use secrecy::ExposeSecret;
use serde_json::Value;
use shipsync::demo::world::{Options, World, random_secret_key};
use shipsync_sandbox_shopify::{CreatedOrder, OrderSpec};

/// A [`World`] under test; everything of the world is reached through it
/// (`h.api(…)`, `h.shopify`, …).
pub struct Harness {
    world: World,
}

impl Deref for Harness {
    type Target = World;

    fn deref(&self) -> &World {
        &self.world
    }
}

impl DerefMut for Harness {
    fn deref_mut(&mut self) -> &mut World {
        &mut self.world
    }
}

/// The secret key harnesses gave a database in this process: a test that
/// starts a second harness on the same database (a loop over settings, say)
/// gets the first one's key, since `serve` refuses a key that does not open
/// the stored credentials.
fn key_of_database(database_url: &str) -> String {
    static KEYS: std::sync::LazyLock<std::sync::Mutex<std::collections::HashMap<String, String>>> =
        std::sync::LazyLock::new(Default::default);
    let mut keys = KEYS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    keys.entry(database_url.to_string())
        .or_insert_with(random_secret_key)
        .clone()
}

impl Harness {
    /// Starts a world; without a secret key in `opts.settings`, the one this
    /// process's harnesses already gave the database, else a new one.
    pub async fn start(mut opts: Options) -> Result<Self> {
        if opts.settings.secret_key.is_none() {
            opts.settings.secret_key =
                Some(key_of_database(opts.settings.database_url.expose_secret()).into());
        }
        Ok(Self {
            world: World::start(opts).await?,
        })
    }

    /// A connection of its own to the world's database, for tests that look
    /// at (or age) stored rows directly.
    pub async fn db(&self) -> Result<shipsync_db::Db> {
        Ok(shipsync_db::Db::connect(self.settings.database_url.expose_secret()).await?)
    }

    /// Creates a store order from a full spec.
    pub fn place_order_spec(&mut self, spec: OrderSpec) -> CreatedOrder {
        self.shopify.sandbox.create_order(spec)
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

    /// Starts the server again on the same database, with `self.settings`
    /// (which a test may have changed).
    pub async fn restart_server(&mut self) -> Result<()> {
        self.stop_server().await;
        let running = shipsync::server::start(&self.settings, self.engine_config.clone()).await?;
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

    /// Stops the server and the sandboxes.
    pub async fn shutdown(self) {
        self.world.shutdown().await;
    }
}
