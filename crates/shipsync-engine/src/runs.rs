//! Channel runs: the scheduler that fires them from schedule slots, run-now,
//! and the shipment pull (the fallback that guarantees completeness).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::shutdown::Shutdown;
use secrecy::SecretString;
use shipsync_core::ledger;
use shipsync_core::schedule;
use shipsync_core::states::{Channel, RunStatus, RunTrigger, Source};
use shipsync_db::jobs::{self, Job};
use shipsync_db::runs::{self, QueueRun, RunRow};
use shipsync_db::{channels, connections, merchants, now_micros, recipes};
use shipsync_deposco::api::{Auth, DeposcoClient, DeposcoConfig, DeposcoError, ShipmentPage};

use tracing::Instrument;
use tracing::field::Empty;

use crate::Engine;
use crate::pipeline::{EngineError, MergeOutcome, with_trusted_tracking};

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

/// Counts of a pull, as the API shows them (a run not started yet has
/// none: all zero).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct RunCounts {
    pub fetched: u64,
    pub new: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub failed: u64,
    pub pages: u64,
}

impl RunCounts {
    /// The counts a run holds so far.
    pub(crate) fn of(run: &RunRow) -> Result<Self, EngineError> {
        serde_json::from_value(run.counts.clone())
            .map_err(|e| EngineError::Internal(format!("counts of run {}: {e}", run.id)))
    }

    /// Saves them in the run (its next save stores them).
    pub(crate) fn put(&self, run: &mut RunRow) -> Result<(), EngineError> {
        run.counts =
            serde_json::to_value(self).map_err(|e| EngineError::Internal(e.to_string()))?;
        Ok(())
    }
}

/// Progress of a pull, for the CLI's progress bar.
pub type Progress = Arc<dyn Fn(&RunCounts) + Send + Sync>;

impl From<DeposcoError> for EngineError {
    fn from(e: DeposcoError) -> Self {
        if e.is_retryable() {
            EngineError::Retry {
                message: e.to_string(),
                after: None,
            }
        } else {
            EngineError::Permanent(e.to_string())
        }
    }
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

fn ts(micros: i64) -> jiff::Timestamp {
    jiff::Timestamp::from_microsecond(micros).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}

impl Engine {
    /// A Deposco client for a merchant's warehouse settings.
    pub fn deposco_client(
        &self,
        merchant: &shipsync_db::merchants::MerchantRow,
    ) -> Result<DeposcoClient, EngineError> {
        let w: serde_json::Value =
            serde_json::from_str(&merchant.warehouse_json).unwrap_or_default();
        let secrets: BTreeMap<String, String> = match &merchant.warehouse_secrets {
            Some(sealed) => serde_json::from_str(
                &self
                    .secrets()
                    .open_string(sealed)
                    .map_err(|e| EngineError::Permanent(e.to_string()))?,
            )
            .unwrap_or_default(),
            None => BTreeMap::new(),
        };
        let s = |k: &str| {
            w.get(k)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string()
        };
        let auth_field = |k: &str| {
            w.pointer(&format!("/auth/{k}"))
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string()
        };
        // A secret cleared when the endpoint changed is never sent empty.
        let secret = |k: &str| {
            secrets
                .get(k)
                .filter(|v| !v.is_empty())
                .map(|v| SecretString::from(v.clone()))
                .ok_or_else(|| {
                    EngineError::Permanent(format!(
                        "merchant {} has no Deposco {}: give warehouse.auth.{k} again (it is \
                         cleared when the API URL, business unit or token URL changes)",
                        merchant.name,
                        k.replace('_', " ")
                    ))
                })
        };
        let auth = match auth_field("type").as_str() {
            "basic" => Auth::Basic {
                username: auth_field("username"),
                password: secret("password")?,
            },
            "oauth" => Auth::OAuth {
                token_url: auth_field("token_url"),
                client_id: auth_field("client_id"),
                client_secret: secret("client_secret")?,
                refresh_token: secret("refresh_token")?,
            },
            _ => {
                return Err(EngineError::Permanent(format!(
                    "merchant {} has no Deposco credentials: set warehouse.auth",
                    merchant.name
                )));
            }
        };
        let mut config = DeposcoConfig::new(s("api_url"), s("business_unit"), auth);
        config.timeout = self.config().http_timeout.max(Duration::from_secs(10));
        let limiter = self.inner.stores.budgets().deposco(&config.limiter_key());
        Ok(DeposcoClient::new(
            self.inner.stores.http(),
            config,
            limiter,
        )?)
    }

