//! `CallHarness`: a call driven with a virtual clock against a fake caller, callee, media
//! process and application — no sockets, no sleeps (quinn's `Pair::step`/`drive`). Each output
//! goes to its fake, which may schedule inputs; when nothing is scheduled sooner, time jumps to
//! the call's next timer.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::call::{
    Call, CallContext, DocumentRequest, Input, MediaEvent, MediaFailure, Now, Output, RecordUpdate, Route,
};
use crate::events::CallEvent;
use crate::media::{Command, ErrorCode, Reply};
use crate::ncco::Ncco;
use crate::sdp::Direction;
use crate::sip::dialog::Local;
use crate::sip::flow::Flow;
use crate::sip::{Method, SipMessage, StartLine};

pub const CALLER: &str = "192.0.2.1:5070";
pub const CALLEE: &str = "192.0.2.2:5080";

pub fn caller_flow() -> Flow {
    Flow::Udp(CALLER.parse().unwrap())
}

pub fn callee_flow() -> Flow {
    Flow::Udp(CALLEE.parse().unwrap())
}

pub fn sdp(version: u32, port: u16, direction: &str) -> String {
    format!(
        "v=0\r\no=- 1 {version} IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\nm=audio {port} RTP/AVP 0 101\r\n\
         a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na={direction}\r\n"
    )
}

pub fn invite(call_id: &str, extra: &str) -> SipMessage {
    let body = sdp(1, 40000, "sendrecv");
    let text = format!(
        "INVITE sip:+14155550100@acme.sip-us.voxbridge.local SIP/2.0\r\nVia: SIP/2.0/UDP {CALLER};branch=z9hG4bKcaller1\r\n\
         Max-Forwards: 70\r\nFrom: <sip:+14155550199@192.0.2.1>;tag=caller\r\nTo: <sip:+14155550100@acme.sip-us.voxbridge.local>\r\n\
         Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:caller@{CALLER}>\r\nX-Ticket: 42\r\n{extra}\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    SipMessage::parse(text.as_bytes()).unwrap()
}

/// How the fake callee answers an INVITE.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Callee {
    /// 180 after `ring`, 200 after `answer`.
    Answers { ring: Duration, answer: Duration },
    /// 180, then this failure after `after`.
    Rejects { code: u16, after: Duration },
    /// 180 and nothing more; a CANCEL gets 487.
    RingsForever,
    /// 180, and when CANCELled a 200 instead of the 487 (the race of §9.1).
    AnswersTheCancel,
    /// 183 with SDP (early media) after 100 ms, 200 after `answer`.
    EarlyMedia { answer: Duration },
    /// Never responds at all.
    Silent,
    /// 180, then 200 with `Session-Expires: se;refresher=uac` (we refresh, RFC 4028).
    AnswersWithTimer { se: u32 },
    /// 180, then 200 with `Session-Expires: se;refresher=uas` (the callee refreshes).
    AnswersRefreshingItself { se: u32 },
}

#[derive(Debug, Clone)]
pub struct Sent {
    pub at: Duration,
    pub flow: Flow,
    pub msg: SipMessage,
}

