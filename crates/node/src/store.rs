//! The sled-backed store: records by id (verbatim wire bytes), indexes, derived state.
//!
//! Everything lives in one sled tree (layout in [`keys`]). One ingest chunk — records, index
//! entries and the derived state they change — is one write set, made crash-atomic by a redo
//! intent written before it ([`intent`]).
//! Writes go through [`Overlay`], a map of pending writes over the tree that the derived-state
//! code reads through; [`crate::tally`] runs the same code over an in-memory map to recompute
//! everything from raw records.

pub(crate) mod codec;
pub(crate) mod intent;
pub(crate) mod keys;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use chorus_protocol::{AuthorKey, RecordId, SignedRecord, Topic};

use crate::sync::index::{SyncIndex, SyncView};
use crate::tally::{GroupTally, PetitionTally, Rating};
use crate::{Error, Result};

/// Read access to a key-value space: the sled tree, or an in-memory map.
pub(crate) trait Backing {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>>;
    fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>>;
}

impl Backing for sled::Tree {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(sled::Tree::get(self, key)?.map(|v| v.to_vec()))
    }
    fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        sled::Tree::scan_prefix(self, prefix)
            .map(|kv| {
                kv.map(|(k, v)| (k.to_vec(), v.to_vec()))
                    .map_err(Error::from)
            })
            .collect()
    }
}

impl Backing for BTreeMap<Vec<u8>, Vec<u8>> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(BTreeMap::get(self, key).cloned())
    }
    fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        Ok(self
            .range(prefix.to_vec()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
}

/// `base` entries under `prefix` with pending `writes` (puts and removals) applied.
pub(crate) fn merge_writes(
    base: Vec<(Vec<u8>, Vec<u8>)>,
    writes: &BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    prefix: &[u8],
) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut merged: BTreeMap<Vec<u8>, Vec<u8>> = base.into_iter().collect();
    for (k, v) in writes
        .range(prefix.to_vec()..)
        .take_while(|(k, _)| k.starts_with(prefix))
    {
        match v {
            Some(v) => merged.insert(k.clone(), v.clone()),
            None => merged.remove(k),
        };
    }
    merged.into_iter().collect()
}

/// Pending writes over a backing store; reads see the pending writes first.
pub(crate) struct Overlay<'a, B: Backing> {
    base: &'a B,
    writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl<'a, B: Backing> Overlay<'a, B> {
    pub(crate) fn new(base: &'a B) -> Self {
        Overlay {
            base,
            writes: BTreeMap::new(),
        }
    }

    pub(crate) fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        match self.writes.get(key) {
            Some(v) => Ok(v.clone()),
            None => self.base.get(key),
        }
    }

    pub(crate) fn contains(&self, key: &[u8]) -> Result<bool> {
        match self.writes.get(key) {
            Some(v) => Ok(v.is_some()),
            None => Ok(self.base.get(key)?.is_some()),
        }
    }

    pub(crate) fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.writes.insert(key, Some(value));
    }

    pub(crate) fn remove(&mut self, key: Vec<u8>) {
        self.writes.insert(key, None);
    }

    /// Keys and values under `prefix`, pending writes merged in.
    pub(crate) fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        Ok(merge_writes(
            self.base.scan_prefix(prefix)?,
            &self.writes,
            prefix,
        ))
    }

    pub(crate) fn into_writes(self) -> BTreeMap<Vec<u8>, Option<Vec<u8>>> {
        self.writes
    }
}

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

/// The node's store. Cloning is shallow: clones share the same database.
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    tree: sled::Tree,
    seen: Arc<Seen>,
    hot: Arc<Hot>,
    sync: Arc<Mutex<SyncIndex>>,
    journal: Arc<Journal>,
    intents: Arc<intent::Intents>,
    /// Held across a flush and the retiring of the intents it covers: intents are retired
    /// in order.
    flushing: Arc<Mutex<()>>,
    /// Set when a write set failed part-way: the tree is not in step until the store is
    /// reopened (which finishes the write set from its intent), so nothing more is written.
    broken: Arc<std::sync::atomic::AtomicBool>,
}

