//! SIP on the call's legs: the caller's INVITE transaction (retransmissions, CANCEL, ACK),
//! in-dialog requests on either leg (BYE, re-INVITE and UPDATE offers through media, INFO,
//! OPTIONS), the responses to our own in-dialog requests, and the RFC 3261 timers of each.

use super::legs::{Endpoint, UacState, UasState};
use super::outcome::{LegFailure, Outcome};
use super::timers::TimerKey;
use super::txn::{FailureInput, Resend, ResendStep};
use super::{Call, Key, LegRef, MediaFailure, Op, Output};
use crate::events::CallStatus;
use crate::media::{Command, Reply};
use crate::sdp::{Direction, SessionDescription};
use std::time::Duration;

use crate::sip::dialog::ack_for_failure;
use crate::sip::flow::Flow;
use crate::sip::timers::TIMEOUT_64_T1;
use crate::sip::{Method, SipMessage};

/// The session timer floor we accept (RFC 4028 §5: Min-SE at least 90 s).
pub const MIN_SE_SECS: u32 = 90;

impl Call {
    pub(super) fn on_sip(&mut self, flow: Flow, msg: SipMessage) {
        let call_id = msg.call_id();
        if call_id == self.a.leg.dialog.call_id {
            self.a_sip(flow, msg);
        } else if let Some(i) = self.b.iter().position(|b| b.leg.dialog.call_id == call_id) {
            self.b_sip(i, flow, msg);
        }
    }

    fn reply(&mut self, flow: &Flow, req: &SipMessage, code: u16, tag: Option<&str>) {
        let mut resp = req.response(code, tag);
        if code == 501 || code == 405 {
            resp.push_header("Allow", crate::sip::checks::ALLOW);
        }
        self.cx.send(flow, resp);
    }

    fn a_sip(&mut self, flow: Flow, msg: SipMessage) {
        let now = self.cx.now.at;
        let tag = self.a.tag.clone();
        if let UasState::ExpectFailureAck(tx) = &mut self.a.state {
            match tx.handle(&msg, now) {
                FailureInput::Resend(resp) => {
                    let to = tx.flow().clone();
                    self.cx.send(&to, *resp);
                }
                FailureInput::Absorbed => {
                    if let Some(at) = tx.poll_timeout() {
                        self.cx.timers.set(TimerKey::Server(LegRef::A), at);
                    }
                    if msg.method() == Some(&Method::Cancel) {
                        self.reply(&flow, &msg, 200, Some(&tag));
                    }
                }
                FailureInput::NewTransaction => self.cx.out.push_back(Output::Unmatched { flow, msg }),
                FailureInput::NoTransaction => self.reply(&flow, &msg, 481, Some(&tag)),
            }
            return;
        }
        let Some(method) = msg.method().cloned() else {
            self.in_dialog_response(LegRef::A, msg);
            return;
        };
        let confirmed = matches!(self.a.state, UasState::ExpectAck(_) | UasState::ExpectBye);
        match method {
            Method::Invite if self.a.is_initial_invite(&msg) => match &self.a.state {
                UasState::ExpectAnswerDecision => {
                    let last = self.a.last_provisional.clone().unwrap_or_else(|| msg.response(100, None));
                    self.cx.send(&flow, last);
                }
                UasState::ExpectAck(resend) => {
                    let again = resend.msg.clone();
                    self.cx.send(&flow, again);
                }
                _ => {}
            },
            Method::Invite | Method::Update if confirmed => self.their_offer(LegRef::A, flow, msg),
            Method::Prack if matches!(self.a.state, UasState::ExpectAnswerDecision) => self.prack_from_a(flow, msg),
            Method::Ack => {
                if let UasState::ExpectAck(_) = self.a.state {
                    self.a.state = UasState::ExpectBye;
                    self.cx.timers.cancel(TimerKey::Server(LegRef::A));
                }
            }
            Method::Cancel => {
                self.reply(&flow, &msg, 200, Some(&tag));
                if matches!(self.a.state, UasState::ExpectAnswerDecision) {
                    self.end_call(Outcome::Cancelled);
                }
            }
            Method::Bye if confirmed || matches!(self.a.state, UasState::ExpectByeResponse) => {
                self.reply(&flow, &msg, 200, Some(&tag));
                self.a.leg.hung_up_by_peer = true;
                self.a_terminated();
                self.end_call(Outcome::Completed { by_user: true });
            }
            Method::Info | Method::Options if confirmed => {
                self.reply(&flow, &msg, 200, Some(&tag));
                self.relay_info(LegRef::A, &msg);
            }
            Method::Bye | Method::Invite | Method::Update | Method::Info | Method::Prack => {
                self.reply(&flow, &msg, 481, Some(&tag));
            }
            _ => self.reply(&flow, &msg, 501, Some(&tag)),
        }
    }

