//! In-memory caches in front of sled: the derived values read most ([`Hot`]), and a filter
//! of the record and slot keys that may exist ([`Seen`]).

use chorus_protocol::RecordId;

use super::keys;
use crate::error::Result;

/// The encoded tallies, ratings and group tallies, kept in memory as they are written and
/// read, so that a query is a hash lookup even when sled's page cache would miss. Bounded:
/// emptied when full (the values are small and few: one per petition, product and group).
#[derive(Default)]
pub(crate) struct Hot(std::sync::RwLock<std::collections::HashMap<Vec<u8>, Vec<u8>>>);

impl Hot {
    const CAPACITY: usize = 500_000;

    /// Forgets every value (after a reopen: the tree may have lost unflushed writes).
    pub(crate) fn clear(&self) {
        self.0.write().unwrap_or_else(|e| e.into_inner()).clear();
    }

    pub(crate) fn cached(key: &[u8]) -> bool {
        matches!(
            key.first(),
            Some(&keys::PETITION_TALLY) | Some(&keys::RATING) | Some(&keys::GROUP_TALLY)
        )
    }

    /// The value of a cached key, from memory or else from the tree (and then kept).
    /// A miss holds the write lock across the tree read, so a value read before a
    /// concurrent write (`Store::write`) can never replace the newer one that write puts here.
    pub(crate) fn get_or_load(&self, tree: &sled::Tree, key: &[u8]) -> Result<Option<Vec<u8>>> {
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

    pub(crate) fn put(&self, key: &[u8], value: Option<&[u8]>) {
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
///
/// A filter being filled from the tree in the background ([`Seen::unready`]) answers
/// "maybe" for every key until [`Seen::set_ready`]: slower lookups, never a wrong one.
pub(crate) struct Seen {
    bits: Vec<std::sync::atomic::AtomicU64>,
    ready: std::sync::atomic::AtomicBool,
}

impl Default for Seen {
    fn default() -> Self {
        Seen {
            bits: (0..Self::WORDS)
                .map(|_| std::sync::atomic::AtomicU64::new(0))
                .collect(),
            ready: std::sync::atomic::AtomicBool::new(true),
        }
    }
}

impl Seen {
    pub(crate) const WORDS: usize = (1 << 25) / 64;
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

    /// Is a record with this id in `tree`? Answered without a read when the filter can.
    pub(crate) fn has_record(&self, tree: &sled::Tree, id: &RecordId) -> Result<bool> {
        let k = keys::record(id);
        if !self.maybe(&k) {
            return Ok(false);
        }
        Ok(tree.contains_key(k)?)
    }

    /// An empty filter that is not ready: it answers "maybe" until [`Seen::set_ready`].
    pub(crate) fn unready() -> Self {
        let s = Self::default();
        s.ready.store(false, std::sync::atomic::Ordering::Release);
        s
    }

    /// Every key of the tree is in the filter now (the fill is done).
    pub(crate) fn set_ready(&self) {
        self.ready.store(true, std::sync::atomic::Ordering::Release);
    }

    /// Has the filter every key of the tree?
    pub(crate) fn is_ready(&self) -> bool {
        self.ready.load(std::sync::atomic::Ordering::Acquire)
    }

    /// False only if the key is certainly absent.
    pub(crate) fn maybe(&self, key: &[u8]) -> bool {
        use std::sync::atomic::Ordering;
        if !Self::tracked(key) || !self.is_ready() {
            return true;
        }
        Self::positions(key)
            .iter()
            .all(|p| self.bits[p / 64].load(Ordering::Relaxed) & (1 << (p % 64)) != 0)
    }

    /// The filter's bits, for [`super::snapshot`].
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        use std::sync::atomic::Ordering;
        out.reserve(Self::WORDS * 8);
        for w in &self.bits {
            out.extend_from_slice(&w.load(Ordering::Relaxed).to_le_bytes());
        }
    }

    /// The filter [`Seen::encode`] wrote at the front of `r` (`None` if too short).
    pub(crate) fn decode(r: &mut &[u8]) -> Option<Self> {
        if r.len() < Self::WORDS * 8 {
            return None;
        }
        let (bits, rest) = r.split_at(Self::WORDS * 8);
        *r = rest;
        Some(Seen {
            bits: bits
                .chunks_exact(8)
                .map(|b| {
                    let mut w = [0u8; 8];
                    w.copy_from_slice(b);
                    std::sync::atomic::AtomicU64::new(u64::from_le_bytes(w))
                })
                .collect(),
            ready: std::sync::atomic::AtomicBool::new(true),
        })
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
