//! Bad input of every kind gets a precise 4xx problem body and leaves nothing behind.

use reqwest::Method;
use serde_json::json;
use vbtest::{API_KEY, Server, assert_problem, basic, send};

#[tokio::test]
async fn domain_problems_are_named() {
    let s = Server::start().await;
    let (app_id, _) = s.create_application("http://127.0.0.1:9").await;

    let (status, body) = s
        .post_json(
            "/v1/psip",
            json!({"name": "acme-pbx", "application_id": app_id, "acl": ["10.0.0.0/8", "10.0.0.0/33", "banana"]}),
        )
        .await;
    assert_problem(status, &body, 400, &["acl[1]", "acl[2]"]);
    assert!(body["detail"].as_str().unwrap().contains("banana"), "{body}");

    for bad_name in ["ab", "Acme-PBX", "acme_pbx", "-acme", &"a".repeat(33)] {
        let (status, body) =
            s.post_json("/v1/psip", json!({"name": bad_name, "application_id": app_id, "acl": []})).await;
        assert_problem(status, &body, 400, &["name"]);
    }

    let (status, body) = s
        .post_json(
            "/v1/psip",
            json!({"name": "acme-pbx", "application_id": "00000000-0000-0000-0000-000000000000", "acl": []}),
        )
        .await;
    assert_problem(status, &body, 400, &["application_id"]);

    let (status, body) = s
        .post_json("/v1/psip", json!({"name": "acme-pbx", "application_id": app_id, "acl": [], "srtp": "sometimes"}))
        .await;
    assert_problem(status, &body, 400, &["srtp"]);

    let (status, body) =
        s.post_json("/v1/psip", json!({"name": "acme-pbx", "application_id": app_id, "acl": "10.0.0.0/8"})).await;
    assert_problem(status, &body, 400, &["acl"]);

    let (status, body) = s.post_json("/v1/psip", json!({"name": "acme-pbx", "application_id": app_id})).await;
    assert_problem(status, &body, 400, &["acl"]);

    // Users need digest_auth on the domain.
    let (status, _) = s.post_json("/v1/psip", json!({"name": "no-digest", "application_id": app_id, "acl": []})).await;
    assert_eq!(status, 201);
    let (status, body) =
        s.post_json("/v1/psip/no-digest/users", json!({"key": "alice", "secret": "long enough"})).await;
    assert_problem(status, &body, 409, &[]);

    // Nothing half-written.
    let (_, list) = s.get("/v1/psip").await;
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
}

#[tokio::test]
async fn number_problems_are_named() {
    let s = Server::start().await;
    let (app_id, _) = s.create_application("http://127.0.0.1:9").await;
    for bad in ["12ab", "123", "1234567890123456", "0441234567"] {
        let (status, body) = s.post_json("/v1/numbers", json!({"number": bad, "application_id": app_id})).await;
        assert_problem(status, &body, 400, &["number"]);
    }
    for bad in ["timeout=1999", "timeout=20001", "timeout=abc"] {
        let (status, body) = s
            .post_json(
                "/v1/numbers",
                json!({"number": "14155550100", "voice_callback_type": "sip", "voice_callback_value": format!("sip:a@pbx.example;{bad}")}),
            )
            .await;
        assert_problem(status, &body, 400, &["voice_callback_value"]);
        assert!(body["detail"].as_str().unwrap().contains("timeout"), "{body}");
    }
    let (status, body) = s
        .post_json(
            "/v1/numbers",
            json!({"number": "14155550100", "voice_callback_type": "sip", "voice_callback_value": "http://x"}),
        )
        .await;
    assert_problem(status, &body, 400, &["voice_callback_value"]);
    let (status, body) =
        s.post_json("/v1/numbers", json!({"number": "14155550100", "voice_callback_type": "phone"})).await;
    assert_problem(status, &body, 400, &["voice_callback_type"]);
    let (status, body) = s.post_json("/v1/numbers", json!({"number": "14155550100", "application_id": "nope"})).await;
    assert_problem(status, &body, 400, &["application_id"]);
    let (status, body) = s.post_json("/v1/numbers", json!({"number": "14155550100"})).await;
    assert_problem(status, &body, 400, &["application_id"]);
    let (_, list) = s.get("/v1/numbers").await;
    assert_eq!(list["count"], 0, "nothing half-written: {list}");
}

