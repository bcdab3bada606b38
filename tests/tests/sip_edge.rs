//! The SIP listener against a hand-driven peer on a real UDP socket: OPTIONS, malformed input,
//! and every admission refusal, with exact status codes.

use std::time::Duration;

use serde_json::json;
use vbtest::SipEnv;
use vbtest::raw::{Msg, RawSip};

const T: Duration = Duration::from_secs(5);

fn talk_ncco() -> serde_json::Value {
    json!([{"action": "talk", "text": "hello"}])
}

#[tokio::test]
async fn options_and_malformed_messages() {
    let env = SipEnv::start(talk_ncco(), &["127.0.0.1"], None).await;
    let peer = RawSip::new(&env.sip).await;
    let options = |call_id: &str| {
        format!(
            "OPTIONS sip:{} SIP/2.0\r\nVia: SIP/2.0/UDP {l};branch=z9hG4bK{call_id}\r\nFrom: <sip:probe@{l}>;tag=1\r\n\
             To: <sip:{}>\r\nCall-ID: {call_id}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            env.host,
            env.host,
            l = peer.local
        )
    };
    peer.send(&options("opt-1")).await;
    let ok = peer.final_response(T).await.expect("OPTIONS answered");
    assert_eq!(ok.status(), Some(200));
    assert!(ok.header("Allow").unwrap().contains("INVITE"));
    assert!(ok.header("Accept").is_some() && ok.header("Supported").is_some());

    // Addressable but malformed: bad start line, missing Call-ID, bad Content-Length, CSeq
    // that contradicts the method. Each gets 400.
    let good = options("bad-1");
    let malformed = [
        (good.replacen("SIP/2.0\r\n", "SIP/9.9\r\n", 1), 505),
        (good.replace("CSeq: 1 OPTIONS", "CSeq: one OPTIONS"), 400),
        (good.replace("Content-Length: 0", "Content-Length: 55"), 400),
        (good.replace("CSeq: 1 OPTIONS", "CSeq: 1 INVITE"), 400),
        (good.replace("Via: SIP/2.0/UDP", "Via: SIP/2.0/UDP\r\nX-Broken"), 400),
        (good.replacen("OPTIONS sip:", "OPTIONS mailto:", 1), 416),
        (good.replacen("OPTIONS sip:", &format!("OPTIONS sip:{}", "9".repeat(3000)), 1), 414),
        (good.replace("Max-Forwards: 70", "Max-Forwards: 70\r\nMax-Forwards: 69"), 400),
        (good.replace("Call-ID: bad-1", "Call-ID: bad-1\r\ni: bad-2"), 400),
        (format!("{good}{}", "x".repeat(40_000)).replace("Content-Length: 0", "Content-Length: 40000"), 513),
    ];
    for (m, status) in &malformed {
        peer.send(m).await;
        let resp = peer.final_response(T).await.unwrap_or_else(|| panic!("no answer to {m}"));
        assert_eq!(resp.status(), Some(*status), "{m}\n=> {}", resp.0);
    }
    // One datagram with a non-ASCII byte inside the start line used to panic the parser and
    // silence UDP for good. It is refused (400) and the listener keeps serving.
    for start in ["INVITE a\u{e9}\u{e9} SIP/2.0", "INVITE s\u{e9}:x SIP/2.0", "OPTIONS sip:\u{e9}@\u{e9} SIP/2.0"] {
        peer.send(&good.replacen(&format!("OPTIONS sip:{} SIP/2.0", env.host), start, 1)).await;
        let resp = peer.final_response(T).await.unwrap_or_else(|| panic!("no answer to {start}"));
        assert_eq!(resp.status(), Some(400), "{start}: {}", resp.0);
    }
    peer.send_bytes("INVITE a\u{e9}\u{e9} SIP/2.0\r\n\r\n".as_bytes()).await;
    peer.send(&options("opt-ascii")).await;
    assert_eq!(peer.final_response(T).await.and_then(|m| m.status()), Some(200), "OPTIONS after the datagram");
    // Without a Call-ID the request is still answered 400 along its Via (RFC 4475 `insuf`);
    // garbage without a Via has nowhere to be answered and is dropped.
    peer.send(&good.replace("Call-ID: bad-1\r\n", "")).await;
    let resp = peer.final_response(T).await.expect("400 without Call-ID");
    assert_eq!(resp.status(), Some(400), "{}", resp.0);
    peer.send_bytes(b"\x16\x03\x01garbage\x00\xff").await;
    peer.send_bytes(b"").await;
    assert!(peer.recv(Duration::from_millis(500)).await.is_none(), "unaddressable input is dropped");
    // The listener keeps serving.
    peer.send(&options("opt-2")).await;
    assert_eq!(peer.final_response(T).await.and_then(|m| m.status()), Some(200));
    // Unknown methods out of dialog and stray BYEs.
    peer.send(&options("bye-1").replace("OPTIONS", "BYE")).await;
    assert_eq!(peer.final_response(T).await.and_then(|m| m.status()), Some(481));
    // A following call is still admitted and handled: the application is asked for its NCCO.
    let invite = peer.invite(&format!("sip:+14155550100@{}", env.host), "after-malformed@test", 1, "", 40030);
    peer.send(&invite).await;
    let fin = peer.final_response(T).await.expect("INVITE answered");
    peer.send(&peer.ack_for(&invite, &fin)).await;
    assert_eq!(fin.status(), Some(200), "talk answers the call: {}", fin.0);
    assert_eq!(env.app.answers().len(), 1);
}

