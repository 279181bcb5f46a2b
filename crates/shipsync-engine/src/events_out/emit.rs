//! The outbox's writing side: when a shipment or an order changes state in
//! a way a merchant's systems may subscribe to, an event row and one
//! delivery (with its job) per matching subscription, inside the
//! transaction of the change. A merchant without a subscription for the
//! type costs one indexed read.

use shipsync_core::outbound_events::{
    Envelope, LineData, OrderData, PackageData, ShipmentData, StoreOrderRef,
};
use shipsync_core::states::{DeliveryState, EventType, OrderStatus, ShipmentStatus};
use shipsync_db::event_subscriptions::{self, SubscriptionRow};
use shipsync_db::jobs::{self, Job};
use shipsync_db::orders::OrderRecord;
use shipsync_db::outbound_events::{self, OutboundEventRow};
use shipsync_db::shipments::{self, ShipmentRow};
use shipsync_db::unit::Conn;
use shipsync_db::{event_deliveries, fulfillments, merchants, new_id, now_micros};

use crate::Engine;
use crate::error::EngineError;

/// The events a shipment's change of state (`before` → `s.status`) emits.
/// Whether a shipment moving to `status` may emit an event.
pub(crate) fn may_emit(status: ShipmentStatus) -> bool {
    shipment_event(None, status).is_some()
}

fn shipment_event(before: Option<ShipmentStatus>, after: ShipmentStatus) -> Option<EventType> {
    if before == Some(after) {
        return None;
    }
    match after {
        ShipmentStatus::Completed => Some(EventType::ShipmentCompleted),
        ShipmentStatus::Error => Some(EventType::ShipmentError),
        _ => None,
    }
}

/// The subscriptions among `subs` that receive `kind`.
fn receiving(subs: Vec<SubscriptionRow>, kind: EventType) -> Vec<SubscriptionRow> {
    subs.into_iter()
        .filter(|s| s.events.contains(&kind))
        .collect()
}

impl Engine {
    /// Emits `shipment.completed` or `shipment.error` for `s`, just saved
    /// in `tx` after moving to that state from another. Whether
    /// deliveries were queued.
    pub(crate) async fn shipment_moved(
        &self,
        tx: &mut impl Conn,
        s: &ShipmentRow,
    ) -> Result<bool, EngineError> {
        let Some(kind) = shipment_event(None, s.status) else {
            return Ok(false);
        };
        let subs = receiving(
            event_subscriptions::enabled_of_merchant(tx.ex(), &s.merchant_id).await?,
            kind,
        );
        if subs.is_empty() {
            return Ok(false);
        }
        // The row as stored: its version is the latest merged, which the
        // run's copy may not be.
        let stored = shipments::get(tx.ex(), &s.id).await?;
        let s = stored.as_ref().unwrap_or(s);
        let data = self.shipment_data(tx, s, kind).await?;
        self.queue_event(tx, &s.merchant_id, kind, &s.id, data, &subs)
            .await?;
        Ok(true)
    }

    /// Emits `order.sent`, `order.error` or `order.cancelled` for `o`
    /// (about to be saved in `tx`, having been `before`) when its state
    /// changed. `reason`: why it was cancelled. Whether deliveries were
    /// queued.
    pub(crate) async fn order_changed(
        &self,
        tx: &mut impl Conn,
        before: OrderStatus,
        o: &OrderRecord,
        reason: Option<&str>,
    ) -> Result<bool, EngineError> {
        let kind = match o.status {
            _ if before == o.status => return Ok(false),
            OrderStatus::Open
                if matches!(
                    before,
                    OrderStatus::New | OrderStatus::Queued | OrderStatus::Error
                ) =>
            {
                EventType::OrderSent
            }
            OrderStatus::Error => EventType::OrderError,
            OrderStatus::Cancelled => EventType::OrderCancelled,
            _ => return Ok(false),
        };
        let subs = receiving(
            event_subscriptions::enabled_of_connection(tx.ex(), &o.connection_id).await?,
            kind,
        );
        let Some(merchant_id) = subs.first().map(|s| s.merchant_id.clone()) else {
            return Ok(false);
        };
        let data = OrderData {
            order_id: o.id.clone(),
            merchant_id: merchant_id.clone(),
            connection_id: o.connection_id.clone(),
            store_order: StoreOrderRef {
                id: o.store_order_id.clone(),
                name: o.name.clone(),
            },
            warehouse_order_number: o.warehouse_number.clone(),
            lines: o
                .lines
                .iter()
                .filter(|l| l.skipped.is_none())
                .map(|l| LineData {
                    sku: l.sku.clone(),
                    quantity: l.sent.or(l.to_send).unwrap_or(l.quantity),
                })
                .collect(),
            error: (kind == EventType::OrderError)
                .then(|| o.error.clone())
                .flatten(),
            reason: reason.map(str::to_string),
        };
        let data = serde_json::to_value(data).map_err(|e| EngineError::Internal(e.to_string()))?;
        self.queue_event(tx, &merchant_id, kind, &o.id, data, &subs)
            .await?;
        Ok(true)
    }

