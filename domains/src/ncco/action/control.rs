//! Call-control instructions that TwiML/cXML documents have and NCCO JSON does not:
//! `<Hangup>`, `<Reject>` and `<Redirect>`. They are built by `crate::twiml` only (no NCCO
//! `action` names them) and run by the same executor as every NCCO action.

use crate::ncco::common::Webhook;

/// `<Reject reason="…">`: refuse the call before it is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reject {
    /// The final response to the caller's INVITE.
    pub code: u16,
}

impl Reject {
    /// `reason="busy"`: 486 Busy Here.
    pub const BUSY: Reject = Reject { code: 486 };
    /// `reason="rejected"` (the default): the code Twilio documents for SIP (reference §6.2).
    pub const REJECTED: Reject = Reject { code: 404 };
}

/// `<Redirect>`: the rest of the document is dropped and the one at `webhook` runs instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    pub webhook: Webhook,
}