pub struct CallHarness {
    pub call: Call,
    pub epoch: Instant,
    pub now: Instant,
    utc0: DateTime<Utc>,
    queue: Vec<(Instant, u64, Input)>,
    seq: u64,
    pub sent: Vec<Sent>,
    pub events: Vec<CallEvent>,
    /// Events sent to a leg's own webhook (connect `eventUrl`, `<Sip statusCallback>`).
    pub leg_events: Vec<(crate::call::LegHook, CallEvent)>,
    pub records: Vec<RecordUpdate>,
    pub media_log: Vec<Command>,
    pub posts: Vec<Value>,
    /// TwiML callbacks sent: URL and parameters.
    pub forms: Vec<(String, Vec<(String, String)>)>,
    /// The NCCO answer_url returns, and after how long.
    pub answer: Value,
    pub answer_delay: Duration,
    /// NCCOs posted results get back, in order (`None`: no NCCO).
    pub post_replies: VecDeque<Option<Value>>,
    /// Which fake callee each outbound INVITE reaches, in order (the last repeats).
    pub callees: Vec<Callee>,
    invites_seen: usize,
    /// The media process implements play/record/…
    pub media_plays: bool,
    /// What destroyed endpoints report.
    pub quality: Option<crate::quality::Quality>,
    pub caller_acks: bool,
    /// The caller PRACKs reliable provisionals after this long (`None`: never).
    pub caller_pracks: Option<Duration>,
    endpoints: u32,
    sdp_versions: Vec<u32>,
    pub unlistened: Vec<crate::call::Key>,
    pub dialled: Vec<Duration>,
    /// When answer_url was asked, and when the media process answered each command.
    pub answer_asked: Vec<Duration>,
    pub media_answered: Vec<(Duration, &'static str)>,
}

impl CallHarness {
    pub fn new(answer: Value, callee: Callee) -> CallHarness {
        Self::with(answer, vec![callee], invite("a-call@caller", ""), route())
    }

    pub fn with(answer: Value, callees: Vec<Callee>, invite: SipMessage, route: Route) -> CallHarness {
        let (epoch, utc0) = (Instant::now(), utc0());
        let call = Call::inbound(context(route), caller_flow(), invite, epoch, Now { at: epoch, utc: utc0 });
        Self::around(call, epoch, answer, callees)
    }

    /// A call placed over the Voice API: `to` (a Voice API `to` endpoint, as a `connect`'s),
    /// `ncco` inline or `None` for answer_url (which returns `answer`).
    pub fn originated(
        connect: Value,
        ncco: Option<Value>,
        answer: Value,
        callees: Vec<Callee>,
    ) -> Result<CallHarness, crate::call::LegFailure> {
        let (epoch, utc0) = (Instant::now(), utc0());
        let Some(crate::ncco::Action::Connect(connect)) = Ncco::parse(&json!([connect])).unwrap().0.pop() else {
            panic!("not a connect")
        };
        let ncco = ncco.map(|n| Ncco::parse(&n).unwrap());
        let originate = crate::call::Originate { connect, ncco };
        let call = Call::originated(context(route()), originate, Now { at: epoch, utc: utc0 })?;
        let mut h = Self::around(call, epoch, answer, callees);
        h.caller_acks = false;
        Ok(h)
    }

    fn around(call: Call, epoch: Instant, answer: Value, callees: Vec<Callee>) -> CallHarness {
        let utc0 = utc0();
        CallHarness {
            call,
            epoch,
            now: epoch,
            utc0,
            queue: Vec::new(),
            seq: 0,
            sent: Vec::new(),
            events: Vec::new(),
            leg_events: Vec::new(),
            records: Vec::new(),
            media_log: Vec::new(),
            posts: Vec::new(),
            forms: Vec::new(),
            answer,
            answer_delay: Duration::from_millis(50),
            post_replies: VecDeque::new(),
            callees,
            invites_seen: 0,
            media_plays: false,
            quality: None,
            caller_acks: true,
            caller_pracks: Some(Duration::from_millis(1)),
            endpoints: 0,
            sdp_versions: Vec::new(),
            unlistened: Vec::new(),
            dialled: Vec::new(),
            answer_asked: Vec::new(),
            media_answered: Vec::new(),
        }
    }

    fn nowv(&self) -> Now {
        let since = self.now - self.epoch;
        Now { at: self.now, utc: self.utc0 + chrono::Duration::from_std(since).unwrap() }
    }

    pub fn elapsed(&self) -> Duration {
        self.now - self.epoch
    }

    /// Schedules an input `after` from now.
    pub fn schedule(&mut self, after: Duration, input: Input) {
        self.seq += 1;
        self.queue.push((self.now + after, self.seq, input));
    }

    /// A message from the caller `after` from now.
    pub fn caller_sends(&mut self, after: Duration, msg: SipMessage) {
        self.schedule(after, Input::Sip { flow: caller_flow(), msg });
    }

