//! `connect` to a WebSocket: voxbridge is the client. After the handshake it sends one text
//! message (`{"event":"websocket:connected","content-type":…, …headers}`), then a binary frame
//! of 16-bit little-endian PCM every 20 ms of the received audio at the socket's rate (silence
//! when the caller sends nothing), paced by a clock rather than by packet arrival. Binary frames
//! the server sends go through a buffer and are played into the call, 20 ms at a time. The
//! server closing the socket (or a failure) ends the stream with `ws_closed`.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use domains::media::{Event, WebsocketTarget};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::audio::{FRAME, RATE, StreamResampler};
use crate::endpoint::Endpoint;
use crate::playout::PTIME;

/// How long the handshake may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Most audio buffered from the server before it is played (older audio is dropped).
const MAX_BUFFERED_MS: usize = 2000;

/// Runs the stream until it closes, reporting `ws_connected` and `ws_closed` as `report_as` (the
/// endpoint itself, or the party endpoint of a WebSocket call this one serves).
pub async fn run(ep: Arc<Endpoint>, session: WebsocketTarget, report_as: String, events: broadcast::Sender<Event>) {
    let connected = || {
        let _ = events.send(Event::WsConnected { endpoint_id: report_as.clone() });
    };
    let result = stream(&ep, &session, connected).await;
    ep.untap();
    let reason = result.err();
    tracing::info!(endpoint_id = %ep.id, call_uuid = %ep.call_uuid, uri = %session.uri, ?reason, "WebSocket closed");
    let _ = events.send(Event::WsClosed { endpoint_id: report_as, reason });
}

async fn stream(ep: &Endpoint, session: &WebsocketTarget, connected: impl FnOnce()) -> Result<(), String> {
    let rate = domains::ncco::Websocket::l16_rate(&session.content_type)
        .ok_or_else(|| format!("content type {}", session.content_type))?;
    let mut request = session.uri.as_str().into_client_request().map_err(|e| e.to_string())?;
    if let Some(value) = &session.authorization {
        let value = value.parse().map_err(|_| "the authorization value is not a valid header".to_owned())?;
        request.headers_mut().insert("authorization", value);
    }
    // Nagle off: 20 ms frames must leave when written, not wait for the previous one's ACK
    // (with delayed ACKs that held the first frame 40 ms).
    let connecting = tokio_tungstenite::connect_async_with_config(request, None, true);
    let (socket, _) = tokio::time::timeout(CONNECT_TIMEOUT, connecting)
        .await
        .map_err(|_| format!("no WebSocket handshake with {} within {CONNECT_TIMEOUT:?}", session.uri))?
        .map_err(|e| format!("WebSocket {}: {e}", session.uri))?;
    let (mut sink, mut incoming) = socket.split();
    let mut hello = serde_json::Map::new();
    hello.insert("event".into(), "websocket:connected".into());
    hello.insert("content-type".into(), session.content_type.clone().into());
    hello.extend(session.headers.clone());
    sink.send(Message::Text(serde_json::Value::Object(hello).to_string().into())).await.map_err(|e| e.to_string())?;
    connected();
    let mut heard = ep.tap();
    let _own = ep.sending_own();
    let (mut up, mut down) = (StreamResampler::new(RATE, rate)?, StreamResampler::new(rate, RATE)?);
    let frame_samples = rate as usize / 50;
    let (mut to_server, mut to_caller) = (VecDeque::new(), VecDeque::new());
    let mut frame = Vec::with_capacity(frame_samples * 2);
    let mut clock = tokio::time::interval(PTIME);
    loop {
        tokio::select! {
            _ = clock.tick() => {
                while let Ok(pcm) = heard.try_recv() {
                    up.push(&pcm, &mut to_server);
                }
                frame.clear();
                for _ in 0..frame_samples {
                    frame.extend(to_server.pop_front().unwrap_or(0).to_le_bytes());
                }
                // Audio the server is late to take is not kept: at most two frames wait.
                while to_server.len() > frame_samples * 2 {
                    to_server.pop_front();
                }
                sink.send(Message::Binary(frame.clone().into())).await.map_err(|e| e.to_string())?;
                if to_caller.len() >= FRAME {
                    let pcm: Vec<i16> = to_caller.drain(..FRAME).collect();
                    ep.send_audio(&pcm).await;
                }
            }
            message = incoming.next() => match message {
                Some(Ok(Message::Binary(bytes))) => {
                    let samples: Vec<i16> =
                        bytes.chunks_exact(2).map(|b| i16::from_le_bytes([b.first().copied().unwrap_or(0), b.get(1).copied().unwrap_or(0)])).collect();
                    down.push(&samples, &mut to_caller);
                    let max = MAX_BUFFERED_MS * RATE as usize / 1000;
                    if to_caller.len() > max {
                        let excess = to_caller.len() - max;
                        to_caller.drain(..excess);
                    }
                }
                Some(Ok(Message::Close(_))) | None => return Ok(()),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.to_string()),
            }
        }
    }
}
