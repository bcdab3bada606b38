//! Media quality of a leg, free of I/O: the receiver statistics of RFC 3550 (extended highest
//! sequence number, expected and lost packets, interarrival jitter of §6.4.1 / A.8), the
//! round-trip time from RTCP reports (§6.4.1 LSR/DLSR), and an estimated MOS from the E-model
//! (ITU-T G.107, simplified for G.711 as G.113 does: delay impairment from the one-way
//! latency, equipment impairment from packet loss). The media process feeds it packets and
//! reports; the call record, the `completed` event and `GET /v1/calls/{uuid}` show the result.

use serde::{Deserialize, Serialize};

/// What one leg's media looked like, as reported to applications.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Quality {
    /// RTP packets received from the far end (audio and telephone-event).
    pub packets_received: u64,
    pub packets_sent: u64,
    pub bytes_received: u64,
    pub bytes_sent: u64,
    /// Packets the far end sent that never arrived (by sequence number).
    pub packets_lost: u64,
    /// `packets_lost` as a percentage of the packets expected.
    pub loss_percent: f64,
    /// RFC 3550 interarrival jitter at the end of the call, milliseconds.
    pub jitter_ms: f64,
    /// The largest jitter seen, milliseconds.
    pub jitter_max_ms: f64,
    /// Round-trip time from the far end's RTCP reports, when it sent any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtt_ms: Option<f64>,
    /// Estimated mean opinion score, 1 (bad) to 4.5 (G.711 at its best).
    pub mos: f64,
    /// RFC 4733 packets received.
    pub dtmf_packets: u64,
}

/// RFC 3550 receiver statistics of one incoming stream.
#[derive(Debug, Clone, Default)]
pub struct ReceiverStats {
    ssrc: Option<u32>,
    base_seq: u32,
    /// Extended highest sequence number (cycles in the high 16 bits).
    max_seq: u32,
    received: u64,
    /// Packets of earlier streams (SSRCs) of this leg.
    expected_before: u64,
    received_before: u64,
    /// Jitter in timestamp units, scaled as A.8 computes it.
    jitter: f64,
    jitter_max: f64,
    last_transit: Option<i64>,
    clock_rate: u32,
    /// Expected and received at the last report (RFC 3550 A.3's interval counters).
    expected_prior: u64,
    received_prior: u64,
}

impl ReceiverStats {
    pub fn new(clock_rate: u32) -> ReceiverStats {
        ReceiverStats { clock_rate, ..ReceiverStats::default() }
    }

    /// One packet: its SSRC, sequence number, RTP timestamp, and its arrival time in
    /// milliseconds of any local clock. `audio` is false for telephone-event packets, whose
    /// timestamps stay on the event's start and so say nothing of jitter.
    pub fn on_packet(&mut self, ssrc: u32, seq: u16, timestamp: u32, arrival_ms: u64, audio: bool) {
        let seq = u32::from(seq);
        if self.ssrc != Some(ssrc) {
            // A new stream (another source, or one that restarted): what came before is kept.
            self.expected_before += self.expected();
            self.received_before += self.received;
            *self = ReceiverStats {
                ssrc: Some(ssrc),
                base_seq: seq,
                max_seq: seq,
                expected_before: self.expected_before,
                received_before: self.received_before,
                jitter: self.jitter,
                jitter_max: self.jitter_max,
                clock_rate: self.clock_rate,
                ..ReceiverStats::default()
            };
        }
        self.received += 1;
        let cycles = self.max_seq & 0xffff_0000;
        let highest = self.max_seq & 0xffff;
        let delta = seq.wrapping_sub(highest) & 0xffff;
        if delta != 0 && delta < 0x8000 {
            // In order (or after a gap): wraps add a cycle.
            let cycles = if seq < highest { cycles.wrapping_add(0x1_0000) } else { cycles };
            self.max_seq = cycles | seq;
        }
        if audio {
            let arrival = (arrival_ms as i64) * i64::from(self.clock_rate) / 1000;
            let transit = arrival - i64::from(timestamp);
            if let Some(last) = self.last_transit {
                let d = (transit - last).abs() as f64;
                self.jitter += (d - self.jitter) / 16.0;
                self.jitter_max = self.jitter_max.max(self.jitter);
            }
            self.last_transit = Some(transit);
        }
    }

    fn expected(&self) -> u64 {
        if self.ssrc.is_none() {
            return 0;
        }
        u64::from(self.max_seq.wrapping_sub(self.base_seq)) + 1
    }

    /// Packets expected and lost so far (duplicates can make the count of received exceed the
    /// expected: lost is then 0).
    pub fn loss(&self) -> (u64, u64) {
        let expected = self.expected_before + self.expected();
        let received = self.received_before + self.received;
        (expected, expected.saturating_sub(received))
    }

    /// The source being received, once a packet came.
    pub fn ssrc(&self) -> Option<u32> {
        self.ssrc
    }

    /// The RTCP report block for the current stream (RFC 3550 A.3), `lsr`/`dlsr` from the
    /// source's last SR; starts a new interval for `fraction_lost`.
    pub fn report_block(&mut self, lsr: u32, dlsr: u32) -> Option<crate::rtcp::ReportBlock> {
        let ssrc = self.ssrc?;
        let (expected, received) = (self.expected(), self.received);
        let expected_interval = expected.saturating_sub(self.expected_prior);
        let received_interval = received.saturating_sub(self.received_prior);
        self.expected_prior = expected;
        self.received_prior = received;
        let lost_interval = expected_interval.saturating_sub(received_interval);
        let fraction_lost = (lost_interval << 8).checked_div(expected_interval).map_or(0, |f| f.min(255) as u8);
        Some(crate::rtcp::ReportBlock {
            ssrc,
            fraction_lost,
            cumulative_lost: i32::try_from(expected as i64 - received as i64).unwrap_or(i32::MAX),
            highest_seq: self.max_seq,
            jitter: self.jitter as u32,
            lsr,
            dlsr,
        })
    }

