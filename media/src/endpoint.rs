//! One RTP endpoint: a call leg's UDP socket and port lease, its offer/answer state, symmetric
//! RTP latching, packet counters, and the receive loop that relays each packet to the bridged
//! peer endpoint (through the peer's socket, so the far end sees the port our SDP named).
//!
//! A leg that negotiated `RTP/SAVP` has an [`SrtpSession`]: what arrives is authenticated and
//! decrypted before anything else looks at it (a packet that fails is dropped, and latches
//! nothing), and everything sent to it, relayed or ours, RTP or RTCP, is protected last.
//!
//! Symmetric RTP (RFC 4961): until a packet arrives we send to the address in the remote SDP;
//! the first packet's source address is latched and used from then on, and packets from any
//! other source are dropped (a stranger cannot inject audio). A remote description with a new
//! address (re-INVITE) clears the latch. RTCP is not served yet: the odd port is reserved by the
//! allocator but not bound, and RTCP multiplexed on the RTP port is ignored.
//!
//! An endpoint also runs its jobs: a play or DTMF sent by [`crate::playout`] (while one runs,
//! relayed packets towards this endpoint are dropped: our own stream has the floor), a
//! [`Recorder`], and the receiving side's DTMF detection (RFC 4733 events, or Goertzel on the
//! decoded audio when the leg negotiated no telephone-event). Received audio is decoded only
//! when something needs it.

use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use domains::dtmf::{EventReceiver, ToneDetector};
use domains::media::{Event, PlaySource};
use domains::quality::{self, Quality, ReceiverStats};
use domains::sdp::{self, Codec, Direction, LocalSdp, Negotiated, SdpError, SessionDescription};
use tokio::net::UdpSocket;
use tokio::sync::broadcast;
use tokio::task::AbortHandle;

use crate::audio;
use crate::bridge::{self, Formats};
use crate::codec::LegCodec;
use crate::panics;
use crate::playout::{self, OutStream};
use crate::ports::PortLease;
use crate::recorder::{self, Recorder};
use crate::sources::Sources;
use crate::srtp::SrtpSession;
use domains::rtp;

/// Milliseconds since the engine started: what endpoints store as "last packet".
#[derive(Debug, Clone, Copy)]
pub struct Clock(Instant);

impl Clock {
    pub fn start() -> Clock {
        Clock(Instant::now())
    }

    pub fn now_ms(self) -> u64 {
        u64::try_from(self.0.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// Where the endpoint stands in offer/answer.
#[derive(Debug, Clone)]
pub enum Session {
    /// We offered these codecs; the answer has not arrived.
    Offered {
        offered: Vec<Codec>,
    },
    Negotiated(Negotiated),
}

struct State {
    local: LocalSdp,
    local_sdp: String,
    session: Session,
    /// The remote description last applied: its `o=` line, else its text. A repeat (the same
    /// answer in a 183 and the 200, a session refresh) changes nothing.
    remote_identity: Option<String>,
    latched: Option<SocketAddr>,
    peer: Option<Weak<Endpoint>>,
    /// Our re-offer awaits its answer: the codecs it offered.
    reoffered: Option<Vec<Codec>>,
}

#[derive(Debug, Default)]
struct Counters {
    rx_packets: AtomicU64,
    rx_bytes: AtomicU64,
    tx_packets: AtomicU64,
    tx_bytes: AtomicU64,
}

/// Packet counters of one endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
}

/// What the receiving side keeps: digit detectors and RFC 3550 statistics.
struct Detectors {
    events: EventReceiver,
    tones: ToneDetector,
    pcm: Vec<i16>,
    stats: ReceiverStats,
    dtmf_packets: u64,
    /// Puts audio packets back in order before they are decoded.
    reorder: crate::jitter::Reorder,
    /// Answering-machine detection, while it runs.
    amd: Option<domains::amd::AmdDetector>,
    /// Speech input's listening, while it runs.
    speech: Option<Listening>,
}

/// An utterance being listened for, and who recognises it once it is over.
struct Listening {
    transcribe_id: String,
    utterance: domains::speech::Utterance,
    asr: Arc<dyn crate::asr::AsrEngine>,
    request: crate::asr::AsrRequest,
}

impl Default for Detectors {
    fn default() -> Self {
        Detectors {
            events: EventReceiver::default(),
            tones: ToneDetector::default(),
            pcm: Vec::new(),
            stats: ReceiverStats::new(audio::RATE),
            dtmf_packets: 0,
            reorder: crate::jitter::Reorder::default(),
            amd: None,
            speech: None,
        }
    }
}

/// What an endpoint is doing besides relaying.
#[derive(Default)]
struct Jobs {
    play: Option<(String, AbortHandle)>,
    dtmf: Option<AbortHandle>,
    /// The recording and the task that ends it on time or on silence.
    record: Option<(Recorder, AbortHandle)>,
    /// The WebSocket stream.
    websocket: Option<AbortHandle>,
    /// The clock of speech listening (it ends on time when packets stop coming).
    listening: Option<AbortHandle>,
}

pub struct Endpoint {
    pub id: String,
    pub call_uuid: String,
    socket: UdpSocket,
    lease: PortLease,
    state: Mutex<State>,
    counters: Counters,
    clock: Clock,
    /// `Clock` time of the last packet received, or of the moment media was last expected.
    last_rx_ms: AtomicU64,
    timed_out: AtomicBool,
    events: broadcast::Sender<Event>,
    out: Mutex<OutStream>,
    jobs: Mutex<Jobs>,
    /// Plays and DTMF senders running: while any does, nothing is relayed to this endpoint.
    own_senders: AtomicU32,
    /// A recording runs: decode what passes.
    recording: AtomicBool,
    /// Someone listens to the decoded received audio (a WebSocket, a mixer): frames go there.
    tap: Mutex<Option<tokio::sync::mpsc::Sender<Vec<i16>>>>,
    tapped: AtomicBool,
    /// Nobody hears this endpoint: what it receives is not relayed (digits still count).
    muted: AtomicBool,
    /// This endpoint hears nothing: nothing is sent to it (relayed or ours).
    earmuffed: AtomicBool,
    /// The negotiated codec's decoder and encoder state.
    codec: Mutex<Option<LegCodec>>,
    /// The RTCP socket (the port above the RTP one), when it could be bound.
    rtcp: Option<UdpSocket>,
    rtcp_state: Mutex<RtcpState>,
    /// The SSRC of what was last sent to the far end (relayed or ours): our reports speak as
    /// it, so the far end's report blocks about it carry our SR's time (round-trip time).
    last_sent_ssrc: AtomicU32,
    detectors: Mutex<Detectors>,
    /// The leg's SRTP session, while its SDP says `RTP/SAVP`.
    srtp: Mutex<Option<SrtpSession>>,
    /// Whether `srtp` holds a session (read per packet without the lock).
    secure: AtomicBool,
}

/// What RTCP has told about the far end.
#[derive(Debug, Default)]
struct RtcpState {
    /// The last SR received: its NTP time's middle bits and when it arrived.
    remote_sr: Option<(u32, Instant)>,
    rtt_ms: Option<f64>,
}

fn ntp_now() -> u64 {
    let micros = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros());
    domains::rtcp::ntp_from_unix_micros(u64::try_from(micros).unwrap_or(u64::MAX))
}

/// Held while a play or DTMF sender owns the endpoint's outgoing stream.
pub struct OwnSender<'a>(&'a Endpoint);

