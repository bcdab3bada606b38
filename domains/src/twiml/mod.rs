//! TwiML and cXML (SignalWire's dialect of it) answer documents: `<Response>` and its verbs
//! become the same [`Ncco`] an NCCO becomes, so one executor runs both. Verbs that have an
//! NCCO counterpart are translated into that action's JSON and parsed by the NCCO parser, so
//! each rule (URIs, languages, ranges) lives in one place; `<Hangup>`, `<Reject>` and
//! `<Redirect>` become the actions NCCO JSON lacks.
//!
//! Every problem is named by the element's path (`Response/Dial[2]/Sip[1]`, with the
//! attribute after `@`), and a document is refused whole: an unknown verb, noun or attribute,
//! or a value out of range, is an error and never ignored. Attributes of the dialect that
//! voxbridge does not carry out yet are refused too, saying so, rather than silently dropped.

mod dial;
mod gather;
pub mod sid;
pub mod signature;
pub mod status;
mod tree;

use serde_json::{Value, json};

use crate::ncco::common::{HttpMethod, Webhook};
use crate::ncco::{Action, Ncco, Redirect, Reject};
use crate::problem::{InvalidParameter, Problems};
/// The `ApiVersion` of Twilio's requests.
pub const API_VERSION: &str = "2010-04-01";
pub use tree::Element;

/// Parses a TwiML/cXML document into the program the executor runs.
pub fn parse(xml: &str) -> Result<Ncco, Vec<InvalidParameter>> {
    let root = tree::read(xml).map_err(|reason| vec![InvalidParameter::new("", reason)])?;
    let mut p = Problems::new();
    if root.name != "Response" {
        p.push(&root.name, format!("the root element must be <Response>, not <{}>", root.name));
        return Err(p.into_vec());
    }
    Verb::new(&root, "Response".into(), &mut p).attributes(&[], &[]);
    let mut actions = Vec::new();
    for (i, e) in root.children.iter().enumerate() {
        let at = format!("Response/{}[{}]", e.name, i + 1);
        actions.extend(verb(e, at, &mut p));
    }
    p.finish(Ncco(actions))
}

/// One verb's actions (`<Gather>` and friends may become several).
fn verb(e: &Element, at: String, p: &mut Problems) -> Vec<Action> {
    let mut v = Verb::new(e, at, p);
    let action = match e.name.as_str() {
        "Say" => say(&mut v),
        "Play" => play(&mut v),
        "Pause" => pause(&mut v),
        "Dial" => dial::dial(&mut v),
        "Hangup" => v.bare().then_some(Action::Hangup),
        "Reject" => reject(&mut v),
        "Redirect" => redirect(&mut v),
        "Gather" => return gather::gather(&mut v),
        "Record" => record(&mut v),
        "Enqueue" | "Leave" | "Refer" | "Connect" | "Stream" | "Start" | "Stop" | "Pay" | "Prompt" | "Sms"
        | "Message" | "Echo" => {
            v.report(None, format!("<{}> is not supported by voxbridge yet", e.name));
            None
        }
        other => {
            v.report(None, format!("unknown verb <{other}>"));
            None
        }
    };
    action.into_iter().collect()
}

/// A verb or noun being read: its element, its path, and the document's problems.
pub(crate) struct Verb<'e, 'p> {
    pub e: &'e Element,
    pub at: String,
    pub p: &'p mut Problems,
}

impl<'e, 'p> Verb<'e, 'p> {
    fn new(e: &'e Element, at: String, p: &'p mut Problems) -> Self {
        Verb { e, at, p }
    }

    pub fn report(&mut self, attr: Option<&str>, reason: impl Into<String>) {
        let name = match attr {
            Some(a) => format!("{}@{a}", self.at),
            None => self.at.clone(),
        };
        self.p.push(name, reason);
    }

    /// Refuses attributes outside `known`, and those in `unbuilt` (part of the dialect, not
    /// carried out by voxbridge yet) unless they hold their default (`name=default`).
    pub fn attributes(&mut self, known: &[&str], unbuilt: &[(&str, &str)]) {
        let attrs = self.e.attrs.clone();
        for (name, value) in &attrs {
            if let Some((_, default)) = unbuilt.iter().find(|(n, _)| n == name) {
                if !default.split('|').any(|d| d.eq_ignore_ascii_case(value)) {
                    let reason = format!("{name}=\"{value}\" is not supported by voxbridge yet");
                    self.report(Some(name), reason);
                }
            } else if !known.contains(&name.as_str()) {
                self.report(Some(name), format!("unknown attribute of <{}>", self.e.name));
            }
        }
    }

