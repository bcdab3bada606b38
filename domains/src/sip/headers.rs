//! The header grammars the edge reads: Via (transaction and response routing), name-addr
//! (From, To, Contact, Route, Record-Route: URI and parameters), generic parameters, and option
//! tags (Require, Proxy-Require, Supported). Each parser is strict where RFC 3261's grammar is
//! unambiguous (RFC 4475's invalid messages must be refused) and liberal only where RFC 4475
//! allows it (whitespace around `/` in Via, spaces inside `<>`).

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
    /// One via-parm (a single comma-separated value of a Via header).
    pub fn parse(v: &str) -> Result<Via, String> {
        // sent-protocol = "SIP" LWS? "/" LWS? "2.0" LWS? "/" LWS? transport (RFC 3261 §25.1
        // allows SLASH = SWS "/" SWS; RFC 4475 `wsinv` uses it).
        let mut parts = v.trim().splitn(3, '/');
        let (Some(name), Some(version), Some(rest)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(format!("bad protocol in '{v}'"));
        };
        if !name.trim().eq_ignore_ascii_case("SIP") || version.trim() != "2.0" {
            return Err(format!("bad protocol '{}/{}'", name.trim(), version.trim()));
        }
        let rest = rest.trim_start();
        let (transport, rest) = rest.split_once(char::is_whitespace).ok_or("no sent-by")?;
        if !is_token(transport) {
            return Err(format!("bad transport '{transport}'"));
        }
        let rest = rest.trim_start();
        let (sent_by, params) = match rest.find(';') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        let sent_by = sent_by.trim();
        let (host, port) =
            crate::sip_uri::split_host_port(sent_by).map_err(|e| format!("bad sent-by '{sent_by}': {e}"))?;
        let params = parse_params(params)?;
        let branch = params.iter().find(|(k, _)| k == "branch").map(|(_, v)| v.clone());
        Ok(Via { transport: transport.to_ascii_uppercase(), host, port, branch, params })
    }

    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// Adds `received` and fills `rport` in one via-parm for a request that came from `ip:port`
/// (RFC 3261 §18.2.1, RFC 3581 §4), keeping the rest of the value as received.
pub fn stamp_via(via: &str, ip: std::net::IpAddr, port: u16) -> String {
    let Ok(parsed) = Via::parse(via) else { return via.to_owned() };
    let wants_rport = parsed.params.iter().any(|(k, v)| k == "rport" && v.is_empty());
    let host_is_source = parsed.host.parse::<std::net::IpAddr>().is_ok_and(|h| h == ip);
    let mut segments: Vec<String> = Vec::new();
    for (i, seg) in split_outside_quotes(via, ';').into_iter().enumerate() {
        let name = seg.split('=').next().unwrap_or_default().trim().to_ascii_lowercase();
        if i > 0 && name == "received" {
            continue;
        }
        if i > 0 && name == "rport" && wants_rport {
            segments.push(format!("rport={port}"));
            continue;
        }
        segments.push(seg.to_owned());
    }
    if wants_rport || !host_is_source {
        segments.push(format!("received={ip}"));
    }
    segments.join(";")
}

/// RFC 3261 token characters.
pub fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b))
}

/// Splits at `sep` outside double quotes (backslash escapes honoured) and angle brackets.
pub(crate) fn split_outside_quotes(s: &str, sep: char) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut quoted, mut escaped, mut depth, mut start) = (false, false, 0u32, 0usize);
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '<' if !quoted => depth += 1,
            '>' if !quoted => depth = depth.saturating_sub(1),
            c if c == sep && !quoted && depth == 0 => {
                out.push(s.get(start..i).unwrap_or_default());
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    out.push(s.get(start..).unwrap_or_default());
    out
}

