//! Call events as Vonage's event webhook carries them (`status`, `direction`, `timestamp`, …),
//! and how a final SIP failure maps onto a Vonage call status and `detail`. Pure builders: the
//! caller passes timestamps in (ISO-8601 with milliseconds, UTC) and sends the JSON.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A leg's `status` in the event webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CallStatus {
    Started,
    Ringing,
    Answered,
    Completed,
    Busy,
    Cancelled,
    Failed,
    Rejected,
    Timeout,
    Unanswered,
    /// A WebSocket leg whose server closed the socket (sent before its `completed`).
    Disconnected,
}

impl CallStatus {
    /// Every status, in the order a call can go through them.
    pub const ALL: [CallStatus; 11] = [
        CallStatus::Started,
        CallStatus::Ringing,
        CallStatus::Answered,
        CallStatus::Completed,
        CallStatus::Busy,
        CallStatus::Cancelled,
        CallStatus::Failed,
        CallStatus::Rejected,
        CallStatus::Timeout,
        CallStatus::Unanswered,
        CallStatus::Disconnected,
    ];

    /// The status as it is written on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            CallStatus::Started => "started",
            CallStatus::Ringing => "ringing",
            CallStatus::Answered => "answered",
            CallStatus::Completed => "completed",
            CallStatus::Busy => "busy",
            CallStatus::Cancelled => "cancelled",
            CallStatus::Failed => "failed",
            CallStatus::Rejected => "rejected",
            CallStatus::Timeout => "timeout",
            CallStatus::Unanswered => "unanswered",
            CallStatus::Disconnected => "disconnected",
        }
    }

    /// True for the statuses after which a leg sends no further status event.
    pub fn is_terminal(self) -> bool {
        !matches!(self, CallStatus::Started | CallStatus::Ringing | CallStatus::Answered | CallStatus::Disconnected)
    }
}

impl fmt::Display for CallStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CallStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CallStatus::ALL.into_iter().find(|c| c.as_str() == s).ok_or_else(|| format!("unknown call status '{s}'"))
    }
}

/// Whether the leg was placed to voxbridge (`inbound`) or by it (`outbound`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Inbound,
    Outbound,
}

impl Direction {
    /// The direction as it is written on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One call-status event, serialised with Vonage's field names; absent fields are omitted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallEvent {
    pub uuid: String,
    pub conversation_uuid: String,
    pub status: CallStatus,
    pub direction: Direction,
    pub from: String,
    pub to: String,
    /// ISO-8601, milliseconds, UTC (`2026-01-02T03:04:05.678Z`).
    pub timestamp: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<String>,
    /// Whole seconds, as a string (Vonage sends `"12"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    /// `declined`, `invalid_number`, `unavailable`, `cannot_route`, `internal_error`, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The SIP-level result of the leg.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sip_code: Option<u16>,
    /// `user` or `platform`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disconnected_by: Option<String>,
    /// The leg's media quality, on its final event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<crate::quality::Quality>,
}

impl CallEvent {
    /// An event with the common fields only.
    pub fn new(
        uuid: impl Into<String>,
        conversation_uuid: impl Into<String>,
        status: CallStatus,
        direction: Direction,
        from: impl Into<String>,
        to: impl Into<String>,
        timestamp: impl Into<String>,
    ) -> Self {
        CallEvent {
            uuid: uuid.into(),
            conversation_uuid: conversation_uuid.into(),
            status,
            direction,
            from: from.into(),
            to: to.into(),
            timestamp: timestamp.into(),
            start_time: None,
            end_time: None,
            duration: None,
            detail: None,
            reason: None,
            sip_code: None,
            disconnected_by: None,
            quality: None,
        }
    }

    /// The `completed` event of an answered leg: start and end time, duration in whole seconds
    /// (computed by the caller, who owns the clock), who hung up and the SIP result.
    pub fn completed(
        base: CallEvent,
        start_time: impl Into<String>,
        end_time: impl Into<String>,
        duration_secs: u64,
        disconnected_by: impl Into<String>,
        sip_code: Option<u16>,
    ) -> Self {
        CallEvent {
            status: CallStatus::Completed,
            start_time: Some(start_time.into()),
            end_time: Some(end_time.into()),
            duration: Some(duration_secs.to_string()),
            disconnected_by: Some(disconnected_by.into()),
            sip_code,
            ..base
        }
    }

    /// The event of a leg that ended on a final SIP failure `code`, with the status and detail
    /// of [`status_for_sip_failure`].
    pub fn sip_failure(base: CallEvent, code: u16) -> Self {
        let (status, detail) = status_for_sip_failure(code);
        CallEvent { status, detail: detail.map(str::to_owned), sip_code: Some(code), ..base }
    }

