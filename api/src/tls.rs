//! Server certificates for HTTPS (and later SIP over TLS): the configured PEM pair, or a
//! self-signed pair generated once into the data directory.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::Config;

/// The certificate and key files in use.
pub fn cert_paths(config: &Config) -> anyhow::Result<(PathBuf, PathBuf)> {
    if let (Some(cert), Some(key)) = (&config.tls_cert, &config.tls_key) {
        return Ok((cert.clone(), key.clone()));
    }
    let dir = config.data_dir.join("tls");
    let (cert, key) = (dir.join("self-signed-cert.pem"), dir.join("self-signed-key.pem"));
    if !(cert.exists() && key.exists()) {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let names =
            vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned(), config.sip_base_domain.clone()];
        let generated = rcgen::generate_simple_self_signed(names).context("generating a self-signed certificate")?;
        std::fs::write(&cert, generated.cert.pem())?;
        write_private(&key, &generated.key_pair.serialize_pem())?;
        tracing::info!(cert = %cert.display(), "generated a self-signed TLS certificate");
    }
    Ok((cert, key))
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    opts.open(path)?.write_all(contents.as_bytes())
}

/// A rustls server configuration (TLS 1.2 and 1.3) for the certificate in use.
pub fn server_config(config: &Config) -> anyhow::Result<(rustls::ServerConfig, PathBuf)> {
    let (cert_path, key_path) = cert_paths(config)?;
    let certs = CertificateDer::pem_file_iter(&cert_path)
        .with_context(|| format!("reading {}", cert_path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parsing {}", cert_path.display()))?;
    let key = PrivateKeyDer::from_pem_file(&key_path).with_context(|| format!("reading {}", key_path.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS12, &rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("certificate and key do not match")?;
    Ok((server, cert_path))
}

/// Client configuration for outbound SIP over TLS: the public web PKI roots (bundled, so no
/// system store is needed) plus any CA the operator adds for private PBXs.
pub fn client_config(extra_ca: Option<&Path>) -> anyhow::Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = extra_ca {
        for cert in CertificateDer::pem_file_iter(path).with_context(|| format!("reading {}", path.display()))? {
            roots.add(cert.with_context(|| format!("parsing {}", path.display()))?)?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS12, &rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_no_client_auth())
}
