//! `connect`: outbound legs from resolution to bridge. A plan rings its targets one after the
//! other (failing over on 5xx, as number forwarding does) or all at once (the first 2xx wins;
//! the others get CANCEL). Each leg: `Resolve` → media offer → INVITE (Timers A/B, the ringing
//! timeout) → progress relayed to the caller → on 2xx, ACK, the answer to media, bridge, and
//! the caller answered.

use std::collections::VecDeque;
use std::time::Duration;

use super::legs::{Leg, Outbound, UacState, UasState};
use super::outcome::LegFailure;
use super::timers::TimerKey;
use super::txn::Resend;
use super::{Call, Key, LegRef, MediaFailure, Op, Output};
use crate::events::CallStatus;
use crate::media::{Command, ErrorCode, Reply};
use crate::sip::Method;
use crate::sip::dialog::Dialog;
use crate::sip::flow::Flow;
use crate::sip_uri::SipUri;

#[derive(Debug, Clone)]
pub struct Target {
    pub uri: SipUri,
    pub headers: Vec<(String, String)>,
    pub ringing: Duration,
    /// A trunk's username and password.
    pub credentials: Option<(String, String)>,
    /// Which of the target's resolved servers to try (0: the first).
    pub attempt: usize,
    /// The flow to use as it is (a registered contact's), instead of locating the URI.
    pub flow: Option<Flow>,
    /// Targets sharing a fork ring together in a plan that rings one after the other (an
    /// address of record's contacts); the plan moves on once all of them failed.
    pub fork: Option<usize>,
    /// Codecs to offer first, in order (`<Sip codecs>`); else the caller's codec.
    pub codecs: Vec<String>,
    /// `Session-Expires` offered (RFC 4028, `<Sip sessionTimeout>`), in seconds.
    pub session_expires: Option<u32>,
    /// Where the leg's own events go instead of the application's event_url.
    pub status: Option<super::LegHook>,
    /// `Always` for a URI with `;media=srtp`: the leg is offered SRTP only.
    pub srtp: crate::srtp::SrtpPolicy,
}

impl Target {
    /// A target with no headers, credentials or pinned flow, in no fork.
    pub fn new(uri: SipUri, ringing: Duration) -> Target {
        Target {
            uri,
            headers: vec![],
            ringing,
            credentials: None,
            attempt: 0,
            flow: None,
            fork: None,
            codecs: vec![],
            session_expires: None,
            status: None,
            srtp: crate::srtp::SrtpPolicy::Optional,
        }
    }
}

/// How long a gateway may stay silent (not even 100 Trying) before the next is tried; the
/// last gateway gets Timer B.
pub const GATEWAY_NO_RESPONSE: Duration = Duration::from_secs(4);

#[derive(Debug, Clone)]
pub struct ConnectPlan {
    pub targets: VecDeque<Target>,
    /// Ring every target at once.
    pub parallel: bool,
    /// The next target is tried after a 5xx (or a transport failure).
    pub fail_over: bool,
    /// Caller ID user part.
    pub from: String,
    /// Longest call once connected.
    pub limit: Duration,
    /// `dtmfAnswer`: digits sent to the callee once it answers (RFC 4733; `p` = 500 ms pause).
    pub dtmf_answer: Option<String>,
    /// `ringbackTone`: played to the caller (as early media) until a callee answers.
    pub ringback: Option<String>,
    /// `onAnswer`: an NCCO run on the callee before the bridge.
    pub on_answer: Option<super::whisper::OnAnswerPlan>,
    /// `machineDetection` (or the advanced variant's `behavior`): the answered callee is
    /// classified human or machine, and a machine is hung up on `hangup`.
    pub machine_detection: Option<crate::ncco::MachineDetection>,
    /// After a `machine` verdict, how long to listen for the beep.
    pub beep_timeout_ms: Option<u32>,
}

