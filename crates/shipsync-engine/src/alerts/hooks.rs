//! What the flows record for the alert conditions that nothing else keeps:
//! work that ran out of retries, the warehouse refusing the credentials,
//! the ingest answering 503.

use std::sync::atomic::Ordering;

use shipsync_db::retries_exhausted::{self, ExhaustedRow};
use shipsync_db::shipments::ShipmentRow;
use shipsync_db::{meta, now_micros, orders, warehouse_refusals};
use shipsync_deposco::api::DeposcoError;

use super::findings::INGEST_SATURATED_AT;
use crate::Engine;
use crate::error::EngineError;

/// A node records a saturated ingest at most this often.
const SATURATED_RECORD_EVERY: i64 = 5_000_000;

impl Engine {
    /// A shipment went to `error` when its job gave up: remembered as
    /// "retries exhausted" when the last attempt was used up (not when the
    /// failure was final at once), and the alerts are checked.
    pub(crate) async fn shipment_gave_up(
        &self,
        s: &ShipmentRow,
        message: &str,
        attempts: i64,
    ) -> Result<(), EngineError> {
        let pool = self.db().pool();
        if attempts >= self.config().max_attempts {
            retries_exhausted::record(
                pool,
                &ExhaustedRow {
                    subject_id: s.id.clone(),
                    kind: retries_exhausted::SHIPMENT.into(),
                    merchant_id: Some(s.merchant_id.clone()),
                    connection_id: s.connection_id.clone(),
                    error: message.to_string(),
                    at: now_micros(),
                },
            )
            .await?;
        } else {
            retries_exhausted::clear(pool, &s.id).await?;
        }
        self.queue_alert_check().await
    }

    /// An order's job gave up (see [`Self::shipment_gave_up`]).
    pub(crate) async fn order_gave_up(
        &self,
        order_id: &str,
        message: &str,
        attempts: i64,
    ) -> Result<(), EngineError> {
        let pool = self.db().pool();
        if attempts < self.config().max_attempts {
            retries_exhausted::clear(pool, order_id).await?;
            return Ok(());
        }
        let Some(o) = orders::get(pool, order_id).await? else {
            return Ok(());
        };
        let merchant_id = shipsync_db::connections::get(pool, &o.connection_id)
            .await?
            .map(|c| c.merchant_id);
        retries_exhausted::record(
            pool,
            &ExhaustedRow {
                subject_id: o.id.clone(),
                kind: retries_exhausted::ORDER.into(),
                merchant_id,
                connection_id: Some(o.connection_id.clone()),
                error: message.to_string(),
                at: now_micros(),
            },
        )
        .await?;
        self.queue_alert_check().await
    }

    /// How the merchant's warehouse answered a call: a refusal of the
    /// credentials (401/403) is recorded for `credentials.refused`; any
    /// answer that is not one clears it.
    pub(crate) async fn warehouse_answered(
        &self,
        merchant_id: &str,
        error: Option<&DeposcoError>,
    ) -> Result<(), EngineError> {
        let pool = self.db().pool();
        match error {
            Some(DeposcoError::Unauthorized(why)) => {
                warehouse_refusals::record(pool, merchant_id, now_micros(), why).await?;
                self.queue_alert_check().await?;
            }
            Some(_) => {}
            // Accepted: clear a recorded refusal; a read first, so the
            // common case (nothing recorded) writes nothing.
            None => {
                if warehouse_refusals::is_recorded(pool, merchant_id).await? {
                    warehouse_refusals::clear(pool, merchant_id).await?;
                }
            }
        }
        Ok(())
    }

    /// The ingest answered 503: recorded in `meta` (at most every few
    /// seconds per process) for `ingest.saturated`, in the background so
    /// that a saturated server does no more work on the request.
    pub fn ingest_saturated(&self) {
        let now = now_micros();
        let recorded = &self.inner.saturated_recorded;
        let last = recorded.load(Ordering::Relaxed);
        if now - last < SATURATED_RECORD_EVERY
            || recorded
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let engine = self.clone();
        tokio::spawn(async move {
            let db = engine.db();
            let r = async {
                meta::set(db.pool(), INGEST_SATURATED_AT, &now.to_string()).await?;
                engine.queue_alert_check().await
            };
            if let Err(e) = r.await {
                tracing::warn!(error = %e, "could not record the saturated ingest");
            }
        });
    }
}