    fn callee_sends(&mut self, after: Duration, msg: SipMessage) {
        self.schedule(after, Input::Sip { flow: callee_flow(), msg });
    }

    /// One step; false once the call is done or idle.
    pub fn step(&mut self) -> bool {
        while let Some(out) = self.call.poll_output() {
            self.route(out);
        }
        if self.call.is_done() {
            return false;
        }
        let next_input = self.queue.iter().map(|(at, seq, _)| (*at, *seq)).min();
        let next_timer = self.call.poll_timeout();
        let input_first = match (next_input, next_timer) {
            (Some((at, _)), Some(t)) => at <= t,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => return false,
        };
        if input_first {
            let Some((at, seq)) = next_input else { return false };
            self.now = self.now.max(at);
            let Some(pos) = self.queue.iter().position(|(_, s, _)| *s == seq) else { return false };
            let (_, _, input) = self.queue.remove(pos);
            let now = self.nowv();
            self.call.handle_input(now, input);
        } else if let Some(t) = next_timer {
            self.now = self.now.max(t);
            let now = self.nowv();
            self.call.handle_timeout(now);
        }
        true
    }

    pub fn drive(&mut self) {
        let mut steps = 0;
        while self.step() {
            steps += 1;
            assert!(steps < 100_000, "the call never settles");
        }
    }

    /// Steps until virtual time `t` (from the start) is reached.
    pub fn drive_until(&mut self, t: Duration) {
        loop {
            while let Some(out) = self.call.poll_output() {
                self.route(out);
            }
            let next =
                [self.queue.iter().map(|(at, _, _)| *at).min(), self.call.poll_timeout()].into_iter().flatten().min();
            match next {
                Some(at) if at <= self.epoch + t && !self.call.is_done() => {
                    self.step();
                }
                _ => break,
            }
        }
        self.now = self.now.max(self.epoch + t);
    }

    fn route(&mut self, out: Output) {
        let ms = Duration::from_millis(1);
        match out {
            Output::Sip { flow, msg } => {
                self.sent.push(Sent { at: self.elapsed(), flow: flow.clone(), msg: msg.clone() });
                if flow == callee_flow() {
                    self.callee_gets(msg);
                } else if flow == caller_flow() {
                    self.caller_gets(msg);
                }
            }
            Output::Resolve { op, target, attempt } => {
                // `srv.test` has two servers: the silent gateway, then the fake callee.
                let result = if target.host == "srv.test" {
                    let servers = ["192.0.2.2:5090", CALLEE];
                    match servers.get(attempt) {
                        Some(s) => Ok(crate::call::Resolved {
                            flow: Flow::Udp(s.parse().unwrap()),
                            next_attempt: (attempt + 1 < servers.len()).then_some(attempt + 1),
                        }),
                        None => Err("no more servers".into()),
                    }
                } else {
                    format!("{}:{}", target.host, target.port_or_default())
                        .parse()
                        .map(|a| crate::call::Resolved { flow: Flow::Udp(a), next_attempt: None })
                        .map_err(|e| format!("{e}"))
                };
                self.schedule(ms, Input::Resolved { op, result });
            }
            Output::Media { op, command } => {
                let result = self.media_reply(&command);
                if let (Command::Play { endpoint_id, play_id, .. }, Ok(_)) = (&command, &result) {
                    let done = MediaEvent::PlaybackDone {
                        endpoint: endpoint_id.clone(),
                        play_id: play_id.clone(),
                        error: None,
                    };
                    self.schedule(Duration::from_secs(2), Input::Media(done));
                }
                if let Command::RecordStop { endpoint_id, record_id } = &command {
                    // The file is written 1.5 s long, a moment later.
                    let done = MediaEvent::RecordDone {
                        endpoint: endpoint_id.clone(),
                        record_id: record_id.clone(),
                        size: 48_044,
                        duration_ms: 1500,
                        error: None,
                    };
                    self.schedule(Duration::from_millis(100), Input::Media(done));
                }
                self.media_answered.push((self.elapsed() + ms, command.name()));
                self.media_log.push(command);
                self.schedule(ms, Input::MediaReply { op, result });
            }
            Output::FetchDocument { op, request } => match request {
                DocumentRequest::Answer { .. } => {
                    self.answer_asked.push(self.elapsed());
                    let result = Ncco::parse(&self.answer).map(Some).map_err(|p| format!("{p:?}"));
                    self.schedule(self.answer_delay, Input::Document { op, result });
                }
                DocumentRequest::Post { body, .. } => {
                    self.posts.push(body);
                    self.reply_to_post(op);
                }
                DocumentRequest::Form { callback, params } => {
                    let url = callback.url.map_or_else(|| "the running document".to_owned(), |u| u.to_string());
                    self.forms.push((url, params));
                    self.reply_to_post(op);
                }
            },
            Output::Event(ev) => self.events.push(ev),
            Output::LegEvent { event, hook } => self.leg_events.push((hook, event)),
            Output::Record(r) => self.records.push(r),
            Output::Listen(_) => {}
            Output::Unlisten(k) => self.unlistened.push(k),
            Output::Dialled { added, .. } => self.dialled.push(added),
            Output::Unmatched { .. } => {}
        }
    }

