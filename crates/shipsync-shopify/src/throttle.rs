//! Per-store cost budget, driven by the `throttleStatus` Shopify returns with
//! every answer: before sending an operation, estimate what the leaky bucket
//! holds now and wait for the shortfall instead of being THROTTLED.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

/// Jobs of one store that may sleep for its budget at once (per process).
/// A further job that would have to sleep is turned away instead (see
/// [`job_scope`]), so a throttled store holds at most this many workers.
pub const WAIT_SLOTS: usize = 4;
/// A wait this short is taken in place by anyone: not worth a deferral.
const SHORT_WAIT: Duration = Duration::from_millis(200);
/// A job turned away comes back no sooner than this.
const MIN_TURNED_AWAY: Duration = Duration::from_secs(2);
/// Shopify refuses a single query whose requested cost exceeds this, so an
/// operation never answered yet costs at most this much.
pub const MAX_QUERY_COST: f64 = 1000.0;

tokio::task_local! {
    /// The wait slots held by the current job, one per store at most.
    static JOB_SLOTS: RefCell<Vec<(usize, OwnedSemaphorePermit)>>;
}

/// Runs one job's store calls. Inside it, when a store's budget says wait
/// (longer than a blink), the job takes one of that store's
/// [`WAIT_SLOTS`] and keeps it to its end, so it can go on waiting for its
/// next calls; when all slots are taken, the call fails at once with
/// [`crate::ShopifyError::Throttled`] (nothing sent) and the job can be put
/// back for later while the worker serves other stores. Outside a job scope
/// a call waits as before (up to `Timeouts::max_budget_wait`).
pub async fn job_scope<F: Future>(work: F) -> F::Output {
    JOB_SLOTS.scope(RefCell::new(Vec::new()), work).await
}

/// `extensions.cost.throttleStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThrottleStatus {
    pub maximum_available: f64,
    pub currently_available: f64,
    pub restore_rate: f64,
}

/// `extensions.cost`.
#[derive(Debug, Clone, Copy, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryCost {
    pub requested_query_cost: Option<f64>,
    pub actual_query_cost: Option<f64>,
    pub throttle_status: Option<ThrottleStatus>,
}

impl QueryCost {
    /// How long until the bucket holds the requested cost, when Shopify said
    /// enough to compute it.
    pub fn refill_wait(&self) -> Option<Duration> {
        let status = self.throttle_status?;
        let needed = self.requested_query_cost?;
        shortfall_wait(needed - status.currently_available, status.restore_rate)
    }
}

/// A rate we can divide by (NaN, zero or negative would mean "never").
fn usable_rate(rate: f64) -> bool {
    rate.is_finite() && rate > 0.0
}

fn shortfall_wait(shortfall: f64, restore_rate: f64) -> Option<Duration> {
    if !usable_rate(restore_rate) || !shortfall.is_finite() {
        return None;
    }
    let secs = (shortfall / restore_rate).max(0.0);
    Duration::try_from_secs_f64(secs).ok()
}

/// A future returned by a [`CostBudget`].
pub type BudgetFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Points reserved in a store's cost budget for one request.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Reserved {
    /// The points; 0 when nothing was reserved (cost or bucket unknown).
    /// A budget may give them its own meaning (a sign, say).
    pub points: f64,
    /// The reservation's number in its budget, for a budget that keeps
    /// track of its reservations ([`LocalBudget`]'s queue, the engine's
    /// shared budget's waiters); 0 otherwise.
    pub ticket: u64,
}

impl Reserved {
    /// Nothing reserved.
    pub const NONE: Reserved = Reserved {
        points: 0.0,
        ticket: 0,
    };

    /// `points` reserved, in a budget that keeps no queue.
    pub fn points(points: f64) -> Self {
        Reserved { points, ticket: 0 }
    }
}

/// Where a store's cost bucket is kept: [`LocalBudget`] in this process (the
/// default), or one shared by several processes (the engine's, in the
/// database). The client learns each operation's cost itself and asks the
/// budget for that many points before every call.
pub trait CostBudget: Send + Sync + fmt::Debug {
    /// Reserves `points` (the operation's last requested cost; infinite
    /// for an operation not answered yet, whose cost is unknown):
    /// `Ok((wait, reserved))` to sleep `wait` then send, `reserved` being
    /// what to pass to [`CostBudget::observe`] and [`CostBudget::release`];
    /// `Err(wait)` when the wait would exceed `max_wait`: nothing is reserved
    /// and the caller reports Throttled rather than hold a worker.
    fn reserve(
        &self,
        points: f64,
        max_wait: Duration,
    ) -> BudgetFuture<'_, Result<(Duration, Reserved), Duration>>;

