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
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use domains::sdp::{self, Codec, Direction, LocalSdp, Negotiated, SdpError, SessionDescription};
use tokio::net::UdpSocket;

use crate::bridge::{self, Formats};
use crate::ports::PortLease;
use crate::rtp;

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
            state: Mutex::new(State { local, local_sdp, session, remote_identity, latched: None, peer: None }),
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
        let negotiated = match &st.session {
            Session::Offered { offered } => sdp::accept_answer(&remote, offered)?,
            Session::Negotiated(current) => {
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

    /// Receives until the task is aborted (on destroy).
    pub async fn run(self: Arc<Self>) {
        let mut buf = [0u8; 2048];
        loop {
            match self.socket.recv_from(&mut buf).await {
                Ok((n, from)) => self.on_datagram(&mut buf[..n], from).await,
                Err(e) => {
                    tracing::debug!(endpoint_id = %self.id, call_uuid = %self.call_uuid, error = %e, "RTP receive error");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    }

    async fn on_datagram(&self, packet: &mut [u8], from: SocketAddr) {
        if rtp::is_rtcp(packet) {
            return;
        }
        let header = match rtp::parse(packet) {
            Ok(h) => h,
            Err(e) => {
                tracing::trace!(endpoint_id = %self.id, %from, error = %e, "not RTP, dropped");
                return;
            }
        };
        let (from_formats, peer) = {
            let mut st = self.state();
            match st.latched {
                None => {
                    tracing::debug!(endpoint_id = %self.id, call_uuid = %self.call_uuid, %from, "RTP source latched");
                    st.latched = Some(from);
                }
                Some(latched) if latched != from => {
                    tracing::trace!(endpoint_id = %self.id, %from, %latched, "RTP from a source other than the latched one, dropped");
                    return;
                }
                Some(_) => {}
            }
            self.counters.rx_packets.fetch_add(1, Ordering::Relaxed);
            self.counters.rx_bytes.fetch_add(packet.len() as u64, Ordering::Relaxed);
            self.last_rx_ms.store(self.clock.now_ms(), Ordering::Relaxed);
            self.timed_out.store(false, Ordering::Relaxed);
            match &st.session {
                Session::Negotiated(n) if n.direction.receives() => (Formats::from(n), st.peer.clone()),
                _ => return,
            }
        };
        let Some(peer) = peer.and_then(|p| p.upgrade()) else { return };
        let (to_formats, dest) = {
            let st = peer.state();
            let Session::Negotiated(n) = &st.session else { return };
            if !n.direction.sends() {
                return;
            }
            let sdp_addr = SocketAddr::new(n.remote_ip, n.remote_port);
            let dest = match st.latched {
                Some(addr) => addr,
                None if n.remote_port != 0 && !n.remote_ip.is_unspecified() => sdp_addr,
                None => return,
            };
            (Formats::from(n), dest)
        };
        if let Err(reason) = bridge::translate(packet, &header, &from_formats, &to_formats) {
            tracing::trace!(endpoint_id = %self.id, ?reason, "packet not relayed");
            return;
        }
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

/// Direction we offer on a new endpoint.
pub const OFFER_DIRECTION: Direction = Direction::SendRecv;
