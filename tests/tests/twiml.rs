//! TwiML answer documents, built by the official `twilio` helper library (`VoiceResponse`,
//! `tests/python/twiml_documents.py`) and served by the application's answer_url as
//! `application/xml`: `<Say>` then `<Dial><Sip>` reaches SIPp as the far end with the URI's
//! `X-` headers and `User-to-User`, `<Reject reason="busy">` answers the caller 486, a
//! document with an unknown verb fails the call with a `failed` event naming the element,
//! `<Gather>` posts the caller's RFC 4733 digits to its action as Twilio does (a form with
//! `Digits`, `CallSid`, `AccountSid`, …, signed so that the twilio library's
//! `RequestValidator` accepts it) and runs the document it answers, and `<Dial action>`
//! gets the far end's 486 as `DialCallStatus`, `DialSipResponseCode`, `DialSipCallId` and
//! `DialSipHeader_X-*`; `<Sip username password codecs>` answers SIPp's 401 (and a Kamailio
//! carrier's 407) and sets the
//! offer's codec order; an application with `dialect: twiml` is asked and told Twilio's way
//! (signed form, status callbacks with the quality fields); `<Record>` sends its recording to
//! its action; `hangupOnStar` drops the callee and `<Play digits>` sends RFC 4733 digits; a
//! `<Gather>` without `action` posts to its own document's URL. A `<Sip statusCallback>` gets
//! the child leg's status callbacks and the INVITE carries `X-Twilio-CallSid`; a recorded
//! `<Dial>` gives its action a two-channel WAV; a `<Sip>` URI without a transport goes over
//! TLS unless the application says `udp`; an application gets only the status callbacks it
//! subscribed to; `<Sip username password>` answers a Kamailio carrier's 407.

use std::time::Duration;

use serde_json::Value;
use vbtest::SipEnv;
use vbtest::python::{self, step};
use vbtest::raw::RawSip;
use vbtest::sipp::Sipp;

const T: Duration = Duration::from_secs(30);

/// A platform whose application was written for Twilio: its `<Sip>` URIs default to UDP.
async fn twilio_env() -> SipEnv {
    let env = SipEnv::start(Value::Null, &["127.0.0.1"], None).await;
    env.set_voice(serde_json::json!({"sip_transport": "udp"})).await;
    env
}

/// The documents the twilio library builds, by name.
async fn documents(far_end_port: u16, env: &SipEnv) -> Vec<(String, Value)> {
    let args = [python::script("twiml_documents.py"), far_end_port.to_string(), env.app.base.clone()];
    python::steps(&python::python(), &args, &[]).await
}

/// `xml` served at the application's `path` (`/answer`: its answer_url).
fn serve_at(env: &SipEnv, path: &str, xml: &Value) {
    env.app.set_file(path, "application/xml", &[], xml.as_str().expect("a document").as_bytes().to_vec());
}

fn serve(env: &SipEnv, xml: &Value) {
    serve_at(env, "/answer", xml);
}

/// Whether the twilio library's `RequestValidator` accepts the signature of `rec` (a POST to
/// the application's `path`), or `forged` in its place.
async fn twilio_accepts(env: &SipEnv, path: &str, rec: &vbtest::app::Recorded, forged: Option<&str>) -> bool {
    let (_, account) = env.server.get("/v1/account").await;
    let params: serde_json::Map<String, Value> = rec.form.iter().map(|(k, v)| (k.clone(), v.clone().into())).collect();
    let signature = forged.map(str::to_owned).or_else(|| rec.twilio_signature.clone()).expect("X-Twilio-Signature");
    let request = serde_json::json!({"url": format!("{}{path}", env.app.base), "params": params,
                                     "signature": signature, "auth_token": account["auth_token"]});
    let args = [python::script("twiml_validate.py"), request.to_string()];
    step(&python::steps(&python::python(), &args, &[]).await, "valid") == &Value::Bool(true)
}

/// The first callback the application got at `path`, waiting for it.
async fn callback(env: &SipEnv, path: &str) -> Option<vbtest::app::Recorded> {
    vbtest::eventually(T, || async { env.app.events().into_iter().find(|e| e.path == path).ok_or(()) }).await.ok()
}

