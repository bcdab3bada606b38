//! The media-control protocol between the control plane and a media process: JSON text
//! messages over one WebSocket per media node. Commands carry an `id` that the reply echoes;
//! events are pushed. Both sides compile against these types, so they cannot drift apart.
//!
//! ```text
//! → {"id":1,"type":"hello","protocol":1}
//! ← {"kind":"reply","id":1,"status":"ok","reply":"welcome","protocol":1,"version":"0.1.0"}
//! → {"id":2,"type":"create_endpoint","call_uuid":"…","remote_sdp":"v=0…","prefer":["PCMU"]}
//! ← {"kind":"reply","id":2,"status":"ok","reply":"endpoint","endpoint_id":"…","local_sdp":"v=0…","codec":"PCMU"}
//! → {"id":3,"type":"bridge","a":"…","b":"…"}
//! ← {"kind":"reply","id":3,"status":"error","code":"not_found","message":"…"}
//! ← {"kind":"event","event":"rtp_timeout","endpoint_id":"…","call_uuid":"…"}
//! ```

use serde::{Deserialize, Serialize};

/// Bumped on any incompatible change; `hello` refuses a mismatch.
pub const PROTOCOL_VERSION: u32 = 1;

/// A command sent to the media process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub id: u64,
    #[serde(flatten)]
    pub command: Command,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Command {
    /// First message on a connection: protocol negotiation.
    Hello {
        protocol: u32,
    },
    /// Liveness check.
    Ping,
    /// A new RTP endpoint for one call leg. With `remote_sdp` (an offer) the reply carries our
    /// answer; without, our offer, to be completed later by `update_endpoint` with the answer.
    /// `prefer` names codecs ("PCMU", "PCMA") to choose or offer first.
    CreateEndpoint {
        call_uuid: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        remote_sdp: Option<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        prefer: Vec<String>,
        /// SRTP (SDES): `always` offers `RTP/SAVP` and refuses plain offers, `never` refuses
        /// secure ones, `optional` answers either and offers plain RTP.
        #[serde(default, skip_serializing_if = "is_optional")]
        srtp: crate::srtp::SrtpPolicy,
    },
    /// The remote answer to our offer, or a new remote offer (re-INVITE, e.g. hold). The reply
    /// carries our current SDP: unchanged after an answer, our new answer after an offer.
    UpdateEndpoint {
        endpoint_id: String,
        remote_sdp: String,
    },
    /// Relay RTP between two endpoints, both directions.
    Bridge {
        a: String,
        b: String,
    },
    /// Stop relaying between two bridged endpoints.
    Unbridge {
        a: String,
        b: String,
    },
    /// Release an endpoint and its port. An unknown id is not an error.
    DestroyEndpoint {
        endpoint_id: String,
    },
    /// Packet counters of one endpoint.
    EndpointStats {
        endpoint_id: String,
    },
    /// A new offer for an established endpoint with another direction (hold, resume) and a
    /// higher `o=` version than any description it sent before (RFC 3264 §8). The reply is
    /// `updated` with the offer; the answer comes back with `update_endpoint`.
    Reoffer {
        endpoint_id: String,
        direction: crate::sdp::Direction,
    },
    /// Plays speech or a recording to an endpoint; `playback_done` follows.
    Play {
        endpoint_id: String,
        play_id: String,
        source: PlaySource,
        /// Times to play; 0 = until stopped.
        loop_count: u32,
        /// -1.0 to 1.0.
        level: f64,
    },
    /// Stops what is playing on an endpoint.
    StopPlay {
        endpoint_id: String,
    },
    /// Starts recording an endpoint (both directions); `record_done` follows.
    RecordStart {
        endpoint_id: String,
        record_id: String,
        /// Where the file goes, relative to the media process's recordings directory (plain
        /// names joined by `/`: no `..`, nothing absolute).
        path: String,
        /// `mp3` or `wav`.
        format: String,
        /// One channel per party instead of a mono mix: the far end, then whom it hears (the
        /// bridged leg, or each conference member).
        #[serde(default)]
        split: bool,
        /// Channels of a `split` recording, 1–32 (0: two); parties beyond the last share it.
        #[serde(default, skip_serializing_if = "is_zero")]
        channels: u32,
        /// Seconds of silence that end the recording; 0 = never.
        end_on_silence: u32,
        /// A DTMF key that ends the recording.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        end_on_key: Option<char>,
        /// Longest recording, seconds.
        timeout: u32,
        beep_start: bool,
    },
    RecordStop {
        endpoint_id: String,
        record_id: String,
    },
    /// Sends RFC 4733 events; `p` is a 500 ms pause.
    SendDtmf {
        endpoint_id: String,
        digits: String,
    },
    /// Streams an endpoint's audio to a WebSocket (L16) and plays what comes back; `ws_closed`
    /// follows when the socket closes or cannot be opened.
    ConnectWebsocket {
        endpoint_id: String,
        #[serde(flatten)]
        target: WebsocketTarget,
    },
    /// A WebSocket as a call's party (an outbound call to a `websocket` endpoint): the reply's
    /// endpoint is the party, on which `play`, `record_*`, `bridge` … act as on a SIP leg's;
    /// what it is sent streams to the server, what the server sends is what it receives.
    /// `ws_connected` follows the handshake, `ws_closed` its end (both naming this endpoint);
    /// destroying it closes the socket.
    CreateWebsocketEndpoint {
        call_uuid: String,
        #[serde(flatten)]
        target: WebsocketTarget,
    },
    /// Joins an endpoint to a named conference (a mixer), created on first join. Each member
    /// hears the others' mix, never itself; `conference_ended` follows for every member when a
    /// member with `end_on_exit` leaves.
    ConferenceJoin {
        endpoint_id: String,
        conference: String,
        /// The member's leg uuid, as `speaks_to` and `hears` name members.
        member: String,
        /// Who hears this member (`None`: everyone).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        speaks_to: Option<Vec<String>>,
        /// Whom this member hears (`None`: everyone).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        hears: Option<Vec<String>>,
        #[serde(default)]
        muted: bool,
        /// False: the member waits (hearing `music_on_hold`) until a member who starts it joins.
        #[serde(default = "yes")]
        start_on_enter: bool,
        #[serde(default)]
        end_on_exit: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        music_on_hold: Option<String>,
    },
    ConferenceLeave {
        endpoint_id: String,
        conference: String,
    },
    /// Mutes (nobody hears it) or unmutes an endpoint, in a conference or a bridge.
    Mute {
        endpoint_id: String,
        muted: bool,
    },
    /// Classifies what the endpoint receives as a person or an answering machine;
    /// `machine_detected` follows.
    DetectMachine {
        endpoint_id: String,
        /// After a `machine` verdict, listen this long for the greeting's beep (`beep`
        /// follows `machine` when heard).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        beep_timeout_ms: Option<u32>,
    },
    /// Earmuffs (it hears nothing) or unearmuffs an endpoint.
    Earmuff {
        endpoint_id: String,
        earmuffed: bool,
    },
    /// Listens for one utterance on an endpoint (bounded as [`crate::speech::Bounds`]) and has
    /// the speech recogniser transcribe it; `speech_done` follows, also when nobody spoke.
    /// Refused (`unsupported`) when no recogniser is configured.
    Transcribe {
        endpoint_id: String,
        transcribe_id: String,
        /// BCP 47, as the NCCO gave it.
        language: String,
        /// Words and phrases to expect.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        context: Vec<String>,
        start_timeout_ms: u64,
        end_on_silence_ms: u64,
        max_duration_ms: u64,
    },
    /// Stops listening (the input ended another way); nothing follows.
    StopTranscribe {
        endpoint_id: String,
        transcribe_id: String,
    },
}

