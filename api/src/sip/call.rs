//! One call, driven by one task: the inbound leg (A, voxbridge as UAS), the application's NCCO
//! fetched from answer_url, and for `connect` to a SIP endpoint the outbound leg (B, voxbridge
//! as UAC) with independent dialog identifiers — a B2BUA. The task owns every piece of the
//! call's state; SIP messages, media events and timers arrive in its inbox or its select.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use domains::events::{CallEvent, CallStatus, Direction, status_for_sip_failure};
use domains::forward::ForwardTarget;
use domains::ncco::{Action, Endpoint, Ncco};
use domains::sip::headers::NameAddr;
use domains::sip::{Method, SipMessage};
use tokio::sync::mpsc;
use tracing::Instrument;

use super::edge::Edge;
use super::requests::{Dialog, ack_for_failure, cancel_for, new_branch, random_token};
use super::retransmit::{self, Retransmission};
use super::transport::{Flow, Incoming};
use crate::media::{MediaEndpoint, MediaError, MediaEvent};
use crate::store::entity::call as call_row;
use crate::webhooks::{AnswerParams, AppHooks};

/// What the edge decided an admitted INVITE is for.
#[derive(Debug, Clone)]
pub enum Route {
    Application { application_id: String, region: String },
    Forward { targets: Vec<ForwardTarget>, region: String },
}

#[derive(Debug)]
pub enum CallInput {
    Sip(Incoming),
    Media(MediaEvent),
}

/// Platform headers are not passed to applications.
const PLATFORM_HEADER_PREFIX: &str = "x-voxbridge-";

/// Answers an INVITE with a final failure and stays for its ACK (Timer H), resending the
/// response when the INVITE is retransmitted.
pub async fn reject(
    edge: &Arc<Edge>,
    inc: Incoming,
    code: u16,
    extra: &[(&str, String)],
    mut inbox: mpsc::UnboundedReceiver<CallInput>,
) {
    let mut resp = inc.msg.response(code, Some(&random_token(10)));
    for (n, v) in extra {
        resp.push_header(n, v.clone());
    }
    let mut retrans = retransmit::send(&edge.transport, &inc.flow, resp.clone()).await;
    // Stay for the ACK (Timer H, 64·T1), then absorb ACK retransmissions (Timer I); a follow-up
    // INVITE with the same Call-ID (say, with credentials) is handed back to the edge.
    let deadline = tokio::time::sleep(domains::sip::timers::timer_h());
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = &mut deadline => return,
            input = inbox.recv() => match input {
                None => return,
                Some(CallInput::Sip(m)) => match m.msg.method() {
                    Some(Method::Ack) => {
                        retrans.stop();
                        let linger = domains::sip::timers::timer_i(inc.flow.is_reliable());
                        deadline.as_mut().reset(tokio::time::Instant::now() + linger);
                    }
                    // Same Call-ID, new CSeq: the caller's next attempt (e.g. with credentials).
                    Some(Method::Invite) if m.msg.cseq() != inc.msg.cseq() => {
                        edge.clone().start_invite(m);
                        return;
                    }
                    Some(Method::Invite) => { let _ = edge.transport.send(&m.flow, &resp).await; }
                    Some(_) => edge.reply(&m, 481, &[]).await,
                    None => {}
                },
                Some(CallInput::Media(_)) => {}
            }
        }
    }
}

/// Stays silent for an INVITE refused by a lockout, swallowing its retransmissions (Timer B's
/// 64·T1 at the caller) so that they are not admitted, counted and refused again.
pub async fn swallow(mut inbox: mpsc::UnboundedReceiver<CallInput>) {
    let deadline = tokio::time::sleep(retransmit::T1 * 64);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = &mut deadline => return,
            input = inbox.recv() => if input.is_none() { return },
        }
    }
}

pub async fn run_inbound(
    edge: Arc<Edge>,
    inc: Incoming,
    route: Route,
    inbox: mpsc::UnboundedReceiver<CallInput>,
    self_tx: mpsc::UnboundedSender<CallInput>,
) {
    let uuid = uuid::Uuid::new_v4().to_string();
    let span = tracing::info_span!("call", call_uuid = %uuid);
    let call = Call::new(edge, inc, route, inbox, self_tx, uuid);
    call.run().instrument(span).await;
}

struct BLeg {
    uuid: String,
    dialog: Dialog,
    invite: SipMessage,
    media: MediaEndpoint,
    retrans: Retransmission,
    answered_at: Option<DateTime<Utc>>,
    to: String,
    from: String,
    /// The 2xx was received and ACKed; a retransmitted 2xx gets the same ACK.
    ack: Option<SipMessage>,
}

