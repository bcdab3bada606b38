//! Answering-machine detection by cadence, in the style of Asterisk's `app_amd`: a person says a
//! short "hello?" and waits; a machine's greeting talks on, word after word, or starts after a
//! long silence. Fed the level of each 20 ms frame of what the answered leg sends, it decides
//! `human` or `machine` (or `unknown` when the analysis time runs out), then, for a machine,
//! listens for the greeting's beep (a steady tone) when asked to.

/// The cadence thresholds (Asterisk's `amd.conf` defaults).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AmdConfig {
    /// Silence before any speech that means a machine (ms).
    pub initial_silence_ms: u32,
    /// Speech longer than this is a greeting (ms).
    pub greeting_ms: u32,
    /// Silence after a short speech that means a person waiting for an answer (ms).
    pub after_greeting_silence_ms: u32,
    /// Give up after this long (ms).
    pub total_analysis_ms: u32,
    /// Speech this long counts as a word (ms).
    pub min_word_ms: u32,
    /// Silence this long separates words (ms).
    pub between_words_silence_ms: u32,
    /// This many words is a greeting.
    pub maximum_words: u32,
    /// Frames below this RMS are silence.
    pub silence_threshold: f64,
}

impl Default for AmdConfig {
    fn default() -> Self {
        AmdConfig {
            initial_silence_ms: 2500,
            greeting_ms: 1500,
            after_greeting_silence_ms: 800,
            total_analysis_ms: 5000,
            min_word_ms: 100,
            between_words_silence_ms: 50,
            maximum_words: 3,
            silence_threshold: 256.0,
        }
    }
}

/// What the detector concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AmdResult {
    Human,
    Machine,
    /// The analysis time ran out undecided.
    Unknown,
    /// After `Machine`: the greeting's beep began (the message can be left now).
    Beep,
}

impl AmdResult {
    /// As Vonage's machine-detection event names it.
    pub fn as_str(self) -> &'static str {
        match self {
            AmdResult::Human => "human",
            AmdResult::Machine => "machine",
            AmdResult::Unknown => "unknown",
            AmdResult::Beep => "beep",
        }
    }
}

/// The cadence detector of one leg.
#[derive(Debug, Clone)]
pub struct AmdDetector {
    config: AmdConfig,
    elapsed_ms: u32,
    silence_ms: u32,
    voice_ms: u32,
    /// Total speech heard.
    spoken_ms: u32,
    words: u32,
    in_word: bool,
    decided: Option<AmdResult>,
    /// After a `Machine` verdict: the beep listened for, and how long it may take to come.
    beep: Option<(BeepDetector, u32)>,
}

const FRAME_MS: u32 = 20;

impl AmdDetector {
    pub fn new(config: AmdConfig) -> AmdDetector {
        AmdDetector {
            config,
            elapsed_ms: 0,
            silence_ms: 0,
            voice_ms: 0,
            spoken_ms: 0,
            words: 0,
            in_word: false,
            decided: None,
            beep: None,
        }
    }

    /// After a `Machine` verdict, listens up to `timeout_ms` for the greeting's beep.
    pub fn listening_for_beep(mut self, timeout_ms: u32) -> AmdDetector {
        self.beep = Some((BeepDetector::default(), timeout_ms));
        self
    }

    /// One 20 ms frame of 8 kHz audio: the cadence verdict (once), then for a machine the
    /// beep (once) when listened for.
    pub fn audio_frame(&mut self, pcm: &[i16]) -> Option<AmdResult> {
        if self.decided.is_none() {
            return self.frame(rms(pcm));
        }
        let (detector, left_ms) = self.beep.as_mut().filter(|_| self.decided == Some(AmdResult::Machine))?;
        *left_ms = left_ms.saturating_sub(FRAME_MS);
        let heard = detector.frame(pcm);
        if heard || *left_ms == 0 {
            self.beep = None;
        }
        heard.then_some(AmdResult::Beep)
    }