impl Drop for OwnSender<'_> {
    fn drop(&mut self) {
        self.0.own_senders.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Locks a mutex whose data stays consistent even if a holder panicked (a bug elsewhere).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The identity of a remote description for repeat detection.
pub fn remote_identity(sdp: &SessionDescription, text: &str) -> String {
    match &sdp.origin {
        Some(o) => format!("{} {} {}", o.username, o.session_id, o.session_version),
        None => text.to_owned(),
    }
}

impl Endpoint {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: String,
        call_uuid: String,
        socket: UdpSocket,
        lease: PortLease,
        mut local: LocalSdp,
        local_sdp: String,
        session: Session,
        remote_identity: Option<String>,
        clock: Clock,
        events: broadcast::Sender<Event>,
        rtcp: Option<UdpSocket>,
    ) -> Arc<Endpoint> {
        let srtp = match &session {
            Session::Negotiated(n) => secure_session(&mut local, n, &id),
            Session::Offered { .. } => None,
        };
        Arc::new(Endpoint {
            id,
            call_uuid,
            socket,
            lease,
            state: Mutex::new(State {
                local,
                local_sdp,
                session,
                remote_identity,
                latched: None,
                peer: None,
                reoffered: None,
            }),
            counters: Counters::default(),
            last_rx_ms: AtomicU64::new(clock.now_ms()),
            timed_out: AtomicBool::new(false),
            clock,
            events,
            out: Mutex::new(OutStream::new()),
            jobs: Mutex::new(Jobs::default()),
            own_senders: AtomicU32::new(0),
            recording: AtomicBool::new(false),
            tap: Mutex::new(None),
            tapped: AtomicBool::new(false),
            muted: AtomicBool::new(false),
            earmuffed: AtomicBool::new(false),
            codec: Mutex::new(None),
            rtcp,
            rtcp_state: Mutex::new(RtcpState::default()),
            last_sent_ssrc: AtomicU32::new(0),
            detectors: Mutex::new(Detectors::default()),
            secure: AtomicBool::new(srtp.is_some()),
            srtp: Mutex::new(srtp),
        })
    }

    /// Keeps the SRTP session in step with a newly negotiated description: the same far-end
    /// crypto keeps the running contexts (and their rollover counters), another makes new
    /// ones, plain RTP drops them.
    fn follow_srtp(&self, local: &mut LocalSdp, negotiated: &Negotiated) {
        let mut slot = lock(&self.srtp);
        let unchanged = match (&*slot, &negotiated.srtp) {
            (Some(running), Some(remote)) => running.remote == *remote,
            (None, None) => true,
            _ => false,
        };
        if !unchanged {
            *slot = secure_session(local, negotiated, &self.id);
            self.secure.store(slot.is_some(), Ordering::Relaxed);
        }
    }

    /// Runs `f` on the SRTP session; `None` without one or when `f` refuses the packet.
    fn with_srtp<R>(&self, f: impl FnOnce(&mut SrtpSession) -> Option<R>) -> Option<R> {
        lock(&self.srtp).as_mut().and_then(f)
    }

    /// What goes on the wire for `packet`: protected when the leg is secure (`None`: it could
    /// not be), as it is otherwise.
    fn seal<'a>(&self, packet: &'a [u8], sealed: &'a mut Vec<u8>) -> Option<&'a [u8]> {
        if !self.secure.load(Ordering::Relaxed) {
            return Some(packet);
        }
        *sealed = self.with_srtp(|s| s.protect_rtp(packet))?;
        Some(sealed.as_slice())
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    fn jobs(&self) -> MutexGuard<'_, Jobs> {
        lock(&self.jobs)
    }

    pub fn port(&self) -> u16 {
        self.lease.port()
    }

    pub fn local_sdp(&self) -> String {
        self.state().local_sdp.clone()
    }

    pub fn codec(&self) -> Option<Codec> {
        match &self.state().session {
            Session::Negotiated(n) => Some(n.codec),
            Session::Offered { .. } => None,
        }
    }

    /// Applies a remote description: the answer to our offer, or a new offer (re-INVITE) that
    /// we answer keeping the current codec if the offer still has it. Returns our SDP.
    pub fn update(&self, text: &str) -> Result<String, SdpError> {
        let remote = SessionDescription::parse(text)?;
        let identity = remote_identity(&remote, text);
        let mut st = self.state();
        if st.remote_identity.as_deref() == Some(identity.as_str()) {
            return Ok(st.local_sdp.clone());
        }
        let reoffered = st.reoffered.take();
        let negotiated = match (&st.session, reoffered) {
            (_, Some(offered)) => sdp::accept_answer(&remote, &offered, st.local.srtp)?,
            (Session::Offered { offered }, None) => sdp::accept_answer(&remote, offered, st.local.srtp)?,
            (Session::Negotiated(current), None) => {
                let mut prefer = vec![current.codec];
                prefer.extend(Codec::ALL.iter().filter(|c| **c != current.codec));
                let n = sdp::answer_offer(&remote, &prefer, st.local.srtp)?;
                st.local.next_version();
                st.local_sdp = sdp::build_answer(&st.local, &remote, &n);
                n
            }
        };
        let moved = match &st.session {
            Session::Negotiated(old) => {
                (old.remote_ip, old.remote_port) != (negotiated.remote_ip, negotiated.remote_port)
            }
            Session::Offered { .. } => true,
        };
        if moved {
            st.latched = None;
        }
        self.follow_srtp(&mut st.local, &negotiated);
        tracing::info!(
            endpoint_id = %self.id, call_uuid = %self.call_uuid, codec = negotiated.codec.name(),
            direction = negotiated.direction.attribute(), remote = %SocketAddr::new(negotiated.remote_ip, negotiated.remote_port),
            "remote SDP applied"
        );
        st.session = Session::Negotiated(negotiated);
        st.remote_identity = Some(identity);
        // Media is expected from now on: the inactivity clock starts again.
        self.last_rx_ms.store(self.clock.now_ms(), Ordering::Relaxed);
        self.timed_out.store(false, Ordering::Relaxed);
        Ok(st.local_sdp.clone())
    }

    /// A new offer with `direction` (hold, resume) for the codec in use, with a higher `o=`
    /// version than anything sent before; the answer comes through [`Endpoint::update`].
    pub fn reoffer(&self, direction: Direction) -> String {
        let mut st = self.state();
        let codecs = match &st.session {
            Session::Negotiated(n) => vec![n.codec],
            Session::Offered { offered } => offered.clone(),
        };
        st.local.next_version();
        st.local_sdp = sdp::build_offer(&st.local, &codecs, direction);
        st.reoffered = Some(codecs);
        st.local_sdp.clone()
    }

    pub fn peer(&self) -> Option<Arc<Endpoint>> {
        self.state().peer.as_ref().and_then(Weak::upgrade)
    }

    pub fn set_peer(&self, peer: Option<&Arc<Endpoint>>) {
        self.state().peer = peer.map(Arc::downgrade);
    }

    /// The leg's quality so far: counters, RFC 3550 loss and jitter, and the estimated MOS.
    pub fn quality(&self) -> Quality {
        let c = self.stats();
        let rtt_ms = lock(&self.rtcp_state).rtt_ms;
        let d = lock(&self.detectors);
        let (expected, lost) = d.stats.loss();
        let loss_percent = if expected == 0 { 0.0 } else { lost as f64 * 100.0 / expected as f64 };
        let (jitter_ms, jitter_max_ms) = d.stats.jitter_ms();
        let round = |v: f64| (v * 100.0).round() / 100.0;
        Quality {
            packets_received: c.rx_packets,
            packets_sent: c.tx_packets,
            bytes_received: c.rx_bytes,
            bytes_sent: c.tx_bytes,
            packets_lost: lost,
            loss_percent: round(loss_percent),
            jitter_ms: round(jitter_ms),
            jitter_max_ms: round(jitter_max_ms),
            rtt_ms: rtt_ms.map(round),
            mos: quality::mos(loss_percent, jitter_ms, rtt_ms),
            dtmf_packets: d.dtmf_packets,
        }
    }

    pub fn stats(&self) -> Stats {
        let c = &self.counters;
        Stats {
            rx_packets: c.rx_packets.load(Ordering::Relaxed),
            rx_bytes: c.rx_bytes.load(Ordering::Relaxed),
            tx_packets: c.tx_packets.load(Ordering::Relaxed),
            tx_bytes: c.tx_bytes.load(Ordering::Relaxed),
        }
    }

    /// True once per silence: media is expected (negotiated, and the far end may send) and none
    /// arrived for `timeout`.
    pub fn check_timeout(&self, timeout: Duration) -> bool {
        let expects_media = match &self.state().session {
            Session::Negotiated(n) => n.direction.receives(),
            Session::Offered { .. } => false,
        };
        let now = self.clock.now_ms();
        if !expects_media {
            self.last_rx_ms.store(now, Ordering::Relaxed);
            return false;
        }
        let silent = now.saturating_sub(self.last_rx_ms.load(Ordering::Relaxed));
        silent >= u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX)
            && !self.timed_out.swap(true, Ordering::Relaxed)
    }

    /// Receives until the task is aborted (on destroy). Nothing one datagram does ends the
    /// loop: a bad packet is dropped, a send error is logged, and a panic in the per-packet
    /// work (a bug) is caught by [`isolate`], counted and the packet dropped.
    pub async fn run(self: Arc<Self>) {
        let mut buf = [0u8; 2048];
        loop {
            match self.socket.recv_from(&mut buf).await {
                Ok((n, from)) => {
                    // `recv_from` never reports more bytes than the buffer holds.
                    let Some(received) = buf.get_mut(..n) else { continue };
                    let mut clear;
                    let packet: &mut [u8] = if self.secure.load(Ordering::Relaxed) {
                        match self.with_srtp(|s| s.unprotect_rtp(received)) {
                            Some(p) => {
                                clear = p;
                                clear.as_mut_slice()
                            }
                            None => {
                                tracing::trace!(endpoint_id = %self.id, %from, "SRTP packet refused (authentication, replay)");
                                continue;
                            }
                        }
                    } else {
                        received
                    };
                    let Some((peer, dest, rebuilt)) = isolate(&self.id, || self.prepare_relay(packet, from)) else {
                        continue;
                    };
                    match rebuilt {
                        Some(transcoded) => self.send_to_peer(&peer, &transcoded, dest, false).await,
                        None => self.send_to_peer(&peer, packet, dest, true).await,
                    }
                }
                Err(e) => {
                    tracing::debug!(endpoint_id = %self.id, call_uuid = %self.call_uuid, error = %e, "RTP receive error");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    }

    /// The synchronous part of relaying one datagram: parse, latch, count, and rewrite it in
    /// place for the bridged peer. `Some` with the peer and where to send when it is to be
    /// relayed, `None` when it is dropped.
    fn prepare_relay(
        &self,
        packet: &mut [u8],
        from: SocketAddr,
    ) -> Option<(Arc<Endpoint>, SocketAddr, Option<Vec<u8>>)> {
        if rtp::is_rtcp(packet) {
            return None;
        }
        let header = match rtp::parse(packet) {
            Ok(h) => h,
            Err(e) => {
                tracing::trace!(endpoint_id = %self.id, %from, error = %e, "not RTP, dropped");
                return None;
            }
        };
        #[cfg(test)]
        tests::maybe_inject_panic(&header);
        let (from_formats, peer) = {
            let mut st = self.state();
            match st.latched {
                None => {
                    tracing::debug!(endpoint_id = %self.id, call_uuid = %self.call_uuid, %from, "RTP source latched");
                    st.latched = Some(from);
                }
                Some(latched) if latched != from => {
                    tracing::trace!(endpoint_id = %self.id, %from, %latched, "RTP from a source other than the latched one, dropped");
                    return None;
                }
                Some(_) => {}
            }
            self.counters.rx_packets.fetch_add(1, Ordering::Relaxed);
            self.counters.rx_bytes.fetch_add(packet.len() as u64, Ordering::Relaxed);
            self.last_rx_ms.store(self.clock.now_ms(), Ordering::Relaxed);
            self.timed_out.store(false, Ordering::Relaxed);
            match &st.session {
                Session::Negotiated(n) if n.direction.receives() => (Formats::from(n), st.peer.clone()),
                _ => return None,
            }
        };
        let relay_to = peer
            .and_then(|p| p.upgrade())
            .filter(|p| {
                p.own_senders.load(Ordering::Relaxed) == 0
                    && !self.muted.load(Ordering::Relaxed)
                    && !p.earmuffed.load(Ordering::Relaxed)
            })
            .and_then(|p| p.destination().map(|(formats, dest)| (p, formats, dest)));
        let transcode = relay_to.as_ref().is_some_and(|(_, to, _)| {
            header.payload_type == from_formats.codec_pt
                && to.codec != from_formats.codec
                && !(to.codec.is_g711() && from_formats.codec.is_g711())
        });
        let pcm = self.detect(packet, &header, &from_formats, transcode);
        let (peer, to_formats, dest) = relay_to?;
        if transcode {
            let (pcm, timestamp) = pcm?;
            let header = rtp::RtpHeader { timestamp, ..header };
            let rebuilt = peer.transcoded_packet(&header, &from_formats, &to_formats, &pcm)?;
            return Some((peer, dest, Some(rebuilt)));
        }
        if let Err(reason) = bridge::translate(packet, &header, &from_formats, &to_formats) {
            tracing::trace!(endpoint_id = %self.id, ?reason, "packet not relayed");
            return None;
        }
        Some((peer, dest, None))
    }

    /// Where and how packets to the far end go: its formats and address (latched, else the
    /// SDP's), `None` while it may not be sent to.
    fn destination(&self) -> Option<(Formats, SocketAddr)> {
        let st = self.state();
        let Session::Negotiated(n) = &st.session else { return None };
        if !n.direction.sends() {
            return None;
        }
        let dest = match st.latched {
            Some(addr) => addr,
            None if n.remote_port != 0 && !n.remote_ip.is_unspecified() => SocketAddr::new(n.remote_ip, n.remote_port),
            None => return None,
        };
        Some((Formats::from(n), dest))
    }

    /// Digits in a received packet (an RFC 4733 event, or tones in the audio when the leg has
    /// no telephone-event), and the received audio for a recording, a listener and, when the
    /// bridged leg has another codec (`transcode`), for the relay: returned when decoded.
    fn detect(
        &self,
        packet: &[u8],
        header: &rtp::RtpHeader,
        formats: &Formats,
        transcode: bool,
    ) -> Option<(Vec<i16>, u32)> {
        let payload = packet.get(header.payload_start..header.payload_end)?;
        let mut decoded = None;
        let recording = self.recording.load(Ordering::Relaxed);
        let tapped = self.tapped.load(Ordering::Relaxed);
        let mut digits = Vec::new();
        {
            let mut d = lock(&self.detectors);
            let event = Some(header.payload_type) == formats.telephone_event;
            d.stats.on_packet(header.ssrc, header.sequence, header.timestamp, self.clock.now_ms(), !event);
            if event {
                d.dtmf_packets += 1;
                digits.extend(d.events.on_packet(header.ssrc, header.timestamp, payload));
            } else if header.payload_type == formats.codec_pt
                && (recording
                    || tapped
                    || transcode
                    || formats.telephone_event.is_none()
                    || d.amd.is_some()
                    || d.speech.is_some())
            {
                let mut pcm = std::mem::take(&mut d.pcm);
                pcm.clear();
                let released = d.reorder.push(header.ssrc, header.sequence, header.timestamp, payload);
                let start = match &released {
                    crate::jitter::Release::This => Some(header.timestamp),
                    crate::jitter::Release::Slots(slots) => crate::jitter::start_of(slots, formats.codec.clock_rate()),
                };
                self.with_codec(formats.codec, |c| match &released {
                    crate::jitter::Release::This => c.decode(payload, &mut pcm),
                    crate::jitter::Release::Slots(slots) => crate::jitter::decode(slots, |packet| match packet {
                        Some(p) => c.decode(p, &mut pcm),
                        None => c.conceal(&mut pcm),
                    }),
                });
                if formats.telephone_event.is_none() {
                    digits.extend(d.tones.feed(&pcm));
                }
                if recording && let Some((r, _)) = self.jobs().record.as_mut() {
                    r.push(recorder::Source::Received, Instant::now(), &pcm);
                }
                if tapped && let Some(tap) = lock(&self.tap).as_ref() {
                    // A listener that falls behind loses frames rather than delaying the relay.
                    let _ = tap.try_send(pcm.clone());
                }
                if let Some(amd) = d.amd.as_mut() {
                    let verdict = pcm.chunks(audio::FRAME).find_map(|frame| amd.audio_frame(frame));
                    if amd.finished() {
                        d.amd = None;
                    }
                    if let Some(result) = verdict {
                        tracing::info!(endpoint_id = %self.id, call_uuid = %self.call_uuid, result = result.as_str(), "machine detection");
                        let _ = self.events.send(Event::MachineDetected {
                            endpoint_id: self.id.clone(),
                            result: result.as_str().to_owned(),
                        });
                    }
                }
                if let Some(l) = d.speech.as_mut() {
                    let now = self.clock.now_ms();
                    let ended = pcm.chunks(audio::FRAME).find_map(|frame| l.utterance.frame(frame, now));
                    if let Some(reason) = ended
                        && let Some(l) = d.speech.take()
                    {
                        self.speech_over(l, reason);
                    }
                }
                if transcode && !pcm.is_empty() {
                    // The relay sends what the buffer released (this packet's audio, or the
                    // packets it held it back for), in one packet from where it starts.
                    decoded = start.map(|ts| (pcm.clone(), ts));
                }
                d.pcm = pcm;
            }
        }
        for digit in digits {
            tracing::debug!(endpoint_id = %self.id, call_uuid = %self.call_uuid, %digit, "DTMF received");
            let _ = self.events.send(Event::Dtmf { endpoint_id: self.id.clone(), digit });
            let ends_recording = self.jobs().record.as_ref().is_some_and(|(r, _)| r.settings.end_on_key == Some(digit));
            if ends_recording {
                self.stop_record(None);
            }
        }
        decoded
    }

    /// Runs `f` on this leg's codec state for `codec`, made (again) when the codec changed.
    fn with_codec<R>(&self, codec: Codec, f: impl FnOnce(&mut LegCodec) -> R) -> Option<R> {
        let mut slot = lock(&self.codec);
        if slot.as_ref().is_none_or(|c| c.codec != codec) {
            match LegCodec::new(codec) {
                Ok(c) => *slot = Some(c),
                Err(e) => {
                    tracing::warn!(endpoint_id = %self.id, ?codec, error = %e, "codec unavailable");
                    return None;
                }
            }
        }
        slot.as_mut().map(f)
    }

    /// A packet of `pcm` for this leg (whose formats are `to`), carrying the sequence number,
    /// marker and SSRC of the packet it was decoded from, its timestamp moved to our clock.
    fn transcoded_packet(&self, header: &rtp::RtpHeader, from: &Formats, to: &Formats, pcm: &[i16]) -> Option<Vec<u8>> {
        let mut payload = Vec::with_capacity(pcm.len());
        self.with_codec(to.codec, |c| c.encode(pcm, &mut payload))?;
        let timestamp = (u64::from(header.timestamp) * u64::from(to.codec.clock_rate())
            / u64::from(from.codec.clock_rate().max(1))) as u32;
        let mut packet = Vec::with_capacity(12 + payload.len());
        packet.push(0x80);
        packet.push(if header.marker { 0x80 } else { 0 } | (to.codec_pt & 0x7f));
        packet.extend(header.sequence.to_be_bytes());
        packet.extend(timestamp.to_be_bytes());
        packet.extend(header.ssrc.to_be_bytes());
        packet.extend(payload);
        self.record_sent_pcm(pcm);
        Some(packet)
    }

    /// Adds what was sent to the far end to a running recording.
    fn record_sent(&self, codec: Codec, payload: &[u8]) {
        if !self.recording.load(Ordering::Relaxed) {
            return;
        }
        let mut pcm = Vec::with_capacity(audio::FRAME);
        audio::decode(codec, payload, &mut pcm);
        self.record_sent_pcm(&pcm);
    }

    fn record_sent_pcm(&self, pcm: &[i16]) {
        if let Some((r, _)) = self.jobs().record.as_mut() {
            r.push(recorder::Source::Sent, Instant::now(), pcm);
        }
    }

    /// Sends a prepared packet through the peer's socket, so the far end sees the port our SDP
    /// named. A failure is logged; the next packet tries again.
    async fn send_to_peer(&self, peer: &Endpoint, packet: &[u8], dest: SocketAddr, record: bool) {
        if record
            && peer.recording.load(Ordering::Relaxed)
            && let Ok(h) = rtp::parse(packet)
            && let (Some(payload), Some((formats, _))) =
                (packet.get(h.payload_start..h.payload_end), peer.destination())
            && h.payload_type == formats.codec_pt
            && formats.codec.is_g711()
        {
            peer.record_sent(formats.codec, payload);
        }
        if let Some(ssrc) = packet.get(8..12).and_then(|b| b.try_into().ok()).map(u32::from_be_bytes) {
            peer.last_sent_ssrc.store(ssrc, Ordering::Relaxed);
        }
        let mut sealed = Vec::new();
        let Some(packet) = peer.seal(packet, &mut sealed) else { return };
        match peer.socket.send_to(packet, dest).await {
            Ok(n) => {
                peer.counters.tx_packets.fetch_add(1, Ordering::Relaxed);
                peer.counters.tx_bytes.fetch_add(n as u64, Ordering::Relaxed);
            }
            Err(e) => {
                tracing::debug!(endpoint_id = %peer.id, call_uuid = %peer.call_uuid, %dest, error = %e, "RTP send failed")
            }
        }
    }
}

/// Our own stream and the jobs that feed it.
impl Endpoint {
    /// Marks the outgoing stream as ours until the guard drops (also when the task is aborted).
    pub fn sending_own(&self) -> OwnSender<'_> {
        self.own_senders.fetch_add(1, Ordering::Relaxed);
        OwnSender(self)
    }

    /// The far end's telephone-event payload type, when negotiated.
    pub fn telephone_event(&self) -> Option<u8> {
        self.destination().and_then(|(f, _)| f.telephone_event)
    }

    async fn send_own(&self, packet: &[u8], dest: SocketAddr) {
        self.last_sent_ssrc.store(lock(&self.out).ssrc(), Ordering::Relaxed);
        let mut sealed = Vec::new();
        let Some(packet) = self.seal(packet, &mut sealed) else { return };
        match self.socket.send_to(packet, dest).await {
            Ok(n) => {
                self.counters.tx_packets.fetch_add(1, Ordering::Relaxed);
                self.counters.tx_bytes.fetch_add(n as u64, Ordering::Relaxed);
            }
            Err(e) => tracing::debug!(endpoint_id = %self.id, %dest, error = %e, "RTP send failed"),
        }
    }

    /// Sends one 20 ms frame of our audio, encoded for the far end; while the far end may not
    /// be sent to (hold, no answer yet), the slot passes silently.
    pub async fn send_audio(&self, pcm: &[i16]) {
        self.send_frame(pcm, None).await;
    }

    /// Whether a recording runs.
    pub fn is_recording(&self) -> bool {
        self.recording.load(Ordering::Relaxed)
    }

    /// [`Endpoint::send_audio`] for a frame that mixes `parties` (member, frame): a recording
    /// keeps each party apart rather than the mix.
    pub async fn send_frame(&self, pcm: &[i16], parties: Option<&[(String, Vec<i16>)]>) {
        let earmuffed = self.earmuffed.load(Ordering::Relaxed);
        let Some((formats, dest)) = self.destination().filter(|_| !earmuffed) else {
            lock(&self.out).skip();
            return;
        };
        match parties {
            None => self.record_sent_pcm(pcm),
            Some(parties) => {
                if let Some((r, _)) = self.jobs().record.as_mut() {
                    let now = Instant::now();
                    for (member, frame) in parties {
                        r.push(recorder::Source::Party(member), now, frame);
                    }
                }
            }
        }
        let mut payload = Vec::with_capacity(pcm.len());
        if self.with_codec(formats.codec, |c| c.encode(pcm, &mut payload)).is_none() {
            return;
        }
        let mut packet = Vec::with_capacity(12 + payload.len());
        lock(&self.out).audio(formats.codec_pt, &payload, formats.codec.clock_rate() / 50, &mut packet);
        self.send_own(&packet, dest).await;
    }

    /// Sends one telephone-event packet.
    pub async fn send_event(&self, payload_type: u8, payload: [u8; 4], first: bool) {
        let Some((_, dest)) = self.destination() else {
            lock(&self.out).skip();
            return;
        };
        let mut packet = Vec::with_capacity(16);
        lock(&self.out).event(payload_type, payload, first, &mut packet);
        self.send_own(&packet, dest).await;
    }

    pub fn skip_slot(&self) {
        lock(&self.out).skip();
    }

    /// Starts playing `source`; a play already running is stopped first (and reported).
    pub fn start_play(
        self: &Arc<Self>,
        sources: Arc<Sources>,
        play_id: String,
        source: PlaySource,
        loops: u32,
        level: f64,
    ) {
        self.stop_play();
        let task = tokio::spawn(playout::play(self.clone(), sources, play_id.clone(), source, loops, level));
        self.jobs().play = Some((play_id, task.abort_handle()));
    }

    /// Stops the running play, reporting it done; nothing playing is not an error.
    pub fn stop_play(&self) {
        let Some((play_id, task)) = self.jobs().play.take() else { return };
        task.abort();
        let _ = self.events.send(Event::PlaybackDone { endpoint_id: self.id.clone(), play_id, error: None });
    }

    /// A play ended by itself: reported unless it was stopped (and reported) meanwhile.
    pub fn play_ended(&self, play_id: &str, error: Option<String>) {
        let mut jobs = self.jobs();
        if jobs.play.as_ref().is_some_and(|(id, _)| id == play_id) {
            jobs.play = None;
            drop(jobs);
            let _ = self.events.send(Event::PlaybackDone {
                endpoint_id: self.id.clone(),
                play_id: play_id.to_owned(),
                error,
            });
        }
    }

    /// Sends digits after any still being sent.
    pub fn start_dtmf(self: &Arc<Self>, digits: String) {
        let previous = self.jobs().dtmf.take();
        let ep = self.clone();
        let task = tokio::spawn(async move {
            // Digits queue behind the ones still being sent rather than cutting them off.
            if let Some(p) = previous {
                while !p.is_finished() {
                    tokio::time::sleep(playout::PTIME).await;
                }
            }
            playout::send_dtmf(ep, digits).await;
        });
        self.jobs().dtmf = Some(task.abort_handle());
    }

    /// Starts a recording (ending one already running), and the task that ends it on time or
    /// on silence.
    pub fn start_record(self: &Arc<Self>, recorder: Recorder) {
        self.stop_record(None);
        let id = recorder.id.clone();
        let watcher = self.watch(move |ep| {
            let ending = ep.jobs().record.as_ref().and_then(|(r, _)| r.ending(Instant::now()));
            let Some(why) = ending else { return false };
            tracing::debug!(endpoint_id = %ep.id, record_id = %id, ?why, "recording ends by itself");
            ep.stop_record(Some(&id));
            true
        });
        self.jobs().record = Some((recorder, watcher));
        self.recording.store(true, Ordering::Relaxed);
    }

    /// Ends the recording (`record_id`, or whichever runs), writes its file off the packet
    /// path and reports `record_done`. The returned task ends when the file is written.
    pub fn stop_record(&self, record_id: Option<&str>) -> Option<tokio::task::JoinHandle<()>> {
        let (recorder, watcher) = {
            let mut jobs = self.jobs();
            if record_id.is_some_and(|id| jobs.record.as_ref().is_none_or(|(r, _)| r.id != id)) {
                return None;
            }
            jobs.record.take()?
        };
        self.recording.store(false, Ordering::Relaxed);
        watcher.abort();
        let events = self.events.clone();
        let endpoint_id = self.id.clone();
        Some(tokio::spawn(async move {
            let record_id = recorder.id.clone();
            let path = recorder.path.clone();
            let written = tokio::task::spawn_blocking(move || recorder.write(Instant::now()))
                .await
                .unwrap_or_else(|e| Err(e.to_string()));
            let event = match written {
                Ok(w) => {
                    tracing::info!(%endpoint_id, %record_id, path = %path.display(), size = w.size, duration_ms = w.duration_ms, "recording written");
                    Event::RecordDone { endpoint_id, record_id, size: w.size, duration_ms: w.duration_ms, error: None }
                }
                Err(e) => {
                    tracing::warn!(%endpoint_id, %record_id, error = %e, "recording could not be written");
                    Event::RecordDone { endpoint_id, record_id, size: 0, duration_ms: 0, error: Some(e) }
                }
            };
            let _ = events.send(event);
        }))
    }

    /// Serves RTCP until aborted (with the endpoint): reads the far end's reports (its SR's
    /// time for our LSR, round-trip time from its blocks about us) and sends ours every
    /// `interval` (an SR speaking as the stream we send, a block about the stream we receive,
    /// the SDES CNAME).
    pub async fn run_rtcp(self: Arc<Self>, interval: Duration) {
        let Some(sock) = self.rtcp.as_ref() else { return };
        let mut tick = tokio::time::interval(interval);
        tick.tick().await;
        let mut buf = [0u8; 1500];
        loop {
            tokio::select! {
                received = sock.recv_from(&mut buf) => {
                    if let Ok((n, _)) = received {
                        self.on_rtcp(buf.get(..n).unwrap_or_default());
                    }
                }
                _ = tick.tick() => {
                    if let Some((report, dest)) = self.rtcp_report() {
                        let _ = sock.send_to(&report, dest).await;
                    }
                }
            }
        }
    }

    fn on_rtcp(&self, datagram: &[u8]) {
        let clear;
        let datagram = if self.secure.load(Ordering::Relaxed) {
            let Some(p) = self.with_srtp(|s| s.unprotect_rtcp(datagram)) else { return };
            clear = p;
            clear.as_slice()
        } else {
            datagram
        };
        let Ok(packets) = domains::rtcp::parse(datagram) else { return };
        let now = ntp_now();
        let mut st = lock(&self.rtcp_state);
        for p in packets {
            let blocks = match p {
                domains::rtcp::RtcpPacket::SenderReport { info, reports, .. } => {
                    st.remote_sr = Some((domains::rtcp::ntp_middle(info.ntp), Instant::now()));
                    reports
                }
                domains::rtcp::RtcpPacket::ReceiverReport { reports, .. } => reports,
                domains::rtcp::RtcpPacket::Other { .. } => continue,
            };
            if let Some(rtt) = blocks.iter().find_map(|b| domains::rtcp::rtt_ms(now, b)) {
                st.rtt_ms = Some(rtt);
            }
        }
    }

    /// Our report and where it goes (the far end's RTP address, port + 1).
    fn rtcp_report(&self) -> Option<(Vec<u8>, SocketAddr)> {
        let (_, rtp) = self.destination()?;
        let dest = SocketAddr::new(rtp.ip(), rtp.port().checked_add(1)?);
        let (lsr, dlsr) = match lock(&self.rtcp_state).remote_sr {
            Some((lsr, at)) => (lsr, (at.elapsed().as_secs_f64() * 65536.0) as u32),
            None => (0, 0),
        };
        let block = lock(&self.detectors).stats.report_block(lsr, dlsr);
        let (own_ssrc, timestamp) = {
            let out = lock(&self.out);
            (out.ssrc(), out.timestamp())
        };
        let ssrc = match self.last_sent_ssrc.load(Ordering::Relaxed) {
            0 => own_ssrc,
            s => s,
        };
        let c = self.stats();
        let sender = domains::rtcp::SenderInfo {
            ntp: ntp_now(),
            rtp_timestamp: timestamp,
            packets: c.tx_packets as u32,
            octets: c.tx_bytes as u32,
        };
        let report = domains::rtcp::build(ssrc, Some(sender), &block.into_iter().collect::<Vec<_>>(), "voxbridge");
        if self.secure.load(Ordering::Relaxed) {
            return Some((self.with_srtp(|s| s.protect_rtcp(&report))?, dest));
        }
        Some((report, dest))
    }

    /// Sends the decoded received audio (20 ms frames) to the returned receiver until
    /// [`Endpoint::untap`]; a new tap replaces the old one.
    pub fn tap(&self) -> tokio::sync::mpsc::Receiver<Vec<i16>> {
        let (tx, rx) = tokio::sync::mpsc::channel(50);
        *lock(&self.tap) = Some(tx);
        self.tapped.store(true, Ordering::Relaxed);
        rx
    }

    /// Listens for one utterance (replacing a listening already running); `speech_done`
    /// follows with `asr`'s transcript.
    pub fn start_transcribe(
        self: &Arc<Self>,
        transcribe_id: String,
        bounds: domains::speech::Bounds,
        asr: Arc<dyn crate::asr::AsrEngine>,
        request: crate::asr::AsrRequest,
    ) {
        let utterance = domains::speech::Utterance::new(bounds, self.clock.now_ms());
        lock(&self.detectors).speech = Some(Listening { transcribe_id, utterance, asr, request });
        let clock = self.watch(|ep| {
            let now = ep.clock.now_ms();
            let mut d = lock(&ep.detectors);
            let Some(l) = d.speech.as_mut() else { return true };
            let Some(reason) = l.utterance.tick(now) else { return false };
            if let Some(l) = d.speech.take() {
                drop(d);
                ep.speech_over(l, reason);
            }
            true
        });
        if let Some(old) = self.jobs().listening.replace(clock) {
            old.abort();
        }
    }

    /// Stops listening (`transcribe_id`'s, or whichever runs); nothing is reported.
    pub fn stop_transcribe(&self, transcribe_id: Option<&str>) {
        let mut d = lock(&self.detectors);
        if d.speech.as_ref().is_some_and(|l| transcribe_id.is_none_or(|id| l.transcribe_id == id)) {
            d.speech = None;
            if let Some(clock) = self.jobs().listening.take() {
                clock.abort();
            }
        }
    }

    /// The utterance is over: recognised off the packet path, then `speech_done`.
    fn speech_over(&self, mut l: Listening, reason: domains::speech::EndReason) {
        let heard = l.utterance.heard_speech();
        let pcm = l.utterance.take_audio();
        let events = self.events.clone();
        let endpoint_id = self.id.clone();
        tracing::info!(%endpoint_id, call_uuid = %self.call_uuid, reason = reason.as_str(), seconds = pcm.len() as f64 / f64::from(audio::RATE), "utterance over");
        tokio::spawn(async move {
            let (text, confidence, error) = if heard {
                match l.asr.transcribe(pcm, l.request).await {
                    Ok(t) => (Some(t.text), t.confidence, None),
                    Err(e) => (None, None, Some(e)),
                }
            } else {
                (None, None, None)
            };
            let _ = events.send(Event::SpeechDone {
                endpoint_id,
                transcribe_id: l.transcribe_id,
                timeout_reason: reason.as_str().to_owned(),
                text,
                confidence,
                error,
            });
        });
    }

    /// Starts classifying the received audio as a person or a machine.
    pub fn detect_machine(&self, beep_timeout_ms: Option<u32>) {
        let detector = domains::amd::AmdDetector::new(domains::amd::AmdConfig::default());
        lock(&self.detectors).amd = Some(match beep_timeout_ms {
            Some(ms) => detector.listening_for_beep(ms),
            None => detector,
        });
    }

    pub fn set_earmuffed(&self, earmuffed: bool) {
        self.earmuffed.store(earmuffed, Ordering::Relaxed);
    }

    pub fn set_muted(&self, muted: bool) {
        self.muted.store(muted, Ordering::Relaxed);
    }

    pub fn untap(&self) {
        self.tapped.store(false, Ordering::Relaxed);
        *lock(&self.tap) = None;
    }

    /// Streams to a WebSocket (replacing a stream already running); `ws_connected` and
    /// `ws_closed` follow, naming `report_as`.
    pub fn start_websocket(self: &Arc<Self>, session: domains::media::WebsocketTarget, report_as: String) {
        if let Some(old) = self.jobs().websocket.take() {
            old.abort();
        }
        let task = crate::pacer::spawn(crate::websocket::run(self.clone(), session, report_as, self.events.clone()));
        self.jobs().websocket = Some(task.abort_handle());
    }

    /// Runs `done` on the endpoint every 100 ms until it says it is done or the endpoint is
    /// gone: the clock of jobs that must end on time even when no packet comes.
    fn watch(self: &Arc<Self>, mut done: impl FnMut(&Arc<Endpoint>) -> bool + Send + 'static) -> AbortHandle {
        let weak = Arc::downgrade(self);
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            loop {
                tick.tick().await;
                let Some(ep) = weak.upgrade() else { return };
                if done(&ep) {
                    return;
                }
            }
        });
        task.abort_handle()
    }

    /// Ends every job (the endpoint is going): sending stops, a recording is written.
    pub async fn end_jobs(&self) {
        let (play, dtmf, websocket, listening) = {
            let mut jobs = self.jobs();
            (jobs.play.take(), jobs.dtmf.take(), jobs.websocket.take(), jobs.listening.take())
        };
        if let Some(task) = listening {
            task.abort();
        }
        if let Some(task) = websocket {
            task.abort();
        }
        if let Some((play_id, task)) = play {
            task.abort();
            let _ = self.events.send(Event::PlaybackDone { endpoint_id: self.id.clone(), play_id, error: None });
        }
        if let Some(task) = dtmf {
            task.abort();
        }
        if let Some(written) = self.stop_record(None) {
            let _ = written.await;
        }
    }
}

