//! Compaction: the store rewritten into a fresh sled database, its next generation
//! ([`super::generation`]), offline (`chorus compact`, [`compact`]) or while the node runs
//! (the [`Compactor`] a node starts, [`Store::compact_online`]).
//!
//! sled's log keeps old versions of pages until its segments are cleaned, and it cleans a
//! segment only when half of it is stale, so a store that grew by ingest takes several times
//! the bytes its keys and values need (BENCHMARKS.md: about 6,400 bytes per record on disk,
//! about 1,600 once rewritten at a million records). A rewrite copies the keys in key order,
//! in batches, into a new database, which sled then lays out densely.
//!
//! **Online.** The copy is made beside the live database while the node goes on:
//! 1. the copy's tree becomes the store's *mirror*: from now on every write set is written
//!    to the copy too, under the store's write lock;
//! 2. the live tree is copied in key order, a batch of [`ONLINE_BATCH`] keys at a time, each
//!    batch under the write lock (so a batch never interleaves with a write set), with a
//!    pause after each as long as the batch took, so writes keep at least half the time;
//!    a key a write set changes before the scan reaches it is copied again, as it then is,
//!    and one it changes after is mirrored, so the copy ends equal to the live tree;
//! 3. under the write lock and the flush lock: the live database is flushed (its intents
//!    retired), the copy flushed, `GENERATION` switched to the copy, and the store's handles
//!    replaced by the copy's ([`super::Current`]); the old generation is then removed.
//!
//! A crash before the switch leaves the old generation active (the partial copy is swept at
//! the next open); after it, the copy, complete and durable. A failed mirror write or copy
//! batch (a full disk, say) abandons the copy, never the store. sled's batches switch on its
//! process-wide read lock for good (see `intent`); here that costs readers a wait of one
//! batch at most, and only while a compaction runs.
//!
//! **Offline**, the copy is the same without a mirror, in larger batches, and holds the lock
//! file (`STORE.lock`) that keeps it and a node's open of the store apart.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::generation::{self, Active};
use super::{open_db, Handles, Store, MAIN_TREE};
use crate::error::{Error, Result};

pub use super::generation::disk_bytes;

/// What a compaction did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compacted {
    /// Bytes of the store's directory before.
    pub before: u64,
    /// Bytes after.
    pub after: u64,
    /// Keys copied (every tree).
    pub keys: u64,
}

/// Keys per batch written into an offline copy.
const BATCH: usize = 10_000;

/// Keys per batch of an online copy: each holds up writes (and, through sled's global lock,
/// reads) for a few milliseconds.
pub const ONLINE_BATCH: usize = 1_000;

/// A store gaining records faster than this is busy ingesting (catching up, say): a copy
/// would slow that ingest and could not keep up with it, so compaction waits for calm.
pub const BUSY_RECORDS_PER_S: f64 = 1_000.0;

/// When the node compacts its store while it runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// Compact when the database takes more than this many times the bytes per record the
    /// last compaction left ([`FIRST_BYTES_PER_RECORD`] before any).
    pub ratio: f64,
    /// Never compact a database smaller than this.
    pub min_bytes: u64,
    /// How often to look.
    pub every: Duration,
}

/// What a compacted record is assumed to take before the store was ever compacted (a
/// compaction at a million records left about 1,600 bytes; smaller stores take more).
pub const FIRST_BYTES_PER_RECORD: u64 = 2_000;

impl Default for Policy {
    fn default() -> Self {
        Policy {
            ratio: 2.0,
            min_bytes: 64 * 1024 * 1024,
            every: Duration::from_secs(60),
        }
    }
}

impl Policy {
    /// Bytes a copy of a store of `records` records is expected to need, with a margin.
    pub fn copy_bytes(&self, records: u64, last: Option<(u64, u64)>) -> u64 {
        (records as f64 * per_record(last) * 1.5) as u64 + 64 * 1024 * 1024
    }

