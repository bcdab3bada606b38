//! Calls the Voice API places (`POST /v1/calls`): there is no inbound leg, so the call's one
//! endpoint is rung as a `connect` with nobody to bridge, every gateway it fails over to
//! sharing the uuid the API returned; the leg that answers becomes the call's caller, which the
//! NCCO (inline, or from answer_url) then acts on, as it acts on an inbound caller. A call to
//! a `websocket` has no SIP leg at all: its party is the media process's WebSocket party
//! endpoint, held as the call's `a` leg, answered when the handshake completes and hung up
//! when the server closes the socket.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use super::executor::Step;
use super::legs::{Inbound, UacState};
use super::timers::{TimerKey, Timers};
use super::{Call, CallContext, Cx, DocumentPurpose, DocumentRequest, Key, LegRef, Op, Output, RecordUpdate};
use super::{executor, ids::Ids, legs, outcome};
use crate::events::{CallStatus, Direction};
use crate::media::Command;
use crate::ncco::Ncco;

/// A call the Voice API places (`POST /v1/calls`): its one endpoint, rung as a `connect`
/// with no caller, and what runs once it answers.
#[derive(Debug, Clone)]
pub struct Originate {
    /// `to`, `from`, `ringing_timer` (the connect's `timeout`), `length_timer` (its `limit`)
    /// and machine detection, as the equivalent `connect` action.
    pub connect: crate::ncco::Connect,
    /// The inline NCCO; `None`: the application's (or the request's) answer_url is asked.
    pub ncco: Option<Ncco>,
}

/// What an originated call keeps: its NCCO until answered, then which leg answered.
#[derive(Debug)]
pub(super) struct Origination {
    pub ncco: Option<Ncco>,
    /// The outbound leg that answered: from then on the call's caller.
    pub caller: Option<usize>,
    pub machine_detection: Option<crate::ncco::MachineDetection>,
    /// After a `machine` verdict, how long to listen for the beep.
    pub beep_timeout_ms: Option<u32>,
    /// `length_timer`: the longest the call lasts once answered.
    pub length: Duration,
    /// The party is a WebSocket (the `a` leg), not a SIP callee.
    pub websocket: bool,
}

impl Call {
    /// A call the Voice API places: its endpoint rung (direction outbound, the returned uuid
    /// shared by every gateway tried), then its NCCO or answer_url run on it once it answers.
    /// Fails before anything is sent when the endpoint cannot be rung (no trunk for the
    /// number, a caller ID the account does not own).
    pub fn originated(ctx: CallContext, originate: Originate, now: super::Now) -> Result<Call, outcome::LegFailure> {
        let mut ids = Ids::new(ctx.seed);
        let uuid = ids.uuid();
        let conversation_uuid = format!("CON-{}", ids.uuid());
        let from = originate.connect.from.as_ref().map(ToString::to_string).unwrap_or_default();
        let cx =
            Cx { out: VecDeque::new(), timers: Timers::default(), ids, local: ctx.local, now, ops: HashMap::new() };
        let mut call = Call {
            cx,
            uuid: uuid.clone(),
            conversation_uuid,
            route: ctx.route,
            region_url: ctx.region_url,
            dialling: ctx.dialling,
            caller_srtp: ctx.caller_srtp,
            a: Inbound::absent(uuid.clone(), from),
            b: Vec::new(),
            exec: executor::Executor::default(),
            ending: None,
            received: now.at,
            answer_url_time: Duration::ZERO,
            answer_url_started: None,
            originated: Some(Origination {
                ncco: originate.ncco,
                caller: None,
                machine_detection: originate.connect.machine_detection.or(originate
                    .connect
                    .advanced_machine_detection
                    .as_ref()
                    .map(|a| a.behavior)),
                beep_timeout_ms: originate.connect.advanced_machine_detection.and_then(|a| a.beep_wait_ms()),
                length: Duration::from_secs(originate.connect.limit.into()),
                websocket: false,
            }),
        };
        if let crate::ncco::Endpoint::Websocket(ws) = &originate.connect.endpoint {
            call.call_websocket(ws);
            return Ok(call);
        }
        let plan = call.connect_plan(&originate.connect)?;
        let to = match &originate.connect.endpoint {
            crate::ncco::Endpoint::Phone(p) => p.number.to_string(),
            _ => plan.targets.front().map(|t| t.uri.to_string()).unwrap_or_default(),
        };
        call.a.leg.to = to.clone();
        call.cx.out.push_back(Output::Listen(Key::Uuid(uuid.clone())));
        call.cx.record(RecordUpdate::Started {
            uuid,
            conversation_uuid: call.conversation_uuid.clone(),
            application_id: call.application_id(),
            direction: Direction::Outbound,
            from: plan.from.clone(),
            to,
            sip_call_id: String::new(),
            at: now.utc,
        });
        call.exec.step = Step::ExpectCalleeAnswer;
        call.start_connect(plan);
        if !call.b.is_empty() {
            // The call's `started` event, under the uuid the API returned.
            call.progress_event(LegRef::B(0), CallStatus::Started);
        }
        Ok(call)
    }

