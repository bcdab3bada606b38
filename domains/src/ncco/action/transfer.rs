//! `transfer`: move the call's legs into another, already existing conversation.

use crate::ncco::common::AudioControls;
use crate::ncco::fields::{self, Fields};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    pub conversation_id: String,
    pub audio: AudioControls,
}

impl Transfer {
    /// SDKs disagree on the spelling; the first is the one named in refusals.
    pub const CONVERSATION_ID_KEYS: [&'static str; 2] = ["conversation_id", "conversationId"];

    pub(crate) fn parse(f: &mut Fields) -> Option<Transfer> {
        let [snake, _] = Self::CONVERSATION_ID_KEYS;
        let key = f.first_present(&Self::CONVERSATION_ID_KEYS).unwrap_or(snake);
        let conversation_id = f.req(key, fields::non_empty).map(str::to_owned);
        let audio = AudioControls::read(f);
        Some(Transfer { conversation_id: conversation_id?, audio })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ncco::Action;
    use crate::ncco::test_support::{only_action, problem_names};

    fn transfer(json: &str) -> Transfer {
        match only_action(json) {
            Action::Transfer(t) => t,
            other => panic!("expected transfer, got {other:?}"),
        }
    }

    #[test]
    fn minimal_both_spellings() {
        for key in Transfer::CONVERSATION_ID_KEYS {
            let t = transfer(&format!(r#"[{{"action":"transfer","{key}":"CON-1234"}}]"#));
            assert_eq!(t, Transfer { conversation_id: "CON-1234".into(), audio: AudioControls::default() });
        }
    }

    #[test]
    fn full() {
        let t = transfer(r#"[{"action":"transfer","conversationId":"CON-1","canHear":["a"],"mute":true}]"#);
        assert_eq!(t.audio, AudioControls { can_speak: None, can_hear: Some(vec!["a".into()]), mute: true });
    }

    #[test]
    fn invalid() {
        assert_eq!(problem_names(r#"[{"action":"transfer"}]"#), ["/0/conversation_id"]);
        assert_eq!(
            problem_names(r#"[{"action":"transfer","conversationId":"","canSpeak":["a"],"mute":true}]"#),
            ["/0/conversationId", "/0/mute"]
        );
    }
}
