//! Rate budgets shared by the nodes of one database: the per-account Deposco
//! request rate and the per-store Shopify cost bucket, kept as GCRA (one
//! "theoretical arrival time" per key) in `rate_budgets` and moved by one
//! atomic statement per request, so that any number of `serve` processes on
//! one PostgreSQL database stay within one budget.
//!
//! Times are microseconds on the database's clock (PostgreSQL's `now()`), so
//! the nodes' clocks need not agree: a step returns how long to wait from
//! now, never a point in time. On SQLite (used here only by tests: a single
//! node keeps its budgets in process) the caller's clock is used.

use sqlx::Row;

use crate::{Backend, Db, DbError, now_micros};

/// GCRA parameters, in microseconds.
///
/// A budget of `capacity` units refilled at `rate` units per second, from
/// which a request takes `cost`: a step moves the theoretical arrival time by
/// `interval = cost / rate` and lets a request go while it is at most
/// `tolerance = (capacity − cost) / rate` ahead of now. For a request rate
/// with bursts, cost 1 and capacity = burst. A leaky bucket read this way
/// holds `capacity − max(0, tat − now) × rate` units at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gcra {
    pub interval: i64,
    pub tolerance: i64,
}

/// The outcome of one [`Gcra::step`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// The stored value afterwards.
    pub tat: i64,
    /// How long to wait before sending (≤ 0: at once). When it exceeds the
    /// step's `max_wait`, nothing was reserved.
    pub wait: i64,
}

fn micros(secs: f64) -> i64 {
    // Saturating: a float-to-int `as` clamps, and NaN was excluded earlier.
    (secs * 1e6).round() as i64
}

impl Gcra {
    /// `rate` requests per second, `burst` of them back to back (at least
    /// 1). `None`: no limit (zero, negative, NaN or infinite rate).
    pub fn per_request(rate: f64, burst: f64) -> Option<Self> {
        let burst = if burst.is_finite() {
            burst.max(1.0)
        } else {
            1.0
        };
        Self::for_cost(1.0, burst, rate)
    }

    /// A request costing `cost` from a bucket of `capacity` refilled at
    /// `rate` per second; a cost above the capacity counts as the capacity
    /// (it could never be paid otherwise). `None`: no usable rate.
    pub fn for_cost(cost: f64, capacity: f64, rate: f64) -> Option<Self> {
        if !(rate.is_finite() && rate > 0.0 && capacity.is_finite() && capacity >= 0.0) {
            return None;
        }
        let cost = if cost.is_finite() { cost.max(0.0) } else { 0.0 }.min(capacity);
        Some(Self {
            interval: micros(cost / rate),
            tolerance: micros((capacity - cost) / rate),
        })
    }

    /// Units of the budget as microseconds of refill (for refunds).
    pub fn units(units: f64, rate: f64) -> i64 {
        if rate.is_finite() && rate > 0.0 && units.is_finite() {
            micros(units / rate)
        } else {
            0
        }
    }

    /// One step at `now` from the stored `tat` (`None`: never used). First
    /// `refund` (microseconds of refill given back by an earlier request that
    /// cost less than it reserved) is subtracted; then the request is
    /// reserved if its wait is at most `max_wait`, else `tat` keeps its
    /// (refunded) value. The SQL of [`take`] does exactly this.
    pub fn step(self, tat: Option<i64>, now: i64, refund: i64, max_wait: i64) -> Step {
        let Some(tat) = tat else {
            // A budget never used is full.
            return Step {
                tat: now.saturating_add(self.interval),
                wait: -self.tolerance,
            };
        };
        let tat = tat.saturating_sub(refund.max(0));
        let base = tat.max(now);
        let wait = base - now - self.tolerance;
        if wait <= max_wait {
            Step {
                tat: base.saturating_add(self.interval),
                wait,
            }
        } else {
            Step { tat, wait }
        }
    }
}

/// The current time in microseconds as the SQL below sees it: on
/// PostgreSQL the statement's start on the database's clock (one value
/// for the whole statement, the same clock for every node); on SQLite
/// parameter `$param`, bound to this process's clock.
fn budget_now(backend: Backend, param: usize) -> String {
    match backend {
        Backend::Postgres => "CAST(EXTRACT(EPOCH FROM now()) * 1000000 AS BIGINT)".into(),
        Backend::Sqlite => format!("${param}"),
    }
}

fn greatest(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => "GREATEST",
        Backend::Sqlite => "MAX",
    }
}