    /// The next of `post_replies` answers a webhook post.
    fn reply_to_post(&mut self, op: crate::call::OpId) {
        let reply = self.post_replies.pop_front().flatten();
        let result = Ok(reply.map(|v| Ncco::parse(&v).unwrap()));
        self.schedule(Duration::from_millis(20), Input::Document { op, result });
    }

    fn media_reply(&mut self, command: &Command) -> Result<Reply, MediaFailure> {
        match command {
            Command::CreateEndpoint { .. } | Command::CreateWebsocketEndpoint { .. } => {
                self.endpoints += 1;
                self.sdp_versions.push(1);
                Ok(Reply::Endpoint {
                    endpoint_id: format!("ep{}", self.endpoints),
                    local_sdp: local_sdp(self.endpoints, 1, Direction::SendRecv),
                    codec: Some("PCMU".into()),
                })
            }
            Command::UpdateEndpoint { endpoint_id, .. } => {
                let n = ep_number(endpoint_id);
                let v = self.sdp_versions.get(n.saturating_sub(1) as usize).copied().unwrap_or(1);
                Ok(Reply::Updated { local_sdp: local_sdp(n, v, Direction::SendRecv) })
            }
            Command::Reoffer { endpoint_id, direction } => {
                // As the media process does: every new offer gets a higher o= version.
                let n = ep_number(endpoint_id);
                let v = self.sdp_versions.get_mut(n.saturating_sub(1) as usize).unwrap();
                *v += 1;
                Ok(Reply::Updated { local_sdp: local_sdp(n, *v, *direction) })
            }
            Command::Bridge { .. } => Ok(Reply::Bridged),
            Command::Unbridge { .. } => Ok(Reply::Unbridged),
            Command::DestroyEndpoint { .. } => Ok(Reply::Destroyed { quality: self.quality.clone() }),
            Command::Transcribe { .. } if self.media_plays => Ok(Reply::Started),
            // As a media process with no speech recogniser configured.
            Command::Transcribe { .. } => Err(MediaFailure {
                code: Some(ErrorCode::Unsupported),
                message: crate::events::NO_SPEECH_ENGINE.to_owned(),
            }),
            other if self.media_plays => {
                let _ = other;
                Ok(Reply::Started)
            }
            other => Err(MediaFailure {
                code: Some(ErrorCode::Unsupported),
                message: format!("{} is not implemented by this media process yet", other.name()),
            }),
        }
    }