/// The arrival journal: for the topics being watched (a producer's own feedback, and any
/// topic a `watch` asked for), the order in which records arrived here, so a watcher that
/// was away can be shown exactly what arrived since, whatever the records' own times.
/// Journal entries are written in the same write set as their records.
#[derive(Debug, Default)]
pub struct Journal {
    topics: std::sync::RwLock<std::collections::HashSet<[u8; 33]>>,
    next: std::sync::atomic::AtomicU64,
}

impl Journal {
    /// Journals a record being stored, if its topic is watched; returns its sequence number.
    pub(crate) fn record<B: Backing>(
        &self,
        ov: &mut Overlay<'_, B>,
        topic: &Topic,
        id: &RecordId,
    ) -> Option<u64> {
        let t = keys::topic_bytes(topic);
        let watched = self.topics.read().map(|s| s.contains(&t)).unwrap_or(false);
        if !watched {
            return None;
        }
        let seq = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        ov.put(
            keys::key(keys::JOURNAL, &[&seq.to_be_bytes()]),
            id.as_bytes().to_vec(),
        );
        Some(seq)
    }
}

/// The encoded tallies, ratings and group tallies, kept in memory as they are written and
/// read, so that a query is a hash lookup even when sled's page cache would miss. Bounded:
/// emptied when full (the values are small and few: one per petition, product and group).
#[derive(Default)]
struct Hot(std::sync::RwLock<std::collections::HashMap<Vec<u8>, Vec<u8>>>);

impl Hot {
    const CAPACITY: usize = 500_000;

    fn cached(key: &[u8]) -> bool {
        matches!(
            key.first(),
            Some(&keys::PETITION_TALLY) | Some(&keys::RATING) | Some(&keys::GROUP_TALLY)
        )
    }

    /// The value of a cached key, from memory or else from the tree (and then kept).
    /// A miss holds the write lock across the tree read, so a value read before a
    /// concurrent [`Store::write`] can never replace the newer one that write puts here.
    fn get_or_load(&self, tree: &sled::Tree, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if let Some(v) = self.0.read().ok().and_then(|m| m.get(key).cloned()) {
            return Ok(Some(v));
        }
        let mut m = self.0.write().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = m.get(key) {
            return Ok(Some(v.clone()));
        }
        let v = tree.get(key)?.map(|v| v.to_vec());
        if let Some(v) = &v {
            Self::insert_bounded(&mut m, key, v);
        }
        Ok(v)
    }

    fn put(&self, key: &[u8], value: Option<&[u8]>) {
        // A poisoned lock still guards a consistent map: skipping the update would not.
        let mut m = self.0.write().unwrap_or_else(|e| e.into_inner());
        match value {
            Some(v) => Self::insert_bounded(&mut m, key, v),
            None => {
                m.remove(key);
            }
        }
    }

    fn insert_bounded(m: &mut std::collections::HashMap<Vec<u8>, Vec<u8>>, key: &[u8], v: &[u8]) {
        if m.len() >= Self::CAPACITY && !m.contains_key(key) {
            m.clear();
        }
        m.insert(key.to_vec(), v.to_vec());
    }
}

/// Which record and slot keys *may* exist: a Bloom filter over the `r` and `s` keys, so that
/// the commonest lookups — "is this record new?", "is this slot empty?" — are answered
/// without reading sled when the answer is no. A key may test present when it is not (a
/// false positive, a batch that failed): callers then read sled, so the filter only ever
/// saves reads and never changes an answer. 4 MiB; about 0.1% false positives at two million
/// keys, degrading gracefully (more reads, never wrong answers) beyond.
pub(crate) struct Seen {
    bits: Vec<std::sync::atomic::AtomicU64>,
}

impl Default for Seen {
    fn default() -> Self {
        Seen {
            bits: (0..Self::WORDS)
                .map(|_| std::sync::atomic::AtomicU64::new(0))
                .collect(),
        }
    }
}

