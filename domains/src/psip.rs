//! Programmable SIP domains: their names, transport/SRTP policies, and how a Request-URI
//! host `NAME.sip-REGION.BASE` maps back to a domain and a region.

use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;
use utoipa::ToSchema;

/// A domain name as provisioned: 5–32 characters, a DNS label (lower-case letters, digits,
/// hyphens; no hyphen first or last).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SipDomainName(String);

#[derive(Debug, Error, PartialEq, Eq)]
pub enum DomainNameError {
    #[error("must be 5 to 32 characters long, found {0}")]
    Length(usize),
    #[error("may contain only lower-case letters, digits and hyphens")]
    Charset,
    #[error("must not start or end with a hyphen")]
    Hyphen,
}

impl SipDomainName {
    pub fn parse(s: &str) -> Result<Self, DomainNameError> {
        let len = s.chars().count();
        if !(5..=32).contains(&len) {
            return Err(DomainNameError::Length(len));
        }
        if !s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
            return Err(DomainNameError::Charset);
        }
        if s.starts_with('-') || s.ends_with('-') {
            return Err(DomainNameError::Hyphen);
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SipDomainName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Policy for TLS signalling and SRTP media on a domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    Always,
    Never,
    #[default]
    Optional,
}

impl Policy {
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Always => "always",
            Policy::Never => "never",
            Policy::Optional => "optional",
        }
    }

    pub fn from_db(s: &str) -> Self {
        match s {
            "always" => Policy::Always,
            "never" => Policy::Never,
            _ => Policy::Optional,
        }
    }

    /// Whether a secure (`true`) or plain stream or connection is acceptable.
    pub fn accepts(self, secure: bool) -> bool {
        match self {
            Policy::Never => !secure,
            Policy::Optional => true,
            Policy::Always => secure,
        }
    }

    /// Whether what we offer ourselves is secure (only when it must be).
    pub fn offers_srtp(self) -> bool {
        self == Policy::Always
    }
}

/// `app` domains run their application; `trunk` domains are addressed by NCCO `sip`
/// endpoints through `domain` + `user`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum DomainType {
    #[default]
    App,
    Trunk,
}

impl DomainType {
    pub fn as_str(self) -> &'static str {
        match self {
            DomainType::App => "app",
            DomainType::Trunk => "trunk",
        }
    }

    pub fn from_db(s: &str) -> Self {
        if s == "trunk" { DomainType::Trunk } else { DomainType::App }
    }
}

