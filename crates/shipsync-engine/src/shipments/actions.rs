//! What a person does to a shipment (reprocess, reset, archive), and how a
//! sync run saves what it decided without undoing a concurrent merge.

use shipsync_core::ShipmentVersion;
use shipsync_core::ledger::Recipes;
use shipsync_core::mappings::Mappings;
use shipsync_core::states::{ShipmentStatus, Source};
use shipsync_core::versions;
use shipsync_db::jobs::{self, CompleteAndClaim, Job};
use shipsync_db::merchants::MerchantRow;
use shipsync_db::shipments::{self, ShipmentRow};
use shipsync_db::unit::{Conn, Unit};
use shipsync_db::{activity, events, merchants, now_micros, versions as db_versions};

use super::merge::{add_source, claim_in, content_hash, with_trusted_tracking};
use super::notify::Recorded;
use crate::Engine;
use crate::error::EngineError;
use crate::orders::{OrderConfig, order_shipment_done};
use crate::worker::Taken;

/// A user's action on a shipment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShipmentAction {
    Reprocess,
    Reset,
    Archive,
}

impl Engine {
    pub async fn enqueue_sync(&self, shipment_id: &str) -> Result<(), EngineError> {
        let job = Job::SyncShipment {
            shipment_id: shipment_id.to_string(),
        };
        jobs::enqueue(self.db().pool(), &job, now_micros()).await?;
        self.wake();
        Ok(())
    }

    pub async fn shipment_action(
        &self,
        id: &str,
        action: ShipmentAction,
    ) -> Result<(), EngineError> {
        let db = self.db();
        let mut s = shipments::get(db.pool(), id)
            .await?
            .ok_or(EngineError::NotFound)?;
        match action {
            ShipmentAction::Archive => {
                s.status = ShipmentStatus::Archived;
                s.updated_at = now_micros();
                shipments::update(db.pool(), &s).await?;
                activity::add(db.pool(), id, "archived", "Archived: no further processing").await?;
            }
            ShipmentAction::Reprocess => {
                s.status = ShipmentStatus::Open;
                s.error = None;
                s.updated_at = now_micros();
                shipments::update(db.pool(), &s).await?;
                activity::add(
                    db.pool(),
                    id,
                    "reprocess",
                    "Reprocess requested: the store will be told whatever it still lacks",
                )
                .await?;
                self.enqueue_sync(id).await?;
            }
            ShipmentAction::Reset => {
                // Re-derive from the stored payloads: re-parse every stored
                // delivery of this shipment and keep the newest version.
                let mut newest: Option<ShipmentVersion> = None;
                for v in db_versions::of_shipment(db.pool(), id).await? {
                    let stored = || Some(v.version.clone());
                    let parsed = match v.event_id.as_deref() {
                        Some(eid) => match events::get(db.pool(), eid).await? {
                            Some(e) if e.body.is_some() => shipsync_deposco::parse_webhook(
                                e.body.as_deref().unwrap_or_default(),
                            )
                            .ok()
                            .and_then(|vs| vs.into_iter().find(|x| x.number == s.number))
                            .map(|x| with_trusted_tracking(x, e.verified)),
                            // The body was removed by retention (or the
                            // event): the version as it was derived.
                            _ => stored(),
                        },
                        None => stored(),
                    };
                    if let Some(p) = parsed
                        && newest.as_ref().is_none_or(|n| versions::supersedes(&p, n))
                    {
                        newest = Some(p);
                    }
                }
                // Then ask Deposco for its current state of the shipment.
                let mut refetched =
                    "not re-fetched: the merchant has no Deposco credentials".to_string();
                if let Some(m) = merchants::get(db.pool(), &s.merchant_id).await?
                    && let Ok(client) = self.deposco_client(&m)
                {
                    refetched = match client.shipment_by_number(&s.number).await {
                        Ok(Some(p)) => {
                            let older = newest.as_ref().is_some_and(|n| {
                                versions::is_older(
                                    p.version.updated_at.as_deref(),
                                    n.updated_at.as_deref(),
                                )
                            });
                            if !older {
                                newest = Some(with_trusted_tracking(p.version, true));
                                add_source(&mut s.sources, Source::Poll);
                            }
                            "re-fetched from Deposco".to_string()
                        }
                        Ok(None) => {
                            "Deposco no longer has it; kept the stored payloads".to_string()
                        }
                        Err(e) => format!(
                            "could not re-fetch from Deposco ({e}); used the stored payloads"
                        ),
                    };
                }
                if let Some(v) = newest {
                    s.version_at = v.updated_at.clone();
                    s.content_hash = content_hash(&v);
                    s.version = v;
                }
                s.connection_id = None;
                s.order_id = None;
                s.status = ShipmentStatus::New;
                s.error = None;
                s.completed_at = None;
                s.updated_at = now_micros();
                shipments::update(db.pool(), &s).await?;
                activity::add(
                    db.pool(),
                    id,
                    "reset",
                    &format!("Reset: derived again from the stored payloads, {refetched} (store fulfillments already made are kept)"),
                )
                .await?;
                self.enqueue_sync(id).await?;
            }
        }
        Ok(())
    }

