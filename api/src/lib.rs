//! voxbridge's control plane as a library: configuration, storage, the HTTP API, and the
//! [`Application`] that ties them together. `main.rs` only parses arguments and runs it.

#![deny(clippy::unwrap_used)]

pub mod account;
pub mod config;
pub mod http;
pub mod keys;
pub mod state;
pub mod store;
pub mod tls;

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;

use actix_web::{HttpServer, web};
use anyhow::Context;

use account::{Account, Generated};
use config::Config;
use state::AppState;

/// A built control plane: listeners bound (port 0 gets a real port), database migrated.
pub struct Application {
    server: actix_web::dev::Server,
    pub http_addr: SocketAddr,
    pub https_addr: Option<SocketAddr>,
    pub tls_cert: Option<PathBuf>,
    /// Credentials generated at this start; the caller shows them once.
    pub generated: Generated,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        let db = store::connect(&config.database_url).await.context("opening the database")?;
        let (account, generated) = Account::bootstrap(&db, &config).await.context("loading the account")?;
        let openapi_json = web::Data::new(http::openapi().to_json().context("rendering OpenAPI")?);
        let state = web::Data::new(AppState { db, config: Arc::new(config.clone()), account: Arc::new(account) });
        http::health::prometheus();

        let http_listener =
            TcpListener::bind(config.http_addr).with_context(|| format!("binding {}", config.http_addr))?;
        let http_addr = http_listener.local_addr()?;
        let server_state = state.clone();
        let mut server = HttpServer::new(move || http::app(server_state.clone(), openapi_json.clone()))
            .workers(2)
            .shutdown_timeout(5)
            .listen(http_listener)?;
        let (mut https_addr, mut tls_cert) = (None, None);
        if let Some(addr) = config.https_addr {
            let (tls, cert) = tls::server_config(&config)?;
            let listener = TcpListener::bind(addr).with_context(|| format!("binding {addr}"))?;
            https_addr = Some(listener.local_addr()?);
            tls_cert = Some(cert);
            server = server.listen_rustls_0_23(listener, tls)?;
        }
        Ok(Application { server: server.run(), http_addr, https_addr, tls_cert, generated })
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}
