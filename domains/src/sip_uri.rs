//! The parts of a `sip:`/`sips:` URI that routing needs: user, host, port and URI
//! parameters. Hand-written because it must run in this I/O-free crate and report precise
//! reasons; the SIP stack parses wire messages itself.

use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    #[default]
    Udp,
    Tcp,
    Tls,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "udp" => Some(Transport::Udp),
            "tcp" => Some(Transport::Tcp),
            "tls" => Some(Transport::Tls),
            _ => None,
        }
    }

    /// RFC 3263: 5061 for TLS, 5060 otherwise.
    pub fn default_port(self) -> u16 {
        if self == Transport::Tls { 5061 } else { 5060 }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipUri {
    pub secure: bool,
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
    /// URI parameters in order, names lower-cased; flag parameters have an empty value.
    pub params: Vec<(String, String)>,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum SipUriError {
    #[error("must start with 'sip:' or 'sips:'")]
    Scheme,
    #[error("has no host")]
    NoHost,
    #[error("has an invalid host '{0}'")]
    Host(String),
    #[error("has an invalid port '{0}'")]
    Port(String),
    #[error("has an unknown transport '{0}' (udp, tcp or tls)")]
    Transport(String),
    #[error("has an invalid parameter '{0}'")]
    Param(String),
}

impl SipUri {
    pub fn parse(s: &str) -> Result<Self, SipUriError> {
        let s = s.trim();
        let (secure, rest) = if let Some(r) = strip_prefix_ci(s, "sips:") {
            (true, r)
        } else if let Some(r) = strip_prefix_ci(s, "sip:") {
            (false, r)
        } else {
            return Err(SipUriError::Scheme);
        };
        // Headers (`?X-A=b`) are not routing information; drop them here.
        let rest = rest.split('?').next().unwrap_or_default();
        let (addr, params) = rest.split_once(';').unwrap_or((rest, ""));
        let (user, hostport) = match addr.rsplit_once('@') {
            Some((u, h)) => (Some(u.to_owned()).filter(|u| !u.is_empty()), h),
            None => (None, addr),
        };
        let (host, port) = split_host_port(hostport)?;
        let params = params
            .split(';')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                let k = k.trim();
                // A nameless parameter (`;=x`) would print as something else (found by fuzzing).
                if !crate::sip::headers::is_token(k) {
                    return Err(SipUriError::Param(p.to_owned()));
                }
                Ok((k.to_ascii_lowercase(), v.trim().to_owned()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let uri = Self { secure, user, host, port, params };
        if let Some(t) = uri.param("transport")
            && Transport::parse(t).is_none()
        {
            return Err(SipUriError::Transport(t.to_owned()));
        }
        Ok(uri)
    }

    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The transport asked for by `;transport=`, or TLS for a `sips:` URI, else UDP.
    pub fn transport(&self) -> Transport {
        self.param("transport").and_then(Transport::parse).unwrap_or(if self.secure {
            Transport::Tls
        } else {
            Transport::Udp
        })
    }

    pub fn port_or_default(&self) -> u16 {
        self.port.unwrap_or_else(|| self.transport().default_port())
    }
}

impl fmt::Display for SipUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.secure { "sips:" } else { "sip:" })?;
        if let Some(user) = &self.user {
            write!(f, "{user}@")?;
        }
        if self.host.contains(':') {
            write!(f, "[{}]", self.host)?;
        } else {
            f.write_str(&self.host)?;
        }
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        for (k, v) in &self.params {
            if v.is_empty() { write!(f, ";{k}")? } else { write!(f, ";{k}={v}")? }
        }
        Ok(())
    }
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    // `get` rather than slicing: the input may put a multi-byte character across the boundary.
    let head = s.get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix) { s.get(prefix.len()..) } else { None }
}

/// `host[:port]` as RFC 3261 writes it (also a Via sent-by).
pub(crate) fn split_host_port(hostport: &str) -> Result<(String, Option<u16>), SipUriError> {
    if hostport.is_empty() {
        return Err(SipUriError::NoHost);
    }
    let (host, port) = if let Some(rest) = hostport.strip_prefix('[') {
        let (h, after) = rest.split_once(']').ok_or_else(|| SipUriError::Host(hostport.to_owned()))?;
        if h.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(SipUriError::Host(h.to_owned()));
        }
        (h, after.strip_prefix(':'))
    } else {
        match hostport.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    let valid = !host.is_empty() && host.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':'));
    if !valid {
        return Err(SipUriError::Host(host.to_owned()));
    }
    let port = match port {
        Some(p) => Some(p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| SipUriError::Port(p.to_owned()))?),
        None => None,
    };
    Ok((host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_parts() {
        let u = SipUri::parse("sip:alice@pbx.example.com:5080;transport=TCP;lr").unwrap();
        assert_eq!(u.user.as_deref(), Some("alice"));
        assert_eq!(u.host, "pbx.example.com");
        assert_eq!(u.port, Some(5080));
        assert_eq!(u.transport(), Transport::Tcp);
        assert_eq!(u.param("lr"), Some(""));
        assert_eq!(u.to_string(), "sip:alice@pbx.example.com:5080;transport=TCP;lr");
    }

    #[test]
    fn defaults() {
        let u = SipUri::parse("sips:[2001:db8::1]").unwrap();
        assert_eq!(u.transport(), Transport::Tls);
        assert_eq!(u.port_or_default(), 5061);
        assert_eq!(SipUri::parse("sip:10.0.0.1").unwrap().port_or_default(), 5060);
    }

    #[test]
    fn refuses() {
        assert_eq!(SipUri::parse("tel:+1415"), Err(SipUriError::Scheme));
        assert_eq!(SipUri::parse("a\u{e9}\u{e9}"), Err(SipUriError::Scheme));
        assert_eq!(SipUri::parse("s\u{e9}"), Err(SipUriError::Scheme));
        assert_eq!(SipUri::parse("sip:bob@"), Err(SipUriError::NoHost));
        assert_eq!(SipUri::parse("sip:bob@host:99999"), Err(SipUriError::Port("99999".into())));
        assert_eq!(SipUri::parse("sip:bob@ho st"), Err(SipUriError::Host("ho st".into())));
        assert_eq!(SipUri::parse("sip:bob@host;transport=sctp"), Err(SipUriError::Transport("sctp".into())));
        // Fuzzing found these printing as a different URI than they parsed as.
        assert_eq!(SipUri::parse("sip:h;="), Err(SipUriError::Param("=".into())));
        assert_eq!(SipUri::parse("sip:333;;;;;;;;=;;;zr4p"), Err(SipUriError::Param("=".into())));
        assert_eq!(SipUri::parse("sip:h;a b=1"), Err(SipUriError::Param("a b=1".into())));
    }
}