/// `;name[=value]…` (generic-param): names must be tokens, values tokens, hosts or quoted
/// strings; empty parameters (`;;`) are refused. Names are lower-cased, quotes removed.
pub fn parse_params(s: &str) -> Result<Vec<(String, String)>, String> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(Vec::new());
    }
    let rest = s.strip_prefix(';').ok_or_else(|| format!("unexpected '{s}' before parameters"))?;
    let mut out = Vec::new();
    for p in split_outside_quotes(rest, ';') {
        let (name, value) = match p.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v.trim())),
            None => (p.trim(), None),
        };
        if !is_token(name) {
            return Err(format!("bad parameter '{}'", p.trim()));
        }
        let value = match value {
            None => String::new(),
            Some(v) => parse_param_value(v).ok_or_else(|| format!("bad value of parameter '{name}'"))?,
        };
        out.push((name.to_ascii_lowercase(), value));
    }
    Ok(out)
}

fn parse_param_value(v: &str) -> Option<String> {
    if v.starts_with('"') {
        let (inner, rest) = parse_quoted(v)?;
        return rest.trim().is_empty().then_some(inner);
    }
    let ok = !v.is_empty() && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~:[]".contains(&b));
    ok.then(|| v.to_owned())
}

/// A quoted-string at the start of `s`: its unescaped content and what follows it.
fn parse_quoted(s: &str) -> Option<(String, &str)> {
    let body = s.strip_prefix('"')?;
    let mut out = String::new();
    let mut escaped = false;
    for (i, c) in body.char_indices() {
        if escaped {
            out.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == '"' {
            return Some((out, body.get(i + 1..).unwrap_or_default()));
        } else {
            out.push(c);
        }
    }
    None
}

/// `"Display" <sip:user@host>;tag=x`, `Display <uri>` or `sip:user@host;tag=x`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    pub display: Option<String>,
    pub uri: String,
    pub params: Vec<(String, String)>,
}

impl NameAddr {
    pub fn parse(v: &str) -> Result<NameAddr, String> {
        let v = v.trim();
        let (display, after_display) = if v.starts_with('"') {
            let (d, rest) = parse_quoted(v).ok_or("unterminated quoted display name")?;
            let rest = rest.trim_start();
            if !rest.starts_with('<') {
                return Err("quoted display name not followed by '<'".into());
            }
            (Some(d), rest)
        } else if let Some(open) = v.find('<') {
            let (d, rest) = v.split_at(open);
            let d = d.trim();
            if !d.split_whitespace().all(is_token) {
                return Err(format!("display name '{d}' must be quoted"));
            }
            ((!d.is_empty()).then(|| d.to_owned()), rest)
        } else {
            (None, v)
        };
        if let Some(inner) = after_display.strip_prefix('<') {
            let (uri, rest) = inner.split_once('>').ok_or("unclosed '<'")?;
            let uri = uri.trim();
            check_uri(uri)?;
            let params = parse_params(rest)?;
            Ok(NameAddr { display: display.filter(|d| !d.trim().is_empty()), uri: uri.to_owned(), params })
        } else {
            // Without brackets, parameters belong to the header, not the URI (RFC 3261 §20.10),
            // and a URI holding ',' or '?' must have been bracketed.
            let (uri, params) = match v.find(';') {
                Some(i) => v.split_at(i),
                None => (v, ""),
            };
            let uri = uri.trim();
            check_uri(uri)?;
            if uri.contains(['?', ',', ' ']) {
                return Err(format!("address '{uri}' must be enclosed in <>"));
            }
            Ok(NameAddr { display: None, uri: uri.to_owned(), params: parse_params(params)? })
        }
    }

    pub fn tag(&self) -> Option<&str> {
        self.param("tag")
    }

    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The user part of the URI (`alice` in `sip:alice@host`), if any.
    pub fn user(&self) -> Option<&str> {
        uri_user(&self.uri)
    }
}

/// An absolute URI as far as headers need it: `scheme:` then something without spaces.
fn check_uri(uri: &str) -> Result<(), String> {
    let (scheme, rest) = uri.split_once(':').ok_or_else(|| format!("bad URI '{uri}'"))?;
    if !is_scheme(scheme) || rest.is_empty() || rest.contains(char::is_whitespace) {
        return Err(format!("bad URI '{uri}'"));
    }
    Ok(())
}