    /// Queues a run now (`POST …/runs`, the CLI). Refuses when the channel or
    /// its connection is off.
    pub async fn run_now(
        &self,
        connection_id: &str,
        channel: Channel,
        trigger: RunTrigger,
    ) -> Result<QueueRun, EngineError> {
        let db = self.db();
        let c = connections::get(db.pool(), connection_id)
            .await?
            .ok_or(EngineError::NotFound)?;
        let ch = channels::get(db.pool(), connection_id, channel)
            .await?
            .ok_or(EngineError::NotFound)?;
        if !c.enabled || !ch.enabled {
            return Err(EngineError::ChannelDisabled);
        }
        let q = runs::queue(db, connection_id, channel, trigger, None).await?;
        self.wake();
        Ok(q)
    }

    /// One scheduler pass: fires every due slot once (across nodes: the
    /// schedule advances by compare-and-set, the run by a unique index), and
    /// collapses missed slots into one catch-up run.
    pub async fn scheduler_tick(&self) -> Result<(), EngineError> {
        let db = self.db();
        let now = jiff::Timestamp::now();
        for ch in channels::enabled(db.pool()).await? {
            let Ok(rules) = schedule::parse_schedules(&ch.schedules) else {
                continue;
            };
            if rules.is_empty() {
                continue;
            }
            let next = schedule::next_fire(&rules, now).map(|t| t.as_microsecond());
            match ch.next_run_at {
                None => {
                    channels::advance_schedule(
                        db.pool(),
                        &ch.connection_id,
                        ch.channel,
                        None,
                        next,
                    )
                    .await?;
                }
                Some(due) if due <= now.as_microsecond() => {
                    if channels::advance_schedule(
                        db.pool(),
                        &ch.connection_id,
                        ch.channel,
                        Some(due),
                        next,
                    )
                    .await?
                    {
                        match runs::queue(
                            db,
                            &ch.connection_id,
                            ch.channel,
                            RunTrigger::Schedule,
                            Some(due),
                        )
                        .await?
                        {
                            QueueRun::Queued(run) => {
                                tracing::info!(run = %run.id, connection = %ch.connection_id, channel = %ch.channel, "scheduled run queued");
                                self.wake();
                            }
                            QueueRun::InProgress(id) => {
                                tracing::info!(active = %id, connection = %ch.connection_id, channel = %ch.channel, "slot skipped: a run is still in progress");
                            }
                        }
                    }
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// Runs the scheduler every second until `shutdown`.
    pub fn start_scheduler(&self, shutdown: &Shutdown) -> tokio::task::JoinHandle<()> {
        let engine = self.clone();
        let mut shutdown = shutdown.clone();
        tokio::spawn(async move {
            loop {
                if let Err(e) = engine.scheduler_tick().await {
                    tracing::warn!(error = %e, "scheduler pass failed");
                }
                if let Err(e) = engine.retention_tick().await {
                    tracing::warn!(error = %e, "could not queue the retention job");
                }
                tokio::select! {
                    _ = shutdown.wait() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        })
    }

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
        let mut run = runs::get(db.pool(), run_id)
            .await?
            .ok_or(EngineError::NotFound)?;
        let span = tracing::Span::current();
        span.record("connection", run.connection_id.as_str());
        span.record("channel", run.channel.as_str());
        let mut counts = RunCounts::of(&run)?;
        if matches!(run.status, RunStatus::Succeeded | RunStatus::Failed) {
            return Ok(counts);
        }
        let connection = connections::get(db.pool(), &run.connection_id)
            .await?
            .ok_or_else(|| {
                EngineError::Permanent("the connection of this run was deleted".into())
            })?;
        let merchant = merchants::get(db.pool(), &connection.merchant_id)
            .await?
            .ok_or_else(|| EngineError::Permanent("the merchant of this run was deleted".into()))?;
        span.record("merchant", merchant.id.as_str());
        let client = self.deposco_client(&merchant)?;
        self.start_run(&mut run, since_override).await?;
        let since = run.since_at.unwrap_or(0);
        let since_ts = ts(since);
        let mut page = client
            .shipments_page(since_ts, run.page_href.as_deref())
            .await?;
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
            match Self::merge_in(&mut tx, merchant_id, &version, Source::Poll, None).await {
                Ok((_, outcome)) => {
                    match outcome {
                        MergeOutcome::New => counts.new += 1,
                        MergeOutcome::Updated => counts.updated += 1,
                        MergeOutcome::Unchanged => counts.unchanged += 1,
                    }
                    changed |= outcome != MergeOutcome::Unchanged;
                    for (kit, comps) in ledger::recipes_seen(&pulled.version) {
                        for (comp, per_kit) in comps {
                            recipes::save(
                                &mut *tx,
                                merchant_id,
                                &kit,
                                &comp,
                                i64::try_from(per_kit).unwrap_or(i64::MAX),
                            )
                            .await?;
                        }
                    }
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

    /// A queued run starts: `running`, with the lower bound of its pull fixed
    /// (the channel's cursor minus the overlap, or the first-pull window). A
    /// run already running (resumed after a crash) keeps its bound.
    pub(crate) async fn start_run(
        &self,
        run: &mut RunRow,
        since_override: Option<i64>,
    ) -> Result<(), EngineError> {
        if run.status != RunStatus::Queued {
            return Ok(());
        }
        let now = now_micros();
        let cursor = channels::cursor(self.db().pool(), &run.connection_id, run.channel).await?;
        run.status = RunStatus::Running;
        run.started_at = Some(now);
        run.since_at = Some(since_override.unwrap_or_else(|| match cursor {
            Some(c) => c - micros(PULL_OVERLAP),
            None => now - micros(FIRST_PULL_WINDOW),
        }));
        runs::save(self.db().pool(), run).await?;
        Ok(())
    }

    /// A run succeeded: the channel's next pull starts where this one
    /// started (minus the overlap).
    pub(crate) async fn finish_run(&self, run: &mut RunRow) -> Result<(), EngineError> {
        let now = now_micros();
        run.status = RunStatus::Succeeded;
        run.finished_at = Some(now);
        runs::save(self.db().pool(), run).await?;
        channels::complete_run(
            self.db().pool(),
            &run.connection_id,
            run.channel,
            run.started_at.unwrap_or(now),
            now,
        )
        .await?;
        Ok(())
    }

    /// Marks a run failed (the job gave up).
    pub(crate) async fn fail_run(&self, run_id: &str, message: &str) -> Result<(), EngineError> {
        if let Some(mut run) = runs::get(self.db().pool(), run_id).await? {
            run.status = RunStatus::Failed;
            run.error = Some(message.to_string());
            run.finished_at = Some(now_micros());
            runs::save(self.db().pool(), &run).await?;
        }
        Ok(())
    }
}

/// The API view of a run.
pub fn run_json(r: &RunRow) -> serde_json::Value {
    let t = |m: Option<i64>| {
        m.and_then(|m| jiff::Timestamp::from_microsecond(m).ok())
            .map(|t| t.to_string())
    };
    serde_json::json!({
        "id": r.id,
        "status": r.status,
        "trigger": r.trigger_kind,
        "started_at": t(r.started_at),
        "finished_at": t(r.finished_at),
        "counts": r.counts,
        "error": r.error,
    })
}
