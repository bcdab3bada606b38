//! The quickstart against a real server: an application, a domain with an ACL and a user, a
//! number and a trunk are created, listed, fetched, updated and deleted.

use serde_json::json;
use vbtest::{Server, assert_problem};

#[tokio::test]
async fn applications_crud_and_paging() {
    let s = Server::start().await;
    let (id, private_key) = s.create_application("http://127.0.0.1:9").await;
    assert!(private_key.contains("BEGIN PRIVATE KEY"));

    let (status, app) = s.get(&format!("/v2/applications/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(app["name"], "test app");
    assert!(app["keys"]["private_key"].is_null(), "private key must be returned only once");
    let voice = &app["capabilities"]["voice"];
    assert_eq!(voice["webhooks"]["answer_url"]["socket_timeout"], 5000);
    assert_eq!(voice["webhooks"]["event_url"]["socket_timeout"], 10000);
    assert_eq!(voice["signed_callbacks"], true);
    assert_eq!(app["_links"]["self"]["href"], format!("/v2/applications/{id}"));

    for _ in 0..2 {
        s.create_application("http://127.0.0.1:9").await;
    }
    let (status, page) = s.get("/v2/applications?page_size=2&page=2").await;
    assert_eq!(status, 200);
    assert_eq!(page["total_items"], 3);
    assert_eq!(page["total_pages"], 2);
    assert_eq!(page["_embedded"]["applications"].as_array().map(Vec::len), Some(1));
    assert!(page["_links"]["next"].is_null());
    assert_eq!(page["_links"]["prev"]["href"], "/v2/applications?page_size=2&page=1");
    let (status, body) = s.get("/v2/applications?page_size=500").await;
    assert_problem(status, &body, 400, &["page_size"]);

    let (status, updated) = s
        .put_json(
            &format!("/v2/applications/{id}"),
            json!({"name": "renamed", "capabilities": {"voice": {"webhooks": {
                "answer_url": {"address": "https://app.example/answer", "http_method": "POST"},
                "event_url": {"address": "https://app.example/event"}
            }, "region": "eu"}}}),
        )
        .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["name"], "renamed");
    assert_eq!(updated["capabilities"]["voice"]["region"], "eu");
    assert_eq!(updated["keys"]["public_key"], app["keys"]["public_key"], "key kept when not given");

    let (status, _) = s.delete(&format!("/v2/applications/{id}")).await;
    assert_eq!(status, 204);
    let (status, body) = s.get(&format!("/v2/applications/{id}")).await;
    assert_problem(status, &body, 404, &[]);
}

#[tokio::test]
async fn application_with_own_public_key() {
    use rsa::pkcs8::{EncodePublicKey, LineEnding};
    let s = Server::start().await;
    let key = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
    let pem = key.to_public_key().to_public_key_pem(LineEnding::LF).unwrap();
    let (status, body) = s.post_json("/v2/applications", json!({"name": "byo key", "keys": {"public_key": pem}})).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["keys"]["public_key"], pem);
    assert!(body["keys"]["private_key"].is_null());
    let (status, body) = s
        .post_json("/v2/applications", json!({"name": "bad key", "keys": {"public_key": "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"}}))
        .await;
    assert_problem(status, &body, 400, &["keys.public_key"]);
}