    fn b_sip(&mut self, i: usize, flow: Flow, msg: SipMessage) {
        let Some(method) = msg.method().cloned() else {
            self.b_response(i, msg);
            return;
        };
        let Some(b) = self.b.get(i) else { return };
        let confirmed =
            matches!(b.state, UacState::ExpectBye | UacState::ExpectMediaApplied | UacState::ExpectWhisperDone);
        match method {
            Method::Bye if confirmed => {
                self.reply(&flow, &msg, 200, None);
                if let Some(b) = self.b.get_mut(i) {
                    b.leg.hung_up_by_peer = true;
                    b.ack = None;
                    b.state = UacState::Terminated;
                }
                self.end_b(i, None);
                self.callee_hung_up(i);
            }
            Method::Invite | Method::Update if confirmed => self.their_offer(LegRef::B(i), flow, msg),
            Method::Info | Method::Options if confirmed => {
                self.reply(&flow, &msg, 200, None);
                self.relay_info(LegRef::B(i), &msg);
            }
            Method::Refer if confirmed => self.refer_from_callee(i, flow, msg),
            Method::Ack => {}
            Method::Bye | Method::Invite | Method::Update | Method::Info | Method::Prack | Method::Refer => {
                self.reply(&flow, &msg, 481, None)
            }
            _ => self.reply(&flow, &msg, 501, None),
        }
    }

    /// A response on an outbound leg: to its INVITE, or to an in-dialog request.
    fn b_response(&mut self, i: usize, msg: SipMessage) {
        let now = self.cx.now.at;
        let Some(b) = self.b.get_mut(i) else { return };
        let Some(code) = msg.status() else { return };
        if !b.is_invite_response(&msg) {
            self.in_dialog_response(LegRef::B(i), msg);
            return;
        }
        let waiting =
            matches!(b.state, UacState::ExpectProvisional | UacState::ExpectFinal | UacState::ExpectCancelResult);
        if !waiting {
            // A retransmitted 2xx: our ACK was lost; send it again (§13.2.2.4).
            if (200..300).contains(&code)
                && let Some(ack) = b.ack.clone()
            {
                let flow = b.leg.dialog.flow.clone();
                self.cx.send(&flow, ack);
            } else if code >= 300
                && matches!(b.state, UacState::ExpectFailureRetransmissions)
                && let Some(invite) = &b.invite
            {
                let ack = ack_for_failure(invite, &msg);
                let flow = b.leg.dialog.flow.clone();
                self.cx.send(&flow, ack);
            }
            return;
        }
        // Any response ends the INVITE's retransmissions and Timer B (§17.1.1.2).
        b.leg.request = None;
        self.cx.timers.cancel(TimerKey::Client(LegRef::B(i)));
        self.cx.timers.cancel(TimerKey::NoResponse(LegRef::B(i)));
        let cancelling = matches!(b.state, UacState::ExpectCancelResult);
        match code {
            100 => {
                if matches!(b.state, UacState::ExpectProvisional) {
                    b.state = UacState::ExpectFinal;
                }
            }
            101..=199 => {
                if code > 100 {
                    b.leg.dialog.learn_from_response(&msg);
                }
                if cancelling {
                    if !b.cancel_sent
                        && let Some(invite) = &b.invite
                    {
                        let cancel = crate::sip::dialog::cancel_for(invite);
                        b.cancel_sent = true;
                        let flow = b.leg.dialog.flow.clone();
                        self.cx.send(&flow, cancel);
                    }
                    return;
                }
                b.state = UacState::ExpectFinal;
                self.prack(i, &msg);
                self.callee_progress(i, code, msg.body);
            }
            200..=299 => {
                b.final_headers = x_headers(&msg);
                // RFC 4028 §7.2: a 2xx with Session-Expires names the refresher; without one
                // the far end runs no timer.
                if b.planned.session_expires.is_some()
                    && let Some(se) = session_expires(&msg)
                {
                    let se = se.max(MIN_SE_SECS);
                    // We refresh every half interval; a callee that keeps the refresher must
                    // refresh within the interval, or the session is over (§10).
                    let (refreshing, wait) = if refresher_is_uas(&msg) { (None, se) } else { (Some(se), se / 2) };
                    b.refreshing = refreshing;
                    b.policing = refreshing.is_none().then_some(se);
                    self.cx.timers.set(TimerKey::Session(LegRef::B(i)), now + Duration::from_secs(wait.into()));
                }
                b.leg.dialog.learn_from_response(&msg);
                let cseq = b.invite.as_ref().and_then(SipMessage::cseq).map_or(1, |c| c.0);
                let ack = b.leg.dialog.request_with_cseq(&self.cx.local, Method::Ack, cseq, &self.cx.ids.branch());
                let flow = b.leg.dialog.flow.clone();
                b.ack = Some(ack.clone());
                b.leg.answered_at = Some(self.cx.now.utc);
                self.cx.send(&flow, ack);
                self.cx.timers.cancel(TimerKey::Ringing(LegRef::B(i)));
                if cancelling {
                    // Answered while we cancelled: hang up at once (§15, late 2xx).
                    b.state = UacState::ExpectBye;
                    self.cx.timers.cancel(TimerKey::CancelGrace(LegRef::B(i)));
                    self.end_b(i, None);
                    return;
                }
                b.state = UacState::ExpectMediaApplied;
                self.callee_answered(i, msg.body);
            }
            _ => {
                if let Some(invite) = &b.invite {
                    let ack = ack_for_failure(invite, &msg);
                    let flow = b.leg.dialog.flow.clone();
                    self.cx.send(&flow, ack);
                }
                if matches!(code, 401 | 407) && !cancelling && self.retry_with_credentials(i, &msg, code) {
                    return;
                }
                let Some(b) = self.b.get_mut(i) else { return };
                b.final_headers = x_headers(&msg);
                // Timer D: retransmissions of the failure get the ACK again for a while.
                b.state = UacState::ExpectFailureRetransmissions;
                let linger = if b.leg.dialog.flow.is_reliable() { Duration::ZERO } else { TIMEOUT_64_T1 };
                self.cx.timers.cancel(TimerKey::CancelGrace(LegRef::B(i)));
                self.cx.timers.set(TimerKey::CancelGrace(LegRef::B(i)), now + linger);
                if !cancelling {
                    self.callee_failed(i, LegFailure::from_sip(code));
                }
            }
        }
    }

