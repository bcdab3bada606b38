//! The call core: one call — its inbound leg (voxbridge as UAS), the outbound legs `connect`
//! places (voxbridge as UAC), their transactions, dialogs and route sets, and the NCCO being
//! run — as a state machine with no I/O, in the manner of quinn-proto's `Connection` and
//! str0m's `Rtc`.
//!
//! Contract: after each `handle_*` the driver calls [`Call::poll_output`] until it returns
//! `None`, then sleeps until [`Call::poll_timeout`] or the next input. Every input carries
//! [`Now`]; the core never reads a clock, and its tags, branches and UUIDs come from a
//! generator seeded in [`CallContext`], so a run repeats byte for byte. It never blocks: a
//! media command, a document or a resolution is an [`Output`] whose result comes back later
//! as an [`Input`], so a CANCEL or BYE is handled whatever is outstanding.
//!
//! Modules: `legs` (leg state, named for what each waits for), `sip_in` (SIP on each leg),
//! `connect` (outbound legs), `executor` (the NCCO program), `outcome` (events and records),
//! `txn` (RFC 3261 timers as deadlines), `timers`, `ids`.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::events::{CallEvent, CallStatus, Direction};
use crate::forward::ForwardTarget;
use crate::media::{Command, ErrorCode, Reply};
use crate::ncco::Ncco;
use crate::ncco::common::Webhook;
use crate::sip::SipMessage;
use crate::sip::dialog::Local;
use crate::sip::flow::Flow;
use crate::sip_uri::SipUri;

pub(crate) mod connect;
pub(crate) mod executor;
pub mod ids;
mod legs;
mod originate;
mod outcome;
mod recording;
mod refer;
mod sip_in;
pub mod speech_input;
pub use sip_in::MIN_SE_SECS;
pub mod timers;
mod transfer;
mod twiml;
pub mod txn;
mod websocket;
mod whisper;

#[cfg(test)]
mod tests;

pub use connect::ControlRefused;
use ids::Ids;
pub use ids::OpId;
use legs::{Inbound, Outbound};
pub use originate::Originate;
use originate::Origination;
pub use outcome::{LegFailure, Outcome};
use timers::{TimerKey, Timers};
pub use transfer::TransferTo;

/// The moment an input happens: a monotonic instant for timers, UTC for events and records.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    pub at: Instant,
    pub utc: DateTime<Utc>,
}

/// Which leg: the inbound one, or the n-th outbound one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LegRef {
    A,
    B(usize),
}

/// Where a leg's target was found (RFC 3263): the flow to the candidate used, and the attempt
/// to ask for if that server fails, when the target has more candidates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub flow: Flow,
    pub next_attempt: Option<usize>,
}

/// What the edge decided an admitted INVITE is for.
#[derive(Debug, Clone)]
pub enum Route {
    Application {
        application_id: String,
        region: String,
        /// How its webhooks are asked (Twilio's parameters for `twiml`).
        dialect: crate::application::Dialect,
        /// The transport of a document's `<Sip>` URI that names none.
        sip_transport: crate::sip_uri::Transport,
    },
    /// A number forwarded to SIP URIs, tried in order on 5xx.
    Forward { targets: Vec<ForwardTarget> },
    /// An NCCO the platform runs for the call, with no answer_url: a PBX's call to the PSTN is
    /// a `connect` to the number through the trunks. Its events go to the account's default
    /// application when one is set.
    Program { ncco: Ncco, application_id: Option<String> },
}

/// What a call is given when it starts.
#[derive(Debug, Clone)]
pub struct CallContext {
    pub seed: u64,
    pub local: Local,
    pub route: Route,
    /// `region_url` in answer_url requests.
    pub region_url: String,
    /// What outbound legs to phones and PBXs need.
    pub dialling: std::sync::Arc<Dialling>,
    /// Whether the caller's media may, must or must not be SRTP (its domain's `srtp`).
    pub caller_srtp: crate::srtp::SrtpPolicy,
}

/// The account's trunks and numbers, for `connect` to `phone`, `vbc` and a `sip` domain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dialling {
    pub trunks: Vec<crate::trunk::Trunk>,
    /// The account's numbers (E.164 digits): the only caller IDs a trunk leg may carry.
    pub numbers: Vec<String>,
    /// The contacts domain users registered, for the `app` endpoint.
    pub registered: Vec<Registered>,
    /// The account's default application: told of the calls no application answers.
    pub default_application_id: Option<String>,
    /// The account's Twilio-style Account SID (`X-Twilio-AccountSid` of `<Dial><Sip>`).
    pub account_sid: Option<String>,
}

