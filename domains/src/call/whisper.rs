//! `onAnswer` (a whisper): an NCCO fetched from the endpoint's `onAnswer.url` and run on the
//! callee once it answers, before it is bridged to the caller ("a call from the support
//! line"). The caller meanwhile hears `onAnswer.ringbackTone` when one is given. Only what
//! plays to the callee or pauses runs there (`talk`, `stream`, `wait`); any other action, a
//! document that cannot be had, or media that cannot play ends the callee's leg as `failed`
//! with the reason, and the caller's NCCO goes on, as after any failed connect. A callee that
//! hangs up during the whisper ends the connect the same way. TwiML's `<Sip url>` is the same
//! whisper, asked Twilio's way; a `<Hangup>` (or `<Reject>`) in it declines the call: the
//! callee is released as `rejected` and never bridged.

use std::collections::VecDeque;
use std::time::Duration;

use super::legs::UacState;
use super::outcome::LegFailure;
use super::timers::TimerKey;
use super::{Call, DocumentPurpose, DocumentRequest, MediaFailure, Op};
use crate::events::CallStatus;
use crate::media::{Command, PlaySource, Reply};
use crate::ncco::common::Webhook;
use crate::ncco::{Action, HttpMethod, Ncco};

/// Where the whisper comes from and what the caller hears meanwhile.
#[derive(Debug, Clone, PartialEq)]
pub struct OnAnswerPlan {
    pub url: url::Url,
    pub ringback: Option<String>,
    /// `<Sip url method>` (TwiML): asked Twilio's way, with the callee leg's parameters.
    pub twiml: Option<HttpMethod>,
}