    /// What Shopify said (its `extensions.cost`) in answer to a request that
    /// reserved `reserved`.
    fn observe(&self, reserved: Reserved, cost: QueryCost) -> BudgetFuture<'_, ()>;

    /// The request that reserved `reserved` goes to the store now: a
    /// budget that orders answers by when their requests went (see
    /// [`LocalBudget::observe_answer_at`]) notes it.
    fn sending(&self, _reserved: &Reserved) {}

    /// The request that reserved `reserved` is over (answered or failed),
    /// whatever the path.
    fn release(&self, reserved: Reserved);

    /// Nothing was sent for `reserved` (the job was turned away, or stopped
    /// while it waited): the points go back to the bucket, so a job put
    /// back for the budget holds none of it.
    fn unused(&self, reserved: Reserved) {
        self.release(reserved);
    }

    /// How long a request told to wait for `reserved` still has to, as
    /// the budget sees it now: the calls ahead of it may have been
    /// answered meanwhile, most for less than they reserved (Shopify
    /// refunds what a query cost less than requested). `None`: the budget
    /// cannot tell better than when it reserved.
    fn wait_left(&self, _reserved: &Reserved) -> Option<Duration> {
        None
    }

    /// Resolves when a call is over, so that waiters may ask
    /// [`CostBudget::wait_left`] again (never, for a budget that cannot
    /// tell). Create it before asking, not to miss one.
    fn answered(&self) -> BudgetFuture<'_, ()> {
        Box::pin(std::future::pending())
    }

    /// The store's restore rate (points per second), once known.
    fn restore_rate(&self) -> Option<f64> {
        None
    }

    /// The bucket's size (`maximumAvailable`), once known.
    fn maximum_available(&self) -> Option<f64> {
        None
    }
}

#[derive(Debug)]
struct Bucket {
    status: ThrottleStatus,
    /// When `status.currently_available` was true (may be in the future for a
    /// reservation made by a request that is itself waiting).
    at: Instant,
}

impl Bucket {
    fn available_at(&self, t: Instant) -> f64 {
        let elapsed = t.saturating_duration_since(self.at).as_secs_f64();
        (self.status.currently_available + elapsed * self.status.restore_rate)
            .min(self.status.maximum_available)
    }
}

#[derive(Debug, Default)]
struct State {
    bucket: Option<Bucket>,
    /// Requests not yet answered (waiting for their turn, or sent), by
    /// ticket, in the order they were reserved: their points (the server's
    /// last `currentlyAvailable` does not include them yet) and
    /// [`State::charged`] when they went ([`CostBudget::sending`]; when
    /// they reserved, until then).
    reserved: BTreeMap<u64, (f64, f64)>,
    /// The last ticket given.
    ticket: u64,
    /// The actual costs of every answer observed so far, summed.
    charged: f64,
}

impl State {
    /// The points reserved ahead of `ticket` (all of them for `u64::MAX`).
    fn ahead_of(&self, ticket: u64) -> f64 {
        self.reserved.range(..ticket).map(|(_, (p, _))| p).sum()
    }
}

/// The bucket as this process sees it: Shopify's last `throttleStatus`,
/// refilled at the restore rate since, minus the points of requests in
/// flight or waiting ahead. A request told to wait is told again, shorter,
/// when the calls ahead of it are answered for less than they reserved
/// ([`CostBudget::wait_left`]).
#[derive(Debug, Default)]
pub struct LocalBudget {
    state: Mutex<State>,
    /// Woken when a reservation is over.
    over: Notify,
}

impl LocalBudget {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is plain numbers: a panic elsewhere cannot leave it torn.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// [`CostBudget::reserve`] at `now`. Nothing is reserved (and nothing
    /// waited for) before Shopify has described the bucket, nor for an
    /// unknown cost.
    pub fn reserve_at(
        &self,
        points: f64,
        now: Instant,
        max_wait: Duration,
    ) -> Result<(Duration, Reserved), Duration> {
        let mut state = self.lock();
        let in_flight = state.ahead_of(u64::MAX);
        let Some(bucket) = state.bucket.as_ref() else {
            return Ok((Duration::ZERO, Reserved::NONE));
        };
        if !usable_rate(bucket.status.restore_rate) || !points.is_finite() {
            return Ok((Duration::ZERO, Reserved::NONE));
        }
        let needed = points.max(0.0).min(bucket.status.maximum_available);
        let available = bucket.available_at(now.max(bucket.at)) - in_flight;
        let wait = shortfall_wait(needed - available, bucket.status.restore_rate)
            .unwrap_or(Duration::ZERO);
        if wait > max_wait {
            return Err(wait);
        }
        state.ticket += 1;
        let ticket = state.ticket;
        let charged = state.charged;
        state.reserved.insert(ticket, (needed, charged));
        Ok((
            wait,
            Reserved {
                points: needed,
                ticket,
            },
        ))
    }