impl Call {
    pub(super) fn start_connect(&mut self, plan: ConnectPlan) {
        self.exec.last_failure = None;
        if let (Some(url), Some(endpoint_id)) = (plan.ringback.clone(), self.caller_endpoint())
            && self.a_is_unanswered()
        {
            // Cosmetic: a media process that cannot play it leaves the caller with silence.
            self.provisional_to_a(true);
            let play_id = self.cx.ids.token(12);
            let source = crate::media::PlaySource::Url { url };
            self.cx.media(Op::Ignored, Command::Play { endpoint_id, play_id, source, loop_count: 0, level: 0.0 });
            self.exec.ringback_playing = true;
        }
        let parallel = plan.parallel;
        self.exec.connect = Some(plan);
        if parallel {
            for _ in 0..crate::ncco::Connect::MAX_PARALLEL {
                if !self.dial_next() {
                    break;
                }
            }
        } else {
            self.dial_next_fork();
        }
    }

    /// Places the next target, and the ones after it in the same fork.
    fn dial_next_fork(&mut self) -> bool {
        let fork = self.exec.connect.as_ref().and_then(|p| p.targets.front()).and_then(|t| t.fork);
        if !self.dial_next() {
            return false;
        }
        while fork.is_some()
            && self.exec.connect.as_ref().and_then(|p| p.targets.front()).is_some_and(|t| t.fork == fork)
            && self.dial_next()
        {}
        true
    }

    /// Places a leg to the plan's next target; false when none is left.
    fn dial_next(&mut self) -> bool {
        let Some(plan) = self.exec.connect.as_mut() else { return false };
        let Some(target) = plan.targets.pop_front() else { return false };
        let from = plan.from.clone();
        let i = self.b.len();
        // Every gateway an originated call tries is the one call the API named.
        let originating = self.originated.is_some() && !self.party_reached();
        let uuid = if originating { self.uuid.clone() } else { self.cx.ids.uuid() };
        let call_id = self.cx.ids.call_id();
        let tag = self.cx.ids.tag();
        let dialog = Dialog {
            call_id,
            local: format!("<sip:{from}@{}>;tag={tag}", self.cx.local.host),
            remote: format!("<{}>", target.uri),
            target: target.uri.to_string(),
            // Until resolved; nothing is sent before.
            flow: Flow::Udp(std::net::SocketAddr::from(([0, 0, 0, 0], 0))),
            next_cseq: 1,
            route_set: Vec::new(),
        };
        let pinned = target.flow.clone();
        if pinned.is_none() {
            let op = self.cx.ids.op();
            self.cx.ops.insert(op, Op::BFlow(i));
            self.cx.out.push_back(Output::Resolve { op, target: target.uri.clone(), attempt: target.attempt });
        }
        let to = target.uri.user.clone().unwrap_or_else(|| target.uri.to_string());
        self.b.push(Outbound {
            leg: Leg::new(uuid, dialog, from, to),
            target: target.uri.clone(),
            headers: target.headers.clone(),
            state: UacState::ExpectFlow,
            invite: None,
            ack: None,
            ringing: target.ringing,
            started: false,
            cancel_sent: false,
            credentials: target.credentials.clone(),
            auth_tried: false,
            next_attempt: None,
            last_rseq: None,
            planned: target,
            failure: None,
            originating,
            final_headers: Vec::new(),
            refreshing: None,
            policing: None,
        });
        if let Some(flow) = pinned {
            self.b_flow_ready(i, Ok(super::Resolved { flow, next_attempt: None }));
        }
        true
    }