/// The status callbacks at `path` (of `call_sid`, when given) once the `completed` one came:
/// every event, in order and numbered from 0.
async fn every_status(env: &SipEnv, path: &str, call_sid: Option<&str>) -> Vec<vbtest::app::Recorded> {
    let callbacks = vbtest::eventually(T, || async {
        let mine: Vec<vbtest::app::Recorded> = env
            .app
            .events()
            .into_iter()
            .filter(|e| e.path == path && call_sid.is_none_or(|sid| e.field("CallSid") == Some(sid)))
            .collect();
        if mine.iter().any(|e| e.field("CallStatus") == Some("completed")) { Ok(mine) } else { Err(mine) }
    })
    .await
    .expect("a completed status callback");
    let statuses: Vec<&str> = callbacks.iter().filter_map(|e| e.field("CallStatus")).collect();
    assert_eq!(statuses, ["initiated", "ringing", "in-progress", "completed"], "{callbacks:?}");
    let sequence: Vec<&str> = callbacks.iter().filter_map(|e| e.field("SequenceNumber")).collect();
    assert_eq!(sequence, ["0", "1", "2", "3"]);
    callbacks
}

#[tokio::test]
async fn a_twilio_voice_response_dials_sip_with_the_uri_headers_and_uui() {
    let bob = Sipp::uas("uas_answer.xml", &[]);
    let env = twilio_env().await;
    let docs = documents(bob.port, &env).await;
    serve(&env, step(&docs, "dial_sip"));
    let caller = Sipp::uac("uac_invite_wait_bye.xml", &env.sip, &env.host, &[]).finish(Duration::from_secs(60)).await;
    assert!(
        caller.success,
        "the caller heard the Say, was bridged, then hung up: {}\n{}",
        caller.errors, caller.messages
    );
    let bob = bob.finish(T).await;
    assert!(bob.success, "{}\n{}", bob.errors, bob.messages);
    for header in
        ["x-account: 42", "X-Note: a b", "User-to-User: 56a390f3d2b7310023a2;encoding=hex", "Session-Expires: 600"]
    {
        assert!(bob.messages.contains(header), "{header} reached the far end: {}", bob.messages);
    }
    assert!(bob.messages.contains("From: <sip:+14155550100@"), "callerId: {}", bob.messages);
    assert!(env.app.answers().len() == 1, "answer_url was asked once");
    assert!(env.app.wait_status("outbound", "completed", T).await, "{:?}", env.app.statuses("outbound"));
}