    /// Is there room for the copy on a disk with `free` bytes free (`None`: not known)?
    pub fn has_room(&self, free: Option<u64>, records: u64, last: Option<(u64, u64)>) -> bool {
        free.is_none_or(|free| free >= self.copy_bytes(records, last))
    }

    /// Is a database of `bytes` holding `records` records worth compacting, given what the
    /// last compaction left?
    pub fn due(&self, records: u64, bytes: u64, last: Option<(u64, u64)>) -> bool {
        bytes >= self.min_bytes
            && bytes as f64 > self.ratio * per_record(last) * records.max(1) as f64
    }
}

/// Bytes per record a compacted store takes: what the last compaction left, else
/// [`FIRST_BYTES_PER_RECORD`].
fn per_record(last: Option<(u64, u64)>) -> f64 {
    match last {
        Some((r, b)) if r > 0 => b as f64 / r as f64,
        _ => FIRST_BYTES_PER_RECORD as f64,
    }
}

/// The lock that keeps an offline compaction and an open of the same store apart
/// (`STORE.lock` beside the store; held by [`compact`] throughout and by an open until sled
/// holds its own lock). Released when the file is dropped.
pub(crate) fn lock(dir: &Path) -> Result<std::fs::File> {
    let name = dir
        .file_name()
        .ok_or_else(|| Error::Config(format!("{} names no directory", dir.display())))?;
    let mut name = name.to_os_string();
    name.push(".lock");
    let path = dir.with_file_name(name);
    if let Some(p) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(p)?;
    }
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)?;
    match fs2::FileExt::try_lock_exclusive(&f) {
        Ok(()) => Ok(f),
        Err(e) if e.kind() == fs2::lock_contended_error().kind() => Err(Error::Config(format!(
            "{} is being compacted or opened by another process; try again when it is done",
            dir.display()
        ))),
        Err(e) => Err(e.into()),
    }
}

/// The store's records count, as its main tree keeps it.
fn records_of(tree: &sled::Tree) -> Result<u64> {
    use super::codec::Stored;
    match tree.get(super::keys::COUNT)? {
        Some(v) => u64::decode(&v),
        None => Ok(0),
    }
}

/// Rewrites the store in `dir` compactly into its next generation, with the node stopped (a
/// running node holds the database's lock: refused). `progress` is told the keys copied so
/// far, every batch.
pub fn compact(dir: &Path, mut progress: impl FnMut(u64)) -> Result<Compacted> {
    let _lock = lock(dir)?;
    let no_store = || Error::Config(format!("no store in {}", dir.display()));
    if !dir.is_dir() {
        return Err(no_store());
    }
    generation::sweep(dir)?;
    let active = generation::active(dir)?;
    if !active.path.join("conf").exists() {
        return Err(no_store());
    }
    let before = disk_bytes(dir)?;
    let src = open_db(&active.path).map_err(|e| {
        if super::is_lock_error(&e) {
            Error::Config(format!(
                "the store in {} is in use: stop the node first",
                dir.display()
            ))
        } else {
            e.into()
        }
    })?;
    let (n, copy) = generation::prepare_next(dir, &active)?;
    let made = copy_offline(&src, &active, &copy, &mut progress).and_then(|(keys, records)| {
        let bytes = disk_bytes(&copy)?;
        generation::switch(dir, n, records, bytes)?;
        Ok(keys)
    });
    drop(src);
    let keys = match made {
        Ok(k) => k,
        Err(e) => {
            // A full disk, say: nothing changed but the copy, which goes.
            let _ = std::fs::remove_dir_all(&copy);
            return Err(e);
        }
    };
    generation::sweep(dir)?;
    Ok(Compacted {
        before,
        after: disk_bytes(dir)?,
        keys,
    })
}

