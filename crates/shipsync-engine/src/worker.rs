//! Workers: claim due jobs, run them, retry with backoff and jitter.
//!
//! While a job runs its lease is renewed every third of the lease, so a long
//! job (a 100,000-shipment pull) keeps it, and a node that dies loses it
//! within one lease. A job whose lease was lost anyway (the database was
//! unreachable for longer than the lease, and another node took the job over)
//! is dropped here without touching its row: the other node owns it now.

use std::sync::atomic::Ordering;
use std::time::Duration;

use rand::RngExt;
use shipsync_core::states::ShipmentStatus;
use shipsync_db::jobs::{self, Claimed, CompleteAndClaim, Job, Turn};
use shipsync_db::{activity, now_micros, shipments};
use tracing::Instrument;

use crate::Engine;
use crate::error::EngineError;
use crate::shutdown::Shutdown;

/// How often the idle worker watching the clock looks for due jobs.
const IDLE_POLL: Duration = Duration::from_millis(500);
/// How often a worker paused for an ingest burst looks whether it is over.
const BURST_POLL: Duration = Duration::from_millis(25);
/// The first worker pauses in a burst too, but runs a job at least this
/// often, so that a long burst delays the rest of the work without
/// stopping it.
const FIRST_WORKER_PAUSE: Duration = Duration::from_secs(1);
/// The most a deferred job's return is spread by (see [`deferral_jitter`]).
const MAX_DEFER_JITTER: Duration = Duration::from_secs(1);

tokio::task_local! {
    /// The index of the worker running the current job.
    static WORKER: usize;
    /// The current job, as its code sees it.
    static RUNNING: Running;
}

/// The job a worker runs, as its code sees it ([`running`], [`ending`]).
struct Running {
    id: String,
    /// Its lease's owner.
    owner: String,
    lease_micros: i64,
    /// The job, when its row decoded.
    job: Option<Job>,
    /// Set when the job's last unit ended it ([`ended`]).
    turn: std::sync::Arc<std::sync::Mutex<Option<Taken>>>,
    /// What a run read for the job after it ([`hand_on`], [`handed`]):
    /// in, what the job before it read for this one, or what the unit that
    /// claimed it did for it (a delivery merged); out, what this one read
    /// for the job its row becomes.
    handoff: std::sync::Arc<std::sync::Mutex<Option<Handoff>>>,
}

impl Running {
    /// The shipment, when the job is a shipment's sync.
    fn shipment(&self) -> Option<&str> {
        match &self.job {
            Some(Job::SyncShipment { shipment_id }) => Some(shipment_id),
            _ => None,
        }
    }

    /// What the job works on, for what was read for it ([`handed`]): the
    /// shipment of a sync, the stored delivery of a `process_event`.
    fn subject(&self) -> Option<&str> {
        match &self.job {
            Some(Job::ProcessEvent { event_id }) => Some(event_id),
            _ => self.shipment(),
        }
    }
}

/// What a unit did or read for the job a worker runs next, in the unit
/// that committed what that job starts from, so that the job needs no unit
/// of its own for it: a shipment's sync's first read, done by the run whose
/// row became that sync; a stored delivery merged by the claim of its
/// `process_event` ([`crate::shipments::merge::claim_in`]).
pub(crate) struct Handoff {
    /// The job's subject (see [`Running`]).
    subject: String,
    read: Box<dyn std::any::Any + Send>,
}

impl Handoff {
    pub(crate) fn new<T: std::any::Any + Send>(subject: &str, read: Box<T>) -> Self {
        Self {
            subject: subject.to_string(),
            read,
        }
    }

    /// What it holds, if a `T`, for the job working on `subject`.
    pub(crate) fn peek<T: std::any::Any>(&self, subject: &str) -> Option<&T> {
        (self.subject == subject)
            .then(|| self.read.downcast_ref())
            .flatten()
    }
}

