//! Guessing limits: failed sign-ins per client address and per email, and
//! failed bearer tokens per client address (the client is the TCP peer, or
//! the address a trusted reverse proxy forwarded, see [`crate::client`]). A
//! few failures are free; each one past them locks the key for twice as long
//! as the last, up to 15 minutes; a locked key is answered 429
//! `too_many_attempts` + `Retry-After` without checking anything, the same
//! for known and unknown emails.
//!
//! - sign-in: 5 free, then 1, 2, 4, 8 minutes, then 15 (from the 10th
//!   failure on);
//! - bearer token: 20 free, then 1 s, 2 s, … 512 s, then 15 minutes (from
//!   the 31st failure on).
//!
//! Failures are forgotten 15 minutes after the last one (or after the lock,
//! when later). A sign-in holds its keys while its password is checked: at
//! most as many checks run at once for a key as failures it has left free
//! (at least one), so concurrent guesses cannot overrun the free ones.
//!
//! The state is kept in memory, per node: behind a load balancer spreading
//! one client over N nodes, it gets up to N times the free failures.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// How fast a kind of failure locks.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Failures without a lock.
    pub free: u32,
    /// The lock after the first failure past the free ones; doubled by each
    /// further failure.
    pub first: Duration,
    pub max: Duration,
}

/// Sign-ins (per address and per email).
pub const SIGN_IN: Policy = Policy {
    free: 5,
    first: Duration::from_secs(60),
    max: Duration::from_secs(15 * 60),
};

/// Bearer tokens (per address).
pub const BEARER: Policy = Policy {
    free: 20,
    first: Duration::from_secs(1),
    max: Duration::from_secs(15 * 60),
};

/// Failures are forgotten this long after the last one (or the lock's end).
const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);

/// Keys tracked at most, sign-ins and bearer tokens each (~100 bytes a
/// key). Past it, a new sign-in key is refused (429) until old ones are
/// forgotten (a failed sign-in costs an Argon2id check, so filling it takes
/// longer than forgetting); a new bearer key goes untracked (guessing a
/// 256-bit token is hopeless anyway), so a flood of bearer failures from many
/// addresses cannot lock out sign-ins.
const MAX_KEYS: usize = 100_000;

/// How often a full map is pruned at most.
const PRUNE_EVERY: Duration = Duration::from_secs(1);

/// What is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    SignInClient(IpAddr),
    /// A keyed hash of the normalised email: the map holds no emails.
    SignInEmail(u64),
    BearerClient(IpAddr),
}

#[derive(Debug)]
struct Entry {
    failures: u32,
    /// Attempts being checked now.
    pending: u32,
    locked_until: Option<Instant>,
    last_failure: Instant,
}

impl Entry {
    fn new(now: Instant) -> Self {
        Self {
            failures: 0,
            pending: 0,
            locked_until: None,
            last_failure: now,
        }
    }

    fn stale(&self, now: Instant) -> bool {
        let since = self
            .locked_until
            .map_or(self.last_failure, |l| l.max(self.last_failure));
        self.pending == 0 && now >= since + FORGET_AFTER
    }

    /// None when an attempt may go ahead, else how long to wait.
    fn refusal(&self, policy: Policy, now: Instant) -> Option<Duration> {
        if let Some(until) = self.locked_until
            && until > now
        {
            return Some(until - now);
        }
        // Attempts in flight may not overrun the free failures left.
        if self.pending > 0 && self.failures + self.pending >= policy.free {
            return Some(Duration::from_secs(1));
        }
        None
    }

    /// Counts a failure; the new lock when it makes one.
    fn fail(&mut self, policy: Policy, now: Instant) -> Option<Duration> {
        self.failures = self.failures.saturating_add(1);
        self.last_failure = now;
        let past = self.failures.checked_sub(policy.free).filter(|n| *n > 0)?;
        let lock = policy
            .first
            .checked_mul(1u32.checked_shl(past - 1).unwrap_or(u32::MAX))
            .map_or(policy.max, |d| d.min(policy.max));
        self.locked_until = Some(now + lock);
        Some(lock)
    }
}

#[derive(Default)]
struct Inner {
    sign_in: Table,
    bearer: Table,
}

