//! One Shopify client per connection, kept so that its throttle budget
//! (learned from `throttleStatus`) persists between jobs; on PostgreSQL the
//! store's cost bucket is shared with the other nodes (see `budgets`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use secrecy::SecretString;
use shipsync_db::rows::ConnectionRow;
use shipsync_outbound::TargetPolicy;
use shipsync_shopify::{ShopifyClient, Timeouts};

use crate::budgets::Budgets;
use crate::pipeline::EngineError;
use crate::secrets::SecretBox;

/// Non-secret store settings of a connection, as stored.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct StoreSettings {
    pub platform: String,
    pub shop_url: String,
    pub api_version: String,
    pub location_id: Option<String>,
    pub notify_customer: bool,
}

pub struct Stores {
    http: reqwest::Client,
    timeout: Duration,
    clients: Mutex<HashMap<String, (i64, ShopifyClient)>>,
    budgets: Budgets,
}

impl Stores {
    pub fn new(
        timeout: Duration,
        policy: TargetPolicy,
        budgets: Budgets,
    ) -> Result<Self, EngineError> {
        let timeouts = Timeouts {
            total: timeout,
            ..Timeouts::default()
        };
        let http = ShopifyClient::http_client(&timeouts, policy)
            .map_err(|e| EngineError::Internal(e.to_string()))?;
        Ok(Self {
            http,
            timeout,
            clients: Mutex::new(HashMap::new()),
            budgets,
        })
    }

    pub fn client(
        &self,
        c: &ConnectionRow,
        secrets: &SecretBox,
    ) -> Result<(ShopifyClient, StoreSettings), EngineError> {
        let settings: StoreSettings = serde_json::from_str(&c.store_json).map_err(|e| {
            EngineError::Internal(format!("connection {} store settings: {e}", c.id))
        })?;
        if let Ok(map) = self.clients.lock()
            && let Some((at, client)) = map.get(&c.id)
            && *at == c.updated_at
        {
            return Ok((client.clone(), settings));
        }
        let client = self.build(c, &settings, secrets)?;
        if let Ok(mut map) = self.clients.lock() {
            map.insert(c.id.clone(), (c.updated_at, client.clone()));
        }
        Ok((client, settings))
    }

    /// A client for a connection that is not kept (one not saved yet, say).
    pub fn uncached(
        &self,
        c: &ConnectionRow,
        secrets: &SecretBox,
    ) -> Result<ShopifyClient, EngineError> {
        let settings: StoreSettings = serde_json::from_str(&c.store_json).map_err(|e| {
            EngineError::Internal(format!("connection {} store settings: {e}", c.id))
        })?;
        self.build(c, &settings, secrets)
    }

    fn build(
        &self,
        c: &ConnectionRow,
        settings: &StoreSettings,
        secrets: &SecretBox,
    ) -> Result<ShopifyClient, EngineError> {
        let token = match &c.store_token {
            Some(sealed) => secrets
                .open_string(sealed)
                .map_err(|e| EngineError::Permanent(e.to_string()))?,
            None => {
                return Err(EngineError::Permanent(format!(
                    "connection {} has no store access token: set store.access_token",
                    c.id
                )));
            }
        };
        let client = ShopifyClient::new(
            self.http.clone(),
            &settings.shop_url,
            &settings.api_version,
            SecretString::from(token),
        )
        .map_err(|e| EngineError::Permanent(format!("connection {}: {e}", c.id)))?
        .with_timeouts(Timeouts {
            total: self.timeout,
            ..Timeouts::default()
        });
        let client = match self.budgets.shopify(&settings.shop_url) {
            Some(shared) => client.with_cost_budget(shared),
            None => client,
        };
        Ok(client)
    }

    /// The rate budgets of this node (warehouse accounts too).
    pub(crate) fn budgets(&self) -> &Budgets {
        &self.budgets
    }

    /// The shared HTTP client (timeouts and target policy set), for other
    /// platforms' clients.
    pub fn http(&self) -> reqwest::Client {
        self.http.clone()
    }

    pub fn forget(&self, connection_id: &str) {
        if let Ok(mut map) = self.clients.lock() {
            map.remove(connection_id);
        }
    }
}
