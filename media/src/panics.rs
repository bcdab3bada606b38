//! Helpers for the places that contain a panic instead of letting it end a long-lived loop
//! (the RTP receive loops, the control connections, housekeeping). A caught panic is a bug
//! being survived, never a way of handling input: it is always logged at `error`.

use std::any::Any;

/// The message a panic was raised with, for the log line.
pub fn message(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(non-string panic payload)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_str_and_string_payloads() {
        let p = std::panic::catch_unwind(|| panic!("plain")).unwrap_err();
        assert_eq!(message(&*p), "plain");
        let n = 3;
        let p = std::panic::catch_unwind(|| panic!("formatted {n}")).unwrap_err();
        assert_eq!(message(&*p), "formatted 3");
        let p = std::panic::catch_unwind(|| std::panic::panic_any(5u8)).unwrap_err();
        assert_eq!(message(&*p), "(non-string panic payload)");
    }
}
