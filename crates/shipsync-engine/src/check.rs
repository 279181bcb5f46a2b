//! "Test connection": one call to the store and one to the warehouse,
//! reported in words an operator can act on — with the stored credentials
//! of a saved connection, or with credentials typed into a form that are
//! not saved yet.
//!
//! The full report quotes what the remote side answered; a user limited to
//! some merchants gets only a status and a classified reason
//! ([`ConnectionTest::summary`]), so that a URL pointed somewhere cannot be
//! used to read that somewhere's answers.

use shipsync_core::states::StoreStatus;
use shipsync_db::connections::{self, ConnectionRow};
use shipsync_db::merchants::{self, MerchantRow};
use shipsync_db::store_auth;
use shipsync_deposco::api::DeposcoError;
use shipsync_shopify::ShopifyError;

use crate::Engine;
use crate::error::EngineError;

/// Why one side of a test failed, without anything the remote side sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestReason {
    /// The credentials are missing here (nothing was sent).
    NotConfigured,
    /// 401/403: the credentials were refused.
    Unauthorized,
    /// 404: wrong URL, API version or business unit.
    NotFound,
    Timeout,
    /// Nothing answered at that address.
    Unreachable,
    /// The address is not public and private targets are not allowed.
    RefusedByPolicy,
    Other,
}

impl TestReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotConfigured => "credentials missing",
            Self::Unauthorized => "unauthorized",
            Self::NotFound => "not found",
            Self::Timeout => "timeout",
            Self::Unreachable => "unreachable",
            Self::RefusedByPolicy => "refused by policy",
            Self::Other => "other error",
        }
    }

    fn of_store(e: &ShopifyError) -> Self {
        match e {
            ShopifyError::Unauthorized(_) => Self::Unauthorized,
            ShopifyError::NotFound(_) => Self::NotFound,
            ShopifyError::Permanent(m) if m.contains(shipsync_outbound::SETTING) => {
                Self::RefusedByPolicy
            }
            ShopifyError::Transient { reason, .. } if reason.starts_with("could not connect") => {
                Self::Unreachable
            }
            ShopifyError::Transient { reason, .. } | ShopifyError::UnknownOutcome { reason }
                if reason.contains("timeout") =>
            {
                Self::Timeout
            }
            _ => Self::Other,
        }
    }

    fn of_warehouse(e: &DeposcoError) -> Self {
        match e {
            DeposcoError::Unauthorized(_) => Self::Unauthorized,
            DeposcoError::Rejected { status: 404, .. } => Self::NotFound,
            DeposcoError::Config(m) if m.contains(shipsync_outbound::SETTING) => {
                Self::RefusedByPolicy
            }
            DeposcoError::Transient(m) if m.starts_with("timed out") => Self::Timeout,
            DeposcoError::Transient(m) if m.starts_with("could not connect") => Self::Unreachable,
            _ => Self::Other,
        }
    }
}

/// One side's outcome: `Ok` with what it said (the shop's name, say), or
/// the failure's full text and its class.
pub type Probe = Result<String, (TestReason, String)>;

/// Both sides of a "Test connection".
#[derive(Debug, Clone)]
pub struct ConnectionTest {
    pub store: Probe,
    pub warehouse: Probe,
    /// The scopes the store granted, when it answered.
    pub granted_scopes: Option<Vec<String>>,
    /// Of those the enabled channels need, the ones not granted.
    pub missing_scopes: Vec<String>,
}

impl ConnectionTest {
    pub fn passed(&self) -> bool {
        self.store.is_ok() && self.warehouse.is_ok()
    }

    /// The full report, quoting the remote answers (for unlimited users).
    pub fn report(&self) -> String {
        let side = |p: &Probe| match p {
            Ok(said) => said.clone(),
            Err((_, text)) => text.clone(),
        };
        format!(
            "Shopify: {}; Deposco: {}{}",
            side(&self.store),
            side(&self.warehouse),
            self.scopes_note()
        )
    }

    /// What the store granted against what the channels need (names of
    /// Shopify scopes only: nothing the remote said).
    fn scopes_note(&self) -> String {
        match &self.granted_scopes {
            None => String::new(),
            Some(_) if self.missing_scopes.is_empty() => {
                "; scopes: the enabled channels have what they need".into()
            }
            Some(_) => format!(
                "; missing scopes for the enabled channels: {} (add them to the app and install it again)",
                self.missing_scopes.join(", ")
            ),
        }
    }