async fn invite_status(env: &SipEnv, uri: &str, extra: &str) -> (Msg, RawSip, String) {
    let peer = RawSip::new(&env.sip).await;
    let invite = peer.invite(uri, &format!("{}@test", uuid::Uuid::new_v4().simple()), 1, extra, 40000);
    peer.send(&invite).await;
    let resp = peer.final_response(T).await.expect("final response");
    peer.send(&peer.ack_for(&invite, &resp)).await;
    (resp, peer, invite)
}

#[tokio::test]
async fn unknown_domain_region_and_acl() {
    let env = SipEnv::start(talk_ncco(), &["10.0.0.0/8"], None).await;
    for uri in [
        "sip:+14155550100@nobody.sip-us.sip.voxbridge.local",
        "sip:+14155550100@acme-sip.sip.voxbridge.local",
        "sip:+14155550100@acme-sip.sip-mars.sip.voxbridge.local",
        "sip:+14155550100@example.com",
    ] {
        let (resp, _, _) = invite_status(&env, uri, "").await;
        assert_eq!(resp.status(), Some(404), "{uri}");
    }
    let (resp, _, _) = invite_status(&env, &format!("sip:+14155550100@{}", env.host), "").await;
    assert_eq!(resp.status(), Some(403), "source outside the ACL");
    assert!(env.app.answers().is_empty(), "refused calls never reach the application");
    assert_eq!(env.calls().await["count"], 0, "refused calls write nothing");
}

/// RFC 2617 digest response, computed independently of voxbridge.
fn digest_response(user: &str, realm: &str, pass: &str, uri: &str, nonce: &str, nc: &str, cnonce: &str) -> String {
    use md5::{Digest, Md5};
    let h = |s: String| hex::encode(Md5::digest(s.as_bytes()));
    let ha1 = h(format!("{user}:{realm}:{pass}"));
    let ha2 = h(format!("INVITE:{uri}"));
    h(format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}"))
}

fn param(header: &str, name: &str) -> Option<String> {
    let start = header.find(&format!("{name}="))? + name.len() + 1;
    let rest = &header[start..];
    Some(match rest.strip_prefix('"') {
        Some(q) => q.split('"').next()?.to_owned(),
        None => rest.split(',').next()?.trim().to_owned(),
    })
}

