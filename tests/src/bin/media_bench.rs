//! The media benchmark (`bench/media`), not a test: drives a release `voxbridge-media` over its
//! control protocol on loopback and reports
//! - bridged G.711 calls held with RTP both ways at 50 packets/s per direction: CPU time per
//!   relayed packet and RSS per call, at each step of concurrent calls;
//! - the CPU per call of transcoding PCMU to Opus, G.722 and L16 at 8 and 16 kHz (against plain
//!   relaying);
//! - WebSocket audio: frame pacing jitter (|interval − 20 ms|, p50/p99) at 8 and 16 kHz, and
//!   the time from `connect_websocket` to the first frame, with relayed calls running beside;
//! - the mixer: CPU per conference of 3, 10 and 30 members all talking.
//!
//! CPU is the media process's utime+stime (/proc) over the measuring window; the generator runs
//! on the same two cores, as SIPp does in `bench/sip-load`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::json;
use tokio::net::UdpSocket;
use vbtest::media_process::{Control, MediaProcess};

fn env_list(name: &str, default: &str) -> Vec<usize> {
    std::env::var(name).unwrap_or_else(|_| default.into()).split_whitespace().filter_map(|s| s.parse().ok()).collect()
}

fn cpu_ms(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces): utime is 14th, stime 15th overall.
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    // `after` starts at field 3 (state): utime is field 14, stime 15.
    let ticks = field(11) + field(12);
    ticks * 1000.0 / 100.0
}

fn rss_kib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

fn sdp(port: u16, codec: &str) -> String {
    let (pt, map) = match codec {
        "opus" => (111, "opus/48000/2"),
        "G722" => (9, "G722/8000"),
        "L16" => (96, "L16/8000"),
        "L16/16000" => (97, "L16/16000"),
        _ => (0, "PCMU/8000"),
    };
    format!(
        "v=0\r\no=bench 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {port} RTP/AVP {pt}\r\n\
         a=rtpmap:{pt} {map}\r\na=ptime:20\r\na=sendrecv\r\n"
    )
}

/// One far end: its socket, the media port it sends to, and what it sends.
struct Peer {
    sock: Arc<UdpSocket>,
    to: SocketAddr,
    pt: u8,
    payload: Arc<Vec<u8>>,
    ticks: u32,
}

/// Encoded 20 ms of a 440 Hz tone in `codec`.
fn frame(codec: &str) -> (u8, Vec<u8>, u32) {
    let pcm: Vec<i16> =
        (0..160).map(|i| (6000.0 * (2.0 * std::f32::consts::PI * 440.0 * i as f32 / 8000.0).sin()) as i16).collect();
    match codec {
        "opus" => {
            let mut e = opus::Encoder::new(8000, opus::Channels::Mono, opus::Application::Voip).unwrap();
            let mut buf = [0u8; 400];
            let n = e.encode(&pcm, &mut buf).unwrap();
            (111, buf[..n].to_vec(), 960)
        }
        "G722" => {
            let wide: Vec<i16> = pcm.iter().flat_map(|s| [*s, *s]).collect();
            let mut e = ezk_g722::libg722::encoder::Encoder::new(ezk_g722::libg722::Bitrate::Mode1_64000, false, false);
            (9, e.encode(&wide), 160)
        }
        "L16" => (96, pcm.iter().flat_map(|s| s.to_be_bytes()).collect(), 160),
        "L16/16000" => (97, pcm.iter().flat_map(|s| [*s, *s]).flat_map(|s| s.to_be_bytes()).collect(), 320),
        _ => {
            let mut out = Vec::new();
            domains::g711::encode(false, &pcm, &mut out);
            (0, out, 160)
        }
    }
}

async fn peer_socket() -> (Arc<UdpSocket>, u16) {
    let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let _ = socket2::SockRef::from(&s).set_recv_buffer_size(1 << 16);
    // Peer sockets take ephemeral ports (32768 and up), clear of the media range below.
    let port = s.local_addr().unwrap().port();
    (Arc::new(s), port)
}

/// An endpoint negotiated with a far end speaking `codec`.
async fn endpoint(ctl: &mut Control, call: &str, codec: &str) -> (String, Peer) {
    let (sock, port) = peer_socket().await;
    let (id, media_port, _) = ctl.create(call, Some(&sdp(port, codec)), &[]).await;
    let (pt, payload, ticks) = frame(codec);
    let to = SocketAddr::from(([127, 0, 0, 1], media_port));
    (id, Peer { sock, to, pt, payload: Arc::new(payload), ticks })
}