/// What [`take`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Taken {
    /// The wait in microseconds: ≤ 0 means send now; above the `max_wait`
    /// asked for means nothing was reserved.
    pub wait: i64,
    /// How far the budget's requests have moved so far, this step
    /// included (µs of refill; `rate_budgets.refunded`): the refunds of
    /// requests that ran for less than they reserved, less the pushes of
    /// [`settle`]'s floor. Its growth after a reservation is how much
    /// sooner that reservation's request may go.
    pub refunded: i64,
    /// Orders the figures of the statements on the budget
    /// (`rate_budgets.version`): a larger one is newer.
    pub version: i64,
}

/// `rate_budgets.version` after a statement: above its last value, and at
/// least now (a table emptied by a crash starts above what came before).
fn next_version(greatest: &str, now: &str) -> String {
    format!("{greatest}(rate_budgets.version + 1, {now})")
}

/// [`Gcra::step`] on budget `key`, atomically (one statement: concurrent
/// takers on any node queue up behind each other), after giving back
/// `refund`, of which `counted` moves the requests waiting for their slot
/// ([`Taken::refunded`]: the refunds of requests that ran for less than
/// they reserved; not points given back by a request never sent, which was
/// behind them). Nothing is reserved when the wait exceeds `max_wait` (the
/// refund is applied all the same).
pub async fn take(
    db: &Db,
    key: &str,
    gcra: Gcra,
    (refund, counted): (i64, i64),
    max_wait: i64,
) -> Result<Taken, DbError> {
    let now = budget_now(db.backend(), 7);
    let greatest = greatest(db.backend());
    // $1 key, $2 interval, $3 tolerance, $4 refund, $5 max_wait, $6
    // counted, ($7 now).
    // Every SET expression reads the row as it was before the update.
    let base = format!("{greatest}(rate_budgets.tat - $4, {now})");
    let wait = format!("({base} - {now} - $3)");
    let version = next_version(greatest, &now);
    let sql = sql!(
        "INSERT INTO rate_budgets (key, tat, last_wait, refunded, version)
         VALUES ($1, {now} + $2, 0 - $3, $6, {now})
         ON CONFLICT (key) DO UPDATE SET
           last_wait = {wait},
           tat = CASE WHEN {wait} <= $5 THEN {base} + $2 ELSE rate_budgets.tat - $4 END,
           refunded = rate_budgets.refunded + $6,
           version = {version}
         RETURNING last_wait, refunded, version"
    );
    let mut query = sqlx::query(sql)
        .bind(key)
        .bind(gcra.interval)
        .bind(gcra.tolerance)
        .bind(refund.max(0))
        .bind(max_wait)
        .bind(counted.clamp(0, refund.max(0)));
    if db.backend() == Backend::Sqlite {
        query = query.bind(now_micros());
    }
    let row = query.fetch_one(db.pool()).await?;
    Ok(Taken {
        wait: row.try_get("last_wait")?,
        refunded: row.try_get("refunded")?,
        version: row.try_get("version")?,
    })
}

/// Gives back `refund` microseconds of refill (`counted` of it moving the
/// waiting requests, as in [`take`]), then makes sure the budget is used up
/// for at least `floor` microseconds from now: after a 429 with
/// `Retry-After` (nobody sends before it has passed), or when the server
/// reports less left than the budget assumes; what the floor pushes the
/// budget out by moves the waiting requests back as much. Never moves the
/// budget below what the server reported. Returns [`Taken::refunded`] and
/// [`Taken::version`] as they now stand.
pub async fn settle(
    db: &Db,
    key: &str,
    (refund, counted): (i64, i64),
    floor: i64,
) -> Result<(i64, i64), DbError> {
    let now = budget_now(db.backend(), 5);
    let greatest = greatest(db.backend());
    // $1 key, $2 refund, $3 floor, $4 counted, ($5 now).
    let version = next_version(greatest, &now);
    let sql = sql!(
        "INSERT INTO rate_budgets (key, tat, last_wait, refunded, version)
         VALUES ($1, {now} + $3, 0, 0, {now})
         ON CONFLICT (key) DO UPDATE SET
           tat = {greatest}(rate_budgets.tat - $2, {now} + $3),
           refunded = rate_budgets.refunded + $4
             - {greatest}(0, {now} + $3 - {greatest}(rate_budgets.tat - $2, {now})),
           version = {version}
         RETURNING refunded, version"
    );
    let mut query = sqlx::query(sql)
        .bind(key)
        .bind(refund.max(0))
        .bind(floor)
        .bind(counted.clamp(0, refund.max(0)));
    if db.backend() == Backend::Sqlite {
        query = query.bind(now_micros());
    }
    let row = query.fetch_one(db.pool()).await?;
    Ok((row.try_get("refunded")?, row.try_get("version")?))
}

