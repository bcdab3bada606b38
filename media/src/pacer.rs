//! The paced work of the media process — WebSocket streams and conference mixing, which must
//! produce a frame every 20 ms — runs on a runtime of its own, on its own thread. On the main
//! runtime it queued behind every relay task: with 500 calls relaying, a WebSocket frame was up
//! to 8.6 ms late (p99). Here only paced tasks share the thread, and the relay's sockets keep
//! working from it (tokio's I/O resources may be polled from any runtime while theirs runs).

use std::future::Future;
use std::sync::OnceLock;

static PACER: OnceLock<tokio::runtime::Handle> = OnceLock::new();

/// The paced runtime, started on first use.
fn handle() -> &'static tokio::runtime::Handle {
    PACER.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        let started = std::thread::Builder::new().name("media-pacer".into()).spawn(move || {
            raise_priority();
            match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => {
                    let _ = tx.send(Some(rt.handle().clone()));
                    rt.block_on(std::future::pending::<()>());
                }
                Err(e) => {
                    tracing::error!(error = %e, "no paced runtime: paced work runs on the main one");
                    let _ = tx.send(None);
                }
            }
        });
        let paced = started.ok().and_then(|_| rx.recv().ok().flatten());
        // Without a thread of its own, paced work runs where it is spawned from.
        paced.unwrap_or_else(tokio::runtime::Handle::current)
    })
}

/// Real-time scheduling (`SCHED_FIFO`, low priority) for the pacer thread where the process
/// may have it (root, or `CAP_SYS_NICE`): a frame due then preempts relay work at once instead
/// of waiting for the scheduler's next slice. Paced work is a few hundred microseconds a
/// second per stream, so it cannot starve the relay; elsewhere it runs at normal priority.
fn raise_priority() {
    use thread_priority::{
        RealtimeThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy, set_thread_priority_and_policy,
        thread_native_id,
    };
    let fifo = ThreadSchedulePolicy::Realtime(RealtimeThreadSchedulePolicy::Fifo);
    match set_thread_priority_and_policy(thread_native_id(), ThreadPriority::Min, fifo) {
        Ok(()) => tracing::info!("paced work runs with real-time priority"),
        Err(e) => tracing::info!(error = ?e, "paced work runs at normal priority (no real-time scheduling here)"),
    }
}

/// Spawns `task` on the paced runtime.
pub fn spawn<F>(task: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    handle().spawn(task)
}
