//! What a UAS checks in a well-formed request before doing any work with it (RFC 3261 §8.2 and,
//! for loop protection, §16.3): Max-Forwards, the method, required extensions, the body's type
//! and what the caller accepts back. Each refusal carries its status and the headers the RFC
//! asks for (Allow, Unsupported, Accept).

use super::headers::{option_tags, uri_user};
use super::message::{Method, SipMessage};

/// Methods voxbridge answers (in `Allow`).
pub const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER";
/// Body types voxbridge reads (in `Accept`).
pub const ACCEPT: &str = "application/sdp";
/// Methods of an established call (the `Allow` of voxbridge's 2xx to INVITE).
pub const ALLOW_IN_DIALOG: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO, PRACK";
/// Option tags voxbridge implements (reliable provisionals, RFC 3262; session timers, RFC
/// 4028); a `Require` naming any other is refused with 420.
pub const SUPPORTED: [&str; 2] = ["100rel", "timer"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: u16,
    pub headers: Vec<(&'static str, String)>,
}

impl Refusal {
    fn new(code: u16) -> Self {
        Refusal { code, headers: Vec::new() }
    }

    fn with(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

/// Checks for a request outside any dialog of ours. ACKs are never refused (never answered).
pub fn check_request(msg: &SipMessage) -> Result<(), Refusal> {
    let Some(method) = msg.method() else { return Ok(()) };
    if *method == Method::Ack {
        return Ok(());
    }
    // §16.3: a request voxbridge would pass on (an INVITE becomes an outbound leg) must not
    // loop for ever. An OPTIONS to the server itself (no user part) may still be answered (§11).
    let to_server = *method == Method::Options && msg.request_uri().and_then(uri_user).is_none();
    if msg.max_forwards() == Some(0) && !to_server {
        return Err(Refusal::new(483));
    }
    match method {
        Method::Invite | Method::Cancel | Method::Bye | Method::Options | Method::Register => {}
        // No event package is served (RFC 6665 §8.2.2, RFC 3903 §6): not presence, not
        // message-summary, not dialog.
        Method::Subscribe => return Err(Refusal::new(489)),
        Method::Other(m) if m == "PUBLISH" => return Err(Refusal::new(489)),
        // A NOTIFY outside a dialog belongs to no subscription of ours (RFC 6665 §4.1.3).
        Method::Notify => return Err(Refusal::new(481)),
        Method::Other(_) => return Err(Refusal::new(501).with("Allow", ALLOW)),
        _ => return Err(Refusal::new(405).with("Allow", ALLOW)),
    }
    // §8.2.2.3 (a CANCEL's Require is not checked); as a B2BUA voxbridge is also the proxy a
    // Proxy-Require speaks to.
    if *method != Method::Cancel {
        let unsupported: Vec<String> = ["Require", "Proxy-Require"]
            .into_iter()
            .flat_map(|h| msg.headers.iter().filter(move |(n, _)| n.eq_ignore_ascii_case(h)))
            .flat_map(|(_, v)| option_tags(v).map(str::to_owned).collect::<Vec<_>>())
            .filter(|tag| !SUPPORTED.iter().any(|s| s.eq_ignore_ascii_case(tag)))
            .collect();
        if !unsupported.is_empty() {
            return Err(Refusal::new(420).with("Unsupported", unsupported.join(", ")));
        }
    }
    if *method == Method::Invite {
        check_invite_body(msg)?;
    }
    Ok(())
}

/// §8.2.3: the offer must be SDP, unencoded; the caller must accept SDP back (§21.4.7).
fn check_invite_body(msg: &SipMessage) -> Result<(), Refusal> {
    if !msg.body.is_empty() {
        let content_type = msg.header("Content-Type").unwrap_or_default();
        if !media_type(content_type).eq_ignore_ascii_case("application/sdp") {
            return Err(Refusal::new(415).with("Accept", ACCEPT));
        }
        if let Some(enc) = msg.header("Content-Encoding")
            && !option_tags(enc).all(|e| e.eq_ignore_ascii_case("identity"))
        {
            return Err(Refusal::new(415).with("Accept-Encoding", "identity"));
        }
    }
    if let Some(accept) = msg.header("Accept")
        && !accept.trim().is_empty()
    {
        let takes_sdp = option_tags(accept)
            .map(media_type)
            .any(|t| ["application/sdp", "application/*", "*/*"].iter().any(|ok| ok.eq_ignore_ascii_case(t)));
        if !takes_sdp {
            return Err(Refusal::new(406).with("Accept", ACCEPT));
        }
    }
    Ok(())
}

/// `type/subtype` without parameters.
fn media_type(v: &str) -> &str {
    v.split(';').next().unwrap_or_default().trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, extra: &str, body: &str) -> SipMessage {
        let text = format!(
            "{method} sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@h>;tag=1\r\n\
             To: <sip:bob@example.com>\r\nCall-ID: c\r\nCSeq: 1 {method}\r\n{extra}Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        SipMessage::parse(text.as_bytes()).unwrap()
    }

    #[test]
    fn loops_methods_and_extensions() {
        assert!(check_request(&request("INVITE", "", "")).is_ok());
        assert_eq!(check_request(&request("INVITE", "Max-Forwards: 0\r\n", "")).unwrap_err().code, 483);
        assert_eq!(check_request(&request("OPTIONS", "Max-Forwards: 0\r\n", "")).unwrap_err().code, 483);
        assert!(check_request(&request("ACK", "Max-Forwards: 0\r\n", "")).is_ok());
        let r = check_request(&request("NEWMETHOD", "", "")).unwrap_err();
        assert_eq!((r.code, r.headers[0].0), (501, "Allow"));
        assert_eq!(check_request(&request("MESSAGE", "", "")).unwrap_err().code, 405);
        for (method, code) in [("SUBSCRIBE", 489), ("PUBLISH", 489), ("NOTIFY", 481)] {
            assert_eq!(check_request(&request(method, "Event: presence\r\n", "")).unwrap_err().code, code, "{method}");
        }
        let r = check_request(&request("OPTIONS", "Require: foo, bar\r\nProxy-Require: baz\r\n", "")).unwrap_err();
        assert_eq!(r, Refusal { code: 420, headers: vec![("Unsupported", "foo, bar, baz".into())] });
        assert!(check_request(&request("CANCEL", "Require: foo\r\n", "")).is_ok());
    }

    #[test]
    fn invite_bodies() {
        let sdp = "v=0\r\n";
        assert!(check_request(&request("INVITE", "Content-Type: application/SDP; x=y\r\n", sdp)).is_ok());
        let r = check_request(&request("INVITE", "Content-Type: application/unknownformat\r\n", sdp)).unwrap_err();
        assert_eq!((r.code, r.headers.clone()), (415, vec![("Accept", ACCEPT.to_owned())]));
        let r = check_request(&request("INVITE", "Content-Type: application/sdp\r\nContent-Encoding: gzip\r\n", sdp));
        assert_eq!(r.unwrap_err().code, 415);
        let r =
            check_request(&request("INVITE", "Content-Type: application/sdp\r\nAccept: text/nobodyKnowsThis\r\n", sdp));
        assert_eq!(r.unwrap_err().code, 406);
        let ok = "Content-Type: application/sdp\r\nAccept: text/plain, application/sdp;level=1\r\n";
        assert!(check_request(&request("INVITE", ok, sdp)).is_ok());
    }
}
