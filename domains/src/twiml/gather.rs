//! `<Gather>`: its nested `<Say>`, `<Play>` and `<Pause>` prompt the caller (the last one
//! stops at the first digit: NCCO's `bargeIn`, which lets the collection start under it),
//! then DTMF is collected as NCCO's `input` does. The digits go to `action` (else to the
//! document's own URL) the way Twilio sends them (`Digits`, `FinishedOnKey`), and its
//! document replaces the rest; when no digit came, the document goes on with the next verb,
//! as in Twilio.

use serde_json::json;

use super::{Verb, pause, play, say};
use crate::ncco::Action;

/// Digits collected when `numDigits` is absent (NCCO's most).
const MAX_DIGITS: u64 = 20;
/// Twilio's default seconds to wait for a digit.
const DEFAULT_TIMEOUT: u64 = 5;

pub(super) fn gather(v: &mut Verb) -> Vec<Action> {
    v.attributes(
        &["input", "numDigits", "finishOnKey", "timeout", "action", "method"],
        &[
            ("actionOnEmptyResult", "false"),
            ("speechTimeout", ""),
            ("speechModel", ""),
            ("hints", ""),
            ("language", ""),
            ("partialResultCallback", ""),
            ("partialResultCallbackMethod", "POST"),
            ("profanityFilter", "true"),
            ("enhanced", "false"),
            ("bargeIn", "true"),
        ],
    );
    match v.e.attr("input") {
        None | Some("dtmf") => {}
        Some(other) if other.split_whitespace().any(|k| k == "speech") => {
            v.report(Some("input"), "speech is not gathered by voxbridge's TwiML yet (an NCCO input with speech is)");
        }
        Some(other) => v.report(Some("input"), format!("must be dtmf, found '{other}'")),
    }
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
    let input = json!({"action": "input", "type": ["dtmf"], "dtmf": {
        "maxDigits": v.uint("numDigits").unwrap_or(MAX_DIGITS),
        "submitOnHash": submit_on_hash,
        "timeOut": v.uint("timeout").unwrap_or(DEFAULT_TIMEOUT),
    }});
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