    fn callee_gets(&mut self, msg: SipMessage) {
        let ms = Duration::from_millis(1);
        let Some(method) = msg.method().cloned() else { return };
        let script = self.callees.get(self.invites_seen.saturating_sub(1)).copied().unwrap_or(Callee::Silent);
        match method {
            Method::Invite if msg.header("To").is_some_and(|t| !t.contains("tag=")) => {
                // A retransmission of an INVITE already seen is ignored by the fake.
                let first = self.sent.iter().filter(|s| s.msg.branch() == msg.branch()).count() == 1;
                if !first {
                    return;
                }
                self.invites_seen += 1;
                let script =
                    self.callees.get(self.invites_seen - 1).or(self.callees.last()).copied().unwrap_or(Callee::Silent);
                let tag = format!("callee{}", self.invites_seen);
                match script {
                    Callee::Silent => {}
                    Callee::Answers { ring, answer } => {
                        self.callee_sends(ring, callee_response(&msg, 180, &tag, false));
                        self.callee_sends(answer, callee_response(&msg, 200, &tag, true));
                    }
                    Callee::AnswersWithTimer { se } | Callee::AnswersRefreshingItself { se } => {
                        let refresher = if matches!(script, Callee::AnswersWithTimer { .. }) { "uac" } else { "uas" };
                        self.callee_sends(ms, callee_response(&msg, 180, &tag, false));
                        let mut ok = callee_response(&msg, 200, &tag, true);
                        ok.push_header("Session-Expires", format!("{se};refresher={refresher}"));
                        ok.push_header("Require", "timer");
                        self.callee_sends(ms * 2, ok);
                    }
                    Callee::Rejects { code, after } => {
                        self.callee_sends(ms, callee_response(&msg, 180, &tag, false));
                        self.callee_sends(after, callee_response(&msg, code, &tag, false));
                    }
                    Callee::EarlyMedia { answer } => {
                        self.callee_sends(ms * 100, callee_response(&msg, 183, &tag, true));
                        self.callee_sends(answer, callee_response(&msg, 200, &tag, true));
                    }
                    Callee::RingsForever | Callee::AnswersTheCancel => {
                        self.callee_sends(ms, callee_response(&msg, 180, &tag, false))
                    }
                }
            }
            Method::Invite => {
                let tag = to_tag(&msg);
                self.callee_sends(ms, callee_response(&msg, 200, &tag, true));
            }
            Method::Cancel => {
                self.callee_sends(ms, msg.response(200, None));
                let Some(invite) = self
                    .sent
                    .iter()
                    .rev()
                    .find(|s| s.msg.method() == Some(&Method::Invite) && s.msg.branch() == msg.branch())
                    .map(|s| s.msg.clone())
                else {
                    return;
                };
                let tag = format!("callee{}", self.invites_seen);
                let code = if script == Callee::AnswersTheCancel { 200 } else { 487 };
                self.callee_sends(ms * 2, callee_response(&invite, code, &tag, code == 200));
            }
            Method::Bye => self.callee_sends(ms, msg.response(200, None)),
            _ => {}
        }
    }

    fn caller_gets(&mut self, msg: SipMessage) {
        let ms = Duration::from_millis(1);
        match (msg.method().cloned(), msg.status()) {
            (Some(Method::Bye | Method::Invite | Method::Update), _) => {
                let tag = to_tag(&msg);
                let mut resp = msg.response(200, Some(&tag));
                if msg.method() == Some(&Method::Invite) {
                    resp.push_header("Content-Type", "application/sdp");
                    resp.body = sdp(3, 40000, "sendrecv").into_bytes();
                }
                self.caller_sends(ms, resp);
            }
            (None, Some(101..=199)) if msg.header("RSeq").is_some() => {
                let (Some(delay), Some(rseq), Some((cseq, _))) = (self.caller_pracks, msg.header("RSeq"), msg.cseq())
                else {
                    return;
                };
                let Some(mut prack) = caller_ack(&msg) else { return };
                prack.start = StartLine::Request { method: Method::Prack, uri: "sip:voxbridge@203.0.113.1".into() };
                prack.set_header("Via", format!("SIP/2.0/UDP {CALLER};branch=z9hG4bKprack{rseq}"));
                prack.set_header("CSeq", format!("{} PRACK", cseq + 1));
                prack.push_header("RAck", format!("{rseq} {cseq} INVITE"));
                self.caller_sends(delay, prack);
            }
            (None, Some(code))
                if code >= 200 && msg.cseq().is_some_and(|c| c.1 == Method::Invite) && self.caller_acks =>
            {
                let Some(ack) = caller_ack(&msg) else { return };
                // Only the first 2xx/failure of a transaction is ACKed by the fake; retransmissions too.
                self.caller_sends(ms, ack);
            }
            _ => {}
        }
    }

