//! The NCCO executor (Vonage semantics): actions run in order and the call ends when the
//! program is exhausted. `talk` and `stream` block until played unless `bargeIn`; `input`,
//! `notify`, `connect`, `conversation` and `wait` block; `record` runs alongside what follows.
//! An `input` result or a `notify` reply may carry an NCCO that replaces the rest. Media work
//! goes out as `domains::media` commands; a media process that cannot do one answers
//! `unsupported` and the call ends with an event naming the action.

use std::collections::VecDeque;
use std::time::Duration;

use super::connect::{ConnectPlan, Target};
use super::outcome::{LegFailure, Outcome};
use super::timers::TimerKey;
use super::{Call, DocumentPurpose, DocumentRequest, Key, MediaEvent, MediaFailure, Op, Route};
use crate::events::CallStatus;
use crate::media::{Command, ErrorCode, PlaySource, Reply};
use crate::ncco::Input as InputAction;
use crate::ncco::common::Webhook;
use crate::ncco::{Action, Endpoint, Ncco, SipTarget};
use crate::sip_uri::SipUri;
use crate::srtp::SrtpPolicy;

/// Platform headers are not passed to applications.
const PLATFORM_HEADER_PREFIX: &str = "x-voxbridge-";

/// What the executor waits for.
#[derive(Debug, Default, Clone, PartialEq)]
pub enum Step {
    /// The caller's media endpoint (answer_url is asked meanwhile; a document that comes
    /// first waits in `early_document`).
    #[default]
    ExpectEndpoint,
    ExpectDocument,
    /// Between actions.
    Idle,
    /// A `connect`'s legs ringing.
    ExpectCalleeAnswer,
    /// Bridged: until a party hangs up or the limit.
    ExpectHangup,
    /// The reply to an action's media command.
    ExpectMediaStarted {
        action: &'static str,
        then_wait_play: Option<String>,
    },
    ExpectPlaybackDone {
        play_id: String,
    },
    ExpectDigits(Digits),
    ExpectWaitElapsed,
    /// A posted result or notify: its reply may replace the program.
    ExpectPostReply,
    /// In a conversation: until hung up.
    ExpectConversationEnd,
    /// A TwiML `<Record>`: until the recording is written, then its `action` is told.
    ExpectRecordingWritten {
        record_id: String,
        action: crate::ncco::common::Callback,
    },
    /// A recorded `<Dial>` ended: until the recording is written, then the `<Dial action>`
    /// (for the legs from `first` on) is told, with the recording.
    ExpectDialRecordingWritten {
        record_id: String,
        action: Webhook,
        first: usize,
    },
    /// Streaming to a WebSocket: until the server closes it.
    ExpectWebsocketClosed,
    /// An originated call's WebSocket party: its endpoint, then its handshake.
    ExpectWebsocketParty,
    /// The NCCO of a transfer to a URL.
    ExpectTransferDocument,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Digits {
    pub collected: String,
    pub max: u32,
    pub submit_on_hash: bool,
    pub event: Option<Webhook>,
    /// The input's speech part, when it asked for speech; `max` is 0 when it asked for speech
    /// alone (digits are then not collected).
    pub speech: Option<super::speech_input::Speech>,
    /// `<Gather action>`: where the digits go, Twilio's way.
    pub twiml_action: Option<crate::ncco::common::Callback>,
    /// `#` ended the collection.
    pub ended_by_hash: bool,
}

#[derive(Debug, Default)]
pub struct Executor {
    pub program: VecDeque<Action>,
    pub step: Step,
    pub connect: Option<ConnectPlan>,
    /// The outbound leg bridged to the caller.
    pub bridged: Option<usize>,
    /// The failure of the last connect, which an unanswered caller hears.
    pub last_failure: Option<LegFailure>,
    /// Outbound legs whose `ringing` event is out.
    pub rang: Vec<usize>,
    /// The last connect ended because its callee hung up.
    pub hung_up_by_user: bool,
    /// A connect's ringback tone is playing to the caller.
    pub ringback_playing: bool,
    /// Recordings running.
    pub recordings: Vec<super::recording::Recording>,
    /// The running connect's `<Dial record>`.
    pub dial_recording: Option<super::recording::DialRecording>,
    /// The caller's endpoint, released while recordings of it were still being written.
    pub recorded_endpoint: Option<String>,
    /// A `bargeIn` play still running (endpoint, play): the caller's first digit stops it.
    pub barge_in: Option<(String, String)>,
    /// The running connect's `eventUrl`, for its machine-detection event.
    pub connect_event: Option<Webhook>,
    /// The running connect's `<Dial action>`, and the first of its outbound legs.
    pub dial_action: Option<(Webhook, usize)>,
    /// The running connect's `<Dial hangupOnStar>`.
    pub hangup_on_star: bool,
    /// The running connect is a TwiML `<Dial>`.
    pub twiml_dial: bool,
    /// The leg of a `connect` to a WebSocket.
    pub websocket: Option<super::websocket::WebsocketLeg>,
    /// Legs whose endpoint is being destroyed: their final report waits for its quality.
    pub releasing: Vec<super::LegRef>,
    pub held: Vec<super::outcome::HeldReport>,
    /// The `onAnswer` NCCO running on an answered callee.
    pub whisper: Option<super::whisper::Whisper>,
    /// answer_url's document when it came before the caller's media endpoint.
    pub early_document: Option<Result<Option<Ncco>, String>>,
    /// The callee whose REFER is being carried out (it is told the outcome, then released).
    pub referrer: Option<usize>,
}

impl Call {
    /// The call's first moves: the 422 check, then the caller's media endpoint.
    pub(super) fn start(&mut self) {
        if self.session_interval_too_small() {
            self.ending = Some(Outcome::Failed(LegFailure::from_sip(422)));
            return;
        }
        let offer = String::from_utf8_lossy(&self.a.invite.body).into_owned();
        if offer.trim().is_empty() {
            let f = LegFailure::new(
                CallStatus::Failed,
                "cannot_route",
                488,
                "INVITE without an SDP offer is not supported",
            );
            return self.end_call(Outcome::Failed(f));
        }
        let call_uuid = self.uuid.clone();
        self.cx.media(
            Op::AEndpoint,
            Command::CreateEndpoint { call_uuid, remote_sdp: Some(offer), prefer: vec![], srtp: self.caller_srtp },
        );
        // answer_url is asked at once, while media prepares the caller's endpoint: the two
        // waits overlap instead of adding up in the post-dial delay.
        if self.events_on() {
            self.progress_event(super::LegRef::A, CallStatus::Started);
            self.progress_event(super::LegRef::A, CallStatus::Ringing);
        }
        if let Route::Application { region, .. } = &self.route {
            let params = self.answer_params(region);
            self.answer_url_started = Some(self.cx.now.at);
            self.cx.fetch(DocumentPurpose::AnswerUrl, DocumentRequest::Answer { params });
        }
    }