/// Copies every tree of `src` (intents too: a store a crash left is finished at the next
/// open either way) into a new database in `copy`, settles it, and carries the index
/// snapshot over if the store has one. Returns the keys copied and the records held.
fn copy_offline(
    src: &sled::Db,
    active: &Active,
    copy: &Path,
    progress: &mut impl FnMut(u64),
) -> Result<(u64, u64)> {
    let dst = open_db(copy)?;
    let mut keys = 0u64;
    for name in src.tree_names() {
        let from = src.open_tree(&name)?;
        let to = dst.open_tree(&name)?;
        let mut batch = sled::Batch::default();
        let mut n = 0;
        for kv in from.iter() {
            let (k, v) = kv?;
            batch.insert(k, v);
            n += 1;
            if n == BATCH {
                to.apply_batch(std::mem::take(&mut batch))?;
                keys += n as u64;
                n = 0;
                progress(keys);
            }
        }
        to.apply_batch(batch)?;
        keys += n as u64;
    }
    let records = records_of(&dst.open_tree(MAIN_TREE)?)?;
    dst.flush()?;
    drop(dst);
    // Opened once more, sled writes its page-table snapshot: the next open need not replay
    // the whole copy's log (Store::settle).
    drop(open_db(copy)?);
    let snapshot = active.path.join(super::snapshot::FILE);
    if snapshot.exists() {
        let to = copy.join(super::snapshot::FILE);
        std::fs::copy(&snapshot, &to)?;
        std::fs::File::open(&to)?.sync_all()?;
    }
    generation::sync_dir(copy)?;
    Ok((keys, records))
}

impl Store {
    /// Compacts the store while it is in use (the module docs say how); returns what it did,
    /// or `None` if `stop` was set first. Refused for a temporary store, while the indexes
    /// are rebuilt, after a failed write, and while another compaction runs.
    pub fn compact_online(&self, stop: &AtomicBool) -> Result<Option<Compacted>> {
        self.compact_online_with(stop, &mut |_| true)
    }

