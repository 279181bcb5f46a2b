//! Shopify's order webhooks: the store subscribed while a connection's
//! Sales Orders channel is on (job `order_webhooks`, and at each pull,
//! since Shopify deletes subscriptions that keep failing), and a stored
//! delivery processed by reading the order again (the delivery only says
//! *which* order changed; its `updatedAt` decides what is newer).

use shipsync_core::states::{Channel, EventOutcome, Source};
use shipsync_db::connections::{self, ConnectionRow, OrderWebhooks};
use shipsync_db::events::{self, EventRow};
use shipsync_db::jobs::{self, Job};
use shipsync_db::{channels, now_micros};
use shipsync_shopify::webhook as order_webhook;

use super::take::Cause;
use crate::Engine;
use crate::error::EngineError;

impl Engine {
    /// Where a connection's store delivers order webhooks, when shipsync
    /// knows its public URL.
    pub fn order_webhook_url(&self, connection_id: &str) -> Option<String> {
        self.public_url().map(|base| {
            format!(
                "{}/webhooks/shopify/{connection_id}",
                base.trim_end_matches('/')
            )
        })
    }

    /// Queues the check of a connection's order webhooks (after its
    /// Sales Orders channel or the connection was switched on or off).
    pub async fn queue_order_webhooks(
        &self,
        connection_id: &str,
    ) -> Result<(), shipsync_db::DbError> {
        jobs::enqueue(
            self.db().pool(),
            &Job::OrderWebhooks {
                connection_id: connection_id.to_string(),
            },
            now_micros(),
        )
        .await?;
        self.wake();
        Ok(())
    }

    /// Job `order_webhooks`.
    pub(crate) async fn sync_order_webhooks(&self, connection_id: &str) -> Result<(), EngineError> {
        let Some(c) = connections::get(self.db().pool(), connection_id).await? else {
            return Ok(());
        };
        self.ensure_order_webhooks(&c).await
    }

    /// Subscribes the store to the order topics at shipsync's URL while the
    /// connection and its Sales Orders channel are on, and removes them
    /// otherwise; records what it found on the connection.
    pub(crate) async fn ensure_order_webhooks(&self, c: &ConnectionRow) -> Result<(), EngineError> {
        let channel_on = channels::get(self.db().pool(), &c.id, Channel::SalesOrders)
            .await?
            .is_some_and(|ch| ch.enabled);
        let wanted = c.enabled && channel_on;
        let Some(uri) = self.order_webhook_url(&c.id) else {
            return Ok(());
        };
        if !wanted && !c.order_webhooks.subscribed && c.order_webhooks.ids.is_empty() {
            return Ok(());
        }
        let (client, _) = self.inner.stores.client(c, self.secrets())?;
        let mut state = OrderWebhooks {
            uri: Some(uri.clone()),
            checked_at: Some(now_micros()),
            ..OrderWebhooks::default()
        };
        if wanted {
            let report = client.ensure_order_webhooks(&uri).await?;
            let all: Vec<_> = report.existing.into_iter().chain(report.created).collect();
            state.subscribed = true;
            state.topics = all.iter().map(|s| s.topic.clone()).collect();
            state.ids = all.into_iter().map(|s| s.id).collect();
        } else {
            client.remove_order_webhooks(&uri).await?;
        }
        connections::set_order_webhooks(self.db().pool(), &c.id, &state).await?;
        Ok(())
    }

    /// The check of a connection's order webhooks failed: shown on it.
    pub(crate) async fn order_webhooks_failed(
        &self,
        connection_id: &str,
        message: &str,
    ) -> Result<(), EngineError> {
        let Some(c) = connections::get(self.db().pool(), connection_id).await? else {
            return Ok(());
        };
        let mut state = c.order_webhooks.clone();
        state.error = Some(message.to_string());
        state.checked_at = Some(now_micros());
        connections::set_order_webhooks(self.db().pool(), connection_id, &state).await?;
        Ok(())
    }

    /// A stored Shopify order delivery (job `process_event` of an event
    /// with a connection): read the order again and apply it.
    pub(crate) async fn process_order_event(&self, event: &EventRow) -> Result<(), EngineError> {
        let db = self.db();
        let Some(connection_id) = event.connection_id.as_deref() else {
            return Ok(());
        };
        let body = event.body.clone().unwrap_or_default();
        let delivery = match order_webhook::parse(&event.headers, &body) {
            Ok(d) => d,
            Err(why) => {
                events::set_result(
                    db.pool(),
                    &event.id,
                    EventOutcome::NeedsAttention,
                    Some(&why),
                    &[],
                )
                .await?;
                return Ok(());
            }
        };
        let Some(connection) = connections::get(db.pool(), connection_id).await? else {
            events::set_result(
                db.pool(),
                &event.id,
                EventOutcome::NeedsAttention,
                Some("the connection was deleted"),
                &[],
            )
            .await?;
            return Ok(());
        };
        let (client, _) = self.inner.stores.client(&connection, self.secrets())?;
        let detail = match client.order_for_warehouse(&delivery.order_id).await? {
            Some(order) => {
                let taken = self
                    .take_store_order(&connection, &order, Cause::Store(Source::Webhook))
                    .await?;
                format!("{} {}: {taken:?}", delivery.topic, order.name)
            }
            None => format!(
                "{}: the store no longer has order {}",
                delivery.topic, delivery.order_id
            ),
        };
        events::set_result(
            db.pool(),
            &event.id,
            EventOutcome::Accepted,
            Some(&detail),
            &[],
        )
        .await?;
        Ok(())
    }
}

/// The secret that signs a connection's order webhooks: the app's client
/// secret (client credentials, authorization code) or, with a legacy access
/// token, `store.api_secret`. `Err` says what is missing.
pub(crate) fn order_webhook_secret(
    c: &ConnectionRow,
    secrets: &crate::secrets::SecretBox,
) -> Result<String, String> {
    use crate::stores::StoreSettings;
    use crate::tokens::StoreAuth;
    let settings = StoreSettings::parse(c).map_err(|e| e.to_string())?;
    let (sealed, field) = match settings.auth() {
        StoreAuth::AccessToken => (&c.store_api_secret, "store.api_secret"),
        StoreAuth::ClientCredentials { .. } | StoreAuth::AuthorizationCode { .. } => {
            (&c.store_client_secret, "store.auth.client_secret")
        }
    };
    let sealed = sealed.as_ref().ok_or_else(|| {
        format!("the connection has no {field} to verify Shopify's signature: set it")
    })?;
    secrets.open_string(sealed).map_err(|e| e.to_string())
}

impl Engine {
    /// The connection of a Shopify order webhook URL (its id is the key)
    /// when it takes deliveries (enabled), with the secret that signs them.
    pub async fn order_webhook_target(
        &self,
        key: &str,
    ) -> Result<Option<(ConnectionRow, Result<String, String>)>, EngineError> {
        let Some(c) = connections::get(self.db().pool(), key).await? else {
            return Ok(None);
        };
        if !c.enabled {
            return Ok(None);
        }
        let secret = order_webhook_secret(&c, self.secrets());
        Ok(Some((c, secret)))
    }
}
