//! The store's sync index: range fingerprints over the topic/time keys (`t`), maintained
//! incrementally as records are written.
//!
//! The `t` keys, in order, are cut into **chunks** of about [`CHUNK`] keys; each chunk keeps
//! the [`Accumulator`] of its keys, and a Fenwick tree over the chunks gives the accumulator
//! of every key below a chunk boundary in O(log n). The accumulator of any range is then
//! `P(upper) - P(lower)`, where `P(x)` (every key below `x`) is a Fenwick prefix plus a sled
//! scan of the part of one chunk below `x`: O(log n + CHUNK), whatever the range's size.
//! Writing a record adds its id to its chunk (O(log n)). Chunks end where topics end, so a
//! key past the last key of its chunk (the usual case: records mostly arrive in time order,
//! so most keys end their topic) starts a new chunk when its chunk is full or holds another
//! topic (topic cuts stop while chunks would average fewer than [`MIN_AVERAGE`] keys, so a
//! flood of one-record topics cannot cost a chunk per record): such cuts read nothing. Only a chunk that keys written into its middle grew past
//! [`SPLIT_AT`] is cut into chunks of `CHUNK` by one scan of its keys (cutting at four times
//! the target rather than two halves how often that happens). The index lives in memory and
//! is rebuilt with the same cuts from the `t` keys when the store opens without a snapshot.
//!
//! A rebuild can run while records are written ([`SyncIndex::building`], then
//! [`SyncIndex::build_step`] under the store's index lock, a slice of keys at a time): keys
//! written behind the scan's cursor are kept aside and added when the scan ends; keys ahead
//! of it are left for the scan to read. Until then the index is not [ready](SyncIndex::is_ready)
//! and answers no reconciliation.

use std::sync::{Mutex, MutexGuard};

use chorus_protocol::sync::{id_of, separator, Accumulator, Bound, Id, Key, RangeIndex, KEY_LEN};
use chorus_protocol::RecordId;

use super::cache::Seen;
use super::keys;
use crate::error::{Error, Result};

/// Target keys per chunk.
pub const CHUNK: u64 = 64;

/// A chunk with more keys than this is cut into chunks of [`CHUNK`].
pub const SPLIT_AT: u64 = 4 * CHUNK;

#[derive(Debug, Clone)]
struct Chunk {
    /// Inclusive lower bound of the chunk's keys (the first chunk's is empty).
    start: Vec<u8>,
    acc: Accumulator,
    /// The chunk's greatest key (`None` while it is empty).
    last: Option<Box<Key>>,
}

impl Chunk {
    fn new(start: Vec<u8>) -> Self {
        Chunk {
            start,
            acc: Accumulator::default(),
            last: None,
        }
    }

    fn add(&mut self, key: &Key) {
        self.acc.add(&id_of(key));
        match &mut self.last {
            Some(l) if **l >= *key => {}
            Some(l) => **l = *key,
            None => self.last = Some(Box::new(*key)),
        }
    }
}

/// The topic part of a sync key.
fn topic_of(key: &Key) -> &[u8] {
    &key[..KEY_LEN - 8 - 32]
}

/// Chunks hold at least this many keys on average: cuts at topic ends stop when there would
/// be more chunks, so a flood of one-record topics (anyone can start one) costs the index a
/// chunk per this many records, not one per record.
pub const MIN_AVERAGE: u64 = 8;

/// Does a chunk that holds `count` keys and ends with `prev` end before `next` (keys in
/// order)? When it holds `CHUNK` keys already, or `next` starts another topic and the index
/// (`chunks` chunks for `keys` keys) can afford another chunk.
fn cut_before(prev: &Key, count: u64, next: &Key, chunks: usize, keys: u64) -> bool {
    count >= CHUNK || (topic_of(prev) != topic_of(next) && (chunks as u64) * MIN_AVERAGE <= keys)
}

/// The chunks and their Fenwick tree.
#[derive(Debug)]
pub struct SyncIndex {
    chunks: Vec<Chunk>,
    /// 1-based Fenwick tree of the chunks' accumulators; stale while `dirty`.
    fenwick: Vec<Accumulator>,
    dirty: bool,
    /// Keys indexed.
    keys: u64,
    /// Chunks cut by reading their keys back from the tree (since the index was built).
    read_splits: u64,
    /// Set while the index is being built from the tree (not ready).
    build: Option<Build>,
}

