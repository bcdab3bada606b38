//! The media process against real sockets: it starts, reports its version and answers its
//! control socket; malformed control messages get an error reply without closing the
//! connection; endpoints negotiate SDP and relay real RTP between fake callers and callees over
//! UDP (symmetric latching, payload-type mapping, both directions); silent endpoints report
//! `rtp_timeout`; destroying an endpoint frees its port.
//!
//! Each test runs its own media process on its own RTP port range (below the ephemeral range,
//! so the fake peers' sockets cannot take them).

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::UdpSocket;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;
use vbtest::media_process::MediaProcess;

/// An SDP offer or answer from a fake SIP peer: PCMU plus telephone-event as `te_pt`.
fn peer_sdp(port: u16, te_pt: u8, extra: &str) -> String {
    format!(
        "v=0\r\no=peer 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0 {te_pt}\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:{te_pt} telephone-event/8000\r\n\
         a=fmtp:{te_pt} 0-16\r\na=ptime:20\r\n{extra}"
    )
}

fn rtp(pt: u8, seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, pt];
    p.extend(seq.to_be_bytes());
    p.extend(ts.to_be_bytes());
    p.extend(ssrc.to_be_bytes());
    p.extend(payload);
    p
}

fn payload(i: u16) -> Vec<u8> {
    (0..160u16).map(|j| (i.wrapping_mul(7).wrapping_add(j) & 0xff) as u8).collect()
}

async fn udp() -> (UdpSocket, u16) {
    let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = s.local_addr().unwrap().port();
    (s, port)
}

