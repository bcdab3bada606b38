//! The edge's protection limits, checked before admission does any work (ARCHITECTURE "order of
//! checks", step 2), after Kamailio's `pike` (request rate per source) and `htable` lockouts:
//!
//! - new INVITE/REGISTER/OPTIONS transactions per source address and for the whole edge;
//! - digest failure budgets per source address and per user: a source that spends its budget
//!   is locked out (its credentials are no longer verified) for the lockout period; a user whose
//!   budget is spent (a guesser spread over many addresses) is locked out for every source that
//!   has not authenticated as that user before, so its real owner keeps working.
//!
//! The buckets are governor's GCRA limiters (generic over the clock so tests run on a virtual
//! one); only the lockout and trust tables are ours, bounded and pruned.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock, Reference};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

use crate::config::{LimitAction, SipLimits};

/// How long a successful authentication keeps its source trusted for its user.
const TRUST: Duration = Duration::from_secs(24 * 3600);
/// Entries a lockout or trust table holds before expired ones are pruned; beyond twice this,
/// the oldest half goes (an attacker with many addresses cannot grow memory without bound).
const TABLE_SOFT_LIMIT: usize = 10_000;
/// User keys are cut to this many characters (the username comes from the wire).
const MAX_USER_KEY: usize = 160;

type Keyed<K, C> = RateLimiter<K, DefaultKeyedStateStore<K>, C, NoOpMiddleware<<C as Clock>::Instant>>;
type Direct<C> = RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// Why a request was refused, for the response, the log and `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    pub reason: &'static str,
    pub action: LimitAction,
    /// For `Retry-After` (whole seconds, at least 1).
    pub retry_after_secs: u64,
}

pub struct EdgeLimits<C: Clock = DefaultClock> {
    config: SipLimits,
    clock: C,
    per_source: Keyed<IpAddr, C>,
    global: Direct<C>,
    auth_per_source: Keyed<IpAddr, C>,
    auth_per_user: Keyed<String, C>,
    locked_sources: Mutex<HashMap<IpAddr, C::Instant>>,
    locked_users: Mutex<HashMap<String, C::Instant>>,
    /// (user, source) → until when the source is trusted for the user.
    trusted: Mutex<HashMap<(String, IpAddr), C::Instant>>,
}

impl EdgeLimits<DefaultClock> {
    pub fn new(config: SipLimits) -> Self {
        Self::with_clock(config, DefaultClock::default())
    }
}