/// What [`first_call`] found for a cost bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FirstCall {
    /// Described (by [`describe`]): its size and restore rate per second.
    Known { capacity: f64, restore_rate: f64 },
    /// Nobody has described the bucket and no first call is out: the
    /// caller's call is the first (it reserves nothing; its answer
    /// describes the bucket). Claimed for the `claim` µs asked for.
    Claimed,
    /// Another caller's first call is out for at most this long still (µs):
    /// wait for its answer.
    Wait(i64),
}

/// For a bucket whose size only the server's answers tell
/// (`capacity` and `restore_rate` of `rate_budgets`): its description if
/// known, else one claim of the first call at a time, for `claim` µs, by
/// one atomic statement (concurrent callers on any node see one claim). A
/// claim not followed by [`describe`] (the call failed) lapses after
/// `claim`, and the next caller claims again.
pub async fn first_call(db: &Db, key: &str, claim: i64) -> Result<FirstCall, DbError> {
    let now = budget_now(db.backend(), 3);
    // $1 key, $2 claim, ($3 now). A row inserted here has tat 0: full.
    let sql = sql!(
        "INSERT INTO rate_budgets (key, tat, last_wait, first_until) VALUES ($1, 0, 0, {now} + $2)
         ON CONFLICT (key) DO UPDATE SET
           first_until = CASE
             WHEN rate_budgets.capacity IS NULL AND COALESCE(rate_budgets.first_until, 0) <= {now}
             THEN {now} + $2 ELSE rate_budgets.first_until END
         RETURNING capacity, restore_rate, first_until, {now} AS now"
    );
    let mut query = sqlx::query(sql).bind(key).bind(claim);
    if db.backend() == Backend::Sqlite {
        query = query.bind(now_micros());
    }
    let row = query.fetch_one(db.pool()).await?;
    let capacity: Option<f64> = row.try_get("capacity")?;
    let restore_rate: Option<f64> = row.try_get("restore_rate")?;
    let until: Option<i64> = row.try_get("first_until")?;
    let now: i64 = row.try_get("now")?;
    Ok(first_call_outcome(
        capacity,
        restore_rate,
        until,
        now,
        claim,
    ))
}

/// [`first_call`]'s answer from the row it left. (A claim made by another
/// caller in the same microsecond reads as this caller's: both send a
/// first call, as nodes did before the claim existed.)
fn first_call_outcome(
    capacity: Option<f64>,
    restore_rate: Option<f64>,
    until: Option<i64>,
    now: i64,
    claim: i64,
) -> FirstCall {
    match (capacity, restore_rate, until) {
        (Some(capacity), Some(restore_rate), _) => FirstCall::Known {
            capacity,
            restore_rate,
        },
        (_, _, Some(until)) if until == now.saturating_add(claim) => FirstCall::Claimed,
        (_, _, Some(until)) => FirstCall::Wait((until - now).max(0)),
        // Not reachable (the statement sets first_until); claim again.
        (_, _, None) => FirstCall::Claimed,
    }
}

/// Ends a first-call claim whose call is over without describing the
/// bucket (it failed): the next caller claims at once rather than wait for
/// the claim to lapse.
pub async fn end_first_call(db: &Db, key: &str) -> Result<(), DbError> {
    sqlx::query("UPDATE rate_budgets SET first_until = NULL WHERE key = $1 AND capacity IS NULL")
        .bind(key)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// Records the bucket's size and restore rate as the server described
/// them (and ends any first-call claim).
pub async fn describe(db: &Db, key: &str, capacity: f64, restore_rate: f64) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO rate_budgets (key, tat, last_wait, capacity, restore_rate) VALUES ($1, 0, 0, $2, $3)
         ON CONFLICT (key) DO UPDATE SET capacity = $2, restore_rate = $3, first_until = NULL",
    )
        .bind(key)
        .bind(capacity)
        .bind(restore_rate)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// The stored theoretical arrival time of `key` and the database's now
