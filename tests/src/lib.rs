//! Harness for the end-to-end tests: starts the real `voxbridge` binary on free loopback ports
//! with its own database (a fresh SQLite file, or a fresh PostgreSQL database when
//! `VOXBRIDGE_TEST_POSTGRES` names a server), and talks to it over HTTP.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use base64::Engine;

pub mod app;
pub mod dns;
pub mod kamailio;
pub mod media_process;
pub mod python;
pub mod raw;
pub mod rtp;
pub mod sipp;
pub mod speech;

pub const API_KEY: &str = "testkey1";
pub const API_SECRET: &str = "test-secret-123";
pub const SIGNATURE_SECRET: &str = "test-signature-secret-0123456789";

/// Path of a workspace binary, next to the test executable's `deps/` directory. The test
/// command builds the binaries before running the tests.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target directory");
    let path = dir.join(name);
    assert!(path.exists(), "{} is not built; run `cargo build --workspace` first", path.display());
    path
}

/// A private RTP port range per server, so parallel tests never compete for ports.
fn rtp_range() -> String {
    let block = rand::random::<u16>() % 100;
    let start = 10000 + u32::from(block) * 200;
    format!("{start}-{}", start + 199)
}

/// A database for one test: SQLite in `dir`, or a new PostgreSQL database.
pub async fn fresh_database(dir: &std::path::Path) -> anyhow::Result<String> {
    match std::env::var("VOXBRIDGE_TEST_POSTGRES") {
        Ok(admin_url) if !admin_url.is_empty() => {
            use sea_orm::ConnectionTrait;
            let name = format!("vb_t_{}", uuid::Uuid::new_v4().simple());
            let admin = sea_orm::Database::connect(&admin_url).await.context("connecting to PostgreSQL")?;
            admin.execute_unprepared(&format!("CREATE DATABASE {name}")).await?;
            admin.close().await?;
            let base = admin_url.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin_url);
            Ok(format!("{base}/{name}"))
        }
        _ => Ok(format!("sqlite://{}?mode=rwc", dir.join("voxbridge.sqlite").display())),
    }
}

pub struct Server {
    child: Child,
    pub base: String,
    pub https_base: Option<String>,
    /// host:port of the SIP listener (UDP and TCP).
    pub sip: Option<String>,
    /// host:port of the SIP TLS listener.
    pub sips: Option<String>,
    pub data_dir: tempdir::Dir,
    /// Everything the process printed on stdout up to "ready".
    pub banner: Vec<String>,
    pub client: reqwest::Client,
}

pub mod tempdir {
    //! A temporary directory removed on drop (tests avoid an extra crate for this).
    use std::path::{Path, PathBuf};

    pub struct Dir(PathBuf);

