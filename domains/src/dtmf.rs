//! DTMF on the wire, free of I/O: RFC 4733 telephone-event payloads (read, and the packet
//! sequence that sends a digit), the receiver's duplicate and end-of-event handling, and a
//! Goertzel detector for in-band tones from peers that offer no `telephone-event`.
//!
//! Hand-written: the payload is four bytes and the detector a page of arithmetic; the crates
//! that exist either wrap a whole RTP stack or decode only one of the two.

/// The digits RFC 4733 §3.2 numbers 0–15, in event-code order.
const EVENT_DIGITS: [char; 16] = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '*', '#', 'A', 'B', 'C', 'D'];

/// The digit of an RFC 4733 event code (0–15), `None` for other events (flash, tones).
pub fn digit_of(event: u8) -> Option<char> {
    EVENT_DIGITS.get(usize::from(event)).copied()
}

/// The RFC 4733 event code of a digit (case-insensitive letters).
pub fn event_of(digit: char) -> Option<u8> {
    let d = digit.to_ascii_uppercase();
    EVENT_DIGITS.iter().position(|c| *c == d).and_then(|i| u8::try_from(i).ok())
}

/// One telephone-event payload (RFC 4733 §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    pub event: u8,
    pub end: bool,
    /// Power level in -dBm0, 0–63.
    pub volume: u8,
    /// In timestamp units since the event began.
    pub duration: u16,
}

impl TelephoneEvent {
    pub fn parse(payload: &[u8]) -> Option<TelephoneEvent> {
        let [event, flags, d0, d1] = *payload.first_chunk::<4>()?;
        Some(TelephoneEvent {
            event,
            end: flags & 0x80 != 0,
            volume: flags & 0x3f,
            duration: u16::from_be_bytes([d0, d1]),
        })
    }

    pub fn to_bytes(self) -> [u8; 4] {
        let [d0, d1] = self.duration.to_be_bytes();
        [self.event, if self.end { 0x80 } else { 0 } | (self.volume & 0x3f), d0, d1]
    }
}

/// Turns a stream of telephone-event packets into digits, each once. An event is identified by
/// its RTP timestamp (all packets of one event share it, RFC 4733 §2.5.1.3); a digit is
/// reported on the first packet of a new event, so neither the retransmitted end packets nor a
/// lost start packet (the first packet seen is then an update or an end) loses or doubles it.
#[derive(Debug, Default, Clone)]
pub struct EventReceiver {
    current: Option<(u32, u32)>,
}

impl EventReceiver {
    /// The digit this packet starts, if it starts one.
    pub fn on_packet(&mut self, ssrc: u32, timestamp: u32, payload: &[u8]) -> Option<char> {
        let event = TelephoneEvent::parse(payload)?;
        if self.current == Some((ssrc, timestamp)) {
            return None;
        }
        self.current = Some((ssrc, timestamp));
        digit_of(event.event)
    }
}

/// What the sender puts in one 20 ms slot while sending digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtmfSlot {
    /// A telephone-event packet; `first` sets the marker bit and starts a new timestamp.
    Event { payload: [u8; 4], first: bool },
    /// Nothing to send (a pause, or the gap between digits).
    Gap,
}

/// How long each sent digit sounds.
pub const TONE_MS: u16 = 100;

/// How long sending `digits` (with [`TONE_MS`] tones) takes.
pub fn send_duration(digits: &str) -> std::time::Duration {
    std::time::Duration::from_millis(20 * event_slots(digits, TONE_MS).len() as u64)
}

