//! The SIP edge of the control plane: transports, the dispatcher that admits inbound INVITEs
//! and routes every other message to the call it belongs to, (calls themselves run in `crate::calls`).

pub mod edge;
pub mod limits;
pub mod resolve;
pub mod transport;

pub use edge::Edge;
