//! The official Vonage Python SDK (`vonage` from PyPI), unmodified, against voxbridge's HTTPS
//! API: it creates calls (inline NCCO and answer_url), gets and lists them, mutes, earmuffs,
//! plays TTS and a stream, sends DTMF, transfers and hangs up, with SIPp answering; and it
//! verifies the signature of a webhook voxbridge sent. The SDK trusts voxbridge's generated
//! certificate through `REQUESTS_CA_BUNDLE` (see `vbtest::python` for the virtualenv). Also a
//! client generated from `openapi.yaml` by `openapi-python-client` creates and hangs up a call.

use std::time::Duration;

use serde_json::{Value, json};
use vbtest::SipEnv;
use vbtest::python::{self, step};
use vbtest::sipp::Sipp;

const NUMBER: &str = "14155550100";

/// Runs the SDK script with voxbridge's certificate trusted.
async fn sdk(env: &SipEnv, args: &[String]) -> Vec<(String, Value)> {
    let cert = env.server.data_dir.path().join("tls/self-signed-cert.pem").display().to_string();
    let mut all = vec![python::script("vonage_sdk_calls.py")];
    all.extend_from_slice(args);
    python::steps(&python::python(), &all, &[("REQUESTS_CA_BUNDLE", cert)]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_vonage_python_sdk_places_and_steers_calls_and_verifies_webhooks() {
    let (first, second) = (Sipp::uas("uas_answer.xml", &[]), Sipp::uas("uas_answer.xml", &[]));
    let env = SipEnv::start_with_env(
        Value::Null,
        &["127.0.0.1"],
        None,
        vec![("VOXBRIDGE_HTTPS_ADDR".into(), "127.0.0.1:0".into())],
    )
    .await;
    let (status, body) = env
        .server
        .post_json("/v1/numbers", json!({"number": format!("+{NUMBER}"), "application_id": env.app_id}))
        .await;
    assert_eq!(status, 201, "{body}");
    env.app.set_document("/sdk-answer", json!([{"action": "conversation", "name": "sdk-answer-room"}]));
    env.app.set_file("/tone.wav", "audio/wav", &[], vbtest::rtp::tone_wav(0.5));
    let key = env.server.data_dir.path().join("sdk-app.key");
    std::fs::write(&key, &env.private_key).unwrap();
    let https = env.server.https_base.clone().expect("https listener");
    let api_host = https.trim_start_matches("https://").to_owned();
    let args = vec![
        "calls".to_owned(),
        api_host,
        env.app_id.clone(),
        key.display().to_string(),
        format!("sip:bob@127.0.0.1:{}", first.port),
        format!("sip:carol@127.0.0.1:{}", second.port),
        NUMBER.to_owned(),
        format!("{}/sdk-answer", env.app.base),
        format!("{}/tone.wav", env.app.base),
    ];
    let steps = sdk(&env, &args).await;

    let created = step(&steps, "created");
    assert_eq!((created["status"].as_str(), created["direction"].as_str()), (Some("started"), Some("outbound")));
    let uuid = created["uuid"].as_str().unwrap();
    let got = step(&steps, "get");
    assert_eq!((got["uuid"].as_str(), got["direction"].as_str()), (Some(uuid), Some("outbound")));
    let listed = step(&steps, "list");
    assert!(listed["uuids"].as_array().unwrap().iter().any(|u| u == uuid), "{listed}");
    assert_eq!(step(&steps, "talk"), "Talk started");
    assert_eq!(step(&steps, "stop_talk"), "Talk stopped");
    assert_eq!(step(&steps, "stream"), "Stream started");
    assert_eq!(step(&steps, "stop_stream"), "Stream stopped");
    assert_eq!(step(&steps, "dtmf"), "DTMF sent");
    assert_eq!(step(&steps, "hung_up"), uuid);
    assert!(env.app.events().iter().any(|e| e.path == "/sdk-answer"), "the answer_url form asked its NCCO");
    for sipp in [first, second] {
        let done = sipp.finish(Duration::from_secs(15)).await;
        assert!(done.success, "SIPp answered and got the BYE: {}\n{}", done.errors, done.messages);
    }

    // A webhook voxbridge signed, verified by the SDK with the signature secret (and refused
    // with another).
    let token = env
        .app
        .events()
        .into_iter()
        .find_map(|e| e.authorization.and_then(|a| a.strip_prefix("Bearer ").map(str::to_owned)))
        .expect("a signed webhook");
    let verified = sdk(&env, &["verify".into(), token.clone(), vbtest::SIGNATURE_SECRET.into()]).await;
    assert_eq!(step(&verified, "signature"), true);
    let forged = sdk(&env, &["verify".into(), token, "another-secret-of-32-characters!!".into()]).await;
    assert_eq!(step(&forged, "signature"), false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_generated_from_openapi_yaml_creates_and_hangs_up_a_call() {
    let callee = Sipp::uas("uas_answer.xml", &[]);
    let env = SipEnv::start(Value::Null, &["127.0.0.1"], None).await;
    let (status, body) = env
        .server
        .post_json("/v1/numbers", json!({"number": format!("+{NUMBER}"), "application_id": env.app_id}))
        .await;
    assert_eq!(status, 201, "{body}");
    // The generator (a standard one, from PyPI) reads the openapi.yaml the server is built with.
    let out = env.server.data_dir.path().join("gen");
    std::fs::create_dir_all(&out).unwrap();
    let package = out.join("voxbridge_client");
    let generator = std::path::Path::new(&python::python()).with_file_name("openapi-python-client");
    let spec = concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi.yaml");
    let generated = tokio::process::Command::new(&generator)
        .args(["generate", "--meta", "none", "--overwrite", "--path", spec, "--output-path"])
        .arg(&package)
        .output()
        .await
        .expect("openapi-python-client runs");
    assert!(generated.status.success(), "{}", String::from_utf8_lossy(&generated.stderr));
    let args = vec![
        python::script("generated_client_call.py"),
        env.server.url(""),
        env.jwt(),
        format!("sip:bob@127.0.0.1:{}", callee.port),
        NUMBER.to_owned(),
    ];
    let steps = python::steps(&python::python(), &args, &[("PYTHONPATH", out.display().to_string())]).await;
    let created = step(&steps, "created");
    assert_eq!(created["direction"], "outbound");
    assert_eq!(step(&steps, "answered"), &created["uuid"]);
    assert_eq!(step(&steps, "hangup"), 204);
    let done = callee.finish(Duration::from_secs(15)).await;
    assert!(done.success, "SIPp answered and got the BYE: {}\n{}", done.errors, done.messages);
    assert!(env.app.wait_status("outbound", "completed", Duration::from_secs(10)).await);
}
