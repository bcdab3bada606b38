//! Real calls through voxbridge: SIPp (Debian's sip-tester) as the caller and as the far end,
//! the fake application answering with an NCCO that connects to the far end, and the separate
//! media process relaying RTP.

use std::time::Duration;

use serde_json::{Value, json};
use vbtest::SipEnv;
use vbtest::raw::{Msg, RawSip, respond, sdp_rtp_addr};
use vbtest::sipp::Sipp;

const CALL: Duration = Duration::from_secs(45);
const T: Duration = Duration::from_secs(10);

fn connect_to(port: u16) -> Value {
    json!([{
        "action": "connect",
        "timeout": 20,
        "endpoint": [{
            "type": "sip",
            "uri": format!("sip:bob@127.0.0.1:{port}"),
            "headers": {"Customer": "42", "X-Ticket": "T-7"},
            "standardHeaders": {"User-to-User": "56a390f3d2b7310023a2;encoding=hex"}
        }]
    }])
}

#[tokio::test]
async fn call_is_bridged_with_headers_events_and_records() {
    let callee = Sipp::uas("uas_answer.xml", &[]);
    let env = SipEnv::start(connect_to(callee.port), &["127.0.0.1"], None).await;
    let caller = Sipp::uac("uac_invite_xheaders.xml", &env.sip, &env.host, &[]);
    let caller = caller.finish(CALL).await;
    assert!(caller.success, "caller failed: {}\n{}", caller.errors, caller.messages);
    let callee = callee.finish(T).await;
    assert!(callee.success, "far end failed: {}\n{}", callee.errors, callee.messages);

    // The far end got the NCCO's headers as X- headers, and User-to-User.
    assert!(callee.messages.contains("X-Customer: 42"), "{}", callee.messages);
    assert!(callee.messages.contains("X-Ticket: T-7"));
    assert!(callee.messages.contains("User-to-User: 56a390f3d2b7310023a2;encoding=hex"));

    // answer_url got the caller's X- headers as SipHeader_X-*, and a JWT it can verify.
    let answers = env.app.answers();
    assert_eq!(answers.len(), 1);
    let a = &answers[0];
    assert_eq!(a.method, "GET");
    assert_eq!(a.param("SipHeader_X-UserId"), Some("ABC123"));
    assert_eq!(a.param("to"), Some("+14155550100"));
    assert_eq!(a.param("from"), Some("+14155550199"));
    assert!(a.param("conversation_uuid").unwrap().starts_with("CON-"));
    let uuid = a.param("uuid").unwrap().to_owned();
    let token = a.authorization.as_deref().and_then(|h| h.strip_prefix("Bearer ")).expect("signed answer request");
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.required_spec_claims.clear();
    let claims = jsonwebtoken::decode::<Value>(
        token,
        &jsonwebtoken::DecodingKey::from_secret(vbtest::SIGNATURE_SECRET.as_bytes()),
        &validation,
    )
    .expect("JWT verifies with the signature secret")
    .claims;
    assert_eq!(claims["application_id"], env.app_id.as_str());
    assert!(claims["jti"].is_string() && claims["iat"].is_number());

    // Events, in order, for both legs.
    assert!(env.app.wait_status("outbound", "completed", T).await, "{:?}", env.app.statuses("outbound"));
    assert!(env.app.wait_status("inbound", "completed", T).await, "{:?}", env.app.statuses("inbound"));
    assert_eq!(env.app.statuses("inbound"), ["started", "ringing", "answered", "completed"]);
    assert_eq!(env.app.statuses("outbound"), ["started", "ringing", "answered", "completed"]);
    let done = env.app.events().into_iter().find(|e| e.body["status"] == "completed").unwrap().body;
    for field in
        ["uuid", "conversation_uuid", "direction", "from", "to", "timestamp", "start_time", "end_time", "duration"]
    {
        assert!(done[field].is_string(), "completed event lacks {field}: {done}");
    }

    // Both legs are stored and visible through the Voice API.
    let calls = env.calls().await;
    assert_eq!(calls["count"], 2, "{calls}");
    let legs = calls["_embedded"]["calls"].as_array().unwrap();
    assert!(legs.iter().all(|l| l["status"] == "completed"), "{calls}");
    let (status, one) =
        vbtest::send(env.server.client.get(env.server.url(&format!("/v1/calls/{uuid}"))).bearer_auth(env.jwt())).await;
    assert_eq!(status, 200);
    assert_eq!((one["direction"].as_str(), one["to"]["number"].as_str()), (Some("inbound"), Some("+14155550100")));
}

