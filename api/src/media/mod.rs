//! The control plane's side of the media process: the [`MediaControl`] seam that call logic
//! talks to, its WebSocket implementation, and the supervisor that runs a local
//! `voxbridge-media` (or connects to remote ones) and restarts it when it dies.

use async_trait::async_trait;
use tokio::sync::broadcast;

pub mod client;
pub mod supervisor;

/// An RTP endpoint (one call leg's media) inside a media process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaEndpoint {
    /// Identifier assigned by the media process.
    pub id: String,
    /// Our SDP: the answer when the endpoint was created from an offer, else our offer.
    pub local_sdp: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaEvent {
    /// An event of one endpoint (RTP timeout, DTMF, playback or recording done), for its call.
    Call(domains::call::MediaEvent),
    /// The connection to the media process was lost: every endpoint on it is gone.
    ProcessLost,
    /// A media process is (again) connected and accepting work.
    ProcessReady,
}

/// Packet counters of one endpoint (what proves that audio flowed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MediaStats {
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// No media process is connected (new calls get 503 + Retry-After).
    #[error("no media process available")]
    Unavailable,
    /// The SDP offer/answer could not be negotiated (no common codec, bad SDP).
    #[error("media negotiation failed: {0}")]
    Negotiation(String),
    /// The media process refused the command with this code.
    #[error("{message}")]
    Refused { code: domains::media::ErrorCode, message: String },
    #[error("media process error: {0}")]
    Other(String),
}

/// What call logic needs from media. Implemented over WebSocket for a real media process; tests
/// of call logic can record calls instead.
#[async_trait]
pub trait MediaControl: Send + Sync + 'static {
    /// Creates an endpoint for `call_uuid`. With `remote_offer`, negotiates it and returns the
    /// SDP answer (PCMU/PCMA + telephone-event); without, returns an SDP offer. `prefer` lists
    /// codec names (e.g. ["PCMU"]) to offer first, so a bridge needs no transcoding.
    async fn create_endpoint(
        &self,
        call_uuid: &str,
        remote_offer: Option<&str>,
        prefer: &[String],
    ) -> Result<MediaEndpoint, MediaError>;

    /// Applies the remote SDP answer to an endpoint created without an offer, or a new remote
    /// offer (re-INVITE, e.g. hold) to any endpoint; returns our SDP (answer) for the latter.
    async fn update_endpoint(&self, endpoint: &str, remote_sdp: &str) -> Result<String, MediaError>;

    /// Relays RTP (and RFC 4733 events) between two endpoints, both directions.
    async fn bridge(&self, a: &str, b: &str) -> Result<(), MediaError>;

    /// Stops relaying between two bridged endpoints.
    async fn unbridge(&self, _a: &str, _b: &str) -> Result<(), MediaError> {
        Err(MediaError::Other("unbridge is not supported here".into()))
    }

    /// Packet counters of an endpoint.
    async fn endpoint_stats(&self, _endpoint: &str) -> Result<MediaStats, MediaError> {
        Err(MediaError::Other("endpoint_stats is not supported here".into()))
    }

    /// Releases an endpoint and its port. Unknown ids are not an error.
    async fn destroy_endpoint(&self, endpoint: &str) -> Result<(), MediaError>;

    /// Any command of the protocol, answered with its reply (what the call core sends).
    async fn command(&self, command: domains::media::Command) -> Result<domains::media::Reply, MediaError>;

    /// Media events for every endpoint of this control plane.
    fn events(&self) -> broadcast::Receiver<MediaEvent>;

    /// True when a media process is connected.
    fn is_available(&self) -> bool;
}
