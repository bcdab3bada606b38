//! A `voxbridge-media` process driven directly over its control protocol, for the media tests
//! and the media benchmark: started on a loopback control port, killed on drop.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::bin;

/// A running `voxbridge-media`, killed on drop.
pub struct MediaProcess {
    pub child: Child,
    pub url: String,
    pub ready_line: String,
}

impl MediaProcess {
    pub fn start(args: &[&str]) -> MediaProcess {
        Self::start_with(bin("voxbridge-media"), args)
    }

    /// Starts the media binary at `path`.
    pub fn start_with(path: std::path::PathBuf, args: &[&str]) -> MediaProcess {
        let mut child = Command::new(path)
            .args(args)
            .env("VOXBRIDGE_MEDIA_CONTROL_ADDR", "127.0.0.1:0")
            .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
            .stdout(Stdio::piped())
            .spawn()
            .expect("voxbridge-media starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let url = line.split_whitespace().find_map(|w| w.strip_prefix("control=")).expect("ready line").to_owned();
        MediaProcess { child, url, ready_line: line }
    }

    pub async fn control(&self) -> Control {
        let (ws, _) = tokio_tungstenite::connect_async(&self.url).await.expect("control socket");
        let mut control = Control { ws, events: VecDeque::new(), next_id: 100 };
        let welcome = control.ask(json!({"type": "hello", "protocol": 1})).await;
        assert_eq!(welcome["reply"], "welcome", "{welcome}");
        control
    }
}

impl Drop for MediaProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One control connection; events that arrive while waiting for a reply are kept.
pub struct Control {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub events: VecDeque<Value>,
    next_id: u64,
}

impl Control {
    pub async fn send_text(&mut self, text: String) -> Value {
        self.ws.send(Message::Text(text.into())).await.unwrap();
        loop {
            let frame = timeout(Duration::from_secs(5), self.ws.next()).await.expect("reply in time").unwrap().unwrap();
            let msg: Value = serde_json::from_str(frame.to_text().unwrap()).unwrap();
            if msg["kind"] == "event" {
                self.events.push_back(msg);
                continue;
            }
            return msg;
        }
    }

    /// Sends `command` with a fresh id and returns the reply, checking the id is echoed.
    pub async fn ask(&mut self, mut command: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        command["id"] = json!(id);
        let reply = self.send_text(command.to_string()).await;
        assert_eq!(reply["id"], id, "{reply}");
        reply
    }

    pub async fn ok(&mut self, command: Value) -> Value {
        let reply = self.ask(command.clone()).await;
        assert_eq!(reply["status"], "ok", "{command} → {reply}");
        reply
    }

    pub async fn event(&mut self, name: &str, within: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(i) = self.events.iter().position(|e| e["event"] == name) {
                return self.events.remove(i);
            }
            let frame = tokio::time::timeout_at(deadline, self.ws.next()).await.ok()??.ok()?;
            let msg: Value = serde_json::from_str(frame.to_text().ok()?).ok()?;
            assert_eq!(msg["kind"], "event", "unexpected {msg}");
            self.events.push_back(msg);
        }
    }

    /// Creates an endpoint; returns its id and the RTP port its SDP advertises.
    pub async fn create(&mut self, call_uuid: &str, remote_sdp: Option<&str>, prefer: &[&str]) -> (String, u16, Value) {
        let mut cmd = json!({"type": "create_endpoint", "call_uuid": call_uuid, "prefer": prefer});
        if let Some(sdp) = remote_sdp {
            cmd["remote_sdp"] = json!(sdp);
        }
        let reply = self.ok(cmd).await;
        assert_eq!(reply["reply"], "endpoint", "{reply}");
        let port = sdp_port(reply["local_sdp"].as_str().unwrap());
        (reply["endpoint_id"].as_str().unwrap().to_owned(), port, reply)
    }

    pub async fn stats(&mut self, endpoint: &str) -> (u64, u64) {
        let s = self.ok(json!({"type": "endpoint_stats", "endpoint_id": endpoint})).await;
        (s["rx_packets"].as_u64().unwrap(), s["tx_packets"].as_u64().unwrap())
    }
}

pub fn sdp_port(sdp: &str) -> u16 {
    let m = sdp.lines().find_map(|l| l.strip_prefix("m=audio ")).expect("m=audio line");
    m.split_whitespace().next().unwrap().parse().unwrap()
}
