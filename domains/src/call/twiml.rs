//! The TwiML callbacks of a call: `<Gather action>`, `<Dial action>` and `<Redirect>` send
//! Twilio's request parameters (`CallSid`, `From`, `To`, `CallStatus`, `Direction`,
//! `ApiVersion`, `SipCallId` and `SipHeader_X-*` of an inbound SIP call) with the verb's own,
//! and the document they answer replaces the rest of the program: in TwiML the verbs after
//! them are never reached.

use super::executor::Step;
use super::{Call, DocumentPurpose, DocumentRequest};
use crate::events::{CallStatus, Direction};
use crate::ncco::common::{Callback, Webhook};

type Params = Vec<(String, String)>;

fn param(name: &str, value: impl Into<String>) -> (String, String) {
    (name.to_owned(), value.into())
}

/// The call sid (`CA…`) of a leg's uuid.
fn call_sid(uuid: &str) -> String {
    crate::twiml::sid::of(crate::twiml::sid::CALL, uuid)
}

impl Call {
    /// Where the events of the leg placed for `connect`'s `noun`th endpoint go, when not to
    /// the application's event_url.
    pub(super) fn leg_hook(&self, c: &crate::ncco::Connect, noun: usize) -> Option<super::LegHook> {
        match &c.twiml {
            Some(t) => t.status.get(noun).cloned().flatten().map(|s| super::LegHook {
                webhook: s.webhook,
                events: Some(s.events),
                parent: Some(self.caller_leg().uuid.clone()),
            }),
            None => c.event.clone().map(|webhook| super::LegHook { webhook, events: None, parent: None }),
        }
    }

    /// The headers a `<Dial><Sip>` INVITE carries as Twilio's do: the call's `CallSid`, the
    /// `AccountSid` and the API version.
    pub(super) fn twilio_headers(&self) -> Vec<(String, String)> {
        let mut headers = vec![param("X-Twilio-CallSid", call_sid(&self.caller_leg().uuid))];
        if let Some(sid) = &self.dialling.account_sid {
            headers.push(param("X-Twilio-AccountSid", sid.clone()));
        }
        headers.push(param("X-Twilio-ApiVersion", crate::twiml::API_VERSION));
        headers
    }

    /// Twilio's standard request parameters of the call.
    pub(super) fn twiml_params(&self) -> Params {
        let a = self.caller_leg();
        let status = if self.a_is_unanswered() { "ringing" } else { "in-progress" };
        let direction = match self.a_direction() {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound-api",
        };
        let mut params = vec![
            param("CallSid", call_sid(&a.uuid)),
            param("From", a.from.clone()),
            param("To", a.to.clone()),
            param("CallStatus", status),
            param("Direction", direction),
            param("ApiVersion", crate::twiml::API_VERSION),
        ];
        if self.originated.is_none() {
            params.push(param("SipCallId", a.dialog.call_id.clone()));
            for (name, value) in &self.a.invite.headers {
                if crate::ncco::endpoint::is_custom_header(name) {
                    params.push((format!("SipHeader_{name}"), value.clone()));
                }
            }
        }
        params
    }

    /// Twilio's parameters of the answered callee `i` (a `<Sip url>` request): the child
    /// leg's `CallSid`, its parent's, and the `SipCallId` and `SipHeader_X-*` of its 200.
    pub(super) fn twiml_callee_params(&self, i: usize) -> Params {
        let Some(b) = self.b.get(i) else { return self.twiml_params() };
        let mut params = vec![
            param("CallSid", call_sid(&b.leg.uuid)),
            param("ParentCallSid", call_sid(&self.caller_leg().uuid)),
            param("From", b.leg.from.clone()),
            param("To", b.leg.to.clone()),
            param("CallStatus", "in-progress"),
            param("Direction", "outbound-dial"),
            param("ApiVersion", crate::twiml::API_VERSION),
            param("SipCallId", b.leg.dialog.call_id.clone()),
        ];
        params.extend(b.final_headers.iter().map(|(name, value)| (format!("SipHeader_{name}"), value.clone())));
        params
    }

    /// Sends the call's parameters and `extra` to `webhook`; the document it answers runs
    /// instead of the rest of this one.
    pub(super) fn twiml_callback(&mut self, callback: Callback, extra: Params) {
        self.exec.program.clear();
        let mut params = self.twiml_params();
        params.extend(extra);
        self.exec.step = Step::ExpectPostReply;
        self.cx.fetch(DocumentPurpose::Continue, DocumentRequest::Form { callback, params });
    }

    /// `<Gather action>` is over: the digits go to `action`; none came, the document goes on.
    pub(super) fn gathered(
        &mut self,
        action: Callback,
        digits: String,
        ended_by_hash: bool,
        speech: Option<crate::events::SpeechResult>,
    ) {
        let heard = speech.and_then(|s| s.results.into_iter().next());
        let mut params = Vec::new();
        if !digits.is_empty() {
            let key = if ended_by_hash { "#" } else { "" };
            params.extend([param("Digits", digits), param("FinishedOnKey", key)]);
        }
        if let Some(heard) = heard {
            params.push(param("SpeechResult", heard.text));
            params.extend(heard.confidence.map(|c| param("Confidence", c)));
        }
        if params.is_empty() {
            self.exec.step = Step::Idle;
            return self.next_action();
        }
        self.twiml_callback(action, params);
    }

    /// A `<Dial action>` is over: its outcome goes to `action` (legs from `first` on are the
    /// dial's): the answered leg, else the last one tried; `recording` is its recording's.
    pub(super) fn dialled(&mut self, action: Webhook, first: usize, recording: Params) {
        let legs = self.b.get(first..).unwrap_or_default();
        let leg = legs.iter().find(|b| b.leg.answered_at.is_some()).or_else(|| legs.last());
        let Some(b) = leg else {
            let mut extra = vec![param("DialCallStatus", "failed")];
            extra.extend(recording);
            return self.twiml_callback(action.into(), extra);
        };
        let (status, code) = match (&b.leg.answered_at, &b.failure) {
            (Some(_), _) => ("completed", Some(200)),
            (None, Some(f)) => {
                let status = match f.status {
                    CallStatus::Busy => "busy",
                    CallStatus::Timeout | CallStatus::Unanswered => "no-answer",
                    CallStatus::Cancelled => "canceled",
                    _ => "failed",
                };
                (status, f.sip_code)
            }
            (None, None) => ("failed", None),
        };
        let mut extra = vec![
            param("DialCallStatus", status),
            param("DialCallSid", call_sid(&b.leg.uuid)),
            param("DialSipCallId", b.leg.dialog.call_id.clone()),
        ];
        if let Some(code) = code {
            extra.push(param("DialSipResponseCode", code.to_string()));
        }
        if let Some(answered) = b.leg.answered_at {
            let secs = (self.cx.now.utc - answered).num_seconds().max(0);
            extra.push(param("DialCallDuration", secs.to_string()));
        }
        for (name, value) in &b.final_headers {
            extra.push((format!("DialSipHeader_{name}"), value.clone()));
        }
        extra.extend(recording);
        self.twiml_callback(action.into(), extra);
    }
}
