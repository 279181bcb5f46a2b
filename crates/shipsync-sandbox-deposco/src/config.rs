use serde::{Deserialize, Serialize};

use crate::render::QuantityStyle;

/// How the sandbox behaves. `Default` gives business unit `ACME`, both auth
/// methods with well-known sandbox credentials, and Deposco's limits.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct SandboxConfig {
    pub business_unit: String,
    /// Accepted HTTP Basic credentials (older tenants).
    pub basic: Option<BasicAuth>,
    /// Accepted OAuth client for `POST /oauth2/token`.
    pub oauth: Option<OAuthClient>,
    /// Requests per second for the account (REST and token endpoint together);
    /// `0.0` or `f64::INFINITY` disables the limit.
    pub rate_limit_per_sec: f64,
    /// Requests allowed in a burst before 429s start.
    pub rate_limit_burst: f64,
    pub default_page_size: usize,
    /// Larger `pageSize` values are answered with 400.
    pub max_page_size: usize,
    /// Rows of a nested collection (`shipmentLines`, `orderLines`) shown inside a record.
    pub nested_limit: usize,
    /// `GET /shipments/outboundShipments/{id}` answers `{"outboundShipment": …}` instead of the bare DTO.
    pub wrap_single_shipment: bool,
    /// How JSON quantities are written (webhooks and REST).
    pub quantities: QuantityStyle,
    /// In the JSON mirror, write lone children as objects instead of one-element lists.
    pub mirror_collapse_single: bool,
    /// Lifetime of issued access tokens (`expires_in`).
    pub token_ttl_secs: u64,
    /// Sales orders naming an item not registered with `add_item` are rejected.
    pub items_must_exist: bool,
    /// Sales orders need `shipToContact` and `shipToAddress`, as Deposco's DTO does.
    pub require_ship_to: bool,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            business_unit: "ACME".to_owned(),
            basic: Some(BasicAuth {
                username: "sandbox".to_owned(),
                password: "sandbox".to_owned(),
            }),
            oauth: Some(OAuthClient {
                client_id: "sandbox-client".to_owned(),
                client_secret: "sandbox-secret".to_owned(),
                refresh_token: "sandbox-refresh-token".to_owned(),
            }),
            rate_limit_per_sec: 4.0,
            rate_limit_burst: 4.0,
            default_page_size: 50,
            max_page_size: 100,
            nested_limit: 10,
            wrap_single_shipment: false,
            quantities: QuantityStyle::Integer,
            mirror_collapse_single: false,
            token_ttl_secs: 3600,
            items_must_exist: false,
            require_ship_to: true,
        }
    }
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BasicAuth {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicAuth")
            .field("username", &self.username)
            .field("password", &"***")
            .finish()
    }
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OAuthClient {
    pub client_id: String,
    pub client_secret: String,
    pub refresh_token: String,
}

impl std::fmt::Debug for OAuthClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthClient")
            .field("client_id", &self.client_id)
            .field("client_secret", &"***")
            .field("refresh_token", &"***")
            .finish()
    }
}

/// Injected failures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Faults {
    /// Share (0..1) of `post_webhook` calls that send nothing and report `Dropped`.
    pub drop_webhook_rate: f64,
    /// Share (0..1) of REST requests answered with 500/503.
    pub rest_5xx_rate: f64,
    /// Delay added to every REST request.
    pub slow_ms: u64,
}
