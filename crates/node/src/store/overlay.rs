//! Pending writes over what is already stored: the write set one ingest chunk (or one
//! record of a recomputation) builds, read through as it grows. [`Backing`] is what it reads
//! beneath: the sled tree, an in-memory map, or the chunks not yet written over the tree
//! ([`Layered`]). The typed methods here read and write derived values; the record and index
//! writes are in [`super::index`].

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use chorus_protocol::{AuthorKey, RecordId};

use super::cache::{Hot, Seen};
use super::codec::Stored;
use super::intent::Writes;
use super::journal::Journal;
use super::keys::{self, ProductKey, SlotKey};
use super::values::{GroupTally, PetitionTally, Rating, Slot};
use crate::error::{Error, Result};

/// Read access to a key-value space: the sled tree, or an in-memory map.
pub(crate) trait Backing {
    /// The value of a key.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>>;
    /// Every key under `prefix`, in order, with its value.
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
    writes: &Writes,
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
    writes: Writes,
    /// Journals the arrival of records on watched topics (none: a recomputation).
    pub(super) journal: Option<&'a Journal>,
    /// Records stored through this overlay (added to the count by [`Overlay::into_writes`]).
    pub(super) added: u64,
}

impl<'a, B: Backing> Overlay<'a, B> {
    /// Pending writes over `base`, journaling nothing.
    pub(crate) fn new(base: &'a B) -> Self {
        Overlay {
            base,
            writes: BTreeMap::new(),
            journal: None,
            added: 0,
        }
    }

    /// Pending writes over `base` that journal the records stored on watched topics.
    pub(crate) fn with_journal(base: &'a B, journal: &'a Journal) -> Self {
        Overlay {
            journal: Some(journal),
            ..Self::new(base)
        }
    }

    pub(super) fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        match self.writes.get(key) {
            Some(v) => Ok(v.clone()),
            None => self.base.get(key),
        }
    }

    pub(super) fn contains(&self, key: &[u8]) -> Result<bool> {
        match self.writes.get(key) {
            Some(v) => Ok(v.is_some()),
            None => Ok(self.base.get(key)?.is_some()),
        }
    }

    pub(super) fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.writes.insert(key, Some(value));
    }

    pub(super) fn remove(&mut self, key: Vec<u8>) {
        self.writes.insert(key, None);
    }

    /// Keys and values under `prefix`, pending writes merged in.
    pub(super) fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        Ok(merge_writes(
            self.base.scan_prefix(prefix)?,
            &self.writes,
            prefix,
        ))
    }

    /// The write set: every pending write, and the record count moved by the records
    /// stored.
    pub(crate) fn into_writes(mut self) -> Result<Writes> {
        if self.added > 0 {
            let count: u64 = self.value(keys::COUNT)?.unwrap_or(0);
            let added = std::mem::take(&mut self.added);
            self.put_value(keys::COUNT.to_vec(), &(count + added));
        }
        Ok(self.writes)
    }

    fn value<T: Stored>(&self, key: &[u8]) -> Result<Option<T>> {
        self.get(key)?.map(|v| T::decode(&v)).transpose()
    }

    fn put_value<T: Stored>(&mut self, key: Vec<u8>, v: &T) {
        self.put(key, v.encode());
    }

    /// A slot's winning state.
    pub(crate) fn slot(&self, k: &SlotKey) -> Result<Option<Slot>> {
        self.value(k.as_bytes())
    }

    /// Sets a slot's winning state.
    pub(crate) fn put_slot(&mut self, k: SlotKey, s: &Slot) {
        self.put_value(k.into_bytes(), s);
    }

    /// Empties a slot (no record of it counts any more).
    pub(crate) fn remove_slot(&mut self, k: SlotKey) {
        self.remove(k.into_bytes());
    }

    /// Adds a record to a petition's history (see [`keys::HISTORY`]).
    pub(crate) fn put_history(&mut self, petition: &RecordId, e: &HistoryEntry) {
        let mut v = Vec::with_capacity(41);
        v.extend_from_slice(e.author.as_bytes());
        v.push(u8::from(e.on));
        v.extend_from_slice(&e.pledge.to_be_bytes());
        self.put(
            keys::timed(keys::HISTORY, petition.as_bytes(), e.at, &e.id),
            v,
        );
    }

    /// Removes a record from a petition's history.
    pub(crate) fn remove_history(&mut self, petition: &RecordId, at: u64, id: &RecordId) {
        self.remove(keys::timed(keys::HISTORY, petition.as_bytes(), at, id));
    }

    /// A petition's history, in (`created_at`, id) order.
    pub(crate) fn history(&self, petition: &RecordId) -> Result<Vec<HistoryEntry>> {
        let prefix = keys::key(keys::HISTORY, &[petition.as_bytes()]);
        self.scan_prefix(&prefix)?
            .into_iter()
            .map(|(k, v)| {
                let bad = || Error::Corrupt("petition history entry".into());
                let (at, id) = keys::timed_tail(&k).ok_or_else(bad)?;
                if v.len() != 41 {
                    return Err(bad());
                }
                let author: [u8; 32] = v[..32].try_into().map_err(|_| bad())?;
                let pledge = u64::from_be_bytes(v[33..41].try_into().map_err(|_| bad())?);
                Ok(HistoryEntry {
                    at,
                    id,
                    author: AuthorKey(author),
                    on: v[32] != 0,
                    pledge,
                })
            })
            .collect()
    }

    /// A petition's tally.
    pub(crate) fn petition_tally(&self, petition: &RecordId) -> Result<Option<PetitionTally>> {
        self.value(&keys::key(keys::PETITION_TALLY, &[petition.as_bytes()]))
    }

    /// Sets a petition's tally.
    pub(crate) fn put_petition_tally(&mut self, petition: &RecordId, t: &PetitionTally) {
        self.put_value(keys::key(keys::PETITION_TALLY, &[petition.as_bytes()]), t);
    }

    /// A product's rating.
    pub(crate) fn rating(&self, product: &ProductKey) -> Result<Option<Rating>> {
        self.value(&keys::key(keys::RATING, &[product.as_bytes()]))
    }

    /// Sets a product's rating.
    pub(crate) fn put_rating(&mut self, product: &ProductKey, r: &Rating) {
        self.put_value(keys::key(keys::RATING, &[product.as_bytes()]), r);
    }

    /// A group's tally.
    pub(crate) fn group_tally(&self, group: &RecordId) -> Result<Option<GroupTally>> {
        self.value(&keys::key(keys::GROUP_TALLY, &[group.as_bytes()]))
    }

    /// Sets a group's tally.
    pub(crate) fn put_group_tally(&mut self, group: &RecordId, g: &GroupTally) {
        self.put_value(keys::key(keys::GROUP_TALLY, &[group.as_bytes()]), g);
    }
}