#[tokio::test]
async fn reject_busy_answers_486_and_an_unknown_verb_fails_the_call_with_its_path() {
    let env = twilio_env().await;
    let docs = documents(9, &env).await;
    serve(&env, step(&docs, "reject_busy"));
    let caller = RawSip::new(&env.sip).await;
    let invite = caller.invite(&format!("sip:+14155550100@{}", env.host), "twiml-busy@test", 1, "", 40200);
    caller.send(&invite).await;
    let busy = caller.final_response(T).await.expect("answered");
    assert_eq!(busy.status(), Some(486), "{}", busy.0);
    caller.send(&caller.ack_for(&invite, &busy)).await;
    assert!(env.app.wait_status("inbound", "busy", T).await, "{:?}", env.app.statuses("inbound"));

    serve(&env, &Value::from("<Response><Say>hi</Say><Dance/></Response>"));
    let invite = caller.invite(&format!("sip:+14155550100@{}", env.host), "twiml-bad@test", 1, "", 40202);
    caller.send(&invite).await;
    let refused = caller.final_response(T).await.expect("answered");
    assert_eq!(refused.status(), Some(480), "{}", refused.0);
    caller.send(&caller.ack_for(&invite, &refused)).await;
    assert!(env.app.wait_status("inbound", "failed", T).await, "{:?}", env.app.statuses("inbound"));
    let failed = env.app.events().into_iter().rev().find(|e| e.body["status"] == "failed").expect("failed").body;
    let reason = failed["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("invalid TwiML: Response/Dance[2]: unknown verb <Dance>"), "{failed}");
}

#[tokio::test]
async fn gather_posts_the_digits_to_its_action_as_twilio_does_and_runs_its_answer() {
    let env = twilio_env().await;
    let docs = documents(9, &env).await;
    serve(&env, step(&docs, "gather"));
    serve_at(&env, "/gathered", step(&docs, "thanks"));
    let uri = format!("sip:+14155550100@{}", env.host);
    let mut call = vbtest::rtp::RawCall::place(&env.sip, &uri, vbtest::raw::sdp_offer).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    for d in ['4', '2', '7'] {
        call.rtp.send_event(d).await;
    }
    let gathered = callback(&env, "/gathered").await.expect("the action was called");
    assert_eq!(gathered.method, "POST");
    for (name, value) in [
        ("Digits", "427"),
        ("ApiVersion", "2010-04-01"),
        ("Direction", "inbound"),
        ("CallStatus", "in-progress"),
        ("To", "+14155550100"),
    ] {
        assert_eq!(gathered.field(name), Some(value), "{name} in {:?}", gathered.form);
    }
    assert!(gathered.field("CallSid").is_some_and(|s| !s.is_empty()) && gathered.field("SipCallId").is_some());
    // Signed as Twilio signs: the twilio library's validator accepts it, and refuses a forgery.
    let (_, account) = env.server.get("/v1/account").await;
    assert_eq!(gathered.field("AccountSid"), account["account_sid"].as_str(), "{account}");
    assert!(twilio_accepts(&env, "/gathered", &gathered, None).await, "{gathered:?}");
    assert!(!twilio_accepts(&env, "/gathered", &gathered, Some("bm90IHRoZSBzaWduYXR1cmU=")).await);
    assert!(call.expect_bye(T).await, "the action's document said thank you and hung up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gather_speech_sends_the_recognisers_transcript_to_its_action() {
    let (asr, env) = vbtest::speech::FakeSpeech::with_platform().await;
    env.set_voice(serde_json::json!({"sip_transport": "udp"})).await;
    let docs = documents(9, &env).await;
    serve(&env, step(&docs, "gather_speech"));
    serve_at(&env, "/heard", step(&docs, "thanks"));
    let uri = format!("sip:+14155550100@{}", env.host);
    let mut call = vbtest::rtp::RawCall::place(&env.sip, &uri, vbtest::raw::sdp_offer).await;
    call.rtp.send_pcmu(&vbtest::speech::FakeSpeech::word(880.0), None).await;
    let heard = callback(&env, "/heard").await.unwrap_or_else(|| {
        let seen: Vec<_> = env.app.events().iter().map(|e| (e.path.clone(), e.form.clone(), e.body.clone())).collect();
        panic!("the action was called: {seen:?}; the recogniser was asked {} times", asr.heard().len())
    });
    assert_eq!(heard.field("SpeechResult"), Some("support"), "{:?}", heard.form);
    assert_eq!(heard.field("Digits"), None, "no keys were pressed");
    let asked = asr.heard();
    assert_eq!(asked.len(), 1);
    assert_eq!((asked[0].field("language"), asked[0].field("prompt")), (Some("en"), Some("sales, support")));
    assert!(twilio_accepts(&env, "/heard", &heard, None).await, "signed as Twilio signs");
    assert!(call.expect_bye(T).await, "the action's document said thank you and hung up");
}

#[tokio::test]
async fn dial_action_gets_the_far_ends_486_with_its_call_id_and_x_headers() {
    let far = RawSip::new("127.0.0.1:9").await;
    let far_port = far.local.port();
    let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some((msg, from)) = far.recv(Duration::from_secs(60)).await {
            if msg.method() == Some("INVITE") {
                let busy = vbtest::raw::respond(&msg, 486, "Busy Here", "far", "", "")
                    .replace("Content-Length: 0", "X-Reason: closed for lunch\r\nContent-Length: 0");
                let _ = far.sock.send_to(busy.as_bytes(), from).await;
                let _ = seen_tx.send(msg);
            }
        }
    });
    let env = twilio_env().await;
    let docs = documents(far_port, &env).await;
    serve(&env, step(&docs, "dial_action"));
    serve_at(&env, "/dialled", step(&docs, "hang_up"));
    let caller = RawSip::new(&env.sip).await;
    let invite = caller.invite(&format!("sip:+14155550100@{}", env.host), "twiml-dial@test", 1, "", 40204);
    caller.send(&invite).await;
    let refused = caller.final_response(T).await.expect("answered");
    // Not 200: the <Say> after the <Dial> (which would answer) never ran.
    assert_eq!(refused.status(), Some(603), "the action's <Hangup> declines the unanswered caller: {}", refused.0);
    caller.send(&caller.ack_for(&invite, &refused)).await;
    let placed = tokio::time::timeout(T, seen.recv()).await.expect("the far end was rung").unwrap();
    let dialled = callback(&env, "/dialled").await.expect("the action was called");
    for (name, value) in
        [("DialCallStatus", "busy"), ("DialSipResponseCode", "486"), ("DialSipHeader_X-Reason", "closed for lunch")]
    {
        assert_eq!(dialled.field(name), Some(value), "{name} in {:?}", dialled.form);
    }
    assert_eq!(dialled.field("DialSipCallId").map(str::to_owned), placed.header("Call-ID"), "{:?}", dialled.form);
}

