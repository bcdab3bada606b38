//! A WebSocket connection to one media process, speaking `domains::media`. Each request gets a
//! fresh id and waits (at most [`REQUEST_TIMEOUT`]) for the reply with that id; pushed events
//! are translated to [`MediaEvent`]s and fanned out on a broadcast channel. When the socket
//! closes, every waiting caller gets [`MediaError::Unavailable`] and [`MediaClient::closed`]
//! resolves; the client is not reconnected here (the supervisor does that).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use domains::call::MediaEvent as CallMediaEvent;
use domains::media::{Command, ErrorCode, Event, Message, Outcome, PROTOCOL_VERSION, Reply, Request};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio_tungstenite::tungstenite::Message as Ws;

use super::{MediaControl, MediaEndpoint, MediaError, MediaEvent, MediaStats};

/// How long a request waits for its reply.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

type Pending = HashMap<u64, oneshot::Sender<Outcome>>;

/// What the reader task shares with the client handles.
struct Shared {
    pending: Mutex<Pending>,
    events: broadcast::Sender<MediaEvent>,
    closed: watch::Sender<bool>,
}

impl Shared {
    fn pending(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }
}

struct Inner {
    /// Text frames to the writer task; dropping the last client handle ends the connection.
    outgoing: mpsc::UnboundedSender<String>,
    shared: Arc<Shared>,
    next_id: AtomicU64,
    version: std::sync::OnceLock<String>,
    url: String,
}

/// A connected media process. Cheap to clone; the connection closes when the last clone drops.
#[derive(Clone)]
pub struct MediaClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for MediaClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaClient").field("url", &self.inner.url).field("closed", &self.is_closed()).finish()
    }
}

impl MediaClient {
    /// Connects to `url` (`ws://host:port`), sends `hello` and checks the protocol version.
    /// Events are sent on `events`, so a supervisor can keep one channel across reconnects.
    pub async fn connect(url: &str, events: broadcast::Sender<MediaEvent>) -> Result<MediaClient, MediaError> {
        // Commands are small and latency is post-dial delay: Nagle's algorithm off.
        let (ws, _) =
            tokio::time::timeout(REQUEST_TIMEOUT, tokio_tungstenite::connect_async_with_config(url, None, true))
                .await
                .map_err(|_| MediaError::Other(format!("connecting to {url} timed out")))?
                .map_err(|e| MediaError::Other(format!("connecting to {url}: {e}")))?;
        let (mut sink, mut stream) = ws.split();
        let (outgoing, mut to_send) = mpsc::unbounded_channel::<String>();
        let shared = Arc::new(Shared { pending: Mutex::new(HashMap::new()), events, closed: watch::channel(false).0 });

        let mut closed = shared.closed.subscribe();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    text = to_send.recv() => match text {
                        Some(text) => {
                            if sink.send(Ws::Text(text.into())).await.is_err() {
                                break;
                            }
                        }
                        None => {
                            let _ = sink.send(Ws::Close(None)).await;
                            break;
                        }
                    },
                    () = async { let _ = closed.wait_for(|c| *c).await; } => break,
                }
            }
        });

        let reader = shared.clone();
        let url_for_log = url.to_owned();
        tokio::spawn(async move {
            while let Some(frame) = stream.next().await {
                match frame {
                    Ok(Ws::Text(text)) => dispatch(&reader, &text),
                    Ok(Ws::Close(_)) | Err(_) => break,
                    Ok(_) => {}
                }
            }
            tracing::info!(url = %url_for_log, "media control connection closed");
            // Closed first, then drained: a request that registers after the drain sees `closed`.
            reader.closed.send_replace(true);
            reader.pending().clear();
        });

        let client = MediaClient {
            inner: Arc::new(Inner {
                outgoing,
                shared,
                next_id: AtomicU64::new(1),
                version: std::sync::OnceLock::new(),
                url: url.to_owned(),
            }),
        };
        match client.request(Command::Hello { protocol: PROTOCOL_VERSION }).await? {
            Reply::Welcome { protocol, version } if protocol == PROTOCOL_VERSION => {
                let _ = client.inner.version.set(version);
                Ok(client)
            }
            other => Err(MediaError::Other(format!("unexpected reply to hello: {other:?}"))),
        }
    }

    /// The media process's version, from its `welcome`.
    pub fn version(&self) -> &str {
        self.inner.version.get().map(String::as_str).unwrap_or_default()
    }

    pub fn url(&self) -> &str {
        &self.inner.url
    }

    pub fn is_closed(&self) -> bool {
        *self.inner.shared.closed.borrow()
    }

    /// Resolves once the connection is gone.
    pub async fn closed(&self) {
        let mut rx = self.inner.shared.closed.subscribe();
        let _ = rx.wait_for(|c| *c).await;
    }

    /// Sends one command and waits for its reply.
    pub async fn request(&self, command: Command) -> Result<Reply, MediaError> {
        let shared = &self.inner.shared;
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let kind = command.name();
        let text = serde_json::to_string(&Request { id, command })
            .map_err(|e| MediaError::Other(format!("encoding {kind}: {e}")))?;
        let (tx, rx) = oneshot::channel();
        shared.pending().insert(id, tx);
        if self.is_closed() || self.inner.outgoing.send(text).is_err() {
            shared.pending().remove(&id);
            return Err(MediaError::Unavailable);
        }
        match tokio::time::timeout(REQUEST_TIMEOUT, rx).await {
            Ok(Ok(Outcome::Ok { result })) => Ok(result),
            Ok(Ok(Outcome::Error { code, message })) => Err(match code {
                ErrorCode::Negotiation => MediaError::Negotiation(message),
                code => MediaError::Refused { code, message: format!("{kind}: {message}") },
            }),
            Ok(Err(_)) => Err(MediaError::Unavailable),
            Err(_) => {
                shared.pending().remove(&id);
                Err(MediaError::Other(format!("no reply to {kind} within {} s", REQUEST_TIMEOUT.as_secs())))
            }
        }
    }

    pub async fn ping(&self) -> Result<(), MediaError> {
        expect(self.request(Command::Ping).await?, |r| matches!(r, Reply::Pong))
    }
}