    /// A reliable provisional (RFC 3262: `Require: 100rel` with `RSeq`) gets a PRACK, once per
    /// RSeq; the PRACK is a transaction of its own, resent until answered.
    fn prack(&mut self, i: usize, resp: &SipMessage) {
        let reliable = resp
            .header_values("Require")
            .iter()
            .any(|v| crate::sip::headers::option_tags(v).any(|t| t.eq_ignore_ascii_case("100rel")));
        let Some(rseq) = resp.header("RSeq").and_then(|v| v.trim().parse::<u32>().ok()) else { return };
        let now = self.cx.now.at;
        let branch = self.cx.ids.branch();
        let local = self.cx.local.clone();
        let Some(b) = self.b.get_mut(i) else { return };
        if !reliable || b.last_rseq.is_some_and(|r| rseq <= r) {
            return;
        }
        b.last_rseq = Some(rseq);
        let Some((cseq, _)) = resp.cseq() else { return };
        let mut prack = b.leg.dialog.request(&local, Method::Prack, &branch);
        prack.push_header("RAck", format!("{rseq} {cseq} INVITE"));
        let flow = b.leg.dialog.flow.clone();
        let resend = Resend::request(prack.clone(), flow.clone(), now);
        self.cx.timers.set(TimerKey::Client(LegRef::B(i)), resend.deadline());
        b.leg.request = Some(resend);
        self.cx.send(&flow, prack);
    }

    /// The final response to our BYE or re-INVITE on a leg.
    fn in_dialog_response(&mut self, leg: LegRef, msg: SipMessage) {
        let Some(code) = msg.status() else { return };
        let local = self.cx.local.clone();
        let l = match leg {
            LegRef::A => &mut self.a.leg,
            LegRef::B(i) => match self.b.get_mut(i) {
                Some(b) => &mut b.leg,
                None => return,
            },
        };
        let Some(request) = &l.request else { return };
        let Some((cseq, method)) = request.cseq() else { return };
        if msg.cseq() != Some((cseq, method.clone())) || code < 200 {
            return;
        }
        l.request = None;
        self.cx.timers.cancel(TimerKey::Client(leg));
        match method {
            Method::Bye => self.leg_done(leg),
            Method::Invite => {
                let ack = if code < 300 {
                    l.dialog.request_with_cseq(&local, Method::Ack, cseq, &self.cx.ids.branch())
                } else {
                    let mut ack = l.dialog.request_with_cseq(&local, Method::Ack, cseq, "");
                    if let Some(via) = msg.header("Via") {
                        ack.set_header("Via", via);
                    }
                    ack
                };
                let flow = l.dialog.flow.clone();
                let endpoint = l.endpoint_id();
                self.cx.send(&flow, ack);
                if code < 300
                    && !msg.body.is_empty()
                    && let Some(endpoint_id) = endpoint
                {
                    let remote_sdp = String::from_utf8_lossy(&msg.body).into_owned();
                    self.cx.media(Op::Ignored, Command::UpdateEndpoint { endpoint_id, remote_sdp });
                }
            }
            _ => {}
        }
    }