    /// Nothing more will come: decided, and no beep is listened for.
    pub fn finished(&self) -> bool {
        self.decided.is_some() && (self.beep.is_none() || self.decided != Some(AmdResult::Machine))
    }

    /// One 20 ms frame of level `rms`; `Some` once, when the detector decides.
    pub fn frame(&mut self, rms: f64) -> Option<AmdResult> {
        if self.decided.is_some() {
            return None;
        }
        let c = self.config;
        self.elapsed_ms += FRAME_MS;
        let result = if rms < c.silence_threshold {
            self.silence_ms += FRAME_MS;
            self.voice_ms = 0;
            if self.in_word && self.silence_ms >= c.between_words_silence_ms {
                self.in_word = false;
            }
            if self.words == 0 && self.silence_ms >= c.initial_silence_ms {
                Some(AmdResult::Machine)
            } else if self.words > 0 && self.silence_ms >= c.after_greeting_silence_ms {
                Some(AmdResult::Human)
            } else {
                None
            }
        } else {
            self.silence_ms = 0;
            self.voice_ms += FRAME_MS;
            self.spoken_ms += FRAME_MS;
            if !self.in_word && self.voice_ms >= c.min_word_ms {
                self.in_word = true;
                self.words += 1;
            }
            if self.words >= c.maximum_words || self.spoken_ms >= c.greeting_ms {
                Some(AmdResult::Machine)
            } else {
                None
            }
        };
        let result = result.or((self.elapsed_ms >= c.total_analysis_ms).then_some(AmdResult::Unknown));
        self.decided = result;
        result
    }
}

/// Root-mean-square level of `pcm` (0 for an empty slice).
pub fn rms(pcm: &[i16]) -> f64 {
    if pcm.is_empty() {
        return 0.0;
    }
    (pcm.iter().map(|s| f64::from(*s).powi(2)).sum::<f64>() / pcm.len() as f64).sqrt()
}

/// A greeting's beep: one steady tone between 400 and 2000 Hz (the Goertzel power of the best
/// of 65 frequencies, 25 Hz apart, holds most of the frame's energy) for at least
/// [`BEEP_FRAMES`] frames in a row. Speech spreads its energy over many frequencies and moves;
/// a beep does not.
#[derive(Debug, Clone, Default)]
pub struct BeepDetector {
    /// The tone's frequency bin and for how many frames in a row it held.
    run: Option<(usize, u32)>,
}

/// 100 ms of a steady tone is a beep.
const BEEP_FRAMES: u32 = 5;
const BEEP_LOW_HZ: f32 = 400.0;
const BEEP_STEP_HZ: f32 = 25.0;
const BEEP_BINS: usize = 65;
/// The share of the frame's energy the tone's frequency must hold.
const TONAL_SHARE: f64 = 0.6;

