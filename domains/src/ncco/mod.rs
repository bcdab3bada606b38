//! NCCO (Nexmo Call Control Object) parsing: turns the JSON array an application returns
//! from its answer URL (or sends in `POST /v1/calls` / a transfer) into a typed [`Ncco`],
//! or into every invalid parameter it contains, each named by its JSON pointer
//! (`/1/endpoint/0/uri`), ready for a problem body's `invalid_parameters`.
//!
//! This module owns the document level (array, `action` discriminator, blocking rules);
//! each action lives in [`action`], each connect endpoint in [`endpoint`], the types shared
//! by several actions (webhooks, machine detection, transcription) in [`common`], and the
//! field readers every parser uses in [`fields`]. Unknown fields are ignored, as Vonage
//! ignores them; JSON `null` counts as absent.

pub mod action;
pub mod common;
pub mod endpoint;
pub mod fields;

use serde_json::Value;

use crate::problem::{InvalidParameter, Problems};

pub use action::{
    Connect, Conversation, DialRecord, DtmfSettings, Input, InputMode, Notify, Record, RecordFormat, Redirect, Reject,
    SpeechSettings, Stream, Talk, Transfer, Wait,
};
pub use common::{
    AdvancedMachineDetection, AmdMode, AudioControls, HttpMethod, MachineDetection, Provider, Transcription, Webhook,
};
pub use endpoint::{
    App, Endpoint, OnAnswer, Phone, Sip, SipTarget, SipTransport, SipUriTarget, Vbc, Websocket, WebsocketAuthorization,
};
use fields::Fields;

/// A parsed NCCO: the actions in the order they run.
#[derive(Debug, Clone, PartialEq)]
pub struct Ncco(pub Vec<Action>);

/// One NCCO action, discriminated by its `action` field.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Talk(Talk),
    Stream(Stream),
    Input(Input),
    Record(Record),
    Connect(Connect),
    Conversation(Conversation),
    Notify(Notify),
    Wait(Wait),
    Transfer(Transfer),
    /// From TwiML/cXML documents only (`crate::twiml`).
    Hangup,
    /// `<Play digits>`: DTMF sent to the caller (`p`: a 500 ms pause).
    SendDigits(String),
    Reject(Reject),
    Redirect(Redirect),
}

/// The values of `action`, in the order they are listed in refusals.
pub const ACTION_NAMES: [&str; 9] =
    ["talk", "stream", "input", "record", "connect", "conversation", "notify", "wait", "transfer"];

impl Action {
    /// The `action` value this action was parsed from.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Talk(_) => "talk",
            Action::Stream(_) => "stream",
            Action::Input(_) => "input",
            Action::Record(_) => "record",
            Action::Connect(_) => "connect",
            Action::Conversation(_) => "conversation",
            Action::Notify(_) => "notify",
            Action::Wait(_) => "wait",
            Action::Transfer(_) => "transfer",
            Action::Hangup => "hangup",
            Action::SendDigits(_) => "send_digits",
            Action::Reject(_) => "reject",
            Action::Redirect(_) => "redirect",
        }
    }

    /// Whether the executor waits for this action to finish before starting the next one:
    /// `record` runs alongside later actions; `talk` and `stream` do when `bargeIn` is true.
    pub fn is_blocking(&self) -> bool {
        match self {
            Action::Record(_) => false,
            Action::Talk(t) => !t.barge_in,
            Action::Stream(s) => !s.barge_in,
            _ => true,
        }
    }

    /// Parses one action object found at JSON pointer `at`, recording its problems.
    pub(crate) fn parse_in(value: &Value, at: String, problems: &mut Problems) -> Option<Action> {
        let mut f = Fields::of(value, at, problems)?;
        let name = f.req("action", fields::one_of(&ACTION_NAMES.map(|n| (n, n))))?;
        match name {
            "talk" => Talk::parse(&mut f).map(Action::Talk),
            "stream" => Stream::parse(&mut f).map(Action::Stream),
            "input" => Input::parse(&mut f).map(Action::Input),
            "record" => Record::parse(&mut f).map(Action::Record),
            "connect" => Connect::parse(&mut f).map(Action::Connect),
            "conversation" => Conversation::parse(&mut f).map(Action::Conversation),
            "notify" => Notify::parse(&mut f).map(Action::Notify),
            "wait" => Wait::parse(&mut f).map(Action::Wait),
            _ => Transfer::parse(&mut f).map(Action::Transfer),
        }
    }
}

impl Ncco {
    /// Parses an NCCO document, returning every invalid parameter (not only the first).
    pub fn parse(value: &Value) -> Result<Ncco, Vec<InvalidParameter>> {
        let mut problems = Problems::new();
        let Some(items) = value.as_array() else {
            problems.push("", "must be a JSON array of actions");
            return Err(problems.into_vec());
        };
        if items.is_empty() {
            problems.push("", "must contain at least one action");
        }
        let actions: Vec<Action> = items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| Action::parse_in(item, format!("/{i}"), &mut problems))
            .collect();
        problems.finish(Ncco(actions))
    }

    /// Parses NCCO JSON text; text that is not JSON is one problem named `""`.
    pub fn parse_str(text: &str) -> Result<Ncco, Vec<InvalidParameter>> {
        match serde_json::from_str::<Value>(text) {
            Ok(value) => Ncco::parse(&value),
            Err(e) => Err(vec![InvalidParameter::new("", format!("is not valid JSON: {e}"))]),
        }
    }

    pub fn actions(&self) -> &[Action] {
        &self.0
    }
}

