//! `talk`: speak text (plain or SSML wrapped in `<speak>`) into the call with TTS.

use crate::ncco::common::Provider;
use crate::ncco::fields::{self, Fields};

use super::{LEVEL, LOOP};

#[derive(Debug, Clone, PartialEq)]
pub struct Talk {
    pub text: String,
    /// When true the action does not block and a following `input` may interrupt it.
    pub barge_in: bool,
    /// Times to play, 0 = until stopped. Default 1.
    pub loop_count: u32,
    /// Volume -1..1, default 0.
    pub level: f64,
    /// BCP-47 tag, default `en-US`.
    pub language: String,
    pub style: u32,
    pub premium: bool,
    pub provider: Option<Provider>,
}

impl Talk {
    /// Longest text in characters, SSML tags not counted.
    pub const MAX_TEXT_CHARS: usize = 1500;
    pub const PROVIDERS: &[&str] = &["google"];

    pub(crate) fn parse(f: &mut Fields) -> Option<Talk> {
        let text = f.req("text", text);
        Some(Talk {
            barge_in: f.bool_or("bargeIn", false),
            loop_count: f.uint_or("loop", LOOP, 1),
            level: f.number_or("level", LEVEL, 0.0),
            language: f.opt("language", spoken_language).unwrap_or_else(|| fields::DEFAULT_LANGUAGE.to_owned()),
            style: f.uint_or("style", 0..=u32::MAX, 0),
            premium: f.bool_or("premium", false),
            provider: Provider::optional(f, Self::PROVIDERS),
            text: text?,
        })
    }

    /// Whether `text` is SSML (to be passed to the TTS engine as markup).
    pub fn is_ssml(&self) -> bool {
        self.text.trim_start().starts_with("<speak")
    }
}

/// A BCP-47 tag that a voice speaks.
fn spoken_language(v: &serde_json::Value) -> Result<String, String> {
    let tag = fields::language(v)?;
    match crate::voices::voice_for(&tag) {
        Some(_) => Ok(tag),
        None => Err(format!("no text-to-speech voice speaks {tag}")),
    }
}

fn text(v: &serde_json::Value) -> Result<String, String> {
    let s = fields::non_empty(v)?;
    let spoken = spoken_chars(s);
    if spoken > Talk::MAX_TEXT_CHARS {
        return Err(format!(
            "must have at most {} characters (SSML tags excluded), found {spoken}",
            Talk::MAX_TEXT_CHARS
        ));
    }
    Ok(s.to_owned())
}

/// Characters outside `<…>` tags.
fn spoken_chars(s: &str) -> usize {
    let mut in_tag = false;
    s.chars()
        .filter(|c| match c {
            '<' => {
                in_tag = true;
                false
            }
            '>' if in_tag => {
                in_tag = false;
                false
            }
            _ => !in_tag,
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ncco::Action;
    use crate::ncco::test_support::{only_action, problem_names};

    fn talk(json: &str) -> Talk {
        match only_action(json) {
            Action::Talk(t) => t,
            other => panic!("expected talk, got {other:?}"),
        }
    }

    #[test]
    fn vonage_talk_only_example() {
        let t = talk(
            r#"[{"action":"talk","text":"You are listening to a test text-to-speech call made with Nexmo Voice API"}]"#,
        );
        assert_eq!(
            t,
            Talk {
                text: "You are listening to a test text-to-speech call made with Nexmo Voice API".into(),
                barge_in: false,
                loop_count: 1,
                level: 0.0,
                language: "en-US".into(),
                style: 0,
                premium: false,
                provider: None,
            }
        );
        assert!(!t.is_ssml());
    }

    #[test]
    fn full() {
        let t = talk(
            r#"[{"action":"talk","text":"<speak>Hello <break time='1s'/> there</speak>","bargeIn":true,"loop":0,
                "level":-0.5,"language":"en-GB","style":2,"premium":true,"provider":"google","providerOptions":{"x":1}}]"#,
        );
        assert!(t.barge_in && t.premium && t.is_ssml());
        assert_eq!((t.loop_count, t.level, t.language.as_str(), t.style), (0, -0.5, "en-GB", 2));
        assert_eq!(t.provider.map(|p| p.name), Some("google".into()));
    }

    #[test]
    fn text_length_excludes_ssml() {
        let long_markup = format!("<speak>{}</speak>", "a".repeat(1500));
        assert!(problem_names(&format!(r#"[{{"action":"talk","text":"{long_markup}"}}]"#)).is_empty());
        let too_long = "a".repeat(1501);
        assert_eq!(problem_names(&format!(r#"[{{"action":"talk","text":"{too_long}"}}]"#)), ["/0/text"]);
    }

    #[test]
    fn invalid() {
        assert_eq!(problem_names(r#"[{"action":"talk"}]"#), ["/0/text"]);
        assert_eq!(
            problem_names(
                r#"[{"action":"talk","text":"","bargeIn":"yes","loop":-1,"level":1.5,"language":"english",
                    "style":"x","premium":1,"provider":"polly"}]"#
            ),
            [
                "/0/text",
                "/0/bargeIn",
                "/0/loop",
                "/0/level",
                "/0/language",
                "/0/style",
                "/0/premium",
                "/0/provider",
                "/0/providerOptions"
            ]
        );
    }
}
