//! `connect`: place an outbound leg to one endpoint (phone, SIP, WebSocket, VBC extension or
//! app user) and bridge it to the call, with caller ID, ringing and length limits, machine
//! detection and per-leg event webhooks. voxbridge also takes up to ten `sip` endpoints in one
//! `connect`, rung in parallel (first answer wins), as `<Dial>` with several `<Sip>` nouns does;
//! Vonage takes exactly one endpoint, which stays the rule for every other type.

use url::Url;

use crate::e164::E164;
use crate::ncco::common::{AdvancedMachineDetection, MachineDetection, Webhook};
use crate::ncco::endpoint::{Endpoint, Sip};
use crate::ncco::fields::{self, Fields, HTTP};

#[derive(Debug, Clone, PartialEq)]
pub struct Connect {
    /// The first (for every type but `sip`, the only) endpoint.
    pub endpoint: Endpoint,
    /// Further `sip` endpoints rung at the same time as the first.
    pub forks: Vec<Sip>,
    /// Caller ID (digits, no `+`); `None` = unknown or chosen by `random_from_number`.
    pub from: Option<E164>,
    /// Pick a caller ID among the application's numbers.
    pub random_from_number: bool,
    /// `eventType: "synchronous"`: the event webhook's answer may replace the NCCO.
    pub synchronous: bool,
    /// Seconds to ring before giving up, 3–7200, default 60.
    pub timeout: u32,
    /// Longest call in seconds, 1–7200, default 7200.
    pub limit: u32,
    pub machine_detection: Option<MachineDetection>,
    pub advanced_machine_detection: Option<AdvancedMachineDetection>,
    pub event: Option<Webhook>,
    /// Played to the caller (looped) until the callee answers.
    pub ringback_tone: Option<Url>,
    /// What a TwiML `<Dial>` has beyond NCCO's `connect` (boxed: rare, and it keeps every
    /// action small).
    pub twiml: Option<Box<TwimlDial>>,
}

/// A `<Dial>`'s own attributes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TwimlDial {
    /// `action`: when the dial ends, its outcome goes there form-encoded (`DialCallStatus`,
    /// `DialSipCallId`, …) and the document answered replaces the rest.
    pub action: Option<Webhook>,
    /// `callerId` of a dial to `<Sip>` nouns: any `[A-Za-z0-9+-_.]` string as the From user,
    /// not only a number.
    pub sip_caller_id: Option<String>,
    /// `hangupOnStar`: the caller's `*` hangs up the bridged callee, and the document goes on.
    pub hangup_on_star: bool,
    /// Each noun's `statusCallback`, in noun order (`<Sip>` forks; the one `<Number>`).
    pub status: Vec<Option<StatusCallback>>,
    /// `<Number method>`: how the `url` document (the phone endpoint's `onAnswer`) is asked.
    pub number_method: crate::ncco::common::HttpMethod,
    /// `<Dial record>`: the dial's conversation is recorded.
    pub record: Option<DialRecord>,
    /// `answerOnBridge="false"`: an unanswered caller is answered before the dial rings
    /// (without it, voxbridge answers the caller once the callee is bridged, with early media
    /// until then: `answerOnBridge="true"`).
    pub answer_first: bool,
}

/// `<Dial record recordingStatusCallback>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialRecord {
    /// `record-from-ringing*` (else from the answer).
    pub from_ringing: bool,
    /// `*-dual`: the caller and the callee on a channel each.
    pub dual: bool,
    pub status: Option<Webhook>,
}

/// A noun's `statusCallback`, `statusCallbackMethod` and `statusCallbackEvent`: where its
/// leg's own status callbacks go, and for which events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusCallback {
    pub webhook: Webhook,
    /// `initiated ringing answered completed` names; Twilio's default is `completed` alone.
    pub events: Vec<String>,
}

impl Connect {
    pub const DEFAULT_TIMEOUT: u32 = 60;
    pub const TIMEOUT: std::ops::RangeInclusive<u32> = 3..=7200;
    pub const MAX_LIMIT: u32 = 7200;
    /// Most `sip` endpoints one `connect` rings in parallel.
    pub const MAX_PARALLEL: usize = 10;

