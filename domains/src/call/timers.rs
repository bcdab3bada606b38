//! The call's one timer structure: deadlines by key, the earliest of which is the call's
//! `poll_timeout`. A key is set at most once; setting it again moves it.

use std::time::Instant;

use super::LegRef;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerKey {
    /// A leg's server side: the response it resends until the ACK (Timers G/H, §13.3.1.4),
    /// then Timer I.
    Server(LegRef),
    /// A leg's client transaction (Timers A/B for INVITE, E/F otherwise).
    Client(LegRef),
    /// How long a callee may ring (`connect` timeout).
    Ringing(LegRef),
    /// A gateway that has not answered our INVITE at all by now is given up for the next one.
    NoResponse(LegRef),
    /// After our CANCEL: how long we wait for the 487 (or a late 2xx).
    CancelGrace(LegRef),
    /// The length limit of a connected call (`connect` limit).
    Limit,
    /// The length limit of a call placed over the Voice API (`length_timer`), from its answer.
    CallLength,
    /// The running action's own deadline (`wait`, `input` timeouts, …).
    Action,
    /// A `wait` in a whisper (`onAnswer`).
    Whisper,
    /// A session-timer refresh (RFC 4028) or expiry on a leg.
    Session(LegRef),
    /// How long an ended call waits for its recordings' files to be written.
    RecordingsWritten,
    /// How long a leg's final report waits for its media quality.
    QualityReported,
}

#[derive(Debug, Default)]
pub struct Timers {
    set: Vec<(Instant, TimerKey)>,
}

impl Timers {
    pub fn set(&mut self, key: TimerKey, at: Instant) {
        self.cancel(key);
        self.set.push((at, key));
    }

    pub fn cancel(&mut self, key: TimerKey) {
        self.set.retain(|(_, k)| *k != key);
    }

    pub fn is_set(&self, key: TimerKey) -> bool {
        self.set.iter().any(|(_, k)| *k == key)
    }

    pub fn next(&self) -> Option<Instant> {
        self.set.iter().map(|(at, _)| *at).min()
    }

    /// Removes and returns the keys due at `now`, earliest first.
    pub fn due(&mut self, now: Instant) -> Vec<TimerKey> {
        let mut due: Vec<(Instant, TimerKey)> = self.set.iter().copied().filter(|(at, _)| *at <= now).collect();
        due.sort_by_key(|(at, _)| *at);
        self.set.retain(|(at, _)| *at > now);
        due.into_iter().map(|(_, k)| k).collect()
    }
}
