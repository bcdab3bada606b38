//! How a call and its legs end: the outcome, the final response or BYE each leg gets, the
//! release of media, and the terminal events and records (through the `domains::events`
//! builders).

use chrono::{DateTime, Utc};

use super::legs::{UacState, UasState};
use super::timers::TimerKey;
use super::txn::{FailureAnswered, Resend};
use super::{Call, Key, LegRef, Op, RecordUpdate};
use crate::events::{CallEvent, CallStatus, Direction, status_for_sip_failure};
use crate::media::Command;
use crate::sip::Method;
use crate::sip::dialog::cancel_for;
use crate::sip::timers::TIMEOUT_64_T1;

/// How long an ended call waits for the media process to write its recordings.
const RECORDINGS_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

/// How long a leg's final report waits for the media process's quality figures.
const QUALITY_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// A leg's final event and record change, waiting for its media quality.
#[derive(Debug, Clone)]
pub struct HeldReport {
    pub leg: LegRef,
    pub event: Option<CallEvent>,
    pub finished: RecordUpdate,
}

/// How a leg failed before it was answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegFailure {
    pub status: CallStatus,
    pub detail: Option<String>,
    /// The SIP code the caller hears when this failure ends the call.
    pub code: u16,
    pub reason: Option<String>,
    /// The SIP code the far end answered, when it did.
    pub sip_code: Option<u16>,
}

impl LegFailure {
    pub fn new(status: CallStatus, detail: &str, code: u16, reason: impl Into<String>) -> LegFailure {
        LegFailure { status, detail: Some(detail.to_owned()), code, reason: Some(reason.into()), sip_code: None }
    }

    /// A far end's final failure response: Vonage's status for it; the caller hears the same
    /// code, except those that only make sense hop by hop.
    pub fn from_sip(code: u16) -> LegFailure {
        let (status, detail) = status_for_sip_failure(code);
        let relayed = if matches!(code, 401 | 407 | 487) { 480 } else { code };
        LegFailure {
            status,
            detail: detail.map(str::to_owned),
            code: relayed,
            reason: Some(format!("far end answered {code}")),
            sip_code: Some(code),
        }
    }

    pub fn unsupported(what: &str) -> LegFailure {
        LegFailure::new(CallStatus::Failed, "unsupported_action", 480, format!("{what} is not supported yet"))
    }
}

/// How the call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Hung up after being answered; `by_user` when a party hung up, else the platform.
    Completed { by_user: bool },
    /// Never answered, or the platform ended it for this reason.
    Failed(LegFailure),
    /// The caller cancelled.
    Cancelled,
}

pub fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Characters a `Warning` text may carry.
fn warning_text(reason: &str) -> String {
    let r: String = reason.chars().filter(|c| !c.is_control()).take(120).collect();
    format!("399 voxbridge \"{}\"", r.replace('"', "'"))
}

impl Call {
    pub(super) fn events_on(&self) -> bool {
        self.application_id().is_some()
    }

    pub(super) fn application_id(&self) -> Option<String> {
        match &self.route {
            super::Route::Application { application_id, .. } => Some(application_id.clone()),
            super::Route::Program { application_id, .. } => application_id.clone(),
            super::Route::Forward { .. } => None,
        }
    }

    pub(super) fn base_event(&self, leg: LegRef, status: CallStatus) -> Option<CallEvent> {
        let (l, direction) = match leg {
            LegRef::A => (&self.a.leg, self.a_direction()),
            LegRef::B(i) => (&self.b.get(i)?.leg, Direction::Outbound),
        };
        Some(CallEvent::new(
            l.uuid.clone(),
            self.conversation_uuid.clone(),
            status,
            direction,
            l.from.clone(),
            l.to.clone(),
            self.cx.iso(),
        ))
    }

    /// A progress event (`started`, `ringing`, `answered`) of a leg.
    pub(super) fn progress_event(&mut self, leg: LegRef, status: CallStatus) {
        if !self.events_on() {
            return;
        }
        if let Some(mut ev) = self.base_event(leg, status) {
            if status == CallStatus::Answered {
                ev.start_time = Some(self.cx.iso());
            }
            self.emit(leg, ev);
        }
    }

