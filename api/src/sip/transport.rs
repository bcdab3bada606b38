//! SIP transports: one UDP socket and a TCP listener on the same address, plus outbound TCP
//! connections. Every received message becomes an [`Incoming`] for the edge, tagged with the
//! [`Flow`] it came on, so responses and in-dialog requests go back the same way (symmetric
//! response routing, RFC 3581). A stream that breaks framing is closed; a bad datagram never
//! stops the receive loop.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use domains::sip::SipMessage;
use domains::sip::message::{MAX_MESSAGE_BYTES, ParseError, error_response, frame_len};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;

pub use domains::sip::flow::Flow;

#[derive(Debug)]
pub struct Incoming {
    pub msg: SipMessage,
    pub flow: Flow,
    /// When the message arrived (post-dial delay is measured from here).
    pub received: std::time::Instant,
}

pub struct Transport {
    udp: Arc<UdpSocket>,
    local: SocketAddr,
    conns: Mutex<HashMap<u64, mpsc::UnboundedSender<Vec<u8>>>>,
    next_conn: AtomicU64,
    incoming: mpsc::UnboundedSender<Incoming>,
    tls_client: std::sync::OnceLock<tokio_rustls::TlsConnector>,
    /// `Server` header value of every response that has none.
    server: String,
}

impl Transport {
    /// Binds UDP and TCP on `addr` (with port 0, one free port for both) and starts receiving.
    pub async fn bind(
        addr: SocketAddr,
        server: &str,
    ) -> std::io::Result<(Arc<Transport>, mpsc::UnboundedReceiver<Incoming>)> {
        let (udp, tcp) = bind_pair(addr).await?;
        let local = udp.local_addr()?;
        let (tx, rx) = mpsc::unbounded_channel();
        let transport = Arc::new(Transport {
            udp: Arc::new(udp),
            local,
            conns: Mutex::new(HashMap::new()),
            next_conn: AtomicU64::new(1),
            incoming: tx,
            tls_client: std::sync::OnceLock::new(),
            server: server.to_owned(),
        });
        tokio::spawn(udp_loop(transport.clone()));
        tokio::spawn(accept_loop(transport.clone(), tcp));
        Ok((transport, rx))
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    pub async fn send(&self, flow: &Flow, msg: &SipMessage) -> std::io::Result<()> {
        let bytes = if msg.status().is_some() && msg.header("Server").is_none() {
            msg.to_bytes_with("Server", &self.server)
        } else {
            msg.to_bytes()
        };
        tracing::trace!(to = %flow.peer(), message = %String::from_utf8_lossy(&bytes), "sip out");
        self.send_bytes(flow, bytes).await
    }

    async fn send_bytes(&self, flow: &Flow, bytes: Vec<u8>) -> std::io::Result<()> {
        match flow {
            Flow::Udp(peer) => self.udp.send_to(&bytes, peer).await.map(|_| ()),
            Flow::Tcp { conn, .. } => {
                let sender = self.conns.lock().map_err(|_| std::io::Error::other("poisoned"))?.get(conn).cloned();
                match sender {
                    Some(s) => s.send(bytes).map_err(|_| std::io::Error::other("connection closed")),
                    None => Err(std::io::Error::new(std::io::ErrorKind::NotConnected, "connection closed")),
                }
            }
        }
    }

    /// The client configuration for outbound TLS (trusted roots), set once at start.
    pub fn set_tls_client(&self, config: rustls::ClientConfig) {
        let _ = self.tls_client.set(tokio_rustls::TlsConnector::from(Arc::new(config)));
    }

    /// A flow to `peer`: UDP as is; TCP and TLS connect (TLS verifies `server_name`).
    pub async fn flow_to(
        self: &Arc<Self>,
        peer: SocketAddr,
        transport: domains::sip_uri::Transport,
        server_name: &str,
    ) -> std::io::Result<Flow> {
        use domains::sip_uri::Transport as T;
        let timeout = std::time::Duration::from_secs(5);
        let timed_out = || std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out");
        if transport == T::Udp {
            return Ok(Flow::Udp(peer));
        }
        let stream = tokio::time::timeout(timeout, TcpStream::connect(peer)).await.map_err(|_| timed_out())??;
        if transport == T::Tcp {
            return Ok(self.clone().register_stream(stream, peer, false));
        }
        let connector = self.tls_client.get().ok_or_else(|| std::io::Error::other("TLS client not configured"))?;
        let name = rustls::pki_types::ServerName::try_from(server_name.to_owned())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let tls = tokio::time::timeout(timeout, connector.connect(name, stream)).await.map_err(|_| timed_out())??;
        Ok(self.clone().register_stream(tls, peer, true))
    }

    /// Binds the TLS listener (RFC 3261 §26.2: TLS 1.2+, server certificate).
    pub async fn listen_tls(
        self: &Arc<Self>,
        addr: SocketAddr,
        config: rustls::ServerConfig,
    ) -> std::io::Result<SocketAddr> {
        let listener = TcpListener::bind(addr).await?;
        let bound = listener.local_addr()?;
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, peer)) => {
                        let (acceptor, this) = (acceptor.clone(), this.clone());
                        tokio::spawn(async move {
                            let handshake =
                                tokio::time::timeout(std::time::Duration::from_secs(10), acceptor.accept(stream));
                            match handshake.await {
                                Ok(Ok(tls)) => {
                                    this.register_stream(tls, peer, true);
                                }
                                Ok(Err(e)) => tracing::info!(%peer, error = %e, "TLS handshake failed"),
                                Err(_) => tracing::info!(%peer, "TLS handshake timed out"),
                            }
                        });
                    }
                    Err(e) => tracing::warn!(error = %e, "tls accept"),
                }
            }
        });
        Ok(bound)
    }

    fn register_stream<S>(self: Arc<Self>, stream: S, peer: SocketAddr, tls: bool) -> Flow
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
    {
        let conn = self.next_conn.fetch_add(1, Ordering::Relaxed);
        let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
        if let Ok(mut conns) = self.conns.lock() {
            conns.insert(conn, tx);
        }
        let (mut reader, mut writer) = tokio::io::split(stream);
        tokio::spawn(async move {
            while let Some(bytes) = rx.recv().await {
                if writer.write_all(&bytes).await.is_err() {
                    break;
                }
            }
        });
        let flow = Flow::Tcp { conn, peer, tls };
        let this = self.clone();
        let read_flow = flow.clone();
        tokio::spawn(async move {
            let mut buf: Vec<u8> = Vec::with_capacity(4096);
            let mut chunk = [0u8; 8192];
            'read: loop {
                let n = match reader.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
                loop {
                    // Keep-alives between messages (RFC 5626 §3.5.1): a client's ping
                    // (CRLFCRLF) gets its pong (one CRLF, §4.4.1); a lone CRLF is dropped.
                    while buf.starts_with(b"\r\n") {
                        if buf.starts_with(b"\r\n\r\n") {
                            buf.drain(..4);
                            let _ = this.send_bytes(&read_flow, b"\r\n".to_vec()).await;
                        } else if buf.len() == 2 {
                            break; // the ping's second half may be on its way
                        } else {
                            buf.drain(..2);
                        }
                    }
                    if buf == b"\r\n" {
                        break;
                    }
                    match frame_len(&buf) {
                        Ok(Some(len)) => {
                            let frame: Vec<u8> = buf.drain(..len).collect();
                            this.deliver(&frame, read_flow.clone()).await;
                        }
                        Ok(None) if buf.len() > MAX_MESSAGE_BYTES => {
                            this.reject(&buf, &ParseError::TooLarge(buf.len()), &read_flow).await;
                            break 'read;
                        }
                        Ok(None) => break,
                        Err(e) => {
                            // Framing is lost: answer what can be answered, then close.
                            this.reject(&buf, &e, &read_flow).await;
                            break 'read;
                        }
                    }
                }
            }
            if let Ok(mut conns) = this.conns.lock() {
                conns.remove(&conn);
            }
        });
        flow
    }

    async fn deliver(&self, bytes: &[u8], flow: Flow) {
        if bytes.iter().all(|b| b.is_ascii_whitespace()) {
            return; // keep-alive
        }
        tracing::trace!(from = %flow.peer(), message = %String::from_utf8_lossy(bytes), "sip in");
        // The parser must never panic on input (its fuzz targets and lints see to that); should
        // a bug make it, this receive loop still serves the next message.
        let parsed = std::panic::catch_unwind(|| SipMessage::parse(bytes));
        match parsed {
            Ok(Ok(mut msg)) => {
                if msg.method().is_some() {
                    msg.stamp_received(flow.peer());
                }
                let _ = self.incoming.send(Incoming { msg, flow, received: std::time::Instant::now() });
            }
            Ok(Err(e)) => self.reject(bytes, &e, &flow).await,
            Err(_) => {
                metrics::counter!("voxbridge_sip_parser_panics_total").increment(1);
                tracing::error!(peer = %flow.peer(), "SIP parser panicked; message dropped");
            }
        }
    }

    /// A message the parser refused: answered with the RFC's status when it is a request that
    /// can be answered, dropped otherwise.
    async fn reject(&self, bytes: &[u8], error: &ParseError, flow: &Flow) {
        metrics::counter!("voxbridge_sip_malformed_total").increment(1);
        match error_response(bytes, error) {
            Some(mut resp) => {
                tracing::info!(peer = %flow.peer(), %error, status = error.status(), "malformed SIP request refused");
                resp.stamp_received(flow.peer());
                let _ = self.send(flow, &resp).await;
            }
            None => tracing::info!(peer = %flow.peer(), %error, "malformed SIP message dropped"),
        }
    }
}

