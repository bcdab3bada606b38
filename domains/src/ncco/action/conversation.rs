//! `conversation`: join the call to a named conference (same name within an application =
//! same conference), with moderation, hold music, recording and who-hears-whom controls.

use url::Url;

use crate::ncco::common::{AudioControls, Transcription, Webhook};
use crate::ncco::fields::{self, Fields, HTTP};

#[derive(Debug, Clone, PartialEq)]
pub struct Conversation {
    pub name: String,
    /// Played to attendees until the conference starts.
    pub music_on_hold_url: Option<Url>,
    /// Default true; false = attendee waiting for a moderator.
    pub start_on_enter: bool,
    /// Default false; true = the conference ends when this participant leaves.
    pub end_on_exit: bool,
    pub record: bool,
    pub audio: AudioControls,
    pub event: Option<Webhook>,
    /// Only with `record: true`.
    pub transcription: Option<Transcription>,
}

impl Conversation {
    pub(crate) fn parse(f: &mut Fields) -> Option<Conversation> {
        let name = f.req("name", fields::non_empty).map(str::to_owned);
        let music_on_hold_url = f.opt("musicOnHoldUrl", fields::url_array(HTTP));
        let start_on_enter = f.bool_or("startOnEnter", true);
        let end_on_exit = f.bool_or("endOnExit", false);
        let record = f.bool_or("record", false);
        let audio = AudioControls::read(f);
        let event = Webhook::optional(f);
        let transcription = Transcription::optional(f);
        if transcription.is_some() && !record {
            f.report("transcription", "requires record: true");
        }
        Some(Conversation {
            name: name?,
            music_on_hold_url,
            start_on_enter,
            end_on_exit,
            record,
            audio,
            event,
            transcription,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ncco::Action;
    use crate::ncco::test_support::{only_action, problem_names};

    fn conversation(json: &str) -> Conversation {
        match only_action(json) {
            Action::Conversation(c) => c,
            other => panic!("expected conversation, got {other:?}"),
        }
    }

    #[test]
    fn minimal() {
        let c = conversation(r#"[{"action":"conversation","name":"nexmo-conference-standard"}]"#);
        assert_eq!(
            c,
            Conversation {
                name: "nexmo-conference-standard".into(),
                music_on_hold_url: None,
                start_on_enter: true,
                end_on_exit: false,
                record: false,
                audio: AudioControls::default(),
                event: None,
                transcription: None,
            }
        );
    }

    #[test]
    fn full_moderated() {
        let c = conversation(
            r#"[{"action":"conversation","name":"nexmo-conference-moderated",
                "musicOnHoldUrl":["https://nexmo-community.github.io/ncco-examples/assets/voice_api_audio_streaming.mp3"],
                "startOnEnter":false,"endOnExit":true,"record":true,"canHear":["leg-1"],"canSpeak":["leg-2"],
                "eventUrl":["https://example.com/conf"],"eventMethod":"GET","transcription":{}}]"#,
        );
        assert!(!c.start_on_enter && c.end_on_exit && c.record);
        assert!(c.music_on_hold_url.is_some() && c.event.is_some() && c.transcription.is_some());
        assert_eq!(c.audio.can_hear, Some(vec!["leg-1".to_owned()]));
    }

    #[test]
    fn invalid() {
        assert_eq!(problem_names(r#"[{"action":"conversation"}]"#), ["/0/name"]);
        assert_eq!(
            problem_names(
                r#"[{"action":"conversation","name":" ","musicOnHoldUrl":"https://x.example/a.mp3","startOnEnter":1,
                    "endOnExit":"no","record":"yes","canHear":"leg","canSpeak":["a"],"mute":true,"eventMethod":"PUT",
                    "transcription":{}}]"#
            ),
            [
                "/0/name",
                "/0/musicOnHoldUrl",
                "/0/startOnEnter",
                "/0/endOnExit",
                "/0/record",
                "/0/canHear",
                "/0/mute",
                "/0/eventMethod",
                "/0/transcription",
            ]
        );
    }
}
