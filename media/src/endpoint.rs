//! One RTP endpoint: a call leg's UDP socket and port lease, its offer/answer state, symmetric
//! RTP latching, packet counters, and the receive loop that relays each packet to the bridged
//! peer endpoint (through the peer's socket, so the far end sees the port our SDP named).
//!
//! Symmetric RTP (RFC 4961): until a packet arrives we send to the address in the remote SDP;
//! the first packet's source address is latched and used from then on, and packets from any
//! other source are dropped (a stranger cannot inject audio). A remote description with a new
//! address (re-INVITE) clears the latch. RTCP is not served yet: the odd port is reserved by the
//! allocator but not bound, and RTCP multiplexed on the RTP port is ignored.

use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use domains::sdp::{self, Codec, Direction, LocalSdp, Negotiated, SdpError, SessionDescription};
use tokio::net::UdpSocket;

use crate::bridge::{self, Formats};
use crate::panics;
use crate::ports::PortLease;
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
        local: LocalSdp,
        local_sdp: String,
        session: Session,
        remote_identity: Option<String>,
        clock: Clock,
    ) -> Arc<Endpoint> {
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
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock is a bug elsewhere; the state itself stays usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
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
            (_, Some(offered)) => sdp::accept_answer(&remote, &offered)?,
            (Session::Offered { offered }, None) => sdp::accept_answer(&remote, offered)?,
            (Session::Negotiated(current), None) => {
                let mut prefer = vec![current.codec];
                prefer.extend(Codec::ALL.iter().filter(|c| **c != current.codec));
                let n = sdp::answer_offer(&remote, &prefer)?;
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
                    let Some(packet) = buf.get_mut(..n) else { continue };
                    let Some((peer, dest)) = isolate(&self.id, || self.prepare_relay(packet, from)) else {
                        continue;
                    };
                    self.send_to_peer(&peer, packet, dest).await;
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
    fn prepare_relay(&self, packet: &mut [u8], from: SocketAddr) -> Option<(Arc<Endpoint>, SocketAddr)> {
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
        let peer = peer.and_then(|p| p.upgrade())?;
        let (to_formats, dest) = {
            let st = peer.state();
            let Session::Negotiated(n) = &st.session else { return None };
            if !n.direction.sends() {
                return None;
            }
            let sdp_addr = SocketAddr::new(n.remote_ip, n.remote_port);
            let dest = match st.latched {
                Some(addr) => addr,
                None if n.remote_port != 0 && !n.remote_ip.is_unspecified() => sdp_addr,
                None => return None,
            };
            (Formats::from(n), dest)
        };
        if let Err(reason) = bridge::translate(packet, &header, &from_formats, &to_formats) {
            tracing::trace!(endpoint_id = %self.id, ?reason, "packet not relayed");
            return None;
        }
        Some((peer, dest))
    }

    /// Sends a prepared packet through the peer's socket, so the far end sees the port our SDP
    /// named. A failure is logged; the next packet tries again.
    async fn send_to_peer(&self, peer: &Endpoint, packet: &[u8], dest: SocketAddr) {
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
        let (socket, lease) = alloc.allocate().unwrap();
        let socket = UdpSocket::from_std(socket).unwrap();
        let local = LocalSdp { session_id: 1, version: 1, address: LOCALHOST, port: lease.port() };
        let negotiated = Negotiated {
            codec: Codec::Pcmu,
            codec_pt: 0,
            telephone_event: None,
            remote_ip: remote.ip(),
            remote_port: remote.port(),
            direction: Direction::SendRecv,
            ptime: None,
            media_index: 0,
        };
        let id = format!("ep{}", lease.port());
        let session = Session::Negotiated(negotiated);
        Endpoint::new(id, "call".into(), socket, lease, local, String::new(), session, None, Clock::start())
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
