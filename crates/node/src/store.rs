//! The sled-backed store: records by id (verbatim wire bytes), their indexes, the derived
//! values, the arrival journal and the sync index; nothing here knows how records change
//! derived values (that is `crate::tally`) or when peers reconcile (`crate::sync`).
//!
//! Everything lives in one sled tree (layout in `keys`). One ingest chunk — records, index
//! entries and the derived values they change — is one write set, built in an `Overlay` of
//! pending writes over what is stored (`index`: the record and index writes; the overlay
//! itself: the typed derived values of [`values`], encoded by `codec`) and made
//! crash-atomic by a redo intent written before it (`intent`). The store keeps caches in
//! front of sled (`cache`) and range fingerprints of the records for catch-up sync
//! ([`sync_index`]).

pub(crate) mod cache;
pub(crate) mod codec;
pub mod compact;
pub(crate) mod generation;
pub(crate) mod index;
pub(crate) mod intent;
pub(crate) mod journal;
pub(crate) mod keys;
mod lookup;
mod newest;
pub(crate) mod overlay;
mod rebuild;
pub(crate) mod search;
pub(crate) mod snapshot;
pub mod sync_index;
pub mod values;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use chorus_protocol::{AuthorKey, RecordId, SignedRecord, Topic};

use crate::error::{Error, Result, StorageFault};
use cache::{Hot, Seen};
use codec::Stored;
use intent::Writes;
use journal::Journal;
use keys::{ProductKey, SlotKey};
use overlay::{Backing, Layered, Memory};
use sync_index::SyncIndex;

pub use journal::{Journaled, Milestone};
pub use lookup::MIN_PREFIX;
pub use rebuild::BACKGROUND_ABOVE;
pub use search::{product_of, Found};
pub use snapshot::FILE as SNAPSHOT_FILE;
pub use sync_index::SyncView;
pub(crate) use values::Slot;
pub use values::{GroupTally, PetitionState, PetitionTally, Rating, ResponseInfo};

/// A key of derived state whose stored and recomputed values differ: (key, stored, fresh).
pub(crate) type Differing = (Vec<u8>, Option<Vec<u8>>, Option<Vec<u8>>);

/// A page of records and the cursor that continues after it.
#[derive(Debug, Clone)]
pub struct Page {
    /// The records, oldest first.
    pub records: Vec<SignedRecord>,
    /// Pass as `after` to get the next page; `None` at the end.
    pub next: Option<(u64, RecordId)>,
}

/// A page of a petition's endorsers: each one's winning record and whether it counts, and
/// the author to continue after (`None` at the end).
pub type EndorserPage = (Vec<(SignedRecord, bool)>, Option<AuthorKey>);

/// A key's standing in a group ([`Store::group_standings`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Standing {
    /// Its winning join slot: (record id, created_at, whether it joins: a retraction does not).
    pub join: Option<(RecordId, u64, bool)>,
    /// Whether the founder's latest admit of it is in force.
    pub admitted: bool,
}

/// The sled database a store reads and writes, with its intents and its directory.
pub(crate) struct Handles {
    pub(crate) db: sled::Db,
    pub(crate) tree: sled::Tree,
    pub(crate) intents: intent::Intents,
    /// The active generation's directory, where [`Store::close`] leaves the index snapshot
    /// (none for a temporary store).
    pub(crate) dir: Option<PathBuf>,
}

/// The store's current [`Handles`]. An online compaction replaces them whole, under the
/// store's write lock, with the copy it made ([`compact`]), and recovery from a storage
/// failure reopens them ([`Store::recover`]); everything else loads them for each read, so
/// no read goes to a database that writes no longer reach.
#[derive(Clone)]
pub(crate) struct Current(Arc<RwLock<Held>>);

enum Held {
    Open(Arc<Handles>),
    /// The database could not be reopened after a storage failure.
    Closed(StorageFault),
}

impl Current {
    pub(crate) fn new(h: Handles) -> Self {
        Current(Arc::new(RwLock::new(Held::Open(Arc::new(h)))))
    }

    /// The handles in use now.
    pub(crate) fn get(&self) -> Result<Arc<Handles>> {
        match &*self.0.read().unwrap_or_else(|e| e.into_inner()) {
            Held::Open(h) => Ok(h.clone()),
            Held::Closed(f) => Err(Error::Unwritable(f.clone())),
        }
    }

    /// The main tree in use now.
    pub(crate) fn tree(&self) -> Result<sled::Tree> {
        match &*self.0.read().unwrap_or_else(|e| e.into_inner()) {
            Held::Open(h) => Ok(h.tree.clone()),
            Held::Closed(f) => Err(Error::Unwritable(f.clone())),
        }
    }

    /// Puts `h` in place of the handles in use.
    pub(crate) fn replace(&self, h: Handles) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Held::Open(Arc::new(h));
    }

    /// Closes the database and opens it again with `open`; readers wait meanwhile. If it
    /// does not open, reads fail with `fault` (or what the open met) until a later reopen.
    fn reopen(&self, fault: StorageFault, open: impl FnOnce() -> Result<Handles>) -> Result<()> {
        let mut slot = self.0.write().unwrap_or_else(|e| e.into_inner());
        // Ours goes first: sled's lock on its file is released once every handle is gone
        // (readers that hold one finish soon; the open waits for them a little).
        *slot = Held::Closed(fault);
        match open() {
            Ok(h) => {
                *slot = Held::Open(Arc::new(h));
                Ok(())
            }
            Err(e) => {
                if let Some(f) = StorageFault::of(&e) {
                    *slot = Held::Closed(f);
                }
                Err(e)
            }
        }
    }
}