/// A contact a domain user registered, and the flow its REGISTER came over (requests to it go
/// back that way, through the NAT in between; `None`: located from the contact URI).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    /// The domain the user registered in, or the trunk realm for a PBX.
    pub domain: String,
    /// The application of the user's domain (none on the trunk host): an `app` endpoint
    /// reaches its own users only.
    pub application_id: Option<String>,
    pub user: String,
    pub contact: String,
    pub flow: Option<Flow>,
    /// Its domain's `srtp` policy: `always` offers its phones SRTP only.
    pub srtp: crate::srtp::SrtpPolicy,
}

/// A media command that failed; `code` is `None` when no media process answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaFailure {
    pub code: Option<ErrorCode>,
    pub message: String,
}

/// Media events that concern a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaEvent {
    RtpTimeout {
        endpoint: String,
    },
    Dtmf {
        endpoint: String,
        digit: char,
    },
    PlaybackDone {
        endpoint: String,
        play_id: String,
        /// Why it could not play (a bad stream URL or file).
        error: Option<String>,
    },
    RecordDone {
        endpoint: String,
        record_id: String,
        size: u64,
        duration_ms: u64,
        error: Option<String>,
    },
    /// The conversation the endpoint was in ended (a member with `endOnExit` left).
    ConferenceEnded {
        endpoint: String,
    },
    /// The answering-machine detector classified what answered (`human`, `machine`, `unknown`).
    MachineDetected {
        endpoint: String,
        result: String,
    },
    /// A WebSocket's handshake completed (a `connect`'s, or an originated call's party).
    WsConnected {
        endpoint: String,
    },
    /// The WebSocket of a `connect` closed, by the server or because it failed (`reason`).
    WsClosed {
        endpoint: String,
        reason: Option<String>,
    },
    /// A `transcribe` on the endpoint is over.
    SpeechDone {
        endpoint: String,
        transcribe_id: String,
        result: crate::events::SpeechResult,
    },
    /// The media process holding the call's endpoints is gone.
    ProcessLost,
}

impl MediaEvent {
    /// The endpoint an event is about (`None` for a process-wide one).
    pub fn endpoint(&self) -> Option<&str> {
        match self {
            MediaEvent::RtpTimeout { endpoint }
            | MediaEvent::Dtmf { endpoint, .. }
            | MediaEvent::PlaybackDone { endpoint, .. }
            | MediaEvent::RecordDone { endpoint, .. }
            | MediaEvent::WsClosed { endpoint, .. }
            | MediaEvent::WsConnected { endpoint }
            | MediaEvent::ConferenceEnded { endpoint }
            | MediaEvent::MachineDetected { endpoint, .. }
            | MediaEvent::SpeechDone { endpoint, .. } => Some(endpoint),
            MediaEvent::ProcessLost => None,
        }
    }
}

/// Where a callee leg's events go instead of the application's event_url: NCCO `connect`'s
/// `eventUrl`, or a TwiML noun's `statusCallback` (its chosen events only, with the parent
/// call's `CallSid` as `ParentCallSid`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegHook {
    pub webhook: crate::ncco::common::Webhook,
    /// The `StatusCallbackEvent` names sent; `None`: every event.
    pub events: Option<Vec<String>>,
    /// The parent call's uuid (a TwiML child leg's `ParentCallSid`).
    pub parent: Option<String>,
}

/// A document the call needs from the application.
#[derive(Debug, Clone, PartialEq)]
pub enum DocumentRequest {
    /// The application's answer_url, with these parameters.
    Answer { params: Vec<(String, String)> },
    /// `body` posted to an action's `eventUrl`, or to the application's event_url when
    /// `None`; an NCCO in the reply replaces the rest of the program.
    Post { webhook: Option<Webhook>, body: serde_json::Value },
    /// A TwiML callback (`<Gather action>`, `<Dial action>`, `<Redirect>`): `params` sent as
    /// Twilio sends them (a form for POST, the query for GET); a document in the reply
    /// replaces the program.
    Form { callback: crate::ncco::common::Callback, params: Vec<(String, String)> },
}

pub enum Input {
    /// A message of one of the call's dialogs (by Call-ID).
    Sip {
        flow: Flow,
        msg: SipMessage,
    },
    MediaReply {
        op: OpId,
        result: Result<Reply, MediaFailure>,
    },
    Media(MediaEvent),
    /// The document asked for; `Ok(None)` when the reply carried no NCCO (fine for posts).
    Document {
        op: OpId,
        result: Result<Option<Ncco>, String>,
    },
    Control(Control),
    /// The flow to an outbound leg's next hop (DNS and a TCP/TLS connect done).
    Resolved {
        op: OpId,
        result: Result<Resolved, String>,
    },
}

