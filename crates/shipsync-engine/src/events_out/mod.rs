//! Outbound events for merchants' own systems (issue 16): subscriptions
//! (URL, event types, a Standard Webhooks secret shown once), the outbox
//! written with each state change ([`emit`]), and its delivery
//! ([`deliver`]), with every attempt recorded and a replay on request.

mod deliver;
mod emit;

pub(crate) use emit::may_emit;

use rand::Rng;
use serde_json::{Map, Value};
use shipsync_core::outbound_events::{SECRET_BYTES, secret_text};
use shipsync_core::states::{DeliveryState, EventType, SubscriptionStatus, listed};
use shipsync_db::event_deliveries::{self, AttemptRow, DeliveryRow};
use shipsync_db::event_subscriptions::{self, SubscriptionRow};
use shipsync_db::jobs::{self, Job};
use shipsync_db::outbound_events::{self, OutboundEventRow};
use shipsync_db::{new_id, now_micros};
use shipsync_outbound::TargetPolicy;
use url::Url;

use crate::Engine;
use crate::error::EngineError;

/// How long a rotated-out secret keeps signing deliveries.
pub const ROTATION_GRACE: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// A delivery as the API and the UI show it: with its event and attempts.
#[derive(Debug, Clone)]
pub struct DeliveryView {
    pub delivery: DeliveryRow,
    /// `None` only if the event row is gone.
    pub event: Option<OutboundEventRow>,
    /// Oldest first.
    pub attempts: Vec<AttemptRow>,
}

fn invalid(field: &'static str, message: impl Into<String>) -> EngineError {
    EngineError::Invalid {
        field,
        message: message.into(),
    }
}

/// A new secret: its key (to seal) and its text (shown once).
fn new_secret() -> (Vec<u8>, String) {
    let mut key = vec![0u8; SECRET_BYTES];
    rand::rng().fill_bytes(&mut key);
    let text = secret_text(&key);
    (key, text)
}

/// The event types of a request's `events`: a non-empty list of known
/// names, repeats dropped.
fn parse_events(v: &Value) -> Result<Vec<EventType>, EngineError> {
    let list = v
        .as_array()
        .ok_or_else(|| invalid("events", "must be a list of event types"))?;
    let mut out = Vec::new();
    for item in list {
        let name = item
            .as_str()
            .ok_or_else(|| invalid("events", "must be a list of event types (strings)"))?;
        let kind: EventType = name.parse().map_err(|_| {
            invalid(
                "events",
                format!(
                    "unknown event type {name:?}: use {}",
                    listed(EventType::ALL)
                ),
            )
        })?;
        if !out.contains(&kind) {
            out.push(kind);
        }
    }
    if out.is_empty() {
        return Err(invalid(
            "events",
            format!("name at least one of {}", listed(EventType::ALL)),
        ));
    }
    Ok(out)
}

/// The fields a request may carry; any other is refused.
fn known_fields(body: &Map<String, Value>, allowed: &[&str]) -> Result<(), EngineError> {
    match body.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(invalid(
            "body",
            format!("unknown field {k:?}: the fields are {}", allowed.join(", ")),
        )),
        None => Ok(()),
    }
}

/// Checks a subscription's URL: absolute `https` (or `http` where private
/// targets are allowed, e.g. on loopback in tests), no credentials in it,
/// and a host the outbound-address policy allows.
async fn event_url(v: &Value, policy: TargetPolicy) -> Result<String, EngineError> {
    let text = v
        .as_str()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| invalid("url", "required: the https URL events are posted to"))?;
    let url = Url::parse(text).map_err(|e| invalid("url", format!("not a URL: {e}")))?;
    match url.scheme() {
        "https" => {}
        "http" if policy.allow_private => {}
        "http" => {
            return Err(invalid(
                "url",
                format!(
                    "must be https (plain http only where {} is set)",
                    shipsync_outbound::SETTING
                ),
            ));
        }
        other => return Err(invalid("url", format!("must be https, not {other}"))),
    }
    if url.host().is_none() {
        return Err(invalid("url", "has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            "url",
            "must not carry a user name or password (the signature authenticates shipsync)",
        ));
    }
    shipsync_outbound::check_target(policy, &url)
        .await
        .map_err(|r| invalid("url", r.to_string()))?;
    Ok(url.to_string())
}

impl Engine {
    async fn check_event_url(&self, v: &Value) -> Result<String, EngineError> {
        event_url(v, self.config().target_policy()).await
    }

