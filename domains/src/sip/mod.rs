//! SIP as the edge needs it, free of I/O: messages (parse, print, headers), the header
//! grammars we rely on (Via, name-addr, CSeq), responses built from requests, and the admission
//! decision for inbound INVITEs.
//!
//! Why hand-written rather than ezk-sip-core's endpoint: ezk's transports drop a message they
//! cannot parse without any hook to answer it, and its transports cannot be given our own
//! sockets, so "malformed SIP gets 400 and the listener keeps serving" is impossible through
//! it. The message layer here keeps every header verbatim (a B2BUA mostly copies headers) and
//! reports exactly what is wrong.

pub mod admission;
pub mod checks;
pub mod dialog;
pub mod flow;
pub mod headers;
pub mod message;
pub mod pbx;
#[cfg(test)]
mod rfc4475_tests;
pub mod timers;

pub use message::{Method, SipMessage, StartLine};
