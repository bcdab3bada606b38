//! Calls placed over the Voice API (`POST /v1/calls`), end to end: SIPp answers a call to a
//! SIP URI and is hung up by `PUT`; the answer_url form is asked when the callee answers, and
//! the call is transferred to an inline NCCO and to a URL; `PUT …/talk` and `…/dtmf` reach a
//! far end on real RTP (speech, RFC 4733 events); a `phone` call goes out through a SIPp trunk
//! with the account's number as caller ID; the calls-per-second budget answers 429; and every
//! bad field is named.

use std::time::Duration;

use serde_json::{Value, json};
use vbtest::SipEnv;
use vbtest::raw::RawSip;
use vbtest::rtp::{Packet, decode_pcmu, rms};
use vbtest::sipp::Sipp;

const T: Duration = Duration::from_secs(15);
const NUMBER: &str = "14155550100";

async fn env_with(env: Vec<(String, String)>) -> SipEnv {
    let env = SipEnv::start_with_env(Value::Null, &["127.0.0.1"], None, env).await;
    let (status, body) = env
        .server
        .post_json("/v1/numbers", json!({"number": format!("+{NUMBER}"), "application_id": env.app_id}))
        .await;
    assert_eq!(status, 201, "{body}");
    env
}

async fn env() -> SipEnv {
    env_with(vec![]).await
}

fn create(env: &SipEnv, body: Value) -> reqwest::RequestBuilder {
    env.server.client.post(env.server.url("/v1/calls")).bearer_auth(env.jwt()).json(&body)
}

fn update(env: &SipEnv, uuid: &str, body: Value) -> reqwest::RequestBuilder {
    env.server.client.put(env.server.url(&format!("/v1/calls/{uuid}"))).bearer_auth(env.jwt()).json(&body)
}

async fn get(env: &SipEnv, uuid: &str) -> (u16, Value) {
    vbtest::send(env.server.client.get(env.server.url(&format!("/v1/calls/{uuid}"))).bearer_auth(env.jwt())).await
}

fn to_sip(port: u16) -> Value {
    json!([{"type": "sip", "uri": format!("sip:bob@127.0.0.1:{port}")}])
}

fn from() -> Value {
    json!({"type": "phone", "number": NUMBER})
}

/// Places a call and returns its uuid, checking Vonage's 201 body.
async fn place(env: &SipEnv, body: Value) -> String {
    let (status, created) = vbtest::send(create(env, body)).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!((created["status"].as_str(), created["direction"].as_str()), (Some("started"), Some("outbound")));
    assert!(created["conversation_uuid"].as_str().is_some_and(|c| c.starts_with("CON-")), "{created}");
    created["uuid"].as_str().expect("uuid").to_owned()
}

async fn wait_for(env: &SipEnv, status: &str) -> bool {
    env.app.wait_status("outbound", status, T).await
}

#[tokio::test]
async fn a_call_to_sipp_answers_runs_its_ncco_and_is_hung_up_by_put() {
    let callee = Sipp::uas("uas_answer.xml", &[]);
    let port = callee.port;
    let env = env().await;
    let ncco = json!([{"action": "talk", "text": "Hello from the Voice API"}, {"action": "wait", "timeout": 60}]);
    let uuid = place(&env, json!({"to": to_sip(port), "from": from(), "ncco": ncco})).await;
    // Found at once, as Vonage shows it.
    let (status, row) = get(&env, &uuid).await;
    assert_eq!(status, 200, "{row}");
    assert_eq!(row["direction"], "outbound");
    assert!(wait_for(&env, "answered").await, "{:?}", env.app.statuses("outbound"));
    let (status, row) = get(&env, &uuid).await;
    assert_eq!((status, row["status"].as_str()), (200, Some("answered")), "{row}");
    // The callee hears the talk, then is hung up through the API.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, body) = vbtest::send(update(&env, &uuid, json!({"action": "hangup"}))).await;
    assert_eq!(status, 204, "{body}");
    let callee = callee.finish(T).await;
    assert!(callee.success, "SIPp got the BYE: {}\n{}", callee.errors, callee.messages);
    assert!(callee.messages.contains(&format!("From: <sip:{NUMBER}@")), "caller ID is the number: {}", callee.messages);
    assert!(wait_for(&env, "completed").await);
    assert_eq!(env.app.statuses("outbound"), ["started", "ringing", "answered", "completed"]);
    assert!(env.app.events().iter().all(|e| e.body["uuid"] == uuid.as_str()), "one uuid for the call's events");
    let done = env.app.events().into_iter().find(|e| e.body["status"] == "completed").unwrap().body;
    assert_eq!((done["disconnected_by"].as_str(), done["sip_code"].as_u64()), (Some("platform"), Some(200)));
    let (_, row) = get(&env, &uuid).await;
    assert_eq!((row["status"].as_str(), row["sip_code"].as_u64()), (Some("completed"), Some(200)), "{row}");
    assert_eq!(
        (row["to"]["type"].as_str(), row["to"]["uri"].as_str()),
        (Some("sip"), Some(&*format!("sip:bob@127.0.0.1:{port}")))
    );
    assert!(env.app.answers().is_empty(), "an inline NCCO asks no answer_url");
    // An ended call is refused with a problem.
    let (status, body) = vbtest::send(update(&env, &uuid, json!({"action": "hangup"}))).await;
    vbtest::assert_problem(status, &body, 400, &[]);
}

