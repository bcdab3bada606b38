//! `<Dial>` and its nouns: `<Sip>` (up to ten, rung in parallel, first answer wins, never
//! mixed with other nouns) and `<Number>` (or a bare number as the text), into one NCCO
//! `connect`. A `<Sip>` URI carries its headers after `?` (`?x-name=value&x-other=w`,
//! percent-encoded, `&amp;` in the XML): `X-` headers, and `User-to-User` (also written
//! `X-User-to-User`), under 1024 characters in all, as Twilio's rules go.

use serde_json::{Map, Value, json};

use super::{Element, Verb, put};
use crate::ncco::action::{Connect, DialRecord, StatusCallback, TwimlDial};
use crate::ncco::{Action, Endpoint, Sip};

/// Twilio's default ringing time, in seconds.
const DEFAULT_TIMEOUT: u64 = 30;
/// The longest header part of a `<Sip>` URI (Twilio warning 21227).
const MAX_HEADER_PART: usize = 1024;
const USER_TO_USER: &str = "User-to-User";

pub(super) fn dial(v: &mut Verb) -> Option<Action> {
    v.attributes(
        &[
            "timeout",
            "callerId",
            "timeLimit",
            "action",
            "method",
            "hangupOnStar",
            "record",
            "recordingStatusCallback",
            "recordingStatusCallbackMethod",
            "answerOnBridge",
        ],
        &[
            ("sequential", "false"),
            ("ringTone", ""),
            ("trim", "do-not-trim"),
            ("recordingStatusCallbackEvent", "completed"),
            ("recordingTrack", "both"),
            ("referUrl", ""),
            ("referMethod", "POST"),
        ],
    );
    let endpoints = endpoints(v)?;
    let mut connect = json!({"action": "connect", "endpoint": endpoints,
                             "timeout": v.uint("timeout").unwrap_or(DEFAULT_TIMEOUT)});
    if let Some(limit) = v.uint("timeLimit") {
        // Twilio's default and ceiling are 4 h; a call here lasts at most the NCCO's 2 h.
        put(&mut connect, "limit", json!(limit.min(u64::from(Connect::MAX_LIMIT))));
    }
    let to_sip = v.e.children.iter().any(|n| n.name == "Sip");
    let sip_caller_id = match v.e.attr("callerId") {
        Some(id) if to_sip => {
            let allowed = |c: char| c.is_ascii_alphanumeric() || "+-_.".contains(c);
            if id.is_empty() || !id.chars().all(allowed) {
                v.report(Some("callerId"), "for <Sip> must be letters, digits and + - _ . only");
            }
            Some(id.to_owned())
        }
        Some(number) => {
            put(&mut connect, "from", json!(number.trim_start_matches('+')));
            None
        }
        None => None,
    };
    let action = v.webhook("action", "method");
    for flag in ["hangupOnStar", "answerOnBridge"] {
        if let Some(other) = v.e.attr(flag).filter(|h| !["true", "false"].contains(h)) {
            v.report(Some(flag), format!("must be true or false, found '{other}'"));
        }
    }
    // voxbridge's way without the attribute: the caller is answered with the callee.
    let answer_first = v.e.attr("answerOnBridge") == Some("false");
    let status = noun_status_callbacks(v);
    let record = dial_record(v);
    let number_method = match v.e.children.iter().enumerate().find(|(_, n)| n.name == "Number") {
        Some((i, e)) => Verb { e, at: format!("{}/Number[{}]", v.at, i + 1), p: &mut *v.p }.method("method"),
        None => crate::ncco::common::HttpMethod::Post,
    };
    match v.action(&connect)? {
        Action::Connect(mut c) => {
            let hangup_on_star = v.e.attr("hangupOnStar") == Some("true");
            let dial = TwimlDial { action, sip_caller_id, hangup_on_star, status, number_method, record, answer_first };
            c.twiml = Some(Box::new(dial));
            // What NCCO JSON has no field for: each <Sip>'s credentials and codecs.
            let mut extras = sip_extras(v).into_iter();
            if let (Endpoint::Sip(sip), Some(extra)) = (&mut c.endpoint, extras.next()) {
                extra.apply(sip);
            }
            for (fork, extra) in c.forks.iter_mut().zip(extras) {
                extra.apply(fork);
            }
            Some(Action::Connect(c))
        }
        other => Some(other),
    }
}

/// `<Dial record recordingStatusCallback recordingStatusCallbackMethod>`.
fn dial_record(v: &mut Verb) -> Option<DialRecord> {
    let status = v.webhook("recordingStatusCallback", "recordingStatusCallbackMethod");
    let (from_ringing, dual) = match v.e.attr("record").unwrap_or("do-not-record") {
        "do-not-record" => {
            if status.is_some() {
                v.report(Some("recordingStatusCallback"), "the dial is not recorded (record=\"do-not-record\")");
            }
            return None;
        }
        "record-from-answer" => (false, false),
        "record-from-answer-dual" => (false, true),
        "record-from-ringing" => (true, false),
        "record-from-ringing-dual" => (true, true),
        other => {
            let reason = format!(
                "must be do-not-record, record-from-answer, record-from-ringing or their -dual forms, found '{other}'"
            );
            v.report(Some("record"), reason);
            return None;
        }
    };
    Some(DialRecord { from_ringing, dual, status })
}

