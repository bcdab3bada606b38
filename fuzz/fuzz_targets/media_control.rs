//! The media-control protocol's JSON (`domains::media`): what a media process reads from the
//! control plane (`Request`) and the control plane reads back (`Message`). Properties:
//! nothing panics; what deserialises serialises back to the same value; `answer` and
//! `malformed` produce messages that round-trip too.
#![no_main]

use domains::media::{self, Message, Request};
use libfuzzer_sys::fuzz_target;

fn round_trip_message(msg: &Message) {
    let text = serde_json::to_string(msg).expect("a Message serialises");
    let back: Message = match serde_json::from_str(&text) {
        Ok(m) => m,
        Err(e) => panic!("serialised Message does not deserialise: {e}\n{text}"),
    };
    assert_eq!(&back, msg, "{text}");
}

fuzz_target!(|data: &[u8]| {
    match serde_json::from_slice::<Request>(data) {
        Ok(req) => {
            let text = serde_json::to_string(&req).expect("a Request serialises");
            let back: Request = match serde_json::from_str(&text) {
                Ok(r) => r,
                Err(e) => panic!("serialised Request does not deserialise: {e}\n{text}"),
            };
            assert_eq!(back, req, "{text}");
            if let Some(reply) = media::answer(&req, "0.0.0-fuzz") {
                round_trip_message(&reply);
            }
        }
        Err(e) => {
            let text = String::from_utf8_lossy(data);
            round_trip_message(&media::malformed(&text, &e));
        }
    }
    if let Ok(msg) = serde_json::from_slice::<Message>(data) {
        round_trip_message(&msg);
    }
});
