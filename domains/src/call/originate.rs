//! Calls the Voice API places (`POST /v1/calls`): there is no inbound leg, so the call's one
//! endpoint is rung as a `connect` with nobody to bridge, every gateway it fails over to
//! sharing the uuid the API returned; the leg that answers becomes the call's caller, which the
//! NCCO (inline, or from answer_url) then acts on, as it acts on an inbound caller.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use super::executor::Step;
use super::legs::{Inbound, UacState};
use super::timers::{TimerKey, Timers};
use super::{Call, CallContext, Cx, DocumentPurpose, DocumentRequest, Key, LegRef, Op, Output, RecordUpdate, Route};
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
            }),
        };
        let plan = call.connect_plan(&originate.connect)?;
        let to = match &originate.connect.endpoint {
            crate::ncco::Endpoint::Phone(p) => p.number.to_string(),
            _ => plan
                .targets
                .front()
                .map(|t| t.uri.user.clone().unwrap_or_else(|| t.uri.to_string()))
                .unwrap_or_default(),
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
            Some(o) => LegRef::B(o.caller.unwrap_or(usize::MAX)),
            None => LegRef::A,
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
        self.b.get(i).is_some_and(|b| b.originating) && self.originated.as_ref().is_some_and(|o| o.caller.is_none())
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
        let (ncco, detect) = (o.ncco.take(), o.machine_detection.is_some());
        let limit = self.exec.connect.take().map_or(Duration::from_secs(7200), |p| p.limit);
        self.cx.timers.set(TimerKey::CallLength, self.cx.now.at + limit);
        if let (true, Some(endpoint_id)) = (detect, endpoint) {
            self.cx.media(Op::Ignored, Command::DetectMachine { endpoint_id });
        }
        match ncco {
            Some(ncco) => {
                self.exec.program = ncco.0.into();
                self.exec.step = Step::Idle;
                self.next_action();
            }
            None => {
                let region = match &self.route {
                    Route::Application { region, .. } => region.clone(),
                    Route::Forward { .. } => String::new(),
                };
                let params = self.answer_params(&region);
                self.exec.step = Step::ExpectDocument;
                self.answer_url_started = Some(self.cx.now.at);
                self.cx.fetch(DocumentPurpose::AnswerUrl, DocumentRequest::Answer { params });
            }
        }
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