    pub(super) fn b_flow_ready(&mut self, i: usize, result: Result<super::Resolved, String>) {
        match result {
            Ok(super::Resolved { flow, next_attempt }) => {
                // The document's codecs, else the caller's first, so the bridge needs no
                // transcoding.
                let caller_codec = || self.caller_leg().endpoint.as_ref().and_then(|e| first_codec(&e.sdp));
                let prefer: Vec<String> = match self.b.get(i).map(|b| &b.planned.codecs) {
                    Some(codecs) if !codecs.is_empty() => codecs.clone(),
                    _ => caller_codec().into_iter().collect(),
                };
                let call_uuid = self.uuid.clone();
                let Some(b) = self.b.get_mut(i) else { return };
                b.leg.dialog.flow = flow;
                b.next_attempt = next_attempt;
                let srtp = b.planned.srtp;
                self.cx.media(Op::BEndpoint(i), Command::CreateEndpoint { call_uuid, remote_sdp: None, prefer, srtp });
                b.state = UacState::ExpectEndpoint;
            }
            Err(e) => {
                let target = self.b.get(i).map(|b| b.target.to_string()).unwrap_or_default();
                self.callee_failed(
                    i,
                    LegFailure::new(CallStatus::Failed, "cannot_route", 480, format!("{target}: {e}")),
                );
            }
        }
    }

    pub(super) fn b_endpoint_ready(&mut self, i: usize, result: Result<Reply, MediaFailure>) {
        let (endpoint_id, local_sdp) = match result {
            Ok(Reply::Endpoint { endpoint_id, local_sdp, .. }) => (endpoint_id, local_sdp),
            Ok(other) => return self.callee_failed(i, media_failure(&format!("unexpected reply {other:?}"))),
            Err(f) => return self.callee_failed(i, media_failure(&f.message)),
        };
        let now = self.cx.now.at;
        let branch = self.cx.ids.branch();
        let local = self.cx.local.clone();
        // Loop protection (RFC 3261 §16.6 step 3, as a proxy would): one hop fewer than we got.
        let hops = self.a.invite.max_forwards().map_or(70, |mf| mf.saturating_sub(1));
        let Some(b) = self.b.get_mut(i) else { return };
        let mut invite = b.leg.dialog.request(&local, Method::Invite, &branch);
        invite.set_header("Max-Forwards", hops.to_string());
        for (n, v) in &b.headers {
            invite.push_header(n, v.clone());
        }
        // Reliable provisionals are PRACKed (RFC 3262), so a far end that requires them can;
        // a session interval is offered when the document asks (RFC 4028 §7.1).
        match b.planned.session_expires {
            Some(se) => {
                invite.push_header("Supported", "100rel, timer");
                invite.push_header("Session-Expires", se.to_string());
            }
            None => invite.push_header("Supported", "100rel"),
        }
        invite.push_header("Content-Type", "application/sdp");
        invite.body = local_sdp.clone().into_bytes();
        b.leg.endpoint = Some(super::legs::Endpoint { id: endpoint_id.clone(), sdp: local_sdp });
        let flow = b.leg.dialog.flow.clone();
        let resend = Resend::request(invite.clone(), flow.clone(), now);
        self.cx.timers.set(TimerKey::Client(LegRef::B(i)), resend.deadline());
        self.cx.timers.set(TimerKey::Ringing(LegRef::B(i)), now + b.ringing);
        let more = b.next_attempt.is_some()
            || self.exec.connect.as_ref().is_some_and(|p| p.fail_over && !p.targets.is_empty());
        if more {
            self.cx.timers.set(TimerKey::NoResponse(LegRef::B(i)), now + GATEWAY_NO_RESPONSE);
        }
        b.leg.request = Some(resend);
        b.invite = Some(invite.clone());
        b.state = UacState::ExpectProvisional;
        b.started = true;
        let (call_id, uuid) = (b.leg.dialog.call_id.clone(), b.leg.uuid.clone());
        self.cx.out.push_back(Output::Listen(Key::CallId(call_id)));
        self.cx.out.push_back(Output::Listen(Key::Uuid(uuid)));
        self.cx.out.push_back(Output::Listen(Key::Endpoint(endpoint_id)));
        self.cx.send(&flow, invite);
        let total = now.saturating_duration_since(self.received);
        let added = total.saturating_sub(self.answer_url_time);
        self.cx.out.push_back(Output::Dialled { total, added });
        // An originated call's record and `started` event went out when it was placed.
        if !self.is_originating(i) {
            self.record_started(LegRef::B(i));
            self.progress_event(LegRef::B(i), CallStatus::Started);
        }
    }

