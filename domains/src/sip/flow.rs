//! Where a SIP message came from or goes to: a UDP peer, or one TCP/TLS connection (by the
//! transport's connection id), so that responses and in-dialog requests go back the way they
//! came (symmetric response routing, RFC 3581; RFC 5923's connection reuse).

use std::net::SocketAddr;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Flow {
    Udp(SocketAddr),
    /// A TCP or TLS connection.
    Tcp {
        conn: u64,
        peer: SocketAddr,
        tls: bool,
    },
}

impl Flow {
    pub fn peer(&self) -> SocketAddr {
        match self {
            Flow::Udp(a) => *a,
            Flow::Tcp { peer, .. } => *peer,
        }
    }

    pub fn is_reliable(&self) -> bool {
        matches!(self, Flow::Tcp { .. })
    }

    pub fn transport_name(&self) -> &'static str {
        match self {
            Flow::Udp(_) => "UDP",
            Flow::Tcp { tls: true, .. } => "TLS",
            Flow::Tcp { .. } => "TCP",
        }
    }
}

impl Flow {
    pub fn describe(&self) -> String {
        format!("{}:{}", self.transport_name(), self.peer())
    }
}
