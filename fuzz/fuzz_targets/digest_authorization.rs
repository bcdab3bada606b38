//! `Credentials::parse` on any UTF-8 `Authorization`/`Proxy-Authorization` value, then the
//! checks the registrar and INVITE admission run on it. The nonce key below is a constant of
//! this harness, not a deployment secret. Properties: nothing panics; a fuzzed nonce never
//! verifies; the same credentials with a nonce we issued and the response a client knowing the
//! password computes verify once, and are a replay the second time; a wrong response never
//! verifies.
#![no_main]

use domains::digest::{self, Credentials, DigestError, NonceCounts, NonceIssuer, Qop};
use libfuzzer_sys::fuzz_target;

const KEY: [u8; 32] = [0x5a; 32];
const NOW: u64 = 1_700_000_000;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(creds) = Credentials::parse(text) else { return };
    assert!(creds.expect_realm(&creds.realm).is_ok());
    let _ = creds.expect_realm("fuzz.invalid");

    let ha1 = digest::ha1(creds.algorithm, &creds.username, &creds.realm, "fuzz-password");
    let expected = creds.expected_response("INVITE", &ha1);
    let hex_len = match creds.algorithm {
        digest::DigestAlgorithm::Md5 => 32,
        digest::DigestAlgorithm::Sha256 => 64,
    };
    assert_eq!(expected.len(), hex_len);
    assert!(expected.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    // The stored HA1's case must not matter.
    assert_eq!(creds.expected_response("INVITE", &ha1.to_ascii_uppercase()), expected);

    let issuer = NonceIssuer::new(KEY, 300);
    let mut counts = NonceCounts::new();
    let _ = issuer.check(&creds.nonce, NOW);
    let _ = digest::challenge_headers_with_stale(&creds.realm, &creds.nonce, true);

    // The fuzzed credentials as sent, against the uri they name and against another one.
    let uri = creds.uri.clone();
    let r = digest::verify(&creds, "INVITE", &uri, &ha1, &issuer, &mut counts, NOW);
    assert!(r.is_err(), "a nonce this issuer never made verified: {:?}", creds.nonce);
    let _ = digest::verify(&creds, "REGISTER", "sip:alice@example.com;transport=tcp", &ha1, &issuer, &mut counts, NOW);

    // Now with a nonce we issued and a correct response.
    let mut good = creds.clone();
    good.nonce = issuer.issue(NOW - 10, [7; 16]);
    good.response = good.expected_response("INVITE", &ha1);
    let mut wrong = good.clone();
    wrong.response = good.expected_response("ACK", &ha1);
    assert_eq!(
        digest::verify(&wrong, "INVITE", &uri, &ha1, &issuer, &mut counts, NOW),
        Err(DigestError::WrongResponse)
    );
    // Upper-case hex from a client is fine.
    good.response = good.response.to_ascii_uppercase();
    let first = digest::verify(&good, "INVITE", &uri, &ha1, &issuer, &mut counts, NOW);
    match (good.qop, good.nc) {
        // nc=00000000 is never a valid first count.
        (Some(Qop::Auth), Some(0)) => assert_eq!(first, Err(DigestError::Replay)),
        _ => assert_eq!(first, Ok(()), "correct credentials refused: {text:?}"),
    }
    assert_eq!(digest::verify(&good, "INVITE", &uri, &ha1, &issuer, &mut counts, NOW), Err(DigestError::Replay));
    // Past the nonce's lifetime: stale (the response is still right).
    let mut later = NonceCounts::new();
    assert_eq!(
        digest::verify(&good, "INVITE", &uri, &ha1, &issuer, &mut later, NOW + 1000),
        Err(DigestError::StaleNonce)
    );
});
