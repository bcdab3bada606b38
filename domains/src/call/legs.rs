//! The legs of a call and the states they pass through, each named for what it waits for
//! (with its RFC 3261 equivalent in the comment). A leg holds its dialog (route set, CSeq),
//! its media endpoint and the transactions it has open; what the states mean for the call is
//! decided in `sip_in`, `connect` and `executor`.

use chrono::{DateTime, Utc};

use super::ids::Ids;
use super::txn::{FailureAnswered, Resend};
use crate::sip::SipMessage;
use crate::sip::dialog::Dialog;
use crate::sip::flow::Flow;
use crate::sip::headers::NameAddr;
use crate::sip_uri::SipUri;

/// A leg's media endpoint and the SDP we last gave that leg.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub id: String,
    pub sdp: String,
}

/// What both kinds of leg keep.
#[derive(Debug)]
pub struct Leg {
    pub uuid: String,
    pub dialog: Dialog,
    pub endpoint: Option<Endpoint>,
    pub answered_at: Option<DateTime<Utc>>,
    /// Our in-dialog request (BYE or re-INVITE), resent until answered (Timers E/F, A/B).
    pub request: Option<Resend>,
    /// A re-INVITE from the peer, waiting for the media's answer.
    pub their_offer: Option<(Flow, SipMessage)>,
    /// The direction last reflected to this leg (hold/resume), so a repeat is not re-sent.
    pub reflected: Option<crate::sdp::Direction>,
    /// For events: the leg's parties as Vonage reports them.
    pub from: String,
    pub to: String,
    /// The leg's terminal event is out.
    pub reported: bool,
    /// The peer hung up (BYE received): `disconnected_by: user`.
    pub hung_up_by_peer: bool,
}

impl Leg {
    pub fn new(uuid: String, dialog: Dialog, from: String, to: String) -> Leg {
        Leg {
            uuid,
            dialog,
            endpoint: None,
            answered_at: None,
            request: None,
            their_offer: None,
            reflected: None,
            from,
            to,
            reported: false,
            hung_up_by_peer: false,
        }
    }

    pub fn endpoint_id(&self) -> Option<String> {
        self.endpoint.as_ref().map(|e| e.id.clone())
    }
}

/// The inbound leg (voxbridge as UAS).
#[derive(Debug)]
pub enum UasState {
    /// The executor's answer or rejection, or the caller's CANCEL (INVITE server transaction
    /// "Proceeding").
    ExpectAnswerDecision,
    /// Our 2xx, resent until the ACK (§13.3.1.4).
    ExpectAck(Resend),
    /// Dialog confirmed.
    ExpectBye,
    /// We sent BYE (`Leg::request`).
    ExpectByeResponse,
    /// A failure response sent: Timers G/H, then I (INVITE server transaction "Completed").
    ExpectFailureAck(FailureAnswered),
    Terminated,
}

#[derive(Debug)]
pub struct Inbound {
    pub leg: Leg,
    pub invite: SipMessage,
    /// Where responses to the INVITE go (the request's flow; in-dialog requests follow the
    /// route set instead).
    pub flow: Flow,
    pub tag: String,
    pub state: UasState,
    /// The last provisional response, resent for a retransmitted INVITE.
    pub last_provisional: Option<SipMessage>,
    /// The session interval (RFC 4028) the session is refreshed within, once answered.
    pub session_interval: Option<u32>,
    /// The caller asked us to refresh (`refresher=uas`).
    pub we_refresh: bool,
    /// The caller requires reliable provisionals (`Require: 100rel`, RFC 3262).
    pub reliable: bool,
    pub rseq: u32,
    /// The reliable provisional resent until its PRACK.
    pub unacked: Option<Resend>,
    /// Our 2xx waits for the PRACK of a provisional that carried SDP (§3).
    pub answer_waits_for_prack: bool,
}

impl Inbound {
    pub fn new(ids: &mut Ids, uuid: String, flow: Flow, invite: SipMessage) -> Inbound {
        let tag = ids.tag();
        let to_header = invite.header("To").unwrap_or_default().to_owned();
        let target = invite
            .header("Contact")
            .and_then(|c| NameAddr::parse(c).ok())
            .map(|n| n.uri)
            .unwrap_or_else(|| invite.request_uri().unwrap_or_default().to_owned());
        let mut dialog = Dialog {
            call_id: invite.call_id().to_owned(),
            local: format!("{to_header};tag={tag}"),
            remote: invite.header("From").unwrap_or_default().to_owned(),
            target,
            flow: flow.clone(),
            next_cseq: 1,
            route_set: invite.header_values("Record-Route"),
        };
        dialog.follow_route_set();
        let leg = Leg::new(uuid, dialog, user_or_uri(invite.header("From")), user_or_uri(invite.header("To")));
        let reliable = invite
            .header_values("Require")
            .iter()
            .any(|v| crate::sip::headers::option_tags(v).any(|t| t.eq_ignore_ascii_case("100rel")));
        Inbound {
            leg,
            invite,
            flow,
            tag,
            state: UasState::ExpectAnswerDecision,
            last_provisional: None,
            session_interval: None,
            we_refresh: false,
            reliable,
            rseq: 0,
            unacked: None,
            answer_waits_for_prack: false,
        }
    }

