//! Deposco REST API client: shipments (the scheduled pull and re-fetches),
//! sales orders (create, update, status, cancellations: what each status
//! still allows is [`SalesOrderStage`]), items (kit recipes), and a
//! connection check.
//!
//! What it takes care of, so callers do not:
//! - auth: OAuth2 refresh-token grant (token cached until a minute before
//!   `expires_in`, refreshed once on a 401 and the call retried once), or
//!   HTTP Basic;
//! - the account rate limit: every request, token requests included, first
//!   waits for the account's [`RateBudget`] (a [`RateLimiter`] in this
//!   process, or one the caller shares between processes); a 429 pauses
//!   everybody sharing it for `Retry-After` (default 1 s) and the call is
//!   retried;
//! - retries: 409 (concurrent update) and 5xx/timeouts/connection errors a
//!   few times with jittered backoff ([`RetryPolicy`]), except that a
//!   cancellation of units is repeated only when Deposco cannot have
//!   received it (it would cancel them twice); other 4xx are never retried;
//! - paging: `next` links followed as given (they carry `searchId`); nested
//!   `shipmentLines`/`orderLines` marked `complete: false` are replaced by
//!   the full sub-resource before anything is parsed;
//! - parsing: shipment records go through [`crate::webhook::parse_json_value`]
//!   (the webhook's current-API shape is the REST DTO).
//!
//! Credentials are [`secrecy::SecretString`]s and are never logged.
//!
//! ```no_run
//! # async fn demo() -> Result<(), shipsync_deposco::api::DeposcoError> {
//! use shipsync_deposco::api::*;
//! use shipsync_outbound::TargetPolicy;
//! let config = DeposcoConfig::new(
//!     "https://api.deposco.com/latest",
//!     "ACME",
//!     Auth::Basic { username: "user".into(), password: "secret".to_owned().into() },
//! );
//! let limiter = shared_limiter(&config.limiter_key());
//! let client = DeposcoClient::new(DeposcoClient::http_client(TargetPolicy::PUBLIC_ONLY)?, config, limiter)?;
//! client.check().await?;
//! let since = "2026-01-01T00:00:00Z".parse().expect("a timestamp");
//! let mut page = client.shipments_page(since, None).await?;
//! while let Some(next) = page.next.clone() {
//!     page = client.shipments_page(since, Some(&next)).await?;
//! }
//! # Ok(()) }
//! ```

mod client;
mod config;
mod error;
mod lifecycle;
mod limiter;
mod model;

pub use client::DeposcoClient;
pub use config::{Auth, DeposcoConfig, MAX_PAGE_SIZE, RetryPolicy};
pub use error::DeposcoError;
pub use lifecycle::{
    STATUS_CANCELED, STATUS_HOLD, STATUS_NEW, SalesOrderStage, status_change_allowed,
};
pub use limiter::{
    BudgetFuture, DEFAULT_BURST, DEFAULT_RATE, RateBudget, RateLimiter, shared_limiter,
};
pub use model::{FailedShipment, Item, KitComponent, PulledShipment, SalesOrderLine, ShipmentPage};