impl BeepDetector {
    /// One 20 ms frame at 8 kHz; true once the beep is heard.
    pub fn frame(&mut self, pcm: &[i16]) -> bool {
        let block: Vec<f32> = pcm.iter().map(|s| f32::from(*s)).collect();
        let energy: f64 = pcm.iter().map(|s| f64::from(*s).powi(2)).sum();
        let loud = rms(pcm) >= AmdConfig::default().silence_threshold;
        let best = (0..BEEP_BINS)
            .map(|bin| (bin, f64::from(crate::dtmf::goertzel(&block, BEEP_LOW_HZ + BEEP_STEP_HZ * bin as f32))))
            .max_by(|a, b| a.1.total_cmp(&b.1));
        // A pure tone of N samples has a Goertzel power of N/2 times its energy.
        let tonal = best.filter(|(_, power)| loud && *power >= TONAL_SHARE * energy * pcm.len() as f64 / 2.0);
        self.run = match (tonal, self.run) {
            (Some((bin, _)), Some((held, n))) if bin.abs_diff(held) <= 2 => Some((held, n + 1)),
            (Some((bin, _)), _) => Some((bin, 1)),
            (None, _) => None,
        };
        self.run.is_some_and(|(_, n)| n >= BEEP_FRAMES)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a cadence of (ms, speaking) segments; the result and when it came.
    fn run(segments: &[(u32, bool)]) -> Option<(AmdResult, u32)> {
        let mut d = AmdDetector::new(AmdConfig::default());
        let mut t = 0;
        for (ms, speaking) in segments {
            for _ in 0..ms / FRAME_MS {
                t += FRAME_MS;
                if let Some(r) = d.frame(if *speaking { 3000.0 } else { 20.0 }) {
                    return Some((r, t));
                }
            }
        }
        None
    }

    #[test]
    fn a_short_hello_then_silence_is_a_person() {
        let (r, at) = run(&[(300, false), (500, true), (2000, false)]).unwrap();
        assert_eq!(r, AmdResult::Human);
        assert_eq!(at, 300 + 500 + 800, "decided after the after-greeting silence");
    }

    #[test]
    fn a_long_greeting_is_a_machine() {
        // "Hi, you've reached Sam. I can't take your call; leave a message after the tone."
        let greeting = [
            (200, false),
            (400, true),
            (100, false),
            (300, true),
            (120, false),
            (500, true),
            (100, false),
            (900, true),
        ];
        assert_eq!(run(&greeting).map(|(r, _)| r), Some(AmdResult::Machine));
        assert_eq!(run(&[(1800, true)]).map(|(r, _)| r), Some(AmdResult::Machine), "one long word");
    }

    #[test]
    fn long_initial_silence_is_a_machine_and_time_runs_out_undecided() {
        assert_eq!(run(&[(3000, false)]), Some((AmdResult::Machine, 2500)));
        // Short words with pauses just under the human threshold, forever: undecided at 5 s.
        let mut d = AmdDetector::new(AmdConfig { maximum_words: 100, greeting_ms: 10_000, ..AmdConfig::default() });
        let mut last = None;
        for i in 0..300 {
            let speaking = (i / 10) % 2 == 0;
            if let Some(r) = d.frame(if speaking { 3000.0 } else { 0.0 }) {
                last = Some(r);
            }
        }
        assert_eq!(last, Some(AmdResult::Unknown));
    }

    fn tone(hz: f64, frames: usize) -> Vec<Vec<i16>> {
        (0..frames)
            .map(|f| {
                (0..160)
                    .map(|i| {
                        let t = (f * 160 + i) as f64 / 8000.0;
                        (8000.0 * (2.0 * std::f64::consts::PI * hz * t).sin()) as i16
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn a_machines_beep_is_heard_after_its_greeting_and_speech_is_no_beep() {
        let mut d = AmdDetector::new(AmdConfig::default()).listening_for_beep(10_000);
        let mut results = Vec::new();
        // A greeting of many "words" (a tone gliding in pitch, never steady), then the beep.
        let speech: Vec<Vec<i16>> = (0..100).map(|f| tone(300.0 + 37.0 * (f % 13) as f64, 1).remove(0)).collect();
        for (i, frame) in speech.iter().enumerate() {
            let frame = if i % 10 < 7 { frame.clone() } else { vec![0; 160] };
            results.extend(d.audio_frame(&frame));
        }
        assert_eq!(results, [AmdResult::Machine], "a machine; no beep in the greeting");
        for frame in tone(1000.0, 10) {
            results.extend(d.audio_frame(&frame));
        }
        assert_eq!(results, [AmdResult::Machine, AmdResult::Beep]);
        assert!(d.finished());
        // A 1020 Hz beep (between two of the frequencies) is a beep too.
        let mut b = BeepDetector::default();
        assert!(tone(1020.0, 6).iter().any(|f| b.frame(f)));
    }

    #[test]
    fn no_beep_within_the_timeout_ends_the_listening() {
        let mut d = AmdDetector::new(AmdConfig::default()).listening_for_beep(200);
        for _ in 0..200 {
            assert_ne!(d.audio_frame(&[0; 160]), Some(AmdResult::Beep));
        }
        assert!(d.finished(), "a machine (the long silence), and the beep's time is up");
    }
}
