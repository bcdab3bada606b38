//! The server side of SIP digest authentication (RFC 3261 §22, RFC 2617, RFC 7616 SHA-256 and
//! RFC 8760 for SIP): the challenge we send in `WWW-Authenticate`, parsing the `Authorization`
//! (or `Proxy-Authorization`) header the caller answers with, and deciding whether that answer
//! is valid.
//!
//! What this module owns:
//! - HA1 computation. The store keeps only `H(username:realm:password)` per algorithm, never the
//!   password, so a leaked table cannot be replayed against other realms or services.
//! - Stateless nonces. A nonce carries its own issue time and an HMAC over it, so any api node
//!   that shares the secret can check it without a database, and expiry needs no bookkeeping.
//! - Replay protection. [`NonceCounts`] remembers, per nonce still alive, the highest `nc` seen;
//!   expired nonces are refused by their age, so they can be forgotten ([`NonceCounts::prune`]).
//!
//! Time and random bytes are passed in: this crate has no clock and no randomness source.
//!
//! Supported: algorithms `MD5` and `SHA-256` (not the `-sess` variants, which need per-session
//! state and that SIP clients rarely implement), and `qop=auth` or no qop (RFC 2069
//! compatibility). `auth-int` would need the message body and is refused.

use std::collections::HashMap;
use std::fmt;

use hmac::{Hmac, Mac};
use md5::Md5;
use sha2::{Digest, Sha256};
use thiserror::Error;

/// Why a set of digest credentials was refused. The SIP edge maps these to responses: a
/// `Malformed`/`MissingField` header is a `400`, `StaleNonce` is a fresh `401` with `stale=true`,
/// everything else a `401`/`403` without telling the caller more than that.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DigestError {
    #[error("malformed Authorization header: {0}")]
    Malformed(String),
    #[error("Authorization header is missing the '{0}' parameter")]
    MissingField(&'static str),
    #[error("unsupported digest algorithm '{0}' (MD5 or SHA-256)")]
    UnsupportedAlgorithm(String),
    #[error("unsupported qop '{0}' (only 'auth')")]
    UnsupportedQop(String),
    #[error("nonce was not issued by this server")]
    InvalidNonce,
    #[error("nonce has expired")]
    StaleNonce,
    #[error("digest uri does not match the Request-URI")]
    UriMismatch,
    #[error("wrong digest response")]
    WrongResponse,
    #[error("nonce count already used (replay)")]
    Replay,
    #[error("digest realm does not match")]
    RealmMismatch,
}

/// A digest hash algorithm we accept and offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DigestAlgorithm {
    /// RFC 2617's default when the `algorithm` parameter is absent.
    #[default]
    Md5,
    Sha256,
}

impl DigestAlgorithm {
    /// Strongest first: the order RFC 8760 §2.4 asks challenges to be offered in.
    pub const ALL: [DigestAlgorithm; 2] = [DigestAlgorithm::Sha256, DigestAlgorithm::Md5];

    /// The name used in the `algorithm=` parameter.
    /// The default challenges, MD5 first: RFC 8760 asks for the preferred algorithm first,
    /// but many deployed UAs (SIPp 3.6 among them) answer only the first challenge and know
    /// only MD5; SHA-256-capable clients still find theirs in the second header. Some UAs
    /// fail on any challenge they do not know (baresip 1.0's libre: `ENOSYS` on SHA-256), so
    /// the list is configurable (`VOXBRIDGE_SIP_DIGEST_ALGORITHMS`).
    pub const OFFERED: [DigestAlgorithm; 2] = [DigestAlgorithm::Md5, DigestAlgorithm::Sha256];

    pub fn name(self) -> &'static str {
        match self {
            DigestAlgorithm::Md5 => "MD5",
            DigestAlgorithm::Sha256 => "SHA-256",
        }
    }

    /// Parses an `algorithm=` value (case-insensitive, RFC 7616 §3.4).
    pub fn parse(s: &str) -> Result<Self, DigestError> {
        if s.eq_ignore_ascii_case("MD5") {
            Ok(DigestAlgorithm::Md5)
        } else if s.eq_ignore_ascii_case("SHA-256") {
            Ok(DigestAlgorithm::Sha256)
        } else {
            Err(DigestError::UnsupportedAlgorithm(s.to_owned()))
        }
    }

    /// Lower-case hex of the hash of `data`, the form every digest value takes on the wire.
    pub fn hex_hash(self, data: &str) -> String {
        match self {
            DigestAlgorithm::Md5 => hex::encode(Md5::digest(data.as_bytes())),
            DigestAlgorithm::Sha256 => hex::encode(Sha256::digest(data.as_bytes())),
        }
    }
}

impl fmt::Display for DigestAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// HA1 = H(username:realm:password), the only secret the store keeps (one per algorithm).
pub fn ha1(alg: DigestAlgorithm, username: &str, realm: &str, password: &str) -> String {
    alg.hex_hash(&format!("{username}:{realm}:{password}"))
}

type HmacSha256 = Hmac<Sha256>;

/// Bytes of the HMAC kept in a nonce: 128 bits is far beyond what an online forger can guess,
/// and keeps the nonce short enough for SIP headers.
const NONCE_MAC_LEN: usize = 16;
const NONCE_RANDOM_LEN: usize = 16;
const NONCE_LEN: usize = 8 + NONCE_RANDOM_LEN + NONCE_MAC_LEN;

/// How far in the future a nonce's issue time may be. Several api nodes share the secret, and
/// their clocks are never exactly in step; beyond this the nonce is treated as stale.
const CLOCK_SKEW_SECS: u64 = 30;

