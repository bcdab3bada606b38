//! One leg's codec state: what turns its payloads into the media process's internal audio
//! (8 kHz linear, 20 ms frames) and back. G.711 is stateless (the tables in `domains::g711`);
//! G.722 (ezk-g722's port of the ITU reference, at 16 kHz with rubato between the rates) and
//! Opus (libopus through the `opus` crate, asked for 8 kHz) keep predictor and filter state, so
//! each leg owns one decoder and one encoder, and every packet is decoded at most once. L16 is
//! big-endian samples (RFC 3551), at 16 kHz through the same rubato resamplers as G.722. G.729
//! (g729-sys, pure Rust) packs two 10 ms frames of 10 bytes in a 20 ms packet; a 2-byte Annex B
//! SID frame from the far end decodes as comfort noise, and a lost packet is the decoder's own
//! frame-erasure concealment.

use domains::sdp::Codec;
use ezk_g722::libg722::{self, Bitrate};

use crate::audio::{FRAME, StreamResampler};

enum Decoder {
    G711 {
        alaw: bool,
    },
    G722(Box<libg722::decoder::Decoder>, Box<StreamResampler>),
    Opus(Box<opus::Decoder>),
    /// L16; at 16 kHz with the resampler down to 8 kHz.
    L16(Option<Box<StreamResampler>>),
    G729(Box<g729_sys::Decoder>),
}

enum Encoder {
    G711 { alaw: bool },
    G722(Box<libg722::encoder::Encoder>, Box<StreamResampler>),
    Opus(Box<opus::Encoder>),
    L16(Option<Box<StreamResampler>>),
    G729(Box<g729_sys::Encoder>),
}

/// G.729's frame: 10 ms.
const G729_FRAME: usize = g729_sys::FRAME_SAMPLES;
/// A G.729 Annex B silence-description frame.
const G729_SID_BYTES: usize = 2;

pub struct LegCodec {
    pub codec: Codec,
    decoder: Decoder,
    encoder: Encoder,
    /// The last frame decoded, for concealing a lost one.
    last: Vec<i16>,
}

impl LegCodec {
    pub fn new(codec: Codec) -> Result<LegCodec, String> {
        let (decoder, encoder) = match codec {
            Codec::Pcmu | Codec::Pcma => {
                let alaw = codec == Codec::Pcma;
                (Decoder::G711 { alaw }, Encoder::G711 { alaw })
            }
            Codec::G722 => (
                Decoder::G722(
                    Box::new(libg722::decoder::Decoder::new(Bitrate::Mode1_64000, false, false)),
                    Box::new(StreamResampler::new(16000, 8000)?),
                ),
                Encoder::G722(
                    Box::new(libg722::encoder::Encoder::new(Bitrate::Mode1_64000, false, false)),
                    Box::new(StreamResampler::new(8000, 16000)?),
                ),
            ),
            Codec::Opus => {
                let decoder = opus::Decoder::new(8000, opus::Channels::Mono).map_err(|e| e.to_string())?;
                let mut encoder = opus::Encoder::new(8000, opus::Channels::Mono, opus::Application::Voip)
                    .map_err(|e| e.to_string())?;
                encoder.set_inband_fec(true).map_err(|e| e.to_string())?;
                (Decoder::Opus(Box::new(decoder)), Encoder::Opus(Box::new(encoder)))
            }
            Codec::L16 => (Decoder::L16(None), Encoder::L16(None)),
            Codec::G729 => (
                Decoder::G729(Box::new(g729_sys::Decoder::new())),
                Encoder::G729(Box::new(g729_sys::Encoder::new(false))),
            ),
            Codec::L16Wide => (
                Decoder::L16(Some(Box::new(StreamResampler::new(16000, 8000)?))),
                Encoder::L16(Some(Box::new(StreamResampler::new(8000, 16000)?))),
            ),
        };
        Ok(LegCodec { codec, decoder, encoder, last: Vec::new() })
    }