#[tokio::test]
async fn a_twiml_application_is_asked_and_told_the_twilio_way_with_quality_on_completed() {
    let bob = Sipp::uas("uas_answer.xml", &[]);
    let env = twilio_env().await;
    let app = serde_json::json!({"name": "twilio app", "capabilities": {"voice": {"dialect": "twiml", "sip_transport": "udp", "webhooks": {
        "answer_url": {"address": format!("{}/answer", env.app.base)},
        "event_url": {"address": format!("{}/status", env.app.base)}}}}});
    let (status, body) = env.server.put_json(&format!("/v2/applications/{}", env.app_id), app).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["capabilities"]["voice"]["webhooks"]["answer_url"]["http_method"], "POST", "{body}");
    let docs = documents(bob.port, &env).await;
    serve(&env, step(&docs, "dial_sip"));
    let caller = Sipp::uac("uac_invite_xheaders.xml", &env.sip, &env.host, &[]).finish(Duration::from_secs(60)).await;
    assert!(caller.success, "{}\n{}", caller.errors, caller.messages);

    // The voice URL: Twilio's form, POSTed and signed.
    let answer = env.app.answers().first().cloned().expect("the voice URL was asked");
    assert_eq!(answer.method, "POST");
    for (name, value) in [("CallStatus", "ringing"), ("Direction", "inbound"), ("SipHeader_X-UserId", "ABC123")] {
        assert_eq!(answer.field(name), Some(value), "{name} in {:?}", answer.form);
    }
    assert!(answer.field("SipCallId").is_some() && answer.field("CallSid").is_some(), "{:?}", answer.form);
    assert!(twilio_accepts(&env, "/answer", &answer, None).await);

    // Status callbacks of the caller's leg, in order, numbered, the last with quality.
    let call_sid = answer.field("CallSid").unwrap_or_default().to_owned();
    assert!(call_sid.starts_with("CA") && call_sid.len() == 34, "Twilio's sid form: {call_sid}");
    let callbacks = every_status(&env, "/status", Some(&call_sid)).await;
    let completed = callbacks.last().expect("completed");
    for name in ["CallDuration", "Timestamp", "AudioInMos", "AudioInMediaPacketCount", "AudioOutMediaPacketCount"] {
        assert!(completed.field(name).is_some(), "{name} in {:?}", completed.form);
    }
    assert_eq!(completed.field("CallbackSource"), Some("call-progress-events"));
    assert!(twilio_accepts(&env, "/status", completed, None).await);
    let bob = bob.finish(T).await;
    assert!(bob.success, "{}", bob.errors);
}

