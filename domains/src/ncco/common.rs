//! Types that several NCCO actions share: a webhook (`eventUrl` + `eventMethod`), machine
//! detection (plain and advanced), recording transcription and a TTS/ASR provider choice,
//! each with the one reader every action calls.

use serde_json::{Map, Value};
use url::Url;

use super::fields::{self, Fields, HTTP};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HttpMethod {
    Get,
    #[default]
    Post,
}

impl HttpMethod {
    pub const CHOICES: [(&'static str, HttpMethod); 2] = [("GET", HttpMethod::Get), ("POST", HttpMethod::Post)];

    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Get => "GET",
            HttpMethod::Post => "POST",
        }
    }
}

/// Where and how an action reports its events or results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    pub url: Url,
    pub method: HttpMethod,
}

/// Where a TwiML verb's result goes: its `action` URL, or, when it names none, the URL of
/// the document that holds the verb (Twilio's default for `<Gather>` and `<Record>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Callback {
    pub url: Option<Url>,
    pub method: HttpMethod,
}

impl From<Webhook> for Callback {
    fn from(w: Webhook) -> Callback {
        Callback { url: Some(w.url), method: w.method }
    }
}

impl Webhook {
    /// `eventUrl` (an array with one http(s) URL) and `eventMethod` (default POST), when given.
    pub fn optional(f: &mut Fields) -> Option<Webhook> {
        let url = f.opt("eventUrl", fields::url_array(HTTP));
        let method = f.one_of_or("eventMethod", &HttpMethod::CHOICES, HttpMethod::Post);
        url.map(|url| Webhook { url, method })
    }

    /// Like [`Webhook::optional`], but a missing `eventUrl` is a problem.
    pub fn required(f: &mut Fields) -> Option<Webhook> {
        f.require("eventUrl");
        Webhook::optional(f)
    }
}

/// What to do when an answering machine picks up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MachineDetection {
    Continue,
    Hangup,
}

impl MachineDetection {
    pub const CHOICES: [(&'static str, MachineDetection); 2] =
        [("continue", MachineDetection::Continue), ("hangup", MachineDetection::Hangup)];
}

/// `advanced_machine_detection.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AmdMode {
    /// Asynchronous: the NCCO continues; status and beep events.
    Default,
    /// Synchronous, status event only.
    #[default]
    Detect,
    /// Synchronous, beep event only.
    DetectBeep,
}

impl AmdMode {
    pub const CHOICES: [(&'static str, AmdMode); 3] =
        [("default", AmdMode::Default), ("detect", AmdMode::Detect), ("detect_beep", AmdMode::DetectBeep)];
}

/// `advanced_machine_detection` (also spelled `advancedMachineDetection` by the Java SDK).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdvancedMachineDetection {
    pub behavior: MachineDetection,
    pub mode: AmdMode,
    /// Seconds to wait for the beep, 30–120.
    pub beep_timeout: Option<u32>,
}

impl AdvancedMachineDetection {
    pub const KEYS: [&'static str; 2] = ["advanced_machine_detection", "advancedMachineDetection"];
    pub const BEEP_TIMEOUT: std::ops::RangeInclusive<u32> = 30..=120;
    /// Vonage's wait for the beep when `beep_timeout` is not given, seconds.
    pub const DEFAULT_BEEP_TIMEOUT: u32 = 45;

    /// How long to listen for the beep after a `machine` verdict (the modes that report it).
    pub fn beep_wait_ms(&self) -> Option<u32> {
        match self.mode {
            AmdMode::Default | AmdMode::DetectBeep => {
                Some(self.beep_timeout.unwrap_or(Self::DEFAULT_BEEP_TIMEOUT).saturating_mul(1000))
            }
            AmdMode::Detect => None,
        }
    }

    pub fn optional(f: &mut Fields) -> Option<AdvancedMachineDetection> {
        let key = f.first_present(&Self::KEYS)?;
        let mut c = f.child(key)?;
        Some(AdvancedMachineDetection {
            behavior: c.one_of_or("behavior", &MachineDetection::CHOICES, MachineDetection::Continue),
            mode: c.one_of_or("mode", &AmdMode::CHOICES, AmdMode::Detect),
            beep_timeout: c.opt("beep_timeout", fields::uint(Self::BEEP_TIMEOUT)),
        })
    }
}

/// Transcription of a recording (`record.transcription`, `conversation.transcription`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transcription {
    pub language: String,
    pub event: Option<Webhook>,
    pub sentiment_analysis: bool,
}

impl Transcription {
    pub fn optional(f: &mut Fields) -> Option<Transcription> {
        let mut c = f.child("transcription")?;
        Some(Transcription {
            language: c.opt("language", fields::language).unwrap_or_else(|| fields::DEFAULT_LANGUAGE.to_owned()),
            event: Webhook::optional(&mut c),
            sentiment_analysis: c.bool_or("sentimentAnalysis", false),
        })
    }
}

/// A speech provider chosen with `provider` + `providerOptions`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provider {
    pub name: String,
    pub options: Map<String, Value>,
}

impl Provider {
    /// `provider` (one of `allowed`, any non-empty name when `allowed` is empty) and
    /// `providerOptions` (an object, required with `provider`).
    pub fn optional(f: &mut Fields, allowed: &[&str]) -> Option<Provider> {
        let name = f.opt("provider", |v| {
            let name = fields::non_empty(v)?;
            if allowed.is_empty() || allowed.contains(&name) {
                Ok(name.to_owned())
            } else {
                Err(format!("must be one of: {}", allowed.join(", ")))
            }
        });
        let options = f.opt("providerOptions", fields::object).cloned();
        if f.has("provider") && !f.has("providerOptions") {
            f.report("providerOptions", "is required with provider");
        }
        Some(Provider { name: name?, options: options.unwrap_or_default() })
    }
}

/// Who a participant hears and is heard by (`conversation`, `transfer`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AudioControls {
    /// Legs that hear this participant; `None` = everyone, empty = nobody.
    pub can_speak: Option<Vec<String>>,
    /// Legs this participant hears; `None` = everyone.
    pub can_hear: Option<Vec<String>>,
    /// Nobody hears this participant; not allowed together with `canSpeak`.
    pub mute: bool,
}