    pub(super) fn a_endpoint_ready(&mut self, result: Result<Reply, MediaFailure>) {
        let (endpoint_id, local_sdp) = match result {
            Ok(Reply::Endpoint { endpoint_id, local_sdp, .. }) => (endpoint_id, local_sdp),
            Ok(other) => {
                let f = LegFailure::new(CallStatus::Failed, "media_unavailable", 503, format!("unexpected {other:?}"));
                return self.end_call(Outcome::Failed(f));
            }
            Err(f) => return self.end_call(Outcome::Failed(super::connect::failure_of(&f))),
        };
        self.a.leg.endpoint = Some(super::legs::Endpoint { id: endpoint_id.clone(), sdp: local_sdp });
        self.cx.out.push_back(super::Output::Listen(Key::Endpoint(endpoint_id)));
        self.record_started(super::LegRef::A);
        match self.route.clone() {
            Route::Application { .. } => {
                self.exec.step = Step::ExpectDocument;
                if let Some(document) = self.exec.early_document.take() {
                    self.answer_document(document);
                }
            }
            Route::Forward { targets } => {
                let targets = targets
                    .into_iter()
                    .map(|t| Target {
                        flow: t.flow,
                        fork: t.fork,
                        srtp: if t.srtp { SrtpPolicy::Always } else { SrtpPolicy::Optional },
                        ..Target::new(t.uri, Duration::from_millis(t.timeout_ms.into()))
                    })
                    .collect();
                let from = self.caller_leg().from.clone();
                self.exec.step = Step::ExpectCalleeAnswer;
                self.start_connect(ConnectPlan {
                    targets,
                    parallel: false,
                    fail_over: true,
                    from,
                    limit: Duration::from_secs(7200),
                    dtmf_answer: None,
                    ringback: None,
                    on_answer: None,
                    machine_detection: None,
                    beep_timeout_ms: None,
                });
            }
            Route::Program { ncco, .. } => {
                self.exec.program = ncco.0.into();
                self.exec.step = Step::Idle;
                self.next_action();
            }
        }
    }

