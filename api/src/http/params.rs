//! Query parameters. Query structs keep every value as the text the client sent and parse it
//! here, so that a refusal names the parameter (`page_size`, not "query") and states its
//! range, and no out-of-range integer ever reaches the database layer. The OpenAPI document
//! gives each parameter its real type and bounds with `#[param(value_type = …)]`.

use std::ops::RangeInclusive;

use actix_web::HttpRequest;
use actix_web::error::QueryPayloadError;
use domains::problem::{InvalidParameter, Problems};

use super::problem::ApiError;

/// An optional integer parameter within `range`; `default` when absent. A value that is not
/// plain decimal digits, or is out of range, is recorded under `name`.
pub fn integer(p: &mut Problems, name: &str, raw: Option<&str>, range: RangeInclusive<u64>, default: u64) -> u64 {
    let Some(text) = raw else { return default };
    match decimal(text) {
        Some(v) if range.contains(&v) => v,
        _ => {
            p.push(name, format!("must be an integer from {} to {}", range.start(), range.end()));
            default
        }
    }
}

/// Plain decimal digits only: no sign, no spaces, no exponent; `None` beyond `u64`.
fn decimal(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// An optional parameter that must be one of `allowed`.
pub fn one_of<'a>(p: &mut Problems, name: &str, raw: Option<&str>, allowed: &[&'a str]) -> Option<&'a str> {
    let text = raw?;
    let found = allowed.iter().copied().find(|a| *a == text);
    if found.is_none() {
        p.push(name, format!("must be one of: {}", allowed.join(", ")));
    }
    found
}

/// An optional `true` / `false` parameter.
pub fn boolean(p: &mut Problems, name: &str, raw: Option<&str>) -> Option<bool> {
    match raw? {
        "true" => Some(true),
        "false" => Some(false),
        _ => {
            p.push(name, "must be true or false");
            None
        }
    }
}

/// An optional text parameter of at most `max_chars` characters.
pub fn text<'a>(p: &mut Problems, name: &str, raw: Option<&'a str>, max_chars: usize) -> Option<&'a str> {
    let text = raw?;
    if text.chars().count() > max_chars {
        p.push(name, format!("must be at most {max_chars} characters"));
        return None;
    }
    Some(text)
}

/// What actix's `Query` extractor refuses (with text fields, only a repeated parameter) as a
/// problem body naming the parameter.
/// An RFC 3339 / ISO 8601 instant (`2026-01-02T03:04:05Z`), or the problem naming `name`.
pub fn datetime(p: &mut Problems, name: &str, raw: Option<&str>) -> Option<chrono::DateTime<chrono::Utc>> {
    let raw = raw?;
    match chrono::DateTime::parse_from_rfc3339(raw.trim()) {
        Ok(t) => Some(t.with_timezone(&chrono::Utc)),
        Err(_) => {
            p.push(name, "must be an ISO 8601 date and time such as 2026-01-02T03:04:05Z");
            None
        }
    }
}

pub fn query_error(err: QueryPayloadError, _req: &HttpRequest) -> actix_web::Error {
    let message = err.to_string();
    let repeated = message.split_once("duplicate field `").and_then(|(_, rest)| rest.split_once('`')).map(|(f, _)| f);
    let problem = match repeated {
        Some(field) => InvalidParameter::new(field, "must be given at most once"),
        None => InvalidParameter::new("query", message),
    };
    ApiError::Validation(vec![problem]).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_bounded_and_named() {
        let mut p = Problems::new();
        assert_eq!(integer(&mut p, "a", None, 1..=100, 10), 10);
        assert_eq!(integer(&mut p, "a", Some("100"), 1..=100, 10), 100);
        assert!(p.is_empty());
        for bad in ["0", "101", "-1", "+5", " 5", "1e3", "", "abc", "9223372036854775808", "99999999999999999999999"] {
            let mut p = Problems::new();
            integer(&mut p, "page_size", Some(bad), 1..=100, 10);
            let v = p.into_vec();
            assert_eq!(v.len(), 1, "{bad}");
            assert_eq!(v[0].name, "page_size");
            assert_eq!(v[0].reason, "must be an integer from 1 to 100");
        }
    }

    #[test]
    fn enums_booleans_and_text() {
        let mut p = Problems::new();
        assert_eq!(one_of(&mut p, "order", Some("desc"), &["asc", "desc"]), Some("desc"));
        assert_eq!(boolean(&mut p, "cascade", Some("true")), Some(true));
        assert_eq!(text(&mut p, "c", Some("ééé"), 3), Some("ééé"));
        assert!(p.is_empty());
        assert_eq!(one_of(&mut p, "order", Some("DESC"), &["asc", "desc"]), None);
        assert_eq!(boolean(&mut p, "cascade", Some("1")), None);
        assert_eq!(text(&mut p, "c", Some("abcd"), 3), None);
        let names: Vec<_> = p.into_vec().into_iter().map(|i| i.name).collect();
        assert_eq!(names, ["order", "cascade", "c"]);
    }
}