    /// `data` of a shipment event: its packages with tracking (numbers,
    /// URLs, the carrier as the store shows it), lines and store
    /// fulfillments.
    async fn shipment_data(
        &self,
        tx: &mut impl Conn,
        s: &ShipmentRow,
        kind: EventType,
    ) -> Result<serde_json::Value, EngineError> {
        let recorded = fulfillments::of_shipment(tx.ex(), &s.id).await?;
        let merchant = merchants::get(tx.ex(), &s.merchant_id).await?;
        let mappings = match &merchant {
            Some(m) => Some(crate::mappings::mappings_in(tx, m).await?),
            None => None,
        };
        let v = &s.version;
        let packages = v
            .packages
            .iter()
            .map(|p| {
                let carrier = p.carrier.as_deref().or(v.carrier.as_deref());
                let pkg = [(p.key.clone(), p.tracking_number.clone().unwrap_or_default())];
                let tracking = mappings
                    .as_ref()
                    .map(|m| self.tracking_for(v, carrier, &pkg, m));
                PackageData {
                    key: p.key.clone(),
                    tracking_number: p.tracking_number.clone(),
                    tracking_url: tracking.as_ref().and_then(|t| t.urls.first().cloned()),
                    carrier: tracking
                        .and_then(|t| t.company)
                        .or_else(|| carrier.map(str::to_string)),
                    service: p.service.clone().or_else(|| v.service.clone()),
                }
            })
            .collect();
        let data = ShipmentData {
            shipment_id: s.id.clone(),
            shipment_number: s.number.clone(),
            merchant_id: s.merchant_id.clone(),
            connection_id: s.connection_id.clone(),
            store_order: s.order_id.as_ref().map(|id| StoreOrderRef {
                id: id.clone(),
                name: s.order_name.clone(),
            }),
            packages,
            lines: v
                .lines
                .iter()
                .map(|l| LineData {
                    sku: Some(l.sku.clone()),
                    quantity: l.quantity,
                })
                .collect(),
            store_fulfillment_ids: recorded
                .iter()
                .filter_map(|r| r.store_fulfillment_id.clone())
                .collect(),
            error: (kind == EventType::ShipmentError)
                .then(|| s.error.clone())
                .flatten(),
        };
        serde_json::to_value(data).map_err(|e| EngineError::Internal(e.to_string()))
    }

    /// Writes the event and a delivery (with its job) per subscription.
    async fn queue_event(
        &self,
        tx: &mut impl Conn,
        merchant_id: &str,
        kind: EventType,
        subject_id: &str,
        data: serde_json::Value,
        subs: &[SubscriptionRow],
    ) -> Result<(), EngineError> {
        let now = now_micros();
        let timestamp = jiff::Timestamp::from_microsecond(now)
            .map(|t| t.to_string())
            .unwrap_or_default();
        let body = serde_json::to_string(&Envelope {
            kind,
            timestamp,
            data,
        })
        .map_err(|e| EngineError::Internal(e.to_string()))?;
        let event = OutboundEventRow {
            id: new_id("msg"),
            merchant_id: merchant_id.to_string(),
            kind,
            subject_id: subject_id.to_string(),
            body,
            created_at: now,
        };
        outbound_events::insert(tx.ex(), &event).await?;
        for sub in subs {
            let d = event_deliveries::DeliveryRow {
                id: new_id("dlv"),
                event_id: event.id.clone(),
                subscription_id: sub.id.clone(),
                subject_id: subject_id.to_string(),
                state: DeliveryState::Pending,
                tries: 0,
                next_attempt_at: Some(now),
                last_error: None,
                created_at: now,
                updated_at: now,
            };
            event_deliveries::insert(tx.ex(), &d).await?;
            jobs::enqueue(
                tx.ex(),
                &Job::DeliverEvent {
                    delivery_id: d.id.clone(),
                },
                now,
            )
            .await?;
        }
        tracing::info!(event = %event.id, kind = %kind, subject = %subject_id, subscriptions = subs.len(), "outbound event queued");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_shipment_changes_emit() {
        use ShipmentStatus::*;
        let table = [
            (Some(Open), Completed, Some(EventType::ShipmentCompleted)),
            (None, Completed, Some(EventType::ShipmentCompleted)),
            (Some(Error), Completed, Some(EventType::ShipmentCompleted)),
            (Some(Completed), Completed, None),
            (Some(Open), Error, Some(EventType::ShipmentError)),
            (Some(Error), Error, None),
            (Some(Error), Open, None),
            (Some(Completed), Archived, None),
        ];
        for (before, after, want) in table {
            assert_eq!(
                shipment_event(before, after),
                want,
                "{before:?} → {after:?}"
            );
        }
    }
}
