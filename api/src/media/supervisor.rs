//! Keeps a media process connected: runs a local `voxbridge-media` child (or dials a remote
//! node), and when the connection drops or the child exits, reports [`MediaEvent::ProcessLost`],
//! turns unavailable, and starts over with backoff (100 ms doubling to 2 s) until a new
//! connection reports [`MediaEvent::ProcessReady`]. [`MediaControl`] calls go to whichever
//! client is connected at the time; with none, they fail with [`MediaError::Unavailable`].
//!
//! The child is started with `VOXBRIDGE_MEDIA_CONTROL_ADDR=127.0.0.1:0` and announces its real
//! address on stdout (`voxbridge-media ready control=ws://ADDR version=V`); its stderr (logs) is
//! inherited. Dropping the supervisor ends its task, which kills the child.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

use super::client::MediaClient;
use super::{MediaControl, MediaEndpoint, MediaError, MediaEvent, MediaStats};

const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// A process that stayed up this long restarts with the first backoff again.
const STABLE_AFTER: Duration = Duration::from_secs(10);
/// How long a starting child may take to print its ready line.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

struct Shared {
    current: RwLock<Option<MediaClient>>,
    events: broadcast::Sender<MediaEvent>,
    available: watch::Sender<bool>,
    child_pid: AtomicU32,
}

impl Shared {
    fn up(&self, client: MediaClient) {
        tracing::info!(url = client.url(), version = client.version(), "media process ready");
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Some(client);
        self.available.send_replace(true);
        let _ = self.events.send(MediaEvent::ProcessReady);
    }

    fn down(&self) {
        self.current.write().unwrap_or_else(|e| e.into_inner()).take();
        self.available.send_replace(false);
        let _ = self.events.send(MediaEvent::ProcessLost);
    }
}

/// How to run a local media process.
#[derive(Debug, Clone)]
struct LocalSpec {
    bin: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

pub struct MediaSupervisor {
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Drop for MediaSupervisor {
    fn drop(&mut self) {
        // The task owns the child (kill_on_drop): ending it kills the process.
        self.task.abort();
    }
}

impl MediaSupervisor {
    /// The media binary: `VOXBRIDGE_MEDIA_BIN`, else `voxbridge-media` next to this executable
    /// (or one directory up, for test executables in `target/*/deps`).
    pub fn default_bin() -> PathBuf {
        if let Some(bin) = std::env::var_os("VOXBRIDGE_MEDIA_BIN").filter(|b| !b.is_empty()) {
            return PathBuf::from(bin);
        }
        let name = format!("voxbridge-media{}", std::env::consts::EXE_SUFFIX);
        let exe_dir = std::env::current_exe().ok().and_then(|e| e.parent().map(PathBuf::from)).unwrap_or_default();
        let beside = exe_dir.join(&name);
        match exe_dir.parent() {
            Some(up) if !beside.exists() && exe_dir.ends_with("deps") => up.join(&name),
            _ => beside,
        }
    }

    fn shared() -> Arc<Shared> {
        Arc::new(Shared {
            current: RwLock::new(None),
            events: broadcast::channel(1024).0,
            available: watch::channel(false).0,
            child_pid: AtomicU32::new(0),
        })
    }

    /// Runs `bin` (with extra `env`, e.g. `VOXBRIDGE_MEDIA_RTP_PORTS`; every media option has
    /// an environment variable) as a child process, connects to it, and keeps it running. Returns
    /// once the first child is ready, or that start's error (the child is then killed).
    pub async fn start_local(bin: PathBuf, env: Vec<(String, String)>) -> Result<Arc<Self>, MediaError> {
        Self::start_local_with_args(bin, Vec::new(), env).await
    }

    /// [`Self::start_local`] with command-line arguments for the child.
    pub async fn start_local_with_args(
        bin: PathBuf,
        args: Vec<String>,
        env: Vec<(String, String)>,
    ) -> Result<Arc<Self>, MediaError> {
        let spec = LocalSpec { bin, args, env };
        let shared = Self::shared();
        let (child, client) = spawn_local(&spec, &shared).await?;
        // Ready before this returns: the caller may use it at once.
        shared.child_pid.store(child.id().unwrap_or(0), Ordering::Relaxed);
        shared.up(client.clone());
        let task = tokio::spawn(run_local(shared.clone(), spec, Some((child, client))));
        Ok(Arc::new(MediaSupervisor { shared, task }))
    }

    /// Keeps a connection to an already-running media node at `url` (`ws://host:port`),
    /// reconnecting with backoff. Returns at once (call inside a tokio runtime); see
    /// [`Self::wait_available`].
    pub fn connect_remote(url: String) -> Arc<Self> {
        let shared = Self::shared();
        let task = tokio::spawn(run_remote(shared.clone(), url));
        Arc::new(MediaSupervisor { shared, task })
    }

    /// Waits until a media process is connected; false after `timeout`.
    pub async fn wait_available(&self, timeout: Duration) -> bool {
        let mut rx = self.shared.available.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|a| *a)).await.is_ok_and(|r| r.is_ok())
    }

    /// The process id of the local child while one runs (for tests and diagnostics).
    pub fn child_pid(&self) -> Option<u32> {
        Some(self.shared.child_pid.load(Ordering::Relaxed)).filter(|p| *p != 0)
    }

