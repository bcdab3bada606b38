//! The registrar's rules (RFC 3261 §10.3), with no I/O: what a REGISTER asks (a query, the
//! removal of every binding with `*`, or contacts with their expiry), the expiry bounds (423 with
//! `Min-Expires` below the floor, the ceiling applied silently), and how the request changes an
//! address-of-record's bindings (a repeated Call-ID must bring a higher CSeq). Time is passed in
//! as unix seconds; the edge authenticates, stores and answers.

use crate::sip::SipMessage;
use crate::sip::flow::Flow;
use crate::sip::headers::NameAddr;

/// Expiry bounds in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpiresPolicy {
    pub min: u32,
    pub max: u32,
    /// When the request names none.
    pub default: u32,
}

impl Default for ExpiresPolicy {
    /// A NAT binding outlives a minute or so, so one minute is the floor; an hour the ceiling
    /// (RFC 3261's default).
    fn default() -> Self {
        ExpiresPolicy { min: 60, max: 3600, default: 3600 }
    }
}

/// One contact of a REGISTER and the expiry it asks (0 removes it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactRequest {
    pub uri: String,
    pub expires: u32,
}

/// What a REGISTER asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registration {
    /// No Contact: the current bindings are returned.
    Query,
    /// `Contact: *` with `Expires: 0`.
    RemoveAll,
    Update(Vec<ContactRequest>),
}

/// A binding of an address-of-record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub contact: String,
    /// Unix seconds.
    pub expires_at: i64,
    pub call_id: String,
    pub cseq: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    /// 423 Interval Too Brief, with `Min-Expires`.
    #[error("interval too brief: at least {0} s")]
    TooBrief(u32),
    #[error("bad Contact: {0}")]
    BadContact(String),
    #[error("Contact: * needs Expires: 0 and no other contact")]
    BadStar,
    /// §10.3 step 7: the same Call-ID with a CSeq not above the stored one.
    #[error("out of order: CSeq {0} is not above the binding's")]
    OutOfOrder(u32),
}

impl RegisterError {
    /// The response code.
    pub fn status(&self) -> u16 {
        match self {
            RegisterError::TooBrief(_) => 423,
            RegisterError::BadContact(_) | RegisterError::BadStar => 400,
            RegisterError::OutOfOrder(_) => 500,
        }
    }
}

/// Most contacts one address-of-record keeps (a phone, a softphone, a desk set, …).
pub const MAX_BINDINGS: usize = 10;

/// Reads what `msg` (a REGISTER) asks, within `policy`.
pub fn parse(msg: &SipMessage, policy: ExpiresPolicy) -> Result<Registration, RegisterError> {
    let header_expires = msg.header("Expires").and_then(|e| e.trim().parse::<u32>().ok());
    let contacts = msg.header_values("Contact");
    if contacts.is_empty() {
        return Ok(Registration::Query);
    }
    if contacts.iter().any(|c| c.trim() == "*") {
        return match (contacts.len(), header_expires) {
            (1, Some(0)) => Ok(Registration::RemoveAll),
            _ => Err(RegisterError::BadStar),
        };
    }
    let mut out = Vec::with_capacity(contacts.len());
    for c in &contacts {
        let na = NameAddr::parse(c).map_err(RegisterError::BadContact)?;
        let asked = match na.param("expires") {
            Some(v) => v.trim().parse::<u32>().map_err(|_| RegisterError::BadContact(format!("expires={v}")))?,
            None => header_expires.unwrap_or(policy.default),
        };
        if asked != 0 && asked < policy.min {
            return Err(RegisterError::TooBrief(policy.min));
        }
        out.push(ContactRequest { uri: na.uri, expires: asked.min(policy.max) });
    }
    Ok(Registration::Update(out))
}

/// Applies `registration` (from Call-ID `call_id`, CSeq `cseq`) to `bindings` at `now`:
/// expired bindings go, `expires=0` removes, others are added or refreshed. On error nothing
/// changes.
pub fn apply(
    bindings: &mut Vec<Binding>,
    registration: &Registration,
    call_id: &str,
    cseq: u32,
    now: i64,
) -> Result<(), RegisterError> {
    let mut next: Vec<Binding> = bindings.iter().filter(|b| b.expires_at > now).cloned().collect();
    match registration {
        Registration::Query => {}
        Registration::RemoveAll => {
            if next.iter().any(|b| b.call_id == call_id && cseq <= b.cseq) {
                return Err(RegisterError::OutOfOrder(cseq));
            }
            next.clear();
        }
        Registration::Update(contacts) => {
            for c in contacts {
                let existing = next.iter().position(|b| same_contact(&b.contact, &c.uri));
                if let Some(i) = existing
                    && next.get(i).is_some_and(|b| b.call_id == call_id && cseq <= b.cseq)
                {
                    return Err(RegisterError::OutOfOrder(cseq));
                }
                if let Some(i) = existing {
                    next.remove(i);
                }
                if c.expires > 0 {
                    next.push(Binding {
                        contact: c.uri.clone(),
                        expires_at: now + i64::from(c.expires),
                        call_id: call_id.to_owned(),
                        cseq,
                    });
                }
            }
            // The oldest bindings give way to the newest.
            while next.len() > MAX_BINDINGS {
                next.remove(0);
            }
        }
    }
    *bindings = next;
    Ok(())
}

