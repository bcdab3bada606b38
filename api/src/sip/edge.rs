//! The dispatcher: every message from the transports comes here. Messages of a known call go to
//! its task; `OPTIONS` is answered; a new INVITE is admitted (domain, region, ACL, digest) before
//! anything is allocated, then handed to a new call task; anything else out of dialog gets the
//! status RFC 3261 prescribes.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use domains::digest::{self, Credentials, DigestAlgorithm, DigestError, NonceCounts, NonceIssuer};
use domains::sip::admission::{AdmissionError, Admitted, FirstCheck, first_check};
use domains::sip::checks::{self, ACCEPT};
use domains::sip::{Method, SipMessage};
use sha2::Digest as _;
use tokio::sync::mpsc;

use domains::call::{Call, CallContext, Key, Route};
use domains::sip::dialog::Local;
use domains::srtp::SrtpPolicy;

use super::limits::{EdgeLimits, Refused};
use super::transport::{Incoming, Transport};
use crate::calls::driver::{self, Io};
use crate::calls::{CallInput, CallRegistry};
use crate::config::{Config, LimitAction};
use crate::media::{MediaControl, MediaEvent};
use crate::store::entity::number;
use crate::webhooks::{AppHooks, WebhookSender};
use domains::application::Dialect;
use domains::call::txn::{FailureAnswered, FailureInput};

pub use domains::sip::checks::ALLOW;

/// Nonces are valid this long; a client answering later gets `stale=true`.
const NONCE_LIFETIME_SECS: u64 = 300;

mod health;
mod register;

pub use health::ProbeHealth;

pub struct Edge {
    pub transport: Arc<Transport>,
    pub local: Local,
    pub config: Arc<Config>,
    pub media: Arc<dyn MediaControl>,
    pub webhooks: Arc<dyn WebhookSender>,
    /// Call records, written behind the calls.
    pub records: crate::store::records::CallRecords,
    /// Domains, users, numbers and applications, read through a cache.
    pub provisioning: Arc<crate::store::cache::ProvisioningCache>,
    /// Which call owns a Call-ID or a media endpoint.
    pub registry: Arc<CallRegistry>,
    resolver: Arc<super::resolve::SipResolver>,
    nonces: NonceIssuer,
    nonce_counts: Mutex<NonceCounts>,
    limits: EdgeLimits,
    /// Stands in for a missing user's HA1, so that an unknown user costs the same work as a
    /// wrong password (the two must not be told apart, by answer or by timing).
    decoy_ha1: [String; 2],
    /// The account's API key and its digest HA1s on the trunk host (PBXs authenticate with them).
    api_key: String,
    trunk_digest: Option<crate::account::TrunkDigest>,
    /// What the OPTIONS probes say of the trunks' gateways.
    pub health: ProbeHealth,
    /// The runtime calls run on, whoever starts them (an HTTP worker places REST calls).
    runtime: tokio::runtime::Handle,
    outbound: crate::calls::outbound::OutboundBudget,
}

/// Why the Voice API could not place a call.
#[derive(Debug, thiserror::Error)]
pub enum OriginateError {
    #[error(transparent)]
    Budget(#[from] crate::calls::outbound::BudgetExceeded),
    /// The application cannot take calls (gone, or no voice capability).
    #[error("{0}")]
    Application(&'static str),
    /// The endpoint cannot be rung: no trunk for the number, a caller ID not owned, …
    #[error("{}", .0.reason.clone().unwrap_or_else(|| "the call cannot be placed".into()))]
    Refused(domains::call::LegFailure),
    #[error("{0}")]
    Internal(String),
}

/// A call the Voice API placed.
#[derive(Debug, Clone)]
pub struct Placed {
    pub uuid: String,
    pub conversation_uuid: String,
}

impl Edge {
    pub async fn start(
        config: Arc<Config>,
        media: Arc<dyn MediaControl>,
        webhooks: Arc<dyn WebhookSender>,
        records: crate::store::records::CallRecords,
        provisioning: Arc<crate::store::cache::ProvisioningCache>,
        account: &crate::account::Account,
    ) -> std::io::Result<Arc<Edge>> {
        let signature_secret = &account.signature_secret;
        let (transport, incoming) = Transport::bind(config.sip_addr, &config.sip_user_agent).await?;
        let bound = transport.local_addr();
        let host = config
            .sip_public_host
            .clone()
            .unwrap_or_else(|| if bound.ip().is_unspecified() { "127.0.0.1".into() } else { bound.ip().to_string() });
        // Nonces must verify on every api node sharing the account, so the key derives from
        // the account's signature secret.
        let key: [u8; 32] = sha2::Sha256::digest(format!("voxbridge digest nonces {signature_secret}")).into();
        let resolver = Arc::new(super::resolve::SipResolver::new(config.dns_server).map_err(std::io::Error::other)?);
        let outbound = crate::calls::outbound::OutboundBudget::new(config.outbound);
        let edge = Arc::new(Edge {
            transport,
            local: Local { host, port: bound.port(), user_agent: config.sip_user_agent.clone() },
            limits: EdgeLimits::new(config.sip_limits.clone()),
            decoy_ha1: [
                digest::ha1(DigestAlgorithm::Md5, "decoy", "decoy", &random_token(24)),
                digest::ha1(DigestAlgorithm::Sha256, "decoy", "decoy", &random_token(24)),
            ],
            config,
            media,
            webhooks,
            records,
            provisioning,
            registry: Arc::new(CallRegistry::default()),
            resolver,
            nonces: NonceIssuer::new(key, NONCE_LIFETIME_SECS),
            nonce_counts: Mutex::new(NonceCounts::new()),
            runtime: tokio::runtime::Handle::current(),
            outbound,
            api_key: account.api_key.clone(),
            trunk_digest: account.trunk.clone(),
            health: ProbeHealth::default(),
        });
        if !edge.config.trunk_qualify.is_zero() {
            tokio::spawn(edge.clone().qualify(edge.config.trunk_qualify));
        }
        tokio::spawn(edge.clone().dispatch(incoming));
        tokio::spawn(edge.clone().forward_media_events());
        let housekeeping = Arc::downgrade(&edge);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
            loop {
                tick.tick().await;
                match housekeeping.upgrade() {
                    Some(edge) => edge.limits.housekeeping(),
                    None => return,
                }
            }
        });
        Ok(edge)
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.transport.local_addr()
    }