/// Sends from every peer every 20 ms and counts what every peer receives, for `secs`.
async fn traffic(peers: &[Peer], secs: f64, received: Arc<AtomicU64>) -> u64 {
    let mut readers = Vec::new();
    for p in peers {
        let (sock, count) = (p.sock.clone(), received.clone());
        readers.push(tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            while sock.recv_from(&mut buf).await.is_ok() {
                count.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let mut clock = tokio::time::interval(Duration::from_millis(20));
    let start = Instant::now();
    let mut sent = 0u64;
    let mut i = 0u32;
    let mut packet = Vec::with_capacity(1500);
    while start.elapsed().as_secs_f64() < secs {
        clock.tick().await;
        for (n, p) in peers.iter().enumerate() {
            packet.clear();
            packet.extend([0x80, p.pt]);
            packet.extend((i as u16).to_be_bytes());
            packet.extend(i.wrapping_mul(p.ticks).to_be_bytes());
            packet.extend((n as u32 + 1).to_be_bytes());
            packet.extend_from_slice(&p.payload);
            if p.sock.try_send_to(&packet, p.to).is_ok() {
                sent += 1;
            }
        }
        i = i.wrapping_add(1);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    for r in readers {
        r.abort();
    }
    sent
}

struct Measured {
    cpu_ms: f64,
    secs: f64,
    sent: u64,
    received: u64,
}

/// Runs traffic on `peers`: 2 s of warm-up, then `secs` measured.
async fn measure(pid: u32, peers: &[Peer], secs: f64) -> Measured {
    traffic(peers, 2.0, Arc::new(AtomicU64::new(0))).await;
    let received = Arc::new(AtomicU64::new(0));
    let (cpu0, t0) = (cpu_ms(pid), Instant::now());
    let sent = traffic(peers, secs, received.clone()).await;
    Measured {
        cpu_ms: cpu_ms(pid) - cpu0,
        secs: t0.elapsed().as_secs_f64(),
        sent,
        received: received.load(Ordering::Relaxed),
    }
}

/// `n` bridged calls: an endpoint speaking PCMU and one speaking `codec`, bridged.
async fn bridged_calls(ctl: &mut Control, n: usize, codec: &str) -> (Vec<String>, Vec<Peer>) {
    let (mut ids, mut peers) = (Vec::new(), Vec::new());
    for c in 0..n {
        let call = format!("bench-{c}");
        let (a, pa) = endpoint(ctl, &call, "PCMU").await;
        let (b, pb) = endpoint(ctl, &call, codec).await;
        ctl.ok(json!({"type": "bridge", "a": a, "b": b})).await;
        ids.extend([a, b]);
        peers.extend([pa, pb]);
    }
    (ids, peers)
}

async fn destroy(ctl: &mut Control, ids: Vec<String>) {
    for id in ids {
        ctl.ok(json!({"type": "destroy_endpoint", "endpoint_id": id})).await;
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted.get(((sorted.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or(f64::NAN)
}

/// One WebSocket stream at `rate` for `secs`: the first frame's delay after the handshake
/// (the leg's answer) and after the command, and the pacing jitter.
async fn websocket(ctl: &mut Control, rate: u32, secs: f64) -> (f64, f64, f64, f64, usize) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (id, peer) = endpoint(ctl, "bench-ws", "PCMU").await;
    let started = Instant::now();
    ctl.ok(json!({"type": "connect_websocket", "endpoint_id": id, "uri": format!("ws://127.0.0.1:{port}/"),
        "content_type": format!("audio/l16;rate={rate}")}))
        .await;
    let (tcp, _) = listener.accept().await.unwrap();
    let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
    let open = Instant::now();
    let feeding =
        tokio::spawn(
            async move { traffic(std::slice::from_ref(&peer), secs + 1.0, Arc::new(AtomicU64::new(0))).await },
        );
    let mut arrivals = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(secs);
    while let Ok(Some(Ok(msg))) = tokio::time::timeout_at(deadline, ws.next()).await {
        if msg.is_binary() {
            arrivals.push(Instant::now());
        }
    }
    feeding.abort();
    destroy(ctl, vec![id]).await;
    let first_ms = arrivals.first().map_or(f64::NAN, |t| t.duration_since(started).as_secs_f64() * 1000.0);
    let after_open_ms = arrivals.first().map_or(f64::NAN, |t| t.duration_since(open).as_secs_f64() * 1000.0);
    let mut jitter: Vec<f64> =
        arrivals.windows(2).map(|w| (w[1].duration_since(w[0]).as_secs_f64() * 1000.0 - 20.0).abs()).collect();
    jitter.sort_by(f64::total_cmp);
    (after_open_ms, first_ms, percentile(&jitter, 0.5), percentile(&jitter, 0.99), arrivals.len())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let bin = std::env::var("MEDIA_BIN").unwrap_or_else(|_| "target/release/voxbridge-media".into());
    let secs: f64 = std::env::var("STEP_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(10.0);
    let steps = env_list("CALLS", "250 500 1000 1500");
    let media = MediaProcess::start_with(bin.into(), &["--rtp-ports", "10000-32767", "--rtp-timeout-secs", "0"]);
    let pid = media.child.id();
    let mut ctl = media.control().await;
    println!("media process {} (pid {pid}); {secs} s per step", media.ready_line.trim());

    // ONLY=relay,transcoding,websocket,conferences runs some sections.
    let only = std::env::var("ONLY").unwrap_or_default();
    let run = |section: &str| only.is_empty() || only.split(',').any(|s| s == section);
    if run("relay") {
        println!("\n== bridged G.711 calls, RTP both ways (50 packets/s each direction)");
        println!(
            "{:>6} {:>10} {:>9} {:>12} {:>9} {:>12}",
            "calls", "pkts/s", "loss %", "µs/packet", "CPU %", "RSS KiB/call"
        );
        for &n in &steps {
            let rss0 = rss_kib(pid);
            let (ids, peers) = bridged_calls(&mut ctl, n, "PCMU").await;
            let rss_per_call = (rss_kib(pid) - rss0) / n as f64;
            let m = measure(pid, &peers, secs).await;
            let relayed = m.received as f64;
            let loss = 100.0 * (1.0 - relayed / m.sent.max(1) as f64);
            let us_per_packet = m.cpu_ms * 1000.0 / relayed.max(1.0);
            println!(
                "{n:>6} {:>10.0} {loss:>9.2} {us_per_packet:>12.2} {:>9.1} {rss_per_call:>12.1}",
                relayed / m.secs,
                m.cpu_ms / m.secs / 10.0
            );
            destroy(&mut ctl, ids).await;
        }
    }
    if run("transcoding") {
        println!("\n== transcoding, 100 calls (CPU per call, against plain relaying)");
        let (ids, peers) = bridged_calls(&mut ctl, 100, "PCMU").await;
        let base = measure(pid, &peers, secs).await;
        destroy(&mut ctl, ids).await;
        let base_per_call = base.cpu_ms / base.secs / 100.0;
        println!("  PCMU<->PCMU  {:>8.3} ms CPU per call-second", base_per_call);
        for codec in ["opus", "G722", "L16", "L16/16000"] {
            let (ids, peers) = bridged_calls(&mut ctl, 100, codec).await;
            let m = measure(pid, &peers, secs).await;
            destroy(&mut ctl, ids).await;
            let per_call = m.cpu_ms / m.secs / 100.0;
            println!(
                "  PCMU<->{codec:<9} {per_call:>8.3} ms CPU per call-second ({:.3} ms for the transcoding; loss {:.2} %)",
                per_call - base_per_call,
                100.0 * (1.0 - m.received as f64 / m.sent.max(1) as f64)
            );
        }
    }
    if run("websocket") {
        let load = env_list("WS_LOAD_CALLS", "500").first().copied().unwrap_or(500);
        for calls in [0, load] {
            println!("\n== WebSocket audio, with {calls} bridged calls relaying beside it");
            let (ids, peers) = bridged_calls(&mut ctl, calls, "PCMU").await;
            let peers = Arc::new(peers);
            let background = {
                let peers = peers.clone();
                tokio::spawn(async move { traffic(&peers, 3600.0, Arc::new(AtomicU64::new(0))).await })
            };
            for rate in [8000, 16000] {
                let (open, first, p50, p99, frames) = websocket(&mut ctl, rate, secs).await;
                println!(
                    "  {rate:>5} Hz: first frame {open:.1} ms after the handshake ({first:.1} ms after connect_websocket); \
                 pacing jitter p50 {p50:.3} ms, p99 {p99:.3} ms ({frames} frames)"
                );
            }
            background.abort();
            destroy(&mut ctl, ids).await;
        }
    }
    if run("conferences") {
        println!("\n== conferences (every member talking)");
        for size in [3usize, 10, 30] {
            let conferences = 30 / size.min(30) * 2;
            let (mut ids, mut peers) = (Vec::new(), Vec::new());
            for c in 0..conferences {
                for m in 0..size {
                    let (id, peer) = endpoint(&mut ctl, &format!("conf-{c}"), "PCMU").await;
                    ctl.ok(json!({"type": "conference_join", "endpoint_id": id, "conference": format!("bench-{c}"),
                    "member": format!("m{c}-{m}")}))
                        .await;
                    ids.push(id);
                    peers.push(peer);
                }
            }
            let m = measure(pid, &peers, secs).await;
            let per_conference = m.cpu_ms / m.secs / conferences as f64;
            println!(
                "  {size:>2} members: {per_conference:.2} ms CPU per conference-second ({:.1} µs per member per 20 ms frame), {conferences} conferences",
                per_conference * 1000.0 / 50.0 / size as f64
            );
            destroy(&mut ctl, ids).await;
        }
    }
}
