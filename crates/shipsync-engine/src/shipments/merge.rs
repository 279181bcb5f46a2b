//! Merging: each reported version of a shipment (webhook or pull) is merged
//! into its shipment row; a version that changes what the shipment says
//! queues its sync. Which version wins is `shipsync_core::versions`.

use std::panic::AssertUnwindSafe;

use futures::FutureExt;
use shipsync_core::states::{EventOutcome, ShipmentStatus, Source};
use shipsync_core::versions::{self, Judgement};
use shipsync_core::{ShipmentVersion, ledger, tracking};
use shipsync_db::events::EventRow;
use shipsync_db::jobs::{self, Claimed, CompleteAndClaim, Job};
use shipsync_db::shipments::{self, ShipmentRow};
use shipsync_db::unit::{Conn, Unit};
use shipsync_db::versions::{self as db_versions, VersionRow};
use shipsync_db::{Backend, activity, events, new_id, now_micros, recipes};
use tracing::Instrument;
use tracing::field::Empty;

use super::sync::{Load, Loaded};
use crate::Engine;
use crate::error::EngineError;
use crate::spans::list_field;
use crate::worker::{Handoff, Taken};

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

/// Adds `source` to a shipment's sources, once.
pub(super) fn add_source(sources: &mut Vec<Source>, source: Source) {
    if !sources.contains(&source) {
        sources.push(source);
    }
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
        source: Source,
        event_id: Option<&str>,
    ) -> Result<(String, MergeOutcome), EngineError> {
        let db = self.db();
        let mut tx = db.begin().await?;
        let merged = Self::merge_in(&mut tx, merchant_id, version, source, event_id, None).await?;
        save_recipes_seen(&mut tx, merchant_id, version).await?;
        tx.commit().await?;
        if merged.1 != MergeOutcome::Unchanged {
            self.wake();
        }
        Ok(merged)
    }

    /// [`Self::merge_version`] inside `tx`, which the caller commits (one
    /// version, or a whole page of the pull); kit recipes seen in the version
    /// are the caller's to save. Errors other than [`EngineError::Db`] come
    /// before any statement, so `tx` stays usable after them. With `chain`,
    /// the sync a change calls for is the job of `chain` turned into it
    /// (once), else a job of its own.
    pub(crate) async fn merge_in(
        tx: &mut impl Conn,
        merchant_id: &str,
        version: &ShipmentVersion,
        source: Source,
        event_id: Option<&str>,
        chain: Option<&mut Chain>,
    ) -> Result<(String, MergeOutcome), EngineError> {
        let hash = content_hash(version);
        let now = now_micros();
        let existing = shipments::by_number(tx, merchant_id, &version.number).await?;
        let via = if source == Source::Webhook {
            "webhook"
        } else {
            "the scheduled pull"
        };
        let (id, changed, created) = match existing {
            None => {
                let id = new_id("shp");
                shipments::insert(
                    tx.ex(),
                    &ShipmentRow {
                        id: id.clone(),
                        merchant_id: merchant_id.to_string(),
                        number: version.number.clone(),
                        connection_id: None,
                        order_id: None,
                        order_name: version.order_refs.first().cloned().unwrap_or_default(),
                        status: ShipmentStatus::New,
                        error: None,
                        sources: vec![source],
                        first_seen_via: source,
                        version: version.clone(),
                        version_at: version.updated_at.clone(),
                        content_hash: hash.clone(),
                        received_at: now,
                        updated_at: now,
                        completed_at: None,
                    },
                )
                .await?;
                activity::add(
                    tx.ex(),
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
                add_source(&mut s.sources, source);
                let changed = if s.content_hash == hash {
                    activity::add(
                        tx.ex(),
                        &s.id,
                        "received",
                        &format!("Received again from {via}; unchanged"),
                    )
                    .await?;
                    false
                } else {
                    match versions::judge(version.into(), (&s.version).into()) {
                        Judgement::GoesBack => {
                            activity::add(
                        tx.ex(),
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
                            activity::add(
                        tx.ex(),
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
                            s.version = version.clone();
                            s.version_at = version.updated_at.clone();
                            s.content_hash = hash.clone();
                            if matches!(s.status, ShipmentStatus::Completed | ShipmentStatus::New) {
                                s.status = ShipmentStatus::Open;
                            }
                            activity::add(
                                tx.ex(),
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
                shipments::update(tx.ex(), &s).await?;
                (s.id, changed, false)
            }
        };
        db_versions::insert(
            tx.ex(),
            &VersionRow {
                id: new_id("ver"),
                shipment_id: id.clone(),
                event_id: event_id.map(str::to_string),
                source,
                received_at: now,
                content_hash: hash,
                version: version.clone(),
            },
        )
        .await?;
        if changed {
            let job = Job::SyncShipment {
                shipment_id: id.clone(),
            };
            let became = match chain {
                Some(chain) if chain.became.is_none() => {
                    let turned = jobs::become_in(tx, &chain.job_id, &chain.owner, &job).await?;
                    if turned {
                        chain.became = Some(job.clone());
                    }
                    turned
                }
                _ => false,
            };
            if !became {
                jobs::enqueue(tx.ex(), &job, now).await?;
            }
        }
        let outcome = match (created, changed) {
            (true, _) => MergeOutcome::New,
            (false, true) => MergeOutcome::Updated,
            (false, false) => MergeOutcome::Unchanged,
        };
        Ok((id, outcome))
    }

    /// Job `process_event`: parse a stored delivery and merge what it holds
    /// (a store's order delivery goes to the order side).
    #[tracing::instrument(
        name = "process_event",
        skip_all,
        fields(event = %event_id, merchant = Empty, shipment_number = Empty, shipment = Empty)
    )]
    ///
    /// Run by a worker, the job becomes the sync of the (first) shipment it
    /// changed, returned for the worker to run at once under the same
    /// lease: no row of its own, no claim, no wake.
    pub(crate) async fn process_event(&self, event_id: &str) -> Result<Option<Job>, EngineError> {
        let chain = crate::worker::running().map(|(job_id, owner)| Chain {
            job_id,
            owner,
            became: None,
        });
        // Merged already by the unit that claimed this job ([`claim_in`]),
        // or merged now.
        let merged = match crate::worker::handed::<PreMerged>(event_id) {
            Some(pre) => {
                if let Merged::Order(event) = &pre.0 {
                    tracing::Span::current().record("merchant", event.merchant_id.as_str());
                }
                pre.0
            }
            None => {
                self.db()
                    .unit(MergeEvent {
                        event_id: event_id.to_string(),
                        chain,
                        read_for_sync: read_for_sync(
                            self.db().backend(),
                            !self.ingest().in_burst(),
                        ),
                    })
                    .await?
            }
        };
        match merged {
            Merged::Order(event) => {
                self.process_order_event(&event).await?;
                return Ok(None);
            }
            Merged::Changed(Some((next, read))) => {
                if let (Job::SyncShipment { shipment_id }, Some(read)) = (&next, read) {
                    crate::worker::hand_on(shipment_id, read);
                }
                return Ok(Some(next));
            }
            // A worker's next claim, which completes this job, takes the
            // sync queued (or, in a backlog, wakes another worker for what
            // is due): waking one more here would have it claim nothing.
            Merged::Changed(None) if crate::worker::current().is_some() => {}
            Merged::Changed(None) => self.wake(),
            Merged::Done => {}
        }
        Ok(None)
    }

    /// Re-queues every shipment of a merchant still waiting for the store
    /// (after a connection or channel was switched on).
    pub async fn release_waiting(&self, merchant_id: &str) -> Result<usize, EngineError> {
        let ids = shipments::pending_ids(self.db().pool(), merchant_id).await?;
        for id in &ids {
            self.enqueue_sync(id).await?;
        }
        Ok(ids.len())
    }

    pub async fn replay_event(&self, event_id: &str) -> Result<(), EngineError> {
        let db = self.db();
        let event = events::get(db.pool(), event_id)
            .await?
            .ok_or(EngineError::NotFound)?;
        if event.body.is_none() {
            return Err(EngineError::Permanent(
                "this event has no stored body to replay".into(),
            ));
        }
        let job = Job::ProcessEvent {
            event_id: event_id.to_string(),
        };
        jobs::enqueue(db.pool(), &job, now_micros()).await?;
        activity::add(db.pool(), event_id, "replayed", "Replay requested").await?;

        self.wake();
        Ok(())
    }
}

/// Whether a merge reads for the sync its job becomes (see [`MergeEvent`]):
/// not in a burst, where the worker leaves what the job became for later;
/// not on PostgreSQL, where the reads are round trips that would hold the
/// merge's row locks (the merchant's kit recipes among them) longer, for a
/// transaction saved: the sync reads in its own.
fn read_for_sync(backend: Backend, running_on: bool) -> bool {
    backend == Backend::Sqlite && running_on
}

/// A stored delivery merged by the unit that claimed its `process_event`
/// ([`claim_in`]), for that job's run.
struct PreMerged(Merged);

/// Whether `handoff` is the merge of `job`'s delivery done by its claim,
/// and that merge left the job nothing more to do (nothing new, or a sync
/// queued as a job of its own): the job may be completed unrun.
pub(crate) fn merged_whole(handoff: &Handoff, job: &Claimed) -> bool {
    let Ok(Job::ProcessEvent { event_id }) = &job.job else {
        return false;
    };
    matches!(
        handoff.peek::<PreMerged>(event_id),
        Some(PreMerged(Merged::Done | Merged::Changed(None)))
    )
}

/// A worker's claim as a unit ([`claim_in`]). `running_on`: whether the
/// worker runs what the job claimed becomes at once (not in a burst).
pub(crate) struct Claim {
    pub turn: CompleteAndClaim,
    pub running_on: bool,
}

impl Unit for Claim {
    type Output = Taken;
    type Error = EngineError;

    async fn run<C: Conn>(self, c: &mut C) -> Result<Taken, EngineError> {
        claim_in(c, self.turn, self.running_on).await
    }
}

/// A worker's turn (the job it ran completed, the next claimed) and, on
/// SQLite, when the turn claimed the `process_event` of one stored
/// delivery, that delivery merged in the same unit, handed to the job's
/// run: the merge is the job's first unit, so the claim and the merge
/// share one transaction instead of two. The merge runs in a savepoint of
/// its own: when it fails or panics, it is undone alone, the claim stands,
/// and the job's run merges again and meets the failure there (retried,
/// counted); only when SQLite itself rolled the transaction back does
/// nothing of the unit stand (the claim is made again).
/// Not on PostgreSQL, for the reason of [`read_for_sync`]: the claim's
/// transaction would hold the merge's row locks no shorter.
/// `running_on`: as for [`Claim`].
pub(crate) async fn claim_in<C: Conn>(
    c: &mut C,
    turn: CompleteAndClaim,
    running_on: bool,
) -> Result<Taken, EngineError> {
    let owner = turn.owner.clone();
    let turn = turn.run(c).await?;
    let merge = match turn.jobs.as_slice() {
        [
            job @ Claimed {
                job: Ok(Job::ProcessEvent { event_id }),
                ..
            },
        ] if c.backend() == Backend::Sqlite => Some((
            crate::worker::job_span(job),
            job.id.clone(),
            event_id.clone(),
        )),
        _ => None,
    };
    let Some((span, job_id, event_id)) = merge else {
        return Ok(turn.into());
    };
    // Logged as the job's run would log it.
    let inner = tracing::info_span!(
        parent: &span,
        "process_event",
        event = %event_id,
        merchant = Empty,
        shipment_number = Empty,
        shipment = Empty
    );
    shipsync_db::unit::nested(c).await?;
    let merge = MergeEvent {
        event_id: event_id.clone(),
        chain: Some(Chain {
            job_id,
            owner,
            became: None,
        }),
        read_for_sync: read_for_sync(c.backend(), running_on),
    };
    // A merge that panics is undone alone too: the claim must stand, or
    // every worker would claim the job again and meet the panic again.
    let merged = match AssertUnwindSafe(merge.run(c).instrument(inner))
        .catch_unwind()
        .await
    {
        Ok(merged) => merged,
        Err(_) => Err(EngineError::Internal(
            "merging the delivery panicked".into(),
        )),
    };
    if let Err(e) = &merged {
        tracing::debug!(event = %event_id, error = %e, "merging with the claim failed: undone, the job's run merges again");
    }
    let merged = match (
        shipsync_db::unit::end_nested(c, merged.is_ok()).await,
        merged,
    ) {
        (Ok(()), merged) => merged.ok(),
        // The transaction is gone with the savepoint (SQLite rolled it
        // back): nothing of the unit stands; the merge's error says why.
        (Err(_), Err(e)) => return Err(e),
        (Err(e), Ok(_)) => return Err(e.into()),
    };
    Ok(Taken {
        turn,
        handoff: merged.map(|m| Handoff::new(&event_id, Box::new(PreMerged(m)))),
    })
}

/// Saves the kit recipes a merged version shows.
pub(crate) async fn save_recipes_seen(
    c: &mut impl Conn,
    merchant_id: &str,
    version: &ShipmentVersion,
) -> Result<(), EngineError> {
    for (kit, comps) in ledger::recipes_seen(version) {
        for (comp, per_kit) in comps {
            recipes::save(
                c.ex(),
                merchant_id,
                &kit,
                &comp,
                i64::try_from(per_kit).unwrap_or(i64::MAX),
                shipsync_core::mappings::RecipeSource::Webhook,
            )
            .await?;
        }
    }
    Ok(())
}

/// The job a merge runs in (its id, its worker's lease), which may become
/// the sync of a shipment it changes ([`jobs::become_in`]).
pub(crate) struct Chain {
    job_id: String,
    owner: String,
    /// What it became.
    became: Option<Job>,
}

/// What [`MergeEvent`] did.
enum Merged {
    /// A store's order delivery: for the order side.
    Order(Box<EventRow>),
    /// A shipment changed: its sync is queued, or is what the job became,
    /// with that sync's first read ([`super::sync::Load`]) done at the end
    /// of the merge's unit.
    Changed(Option<(Job, Option<Box<Loaded>>)>),
    /// Nothing new, the event was gone, or it did not parse (it needs
    /// attention).
    Done,
}

/// `process_event`'s database work as one unit (or, on SQLite, as part of
/// the unit that claimed the job: [`claim_in`]): the stored delivery read,
/// parsed, each version merged, the kit recipes it shows saved and the
/// event's result set.
struct MergeEvent {
    event_id: String,
    chain: Option<Chain>,
    /// Whether to read for the sync the job becomes.
    read_for_sync: bool,
}

impl Unit for MergeEvent {
    type Output = Merged;
    type Error = EngineError;

    async fn run<C: Conn>(self, c: &mut C) -> Result<Merged, EngineError> {
        let event_id = self.event_id.as_str();
        let Some(event) = events::get(c.ex(), event_id).await? else {
            return Ok(Merged::Done);
        };
        let span = tracing::Span::current();
        span.record("merchant", event.merchant_id.as_str());
        if event.connection_id.is_some() {
            return Ok(Merged::Order(Box::new(event)));
        }
        let body = event.body.clone().unwrap_or_default();
        let versions = match shipsync_deposco::parse_webhook(&body) {
            Ok(versions) => versions,
            Err(e) => {
                events::set_result(
                    c.ex(),
                    event_id,
                    EventOutcome::NeedsAttention,
                    Some(&e.to_string()),
                    &[],
                )
                .await?;
                return Ok(Merged::Done);
            }
        };
        let versions: Vec<ShipmentVersion> = versions
            .into_iter()
            .map(|v| with_trusted_tracking(v, event.verified))
            .collect();
        span.record(
            "shipment_number",
            list_field(versions.iter().map(|v| v.number.as_str())),
        );
        let mut ids = Vec::new();
        let mut changed = false;
        let mut chain = self.chain;
        for v in &versions {
            let (id, outcome) = Engine::merge_in(
                c,
                &event.merchant_id,
                v,
                Source::Webhook,
                Some(event_id),
                chain.as_mut(),
            )
            .await?;
            changed |= outcome != MergeOutcome::Unchanged;
            ids.push(id);
        }
        span.record("shipment", list_field(ids.iter().map(String::as_str)));
        events::set_result(c.ex(), event_id, EventOutcome::Accepted, None, &ids).await?;
        for v in &versions {
            save_recipes_seen(c, &event.merchant_id, v).await?;
        }
        tracing::debug!(shipments = ids.len(), changed, "event merged");
        if !changed {
            return Ok(Merged::Done);
        }
        // The sync this job became starts with what it would read in a unit
        // of its own: read here, after every write of the merge.
        let became = chain.and_then(|c| c.became);
        let read = match &became {
            Some(Job::SyncShipment { shipment_id }) if self.read_for_sync => Load {
                shipment_id: shipment_id.clone(),
            }
            .run(c)
            .await?
            .map(Box::new),
            _ => None,
        };
        Ok(Merged::Changed(became.map(|job| (job, read))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A job released unrun after its claim merged its delivery is
    /// completed only when the merge left it nothing to do; else it is left
    /// for later (its order delivery still to process, or its row turned
    /// into the sync, which runs then).
    #[test]
    fn a_released_job_is_completed_only_when_its_merge_left_nothing_to_do() {
        let job = |event_id: &str| Claimed {
            id: "job_1".into(),
            kind: "process_event".into(),
            attempts: 0,
            job: Ok(Job::ProcessEvent {
                event_id: event_id.into(),
            }),
        };
        let sync = || Job::SyncShipment {
            shipment_id: "shp_1".into(),
        };
        let table: [(Merged, &str, &str, bool); 5] = [
            // (what the claim's merge did, merged for, the job's event, complete?)
            (Merged::Done, "evt_1", "evt_1", true),
            (Merged::Changed(None), "evt_1", "evt_1", true),
            (
                Merged::Changed(Some((sync(), None))),
                "evt_1",
                "evt_1",
                false,
            ),
            (Merged::Done, "evt_2", "evt_1", false),
            (Merged::Changed(None), "evt_2", "evt_1", false),
        ];
        for (merged, merged_for, event, want) in table {
            let handoff = Handoff::new(merged_for, Box::new(PreMerged(merged)));
            assert_eq!(
                merged_whole(&handoff, &job(event)),
                want,
                "{merged_for} {event}"
            );
        }
        // A sync's read, or a job that is not a delivery's: never.
        let read = Handoff::new("evt_1", Box::new(7_u32));
        assert!(!merged_whole(&read, &job("evt_1")));
        let not_an_event = Claimed {
            job: Ok(sync()),
            ..job("evt_1")
        };
        let done = Handoff::new("evt_1", Box::new(PreMerged(Merged::Done)));
        assert!(!merged_whole(&done, &not_an_event));
    }
}
