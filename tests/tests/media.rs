//! The media process starts, reports its version, and answers its control socket; malformed
//! control messages get an error reply without closing the connection.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use vbtest::bin;

#[tokio::test]
async fn media_process_answers_its_control_socket() {
    let mut child = Command::new(bin("voxbridge-media"))
        .env("VOXBRIDGE_MEDIA_CONTROL_ADDR", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .spawn()
        .expect("voxbridge-media starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let url = line.split_whitespace().find_map(|w| w.strip_prefix("control=")).expect("ready line").to_owned();
    assert!(line.contains(&format!("version={}", env!("CARGO_PKG_VERSION"))), "{line}");

    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.expect("control socket");
    let mut ask = async |msg: String| -> Value {
        ws.send(Message::Text(msg.into())).await.unwrap();
        let reply = ws.next().await.unwrap().unwrap();
        serde_json::from_str(reply.to_text().unwrap()).unwrap()
    };
    let welcome = ask(json!({"id": 1, "type": "hello", "protocol": 1}).to_string()).await;
    assert_eq!(welcome["reply"], "welcome");
    assert_eq!(welcome["version"], env!("CARGO_PKG_VERSION"));
    let refused = ask(json!({"id": 2, "type": "hello", "protocol": 999}).to_string()).await;
    assert_eq!((refused["id"].as_u64(), refused["code"].as_str()), (Some(2), Some("protocol_mismatch")));
    let garbage = ask("{not json".into()).await;
    assert_eq!(garbage["code"], "bad_request");
    let pong = ask(json!({"id": 3, "type": "ping"}).to_string()).await;
    assert_eq!((pong["id"].as_u64(), pong["reply"].as_str()), (Some(3), Some("pong")));
    child.kill().unwrap();
    let _ = child.wait();
}
