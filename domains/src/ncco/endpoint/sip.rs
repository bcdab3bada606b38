//! `sip` endpoint: a SIP URI (`sip:`/`sips:` with `;transport=` and `;media=srtp`), or a
//! provisioned trunk `domain` plus `user`; custom headers sent as `X-<name>` and the
//! standard `User-to-User` header (RFC 7433).

use serde_json::Value;

use crate::ncco::fields::{self, Fields};
use crate::sip_uri::SipUri;

pub use crate::sip_uri::Transport as SipTransport;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sip {
    pub target: SipTarget,
    /// `headers` as given (names without the `X-` prefix added on sending), in key order.
    pub headers: Vec<(String, String)>,
    /// `standardHeaders["User-to-User"]`, sent verbatim.
    pub user_to_user: Option<String>,
    /// `<Sip username password>` (TwiML only): the answer to the far end's 401/407.
    pub credentials: Option<(String, String)>,
    /// `<Sip codecs>` (TwiML only): codecs offered first, in this order.
    pub codecs: Vec<String>,
    /// `<Sip url method>` (TwiML only): a document run on the callee once it answers, before
    /// the bridge (screening); a `<Hangup>` there declines the call.
    pub screen: Option<crate::ncco::common::Webhook>,
    /// `<Sip sessionTimeout>` (TwiML only): the Session-Expires offered, seconds.
    pub session_expires: Option<u32>,
}

/// Where the INVITE goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SipTarget {
    Uri(SipUriTarget),
    /// A dashboard-provisioned SIP trunk or domain; the URI is composed from it.
    Domain {
        domain: String,
        user: String,
    },
}

/// The parts of `uri` the SIP edge needs to place the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipUriTarget {
    /// The URI as given.
    pub uri: String,
    /// `sips:` scheme.
    pub secure: bool,
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
    /// `;transport=`, when given.
    pub transport: Option<SipTransport>,
    /// `;media=srtp`.
    pub srtp: bool,
}

/// The prefix every custom header is sent with.
pub const CUSTOM_HEADER_PREFIX: &str = "X-";
const USER_TO_USER: &str = "User-to-User";
const STANDARD_HEADERS_KEYS: [&str; 2] = ["standardHeaders", "standard_headers"];

impl Sip {
    pub(crate) fn parse(f: &mut Fields) -> Option<Sip> {
        let target = Self::target(f);
        let headers = f.child("headers").map(custom_headers).unwrap_or_default();
        let user_to_user = f
            .first_present(&STANDARD_HEADERS_KEYS)
            .and_then(|key| f.child(key))
            .and_then(|mut c| c.opt(USER_TO_USER, header_value).map(str::to_owned));
        Some(Sip {
            target: target?,
            headers,
            user_to_user,
            credentials: None,
            codecs: Vec::new(),
            screen: None,
            session_expires: None,
        })
    }

    fn target(f: &mut Fields) -> Option<SipTarget> {
        if f.has("uri") {
            let uri = f.opt("uri", sip_uri);
            let conflicts = [f.exclusive("uri", "domain"), f.exclusive("uri", "user")];
            return uri.filter(|_| !conflicts.contains(&true)).map(SipTarget::Uri);
        }
        if !f.has("domain") && !f.has("user") {
            f.report("uri", "is required (or domain and user)");
            return None;
        }
        let domain = f.req("domain", fields::non_empty);
        let user = f.req("user", fields::non_empty);
        Some(SipTarget::Domain { domain: domain?.to_owned(), user: user?.to_owned() })
    }

    /// Every header to add to the INVITE, with its final name: custom headers prefixed with
    /// `X-` (unless already so), then `User-to-User`.
    pub fn sip_headers(&self) -> Vec<(String, String)> {
        let custom = self.headers.iter().map(|(name, value)| {
            let prefixed = strip_custom_prefix(name).is_some();
            let name = if prefixed { name.clone() } else { format!("{CUSTOM_HEADER_PREFIX}{name}") };
            (name, value.clone())
        });
        let uui = self.user_to_user.iter().map(|v| (USER_TO_USER.to_owned(), v.clone()));
        custom.chain(uui).collect()
    }
}

fn sip_uri(v: &Value) -> Result<SipUriTarget, String> {
    let raw = fields::string(v)?.trim();
    let uri = SipUri::parse(raw).map_err(|e| format!("must be a SIP URI (sip:user@host): it {e}"))?;
    let srtp = match uri.param("media") {
        None => false,
        Some(m) if m.eq_ignore_ascii_case("srtp") => true,
        Some(other) => return Err(format!("has an unknown media '{other}' (only srtp)")),
    };
    Ok(SipUriTarget {
        uri: raw.to_owned(),
        secure: uri.secure,
        transport: uri.param("transport").and_then(SipTransport::parse),
        srtp,
        user: uri.user,
        host: uri.host,
        port: uri.port,
    })
}

/// `headers`: names must be SIP header tokens, values strings that fit on one header line.
fn custom_headers(mut c: Fields) -> Vec<(String, String)> {
    let mut headers = Vec::new();
    for (name, value) in c.raw() {
        let checked = header_name(name).and_then(|()| header_value(value));
        match checked {
            Ok(value) => headers.push((name.clone(), value.to_owned())),
            Err(reason) => c.report(name, reason),
        }
    }
    headers
}

/// RFC 3261 `token`, and something left after an `X-` prefix.
fn header_name(name: &str) -> Result<(), String> {
    let is_token_char = |b: u8| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b);
    let bare = strip_custom_prefix(name).unwrap_or(name);
    if bare.is_empty() || !name.bytes().all(is_token_char) {
        return Err("must be a SIP header name (letters, digits and - . ! % * _ + ` ' ~)".to_owned());
    }
    Ok(())
}