fn expect(reply: Reply, ok: impl Fn(&Reply) -> bool) -> Result<(), MediaError> {
    if ok(&reply) { Ok(()) } else { Err(MediaError::Other(format!("unexpected reply {reply:?}"))) }
}

/// Routes one frame from the media process: a reply to its waiting caller, an event to the
/// broadcast channel.
fn dispatch(shared: &Shared, text: &str) {
    match serde_json::from_str::<Message>(text) {
        Ok(Message::Reply { id, outcome }) => match shared.pending().remove(&id) {
            Some(waiter) => {
                let _ = waiter.send(outcome);
            }
            None => tracing::warn!(request_id = id, ?outcome, "media reply nobody waits for"),
        },
        Ok(Message::Event { event: Event::Dtmf { endpoint_id, digit } }) => {
            let _ = shared.events.send(MediaEvent::Call(CallMediaEvent::Dtmf { endpoint: endpoint_id, digit }));
        }
        Ok(Message::Event { event: Event::PlaybackDone { endpoint_id, play_id, error } }) => {
            let event = CallMediaEvent::PlaybackDone { endpoint: endpoint_id, play_id, error };
            let _ = shared.events.send(MediaEvent::Call(event));
        }
        Ok(Message::Event { event: Event::RecordDone { endpoint_id, record_id, size, duration_ms, error } }) => {
            let event = CallMediaEvent::RecordDone { endpoint: endpoint_id, record_id, size, duration_ms, error };
            let _ = shared.events.send(MediaEvent::Call(event));
        }
        Ok(Message::Event { event: Event::WsClosed { endpoint_id, reason } }) => {
            let _ = shared.events.send(MediaEvent::Call(CallMediaEvent::WsClosed { endpoint: endpoint_id, reason }));
        }
        Ok(Message::Event { event: Event::WsConnected { endpoint_id } }) => {
            let _ = shared.events.send(MediaEvent::Call(CallMediaEvent::WsConnected { endpoint: endpoint_id }));
        }
        Ok(Message::Event { event: Event::RtpTimeout { endpoint_id, call_uuid } }) => {
            tracing::info!(%call_uuid, endpoint_id = %endpoint_id, "media: RTP timeout");
            let _ = shared.events.send(MediaEvent::Call(CallMediaEvent::RtpTimeout { endpoint: endpoint_id }));
        }
        Ok(Message::Event { event: Event::MachineDetected { endpoint_id, result } }) => {
            let _ =
                shared.events.send(MediaEvent::Call(CallMediaEvent::MachineDetected { endpoint: endpoint_id, result }));
        }
        Ok(Message::Event {
            event: Event::SpeechDone { endpoint_id, transcribe_id, timeout_reason, text, confidence, error },
        }) => {
            let result = domains::events::SpeechResult::recognised(timeout_reason, text, confidence, error);
            let event = CallMediaEvent::SpeechDone { endpoint: endpoint_id, transcribe_id, result };
            let _ = shared.events.send(MediaEvent::Call(event));
        }
        Ok(Message::Event { event: Event::ConferenceEnded { endpoint_id, .. } }) => {
            let _ = shared.events.send(MediaEvent::Call(CallMediaEvent::ConferenceEnded { endpoint: endpoint_id }));
        }
        Ok(Message::Event { event: Event::Stats { endpoints } }) => tracing::debug!(endpoints, "media stats"),
        Err(e) => tracing::warn!(error = %e, "unreadable message from the media process"),
    }
}

