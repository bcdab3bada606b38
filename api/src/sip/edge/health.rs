//! Trunk gateway probing: every `trunk_qualify_secs` each gateway of every trunk is sent an
//! OPTIONS (resent over UDP as Timer E would, for up to [`PROBE_TIMEOUT`]); the verdicts
//! (`domains::trunk_health`) decide which gateways new calls may use, and are shown on
//! `/metrics` (`voxbridge_trunk_gateway_up`) and in `GET /v1/trunks`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use domains::sip::{Method, SipMessage};
use domains::trunk::Gateway;
use domains::trunk_health::{GatewayHealth, Health, key};
use tokio::sync::oneshot;

use super::Edge;

/// How long a probe waits for any response.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(4);

/// The gateways' health and the probes waiting for their response.
#[derive(Default)]
pub struct TrunkHealth {
    gateways: Mutex<HashMap<String, GatewayHealth>>,
    /// Call-ID of a probe → its waiter.
    pending: Mutex<HashMap<String, oneshot::Sender<u16>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl TrunkHealth {
    pub fn health(&self, g: &Gateway) -> Health {
        lock(&self.gateways).get(&key(g)).map(|h| h.health).unwrap_or_default()
    }

    pub fn is_down(&self, g: &Gateway) -> bool {
        self.health(g) == Health::Down
    }

    pub fn any_down(&self) -> bool {
        lock(&self.gateways).values().any(|h| h.health == Health::Down)
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