    /// Appends the 8 kHz samples of one payload (a bad payload decodes to nothing).
    pub fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) {
        let start = out.len();
        match &mut self.decoder {
            Decoder::G711 { alaw } => domains::g711::decode(*alaw, payload, out),
            Decoder::G722(d, down) => {
                let mut pcm = std::collections::VecDeque::new();
                down.push(&d.decode(payload), &mut pcm);
                out.extend(pcm);
            }
            Decoder::Opus(d) => {
                // Up to 120 ms in one packet.
                let mut pcm = [0i16; FRAME * 6];
                if let Ok(n) = d.decode(payload, &mut pcm, false) {
                    out.extend(pcm.iter().take(n));
                }
            }
            Decoder::G729(d) => {
                for frame in payload.chunks(g729_sys::VOICE_FRAME_BYTES) {
                    match frame.len() {
                        g729_sys::VOICE_FRAME_BYTES => out.extend(d.decode(frame, false, false, false)),
                        G729_SID_BYTES => out.extend(d.decode(frame, false, true, false)),
                        _ => {}
                    }
                }
            }
            Decoder::L16(resampler) => {
                let samples =
                    payload.chunks_exact(2).filter_map(|b| <[u8; 2]>::try_from(b).ok()).map(i16::from_be_bytes);
                match resampler {
                    None => out.extend(samples),
                    Some(down) => {
                        let wide: Vec<i16> = samples.collect();
                        let mut pcm = std::collections::VecDeque::new();
                        down.push(&wide, &mut pcm);
                        out.extend(pcm);
                    }
                }
            }
        }
        self.last.clear();
        self.last.extend(out.iter().skip(start).rev().take(FRAME).rev());
    }

    /// A frame standing in for a lost packet: Opus's own concealment, else the last frame
    /// repeated at half level (G.711 Appendix I's idea, shortened), silence after that.
    pub fn conceal(&mut self, out: &mut Vec<i16>) {
        match &mut self.decoder {
            Decoder::Opus(d) => {
                let mut pcm = [0i16; FRAME];
                if d.decode(&[], &mut pcm, false).is_ok() {
                    out.extend(pcm);
                    return;
                }
            }
            Decoder::G729(d) => {
                for _ in 0..FRAME / G729_FRAME {
                    out.extend(d.decode(&[], true, false, false));
                }
                return;
            }
            _ => {}
        }
        out.extend(self.last.iter().map(|s| s / 2));
        out.resize(out.len() + FRAME.saturating_sub(self.last.len()), 0);
        for s in &mut self.last {
            *s /= 2;
        }
    }

    /// Appends the payload of one 20 ms frame of 8 kHz samples.
    pub fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) {
        match &mut self.encoder {
            Encoder::G711 { alaw } => domains::g711::encode(*alaw, pcm, out),
            Encoder::G722(e, up) => {
                let mut wide = std::collections::VecDeque::new();
                up.push(pcm, &mut wide);
                out.extend(e.encode(wide.make_contiguous()));
            }
            Encoder::Opus(e) => {
                let mut buf = [0u8; 400];
                if let Ok(n) = e.encode(pcm, &mut buf) {
                    out.extend(buf.iter().take(n));
                }
            }
            Encoder::G729(e) => {
                for frame in pcm.chunks_exact(G729_FRAME) {
                    let mut bytes = [0u8; g729_sys::VOICE_FRAME_BYTES];
                    if let Ok(samples) = <&[i16; G729_FRAME]>::try_from(frame) {
                        let n = e.encode_into(samples, &mut bytes);
                        out.extend(bytes.iter().take(usize::from(n)));
                    }
                }
            }
            Encoder::L16(None) => out.extend(pcm.iter().flat_map(|s| s.to_be_bytes())),
            Encoder::L16(Some(up)) => {
                let mut wide = std::collections::VecDeque::new();
                up.push(pcm, &mut wide);
                out.extend(wide.iter().flat_map(|s| s.to_be_bytes()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::{rms, tone};

    #[test]
    fn every_codec_carries_a_tone() {
        for codec in Codec::SUPPORTED {
            let mut tx = LegCodec::new(codec).unwrap();
            let mut rx = LegCodec::new(codec).unwrap();
            let input = tone(&[500.0], 8000.0, 1000);
            let mut out = Vec::new();
            let mut bytes = 0;
            for frame in input.chunks(FRAME) {
                let mut payload = Vec::new();
                tx.encode(frame, &mut payload);
                bytes += payload.len();
                rx.decode(&payload, &mut out);
            }
            assert!((out.len() as i64 - 8000).abs() <= 160, "{codec:?}: {} samples", out.len());
            // Codec delay aside, the level survives.
            let level = rms(&out[2000..]);
            assert!((4000.0..7000.0).contains(&level), "{codec:?}: level {level}");
            let expected_bytes = match codec {
                Codec::Pcmu | Codec::Pcma | Codec::G722 => 8000,
                Codec::L16 => 16000,
                Codec::L16Wide => 32000,
                Codec::G729 => 1000,
                Codec::Opus => 0,
            };
            if expected_bytes > 0 {
                assert!((bytes as i64 - expected_bytes).abs() <= 640, "{codec:?}: {bytes} bytes per second");
            } else {
                assert!(bytes < 4000, "Opus compresses: {bytes} bytes per second");
            }
            let mut concealed = Vec::new();
            rx.conceal(&mut concealed);
            assert_eq!(concealed.len(), FRAME, "{codec:?}");
        }
    }
}