    /// The inbound leg of a call placed over the Voice API, which has none: it never received
    /// an INVITE, so it is over from the start, matches no message (its Call-ID is empty, which
    /// the edge never routes) and is never reported; `from`/`to` name the call's parties.
    pub fn absent(uuid: String, from: String) -> Inbound {
        let nowhere = Flow::Udp(std::net::SocketAddr::from(([0, 0, 0, 0], 0)));
        let dialog = Dialog {
            call_id: String::new(),
            local: String::new(),
            remote: String::new(),
            target: String::new(),
            flow: nowhere.clone(),
            next_cseq: 1,
            route_set: Vec::new(),
        };
        let mut leg = Leg::new(uuid, dialog, from, String::new());
        leg.reported = true;
        let invite = SipMessage {
            start: crate::sip::message::StartLine::Request { method: crate::sip::Method::Invite, uri: String::new() },
            headers: Vec::new(),
            body: Vec::new(),
        };
        Inbound {
            leg,
            invite,
            flow: nowhere,
            tag: String::new(),
            state: UasState::Terminated,
            last_provisional: None,
            session_interval: None,
            we_refresh: false,
            reliable: false,
            rseq: 0,
            unacked: None,
            answer_waits_for_prack: false,
        }
    }

    pub fn is_terminated(&self) -> bool {
        matches!(self.state, UasState::Terminated)
    }

    /// A response to the INVITE with our tag.
    pub fn response(&self, code: u16) -> SipMessage {
        self.invite.response(code, Some(&self.tag))
    }

    pub fn is_initial_invite(&self, msg: &SipMessage) -> bool {
        msg.cseq() == self.invite.cseq() && msg.branch() == self.invite.branch()
    }
}

/// An outbound leg (voxbridge as UAC).
#[derive(Debug)]
pub enum UacState {
    /// DNS and the connection to the next hop.
    ExpectFlow,
    /// Our SDP offer from media.
    ExpectEndpoint,
    /// INVITE sent, nothing heard (Timers A/B: `Leg::request` holds the INVITE).
    ExpectProvisional,
    /// A provisional arrived; the ringing timeout runs.
    ExpectFinal,
    /// The callee answered: its SDP goes to media, then the bridge.
    ExpectMediaApplied,
    /// Answered, and its `onAnswer` NCCO (a whisper) runs before the bridge.
    ExpectWhisperDone,
    /// We sent CANCEL: the 487 gets an ACK, a late 2xx an ACK and a BYE.
    ExpectCancelResult,
    /// Dialog confirmed.
    ExpectBye,
    /// We sent BYE (`Leg::request`).
    ExpectByeResponse,
    /// A failure response was ACKed; its retransmissions get the ACK again (Timer D: 32 s
    /// on UDP, none on TCP).
    ExpectFailureRetransmissions,
    Terminated,
}

#[derive(Debug)]
pub struct Outbound {
    pub leg: Leg,
    pub target: SipUri,
    pub headers: Vec<(String, String)>,
    pub state: UacState,
    pub invite: Option<SipMessage>,
    /// The ACK of the 2xx, resent for each retransmitted 2xx.
    pub ack: Option<SipMessage>,
    pub ringing: std::time::Duration,
    /// Set once the leg sent its INVITE: the leg counts for events and records.
    pub started: bool,
    pub cancel_sent: bool,
    /// Answers a 401/407 from the far end (once).
    pub credentials: Option<(String, String)>,
    pub auth_tried: bool,
    /// The target as planned, and the candidate to try if this server fails (RFC 3263).
    pub planned: super::connect::Target,
    pub next_attempt: Option<usize>,
    /// RSeq of the last reliable provisional PRACKed (RFC 3262).
    pub last_rseq: Option<u32>,
    /// How the leg failed, once it has.
    pub failure: Option<super::outcome::LegFailure>,
    /// Placed to reach an originated call's party (its uuid is the call's).
    pub originating: bool,
    /// The `X-` headers of the final response to the INVITE (`DialSipHeader_*` of TwiML).
    pub final_headers: Vec<(String, String)>,
    /// The session interval we refresh (the far end's 2xx named us, the UAC, the refresher).
    pub refreshing: Option<u32>,
    /// The session interval the callee refreshes (its 2xx kept the refresher): without a
    /// refresh within it, the session is over.
    pub policing: Option<u32>,
}

impl Outbound {
    pub fn is_terminated(&self) -> bool {
        matches!(self.state, UacState::Terminated)
    }

    pub fn is_invite_response(&self, msg: &SipMessage) -> bool {
        let ours = self.invite.as_ref().and_then(SipMessage::cseq);
        msg.cseq().is_some_and(|c| Some(&c) == ours.as_ref())
    }
}

/// The user part of a From/To header, else its URI.
pub fn user_or_uri(header: Option<&str>) -> String {
    header
        .and_then(|h| NameAddr::parse(h).ok())
        .map(|n| n.user().map(str::to_owned).unwrap_or(n.uri))
        .unwrap_or_default()
}
