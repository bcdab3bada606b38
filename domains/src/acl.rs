//! Source-address allow lists of Programmable SIP domains: CIDR blocks or single IPv4/IPv6
//! addresses, parsed with `ipnetwork`.

use std::net::IpAddr;

use ipnetwork::IpNetwork;

use crate::problem::{InvalidParameter, Problems};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Acl(Vec<IpNetwork>);

impl Acl {
    /// Parses every entry; each bad entry is reported as `{field}[i]`.
    pub fn parse<S: AsRef<str>>(field: &str, entries: &[S]) -> Result<Self, Vec<InvalidParameter>> {
        let mut problems = Problems::new();
        let mut nets = Vec::with_capacity(entries.len());
        for (i, entry) in entries.iter().enumerate() {
            let entry = entry.as_ref().trim();
            match entry.parse::<IpNetwork>() {
                Ok(net) => nets.push(net),
                Err(e) => problems.push(
                    format!("{field}[{i}]"),
                    format!("'{entry}' is not an IPv4/IPv6 address or CIDR block ({e})"),
                ),
            }
        }
        problems.finish(Self(nets))
    }

    pub fn allows(&self, addr: IpAddr) -> bool {
        let addr = canonical(addr);
        self.0.iter().any(|net| net.contains(addr))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The entries in canonical text form (`10.0.0.0/8`, `192.0.2.1/32`).
    pub fn to_strings(&self) -> Vec<String> {
        self.0.iter().map(ToString::to_string).collect()
    }
}

/// A dual-stack socket reports IPv4 peers as `::ffff:a.b.c.d`; ACLs are written in IPv4.
fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_and_single_addresses() {
        let acl = Acl::parse("acl", &["10.0.0.0/8", "192.0.2.7", "2001:db8::/32"]).unwrap();
        assert!(acl.allows("10.1.2.3".parse().unwrap()));
        assert!(acl.allows("192.0.2.7".parse().unwrap()));
        assert!(!acl.allows("192.0.2.8".parse().unwrap()));
        assert!(acl.allows("2001:db8::1".parse().unwrap()));
        assert!(acl.allows("::ffff:10.9.9.9".parse().unwrap()));
        assert!(!acl.allows("127.0.0.1".parse().unwrap()));
    }

    #[test]
    fn names_every_bad_entry() {
        let err = Acl::parse("acl", &["10.0.0.0/8", "10.0.0.0/33", "banana"]).unwrap_err();
        let names: Vec<_> = err.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["acl[1]", "acl[2]"]);
        assert!(err[1].reason.contains("banana"));
    }

    #[test]
    fn empty_allows_nothing() {
        let acl = Acl::parse::<&str>("acl", &[]).unwrap();
        assert!(!acl.allows("127.0.0.1".parse().unwrap()));
    }
}
