//! The SIP edge against RFC 4475's torture messages (byte-exact, `tests/sip-torture/rfc4475/`),
//! each sent over a real UDP socket of its own with only its top Via's sent-by rewritten to that
//! socket (the README there says why), and the reaction RFC 4475 §3 expects: valid messages
//! processed (never 400), invalid ones refused with the RFC's code, responses and unanswerable
//! messages never answered; and after all of them the listener still serves.

use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vbtest::SipEnv;
use vbtest::raw::{Msg, RawSip};

const T: Duration = Duration::from_secs(3);

fn torture(name: &str) -> Vec<u8> {
    let path = format!("{}/sip-torture/rfc4475/{name}.dat", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Replaces the sent-by of the first Via header (which may be folded over lines) with `addr`.
fn rewrite_top_via(msg: &[u8], addr: &str) -> Vec<u8> {
    let head_end = msg.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(msg.len());
    let head = &msg[..head_end];
    let text = String::from_utf8_lossy(head);
    let mut offset = 0;
    for line in text.split("\r\n") {
        let name = line.split(':').next().unwrap_or_default().trim();
        if (name.eq_ignore_ascii_case("via") || name.eq_ignore_ascii_case("v")) && line.contains(':') {
            // sent-by: the first word after the transport (third '/'-separated field).
            let value_start = offset + line.find(':').unwrap() + 1;
            let rest = &head[value_start..];
            let mut slashes = 0;
            let mut i = 0;
            while i < rest.len() && slashes < 2 {
                if rest[i] == b'/' {
                    slashes += 1;
                }
                i += 1;
            }
            while i < rest.len() && (rest[i] == b' ' || rest[i] == b'\r' || rest[i] == b'\n' || rest[i] == b'\t') {
                i += 1;
            }
            while i < rest.len() && !b" \r\n\t".contains(&rest[i]) {
                i += 1; // the transport
            }
            while i < rest.len() && b" \r\n\t".contains(&rest[i]) {
                i += 1;
            }
            let start = i;
            while i < rest.len() && !b";, \r\n\t".contains(&rest[i]) {
                i += 1;
            }
            let mut out = msg[..value_start + start].to_vec();
            out.extend_from_slice(addr.as_bytes());
            out.extend_from_slice(&msg[value_start + i..]);
            return out;
        }
        offset += line.len() + 2;
    }
    msg.to_vec()
}

/// What RFC 4475 §3 expects voxbridge to answer: a status, or `None` for silence. Valid
/// requests are processed: voxbridge is not `example.com`, so an INVITE gets 404 there, an
/// in-dialog one 481, and a REGISTER 404 (or 416 for a To that is not a SIP URI).
fn expected(name: &str) -> Option<u16> {
    Some(match name {
        // §3.1.1 valid messages.
        "wsinv" => 481,
        "intmeth" | "esc02" => 501,
        "esc01" | "longreq" => 404,
        "escnull" | "dblreq" => 404,
        "lwsdisp" | "semiuri" | "transports" => 200,
        "mpart01" => 405,
        "unreason" | "noreason" => return None,
        // §3.1.2 invalid messages.
        "badinv01" | "clerr" | "ncl" | "scalar02" | "quotbal" | "ltgtruri" | "lwsruri" | "lwsstart" | "trws"
        | "escruri" | "regbadct" | "baddn" | "mismatch01" | "mismatch02" => 400,
        "badaspec" => 200, // RFC 4475 lets a liberal element ignore the spaces
        "baddate" => 404,  // the Date is not used: processed
        "badvers" => 505,
        "scalarlg" | "bigcode" => return None,
        // §3.2 transaction layer.
        "badbranch" => 200,
        // §3.3 application layer.
        "insuf" | "multi01" | "mcl01" => 400,
        "unkscm" | "novelsc" => 416,
        "unksm2" => 416,
        "regaut01" | "cparam01" | "cparam02" | "regescrt" => 404,
        "bext01" => 420,
        "invut" => 415,
        "sdp01" => 406,
        "bcast" => return None,
        "zeromf" => 483,
        // §3.4 backward compatibility.
        "inv2543" => 404,
        // Not an RFC 4475 message (the archive's stray `test.dat`): no Via, nowhere to answer.
        "test" => return None,
        other => panic!("no expectation for {other}"),
    })
}

#[tokio::test]
async fn every_torture_message_gets_its_rfc_4475_reaction() {
    let env = SipEnv::start_with_env(
        json!([{"action": "talk", "text": "hi"}]),
        &["127.0.0.1"],
        None,
        vec![("VOXBRIDGE_SIP_RATE_PER_SOURCE".into(), "1000".into())],
    )
    .await;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("sip-torture/rfc4475");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok()?.strip_suffix(".dat").map(str::to_owned))
        .collect();
    names.sort();
    assert_eq!(names.len(), 50, "the archive's 50 messages");
    let mut failures = Vec::new();
    for name in &names {
        let peer = RawSip::new(&env.sip).await;
        let msg = rewrite_top_via(&torture(name), &peer.local.to_string());
        peer.send_bytes(&msg).await;
        let want = expected(name);
        let got = match want {
            None => peer.recv(Duration::from_millis(400)).await.map(|(m, _)| m),
            Some(_) => peer.final_response(T).await,
        };
        let status = got.as_ref().and_then(Msg::status);
        if status != want {
            failures.push(format!("{name}: expected {want:?}, got {:?}", got.map(|m| m.0)));
            continue;
        }
        let Some(resp) = got else { continue };
        match name.as_str() {
            "bext01" => {
                let unsupported = resp.header("Unsupported").unwrap_or_default();
                for tag in ["nothingSupportsThis", "nothingSupportsThisEither"] {
                    if !unsupported.contains(tag) {
                        failures.push(format!("bext01: Unsupported lacks {tag}: {}", resp.0));
                    }
                }
            }
            "intmeth" | "esc02" if resp.header("Allow").is_none() => failures.push(format!("{name}: no Allow")),
            "invut" if resp.header("Accept").as_deref() != Some("application/sdp") => {
                failures.push(format!("invut: no Accept: {}", resp.0))
            }
            _ => {}
        }
        // A final response to an INVITE is retransmitted until ACKed; ACK it.
        if resp.header("CSeq").is_some_and(|c| c.ends_with("INVITE")) {
            let text = String::from_utf8_lossy(&msg).into_owned();
            peer.send(&peer.ack_for(&text, &resp)).await;
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // Conflicting Content-Length over TCP: 400, then the connection is closed (framing is lost).
    let mut tcp = tokio::net::TcpStream::connect(&env.sip).await.unwrap();
    let local = tcp.local_addr().unwrap().to_string();
    tcp.write_all(&rewrite_top_via(&torture("mcl01"), &local)).await.unwrap();
    let mut got = Vec::new();
    let read = tokio::time::timeout(T, tcp.read_to_end(&mut got)).await;
    assert!(read.is_ok(), "connection closed after mcl01");
    assert_eq!(Msg(String::from_utf8_lossy(&got).into_owned()).status(), Some(400));

    // The listener still serves.
    let peer = RawSip::new(&env.sip).await;
    peer.send(&vbtest::raw::options(&peer, &env.host, "after-torture")).await;
    assert_eq!(peer.final_response(T).await.and_then(|m| m.status()), Some(200));
}