    /// answer_url's parameters (Vonage's names), custom `X-` headers and `User-to-User` as
    /// `SipHeader_*`.
    pub(super) fn answer_params(&self, region: &str) -> Vec<(String, String)> {
        if let Route::Application { dialect: crate::application::Dialect::Twiml, .. } = &self.route {
            return self.twiml_params();
        }
        let mut params: Vec<(String, String)> = vec![
            ("to".into(), self.caller_leg().to.clone()),
            ("from".into(), self.caller_leg().from.clone()),
            ("uuid".into(), self.uuid.clone()),
            ("conversation_uuid".into(), self.conversation_uuid.clone()),
            ("region_url".into(), self.region_url.clone()),
            ("region".into(), region.to_owned()),
            ("endpoint_type".into(), "sip".into()),
        ];
        for (name, value) in &self.a.invite.headers {
            let lower = name.to_ascii_lowercase();
            let custom = lower.starts_with("x-") && !lower.starts_with(PLATFORM_HEADER_PREFIX);
            if custom || lower == "user-to-user" {
                params.push((format!("SipHeader_{name}"), value.clone()));
            }
        }
        params
    }

    pub(super) fn answer_document(&mut self, result: Result<Option<Ncco>, String>) {
        if let Some(started) = self.answer_url_started.take() {
            self.answer_url_time += self.cx.now.at.saturating_duration_since(started);
        }
        if self.exec.step == Step::ExpectEndpoint {
            // Before the caller's endpoint: run it once that is ready.
            self.exec.early_document = Some(result);
            return;
        }
        if self.exec.step != Step::ExpectDocument {
            return; // transferred meanwhile
        }
        match result {
            Ok(Some(ncco)) => {
                self.exec.program = ncco.0.into();
                self.exec.step = Step::Idle;
                self.next_action();
            }
            Ok(None) => {
                let f = LegFailure::new(CallStatus::Failed, "internal_error", 480, "answer_url returned no NCCO");
                self.end_call(Outcome::Failed(f));
            }
            Err(reason) => {
                tracing::warn!(call_uuid = %self.uuid, %reason, "no NCCO");
                self.end_call(Outcome::Failed(LegFailure::new(CallStatus::Failed, "internal_error", 480, reason)));
            }
        }
    }

    pub(super) fn continue_document(&mut self, result: Result<Option<Ncco>, String>) {
        if self.exec.step != Step::ExpectPostReply {
            return;
        }
        match result {
            Ok(Some(ncco)) => self.exec.program = ncco.0.into(),
            Ok(None) => {}
            Err(reason) => tracing::info!(call_uuid = %self.uuid, %reason, "webhook failed; the NCCO goes on"),
        }
        self.exec.step = Step::Idle;
        self.next_action();
    }

    /// Runs actions until one blocks; ends the call when the program is exhausted.
    pub(super) fn next_action(&mut self) {
        while self.ending.is_none() {
            let Some(action) = self.exec.program.pop_front() else {
                return self.program_exhausted();
            };
            if !self.run_action(action) {
                return;
            }
        }
    }

    fn program_exhausted(&mut self) {
        if self.a_is_unanswered() {
            let f = self.exec.last_failure.clone().unwrap_or_else(|| {
                LegFailure::new(CallStatus::Failed, "cannot_route", 480, "the NCCO has no action that answers the call")
            });
            self.end_call(Outcome::Failed(f));
        } else {
            self.end_call(Outcome::Completed { by_user: self.exec.hung_up_by_user });
        }
    }

