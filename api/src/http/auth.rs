//! Authentication, checked by middleware before a handler reads a byte of the body:
//! HTTP Basic with the account key/secret for provisioning resources, and an RS256 JWT signed
//! with an application's private key for the Voice API (`/v1/calls…`).

use std::collections::HashSet;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{HttpMessage, web};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use sea_orm::EntityTrait;
use serde::Deserialize;

use super::problem::{ApiError, Challenge};
use crate::state::AppState;
use crate::store::entity::application;

/// Tokens without `exp` are accepted for this long after `iat` (Vonage's maximum lifetime).
const MAX_TOKEN_AGE_SECS: i64 = 24 * 3600;
const CLOCK_LEEWAY_SECS: u64 = 30;

fn state(req: &ServiceRequest) -> Result<web::Data<AppState>, ApiError> {
    req.app_data::<web::Data<AppState>>().cloned().ok_or_else(|| ApiError::Internal("application state missing".into()))
}

fn authorization(req: &ServiceRequest, scheme: &str, challenge: Challenge) -> Result<String, ApiError> {
    let value = req
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or_else(|| ApiError::Unauthorized("missing Authorization header".into(), challenge))?
        .to_str()
        .map_err(|_| ApiError::Unauthorized("Authorization header is not ASCII".into(), challenge))?;
    let (given, rest) = value.trim().split_once(' ').unwrap_or((value, ""));
    if !given.eq_ignore_ascii_case(scheme) || rest.trim().is_empty() {
        return Err(ApiError::Unauthorized(format!("Authorization must use the {scheme} scheme"), challenge));
    }
    Ok(rest.trim().to_owned())
}

pub async fn require_basic(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let state = state(&req)?;
    let encoded = authorization(&req, "Basic", Challenge::Basic)?;
    let bad = |why: &str| ApiError::Unauthorized(why.to_owned(), Challenge::Basic);
    let decoded = STANDARD.decode(encoded).map_err(|_| bad("Basic credentials are not base64"))?;
    let decoded = String::from_utf8(decoded).map_err(|_| bad("Basic credentials are not UTF-8"))?;
    let (key, secret) = decoded.split_once(':').ok_or_else(|| bad("Basic credentials lack ':'"))?;
    if !state.account.verify(key, secret) {
        return Err(bad("wrong API key or secret").into());
    }
    next.call(req).await
}

/// Claims a Voice API token must carry.
#[derive(Debug, Deserialize)]
pub struct VoiceClaims {
    pub application_id: String,
    pub iat: i64,
    pub jti: String,
    #[serde(default)]
    pub exp: Option<i64>,
    #[serde(default)]
    pub nbf: Option<i64>,
}

/// The application a request was authenticated as.
#[derive(Debug, Clone)]
pub struct AuthenticatedApplication {
    pub id: String,
}

pub async fn require_jwt(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let state = state(&req)?;
    let token = authorization(&req, "Bearer", Challenge::Bearer)?;
    let app = verify_jwt(&state, &token, chrono::Utc::now().timestamp()).await?;
    req.extensions_mut().insert(app);
    next.call(req).await
}

/// Verifies a Voice API JWT: RS256 only, known application, valid signature, time claims.
pub async fn verify_jwt(state: &AppState, token: &str, now: i64) -> Result<AuthenticatedApplication, ApiError> {
    let bad = |why: String| ApiError::Unauthorized(why, Challenge::Bearer);
    let header = jsonwebtoken::decode_header(token).map_err(|e| bad(format!("malformed JWT: {e}")))?;
    // Pinning the algorithm defeats `alg: none` and HS256-with-the-public-key forgeries.
    if header.alg != Algorithm::RS256 {
        return Err(bad(format!("JWT algorithm {:?} is not accepted; use RS256", header.alg)));
    }
    // The application id chooses the key, so it is read before the signature can be checked;
    // nothing else of the unverified payload is trusted.
    let unverified = unverified_claims(token).map_err(|e| bad(format!("malformed JWT payload: {e}")))?;
    let app = application::Entity::find_by_id(unverified.application_id.clone())
        .one(&state.db)
        .await?
        .ok_or_else(|| bad(format!("unknown application {}", unverified.application_id)))?;
    let key = DecodingKey::from_rsa_pem(app.public_key.as_bytes())
        .map_err(|e| ApiError::Internal(format!("stored public key of {} unusable: {e}", app.id)))?;
    let mut validation = Validation::new(Algorithm::RS256);
    validation.required_spec_claims = HashSet::new();
    validation.validate_exp = true;
    validation.validate_nbf = true;
    validation.leeway = CLOCK_LEEWAY_SECS;
    let claims = jsonwebtoken::decode::<VoiceClaims>(token, &key, &validation)
        .map_err(|e| bad(format!("JWT rejected: {e}")))?
        .claims;
    let leeway = CLOCK_LEEWAY_SECS as i64;
    // Saturating: the claims are the client's numbers, and i64 overflow panics.
    if claims.iat > now.saturating_add(leeway) {
        return Err(bad("JWT issued in the future".into()));
    }
    if claims.exp.is_none() && claims.iat.saturating_add(MAX_TOKEN_AGE_SECS) < now {
        return Err(bad("JWT without exp is older than 24 hours".into()));
    }
    if claims.jti.is_empty() {
        return Err(bad("JWT jti is empty".into()));
    }
    Ok(AuthenticatedApplication { id: app.id })
}

fn unverified_claims(token: &str) -> Result<VoiceClaims, String> {
    let payload = token.split('.').nth(1).ok_or("no payload")?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).map_err(|e| e.to_string())?;
    serde_json::from_slice(&bytes).map_err(|e| e.to_string())
}
