//! `connect` to a SIP endpoint with `;transport=tls`: voxbridge opens TLS to the far end,
//! verifying its certificate against the CA the operator configured.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vbtest::SipEnv;
use vbtest::raw::{Msg, RawSip, respond};

const T: Duration = Duration::from_secs(10);

async fn read_message(stream: &mut (impl AsyncReadExt + Unpin)) -> Msg {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(T, stream.read(&mut chunk)).await.expect("far end reads").unwrap();
        assert!(n > 0, "connection closed");
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len: usize =
                Msg(format!("{head}\r\n\r\n")).header("Content-Length").and_then(|l| l.parse().ok()).unwrap_or(0);
            if body.len() >= len {
                return Msg(text);
            }
        }
    }
}

/// A TLS far end with a certificate for 127.0.0.1 from its own CA; returns the acceptor, the
/// listener, and the CA certificate (PEM).
async fn tls_far_end() -> (tokio_rustls::TlsAcceptor, tokio::net::TcpListener, String) {
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::try_from(cert.key_pair.serialize_der()).unwrap();
    let server = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    (tokio_rustls::TlsAcceptor::from(Arc::new(server)), listener, cert.cert.pem())
}

fn connect_tls(port: u16) -> serde_json::Value {
    json!([{"action": "connect", "endpoint": [{"type": "sip", "uri": format!("sip:bob@127.0.0.1:{port};transport=tls")}]}])
}

#[tokio::test]
async fn connect_over_tls_verifies_the_far_end() {
    // A far end with a certificate from a private CA, which the operator configures.
    let (acceptor, listener, ca_pem) = tls_far_end().await;
    let dir = vbtest::tempdir::Dir::new();
    let ca = dir.path().join("far-end-ca.pem");
    std::fs::write(&ca, ca_pem).unwrap();
    let port = listener.local_addr().unwrap().port();
    let env = SipEnv::start_with_env(
        connect_tls(port),
        &["127.0.0.1"],
        None,
        vec![("VOXBRIDGE_SIP_TLS_CA".into(), ca.display().to_string())],
    )
    .await;
    let caller = RawSip::new(&env.sip).await;
    let invite = caller.invite(&format!("sip:+14155550100@{}", env.host), "tls-1@test", 1, "", 40050);
    caller.send(&invite).await;

    let (tcp, _) = tokio::time::timeout(T, listener.accept()).await.expect("voxbridge connects").unwrap();
    let mut tls = acceptor.accept(tcp).await.expect("TLS handshake (voxbridge trusted our CA)");
    let inv = read_message(&mut tls).await;
    assert!(inv.0.starts_with("INVITE sip:bob@127.0.0.1"), "{}", inv.0);
    assert!(inv.header("Via").unwrap().starts_with("SIP/2.0/TLS"), "{}", inv.0);
    assert!(inv.header("Contact").unwrap().contains("transport=tls"));
    tls.write_all(respond(&inv, 486, "Busy Here", "tls1", "", "").as_bytes()).await.unwrap();
    let ack = read_message(&mut tls).await;
    assert!(ack.0.starts_with("ACK "), "{}", ack.0);
    let fin = caller.final_response(T).await.expect("caller gets the result");
    assert_eq!(fin.status(), Some(486));
    assert!(env.app.wait_status("outbound", "busy", T).await);
}

#[tokio::test]
async fn untrusted_far_end_certificate_fails_the_call() {
    // The far end's CA is not configured: the handshake must fail.
    let (acceptor, listener, _) = tls_far_end().await;
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        if let Ok((tcp, _)) = listener.accept().await {
            let _ = acceptor.accept(tcp).await;
        }
    });
    let env = SipEnv::start(connect_tls(port), &["127.0.0.1"], None).await;
    let caller = RawSip::new(&env.sip).await;
    let invite = caller.invite(&format!("sip:+14155550100@{}", env.host), "tls-2@test", 1, "", 40060);
    caller.send(&invite).await;
    let fin = caller.final_response(T).await.expect("caller gets the result");
    assert_eq!(fin.status(), Some(480), "{}", fin.0);
    assert!(env.app.wait_status("inbound", "failed", T).await);
}