#[tokio::test]
async fn a_sip_nouns_status_callback_gets_its_legs_events_and_the_invite_names_the_call() {
    let bob = Sipp::uas("uas_answer.xml", &[]);
    let env = twilio_env().await;
    let docs = documents(bob.port, &env).await;
    serve(&env, step(&docs, "leg_status"));
    let caller = Sipp::uac("uac_invite_wait_bye.xml", &env.sip, &env.host, &[]).finish(Duration::from_secs(60)).await;
    assert!(caller.success, "{}\n{}", caller.errors, caller.messages);
    let bob = bob.finish(T).await;
    assert!(bob.success, "{}\n{}", bob.errors, bob.messages);
    let leg = every_status(&env, "/leg", None).await;
    let inbound = env.app.events().into_iter().find(|e| e.body["direction"] == "inbound").expect("the caller's event");
    // Twilio's sid of the caller's leg: `CA` and its uuid's hex digits.
    let parent = format!("CA{}", inbound.body["uuid"].as_str().expect("uuid").replace('-', ""));
    let completed = leg.last().expect("completed");
    assert_eq!(completed.field("ParentCallSid"), Some(parent.as_str()), "{:?}", completed.form);
    assert_eq!(completed.field("Direction"), Some("outbound-dial"));
    assert_ne!(completed.field("CallSid"), Some(parent.as_str()), "the child leg's own CallSid");
    for name in ["CallDuration", "AudioInMos", "AudioInMediaPacketCount", "AudioOutMediaPacketCount"] {
        assert!(completed.field(name).is_some(), "{name} in {:?}", completed.form);
    }
    assert!(twilio_accepts(&env, "/leg", completed, None).await);
    // The INVITE names the call as Twilio's do.
    let (_, account) = env.server.get("/v1/account").await;
    let account_sid = account["account_sid"].as_str().expect("account_sid");
    for header in [format!("X-Twilio-CallSid: {parent}"), format!("X-Twilio-AccountSid: {account_sid}")] {
        assert!(bob.messages.contains(&header), "{header} reached the far end: {}", bob.messages);
    }
    assert!(bob.messages.contains("X-Twilio-ApiVersion: 2010-04-01"), "{}", bob.messages);
    assert!(
        env.app.statuses("outbound").is_empty(),
        "the callee's events went to its own callback, not event_url: {:?}",
        env.app.statuses("outbound")
    );
}

#[tokio::test]
async fn a_sip_uri_without_transport_goes_over_tls_unless_the_application_says_otherwise() {
    // SignalWire's default: TLS. The far end is a TCP listener that sees the ClientHello.
    let env = SipEnv::start(Value::Null, &["127.0.0.1"], None).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let xml = format!("<Response><Dial timeout=\"5\"><Sip>sip:bob@127.0.0.1:{port}</Sip></Dial></Response>");
    serve(&env, &Value::String(xml));
    let caller = RawSip::new(&env.sip).await;
    let invite = caller.invite(&format!("sip:+14155550100@{}", env.host), "twiml-tls@test", 1, "", 40210);
    caller.send(&invite).await;
    let (mut stream, _) = tokio::time::timeout(T, listener.accept()).await.expect("a connection").unwrap();
    let mut first = [0u8; 2];
    tokio::io::AsyncReadExt::read_exact(&mut stream, &mut first).await.unwrap();
    assert_eq!(first, [0x16, 0x03], "a TLS handshake record (the ClientHello), not SIP");
}

#[tokio::test]
async fn a_twiml_application_gets_the_status_callbacks_it_subscribed_to_only() {
    let env = twilio_env().await;
    env.set_voice(serde_json::json!({"dialect": "twiml", "status_callback_event": ["completed"]})).await;
    let docs = documents(9, &env).await;
    serve(&env, step(&docs, "reject_busy"));
    let caller = RawSip::new(&env.sip).await;
    let invite = caller.invite(&format!("sip:+14155550100@{}", env.host), "twiml-subscribed@test", 1, "", 40212);
    caller.send(&invite).await;
    let busy = caller.final_response(T).await.expect("answered");
    assert_eq!(busy.status(), Some(486));
    caller.send(&caller.ack_for(&invite, &busy)).await;
    let busy = callback(&env, "/event").await.expect("the final status callback");
    assert_eq!(busy.field("CallStatus"), Some("busy"), "{:?}", busy.form);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let statuses: Vec<String> =
        env.app.events().iter().filter_map(|e| e.field("CallStatus").map(str::to_owned)).collect();
    assert_eq!(statuses, ["busy"], "no initiated or ringing");
    let (status, app) = env.server.get(&format!("/v2/applications/{}", env.app_id)).await;
    assert_eq!(status, 200);
    assert_eq!(app["capabilities"]["voice"]["status_callback_event"], serde_json::json!(["completed"]));
}