#[tokio::test]
async fn far_end_hangs_up() {
    let callee = Sipp::uas("uas_answer_bye.xml", &[]);
    let env = SipEnv::start(connect_to(callee.port), &["127.0.0.1"], None).await;
    let caller = Sipp::uac("uac_invite_wait_bye.xml", &env.sip, &env.host, &[]).finish(CALL).await;
    assert!(caller.success, "caller did not get the relayed BYE: {}\n{}", caller.errors, caller.messages);
    let callee = callee.finish(T).await;
    assert!(callee.success, "{}\n{}", callee.errors, callee.messages);
    assert!(env.app.wait_status("inbound", "completed", T).await);
    // Once its transactions are over the call is gone, counted once.
    let deadline = std::time::Instant::now() + T;
    let active = loop {
        let text = env.server.client.get(env.server.url("/metrics")).send().await.unwrap().text().await.unwrap();
        let active = text.lines().find_map(|l| l.strip_prefix("voxbridge_sip_active_calls ")).map(str::to_owned);
        if active.as_deref() == Some("0") || std::time::Instant::now() > deadline {
            break active;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(active.as_deref(), Some("0"));
}

#[tokio::test]
async fn caller_cancels_while_far_end_rings() {
    let callee = Sipp::uas("uas_ring_cancel.xml", &[]);
    let env = SipEnv::start(connect_to(callee.port), &["127.0.0.1"], None).await;
    let caller = Sipp::uac("uac_cancel.xml", &env.sip, &env.host, &[]).finish(CALL).await;
    assert!(caller.success, "caller did not get 200/487: {}\n{}", caller.errors, caller.messages);
    let callee = callee.finish(T).await;
    assert!(callee.success, "far end was not cancelled: {}\n{}", callee.errors, callee.messages);
    assert!(env.app.wait_status("inbound", "cancelled", T).await, "{:?}", env.app.statuses("inbound"));
    assert!(env.app.wait_status("outbound", "cancelled", T).await, "{:?}", env.app.statuses("outbound"));
}

#[tokio::test]
async fn busy_far_end_is_reported() {
    // A far end that answers 486: the raw peer plays it.
    let far = RawSip::new("127.0.0.1:9").await;
    let port = far.local.port();
    let env = SipEnv::start(connect_to(port), &["127.0.0.1"], None).await;
    let caller = RawSip::new(&env.sip).await;
    let invite = caller.invite(&format!("sip:+14155550100@{}", env.host), "busy-1@test", 1, "", 40010);
    caller.send(&invite).await;
    let (inv, from) = far.recv(T).await.expect("INVITE reaches the far end");
    assert_eq!(inv.method(), Some("INVITE"));
    far.sock.send_to(respond(&inv, 486, "Busy Here", "far1", "", "").as_bytes(), from).await.unwrap();
    let (ack, _) = far.recv(T).await.expect("ACK for 486");
    assert_eq!(ack.method(), Some("ACK"));
    let fin = caller.final_response(T).await.unwrap();
    assert_eq!(fin.status(), Some(486));
    assert!(env.app.wait_status("outbound", "busy", T).await, "{:?}", env.app.statuses("outbound"));
}

/// A far end on a raw socket that answers with PCMU, then counts the RTP packets reaching it.
async fn answering_far_end(far: &RawSip, rtp: &tokio::net::UdpSocket) -> (Msg, std::net::SocketAddr, Msg) {
    vbtest::rtp::answer_as_far_end(far, rtp.local_addr().unwrap().port(), T).await
}

async fn count_rtp(rtp: &tokio::net::UdpSocket, within: Duration) -> (usize, Option<std::net::SocketAddr>) {
    let mut buf = [0u8; 2048];
    let mut n = 0;
    let mut source = None;
    let deadline = tokio::time::Instant::now() + within;
    while let Ok(Ok((len, from))) =
        tokio::time::timeout(deadline.saturating_duration_since(tokio::time::Instant::now()), rtp.recv_from(&mut buf))
            .await
    {
        if len >= 12 && buf[0] >> 6 == 2 {
            n += 1;
            source = Some(from);
        }
    }
    (n, source)
}

#[tokio::test]
async fn audio_is_relayed_through_the_media_process() {
    let far = RawSip::new("127.0.0.1:9").await;
    let rtp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let env = SipEnv::start(connect_to(far.local.port()), &["127.0.0.1"], None).await;
    // The caller: SIPp playing a PCMA speech capture (7 s, 236 packets) from its raw socket.
    let caller = Sipp::pcap_caller(&env.sip, &env.host);
    let (_inv, _from, _ack) = answering_far_end(&far, &rtp).await;
    let (packets, source) = count_rtp(&rtp, Duration::from_secs(6)).await;
    assert!(packets > 100, "only {packets} RTP packets reached the far end");
    // Relayed from the media process, not straight from the caller.
    let offer_addr = sdp_rtp_addr(_inv.body()).expect("offer has an RTP address");
    assert_eq!(source.map(|s| s.port()), Some(offer_addr.port()), "RTP comes from the port voxbridge offered");
    // Answer the caller's BYE relay.
    if let Some((bye, from)) = far.recv(Duration::from_secs(15)).await
        && bye.method() == Some("BYE")
    {
        far.sock.send_to(respond(&bye, 200, "OK", "", "", "").as_bytes(), from).await.unwrap();
    }
    let caller = caller.finish(CALL).await;
    assert!(caller.success, "{}\n{}", caller.errors, caller.messages);
}

#[tokio::test]
async fn media_process_death_ends_calls_with_byes() {
    let far = RawSip::new("127.0.0.1:9").await;
    let rtp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let env = SipEnv::start(connect_to(far.local.port()), &["127.0.0.1"], None).await;
    let caller = Sipp::uac("uac_invite_wait_bye.xml", &env.sip, &env.host, &[]);
    answering_far_end(&far, &rtp).await;
    assert!(env.app.wait_status("inbound", "answered", T).await);
    // Kill the media process the server started.
    let killed = std::process::Command::new("pkill")
        .args(["-KILL", "-P", &env.server.pid().to_string(), "voxbridge-media"])
        .status()
        .unwrap();
    assert!(killed.success(), "no media process found");
    let (bye, from) = far.recv(T).await.expect("far end gets a BYE");
    assert_eq!(bye.method(), Some("BYE"));
    far.sock.send_to(respond(&bye, 200, "OK", "", "", "").as_bytes(), from).await.unwrap();
    let caller = caller.finish(CALL).await;
    assert!(caller.success, "caller did not get a BYE: {}\n{}", caller.errors, caller.messages);
    assert!(env.app.wait_status("inbound", "completed", T).await);
    assert!(env.app.wait_status("outbound", "completed", T).await);
    // A new media process is started and new calls are served again (here: refused by the
    // application's talk-only NCCO with 480 rather than 503).
    env.app.set_ncco(json!([{"action": "talk", "text": "back"}]));
    let mut served = false;
    for _ in 0..50 {
        let peer = RawSip::new(&env.sip).await;
        let invite =
            peer.invite(&format!("sip:+1415@{}", env.host), &format!("{}@t", uuid::Uuid::new_v4()), 1, "", 40020);
        peer.send(&invite).await;
        let fin = peer.final_response(T).await.unwrap();
        peer.send(&peer.ack_for(&invite, &fin)).await;
        if fin.status() != Some(503) {
            served = true;
            break;
        }
        assert!(fin.header("Retry-After").is_some(), "503 carries Retry-After");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(served, "media process not restarted");
}

#[tokio::test]
async fn digest_authenticated_caller_is_connected() {
    let callee = Sipp::uas("uas_answer.xml", &[]);
    let env = SipEnv::start(connect_to(callee.port), &["10.0.0.0/8"], Some(("alice", "s3cr3t-pass"))).await;
    // SIPp puts "sip:" in front of -auth_uri itself.
    let uri = format!("+14155550100@{}", env.host);
    let caller = Sipp::uac(
        "uac_digest.xml",
        &env.sip,
        &env.host,
        &["-key", "dest", "+14155550100", "-s", "alice", "-ap", "s3cr3t-pass", "-auth_uri", &uri],
    )
    .finish(CALL)
    .await;
    assert!(caller.success, "digest caller failed: {}\n{}", caller.errors, caller.messages);
    assert!(caller.messages.contains("SIP/2.0 401"), "the first INVITE was challenged");
    let callee = callee.finish(T).await;
    assert!(callee.success, "{}\n{}", callee.errors, callee.messages);
    assert!(env.app.wait_status("inbound", "completed", T).await);
}

#[tokio::test]
async fn hold_on_one_leg_is_reflected_to_the_other() {
    let far = RawSip::new("127.0.0.1:9").await;
    let far_rtp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let env = SipEnv::start(connect_to(far.local.port()), &["127.0.0.1"], None).await;
    let caller = RawSip::new(&env.sip).await;
    let invite = caller.invite(&format!("sip:+14155550100@{}", env.host), "hold-1@test", 1, "", 40040);
    caller.send(&invite).await;
    let (b_invite, _, _) = answering_far_end(&far, &far_rtp).await;
    let ok = caller.final_response(T).await.expect("caller answered");
    assert_eq!(ok.status(), Some(200));
    let inv = Msg(invite.clone());
    let contact = ok.header("Contact").unwrap();
    let target = contact.trim_start_matches('<').split('>').next().unwrap().to_owned();
    caller
        .send(&format!(
            "ACK {target} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bKack1\r\nFrom: {}\r\nTo: {}\r\nCall-ID: hold-1@test\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
            caller.local,
            inv.header("From").unwrap(),
            ok.header("To").unwrap()
        ))
        .await;

    // The far end puts the call on hold (sendonly) with a re-INVITE in its dialog.
    let vb_contact = b_invite.header("Contact").unwrap();
    let vb_target = vb_contact.trim_start_matches('<').split('>').next().unwrap().to_owned();
    // A new offer in the dialog: o= version up by one (RFC 3264 §8), direction sendonly.
    let hold_sdp = vbtest::raw::sdp_offer(far_rtp.local_addr().unwrap().port())
        .replace("a=sendrecv", "a=sendonly")
        .replace("o=raw 1 1", "o=raw 1 2");
    let reinvite = format!(
        "INVITE {vb_target} SIP/2.0\r\nVia: SIP/2.0/UDP {l};branch=z9hG4bKhold1\r\nFrom: {to};tag=far1\r\nTo: {from}\r\n\
         Call-ID: {cid}\r\nCSeq: 2 INVITE\r\nContact: <sip:far@{l}>\r\nContent-Type: application/sdp\r\nContent-Length: {len}\r\n\r\n{hold_sdp}",
        l = far.local,
        to = b_invite.header("To").unwrap(),
        from = b_invite.header("From").unwrap(),
        cid = b_invite.header("Call-ID").unwrap(),
        len = hold_sdp.len()
    );
    far.sock.send_to(reinvite.as_bytes(), env.sip.as_str()).await.unwrap();
    let answer = far.final_response(T).await.expect("re-INVITE answered");
    assert_eq!(answer.status(), Some(200), "{}", answer.0);
    assert!(answer.body().contains("a=recvonly"), "hold answered recvonly: {}", answer.body());

    // The caller's leg gets the same direction in a re-INVITE from voxbridge.
    let (reflected, from) = caller.recv(T).await.expect("re-INVITE towards the caller");
    assert_eq!(reflected.method(), Some("INVITE"), "{}", reflected.0);
    assert!(reflected.body().contains("a=sendonly"), "{}", reflected.body());
    let answer = vbtest::raw::sdp_offer(40040).replace("a=sendrecv", "a=recvonly");
    caller
        .sock
        .send_to(respond(&reflected, 200, "OK", "", &format!("sip:c@{}", caller.local), &answer).as_bytes(), from)
        .await
        .unwrap();
    let (ack, _) = caller.recv(T).await.expect("ACK for the reflected re-INVITE");
    assert_eq!(ack.method(), Some("ACK"));
}

#[tokio::test]
async fn number_forwarded_to_sip_honours_its_timeout() {
    let far = RawSip::new("127.0.0.1:9").await;
    let env = SipEnv::start(json!([{"action": "talk", "text": "not used"}]), &["127.0.0.1"], None).await;
    let (status, body) = env
        .server
        .post_json(
            "/v1/numbers",
            json!({"number": "14155550100", "voice_callback_type": "sip",
                   "voice_callback_value": format!("sip:desk@127.0.0.1:{};timeout=2000", far.local.port())}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let caller = RawSip::new(&env.sip).await;
    let invite = caller.invite(&format!("sip:+14155550100@{}", env.host), "fwd-1@test", 1, "", 40070);
    caller.send(&invite).await;
    // The forwarding target rings but never answers: after ;timeout=2000 the call gives up.
    let (inv, from) = far.recv(T).await.expect("INVITE forwarded");
    assert!(inv.0.starts_with("INVITE sip:desk@127.0.0.1"), "{}", inv.0);
    far.sock.send_to(respond(&inv, 180, "Ringing", "fwd1", "", "").as_bytes(), from).await.unwrap();
    let started = std::time::Instant::now();
    let (cancel, from) = far.recv(T).await.expect("CANCEL after the ringing timeout");
    assert_eq!(cancel.method(), Some("CANCEL"));
    assert!(started.elapsed() < Duration::from_secs(6), "ringing timeout honoured");
    far.sock.send_to(respond(&cancel, 200, "OK", "fwd1", "", "").as_bytes(), from).await.unwrap();
    far.sock.send_to(respond(&inv, 487, "Request Terminated", "fwd1", "", "").as_bytes(), from).await.unwrap();
    let fin = caller.final_response(T).await.expect("caller told");
    assert_eq!(fin.status(), Some(480));
    assert!(env.app.answers().is_empty(), "a forwarded number does not run the domain's application");
}

/// Waits for a BYE at the raw far end and answers it.
async fn far_end_gets_bye(far: &RawSip, within: Duration) {
    let (bye, from) = far.recv(within).await.expect("far end gets a BYE");
    assert_eq!(bye.method(), Some("BYE"), "{}", bye.0);
    far.sock.send_to(respond(&bye, 200, "OK", "", "", "").as_bytes(), from).await.unwrap();
}

#[tokio::test]
async fn connect_limit_ends_the_call() {
    let far = RawSip::new("127.0.0.1:9").await;
    let rtp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let ncco = json!([{"action": "connect", "limit": 2, "endpoint": [{"type": "sip", "uri": format!("sip:bob@127.0.0.1:{}", far.local.port())}]}]);
    let env = SipEnv::start(ncco, &["127.0.0.1"], None).await;
    let caller = Sipp::uac("uac_invite_wait_bye.xml", &env.sip, &env.host, &[]);
    answering_far_end(&far, &rtp).await;
    far_end_gets_bye(&far, T).await;
    let caller = caller.finish(CALL).await;
    assert!(caller.success, "caller did not get the BYE: {}\n{}", caller.errors, caller.messages);
    assert!(env.app.wait_status("inbound", "completed", T).await);
    let done = env.app.events().into_iter().find(|e| e.body["status"] == "completed").unwrap().body;
    assert_eq!(done["disconnected_by"], "platform", "{done}");
}

#[tokio::test]
async fn rtp_inactivity_ends_the_call() {
    let far = RawSip::new("127.0.0.1:9").await;
    let rtp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    // Nobody sends RTP in this call; the media process gives up after 2 s.
    let env = SipEnv::start_with_env(
        connect_to(far.local.port()),
        &["127.0.0.1"],
        None,
        vec![("VOXBRIDGE_MEDIA_RTP_TIMEOUT".into(), "2".into())],
    )
    .await;
    let caller = Sipp::uac("uac_invite_wait_bye.xml", &env.sip, &env.host, &[]);
    answering_far_end(&far, &rtp).await;
    far_end_gets_bye(&far, T).await;
    let caller = caller.finish(CALL).await;
    assert!(caller.success, "caller did not get the BYE: {}\n{}", caller.errors, caller.messages);
    assert!(env.app.wait_status("outbound", "completed", T).await);
}

#[tokio::test]
async fn callee_requiring_100rel_gets_its_prack() {
    let callee = Sipp::uas("uas_100rel.xml", &[]);
    let env = SipEnv::start(connect_to(callee.port), &["127.0.0.1"], None).await;
    let caller = Sipp::uac("uac_invite_xheaders.xml", &env.sip, &env.host, &[]).finish(CALL).await;
    let callee = callee.finish(T).await;
    assert!(
        caller.success,
        "caller: {}\n{}\ncallee: {}\n{}",
        caller.errors, caller.messages, callee.errors, callee.messages
    );
    assert!(callee.success, "the 100rel far end: {}\n{}", callee.errors, callee.messages);
    assert!(callee.messages.contains("RAck: 1 1 INVITE"), "{}", callee.messages);
    assert!(callee.messages.contains("Supported: 100rel"), "{}", callee.messages);
}

#[tokio::test]
async fn caller_requiring_100rel_and_session_timers_is_served() {
    let callee = Sipp::uas("uas_answer.xml", &[]);
    let env = SipEnv::start(connect_to(callee.port), &["127.0.0.1"], None).await;
    let caller = Sipp::uac("uac_100rel.xml", &env.sip, &env.host, &[]).finish(CALL).await;
    assert!(caller.success, "caller: {}\n{}", caller.errors, caller.messages);
    assert!(caller.messages.contains("RSeq: 1"), "{}", caller.messages);
    assert!(caller.messages.contains("Require: 100rel"), "{}", caller.messages);
    let callee = callee.finish(T).await;
    assert!(callee.success, "{}", callee.errors);
}

/// `PUT /v1/calls/{uuid}` as the application.
fn update_call(env: &SipEnv, uuid: &str, body: Value) -> reqwest::RequestBuilder {
    env.server.client.put(env.server.url(&format!("/v1/calls/{uuid}"))).bearer_auth(env.jwt()).json(&body)
}

#[tokio::test]
async fn voice_api_hangup_ends_a_live_call() {
    let callee = Sipp::uas("uas_answer.xml", &[]);
    let env = SipEnv::start(connect_to(callee.port), &["127.0.0.1"], None).await;
    let caller = Sipp::uac("uac_invite_wait_bye.xml", &env.sip, &env.host, &[]);
    assert!(env.app.wait_status("inbound", "answered", T).await, "{:?}", env.app.statuses("inbound"));
    let uuid = env.app.leg_uuid("inbound").expect("inbound uuid");
    let put = |uuid: &str, body: Value| update_call(&env, uuid, body);
    let (status, body) = vbtest::send(put(&uuid, json!({"action": "dance"}))).await;
    vbtest::assert_problem(status, &body, 400, &["action"]);
    let (status, body) = vbtest::send(put(&uuid, json!({"action": "hangup"}))).await;
    assert_eq!(status, 204, "{body}");
    let caller = caller.finish(CALL).await;
    assert!(caller.success, "the caller got the BYE: {}\n{}", caller.errors, caller.messages);
    let callee = callee.finish(T).await;
    assert!(callee.success, "the callee got the BYE: {}", callee.errors);
    assert!(env.app.wait_status("inbound", "completed", T).await);
    let done =
        env.app.events().into_iter().find(|e| e.body["status"] == "completed" && e.body["uuid"] == uuid.as_str());
    assert_eq!(done.map(|e| e.body["disconnected_by"].clone()), Some(json!("platform")));
    // Over: a second hangup is refused; an unknown uuid is not found.
    let (status, body) = vbtest::send(put(&uuid, json!({"action": "hangup"}))).await;
    vbtest::assert_problem(status, &body, 400, &[]);
    let (status, _) = vbtest::send(put("00000000-0000-4000-8000-000000000000", json!({"action": "hangup"}))).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn parallel_sip_endpoints_first_answer_wins_and_the_other_is_cancelled() {
    let ringing = Sipp::uas("uas_ring_cancel.xml", &[]);
    let answering = Sipp::uas("uas_answer.xml", &[]);
    let ncco = json!([{"action": "connect", "timeout": 20, "endpoint": [
        {"type": "sip", "uri": format!("sip:ringing@127.0.0.1:{}", ringing.port)},
        {"type": "sip", "uri": format!("sip:answering@127.0.0.1:{}", answering.port)},
    ]}]);
    let env = SipEnv::start(ncco, &["127.0.0.1"], None).await;
    let caller = Sipp::uac("uac_invite_xheaders.xml", &env.sip, &env.host, &[]).finish(CALL).await;
    assert!(caller.success, "caller: {}\n{}", caller.errors, caller.messages);
    let answering = answering.finish(T).await;
    assert!(answering.success, "the answering far end: {}\n{}", answering.errors, answering.messages);
    let ringing = ringing.finish(T).await;
    assert!(ringing.success, "the ringing far end got CANCEL: {}\n{}", ringing.errors, ringing.messages);
    assert!(env.app.wait_status("inbound", "completed", T).await, "{:?}", env.app.statuses("inbound"));
    let outbound = env.app.statuses("outbound");
    assert!(env.app.wait_status("outbound", "cancelled", T).await, "{outbound:?}");
    assert!(env.app.wait_status("outbound", "completed", T).await, "{:?}", env.app.statuses("outbound"));
}

#[tokio::test]
async fn session_refreshed_by_voxbridge_when_the_caller_asks_it_to() {
    // RFC 4028 with refresher=uas and the smallest interval we accept (Min-SE 90 s): the UPDATE
    // comes at half of it, so this test takes about 47 s.
    let callee = Sipp::uas("uas_answer.xml", &["-timeout", "90s"]);
    let env = SipEnv::start(connect_to(callee.port), &["127.0.0.1"], None).await;
    let caller = Sipp::uac("uac_session_refresh.xml", &env.sip, &env.host, &["-timeout", "80s"])
        .finish(Duration::from_secs(85))
        .await;
    assert!(caller.success, "caller: {}\n{}", caller.errors, caller.messages);
    assert!(caller.messages.contains("UPDATE sip:"), "{}", caller.messages);
    let callee = callee.finish(T).await;
    assert!(callee.success, "{}\n{}", callee.errors, callee.messages);
    assert!(env.app.wait_status("inbound", "completed", T).await, "{:?}", env.app.statuses("inbound"));
}

#[tokio::test]
async fn voice_api_transfer_moves_the_caller_to_a_new_ncco() {
    let callee = Sipp::uas("uas_answer.xml", &[]);
    let env = SipEnv::start(connect_to(callee.port), &["127.0.0.1"], None).await;
    let caller = Sipp::uac("uac_invite_wait_bye.xml", &env.sip, &env.host, &[]);
    assert!(env.app.wait_status("outbound", "answered", T).await, "{:?}", env.app.statuses("outbound"));
    let inbound = env.app.leg_uuid("inbound").expect("inbound uuid");
    let outbound = env.app.leg_uuid("outbound").expect("outbound uuid");
    let put = |uuid: &str, body: Value| update_call(&env, uuid, body);
    let transfer =
        |ncco: serde_json::Value| json!({"action": "transfer", "destination": {"type": "ncco", "ncco": ncco}});
    // Refused before anything changes: a bad NCCO (the problem points into it), no
    // destination, an outbound leg.
    let (status, body) = vbtest::send(put(&inbound, transfer(json!([{"action": "dance"}])))).await;
    vbtest::assert_problem(status, &body, 400, &["destination.ncco/0/action"]);
    let (status, body) = vbtest::send(put(&inbound, json!({"action": "transfer"}))).await;
    vbtest::assert_problem(status, &body, 400, &["destination"]);
    let (status, body) = vbtest::send(put(&outbound, transfer(json!([{"action": "wait"}])))).await;
    vbtest::assert_problem(status, &body, 400, &["action"]);
    // The caller leaves the connect (the callee gets BYE), waits 1 s, and the NCCO ends.
    let (status, body) = vbtest::send(put(&inbound, transfer(json!([{"action": "wait", "timeout": 1}])))).await;
    assert_eq!(status, 204, "{body}");
    let callee = callee.finish(T).await;
    assert!(callee.success, "the callee got the BYE: {}", callee.errors);
    let caller = caller.finish(CALL).await;
    assert!(caller.success, "the caller got the BYE: {}\n{}", caller.errors, caller.messages);
    assert!(env.app.wait_status("inbound", "completed", T).await);
    let moved = env.app.events().into_iter().find(|e| e.body.get("conversation_uuid_to").is_some()).map(|e| e.body);
    let moved = moved.expect("a transfer event");
    assert_eq!(moved["uuid"], inbound.as_str());
    assert_ne!(moved["conversation_uuid_from"], moved["conversation_uuid_to"]);
}

#[tokio::test]
async fn a_pbx_callee_blind_transfers_the_caller_with_refer() {
    let carol = Sipp::uas("uas_answer.xml", &[]);
    let target = format!("carol@127.0.0.1:{}", carol.port);
    let pbx = Sipp::uas("uas_refer.xml", &["-key", "refer_to", &target]);
    let ncco = json!([{"action": "connect", "limit": 6,
                       "endpoint": [{"type": "sip", "uri": format!("sip:bob@127.0.0.1:{}", pbx.port)}]}]);
    let env = SipEnv::start(ncco, &["127.0.0.1"], None).await;
    // The caller stays up through the transfer until the connect's limit hangs it up.
    let caller = Sipp::uac("uac_invite_wait_bye.xml", &env.sip, &env.host, &[]).finish(CALL).await;
    assert!(caller.success, "the caller was transferred, then hung up: {}\n{}", caller.errors, caller.messages);
    let pbx = pbx.finish(T).await;
    assert!(pbx.success, "202, two NOTIFYs, then BYE: {}\n{}", pbx.errors, pbx.messages);
    assert!(pbx.messages.matches("Content-Type: message/sipfrag").count() >= 2, "{}", pbx.messages);
    assert!(pbx.messages.contains("Subscription-State: terminated"), "{}", pbx.messages);
    let carol = carol.finish(T).await;
    assert!(carol.success, "the target answered and got the BYE: {}\n{}", carol.errors, carol.messages);
    assert!(carol.messages.contains(&format!("INVITE sip:{target}")), "{}", carol.messages);
}