    // --- what tests look at ---

    pub fn to_caller(&self) -> Vec<&Sent> {
        self.sent.iter().filter(|s| s.flow == caller_flow()).collect()
    }

    pub fn to_callee(&self) -> Vec<&Sent> {
        self.sent.iter().filter(|s| s.flow == callee_flow()).collect()
    }

    /// Codes of the responses sent to the caller (retransmissions included).
    pub fn caller_codes(&self) -> Vec<u16> {
        self.to_caller().iter().filter_map(|s| s.msg.status()).collect()
    }

    pub fn requests_to(&self, flow: &Flow, method: Method) -> Vec<&Sent> {
        self.sent.iter().filter(|s| &s.flow == flow && s.msg.method() == Some(&method)).collect()
    }

    pub fn statuses(&self, direction: crate::events::Direction) -> Vec<&str> {
        self.events.iter().filter(|e| e.direction == direction).map(|e| e.status.as_str()).collect()
    }

    pub fn media_commands(&self) -> Vec<&str> {
        self.media_log.iter().map(Command::name).collect()
    }
}

/// A carrier trunk with two gateways (the first listed first), credentials, and a PBX trunk.
pub fn dialling() -> crate::call::Dialling {
    let gw = |port: u16, priority: u16| crate::trunk::Gateway {
        host: "192.0.2.2".into(),
        port,
        transport: crate::sip_uri::Transport::Udp,
        priority,
        weight: 1,
    };
    crate::call::Dialling {
        trunks: vec![
            crate::trunk::Trunk {
                name: "carrier".into(),
                gateways: vec![gw(5090, 0), gw(5080, 1)],
                prefixes: vec!["1".into()],
                credentials: Some(("trunkuser".into(), "s3cret".into())),
                pbx: false,
            },
            crate::trunk::Trunk {
                name: "pbx".into(),
                gateways: vec![gw(5080, 0)],
                prefixes: vec!["99".into()],
                credentials: None,
                pbx: true,
            },
        ],
        numbers: vec!["14155550100".into()],
        // alice's desk phone and softphone, each behind its NAT: rung at the flows they
        // registered from, not at their private contact addresses.
        registered: ["192.0.2.2:5080", "192.0.2.3:5060"]
            .into_iter()
            .enumerate()
            .map(|(i, flow)| crate::call::Registered {
                domain: "acme-sip".into(),
                application_id: Some("app-1".into()),
                user: "alice".into(),
                contact: format!("sip:alice@10.0.0.{}:5060", i + 1),
                flow: Some(Flow::Udp(flow.parse().unwrap())),
                srtp: crate::srtp::SrtpPolicy::Optional,
            })
            .collect(),
        default_application_id: None,
        account_sid: Some("AC0123456789abcdef0123456789abcdef".into()),
    }
}

fn utc0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-12-01T10:00:00Z").unwrap().with_timezone(&Utc)
}

fn context(route: Route) -> CallContext {
    CallContext {
        seed: 42,
        local: Local { host: "203.0.113.1".into(), port: 5060, user_agent: "voxbridge-test".into() },
        route,
        region_url: "http://127.0.0.1:3000".into(),
        dialling: std::sync::Arc::new(dialling()),
        caller_srtp: crate::srtp::SrtpPolicy::Optional,
    }
}

pub fn route() -> Route {
    Route::Application {
        application_id: "app-1".into(),
        region: "us".into(),
        dialect: crate::application::Dialect::Ncco,
        sip_transport: crate::sip_uri::Transport::Udp,
    }
}

fn ep_number(id: &str) -> u32 {
    id.trim_start_matches("ep").parse().unwrap_or(0)
}