    fn leg_done(&mut self, leg: LegRef) {
        match leg {
            LegRef::A => self.a_terminated(),
            LegRef::B(i) => {
                if let Some(call_id) = self.b.get(i).map(|b| b.leg.dialog.call_id.clone()) {
                    self.b_terminated(i, &call_id);
                }
            }
        }
    }

    /// A re-INVITE or UPDATE from a peer: an offer for media to answer (hold, resume, a new
    /// address), or a session refresh without one.
    fn their_offer(&mut self, leg: LegRef, flow: Flow, msg: SipMessage) {
        match leg {
            LegRef::A => self.session_refreshed(&msg),
            LegRef::B(i) => self.callee_refreshed(i, &msg),
        }
        let tag = (leg == LegRef::A).then(|| self.a.tag.clone());
        let contact = self.cx.local.contact(&flow);
        let Some(l) = self.leg_mut(leg) else { return };
        if l.their_offer.is_some() || l.request.as_ref().is_some_and(|r| r.msg.method() == Some(&Method::Invite)) {
            // An offer crossing ours (RFC 3261 §14.2).
            self.reply(&flow, &msg, 491, tag.as_deref());
            return;
        }
        let Some(endpoint) = l.endpoint.clone() else {
            self.reply(&flow, &msg, 488, tag.as_deref());
            return;
        };
        if msg.body.is_empty() {
            // No offer: a session refresh (RFC 4028) or an offer-less re-INVITE. Our current
            // description answers it.
            let mut resp = msg.response(200, tag.as_deref());
            resp.push_header("Contact", contact);
            if msg.method() == Some(&Method::Invite) {
                resp.push_header("Content-Type", "application/sdp");
                resp.body = endpoint.sdp.into_bytes();
            }
            self.cx.send(&flow, resp);
            return;
        }
        let remote_sdp = String::from_utf8_lossy(&msg.body).into_owned();
        l.their_offer = Some((flow, msg));
        self.cx.media(Op::TheirOffer(leg), Command::UpdateEndpoint { endpoint_id: endpoint.id, remote_sdp });
    }

    pub(super) fn their_offer_answered(&mut self, leg: LegRef, result: Result<Reply, MediaFailure>) {
        let tag = (leg == LegRef::A).then(|| self.a.tag.clone());
        let local = self.cx.local.clone();
        let Some(l) = self.leg_mut(leg) else { return };
        let Some((flow, offer)) = l.their_offer.take() else { return };
        let contact = local.contact(&flow);
        match result {
            Ok(Reply::Updated { local_sdp }) => {
                if let Some(ep) = l.endpoint.as_mut() {
                    ep.sdp = local_sdp.clone();
                }
                let mut resp = offer.response(200, tag.as_deref());
                resp.push_header("Contact", contact);
                resp.push_header("Content-Type", "application/sdp");
                resp.body = local_sdp.into_bytes();
                self.cx.send(&flow, resp);
                let direction = offered_direction(&offer.body);
                if let Some(other) = self.bridged_peer(leg) {
                    self.reflect(other, direction);
                }
            }
            Ok(_) | Err(_) => {
                tracing::info!(call_uuid = %self.uuid, "re-INVITE offer refused by media");
                self.reply(&flow, &offer, 488, tag.as_deref());
            }
        }
    }

    /// Asks media for a new offer on `leg` with the direction the other party chose.
    fn reflect(&mut self, leg: LegRef, direction: Direction) {
        let Some(l) = self.leg_mut(leg) else { return };
        if l.reflected.unwrap_or_default() == direction {
            return;
        }
        let Some(endpoint_id) = l.endpoint_id() else { return };
        l.reflected = Some(direction);
        self.cx.media(Op::OurOffer(leg), Command::Reoffer { endpoint_id, direction });
    }