impl Seen {
    const WORDS: usize = (1 << 25) / 64;
    const HASHES: usize = 4;

    fn tracked(key: &[u8]) -> bool {
        matches!(key.first(), Some(&keys::RECORD) | Some(&keys::SLOT))
    }

    /// Bit positions of a key: four 25-bit slices of its BLAKE3 hash.
    fn positions(key: &[u8]) -> [usize; Self::HASHES] {
        let h = blake3::hash(key);
        let b = h.as_bytes();
        let mut out = [0usize; Self::HASHES];
        for (i, o) in out.iter_mut().enumerate() {
            let w = u32::from_le_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]]);
            *o = (w as usize) & ((1 << 25) - 1);
        }
        out
    }

    /// False only if the key is certainly absent.
    pub(crate) fn maybe(&self, key: &[u8]) -> bool {
        use std::sync::atomic::Ordering;
        if !Self::tracked(key) {
            return true;
        }
        Self::positions(key)
            .iter()
            .all(|p| self.bits[p / 64].load(Ordering::Relaxed) & (1 << (p % 64)) != 0)
    }

    pub(crate) fn insert_all<'k>(&self, keys: impl Iterator<Item = &'k Vec<u8>>) {
        use std::sync::atomic::Ordering;
        for k in keys.filter(|k| Self::tracked(k)) {
            for p in Self::positions(k) {
                self.bits[p / 64].fetch_or(1 << (p % 64), Ordering::Relaxed);
            }
        }
    }
}

/// Rewrites the slots and petition tallies an older node stored as CBOR maps in the compact
/// encoding ([`codec`]), once per store (marked by [`keys::FORMAT`]): values read the same
/// either way, but `recompute` compares stored bytes with freshly computed ones. Each
/// rewrite is idempotent and the marker is written once they are durable, so a crash
/// part-way is finished at the next open. (Plain inserts, not a `sled::Batch`: the first
/// batch would switch on sled's global read lock for the life of the process.)
fn migrate_derived(db: &sled::Db, tree: &sled::Tree) -> Result<()> {
    use codec::Stored;
    if tree.contains_key(keys::FORMAT)? {
        return Ok(());
    }
    for prefix in [keys::SLOT, keys::PETITION_TALLY] {
        for kv in tree.scan_prefix([prefix]) {
            let (k, v) = kv?;
            if !codec::is_cbor_map(&v) {
                continue;
            }
            let fresh = if prefix == keys::SLOT {
                crate::tally::Slot::decode(&v)?.encode()
            } else {
                PetitionTally::decode(&v)?.encode()
            };
            tree.insert(k, fresh)?;
        }
    }
    db.flush()?;
    tree.insert(keys::FORMAT, &[keys::FORMAT_VERSION])?;
    db.flush()?;
    Ok(())
}

/// sled's page cache. The node's whole footprint stays under 400 MB at a million records
/// (BENCHMARKS.md); 96 MB was tried: no faster, and 412 MB at peak.
pub const CACHE_BYTES: u64 = 64 * 1024 * 1024;