/// The SIP UDP socket's kernel buffers: with the default (about 208 KiB) the kernel counted
/// receive-buffer drops under bursts (benchmark runs at 1,500 calls/s lost 13 and 26 of 30,000
/// calls then), and a dropped datagram costs at least a retransmission interval. Linux caps
/// the request at `net.core.rmem_max`/`wmem_max`.
const UDP_BUFFER_BYTES: usize = 8 << 20;

fn enlarge_buffers(udp: &UdpSocket) {
    let sock = socket2::SockRef::from(udp);
    if let Err(e) =
        sock.set_recv_buffer_size(UDP_BUFFER_BYTES).and_then(|()| sock.set_send_buffer_size(UDP_BUFFER_BYTES))
    {
        tracing::warn!(error = %e, "could not enlarge the SIP UDP socket's buffers");
    }
}

async fn bind_pair(addr: SocketAddr) -> std::io::Result<(UdpSocket, TcpListener)> {
    let (udp, tcp) = bind_pair_at(addr).await?;
    enlarge_buffers(&udp);
    Ok((udp, tcp))
}

async fn bind_pair_at(addr: SocketAddr) -> std::io::Result<(UdpSocket, TcpListener)> {
    if addr.port() != 0 {
        return Ok((UdpSocket::bind(addr).await?, TcpListener::bind(addr).await?));
    }
    // Port 0: find a port free for both protocols.
    let mut last = None;
    for _ in 0..20 {
        let udp = UdpSocket::bind(addr).await?;
        let port = udp.local_addr()?.port();
        match TcpListener::bind(SocketAddr::new(addr.ip(), port)).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no free port")))
}

async fn udp_loop(t: Arc<Transport>) {
    let mut buf = vec![0u8; 65535];
    loop {
        match t.udp.recv_from(&mut buf).await {
            Ok((n, peer)) => t.deliver(buf.get(..n).unwrap_or_default(), Flow::Udp(peer)).await,
            // ICMP errors surface here on some platforms; keep serving.
            Err(e) => tracing::debug!(error = %e, "udp receive"),
        }
    }
}

async fn accept_loop(t: Arc<Transport>, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                t.clone().register_stream(stream, peer, false);
            }
            Err(e) => tracing::warn!(error = %e, "tcp accept"),
        }
    }
}
