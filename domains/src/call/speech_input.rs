//! The speech part of an NCCO `input`: the media process is asked to listen for one utterance
//! on the caller's leg and have the recogniser transcribe it (`transcribe`), and its answer
//! (`speech_done`) becomes Vonage's `speech` result. A transcript ends the input; so does any
//! answer when the input asked for speech alone. With DTMF too, silence or a recogniser's
//! failure leaves the digits to decide, and digits that end the input stop the listening. No
//! recogniser configured: the media process refuses, and the result carries that error, never
//! a transcript.

use std::time::Duration;

use super::executor::Step;
use super::timers::TimerKey;
use super::{Call, Op};
use crate::events::SpeechResult;
use crate::media::{Command, Reply};
use crate::ncco::SpeechSettings;

/// Where an input's speech stands.
#[derive(Debug, Clone, PartialEq)]
pub enum Speech {
    /// The media process listens on `endpoint_id`.
    Listening {
        transcribe_id: String,
        endpoint_id: String,
    },
    Done(SpeechResult),
}

/// Past the longest an utterance may take, an input waiting on speech alone gives up on the
/// media process's answer (it is gone, or the recogniser hangs).
const ANSWER_GRACE: Duration = Duration::from_secs(15);

impl Call {
    /// Starts listening on the caller's leg as `s` says; with no `dtmf` part, the input waits
    /// for the answer (at most the utterance's bounds and a grace).
    pub(super) fn listen_for_speech(&mut self, s: &SpeechSettings, speech_only: bool) -> Speech {
        let Some(endpoint_id) = self.caller_endpoint() else {
            return Speech::Done(SpeechResult::failed("the call has no media to listen to"));
        };
        let transcribe_id = self.cx.ids.uuid();
        let bounds = crate::speech::Bounds {
            start_timeout_ms: u64::from(s.start_timeout) * 1000,
            end_on_silence_ms: (s.end_on_silence * 1000.0).round().clamp(100.0, 60_000.0) as u64,
            max_duration_ms: u64::from(s.max_duration) * 1000,
        };
        if speech_only {
            let longest = Duration::from_millis(bounds.start_timeout_ms + bounds.max_duration_ms);
            self.cx.timers.set(TimerKey::Action, self.cx.now.at + longest + ANSWER_GRACE);
        }
        let command = Command::Transcribe {
            endpoint_id: endpoint_id.clone(),
            transcribe_id: transcribe_id.clone(),
            language: s.language.clone(),
            context: s.context.clone(),
            start_timeout_ms: bounds.start_timeout_ms,
            end_on_silence_ms: bounds.end_on_silence_ms,
            max_duration_ms: bounds.max_duration_ms,
        };
        self.cx.media(Op::Transcribe(transcribe_id.clone()), command);
        Speech::Listening { transcribe_id, endpoint_id }
    }

    /// The media process's reply to `transcribe`: a refusal is the speech result.
    pub(super) fn transcribe_started(&mut self, transcribe_id: &str, result: Result<Reply, super::MediaFailure>) {
        if let Err(f) = result {
            self.speech_done(transcribe_id, SpeechResult::failed(f.message));
        }
    }

    /// The utterance's outcome; ends the input when it decides it.
    pub(super) fn speech_done(&mut self, transcribe_id: &str, result: SpeechResult) {
        let Step::ExpectDigits(d) = &mut self.exec.step else { return };
        let ours = matches!(&d.speech, Some(Speech::Listening { transcribe_id: id, .. }) if id == transcribe_id);
        if !ours {
            return;
        }
        let decides = !result.results.is_empty() || d.max == 0;
        d.speech = Some(Speech::Done(result));
        if decides {
            self.input_done(false);
        }
    }

    /// The speech result of an input that ends now: listening still going on is stopped and
    /// reported without a transcript.
    pub(super) fn final_speech(&mut self, speech: Speech) -> SpeechResult {
        match speech {
            Speech::Done(result) => result,
            Speech::Listening { transcribe_id, endpoint_id } => {
                self.cx.media(Op::Ignored, Command::StopTranscribe { endpoint_id, transcribe_id });
                SpeechResult { results: Vec::new(), error: None, timeout_reason: None }
            }
        }
    }
}