    /// Starts SIP over TLS with the server certificate in use; returns the bound address.
    pub async fn listen_tls(&self) -> anyhow::Result<SocketAddr> {
        let (tls, _) = crate::tls::server_config(&self.config)?;
        self.transport.set_tls_client(crate::tls::client_config(self.config.sip_tls_ca.as_deref())?);
        Ok(self.transport.listen_tls(self.config.sip_tls_addr, tls).await?)
    }

    pub fn active_calls(&self) -> usize {
        self.registry.call_ids()
    }

    async fn forward_media_events(self: Arc<Self>) {
        let mut events = self.media.events();
        loop {
            match events.recv().await {
                Ok(event) => {
                    // An endpoint's event goes to its call; a process-wide one to every call.
                    let senders: Vec<_> = match &event {
                        MediaEvent::Call(e) => match e.endpoint() {
                            Some(id) => self.registry.get(&Key::Endpoint(id.to_owned())).into_iter().collect(),
                            None => self.registry.all(),
                        },
                        _ => self.registry.all(),
                    };
                    for tx in senders {
                        let _ = tx.send(CallInput::Media(event.clone()));
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "media events lagged")
                }
                Err(_) => return,
            }
        }
    }

    /// Routes each message; everything that may block (database, network) runs in a task of
    /// its own. Routing itself is synchronous and isolated: should a bug make it panic, that
    /// message is lost and the dispatcher goes on with the next.
    async fn dispatch(self: Arc<Self>, mut incoming: mpsc::UnboundedReceiver<Incoming>) {
        while let Some(inc) = incoming.recv().await {
            let routed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.route(inc)));
            if routed.is_err() {
                metrics::counter!("voxbridge_sip_dispatch_panics_total").increment(1);
                tracing::error!("SIP dispatch panicked; message dropped");
            }
        }
    }

    fn route(self: &Arc<Self>, inc: Incoming) {
        if let Some(tx) = self.registry.by_call_id(inc.msg.call_id()) {
            // A call that just ended drops late retransmissions; nothing else to do.
            let _ = tx.send(CallInput::Sip(inc));
            return;
        }
        if self.health.take_response(&inc.msg) {
            return;
        }
        let Some(method) = inc.msg.method() else {
            tracing::debug!(call_id = inc.msg.call_id(), "stray response dropped");
            return;
        };
        if *method == Method::Ack {
            return; // an ACK for nothing of ours: never answered
        }
        if matches!(method, Method::Invite | Method::Register | Method::Options)
            && let Err(refused) = self.limits.admit_request(inc.flow.peer().ip())
        {
            self.refuse(inc, refused);
            return;
        }
        let edge = self.clone();
        if let Err(refusal) = checks::check_request(&inc.msg) {
            tokio::spawn(async move {
                let method = inc.msg.method().map(Method::as_str).unwrap_or_default().to_owned();
                tracing::info!(peer = %inc.flow.peer(), %method, status = refusal.code, "request refused");
                metrics::counter!("voxbridge_sip_requests_refused_total", "reason" => format!("status_{}", refusal.code))
                    .increment(1);
                edge.reply(&inc, refusal.code, &refusal.headers).await;
            });
            return;
        }
        // Admission reads the database; do it off the dispatch loop.
        match inc.msg.method() {
            Some(Method::Invite) if !has_to_tag(&inc.msg) => edge.start_invite(inc),
            Some(Method::Register) => {
                tokio::spawn(async move { edge.register(inc).await });
            }
            _ => {
                tokio::spawn(async move { edge.out_of_dialog(inc).await });
            }
        }
    }

    /// A request over a limit: `503` with `Retry-After`, `403`, or silence, as configured.
    fn refuse(self: &Arc<Self>, inc: Incoming, refused: Refused) {
        metrics::counter!("voxbridge_sip_requests_refused_total", "reason" => refused.reason).increment(1);
        tracing::debug!(peer = %inc.flow.peer(), reason = refused.reason, "request refused by a limit");
        if refused.action == LimitAction::Drop {
            return;
        }
        let edge = self.clone();
        tokio::spawn(async move {
            edge.reply(&inc, 503, &[("Retry-After", refused.retry_after_secs.to_string())]).await;
        });
    }

    /// A new INVITE transaction: registered before admission so that retransmissions reach it.
    pub fn start_invite(self: Arc<Self>, inc: Incoming) {
        let (tx, rx) = mpsc::unbounded_channel();
        self.registry.insert(Key::CallId(inc.msg.call_id().to_owned()), tx.clone());
        tokio::spawn(async move { self.new_invite(inc, rx, tx).await });
    }

    pub async fn reply(&self, inc: &Incoming, code: u16, extra: &[(&str, String)]) {
        let mut resp = inc.msg.response(code, Some(&random_token(10)));
        for (n, v) in extra {
            resp.push_header(n, v.clone());
        }
        if let Err(e) = self.transport.send(&inc.flow, &resp).await {
            tracing::warn!(peer = %inc.flow.peer(), error = %e, "sending response");
        }
    }

    async fn out_of_dialog(&self, inc: Incoming) {
        match inc.msg.method() {
            Some(Method::Options) => {
                let supported = checks::SUPPORTED.join(", ");
                let extra = [("Allow", ALLOW.to_owned()), ("Accept", ACCEPT.to_owned()), ("Supported", supported)];
                self.reply(&inc, 200, &extra).await;
            }
            Some(Method::Bye | Method::Cancel | Method::Invite) => self.reply(&inc, 481, &[]).await,
            // checks::check_request refused every other method already.
            Some(_) => self.reply(&inc, 405, &[("Allow", ALLOW.to_owned())]).await,
            None => {}
        }
    }

    async fn new_invite(
        self: Arc<Self>,
        inc: Incoming,
        inbox: mpsc::UnboundedReceiver<CallInput>,
        self_tx: mpsc::UnboundedSender<CallInput>,
    ) {
        let call_id = inc.msg.call_id().to_owned();
        // 100 Trying at once stops the caller's INVITE retransmissions (Timer A) while we work.
        let _ = self.transport.send(&inc.flow, &inc.msg.response(100, None)).await;
        match self.admit(&inc).await {
            Ok((route, hooks, caller_srtp)) => {
                let io = self.io();
                let dialling = match self.dialling().await {
                    Ok(d) => d,
                    Err(e) => {
                        tracing::error!(%call_id, error = %e, "loading trunks");
                        self.reject(inc, 500, &[], inbox).await;
                        self.registry.remove_if(&Key::CallId(call_id), &self_tx);
                        return;
                    }
                };
                let ctx = CallContext { caller_srtp, ..self.context(route, dialling) };
                let call = Call::inbound(ctx, inc.flow, inc.msg, inc.received, driver::now());
                driver::drive(call, hooks, inbox, self_tx.clone(), io).await;
            }
            Err(Refusal::Challenge { realm, stale, proxy }) => {
                let (code, extra) = self.challenge(&realm, stale, proxy);
                self.reject(inc, code, &extra, inbox).await;
            }
            Err(Refusal::Limited(refused)) => {
                tracing::info!(%call_id, peer = %inc.flow.peer(), reason = refused.reason, "INVITE refused by a limit");
                metrics::counter!("voxbridge_sip_requests_refused_total", "reason" => refused.reason).increment(1);
                match refused.action {
                    // Silence: stay only to swallow the retransmissions.
                    LimitAction::Drop => swallow(inbox).await,
                    LimitAction::Reject => self.reject(inc, 403, &[], inbox).await,
                }
            }
            Err(Refusal::Error(e)) => {
                tracing::info!(%call_id, peer = %inc.flow.peer(), reason = %e, status = e.status(), "INVITE refused");
                metrics::counter!("voxbridge_sip_invites_refused_total", "status" => e.status().to_string())
                    .increment(1);
                // A PBX is told why in the reason phrase (its logs show nothing else).
                let reason = matches!(e, AdmissionError::Pbx(_)).then(|| e.to_string());
                self.reject_with(inc, e.status(), reason, &[], inbox).await;
            }
            Err(Refusal::Unavailable(reason)) => {
                tracing::info!(%call_id, %reason, "INVITE admitted but not routable");
                self.reject(inc, 480, &[("Warning", format!("399 voxbridge \"{reason}\""))], inbox).await;
            }
            Err(Refusal::Internal(e)) => {
                tracing::error!(%call_id, error = %e, "admission failed");
                self.reject(inc, 500, &[], inbox).await;
            }
        }
        self.registry.remove_if(&Key::CallId(call_id), &self_tx);
    }

    /// The trunks, numbers and registrations calls dial with, without the gateways and
    /// registered contacts the probes found down (unless all of a trunk's, or of an address of
    /// record's, are).
    async fn dialling(&self) -> Result<Arc<domains::call::Dialling>, sea_orm::DbErr> {
        let dialling = self.provisioning.dialling().await?;
        if !self.health.any_down() {
            return Ok(dialling);
        }
        let mut filtered = (*dialling).clone();
        for t in &mut filtered.trunks {
            t.gateways = domains::trunk_health::usable(&t.gateways, |g| self.health.is_down(g));
        }
        filtered.registered = self.health.usable_contacts(&dialling.registered);
        Ok(Arc::new(filtered))
    }

    fn context(&self, route: Route, dialling: Arc<domains::call::Dialling>) -> CallContext {
        CallContext {
            seed: rand::random(),
            local: self.local.clone(),
            route,
            region_url: self.config.public_url.clone().unwrap_or_else(|| format!("http://{}", self.config.http_addr)),
            dialling,
            caller_srtp: SrtpPolicy::Optional,
        }
    }

    /// Places a call for the Voice API (`POST /v1/calls`, or the Twilio-compatible API),
    /// within the outbound budget.
    /// `answer`/`event` replace the application's webhooks for this call when given. Returns
    /// once the call is recorded and steerable; it runs on the edge's runtime.
    pub async fn originate(
        self: &Arc<Self>,
        application_id: &str,
        originate: domains::call::Originate,
        overrides: HookOverrides,
    ) -> Result<Placed, OriginateError> {
        let HookOverrides { answer, event, twiml } = overrides;
        let slot = self.outbound.acquire(application_id)?;
        let mut hooks = self.hooks(application_id).await.map_err(|r| match r {
            Refusal::Unavailable(why) => OriginateError::Application(why),
            Refusal::Internal(e) => OriginateError::Internal(e),
            _ => OriginateError::Internal("unexpected refusal".into()),
        })?;
        if let Some(answer) = answer {
            hooks.answer = answer;
            // The request's answer_url is the call's: the application's fallback is not asked.
            hooks.fallback_answer = None;
        }
        if let Some(event) = event {
            hooks.event = event;
        }
        if let Some(status_events) = twiml {
            hooks.dialect = Dialect::Twiml;
            hooks.status_events = Some(status_events);
        }
        let dialling = self.dialling().await.map_err(|e| OriginateError::Internal(e.to_string()))?;
        let region = self.config.regions.first().cloned().unwrap_or_default();
        let route = Route::Application {
            application_id: application_id.to_owned(),
            region,
            dialect: hooks.dialect,
            sip_transport: hooks.sip_transport,
        };
        let call = Call::originated(self.context(route, dialling), originate, driver::now())
            .map_err(OriginateError::Refused)?;
        let placed = Placed { uuid: call.uuid().to_owned(), conversation_uuid: call.conversation_uuid().to_owned() };
        tracing::info!(call_uuid = %placed.uuid, application_id, "call placed over the Voice API");
        driver::launch(call, Some(hooks), self.io(), &self.runtime, slot).await;
        Ok(placed)
    }

    fn io(self: &Arc<Self>) -> Io {
        let edge = Arc::downgrade(self);
        Io {
            transport: self.transport.clone(),
            media: self.media.clone(),
            webhooks: self.webhooks.clone(),
            records: self.records.clone(),
            registry: self.registry.clone(),
            resolver: self.resolver.clone(),
            readmit: Arc::new(move |inc| {
                if let Some(edge) = edge.upgrade() {
                    edge.start_invite(inc);
                }
            }),
        }
    }

    /// Answers an INVITE with a final failure and stays for its ACK (Timers G, H and I, the
    /// same transaction the call core runs), resending the response when the INVITE is
    /// retransmitted. A follow-up INVITE with a new CSeq (say, with credentials) is admitted anew.
    async fn reject(
        self: &Arc<Self>,
        inc: Incoming,
        code: u16,
        extra: &[(&str, String)],
        inbox: mpsc::UnboundedReceiver<CallInput>,
    ) {
        self.reject_with(inc, code, None, extra, inbox).await;
    }

    /// [`Edge::reject`] with its own reason phrase.
    async fn reject_with(
        self: &Arc<Self>,
        inc: Incoming,
        code: u16,
        reason: Option<String>,
        extra: &[(&str, String)],
        mut inbox: mpsc::UnboundedReceiver<CallInput>,
    ) {
        let mut resp = inc.msg.response(code, Some(&random_token(10)));
        if let Some(reason) = reason {
            let reason: String = reason.chars().filter(|c| !c.is_control()).take(120).collect();
            resp.start = domains::sip::message::StartLine::Response { code, reason };
        }
        for (n, v) in extra {
            resp.push_header(n, v.clone());
        }
        let _ = self.transport.send(&inc.flow, &resp).await;
        let mut tx = FailureAnswered::new(&inc.msg, resp, inc.flow.clone(), std::time::Instant::now());
        while let Some(at) = tx.poll_timeout() {
            tokio::select! {
                () = tokio::time::sleep_until(at.into()) => {
                    if let Some(resp) = tx.handle_timeout(std::time::Instant::now()).cloned() {
                        let _ = self.transport.send(tx.flow(), &resp).await;
                    }
                }
                input = inbox.recv() => match input {
                    None => return,
                    Some(CallInput::Sip(m)) => match tx.handle(&m.msg, std::time::Instant::now()) {
                        FailureInput::Resend(resp) => { let _ = self.transport.send(&m.flow, &resp).await; }
                        FailureInput::Absorbed => {
                            if m.msg.method() == Some(&Method::Cancel) {
                                self.reply(&m, 200, &[]).await;
                            }
                        }
                        FailureInput::NewTransaction => {
                            self.clone().start_invite(m);
                            return;
                        }
                        FailureInput::NoTransaction => self.reply(&m, 481, &[]).await,
                    },
                    Some(CallInput::Media(_) | CallInput::Control(..)) => {}
                }
            }
        }
    }

    /// Security first: nothing is allocated, fetched or written before this succeeds. Gives
    /// the route, the application's webhooks and the caller's SRTP policy (its domain's).
    async fn admit(&self, inc: &Incoming) -> Result<(Route, Option<AppHooks>, SrtpPolicy), Refusal> {
        let (parsed, region, entry) = match self.addressed(inc).await? {
            Addressed::Domain { uri, region, entry } => (uri, region, entry),
            Addressed::TrunkHost { uri, region } => {
                // A PBX on the trunk host proves the account's key and secret, as to a proxy.
                let realm = self.config.addressing().trunk_realm().to_owned();
                let admitted = self.authenticate(inc, &realm, true).await?;
                tracing::info!(call_id = inc.msg.call_id(), %region, ?admitted, "PBX INVITE admitted on the trunk host");
                let (route, hooks) = self.pbx_route(inc, &parsed_user(&uri), region).await?;
                return Ok((route, hooks, SrtpPolicy::Optional));
            }
        };
        let srtp = domains::psip::Policy::from_db(&entry.domain.srtp);
        let (domain, acl, users) = (&entry.domain, &entry.acl, entry.digest_users);
        let source = inc.flow.peer().ip();
        let admitted = match first_check(acl, users > 0, source) {
            FirstCheck::Admit(a) => a,
            FirstCheck::Reject => return Err(Refusal::Error(AdmissionError::SourceNotInAcl(source))),
            FirstCheck::NeedDigest => self.authenticate(inc, &domain.name, false).await?,
        };
        tracing::info!(call_id = inc.msg.call_id(), domain = %domain.name, %region, ?admitted, "INVITE admitted");
        if domains::psip::DomainType::from_db(&domain.domain_type) == domains::psip::DomainType::Trunk {
            // A trunk domain's ACL or users identify a PBX: its calls go where a PBX's go.
            let (route, hooks) = self.pbx_route(inc, &parsed_user(&parsed), region).await?;
            return Ok((route, hooks, srtp));
        }
        let user = parsed_user(&parsed);
        let domains_app = Route::Application {
            application_id: domain.application_id.clone(),
            region,
            dialect: Dialect::default(),
            sip_transport: Default::default(),
        };
        let (route, hooks) = self.number_route(&user, Some(domains_app)).await?;
        Ok((route, hooks, srtp))
    }

    /// The route of a call to `user` when it is one of the account's numbers (its forwarding
    /// or its own application), else `otherwise` (none: nothing takes the call, 480); with the
    /// application's webhooks.
    async fn number_route(&self, user: &str, otherwise: Option<Route>) -> Result<(Route, Option<AppHooks>), Refusal> {
        let number = match domains::e164::E164::parse(user) {
            Ok(n) => self.provisioning.number(&n.to_string()).await.map_err(Refusal::internal)?,
            Err(_) => None,
        };
        let region = match &otherwise {
            Some(Route::Application { region, .. }) => region.clone(),
            _ => self.config.regions.first().cloned().unwrap_or_default(),
        };
        let route = match number {
            Some(n) if n.voice_callback_type.as_deref() == Some("sip") => {
                let targets = domains::forward::parse_targets(n.voice_callback_value.as_deref().unwrap_or_default())
                    .map_err(|e| Refusal::Internal(format!("stored forwarding of {} invalid: {e}", n.number)))?;
                let targets = self.registered_contacts(targets).await?;
                return Ok((Route::Forward { targets }, None));
            }
            Some(number::Model { application_id: Some(app), .. }) => Route::Application {
                application_id: app,
                region,
                dialect: Dialect::default(),
                sip_transport: Default::default(),
            },
            _ => otherwise.ok_or(Refusal::Unavailable("the number has no application or forwarding"))?,
        };
        let mut route = route;
        let Route::Application { application_id, dialect, sip_transport, .. } = &mut route else {
            return Ok((route, None));
        };
        let hooks = self.hooks(application_id).await?;
        *dialect = hooks.dialect;
        *sip_transport = hooks.sip_transport;
        Ok((route, Some(hooks)))
    }

    /// Forwarding targets that name one of our addresses of record (`KEY@BASE` for a PBX on
    /// the trunk host, `USER@NAME.sip-REGION.BASE` for a domain user) ring its registered
    /// contacts over their flows; an AOR with none refuses the call (480).
    async fn registered_contacts(
        &self,
        targets: Vec<domains::forward::ForwardTarget>,
    ) -> Result<Vec<domains::forward::ForwardTarget>, Refusal> {
        let dialling = self.dialling().await.map_err(Refusal::internal)?;
        let addressing = self.config.addressing();
        let bindings = |uri: &domains::sip_uri::SipUri| {
            let realm = match addressing.trunk_region(&uri.host) {
                Some(_) => addressing.trunk_realm().to_owned(),
                None => addressing.parse_host(&uri.host).ok()?.0,
            };
            let user = uri.user.as_deref()?;
            Some(
                dialling
                    .registered
                    .iter()
                    .filter(|r| r.domain == realm && r.user == user)
                    .map(|r| (r.contact.clone(), r.flow.clone()))
                    .collect(),
            )
        };
        domains::forward::to_registered_contacts(targets, bindings).map_err(|reason| {
            tracing::info!(%reason, "forwarding to an address of record nobody registered");
            Refusal::Unavailable("the forwarding's address of record is not registered")
        })
    }

    /// Where an authenticated PBX's call goes (`domains::sip::pbx`): on-net to one of the
    /// account's numbers, or out through the longest-prefix trunk as a `connect` to the
    /// number with the PBX's caller ID.
    async fn pbx_route(
        &self,
        inc: &Incoming,
        to_user: &str,
        region: String,
    ) -> Result<(Route, Option<AppHooks>), Refusal> {
        let from_user = inc
            .msg
            .header("From")
            .and_then(|f| domains::sip::headers::NameAddr::parse(f).ok())
            .and_then(|n| domains::sip_uri::SipUri::parse(&n.uri).ok())
            .and_then(|u| u.user)
            .unwrap_or_default();
        let dialling = self.provisioning.dialling().await.map_err(Refusal::internal)?;
        let destination = domains::sip::pbx::route(&from_user, to_user, &dialling.numbers, &dialling.trunks)
            .map_err(|e| Refusal::Error(AdmissionError::Pbx(e)))?;
        match destination {
            domains::sip::pbx::PbxDestination::OnNet(number) => self.number_route(number.as_str(), None).await,
            domains::sip::pbx::PbxDestination::Pstn { number, trunk, caller_id } => {
                tracing::info!(call_id = inc.msg.call_id(), %number, %trunk, %caller_id, %region, "PBX call to the PSTN");
                let connect = serde_json::json!([{"action": "connect", "from": caller_id,
                    "endpoint": [{"type": "phone", "number": number.as_str()}]}]);
                let ncco = domains::ncco::Ncco::parse(&connect)
                    .map_err(|p| Refusal::Internal(format!("the PSTN connect did not parse: {p:?}")))?;
                // The default application is told, not asked: a PBX call never waits on it.
                let hooks = match &dialling.default_application_id {
                    Some(app) => match self.hooks(app).await {
                        Ok(hooks) => Some(hooks),
                        Err(_) => {
                            tracing::warn!(%app, "the default application is gone or has no voice: no events");
                            None
                        }
                    },
                    None => None,
                };
                let application_id = hooks.as_ref().map(|h| h.application_id.clone());
                Ok((Route::Program { ncco, application_id }, hooks))
            }
        }
    }

    /// The application's webhooks; an application that is gone or has no voice capability
    /// refuses the call (480), as answer_url failures do.
    async fn hooks(&self, application_id: &str) -> Result<AppHooks, Refusal> {
        let app = self
            .provisioning
            .application(application_id)
            .await
            .map_err(Refusal::internal)?
            .ok_or(Refusal::Unavailable("application no longer exists"))?;
        let caps: domains::application::Capabilities = serde_json::from_value(app.capabilities).unwrap_or_default();
        let voice = caps.voice.ok_or(Refusal::Unavailable("application has no voice capability"))?;
        let sip_transport = voice.document_sip_transport();
        Ok(AppHooks {
            application_id: application_id.to_owned(),
            answer: voice.webhooks.answer_url,
            fallback_answer: voice.webhooks.fallback_answer_url,
            event: voice.webhooks.event_url,
            signed: voice.signed_callbacks.unwrap_or(true),
            dialect: voice.dialect.unwrap_or_default(),
            sip_transport,
            status_events: voice.status_callback_event,
            parent_call: None,
        })
    }

    /// What the Request-URI addresses: the trunk host (with its region), or a Programmable SIP
    /// domain and its region (`404` when the host is not one of ours or names no domain).
    async fn addressed(&self, inc: &Incoming) -> Result<Addressed, Refusal> {
        let uri = inc.msg.request_uri().unwrap_or_default();
        let parsed = domains::sip_uri::SipUri::parse(uri)
            .map_err(|_| Refusal::Error(AdmissionError::Host(domains::psip::HostError::NotOurDomain)))?;
        let addressing = self.config.addressing();
        if let Some(region) = addressing.trunk_region(&parsed.host) {
            return Ok(Addressed::TrunkHost { uri: parsed, region });
        }
        let (name, region) =
            addressing.parse_host(&parsed.host).map_err(|e| Refusal::Error(AdmissionError::Host(e)))?;
        let entry = self
            .provisioning
            .domain(&name)
            .await
            .map_err(Refusal::internal)?
            .ok_or_else(|| Refusal::Error(AdmissionError::UnknownDomain(name.clone())))?;
        Ok(Addressed::Domain { uri: parsed, region, entry: Box::new(entry) })
    }

    /// A digest challenge: `401` with `WWW-Authenticate` as a registrar or UAS sends it, or
    /// `407` with `Proxy-Authenticate` as the trunk host does (PBXs expect a proxy there).
    fn challenge(&self, realm: &str, stale: bool, proxy: bool) -> (u16, Vec<(&'static str, String)>) {
        let nonce = self.nonces.issue(now_unix(), rand::random());
        let (code, header) = if proxy { (407, "Proxy-Authenticate") } else { (401, "WWW-Authenticate") };
        let headers = digest::challenge_headers_with_stale(realm, &nonce, stale, &self.config.sip_digest_algorithms)
            .into_iter()
            .map(|h| (header, h));
        (code, headers.collect())
    }

    /// Digest authentication of a request to `realm` (a domain), within the brute-force
    /// budgets: a locked-out source or user is refused before anything is verified.
    /// `proxy`: the credentials are in `Proxy-Authorization` (the challenge is a 407).
    async fn authenticate(&self, inc: &Incoming, realm: &str, proxy: bool) -> Result<Admitted, Refusal> {
        let source = inc.flow.peer().ip();
        // Parsed once: the lockout check needs the claimed user before anything is verified.
        let header = if proxy { "Proxy-Authorization" } else { "Authorization" };
        let creds = inc.msg.header(header).map(Credentials::parse);
        let user_key = match &creds {
            Some(Ok(c)) => Some(lockout_key(realm, &c.username)),
            _ => None,
        };
        self.limits.auth_allowed(source, user_key.as_deref()).map_err(Refusal::Limited)?;
        let checked = self.check_digest(inc, creds, realm, proxy).await;
        match &checked {
            Ok(Admitted::Digest { user }) => self.limits.auth_succeeded(source, &lockout_key(realm, user)),
            Err(Refusal::Error(AdmissionError::Digest(_) | AdmissionError::UnknownUser(_))) => {
                self.limits.auth_failed(source, user_key.as_deref().unwrap_or_default())
            }
            _ => {}
        }
        checked
    }

    /// `creds`: the request's `Authorization`, parsed (`None` when it has none).
    async fn check_digest(
        &self,
        inc: &Incoming,
        creds: Option<Result<Credentials, DigestError>>,
        realm: &str,
        proxy: bool,
    ) -> Result<Admitted, Refusal> {
        let Some(creds) = creds else {
            return Err(Refusal::Challenge { realm: realm.to_owned(), stale: false, proxy });
        };
        let digest_err = |e: DigestError| Refusal::Error(AdmissionError::Digest(e));
        let creds = creds.map_err(digest_err)?;
        creds.expect_realm(realm).map_err(digest_err)?;
        let user = self.ha1s(realm, &creds.username).await.map_err(Refusal::internal)?;
        let known = user.is_some();
        let ha1 = match (user, creds.algorithm) {
            (Some((md5, _)), DigestAlgorithm::Md5) => md5,
            (Some((_, sha256)), DigestAlgorithm::Sha256) => sha256,
            (None, DigestAlgorithm::Md5) => self.decoy_ha1[0].clone(),
            (None, DigestAlgorithm::Sha256) => self.decoy_ha1[1].clone(),
        };
        let now = now_unix();
        let result = match self.nonce_counts.lock() {
            Ok(mut counts) => {
                counts.prune(now.saturating_sub(NONCE_LIFETIME_SECS));
                digest::verify(
                    &creds,
                    inc.msg.method().map(Method::as_str).unwrap_or("INVITE"),
                    inc.msg.request_uri().unwrap_or_default(),
                    &ha1,
                    &self.nonces,
                    &mut counts,
                    now,
                )
            }
            Err(_) => return Err(Refusal::Internal("nonce table poisoned".into())),
        };
        match result {
            // The decoy cannot verify; should it ever, an unknown user is still refused.
            _ if !known => Err(Refusal::Error(AdmissionError::UnknownUser(creds.username))),
            Ok(()) => Ok(Admitted::Digest { user: creds.username }),
            Err(DigestError::StaleNonce) => Err(Refusal::Challenge { realm: realm.to_owned(), stale: true, proxy }),
            Err(e) => Err(digest_err(e)),
        }
    }

    /// A digest user's HA1s (MD5, SHA-256): the account's API key in the trunk realm, else a
    /// domain's user.
    async fn ha1s(&self, realm: &str, username: &str) -> Result<Option<(String, String)>, sea_orm::DbErr> {
        if realm == self.config.addressing().trunk_realm() {
            return Ok(self
                .trunk_digest
                .as_ref()
                .filter(|t| t.realm == realm && username == self.api_key)
                .map(|t| (t.ha1_md5.clone(), t.ha1_sha256.clone())));
        }
        let user = self.provisioning.user(realm, username).await?;
        Ok(user.map(|u| (u.ha1_md5, u.ha1_sha256)))
    }
}

