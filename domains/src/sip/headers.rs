//! The header grammars the edge reads: Via (transaction and response routing), name-addr
//! (From, To, Contact: URI and tag), and parameters.

/// `SIP/2.0/UDP host:port;branch=…;rport;received=…`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    pub transport: String,
    pub host: String,
    pub port: Option<u16>,
    pub branch: Option<String>,
    pub params: Vec<(String, String)>,
}

impl Via {
    pub fn parse(v: &str) -> Result<Via, String> {
        let v = v.trim();
        let (proto, rest) = v.split_once(char::is_whitespace).ok_or("no sent-by")?;
        let mut proto_parts = proto.split('/');
        let (Some(name), Some(version), Some(transport)) = (proto_parts.next(), proto_parts.next(), proto_parts.next())
        else {
            return Err(format!("bad protocol '{proto}'"));
        };
        if !name.eq_ignore_ascii_case("SIP") || version != "2.0" {
            return Err(format!("bad protocol '{proto}'"));
        }
        let mut parts = rest.trim().split(';');
        let sent_by = parts.next().unwrap_or_default().trim();
        let (host, port) = split_host_port(sent_by).ok_or_else(|| format!("bad sent-by '{sent_by}'"))?;
        let params = parse_params(parts);
        let branch = params.iter().find(|(k, _)| k == "branch").map(|(_, v)| v.clone());
        Ok(Via { transport: transport.to_ascii_uppercase(), host, port, branch, params })
    }

    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

fn split_host_port(s: &str) -> Option<(String, Option<u16>)> {
    if s.is_empty() {
        return None;
    }
    if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p.parse().ok()?),
            None => None,
        };
        return Some((h.to_owned(), port));
    }
    match s.rsplit_once(':') {
        Some((h, p)) => Some((h.to_owned(), Some(p.parse().ok()?))),
        None => Some((s.to_owned(), None)),
    }
}

fn parse_params<'a>(parts: impl Iterator<Item = &'a str>) -> Vec<(String, String)> {
    parts
        .filter(|p| !p.trim().is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k.trim().to_ascii_lowercase(), v.trim().trim_matches('"').to_owned()),
            None => (p.trim().to_ascii_lowercase(), String::new()),
        })
        .collect()
}

/// `"Display" <sip:user@host>;tag=x` or `sip:user@host;tag=x`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    pub display: Option<String>,
    pub uri: String,
    pub params: Vec<(String, String)>,
}

impl NameAddr {
    pub fn parse(v: &str) -> Result<NameAddr, String> {
        let v = v.trim();
        if let Some(open) = v.find('<') {
            let close = v[open..].find('>').map(|i| open + i).ok_or("unclosed '<'")?;
            let display = v[..open].trim().trim_matches('"').trim();
            let uri = v[open + 1..close].trim();
            if uri.is_empty() {
                return Err("empty URI".into());
            }
            let params = parse_params(v[close + 1..].split(';'));
            Ok(NameAddr { display: (!display.is_empty()).then(|| display.to_owned()), uri: uri.to_owned(), params })
        } else {
            // Without brackets, parameters belong to the header, not the URI (RFC 3261 §20.10).
            let mut parts = v.split(';');
            let uri = parts.next().unwrap_or_default().trim();
            if uri.is_empty() || !uri.contains(':') {
                return Err(format!("bad address '{v}'"));
            }
            Ok(NameAddr { display: None, uri: uri.to_owned(), params: parse_params(parts) })
        }
    }

    pub fn tag(&self) -> Option<&str> {
        self.params.iter().find(|(k, _)| k == "tag").map(|(_, v)| v.as_str())
    }

    /// The user part of the URI (`alice` in `sip:alice@host`), if any.
    pub fn user(&self) -> Option<&str> {
        uri_user(&self.uri)
    }
}

/// The user part of a SIP URI.
pub fn uri_user(uri: &str) -> Option<&str> {
    let rest = uri.split_once(':')?.1;
    let (user, _) = rest.split_once('@')?;
    let user = user.split(';').next().unwrap_or(user);
    let user = user.split(':').next().unwrap_or(user);
    (!user.is_empty()).then_some(user)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn via() {
        let v = Via::parse("SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bK77;rport").unwrap();
        assert_eq!((v.host.as_str(), v.port, v.branch.as_deref()), ("10.0.0.1", Some(5070), Some("z9hG4bK77")));
        assert_eq!(v.param("rport"), Some(""));
        let v = Via::parse("SIP/2.0/TLS [2001:db8::1]:5061;branch=b").unwrap();
        assert_eq!((v.transport.as_str(), v.host.as_str()), ("TLS", "2001:db8::1"));
        assert!(Via::parse("SIP/2.0/UDP").is_err());
        assert!(Via::parse("HTTP/1.1/UDP a").is_err());
    }

    #[test]
    fn name_addr() {
        let n = NameAddr::parse("\"Alice A\" <sip:alice@example.com;transport=tcp>;tag=1234").unwrap();
        assert_eq!(n.display.as_deref(), Some("Alice A"));
        assert_eq!(n.uri, "sip:alice@example.com;transport=tcp");
        assert_eq!((n.tag(), n.user()), (Some("1234"), Some("alice")));
        let n = NameAddr::parse("sip:+1415@h;tag=9").unwrap();
        assert_eq!((n.uri.as_str(), n.tag(), n.user()), ("sip:+1415@h", Some("9"), Some("+1415")));
        assert!(NameAddr::parse("<>").is_err());
        assert!(NameAddr::parse("nonsense").is_err());
    }
}