    /// Sends a leg's event: to the webhook its connect named for it, else the application's.
    fn emit(&mut self, leg: LegRef, ev: CallEvent) {
        let hook = match leg {
            LegRef::B(i) => self.b.get(i).and_then(|b| b.planned.status.clone()),
            LegRef::A => None,
        };
        match hook {
            Some(hook) => self.cx.out.push_back(super::Output::LegEvent { event: ev, hook }),
            None => self.cx.event(ev),
        }
    }

    pub(super) fn record_started(&mut self, leg: LegRef) {
        let (l, direction) = match leg {
            LegRef::A => (&self.a.leg, self.a_direction()),
            LegRef::B(i) => match self.b.get(i) {
                Some(b) => (&b.leg, Direction::Outbound),
                None => return,
            },
        };
        let r = RecordUpdate::Started {
            uuid: l.uuid.clone(),
            conversation_uuid: self.conversation_uuid.clone(),
            application_id: self.application_id(),
            direction,
            from: l.from.clone(),
            to: l.to.clone(),
            sip_call_id: l.dialog.call_id.clone(),
            at: self.cx.now.utc,
        };
        self.cx.record(r);
    }

    /// The terminal event and record of a leg, once.
    fn report_leg(&mut self, leg: LegRef, failure: Option<&LegFailure>) {
        let now = self.cx.now.utc;
        let l = match leg {
            LegRef::A => &mut self.a.leg,
            LegRef::B(i) => match self.b.get_mut(i) {
                Some(b) if b.started => &mut b.leg,
                _ => return,
            },
        };
        if l.reported {
            return;
        }
        l.reported = true;
        let (answered, by_user, uuid) = (l.answered_at, l.hung_up_by_peer, l.uuid.clone());
        let over_sip = !(leg == LegRef::A && self.originated.as_ref().is_some_and(|o| o.websocket));
        let Some(base) = self.base_event(leg, CallStatus::Completed) else { return };
        let ev = match (answered, failure) {
            (Some(start), f) => {
                let secs = u64::try_from((now - start).num_seconds()).unwrap_or(0);
                let by = if by_user { "user" } else { "platform" };
                let mut ev = CallEvent::completed(base, iso(start), iso(now), secs, by, over_sip.then_some(200));
                ev.reason = f.and_then(|f| f.reason.clone());
                ev
            }
            (None, Some(f)) => {
                let mut ev = match f.sip_code {
                    Some(code) => CallEvent::sip_failure(base, code),
                    None => CallEvent { status: f.status, detail: f.detail.clone(), ..base },
                };
                ev.reason = f.reason.clone();
                ev
            }
            (None, None) => CallEvent { status: CallStatus::Cancelled, ..base },
        };
        let (status, detail, sip_code) = (ev.status, ev.detail.clone(), ev.sip_code);
        let event = self.events_on().then_some(ev);
        let finished = RecordUpdate::Finished { uuid, status, detail, answered, ended: now, quality: None, sip_code };
        let held = HeldReport { leg, event, finished };
        if self.exec.releasing.contains(&leg) {
            // Sent with the leg's media quality once its endpoint reports it.
            self.exec.held.push(held);
            self.cx.timers.set(TimerKey::QualityReported, self.cx.now.at + QUALITY_GRACE);
        } else {
            self.send_report(held, None);
        }
    }

    /// Releases a leg's media endpoint.
    fn release_media(&mut self, leg: LegRef) {
        let endpoint = match leg {
            LegRef::A => self.a.leg.endpoint.take(),
            LegRef::B(i) => self.b.get_mut(i).and_then(|b| b.leg.endpoint.take()),
        };
        if let Some(ep) = endpoint {
            // A recording of the caller's leg is written when its endpoint goes: the call keeps
            // listening for its `record_done` (see `recording_written`).
            if leg == LegRef::A && !self.exec.recordings.is_empty() {
                self.exec.recorded_endpoint = Some(ep.id.clone());
                self.cx.timers.set(TimerKey::RecordingsWritten, self.cx.now.at + RECORDINGS_GRACE);
            } else {
                self.cx.out.push_back(super::Output::Unlisten(Key::Endpoint(ep.id.clone())));
            }
            self.exec.releasing.push(leg);
            self.cx.media(Op::Release(leg), Command::DestroyEndpoint { endpoint_id: ep.id });
        }
    }

