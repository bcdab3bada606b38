//! Input bounds (issue 6): every integer in a query or a body is checked before it reaches the
//! database, and refused with a 400 problem body naming the field; the worker that refused it
//! goes on serving. Wrong methods, content types and JSON get problem bodies too.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use serde_json::{Value, json};
use vbtest::{Server, assert_problem, send};

fn jwt(app_id: &str, private_key: &str) -> String {
    let now = chrono::Utc::now().timestamp();
    let claims =
        json!({"application_id": app_id, "iat": now, "exp": now + 600, "jti": uuid::Uuid::new_v4().to_string()});
    let key = EncodingKey::from_rsa_pem(private_key.as_bytes()).expect("key");
    jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &key).expect("jwt")
}

/// The server still answers, on every worker (actix runs two): a panic would have dropped a
/// connection and, before that, lost the worker's request.
async fn still_serving(s: &Server) {
    for _ in 0..4 {
        let (status, body) = s.get("/v2/applications").await;
        assert_eq!(status, 200, "{body}");
    }
}

#[tokio::test]
async fn application_paging_is_bounded() {
    let s = Server::start().await;
    for (query, name) in [
        ("page=9223372036854775807", "page"),
        ("page=9223372036854775808", "page"),
        ("page=18446744073709551616", "page"),
        ("page_size=100&page=10000001", "page"),
        ("page=0", "page"),
        ("page=-1", "page"),
        ("page=1.5", "page"),
        ("page=", "page"),
        ("page=1&page=2", "page"),
        ("page_size=0", "page_size"),
        ("page_size=101", "page_size"),
        ("page_size=9223372036854775808", "page_size"),
        ("page_size=ten", "page_size"),
    ] {
        let (status, body) = s.get(&format!("/v2/applications?{query}")).await;
        assert_problem(status, &body, 400, &[name]);
        assert_eq!(body["type"], "https://voxbridge.dev/api-errors#validation", "{query}: {body}");
        still_serving(&s).await;
    }
    // The bounds themselves are accepted, and the offset they make does not overflow.
    let (status, body) = s.get("/v2/applications?page_size=100&page=10000000").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!((body["page"].as_u64(), body["page_size"].as_u64()), (Some(10_000_000), Some(100)));
    assert_eq!(body["_embedded"]["applications"], json!([]));
    let (status, body) = s.get("/v2/applications?page_size=1&page=1").await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn call_listing_is_bounded() {
    let s = Server::start().await;
    let (app_id, private_key) = s.create_application("http://127.0.0.1:9").await;
    let token = jwt(&app_id, &private_key);
    let calls = |query: &str| s.client.get(s.url(&format!("/v1/calls?{query}"))).bearer_auth(&token);
    let long = format!("conversation_uuid={}", "c".repeat(129));
    for (query, name) in [
        ("record_index=9223372036854775808", "record_index"),
        ("record_index=9223372036854775807", "record_index"),
        ("record_index=18446744073709551615", "record_index"),
        ("record_index=1000000001", "record_index"),
        ("record_index=-1", "record_index"),
        ("page_size=0", "page_size"),
        ("page_size=101", "page_size"),
        ("page_size=18446744073709551616", "page_size"),
        ("order=sideways", "order"),
        ("status=dancing", "status"),
        (long.as_str(), "conversation_uuid"),
    ] {
        let (status, body) = send(calls(query)).await;
        assert_problem(status, &body, 400, &[name]);
        let (status, body) = send(calls("")).await;
        assert_eq!(status, 200, "after {query}: {body}");
    }
    // Every refused parameter at once.
    let (status, body) = send(calls("page_size=0&record_index=x&order=up")).await;
    assert_problem(status, &body, 400, &["page_size", "record_index", "order"]);

    let (status, body) = send(calls("record_index=1000000000&page_size=100&order=desc&status=completed")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["record_index"], 1_000_000_000u64);
    assert!(body["_links"]["next"].is_null(), "no link beyond the bound: {body}");
}

fn application(answer: Value, event: Value, voice_extra: Value) -> Value {
    let mut voice = json!({"webhooks": {"answer_url": answer, "event_url": event}});
    if let (Some(v), Some(extra)) = (voice.as_object_mut(), voice_extra.as_object()) {
        v.extend(extra.clone());
    }
    json!({"name": "bounds", "capabilities": {"voice": voice}})
}

#[tokio::test]
async fn body_integers_are_bounded() {
    let s = Server::start().await;
    let hook = |extra: Value| {
        let mut h = json!({"address": "https://app.example/hook"});
        if let (Some(h), Some(extra)) = (h.as_object_mut(), extra.as_object()) {
            h.extend(extra.clone());
        }
        h
    };
    let base = "capabilities.voice";
    let cases: Vec<(Value, String)> = vec![
        (
            application(hook(json!({"connect_timeout": -1})), hook(json!({})), json!({})),
            format!("{base}.webhooks.answer_url.connect_timeout"),
        ),
        (
            application(hook(json!({"connect_timeout": 299})), hook(json!({})), json!({})),
            format!("{base}.webhooks.answer_url.connect_timeout"),
        ),
        (
            application(hook(json!({"socket_timeout": 5001})), hook(json!({})), json!({})),
            format!("{base}.webhooks.answer_url.socket_timeout"),
        ),
        (
            application(hook(json!({})), hook(json!({"socket_timeout": 10001})), json!({})),
            format!("{base}.webhooks.event_url.socket_timeout"),
        ),
        (
            application(hook(json!({})), hook(json!({"connect_timeout": 1.5})), json!({})),
            format!("{base}.webhooks.event_url.connect_timeout"),
        ),
        (
            application(hook(json!({})), hook(json!({})), json!({"conversations_ttl": 4294967296u64})),
            format!("{base}.conversations_ttl"),
        ),
        (
            application(hook(json!({})), hook(json!({})), json!({"conversations_ttl": 9001})),
            format!("{base}.conversations_ttl"),
        ),
        (
            application(hook(json!({})), hook(json!({})), json!({"leg_persistence_time": 0})),
            format!("{base}.leg_persistence_time"),
        ),
    ];
    for (body, name) in cases {
        let (status, problem) = s.post_json("/v2/applications", body.clone()).await;
        assert_problem(status, &problem, 400, &[&name]);
        still_serving(&s).await;
    }
    // Beyond u64, as text (serde_json::Value cannot hold it).
    let huge = application(hook(json!({"connect_timeout": 4242})), hook(json!({})), json!({}))
        .to_string()
        .replace("4242", "18446744073709551616");
    let (status, problem) =
        send(s.admin(Method::POST, "/v2/applications").header("content-type", "application/json").body(huge)).await;
    assert_problem(status, &problem, 400, &["capabilities.voice.webhooks.answer_url.connect_timeout"]);
    // The limits themselves are accepted.
    let ok = application(
        hook(json!({"connect_timeout": 300, "socket_timeout": 5000})),
        hook(json!({"connect_timeout": 1000, "socket_timeout": 10000})),
        json!({"conversations_ttl": 9000, "leg_persistence_time": 31}),
    );
    let (status, body) = s.post_json("/v2/applications", ok).await;
    assert_eq!(status, 201, "{body}");

    let gateway = |extra: Value| {
        let mut g = json!({"host": "sbc.example"});
        if let (Some(g), Some(extra)) = (g.as_object_mut(), extra.as_object()) {
            g.extend(extra.clone());
        }
        json!({"name": "bounded", "gateways": [g]})
    };
    for (extra, name) in [
        (json!({"port": 0}), "gateways[0].port"),
        (json!({"port": 65536}), "gateways[0].port"),
        (json!({"port": 9223372036854775808u64}), "gateways[0].port"),
        (json!({"priority": 65536}), "gateways[0].priority"),
        (json!({"priority": -1}), "gateways[0].priority"),
        (json!({"weight": 70000}), "gateways[0].weight"),
        (json!({"weight": "heavy"}), "gateways[0].weight"),
    ] {
        let (status, problem) = s.post_json("/v1/trunks", gateway(extra.clone())).await;
        assert_problem(status, &problem, 400, &[name]);
        still_serving(&s).await;
    }
    let (status, body) =
        s.post_json("/v1/trunks", gateway(json!({"port": 65535, "priority": 65535, "weight": 65535}))).await;
    assert_eq!(status, 201, "{body}");
    let (_, trunks) = s.get("/v1/trunks").await;
    assert_eq!(trunks["count"], 1, "only the valid trunk was stored: {trunks}");
}

#[tokio::test]
async fn query_flags_methods_and_media_types_get_problems() {
    let s = Server::start().await;
    let (app_id, _) = s.create_application("http://127.0.0.1:9").await;
    let (status, body) =
        s.post_json("/v1/psip", json!({"name": "bounds-pbx", "application_id": app_id, "acl": []})).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = s.delete("/v1/psip/bounds-pbx?cascade=maybe").await;
    assert_problem(status, &body, 400, &["cascade"]);
    let (status, body) = s.delete("/v1/psip/bounds-pbx?cascade=true").await;
    assert_eq!(status, 204, "{body}");

    // A known path with another method: 405 with Allow; an unknown path: 404.
    let resp = s.admin(Method::PATCH, "/v1/psip").send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 405);
    assert_eq!(resp.headers()["allow"], "GET, POST");
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let body: Value = resp.json().await.unwrap();
    assert_problem(405, &body, 405, &[]);
    let resp = s.client.request(Method::TRACE, s.url("/health")).send().await.unwrap();
    assert_eq!((resp.status().as_u16(), resp.headers()["allow"].to_str().unwrap()), (405, "GET"));
    let (status, body) = s.get("/v1/psip/bounds-pbx/users/alice/extra").await;
    assert_problem(status, &body, 404, &[]);

    // Content types and JSON.
    for (content_type, body, expected) in [
        (Some("text/plain"), "{}", 415),
        (None, "{}", 415),
        (Some("application/x-www-form-urlencoded"), "name=x", 415),
        (Some("application/json"), "{\"name\": ", 400),
        (Some("application/json"), "[1, 2]", 400),
        (Some("application/json"), "", 400),
    ] {
        let mut req = s.admin(Method::POST, "/v2/applications").body(body);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        assert_eq!(
            resp.headers().get("content-type").and_then(|v| v.to_str().ok()),
            Some("application/problem+json"),
            "{content_type:?} {body}"
        );
        let problem: Value = resp.json().await.unwrap();
        assert_problem(status, &problem, expected, &[]);
    }
    still_serving(&s).await;
}