    /// Status and classified reason only: nothing the remote sent.
    pub fn summary(&self) -> String {
        let side = |p: &Probe| match p {
            Ok(_) => "ok".to_string(),
            Err((reason, _)) => format!("failed ({})", reason.as_str()),
        };
        format!(
            "Shopify: {}; Deposco: {}{}",
            side(&self.store),
            side(&self.warehouse),
            self.scopes_note()
        )
    }
}

impl Engine {
    /// Asks the connection's store for its shop name and the merchant's
    /// warehouse to accept its credentials (`NotFound` for an unknown
    /// connection).
    pub async fn test_connection(
        &self,
        connection_id: &str,
    ) -> Result<ConnectionTest, EngineError> {
        let c = connections::get(self.db().pool(), connection_id)
            .await?
            .ok_or(EngineError::NotFound)?;
        let m = merchants::get(self.db().pool(), &c.merchant_id)
            .await?
            .ok_or(EngineError::NotFound)?;
        let test = self.test_credentials(&c, &m).await;
        if test.store.is_ok() {
            if let Some(granted) = &test.granted_scopes {
                store_auth::set_scopes(self.db(), &c.id, &granted.join(",")).await?;
            }
            // The store takes the credentials again: what waited for a
            // reconnection goes out.
            if c.store_status != StoreStatus::Ok {
                self.store_reconnected(&c).await?;
            }
        }
        Ok(test)
    }

    /// Like [`Self::test_connection`] for a connection and merchant that
    /// need not be saved (their secrets sealed with this engine's key, as
    /// for saving): nothing is stored or cached.
    pub async fn test_credentials(&self, c: &ConnectionRow, m: &MerchantRow) -> ConnectionTest {
        let mut granted_scopes = None;
        let saved = matches!(connections::get(self.db().pool(), &c.id).await, Ok(Some(_)));
        let store = match self.inner.stores.uncached(c, self.secrets(), saved) {
            Ok(client) => match client.shop_name().await {
                Ok(name) => {
                    // Older tokens may not read their scopes: the test
                    // still passes, without a scope report.
                    granted_scopes = client.access_scopes().await.ok();
                    Ok(format!("connected to {name}"))
                }
                Err(e) => Err((TestReason::of_store(&e), e.to_string())),
            },
            Err(e) => Err((TestReason::NotConfigured, e.to_string())),
        };
        let missing_scopes = granted_scopes
            .as_ref()
            .map(|g| crate::connect::missing_for(c, g))
            .unwrap_or_default();
        let warehouse = match self.deposco_client(m) {
            Ok(client) => client
                .check()
                .await
                .map(|()| "credentials accepted".to_string())
                .map_err(|e| (TestReason::of_warehouse(&e), e.to_string())),
            Err(e) => Err((TestReason::NotConfigured, e.to_string())),
        };
        ConnectionTest {
            store,
            warehouse,
            granted_scopes,
            missing_scopes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_has_no_remote_text() {
        let t = ConnectionTest {
            store: Err((
                TestReason::Unauthorized,
                "Shopify refused the credentials (HTTP 401: <html>secret page</html>)".into(),
            )),
            warehouse: Ok("credentials accepted".into()),
            granted_scopes: None,
            missing_scopes: vec![],
        };
        assert!(!t.passed());
        assert_eq!(t.summary(), "Shopify: failed (unauthorized); Deposco: ok");
        assert!(t.report().contains("secret page"));
    }

    #[test]
    fn reasons_are_classified() {
        let policy = shipsync_outbound::TargetPolicy::PUBLIC_ONLY
            .check_ip("x", "127.0.0.1".parse().unwrap())
            .unwrap_err()
            .to_string();
        assert_eq!(
            TestReason::of_warehouse(&DeposcoError::Config(policy.clone())),
            TestReason::RefusedByPolicy
        );
        assert_eq!(
            TestReason::of_store(&ShopifyError::Permanent(policy)),
            TestReason::RefusedByPolicy
        );
        assert_eq!(
            TestReason::of_warehouse(&DeposcoError::Rejected {
                status: 404,
                message: "gone".into()
            }),
            TestReason::NotFound
        );
        assert_eq!(
            TestReason::of_warehouse(&DeposcoError::Transient("timed out: x".into())),
            TestReason::Timeout
        );
        assert_eq!(
            TestReason::of_store(&ShopifyError::Transient {
                reason: "no answer within the timeout: x".into(),
                retry_after: None
            }),
            TestReason::Timeout
        );
        assert_eq!(
            TestReason::of_store(&ShopifyError::Unauthorized("x".into())),
            TestReason::Unauthorized
        );
    }
}
