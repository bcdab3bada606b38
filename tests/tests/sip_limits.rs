//! The edge's protection and loop limits over real sockets: a flood from one source gets 503
//! while another source's call completes; Max-Forwards 0 gets 483 and the outbound leg carries
//! one hop fewer than the caller sent; responses say where the request came from (received,
//! rport) and carry the configured Server.

use std::time::Duration;

use serde_json::json;
use vbtest::SipEnv;
use vbtest::raw::{Msg, RawSip, options, respond};
use vbtest::sipp::Sipp;

const T: Duration = Duration::from_secs(5);

#[tokio::test]
async fn a_flood_from_one_source_gets_503_while_another_source_calls() {
    let callee = Sipp::uas("uas_answer.xml", &[]);
    let ncco = json!([{"action": "connect", "endpoint": [{"type": "sip", "uri": format!("sip:bob@127.0.0.1:{}", callee.port)}]}]);
    let env =
        SipEnv::start_with_env(ncco, &["127.0.0.1"], None, vec![("VOXBRIDGE_SIP_RATE_PER_SOURCE".into(), "20".into())])
            .await;
    // 300 OPTIONS from 127.0.0.9 as fast as one socket sends them.
    let flooder = RawSip::from_ip("127.0.0.9", &env.sip).await;
    for i in 0..300 {
        flooder.send(&options(&flooder, &env.host, &format!("flood-{i}"))).await;
    }
    // Meanwhile a real call from 127.0.0.1 (SIPp) completes.
    let caller = Sipp::uac("uac_invite_xheaders.xml", &env.sip, &env.host, &[]).finish(Duration::from_secs(40)).await;
    assert!(caller.success, "call from another source: {}\n{}", caller.errors, caller.messages);
    let (mut ok, mut refused) = (0, 0);
    while let Some((m, _)) = flooder.recv(Duration::from_millis(500)).await {
        match m.status() {
            Some(200) => ok += 1,
            Some(503) => {
                assert!(m.header("Retry-After").is_some_and(|r| r.parse::<u32>().is_ok_and(|s| s >= 1)), "{}", m.0);
                refused += 1
            }
            other => panic!("unexpected {other:?}: {}", m.0),
        }
    }
    assert!(ok >= 20, "the source's budget was served: {ok}");
    assert!(refused > 100, "the flood was refused: {refused} of 300 (ok {ok})");
    let metrics = env.server.client.get(env.server.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("rate_limited_source"), "{metrics}");
}

#[tokio::test]
async fn max_forwards_and_via_received_and_server_header() {
    let far = RawSip::new("127.0.0.1:9").await;
    let ncco = json!([{"action": "connect", "endpoint": [{"type": "sip", "uri": format!("sip:bob@{}", far.local)}]}]);
    let env = SipEnv::start_with_env(
        ncco,
        &["127.0.0.1"],
        None,
        vec![("VOXBRIDGE_SIP_USER_AGENT".into(), "EdgeUnderTest/2".into())],
    )
    .await;
    let caller = RawSip::new(&env.sip).await;
    let uri = format!("sip:+14155550100@{}", env.host);

    // Max-Forwards 0: 483, nothing reaches the application.
    let invite = caller.invite(&uri, "mf0@test", 1, "", 40100).replace("Max-Forwards: 70", "Max-Forwards: 0");
    caller.send(&invite).await;
    let resp = caller.final_response(T).await.expect("answer to Max-Forwards 0");
    assert_eq!(resp.status(), Some(483), "{}", resp.0);
    assert_eq!(resp.header("Server").as_deref(), Some("EdgeUnderTest/2"));
    caller.send(&caller.ack_for(&invite, &resp)).await;
    assert!(env.app.answers().is_empty());

    // Max-Forwards 7: the outbound leg carries 6.
    let invite = caller.invite(&uri, "mf7@test", 1, "", 40100).replace("Max-Forwards: 70", "Max-Forwards: 7");
    caller.send(&invite).await;
    let (trying, _) = caller.recv(T).await.expect("100 Trying");
    let via = trying.header("Via").unwrap();
    assert!(via.contains(&format!("rport={}", caller.local.port())), "rport filled: {via}");
    assert!(via.contains("received=127.0.0.1"), "received added: {via}");
    let (b_invite, from) = far.recv(Duration::from_secs(10)).await.expect("outbound INVITE");
    assert_eq!(b_invite.method(), Some("INVITE"));
    assert_eq!(b_invite.header("Max-Forwards").as_deref(), Some("6"), "{}", b_invite.0);
    assert_eq!(b_invite.header("User-Agent").as_deref(), Some("EdgeUnderTest/2"));
    far.sock.send_to(respond(&b_invite, 486, "Busy Here", "far1", "", "").as_bytes(), from).await.unwrap();
    let fin = caller.final_response(T).await.expect("final answer to the caller");
    assert_eq!(fin.status(), Some(486), "{}", fin.0);
    caller.send(&caller.ack_for(&invite, &fin)).await;
    let _: Option<(Msg, _)> = far.recv(Duration::from_millis(300)).await; // the ACK of the 486
}

#[tokio::test]
async fn a_failure_response_is_retransmitted_until_its_ack() {
    let env = SipEnv::start(json!([{"action": "talk", "text": "hi"}]), &["10.0.0.0/8"], None).await;
    let caller = RawSip::new(&env.sip).await;
    let invite = caller.invite(&format!("sip:+14155550100@{}", env.host), "timer-g@test", 1, "", 40200);
    caller.send(&invite).await;
    let first = caller.final_response(T).await.expect("403");
    assert_eq!(first.status(), Some(403));
    // Timer G: the 403 comes again after T1 (500 ms), then 2·T1, while no ACK arrives.
    let again = caller.final_response(Duration::from_millis(1500)).await.expect("403 retransmitted");
    assert_eq!(again.status(), Some(403));
    caller.send(&caller.ack_for(&invite, &first)).await;
    // Drain what was already in flight, then silence: the ACK stopped Timer G.
    tokio::time::sleep(Duration::from_millis(100)).await;
    while caller.recv(Duration::from_millis(50)).await.is_some() {}
    assert!(caller.recv(Duration::from_millis(2500)).await.is_none(), "no retransmission after the ACK");
}
