//! `websocket` endpoint: stream the call's audio as 16-bit linear PCM to a `ws://`/`wss://`
//! server, with JSON headers echoed in the first frame and an optional handshake
//! `Authorization`.

use serde_json::{Map, Value};
use url::Url;

use crate::ncco::fields::{self, Fields, WS};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Websocket {
    pub uri: Url,
    /// Normalised `audio/l16;rate=<sample_rate>`.
    pub content_type: String,
    /// 8000, 16000 or 24000.
    pub sample_rate: u32,
    /// Sent in the first text frame and in event webhooks.
    pub headers: Map<String, Value>,
    pub authorization: Option<WebsocketAuthorization>,
}

/// The `Authorization` header of the WebSocket handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebsocketAuthorization {
    /// `Bearer <JWT>`, the same token as signed webhooks.
    Vonage,
    /// This exact header value.
    Custom(String),
}

impl Websocket {
    pub const SAMPLE_RATES: [u32; 3] = [8000, 16000, 24000];
    /// Longest custom authorization value, in characters (exclusive).
    pub const MAX_AUTHORIZATION_LEN: usize = 8192;
    /// Largest `headers` object, serialised.
    pub const MAX_HEADERS_BYTES: usize = 512;

    pub(crate) fn parse(f: &mut Fields) -> Option<Websocket> {
        let uri = f.req("uri", fields::url(WS));
        let sample_rate = f.req("content-type", content_type);
        let headers = f.opt("headers", fields::object).cloned().unwrap_or_default();
        let size = serde_json::to_string(&headers).map_or(0, |t| t.len());
        if size > Self::MAX_HEADERS_BYTES {
            f.report("headers", format!("must be at most {} bytes as JSON, found {size}", Self::MAX_HEADERS_BYTES));
        }
        let authorization = f.child("authorization").and_then(authorization);
        let sample_rate = sample_rate?;
        Some(Websocket {
            uri: uri?,
            content_type: format!("audio/l16;rate={sample_rate}"),
            sample_rate,
            headers,
            authorization,
        })
    }
}

impl Websocket {
    /// The sample rate of `audio/l16;rate=N` (case and spaces tolerated), when N is one of
    /// [`Websocket::SAMPLE_RATES`]; the media process reads the normalised form with it too.
    pub fn l16_rate(content_type: &str) -> Option<u32> {
        let s = content_type.to_ascii_lowercase();
        let (media, rate) = s.split_once(';')?;
        let rate = rate.trim().strip_prefix("rate").map(str::trim_start).and_then(|r| r.strip_prefix('='))?;
        let rate = rate.trim().parse::<u32>().ok()?;
        (media.trim() == "audio/l16" && Websocket::SAMPLE_RATES.contains(&rate)).then_some(rate)
    }
}

fn content_type(v: &Value) -> Result<u32, String> {
    let refused = || "must be audio/l16;rate=8000, audio/l16;rate=16000 or audio/l16;rate=24000".to_owned();
    Websocket::l16_rate(fields::string(v)?).ok_or_else(refused)
}

fn authorization(mut c: Fields) -> Option<WebsocketAuthorization> {
    let custom = c.one_of_or("type", &[("vonage", false), ("custom", true)], false);
    if !custom {
        return Some(WebsocketAuthorization::Vonage);
    }
    let value = c.req("value", |v| {
        let s = fields::string(v)?;
        let printable = s.bytes().all(|b| (0x20..0x7f).contains(&b));
        if s.is_empty() || !printable || s.len() >= Websocket::MAX_AUTHORIZATION_LEN {
            return Err(format!("must be 1 to {} printable ASCII characters", Websocket::MAX_AUTHORIZATION_LEN - 1));
        }
        Ok(s.to_owned())
    });
    value.map(WebsocketAuthorization::Custom)
}