    /// No attributes, no text, no children (`<Hangup/>`).
    fn bare(&mut self) -> bool {
        self.attributes(&[], &[]);
        self.no_children();
        if !self.e.text.trim().is_empty() {
            self.report(None, format!("<{}> takes no text", self.e.name));
        }
        true
    }

    pub fn no_children(&mut self) {
        if let Some(child) = self.e.children.first() {
            let reason = format!("<{}> cannot contain <{}>", self.e.name, child.name);
            self.report(None, reason);
        }
    }

    /// The element's text, trimmed; reported when empty.
    pub fn required_text(&mut self, what: &str) -> Option<String> {
        let text = self.e.text.trim();
        if text.is_empty() {
            self.report(None, format!("<{}> needs {what} as its text", self.e.name));
            return None;
        }
        Some(text.to_owned())
    }

    /// An unsigned integer attribute, if present and valid.
    pub fn uint(&mut self, name: &str) -> Option<u64> {
        let raw = self.e.attr(name)?.trim().to_owned();
        match raw.parse::<u64>() {
            Ok(n) => Some(n),
            Err(_) => {
                self.report(Some(name), format!("must be a whole number of seconds or times, found '{raw}'"));
                None
            }
        }
    }

    /// A callback URL attribute (`action`) with its method attribute, when given.
    pub fn webhook(&mut self, url: &str, method: &str) -> Option<Webhook> {
        let method = self.method(method);
        let raw = self.e.attr(url)?.to_owned();
        Some(Webhook { url: self.http_url(Some(url), &raw)?, method })
    }

    /// Where a verb's result goes: its `url` attribute (checked), else the document's own URL.
    pub fn callback(&mut self, url: &str, method: &str) -> Option<crate::ncco::common::Callback> {
        let method_of = self.method(method);
        let url = match self.e.attr(url).map(str::to_owned) {
            None => None,
            Some(raw) => Some(self.http_url(Some(url), &raw)?),
        };
        Some(crate::ncco::common::Callback { url, method: method_of })
    }

    /// `raw` as an http(s) URL; reported (at `attr`, or the element) when it is not one.
    pub fn http_url(&mut self, attr: Option<&str>, raw: &str) -> Option<url::Url> {
        match crate::ncco::fields::url(crate::ncco::fields::HTTP)(&json!(raw)) {
            Ok(url) => Some(url),
            Err(reason) => {
                self.report(attr, reason);
                None
            }
        }
    }

    /// `method` (GET or POST, case-insensitive), `POST` when absent.
    pub fn method(&mut self, name: &str) -> HttpMethod {
        match self.e.attr(name).map(str::to_ascii_uppercase).as_deref() {
            None | Some("POST") => HttpMethod::Post,
            Some("GET") => HttpMethod::Get,
            Some(other) => {
                self.report(Some(name), format!("must be GET or POST, found '{other}'"));
                HttpMethod::Post
            }
        }
    }

    /// Parses `ncco` (one NCCO action's JSON) as the NCCO parser would, its problems named
    /// under this element's path.
    pub fn action(&mut self, ncco: &Value) -> Option<Action> {
        Action::parse_in(ncco, self.at.clone(), self.p)
    }
}

/// Sets `key` of the JSON object `obj` (an action being built).
pub(crate) fn put(obj: &mut Value, key: &str, value: Value) {
    if let Some(map) = obj.as_object_mut() {
        map.insert(key.to_owned(), value);
    }
}

/// `<Say voice language loop>`.
pub(crate) fn say(v: &mut Verb) -> Option<Action> {
    v.attributes(&["voice", "language", "loop"], &[]);
    v.no_children();
    if let Some(voice) = v.e.attr("voice")
        && !(["man", "woman", "alice"].contains(&voice) || voice.starts_with("Polly.") || voice.starts_with("Google."))
    {
        // voxbridge speaks with the language's voice; the names are checked so a typo shows.
        v.report(Some("voice"), format!("unknown voice '{voice}' (man, woman, alice, Polly.*, Google.*)"));
    }
    let mut talk = json!({"action": "talk", "text": v.required_text("the words to say")?});
    if let Some(language) = v.e.attr("language") {
        put(&mut talk, "language", json!(language));
    }
    if let Some(n) = v.uint("loop") {
        put(&mut talk, "loop", json!(n));
    }
    v.action(&talk)
}

