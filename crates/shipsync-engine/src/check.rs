//! "Test connection": one call to the store and one to the warehouse,
//! reported in words an operator can act on — with the stored credentials
//! of a saved connection, or with credentials typed into a form that are
//! not saved yet.

use shipsync_db::rows::{ConnectionRow, MerchantRow};

use crate::Engine;
use crate::pipeline::EngineError;

impl Engine {
    /// Asks the connection's store for its shop name and the merchant's
    /// warehouse to accept its credentials. `Ok` carries the report when
    /// both answered; `Err(Permanent)` carries it when either failed
    /// (`NotFound` for an unknown connection).
    pub async fn test_connection(&self, connection_id: &str) -> Result<String, EngineError> {
        let c = self
            .db()
            .get_connection(connection_id)
            .await?
            .ok_or(EngineError::NotFound)?;
        let m = self
            .db()
            .get_merchant(&c.merchant_id)
            .await?
            .ok_or(EngineError::NotFound)?;
        self.test_credentials(&c, &m).await
    }

    /// Like [`Self::test_connection`] for a connection and merchant that
    /// need not be saved (their secrets sealed with this engine's key, as
    /// for saving): nothing is stored or cached.
    pub async fn test_credentials(
        &self,
        c: &ConnectionRow,
        m: &MerchantRow,
    ) -> Result<String, EngineError> {
        let shopify = match self.inner.stores.uncached(c, self.secrets()) {
            Ok(client) => client.shop_name().await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        let deposco = match self.deposco_client(m) {
            Ok(client) => client.check().await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        let report = format!(
            "Shopify: {}; Deposco: {}",
            match &shopify {
                Ok(name) => format!("connected to {name}"),
                Err(e) => e.clone(),
            },
            match &deposco {
                Ok(()) => "credentials accepted".to_string(),
                Err(e) => e.clone(),
            }
        );
        if shopify.is_ok() && deposco.is_ok() {
            Ok(report)
        } else {
            Err(EngineError::Permanent(report))
        }
    }
}
