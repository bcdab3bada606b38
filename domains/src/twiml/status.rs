//! Status callbacks as Twilio and SignalWire send them: a call event becomes the form of
//! `StatusCallback` requests (`CallSid`, `CallStatus` in Twilio's words, `CallbackSource`,
//! `SequenceNumber`, `Timestamp` in RFC 2822), and the final one carries the call's duration,
//! its SIP result and the quality fields of SignalWire's payload (`AudioInMos`,
//! `AudioInJitterMinVariance`/`MaxVariance`, packet counts) from the media statistics.

use crate::events::{CallEvent, CallStatus, Direction};

/// The `StatusCallbackEvent` names: which statuses a callback subscribes to.
pub const EVENTS: [&str; 4] = ["initiated", "ringing", "answered", "completed"];

/// The `StatusCallbackEvent` an event belongs to, and Twilio's `CallStatus` for it; `None`
/// for the statuses Twilio does not report (`disconnected`).
pub fn twilio_status(status: CallStatus) -> Option<(&'static str, &'static str)> {
    Some(match status {
        CallStatus::Started => ("initiated", "initiated"),
        CallStatus::Ringing => ("ringing", "ringing"),
        CallStatus::Answered => ("answered", "in-progress"),
        CallStatus::Completed => ("completed", "completed"),
        CallStatus::Busy => ("completed", "busy"),
        CallStatus::Cancelled => ("completed", "canceled"),
        CallStatus::Failed | CallStatus::Rejected => ("completed", "failed"),
        CallStatus::Timeout | CallStatus::Unanswered => ("completed", "no-answer"),
        CallStatus::Disconnected => return None,
    })
}

/// The form of the status callback for `event`, the `sequence`th of its call (from 0);
/// `parent` is the parent call's `CallSid` when the event is a `<Dial>` child leg's.
pub fn callback(event: &CallEvent, sequence: u64, parent: Option<&str>) -> Option<Vec<(String, String)>> {
    let (_, status) = twilio_status(event.status)?;
    let direction = match (event.direction, parent) {
        (Direction::Inbound, _) => "inbound",
        (Direction::Outbound, Some(_)) => "outbound-dial",
        (Direction::Outbound, None) => "outbound-api",
    };
    let timestamp = chrono::DateTime::parse_from_rfc3339(&event.timestamp)
        .map(|t| t.to_rfc2822())
        .unwrap_or_else(|_| event.timestamp.clone());
    let mut form: Vec<(String, String)> = [
        ("CallSid", super::sid::of(super::sid::CALL, &event.uuid)),
        ("CallStatus", status.to_owned()),
        ("Direction", direction.to_owned()),
        ("From", event.from.clone()),
        ("To", event.to.clone()),
        ("ApiVersion", super::API_VERSION.to_owned()),
        ("CallbackSource", "call-progress-events".to_owned()),
        ("SequenceNumber", sequence.to_string()),
        ("Timestamp", timestamp),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let mut add = |k: &str, v: String| form.push((k.to_owned(), v));
    if let Some(parent) = parent {
        add("ParentCallSid", super::sid::of(super::sid::CALL, parent));
    }
    if let Some(d) = &event.duration {
        add("CallDuration", d.clone());
        add("Duration", d.clone());
    }
    if let Some(code) = event.sip_code {
        add("SipResponseCode", code.to_string());
    }
    if let Some(q) = &event.quality {
        add("AudioInMos", format!("{:.2}", q.mos));
        add("AudioInJitterMinVariance", format!("{:.3}", q.jitter_ms));
        add("AudioInJitterMaxVariance", format!("{:.3}", q.jitter_max_ms));
        add("AudioInMediaPacketCount", q.packets_received.to_string());
        add("AudioOutMediaPacketCount", q.packets_sent.to_string());
        add("AudioInDtmfPacketCount", q.dtmf_packets.to_string());
        add("AudioInPacketsLost", q.packets_lost.to_string());
    }
    Some(form)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_completed_event_carries_duration_sip_code_and_quality() {
        let mut e = CallEvent::new(
            "CA-1",
            "CON-1",
            CallStatus::Completed,
            Direction::Inbound,
            "+14155550199",
            "+14155550100",
            "2026-12-03T13:00:05.250Z",
        );
        e.duration = Some("12".into());
        e.sip_code = Some(200);
        e.quality = Some(crate::quality::Quality {
            packets_received: 600,
            packets_sent: 598,
            mos: 4.41,
            jitter_ms: 1.5,
            jitter_max_ms: 4.25,
            dtmf_packets: 9,
            ..Default::default()
        });
        let form = callback(&e, 3, None).unwrap();
        let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("CallStatus"), Some("completed"));
        assert_eq!(get("SequenceNumber"), Some("3"));
        assert_eq!(get("Timestamp"), Some("Thu, 3 Dec 2026 13:00:05 +0000"));
        assert_eq!((get("CallDuration"), get("SipResponseCode")), (Some("12"), Some("200")));
        assert_eq!((get("AudioInMos"), get("AudioInMediaPacketCount")), (Some("4.41"), Some("600")));
        assert_eq!((get("AudioInJitterMaxVariance"), get("AudioInDtmfPacketCount")), (Some("4.250"), Some("9")));
    }

    #[test]
    fn statuses_in_twilio_words() {
        assert_eq!(twilio_status(CallStatus::Answered), Some(("answered", "in-progress")));
        assert_eq!(twilio_status(CallStatus::Timeout), Some(("completed", "no-answer")));
        assert_eq!(twilio_status(CallStatus::Busy), Some(("completed", "busy")));
        assert_eq!(twilio_status(CallStatus::Disconnected), None);
    }
}