/// A build in progress: the last `t` key read (`None`: none yet), and the keys written
/// behind it since, which the scan will not read.
#[derive(Debug, Default)]
struct Build {
    cursor: Option<Vec<u8>>,
    behind: Vec<Vec<u8>>,
    /// The build failed: the index stays not ready and keeps nothing aside.
    failed: bool,
}

fn t_key(bytes: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + bytes.len());
    k.push(keys::TOPIC);
    k.extend_from_slice(bytes);
    k
}

fn t_end(upper: &Bound) -> Vec<u8> {
    match upper {
        Bound::Below(b) => t_key(b),
        Bound::End => vec![keys::TOPIC + 1],
    }
}

/// The sync key of a stored `t` key (without its prefix byte).
fn sync_key(k: &[u8]) -> Option<Key> {
    k.get(1..).and_then(|s| <Key>::try_from(s).ok())
}

/// Appends `key`, greater than every key in `chunks`, to the last chunk or to a new one;
/// the index has `others` chunks besides these and `keys` keys in all.
fn push_key(chunks: &mut Vec<Chunk>, key: &Key, others: usize, keys: u64) {
    let n = others + chunks.len();
    let start = chunks.last().and_then(|c| {
        let last = c.last.as_deref()?;
        cut_before(last, c.acc.count(), key, n, keys).then(|| separator(last, key))
    });
    if let Some(start) = start {
        chunks.push(Chunk::new(start));
    }
    if let Some(c) = chunks.last_mut() {
        c.add(key);
    }
}

impl SyncIndex {
    /// Builds the index from the `t` keys of a tree, at once.
    pub(crate) fn build(tree: &sled::Tree) -> Result<Self> {
        let mut ix = Self::building();
        while !ix.build_step(tree, usize::MAX)? {}
        Ok(ix)
    }

    /// An empty index to be built by [`SyncIndex::build_step`]; not ready until then.
    pub(crate) fn building() -> Self {
        SyncIndex {
            chunks: vec![Chunk::new(Vec::new())],
            fenwick: Vec::new(),
            dirty: true,
            keys: 0,
            read_splits: 0,
            build: Some(Build::default()),
        }
    }

    /// Has the index every key of the tree (it is not being built)?
    pub fn is_ready(&self) -> bool {
        self.build.is_none()
    }

    /// Reads up to `max` more `t` keys of a build from `tree` (called under the store's index
    /// lock, so no write set is half-way). Returns whether the build is complete: the keys
    /// written behind the scan are then added, and the index is ready.
    pub(crate) fn build_step(&mut self, tree: &sled::Tree, max: usize) -> Result<bool> {
        use std::ops::Bound as B;
        let Some(build) = self.build.as_mut() else {
            return Ok(true);
        };
        if build.failed {
            return Err(Error::Corrupt(
                "the sync index rebuild failed; restart the node".into(),
            ));
        }
        let lower = match &build.cursor {
            Some(c) => B::Excluded(c.clone()),
            None => B::Included(vec![keys::TOPIC]),
        };
        let upper = B::Excluded(vec![keys::TOPIC + 1]);
        for (read, kv) in tree.range::<Vec<u8>, _>((lower, upper)).enumerate() {
            if read >= max {
                return Ok(false);
            }
            let (k, _) = kv?;
            if let Some(key) = sync_key(&k) {
                push_key(&mut self.chunks, &key, 0, self.keys);
                self.keys += 1;
            }
            build.cursor = Some(k.to_vec());
        }
        let behind = std::mem::take(&mut build.behind);
        self.build = None;
        self.dirty = true;
        self.refresh();
        let behind: Vec<&[u8]> = behind.iter().map(|k| k.as_slice()).collect();
        if let Err(e) = self.insert_all(tree, &behind) {
            self.fail();
            return Err(e);
        }
        Ok(true)
    }

    /// Gives up a build that failed: the index is not ready (it answers no reconciliation)
    /// until the store is reopened, and keeps no keys aside meanwhile.
    pub(crate) fn fail(&mut self) {
        self.build = Some(Build {
            failed: true,
            ..Build::default()
        });
    }