fn nonzero(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

/// `n` per `window`, all of it available at once.
fn budget(n: u32, window: Duration) -> Quota {
    let n = nonzero(n);
    Quota::with_period(window / n.get()).unwrap_or_else(|| Quota::per_second(n)).allow_burst(n)
}

impl<C: Clock + Clone> EdgeLimits<C> {
    pub fn with_clock(config: SipLimits, clock: C) -> Self {
        let window = config.auth_failure_window;
        EdgeLimits {
            per_source: RateLimiter::new(
                Quota::per_second(nonzero(config.requests_per_source)),
                DefaultKeyedStateStore::default(),
                clock.clone(),
            ),
            global: RateLimiter::new(
                Quota::per_second(nonzero(config.requests_global)),
                InMemoryState::default(),
                clock.clone(),
            ),
            auth_per_source: RateLimiter::new(
                budget(config.auth_failures_per_source, window),
                DefaultKeyedStateStore::default(),
                clock.clone(),
            ),
            auth_per_user: RateLimiter::new(
                budget(config.auth_failures_per_user, window),
                DefaultKeyedStateStore::default(),
                clock.clone(),
            ),
            locked_sources: Mutex::new(HashMap::new()),
            locked_users: Mutex::new(HashMap::new()),
            trusted: Mutex::new(HashMap::new()),
            clock,
            config,
        }
    }

    /// A new INVITE, REGISTER or OPTIONS transaction from `source`.
    pub fn admit_request(&self, source: IpAddr) -> Result<(), Refused> {
        let flood = |reason| Refused { reason, action: self.config.flood_action, retry_after_secs: 1 };
        // The source's own bucket first, so one noisy source cannot drain the global one.
        self.per_source.check_key(&source).map_err(|_| flood("rate_limited_source"))?;
        self.global.check().map_err(|_| flood("rate_limited_global"))?;
        Ok(())
    }

    /// Before credentials from `source` for `user` are verified (or a challenge is sent).
    pub fn auth_allowed(&self, source: IpAddr, user: Option<&str>) -> Result<(), Refused> {
        let now = self.clock.now();
        if let Some(until) = locked(&self.locked_sources, &source, now) {
            return Err(self.lockout("auth_locked_source", until, now));
        }
        if let Some(user) = user {
            let key = user_key(user);
            if let Some(until) = locked(&self.locked_users, &key, now)
                && !self.is_trusted(&key, source, now)
            {
                return Err(self.lockout("auth_locked_user", until, now));
            }
        }
        Ok(())
    }

    /// Credentials failed (wrong password, unknown user, bad nonce, replay…).
    pub fn auth_failed(&self, source: IpAddr, user: &str) {
        let now = self.clock.now();
        let until = now + self.config.auth_lockout.into();
        if self.auth_per_source.check_key(&source).is_err() {
            lock(&self.locked_sources, source, until, now);
            tracing::warn!(%source, "digest failures: source locked out");
            metrics::counter!("voxbridge_sip_auth_lockouts_total", "kind" => "source").increment(1);
        }
        let key = user_key(user);
        if self.auth_per_user.check_key(&key).is_err() {
            tracing::warn!(user = %key, "digest failures: user locked out for untrusted sources");
            lock(&self.locked_users, key, until, now);
            metrics::counter!("voxbridge_sip_auth_lockouts_total", "kind" => "user").increment(1);
        }
        metrics::counter!("voxbridge_sip_auth_failures_total").increment(1);
    }

    /// Credentials verified: the source is trusted for the user from now on.
    pub fn auth_succeeded(&self, source: IpAddr, user: &str) {
        let now = self.clock.now();
        lock(&self.trusted, (user_key(user), source), now + TRUST.into(), now);
    }

    /// Drops state that no longer limits anything; call it now and then.
    pub fn housekeeping(&self) {
        self.per_source.retain_recent();
        self.auth_per_source.retain_recent();
        self.auth_per_user.retain_recent();
        let now = self.clock.now();
        prune(&self.locked_sources, now);
        prune(&self.locked_users, now);
        prune(&self.trusted, now);
    }

    fn is_trusted(&self, key: &str, source: IpAddr, now: C::Instant) -> bool {
        locked(&self.trusted, &(key.to_owned(), source), now).is_some()
    }

    fn lockout(&self, reason: &'static str, until: C::Instant, now: C::Instant) -> Refused {
        let left: Duration = until.duration_since(now).into();
        Refused { reason, action: self.config.auth_lockout_action, retry_after_secs: left.as_secs().max(1) }
    }
}

fn user_key(user: &str) -> String {
    user.chars().take(MAX_USER_KEY).collect()
}

/// The expiry of `key` in `table` when it is still in the future.
fn locked<K: Eq + Hash, I: Reference>(table: &Mutex<HashMap<K, I>>, key: &K, now: I) -> Option<I> {
    let table = table.lock().ok()?;
    table.get(key).copied().filter(|until| *until > now)
}

fn lock<K: Eq + Hash, I: Reference>(table: &Mutex<HashMap<K, I>>, key: K, until: I, now: I) {
    let Ok(mut table) = table.lock() else { return };
    if table.len() >= TABLE_SOFT_LIMIT {
        table.retain(|_, t| *t > now);
    }
    if table.len() >= 2 * TABLE_SOFT_LIMIT {
        // Still full of live entries: forget those expiring soonest.
        let mut expiries: Vec<I> = table.values().copied().collect();
        expiries.sort_unstable();
        if let Some(cut) = expiries.get(expiries.len() / 2).copied() {
            table.retain(|_, t| *t > cut);
        }
    }
    table.insert(key, until);
}

fn prune<K: Eq + Hash, I: Reference>(table: &Mutex<HashMap<K, I>>, now: I) {
    if let Ok(mut table) = table.lock() {
        table.retain(|_, t| *t > now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;

    fn limits(clock: &FakeRelativeClock) -> EdgeLimits<FakeRelativeClock> {
        let config = SipLimits {
            requests_per_source: 5,
            requests_global: 8,
            flood_action: LimitAction::Reject,
            auth_failures_per_source: 3,
            auth_failures_per_user: 6,
            auth_failure_window: Duration::from_secs(60),
            auth_lockout: Duration::from_secs(300),
            auth_lockout_action: LimitAction::Drop,
        };
        EdgeLimits::with_clock(config, clock.clone())
    }

    #[test]
    fn request_rate_per_source_then_global() {
        let clock = FakeRelativeClock::default();
        let l = limits(&clock);
        let (a, b, c): (IpAddr, IpAddr, IpAddr) =
            ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap(), "192.0.2.3".parse().unwrap());
        for _ in 0..5 {
            assert!(l.admit_request(a).is_ok());
        }
        assert_eq!(l.admit_request(a).unwrap_err().reason, "rate_limited_source");
        // b still has its own budget, until the global one (8/s) runs out.
        for _ in 0..3 {
            assert!(l.admit_request(b).is_ok());
        }
        assert_eq!(l.admit_request(c).unwrap_err().reason, "rate_limited_global");
        clock.advance(Duration::from_secs(1));
        assert!(l.admit_request(a).is_ok());
    }

    #[test]
    fn digest_failures_lock_the_source_but_not_others() {
        let clock = FakeRelativeClock::default();
        let l = limits(&clock);
        let (guesser, owner): (IpAddr, IpAddr) = ("198.51.100.7".parse().unwrap(), "192.0.2.10".parse().unwrap());
        for _ in 0..3 {
            assert!(l.auth_allowed(guesser, Some("alice")).is_ok());
            l.auth_failed(guesser, "alice");
        }
        // The fourth failure spends the budget.
        l.auth_failed(guesser, "alice");
        let refused = l.auth_allowed(guesser, Some("alice")).unwrap_err();
        assert_eq!((refused.reason, refused.action), ("auth_locked_source", LimitAction::Drop));
        assert_eq!(refused.retry_after_secs, 300);
        assert!(l.auth_allowed(owner, Some("alice")).is_ok());
        clock.advance(Duration::from_secs(301));
        assert!(l.auth_allowed(guesser, Some("alice")).is_ok());
    }

    #[test]
    fn a_distributed_guesser_locks_the_user_except_for_trusted_sources() {
        let clock = FakeRelativeClock::default();
        let l = limits(&clock);
        let owner: IpAddr = "192.0.2.10".parse().unwrap();
        l.auth_succeeded(owner, "alice");
        for i in 0..7u8 {
            l.auth_failed(IpAddr::from([203, 0, 113, i]), "alice");
        }
        let fresh: IpAddr = "203.0.113.200".parse().unwrap();
        assert_eq!(l.auth_allowed(fresh, Some("alice")).unwrap_err().reason, "auth_locked_user");
        assert!(l.auth_allowed(fresh, Some("bob")).is_ok());
        assert!(l.auth_allowed(owner, Some("alice")).is_ok());
        l.housekeeping();
        assert!(l.auth_allowed(owner, Some("alice")).is_ok());
    }
}
