//! Linear audio as the media process handles it inside: 16-bit mono PCM at 8 kHz in 20 ms
//! frames, and what turns it into a leg's payload and back (the negotiated codec), scales it
//! (`level`), measures it (silence) and makes it (beeps, DTMF tones).

use std::sync::Arc;

use domains::sdp::Codec;

use domains::g711;

/// Samples per second of every internal buffer.
pub const RATE: u32 = 8000;
/// Samples in one 20 ms frame (RTP packet) at [`RATE`].
pub const FRAME: usize = 160;

/// A decoded clip, shared by every call playing it.
pub type Clip = Arc<[i16]>;

/// Appends the samples of one G.711 payload of `codec` (stateless; other codecs decode
/// through the leg's [`crate::codec::LegCodec`]).
pub fn decode(codec: Codec, payload: &[u8], out: &mut Vec<i16>) {
    g711::decode(codec == Codec::Pcma, payload, out);
}

/// The linear gain of a Vonage `level` (-1 to 1): ±1 is ±12 dB, 0 unchanged.
pub fn gain(level: f64) -> f32 {
    10f32.powf((level.clamp(-1.0, 1.0) as f32) * 12.0 / 20.0)
}

/// Scales samples by `gain`, saturating.
pub fn apply_gain(pcm: &mut [i16], gain: f32) {
    if (gain - 1.0).abs() < f32::EPSILON {
        return;
    }
    for s in pcm {
        *s = (f32::from(*s) * gain).clamp(f32::from(i16::MIN), f32::from(i16::MAX)) as i16;
    }
}

/// Root-mean-square level of `pcm` (0 for an empty slice): the detectors' measure too.
pub use domains::amd::rms;

/// Below this RMS a frame counts as silence (about -50 dBov).
pub const SILENCE_RMS: f64 = 100.0;

/// A sum of sinusoids, `ms` long, each of `amplitude`.
pub fn tone(freqs: &[f32], amplitude: f32, ms: u32) -> Vec<i16> {
    let n = (RATE / 1000 * ms) as usize;
    (0..n)
        .map(|i| {
            let t = i as f32 / RATE as f32;
            let v: f32 = freqs.iter().map(|f| (2.0 * std::f32::consts::PI * f * t).sin()).sum();
            (v * amplitude) as i16
        })
        .collect()
}

/// In-band DTMF for a peer without telephone-event: each digit's dual tone for 100 ms then 60 ms
/// of silence; pauses (`p`, `,`) are 500 ms of silence.
pub fn dtmf_tones(digits: &str) -> Vec<i16> {
    let mut out = Vec::new();
    for c in digits.chars() {
        match domains::dtmf::tone_frequencies(c) {
            Some((lo, hi)) => {
                out.extend(tone(&[lo, hi], 7000.0, 100));
                out.extend(std::iter::repeat_n(0, 60 * 8));
            }
            None => out.extend(std::iter::repeat_n(0, 500 * 8)),
        }
    }
    out
}

/// A rate converter for a stream that arrives in pieces (a WebSocket's frames): rubato's
/// fixed-size FFT resampler fed whatever has accumulated. It delays the audio by its filter
/// length (a few milliseconds) and never drops or invents samples.
pub struct StreamResampler {
    inner: Option<rubato::FftFixedInOut<f32>>,
    pending: Vec<f32>,
}

impl StreamResampler {
    pub fn new(from: u32, to: u32) -> Result<StreamResampler, String> {
        let inner = if from == to {
            None
        } else {
            // Chunks of 10 ms of input keep the delay low.
            Some(
                rubato::FftFixedInOut::new(from as usize, to as usize, from as usize / 100, 1)
                    .map_err(|e| e.to_string())?,
            )
        };
        Ok(StreamResampler { inner, pending: Vec::new() })
    }

    /// Converts what is available of `input` (and what was left over), appending to `out`.
    pub fn push(&mut self, input: &[i16], out: &mut std::collections::VecDeque<i16>) {
        use rubato::Resampler;
        let Some(r) = self.inner.as_mut() else {
            out.extend(input);
            return;
        };
        self.pending.extend(input.iter().map(|s| f32::from(*s) / 32768.0));
        while self.pending.len() >= r.input_frames_next() {
            let n = r.input_frames_next();
            let Some(chunk) = self.pending.get(..n) else { break };
            let Ok(frames) = r.process(&[chunk], None) else { break };
            self.pending.drain(..n);
            for s in frames.into_iter().next().unwrap_or_default() {
                out.push_back((s * 32768.0).clamp(-32768.0, 32767.0) as i16);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gain_levels() {
        assert!((gain(0.0) - 1.0).abs() < 1e-6);
        assert!((gain(1.0) - 3.98).abs() < 0.01);
        assert!((gain(-1.0) - 0.251).abs() < 0.001);
        let mut loud = [30000i16, -30000];
        apply_gain(&mut loud, 2.0);
        assert_eq!(loud, [i16::MAX, i16::MIN]);
        assert!(rms(&tone(&[1000.0], 1000.0, 20)) > 600.0 && rms(&[0; 160]) < SILENCE_RMS);
    }

    #[test]
    fn stream_resampling_keeps_length_and_level() {
        for (from, to) in [(8000, 16000), (16000, 8000), (8000, 24000), (8000, 8000)] {
            let mut r = StreamResampler::new(from, to).unwrap();
            let input = tone(&[440.0], 8000.0, 20 * 50);
            // Pieces of odd sizes, as frames arrive.
            let mut out = std::collections::VecDeque::new();
            let per_ms = from as usize / 1000;
            let scaled: Vec<i16> = (0..per_ms * 1000).map(|i| input[i * 8 / per_ms]).collect();
            for piece in scaled.chunks(7 * per_ms) {
                r.push(piece, &mut out);
            }
            let expected = to as usize;
            assert!(out.len() <= expected && out.len() + to as usize / 50 >= expected, "{from}->{to}: {}", out.len());
            let tail: Vec<i16> = out.iter().skip(out.len() / 4).copied().collect();
            assert!((5000.0..6500.0).contains(&rms(&tail)), "{from}->{to}: level {}", rms(&tail));
        }
    }

    #[test]
    fn dtmf_tones_are_detected() {
        let mut det = domains::dtmf::ToneDetector::default();
        assert_eq!(det.feed(&dtmf_tones("19#p*")), vec!['1', '9', '#', '*']);
    }
}