    /// Creates a subscription; returns it and its secret (shown this once).
    pub async fn create_event_subscription(
        &self,
        merchant_id: &str,
        body: &Value,
    ) -> Result<(SubscriptionRow, String), EngineError> {
        let obj = body
            .as_object()
            .ok_or_else(|| invalid("body", "must be a JSON object"))?;
        known_fields(obj, &["url", "events", "enabled"])?;
        let url = self
            .check_event_url(obj.get("url").unwrap_or(&Value::Null))
            .await?;
        let events = parse_events(obj.get("events").unwrap_or(&Value::Null))?;
        let enabled = match obj.get("enabled") {
            None | Some(Value::Null) => true,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(invalid("enabled", "must be true or false")),
        };
        let (key, text) = new_secret();
        let now = now_micros();
        let row = SubscriptionRow {
            id: new_id("evs"),
            merchant_id: merchant_id.to_string(),
            url,
            events,
            enabled,
            secret: self.secrets().seal(&key),
            previous_secret: None,
            previous_until: None,
            status: SubscriptionStatus::Active,
            failing_since: None,
            created_at: now,
            updated_at: now,
        };
        event_subscriptions::insert(self.db().pool(), &row).await?;
        tracing::info!(merchant = %merchant_id, subscription = %row.id, "event subscription created");
        Ok((row, text))
    }

    /// A merchant's subscriptions, oldest first.
    pub async fn event_subscriptions(
        &self,
        merchant_id: &str,
    ) -> Result<Vec<SubscriptionRow>, EngineError> {
        Ok(event_subscriptions::of_merchant(self.db().pool(), merchant_id).await?)
    }

    /// One of a merchant's subscriptions (`NotFound` for another's).
    pub async fn event_subscription(
        &self,
        merchant_id: &str,
        id: &str,
    ) -> Result<SubscriptionRow, EngineError> {
        event_subscriptions::get(self.db().pool(), id)
            .await?
            .filter(|s| s.merchant_id == merchant_id)
            .ok_or(EngineError::NotFound)
    }

    /// Changes `url`, `events` or `enabled` (a JSON merge patch). Switching
    /// it back on queues the deliveries that waited.
    pub async fn update_event_subscription(
        &self,
        merchant_id: &str,
        id: &str,
        patch: &Value,
    ) -> Result<SubscriptionRow, EngineError> {
        let obj = patch
            .as_object()
            .ok_or_else(|| invalid("body", "must be a JSON object"))?;
        known_fields(obj, &["url", "events", "enabled"])?;
        let mut row = self.event_subscription(merchant_id, id).await?;
        let was_enabled = row.enabled;
        if let Some(v) = obj.get("url") {
            row.url = self.check_event_url(v).await?;
        }
        if let Some(v) = obj.get("events") {
            row.events = parse_events(v)?;
        }
        match obj.get("enabled") {
            None => {}
            Some(Value::Bool(b)) => row.enabled = *b,
            Some(_) => return Err(invalid("enabled", "must be true or false")),
        }
        row.updated_at = now_micros();
        let mut tx = self.db().begin().await?;
        event_subscriptions::update(&mut *tx, &row).await?;
        let requeue = row.enabled && !was_enabled;
        if requeue {
            for d in event_deliveries::pending_of(&mut *tx, &row.id).await? {
                let at = d.next_attempt_at.unwrap_or(row.updated_at);
                jobs::enqueue(&mut *tx, &Job::DeliverEvent { delivery_id: d.id }, at).await?;
            }
        }
        tx.commit().await?;
        if requeue {
            self.wake();
        }
        Ok(row)
    }

    /// Deletes a subscription with its deliveries.
    pub async fn delete_event_subscription(
        &self,
        merchant_id: &str,
        id: &str,
    ) -> Result<(), EngineError> {
        self.event_subscription(merchant_id, id).await?;
        let mut tx = self.db().begin().await?;
        event_deliveries::delete_of_subscription(&mut tx, id).await?;
        event_subscriptions::delete(&mut *tx, id).await?;
        shipsync_db::retries_exhausted::clear(
            &mut *tx,
            &deliver::exhausted_subject(merchant_id, id),
        )
        .await?;
        tx.commit().await?;
        tracing::info!(merchant = %merchant_id, subscription = %id, "event subscription deleted");
        Ok(())
    }

    /// A new secret; the current one keeps signing (beside it) for
    /// [`ROTATION_GRACE`]. Returns the subscription and the new secret.
    pub async fn rotate_event_secret(
        &self,
        merchant_id: &str,
        id: &str,
    ) -> Result<(SubscriptionRow, String), EngineError> {
        let mut row = self.event_subscription(merchant_id, id).await?;
        let (key, text) = new_secret();
        let now = now_micros();
        row.previous_secret = Some(std::mem::replace(
            &mut row.secret,
            self.secrets().seal(&key),
        ));
        row.previous_until =
            Some(now + i64::try_from(ROTATION_GRACE.as_micros()).unwrap_or(i64::MAX / 4));
        row.updated_at = now;
        event_subscriptions::update(self.db().pool(), &row).await?;
        tracing::info!(merchant = %merchant_id, subscription = %id, "event subscription secret rotated");
        Ok((row, text))
    }

    /// A subscription's deliveries, newest first, before `cursor`.
    pub async fn event_deliveries(
        &self,
        merchant_id: &str,
        subscription_id: &str,
        cursor: Option<&str>,
        limit: i64,
    ) -> Result<Vec<DeliveryView>, EngineError> {
        self.event_subscription(merchant_id, subscription_id)
            .await?;
        let rows = event_deliveries::list(self.db().pool(), subscription_id, cursor, limit).await?;
        self.delivery_views(rows).await
    }