    /// The leg the NCCO acts on: the inbound caller, or the leg an originated call reached.
    pub(super) fn caller_ref(&self) -> LegRef {
        match &self.originated {
            Some(o) if !o.websocket => LegRef::B(o.caller.unwrap_or(usize::MAX)),
            _ => LegRef::A,
        }
    }

    pub(super) fn caller_leg(&self) -> &legs::Leg {
        match self.caller_ref() {
            LegRef::B(i) => self.b.get(i).map_or(&self.a.leg, |b| &b.leg),
            LegRef::A => &self.a.leg,
        }
    }

    /// The caller's media endpoint.
    pub(super) fn caller_endpoint(&self) -> Option<String> {
        self.caller_leg().endpoint_id()
    }

    /// True for a leg an originated call is still trying to reach (before it is answered).
    pub(super) fn is_originating(&self, i: usize) -> bool {
        self.b.get(i).is_some_and(|b| b.originating) && self.originated.is_some() && !self.party_reached()
    }

    /// True for the leg an originated call reached.
    pub(super) fn is_caller(&self, i: usize) -> bool {
        self.originated.as_ref().is_some_and(|o| o.caller == Some(i))
    }

    /// The originated call's party answered (its 2xx ACKed, its SDP applied): it is the
    /// caller now, and its NCCO runs.
    pub(super) fn caller_answered(&mut self, i: usize) {
        self.callee_won(i);
        let Some(b) = self.b.get_mut(i) else { return };
        b.state = UacState::ExpectBye;
        let endpoint = b.leg.endpoint_id();
        let Some(o) = self.originated.as_mut() else { return };
        o.caller = Some(i);
        let detect = o.machine_detection.is_some().then_some(o.beep_timeout_ms);
        self.exec.connect = None;
        if let (Some(beep_timeout_ms), Some(endpoint)) = (detect, endpoint) {
            self.cx.media(Op::Ignored, Command::DetectMachine { endpoint_id: endpoint, beep_timeout_ms });
        }
        self.run_party_program();
    }

    /// The party answered: the length timer starts and its NCCO runs (inline, or fetched from
    /// answer_url now).
    fn run_party_program(&mut self) {
        let Some(o) = self.originated.as_mut() else { return };
        let (ncco, length) = (o.ncco.take(), o.length);
        self.cx.timers.set(TimerKey::CallLength, self.cx.now.at + length);
        match ncco {
            Some(ncco) => {
                self.exec.program = ncco.0.into();
                self.exec.step = Step::Idle;
                self.next_action();
            }
            None => {
                let params = self.answer_params(&self.region());
                self.exec.step = Step::ExpectDocument;
                self.answer_url_started = Some(self.cx.now.at);
                self.cx.fetch(DocumentPurpose::AnswerUrl, DocumentRequest::Answer { params });
            }
        }
    }