    /// Starts one action; true when the next may run at once.
    fn run_action(&mut self, action: Action) -> bool {
        let name = action.name();
        let endpoint_id = self.caller_endpoint().unwrap_or_default();
        match action {
            Action::Connect(c) => {
                if let Endpoint::Websocket(ws) = &c.endpoint {
                    self.start_websocket(ws);
                    return false;
                }
                self.exec.connect_event = c.event.clone();
                self.exec.dial_action = c.twiml.as_ref().and_then(|t| t.action.clone()).map(|w| (w, self.b.len()));
                self.exec.hangup_on_star = c.twiml.as_ref().is_some_and(|t| t.hangup_on_star);
                self.exec.twiml_dial = c.twiml.is_some();
                if c.twiml.as_ref().is_some_and(|t| t.answer_first) {
                    self.answer_a();
                }
                self.exec.dial_recording = c
                    .twiml
                    .as_ref()
                    .and_then(|t| t.record.clone())
                    .map(|plan| super::recording::DialRecording { plan, id: None });
                self.dial_recording_reached(false);
                match self.connect_plan(&c) {
                    Ok(plan) => {
                        self.exec.step = Step::ExpectCalleeAnswer;
                        self.start_connect(plan);
                    }
                    Err(f) => self.end_call(Outcome::Failed(f)),
                }
                false
            }
            Action::Talk(t) => {
                let source = PlaySource::Speech { text: t.text.clone(), language: t.language.clone(), style: t.style };
                self.play(name, endpoint_id, source, t.loop_count, t.level, t.barge_in);
                false
            }
            Action::Stream(s) => {
                let source = PlaySource::Url { url: s.stream_url.to_string() };
                self.play(name, endpoint_id, source, s.loop_count, s.level, s.barge_in);
                false
            }
            Action::Record(r) => {
                self.answer_a();
                let twilio_source = r.twiml_action.is_some().then_some("RecordVerb");
                let record_id = self.start_recording(false, endpoint_id, &r, twilio_source);
                // Runs alongside what follows, but a TwiML `<Record>` waits for it.
                match r.twiml_action {
                    Some(action) => {
                        self.exec.step = Step::ExpectRecordingWritten { record_id, action };
                        false
                    }
                    None => true,
                }
            }
            Action::Wait(w) => {
                self.answer_a();
                let secs = Duration::from_secs_f64(w.timeout.clamp(0.0, 7200.0));
                self.cx.timers.set(TimerKey::Action, self.cx.now.at + secs);
                self.exec.step = Step::ExpectWaitElapsed;
                false
            }
            Action::Input(i) => {
                self.answer_a();
                self.start_input(&i)
            }
            Action::Notify(n) => {
                let body = serde_json::Value::Object(n.payload.clone());
                self.exec.step = Step::ExpectPostReply;
                self.cx
                    .fetch(DocumentPurpose::Continue, DocumentRequest::Post { webhook: Some(n.event.clone()), body });
                false
            }
            Action::Conversation(c) => {
                self.answer_a();
                // Conversations are named per application: another application's "sales" is
                // another room.
                let owner = self.application_id().unwrap_or_default();
                let recorded = c.record.then(|| endpoint_id.clone());
                let command = Command::ConferenceJoin {
                    endpoint_id,
                    conference: format!("{owner}:{}", c.name),
                    member: self.caller_leg().uuid.clone(),
                    speaks_to: c.audio.can_speak.clone(),
                    hears: c.audio.can_hear.clone(),
                    muted: c.audio.mute,
                    start_on_enter: c.start_on_enter,
                    end_on_exit: c.end_on_exit,
                    music_on_hold: c.music_on_hold_url.as_ref().map(ToString::to_string),
                };
                self.media_action(name, command, None);
                if let Some(endpoint_id) = recorded {
                    self.record_conversation(endpoint_id, c.event.clone());
                }
                false
            }
            Action::Transfer(_) => {
                self.unsupported("the transfer action");
                false
            }
            Action::Hangup => {
                self.hang_up_by_document(crate::ncco::Reject { code: 603 });
                false
            }
            Action::SendDigits(digits) => {
                self.answer_a();
                // The next verb starts once the digits have been sent.
                let sent = crate::dtmf::send_duration(&digits);
                self.cx.media(Op::Action(name), Command::SendDtmf { endpoint_id, digits });
                self.cx.timers.set(TimerKey::Action, self.cx.now.at + sent);
                self.exec.step = Step::ExpectWaitElapsed;
                false
            }
            Action::Reject(reject) => {
                self.hang_up_by_document(reject);
                false
            }
            Action::Redirect(r) => {
                self.twiml_callback(r.webhook.into(), Vec::new());
                false
            }
        }
    }

    /// The region of the application's call (empty when no application answers it).
    pub(super) fn region(&self) -> String {
        match &self.route {
            Route::Application { region, .. } => region.clone(),
            Route::Forward { .. } | Route::Program { .. } => String::new(),
        }
    }

    /// `<Hangup>` or `<Reject>`: a call not answered yet is refused with `reject`'s code (486
    /// reads as busy); an answered one is hung up.
    fn hang_up_by_document(&mut self, reject: crate::ncco::Reject) {
        if !self.a_is_unanswered() {
            return self.end_call(Outcome::Completed { by_user: false });
        }
        let (status, detail) = match reject.code {
            486 => (CallStatus::Busy, "busy"),
            _ => (CallStatus::Rejected, "rejected"),
        };
        let f = LegFailure::new(status, detail, reject.code, "the document rejected the call");
        self.end_call(Outcome::Failed(f));
    }

