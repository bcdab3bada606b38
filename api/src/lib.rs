//! voxbridge's control plane as a library: configuration, storage, the HTTP API, and the
//! [`Application`] that ties them together. `main.rs` only parses arguments and runs it.

#![deny(clippy::unwrap_used)]

pub mod account;
pub mod background;
pub mod calls;
pub mod config;
pub mod http;
pub mod keys;
pub mod media;
pub mod sip;
pub mod state;
pub mod store;
pub mod tls;
pub mod webhooks;

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;

use actix_web::{HttpServer, web};
use anyhow::Context;

use account::{Account, Generated};
use config::Config;
use state::AppState;

/// A built control plane: listeners bound (port 0 gets a real port), database migrated, SIP
/// edge and media process running.
pub struct Application {
    server: actix_web::dev::Server,
    pub http_addr: SocketAddr,
    pub sip_addr: SocketAddr,
    pub sip_tls_addr: SocketAddr,
    /// Kept alive for the life of the application (the supervisor owns the media process).
    _media: Arc<dyn media::MediaControl>,
    _edge: Arc<sip::Edge>,
    pub https_addr: Option<SocketAddr>,
    pub tls_cert: Option<PathBuf>,
    /// Credentials generated at this start; the caller shows them once.
    pub generated: Generated,
}

impl Application {
    pub async fn build(mut config: Config) -> anyhow::Result<Application> {
        // Bound first: an ephemeral port (`:0`) is known before anything builds URLs to it.
        let http_listener =
            TcpListener::bind(config.http_addr).with_context(|| format!("binding {}", config.http_addr))?;
        let http_addr = http_listener.local_addr()?;
        if config.public_url.is_none() {
            config.public_url = Some(format!("http://{http_addr}"));
        }
        let db = store::connect(&config.database_url).await.context("opening the database")?;
        let background = background::Background::start().context("starting the background runtime")?;
        let (account, generated) = Account::bootstrap(&db, &config).await.context("loading the account")?;
        let openapi_json = web::Data::new(http::openapi().to_json().context("rendering OpenAPI")?);
        let config = Arc::new(config);
        http::health::prometheus();
        let media = start_media(&config).await?;
        let webhooks: Arc<dyn webhooks::WebhookSender> = Arc::new(
            webhooks::http::HttpWebhooks::new(account.signature_secret.clone(), account.api_key.clone())
                .with_twilio(account.twilio.clone())
                .on(background.clone()),
        );
        // The writer's own connection, made on the runtime that uses it.
        let url = config.database_url.clone();
        let records_db = background
            .run(async move { store::connect(&url).await })
            .await
            .context("the background runtime stopped")?
            .context("opening the database for the call-record writer")?;
        let records = store::records::CallRecords::start_on(background.handle(), records_db);
        let provisioning =
            Arc::new(store::cache::ProvisioningCache::new(db.clone(), std::time::Duration::from_secs(5)));
        let edge =
            sip::Edge::start(config.clone(), media.clone(), webhooks, records.clone(), provisioning.clone(), &account)
                .await
                .with_context(|| format!("binding SIP on {}", config.sip_addr))?;
        let sip_addr = edge.local_addr();
        let sip_tls_addr =
            edge.listen_tls().await.with_context(|| format!("binding SIP TLS on {}", config.sip_tls_addr))?;
        let state = web::Data::new(AppState {
            db,
            config: config.clone(),
            account: Arc::new(account),
            records,
            provisioning,
            calls: edge.registry.clone(),
            edge: edge.clone(),
        });

        let server_state = state.clone();
        let mut server = HttpServer::new(move || http::app(server_state.clone(), openapi_json.clone()))
            .workers(2)
            // Longer than the 5 s default, as nginx does: a client reusing an idle
            // pooled connection must not race the server closing it.
            .keep_alive(std::time::Duration::from_secs(75))
            .shutdown_timeout(5)
            .listen(http_listener)?;
        let (mut https_addr, mut tls_cert) = (None, None);
        if let Some(addr) = config.https_addr {
            let (tls, cert) = tls::server_config(config.as_ref())?;
            let listener = TcpListener::bind(addr).with_context(|| format!("binding {addr}"))?;
            https_addr = Some(listener.local_addr()?);
            tls_cert = Some(cert);
            server = server.listen_rustls_0_23(listener, tls)?;
        }
        Ok(Application {
            server: server.run(),
            http_addr,
            sip_addr,
            sip_tls_addr,
            _media: media,
            _edge: edge,
            https_addr,
            tls_cert,
            generated,
        })
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

/// The media process: remote nodes when configured, else a local `voxbridge-media` that is
/// started here and restarted when it dies.
async fn start_media(config: &Config) -> anyhow::Result<Arc<dyn media::MediaControl>> {
    use media::supervisor::MediaSupervisor;
    if let Some(url) = config.media_urls.first() {
        return Ok(MediaSupervisor::connect_remote(url.clone()));
    }
    let bin = MediaSupervisor::default_bin();
    anyhow::ensure!(
        bin.exists(),
        "media process binary {} not found (build it, or set VOXBRIDGE_MEDIA_BIN)",
        bin.display()
    );
    let env = vec![
        ("VOXBRIDGE_MEDIA_RTP_PORTS".to_owned(), config.rtp_ports.clone()),
        ("VOXBRIDGE_MEDIA_RECORDINGS_DIR".to_owned(), config.recordings_dir().display().to_string()),
    ];
    Ok(MediaSupervisor::start_local(bin, env).await?)
}
