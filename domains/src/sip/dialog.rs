//! Dialogs as voxbridge keeps them on either leg of a call (RFC 3261 §12): identifiers, the
//! remote target and route set, CSeq; the in-dialog requests built from them (with Route
//! headers, loose or strict routing) and the ACK and CANCEL of an INVITE transaction (§17.1.1.3,
//! §9.1). Pure: branches and tags are drawn by the caller.

use std::net::{IpAddr, SocketAddr};

use super::flow::Flow;
use super::headers::NameAddr;
use super::message::{Method, SipMessage, StartLine};
use crate::sip_uri::SipUri;

/// Where voxbridge's own requests say they come from.
#[derive(Debug, Clone)]
pub struct Local {
    pub host: String,
    pub port: u16,
    /// `User-Agent` of our requests (configuration, not the version string).
    pub user_agent: String,
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
    /// The route set (RFC 3261 §12.1): the INVITE's Record-Route values in order on the UAS
    /// side, the response's in reverse on the UAC side. Fixed once the dialog exists.
    pub route_set: Vec<String>,
}

impl Dialog {
    /// A request within this dialog with the next CSeq; `branch` is the new transaction's
    /// (the caller draws it: randomness is passed in).
    pub fn request(&mut self, local: &Local, method: Method, branch: &str) -> SipMessage {
        let cseq = self.next_cseq;
        self.next_cseq = self.next_cseq.saturating_add(1);
        self.request_with_cseq(local, method, cseq, branch)
    }

    pub fn request_with_cseq(&self, local: &Local, method: Method, cseq: u32, branch: &str) -> SipMessage {
        let cseq_method = method.clone();
        let (uri, routes) = self.request_target();
        let mut headers: Vec<(String, String)> = vec![("Via".into(), local.via(&self.flow, branch))];
        headers.extend(routes.into_iter().map(|r| ("Route".to_owned(), r)));
        headers.extend([
            ("Max-Forwards".into(), "70".into()),
            ("From".into(), self.local.clone()),
            ("To".into(), self.remote.clone()),
            ("Call-ID".into(), self.call_id.clone()),
            ("CSeq".into(), format!("{cseq} {cseq_method}")),
            ("Contact".into(), local.contact(&self.flow)),
            ("User-Agent".into(), local.user_agent.clone()),
        ]);
        SipMessage { start: StartLine::Request { method, uri }, headers, body: vec![] }
    }

    /// Request-URI and Route headers of an in-dialog request (RFC 3261 §12.2.1.1): with a loose
    /// router first (`;lr`), the remote target and the whole route set; with a strict (RFC 2543)
    /// router, that router as Request-URI and the remote target as the last Route.
    pub fn request_target(&self) -> (String, Vec<String>) {
        let Some(first) = self.route_set.first() else {
            return (self.target.clone(), Vec::new());
        };
        let first_uri = NameAddr::parse(first).map(|n| n.uri).unwrap_or_else(|_| first.clone());
        if SipUri::parse(&first_uri).is_ok_and(|u| u.param("lr").is_some()) {
            return (self.target.clone(), self.route_set.clone());
        }
        let mut routes: Vec<String> = self.route_set.iter().skip(1).cloned().collect();
        routes.push(format!("<{}>", self.target));
        (first_uri, routes)
    }

    /// Sends in-dialog requests to the first route when it names an address, as the RFC's
    /// next-hop rule says (§8.1.2); a dialog over a connection keeps its connection. A name is
    /// not resolved here: the dialog keeps the flow it has.
    pub fn follow_route_set(&mut self) {
        let Flow::Udp(_) = self.flow else { return };
        let Some(first) = self.route_set.first() else { return };
        let Some(uri) = NameAddr::parse(first).ok().and_then(|n| SipUri::parse(&n.uri).ok()) else { return };
        if let Ok(ip) = uri.host.parse::<IpAddr>() {
            self.flow = Flow::Udp(SocketAddr::new(ip, uri.port_or_default()));
        }
    }

    /// Learns the peer's tag, Contact and (from a dialog-creating response) the route set,
    /// UAC side.
    pub fn learn_from_response(&mut self, resp: &SipMessage) {
        if let Some(to) = resp.header("To")
            && NameAddr::parse(to).is_ok_and(|n| n.tag().is_some())
        {
            self.remote = to.to_owned();
            self.route_set = resp.header_values("Record-Route").into_iter().rev().collect();
            self.follow_route_set();
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
    // The INVITE's Route headers too (§17.1.1.3).
    headers.extend(invite.header_values("Route").into_iter().map(|r| ("Route".to_owned(), r)));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn dialog(route_set: &[&str]) -> Dialog {
        Dialog {
            call_id: "c".into(),
            local: "<sip:v@127.0.0.1>;tag=a".into(),
            remote: "<sip:alice@127.0.0.1>;tag=b".into(),
            target: "sip:alice@192.0.2.5:5070".into(),
            flow: Flow::Udp("127.0.0.1:5060".parse().unwrap()),
            next_cseq: 1,
            route_set: route_set.iter().map(|r| r.to_string()).collect(),
        }
    }

    fn local() -> Local {
        Local { host: "127.0.0.1".into(), port: 5060, user_agent: "edge".into() }
    }

    #[test]
    fn loose_route_set() {
        let mut d = dialog(&["<sip:127.0.0.1:5080;lr;ftag=a>", "<sip:p2.example.com;lr>"]);
        d.follow_route_set();
        let bye = d.request(&local(), Method::Bye, "z9hG4bKtest");
        assert_eq!(bye.request_uri(), Some("sip:alice@192.0.2.5:5070"));
        assert_eq!(bye.header_values("Route"), ["<sip:127.0.0.1:5080;lr;ftag=a>", "<sip:p2.example.com;lr>"]);
        assert_eq!(bye.header("User-Agent"), Some("edge"));
        assert_eq!(d.flow, Flow::Udp("127.0.0.1:5080".parse().unwrap()));
    }

    #[test]
    fn strict_route_set() {
        let d = dialog(&["<sip:10.0.0.1:5080>", "<sip:p2.example.com;lr>"]);
        let bye = d.request_with_cseq(&local(), Method::Bye, 2, "z9hG4bKx");
        assert_eq!(bye.request_uri(), Some("sip:10.0.0.1:5080"));
        assert_eq!(bye.header_values("Route"), ["<sip:p2.example.com;lr>", "<sip:alice@192.0.2.5:5070>"]);
    }

    #[test]
    fn uac_learns_reversed_route_set_from_the_response() {
        let mut d = dialog(&[]);
        d.remote = "<sip:alice@127.0.0.1>".into();
        let resp = SipMessage::parse(
            b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK1\r\nRecord-Route: <sip:10.0.0.2;lr>, <sip:10.0.0.1:5070;lr>\r\n\
              From: <sip:v@127.0.0.1>;tag=a\r\nTo: <sip:alice@127.0.0.1>;tag=z\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\
              Contact: <sip:alice@192.0.2.9>\r\nContent-Length: 0\r\n\r\n",
        )
        .unwrap();
        d.learn_from_response(&resp);
        assert_eq!(d.route_set, ["<sip:10.0.0.1:5070;lr>", "<sip:10.0.0.2;lr>"]);
        assert_eq!(d.target, "sip:alice@192.0.2.9");
        assert_eq!(d.flow, Flow::Udp("10.0.0.1:5070".parse().unwrap()));
    }
}