/// How a call (or its connect) ended.
#[derive(Debug, Clone)]
enum Outcome {
    /// Hung up after being answered; who hung up.
    Completed { by: &'static str },
    /// Never answered: the status for events and the SIP code for the caller.
    Failed { status: CallStatus, detail: Option<String>, code: u16, reason: Option<String> },
    /// The caller cancelled.
    Cancelled,
}

struct Call {
    edge: Arc<Edge>,
    inbox: mpsc::UnboundedReceiver<CallInput>,
    self_tx: mpsc::UnboundedSender<CallInput>,
    uuid: String,
    conversation_uuid: String,
    route: Route,
    invite: SipMessage,
    flow: Flow,
    a_tag: String,
    a_dialog: Dialog,
    a_last_response: Option<SipMessage>,
    a_retrans: Retransmission,
    a_media: Option<MediaEndpoint>,
    a_answered_at: Option<DateTime<Utc>>,
    a_ended: bool,
    from: String,
    to: String,
    hooks: Option<AppHooks>,
    application_id: Option<String>,
    b: Option<BLeg>,
    invite_received: std::time::Instant,
    /// Time spent waiting for answer_url, which the post-dial delay voxbridge adds excludes.
    answer_url_time: Duration,
}

fn user_or_uri(header: Option<&str>) -> String {
    header
        .and_then(|h| NameAddr::parse(h).ok())
        .map(|n| n.user().map(str::to_owned).unwrap_or(n.uri))
        .unwrap_or_default()
}

impl Call {
    fn new(
        edge: Arc<Edge>,
        inc: Incoming,
        route: Route,
        inbox: mpsc::UnboundedReceiver<CallInput>,
        self_tx: mpsc::UnboundedSender<CallInput>,
        uuid: String,
    ) -> Call {
        let a_tag = random_token(10);
        let msg = inc.msg;
        let to_header = msg.header("To").unwrap_or_default().to_owned();
        let contact = msg
            .header("Contact")
            .and_then(|c| NameAddr::parse(c).ok())
            .map(|n| n.uri)
            .unwrap_or_else(|| msg.request_uri().unwrap_or_default().to_owned());
        let a_dialog = Dialog {
            call_id: msg.call_id().to_owned(),
            local: format!("{to_header};tag={a_tag}"),
            remote: msg.header("From").unwrap_or_default().to_owned(),
            target: contact,
            flow: inc.flow.clone(),
            next_cseq: 1,
            route_set: msg.header_values("Record-Route"),
        };
        let mut a_dialog = a_dialog;
        a_dialog.follow_route_set();
        let to = user_or_uri(msg.header("To"));
        let from = user_or_uri(msg.header("From"));
        Call {
            edge,
            inbox,
            self_tx,
            conversation_uuid: format!("CON-{}", uuid::Uuid::new_v4()),
            uuid,
            route,
            flow: inc.flow,
            invite: msg,
            a_tag,
            a_dialog,
            a_last_response: None,
            a_retrans: Retransmission::none(),
            a_media: None,
            a_answered_at: None,
            a_ended: false,
            from,
            to,
            hooks: None,
            application_id: None,
            b: None,
            invite_received: inc.received,
            answer_url_time: Duration::ZERO,
        }
    }

    async fn run(mut self) {
        metrics::gauge!("voxbridge_sip_active_calls").increment(1.0);
        let outcome = self.execute().await;
        self.finish(outcome).await;
        self.edge.unregister(&self.a_dialog.call_id);
        if let Some(b) = &self.b {
            self.edge.unregister(&b.dialog.call_id);
        }
        metrics::gauge!("voxbridge_sip_active_calls").decrement(1.0);
    }

    async fn execute(&mut self) -> Outcome {
        if !self.edge.media.is_available() {
            return failed(CallStatus::Failed, "media_unavailable", 503, "no media process available");
        }
        let offer = String::from_utf8_lossy(&self.invite.body).into_owned();
        if offer.trim().is_empty() {
            return failed(CallStatus::Failed, "cannot_route", 488, "INVITE without an SDP offer is not supported");
        }
        match self.edge.media.create_endpoint(&self.uuid, Some(&offer), &[]).await {
            Ok(ep) => {
                self.edge.watch_endpoint(&ep.id, self.self_tx.clone());
                self.a_media = Some(ep);
            }
            Err(MediaError::Negotiation(e)) => return failed(CallStatus::Failed, "cannot_route", 488, &e),
            Err(e) => return failed(CallStatus::Failed, "media_unavailable", 503, &e.to_string()),
        }
        self.insert_row(&self.uuid.clone(), Direction::Inbound, &self.from.clone(), &self.to.clone()).await;
        match self.route.clone() {
            Route::Forward { targets, .. } => self.forward(targets).await,
            Route::Application { application_id, region } => self.run_application(application_id, region).await,
        }
    }

    async fn run_application(&mut self, application_id: String, region: String) -> Outcome {
        self.application_id = Some(application_id.clone());
        let app = match self.edge.provisioning.application(&application_id).await {
            Ok(Some(app)) => app,
            Ok(None) => return failed(CallStatus::Failed, "cannot_route", 480, "application no longer exists"),
            Err(e) => return failed(CallStatus::Failed, "internal_error", 500, &e.to_string()),
        };
        let caps: domains::application::Capabilities = serde_json::from_value(app.capabilities).unwrap_or_default();
        let Some(voice) = caps.voice else {
            return failed(CallStatus::Failed, "cannot_route", 480, "application has no voice capability");
        };
        self.hooks = Some(AppHooks {
            application_id,
            answer: voice.webhooks.answer_url,
            fallback_answer: voice.webhooks.fallback_answer_url,
            event: voice.webhooks.event_url,
            signed: voice.signed_callbacks.unwrap_or(true),
        });
        self.event_a(CallStatus::Started, None);
        self.event_a(CallStatus::Ringing, None);
        let ncco = match self.fetch_ncco(&region).await {
            Ok(ncco) => ncco,
            Err(outcome) => return outcome,
        };
        // Only the first action runs until the NCCO executor lands (issue 7): whatever it ends
        // with ends the call.
        if let Some(action) = ncco.0.into_iter().next() {
            return match action {
                Action::Connect(connect) => match connect.endpoint {
                    Endpoint::Sip(sip) => {
                        let target = match &sip.target {
                            domains::ncco::SipTarget::Uri(u) => u.uri.clone(),
                            other => {
                                return failed(
                                    CallStatus::Failed,
                                    "cannot_route",
                                    480,
                                    &format!("sip endpoint {other:?} is not supported yet; use uri"),
                                );
                            }
                        };
                        let from = connect.from.map(|n| n.to_string()).unwrap_or_else(|| self.from.clone());
                        self.connect_sip(&target, sip.sip_headers(), &from, connect.timeout, Some(connect.limit)).await
                    }
                    other => unsupported(&format!("connect to a {} endpoint", other.type_name())),
                },
                other => unsupported(&format!("the {} action", other.name())),
            };
        }
        failed(CallStatus::Failed, "cannot_route", 480, "the NCCO has no action that answers the call")
    }

