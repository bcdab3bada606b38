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
}

impl AmdResult {
    /// As Vonage's machine-detection event names it.
    pub fn as_str(self) -> &'static str {
        match self {
            AmdResult::Human => "human",
            AmdResult::Machine => "machine",
            AmdResult::Unknown => "unknown",
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
        }
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
}