    /// A 18x from a callee: early media bridged, progress relayed to the caller.
    pub(super) fn callee_progress(&mut self, i: usize, code: u16, body: Vec<u8>) {
        let early_media = !body.is_empty();
        if early_media && let Some(endpoint_id) = self.b.get(i).and_then(|b| b.leg.endpoint_id()) {
            let remote_sdp = String::from_utf8_lossy(&body).into_owned();
            self.cx.media(Op::BEarly(i), Command::UpdateEndpoint { endpoint_id, remote_sdp });
        }
        if code == 180 || early_media {
            if !self.exec.rang.contains(&i) {
                self.exec.rang.push(i);
                self.progress_event(LegRef::B(i), CallStatus::Ringing);
            }
            self.provisional_to_a(early_media);
        }
    }

    pub(super) fn b_early_applied(&mut self, i: usize, result: Result<Reply, MediaFailure>) {
        match result {
            Ok(_) => self.bridge(i, false),
            Err(f) => tracing::info!(call_uuid = %self.uuid, error = %f.message, "early media SDP refused"),
        }
    }

    /// The answered callee's media is set up: its whisper first, if the connect has one.
    fn callee_ready(&mut self, i: usize) {
        if self.is_originating(i) {
            return self.caller_answered(i);
        }
        match self.exec.connect.as_ref().and_then(|p| p.on_answer.clone()) {
            Some(plan) => self.start_whisper(i, plan),
            None => self.bridge(i, true),
        }
    }

    pub(super) fn bridge(&mut self, i: usize, answer: bool) {
        let a = self.caller_endpoint();
        let b = self.b.get(i).and_then(|b| b.leg.endpoint_id());
        if let (Some(a), Some(b)) = (a, b) {
            self.cx.media(Op::Bridge { b: i, answer }, Command::Bridge { a, b });
        }
    }

    /// The callee's 2xx (already ACKed): its SDP to media, then bridge.
    pub(super) fn callee_answered(&mut self, i: usize, body: Vec<u8>) {
        let endpoint = self.b.get(i).and_then(|b| b.leg.endpoint_id());
        match endpoint {
            Some(endpoint_id) if !body.is_empty() => {
                let remote_sdp = String::from_utf8_lossy(&body).into_owned();
                self.cx.media(Op::BAnswer(i), Command::UpdateEndpoint { endpoint_id, remote_sdp });
            }
            _ => self.callee_ready(i),
        }
    }

    pub(super) fn b_answer_applied(&mut self, i: usize, result: Result<Reply, MediaFailure>) {
        match result {
            Ok(_) => self.callee_ready(i),
            Err(f) => {
                let failure = LegFailure::new(
                    CallStatus::Failed,
                    "cannot_route",
                    488,
                    format!("far-end SDP refused: {}", f.message),
                );
                self.callee_failed(i, failure);
            }
        }
    }

    pub(super) fn bridged(&mut self, i: usize, answer: bool, result: Result<Reply, MediaFailure>) {
        if !answer {
            return;
        }
        if let Err(f) = result {
            return self.callee_failed(i, media_failure(&f.message));
        }
        let Some(b) = self.b.get_mut(i) else { return };
        if !matches!(b.state, UacState::ExpectMediaApplied) {
            return;
        }
        b.state = UacState::ExpectBye;
        // A whispered callee was announced when it answered.
        if self.exec.whisper.take().is_none() {
            self.callee_won(i);
        }
        self.exec.bridged = Some(i);
        self.exec.step = super::executor::Step::ExpectHangup;
        self.stop_ringback();
        self.answer_a();
        let digits = self.exec.connect.as_ref().and_then(|p| p.dtmf_answer.clone());
        if let (Some(digits), Some(endpoint_id)) = (digits, self.b.get(i).and_then(|b| b.leg.endpoint_id())) {
            self.cx.media(Op::Action("connect"), Command::SendDtmf { endpoint_id, digits });
        }
        let detect = self.exec.connect.as_ref().filter(|p| p.machine_detection.is_some()).map(|p| p.beep_timeout_ms);
        if let (Some(beep_timeout_ms), Some(endpoint_id)) = (detect, self.b.get(i).and_then(|b| b.leg.endpoint_id())) {
            self.cx.media(Op::Ignored, Command::DetectMachine { endpoint_id, beep_timeout_ms });
        }
        let limit = self.exec.connect.as_ref().map_or(Duration::from_secs(7200), |p| p.limit);
        self.cx.timers.set(TimerKey::Limit, self.cx.now.at + limit);
    }

