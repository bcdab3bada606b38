//! Retransmission over unreliable transports (RFC 3261 §17): one queue per transport, one task,
//! ordered by deadline, rather than a task per message. A request or a final response is resent
//! on the schedule of `domains::sip::timers::Backoff` (T1 doubling, capped at T2 except for
//! INVITE) until its handle stops it, until a response to the request arrives (the client
//! transaction, matched by branch and CSeq method, §17.1.3), or until 64·T1 passes.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

use domains::sip::timers::{Backoff, Retransmitted};
use domains::sip::{Method, SipMessage};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::transport::{Flow, Transport};

pub use domains::sip::timers::T1;

/// Stops the retransmissions when dropped (or when [`Retransmission::stop`] is called), unless
/// detached.
pub struct Retransmission(Option<Arc<AtomicBool>>);

impl Retransmission {
    pub fn none() -> Self {
        Retransmission(None)
    }

    /// Stops the retransmissions (the response or ACK they waited for arrived).
    pub fn stop(&mut self) {
        if let Some(flag) = self.0.take() {
            flag.store(true, Ordering::Relaxed);
        }
    }

    /// Lets the retransmissions run on without this handle: a request's own response (or
    /// 64·T1) ends them. For a BYE sent as a call ends.
    pub fn detach(mut self) {
        self.0 = None;
    }
}

impl Drop for Retransmission {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A client transaction's key: branch and CSeq method (§17.1.3).
type TxnKey = (String, String);

struct Entry {
    flow: Flow,
    msg: SipMessage,
    backoff: Backoff,
    stopped: Arc<AtomicBool>,
    key: Option<TxnKey>,
}

pub struct Retransmitter {
    add: mpsc::UnboundedSender<Entry>,
    /// Requests being retransmitted, so that their response stops them.
    pending: Arc<Mutex<HashMap<TxnKey, Arc<AtomicBool>>>>,
}

impl Retransmitter {
    pub fn start(transport: Weak<Transport>) -> Retransmitter {
        let (add, rx) = mpsc::unbounded_channel();
        let pending = Arc::new(Mutex::new(HashMap::new()));
        tokio::spawn(run(transport, rx, pending.clone()));
        Retransmitter { add, pending }
    }

    /// A response arrived: the request it answers is no longer retransmitted (any response for
    /// an INVITE, a final one otherwise, §17.1.1.2 and §17.1.2.2).
    pub fn response_received(&self, resp: &SipMessage) {
        let (Some(code), Some(branch), Some((_, method))) = (resp.status(), resp.branch(), resp.cseq()) else {
            return;
        };
        if code < 200 && method != Method::Invite {
            return;
        }
        let key = (branch, method.as_str().to_owned());
        if let Some(flag) = self.pending.lock().ok().and_then(|mut p| p.remove(&key)) {
            flag.store(true, Ordering::Relaxed);
        }
    }

    fn schedule(&self, flow: &Flow, msg: SipMessage) -> Retransmission {
        let stopped = Arc::new(AtomicBool::new(false));
        let kind = if msg.method() == Some(&Method::Invite) {
            Retransmitted::InviteRequest
        } else {
            Retransmitted::CappedAtT2
        };
        let key = match (msg.method(), msg.branch()) {
            (Some(method), Some(branch)) => Some((branch, method.as_str().to_owned())),
            _ => None,
        };
        if let (Some(key), Ok(mut pending)) = (&key, self.pending.lock()) {
            pending.insert(key.clone(), stopped.clone());
        }
        let entry = Entry { flow: flow.clone(), msg, backoff: Backoff::new(kind), stopped: stopped.clone(), key };
        if self.add.send(entry).is_err() {
            return Retransmission::none();
        }
        Retransmission(Some(stopped))
    }
}

/// Sends `msg` now and, on UDP, again on its RFC schedule until stopped.
pub async fn send(transport: &Arc<Transport>, flow: &Flow, msg: SipMessage) -> Retransmission {
    if let Err(e) = transport.send(flow, &msg).await {
        tracing::warn!(peer = %flow.peer(), error = %e, "sending SIP message");
    }
    if flow.is_reliable() {
        return Retransmission::none();
    }
    transport.retransmitter().schedule(flow, msg)
}

async fn run(
    transport: Weak<Transport>,
    mut add: mpsc::UnboundedReceiver<Entry>,
    pending: Arc<Mutex<HashMap<TxnKey, Arc<AtomicBool>>>>,
) {
    // (deadline, sequence) → entry: the sequence keeps equal deadlines apart.
    let mut queue: BTreeMap<(Instant, u64), Entry> = BTreeMap::new();
    let mut seq = 0u64;
    let forget = |entry: &Entry| {
        if let (Some(key), Ok(mut p)) = (&entry.key, pending.lock())
            && p.get(key).is_some_and(|f| Arc::ptr_eq(f, &entry.stopped))
        {
            p.remove(key);
        }
    };
    loop {
        let next = queue.keys().next().map(|(at, _)| *at);
        tokio::select! {
            entry = add.recv() => {
                let Some(entry) = entry else { return };
                if let Some(wait) = entry.backoff.next_wait() {
                    seq += 1;
                    queue.insert((Instant::now() + wait, seq), entry);
                }
            }
            () = sleep_until(next) => {
                let now = Instant::now();
                while let Some(first) = queue.first_entry() {
                    if first.key().0 > now {
                        break;
                    }
                    let mut entry = first.remove();
                    if entry.stopped.load(Ordering::Relaxed) {
                        forget(&entry);
                        continue;
                    }
                    let Some(t) = transport.upgrade() else { return };
                    if t.send(&entry.flow, &entry.msg).await.is_err() {
                        forget(&entry);
                        continue;
                    }
                    metrics::counter!("voxbridge_sip_retransmissions_total").increment(1);
                    entry.backoff.retransmitted();
                    match entry.backoff.next_wait() {
                        Some(wait) => {
                            seq += 1;
                            queue.insert((now + wait, seq), entry);
                        }
                        // Timer B/F/H: the transaction gives up.
                        None => forget(&entry),
                    }
                }
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
