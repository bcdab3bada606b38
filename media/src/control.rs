//! The control socket: accepts WebSocket connections from control planes, hands each request to
//! the [`Engine`] and pushes engine events to every connection. A malformed message gets a
//! `bad_request` reply; the connection and the process keep serving. Endpoints a connection
//! created are destroyed when it closes (the control plane reports them lost anyway).

use std::collections::HashSet;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use domains::media::{ErrorCode, Message, Request, malformed};
use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast::error::RecvError;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::{Error as WsError, Message as Ws};

use crate::engine::Engine;
use crate::panics;

pub async fn serve(listener: TcpListener, engine: Arc<Engine>) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let engine = engine.clone();
                tokio::spawn(async move {
                    tracing::info!(%peer, "control connection");
                    if let Err(e) = connection(stream, &engine).await {
                        tracing::warn!(%peer, error = %e, "control connection ended with an error");
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "accepting a control connection");
                // Out of file descriptors and the like: do not spin while it lasts.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn send(ws: &mut WebSocketStream<TcpStream>, message: &Message) -> Result<(), WsError> {
    let text = serde_json::to_string(message).unwrap_or_default();
    ws.send(Ws::Text(text.into())).await
}

/// Runs one command. A panic in it (a bug) becomes an `internal` error reply: the connection
/// keeps serving its other commands and, when it closes, still releases its endpoints.
async fn handle(engine: &Engine, request: Request, owned: &mut HashSet<String>) -> Message {
    let id = request.id;
    // Unwind safety: the engine's maps are behind `Mutex`es whose poisoning it ignores, and
    // `owned` at worst misses the endpoint of the failed command (reported lost anyway).
    match AssertUnwindSafe(engine.handle(request, owned)).catch_unwind().await {
        Ok(reply) => reply,
        Err(payload) => {
            tracing::error!(request_id = id, panic = panics::message(&*payload), "bug: control command panicked");
            Message::error(id, ErrorCode::Internal, "internal error")
        }
    }
}

/// Serves one control connection until it closes. A malformed or failing command gets an error
/// reply and the loop goes on; only the WebSocket itself failing (which RFC 6455 makes fatal
/// to the connection: bad UTF-8, an oversized or invalid frame, an I/O error) ends it.
async fn connection(stream: TcpStream, engine: &Engine) -> Result<(), WsError> {
    // Replies are small and every one is on a call's critical path: Nagle's algorithm off.
    let _ = stream.set_nodelay(true);
    let mut ws = tokio_tungstenite::accept_async(stream).await?;
    let mut events = engine.subscribe();
    let mut owned = HashSet::new();
    let result = loop {
        tokio::select! {
            msg = ws.next() => {
                let reply = match msg {
                    None | Some(Ok(Ws::Close(_))) => break Ok(()),
                    Some(Err(e)) => break Err(e),
                    Some(Ok(Ws::Text(text))) => match serde_json::from_str::<Request>(&text) {
                        Ok(request) => handle(engine, request, &mut owned).await,
                        Err(e) => malformed(&text, &e),
                    },
                    Some(Ok(Ws::Binary(_))) => Message::error(0, ErrorCode::BadRequest, "commands are JSON text frames"),
                    Some(Ok(_)) => continue,
                };
                if let Err(e) = send(&mut ws, &reply).await {
                    break Err(e);
                }
            }
            event = events.recv() => match event {
                Ok(event) => {
                    if let Err(e) = send(&mut ws, &Message::Event { event }).await {
                        break Err(e);
                    }
                }
                Err(RecvError::Lagged(n)) => tracing::warn!(missed = n, "control connection too slow for events"),
                Err(RecvError::Closed) => break Ok(()),
            },
        }
    };
    if !owned.is_empty() {
        tracing::info!(endpoints = owned.len(), "control connection closed: releasing its endpoints");
    }
    engine.release(owned).await;
    result
}
