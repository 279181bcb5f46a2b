//! The per-account request budget: Deposco allows about 4 requests/s per
//! account and answers 429 beyond it. Every connection of one account shares
//! one budget, so that two stores pulling from one warehouse account do not
//! trip over each other.
//!
//! The client takes the budget as a [`RateBudget`]: [`RateLimiter`] keeps it
//! in this process (one per account, e.g. from [`shared_limiter`]); the
//! engine supplies one kept in the database when several nodes share an
//! account.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use tokio::time::Instant;

/// Deposco's documented account limit.
pub const DEFAULT_RATE: f64 = 4.0;
/// Requests allowed back to back before the spacing starts. Deposco's own
/// bucket holds about 4; using only part of it leaves slack for network
/// jitter (two requests sent 250 ms apart may arrive 240 ms apart).
pub const DEFAULT_BURST: f64 = 2.0;

/// A future returned by a [`RateBudget`].
pub type BudgetFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// Where an account's request budget is kept. Every request waits for
/// [`RateBudget::acquire`]; a 429 calls [`RateBudget::pause_for`] before the
/// request is tried again.
pub trait RateBudget: Send + Sync + fmt::Debug {
    /// Waits until one more request may be sent, and counts it.
    fn acquire(&self) -> BudgetFuture<'_>;
    /// After a 429 with `Retry-After: d`: nobody sharing the budget sends
    /// before `d` has passed, and then at the steady rate (no burst).
    fn pause_for(&self, d: Duration) -> BudgetFuture<'_>;
}

impl RateBudget for RateLimiter {
    fn acquire(&self) -> BudgetFuture<'_> {
        Box::pin(RateLimiter::acquire(self))
    }

    fn pause_for(&self, d: Duration) -> BudgetFuture<'_> {
        RateLimiter::pause_for(self, d);
        Box::pin(std::future::ready(()))
    }
}

/// A token bucket (as GCRA: one "theoretical arrival time" instead of a token
/// count) with a shared pause for 429 answers.
///
/// Guarantee: in any window of `t` seconds at most `burst + rate × t`
/// requests pass [`RateLimiter::acquire`].
#[derive(Debug)]
pub struct RateLimiter {
    /// Seconds between requests at the steady rate (0: unlimited).
    interval: Duration,
    /// How far ahead of the steady schedule a burst may run.
    tolerance: Duration,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// When the next request would be due at the steady rate.
    tat: Instant,
    /// Bumped by every pause, so that a waiter that reserved its slot before
    /// the pause takes a new one.
    pause_epoch: u64,
}

impl Default for RateLimiter {
    fn default() -> Self {
        Self::new(DEFAULT_RATE, DEFAULT_BURST)
    }
}