/// Issues and checks stateless nonces: hex of `issued_at (u64 BE) || random (16) ||
/// HMAC-SHA256(secret, issued_at || random)[..16]`. Anyone sharing `secret` can check a nonce;
/// nobody without it can make one, or move its issue time to extend its life.
#[derive(Clone)]
pub struct NonceIssuer {
    secret: [u8; 32],
    lifetime_secs: u64,
}

impl fmt::Debug for NonceIssuer {
    // The secret must never reach a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NonceIssuer")
            .field("secret", &"<redacted>")
            .field("lifetime_secs", &self.lifetime_secs)
            .finish()
    }
}

impl NonceIssuer {
    pub fn new(secret: [u8; 32], lifetime_secs: u64) -> Self {
        Self { secret, lifetime_secs }
    }

    pub fn lifetime_secs(&self) -> u64 {
        self.lifetime_secs
    }

    fn mac(&self, issued_and_random: &[u8]) -> HmacSha256 {
        // HMAC zero-pads a short key to the hash's block size (RFC 2104 §2), so a 64-byte key
        // holding the secret then zeros is the same key; using the fixed-size constructor
        // avoids `new_from_slice`'s Result, which cannot fail for HMAC but would need handling.
        let mut key = [0u8; 64];
        for (k, s) in key.iter_mut().zip(self.secret) {
            *k = s;
        }
        let mut mac = <HmacSha256 as hmac::digest::KeyInit>::new(&key.into());
        mac.update(issued_and_random);
        mac
    }

    /// A new nonce issued at `now_unix`; `random` must come from a CSPRNG so two nonces issued
    /// in the same second differ and cannot be predicted.
    pub fn issue(&self, now_unix: u64, random: [u8; 16]) -> String {
        let mut bytes = Vec::with_capacity(NONCE_LEN);
        bytes.extend_from_slice(&now_unix.to_be_bytes());
        bytes.extend_from_slice(&random);
        let tag = self.mac(&bytes).finalize().into_bytes();
        bytes.extend(tag.iter().take(NONCE_MAC_LEN));
        hex::encode(bytes)
    }

    /// The issue time of a nonce this issuer made, whatever its age; `InvalidNonce` otherwise.
    fn authentic_issued_at(&self, nonce: &str) -> Result<u64, DigestError> {
        let bytes = hex::decode(nonce).map_err(|_| DigestError::InvalidNonce)?;
        if bytes.len() != NONCE_LEN {
            return Err(DigestError::InvalidNonce);
        }
        let (data, tag) = bytes.split_at_checked(8 + NONCE_RANDOM_LEN).ok_or(DigestError::InvalidNonce)?;
        // verify_truncated_left compares in constant time.
        self.mac(data).verify_truncated_left(tag).map_err(|_| DigestError::InvalidNonce)?;
        let issued = data.first_chunk::<8>().ok_or(DigestError::InvalidNonce)?;
        Ok(u64::from_be_bytes(*issued))
    }

    fn check_age(&self, issued_at: u64, now_unix: u64) -> Result<(), DigestError> {
        if issued_at > now_unix.saturating_add(CLOCK_SKEW_SECS)
            || now_unix.saturating_sub(issued_at) > self.lifetime_secs
        {
            return Err(DigestError::StaleNonce);
        }
        Ok(())
    }

    /// The last second at which a nonce issued at `issued_at` is still accepted.
    fn expires_at(&self, issued_at: u64) -> u64 {
        issued_at.saturating_add(self.lifetime_secs)
    }

    /// Checks that `nonce` was issued by this issuer (`InvalidNonce` if not) and is not older
    /// than the lifetime (`StaleNonce`).
    pub fn check(&self, nonce: &str, now_unix: u64) -> Result<(), DigestError> {
        let issued_at = self.authentic_issued_at(nonce)?;
        self.check_age(issued_at, now_unix)
    }
}

/// How a nonce has been used so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    /// With `qop`: the highest nonce count accepted.
    Count(u32),
    /// Without `qop` there is no count, so the nonce is spent after one use.
    Once,
}

/// Highest nonce count seen per live nonce: the only state replay protection needs. Entries
/// are added only for requests whose response was correct, so an attacker cannot fill it or
/// burn a legitimate client's counts; [`NonceCounts::prune`] drops nonces that have expired
/// (their age alone refuses them from then on).
#[derive(Debug, Clone, Default)]
pub struct NonceCounts {
    seen: HashMap<String, (Seen, u64)>,
}

