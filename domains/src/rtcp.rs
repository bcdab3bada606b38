//! RTCP (RFC 3550 §6.4), free of I/O: the sender and receiver reports a leg sends every few
//! seconds (with the SDES CNAME every compound packet carries), the ones it receives, and the
//! round-trip time their LSR/DLSR fields give. Hand-written: a compound packet is a few dozen
//! bytes of fixed layout, and the RTCP crates bring a whole RTP session with them.

/// One report block: what a receiver says of one source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReportBlock {
    pub ssrc: u32,
    /// Fraction of packets lost since the last report, in 1/256.
    pub fraction_lost: u8,
    /// Packets lost since the start (24-bit signed on the wire).
    pub cumulative_lost: i32,
    pub highest_seq: u32,
    /// Interarrival jitter in timestamp units.
    pub jitter: u32,
    /// The middle 32 bits of the NTP time of the last SR received from the source (0: none).
    pub lsr: u32,
    /// Delay since that SR, in 1/65536 s.
    pub dlsr: u32,
}

/// What a sender report says of its sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderInfo {
    pub ntp: u64,
    pub rtp_timestamp: u32,
    pub packets: u32,
    pub octets: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RtcpPacket {
    SenderReport {
        ssrc: u32,
        info: SenderInfo,
        reports: Vec<ReportBlock>,
    },
    ReceiverReport {
        ssrc: u32,
        reports: Vec<ReportBlock>,
    },
    /// SDES, BYE, APP, feedback…: skipped.
    Other {
        packet_type: u8,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RtcpError {
    #[error("not an RTCP packet (version or type)")]
    NotRtcp,
    #[error("a length runs past the datagram")]
    BadLength,
}

const SR: u8 = 200;
const RR: u8 = 201;
const SDES: u8 = 202;

fn be32(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4).and_then(|s| s.try_into().ok()).map(u32::from_be_bytes)
}

fn blocks(body: &[u8], count: usize) -> Result<Vec<ReportBlock>, RtcpError> {
    (0..count)
        .map(|i| {
            let at = i * 24;
            let word = |k: usize| be32(body, at + 4 * k).ok_or(RtcpError::BadLength);
            let lost = word(1)?;
            // 24-bit two's complement.
            let cumulative = ((lost & 0x00ff_ffff) as i32) << 8 >> 8;
            Ok(ReportBlock {
                ssrc: word(0)?,
                fraction_lost: (lost >> 24) as u8,
                cumulative_lost: cumulative,
                highest_seq: word(2)?,
                jitter: word(3)?,
                lsr: word(4)?,
                dlsr: word(5)?,
            })
        })
        .collect()
}

/// The packets of a compound RTCP datagram.
pub fn parse(datagram: &[u8]) -> Result<Vec<RtcpPacket>, RtcpError> {
    let mut out = Vec::new();
    let mut rest = datagram;
    while !rest.is_empty() {
        let &[b0, pt, l0, l1] = rest.first_chunk::<4>().ok_or(RtcpError::BadLength)?;
        if b0 >> 6 != 2 || !(192..=223).contains(&pt) {
            return Err(RtcpError::NotRtcp);
        }
        let len = (usize::from(u16::from_be_bytes([l0, l1])) + 1) * 4;
        let packet = rest.get(..len).ok_or(RtcpError::BadLength)?;
        let count = usize::from(b0 & 0x1f);
        let ssrc = be32(packet, 4).ok_or(RtcpError::BadLength)?;
        out.push(match pt {
            SR => {
                let word = |k: usize| be32(packet, 8 + 4 * k).ok_or(RtcpError::BadLength);
                let ntp = (u64::from(word(0)?) << 32) | u64::from(word(1)?);
                let info = SenderInfo { ntp, rtp_timestamp: word(2)?, packets: word(3)?, octets: word(4)? };
                RtcpPacket::SenderReport { ssrc, info, reports: blocks(packet.get(28..).unwrap_or_default(), count)? }
            }
            RR => RtcpPacket::ReceiverReport { ssrc, reports: blocks(packet.get(8..).unwrap_or_default(), count)? },
            other => RtcpPacket::Other { packet_type: other },
        });
        rest = rest.get(len..).unwrap_or_default();
    }
    Ok(out)
}

/// A compound report from `ssrc`: an SR when `sender` is given (else an RR) with `blocks`, then
/// an SDES with the CNAME.
pub fn build(ssrc: u32, sender: Option<SenderInfo>, blocks: &[ReportBlock], cname: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    let count = blocks.len().min(31) as u8;
    let words = 1 + if sender.is_some() { 5 } else { 0 } + 6 * usize::from(count);
    out.push(0x80 | count);
    out.push(if sender.is_some() { SR } else { RR });
    out.extend((words as u16).to_be_bytes());
    out.extend(ssrc.to_be_bytes());
    if let Some(s) = sender {
        out.extend(s.ntp.to_be_bytes());
        out.extend(s.rtp_timestamp.to_be_bytes());
        out.extend(s.packets.to_be_bytes());
        out.extend(s.octets.to_be_bytes());
    }
    for b in blocks.iter().take(31) {
        out.extend(b.ssrc.to_be_bytes());
        let lost =
            (u32::from(b.fraction_lost) << 24) | (b.cumulative_lost.clamp(-0x80_0000, 0x7f_ffff) as u32 & 0x00ff_ffff);
        out.extend(lost.to_be_bytes());
        out.extend(b.highest_seq.to_be_bytes());
        out.extend(b.jitter.to_be_bytes());
        out.extend(b.lsr.to_be_bytes());
        out.extend(b.dlsr.to_be_bytes());
    }
    // SDES: one chunk, CNAME item, null-terminated and padded to 32 bits.
    let name = cname.as_bytes().get(..cname.len().min(255)).unwrap_or_default();
    let chunk_len = 4 + 2 + name.len() + 1;
    let padded = chunk_len.div_ceil(4) * 4;
    out.push(0x81);
    out.push(SDES);
    out.extend((((4 + padded) / 4 - 1) as u16).to_be_bytes());
    out.extend(ssrc.to_be_bytes());
    out.push(1);
    out.push(name.len() as u8);
    out.extend_from_slice(name);
    out.resize(out.len() + padded - chunk_len + 1, 0);
    out
}

/// The middle 32 bits of an NTP timestamp (LSR's unit).
pub fn ntp_middle(ntp: u64) -> u32 {
    (ntp >> 16) as u32
}

/// NTP time (seconds since 1900 in 32.32 fixed point) of a Unix time in microseconds.
pub fn ntp_from_unix_micros(micros: u64) -> u64 {
    const EPOCH_OFFSET: u64 = 2_208_988_800;
    let secs = micros / 1_000_000 + EPOCH_OFFSET;
    let frac = ((micros % 1_000_000) << 32) / 1_000_000;
    (secs << 32) | frac
}

/// The round-trip time a report block gives, received at `now_ntp` (RFC 3550 §6.4.1): arrival
/// − LSR − DLSR; `None` when the block names no SR.
pub fn rtt_ms(now_ntp: u64, block: &ReportBlock) -> Option<f64> {
    if block.lsr == 0 {
        return None;
    }
    let rtt = ntp_middle(now_ntp).wrapping_sub(block.lsr).wrapping_sub(block.dlsr);
    // A "negative" result (clock trouble) wraps to a huge value: ignore it.
    (rtt < 0x8000_0000).then(|| f64::from(rtt) * 1000.0 / 65536.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_round_trip() {
        let block = ReportBlock {
            ssrc: 0xdead_beef,
            fraction_lost: 25,
            cumulative_lost: -3,
            highest_seq: 70_000,
            jitter: 42,
            lsr: 0x1234_5678,
            dlsr: 65536,
        };
        let info = SenderInfo {
            ntp: ntp_from_unix_micros(1_700_000_000_000_000),
            rtp_timestamp: 160,
            packets: 10,
            octets: 1720,
        };
        let sr = build(7, Some(info), &[block], "voxbridge");
        assert_eq!(sr.len() % 4, 0);
        let parsed = parse(&sr).unwrap();
        assert_eq!(parsed[0], RtcpPacket::SenderReport { ssrc: 7, info, reports: vec![block] });
        assert_eq!(parsed[1], RtcpPacket::Other { packet_type: SDES });
        let rr = build(9, None, &[], "x");
        assert_eq!(parse(&rr).unwrap()[0], RtcpPacket::ReceiverReport { ssrc: 9, reports: vec![] });
    }

    #[test]
    fn bad_datagrams_are_errors_not_panics() {
        assert_eq!(parse(&[0x80, 200, 0, 10, 1, 2]), Err(RtcpError::BadLength));
        assert_eq!(parse(&[0x80, 0, 0, 0]), Err(RtcpError::NotRtcp));
        assert_eq!(parse(&[0x81, 201, 0, 1, 0, 0, 0, 1]), Err(RtcpError::BadLength), "a block past the end");
        assert!(parse(&[]).unwrap().is_empty());
    }

    #[test]
    fn rtt_from_lsr_and_dlsr() {
        let sent = ntp_from_unix_micros(1_000_000_000);
        // The far end held our SR 250 ms and its report arrived 330 ms after we sent the SR.
        let block = ReportBlock { lsr: ntp_middle(sent), dlsr: 65536 / 4, ..ReportBlock::default() };
        let now = ntp_from_unix_micros(1_000_330_000);
        let rtt = rtt_ms(now, &block).unwrap();
        assert!((rtt - 80.0).abs() < 0.1, "{rtt}");
        assert_eq!(rtt_ms(now, &ReportBlock::default()), None);
    }
}