/// `scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )` (RFC 3986 §3.1).
pub fn is_scheme(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
}

/// The user part of a SIP URI.
pub fn uri_user(uri: &str) -> Option<&str> {
    let rest = uri.split_once(':')?.1;
    let (user, _) = rest.rsplit_once('@')?;
    let user = user.split(';').next().unwrap_or(user);
    let user = user.split(':').next().unwrap_or(user);
    (!user.is_empty()).then_some(user)
}

/// Option tags of a Require/Proxy-Require/Supported value.
pub fn option_tags(v: &str) -> impl Iterator<Item = &str> {
    v.split(',').map(str::trim).filter(|t| !t.is_empty())
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
        let v = Via::parse("SIP  /   2.0 /UDP 192.0.2.2;branch=390skdjuw").unwrap();
        assert_eq!((v.transport.as_str(), v.branch.as_deref()), ("UDP", Some("390skdjuw")));
        assert!(Via::parse("SIP/2.0/UDP").is_err());
        assert!(Via::parse("HTTP/1.1/UDP a").is_err());
        assert!(Via::parse("SIP/2.0/UDP 192.0.2.15;;").is_err());
        assert!(Via::parse("SIP/2.0/UDP h;branch=").is_err());
        assert!(Via::parse("SIP/2.0/UDP [::1").is_err());
    }

    #[test]
    fn via_stamping() {
        let ip: std::net::IpAddr = "192.0.2.9".parse().unwrap();
        let v = stamp_via("SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bK77;rport", ip, 4000);
        assert_eq!(v, "SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bK77;rport=4000;received=192.0.2.9");
        let v = stamp_via("SIP/2.0/UDP 192.0.2.9:5060;branch=b", ip, 5060);
        assert_eq!(v, "SIP/2.0/UDP 192.0.2.9:5060;branch=b");
        let v = stamp_via("SIP/2.0/UDP h;received=1.1.1.1;branch=b", ip, 5060);
        assert_eq!(v, "SIP/2.0/UDP h;branch=b;received=192.0.2.9");
    }

    #[test]
    fn name_addr() {
        let n = NameAddr::parse("\"Alice A\" <sip:alice@example.com;transport=tcp>;tag=1234").unwrap();
        assert_eq!(n.display.as_deref(), Some("Alice A"));
        assert_eq!(n.uri, "sip:alice@example.com;transport=tcp");
        assert_eq!((n.tag(), n.user()), (Some("1234"), Some("alice")));
        let n = NameAddr::parse("sip:+1415@h;tag=9").unwrap();
        assert_eq!((n.uri.as_str(), n.tag(), n.user()), ("sip:+1415@h", Some("9"), Some("+1415")));
        let n = NameAddr::parse(r#""J Rosenberg \\\""       <sip:jdrosen@example.com> ;  tag = 98asjd8"#).unwrap();
        assert_eq!((n.display.as_deref(), n.tag()), (Some(r#"J Rosenberg \""#), Some("98asjd8")));
        let n = NameAddr::parse("caller<sip:caller@example.com>;tag=323").unwrap();
        assert_eq!(n.display.as_deref(), Some("caller"));
        assert!(NameAddr::parse("<>").is_err());
        assert!(NameAddr::parse("nonsense").is_err());
        assert!(NameAddr::parse("\"Mr. J. User <sip:j.user@example.com>").is_err());
        assert!(NameAddr::parse("Bell, Alexander <sip:a.g.bell@example.com>;tag=43").is_err());
        assert!(NameAddr::parse("\"Joe\" <sip:joe@example.org>;;;;").is_err());
        assert!(NameAddr::parse("sip:user@example.com?Route=%3Csip:sip.example.com%3E").is_err());
        assert!(NameAddr::parse("<sip:user@example.com?Route=%3Csip:sip.example.com%3E>").is_ok());
        assert!(NameAddr::parse("<name:John_Smith>").is_ok());
    }
}
