//! SIP messages (RFC 3261 §7): start line, headers in order (names as received, compared
//! case-insensitively, compact forms expanded), body. Parsing reports why a message is
//! malformed and, when it can, what is needed to answer it with `400 Bad Request`.

use std::fmt;

use thiserror::Error;

use super::headers::{NameAddr, Via, is_scheme, is_token};

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

/// Limits on what the edge reads. A message over [`MAX_MESSAGE_BYTES`] gets `513`; a
/// Request-URI over [`MAX_REQUEST_URI`] gets `414`; more header lines or Via values than these
/// get `400`. They bound the work one datagram can cause, far above what real peers send (RFC
/// 4475's `longreq` has 22 Via values and 53 lines).
pub const MAX_MESSAGE_BYTES: usize = 32 * 1024;
pub const MAX_REQUEST_URI: usize = 2048;
pub const MAX_HEADER_LINES: usize = 256;
pub const MAX_VIA_VALUES: usize = 64;

/// Headers a request may carry once only (RFC 3261 §7.3.1: only comma-list headers repeat).
const SINGULAR: [&str; 6] = ["Call-ID", "CSeq", "Content-Length", "From", "To", "Max-Forwards"];
const MANDATORY: [&str; 5] = ["Via", "From", "To", "Call-ID", "CSeq"];

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("message is not UTF-8 in its head")]
    NotUtf8,
    #[error("message has no end of headers (CRLF CRLF)")]
    NoHeaderEnd,
    #[error("message of {0} bytes is larger than {MAX_MESSAGE_BYTES}")]
    TooLarge(usize),
    #[error("bad start line: {0}")]
    StartLine(String),
    #[error("SIP version {0} is not supported")]
    Version(String),
    #[error("Request-URI scheme '{0}' is not supported")]
    UriScheme(String),
    #[error("Request-URI of {0} bytes is longer than {MAX_REQUEST_URI}")]
    UriTooLong(usize),
    #[error("more than {MAX_HEADER_LINES} header lines")]
    TooManyHeaders,
    #[error("more than {MAX_VIA_VALUES} Via values")]
    TooManyVias,
    #[error("bad header line: {0}")]
    HeaderLine(String),
    #[error("bad Content-Length: {0}")]
    ContentLength(String),
    #[error("body shorter than Content-Length ({have} < {want})")]
    ShortBody { have: usize, want: usize },
    #[error("missing mandatory header {0}")]
    Missing(&'static str),
    #[error("header {0} appears more than once")]
    Duplicate(&'static str),
    #[error("bad {0} header: {1}")]
    BadHeader(&'static str, String),
}

impl ParseError {
    /// The status a request refused for this error is answered with (RFC 3261 §8.2, §21.4).
    pub fn status(&self) -> u16 {
        match self {
            ParseError::Version(_) => 505,
            ParseError::UriScheme(_) => 416,
            ParseError::UriTooLong(_) => 414,
            ParseError::TooLarge(_) => 513,
            _ => 400,
        }
    }
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

/// The framing of a stream transport: how many bytes the message at the start of `buf` takes,
/// once its head and body have arrived (`None`: wait for more). Conflicting Content-Length
/// headers break the framing, as does a message announced larger than the limit.
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, ParseError> {
    let Some(head_end) = find(buf, b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = std::str::from_utf8(buf.get(..head_end).unwrap_or_default()).map_err(|_| ParseError::NotUtf8)?;
    let mut len: Option<usize> = None;
    for line in head.split("\r\n").skip(1) {
        if let Some((name, value)) = line.split_once(':')
            && expand_compact(name.trim()).eq_ignore_ascii_case("Content-Length")
        {
            if len.is_some() {
                return Err(ParseError::Duplicate("Content-Length"));
            }
            len = Some(parse_content_length(value.trim())?);
        }
    }
    let total = head_end.saturating_add(4).saturating_add(len.unwrap_or(0));
    if total > MAX_MESSAGE_BYTES {
        return Err(ParseError::TooLarge(total));
    }
    Ok((buf.len() >= total).then_some(total))
}

fn parse_content_length(v: &str) -> Result<usize, ParseError> {
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParseError::ContentLength(v.to_owned()));
    }
    v.parse().map_err(|_| ParseError::ContentLength(v.to_owned()))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

impl SipMessage {
    /// Parses one whole message (a datagram, or a frame cut by [`frame_len`]).
    pub fn parse(buf: &[u8]) -> Result<SipMessage, ParseError> {
        if buf.len() > MAX_MESSAGE_BYTES {
            return Err(ParseError::TooLarge(buf.len()));
        }
        let head_end = find(buf, b"\r\n\r\n").ok_or(ParseError::NoHeaderEnd)?;
        let head = std::str::from_utf8(buf.get(..head_end).unwrap_or_default()).map_err(|_| ParseError::NotUtf8)?;
        let mut lines = head.split("\r\n");
        let start = parse_start(lines.next().unwrap_or_default())?;
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in lines {
            if line.starts_with(' ') || line.starts_with('\t') {
                // Header folding (RFC 3261 §7.3.1): a continuation of the previous value.
                let last = headers.last_mut().ok_or_else(|| ParseError::HeaderLine(excerpt(line)))?;
                // Values stay trimmed, so that printing and parsing again gives the same message
                // (fuzzing found a whitespace-only continuation line adding a trailing space).
                let more = line.trim();
                if !more.is_empty() {
                    if !last.1.is_empty() {
                        last.1.push(' ');
                    }
                    last.1.push_str(more);
                }
                continue;
            }
            if headers.len() >= MAX_HEADER_LINES {
                return Err(ParseError::TooManyHeaders);
            }
            let (name, value) = line.split_once(':').ok_or_else(|| ParseError::HeaderLine(excerpt(line)))?;
            let name = name.trim_end();
            if !is_token(name) {
                return Err(ParseError::HeaderLine(excerpt(line)));
            }
            headers.push((expand_compact(name).to_owned(), value.trim().to_owned()));
        }
        for name in SINGULAR {
            if headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).count() > 1 {
                return Err(ParseError::Duplicate(name));
            }
        }
        let body = buf.get(head_end + 4..).unwrap_or_default();
        let msg_body = match headers.iter().find(|(n, _)| n.eq_ignore_ascii_case("Content-Length")) {
            Some((_, v)) => {
                let want = parse_content_length(v)?;
                body.get(..want).ok_or(ParseError::ShortBody { have: body.len(), want })?.to_vec()
            }
            None => body.to_vec(),
        };
        let msg = SipMessage { start, headers, body: msg_body };
        msg.check_headers()?;
        Ok(msg)
    }

    /// The mandatory headers are present and every header the edge reads is well formed.
    fn check_headers(&self) -> Result<(), ParseError> {
        for name in MANDATORY {
            if self.header(name).is_none_or(str::is_empty) {
                return Err(ParseError::Missing(name));
            }
        }
        let cseq =
            self.cseq().ok_or_else(|| ParseError::BadHeader("CSeq", self.header("CSeq").unwrap_or_default().into()))?;
        if let StartLine::Request { method, .. } = &self.start
            && &cseq.1 != method
        {
            return Err(ParseError::BadHeader("CSeq", "method does not match the request line".into()));
        }
        if let Some(mf) = self.header("Max-Forwards")
            && self.max_forwards().is_none()
        {
            return Err(ParseError::BadHeader("Max-Forwards", mf.to_owned()));
        }
        let vias = self.header_values("Via");
        if vias.len() > MAX_VIA_VALUES {
            return Err(ParseError::TooManyVias);
        }
        for via in &vias {
            Via::parse(via).map_err(|e| ParseError::BadHeader("Via", e))?;
        }
        for name in ["From", "To"] {
            NameAddr::parse(self.header(name).unwrap_or_default()).map_err(|e| ParseError::BadHeader(name, e))?;
        }
        for (name, label) in [("Contact", "Contact"), ("Record-Route", "Record-Route"), ("Route", "Route")] {
            for value in self.header_values(name) {
                if name == "Contact" && value == "*" {
                    continue;
                }
                NameAddr::parse(&value).map_err(|e| ParseError::BadHeader(label, e))?;
            }
        }
        Ok(())
    }

    /// First value of a header (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Every value of a header, comma-separated values of one line split apart where the
    /// header allows it (Via, Route, Record-Route, Contact, option tags).
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
        let n = it.next()?;
        if !n.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let n = n.parse().ok()?;
        let m = it.next()?;
        if it.next().is_some() || !is_token(m) {
            return None;
        }
        Some((n, Method::parse(m)))
    }

    /// Max-Forwards (RFC 3261 §20.22: 0–255 in practice; larger values are refused).
    pub fn max_forwards(&self) -> Option<u8> {
        let v = self.header("Max-Forwards")?;
        if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        v.parse().ok()
    }

    /// The branch of the top Via: the transaction key for RFC 3261 peers.
    pub fn branch(&self) -> Option<String> {
        let via = self.header_values("Via").into_iter().next()?;
        Via::parse(&via).ok()?.branch
    }

    /// Records where a request really came from in its top Via (`received`, `rport`), so
    /// every response copies it (RFC 3261 §18.2.1, RFC 3581 §4).
    pub fn stamp_received(&mut self, source: std::net::SocketAddr) {
        let Some(first) = self.headers.iter_mut().find(|(n, _)| n.eq_ignore_ascii_case("Via")) else { return };
        let mut values = split_commas(&first.1);
        if let Some(top) = values.first_mut() {
            *top = super::headers::stamp_via(top, source.ip(), source.port());
        }
        first.1 = values.join(", ");
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        self.write(None)
    }

    /// The wire form with one more header after the others (the transport's `Server`), without
    /// copying the message.
    pub fn to_bytes_with(&self, name: &str, value: &str) -> Vec<u8> {
        self.write(Some((name, value)))
    }

    fn write(&self, extra: Option<(&str, &str)>) -> Vec<u8> {
        let mut out = String::with_capacity(512 + self.body.len());
        match &self.start {
            StartLine::Request { method, uri } => out.push_str(&format!("{method} {uri} SIP/2.0\r\n")),
            StartLine::Response { code, reason } => out.push_str(&format!("SIP/2.0 {code} {reason}\r\n")),
        }
        let headers = self.headers.iter().map(|(n, v)| (n.as_str(), v.as_str()));
        for (n, v) in headers.filter(|(n, _)| !n.eq_ignore_ascii_case("Content-Length")).chain(extra) {
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
    /// `to_tag` added to To when it has none. A dialog-creating response (101–299 to INVITE)
    /// also copies Record-Route in order (§12.1.1).
    pub fn response(&self, code: u16, to_tag: Option<&str>) -> SipMessage {
        let copies_record_route = (101..300).contains(&code) && self.method() == Some(&Method::Invite);
        let mut headers = Vec::new();
        for (n, v) in &self.headers {
            let copied = ["Via", "From", "Call-ID", "CSeq"].iter().any(|h| n.eq_ignore_ascii_case(h))
                || (copies_record_route && n.eq_ignore_ascii_case("Record-Route"));
            if copied {
                headers.push((n.clone(), v.clone()));
            } else if n.eq_ignore_ascii_case("To") {
                let mut to = v.clone();
                if let Some(tag) = to_tag
                    && !has_tag(v)
                {
                    to.push_str(";tag=");
                    to.push_str(tag);
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
    NameAddr::parse(name_addr).map(|n| n.tag().is_some()).unwrap_or(false)
}

fn excerpt(s: &str) -> String {
    s.chars().take(80).collect()
}

/// Splits `a, b` at commas outside quotes and angle brackets, each value trimmed.
pub fn split_commas(v: &str) -> Vec<String> {
    if v.trim().is_empty() {
        return Vec::new();
    }
    super::headers::split_outside_quotes(v, ',').into_iter().map(|p| p.trim().to_owned()).collect()
}

fn parse_start(line: &str) -> Result<StartLine, ParseError> {
    let bad = || ParseError::StartLine(excerpt(line));
    if let Some(rest) = line.strip_prefix("SIP/2.0 ") {
        let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
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
    // Methods are case-sensitive tokens (RFC 3261 §7.1); extension methods may use any token
    // character (RFC 4475 `intmeth`, `esc02`).
    if !is_token(method) {
        return Err(bad());
    }
    if version != "SIP/2.0" {
        let looks_like_version = version.strip_prefix("SIP/").and_then(|v| v.split_once('.')).is_some_and(|(a, b)| {
            !a.is_empty() && !b.is_empty() && (a.bytes().chain(b.bytes())).all(|c| c.is_ascii_digit())
        });
        return Err(if looks_like_version { ParseError::Version(version.to_owned()) } else { bad() });
    }
    if uri.len() > MAX_REQUEST_URI {
        return Err(ParseError::UriTooLong(uri.len()));
    }
    // URIs are ASCII on the wire (anything else is %-escaped, RFC 3261 §25.1).
    if !uri.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad());
    }
    let Some((scheme, rest)) = uri.split_once(':') else { return Err(bad()) };
    if !is_scheme(scheme) || rest.is_empty() {
        return Err(bad());
    }
    let known = ["sip", "sips", "tel"].iter().any(|s| s.eq_ignore_ascii_case(scheme));
    if !known {
        return Err(ParseError::UriScheme(scheme.to_owned()));
    }
    // Headers (`?Route=…`) have no place in a Request-URI (RFC 3261 §19.1.5, RFC 4475 `escruri`);
    // a '?' in the user part is legal, so only the part after the last '@' is looked at.
    let host_part = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    if !scheme.eq_ignore_ascii_case("tel") && host_part.contains('?') {
        return Err(ParseError::StartLine("Request-URI carries headers".into()));
    }
    Ok(StartLine::Request { method: Method::parse(method), uri: uri.to_owned() })
}

/// For a request refused by the parser: the response to send, built from the headers found
/// textually. `None` means nothing is sent: a response or an ACK is never answered (RFC 3261
/// §17.1.1, §17.2.1), and a message without a Via has nowhere to be answered.
pub fn error_response(buf: &[u8], error: &ParseError) -> Option<SipMessage> {
    let head_len = find(buf, b"\r\n\r\n").unwrap_or(buf.len()).min(MAX_MESSAGE_BYTES);
    let text = String::from_utf8_lossy(buf.get(..head_len).unwrap_or_default()).into_owned();
    let mut lines = text.split("\r\n").flat_map(|l| l.split('\n'));
    let first = lines.next()?;
    let method = first.split(' ').next().unwrap_or_default();
    if first.starts_with("SIP/") || method == "ACK" || !is_token(method) {
        return None;
    }
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in lines.take(MAX_HEADER_LINES) {
        if let Some((n, v)) = line.split_once(':') {
            let n = expand_compact(n.trim());
            let Some(name) = ["Via", "From", "To", "Call-ID", "CSeq"].into_iter().find(|h| h.eq_ignore_ascii_case(n))
            else {
                continue;
            };
            // Every Via, in order; the first of each of the others.
            if name == "Via" || !headers.iter().any(|(h, _)| h == name) {
                headers.push((name.to_owned(), v.trim().to_owned()));
            }
        }
    }
    if !headers.iter().any(|(n, _)| n == "Via") {
        return None;
    }
    let code = error.status();
    let detail: String = error.to_string().chars().filter(|c| !c.is_control()).take(100).collect();
    Some(SipMessage {
        start: StartLine::Response { code, reason: format!("{} ({detail})", reason_phrase(code)) },
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
        406 => "Not Acceptable",
        408 => "Request Timeout",
        414 => "Request-URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        423 => "Interval Too Brief",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        489 => "Bad Event",
        491 => "Request Pending",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        505 => "Version Not Supported",
        513 => "Message Too Large",
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
        assert_eq!(m.max_forwards(), None);
        // A whitespace-only continuation line adds nothing (a fuzzing find: it used to leave a
        // trailing space that did not survive printing and parsing again).
        let folded = INVITE.replace("Content-Type: application/sdp\r\n", "Content-Type: application/sdp\r\n \r\n");
        let m = SipMessage::parse(folded.as_bytes()).unwrap();
        assert_eq!(m.header("Content-Type"), Some("application/sdp"));
        assert_eq!(SipMessage::parse(&m.to_bytes()).unwrap(), m);
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
        let bad_start = INVITE.replace("SIP/2.0\r\nv:", "SIP/2.0 \r\nv:");
        assert!(matches!(SipMessage::parse(bad_start.as_bytes()), Err(ParseError::StartLine(_))));
        let non_ascii = INVITE.replace("INVITE sip:+1415", "INVITE a\u{e9}\u{e9}:+1415");
        assert!(matches!(SipMessage::parse(non_ascii.as_bytes()), Err(ParseError::StartLine(_))));
        let non_ascii = "INVITE a\u{e9}\u{e9} SIP/2.0\r\n\r\n";
        assert!(matches!(SipMessage::parse(non_ascii.as_bytes()), Err(ParseError::StartLine(_))));
        let dup = INVITE.replace("CSeq: 1 INVITE\r\n", "CSeq: 1 INVITE\r\nCSeq: 2 INVITE\r\n");
        assert_eq!(SipMessage::parse(dup.as_bytes()), Err(ParseError::Duplicate("CSeq")));
        let dup = INVITE.replace("i: call-1", "Call-ID: x\r\ni: call-1");
        assert_eq!(SipMessage::parse(dup.as_bytes()), Err(ParseError::Duplicate("Call-ID")));
        let long_uri = INVITE.replace("+14155550100@acme1", &format!("{}@acme1", "1".repeat(MAX_REQUEST_URI)));
        assert!(matches!(SipMessage::parse(long_uri.as_bytes()), Err(ParseError::UriTooLong(_))));
        let scheme = INVITE.replace("INVITE sip:", "INVITE http:");
        assert_eq!(SipMessage::parse(scheme.as_bytes()), Err(ParseError::UriScheme("http".into())));
        let mf = INVITE.replace("X-UserId", "Max-Forwards: 300\r\nX-UserId");
        assert!(matches!(SipMessage::parse(mf.as_bytes()), Err(ParseError::BadHeader("Max-Forwards", _))));
        let vias = "Via: SIP/2.0/UDP h;branch=b\r\n".repeat(MAX_VIA_VALUES + 1);
        let many = INVITE.replace("X-UserId", &format!("{vias}X-UserId"));
        assert_eq!(SipMessage::parse(many.as_bytes()), Err(ParseError::TooManyVias));
        let lines = "X-A: b\r\n".repeat(MAX_HEADER_LINES);
        let many = INVITE.replace("X-UserId", &format!("{lines}X-UserId"));
        assert_eq!(SipMessage::parse(many.as_bytes()), Err(ParseError::TooManyHeaders));
        let big = format!("{INVITE}{}", "x".repeat(MAX_MESSAGE_BYTES));
        assert!(matches!(SipMessage::parse(big.as_bytes()), Err(ParseError::TooLarge(_))));
        let bad_cseq = INVITE.replace("CSeq: 1 INVITE", "CSeq: 1 BYE");
        assert!(matches!(SipMessage::parse(bad_cseq.as_bytes()), Err(ParseError::BadHeader("CSeq", _))));
        assert_eq!(SipMessage::parse(b"garbage"), Err(ParseError::NoHeaderEnd));
    }

    #[test]
    fn bad_request_when_addressable() {
        let bad_start = INVITE.replace("SIP/2.0\r\nv:", "SIP/3.0\r\nv:");
        let err = SipMessage::parse(bad_start.as_bytes()).unwrap_err();
        assert_eq!(err, ParseError::Version("SIP/3.0".into()));
        let r = error_response(bad_start.as_bytes(), &err).unwrap();
        assert_eq!(r.status(), Some(505));
        assert_eq!(r.header("Call-ID"), Some("call-1@127.0.0.1"));
        assert!(error_response(b"\x00\x01garbage\r\n\r\n", &err).is_none());
        let ack = INVITE.replace("INVITE sip", "ACK sip");
        assert!(error_response(ack.as_bytes(), &err).is_none());
    }

    #[test]
    fn stream_framing() {
        assert_eq!(frame_len(b"OPTIONS sip:a SIP/2.0\r\nl: 2\r\n\r\nab"), Ok(Some(33)));
        assert_eq!(frame_len(b"OPTIONS sip:a SIP/2.0\r\nl: 2\r\n\r\na"), Ok(None));
        assert_eq!(frame_len(b"OPTIONS sip:a SIP/2.0\r\n"), Ok(None));
        assert_eq!(
            frame_len(b"OPTIONS sip:a SIP/2.0\r\nl: 2\r\nContent-Length: 3\r\n\r\nabc"),
            Err(ParseError::Duplicate("Content-Length"))
        );
        assert!(matches!(frame_len(b"OPTIONS sip:a SIP/2.0\r\nl: 99999999\r\n\r\n"), Err(ParseError::TooLarge(_))));
        assert!(matches!(frame_len(b"OPTIONS sip:a SIP/2.0\r\nl: -1\r\n\r\n"), Err(ParseError::ContentLength(_))));
    }
}