    /// answer_url (and its fallback) to a parsed NCCO; the caller may cancel meanwhile.
    async fn fetch_ncco(&mut self, region: &str) -> Result<Ncco, Outcome> {
        let Some(hooks) = self.hooks.clone() else {
            return Err(failed(CallStatus::Failed, "internal_error", 500, "no application"));
        };
        let params = self.answer_params(region);
        let webhooks = self.edge.webhooks.clone();
        let accept = |doc: &serde_json::Value| Ncco::parse(doc).map(|_| ()).map_err(|p| describe_problems(&p));
        let fetch = async {
            let doc = webhooks.fetch_answer(&hooks, &params, &accept).await.map_err(|e| e.to_string())?;
            Ncco::parse(&doc).map_err(|p| format!("invalid NCCO: {}", describe_problems(&p)))
        };
        tokio::pin!(fetch);
        let started = std::time::Instant::now();
        loop {
            tokio::select! {
                result = &mut fetch => {
                    self.answer_url_time += started.elapsed();
                    return result.map_err(|reason| {
                        tracing::warn!(%reason, "no NCCO");
                        failed(CallStatus::Failed, "internal_error", 480, &reason)
                    });
                }
                input = self.inbox.recv() => {
                    if let Some(outcome) = self.pre_answer_input(input).await {
                        return Err(outcome);
                    }
                }
            }
        }
    }

    fn answer_params(&self, region: &str) -> AnswerParams {
        let region_url =
            self.edge.config.public_url.clone().unwrap_or_else(|| format!("http://{}", self.edge.config.http_addr));
        let mut params: AnswerParams = vec![
            ("to".into(), self.to.clone()),
            ("from".into(), self.from.clone()),
            ("uuid".into(), self.uuid.clone()),
            ("conversation_uuid".into(), self.conversation_uuid.clone()),
            ("region_url".into(), region_url),
            ("region".into(), region.to_owned()),
            ("endpoint_type".into(), "sip".into()),
        ];
        for (name, value) in &self.invite.headers {
            let lower = name.to_ascii_lowercase();
            let custom = lower.starts_with("x-") && !lower.starts_with(PLATFORM_HEADER_PREFIX);
            if custom || lower == "user-to-user" {
                params.push((format!("SipHeader_{name}"), value.clone()));
            }
        }
        params
    }

    /// Handles input while A is not answered; `Some` ends the call.
    async fn pre_answer_input(&mut self, input: Option<CallInput>) -> Option<Outcome> {
        match input? {
            CallInput::Sip(inc) if inc.msg.call_id() == self.a_dialog.call_id => match inc.msg.method() {
                Some(Method::Invite) => {
                    if let Some(last) = &self.a_last_response {
                        let _ = self.edge.transport.send(&inc.flow, last).await;
                    }
                    None
                }
                Some(Method::Cancel) => {
                    self.edge.reply(&inc, 200, &[]).await;
                    Some(Outcome::Cancelled)
                }
                Some(Method::Ack) => None,
                Some(_) => {
                    self.edge.reply(&inc, 481, &[]).await;
                    None
                }
                None => None,
            },
            CallInput::Sip(_) => None,
            CallInput::Media(MediaEvent::ProcessLost) => {
                Some(failed(CallStatus::Failed, "media_unavailable", 503, "media process lost"))
            }
            CallInput::Media(_) => None,
        }
    }

    async fn forward(&mut self, targets: Vec<ForwardTarget>) -> Outcome {
        let mut last = failed(CallStatus::Failed, "cannot_route", 480, "no forwarding target");
        for target in targets {
            let uri = target.uri.to_string();
            let from = self.from.clone();
            let ringing = Duration::from_millis(target.timeout_ms.into());
            last = self.connect_sip_with_timeout(&uri, vec![], &from, ringing, None).await;
            match &last {
                // 5xx from a target moves on to the next one (Vonage's failover rule).
                Outcome::Failed { code, .. } if (500..600).contains(code) => continue,
                _ => return last,
            }
        }
        last
    }

    async fn connect_sip(
        &mut self,
        uri: &str,
        headers: Vec<(String, String)>,
        from: &str,
        timeout_secs: u32,
        limit_secs: Option<u32>,
    ) -> Outcome {
        self.connect_sip_with_timeout(uri, headers, from, Duration::from_secs(timeout_secs.into()), limit_secs).await
    }

