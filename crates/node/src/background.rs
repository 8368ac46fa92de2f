//! Low-priority threads for work that has slack: verifying signatures.
//!
//! The store's commit thread is the one stage of the ingest that cannot be parallelised;
//! every other stage runs at several times its speed. At equal priority, bursts of
//! verification (one thread per core) kept the commit thread waiting for a core for about a
//! tenth of an ingest on a two-core machine. These threads run at
//! [`NICE`] (Linux): they still get every core the node's other threads leave idle, so on an
//! otherwise idle machine the verification rate is unchanged.

use rayon::ThreadPool;
use tracing::warn;

/// Niceness of the background threads (Linux; elsewhere they run at normal priority).
pub const NICE: i32 = 10;

/// The pool: one thread per core, shared by every pipeline of the process. `None` if no
/// thread could be started (then the work runs on rayon's global pool).
fn pool() -> Option<&'static ThreadPool> {
    static POOL: std::sync::OnceLock<Option<ThreadPool>> = std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .thread_name(|i| format!("chorus-bg-{i}"))
            .start_handler(|_| lower_priority(NICE))
            .build()
            .map_err(|e| warn!(error = %e, "no background pool; using rayon's global pool"))
            .ok()
    })
    .as_ref()
}

/// Runs `f` (which may use rayon's parallel iterators) on the background pool and waits.
pub(crate) fn install<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    match pool() {
        Some(p) => p.install(f),
        None => f(),
    }
}

/// Lowers the calling thread's scheduling priority by `by` (raising niceness needs no
/// privilege; it stops at 19, the lowest).
fn lower_priority(by: i32) {
    // On Linux, PRIO_PROCESS with no pid is the calling thread alone: threads are scheduled
    // (and niced) individually. Relative to the thread's current niceness, so a node that
    // was started niced keeps its background threads below its other threads.
    #[cfg(target_os = "linux")]
    {
        use rustix::process::{getpriority_process, setpriority_process};
        let set = getpriority_process(None)
            .and_then(|now| setpriority_process(None, now.saturating_add(by).min(19)));
        if let Err(e) = set {
            warn!(error = %e, "could not lower the priority of a background thread");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = by;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn background_threads_run_at_lower_priority() {
        #[cfg(target_os = "linux")]
        let base = rustix::process::getpriority_process(None).unwrap();
        let (nice, name) = install(|| {
            let name = std::thread::current().name().map(str::to_owned);
            #[cfg(target_os = "linux")]
            let nice = rustix::process::getpriority_process(None).ok();
            #[cfg(not(target_os = "linux"))]
            let nice: Option<i32> = None;
            (nice, name)
        });
        assert!(name.is_some_and(|n| n.starts_with("chorus-bg-")));
        // The pool's threads were niced relative to the thread that first used the pool,
        // which ran at this test thread's niceness or higher (no test raises priority).
        #[cfg(target_os = "linux")]
        assert!(
            nice.is_some_and(|n| n >= (base + NICE).min(19)),
            "{nice:?} from {base}"
        );
        let _ = nice;
    }
}
