//! `input`: collect DTMF digits and/or speech from the caller and send the result to
//! `eventUrl`, whose answer may replace the running NCCO.

use serde_json::Value;

use crate::ncco::common::{Provider, Webhook};
use crate::ncco::fields::{self, Fields};

#[derive(Debug, Clone, PartialEq)]
pub struct Input {
    /// Present when `type` includes `dtmf` (defaults applied when `dtmf` is omitted).
    pub dtmf: Option<DtmfSettings>,
    /// Present when `type` includes `speech` (defaults applied when `speech` is omitted).
    pub speech: Option<SpeechSettings>,
    pub mode: InputMode,
    pub event: Option<Webhook>,
    /// `<Gather action>` (TwiML only): the digits go there form-encoded as Twilio's `Digits`
    /// and its document replaces the rest; with no digits nothing is sent and the document
    /// goes on.
    pub twiml_action: Option<crate::ncco::common::Callback>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InputMode {
    /// Collect, then send one result.
    #[default]
    Synchronous,
    /// DTMF only: each digit is sent as it is pressed and the NCCO moves on.
    Asynchronous,
}

impl InputMode {
    pub const CHOICES: [(&'static str, InputMode); 2] =
        [("synchronous", InputMode::Synchronous), ("asynchronous", InputMode::Asynchronous)];
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtmfSettings {
    /// Seconds of silence after the last digit before the result is sent, 0–10, default 3.
    pub time_out: u32,
    /// 1–20, default 4.
    pub max_digits: u32,
    pub submit_on_hash: bool,
}

impl Default for DtmfSettings {
    fn default() -> Self {
        Self { time_out: 3, max_digits: 4, submit_on_hash: false }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SpeechSettings {
    /// The leg to listen to; `None` = the first leg of the call.
    pub uuid: Option<String>,
    /// Seconds of silence that end an utterance, 0.4–10, default 2.
    pub end_on_silence: f64,
    pub language: String,
    /// Hints for the recogniser.
    pub context: Vec<String>,
    /// Seconds to wait for speech to start, 1–60, default 10.
    pub start_timeout: u32,
    /// Longest utterance in seconds, 1–60, default 60.
    pub max_duration: u32,
    pub save_audio: bool,
    /// 10–100, default 90.
    pub sensitivity: u32,
    pub provider: Option<Provider>,
}

impl Default for SpeechSettings {
    fn default() -> Self {
        Self {
            uuid: None,
            end_on_silence: 2.0,
            language: fields::DEFAULT_LANGUAGE.to_owned(),
            context: Vec::new(),
            start_timeout: 10,
            max_duration: 60,
            save_audio: false,
            sensitivity: 90,
            provider: None,
        }
    }
}

const DTMF: &str = "dtmf";
const SPEECH: &str = "speech";
const KINDS: [(&str, &str); 2] = [(DTMF, DTMF), (SPEECH, SPEECH)];

impl Input {
    pub(crate) fn parse(f: &mut Fields) -> Option<Input> {
        let kinds = if f.require("type") { f.list("type", fields::one_of(&KINDS)) } else { None };
        if kinds.as_ref().is_some_and(Vec::is_empty) {
            f.report("type", "must contain dtmf, speech or both");
        }
        let dtmf = DtmfSettings::read(f.child(DTMF));
        let speech = SpeechSettings::read(f.child(SPEECH));
        let mode = f.one_of_or("mode", &InputMode::CHOICES, InputMode::Synchronous);
        let event = Webhook::optional(f);
        let kinds = kinds?;
        for kind in [DTMF, SPEECH] {
            if f.has(kind) && !kinds.contains(&kind) {
                f.report(kind, format!("is given but type does not include {kind}"));
            }
        }
        if mode == InputMode::Asynchronous {
            if kinds.contains(&SPEECH) {
                f.report("mode", "asynchronous input takes dtmf only");
            }
            if f.get(DTMF).and_then(Value::as_object).is_some_and(|m| !m.is_empty()) {
                f.report(DTMF, "must be empty when mode is asynchronous");
            }
        }
        Some(Input {
            dtmf: kinds.contains(&DTMF).then_some(dtmf),
            speech: kinds.contains(&SPEECH).then_some(speech),
            mode,
            event,
            twiml_action: None,
        })
    }
}

impl DtmfSettings {
    fn read(c: Option<Fields>) -> DtmfSettings {
        let Some(mut c) = c else {
            return DtmfSettings::default();
        };
        DtmfSettings {
            time_out: c.uint_or("timeOut", 0..=10, 3),
            max_digits: c.uint_or("maxDigits", 1..=20, 4),
            submit_on_hash: c.bool_or("submitOnHash", false),
        }
    }
}

impl SpeechSettings {
    fn read(c: Option<Fields>) -> SpeechSettings {
        let Some(mut c) = c else {
            return SpeechSettings::default();
        };
        let d = SpeechSettings::default();
        SpeechSettings {
            uuid: c.opt("uuid", |v| fields::exactly_one(v).and_then(fields::non_empty).map(str::to_owned)),
            end_on_silence: c.number_or("endOnSilence", 0.4..=10.0, d.end_on_silence),
            language: c.opt("language", fields::language).unwrap_or(d.language),
            context: c.strings("context").unwrap_or_default(),
            start_timeout: c.uint_or("startTimeout", 1..=60, d.start_timeout),
            max_duration: c.uint_or("maxDuration", 1..=60, d.max_duration),
            save_audio: c.bool_or("saveAudio", d.save_audio),
            sensitivity: c.uint_or("sensitivity", 10..=100, d.sensitivity),
            provider: Provider::optional(&mut c, &[]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ncco::Action;
    use crate::ncco::common::HttpMethod;
    use crate::ncco::test_support::{only_action, problem_names};

    fn input(json: &str) -> Input {
        match only_action(json) {
            Action::Input(i) => i,
            other => panic!("expected input, got {other:?}"),
        }
    }

    #[test]
    fn minimal_dtmf_gets_defaults() {
        let i = input(r#"[{"action":"input","type":["dtmf"]}]"#);
        assert_eq!(
            i,
            Input {
                dtmf: Some(DtmfSettings::default()),
                speech: None,
                mode: InputMode::Synchronous,
                event: None,
                twiml_action: None
            }
        );
        assert_eq!((DtmfSettings::default().time_out, DtmfSettings::default().max_digits), (3, 4));
    }

    #[test]
    fn full() {
        let i = input(
            r#"[{"action":"input","type":["dtmf","speech"],
                "dtmf":{"timeOut":5,"maxDigits":10,"submitOnHash":true},
                "speech":{"uuid":["aaaaaaaa-bbbb-cccc-dddd-0123456789ab"],"endOnSilence":1.5,"language":"en-GB",
                          "context":["sales","support"],"startTimeout":5,"maxDuration":30,"saveAudio":true,"sensitivity":50},
                "eventUrl":["https://example.com/ivr"],"eventMethod":"GET"}]"#,
        );
        assert_eq!(i.dtmf, Some(DtmfSettings { time_out: 5, max_digits: 10, submit_on_hash: true }));
        let speech = i.speech.unwrap_or_default();
        assert_eq!(speech.uuid.as_deref(), Some("aaaaaaaa-bbbb-cccc-dddd-0123456789ab"));
        assert_eq!((speech.end_on_silence, speech.start_timeout, speech.max_duration), (1.5, 5, 30));
        assert_eq!(
            (speech.language.as_str(), speech.context.len(), speech.save_audio, speech.sensitivity),
            ("en-GB", 2, true, 50)
        );
        assert_eq!(
            i.event.map(|e| (e.url.to_string(), e.method)),
            Some(("https://example.com/ivr".into(), HttpMethod::Get))
        );
    }

    #[test]
    fn asynchronous_dtmf() {
        let i = input(r#"[{"action":"input","type":["dtmf"],"mode":"asynchronous","dtmf":{}}]"#);
        assert_eq!(i.mode, InputMode::Asynchronous);
        assert_eq!(
            problem_names(r#"[{"action":"input","type":["speech"],"mode":"asynchronous","dtmf":{"maxDigits":2}}]"#),
            ["/0/dtmf", "/0/mode", "/0/dtmf"]
        );
    }

    #[test]
    fn invalid() {
        assert_eq!(problem_names(r#"[{"action":"input"}]"#), ["/0/type"]);
        assert_eq!(problem_names(r#"[{"action":"input","type":[]}]"#), ["/0/type"]);
        assert_eq!(problem_names(r#"[{"action":"input","type":"dtmf"}]"#), ["/0/type"]);
        assert_eq!(
            problem_names(
                r#"[{"action":"input","type":["dtmf","speech"],"dtmf":{"timeOut":11,"maxDigits":0,"submitOnHash":"y"},
                    "speech":{"uuid":"abc","endOnSilence":0.1,"language":"?","context":[1],"startTimeout":0,
                              "maxDuration":61,"saveAudio":"n","sensitivity":5},
                    "mode":"later","eventUrl":["ws://x"]}]"#
            ),
            [
                "/0/dtmf/timeOut",
                "/0/dtmf/maxDigits",
                "/0/dtmf/submitOnHash",
                "/0/speech/uuid",
                "/0/speech/endOnSilence",
                "/0/speech/language",
                "/0/speech/context/0",
                "/0/speech/startTimeout",
                "/0/speech/maxDuration",
                "/0/speech/saveAudio",
                "/0/speech/sensitivity",
                "/0/mode",
                "/0/eventUrl",
            ]
        );
    }
}
