//! Signed webhooks: every request voxbridge makes to an application can carry
//! `Authorization: Bearer <JWT>`, HS256 with the account's signature secret, as Vonage's signed
//! callbacks do. A body-carrying request adds `payload_hash`, the hex SHA-256 of the exact body
//! bytes, so the application can tell that the body was not altered.

use std::collections::HashSet;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Lifetime of a webhook token, seconds.
pub const TOKEN_LIFETIME_SECS: i64 = 300;
/// The `iss` claim voxbridge writes (Vonage writes `Vonage`).
pub const ISSUER: &str = "voxbridge";
/// Clock skew tolerated by [`verify`], seconds.
pub const LEEWAY_SECS: u64 = 30;

/// The claims of a webhook token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    pub iss: String,
    pub api_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_id: Option<String>,
    /// Hex SHA-256 of the request body; absent on requests without a body (GET).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_hash: Option<String>,
}

/// Hex SHA-256 of `body`.
pub fn payload_hash(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

/// A token for one request issued at `now_unix`. `body` is the exact bytes sent, if any; an
/// empty `application_id` leaves the claim out.
pub fn sign(secret: &str, api_key: &str, application_id: &str, body: Option<&[u8]>, now_unix: i64) -> String {
    let claims = Claims {
        iat: now_unix,
        exp: now_unix + TOKEN_LIFETIME_SECS,
        jti: uuid::Uuid::new_v4().to_string(),
        iss: ISSUER.to_owned(),
        api_key: api_key.to_owned(),
        application_id: (!application_id.is_empty()).then(|| application_id.to_owned()),
        payload_hash: body.map(payload_hash),
    };
    let mut header = Header::new(Algorithm::HS256);
    header.typ = Some("JWT".to_owned());
    // HS256 accepts any key length and the claims are plain strings and integers, so encoding
    // cannot fail; an empty string (rejected by any verifier) is returned if it ever does.
    jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(secret.as_bytes())).unwrap_or_else(|e| {
        tracing::error!(error = %e, "could not sign a webhook token");
        String::new()
    })
}

/// Verifies a webhook token against the current time: see [`verify_at`].
pub fn verify(secret: &str, token: &str, body: Option<&[u8]>) -> Result<Claims, String> {
    verify_at(secret, token, body, chrono::Utc::now().timestamp())
}

/// Verifies a webhook token as an application would: HS256 only (no `none`, no RSA), a valid
/// signature with `secret`, not expired at `now_unix` (with [`LEEWAY_SECS`]), and when `body`
/// is given a `payload_hash` equal to its SHA-256; a token with a `payload_hash` is rejected
/// when no body is given.
pub fn verify_at(secret: &str, token: &str, body: Option<&[u8]>, now_unix: i64) -> Result<Claims, String> {
    let header = jsonwebtoken::decode_header(token).map_err(|e| format!("malformed JWT: {e}"))?;
    if header.alg != Algorithm::HS256 {
        return Err(format!("JWT algorithm {:?} is not accepted; expected HS256", header.alg));
    }
    let mut validation = Validation::new(Algorithm::HS256);
    validation.required_spec_claims = HashSet::new();
    // Time is checked below against `now_unix`, not the library's clock.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    let claims = jsonwebtoken::decode::<Claims>(token, &DecodingKey::from_secret(secret.as_bytes()), &validation)
        .map_err(|e| format!("JWT rejected: {e}"))?
        .claims;
    let leeway = LEEWAY_SECS as i64;
    if claims.exp + leeway < now_unix {
        return Err("JWT expired".into());
    }
    if claims.iat > now_unix + leeway {
        return Err("JWT issued in the future".into());
    }
    match (body, &claims.payload_hash) {
        (Some(body), Some(hash)) if hash.eq_ignore_ascii_case(&payload_hash(body)) => {}
        (Some(_), Some(_)) => return Err("payload_hash does not match the body".into()),
        (Some(_), None) => return Err("JWT has no payload_hash for a request with a body".into()),
        (None, Some(_)) => return Err("JWT has a payload_hash but the request has no body".into()),
        (None, None) => {}
    }
    Ok(claims)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const SECRET: &str = "a-signature-secret-of-some-length";
    const NOW: i64 = 1_800_000_000;

    #[test]
    fn round_trip_with_body() {
        let body = br#"{"status":"ringing"}"#;
        let token = sign(SECRET, "key1", "app-1", Some(body), NOW);
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.alg, Algorithm::HS256);
        assert_eq!(header.typ.as_deref(), Some("JWT"));
        let claims = verify_at(SECRET, &token, Some(body), NOW + 10).unwrap();
        assert_eq!(claims.iat, NOW);
        assert_eq!(claims.exp, NOW + 300);
        assert_eq!(claims.iss, "voxbridge");
        assert_eq!(claims.api_key, "key1");
        assert_eq!(claims.application_id.as_deref(), Some("app-1"));
        assert_eq!(claims.payload_hash.as_deref(), Some(payload_hash(body).as_str()));
        assert!(uuid::Uuid::parse_str(&claims.jti).is_ok());
    }

    #[test]
    fn round_trip_without_body() {
        let token = sign(SECRET, "key1", "", None, NOW);
        let claims = verify_at(SECRET, &token, None, NOW).unwrap();
        assert_eq!(claims.application_id, None);
        assert_eq!(claims.payload_hash, None);
    }

    #[test]
    fn each_token_has_its_own_jti() {
        let a = verify_at(SECRET, &sign(SECRET, "k", "a", None, NOW), None, NOW).unwrap();
        let b = verify_at(SECRET, &sign(SECRET, "k", "a", None, NOW), None, NOW).unwrap();
        assert_ne!(a.jti, b.jti);
    }

    #[test]
    fn rejects_wrong_secret_tampered_body_and_expiry() {
        let token = sign(SECRET, "k", "a", Some(b"{}"), NOW);
        assert!(verify_at("another secret", &token, Some(b"{}"), NOW).is_err());
        assert!(verify_at(SECRET, &token, Some(b"{ }"), NOW).is_err());
        assert!(verify_at(SECRET, &token, None, NOW).is_err());
        assert!(verify_at(SECRET, &token, Some(b"{}"), NOW + 300 + LEEWAY_SECS as i64 + 1).is_err());
        assert!(verify_at(SECRET, &token, Some(b"{}"), NOW - 3600).is_err());
        let unhashed = sign(SECRET, "k", "a", None, NOW);
        assert!(verify_at(SECRET, &unhashed, Some(b"{}"), NOW).is_err());
    }

    #[test]
    fn rejects_other_algorithms() {
        // `alg: none` with the same claims.
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let token = sign(SECRET, "k", "a", None, NOW);
        let payload = token.split('.').nth(1).unwrap();
        let none = format!("{}.{payload}.", b64.encode(br#"{"alg":"none","typ":"JWT"}"#));
        assert!(verify_at(SECRET, &none, None, NOW).is_err());
        let hs512 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &verify_at(SECRET, &token, None, NOW).unwrap(),
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap();
        assert!(verify_at(SECRET, &hs512, None, NOW).unwrap_err().contains("HS512"));
        assert!(verify_at(SECRET, "not a token", None, NOW).is_err());
    }

    #[test]
    fn verify_uses_the_clock() {
        let now = chrono::Utc::now().timestamp();
        let token = sign(SECRET, "k", "a", Some(b"x"), now);
        assert!(verify(SECRET, &token, Some(b"x")).is_ok());
        let old = sign(SECRET, "k", "a", Some(b"x"), now - 3600);
        assert!(verify(SECRET, &old, Some(b"x")).is_err());
    }
}