/// The slots that send `digits` as RFC 4733 events: each digit lasts `tone_ms`, its end packet
/// is sent three times (§2.5.1.4), then a 60 ms gap; `p` (or `P`, `,`) pauses 500 ms. Characters
/// that are not digits were refused before this (see [`valid_digits`]).
pub fn event_slots(digits: &str, tone_ms: u16) -> Vec<DtmfSlot> {
    const SLOT_MS: u16 = 20;
    const SAMPLES_PER_MS: u16 = 8;
    let mut slots = Vec::new();
    for c in digits.chars() {
        let Some(event) = event_of(c) else {
            if matches!(c, 'p' | 'P' | ',') {
                slots.extend([DtmfSlot::Gap; 25]);
            }
            continue;
        };
        let packets = (tone_ms / SLOT_MS).max(1);
        for i in 1..=packets {
            let end = i == packets;
            let duration = i.saturating_mul(SLOT_MS).saturating_mul(SAMPLES_PER_MS);
            let payload = TelephoneEvent { event, end, volume: 10, duration }.to_bytes();
            let repeats = if end { 3 } else { 1 };
            for _ in 0..repeats {
                slots.push(DtmfSlot::Event { payload, first: i == 1 });
            }
        }
        slots.extend([DtmfSlot::Gap; 3]);
    }
    slots
}

/// Whether `digits` holds only DTMF digits and pauses: what `send_dtmf` accepts.
pub fn valid_digits(digits: &str) -> bool {
    !digits.is_empty() && digits.chars().all(|c| event_of(c).is_some() || matches!(c, 'p' | 'P' | ','))
}

