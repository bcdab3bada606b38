//! SignalWire's official helper library (`signalwire` from PyPI,
//! `tests/python/signalwire_calls.py`) against voxbridge: a cXML `<Dial><Sip codecs>` built
//! by its `VoiceResponse` reaches SIPp with the URI's header and the codec order; its REST
//! `Client`, pointed at voxbridge as a Space over HTTPS, creates, fetches and completes a
//! call and is refused with a wrong token; its `RequestValidator` accepts the
//! `X-SignalWire-Signature` of the status callbacks; and the compatibility API answers under
//! SignalWire's documented prefix `/api/laml/2010-04-01/` too.

use std::time::Duration;

use serde_json::{Value, json};
use vbtest::SipEnv;
use vbtest::python::{self, step};
use vbtest::sipp::Sipp;

const T: Duration = Duration::from_secs(30);

async fn signalwire(args: &[String]) -> Vec<(String, Value)> {
    let mut all = vec![python::script("signalwire_calls.py")];
    all.extend_from_slice(args);
    python::steps(&python::signalwire_python(), &all, &[]).await
}

#[tokio::test]
async fn a_signalwire_voice_response_dials_sip_with_its_codecs_and_uri_header() {
    let carol = Sipp::uas("uas_answer.xml", &[]);
    let env = SipEnv::start(Value::Null, &["127.0.0.1"], None).await;
    let docs = signalwire(&["documents".into(), carol.port.to_string()]).await;
    let xml = step(&docs, "dial_sip").as_str().expect("a document").as_bytes().to_vec();
    env.app.set_file("/answer", "application/xml", &[], xml);
    let caller = Sipp::uac("uac_invite_wait_bye.xml", &env.sip, &env.host, &[]).finish(Duration::from_secs(60)).await;
    assert!(caller.success, "{}\n{}", caller.errors, caller.messages);
    let carol = carol.finish(T).await;
    assert!(carol.success, "{}\n{}", carol.errors, carol.messages);
    assert!(carol.messages.contains("X-Project: 7"), "{}", carol.messages);
    let offer = carol.messages.lines().find(|l| l.starts_with("m=audio")).unwrap_or_default();
    assert!(offer.contains("RTP/AVP 8 0"), "PCMA offered first, then PCMU: {offer}");
}

#[tokio::test]
async fn the_signalwire_client_creates_and_completes_a_call_over_https_and_validates_its_callbacks() {
    let bob = Sipp::uas("uas_answer.xml", &[]);
    let https = vec![("VOXBRIDGE_HTTPS_ADDR".to_owned(), "127.0.0.1:0".to_owned())];
    let env = SipEnv::start_with_env(Value::Null, &["127.0.0.1"], None, https).await;
    let (status, body) =
        env.server.post_json("/v1/numbers", json!({"number": "+14155550100", "application_id": env.app_id})).await;
    assert_eq!(status, 201, "{body}");
    let (status, account) = env.server.put_json("/v1/account", json!({"default_application_id": env.app_id})).await;
    assert_eq!(status, 200, "{account}");
    let (project, token) = (account["account_sid"].as_str().unwrap_or_default(), account["auth_token"].clone());
    let space = env.server.https_base.clone().expect("an HTTPS listener");
    let args = [
        "calls".to_owned(),
        space,
        project.to_owned(),
        token.as_str().unwrap_or_default().to_owned(),
        format!("sip:bob@127.0.0.1:{}", bob.port),
        "+14155550100".to_owned(),
        format!("{}/status", env.app.base),
    ];
    let steps = signalwire(&args).await;
    assert_eq!(step(&steps, "created")["status"], "queued", "{steps:?}");
    assert_eq!(step(&steps, "answered")["status"], "in-progress", "{steps:?}");
    assert_eq!(step(&steps, "ended")["status"], "completed", "{steps:?}");
    assert_eq!(step(&steps, "denied"), &json!({"status": 401, "code": 20003}));
    let sid = step(&steps, "created")["sid"].as_str().expect("a sid").to_owned();

    // SignalWire's documented path reaches the same call.
    let url = env.server.url(&format!("/api/laml/2010-04-01/Accounts/{project}/Calls/{sid}.json"));
    let fetched = env.server.client.get(&url).basic_auth(project, token.as_str()).send().await.unwrap();
    assert_eq!(fetched.status(), 200);
    let fetched: Value = fetched.json().await.unwrap();
    assert_eq!((fetched["sid"].as_str(), fetched["status"].as_str()), (Some(sid.as_str()), Some("completed")));

    // The status callbacks carry a signature SignalWire's validator accepts (a forged one not).
    let completed = vbtest::eventually(T, || async {
        let events = env.app.events();
        events.into_iter().find(|e| e.path == "/status" && e.field("CallStatus") == Some("completed")).ok_or(())
    })
    .await
    .expect("the completed status callback");
    let params: serde_json::Map<String, Value> =
        completed.form.iter().map(|(k, v)| (k.clone(), v.clone().into())).collect();
    let signature = completed.signalwire_signature.clone().expect("X-SignalWire-Signature");
    for (signature, valid) in [(signature, true), ("bm90IGl0".to_owned(), false)] {
        let request = json!({"url": format!("{}/status", env.app.base), "params": params,
                             "signature": signature, "token": token});
        let verdict = signalwire(&["validate".into(), request.to_string()]).await;
        assert_eq!(step(&verdict, "valid"), &Value::Bool(valid), "{request}");
    }
    let bob = bob.finish(T).await;
    assert!(bob.success, "{}", bob.errors);
}