    /// The B2BUA: INVITE the far end, relay its progress, bridge media on answer, and stay
    /// until either side hangs up.
    async fn connect_sip_with_timeout(
        &mut self,
        uri: &str,
        headers: Vec<(String, String)>,
        from: &str,
        ringing: Duration,
        limit_secs: Option<u32>,
    ) -> Outcome {
        let target = match domains::sip_uri::SipUri::parse(uri) {
            Ok(t) => t,
            Err(e) => return failed(CallStatus::Failed, "cannot_route", 480, &format!("bad SIP URI {uri}: {e}")),
        };
        let transport = target.transport();
        let peer = match tokio::net::lookup_host((target.host.as_str(), target.port_or_default())).await {
            Ok(mut addrs) => match addrs.next() {
                Some(a) => a,
                None => {
                    return failed(
                        CallStatus::Failed,
                        "cannot_route",
                        480,
                        &format!("{} does not resolve", target.host),
                    );
                }
            },
            Err(e) => return failed(CallStatus::Failed, "cannot_route", 480, &format!("{}: {e}", target.host)),
        };
        let flow = match self.edge.transport.flow_to(peer, transport, &target.host).await {
            Ok(f) => f,
            Err(e) => return failed(CallStatus::Failed, "cannot_route", 480, &format!("connecting {peer}: {e}")),
        };
        // Offer the far end the caller's codec first, so the bridge needs no transcoding.
        let prefer: Vec<String> = self.a_media.as_ref().and_then(|a| first_codec(&a.local_sdp)).into_iter().collect();
        let media = match self.edge.media.create_endpoint(&self.uuid, None, &prefer).await {
            Ok(m) => {
                self.edge.watch_endpoint(&m.id, self.self_tx.clone());
                m
            }
            Err(e) => return failed(CallStatus::Failed, "media_unavailable", 503, &e.to_string()),
        };
        let b_uuid = uuid::Uuid::new_v4().to_string();
        let local = &self.edge.local;
        let from_header = format!("<sip:{from}@{}>;tag={}", local.host, random_token(10));
        let mut dialog = Dialog {
            call_id: format!("{}@voxbridge", random_token(20)),
            local: from_header,
            remote: format!("<{target}>"),
            target: target.to_string(),
            flow: flow.clone(),
            next_cseq: 1,
            route_set: Vec::new(),
        };
        let mut invite = dialog.request(local, Method::Invite, &new_branch());
        // Loop protection (RFC 3261 §16.6 step 3, as a proxy would): one hop fewer than we got.
        let hops = self.invite.max_forwards().map_or(70, |mf| mf.saturating_sub(1));
        invite.set_header("Max-Forwards", hops.to_string());
        for (n, v) in &headers {
            invite.push_header(n, v.clone());
        }
        invite.push_header("Content-Type", "application/sdp");
        invite.body = media.local_sdp.clone().into_bytes();
        self.edge.register(&dialog.call_id, self.self_tx.clone());
        let b_to = target.user.clone().unwrap_or_else(|| target.to_string());
        let retrans = retransmit::send(&self.edge.transport, &flow, invite.clone()).await;
        let pdd = self.invite_received.elapsed();
        metrics::histogram!("voxbridge_sip_post_dial_delay_seconds").record(pdd.as_secs_f64());
        metrics::histogram!("voxbridge_sip_added_delay_seconds")
            .record(pdd.saturating_sub(self.answer_url_time).as_secs_f64());
        self.b = Some(BLeg {
            uuid: b_uuid.clone(),
            dialog,
            invite,
            media,
            retrans,
            answered_at: None,
            to: b_to.clone(),
            from: from.to_owned(),
            ack: None,
        });
        self.insert_row(&b_uuid, Direction::Outbound, from, &b_to).await;
        self.event_b(CallStatus::Started, None);

        // Ringing phase.
        let ring_deadline = tokio::time::sleep(ringing);
        tokio::pin!(ring_deadline);
        loop {
            tokio::select! {
                _ = &mut ring_deadline => {
                    self.cancel_b().await;
                    return Outcome::Failed { status: CallStatus::Timeout, detail: None, code: 480, reason: Some("ringing timeout".into()) };
                }
                input = self.inbox.recv() => {
                    let Some(input) = input else { return Outcome::Cancelled };
                    match input {
                        CallInput::Sip(inc) if self.is_b(&inc) => {
                            if let Some(outcome) = self.b_pre_answer(inc).await {
                                match outcome {
                                    Ok(()) => break,
                                    Err(o) => return o,
                                }
                            }
                        }
                        other => {
                            if let Some(outcome) = self.pre_answer_input(Some(other)).await {
                                self.cancel_b().await;
                                return outcome;
                            }
                        }
                    }
                }
            }
        }
        self.bridged(limit_secs).await
    }

    fn is_b(&self, inc: &Incoming) -> bool {
        self.b.as_ref().is_some_and(|b| b.dialog.call_id == inc.msg.call_id())
    }

    /// A message from B before it answered. `Some(Ok)`: answered and bridged; `Some(Err)`: the
    /// connect failed.
    async fn b_pre_answer(&mut self, inc: Incoming) -> Option<Result<(), Outcome>> {
        let code = inc.msg.status()?;
        let (_, method) = inc.msg.cseq()?;
        if method != Method::Invite {
            return None; // e.g. the 200 to our CANCEL
        }
        let b = self.b.as_mut()?;
        // Any response stops INVITE retransmissions (Timer A).
        b.retrans.stop();
        match code {
            100 => None,
            101..=199 => {
                b.dialog.learn_from_response(&inc.msg);
                let has_sdp = !inc.msg.body.is_empty();
                if has_sdp {
                    let sdp = String::from_utf8_lossy(&inc.msg.body).into_owned();
                    let endpoint = b.media.id.clone();
                    if let Err(e) = self.edge.media.update_endpoint(&endpoint, &sdp).await {
                        tracing::warn!(error = %e, "early media SDP refused");
                    }
                    let _ = self.bridge().await;
                }
                if code == 180 || has_sdp {
                    self.event_b(CallStatus::Ringing, None);
                }
                self.provisional_to_a(if has_sdp { 183 } else { 180 }, has_sdp).await;
                None
            }
            200..=299 => {
                b.dialog.learn_from_response(&inc.msg);
                let cseq = b.invite.cseq().map(|c| c.0).unwrap_or(1);
                let ack = b.dialog.request_with_cseq(&self.edge.local, Method::Ack, cseq, &new_branch());
                let _ = self.edge.transport.send(&b.dialog.flow, &ack).await;
                b.ack = Some(ack);
                b.answered_at = Some(Utc::now());
                let endpoint = b.media.id.clone();
                let sdp = String::from_utf8_lossy(&inc.msg.body).into_owned();
                if !sdp.trim().is_empty()
                    && let Err(e) = self.edge.media.update_endpoint(&endpoint, &sdp).await
                {
                    self.bye_b().await;
                    return Some(Err(failed(
                        CallStatus::Failed,
                        "cannot_route",
                        488,
                        &format!("far-end SDP refused: {e}"),
                    )));
                }
                if let Err(e) = self.bridge().await {
                    self.bye_b().await;
                    return Some(Err(failed(CallStatus::Failed, "media_unavailable", 503, &e.to_string())));
                }
                self.event_b(CallStatus::Answered, None);
                self.update_row_answered(true).await;
                self.answer_a().await;
                Some(Ok(()))
            }
            _ => {
                let ack = ack_for_failure(&b.invite, &inc.msg);
                let _ = self.edge.transport.send(&b.dialog.flow, &ack).await;
                let (status, detail) = status_for_sip_failure(code);
                // The caller hears the far end's status, except for codes that only make sense
                // hop by hop.
                let relay = if matches!(code, 401 | 407 | 487) { 480 } else { code };
                Some(Err(Outcome::Failed {
                    status,
                    detail: detail.map(str::to_owned),
                    code: relay,
                    reason: Some(format!("far end answered {code}")),
                }))
            }
        }
    }

