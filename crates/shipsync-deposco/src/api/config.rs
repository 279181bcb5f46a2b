//! What a connection to one Deposco account needs: the merchant's
//! `warehouse` settings (`docs/contract.md`) plus limits.

use std::time::Duration;

use secrecy::SecretString;

/// How shipsync authenticates: OAuth2 refresh-token grant (current tenants)
/// or HTTP Basic (older tenants). `Debug` never shows the secrets.
#[derive(Debug, Clone)]
pub enum Auth {
    Basic {
        username: String,
        password: SecretString,
    },
    OAuth {
        /// e.g. `https://auth.deposco.com/oauth2/token`.
        token_url: String,
        client_id: String,
        client_secret: SecretString,
        refresh_token: SecretString,
    },
}

impl Auth {
    /// Who is calling (username or client id), without secrets.
    pub fn principal(&self) -> &str {
        match self {
            Auth::Basic { username, .. } => username,
            Auth::OAuth { client_id, .. } => client_id,
        }
    }
}

/// Largest `pageSize` Deposco accepts.
pub const MAX_PAGE_SIZE: u32 = 100;

/// How often a call is tried again before it fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after 429 (each waits `Retry-After`, default 1 s, for
    /// everybody sharing the limiter); then [`super::DeposcoError::RateLimited`].
    pub rate_limited: u32,
    /// Retries after 5xx, 408, timeouts and connection errors; then
    /// [`super::DeposcoError::Transient`].
    pub transient: u32,
    /// Retries after 409 (concurrent update in Deposco).
    pub conflict: u32,
    /// First backoff for transient errors and conflicts; doubles each time
    /// (with jitter), capped at `max_backoff`.
    pub backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            rate_limited: 10,
            transient: 5,
            conflict: 3,
            backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
        }
    }
}

/// One Deposco connection.
#[derive(Debug, Clone)]
pub struct DeposcoConfig {
    /// REST base, e.g. `https://api.deposco.com/latest` (a sandbox in tests):
    /// calls go to `{api_url}/shipments/outboundShipments`, ….
    pub api_url: String,
    pub business_unit: String,
    pub auth: Auth,
    /// Rows per page, 1..=100 (values outside are clamped); default 100.
    pub page_size: u32,
    /// Limit for each HTTP exchange (connect, send, whole answer); default 30 s.
    pub timeout: Duration,
    pub retry: RetryPolicy,
}

impl DeposcoConfig {
    /// Defaults: 100 rows per page, 30 s per request, [`RetryPolicy::default`].
    pub fn new(api_url: impl Into<String>, business_unit: impl Into<String>, auth: Auth) -> Self {
        Self {
            api_url: api_url.into(),
            business_unit: business_unit.into(),
            auth,
            page_size: MAX_PAGE_SIZE,
            timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
        }
    }

    /// Key for [`super::shared_limiter`]: the rate limit is per Deposco
    /// account, i.e. per API host and credentials (not per business unit).
    pub fn limiter_key(&self) -> String {
        let host = url::Url::parse(&self.api_url)
            .ok()
            .and_then(|u| {
                u.host_str()
                    .map(|h| format!("{h}:{}", u.port_or_known_default().unwrap_or(0)))
            })
            .unwrap_or_else(|| self.api_url.trim().to_ascii_lowercase());
        format!("{host}|{}", self.auth.principal())
    }

    pub(crate) fn page_size(&self) -> u32 {
        self.page_size.clamp(1, MAX_PAGE_SIZE)
    }
}
