//! Outbound legs through trunks: `connect` to a `phone` reaches a carrier played by Kamailio
//! (`tests/kamailio/carrier-407.cfg`, which demands proxy digest authentication) after a first
//! gateway that never answers; a `vbc` extension reaches the PBX trunk; and the toll-fraud
//! attempts — an INVITE from outside the ACL, a Request-URI naming a number or the trunk's
//! host, a caller ID that is not the account's, a bridged callee's REFER to a number — never
//! reach a trunk. A PBX registers on the trunk host with the account's key and secret, and its
//! calls (challenged with 407) leave through the longest-prefix trunk; its fraud attempts (no
//! or wrong credentials, a caller ID not owned, a number no trunk serves) reach no carrier. Kamailio plays a PBX too
//! (`tests/kamailio/pbx-uac.cfg`): it registers, calls out through the trunk with its DID, and
//! takes a call for its number.

use std::time::Duration;

use serde_json::json;
use tokio::net::UdpSocket;
use vbtest::SipEnv;
use vbtest::kamailio::Kamailio;
use vbtest::raw::RawSip;
use vbtest::sipp::Sipp;

const CALL: Duration = Duration::from_secs(45);

fn phone(number: &str, from: Option<&str>) -> serde_json::Value {
    let mut connect = json!({"action": "connect", "endpoint": [{"type": "phone", "number": number}]});
    if let Some(f) = from {
        connect["from"] = json!(f);
    }
    json!([connect])
}

/// A gateway that receives and never answers; counts what reached it.
struct SilentGateway(UdpSocket);

impl SilentGateway {
    async fn bind() -> SilentGateway {
        SilentGateway(UdpSocket::bind("127.0.0.1:0").await.unwrap())
    }

    fn port(&self) -> u16 {
        self.0.local_addr().unwrap().port()
    }

    /// Messages received within `within`.
    async fn received(&self, within: Duration) -> Vec<String> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 65536];
        let deadline = tokio::time::Instant::now() + within;
        while let Ok(Ok((n, _))) = tokio::time::timeout_at(deadline, self.0.recv_from(&mut buf)).await {
            out.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        out
    }
}

async fn provision(env: &SipEnv, gateways: serde_json::Value, extra: serde_json::Value) {
    let (status, body) =
        env.server.post_json("/v1/numbers", json!({"number": "+14155550100", "application_id": env.app_id})).await;
    assert_eq!(status, 201, "{body}");
    let mut trunk = json!({"name": "carrier", "prefixes": ["1"], "gateways": gateways,
                           "credentials": {"username": "trunkuser", "password": "s3cret"}});
    if let (Some(t), Some(e)) = (trunk.as_object_mut(), extra.as_object()) {
        t.extend(e.clone());
    }
    let (status, body) = env.server.post_json("/v1/trunks", trunk).await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test]
async fn phone_reaches_a_carrier_that_challenges_after_a_silent_gateway() {
    let callee = Sipp::uas("uas_answer.xml", &[]);
    let carrier =
        Kamailio::start_with("carrier-407.cfg", callee.port, &[("@USER@", "trunkuser"), ("@PASSWORD@", "s3cret")]);
    let silent = SilentGateway::bind().await;
    let env = SipEnv::start(phone("15551230000", None), &["127.0.0.1"], None).await;
    provision(
        &env,
        json!([{"host": "127.0.0.1", "port": silent.port(), "priority": 0},
               {"host": "127.0.0.1", "port": carrier.port, "priority": 1}]),
        json!({}),
    )
    .await;
    let caller = Sipp::uac("uac_invite_xheaders.xml", &env.sip, &env.host, &[]).finish(CALL).await;
    assert!(caller.success, "caller: {}\n{}\n{}", caller.errors, caller.messages, carrier.log());
    let callee = callee.finish(Duration::from_secs(10)).await;
    assert!(callee.success, "carrier's far end: {}\n{}", callee.errors, callee.messages);
    // The far end saw the INVITE relayed by the carrier: with the account's number as caller ID.
    assert!(callee.messages.contains("From: <sip:14155550100@"), "{}", callee.messages);
    let first = silent.received(Duration::from_millis(100)).await;
    assert!(first.iter().any(|m| m.starts_with("INVITE sip:15551230000@127.0.0.1")), "first gateway tried: {first:?}");
    assert!(env.app.wait_status("outbound", "completed", Duration::from_secs(10)).await);
}