    /// A leg's endpoint is gone, with the media quality it had: its held report goes out.
    pub(super) fn released(&mut self, leg: LegRef, quality: Option<crate::quality::Quality>) {
        self.exec.releasing.retain(|l| *l != leg);
        let Some(i) = self.exec.held.iter().position(|h| h.leg == leg) else { return };
        let held = self.exec.held.remove(i);
        self.send_report(held, quality);
        if self.exec.held.is_empty() {
            self.cx.timers.cancel(TimerKey::QualityReported);
        }
    }

    /// The media process never answered: the reports go without quality.
    pub(super) fn release_held_reports(&mut self) {
        for held in std::mem::take(&mut self.exec.held) {
            self.send_report(held, None);
        }
        self.exec.releasing.clear();
    }

    fn send_report(&mut self, held: HeldReport, quality: Option<crate::quality::Quality>) {
        if let Some(mut ev) = held.event {
            ev.quality = quality.clone();
            self.emit(held.leg, ev);
        }
        if let RecordUpdate::Finished { uuid, status, detail, answered, ended, sip_code, .. } = held.finished {
            self.cx.record(RecordUpdate::Finished { uuid, status, detail, answered, ended, quality, sip_code });
        }
    }

    /// After a recording's event: once the ended call has none left, it stops listening.
    pub(super) fn recording_written(&mut self) {
        if self.ending.is_none() || !self.exec.recordings.is_empty() {
            return;
        }
        self.cx.timers.cancel(TimerKey::RecordingsWritten);
        if let Some(id) = self.exec.recorded_endpoint.take() {
            self.cx.out.push_back(super::Output::Unlisten(Key::Endpoint(id)));
        }
    }

    /// The media process never reported the recordings of an ended call.
    pub(super) fn recordings_lost(&mut self) {
        let lost: Vec<String> = self.exec.recordings.drain(..).map(|r| r.id).collect();
        tracing::warn!(call_uuid = %self.uuid, ?lost, "recordings not reported by the media process");
        self.recording_written();
    }

    /// Ends an outbound leg: CANCEL while it rings, BYE once answered; reports it with
    /// `failure` (or as cancelled / completed).
    pub(super) fn end_b(&mut self, i: usize, failure: Option<LegFailure>) {
        let now = self.cx.now.at;
        let Some(b) = self.b.get_mut(i) else { return };
        self.cx.timers.cancel(TimerKey::Ringing(LegRef::B(i)));
        self.cx.timers.cancel(TimerKey::NoResponse(LegRef::B(i)));
        let mut terminated = false;
        match std::mem::replace(&mut b.state, UacState::Terminated) {
            UacState::ExpectFlow | UacState::ExpectEndpoint => terminated = true,
            UacState::ExpectProvisional => {
                // §9.1: no CANCEL before a provisional; it is sent when one comes.
                b.state = UacState::ExpectCancelResult;
                self.cx.timers.set(TimerKey::CancelGrace(LegRef::B(i)), now + TIMEOUT_64_T1);
            }
            UacState::ExpectFinal => {
                if let Some(invite) = &b.invite {
                    self.cx.send(&b.leg.dialog.flow, cancel_for(invite));
                    b.cancel_sent = true;
                }
                b.state = UacState::ExpectCancelResult;
                self.cx.timers.set(TimerKey::CancelGrace(LegRef::B(i)), now + TIMEOUT_64_T1);
            }
            UacState::ExpectMediaApplied | UacState::ExpectWhisperDone | UacState::ExpectBye => {
                let bye = b.leg.dialog.request(&self.cx.local, Method::Bye, &self.cx.ids.branch());
                let flow = b.leg.dialog.flow.clone();
                let resend = Resend::request(bye.clone(), flow.clone(), now);
                self.cx.timers.set(TimerKey::Client(LegRef::B(i)), resend.deadline());
                b.leg.request = Some(resend);
                b.ack = None;
                self.cx.send(&flow, bye);
                b.state = UacState::ExpectByeResponse;
            }
            s @ (UacState::ExpectCancelResult
            | UacState::ExpectByeResponse
            | UacState::ExpectFailureRetransmissions) => b.state = s,
            UacState::Terminated => terminated = true,
        }
        let failure = failure.or_else(|| b.failure.clone());
        let call_id = b.leg.dialog.call_id.clone();
        self.release_media(LegRef::B(i));
        self.report_leg(LegRef::B(i), failure.as_ref());
        if terminated {
            self.b_terminated(i, &call_id);
        }
    }

