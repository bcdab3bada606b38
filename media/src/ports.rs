//! The RTP port range and its allocator. An endpoint leases an even port for RTP and the odd
//! port above it for RTCP, both bound (a pair with either taken by another program is skipped),
//! and the lease returns them when dropped. Ports are handed out round-robin so a port just released is
//! not reused at once (late packets of the old call would land in the new one), and a port some
//! other program holds is skipped.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::str::FromStr;
use std::sync::{Arc, Mutex};

/// An inclusive port range, written `10000-20000`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

impl FromStr for PortRange {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (a, b) = s.split_once('-').ok_or_else(|| format!("'{s}' is not a range like 10000-20000"))?;
        let first = a.trim().parse::<u16>().map_err(|_| format!("'{a}' is not a port"))?;
        let last = b.trim().parse::<u16>().map_err(|_| format!("'{b}' is not a port"))?;
        let range = PortRange { first, last };
        if first == 0 || first > last || range.even_ports().next().is_none() {
            return Err(format!("'{s}' holds no even port with its odd neighbour (RTP and RTCP)"));
        }
        Ok(range)
    }
}

impl PortRange {
    /// Even ports whose RTCP neighbour is inside the range too.
    fn even_ports(self) -> impl Iterator<Item = u16> {
        // In u32: `first` may be 65535, whose even successor does not fit a u16.
        let start = u32::from(self.first) + u32::from(self.first % 2);
        (start..u32::from(self.last)).step_by(2).filter_map(|p| u16::try_from(p).ok())
    }
}

#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("no free RTP port in {first}-{last}")]
pub struct PortsExhausted {
    first: u16,
    last: u16,
}

pub struct PortAllocator {
    ip: IpAddr,
    range: PortRange,
    inner: Mutex<Inner>,
}

struct Inner {
    in_use: HashSet<u16>,
    /// Where the round-robin search starts next.
    next: u16,
}

/// A port held by an endpoint; returned to the allocator on drop.
pub struct PortLease {
    port: u16,
    allocator: Arc<PortAllocator>,
}

impl PortLease {
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for PortLease {
    fn drop(&mut self) {
        if let Ok(mut inner) = self.allocator.inner.lock() {
            inner.in_use.remove(&self.port);
        }
    }
}

impl PortAllocator {
    pub fn new(ip: IpAddr, range: PortRange) -> Arc<PortAllocator> {
        Arc::new(PortAllocator { ip, range, inner: Mutex::new(Inner { in_use: HashSet::new(), next: range.first }) })
    }

    /// Binds non-blocking UDP sockets on the next free even port (RTP) and its odd neighbour
    /// (RTCP).
    pub fn allocate(self: &Arc<Self>) -> Result<(UdpSocket, UdpSocket, PortLease), PortsExhausted> {
        let exhausted = PortsExhausted { first: self.range.first, last: self.range.last };
        let mut inner = self.inner.lock().map_err(|_| exhausted)?;
        let ports: Vec<u16> = self.range.even_ports().collect();
        let start = ports.iter().position(|p| *p >= inner.next).unwrap_or(0);
        // Every port once, starting at `start` and wrapping around.
        for port in ports.iter().cycle().skip(start).take(ports.len()).copied() {
            if inner.in_use.contains(&port) {
                continue;
            }
            let bind =
                |p: u16| UdpSocket::bind(SocketAddr::new(self.ip, p)).and_then(|s| s.set_nonblocking(true).map(|()| s));
            let (Ok(rtp), Ok(rtcp)) = (bind(port), bind(port.saturating_add(1))) else {
                tracing::debug!(port, "RTP or RTCP port busy, skipping the pair");
                continue;
            };
            inner.in_use.insert(port);
            inner.next = port.saturating_add(2);
            return Ok((rtp, rtcp, PortLease { port, allocator: self.clone() }));
        }
        Err(exhausted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ranges() {
        assert_eq!("10000-20000".parse::<PortRange>(), Ok(PortRange { first: 10000, last: 20000 }));
        assert!("20000-10000".parse::<PortRange>().is_err());
        assert!("10001-10001".parse::<PortRange>().is_err());
        assert!("x-1".parse::<PortRange>().is_err());
        assert_eq!(PortRange { first: 10001, last: 10006 }.even_ports().collect::<Vec<_>>(), [10002, 10004]);
        assert!("65535-65535".parse::<PortRange>().is_err());
    }

    #[test]
    fn leases_even_ports_round_robin_and_frees_on_drop() {
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        // A range nobody else uses in this test binary.
        let alloc = PortAllocator::new(ip, PortRange { first: 47100, last: 47105 });
        let (_s1, _r1, a) = alloc.allocate().unwrap();
        let (_s2, _r2, b) = alloc.allocate().unwrap();
        assert!(a.port() % 2 == 0 && b.port() % 2 == 0 && a.port() != b.port());
        assert_eq!(_r1.local_addr().unwrap().port(), a.port() + 1, "RTCP on the odd neighbour");
        let (_s3, _r3, c) = alloc.allocate().unwrap();
        assert!(alloc.allocate().is_err(), "three even ports only");
        let freed = b.port();
        drop((_s2, _r2, b));
        let (_s4, _r4, d) = alloc.allocate().unwrap();
        assert_eq!(d.port(), freed);
        drop((c, a));
    }
}
