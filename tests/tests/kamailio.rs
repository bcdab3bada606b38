//! voxbridge behind, and in front of, Kamailio configured as a strict record-routing edge
//! (`tests/kamailio/edge-strict.cfg`): in-dialog requests that do not carry the proxy's Route
//! are refused there (404) or lost, so a call only completes when voxbridge copies
//! Record-Route into its responses and sends its own ACK and BYE along each dialog's route set
//! (RFC 3261 §12).

use std::time::Duration;

use serde_json::json;
use vbtest::SipEnv;
use vbtest::kamailio::Kamailio;
use vbtest::sipp::Sipp;

const CALL: Duration = Duration::from_secs(45);

fn connect_to(port: u16) -> serde_json::Value {
    json!([{"action": "connect", "endpoint": [{"type": "sip", "uri": format!("sip:bob@127.0.0.1:{port}")}]}])
}

fn sip_port(env: &SipEnv) -> u16 {
    env.sip.rsplit_once(':').and_then(|(_, p)| p.parse().ok()).expect("SIP port")
}

#[tokio::test]
async fn caller_behind_a_record_routing_proxy_hangs_up() {
    let callee = Sipp::uas("uas_answer.xml", &[]);
    let env = SipEnv::start(connect_to(callee.port), &["127.0.0.1"], None).await;
    let edge = Kamailio::start("edge-strict.cfg", sip_port(&env));
    let caller = Sipp::uac("uac_invite_xheaders.xml", &edge.addr(), &env.host, &[]).finish(CALL).await;
    assert!(caller.success, "caller via Kamailio: {}\n{}\n{}", caller.errors, caller.messages, edge.log());
    // voxbridge's 200 carried the proxy's Record-Route, so the caller's ACK and BYE had a Route.
    assert!(caller.messages.contains("Record-Route: <sip:127.0.0.1:"), "{}", caller.messages);
    let callee = callee.finish(Duration::from_secs(10)).await;
    assert!(callee.success, "far end: {}", callee.errors);
    assert!(env.app.wait_status("inbound", "completed", Duration::from_secs(10)).await);
}

#[tokio::test]
async fn far_end_behind_a_proxy_hangs_up_and_byes_follow_both_route_sets() {
    let callee = Sipp::uas("uas_answer_bye.xml", &[]);
    let far_edge = Kamailio::start("edge-strict.cfg", callee.port);
    let env = SipEnv::start(connect_to(far_edge.port), &["127.0.0.1"], None).await;
    let edge = Kamailio::start("edge-strict.cfg", sip_port(&env));
    let caller = Sipp::uac("uac_invite_wait_bye.xml", &edge.addr(), &env.host, &[]).finish(CALL).await;
    let callee = callee.finish(Duration::from_secs(10)).await;
    // The far end only gets voxbridge's ACK through its proxy when the ACK carries the Route
    // learned from the 200; the caller only gets voxbridge's BYE through the edge when it
    // carries the caller's route set.
    assert!(callee.success, "far end via Kamailio: {}\n{}\n{}", callee.errors, callee.messages, far_edge.log());
    assert!(caller.success, "caller via Kamailio: {}\n{}\n{}", caller.errors, caller.messages, edge.log());
    assert!(env.app.wait_status("inbound", "completed", Duration::from_secs(10)).await);
    assert!(env.app.wait_status("outbound", "completed", Duration::from_secs(10)).await);
}