#[tokio::test]
async fn application_and_trunk_problems_are_named() {
    let s = Server::start().await;
    let (status, body) = s
        .post_json(
            "/v2/applications",
            json!({"name": "", "capabilities": {"voice": {"webhooks": {
                "answer_url": {"address": "not a url", "connect_timeout": 5},
                "event_url": {"address": "https://a.example/e", "http_method": "PATCH"}}}}}),
        )
        .await;
    assert_problem(status, &body, 400, &["capabilities.voice.webhooks.event_url.http_method"]);
    let (status, body) = s
        .post_json(
            "/v2/applications",
            json!({"name": "", "capabilities": {"voice": {"webhooks": {
                "answer_url": {"address": "not a url", "connect_timeout": 5},
                "event_url": {"address": "https://a.example/e"}}, "region": "mars"}}}),
        )
        .await;
    assert_problem(
        status,
        &body,
        400,
        &[
            "name",
            "capabilities.voice.webhooks.answer_url.address",
            "capabilities.voice.webhooks.answer_url.connect_timeout",
            "capabilities.voice.region",
        ],
    );
    let (status, body) = s.post_json("/v2/applications", json!({"name": 42})).await;
    assert_problem(status, &body, 400, &["name"]);

    let (status, body) = s
        .post_json("/v1/trunks", json!({"name": "bad trunk!", "gateways": [{"host": "bad host"}], "prefixes": ["4x"]}))
        .await;
    assert_problem(status, &body, 400, &["name", "gateways[0].host", "prefixes[0]"]);
    let (status, body) =
        s.post_json("/v1/trunks", json!({"name": "t", "gateways": [{"host": "a.example", "transport": "sctp"}]})).await;
    assert_problem(status, &body, 400, &["gateways[0].transport"]);
    let (status, body) = s.post_json("/v1/trunks", json!({"name": "t", "gateways": []})).await;
    assert_problem(status, &body, 400, &["gateways"]);
    let (_, apps) = s.get("/v2/applications").await;
    let (_, trunks) = s.get("/v1/trunks").await;
    assert_eq!((apps["total_items"].as_u64(), trunks["count"].as_u64()), (Some(0), Some(0)));
}

#[tokio::test]
async fn malformed_requests() {
    let s = Server::start().await;
    let post =
        |body: &'static str, ct: &'static str| s.admin(Method::POST, "/v1/psip").header("content-type", ct).body(body);
    let (status, body) = send(post("{\"name\": ", "application/json")).await;
    assert_problem(status, &body, 400, &[]);
    assert!(body["detail"].as_str().unwrap().contains("not valid JSON"), "{body}");
    let (status, body) = send(post("name=x", "application/x-www-form-urlencoded")).await;
    assert_problem(status, &body, 415, &[]);
    let big = format!("{{\"name\": \"{}\"}}", "a".repeat(200_000));
    let (status, body) =
        send(s.admin(Method::POST, "/v1/psip").header("content-type", "application/json").body(big)).await;
    assert_problem(status, &body, 413, &[]);
    let (status, body) = s.get("/v1/nothing-here").await;
    assert_problem(status, &body, 404, &[]);
    let (status, body) = s.get("/v1/numbers/not-a-number").await;
    assert_problem(status, &body, 404, &[]);
    // The server is still healthy.
    assert_eq!(s.get("/health").await.0, 200);
}

#[tokio::test]
async fn basic_auth_is_checked_before_anything() {
    let s = Server::start().await;
    let body = json!({"name": "x"});
    let cases = [
        None,
        Some(basic(API_KEY, "wrong")),
        Some(basic("wrong", vbtest::API_SECRET)),
        Some("Basic !!!not-base64".to_owned()),
        Some("Bearer abc".to_owned()),
    ];
    for auth in cases {
        let mut req = s.client.post(s.url("/v2/applications")).json(&body);
        if let Some(a) = &auth {
            req = req.header("authorization", a);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 401, "{auth:?}");
        assert!(resp.headers().get("www-authenticate").is_some());
        let problem: serde_json::Value = resp.json().await.unwrap();
        assert_problem(401, &problem, 401, &[]);
    }
    // Even a malformed body is not looked at without credentials.
    let resp =
        s.client.post(s.url("/v1/trunks")).header("content-type", "application/json").body("{").send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let (_, apps) = s.get("/v2/applications").await;
    assert_eq!(apps["total_items"], 0);
}
