//! `Body<T>`: a JSON request body, read with a size limit and deserialised with the path of
//! the offending field, so that a wrong type or unknown enum value is reported by name in a
//! problem body instead of actix's plain-text error.

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest};
use domains::problem::InvalidParameter;
use futures_util::StreamExt;
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;

use super::problem::ApiError;

/// Largest accepted request body: provisioning documents are small.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

pub struct Body<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for Body<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or_default().trim().to_ascii_lowercase());
        let declared_len = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let mut payload = payload.take();
        Box::pin(async move {
            match content_type.as_deref() {
                Some(ct) if ct == "application/json" || ct.ends_with("+json") => {}
                other => {
                    return Err(ApiError::UnsupportedMediaType(format!(
                        "expected Content-Type: application/json, got {}",
                        other.unwrap_or("none")
                    )));
                }
            }
            if declared_len.is_some_and(|n| n > MAX_BODY_BYTES) {
                return Err(ApiError::PayloadTooLarge(MAX_BODY_BYTES));
            }
            let mut body = Vec::with_capacity(declared_len.unwrap_or(1024).min(MAX_BODY_BYTES));
            while let Some(chunk) = payload.next().await {
                let chunk = chunk
                    .map_err(|e| ApiError::BadRequest { detail: format!("reading body: {e}"), invalid: vec![] })?;
                if body.len() + chunk.len() > MAX_BODY_BYTES {
                    return Err(ApiError::PayloadTooLarge(MAX_BODY_BYTES));
                }
                body.extend_from_slice(&chunk);
            }
            parse(&body).map(Body)
        })
    }
}

/// Deserialises `body`, naming the field at fault (`capabilities.voice.webhooks.answer_url`).
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            ApiError::BadRequest { detail: format!("the body is not valid JSON: {inner}"), invalid: vec![] }
        } else {
            let reason = strip_position(&inner.to_string());
            ApiError::Validation(vec![InvalidParameter::new(field_name(&path, &reason), reason)])
        }
    })
}

/// The dotted path of the refused value; for a missing field, the path of that field.
fn field_name(path: &str, reason: &str) -> String {
    let missing = reason.strip_prefix("missing field `").and_then(|r| r.split('`').next());
    match (path, missing) {
        (".", Some(f)) => f.to_owned(),
        (".", None) => "body".to_owned(),
        (p, Some(f)) => format!("{p}.{f}"),
        (p, None) => p.to_owned(),
    }
}

/// serde_json appends " at line 1 column 42" to its messages; the field name says more.
fn strip_position(msg: &str) -> String {
    match msg.rsplit_once(" at line ") {
        Some((message, _)) => message.to_owned(),
        None => msg.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Outer {
        inner: Inner,
    }
    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Inner {
        count: u8,
    }

    #[test]
    fn names_the_field() {
        match parse::<Outer>(br#"{"inner":{"count":"x"}}"#) {
            Err(ApiError::Validation(v)) => {
                assert_eq!(v[0].name, "inner.count");
                assert!(v[0].reason.starts_with("invalid type"), "{}", v[0].reason);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(parse::<Outer>(b"{nope"), Err(ApiError::BadRequest { .. })));
        match parse::<Outer>(b"{}") {
            Err(ApiError::Validation(v)) => {
                assert_eq!((v[0].name.as_str(), v[0].reason.as_str()), ("inner", "missing field `inner`"))
            }
            other => panic!("{other:?}"),
        }
    }
}
