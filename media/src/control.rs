//! The control socket: accepts WebSocket connections from control planes and answers each
//! request with `domains::media::answer`. A malformed message gets an error reply; the
//! connection and the process keep serving.

use domains::media::{ErrorCode, Message, Outcome, Request, answer};
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message as Ws;

pub async fn serve(listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                tokio::spawn(async move {
                    if let Err(e) = connection(stream).await {
                        tracing::warn!(%peer, error = %e, "control connection ended with an error");
                    }
                });
            }
            Err(e) => tracing::warn!(error = %e, "accepting a control connection"),
        }
    }
}

async fn connection(stream: TcpStream) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    let mut ws = tokio_tungstenite::accept_async(stream).await?;
    while let Some(msg) = ws.next().await {
        let reply = match msg? {
            Ws::Text(text) => match serde_json::from_str::<Request>(&text) {
                Ok(req) => answer(&req, env!("CARGO_PKG_VERSION")),
                Err(e) => Message::Reply {
                    id: 0,
                    outcome: Outcome::Error { code: ErrorCode::BadRequest, message: e.to_string() },
                },
            },
            Ws::Close(_) => break,
            _ => continue,
        };
        let text = serde_json::to_string(&reply).unwrap_or_default();
        ws.send(Ws::Text(text.into())).await?;
    }
    Ok(())
}