#[tokio::test]
async fn digest_challenge_success_and_replay() {
    let env = SipEnv::start(talk_ncco(), &["10.0.0.0/8"], Some(("alice", "correct horse"))).await;
    let uri = format!("sip:+14155550100@{}", env.host);
    let (challenge, _, _) = invite_status(&env, &uri, "").await;
    assert_eq!(challenge.status(), Some(401));
    let offers = challenge.headers("WWW-Authenticate");
    assert!(offers.iter().any(|h| h.contains("algorithm=SHA-256")), "{offers:?}");
    let md5 = offers.iter().find(|h| h.contains("algorithm=MD5")).expect("MD5 offered");
    assert!(md5.contains("qop=\"auth\""));
    let (realm, nonce) = (param(md5, "realm").unwrap(), param(md5, "nonce").unwrap());
    assert_eq!(realm, "acme-sip");

    let auth = |nc: &str, pass: &str| {
        let resp = digest_response("alice", &realm, pass, &uri, &nonce, nc, "0a4f113b");
        format!(
            "Authorization: Digest username=\"alice\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", \
             response=\"{resp}\", algorithm=MD5, qop=auth, nc={nc}, cnonce=\"0a4f113b\"\r\n"
        )
    };
    let (wrong, _, _) = invite_status(&env, &uri, &auth("00000001", "wrong password")).await;
    assert_eq!(wrong.status(), Some(403), "wrong password");
    let good = auth("00000002", "correct horse");
    let (admitted, _, _) = invite_status(&env, &uri, &good).await;
    // Admitted: the application is asked, and its talk answers the call (not 401/403).
    assert_eq!(admitted.status(), Some(200), "{}", admitted.0);
    assert_eq!(env.app.answers().len(), 1, "admitted call fetched answer_url");
    let (replayed, _, _) = invite_status(&env, &uri, &good).await;
    assert_eq!(replayed.status(), Some(403), "a replayed nonce count is refused");
    assert_eq!(env.app.answers().len(), 1);
    assert!(env.app.wait_status("inbound", "answered", T).await, "{:?}", env.app.statuses("inbound"));
}

/// Accepts any server certificate: the test talks to its own freshly generated self-signed one.
#[derive(Debug)]
struct AnyCert;

impl rustls::client::danger::ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        rustls::crypto::ring::default_provider().signature_verification_algorithms.supported_schemes()
    }
}

#[tokio::test]
async fn options_over_tcp_and_tls() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let env = SipEnv::start(talk_ncco(), &["127.0.0.1"], None).await;
    let request = |transport: &str, local: std::net::SocketAddr| {
        format!(
            "OPTIONS sip:{h} SIP/2.0\r\nVia: SIP/2.0/{transport} {local};branch=z9hG4bKtls1\r\nFrom: <sip:probe@{local}>;tag=1\r\n\
             To: <sip:{h}>\r\nCall-ID: tls-{transport}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            h = env.host
        )
    };
    // TCP, two messages in one segment: framing by Content-Length.
    let mut tcp = tokio::net::TcpStream::connect(&env.sip).await.unwrap();
    let local = tcp.local_addr().unwrap();
    let twice = format!("{}{}", request("TCP", local), request("TCP", local).replace("tls-TCP", "tls-TCP2"));
    tcp.write_all(twice.as_bytes()).await.unwrap();
    let mut got = String::new();
    let mut buf = [0u8; 4096];
    while got.matches("SIP/2.0 200").count() < 2 {
        let n = tokio::time::timeout(T, tcp.read(&mut buf)).await.expect("TCP answers").unwrap();
        assert!(n > 0, "connection closed: {got}");
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(got.contains("tls-TCP2"));
    // A keep-alive ping (CRLFCRLF, RFC 5626) gets its pong, and the connection goes on serving.
    tcp.write_all(b"\r\n\r\n").await.unwrap();
    let n = tokio::time::timeout(T, tcp.read(&mut buf)).await.expect("pong").unwrap();
    assert_eq!(&buf[..n], b"\r\n");
    tcp.write_all(request("TCP", local).replace("tls-TCP", "tls-TCP3").as_bytes()).await.unwrap();
    let n = tokio::time::timeout(T, tcp.read(&mut buf)).await.expect("TCP answers after the ping").unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).contains("tls-TCP3"));

    // TLS.
    let sips = env.server.sips.clone().expect("TLS listener");
    let config =
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(std::sync::Arc::new(AnyCert))
            .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let stream = tokio::net::TcpStream::connect(&sips).await.unwrap();
    let local = stream.local_addr().unwrap();
    let mut tls =
        connector.connect(rustls::pki_types::ServerName::try_from("localhost").unwrap(), stream).await.unwrap();
    tls.write_all(request("TLS", local).as_bytes()).await.unwrap();
    let n = tokio::time::timeout(T, tls.read(&mut buf)).await.expect("TLS answers").unwrap();
    let resp = Msg(String::from_utf8_lossy(&buf[..n]).into_owned());
    assert_eq!(resp.status(), Some(200), "{}", resp.0);
    assert!(resp.header("Via").unwrap().contains("SIP/2.0/TLS"));
}

