//! voxbridge's decisions, free of I/O: what is a valid E.164 number, domain name, ACL,
//! trunk or forwarding URI; how an inbound SIP request is admitted; how an NCCO is parsed;
//! how a call runs (`call`: its legs, transactions and NCCO as one state machine); the
//! messages exchanged with the media process. Nothing here touches a socket, a clock
//! or a database: callers pass time and data in and get decisions out.

pub mod acl;
pub mod amd;
pub mod application;
pub mod call;
pub mod digest;
pub mod document;
pub mod dtmf;
pub mod e164;
pub mod events;
pub mod forward;
pub mod g711;
pub mod media;
pub mod ncco;
pub mod problem;
pub mod psip;
pub mod quality;
pub mod recordings;
pub mod registrar;
pub mod rtcp;
pub mod rtp;
pub mod sdp;
pub mod sip;
pub mod sip_uri;
pub mod speech;
pub mod srtp;
pub mod trunk;
pub mod trunk_health;
pub mod twiml;
pub mod voices;
