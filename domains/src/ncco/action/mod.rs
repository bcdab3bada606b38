//! One file per NCCO action; each owns its struct, its defaults and its field rules, and
//! reads its object through [`super::fields::Fields`] so every problem carries a pointer.

mod connect;
mod control;
mod conversation;
mod input;
mod notify;
mod record;
mod stream;
mod talk;
mod transfer;
mod wait;

pub use connect::{Connect, DialRecord, StatusCallback, TwimlDial};
pub use control::{Redirect, Reject};
pub use conversation::Conversation;
pub use input::{DtmfSettings, Input, InputMode, SpeechSettings};
pub use notify::Notify;
pub use record::{Record, RecordFormat};
pub use stream::Stream;
pub use talk::Talk;
pub use transfer::Transfer;
pub use wait::Wait;

/// `level` of talk and stream: -1 (quietest) to 1 (loudest), default 0.
pub(crate) const LEVEL: std::ops::RangeInclusive<f64> = -1.0..=1.0;
/// `loop` of talk and stream: 0 repeats until the action is stopped.
pub(crate) const LOOP: std::ops::RangeInclusive<u32> = 0..=u32::MAX;