    /// [`CostBudget::wait_left`] at `now`: the shortfall against the
    /// bucket now, counting only the reservations ahead of this one.
    pub fn wait_left_at(&self, reserved: &Reserved, now: Instant) -> Option<Duration> {
        let state = self.lock();
        let bucket = state.bucket.as_ref()?;
        if !state.reserved.contains_key(&reserved.ticket) {
            return None;
        }
        let available = bucket.available_at(now.max(bucket.at)) - state.ahead_of(reserved.ticket);
        shortfall_wait(reserved.points - available, bucket.status.restore_rate)
    }

    /// How long from `now` until the bucket, as Shopify last described it
    /// (refilled since, less this budget's own reservations), holds
    /// `points` more than `spoken_for`. `None`: never described, or no
    /// usable restore rate.
    pub fn holds_in(&self, points: f64, spoken_for: f64, now: Instant) -> Option<Duration> {
        let state = self.lock();
        let bucket = state.bucket.as_ref()?;
        let available = bucket.available_at(now.max(bucket.at)) - state.ahead_of(u64::MAX);
        shortfall_wait(points + spoken_for - available, bucket.status.restore_rate)
    }

    /// Takes Shopify's `throttleStatus` in `cost` as the bucket at `now`,
    /// whatever the bucket held before: how the tests describe a bucket.
    #[cfg(test)]
    fn observe_at(&self, cost: &QueryCost, now: Instant) {
        if let Some(status) = cost.throttle_status {
            self.lock().bucket = Some(Bucket { status, at: now });
        }
    }

    /// [`CostBudget::observe`] at `now`: Shopify's answer to the request
    /// that reserved `reserved`.
    ///
    /// Answers to requests in flight together may come back in another
    /// order than the store charged them: a search's answer, its
    /// `throttleStatus` computed before a `fulfillmentCreate` was charged,
    /// can arrive after the create's own. Taken as it is, it would give
    /// back the create's points, and the next request would be sent into
    /// a bucket that cannot hold it (THROTTLED). So the bucket becomes
    /// the answer's figure, but no more than the larger of two figures
    /// that cannot be too high:
    /// - the answer's figure less the actual costs of the answers observed
    ///   since this request went ([`CostBudget::sending`]; since it
    ///   reserved, when it was not told): any of them may have been charged
    ///   after it, and a request charged after this one was answered after
    ///   this one was sent;
    /// - the bucket as known, less this request's actual cost (which the
    ///   known figure may not count yet).
    ///
    /// Alone in flight, that is the answer's figure; after the search and
    /// the create above, the create's figure. Lower than both (another
    /// client of the store's budget, a restore rate that changed) it is
    /// the answer's figure, as before.
    pub fn observe_answer_at(&self, reserved: &Reserved, cost: &QueryCost, now: Instant) {
        let mut state = self.lock();
        let mark = state.reserved.get(&reserved.ticket).map(|&(_, m)| m);
        Self::observe_in(&mut state, mark, cost, now);
    }

    /// Where the answers stand now, for a caller keeping its own
    /// reservations (the engine's shared budget): pass it, taken just
    /// before its request was sent, to [`LocalBudget::observe_answer_after`].
    pub fn answers_mark(&self) -> f64 {
        self.lock().charged
    }

    /// [`LocalBudget::observe_answer_at`] for a request sent after
    /// `mark` ([`LocalBudget::answers_mark`]); `None` when unknown (the
    /// answer's figure counts for no more than the bucket as known less
    /// the request's cost).
    pub fn observe_answer_after(&self, mark: Option<f64>, cost: &QueryCost, now: Instant) {
        Self::observe_in(&mut self.lock(), mark, cost, now);
    }

    fn observe_in(state: &mut State, mark: Option<f64>, cost: &QueryCost, now: Instant) {
        let since = mark.map(|m| state.charged - m);
        let actual = cost
            .actual_query_cost
            .filter(|c| c.is_finite())
            .unwrap_or(0.0)
            .max(0.0);
        state.charged += actual;
        let Some(mut status) = cost.throttle_status else {
            return;
        };
        if let Some(known) = state.bucket.as_ref() {
            let answered = since.map_or(f64::NEG_INFINITY, |s| status.currently_available - s);
            let held = known.available_at(now.max(known.at)) - actual;
            status.currently_available = status.currently_available.min(answered.max(held));
        }
        state.bucket = Some(Bucket { status, at: now });
    }
}