    async fn delivery_views(
        &self,
        rows: Vec<DeliveryRow>,
    ) -> Result<Vec<DeliveryView>, EngineError> {
        let pool = self.db().pool();
        let ids: Vec<String> = rows.iter().map(|d| d.id.clone()).collect();
        let event_ids: Vec<String> = rows.iter().map(|d| d.event_id.clone()).collect();
        let mut attempts = event_deliveries::attempts_of(pool, &ids).await?;
        let events = outbound_events::get_many(pool, &event_ids).await?;
        Ok(rows
            .into_iter()
            .map(|d| {
                let (mine, rest): (Vec<_>, Vec<_>) =
                    attempts.drain(..).partition(|a| a.delivery_id == d.id);
                attempts = rest;
                DeliveryView {
                    event: events.iter().find(|e| e.id == d.event_id).cloned(),
                    attempts: mine,
                    delivery: d,
                }
            })
            .collect())
    }

    /// Sends a delivery again (same `webhook-id`, a new timestamp and
    /// signature), on a fresh retry schedule; its attempts are kept.
    pub async fn replay_event_delivery(
        &self,
        merchant_id: &str,
        subscription_id: &str,
        delivery_id: &str,
    ) -> Result<DeliveryView, EngineError> {
        self.event_subscription(merchant_id, subscription_id)
            .await?;
        let mut tx = self.db().begin().await?;
        let Some(mut d) = event_deliveries::get_for_update(&mut tx, delivery_id)
            .await?
            .filter(|d| d.subscription_id == subscription_id)
        else {
            return Err(EngineError::NotFound);
        };
        let now = now_micros();
        d.state = DeliveryState::Pending;
        d.tries = 0;
        d.next_attempt_at = Some(now);
        d.updated_at = now;
        event_deliveries::update(&mut *tx, &d).await?;
        jobs::enqueue(
            &mut *tx,
            &Job::DeliverEvent {
                delivery_id: d.id.clone(),
            },
            now,
        )
        .await?;
        tx.commit().await?;
        self.wake();
        tracing::info!(subscription = %subscription_id, delivery = %delivery_id, "event delivery replay queued");
        self.delivery_views(vec![d])
            .await?
            .pop()
            .ok_or(EngineError::NotFound)
    }

    /// The subscriptions whose deliveries are failing (for the
    /// `retries.exhausted` alert).
    pub async fn failing_event_subscriptions(&self) -> Result<Vec<SubscriptionRow>, EngineError> {
        Ok(event_subscriptions::failing(self.db().pool()).await?)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn refused(r: Result<String, EngineError>) -> String {
        match r {
            Err(EngineError::Invalid { field, message }) => format!("{field}: {message}"),
            other => panic!("not refused: {other:?}"),
        }
    }

    #[tokio::test]
    async fn event_urls_are_https_to_public_hosts() {
        let public = TargetPolicy::PUBLIC_ONLY;
        let url = |s: &str| json!(s);
        assert_eq!(
            event_url(&url("https://203.0.113.9/hooks"), public)
                .await
                .unwrap(),
            "https://203.0.113.9/hooks"
        );
        let m = refused(event_url(&url("http://203.0.113.9/hooks"), public).await);
        assert!(
            m.contains("https") && m.contains("SHIPSYNC_ALLOW_PRIVATE_TARGETS"),
            "{m}"
        );
        let m = refused(event_url(&url("https://127.0.0.1:9/x"), public).await);
        assert!(m.starts_with("url: ") && m.contains("loopback"), "{m}");
        let m = refused(event_url(&url("https://10.1.2.3/x"), public).await);
        assert!(m.contains("private"), "{m}");
        let m = refused(event_url(&url("https://user:pw@203.0.113.9/x"), public).await);
        assert!(m.contains("password"), "{m}");
        refused(event_url(&url("ftp://203.0.113.9/x"), public).await);
        refused(event_url(&url("/relative"), public).await);
        refused(event_url(&json!(null), public).await);
        refused(event_url(&json!(3), public).await);
        // Private targets allowed (the demo, the tests): loopback over http.
        let private = TargetPolicy::ALLOW_PRIVATE;
        assert!(
            event_url(&url("http://127.0.0.1:9/x"), private)
                .await
                .is_ok()
        );
    }

    #[test]
    fn events_are_known_types() {
        assert_eq!(
            parse_events(&json!(["order.sent", "order.sent", "shipment.error"])).unwrap(),
            [EventType::OrderSent, EventType::ShipmentError]
        );
        for bad in [
            json!([]),
            json!(["order.shipped"]),
            json!("order.sent"),
            json!([1]),
        ] {
            assert!(matches!(
                parse_events(&bad),
                Err(EngineError::Invalid {
                    field: "events",
                    ..
                })
            ));
        }
    }
}
