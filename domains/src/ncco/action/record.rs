//! `record`: record the call alongside the following actions (it does not block), until
//! silence, a key, a time limit or the end of the call; optionally transcribed.

use crate::ncco::common::{Transcription, Webhook};
use crate::ncco::fields::{self, Fields};

#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub format: RecordFormat,
    /// `split: "conversation"`: each party on its own channel.
    pub split: bool,
    /// 1–32, only with `split`; parties beyond the last channel share it.
    pub channels: Option<u32>,
    /// Seconds of silence that stop the recording, 3–10.
    pub end_on_silence: Option<u32>,
    /// A key (`0-9*#`) that stops the recording.
    pub end_on_key: Option<char>,
    /// Longest recording in seconds, 3–7200. `None` with no other stop condition = until hangup.
    pub time_out: Option<u32>,
    pub beep_start: bool,
    pub event: Option<Webhook>,
    pub transcription: Option<Transcription>,
    /// `<Record action>` (TwiML only): the document waits for the recording, whose
    /// `RecordingUrl`, `RecordingSid` and `RecordingDuration` go there Twilio's way; the
    /// document answered replaces the rest.
    pub twiml_action: Option<crate::ncco::common::Callback>,
    /// `recordingStatusCallback` (TwiML only): where the written recording's status goes,
    /// Twilio's way.
    pub twiml_status: Option<Webhook>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordFormat {
    Mp3,
    Wav,
    Ogg,
}

impl RecordFormat {
    pub const CHOICES: [(&'static str, RecordFormat); 3] =
        [("mp3", RecordFormat::Mp3), ("wav", RecordFormat::Wav), ("ogg", RecordFormat::Ogg)];
}

/// mp3 holds at most this many channels; more default to wav.
const MP3_MAX_CHANNELS: u32 = 2;

impl Record {
    /// A mono recording in `format` that runs until it is stopped (no silence, key or length
    /// ends it, no beep, no callbacks): the base of the recordings a program does not spell
    /// out (a recorded `<Dial>`, a recorded conversation).
    pub fn until_stopped(format: RecordFormat) -> Record {
        Record {
            format,
            split: false,
            channels: None,
            end_on_silence: None,
            end_on_key: None,
            time_out: None,
            beep_start: false,
            event: None,
            transcription: None,
            twiml_action: None,
            twiml_status: None,
        }
    }

    /// Channels of the file: one unless split, then `channels` (two by default).
    pub fn channel_count(&self) -> u32 {
        if self.split { self.channels.unwrap_or(2) } else { 1 }
    }

    pub(crate) fn parse(f: &mut Fields) -> Option<Record> {
        let format = f.opt("format", fields::one_of(&RecordFormat::CHOICES));
        let split = f.opt("split", fields::one_of(&[("conversation", true)])).unwrap_or(false);
        let channels = f.opt("channels", fields::uint(1..=32));
        if channels.is_some() && !split {
            f.report("channels", "requires split: conversation");
        }
        let many_channels = channels.is_some_and(|c| c > MP3_MAX_CHANNELS);
        if many_channels && format == Some(RecordFormat::Mp3) {
            f.report("format", format!("mp3 holds at most {MP3_MAX_CHANNELS} channels; use wav"));
        }
        if format == Some(RecordFormat::Ogg) {
            f.report("format", "ogg is not recorded by this server; use mp3 or wav");
        }
        let default_format = if many_channels { RecordFormat::Wav } else { RecordFormat::Mp3 };
        Some(Record {
            format: format.unwrap_or(default_format),
            split,
            channels,
            end_on_silence: f.opt("endOnSilence", fields::uint(3..=10)),
            end_on_key: f.opt("endOnKey", end_key),
            time_out: f.opt("timeOut", fields::uint(3..=7200)),
            beep_start: f.bool_or("beepStart", false),
            event: Webhook::optional(f),
            transcription: Transcription::optional(f),
            twiml_action: None,
            twiml_status: None,
        })
    }
}

fn end_key(v: &serde_json::Value) -> Result<char, String> {
    let mut chars = fields::string(v)?.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) if c.is_ascii_digit() || c == '*' || c == '#' => Ok(c),
        _ => Err("must be one key: 0-9, * or #".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ncco::Action;
    use crate::ncco::test_support::{only_action, problem_names};

    fn record(json: &str) -> Record {
        match only_action(json) {
            Action::Record(r) => r,
            other => panic!("expected record, got {other:?}"),
        }
    }

    #[test]
    fn minimal() {
        let r = record(r#"[{"action":"record"}]"#);
        assert_eq!(r, Record::until_stopped(RecordFormat::Mp3), "MP3, mono, until the call ends");
        assert_eq!((r.format, r.split, r.channels, r.beep_start), (RecordFormat::Mp3, false, None, false));
        assert_eq!((r.end_on_silence, r.end_on_key, r.time_out), (None, None, None));
        assert!(r.event.is_none() && r.transcription.is_none());
        assert!(r.twiml_action.is_none() && r.twiml_status.is_none());
    }

    #[test]
    fn full() {
        let r = record(
            r##"[{"action":"record","format":"wav","split":"conversation","channels":2,"endOnSilence":3,"endOnKey":"#",
                "timeOut":60,"beepStart":true,"eventUrl":["https://example.com/recordings"],"eventMethod":"POST",
                "transcription":{"language":"en-GB","eventUrl":["https://example.com/t"],"sentimentAnalysis":true}}]"##,
        );
        assert_eq!((r.format, r.split, r.channels), (RecordFormat::Wav, true, Some(2)));
        assert_eq!((r.end_on_silence, r.end_on_key, r.time_out, r.beep_start), (Some(3), Some('#'), Some(60), true));
        assert!(r.event.is_some());
        assert_eq!(r.transcription.map(|t| (t.language, t.sentiment_analysis)), Some(("en-GB".into(), true)));
    }

    #[test]
    fn many_channels_default_to_wav() {
        let r = record(r#"[{"action":"record","split":"conversation","channels":4}]"#);
        assert_eq!(r.format, RecordFormat::Wav);
        assert_eq!(
            problem_names(r#"[{"action":"record","split":"conversation","channels":4,"format":"mp3"}]"#),
            ["/0/format"]
        );
    }

    #[test]
    fn invalid() {
        assert_eq!(
            problem_names(
                r#"[{"action":"record","format":"flac","split":"yes","channels":33,"endOnSilence":2,"endOnKey":"12",
                    "timeOut":7201,"beepStart":"no","eventUrl":"https://x.example","transcription":{"language":1}}]"#
            ),
            [
                "/0/format",
                "/0/split",
                "/0/channels",
                "/0/endOnSilence",
                "/0/endOnKey",
                "/0/timeOut",
                "/0/beepStart",
                "/0/eventUrl",
                "/0/transcription/language",
            ]
        );
        assert_eq!(problem_names(r#"[{"action":"record","channels":2}]"#), ["/0/channels"]);
        assert_eq!(problem_names(r#"[{"action":"record","endOnKey":"a"}]"#), ["/0/endOnKey"]);
    }
}