    /// Where a `connect` rings, and as whom. Legs to trunks carry one of the account's numbers
    /// as caller ID and exist only because the application's NCCO asked for them.
    pub(super) fn connect_plan(&mut self, c: &crate::ncco::Connect) -> Result<ConnectPlan, LegFailure> {
        let cannot = |reason: String| LegFailure::new(CallStatus::Failed, "cannot_route", 480, reason);
        let ringing = Duration::from_secs(c.timeout.into());
        let limit = Duration::from_secs(c.limit.into());
        let (dtmf_answer, on_answer) = match &c.endpoint {
            Endpoint::Phone(p) => (
                p.dtmf_answer.clone(),
                p.on_answer.as_ref().map(|o| super::whisper::OnAnswerPlan {
                    url: o.url.clone(),
                    ringback: o.ringback_tone.as_ref().map(ToString::to_string),
                    twiml: c.twiml.as_ref().map(|t| t.number_method),
                }),
            ),
            Endpoint::Sip(s) => (
                None,
                s.screen.as_ref().map(|w| super::whisper::OnAnswerPlan {
                    url: w.url.clone(),
                    ringback: None,
                    twiml: Some(w.method),
                }),
            ),
            _ => (None, None),
        };
        let ringback = c.ringback_tone.as_ref().map(ToString::to_string);
        let hooks: Vec<_> = (0..=c.forks.len()).map(|noun| self.leg_hook(c, noun)).collect();
        let status = |noun: usize| hooks.get(noun).cloned().flatten();
        // A document's `<Sip>` URI that names no transport takes the application's.
        let document_transport = match (&c.twiml, &self.route) {
            (Some(_), Route::Application { sip_transport, .. }) => Some(*sip_transport),
            _ => None,
        };
        let uri_target = |sip: &crate::ncco::Sip, u: &crate::ncco::SipUriTarget, noun: usize| {
            let uri = match document_transport {
                Some(t) if u.transport.is_none() && !u.secure && t != crate::sip_uri::Transport::Udp => {
                    format!("{};transport={}", u.uri, t.as_str())
                }
                _ => u.uri.clone(),
            };
            let uri = SipUri::parse(&uri).map_err(|e| cannot(format!("bad SIP URI {uri}: {e}")))?;
            let mut headers = sip.sip_headers();
            if c.twiml.is_some() {
                headers.extend(self.twilio_headers());
            }
            Ok(Target {
                headers,
                status: status(noun),
                credentials: sip.credentials.clone(),
                codecs: sip.codecs.clone(),
                session_expires: sip.session_expires,
                srtp: if u.srtp { SrtpPolicy::Always } else { SrtpPolicy::Optional },
                ..Target::new(uri, ringing)
            })
        };
        let plan = |targets: VecDeque<Target>, from: String, fail_over: bool| ConnectPlan {
            targets,
            parallel: false,
            fail_over,
            from,
            limit,
            dtmf_answer,
            ringback: ringback.clone(),
            on_answer,
            machine_detection: c.machine_detection.or(c.advanced_machine_detection.map(|a| a.behavior)),
            beep_timeout_ms: c.advanced_machine_detection.and_then(|a| a.beep_wait_ms()),
        };
        // A SIP leg's From: the connect's (a TwiML caller ID may be a name), else the caller's.
        let caller = self.caller_leg().from.clone();
        let sip_from = || {
            c.twiml
                .as_ref()
                .and_then(|t| t.sip_caller_id.clone())
                .or_else(|| c.from.as_ref().map(ToString::to_string))
                .unwrap_or(caller)
        };
        let (user, trunk, from) = match &c.endpoint {
            Endpoint::Sip(first) if !c.forks.is_empty() => {
                // Rung together: each is one URI (a domain's gateways fail over, which is sequential).
                let targets = std::iter::once(first)
                    .chain(&c.forks)
                    .enumerate()
                    .map(|(noun, sip)| match &sip.target {
                        SipTarget::Uri(u) => uri_target(sip, u, noun),
                        SipTarget::Domain { domain, .. } => {
                            Err(cannot(format!("the domain endpoint {domain} cannot ring in parallel with others")))
                        }
                    })
                    .collect::<Result<VecDeque<_>, _>>()?;
                return Ok(ConnectPlan { parallel: true, ..plan(targets, sip_from(), false) });
            }
            Endpoint::Sip(sip) => match &sip.target {
                SipTarget::Uri(u) => return Ok(plan(VecDeque::from([uri_target(sip, u, 0)?]), sip_from(), false)),
                SipTarget::Domain { domain, user } => {
                    let trunk = self.dialling.trunks.iter().find(|t| t.name == *domain).cloned();
                    let trunk = trunk.ok_or_else(|| cannot(format!("no trunk named {domain}")))?;
                    let from =
                        c.from.as_ref().map(ToString::to_string).unwrap_or_else(|| self.caller_leg().from.clone());
                    (user.clone(), trunk, from)
                }
            },
            Endpoint::Phone(p) => {
                let from = self.caller_id(c.from.as_ref().map(ToString::to_string))?;
                let trunk = crate::trunk::select(&self.dialling.trunks, &p.number).cloned();
                let trunk = trunk.ok_or_else(|| cannot(format!("no trunk serves +{}", p.number)))?;
                (p.number.to_string(), trunk, from)
            }
            Endpoint::App(a) => {
                // Every contact the user registered rings at once; the first to answer wins.
                let app = self.application_id();
                let targets: VecDeque<Target> = self
                    .dialling
                    .registered
                    .iter()
                    .filter(|r| app.is_some() && r.application_id == app && r.user == a.user)
                    .filter_map(|r| {
                        let uri = SipUri::parse(&r.contact).ok()?;
                        Some(Target {
                            flow: r.flow.clone(),
                            status: status(0),
                            srtp: r.srtp,
                            ..Target::new(uri, ringing)
                        })
                    })
                    .take(crate::ncco::Connect::MAX_PARALLEL)
                    .collect();
                if targets.is_empty() {
                    return Err(cannot(format!("app user {} is not registered", a.user)));
                }
                return Ok(ConnectPlan { parallel: true, ..plan(targets, sip_from(), false) });
            }
            Endpoint::Vbc(v) => {
                let trunk = self.dialling.trunks.iter().find(|t| t.pbx).cloned();
                let trunk = trunk.ok_or_else(|| cannot("no trunk is flagged as the PBX".into()))?;
                let from = c.from.as_ref().map(ToString::to_string).unwrap_or_else(|| self.caller_leg().from.clone());
                (v.extension.clone(), trunk, from)
            }
            other => return Err(LegFailure::unsupported(&format!("connect to a {} endpoint", other.type_name()))),
        };
        let random: Vec<u32> = trunk.gateways.iter().map(|_| self.cx.ids.random_u32()).collect();
        let targets = crate::trunk::gateway_order(&trunk.gateways, &random)
            .into_iter()
            .filter_map(|g| {
                let transport = match g.transport {
                    crate::sip_uri::Transport::Udp => String::new(),
                    t => format!(";transport={}", t.as_str().to_ascii_lowercase()),
                };
                // A gateway named by a host name on the default port is located by SRV (RFC 3263),
                // so the URI names no port then.
                let is_name = g.host.parse::<std::net::IpAddr>().is_err();
                let port = if is_name && g.port == g.transport.default_port() {
                    String::new()
                } else {
                    format!(":{}", g.port)
                };
                let uri = SipUri::parse(&format!("sip:{user}@{}{port}{transport}", g.host)).ok()?;
                Some(Target { credentials: trunk.credentials.clone(), status: status(0), ..Target::new(uri, ringing) })
            })
            .collect::<VecDeque<_>>();
        if targets.is_empty() {
            return Err(cannot(format!("trunk {} has no usable gateway for {user}", trunk.name)));
        }
        Ok(plan(targets, from, true))
    }

