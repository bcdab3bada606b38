//! `Ncco::parse` on any JSON document (an answer webhook's body, `POST /v1/calls`, a transfer).
//! Properties: nothing panics; an accepted NCCO has one action per array element, each named
//! by that element's `action`; `parse_str` agrees with `parse`; a refusal names at least one
//! problem.
#![no_main]

use domains::ncco::Ncco;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<Value>(data) else { return };
    let parsed = Ncco::parse(&value);
    match &parsed {
        Ok(ncco) => {
            let items = value.as_array().expect("an accepted NCCO is an array");
            assert_eq!(ncco.actions().len(), items.len());
            for (action, item) in ncco.actions().iter().zip(items) {
                assert_eq!(Some(action.name()), item.get("action").and_then(Value::as_str));
                let _ = action.is_blocking();
            }
        }
        Err(problems) => assert!(!problems.is_empty(), "refused with no problem"),
    }
    if let Ok(text) = std::str::from_utf8(data) {
        assert_eq!(Ncco::parse_str(text), parsed);
    }
});