/// One record in a petition's history: an endorsement (`on`) or the retraction of one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HistoryEntry {
    /// Its `created_at`.
    pub(crate) at: u64,
    /// Its id.
    pub(crate) id: RecordId,
    /// Its author (the endorser).
    pub(crate) author: AuthorKey,
    /// An endorsement (true) or a retraction (false).
    pub(crate) on: bool,
    /// An endorsement's pledge in the campaign's currency (hundredths; 0 if none).
    pub(crate) pledge: u64,
}

/// An in-memory key space (a recomputation builds derived state from scratch in one).
#[derive(Debug, Default)]
pub(crate) struct Memory(pub(super) BTreeMap<Vec<u8>, Vec<u8>>);

impl Memory {
    /// Its keys and values, in key order.
    pub(crate) fn into_entries(self) -> impl Iterator<Item = (Vec<u8>, Vec<u8>)> {
        self.0.into_iter()
    }

    /// Applies a write set.
    pub(crate) fn absorb(&mut self, writes: Writes) {
        for (k, v) in writes {
            match v {
                Some(v) => self.0.insert(k, v),
                None => self.0.remove(&k),
            };
        }
    }
}

impl Backing for Memory {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Backing::get(&self.0, key)
    }
    fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        Backing::scan_prefix(&self.0, prefix)
    }
}

/// What the ingest applier reads: the write sets applied but not yet written (newest
/// first), then the tree through the store's caches. While the committer writes chunk N,
/// chunk N+2 is applied on top of N and N+1.
pub(crate) struct Layered<'a> {
    pub(super) in_flight: &'a VecDeque<Arc<Writes>>,
    pub(super) cur: &'a super::Current,
    pub(super) seen: &'a Seen,
    pub(super) hot: &'a Hot,
}

impl Backing for Layered<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if let Some(v) = self.in_flight.iter().rev().find_map(|w| w.get(key)) {
            return Ok(v.clone());
        }
        if !self.seen.maybe(key) {
            return Ok(None);
        }
        if Hot::cached(key) {
            return self.hot.get_or_load(&self.cur.tree()?, key);
        }
        Ok(self.cur.tree()?.get(key)?.map(|v| v.to_vec()))
    }
    fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let base = Backing::scan_prefix(&self.cur.tree()?, prefix)?;
        Ok(self
            .in_flight
            .iter()
            .fold(base, |merged, w| merge_writes(merged, w, prefix)))
    }
}