fn yes() -> bool {
    true
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn is_optional(policy: &crate::srtp::SrtpPolicy) -> bool {
    *policy == crate::srtp::SrtpPolicy::Optional
}

impl Command {
    /// The command's `type` on the wire.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Hello { .. } => "hello",
            Command::Ping => "ping",
            Command::CreateEndpoint { .. } => "create_endpoint",
            Command::UpdateEndpoint { .. } => "update_endpoint",
            Command::Bridge { .. } => "bridge",
            Command::Unbridge { .. } => "unbridge",
            Command::DestroyEndpoint { .. } => "destroy_endpoint",
            Command::EndpointStats { .. } => "endpoint_stats",
            Command::Reoffer { .. } => "reoffer",
            Command::Play { .. } => "play",
            Command::StopPlay { .. } => "stop_play",
            Command::RecordStart { .. } => "record_start",
            Command::RecordStop { .. } => "record_stop",
            Command::SendDtmf { .. } => "send_dtmf",
            Command::ConnectWebsocket { .. } => "connect_websocket",
            Command::CreateWebsocketEndpoint { .. } => "create_websocket_endpoint",
            Command::ConferenceJoin { .. } => "conference_join",
            Command::ConferenceLeave { .. } => "conference_leave",
            Command::Mute { .. } => "mute",
            Command::Earmuff { .. } => "earmuff",
            Command::Transcribe { .. } => "transcribe",
            Command::StopTranscribe { .. } => "stop_transcribe",
            Command::DetectMachine { .. } => "detect_machine",
        }
    }
}