    /// The event as a JSON value, ready to send.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

/// The result of an `input` action as Vonage posts it to the action's `eventUrl`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputEvent {
    pub uuid: String,
    pub conversation_uuid: String,
    pub from: String,
    pub to: String,
    pub dtmf: DtmfResult,
    /// Present when the input asked for speech.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speech: Option<SpeechResult>,
    pub timestamp: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DtmfResult {
    pub digits: String,
    pub timed_out: bool,
}

/// Vonage's `speech` result: the recogniser's transcript (`results`), why listening ended
/// (`timeout_reason`), or the `error` (with no recognition engine: that one, never a
/// transcript).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpeechResult {
    pub results: Vec<Transcript>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_reason: Option<String>,
}

/// One of a speech result's `results`: the words and, when the engine gave one, its
/// confidence as Vonage writes it (a decimal string).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transcript {
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<String>,
}

impl SpeechResult {
    /// A result that says what went wrong.
    pub fn failed(error: impl Into<String>) -> SpeechResult {
        SpeechResult { results: Vec::new(), error: Some(error.into()), timeout_reason: None }
    }

    /// What the media process's recogniser reported: a non-empty `text` is the one result.
    pub fn recognised(
        timeout_reason: String,
        text: Option<String>,
        confidence: Option<f64>,
        error: Option<String>,
    ) -> SpeechResult {
        let results = text
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
            .map(|text| Transcript { text, confidence: confidence.map(|c| format!("{c}")) })
            .into_iter()
            .collect();
        SpeechResult { results, error, timeout_reason: Some(timeout_reason) }
    }
}

/// Why an input's speech part has no result: this server has no speech recogniser configured.
pub const NO_SPEECH_ENGINE: &str =
    "no speech recognition engine is configured on this server (set VOXBRIDGE_ASR_URL on the media process)";

/// A finished recording (`record` action), as Vonage posts it to the action's `eventUrl`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordEvent {
    pub recording_url: String,
    pub recording_uuid: String,
    pub uuid: String,
    pub conversation_uuid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    pub end_time: String,
    /// Bytes in the file.
    pub size: u64,
    pub timestamp: String,
}

/// A `talk` or `stream` that could not play (no voice, a bad URL or file): the NCCO went on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlayFailedEvent {
    pub uuid: String,
    pub conversation_uuid: String,
    pub status: &'static str,
    pub reason: String,
    pub timestamp: String,
}

/// A leg moved to another conversation (a Voice API transfer), as Vonage posts it to the
/// event_url.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferEvent {
    pub conversation_uuid_from: String,
    pub conversation_uuid_to: String,
    pub uuid: String,
    pub timestamp: String,
}

/// Maps a final SIP failure response to Vonage's call status and `detail`:
/// 486/600 busy; 603 rejected (declined); 404/484/604 rejected (invalid_number); 408 timeout;
/// 480 unanswered (unavailable); 487 cancelled; any other 4xx or 6xx failed (cannot_route);
/// 5xx and anything that is not a failure code failed (internal_error).
/// The Voice API's endpoint type of a leg's party as events and records name it (`from`,
/// `to`): an E.164 number is a `phone`, a `ws://`/`wss://` URI a `websocket`, anything else
/// (a SIP URI or user) `sip`.
pub fn party_type(party: &str) -> &'static str {
    let digits = party.strip_prefix('+').unwrap_or(party);
    if party.starts_with("ws://") || party.starts_with("wss://") {
        "websocket"
    } else if !digits.is_empty() && digits.len() <= 15 && digits.bytes().all(|b| b.is_ascii_digit()) {
        "phone"
    } else {
        "sip"
    }
}

pub fn status_for_sip_failure(code: u16) -> (CallStatus, Option<&'static str>) {
    match code {
        486 | 600 => (CallStatus::Busy, None),
        603 => (CallStatus::Rejected, Some("declined")),
        404 | 484 | 604 => (CallStatus::Rejected, Some("invalid_number")),
        408 => (CallStatus::Timeout, None),
        480 => (CallStatus::Unanswered, Some("unavailable")),
        487 => (CallStatus::Cancelled, None),
        400..=499 | 600..=699 => (CallStatus::Failed, Some("cannot_route")),
        _ => (CallStatus::Failed, Some("internal_error")),
    }
}