    /// A trunk leg's caller ID: the NCCO's `from`, else the number the caller dialled, and in
    /// either case one of the account's numbers.
    fn caller_id(&self, from: Option<String>) -> Result<String, LegFailure> {
        let ours = |n: &str| self.dialling.numbers.iter().any(|m| m == n.trim_start_matches('+'));
        let chosen = match from {
            Some(f) if ours(&f) => f,
            Some(f) => {
                return Err(LegFailure::new(
                    CallStatus::Failed,
                    "invalid_caller_id",
                    480,
                    format!("from {f} is not one of the account's numbers"),
                ));
            }
            // The number dialled by an inbound caller; the number an originated call comes from.
            None if ours(self.default_caller_id()) => self.default_caller_id().trim_start_matches('+').to_owned(),
            None => {
                return Err(LegFailure::new(
                    CallStatus::Failed,
                    "invalid_caller_id",
                    480,
                    "connect to a phone needs a from that is one of the account's numbers",
                ));
            }
        };
        Ok(chosen)
    }

    fn default_caller_id(&self) -> &str {
        if self.originated.is_some() { &self.caller_leg().from } else { &self.a.leg.to }
    }

    /// `talk` and `stream`: answer, play, and (unless `bargeIn`) wait until played.
    fn play(
        &mut self,
        name: &'static str,
        endpoint_id: String,
        source: PlaySource,
        loop_count: u32,
        level: f64,
        barge_in: bool,
    ) {
        self.answer_a();
        let play_id = self.cx.ids.token(12);
        let command =
            Command::Play { endpoint_id: endpoint_id.clone(), play_id: play_id.clone(), source, loop_count, level };
        if barge_in {
            self.exec.barge_in = Some((endpoint_id, play_id.clone()));
        }
        self.media_action(name, command, (!barge_in).then_some(play_id));
    }

