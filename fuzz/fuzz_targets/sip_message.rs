//! `SipMessage::parse` on any bytes (a UDP datagram or a TCP/TLS frame), plus the stream framer
//! before it and the error response built for a refused request. Properties: nothing panics;
//! the framer never claims more bytes than it was given; a parsed message serialises to bytes
//! that parse again and serialise identically, with one line per header; an error response
//! never carries a line feed inside a line.
#![no_main]

use domains::sip::message::{MAX_MESSAGE_BYTES, ParseError, error_response, frame_len};
use domains::sip::{SipMessage, StartLine};
use libfuzzer_sys::fuzz_target;

fn head_of(bytes: &[u8]) -> &[u8] {
    let end = bytes.windows(4).position(|w| w == b"\r\n\r\n").expect("serialised message has a head end");
    &bytes[..end + 2]
}

fn count_crlf(head: &[u8]) -> usize {
    head.windows(2).filter(|w| *w == b"\r\n").count()
}

fn check_error_response(data: &[u8], error: &ParseError) {
    let Some(resp) = error_response(data, error) else { return };
    let StartLine::Response { code, reason } = &resp.start else { panic!("error_response is not a response") };
    assert_eq!(*code, error.status());
    assert!(!reason.contains(['\r', '\n']), "error response reason with a line break: {reason:?}");
    for (n, v) in &resp.headers {
        assert!(!v.contains('\n') && !n.contains('\n'), "error response header with a line feed: {n:?}: {v:?}");
    }
    let bytes = resp.to_bytes();
    assert_eq!(count_crlf(head_of(&bytes)), 1 + resp.headers.len() + 1);
}

/// A frame cut by the stream framer and parsed must be exactly head, CRLF CRLF and body: the
/// framer and the parser agree on where a message ends.
fn check_frame(frame: &[u8], msg: &SipMessage) {
    let head_len = frame.windows(4).position(|w| w == b"\r\n\r\n").expect("a framed message has a head end");
    assert_eq!(head_len + 4 + msg.body.len(), frame.len(), "framer and parser disagree on the body");
}

fuzz_target!(|data: &[u8]| {
    let framed = frame_len(data);
    if let Ok(Some(n)) = framed {
        assert!(n <= data.len(), "frame_len {n} > {}", data.len());
        // The frame alone frames to the same length.
        assert_eq!(frame_len(&data[..n]), Ok(Some(n)));
        if n < data.len() {
            if let Ok(m) = SipMessage::parse(&data[..n]) {
                check_frame(&data[..n], &m);
            }
        }
    }

    let msg = match SipMessage::parse(data) {
        Ok(msg) => msg,
        Err(e) => return check_error_response(data, &e),
    };
    if framed == Ok(Some(data.len())) {
        check_frame(data, &msg);
    }
    // Accessors the stack calls on every message.
    let _ = (msg.method(), msg.status(), msg.request_uri(), msg.call_id(), msg.cseq(), msg.branch());
    let _ = msg.max_forwards();
    for name in ["Via", "Route", "Record-Route", "Contact"] {
        let _ = msg.header_values(name);
    }
    if msg.method().is_some() {
        let _ = msg.response(200, Some("fuzz-tag")).to_bytes();
        let mut stamped = msg.clone();
        stamped.stamp_received("[2001:db8::1]:5062".parse().expect("socket address"));
        let _ = stamped.to_bytes();
    }

    let bytes = msg.to_bytes();
    let listed = msg.headers.iter().filter(|(n, _)| !n.eq_ignore_ascii_case("Content-Length")).count();
    let head = head_of(&bytes);
    assert_eq!(count_crlf(head), 1 + listed + 1, "line count of {:?}", String::from_utf8_lossy(head));
    let again = match SipMessage::parse(&bytes) {
        Ok(m) => m,
        // Serialising spells compact names out and adds Content-Length, so it can grow a
        // message over the limit; anything else is a round-trip failure.
        Err(ParseError::TooLarge(_)) if bytes.len() > MAX_MESSAGE_BYTES => return,
        Err(e) => panic!("to_bytes() of a parsed message does not parse: {e}\n{:?}", String::from_utf8_lossy(&bytes)),
    };
    assert_eq!(again.start, msg.start);
    assert_eq!(again.body, msg.body);
    assert_eq!(again.to_bytes(), bytes, "to_bytes is not stable across a re-parse");
    assert_eq!(frame_len(&bytes), Ok(Some(bytes.len())), "framer disagrees with to_bytes");
});
