//! `<Gather>`: its nested `<Say>`, `<Play>` and `<Pause>` prompt the caller (the last one
//! stops at the first digit: NCCO's `bargeIn`, which lets the collection start under it),
//! then DTMF and/or speech (`input`) are collected as NCCO's `input` does (speech: `timeout`
//! to start, `speechTimeout` of silence to end, `auto` being 1.5 s, `language`, `hints`). The
//! result goes to `action` (else to the document's own URL) the way Twilio sends it
//! (`Digits`, `FinishedOnKey`; `SpeechResult`, `Confidence`), and its document replaces the
//! rest; when nothing came, the document goes on with the next verb, as in Twilio.

use serde_json::json;

use super::{Verb, pause, play, say};
use crate::ncco::Action;

/// Digits collected when `numDigits` is absent (NCCO's most).
const MAX_DIGITS: u64 = 20;
/// Twilio's default seconds to wait for a digit.
const DEFAULT_TIMEOUT: u64 = 5;
/// Seconds of silence that end speech for `speechTimeout="auto"`.
const AUTO_SPEECH_TIMEOUT: f64 = 1.5;

pub(super) fn gather(v: &mut Verb) -> Vec<Action> {
    v.attributes(
        &["input", "numDigits", "finishOnKey", "timeout", "action", "method", "speechTimeout", "hints", "language"],
        &[
            ("actionOnEmptyResult", "false"),
            ("speechModel", ""),
            ("partialResultCallback", ""),
            ("partialResultCallbackMethod", "POST"),
            ("profanityFilter", "true"),
            ("enhanced", "false"),
            ("bargeIn", "true"),
        ],
    );
    let kinds: Vec<&str> = v.e.attr("input").unwrap_or("dtmf").split_whitespace().collect();
    if kinds.is_empty() || kinds.iter().any(|k| !["dtmf", "speech"].contains(k)) {
        v.report(Some("input"), format!("must be dtmf, speech or both, found '{}'", kinds.join(" ")));
    }
    let speech_timeout = match v.e.attr("speechTimeout") {
        None | Some("auto") => AUTO_SPEECH_TIMEOUT,
        Some(s) => match s.parse::<u32>() {
            Ok(secs) if secs > 0 => f64::from(secs.min(10)),
            _ => {
                v.report(Some("speechTimeout"), format!("must be a whole number of seconds or auto, found '{s}'"));
                AUTO_SPEECH_TIMEOUT
            }
        },
    };
    let submit_on_hash = match v.e.attr("finishOnKey") {
        None | Some("#") => true,
        Some("") => false,
        Some(other) => {
            v.report(Some("finishOnKey"), format!("only '#' or '' are supported by voxbridge yet, found '{other}'"));
            false
        }
    };
    if !v.e.text.trim().is_empty() {
        v.report(None, "<Gather> takes nested verbs, not text");
    }
    let mut actions = Vec::new();
    let prompts = v.e.children.len();
    for (i, e) in v.e.children.iter().enumerate() {
        let mut n = Verb { e, at: format!("{}/{}[{}]", v.at, e.name, i + 1), p: &mut *v.p };
        let prompt = match e.name.as_str() {
            "Say" => say(&mut n),
            "Play" => play(&mut n),
            "Pause" => pause(&mut n),
            other => {
                n.report(None, format!("<Gather> can contain <Say>, <Play> and <Pause>, not <{other}>"));
                None
            }
        };
        actions.extend(prompt.map(|a| if i + 1 == prompts { barge_in(a) } else { a }));
    }
    let Some(action) = v.callback("action", "method") else { return actions };
    let timeout = v.uint("timeout").unwrap_or(DEFAULT_TIMEOUT);
    let mut input = serde_json::Map::new();
    input.insert("action".into(), json!("input"));
    input.insert("type".into(), json!(kinds));
    if kinds.contains(&"dtmf") {
        let dtmf = json!({"maxDigits": v.uint("numDigits").unwrap_or(MAX_DIGITS), "submitOnHash": submit_on_hash,
                          "timeOut": timeout});
        input.insert("dtmf".into(), dtmf);
    }
    if kinds.contains(&"speech") {
        let hints: Vec<&str> =
            v.e.attr("hints").unwrap_or_default().split(',').map(str::trim).filter(|h| !h.is_empty()).collect();
        let speech = json!({"startTimeout": timeout.clamp(1, 60), "endOnSilence": speech_timeout,
                            "language": v.e.attr("language").unwrap_or("en-US"), "context": hints});
        input.insert("speech".into(), speech);
    }
    let input = serde_json::Value::Object(input);
    if let Some(Action::Input(mut input)) = v.action(&input) {
        input.twiml_action = Some(action);
        actions.push(Action::Input(input));
    }
    actions
}

fn barge_in(action: Action) -> Action {
    match action {
        Action::Talk(mut t) => {
            t.barge_in = true;
            Action::Talk(t)
        }
        Action::Stream(mut s) => {
            s.barge_in = true;
            Action::Stream(s)
        }
        other => other,
    }
}
