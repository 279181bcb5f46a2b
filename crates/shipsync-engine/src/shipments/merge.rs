//! Merging: each reported version of a shipment (webhook or pull) is merged
//! into its shipment row; a version that changes what the shipment says
//! queues its sync. Which version wins is `shipsync_core::versions`.

use shipsync_core::versions::{self, Judgement, Stamp};
use shipsync_core::{ShipmentVersion, ledger, tracking};
use shipsync_db::rows::{self, ShipmentRow, VersionRow};
use shipsync_db::{jobs, new_id, now_micros};
use tracing::field::Empty;

use super::{SOURCE_WEBHOOK, sync_key};
use crate::Engine;
use crate::error::EngineError;
use crate::spans::list_field;

/// What merging a version did to its shipment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MergeOutcome {
    New,
    Updated,
    Unchanged,
}

/// What a shipment says, whatever shape it came in: metadata that only some
/// shapes carry (Deposco's id, `updatedDate`, the ship date) is left out, so
/// the same shipment by webhook XML and by the REST pull is "unchanged".
pub(super) fn content_hash(v: &ShipmentVersion) -> String {
    let mut core = v.clone();
    core.warehouse_id = None;
    core.updated_at = None;
    core.shipped_at = None;
    crate::secrets::hash_bytes(serde_json::to_string(&core).unwrap_or_default().as_bytes())
}

pub(super) fn sources_with(sources: &str, source: &str) -> String {
    let mut set: Vec<&str> = sources.split(',').filter(|s| !s.is_empty()).collect();
    if !set.contains(&source) {
        set.push(source);
    }
    set.join(",")
}

/// `v` with only a tracking URL the store may be given
/// ([`tracking::trusted_url`]): `signed` says whether the report's origin
/// is authenticated (a verified webhook signature, or the Deposco API).
pub(crate) fn with_trusted_tracking(mut v: ShipmentVersion, signed: bool) -> ShipmentVersion {
    v.tracking_url = tracking::trusted_url(v.tracking_url.as_deref(), signed);
    v
}

impl Engine {
    /// Merges one reported version into its shipment (creating it when new).
    /// Returns the shipment id.
    pub async fn merge_version(
        &self,
        merchant_id: &str,
        version: &ShipmentVersion,
        source: &str,
        event_id: Option<&str>,
    ) -> Result<(String, MergeOutcome), EngineError> {
        let db = self.db();
        let mut tx = db.begin().await?;
        let merged = Self::merge_in(&mut tx, merchant_id, version, source, event_id).await?;
        tx.commit().await?;
        self.save_recipes_seen(merchant_id, version).await?;
        if merged.1 != MergeOutcome::Unchanged {
            self.wake();
        }
        Ok(merged)
    }

    /// Saves the kit recipes a merged version shows.
    async fn save_recipes_seen(
        &self,
        merchant_id: &str,
        version: &ShipmentVersion,
    ) -> Result<(), EngineError> {
        for (kit, comps) in ledger::recipes_seen(version) {
            for (comp, per_kit) in comps {
                self.db()
                    .save_recipe(
                        merchant_id,
                        &kit,
                        &comp,
                        i64::try_from(per_kit).unwrap_or(i64::MAX),
                    )
                    .await?;
            }
        }
        Ok(())
    }

    /// [`Self::merge_version`] inside `tx`, which the caller commits (one
    /// version, or a whole page of the pull); kit recipes seen in the version
    /// are the caller's to save. Errors other than [`EngineError::Db`] come
    /// before any statement, so `tx` stays usable after them.
    pub(crate) async fn merge_in(
        tx: &mut shipsync_db::Tx<'_>,
        merchant_id: &str,
        version: &ShipmentVersion,
        source: &str,
        event_id: Option<&str>,
    ) -> Result<(String, MergeOutcome), EngineError> {
        let hash = content_hash(version);
        let json =
            serde_json::to_string(version).map_err(|e| EngineError::Internal(e.to_string()))?;
        let now = now_micros();
        let existing = rows::shipment_by_number(tx, merchant_id, &version.number).await?;
        let via = if source == SOURCE_WEBHOOK {
            "webhook"
        } else {
            "the scheduled pull"
        };
        let (id, changed, created) = match existing {
            None => {
                let id = new_id("shp");
                rows::insert_shipment(
                    tx,
                    &ShipmentRow {
                        id: id.clone(),
                        merchant_id: merchant_id.to_string(),
                        number: version.number.clone(),
                        connection_id: None,
                        order_id: None,
                        order_name: version.order_refs.first().cloned().unwrap_or_default(),
                        status: "new".into(),
                        error: None,
                        sources: source.to_string(),
                        first_seen_via: source.to_string(),
                        version_json: json.clone(),
                        version_at: version.updated_at.clone(),
                        content_hash: hash.clone(),
                        received_at: now,
                        updated_at: now,
                        completed_at: None,
                    },
                )
                .await?;
                rows::add_activity(
                    &mut **tx,
                    &id,
                    "imported",
                    &format!(
                        "Imported from {via}{}: Deposco shipment {}, {} unit(s) in {} package(s), status {:?}",
                        event_id.map(|e| format!(" (event {e})")).unwrap_or_default(),
                        version.number,
                        version.shipped_units(),
                        version.packages.len(),
                        version.status
                    ),
                )
                .await?;
                (id, true, true)
            }
            Some(mut s) => {
                s.sources = sources_with(&s.sources, source);
                let changed = if s.content_hash == hash {
                    rows::add_activity(
                        &mut **tx,
                        &s.id,
                        "received",
                        &format!("Received again from {via}; unchanged"),
                    )
                    .await?;
                    false
                } else {
                    let kept = serde_json::from_str::<ShipmentVersion>(&s.version_json).ok();
                    let current = Stamp {
                        status: kept.as_ref().map(|k| &k.status),
                        updated_at: s.version_at.as_deref(),
                    };
                    match versions::judge(version.into(), current) {
                        Judgement::GoesBack => {
                            rows::add_activity(
                        &mut **tx,
                        &s.id,
                        "received",
                        &format!(
                            "Received status {:?} from {via} after Shipped; statuses only move forward: kept the shipped version",
                            version.status
                        ),
                    )
                    .await?;
                            false
                        }
                        Judgement::Older => {
                            rows::add_activity(
                        &mut **tx,
                        &s.id,
                        "received",
                        &format!(
                            "Received an older version from {via} (updated {}); kept the newer one",
                            version.updated_at.as_deref().unwrap_or("?")
                        ),
                    )
                    .await?;
                            false
                        }
                        Judgement::Supersedes => {
                            s.version_json = json.clone();
                            s.version_at = version.updated_at.clone();
                            s.content_hash = hash.clone();
                            if s.status == "completed" || s.status == "new" {
                                s.status = "open".into();
                            }
                            rows::add_activity(
                                &mut **tx,
                                &s.id,
                                "updated",
                                &format!(
                                    "Updated from {via}: {} unit(s) in {} package(s)",
                                    version.shipped_units(),
                                    version.packages.len()
                                ),
                            )
                            .await?;
                            true
                        }
                    }
                };
                s.updated_at = now;
                rows::update_shipment(&mut **tx, &s).await?;
                (s.id, changed, false)
            }
        };
        rows::insert_version(
            tx,
            &VersionRow {
                id: new_id("ver"),
                shipment_id: id.clone(),
                event_id: event_id.map(str::to_string),
                source: source.to_string(),
                received_at: now,
                content_hash: hash,
                version_json: json,
            },
        )
        .await?;
        if changed {
            let payload = serde_json::json!({ "shipment_id": id }).to_string();
            jobs::enqueue(tx, "sync_shipment", Some(&sync_key(&id)), &payload, now).await?;
        }
        let outcome = match (created, changed) {
            (true, _) => MergeOutcome::New,
            (false, true) => MergeOutcome::Updated,
            (false, false) => MergeOutcome::Unchanged,
        };
        Ok((id, outcome))
    }