/// Panics caught in the per-packet work of any endpoint since the process started.
static PACKET_PANICS: AtomicU64 = AtomicU64::new(0);

/// How many panics [`isolate`] has caught.
pub fn packet_panics() -> u64 {
    PACKET_PANICS.load(Ordering::Relaxed)
}

/// Runs the synchronous per-packet `work`, turning a panic (always a bug) into a dropped
/// packet, so one datagram cannot end a leg's receive loop. Costs nothing while nothing
/// panics: no allocation, no task. Logged on the 1st, 2nd, 4th, 8th… panic only, because a
/// packet that triggers a bug usually comes back 50 times a second.
fn isolate<R>(endpoint_id: &str, work: impl FnOnce() -> Option<R>) -> Option<R> {
    // Unwind safety: the only state shared across the boundary is behind `Mutex`es (whose
    // poisoning `Endpoint::state` ignores by design) and atomics; a half-done packet is dropped.
    match std::panic::catch_unwind(AssertUnwindSafe(work)) {
        Ok(result) => result,
        Err(payload) => {
            let total = PACKET_PANICS.fetch_add(1, Ordering::Relaxed).saturating_add(1);
            if total.is_power_of_two() {
                let message = panics::message(&*payload);
                tracing::error!(%endpoint_id, panic = message, total, "bug: RTP packet handler panicked; packet dropped");
            }
            None
        }
    }
}