impl NonceCounts {
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets nonces that expired before `now_unix`.
    pub fn prune(&mut self, now_unix: u64) {
        self.seen.retain(|_, (_, expires_at)| *expires_at >= now_unix);
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// Records a use of `nonce` with count `nc` (None without qop), or refuses it as a replay.
    fn record(&mut self, nonce: &str, nc: Option<u32>, expires_at: u64) -> Result<(), DigestError> {
        let next = match (self.seen.get(nonce).map(|(s, _)| *s), nc) {
            // A count must strictly increase (RFC 7616 §3.4: nc lets the server detect replays).
            (None, Some(nc)) if nc > 0 => Seen::Count(nc),
            (Some(Seen::Count(last)), Some(nc)) if nc > last => Seen::Count(nc),
            (None, None) => Seen::Once,
            _ => return Err(DigestError::Replay),
        };
        self.seen.insert(nonce.to_owned(), (next, expires_at));
        Ok(())
    }
}

/// Quotes a value for a quoted-string parameter (RFC 3261 §25.1).
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Values for the `WWW-Authenticate` headers of a `401`: one per algorithm, MD5 then SHA-256
/// (see the comment inside on why this is not RFC 8760's strongest-first order).
pub fn challenge_headers(realm: &str, nonce: &str) -> Vec<String> {
    challenge_headers_with_stale(realm, nonce, false, &DigestAlgorithm::OFFERED)
}

/// As [`challenge_headers`], adding `stale=true` when the request was refused only because its
/// nonce had expired, so the client retries with the new nonce without asking the user again
/// (RFC 2617 §3.2.1).
/// `algorithms`: the challenges offered, in order (see [`DigestAlgorithm::OFFERED`]).
pub fn challenge_headers_with_stale(
    realm: &str,
    nonce: &str,
    stale: bool,
    algorithms: &[DigestAlgorithm],
) -> Vec<String> {
    let (realm, nonce) = (quote(realm), quote(nonce));
    algorithms
        .iter()
        .map(|alg| {
            let mut v = format!("Digest realm={realm}, nonce={nonce}, algorithm={}, qop=\"auth\"", alg.name());
            if stale {
                v.push_str(", stale=true");
            }
            v
        })
        .collect()
}

/// The quality of protection a client chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qop {
    Auth,
}

/// The parameters of an `Authorization`/`Proxy-Authorization: Digest …` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub realm: String,
    pub nonce: String,
    pub uri: String,
    pub response: String,
    pub algorithm: DigestAlgorithm,
    pub cnonce: Option<String>,
    pub opaque: Option<String>,
    pub qop: Option<Qop>,
    pub nc: Option<u32>,
    /// `nc` exactly as sent: the client hashed these characters, whatever their case.
    nc_text: Option<String>,
}

/// The `name=value` pairs after the scheme, names lower-cased (they are case-insensitive),
/// quoted values unescaped.
fn parse_params(s: &str) -> Result<Vec<(String, String)>, DigestError> {
    let malformed = |why: &str| DigestError::Malformed(why.to_owned());
    let mut out: Vec<(String, String)> = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        // Separators: whitespace and stray commas (the #rule allows empty list elements).
        while chars.next_if(|c| c.is_whitespace() || *c == ',').is_some() {}
        if chars.peek().is_none() {
            break;
        }
        let mut name = String::new();
        while let Some(c) = chars.next_if(|c| !c.is_whitespace() && !matches!(c, '=' | ',' | '"')) {
            name.push(c.to_ascii_lowercase());
        }
        if name.is_empty() {
            return Err(malformed("expected a parameter name"));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err(DigestError::Malformed(format!("parameter '{name}' has no value")));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'"').is_some() {
            loop {
                match chars.next() {
                    None => return Err(malformed("unterminated quoted string")),
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        Some(c) => value.push(c),
                        None => return Err(malformed("unterminated quoted string")),
                    },
                    Some(c) => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace() && !matches!(c, ',' | '"')) {
                value.push(c);
            }
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        match chars.peek() {
            None | Some(',') => {}
            Some(_) => {
                return Err(DigestError::Malformed(format!("unexpected text after parameter '{name}'")));
            }
        }
        // Two values for one name would let a proxy and this server read different ones.
        if out.iter().any(|(n, _)| *n == name) {
            return Err(DigestError::Malformed(format!("duplicate parameter '{name}'")));
        }
        out.push((name, value));
    }
    Ok(out)
}

/// The parameters of a `Digest …` header value (credentials or a challenge).
fn digest_params(header_value: &str) -> Result<Vec<(String, String)>, DigestError> {
    let s = header_value.trim();
    let (scheme, rest) = match s.find(char::is_whitespace) {
        // `find` returns a char boundary, so this split always succeeds.
        Some(i) => s.split_at_checked(i).unwrap_or((s, "")),
        None => (s, ""),
    };
    if !scheme.eq_ignore_ascii_case("Digest") {
        return Err(DigestError::Malformed(format!("scheme '{scheme}' is not Digest")));
    }
    parse_params(rest)
}

impl Credentials {
    /// Parses an `Authorization` header value such as
    /// `Digest username="alice", realm="example.com", nonce="…", uri="sip:…", response="…"`.
    pub fn parse(header_value: &str) -> Result<Credentials, DigestError> {
        let mut params = digest_params(header_value)?;
        let mut take = |name: &str| params.iter().position(|(n, _)| n == name).map(|i| params.swap_remove(i).1);
        let required = |v: Option<String>, name: &'static str| v.ok_or(DigestError::MissingField(name));

        let username = required(take("username"), "username")?;
        let realm = required(take("realm"), "realm")?;
        let nonce = required(take("nonce"), "nonce")?;
        let uri = required(take("uri"), "uri")?;
        let response = required(take("response"), "response")?;
        let algorithm = match take("algorithm") {
            Some(a) => DigestAlgorithm::parse(&a)?,
            None => DigestAlgorithm::Md5,
        };
        let opaque = take("opaque");
        let qop = match take("qop") {
            None => None,
            Some(q) if q.eq_ignore_ascii_case("auth") => Some(Qop::Auth),
            Some(q) => return Err(DigestError::UnsupportedQop(q)),
        };
        let cnonce = take("cnonce");
        let nc_text = take("nc");
        let nc = match &nc_text {
            Some(t) if t.len() == 8 && t.bytes().all(|b| b.is_ascii_hexdigit()) => Some(
                u32::from_str_radix(t, 16)
                    .map_err(|_| DigestError::Malformed(format!("nc '{t}' is not 8 hex digits")))?,
            ),
            Some(t) => {
                return Err(DigestError::Malformed(format!("nc '{t}' is not 8 hex digits")));
            }
            None => None,
        };
        // With qop the response covers cnonce and nc (RFC 2617 §3.2.2), so both must be there.
        if qop.is_some() {
            if cnonce.is_none() {
                return Err(DigestError::MissingField("cnonce"));
            }
            if nc.is_none() {
                return Err(DigestError::MissingField("nc"));
            }
        }
        Ok(Credentials { username, realm, nonce, uri, response, algorithm, cnonce, opaque, qop, nc, nc_text })
    }