/// What a call's row in the store learns.
#[derive(Debug, Clone, PartialEq)]
pub enum RecordUpdate {
    Started {
        uuid: String,
        conversation_uuid: String,
        application_id: Option<String>,
        direction: Direction,
        from: String,
        to: String,
        sip_call_id: String,
        at: DateTime<Utc>,
    },
    Answered {
        uuid: String,
        at: DateTime<Utc>,
    },
    Finished {
        uuid: String,
        status: CallStatus,
        detail: Option<String>,
        answered: Option<DateTime<Utc>>,
        ended: DateTime<Utc>,
        quality: Option<crate::quality::Quality>,
        /// The final response to the leg's INVITE (200 once answered); none for a WebSocket.
        sip_code: Option<u16>,
    },
}

/// What the registry routes to the call.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    CallId(String),
    Endpoint(String),
    /// A leg's UUID, as the Voice API names it.
    Uuid(String),
}

/// Live control of a call from the Voice API, by leg UUID.
#[derive(Debug, Clone, PartialEq)]
pub enum Control {
    /// Hang up the leg: the caller's ends the call; an outbound leg ends its `connect`, and
    /// the NCCO goes on.
    Hangup { uuid: String },
    /// Transfer the caller's leg to a new NCCO (an outbound leg's uuid is ignored).
    Transfer { uuid: String, to: TransferTo },
    /// Nobody hears the leg (`mute`), or they do again.
    Mute { uuid: String, muted: bool },
    /// The leg hears nothing (`earmuff`), or hears again.
    Earmuff { uuid: String, earmuffed: bool },
    /// Speech or a file played into the leg (`PUT …/talk`, `…/stream`); the NCCO goes on.
    Play { uuid: String, source: crate::media::PlaySource, loop_count: u32, level: f64 },
    /// Stops what `Play` started (`DELETE …/talk`, `…/stream`).
    StopPlay { uuid: String },
    /// DTMF sent to the leg (`PUT …/dtmf`).
    Dtmf { uuid: String, digits: String },
}

impl Control {
    /// The leg the control is for.
    pub fn uuid(&self) -> &str {
        match self {
            Control::Hangup { uuid }
            | Control::Transfer { uuid, .. }
            | Control::Mute { uuid, .. }
            | Control::Earmuff { uuid, .. }
            | Control::Play { uuid, .. }
            | Control::StopPlay { uuid }
            | Control::Dtmf { uuid, .. } => uuid,
        }
    }
}

#[derive(Debug)]
pub enum Output {
    Sip {
        flow: Flow,
        msg: SipMessage,
    },
    /// Resolve `target` and connect to its candidate number `attempt` (or the next reachable).
    Resolve {
        op: OpId,
        target: SipUri,
        attempt: usize,
    },
    Media {
        op: OpId,
        command: Command,
    },
    FetchDocument {
        op: OpId,
        request: DocumentRequest,
    },
    Event(CallEvent),
    /// An event of a callee leg whose connect named its own webhook for it.
    LegEvent {
        event: CallEvent,
        hook: LegHook,
    },
    Record(RecordUpdate),
    Listen(Key),
    Unlisten(Key),
    /// The outbound INVITE left: post-dial delay from the inbound INVITE, and the part of it
    /// voxbridge added (the answer_url round trip excluded).
    Dialled {
        total: Duration,
        added: Duration,
    },
    /// A message the call does not own after all (a new INVITE transaction on a refused
    /// Call-ID): the edge admits it anew.
    Unmatched {
        flow: Flow,
        msg: SipMessage,
    },
}