/// Shared by the unit tests of every action and endpoint file.
#[cfg(test)]
pub(crate) mod test_support {
    use super::*;

    /// The JSON pointers of every problem of `json` (empty when it parses).
    pub fn problem_names(json: &str) -> Vec<String> {
        match Ncco::parse_str(json) {
            Ok(_) => Vec::new(),
            Err(problems) => problems.into_iter().map(|p| p.name).collect(),
        }
    }

    /// Parses an NCCO expected to be valid and returns its only action.
    pub fn only_action(json: &str) -> Action {
        match Ncco::parse_str(json) {
            Ok(Ncco(mut actions)) if actions.len() == 1 => actions.remove(0),
            other => panic!("expected exactly one valid action, got {other:?}"),
        }
    }

    /// Parses an endpoint object expected to be valid.
    pub fn endpoint(json: &str) -> Endpoint {
        let value: Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("bad test JSON: {e}"));
        Endpoint::parse(&value, "").unwrap_or_else(|p| panic!("expected a valid endpoint, got {p:?}"))
    }

    /// The pointers of every problem of an endpoint object expected to be invalid.
    pub fn endpoint_problems(json: &str) -> Vec<String> {
        let value: Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("bad test JSON: {e}"));
        match Endpoint::parse(&value, "") {
            Ok(e) => panic!("expected problems, got {e:?}"),
            Err(problems) => problems.into_iter().map(|p| p.name).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::problem_names;
    use super::*;

    #[test]
    fn refuses_non_arrays_and_empty_arrays() {
        assert_eq!(problem_names(r#"{"action":"talk","text":"hi"}"#), [""]);
        assert_eq!(problem_names("[]"), [""]);
        let bad = Ncco::parse_str("[{").unwrap_err();
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].name, "");
        assert!(bad[0].reason.starts_with("is not valid JSON"), "{}", bad[0].reason);
    }

    #[test]
    fn refuses_unknown_and_missing_actions() {
        assert_eq!(problem_names(r#"[{"action":"dance"},{"text":"x"},42]"#), ["/0/action", "/1/action", "/2"]);
    }

    #[test]
    fn reports_every_problem_with_its_pointer() {
        let json = r#"[
            {"action":"talk","loop":-1,"level":2},
            {"action":"connect","timeout":1,"endpoint":[{"type":"websocket","uri":"http://x","content-type":"audio/l16;rate=44100"}]},
            {"action":"input","type":["dtmf","smell"],"dtmf":{"maxDigits":50},"eventUrl":"https://x/e"},
            {"action":"connect","from":"12","randomFromNumber":true,"endpoint":[{"type":"sip","uri":"sip:a@b;transport=sctp","headers":{"bad name":"v"}}]},
            {"action":"record","channels":4,"endOnKey":"ab"},
            {"action":"notify","payload":[]}
        ]"#;
        assert_eq!(
            problem_names(json),
            [
                "/0/text",
                "/0/loop",
                "/0/level",
                "/1/endpoint/0/uri",
                "/1/endpoint/0/content-type",
                "/1/timeout",
                "/2/type/1",
                "/2/dtmf/maxDigits",
                "/2/eventUrl",
                "/3/endpoint/0/uri",
                "/3/endpoint/0/headers/bad name",
                "/3/from",
                "/3/randomFromNumber",
                "/4/channels",
                "/4/endOnKey",
                "/5/payload",
                "/5/eventUrl",
            ]
        );
    }

    #[test]
    fn problems_carry_reasons() {
        let problems = Ncco::parse_str(r#"[{"action":"wait","timeout":"soon"}]"#).unwrap_err();
        assert_eq!(problems, [InvalidParameter::new("/0/timeout", "must be a number")]);
    }

    #[test]
    fn names_and_blocking() {
        let ncco = Ncco::parse_str(
            r#"[{"action":"record"},{"action":"talk","text":"hi","bargeIn":true},{"action":"talk","text":"hi"},
                {"action":"stream","streamUrl":["https://x/a.mp3"],"bargeIn":true},{"action":"input","type":["dtmf"]},
                {"action":"wait"}]"#,
        )
        .unwrap();
        let summary: Vec<_> = ncco.actions().iter().map(|a| (a.name(), a.is_blocking())).collect();
        assert_eq!(
            summary,
            [("record", false), ("talk", false), ("talk", true), ("stream", false), ("input", true), ("wait", true)]
        );
    }

    #[test]
    fn ignores_unknown_fields_and_nulls() {
        let ncco = Ncco::parse_str(r#"[{"action":"talk","text":"hi","colour":"blue","loop":null}]"#).unwrap();
        assert_eq!(ncco.0.len(), 1);
    }
}
