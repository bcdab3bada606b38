//! Probing (`qualify`): every `trunk_qualify_secs` each gateway of every trunk, and each
//! contact a phone or PBX registered (over the flow its REGISTER came by, which keeps a NAT
//! binding open too), is sent an OPTIONS (resent over UDP as Timer E would, for up to
//! [`PROBE_TIMEOUT`]). The verdicts (`domains::trunk_health`) decide which gateways and
//! contacts new calls ring, and are shown on `/metrics` (`voxbridge_trunk_gateway_up`), in
//! `GET /v1/trunks` and in the registration listings.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use domains::call::Registered;
use domains::sip::{Method, SipMessage};
use domains::trunk::Gateway;
use domains::trunk_health::{GatewayHealth, Health, key};
use tokio::sync::oneshot;

use super::Edge;

/// How long a probe waits for any response.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(4);

/// The gateways' and registered contacts' health, and the probes waiting for their response.
#[derive(Default)]
pub struct ProbeHealth {
    gateways: Mutex<HashMap<String, GatewayHealth>>,
    /// By [`contact_key`].
    contacts: Mutex<HashMap<String, GatewayHealth>>,
    /// Call-ID of a probe → its waiter.
    pending: Mutex<HashMap<String, oneshot::Sender<u16>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The key a registered contact's health is kept under.
pub fn contact_key(domain: &str, user: &str, contact: &str) -> String {
    format!("{domain}/{user}/{contact}")
}

impl ProbeHealth {
    pub fn health(&self, g: &Gateway) -> Health {
        lock(&self.gateways).get(&key(g)).map(|h| h.health).unwrap_or_default()
    }

    pub fn is_down(&self, g: &Gateway) -> bool {
        self.health(g) == Health::Down
    }

    pub fn contact_health(&self, domain: &str, user: &str, contact: &str) -> Health {
        lock(&self.contacts).get(&contact_key(domain, user, contact)).map(|h| h.health).unwrap_or_default()
    }

    pub fn is_contact_down(&self, r: &Registered) -> bool {
        self.contact_health(&r.domain, &r.user, &r.contact) == Health::Down
    }

    pub fn any_down(&self) -> bool {
        let down = |m: &Mutex<HashMap<String, GatewayHealth>>| lock(m).values().any(|h| h.health == Health::Down);
        down(&self.gateways) || down(&self.contacts)
    }

    /// The registrations calls may ring: an address of record's contacts not down, or all of
    /// them when every one is (as for a trunk's gateways).
    pub fn usable_contacts(&self, registered: &[Registered]) -> Vec<Registered> {
        registered
            .iter()
            .filter(|r| {
                !self.is_contact_down(r)
                    || registered
                        .iter()
                        .filter(|o| o.domain == r.domain && o.user == r.user)
                        .all(|o| self.is_contact_down(o))
            })
            .cloned()
            .collect()
    }

    /// Takes a response to one of the probes; false for any other message.
    pub fn take_response(&self, msg: &SipMessage) -> bool {
        let Some(code) = msg.status() else { return false };
        match lock(&self.pending).remove(msg.call_id()) {
            Some(waiter) => {
                let _ = waiter.send(code);
                true
            }
            None => false,
        }
    }

    fn record(&self, trunk: &str, g: &Gateway, answered: bool) {
        let gateway = key(g);
        let changed = lock(&self.gateways).entry(gateway.clone()).or_default().probed(answered);
        let up = self.health(g) == Health::Up;
        metrics::gauge!("voxbridge_trunk_gateway_up", "trunk" => trunk.to_owned(), "gateway" => gateway.clone())
            .set(if up { 1.0 } else { 0.0 });
        if let Some(health) = changed {
            tracing::warn!(%trunk, %gateway, ?health, "trunk gateway health changed");
        }
    }

    fn record_contact(&self, r: &Registered, answered: bool) {
        let changed =
            lock(&self.contacts).entry(contact_key(&r.domain, &r.user, &r.contact)).or_default().probed(answered);
        if let Some(health) = changed {
            tracing::warn!(domain = %r.domain, user = %r.user, contact = %r.contact, ?health, "registered contact health changed");
        }
    }