impl Store {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let db = sled::Config::new()
            .path(dir.as_ref())
            // A modest cache keeps the node's memory flat; sled pages the rest from disk.
            .cache_capacity(CACHE_BYTES)
            .mode(sled::Mode::HighThroughput)
            // The ingest pipeline flushes each batch itself before acknowledging it.
            .flush_every_ms(None)
            .open()?;
        Self::from_db(db)
    }

    /// A store in a temporary directory, deleted when dropped (tests, benchmarks).
    pub fn temporary() -> Result<Self> {
        let db = sled::Config::new()
            .temporary(true)
            .cache_capacity(64 * 1024 * 1024)
            .flush_every_ms(None)
            .open()?;
        Self::from_db(db)
    }

    fn from_db(db: sled::Db) -> Result<Self> {
        let tree = db.open_tree("chorus/v1")?;
        // First of all: finish any write set a crash interrupted.
        let intents = intent::Intents::open(&db, &tree)?;
        migrate_derived(&db, &tree)?;
        let seen = Seen::default();
        for prefix in [keys::RECORD, keys::SLOT] {
            for kv in tree.scan_prefix([prefix]) {
                let (k, _) = kv?;
                seen.insert_all(std::iter::once(&k.to_vec()));
            }
        }
        let sync = SyncIndex::build(&tree)?;
        let journal = Journal::default();
        if let Some(kv) = tree.scan_prefix([keys::JOURNAL]).next_back() {
            let (k, _) = kv?;
            let seq: [u8; 8] = k
                .get(1..9)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| Error::Corrupt("bad journal key".into()))?;
            journal.next.store(
                u64::from_be_bytes(seq) + 1,
                std::sync::atomic::Ordering::Relaxed,
            );
        } else {
            journal.next.store(1, std::sync::atomic::Ordering::Relaxed);
        }
        if let Ok(mut topics) = journal.topics.write() {
            for kv in tree.scan_prefix([keys::JOURNALED]) {
                let (k, _) = kv?;
                if let Some(t) = k.get(1..).and_then(|b| <[u8; 33]>::try_from(b).ok()) {
                    topics.insert(t);
                }
            }
        }
        Ok(Store {
            db,
            tree,
            seen: Arc::new(seen),
            hot: Arc::new(Hot::default()),
            sync: Arc::new(Mutex::new(sync)),
            journal: Arc::new(journal),
            intents: Arc::new(intents),
            flushing: Arc::new(Mutex::new(())),
            broken: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        })
    }

    pub(crate) fn seen(&self) -> &Seen {
        &self.seen
    }

    pub(crate) fn tree(&self) -> &sled::Tree {
        &self.tree
    }

    /// A stored value, through the in-memory cache of tallies, ratings and group tallies
    /// for those keys (what the ingest pipeline reads most).
    pub(crate) fn get_raw(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if Hot::cached(key) {
            return self.hot.get_or_load(&self.tree, key);
        }
        Ok(self.tree.get(key)?.map(|v| v.to_vec()))
    }

    /// Applies a write set, crash-atomically (not yet durable: the caller flushes before it
    /// acknowledges anything). Its intent is written first, then its writes key by key
    /// ([`intent`]); after a crash, [`Store::open`] finishes it from the intent.
    pub(crate) fn write(&self, writes: &intent::Writes) -> Result<()> {
        use std::sync::atomic::Ordering;
        let synced: Vec<&[u8]> = writes
            .iter()
            // Records are never removed from the topic/time index.
            .filter(|(k, v)| k.first() == Some(&keys::TOPIC) && v.is_some())
            .map(|(k, _)| k.as_slice())
            .collect();
        // The sync index changes with the tree, under its lock: a reconciliation step
        // never sees records its fingerprints do not count. The lock also serialises
        // writers, so intents are numbered in the order they are applied.
        let mut sync = self.sync.lock().unwrap_or_else(|e| e.into_inner());
        if self.broken.load(Ordering::Acquire) {
            return Err(Error::Corrupt(
                "an earlier write failed part-way; restart the node to finish it".into(),
            ));
        }
        let id = self.intents.begin(writes).inspect_err(|_| {
            // Part 0 may or may not be in the log: only reopening can tell.
            self.broken.store(true, Ordering::Release);
        })?;
        // Writing a key again is harmless: one retry finishes a set a passing error cut.
        let applied = intent::apply(&self.tree, writes.iter())
            .or_else(|_| intent::apply(&self.tree, writes.iter()))
            .and_then(|()| {
                // The caches follow the tree whatever happens next.
                for (k, v) in writes.iter().filter(|(k, _)| Hot::cached(k)) {
                    self.hot.put(k, v.as_deref());
                }
                sync.insert_all(&self.tree, &synced)
            });
        if let Err(e) = applied {
            // Part of the set may be in the tree, or the sync index may not count it; only
            // reopening (which finishes the set from its intent and rebuilds the index) puts
            // them back in step, so write nothing more.
            self.broken.store(true, Ordering::Release);
            tracing::error!(error = %e, "a write failed part-way; restart the node to finish it");
            return Err(e);
        }
        self.intents.applied(id);
        Ok(())
    }

    /// Flushes everything to disk, then retires the intents of the write sets it made
    /// durable.
    pub fn flush(&self) -> Result<()> {
        let _one = self.flushing.lock().unwrap_or_else(|e| e.into_inner());
        let done = self.intents.take_applied();
        if let Err(e) = self.db.flush() {
            self.intents.restore(done);
            return Err(e.into());
        }
        if let Err(e) = self.intents.retire(&done) {
            // An intent left behind while later ones are retired would be replayed over
            // newer writes: write nothing more until the store is reopened.
            self.broken
                .store(true, std::sync::atomic::Ordering::Release);
            return Err(e);
        }
        Ok(())
    }

    /// Flushes, then flushes the retiring of the last intents too, so that a store closed
    /// cleanly holds no intent on disk (nothing to replay, and nothing an older node, which
    /// knows no intents, could leave to be replayed over its own writes later).
    pub fn close(&self) -> Result<()> {
        self.flush()?;
        self.db.flush()?;
        Ok(())
    }

    /// Is a record with this id stored?
    pub fn contains(&self, id: &RecordId) -> Result<bool> {
        let k = keys::record(id);
        if !self.seen.maybe(&k) {
            return Ok(false);
        }
        Ok(self.tree.contains_key(k)?)
    }

    /// The arrival journal (for the ingest pipeline).
    pub(crate) fn journal(&self) -> Arc<Journal> {
        self.journal.clone()
    }

    /// Starts journaling the arrivals on a topic (durably; idempotent). Records stored from
    /// now on get a sequence number in [`Store::journal_after`].
    pub fn watch_topic(&self, topic: &Topic) -> Result<()> {
        let t = keys::topic_bytes(topic);
        let new = self
            .journal
            .topics
            .write()
            .map(|mut s| s.insert(t))
            .unwrap_or(false);
        if new {
            self.tree
                .insert(keys::key(keys::JOURNALED, &[&t]), Vec::new())?;
            self.db.flush()?;
        }
        Ok(())
    }

    /// Is the arrival on this topic journaled?
    pub fn is_watched(&self, topic: &Topic) -> bool {
        let t = keys::topic_bytes(topic);
        self.journal
            .topics
            .read()
            .map(|s| s.contains(&t))
            .unwrap_or(false)
    }

    /// Journal entries after `seq`, oldest first, at most `limit`: (seq, record id).
    pub fn journal_after(&self, seq: u64, limit: usize) -> Result<Vec<(u64, RecordId)>> {
        let start = keys::key(keys::JOURNAL, &[&(seq.saturating_add(1)).to_be_bytes()]);
        let mut out = Vec::new();
        for kv in self.tree.range(start..) {
            let (k, v) = kv?;
            if k.first() != Some(&keys::JOURNAL) || out.len() >= limit {
                break;
            }
            let s: [u8; 8] = k
                .get(1..9)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| Error::Corrupt("bad journal key".into()))?;
            let id: [u8; 32] = v
                .as_ref()
                .try_into()
                .map_err(|_| Error::Corrupt("bad journal entry".into()))?;
            out.push((u64::from_be_bytes(s), RecordId(id)));
        }
        Ok(out)
    }

    /// The latest journal sequence number (0 if none).
    pub fn journal_last(&self) -> u64 {
        self.journal
            .next
            .load(std::sync::atomic::Ordering::Relaxed)
            .saturating_sub(1)
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
        w.insert(keys::record(id), Some(keys::location(topic, created_at)));
        w.insert(
            keys::timed(keys::TOPIC, &keys::topic_bytes(topic), created_at, id),
            Some(wire.to_vec()),
        );
        self.write(&w)?;
        self.seen.insert_all(std::iter::once(&keys::record(id)));
        self.flush()
    }

    /// Overwrites a petition's stored tally with no check: only for tests that plant what an
    /// audit must find.
    #[doc(hidden)]
    pub fn plant_tally(&self, petition: &RecordId, tally: &PetitionTally) -> Result<()> {
        let v = codec::Stored::encode(tally);
        let mut w = BTreeMap::new();
        w.insert(
            keys::key(keys::PETITION_TALLY, &[petition.as_bytes()]),
            Some(v),
        );
        self.write(&w)?;
        self.flush()
    }

    /// The ids of every stored record, in id order (a full scan: for checks and tests).
    pub fn ids(&self) -> Result<Vec<RecordId>> {
        self.tree
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
            store: self,
            ix: &self.sync,
        }
    }

    /// The verbatim wire bytes of the record with this id.
    pub fn wire(&self, id: &RecordId) -> Result<Option<Vec<u8>>> {
        let k = keys::record(id);
        if !self.seen.maybe(&k) {
            return Ok(None);
        }
        let Some(loc) = self.tree.get(k)? else {
            return Ok(None);
        };
        Ok(self
            .tree
            .get(keys::stored_at(&loc, id))?
            .map(|w| w.to_vec()))
    }

    /// The record with this id, as stored (verbatim wire bytes, decoded).
    pub fn record(&self, id: &RecordId) -> Result<Option<SignedRecord>> {
        let Some(loc) = self.tree.get(keys::record(id))? else {
            return Ok(None);
        };
        match self.tree.get(keys::stored_at(&loc, id))? {
            None => Err(Error::Corrupt(format!("record {id} indexed but missing"))),
            Some(wire) => Ok(Some(SignedRecord::from_vec(wire.to_vec())?)),
        }
    }

    /// Number of stored records (one key lookup: the count is kept with the records).
    pub fn len(&self) -> Result<u64> {
        crate::tally::record_count(&self.tree)
    }

    /// Is the store empty?
    pub fn is_empty(&self) -> bool {
        self.tree.scan_prefix([keys::RECORD]).next().is_none()
    }

    /// Number of records waiting for a record they point at.
    pub fn waiting(&self) -> usize {
        self.tree.scan_prefix([keys::WAITING]).count()
    }

    /// Each waiting record's key as (the id it waits for, its own id).
    fn waiting_keys(&self) -> impl Iterator<Item = Result<(RecordId, RecordId)>> + '_ {
        let id_at = |k: &[u8], at: usize| -> Result<RecordId> {
            k.get(at..at + 32)
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .map(RecordId)
                .ok_or_else(|| Error::Corrupt("waiting key".into()))
        };
        self.tree.scan_prefix([keys::WAITING]).map(move |kv| {
            let (k, _) = kv?;
            Ok((id_at(&k, 1)?, id_at(&k, 33)?))
        })
    }

    /// How many records wait, and the ids of the records they wait for.
    pub(crate) fn waiting_targets(&self) -> Result<(usize, std::collections::HashSet<RecordId>)> {
        let mut n = 0;
        let mut targets = std::collections::HashSet::new();
        for kv in self.waiting_keys() {
            targets.insert(kv?.0);
            n += 1;
        }
        Ok((n, targets))
    }

    /// Ids of the records waiting for a record they point at.
    pub fn waiting_ids(&self) -> Result<std::collections::BTreeSet<RecordId>> {
        self.waiting_keys().map(|kv| kv.map(|(_, id)| id)).collect()
    }

    /// Bytes the database occupies on disk.
    pub fn size_on_disk(&self) -> Result<u64> {
        Ok(self.db.size_on_disk()?)
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
        for kv in self.tree.range(start..) {
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

    /// Records by an author, oldest first.
    pub fn by_author(
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
            keys::key(keys::PRODUCT, &[&keys::product_bytes_of(producer, code)]),
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
        let prefix = crate::tally::endorse_slot_prefix(petition);
        let mut start = prefix.clone();
        if let Some(a) = after {
            start.extend_from_slice(a.as_bytes());
            start.push(0);
        }
        let mut out = Vec::new();
        let mut last = None;
        for kv in self.tree.range(start..) {
            let (k, v) = kv?;
            if !k.starts_with(&prefix) || out.len() >= limit {
                break;
            }
            let (id, on) = crate::tally::slot_winner(&v)?;
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
        let k = crate::tally::slot_key(b'E', &[petition.as_bytes(), author.as_bytes()]);
        match self.tree.get(k)? {
            None => Ok(None),
            Some(v) => crate::tally::slot_winner(&v).map(Some),
        }
    }

    /// An author's winning record about a product (their latest review or retraction of it)
    /// and whether it is a counted review.
    pub fn review_of(
        &self,
        producer: &AuthorKey,
        code: &str,
        author: &AuthorKey,
    ) -> Result<Option<(RecordId, bool)>> {
        let pk = keys::product_bytes_of(producer, code);
        let k = crate::tally::slot_key(b'V', &[&pk, author.as_bytes()]);
        match self.tree.get(k)? {
            None => Ok(None),
            Some(v) => crate::tally::slot_winner(&v).map(Some),
        }
    }

    /// Every petition with its tally, in id order (one key per petition).
    pub fn petitions(&self) -> Result<Vec<(RecordId, PetitionTally)>> {
        let mut out = Vec::new();
        for kv in self.tree.scan_prefix([keys::PETITION_TALLY]) {
            let (k, v) = kv?;
            let id: [u8; 32] = k
                .get(1..)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| Error::Corrupt("bad tally key".into()))?;
            let t = <PetitionTally as codec::Stored>::decode(&v)?;
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
    fn derived<T: codec::Stored>(&self, key: &[u8]) -> Result<Option<T>> {
        self.hot
            .get_or_load(&self.tree, key)?
            .map(|b| T::decode(&b))
            .transpose()
    }

    /// A product's rating: one key lookup.
    pub fn rating(&self, producer: &AuthorKey, code: &str) -> Result<Rating> {
        let k = keys::key(keys::RATING, &[&keys::product_bytes_of(producer, code)]);
        Ok(self.derived(&k)?.unwrap_or_default())
    }

    /// A group's tally (member count).
    pub fn group(&self, group: &RecordId) -> Result<Option<GroupTally>> {
        self.derived(&keys::key(keys::GROUP_TALLY, &[group.as_bytes()]))
    }

    /// Is `member` a member of `group` (derived from joins, admits and the founder)?
    pub fn is_member(&self, group: &RecordId, member: &AuthorKey) -> Result<bool> {
        crate::tally::is_member(&Overlay::new(&self.tree), group, member)
    }

    /// The latest profile record of an author, unless retracted.
    pub fn profile(&self, author: &AuthorKey) -> Result<Option<SignedRecord>> {
        match crate::tally::profile_id(&self.tree, author)? {
            Some(id) => self.record(&id),
            None => Ok(None),
        }
    }

    /// Every stored record's wire bytes, in topic and time order (audits, recompute).
    /// Every stored record: the id its key names, and its wire bytes.
    pub(crate) fn all_entries(&self) -> impl Iterator<Item = Result<(RecordId, Vec<u8>)>> + '_ {
        self.tree.scan_prefix([keys::TOPIC]).map(|kv| {
            let (k, v) = kv?;
            let (_, id) =
                keys::timed_tail(&k).ok_or_else(|| Error::Corrupt("bad topic/time key".into()))?;
            Ok((id, v.to_vec()))
        })
    }

    pub(crate) fn all_wires(&self) -> impl Iterator<Item = Result<Vec<u8>>> + '_ {
        self.tree
            .scan_prefix([keys::TOPIC])
            .map(|kv| kv.map(|(_, v)| v.to_vec()).map_err(Error::from))
    }

    /// All derived state (slots, tallies, ratings, groups, the record count) as raw entries:
    /// two stores holding the same records must return equal maps.
    pub fn derived_snapshot(&self) -> Result<BTreeMap<Vec<u8>, Vec<u8>>> {
        let mut all = BTreeMap::new();
        for p in keys::DERIVED.iter().chain([b'm'].iter()) {
            all.extend(self.derived_entries(*p)?);
        }
        Ok(all)
    }

    /// Derived-state entries under one prefix, as stored.
    pub(crate) fn derived_entries(&self, prefix: u8) -> Result<BTreeMap<Vec<u8>, Vec<u8>>> {
        self.tree
            .scan_prefix([prefix])
            .map(|kv| {
                kv.map(|(k, v)| (k.to_vec(), v.to_vec()))
                    .map_err(Error::from)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use codec::Stored;

    /// Every slot and petition tally value, by key.
    fn slots_and_tallies(store: &Store) -> BTreeMap<Vec<u8>, Vec<u8>> {
        [keys::SLOT, keys::PETITION_TALLY]
            .into_iter()
            .flat_map(|p| store.tree().scan_prefix([p]))
            .map(|kv| {
                let (k, v) = kv.unwrap();
                (k.to_vec(), v.to_vec())
            })
            .collect()
    }

    /// Ingests `n` records of workload `seed` into `store` through the pipeline (each
    /// acknowledged, so flushed) and stops it.
    fn ingest_workload(store: &Store, seed: u64, n: usize) {
        let (ing, threads) =
            crate::Ingest::start(store.clone(), crate::IngestConfig::default()).unwrap();
        let recs = crate::workload::generate(seed, &crate::workload::Params::realistic(n));
        ing.ingest_blocking(recs.iter().map(|r| r.wire().to_vec()).collect())
            .unwrap();
        drop(ing);
        threads.join();
    }

    #[test]
    fn intents_are_retired_by_the_flush_that_covers_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        ingest_workload(&store, 4, 1_000);
        // Acknowledged means flushed, and a flush retires what it covers.
        assert_eq!(store.intents.len(), 0);
        // A write not yet flushed keeps its intent until the next flush.
        let mut w = BTreeMap::new();
        w.insert(b"ztest".to_vec(), Some(b"value".to_vec()));
        store.write(&w).unwrap();
        assert!(store.intents.len() > 0);
        store.close().unwrap();
        assert_eq!(store.intents.len(), 0);
        let n = store.len().unwrap();
        assert!(n > 900, "{n} records stored");
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.intents.len(), 0);
        assert_eq!(store.len().unwrap(), n);
    }

    #[test]
    fn a_store_written_with_cbor_values_is_migrated_once_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let tallies = {
            let store = Store::open(dir.path()).unwrap();
            ingest_workload(&store, 3, 2_000);
            // What an older node wrote: the same values as CBOR maps, and no format marker.
            let mut old = BTreeMap::new();
            for (k, v) in slots_and_tallies(&store) {
                let cbor = if k[0] == keys::SLOT {
                    codec::cbor_encode(&crate::tally::Slot::decode(&v).unwrap())
                } else {
                    codec::cbor_encode(&PetitionTally::decode(&v).unwrap())
                };
                old.insert(k, Some(cbor));
            }
            assert!(old.len() > 1_000);
            old.insert(keys::FORMAT.to_vec(), None);
            store.write(&old).unwrap();
            store.flush().unwrap();
            assert!(!crate::recompute(&store).unwrap().is_empty());
            store.petitions().unwrap()
        };
        let store = Store::open(dir.path()).unwrap();
        let values = slots_and_tallies(&store);
        assert!(values.values().all(|v| v[0] == codec::COMPACT));
        assert_eq!(store.petitions().unwrap(), tallies);
        assert!(crate::recompute(&store).unwrap().is_empty());
        assert!(store.tree().contains_key(keys::FORMAT).unwrap());
        drop(store);
        let again = Store::open(dir.path()).unwrap();
        assert_eq!(slots_and_tallies(&again), values);
    }
}