#[tokio::test]
async fn sip_username_and_password_answer_the_far_ends_401_and_codecs_set_the_offer_order() {
    let alice = Sipp::uas("uas_digest.xml", &[]);
    let env = twilio_env().await;
    let docs = documents(alice.port, &env).await;
    serve(&env, step(&docs, "dial_digest"));
    let _caller = Sipp::uac("uac_invite_wait_bye.xml", &env.sip, &env.host, &[]).finish(Duration::from_secs(60)).await;
    let alice = alice.finish(T).await;
    assert!(alice.success, "the digest answer was verified: {}\n{}", alice.errors, alice.messages);
    assert!(alice.messages.contains("Authorization: Digest username=\"alice\""), "{}", alice.messages);
    let offer = alice.messages.lines().find(|l| l.starts_with("m=audio")).unwrap_or_default();
    assert!(offer.contains("RTP/AVP 8 0"), "PCMA offered first, then PCMU: {offer}");
    assert!(alice.messages.contains("User-to-User: 56a390f3d2b7310023a2"), "X-User-to-User is sent as the UUI");
}

#[tokio::test]
async fn sip_username_and_password_answer_a_carriers_407_which_kamailio_verifies() {
    // Kamailio as the carrier: 407 with Proxy-Authenticate, then only an INVITE whose digest
    // it checked reaches the far end behind it.
    let bob = Sipp::uas("uas_answer.xml", &[]);
    let carrier = vbtest::kamailio::Kamailio::start_with(
        "carrier-407.cfg",
        bob.port,
        &[("@USER@", "alice"), ("@PASSWORD@", "s3cr3t")],
    );
    let env = twilio_env().await;
    let docs = documents(carrier.port, &env).await;
    serve(&env, step(&docs, "dial_digest"));
    let _caller = Sipp::uac("uac_invite_wait_bye.xml", &env.sip, &env.host, &[]).finish(Duration::from_secs(60)).await;
    let bob = bob.finish(T).await;
    assert!(bob.success, "the carrier let the answered challenge through: {}\n{}", bob.errors, carrier.log());
    assert!(bob.messages.contains("User-to-User: 56a390f3d2b7310023a2"), "{}", bob.messages);
}

#[tokio::test]
async fn a_hangup_in_the_sip_url_document_declines_the_call() {
    let bob = Sipp::uas("uas_answer.xml", &[]);
    let env = twilio_env().await;
    let docs = documents(bob.port, &env).await;
    serve(&env, step(&docs, "screened"));
    serve_at(&env, "/screen", step(&docs, "hang_up"));
    let caller = RawSip::new(&env.sip).await;
    let invite = caller.invite(&format!("sip:+14155550100@{}", env.host), "twiml-screen@test", 1, "", 40206);
    caller.send(&invite).await;
    let declined = caller.final_response(T).await.expect("answered");
    assert_eq!(declined.status(), Some(603), "the screening hung up: never bridged: {}", declined.0);
    caller.send(&caller.ack_for(&invite, &declined)).await;
    let bob = bob.finish(T).await;
    assert!(bob.success, "bob answered, then got the BYE: {}\n{}", bob.errors, bob.messages);
    let screen = callback(&env, "/screen").await.expect("the screening document was asked");
    assert_eq!(screen.field("Direction"), Some("outbound-dial"), "{:?}", screen.form);
    assert!(screen.field("ParentCallSid").is_some() && screen.field("SipCallId").is_some(), "{:?}", screen.form);
    assert_ne!(screen.field("CallSid"), screen.field("ParentCallSid"), "asked for the callee's leg");
    assert!(twilio_accepts(&env, "/screen", &screen, None).await);
}