impl RateLimiter {
    /// `rate` requests per second, `burst` back to back (at least 1). A rate
    /// that is zero, negative, NaN or infinite means no limit.
    pub fn new(rate: f64, burst: f64) -> Self {
        let interval = if rate.is_finite() && rate > 0.0 {
            Duration::try_from_secs_f64(1.0 / rate).unwrap_or(Duration::ZERO)
        } else {
            Duration::ZERO
        };
        let burst = if burst.is_finite() {
            burst.max(1.0)
        } else {
            1.0
        };
        let tolerance = interval.mul_f64(burst - 1.0);
        Self {
            interval,
            tolerance,
            state: Mutex::new(State {
                tat: Instant::now(),
                pause_epoch: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is two plain values, valid whatever a panicking holder did.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until one more request may be sent, and counts it.
    pub async fn acquire(&self) {
        if self.interval.is_zero() {
            return;
        }
        loop {
            let (send_at, epoch) = {
                let mut state = self.lock();
                let now = Instant::now();
                let base = state.tat.max(now);
                state.tat = base + self.interval;
                let send_at = base.checked_sub(self.tolerance).unwrap_or(now).max(now);
                (send_at, state.pause_epoch)
            };
            tokio::time::sleep_until(send_at).await;
            // A 429 seen by someone else while we slept: our slot is void.
            if self.lock().pause_epoch == epoch {
                return;
            }
        }
    }

    /// After a 429 with `Retry-After: d`: nobody sharing this limiter sends
    /// before `d` has passed, and after that requests restart at the steady
    /// rate (no burst).
    pub fn pause_for(&self, d: Duration) {
        let mut state = self.lock();
        let resume = Instant::now() + d;
        state.tat = state.tat.max(resume + self.tolerance);
        state.pause_epoch = state.pause_epoch.wrapping_add(1);
    }
}

/// The process-wide limiter for `key` (one per Deposco account, e.g.
/// [`super::DeposcoConfig::limiter_key`]), created with the default rate on
/// first use and dropped once no client holds it.
pub fn shared_limiter(key: &str) -> Arc<RateLimiter> {
    static REGISTRY: OnceLock<Mutex<HashMap<String, Weak<RateLimiter>>>> = OnceLock::new();
    let mut registry = REGISTRY
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(limiter) = registry.get(key).and_then(Weak::upgrade) {
        return limiter;
    }
    registry.retain(|_, weak| weak.strong_count() > 0);
    let limiter = Arc::new(RateLimiter::default());
    registry.insert(key.to_owned(), Arc::downgrade(&limiter));
    limiter
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `n` acquisitions on each of `tasks` tasks; the times (seconds
    /// from the start) at which they passed, sorted.
    async fn schedule(limiter: Arc<RateLimiter>, tasks: usize, n: usize) -> Vec<f64> {
        let start = Instant::now();
        let mut handles = Vec::new();
        for _ in 0..tasks {
            let limiter = limiter.clone();
            handles.push(tokio::spawn(async move {
                let mut times = Vec::new();
                for _ in 0..n {
                    limiter.acquire().await;
                    times.push(start.elapsed().as_secs_f64());
                }
                times
            }));
        }
        let mut all = Vec::new();
        for h in handles {
            all.extend(h.await.expect("task"));
        }
        all.sort_by(f64::total_cmp);
        all
    }

    fn max_in_window(times: &[f64], window: f64) -> usize {
        (0..times.len())
            .map(|i| {
                times[i..]
                    .iter()
                    .take_while(|t| **t < times[i] + window)
                    .count()
            })
            .max()
            .unwrap_or(0)
    }

    // Real time with a fast rate: the bounds are loose by one request for
    // scheduling noise (a late wake-up can only bunch observed times by that).
    #[tokio::test]
    async fn burst_then_steady_rate() {
        let times = schedule(Arc::new(RateLimiter::new(50.0, 3.0)), 4, 10).await;
        assert_eq!(times.len(), 40);
        // 3 at once, then 37 at 20 ms each.
        let last = times[39];
        assert!(last >= 37.0 * 0.02 - 0.005, "{last}");
        for window in [0.1, 0.2, 0.5] {
            let most = max_in_window(&times, window) as f64;
            assert!(most <= 3.0 + 50.0 * window + 1.0, "{most} in {window}");
        }
    }

    #[tokio::test]
    async fn pause_stops_everyone_then_restarts_without_burst() {
        let limiter = Arc::new(RateLimiter::new(20.0, 4.0));
        limiter.acquire().await;
        limiter.pause_for(Duration::from_millis(300));
        let times = schedule(limiter, 3, 2).await;
        assert!(times.iter().all(|t| *t >= 0.29), "{times:?}");
        // 6 requests at 50 ms from the end of the pause, no burst.
        assert!(times[5] >= 0.3 + 5.0 * 0.05 - 0.01, "{times:?}");
    }

    #[tokio::test]
    async fn a_pause_during_a_wait_voids_the_slot() {
        let limiter = Arc::new(RateLimiter::new(5.0, 1.0));
        limiter.acquire().await;
        let start = Instant::now();
        let waiter = {
            let limiter = limiter.clone();
            tokio::spawn(async move {
                limiter.acquire().await;
                start.elapsed().as_secs_f64()
            })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        limiter.pause_for(Duration::from_millis(400));
        let waited = waiter.await.expect("task");
        assert!(waited >= 0.49, "{waited}");
    }

    #[tokio::test]
    async fn unlimited_never_waits() {
        let times = schedule(Arc::new(RateLimiter::new(0.0, 1.0)), 2, 50).await;
        assert!(times.iter().all(|t| *t < 0.5));
    }

    #[test]
    fn shared_by_key() {
        let a = shared_limiter("https://api.example|alice");
        let b = shared_limiter("https://api.example|alice");
        let c = shared_limiter("https://api.example|bob");
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &c));
    }
}
