//! The registrar (RFC 3261 §10) for Programmable SIP domain users, against SIPp as the phone:
//! digest on REGISTER, 423 with `Min-Expires` below the floor, the binding listed by the API
//! with the flow it came over, `*` unregistration, and a wrong password binding nothing. SIPp's
//! digest `uri` is its peer's address unless `-auth_uri` names the Request-URI's host, which
//! voxbridge requires (RFC 3261 §22.4), as a phone sends it.

use std::time::Duration;

use serde_json::Value;
use vbtest::SipEnv;
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
