//! "Forward to SIP" targets of numbers: one or more SIP URIs (comma-separated, tried in
//! order on 5xx) with voxbridge's own URI parameters `;timeout=` (ringing timeout in ms,
//! 2000–20000, default 5000), `;transport=tls` and `;media=srtp`. A target that names one of
//! our own addresses of record (a PBX registered on the trunk host, a domain user) rings the
//! contacts registered for it, over the flows their REGISTERs came by.

use thiserror::Error;

use crate::sip_uri::{SipUri, SipUriError, Transport};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardTarget {
    pub uri: SipUri,
    pub timeout_ms: u32,
    pub transport: Transport,
    pub srtp: bool,
    /// Where requests go when not to the URI's host: a registered contact's flow.
    pub flow: Option<crate::sip::flow::Flow>,
    /// Targets sharing a fork are rung together (an address of record's contacts); the
    /// next target (or fork) is tried when all of them fail.
    pub fork: Option<usize>,
}

/// A contact registered for an address of record, and the flow it registered over.
pub type Binding = (String, Option<crate::sip::flow::Flow>);

/// `targets` with each one naming an address of record of ours replaced by its registered
/// contacts (same timeout, in binding order, one fork: they ring in parallel). `bindings`
/// gives an AOR's bindings, `None` for a URI that is not ours (kept as it is). An AOR of ours
/// with no binding: `Err` naming it.
pub fn to_registered_contacts(
    targets: Vec<ForwardTarget>,
    bindings: impl Fn(&SipUri) -> Option<Vec<Binding>>,
) -> Result<Vec<ForwardTarget>, String> {
    let mut out = Vec::with_capacity(targets.len());
    for (index, t) in targets.into_iter().enumerate() {
        let Some(found) = bindings(&t.uri) else {
            out.push(t);
            continue;
        };
        if found.is_empty() {
            return Err(format!("sip:{}@{} is not registered", t.uri.user.as_deref().unwrap_or_default(), t.uri.host));
        }
        for (contact, flow) in found {
            let Ok(uri) = SipUri::parse(&contact) else { continue };
            out.push(ForwardTarget { transport: uri.transport(), uri, flow, fork: Some(index), ..t.clone() });
        }
    }
    Ok(out)
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ForwardError {
    #[error("is empty")]
    Empty,
    #[error("target {index}: {source}")]
    Uri { index: usize, source: SipUriError },
    #[error("target {index}: timeout must be an integer of milliseconds from 2000 to 20000, found '{value}'")]
    Timeout { index: usize, value: String },
    #[error("target {index}: media must be 'srtp', found '{value}'")]
    Media { index: usize, value: String },
}

pub const DEFAULT_TIMEOUT_MS: u32 = 5000;
pub const TIMEOUT_RANGE_MS: std::ops::RangeInclusive<u32> = 2000..=20000;

/// Parses a `voice_callback_value`.
pub fn parse_targets(value: &str) -> Result<Vec<ForwardTarget>, ForwardError> {
    let targets = value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .enumerate()
        .map(|(index, s)| parse_target(index, s))
        .collect::<Result<Vec<_>, _>>()?;
    if targets.is_empty() {
        return Err(ForwardError::Empty);
    }
    Ok(targets)
}

fn parse_target(index: usize, s: &str) -> Result<ForwardTarget, ForwardError> {
    let uri = SipUri::parse(s).map_err(|source| ForwardError::Uri { index, source })?;
    let timeout_ms = match uri.param("timeout") {
        None => DEFAULT_TIMEOUT_MS,
        Some(v) => v
            .parse::<u32>()
            .ok()
            .filter(|ms| TIMEOUT_RANGE_MS.contains(ms))
            .ok_or_else(|| ForwardError::Timeout { index, value: v.to_owned() })?,
    };
    let srtp = match uri.param("media") {
        None => false,
        Some(v) if v.eq_ignore_ascii_case("srtp") => true,
        Some(v) => return Err(ForwardError::Media { index, value: v.to_owned() }),
    };
    let transport = uri.transport();
    Ok(ForwardTarget { uri, timeout_ms, transport, srtp, flow: None, fork: None })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_aors_become_their_registered_contacts() {
        let flow = crate::sip::flow::Flow::Udp("203.0.113.7:41234".parse().unwrap());
        let targets = parse_targets("sip:pbx1@sip.voxbridge.local;timeout=3000, sip:backup@carrier.example").unwrap();
        let ours = |u: &SipUri| {
            (u.host == "sip.voxbridge.local").then(|| {
                vec![
                    ("sip:pbx1@10.0.0.5:5060".to_owned(), Some(flow.clone())),
                    ("sip:pbx1@10.0.0.6:5060".to_owned(), None),
                ]
            })
        };
        let out = to_registered_contacts(targets.clone(), ours).unwrap();
        assert_eq!(out.len(), 3);
        assert_eq!(
            (out[0].uri.host.as_str(), out[0].timeout_ms, out[0].flow.as_ref(), out[0].fork),
            ("10.0.0.5", 3000, Some(&flow), Some(0))
        );
        assert_eq!((out[1].uri.host.as_str(), out[1].fork), ("10.0.0.6", Some(0)), "one fork: rung together");
        assert_eq!((out[2].uri.host.as_str(), out[2].flow.as_ref(), out[2].fork), ("carrier.example", None, None));
        let unregistered =
            to_registered_contacts(targets, |u: &SipUri| (u.host == "sip.voxbridge.local").then(Vec::new));
        assert!(unregistered.unwrap_err().contains("pbx1@sip.voxbridge.local is not registered"));
    }

    #[test]
    fn defaults_and_params() {
        let t = parse_targets("sip:bob@pbx.example.com").unwrap();
        assert_eq!(t[0].timeout_ms, 5000);
        assert_eq!(t[0].transport, Transport::Udp);
        let t = parse_targets("sip:bob@pbx.example.com;transport=tls;timeout=2000;media=srtp, sip:b@backup").unwrap();
        assert_eq!((t[0].timeout_ms, t[0].transport, t[0].srtp), (2000, Transport::Tls, true));
        assert_eq!(t[0].uri.port_or_default(), 5061);
        assert_eq!(t[1].uri.host, "backup");
    }

    #[test]
    fn bad_timeouts() {
        for bad in ["1999", "20001", "abc", ""] {
            let err = parse_targets(&format!("sip:bob@pbx;timeout={bad}")).unwrap_err();
            assert_eq!(err, ForwardError::Timeout { index: 0, value: bad.into() });
        }
    }

    #[test]
    fn bad_uri_is_indexed() {
        let err = parse_targets("sip:a@b, http://x").unwrap_err();
        assert_eq!(err, ForwardError::Uri { index: 1, source: SipUriError::Scheme });
        assert_eq!(parse_targets(" , "), Err(ForwardError::Empty));
    }
}