    /// The connected client, if any.
    pub fn client(&self) -> Option<MediaClient> {
        self.shared.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn current(&self) -> Result<MediaClient, MediaError> {
        self.client().filter(|c| !c.is_closed()).ok_or(MediaError::Unavailable)
    }
}

/// Supervises `first` (already reported ready), then restarts the child whenever it is lost.
async fn run_local(shared: Arc<Shared>, spec: LocalSpec, mut first: Option<(Child, MediaClient)>) {
    let mut backoff = BACKOFF_FIRST;
    loop {
        let started = tokio::time::Instant::now();
        let attempt = match first.take() {
            Some(ready) => Ok(ready),
            None => spawn_local(&spec, &shared).await.inspect(|(child, client)| {
                shared.child_pid.store(child.id().unwrap_or(0), Ordering::Relaxed);
                shared.up(client.clone());
            }),
        };
        match attempt {
            Ok((mut child, client)) => {
                let pid = child.id().unwrap_or(0);
                // `wait` closes the child's stdin, which the child takes as our death: keep it.
                let stdin = child.stdin.take();
                tokio::select! {
                    status = child.wait() => tracing::warn!(pid, ?status, "media process exited"),
                    () = client.closed() => tracing::warn!(pid, "media control connection lost"),
                }
                drop(client);
                drop(stdin);
                shared.down();
                let _ = child.start_kill();
                let _ = child.wait().await;
                shared.child_pid.store(0, Ordering::Relaxed);
                if started.elapsed() >= STABLE_AFTER {
                    backoff = BACKOFF_FIRST;
                }
            }
            Err(e) => tracing::warn!(bin = %spec.bin.display(), error = %e, "starting the media process failed"),
        }
        tracing::info!(delay_ms = backoff.as_millis() as u64, "restarting the media process");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// Starts the child, reads its ready line and connects. On error the child is dropped (killed).
async fn spawn_local(spec: &LocalSpec, shared: &Shared) -> Result<(Child, MediaClient), MediaError> {
    let mut child = Command::new(&spec.bin)
        .args(&spec.args)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .env("VOXBRIDGE_MEDIA_CONTROL_ADDR", "127.0.0.1:0")
        // The child exits when this pipe closes, so a killed control plane leaves no orphan.
        .env("VOXBRIDGE_MEDIA_EXIT_WITH_STDIN", "true")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| MediaError::Other(format!("spawning {}: {e}", spec.bin.display())))?;
    let stdout = child.stdout.take().ok_or_else(|| MediaError::Other("child has no stdout".into()))?;
    let mut lines = BufReader::new(stdout).lines();
    let ready = tokio::time::timeout(READY_TIMEOUT, async {
        loop {
            match lines.next_line().await {
                Ok(Some(line)) if line.starts_with("voxbridge-media ready") => return Ok(line),
                Ok(Some(line)) => tracing::debug!(%line, "media process output"),
                Ok(None) => return Err(MediaError::Other("media process exited before it was ready".into())),
                Err(e) => return Err(MediaError::Other(format!("reading media process output: {e}"))),
            }
        }
    })
    .await
    .map_err(|_| MediaError::Other("media process did not report ready".into()))??;
    let url = ready
        .split_whitespace()
        .find_map(|w| w.strip_prefix("control="))
        .ok_or_else(|| MediaError::Other(format!("no control address in '{ready}'")))?
        .to_owned();
    // Keep draining stdout so the child never blocks on a full pipe.
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            tracing::debug!(%line, "media process output");
        }
    });
    let client = MediaClient::connect(&url, shared.events.clone()).await?;
    Ok((child, client))
}

async fn run_remote(shared: Arc<Shared>, url: String) {
    let mut backoff = BACKOFF_FIRST;
    loop {
        let started = tokio::time::Instant::now();
        match MediaClient::connect(&url, shared.events.clone()).await {
            Ok(client) => {
                shared.up(client.clone());
                client.closed().await;
                drop(client);
                shared.down();
                tracing::warn!(%url, "media node connection lost");
                if started.elapsed() >= STABLE_AFTER {
                    backoff = BACKOFF_FIRST;
                }
            }
            Err(e) => tracing::warn!(%url, error = %e, "connecting to the media node failed"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

#[async_trait]
impl MediaControl for MediaSupervisor {
    async fn create_endpoint(
        &self,
        call_uuid: &str,
        remote_offer: Option<&str>,
        prefer: &[String],
    ) -> Result<MediaEndpoint, MediaError> {
        self.current()?.create_endpoint(call_uuid, remote_offer, prefer).await
    }

    async fn update_endpoint(&self, endpoint: &str, remote_sdp: &str) -> Result<String, MediaError> {
        self.current()?.update_endpoint(endpoint, remote_sdp).await
    }

    async fn bridge(&self, a: &str, b: &str) -> Result<(), MediaError> {
        self.current()?.bridge(a, b).await
    }

    async fn unbridge(&self, a: &str, b: &str) -> Result<(), MediaError> {
        self.current()?.unbridge(a, b).await
    }

    async fn destroy_endpoint(&self, endpoint: &str) -> Result<(), MediaError> {
        self.current()?.destroy_endpoint(endpoint).await
    }

    async fn endpoint_stats(&self, endpoint: &str) -> Result<MediaStats, MediaError> {
        self.current()?.endpoint_stats(endpoint).await
    }

    async fn command(&self, command: domains::media::Command) -> Result<domains::media::Reply, MediaError> {
        self.current()?.request(command).await
    }

    fn events(&self) -> broadcast::Receiver<MediaEvent> {
        self.shared.events.subscribe()
    }

    fn is_available(&self) -> bool {
        *self.shared.available.borrow()
    }
}