    async fn bridge(&self) -> Result<(), MediaError> {
        match (&self.a_media, &self.b) {
            (Some(a), Some(b)) => self.edge.media.bridge(&a.id, &b.media.id).await,
            _ => Ok(()),
        }
    }

    async fn provisional_to_a(&mut self, code: u16, with_sdp: bool) {
        let mut resp = self.invite.response(code, Some(&self.a_tag));
        resp.push_header("Contact", self.edge.local.contact(&self.flow));
        if with_sdp && let Some(a) = &self.a_media {
            resp.push_header("Content-Type", "application/sdp");
            resp.body = a.local_sdp.clone().into_bytes();
        }
        let _ = self.edge.transport.send(&self.flow, &resp).await;
        self.a_last_response = Some(resp);
    }

    async fn answer_a(&mut self) {
        let mut resp = self.invite.response(200, Some(&self.a_tag));
        resp.push_header("Contact", self.edge.local.contact(&self.flow));
        resp.push_header("Allow", super::edge::ALLOW);
        if let Some(a) = &self.a_media {
            resp.push_header("Content-Type", "application/sdp");
            resp.body = a.local_sdp.clone().into_bytes();
        }
        // The UAS core retransmits 2xx until the ACK arrives (RFC 3261 §13.3.1.4).
        self.a_retrans = retransmit::send(&self.edge.transport, &self.flow, resp.clone()).await;
        self.a_last_response = Some(resp);
        self.a_answered_at = Some(Utc::now());
        self.event_a(CallStatus::Answered, None);
        self.update_row_answered(false).await;
    }

    /// Both legs up: relay BYEs, absorb retransmissions, enforce `limit`, watch media.
    async fn bridged(&mut self, limit_secs: Option<u32>) -> Outcome {
        let limit = tokio::time::sleep(Duration::from_secs(limit_secs.unwrap_or(7200).into()));
        tokio::pin!(limit);
        loop {
            tokio::select! {
                _ = &mut limit => {
                    tracing::info!("call reached its limit");
                    self.bye_a().await;
                    self.bye_b().await;
                    return Outcome::Completed { by: "platform" };
                }
                input = self.inbox.recv() => {
                    let Some(input) = input else { return Outcome::Completed { by: "platform" } };
                    if let Some(outcome) = self.bridged_input(input).await {
                        return outcome;
                    }
                }
            }
        }
    }

    async fn bridged_input(&mut self, input: CallInput) -> Option<Outcome> {
        match input {
            CallInput::Sip(inc) if inc.msg.call_id() == self.a_dialog.call_id => {
                match inc.msg.method() {
                    Some(Method::Ack) => self.a_retrans.stop(),
                    Some(Method::Bye) => {
                        self.edge.reply(&inc, 200, &[]).await;
                        self.a_ended = true;
                        self.bye_b().await;
                        return Some(Outcome::Completed { by: "user" });
                    }
                    Some(Method::Invite) if self.is_initial_invite(&inc.msg) => {
                        if let Some(last) = &self.a_last_response {
                            let _ = self.edge.transport.send(&inc.flow, last).await;
                        }
                    }
                    Some(Method::Invite) => self.reinvite(inc, true).await,
                    Some(Method::Cancel) => self.edge.reply(&inc, 200, &[]).await,
                    Some(_) => self.edge.reply(&inc, 501, &[]).await,
                    None => self.reinvite_answered(inc, true).await,
                }
                None
            }
            CallInput::Sip(inc) if self.is_b(&inc) => {
                match (inc.msg.method(), inc.msg.status()) {
                    (Some(Method::Bye), _) => {
                        self.edge.reply(&inc, 200, &[]).await;
                        if let Some(b) = self.b.as_mut() {
                            b.ack = None;
                        }
                        self.bye_a().await;
                        return Some(Outcome::Completed { by: "user" });
                    }
                    (Some(Method::Invite), _) => self.reinvite(inc, false).await,
                    (Some(Method::Ack), _) => {}
                    (Some(_), _) => self.edge.reply(&inc, 501, &[]).await,
                    (None, Some(200..=299)) if inc.msg.cseq() == self.b.as_ref().and_then(|b| b.invite.cseq()) => {
                        // A retransmitted 2xx to our INVITE: our ACK was lost.
                        if let Some(ack) = self.b.as_ref().and_then(|b| b.ack.clone()) {
                            let _ = self.edge.transport.send(&inc.flow, &ack).await;
                        }
                    }
                    (None, Some(_)) => self.reinvite_answered(inc, false).await,
                    _ => {}
                }
                None
            }
            CallInput::Sip(_) => None,
            CallInput::Media(MediaEvent::RtpTimeout { endpoint }) => {
                let ours = self.a_media.as_ref().is_some_and(|a| a.id == endpoint)
                    || self.b.as_ref().is_some_and(|b| b.media.id == endpoint);
                if ours {
                    tracing::info!(%endpoint, "RTP timeout: hanging up");
                    self.bye_a().await;
                    self.bye_b().await;
                    return Some(Outcome::Completed { by: "platform" });
                }
                None
            }
            CallInput::Media(MediaEvent::ProcessLost) => {
                tracing::warn!("media process lost: hanging up");
                self.bye_a().await;
                self.bye_b().await;
                Some(Outcome::Completed { by: "platform" })
            }
            CallInput::Media(_) => None,
        }
    }

