//! The call registry: which call owns a SIP Call-ID, a media endpoint or a call UUID. Shared
//! by the SIP edge (which routes messages by Call-ID), the media event pump (by endpoint) and
//! the drivers (which add and remove their own keys), so none of them depends on another.

use std::collections::HashMap;
use std::sync::Mutex;

use domains::call::Key;
use tokio::sync::mpsc;

use crate::media::MediaEvent;
use crate::sip::transport::Incoming;

/// What reaches a call from outside.
#[derive(Debug)]
pub enum CallInput {
    Sip(Incoming),
    Media(MediaEvent),
    /// From the Voice API, answered with whether the call accepts it now.
    Control(domains::call::Control, tokio::sync::oneshot::Sender<Result<(), domains::call::ControlRefused>>),
}

pub type CallSender = mpsc::UnboundedSender<CallInput>;

#[derive(Default)]
pub struct CallRegistry {
    keys: Mutex<HashMap<Key, CallSender>>,
}

impl CallRegistry {
    pub fn insert(&self, key: Key, tx: CallSender) {
        if let Ok(mut keys) = self.keys.lock() {
            keys.insert(key, tx);
        }
    }

    /// Removes `key` only while it still routes to `tx` (a new transaction with the same
    /// Call-ID, e.g. an INVITE with credentials after a 401, may own it by now).
    pub fn remove_if(&self, key: &Key, tx: &CallSender) {
        if let Ok(mut keys) = self.keys.lock()
            && keys.get(key).is_some_and(|t| t.same_channel(tx))
        {
            keys.remove(key);
        }
    }

    pub fn get(&self, key: &Key) -> Option<CallSender> {
        self.keys.lock().ok().and_then(|k| k.get(key).cloned())
    }

    pub fn by_call_id(&self, call_id: &str) -> Option<CallSender> {
        self.get(&Key::CallId(call_id.to_owned()))
    }

    /// Every live call, once each (for process-wide events).
    pub fn all(&self) -> Vec<CallSender> {
        let Ok(keys) = self.keys.lock() else { return Vec::new() };
        let mut out: Vec<CallSender> = Vec::new();
        for tx in keys.values() {
            if !out.iter().any(|o| o.same_channel(tx)) {
                out.push(tx.clone());
            }
        }
        out
    }

    /// Dialogs routed (SIP Call-IDs held by calls).
    pub fn call_ids(&self) -> usize {
        self.keys.lock().map(|k| k.keys().filter(|k| matches!(k, Key::CallId(_))).count()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_removed_only_by_their_owner() {
        let reg = CallRegistry::default();
        let (a, _ra) = mpsc::unbounded_channel();
        let (b, _rb) = mpsc::unbounded_channel();
        let key = Key::CallId("c1".into());
        reg.insert(key.clone(), a.clone());
        reg.insert(Key::Endpoint("e1".into()), a.clone());
        reg.insert(key.clone(), b.clone());
        reg.remove_if(&key, &a);
        assert!(reg.get(&key).is_some_and(|t| t.same_channel(&b)));
        assert_eq!(reg.all().len(), 2);
        reg.remove_if(&key, &b);
        assert!(reg.by_call_id("c1").is_none());
        assert_eq!(reg.call_ids(), 0);
    }
}