    fn media_action(&mut self, action: &'static str, command: Command, then_wait_play: Option<String>) {
        self.exec.step = Step::ExpectMediaStarted { action, then_wait_play };
        self.cx.media(Op::Action(action), command);
    }

    fn unsupported(&mut self, what: &str) {
        self.end_call(Outcome::Failed(LegFailure::unsupported(what)));
    }

    fn start_input(&mut self, i: &InputAction) -> bool {
        let speech = i.speech.as_ref().map(|s| self.listen_for_speech(s, i.dtmf.is_none()));
        let Some(dtmf) = &i.dtmf else {
            // Speech only: the utterance's outcome ends the input; a refusal that came back at
            // once (no endpoint to listen on) ends it now.
            let decided = matches!(speech, Some(super::speech_input::Speech::Done(_)));
            self.exec.step = Step::ExpectDigits(Digits {
                collected: String::new(),
                max: 0,
                submit_on_hash: false,
                event: i.event.clone(),
                speech,
                twiml_action: i.twiml_action.clone(),
                ended_by_hash: false,
            });
            if decided {
                self.input_done(false);
            }
            return false;
        };
        self.exec.step = Step::ExpectDigits(Digits {
            collected: String::new(),
            max: dtmf.max_digits,
            submit_on_hash: dtmf.submit_on_hash,
            event: i.event.clone(),
            speech,
            twiml_action: i.twiml_action.clone(),
            ended_by_hash: false,
        });
        self.cx.timers.set(TimerKey::Action, self.cx.now.at + Duration::from_secs(dtmf.time_out.into()));
        false
    }

    pub(super) fn action_media_reply(&mut self, action: &'static str, result: Result<Reply, MediaFailure>) {
        match result {
            Err(f) => {
                let failure = match f.code {
                    Some(ErrorCode::Unsupported) => {
                        LegFailure::unsupported(&format!("the {action} action ({})", f.message))
                    }
                    _ => LegFailure::new(
                        CallStatus::Failed,
                        "media_unavailable",
                        503,
                        format!("{action}: {}", f.message),
                    ),
                };
                self.end_call(Outcome::Failed(failure));
            }
            Ok(_) => {
                let Step::ExpectMediaStarted { action: waiting, then_wait_play } = &self.exec.step else { return };
                if *waiting != action {
                    return;
                }
                match then_wait_play.clone() {
                    Some(play_id) => self.exec.step = Step::ExpectPlaybackDone { play_id },
                    None if action == "conversation" => self.exec.step = Step::ExpectConversationEnd,
                    None if action == super::websocket::ACTION => self.exec.step = Step::ExpectWebsocketClosed,
                    None => {
                        self.exec.step = Step::Idle;
                        self.next_action();
                    }
                }
            }
        }
    }

