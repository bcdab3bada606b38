//! The field readers every NCCO parser uses: a [`Fields`] cursor over one JSON object that
//! knows its JSON pointer and records each refusal in the shared [`Problems`], plus the
//! value conversions (`boolean`, `uint`, `number`, `one_of`, `url`, `url_array`, …) it
//! applies. Writing them once keeps every action and endpoint reporting the same reasons
//! for the same mistakes. JSON `null` is treated as an absent field.

use std::ops::RangeInclusive;

use serde_json::{Map, Value};
use url::Url;

use crate::e164::E164;
use crate::problem::Problems;

/// Schemes for webhooks and audio files.
pub const HTTP: &[&str] = &["http", "https"];
/// Schemes for WebSocket endpoints.
pub const WS: &[&str] = &["ws", "wss"];

/// One JSON object being read, located at `at` (a JSON pointer) inside the document.
pub struct Fields<'v, 'p> {
    map: &'v Map<String, Value>,
    at: String,
    problems: &'p mut Problems,
}

impl<'v, 'p> Fields<'v, 'p> {
    /// Starts reading `value`, or records "must be an object" at `at` and gives `None`.
    pub fn of(value: &'v Value, at: String, problems: &'p mut Problems) -> Option<Self> {
        match value.as_object() {
            Some(map) => Some(Self { map, at, problems }),
            None => {
                problems.push(at, "must be an object");
                None
            }
        }
    }

    /// The JSON pointer of this object.
    pub fn at(&self) -> &str {
        &self.at
    }

    /// The JSON pointer of `key` inside this object (RFC 6901 escaping applied).
    pub fn pointer(&self, key: &str) -> String {
        format!("{}/{}", self.at, key.replace('~', "~0").replace('/', "~1"))
    }