    /// Media's re-offer: sent as a re-INVITE on the leg.
    pub(super) fn our_offer_ready(&mut self, leg: LegRef, result: Result<Reply, MediaFailure>) {
        let now = self.cx.now.at;
        let branch = self.cx.ids.branch();
        let local = self.cx.local.clone();
        let Ok(Reply::Updated { local_sdp }) = result else { return };
        let Some(l) = self.leg_mut(leg) else { return };
        if l.request.is_some() {
            return; // a BYE is under way
        }
        if let Some(ep) = l.endpoint.as_mut() {
            ep.sdp = local_sdp.clone();
        }
        let mut reinvite = l.dialog.request(&local, Method::Invite, &branch);
        reinvite.push_header("Content-Type", "application/sdp");
        reinvite.body = local_sdp.into_bytes();
        let flow = l.dialog.flow.clone();
        let resend = Resend::request(reinvite.clone(), flow.clone(), now);
        let at = resend.deadline();
        l.request = Some(resend);
        self.cx.timers.set(TimerKey::Client(leg), at);
        self.cx.send(&flow, reinvite);
    }

    /// INFO with `application/dtmf-relay` (or `application/dtmf`) from one leg: the digit is
    /// sent to the bridged leg as RFC 4733 events, or collected by a running `input`.
    fn relay_info(&mut self, leg: LegRef, msg: &SipMessage) {
        let Some(digit) = info_digit(msg) else { return };
        match self.bridged_peer(leg).and_then(|p| self.leg_mut(p)).and_then(|l| l.endpoint_id()) {
            Some(endpoint_id) => {
                self.cx.media(Op::Ignored, Command::SendDtmf { endpoint_id, digits: digit.to_string() });
            }
            None => self.digit(digit),
        }
    }

    pub(super) fn leg_mut(&mut self, leg: LegRef) -> Option<&mut super::legs::Leg> {
        match leg {
            LegRef::A => Some(&mut self.a.leg),
            LegRef::B(i) => self.b.get_mut(i).map(|b| &mut b.leg),
        }
    }

    /// The other leg of a bridge, when `leg` is bridged.
    fn bridged_peer(&self, leg: LegRef) -> Option<LegRef> {
        let b = LegRef::B(self.exec.bridged?);
        let caller = self.caller_ref();
        if leg == caller {
            Some(b)
        } else if leg == b {
            Some(caller)
        } else {
            None
        }
    }

    pub(super) fn a_server_timer(&mut self) {
        let now = self.cx.now.at;
        if matches!(self.a.state, UasState::ExpectAnswerDecision) {
            return self.reliable_provisional_timer();
        }
        match &mut self.a.state {
            UasState::ExpectAck(resend) => match resend.on_timer(now) {
                ResendStep::Resend => {
                    let (flow, msg) = (resend.flow.clone(), resend.msg.clone());
                    self.cx.timers.set(TimerKey::Server(LegRef::A), resend.deadline());
                    self.cx.send(&flow, msg);
                }
                ResendStep::Wait => {
                    let at = resend.deadline();
                    self.cx.timers.set(TimerKey::Server(LegRef::A), at);
                }
                ResendStep::GaveUp => {
                    // §13.3.1.4: no ACK in 64·T1: the dialog is confirmed and the session ends.
                    self.a.state = UasState::ExpectBye;
                    let failure = LegFailure::new(CallStatus::Failed, "internal_error", 408, "no ACK for our 200");
                    self.end_call(Outcome::Failed(failure));
                }
            },
            UasState::ExpectFailureAck(tx) => {
                if let Some(resp) = tx.handle_timeout(now).cloned() {
                    let flow = tx.flow().clone();
                    self.cx.send(&flow, resp);
                }
                match tx.poll_timeout() {
                    Some(at) if !tx.is_done() => self.cx.timers.set(TimerKey::Server(LegRef::A), at),
                    _ => self.a_terminated(),
                }
            }
            _ => {}
        }
    }

    /// Timers A/B and E/F of a leg's client transaction.
    pub(super) fn client_timer(&mut self, leg: LegRef) {
        let now = self.cx.now.at;
        let Some(l) = self.leg_mut(leg) else { return };
        let Some(request) = l.request.as_mut() else { return };
        match request.on_timer(now) {
            ResendStep::Resend => {
                let (flow, msg, at) = (request.flow.clone(), request.msg.clone(), request.deadline());
                self.cx.timers.set(TimerKey::Client(leg), at);
                self.cx.send(&flow, msg);
            }
            ResendStep::Wait => {
                let at = request.deadline();
                self.cx.timers.set(TimerKey::Client(leg), at);
            }
            ResendStep::GaveUp => {
                let method = request.msg.method().cloned();
                l.request = None;
                match (leg, method) {
                    // Timer B: the callee never answered our INVITE.
                    (LegRef::B(i), Some(Method::Invite))
                        if self.b.get(i).is_some_and(|b| matches!(b.state, UacState::ExpectProvisional)) =>
                    {
                        if let Some(call_id) = self.b.get(i).map(|b| b.leg.dialog.call_id.clone()) {
                            self.b_terminated(i, &call_id);
                        }
                        let mut failure = LegFailure::from_sip(408);
                        failure.reason = Some("no response to the INVITE (Timer B)".into());
                        failure.sip_code = None;
                        failure.code = 408;
                        self.callee_failed(i, failure);
                    }
                    (_, Some(Method::Bye)) => self.leg_done(leg),
                    _ => {}
                }
            }
        }
    }