    fn is_initial_invite(&self, msg: &SipMessage) -> bool {
        msg.cseq() == self.invite.cseq() && msg.branch() == self.invite.branch()
    }

    /// A re-INVITE on one leg (e.g. hold): answered from the media process, and the new
    /// direction reflected to the other leg.
    async fn reinvite(&mut self, inc: Incoming, from_a: bool) {
        let endpoint = if from_a {
            self.a_media.as_ref().map(|a| a.id.clone())
        } else {
            self.b.as_ref().map(|b| b.media.id.clone())
        };
        let Some(endpoint) = endpoint else { return };
        let sdp = String::from_utf8_lossy(&inc.msg.body).into_owned();
        let tag = if from_a { self.a_tag.clone() } else { String::new() };
        match self.edge.media.update_endpoint(&endpoint, &sdp).await {
            Ok(answer) => {
                let mut resp = inc.msg.response(200, (!tag.is_empty()).then_some(tag.as_str()));
                resp.push_header("Contact", self.edge.local.contact(&inc.flow));
                resp.push_header("Content-Type", "application/sdp");
                resp.body = answer.into_bytes();
                let _ = self.edge.transport.send(&inc.flow, &resp).await;
                let direction = sdp_direction(&sdp);
                self.reflect_direction(!from_a, direction).await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "re-INVITE refused");
                self.edge.reply(&inc, 488, &[]).await;
            }
        }
    }

    /// Tells the other leg the media direction the first leg asked for (hold/resume).
    async fn reflect_direction(&mut self, to_a: bool, direction: &'static str) {
        let local = self.edge.local.clone();
        let (dialog, sdp) = if to_a {
            (&mut self.a_dialog, self.a_media.as_ref().map(|m| m.local_sdp.clone()))
        } else {
            match self.b.as_mut() {
                Some(b) => (&mut b.dialog, Some(b.media.local_sdp.clone())),
                None => return,
            }
        };
        let Some(sdp) = sdp else { return };
        let mut reinvite = dialog.request(&local, Method::Invite, &new_branch());
        reinvite.push_header("Content-Type", "application/sdp");
        reinvite.body = with_direction(&sdp, direction).into_bytes();
        let flow = dialog.flow.clone();
        // The answer (and our ACK) are handled as they come; the media keeps flowing meanwhile.
        let _ = self.edge.transport.send(&flow, &reinvite).await;
    }

    /// The answer to a re-INVITE we sent to reflect hold/resume: ACK a 2xx and apply its SDP.
    async fn reinvite_answered(&mut self, inc: Incoming, on_a: bool) {
        let (Some(code), Some((cseq, Method::Invite))) = (inc.msg.status(), inc.msg.cseq()) else { return };
        if code < 200 {
            return;
        }
        let local = self.edge.local.clone();
        let (dialog, endpoint) = if on_a {
            (&self.a_dialog, self.a_media.as_ref().map(|m| m.id.clone()))
        } else {
            match &self.b {
                Some(b) => (&b.dialog, Some(b.media.id.clone())),
                None => return,
            }
        };
        let ack = if code < 300 {
            dialog.request_with_cseq(&local, Method::Ack, cseq, &new_branch())
        } else {
            // ACK for a failure reuses the request's branch, which the response echoes.
            let mut ack = dialog.request_with_cseq(&local, Method::Ack, cseq, "");
            if let Some(via) = inc.msg.header("Via") {
                ack.set_header("Via", via);
            }
            ack
        };
        let _ = self.edge.transport.send(&dialog.flow, &ack).await;
        let sdp = String::from_utf8_lossy(&inc.msg.body).into_owned();
        if let (true, Some(endpoint)) = (code < 300 && !sdp.trim().is_empty(), endpoint)
            && let Err(e) = self.edge.media.update_endpoint(&endpoint, &sdp).await
        {
            tracing::warn!(error = %e, "answer to our re-INVITE refused by media");
        }
    }

