//! Kamailio (Debian's `kamailio` package) as a real SIP proxy in front of voxbridge or of a far
//! end: the configurations in `tests/kamailio/` with their ports filled in.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Kamailio {
    child: Child,
    /// The UDP port it listens on (127.0.0.1).
    pub port: u16,
    dir: crate::tempdir::Dir,
}

impl Kamailio {
    /// Starts `config` (a file in `tests/kamailio/`) listening on a free port and relaying to
    /// `127.0.0.1:target_port`.
    pub fn start(config: &str, target_port: u16) -> Kamailio {
        Self::start_with(config, target_port, &[])
    }

    /// As [`Kamailio::start`], with further `@NAME@` placeholders filled in.
    pub fn start_with(config: &str, target_port: u16, fill: &[(&str, &str)]) -> Kamailio {
        Self::start_at(crate::sipp::free_port(), config, target_port, fill)
    }

    /// As [`Kamailio::start_with`], listening on `port` (for state that must name it first).
    pub fn start_at(port: u16, config: &str, target_port: u16, fill: &[(&str, &str)]) -> Kamailio {
        let path = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/kamailio")).join(config);
        let text = std::fs::read_to_string(&path).expect("kamailio config");
        let dir = crate::tempdir::Dir::new();
        let cfg = dir.path().join("kamailio.cfg");
        let mut text =
            text.replace("@LISTEN_PORT@", &port.to_string()).replace("@TARGET_PORT@", &target_port.to_string());
        for (name, value) in fill {
            text = text.replace(name, value);
        }
        std::fs::write(&cfg, text).expect("write kamailio config");
        let log = std::fs::File::create(dir.path().join("kamailio.log")).expect("log file");
        let child = Command::new("kamailio")
            .arg("-f")
            .arg(&cfg)
            .args(["-DD", "-E", "-n", "1", "-m", "64", "-M", "8", "-x", "tlsf", "-X", "tlsf", "-Y"])
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("kamailio starts (apt-get install kamailio)");
        let k = Kamailio { child, port, dir };
        // Ready once its UDP port is taken.
        for _ in 0..100 {
            if std::net::UdpSocket::bind(("127.0.0.1", port)).is_err() {
                return k;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("kamailio did not start: {}", k.log());
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("kamailio.log")).unwrap_or_default()
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        // SIGTERM lets the main process take its children down with it.
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        for _ in 0..40 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