/// What follows an `X-`/`x-` prefix, if `name` has one.
/// A custom header's name: `X-` and something after it.
pub fn is_custom_header(name: &str) -> bool {
    strip_custom_prefix(name).is_some_and(|rest| !rest.is_empty())
}

fn strip_custom_prefix(name: &str) -> Option<&str> {
    let (prefix, rest) = name.split_at_checked(CUSTOM_HEADER_PREFIX.len())?;
    prefix.eq_ignore_ascii_case(CUSTOM_HEADER_PREFIX).then_some(rest)
}

/// A string without line breaks or other control characters (tab allowed).
fn header_value(v: &Value) -> Result<&str, String> {
    let s = fields::string(v)?;
    if s.chars().any(|c| c.is_control() && c != '\t') {
        return Err("must not contain line breaks or control characters".to_owned());
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ncco::endpoint::Endpoint;
    use crate::ncco::test_support::{endpoint, endpoint_problems};

    fn sip(json: &str) -> Sip {
        match endpoint(json) {
            Endpoint::Sip(s) => s,
            other => panic!("expected sip, got {other:?}"),
        }
    }

    fn uri_target(json: &str) -> SipUriTarget {
        match sip(json).target {
            SipTarget::Uri(u) => u,
            other => panic!("expected a uri target, got {other:?}"),
        }
    }

    #[test]
    fn minimal_uri() {
        let s = sip(r#"{"type":"sip","uri":"sip:rebekka@sip.example.com"}"#);
        assert_eq!(
            s,
            Sip {
                target: SipTarget::Uri(SipUriTarget {
                    uri: "sip:rebekka@sip.example.com".into(),
                    secure: false,
                    user: Some("rebekka".into()),
                    host: "sip.example.com".into(),
                    port: None,
                    transport: None,
                    srtp: false,
                }),
                headers: vec![],
                user_to_user: None,
                credentials: None,
                codecs: vec![],
                screen: None,
                session_expires: None,
            }
        );
        assert!(s.sip_headers().is_empty());
    }

    #[test]
    fn uri_parameters() {
        let u = uri_target(r#"{"type":"sip","uri":"sips:alice@10.0.0.5:5071;transport=tls;media=srtp"}"#);
        assert_eq!((u.secure, u.user.as_deref(), u.host.as_str()), (true, Some("alice"), "10.0.0.5"));
        assert_eq!((u.port, u.transport, u.srtp), (Some(5071), Some(SipTransport::Tls), true));
        let u = uri_target(r#"{"type":"sip","uri":"sip:pbx.example.com;transport=tcp"}"#);
        assert_eq!((u.user, u.port, u.transport, u.srtp), (None, None, Some(SipTransport::Tcp), false));
    }

    #[test]
    fn domain_and_user() {
        let s = sip(r#"{"type":"sip","domain":"my-trunk","user":"447700900000"}"#);
        assert_eq!(s.target, SipTarget::Domain { domain: "my-trunk".into(), user: "447700900000".into() });
    }

    #[test]
    fn headers_are_prefixed_once() {
        let s = sip(r#"{"type":"sip","uri":"sip:a@b.example","headers":{"location":"NYC","X-Id":"1","x-lower":"2"},
                "standard_headers":{"User-to-User":"56a390f3d2b7310023a2;encoding=hex"}}"#);
        // JSON object order depends on serde_json's `preserve_order` feature; compare as sets.
        let mut headers = s.sip_headers();
        headers.sort();
        assert_eq!(
            headers,
            [
                ("User-to-User".to_owned(), "56a390f3d2b7310023a2;encoding=hex".to_owned()),
                ("X-Id".to_owned(), "1".to_owned()),
                ("X-location".to_owned(), "NYC".to_owned()),
                ("x-lower".to_owned(), "2".to_owned()),
            ]
        );
    }

    #[test]
    fn invalid_target() {
        assert_eq!(endpoint_problems(r#"{"type":"sip"}"#), ["/uri"]);
        assert_eq!(endpoint_problems(r#"{"type":"sip","domain":"trunk"}"#), ["/user"]);
        assert_eq!(endpoint_problems(r#"{"type":"sip","user":"bob"}"#), ["/domain"]);
        assert_eq!(
            endpoint_problems(r#"{"type":"sip","uri":"sip:a@b.example","domain":"t","user":"u"}"#),
            ["/domain", "/user"]
        );
        for bad in [
            "tel:+14155550100",
            "sip:",
            "sip:bob@host:99999",
            "sip:a@b;transport=sctp",
            "sip:a@b;media=zrtp",
            "http://x",
        ] {
            assert_eq!(endpoint_problems(&format!(r#"{{"type":"sip","uri":"{bad}"}}"#)), ["/uri"], "{bad}");
        }
        assert_eq!(endpoint_problems(r#"{"type":"sip","uri":42}"#), ["/uri"]);
    }

    #[test]
    fn invalid_headers() {
        let mut problems = endpoint_problems(
            r#"{"type":"sip","uri":"sip:a@b.example","headers":{"ok":"1","bad name":"v","n":3,"X-":"v","a/b":"v","inj":"a\r\nVia: evil"},
                    "standardHeaders":{"User-to-User":5}}"#,
        );
        problems.sort();
        assert_eq!(
            problems,
            [
                "/headers/X-",
                "/headers/a~1b",
                "/headers/bad name",
                "/headers/inj",
                "/headers/n",
                "/standardHeaders/User-to-User"
            ]
        );
        assert_eq!(endpoint_problems(r#"{"type":"sip","uri":"sip:a@b.example","headers":["x"]}"#), ["/headers"]);
    }
}
