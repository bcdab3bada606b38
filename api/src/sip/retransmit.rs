//! Retransmission over unreliable transports (RFC 3261 §17): a request or a final response is
//! resent at T1, 2·T1, 4·T1… (capped at T2 where the RFC says so) until the call task stops
//! it (response or ACK arrived) or 64·T1 passes.

use std::sync::Arc;
use std::time::Duration;

use domains::sip::SipMessage;
use tokio::sync::oneshot;

use super::transport::{Flow, Transport};

pub const T1: Duration = Duration::from_millis(500);
pub const T2: Duration = Duration::from_secs(4);

/// Stops the retransmissions when dropped.
pub struct Retransmission(Option<oneshot::Sender<()>>);

impl Retransmission {
    pub fn none() -> Self {
        Retransmission(None)
    }

    /// Stops the retransmissions (the response or ACK they waited for arrived).
    pub fn stop(&mut self) {
        self.0.take();
    }
}

/// Sends `msg` now and, on UDP, again with exponential back-off. `cap_at_t2`: non-INVITE
/// requests and 2xx/final responses to INVITE cap the interval at T2; INVITE requests do not.
pub async fn send(transport: &Arc<Transport>, flow: &Flow, msg: SipMessage, cap_at_t2: bool) -> Retransmission {
    if let Err(e) = transport.send(flow, &msg).await {
        tracing::warn!(peer = %flow.peer(), error = %e, "sending SIP message");
    }
    if flow.is_reliable() {
        return Retransmission::none();
    }
    let (stop_tx, mut stop_rx) = oneshot::channel::<()>();
    let (transport, flow) = (transport.clone(), flow.clone());
    tokio::spawn(async move {
        let mut interval = T1;
        let mut elapsed = Duration::ZERO;
        while elapsed < T1 * 64 {
            tokio::select! {
                _ = &mut stop_rx => return,
                _ = tokio::time::sleep(interval) => {}
            }
            elapsed += interval;
            if transport.send(&flow, &msg).await.is_err() {
                return;
            }
            interval = if cap_at_t2 { (interval * 2).min(T2) } else { interval * 2 };
        }
    });
    Retransmission(Some(stop_tx))
}