    /// `RealmMismatch` unless the credentials are for `realm`: checked by the caller before it
    /// looks up the HA1 for (username, realm, algorithm), so credentials made for another realm
    /// never reach the hash comparison.
    pub fn expect_realm(&self, realm: &str) -> Result<(), DigestError> {
        if self.realm == realm { Ok(()) } else { Err(DigestError::RealmMismatch) }
    }

    /// The response a client knowing `ha1` would send for these parameters and `method`:
    /// H(HA1:nonce:nc:cnonce:qop:HA2) with qop=auth, H(HA1:nonce:HA2) without (RFC 2617 §3.2.2.1),
    /// where HA2 = H(method:uri) and `uri` is the one in the header, the one the client hashed.
    pub fn expected_response(&self, method: &str, ha1: &str) -> String {
        let alg = self.algorithm;
        // Hex is case-insensitive to a store but not to a hash input: clients hash lower case.
        let ha1 = ha1.to_ascii_lowercase();
        let ha2 = alg.hex_hash(&format!("{method}:{}", self.uri));
        match self.qop {
            Some(Qop::Auth) => alg.hex_hash(&format!(
                "{ha1}:{}:{}:{}:auth:{ha2}",
                self.nonce,
                self.nc_text.as_deref().unwrap_or_default(),
                self.cnonce.as_deref().unwrap_or_default(),
            )),
            None => alg.hex_hash(&format!("{ha1}:{}:{ha2}", self.nonce)),
        }
    }
}

/// A `WWW-Authenticate`/`Proxy-Authenticate: Digest …` challenge, as a client answering a
/// trunk's 401/407 reads it.
///
/// Why here and not ezk-sip-auth: ezk's authenticator works on ezk-sip-types messages, while
/// our message layer is our own (see `sip`); the hashing is already here for the server side,
/// so the client side is a parse of the challenge and a formatter over the same code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub realm: String,
    pub nonce: String,
    pub opaque: Option<String>,
    pub algorithm: DigestAlgorithm,
    /// The server offers `qop=auth`.
    pub qop_auth: bool,
    pub stale: bool,
}

impl Challenge {
    pub fn parse(header_value: &str) -> Result<Challenge, DigestError> {
        let params = digest_params(header_value)?;
        let get = |name: &str| params.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
        let algorithm = match get("algorithm") {
            Some(a) => DigestAlgorithm::parse(&a)?,
            None => DigestAlgorithm::Md5,
        };
        Ok(Challenge {
            realm: get("realm").ok_or(DigestError::MissingField("realm"))?,
            nonce: get("nonce").ok_or(DigestError::MissingField("nonce"))?,
            opaque: get("opaque"),
            algorithm,
            qop_auth: get("qop").is_some_and(|q| q.split(',').any(|o| o.trim().eq_ignore_ascii_case("auth"))),
            stale: get("stale").is_some_and(|v| v.eq_ignore_ascii_case("true")),
        })
    }

    /// The `Authorization`/`Proxy-Authorization` value answering this challenge for `method`
    /// on `uri`, with the caller's `cnonce` and nonce count.
    pub fn answer(&self, username: &str, password: &str, method: &str, uri: &str, cnonce: &str, nc: u32) -> String {
        let ha1 = ha1(self.algorithm, username, &self.realm, password);
        let nc_text = format!("{nc:08x}");
        let mut creds = Credentials {
            username: username.to_owned(),
            realm: self.realm.clone(),
            nonce: self.nonce.clone(),
            uri: uri.to_owned(),
            response: String::new(),
            algorithm: self.algorithm,
            cnonce: self.qop_auth.then(|| cnonce.to_owned()),
            opaque: self.opaque.clone(),
            qop: self.qop_auth.then_some(Qop::Auth),
            nc: self.qop_auth.then_some(nc),
            nc_text: self.qop_auth.then(|| nc_text.clone()),
        };
        creds.response = creds.expected_response(method, &ha1);
        let q = |v: &str| v.replace('\\', "\\\\").replace('"', "\\\"");
        let mut out = format!(
            "Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", uri=\"{}\", response=\"{}\", algorithm={}",
            q(username),
            q(&self.realm),
            q(&self.nonce),
            q(uri),
            creds.response,
            self.algorithm.name()
        );
        if self.qop_auth {
            out.push_str(&format!(", qop=auth, nc={nc_text}, cnonce=\"{}\"", q(cnonce)));
        }
        if let Some(o) = &self.opaque {
            out.push_str(&format!(", opaque=\"{}\"", q(o)));
        }
        out
    }
}