    /// An outbound leg's transactions are over.
    pub(super) fn b_terminated(&mut self, i: usize, call_id: &str) {
        if let Some(b) = self.b.get_mut(i) {
            b.state = UacState::Terminated;
            b.leg.request = None;
        }
        for key in
            [TimerKey::Client(LegRef::B(i)), TimerKey::Ringing(LegRef::B(i)), TimerKey::CancelGrace(LegRef::B(i))]
        {
            self.cx.timers.cancel(key);
        }
        self.cx.out.push_back(super::Output::Unlisten(Key::CallId(call_id.to_owned())));
    }

    /// Rejects the unanswered caller with `code` (Timer G/H until the ACK).
    pub(super) fn reject_a(&mut self, code: u16, reason: Option<&str>) {
        self.a.unacked = None;
        let mut resp = self.a.response(code);
        if code == 503 {
            resp.push_header("Retry-After", "5");
        }
        if let Some(r) = reason {
            resp.push_header("Warning", warning_text(r));
        }
        let flow = self.a.flow.clone();
        self.cx.send(&flow, resp.clone());
        let tx = FailureAnswered::new(&self.a.invite, resp, flow, self.cx.now.at);
        if let Some(at) = tx.poll_timeout() {
            self.cx.timers.set(TimerKey::Server(LegRef::A), at);
        }
        self.a.state = UasState::ExpectFailureAck(tx);
    }

    /// Sends BYE to the caller (once answered, unless it hung up).
    pub(super) fn bye_a(&mut self) {
        if !matches!(self.a.state, UasState::ExpectAck(_) | UasState::ExpectBye) {
            return;
        }
        let now = self.cx.now.at;
        let bye = self.a.leg.dialog.request(&self.cx.local, Method::Bye, &self.cx.ids.branch());
        let flow = self.a.leg.dialog.flow.clone();
        let resend = Resend::request(bye.clone(), flow.clone(), now);
        self.cx.timers.cancel(TimerKey::Server(LegRef::A));
        self.cx.timers.set(TimerKey::Client(LegRef::A), resend.deadline());
        self.a.leg.request = Some(resend);
        self.cx.send(&flow, bye);
        self.a.state = UasState::ExpectByeResponse;
    }

    pub(super) fn a_terminated(&mut self) {
        self.a.state = UasState::Terminated;
        self.a.leg.request = None;
        self.cx.timers.cancel(TimerKey::Server(LegRef::A));
        self.cx.timers.cancel(TimerKey::Client(LegRef::A));
        let key = Key::CallId(self.a.leg.dialog.call_id.clone());
        self.cx.out.push_back(super::Output::Unlisten(key));
    }

    /// Ends the whole call: every leg gets what its state calls for, media is released and
    /// the terminal events go out (outbound legs first, then the caller's).
    pub(super) fn end_call(&mut self, outcome: Outcome) {
        if self.ending.is_some() {
            return;
        }
        tracing::debug!(call_uuid = %self.uuid, ?outcome, "call ending");
        self.cx.timers.cancel(TimerKey::Limit);
        self.cx.timers.cancel(TimerKey::CallLength);
        self.cx.timers.cancel(TimerKey::Action);
        self.cx.timers.cancel(TimerKey::Session(LegRef::A));
        for i in 0..self.b.len() {
            self.end_b(i, None);
        }
        self.end_websocket(false, None);
        let failure = match &outcome {
            Outcome::Failed(f) => Some(f.clone()),
            _ => None,
        };
        match &self.a.state {
            UasState::ExpectAnswerDecision => match &outcome {
                Outcome::Cancelled => self.reject_a(487, None),
                Outcome::Failed(f) => {
                    let (code, reason) = (f.code, f.reason.clone());
                    self.reject_a(code, reason.as_deref());
                }
                Outcome::Completed { .. } => self.reject_a(480, None),
            },
            UasState::ExpectAck(_) | UasState::ExpectBye if !self.a.leg.hung_up_by_peer => self.bye_a(),
            _ => {}
        }
        if let Outcome::Completed { by_user: true } = outcome {
            // Whoever hung up, the caller's leg reports the user.
            self.a.leg.hung_up_by_peer = true;
        }
        self.release_media(LegRef::A);
        let failure = match (&outcome, failure) {
            (Outcome::Cancelled, _) => None,
            (_, f) => f,
        };
        self.report_leg(LegRef::A, failure.as_ref());
        self.ending = Some(outcome);
    }
}
