//! Admission of inbound INVITEs to Programmable SIP domains, security first (ARCHITECTURE.md
//! "Order of checks"): the Request-URI host names a domain and a region, then the source
//! address is in the domain's ACL or the caller proves a domain user's credentials by digest.
//! Each refusal is typed and mapped to its SIP status in one place.

use std::net::IpAddr;

use thiserror::Error;

use crate::acl::Acl;
use crate::digest::DigestError;
use crate::psip::HostError;

#[derive(Debug, Error, PartialEq)]
pub enum AdmissionError {
    #[error("request URI host: {0}")]
    Host(#[from] HostError),
    #[error("no SIP domain named {0}")]
    UnknownDomain(String),
    #[error("source {0} is not in the domain's ACL")]
    SourceNotInAcl(IpAddr),
    #[error("unknown digest user {0}")]
    UnknownUser(String),
    #[error("digest authentication failed: {0}")]
    Digest(DigestError),
    #[error(transparent)]
    Pbx(#[from] crate::sip::pbx::PbxRefusal),
}

impl AdmissionError {
    /// The final response for this refusal.
    pub fn status(&self) -> u16 {
        match self {
            AdmissionError::Host(_) | AdmissionError::UnknownDomain(_) => 404,
            AdmissionError::SourceNotInAcl(_) | AdmissionError::UnknownUser(_) | AdmissionError::Digest(_) => 403,
            AdmissionError::Pbx(p) => p.status(),
        }
    }
}

/// How a caller got in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admitted {
    Acl,
    Digest { user: String },
}

/// What to do with an INVITE from `source` for a domain, before any credentials were checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FirstCheck {
    Admit(Admitted),
    /// Verify the Authorization header; without one, challenge.
    NeedDigest,
    Reject,
}

/// The ACL check, and whether digest may stand in for it.
pub fn first_check(acl: &Acl, digest_users: bool, source: IpAddr) -> FirstCheck {
    if acl.allows(source) {
        FirstCheck::Admit(Admitted::Acl)
    } else if digest_users {
        FirstCheck::NeedDigest
    } else {
        FirstCheck::Reject
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acl_first_then_digest() {
        let acl = Acl::parse("acl", &["10.0.0.0/8"]).unwrap();
        let inside: IpAddr = "10.1.1.1".parse().unwrap();
        let outside: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(first_check(&acl, true, inside), FirstCheck::Admit(Admitted::Acl));
        assert_eq!(first_check(&acl, true, outside), FirstCheck::NeedDigest);
        assert_eq!(first_check(&acl, false, outside), FirstCheck::Reject);
    }

    #[test]
    fn statuses() {
        assert_eq!(AdmissionError::Host(HostError::NoRegion).status(), 404);
        assert_eq!(AdmissionError::UnknownDomain("x".into()).status(), 404);
        assert_eq!(AdmissionError::SourceNotInAcl("127.0.0.1".parse().unwrap()).status(), 403);
        assert_eq!(AdmissionError::Digest(DigestError::Replay).status(), 403);
    }
}
