//! Blind transfer (REFER, RFC 3515) by a bridged callee: a PBX user transfers the caller to
//! another SIP address. The REFER is accepted (`202`), the referrer told `100 Trying` by
//! NOTIFY (`message/sipfrag`), the caller unbridged and the target rung as a `connect` would;
//! when the target answers, the caller is bridged to it and the referrer gets the final
//! NOTIFY (`200 OK`, subscription terminated) and a BYE; when it fails, the referrer gets the
//! failure's status line and a BYE, and the NCCO goes on. Only SIP targets are taken: a
//! Refer-To naming a number (or a `tel:` URI) is refused with `403` — trunk legs exist only
//! because an application's NCCO asked for them, never because a far end did.

use std::collections::VecDeque;
use std::time::Duration;

use super::connect::{ConnectPlan, Target};
use super::executor::Step;
use super::legs::UacState;
use super::{Call, Op};
use crate::media::Command;
use crate::sip::flow::Flow;
use crate::sip::headers::NameAddr;
use crate::sip::{Method, SipMessage};
use crate::sip_uri::SipUri;

/// How long the transfer target may ring.
const TARGET_RINGING: Duration = Duration::from_secs(60);

/// Why a REFER is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferRefused {
    #[error("no Refer-To")]
    NoTarget,
    #[error("Refer-To {0} is not a SIP URI")]
    NotSip(String),
    #[error("Refer-To {0} names a number: trunk legs are placed by NCCOs only")]
    Number(String),
    #[error("only a bridged callee may transfer")]
    NotBridged,
}

impl ReferRefused {
    pub fn status(&self) -> u16 {
        match self {
            ReferRefused::NoTarget | ReferRefused::NotSip(_) => 400,
            ReferRefused::Number(_) | ReferRefused::NotBridged => 403,
        }
    }
}

/// The transfer target of a REFER, if it may be called.
pub fn refer_target(msg: &SipMessage) -> Result<SipUri, ReferRefused> {
    let value = msg.header("Refer-To").or_else(|| msg.header("r")).ok_or(ReferRefused::NoTarget)?;
    let uri = NameAddr::parse(value).map(|n| n.uri).unwrap_or_else(|_| value.trim().to_owned());
    if !(uri.starts_with("sip:") || uri.starts_with("sips:")) {
        return Err(ReferRefused::NotSip(uri));
    }
    // Embedded headers (`?Replaces=…`, attended transfer) are not honoured: the URI alone.
    let bare = uri.split('?').next().unwrap_or_default();
    let target = SipUri::parse(bare).map_err(|_| ReferRefused::NotSip(uri.clone()))?;
    if target.user.as_deref().is_some_and(|u| crate::e164::E164::parse(u).is_ok()) {
        return Err(ReferRefused::Number(uri));
    }
    Ok(target)
}

impl Call {
    /// A REFER on outbound leg `i`.
    pub(super) fn refer_from_callee(&mut self, i: usize, flow: Flow, msg: SipMessage) {
        let target = match refer_target(&msg) {
            Ok(t) if self.exec.bridged == Some(i) && !self.is_caller(i) => t,
            Ok(_) => return self.refuse_refer(&flow, &msg, &ReferRefused::NotBridged),
            Err(e) => return self.refuse_refer(&flow, &msg, &e),
        };
        tracing::info!(call_uuid = %self.uuid, leg = i, %target, "blind transfer (REFER)");
        self.cx.send(&flow, msg.response(202, None));
        self.notify_referrer(i, "SIP/2.0 100 Trying", false);
        let (a, b) = (self.caller_endpoint(), self.b.get(i).and_then(|b| b.leg.endpoint_id()));
        if let (Some(a), Some(b)) = (a, b) {
            self.cx.media(Op::Ignored, Command::Unbridge { a, b });
        }
        self.exec.bridged = None;
        self.exec.referrer = Some(i);
        let from = self.caller_leg().from.clone();
        let limit = self.exec.connect.as_ref().map_or(Duration::from_secs(7200), |p| p.limit);
        self.exec.step = Step::ExpectCalleeAnswer;
        self.start_connect(ConnectPlan {
            targets: VecDeque::from([Target::new(target, TARGET_RINGING)]),
            parallel: false,
            fail_over: false,
            from,
            limit,
            dtmf_answer: None,
            ringback: None,
            on_answer: None,
            machine_detection: None,
            beep_timeout_ms: None,
        });
    }

    fn refuse_refer(&mut self, flow: &Flow, msg: &SipMessage, why: &ReferRefused) {
        tracing::info!(call_uuid = %self.uuid, reason = %why, "REFER refused");
        let mut resp = msg.response(why.status(), None);
        resp.push_header("Warning", format!("399 voxbridge \"{why}\""));
        self.cx.send(flow, resp);
    }

    /// The transfer's outcome: `status_line` to the referrer, then its release. Called when the
    /// target answers (`200 OK`) or fails.
    pub(super) fn transfer_settled(&mut self, status_line: &str) {
        let Some(r) = self.exec.referrer.take() else { return };
        self.notify_referrer(r, status_line, true);
        if self.b.get(r).is_some_and(|b| !b.is_terminated() && !b.leg.reported) {
            self.end_b(r, None);
        }
    }

    /// True for the leg whose transfer is running (it is not a callee of the running connect).
    pub(super) fn is_referrer(&self, i: usize) -> bool {
        self.exec.referrer == Some(i)
    }

    /// A NOTIFY of the implicit `refer` subscription (RFC 3515 §2.4.4). Sent once, unresent: a
    /// lost NOTIFY costs the referrer a progress report, never the transfer.
    fn notify_referrer(&mut self, i: usize, status_line: &str, last: bool) {
        let branch = self.cx.ids.branch();
        let local = self.cx.local.clone();
        let Some(b) = self.b.get_mut(i) else { return };
        if !matches!(b.state, UacState::ExpectBye) {
            return;
        }
        let mut notify = b.leg.dialog.request(&local, Method::Notify, &branch);
        notify.push_header("Event", "refer");
        let state = if last { "terminated;reason=noresource" } else { "active;expires=60" };
        notify.push_header("Subscription-State", state);
        notify.push_header("Content-Type", "message/sipfrag;version=2.0");
        notify.body = format!("{status_line}\r\n").into_bytes();
        let flow = b.leg.dialog.flow.clone();
        self.cx.send(&flow, notify);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refer(to: &str) -> SipMessage {
        let text = format!(
            "REFER sip:vb@203.0.113.1 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.2:5080;branch=z9hG4bKr\r\n\
             From: <sip:bob@192.0.2.2>;tag=b\r\nTo: <sip:vb@203.0.113.1>;tag=v\r\nCall-ID: c\r\nCSeq: 2 REFER\r\n\
             Refer-To: {to}\r\nContent-Length: 0\r\n\r\n"
        );
        SipMessage::parse(text.as_bytes()).unwrap()
    }

    #[test]
    fn targets() {
        assert_eq!(refer_target(&refer("<sip:carol@pbx.example>")).unwrap().user.as_deref(), Some("carol"));
        assert_eq!(refer_target(&refer("<sip:carol@pbx.example?Replaces=abc>")).unwrap().host, "pbx.example");
        assert_eq!(refer_target(&refer("<sip:+15551230000@carrier.example>")).unwrap_err().status(), 403);
        assert_eq!(refer_target(&refer("<tel:+15551230000>")).unwrap_err().status(), 400);
    }
}