    /// Forgets contacts no longer registered.
    fn retain_contacts(&self, registered: &[Registered]) {
        let live: std::collections::HashSet<String> =
            registered.iter().map(|r| contact_key(&r.domain, &r.user, &r.contact)).collect();
        lock(&self.contacts).retain(|k, _| live.contains(k));
    }
}

impl Edge {
    /// Probes every gateway each `every` until the edge is gone.
    pub(super) async fn qualify(self: Arc<Self>, every: Duration) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let dialling = match self.provisioning.dialling().await {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(error = %e, "trunk probing: loading trunks");
                    continue;
                }
            };
            for trunk in &dialling.trunks {
                for g in &trunk.gateways {
                    let (edge, trunk, g) = (self.clone(), trunk.name.clone(), g.clone());
                    tokio::spawn(async move {
                        let answered = edge.probe(&g).await;
                        edge.health.record(&trunk, &g, answered);
                    });
                }
            }
            self.health.retain_contacts(&dialling.registered);
            for r in &dialling.registered {
                let (Some(flow), Ok(uri)) = (r.flow.clone(), domains::sip_uri::SipUri::parse(&r.contact)) else {
                    continue;
                };
                let (edge, r) = (self.clone(), r.clone());
                tokio::spawn(async move {
                    let answered = edge.probe_over(flow, &uri).await;
                    edge.health.record_contact(&r, answered);
                });
            }
        }
    }

    /// One OPTIONS to `g`; true when anything answered it in time.
    async fn probe(&self, g: &Gateway) -> bool {
        let transport = match g.transport {
            domains::sip_uri::Transport::Udp => String::new(),
            t => format!(";transport={}", t.as_str()),
        };
        let Ok(uri) = domains::sip_uri::SipUri::parse(&format!("sip:{}:{}{transport}", g.host, g.port)) else {
            return false;
        };
        let Some(candidate) = self.resolver.candidates(&uri).await.ok().and_then(|c| c.into_iter().next()) else {
            return false;
        };
        let Ok(flow) = self.transport.flow_to(candidate.addr, candidate.transport, &g.host).await else {
            return false;
        };
        self.probe_over(flow, &uri).await
    }

    /// One OPTIONS to `uri` over `flow`; true when anything answered it in time.
    async fn probe_over(&self, flow: domains::sip::flow::Flow, uri: &domains::sip_uri::SipUri) -> bool {
        let call_id = format!("qualify-{}", super::random_token(16));
        let mut dialog = domains::sip::dialog::Dialog {
            call_id: call_id.clone(),
            local: format!("<sip:qualify@{}>;tag={}", self.local.host, super::random_token(10)),
            remote: format!("<{uri}>"),
            target: uri.to_string(),
            flow: flow.clone(),
            next_cseq: 1,
            route_set: Vec::new(),
        };
        let branch = format!("z9hG4bK{}", super::random_token(16));
        let options = dialog.request(&self.local, Method::Options, &branch);
        let (waiter, mut answer) = oneshot::channel();
        lock(&self.health.pending).insert(call_id.clone(), waiter);
        let deadline = tokio::time::Instant::now() + PROBE_TIMEOUT;
        let mut resend = domains::sip::timers::T1;
        let answered = loop {
            if self.transport.send(&flow, &options).await.is_err() {
                break false;
            }
            // Over TCP/TLS the request is sent once (the stream is reliable).
            let wait = if flow.is_reliable() { PROBE_TIMEOUT } else { resend };
            match tokio::time::timeout_at(deadline.min(tokio::time::Instant::now() + wait), &mut answer).await {
                Ok(result) => break result.is_ok(),
                Err(_) if tokio::time::Instant::now() >= deadline => break false,
                Err(_) => resend = (resend * 2).min(domains::sip::timers::T2),
            }
        };
        lock(&self.health.pending).remove(&call_id);
        answered
    }
}