    /// [`Store::compact_online`], calling `between` with the keys copied so far after each
    /// batch, outside the write lock (tests write there); the copy is abandoned (`None`) as
    /// soon as it returns false.
    pub(crate) fn compact_online_with(
        &self,
        stop: &AtomicBool,
        between: &mut dyn FnMut(u64) -> bool,
    ) -> Result<Option<Compacted>> {
        let refuse = |why: &str| Err(Error::Config(format!("cannot compact now: {why}")));
        let Some(root) = self.root.clone() else {
            return refuse("the store is temporary");
        };
        if !self.indexes_ready() {
            return refuse("the indexes are being rebuilt");
        }
        if self.broken.load(Ordering::Acquire) {
            return refuse("an earlier write failed");
        }
        let active = generation::active(&root)?;
        let before = disk_bytes(&root)?;
        let (n, path) = generation::prepare_next(&root, &active)?;
        let copy = match self.start_mirror(&path) {
            Ok(c) => c,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&path);
                return Err(e);
            }
        };
        let done = self
            .copy_online(&copy, stop, between)
            .and_then(|keys| match keys {
                Some(keys) => self.switch_to(&root, n, &path, copy, keys).map(Some),
                None => Ok(None),
            });
        match done {
            Ok(Some(keys)) => {
                generation::sweep(&root)?;
                Ok(Some(Compacted {
                    before,
                    after: disk_bytes(&root)?,
                    keys,
                }))
            }
            Ok(None) | Err(_) => {
                *self.mirror.lock().unwrap_or_else(|e| e.into_inner()) = None;
                let _ = std::fs::remove_dir_all(&path);
                done.map(|_| None)
            }
        }
    }

    /// Opens the copy in `path` and makes it the mirror of every write set from now on.
    fn start_mirror(&self, path: &Path) -> Result<(sled::Db, sled::Tree)> {
        let db = open_db(path)?;
        let tree = db.open_tree(MAIN_TREE)?;
        let _w = self.sync.lock().unwrap_or_else(|e| e.into_inner());
        let mut mirror = self.mirror.lock().unwrap_or_else(|e| e.into_inner());
        if mirror.is_some() {
            return Err(Error::Config(
                "cannot compact now: a compaction is running".into(),
            ));
        }
        *mirror = Some(tree.clone());
        Ok((db, tree))
    }

    /// Step 2: the live tree into the copy, batch by batch. Returns the keys copied, or
    /// `None` if stopped.
    fn copy_online(
        &self,
        (_, to): &(sled::Db, sled::Tree),
        stop: &AtomicBool,
        between: &mut dyn FnMut(u64) -> bool,
    ) -> Result<Option<u64>> {
        let mut after: Option<sled::IVec> = None;
        let mut keys = 0u64;
        loop {
            if stop.load(Ordering::Acquire) {
                return Ok(None);
            }
            let began = Instant::now();
            let n = {
                let _w = self.sync.lock().unwrap_or_else(|e| e.into_inner());
                if self
                    .mirror
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .is_none()
                {
                    return Err(Error::Config(
                        "compaction: a write to the copy failed".into(),
                    ));
                }
                let from = self.cur.tree()?;
                let range = match &after {
                    None => from.range::<&[u8], _>(..),
                    Some(k) => from.range::<&[u8], _>((
                        std::ops::Bound::Excluded(k.as_ref()),
                        std::ops::Bound::Unbounded,
                    )),
                };
                let mut batch = sled::Batch::default();
                let mut n = 0;
                for kv in range.take(ONLINE_BATCH) {
                    let (k, v) = kv?;
                    batch.insert(k.clone(), v);
                    after = Some(k);
                    n += 1;
                }
                to.apply_batch(batch)?;
                n
            };
            keys += n as u64;
            if n < ONLINE_BATCH {
                return Ok(Some(keys));
            }
            if !between(keys) {
                return Ok(None);
            }
            // Writers get at least as much time as the copy takes.
            std::thread::sleep(began.elapsed());
        }
    }

    /// Step 3: the copy, flushed, made the active generation and the store's database.
    fn switch_to(
        &self,
        root: &Path,
        n: u64,
        path: &Path,
        (db, tree): (sled::Db, sled::Tree),
        keys: u64,
    ) -> Result<u64> {
        let _w = self.sync.lock().unwrap_or_else(|e| e.into_inner());
        let _f = self.flushing.lock().unwrap_or_else(|e| e.into_inner());
        let mut mirror = self.mirror.lock().unwrap_or_else(|e| e.into_inner());
        if mirror.is_none() {
            return Err(Error::Config(
                "compaction: a write to the copy failed".into(),
            ));
        }
        self.flush_held(&*self.cur.get()?)?;
        db.flush()?;
        let records = records_of(&tree)?;
        let intents = super::intent::Intents::open(&db, &tree)?;
        generation::switch(root, n, records, disk_bytes(path)?)?;
        *mirror = None;
        self.cur.replace(Handles {
            db,
            tree,
            intents,
            dir: Some(path.to_path_buf()),
        });
        drop(mirror);
        tracing::info!(
            records,
            keys,
            generation = n,
            "compaction: the store now runs on its compacted copy"
        );
        // Readers that loaded the old handles finish on them; its files go at the sweep.
        Ok(keys)
    }

    /// Starts compacting this store in the background whenever `policy` says it is due (the
    /// node does; tests and tools call [`Store::compact_online`]). Returns the store to clone
    /// from: its clones share the compactor, which [`Store::close`] stops, as does dropping
    /// the last clone.
    pub fn with_compaction(mut self, policy: Policy) -> Result<Store> {
        if self.root.is_none() || self.compactor.is_some() {
            return Ok(self);
        }
        let mut own = self.clone();
        own.compactor = None;
        self.compactor = Some(Arc::new(Compactor::spawn(own, policy)?));
        Ok(self)
    }
}

/// How long a window the ingest rate is measured over during a copy.
const RATE_WINDOW: Duration = Duration::from_secs(5);