#[tokio::test]
async fn failing_answer_url_falls_back() {
    let env = SipEnv::start(talk_ncco(), &["127.0.0.1"], None).await;
    env.app.set_answer_status(500);
    let fallback = vbtest::app::FakeApp::start(json!([{"action": "talk", "text": "from the fallback"}])).await;
    let (status, body) = env
        .server
        .put_json(
            &format!("/v2/applications/{}", env.app_id),
            json!({"name": "with fallback", "capabilities": {"voice": {"webhooks": {
                "answer_url": {"address": format!("{}/answer", env.app.base)},
                "event_url": {"address": format!("{}/event", env.app.base)},
                "fallback_answer_url": {"address": format!("{}/answer", fallback.base)}
            }}}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (resp, _, _) = invite_status(&env, &format!("sip:+14155550100@{}", env.host), "").await;
    assert_eq!(resp.status(), Some(200), "the fallback's NCCO runs");
    let asked = fallback.answers();
    assert_eq!(asked.len(), 1, "fallback asked once");
    assert_eq!(asked[0].param("reason"), Some("http 500"));
    assert_eq!(asked[0].param("original_request.url"), Some(format!("{}/answer", env.app.base).as_str()));
    assert_eq!(env.app.answers().len(), 1, "a 500 is not retried on the same URL");
    assert!(env.app.wait_status("inbound", "completed", T).await);
}

/// The Authorization header for an INVITE answering `challenge` as `user` with `pass`.
fn authorization(challenge: &Msg, uri: &str, user: &str, pass: &str) -> String {
    let offers = challenge.headers("WWW-Authenticate");
    let md5 = offers.iter().find(|h| h.contains("algorithm=MD5")).expect("MD5 offered");
    let (realm, nonce) = (param(md5, "realm").unwrap(), param(md5, "nonce").unwrap());
    let resp = digest_response(user, &realm, pass, uri, &nonce, "00000001", "0a4f113b");
    format!(
        "Authorization: Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", \
         response=\"{resp}\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"0a4f113b\"\r\n"
    )
}

/// One INVITE from `ip`: challenged (401), then answered with `user`/`pass`; the final status
/// line of the second attempt (or of the first, when it is not a challenge).
async fn attempt(env: &SipEnv, ip: &str, user: &str, pass: &str) -> String {
    let uri = format!("sip:+14155550100@{}", env.host);
    let peer = RawSip::from_ip(ip, &env.sip).await;
    let call_id = format!("{}@test", uuid::Uuid::new_v4().simple());
    let invite = peer.invite(&uri, &call_id, 1, "", 40000);
    peer.send(&invite).await;
    let first = peer.final_response(T).await.expect("answer to the first INVITE");
    peer.send(&peer.ack_for(&invite, &first)).await;
    if first.status() != Some(401) {
        return first.0.lines().next().unwrap_or_default().to_owned();
    }
    let retry = peer.invite(&uri, &call_id, 2, &authorization(&first, &uri, user, pass), 40000);
    peer.send(&retry).await;
    let last = peer.final_response(T).await.expect("answer to the INVITE with credentials");
    peer.send(&peer.ack_for(&retry, &last)).await;
    last.0.lines().next().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn digest_guessing_is_throttled_per_source() {
    let env = SipEnv::start_with_env(
        talk_ncco(),
        &["10.0.0.0/8"],
        Some(("alice", "correct horse")),
        vec![("VOXBRIDGE_SIP_AUTH_FAILURES_PER_SOURCE".into(), "10".into())],
    )
    .await;
    // An unknown user and a wrong password are answered alike.
    let unknown = attempt(&env, "127.0.0.3", "mallory", "x").await;
    let wrong = attempt(&env, "127.0.0.3", "alice", "x").await;
    assert_eq!(unknown, "SIP/2.0 403 Forbidden");
    assert_eq!(wrong, unknown, "unknown user and wrong password look the same");

    // A guesser on 127.0.0.1: twenty wrong passwords; once its budget (10) is spent it gets
    // 403 without its credentials being looked at, and the right password fails too.
    for i in 0..20 {
        let line = attempt(&env, "127.0.0.1", "alice", &format!("guess {i}")).await;
        assert!(line.starts_with("SIP/2.0 403"), "guess {i}: {line}");
    }
    let locked = attempt(&env, "127.0.0.1", "alice", "correct horse").await;
    assert!(locked.starts_with("SIP/2.0 403"), "right password from the locked source: {locked}");
    assert!(env.app.answers().is_empty(), "nothing was admitted");

    // The real user on another address is unaffected.
    let owner = attempt(&env, "127.0.0.2", "alice", "correct horse").await;
    assert!(owner.starts_with("SIP/2.0 200"), "admitted from another source: {owner}");
    assert_eq!(env.app.answers().len(), 1);

    let metrics = env.server.client.get(env.server.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("voxbridge_sip_auth_lockouts_total"), "{metrics}");
    assert!(metrics.contains("auth_locked_source"), "refusals counted by reason");
}

#[tokio::test]
async fn guessing_from_many_addresses_locks_the_user_for_addresses_it_never_used() {
    let env = SipEnv::start_with_env(
        talk_ncco(),
        &["10.0.0.0/8"],
        Some(("alice", "correct horse")),
        vec![
            ("VOXBRIDGE_SIP_AUTH_FAILURES_PER_SOURCE".into(), "100".into()),
            ("VOXBRIDGE_SIP_AUTH_FAILURES_PER_USER".into(), "5".into()),
        ],
    )
    .await;
    // The real user authenticates from its usual address first.
    assert!(attempt(&env, "127.0.0.2", "alice", "correct horse").await.starts_with("SIP/2.0 200"));
    // Seven guessers, one wrong password each: no source spends its own budget.
    for i in 10..17 {
        let line = attempt(&env, &format!("127.0.0.{i}"), "alice", "guess").await;
        assert!(line.starts_with("SIP/2.0 403"), "{line}");
    }
    // The user's budget is spent: a new address is refused even with the right password…
    let fresh = attempt(&env, "127.0.0.30", "alice", "correct horse").await;
    assert!(fresh.starts_with("SIP/2.0 403"), "new address while the user is locked: {fresh}");
    // …while the address alice authenticated from before still gets in.
    let owner = attempt(&env, "127.0.0.2", "alice", "correct horse").await;
    assert!(owner.starts_with("SIP/2.0 200"), "trusted address: {owner}");
    assert_eq!(env.app.answers().len(), 2);
    let metrics = env.server.client.get(env.server.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("auth_locked_user"), "{metrics}");
}
