//! `stream`: play an audio file (mp3 or 16-bit wav) fetched from a URL into the call.

use url::Url;

use crate::ncco::fields::{self, Fields, HTTP};

use super::{LEVEL, LOOP};

#[derive(Debug, Clone, PartialEq)]
pub struct Stream {
    pub stream_url: Url,
    /// Volume -1..1, default 0.
    pub level: f64,
    /// When true the action does not block and a following `input` may interrupt it.
    pub barge_in: bool,
    /// Times to play, 0 = until stopped. Default 1.
    pub loop_count: u32,
}

impl Stream {
    pub(crate) fn parse(f: &mut Fields) -> Option<Stream> {
        let stream_url = f.req("streamUrl", fields::url_array(HTTP));
        Some(Stream {
            level: f.number_or("level", LEVEL, 0.0),
            barge_in: f.bool_or("bargeIn", false),
            loop_count: f.uint_or("loop", LOOP, 1),
            stream_url: stream_url?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ncco::Action;
    use crate::ncco::test_support::{only_action, problem_names};

    fn stream(json: &str) -> Stream {
        match only_action(json) {
            Action::Stream(s) => s,
            other => panic!("expected stream, got {other:?}"),
        }
    }

    #[test]
    fn minimal() {
        let s =
            stream(r#"[{"action":"stream","streamUrl":["https://acme.example/music/voice_api_audio_streaming.mp3"]}]"#);
        assert_eq!(s.stream_url.as_str(), "https://acme.example/music/voice_api_audio_streaming.mp3");
        assert_eq!((s.level, s.barge_in, s.loop_count), (0.0, false, 1));
    }

    #[test]
    fn full() {
        let s = stream(
            r#"[{"action":"stream","streamUrl":["http://acme.example/a.wav"],"level":0.4,"bargeIn":true,"loop":3}]"#,
        );
        assert_eq!((s.level, s.barge_in, s.loop_count), (0.4, true, 3));
    }

    #[test]
    fn invalid() {
        assert_eq!(problem_names(r#"[{"action":"stream"}]"#), ["/0/streamUrl"]);
        assert_eq!(
            problem_names(
                r#"[{"action":"stream","streamUrl":"https://a.example/x.mp3","level":-2,"bargeIn":0,"loop":1.5}]"#
            ),
            ["/0/streamUrl", "/0/level", "/0/bargeIn", "/0/loop"]
        );
        assert_eq!(problem_names(r#"[{"action":"stream","streamUrl":["file:///etc/passwd"]}]"#), ["/0/streamUrl"]);
        assert_eq!(problem_names(r#"[{"action":"stream","streamUrl":[]}]"#), ["/0/streamUrl"]);
    }
}