    async fn cancel_b(&mut self) {
        if let Some(b) = self.b.as_mut() {
            b.retrans.stop();
            let cancel = cancel_for(&b.invite);
            let _ = self.edge.transport.send(&b.dialog.flow, &cancel).await;
        }
        // The far end answers 487; its ACK is sent when it arrives.
        let deadline = tokio::time::sleep(Duration::from_secs(4));
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                _ = &mut deadline => return,
                input = self.inbox.recv() => match input {
                    Some(CallInput::Sip(inc)) if self.is_b(&inc) => {
                        if let (Some(code), Some((_, Method::Invite))) = (inc.msg.status(), inc.msg.cseq()) {
                            if code >= 300 {
                                if let Some(b) = &self.b {
                                    let _ = self.edge.transport.send(&b.dialog.flow, &ack_for_failure(&b.invite, &inc.msg)).await;
                                }
                                return;
                            }
                            if (200..300).contains(&code) {
                                // Answered while we cancelled: hang up at once.
                                if let Some(b) = self.b.as_mut() {
                                    b.dialog.learn_from_response(&inc.msg);
                                    let cseq = b.invite.cseq().map(|c| c.0).unwrap_or(1);
                                    let ack = b.dialog.request_with_cseq(&self.edge.local, Method::Ack, cseq, &new_branch());
                                    let _ = self.edge.transport.send(&b.dialog.flow, &ack).await;
                                    b.answered_at = Some(Utc::now());
                                }
                                self.bye_b().await;
                                return;
                            }
                        }
                    }
                    Some(CallInput::Sip(inc)) => { let _ = self.pre_answer_input(Some(CallInput::Sip(inc))).await; }
                    Some(_) => {}
                    None => return,
                }
            }
        }
    }

    async fn bye_b(&mut self) {
        let local = self.edge.local.clone();
        if let Some(b) = self.b.as_mut()
            && b.answered_at.is_some()
            && b.ack.is_some()
        {
            let bye = b.dialog.request(&local, Method::Bye, &new_branch());
            retransmit::send(&self.edge.transport, &b.dialog.flow, bye).await.detach();
            b.ack = None;
        }
    }

    async fn bye_a(&mut self) {
        if self.a_ended || self.a_answered_at.is_none() {
            return;
        }
        self.a_ended = true;
        self.a_retrans = Retransmission::none();
        let local = self.edge.local.clone();
        let bye = self.a_dialog.request(&local, Method::Bye, &new_branch());
        let flow = self.a_dialog.flow.clone();
        retransmit::send(&self.edge.transport, &flow, bye).await.detach();
    }

    /// Final responses, media release, terminal events and records.
    async fn finish(&mut self, outcome: Outcome) {
        let now = Utc::now();
        match &outcome {
            Outcome::Completed { .. } => {}
            Outcome::Cancelled => {
                let resp = self.invite.response(487, Some(&self.a_tag));
                let inbox_absorb = retransmit::send(&self.edge.transport, &self.flow, resp).await;
                drop(inbox_absorb);
            }
            Outcome::Failed { code, reason, .. } => {
                if self.a_answered_at.is_some() {
                    self.bye_a().await;
                } else {
                    let mut resp = self.invite.response(*code, Some(&self.a_tag));
                    if *code == 503 {
                        resp.push_header("Retry-After", "5");
                    }
                    if let Some(r) = reason {
                        let r: String = r.chars().filter(|c| !c.is_control()).take(120).collect();
                        resp.push_header("Warning", format!("399 voxbridge \"{}\"", r.replace('"', "'")));
                    }
                    let _ = self.edge.transport.send(&self.flow, &resp).await;
                }
            }
        }
        for ep in [self.a_media.as_ref().map(|m| m.id.clone()), self.b.as_ref().map(|b| b.media.id.clone())]
            .into_iter()
            .flatten()
        {
            self.edge.unwatch_endpoint(&ep);
            let _ = self.edge.media.destroy_endpoint(&ep).await;
        }
        // Terminal events: B first (it is the leg that ended), then A.
        if let Some(b) = &self.b {
            let (status, detail, disconnected_by) = terminal(&outcome, b.answered_at.is_some());
            let b_uuid = b.uuid.clone();
            let answered = b.answered_at;
            self.event_leg(&b_uuid, Direction::Outbound, status, detail.clone(), answered, Some(now), disconnected_by);
            self.update_row_final(&b_uuid, status, detail, answered, now).await;
        }
        let (status, detail, disconnected_by) = terminal(&outcome, self.a_answered_at.is_some());
        let reason = match &outcome {
            Outcome::Failed { reason, .. } => reason.clone(),
            _ => None,
        };
        let uuid = self.uuid.clone();
        let answered = self.a_answered_at;
        if self.hooks.is_some() {
            let mut ev = self.event(&uuid, Direction::Inbound, status, &self.from, &self.to);
            ev.detail = detail.clone();
            ev.reason = reason;
            ev.disconnected_by = disconnected_by.map(str::to_owned);
            fill_times(&mut ev, answered, Some(now));
            self.send_event(ev);
        }
        self.update_row_final(&uuid, status, detail, answered, now).await;
        tracing::info!(?outcome, "call ended");
    }

    fn event(&self, uuid: &str, direction: Direction, status: CallStatus, from: &str, to: &str) -> CallEvent {
        CallEvent::new(uuid, self.conversation_uuid.clone(), status, direction, from, to, iso(Utc::now()))
    }

    fn send_event(&self, ev: CallEvent) {
        if let Some(hooks) = &self.hooks {
            match serde_json::to_value(&ev) {
                Ok(v) => self.edge.webhooks.send_event(hooks, &ev.uuid, v),
                Err(e) => tracing::error!(error = %e, "serialising event"),
            }
        }
    }

    fn event_a(&self, status: CallStatus, detail: Option<String>) {
        let mut ev = self.event(&self.uuid, Direction::Inbound, status, &self.from, &self.to);
        ev.detail = detail;
        if status == CallStatus::Answered {
            ev.start_time = Some(iso(Utc::now()));
        }
        self.send_event(ev);
    }

    fn event_b(&self, status: CallStatus, detail: Option<String>) {
        if let Some(b) = &self.b {
            let mut ev = self.event(&b.uuid, Direction::Outbound, status, &b.from, &b.to);
            ev.detail = detail;
            if status == CallStatus::Answered {
                ev.start_time = Some(iso(Utc::now()));
            }
            self.send_event(ev);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn event_leg(
        &self,
        uuid: &str,
        direction: Direction,
        status: CallStatus,
        detail: Option<String>,
        answered: Option<DateTime<Utc>>,
        ended: Option<DateTime<Utc>>,
        disconnected_by: Option<&'static str>,
    ) {
        let Some(b) = &self.b else { return };
        let mut ev = self.event(uuid, direction, status, &b.from, &b.to);
        ev.detail = detail;
        ev.disconnected_by = disconnected_by.map(str::to_owned);
        fill_times(&mut ev, answered, ended);
        self.send_event(ev);
    }

    async fn insert_row(&self, uuid: &str, direction: Direction, from: &str, to: &str) {
        let now = Utc::now();
        let row = call_row::Model {
            uuid: uuid.to_owned(),
            conversation_uuid: self.conversation_uuid.clone(),
            application_id: match &self.route {
                Route::Application { application_id, .. } => Some(application_id.clone()),
                Route::Forward { .. } => None,
            },
            direction: direction.as_str().into(),
            status: CallStatus::Started.as_str().into(),
            from_type: "sip".into(),
            from_number: from.to_owned(),
            to_type: "sip".into(),
            to_number: to.to_owned(),
            sip_call_id: if direction == Direction::Inbound {
                self.a_dialog.call_id.clone()
            } else {
                self.b.as_ref().map(|b| b.dialog.call_id.clone()).unwrap_or_default()
            },
            detail: None,
            start_time: None,
            end_time: None,
            duration: None,
            created_at: now,
            updated_at: now,
        };
        self.edge.records.insert(row);
    }

    async fn update_row_answered(&self, b_leg: bool) {
        let uuid = if b_leg { self.b.as_ref().map(|b| b.uuid.clone()) } else { Some(self.uuid.clone()) };
        let Some(uuid) = uuid else { return };
        self.edge.records.answered(&uuid, Utc::now());
    }

    async fn update_row_final(
        &self,
        uuid: &str,
        status: CallStatus,
        detail: Option<String>,
        answered: Option<DateTime<Utc>>,
        ended: DateTime<Utc>,
    ) {
        self.edge.records.finished(uuid, status.as_str(), detail, answered, ended);
    }
}

fn failed(status: CallStatus, detail: &str, code: u16, reason: &str) -> Outcome {
    Outcome::Failed { status, detail: Some(detail.to_owned()), code, reason: Some(reason.to_owned()) }
}

fn unsupported(what: &str) -> Outcome {
    failed(CallStatus::Failed, "unsupported_action", 480, &format!("{what} is not supported yet"))
}

/// The terminal status of a leg.
fn terminal(outcome: &Outcome, answered: bool) -> (CallStatus, Option<String>, Option<&'static str>) {
    match outcome {
        Outcome::Completed { by } => (CallStatus::Completed, None, Some(*by)),
        _ if answered => (CallStatus::Completed, None, Some("platform")),
        Outcome::Cancelled => (CallStatus::Cancelled, None, None),
        Outcome::Failed { status, detail, .. } => (*status, detail.clone(), None),
    }
}

fn fill_times(ev: &mut CallEvent, answered: Option<DateTime<Utc>>, ended: Option<DateTime<Utc>>) {
    if let Some(a) = answered {
        ev.start_time = Some(iso(a));
        if let Some(e) = ended {
            ev.end_time = Some(iso(e));
            ev.duration = Some((e - a).num_seconds().max(0).to_string());
        }
    }
}

fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn describe_problems(problems: &[domains::problem::InvalidParameter]) -> String {
    problems.iter().map(|p| format!("{}: {}", p.name, p.reason)).collect::<Vec<_>>().join("; ")
}

/// The codec of the first payload type of an SDP's audio line (static types only).
fn first_codec(sdp: &str) -> Option<String> {
    let m = sdp.lines().find_map(|l| l.trim().strip_prefix("m=audio "))?;
    match m.split_whitespace().nth(2)? {
        "0" => Some("PCMU".into()),
        "8" => Some("PCMA".into()),
        _ => None,
    }
}

fn sdp_direction(sdp: &str) -> &'static str {
    for line in sdp.lines() {
        match line.trim() {
            "a=sendonly" => return "sendonly",
            "a=recvonly" => return "recvonly",
            "a=inactive" => return "inactive",
            "a=sendrecv" => return "sendrecv",
            _ => {}
        }
    }
    "sendrecv"
}