#[tokio::test]
async fn call_listing_filters_by_date_and_its_links_keep_the_filters() {
    let env = vbtest::SipEnv::start(serde_json::json!([{"action": "wait", "timeout": 1}]), &["127.0.0.1"], None).await;
    let before = chrono::Utc::now() - chrono::Duration::seconds(1);
    for i in 0..3 {
        let sip = vbtest::raw::RawSip::new(&env.sip).await;
        let uri = format!("sip:+14155550100@{}", env.host);
        sip.send(&sip.invite(&uri, &format!("dates-{i}"), 1, "", 40000)).await;
        sip.final_response(std::time::Duration::from_secs(10)).await.expect("answered");
    }
    let after = chrono::Utc::now() + chrono::Duration::seconds(1);
    let iso = |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let list =
        |query: String| env.server.client.get(env.server.url(&format!("/v1/calls?{query}"))).bearer_auth(env.jwt());
    let (status, body) = send(list(format!("date_start={}&date_end={}&page_size=2", iso(before), iso(after)))).await;
    assert_eq!((status, body["count"].as_u64()), (200, Some(3)), "{body}");
    let next = body["_links"]["next"]["href"].as_str().expect("a next page").to_owned();
    assert!(next.contains("date_start=") && next.contains("date_end=") && next.contains("record_index=2"), "{next}");
    let (status, page2) = send(env.server.client.get(env.server.url(&next)).bearer_auth(env.jwt())).await;
    assert_eq!((status, page2["_embedded"]["calls"].as_array().map(Vec::len)), (200, Some(1)), "{page2}");
    let (_, none) = send(list(format!("date_start={}", iso(after)))).await;
    assert_eq!(none["count"], 0);
    let (status, body) = send(list("date_start=yesterday&date_end=2020-01-01T00:00:00Z".into())).await;
    assert_problem(status, &body, 400, &["date_start"]);
    let (status, body) = send(list(format!("date_start={}&date_end={}", iso(after), iso(before)))).await;
    assert_problem(status, &body, 400, &["date_end"]);
}