#[tokio::test]
async fn answer_url_is_asked_on_answer_and_the_call_is_transferred_to_an_ncco_and_a_url() {
    let callee = Sipp::uas("uas_answer.xml", &[]);
    let env = env().await;
    env.app.set_document("/outbound-answer", json!([{"action": "wait", "timeout": 60}]));
    env.app.set_document("/moved", json!([{"action": "wait", "timeout": 1}]));
    let answer_url = format!("{}/outbound-answer", env.app.base);
    let event_url = format!("{}/outbound-events", env.app.base);
    let uuid = place(
        &env,
        json!({"to": to_sip(callee.port), "from": from(), "answer_url": [answer_url], "event_url": [event_url]}),
    )
    .await;
    let deadline = tokio::time::Instant::now() + T;
    let asked = loop {
        let fetched: Vec<_> = env.app.events().into_iter().filter(|e| e.path == "/outbound-answer").collect();
        if let Some(first) = fetched.into_iter().next() {
            break Some(first);
        }
        if tokio::time::Instant::now() > deadline {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let asked = asked.expect("the request's answer_url was asked");
    assert_eq!(asked.method, "GET");
    assert_eq!(asked.param("uuid"), Some(uuid.as_str()));
    assert_eq!((asked.param("from"), asked.param("to")), (Some(NUMBER), Some("bob")));
    // The call's events went to the request's event_url, not the application's.
    let events: Vec<_> = env.app.events().into_iter().filter(|e| e.path == "/outbound-events").collect();
    assert!(events.iter().any(|e| e.body["status"] == "answered"), "{events:?}");
    assert!(env.app.events().iter().all(|e| e.path != "/event"), "nothing to the application's event_url");

    // Transfer to an inline NCCO (a transfer event), then to a URL whose NCCO ends the call.
    let transfer =
        json!({"action": "transfer", "destination": {"type": "ncco", "ncco": [{"action": "wait", "timeout": 60}]}});
    let (status, body) = vbtest::send(update(&env, &uuid, transfer)).await;
    assert_eq!(status, 204, "{body}");
    let moved = format!("{}/moved", env.app.base);
    let (status, body) = vbtest::send(update(
        &env,
        &uuid,
        json!({"action": "transfer", "destination": {"type": "ncco", "url": [moved]}}),
    ))
    .await;
    assert_eq!(status, 204, "{body}");
    let callee = callee.finish(T).await;
    assert!(callee.success, "the moved call ended and SIPp got the BYE: {}", callee.errors);
    let transfers = env.app.events().into_iter().filter(|e| e.body.get("conversation_uuid_to").is_some()).count();
    assert_eq!(transfers, 2, "a transfer event for each");
    assert!(env.app.events().iter().any(|e| e.path == "/moved"), "the transfer URL was asked");
}

/// Collects RTP until `idle` passes without a packet (after the first).
async fn hear(sock: &tokio::net::UdpSocket, within: Duration, idle: Duration) -> Vec<Packet> {
    let mut heard: Vec<Packet> = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    let mut buf = [0u8; 2048];
    loop {
        let wait =
            if heard.is_empty() { deadline.saturating_duration_since(tokio::time::Instant::now()) } else { idle };
        match tokio::time::timeout(wait, sock.recv_from(&mut buf)).await {
            Ok(Ok((n, _))) => heard.extend(Packet::parse(&buf[..n], std::time::Instant::now())),
            _ => return heard,
        }
        if tokio::time::Instant::now() >= deadline {
            return heard;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn talk_and_dtmf_from_rest_reach_the_called_party_on_rtp() {
    let far = RawSip::new("127.0.0.1:9").await;
    let rtp = vbtest::rtp::RtpPeer::bind().await;
    let rtp_port = rtp.local_addr().unwrap().port();
    let env = env().await;
    let port = far.local.port();
    let uuid =
        place(&env, json!({"to": to_sip(port), "from": from(), "ncco": [{"action": "wait", "timeout": 60}]})).await;
    // The far end answers offering PCMU and telephone-event.
    let (invite, from_addr) = far.recv(T).await.expect("the INVITE reaches the far end");
    assert!(invite.header("From").unwrap_or_default().contains(NUMBER));
    let contact = format!("sip:far@{}", far.local);
    let ok = vbtest::raw::respond(&invite, 200, "OK", "far1", &contact, &vbtest::raw::sdp_offer(rtp_port));
    far.sock.send_to(ok.as_bytes(), from_addr).await.unwrap();
    let (ack, _) = far.recv(T).await.expect("ACK");
    assert_eq!(ack.method(), Some("ACK"));
    assert!(wait_for(&env, "answered").await);

    let put = |path: &str, body: Value| {
        env.server.client.put(env.server.url(&format!("/v1/calls/{uuid}{path}"))).bearer_auth(env.jwt()).json(&body)
    };
    let (status, body) = vbtest::send(put("/talk", json!({"text": "Your order has shipped."}))).await;
    assert_eq!((status, body["message"].as_str()), (200, Some("Talk started")), "{body}");
    let speech = hear(&rtp, T, Duration::from_millis(500)).await;
    let voice: Vec<Packet> = speech.iter().filter(|p| p.payload_type == 0).cloned().collect();
    assert!(voice.len() >= 40 && rms(&decode_pcmu(&voice)) > 300.0, "{} packets of speech", voice.len());

    let (status, body) = vbtest::send(put("/dtmf", json!({"digits": "42#"}))).await;
    assert_eq!((status, body["message"].as_str()), (200, Some("DTMF sent")), "{body}");
    let events = hear(&rtp, T, Duration::from_millis(800)).await;
    let mut rx = domains::dtmf::EventReceiver::default();
    let digits: String = events
        .iter()
        .filter(|p| p.payload_type == 101)
        .filter_map(|p| rx.on_packet(p.ssrc, p.timestamp, &p.payload))
        .collect();
    assert_eq!(digits, "42#", "RFC 4733 events reached the called party");

    // The called party hangs up: the call completes as hung up by the user.
    let bye = format!(
        "BYE {} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bKfarbye\r\nMax-Forwards: 70\r\nFrom: {};tag=far1\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n",
        invite.header("Contact").unwrap_or_default().trim_matches(['<', '>']),
        far.local,
        invite.header("To").unwrap_or_default(),
        invite.header("From").unwrap_or_default(),
        invite.header("Call-ID").unwrap_or_default(),
    );
    far.sock.send_to(bye.as_bytes(), from_addr).await.unwrap();
    assert!(wait_for(&env, "completed").await);
    let done = env.app.events().into_iter().find(|e| e.body["status"] == "completed").unwrap().body;
    assert_eq!(done["disconnected_by"], "user");
}

#[tokio::test]
async fn a_phone_call_leaves_through_the_trunk_with_the_accounts_number() {
    let carrier = Sipp::uas("uas_answer.xml", &[]);
    let env = env().await;
    let trunk =
        json!({"name": "carrier", "prefixes": ["1"], "gateways": [{"host": "127.0.0.1", "port": carrier.port}]});
    let (status, body) = env.server.post_json("/v1/trunks", trunk).await;
    assert_eq!(status, 201, "{body}");
    let to = json!([{"type": "phone", "number": "15551230000"}]);
    // A caller ID the account does not own never reaches the trunk.
    let stranger = json!({"type": "phone", "number": "15550009999"});
    let (status, body) = vbtest::send(create(&env, json!({"to": to, "from": stranger, "ncco": []}))).await;
    vbtest::assert_problem(status, &body, 400, &["from.number"]);
    // No trunk serves +44.
    let (status, body) = vbtest::send(create(
        &env,
        json!({"to": [{"type": "phone", "number": "447700900123"}], "from": from(), "ncco": [{"action": "wait"}]}),
    ))
    .await;
    vbtest::assert_problem(status, &body, 400, &["to"]);

    let uuid =
        place(&env, json!({"to": to, "from": from(), "ncco": [{"action": "wait", "timeout": 1}], "length_timer": 30}))
            .await;
    let carrier = carrier.finish(T).await;
    assert!(carrier.success, "the carrier answered and got the BYE: {}\n{}", carrier.errors, carrier.messages);
    assert!(carrier.messages.contains("INVITE sip:15551230000@127.0.0.1"), "{}", carrier.messages);
    assert!(carrier.messages.contains(&format!("From: <sip:{NUMBER}@")), "{}", carrier.messages);
    assert!(wait_for(&env, "completed").await);
    let (_, row) = get(&env, &uuid).await;
    assert_eq!(row["status"], "completed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_to_a_websocket_streams_its_ncco_audio_and_ends_when_the_server_closes() {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let env = env().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let uri = format!("ws://127.0.0.1:{}/bot", listener.local_addr().unwrap().port());
    // The application's server: the first message, then 3 s of 16 kHz frames, then it hangs up.
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
        let first = match ws.next().await.unwrap().unwrap() {
            Message::Text(t) => serde_json::from_str::<Value>(&t).unwrap(),
            other => panic!("the first message is text, got {other:?}"),
        };
        let mut frames = Vec::new();
        while frames.len() < 150 {
            match ws.next().await.unwrap().unwrap() {
                Message::Binary(b) => frames.push(b.to_vec()),
                Message::Ping(_) | Message::Pong(_) => {}
                other => panic!("audio frames are binary, got {other:?}"),
            }
        }
        ws.close(None).await.unwrap();
        (first, frames)
    });
    let to = json!([{"type": "websocket", "uri": uri, "content-type": "audio/l16;rate=16000",
        "headers": {"customer": "42"}}]);
    let ncco = json!([{"action": "talk", "text": "Hello from voxbridge. This call streams to your socket."},
        {"action": "wait", "timeout": 60}]);
    let uuid = place(&env, json!({"to": to, "from": from(), "ncco": ncco})).await;
    let (first, frames) = tokio::time::timeout(T, server).await.expect("the server got its frames").unwrap();
    assert_eq!(
        (first["event"].as_str(), first["content-type"].as_str(), first["customer"].as_str()),
        (Some("websocket:connected"), Some("audio/l16;rate=16000"), Some("42"))
    );
    assert!(frames.iter().all(|b| b.len() == 640), "20 ms of 16 kHz 16-bit PCM per frame");
    let loud = frames
        .iter()
        .filter(|b| {
            let pcm: Vec<i16> = b.chunks_exact(2).map(|c| i16::from_le_bytes([c[0], c[1]])).collect();
            rms(&pcm) > 500.0
        })
        .count();
    assert!(loud >= 30, "the talk reached the socket: {loud} loud frames of {}", frames.len());
    assert!(wait_for(&env, "completed").await, "the server's close ends the call");
    let lifecycle: Vec<String> = env
        .app
        .events()
        .into_iter()
        .filter(|e| e.body["uuid"] == uuid)
        .map(|e| e.body["status"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(lifecycle, ["started", "ringing", "answered", "disconnected", "completed"]);
    let completed = env.app.events().into_iter().rev().find(|e| e.body["status"] == "completed").unwrap();
    assert_eq!(completed.body["disconnected_by"], "user");
    assert_eq!(completed.body["direction"], "outbound");
    let (_, row) = get(&env, &uuid).await;
    assert_eq!((row["status"].as_str(), row["to"]["type"].as_str()), (Some("completed"), Some("websocket")), "{row}");
    assert!(row.get("sip_code").is_none(), "no SIP on a WebSocket: {row}");
}

#[tokio::test]
async fn a_ringing_call_refuses_talk_and_dtmf_with_400_and_is_cancelled_by_hangup() {
    let callee = Sipp::uas("uas_ring_cancel.xml", &[]);
    let env = env().await;
    let uuid = place(&env, json!({"to": to_sip(callee.port), "from": from(), "ncco": [{"action": "wait"}]})).await;
    assert!(wait_for(&env, "ringing").await);
    let talk = env.server.client.put(env.server.url(&format!("/v1/calls/{uuid}/talk"))).bearer_auth(env.jwt());
    let (status, body) = vbtest::send(talk.json(&json!({"text": "too early"}))).await;
    vbtest::assert_problem(status, &body, 400, &[]);
    assert!(body["detail"].as_str().is_some_and(|d| d.contains("not answered yet")), "{body}");
    let dtmf = env.server.client.put(env.server.url(&format!("/v1/calls/{uuid}/dtmf"))).bearer_auth(env.jwt());
    let (status, _) = vbtest::send(dtmf.json(&json!({"digits": "12"}))).await;
    assert_eq!(status, 400);
    let (status, _) = vbtest::send(update(&env, &uuid, json!({"action": "hangup"}))).await;
    assert_eq!(status, 204);
    let callee = callee.finish(T).await;
    assert!(callee.success, "the ringing callee got the CANCEL: {}\n{}", callee.errors, callee.messages);
    // An ended call is refused the same way, with the reason.
    let deadline = std::time::Instant::now() + T;
    while get(&env, &uuid).await.1["status"] != "cancelled" {
        assert!(std::time::Instant::now() < deadline, "the call's record shows it cancelled");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, body) = vbtest::send(update(&env, &uuid, json!({"action": "mute"}))).await;
    vbtest::assert_problem(status, &body, 400, &[]);
}

#[tokio::test]
async fn the_calls_per_second_budget_answers_429() {
    let env = env_with(vec![("VOXBRIDGE_OUTBOUND_CPS".into(), "2".into())]).await;
    // Nobody answers port 9 (discard): the calls ring out after a second.
    let body = json!({"to": to_sip(9), "from": from(), "ncco": [{"action": "wait"}], "ringing_timer": 1});
    let mut statuses = Vec::new();
    let mut refused = Value::Null;
    for _ in 0..4 {
        let resp = create(&env, body.clone()).send().await.unwrap();
        statuses.push(resp.status().as_u16());
        if resp.status().as_u16() == 429 {
            assert_eq!(resp.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("1"));
            refused = resp.json().await.unwrap();
        }
    }
    assert_eq!(&statuses[..2], [201, 201], "{statuses:?}");
    assert!(statuses[2..].iter().all(|s| *s == 429), "{statuses:?}");
    vbtest::assert_problem(429, &refused, 429, &[]);
    assert!(refused["detail"].as_str().unwrap().contains("calls per second"), "{refused}");
    let metrics = env.server.client.get(env.server.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("voxbridge_outbound_calls_refused_total{reason=\"calls_per_second\"} 2"), "{metrics}");
    assert!(metrics.contains("voxbridge_outbound_calls_active"), "{metrics}");
}

#[tokio::test]
async fn bad_requests_are_refused_with_every_field_named_and_need_the_jwt() {
    let env = env().await;
    let (status, body) = vbtest::send(create(
        &env,
        json!({"to": [{"type": "sip"}], "from": {"type": "phone", "number": "abc"}, "ncco": [{"action": "talk"}],
               "answer_url": ["https://app.example/answer"], "length_timer": 0, "ringing_timer": "soon",
               "machine_detection": "maybe"}),
    ))
    .await;
    vbtest::assert_problem(
        status,
        &body,
        400,
        &["from.number", "ncco", "length_timer", "ringing_timer", "machine_detection", "to/0/uri"],
    );
    let (status, body) = vbtest::send(create(&env, json!({"to": to_sip(9), "from": from()}))).await;
    vbtest::assert_problem(status, &body, 400, &["answer_url"]);
    let anonymous = env.server.client.post(env.server.url("/v1/calls")).json(&json!({"to": to_sip(9)}));
    let (status, _) = vbtest::send(anonymous).await;
    assert_eq!(status, 401);
    // Another application cannot see or steer the call.
    let uuid =
        place(&env, json!({"to": to_sip(9), "from": from(), "ncco": [{"action": "wait"}], "ringing_timer": 1})).await;
    let (other, other_key) = env.server.create_application(&env.app.base).await;
    let now = chrono::Utc::now().timestamp();
    let claims =
        json!({"application_id": other, "iat": now, "exp": now + 600, "jti": uuid::Uuid::new_v4().to_string()});
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(other_key.as_bytes()).unwrap();
    let jwt = jsonwebtoken::encode(&jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256), &claims, &key).unwrap();
    let (status, _) =
        vbtest::send(env.server.client.get(env.server.url(&format!("/v1/calls/{uuid}"))).bearer_auth(jwt)).await;
    assert_eq!(status, 404);
}
