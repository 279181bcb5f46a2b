//! Per-store cost budget, driven by the `throttleStatus` Shopify returns with
//! every answer: before sending an operation, estimate what the leaky bucket
//! holds now and wait for the shortfall instead of being THROTTLED.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Deserialize;

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
    /// Last requested cost per operation name.
    costs: HashMap<&'static str, f64>,
    /// Points reserved by requests not yet answered: the server's last
    /// `currentlyAvailable` does not include them yet.
    in_flight: f64,
}

/// Shared by all clones of one store's client.
#[derive(Debug, Default)]
pub(crate) struct Budget {
    state: Mutex<State>,
}

impl Budget {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is plain numbers: a panic elsewhere cannot leave it torn.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How long to wait before sending `op` at `now`, reserving its cost so
    /// that concurrent callers queue behind it. `Err(wait)` when the wait
    /// would exceed `max_wait`: nothing is reserved and the caller should
    /// report Throttled rather than hold a worker.
    /// Reserves the expected cost of `op`: `Ok((wait, points))` to sleep
    /// `wait` then send, holding `points` until the answer arrives (give them
    /// back with [`Budget::release`]); `Err(wait)` when that would exceed
    /// `max_wait`.
    pub(crate) fn reserve(
        &self,
        op: &'static str,
        now: Instant,
        max_wait: Duration,
    ) -> Result<(Duration, f64), Duration> {
        let mut state = self.lock();
        let Some(&cost) = state.costs.get(op) else {
            return Ok((Duration::ZERO, 0.0));
        };
        let in_flight = state.in_flight;
        let Some(bucket) = state.bucket.as_ref() else {
            return Ok((Duration::ZERO, 0.0));
        };
        if !usable_rate(bucket.status.restore_rate) {
            return Ok((Duration::ZERO, 0.0));
        }
        let needed = cost.min(bucket.status.maximum_available);
        let available = bucket.available_at(now.max(bucket.at)) - in_flight;
        let wait = shortfall_wait(needed - available, bucket.status.restore_rate)
            .unwrap_or(Duration::ZERO);
        if wait > max_wait {
            return Err(wait);
        }
        state.in_flight += needed;
        Ok((wait, needed))
    }

    /// Gives back points reserved for a request that has been answered (or
    /// failed).
    pub(crate) fn release(&self, points: f64) {
        let mut state = self.lock();
        state.in_flight = (state.in_flight - points).max(0.0);
    }

    pub(crate) fn last_cost(&self, op: &'static str) -> Option<f64> {
        self.lock().costs.get(op).copied()
    }

    /// Records what Shopify said about the bucket after answering `op`.
    pub(crate) fn observe(&self, op: &'static str, cost: &QueryCost, now: Instant) {
        let mut state = self.lock();
        if let Some(requested) = cost.requested_query_cost.filter(|c| c.is_finite()) {
            state.costs.insert(op, requested);
        }
        if let Some(status) = cost.throttle_status {
            state.bucket = Some(Bucket { status, at: now });
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

    #[test]
    fn unknown_operation_or_bucket_sends_at_once() {
        let budget = Budget::default();
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
        let budget = Budget::default();
        let now = Instant::now();
        budget.observe("Order", &cost(754.0, 254.0, 100.0), now);
        assert_eq!(
            budget.reserve("Order", now, MAX).map(|r| r.0),
            Ok(Duration::from_secs(5))
        );
        // Two seconds later the bucket has refilled 200 points.
        let budget = Budget::default();
        budget.observe("Order", &cost(754.0, 254.0, 100.0), now);
        let later = now + Duration::from_secs(2);
        assert_eq!(
            budget.reserve("Order", later, MAX).map(|r| r.0),
            Ok(Duration::from_secs(3))
        );
    }

    #[test]
    fn enough_points_means_no_wait_and_reservations_queue_up() {
        let budget = Budget::default();
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
        let budget = Budget::default();
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
        let budget = Budget::default();
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