    /// The answered callee was classified: the application hears of it, and a machine is hung
    /// up when the connect asked for that (the NCCO goes on).
    pub(super) fn machine_detected(&mut self, endpoint: &str, result: &str) {
        if self.originated.is_some() && self.caller_endpoint().as_deref() == Some(endpoint) {
            return self.caller_classified(result);
        }
        let Some(i) =
            self.exec.bridged.filter(|i| self.b.get(*i).and_then(|b| b.leg.endpoint_id()).as_deref() == Some(endpoint))
        else {
            return;
        };
        let Some(event) = self.machine_event(i, result) else { return };
        let webhook = self.exec.connect_event.clone();
        self.post_ignored(webhook, event);
        let hang_up =
            self.exec.connect.as_ref().and_then(|p| p.machine_detection) == Some(crate::ncco::MachineDetection::Hangup);
        if result == "machine" && hang_up {
            tracing::info!(call_uuid = %self.uuid, "answering machine: the callee is hung up");
            self.exec.bridged = None;
            self.cx.timers.cancel(TimerKey::Limit);
            self.end_b(i, None);
            self.connect_done();
        }
    }

    /// The machine-detection event of leg `i` (Vonage's shape).
    pub(super) fn machine_event(&self, i: usize, result: &str) -> Option<serde_json::Value> {
        let b = self.b.get(i)?;
        let mut event = serde_json::json!({
            "uuid": b.leg.uuid,
            "conversation_uuid": self.conversation_uuid,
            "call_uuid": self.uuid,
            "status": result,
            "from": b.leg.from,
            "to": b.leg.to,
            "timestamp": self.cx.iso(),
        });
        if result == "beep"
            && let Some(e) = event.as_object_mut()
        {
            // Vonage's advanced machine detection: the machine's beep, as a sub-state.
            e.insert("status".into(), "machine".into());
            e.insert("sub_state".into(), "beep_start".into());
        }
        Some(event)
    }

    /// The callee `i` answered first: its `answered` event, and the other forks cancelled.
    pub(super) fn callee_won(&mut self, i: usize) {
        let Some(b) = self.b.get(i) else { return };
        let uuid = b.leg.uuid.clone();
        self.progress_event(LegRef::B(i), CallStatus::Answered);
        self.cx.record(super::RecordUpdate::Answered { uuid, at: self.cx.now.utc });
        // A transfer's target answered: its referrer hears so before it is released.
        self.transfer_settled("SIP/2.0 200 OK");
        for j in 0..self.b.len() {
            if j != i && self.b.get(j).is_some_and(|o| !o.is_terminated() && !o.leg.reported) {
                self.end_b(j, None);
            }
        }
        if let Some(plan) = self.exec.connect.as_mut() {
            plan.targets.clear();
        }
        self.stop_ringback();
        self.dial_recording_reached(true);
    }

    pub(super) fn stop_ringback(&mut self) {
        if std::mem::take(&mut self.exec.ringback_playing)
            && let Some(endpoint_id) = self.caller_endpoint()
        {
            self.cx.media(Op::Ignored, Command::StopPlay { endpoint_id });
        }
    }

    /// A gateway that never answered: the next one.
    pub(super) fn gateway_silent(&mut self, i: usize) {
        if self.b.get(i).is_some_and(|b| matches!(b.state, UacState::ExpectProvisional)) {
            let failure = LegFailure::new(CallStatus::Failed, "cannot_route", 408, "the gateway did not respond");
            self.callee_failed(i, failure);
        }
    }

