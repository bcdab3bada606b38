//! `connect` to a `websocket` endpoint: the caller's audio streamed to the application's
//! WebSocket server by the media process, and what the server sends played back. It is a leg
//! of its own (a uuid, `started`/`answered`/`completed` events, a call record) that ends when
//! the server closes the socket (a `disconnected` event first; the NCCO goes on) or the call
//! ends.

use chrono::{DateTime, Utc};

use super::executor::Step;
use super::outcome::iso;
use super::{Call, Op, RecordUpdate};
use crate::events::{CallEvent, CallStatus, Direction};
use crate::media::{Command, WebsocketTarget};
use crate::ncco::{Websocket, WebsocketAuthorization};

/// The running WebSocket leg.
#[derive(Debug, Clone)]
pub struct WebsocketLeg {
    pub uuid: String,
    pub uri: String,
    pub answered_at: DateTime<Utc>,
}

/// The action name the media reply comes back under.
pub const ACTION: &str = "websocket";

/// What the media process connects to for `ws`.
pub(super) fn target(ws: &Websocket) -> WebsocketTarget {
    let authorization = match &ws.authorization {
        Some(WebsocketAuthorization::Custom(value)) => Some(value.clone()),
        Some(WebsocketAuthorization::Vonage) | None => None,
    };
    WebsocketTarget {
        uri: ws.uri.to_string(),
        content_type: ws.content_type.clone(),
        headers: ws.headers.clone(),
        authorization,
        signed: ws.authorization == Some(WebsocketAuthorization::Vonage),
    }
}

impl Call {
    fn websocket_event(&self, leg: &WebsocketLeg, status: CallStatus) -> CallEvent {
        CallEvent::new(
            leg.uuid.clone(),
            self.conversation_uuid.clone(),
            status,
            Direction::Outbound,
            self.caller_leg().to.clone(),
            leg.uri.clone(),
            self.cx.iso(),
        )
    }

    /// Starts streaming the caller's audio to `ws`.
    pub(super) fn start_websocket(&mut self, ws: &Websocket) {
        self.answer_a();
        let Some(endpoint_id) = self.caller_endpoint() else { return };
        let leg = WebsocketLeg { uuid: self.cx.ids.uuid(), uri: ws.uri.to_string(), answered_at: self.cx.now.utc };
        self.cx.record(RecordUpdate::Started {
            uuid: leg.uuid.clone(),
            conversation_uuid: self.conversation_uuid.clone(),
            application_id: self.application_id(),
            direction: Direction::Outbound,
            from: self.caller_leg().to.clone(),
            to: leg.uri.clone(),
            sip_call_id: String::new(),
            at: leg.answered_at,
        });
        self.cx.record(RecordUpdate::Answered { uuid: leg.uuid.clone(), at: leg.answered_at });
        if self.events_on() {
            for status in [CallStatus::Started, CallStatus::Answered] {
                let ev = self.websocket_event(&leg, status);
                self.cx.event(ev);
            }
        }
        let command = Command::ConnectWebsocket { endpoint_id, target: target(ws) };
        self.exec.websocket = Some(leg);
        self.exec.step = Step::ExpectMediaStarted { action: ACTION, then_wait_play: None };
        self.cx.media(Op::Action(ACTION), command);
    }

    /// The server closed the socket (or it failed): the leg completes and the NCCO goes on.
    pub(super) fn websocket_closed(&mut self, endpoint: &str, reason: Option<String>) {
        if self.is_websocket_party(endpoint) {
            return self.websocket_party_closed(reason);
        }
        if self.caller_endpoint().as_deref() != Some(endpoint) || self.exec.websocket.is_none() {
            return;
        }
        self.end_websocket(true, reason);
        if self.exec.step == Step::ExpectWebsocketClosed {
            self.exec.step = Step::Idle;
            self.next_action();
        }
    }

    /// Reports the WebSocket leg completed, if one runs; `by_server` when the server hung up.
    pub(super) fn end_websocket(&mut self, by_server: bool, reason: Option<String>) {
        let Some(leg) = self.exec.websocket.take() else { return };
        let now = self.cx.now.utc;
        let secs = u64::try_from((now - leg.answered_at).num_seconds()).unwrap_or(0);
        if self.events_on() {
            if by_server {
                // Vonage's signal that the application's server hung up the socket.
                let ev = self.websocket_event(&leg, CallStatus::Disconnected);
                self.cx.event(ev);
            }
            let base = self.websocket_event(&leg, CallStatus::Completed);
            let by = if by_server { "user" } else { "platform" };
            let mut ev = CallEvent::completed(base, iso(leg.answered_at), iso(now), secs, by, None);
            ev.reason = reason;
            self.cx.event(ev);
        }
        self.cx.record(RecordUpdate::Finished {
            uuid: leg.uuid,
            status: CallStatus::Completed,
            detail: None,
            answered: Some(leg.answered_at),
            ended: now,
            quality: None,
            sip_code: None,
        });
    }
}