    /// The raw object, for parsers that walk arbitrary keys (headers).
    pub fn raw(&self) -> &'v Map<String, Value> {
        self.map
    }

    /// The problem list, for parsers that hand a nested value to another parser.
    pub fn problems(&mut self) -> &mut Problems {
        self.problems
    }

    /// Records a problem with `key` of this object.
    pub fn report(&mut self, key: &str, reason: impl Into<String>) {
        let name = self.pointer(key);
        self.problems.push(name, reason);
    }

    /// The value of `key`, `None` when absent or `null`.
    pub fn get(&self, key: &str) -> Option<&'v Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    pub fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// The first of `keys` that is present (for fields spelled two ways by different SDKs).
    pub fn first_present<'k>(&self, keys: &[&'k str]) -> Option<&'k str> {
        keys.iter().copied().find(|k| self.has(k))
    }

    /// Converts `key` when present; a failed conversion is recorded and gives `None`.
    pub fn opt<T>(&mut self, key: &str, conv: impl FnOnce(&'v Value) -> Result<T, String>) -> Option<T> {
        let value = self.get(key)?;
        match conv(value) {
            Ok(v) => Some(v),
            Err(reason) => {
                self.report(key, reason);
                None
            }
        }
    }

    /// Whether `key` is present; an absent `key` is recorded as "is required".
    pub fn require(&mut self, key: &str) -> bool {
        let present = self.has(key);
        if !present {
            self.report(key, "is required");
        }
        present
    }

    /// Like [`Fields::opt`], but an absent `key` is recorded as "is required".
    pub fn req<T>(&mut self, key: &str, conv: impl FnOnce(&'v Value) -> Result<T, String>) -> Option<T> {
        if self.require(key) { self.opt(key, conv) } else { None }
    }

    /// An optional boolean with its default.
    pub fn bool_or(&mut self, key: &str, default: bool) -> bool {
        self.opt(key, boolean).unwrap_or(default)
    }

    /// An optional integer in `range` with its default.
    pub fn uint_or(&mut self, key: &str, range: RangeInclusive<u32>, default: u32) -> u32 {
        self.opt(key, uint(range)).unwrap_or(default)
    }

    /// An optional number in `range` with its default.
    pub fn number_or(&mut self, key: &str, range: RangeInclusive<f64>, default: f64) -> f64 {
        self.opt(key, number(range)).unwrap_or(default)
    }

    /// An optional string enum with its default.
    pub fn one_of_or<T: Copy>(&mut self, key: &str, choices: &[(&str, T)], default: T) -> T {
        self.opt(key, one_of(choices)).unwrap_or(default)
    }

    /// An optional array of strings; each bad element is recorded at `key/<index>`.
    pub fn strings(&mut self, key: &str) -> Option<Vec<String>> {
        self.list(key, |v| string(v).map(str::to_owned))
    }

    /// An optional array whose elements are converted one by one; each bad element is
    /// recorded at `key/<index>`. `Some` only when the array and all elements are valid.
    pub fn list<T>(&mut self, key: &str, mut conv: impl FnMut(&'v Value) -> Result<T, String>) -> Option<Vec<T>> {
        let items = self.opt(key, array)?;
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            match conv(item) {
                Ok(v) => out.push(v),
                Err(reason) => {
                    ok = false;
                    let name = format!("{}/{i}", self.pointer(key));
                    self.problems.push(name, reason);
                }
            }
        }
        ok.then_some(out)
    }

    /// A nested object to read field by field; `None` when absent or not an object (recorded).
    pub fn child(&mut self, key: &str) -> Option<Fields<'v, '_>> {
        let value = self.get(key)?;
        let at = self.pointer(key);
        Fields::of(value, at, self.problems)
    }

    /// Like [`Fields::child`], but an absent `key` is recorded as "is required".
    pub fn req_child(&mut self, key: &str) -> Option<Fields<'v, '_>> {
        if self.require(key) { self.child(key) } else { None }
    }

    /// Records (at `b`) that `a` and `b` were both given although they exclude each other.
    /// For a boolean `b`, call it only when `b` is true: SDKs send `false` defaults.
    pub fn exclusive(&mut self, a: &str, b: &str) -> bool {
        let both = self.has(a) && self.has(b);
        if both {
            self.report(b, format!("must not be given together with {a}"));
        }
        both
    }
}

pub fn boolean(v: &Value) -> Result<bool, String> {
    v.as_bool().ok_or_else(|| "must be a boolean".to_owned())
}

pub fn string(v: &Value) -> Result<&str, String> {
    v.as_str().ok_or_else(|| "must be a string".to_owned())
}

/// A string that is not empty or blank.
pub fn non_empty(v: &Value) -> Result<&str, String> {
    let s = string(v)?;
    if s.trim().is_empty() { Err("must not be empty".to_owned()) } else { Ok(s) }
}

pub fn object(v: &Value) -> Result<&Map<String, Value>, String> {
    v.as_object().ok_or_else(|| "must be an object".to_owned())
}

pub fn array(v: &Value) -> Result<&Vec<Value>, String> {
    v.as_array().ok_or_else(|| "must be an array".to_owned())
}

/// The only element of an array that must hold exactly one.
pub fn exactly_one(v: &Value) -> Result<&Value, String> {
    match v.as_array().map(Vec::as_slice) {
        Some([one]) => Ok(one),
        _ => Err("must be an array with exactly one element".to_owned()),
    }
}

/// A whole number (JSON `60` or `60.0`) within `range`.
pub fn uint(range: RangeInclusive<u32>) -> impl Fn(&Value) -> Result<u32, String> {
    move |v| {
        let whole = v.as_u64().or_else(|| v.as_f64().filter(|f| f.fract() == 0.0 && *f >= 0.0).map(|f| f as u64));
        whole
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| range.contains(n))
            .ok_or_else(|| format!("must be an integer from {} to {}", range.start(), range.end()))
    }
}

/// Any JSON number.
pub fn any_number(v: &Value) -> Result<f64, String> {
    v.as_f64().ok_or_else(|| "must be a number".to_owned())
}

/// A JSON number within `range`.
pub fn number(range: RangeInclusive<f64>) -> impl Fn(&Value) -> Result<f64, String> {
    move |v| {
        v.as_f64()
            .filter(|n| range.contains(n))
            .ok_or_else(|| format!("must be a number from {} to {}", range.start(), range.end()))
    }
}

/// One of the listed strings, mapped to its value.
pub fn one_of<'a, T: Copy>(choices: &'a [(&'a str, T)]) -> impl Fn(&Value) -> Result<T, String> + 'a {
    move |v| {
        let found = v.as_str().and_then(|s| choices.iter().find(|(name, _)| *name == s));
        found.map(|(_, t)| *t).ok_or_else(|| {
            let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
            format!("must be one of: {}", names.join(", "))
        })
    }
}

/// An absolute URL with a host and one of `schemes`.
pub fn url(schemes: &'static [&'static str]) -> impl Fn(&Value) -> Result<Url, String> {
    move |v| {
        v.as_str()
            .and_then(|s| Url::parse(s.trim()).ok())
            .filter(|u| schemes.contains(&u.scheme()) && u.host_str().is_some_and(|h| !h.is_empty()))
            .ok_or_else(|| format!("must be a URL with scheme {}", schemes.join(" or ")))
    }
}

/// An array holding exactly one URL, as NCCO writes `eventUrl` and `streamUrl`.
pub fn url_array(schemes: &'static [&'static str]) -> impl Fn(&Value) -> Result<Url, String> {
    move |v| {
        exactly_one(v)
            .and_then(url(schemes))
            .map_err(|_| format!("must be an array with exactly one URL with scheme {}", schemes.join(" or ")))
    }
}

