//! A caller whose SIP and RTP the test drives by hand: it calls voxbridge from a raw UDP socket
//! with its own RTP socket, so a test can send exactly the audio and DTMF it wants (tones,
//! RFC 4733 events, induced loss) and inspect every packet that comes back (counted, decoded,
//! timed). SIPp covers the standard cases; this covers what needs the packets themselves.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;

use crate::raw::{Msg, RawSip, sdp_rtp_addr};

/// One RTP packet received, with when it arrived.
#[derive(Debug, Clone)]
pub struct Packet {
    pub at: Instant,
    pub marker: bool,
    pub payload_type: u8,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    pub payload: Vec<u8>,
}

impl Packet {
    pub fn parse(bytes: &[u8], at: Instant) -> Option<Packet> {
        let h = domains::rtp::parse(bytes).ok()?;
        Some(Packet {
            at,
            marker: h.marker,
            payload_type: h.payload_type,
            sequence: h.sequence,
            timestamp: h.timestamp,
            ssrc: h.ssrc,
            payload: bytes.get(h.payload_start..h.payload_end)?.to_vec(),
        })
    }
}

/// Receives on `sock` for `within`: the packets that arrived.
pub async fn receive_for(sock: &UdpSocket, within: Duration) -> Vec<Packet> {
    let deadline = tokio::time::Instant::now() + within;
    let mut out = Vec::new();
    let mut buf = [0u8; 2048];
    while let Ok(Ok((n, _))) = tokio::time::timeout_at(deadline, sock.recv_from(&mut buf)).await {
        out.extend(Packet::parse(&buf[..n], Instant::now()));
    }
    out
}

/// Goertzel power of `freq` in `pcm` (8 kHz), normalised by length: compares tones in one signal.
pub fn tone_power(pcm: &[i16], freq: f32) -> f64 {
    let block: Vec<f32> = pcm.iter().map(|s| f32::from(*s)).collect();
    f64::from(domains::dtmf::goertzel(&block, freq)) / (pcm.len() as f64).powi(2)
}

/// Linear samples of PCMU payloads, in order.
pub fn decode_pcmu(packets: &[Packet]) -> Vec<i16> {
    let mut out = Vec::new();
    for p in packets.iter().filter(|p| p.payload_type == 0) {
        domains::g711::decode(false, &p.payload, &mut out);
    }
    out
}

pub fn rms(pcm: &[i16]) -> f64 {
    if pcm.is_empty() {
        return 0.0;
    }
    (pcm.iter().map(|s| f64::from(*s).powi(2)).sum::<f64>() / pcm.len() as f64).sqrt()
}

/// A sum of sinusoids at 8 kHz.
pub fn tone(freqs: &[f32], amplitude: f32, ms: u32) -> Vec<i16> {
    (0..ms as usize * 8)
        .map(|i| {
            let t = i as f32 / 8000.0;
            (freqs.iter().map(|f| (2.0 * std::f32::consts::PI * f * t).sin()).sum::<f32>() * amplitude) as i16
        })
        .collect()
}

/// The RTP side of a call.
pub struct RtpPeer {
    pub sock: UdpSocket,
    /// Where voxbridge wants our RTP (its SDP).
    pub remote: SocketAddr,
    ssrc: u32,
    seq: u16,
    timestamp: u32,
}

impl RtpPeer {
    pub async fn bind() -> UdpSocket {
        UdpSocket::bind("127.0.0.1:0").await.expect("RTP socket")
    }

    pub fn new(sock: UdpSocket, remote: SocketAddr) -> RtpPeer {
        RtpPeer { sock, remote, ssrc: rand::random(), seq: 1, timestamp: 0 }
    }

    /// A second handle on the same socket, to receive while another task sends.
    pub fn listener(&self) -> UdpSocket {
        let fd = socket2::SockRef::from(&self.sock).try_clone().expect("dup the RTP socket");
        let std: std::net::UdpSocket = fd.into();
        std.set_nonblocking(true).unwrap();
        UdpSocket::from_std(std).expect("tokio socket")
    }

    fn header(&mut self, pt: u8, marker: bool, timestamp: u32) -> Vec<u8> {
        let mut p = vec![0x80, if marker { 0x80 } else { 0 } | pt];
        p.extend(self.seq.to_be_bytes());
        p.extend(timestamp.to_be_bytes());
        p.extend(self.ssrc.to_be_bytes());
        self.seq = self.seq.wrapping_add(1);
        p
    }

    /// Sends `pcm` as PCMU, one packet per 20 ms; with `drop_every = Some(n)` every n-th packet
    /// is not sent (its sequence number is used: induced loss). Returns packets sent.
    pub async fn send_pcmu(&mut self, pcm: &[i16], drop_every: Option<usize>) -> usize {
        let mut packets: Vec<Vec<u8>> = self.pcmu_packets(pcm);
        if let Some(n) = drop_every {
            packets = packets.into_iter().enumerate().filter(|(i, _)| (i + 1) % n != 0).map(|(_, p)| p).collect();
        }
        self.send_paced(&packets).await
    }