#[tokio::test]
async fn domains_users_numbers_trunks() {
    let s = Server::start().await;
    let (app_id, _) = s.create_application("http://127.0.0.1:9").await;

    // Domain with an ACL and digest users.
    let (status, domain) = s
        .post_json(
            "/v1/psip",
            json!({"name": "acme-pbx", "application_id": app_id, "acl": ["192.0.2.0/24", "2001:db8::10"],
                   "tls": "always", "digest_auth": true}),
        )
        .await;
    assert_eq!(status, 201, "{domain}");
    assert_eq!(domain["acl"], json!(["192.0.2.0/24", "2001:db8::10/128"]));
    assert_eq!(domain["srtp"], "optional");
    assert_eq!(domain["domain_type"], "app");
    let uris: Vec<&str> = domain["sip_uris"].as_array().unwrap().iter().filter_map(|u| u["uri"].as_str()).collect();
    assert_eq!(
        uris,
        [
            "sip:acme-pbx.sip-us.sip.voxbridge.local",
            "sip:acme-pbx.sip-eu.sip.voxbridge.local",
            "sip:acme-pbx.sip-ap.sip.voxbridge.local"
        ]
    );
    let (status, body) =
        s.post_json("/v1/psip", json!({"name": "acme-pbx", "application_id": app_id, "acl": []})).await;
    assert_problem(status, &body, 409, &[]);

    let (status, user) =
        s.post_json("/v1/psip/acme-pbx/users", json!({"key": "alice", "secret": "correct horse"})).await;
    assert_eq!(status, 201, "{user}");
    assert_eq!(user, json!({"key": "alice", "domain": "acme-pbx", "created_at": user["created_at"]}));
    assert!(user.get("secret").is_none());
    let (status, users) = s.get("/v1/psip/acme-pbx/users").await;
    assert_eq!(status, 200);
    assert_eq!(users.as_array().map(Vec::len), Some(1));
    assert!(!users.to_string().contains("correct horse"), "secrets are never returned");
    let (status, _) = s.put_json("/v1/psip/acme-pbx/users/alice", json!({"secret": "battery staple"})).await;
    assert_eq!(status, 200);
    let (status, body) = s.post_json("/v1/psip/acme-pbx/users", json!({"key": "bob", "secret": "short"})).await;
    assert_problem(status, &body, 400, &["secret"]);

    let (status, list) = s.get("/v1/psip").await;
    assert_eq!(status, 200);
    assert_eq!(list[0]["name"], "acme-pbx");
    let (status, fetched) = s.get("/v1/psip/acme-pbx").await;
    assert_eq!((status, &fetched["tls"]), (200, &json!("always")));

    let (status, updated) = s
        .put_json("/v1/psip/acme-pbx", json!({"application_id": app_id, "acl": ["10.0.0.0/8"], "digest_auth": true}))
        .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["acl"], json!(["10.0.0.0/8"]));
    assert_eq!(updated["tls"], "optional");

    // The application is in use: it cannot be deleted.
    let (status, body) = s.delete(&format!("/v2/applications/{app_id}")).await;
    assert_problem(status, &body, 409, &[]);

    // Numbers: linked to the application, and forwarded to SIP.
    let (status, n) = s.post_json("/v1/numbers", json!({"number": "+14155550100", "application_id": app_id})).await;
    assert_eq!(status, 201, "{n}");
    assert_eq!(n["number"], "14155550100");
    let (status, n2) = s
        .post_json(
            "/v1/numbers",
            json!({"number": "442079460000", "voice_callback_type": "sip",
                   "voice_callback_value": "sip:reception@pbx.example.com;transport=tls;timeout=8000"}),
        )
        .await;
    assert_eq!(status, 201, "{n2}");
    let (status, list) = s.get("/v1/numbers").await;
    assert_eq!(status, 200);
    assert_eq!(list["count"], 2);
    let (status, fetched) = s.get("/v1/numbers/442079460000").await;
    assert_eq!(status, 200);
    assert_eq!(fetched["voice_callback_value"], "sip:reception@pbx.example.com;transport=tls;timeout=8000");
    let (status, moved) = s.put_json("/v1/numbers/442079460000", json!({"application_id": app_id})).await;
    assert_eq!(status, 200, "{moved}");
    assert!(moved["voice_callback_value"].is_null());

    // Trunks.
    let (status, t) = s
        .post_json(
            "/v1/trunks",
            json!({"name": "carrier-a", "prefixes": ["1", "+44"],
                   "gateways": [{"host": "sbc1.carrier.example", "transport": "tls", "port": 5061, "priority": 0},
                                {"host": "192.0.2.50"}],
                   "credentials": {"username": "acct", "password": "p4ss"}}),
        )
        .await;
    assert_eq!(status, 201, "{t}");
    assert_eq!(t["prefixes"], json!(["1", "44"]));
    assert_eq!(
        t["gateways"][1],
        json!({"host": "192.0.2.50", "port": 5060, "transport": "udp", "priority": 0, "weight": 1})
    );
    assert_eq!(t["credentials"], json!({"username": "acct"}));
    assert!(!t.to_string().contains("p4ss"), "trunk passwords are never returned");
    let tid = t["id"].as_str().unwrap();
    let (status, pbx) = s
        .post_json(
            "/v1/trunks",
            json!({"name": "office-pbx", "pbx": true, "gateways": [{"host": "pbx.office.example"}]}),
        )
        .await;
    assert_eq!(status, 201, "{pbx}");
    let (status, list) = s.get("/v1/trunks").await;
    assert_eq!((status, &list["count"]), (200, &json!(2)));
    let (status, fetched) = s.get(&format!("/v1/trunks/{tid}")).await;
    assert_eq!((status, &fetched["name"]), (200, &json!("carrier-a")));
    let (status, body) = s
        .put_json(&format!("/v1/trunks/{tid}"), json!({"name": "office-pbx", "gateways": [{"host": "x.example"}]}))
        .await;
    assert_problem(status, &body, 409, &[]);

    // Deleting a domain with users needs cascade.
    let (status, body) = s.delete("/v1/psip/acme-pbx").await;
    assert_problem(status, &body, 409, &[]);
    let (status, _) = s.delete("/v1/psip/acme-pbx?cascade=true").await;
    assert_eq!(status, 204);
    let (status, _) = s.get("/v1/psip/acme-pbx/users/alice").await;
    assert_eq!(status, 404);
    for path in [format!("/v1/trunks/{tid}"), "/v1/numbers/14155550100".into()] {
        assert_eq!(s.delete(&path).await.0, 204, "{path}");
        assert_eq!(s.get(&path).await.0, 404, "{path}");
    }
}
