//! `voxbridge-media`: the media process. It owns RTP sockets, codecs, bridges, players and
//! recorders, and is driven by the control plane over a WebSocket speaking
//! `domains::media`. Thin: parse arguments, set up tracing, run the control server.

use anyhow::Context;
use clap::Parser;
use std::net::SocketAddr;

mod control;

#[derive(Parser)]
#[command(version, about = "voxbridge media process")]
struct Cli {
    /// WebSocket control listen address (loopback by default: the control plane is trusted).
    #[arg(long, env = "VOXBRIDGE_MEDIA_CONTROL_ADDR", default_value = "127.0.0.1:7070")]
    control_addr: SocketAddr,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let listener = tokio::net::TcpListener::bind(cli.control_addr)
        .await
        .with_context(|| format!("binding control address {}", cli.control_addr))?;
    let addr = listener.local_addr()?;
    println!("voxbridge-media ready control=ws://{addr} version={}", env!("CARGO_PKG_VERSION"));
    control::serve(listener).await;
    Ok(())
}