impl Inner {
    fn table(&mut self, key: Key) -> &mut Table {
        match key {
            Key::SignInClient(_) | Key::SignInEmail(_) => &mut self.sign_in,
            Key::BearerClient(_) => &mut self.bearer,
        }
    }

    fn entry(&mut self, key: Key, now: Instant) -> Option<&mut Entry> {
        self.table(key).entry(key, now)
    }

    fn live(&mut self, key: Key, now: Instant) -> Option<&Entry> {
        self.table(key).live(key, now)
    }

    fn release(&mut self, key: Key, now: Instant) -> Option<&mut Entry> {
        self.table(key).release(key, now)
    }
}

#[derive(Default)]
struct Table {
    entries: HashMap<Key, Entry>,
    last_prune: Option<Instant>,
}

impl Table {
    /// The entry of `key`, fresh when forgotten; None when the map is full.
    fn entry(&mut self, key: Key, now: Instant) -> Option<&mut Entry> {
        if !self.entries.contains_key(&key) && self.entries.len() >= MAX_KEYS {
            if self
                .last_prune
                .is_none_or(|p| now.duration_since(p) >= PRUNE_EVERY)
            {
                self.last_prune = Some(now);
                self.entries.retain(|_, e| !e.stale(now));
                if self.entries.len() >= MAX_KEYS {
                    tracing::warn!(
                        keys = MAX_KEYS,
                        "too many clients or emails with failed attempts are tracked; new sign-in keys are refused (429), new bearer keys go untracked, until old ones are forgotten"
                    );
                }
            }
            if self.entries.len() >= MAX_KEYS {
                return None;
            }
        }
        let e = self.entries.entry(key).or_insert_with(|| Entry::new(now));
        if e.stale(now) {
            *e = Entry::new(now);
        }
        Some(e)
    }

    /// The entry of `key` unless forgotten.
    fn live(&self, key: Key, now: Instant) -> Option<&Entry> {
        self.entries.get(&key).filter(|e| !e.stale(now))
    }

    /// One attempt of `key` checked: its entry, unless nothing is left to
    /// remember.
    fn release(&mut self, key: Key, now: Instant) -> Option<&mut Entry> {
        let e = self.entries.get_mut(&key)?;
        e.pending = e.pending.saturating_sub(1);
        if e.failures == 0 && e.pending == 0 {
            self.entries.remove(&key);
            return None;
        }
        self.entries.get_mut(&key).filter(|e| !e.stale(now))
    }
}

/// The guessing limits of one server.
#[derive(Clone, Default)]
pub struct Throttle {
    inner: Arc<Mutex<Inner>>,
    emails: std::hash::RandomState,
}

/// A refused attempt: wait this long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooMany {
    pub retry_after: Duration,
}

impl TooMany {
    /// `Retry-After` in whole seconds (at least 1).
    pub fn seconds(&self) -> u64 {
        self.retry_after.as_secs_f64().ceil().max(1.0) as u64
    }
}

