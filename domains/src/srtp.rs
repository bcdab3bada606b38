//! SDES keying for SRTP (RFC 4568): the `a=crypto` attribute, the two crypto suites SIP peers
//! use (`AES_CM_128_HMAC_SHA1_80`, `AES_CM_128_HMAC_SHA1_32`, RFC 4568 §6.2), the 30-byte
//! master key and salt they carry inline, and the policy that says whether a leg may, must or
//! must not be secured (a domain's `srtp: always|never|optional`, a URI's `;media=srtp`).
//!
//! Only what negotiation needs lives here; the packet cryptography (RFC 3711) is the media
//! process's, done by a maintained crate.

use base64::Engine as _;

/// Master key (16 bytes) followed by master salt (14 bytes), as `inline:` carries them.
pub const MASTER_KEY_LEN: usize = 30;
/// The AES-128 key part of a [`MasterKey`].
pub const KEY_LEN: usize = 16;

/// Whether a leg's media may, must or must not be secured: a domain's `srtp` policy, `Always`
/// for a URI with `;media=srtp`. Our own offers are secure only under `Always` (RFC 3264 has no
/// "either" offer short of capability negotiation, which few SIP peers speak).
pub use crate::psip::Policy as SrtpPolicy;

/// An SRTP crypto suite of RFC 4568 §6.2 (both AES counter mode with HMAC-SHA1; they differ in
/// the RTP authentication tag: 80 or 32 bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CryptoSuite {
    AesCm128HmacSha1_80,
    AesCm128HmacSha1_32,
}

impl CryptoSuite {
    /// What we offer, strongest first.
    pub const ALL: [CryptoSuite; 2] = [CryptoSuite::AesCm128HmacSha1_80, CryptoSuite::AesCm128HmacSha1_32];

    pub fn name(self) -> &'static str {
        match self {
            CryptoSuite::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            CryptoSuite::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
        }
    }

    pub fn from_name(name: &str) -> Option<CryptoSuite> {
        CryptoSuite::ALL.into_iter().find(|s| s.name().eq_ignore_ascii_case(name))
    }
}

/// A master key and salt. Its `Debug` shows no key material (it ends up in logs otherwise).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct MasterKey(pub [u8; MASTER_KEY_LEN]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(…)")
    }
}

impl MasterKey {
    pub fn key(&self) -> &[u8] {
        self.0.get(..KEY_LEN).unwrap_or_default()
    }

    pub fn salt(&self) -> &[u8] {
        self.0.get(KEY_LEN..).unwrap_or_default()
    }

    fn to_base64(self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.0)
    }
}

/// One `a=crypto` line: `<tag> <suite> inline:<key||salt>[|lifetime][|MKI:length]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crypto {
    pub tag: u32,
    pub suite: CryptoSuite,
    pub key: MasterKey,
}

impl Crypto {
    /// Reads the value of an `a=crypto:` attribute. `None` for what we cannot use (another
    /// suite, several keys, an MKI, session parameters such as `UNENCRYPTED_SRTP`): such a line
    /// is skipped, as RFC 4568 §7.1.1 has an answerer skip what it does not support.
    pub fn parse(value: &str) -> Option<Crypto> {
        let mut fields = value.split_whitespace();
        let tag = fields.next()?.parse::<u32>().ok().filter(|t| *t < 1_000_000_000)?;
        let suite = CryptoSuite::from_name(fields.next()?)?;
        let key_params = fields.next()?;
        if fields.next().is_some() || key_params.contains(';') {
            return None;
        }
        let inline = key_params.strip_prefix("inline:")?;
        let mut parts = inline.split('|');
        let material = base64::engine::general_purpose::STANDARD.decode(parts.next()?).ok()?;
        let key = MasterKey(material.try_into().ok()?);
        // A lifetime is fine (we re-key long before 2^31 packets); an MKI is not supported.
        for extra in parts {
            if extra.contains(':') {
                return None;
            }
        }
        Some(Crypto { tag, suite, key })
    }

    /// The attribute's value as written after `a=crypto:`.
    pub fn to_value(&self) -> String {
        format!("{} {} inline:{}", self.tag, self.suite.name(), self.key.to_base64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 4568 §9.1's example key.
    const EXAMPLE: &str = "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:32";
    const KEY: &str = "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz";

    #[test]
    fn reads_and_writes_crypto_lines() {
        assert_eq!(Crypto::parse(EXAMPLE), None, "an MKI is not supported");
        let line = format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|2^20");
        let c = Crypto::parse(&line).unwrap();
        assert_eq!((c.tag, c.suite), (1, CryptoSuite::AesCm128HmacSha1_80));
        assert_eq!(c.key.key().len(), 16);
        assert_eq!(c.key.salt().len(), 14);
        assert_eq!(c.to_value(), format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}"));
        assert_eq!(Crypto::parse(&c.to_value()), Some(c.clone()));
        assert!(!format!("{c:?}").contains(KEY), "keys stay out of logs");
        let short = Crypto::parse(&format!("2 AES_CM_128_HMAC_SHA1_32 inline:{KEY}")).unwrap();
        assert_eq!(short.suite, CryptoSuite::AesCm128HmacSha1_32);
    }

    #[test]
    fn skips_what_it_cannot_use() {
        for bad in [
            format!("1 AES_256_CM_HMAC_SHA1_80 inline:{KEY}"),
            format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY} UNENCRYPTED_SRTP"),
            format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY};inline:{KEY}"),
            "1 AES_CM_128_HMAC_SHA1_80 inline:c2hvcnQ=".to_owned(),
            "1 AES_CM_128_HMAC_SHA1_80 inline:!!!".to_owned(),
            "x AES_CM_128_HMAC_SHA1_80".to_owned(),
            String::new(),
        ] {
            assert_eq!(Crypto::parse(&bad), None, "{bad}");
        }
    }

    #[test]
    fn policies() {
        assert!(SrtpPolicy::Optional.accepts(true) && SrtpPolicy::Optional.accepts(false));
        assert!(!SrtpPolicy::Never.accepts(true) && !SrtpPolicy::Always.accepts(false));
        assert!(SrtpPolicy::Always.offers_srtp() && !SrtpPolicy::Optional.offers_srtp());
    }
}