impl CostBudget for LocalBudget {
    fn reserve(
        &self,
        points: f64,
        max_wait: Duration,
    ) -> BudgetFuture<'_, Result<(Duration, Reserved), Duration>> {
        Box::pin(std::future::ready(self.reserve_at(
            points,
            Instant::now(),
            max_wait,
        )))
    }

    fn observe(&self, reserved: Reserved, cost: QueryCost) -> BudgetFuture<'_, ()> {
        self.observe_answer_at(&reserved, &cost, Instant::now());
        Box::pin(std::future::ready(()))
    }

    fn sending(&self, reserved: &Reserved) {
        let mut state = self.lock();
        let charged = state.charged;
        if let Some(entry) = state.reserved.get_mut(&reserved.ticket) {
            entry.1 = charged;
        }
    }

    fn release(&self, reserved: Reserved) {
        if reserved.ticket == 0 {
            return;
        }
        self.lock().reserved.remove(&reserved.ticket);
        self.over.notify_waiters();
    }

    fn wait_left(&self, reserved: &Reserved) -> Option<Duration> {
        self.wait_left_at(reserved, Instant::now())
    }

    fn answered(&self) -> BudgetFuture<'_, ()> {
        Box::pin(self.over.notified())
    }

    fn restore_rate(&self) -> Option<f64> {
        let state = self.lock();
        let rate = state.bucket.as_ref()?.status.restore_rate;
        usable_rate(rate).then_some(rate)
    }

    fn maximum_available(&self) -> Option<f64> {
        Some(self.lock().bucket.as_ref()?.status.maximum_available)
    }
}

/// A client's view of its store's budget: the last requested and actual
/// cost of each operation (learned here) and where the bucket is kept.
/// Shared by all clones of one store's client.
#[derive(Debug)]
pub(crate) struct Budget {
    costs: Mutex<HashMap<&'static str, Costs>>,
    bucket: Arc<dyn CostBudget>,
    /// The store's wait slots (see [`job_scope`]).
    slots: Arc<Semaphore>,
    /// When the next job turned away should come back (see
    /// [`Budget::turn_away`]).
    next_return: Mutex<Option<Instant>>,
}

/// What Shopify last said an operation cost.
#[derive(Debug, Clone, Copy, Default)]
struct Costs {
    requested: Option<f64>,
    actual: Option<f64>,
}

impl Default for Budget {
    fn default() -> Self {
        Self::new(Arc::new(LocalBudget::default()))
    }
}

impl Budget {
    /// The store's bucket size, once an answer said it.
    pub(crate) fn maximum_available(&self) -> Option<f64> {
        self.bucket.maximum_available()
    }

    pub(crate) fn new(bucket: Arc<dyn CostBudget>) -> Self {
        Self {
            costs: Mutex::default(),
            bucket,
            slots: Arc::new(Semaphore::new(WAIT_SLOTS)),
            next_return: Mutex::default(),
        }
    }

    /// May the current job sleep `wait` for this budget? `Err` is how long
    /// a job turned away should stay away.
    pub(crate) fn may_wait(&self, op: &'static str, wait: Duration) -> Result<(), Duration> {
        if wait <= SHORT_WAIT {
            return Ok(());
        }
        let key = Arc::as_ptr(&self.slots) as usize;
        JOB_SLOTS
            .try_with(|held| {
                let mut held = held.borrow_mut();
                if held.iter().any(|(k, _)| *k == key) {
                    return Ok(());
                }
                match Arc::clone(&self.slots).try_acquire_owned() {
                    Ok(permit) => {
                        held.push((key, permit));
                        Ok(())
                    }
                    Err(_) => Err(()),
                }
            })
            .unwrap_or(Ok(()))
            .map_err(|()| self.turn_away(op, wait, Instant::now()))
    }

    /// How long a job turned away (its call to `op` would wait `wait`)
    /// should stay away: at least `wait` and [`MIN_TURNED_AWAY`], and
    /// after the jobs turned away before it, one call of `op` at the
    /// store's restore rate apart (its last actual cost). They come back
    /// in turn, at about the pace the store's budget takes them, rather
    /// than all together every few seconds, each to run up to its store
    /// call and be turned away again: work for nothing.
    pub(crate) fn turn_away(&self, op: &'static str, wait: Duration, now: Instant) -> Duration {
        let earliest = now + wait.max(MIN_TURNED_AWAY);
        let spacing = self
            .bucket
            .restore_rate()
            .zip(self.costs().get(op).and_then(|c| c.actual.or(c.requested)))
            .and_then(|(rate, cost)| Duration::try_from_secs_f64(cost / rate).ok())
            .unwrap_or(Duration::ZERO);
        let mut next = self
            .next_return
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let at = next.map_or(earliest, |n| n.max(earliest));
        *next = Some(at + spacing);
        at - now
    }