impl Throttle {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A sign-in from `client` for `email`: the attempt (a failure unless
    /// told otherwise), or how long to wait.
    pub fn sign_in(&self, client: IpAddr, email: &str) -> Result<Attempt, TooMany> {
        let email = email.trim().to_lowercase();
        let keys = [
            Key::SignInClient(client),
            Key::SignInEmail(self.emails.hash_one(&email)),
        ];
        let now = Instant::now();
        let mut inner = self.lock();
        let wait = keys
            .iter()
            .filter_map(|k| inner.live(*k, now)?.refusal(SIGN_IN, now))
            .max();
        if let Some(retry_after) = wait {
            return Err(TooMany { retry_after });
        }
        for (i, key) in keys.iter().enumerate() {
            match inner.entry(*key, now) {
                Some(e) => e.pending += 1,
                None => {
                    for k in &keys[..i] {
                        inner.release(*k, now);
                    }
                    return Err(TooMany {
                        retry_after: Duration::from_secs(60),
                    });
                }
            }
        }
        Ok(Attempt {
            throttle: self.clone(),
            keys,
            client,
            // For the log only (the email is the client's to choose).
            email: email.chars().take(254).collect(),
            done: false,
        })
    }

    /// Before a bearer token is looked up: how long to wait when `client`
    /// is locked out.
    pub fn bearer_check(&self, client: IpAddr) -> Result<(), TooMany> {
        let now = Instant::now();
        let mut inner = self.lock();
        match inner.live(Key::BearerClient(client), now) {
            Some(e) => match e.refusal(BEARER, now) {
                Some(retry_after) => Err(TooMany { retry_after }),
                None => Ok(()),
            },
            None => Ok(()),
        }
    }

    /// A bearer token from `client` matched nothing.
    pub fn bearer_failed(&self, client: IpAddr) {
        let now = Instant::now();
        let mut inner = self.lock();
        let Some(e) = inner.entry(Key::BearerClient(client), now) else {
            return;
        };
        if let Some(lock) = e.fail(BEARER, now) {
            let failures = e.failures;
            tracing::warn!(
                client = %client,
                failures,
                locked_seconds = lock.as_secs(),
                "failed bearer tokens: client locked out (429 too_many_attempts)"
            );
        }
    }
}

/// A sign-in being checked. Dropped without [`Attempt::succeeded`] or
/// [`Attempt::abandoned`], it counts as a failure (also when the client
/// hangs up before the answer).
pub struct Attempt {
    throttle: Throttle,
    keys: [Key; 2],
    client: IpAddr,
    email: String,
    done: bool,
}

impl Attempt {
    /// The password was right: the email's failures are forgotten (the
    /// address's are not, or one account would reset guesses at others).
    pub fn succeeded(mut self) {
        self.done = true;
        let now = Instant::now();
        let mut inner = self.throttle.lock();
        for key in self.keys {
            let reset = matches!(key, Key::SignInEmail(_));
            if let Some(e) = inner.release(key, now)
                && reset
            {
                e.failures = 0;
                e.locked_until = None;
            }
        }
    }