/// (tests and diagnostics).
pub async fn state(db: &Db, key: &str) -> Result<(Option<i64>, i64), DbError> {
    let now = match db.backend() {
        Backend::Postgres => budget_now(db.backend(), 0),
        Backend::Sqlite => now_micros().to_string(),
    };
    let sql = sql!("SELECT {now} AS now, (SELECT tat FROM rate_budgets WHERE key = $1) AS tat");
    let row = sqlx::query(sql).bind(key).fetch_one(db.pool()).await?;
    Ok((row.try_get("tat")?, row.try_get("now")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000;

    #[test]
    fn parameters() {
        // Deposco: 4 req/s, burst 2 → 250 ms apart, one request ahead.
        assert_eq!(
            Gcra::per_request(4.0, 2.0),
            Some(Gcra {
                interval: 250_000,
                tolerance: 250_000
            })
        );
        // Shopify: 100 points from 1000 restored at 50/s.
        assert_eq!(
            Gcra::for_cost(100.0, 1000.0, 50.0),
            Some(Gcra {
                interval: 2 * S,
                tolerance: 18 * S
            })
        );
        // More than the bucket holds counts as the whole bucket.
        assert_eq!(
            Gcra::for_cost(5000.0, 1000.0, 100.0),
            Some(Gcra {
                interval: 10 * S,
                tolerance: 0
            })
        );
        for rate in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert_eq!(Gcra::per_request(rate, 2.0), None, "{rate}");
        }
        assert_eq!(
            Gcra::per_request(2.0, f64::NAN).map(|g| g.tolerance),
            Some(0)
        );
        assert_eq!(Gcra::per_request(2.0, 0.0).map(|g| g.tolerance), Some(0));
        assert_eq!(Gcra::units(150.0, 100.0), 1_500_000);
        assert_eq!(Gcra::units(1.0, 0.0), 0);
    }

    /// (stored tat, now, refund, max_wait) → (tat after, wait).
    #[test]
    fn steps() {
        let g = Gcra {
            interval: 250,
            tolerance: 500,
        };
        let max = i64::MAX;
        #[rustfmt::skip]
        type Row = (Option<i64>, i64, i64, i64, i64, i64);
        let table: &[Row] = &[
            // never used: full, go now
            (None, 1000, 0, max, 1250, -500),
            // idle for long: as if new
            (Some(10), 1000, 0, max, 1250, -500),
            // within the burst: go now, one interval further
            (Some(1250), 1000, 0, max, 1500, -250),
            (Some(1500), 1000, 0, max, 1750, 0),
            // burst used up: wait for the excess
            (Some(1750), 1000, 0, max, 2000, 250),
            (Some(4000), 1000, 0, max, 4250, 2500),
            // a refund comes off before the step
            (Some(1750), 1000, 500, max, 1500, -250),
            // a refund cannot make the budget more than full
            (Some(1100), 1000, 900, max, 1250, -500),
            // over max_wait: nothing reserved, the refund kept
            (Some(4000), 1000, 0, 2000, 4000, 2500),
            (Some(4000), 1000, 100, 2000, 3900, 2400),
            // exactly max_wait is fine
            (Some(3500), 1000, 0, 2000, 3750, 2000),
            // negative refunds are ignored
            (Some(1750), 1000, -50, max, 2000, 250),
        ];
        for &(tat, now, refund, max_wait, want_tat, want_wait) in table {
            assert_eq!(
                g.step(tat, now, refund, max_wait),
                Step {
                    tat: want_tat,
                    wait: want_wait
                },
                "{tat:?} {now} {refund} {max_wait}"
            );
        }
    }

    /// (capacity, rate, first_until, now, claim) → outcome.
    #[test]
    fn first_call_outcomes() {
        let known = FirstCall::Known {
            capacity: 2000.0,
            restore_rate: 100.0,
        };
        type Row = (Option<f64>, Option<f64>, Option<i64>, i64, FirstCall);
        #[rustfmt::skip]
        let table: &[Row] = &[
            // described: known, whatever the claim
            (Some(2000.0), Some(100.0), None, 10, known),
            (Some(2000.0), Some(100.0), Some(15), 10, known),
            // the statement set the claim to now + claim: ours
            (None, None, Some(2010), 10, FirstCall::Claimed),
            // someone else's claim, 1,500 µs to go
            (None, None, Some(1510), 10, FirstCall::Wait(1500)),
            // half described (cannot happen): not known
            (Some(2000.0), None, Some(1510), 10, FirstCall::Wait(1500)),
        ];
        for &(capacity, rate, until, now, want) in table {
            assert_eq!(
                first_call_outcome(capacity, rate, until, now, 2000),
                want,
                "{capacity:?} {rate:?} {until:?} {now}"
            );
        }
    }

    /// Whatever the arrival pattern, the reserved requests never exceed
    /// `burst + rate × window` in any window (checked on send times).
    #[test]
    fn never_more_than_burst_plus_rate() {
        let g = Gcra::per_request(10.0, 3.0).unwrap();
        let mut tat = None;
        let mut sends = Vec::new();
        let mut now = 0;
        for i in 0..500i64 {
            // Bursty arrivals: many at once, then gaps.
            now += if i % 50 == 0 { 2 * S } else { (i % 7) * 3_000 };
            let step = g.step(tat, now, 0, i64::MAX);
            tat = Some(step.tat);
            sends.push(now + step.wait.max(0));
        }
        sends.sort_unstable();
        for (i, &t) in sends.iter().enumerate() {
            for window in [S / 10, S / 2, S, 5 * S] {
                let n = sends[i..].iter().take_while(|&&u| u < t + window).count() as i64;
                assert!(n <= 3 + 10 * window / S, "{n} in {window} µs from {t}");
            }
        }
    }
}
