//! The SIP edge of the control plane: transports, the dispatcher that admits inbound INVITEs
//! and routes every other message to the call it belongs to, and the per-call B2BUA driver.

pub mod call;
pub mod edge;
pub mod limits;
pub mod requests;
pub mod retransmit;
pub mod transport;

pub use edge::Edge;