#[async_trait]
impl MediaControl for MediaClient {
    async fn create_endpoint(
        &self,
        call_uuid: &str,
        remote_offer: Option<&str>,
        prefer: &[String],
    ) -> Result<MediaEndpoint, MediaError> {
        let command = Command::CreateEndpoint {
            call_uuid: call_uuid.to_owned(),
            remote_sdp: remote_offer.map(str::to_owned),
            prefer: prefer.to_vec(),
            srtp: domains::srtp::SrtpPolicy::Optional,
        };
        match self.request(command).await? {
            Reply::Endpoint { endpoint_id, local_sdp, .. } => Ok(MediaEndpoint { id: endpoint_id, local_sdp }),
            other => Err(MediaError::Other(format!("unexpected reply {other:?}"))),
        }
    }

    async fn update_endpoint(&self, endpoint: &str, remote_sdp: &str) -> Result<String, MediaError> {
        let command = Command::UpdateEndpoint { endpoint_id: endpoint.to_owned(), remote_sdp: remote_sdp.to_owned() };
        match self.request(command).await? {
            Reply::Updated { local_sdp } => Ok(local_sdp),
            other => Err(MediaError::Other(format!("unexpected reply {other:?}"))),
        }
    }

    async fn bridge(&self, a: &str, b: &str) -> Result<(), MediaError> {
        let reply = self.request(Command::Bridge { a: a.to_owned(), b: b.to_owned() }).await?;
        expect(reply, |r| matches!(r, Reply::Bridged))
    }

    async fn unbridge(&self, a: &str, b: &str) -> Result<(), MediaError> {
        let reply = self.request(Command::Unbridge { a: a.to_owned(), b: b.to_owned() }).await?;
        expect(reply, |r| matches!(r, Reply::Unbridged))
    }

    async fn destroy_endpoint(&self, endpoint: &str) -> Result<(), MediaError> {
        let reply = self.request(Command::DestroyEndpoint { endpoint_id: endpoint.to_owned() }).await?;
        expect(reply, |r| matches!(r, Reply::Destroyed { .. }))
    }

    async fn endpoint_stats(&self, endpoint: &str) -> Result<MediaStats, MediaError> {
        match self.request(Command::EndpointStats { endpoint_id: endpoint.to_owned() }).await? {
            Reply::EndpointStats { rx_packets, tx_packets, rx_bytes, tx_bytes, .. } => {
                Ok(MediaStats { rx_packets, tx_packets, rx_bytes, tx_bytes })
            }
            other => Err(MediaError::Other(format!("unexpected reply {other:?}"))),
        }
    }

    async fn command(&self, command: Command) -> Result<Reply, MediaError> {
        self.request(command).await
    }

    fn events(&self) -> broadcast::Receiver<MediaEvent> {
        self.inner.shared.events.subscribe()
    }

    fn is_available(&self) -> bool {
        !self.is_closed()
    }
}