#[cfg(test)]
mod tests {
    #[test]
    fn l16_rates() {
        assert_eq!(super::Websocket::l16_rate("audio/l16;rate=16000"), Some(16000));
        assert_eq!(super::Websocket::l16_rate("audio/L16; rate = 8000"), Some(8000));
        assert_eq!(super::Websocket::l16_rate("audio/l16;rate=44100"), None);
        assert_eq!(super::Websocket::l16_rate("audio/pcmu;rate=8000"), None);
    }

    #[test]
    fn headers_over_512_bytes_are_refused() {
        let big = "x".repeat(520);
        let doc = serde_json::json!([{"action": "connect", "endpoint": [{"type": "websocket", "uri": "wss://a.example/s",
            "content-type": "audio/l16;rate=16000", "headers": {"h": big}}]}]);
        let problems = crate::ncco::Ncco::parse(&doc).unwrap_err();
        assert!(format!("{problems:?}").contains("headers"), "{problems:?}");
    }

    use super::*;
    use crate::ncco::endpoint::Endpoint;
    use crate::ncco::test_support::{endpoint, endpoint_problems};

    fn websocket(json: &str) -> Websocket {
        match endpoint(json) {
            Endpoint::Websocket(w) => w,
            other => panic!("expected websocket, got {other:?}"),
        }
    }

    #[test]
    fn minimal() {
        let w =
            websocket(r#"{"type":"websocket","uri":"ws://example.com/socket","content-type":"audio/l16;rate=8000"}"#);
        assert_eq!(
            (w.uri.as_str(), w.content_type.as_str(), w.sample_rate),
            ("ws://example.com/socket", "audio/l16;rate=8000", 8000)
        );
        assert!(w.headers.is_empty());
        assert_eq!(w.authorization, None);
    }

    #[test]
    fn full() {
        let w = websocket(
            r#"{"type":"websocket","uri":"wss://example.com/socket","content-type":"Audio/L16; rate=24000",
                "headers":{"language":"en-GB","nested":{"a":1}},"authorization":{"type":"custom","value":"Bearer abc"}}"#,
        );
        assert_eq!((w.content_type.as_str(), w.sample_rate), ("audio/l16;rate=24000", 24000));
        assert_eq!(w.headers.get("language"), Some(&Value::from("en-GB")));
        assert_eq!(w.authorization, Some(WebsocketAuthorization::Custom("Bearer abc".into())));
        let w = websocket(
            r#"{"type":"websocket","uri":"wss://x.example","content-type":"audio/l16;rate=16000","authorization":{"type":"vonage"}}"#,
        );
        assert_eq!(w.authorization, Some(WebsocketAuthorization::Vonage));
    }

    #[test]
    fn invalid() {
        assert_eq!(endpoint_problems(r#"{"type":"websocket"}"#), ["/uri", "/content-type"]);
        assert_eq!(
            endpoint_problems(
                r#"{"type":"websocket","uri":"https://example.com/socket","content-type":"audio/l16;rate=44100",
                    "headers":"x","authorization":{"type":"custom"}}"#
            ),
            ["/uri", "/content-type", "/headers", "/authorization/value"]
        );
        for bad in ["audio/pcmu;rate=8000", "audio/l16", "audio/l16;rate=", "audio/l16;bits=16"] {
            let json = format!(r#"{{"type":"websocket","uri":"wss://x.example","content-type":"{bad}"}}"#);
            assert_eq!(endpoint_problems(&json), ["/content-type"], "{bad}");
        }
        assert_eq!(
            endpoint_problems(
                r#"{"type":"websocket","uri":"wss://x.example","content-type":"audio/l16;rate=8000","authorization":{"type":"basic","value":"a\nb"}}"#
            ),
            ["/authorization/type"]
        );
        assert_eq!(
            endpoint_problems(
                r#"{"type":"websocket","uri":"wss://x.example","content-type":"audio/l16;rate=8000","authorization":{"type":"custom","value":"a\nb"}}"#
            ),
            ["/authorization/value"]
        );
    }
}
