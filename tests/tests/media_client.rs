//! The control plane's media client and supervisor against the real `voxbridge-media`: the
//! `MediaControl` calls work end to end, errors map to `MediaError`, and a killed media process
//! is reported lost, restarted, and reported ready again.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::broadcast;
use tokio::time::timeout;
use vbtest::bin;
use voxbridge::media::supervisor::MediaSupervisor;
use voxbridge::media::{MediaControl, MediaError, MediaEvent};

fn peer_sdp(port: u16) -> String {
    format!(
        "v=0\r\no=peer 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
    )
}

fn sdp_port(sdp: &str) -> u16 {
    let m = sdp.lines().find_map(|l| l.strip_prefix("m=audio ")).expect("m=audio line");
    m.split_whitespace().next().unwrap().parse().unwrap()
}

fn quiet_env(ports: &str) -> Vec<(String, String)> {
    vec![
        ("VOXBRIDGE_MEDIA_RTP_PORTS".into(), ports.into()),
        ("RUST_LOG".into(), std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into())),
    ]
}

async fn next_event(events: &mut broadcast::Receiver<MediaEvent>, within: Duration) -> Option<MediaEvent> {
    timeout(within, events.recv()).await.ok()?.ok()
}

/// Creates two endpoints, bridges them, relays a few packets and checks the counters.
async fn call_through(media: &dyn MediaControl, call: &str) {
    let caller = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let callee = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let a = media.create_endpoint(call, Some(&peer_sdp(caller.local_addr().unwrap().port())), &[]).await.unwrap();
    let b = media.create_endpoint(call, None, &["PCMU".to_owned()]).await.unwrap();
    assert!(b.local_sdp.contains("RTP/AVP 0 8 101"), "{}", b.local_sdp);
    let ours = media.update_endpoint(&b.id, &peer_sdp(callee.local_addr().unwrap().port())).await.unwrap();
    assert_eq!(ours, b.local_sdp);
    media.bridge(&a.id, &b.id).await.unwrap();
    let a_addr = SocketAddr::from(([127, 0, 0, 1], sdp_port(&a.local_sdp)));
    for seq in 0..10u16 {
        let mut p = vec![0x80, 0];
        p.extend(seq.to_be_bytes());
        p.extend([0, 0, 0, 0, 0, 0, 0, 1]);
        p.extend([0xffu8; 160]);
        caller.send_to(&p, a_addr).await.unwrap();
    }
    let mut buf = [0u8; 2048];
    for _ in 0..10 {
        timeout(Duration::from_secs(2), callee.recv_from(&mut buf)).await.expect("relayed RTP").unwrap();
    }
    let stats = media.endpoint_stats(&a.id).await.unwrap();
    assert_eq!((stats.rx_packets, stats.tx_packets), (10, 0));
    assert_eq!(media.endpoint_stats(&b.id).await.unwrap().tx_packets, 10);
    media.unbridge(&a.id, &b.id).await.unwrap();
    media.destroy_endpoint(&a.id).await.unwrap();
    media.destroy_endpoint(&b.id).await.unwrap();
    media.destroy_endpoint(&a.id).await.expect("destroying twice is not an error");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supervisor_drives_the_media_process_and_restarts_it() {
    let media = MediaSupervisor::start_local(bin("voxbridge-media"), quiet_env("29600-29699")).await.expect("starts");
    assert!(media.is_available());
    let mut events = media.events();
    call_through(media.as_ref(), "call-1").await;

    // Errors keep their meaning across the socket.
    let refused = media.create_endpoint("call-1", Some("v=0\r\nm=audio 1 RTP/AVP 0\r\n"), &[]).await;
    assert!(matches!(refused, Err(MediaError::Negotiation(_))), "{refused:?}");
    let missing = media.bridge("nope", "nada").await;
    assert!(
        matches!(&missing, Err(MediaError::Refused { code, message }) if format!("{code:?}") == "NotFound" && message.contains("nope")),
        "{missing:?}"
    );

    // Kill the media process: lost, then restarted and ready again.
    let pid = media.child_pid().expect("a child runs");
    let killed = std::process::Command::new("kill").args(["-9", &pid.to_string()]).status().unwrap();
    assert!(killed.success());
    assert_eq!(next_event(&mut events, Duration::from_secs(5)).await, Some(MediaEvent::ProcessLost));
    assert!(!media.is_available() || media.child_pid().is_some_and(|p| p != pid));
    assert_eq!(next_event(&mut events, Duration::from_secs(10)).await, Some(MediaEvent::ProcessReady));
    assert!(media.is_available());
    let new_pid = media.child_pid().expect("a new child runs");
    assert_ne!(new_pid, pid);
    call_through(media.as_ref(), "call-2").await;

    // Dropping the supervisor kills its child.
    drop(media);
    let mut gone = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let alive = std::process::Command::new("kill")
            .args(["-0", &new_pid.to_string()])
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap()
            .success();
        if !alive || std::fs::read_to_string(format!("/proc/{new_pid}/stat")).is_ok_and(|s| s.contains(") Z ")) {
            gone = true;
            break;
        }
    }
    assert!(gone, "media process {new_pid} outlived its supervisor");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_media_node_is_reconnected() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let start = |port: &str| {
        let mut child = Command::new(bin("voxbridge-media"))
            .env("VOXBRIDGE_MEDIA_CONTROL_ADDR", format!("127.0.0.1:{port}"))
            .envs(quiet_env("29700-29799"))
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let url = line.split_whitespace().find_map(|w| w.strip_prefix("control=")).unwrap().to_owned();
        (child, url)
    };
    let (mut node, url) = start("0");
    let media = MediaSupervisor::connect_remote(url.clone());
    let mut events = media.events();
    assert!(media.wait_available(Duration::from_secs(5)).await);
    assert_eq!(next_event(&mut events, Duration::from_secs(5)).await, Some(MediaEvent::ProcessReady));
    assert_eq!(media.child_pid(), None);
    call_through(media.as_ref(), "call-3").await;
    node.kill().unwrap();
    node.wait().unwrap();
    assert_eq!(next_event(&mut events, Duration::from_secs(5)).await, Some(MediaEvent::ProcessLost));
    assert!(!media.is_available());
    assert!(matches!(media.create_endpoint("c", None, &[]).await, Err(MediaError::Unavailable)));
    // The node comes back on the same address.
    let port = url.rsplit(':').next().unwrap().to_owned();
    let (mut node, _) = start(&port);
    assert_eq!(next_event(&mut events, Duration::from_secs(10)).await, Some(MediaEvent::ProcessReady));
    call_through(media.as_ref(), "call-4").await;
    node.kill().unwrap();
    let _ = node.wait();
}
