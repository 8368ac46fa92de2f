//! Rebuilding the in-memory indexes (the sync index and the [`Seen`] filter) from the tree,
//! when a store opens without a snapshot of them (after a crash, or the first start of a
//! version that wrote none).
//!
//! A small store rebuilds them before it opens ([`now`]). A large one opens at once with
//! both empty and not ready, and a thread rebuilds them while the node serves
//! ([`Builder::spawn`]): the filter answers "maybe" for every key until it is full (lookups
//! read sled, answers stay right), and the sync index answers no reconciliation until it
//! has every key (the node answers sync `not_ready` and pulls nothing). The sync index is
//! built first, a slice of keys at a time under the store's index lock, so writes go on
//! between slices ([`SyncIndex::build_step`]); then the filter, which needs no lock (keys
//! written meanwhile were added to it before they were written).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use super::cache::Seen;
use super::keys;
use super::sync_index::SyncIndex;
use crate::error::Result;

/// Stores of up to this many records rebuild their indexes before they open (well under a
/// second); larger ones rebuild them in the background.
pub const BACKGROUND_ABOVE: u64 = 20_000;

/// `t` keys read per hold of the index lock while building in the background (a few
/// milliseconds, so a write set waits no longer than that).
const SLICE: usize = 4_096;

/// Both indexes from every topic, record and slot key of `tree`, at once.
pub(crate) fn now(tree: &sled::Tree) -> Result<(SyncIndex, Seen)> {
    let seen = Seen::default();
    fill(tree, &seen, &AtomicBool::new(false))?;
    Ok((SyncIndex::build(tree)?, seen))
}

/// Adds every record and slot key of `tree` to `seen` (stopping early if `stop` is set).
pub(super) fn fill(tree: &sled::Tree, seen: &Seen, stop: &AtomicBool) -> Result<bool> {
    for prefix in [keys::RECORD, keys::SLOT] {
        for (n, kv) in tree.scan_prefix([prefix]).enumerate() {
            if n % SLICE == 0 && stop.load(Ordering::Acquire) {
                return Ok(false);
            }
            let (k, _) = kv?;
            seen.insert_all(std::iter::once(&k.to_vec()));
        }
    }
    Ok(true)
}

/// What a background rebuild fills in, and the flags it sets.
pub(crate) struct Targets {
    /// The sync index, made by [`SyncIndex::building`].
    pub(crate) sync: Arc<Mutex<SyncIndex>>,
    /// The filter, made by [`Seen::unready`].
    pub(crate) seen: Arc<Seen>,
    /// Set once the sync index is complete (what the sync paths test, without the lock).
    pub(crate) sync_ready: Arc<AtomicBool>,
    /// Set if the rebuild fails: the store writes nothing more until it is reopened.
    pub(crate) broken: Arc<AtomicBool>,
}

/// A background rebuild: stopped (and waited for) by [`Builder::stop`], or when dropped.
pub(crate) struct Builder {
    stop: Arc<AtomicBool>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Builder {
    /// Starts building the sync index and then the filter from `tree` on a thread of its
    /// own.
    pub(crate) fn spawn(tree: sled::Tree, to: Targets) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("chorus-index".into())
            .spawn(move || {
                let start = std::time::Instant::now();
                match build(&tree, &to, &flag) {
                    Ok(true) => tracing::info!(
                        millis = start.elapsed().as_millis() as u64,
                        "indexes rebuilt"
                    ),
                    Ok(false) => tracing::debug!("index rebuild stopped"),
                    Err(e) => {
                        // Not ready stays not ready (sync is refused, lookups read sled);
                        // writes stop, so nothing piles up for an index that cannot end.
                        to.sync.lock().unwrap_or_else(|e| e.into_inner()).fail();
                        to.broken.store(true, Ordering::Release);
                        tracing::error!(error = %e, "index rebuild failed; restart the node");
                    }
                }
            })?;
        Ok(Builder {
            stop,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Stops the rebuild and waits for its thread (idempotent).
    pub(crate) fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        self.join();
    }

    /// Waits for the rebuild to end.
    pub(crate) fn join(&self) {
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(t) = thread {
            let _ = t.join();
        }
    }
}

impl Drop for Builder {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The rebuild itself: whether it finished (rather than being stopped).
fn build(tree: &sled::Tree, to: &Targets, stop: &AtomicBool) -> Result<bool> {
    loop {
        if stop.load(Ordering::Acquire) {
            return Ok(false);
        }
        let mut ix = to.sync.lock().unwrap_or_else(|e| e.into_inner());
        if ix.build_step(tree, SLICE)? {
            break;
        }
    }
    to.sync_ready.store(true, Ordering::Release);
    tracing::info!("sync index rebuilt; answering sync");
    if !fill(tree, &to.seen, stop)? {
        return Ok(false);
    }
    to.seen.set_ready();
    Ok(true)
}