/// The node's store. Cloning is shallow: clones share the same database.
#[derive(Clone)]
pub struct Store {
    cur: Current,
    seen: Arc<Seen>,
    hot: Arc<Hot>,
    sync: Arc<Mutex<SyncIndex>>,
    journal: Arc<Journal>,
    /// Held across a flush and the retiring of the intents it covers: intents are retired
    /// in order.
    flushing: Arc<Mutex<()>>,
    /// Set when a write set failed part-way: the tree is not in step until the store is
    /// reopened (which finishes the write set from its intent), so nothing more is written.
    broken: Arc<std::sync::atomic::AtomicBool>,
    /// Why the last write failed, while `broken`.
    fault: Arc<Mutex<Option<StorageFault>>>,
    /// Bumped by every failed write or flush and every recovery ([`Store::era`]).
    era: Arc<std::sync::atomic::AtomicU64>,
    /// The store's directory, which holds its generations (none for a temporary store).
    root: Option<Arc<PathBuf>>,
    /// While an online compaction copies the store: the copy's tree, which every write set
    /// is also written to (under the write lock, `sync`).
    mirror: Arc<Mutex<Option<sled::Tree>>>,
    /// The online compaction's thread, if started ([`Store::with_compaction`]); the thread's
    /// own clone of the store has none, so dropping the last other clone stops it.
    compactor: Option<Arc<compact::Compactor>>,
    /// Set once a snapshot was saved: a write after it removes the snapshot first.
    saved: Arc<std::sync::atomic::AtomicBool>,
    /// The indexes came from a snapshot.
    restored: bool,
    /// The rebuild of the indexes in the background, if the store opened that way.
    rebuild: Option<Arc<rebuild::Builder>>,
    /// The sync index has every record (false only during a background rebuild).
    sync_ready: Arc<std::sync::atomic::AtomicBool>,
}

/// sled's page cache. The node's whole footprint stays under 400 MB at a million records
/// (BENCHMARKS.md); 96 MB was tried: no faster, and 412 MB at peak.
pub const CACHE_BYTES: u64 = 64 * 1024 * 1024;

/// Free bytes the disk needs before [`Store::recover`] reopens the database after a
/// failure (sled writes its page-table snapshot when it opens).
pub const RECOVER_FREE: u64 = 8 * 1024 * 1024;

/// The tree that holds everything but the intents.
pub(crate) const MAIN_TREE: &str = "chorus/v1";

/// How a store on disk is opened (by the node and by [`compact`]).
fn config(dir: &Path) -> sled::Config {
    sled::Config::new()
        .path(dir)
        // A modest cache keeps the node's memory flat; sled pages the rest from disk.
        .cache_capacity(CACHE_BYTES)
        .mode(sled::Mode::HighThroughput)
        // The ingest pipeline flushes each batch itself before acknowledging it.
        .flush_every_ms(None)
}

/// How long an open waits for sled's lock on the store's file. A database just dropped in
/// this process can hold it a little longer: sled's I/O threads finish their last writes
/// with their own handle on the file.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Is this sled's failure to take the store's file lock (the store is open elsewhere)?
/// sled words it so; the error's kind is lost in its wrapping.
fn is_lock_error(e: &sled::Error) -> bool {
    matches!(e, sled::Error::Io(io) if io.to_string().contains("could not acquire lock"))
}

/// Opens the sled database in `dir` ([`config`]), waiting up to [`LOCK_WAIT`] for a
/// handle this process just dropped to let go of the lock.
fn open_db(dir: &Path) -> sled::Result<sled::Db> {
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    loop {
        match config(dir).open() {
            Err(e) if is_lock_error(&e) && std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            r => return r,
        }
    }
}

/// What brings the derived state of a store written by an older version up to this one's
/// rules, run by [`Store::open_with`] once pending writes are replayed and before the
/// indexes are loaded; whether it rewrote anything. The rules are the tally's business:
/// `crate::tally::migrate` passes its own (and defines the public `Store::open`).
pub(crate) type Migrate<'a> = &'a dyn Fn(&sled::Db, &sled::Tree) -> Result<bool>;

impl Store {
    /// Opens (or creates) the store in `dir`, rebuilding the indexes in the background when
    /// the store holds more than `records` records (`0`: always; `u64::MAX`: never), and
    /// bringing its derived state up to date with `migrate`.
    pub(crate) fn open_with(dir: &Path, records: u64, migrate: Migrate<'_>) -> Result<Self> {
        // Held until sled holds its own lock: no offline compaction runs under an open.
        let _lock = compact::lock(dir)?;
        std::fs::create_dir_all(dir)?;
        generation::sweep(dir)?;
        let active = generation::active(dir)?;
        let db = open_db(&active.path)?;
        Self::from_db(db, Some((dir, &active.path)), records, migrate)
    }

    /// A store in a temporary directory, deleted when dropped (tests, benchmarks).
    pub fn temporary() -> Result<Self> {
        let db = sled::Config::new()
            .temporary(true)
            .cache_capacity(64 * 1024 * 1024)
            .flush_every_ms(None)
            .open()?;
        // Nothing stored yet: nothing to migrate, and the format is this version's.
        let current = |_: &sled::Db, tree: &sled::Tree| {
            tree.insert(keys::FORMAT, &[keys::FORMAT_VERSION])?;
            Ok(false)
        };
        Self::from_db(db, None, u64::MAX, &current)
    }