    pub fn jitter_ms(&self) -> (f64, f64) {
        let per_ms = f64::from(self.clock_rate.max(1)) / 1000.0;
        (self.jitter / per_ms, self.jitter_max / per_ms)
    }
}

/// The estimated MOS of a G.711 call with `loss_percent` random loss, `jitter_ms` and a
/// round-trip time (when known; else 0). The one-way latency counts a jitter buffer of twice
/// the jitter and 10 ms of packetisation; G.711 with packet-loss concealment has a loss
/// robustness factor Bpl of 25.1 (G.113 Appendix I).
pub fn mos(loss_percent: f64, jitter_ms: f64, rtt_ms: Option<f64>) -> f64 {
    let latency = rtt_ms.unwrap_or(0.0) / 2.0 + 2.0 * jitter_ms + 10.0;
    let delay_impairment = if latency < 160.0 { latency / 40.0 } else { (latency - 120.0) / 10.0 };
    let loss = loss_percent.clamp(0.0, 100.0);
    let equipment = 95.0 * loss / (loss + 25.1);
    let r = (93.2 - delay_impairment - equipment).clamp(0.0, 100.0);
    let mos = 1.0 + 0.035 * r + 7.0e-6 * r * (r - 60.0) * (100.0 - r);
    (mos.clamp(1.0, 4.5) * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clean_stream_has_no_loss_and_no_jitter() {
        let mut s = ReceiverStats::new(8000);
        for i in 0..500u32 {
            s.on_packet(7, (65_000u32 + i) as u16, i * 160, u64::from(i) * 20, true);
        }
        assert_eq!(s.loss(), (500, 0), "the sequence wrapped at 65535 without loss");
        assert!(s.jitter_ms().0 < 0.01);
    }

    #[test]
    fn every_tenth_packet_lost_is_ten_percent() {
        let mut s = ReceiverStats::new(8000);
        for i in 0..1000u32 {
            if (i + 1) % 10 != 0 {
                s.on_packet(7, i as u16, i * 160, u64::from(i) * 20, true);
            }
        }
        let (expected, lost) = s.loss();
        // The last packet (999) is lost too but not yet known to be: 999 expected, 99 lost.
        assert_eq!((expected, lost), (999, 99));
    }

    #[test]
    fn report_blocks_count_per_interval() {
        let mut s = ReceiverStats::new(8000);
        assert_eq!(s.report_block(0, 0), None, "nothing received yet");
        for i in 0..100u16 {
            if i % 4 != 3 {
                s.on_packet(5, i, u32::from(i) * 160, u64::from(i) * 20, true);
            }
        }
        let b = s.report_block(7, 9).unwrap();
        assert_eq!(
            (b.ssrc, b.cumulative_lost, b.highest_seq, b.lsr, b.dlsr),
            (5, 24, 98, 7, 9),
            "the last loss (99) is not known yet"
        );
        assert_eq!(b.fraction_lost, (24 * 256 / 99) as u8);
        for i in 100..120u16 {
            s.on_packet(5, i, u32::from(i) * 160, u64::from(i) * 20, true);
        }
        assert_eq!(
            s.report_block(0, 0).unwrap().fraction_lost,
            (256 / 21) as u8,
            "packet 99, known lost now, of 21 expected"
        );
    }

    #[test]
    fn jitter_follows_rfc3550() {
        let mut s = ReceiverStats::new(8000);
        // Arrivals alternate 10 ms early and late: |D| = 20 ms = 160 units each time.
        for i in 0..400u32 {
            let wobble: i64 = if i % 2 == 0 { 10 } else { -10 };
            s.on_packet(7, i as u16, i * 160, (i64::from(i) * 20 + 100 + wobble) as u64, true);
        }
        let (jitter, max) = s.jitter_ms();
        assert!((jitter - 20.0).abs() < 0.5, "{jitter}");
        assert!(max >= jitter);
    }

    #[test]
    fn a_new_ssrc_keeps_what_came_before() {
        let mut s = ReceiverStats::new(8000);
        for i in 0..10u16 {
            s.on_packet(1, i, u32::from(i) * 160, u64::from(i) * 20, true);
        }
        for i in 0..10u16 {
            if i != 5 {
                s.on_packet(2, 3000 + i, u32::from(i) * 160, 200 + u64::from(i) * 20, true);
            }
        }
        assert_eq!(s.loss(), (20, 1));
    }

    #[test]
    fn mos_falls_with_loss_jitter_and_delay() {
        let perfect = mos(0.0, 0.0, None);
        assert!((4.3..=4.5).contains(&perfect), "{perfect}");
        let lossy = mos(10.0, 0.0, None);
        assert!(lossy < perfect - 0.5 && lossy > 2.5, "{lossy}");
        assert!(mos(0.0, 40.0, None) < perfect);
        assert!(mos(0.0, 0.0, Some(600.0)) < mos(0.0, 0.0, Some(100.0)));
        assert!((1.0..2.0).contains(&mos(60.0, 50.0, Some(800.0))));
    }
}
