//! `SessionDescription::parse` on any UTF-8 text (a remote SDP offer or answer), then both
//! negotiations on it. Properties: nothing panics; when we can answer an offer, our answer
//! parses and is accepted by the offerer's side with the same codec, payload types and
//! mirrored direction; our own offer (codecs picked by the input) is always answerable.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use domains::sdp::{self, Codec, Direction, LocalSdp, SessionDescription};
use domains::srtp::{MasterKey, SrtpPolicy};
use libfuzzer_sys::fuzz_target;

const PREFS: [&[Codec]; 5] =
    [&[], &[Codec::Pcmu], &[Codec::Pcma], &[Codec::Pcmu, Codec::Pcma], &[Codec::Pcma, Codec::Pcmu]];
const DIRECTIONS: [Direction; 4] = [Direction::SendRecv, Direction::SendOnly, Direction::RecvOnly, Direction::Inactive];

fuzz_target!(|data: &[u8]| {
    // A checksum of the input picks the codec preference, our address family and our offer's
    // direction, so seeds stay plain SDP and every mutation may change the choice.
    let sel = data.iter().fold(0u8, |a, b| a.wrapping_add(*b));
    let text = data;
    let prefer = PREFS[usize::from(sel) % PREFS.len()];
    let address = if sel & 0x80 != 0 { IpAddr::V6(Ipv6Addr::LOCALHOST) } else { IpAddr::V4(Ipv4Addr::LOCALHOST) };
    let srtp = [SrtpPolicy::Optional, SrtpPolicy::Always, SrtpPolicy::Never][usize::from(sel >> 5) % 3];
    let local = LocalSdp { session_id: 42, version: 1, address, port: 40000, srtp, key: MasterKey([3; 30]) };

    // Our offer, independent of the SDP text: must always parse and negotiate.
    let codecs = if prefer.is_empty() { &Codec::ALL[..] } else { prefer };
    let direction = DIRECTIONS[usize::from(sel >> 3) % DIRECTIONS.len()];
    let offer_text = sdp::build_offer(&local, codecs, direction);
    let offer = SessionDescription::parse(&offer_text).expect("our offer parses");
    let n = sdp::answer_offer(&offer, codecs, srtp).expect("our offer is answerable");
    assert_eq!(n.srtp.is_some(), srtp.offers_srtp());
    assert_eq!(n.codec, codecs[0]);

    let Ok(text) = std::str::from_utf8(text) else { return };
    let Ok(remote) = SessionDescription::parse(text) else { return };

    // As offerer: the remote text is the answer to an offer of `codecs`.
    if let Ok(n) = sdp::accept_answer(&remote, codecs, srtp) {
        assert!(codecs.contains(&n.codec));
        assert!(n.media_index < remote.media.len());
    }

    // As answerer: the remote text is an offer.
    let Ok(negotiated) = sdp::answer_offer(&remote, prefer, srtp) else { return };
    assert!(negotiated.media_index < remote.media.len());
    let answer_text = sdp::build_answer(&local, &remote, &negotiated);
    let answer = match SessionDescription::parse(&answer_text) {
        Ok(a) => a,
        Err(e) => panic!("our answer does not parse: {e}\noffer: {text:?}\nanswer: {answer_text:?}"),
    };
    assert_eq!(answer.media.len(), remote.media.len(), "answer must keep one m= per offered m=");
    if negotiated.srtp.is_some() {
        // Our answer echoes the offerer's crypto tag, which only its offer can accept.
        assert!(answer_text.contains("RTP/SAVP") && answer_text.contains("a=crypto:"), "{answer_text}");
        return;
    }
    let accepted = match sdp::accept_answer(&answer, &[negotiated.codec], SrtpPolicy::Optional) {
        Ok(a) => a,
        Err(e) => panic!("our answer is not acceptable: {e}\noffer: {text:?}\nanswer: {answer_text:?}"),
    };
    assert_eq!(accepted.codec, negotiated.codec);
    assert_eq!(accepted.codec_pt, negotiated.codec_pt);
    assert_eq!(accepted.telephone_event, negotiated.telephone_event);
    assert_eq!(accepted.media_index, negotiated.media_index);
    assert_eq!(accepted.remote_ip, local.address);
    assert_eq!(accepted.remote_port, local.port);
    assert_eq!(accepted.direction, negotiated.direction.reverse(), "answer: {answer_text:?}");
    assert_eq!(accepted.ptime, Some(negotiated.ptime.unwrap_or(sdp::DEFAULT_PTIME)));
});