    /// The caller's 200: our SDP, Contact, Allow and the session timer we honour.
    pub(super) fn answer_a(&mut self) {
        if !matches!(self.a.state, UasState::ExpectAnswerDecision) {
            return;
        }
        if self.a.unacked.as_ref().is_some_and(|u| !u.msg.body.is_empty()) {
            self.a.answer_waits_for_prack = true;
            return;
        }
        // A reliable provisional without SDP need not be PRACKed first; it stops here.
        if self.a.unacked.take().is_some() {
            self.cx.timers.cancel(TimerKey::Server(LegRef::A));
        }
        let mut resp = self.a.response(200);
        resp.push_header("Contact", self.cx.local.contact(&self.a.flow));
        resp.push_header("Allow", crate::sip::checks::ALLOW_IN_DIALOG);
        if let Some(se) = session_expires(&self.a.invite) {
            // §9: the caller's choice of refresher stands; without one, the caller refreshes.
            let we_refresh = supports_timer(&self.a.invite) && refresher_is_uas(&self.a.invite);
            let refresher = if we_refresh { "uas" } else { "uac" };
            resp.push_header("Session-Expires", format!("{se};refresher={refresher}"));
            if supports_timer(&self.a.invite) {
                resp.push_header("Require", "timer");
            }
            self.a.session_interval = Some(se);
            self.a.we_refresh = we_refresh;
            self.arm_session_timer(se);
        }
        if let Some(Endpoint { sdp, .. }) = &self.a.leg.endpoint {
            resp.push_header("Content-Type", "application/sdp");
            resp.body = sdp.clone().into_bytes();
        }
        let flow = self.a.flow.clone();
        let resend =
            Resend::start(resp.clone(), flow.clone(), crate::sip::timers::Retransmitted::CappedAtT2, self.cx.now.at);
        self.cx.timers.set(TimerKey::Server(LegRef::A), resend.deadline());
        self.a.state = UasState::ExpectAck(resend);
        self.a.leg.answered_at = Some(self.cx.now.utc);
        self.cx.send(&flow, resp);
        self.progress_event(LegRef::A, CallStatus::Answered);
        let uuid = self.a.leg.uuid.clone();
        self.cx.record(super::RecordUpdate::Answered { uuid, at: self.cx.now.utc });
    }

    /// A provisional response to the caller (180, or 183 with our SDP for early media). When
    /// the caller requires 100rel it is reliable: `RSeq`, resent until its PRACK, and no second
    /// one before that PRACK (RFC 3262 §3).
    pub(super) fn provisional_to_a(&mut self, early_media: bool) {
        if !matches!(self.a.state, UasState::ExpectAnswerDecision) || self.a.unacked.is_some() {
            return;
        }
        let mut resp = self.a.response(if early_media { 183 } else { 180 });
        resp.push_header("Contact", self.cx.local.contact(&self.a.flow));
        if self.a.reliable {
            self.a.rseq += 1;
            resp.push_header("Require", "100rel");
            resp.push_header("RSeq", self.a.rseq.to_string());
        }
        if early_media && let Some(ep) = &self.a.leg.endpoint {
            resp.push_header("Content-Type", "application/sdp");
            resp.body = ep.sdp.clone().into_bytes();
        }
        let flow = self.a.flow.clone();
        self.a.last_provisional = Some(resp.clone());
        if self.a.reliable {
            let resend = Resend::start(
                resp.clone(),
                flow.clone(),
                crate::sip::timers::Retransmitted::InviteRequest,
                self.cx.now.at,
            );
            self.cx.timers.set(TimerKey::Server(LegRef::A), resend.deadline());
            self.a.unacked = Some(resend);
        }
        self.cx.send(&flow, resp);
    }