    pub(super) fn on_media_event(&mut self, event: MediaEvent) {
        if self.ending.is_some() && !matches!(event, MediaEvent::RecordDone { .. }) {
            return;
        }
        match event {
            MediaEvent::RtpTimeout { endpoint } => {
                let ours = self.caller_endpoint().as_deref() == Some(endpoint.as_str())
                    || self.b.iter().any(|b| b.leg.endpoint_id().as_deref() == Some(endpoint.as_str()));
                if ours {
                    tracing::info!(call_uuid = %self.uuid, %endpoint, "RTP timeout: hanging up");
                    self.end_call(Outcome::Completed { by_user: false });
                }
            }
            MediaEvent::ProcessLost => {
                tracing::warn!(call_uuid = %self.uuid, "media process lost: hanging up");
                let f = LegFailure::new(CallStatus::Failed, "media_unavailable", 503, "media process lost");
                self.end_call(Outcome::Failed(f));
            }
            MediaEvent::Dtmf { endpoint, digit } => {
                if self.caller_endpoint().as_deref() == Some(endpoint.as_str()) {
                    self.digit(digit);
                }
            }
            MediaEvent::PlaybackDone { play_id, error, .. } => {
                if self.whisper_played(&play_id) {
                    return;
                }
                if self.exec.barge_in.as_ref().is_some_and(|(_, id)| *id == play_id) {
                    self.exec.barge_in = None;
                }
                if let Some(reason) = error {
                    // The NCCO goes on; the application learns why it heard nothing.
                    tracing::info!(call_uuid = %self.uuid, %play_id, %reason, "play failed");
                    let event = crate::events::PlayFailedEvent {
                        uuid: self.uuid.clone(),
                        conversation_uuid: self.conversation_uuid.clone(),
                        status: "failed",
                        reason,
                        timestamp: self.cx.iso(),
                    };
                    self.post_ignored(None, serde_json::to_value(event).unwrap_or_default());
                }
                if self.exec.step == (Step::ExpectPlaybackDone { play_id }) {
                    self.exec.step = Step::Idle;
                    self.next_action();
                }
            }
            MediaEvent::WsClosed { endpoint, reason } => self.websocket_closed(&endpoint, reason),
            MediaEvent::WsConnected { endpoint } => self.websocket_party_connected(&endpoint),
            MediaEvent::MachineDetected { endpoint, result } => self.machine_detected(&endpoint, &result),
            MediaEvent::SpeechDone { transcribe_id, result, .. } => self.speech_done(&transcribe_id, result),
            MediaEvent::ConferenceEnded { endpoint } => {
                let ours = self.caller_endpoint().as_deref() == Some(endpoint.as_str());
                if ours && self.exec.step == Step::ExpectConversationEnd {
                    self.exec.step = Step::Idle;
                    self.next_action();
                }
            }
            MediaEvent::RecordDone { record_id, size, duration_ms, error, .. } => {
                self.recording_done(record_id, size, duration_ms, error);
            }
        }
    }

    /// Posts `body` to `webhook` (the application's event_url when `None`); its reply is not
    /// an NCCO, so nothing waits for it.
    pub(super) fn post_ignored(&mut self, webhook: Option<Webhook>, body: serde_json::Value) {
        self.send_ignored(DocumentRequest::Post { webhook, body });
    }

    /// Sends `request`; whatever it answers is not waited for.
    pub(super) fn send_ignored(&mut self, request: DocumentRequest) {
        let id = self.cx.ids.op();
        self.cx.ops.insert(id, Op::Ignored);
        self.cx.out.push_back(super::Output::FetchDocument { op: id, request });
    }

    /// A DTMF digit from the caller.
    pub(super) fn digit(&mut self, digit: char) {
        if digit == '*'
            && self.exec.hangup_on_star
            && let Some(i) = self.exec.bridged
        {
            // The callee is hung up; the document goes on as after the callee hanging up.
            self.exec.hangup_on_star = false;
            self.end_b(i, None);
            return self.callee_hung_up(i);
        }
        if let Some((endpoint_id, _)) = self.exec.barge_in.take() {
            self.cx.media(Op::Ignored, Command::StopPlay { endpoint_id });
        }
        let Step::ExpectDigits(d) = &mut self.exec.step else { return };
        if d.max == 0 {
            return; // speech alone: keys are not input
        }
        if digit == '#' && d.submit_on_hash {
            d.ended_by_hash = true;
            return self.input_done(false);
        }
        d.collected.push(digit);
        if u32::try_from(d.collected.chars().count()).unwrap_or(u32::MAX) >= d.max {
            self.input_done(false);
        }
    }

    pub(super) fn input_done(&mut self, timed_out: bool) {
        let Step::ExpectDigits(d) = std::mem::replace(&mut self.exec.step, Step::ExpectPostReply) else { return };
        self.cx.timers.cancel(TimerKey::Action);
        let speech = d.speech.map(|s| self.final_speech(s));
        if let Some(action) = d.twiml_action {
            return self.gathered(action, d.collected, d.ended_by_hash, speech);
        }
        let event = crate::events::InputEvent {
            uuid: self.uuid.clone(),
            conversation_uuid: self.conversation_uuid.clone(),
            from: self.caller_leg().from.clone(),
            to: self.caller_leg().to.clone(),
            dtmf: crate::events::DtmfResult { digits: d.collected, timed_out },
            speech,
            timestamp: self.cx.iso(),
        };
        let body = serde_json::to_value(event).unwrap_or_default();
        self.cx.fetch(DocumentPurpose::Continue, DocumentRequest::Post { webhook: d.event, body });
    }

    pub(super) fn action_timer(&mut self) {
        match &self.exec.step {
            Step::ExpectWaitElapsed => {
                self.exec.step = Step::Idle;
                self.next_action();
            }
            Step::ExpectDigits(_) => self.input_done(true),
            _ => {}
        }
    }
}