    /// The trunk's 401/407: the INVITE again with credentials (once), same dialog, next CSeq.
    /// False when there is nothing to answer it with.
    pub(super) fn retry_with_credentials(&mut self, i: usize, resp: &crate::sip::SipMessage, code: u16) -> bool {
        let now = self.cx.now.at;
        let (challenge_header, answer_header) = if code == 407 {
            ("Proxy-Authenticate", "Proxy-Authorization")
        } else {
            ("WWW-Authenticate", "Authorization")
        };
        let branch = self.cx.ids.branch();
        let cnonce = self.cx.ids.token(16);
        let local = self.cx.local.clone();
        let Some(b) = self.b.get_mut(i) else { return false };
        let (Some((user, password)), false, Some(previous)) = (b.credentials.clone(), b.auth_tried, b.invite.clone())
        else {
            return false;
        };
        let Some(challenge) = resp.header(challenge_header).and_then(|h| crate::digest::Challenge::parse(h).ok())
        else {
            return false;
        };
        b.auth_tried = true;
        let uri = previous.request_uri().unwrap_or_default().to_owned();
        let mut invite = b.leg.dialog.request(&local, Method::Invite, &branch);
        // The first INVITE's own headers (custom headers, Content-Type, Max-Forwards) carry
        // over; what the dialog writes afresh (Via, CSeq, …) does not.
        let fresh: Vec<String> = invite.headers.iter().map(|(n, _)| n.to_ascii_lowercase()).collect();
        for (name, value) in &previous.headers {
            if name.eq_ignore_ascii_case("Max-Forwards") {
                invite.set_header("Max-Forwards", value.clone());
            } else if !fresh.contains(&name.to_ascii_lowercase()) {
                invite.push_header(name, value.clone());
            }
        }
        invite.push_header(answer_header, challenge.answer(&user, &password, "INVITE", &uri, &cnonce, 1));
        invite.body = previous.body.clone();
        let flow = b.leg.dialog.flow.clone();
        let resend = Resend::request(invite.clone(), flow.clone(), now);
        self.cx.timers.set(TimerKey::Client(LegRef::B(i)), resend.deadline());
        b.leg.request = Some(resend);
        b.invite = Some(invite.clone());
        b.state = UacState::ExpectProvisional;
        self.cx.send(&flow, invite);
        true
    }

    pub(super) fn ringing_timeout(&mut self, i: usize) {
        // The connect's ringing time is over: no other target is tried.
        if let Some(plan) = self.exec.connect.as_mut() {
            plan.targets.clear();
        }
        let failure = LegFailure {
            status: CallStatus::Timeout,
            detail: None,
            code: 480,
            reason: Some("ringing timeout".into()),
            sip_code: None,
        };
        self.callee_failed(i, failure);
    }

    pub(super) fn cancel_grace_over(&mut self, i: usize) {
        if let Some(call_id) = self.b.get(i).map(|b| b.leg.dialog.call_id.clone()) {
            self.b_terminated(i, &call_id);
        }
    }

