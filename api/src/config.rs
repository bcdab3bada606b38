//! Configuration: command-line flags, environment variables and an optional TOML file, in that
//! order of precedence, resolved once at start-up into a [`Config`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use serde::Deserialize;

/// Every setting an operator may give. The same struct is read from flags/environment (clap)
/// and from the TOML file (serde), so a setting is declared once.
#[derive(Debug, Clone, Default, Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// HTTP listen address.
    #[arg(long, env = "VOXBRIDGE_HTTP_ADDR")]
    pub http_addr: Option<SocketAddr>,
    /// HTTPS listen address (same API over TLS). Off unless set.
    #[arg(long, env = "VOXBRIDGE_HTTPS_ADDR")]
    pub https_addr: Option<SocketAddr>,
    /// PEM certificate chain for HTTPS; a self-signed pair is generated when unset.
    #[arg(long, env = "VOXBRIDGE_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for HTTPS.
    #[arg(long, env = "VOXBRIDGE_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// sqlite://… or postgres://…; default: a SQLite file in the data directory.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,
    /// Where voxbridge keeps its SQLite file, generated certificates and recordings.
    #[arg(long, env = "VOXBRIDGE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// The account's API key (HTTP Basic user); generated and stored when unset.
    #[arg(long, env = "VOXBRIDGE_API_KEY")]
    pub api_key: Option<String>,
    /// The account's API secret (HTTP Basic password); generated and stored when unset.
    #[arg(long, env = "VOXBRIDGE_API_SECRET", hide_env_values = true)]
    pub api_secret: Option<String>,
    /// HS256 secret that signs webhooks; generated and stored when unset.
    #[arg(long, env = "VOXBRIDGE_SIGNATURE_SECRET", hide_env_values = true)]
    pub signature_secret: Option<String>,
    /// Base of the Programmable SIP hosts NAME.sip-REGION.BASE.
    #[arg(long, env = "VOXBRIDGE_SIP_BASE_DOMAIN")]
    pub sip_base_domain: Option<String>,
    /// Digest challenges offered, in order (comma-separated: `MD5`, `SHA-256`).
    #[arg(long, env = "VOXBRIDGE_SIP_DIGEST_ALGORITHMS", value_delimiter = ',')]
    pub sip_digest_algorithms: Option<Vec<String>>,
    /// Comma-separated region labels.
    #[arg(long, env = "VOXBRIDGE_REGIONS", value_delimiter = ',')]
    pub regions: Option<Vec<String>>,
    /// Log format: text or json.
    #[arg(long, env = "VOXBRIDGE_LOG_FORMAT")]
    pub log_format: Option<LogFormat>,
    /// SIP over UDP and TCP (one address for both).
    #[arg(long, env = "VOXBRIDGE_SIP_ADDR")]
    pub sip_addr: Option<SocketAddr>,
    /// SIP over TLS.
    #[arg(long, env = "VOXBRIDGE_SIP_TLS_ADDR")]
    pub sip_tls_addr: Option<SocketAddr>,
    /// Extra CA certificates (PEM) trusted for outbound SIP over TLS, besides the public roots.
    #[arg(long, env = "VOXBRIDGE_SIP_TLS_CA")]
    pub sip_tls_ca: Option<PathBuf>,
    /// The DNS server outbound legs are resolved with (RFC 3263: NAPTR, SRV, A/AAAA);
    /// default: the system's (`/etc/resolv.conf`).
    #[arg(long, env = "VOXBRIDGE_DNS_SERVER")]
    pub dns_server: Option<SocketAddr>,
    /// Host (name or IP) put in Via and Contact; default: the SIP address, or 127.0.0.1 when
    /// that is a wildcard.
    #[arg(long, env = "VOXBRIDGE_SIP_PUBLIC_HOST")]
    pub sip_public_host: Option<String>,
    /// Base URL of this API given to applications as `region_url`.
    #[arg(long, env = "VOXBRIDGE_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Comma-separated ws:// URLs of remote media processes; when unset a local
    /// `voxbridge-media` is started and supervised.
    #[arg(long, env = "VOXBRIDGE_MEDIA_URLS", value_delimiter = ',')]
    pub media_urls: Option<Vec<String>>,
    /// RTP port range of the local media process, e.g. 10000-20000.
    #[arg(long, env = "VOXBRIDGE_RTP_PORTS")]
    pub rtp_ports: Option<String>,
    /// `User-Agent` of voxbridge's SIP requests and `Server` of its responses.
    #[arg(long, env = "VOXBRIDGE_SIP_USER_AGENT")]
    pub sip_user_agent: Option<String>,
    /// New INVITE/REGISTER/OPTIONS transactions per second accepted from one source address.
    #[arg(long, env = "VOXBRIDGE_SIP_RATE_PER_SOURCE")]
    pub sip_rate_per_source: Option<u32>,
    /// New INVITE/REGISTER/OPTIONS transactions per second accepted from all sources together.
    #[arg(long, env = "VOXBRIDGE_SIP_RATE_GLOBAL")]
    pub sip_rate_global: Option<u32>,
    /// What a request over a rate limit gets: `reject` (503 with Retry-After) or `drop`.
    #[arg(long, env = "VOXBRIDGE_SIP_FLOOD_ACTION")]
    pub sip_flood_action: Option<LimitAction>,
    /// Failed digest attempts from one source address, per window, before it is locked out.
    #[arg(long, env = "VOXBRIDGE_SIP_AUTH_FAILURES_PER_SOURCE")]
    pub sip_auth_failures_per_source: Option<u32>,
    /// Failed digest attempts for one user (from any source), per window, before the user is
    /// locked out for sources it has not authenticated from.
    #[arg(long, env = "VOXBRIDGE_SIP_AUTH_FAILURES_PER_USER")]
    pub sip_auth_failures_per_user: Option<u32>,
    /// The window (seconds) the failure budgets above refill over.
    #[arg(long, env = "VOXBRIDGE_SIP_AUTH_FAILURE_WINDOW_SECS")]
    pub sip_auth_failure_window_secs: Option<u64>,
    /// How long (seconds) a locked-out source or user stays locked out.
    #[arg(long, env = "VOXBRIDGE_SIP_AUTH_LOCKOUT_SECS")]
    pub sip_auth_lockout_secs: Option<u64>,
    /// What a locked-out source gets: `reject` (403) or `drop` (silence).
    #[arg(long, env = "VOXBRIDGE_SIP_AUTH_LOCKOUT_ACTION")]
    pub sip_auth_lockout_action: Option<LimitAction>,
    /// Outbound calls per second one application may create over the Voice API (above: 429).
    #[arg(long, env = "VOXBRIDGE_OUTBOUND_CPS")]
    pub outbound_cps: Option<u32>,
    /// Outbound calls created over the Voice API that may be in progress at once (above: 429).
    #[arg(long, env = "VOXBRIDGE_OUTBOUND_MAX_CALLS")]
    pub outbound_max_calls: Option<u32>,
    /// Seconds between OPTIONS probes of every trunk gateway and registered contact (a PBX's
    /// `qualify_frequency`); 0 turns probing off.
    #[arg(long, env = "VOXBRIDGE_TRUNK_QUALIFY_SECS")]
    pub trunk_qualify_secs: Option<u64>,
}