/// Our SDP for a leg with another direction attribute and the next o= version.
fn with_direction(sdp: &str, direction: &str) -> String {
    let mut out = String::new();
    let mut placed = false;
    for line in sdp.lines() {
        let t = line.trim_end();
        if matches!(t, "a=sendonly" | "a=recvonly" | "a=inactive" | "a=sendrecv") {
            if !placed {
                out.push_str(&format!("a={direction}\r\n"));
                placed = true;
            }
            continue;
        }
        if let Some(rest) = t.strip_prefix("o=") {
            let mut parts: Vec<String> = rest.split(' ').map(str::to_owned).collect();
            if let Some(v) = parts.get_mut(2).and_then(|v| v.parse::<u64>().ok().map(|n| (n, v))) {
                *v.1 = (v.0 + 1).to_string();
            }
            out.push_str(&format!("o={}\r\n", parts.join(" ")));
            continue;
        }
        out.push_str(t);
        out.push_str("\r\n");
    }
    if !placed {
        out.push_str(&format!("a={direction}\r\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direction_rewrite() {
        let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 10000 RTP/AVP 0\r\na=sendrecv\r\n";
        let held = with_direction(sdp, "sendonly");
        assert!(held.contains("a=sendonly\r\n") && !held.contains("sendrecv"));
        assert!(held.contains("o=- 1 2 IN IP4"));
        assert_eq!(sdp_direction(&held), "sendonly");
    }

    #[test]
    fn terminal_statuses() {
        let f = failed(CallStatus::Busy, "x", 486, "busy");
        assert_eq!(terminal(&f, false).0, CallStatus::Busy);
        assert_eq!(terminal(&f, true).0, CallStatus::Completed);
        assert_eq!(terminal(&Outcome::Cancelled, false).0, CallStatus::Cancelled);
    }
}
