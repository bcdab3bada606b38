//! SIP messages (RFC 3261 §7): start line, headers in order (names as received, compared
//! case-insensitively, compact forms expanded), body. Parsing reports why a message is
//! malformed and, when it can, what is needed to answer it with `400 Bad Request`.

use std::fmt;

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    Invite,
    Ack,
    Bye,
    Cancel,
    Options,
    Register,
    Info,
    Update,
    Prack,
    Refer,
    Notify,
    Subscribe,
    Message,
    Other(String),
}

impl Method {
    pub fn parse(s: &str) -> Method {
        match s {
            "INVITE" => Method::Invite,
            "ACK" => Method::Ack,
            "BYE" => Method::Bye,
            "CANCEL" => Method::Cancel,
            "OPTIONS" => Method::Options,
            "REGISTER" => Method::Register,
            "INFO" => Method::Info,
            "UPDATE" => Method::Update,
            "PRACK" => Method::Prack,
            "REFER" => Method::Refer,
            "NOTIFY" => Method::Notify,
            "SUBSCRIBE" => Method::Subscribe,
            "MESSAGE" => Method::Message,
            other => Method::Other(other.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Options => "OPTIONS",
            Method::Register => "REGISTER",
            Method::Info => "INFO",
            Method::Update => "UPDATE",
            Method::Prack => "PRACK",
            Method::Refer => "REFER",
            Method::Notify => "NOTIFY",
            Method::Subscribe => "SUBSCRIBE",
            Method::Message => "MESSAGE",
            Method::Other(s) => s,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartLine {
    Request { method: Method, uri: String },
    Response { code: u16, reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipMessage {
    pub start: StartLine,
    /// (name as it should be printed, value) in order of appearance.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("message is not UTF-8 in its head")]
    NotUtf8,
    #[error("message has no end of headers (CRLF CRLF)")]
    NoHeaderEnd,
    #[error("bad start line: {0}")]
    StartLine(String),
    #[error("bad header line: {0}")]
    HeaderLine(String),
    #[error("bad Content-Length: {0}")]
    ContentLength(String),
    #[error("body shorter than Content-Length ({have} < {want})")]
    ShortBody { have: usize, want: usize },
    #[error("missing mandatory header {0}")]
    Missing(&'static str),
    #[error("bad {0} header: {1}")]
    BadHeader(&'static str, String),
}

/// RFC 3261 §7.3.3 compact forms.
fn expand_compact(name: &str) -> &str {
    match name {
        "i" | "I" => "Call-ID",
        "m" | "M" => "Contact",
        "e" | "E" => "Content-Encoding",
        "l" | "L" => "Content-Length",
        "c" | "C" => "Content-Type",
        "f" | "F" => "From",
        "s" | "S" => "Subject",
        "k" | "K" => "Supported",
        "t" | "T" => "To",
        "v" | "V" => "Via",
        _ => name,
    }
}

fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b))
}

/// The framing of a stream transport: how many bytes the message at the start of `buf` takes,
/// once its head and body have arrived (`None`: wait for more).
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, ParseError> {
    let Some(head_end) = find(buf, b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = std::str::from_utf8(&buf[..head_end]).map_err(|_| ParseError::NotUtf8)?;
    let mut len = 0usize;
    for line in head.split("\r\n").skip(1) {
        if let Some((name, value)) = line.split_once(':') {
            let name = expand_compact(name.trim());
            if name.eq_ignore_ascii_case("Content-Length") {
                len = value.trim().parse().map_err(|_| ParseError::ContentLength(value.trim().to_owned()))?;
            }
        }
    }
    let total = head_end + 4 + len;
    Ok((buf.len() >= total).then_some(total))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

impl SipMessage {
    /// Parses one whole message (a datagram, or a frame cut by [`frame_len`]).
    pub fn parse(buf: &[u8]) -> Result<SipMessage, ParseError> {
        let head_end = find(buf, b"\r\n\r\n").ok_or(ParseError::NoHeaderEnd)?;
        let head = std::str::from_utf8(&buf[..head_end]).map_err(|_| ParseError::NotUtf8)?;
        let mut lines = head.split("\r\n");
        let start = parse_start(lines.next().unwrap_or_default())?;
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in lines {
            if line.starts_with(' ') || line.starts_with('\t') {
                // Header folding (RFC 3261 §7.3.1): a continuation of the previous value.
                let last = headers.last_mut().ok_or_else(|| ParseError::HeaderLine(line.to_owned()))?;
                last.1.push(' ');
                last.1.push_str(line.trim());
                continue;
            }
            let (name, value) = line.split_once(':').ok_or_else(|| ParseError::HeaderLine(line.to_owned()))?;
            let name = name.trim_end();
            if !is_token(name) {
                return Err(ParseError::HeaderLine(line.to_owned()));
            }
            headers.push((expand_compact(name).to_owned(), value.trim().to_owned()));
        }
        let body = &buf[head_end + 4..];
        let msg_body = match headers.iter().find(|(n, _)| n.eq_ignore_ascii_case("Content-Length")) {
            Some((_, v)) => {
                let want: usize = v.parse().map_err(|_| ParseError::ContentLength(v.clone()))?;
                if body.len() < want {
                    return Err(ParseError::ShortBody { have: body.len(), want });
                }
                body[..want].to_vec()
            }
            None => body.to_vec(),
        };
        let msg = SipMessage { start, headers, body: msg_body };
        msg.check_mandatory()?;
        Ok(msg)
    }

    fn check_mandatory(&self) -> Result<(), ParseError> {
        for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
            if self.header(name).is_none_or(str::is_empty) {
                return Err(ParseError::Missing(match name {
                    "Via" => "Via",
                    "From" => "From",
                    "To" => "To",
                    "Call-ID" => "Call-ID",
                    _ => "CSeq",
                }));
            }
        }
        let cseq =
            self.cseq().ok_or_else(|| ParseError::BadHeader("CSeq", self.header("CSeq").unwrap_or_default().into()))?;
        if let StartLine::Request { method, .. } = &self.start {
            if &cseq.1 != method {
                return Err(ParseError::BadHeader("CSeq", "method does not match the request line".into()));
            }
        }
        super::headers::Via::parse(self.header("Via").unwrap_or_default())
            .map_err(|e| ParseError::BadHeader("Via", e))?;
        for name in ["From", "To"] {
            super::headers::NameAddr::parse(self.header(name).unwrap_or_default())
                .map_err(|e| ParseError::BadHeader(if name == "From" { "From" } else { "To" }, e))?;
        }
        Ok(())
    }

    /// First value of a header (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Every value of a header, comma-separated values of one line split apart where the
    /// header allows it (Via, Route, Record-Route).
    pub fn header_values(&self, name: &str) -> Vec<String> {
        self.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).flat_map(|(_, v)| split_commas(v)).collect()
    }

    pub fn set_header(&mut self, name: &str, value: impl Into<String>) {
        let value = value.into();
        match self.headers.iter_mut().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
            Some(h) => h.1 = value,
            None => self.headers.push((name.to_owned(), value)),
        }
    }

    pub fn remove_header(&mut self, name: &str) {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }

    pub fn push_header(&mut self, name: &str, value: impl Into<String>) {
        self.headers.push((name.to_owned(), value.into()));
    }

    pub fn method(&self) -> Option<&Method> {
        match &self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self.start {
            StartLine::Response { code, .. } => Some(code),
            StartLine::Request { .. } => None,
        }
    }

    pub fn request_uri(&self) -> Option<&str> {
        match &self.start {
            StartLine::Request { uri, .. } => Some(uri),
            StartLine::Response { .. } => None,
        }
    }

    pub fn call_id(&self) -> &str {
        self.header("Call-ID").unwrap_or_default()
    }

    /// (sequence number, method)
    pub fn cseq(&self) -> Option<(u32, Method)> {
        let v = self.header("CSeq")?;
        let mut it = v.split_whitespace();
        let n = it.next()?.parse().ok()?;
        let m = it.next()?;
        if it.next().is_some() || !is_token(m) {
            return None;
        }
        Some((n, Method::parse(m)))
    }

    /// The branch of the top Via: the transaction key for RFC 3261 peers.
    pub fn branch(&self) -> Option<String> {
        let via = self.header_values("Via").into_iter().next()?;
        super::headers::Via::parse(&via).ok()?.branch
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = String::with_capacity(512 + self.body.len());
        match &self.start {
            StartLine::Request { method, uri } => out.push_str(&format!("{method} {uri} SIP/2.0\r\n")),
            StartLine::Response { code, reason } => out.push_str(&format!("SIP/2.0 {code} {reason}\r\n")),
        }
        for (n, v) in &self.headers {
            if n.eq_ignore_ascii_case("Content-Length") {
                continue;
            }
            out.push_str(n);
            out.push_str(": ");
            out.push_str(v);
            out.push_str("\r\n");
        }
        out.push_str(&format!("Content-Length: {}\r\n\r\n", self.body.len()));
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }

    /// A response to this request (RFC 3261 §8.2.6): Via, From, To, Call-ID and CSeq copied;
    /// `to_tag` added to To when it has none.
    pub fn response(&self, code: u16, to_tag: Option<&str>) -> SipMessage {
        let mut headers = Vec::new();
        for (n, v) in &self.headers {
            if ["Via", "From", "Call-ID", "CSeq"].iter().any(|h| n.eq_ignore_ascii_case(h)) {
                headers.push((n.clone(), v.clone()));
            } else if n.eq_ignore_ascii_case("To") {
                let mut to = v.clone();
                if let Some(tag) = to_tag {
                    if !has_tag(v) {
                        to.push_str(";tag=");
                        to.push_str(tag);
                    }
                }
                headers.push((n.clone(), to));
            }
        }
        SipMessage {
            start: StartLine::Response { code, reason: reason_phrase(code).to_owned() },
            headers,
            body: Vec::new(),
        }
    }
}

fn has_tag(name_addr: &str) -> bool {
    super::headers::NameAddr::parse(name_addr).map(|n| n.tag().is_some()).unwrap_or(false)
}

/// Splits `a, b` at commas outside quotes and angle brackets.
pub fn split_commas(v: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (mut depth, mut quoted, mut start) = (0i32, false, 0usize);
    for (i, c) in v.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '<' if !quoted => depth += 1,
            '>' if !quoted => depth -= 1,
            ',' if !quoted && depth == 0 => {
                out.push(v[start..i].trim().to_owned());
                start = i + 1;
            }
            _ => {}
        }
    }
    let last = v[start..].trim();
    if !last.is_empty() {
        out.push(last.to_owned());
    }
    out
}

fn parse_start(line: &str) -> Result<StartLine, ParseError> {
    let bad = || ParseError::StartLine(line.chars().take(80).collect());
    if let Some(rest) = line.strip_prefix("SIP/2.0 ") {
        let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
        let code: u16 = code.parse().map_err(|_| bad())?;
        if !(100..=699).contains(&code) {
            return Err(bad());
        }
        return Ok(StartLine::Response { code, reason: reason.to_owned() });
    }
    let mut parts = line.split(' ');
    let (Some(method), Some(uri), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    if version != "SIP/2.0" || !is_token(method) || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(bad());
    }
    let scheme_ok =
        ["sip:", "sips:", "tel:"].iter().any(|s| uri.len() > s.len() && uri[..s.len()].eq_ignore_ascii_case(s));
    if !scheme_ok {
        return Err(bad());
    }
    Ok(StartLine::Request { method: Method::parse(method), uri: uri.to_owned() })
}

/// For a request too malformed to parse: the headers a `400` needs, found textually, when all
/// are present. `None` means the datagram is dropped (nothing to address a response to).
pub fn bad_request_response(buf: &[u8], reason: &str) -> Option<SipMessage> {
    let text = String::from_utf8_lossy(&buf[..find(buf, b"\r\n\r\n").unwrap_or(buf.len())]).into_owned();
    let mut lines = text.split("\r\n").flat_map(|l| l.split('\n'));
    let first = lines.next()?;
    if first.starts_with("SIP/2.0") {
        return None; // never answer a response
    }
    let mut headers = Vec::new();
    for line in lines {
        if let Some((n, v)) = line.split_once(':') {
            let n = expand_compact(n.trim());
            if ["Via", "From", "To", "Call-ID", "CSeq"].iter().any(|h| n.eq_ignore_ascii_case(h)) {
                headers.push((n.to_owned(), v.trim().to_owned()));
            }
        }
    }
    for needed in ["Via", "From", "To", "Call-ID", "CSeq"] {
        if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(needed)) {
            return None;
        }
    }
    let reason: String = reason.chars().filter(|c| !c.is_control()).take(100).collect();
    Some(SipMessage {
        start: StartLine::Response { code: 400, reason: format!("Bad Request ({reason})") },
        headers,
        body: vec![],
    })
}

pub fn reason_phrase(code: u16) -> &'static str {
    match code {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        183 => "Session Progress",
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        415 => "Unsupported Media Type",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        491 => "Request Pending",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &str = "INVITE sip:+14155550100@acme1.sip-us.sip.voxbridge.local SIP/2.0\r\n\
        v: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1;rport\r\n\
        From: \"Alice\" <sip:alice@127.0.0.1:5070>;tag=abc\r\n\
        To: <sip:+14155550100@acme1.sip-us.sip.voxbridge.local>\r\n\
        i: call-1@127.0.0.1\r\n\
        CSeq: 1 INVITE\r\n\
        X-UserId: ABC123\r\n\
        Subject: a long\r\n  folded value\r\n\
        Content-Type: application/sdp\r\n\
        l: 4\r\n\r\nv=0\r\n";

    #[test]
    fn parses_and_prints() {
        let m = SipMessage::parse(INVITE.as_bytes()).unwrap();
        assert_eq!(m.method(), Some(&Method::Invite));
        assert_eq!(m.call_id(), "call-1@127.0.0.1");
        assert_eq!(m.header("subject"), Some("a long folded value"));
        assert_eq!(m.body, b"v=0\r");
        assert_eq!(m.branch().as_deref(), Some("z9hG4bK-1"));
        let again = SipMessage::parse(&m.to_bytes()).unwrap();
        assert_eq!(again, m);
        let r = m.response(180, Some("xyz"));
        assert!(r.header("To").unwrap().ends_with(";tag=xyz"));
        assert_eq!(r.status(), Some(180));
    }

    #[test]
    fn refuses_malformed() {
        let no_callid = INVITE.replace("i: call-1@127.0.0.1\r\n", "");
        assert_eq!(SipMessage::parse(no_callid.as_bytes()), Err(ParseError::Missing("Call-ID")));
        let bad_len = INVITE.replace("l: 4", "l: 400");
        assert!(matches!(SipMessage::parse(bad_len.as_bytes()), Err(ParseError::ShortBody { .. })));
        let bad_len = INVITE.replace("l: 4", "l: four");
        assert!(matches!(SipMessage::parse(bad_len.as_bytes()), Err(ParseError::ContentLength(_))));
        let bad_start = INVITE.replace("SIP/2.0\r\nv:", "SIP/3.0\r\nv:");
        assert!(matches!(SipMessage::parse(bad_start.as_bytes()), Err(ParseError::StartLine(_))));
        let bad_cseq = INVITE.replace("CSeq: 1 INVITE", "CSeq: 1 BYE");
        assert!(matches!(SipMessage::parse(bad_cseq.as_bytes()), Err(ParseError::BadHeader("CSeq", _))));
        assert_eq!(SipMessage::parse(b"garbage"), Err(ParseError::NoHeaderEnd));
    }

    #[test]
    fn bad_request_when_addressable() {
        let bad_start = INVITE.replace("SIP/2.0\r\nv:", "SIP/3.0\r\nv:");
        let r = bad_request_response(bad_start.as_bytes(), "bad start line").unwrap();
        assert_eq!(r.status(), Some(400));
        assert_eq!(r.header("Call-ID"), Some("call-1@127.0.0.1"));
        assert!(bad_request_response(b"\x00\x01garbage\r\n\r\n", "x").is_none());
    }

    #[test]
    fn stream_framing() {
        assert_eq!(frame_len(b"OPTIONS sip:a SIP/2.0\r\nl: 2\r\n\r\nab"), Ok(Some(33)));
        assert_eq!(frame_len(b"OPTIONS sip:a SIP/2.0\r\nl: 2\r\n\r\na"), Ok(None));
        assert_eq!(frame_len(b"OPTIONS sip:a SIP/2.0\r\n"), Ok(None));
    }
}
