//! Voice API authentication with real RS256 tokens signed by the application's generated
//! private key, and every kind of token that must be refused.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use vbtest::{Server, assert_problem, send};

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn sign(alg: Algorithm, key: &EncodingKey, claims: &Value) -> String {
    jsonwebtoken::encode(&Header::new(alg), claims, key).expect("token")
}

fn claims(app_id: &str) -> Value {
    json!({"application_id": app_id, "iat": now(), "jti": uuid::Uuid::new_v4().to_string(), "exp": now() + 900})
}

async fn calls_with(s: &Server, token: &str) -> (u16, Value) {
    send(s.client.get(s.url("/v1/calls")).bearer_auth(token)).await
}

#[tokio::test]
async fn valid_tokens_are_accepted() {
    let s = Server::start().await;
    let (app_id, private_key) = s.create_application("http://127.0.0.1:9").await;
    let key = EncodingKey::from_rsa_pem(private_key.as_bytes()).unwrap();

    let (status, body) = calls_with(&s, &sign(Algorithm::RS256, &key, &claims(&app_id))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["count"], 0);
    assert_eq!(body["_embedded"]["calls"], json!([]));

    // exp and nbf are optional.
    let minimal = json!({"application_id": app_id, "iat": now(), "jti": "abc"});
    assert_eq!(calls_with(&s, &sign(Algorithm::RS256, &key, &minimal)).await.0, 200);
    let with_nbf = json!({"application_id": app_id, "iat": now(), "jti": "abc", "nbf": now() - 10, "exp": now() + 60});
    assert_eq!(calls_with(&s, &sign(Algorithm::RS256, &key, &with_nbf)).await.0, 200);
}

#[tokio::test]
async fn forged_and_stale_tokens_are_refused() {
    let s = Server::start().await;
    let (app_id, private_key) = s.create_application("http://127.0.0.1:9").await;
    let key = EncodingKey::from_rsa_pem(private_key.as_bytes()).unwrap();
    let (_, other_private) = s.create_application("http://127.0.0.1:9").await;
    let other_key = EncodingKey::from_rsa_pem(other_private.as_bytes()).unwrap();
    let (_, app) = s.get(&format!("/v2/applications/{app_id}")).await;
    let public_pem = app["keys"]["public_key"].as_str().unwrap().to_owned();

    let mut cases: Vec<(&str, String)> = Vec::new();
    // Unknown application.
    cases.push(("unknown application", sign(Algorithm::RS256, &key, &claims("00000000-0000-0000-0000-000000000000"))));
    // Right application, wrong private key.
    cases.push(("bad signature", sign(Algorithm::RS256, &other_key, &claims(&app_id))));
    // alg: none, no signature.
    let b64 = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    cases.push(("alg none", format!("{}.{}.", b64(&json!({"alg": "none", "typ": "JWT"})), b64(&claims(&app_id)))));
    // HS256 keyed with the (public) RSA key: the classic algorithm-confusion forgery.
    cases.push((
        "hs256 with public key",
        sign(Algorithm::HS256, &EncodingKey::from_secret(public_pem.as_bytes()), &claims(&app_id)),
    ));
    // Expired, not yet valid, issued in the future, missing jti, ancient without exp.
    let mut c = claims(&app_id);
    c["exp"] = json!(now() - 3600);
    cases.push(("expired", sign(Algorithm::RS256, &key, &c)));
    let mut c = claims(&app_id);
    c["nbf"] = json!(now() + 3600);
    cases.push(("not yet valid", sign(Algorithm::RS256, &key, &c)));
    let mut c = claims(&app_id);
    c["iat"] = json!(now() + 3600);
    cases.push(("issued in the future", sign(Algorithm::RS256, &key, &c)));
    let c = json!({"application_id": app_id, "iat": now()});
    cases.push(("no jti", sign(Algorithm::RS256, &key, &c)));
    let c = json!({"application_id": app_id, "iat": now() - 3 * 86400, "jti": "x"});
    cases.push(("old without exp", sign(Algorithm::RS256, &key, &c)));
    // Tampered payload: signature no longer matches.
    let good = sign(Algorithm::RS256, &key, &claims(&app_id));
    let parts: Vec<&str> = good.split('.').collect();
    let mut c = claims(&app_id);
    c["application_id"] = json!(app_id.clone());
    c["jti"] = json!("tampered");
    cases.push(("tampered", format!("{}.{}.{}", parts[0], b64(&c), parts[2])));
    cases.push(("garbage", "not.a.jwt".into()));

    for (name, token) in cases {
        let (status, body) = calls_with(&s, &token).await;
        assert_problem(status, &body, 401, &[]);
        assert_eq!(body["title"], "Invalid credentials supplied", "{name}");
    }

    // No header, wrong scheme, and Basic credentials do not open the Voice API.
    let (status, body) = send(s.client.get(s.url("/v1/calls"))).await;
    assert_problem(status, &body, 401, &[]);
    let (status, body) =
        send(s.client.get(s.url("/v1/calls")).basic_auth(vbtest::API_KEY, Some(vbtest::API_SECRET))).await;
    assert_problem(status, &body, 401, &[]);
}