impl AudioControls {
    pub fn read(f: &mut Fields) -> AudioControls {
        let controls = AudioControls {
            can_speak: f.strings("canSpeak"),
            can_hear: f.strings("canHear"),
            mute: f.bool_or("mute", false),
        };
        if controls.mute {
            f.exclusive("canSpeak", "mute");
        }
        controls
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::problem::Problems;

    fn with_fields<T>(doc: Value, f: impl FnOnce(&mut Fields) -> T) -> (T, Vec<String>) {
        let mut problems = Problems::new();
        let out = match Fields::of(&doc, String::new(), &mut problems) {
            Some(mut fields) => f(&mut fields),
            None => panic!("test document must be an object"),
        };
        (out, problems.into_vec().into_iter().map(|p| p.name).collect())
    }

    #[test]
    fn webhooks() {
        let (hook, problems) =
            with_fields(json!({"eventUrl": ["https://a.example/e"], "eventMethod": "GET"}), Webhook::optional);
        assert_eq!(hook.map(|h| (h.url.to_string(), h.method)), Some(("https://a.example/e".into(), HttpMethod::Get)));
        assert!(problems.is_empty());
        let (hook, problems) = with_fields(json!({"eventMethod": "PATCH"}), Webhook::required);
        assert_eq!(hook, None);
        assert_eq!(problems, ["/eventUrl", "/eventMethod"]);
    }

    #[test]
    fn advanced_machine_detection_both_spellings() {
        let (amd, problems) = with_fields(
            json!({"advancedMachineDetection": {"behavior": "hangup", "mode": "detect_beep", "beep_timeout": 45}}),
            AdvancedMachineDetection::optional,
        );
        assert!(problems.is_empty());
        assert_eq!(
            amd,
            Some(AdvancedMachineDetection {
                behavior: MachineDetection::Hangup,
                mode: AmdMode::DetectBeep,
                beep_timeout: Some(45)
            })
        );
        let (_, problems) = with_fields(
            json!({"advanced_machine_detection": {"behavior": "wait", "beep_timeout": 10}}),
            AdvancedMachineDetection::optional,
        );
        assert_eq!(problems, ["/advanced_machine_detection/behavior", "/advanced_machine_detection/beep_timeout"]);
    }

    #[test]
    fn providers() {
        let (p, problems) = with_fields(json!({"provider": "google"}), |f| Provider::optional(f, &["google"]));
        assert!(p.is_some());
        assert_eq!(problems, ["/providerOptions"]);
        let (p, problems) =
            with_fields(json!({"provider": "acme", "providerOptions": {}}), |f| Provider::optional(f, &["google"]));
        assert_eq!(p, None);
        assert_eq!(problems, ["/provider"]);
    }

    #[test]
    fn audio_controls() {
        let (c, problems) = with_fields(json!({"canHear": ["a"], "canSpeak": [], "mute": false}), AudioControls::read);
        assert!(problems.is_empty());
        assert_eq!(c, AudioControls { can_speak: Some(vec![]), can_hear: Some(vec!["a".into()]), mute: false });
        let (_, problems) = with_fields(json!({"canSpeak": ["a", 2], "mute": true}), AudioControls::read);
        assert_eq!(problems, ["/canSpeak/1", "/mute"]);
    }

    #[test]
    fn transcription_defaults() {
        let (t, problems) = with_fields(json!({"transcription": {}}), Transcription::optional);
        assert!(problems.is_empty());
        assert_eq!(t, Some(Transcription { language: "en-US".into(), event: None, sentiment_analysis: false }));
    }
}