/// An E.164 number as Vonage writes it (digits only; a leading `+` is accepted and dropped).
pub fn e164(v: &Value) -> Result<E164, String> {
    E164::parse(string(v)?).map_err(|e| e.to_string())
}

/// A BCP-47 language tag in its common shape (`en-US`, `cmn-CN`, `en-GB-WLS`).
pub fn language(v: &Value) -> Result<String, String> {
    let s = string(v)?;
    let mut parts = s.split('-');
    let primary_ok =
        parts.next().is_some_and(|p| (2..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphabetic()));
    let rest_ok = parts.all(|p| (1..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()));
    if primary_ok && rest_ok { Ok(s.to_owned()) } else { Err("must be a BCP-47 language tag such as en-US".to_owned()) }
}

/// The default of every `language` field.
pub const DEFAULT_LANGUAGE: &str = "en-US";

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn read<T>(doc: Value, f: impl FnOnce(&mut Fields) -> T) -> (T, Vec<(String, String)>) {
        let mut problems = Problems::new();
        let out = match Fields::of(&doc, "/0".into(), &mut problems) {
            Some(mut fields) => f(&mut fields),
            None => panic!("test document must be an object"),
        };
        (out, problems.into_vec().into_iter().map(|p| (p.name, p.reason)).collect())
    }

    #[test]
    fn required_and_optional() {
        let (out, problems) = read(json!({"a": null, "b": 3}), |f| {
            (f.req("a", string).map(str::to_owned), f.opt("c", string).map(str::to_owned))
        });
        assert_eq!(out, (None, None));
        assert_eq!(problems, [("/0/a".to_owned(), "is required".to_owned())]);
    }

    #[test]
    fn integers() {
        let (out, problems) = read(json!({"a": 60.0, "b": -1, "c": 2.5, "d": "5"}), |f| {
            [f.opt("a", uint(3..=7200)), f.opt("b", uint(0..=9)), f.opt("c", uint(0..=9)), f.opt("d", uint(0..=9))]
        });
        assert_eq!(out, [Some(60), None, None, None]);
        let names: Vec<_> = problems.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["/0/b", "/0/c", "/0/d"]);
        assert_eq!(problems[0].1, "must be an integer from 0 to 9");
    }

    #[test]
    fn urls() {
        let (out, problems) = read(
            json!({"a": ["https://x.example/e"], "b": "https://x.example/e", "c": ["ftp://x"], "d": ["https://a", "https://b"]}),
            |f| {
                (
                    f.opt("a", url_array(HTTP)).map(|u| u.to_string()),
                    f.opt("b", url_array(HTTP)),
                    f.opt("c", url_array(HTTP)),
                    f.opt("d", url_array(HTTP)),
                )
            },
        );
        assert_eq!(out, (Some("https://x.example/e".to_owned()), None, None, None));
        assert_eq!(problems.len(), 3);
        assert_eq!(problems[0].1, "must be an array with exactly one URL with scheme http or https");
    }

    #[test]
    fn enums_lists_and_pointer_escaping() {
        let (out, problems) = read(json!({"m": "PUT", "l": ["a", 1, "c"], "x/y~": true}), |f| {
            (f.opt("m", one_of(&[("GET", 1), ("POST", 2)])), f.strings("l"), f.opt("x/y~", string).map(str::to_owned))
        });
        assert_eq!(out, (None, None, None));
        assert_eq!(
            problems,
            [
                ("/0/m".to_owned(), "must be one of: GET, POST".to_owned()),
                ("/0/l/1".to_owned(), "must be a string".to_owned()),
                ("/0/x~1y~0".to_owned(), "must be a string".to_owned()),
            ]
        );
    }

    #[test]
    fn languages() {
        for ok in ["en-US", "cmn-CN", "en-GB-WLS", "ar"] {
            assert_eq!(language(&json!(ok)), Ok(ok.to_owned()));
        }
        for bad in ["", "english", "en_US", "e-US", "en-"] {
            assert!(language(&json!(bad)).is_err(), "{bad}");
        }
    }
}