    pub(crate) fn parse(f: &mut Fields) -> Option<Connect> {
        let at = f.pointer("endpoint");
        let values = f.req("endpoint", Self::endpoint_array).map(Vec::as_slice).unwrap_or_default();
        let mut parsed = Vec::with_capacity(values.len());
        for (i, value) in values.iter().enumerate() {
            parsed.push(Endpoint::parse_in(value, format!("{at}/{i}"), f.problems()));
        }
        let mut parsed = parsed.into_iter();
        let endpoint = parsed.next().flatten();
        let mut forks = Vec::new();
        let mut mixed = !matches!(endpoint, Some(Endpoint::Sip(_)) | None);
        for e in parsed.flatten() {
            match e {
                Endpoint::Sip(sip) => forks.push(sip),
                _ => mixed = true,
            }
        }
        if mixed && values.len() > 1 {
            f.report("endpoint", "several endpoints ring in parallel only when every one is of type sip");
        }
        let from = f.opt("from", fields::e164);
        let random_from_number = f.bool_or("randomFromNumber", false);
        if random_from_number {
            f.exclusive("from", "randomFromNumber");
        }
        let synchronous = f.opt("eventType", fields::one_of(&[("synchronous", true)])).unwrap_or(false);
        Some(Connect {
            from,
            random_from_number,
            synchronous,
            timeout: f.uint_or("timeout", Self::TIMEOUT, Self::DEFAULT_TIMEOUT),
            limit: f.uint_or("limit", 1..=Self::MAX_LIMIT, Self::MAX_LIMIT),
            machine_detection: f.opt("machineDetection", fields::one_of(&MachineDetection::CHOICES)),
            advanced_machine_detection: AdvancedMachineDetection::optional(f),
            event: Webhook::optional(f),
            ringback_tone: f.opt("ringbackTone", fields::url(HTTP)),
            endpoint: endpoint?,
            forks,
            twiml: None,
        })
    }