    /// An originated call to a WebSocket: the media process opens it as the call's party.
    fn call_websocket(&mut self, ws: &crate::ncco::Websocket) {
        self.a.leg.to = ws.uri.to_string();
        // The party is a leg of its own: its record and terminal event are the call's.
        self.a.leg.reported = false;
        if let Some(o) = self.originated.as_mut() {
            o.websocket = true;
        }
        self.cx.out.push_back(Output::Listen(Key::Uuid(self.uuid.clone())));
        self.record_started(LegRef::A);
        self.progress_event(LegRef::A, CallStatus::Started);
        self.exec.step = Step::ExpectWebsocketParty;
        let target = super::websocket::target(ws);
        self.cx.media(Op::WebsocketParty, Command::CreateWebsocketEndpoint { call_uuid: self.uuid.clone(), target });
    }

    /// The WebSocket party's endpoint exists; the handshake goes on (`ringing` meanwhile).
    pub(super) fn websocket_party_ready(&mut self, result: Result<crate::media::Reply, super::MediaFailure>) {
        match result {
            Ok(crate::media::Reply::Endpoint { endpoint_id, local_sdp, .. }) => {
                self.a.leg.endpoint = Some(legs::Endpoint { id: endpoint_id.clone(), sdp: local_sdp });
                self.cx.out.push_back(Output::Listen(Key::Endpoint(endpoint_id)));
                self.progress_event(LegRef::A, CallStatus::Ringing);
            }
            Ok(other) => {
                let f = outcome::LegFailure::new(
                    CallStatus::Failed,
                    "media_unavailable",
                    503,
                    format!("unexpected {other:?}"),
                );
                self.end_call(outcome::Outcome::Failed(f));
            }
            Err(f) => self.end_call(outcome::Outcome::Failed(super::connect::failure_of(&f))),
        }
    }

    /// True when `endpoint` is an originated call's WebSocket party.
    pub(super) fn is_websocket_party(&self, endpoint: &str) -> bool {
        self.originated.as_ref().is_some_and(|o| o.websocket) && self.a.leg.endpoint_id().as_deref() == Some(endpoint)
    }

    /// The WebSocket party's handshake completed: the call is answered.
    pub(super) fn websocket_party_connected(&mut self, endpoint: &str) {
        if !self.is_websocket_party(endpoint) || self.a.leg.answered_at.is_some() {
            return;
        }
        let at = self.cx.now.utc;
        self.a.leg.answered_at = Some(at);
        self.cx.record(RecordUpdate::Answered { uuid: self.uuid.clone(), at });
        self.progress_event(LegRef::A, CallStatus::Answered);
        self.run_party_program();
    }

    /// The WebSocket party's socket closed: the server hung up (or it never connected).
    pub(super) fn websocket_party_closed(&mut self, reason: Option<String>) {
        if self.a.leg.answered_at.is_none() {
            let reason = reason.unwrap_or_else(|| "the WebSocket server closed before the call started".into());
            let f = outcome::LegFailure::new(CallStatus::Failed, "websocket_failed", 480, reason);
            return self.end_call(outcome::Outcome::Failed(f));
        }
        self.progress_event(LegRef::A, CallStatus::Disconnected);
        self.a.leg.hung_up_by_peer = true;
        self.end_call(outcome::Outcome::Completed { by_user: true });
    }

    /// True once the originated call's party answered.
    pub(super) fn party_reached(&self) -> bool {
        self.originated
            .as_ref()
            .is_some_and(|o| o.caller.is_some() || (o.websocket && self.a.leg.answered_at.is_some()))
    }

    /// The direction of the `a` leg in events and records: the caller's, or an originated
    /// call's party.
    pub(super) fn a_direction(&self) -> Direction {
        if self.originated.is_some() { Direction::Outbound } else { Direction::Inbound }
    }

    /// What answered the originated call was classified: the event goes to the call's
    /// event_url, and a machine is hung up on `hangup`.
    pub(super) fn caller_classified(&mut self, result: &str) {
        let Some(o) = &self.originated else { return };
        let (caller, behaviour) = (o.caller, o.machine_detection);
        let Some(event) = caller.and_then(|i| self.machine_event(i, result)) else { return };
        self.post_ignored(None, event);
        if result == "machine" && behaviour == Some(crate::ncco::MachineDetection::Hangup) {
            tracing::info!(call_uuid = %self.uuid, "answering machine: the call is hung up");
            self.end_call(outcome::Outcome::Completed { by_user: false });
        }
    }
}