    /// The index as bytes, for [`super::snapshot`]: the key count, then each chunk (its
    /// start's length and bytes, its accumulator, its last key if any).
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.keys.to_le_bytes());
        out.extend_from_slice(&(self.chunks.len() as u64).to_le_bytes());
        for c in &self.chunks {
            out.extend_from_slice(&(c.start.len() as u32).to_le_bytes());
            out.extend_from_slice(&c.start);
            out.extend_from_slice(&c.acc.to_bytes());
            match &c.last {
                Some(k) => {
                    out.push(1);
                    out.extend_from_slice(&k[..]);
                }
                None => out.push(0),
            }
        }
    }

    /// The index [`SyncIndex::encode`] wrote at the front of `r` (`None` if malformed).
    pub(crate) fn decode(r: &mut &[u8]) -> Option<Self> {
        fn take<'a>(r: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
            if r.len() < n {
                return None;
            }
            let (a, b) = r.split_at(n);
            *r = b;
            Some(a)
        }
        let u64_of = |r: &mut &[u8]| {
            take(r, 8).and_then(|b| <[u8; 8]>::try_from(b).ok().map(u64::from_le_bytes))
        };
        let keys = u64_of(r)?;
        let n = usize::try_from(u64_of(r)?).ok()?;
        // Every chunk takes at least 45 bytes: a count beyond the input is malformed.
        if n == 0 || n > r.len() / 45 {
            return None;
        }
        let mut chunks = Vec::with_capacity(n);
        let mut total = 0u64;
        for _ in 0..n {
            let len = u32::from_le_bytes(take(r, 4)?.try_into().ok()?) as usize;
            let start = take(r, len)?.to_vec();
            let acc = Accumulator::from_bytes(take(r, Accumulator::BYTES)?.try_into().ok()?);
            let last = match take(r, 1)?[0] {
                0 => None,
                1 => Some(Box::new(<Key>::try_from(take(r, KEY_LEN)?).ok()?)),
                _ => return None,
            };
            total = total.checked_add(acc.count())?;
            chunks.push(Chunk { start, acc, last });
        }
        // The chunks in order, the first open below, and the counts adding up.
        let ordered = chunks.windows(2).all(|w| w[0].start < w[1].start);
        if !ordered || !chunks[0].start.is_empty() || total != keys {
            return None;
        }
        let mut ix = SyncIndex {
            chunks,
            fenwick: Vec::new(),
            dirty: true,
            keys,
            read_splits: 0,
            build: None,
        };
        ix.refresh();
        Some(ix)
    }

    /// Rebuilds the Fenwick tree if chunks were split since.
    pub(crate) fn refresh(&mut self) {
        if !self.dirty {
            return;
        }
        let n = self.chunks.len();
        let mut f = vec![Accumulator::default(); n + 1];
        for i in 1..=n {
            f[i].merge(&self.chunks[i - 1].acc);
            let j = i + (i & i.wrapping_neg());
            if j <= n {
                let v = f[i];
                f[j].merge(&v);
            }
        }
        self.fenwick = f;
        self.dirty = false;
    }

    /// The chunk holding `key`: the last whose start is at or below it.
    fn find(&self, key: &[u8]) -> usize {
        self.chunks
            .partition_point(|c| c.start.as_slice() <= key)
            .saturating_sub(1)
    }

    /// Accumulator of chunks `0..j`.
    fn before(&self, j: usize) -> Accumulator {
        let mut s = Accumulator::default();
        let mut i = j;
        while i > 0 {
            s.merge(&self.fenwick[i]);
            i -= i & i.wrapping_neg();
        }
        s
    }

    /// Adds newly written keys (already in `tree`), then splits chunks grown too big.
    ///
    /// A key past the last key of its chunk (the usual case: records mostly arrive in time
    /// order, so most keys end their topic) starts a new chunk when the chunk is full or the
    /// key starts another topic (while chunks average [`MIN_AVERAGE`] keys). Such cuts read nothing back; only a chunk grown past
    /// [`SPLIT_AT`] by keys written into its middle is cut by reading its keys.
    pub(crate) fn insert_all(&mut self, tree: &sled::Tree, stored: &[&[u8]]) -> Result<()> {
        if let Some(build) = self.build.as_mut() {
            if build.failed {
                return Ok(());
            }
            // Behind the scan's cursor: added when the build ends. Ahead: the scan reads it.
            let behind = stored
                .iter()
                .filter(|k| build.cursor.as_deref().is_some_and(|c| **k <= c));
            build.behind.extend(behind.map(|k| k.to_vec()));
            return Ok(());
        }
        let mut grown = Vec::new();
        for k in stored {
            let Some(key) = sync_key(k) else { continue };
            let mut j = self.find(&key);
            let c = &self.chunks[j];
            if let Some(last) = c.last.as_deref() {
                let (n, keys) = (self.chunks.len(), self.keys);
                if key > *last && cut_before(last, c.acc.count(), &key, n, keys) {
                    let start = separator(last, &key);
                    j += 1;
                    self.chunks.insert(j, Chunk::new(start));
                    self.dirty = true;
                }
            }
            self.chunks[j].add(&key);
            self.keys += 1;
            if !self.dirty {
                let mut one = Accumulator::default();
                one.add(&id_of(&key));
                let n = self.chunks.len();
                let mut i = j + 1;
                while i <= n {
                    self.fenwick[i].merge(&one);
                    i += i & i.wrapping_neg();
                }
            }
            if self.chunks[j].acc.count() > SPLIT_AT {
                grown.push(self.chunks[j].start.clone());
            }
        }
        grown.sort();
        grown.dedup();
        // From the last, so the earlier chunks' positions hold.
        for start in grown.iter().rev() {
            let j = self.find(start);
            self.split_chunk(tree, j)?;
        }
        Ok(())
    }

    /// Cuts chunk `j` into chunks of `CHUNK` keys (and at topic boundaries), reading its
    /// keys from `tree`.
    fn split_chunk(&mut self, tree: &sled::Tree, j: usize) -> Result<()> {
        let lo = t_key(&self.chunks[j].start);
        let hi = match self.chunks.get(j + 1) {
            Some(c) => t_key(&c.start),
            None => vec![keys::TOPIC + 1],
        };
        self.read_splits += 1;
        let mut pieces = vec![Chunk::new(self.chunks[j].start.clone())];
        let others = self.chunks.len() - 1;
        for kv in tree.range(lo..hi) {
            let (k, _) = kv?;
            if let Some(key) = sync_key(&k) {
                push_key(&mut pieces, &key, others, self.keys);
            }
        }
        if pieces.len() > 1 {
            self.chunks.splice(j..=j, pieces);
            self.dirty = true;
        }
        Ok(())
    }

    /// Number of keys indexed.
    pub fn len(&self) -> u64 {
        self.keys
    }

    /// Is the index empty?
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The store as a [`RangeIndex`]. Each query takes the index lock only for itself (the
/// Fenwick sums and the scan of one partial chunk), so answering a large request never holds
/// up ingest for long; a write between two queries of one step can at worst make a
/// fingerprint differ, which costs an extra split, never a wrong result.
pub struct SyncView<'a> {
    pub(super) cur: &'a super::Current,
    pub(super) seen: &'a Seen,
    pub(super) ix: &'a Mutex<SyncIndex>,
}