    fn costs(&self) -> std::sync::MutexGuard<'_, HashMap<&'static str, Costs>> {
        self.costs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Reserves the expected cost of `op` (see [`CostBudget::reserve`]):
    /// the requested cost Shopify last reported for it, or before any
    /// answer its documented cost ([`crate::operations::COSTS`]); an
    /// operation not listed there has an unknown (infinite) cost. `Err`:
    /// how long the job should stay away ([`Budget::turn_away`]).
    pub(crate) async fn reserve(
        &self,
        op: &'static str,
        max_wait: Duration,
    ) -> Result<(Duration, Reserved), Duration> {
        let cost = self
            .last_cost(op)
            .or_else(|| crate::operations::documented_cost(op))
            .unwrap_or(f64::INFINITY);
        self.bucket
            .reserve(cost, max_wait)
            .await
            .map_err(|wait| self.turn_away(op, wait, Instant::now()))
    }

    /// Sleeps until a request told to wait `wait` for `reserved` may be
    /// sent: sooner when the calls ahead of it are answered for less than
    /// they reserved, never later than `wait`.
    pub(crate) async fn wait_turn(&self, reserved: &Reserved, wait: Duration) {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let answered = self.bucket.answered();
            let mut left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if let Some(now_left) = self.bucket.wait_left(reserved) {
                left = left.min(now_left);
            }
            if left.is_zero() || tokio::time::timeout(left, answered).await.is_err() {
                return;
            }
        }
    }

    /// The request of `reserved` goes now ([`CostBudget::sending`]).
    pub(crate) fn sending(&self, reserved: &Reserved) {
        self.bucket.sending(reserved);
    }

    /// Gives back points reserved for a request that has been answered (or
    /// failed).
    pub(crate) fn release(&self, reserved: Reserved) {
        self.bucket.release(reserved);
    }

    /// Gives back points reserved for a request that was never sent.
    pub(crate) fn unused(&self, reserved: Reserved) {
        self.bucket.unused(reserved);
    }

    pub(crate) fn last_cost(&self, op: &'static str) -> Option<f64> {
        self.costs().get(op).and_then(|c| c.requested)
    }