/// The SRTP session `negotiated` calls for, keyed by `local`'s key; once a leg is secure, our
/// later offers to it (hold, resume) are secure too.
fn secure_session(local: &mut LocalSdp, negotiated: &Negotiated, endpoint_id: &str) -> Option<SrtpSession> {
    let remote = negotiated.srtp.as_ref()?;
    local.srtp = domains::srtp::SrtpPolicy::Always;
    match SrtpSession::new(&local.key, remote) {
        Ok(session) => Some(session),
        Err(e) => {
            tracing::warn!(%endpoint_id, error = %e, "SRTP session could not be made");
            None
        }
    }
}

/// Direction we offer on a new endpoint.
pub const OFFER_DIRECTION: Direction = Direction::SendRecv;

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use domains::rtp::RtpHeader;

    use super::*;
    use crate::ports::{PortAllocator, PortRange};

    /// A packet with this SSRC makes the per-packet handler panic, standing in for a bug.
    const PANIC_SSRC: u32 = 0x0bad_0bad;
    const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    pub(super) fn maybe_inject_panic(header: &RtpHeader) {
        if header.ssrc == PANIC_SSRC {
            panic!("injected handler bug");
        }
    }

    fn packet(ssrc: u32, seq: u16) -> Vec<u8> {
        let mut p = vec![0x80, 0];
        p.extend(seq.to_be_bytes());
        p.extend(160u32.to_be_bytes());
        p.extend(ssrc.to_be_bytes());
        p.extend([0xff; 160]);
        p
    }

    fn endpoint(alloc: &Arc<PortAllocator>, remote: SocketAddr) -> Arc<Endpoint> {
        let (socket, _rtcp, lease) = alloc.allocate().unwrap();
        let socket = UdpSocket::from_std(socket).unwrap();
        let local = LocalSdp {
            session_id: 1,
            version: 1,
            address: LOCALHOST,
            port: lease.port(),
            srtp: domains::srtp::SrtpPolicy::Optional,
            key: domains::srtp::MasterKey([0; 30]),
        };
        let negotiated = Negotiated {
            codec: Codec::Pcmu,
            codec_pt: 0,
            telephone_event: None,
            remote_ip: remote.ip(),
            remote_port: remote.port(),
            direction: Direction::SendRecv,
            ptime: None,
            media_index: 0,
            srtp: None,
        };
        let id = format!("ep{}", lease.port());
        let session = Session::Negotiated(negotiated);
        let events = broadcast::channel(16).0;
        Endpoint::new(
            id,
            "call".into(),
            socket,
            lease,
            local,
            String::new(),
            session,
            None,
            Clock::start(),
            events,
            None,
        )
    }

    #[test]
    fn isolate_turns_a_panic_into_a_dropped_packet() {
        assert_eq!(isolate("t", || Some(7)), Some(7));
        assert_eq!(isolate("t", || None::<u8>), None);
        let before = packet_panics();
        assert_eq!(isolate("t", || -> Option<u8> { panic!("bug") }), None);
        assert!(packet_panics() > before);
    }

    #[tokio::test]
    async fn receive_loop_survives_a_panicking_packet() {
        let far_a = UdpSocket::bind((LOCALHOST, 0)).await.unwrap();
        let far_b = UdpSocket::bind((LOCALHOST, 0)).await.unwrap();
        // A range no other test in this binary uses.
        let alloc = PortAllocator::new(LOCALHOST, PortRange { first: 47200, last: 47209 });
        let a = endpoint(&alloc, far_a.local_addr().unwrap());
        let b = endpoint(&alloc, far_b.local_addr().unwrap());
        a.set_peer(Some(&b));
        b.set_peer(Some(&a));
        let task = tokio::spawn(a.clone().run());
        let to_a = SocketAddr::new(LOCALHOST, a.port());

        let before = packet_panics();
        far_a.send_to(&packet(PANIC_SSRC, 1), to_a).await.unwrap();
        far_a.send_to(&packet(0x1234, 2), to_a).await.unwrap();

        let mut buf = [0u8; 2048];
        let (n, from) = tokio::time::timeout(Duration::from_secs(5), far_b.recv_from(&mut buf)).await.unwrap().unwrap();
        assert_eq!(from.port(), b.port(), "relayed through the peer's socket");
        let h = rtp::parse(&buf[..n]).unwrap();
        assert_eq!((h.ssrc, h.sequence), (0x1234, 2), "the packet after the panicking one is relayed");
        assert!(packet_panics() > before);
        assert!(!task.is_finished());
        assert_eq!(a.stats().rx_packets, 1);
        assert_eq!(b.stats().tx_packets, 1);
        task.abort();
    }
}