    /// Sends `pcm` as PCMU, one packet per 20 ms, with the packets of every `n`-th pair sent
    /// the other way round (reordering on the path). Returns packets sent.
    pub async fn send_pcmu_reordered(&mut self, pcm: &[i16], n: usize) -> usize {
        let mut packets = self.pcmu_packets(pcm);
        for pair in packets.chunks_mut(2).step_by(n.max(1)) {
            pair.reverse();
        }
        self.send_paced(&packets).await
    }

    /// `pcm` as PCMU packets of 20 ms, numbered on from the last one sent.
    fn pcmu_packets(&mut self, pcm: &[i16]) -> Vec<Vec<u8>> {
        let mut packets = Vec::new();
        for (i, frame) in pcm.chunks(160).enumerate() {
            let mut packet = self.header(0, i == 0, self.timestamp);
            domains::g711::encode(false, frame, &mut packet);
            self.timestamp = self.timestamp.wrapping_add(160);
            packets.push(packet);
        }
        packets
    }

    async fn send_paced(&self, packets: &[Vec<u8>]) -> usize {
        let mut clock = tokio::time::interval(Duration::from_millis(20));
        for packet in packets {
            clock.tick().await;
            self.sock.send_to(packet, self.remote).await.expect("RTP send");
        }
        packets.len()
    }

    /// Sends `digit` as RFC 4733 events (payload type 101): 5 updates, the end packet 3 times.
    pub async fn send_event(&mut self, digit: char) {
        let event = domains::dtmf::event_of(digit).expect("a DTMF digit");
        let start = self.timestamp;
        let mut clock = tokio::time::interval(Duration::from_millis(20));
        for i in 1..=5u16 {
            let end = i == 5;
            let payload = domains::dtmf::TelephoneEvent { event, end, volume: 10, duration: i * 160 }.to_bytes();
            for _ in 0..if end { 3 } else { 1 } {
                clock.tick().await;
                let mut packet = self.header(101, i == 1, start);
                packet.extend(payload);
                self.sock.send_to(&packet, self.remote).await.expect("RTP send");
            }
        }
        self.timestamp = self.timestamp.wrapping_add(7 * 160);
    }

    /// Receives packets for `within` (or until `until` says stop).
    pub async fn collect(&self, within: Duration, until: impl Fn(&[Packet]) -> bool) -> Vec<Packet> {
        let deadline = tokio::time::Instant::now() + within;
        let mut out = Vec::new();
        let mut buf = [0u8; 2048];
        while !until(&out) {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.sock.recv_from(&mut buf)).await {
                Ok(Ok((n, _))) => out.extend(Packet::parse(&buf[..n], Instant::now())),
                _ => break,
            }
        }
        out
    }
}

/// A call from a raw SIP socket to voxbridge, answered (200 and ACK sent).
pub struct RawCall {
    pub sip: RawSip,
    pub rtp: RtpPeer,
    pub invite: String,
    pub ok: Msg,
}

impl RawCall {
    /// Calls `uri` through voxbridge at `target` offering `sdp` (built for the RTP port given).
    pub async fn place(target: &str, uri: &str, sdp: impl Fn(u16) -> String) -> RawCall {
        Self::try_place(target, uri, sdp).await.unwrap_or_else(|e| panic!("{e}"))
    }

    /// As [`RawCall::place`]; a final response other than 200 is an error with its text.
    pub async fn try_place(target: &str, uri: &str, sdp: impl Fn(u16) -> String) -> Result<RawCall, String> {
        let sip = RawSip::new(target).await;
        let sock = RtpPeer::bind().await;
        let port = sock.local_addr().unwrap().port();
        let call_id = format!("raw-{}", uuid::Uuid::new_v4().simple());
        let invite = sip.invite(uri, &call_id, 1, "", port);
        let offer = sdp(port);
        let default_offer = crate::raw::sdp_offer(port);
        let invite = invite
            .replace(&default_offer, &offer)
            .replace(&format!("Content-Length: {}", default_offer.len()), &format!("Content-Length: {}", offer.len()));
        sip.send(&invite).await;
        let ok = sip.final_response(Duration::from_secs(10)).await.ok_or("no final response")?;
        if ok.status() != Some(200) {
            return Err(ok.0);
        }
        let remote = sdp_rtp_addr(ok.body()).ok_or("no RTP address in voxbridge's answer")?;
        let call = RawCall { sip, rtp: RtpPeer::new(sock, remote), invite, ok };
        call.sip.send(&call.in_dialog("ACK", 1)).await;
        Ok(call)
    }