/// What a request refused by a limit gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LimitAction {
    /// A final response (503 with Retry-After for floods, 403 for lockouts).
    #[default]
    Reject,
    /// Silence: the request is dropped (costs an attacker a timeout, and us nothing).
    Drop,
}

/// The SIP edge's protection limits (ARCHITECTURE "order of checks", step 2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipLimits {
    pub requests_per_source: u32,
    pub requests_global: u32,
    pub flood_action: LimitAction,
    pub auth_failures_per_source: u32,
    pub auth_failures_per_user: u32,
    pub auth_failure_window: std::time::Duration,
    pub auth_lockout: std::time::Duration,
    pub auth_lockout_action: LimitAction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl Settings {
    /// Fills every setting left unset here from `other`.
    pub fn or(self, other: Settings) -> Settings {
        Settings {
            http_addr: self.http_addr.or(other.http_addr),
            https_addr: self.https_addr.or(other.https_addr),
            tls_cert: self.tls_cert.or(other.tls_cert),
            tls_key: self.tls_key.or(other.tls_key),
            database_url: self.database_url.or(other.database_url),
            data_dir: self.data_dir.or(other.data_dir),
            api_key: self.api_key.or(other.api_key),
            api_secret: self.api_secret.or(other.api_secret),
            signature_secret: self.signature_secret.or(other.signature_secret),
            sip_base_domain: self.sip_base_domain.or(other.sip_base_domain),
            regions: self.regions.or(other.regions),
            sip_digest_algorithms: self.sip_digest_algorithms.or(other.sip_digest_algorithms),
            log_format: self.log_format.or(other.log_format),
            sip_addr: self.sip_addr.or(other.sip_addr),
            sip_tls_addr: self.sip_tls_addr.or(other.sip_tls_addr),
            sip_tls_ca: self.sip_tls_ca.or(other.sip_tls_ca),
            dns_server: self.dns_server.or(other.dns_server),
            sip_public_host: self.sip_public_host.or(other.sip_public_host),
            public_url: self.public_url.or(other.public_url),
            media_urls: self.media_urls.or(other.media_urls),
            rtp_ports: self.rtp_ports.or(other.rtp_ports),
            sip_user_agent: self.sip_user_agent.or(other.sip_user_agent),
            sip_rate_per_source: self.sip_rate_per_source.or(other.sip_rate_per_source),
            sip_rate_global: self.sip_rate_global.or(other.sip_rate_global),
            sip_flood_action: self.sip_flood_action.or(other.sip_flood_action),
            sip_auth_failures_per_source: self.sip_auth_failures_per_source.or(other.sip_auth_failures_per_source),
            sip_auth_failures_per_user: self.sip_auth_failures_per_user.or(other.sip_auth_failures_per_user),
            sip_auth_failure_window_secs: self.sip_auth_failure_window_secs.or(other.sip_auth_failure_window_secs),
            sip_auth_lockout_secs: self.sip_auth_lockout_secs.or(other.sip_auth_lockout_secs),
            sip_auth_lockout_action: self.sip_auth_lockout_action.or(other.sip_auth_lockout_action),
            outbound_cps: self.outbound_cps.or(other.outbound_cps),
            outbound_max_calls: self.outbound_max_calls.or(other.outbound_max_calls),
            trunk_qualify_secs: self.trunk_qualify_secs.or(other.trunk_qualify_secs),
        }
    }

    pub fn from_file(path: &Path) -> anyhow::Result<Settings> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }
}

