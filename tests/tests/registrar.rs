//! The registrar (RFC 3261 §10) for Programmable SIP domain users, against SIPp as the phone
//! (and a raw socket as a phone behind a NAT, which then takes a call to its `app` user):
//! digest on REGISTER, 423 with `Min-Expires` below the floor, the binding listed by the API
//! with the flow it came over, `*` unregistration, and a wrong password binding nothing;
//! every contact of an address of record rung at once, and a contact that stops answering
//! the OPTIONS probes marked down and not rung. SIPp's digest `uri` is its peer's address
//! unless `-auth_uri` names the Request-URI's host, which voxbridge requires (RFC 3261
//! §22.4), as a phone sends it.

use std::time::Duration;

use serde_json::Value;
use vbtest::SipEnv;
use vbtest::raw::RawSip;
use vbtest::sipp::Sipp;

const T: Duration = Duration::from_secs(30);
const PATH: &str = "/v1/psip/acme-sip/users/alice/registrations";

#[tokio::test]
async fn a_phone_registers_with_digest_is_listed_and_unregisters() {
    let env = SipEnv::start(Value::Null, &[], Some(("alice", "s3cr3t-long"))).await;
    let phone = Sipp::uac(
        "uac_register.xml",
        &env.sip,
        &env.host,
        &["-s", "alice", "-ap", "s3cr3t-long", "-auth_uri", &env.host],
    );
    let port = phone.port;
    // During the phone's 3 s hold, the binding is there, with the flow it came from.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let listed = loop {
        let (status, body) = env.server.get(PATH).await;
        assert_eq!(status, 200, "{body}");
        if body.as_array().is_some_and(|a| !a.is_empty()) || tokio::time::Instant::now() > deadline {
            break body;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    if listed.as_array().is_none_or(Vec::is_empty) {
        let done = phone.finish(T).await;
        panic!("no binding listed: {}\n{}", done.errors, done.messages);
    }
    let binding = &listed[0];
    assert_eq!(binding["contact"], format!("sip:alice@127.0.0.1:{port};transport=UDP"), "{listed}");
    assert_eq!(binding["flow"], format!("udp:127.0.0.1:{port}"));
    assert!((3590..=3600).contains(&binding["expires"].as_i64().unwrap()), "{binding}");
    let done = phone.finish(T).await;
    assert!(
        done.success,
        "401, 423 with Min-Expires, 200 with the binding, unregistered: {}\n{}",
        done.errors, done.messages
    );
    let (_, after) = env.server.get(PATH).await;
    assert_eq!(after, serde_json::json!([]), "Contact: * removed the binding");
    let (status, _) = env.server.get("/v1/psip/acme-sip/users/nobody/registrations").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_wrong_password_registers_nothing() {
    let env = SipEnv::start(Value::Null, &[], Some(("alice", "s3cr3t-long"))).await;
    let phone =
        Sipp::uac("uac_register.xml", &env.sip, &env.host, &["-s", "alice", "-ap", "guess", "-auth_uri", &env.host]);
    let done = phone.finish(T).await;
    assert!(!done.success, "the scenario expects 423 after its credentials; a wrong password gets 403");
    assert!(done.messages.contains("SIP/2.0 403"), "{}", done.messages);
    let (_, after) = env.server.get(PATH).await;
    assert_eq!(after, serde_json::json!([]));
}

/// A REGISTER from `phone` for alice, with `contact`, answering `challenge` when given.
fn register(phone: &RawSip, host: &str, cseq: u32, contact: &str, authorization: Option<String>) -> String {
    register_as(phone, "alice", host, cseq, contact, authorization)
}

fn register_as(
    phone: &RawSip,
    user: &str,
    host: &str,
    cseq: u32,
    contact: &str,
    authorization: Option<String>,
) -> String {
    let auth = authorization.map(|a| format!("Authorization: {a}\r\n")).unwrap_or_default();
    format!(
        "REGISTER sip:{host} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKreg{cseq};rport\r\nMax-Forwards: 70\r\n\
         From: <sip:{user}@{host}>;tag=phone\r\nTo: <sip:{user}@{host}>\r\nCall-ID: phone-reg@{local}\r\nCSeq: {cseq} REGISTER\r\n\
         Contact: <{contact}>\r\nExpires: 600\r\n{auth}Content-Length: 0\r\n\r\n",
        local = phone.local
    )
}

/// Registers `user` from `phone` with `contact`, answering the 401 with `secret`.
async fn registered(phone: &RawSip, user: &str, secret: &str, host: &str, contact: &str) {
    phone.send(&register_as(phone, user, host, 1, contact, None)).await;
    let challenge = phone.final_response(T).await.expect("401");
    assert_eq!(challenge.status(), Some(401), "{}", challenge.0);
    let challenge = domains::digest::Challenge::parse(&challenge.header("WWW-Authenticate").unwrap()).unwrap();
    let answer = challenge.answer(user, secret, "REGISTER", &format!("sip:{host}"), "phonecnonce", 1);
    phone.send(&register_as(phone, user, host, 2, contact, Some(answer))).await;
    let ok = phone.final_response(T).await.expect("200");
    assert_eq!(ok.status(), Some(200), "{}", ok.0);
}

#[tokio::test]
async fn a_number_forwarded_to_a_registered_pbx_rings_it_over_its_nat_flow() {
    let env = SipEnv::start(Value::Null, &["127.0.0.1"], None).await;
    let aor = format!("sip:{}@sip.voxbridge.local", vbtest::API_KEY);
    let (status, body) = env
        .server
        .post_json(
            "/v1/numbers",
            serde_json::json!({"number": "14155550100", "voice_callback_type": "sip", "voice_callback_value": aor}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let caller = RawSip::new(&env.sip).await;
    // Not registered yet: the call is refused with the reason, nothing is rung.
    let invite = caller.invite(&format!("sip:+14155550100@{}", env.host), "pbx-fwd-0@test", 1, "", 40120);
    caller.send(&invite).await;
    let refused = caller.final_response(T).await.expect("refused");
    assert_eq!(refused.status(), Some(480), "{}", refused.0);
    assert!(refused.header("Warning").is_some_and(|w| w.contains("not registered")), "{}", refused.0);
    caller.send(&caller.ack_for(&invite, &refused)).await;

    // The PBX registers on the trunk host with the account's key, from behind a NAT, from
    // two machines (an HA pair): both ring at once, the first to answer wins.
    let (pbx, standby) = (RawSip::new(&env.sip).await, RawSip::new(&env.sip).await);
    let contact = format!("sip:{}@10.255.255.9:5060", vbtest::API_KEY);
    let standby_contact = format!("sip:{}@10.255.255.10:5060", vbtest::API_KEY);
    registered(&pbx, vbtest::API_KEY, vbtest::API_SECRET, "sip.voxbridge.local", &contact).await;
    registered(&standby, vbtest::API_KEY, vbtest::API_SECRET, "sip.voxbridge.local", &standby_contact).await;
    let (status, listed) = env.server.get("/v1/registrations").await;
    assert_eq!(status, 200, "{listed}");
    let mut contacts: Vec<&str> =
        listed.as_array().map(|a| a.iter().filter_map(|b| b["contact"].as_str()).collect()).unwrap_or_default();
    contacts.sort_unstable();
    assert_eq!(contacts, [standby_contact.as_str(), contact.as_str()], "{listed}");

    let invite = caller.invite(&format!("sip:+14155550100@{}", env.host), "pbx-fwd-1@test", 1, "", 40122);
    caller.send(&invite).await;
    let (ringing, from) = standby.recv(T).await.expect("the standby is rung too");
    assert!(ringing.0.starts_with(&format!("INVITE {standby_contact} SIP/2.0")), "{}", ringing.0);
    let ring = vbtest::raw::respond(&ringing, 180, "Ringing", "standby", &standby_contact, "");
    standby.sock.send_to(ring.as_bytes(), from).await.unwrap();
    let rtp = vbtest::rtp::RtpPeer::bind().await;
    let (pbx_invite, _, _) = vbtest::rtp::answer_as_far_end(&pbx, rtp.local_addr().unwrap().port(), T).await;
    assert!(pbx_invite.0.starts_with(&format!("INVITE {contact} SIP/2.0")), "{}", pbx_invite.0);
    let answered = caller.final_response(T).await.expect("answered");
    assert_eq!(answered.status(), Some(200), "{}", answered.0);
    assert!(next_request(&standby, "CANCEL").await.is_some(), "the standby is cancelled once the PBX answers");
}

#[tokio::test]
async fn a_registered_contact_that_stops_answering_options_is_down_and_not_rung() {
    let qualify = vec![("VOXBRIDGE_TRUNK_QUALIFY_SECS".to_owned(), "1".to_owned())];
    let env = SipEnv::start_with_env(Value::Null, &[], Some(("alice", "s3cr3t-long")), qualify).await;
    let (desk, gone) = alice_on_two_phones(&env).await;
    // The desk phone stays up; the other one was unplugged and answers nothing.
    let mut desk_invites = vbtest::raw::busy_but_alive(desk);
    let health = vbtest::eventually(Duration::from_secs(20), || async {
        let (_, listed) = env.server.get(PATH).await;
        let health: Vec<String> = listed
            .as_array()
            .map(|a| a.iter().map(|b| b["health"].as_str().unwrap_or_default().to_owned()).collect())
            .unwrap_or_default();
        if health == ["up", "down"] { Ok(health) } else { Err(health) }
    })
    .await;
    assert!(health.is_ok(), "sorted by contact: the desk phone (.1) up, the unplugged one (.2) down: {health:?}");

    let create = env.server.client.post(env.server.url("/v1/calls")).bearer_auth(env.jwt()).json(&serde_json::json!({
        "to": [{"type": "app", "user": "alice"}], "from": {"type": "phone", "number": "14155550100"},
        "ncco": [{"action": "talk", "text": "Only the live phone rings."}]
    }));
    let (status, created) = vbtest::send(create).await;
    assert_eq!(status, 201, "{created}");
    let invite = tokio::time::timeout(T, desk_invites.recv()).await.expect("the desk phone is rung").unwrap();
    assert!(invite.0.starts_with("INVITE sip:alice@10.255.255.1:5060 SIP/2.0"), "{}", invite.0);
    // Probes keep coming (every second): what reaches the down contact in 3 s.
    let mut at_gone = Vec::new();
    let window = tokio::time::Instant::now() + Duration::from_secs(3);
    while let Some(left) = window.checked_duration_since(tokio::time::Instant::now())
        && let Some((m, _)) = gone.recv(left).await
    {
        at_gone.push(m.0);
    }
    assert!(!at_gone.is_empty(), "the down contact is still probed");
    assert!(at_gone.iter().all(|m| m.starts_with("OPTIONS sip:alice@10.255.255.2:5060 ")), "only probes: {at_gone:?}");
}

#[tokio::test]
async fn a_call_to_an_app_user_reaches_the_registered_phone_over_its_nat_flow() {
    let env = SipEnv::start(Value::Null, &[], Some(("alice", "s3cr3t-long"))).await;
    let (status, body) = env
        .server
        .post_json("/v1/numbers", serde_json::json!({"number": "+14155550100", "application_id": env.app_id}))
        .await;
    assert_eq!(status, 201, "{body}");
    // The phone sits behind a NAT: its Contact names a private address nobody can reach.
    let phone = RawSip::new(&env.sip).await;
    let contact = "sip:alice@10.255.255.1:5060";
    phone.send(&register(&phone, &env.host, 1, contact, None)).await;
    let challenge = phone.final_response(T).await.expect("401");
    assert_eq!(challenge.status(), Some(401));
    let challenge = domains::digest::Challenge::parse(&challenge.header("WWW-Authenticate").unwrap()).unwrap();
    let uri = format!("sip:{}", env.host);
    let answer = challenge.answer("alice", "s3cr3t-long", "REGISTER", &uri, "phonecnonce", 1);
    phone.send(&register(&phone, &env.host, 2, contact, Some(answer))).await;
    let ok = phone.final_response(T).await.expect("200");
    assert_eq!(ok.status(), Some(200), "{}", ok.0);
    assert!(ok.header("Contact").unwrap().contains("expires=600"), "{}", ok.0);

    // A call to the app user reaches the phone at the address its REGISTER came from.
    let rtp = vbtest::rtp::RtpPeer::bind().await;
    let create = |to: Value| {
        env.server.client.post(env.server.url("/v1/calls")).bearer_auth(env.jwt()).json(&serde_json::json!({
            "to": [to], "from": {"type": "phone", "number": "14155550100"},
            "ncco": [{"action": "talk", "text": "You have a visitor."}]
        }))
    };
    let (status, body) = vbtest::send(create(serde_json::json!({"type": "app", "user": "bob"}))).await;
    vbtest::assert_problem(status, &body, 400, &["to"]);
    assert!(body.to_string().contains("bob is not registered"), "{body}");
    let (status, created) = vbtest::send(create(serde_json::json!({"type": "app", "user": "alice"}))).await;
    assert_eq!(status, 201, "{created}");
    let (invite, _, _) = vbtest::rtp::answer_as_far_end(&phone, rtp.local_addr().unwrap().port(), T).await;
    assert!(invite.0.starts_with(&format!("INVITE {contact} SIP/2.0")), "{}", invite.0);
    assert!(env.app.wait_status("outbound", "answered", T).await, "{:?}", env.app.statuses("outbound"));
    // The NCCO ends after its talk: the phone gets the BYE on the same flow.
    assert!(next_request(&phone, "BYE").await.is_some(), "BYE reached the phone");
}

/// The next `method` request `phone` receives within `T` (others are skipped).
async fn next_request(phone: &RawSip, method: &str) -> Option<vbtest::raw::Msg> {
    let deadline = tokio::time::Instant::now() + T;
    loop {
        match phone.recv(Duration::from_secs(1)).await {
            Some((m, _)) if m.method() == Some(method) => return Some(m),
            _ if tokio::time::Instant::now() > deadline => return None,
            _ => {}
        }
    }
}

#[tokio::test]
async fn two_registered_phones_of_one_user_ring_together_and_the_first_answer_wins() {
    let env = SipEnv::start(Value::Null, &[], Some(("alice", "s3cr3t-long"))).await;
    let (desk, soft) = alice_on_two_phones(&env).await;
    assert_eq!(alice_bindings(&env).await, 2);
    let create = env.server.client.post(env.server.url("/v1/calls")).bearer_auth(env.jwt()).json(&serde_json::json!({
        "to": [{"type": "app", "user": "alice"}], "from": {"type": "phone", "number": "14155550100"},
        "ncco": [{"action": "talk", "text": "Both of your phones rang."}]
    }));
    let (status, created) = vbtest::send(create).await;
    assert_eq!(status, 201, "{created}");
    // Both ring; the softphone only rings, the desk phone answers.
    let (ringing, from) = soft.recv(T).await.expect("the softphone is rung too");
    assert_eq!(ringing.method(), Some("INVITE"), "{}", ringing.0);
    let ring = vbtest::raw::respond(&ringing, 180, "Ringing", "soft", "sip:alice@10.255.255.2:5060", "");
    soft.sock.send_to(ring.as_bytes(), from).await.unwrap();
    let rtp = vbtest::rtp::RtpPeer::bind().await;
    let (invite, _, _) = vbtest::rtp::answer_as_far_end(&desk, rtp.local_addr().unwrap().port(), T).await;
    assert!(invite.0.starts_with("INVITE sip:alice@10.255.255.1:5060 SIP/2.0"), "{}", invite.0);
    assert!(next_request(&soft, "CANCEL").await.is_some(), "the softphone is cancelled once the desk phone answers");
}

/// The app's number, and alice registered from two phones (contacts .1 and .2 of
/// 10.255.255.0, behind a NAT).
async fn alice_on_two_phones(env: &SipEnv) -> (RawSip, RawSip) {
    let (status, body) = env
        .server
        .post_json("/v1/numbers", serde_json::json!({"number": "+14155550100", "application_id": env.app_id}))
        .await;
    assert_eq!(status, 201, "{body}");
    let (one, two) = (RawSip::new(&env.sip).await, RawSip::new(&env.sip).await);
    registered(&one, "alice", "s3cr3t-long", &env.host, "sip:alice@10.255.255.1:5060").await;
    registered(&two, "alice", "s3cr3t-long", &env.host, "sip:alice@10.255.255.2:5060").await;
    (one, two)
}

async fn alice_bindings(env: &SipEnv) -> usize {
    let (_, listed) = env.server.get(PATH).await;
    listed.as_array().map_or(0, Vec::len)
}