/// True when a JSON event's `status` is a terminal call status (the last event of a leg).
pub fn is_terminal_event(event: &serde_json::Value) -> bool {
    event
        .get("status")
        .and_then(|s| s.as_str())
        .and_then(|s| s.parse::<CallStatus>().ok())
        .is_some_and(|s| s.is_terminal())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn base(status: CallStatus) -> CallEvent {
        CallEvent::new(
            "aaaaaaaa-bbbb-cccc-dddd-0123456789ab",
            "CON-aaaaaaaa-bbbb-cccc-dddd-0123456789ab",
            status,
            Direction::Inbound,
            "447700900000",
            "447700900001",
            "2026-01-02T03:04:05.678Z",
        )
    }

    #[test]
    fn party_types() {
        for (party, kind) in [
            ("447700900000", "phone"),
            ("+14155550100", "phone"),
            ("wss://bot.example/a", "websocket"),
            ("ws://127.0.0.1:9/", "websocket"),
            ("alice", "sip"),
            ("sip:bob@example.com", "sip"),
            ("", "sip"),
            ("1234567890123456", "sip"),
        ] {
            assert_eq!(party_type(party), kind, "{party}");
        }
    }

    #[test]
    fn ringing_has_only_common_fields() {
        assert_eq!(
            base(CallStatus::Ringing).to_json(),
            json!({
                "uuid": "aaaaaaaa-bbbb-cccc-dddd-0123456789ab",
                "conversation_uuid": "CON-aaaaaaaa-bbbb-cccc-dddd-0123456789ab",
                "status": "ringing",
                "direction": "inbound",
                "from": "447700900000",
                "to": "447700900001",
                "timestamp": "2026-01-02T03:04:05.678Z"
            })
        );
    }

    #[test]
    fn completed_carries_times_duration_and_sip_code() {
        let e = CallEvent::completed(
            base(CallStatus::Answered),
            "2026-01-02T03:03:00.000Z",
            "2026-01-02T03:04:05.678Z",
            65,
            "user",
            Some(200),
        );
        let v = e.to_json();
        assert_eq!(v["status"], "completed");
        assert_eq!(v["start_time"], "2026-01-02T03:03:00.000Z");
        assert_eq!(v["end_time"], "2026-01-02T03:04:05.678Z");
        assert_eq!(v["duration"], "65");
        assert_eq!(v["disconnected_by"], "user");
        assert_eq!(v["sip_code"], 200);
        assert!(v.get("detail").is_none());
        assert!(v.get("reason").is_none());
    }

    #[test]
    fn outbound_direction_and_round_trip() {
        let mut e = base(CallStatus::Failed);
        e.direction = Direction::Outbound;
        e.reason = Some("no media".into());
        let v = e.to_json();
        assert_eq!(v["direction"], "outbound");
        assert_eq!(Direction::Outbound.as_str(), "outbound");
        assert_eq!(Direction::Inbound.to_string(), "inbound");
        assert_eq!(v["reason"], "no media");
        let back: CallEvent = serde_json::from_value(v).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn sip_failures_map_to_vonage_statuses() {
        let cases: [(u16, CallStatus, Option<&str>); 16] = [
            (486, CallStatus::Busy, None),
            (600, CallStatus::Busy, None),
            (603, CallStatus::Rejected, Some("declined")),
            (404, CallStatus::Rejected, Some("invalid_number")),
            (484, CallStatus::Rejected, Some("invalid_number")),
            (604, CallStatus::Rejected, Some("invalid_number")),
            (408, CallStatus::Timeout, None),
            (480, CallStatus::Unanswered, Some("unavailable")),
            (487, CallStatus::Cancelled, None),
            (403, CallStatus::Failed, Some("cannot_route")),
            (488, CallStatus::Failed, Some("cannot_route")),
            (606, CallStatus::Failed, Some("cannot_route")),
            (500, CallStatus::Failed, Some("internal_error")),
            (503, CallStatus::Failed, Some("internal_error")),
            (200, CallStatus::Failed, Some("internal_error")),
            (0, CallStatus::Failed, Some("internal_error")),
        ];
        for (code, status, detail) in cases {
            assert_eq!(status_for_sip_failure(code), (status, detail), "SIP {code}");
        }
    }

    #[test]
    fn sip_failure_event_has_status_detail_and_code() {
        let v = CallEvent::sip_failure(base(CallStatus::Ringing), 603).to_json();
        assert_eq!(v["status"], "rejected");
        assert_eq!(v["detail"], "declined");
        assert_eq!(v["sip_code"], 603);
        let v = CallEvent::sip_failure(base(CallStatus::Ringing), 486).to_json();
        assert_eq!(v["status"], "busy");
        assert!(v.get("detail").is_none());
    }

    #[test]
    fn terminal_statuses() {
        let terminal: Vec<_> = CallStatus::ALL.into_iter().filter(|s| s.is_terminal()).map(|s| s.as_str()).collect();
        assert_eq!(terminal, ["completed", "busy", "cancelled", "failed", "rejected", "timeout", "unanswered"]);
        assert!(is_terminal_event(&json!({"status": "completed"})));
        assert!(!is_terminal_event(&json!({"status": "answered"})));
        assert!(!is_terminal_event(&json!({"status": "input"})));
        assert!(!is_terminal_event(&json!({"dtmf": "1"})));
    }

    #[test]
    fn status_wire_names_round_trip() {
        for s in CallStatus::ALL {
            assert_eq!(serde_json::to_value(s).unwrap(), json!(s.as_str()));
            assert_eq!(s.as_str().parse::<CallStatus>(), Ok(s));
            assert_eq!(s.to_string(), s.as_str());
        }
        assert!("dancing".parse::<CallStatus>().is_err());
        assert!(!is_terminal_event(&json!({"status": "disconnected"})), "a WebSocket leg completes after it");
    }
}