fn local_sdp(n: u32, version: u32, direction: Direction) -> String {
    format!(
        "v=0\r\no=voxbridge {n} {version} IN IP4 203.0.113.1\r\ns=voxbridge\r\nc=IN IP4 203.0.113.1\r\nt=0 0\r\n\
         m=audio {} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na={}\r\n",
        20000 + n * 2,
        direction.attribute()
    )
}

fn to_tag(msg: &SipMessage) -> String {
    msg.header("To")
        .and_then(|t| crate::sip::headers::NameAddr::parse(t).ok())
        .and_then(|n| n.tag().map(str::to_owned))
        .unwrap_or_else(|| "t".into())
}

pub fn callee_response(req: &SipMessage, code: u16, tag: &str, with_sdp: bool) -> SipMessage {
    let mut resp = req.response(code, Some(tag));
    resp.push_header("Contact", format!("<sip:callee@{CALLEE}>"));
    if with_sdp {
        resp.push_header("Content-Type", "application/sdp");
        resp.body = sdp(1, 50000, "sendrecv").into_bytes();
    }
    resp
}

/// The caller's ACK of a final response to its INVITE.
pub fn caller_ack(resp: &SipMessage) -> Option<SipMessage> {
    let code = resp.status()?;
    let mut headers: Vec<(String, String)> = Vec::new();
    let branch = if code < 300 { "z9hG4bKcallerack".to_owned() } else { resp.branch().unwrap_or_default() };
    headers.push(("Via".into(), format!("SIP/2.0/UDP {CALLER};branch={branch}")));
    for name in ["From", "To", "Call-ID"] {
        headers.push((name.into(), resp.header(name)?.to_owned()));
    }
    let cseq = resp.cseq()?.0;
    headers.push(("CSeq".into(), format!("{cseq} ACK")));
    Some(SipMessage {
        start: StartLine::Request { method: Method::Ack, uri: "sip:voxbridge@203.0.113.1".into() },
        headers,
        body: vec![],
    })
}

/// A request from the caller within its dialog (after our 200).
pub fn caller_in_dialog(h: &CallHarness, method: Method, cseq: u32, body: Option<String>) -> SipMessage {
    let ok = h.to_caller().into_iter().find(|s| s.msg.status() == Some(200)).expect("caller answered").msg.clone();
    let mut headers: Vec<(String, String)> = vec![
        ("Via".into(), format!("SIP/2.0/UDP {CALLER};branch=z9hG4bKcaller{cseq}")),
        ("From".into(), ok.header("From").unwrap().to_owned()),
        ("To".into(), ok.header("To").unwrap().to_owned()),
        ("Call-ID".into(), ok.header("Call-ID").unwrap().to_owned()),
        ("CSeq".into(), format!("{cseq} {}", method.as_str())),
        ("Contact".into(), format!("<sip:caller@{CALLER}>")),
    ];
    let mut body_bytes = vec![];
    if let Some(b) = body {
        headers.push(("Content-Type".into(), "application/sdp".into()));
        body_bytes = b.into_bytes();
    }
    SipMessage {
        start: StartLine::Request { method, uri: "sip:voxbridge@203.0.113.1".into() },
        headers,
        body: body_bytes,
    }
}

/// A request from the callee within its dialog (after its 200).
pub fn callee_in_dialog(h: &CallHarness, method: Method, cseq: u32) -> SipMessage {
    let invite = h.requests_to(&callee_flow(), Method::Invite).first().expect("callee invited").msg.clone();
    let headers: Vec<(String, String)> = vec![
        ("Via".into(), format!("SIP/2.0/UDP {CALLEE};branch=z9hG4bKcallee{cseq}")),
        ("From".into(), format!("{};tag=callee1", invite.header("To").unwrap())),
        ("To".into(), invite.header("From").unwrap().to_owned()),
        ("Call-ID".into(), invite.header("Call-ID").unwrap().to_owned()),
        ("CSeq".into(), format!("{cseq} {}", method.as_str())),
    ];
    SipMessage { start: StartLine::Request { method, uri: "sip:voxbridge@203.0.113.1".into() }, headers, body: vec![] }
}