#[tokio::test]
async fn ten_sip_nouns_ring_together_and_the_first_to_answer_wins() {
    // Nine phones that only ring (and take the CANCEL), one SIPp that answers.
    let mut ringers = Vec::new();
    for _ in 0..9 {
        let phone = RawSip::new("127.0.0.1:9").await;
        let port = phone.local.port();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some((msg, from)) = phone.recv(Duration::from_secs(60)).await {
                let reply = match msg.method() {
                    Some("INVITE") => vbtest::raw::respond(&msg, 180, "Ringing", "ringer", "", ""),
                    Some("CANCEL") => vbtest::raw::respond(&msg, 200, "OK", "ringer", "", ""),
                    _ => continue,
                };
                let _ = phone.sock.send_to(reply.as_bytes(), from).await;
                let _ = tx.send(msg.method().unwrap_or_default().to_owned());
            }
        });
        ringers.push((port, rx));
    }
    let winner = Sipp::uas("uas_answer.xml", &[]);
    let nouns: String = ringers
        .iter()
        .map(|(port, _)| format!("<Sip>sip:ringer@127.0.0.1:{port}</Sip>"))
        .chain(std::iter::once(format!("<Sip>sip:winner@127.0.0.1:{}</Sip>", winner.port)))
        .collect();
    let env = twilio_env().await;
    serve(&env, &Value::from(format!("<Response><Dial timeout=\"20\">{nouns}</Dial></Response>")));
    let caller = Sipp::uac("uac_invite_xheaders.xml", &env.sip, &env.host, &[]).finish(Duration::from_secs(60)).await;
    assert!(caller.success, "bridged to the one that answered: {}\n{}", caller.errors, caller.messages);
    let winner = winner.finish(T).await;
    assert!(winner.success, "{}", winner.errors);
    for (port, mut seen) in ringers {
        let mut methods = Vec::new();
        while let Ok(Some(m)) = tokio::time::timeout(Duration::from_secs(5), seen.recv()).await {
            methods.push(m);
            if methods.iter().any(|m| m == "CANCEL") {
                break;
            }
        }
        assert_eq!(methods, ["INVITE", "CANCEL"], "the phone on {port} rang and was cancelled");
    }
}

#[tokio::test]
async fn record_sends_the_voicemail_to_its_action_and_it_downloads_with_the_jwt() {
    let env = twilio_env().await;
    let docs = documents(9, &env).await;
    serve(&env, step(&docs, "voicemail"));
    serve_at(&env, "/recorded", step(&docs, "hang_up"));
    let uri = format!("sip:+14155550100@{}", env.host);
    let mut call = vbtest::rtp::RawCall::place(&env.sip, &uri, vbtest::raw::sdp_offer).await;
    let message = vbtest::rtp::tone(&[440.0], 8000.0, 4000);
    call.rtp.send_pcmu(&message, None).await;
    let recorded = callback(&env, "/recorded").await.expect("the action got the recording");
    let duration: u64 = recorded.field("RecordingDuration").and_then(|d| d.parse().ok()).unwrap_or_default();
    assert!((2..=3).contains(&duration), "maxLength 3: {:?}", recorded.form);
    let url = recorded.field("RecordingUrl").expect("RecordingUrl").to_owned();
    assert!(url.ends_with(recorded.field("RecordingSid").unwrap_or("?")), "{url}");
    let client = &env.server.client;
    assert_eq!(client.get(&url).send().await.unwrap().status(), 401, "no JWT, no recording");
    let wav = client.get(&url).bearer_auth(env.jwt()).send().await.unwrap().bytes().await.unwrap();
    assert!(wav.starts_with(b"RIFF") && wav.len() > 40_000, "{} bytes", wav.len());
    assert!(twilio_accepts(&env, "/recorded", &recorded, None).await);
    assert!(call.expect_bye(T).await, "the action's document hung up");
    let status = callback(&env, "/recording-status").await.expect("the recording status callback");
    for (name, value) in
        [("RecordingStatus", "completed"), ("RecordingSource", "RecordVerb"), ("RecordingChannels", "1")]
    {
        assert_eq!(status.field(name), Some(value), "{name} in {:?}", status.form);
    }
    assert_eq!(status.field("RecordingSid"), recorded.field("RecordingSid"));
    assert!(twilio_accepts(&env, "/recording-status", &status, None).await);
}