    impl Dir {
        pub fn new() -> Self {
            let p = std::env::temp_dir().join(format!("voxbridge-test-{}", uuid::Uuid::new_v4().simple()));
            std::fs::create_dir_all(&p).expect("create temp dir");
            Dir(p)
        }
        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Default for Dir {
        fn default() -> Self {
            Self::new()
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

#[derive(Default)]
pub struct Options {
    /// Extra environment variables (name, value).
    pub env: Vec<(String, String)>,
    /// Do not configure credentials: let the server generate them.
    pub no_credentials: bool,
    /// Reuse this data directory (and its SQLite file) instead of a fresh one.
    pub data_dir: Option<tempdir::Dir>,
    pub database_url: Option<String>,
    pub args: Vec<String>,
}

impl Server {
    pub async fn start() -> Server {
        Self::start_with(Options::default()).await.expect("voxbridge starts")
    }

    pub async fn start_with(opts: Options) -> anyhow::Result<Server> {
        let data_dir = opts.data_dir.unwrap_or_default();
        let db = match opts.database_url {
            Some(url) => url,
            None => fresh_database(data_dir.path()).await?,
        };
        let mut cmd = Command::new(bin("voxbridge"));
        cmd.args(&opts.args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", std::env::var("VBTEST_LOG").unwrap_or_else(|_| "warn".into()))
            .env("VOXBRIDGE_HTTP_ADDR", "127.0.0.1:0")
            .env("VOXBRIDGE_SIP_ADDR", "127.0.0.1:0")
            .env("VOXBRIDGE_SIP_TLS_ADDR", "127.0.0.1:0")
            .env("VOXBRIDGE_RTP_PORTS", rtp_range())
            .env("VOXBRIDGE_DATA_DIR", data_dir.path())
            .env("DATABASE_URL", &db)
            // Gateway probes would reach the fake gateways that count what they get; the test
            // of probing turns them on.
            .env("VOXBRIDGE_TRUNK_QUALIFY_SECS", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if !opts.no_credentials {
            cmd.env("VOXBRIDGE_API_KEY", API_KEY)
                .env("VOXBRIDGE_API_SECRET", API_SECRET)
                .env("VOXBRIDGE_SIGNATURE_SECRET", SIGNATURE_SECRET);
        }
        for (k, v) in &opts.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().context("spawning voxbridge")?;
        let stdout = child.stdout.take().context("stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut banner = Vec::new();
        let ready = loop {
            match rx.recv_timeout(Duration::from_secs(30)) {
                Ok(line) if line.starts_with("voxbridge ready ") => break line,
                Ok(line) => banner.push(line),
                Err(_) => {
                    let _ = child.kill();
                    bail!("voxbridge did not become ready; printed: {banner:?}");
                }
            }
        };
        let field = |name: &str| ready.split_whitespace().find_map(|w| w.strip_prefix(name).map(str::to_owned));
        let base = field("http=").context("ready line lacks http=")?;
        let sip = field("sip=").and_then(|s| s.strip_prefix("udp://").map(str::to_owned));
        let sips = field("sips=").and_then(|s| s.strip_prefix("tls://").map(str::to_owned));
        let https_base = field("https=");
        let client = reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .timeout(Duration::from_secs(30))
            // Below the server's keep-alive, so a pooled connection is never reused as it closes.
            .pool_idle_timeout(Duration::from_secs(30))
            .build()?;
        Ok(Server { child, base, https_base, sip, sips, data_dir, banner, client })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request with the account's Basic credentials.
    pub fn admin(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, self.url(path)).basic_auth(API_KEY, Some(API_SECRET))
    }

    pub async fn post_json(&self, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        send(self.admin(reqwest::Method::POST, path).json(&body)).await
    }

    pub async fn put_json(&self, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        send(self.admin(reqwest::Method::PUT, path).json(&body)).await
    }

    pub async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        send(self.admin(reqwest::Method::GET, path)).await
    }

    pub async fn delete(&self, path: &str) -> (u16, serde_json::Value) {
        send(self.admin(reqwest::Method::DELETE, path)).await
    }

    /// Creates an application with webhooks on `base_url` and a generated key pair;
    /// returns (id, private key PEM).
    pub async fn create_application(&self, base_url: &str) -> (String, String) {
        let (status, body) = self
            .post_json(
                "/v2/applications",
                serde_json::json!({
                    "name": "test app",
                    "capabilities": {"voice": {"webhooks": {
                        "answer_url": {"address": format!("{base_url}/answer"), "http_method": "GET"},
                        "event_url": {"address": format!("{base_url}/event"), "http_method": "POST"}
                    }}}
                }),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        let id = body["id"].as_str().expect("id").to_owned();
        let key = body["keys"]["private_key"].as_str().expect("generated private key").to_owned();
        (id, key)
    }
}

/// Asks `probe` every 250 ms until it says `Ok`, for up to `within`; then its last answer.
pub async fn eventually<T, E, Fut>(within: std::time::Duration, mut probe: impl FnMut() -> Fut) -> Result<T, E>
where
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let answer = probe().await;
        if answer.is_ok() || tokio::time::Instant::now() > deadline {
            return answer;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

/// Sends a request; returns the status and the JSON body (Null when empty or not JSON).
pub async fn send(req: reqwest::RequestBuilder) -> (u16, serde_json::Value) {
    let resp = req.send().await.expect("request sent");
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(serde_json::Value::Null))
}

/// Asserts a problem body with `status` naming each of `names` in `invalid_parameters`.
pub fn assert_problem(status: u16, body: &serde_json::Value, expected: u16, names: &[&str]) {
    assert_eq!(status, expected, "{body}");
    for key in ["type", "title", "detail", "instance"] {
        assert!(body[key].is_string(), "problem body lacks {key}: {body}");
    }
    let got: Vec<&str> = body["invalid_parameters"]
        .as_array()
        .map(|a| a.iter().filter_map(|p| p["name"].as_str()).collect())
        .unwrap_or_default();
    for name in names {
        assert!(got.contains(name), "expected invalid parameter {name} in {body}");
    }
}

pub fn basic(key: &str, secret: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{key}:{secret}")))
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A server, a fake application answering with an NCCO, and a Programmable SIP domain for it.
pub struct SipEnv {
    pub server: Server,
    pub app: app::FakeApp,
    pub app_id: String,
    pub private_key: String,
    /// The domain's US host, e.g. `acme-sip.sip-us.sip.voxbridge.local`.
    pub host: String,
    /// host:port of voxbridge's SIP listener.
    pub sip: String,
}

impl SipEnv {
    pub async fn start(ncco: serde_json::Value, acl: &[&str], digest_user: Option<(&str, &str)>) -> SipEnv {
        Self::start_with_env(ncco, acl, digest_user, vec![]).await
    }

    /// As [`SipEnv::start`], with extra environment for the server.
    pub async fn start_with_env(
        ncco: serde_json::Value,
        acl: &[&str],
        digest_user: Option<(&str, &str)>,
        env: Vec<(String, String)>,
    ) -> SipEnv {
        let server = Server::start_with(Options { env, ..Default::default() }).await.expect("voxbridge starts");
        let app = app::FakeApp::start(ncco).await;
        let (app_id, private_key) = server.create_application(&app.base).await;
        let (status, body) = server
            .post_json(
                "/v1/psip",
                serde_json::json!({"name": "acme-sip", "application_id": app_id, "acl": acl, "digest_auth": digest_user.is_some()}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        if let Some((key, secret)) = digest_user {
            let (status, body) =
                server.post_json("/v1/psip/acme-sip/users", serde_json::json!({"key": key, "secret": secret})).await;
            assert_eq!(status, 201, "{body}");
        }
        let sip = server.sip.clone().expect("SIP listener address");
        SipEnv { server, app, app_id, private_key, host: "acme-sip.sip-us.sip.voxbridge.local".into(), sip }
    }

    /// Sets fields of the application's `capabilities.voice` (`{"sip_transport": "udp"}`),
    /// keeping the rest.
    pub async fn set_voice(&self, fields: serde_json::Value) {
        let path = format!("/v2/applications/{}", self.app_id);
        let (status, mut app) = self.server.get(&path).await;
        assert_eq!(status, 200, "{app}");
        if let (Some(voice), Some(fields)) = (app["capabilities"]["voice"].as_object_mut(), fields.as_object()) {
            voice.extend(fields.clone());
        }
        let body = serde_json::json!({"name": app["name"], "capabilities": app["capabilities"]});
        let (status, body) = self.server.put_json(&path, body).await;
        assert_eq!(status, 200, "{body}");
    }

    /// A Voice API JWT for the application.
    pub fn jwt(&self) -> String {
        let now = chrono::Utc::now().timestamp();
        let claims = serde_json::json!({"application_id": self.app_id, "iat": now, "exp": now + 600, "jti": uuid::Uuid::new_v4().to_string()});
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(self.private_key.as_bytes()).expect("key");
        jsonwebtoken::encode(&jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256), &claims, &key).expect("jwt")
    }

    pub async fn calls(&self) -> serde_json::Value {
        send(self.server.client.get(self.server.url("/v1/calls")).bearer_auth(self.jwt())).await.1
    }
}