/// `<Play loop>URL</Play>`, or `<Play digits>` (DTMF: `w` waits half a second, `W` one).
pub(crate) fn play(v: &mut Verb) -> Option<Action> {
    v.attributes(&["loop", "digits"], &[]);
    v.no_children();
    if let Some(digits) = v.e.attr("digits") {
        if !v.e.text.trim().is_empty() {
            v.report(Some("digits"), "give either digits or a URL to play, not both");
            return None;
        }
        let dtmf = digits.replace('w', "p").replace('W', "pp");
        if dtmf.is_empty() || !crate::dtmf::valid_digits(&dtmf) {
            v.report(Some("digits"), format!("'{digits}': only 0-9, *, #, A-D, w and W"));
            return None;
        }
        return Some(Action::SendDigits(dtmf));
    }
    let mut stream = json!({"action": "stream", "streamUrl": [v.required_text("the audio URL")?]});
    if let Some(n) = v.uint("loop") {
        put(&mut stream, "loop", json!(n));
    }
    v.action(&stream)
}

/// `<Pause length>`: silence, 1 s by default.
pub(crate) fn pause(v: &mut Verb) -> Option<Action> {
    v.attributes(&["length"], &[]);
    v.no_children();
    let length = v.uint("length").unwrap_or(1);
    v.action(&json!({"action": "wait", "timeout": length}))
}

/// `<Record action method maxLength finishOnKey timeout playBeep>`: records the caller until
/// the key, the silence or the length, then `action` (else the document's own URL) gets the
/// recording (a WAV downloadable with the application's JWT) and its document replaces the
/// rest.
fn record(v: &mut Verb) -> Option<Action> {
    v.attributes(
        &[
            "action",
            "method",
            "maxLength",
            "finishOnKey",
            "timeout",
            "playBeep",
            "recordingStatusCallback",
            "recordingStatusCallbackMethod",
        ],
        &[
            ("recordingStatusCallbackEvent", "completed"),
            ("transcribe", "false"),
            ("transcribeCallback", ""),
            ("trim", "do-not-trim"),
            ("storageUrl", ""),
        ],
    );
    v.no_children();
    let mut record = json!({"action": "record", "format": "wav",
                            "timeOut": v.uint("maxLength").unwrap_or(MAX_RECORD_SECS).clamp(3, MAX_RECORD_SECS)});
    match v.e.attr("finishOnKey") {
        // Twilio's default is any key; NCCO's recorder stops on one: `#`.
        None => put(&mut record, "endOnKey", json!("#")),
        Some("") => {}
        Some(key) => put(&mut record, "endOnKey", json!(key)),
    }
    match v.uint("timeout") {
        Some(0) => {}
        // NCCO's silence detection takes 3 to 10 seconds.
        Some(secs) => put(&mut record, "endOnSilence", json!(secs.clamp(3, 10))),
        None => put(&mut record, "endOnSilence", json!(5)),
    }
    match v.e.attr("playBeep") {
        None | Some("true") => put(&mut record, "beepStart", json!(true)),
        Some("false") => {}
        Some(other) => v.report(Some("playBeep"), format!("must be true or false, found '{other}'")),
    }
    let action = v.callback("action", "method")?;
    let status = v.webhook("recordingStatusCallback", "recordingStatusCallbackMethod");
    match v.action(&record)? {
        Action::Record(mut r) => {
            r.twiml_action = Some(action);
            r.twiml_status = status;
            Some(Action::Record(r))
        }
        other => Some(other),
    }
}

/// The longest `<Record>` (the NCCO recorder's `timeOut` ceiling).
const MAX_RECORD_SECS: u64 = 7200;

/// `<Reject reason="busy|rejected">`.
fn reject(v: &mut Verb) -> Option<Action> {
    v.attributes(&["reason"], &[]);
    v.no_children();
    match v.e.attr("reason") {
        None | Some("rejected") => Some(Action::Reject(Reject::REJECTED)),
        Some("busy") => Some(Action::Reject(Reject::BUSY)),
        Some(other) => {
            v.report(Some("reason"), format!("must be busy or rejected, found '{other}'"));
            None
        }
    }
}

/// `<Redirect method>URL</Redirect>`.
fn redirect(v: &mut Verb) -> Option<Action> {
    v.attributes(&["method"], &[]);
    v.no_children();
    let method = v.method("method");
    let raw = v.required_text("the URL of the next document")?;
    let url = v.http_url(None, &raw)?;
    Some(Action::Redirect(Redirect { webhook: Webhook { url, method } }))
}

#[cfg(test)]
mod tests;
