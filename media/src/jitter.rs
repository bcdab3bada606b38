//! The reordering buffer in front of a leg's decoder: packets come out in sequence order, so
//! what is decoded for the recorder, the mixer, the WebSocket, the detectors and transcoding
//! is the stream as it was sent. A packet that arrives in order is released at once (no added
//! delay); one that arrives early waits for the packets before it, up to [`DEPTH`] packets
//! (60 ms at 20 ms packets), after which the missing one counts as lost (and is concealed by
//! the caller). Late and duplicated packets are dropped: their time has been played. The
//! relay of undecoded audio does not go through it; the far end's own buffer handles that.

/// Packets held waiting for a missing one before it counts as lost.
pub const DEPTH: usize = 3;
/// A jump of more sequence numbers than this, forward or back, is a new start of the stream
/// (a sender that restarted its numbering under the same SSRC), not a loss or a late packet.
const MAX_JUMP: u16 = 50;

/// What a packet lets out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Release {
    /// The packet itself, in order with nothing held: decode it as it is (no copy is made:
    /// this is every packet of a stream that is not reordered).
    This,
    /// What can be decoded now, in order (possibly nothing).
    Slots(Vec<Slot>),
}

/// What comes out of the buffer, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Slot {
    /// A packet's payload and its RTP timestamp.
    Packet(u32, Vec<u8>),
    /// A packet that never came (in time).
    Lost,
}

/// Calls `each` with each released packet's payload in order, and with `None` for the first
/// two packets of each loss (to be concealed, so listeners hear no hole; a longer loss is left
/// silent).
pub fn decode(slots: &[Slot], mut each: impl FnMut(Option<&[u8]>)) {
    let mut lost_run = 0;
    for slot in slots {
        match slot {
            Slot::Packet(_, payload) => {
                lost_run = 0;
                each(Some(payload));
            }
            Slot::Lost if lost_run < CONCEALED => {
                lost_run += 1;
                each(None);
            }
            Slot::Lost => {}
        }
    }
}

/// The first packets of a loss that are concealed.
const CONCEALED: usize = 2;

/// The RTP timestamp (clock `clock_rate`) where the audio [`decode`] makes of `slots` starts:
/// each concealed packet before the first released one is 20 ms earlier.
pub fn start_of(slots: &[Slot], clock_rate: u32) -> Option<u32> {
    let ticks = clock_rate / 50;
    slots.iter().enumerate().find_map(|(i, slot)| match slot {
        Slot::Packet(ts, _) => Some(ts.wrapping_sub(ticks * i.min(CONCEALED) as u32)),
        Slot::Lost => None,
    })
}

#[derive(Debug, Default)]
pub struct Reorder {
    /// The stream's SSRC and the sequence number due next.
    next: Option<(u32, u16)>,
    held: Vec<(u16, u32, Vec<u8>)>,
}

impl Reorder {
    /// Takes packet `seq` (RTP timestamp `ts`) of `ssrc`; says what can be decoded now.
    pub fn push(&mut self, ssrc: u32, seq: u16, ts: u32, payload: &[u8]) -> Release {
        let next = match self.next {
            Some((s, next)) if s == ssrc => next,
            // The first packet, or a new stream: it starts here.
            _ => {
                self.held.clear();
                self.next = Some((ssrc, seq.wrapping_add(1)));
                return Release::This;
            }
        };
        if seq == next && self.held.is_empty() {
            self.next = Some((ssrc, seq.wrapping_add(1)));
            return Release::This;
        }
        Release::Slots(self.reorder(ssrc, next, seq, ts, payload))
    }

