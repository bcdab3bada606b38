//! Building the requests voxbridge sends: new INVITEs to far ends and in-dialog requests
//! (ACK, BYE, CANCEL, re-INVITE) on either leg of a call.

use domains::sip::headers::NameAddr;
use domains::sip::{Method, SipMessage, StartLine};

use super::transport::Flow;

pub fn random_token(len: usize) -> String {
    use rand::Rng;
    rand::thread_rng().sample_iter(&rand::distributions::Alphanumeric).take(len).map(char::from).collect()
}

pub fn new_branch() -> String {
    format!("z9hG4bK{}", random_token(16))
}

/// Where voxbridge's own requests say they come from.
#[derive(Debug, Clone)]
pub struct Local {
    pub host: String,
    pub port: u16,
}

impl Local {
    pub fn via(&self, flow: &Flow, branch: &str) -> String {
        format!("SIP/2.0/{} {}:{};branch={branch};rport", flow.transport_name(), bracket(&self.host), self.port)
    }

    pub fn contact(&self, flow: &Flow) -> String {
        let transport = match flow {
            Flow::Tcp { tls: true, .. } => ";transport=tls",
            Flow::Tcp { .. } => ";transport=tcp",
            Flow::Udp(_) => "",
        };
        format!("<sip:voxbridge@{}:{}{transport}>", bracket(&self.host), self.port)
    }
}

fn bracket(host: &str) -> String {
    if host.contains(':') { format!("[{host}]") } else { host.to_owned() }
}

/// One side of a dialog as voxbridge sees it.
#[derive(Debug, Clone)]
pub struct Dialog {
    pub call_id: String,
    /// Our From/To header value, with our tag.
    pub local: String,
    /// The peer's From/To header value, with its tag once known.
    pub remote: String,
    /// Request-URI for in-dialog requests (the peer's Contact).
    pub target: String,
    pub flow: Flow,
    pub next_cseq: u32,
}

impl Dialog {
    /// A request within this dialog with a fresh branch and the next CSeq.
    pub fn request(&mut self, local: &Local, method: Method) -> SipMessage {
        let cseq = self.next_cseq;
        self.next_cseq += 1;
        self.request_with_cseq(local, method, cseq, &new_branch())
    }

    pub fn request_with_cseq(&self, local: &Local, method: Method, cseq: u32, branch: &str) -> SipMessage {
        let cseq_method = if method == Method::Ack { Method::Ack } else { method.clone() };
        SipMessage {
            start: StartLine::Request { method, uri: self.target.clone() },
            headers: vec![
                ("Via".into(), local.via(&self.flow, branch)),
                ("Max-Forwards".into(), "70".into()),
                ("From".into(), self.local.clone()),
                ("To".into(), self.remote.clone()),
                ("Call-ID".into(), self.call_id.clone()),
                ("CSeq".into(), format!("{cseq} {cseq_method}")),
                ("Contact".into(), local.contact(&self.flow)),
                ("User-Agent".into(), concat!("voxbridge/", env!("CARGO_PKG_VERSION")).into()),
            ],
            body: vec![],
        }
    }

    /// Learns the peer's tag and Contact from a response (UAC side).
    pub fn learn_from_response(&mut self, resp: &SipMessage) {
        if let Some(to) = resp.header("To") {
            if NameAddr::parse(to).is_ok_and(|n| n.tag().is_some()) {
                self.remote = to.to_owned();
            }
        }
        if let Some(contact) = resp.header("Contact").and_then(|c| NameAddr::parse(c).ok()) {
            self.target = contact.uri;
        }
    }
}

/// ACK for a non-2xx final response: same branch and CSeq number as the INVITE (§17.1.1.3).
pub fn ack_for_failure(invite: &SipMessage, resp: &SipMessage) -> SipMessage {
    let mut headers = Vec::new();
    for name in ["Via", "Max-Forwards", "From", "Call-ID"] {
        if let Some(v) = invite.header(name) {
            headers.push((name.to_owned(), v.to_owned()));
        }
    }
    headers.push(("To".into(), resp.header("To").unwrap_or_default().to_owned()));
    let n = invite.cseq().map(|c| c.0).unwrap_or(1);
    headers.push(("CSeq".into(), format!("{n} ACK")));
    SipMessage {
        start: StartLine::Request { method: Method::Ack, uri: invite.request_uri().unwrap_or_default().to_owned() },
        headers,
        body: vec![],
    }
}

/// CANCEL for a pending INVITE: same Request-URI, Via (branch), From, To, Call-ID, CSeq number.
pub fn cancel_for(invite: &SipMessage) -> SipMessage {
    let mut headers = Vec::new();
    for name in ["Via", "Max-Forwards", "From", "To", "Call-ID"] {
        if let Some(v) = invite.header(name) {
            headers.push((name.to_owned(), v.to_owned()));
        }
    }
    let n = invite.cseq().map(|c| c.0).unwrap_or(1);
    headers.push(("CSeq".into(), format!("{n} CANCEL")));
    SipMessage {
        start: StartLine::Request { method: Method::Cancel, uri: invite.request_uri().unwrap_or_default().to_owned() },
        headers,
        body: vec![],
    }
}
