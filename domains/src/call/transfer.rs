//! Transfer of the caller's leg through the Voice API (`PUT /v1/calls/{uuid}`, `action:
//! transfer`): what runs stops — a ringing or bridged `connect`'s legs are released, a waiting
//! action's timer is cancelled — the leg moves to a new conversation (the `transfer` event
//! names both), and the new NCCO, given inline or fetched from a URL, replaces the program.

use super::executor::Step;
use super::outcome::{LegFailure, Outcome};
use super::timers::TimerKey;
use super::{Call, DocumentPurpose, DocumentRequest};
use crate::events::CallStatus;
use crate::ncco::common::Webhook;
use crate::ncco::{HttpMethod, Ncco};

/// Where a transferred leg goes.
#[derive(Debug, Clone, PartialEq)]
pub enum TransferTo {
    Ncco(Ncco),
    /// An NCCO fetched (GET, with the leg's parameters) from this URL.
    Url(url::Url),
}

impl Call {
    pub(super) fn transfer(&mut self, to: TransferTo) {
        if self.exec.step == Step::ExpectEndpoint {
            // Nothing runs yet to transfer from; answer_url decides.
            tracing::info!(call_uuid = %self.uuid, "transfer before the call is set up: ignored");
            return;
        }
        for key in [TimerKey::Action, TimerKey::Limit, TimerKey::Whisper] {
            self.cx.timers.cancel(key);
        }
        self.exec.whisper = None;
        self.stop_ringback();
        for i in 0..self.b.len() {
            // An originated call's own leg is the one transferred, not released.
            if !self.is_caller(i) && self.b.get(i).is_some_and(|b| !b.is_terminated() && !b.leg.reported) {
                self.end_b(i, None);
            }
        }
        self.exec.connect = None;
        self.exec.bridged = None;
        let to_conversation = format!("CON-{}", self.cx.ids.uuid());
        let from_conversation = std::mem::replace(&mut self.conversation_uuid, to_conversation.clone());
        let event = crate::events::TransferEvent {
            conversation_uuid_from: from_conversation,
            conversation_uuid_to: to_conversation,
            uuid: self.uuid.clone(),
            timestamp: self.cx.iso(),
        };
        self.post_ignored(None, serde_json::to_value(event).unwrap_or_default());
        match to {
            TransferTo::Ncco(ncco) => {
                self.exec.program = ncco.0.into();
                self.exec.step = Step::Idle;
                self.next_action();
            }
            TransferTo::Url(url) => {
                self.exec.program.clear();
                self.exec.step = Step::ExpectTransferDocument;
                let body = serde_json::json!({
                    "uuid": self.uuid,
                    "conversation_uuid": self.conversation_uuid,
                    "from": self.caller_leg().from,
                    "to": self.caller_leg().to,
                });
                let webhook = Webhook { url, method: HttpMethod::Get };
                self.cx.fetch(DocumentPurpose::Transfer, DocumentRequest::Post { webhook: Some(webhook), body });
            }
        }
    }

    pub(super) fn transfer_document(&mut self, result: Result<Option<Ncco>, String>) {
        if self.exec.step != Step::ExpectTransferDocument {
            return;
        }
        match result {
            Ok(Some(ncco)) => {
                self.exec.program = ncco.0.into();
                self.exec.step = Step::Idle;
                self.next_action();
            }
            Ok(None) => self.transfer_failed("the transfer URL returned no NCCO".into()),
            Err(reason) => self.transfer_failed(format!("transfer URL: {reason}")),
        }
    }

    /// Answered or not, the call ends; its event gives the reason.
    fn transfer_failed(&mut self, reason: String) {
        self.end_call(Outcome::Failed(LegFailure::new(CallStatus::Failed, "transfer_failed", 480, reason)));
    }
}