fn media_addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Sends `n` PCMU packets (160-byte payloads, 20 ms apart in timestamps) from `from` to `to`.
async fn send_stream(from: &UdpSocket, to: SocketAddr, n: u16, ssrc: u32) {
    for i in 0..n {
        from.send_to(&rtp(0, 1000 + i, 160 * u32::from(i), ssrc, &payload(i)), to).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Receives datagrams until `n` arrived or a quiet second passes.
async fn receive(sock: &UdpSocket, n: usize) -> Vec<(Vec<u8>, SocketAddr)> {
    let mut got = Vec::new();
    let mut buf = [0u8; 2048];
    while got.len() < n {
        match timeout(Duration::from_secs(1), sock.recv_from(&mut buf)).await {
            Ok(Ok((len, from))) => got.push((buf[..len].to_vec(), from)),
            _ => break,
        }
    }
    got
}

/// The relayed stream is the sent one: count, order, sequence numbers, SSRC and payloads.
fn assert_stream(got: &[(Vec<u8>, SocketAddr)], n: u16, ssrc: u32, source: SocketAddr) {
    assert_eq!(got.len(), usize::from(n), "packets relayed");
    for (i, (p, from)) in got.iter().enumerate() {
        let i = i as u16;
        assert_eq!(*from, source, "sent from the endpoint's advertised port (symmetric RTP)");
        assert_eq!(p[1] & 0x7f, 0, "PCMU payload type");
        assert_eq!(u16::from_be_bytes([p[2], p[3]]), 1000 + i, "sequence continuity");
        assert_eq!(u32::from_be_bytes([p[4], p[5], p[6], p[7]]), 160 * u32::from(i), "timestamp kept");
        assert_eq!(u32::from_be_bytes([p[8], p[9], p[10], p[11]]), ssrc, "SSRC kept");
        assert_eq!(&p[12..], &payload(i)[..], "payload intact");
    }
}

#[tokio::test]
async fn media_process_answers_its_control_socket() {
    let media = MediaProcess::start(&["--rtp-ports", "29000-29099"]);
    assert!(media.ready_line.contains(&format!("version={}", env!("CARGO_PKG_VERSION"))), "{}", media.ready_line);
    let mut control = media.control().await;
    let refused = control.ask(json!({"type": "hello", "protocol": 999})).await;
    assert_eq!(refused["code"], "protocol_mismatch");
    let garbage = control.send_text("{not json".into()).await;
    assert_eq!((garbage["id"].as_u64(), garbage["code"].as_str()), (Some(0), Some("bad_request")));
    let pong = control.ask(json!({"type": "ping"})).await;
    assert_eq!(pong["reply"], "pong");
}

#[tokio::test]
async fn bad_commands_get_error_replies_and_the_connection_keeps_working() {
    let media = MediaProcess::start(&["--rtp-ports", "29100-29199"]);
    let mut control = media.control().await;
    // An unknown command with a readable id: the error echoes the id.
    let unknown = control.ask(json!({"type": "warp_drive"})).await;
    assert_eq!(unknown["code"], "bad_request", "{unknown}");
    let missing_field = control.ask(json!({"type": "bridge", "a": "x"})).await;
    assert_eq!(missing_field["code"], "bad_request", "{missing_field}");
    let binary = {
        control.ws.send(Message::Binary(vec![1, 2, 3].into())).await.unwrap();
        let frame = control.ws.next().await.unwrap().unwrap();
        serde_json::from_str::<Value>(frame.to_text().unwrap()).unwrap()
    };
    assert_eq!(binary["code"], "bad_request");
    let not_found = control.ask(json!({"type": "bridge", "a": "nope", "b": "nada"})).await;
    assert_eq!(not_found["code"], "not_found", "{not_found}");
    let stats = control.ask(json!({"type": "endpoint_stats", "endpoint_id": "nope"})).await;
    assert_eq!(stats["code"], "not_found");
    let update = control.ask(json!({"type": "update_endpoint", "endpoint_id": "nope", "remote_sdp": "v=0"})).await;
    assert_eq!(update["code"], "not_found");
    for sdp in ["hello", "v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 4000 RTP/AVP 97\r\na=rtpmap:97 speex/8000\r\n"] {
        let refused = control.ask(json!({"type": "create_endpoint", "call_uuid": "c", "remote_sdp": sdp})).await;
        assert_eq!(refused["code"], "negotiation", "{refused}");
    }
    // Destroying an unknown endpoint is not an error.
    control.ok(json!({"type": "destroy_endpoint", "endpoint_id": "nope"})).await;
    let (a, _, _) = control.create("c", None, &[]).await;
    let self_bridge = control.ask(json!({"type": "bridge", "a": a, "b": a})).await;
    assert_eq!(self_bridge["code"], "bad_request");
    let pong = control.ask(json!({"type": "ping"})).await;
    assert_eq!(pong["reply"], "pong");
}

#[tokio::test]
async fn relays_rtp_between_bridged_endpoints_both_ways() {
    let media = MediaProcess::start(&["--rtp-ports", "29200-29299"]);
    let mut control = media.control().await;
    let (caller, caller_port) = udp().await;
    let (callee, callee_port) = udp().await;

    // Leg A answers the caller's offer (telephone-event 101).
    let (a, a_port, reply) = control.create("call-1", Some(&peer_sdp(caller_port, 101, "")), &[]).await;
    assert_eq!(reply["codec"], "PCMU");
    let a_sdp = reply["local_sdp"].as_str().unwrap();
    assert!(a_sdp.contains("c=IN IP4 127.0.0.1") && a_sdp.contains("a=rtpmap:101 telephone-event/8000"), "{a_sdp}");
    assert!(a_port % 2 == 0 && (29200..=29299).contains(&a_port));
    // Leg B offers to the callee, who answers with telephone-event 96.
    let (b, b_port, reply) = control.create("call-1", None, &["PCMU"]).await;
    assert!(reply.get("codec").is_none(), "no codec before the answer: {reply}");
    let offer = reply["local_sdp"].as_str().unwrap();
    assert!(offer.contains(&format!("m=audio {b_port} RTP/AVP 0 8 101")), "{offer}");
    let updated = control
        .ok(json!({"type": "update_endpoint", "endpoint_id": b, "remote_sdp": peer_sdp(callee_port, 96, "")}))
        .await;
    assert_eq!(updated["local_sdp"], offer, "applying an answer leaves our offer as it was");
    assert_eq!(control.ok(json!({"type": "bridge", "a": a, "b": b})).await["reply"], "bridged");

    // Caller → A → B → callee.
    send_stream(&caller, media_addr(a_port), 50, 0x1111).await;
    assert_stream(&receive(&callee, 50).await, 50, 0x1111, media_addr(b_port));
    // An RFC 4733 event: payload type 101 on the caller's leg becomes 96 on the callee's.
    caller.send_to(&rtp(0x80 | 101, 2000, 0, 0x1111, &[5, 0x8a, 0, 160]), media_addr(a_port)).await.unwrap();
    let dtmf = receive(&callee, 1).await;
    assert_eq!(dtmf.len(), 1);
    assert_eq!((dtmf[0].0[1], &dtmf[0].0[12..]), (0x80 | 96, &[5, 0x8a, 0, 160][..]), "marker kept, type mapped");

    // Callee → B → A → caller.
    send_stream(&callee, media_addr(b_port), 50, 0x2222).await;
    assert_stream(&receive(&caller, 50).await, 50, 0x2222, media_addr(a_port));

    assert_eq!(control.stats(&a).await, (51, 50));
    assert_eq!(control.stats(&b).await, (50, 51));

    // Unbridged, nothing is relayed (but still counted as received).
    assert_eq!(control.ok(json!({"type": "unbridge", "a": a, "b": b})).await["reply"], "unbridged");
    send_stream(&caller, media_addr(a_port), 3, 0x1111).await;
    assert!(receive(&callee, 1).await.is_empty());
    assert_eq!(control.stats(&a).await, (54, 50));
}

#[tokio::test]
async fn symmetric_rtp_latches_to_the_source_and_honours_hold() {
    let media = MediaProcess::start(&["--rtp-ports", "29300-29399"]);
    let mut control = media.control().await;
    // Each peer advertises one port in SDP but sends from another (a NAT would do this).
    let (caller, _) = udp().await;
    let (caller_decoy, caller_sdp_port) = udp().await;
    let (callee, _) = udp().await;
    let (callee_decoy, callee_sdp_port) = udp().await;
    let (a, a_port, _) = control.create("call-2", Some(&peer_sdp(caller_sdp_port, 101, "")), &[]).await;
    let (b, b_port, _) = control.create("call-2", None, &[]).await;
    control
        .ok(json!({"type": "update_endpoint", "endpoint_id": b, "remote_sdp": peer_sdp(callee_sdp_port, 101, "")}))
        .await;
    control.ok(json!({"type": "bridge", "a": a, "b": b})).await;

    // The callee speaks first, from its real port: B latches it. Before the caller has sent
    // anything, A still sends to the caller's SDP address (the decoy).
    send_stream(&callee, media_addr(b_port), 5, 0x3333).await;
    assert_eq!(receive(&caller_decoy, 5).await.len(), 5, "before latching: the SDP address");
    // The caller speaks from its real port: A latches it, and B's traffic to the callee goes
    // to the callee's latched source, not its SDP port.
    send_stream(&caller, media_addr(a_port), 50, 0x4444).await;
    assert_stream(&receive(&callee, 50).await, 50, 0x4444, media_addr(b_port));
    assert!(receive(&callee_decoy, 1).await.is_empty(), "nothing to the SDP port once latched");
    send_stream(&callee, media_addr(b_port), 50, 0x3333).await;
    assert_stream(&receive(&caller, 50).await, 50, 0x3333, media_addr(a_port));
    assert!(receive(&caller_decoy, 1).await.is_empty());

    // A stranger's packets to A are neither counted nor relayed.
    let (stranger, _) = udp().await;
    let before = control.stats(&a).await;
    send_stream(&stranger, media_addr(a_port), 5, 0x6666).await;
    assert!(receive(&callee, 1).await.is_empty(), "injected RTP is dropped");
    assert_eq!(control.stats(&a).await, before);

    // The caller puts the call on hold (re-offer with sendonly): we answer recvonly and stop
    // sending to it, while its music on hold still reaches the callee.
    let hold = peer_sdp(caller_sdp_port, 101, "a=sendonly\r\n").replace("o=peer 1 1", "o=peer 1 2");
    let answer = control.ok(json!({"type": "update_endpoint", "endpoint_id": a, "remote_sdp": hold})).await;
    let answer = answer["local_sdp"].as_str().unwrap();
    assert!(answer.contains("a=recvonly") && answer.contains(&format!("m=audio {a_port} ")), "{answer}");
    assert!(answer.contains(" 2 IN IP4 127.0.0.1"), "o= version bumped: {answer}");
    send_stream(&callee, media_addr(b_port), 5, 0x3333).await;
    assert!(receive(&caller, 1).await.is_empty(), "nothing sent to a leg on hold");
    send_stream(&caller, media_addr(a_port), 5, 0x4444).await;
    assert_eq!(receive(&callee, 5).await.len(), 5, "the holding side's audio still flows");
    // Resume.
    let resume = peer_sdp(caller_sdp_port, 101, "a=sendrecv\r\n").replace("o=peer 1 1", "o=peer 1 3");
    let answer = control.ok(json!({"type": "update_endpoint", "endpoint_id": a, "remote_sdp": resume})).await;
    assert!(answer["local_sdp"].as_str().unwrap().contains("a=sendrecv"));
    send_stream(&callee, media_addr(b_port), 5, 0x3333).await;
    assert_eq!(receive(&caller, 5).await.len(), 5, "audio flows again after resume");
}

#[tokio::test]
async fn pcmu_and_pcma_legs_are_transcoded() {
    let media = MediaProcess::start(&["--rtp-ports", "29400-29449"]);
    let mut control = media.control().await;
    let (caller, caller_port) = udp().await;
    let (callee, callee_port) = udp().await;
    let (a, a_port, _) = control.create("call-3", Some(&peer_sdp(caller_port, 101, "")), &[]).await;
    let (b, b_port, _) = control.create("call-3", None, &["PCMA"]).await;
    let pcma_answer =
        peer_sdp(callee_port, 101, "").replace("RTP/AVP 0 101", "RTP/AVP 8 101").replace("0 PCMU", "8 PCMA");
    control.ok(json!({"type": "update_endpoint", "endpoint_id": b, "remote_sdp": pcma_answer})).await;
    control.ok(json!({"type": "bridge", "a": a, "b": b})).await;
    // µ-law silence (0xFF) arrives as A-law silence (0xD5) with payload type 8.
    caller.send_to(&rtp(0, 1, 0, 7, &[0xff; 160]), media_addr(a_port)).await.unwrap();
    let got = receive(&callee, 1).await;
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].0[1], &got[0].0[12..]), (8, &[0xd5; 160][..]));
    callee.send_to(&rtp(8, 1, 0, 8, &[0xd5; 160]), media_addr(b_port)).await.unwrap();
    let got = receive(&caller, 1).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0[1], 0);
}