/// The resolved configuration the process runs with.
#[derive(Debug, Clone)]
pub struct Config {
    pub http_addr: SocketAddr,
    pub https_addr: Option<SocketAddr>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub database_url: String,
    pub data_dir: PathBuf,
    pub api_key: Option<String>,
    pub api_secret: Option<String>,
    pub signature_secret: Option<String>,
    pub sip_base_domain: String,
    pub regions: Vec<String>,
    pub log_format: LogFormat,
    pub sip_addr: SocketAddr,
    pub sip_tls_addr: SocketAddr,
    pub sip_tls_ca: Option<PathBuf>,
    pub dns_server: Option<SocketAddr>,
    pub sip_public_host: Option<String>,
    pub public_url: Option<String>,
    pub media_urls: Vec<String>,
    pub rtp_ports: String,
    pub sip_user_agent: String,
    pub sip_limits: SipLimits,
    pub outbound: OutboundLimits,
    /// The digest challenges offered, in order.
    pub sip_digest_algorithms: Vec<domains::digest::DigestAlgorithm>,
    /// Between OPTIONS probes of trunk gateways; zero: no probing.
    pub trunk_qualify: std::time::Duration,
}

/// What protects the account from its own applications (and their leaked keys): the Voice
/// API's outbound call budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboundLimits {
    /// Calls created per second, per application.
    pub calls_per_second: u32,
    /// Calls created over the API in progress at once, for the node.
    pub max_calls: u32,
}

