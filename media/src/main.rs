//! `voxbridge-media`: the media process. It owns RTP sockets, codecs, bridges, players and
//! recorders, and is driven by the control plane over a WebSocket speaking
//! `domains::media`. Thin: parse arguments, set up tracing, run the control server.

use anyhow::Context;
use clap::Parser;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// Many small allocations per packet and command: mimalloc rather than glibc's malloc.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod asr;
mod audio;
mod bridge;
mod codec;
mod control;
mod endpoint;
mod engine;
mod jitter;
mod mixer;
mod pacer;
mod panics;
mod playout;
mod ports;
mod recorder;
mod service;
mod sources;
mod srtp;
mod websocket;

#[derive(Parser)]
#[command(version, about = "voxbridge media process")]
struct Cli {
    /// WebSocket control listen address (loopback by default: the control plane is trusted).
    #[arg(long, env = "VOXBRIDGE_MEDIA_CONTROL_ADDR", default_value = "127.0.0.1:7070")]
    control_addr: SocketAddr,
    /// Address RTP sockets bind to and SDP advertises.
    #[arg(long, env = "VOXBRIDGE_MEDIA_RTP_IP", default_value = "127.0.0.1")]
    rtp_ip: IpAddr,
    /// RTP port range; each endpoint takes an even port (its odd neighbour is kept for RTCP).
    #[arg(long, env = "VOXBRIDGE_MEDIA_RTP_PORTS", default_value = "10000-20000")]
    rtp_ports: ports::PortRange,
    /// Seconds without RTP before an `rtp_timeout` event (0 disables it).
    #[arg(long, env = "VOXBRIDGE_MEDIA_RTP_TIMEOUT", default_value_t = 60)]
    rtp_timeout_secs: u64,
    /// Exit when standard input closes: set by a supervising control plane, whose death then
    /// takes its media process with it.
    #[arg(long, env = "VOXBRIDGE_MEDIA_EXIT_WITH_STDIN")]
    exit_with_stdin: bool,
    /// Where recordings are written.
    #[arg(long, env = "VOXBRIDGE_MEDIA_RECORDINGS_DIR", default_value = "./data/recordings")]
    recordings_dir: std::path::PathBuf,
    /// Codecs offered to callees, in order (PCMU, PCMA, G722, opus, G729, L16, L16/16000).
    /// Offers to voxbridge are answered with any of them (transcoded when the other leg differs).
    #[arg(long, env = "VOXBRIDGE_MEDIA_CODECS", value_delimiter = ',', default_value = "PCMU,PCMA", value_parser = codec)]
    codecs: Vec<domains::sdp::Codec>,
    /// Milliseconds between a leg's RTCP reports (RFC 3550's 5 s by default).
    #[arg(long, env = "VOXBRIDGE_MEDIA_RTCP_INTERVAL_MS", default_value_t = 5000)]
    rtcp_interval_ms: u64,
    /// The espeak-ng program that speaks `talk` text (Debian: `apt-get install espeak-ng`).
    #[arg(long, env = "VOXBRIDGE_MEDIA_ESPEAK", default_value = "espeak-ng")]
    espeak: String,
    /// Text-to-speech through an OpenAI-compatible `…/v1/audio/speech` service instead of
    /// espeak-ng (unset: espeak-ng speaks).
    #[arg(long, env = "VOXBRIDGE_TTS_URL")]
    tts_url: Option<String>,
    /// The `model` and `voice` sent to that service, and a bearer token when it wants one.
    #[arg(long, env = "VOXBRIDGE_TTS_MODEL", default_value = "tts-1")]
    tts_model: String,
    #[arg(long, env = "VOXBRIDGE_TTS_VOICE", default_value = "alloy")]
    tts_voice: String,
    #[arg(long, env = "VOXBRIDGE_TTS_API_KEY", hide_env_values = true)]
    tts_api_key: Option<String>,
    /// Speech recognition for `input`: an OpenAI-compatible transcription endpoint
    /// (`http://host:port/v1/audio/transcriptions`: whisper.cpp's server, faster-whisper-server,
    /// LocalAI, …). Unset: speech input reports that no recogniser is configured.
    #[arg(long, env = "VOXBRIDGE_ASR_URL")]
    asr_url: Option<String>,
    /// The `model` field sent to the recogniser.
    #[arg(long, env = "VOXBRIDGE_ASR_MODEL", default_value = "whisper-1")]
    asr_model: String,
    /// A bearer token for the recogniser, when it wants one.
    #[arg(long, env = "VOXBRIDGE_ASR_API_KEY", hide_env_values = true)]
    asr_api_key: Option<String>,
}

fn codec(name: &str) -> Result<domains::sdp::Codec, String> {
    domains::sdp::Codec::from_name(name.trim())
        .ok_or_else(|| format!("{name}: one of {}", domains::sdp::Codec::names()))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    if cli.exit_with_stdin {
        tokio::spawn(async {
            use tokio::io::AsyncReadExt;
            let mut stdin = tokio::io::stdin();
            let mut buf = [0u8; 64];
            while matches!(stdin.read(&mut buf).await, Ok(n) if n > 0) {}
            tracing::info!("control plane gone (stdin closed): exiting");
            std::process::exit(0);
        });
    }
    let asr = match cli.asr_url.filter(|u| !u.trim().is_empty()) {
        Some(url) => {
            tracing::info!(%url, model = %cli.asr_model, "speech recognition through an HTTP transcription service");
            let service =
                service::HttpService::new("speech recogniser", url, cli.asr_api_key).map_err(anyhow::Error::msg)?;
            let engine = asr::HttpAsr { service, model: cli.asr_model };
            Some(std::sync::Arc::new(engine) as std::sync::Arc<dyn asr::AsrEngine>)
        }
        None => None,
    };
    let tts: Box<dyn sources::TtsEngine> = match cli.tts_url.filter(|u| !u.trim().is_empty()) {
        Some(url) => {
            tracing::info!(%url, model = %cli.tts_model, voice = %cli.tts_voice, "text-to-speech through an HTTP service");
            let service = service::HttpService::new("text-to-speech service", url, cli.tts_api_key)
                .map_err(anyhow::Error::msg)?;
            Box::new(sources::HttpTts { service, model: cli.tts_model, voice: cli.tts_voice })
        }
        None => Box::new(sources::Espeak { program: cli.espeak }),
    };
    let listener = tokio::net::TcpListener::bind(cli.control_addr)
        .await
        .with_context(|| format!("binding control address {}", cli.control_addr))?;
    let engine = engine::Engine::start(
        engine::Config {
            rtp_ip: cli.rtp_ip,
            rtp_ports: cli.rtp_ports,
            rtp_timeout: Duration::from_secs(cli.rtp_timeout_secs),
            stats_interval: Duration::from_secs(5),
            recordings_dir: cli.recordings_dir,
            codecs: cli.codecs,
            rtcp_interval: Duration::from_millis(cli.rtcp_interval_ms.max(100)),
        },
        sources::Sources::new(tts, sources::Limits::default()),
        engine::Engines { asr },
    );
    let addr = listener.local_addr()?;
    println!("voxbridge-media ready control=ws://{addr} version={}", env!("CARGO_PKG_VERSION"));
    control::serve(listener, engine).await;
    Ok(())
}
