//! RFC 3261 transaction behaviour as deadlines, with no clock: a message resent on the §17
//! schedule until something stops it, and the INVITE server transaction of a failure response
//! (Timers G, H and I), which the edge also runs for the INVITEs it refuses.

use std::time::Instant;

use crate::sip::flow::Flow;
use crate::sip::timers::{Backoff, Retransmitted, TIMEOUT_64_T1, timer_i};
use crate::sip::{Method, SipMessage};

/// A message resent until stopped: a request until its response (Timer A or E; gives up with B
/// or F), a final response until its ACK (Timer G; H), a 2xx until its ACK (§13.3.1.4). Over a
/// reliable transport nothing is resent, but the give-up deadline still holds.
#[derive(Debug, Clone)]
pub struct Resend {
    pub msg: SipMessage,
    pub flow: Flow,
    backoff: Backoff,
    next_at: Instant,
    give_up_at: Instant,
}

#[derive(Debug, PartialEq, Eq)]
pub enum ResendStep {
    /// Not due yet.
    Wait,
    /// Send `msg` again.
    Resend,
    /// 64·T1 passed without what we waited for (Timer B, F or H fired).
    GaveUp,
}

impl Resend {
    pub fn start(msg: SipMessage, flow: Flow, kind: Retransmitted, now: Instant) -> Resend {
        let backoff = Backoff::new(kind);
        let first = backoff.next_wait().unwrap_or(TIMEOUT_64_T1);
        Resend { msg, flow, backoff, next_at: now + first, give_up_at: now + TIMEOUT_64_T1 }
    }

    /// For a request, the schedule that fits its method.
    pub fn request(msg: SipMessage, flow: Flow, now: Instant) -> Resend {
        let kind = if msg.method() == Some(&Method::Invite) {
            Retransmitted::InviteRequest
        } else {
            Retransmitted::CappedAtT2
        };
        Resend::start(msg, flow, kind, now)
    }

    pub fn deadline(&self) -> Instant {
        if self.flow.is_reliable() { self.give_up_at } else { self.next_at.min(self.give_up_at) }
    }

    pub fn on_timer(&mut self, now: Instant) -> ResendStep {
        if now >= self.give_up_at {
            return ResendStep::GaveUp;
        }
        if self.flow.is_reliable() || now < self.next_at {
            return ResendStep::Wait;
        }
        self.backoff.retransmitted();
        self.next_at = now + self.backoff.next_wait().unwrap_or(TIMEOUT_64_T1);
        ResendStep::Resend
    }

    /// The CSeq of the message resent, which its answer must carry.
    pub fn cseq(&self) -> Option<(u32, Method)> {
        self.msg.cseq()
    }
}

/// The INVITE server transaction after a failure response (§17.2.1): the response is resent on
/// Timer G and for each retransmitted INVITE until the ACK or Timer H (64·T1); after the ACK,
/// Timer I absorbs the ACK's retransmissions.
#[derive(Debug, Clone)]
pub struct FailureAnswered {
    cseq: Option<u32>,
    resend: Resend,
    linger_until: Option<Instant>,
    done: bool,
}

/// What a message in a [`FailureAnswered`] transaction's Call-ID means.
#[derive(Debug, PartialEq, Eq)]
pub enum FailureInput {
    /// The INVITE again: send the response again (returned).
    Resend(Box<SipMessage>),
    /// ACK or something the transaction swallows.
    Absorbed,
    /// A new INVITE (another CSeq, e.g. with credentials after 401): the edge admits it anew.
    NewTransaction,
    /// A request of no transaction of ours: 481.
    NoTransaction,
}

impl FailureAnswered {
    /// `response` was just sent for `invite` over `flow`.
    pub fn new(invite: &SipMessage, response: SipMessage, flow: Flow, now: Instant) -> FailureAnswered {
        FailureAnswered {
            cseq: invite.cseq().map(|c| c.0),
            resend: Resend::start(response, flow, Retransmitted::CappedAtT2, now),
            linger_until: None,
            done: false,
        }
    }

    pub fn response(&self) -> &SipMessage {
        &self.resend.msg
    }

    pub fn flow(&self) -> &Flow {
        &self.resend.flow
    }

