//! `rtp::parse` and `rtp::is_rtcp` on any datagram, as the media relay's receive loop calls
//! them. Properties: nothing panics; the payload range lies within the packet; rewriting the
//! payload type changes only that field.
#![no_main]

use domains::rtp;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let rtcp = rtp::is_rtcp(data);
    let Ok(header) = rtp::parse(data) else { return };
    assert!(data.len() >= 12);
    assert!(header.payload_start >= 12, "payload starts inside the fixed header: {header:?}");
    assert!(header.payload_start <= header.payload_end, "{header:?}");
    assert!(header.payload_end <= data.len(), "payload end {} past {} bytes", header.payload_end, data.len());
    assert!(data.get(header.payload_start..header.payload_end).is_some());
    assert!(header.payload_type < 128);
    if rtcp {
        assert!((64..=95).contains(&header.payload_type));
    }

    let mut copy = data.to_vec();
    let pt = header.payload_type ^ 0x55;
    rtp::set_payload_type(&mut copy, pt);
    let rewritten = rtp::parse(&copy).expect("a rewritten packet still parses");
    assert_eq!(rewritten, rtp::RtpHeader { payload_type: pt & 0x7f, ..header });
    assert_eq!(copy[0], data[0]);
    assert_eq!(copy[2..], data[2..]);
});
