//! The shipment pull: Deposco's shipments changed since the channel's
//! cursor, page by page (the next page fetched while one is stored), each
//! version merged.

use std::time::Duration;

use shipsync_core::states::{Channel, RunTrigger, Source};
use shipsync_db::jobs::{self, Job};
use shipsync_db::runs::{self, QueueRun, RunRow};
use shipsync_db::{connections, merchants};
use shipsync_deposco::api::{DeposcoClient, DeposcoError, ShipmentPage};

use tracing::Instrument;
use tracing::field::Empty;

use super::{Opened, Progress, RunCounts, micros, ts};

use crate::Engine;
use crate::error::EngineError;
use crate::shipments::{MergeOutcome, save_recipes_seen, with_trusted_tracking};

/// The pull re-reads this much before its cursor: clocks differ and Deposco
/// may index late.
pub const PULL_OVERLAP: Duration = Duration::from_secs(15 * 60);
/// First pull of a channel without a cursor: this far back.
pub const FIRST_PULL_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// The next page of a pull, fetched in its own task while the current one is
/// stored; dropped (the pull failed), the fetch stops.
struct Prefetch(tokio::task::JoinHandle<Result<ShipmentPage, DeposcoError>>);

impl Prefetch {
    fn start(client: &DeposcoClient, since: jiff::Timestamp, href: String) -> Self {
        let client = client.clone();
        // In the pull's span, like the pages it reads itself.
        Self(tokio::spawn(
            async move { client.shipments_page(since, Some(&href)).await }.in_current_span(),
        ))
    }

    async fn page(mut self) -> Result<ShipmentPage, EngineError> {
        match (&mut self.0).await {
            Ok(page) => Ok(page?),
            Err(e) => Err(EngineError::Internal(format!(
                "fetching the next page stopped: {e}"
            ))),
        }
    }
}