/// What a worker's turn claimed, with what the claim's unit did for the
/// job claimed ([`Handoff`]).
pub(crate) struct Taken {
    pub turn: Turn,
    pub handoff: Option<Handoff>,
}

impl From<Turn> for Taken {
    fn from(turn: Turn) -> Self {
        Self {
            turn,
            handoff: None,
        }
    }
}

/// Hands what the running job read to the sync of `shipment_id`, which its
/// row became, for the worker to run next ([`handed`]). Only what was read
/// in the unit that committed the change: the sync then starts from what
/// that unit left.
pub(crate) fn hand_on<T: std::any::Any + Send>(shipment_id: &str, read: Box<T>) {
    let _ = RUNNING.try_with(|r| {
        *r.handoff
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some(Handoff::new(shipment_id, read));
    });
}

/// What was done or read for the running job ([`Handoff`]), when it works
/// on `subject`; taken once.
pub(crate) fn handed<T: std::any::Any + Send>(subject: &str) -> Option<Box<T>> {
    RUNNING
        .try_with(|r| {
            let mut slot = r
                .handoff
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let ours = slot
                .as_ref()
                .is_some_and(|h| r.subject() == Some(subject) && h.subject == subject);
            ours.then(|| slot.take())
                .flatten()
                .and_then(|h| h.read.downcast().ok())
        })
        .ok()
        .flatten()
}

/// The index of the worker running the current job, if any.
pub(crate) fn current() -> Option<usize> {
    WORKER.try_with(|i| *i).ok()
}

/// The id and the lease owner of the job running, if any.
pub(crate) fn running() -> Option<(String, String)> {
    RUNNING.try_with(|r| (r.id.clone(), r.owner.clone())).ok()
}

/// When the job running is the sync of `shipment_id`, and a worker runs
/// it: its end, for the run's last unit to do — the job completed and the
/// worker's next claimed — so that the worker needs no unit of its own for
/// it. Pass what the unit returns to [`ended`] once it has committed;
/// nothing may fail after that unit (the job is gone: a failure would not
/// be retried).
pub(crate) fn ending(shipment_id: &str) -> Option<CompleteAndClaim> {
    RUNNING
        .try_with(|r| {
            (r.shipment() == Some(shipment_id)).then(|| CompleteAndClaim {
                done: Some(r.id.clone()),
                owner: r.owner.clone(),
                n: 1,
                lease_micros: r.lease_micros,
            })
        })
        .ok()
        .flatten()
}

/// The running job was ended by its last unit ([`ending`]), which claimed
/// `turn`: the worker takes it up instead of completing and claiming.
pub(crate) fn ended(turn: Taken) {
    let _ = RUNNING.try_with(|r| {
        *r.turn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(turn);
    });
}

/// The lease owner of worker `index` of this process.
pub(crate) fn owner(engine: &Engine, index: usize) -> String {
    format!("{}-{index}", engine.inner.owner)
}

/// How a job run ended for the worker.
enum Ran {
    /// With the job its row became, to run next under the same lease.
    Done(Result<Option<Job>, EngineError>),
    /// The lease was taken over by another worker: leave the job alone.
    LeaseLost,
}

/// Runs `job` while renewing its lease. The renewal runs beside the job,
/// never instead of it: on SQLite the job may hold the write lock while it
/// waits for something, and a renewal that stopped the job until it got the
/// lock would wait for itself.
async fn run_leased(engine: &Engine, job: &Claimed, owner: &str, lease: i64) -> Ran {
    // A store whose budget is spent holds a few workers, not all of them.
    let work = shipsync_shopify::job_scope(async {
        match &job.job {
            Ok(j) => engine.run_job(j).await,
            // A row that does not decode never will: given up at once.
            Err(e) => Err(EngineError::Permanent(e.to_string())),
        }
    });
    let every = Duration::from_micros(u64::try_from(lease / 3).unwrap_or(1).max(1));
    let renewer = async {
        let mut renew = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            renew.tick().await;
            match jobs::renew_lease(engine.db().pool(), &job.id, owner, now_micros() + lease).await
            {
                Ok(true) => {}
                Ok(false) => return,
                // Unreachable database: keep working; the lease may still
                // hold when it is back.
                Err(e) => {
                    tracing::warn!(job = %job.id, error = %e, "could not renew the job's lease")
                }
            }
        }
    };
    tokio::select! {
        // The job first: once it has ended itself ([`ending`]) its row is
        // gone, and a renewal then finds no lease to renew.
        biased;
        r = work => Ran::Done(r),
        () = renewer => {
            tracing::warn!(job = %job.id, kind = %job.kind, "lost the job's lease to another worker; stopping this run of it");
            Ran::LeaseLost
        }
    }
}

