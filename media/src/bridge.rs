//! What a packet becomes on its way from one leg of a bridge to the other: the payload type
//! numbers of the sending leg mapped to the receiving leg's (telephone-event numbers often
//! differ), and the G.711 law transcoded when the legs negotiated different ones. Sequence
//! number, timestamp, SSRC and marker pass through untouched: one stream in, one stream out.
//! Pure functions on a buffer; the sockets live in `endpoint`.

use domains::sdp::{Codec, Negotiated};

use domains::g711;
use domains::rtp::{self, RtpHeader};

/// The payload formats of one negotiated leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Formats {
    pub codec: Codec,
    pub codec_pt: u8,
    pub telephone_event: Option<u8>,
}

impl From<&Negotiated> for Formats {
    fn from(n: &Negotiated) -> Self {
        Formats { codec: n.codec, codec_pt: n.codec_pt, telephone_event: n.telephone_event }
    }
}

/// Why a packet is not relayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    /// A payload type the sending leg did not negotiate (comfort noise, a stray codec).
    UnknownPayloadType(u8),
    /// An RFC 4733 event towards a leg that did not negotiate telephone-event.
    NoTelephoneEvent,
    /// `header` does not describe `packet` (it was parsed from another buffer).
    BadHeader,
}

/// Rewrites `packet` (already parsed as `header`) from `from`'s formats to `to`'s, in place.
pub fn translate(packet: &mut [u8], header: &RtpHeader, from: &Formats, to: &Formats) -> Result<(), Dropped> {
    let pt = header.payload_type;
    if pt == from.codec_pt {
        if from.codec != to.codec {
            let payload = packet.get_mut(header.payload_start..header.payload_end).ok_or(Dropped::BadHeader)?;
            match (from.codec, to.codec) {
                (Codec::Pcmu, Codec::Pcma) => g711::ulaw_to_alaw(payload),
                (Codec::Pcma, Codec::Pcmu) => g711::alaw_to_ulaw(payload),
                _ => {}
            }
        }
        if to.codec_pt != pt {
            rtp::set_payload_type(packet, to.codec_pt);
        }
        return Ok(());
    }
    if Some(pt) == from.telephone_event {
        let out = to.telephone_event.ok_or(Dropped::NoTelephoneEvent)?;
        if out != pt {
            rtp::set_payload_type(packet, out);
        }
        return Ok(());
    }
    Err(Dropped::UnknownPayloadType(pt))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(pt: u8, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x80, pt, 0, 1, 0, 0, 0, 160, 1, 2, 3, 4];
        p.extend(payload);
        p
    }

    const PCMU_101: Formats = Formats { codec: Codec::Pcmu, codec_pt: 0, telephone_event: Some(101) };
    const PCMU_96: Formats = Formats { codec: Codec::Pcmu, codec_pt: 0, telephone_event: Some(96) };
    const PCMA_NONE: Formats = Formats { codec: Codec::Pcma, codec_pt: 8, telephone_event: None };

    fn run(mut p: Vec<u8>, from: &Formats, to: &Formats) -> Result<Vec<u8>, Dropped> {
        let h = rtp::parse(&p).unwrap();
        translate(&mut p, &h, from, to).map(|()| p)
    }

    #[test]
    fn same_formats_pass_untouched() {
        let p = packet(0, &[0x12; 160]);
        assert_eq!(run(p.clone(), &PCMU_101, &PCMU_101), Ok(p));
    }

    #[test]
    fn telephone_event_numbers_are_mapped() {
        let out = run(packet(0x80 | 101, &[1, 0x80, 0, 160]), &PCMU_101, &PCMU_96).unwrap();
        assert_eq!(out[1], 0x80 | 96, "marker kept, payload type mapped");
        assert_eq!(&out[12..], &[1, 0x80, 0, 160]);
        assert_eq!(run(packet(101, &[1, 0, 0, 160]), &PCMU_101, &PCMA_NONE), Err(Dropped::NoTelephoneEvent));
    }

    #[test]
    fn law_is_transcoded_and_header_kept() {
        let out = run(packet(0, &[0xff; 4]), &PCMU_101, &PCMA_NONE).unwrap();
        assert_eq!(out[1], 8);
        assert_eq!(&out[2..12], &packet(0, &[])[2..12]);
        assert_eq!(&out[12..], &[0xd5; 4]);
        let back = run(out, &PCMA_NONE, &PCMU_101).unwrap();
        let mut expected = [0xd5; 4];
        g711::alaw_to_ulaw(&mut expected);
        assert_eq!(back, packet(0, &expected));
    }

    #[test]
    fn unknown_payload_types_are_dropped() {
        assert_eq!(run(packet(13, &[0]), &PCMU_101, &PCMU_96), Err(Dropped::UnknownPayloadType(13)));
    }
}
