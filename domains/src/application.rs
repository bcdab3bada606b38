//! Applications' voice capability as Vonage's Application API v2 writes it: answer, event and
//! fallback webhooks with their methods and timeouts, signed callbacks, region. Parsed leniently
//! (optional fields) and normalised with Vonage's defaults, so what is stored is complete.

use serde::{Deserialize, Serialize};
use url::Url;
use utoipa::ToSchema;

use crate::problem::{InvalidParameter, Problems};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
pub enum HttpMethod {
    #[default]
    #[serde(rename = "GET")]
    Get,
    #[serde(rename = "POST")]
    Post,
}

/// How the application speaks: Vonage's (NCCO apps: answer_url asked with query parameters
/// or JSON, events as Vonage's JSON) or Twilio's (`twiml`: answer_url asked with Twilio's
/// form, POST by default, signed with `X-Twilio-Signature`; events as status callbacks).
/// Either may answer with NCCO JSON or TwiML: documents are told apart by their content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    #[default]
    Ncco,
    Twiml,
}

/// One webhook: where and how voxbridge calls the application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    /// An http:// or https:// URL.
    #[schema(example = "https://app.example.com/answer")]
    pub address: String,
    #[serde(default)]
    pub http_method: Option<HttpMethod>,
    /// Milliseconds to establish the connection (300–1000, default 1000).
    #[serde(default)]
    pub connect_timeout: Option<u32>,
    /// Milliseconds to wait for the response (answer/fallback 1000–5000, default 5000;
    /// event 1000–10000, default 10000).
    #[serde(default)]
    pub socket_timeout: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VoiceWebhooks {
    pub answer_url: Webhook,
    pub event_url: Webhook,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_answer_url: Option<Webhook>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VoiceCapability {
    pub webhooks: VoiceWebhooks,
    /// Sign webhooks with the account's signature secret (HS256 JWT). Default true.
    #[serde(default)]
    pub signed_callbacks: Option<bool>,
    /// Hours a named conversation persists (1–9000, default 48).
    #[serde(default)]
    pub conversations_ttl: Option<u32>,
    /// Days a finished leg stays queryable (1–31, default 2).
    #[serde(default)]
    pub leg_persistence_time: Option<u32>,
    /// Region label (one of the configured regions) where this application's calls run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// voxbridge's own: `twiml` for applications written for Twilio/SignalWire. Default `ncco`.
    #[serde(default)]
    pub dialect: Option<Dialect>,
    /// voxbridge's own: the transport of a TwiML/cXML `<Sip>` URI that names none (`udp`,
    /// `tcp`, `tls`). Unset: `tls`, as SignalWire does; applications written for Twilio set
    /// `udp`, Twilio's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sip_transport: Option<crate::sip_uri::Transport>,
    /// voxbridge's own, for `twiml` applications: the `StatusCallbackEvent`s their event_url
    /// is sent (`initiated`, `ringing`, `answered`, `completed`). Unset: every one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_callback_event: Option<Vec<String>>,
}

impl VoiceCapability {
    /// The transport of a document's `<Sip>` URI without `;transport=`.
    pub fn document_sip_transport(&self) -> crate::sip_uri::Transport {
        self.sip_transport.unwrap_or(crate::sip_uri::Transport::Tls)
    }
}

/// Capabilities other than `voice` (rtc, messages, …) are accepted and ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
pub struct Capabilities {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice: Option<VoiceCapability>,
}

#[derive(Clone, Copy)]
enum Kind {
    Answer,
    Event,
}

impl Kind {
    fn socket_range(self) -> (u32, u32, u32) {
        match self {
            Kind::Answer => (1000, 5000, 5000),
            Kind::Event => (1000, 10000, 10000),
        }
    }
}

const CONNECT_RANGE: (u32, u32, u32) = (300, 1000, 1000);

impl Capabilities {
    /// Checks every field against Vonage's limits, collecting all problems, and returns the
    /// capabilities with defaults filled in.
    pub fn normalise(mut self, regions: &[String]) -> Result<Self, Vec<InvalidParameter>> {
        let mut p = Problems::new();
        if let Some(voice) = self.voice.as_mut() {
            let base = "capabilities.voice";
            let dialect = *voice.dialect.get_or_insert_default();
            let w = &mut voice.webhooks;
            if dialect == Dialect::Twiml {
                // Twilio asks its voice URL and status callback with POST unless told otherwise.
                w.answer_url.http_method.get_or_insert(HttpMethod::Post);
                w.event_url.http_method.get_or_insert(HttpMethod::Post);
            }
            normalise_webhook(&mut p, &format!("{base}.webhooks.answer_url"), &mut w.answer_url, Kind::Answer);
            normalise_webhook(&mut p, &format!("{base}.webhooks.event_url"), &mut w.event_url, Kind::Event);
            if let Some(f) = w.fallback_answer_url.as_mut() {
                normalise_webhook(&mut p, &format!("{base}.webhooks.fallback_answer_url"), f, Kind::Answer);
            }
            for event in voice.status_callback_event.iter().flatten() {
                if !crate::twiml::status::EVENTS.contains(&event.as_str()) {
                    let reason = format!("unknown event '{event}' (initiated, ringing, answered, completed)");
                    p.push(format!("{base}.status_callback_event"), reason);
                }
            }
            voice.signed_callbacks.get_or_insert(true);
            let ttl = *voice.conversations_ttl.get_or_insert(48);
            if !(1..=9000).contains(&ttl) {
                p.push(format!("{base}.conversations_ttl"), "must be 1 to 9000 hours");
            }
            let days = *voice.leg_persistence_time.get_or_insert(2);
            if !(1..=31).contains(&days) {
                p.push(format!("{base}.leg_persistence_time"), "must be 1 to 31 days");
            }
            if let Some(region) = &voice.region
                && !regions.iter().any(|r| r == region)
            {
                p.push(format!("{base}.region"), format!("must be one of: {}", regions.join(", ")));
            }
        }
        p.finish(self)
    }
}

fn normalise_webhook(p: &mut Problems, name: &str, w: &mut Webhook, kind: Kind) {
    if let Err(reason) = check_http_url(&w.address) {
        p.push(format!("{name}.address"), reason);
    }
    w.http_method.get_or_insert(match kind {
        Kind::Answer => HttpMethod::Get,
        Kind::Event => HttpMethod::Post,
    });
    in_range(p, &format!("{name}.connect_timeout"), &mut w.connect_timeout, CONNECT_RANGE);
    in_range(p, &format!("{name}.socket_timeout"), &mut w.socket_timeout, kind.socket_range());
}

fn in_range(p: &mut Problems, name: &str, value: &mut Option<u32>, (min, max, default): (u32, u32, u32)) {
    let v = *value.get_or_insert(default);
    if !(min..=max).contains(&v) {
        p.push(name, format!("must be {min} to {max} milliseconds"));
    }
}

/// Webhook addresses must be absolute http(s) URLs with a host.
pub fn check_http_url(s: &str) -> Result<Url, String> {
    let url = Url::parse(s).map_err(|e| format!("'{s}' is not a URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!("'{s}' must be an http:// or https:// URL"));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(address: &str) -> Webhook {
        Webhook { address: address.into(), http_method: None, connect_timeout: None, socket_timeout: None }
    }

    fn caps(answer: Webhook, event: Webhook) -> Capabilities {
        Capabilities {
            voice: Some(VoiceCapability {
                webhooks: VoiceWebhooks { answer_url: answer, event_url: event, fallback_answer_url: None },
                signed_callbacks: None,
                conversations_ttl: None,
                leg_persistence_time: None,
                region: None,
                dialect: None,
                sip_transport: None,
                status_callback_event: None,
            }),
        }
    }

    #[test]
    fn defaults_filled() {
        let c = caps(hook("https://a.example/answer"), hook("http://a.example/event")).normalise(&[]).unwrap();
        let v = c.voice.unwrap();
        assert_eq!(v.webhooks.answer_url.http_method, Some(HttpMethod::Get));
        assert_eq!(v.webhooks.answer_url.socket_timeout, Some(5000));
        assert_eq!(v.webhooks.event_url.http_method, Some(HttpMethod::Post));
        assert_eq!(v.webhooks.event_url.socket_timeout, Some(10000));
        assert_eq!(v.webhooks.event_url.connect_timeout, Some(1000));
        assert_eq!(v.signed_callbacks, Some(true));
        assert_eq!(v.dialect, Some(Dialect::Ncco));
        let mut twiml = caps(hook("https://a.example/voice"), hook("https://a.example/status"));
        if let Some(v) = twiml.voice.as_mut() {
            v.dialect = Some(Dialect::Twiml);
        }
        let v = twiml.normalise(&[]).unwrap().voice.unwrap();
        assert_eq!(v.webhooks.answer_url.http_method, Some(HttpMethod::Post), "Twilio asks its voice URL with POST");
    }

    #[test]
    fn every_problem_named() {
        let mut answer = hook("ftp://x");
        answer.connect_timeout = Some(100);
        let mut event = hook("https://a.example/e");
        event.socket_timeout = Some(20000);
        let mut c = caps(answer, event);
        if let Some(v) = c.voice.as_mut() {
            v.region = Some("mars".into());
            v.status_callback_event = Some(vec!["completed".into(), "hungup".into()]);
        }
        let err = c.normalise(&["us".into()]).unwrap_err();
        let names: Vec<_> = err.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "capabilities.voice.webhooks.answer_url.address",
                "capabilities.voice.webhooks.answer_url.connect_timeout",
                "capabilities.voice.webhooks.event_url.socket_timeout",
                "capabilities.voice.status_callback_event",
                "capabilities.voice.region"
            ]
        );
    }
}