/// The WebSocket server a stream connects to, and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebsocketTarget {
    pub uri: String,
    /// `audio/l16;rate=8000`, `…16000` or `…24000`.
    pub content_type: String,
    /// Sent in the first (text) message, after `event` and `content-type`.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub headers: serde_json::Map<String, serde_json::Value>,
    /// The handshake's `Authorization` header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<String>,
    /// The handshake is to carry the application's signed token (`authorization: {"type":
    /// "vonage"}`): the control plane, which holds the secret, sets `authorization` so.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub signed: bool,
}

/// What `play` plays.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PlaySource {
    /// Text (or SSML) spoken by the configured TTS voice.
    Speech { text: String, language: String, style: u32 },
    /// An audio file fetched from a URL.
    Url { url: String },
    /// A tone made of these frequencies (Hz), `ms` long: a recording's start beep.
    Tone { freqs: Vec<f32>, ms: u32 },
}

/// What the media process sends back: a reply to a command, or an event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Message {
    Reply {
        id: u64,
        #[serde(flatten)]
        outcome: Outcome,
    },
    Event {
        #[serde(flatten)]
        event: Event,
    },
}

impl Message {
    pub fn ok(id: u64, result: Reply) -> Message {
        Message::Reply { id, outcome: Outcome::Ok { result } }
    }