    /// A leg of the running connect failed: the next target, or the connect ends.
    pub(super) fn callee_failed(&mut self, i: usize, failure: LegFailure) {
        if self.ending.is_some() {
            return;
        }
        let fails_over = matches!(failure.sip_code, Some(500..=599) | None);
        let mut next_server = None;
        if let Some(b) = self.b.get_mut(i) {
            b.failure = Some(failure.clone());
            // The same target's next server (RFC 3263 §4.3), before the plan's next target.
            if fails_over && let Some(attempt) = b.next_attempt {
                next_server = Some(Target { attempt, ..b.planned.clone() });
            }
        }
        if let (Some(target), Some(plan)) = (next_server, self.exec.connect.as_mut())
            && failure.status != CallStatus::Timeout
        {
            plan.targets.push_front(target);
            plan.fail_over = true;
        }
        let originating = self.is_originating(i);
        if originating
            && let Some(plan) = &self.exec.connect
            && plan.fail_over
            && fails_over
            && !plan.targets.is_empty()
            && let Some(b) = self.b.get_mut(i)
        {
            // The call goes on at the next gateway under the same uuid: this one is not its end.
            b.leg.reported = true;
        }
        self.end_b(i, Some(failure.clone()));
        self.exec.last_failure = Some(failure.clone());
        if !self.is_referrer(i) {
            let code = failure.sip_code.unwrap_or(failure.code);
            let line = format!("SIP/2.0 {code} {}", crate::sip::message::reason_phrase(code));
            self.transfer_settled(&line);
        }
        let Some(plan) = &self.exec.connect else { return };
        let others_ringing = self.b.iter().any(|b| !b.leg.reported && !b.is_terminated());
        let forked = self.b.get(i).is_some_and(|b| b.planned.fork.is_some());
        if (plan.parallel || forked) && others_ringing {
            return;
        }
        if plan.fail_over && fails_over && self.dial_next_fork() {
            return;
        }
        if others_ringing {
            return;
        }
        if originating {
            return self.end_call(super::Outcome::Failed(failure));
        }
        self.connect_done();
    }

    /// The bridged callee hung up: the connect is over and the NCCO goes on.
    pub(super) fn callee_hung_up(&mut self, i: usize) {
        if self.is_caller(i) {
            return self.end_call(super::Outcome::Completed { by_user: true });
        }
        if self.exec.bridged == Some(i) {
            self.exec.bridged = None;
            self.exec.hung_up_by_user = true;
            self.cx.timers.cancel(TimerKey::Limit);
            self.connect_done();
        } else if self.whispered_callee_gone(i) {
            self.exec.hung_up_by_user = true;
            self.connect_done();
        }
    }

    fn connect_done(&mut self) {
        self.exec.connect = None;
        self.exec.step = super::executor::Step::Idle;
        let action = self.exec.dial_action.take();
        if self.dial_recording_stopped(action.as_ref()) {
            return;
        }
        if let Some((action, first)) = action {
            return self.dialled(action, first, Vec::new());
        }
        self.next_action();
    }

    /// Whether the Voice API may steer the leg now: played to, muted, sent digits or
    /// transferred only once answered (Vonage answers 400 before); hung up any time.
    pub fn check_control(&self, control: &super::Control) -> Result<(), ControlRefused> {
        let uuid = control.uuid();
        if self.ending.is_some() {
            return Err(ControlRefused::Ended(uuid.to_owned()));
        }
        if matches!(control, super::Control::Hangup { .. }) {
            return Ok(());
        }
        let answered = if uuid == self.uuid {
            !self.a_is_unanswered()
        } else {
            match self.b.iter().find(|b| b.leg.uuid == uuid && !b.leg.reported) {
                Some(b) => b.leg.answered_at.is_some(),
                None => return Err(ControlRefused::Ended(uuid.to_owned())),
            }
        };
        if answered { Ok(()) } else { Err(ControlRefused::NotAnswered(uuid.to_owned())) }
    }

    /// The Voice API hangs up a leg.
    pub(super) fn on_control(&mut self, control: super::Control) {
        if self.ending.is_some() {
            return;
        }
        let uuid = match control {
            super::Control::Hangup { uuid } => uuid,
            super::Control::Transfer { uuid, .. } if uuid == self.uuid && self.a_is_unanswered() => {
                return tracing::info!(call_uuid = %self.uuid, "transfer before the call is answered: ignored");
            }
            super::Control::Transfer { uuid, to } if uuid == self.uuid => return self.transfer(to),
            super::Control::Transfer { uuid, .. } => {
                return tracing::info!(call_uuid = %self.uuid, leg = %uuid, "transfer of an outbound leg: ignored");
            }
            other => return self.leg_media_control(other),
        };
        if uuid == self.uuid {
            tracing::info!(call_uuid = %self.uuid, "hung up through the Voice API");
            return if self.a_is_unanswered() {
                let f = LegFailure::new(CallStatus::Failed, "api_hangup", 480, "hung up through the Voice API");
                self.end_call(super::Outcome::Failed(f))
            } else {
                self.end_call(super::Outcome::Completed { by_user: false })
            };
        }
        let Some(i) = self.b.iter().position(|b| b.leg.uuid == uuid && !b.leg.reported) else { return };
        if self.exec.bridged == Some(i) {
            self.exec.bridged = None;
            self.cx.timers.cancel(TimerKey::Limit);
            self.end_b(i, None);
            self.connect_done();
        } else {
            let f = LegFailure::new(CallStatus::Cancelled, "api_hangup", 487, "hung up through the Voice API");
            self.callee_failed(i, f);
        }
    }