    /// `dirs`: the store's directory and its active generation's.
    fn from_db(
        db: sled::Db,
        dirs: Option<(&Path, &Path)>,
        background_above: u64,
        migrate: Migrate<'_>,
    ) -> Result<Self> {
        let tree = db.open_tree(MAIN_TREE)?;
        // The snapshot of a clean close, removed before anything is written.
        let records = match tree.get(keys::COUNT)? {
            Some(v) => u64::decode(&v)?,
            None => 0,
        };
        let snapshot = match dirs {
            Some((_, d)) => snapshot::take(d, records)?,
            None => None,
        };
        // First of all: finish any write set a crash interrupted.
        let intents = intent::Intents::open(&db, &tree)?;
        let migrated = migrate(&db, &tree)?;
        // A replayed intent wrote after the snapshot was taken (it cannot have been: a
        // clean close retires every intent first; but then the snapshot is not used). A
        // migration rewrote the slots the snapshot's filter knows: it is not used either.
        let snapshot = snapshot.filter(|_| !intents.replayed() && !migrated);
        let restored = snapshot.is_some();
        let background = !restored && records > background_above;
        let (sync, seen) = match snapshot {
            Some(s) => s,
            None if background => (SyncIndex::building(), Seen::unready()),
            None => rebuild::now(&tree)?,
        };
        let journal = Journal::load(&tree)?;
        let seen = Arc::new(seen);
        let sync = Arc::new(Mutex::new(sync));
        let sync_ready = Arc::new(std::sync::atomic::AtomicBool::new(!background));
        let broken = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let rebuild = if background {
            tracing::info!(
                records,
                "no index snapshot: rebuilding the indexes in the background"
            );
            let to = rebuild::Targets {
                sync: sync.clone(),
                seen: seen.clone(),
                sync_ready: sync_ready.clone(),
                broken: broken.clone(),
            };
            Some(Arc::new(rebuild::Builder::spawn(tree.clone(), to)?))
        } else {
            None
        };
        Ok(Store {
            cur: Current::new(Handles {
                db,
                tree,
                intents,
                dir: dirs.map(|(_, g)| g.to_path_buf()),
            }),
            seen,
            hot: Arc::new(Hot::default()),
            sync,
            journal: Arc::new(journal),
            flushing: Arc::new(Mutex::new(())),
            broken,
            fault: Arc::new(Mutex::new(None)),
            era: Arc::new(std::sync::atomic::AtomicU64::new(0)),
            root: dirs.map(|(r, _)| Arc::new(r.to_path_buf())),
            mirror: Arc::new(Mutex::new(None)),
            compactor: None,
            saved: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            restored,
            rebuild,
            sync_ready,
        })
    }

    /// Were the in-memory indexes read from a snapshot when the store opened (rather than
    /// rebuilt from the tree)?
    pub fn indexes_restored(&self) -> bool {
        self.restored
    }

