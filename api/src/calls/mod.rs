//! Live calls on this node: the registry that routes SIP messages, media events and REST
//! control to a call, and the driver that runs one `domains::call::Call` against the
//! real transport, media process, webhooks and store.

pub mod driver;
pub mod outbound;
pub mod registry;

pub use registry::{CallInput, CallRegistry};