    /// A Voice API control that acts on a leg's media: sent to its endpoint as it is now.
    fn leg_media_control(&mut self, control: super::Control) {
        let uuid = control.uuid().to_owned();
        let endpoint = if uuid == self.uuid {
            self.caller_endpoint()
        } else {
            self.b.iter().find(|b| b.leg.uuid == uuid && !b.leg.reported).and_then(|b| b.leg.endpoint_id())
        };
        let Some(endpoint_id) = endpoint else {
            return tracing::info!(call_uuid = %self.uuid, leg = %uuid, "media control for a leg without media: ignored");
        };
        let command = match control {
            super::Control::Mute { muted, .. } => Command::Mute { endpoint_id, muted },
            super::Control::Earmuff { earmuffed, .. } => Command::Earmuff { endpoint_id, earmuffed },
            super::Control::Play { source, loop_count, level, .. } => {
                let play_id = format!("api-{}", self.cx.ids.token(12));
                Command::Play { endpoint_id, play_id, source, loop_count, level }
            }
            super::Control::StopPlay { .. } => Command::StopPlay { endpoint_id },
            super::Control::Dtmf { digits, .. } => Command::SendDtmf { endpoint_id, digits },
            super::Control::Hangup { .. } | super::Control::Transfer { .. } => return,
        };
        self.cx.media(Op::Ignored, command);
    }

    /// The connect's `limit`: an NCCO call ends there; a TwiML `<Dial timeLimit>` ends the
    /// dial only (the callee is hung up) and the document goes on, as Twilio does.
    pub(super) fn connect_limit_reached(&mut self) {
        match self.exec.bridged {
            Some(i) if self.exec.twiml_dial => {
                tracing::info!(call_uuid = %self.uuid, "the dial reached its time limit");
                self.exec.bridged = None;
                self.end_b(i, None);
                self.connect_done();
            }
            _ => self.limit_reached(),
        }
    }

    pub(super) fn limit_reached(&mut self) {
        tracing::info!(call_uuid = %self.uuid, "call reached its limit");
        self.end_call(super::Outcome::Completed { by_user: false });
    }

    pub(super) fn a_is_unanswered(&self) -> bool {
        match &self.originated {
            Some(_) => !self.party_reached(),
            None => matches!(self.a.state, UasState::ExpectAnswerDecision),
        }
    }
}

/// Why a Voice API control was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlRefused {
    #[error("call {0} is not answered yet")]
    NotAnswered(String),
    #[error("call {0} has ended")]
    Ended(String),
}

fn media_failure(message: &str) -> LegFailure {
    LegFailure::new(CallStatus::Failed, "media_unavailable", 503, message)
}

/// How a media failure ends the call: a negotiation failure is the caller's SDP (488).
pub(super) fn failure_of(f: &MediaFailure) -> LegFailure {
    match f.code {
        Some(ErrorCode::Negotiation) => LegFailure::new(CallStatus::Failed, "cannot_route", 488, f.message.clone()),
        _ => media_failure(&f.message),
    }
}

/// The codec of the first payload type of an SDP's audio line (static types only).
fn first_codec(sdp: &str) -> Option<String> {
    let m = sdp.lines().find_map(|l| l.trim().strip_prefix("m=audio "))?;
    match m.split_whitespace().nth(2)? {
        "0" => Some("PCMU".into()),
        "8" => Some("PCMA".into()),
        _ => None,
    }
}
