//! `phone` endpoint: a PSTN number, with digits to send on answer, a whisper NCCO run on
//! the callee before bridging, and an optional STIR/SHAKEN identity.

use url::Url;

use crate::e164::E164;
use crate::ncco::fields::{self, Fields, HTTP};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phone {
    pub number: E164,
    /// DTMF sent once the callee answers; `p` = 500 ms pause.
    pub dtmf_answer: Option<String>,
    pub on_answer: Option<OnAnswer>,
    /// STIR/SHAKEN `Identity` header content.
    pub shaken: Option<String>,
}

/// `onAnswer`: an NCCO fetched from `url` and run on the callee before the legs are bridged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnAnswer {
    pub url: Url,
    /// Played to the caller meanwhile (`ringbackTone`, legacy `ringback`).
    pub ringback_tone: Option<Url>,
}

impl Phone {
    pub(crate) fn parse(f: &mut Fields) -> Option<Phone> {
        let number = f.req("number", fields::e164);
        Some(Phone {
            dtmf_answer: f.opt("dtmfAnswer", dtmf_digits),
            on_answer: f.child("onAnswer").and_then(OnAnswer::parse),
            shaken: f.opt("shaken", fields::non_empty).map(str::to_owned),
            number: number?,
        })
    }
}

impl OnAnswer {
    const RINGBACK_KEYS: [&'static str; 2] = ["ringbackTone", "ringback"];

    fn parse(mut c: Fields) -> Option<OnAnswer> {
        let url = c.req("url", fields::url(HTTP));
        let ringback_tone = c.first_present(&Self::RINGBACK_KEYS).and_then(|key| c.opt(key, fields::url(HTTP)));
        Some(OnAnswer { url: url?, ringback_tone })
    }
}

fn dtmf_digits(v: &serde_json::Value) -> Result<String, String> {
    let s = fields::string(v)?;
    if s.chars().all(|c| c.is_ascii_digit() || matches!(c, '*' | '#' | 'p')) {
        Ok(s.to_owned())
    } else {
        Err("must contain only 0-9, *, # and p (a 500 ms pause)".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ncco::endpoint::Endpoint;
    use crate::ncco::test_support::{endpoint, endpoint_problems};

    fn phone(json: &str) -> Phone {
        match endpoint(json) {
            Endpoint::Phone(p) => p,
            other => panic!("expected phone, got {other:?}"),
        }
    }

    #[test]
    fn minimal() {
        let p = phone(r#"{"type":"phone","number":"+447700900000"}"#);
        assert_eq!(p.number.as_str(), "447700900000");
        assert_eq!((p.dtmf_answer, p.on_answer, p.shaken), (None, None, None));
    }

    #[test]
    fn full() {
        let p = phone(
            r#"{"type":"phone","number":"14155550100","dtmfAnswer":"p*123#",
                "onAnswer":{"url":"https://example.com/answer","ringback":"https://example.com/ring.mp3"},
                "shaken":"eyJ0eXAi;info=<https://cert.example/c.pem>;alg=ES256;ppt=\"shaken\""}"#,
        );
        assert_eq!(p.dtmf_answer.as_deref(), Some("p*123#"));
        let on_answer = p.on_answer.unwrap_or_else(|| panic!("onAnswer expected"));
        assert_eq!(on_answer.url.as_str(), "https://example.com/answer");
        assert_eq!(on_answer.ringback_tone.map(String::from), Some("https://example.com/ring.mp3".to_owned()));
        assert!(p.shaken.is_some());
    }

    #[test]
    fn invalid() {
        assert_eq!(endpoint_problems(r#"{"type":"phone"}"#), ["/number"]);
        for bad in [r#""123456""#, r#""1234567890123456""#, r#""1415abc0100""#, "14155550100"] {
            assert_eq!(endpoint_problems(&format!(r#"{{"type":"phone","number":{bad}}}"#)), ["/number"], "{bad}");
        }
        assert_eq!(
            endpoint_problems(
                r#"{"type":"phone","number":"14155550100","dtmfAnswer":"12x","onAnswer":{"ringbackTone":"ftp://x"},"shaken":""}"#
            ),
            ["/dtmfAnswer", "/onAnswer/url", "/onAnswer/ringbackTone", "/shaken"]
        );
        assert_eq!(
            endpoint_problems(r#"{"type":"phone","number":"14155550100","onAnswer":"https://x.example"}"#),
            ["/onAnswer"]
        );
    }
}