/// Where this installation answers SIP: `BASE` and the region labels (`us`, `eu`, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipAddressing {
    pub base_domain: String,
    pub regions: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RegionalUri {
    /// Region label, e.g. `us`.
    pub region: String,
    /// `sip:NAME.sip-REGION.BASE`
    pub uri: String,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum HostError {
    #[error("host is not under the SIP base domain")]
    NotOurDomain,
    #[error("host has no regional part (NAME.sip-REGION.BASE)")]
    NoRegion,
    #[error("region '{0}' is not served here")]
    UnknownRegion(String),
}

impl SipAddressing {
    pub fn host(&self, name: &str, region: &str) -> String {
        format!("{name}.sip-{region}.{}", self.base_domain)
    }

    pub fn regional_uris(&self, name: &str) -> Vec<RegionalUri> {
        self.regions
            .iter()
            .map(|region| RegionalUri { region: region.clone(), uri: format!("sip:{}", self.host(name, region)) })
            .collect()
    }

    /// The account's trunk host (`BASE`, as `sip.nexmo.com` is Vonage's, or `sip.BASE`) and its
    /// regional forms (`sip-REGION.BASE`): where PBXs register and send their calls. Gives the
    /// region (the first served one for the unregional names); `None` for any other host.
    pub fn trunk_region(&self, host: &str) -> Option<String> {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let base = self.base_domain.to_ascii_lowercase();
        if host == base || host.strip_suffix(base.as_str()) == Some("sip.") {
            return Some(self.regions.first().cloned().unwrap_or_default());
        }
        let region = host.strip_suffix(base.as_str())?.strip_suffix('.')?.strip_prefix("sip-")?;
        self.regions.iter().find(|r| r.eq_ignore_ascii_case(region)).cloned()
    }

    /// The realm PBXs authenticate in with the account's API key and secret.
    pub fn trunk_realm(&self) -> &str {
        &self.base_domain
    }

    /// Splits a Request-URI host into (domain name, region). Host names are
    /// case-insensitive (RFC 3261 19.1.4), so the name comes back lower-cased.
    pub fn parse_host(&self, host: &str) -> Result<(String, String), HostError> {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let base = self.base_domain.to_ascii_lowercase();
        let rest = host.strip_suffix(base.as_str()).and_then(|r| r.strip_suffix('.')).ok_or(HostError::NotOurDomain)?;
        let (name, label) = rest.rsplit_once('.').ok_or(HostError::NoRegion)?;
        let region = label.strip_prefix("sip-").ok_or(HostError::NoRegion)?;
        if name.is_empty() || name.contains('.') {
            return Err(HostError::NoRegion);
        }
        if !self.regions.iter().any(|r| r.eq_ignore_ascii_case(region)) {
            return Err(HostError::UnknownRegion(region.to_owned()));
        }
        Ok((name.to_owned(), region.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addressing() -> SipAddressing {
        SipAddressing { base_domain: "sip.voxbridge.local".into(), regions: vec!["us".into(), "eu".into()] }
    }

    #[test]
    fn domain_names() {
        assert!(SipDomainName::parse("acme-1").is_ok());
        assert_eq!(SipDomainName::parse("acme"), Err(DomainNameError::Length(4)));
        assert_eq!(SipDomainName::parse(&"a".repeat(33)), Err(DomainNameError::Length(33)));
        assert_eq!(SipDomainName::parse("Acme-1"), Err(DomainNameError::Charset));
        assert_eq!(SipDomainName::parse("acme_1"), Err(DomainNameError::Charset));
        assert_eq!(SipDomainName::parse("-acme1"), Err(DomainNameError::Hyphen));
    }

    #[test]
    fn hosts_round_trip() {
        let a = addressing();
        assert_eq!(a.host("acme1", "eu"), "acme1.sip-eu.sip.voxbridge.local");
        assert_eq!(a.parse_host("ACME1.sip-EU.sip.voxbridge.local"), Ok(("acme1".into(), "eu".into())));
        assert_eq!(a.regional_uris("acme1")[0].uri, "sip:acme1.sip-us.sip.voxbridge.local");
    }

    #[test]
    fn trunk_hosts() {
        let a = addressing();
        for (host, region) in [
            ("sip.voxbridge.local", Some("us")),
            ("SIP.sip.voxbridge.local.", Some("us")),
            ("sip-eu.sip.voxbridge.local", Some("eu")),
            ("sip-ap.sip.voxbridge.local", None),
            ("acme1.sip-us.sip.voxbridge.local", None),
            ("x.sip.voxbridge.local", None),
            ("voxbridge.local", None),
        ] {
            assert_eq!(a.trunk_region(host).as_deref(), region, "{host}");
        }
    }

    #[test]
    fn hosts_refused() {
        let a = addressing();
        assert_eq!(a.parse_host("acme1.sip.voxbridge.local"), Err(HostError::NoRegion));
        assert_eq!(a.parse_host("acme1.sip-ap.sip.voxbridge.local"), Err(HostError::UnknownRegion("ap".into())));
        assert_eq!(a.parse_host("acme1.example.com"), Err(HostError::NotOurDomain));
        assert_eq!(a.parse_host("x.acme1.sip-us.sip.voxbridge.local"), Err(HostError::NoRegion));
        assert_eq!(a.parse_host("sip-us.sip.voxbridge.local"), Err(HostError::NoRegion));
    }
}