    /// Not checked (the server was busy or the database unavailable): no
    /// failure counted.
    pub fn abandoned(mut self) {
        self.done = true;
        let now = Instant::now();
        let mut inner = self.throttle.lock();
        for key in self.keys {
            inner.release(key, now);
        }
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let now = Instant::now();
        let mut inner = self.throttle.lock();
        for key in self.keys {
            let Some(e) = inner.entry(key, now) else {
                continue;
            };
            e.pending = e.pending.saturating_sub(1);
            if let Some(lock) = e.fail(SIGN_IN, now) {
                let failures = e.failures;
                match key {
                    Key::SignInClient(_) => tracing::warn!(
                        client = %self.client,
                        failures,
                        locked_seconds = lock.as_secs(),
                        "failed sign-ins: client locked out (429 too_many_attempts)"
                    ),
                    _ => tracing::warn!(
                        email = %self.email,
                        client = %self.client,
                        failures,
                        locked_seconds = lock.as_secs(),
                        "failed sign-ins: email locked out (429 too_many_attempts)"
                    ),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn locks_double_up_to_the_cap() {
        let now = Instant::now();
        let mut e = Entry::new(now);
        let locks: Vec<Option<u64>> = (0..12)
            .map(|_| e.fail(SIGN_IN, now).map(|d| d.as_secs()))
            .collect();
        assert_eq!(
            locks,
            [
                None,
                None,
                None,
                None,
                None,
                Some(60),
                Some(120),
                Some(240),
                Some(480),
                Some(900),
                Some(900),
                Some(900)
            ]
        );
        let mut e = Entry::new(now);
        let bearer: Vec<u64> = (0..60)
            .filter_map(|_| e.fail(BEARER, now).map(|d| d.as_secs()))
            .collect();
        assert_eq!(&bearer[..3], &[1, 2, 4]);
        // The contract: at the latest after 50 failures, a 15-minute lock.
        assert_eq!(bearer[50 - 21], 900);
        assert_eq!(*bearer.last().unwrap(), 900);
        // Large counts do not overflow.
        e.failures = u32::MAX - 1;
        assert_eq!(e.fail(BEARER, now), Some(BEARER.max));
    }

    #[test]
    fn failures_are_forgotten_after_a_quiet_while() {
        let now = Instant::now();
        let mut e = Entry::new(now);
        for _ in 0..6 {
            e.fail(SIGN_IN, now);
        }
        assert!(e.refusal(SIGN_IN, now).is_some());
        assert!(!e.stale(now + Duration::from_secs(60) + FORGET_AFTER - Duration::from_secs(1)));
        assert!(e.stale(now + Duration::from_secs(60) + FORGET_AFTER));
    }

    #[test]
    fn sign_ins_lock_by_client_and_by_email_alike() {
        let t = Throttle::default();
        // Five failures from one client, each for another email, then its
        // sixth locks it; another client is not affected.
        for i in 0..6 {
            drop(
                t.sign_in(ip("10.0.0.1"), &format!("u{i}@example.com"))
                    .unwrap(),
            );
        }
        let refused = t.sign_in(ip("10.0.0.1"), "new@example.com").err().unwrap();
        assert_eq!(refused.seconds(), 60);
        t.sign_in(ip("10.0.0.2"), "new@example.com")
            .unwrap()
            .succeeded();
        // Six failures for one email from six clients lock the email,
        // whatever its case and spacing.
        for i in 0..6 {
            drop(
                t.sign_in(ip(&format!("10.0.1.{i}")), "Ops@Example.com")
                    .unwrap(),
            );
        }
        assert!(t.sign_in(ip("10.0.2.1"), " ops@example.com ").is_err());
        assert!(t.sign_in(ip("10.0.2.1"), "other@example.com").is_ok());
    }

    #[test]
    fn attempts_in_flight_cannot_overrun_the_free_failures() {
        let t = Throttle::default();
        let held: Vec<Attempt> = (0..5)
            .map(|i| {
                t.sign_in(ip("10.0.0.1"), &format!("u{i}@example.com"))
                    .unwrap()
            })
            .collect();
        let refused = t.sign_in(ip("10.0.0.1"), "u9@example.com").err().unwrap();
        assert_eq!(refused.seconds(), 1);
        // Abandoned attempts count nothing and give their place back.
        for a in held {
            a.abandoned();
        }
        let a = t.sign_in(ip("10.0.0.1"), "u9@example.com").unwrap();
        a.succeeded();
        assert!(
            t.lock().sign_in.entries.is_empty(),
            "nothing left to remember"
        );
    }

    #[test]
    fn a_success_forgets_the_emails_failures_not_the_clients() {
        let t = Throttle::default();
        for _ in 0..4 {
            drop(t.sign_in(ip("10.0.0.1"), "ops@example.com").unwrap());
        }
        t.sign_in(ip("10.0.0.1"), "ops@example.com")
            .unwrap()
            .succeeded();
        // The email starts over; the client has one free failure left.
        drop(t.sign_in(ip("10.0.0.1"), "ops@example.com").unwrap());
        drop(t.sign_in(ip("10.0.0.1"), "ops@example.com").unwrap());
        assert!(t.sign_in(ip("10.0.0.1"), "x@example.com").is_err());
        assert!(t.sign_in(ip("10.0.0.2"), "ops@example.com").is_ok());
    }

    #[test]
    fn a_full_bearer_table_does_not_lock_out_sign_ins() {
        let t = Throttle::default();
        for n in 0..MAX_KEYS as u32 {
            t.bearer_failed(IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + n)));
        }
        // A new client's bearer failures go untracked; its sign-ins are
        // tracked as ever.
        t.bearer_failed(ip("192.0.2.1"));
        assert!(t.bearer_check(ip("192.0.2.1")).is_ok());
        for _ in 0..6 {
            drop(t.sign_in(ip("192.0.2.1"), "ops@example.com").unwrap());
        }
        assert!(t.sign_in(ip("192.0.2.1"), "ops@example.com").is_err());
    }

    #[test]
    fn bearer_failures_lock_the_client() {
        let t = Throttle::default();
        for _ in 0..20 {
            assert!(t.bearer_check(ip("10.0.0.1")).is_ok());
            t.bearer_failed(ip("10.0.0.1"));
        }
        assert!(t.bearer_check(ip("10.0.0.1")).is_ok());
        t.bearer_failed(ip("10.0.0.1"));
        assert_eq!(t.bearer_check(ip("10.0.0.1")).err().unwrap().seconds(), 1);
        assert!(t.bearer_check(ip("10.0.0.2")).is_ok());
    }
}