/// What a request's Request-URI addresses.
pub(super) enum Addressed {
    /// The account's trunk host (`sip.BASE`, `sip-REGION.BASE`): PBXs.
    TrunkHost {
        uri: domains::sip_uri::SipUri,
        region: String,
    },
    Domain {
        uri: domains::sip_uri::SipUri,
        region: String,
        entry: Box<crate::store::cache::DomainEntry>,
    },
}

/// The Request-URI's user (empty without one).
fn parsed_user(uri: &domains::sip_uri::SipUri) -> String {
    uri.user.clone().unwrap_or_default()
}

/// What a placed call's webhooks are instead of its application's.
#[derive(Debug, Default)]
pub struct HookOverrides {
    pub answer: Option<domains::application::Webhook>,
    pub event: Option<domains::application::Webhook>,
    /// A call of the Twilio-compatible API: Twilio's requests, status callbacks for these
    /// `StatusCallbackEvent`s.
    pub twiml: Option<Vec<String>>,
}

pub(super) enum Refusal {
    Challenge {
        realm: String,
        stale: bool,
        /// `407` (a proxy's challenge) rather than `401`.
        proxy: bool,
    },
    /// Admitted, but nothing can take the call (480).
    Unavailable(&'static str),
    Limited(Refused),
    Error(AdmissionError),
    Internal(String),
}

impl Refusal {
    fn internal(e: sea_orm::DbErr) -> Refusal {
        Refusal::Internal(e.to_string())
    }
}

/// The digest user as the failure budgets know it: users are per domain.
fn lockout_key(domain: &str, user: &str) -> String {
    format!("{domain}/{user}")
}

fn has_to_tag(msg: &SipMessage) -> bool {
    msg.header("To").and_then(|t| domains::sip::headers::NameAddr::parse(t).ok()).is_some_and(|n| n.tag().is_some())
}

pub fn random_token(len: usize) -> String {
    use rand::Rng;
    rand::thread_rng().sample_iter(&rand::distributions::Alphanumeric).take(len).map(char::from).collect()
}

/// Stays silent for an INVITE refused by a lockout, swallowing its retransmissions (Timer B's
/// 64·T1 at the caller) so that they are not admitted, counted and refused again.
async fn swallow(mut inbox: mpsc::UnboundedReceiver<CallInput>) {
    let deadline = tokio::time::sleep(domains::sip::timers::TIMEOUT_64_T1);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = &mut deadline => return,
            input = inbox.recv() => if input.is_none() { return },
        }
    }
}

pub fn now_unix() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}