pub async fn run(engine: Engine, index: usize, mut shutdown: Shutdown) {
    let owner = owner(&engine, index);
    let lease = i64::try_from(engine.config().lease.as_micros()).unwrap_or(i64::MAX / 4);
    // The job this worker last ran to the end: completed together with the
    // next claim (one unit), or on its own before the worker pauses or
    // stops.
    let mut done: Option<String> = None;
    // What the last job's own last unit claimed when it ended the job
    // ([`ending`]): taken up instead of a claim.
    let mut pending: Option<Taken> = None;
    loop {
        if shutdown.is_set() {
            release(&engine, &owner, pending.take()).await;
            complete_alone(&engine, &owner, done.take()).await;
            return;
        }
        // While webhooks arrive in a burst the workers step aside: each
        // job's transactions would take the CPU and the write lock from the
        // 202 path (a webhook batch that finds the lock taken waits in
        // SQLite's busy handler, 1, 2, 5 ms…). Nothing waits on them but the
        // backlog, which they take up again once the burst is over; the
        // first worker still runs a job every `FIRST_WORKER_PAUSE`.
        if engine.ingest().in_burst() {
            release(&engine, &owner, pending.take()).await;
            complete_alone(&engine, &owner, done.take()).await;
            engine.metrics().burst_pause();
            let started = tokio::time::Instant::now();
            while engine.ingest().in_burst()
                && (index > 0 || started.elapsed() < FIRST_WORKER_PAUSE)
            {
                tokio::select! {
                    _ = shutdown.wait() => return,
                    _ = tokio::time::sleep(BURST_POLL) => {}
                }
            }
            if index > 0 || !engine.ingest().in_burst() {
                continue;
            }
        }
        let turn = CompleteAndClaim {
            done: done.clone(),
            owner: owner.clone(),
            n: 1,
            lease_micros: lease,
        };
        let claimed = match pending.take() {
            Some(t) => Ok(t),
            None => {
                engine
                    .db()
                    .unit(crate::shipments::Claim {
                        turn,
                        running_on: !engine.ingest().in_burst(),
                    })
                    .await
            }
        };
        let (jobs, more, mut handoff) = match claimed {
            Ok(t) => {
                done = None;
                (t.turn.jobs, t.turn.more, t.handoff)
            }
            Err(e) => {
                // Nothing of the unit happened: the completion is tried
                // again with the next claim.
                tracing::warn!(error = %e, "claiming jobs failed; retrying");
                (Vec::new(), false, None)
            }
        };
        if jobs.is_empty() {
            // Idle. One idle worker at a time watches the clock (jobs
            // coming due, jobs queued by another node) and wakes the others
            // through the chain below; the rest wait to be woken, so 16
            // idle workers do not each claim (a write) twice a second.
            let watching = engine
                .inner
                .clock_watcher
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                .is_ok();
            let wait = if watching {
                match jobs::next_at(engine.db().pool()).await {
                    Ok(Some(at)) => Duration::from_micros(
                        u64::try_from((at - now_micros()).max(1_000)).unwrap_or(1_000),
                    ),
                    _ => IDLE_POLL,
                }
                .min(IDLE_POLL)
            } else {
                IDLE_POLL * 10
            };
            tokio::select! {
                _ = shutdown.wait() => return,
                _ = engine.inner.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
            if watching {
                engine.inner.clock_watcher.store(false, Ordering::Release);
            }
            continue;
        }
        // More are due: wake one more idle worker to take the next (it
        // wakes another if more are left after its claim too). Jobs queued
        // later wake a worker as they are queued.
        if more {
            engine.inner.wake.notify_one();
        }
        for job in jobs {
            complete_alone(&engine, &owner, done.take()).await;
            let mut next = Some((job, handoff.take()));
            let mut became = false;
            while let Some((job, handoff)) = next.take() {
                if became && (shutdown.is_set() || engine.ingest().in_burst()) {
                    // Stopping, or stepping aside for a burst (above): what
                    // the job became is left free to claim at once, by the
                    // next start, another node or the first worker.
                    leave_for_later(&engine, &owner, &job.id).await;
                    break;
                }
                let span = job_span(&job);
                let id = job.id.clone();
                match run_one(&engine, index, &owner, lease, job, handoff)
                    .instrument(span)
                    .await
                {
                    Finished::Done => done = Some(id),
                    Finished::Became(job, handoff) => {
                        next = Some((job, handoff));
                        became = true;
                    }
                    Finished::Ended(turn) => pending = Some(turn),
                    Finished::Left => {}
                }
            }
        }
    }
}

/// The spread added to a deferral of `after`: `share` of it (drawn in
/// 0–0.3), capped at [`MAX_DEFER_JITTER`].
fn deferral_jitter(after: Duration, share: f64) -> Duration {
    after.mul_f64(share).min(MAX_DEFER_JITTER)
}

/// The span of one run of a job: its id, kind and attempt, and the
/// shipment, event, run or order its payload names, so that every line the
/// run writes (store and warehouse calls included) can be traced back.
pub(crate) fn job_span(job: &Claimed) -> tracing::Span {
    let (mut shipment, mut event, mut run, mut order) = (None, None, None, None);
    match &job.job {
        Ok(Job::ProcessEvent { event_id }) => event = Some(event_id.as_str()),
        Ok(Job::SyncShipment { shipment_id }) => shipment = Some(shipment_id.as_str()),
        Ok(Job::PullShipments { run_id } | Job::PullOrders { run_id }) => {
            run = Some(run_id.as_str())
        }
        Ok(Job::PushOrder { order_id } | Job::UpdateWarehouseOrder { order_id }) => {
            order = Some(order_id.as_str())
        }
        Ok(
            Job::OrderWebhooks { .. }
            | Job::Retention
            | Job::DeliverEvent { .. }
            | Job::CheckAlerts
            | Job::NotifyAlerts { .. },
        )
        | Err(_) => {}
    }
    // A root span: a claim made at a sync's end (see
    // [`crate::shipments::merge::claim_in`]) is no part of that sync.
    tracing::info_span!(
        parent: None,
        "job",
        job = %job.id,
        kind = %job.kind,
        attempt = job.attempts + 1,
        shipment,
        event,
        run,
        order,
    )
}

/// Leaves the jobs of a turn a job's last unit claimed ([`ending`]) free
/// to claim at once: the worker pauses or stops instead of running them.
/// A delivery the claim merged ([`crate::shipments::merge::claim_in`]) is
/// merged already (its row may have become its shipment's sync, which
/// runs later): when its merge left nothing for the job to do, the job is
/// completed instead, so that nobody merges the delivery twice.
async fn release(engine: &Engine, owner: &str, turn: Option<Taken>) {
    let Some(Taken { turn, handoff }) = turn else {
        return;
    };
    for job in turn.jobs {
        if handoff
            .as_ref()
            .is_some_and(|h| crate::shipments::merged_whole(h, &job))
        {
            complete_alone(engine, owner, Some(job.id)).await;
        } else {
            leave_for_later(engine, owner, &job.id).await;
        }
    }
}

/// Leaves the job `id` this worker holds free to claim at once.
async fn leave_for_later(engine: &Engine, owner: &str, id: &str) {
    if let Err(e) = jobs::defer(engine.db().pool(), id, owner, now_micros()).await {
        tracing::warn!(error = %e, job = %id, "could not leave the job for later");
    }
}

/// Counts and logs a job run to the end.
fn ran_ok(engine: &Engine, kind: &str, started: std::time::Instant) {
    engine.metrics().job(kind, "ok");
    tracing::debug!(
        result = "ok",
        ms = started.elapsed().as_millis(),
        "job done"
    );
}

/// Completes `done` (see [`run`]) on its own, if any.
async fn complete_alone(engine: &Engine, owner: &str, done: Option<String>) {
    if let Some(id) = done
        && let Err(e) = jobs::complete(engine.db(), &id, owner).await
    {
        tracing::warn!(error = %e, job = %id, "could not complete job");
    }
}

/// How a run of a claimed job ended for the worker.
enum Finished {
    /// Ran to the end: the caller completes it.
    Done,
    /// Ran to the end, and its row is now this job (same id and lease):
    /// the caller runs it next, with what this run read for it.
    Became(Claimed, Option<Handoff>),
    /// Ran to the end, and its last unit completed it and claimed this
    /// turn ([`ending`]): the caller takes it up instead of claiming.
    Ended(Taken),
    /// Failed, deferred (recorded here) or its lease was lost.
    Left,
}

/// Runs one claimed job, with what the job it became from read for it, and
/// records how it went.
async fn run_one(
    engine: &Engine,
    index: usize,
    owner: &str,
    lease: i64,
    job: Claimed,
    handoff: Option<Handoff>,
) -> Finished {
    if let Some(slot) = engine.inner.mutations.get(index) {
        slot.store(0, Ordering::Release);
    }
    let started = std::time::Instant::now();
    let turn = std::sync::Arc::default();
    let handoff = std::sync::Arc::new(std::sync::Mutex::new(handoff));
    let running = Running {
        id: job.id.clone(),
        owner: owner.to_string(),
        lease_micros: lease,
        job: job.job.as_ref().ok().cloned(),
        turn: std::sync::Arc::clone(&turn),
        handoff: std::sync::Arc::clone(&handoff),
    };
    let ran = WORKER
        .scope(
            index,
            RUNNING.scope(running, run_leased(engine, &job, owner, lease)),
        )
        .await;
    let ended = turn
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take();
    if let Some(turn) = ended {
        // Its last unit completed the job (its row is gone): whatever
        // follows, the jobs that unit claimed are this worker's to run.
        match ran {
            Ran::Done(Ok(None)) => ran_ok(engine, &job.kind, started),
            Ran::Done(Ok(Some(_))) | Ran::LeaseLost => {
                tracing::debug!(job = %job.id, "job ended by its last unit");
            }
            Ran::Done(Err(e)) => {
                tracing::warn!(job = %job.id, error = %e, "job ended by its last unit, then failed: not retried");
            }
        }
        return Finished::Ended(turn);
    }
    let result = match ran {
        Ran::Done(r) => r,
        Ran::LeaseLost => return Finished::Left,
    };
    let db = engine.db();
    match result {
        Ok(next) => {
            ran_ok(engine, &job.kind, started);
            return match next {
                Some(next) => {
                    // What this run handed on for the job it became
                    // (`handed` gives it only to the sync it was read for).
                    let handoff = handoff
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .take();
                    Finished::Became(
                        Claimed {
                            id: job.id,
                            kind: next.kind().to_string(),
                            attempts: 0,
                            job: Ok(next),
                        },
                        handoff,
                    )
                }
                None => Finished::Done,
            };
        }
        Err(EngineError::Deferred { message, after }) => {
            engine.metrics().job(&job.kind, "deferred");
            tracing::debug!(job = %job.id, "deferred: {message}");
            // Never sooner than asked; spread so that jobs put back
            // together do not all come back at once — by up to 30 %, and
            // 1 s at most: a store's budget already gives each job turned
            // away its own turn, and 30 % of a long turn (40 s into a
            // backlog) would leave the budget idle while jobs wait.
            let after = after + deferral_jitter(after, rand::rng().random_range(0.0..0.3));
            let at = now_micros() + i64::try_from(after.as_micros()).unwrap_or(1_000_000);
            if let Err(e) = jobs::defer(db.pool(), &job.id, owner, at).await {
                tracing::warn!(error = %e, job = %job.id, "could not defer job");
            }
        }
        Err(EngineError::Scheduled { message, at }) => {
            engine.metrics().job(&job.kind, "scheduled");
            tracing::debug!(job = %job.id, "scheduled: {message}");
            if let Err(e) = jobs::defer(db.pool(), &job.id, owner, at).await {
                tracing::warn!(error = %e, job = %job.id, "could not schedule job");
            }
        }
        Err(e) => {
            let (message, after, permanent) = match &e {
                EngineError::Retry { message, after } => (message.clone(), *after, false),
                EngineError::Db(d) if d.is_unavailable() => (e.to_string(), None, false),
                EngineError::Permanent(m) => (m.clone(), None, true),
                other => (other.to_string(), None, false),
            };
            let give_up = permanent || job.attempts + 1 >= engine.config().max_attempts;
            engine
                .metrics()
                .job(&job.kind, if give_up { "failed" } else { "retry" });
            tracing::info!(job = %job.id, kind = %job.kind, attempts = job.attempts + 1, give_up, "job failed: {message}");
            let _ = engine
                .job_failed(&job.job, &message, give_up, job.attempts + 1)
                .await;
            let r = if give_up {
                // Done with this job, unless it was enqueued again
                // while it ran (a newer version of its shipment):
                // then it runs again at once, on what is new.
                jobs::complete(db, &job.id, owner).await
            } else {
                let delay = backoff(engine.config(), job.attempts, after);
                let at = now_micros() + i64::try_from(delay.as_micros()).unwrap_or(i64::MAX / 2);
                jobs::retry(db.pool(), &job.id, owner, at, &message).await
            };
            if let Err(e) = r {
                tracing::warn!(error = %e, job = %job.id, "could not record job failure");
            }
        }
    }
    Finished::Left
}

/// Exponential backoff with ±20 % jitter, never shorter than what the other
/// side asked for.
pub fn backoff(config: &crate::EngineConfig, attempts: i64, asked: Option<Duration>) -> Duration {
    let exp = u32::try_from(attempts.clamp(0, 20)).unwrap_or(20);
    let base = config
        .backoff_base
        .saturating_mul(2u32.saturating_pow(exp))
        .min(config.backoff_max);
    let jitter = rand::rng().random_range(0.8..1.2);
    let d = base.mul_f64(jitter);
    match asked {
        Some(a) if a > d => a,
        _ => d,
    }
}

impl Engine {
    /// Runs `job`: `Some` with the job its row became (see
    /// [`Self::process_event`]).
    async fn run_job(&self, job: &Job) -> Result<Option<Job>, EngineError> {
        let ran = match job {
            Job::ProcessEvent { event_id } => return self.process_event(event_id).await,
            Job::SyncShipment { shipment_id } => self.sync_shipment(shipment_id).await,
            Job::PullShipments { run_id } => {
                self.pull_shipments(run_id, None, None).await.map(|_| ())
            }
            Job::PullOrders { run_id } => self.pull_orders(run_id, None).await.map(|_| ()),
            Job::PushOrder { order_id } => self.push_order(order_id).await,
            Job::UpdateWarehouseOrder { order_id } => self.update_warehouse_order(order_id).await,
            Job::OrderWebhooks { connection_id } => self.sync_order_webhooks(connection_id).await,
            Job::Retention => self.apply_retention(now_micros()).await.map(|_| ()),
            Job::DeliverEvent { delivery_id } => self.deliver_event(delivery_id).await,
            Job::CheckAlerts => self.check_alerts().await,
            Job::NotifyAlerts { policy_id } => self.notify_alerts(policy_id).await,
        };
        ran.map(|()| None)
    }

    /// Shows the failure on the shipment: its reason while it waits to
    /// retry, or `error` when shipsync gives up.
    async fn job_failed(
        &self,
        job: &Result<Job, shipsync_db::DbError>,
        message: &str,
        give_up: bool,
        attempts: i64,
    ) -> Result<(), EngineError> {
        let id = match job {
            Ok(Job::PullShipments { run_id } | Job::PullOrders { run_id }) => {
                if give_up {
                    self.fail_run(run_id, message).await?;
                }
                return Ok(());
            }
            Ok(Job::PushOrder { order_id }) => {
                self.push_failed(order_id, message, give_up, attempts)
                    .await?;
                if give_up {
                    self.order_gave_up(order_id, message, attempts).await?;
                }
                return Ok(());
            }
            Ok(Job::UpdateWarehouseOrder { order_id }) => {
                if give_up {
                    self.warehouse_update_failed(order_id, message, attempts)
                        .await?;
                    self.order_gave_up(order_id, message, attempts).await?;
                }
                return Ok(());
            }
            Ok(Job::OrderWebhooks { connection_id }) => {
                self.order_webhooks_failed(connection_id, message).await?;
                return Ok(());
            }
            Ok(Job::SyncShipment { shipment_id }) => shipment_id.as_str(),
            Ok(
                Job::ProcessEvent { .. }
                | Job::Retention
                | Job::DeliverEvent { .. }
                | Job::CheckAlerts
                | Job::NotifyAlerts { .. },
            )
            | Err(_) => return Ok(()),
        };
        let db = self.db();
        let Some(mut s) = shipments::get(db.pool(), id).await? else {
            return Ok(());
        };
        if s.status == ShipmentStatus::Archived {
            return Ok(());
        }
        s.updated_at = now_micros();
        if give_up {
            s.status = ShipmentStatus::Error;
            s.error = Some(message.to_string());
            self.save_run(&s).await?;
            activity::add(
                db.pool(),
                id,
                "failed",
                &format!("Failed after {attempts} attempt(s): {message}"),
            )
            .await?;
            self.shipment_gave_up(&s, message, attempts).await?;
        } else {
            s.status = ShipmentStatus::Open;
            s.error = Some(message.to_string());
            self.save_run(&s).await?;
            activity::add(
                db.pool(),
                id,
                "retry",
                &format!("Attempt {attempts} failed, will retry: {message}"),
            )
            .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (deferral, share drawn) → spread: a share of a short deferral, never
    /// more than a second of a long one.
    #[test]
    fn a_deferral_is_spread_by_a_share_capped_at_a_second() {
        let s = Duration::from_secs;
        let ms = Duration::from_millis;
        let table = [
            (s(2), 0.0, ms(0)),
            (s(2), 0.25, ms(500)),
            (s(3), 0.3, ms(900)),
            (s(40), 0.3, s(1)),
            (s(40), 0.01, ms(400)),
        ];
        for (after, share, want) in table {
            assert_eq!(deferral_jitter(after, share), want, "{after:?} {share}");
        }
    }

    /// What a unit did or read for the job a worker runs next reaches
    /// that job only: the same subject (the shipment of a sync, the
    /// delivery of a `process_event`), in a worker, once.
    #[tokio::test]
    async fn a_handoff_reaches_only_the_job_it_was_read_for_once() {
        // A job of that subject: a delivery's `process_event` for `evt_`,
        // a shipment's sync for `shp_`.
        let of = |subject: &str| match subject.strip_prefix("evt_") {
            Some(_) => Job::ProcessEvent {
                event_id: subject.to_string(),
            },
            None => Job::SyncShipment {
                shipment_id: subject.to_string(),
            },
        };
        let scope = |subject: Option<&str>, read_for: &str| Running {
            id: "job_1".into(),
            owner: "node-0".into(),
            lease_micros: 30_000_000,
            job: subject.map(of),
            turn: std::sync::Arc::default(),
            handoff: std::sync::Arc::new(std::sync::Mutex::new(Some(Handoff::new(
                read_for,
                Box::new(7_u32),
            )))),
        };
        assert!(handed::<u32>("shp_1").is_none(), "outside a worker");
        let table = [
            // (the running job's subject, read for, asked for, got)
            (Some("shp_1"), "shp_1", "shp_1", Some(7)),
            (Some("shp_1"), "shp_2", "shp_1", None),
            (Some("shp_1"), "shp_1", "shp_2", None),
            (Some("evt_1"), "evt_1", "evt_1", Some(7)),
            (Some("evt_1"), "shp_1", "shp_1", None),
            (None, "shp_1", "shp_1", None),
        ];
        for (running, read_for, asked, want) in table {
            let (first, second) = RUNNING
                .scope(scope(running, read_for), async {
                    (handed::<u32>(asked), handed::<u32>(asked))
                })
                .await;
            assert_eq!(first.map(|b| *b), want, "{running:?} {read_for} {asked}");
            assert!(second.is_none(), "taken once");
        }
        // Of another type: nothing.
        let got = RUNNING
            .scope(scope(Some("shp_1"), "shp_1"), async {
                handed::<String>("shp_1")
            })
            .await;
        assert!(got.is_none());
        // Handed on by the running job: what the next run is given.
        let slot = RUNNING
            .scope(scope(None, "shp_9"), async {
                hand_on("shp_1", Box::new(8_u32));
                RUNNING.with(|r| std::sync::Arc::clone(&r.handoff))
            })
            .await;
        let handed_on = slot.lock().unwrap().take().unwrap();
        assert_eq!(handed_on.subject, "shp_1");
        assert_eq!(*handed_on.read.downcast::<u32>().unwrap(), 8);
    }

    /// A run's last unit ends its job only when the job running is the
    /// sync of that shipment (a pull or an API call that syncs shipments
    /// inline must never complete its own job midway); what it claimed
    /// reaches the worker.
    #[tokio::test]
    async fn only_a_shipments_own_sync_is_ended_by_its_last_unit() {
        let scope = |shipment: Option<&str>| Running {
            id: "job_1".into(),
            owner: "node-0".into(),
            lease_micros: 30_000_000,
            job: shipment.map(|s| Job::SyncShipment {
                shipment_id: s.to_string(),
            }),
            turn: std::sync::Arc::default(),
            handoff: std::sync::Arc::default(),
        };
        assert!(ending("shp_1").is_none(), "outside a worker");
        let table = [
            (Some("shp_1"), "shp_1", true),
            (Some("shp_1"), "shp_2", false),
            (None, "shp_1", false),
        ];
        for (running, shipment, want) in table {
            let got = RUNNING
                .scope(scope(running), async { ending(shipment) })
                .await;
            assert_eq!(got.is_some(), want, "{running:?} {shipment}");
            if let Some(e) = got {
                assert_eq!(e.done.as_deref(), Some("job_1"));
                assert_eq!(e.owner, "node-0");
            }
        }

        let running = scope(Some("shp_1"));
        let turn = std::sync::Arc::clone(&running.turn);
        RUNNING
            .scope(running, async {
                ended(
                    Turn {
                        jobs: Vec::new(),
                        more: true,
                    }
                    .into(),
                );
            })
            .await;
        let taken = turn.lock().unwrap().take();
        assert!(taken.is_some_and(|t| t.turn.more));
    }
}