    /// A request in the call's dialog (ACK for the 200, BYE) from the caller.
    pub fn in_dialog(&self, method: &str, cseq: u32) -> String {
        let inv = Msg(self.invite.clone());
        let contact = self.ok.header("Contact").unwrap_or_default();
        let target = contact.trim_start_matches('<').split('>').next().unwrap_or_default().to_owned();
        format!(
            "{method} {target} SIP/2.0\r\nVia: SIP/2.0/UDP {l};branch=z9hG4bK{b};rport\r\nMax-Forwards: 70\r\n\
             From: {from}\r\nTo: {to}\r\nCall-ID: {cid}\r\nCSeq: {cseq} {method}\r\nContent-Length: 0\r\n\r\n",
            l = self.sip.local,
            b = uuid::Uuid::new_v4().simple(),
            from = inv.header("From").unwrap_or_default(),
            to = self.ok.header("To").unwrap_or_default(),
            cid = inv.header("Call-ID").unwrap_or_default(),
        )
    }

    /// Waits for voxbridge's BYE and answers it.
    pub async fn expect_bye(&self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let Some((m, _)) = self.sip.recv(left).await else { return false };
            if m.method() == Some("BYE") {
                let reply = crate::raw::respond(&m, 200, "OK", "", "", "");
                self.sip.send(&reply).await;
                return true;
            }
        }
    }

    pub async fn hang_up(&self) {
        self.sip.send(&self.in_dialog("BYE", 2)).await;
    }
}

/// An SDP offer of PCMU only (no telephone-event): DTMF must travel in band.
pub fn pcmu_only_offer(port: u16) -> String {
    crate::raw::sdp_offer(port)
        .replace("RTP/AVP 0 8 101", "RTP/AVP 0")
        .replace("a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n", "")
}

/// A far end on a raw socket: takes the INVITE, rings, answers with PCMU only (RTP to
/// `rtp_port`) and takes the ACK. Returns the INVITE, where it came from, and the ACK.
pub async fn answer_as_far_end(far: &RawSip, rtp_port: u16, within: Duration) -> (Msg, SocketAddr, Msg) {
    let (inv, from) = far.recv(within).await.expect("INVITE reaches the far end");
    let sdp = crate::raw::sdp_offer(rtp_port).replace("RTP/AVP 0 8 101", "RTP/AVP 0");
    let contact = format!("sip:far@{}", far.local);
    far.sock.send_to(crate::raw::respond(&inv, 180, "Ringing", "far1", &contact, "").as_bytes(), from).await.unwrap();
    let ok = crate::raw::respond(&inv, 200, "OK", "far1", &contact, &sdp);
    far.sock.send_to(ok.as_bytes(), from).await.unwrap();
    let (ack, _) = far.recv(within).await.expect("ACK");
    assert_eq!(ack.method(), Some("ACK"));
    (inv, from, ack)
}

/// A WAV file (16 kHz, 16-bit mono) of a 1 kHz tone lasting `seconds`, for `stream`.
pub fn tone_wav(seconds: f32) -> Vec<u8> {
    tone_wav_at(1000.0, seconds)
}

/// A 16 kHz WAV of `seconds` of a `hz` tone.
pub fn tone_wav_at(hz: f32, seconds: f32) -> Vec<u8> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut cursor = std::io::Cursor::new(Vec::new());
    let mut w = hound::WavWriter::new(&mut cursor, spec).unwrap();
    for i in 0..(16000.0 * seconds) as usize {
        w.write_sample((8000.0 * (2.0 * std::f32::consts::PI * hz * i as f32 / 16000.0).sin()) as i16).unwrap();
    }
    w.finalize().unwrap();
    cursor.into_inner()
}

/// A mono 8 kHz MP3 (LAME) of `seconds` of a `hz` tone.
pub fn tone_mp3(hz: f32, seconds: f32) -> Vec<u8> {
    use mp3lame_encoder::{Builder, FlushNoGap, MonoPcm};
    let pcm = tone(&[hz], 8000.0, (seconds * 1000.0) as u32);
    let mut builder = Builder::new().unwrap();
    builder.set_num_channels(1).unwrap();
    builder.set_sample_rate(8000).unwrap();
    builder.set_brate(mp3lame_encoder::Bitrate::Kbps32).unwrap();
    let mut encoder = builder.build().unwrap();
    // LAME wants its room before it writes.
    let mut out = Vec::with_capacity(mp3lame_encoder::max_required_buffer_size(pcm.len()) + 7200);
    encoder.encode_to_vec(MonoPcm(pcm.as_slice()), &mut out).unwrap();
    encoder.flush_to_vec::<FlushNoGap>(&mut out).unwrap();
    out
}