    /// Can the store answer reconciliation (its sync index has every record)? False only
    /// while the index is rebuilt in the background after an open without a snapshot.
    pub fn sync_ready(&self) -> bool {
        self.sync_ready.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Are both in-memory indexes complete (no rebuild running)?
    pub fn indexes_ready(&self) -> bool {
        self.sync_ready() && self.seen.is_ready()
    }

    /// Waits for a background rebuild of the indexes to end (at once if none runs).
    pub fn wait_indexes(&self) {
        if let Some(b) = &self.rebuild {
            b.join();
        }
    }

    /// The entries under `prefix` in the tree in use, ending at the first error (a sled
    /// iterator that fails, say because sled refuses writes after an I/O error and the read
    /// wanted to split a node, yields that error again at every step: counted, it never
    /// ends).
    fn scan(&self, prefix: &[u8]) -> impl Iterator<Item = Result<(sled::IVec, sled::IVec)>> {
        let (iter, err) = match self.cur.tree() {
            Ok(t) => (Some(t.scan_prefix(prefix)), None),
            Err(e) => (None, Some(e)),
        };
        let mut failed = false;
        err.map(Err)
            .into_iter()
            .chain(iter.into_iter().flatten().map(|kv| kv.map_err(Error::from)))
            .take_while(move |kv| !std::mem::replace(&mut failed, kv.is_err()))
    }

    /// A stored value, through the in-memory cache of tallies, ratings and group tallies
    /// for those keys (what the ingest pipeline reads most).
    fn get_raw(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if Hot::cached(key) {
            return self.hot.get_or_load(&self.cur.tree()?, key);
        }
        Ok(self.cur.tree()?.get(key)?.map(|v| v.to_vec()))
    }

    /// What the ingest applier reads: the write sets `in_flight` (applied, not yet
    /// written; oldest first), then the store.
    pub(crate) fn layered<'a>(&'a self, in_flight: &'a VecDeque<Arc<Writes>>) -> Layered<'a> {
        Layered {
            in_flight,
            cur: &self.cur,
            seen: &self.seen,
            hot: &self.hot,
        }
    }

    /// Announces a write set about to be written, so that lookups which skip keys known to
    /// be absent look for its keys from now on.
    pub(crate) fn announce(&self, writes: &Writes) {
        self.seen
            .insert_all(writes.iter().filter(|(_, v)| v.is_some()).map(|(k, _)| k));
    }

    /// Applies a write set, crash-atomically (not yet durable: the caller flushes before it
    /// acknowledges anything). Its intent is written first, then its writes key by key
    /// ([`intent`]); after a crash, [`Store::open`] finishes it from the intent. While an
    /// online compaction copies the store, the set is written to the copy too.
    pub(crate) fn write(&self, writes: &Writes) -> Result<()> {
        use std::sync::atomic::Ordering;
        let synced: Vec<&[u8]> = writes
            .iter()
            // Records are never removed from the topic/time index.
            .filter(|(k, v)| k.first() == Some(&keys::TOPIC) && v.is_some())
            .map(|(k, _)| k.as_slice())
            .collect();
        // The sync index changes with the tree, under its lock: a reconciliation step
        // never sees records its fingerprints do not count. The lock also serialises
        // writers, so intents are numbered in the order they are applied, and it keeps an
        // online compaction's copy in step (`compact`).
        let mut sync = self.sync.lock().unwrap_or_else(|e| e.into_inner());
        let h = self.cur.get()?;
        if self.saved.swap(false, Ordering::AcqRel) {
            // Written after a close: the snapshot no longer describes the store.
            if let Some(d) = &h.dir {
                snapshot::discard(d)?;
            }
        }
        if self.broken.load(Ordering::Acquire) {
            return Err(Error::Unwritable(self.fault()));
        }
        // Part 0 may or may not be in the log: only reopening can tell.
        let id = h.intents.begin(writes).map_err(|e| self.failed(e))?;
        // Writing a key again is harmless: one retry finishes a set a passing error cut.
        let applied = intent::apply(&h.tree, writes.iter())
            .or_else(|_| intent::apply(&h.tree, writes.iter()))
            .and_then(|()| {
                // The caches follow the tree whatever happens next.
                for (k, v) in writes.iter().filter(|(k, _)| Hot::cached(k)) {
                    self.hot.put(k, v.as_deref());
                }
                sync.insert_all(&h.tree, &synced)
            });
        if let Err(e) = applied {
            // Part of the set may be in the tree, or the sync index may not count it; only
            // reopening (which finishes the set from its intent and rebuilds the index) puts
            // them back in step, so nothing more is written until `recover`.
            return Err(self.failed(e));
        }
        h.intents.applied(id);
        let mut mirror = self.mirror.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(copy) = mirror.as_ref() {
            if let Err(e) = intent::apply(copy, writes.iter()) {
                // The copy cannot be finished: the compaction gives up, the store goes on.
                tracing::warn!(error = %e, "compaction: the copy failed; abandoning it");
                *mirror = None;
            }
        }
        Ok(())
    }

    /// Flushes everything to disk, then retires the intents of the write sets it made
    /// durable.
    pub fn flush(&self) -> Result<()> {
        let _one = self.flushing.lock().unwrap_or_else(|e| e.into_inner());
        self.flush_held(&*self.cur.get()?)
    }

    /// [`Store::flush`] of `h`, with the flush lock held by the caller.
    fn flush_held(&self, h: &Handles) -> Result<()> {
        let done = h.intents.take_applied();
        if let Err(e) = h.db.flush() {
            // sled refuses every write after an I/O error until it is reopened.
            h.intents.restore(done);
            return Err(self.failed(e.into()));
        }
        if let Err(e) = h.intents.retire(&done) {
            // An intent left behind while later ones are retired would be replayed over
            // newer writes: write nothing more until the store is reopened.
            return Err(self.failed(e));
        }
        Ok(())
    }

    /// Notes a failed write or flush: nothing more is written until [`Store::recover`]
    /// reopens the database. Returns the error to answer with.
    fn failed(&self, e: Error) -> Error {
        let fault = StorageFault::of(&e).unwrap_or_else(|| StorageFault::Failed(e.to_string()));
        tracing::error!(error = %e, "the store failed to write; writes are refused until it recovers");
        *self.fault.lock().unwrap_or_else(|e| e.into_inner()) = Some(fault.clone());
        self.broken
            .store(true, std::sync::atomic::Ordering::Release);
        self.era.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        Error::Unwritable(fault)
    }

    /// Changes with every storage failure and every recovery. What was read from the store
    /// in an earlier era may describe writes a failure lost (sled keeps writes in memory
    /// until a flush; a reopen drops what none made durable), so the ingest pipeline writes
    /// nothing it decided in another era, and acknowledges nothing written in one.
    pub(crate) fn era(&self) -> u64 {
        self.era.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Why the store cannot write now (`Failed` with a generic reason if nothing recorded
    /// one, e.g. a failed index rebuild).
    fn fault(&self) -> StorageFault {
        self.fault
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .unwrap_or_else(|| StorageFault::Failed("an earlier write failed".into()))
    }

    /// Bytes free on the disk that holds the store (`None` for a temporary store).
    pub fn free_bytes(&self) -> Option<u64> {
        let root = self.root.as_ref()?;
        fs2::available_space(root.as_path()).ok()
    }

    /// `None` if the store can write, else why not (what status reports).
    pub fn storage_fault(&self) -> Option<StorageFault> {
        self.broken
            .load(std::sync::atomic::Ordering::Acquire)
            .then(|| self.fault())
    }

    /// After a failed write: reopens the database, which finishes from its intent any write
    /// set the failure cut and lets sled write again (it refuses every write after an I/O
    /// error until reopened), then rebuilds the sync index (a failed flush may have lost
    /// writes it counts) and empties the value cache. Done only when the disk has room
    /// again ([`RECOVER_FREE`]); otherwise, or if the open fails, the fault stands and reads
    /// go on from the old database where it is still open. Nothing to do (`Ok`) if no write
    /// failed.
    pub fn recover(&self) -> Result<()> {
        use std::sync::atomic::Ordering;
        if !self.broken.load(Ordering::Acquire) {
            return Ok(());
        }
        let Some(root) = self.root.clone() else {
            return Err(Error::Unwritable(self.fault()));
        };
        // A rebuild reading the old database holds it open; it is redone below.
        if let Some(b) = &self.rebuild {
            b.stop();
        }
        let mut sync = self.sync.lock().unwrap_or_else(|e| e.into_inner());
        let _f = self.flushing.lock().unwrap_or_else(|e| e.into_inner());
        if !self.broken.load(Ordering::Acquire) {
            return Ok(());
        }
        let path = generation::active(&root)?.path;
        let free = fs2::available_space(&path)?;
        if free < RECOVER_FREE {
            return Err(Error::Unwritable(StorageFault::Full(format!(
                "{free} bytes free"
            ))));
        }
        *self.mirror.lock().unwrap_or_else(|e| e.into_inner()) = None;
        // From here, nothing written before is acknowledged (what the old database held only
        // in memory is lost by the reopen).
        self.era.fetch_add(1, Ordering::AcqRel);
        self.cur.reopen(self.fault(), || {
            let db = open_db(&path)?;
            let tree = db.open_tree(MAIN_TREE)?;
            let intents = intent::Intents::open(&db, &tree)?;
            Ok(Handles {
                db,
                tree,
                intents,
                dir: Some(path.clone()),
            })
        })?;
        let h = self.cur.get()?;
        self.hot.clear();
        let was_ready = sync.is_ready();
        *sync = SyncIndex::build(&h.tree)?;
        self.sync_ready.store(true, Ordering::Release);
        if !was_ready || !self.seen.is_ready() {
            // A rebuild was stopped above: the filter is finished here too.
            rebuild::fill(
                &h.tree,
                &self.seen,
                &std::sync::atomic::AtomicBool::new(false),
            )?;
            self.seen.set_ready();
        }
        *self.fault.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.era.fetch_add(1, Ordering::AcqRel);
        self.broken.store(false, Ordering::Release);
        tracing::info!("the store recovered from its storage failure; writing again");
        Ok(())
    }

    /// Flushes, then flushes the retiring of the last intents too, so that a store closed
    /// cleanly holds no intent on disk (nothing to replay, and nothing an older node, which
    /// knows no intents, could leave to be replayed over its own writes later).
    ///
    /// A store on disk then leaves a snapshot of its in-memory indexes ([`snapshot`]), so the
    /// next open need not rebuild them. An online compaction under way is stopped first (its
    /// copy is removed at the next open).
    pub fn close(&self) -> Result<()> {
        if let Some(c) = &self.compactor {
            c.stop();
        }
        // A rebuild still running is stopped: its indexes are incomplete and are not saved
        // (the next open rebuilds them again).
        if let Some(b) = &self.rebuild {
            b.stop();
        }
        self.flush()?;
        let h = self.cur.get()?;
        h.db.flush()?;
        let Some(dir) = &h.dir else {
            return Ok(());
        };
        // Under the sync lock: no write set is half-way while the indexes are copied.
        let sync = self.sync.lock().unwrap_or_else(|e| e.into_inner());
        if self.broken.load(std::sync::atomic::Ordering::Acquire)
            || !sync.is_ready()
            || !self.seen.is_ready()
        {
            return Ok(());
        }
        snapshot::save(dir, self.len()?, &sync, &self.seen)?;
        self.saved.store(true, std::sync::atomic::Ordering::Release);
        Ok(())
    }

    /// After [`Store::close`], with this the last handle: opens the sled database once more
    /// and closes it, so that sled writes its page-table snapshot. sled 0.34 writes that only
    /// when it opens, and an open replays the whole log written since (about 3.5 s after a
    /// million records here; BENCHMARKS.md), so settling at a clean stop moves that cost from
    /// the next start to the stop. Returns false (and does nothing) if another handle still
    /// holds the database.
    pub fn settle(self) -> Result<bool> {
        let Some(dir) = self.cur.get()?.dir.clone() else {
            return Ok(false);
        };
        if let Some(b) = &self.rebuild {
            b.stop();
        }
        drop(self);
        match open_db(&dir) {
            Ok(db) => {
                drop(db);
                Ok(true)
            }
            Err(e) if is_lock_error(&e) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Is a record with this id stored?
    pub fn contains(&self, id: &RecordId) -> Result<bool> {
        self.seen.has_record(&self.cur.tree()?, id)
    }

    /// The arrival journal (for the ingest pipeline).
    pub(crate) fn journal(&self) -> Arc<Journal> {
        self.journal.clone()
    }

    /// Starts journaling the arrivals on a topic (durably; idempotent). Records stored from
    /// now on get a sequence number in [`Store::journal_after`].
    pub fn watch_topic(&self, topic: &Topic) -> Result<()> {
        if self.journal.watch(topic) {
            let t = keys::topic_bytes(topic);
            let mark = Writes::from([(keys::key(keys::JOURNALED, &[&t]), Some(Vec::new()))]);
            self.write(&mark)?;
            self.flush()?;
        }
        Ok(())
    }

    /// Is the arrival on this topic journaled?
    pub fn is_watched(&self, topic: &Topic) -> bool {
        self.journal.is_watched(topic)
    }

    /// Journal entries after `seq`, oldest first, at most `limit`.
    pub fn journal_after(&self, seq: u64, limit: usize) -> Result<Vec<(u64, Journaled)>> {
        Journal::after(&self.cur.tree()?, seq, limit)
    }

    /// Was this campaign's end noted here (`Overlay::mark_ended`)?
    pub fn ended_noted(&self, petition: &RecordId) -> Result<bool> {
        let mark = keys::key(keys::ENDED, &[petition.as_bytes()]);
        Ok(self.cur.tree()?.contains_key(mark)?)
    }

    /// The latest journal sequence number (0 if none).
    pub fn journal_last(&self) -> u64 {
        self.journal.last()
    }

    /// Writes a record's id and topic/time entries with no check and no derived state: only
    /// for tests that plant what an audit must find.
    #[doc(hidden)]
    pub fn plant_record(
        &self,
        wire: &[u8],
        topic: &Topic,
        created_at: u64,
        id: &RecordId,
    ) -> Result<()> {
        let mut w = BTreeMap::new();
        let place = keys::topic_bytes(topic);
        w.insert(keys::record(id), Some(keys::location(&place, created_at)));
        w.insert(
            keys::timed(keys::TOPIC, &place, created_at, id),
            Some(wire.to_vec()),
        );
        self.announce(&w);
        self.write(&w)?;
        self.flush()
    }

    /// Overwrites a petition's stored tally with no check: only for tests that plant what an
    /// audit must find.
    #[doc(hidden)]
    pub fn plant_tally(&self, petition: &RecordId, tally: &PetitionTally) -> Result<()> {
        let v = tally.encode();
        let mut w = BTreeMap::new();
        w.insert(
            keys::key(keys::PETITION_TALLY, &[petition.as_bytes()]),
            Some(v),
        );
        self.write(&w)?;
        self.flush()
    }

    /// Marks the store as written by format `version` of derived state, with no other
    /// change: only for tests and benchmarks of the migration (the next open of an older
    /// version's mark rebuilds the derived state).
    #[doc(hidden)]
    pub fn set_format_version(&self, version: u8) -> Result<()> {
        self.cur.tree()?.insert(keys::FORMAT, &[version])?;
        self.flush()
    }

    /// The ids of every stored record, in id order (a full scan: for checks and tests).
    pub fn ids(&self) -> Result<Vec<RecordId>> {
        self.cur
            .tree()?
            .scan_prefix([keys::RECORD])
            .keys()
            .map(|k| {
                let k = k?;
                let id: [u8; 32] = k
                    .get(1..)
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(|| Error::Corrupt("bad id-index key".into()))?;
                Ok(RecordId(id))
            })
            .collect()
    }

    /// The store as a range index for reconciliation.
    pub fn sync_view(&self) -> SyncView<'_> {
        SyncView {
            cur: &self.cur,
            seen: &self.seen,
            ix: &self.sync,
        }
    }

    /// The verbatim wire bytes of the record with this id.
    pub fn wire(&self, id: &RecordId) -> Result<Option<Vec<u8>>> {
        let k = keys::record(id);
        if !self.seen.maybe(&k) {
            return Ok(None);
        }
        let Some(loc) = self.cur.tree()?.get(k)? else {
            return Ok(None);
        };
        Ok(self
            .cur
            .tree()?
            .get(keys::stored_at(&loc, id))?
            .map(|w| w.to_vec()))
    }

    /// The record with this id, as stored (verbatim wire bytes, decoded).
    pub fn record(&self, id: &RecordId) -> Result<Option<SignedRecord>> {
        let Some(loc) = self.cur.tree()?.get(keys::record(id))? else {
            return Ok(None);
        };
        match self.cur.tree()?.get(keys::stored_at(&loc, id))? {
            None => Err(Error::Corrupt(format!("record {id} indexed but missing"))),
            Some(wire) => Ok(Some(SignedRecord::from_vec(wire.to_vec())?)),
        }
    }

    /// Number of stored records (one key lookup: the count is kept with the records).
    pub fn len(&self) -> Result<u64> {
        match self.cur.tree()?.get(keys::COUNT)? {
            Some(v) => u64::decode(&v),
            None => Ok(0),
        }
    }

    /// Is the store empty?
    pub fn is_empty(&self) -> bool {
        self.scan(&[keys::RECORD]).next().is_none()
    }

    /// Number of records waiting for a record they point at.
    pub fn waiting(&self) -> Result<usize> {
        self.scan(&[keys::WAITING])
            .try_fold(0, |n, kv| kv.map(|_| n + 1))
    }

    /// Each waiting record's key as (the id it waits for, its own id).
    fn waiting_keys(&self) -> impl Iterator<Item = Result<(RecordId, RecordId)>> + '_ {
        let id_at = |k: &[u8], at: usize| -> Result<RecordId> {
            keys::id_at(k, at).ok_or_else(|| Error::Corrupt("waiting key".into()))
        };
        self.scan(&[keys::WAITING]).map(move |kv| {
            let (k, _) = kv?;
            Ok((id_at(&k, 1)?, id_at(&k, 33)?))
        })
    }

    /// Every waiting entry: (the id it waits for, its own id, its stored value).
    pub(crate) fn waiting_entries(
        &self,
    ) -> Result<impl Iterator<Item = Result<(RecordId, RecordId, sled::IVec)>>> {
        let id_at = |k: &[u8], at: usize| -> Result<RecordId> {
            keys::id_at(k, at).ok_or_else(|| Error::Corrupt("waiting key".into()))
        };
        Ok(self.scan(&[keys::WAITING]).map(move |kv| {
            let (k, v) = kv?;
            Ok((id_at(&k, 1)?, id_at(&k, 33)?, v))
        }))
    }

    /// Endorsements first stored here after their petition's deadline, though counted (made,
    /// they say, before it): (petition, endorsement, when first stored, ms).
    pub fn late_endorsements(&self) -> Result<Vec<(RecordId, RecordId, u64)>> {
        let bad = || Error::Corrupt("bad late-endorsement entry".into());
        self.scan(&[keys::LATE])
            // The petitions' own marks (held before the deadline) are 33 bytes.
            .filter(|kv| kv.as_ref().map_or(true, |(k, _)| k.len() == 65))
            .map(|kv| {
                let (k, v) = kv?;
                let at: [u8; 8] = v.as_ref().try_into().map_err(|_| bad())?;
                Ok((
                    keys::id_at(&k, 1).ok_or_else(bad)?,
                    keys::id_at(&k, 33).ok_or_else(bad)?,
                    u64::from_be_bytes(at),
                ))
            })
            .collect()
    }

    /// A petition's considered history (PROTOCOL.md §9): the ids of its endorsements and
    /// retractions of them made by its close, in (`created_at`, id) order.
    pub fn history(&self, petition: &RecordId) -> Result<Vec<(u64, RecordId)>> {
        let bad = || Error::Corrupt("bad petition history key".into());
        self.scan(&keys::key(keys::HISTORY, &[petition.as_bytes()]))
            .map(|kv| keys::timed_tail(&kv?.0).ok_or_else(bad))
            .collect()
    }

    /// Ids of the records waiting for a record they point at.
    pub fn waiting_ids(&self) -> Result<BTreeSet<RecordId>> {
        self.waiting_keys().map(|kv| kv.map(|(_, id)| id)).collect()
    }

    /// Bytes the database occupies on disk.
    pub fn size_on_disk(&self) -> Result<u64> {
        Ok(self.cur.get()?.db.size_on_disk()?)
    }

    fn page(&self, prefix: Vec<u8>, after: Option<(u64, RecordId)>, limit: usize) -> Result<Page> {
        let start = match after {
            Some((at, id)) => {
                let mut k = prefix.clone();
                k.extend_from_slice(&at.to_be_bytes());
                k.extend_from_slice(id.as_bytes());
                k.push(0); // strictly after
                k
            }
            None => prefix.clone(),
        };
        let mut records = Vec::new();
        let mut last = None;
        for kv in self.cur.tree()?.range(start..) {
            let (k, _) = kv?;
            if !k.starts_with(&prefix) || records.len() >= limit {
                break;
            }
            let (at, id) =
                keys::timed_tail(&k).ok_or_else(|| Error::Corrupt("index key".into()))?;
            if let Some(rec) = self.record(&id)? {
                records.push(rec);
            }
            last = Some((at, id));
        }
        let next = if records.len() >= limit { last } else { None };
        Ok(Page { records, next })
    }

    /// Records on a topic in (created_at, id) order, after the cursor.
    pub fn by_topic(
        &self,
        topic: &Topic,
        after: Option<(u64, RecordId)>,
        limit: usize,
    ) -> Result<Page> {
        self.page(
            keys::key(keys::TOPIC, &[&keys::topic_bytes(topic)]),
            after,
            limit,
        )
    }

    /// Attestations by an author, oldest first: the records indexed by author. (A store
    /// written by an older node indexes every record by its author, so callers check the
    /// kind.)
    pub fn attestations_by(
        &self,
        author: &AuthorKey,
        after: Option<(u64, RecordId)>,
        limit: usize,
    ) -> Result<Page> {
        self.page(keys::key(keys::AUTHOR, &[author.as_bytes()]), after, limit)
    }

    /// Records that point at `target` (retractions, responses, joins, admits, attestations),
    /// oldest first. A petition's endorsements are listed by [`Store::endorsements`].
    pub fn by_target(
        &self,
        target: &RecordId,
        after: Option<(u64, RecordId)>,
        limit: usize,
    ) -> Result<Page> {
        self.page(keys::key(keys::TARGET, &[target.as_bytes()]), after, limit)
    }

    /// Reviews and petitions about a product, oldest first.
    pub fn by_product(
        &self,
        producer: &AuthorKey,
        code: &str,
        after: Option<(u64, RecordId)>,
        limit: usize,
    ) -> Result<Page> {
        self.page(
            keys::key(keys::PRODUCT, &[ProductKey::of(producer, code).as_bytes()]),
            after,
            limit,
        )
    }

    /// The latest state of each endorser of a petition, in author-key order, from the slots
    /// that count them: the winning endorsement (counted) or retraction (not counted).
    /// Returns the page and the author to continue after.
    pub fn endorsements(
        &self,
        petition: &RecordId,
        after: Option<AuthorKey>,
        limit: usize,
    ) -> Result<EndorserPage> {
        let prefix = SlotKey::endorsements_of(petition);
        let mut start = prefix.clone();
        if let Some(a) = after {
            start.extend_from_slice(a.as_bytes());
            start.push(0);
        }
        let mut out = Vec::new();
        let mut last = None;
        for kv in self.cur.tree()?.range(start..) {
            let (k, v) = kv?;
            if !k.starts_with(&prefix) || out.len() >= limit {
                break;
            }
            let Slot { id, on, .. } = Slot::decode(&v)?;
            if let Some(rec) = self.record(&id)? {
                last = Some(rec.author());
                out.push((rec, on));
            }
        }
        let next = if out.len() >= limit { last } else { None };
        Ok((out, next))
    }

    /// An author's winning record about a petition (their latest endorsement or retraction
    /// of it) and whether it endorses.
    pub fn endorsement_of(
        &self,
        petition: &RecordId,
        author: &AuthorKey,
    ) -> Result<Option<(RecordId, bool)>> {
        self.winner(&SlotKey::endorsement(petition, author))
    }

    /// An author's winning record about a product (their latest review or retraction of it)
    /// and whether it is a counted review.
    pub fn review_of(
        &self,
        producer: &AuthorKey,
        code: &str,
        author: &AuthorKey,
    ) -> Result<Option<(RecordId, bool)>> {
        self.winner(&SlotKey::review(&ProductKey::of(producer, code), author))
    }

    /// The targeted producer's winning record about a petition or review (their latest
    /// response, or the retraction of it) and whether it is a response in force.
    pub fn response_of(
        &self,
        target: &RecordId,
        producer: &AuthorKey,
    ) -> Result<Option<(RecordId, bool)>> {
        self.winner(&SlotKey::response(target, producer))
    }

    /// A slot's winning record, and whether it is an "on" state.
    fn winner(&self, k: &SlotKey) -> Result<Option<(RecordId, bool)>> {
        match self.cur.tree()?.get(k.as_bytes())? {
            None => Ok(None),
            Some(v) => Slot::decode(&v).map(|s| Some((s.id, s.on))),
        }
    }

    /// Every petition with its tally, in id order (one key per petition).
    pub fn petitions(&self) -> Result<Vec<(RecordId, PetitionTally)>> {
        let mut out = Vec::new();
        for kv in self.cur.tree()?.scan_prefix([keys::PETITION_TALLY]) {
            let (k, v) = kv?;
            let id: [u8; 32] = k
                .get(1..)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| Error::Corrupt("bad tally key".into()))?;
            let t = PetitionTally::decode(&v)?;
            out.push((RecordId(id), t));
        }
        Ok(out)
    }

    /// Every endorser's winning record about a petition (all pages of
    /// [`Store::endorsements`]), and whether it endorses.
    pub fn winners(&self, petition: &RecordId) -> Result<Vec<(SignedRecord, bool)>> {
        let mut all = Vec::new();
        let mut after = None;
        loop {
            let (page, next) = self.endorsements(petition, after, 1000)?;
            all.extend(page);
            match next {
                Some(n) => after = Some(n),
                None => return Ok(all),
            }
        }
    }

    /// A petition's tally: one key lookup.
    pub fn tally(&self, petition: &RecordId) -> Result<Option<PetitionTally>> {
        self.derived(&keys::key(keys::PETITION_TALLY, &[petition.as_bytes()]))
    }

    /// A derived value through the in-memory cache.
    fn derived<T: Stored>(&self, key: &[u8]) -> Result<Option<T>> {
        self.hot
            .get_or_load(&self.cur.tree()?, key)?
            .map(|b| T::decode(&b))
            .transpose()
    }

    /// A product's rating: one key lookup.
    pub fn rating(&self, producer: &AuthorKey, code: &str) -> Result<Rating> {
        let k = keys::key(keys::RATING, &[ProductKey::of(producer, code).as_bytes()]);
        Ok(self.derived(&k)?.unwrap_or_default())
    }

    /// A group's tally (member count).
    pub fn group(&self, group: &RecordId) -> Result<Option<GroupTally>> {
        self.derived(&keys::key(keys::GROUP_TALLY, &[group.as_bytes()]))
    }

    /// Every key that joined a group or was admitted to it, with its standing: its winning
    /// join slot and whether the founder's latest admit of it is in force (admits by others
    /// are refused by the kind rules, so never stored). In key order.
    pub fn group_standings(&self, group: &RecordId) -> Result<BTreeMap<AuthorKey, Standing>> {
        let tree = self.cur.tree()?;
        let mut out: BTreeMap<AuthorKey, Standing> = BTreeMap::new();
        for (prefix, admit) in [
            (SlotKey::joins_of(group), false),
            (SlotKey::admits_of(group), true),
        ] {
            for kv in tree.scan_prefix(&prefix) {
                let (k, v) = kv?;
                let key: [u8; 32] = k
                    .get(prefix.len()..)
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(|| Error::Corrupt("bad membership slot key".into()))?;
                let slot = Slot::decode(&v)?;
                let e = out.entry(AuthorKey(key)).or_default();
                if admit {
                    e.admitted = slot.on;
                } else {
                    e.join = Some((slot.id, slot.at, slot.on));
                }
            }
        }
        Ok(out)
    }

    /// The latest profile record of an author, unless retracted.
    pub fn profile(&self, author: &AuthorKey) -> Result<Option<SignedRecord>> {
        match self.winner(&SlotKey::profile(author))? {
            Some((id, true)) => self.record(&id),
            _ => Ok(None),
        }
    }

    /// Every profile of `author` this node holds, oldest first (they lie together, under the
    /// author's place, PROTOCOL.md §13.2).
    pub fn profiles_by(&self, author: &AuthorKey) -> Result<Vec<SignedRecord>> {
        let place = chorus_protocol::sync::profiles_place(author);
        let mut out = Vec::new();
        for kv in self.scan(&keys::key(keys::TOPIC, &[&place])) {
            out.push(SignedRecord::from_vec(kv?.1.to_vec())?);
        }
        Ok(out)
    }

    /// Does the node hold a profile of `author`? Mostly answered without a read (the
    /// filter of the slot keys that may exist).
    pub fn has_profile(&self, author: &AuthorKey) -> Result<bool> {
        let slot = SlotKey::profile(author);
        if !self.seen.maybe(slot.as_bytes()) {
            return Ok(false);
        }
        Ok(self.cur.tree()?.contains_key(slot.as_bytes())?)
    }

    /// Every stored record, in sync order (topic, or a profile's author, then time; audits):
    /// the id its key names, and its wire bytes.
    pub(crate) fn all_entries(&self) -> impl Iterator<Item = Result<(RecordId, Vec<u8>)>> + '_ {
        self.scan(&[keys::TOPIC]).map(|kv| {
            let (k, v) = kv?;
            let (_, id) =
                keys::timed_tail(&k).ok_or_else(|| Error::Corrupt("bad topic/time key".into()))?;
            Ok((id, v.to_vec()))
        })
    }

    /// The main tree in use (a recomputation reads the records there).
    pub(crate) fn main_tree(&self) -> Result<sled::Tree> {
        self.cur.tree()
    }

    /// All derived state (slots, tallies, ratings, groups, the record count) as raw entries:
    /// two stores holding the same records must return equal maps.
    pub fn derived_snapshot(&self) -> Result<BTreeMap<Vec<u8>, Vec<u8>>> {
        let mut all = BTreeMap::new();
        for p in keys::DERIVED.iter().chain([keys::COUNT[0]].iter()) {
            all.extend(self.derived_entries(*p)?);
        }
        Ok(all)
    }

    /// Where the derived state in `fresh` (built from scratch) and the stored one differ:
    /// (key, stored value, fresh value) for every key of derived state on either side.
    pub(crate) fn derived_differences(&self, fresh: &Memory) -> Result<Vec<Differing>> {
        let mut out = Vec::new();
        for prefix in keys::DERIVED.iter().chain([keys::COUNT[0]].iter()).copied() {
            let stored = self.derived_entries(prefix)?;
            let mine: BTreeMap<&Vec<u8>, &Vec<u8>> = fresh
                .0
                .range(vec![prefix]..)
                .take_while(|(k, _)| k.first() == Some(&prefix))
                .collect();
            for (k, v) in &stored {
                if mine.get(k).is_none_or(|f| *f != v) {
                    out.push((
                        k.clone(),
                        Some(v.clone()),
                        mine.get(k).map(|f| (*f).clone()),
                    ));
                }
            }
            for (k, v) in &mine {
                if !stored.contains_key(*k) {
                    out.push(((*k).clone(), None, Some((*v).clone())));
                }
            }
        }
        Ok(out)
    }

    /// Derived-state entries under one prefix, as stored.
    fn derived_entries(&self, prefix: u8) -> Result<BTreeMap<Vec<u8>, Vec<u8>>> {
        self.cur
            .tree()?
            .scan_prefix([prefix])
            .map(|kv| {
                kv.map(|(k, v)| (k.to_vec(), v.to_vec()))
                    .map_err(Error::from)
            })
            .collect()
    }
}

#[cfg(test)]
impl Store {
    /// The tree (tests that look at raw keys).
    pub(crate) fn tree(&self) -> sled::Tree {
        self.cur.tree().expect("the store is open")
    }