impl SyncView<'_> {
    fn lock(&self) -> MutexGuard<'_, SyncIndex> {
        let mut ix = self.ix.lock().unwrap_or_else(|e| e.into_inner());
        ix.refresh();
        ix
    }

    fn scan(&self, lower: &[u8], upper: &Bound) -> impl Iterator<Item = Result<Key>> + '_ {
        let (range, err) = match self.cur.tree() {
            Ok(t) => (Some(t.range(t_key(lower)..t_end(upper))), None),
            Err(e) => (None, Some(e)),
        };
        err.map(Err)
            .into_iter()
            .chain(range.into_iter().flatten().filter_map(|kv| match kv {
                Ok((k, _)) => sync_key(&k).map(Ok),
                Err(e) => Some(Err(Error::from(e))),
            }))
    }

    /// Accumulator of every key below `x`.
    fn prefix(&self, x: &Bound) -> Result<Accumulator> {
        let ix = self.lock();
        let Bound::Below(x) = x else {
            return Ok(ix.before(ix.chunks.len()));
        };
        let j = ix.find(x);
        let mut acc = ix.before(j);
        let start = &ix.chunks[j].start;
        if start != x {
            // Under the lock: the chunk's sum and its keys in the tree agree.
            for k in self.scan(start, &Bound::Below(x.clone())) {
                acc.add(&id_of(&k?));
            }
        }
        Ok(acc)
    }

    /// Number of keys held.
    pub fn len(&self) -> u64 {
        self.lock().len()
    }

    /// Is nothing held?
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl RangeIndex for SyncView<'_> {
    type Error = Error;

    fn accumulate(&self, lower: &[u8], upper: &Bound) -> Result<Accumulator> {
        let mut acc = self.prefix(upper)?;
        if !lower.is_empty() {
            acc.subtract(&self.prefix(&Bound::Below(lower.to_vec()))?);
        }
        Ok(acc)
    }

    fn keys(&self, lower: &[u8], upper: &Bound, limit: usize) -> Result<Vec<Key>> {
        self.scan(lower, upper).take(limit).collect()
    }

    fn split(&self, lower: &[u8], upper: &Bound, count: u64, parts: usize) -> Result<Vec<Bound>> {
        let per = count.div_ceil(parts.max(1) as u64).max(1);
        // Chunk boundaries strictly inside the range, taken every `per` keys or so.
        let mut out = Vec::new();
        let mut run = 0u64;
        let ix = self.lock();
        let first = ix.find(lower);
        for c in &ix.chunks[first..] {
            if !upper.includes(&c.start) {
                break;
            }
            if c.start.as_slice() > lower && run >= per {
                out.push(Bound::Below(c.start.clone()));
                run = 0;
            }
            run += c.acc.count();
        }
        drop(ix);
        if out.is_empty() {
            // The range lies within a chunk or two: split its keys themselves.
            let ks = self.keys(lower, upper, usize::MAX)?;
            let per = (ks.len() as u64).div_ceil(parts.max(1) as u64).max(1) as usize;
            out = (1..ks.len())
                .filter(|n| n % per == 0)
                .map(|n| Bound::Below(separator(&ks[n - 1], &ks[n])))
                .collect();
        }
        out.push(upper.clone());
        Ok(out)
    }

    fn contains(&self, id: &Id) -> Result<bool> {
        self.seen.has_record(&self.cur.tree()?, &RecordId(*id))
    }
}

