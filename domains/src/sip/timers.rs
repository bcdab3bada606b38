//! RFC 3261 §17 transaction timers, as values and as a retransmission schedule, free of any
//! clock: callers pass the elapsed time in. T1 (RTT estimate, 500 ms), T2 (the cap of non-INVITE
//! and 2xx retransmission intervals, 4 s) and T4 (how long the network holds a message, 5 s);
//! Timers A/E/G retransmit, B/F/H give up at 64·T1, and D/I/J/K absorb what is still in flight.

use std::time::Duration;

pub const T1: Duration = Duration::from_millis(500);
pub const T2: Duration = Duration::from_secs(4);
pub const T4: Duration = Duration::from_secs(5);

/// Timers B, F and H (and the UAS core's 2xx give-up, §13.3.1.4): 64·T1.
pub const TIMEOUT_64_T1: Duration = Duration::from_secs(32);

/// What is being retransmitted, which fixes how the interval grows (§17.1.1.2, §17.1.2.2,
/// §17.2.1, §13.3.1.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retransmitted {
    /// An INVITE request (Timer A): T1, 2·T1, 4·T1… uncapped.
    InviteRequest,
    /// A non-INVITE request (Timer E), a final response to INVITE (Timer G) or a 2xx the UAS
    /// core resends until the ACK: doubling, capped at T2.
    CappedAtT2,
}

/// Where a retransmission stands: how long it waits before the next send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    kind: Retransmitted,
    interval: Duration,
    elapsed: Duration,
}

impl Backoff {
    /// The schedule after the first transmission.
    pub fn new(kind: Retransmitted) -> Self {
        Backoff { kind, interval: T1, elapsed: Duration::ZERO }
    }

    /// Time until the next retransmission, or `None` once 64·T1 has passed since the first
    /// send (Timer B/F/H fired: the transaction gives up).
    pub fn next_wait(&self) -> Option<Duration> {
        (self.elapsed + self.interval <= TIMEOUT_64_T1).then_some(self.interval)
    }

    /// Records that the wait returned by [`Backoff::next_wait`] elapsed and the message was sent
    /// again.
    pub fn retransmitted(&mut self) {
        self.elapsed += self.interval;
        let doubled = self.interval.saturating_mul(2);
        self.interval = match self.kind {
            Retransmitted::InviteRequest => doubled,
            Retransmitted::CappedAtT2 => doubled.min(T2),
        };
    }
}

/// How long an INVITE server transaction lingers after the ACK of its failure response to
/// absorb ACK retransmissions (Timer I: T4 on unreliable transports, 0 on reliable ones).
/// Timer H itself is [`TIMEOUT_64_T1`].
pub fn timer_i(reliable: bool) -> Duration {
    if reliable { Duration::ZERO } else { T4 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(kind: Retransmitted) -> Vec<u64> {
        let mut b = Backoff::new(kind);
        let mut waits = Vec::new();
        while let Some(w) = b.next_wait() {
            waits.push(u64::try_from(w.as_millis()).unwrap());
            b.retransmitted();
        }
        waits
    }

    #[test]
    fn invite_retransmissions_double_until_timer_b() {
        // Timer A: sends at 0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s; Timer B fires at 32 s.
        assert_eq!(schedule(Retransmitted::InviteRequest), [500, 1000, 2000, 4000, 8000, 16000]);
    }

    #[test]
    fn capped_retransmissions_stay_at_t2_until_64_t1() {
        let waits = schedule(Retransmitted::CappedAtT2);
        assert_eq!(waits.get(..4), Some(&[500, 1000, 2000, 4000][..]));
        assert!(waits.iter().skip(3).all(|w| *w == 4000));
        assert_eq!(waits.iter().sum::<u64>(), 31_500, "the last send is before 64·T1");
    }

    #[test]
    fn server_transaction_timers() {
        assert_eq!(TIMEOUT_64_T1, T1 * 64);
        assert_eq!((timer_i(false), timer_i(true)), (T4, Duration::ZERO));
    }
}
