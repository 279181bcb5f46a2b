//! Per-store cost budget, driven by the `throttleStatus` Shopify returns with
//! every answer: before sending an operation, estimate what the leaky bucket
//! holds now and wait for the shortfall instead of being THROTTLED.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

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
    ) -> BudgetFuture<'_, Result<(Duration, f64), Duration>>;

    /// What Shopify said (its `extensions.cost`) in answer to a request that
    /// reserved `reserved` points.
    fn observe(&self, reserved: f64, cost: QueryCost) -> BudgetFuture<'_, ()>;

    /// The request that reserved `reserved` points is over (answered or
    /// failed), whatever the path.
    fn release(&self, reserved: f64);

    /// Nothing was sent for a reservation of `reserved` points (the job was
    /// turned away, or stopped while it waited): the points go back to the
    /// bucket, so a job put back for the budget holds none of it.
    fn unused(&self, reserved: f64) {
        self.release(reserved);
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
    /// Points reserved by requests not yet answered: the server's last
    /// `currentlyAvailable` does not include them yet.
    in_flight: f64,
}

/// The bucket as this process sees it: Shopify's last `throttleStatus`,
/// refilled at the restore rate since, minus the points of requests in
/// flight.
#[derive(Debug, Default)]
pub struct LocalBudget {
    state: Mutex<State>,
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
    ) -> Result<(Duration, f64), Duration> {
        let mut state = self.lock();
        let in_flight = state.in_flight;
        let Some(bucket) = state.bucket.as_ref() else {
            return Ok((Duration::ZERO, 0.0));
        };
        if !usable_rate(bucket.status.restore_rate) || !points.is_finite() {
            return Ok((Duration::ZERO, 0.0));
        }
        let needed = points.max(0.0).min(bucket.status.maximum_available);
        let available = bucket.available_at(now.max(bucket.at)) - in_flight;
        let wait = shortfall_wait(needed - available, bucket.status.restore_rate)
            .unwrap_or(Duration::ZERO);
        if wait > max_wait {
            return Err(wait);
        }
        state.in_flight += needed;
        Ok((wait, needed))
    }

    /// [`CostBudget::observe`] at `now`.
    pub fn observe_at(&self, cost: &QueryCost, now: Instant) {
        if let Some(status) = cost.throttle_status {
            self.lock().bucket = Some(Bucket { status, at: now });
        }
    }
}

impl CostBudget for LocalBudget {
    fn reserve(
        &self,
        points: f64,
        max_wait: Duration,
    ) -> BudgetFuture<'_, Result<(Duration, f64), Duration>> {
        Box::pin(std::future::ready(self.reserve_at(
            points,
            Instant::now(),
            max_wait,
        )))
    }

    fn observe(&self, _reserved: f64, cost: QueryCost) -> BudgetFuture<'_, ()> {
        self.observe_at(&cost, Instant::now());
        Box::pin(std::future::ready(()))
    }

    fn release(&self, reserved: f64) {
        let mut state = self.lock();
        state.in_flight = (state.in_flight - reserved).max(0.0);
    }
}

/// A client's view of its store's budget: the last requested cost of each
/// operation (learned here) and where the bucket is kept. Shared by all
/// clones of one store's client.
#[derive(Debug)]
pub(crate) struct Budget {
    costs: Mutex<HashMap<&'static str, f64>>,
    bucket: Arc<dyn CostBudget>,
    /// The store's wait slots (see [`job_scope`]).
    slots: Arc<Semaphore>,
}

impl Default for Budget {
    fn default() -> Self {
        Self::new(Arc::new(LocalBudget::default()))
    }
}

impl Budget {
    pub(crate) fn new(bucket: Arc<dyn CostBudget>) -> Self {
        Self {
            costs: Mutex::default(),
            bucket,
            slots: Arc::new(Semaphore::new(WAIT_SLOTS)),
        }
    }

    /// May the current job sleep `wait` for this budget? `Err` is how long
    /// a job turned away should stay away.
    pub(crate) fn may_wait(&self, wait: Duration) -> Result<(), Duration> {
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
                    Err(_) => Err(wait.max(MIN_TURNED_AWAY)),
                }
            })
            .unwrap_or(Ok(()))
    }

    fn costs(&self) -> std::sync::MutexGuard<'_, HashMap<&'static str, f64>> {
        self.costs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Reserves the expected cost of `op` (see [`CostBudget::reserve`]):
    /// the requested cost Shopify last reported for it, or before any
    /// answer its documented cost ([`crate::operations::COSTS`]); an
    /// operation not listed there has an unknown (infinite) cost.
    pub(crate) async fn reserve(
        &self,
        op: &'static str,
        max_wait: Duration,
    ) -> Result<(Duration, f64), Duration> {
        let cost = self
            .last_cost(op)
            .or_else(|| crate::operations::documented_cost(op))
            .unwrap_or(f64::INFINITY);
        self.bucket.reserve(cost, max_wait).await
    }

    /// Gives back points reserved for a request that has been answered (or
    /// failed).
    pub(crate) fn release(&self, points: f64) {
        self.bucket.release(points);
    }

    /// Gives back points reserved for a request that was never sent.
    pub(crate) fn unused(&self, points: f64) {
        self.bucket.unused(points);
    }

    pub(crate) fn last_cost(&self, op: &'static str) -> Option<f64> {
        self.costs().get(op).copied()
    }

    /// Records what Shopify said about `op` and the bucket after answering
    /// a request that reserved `reserved` points.
    pub(crate) async fn observe(&self, op: &'static str, reserved: f64, cost: &QueryCost) {
        if let Some(requested) = cost.requested_query_cost.filter(|c| c.is_finite()) {
            self.costs().insert(op, requested);
        }
        if cost.throttle_status.is_some() || reserved > 0.0 {
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
        ) -> Result<(Duration, f64), Duration> {
            match self.costs.get(op) {
                Some(&cost) => self.local.reserve_at(cost, now, max_wait),
                None => Ok((Duration::ZERO, 0.0)),
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
            Ok((Duration::ZERO, 0.0))
        );
        budget
            .observe("Order", 0.0, &cost(600.0, 1000.0, 100.0))
            .await;
        assert_eq!(budget.last_cost("Order"), Some(600.0));
        assert_eq!(budget.reserve("Order", MAX).await.map(|r| r.1), Ok(600.0));
        // 400 left, 600 needed: about 2 s.
        let (wait, points) = budget.reserve("Order", MAX).await.unwrap();
        assert!(wait > Duration::from_millis(1900), "{wait:?}");
        assert_eq!(points, 600.0);
        budget.release(600.0);
        budget.release(600.0);
        assert_eq!(
            budget
                .reserve("Order", MAX)
                .await
                .map(|r| r.0 < Duration::from_millis(50)),
            Ok(true)
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