    /// Records what Shopify said about `op` and the bucket after answering
    /// a request that reserved `reserved`.
    pub(crate) async fn observe(&self, op: &'static str, reserved: Reserved, cost: &QueryCost) {
        {
            let mut costs = self.costs();
            let known = costs.entry(op).or_default();
            if let Some(requested) = cost.requested_query_cost.filter(|c| c.is_finite()) {
                known.requested = Some(requested);
            }
            if let Some(actual) = cost.actual_query_cost.filter(|c| c.is_finite()) {
                known.actual = Some(actual);
            }
        }
        if cost.throttle_status.is_some() || reserved.points > 0.0 {
            self.bucket.observe(reserved, *cost).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cost(requested: f64, available: f64, rate: f64) -> QueryCost {
        QueryCost {
            requested_query_cost: Some(requested),
            actual_query_cost: None,
            throttle_status: Some(ThrottleStatus {
                maximum_available: 1000.0,
                currently_available: available,
                restore_rate: rate,
            }),
        }
    }

    const MAX: Duration = Duration::from_secs(60);

    /// The client's [`Budget`] over a [`LocalBudget`], at given instants.
    #[derive(Default)]
    struct Fixture {
        costs: HashMap<&'static str, f64>,
        local: LocalBudget,
    }

    impl Fixture {
        fn reserve(
            &self,
            op: &'static str,
            now: Instant,
            max_wait: Duration,
        ) -> Result<(Duration, Reserved), Duration> {
            match self.costs.get(op) {
                Some(&cost) => self.local.reserve_at(cost, now, max_wait),
                None => Ok((Duration::ZERO, Reserved::NONE)),
            }
        }

        fn observe(&mut self, op: &'static str, cost: &QueryCost, now: Instant) {
            if let Some(requested) = cost.requested_query_cost {
                self.costs.insert(op, requested);
            }
            self.local.observe_at(cost, now);
        }
    }

    #[tokio::test]
    async fn the_client_budget_learns_costs_and_reserves_in_its_bucket() {
        let local = Arc::new(LocalBudget::default());
        let budget = Budget::new(local.clone());
        // Nothing known: go at once, nothing reserved.
        assert_eq!(
            budget.reserve("Order", MAX).await,
            Ok((Duration::ZERO, Reserved::NONE))
        );
        budget
            .observe("Order", Reserved::NONE, &cost(600.0, 1000.0, 100.0))
            .await;
        assert_eq!(budget.last_cost("Order"), Some(600.0));
        let (_, first) = budget.reserve("Order", MAX).await.unwrap();
        assert_eq!(first.points, 600.0);
        // 400 left, 600 needed: about 2 s.
        let (wait, second) = budget.reserve("Order", MAX).await.unwrap();
        assert!(wait > Duration::from_millis(1900), "{wait:?}");
        assert_eq!(second.points, 600.0);
        budget.release(first);
        budget.release(second);
        assert_eq!(
            budget
                .reserve("Order", MAX)
                .await
                .map(|r| r.0 < Duration::from_millis(50)),
            Ok(true)
        );
    }

    fn bucket(requested: f64, actual: f64, available: f64, size: f64, rate: f64) -> QueryCost {
        QueryCost {
            requested_query_cost: Some(requested),
            actual_query_cost: Some(actual),
            throttle_status: Some(ThrottleStatus {
                maximum_available: size,
                currently_available: available,
                restore_rate: rate,
            }),
        }
    }

    /// A waiter is told again when the calls ahead of it are answered:
    /// Shopify refunds what a query cost less than it requested, so a
    /// search requesting 181 points and costing 16 leaves room at once for
    /// the next (the drain of a throttled store was paced by requested
    /// costs before). Only the reservations ahead of a waiter count.
    #[test]
    fn waits_shorten_as_the_calls_ahead_are_answered() {
        let local = LocalBudget::default();
        let t0 = Instant::now();
        // Bucket 200, 50/s: full.
        local.observe_at(&bucket(181.0, 16.0, 200.0, 200.0, 50.0), t0);
        let (wait_a, a) = local.reserve_at(181.0, t0, MAX).unwrap();
        assert_eq!(wait_a, Duration::ZERO);
        // 19 left, 181 needed: 3.24 s.
        let (wait_b, b) = local.reserve_at(181.0, t0, MAX).unwrap();
        assert_eq!(wait_b, Duration::from_secs_f64(162.0 / 50.0));
        assert_eq!(local.wait_left_at(&b, t0), Some(wait_b));
        // Behind b: 200 − 362 = −162 left, 343 short: 6.86 s.
        let (wait_c, c) = local.reserve_at(181.0, t0, MAX).unwrap();
        assert_eq!(wait_c, Duration::from_secs_f64(343.0 / 50.0));
        // a is answered 100 ms later: it cost 16, Shopify has 184 left
        // (200 − 16; its refill since is in its figure).
        let t1 = t0 + Duration::from_millis(100);
        local.observe_at(&bucket(181.0, 16.0, 184.0, 200.0, 50.0), t1);
        local.release(a);
        assert_eq!(local.wait_left_at(&b, t1), Some(Duration::ZERO));
        // c still waits behind b: 184 − 181 = 3 left, 178 short: 3.56 s.
        assert_eq!(
            local.wait_left_at(&c, t1),
            Some(Duration::from_secs_f64(178.0 / 50.0))
        );
        // A reservation that is over, or never made, has nothing to wait.
        local.release(b);
        assert_eq!(local.wait_left_at(&b, t1), None);
        assert_eq!(local.wait_left_at(&Reserved::NONE, t1), None);
        assert_eq!(
            local.wait_left_at(&c, t1),
            Some(Duration::from_secs_f64(0.0))
        );
    }

    /// Answers of requests in flight together may come back in another
    /// order than the store charged them: the bucket keeps the newest
    /// figure either way, and an overtaken answer gives no points back
    /// (before, the next search went into a bucket 8 points short of it:
    /// THROTTLED, in the `ship-to-store` bench's throttled store).
    #[test]
    fn an_overtaken_answer_gives_no_points_back() {
        let t0 = Instant::now();
        let search_answer = bucket(92.0, 16.0, 94.0, 200.0, 50.0);
        let create_answer = bucket(10.0, 10.0, 84.0, 200.0, 50.0);
        for create_first in [true, false] {
            let local = LocalBudget::default();
            // Bucket 200, 50/s, holding 110: a search (92, costing 16) and
            // a create (10) go together.
            local.observe_at(&bucket(92.0, 16.0, 110.0, 200.0, 50.0), t0);
            let (wait, search) = local.reserve_at(92.0, t0, MAX).unwrap();
            assert_eq!(wait, Duration::ZERO);
            let (wait, create) = local.reserve_at(10.0, t0, MAX).unwrap();
            assert_eq!(wait, Duration::ZERO);
            // The store charges the search (110 − 16 = 94), then the create
            // (84); their answers come back in either order.
            let answers = [(create, &create_answer), (search, &search_answer)];
            let order: Vec<_> = if create_first {
                answers.iter().collect()
            } else {
                answers.iter().rev().collect()
            };
            for (reserved, answer) in order {
                local.observe_answer_at(reserved, answer, t0);
                local.release(*reserved);
            }
            // The bucket holds 84: the next search waits for 8 points.
            let (wait, next) = local.reserve_at(92.0, t0, MAX).unwrap();
            assert_eq!(
                wait,
                Duration::from_secs_f64(8.0 / 50.0),
                "create answered first: {create_first}"
            );
            local.release(next);
        }
        // A request that went after other answers came in: only the answers
        // observed since it went count against its own. d goes and is
        // answered while b waits; then b and c go, the store charges b
        // then c, and c's answer comes back first.
        let local = LocalBudget::default();
        local.observe_at(&bucket(10.0, 10.0, 110.0, 200.0, 50.0), t0);
        let (_, d) = local.reserve_at(10.0, t0, MAX).unwrap();
        let (_, b) = local.reserve_at(10.0, t0, MAX).unwrap();
        local.sending(&d);
        local.observe_answer_at(&d, &bucket(10.0, 10.0, 100.0, 200.0, 50.0), t0);
        local.release(d);
        local.sending(&b);
        let (_, c) = local.reserve_at(10.0, t0, MAX).unwrap();
        local.sending(&c);
        local.observe_answer_at(&c, &bucket(10.0, 10.0, 80.0, 200.0, 50.0), t0);
        local.release(c);
        local.observe_answer_at(&b, &bucket(10.0, 10.0, 90.0, 200.0, 50.0), t0);
        local.release(b);
        // The bucket holds 80 (counted from when b reserved, d's answer
        // would have made it 70).
        let (wait, e) = local.reserve_at(80.0, t0, MAX).unwrap();
        assert_eq!(wait, Duration::ZERO);
        local.release(e);
        // An answer lower than the bucket as known (another client of the
        // store's budget spent it) is taken as it is.
        let local = LocalBudget::default();
        local.observe_at(&bucket(92.0, 16.0, 110.0, 200.0, 50.0), t0);
        let (_, search) = local.reserve_at(92.0, t0, MAX).unwrap();
        local.observe_answer_at(&search, &bucket(92.0, 16.0, 30.0, 200.0, 50.0), t0);
        local.release(search);
        let (wait, _) = local.reserve_at(92.0, t0, MAX).unwrap();
        assert_eq!(wait, Duration::from_secs_f64(62.0 / 50.0));
    }

    /// `wait_turn` ends when the call ahead is answered, not at the
    /// deadline it was given (a minute here: the test would time out).
    #[tokio::test]
    async fn a_waiter_goes_when_the_call_ahead_is_answered() {
        let local = Arc::new(LocalBudget::default());
        let budget = Arc::new(Budget::new(local.clone()));
        budget
            .observe(
                "Search",
                Reserved::NONE,
                &bucket(181.0, 16.0, 200.0, 200.0, 3.0),
            )
            .await;
        let (_, ahead) = budget.reserve("Search", MAX).await.unwrap();
        let (wait, mine) = budget.reserve("Search", MAX).await.unwrap();
        assert!(wait > Duration::from_secs(50), "{wait:?}");
        let waiter = tokio::spawn({
            let budget = budget.clone();
            async move { budget.wait_turn(&mine, wait).await }
        });
        tokio::task::yield_now().await;
        budget
            .observe("Search", ahead, &bucket(181.0, 16.0, 184.0, 200.0, 3.0))
            .await;
        budget.release(ahead);
        tokio::time::timeout(Duration::from_secs(30), waiter)
            .await
            .expect("the waiter went when the call ahead was answered")
            .unwrap();
        budget.release(mine);
    }

    /// Jobs turned away come back one call apart at the store's restore
    /// rate (the operation's last actual cost), not all together.
    #[tokio::test]
    async fn jobs_turned_away_come_back_in_turn() {
        let budget = Budget::new(Arc::new(LocalBudget::default()));
        let t0 = Instant::now();
        // Nothing known about the store: the plain minimum.
        assert_eq!(
            budget.turn_away("Search", Duration::from_millis(500), t0),
            MIN_TURNED_AWAY
        );
        let budget = Budget::new(Arc::new(LocalBudget::default()));
        budget
            .observe(
                "Search",
                Reserved::NONE,
                &bucket(92.0, 20.0, 0.0, 1000.0, 100.0),
            )
            .await;
        let s = Duration::from_millis(200);
        let waits: Vec<Duration> = (0..3)
            .map(|_| budget.turn_away("Search", Duration::from_millis(500), t0))
            .collect();
        assert_eq!(
            waits,
            [
                MIN_TURNED_AWAY,
                MIN_TURNED_AWAY + s,
                MIN_TURNED_AWAY + 2 * s
            ]
        );
        // A longer wait of its own counts first.
        assert_eq!(
            budget.turn_away("Search", Duration::from_secs(9), t0),
            Duration::from_secs(9)
        );
        // Once the queue of returns has passed, the minimum again.
        let later = t0 + Duration::from_secs(60);
        assert_eq!(
            budget.turn_away("Search", Duration::ZERO, later),
            MIN_TURNED_AWAY
        );
    }

    #[test]
    fn unknown_operation_or_bucket_sends_at_once() {
        let mut budget = Fixture::default();
        let now = Instant::now();
        assert_eq!(
            budget.reserve("Order", now, MAX).map(|r| r.0),
            Ok(Duration::ZERO)
        );
        budget.observe("ShopName", &cost(1.0, 0.0, 100.0), now);
        assert_eq!(
            budget.reserve("Order", now, MAX).map(|r| r.0),
            Ok(Duration::ZERO)
        );
    }

    #[test]
    fn waits_for_the_shortfall_at_the_restore_rate() {
        let mut budget = Fixture::default();
        let now = Instant::now();
        budget.observe("Order", &cost(754.0, 254.0, 100.0), now);
        assert_eq!(
            budget.reserve("Order", now, MAX).map(|r| r.0),
            Ok(Duration::from_secs(5))
        );
        // Two seconds later the bucket has refilled 200 points.
        let mut budget = Fixture::default();
        budget.observe("Order", &cost(754.0, 254.0, 100.0), now);
        let later = now + Duration::from_secs(2);
        assert_eq!(
            budget.reserve("Order", later, MAX).map(|r| r.0),
            Ok(Duration::from_secs(3))
        );
    }

    #[test]
    fn enough_points_means_no_wait_and_reservations_queue_up() {
        let mut budget = Fixture::default();
        let now = Instant::now();
        budget.observe("Order", &cost(400.0, 1000.0, 100.0), now);
        assert_eq!(
            budget.reserve("Order", now, MAX).map(|r| r.0),
            Ok(Duration::ZERO)
        );
        assert_eq!(
            budget.reserve("Order", now, MAX).map(|r| r.0),
            Ok(Duration::ZERO)
        );
        // 200 left, 400 needed: 2 s; the next one another 4 s after that.
        assert_eq!(
            budget.reserve("Order", now, MAX).map(|r| r.0),
            Ok(Duration::from_secs(2))
        );
        assert_eq!(
            budget.reserve("Order", now, MAX).map(|r| r.0),
            Ok(Duration::from_secs(6))
        );
    }

    #[test]
    fn refill_is_capped_at_the_bucket_size() {
        let mut budget = Fixture::default();
        let now = Instant::now();
        budget.observe("Order", &cost(1000.0, 0.0, 100.0), now);
        let much_later = now + Duration::from_secs(3600);
        assert_eq!(
            budget.reserve("Order", much_later, MAX).map(|r| r.0),
            Ok(Duration::ZERO)
        );
        // Capped at 1000, spent 1000: the next one waits a full 10 s.
        assert_eq!(
            budget.reserve("Order", much_later, MAX).map(|r| r.0),
            Ok(Duration::from_secs(10))
        );
    }

    #[test]
    fn a_wait_beyond_the_bound_reserves_nothing() {
        let mut budget = Fixture::default();
        let now = Instant::now();
        budget.observe("Order", &cost(754.0, 0.0, 50.0), now);
        let bound = Duration::from_secs(5);
        assert_eq!(
            budget.reserve("Order", now, bound).map(|r| r.0),
            Err(Duration::from_secs_f64(754.0 / 50.0))
        );
        assert_eq!(
            budget
                .reserve("Order", now + Duration::from_secs_f64(754.0 / 50.0), bound)
                .map(|r| r.0),
            Ok(Duration::ZERO)
        );
    }

    #[test]
    fn refill_wait_from_a_throttled_answer() {
        assert_eq!(
            cost(752.0, 100.0, 100.0).refill_wait(),
            Some(Duration::from_secs_f64(6.52))
        );
        assert_eq!(cost(10.0, 900.0, 100.0).refill_wait(), Some(Duration::ZERO));
        assert_eq!(cost(10.0, 0.0, 0.0).refill_wait(), None);
        assert_eq!(QueryCost::default().refill_wait(), None);
    }
}