/// What a running whisper waits for.
#[allow(clippy::enum_variant_names, reason = "states are named for what they wait for")]
#[derive(Debug, Clone, PartialEq)]
pub enum WhisperStep {
    ExpectDocument,
    ExpectPlayStarted { action: &'static str, play_id: String },
    ExpectPlaybackDone { play_id: String },
    ExpectWaitElapsed,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Whisper {
    /// The outbound leg it runs on.
    pub leg: usize,
    pub program: VecDeque<Action>,
    pub step: WhisperStep,
}

impl Call {
    /// The callee `i` answered a connect that has `onAnswer`: fetch its NCCO.
    pub(super) fn start_whisper(&mut self, i: usize, plan: OnAnswerPlan) {
        self.callee_won(i);
        let caller = self.caller_endpoint();
        let Some(b) = self.b.get_mut(i) else { return };
        b.state = UacState::ExpectWhisperDone;
        // Early media bridged the callee already; the caller must not hear the whisper.
        if let (Some(a), Some(b)) = (caller, b.leg.endpoint_id()) {
            self.cx.media(Op::Ignored, Command::Unbridge { a, b });
        }
        if let (Some(url), Some(endpoint_id)) = (plan.ringback, self.caller_endpoint()) {
            // Early media: the caller is answered only when bridged.
            self.provisional_to_a(true);
            let play_id = self.cx.ids.token(12);
            let source = PlaySource::Url { url };
            self.cx.media(Op::Ignored, Command::Play { endpoint_id, play_id, source, loop_count: 0, level: 0.0 });
            self.exec.ringback_playing = true;
        }
        let Some(b) = self.b.get(i) else { return };
        let body = serde_json::json!({
            "uuid": b.leg.uuid,
            "conversation_uuid": self.conversation_uuid,
            "from": b.leg.from,
            "to": b.leg.to,
        });
        self.exec.whisper = Some(Whisper { leg: i, program: VecDeque::new(), step: WhisperStep::ExpectDocument });
        let request = match plan.twiml {
            Some(method) => {
                let callback = crate::ncco::common::Callback { url: Some(plan.url), method };
                DocumentRequest::Form { callback, params: self.twiml_callee_params(i) }
            }
            None => {
                let webhook = Webhook { url: plan.url, method: HttpMethod::Get };
                DocumentRequest::Post { webhook: Some(webhook), body }
            }
        };
        self.cx.fetch(DocumentPurpose::Whisper, request);
    }

    pub(super) fn whisper_document(&mut self, result: Result<Option<Ncco>, String>) {
        let Some(w) = self.exec.whisper.as_mut() else { return };
        if w.step != WhisperStep::ExpectDocument {
            return;
        }
        match result {
            Ok(ncco) => {
                w.program = ncco.map(|n| n.0.into()).unwrap_or_default();
                self.whisper_next();
            }
            Err(reason) => self.whisper_failed(format!("onAnswer: {reason}")),
        }
    }

    /// Runs the whisper's next action; bridges the callee when none is left.
    fn whisper_next(&mut self) {
        let Some(w) = self.exec.whisper.as_mut() else { return };
        let leg = w.leg;
        let Some(action) = w.program.pop_front() else {
            return self.whisper_done();
        };
        let endpoint_id = self.b.get(leg).and_then(|b| b.leg.endpoint_id()).unwrap_or_default();
        let (name, source, loop_count, level) = match action {
            Action::Talk(t) => {
                let source = PlaySource::Speech { text: t.text, language: t.language, style: t.style };
                ("talk", source, t.loop_count, t.level)
            }
            Action::Stream(s) => ("stream", PlaySource::Url { url: s.stream_url.to_string() }, s.loop_count, s.level),
            Action::Wait(wait) => {
                let secs = Duration::from_secs_f64(wait.timeout.clamp(0.0, 7200.0));
                self.cx.timers.set(TimerKey::Whisper, self.cx.now.at + secs);
                w.step = WhisperStep::ExpectWaitElapsed;
                return;
            }
            Action::Hangup | Action::Reject(_) => return self.whisper_declined(),
            other => return self.whisper_failed(format!("the {} action cannot run in onAnswer", other.name())),
        };
        let play_id = self.cx.ids.token(12);
        w.step = WhisperStep::ExpectPlayStarted { action: name, play_id: play_id.clone() };
        self.cx.media(Op::Whisper, Command::Play { endpoint_id, play_id, source, loop_count, level });
    }

    pub(super) fn whisper_media_reply(&mut self, result: Result<Reply, MediaFailure>) {
        let Some(w) = self.exec.whisper.as_mut() else { return };
        let WhisperStep::ExpectPlayStarted { action, play_id } = w.step.clone() else { return };
        match result {
            Ok(_) => w.step = WhisperStep::ExpectPlaybackDone { play_id },
            Err(f) => self.whisper_failed(format!("onAnswer: the media process cannot play {action}: {}", f.message)),
        }
    }

    /// True when the playback was the whisper's.
    pub(super) fn whisper_played(&mut self, play_id: &str) -> bool {
        let ours = self
            .exec
            .whisper
            .as_ref()
            .is_some_and(|w| matches!(&w.step, WhisperStep::ExpectPlaybackDone { play_id: p } if p == play_id));
        if ours {
            self.whisper_next();
        }
        ours
    }

    pub(super) fn whisper_wait_elapsed(&mut self) {
        if self.exec.whisper.as_ref().is_some_and(|w| w.step == WhisperStep::ExpectWaitElapsed) {
            self.whisper_next();
        }
    }

    /// The whisper is over: the callee joins the caller.
    fn whisper_done(&mut self) {
        let Some(w) = self.exec.whisper.as_ref() else { return };
        let leg = w.leg;
        if let Some(b) = self.b.get_mut(leg) {
            b.state = UacState::ExpectMediaApplied;
        }
        self.bridge(leg, true);
    }

    fn whisper_failed(&mut self, reason: String) {
        tracing::info!(call_uuid = %self.uuid, %reason, "whisper failed; the callee is released");
        self.release_whispered(LegFailure::new(CallStatus::Failed, "whisper_failed", 480, reason));
    }

    /// The whisper hung up (`<Hangup>` in a `<Sip url>` document, screening): the callee is
    /// released and the call is not connected to it.
    fn whisper_declined(&mut self) {
        self.release_whispered(LegFailure::new(CallStatus::Rejected, "declined", 603, "the whisper declined the call"));
    }

    fn release_whispered(&mut self, failure: LegFailure) {
        let Some(w) = self.exec.whisper.take() else { return };
        self.cx.timers.cancel(TimerKey::Whisper);
        self.stop_ringback();
        self.callee_failed(w.leg, failure);
    }

    /// The whispered callee hung up before being bridged.
    pub(super) fn whispered_callee_gone(&mut self, i: usize) -> bool {
        if self.exec.whisper.as_ref().is_none_or(|w| w.leg != i) {
            return false;
        }
        self.exec.whisper = None;
        self.cx.timers.cancel(TimerKey::Whisper);
        self.stop_ringback();
        true
    }
}