impl Drop for Prefetch {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Engine {
    /// Job `pull_shipments`: read shipments changed since the channel's
    /// cursor (minus an overlap) page by page, merge each like a webhook
    /// would, and move the cursor when the whole pull succeeded. The page
    /// reached is saved after each page, so a crash resumes there.
    #[tracing::instrument(
        name = "pull_shipments",
        skip_all,
        fields(run = %run_id, connection = Empty, channel = Empty, merchant = Empty)
    )]
    pub async fn pull_shipments(
        &self,
        run_id: &str,
        since_override: Option<i64>,
        progress: Option<Progress>,
    ) -> Result<RunCounts, EngineError> {
        let db = self.db();
        let span = tracing::Span::current();
        let (mut run, mut counts, connection) = match self.open_run(run_id).await? {
            Opened::Over(counts) => return Ok(counts),
            Opened::Open(open) => *open,
        };
        let merchant = merchants::get(db.pool(), &connection.merchant_id)
            .await?
            .ok_or_else(|| EngineError::Permanent("the merchant of this run was deleted".into()))?;
        span.record("merchant", merchant.id.as_str());
        let client = self.deposco_client(&merchant)?;
        self.start_run(&mut run, since_override).await?;
        let since = run.since_at.unwrap_or(0);
        let since_ts = ts(since);
        let first = client
            .shipments_page(since_ts, run.page_href.as_deref())
            .await;
        self.warehouse_answered(&merchant.id, first.as_ref().err())
            .await?;
        let mut page = first?;
        loop {
            let next = page.next.clone().filter(|_| !page.complete);
            // The next page is fetched while this one is stored, so storing
            // hides under the wait for the rate limit. One page ahead at
            // most: memory stays flat.
            let prefetch = next
                .as_ref()
                .map(|href| Prefetch::start(&client, since_ts, href.clone()));
            run.page_href = next;
            self.store_page(&merchant.id, &page, since_ts, &mut counts, &mut run)
                .await?;
            if let Some(p) = &progress {
                p(&counts);
            }
            let Some(prefetch) = prefetch else {
                break;
            };
            page = prefetch.page().await?;
        }
        self.finish_run(&mut run).await?;
        tracing::info!(run = %run.id, ?counts, "shipment pull finished");
        Ok(counts)
    }

    /// Stores one page of a pull in one transaction, together with the run's
    /// counts and resume point (`run.page_href`, already the next page): a
    /// crash resumes after the last page stored, never inside one, and the
    /// page costs one commit instead of one per shipment.
    async fn store_page(
        &self,
        merchant_id: &str,
        page: &ShipmentPage,
        since: jiff::Timestamp,
        counts: &mut RunCounts,
        run: &mut RunRow,
    ) -> Result<(), EngineError> {
        let mut tx = self.db().begin().await?;
        counts.pages += 1;
        // Records that do not parse are counted; the pull goes on.
        counts.failed += page.failed.len() as u64;
        let mut changed = false;
        for pulled in &page.shipments {
            // Filters may be ignored by the server: filter again here.
            if pulled.updated_date.is_some_and(|u| u < since) {
                continue;
            }
            counts.fetched += 1;
            // The Deposco API is authenticated: its tracking URLs count as
            // signed (still only https ones).
            let version = with_trusted_tracking(pulled.version.clone(), true);
            match Self::merge_in(&mut tx, merchant_id, &version, Source::Poll, None, None).await {
                Ok((_, outcome)) => {
                    match outcome {
                        MergeOutcome::New => counts.new += 1,
                        MergeOutcome::Updated => counts.updated += 1,
                        MergeOutcome::Unchanged => counts.unchanged += 1,
                    }
                    changed |= outcome != MergeOutcome::Unchanged;
                    save_recipes_seen(&mut tx, merchant_id, &pulled.version).await?;
                }
                Err(e @ EngineError::Db(_)) => return Err(e),
                Err(e) => {
                    counts.failed += 1;
                    tracing::warn!(shipment_number = %pulled.version.number, error = %e, "pulled shipment not merged");
                }
            }
        }
        counts.put(run)?;
        runs::save(&mut *tx, run).await?;
        tx.commit().await?;
        if changed {
            self.wake();
        }
        Ok(())
    }

    /// Runs a shipments pull in this process (the `sync shipments` command):
    /// queues it like any run, then takes its job itself. If this process
    /// dies, the job's lease expires and a server resumes the run from its
    /// last page.
    pub async fn sync_shipments_now(
        &self,
        connection_id: &str,
        since: Option<jiff::Timestamp>,
        progress: Option<Progress>,
    ) -> Result<(String, RunCounts), EngineError> {
        let db = self.db();
        let c = connections::get(db.pool(), connection_id)
            .await?
            .ok_or(EngineError::NotFound)?;
        let run = match runs::queue(db, &c.id, Channel::Shipments, RunTrigger::Cli, None).await? {
            QueueRun::Queued(run) => run,
            QueueRun::InProgress(id) => {
                return Err(EngineError::Permanent(format!(
                    "run {id} of this channel is already queued or running; wait for it or check it with the API"
                )));
            }
        };
        let owner = shipsync_db::new_id("cli");
        let lease = micros(self.config().lease);
        let job = Job::pull(Channel::Shipments, run.id.clone());
        let Some(job) = jobs::claim_this(db, &job, &owner, lease).await? else {
            return Err(EngineError::Internal(
                "the run's job was taken by another process".into(),
            ));
        };
        match self
            .pull_shipments(&run.id, since.map(|t| t.as_microsecond()), progress)
            .await
        {
            Ok(counts) => {
                jobs::complete(db, &job.id, &owner).await?;
                self.wake();
                Ok((run.id.clone(), counts))
            }
            Err(e) => {
                self.fail_run(&run.id, &e.to_string()).await?;
                jobs::drop(db.pool(), &job.id).await?;

                Err(e)
            }
        }
    }
}