const _: () = assert!(KEY_LEN == 33 + 8 + 32);

#[cfg(test)]
mod tests {
    use super::*;
    use chorus_protocol::sync::{reconcile, MemoryIndex, Params};
    use chorus_protocol::testing::sync_key as key;

    /// A tree with its sync index, kept in step as the store keeps them.
    struct Indexed {
        tree: sled::Tree,
        cur: crate::store::Current,
        seen: Seen,
        ix: Mutex<SyncIndex>,
    }

    impl Indexed {
        fn temporary() -> Self {
            let db = sled::Config::new().temporary(true).open().unwrap();
            let tree = db.open_tree("t").unwrap();
            let ix = Mutex::new(SyncIndex::build(&tree).unwrap());
            let cur = crate::store::Current::new(crate::store::Handles {
                intents: crate::store::intent::Intents::open(&db, &tree).unwrap(),
                db,
                tree: tree.clone(),
                dir: None,
            });
            Indexed {
                tree,
                cur,
                seen: Seen::default(),
                ix,
            }
        }
        fn sync_view(&self) -> SyncView<'_> {
            SyncView {
                cur: &self.cur,
                seen: &self.seen,
                ix: &self.ix,
            }
        }
        fn tree(&self) -> &sled::Tree {
            &self.tree
        }
    }

    /// Writes keys as the store writes a write set: in key order.
    fn write(store: &Indexed, keys: &[Key]) {
        let mut stored: Vec<Vec<u8>> = keys.iter().map(|k| t_key(k)).collect();
        stored.sort();
        for k in &stored {
            store.tree.insert(k.as_slice(), vec![1]).unwrap();
        }
        let refs: Vec<&[u8]> = stored.iter().map(|k| k.as_slice()).collect();
        store
            .ix
            .lock()
            .unwrap()
            .insert_all(&store.tree, &refs)
            .unwrap();
    }

    #[test]
    fn the_store_index_agrees_with_a_plain_scan() {
        let store = Indexed::temporary();
        let all: Vec<Key> = (0..5_000).map(|n| key(n * 7919 % 100_003)).collect();
        // Batches of uneven sizes, in a scrambled order: chunks fill and split.
        let mut at = 0;
        for size in [1, 500, 3, 2_000, 96, 2_400] {
            write(&store, &all[at..at + size]);
            at += size;
        }
        let mem = MemoryIndex(all.iter().copied().collect());
        let view = store.sync_view();
        assert_eq!(view.len(), 5_000);
        assert!(view.lock().chunks.len() > 5_000 / (SPLIT_AT as usize));
        assert!(view.lock().read_splits > 0);
        let sorted: Vec<Key> = mem.0.iter().copied().collect();
        let bounds = [0usize, 1, 63, 64, 65, 700, 2_500, 4_999];
        for &i in &bounds {
            for &j in &bounds {
                if j <= i {
                    continue;
                }
                let lo = reconcile::separator(&sorted[i - usize::from(i > 0)], &sorted[i]);
                let lo = if i == 0 { Vec::new() } else { lo };
                let hi = Bound::Below(reconcile::separator(&sorted[j - 1], &sorted[j]));
                assert_eq!(
                    view.accumulate(&lo, &hi).unwrap(),
                    mem.accumulate(&lo, &hi).unwrap(),
                    "{i}..{j}"
                );
                assert_eq!(
                    view.keys(&lo, &hi, 100).unwrap(),
                    mem.keys(&lo, &hi, 100).unwrap()
                );
                let count = view.accumulate(&lo, &hi).unwrap().count();
                let split = view.split(&lo, &hi, count, 16).unwrap();
                assert_eq!(split.last(), Some(&hi));
                let mut prev = lo.clone();
                for b in &split[..split.len() - 1] {
                    let Bound::Below(b) = b else {
                        panic!("End inside a split")
                    };
                    assert!(b.as_slice() > prev.as_slice() && hi.includes(b));
                    prev = b.clone();
                }
                if count > 2 {
                    assert!(split.len() >= 2, "a range of {count} keys must split");
                }
            }
        }
        assert_eq!(
            view.accumulate(&[], &Bound::End).unwrap(),
            mem.accumulate(&[], &Bound::End).unwrap()
        );
        // The index rebuilt from the tree says the same.
        let rebuilt = SyncIndex::build(store.tree()).unwrap();
        assert_eq!(rebuilt.len(), 5_000);
    }

    #[test]
    fn an_index_built_while_keys_are_written_counts_every_key() {
        let store = Indexed::temporary();
        let all: Vec<Key> = (0..6_000).map(|n| key(n * 7919 % 100_003)).collect();
        write(&store, &all[..3_000]);
        // A build from scratch, a slice at a time, with write sets landing between slices:
        // their keys fall behind the scan's cursor and ahead of it.
        *store.ix.lock().unwrap() = SyncIndex::building();
        let mut at = 3_000;
        let mut steps = 0;
        let mut kept_aside = 0;
        loop {
            let done = store
                .ix
                .lock()
                .unwrap()
                .build_step(store.tree(), 250)
                .unwrap();
            if done {
                break;
            }
            let aside = store
                .ix
                .lock()
                .unwrap()
                .build
                .as_ref()
                .unwrap()
                .behind
                .len();
            kept_aside = kept_aside.max(aside);
            steps += 1;
            if at < all.len() {
                write(&store, &all[at..at + 300]);
                at += 300;
            }
        }
        assert!(steps > 10, "the build took {steps} slices");
        assert!(kept_aside > 0, "no write landed behind the cursor");
        // Some of the writes were behind the cursor and kept aside, some ahead.
        write(&store, &all[at..]);
        assert!(store.ix.lock().unwrap().is_ready());
        let mem = MemoryIndex(all.iter().copied().collect());
        let view = store.sync_view();
        assert_eq!(view.len(), 6_000);
        assert_eq!(
            view.accumulate(&[], &Bound::End).unwrap(),
            mem.accumulate(&[], &Bound::End).unwrap()
        );
        let sorted: Vec<Key> = mem.0.iter().copied().collect();
        for (i, j) in [(0usize, 100usize), (999, 4_321), (2_000, 5_999), (10, 11)] {
            let lo = reconcile::separator(&sorted[i - usize::from(i > 0)], &sorted[i]);
            let lo = if i == 0 { Vec::new() } else { lo };
            let hi = Bound::Below(reconcile::separator(&sorted[j - 1], &sorted[j]));
            assert_eq!(
                view.accumulate(&lo, &hi).unwrap(),
                mem.accumulate(&lo, &hi).unwrap(),
                "{i}..{j}"
            );
        }
    }

    #[test]
    fn keys_written_in_time_order_are_cut_without_reading_back() {
        let store = Indexed::temporary();
        // Three topics, each written in time order, in batches of uneven sizes.
        let all: Vec<Key> = (0..3_000).map(key).collect();
        let mut at = 0;
        for size in [300, 7, 1, 200, 64, 1_000, 5, 1_423] {
            write(&store, &all[at..at + size]);
            at += size;
        }
        let view = store.sync_view();
        let ix = view.lock();
        // Every chunk is full or ends its topic, and holds one topic: no chunk grew past
        // CHUNK to be split by reading its keys.
        assert_eq!(ix.len(), 3_000);
        assert_eq!(ix.read_splits, 0);
        for (n, c) in ix.chunks.iter().enumerate().skip(1) {
            let last = c.last.as_deref().expect("no empty chunk");
            assert!(c.acc.count() <= CHUNK, "chunk {n}: {}", c.acc.count());
            assert_eq!(&c.start[..1], &[1]);
            if c.start.len() >= 2 {
                assert_eq!(c.start[1], last[1], "chunk {n} spans topics");
            }
        }
        // The same chunks as an index built from the tree in one pass.
        let rebuilt = SyncIndex::build(store.tree()).unwrap();
        let starts = |ix: &SyncIndex| -> Vec<Vec<u8>> {
            ix.chunks.iter().map(|c| c.start.clone()).collect()
        };
        assert_eq!(starts(&ix), starts(&rebuilt));
        drop(ix);
        let mem = MemoryIndex(all.iter().copied().collect());
        let sorted: Vec<Key> = mem.0.iter().copied().collect();
        for (lo, hi) in [
            (0, 2_999),
            (5, 2_999),
            (64, 65),
            (1_000, 2_000),
            (1_999, 2_001),
        ] {
            let lo = if lo == 0 {
                Vec::new()
            } else {
                reconcile::separator(&sorted[lo - 1], &sorted[lo])
            };
            let hi = Bound::Below(reconcile::separator(&sorted[hi - 1], &sorted[hi]));
            assert_eq!(
                view.accumulate(&lo, &hi).unwrap(),
                mem.accumulate(&lo, &hi).unwrap()
            );
        }
        assert_eq!(
            view.accumulate(&[], &Bound::End).unwrap(),
            mem.accumulate(&[], &Bound::End).unwrap()
        );
    }

    #[test]
    fn one_record_topics_share_chunks() {
        let store = Indexed::temporary();
        // Every key its own topic, in order: cutting at each topic end would make a chunk
        // per key.
        let all: Vec<Key> = (0..4_000u64)
            .map(|n| {
                let mut k = key(n);
                k[1..9].copy_from_slice(&n.to_be_bytes());
                k
            })
            .collect();
        for batch in all.chunks(100) {
            write(&store, batch);
        }
        let view = store.sync_view();
        let ix = view.lock();
        assert_eq!(ix.len(), 4_000);
        assert!(
            ix.chunks.len() as u64 <= 4_000 / MIN_AVERAGE + 1,
            "{} chunks",
            ix.chunks.len()
        );
        let rebuilt = SyncIndex::build(store.tree()).unwrap();
        assert!(rebuilt.chunks.len() as u64 <= 4_000 / MIN_AVERAGE + 1);
        drop(ix);
        let mem = MemoryIndex(all.iter().copied().collect());
        assert_eq!(
            view.accumulate(&[], &Bound::End).unwrap(),
            mem.accumulate(&[], &Bound::End).unwrap()
        );
    }

    #[test]
    fn a_store_reconciles_with_a_memory_set() {
        let store = Indexed::temporary();
        let mine: Vec<Key> = (0..3_000).map(key).collect();
        write(&store, &mine);
        let mut theirs: Vec<Key> = (0..2_990).map(key).collect();
        theirs.extend((10_000..10_040).map(key));
        let other = MemoryIndex(theirs.into_iter().collect());
        let p = Params::default();
        let view = store.sync_view();
        let mut msg = reconcile::open(&view, &vec![(Vec::new(), Bound::End)]).unwrap();
        let mut need = Vec::new();
        let mut rounds = 0;
        while !msg.is_empty() {
            rounds += 1;
            assert!(rounds < 20);
            let answer = reconcile::serve(&other, &msg, &p).unwrap();
            if answer.is_empty() {
                break;
            }
            msg = reconcile::pull(&view, &answer, &p, &mut need).unwrap();
        }
        need.sort();
        let mut want: Vec<Id> = (10_000..10_040).map(|n| id_of(&key(n))).collect();
        want.sort();
        assert_eq!(need, want);
    }
}