/// What an outstanding operation was for.
#[derive(Debug, Clone, PartialEq)]
enum Op {
    AEndpoint,
    Document(DocumentPurpose),
    BFlow(usize),
    BEndpoint(usize),
    /// The callee's early-media SDP applied; then bridge.
    BEarly(usize),
    /// The callee's 2xx SDP applied; then bridge and answer.
    BAnswer(usize),
    Bridge {
        b: usize,
        answer: bool,
    },
    /// A re-INVITE's offer given to media; its answer answers the re-INVITE.
    TheirOffer(LegRef),
    /// Media's re-offer for a leg, to be sent as a re-INVITE.
    OurOffer(LegRef),
    /// A media command of an action; failure ends the call naming the action.
    Action(&'static str),
    /// A media command of the whisper; failure releases the callee.
    Whisper,
    /// A recording that runs beside the program (`<Dial record>`, a recorded conversation)
    /// started; failure leaves it out, and the call goes on.
    SideRecording(String),
    /// An originated call's WebSocket party created.
    WebsocketParty,
    /// An input's `transcribe` started (or refused: then that is its speech result).
    Transcribe(String),
    /// A leg's endpoint destroyed: its reply carries the leg's media quality, which its held
    /// final report waits for.
    Release(LegRef),
    /// Nothing waits on the reply (the answer to our re-INVITE, …).
    Ignored,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DocumentPurpose {
    AnswerUrl,
    /// A post whose NCCO reply replaces the program (notify, input results, connect events).
    Continue,
    /// The NCCO of a connect's `onAnswer`, run on the callee.
    Whisper,
    /// The NCCO a transfer's URL gives.
    Transfer,
}

/// The I/O side the legs and the executor write to.
struct Cx {
    out: VecDeque<Output>,
    timers: Timers,
    ids: Ids,
    local: Local,
    now: Now,
    ops: HashMap<OpId, Op>,
}

impl Cx {
    fn send(&mut self, flow: &Flow, msg: SipMessage) {
        self.out.push_back(Output::Sip { flow: flow.clone(), msg });
    }

    fn media(&mut self, op: Op, command: Command) -> OpId {
        let id = self.ids.op();
        self.ops.insert(id, op);
        self.out.push_back(Output::Media { op: id, command });
        id
    }

    fn fetch(&mut self, purpose: DocumentPurpose, request: DocumentRequest) -> OpId {
        let id = self.ids.op();
        self.ops.insert(id, Op::Document(purpose));
        self.out.push_back(Output::FetchDocument { op: id, request });
        id
    }

    fn event(&mut self, ev: CallEvent) {
        self.out.push_back(Output::Event(ev));
    }

    fn record(&mut self, r: RecordUpdate) {
        self.out.push_back(Output::Record(r));
    }

    fn iso(&self) -> String {
        outcome::iso(self.now.utc)
    }
}

pub struct Call {
    cx: Cx,
    uuid: String,
    conversation_uuid: String,
    route: Route,
    region_url: String,
    dialling: std::sync::Arc<Dialling>,
    caller_srtp: crate::srtp::SrtpPolicy,
    a: Inbound,
    b: Vec<Outbound>,
    pub(crate) exec: executor::Executor,
    /// Set once the call is ending: the outcome decided.
    ending: Option<Outcome>,
    received: Instant,
    /// Time spent waiting for answer_url, which the added post-dial delay excludes.
    answer_url_time: Duration,
    answer_url_started: Option<Instant>,
    /// Set for a call placed over the Voice API (its `a` never received an INVITE).
    originated: Option<Origination>,
}

impl Call {
    /// A call for an admitted INVITE (the edge has sent 100 Trying and listens on its
    /// Call-ID). `received`: when the INVITE arrived, for the post-dial delay.
    pub fn inbound(ctx: CallContext, flow: Flow, invite: SipMessage, received: Instant, now: Now) -> Call {
        let mut ids = Ids::new(ctx.seed);
        let uuid = ids.uuid();
        let conversation_uuid = format!("CON-{}", ids.uuid());
        let a = Inbound::new(&mut ids, uuid.clone(), flow, invite);
        let cx =
            Cx { out: VecDeque::new(), timers: Timers::default(), ids, local: ctx.local, now, ops: HashMap::new() };
        let listen_uuid = Output::Listen(Key::Uuid(uuid.clone()));
        let mut call = Call {
            cx,
            uuid,
            conversation_uuid,
            route: ctx.route,
            region_url: ctx.region_url,
            dialling: ctx.dialling,
            caller_srtp: ctx.caller_srtp,
            a,
            b: Vec::new(),
            exec: executor::Executor::default(),
            ending: None,
            received,
            answer_url_time: Duration::ZERO,
            answer_url_started: None,
            originated: None,
        };
        call.cx.out.push_back(listen_uuid);
        call.start();
        call
    }

    pub fn uuid(&self) -> &str {
        &self.uuid
    }

    pub fn conversation_uuid(&self) -> &str {
        &self.conversation_uuid
    }

    /// The caller's SIP Call-ID.
    pub fn call_id(&self) -> &str {
        &self.a.leg.dialog.call_id
    }

    pub fn handle_input(&mut self, now: Now, input: Input) {
        self.cx.now = now;
        match input {
            Input::Sip { flow, msg } => self.on_sip(flow, msg),
            Input::MediaReply { op, result } => self.on_media_reply(op, result),
            Input::Media(event) => self.on_media_event(event),
            Input::Document { op, result } => self.on_document(op, result),
            Input::Resolved { op, result } => self.on_resolved(op, result),
            Input::Control(control) => self.on_control(control),
        }
    }

    pub fn handle_timeout(&mut self, now: Now) {
        self.cx.now = now;
        for key in self.cx.timers.due(now.at) {
            self.on_timer(key);
        }
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.cx.out.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.cx.timers.next()
    }

    /// True once every leg's transactions are over and the outcome is reported.
    pub fn is_done(&self) -> bool {
        self.ending.is_some()
            && self.a.is_terminated()
            && self.b.iter().all(Outbound::is_terminated)
            && self.exec.recordings.is_empty()
            && self.exec.held.is_empty()
    }

    fn on_timer(&mut self, key: TimerKey) {
        match key {
            TimerKey::Server(LegRef::A) => self.a_server_timer(),
            TimerKey::Client(leg) => self.client_timer(leg),
            TimerKey::Session(LegRef::A) => self.session_timer(),
            TimerKey::Session(LegRef::B(i)) => self.b_session_timer(i),
            TimerKey::Server(LegRef::B(_)) => {}
            TimerKey::Ringing(LegRef::B(i)) => self.ringing_timeout(i),
            TimerKey::CancelGrace(LegRef::B(i)) => self.cancel_grace_over(i),
            TimerKey::NoResponse(LegRef::B(i)) => self.gateway_silent(i),
            TimerKey::Ringing(LegRef::A) | TimerKey::CancelGrace(LegRef::A) | TimerKey::NoResponse(LegRef::A) => {}
            TimerKey::Limit => self.connect_limit_reached(),
            TimerKey::CallLength => self.limit_reached(),
            TimerKey::Action => self.action_timer(),
            TimerKey::Whisper => self.whisper_wait_elapsed(),
            TimerKey::RecordingsWritten => self.recordings_lost(),
            TimerKey::QualityReported => self.release_held_reports(),
        }
    }

    fn on_media_reply(&mut self, op: OpId, result: Result<Reply, MediaFailure>) {
        let Some(purpose) = self.cx.ops.remove(&op) else { return };
        if let Op::Release(leg) = purpose {
            let quality = match result {
                Ok(Reply::Destroyed { quality }) => quality,
                _ => None,
            };
            return self.released(leg, quality);
        }
        // An endpoint created for a call that has ended meanwhile is released at once.
        if self.ending.is_some() {
            if let Ok(Reply::Endpoint { endpoint_id, .. }) = &result {
                self.cx.media(Op::Ignored, Command::DestroyEndpoint { endpoint_id: endpoint_id.clone() });
            }
            return;
        }
        match purpose {
            Op::AEndpoint => self.a_endpoint_ready(result),
            Op::BEndpoint(i) => self.b_endpoint_ready(i, result),
            Op::BEarly(i) => self.b_early_applied(i, result),
            Op::BAnswer(i) => self.b_answer_applied(i, result),
            Op::Bridge { b, answer } => self.bridged(b, answer, result),
            Op::TheirOffer(leg) => self.their_offer_answered(leg, result),
            Op::OurOffer(leg) => self.our_offer_ready(leg, result),
            Op::Action(name) => self.action_media_reply(name, result),
            Op::Whisper => self.whisper_media_reply(result),
            Op::SideRecording(record_id) => self.side_recording_started(&record_id, result),
            Op::WebsocketParty => self.websocket_party_ready(result),
            Op::Transcribe(id) => self.transcribe_started(&id, result),
            Op::Ignored | Op::Release(_) | Op::Document(_) | Op::BFlow(_) => {}
        }
    }

    fn on_document(&mut self, op: OpId, result: Result<Option<Ncco>, String>) {
        let Some(Op::Document(purpose)) = self.cx.ops.remove(&op) else { return };
        if self.ending.is_some() {
            return;
        }
        match purpose {
            DocumentPurpose::AnswerUrl => self.answer_document(result),
            DocumentPurpose::Continue => self.continue_document(result),
            DocumentPurpose::Whisper => self.whisper_document(result),
            DocumentPurpose::Transfer => self.transfer_document(result),
        }
    }

    fn on_resolved(&mut self, op: OpId, result: Result<Resolved, String>) {
        let Some(Op::BFlow(i)) = self.cx.ops.remove(&op) else { return };
        if self.ending.is_some() {
            return;
        }
        self.b_flow_ready(i, result);
    }
}