#[tokio::test]
async fn silent_endpoint_reports_rtp_timeout() {
    let media = MediaProcess::start(&["--rtp-ports", "29450-29499", "--rtp-timeout-secs", "1"]);
    let mut control = media.control().await;
    let (_peer, peer_port) = udp().await;
    let (talker, talker_port) = udp().await;
    let (silent, _, _) = control.create("call-4", Some(&peer_sdp(peer_port, 101, "")), &[]).await;
    let (busy, busy_port, _) = control.create("call-4", Some(&peer_sdp(talker_port, 101, "")), &[]).await;
    let keep_talking = tokio::spawn(async move {
        for i in 0..150u16 {
            let _ = talker.send_to(&rtp(0, i, 0, 9, &[0xff; 160]), media_addr(busy_port)).await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let event = control.event("rtp_timeout", Duration::from_secs(5)).await.expect("rtp_timeout event");
    assert_eq!((event["endpoint_id"].as_str(), event["call_uuid"].as_str()), (Some(silent.as_str()), Some("call-4")));
    // Once only, and not for the endpoint that receives RTP.
    assert!(control.event("rtp_timeout", Duration::from_millis(2000)).await.is_none(), "{:?}", control.events);
    keep_talking.abort();
    let _ = busy;
}

#[tokio::test]
async fn destroy_endpoint_frees_its_port() {
    // A range with a single RTP port.
    let media = MediaProcess::start(&["--rtp-ports", "29500-29501"]);
    let mut control = media.control().await;
    let (a, port, _) = control.create("call-5", None, &[]).await;
    assert_eq!(port, 29500);
    let exhausted = control.ask(json!({"type": "create_endpoint", "call_uuid": "call-5"})).await;
    assert_eq!(exhausted["code"], "exhausted", "{exhausted}");
    assert_eq!(control.ok(json!({"type": "destroy_endpoint", "endpoint_id": a})).await["reply"], "destroyed");
    drop(std::net::UdpSocket::bind(("127.0.0.1", port)).expect("the port is free again"));
    let (_, again, _) = control.create("call-5", None, &[]).await;
    assert_eq!(again, port);
    // Endpoints of a closed control connection are released too.
    drop(control);
    let mut control = media.control().await;
    let mut freed = false;
    for _ in 0..50 {
        let reply = control.ask(json!({"type": "create_endpoint", "call_uuid": "call-6"})).await;
        if reply["status"] == "ok" {
            freed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(freed, "the closed connection's endpoint was released");
}

/// An RTP socket on an even port and its RTCP neighbour.
async fn rtp_rtcp_pair() -> (UdpSocket, UdpSocket, u16) {
    loop {
        let (rtp, port) = udp().await;
        if port % 2 == 0
            && let Ok(rtcp) = UdpSocket::bind(("127.0.0.1", port + 1)).await
        {
            return (rtp, rtcp, port);
        }
    }
}

#[tokio::test]
async fn rtcp_reports_are_sent_read_and_give_the_round_trip_time() {
    use domains::rtcp::{self, RtcpPacket};
    let media = MediaProcess::start(&["--rtp-ports", "29600-29699", "--rtcp-interval-ms", "300"]);
    let mut control = media.control().await;
    let (peer, peer_rtcp, peer_port) = rtp_rtcp_pair().await;
    let (ep, ep_port, _) = control.create("call-rtcp", Some(&peer_sdp(peer_port, 101, "")), &[]).await;
    // 20 packets, 4 of them lost, and the peer's sender report.
    for i in 0..20u16 {
        if i % 5 != 4 {
            peer.send_to(&rtp(0, i, 160 * u32::from(i), 0xabcd, &payload(i)), media_addr(ep_port)).await.unwrap();
        }
    }
    let our_sr_ntp = rtcp::ntp_from_unix_micros(1_800_000_000_000_000);
    let info = rtcp::SenderInfo { ntp: our_sr_ntp, rtp_timestamp: 3040, packets: 16, octets: 2752 };
    peer_rtcp.send_to(&rtcp::build(0xabcd, Some(info), &[], "peer"), media_addr(ep_port + 1)).await.unwrap();
    // voxbridge's report arrives on the peer's RTCP port, about the peer's stream.
    let mut buf = [0u8; 1500];
    let (sr, block) = loop {
        let (n, from) =
            timeout(Duration::from_secs(3), peer_rtcp.recv_from(&mut buf)).await.expect("an RTCP report").unwrap();
        assert_eq!(from, media_addr(ep_port + 1), "sent from the RTCP port");
        let packets = rtcp::parse(&buf[..n]).unwrap();
        assert!(packets.iter().any(|p| matches!(p, RtcpPacket::Other { packet_type: 202 })), "with an SDES");
        if let Some(RtcpPacket::SenderReport { ssrc, info, reports }) = packets.first()
            && let Some(b) = reports.first()
        {
            break ((*ssrc, *info), *b);
        }
    };
    assert_eq!((block.ssrc, block.cumulative_lost, block.highest_seq), (0xabcd, 3, 18), "{block:?}");
    assert_eq!(block.lsr, rtcp::ntp_middle(our_sr_ntp), "LSR names the peer's SR");
    // The peer answers with a receiver report about voxbridge's SR 150 ms later, saying it held
    // it 100 ms: the round trip is the other 50 ms (and the scheduling around them).
    tokio::time::sleep(Duration::from_millis(150)).await;
    let reply =
        rtcp::ReportBlock { ssrc: sr.0, lsr: rtcp::ntp_middle(sr.1.ntp), dlsr: 65536 / 10, ..Default::default() };
    peer_rtcp.send_to(&rtcp::build(0xabcd, None, &[reply], "peer"), media_addr(ep_port + 1)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let destroyed = control.ok(json!({"type": "destroy_endpoint", "endpoint_id": ep})).await;
    let q = &destroyed["quality"];
    assert_eq!((q["packets_received"].as_u64(), q["packets_lost"].as_u64()), (Some(16), Some(3)), "{q}");
    let rtt = q["rtt_ms"].as_f64().expect("a round-trip time");
    assert!((40.0..150.0).contains(&rtt), "{q}");
}
