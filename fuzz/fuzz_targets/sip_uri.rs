//! `SipUri::parse` on any UTF-8 text (NCCO endpoints, trunk and application settings).
//! Properties: nothing panics; a parsed URI displays as text that parses to the same URI.
#![no_main]

use domains::sip_uri::SipUri;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(uri) = SipUri::parse(text) else { return };
    let _ = (uri.transport(), uri.port_or_default(), uri.param("transport"), uri.param("lr"));
    let shown = uri.to_string();
    let again = match SipUri::parse(&shown) {
        Ok(u) => u,
        Err(e) => panic!("{text:?} parsed, but its Display {shown:?} does not: {e}"),
    };
    assert_eq!(again, uri, "{text:?} -> {shown:?} re-parses differently");
    assert_eq!(again.to_string(), shown);
});
