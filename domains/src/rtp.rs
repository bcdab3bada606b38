//! The RTP fixed header (RFC 3550 §5.1): reading what the relay needs from a datagram and
//! rewriting the payload type in place. Hand-written (a dozen lines of bit fiddling) rather than
//! `rtp-types`, so the relay works on its own receive buffer without copies. Nothing here
//! trusts the datagram: every length is checked and a bad packet is an [`RtpError`].

/// What the relay reads from an RTP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    pub marker: bool,
    pub payload_type: u8,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    /// The payload is `packet[payload_start..payload_end]` (CSRCs, extension and padding excluded).
    pub payload_start: usize,
    pub payload_end: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RtpError {
    #[error("datagram of {0} bytes is shorter than an RTP header")]
    TooShort(usize),
    #[error("RTP version {0}, expected 2")]
    Version(u8),
    #[error("CSRC list, extension or padding runs past the datagram")]
    BadLength,
}

const FIXED_HEADER: usize = 12;

pub fn parse(packet: &[u8]) -> Result<RtpHeader, RtpError> {
    let Some(fixed) = packet.first_chunk::<FIXED_HEADER>() else {
        return Err(RtpError::TooShort(packet.len()));
    };
    let [b0, b1, s0, s1, t0, t1, t2, t3, c0, c1, c2, c3] = *fixed;
    let version = b0 >> 6;
    if version != 2 {
        return Err(RtpError::Version(version));
    }
    let padding = b0 & 0x20 != 0;
    let extension = b0 & 0x10 != 0;
    let csrc_count = usize::from(b0 & 0x0f);
    let mut start = FIXED_HEADER + 4 * csrc_count;
    if extension {
        // The extension header: 16 bits defined by profile, then its length in 32-bit words.
        let &[_, _, w0, w1] = packet.get(start..).and_then(<[u8]>::first_chunk::<4>).ok_or(RtpError::BadLength)?;
        start += 4 + 4 * usize::from(u16::from_be_bytes([w0, w1]));
    }
    let mut end = packet.len();
    if padding {
        let pad = usize::from(*packet.last().ok_or(RtpError::BadLength)?);
        end = end.checked_sub(pad).ok_or(RtpError::BadLength)?;
    }
    if start > end {
        return Err(RtpError::BadLength);
    }
    Ok(RtpHeader {
        marker: b1 & 0x80 != 0,
        payload_type: b1 & 0x7f,
        sequence: u16::from_be_bytes([s0, s1]),
        timestamp: u32::from_be_bytes([t0, t1, t2, t3]),
        ssrc: u32::from_be_bytes([c0, c1, c2, c3]),
        payload_start: start,
        payload_end: end,
    })
}

/// RTCP multiplexed on the RTP port (RFC 5761 §4): packet types 192–223 land where RTP's
/// marker bit and payload type are.
pub fn is_rtcp(packet: &[u8]) -> bool {
    matches!(packet, [b0, b1, ..] if b0 >> 6 == 2 && (192..=223).contains(b1))
}

/// Rewrites the payload type, keeping the marker bit. The caller has parsed the packet.
pub fn set_payload_type(packet: &mut [u8], payload_type: u8) {
    if let Some(b) = packet.get_mut(1) {
        *b = (*b & 0x80) | (payload_type & 0x7f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(pt: u8, seq: u16, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x80, 0x80 | pt];
        p.extend(seq.to_be_bytes());
        p.extend(160u32.to_be_bytes());
        p.extend(0xdead_beefu32.to_be_bytes());
        p.extend(payload);
        p
    }

    #[test]
    fn parses_and_rewrites() {
        let mut p = packet(0, 7, &[1, 2, 3]);
        let h = parse(&p).unwrap();
        assert_eq!((h.marker, h.payload_type, h.sequence, h.timestamp, h.ssrc), (true, 0, 7, 160, 0xdead_beef));
        assert_eq!(&p[h.payload_start..h.payload_end], &[1, 2, 3]);
        set_payload_type(&mut p, 101);
        let h = parse(&p).unwrap();
        assert_eq!((h.marker, h.payload_type), (true, 101));
    }

    #[test]
    fn csrc_extension_and_padding() {
        let mut p = packet(8, 1, &[]);
        p[0] = 0x80 | 0x20 | 0x10 | 1; // padding, extension, one CSRC
        p.extend([0, 0, 0, 9]); // CSRC
        p.extend([0xbe, 0xde, 0, 1, 0, 0, 0, 0]); // extension of one word
        p.extend([5, 6, 0, 2]); // payload 5 6, then two bytes of padding
        let h = parse(&p).unwrap();
        assert_eq!(&p[h.payload_start..h.payload_end], &[5, 6]);
    }

    #[test]
    fn rejects_hostile_datagrams() {
        assert_eq!(parse(&[0x80; 5]), Err(RtpError::TooShort(5)));
        assert_eq!(parse(&[0x40; 12]), Err(RtpError::Version(1)));
        let mut p = packet(0, 1, &[]);
        p[0] |= 0x0f; // 15 CSRCs that are not there
        assert_eq!(parse(&p), Err(RtpError::BadLength));
        let mut p = packet(0, 1, &[0xff]);
        p[0] |= 0x20; // padding longer than the packet
        assert_eq!(parse(&p), Err(RtpError::BadLength));
        let mut p = packet(0, 1, &[]);
        p[0] |= 0x10; // extension header missing
        assert_eq!(parse(&p), Err(RtpError::BadLength));
        assert!(is_rtcp(&[0x81, 200, 0, 6]) && !is_rtcp(&packet(0, 1, &[])));
    }
}
