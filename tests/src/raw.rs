//! A hand-driven SIP peer over a real UDP socket, for cases SIPp cannot express easily:
//! malformed input, exact status codes, digest answers computed by the test, and a far end that
//! counts the RTP packets reaching it.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::UdpSocket;

pub struct RawSip {
    pub sock: UdpSocket,
    pub local: SocketAddr,
    pub target: SocketAddr,
}

/// A received SIP message, kept as text.
#[derive(Debug, Clone)]
pub struct Msg(pub String);

impl Msg {
    pub fn status(&self) -> Option<u16> {
        self.0.strip_prefix("SIP/2.0 ")?.get(..3)?.parse().ok()
    }

    pub fn method(&self) -> Option<&str> {
        (!self.0.starts_with("SIP/2.0")).then(|| self.0.split(' ').next()).flatten()
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers(name).into_iter().next()
    }

    pub fn headers(&self, name: &str) -> Vec<String> {
        let head = self.0.split("\r\n\r\n").next().unwrap_or_default();
        head.split("\r\n")
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .filter(|(n, _)| n.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_owned())
            .collect()
    }

    pub fn body(&self) -> &str {
        self.0.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default()
    }
}

impl RawSip {
    pub async fn new(target: &str) -> RawSip {
        Self::from_ip("127.0.0.1", target).await
    }

    /// A peer on another loopback address (any of 127.0.0.0/8), i.e. another source.
    pub async fn from_ip(ip: &str, target: &str) -> RawSip {
        let sock = UdpSocket::bind((ip, 0)).await.expect("bind");
        let local = sock.local_addr().expect("addr");
        RawSip { sock, local, target: target.parse().expect("target address") }
    }

    pub async fn send(&self, text: &str) {
        self.sock.send_to(text.as_bytes(), self.target).await.expect("send");
    }

    pub async fn send_bytes(&self, bytes: &[u8]) {
        self.sock.send_to(bytes, self.target).await.expect("send");
    }

    pub async fn recv(&self, within: Duration) -> Option<(Msg, SocketAddr)> {
        let mut buf = vec![0u8; 65535];
        match tokio::time::timeout(within, self.sock.recv_from(&mut buf)).await {
            Ok(Ok((n, from))) => Some((Msg(String::from_utf8_lossy(&buf[..n]).into_owned()), from)),
            _ => None,
        }
    }

    /// Receives until a final response (>= 200) arrives.
    pub async fn final_response(&self, within: Duration) -> Option<Msg> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let (m, _) = self.recv(left).await?;
            if m.status().is_some_and(|s| s >= 200) {
                return Some(m);
            }
        }
    }

    /// An INVITE from this socket to `uri`, with an SDP offer for `rtp_port`.
    pub fn invite(&self, uri: &str, call_id: &str, cseq: u32, extra: &str, rtp_port: u16) -> String {
        let sdp = sdp_offer(rtp_port);
        format!(
            "INVITE {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {l};branch=z9hG4bK{b};rport\r\nMax-Forwards: 70\r\n\
             From: <sip:+14155550199@{l}>;tag=raw{b}\r\nTo: <{uri}>\r\nCall-ID: {call_id}\r\nCSeq: {cseq} INVITE\r\n\
             Contact: <sip:+14155550199@{l}>\r\n{extra}Content-Type: application/sdp\r\nContent-Length: {len}\r\n\r\n{sdp}",
            l = self.local,
            b = uuid::Uuid::new_v4().simple(),
            len = sdp.len()
        )
    }

    /// ACK for a non-2xx final response to `invite` (same branch).
    pub fn ack_for(&self, invite: &str, response: &Msg) -> String {
        let inv = Msg(invite.to_owned());
        let uri = invite.split(' ').nth(1).unwrap_or_default();
        let cseq = inv.header("CSeq").unwrap_or_default().split(' ').next().unwrap_or("1").to_owned();
        format!(
            "ACK {uri} SIP/2.0\r\nVia: {}\r\nMax-Forwards: 70\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {cseq} ACK\r\nContent-Length: 0\r\n\r\n",
            inv.header("Via").unwrap_or_default(),
            inv.header("From").unwrap_or_default(),
            response.header("To").unwrap_or_default(),
            inv.header("Call-ID").unwrap_or_default(),
        )
    }
}

/// An OPTIONS from `peer` to `host` (any user).
pub fn options(peer: &RawSip, host: &str, call_id: &str) -> String {
    format!(
        "OPTIONS sip:probe@{host} SIP/2.0\r\nVia: SIP/2.0/UDP {l};branch=z9hG4bK{call_id};rport\r\n\
         From: <sip:probe@{l}>;tag=1\r\nTo: <sip:probe@{host}>\r\nCall-ID: {call_id}\r\nCSeq: 1 OPTIONS\r\n\
         Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        l = peer.local
    )
}

pub fn sdp_offer(rtp_port: u16) -> String {
    format!(
        "v=0\r\no=raw 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {rtp_port} RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=sendrecv\r\n"
    )
}

/// The RTP address an SDP body announces.
pub fn sdp_rtp_addr(sdp: &str) -> Option<SocketAddr> {
    let ip = sdp.lines().find_map(|l| l.trim().strip_prefix("c=IN IP4 "))?.trim();
    let port = sdp.lines().find_map(|l| l.trim().strip_prefix("m=audio "))?.split(' ').next()?;
    format!("{ip}:{port}").parse().ok()
}

/// Runs `peer` in the background as a live SIP stack that takes no calls: OPTIONS get `200`,
/// every INVITE `486` (and is passed on, for the test to see who was rung).
pub fn busy_but_alive(peer: RawSip) -> tokio::sync::mpsc::UnboundedReceiver<Msg> {
    let (invites_tx, invites) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some((msg, from)) = peer.recv(Duration::from_secs(60)).await {
            let reply = match msg.method() {
                Some("OPTIONS") => respond(&msg, 200, "OK", "alive", "", ""),
                Some("INVITE") => {
                    let _ = invites_tx.send(msg.clone());
                    respond(&msg, 486, "Busy Here", "alive", "", "")
                }
                _ => continue,
            };
            let _ = peer.sock.send_to(reply.as_bytes(), from).await;
        }
    });
    invites
}

/// A response to a request received as text: Via, From, To (+tag), Call-ID, CSeq copied.
pub fn respond(request: &Msg, code: u16, reason: &str, to_tag: &str, contact: &str, body: &str) -> String {
    let mut out = format!("SIP/2.0 {code} {reason}\r\n");
    for v in request.headers("Via") {
        out.push_str(&format!("Via: {v}\r\n"));
    }
    out.push_str(&format!("From: {}\r\n", request.header("From").unwrap_or_default()));
    let to = request.header("To").unwrap_or_default();
    let to = if to.contains("tag=") || to_tag.is_empty() { to } else { format!("{to};tag={to_tag}") };
    out.push_str(&format!("To: {to}\r\n"));
    out.push_str(&format!("Call-ID: {}\r\n", request.header("Call-ID").unwrap_or_default()));
    out.push_str(&format!("CSeq: {}\r\n", request.header("CSeq").unwrap_or_default()));
    if !contact.is_empty() {
        out.push_str(&format!("Contact: <{contact}>\r\n"));
    }
    if body.is_empty() {
        out.push_str("Content-Length: 0\r\n\r\n");
    } else {
        out.push_str(&format!("Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}", body.len()));
    }
    out
}