    /// Saves what a run decided about a shipment (match, status, error,
    /// completion) without undoing what a merge wrote meanwhile: the version,
    /// its hash and the sources are not written, and an archived shipment
    /// stays archived. (A run holds the row it read at its start; saving
    /// that whole row would put back the version it replaced.)
    pub(crate) async fn save_run(&self, s: &ShipmentRow) -> Result<(), EngineError> {
        self.save_run_noting(s, None).await
    }

    /// [`Self::save_run`] and, in the same unit, a line of the shipment's
    /// activity (`kind`, message).
    pub(crate) async fn save_run_noting(
        &self,
        s: &ShipmentRow,
        note: Option<(&str, &str)>,
    ) -> Result<(), EngineError> {
        let (queued, _) = self
            .db()
            .unit(SaveRun {
                engine: self.clone(),
                s: Some(s.clone()),
                note: note.map(|(k, m)| (k.to_string(), m.to_string())),
                order: None,
                outcomes: Vec::new(),
                ending: None,
            })
            .await?;
        if queued {
            self.wake();
        }
        Ok(())
    }

    /// [`Self::save_run_noting`]'s statements in `c`: whether an event
    /// delivery was queued.
    pub(crate) async fn save_run_in(
        &self,
        c: &mut impl Conn,
        s: &ShipmentRow,
        note: Option<(&str, &str)>,
    ) -> Result<bool, EngineError> {
        // Only a move to completed or error may emit an event: written
        // first only if the stored status is another (and not archived),
        // which tells whether it moved; else written whatever the status.
        let moved =
            crate::events_out::may_emit(s.status) && shipments::save_run(c.ex(), s, true).await?;
        if !moved {
            shipments::save_run(c.ex(), s, false).await?;
        }
        if let Some((kind, message)) = note {
            activity::add(c.ex(), &s.id, kind, message).await?;
        }
        // shipment.completed / shipment.error, with the change.
        Ok(moved && self.shipment_moved(c, s).await?)
    }

    /// The shipment waits (status `new`, `why` as its error) for something
    /// outside shipsync; saved and noted once per reason.
    pub(super) async fn wait(&self, s: &mut ShipmentRow, why: &str) -> Result<(), EngineError> {
        if s.error.as_deref() != Some(why) || s.status != ShipmentStatus::New {
            s.status = ShipmentStatus::New;

            s.error = Some(why.to_string());
            s.updated_at = now_micros();
            self.save_run_noting(s, Some(("waiting", why))).await?;
        }
        Ok(())
    }
}

/// A run's save of its shipment (with a line of activity), and, at its end,
/// its order's state: one unit.
pub(crate) struct SaveRun {
    pub engine: Engine,
    /// The shipment to save (`None`: only the order's state).
    pub s: Option<ShipmentRow>,
    pub note: Option<(String, String)>,
    pub order: Option<OrderDone>,
    /// Outcomes of the run's store writes, saved first.
    pub outcomes: Vec<Recorded>,
    /// The run's job ended here, last ([`crate::worker::ending`]).
    pub ending: Option<CompleteAndClaim>,
}

/// A shipment of this store order reached the store (see
/// [`crate::orders::order_shipment_done`]), with the merchant's settings as
/// the run loaded them.
pub(crate) struct OrderDone {
    pub connection_id: String,
    pub store_order_id: String,
    pub merchant: MerchantRow,
    pub mappings: Mappings,
    pub recipes: Recipes,
}

impl Unit for SaveRun {
    /// Whether an event delivery was queued, and what the job's end
    /// claimed.
    type Output = (bool, Option<Taken>);
    type Error = EngineError;

    async fn run<C: Conn>(self, c: &mut C) -> Result<(bool, Option<Taken>), EngineError> {
        for r in &self.outcomes {
            r.run_in(c).await?;
        }
        let queued = match &self.s {
            Some(s) => {
                let note = self.note.as_ref().map(|(k, m)| (k.as_str(), m.as_str()));
                self.engine.save_run_in(c, s, note).await?
            }
            None => false,
        };
        if let Some(o) = &self.order {
            let config = OrderConfig {
                merchant: &o.merchant,
                mappings: &o.mappings,
                recipes: &o.recipes,
            };
            order_shipment_done(c, &o.connection_id, &o.store_order_id, config).await?;
        }
        // (The job ends here only outside a burst: the worker runs on.)
        let turn = match self.ending {
            Some(end) => Some(claim_in(c, end, true).await?),
            None => None,
        };
        Ok((queued, turn))
    }
}
