//! SIPp (Debian's `sip-tester`) as a real SIP peer: the tests' callers and far ends. Every run
//! gets free loopback ports (signalling and media) and its own log files.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn scenario(name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/sipp")).join(name)
}

/// A UDP port free at the time of asking (and its TCP twin), never one this test process
/// handed out before: tests running side by side each start their peers (SIPp, Kamailio) a
/// moment after asking, and must not be given the same port in that moment.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let port = udp.local_addr().expect("addr").port();
        // Media uses port and port+2 (RTP/RTCP pairs); keep clear of the top.
        if port < 60000 && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            // SIPp's media takes the port above its media port and the next pair too.
            let block = port..=port + 3;
            let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
            if !given.iter().any(|g| block.contains(g) || (*g..=*g + 3).contains(&port)) {
                given.push(port);
                return port;
            }
        }
    }
}

pub struct Sipp {
    child: Child,
    pub port: u16,
    pub media_port: u16,
    pub dir: crate::tempdir::Dir,
}

pub struct Finished {
    pub success: bool,
    pub log: String,
    pub messages: String,
    pub errors: String,
}

impl Sipp {
    fn spawn(scenario_name: &str, args: &[String]) -> Sipp {
        assert!(which("sipp"), "sipp is not installed (apt-get install sip-tester)");
        let dir = crate::tempdir::Dir::new();
        let port = free_port();
        let media_port = free_port();
        let mut cmd = Command::new("sipp");
        cmd.arg("-sf")
            .arg(scenario(scenario_name))
            .args(["-i", "127.0.0.1", "-p", &port.to_string(), "-mp", &media_port.to_string()])
            .args(["-trace_logs", "-log_file"])
            .arg(dir.path().join("log"))
            .args(["-trace_msg", "-message_file"])
            .arg(dir.path().join("messages"))
            .args(["-trace_err", "-error_file"])
            .arg(dir.path().join("errors"))
            .arg("-nostdin")
            .args(args)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd.spawn().expect("sipp starts");
        Sipp { child, port, media_port, dir }
    }

    /// A far end answering one call with `scenario_name` (e.g. `uas_answer.xml`).
    pub fn uas(scenario_name: &str, extra: &[&str]) -> Sipp {
        let mut args: Vec<String> =
            ["-m", "1", "-timeout", "60s", "-timeout_error"].iter().map(|s| s.to_string()).collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        let s = Self::spawn(scenario_name, &args);
        std::thread::sleep(Duration::from_millis(200)); // let it bind before anyone calls
        s
    }

    /// A caller placing one call to `target` (host:port) for `domain`.
    pub fn uac(scenario_name: &str, target: &str, domain: &str, extra: &[&str]) -> Sipp {
        let mut args: Vec<String> = ["-m", "1", "-timeout", "40s", "-timeout_error", "-key", "domain", domain]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        args.push(target.to_owned());
        Self::spawn(scenario_name, &args)
    }

    /// Waits for SIPp to end (killing it after `within`); exit code 0 means every call passed.
    /// A caller playing SIPp's PCMA speech capture (7 s) then its RFC 2833 digit `1` at
    /// voxbridge (`uac_invite_pcap.xml`).
    pub fn pcap_caller(target: &str, domain: &str) -> Sipp {
        Sipp::uac(
            "uac_invite_pcap.xml",
            target,
            domain,
            &[
                "-key",
                "audio_pcap",
                "/usr/share/sip-tester/g711a.pcap",
                "-key",
                "dtmf_pcap",
                "/usr/share/sip-tester/dtmf_2833_1.pcap",
            ],
        )
    }

    pub async fn finish(mut self, within: Duration) -> Finished {
        let deadline = Instant::now() + within;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(50)).await,
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break None;
                }
            }
        };
        let read = |name: &str| std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
        Finished {
            success: status.is_some_and(|s| s.success()),
            log: read("log"),
            messages: read("messages"),
            errors: read("errors"),
        }
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Sipp {
    fn drop(&mut self) {
        self.kill();
    }
}

fn which(bin: &str) -> bool {
    std::env::var_os("PATH").map(|p| std::env::split_paths(&p).any(|d| d.join(bin).exists())).unwrap_or(false)
}