    pub fn error(id: u64, code: ErrorCode, message: impl Into<String>) -> Message {
        Message::Reply { id, outcome: Outcome::Error { code, message: message.into() } }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    Ok {
        #[serde(flatten)]
        result: Reply,
    },
    Error {
        code: ErrorCode,
        message: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Reply {
    Welcome {
        protocol: u32,
        version: String,
    },
    Pong,
    Endpoint {
        endpoint_id: String,
        local_sdp: String,
        /// The negotiated codec; absent while our offer awaits its answer.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        codec: Option<String>,
    },
    Updated {
        local_sdp: String,
    },
    Bridged,
    Unbridged,
    /// With the endpoint's final quality (absent for an unknown id).
    Destroyed {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        quality: Option<crate::quality::Quality>,
    },
    /// `play`, `stop_play`, `record_*`, `send_dtmf`, `connect_websocket`, `conference_*` started.
    Started,
    EndpointStats {
        endpoint_id: String,
        rx_packets: u64,
        tx_packets: u64,
        rx_bytes: u64,
        tx_bytes: u64,
        quality: crate::quality::Quality,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The message was not a command this process understands, or its arguments are invalid.
    BadRequest,
    /// `hello` with another protocol version.
    ProtocolMismatch,
    /// No endpoint with the given id.
    NotFound,
    /// The SDP could not be parsed or negotiated (no common codec, no RTP/AVP audio).
    Negotiation,
    /// Ports, memory or another resource ran out.
    Exhausted,
    /// A command this media process does not implement (yet): the caller ends what needed it
    /// with a clear reason.
    Unsupported,
    Internal,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// Periodic load report, used to choose a media node.
    Stats { endpoints: u64 },
    /// No RTP arrived on the endpoint for the inactivity timeout (sent once per endpoint).
    RtpTimeout { endpoint_id: String, call_uuid: String },
    /// One DTMF digit received on an endpoint (RFC 4733 or in-band); the call core collects them.
    Dtmf { endpoint_id: String, digit: char },
    /// A `play` ended, by itself or stopped; `error` says why it could not play (a bad URL or
    /// file, no voice).
    PlaybackDone {
        endpoint_id: String,
        play_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// A recording ended and its file (at the `path` of `record_start`) is written, or `error`
    /// says why not.
    RecordDone {
        endpoint_id: String,
        record_id: String,
        size: u64,
        duration_ms: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// What answered on this endpoint: `human`, `machine` or `unknown`.
    MachineDetected { endpoint_id: String, result: String },
    /// A `transcribe` is over: why listening ended (`end_on_silence_timeout`, `max_duration`,
    /// `start_timeout`), and the recogniser's text (none when nobody spoke), or what failed.
    SpeechDone {
        endpoint_id: String,
        transcribe_id: String,
        timeout_reason: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        confidence: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// The conference this endpoint is in ended (a member with `end_on_exit` left).
    ConferenceEnded { endpoint_id: String, conference: String },
    /// A WebSocket audio stream's handshake completed and its first message was sent.
    WsConnected { endpoint_id: String },
    /// A WebSocket audio stream closed: by the server, or `reason` says what failed.
    WsClosed {
        endpoint_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
}

/// The media process's answer to a request that needs no media state (`hello`, `ping`),
/// decided without I/O; `None` for commands the media engine must handle.
pub fn answer(request: &Request, version: &str) -> Option<Message> {
    let outcome = match &request.command {
        Command::Hello { protocol } if *protocol == PROTOCOL_VERSION => {
            Outcome::Ok { result: Reply::Welcome { protocol: PROTOCOL_VERSION, version: version.to_owned() } }
        }
        Command::Hello { protocol } => Outcome::Error {
            code: ErrorCode::ProtocolMismatch,
            message: format!("this media process speaks protocol {PROTOCOL_VERSION}, not {protocol}"),
        },
        Command::Ping => Outcome::Ok { result: Reply::Pong },
        _ => return None,
    };
    Some(Message::Reply { id: request.id, outcome })
}

/// The `bad_request` reply to a text that is not a valid [`Request`]. It echoes the text's `id`
/// when one can be read, so the waiting caller gets the error instead of a timeout.
pub fn malformed(text: &str, error: &serde_json::Error) -> Message {
    let id = serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| v.get("id").and_then(serde_json::Value::as_u64))
        .unwrap_or(0);
    Message::error(id, ErrorCode::BadRequest, error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn wire_shape() {
        let req: Request = serde_json::from_str(r#"{"id":7,"type":"hello","protocol":1}"#).unwrap();
        assert_eq!(req.command, Command::Hello { protocol: 1 });
        let msg = serde_json::to_value(answer(&req, "0.1.0")).unwrap();
        assert_eq!(msg, json!({"kind":"reply","id":7,"status":"ok","reply":"welcome","protocol":1,"version":"0.1.0"}));
        let bad = answer(&Request { id: 8, command: Command::Hello { protocol: 99 } }, "x");
        assert!(matches!(
            bad,
            Some(Message::Reply { id: 8, outcome: Outcome::Error { code: ErrorCode::ProtocolMismatch, .. } })
        ));
    }

    #[test]
    fn endpoint_commands_and_replies() {
        let req: Request = serde_json::from_value(
            json!({"id":2,"type":"create_endpoint","call_uuid":"c1","prefer":["PCMU"],"srtp":"always"}),
        )
        .unwrap();
        assert_eq!(
            req.command,
            Command::CreateEndpoint {
                call_uuid: "c1".into(),
                remote_sdp: None,
                prefer: vec!["PCMU".into()],
                srtp: crate::srtp::SrtpPolicy::Always,
            }
        );
        assert_eq!(answer(&req, "x"), None);
        let reply = Message::ok(
            2,
            Reply::Endpoint { endpoint_id: "e1".into(), local_sdp: "v=0".into(), codec: Some("PCMU".into()) },
        );
        assert_eq!(
            serde_json::to_value(&reply).unwrap(),
            json!({"kind":"reply","id":2,"status":"ok","reply":"endpoint","endpoint_id":"e1","local_sdp":"v=0","codec":"PCMU"})
        );
        let event = Message::Event { event: Event::RtpTimeout { endpoint_id: "e1".into(), call_uuid: "c1".into() } };
        let text = serde_json::to_string(&event).unwrap();
        assert_eq!(serde_json::from_str::<Message>(&text).unwrap(), event);
        let stats: Request = serde_json::from_str(r#"{"id":3,"type":"endpoint_stats","endpoint_id":"e1"}"#).unwrap();
        assert_eq!(stats.command, Command::EndpointStats { endpoint_id: "e1".into() });
    }

    #[test]
    fn websocket_targets_are_flat_in_their_commands() {
        let text = json!({"id": 4, "type": "create_websocket_endpoint", "call_uuid": "c1", "uri": "wss://a/b",
            "content_type": "audio/l16;rate=16000", "headers": {"k": "v"}});
        let req: Request = serde_json::from_value(text.clone()).unwrap();
        let Command::CreateWebsocketEndpoint { call_uuid, target } = &req.command else { panic!("{req:?}") };
        assert_eq!(
            (call_uuid.as_str(), target.uri.as_str(), target.authorization.as_deref()),
            ("c1", "wss://a/b", None)
        );
        assert_eq!(serde_json::to_value(&req).unwrap(), text);
        let connected: Message =
            serde_json::from_str(r#"{"kind":"event","event":"ws_connected","endpoint_id":"e1"}"#).unwrap();
        assert_eq!(connected, Message::Event { event: Event::WsConnected { endpoint_id: "e1".into() } });
    }

    #[test]
    fn malformed_requests_echo_their_id_when_readable() {
        for (text, id) in [(r#"{"id":5,"type":"warp"}"#, 5), ("{not json", 0), (r#"{"type":"ping"}"#, 0)] {
            let err = serde_json::from_str::<Request>(text).unwrap_err();
            assert!(matches!(
                malformed(text, &err),
                Message::Reply { id: i, outcome: Outcome::Error { code: ErrorCode::BadRequest, .. } } if i == id
            ));
        }
    }
}