    fn endpoint_array(v: &serde_json::Value) -> Result<&Vec<serde_json::Value>, String> {
        match v.as_array() {
            Some(a) if (1..=Self::MAX_PARALLEL).contains(&a.len()) => Ok(a),
            _ => Err(format!("must be an array of 1 to {} endpoints", Self::MAX_PARALLEL)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ncco::common::AmdMode;
    use crate::ncco::endpoint::{Phone, SipTarget, SipTransport};
    use crate::ncco::test_support::{only_action, problem_names};
    use crate::ncco::{Action, Ncco};

    fn connect(json: &str) -> Connect {
        match only_action(json) {
            Action::Connect(c) => c,
            other => panic!("expected connect, got {other:?}"),
        }
    }

    #[test]
    fn minimal_phone() {
        let c = connect(r#"[{"action":"connect","endpoint":[{"type":"phone","number":"447700900000"}]}]"#);
        let Endpoint::Phone(Phone { number, .. }) = &c.endpoint else { panic!("expected phone, got {:?}", c.endpoint) };
        assert_eq!(number.as_str(), "447700900000");
        assert_eq!((c.from, c.random_from_number, c.synchronous), (None, false, false));
        assert_eq!((c.timeout, c.limit, c.machine_detection, c.event, c.ringback_tone), (60, 7200, None, None, None));
    }

    #[test]
    fn full() {
        let c = connect(
            r#"[{"action":"connect","from":"+447700900000","eventType":"synchronous","timeout":45,"limit":600,
                "machineDetection":"hangup",
                "advanced_machine_detection":{"behavior":"continue","mode":"detect_beep","beep_timeout":45},
                "eventUrl":["https://example.com/events"],"eventMethod":"GET",
                "ringbackTone":"https://example.com/ringback.mp3",
                "endpoint":[{"type":"app","user":"jamie"}]}]"#,
        );
        assert_eq!(c.from.as_ref().map(E164::as_str), Some("447700900000"));
        assert!(c.synchronous);
        assert_eq!((c.timeout, c.limit, c.machine_detection), (45, 600, Some(MachineDetection::Hangup)));
        assert_eq!(c.advanced_machine_detection.map(|a| a.mode), Some(AmdMode::DetectBeep));
        assert!(c.event.is_some() && c.ringback_tone.is_some());
    }

    #[test]
    fn vonage_sip_example_with_headers_and_uui() {
        let c = connect(
            r#"[{"action":"connect","from":"447700900000","endpoint":[{"type":"sip","uri":"sip:rebekka@sip.example.com",
                "headers":{"location":"New York City","occupation":"developer"},
                "standardHeaders":{"User-to-User":"342342ef34;encoding=hex"}}]}]"#,
        );
        let Endpoint::Sip(sip) = &c.endpoint else { panic!("expected sip, got {:?}", c.endpoint) };
        let SipTarget::Uri(uri) = &sip.target else { panic!("expected a uri target") };
        assert_eq!(
            (uri.user.as_deref(), uri.host.as_str(), uri.transport),
            (Some("rebekka"), "sip.example.com", None::<SipTransport>)
        );
        assert_eq!(
            sip.sip_headers(),
            [
                ("X-location".to_owned(), "New York City".to_owned()),
                ("X-occupation".to_owned(), "developer".to_owned()),
                ("User-to-User".to_owned(), "342342ef34;encoding=hex".to_owned()),
            ]
        );
    }

    #[test]
    fn vonage_websocket_example() {
        let ncco = Ncco::parse_str(
            r#"[{"action":"talk","text":"Please wait while we connect you"},
                {"action":"connect","eventType":"synchronous","eventUrl":["https://example.com/events"],
                "from":"447700900000","endpoint":[{"type":"websocket","uri":"wss://example.com/socket",
                "content-type":"audio/l16;rate=16000","headers":{"language":"en-GB","caller-id":"447700900000"}}]}]"#,
        );
        let Ok(Ncco(actions)) = ncco else { panic!("expected a valid NCCO, got {ncco:?}") };
        let [Action::Talk(_), Action::Connect(c)] = actions.as_slice() else { panic!("expected talk, connect") };
        let Endpoint::Websocket(ws) = &c.endpoint else { panic!("expected websocket, got {:?}", c.endpoint) };
        assert_eq!((ws.uri.as_str(), ws.sample_rate), ("wss://example.com/socket", 16000));
        assert_eq!(ws.headers.get("language"), Some(&serde_json::Value::from("en-GB")));
        assert!(c.synchronous);
    }

    #[test]
    fn several_sip_endpoints_ring_in_parallel() {
        let c = connect(
            r#"[{"action":"connect","endpoint":[{"type":"sip","uri":"sip:a@one.example"},
                {"type":"sip","uri":"sip:b@two.example"},{"type":"sip","uri":"sip:c@three.example"}]}]"#,
        );
        assert!(matches!(c.endpoint, Endpoint::Sip(_)));
        let hosts: Vec<_> = c
            .forks
            .iter()
            .filter_map(|s| match &s.target {
                SipTarget::Uri(u) => Some(u.host.clone()),
                SipTarget::Domain { .. } => None,
            })
            .collect();
        assert_eq!(hosts, ["two.example", "three.example"]);
        let eleven = format!(
            r#"[{{"action":"connect","endpoint":[{}]}}]"#,
            [r#"{"type":"sip","uri":"sip:a@x.example"}"#; 11].join(",")
        );
        assert_eq!(problem_names(&eleven), ["/0/endpoint"]);
        assert_eq!(
            problem_names(
                r#"[{"action":"connect","endpoint":[{"type":"sip","uri":"sip:a@x.example"},{"type":"phone","number":"447700900000"}]}]"#
            ),
            ["/0/endpoint"]
        );
        assert_eq!(
            problem_names(
                r#"[{"action":"connect","endpoint":[{"type":"sip","uri":"sip:a@x.example"},{"type":"sip"}]}]"#
            ),
            ["/0/endpoint/1/uri"]
        );
    }

    #[test]
    fn invalid() {
        assert_eq!(problem_names(r#"[{"action":"connect"}]"#), ["/0/endpoint"]);
        assert_eq!(problem_names(r#"[{"action":"connect","endpoint":[]}]"#), ["/0/endpoint"]);
        assert_eq!(
            problem_names(r#"[{"action":"connect","endpoint":[{"type":"app","user":"a"},{"type":"app","user":"b"}]}]"#),
            ["/0/endpoint"]
        );
        assert_eq!(
            problem_names(
                r#"[{"action":"connect","endpoint":[{"type":"fax"}],"from":"12ab","randomFromNumber":"yes",
                    "eventType":"async","timeout":2,"limit":7201,"machineDetection":"beep","advanced_machine_detection":1,
                    "eventUrl":["https://a.example","https://b.example"],"eventMethod":"PUT","ringbackTone":["https://x.example/r.mp3"]}]"#
            ),
            [
                "/0/endpoint/0/type",
                "/0/from",
                "/0/randomFromNumber",
                "/0/eventType",
                "/0/timeout",
                "/0/limit",
                "/0/machineDetection",
                "/0/advanced_machine_detection",
                "/0/eventUrl",
                "/0/eventMethod",
                "/0/ringbackTone",
            ]
        );
        assert_eq!(
            problem_names(
                r#"[{"action":"connect","from":"447700900000","randomFromNumber":true,"endpoint":[{"type":"app","user":"a"}]}]"#
            ),
            ["/0/randomFromNumber"]
        );
    }
}