    /// The caller's PRACK: the reliable provisional it names stops; a 2xx that waited for it
    /// goes out.
    fn prack_from_a(&mut self, flow: Flow, msg: SipMessage) {
        let tag = self.a.tag.clone();
        let expected = self.a.unacked.as_ref().and_then(|u| {
            let cseq = u.msg.cseq()?.0;
            Some(format!("{} {cseq} INVITE", u.msg.header("RSeq")?))
        });
        let rack = msg.header("RAck").map(|r| r.split_whitespace().collect::<Vec<_>>().join(" "));
        if expected.is_none() || rack != expected {
            return self.reply(&flow, &msg, 481, Some(&tag));
        }
        self.reply(&flow, &msg, 200, Some(&tag));
        self.a.unacked = None;
        self.cx.timers.cancel(TimerKey::Server(LegRef::A));
        if std::mem::take(&mut self.a.answer_waits_for_prack) {
            self.answer_a();
        }
    }

    /// Timer of the reliable provisional: resent on T1 doubling; no PRACK in 64·T1 ends the
    /// call (§3: the UAS rejects with 5xx).
    fn reliable_provisional_timer(&mut self) {
        let now = self.cx.now.at;
        let Some(resend) = self.a.unacked.as_mut() else { return };
        match resend.on_timer(now) {
            ResendStep::Resend => {
                let (flow, msg, at) = (resend.flow.clone(), resend.msg.clone(), resend.deadline());
                self.cx.timers.set(TimerKey::Server(LegRef::A), at);
                self.cx.send(&flow, msg);
            }
            ResendStep::Wait => {
                let at = resend.deadline();
                self.cx.timers.set(TimerKey::Server(LegRef::A), at);
            }
            ResendStep::GaveUp => {
                self.a.unacked = None;
                let f =
                    LegFailure::new(CallStatus::Failed, "internal_error", 504, "no PRACK for a reliable provisional");
                self.end_call(Outcome::Failed(f));
            }
        }
    }

    /// The refresher refreshes at half the interval (§10); the other side ends the session
    /// when the interval passes without a refresh.
    fn arm_session_timer(&mut self, se: u32) {
        let wait = if self.a.we_refresh { se / 2 } else { se };
        self.cx.timers.set(TimerKey::Session(LegRef::A), self.cx.now.at + Duration::from_secs(wait.into()));
    }

    /// A refresh from callee `i`, which keeps the refresher: its session lives another
    /// interval.
    fn callee_refreshed(&mut self, i: usize, msg: &SipMessage) {
        let Some(b) = self.b.get_mut(i) else { return };
        let Some(current) = b.policing else { return };
        let se = session_expires(msg).unwrap_or(current).max(MIN_SE_SECS);
        b.policing = Some(se);
        self.cx.timers.set(TimerKey::Session(LegRef::B(i)), self.cx.now.at + Duration::from_secs(se.into()));
    }

    /// Half our interval on callee `i` is over: an UPDATE (no offer, RFC 4028 §7.4) refreshes
    /// the session, then again every half interval while the leg lasts. When the callee is the
    /// refresher, its whole interval passed without a refresh: the session is over.
    pub(super) fn b_session_timer(&mut self, i: usize) {
        let (now, branch, local) = (self.cx.now.at, self.cx.ids.branch(), self.cx.local.clone());
        let Some(b) = self.b.get_mut(i) else { return };
        if b.policing.is_some() && matches!(b.state, UacState::ExpectBye) {
            return self.session_expired();
        }
        let Some(se) = b.refreshing.filter(|_| matches!(b.state, UacState::ExpectBye)) else { return };
        if b.leg.request.is_none() {
            let mut update = b.leg.dialog.request(&local, Method::Update, &branch);
            update.push_header("Session-Expires", format!("{se};refresher=uac"));
            update.push_header("Supported", "timer");
            let flow = b.leg.dialog.flow.clone();
            let resend = Resend::request(update.clone(), flow.clone(), now);
            self.cx.timers.set(TimerKey::Client(LegRef::B(i)), resend.deadline());
            b.leg.request = Some(resend);
            self.cx.send(&flow, update);
        }
        self.cx.timers.set(TimerKey::Session(LegRef::B(i)), now + Duration::from_secs((se / 2).into()));
    }

    /// A refresh (re-INVITE or UPDATE) from the caller: the session lives another interval.
    fn session_refreshed(&mut self, msg: &SipMessage) {
        let Some(current) = self.a.session_interval else { return };
        let se = session_expires(msg).unwrap_or(current).max(MIN_SE_SECS);
        self.a.session_interval = Some(se);
        self.arm_session_timer(se);
    }

