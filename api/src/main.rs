//! `voxbridge`: runs the control plane (default), prints the OpenAPI document, or migrates.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;
use voxbridge::config::{Config, LogFormat, Settings};

/// A call is many small, short-lived allocations on two worker threads (messages, headers,
/// JSON); glibc's malloc spent a fifth of the CPU of a loaded control plane on them.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(version, about = "voxbridge: self-hostable programmable voice")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// TOML file with the same settings as the flags (flags and environment win).
    #[arg(long, env = "VOXBRIDGE_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(flatten)]
    settings: Settings,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API (the default).
    Serve,
    /// Print the OpenAPI document (YAML).
    Openapi,
    /// Run database migrations and exit.
    Migrate,
}

fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,sea_orm=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(Command::Openapi) = cli.command {
        print!("{}", voxbridge::http::openapi_yaml().map_err(anyhow::Error::msg)?);
        return Ok(());
    }
    let file = match &cli.config {
        Some(path) => Settings::from_file(path)?,
        None => Settings::default(),
    };
    let config = Config::resolve(cli.settings.or(file))?;
    init_tracing(config.log_format);
    if let Some(Command::Migrate) = cli.command {
        voxbridge::store::connect(&config.database_url).await.context("migrating")?;
        println!("migrations applied");
        return Ok(());
    }
    let app = voxbridge::Application::build(config).await?;
    let g = &app.generated;
    if !g.is_empty() {
        println!("voxbridge generated credentials (shown once; store them now):");
        if let Some(k) = &g.api_key {
            println!("  VOXBRIDGE_API_KEY={k}");
        }
        if let Some(s) = &g.api_secret {
            println!("  VOXBRIDGE_API_SECRET={s}");
        }
        if let Some(s) = &g.signature_secret {
            println!("  VOXBRIDGE_SIGNATURE_SECRET={s}");
        }
    }
    if let Some(cert) = &app.tls_cert {
        tracing::info!(cert = %cert.display(), "HTTPS certificate");
    }
    let https = app.https_addr.map(|a| format!(" https=https://{a}")).unwrap_or_default();
    println!(
        "voxbridge ready http=http://{}{https} sip=udp://{} sips=tls://{}",
        app.http_addr, app.sip_addr, app.sip_tls_addr
    );
    app.run_until_stopped().await.context("server")
}
