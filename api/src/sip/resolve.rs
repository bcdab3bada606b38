//! Locating SIP servers (RFC 3263) with hickory-resolver: an IP address is used as is; a name
//! with a port is looked up as A/AAAA; a name without one goes through NAPTR (when the URI names
//! no transport), then SRV (`_sip._udp`, `_sip._tcp`, `_sips._tcp`), ordered by priority and
//! weight, then the hosts' addresses; with no SRV records, the name's addresses on the default
//! port. The outcome is the ordered list of candidates a call fails over across.

use std::net::{IpAddr, SocketAddr};

use domains::sip_uri::{SipUri, Transport};
use hickory_resolver::TokioAsyncResolver;
use hickory_resolver::config::{NameServerConfig, Protocol, ResolverConfig, ResolverOpts};
use hickory_resolver::proto::rr::{RData, RecordType};

/// One server to try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    pub addr: SocketAddr,
    pub transport: Transport,
}

pub struct SipResolver {
    dns: TokioAsyncResolver,
}

impl SipResolver {
    /// The system's resolver, or the one name server `server` (tests, split-horizon setups).
    pub fn new(server: Option<SocketAddr>) -> Result<SipResolver, String> {
        let dns = match server {
            Some(addr) => {
                let mut config = ResolverConfig::new();
                config.add_name_server(NameServerConfig::new(addr, Protocol::Udp));
                let mut opts = ResolverOpts::default();
                opts.attempts = 1;
                TokioAsyncResolver::tokio(config, opts)
            }
            None => TokioAsyncResolver::tokio_from_system_conf().map_err(|e| format!("resolver: {e}"))?,
        };
        Ok(SipResolver { dns })
    }

    /// Every candidate for `uri`, in the order to try them. The order is deterministic
    /// (priority, then the heavier weight first) so that a call asking again for candidate n,
    /// after the first n failed, means the same server.
    pub async fn candidates(&self, uri: &SipUri) -> Result<Vec<Candidate>, String> {
        let explicit = uri.param("transport").and_then(Transport::parse);
        let transport = explicit.unwrap_or_else(|| uri.transport());
        if let Ok(ip) = uri.host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
            return Ok(vec![Candidate { addr: SocketAddr::new(ip, uri.port_or_default()), transport }]);
        }
        if uri.port.is_some() {
            return self.addresses(&uri.host, uri.port_or_default(), transport).await;
        }
        let services = match explicit {
            Some(t) => vec![(srv_name(t, &uri.host), t)],
            None => self.naptr(&uri.host).await.unwrap_or_else(|| {
                [Transport::Udp, Transport::Tcp, Transport::Tls]
                    .into_iter()
                    .map(|t| (srv_name(t, &uri.host), t))
                    .collect()
            }),
        };
        let mut out = Vec::new();
        for (name, t) in services {
            let Ok(lookup) = self.dns.srv_lookup(name.as_str()).await else { continue };
            let mut records: Vec<(u16, std::cmp::Reverse<u16>, u16, String)> = lookup
                .iter()
                .map(|srv| {
                    let host = srv.target().to_utf8().trim_end_matches('.').to_owned();
                    (srv.priority(), std::cmp::Reverse(srv.weight()), srv.port(), host)
                })
                .collect();
            records.sort();
            for (_, _, port, host) in records {
                out.extend(self.addresses(&host, port, t).await.unwrap_or_default());
            }
            if !out.is_empty() {
                return Ok(out);
            }
        }
        // No SRV records: the name itself on the transport's default port (§4.2).
        self.addresses(&uri.host, uri.port_or_default(), transport).await
    }

    async fn addresses(&self, host: &str, port: u16, transport: Transport) -> Result<Vec<Candidate>, String> {
        let ips = self.dns.lookup_ip(host).await.map_err(|e| format!("{host}: {e}"))?;
        let out: Vec<Candidate> =
            ips.iter().map(|ip| Candidate { addr: SocketAddr::new(ip, port), transport }).collect();
        if out.is_empty() { Err(format!("{host} does not resolve")) } else { Ok(out) }
    }

    /// NAPTR (RFC 3263 §4.1): the SRV names and transports the domain prefers, in order.
    async fn naptr(&self, host: &str) -> Option<Vec<(String, Transport)>> {
        let lookup = self.dns.lookup(host, RecordType::NAPTR).await.ok()?;
        let mut records: Vec<(u16, u16, String, Transport)> = lookup
            .iter()
            .filter_map(|r| match r {
                RData::NAPTR(n) if n.flags().eq_ignore_ascii_case(b"s") => {
                    let t = match n.services().to_ascii_uppercase().as_slice() {
                        b"SIP+D2U" => Transport::Udp,
                        b"SIP+D2T" => Transport::Tcp,
                        b"SIPS+D2T" => Transport::Tls,
                        _ => return None,
                    };
                    Some((n.order(), n.preference(), n.replacement().to_utf8(), t))
                }
                _ => None,
            })
            .collect();
        if records.is_empty() {
            return None;
        }
        records.sort_by_key(|(o, p, _, _)| (*o, *p));
        Some(records.into_iter().map(|(_, _, name, t)| (name, t)).collect())
    }
}

fn srv_name(t: Transport, host: &str) -> String {
    match t {
        Transport::Udp => format!("_sip._udp.{host}"),
        Transport::Tcp => format!("_sip._tcp.{host}"),
        Transport::Tls => format!("_sips._tcp.{host}"),
    }
}