    /// Intents not yet retired.
    pub(crate) fn pending_intents(&self) -> usize {
        self.cur.get().expect("the store is open").intents.len()
    }

    /// The sync index and the filter's bits, as a snapshot holds them.
    pub(crate) fn indexes_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.sync
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .encode(&mut out);
        self.seen.encode(&mut out);
        out
    }
}

/// Reads the store as an overlay's base, through its caches.
impl Backing for Store {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.get_raw(key)
    }
    fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        Backing::scan_prefix(&self.cur.tree()?, prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chorus_protocol::sync::{Bound, MemoryIndex, RangeIndex};
    use chorus_protocol::testing::sync_key;

    #[test]
    fn the_store_keeps_its_sync_index_in_step_with_its_writes() {
        let store = Store::temporary().unwrap();
        let all: Vec<_> = (0..3_000u64).map(|n| sync_key(n * 7919 % 10_007)).collect();
        for batch in all.chunks(700) {
            let writes: Writes = batch
                .iter()
                .map(|k| ([&[keys::TOPIC][..], &k[..]].concat(), Some(vec![1])))
                .collect();
            store.write(&writes).unwrap();
        }
        let mem = MemoryIndex(all.iter().copied().collect());
        let view = store.sync_view();
        assert_eq!(view.len(), 3_000);
        assert_eq!(
            view.accumulate(&[], &Bound::End).unwrap(),
            mem.accumulate(&[], &Bound::End).unwrap()
        );
        drop(store);
    }
}