#[tokio::test]
async fn a_recorded_dial_gives_its_action_a_two_channel_recording_of_the_conversation() {
    let bob = Sipp::uas("uas_answer.xml", &[]);
    let env = twilio_env().await;
    let docs = documents(bob.port, &env).await;
    serve(&env, step(&docs, "recorded_dial"));
    serve_at(&env, "/dial-recorded", step(&docs, "hang_up"));
    let caller = Sipp::uac("uac_invite_wait_bye.xml", &env.sip, &env.host, &[]).finish(Duration::from_secs(60)).await;
    assert!(caller.success, "{}\n{}", caller.errors, caller.messages);
    let dialled = callback(&env, "/dial-recorded").await.expect("the dial action");
    assert_eq!(dialled.field("DialCallStatus"), Some("completed"), "{:?}", dialled.form);
    assert_eq!(dialled.field("DialSipResponseCode"), Some("200"));
    assert_eq!(dialled.field("DialSipHeader_X-Answered-By"), Some("sipp-uas"), "the X- header of SIPp's 200");
    let duration: u64 = dialled.field("RecordingDuration").and_then(|d| d.parse().ok()).unwrap_or_default();
    assert!((2..=4).contains(&duration), "timeLimit 3: {:?}", dialled.form);
    let url = dialled.field("RecordingUrl").expect("RecordingUrl").to_owned();
    let wav = env.server.client.get(&url).bearer_auth(env.jwt()).send().await.unwrap().bytes().await.unwrap();
    let reader = hound::WavReader::new(std::io::Cursor::new(wav.to_vec())).expect("a WAV");
    assert_eq!(reader.spec().channels, 2, "record-from-answer-dual: a channel per party");
    let status = callback(&env, "/dial-recording-status").await.expect("the recording status callback");
    assert_eq!(status.field("RecordingSource"), Some("DialVerb"), "{:?}", status.form);
    assert_eq!(status.field("RecordingSid"), dialled.field("RecordingSid"));
    let bob = bob.finish(T).await;
    assert!(bob.success, "{}", bob.errors);
}

#[tokio::test]
async fn hangup_on_star_drops_the_callee_and_play_digits_sends_dtmf_to_the_caller() {
    let bob = Sipp::uas("uas_answer.xml", &[]);
    let env = twilio_env().await;
    let doc = format!(
        r#"<Response><Dial hangupOnStar="true"><Sip>sip:bob@127.0.0.1:{}</Sip></Dial><Play digits="w57"/><Hangup/></Response>"#,
        bob.port
    );
    serve(&env, &Value::from(doc));
    let uri = format!("sip:+14155550100@{}", env.host);
    let mut call = vbtest::rtp::RawCall::place(&env.sip, &uri, vbtest::raw::sdp_offer).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    call.rtp.send_event('*').await;
    let bob = bob.finish(T).await;
    assert!(bob.success, "the star hung bob up: {}\n{}", bob.errors, bob.messages);
    // The document went on: the caller gets 5 and 7 as RFC 4733 events, then the BYE.
    let mut digits = String::new();
    let heard = vbtest::rtp::receive_for(&call.rtp.sock, Duration::from_secs(3)).await;
    for p in heard.iter().filter(|p| p.payload_type == 101) {
        let event = domains::dtmf::TelephoneEvent::parse(&p.payload);
        if let Some(d) = event.filter(|e| e.end).and_then(|e| domains::dtmf::digit_of(e.event))
            && !digits.ends_with(d)
        {
            digits.push(d);
        }
    }
    assert_eq!(digits, "57", "{} packets heard", heard.len());
    assert!(call.expect_bye(T).await, "then <Hangup>");
}

#[tokio::test]
async fn a_gather_without_action_sends_the_digits_to_its_own_document_as_twilio_does() {
    let env = twilio_env().await;
    serve(
        &env,
        &Value::from(r#"<Response><Gather numDigits="2" timeout="10"><Say>Two digits.</Say></Gather></Response>"#),
    );
    let uri = format!("sip:+14155550100@{}", env.host);
    let mut call = vbtest::rtp::RawCall::place(&env.sip, &uri, vbtest::raw::sdp_offer).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    for d in ['4', '2'] {
        call.rtp.send_event(d).await;
    }
    let again = vbtest::eventually(T, || async {
        let answers = env.app.answers();
        answers.get(1).cloned().ok_or(answers.len())
    })
    .await
    .expect("the document's own URL was asked again");
    assert_eq!((again.method.as_str(), again.field("Digits")), ("POST", Some("42")), "{:?}", again.form);
    call.hang_up().await;
}