    pub(super) fn session_timer(&mut self) {
        if !self.a.we_refresh {
            return self.session_expired();
        }
        let Some(se) = self.a.session_interval else { return };
        let now = self.cx.now.at;
        let branch = self.cx.ids.branch();
        let local = self.cx.local.clone();
        // A refresh without an offer (RFC 4028 §7.4 allows UPDATE): the media stays as it is.
        if self.a.leg.request.is_none() && matches!(self.a.state, UasState::ExpectBye) {
            let mut update = self.a.leg.dialog.request(&local, Method::Update, &branch);
            update.push_header("Session-Expires", format!("{se};refresher=uas"));
            update.push_header("Supported", "timer");
            let flow = self.a.leg.dialog.flow.clone();
            let resend = Resend::request(update.clone(), flow.clone(), now);
            self.cx.timers.set(TimerKey::Client(LegRef::A), resend.deadline());
            self.a.leg.request = Some(resend);
            self.cx.send(&flow, update);
        }
        self.arm_session_timer(se);
    }

    /// RFC 4028 §10: no refresh within the interval: the session is over, both legs get BYE.
    pub(super) fn session_expired(&mut self) {
        tracing::info!(call_uuid = %self.uuid, "session timer expired without a refresh");
        let f =
            LegFailure::new(CallStatus::Failed, "session_expired", 408, "no session refresh within Session-Expires");
        self.end_call(Outcome::Failed(f));
    }

    /// RFC 4028 §6: a Session-Expires below our Min-SE gets 422.
    pub(super) fn session_interval_too_small(&mut self) -> bool {
        let Some(se) = session_expires(&self.a.invite) else { return false };
        if se >= MIN_SE_SECS {
            return false;
        }
        let mut resp = self.a.response(422);
        resp.push_header("Min-SE", MIN_SE_SECS.to_string());
        let flow = self.a.flow.clone();
        self.cx.send(&flow, resp.clone());
        let tx = super::txn::FailureAnswered::new(&self.a.invite, resp, flow, self.cx.now.at);
        if let Some(at) = tx.poll_timeout() {
            self.cx.timers.set(TimerKey::Server(LegRef::A), at);
        }
        self.a.state = UasState::ExpectFailureAck(tx);
        self.cx.out.push_back(Output::Listen(Key::CallId(self.a.leg.dialog.call_id.clone())));
        true
    }
}

/// `Session-Expires` (or its compact form `x`) in seconds.
fn session_expires(msg: &SipMessage) -> Option<u32> {
    let v = msg.header("Session-Expires").or_else(|| msg.header("x"))?;
    v.split(';').next()?.trim().parse().ok()
}

fn refresher_is_uas(msg: &SipMessage) -> bool {
    let v = msg.header("Session-Expires").or_else(|| msg.header("x")).unwrap_or_default();
    v.split(';').skip(1).any(|p| p.trim().eq_ignore_ascii_case("refresher=uas"))
}

fn supports_timer(msg: &SipMessage) -> bool {
    msg.header_values("Supported")
        .iter()
        .any(|v| crate::sip::headers::option_tags(v).any(|t| t.eq_ignore_ascii_case("timer")))
}

/// The direction an SDP offer asks for (its first audio stream's, else the session's).
fn offered_direction(body: &[u8]) -> Direction {
    let text = String::from_utf8_lossy(body);
    let Ok(sdp) = SessionDescription::parse(&text) else { return Direction::SendRecv };
    let audio = sdp.media.iter().find(|m| m.media.eq_ignore_ascii_case("audio"));
    let held_by_address = audio.and_then(|m| m.connection).or(sdp.connection).is_some_and(|ip| ip.is_unspecified());
    let dir = audio.and_then(|m| m.direction).or(sdp.direction).unwrap_or_default();
    if held_by_address && dir == Direction::SendRecv { Direction::SendOnly } else { dir }
}

/// The digit of an INFO DTMF body: `Signal=5` (application/dtmf-relay) or `5` (application/dtmf).
fn info_digit(msg: &SipMessage) -> Option<char> {
    let ct = msg.header("Content-Type")?.to_ascii_lowercase();
    let body = String::from_utf8_lossy(&msg.body);
    let value = if ct.starts_with("application/dtmf-relay") {
        body.lines().find_map(|l| {
            let (k, v) = l.split_once('=')?;
            k.trim().eq_ignore_ascii_case("signal").then(|| v.trim().to_owned())
        })?
    } else if ct.starts_with("application/dtmf") {
        body.trim().to_owned()
    } else {
        return None;
    };
    let mut chars = value.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) if c.is_ascii_digit() || matches!(c, '*' | '#' | 'A'..='D') => Some(c),
        _ => None,
    }
}

/// A message's custom (`X-`) headers, as received.
fn x_headers(msg: &SipMessage) -> Vec<(String, String)> {
    msg.headers.iter().filter(|(name, _)| crate::ncco::endpoint::is_custom_header(name)).cloned().collect()
}