/// `<Sip username password codecs url method sessionTimeout>`.
struct SipExtras {
    credentials: Option<(String, String)>,
    codecs: Vec<String>,
    screen: Option<crate::ncco::common::Webhook>,
    session_expires: u32,
}

impl SipExtras {
    fn apply(self, sip: &mut Sip) {
        sip.credentials = self.credentials;
        sip.codecs = self.codecs;
        sip.screen = self.screen;
        sip.session_expires = Some(self.session_expires);
    }
}

/// SignalWire's `sessionTimeout` default (and what 0 means), seconds.
const DEFAULT_SESSION_EXPIRES: u32 = 600;

/// The extras of each `<Sip>` noun, in order (their attributes were checked by [`sip`]).
fn sip_extras(v: &mut Verb) -> Vec<SipExtras> {
    let nouns: Vec<&Element> = v.e.children.iter().filter(|n| n.name == "Sip").collect();
    let mut out = Vec::with_capacity(nouns.len());
    for (i, noun) in nouns.into_iter().enumerate() {
        let at = format!("{}/Sip[{}]", v.at, i + 1);
        let credentials = match (noun.attr("username"), noun.attr("password")) {
            (Some(u), Some(p)) => Some((u.to_owned(), p.to_owned())),
            (None, None) => None,
            _ => {
                v.p.push(format!("{at}@username"), "username and password go together");
                None
            }
        };
        let mut codecs = Vec::new();
        for name in noun.attr("codecs").unwrap_or_default().split(',').map(str::trim).filter(|c| !c.is_empty()) {
            match crate::sdp::Codec::from_name(name) {
                Some(_) => codecs.push(name.to_ascii_uppercase()),
                None => {
                    v.p.push(format!("{at}@codecs"), format!("unknown codec '{name}' ({})", crate::sdp::Codec::names()))
                }
            }
        }
        let mut noun = Verb { e: noun, at, p: &mut *v.p };
        let screen = noun.webhook("url", "method");
        let min = crate::call::MIN_SE_SECS;
        let session_expires = match noun.uint("sessionTimeout") {
            None | Some(0) => DEFAULT_SESSION_EXPIRES,
            Some(s) => match u32::try_from(s).ok().filter(|s| *s >= min) {
                Some(s) => s,
                None => {
                    noun.report(Some("sessionTimeout"), format!("must be 0 (the default, 600) or at least {min}"));
                    DEFAULT_SESSION_EXPIRES
                }
            },
        };
        out.push(SipExtras { credentials, codecs, screen, session_expires });
    }
    out
}

/// The NCCO endpoints of the nouns (or of the number that is the text).
fn endpoints(v: &mut Verb) -> Option<Vec<Value>> {
    let nouns = &v.e.children;
    if nouns.is_empty() {
        let number = v.required_text("a number or nouns")?;
        return Some(vec![json!({"type": "phone", "number": number.trim_start_matches('+')})]);
    }
    if !v.e.text.trim().is_empty() {
        v.report(None, "<Dial> takes either a number as its text or nouns, not both");
    }
    let sips = nouns.iter().filter(|n| n.name == "Sip").count();
    if sips > 0 && sips < nouns.len() {
        v.report(None, "<Sip> cannot be mixed with other nouns in one <Dial>");
        return None;
    }
    if sips > Connect::MAX_PARALLEL {
        v.report(None, format!("at most {} <Sip> nouns ring at once", Connect::MAX_PARALLEL));
        return None;
    }
    let mut out = Vec::with_capacity(nouns.len());
    for (i, noun) in nouns.iter().enumerate() {
        let mut n = Verb { e: noun, at: format!("{}/{}[{}]", v.at, noun.name, i + 1), p: &mut *v.p };
        match noun.name.as_str() {
            "Sip" => out.extend(sip(&mut n)),
            "Number" => out.extend(number(&mut n)),
            "Client" | "Conference" | "Queue" | "Sim" | "Application" | "WhatsApp" => {
                n.report(None, format!("<{}> is not supported by voxbridge yet", noun.name));
            }
            other => n.report(None, format!("unknown noun <{other}> in <Dial>")),
        }
    }
    if out.len() > 1 && sips == 0 {
        v.report(None, "several <Number> nouns at once are not supported by voxbridge yet");
        return None;
    }
    Some(out)
}

/// The attributes every noun takes: its screening document and its status callbacks.
const NOUN_ATTRIBUTES: [&str; 5] = ["url", "method", "statusCallback", "statusCallbackEvent", "statusCallbackMethod"];