    /// Job `process_event`: parse a stored delivery and merge what it holds.
    #[tracing::instrument(
        name = "process_event",
        skip_all,
        fields(event = %event_id, merchant = Empty, shipment_number = Empty, shipment = Empty)
    )]
    pub(crate) async fn process_event(&self, event_id: &str) -> Result<(), EngineError> {
        let db = self.db();
        let Some(event) = db.get_event(event_id).await? else {
            return Ok(());
        };
        let span = tracing::Span::current();
        span.record("merchant", event.merchant_id.as_str());
        let body = event.body.clone().unwrap_or_default();
        let signed = event.verified == 1;
        match shipsync_deposco::parse_webhook(&body) {
            Ok(versions) => {
                let versions: Vec<ShipmentVersion> = versions
                    .into_iter()
                    .map(|v| with_trusted_tracking(v, signed))
                    .collect();
                span.record(
                    "shipment_number",
                    list_field(versions.iter().map(|v| v.number.as_str())),
                );
                // The merges and the event's result in one transaction.
                let mut tx = db.begin().await?;
                let mut ids = Vec::new();
                let mut changed = false;
                for v in &versions {
                    let (id, outcome) = Self::merge_in(
                        &mut tx,
                        &event.merchant_id,
                        v,
                        SOURCE_WEBHOOK,
                        Some(event_id),
                    )
                    .await?;
                    changed |= outcome != MergeOutcome::Unchanged;
                    ids.push(id);
                }
                span.record("shipment", list_field(ids.iter().map(String::as_str)));
                rows::set_event_result(
                    &mut *tx,
                    event_id,
                    "accepted",
                    None,
                    &serde_json::to_string(&ids).unwrap_or_default(),
                )
                .await?;
                tx.commit().await?;
                for v in &versions {
                    self.save_recipes_seen(&event.merchant_id, v).await?;
                }
                tracing::debug!(shipments = ids.len(), changed, "event merged");
                if changed {
                    self.wake();
                }
            }
            Err(e) => {
                db.set_event_result(event_id, "needs_attention", Some(&e.to_string()), "[]")
                    .await?;
            }
        }
        Ok(())
    }

    /// Re-queues every shipment of a merchant still waiting for the store
    /// (after a connection or channel was switched on).
    pub async fn release_waiting(&self, merchant_id: &str) -> Result<usize, EngineError> {
        let ids = self.db().pending_shipment_ids(merchant_id).await?;
        for id in &ids {
            self.enqueue_sync(id).await?;
        }
        Ok(ids.len())
    }

    pub async fn replay_event(&self, event_id: &str) -> Result<(), EngineError> {
        let db = self.db();
        let event = db.get_event(event_id).await?.ok_or(EngineError::NotFound)?;
        if event.body.is_none() {
            return Err(EngineError::Permanent(
                "this event has no stored body to replay".into(),
            ));
        }
        let mut tx = db.begin().await?;
        let payload = serde_json::json!({ "event_id": event_id }).to_string();
        jobs::enqueue(
            &mut tx,
            "process_event",
            Some(&format!("event:{event_id}")),
            &payload,
            now_micros(),
        )
        .await?;
        tx.commit().await?;
        db.activity(event_id, "replayed", "Replay requested")
            .await?;
        self.wake();
        Ok(())
    }
}