impl Config {
    /// Where the local media process writes recordings and `/v1/files` reads them.
    pub fn recordings_dir(&self) -> PathBuf {
        self.data_dir.join("recordings")
    }

    pub fn resolve(s: Settings) -> anyhow::Result<Config> {
        let data_dir = s.data_dir.unwrap_or_else(|| PathBuf::from("data"));
        let database_url = s
            .database_url
            .unwrap_or_else(|| format!("sqlite://{}?mode=rwc", data_dir.join("voxbridge.sqlite").display()));
        let regions: Vec<String> = s
            .regions
            .unwrap_or_else(|| vec!["us".into(), "eu".into(), "ap".into()])
            .into_iter()
            .map(|r| r.trim().to_ascii_lowercase())
            .filter(|r| !r.is_empty())
            .collect();
        anyhow::ensure!(!regions.is_empty(), "at least one region is required");
        for r in &regions {
            anyhow::ensure!(
                r.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'),
                "region '{r}' must be a DNS label"
            );
        }
        anyhow::ensure!(s.tls_cert.is_some() == s.tls_key.is_some(), "set both tls_cert and tls_key, or neither");
        let positive = |name: &str, v: Option<u32>, default: u32| -> anyhow::Result<u32> {
            let v = v.unwrap_or(default);
            anyhow::ensure!(v > 0, "{name} must be at least 1");
            Ok(v)
        };
        let secs = |name: &str, v: Option<u64>, default: u64| -> anyhow::Result<std::time::Duration> {
            let v = v.unwrap_or(default);
            anyhow::ensure!((1..=86_400).contains(&v), "{name} must be 1 to 86400 seconds");
            Ok(std::time::Duration::from_secs(v))
        };
        // Defaults: a busy PBX trunk stays well under 50 new transactions/s; a password
        // guesser is stopped after 10 tries a minute from one address, or 50 a minute against
        // one user from everywhere (pike/htable-like figures).
        let sip_limits = SipLimits {
            requests_per_source: positive("sip_rate_per_source", s.sip_rate_per_source, 50)?,
            requests_global: positive("sip_rate_global", s.sip_rate_global, 1000)?,
            flood_action: s.sip_flood_action.unwrap_or_default(),
            auth_failures_per_source: positive("sip_auth_failures_per_source", s.sip_auth_failures_per_source, 10)?,
            auth_failures_per_user: positive("sip_auth_failures_per_user", s.sip_auth_failures_per_user, 50)?,
            auth_failure_window: secs("sip_auth_failure_window_secs", s.sip_auth_failure_window_secs, 60)?,
            auth_lockout: secs("sip_auth_lockout_secs", s.sip_auth_lockout_secs, 300)?,
            auth_lockout_action: s.sip_auth_lockout_action.unwrap_or_default(),
        };
        let sip_user_agent = s.sip_user_agent.map(|u| u.trim().to_owned()).unwrap_or_else(|| "voxbridge".into());
        anyhow::ensure!(
            !sip_user_agent.is_empty() && !sip_user_agent.chars().any(char::is_control),
            "sip_user_agent must be a non-empty header value"
        );
        Ok(Config {
            http_addr: s.http_addr.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
            https_addr: s.https_addr,
            tls_cert: s.tls_cert,
            tls_key: s.tls_key,
            database_url,
            data_dir,
            api_key: s.api_key.filter(|k| !k.is_empty()),
            api_secret: s.api_secret.filter(|k| !k.is_empty()),
            signature_secret: s.signature_secret.filter(|k| !k.is_empty()),
            sip_base_domain: s.sip_base_domain.unwrap_or_else(|| "sip.voxbridge.local".into()).to_ascii_lowercase(),
            regions,
            log_format: s.log_format.unwrap_or_default(),
            sip_addr: s.sip_addr.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 5060))),
            sip_tls_addr: s.sip_tls_addr.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 5061))),
            sip_tls_ca: s.sip_tls_ca,
            dns_server: s.dns_server,
            sip_public_host: s.sip_public_host,
            public_url: s.public_url,
            media_urls: s.media_urls.unwrap_or_default().into_iter().filter(|u| !u.trim().is_empty()).collect(),
            rtp_ports: s.rtp_ports.unwrap_or_else(|| "10000-20000".into()),
            sip_user_agent,
            sip_limits,
            // Vonage's default budget is a few calls per second per account; 10/s and 500 at
            // once keep a runaway script from dialling a trunk dry.
            outbound: OutboundLimits {
                calls_per_second: positive("outbound_cps", s.outbound_cps, 10)?,
                max_calls: positive("outbound_max_calls", s.outbound_max_calls, 500)?,
            },
            // Asterisk's qualify default is 60 s; 30 s finds a dead gateway within a minute.
            trunk_qualify: std::time::Duration::from_secs(s.trunk_qualify_secs.unwrap_or(30)),
            sip_digest_algorithms: digest_algorithms(s.sip_digest_algorithms)?,
        })
    }

    pub fn addressing(&self) -> domains::psip::SipAddressing {
        domains::psip::SipAddressing { base_domain: self.sip_base_domain.clone(), regions: self.regions.clone() }
    }
}

