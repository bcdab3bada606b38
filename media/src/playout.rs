//! What an endpoint sends of its own, as opposed to relaying its peer: a play (a clip, looped,
//! at a level) and DTMF (RFC 4733 events, or tones to a peer without telephone-event), paced
//! by a 20 ms clock. Our packets form one RTP stream per endpoint with its own SSRC, sequence
//! numbers and a timestamp that advances with the clock, so the far end's jitter buffer sees
//! one continuous source however plays and digits follow each other.

use std::sync::Arc;
use std::time::Duration;

use domains::dtmf::{self, DtmfSlot};
use domains::media::PlaySource;

use crate::audio::{self, FRAME};
use crate::endpoint::Endpoint;
use crate::sources::Sources;

/// The packet clock.
pub const PTIME: Duration = Duration::from_millis(20);

/// Our RTP stream's header state.
#[derive(Debug)]
pub struct OutStream {
    ssrc: u32,
    seq: u16,
    timestamp: u32,
    /// The next packet starts a talkspurt (RFC 3551 §4.1): set after a silence in our stream.
    marker: bool,
    /// The timestamp of the telephone-event being sent.
    event_timestamp: u32,
}

impl OutStream {
    pub fn new() -> OutStream {
        OutStream {
            ssrc: rand::random(),
            seq: rand::random(),
            timestamp: rand::random(),
            marker: true,
            event_timestamp: 0,
        }
    }

    fn header(&mut self, payload_type: u8, marker: bool, timestamp: u32, out: &mut Vec<u8>) {
        out.push(0x80);
        out.push(if marker { 0x80 } else { 0 } | (payload_type & 0x7f));
        out.extend(self.seq.to_be_bytes());
        out.extend(timestamp.to_be_bytes());
        out.extend(self.ssrc.to_be_bytes());
        self.seq = self.seq.wrapping_add(1);
    }

    /// An audio packet for this slot; the clock advances one frame (`ticks` of the codec's
    /// RTP clock: 160 at 8 kHz, 960 for Opus).
    pub fn audio(&mut self, payload_type: u8, payload: &[u8], ticks: u32, out: &mut Vec<u8>) {
        let marker = std::mem::replace(&mut self.marker, false);
        let ts = self.timestamp;
        self.header(payload_type, marker, ts, out);
        out.extend_from_slice(payload);
        self.timestamp = self.timestamp.wrapping_add(ticks);
    }

    /// A telephone-event packet for this slot; `first` starts a new event (marker bit, new
    /// timestamp). The clock advances one frame.
    pub fn event(&mut self, payload_type: u8, payload: [u8; 4], first: bool, out: &mut Vec<u8>) {
        if first {
            self.event_timestamp = self.timestamp;
        }
        let ts = self.event_timestamp;
        self.header(payload_type, first, ts, out);
        out.extend(payload);
        self.timestamp = self.timestamp.wrapping_add(FRAME as u32);
        self.marker = true;
    }

    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    pub fn timestamp(&self) -> u32 {
        self.timestamp
    }

    /// A slot in which nothing is sent.
    pub fn skip(&mut self) {
        self.timestamp = self.timestamp.wrapping_add(FRAME as u32);
        self.marker = true;
    }
}

impl Default for OutStream {
    fn default() -> Self {
        OutStream::new()
    }
}

/// A 20 ms clock for one sender. Late ticks are caught up at once (burst): the far end's jitter
/// buffer absorbs a burst, while a skipped slot would be a hole in the audio.
fn clock() -> tokio::time::Interval {
    tokio::time::interval(PTIME)
}

/// Plays `source` on `ep` until done (`loops` times, 0 = until stopped), then reports.
pub async fn play(
    ep: Arc<Endpoint>,
    sources: Arc<Sources>,
    play_id: String,
    source: PlaySource,
    loops: u32,
    level: f64,
) {
    let clip = match sources.clip(&source).await {
        Ok(clip) => clip,
        Err(e) => {
            tracing::info!(endpoint_id = %ep.id, call_uuid = %ep.call_uuid, %play_id, error = %e, "play failed");
            ep.play_ended(&play_id, Some(e.to_string()));
            return;
        }
    };
    let _own = ep.sending_own();
    let gain = audio::gain(level);
    let mut clock = clock();
    let mut frame = Vec::with_capacity(FRAME);
    let mut round = 0u32;
    while loops == 0 || round < loops {
        for chunk in clip.chunks(FRAME) {
            frame.clear();
            frame.extend_from_slice(chunk);
            frame.resize(FRAME, 0);
            audio::apply_gain(&mut frame, gain);
            clock.tick().await;
            ep.send_audio(&frame).await;
        }
        round = round.saturating_add(1);
    }
    ep.play_ended(&play_id, None);
}

/// Sends `digits` on `ep`: RFC 4733 events when the leg negotiated telephone-event, else tones.
pub async fn send_dtmf(ep: Arc<Endpoint>, digits: String) {
    let _own = ep.sending_own();
    let mut clock = clock();
    match ep.telephone_event() {
        Some(pt) => {
            for slot in dtmf::event_slots(&digits, dtmf::TONE_MS) {
                clock.tick().await;
                match slot {
                    DtmfSlot::Event { payload, first } => ep.send_event(pt, payload, first).await,
                    DtmfSlot::Gap => ep.skip_slot(),
                }
            }
        }
        None => {
            for chunk in audio::dtmf_tones(&digits).chunks(FRAME) {
                clock.tick().await;
                ep.send_audio(chunk).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domains::rtp;

    #[test]
    fn one_stream_across_audio_events_and_gaps() {
        let mut s = OutStream::new();
        let (mut a, mut b, mut c, mut d) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        s.audio(0, &[0xff; 160], 160, &mut a);
        s.audio(0, &[0xff; 160], 160, &mut b);
        s.event(101, [1, 0, 0, 160], true, &mut c);
        s.skip();
        s.event(101, [1, 0x80, 1, 64], false, &mut d);
        let [ha, hb, hc, hd] = [&a, &b, &c, &d].map(|p| rtp::parse(p).unwrap());
        assert!(ha.marker && !hb.marker, "marker on the first packet only");
        assert_eq!(hb.timestamp.wrapping_sub(ha.timestamp), 160);
        assert_eq!(hb.sequence.wrapping_sub(ha.sequence), 1);
        assert!(hc.marker && !hd.marker);
        assert_eq!(hc.timestamp, hd.timestamp, "an event keeps its start timestamp");
        assert_eq!(hd.sequence.wrapping_sub(hc.sequence), 1, "a skipped slot sends nothing");
        assert_eq!((hc.payload_type, ha.ssrc == hd.ssrc), (101, true));
        let mut e = Vec::new();
        s.audio(0, &[0xff; 160], 160, &mut e);
        let he = rtp::parse(&e).unwrap();
        assert!(he.marker, "audio after an event starts a talkspurt");
        assert_eq!(he.timestamp.wrapping_sub(hc.timestamp), 480, "the clock ran through the event");
    }
}
