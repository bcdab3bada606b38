//! The control socket: accepts WebSocket connections from control planes, hands each request to
//! the [`Engine`] and pushes engine events to every connection. A malformed message gets a
//! `bad_request` reply; the connection and the process keep serving. Endpoints a connection
//! created are destroyed when it closes (the control plane reports them lost anyway).

use std::collections::HashSet;
use std::sync::Arc;

use domains::media::{ErrorCode, Message, Request, malformed};
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast::error::RecvError;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::{Error as WsError, Message as Ws};

use crate::engine::Engine;

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
            Err(e) => tracing::warn!(error = %e, "accepting a control connection"),
        }
    }
}

async fn send(ws: &mut WebSocketStream<TcpStream>, message: &Message) -> Result<(), WsError> {
    let text = serde_json::to_string(message).unwrap_or_default();
    ws.send(Ws::Text(text.into())).await
}

async fn connection(stream: TcpStream, engine: &Engine) -> Result<(), WsError> {
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
                        Ok(request) => engine.handle(request, &mut owned).await,
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