/// The configured digest challenges (default MD5 then SHA-256); an unknown name or an empty
/// list is refused at start.
fn digest_algorithms(names: Option<Vec<String>>) -> anyhow::Result<Vec<domains::digest::DigestAlgorithm>> {
    let Some(names) = names else { return Ok(domains::digest::DigestAlgorithm::OFFERED.to_vec()) };
    let parsed = names
        .iter()
        .map(|n| n.trim())
        .filter(|n| !n.is_empty())
        .map(|n| {
            domains::digest::DigestAlgorithm::parse(n)
                .map_err(|_| anyhow::anyhow!("sip_digest_algorithms: {n:?} is not MD5 or SHA-256"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    anyhow::ensure!(!parsed.is_empty(), "sip_digest_algorithms: at least one of MD5, SHA-256");
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_beat_file_and_defaults_fill_the_rest() {
        let flags = Settings { regions: Some(vec!["EU".into(), " us".into()]), ..Default::default() };
        let file: Settings = toml::from_str("regions = [\"ap\"]\nsip_base_domain = \"SIP.Example.com\"").unwrap();
        let c = Config::resolve(flags.or(file)).unwrap();
        assert_eq!(c.regions, ["eu", "us"]);
        assert_eq!(c.sip_base_domain, "sip.example.com");
        assert_eq!(c.http_addr.to_string(), "127.0.0.1:8080");
        assert!(c.database_url.starts_with("sqlite://data/voxbridge.sqlite"));
    }

    #[test]
    fn digest_algorithms_are_configured_in_order() {
        use domains::digest::DigestAlgorithm::{Md5, Sha256};
        assert_eq!(digest_algorithms(None).unwrap(), [Md5, Sha256]);
        assert_eq!(digest_algorithms(Some(vec!["md5".into()])).unwrap(), [Md5]);
        assert_eq!(digest_algorithms(Some(vec!["SHA-256".into(), " MD5".into()])).unwrap(), [Sha256, Md5]);
        assert!(digest_algorithms(Some(vec!["SHA-1".into()])).is_err());
        assert!(digest_algorithms(Some(vec![" ".into()])).is_err());
    }

    #[test]
    fn unknown_file_keys_are_refused() {
        assert!(toml::from_str::<Settings>("http_adr = \"x\"").is_err());
    }
}