/// Each noun's `statusCallback` (with its method and events), in noun order.
fn noun_status_callbacks(v: &mut Verb) -> Vec<Option<StatusCallback>> {
    let mut out = Vec::with_capacity(v.e.children.len());
    for (i, noun) in v.e.children.iter().enumerate() {
        let mut n = Verb { e: noun, at: format!("{}/{}[{}]", v.at, noun.name, i + 1), p: &mut *v.p };
        let Some(webhook) = n.webhook("statusCallback", "statusCallbackMethod") else {
            if noun.attr("statusCallbackEvent").is_some() {
                n.report(Some("statusCallbackEvent"), "needs a statusCallback to send the events to");
            }
            out.push(None);
            continue;
        };
        let mut events = Vec::new();
        for name in noun.attr("statusCallbackEvent").unwrap_or("completed").split([' ', ',']).filter(|e| !e.is_empty())
        {
            match crate::twiml::status::EVENTS.iter().find(|e| e.eq_ignore_ascii_case(name)) {
                Some(e) => events.push((*e).to_owned()),
                None => n.report(
                    Some("statusCallbackEvent"),
                    format!("unknown event '{name}' (initiated, ringing, answered, completed)"),
                ),
            }
        }
        out.push(Some(StatusCallback { webhook, events }));
    }
    out
}

fn number(n: &mut Verb) -> Option<Value> {
    let mut known = NOUN_ATTRIBUTES.to_vec();
    known.push("sendDigits");
    n.attributes(&known, &[("byoc", "")]);
    n.no_children();
    let number = n.required_text("the number")?;
    let mut phone = json!({"type": "phone", "number": number.trim_start_matches('+')});
    if let Some(digits) = n.e.attr("sendDigits") {
        // Twilio's `w` (a half-second wait) is NCCO's `p`.
        put(&mut phone, "dtmfAnswer", json!(digits.replace(['w', 'W'], "p")));
    }
    if let Some(url) = n.e.attr("url") {
        // The screening document: NCCO's onAnswer, asked with `method` (see `dial`).
        put(&mut phone, "onAnswer", json!({"url": url}));
    }
    Some(phone)
}

fn sip(n: &mut Verb) -> Option<Value> {
    // `url`/`method` are the screening document (read by `sip_extras`).
    let mut known = NOUN_ATTRIBUTES.to_vec();
    known.extend(["username", "password", "codecs", "sessionTimeout"]);
    n.attributes(&known, &[("machineDetection", ""), ("amdStatusCallback", "")]);
    n.no_children();
    let text = n.required_text("the SIP URI")?;
    let (uri, headers) = text.split_once('?').unwrap_or((text.as_str(), ""));
    let uri = without_egress(n, uri);
    let mut endpoint = json!({"type": "sip", "uri": uri});
    if headers.len() >= MAX_HEADER_PART {
        n.report(None, format!("the headers after '?' must be under {MAX_HEADER_PART} characters"));
        return None;
    }
    let (mut custom, mut standard) = (Map::new(), Map::new());
    for pair in headers.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let (name, value) = (decode(name), decode(value));
        if name.eq_ignore_ascii_case(USER_TO_USER) || name.eq_ignore_ascii_case("X-User-to-User") {
            standard.insert(USER_TO_USER.into(), json!(value));
        } else if crate::ncco::endpoint::is_custom_header(&name) {
            custom.insert(name, json!(value));
        } else {
            n.report(None, format!("header '{name}': only X- headers and User-to-User may be set in the URI"));
        }
    }
    if !custom.is_empty() {
        put(&mut endpoint, "headers", Value::Object(custom));
    }
    if !standard.is_empty() {
        put(&mut endpoint, "standardHeaders", Value::Object(standard));
    }
    Some(endpoint)
}

/// Twilio's egress edges and regions (`;edge=`, `;region=` on a `<Sip>` URI).
const EDGES: [&str; 8] = ["ashburn", "umatilla", "dublin", "frankfurt", "singapore", "tokyo", "sao-paulo", "sydney"];
const REGIONS: [&str; 8] = ["us1", "us2", "ie1", "de1", "sg1", "jp1", "br1", "au1"];

/// `uri` without its `;edge=` and `;region=` parameters, which are checked: they choose where
/// Twilio's leg leaves from, and a voxbridge node places every leg from its own SIP address,
/// so they are not sent to the far end (Twilio does not send them either).
fn without_egress(n: &mut Verb, uri: &str) -> String {
    let mut params = uri.split(';');
    let mut out = params.next().unwrap_or_default().to_owned();
    for param in params {
        let (name, value) = param.split_once('=').unwrap_or((param, ""));
        let known: Option<&[&str]> = match name.to_ascii_lowercase().as_str() {
            "edge" => Some(&EDGES),
            "region" => Some(&REGIONS),
            _ => None,
        };
        match known {
            Some(names) if names.contains(&value.to_ascii_lowercase().as_str()) => {}
            Some(names) => n.report(None, format!("unknown {name} '{value}' ({})", names.join(", "))),
            None => {
                out.push(';');
                out.push_str(param);
            }
        }
    }
    out
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}
