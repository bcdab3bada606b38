//! The parser against RFC 4475's torture messages (byte-exact copies in
//! `tests/sip-torture/rfc4475/`): which parse, and with which status the others are refused.
//! What the edge then does with each parsed one is tested end to end (`tests/tests/sip_torture.rs`).

use super::message::{ParseError, SipMessage, error_response};

fn message(name: &str) -> Vec<u8> {
    let path = format!("{}/../tests/sip-torture/rfc4475/{name}.dat", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// RFC 4475 §3.1.1, §3.2, §3.3 and §3.4: well-formed messages (some of them semantically odd:
/// the edge, not the parser, answers those).
const PARSE: [&str; 27] = [
    "wsinv",
    "intmeth",
    "esc01",
    "escnull",
    "esc02",
    "lwsdisp",
    "longreq",
    "dblreq",
    "semiuri",
    "transports",
    "mpart01",
    "unreason",
    "noreason",
    "badbranch",
    "unksm2",
    "cparam01",
    "cparam02",
    "regescrt",
    "inv2543",
    "sdp01",
    "regaut01",
    "invut",
    "baddate",
    "bcast",
    "zeromf",
    "bext01",
    "badaspec",
];

#[test]
fn well_formed_messages_parse() {
    for name in PARSE {
        let bytes = message(name);
        if let Err(e) = SipMessage::parse(&bytes) {
            panic!("{name}: {e}");
        }
    }
    // Extra octets after a datagram's Content-Length are not part of the message (`dblreq`).
    let m = SipMessage::parse(&message("dblreq")).unwrap();
    assert!(m.body.is_empty());
    assert_eq!(m.method().map(|m| m.as_str()), Some("REGISTER"));
    let m = SipMessage::parse(&message("wsinv")).unwrap();
    assert_eq!(m.branch().as_deref(), Some("390skdjuw"));
    assert_eq!(m.max_forwards(), Some(68));
    assert_eq!(m.cseq().map(|c| c.0), Some(9));
    let m = SipMessage::parse(&message("esc02")).unwrap();
    assert_eq!(m.method().map(|m| m.as_str()), Some("RE%47IST%45R"));
}

#[test]
fn invalid_requests_are_refused_with_the_rfc_status() {
    let cases: [(&str, u16); 20] = [
        ("badinv01", 400),
        ("clerr", 400),
        ("ncl", 400),
        ("scalar02", 400),
        ("quotbal", 400),
        ("ltgtruri", 400),
        ("lwsruri", 400),
        ("lwsstart", 400),
        ("trws", 400),
        ("escruri", 400),
        ("regbadct", 400),
        ("baddn", 400),
        ("mismatch01", 400),
        ("mismatch02", 400),
        ("insuf", 400),
        ("multi01", 400),
        ("mcl01", 400),
        ("badvers", 505),
        ("unkscm", 416),
        ("novelsc", 416),
    ];
    for (name, status) in cases {
        let bytes = message(name);
        let err = match SipMessage::parse(&bytes) {
            Ok(_) => panic!("{name} parsed"),
            Err(e) => e,
        };
        assert_eq!(err.status(), status, "{name}: {err}");
        let resp = error_response(&bytes, &err).unwrap_or_else(|| panic!("{name}: no response"));
        assert_eq!(resp.status(), Some(status), "{name}");
        assert!(resp.header("Via").is_some(), "{name}");
    }
    assert_eq!(SipMessage::parse(&message("mcl01")), Err(ParseError::Duplicate("Content-Length")));
    assert!(matches!(SipMessage::parse(&message("multi01")), Err(ParseError::Duplicate(_))));
}

#[test]
fn malformed_responses_and_headless_requests_are_never_answered() {
    for name in ["scalarlg", "bigcode", "test"] {
        let bytes = message(name);
        let err = SipMessage::parse(&bytes).err().unwrap_or_else(|| panic!("{name} parsed"));
        assert!(error_response(&bytes, &err).is_none(), "{name}");
    }
}