    pub fn handle(&mut self, msg: &SipMessage, now: Instant) -> FailureInput {
        // RFC 3261 §17.2.3: the top Via branch names the transaction (the ACK of a failure
        // carries the INVITE's). A proxy answering our challenge sends a new branch with the
        // same CSeq (Kamailio's uac_auth does): a new transaction, not a retransmission. Only
        // a pre-RFC 3261 branch falls back to the CSeq.
        let same_cseq = msg.cseq().map(|c| c.0) == self.cseq;
        let same = match (msg.branch(), self.resend.msg.branch()) {
            (Some(theirs), Some(ours)) if theirs.starts_with("z9hG4bK") => theirs == ours && same_cseq,
            _ => same_cseq,
        };
        match msg.method() {
            Some(Method::Ack) if same => {
                if self.linger_until.is_none() {
                    self.linger_until = Some(now + timer_i(self.resend.flow.is_reliable()));
                }
                FailureInput::Absorbed
            }
            Some(Method::Invite) if same => {
                if self.linger_until.is_some() {
                    FailureInput::Absorbed
                } else {
                    FailureInput::Resend(Box::new(self.resend.msg.clone()))
                }
            }
            Some(Method::Invite) => FailureInput::NewTransaction,
            // A CANCEL of the finished INVITE: the transaction exists, so 200 (§9.2) — by the
            // caller; nothing changes here.
            Some(Method::Ack) | None => FailureInput::Absorbed,
            Some(_) => FailureInput::NoTransaction,
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.done {
            return None;
        }
        Some(self.linger_until.unwrap_or_else(|| self.resend.deadline()))
    }

    /// Returns the response when it is due again.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<&SipMessage> {
        if let Some(until) = self.linger_until {
            if now >= until {
                self.done = true;
            }
            return None;
        }
        match self.resend.on_timer(now) {
            ResendStep::Resend => Some(&self.resend.msg),
            ResendStep::GaveUp => {
                self.done = true;
                None
            }
            ResendStep::Wait => None,
        }
    }

    pub fn is_done(&self) -> bool {
        self.done
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::timers::T1;

    fn invite() -> SipMessage {
        SipMessage::parse(
            b"INVITE sip:a@x SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\nFrom: <sip:b@x>;tag=1\r\n\
              To: <sip:a@x>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        )
        .unwrap()
    }

    #[test]
    fn failure_is_resent_on_timer_g_until_timer_h() {
        let t0 = Instant::now();
        let inv = invite();
        let mut tx =
            FailureAnswered::new(&inv, inv.response(486, Some("t")), Flow::Udp("127.0.0.1:5070".parse().unwrap()), t0);
        let mut sends = vec![];
        while let Some(at) = tx.poll_timeout() {
            if tx.handle_timeout(at).is_some() {
                sends.push(at - t0);
            }
        }
        assert_eq!(sends.first(), Some(&T1));
        assert_eq!(sends.get(1), Some(&(T1 * 3)));
        // Timer G caps at T2; Timer H ends it at 64·T1 = 32 s.
        assert!(sends.iter().all(|d| *d < TIMEOUT_64_T1));
        assert!(tx.is_done());
        assert!(sends.len() >= 7, "Timer G until Timer H: {sends:?}");
    }

    #[test]
    fn ack_ends_it_after_timer_i_and_a_new_cseq_is_a_new_transaction() {
        let t0 = Instant::now();
        let inv = invite();
        let flow = Flow::Udp("127.0.0.1:5070".parse().unwrap());
        let mut tx = FailureAnswered::new(&inv, inv.response(401, Some("t")), flow, t0);
        assert!(matches!(tx.handle(&inv, t0), FailureInput::Resend(_)));
        let mut ack = inv.clone();
        ack.start = crate::sip::StartLine::Request { method: Method::Ack, uri: "sip:a@x".into() };
        ack.set_header("CSeq", "1 ACK");
        assert_eq!(tx.handle(&ack, t0), FailureInput::Absorbed);
        assert_eq!(tx.poll_timeout(), Some(t0 + crate::sip::timers::T4));
        let mut again = inv.clone();
        again.set_header("CSeq", "2 INVITE");
        assert_eq!(tx.handle(&again, t0), FailureInput::NewTransaction);
        // A proxy answering the challenge for its UAC keeps the CSeq, with a new branch.
        let mut authorized = inv.clone();
        authorized.set_header("Via", "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK2");
        assert_eq!(tx.handle(&authorized, t0), FailureInput::NewTransaction);
        tx.handle_timeout(t0 + crate::sip::timers::T4);
        assert!(tx.is_done());
    }
}
