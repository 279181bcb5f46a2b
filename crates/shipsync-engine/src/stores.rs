//! One Shopify client per connection, kept so that its throttle budget
//! (learned from `throttleStatus`) persists between jobs; on PostgreSQL the
//! store's cost bucket is shared with the other nodes (see `budgets`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use secrecy::SecretString;
use shipsync_db::Db;
use shipsync_db::connections::ConnectionRow;
use shipsync_outbound::TargetPolicy;
use shipsync_shopify::auth::AppCredentials;
use shipsync_shopify::{ShopifyClient, Timeouts};

use crate::budgets::Budgets;
use crate::error::EngineError;
use crate::secrets::SecretBox;
use crate::tokens::{KeptTokens, Source, StoreAuth};

/// Non-secret store settings of a connection, as stored.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct StoreSettings {
    pub platform: String,
    pub shop_url: String,
    pub api_version: String,
    pub location_id: Option<String>,
    pub notify_customer: bool,
    /// How the store authenticates; absent: a legacy access token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<StoreAuth>,
}

impl StoreSettings {
    pub fn parse(c: &ConnectionRow) -> Result<Self, EngineError> {
        serde_json::from_str(&c.store_json)
            .map_err(|e| EngineError::Internal(format!("connection {} store settings: {e}", c.id)))
    }

    /// How the store authenticates.
    pub fn auth(&self) -> StoreAuth {
        self.auth.clone().unwrap_or(StoreAuth::AccessToken)
    }
}

pub struct Stores {
    db: Db,
    http: reqwest::Client,
    timeout: Duration,
    clients: Mutex<HashMap<String, (i64, ShopifyClient)>>,
    budgets: Budgets,
}

impl Stores {
    pub fn new(
        db: Db,
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
            db,
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
        let settings = StoreSettings::parse(c)?;
        if let Ok(map) = self.clients.lock()
            && let Some((at, client)) = map.get(&c.id)
            && *at == c.updated_at
        {
            return Ok((client.clone(), settings));
        }
        let client = self.build(c, &settings, secrets, true)?;
        if let Ok(mut map) = self.clients.lock() {
            map.insert(c.id.clone(), (c.updated_at, client.clone()));
        }
        Ok((client, settings))
    }

    /// A client for a connection that is not kept (one not saved yet, say:
    /// `saved` false, and tokens it obtains are not stored).
    pub fn uncached(
        &self,
        c: &ConnectionRow,
        secrets: &SecretBox,
        saved: bool,
    ) -> Result<ShopifyClient, EngineError> {
        let settings = StoreSettings::parse(c)?;
        self.build(c, &settings, secrets, saved)
    }

    fn build(
        &self,
        c: &ConnectionRow,
        settings: &StoreSettings,
        secrets: &SecretBox,
        saved: bool,
    ) -> Result<ShopifyClient, EngineError> {
        let open = |sealed: &Option<Vec<u8>>, field: &str| -> Result<SecretString, EngineError> {
            match sealed {
                Some(sealed) => secrets
                    .open_string(sealed)
                    .map(SecretString::from)
                    .map_err(|e| EngineError::Permanent(e.to_string())),
                None => Err(EngineError::Permanent(format!(
                    "connection {} has no {field}: set it",
                    c.id
                ))),
            }
        };
        let app = |client_id: &str| -> Result<AppCredentials, EngineError> {
            Ok(AppCredentials {
                client_id: client_id.to_owned(),
                client_secret: open(&c.store_client_secret, "store.auth.client_secret")?,
            })
        };
        let source = match settings.auth() {
            StoreAuth::AccessToken => Source::Fixed(open(
                &c.store_token,
                "store access token (store.access_token)",
            )?),
            StoreAuth::ClientCredentials { client_id } => {
                Source::ClientCredentials(app(&client_id)?)
            }
            StoreAuth::AuthorizationCode { client_id, .. } => {
                Source::AuthorizationCode(app(&client_id)?)
            }
        };
        let tokens = KeptTokens::new(
            self.db.clone(),
            secrets.clone(),
            self.http.clone(),
            c.id.clone(),
            settings.shop_url.clone(),
            source,
            saved,
        );
        // The first token is asked for when the first call needs it.
        let placeholder = SecretString::from(String::new());
        let client = ShopifyClient::new(
            self.http.clone(),
            &settings.shop_url,
            &settings.api_version,
            placeholder,
        )
        .map_err(|e| EngineError::Permanent(format!("connection {}: {e}", c.id)))?
        .with_tokens(Arc::new(tokens))
        .with_connection(&c.id)
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
