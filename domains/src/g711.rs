//! G.711 µ-law ↔ A-law transcoding for legs that negotiated different laws. Both are one byte
//! per sample, so a payload converts in place through a 256-entry table, built at compile time
//! from the reference algorithms (ITU-T G.711; the classic Sun `g711.c`) via 16-bit linear PCM.
//! Frames are decoded to and encoded from linear PCM for players, recorders and DTMF
//! detection. Hand-written (a page, checked against the reference values below) rather than a
//! crate: the relay needs the in-place law-to-law tables, which the codec crates do not offer.

const fn ulaw_to_linear(u: u8) -> i16 {
    let u = !u;
    let t = ((((u & 0x0f) as i16) << 3) + 0x84) << ((u & 0x70) >> 4);
    if u & 0x80 != 0 { 0x84 - t } else { t - 0x84 }
}

const fn alaw_to_linear(a: u8) -> i16 {
    let a = a ^ 0x55;
    let seg = (a & 0x70) >> 4;
    let mut t = ((a & 0x0f) as i16) << 4;
    t = match seg {
        0 => t + 8,
        1 => t + 0x108,
        _ => (t + 0x108) << (seg - 1),
    };
    if a & 0x80 != 0 { t } else { -t }
}

/// Segment of `value` given the segment end points (first index whose end is ≥ value).
const fn segment(value: i32, ends: &[i32; 8]) -> usize {
    let mut rest: &[i32] = ends;
    let mut i = 0;
    while let [end, tail @ ..] = rest {
        if value <= *end {
            return i;
        }
        i += 1;
        rest = tail;
    }
    8
}

const fn linear_to_ulaw(pcm: i16) -> u8 {
    const ENDS: [i32; 8] = [0x3f, 0x7f, 0xff, 0x1ff, 0x3ff, 0x7ff, 0xfff, 0x1fff];
    let mut v = (pcm as i32) >> 2;
    let mask: u8 = if v < 0 {
        v = -v;
        0x7f
    } else {
        0xff
    };
    if v > 8159 {
        v = 8159;
    }
    v += 0x84 >> 2;
    let seg = segment(v, &ENDS);
    if seg >= 8 {
        return 0x7f ^ mask;
    }
    let u = ((seg as u8) << 4) | ((v >> (seg + 1)) as u8 & 0x0f);
    u ^ mask
}

const fn linear_to_alaw(pcm: i16) -> u8 {
    const ENDS: [i32; 8] = [0x1f, 0x3f, 0x7f, 0xff, 0x1ff, 0x3ff, 0x7ff, 0xfff];
    let mut v = (pcm as i32) >> 3;
    let mask: u8 = if v >= 0 {
        0xd5
    } else {
        v = -v - 1;
        0x55
    };
    let seg = segment(v, &ENDS);
    if seg >= 8 {
        return 0x7f ^ mask;
    }
    let shift = if seg < 2 { 1 } else { seg };
    let a = ((seg as u8) << 4) | ((v >> shift) as u8 & 0x0f);
    a ^ mask
}

// Evaluated at compile time only, and `i` stays below 256, the table's length.
#[allow(clippy::indexing_slicing)]
const fn table(ulaw_to_alaw: bool) -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = if ulaw_to_alaw {
            linear_to_alaw(ulaw_to_linear(i as u8))
        } else {
            linear_to_ulaw(alaw_to_linear(i as u8))
        };
        i += 1;
    }
    t
}

static ULAW_TO_ALAW: [u8; 256] = table(true);
static ALAW_TO_ULAW: [u8; 256] = table(false);

// A `u8` always indexes a 256-entry table.
#[allow(clippy::indexing_slicing)]
fn map(payload: &mut [u8], table: &[u8; 256]) {
    for b in payload {
        *b = table[usize::from(*b)];
    }
}

pub fn ulaw_to_alaw(payload: &mut [u8]) {
    map(payload, &ULAW_TO_ALAW);
}

pub fn alaw_to_ulaw(payload: &mut [u8]) {
    map(payload, &ALAW_TO_ULAW);
}

/// Appends the linear samples of a G.711 payload.
pub fn decode(alaw: bool, payload: &[u8], out: &mut Vec<i16>) {
    out.extend(payload.iter().map(|b| if alaw { alaw_to_linear(*b) } else { ulaw_to_linear(*b) }));
}

/// Appends the G.711 bytes of linear samples.
pub fn encode(alaw: bool, pcm: &[i16], out: &mut Vec<u8>) {
    out.extend(pcm.iter().map(|s| if alaw { linear_to_alaw(*s) } else { linear_to_ulaw(*s) }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_and_known_values() {
        // Digital silence: µ-law 0xFF (+0), A-law 0xD5 (+8).
        assert_eq!(ulaw_to_linear(0xff), 0);
        assert_eq!(alaw_to_linear(0xd5), 8);
        assert_eq!(ULAW_TO_ALAW[0xff], 0xd5);
        assert_eq!(ulaw_to_linear(ALAW_TO_ULAW[0xd5]), 8);
        // Full scale both ways.
        assert_eq!((ulaw_to_linear(0x80), ulaw_to_linear(0x00)), (32124, -32124));
        assert_eq!((alaw_to_linear(0xaa), alaw_to_linear(0x2a)), (32256, -32256));
    }

    #[test]
    fn encoders_invert_decoders() {
        for i in 0..=255u8 {
            assert_eq!(linear_to_ulaw(ulaw_to_linear(i)), if i == 0x7f { 0xff } else { i }, "µ-law {i:#x}");
            assert_eq!(linear_to_alaw(alaw_to_linear(i)), i, "A-law {i:#x}");
        }
    }

    #[test]
    fn transcoding_keeps_the_signal() {
        for i in 0..=255u8 {
            let mut b = [i];
            ulaw_to_alaw(&mut b);
            let (x, y) = (i32::from(ulaw_to_linear(i)), i32::from(alaw_to_linear(b[0])));
            // Within one A-law quantisation step of the original (steps grow with level).
            assert!((x - y).abs() <= 1024.max(x.abs() / 16), "µ {i:#x} = {x}, A {:#x} = {y}", b[0]);
            let mut c = [i];
            alaw_to_ulaw(&mut c);
            let (x, y) = (i32::from(alaw_to_linear(i)), i32::from(ulaw_to_linear(c[0])));
            assert!((x - y).abs() <= 1024.max(x.abs() / 16), "A {i:#x} = {x}, µ {:#x} = {y}", c[0]);
        }
    }
}