/// Compares without an early exit, so the time taken does not reveal how many leading
/// characters of a guessed response were right. Lengths are public (fixed per algorithm).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The parts of a `sip:`/`sips:` URI that identify the target, for comparing a digest `uri` with
/// the Request-URI: scheme and host case-insensitively, user exactly, parameters and headers
/// ignored. `None` for other schemes, which then must match exactly.
fn uri_identity(uri: &str) -> Option<(String, &str, String)> {
    let (scheme, rest) = uri.trim().split_once(':')?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "sip" && scheme != "sips" {
        return None;
    }
    let rest = rest.split('?').next().unwrap_or_default();
    // The user part may itself hold ';' (user parameters such as phone-context), so split at
    // '@' before cutting URI parameters off the host part.
    let (user, hostpart) = match rest.rsplit_once('@') {
        Some((u, h)) => (u, h),
        None => ("", rest),
    };
    let hostport = hostpart.split(';').next().unwrap_or_default();
    if hostport.is_empty() {
        return None;
    }
    Some((scheme, user, hostport.to_ascii_lowercase()))
}

/// Whether the digest `uri` names the Request-URI. RFC 3261 §22.4 says the server SHOULD check
/// they are the same, which stops a response captured for one target being replayed at another.
/// Some clients (SIPp among them, depending on its scenario) send a `uri` that differs from the
/// Request-URI only in parameters such as `;transport=`, so those are ignored; a different user,
/// host, port or scheme is refused.
fn uri_matches(digest_uri: &str, request_uri: &str) -> bool {
    if digest_uri == request_uri {
        return true;
    }
    match (uri_identity(digest_uri), uri_identity(request_uri)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// Decides whether `creds` authenticate a `method` request to `request_uri`, given the stored
/// HA1 for the credentials' username, realm and algorithm.
///
/// Order matters: the nonce's MAC first (a forged nonce gets nothing else); the uri; then the
/// response, compared in constant time; only then the nonce's age, so `StaleNonce` (and the
/// `stale=true` it leads to) is reported only to a client that knew the password (RFC 2617
/// §3.2.1); and last the replay check, so a request with a wrong response cannot burn a nonce
/// count that the legitimate client will use next.
pub fn verify(
    creds: &Credentials,
    method: &str,
    request_uri: &str,
    ha1_for_alg: &str,
    issuer: &NonceIssuer,
    counts: &mut NonceCounts,
    now_unix: u64,
) -> Result<(), DigestError> {
    let issued_at = issuer.authentic_issued_at(&creds.nonce)?;
    if !uri_matches(&creds.uri, request_uri) {
        return Err(DigestError::UriMismatch);
    }
    let expected = creds.expected_response(method, ha1_for_alg);
    let given = creds.response.to_ascii_lowercase();
    if !constant_time_eq(expected.as_bytes(), given.as_bytes()) {
        return Err(DigestError::WrongResponse);
    }
    issuer.check_age(issued_at, now_unix)?;
    let nc = match creds.qop {
        Some(Qop::Auth) => creds.nc,
        None => None,
    };
    counts.record(&creds.nonce, nc, issuer.expires_at(issued_at))
}

#[cfg(test)]
#[allow(clippy::string_slice)]
mod tests {
    use super::*;

    const SECRET: [u8; 32] = [7; 32];
    const NOW: u64 = 1_700_000_000;
    const REALM: &str = "sip.example.com";
    const RURI: &str = "sip:+14155550100@sip.example.com";

    fn issuer() -> NonceIssuer {
        NonceIssuer::new(SECRET, 300)
    }

    fn md5_hex(s: &str) -> String {
        hex::encode(Md5::digest(s.as_bytes()))
    }

    fn sha256_hex(s: &str) -> String {
        hex::encode(Sha256::digest(s.as_bytes()))
    }

    /// An Authorization header as a client would build it, computed independently of the module.
    fn client_header(alg: DigestAlgorithm, password: &str, nonce: &str, uri: &str, nc: Option<u32>) -> String {
        let h = |s: &str| match alg {
            DigestAlgorithm::Md5 => md5_hex(s),
            DigestAlgorithm::Sha256 => sha256_hex(s),
        };
        let ha1 = h(&format!("alice:{REALM}:{password}"));
        let ha2 = h(&format!("INVITE:{uri}"));
        match nc {
            Some(nc) => {
                let resp = h(&format!("{ha1}:{nonce}:{nc:08x}:6b8b4567:auth:{ha2}"));
                format!(
                    "Digest username=\"alice\",realm=\"{REALM}\",cnonce=\"6b8b4567\",nc={nc:08x},qop=auth,uri=\"{uri}\",nonce=\"{nonce}\",response=\"{resp}\",algorithm={}",
                    alg.name()
                )
            }
            None => {
                let resp = h(&format!("{ha1}:{nonce}:{ha2}"));
                format!(
                    "Digest username=\"alice\", realm=\"{REALM}\", uri=\"{uri}\", nonce=\"{nonce}\", response=\"{resp}\", algorithm={}",
                    alg.name()
                )
            }
        }
    }

    fn check(header: &str, alg: DigestAlgorithm, counts: &mut NonceCounts, now: u64) -> Result<(), DigestError> {
        let creds = Credentials::parse(header)?;
        creds.expect_realm(REALM)?;
        let stored = ha1(alg, "alice", REALM, "secret");
        verify(&creds, "INVITE", RURI, &stored, &issuer(), counts, now)
    }

    #[test]
    fn digest_rfc2617_example_response() {
        let header = r#"Digest username="Mufasa",
                 realm="testrealm@host.com",
                 nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
                 uri="/dir/index.html",
                 qop=auth,
                 nc=00000001,
                 cnonce="0a4f113b",
                 response="6629fae49393a05397450978507c4ef1",
                 opaque="5ccc069c403ebaf9f0171e9517f40e41""#;
        let creds = Credentials::parse(header).unwrap();
        assert_eq!(creds.algorithm, DigestAlgorithm::Md5);
        assert_eq!(creds.nc, Some(1));
        assert_eq!(creds.opaque.as_deref(), Some("5ccc069c403ebaf9f0171e9517f40e41"));
        let h = ha1(DigestAlgorithm::Md5, "Mufasa", "testrealm@host.com", "Circle Of Life");
        assert_eq!(creds.expected_response("GET", &h), "6629fae49393a05397450978507c4ef1");
        assert_eq!(creds.expected_response("GET", &h), creds.response);
    }

    #[test]
    fn digest_sha256_matches_independent_computation() {
        let nonce = issuer().issue(NOW, [1; 16]);
        let header = client_header(DigestAlgorithm::Sha256, "secret", &nonce, RURI, Some(1));
        let creds = Credentials::parse(&header).unwrap();
        assert_eq!(creds.algorithm, DigestAlgorithm::Sha256);
        let h = ha1(DigestAlgorithm::Sha256, "alice", REALM, "secret");
        assert_eq!(h, sha256_hex(&format!("alice:{REALM}:secret")));
        assert_eq!(creds.expected_response("INVITE", &h), creds.response);
        assert_eq!(creds.response.len(), 64);
    }

    #[test]
    fn digest_md5_and_sha256_both_accepted() {
        let mut counts = NonceCounts::new();
        for alg in DigestAlgorithm::ALL {
            let nonce = issuer().issue(NOW, [alg as u8; 16]);
            let header = client_header(alg, "secret", &nonce, RURI, Some(1));
            assert_eq!(check(&header, alg, &mut counts, NOW + 10), Ok(()), "{alg}");
        }
        // Without qop (RFC 2069 style) too.
        let nonce = issuer().issue(NOW, [9; 16]);
        let header = client_header(DigestAlgorithm::Md5, "secret", &nonce, RURI, None);
        assert_eq!(check(&header, DigestAlgorithm::Md5, &mut counts, NOW), Ok(()));
    }

    #[test]
    fn digest_parses_sipp_style_header() {
        let header = "Digest username=\"sipp\",realm=\"127.0.0.1\",cnonce=\"6b8b4567\",nc=00000001,qop=auth,uri=\"sip:service@127.0.0.1:5060\",nonce=\"abc123\",response=\"0123456789abcdef0123456789abcdef\",algorithm=MD5";
        let c = Credentials::parse(header).unwrap();
        assert_eq!(c.username, "sipp");
        assert_eq!(c.realm, "127.0.0.1");
        assert_eq!(c.cnonce.as_deref(), Some("6b8b4567"));
        assert_eq!(c.nc, Some(1));
        assert_eq!(c.qop, Some(Qop::Auth));
        assert_eq!(c.uri, "sip:service@127.0.0.1:5060");
        assert_eq!(c.nonce, "abc123");
        assert_eq!(c.algorithm, DigestAlgorithm::Md5);
        assert_eq!(c.opaque, None);
    }

    #[test]
    fn digest_parse_quoting_whitespace_and_case() {
        let header = "  dIgEsT   USERNAME = \"a\\\"b\\\\c, d\" ,realm=\"r\",,nonce=n,\turi=\"sip:x@y\",response=\"R\", algorithm=\"sha-256\", qop=\"AUTH\", cnonce=\"c\", nc=0000000A, fancy=\"x, y\"  ";
        let c = Credentials::parse(header).unwrap();
        assert_eq!(c.username, "a\"b\\c, d");
        assert_eq!(c.nonce, "n");
        assert_eq!(c.algorithm, DigestAlgorithm::Sha256);
        assert_eq!(c.nc, Some(10));
    }

    #[test]
    fn digest_parse_errors() {
        let base = "username=\"a\", realm=\"r\", nonce=\"n\", uri=\"sip:x@y\", response=\"z\"";
        assert!(Credentials::parse(&format!("Digest {base}")).is_ok());
        assert!(matches!(Credentials::parse(&format!("Basic {base}")), Err(DigestError::Malformed(_))));
        assert!(matches!(Credentials::parse("Digestusername=\"a\""), Err(DigestError::Malformed(_))));
        assert_eq!(
            Credentials::parse("Digest username=\"a\", realm=\"r\", uri=\"u\", response=\"z\""),
            Err(DigestError::MissingField("nonce"))
        );
        assert_eq!(
            Credentials::parse(&format!("Digest {base}, qop=auth, nc=00000001")),
            Err(DigestError::MissingField("cnonce"))
        );
        assert_eq!(
            Credentials::parse(&format!("Digest {base}, qop=auth, cnonce=\"c\"")),
            Err(DigestError::MissingField("nc"))
        );
        assert_eq!(
            Credentials::parse(&format!("Digest {base}, algorithm=MD5-sess")),
            Err(DigestError::UnsupportedAlgorithm("MD5-sess".into()))
        );
        assert_eq!(
            Credentials::parse(&format!("Digest {base}, qop=auth-int, nc=00000001, cnonce=\"c\"")),
            Err(DigestError::UnsupportedQop("auth-int".into()))
        );
        for bad in [
            format!("Digest {base}, nc=1, qop=auth, cnonce=\"c\""),
            format!("Digest {base}, nc=0000000g, qop=auth, cnonce=\"c\""),
            format!("Digest {base}, nc=+0000001, qop=auth, cnonce=\"c\""),
            format!("Digest {base}, opaque=\"unterminated"),
            format!("Digest {base}, opaque=\"x\\"),
            format!("Digest {base}, username=\"again\""),
            format!("Digest {base}, opaque"),
            format!("Digest {base}, opaque=a b"),
            format!("Digest {base}, =x"),
            "Digest".to_owned(),
            String::new(),
            "Digest é=\u{0}, ,,".to_owned(),
        ] {
            assert!(Credentials::parse(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn digest_replayed_nc_refused() {
        let mut counts = NonceCounts::new();
        let alg = DigestAlgorithm::Md5;
        let nonce = issuer().issue(NOW, [2; 16]);
        let h1 = client_header(alg, "secret", &nonce, RURI, Some(1));
        assert_eq!(check(&h1, alg, &mut counts, NOW), Ok(()));
        assert_eq!(check(&h1, alg, &mut counts, NOW), Err(DigestError::Replay));
        let h3 = client_header(alg, "secret", &nonce, RURI, Some(3));
        assert_eq!(check(&h3, alg, &mut counts, NOW), Ok(()));
        let h2 = client_header(alg, "secret", &nonce, RURI, Some(2));
        assert_eq!(check(&h2, alg, &mut counts, NOW), Err(DigestError::Replay));
        // nc=0 never precedes a valid first use.
        let other = issuer().issue(NOW, [3; 16]);
        let h0 = client_header(alg, "secret", &other, RURI, Some(0));
        assert_eq!(check(&h0, alg, &mut counts, NOW), Err(DigestError::Replay));
        // Without qop a nonce is good once.
        let once = issuer().issue(NOW, [4; 16]);
        let hn = client_header(alg, "secret", &once, RURI, None);
        assert_eq!(check(&hn, alg, &mut counts, NOW), Ok(()));
        assert_eq!(check(&hn, alg, &mut counts, NOW), Err(DigestError::Replay));
        let hq = client_header(alg, "secret", &once, RURI, Some(5));
        assert_eq!(check(&hq, alg, &mut counts, NOW), Err(DigestError::Replay));
    }

    #[test]
    fn digest_forged_request_does_not_burn_count() {
        let mut counts = NonceCounts::new();
        let alg = DigestAlgorithm::Sha256;
        let nonce = issuer().issue(NOW, [5; 16]);
        let forged = client_header(alg, "guess", &nonce, RURI, Some(9));
        assert_eq!(check(&forged, alg, &mut counts, NOW), Err(DigestError::WrongResponse));
        assert!(counts.is_empty());
        let real = client_header(alg, "secret", &nonce, RURI, Some(1));
        assert_eq!(check(&real, alg, &mut counts, NOW), Ok(()));
    }

    #[test]
    fn digest_stale_nonce_refused() {
        let i = issuer();
        let nonce = i.issue(NOW, [6; 16]);
        assert_eq!(i.check(&nonce, NOW + 300), Ok(()));
        assert_eq!(i.check(&nonce, NOW + 301), Err(DigestError::StaleNonce));
        assert_eq!(i.check(&nonce, NOW - 31), Err(DigestError::StaleNonce));
        let mut counts = NonceCounts::new();
        let alg = DigestAlgorithm::Md5;
        let header = client_header(alg, "secret", &nonce, RURI, Some(1));
        assert_eq!(check(&header, alg, &mut counts, NOW + 301), Err(DigestError::StaleNonce));
        // Stale is only said to a client that knew the password.
        let wrong = client_header(alg, "nope", &nonce, RURI, Some(1));
        assert_eq!(check(&wrong, alg, &mut counts, NOW + 301), Err(DigestError::WrongResponse));
    }

    #[test]
    fn digest_tampered_nonce_refused() {
        let i = issuer();
        let nonce = i.issue(NOW, [8; 16]);
        // Move the issue time forward to extend the nonce's life: the MAC no longer matches.
        let mut bytes = hex::decode(&nonce).unwrap();
        bytes[7] ^= 1;
        let tampered = hex::encode(&bytes);
        assert_eq!(i.check(&tampered, NOW), Err(DigestError::InvalidNonce));
        assert_eq!(i.check("zz", NOW), Err(DigestError::InvalidNonce));
        assert_eq!(i.check(&nonce[..70], NOW), Err(DigestError::InvalidNonce));
        assert_eq!(NonceIssuer::new([1; 32], 300).check(&nonce, NOW), Err(DigestError::InvalidNonce));
        let alg = DigestAlgorithm::Md5;
        let header = client_header(alg, "secret", &tampered, RURI, Some(1));
        assert_eq!(check(&header, alg, &mut NonceCounts::new(), NOW), Err(DigestError::InvalidNonce));
    }

    #[test]
    fn digest_wrong_password_refused() {
        let alg = DigestAlgorithm::Sha256;
        let nonce = issuer().issue(NOW, [10; 16]);
        let header = client_header(alg, "Secret", &nonce, RURI, Some(1));
        assert_eq!(check(&header, alg, &mut NonceCounts::new(), NOW), Err(DigestError::WrongResponse));
        // The right password hashed with the other algorithm's HA1 fails too.
        let header = client_header(alg, "secret", &nonce, RURI, Some(1));
        let creds = Credentials::parse(&header).unwrap();
        let md5_ha1 = ha1(DigestAlgorithm::Md5, "alice", REALM, "secret");
        assert_eq!(
            verify(&creds, "INVITE", RURI, &md5_ha1, &issuer(), &mut NonceCounts::new(), NOW),
            Err(DigestError::WrongResponse)
        );
        // A different method changes HA2.
        let ha1_ok = ha1(alg, "alice", REALM, "secret");
        assert_eq!(
            verify(&creds, "BYE", RURI, &ha1_ok, &issuer(), &mut NonceCounts::new(), NOW),
            Err(DigestError::WrongResponse)
        );
    }

    #[test]
    fn digest_uri_must_match_request_uri() {
        let alg = DigestAlgorithm::Md5;
        let i = issuer();
        let ok_uris = [
            "sip:+14155550100@SIP.Example.COM",
            "SIP:+14155550100@sip.example.com;transport=udp",
            "sip:+14155550100@sip.example.com?X-Foo=1",
        ];
        for (n, uri) in ok_uris.iter().enumerate() {
            let header = client_header(alg, "secret", &i.issue(NOW, [20 + n as u8; 16]), uri, Some(1));
            assert_eq!(check(&header, alg, &mut NonceCounts::new(), NOW), Ok(()), "{uri}");
        }
        let bad_uris = [
            "sip:+14155550101@sip.example.com",
            "sips:+14155550100@sip.example.com",
            "sip:+14155550100@sip.example.com:5060",
            "sip:+14155550100@other.example.com",
            "sip:sip.example.com",
            "/dir/index.html",
        ];
        for (n, uri) in bad_uris.iter().enumerate() {
            let header = client_header(alg, "secret", &i.issue(NOW, [40 + n as u8; 16]), uri, Some(1));
            assert_eq!(check(&header, alg, &mut NonceCounts::new(), NOW), Err(DigestError::UriMismatch), "{uri}");
        }
        // User parameters before '@' are not mistaken for URI parameters.
        assert!(!uri_matches("sip:1;a=1@a.com", "sip:1;a=2@b.com"));
        assert!(uri_matches("sip:1;a=1@a.com;lr", "sip:1;a=1@A.com"));
    }

    #[test]
    fn digest_realm_mismatch() {
        let nonce = issuer().issue(NOW, [11; 16]);
        let header = client_header(DigestAlgorithm::Md5, "secret", &nonce, RURI, Some(1));
        let creds = Credentials::parse(&header).unwrap();
        assert_eq!(creds.expect_realm("other.example.com"), Err(DigestError::RealmMismatch));
        assert_eq!(creds.expect_realm(REALM), Ok(()));
    }

    #[test]
    fn digest_prune_forgets_expired_nonces() {
        let mut counts = NonceCounts::new();
        let alg = DigestAlgorithm::Md5;
        let nonce = issuer().issue(NOW, [12; 16]);
        let header = client_header(alg, "secret", &nonce, RURI, Some(1));
        assert_eq!(check(&header, alg, &mut counts, NOW), Ok(()));
        counts.prune(NOW + 300);
        assert_eq!(counts.len(), 1);
        counts.prune(NOW + 301);
        assert!(counts.is_empty());
        // Forgotten, but its age still refuses it.
        assert_eq!(check(&header, alg, &mut counts, NOW + 301), Err(DigestError::StaleNonce));
    }

    #[test]
    fn digest_challenge_headers() {
        let nonce = issuer().issue(NOW, [13; 16]);
        assert_eq!(nonce.len(), 80);
        let h = challenge_headers("sip.example.com", &nonce);
        assert_eq!(
            h,
            vec![
                format!("Digest realm=\"sip.example.com\", nonce=\"{nonce}\", algorithm=MD5, qop=\"auth\""),
                format!("Digest realm=\"sip.example.com\", nonce=\"{nonce}\", algorithm=SHA-256, qop=\"auth\""),
            ]
        );
        let stale = challenge_headers_with_stale("a\"b", &nonce, true, &DigestAlgorithm::OFFERED);
        let md5_only = challenge_headers_with_stale("r", &nonce, false, &[DigestAlgorithm::Md5]);
        assert_eq!(md5_only.len(), 1);
        assert!(md5_only[0].contains("algorithm=MD5"));
        assert!(stale.iter().all(|v| v.ends_with(", stale=true")));
        assert!(stale[0].starts_with("Digest realm=\"a\\\"b\""));
        assert_eq!(DigestAlgorithm::Sha256.name(), "SHA-256");
        assert_eq!(DigestAlgorithm::parse("md5"), Ok(DigestAlgorithm::Md5));
    }

    #[test]
    fn client_answer_verifies_as_the_server_computes_it() {
        let ch = Challenge::parse(
            "Digest realm=\"carrier.test\", nonce=\"abc123\", qop=\"auth,auth-int\", opaque=\"o1\", algorithm=MD5",
        )
        .unwrap();
        assert!(ch.qop_auth && !ch.stale);
        let value = ch.answer("trunkuser", "s3cret", "INVITE", "sip:+15551230000@127.0.0.1:5099", "cn0", 1);
        let creds = Credentials::parse(&value).unwrap();
        assert_eq!(creds.nc, Some(1));
        assert_eq!(creds.opaque.as_deref(), Some("o1"));
        let ha1 = ha1(DigestAlgorithm::Md5, "trunkuser", "carrier.test", "s3cret");
        assert_eq!(creds.expected_response("INVITE", &ha1), creds.response);
        assert!(Challenge::parse("Basic realm=x").is_err());
        let plain = Challenge::parse("Digest realm=\"r\", nonce=\"n\"").unwrap();
        assert!(!plain.answer("u", "p", "INVITE", "sip:a@b", "c", 1).contains("qop"));
    }
}
