//! The Voice API's outbound call budget: calls created per second per application (governor's
//! GCRA, keyed by application), and calls created over the API in progress at once on this
//! node. A call that gets through holds an [`OutboundSlot`] for as long as its driver lives.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::OutboundLimits;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BudgetExceeded {
    #[error("more than {0} calls per second were created by this application")]
    CallsPerSecond(u32),
    #[error("{0} calls created over the API are in progress already")]
    Concurrent(u32),
}

pub struct OutboundBudget {
    limits: OutboundLimits,
    per_application: DefaultKeyedRateLimiter<String>,
    active: Arc<AtomicU32>,
}

/// One call's place in the concurrent budget, given back when dropped.
pub struct OutboundSlot(Arc<AtomicU32>);

impl Drop for OutboundSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
        metrics::gauge!("voxbridge_outbound_calls_active").decrement(1.0);
    }
}

impl OutboundBudget {
    pub fn new(limits: OutboundLimits) -> OutboundBudget {
        let cps = NonZeroU32::new(limits.calls_per_second).unwrap_or(NonZeroU32::MIN);
        metrics::describe_gauge!("voxbridge_outbound_calls_active", "Calls created over the Voice API in progress");
        metrics::describe_counter!(
            "voxbridge_outbound_calls_refused_total",
            "Voice API call creations refused by the outbound budget (429), by reason"
        );
        metrics::gauge!("voxbridge_outbound_calls_max").set(f64::from(limits.max_calls));
        metrics::gauge!("voxbridge_outbound_calls_per_second_max").set(f64::from(limits.calls_per_second));
        OutboundBudget {
            limits,
            per_application: RateLimiter::keyed(Quota::per_second(cps)),
            active: Arc::new(AtomicU32::new(0)),
        }
    }

    /// A place for one more call of `application_id`, or which budget it would exceed.
    pub fn acquire(&self, application_id: &str) -> Result<OutboundSlot, BudgetExceeded> {
        let max = self.limits.max_calls;
        let taken = self.active.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1));
        if taken.is_err() {
            metrics::counter!("voxbridge_outbound_calls_refused_total", "reason" => "concurrent").increment(1);
            return Err(BudgetExceeded::Concurrent(max));
        }
        let slot = OutboundSlot(self.active.clone());
        metrics::gauge!("voxbridge_outbound_calls_active").increment(1.0);
        if self.per_application.check_key(&application_id.to_owned()).is_err() {
            metrics::counter!("voxbridge_outbound_calls_refused_total", "reason" => "calls_per_second").increment(1);
            return Err(BudgetExceeded::CallsPerSecond(self.limits.calls_per_second));
        }
        Ok(slot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_second_budget_refuses_and_a_dropped_slot_is_given_back() {
        let budget = OutboundBudget::new(OutboundLimits { calls_per_second: 1000, max_calls: 2 });
        let (a, _b) = (budget.acquire("app").unwrap(), budget.acquire("app").unwrap());
        assert_eq!(budget.acquire("app").err(), Some(BudgetExceeded::Concurrent(2)));
        drop(a);
        assert!(budget.acquire("app").is_ok());
    }

    #[test]
    fn calls_per_second_are_counted_per_application() {
        let budget = OutboundBudget::new(OutboundLimits { calls_per_second: 2, max_calls: 100 });
        let kept: Vec<_> = (0..2).map(|_| budget.acquire("app-1").unwrap()).collect();
        assert_eq!(budget.acquire("app-1").err(), Some(BudgetExceeded::CallsPerSecond(2)));
        assert!(budget.acquire("app-2").is_ok(), "another application has its own budget");
        drop(kept);
    }
}