/// The `Contact` values of a 200 to REGISTER: every binding with its remaining seconds.
pub fn contact_headers(bindings: &[Binding], now: i64) -> Vec<String> {
    bindings.iter().map(|b| format!("<{}>;expires={}", b.contact, (b.expires_at - now).max(0))).collect()
}

/// How a binding's flow is stored: the transport and the address the REGISTER came from.
pub fn flow_text(flow: &Flow) -> String {
    match flow {
        Flow::Udp(a) => format!("udp:{a}"),
        Flow::Tcp { peer, tls: false, .. } => format!("tcp:{peer}"),
        Flow::Tcp { peer, tls: true, .. } => format!("tls:{peer}"),
    }
}

/// The flow requests to a binding take: back to the UDP address its REGISTER came from. A
/// TCP or TLS binding is reached by locating its contact (the connection it came over is
/// not named by what is stored).
pub fn flow_back(text: &str) -> Option<Flow> {
    text.strip_prefix("udp:")?.parse().ok().map(Flow::Udp)
}

/// §10.3 step 6: URIs compare by their scheme, user, host and port, ignoring case in the
/// host and the parameters a phone may reorder.
fn same_contact(a: &str, b: &str) -> bool {
    let key = |u: &str| {
        let base = u.split([';', '?']).next().unwrap_or(u);
        match base.rsplit_once('@') {
            Some((user, host)) => format!("{user}@{}", host.to_ascii_lowercase()),
            None => base.to_ascii_lowercase(),
        }
    };
    key(a) == key(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn register(headers: &str) -> SipMessage {
        let text = format!(
            "REGISTER sip:acme.sip-us.example.net SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.5:5060;branch=z9hG4bKr1\r\n\
             From: <sip:alice@acme.sip-us.example.net>;tag=a\r\nTo: <sip:alice@acme.sip-us.example.net>\r\n\
             Call-ID: reg-1\r\nCSeq: 1 REGISTER\r\nMax-Forwards: 70\r\n{headers}Content-Length: 0\r\n\r\n"
        );
        SipMessage::parse(text.as_bytes()).unwrap()
    }

    const P: ExpiresPolicy = ExpiresPolicy { min: 60, max: 3600, default: 3600 };

    #[test]
    fn contacts_take_their_own_expiry_or_the_header_bounded_by_the_policy() {
        let msg =
            register("Contact: <sip:alice@192.0.2.5:5060>;expires=120, <sip:alice@198.51.100.7>\r\nExpires: 7200\r\n");
        let Registration::Update(c) = parse(&msg, P).unwrap() else { panic!() };
        assert_eq!(
            c,
            [
                ContactRequest { uri: "sip:alice@192.0.2.5:5060".into(), expires: 120 },
                ContactRequest { uri: "sip:alice@198.51.100.7".into(), expires: 3600 },
            ]
        );
        assert_eq!(parse(&register(""), P).unwrap(), Registration::Query);
    }

    #[test]
    fn too_brief_is_423_and_star_needs_expires_zero() {
        let err = parse(&register("Contact: <sip:alice@192.0.2.5>\r\nExpires: 30\r\n"), P).unwrap_err();
        assert_eq!((err.status(), err.clone()), (423, RegisterError::TooBrief(60)));
        assert_eq!(parse(&register("Contact: *\r\nExpires: 0\r\n"), P).unwrap(), Registration::RemoveAll);
        assert_eq!(parse(&register("Contact: *\r\n"), P).unwrap_err(), RegisterError::BadStar);
        assert_eq!(parse(&register("Contact: *, <sip:a@b>\r\nExpires: 0\r\n"), P).unwrap_err().status(), 400);
        // expires=0 is a removal, not too brief.
        let zero = parse(&register("Contact: <sip:alice@192.0.2.5>;expires=0\r\n"), P).unwrap();
        assert_eq!(zero, Registration::Update(vec![ContactRequest { uri: "sip:alice@192.0.2.5".into(), expires: 0 }]));
    }

    #[test]
    fn bindings_are_added_refreshed_expired_and_removed() {
        let mut b = Vec::new();
        let two = Registration::Update(vec![
            ContactRequest { uri: "sip:alice@192.0.2.5".into(), expires: 100 },
            ContactRequest { uri: "sip:alice@198.51.100.7".into(), expires: 300 },
        ]);
        apply(&mut b, &two, "reg-1", 1, 1000).unwrap();
        assert_eq!(
            contact_headers(&b, 1000),
            ["<sip:alice@192.0.2.5>;expires=100", "<sip:alice@198.51.100.7>;expires=300"]
        );
        // Later, the first has expired; a refresh of the second (same Call-ID, higher CSeq).
        let refresh = Registration::Update(vec![ContactRequest { uri: "sip:alice@198.51.100.7".into(), expires: 300 }]);
        apply(&mut b, &refresh, "reg-1", 2, 1200).unwrap();
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].expires_at, 1500);
        // A replayed older request changes nothing.
        assert_eq!(apply(&mut b, &refresh, "reg-1", 2, 1201), Err(RegisterError::OutOfOrder(2)));
        assert_eq!(b[0].expires_at, 1500);
        apply(&mut b, &Registration::RemoveAll, "reg-1", 3, 1300).unwrap();
        assert!(b.is_empty());
    }

    #[test]
    fn contacts_compare_without_parameters_and_host_case() {
        assert!(same_contact("sip:alice@EXAMPLE.com;transport=udp", "sip:alice@example.com"));
        assert!(!same_contact("sip:alice@example.com", "sip:bob@example.com"));
    }
}