/// ITU-T Q.23: the keypad, its row and its column frequencies.
const ROWS: [f32; 4] = [697.0, 770.0, 852.0, 941.0];
const COLS: [f32; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
const KEYPAD: [[char; 4]; 4] = [['1', '2', '3', 'A'], ['4', '5', '6', 'B'], ['7', '8', '9', 'C'], ['*', '0', '#', 'D']];

/// The row and column frequencies of a digit (ITU-T Q.23).
pub fn tone_frequencies(digit: char) -> Option<(f32, f32)> {
    let d = digit.to_ascii_uppercase();
    KEYPAD.iter().enumerate().find_map(|(r, row)| {
        let c = row.iter().position(|k| *k == d)?;
        Some((*ROWS.get(r)?, *COLS.get(c)?))
    })
}

/// In-band DTMF detection on 8 kHz linear PCM, fed in any block size. Each 20 ms block is
/// measured with the Goertzel algorithm at the eight Q.23 frequencies; a digit needs one row
/// and one column tone well above the others and the block's energy (twist and ratio checks),
/// for two blocks in a row (40 ms, Q.24's minimum), and is reported once until the tone stops.
#[derive(Debug, Clone, Default)]
pub struct ToneDetector {
    block: Vec<f32>,
    candidate: Option<char>,
    hits: u8,
    reported: Option<char>,
}

impl ToneDetector {
    const BLOCK: usize = 160;

    /// Digits that became certain in `samples`.
    pub fn feed(&mut self, samples: &[i16]) -> Vec<char> {
        let mut found = Vec::new();
        let mut rest = samples;
        while !rest.is_empty() {
            let (now, later) = rest.split_at(Self::BLOCK.saturating_sub(self.block.len()).min(rest.len()));
            self.block.extend(now.iter().map(|s| f32::from(*s)));
            rest = later;
            if self.block.len() >= Self::BLOCK {
                if let Some(d) = self.block_done() {
                    found.push(d);
                }
                self.block.clear();
            }
        }
        found
    }

    fn block_done(&mut self) -> Option<char> {
        let digit = detect_block(&self.block);
        if digit.is_none() {
            self.candidate = None;
            self.hits = 0;
            self.reported = None;
            return None;
        }
        if digit == self.candidate {
            self.hits = self.hits.saturating_add(1);
        } else {
            self.candidate = digit;
            self.hits = 1;
        }
        if self.hits >= 2 && self.reported != digit {
            self.reported = digit;
            return digit;
        }
        None
    }
}

/// Goertzel power of `freq` over `block` (8 kHz).
pub fn goertzel(block: &[f32], freq: f32) -> f32 {
    let [power] = goertzel_bank(block, &[freq]);
    power
}

/// Goertzel powers of every one of `freqs` over `block` (8 kHz), in one pass. Each filter's
/// recurrence waits on its previous sample, so one pass per frequency is bound by that
/// latency; run side by side, the filters overlap (and vectorise). On the relay's path, where
/// every packet of a leg without telephone-event is scanned for tones, this took in-band
/// detection from about a fifth of the media process's CPU to a small part of it.
pub fn goertzel_bank<const N: usize>(block: &[f32], freqs: &[f32; N]) -> [f32; N] {
    let coeffs = freqs.map(|f| 2.0 * (2.0 * std::f32::consts::PI * f / 8000.0).cos());
    let (mut s1, mut s2) = ([0.0f32; N], [0.0f32; N]);
    for x in block {
        for ((a, b), c) in s1.iter_mut().zip(s2.iter_mut()).zip(coeffs.iter()) {
            let s = x + c * *a - *b;
            *b = *a;
            *a = s;
        }
    }
    let mut powers = [0.0f32; N];
    for (((p, a), b), c) in powers.iter_mut().zip(s1).zip(s2).zip(coeffs) {
        *p = a * a + b * b - c * a * b;
    }
    powers
}

/// The row frequencies, then the column ones.
const ROWS_THEN_COLS: [f32; 8] = [697.0, 770.0, 852.0, 941.0, 1209.0, 1336.0, 1477.0, 1633.0];

fn detect_block(block: &[f32]) -> Option<char> {
    let energy: f32 = block.iter().map(|x| x * x).sum();
    // Too quiet to be a tone (about -45 dBm0 over the block).
    if energy < 1.0e6 {
        return None;
    }
    let powers = goertzel_bank(block, &ROWS_THEN_COLS);
    let (rows, cols) = powers.split_at(ROWS.len());
    let strongest = |powers: &[f32]| {
        let (i, best) =
            powers.iter().copied().enumerate().fold((0, 0.0f32), |acc, (i, p)| if p > acc.1 { (i, p) } else { acc });
        let others_clear = powers.iter().enumerate().all(|(j, p)| j == i || *p * 6.0 < best);
        (i, best, others_clear)
    };
    let (r, row_power, row_clear) = strongest(rows);
    let (c, col_power, col_clear) = strongest(cols);
    // A pure sinusoid of amplitude A over N samples has Goertzel power ≈ (A·N/2)² and block
    // energy A²·N/2, so power / (energy · N/2) ≈ 1 for a tone and much less for speech.
    let n = block.len() as f32;
    let share = (row_power + col_power) / (energy * n / 2.0);
    let twist_ok = row_power < col_power * 8.0 && col_power < row_power * 8.0;
    if row_clear && col_clear && twist_ok && share > 0.6 {
        return KEYPAD.get(r).and_then(|row| row.get(c)).copied();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(digit: char, ms: usize) -> Vec<i16> {
        let (lo, hi) = tone_frequencies(digit).unwrap();
        (0..ms * 8)
            .map(|n| {
                let t = n as f32 / 8000.0;
                (6000.0 * ((2.0 * std::f32::consts::PI * lo * t).sin() + (2.0 * std::f32::consts::PI * hi * t).sin()))
                    as i16
            })
            .collect()
    }

    #[test]
    fn a_bank_of_filters_gives_what_each_filter_gives_alone() {
        let block: Vec<f32> = tone('5', 20).iter().map(|s| f32::from(*s)).collect();
        let bank = goertzel_bank(&block, &ROWS_THEN_COLS);
        for (f, p) in ROWS_THEN_COLS.iter().zip(bank) {
            let alone = {
                let coeff = 2.0 * (2.0 * std::f32::consts::PI * f / 8000.0).cos();
                let (mut s1, mut s2) = (0.0f32, 0.0f32);
                for x in &block {
                    let s = x + coeff * s1 - s2;
                    s2 = s1;
                    s1 = s;
                }
                s1 * s1 + s2 * s2 - coeff * s1 * s2
            };
            assert_eq!(p, alone, "{f} Hz");
        }
        assert_eq!(ROWS_THEN_COLS[..4], ROWS);
        assert_eq!(ROWS_THEN_COLS[4..], COLS);
    }

    #[test]
    fn event_codes_round_trip() {
        for (i, d) in EVENT_DIGITS.iter().enumerate() {
            assert_eq!(event_of(*d), Some(i as u8));
            assert_eq!(digit_of(i as u8), Some(*d));
        }
        assert_eq!(event_of('a'), Some(12));
        assert_eq!(digit_of(16), None);
        assert_eq!(event_of('x'), None);
        let e = TelephoneEvent { event: 11, end: true, volume: 10, duration: 800 };
        assert_eq!(TelephoneEvent::parse(&e.to_bytes()), Some(e));
        assert_eq!(TelephoneEvent::parse(&[1, 2, 3]), None);
    }

    #[test]
    fn receiver_reports_each_event_once() {
        let mut rx = EventReceiver::default();
        let start = TelephoneEvent { event: 1, end: false, volume: 10, duration: 160 }.to_bytes();
        let end = TelephoneEvent { event: 1, end: true, volume: 10, duration: 800 }.to_bytes();
        assert_eq!(rx.on_packet(7, 1000, &start), Some('1'));
        assert_eq!(rx.on_packet(7, 1000, &start), None, "update of the same event");
        for _ in 0..3 {
            assert_eq!(rx.on_packet(7, 1000, &end), None, "retransmitted end");
        }
        assert_eq!(rx.on_packet(7, 2000, &end), Some('1'), "a new event whose start was lost");
        assert_eq!(rx.on_packet(7, 2000, &[1]), None, "a short payload is ignored");
    }

    #[test]
    fn sender_slots_follow_rfc4733() {
        let slots = event_slots("1p#", 100);
        let events: Vec<TelephoneEvent> = slots
            .iter()
            .filter_map(|s| match s {
                DtmfSlot::Event { payload, .. } => TelephoneEvent::parse(payload),
                DtmfSlot::Gap => None,
            })
            .collect();
        // 5 packets per digit, the last sent 3 times.
        assert_eq!(events.len(), 14);
        assert_eq!(events.iter().filter(|e| e.event == 1 && e.end).count(), 3);
        assert_eq!(events.iter().filter(|e| e.event == 11 && e.end).count(), 3);
        assert_eq!(events.first().map(|e| e.duration), Some(160));
        assert_eq!(events.get(4).map(|e| (e.duration, e.end)), Some((800, true)));
        let firsts = slots.iter().filter(|s| matches!(s, DtmfSlot::Event { first: true, .. })).count();
        assert_eq!(firsts, 2, "the marker bit starts each digit");
        assert!(slots.iter().filter(|s| **s == DtmfSlot::Gap).count() >= 25, "the pause");
        assert!(valid_digits("123*#ABCDp,") && !valid_digits("12x") && !valid_digits(""));
    }

    #[test]
    fn goertzel_detects_every_digit_once() {
        for d in EVENT_DIGITS {
            let mut det = ToneDetector::default();
            let mut audio = tone(d, 100);
            audio.extend(vec![0i16; 400]);
            audio.extend(tone(d, 100));
            assert_eq!(det.feed(&audio), vec![d, d], "digit {d}");
        }
    }

    #[test]
    fn goertzel_ignores_single_tones_noise_and_short_blips() {
        let mut det = ToneDetector::default();
        let single: Vec<i16> = (0..1600)
            .map(|n| (8000.0 * (2.0 * std::f32::consts::PI * 1000.0 * n as f32 / 8000.0).sin()) as i16)
            .collect();
        assert!(det.feed(&single).is_empty());
        let mut seed = 12345u32;
        let noise: Vec<i16> = (0..1600)
            .map(|_| {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                ((seed >> 16) as i16) / 4
            })
            .collect();
        assert!(det.feed(&noise).is_empty());
        assert!(det.feed(&tone('5', 20)).is_empty(), "20 ms is shorter than Q.24's minimum");
    }
}
