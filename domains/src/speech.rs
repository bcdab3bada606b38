//! Speech input's ear: where an utterance starts and ends in a leg's received audio (8 kHz,
//! 20 ms frames), as an NCCO `input`'s `speech` settings say: it must start within
//! `startTimeout`, it ends after `endOnSilence` seconds of silence or at `maxDuration`. What it
//! keeps (from a little before the first voiced frame) is what a recogniser is given. Time is
//! passed in (milliseconds), so the rules are tested on a virtual clock; the media process
//! feeds it frames and ticks it when frames stop coming.

use std::collections::VecDeque;

/// RMS above which a frame counts as voice (speech in a quiet line sits far above it; line
/// noise and comfort noise below).
pub const VOICE_RMS: f64 = 300.0;

/// Audio kept from before the first voiced frame, so the utterance's onset is not clipped.
const PREROLL_SAMPLES: usize = 8000 * 300 / 1000;

/// How the utterance is bounded, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub start_timeout_ms: u64,
    pub end_on_silence_ms: u64,
    pub max_duration_ms: u64,
}

/// Why listening ended, in Vonage's words (`speech.timeout_reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// Speech was followed by `endOnSilence` of silence.
    EndOnSilence,
    /// Speech went on until `maxDuration`.
    MaxDuration,
    /// Nobody spoke within `startTimeout`.
    StartTimeout,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::EndOnSilence => "end_on_silence_timeout",
            EndReason::MaxDuration => "max_duration",
            EndReason::StartTimeout => "start_timeout",
        }
    }

    pub fn from_name(name: &str) -> Option<EndReason> {
        [EndReason::EndOnSilence, EndReason::MaxDuration, EndReason::StartTimeout]
            .into_iter()
            .find(|r| r.as_str() == name)
    }
}

#[derive(Debug)]
pub struct Utterance {
    bounds: Bounds,
    started_ms: u64,
    /// When the first voiced frame came.
    speech_ms: Option<u64>,
    last_voice_ms: u64,
    preroll: VecDeque<i16>,
    audio: Vec<i16>,
    ended: Option<EndReason>,
}

impl Utterance {
    pub fn new(bounds: Bounds, now_ms: u64) -> Utterance {
        Utterance {
            bounds,
            started_ms: now_ms,
            speech_ms: None,
            last_voice_ms: now_ms,
            preroll: VecDeque::with_capacity(PREROLL_SAMPLES),
            audio: Vec::new(),
            ended: None,
        }
    }

    /// One frame heard at `now_ms`; the reason once the utterance is over (given once).
    pub fn frame(&mut self, pcm: &[i16], now_ms: u64) -> Option<EndReason> {
        if self.ended.is_some() {
            return None;
        }
        let voiced = crate::amd::rms(pcm) >= VOICE_RMS;
        if voiced {
            self.last_voice_ms = now_ms;
        }
        match self.speech_ms {
            None if voiced => {
                self.speech_ms = Some(now_ms);
                self.audio.extend(self.preroll.drain(..));
                self.audio.extend_from_slice(pcm);
            }
            None => {
                self.preroll.extend(pcm);
                let excess = self.preroll.len().saturating_sub(PREROLL_SAMPLES);
                self.preroll.drain(..excess);
            }
            Some(_) => self.audio.extend_from_slice(pcm),
        }
        self.tick(now_ms)
    }

    /// The reason once the utterance is over at `now_ms` (given once), whether or not frames
    /// still arrive.
    pub fn tick(&mut self, now_ms: u64) -> Option<EndReason> {
        if self.ended.is_some() {
            return None;
        }
        let b = self.bounds;
        let reason = match self.speech_ms {
            None if now_ms.saturating_sub(self.started_ms) >= b.start_timeout_ms => Some(EndReason::StartTimeout),
            None => None,
            Some(at) if now_ms.saturating_sub(at) >= b.max_duration_ms => Some(EndReason::MaxDuration),
            Some(_) if now_ms.saturating_sub(self.last_voice_ms) >= b.end_on_silence_ms => {
                Some(EndReason::EndOnSilence)
            }
            Some(_) => None,
        };
        self.ended = reason;
        reason
    }

    /// Whether anyone spoke.
    pub fn heard_speech(&self) -> bool {
        self.speech_ms.is_some()
    }

    /// The utterance's audio (8 kHz), taken once it is over.
    pub fn take_audio(&mut self) -> Vec<i16> {
        std::mem::take(&mut self.audio)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUNDS: Bounds = Bounds { start_timeout_ms: 2000, end_on_silence_ms: 1000, max_duration_ms: 5000 };
    const LOUD: [i16; 160] = [3000; 160];
    const QUIET: [i16; 160] = [10; 160];

    /// Feeds `frames` 20 ms frames of `pcm` from `*t`, returning the first end.
    fn feed(u: &mut Utterance, t: &mut u64, pcm: &[i16], frames: u32) -> Option<EndReason> {
        let mut end = None;
        for _ in 0..frames {
            *t += 20;
            end = end.or(u.frame(pcm, *t));
        }
        end
    }

    #[test]
    fn an_utterance_ends_after_its_silence_with_its_onset_kept() {
        let mut t = 0;
        let mut u = Utterance::new(BOUNDS, t);
        assert_eq!(feed(&mut u, &mut t, &QUIET, 50), None, "1 s of quiet, within the start timeout");
        assert_eq!(feed(&mut u, &mut t, &LOUD, 40), None, "0.8 s of speech");
        assert_eq!(feed(&mut u, &mut t, &QUIET, 49), None);
        assert_eq!(feed(&mut u, &mut t, &QUIET, 1), Some(EndReason::EndOnSilence), "1 s after the last voice");
        assert_eq!(u.frame(&QUIET, t + 20), None, "told once");
        let audio = u.take_audio();
        assert_eq!(audio.len(), PREROLL_SAMPLES + 90 * 160, "pre-roll, speech and the silence after it");
        assert!(u.heard_speech());
    }

    #[test]
    fn nobody_speaking_is_a_start_timeout_even_without_frames() {
        let mut t = 0;
        let mut u = Utterance::new(BOUNDS, t);
        assert_eq!(feed(&mut u, &mut t, &QUIET, 20), None);
        assert_eq!(u.tick(1999), None);
        assert_eq!(u.tick(2000), Some(EndReason::StartTimeout), "no packets needed: ticks end it");
        assert!(!u.heard_speech() && u.take_audio().is_empty());
    }

    #[test]
    fn endless_speech_stops_at_the_maximum() {
        let mut t = 0;
        let mut u = Utterance::new(BOUNDS, t);
        assert_eq!(feed(&mut u, &mut t, &LOUD, 250), None, "speech from 20 ms to 5 s");
        assert_eq!(feed(&mut u, &mut t, &LOUD, 1), Some(EndReason::MaxDuration));
        assert_eq!(EndReason::from_name("max_duration"), Some(EndReason::MaxDuration));
    }
}