/// The store's growth in records per second since the last look.
struct Rate {
    at: Instant,
    records: u64,
}

impl Rate {
    fn new(store: &Store) -> Rate {
        Rate {
            at: Instant::now(),
            records: store.len().unwrap_or(0),
        }
    }

    /// Did the store gain more than [`BUSY_RECORDS_PER_S`] since the last call?
    fn busy(&mut self, store: &Store) -> bool {
        let now = store.len().unwrap_or(self.records);
        let secs = self.at.elapsed().as_secs_f64().max(1e-3);
        let per_s = now.saturating_sub(self.records) as f64 / secs;
        *self = Rate {
            at: Instant::now(),
            records: now,
        };
        per_s > BUSY_RECORDS_PER_S
    }
}

/// The background compaction of a running node: a thread that looks every
/// [`Policy::every`] and compacts when the policy says so.
pub struct Compactor {
    stop: Arc<AtomicBool>,
    wake: Mutex<Option<std::sync::mpsc::SyncSender<()>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Compactor {
    fn spawn(store: Store, policy: Policy) -> Result<Compactor> {
        let stop = Arc::new(AtomicBool::new(false));
        let (wake, woken) = std::sync::mpsc::sync_channel::<()>(1);
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("chorus-compact".into())
            .spawn(move || {
                let mut rate = Rate::new(&store);
                // Ends when stopped: the sender is dropped.
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    woken.recv_timeout(policy.every)
                {
                    if flag.load(Ordering::Acquire) {
                        break;
                    }
                    if let Err(e) = Self::look(&store, &policy, &flag, &mut rate) {
                        tracing::warn!(error = %e, "compaction failed; the store is unchanged");
                    }
                }
            })?;
        Ok(Compactor {
            stop,
            wake: Mutex::new(Some(wake)),
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Compacts if due and the store is not busy.
    fn look(store: &Store, policy: &Policy, stop: &AtomicBool, rate: &mut Rate) -> Result<()> {
        let Some(root) = &store.root else {
            return Ok(());
        };
        if !store.indexes_ready() || store.broken.load(Ordering::Acquire) {
            return Ok(());
        }
        if rate.busy(store) {
            return Ok(());
        }
        let bytes = store.size_on_disk()?;
        let records = store.len()?;
        let last = generation::active(root)?.compacted;
        if !policy.due(records, bytes, last) {
            return Ok(());
        }
        // The copy is made on the disk the live store writes to: never fill it.
        let free = store.free_bytes();
        if !policy.has_room(free, records, last) {
            tracing::info!(
                free,
                need = policy.copy_bytes(records, last),
                "compaction postponed: not enough free disk space for the copy"
            );
            return Ok(());
        }
        tracing::info!(
            records,
            bytes,
            "compaction: rewriting the store while it runs"
        );
        let began = Instant::now();
        let mut busy = false;
        let mut last_look = Instant::now();
        let done = store.compact_online_with(stop, &mut |_| {
            if last_look.elapsed() >= RATE_WINDOW {
                last_look = Instant::now();
                busy = rate.busy(store);
            }
            !busy
        })?;
        match done {
            Some(c) => tracing::info!(
                before = c.before,
                after = c.after,
                secs = began.elapsed().as_secs(),
                "compaction done"
            ),
            None if busy => tracing::info!("compaction postponed: the node is busy ingesting"),
            None => {}
        }
        Ok(())
    }

    /// Stops the thread (a compaction under way is abandoned) and waits for it; idempotent.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        drop(self.wake.lock().unwrap_or_else(|e| e.into_inner()).take());
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(t) = thread {
            if t.join().is_err() {
                tracing::error!("the compaction thread panicked");
            }
        }
    }
}

impl Drop for Compactor {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests;

/// The directory of the generation a store in `dir` runs on (tools and tests).
pub fn active_dir(dir: &Path) -> Result<PathBuf> {
    Ok(generation::active(dir)?.path)
}