#[tokio::test]
async fn vbc_extension_reaches_the_pbx_trunk() {
    let pbx = Sipp::uas("uas_answer.xml", &[]);
    let ncco = json!([{"action": "connect", "endpoint": [{"type": "vbc", "extension": "2001"}]}]);
    let env = SipEnv::start(ncco, &["127.0.0.1"], None).await;
    let (status, body) = env
        .server
        .post_json(
            "/v1/trunks",
            json!({"name": "office", "pbx": true, "gateways": [{"host": "127.0.0.1", "port": pbx.port}]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let caller = Sipp::uac("uac_invite_xheaders.xml", &env.sip, &env.host, &[]).finish(CALL).await;
    assert!(caller.success, "{}\n{}", caller.errors, caller.messages);
    let pbx = pbx.finish(Duration::from_secs(10)).await;
    assert!(pbx.success, "{}", pbx.errors);
    assert!(pbx.messages.contains("INVITE sip:2001@127.0.0.1"), "{}", pbx.messages);
}

#[tokio::test]
async fn toll_fraud_attempts_never_reach_the_trunk() {
    let trunk = SilentGateway::bind().await;
    // The application connects callers to a SIP desk, never to a phone.
    let desk = SilentGateway::bind().await;
    let ncco = json!([{"action": "connect", "timeout": 3,
                       "endpoint": [{"type": "sip", "uri": format!("sip:desk@127.0.0.1:{}", desk.port())}]}]);
    let env = SipEnv::start(ncco, &["10.0.0.0/8"], Some(("alice", "correct horse"))).await;
    provision(&env, json!([{"host": "127.0.0.1", "port": trunk.port()}]), json!({})).await;
    let peer = RawSip::new(&env.sip).await;

    // From outside the ACL, without credentials: challenged, nothing placed.
    let invite = peer.invite(&format!("sip:15551230000@{}", env.host), "fraud-1@test", 1, "", 40100);
    peer.send(&invite).await;
    let resp = peer.final_response(Duration::from_secs(5)).await.expect("answered");
    assert_eq!(resp.status(), Some(401), "{}", resp.0);
    peer.send(&peer.ack_for(&invite, &resp)).await;

    // A Request-URI naming the trunk's host: not one of our domains.
    let invite = peer.invite(&format!("sip:15551230000@127.0.0.1:{}", trunk.port()), "fraud-2@test", 1, "", 40102);
    peer.send(&invite).await;
    let resp = peer.final_response(Duration::from_secs(5)).await.expect("answered");
    assert!(matches!(resp.status(), Some(403 | 404)), "{}", resp.0);
    peer.send(&peer.ack_for(&invite, &resp)).await;

    // An authenticated domain user dialling a number (+14155550100 is even the account's own):
    // the application's NCCO decides, and it rings the desk only. The desk never answers.
    let uri = format!("+14155550100@{}", env.host);
    let _ = Sipp::uac(
        "uac_digest.xml",
        &env.sip,
        &env.host,
        &["-key", "dest", "+14155550100", "-s", "alice", "-ap", "correct horse", "-auth_uri", &uri],
    )
    .finish(CALL)
    .await;
    let desk_got = desk.received(Duration::from_millis(200)).await;
    assert!(desk_got.iter().any(|m| m.starts_with("INVITE sip:desk@")), "{desk_got:?}");
    assert!(trunk.received(Duration::from_secs(1)).await.is_empty(), "nothing reached the trunk");
}

#[tokio::test]
async fn a_refer_to_a_number_from_the_bridged_pbx_is_refused_and_reaches_no_trunk() {
    let trunk = SilentGateway::bind().await;
    // The SIP callee tries to transfer the caller out to the PSTN through our trunk.
    let pbx = Sipp::uas("uas_refer.xml", &["-key", "refer_to", "15551230000@127.0.0.1"]);
    let ncco = json!([{"action": "connect", "limit": 4,
                       "endpoint": [{"type": "sip", "uri": format!("sip:bob@127.0.0.1:{}", pbx.port)}]}]);
    let env = SipEnv::start(ncco, &["127.0.0.1"], None).await;
    provision(&env, json!([{"host": "127.0.0.1", "port": trunk.port()}]), json!({})).await;
    let caller = Sipp::uac("uac_invite_wait_bye.xml", &env.sip, &env.host, &[]).finish(CALL).await;
    assert!(caller.success, "the caller stays bridged until the limit: {}\n{}", caller.errors, caller.messages);
    let pbx = pbx.finish(CALL).await;
    assert!(pbx.success, "403 to the REFER, then the BYE: {}\n{}", pbx.errors, pbx.messages);
    assert!(pbx.messages.contains("SIP/2.0 403"), "{}", pbx.messages);
    assert!(!pbx.messages.contains("NOTIFY sip:"), "no transfer started: {}", pbx.messages);
    assert!(trunk.received(Duration::from_secs(1)).await.is_empty(), "nothing reached the trunk");
}

#[tokio::test]
async fn caller_id_that_is_not_the_accounts_never_reaches_the_trunk() {
    let trunk = SilentGateway::bind().await;
    let env = SipEnv::start(phone("15551230000", Some("15550009999")), &["127.0.0.1"], None).await;
    provision(&env, json!([{"host": "127.0.0.1", "port": trunk.port()}]), json!({})).await;
    let peer = RawSip::new(&env.sip).await;
    // The caller even dials a number itself; only the application's NCCO can place a trunk leg.
    let invite = peer.invite(&format!("sip:+15551230000@{}", env.host), "fraud-3@test", 1, "", 40104);
    peer.send(&invite).await;
    let resp = peer.final_response(Duration::from_secs(5)).await.expect("answered");
    assert_eq!(resp.status(), Some(480), "{}", resp.0);
    peer.send(&peer.ack_for(&invite, &resp)).await;
    assert!(trunk.received(Duration::from_secs(1)).await.is_empty(), "nothing reached the trunk");
    assert!(env.app.wait_status("inbound", "failed", Duration::from_secs(5)).await);
    let failed = env.app.events().into_iter().find(|e| e.body["status"] == "failed").unwrap();
    assert!(failed.body["reason"].as_str().unwrap_or_default().contains("account's numbers"), "{}", failed.body);
}

#[tokio::test]
async fn srv_records_are_tried_in_order_and_a_silent_server_is_failed_over() {
    use vbtest::dns::{DnsServer, Zone};
    let callee = Sipp::uas("uas_answer.xml", &[]);
    let silent = SilentGateway::bind().await;
    let dns = DnsServer::start(Zone {
        srv: vec![
            ("_sip._udp.carrier.test".into(), 10, 1, silent.port(), "gw1.carrier.test".into()),
            ("_sip._udp.carrier.test".into(), 20, 1, callee.port, "gw2.carrier.test".into()),
        ],
        a: vec![
            ("gw1.carrier.test".into(), "127.0.0.1".parse().unwrap()),
            ("gw2.carrier.test".into(), "127.0.0.1".parse().unwrap()),
        ],
    })
    .await;
    let ncco = json!([{"action": "connect", "endpoint": [{"type": "sip", "uri": "sip:bob@carrier.test"}]}]);
    let env =
        SipEnv::start_with_env(ncco, &["127.0.0.1"], None, vec![("VOXBRIDGE_DNS_SERVER".into(), dns.addr.to_string())])
            .await;
    let caller = Sipp::uac("uac_invite_xheaders.xml", &env.sip, &env.host, &[]).finish(CALL).await;
    assert!(caller.success, "caller: {}\n{}", caller.errors, caller.messages);
    let callee = callee.finish(Duration::from_secs(10)).await;
    assert!(callee.success, "second SRV target: {}", callee.errors);
    let first = silent.received(Duration::from_millis(100)).await;
    assert!(first.iter().any(|m| m.starts_with("INVITE sip:bob@carrier.test")), "first SRV target tried: {first:?}");
}

#[tokio::test]
async fn on_answer_runs_its_ncco_on_the_callee_before_the_bridge() {
    let callee = Sipp::uas("uas_answer.xml", &[]);
    let env = SipEnv::start(json!([]), &["127.0.0.1"], None).await;
    // A whisper the media process can already run: a pause before the callee is bridged.
    env.app.set_document("/whisper", json!([{"action": "wait", "timeout": 1}]));
    env.app.set_ncco(json!([{"action": "connect", "endpoint": [{"type": "phone", "number": "15551230000",
        "onAnswer": {"url": format!("{}/whisper", env.app.base)}}]}]));
    provision(&env, json!([{"host": "127.0.0.1", "port": callee.port}]), json!({"credentials": null})).await;
    let caller = Sipp::uac("uac_invite_xheaders.xml", &env.sip, &env.host, &[]).finish(CALL).await;
    assert!(caller.success, "caller: {}\n{}", caller.errors, caller.messages);
    let callee = callee.finish(Duration::from_secs(10)).await;
    assert!(callee.success, "callee: {}\n{}", callee.errors, callee.messages);
    let whisper = env.app.events().into_iter().find(|e| e.path == "/whisper").expect("the whisper NCCO was fetched");
    assert_eq!((whisper.method.as_str(), whisper.param("to")), ("GET", Some("15551230000")));
    let outbound_uuid = env.app.leg_uuid("outbound");
    assert_eq!(whisper.param("uuid").map(str::to_owned), outbound_uuid, "asked for the callee's leg");
    // The caller was answered only after the callee's whisper (1 s).
    let at = |direction: &str| {
        env.app
            .events()
            .into_iter()
            .find(|e| e.body["direction"] == direction && e.body["status"] == "answered")
            .and_then(|e| e.body["timestamp"].as_str().and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok()))
    };
    let (callee_at, caller_at) = (at("outbound").expect("callee answered"), at("inbound").expect("caller answered"));
    assert!(caller_at - callee_at >= chrono::Duration::milliseconds(900), "{callee_at} → {caller_at}");
}

/// The account's trunk host, where PBXs register and send their calls.
const TRUNK_HOST: &str = "sip.voxbridge.local";

/// A PBX's call to `dest` from `caller_id`, answering the 407 with the account's key and
/// `secret` (`uac_digest.xml`).
fn pbx_call(env: &SipEnv, dest: &str, caller_id: &str, secret: &str) -> Sipp {
    let uri = format!("{dest}@{TRUNK_HOST}");
    let args = ["-key", "dest", dest, "-s", caller_id, "-au", vbtest::API_KEY, "-ap", secret, "-auth_uri", &uri];
    Sipp::uac("uac_digest.xml", &env.sip, TRUNK_HOST, &args)
}

#[tokio::test]
async fn a_pbx_registers_with_the_account_key_and_its_call_leaves_through_the_longest_prefix_trunk() {
    let carrier = Sipp::uas("uas_answer.xml", &[]);
    let wider = SilentGateway::bind().await;
    // The application answers calls to its numbers and waits (the on-net case below).
    let env = SipEnv::start(json!([{"action": "wait", "timeout": 5}]), &["10.0.0.0/8"], None).await;
    // "carrier" serves every +1 number; "us-west" the +1555 ones: the longer prefix wins.
    provision(&env, json!([{"host": "127.0.0.1", "port": wider.port()}]), json!({})).await;
    // Its first gateway is dead: the call fails over to the second.
    let dead = SilentGateway::bind().await;
    let trunk = json!({"name": "us-west", "prefixes": ["1555"], "gateways": [
        {"host": "127.0.0.1", "port": dead.port(), "priority": 0},
        {"host": "127.0.0.1", "port": carrier.port, "priority": 1}]});
    let (status, body) = env.server.post_json("/v1/trunks", trunk).await;
    assert_eq!(status, 201, "{body}");

    // `register => KEY:SECRET@sip.BASE`: 401, then bound (uac_register.xml holds it 3 s).
    let pbx = Sipp::uac(
        "uac_register.xml",
        &env.sip,
        TRUNK_HOST,
        &["-s", vbtest::API_KEY, "-ap", vbtest::API_SECRET, "-auth_uri", TRUNK_HOST],
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let listed = loop {
        let (status, listed) = env.server.get("/v1/registrations").await;
        assert_eq!(status, 200, "{listed}");
        if listed.as_array().is_some_and(|a| !a.is_empty()) || tokio::time::Instant::now() > deadline {
            break listed;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let registered = pbx.finish(CALL).await;
    assert_eq!(listed[0]["user"], vbtest::API_KEY, "{listed}: {}", registered.messages);
    assert!(registered.success, "{}\n{}", registered.errors, registered.messages);

    // The account's default application is told of PBX calls (an unknown one is refused).
    let (status, body) = env.server.put_json("/v1/account", json!({"default_application_id": "nope"})).await;
    vbtest::assert_problem(status, &body, 400, &["default_application_id"]);
    let (status, account) = env.server.put_json("/v1/account", json!({"default_application_id": env.app_id})).await;
    assert_eq!((status, account["trunk_host"].as_str()), (200, Some(TRUNK_HOST)), "{account}");
    assert_eq!(env.server.get("/v1/account").await.1["default_application_id"], env.app_id.as_str());

    // The PBX's call: challenged as a proxy challenges (407), then out through "us-west" with
    // the PBX's caller ID.
    let call = pbx_call(&env, "15551230000", "14155550100", vbtest::API_SECRET).finish(CALL).await;
    assert!(call.success, "the PBX's call was answered and hung up: {}\n{}", call.errors, call.messages);
    assert!(call.messages.contains("SIP/2.0 407"), "{}", call.messages);
    assert!(call.messages.contains("Proxy-Authenticate: Digest realm=\"sip.voxbridge.local\""), "{}", call.messages);
    let carrier = carrier.finish(CALL).await;
    assert!(carrier.success, "{}\n{}", carrier.errors, carrier.messages);
    assert!(carrier.messages.contains("INVITE sip:15551230000@127.0.0.1"), "{}", carrier.messages);
    assert!(carrier.messages.contains("From: <sip:14155550100@"), "{}", carrier.messages);
    assert!(wider.received(Duration::from_millis(200)).await.is_empty(), "the shorter prefix's trunk is not used");
    let at_dead = dead.received(Duration::from_millis(200)).await;
    assert!(at_dead.iter().any(|m| m.starts_with("INVITE sip:15551230000@")), "the dead gateway was tried first");
    assert!(env.app.wait_status("outbound", "completed", CALL).await, "{:?}", env.app.statuses("outbound"));
    assert!(env.app.wait_status("inbound", "completed", CALL).await, "{:?}", env.app.statuses("inbound"));
    assert!(env.app.answers().is_empty(), "the default application is told, never asked");
    let answered = env.app.events().into_iter().find(|e| e.body["status"] == "answered").expect("answered").body;
    assert_eq!((answered["to"].as_str(), answered["from"].as_str()), (Some("15551230000"), Some("14155550100")));

    // A call to one of the account's own numbers stays on the platform: its application runs.
    let (status, body) =
        env.server.post_json("/v1/numbers", json!({"number": "+14155550101", "application_id": env.app_id})).await;
    assert_eq!(status, 201, "{body}");
    let on_net = pbx_call(&env, "14155550101", "14155550100", vbtest::API_SECRET).finish(CALL).await;
    assert!(on_net.success, "the application answered: {}\n{}", on_net.errors, on_net.messages);
    let asked = env.app.answers().iter().any(|a| a.query.iter().any(|(k, v)| k == "to" && v.ends_with("14155550101")));
    assert!(
        asked,
        "answer_url was asked for the number: {:?}",
        env.app.answers().iter().map(|a| a.query.clone()).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn toll_fraud_on_the_trunk_host_never_reaches_a_carrier() {
    let trunk = SilentGateway::bind().await;
    let env = SipEnv::start(json!([]), &["10.0.0.0/8"], None).await;
    provision(&env, json!([{"host": "127.0.0.1", "port": trunk.port()}]), json!({})).await;
    let peer = RawSip::new(&env.sip).await;

    // No credentials: a proxy's challenge, nothing placed.
    let invite = peer.invite(&format!("sip:15551230000@{TRUNK_HOST}"), "pbx-fraud-1@test", 1, "", 40110);
    peer.send(&invite).await;
    let resp = peer.final_response(Duration::from_secs(5)).await.expect("answered");
    assert_eq!(resp.status(), Some(407), "{}", resp.0);
    assert!(
        resp.header("Proxy-Authenticate").is_some_and(|c| c.contains("realm=\"sip.voxbridge.local\"")),
        "{}",
        resp.0
    );
    peer.send(&peer.ack_for(&invite, &resp)).await;

    // A wrong secret: 403.
    let wrong = pbx_call(&env, "15551230000", "14155550100", "not-the-secret").finish(CALL).await;
    assert!(!wrong.success);
    assert!(wrong.messages.contains("SIP/2.0 403"), "{}", wrong.messages);
    // The right secret, but a caller ID the account does not own: 403 saying so.
    let stranger = pbx_call(&env, "15551230000", "15550009999", vbtest::API_SECRET).finish(CALL).await;
    assert!(
        stranger.messages.contains("SIP/2.0 403 caller ID 15550009999 is not one of the account's numbers"),
        "{}",
        stranger.messages
    );
    // A number no trunk serves: 404 saying so.
    let abroad = pbx_call(&env, "81312345678", "14155550100", vbtest::API_SECRET).finish(CALL).await;
    assert!(abroad.messages.contains("SIP/2.0 404 no trunk serves +81312345678"), "{}", abroad.messages);

    assert!(trunk.received(Duration::from_secs(1)).await.is_empty(), "nothing reached the trunk");
}

#[tokio::test]
async fn a_gateway_that_stops_answering_options_is_marked_down_and_skipped() {
    let dead = SilentGateway::bind().await;
    // The live gateway answers OPTIONS 200 and every INVITE 486, noting the INVITEs.
    let live = RawSip::new("127.0.0.1:9").await;
    let live_port = live.local.port();
    let mut invites = vbtest::raw::busy_but_alive(live);
    let qualify = vec![("VOXBRIDGE_TRUNK_QUALIFY_SECS".to_owned(), "1".to_owned())];
    let env = SipEnv::start_with_env(json!([]), &["127.0.0.1"], None, qualify).await;
    provision(
        &env,
        json!([{"host": "127.0.0.1", "port": dead.port(), "priority": 0},
               {"host": "127.0.0.1", "port": live_port, "priority": 1}]),
        json!({}),
    )
    .await;
    // Probes every second, 4 s each: the silent one is down after its second unanswered probe.
    let health = vbtest::eventually(Duration::from_secs(20), || async {
        let (_, trunks) = env.server.get("/v1/trunks").await;
        let health: Vec<String> = trunks["trunks"][0]["gateway_health"]
            .as_array()
            .map(|a| a.iter().map(|g| g["health"].as_str().unwrap_or_default().to_owned()).collect())
            .unwrap_or_default();
        if health == ["down", "up"] { Ok(health) } else { Err(health) }
    })
    .await;
    assert!(health.is_ok(), "{health:?}");
    let metrics = env.server.client.get(env.server.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let gauge = |port: u16, up: u8| {
        format!("voxbridge_trunk_gateway_up{{trunk=\"carrier\",gateway=\"127.0.0.1:{port}/udp\"}} {up}")
    };
    assert!(metrics.contains(&gauge(dead.port(), 0)) && metrics.contains(&gauge(live_port, 1)), "{metrics}");

    // A call to a phone now goes straight to the live gateway: the down one gets no INVITE.
    let (status, body) = vbtest::send(env.server.client.post(env.server.url("/v1/calls")).bearer_auth(env.jwt()).json(
        &json!({"to": [{"type": "phone", "number": "15551230000"}], "from": {"type": "phone", "number": "14155550100"},
                "ncco": [{"action": "talk", "text": "hello"}]}),
    ))
    .await;
    assert_eq!(status, 201, "{body}");
    let invite = tokio::time::timeout(Duration::from_secs(10), invites.recv()).await.expect("INVITE").unwrap();
    assert!(invite.0.starts_with("INVITE sip:15551230000@127.0.0.1"), "{}", invite.0);
    let at_dead = dead.received(Duration::from_secs(1)).await;
    assert!(at_dead.iter().all(|m| m.starts_with("OPTIONS ")), "only probes reach the down gateway: {at_dead:?}");
    assert!(!at_dead.is_empty(), "it is still probed");

    // It comes back: it answers the next probe and is up again.
    let revived = dead.0;
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        while let Ok((n, from)) = revived.recv_from(&mut buf).await {
            let msg = vbtest::raw::Msg(String::from_utf8_lossy(&buf[..n]).into_owned());
            if msg.method() == Some("OPTIONS") {
                let _ = revived.send_to(vbtest::raw::respond(&msg, 200, "OK", "gw", "", "").as_bytes(), from).await;
            }
        }
    });
    let revived = vbtest::eventually(Duration::from_secs(15), || async {
        let (_, trunks) = env.server.get("/v1/trunks").await;
        if trunks["trunks"][0]["gateway_health"][0]["health"] == "up" { Ok(()) } else { Err(trunks) }
    })
    .await;
    assert!(revived.is_ok(), "the revived gateway is up again: {revived:?}");
}

#[tokio::test]
async fn kamailio_as_a_pbx_registers_calls_out_through_the_trunk_and_takes_its_numbers_calls() {
    let carrier = Sipp::uas("uas_answer.xml", &[]);
    let extension = Sipp::uas("uas_answer.xml", &[]);
    let env = SipEnv::start(json!([]), &["127.0.0.1"], None).await;
    provision(&env, json!([{"host": "127.0.0.1", "port": carrier.port}]), json!({})).await;
    // The PBX's second number is forwarded to its trunk registration.
    let aor = format!("sip:{}@{TRUNK_HOST}", vbtest::API_KEY);
    let number = json!({"number": "+14155550111", "voice_callback_type": "sip", "voice_callback_value": aor});
    let (status, body) = env.server.post_json("/v1/numbers", number).await;
    assert_eq!(status, 201, "{body}");
    // Its one registration (uac_reg's db_text table): to the trunk host, through voxbridge.
    let db = vbtest::tempdir::Dir::new();
    let table = |name: &str| std::fs::read_to_string(format!("/usr/share/kamailio/dbtext/kamailio/{name}")).unwrap();
    let header = |name: &str| table(name).lines().next().unwrap_or_default().to_owned();
    std::fs::write(db.path().join("version"), format!("{}\n0:uacreg:5\n", header("version"))).unwrap();
    let ha1 =
        domains::digest::ha1(domains::digest::DigestAlgorithm::Md5, vbtest::API_KEY, TRUNK_HOST, vbtest::API_SECRET);
    let proxy = format!("sip\\:{}", env.sip.replace(':', "\\:"));
    let port = vbtest::sipp::free_port();
    let row = format!(
        "1:pbx:pbx:127.0.0.1:{key}:{TRUNK_HOST}:{TRUNK_HOST}:{key}:{secret}:{ha1}:{proxy}:600:0:0:127.0.0.1\\:{port}:udp\\:127.0.0.1\\:{port}",
        key = vbtest::API_KEY,
        secret = vbtest::API_SECRET
    );
    std::fs::write(db.path().join("uacreg"), format!("{}\n{row}\n", header("uacreg"))).unwrap();
    let db_dir = db.path().display().to_string();
    let pbx = vbtest::kamailio::Kamailio::start_at(
        port,
        "pbx-uac.cfg",
        extension.port,
        &[
            ("@VOXBRIDGE@", env.sip.as_str()),
            ("@KEY@", vbtest::API_KEY),
            ("@SECRET@", vbtest::API_SECRET),
            ("@REALM@", TRUNK_HOST),
            ("@DID@", "14155550100"),
            ("@DB_DIR@", db_dir.as_str()),
        ],
    );
    let contact = format!("sip:pbx@127.0.0.1:{}", pbx.port);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (_, listed) = env.server.get("/v1/registrations").await;
        if listed.as_array().is_some_and(|a| a.iter().any(|r| r["contact"] == contact.as_str())) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "Kamailio registered: {listed}\n{}", pbx.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // A phone behind the PBX calls a PSTN number: the PBX answers voxbridge's 407 with the
    // account's credentials and its DID as caller ID; the carrier gets the call.
    let call = vbtest::rtp::RawCall::try_place(
        &pbx.addr(),
        &format!("sip:15551230000@{}", pbx.addr()),
        vbtest::raw::sdp_offer,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", pbx.log()));
    assert_eq!(call.ok.status(), Some(200));
    let carrier = carrier.finish(Duration::from_secs(3)).await;
    assert!(carrier.messages.contains("INVITE sip:15551230000@127.0.0.1"), "{}", carrier.messages);
    assert!(carrier.messages.contains("From: <sip:14155550100@"), "the PBX's DID as CLI: {}", carrier.messages);

    // A call for the PBX's number reaches it over its registration, and its extension answers.
    let inbound =
        vbtest::rtp::RawCall::try_place(&env.sip, &format!("sip:+14155550111@{}", env.host), vbtest::raw::sdp_offer)
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", pbx.log()));
    assert_eq!(inbound.ok.status(), Some(200));
    let extension = extension.finish(Duration::from_secs(3)).await;
    assert!(extension.messages.contains(&format!("INVITE {contact}")), "{}", extension.messages);
}