    /// A packet out of order, or one behind which packets are held.
    fn reorder(&mut self, ssrc: u32, next: u16, seq: u16, ts: u32, payload: &[u8]) -> Vec<Slot> {
        let ahead = seq.wrapping_sub(next);
        let behind = next.wrapping_sub(seq);
        let restarted = ahead > MAX_JUMP && behind > MAX_JUMP;
        if !restarted && (ahead >= u16::MAX / 2 || self.held.iter().any(|(s, _, _)| *s == seq)) {
            return Vec::new();
        }
        if restarted {
            let mut out = self.drain();
            out.push(Slot::Packet(ts, payload.to_vec()));
            self.next = Some((ssrc, seq.wrapping_add(1)));
            return out;
        }
        self.held.push((seq, ts, payload.to_vec()));
        let mut out = Vec::new();
        let mut due = next;
        loop {
            if let Some(i) = self.held.iter().position(|(s, _, _)| *s == due) {
                let (_, ts, payload) = self.held.swap_remove(i);
                out.push(Slot::Packet(ts, payload));
            } else if self.held.len() > DEPTH {
                out.push(Slot::Lost);
            } else {
                break;
            }
            due = due.wrapping_add(1);
        }
        self.next = Some((ssrc, due));
        out
    }

    /// Everything held, in sequence order.
    fn drain(&mut self) -> Vec<Slot> {
        let Some((_, next)) = self.next else { return Vec::new() };
        let mut held = std::mem::take(&mut self.held);
        held.sort_by_key(|(s, _, _)| s.wrapping_sub(next));
        held.into_iter().map(|(_, ts, p)| Slot::Packet(ts, p)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(r: &mut Reorder, seq: u16) -> Vec<String> {
        let slots = match r.push(7, seq, u32::from(seq) * 160, &seq.to_be_bytes()) {
            Release::This => vec![Slot::Packet(u32::from(seq) * 160, seq.to_be_bytes().to_vec())],
            Release::Slots(slots) => slots,
        };
        slots
            .into_iter()
            .map(|s| match s {
                Slot::Packet(ts, p) => {
                    assert_eq!(ts, u32::from(seq_of(&p)) * 160, "each payload keeps its timestamp");
                    seq_of(&p).to_string()
                }
                Slot::Lost => "lost".into(),
            })
            .collect()
    }

    fn seq_of(p: &[u8]) -> u16 {
        u16::from_be_bytes([p[0], p[1]])
    }

    #[test]
    fn in_order_packets_pass_at_once() {
        let mut r = Reorder::default();
        for seq in [65534, 65535, 0, 1] {
            assert_eq!(push(&mut r, seq), [seq.to_string()], "across the wrap too");
        }
    }

    #[test]
    fn an_early_packet_waits_for_the_one_before_it() {
        let mut r = Reorder::default();
        assert_eq!(push(&mut r, 10), ["10"]);
        assert_eq!(push(&mut r, 12), Vec::<String>::new());
        assert_eq!(push(&mut r, 11), ["11", "12"]);
        assert_eq!(push(&mut r, 13), ["13"]);
    }

    #[test]
    fn a_missing_packet_is_lost_once_the_buffer_is_full_and_late_ones_are_dropped() {
        let mut r = Reorder::default();
        push(&mut r, 1);
        assert!(push(&mut r, 3).is_empty() && push(&mut r, 4).is_empty() && push(&mut r, 5).is_empty());
        assert_eq!(push(&mut r, 6), ["lost", "3", "4", "5", "6"]);
        assert!(push(&mut r, 2).is_empty(), "too late: its time was concealed");
        assert!(push(&mut r, 6).is_empty(), "a duplicate");
        assert_eq!(push(&mut r, 7), ["7"]);
    }

    #[test]
    fn a_new_ssrc_or_a_long_jump_starts_over() {
        let mut r = Reorder::default();
        push(&mut r, 1);
        assert!(push(&mut r, 3).is_empty());
        assert_eq!(push(&mut r, 500), ["3", "500"], "a jump: what was held goes, in order");
        assert_eq!(push(&mut r, 501), ["501"]);
        assert_eq!(push(&mut r, 0), ["0"], "numbering started again under the same SSRC");
        assert_eq!(push(&mut r, 1), ["1"]);
        assert_eq!(r.push(8, 9000, 5, &[1]), Release::This, "another SSRC");
    }
}
