//! The store's in-memory indexes kept across a clean restart: the sync index and the
//! [`Seen`] filter, which otherwise are rebuilt on open by reading every record, slot and
//! topic key (seconds at a million records).
//!
//! [`Store::close`](super::Store::close) writes them, after its last flush, to one file in
//! the store's directory: a magic, the record count, the sync index, the filter's bits and a
//! BLAKE3 checksum of all that. [`take`] reads the file on open and **removes it before the
//! store writes anything**, so a snapshot only ever describes a store that has not changed
//! since: a node that crashes later finds no snapshot and rebuilds. It is used only if its
//! checksum, its format and its record count (against the store's own count, which every
//! record write changes, whoever wrote it) all hold; otherwise the indexes are rebuilt, as
//! before. Nothing in it is authoritative: the tree is.

use std::io::Write;
use std::path::Path;

use super::cache::Seen;
use super::sync_index::SyncIndex;
use crate::error::Result;

/// The snapshot's file name, in the store's directory.
pub const FILE: &str = "chorus-indexes.snapshot";
const MAGIC: &[u8; 8] = b"CHIDX\x00\x00\x01";

/// Writes the snapshot of a store of `records` records (atomically: a temporary file,
/// synced, renamed over the old one, and the directory synced).
pub(crate) fn save(dir: &Path, records: u64, sync: &SyncIndex, seen: &Seen) -> Result<()> {
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&records.to_le_bytes());
    sync.encode(&mut out);
    seen.encode(&mut out);
    let sum = blake3::hash(&out);
    out.extend_from_slice(sum.as_bytes());
    let tmp = dir.join(format!("{FILE}.tmp"));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&out)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, dir.join(FILE))?;
    sync_dir(dir)
}

/// Removes the snapshot (durably), if there is one.
pub(crate) fn discard(dir: &Path) -> Result<()> {
    match std::fs::remove_file(dir.join(FILE)) {
        Ok(()) => sync_dir(dir),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The indexes of a snapshot of this store (which holds `records` records), if one is there
/// and whole; the file is removed either way, durably, before this returns.
pub(crate) fn take(dir: &Path, records: u64) -> Result<Option<(SyncIndex, Seen)>> {
    let path = dir.join(FILE);
    let len = match std::fs::metadata(&path) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    if len > max_len(records) {
        // Larger than any snapshot of this store: not read at all.
        discard(dir)?;
        tracing::warn!(
            len,
            "the index snapshot is too large for the store; rebuilding the indexes"
        );
        return Ok(None);
    }
    let bytes = std::fs::read(&path)?;
    discard(dir)?;
    let parsed = parse(&bytes, records);
    if parsed.is_none() {
        tracing::warn!("the index snapshot does not match the store; rebuilding the indexes");
    }
    Ok(parsed)
}

/// The largest snapshot a store of `records` records can have: the header, the seen filter,
/// and for the sync index at most one chunk per record plus the first (an empty index has
/// one; a chunk is its start key, accumulator and last key, keys far below 1 KiB), with the
/// checksum.
fn max_len(records: u64) -> u64 {
    const PER_CHUNK: u64 = 4 * 1024;
    let fixed = (MAGIC.len() + 8 + Seen::WORDS * 8 + 16 + 32) as u64;
    fixed.saturating_add(records.saturating_add(1).saturating_mul(PER_CHUNK))
}

fn parse(bytes: &[u8], records: u64) -> Option<(SyncIndex, Seen)> {
    let body_len = bytes.len().checked_sub(32)?;
    let (body, sum) = bytes.split_at(body_len);
    if blake3::hash(body).as_bytes() != sum {
        return None;
    }
    let rest = body.strip_prefix(MAGIC.as_slice())?;
    let (count, mut r) = rest.split_at_checked(8)?;
    if u64::from_le_bytes(count.try_into().ok()?) != records {
        return None;
    }
    let sync = SyncIndex::decode(&mut r)?;
    let seen = Seen::decode(&mut r)?;
    // Every stored record has exactly one topic/time key.
    (r.is_empty() && sync.len() == records).then_some((sync, seen))
}

fn sync_dir(dir: &Path) -> Result<()> {
    // A directory is synced by syncing an open handle of it (Unix); elsewhere the rename
    // is as durable as the platform makes it.
    #[cfg(unix)]
    std::fs::File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::tests::ingest_workload;
    use crate::store::{keys, Store};

    /// The hash of a store's indexes, byte for byte (as a snapshot holds them).
    fn indexes(store: &Store) -> blake3::Hash {
        blake3::hash(&store.indexes_bytes())
    }

    /// Do the store's indexes describe its tree? The sync index gives the accumulator of
    /// every key and of ranges cut at every 97th key as the tree's own keys do, and the
    /// filter passes every record and slot key. (Two right indexes of one tree may differ
    /// byte for byte: chunks cut as keys arrived, bits of keys announced.)
    fn describe_tree(store: &Store) -> bool {
        use chorus_protocol::sync::{Bound, MemoryIndex, RangeIndex};
        let keys: Vec<_> = store
            .tree()
            .scan_prefix([keys::TOPIC])
            .map(|kv| <chorus_protocol::sync::Key>::try_from(&kv.unwrap().0[1..]).unwrap())
            .collect();
        let mem = MemoryIndex(keys.iter().copied().collect());
        let view = store.sync_view();
        let mut bounds: Vec<Vec<u8>> = keys.iter().step_by(97).map(|k| k.to_vec()).collect();
        bounds.insert(0, Vec::new());
        let ranges_agree = bounds.windows(2).all(|w| {
            let upper = Bound::Below(w[1].clone());
            view.accumulate(&w[0], &upper).unwrap() == mem.accumulate(&w[0], &upper).unwrap()
        });
        let all =
            view.accumulate(&[], &Bound::End).unwrap() == mem.accumulate(&[], &Bound::End).unwrap();
        let seen = [keys::RECORD, keys::SLOT].iter().all(|p| {
            store
                .tree()
                .scan_prefix([*p])
                .all(|kv| store.seen.maybe(&kv.unwrap().0))
        });
        view.len() == keys.len() as u64 && all && ranges_agree && seen
    }

    /// A store of a realistic workload, closed cleanly; its indexes.
    fn closed_store(dir: &Path) -> blake3::Hash {
        let store = Store::open(dir).unwrap();
        ingest_workload(&store, 11, 3_000);
        assert!(describe_tree(&store));
        let h = indexes(&store);
        store.close().unwrap();
        h
    }

    #[test]
    fn a_clean_close_leaves_the_indexes_and_the_next_open_takes_them() {
        let dir = tempfile::tempdir().unwrap();
        let before = closed_store(dir.path());
        assert!(dir.path().join(FILE).exists());
        let store = Store::open(dir.path()).unwrap();
        assert!(store.indexes_restored());
        // Taken: removed before anything is written, so a crash from now on rebuilds.
        assert!(!dir.path().join(FILE).exists());
        assert_eq!(indexes(&store), before);
        assert!(describe_tree(&store));
        drop(store);
        // No snapshot (no clean close since): rebuilt.
        let store = Store::open(dir.path()).unwrap();
        assert!(!store.indexes_restored());
        assert!(describe_tree(&store));
    }

    #[test]
    fn a_store_opened_without_its_snapshot_serves_while_it_rebuilds_the_indexes() {
        use chorus_protocol::sync::wire::{Request, Response};
        use chorus_protocol::sync::{reconcile, Bound, Params};
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        ingest_workload(&store, 21, 3_000);
        let stored: Vec<_> =
            crate::workload::generate(21, &crate::workload::Params::realistic(3_000))
                .iter()
                .map(|r| r.id())
                .step_by(50)
                .collect();
        let n = store.len().unwrap();
        drop(store);
        // No clean close: no snapshot. Opened in background mode, the store answers at once,
        // and takes writes while its indexes are rebuilt.
        let store = Store::open_rebuilding_above(dir.path(), 0).unwrap();
        assert!(!store.indexes_restored());
        assert_eq!(store.len().unwrap(), n);
        for id in &stored {
            assert!(store.contains(id).unwrap(), "{id:?} is stored");
            assert!(store.wire(id).unwrap().is_some());
        }
        ingest_workload(&store, 22, 1_000);
        store.wait_indexes();
        assert!(store.indexes_ready());
        assert!(describe_tree(&store));
        // While the sync index is not ready, reconciliation is answered `not_ready`, and
        // the asker is not penalised; fetches are answered.
        let everything = vec![(Vec::new(), Bound::End)];
        let ask =
            Request::Reconcile(reconcile::open(&store.sync_view(), &everything).unwrap()).encode();
        let fetch = Request::Fetch(vec![stored[0].0]).encode();
        let params = Params::default();
        use std::sync::atomic::Ordering;
        *store.sync.lock().unwrap() = super::SyncIndex::building();
        store.sync_ready.store(false, Ordering::Release);
        assert!(!store.sync_ready());
        let (answer, penalise) = crate::sync::serve::answer(&store, &ask, &params, false);
        assert!(!penalise);
        match Response::decode(&answer).unwrap() {
            Response::Error { code, .. } => assert_eq!(code, "not_ready"),
            other => panic!("answered {other:?}"),
        }
        let (answer, _) = crate::sync::serve::answer(&store, &fetch, &params, false);
        assert!(matches!(Response::decode(&answer).unwrap(), Response::Records(r) if r.len() == 1));
        // A close while the index is incomplete leaves no snapshot.
        store.close().unwrap();
        assert!(!dir.path().join(FILE).exists());
        // Built, it answers again.
        while !store
            .sync
            .lock()
            .unwrap()
            .build_step(&store.tree(), 100)
            .unwrap()
        {}
        store.sync_ready.store(true, Ordering::Release);
        let (answer, _) = crate::sync::serve::answer(&store, &ask, &params, false);
        assert!(matches!(
            Response::decode(&answer).unwrap(),
            Response::Reconcile(_)
        ));
    }

    #[test]
    fn a_settled_store_opens_from_its_snapshot_and_a_store_in_use_is_not_settled() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        ingest_workload(&store, 23, 1_000);
        let n = store.len().unwrap();
        store.close().unwrap();
        let other = store.clone();
        assert!(
            !store.settle().unwrap(),
            "another handle holds the database"
        );
        assert!(other.settle().unwrap());
        let store = Store::open(dir.path()).unwrap();
        assert!(
            store.indexes_restored(),
            "settling keeps the index snapshot"
        );
        assert_eq!(store.len().unwrap(), n);
    }

    #[test]
    fn an_empty_store_restarts_from_its_snapshot_too() {
        let dir = tempfile::tempdir().unwrap();
        Store::open(dir.path()).unwrap().close().unwrap();
        assert!(dir.path().join(FILE).exists());
        let store = Store::open(dir.path()).unwrap();
        assert!(store.indexes_restored());
        assert_eq!(store.len().unwrap(), 0);
    }

    #[test]
    fn a_write_after_the_close_voids_the_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        ingest_workload(&store, 12, 1_000);
        store.close().unwrap();
        assert!(dir.path().join(FILE).exists());
        ingest_workload(&store, 13, 500);
        assert!(!dir.path().join(FILE).exists());
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        assert!(!store.indexes_restored());
        assert!(describe_tree(&store));
    }

    #[test]
    fn a_damaged_or_stale_snapshot_is_refused_and_the_indexes_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        closed_store(dir.path());
        let good = std::fs::read(dir.path().join(FILE)).unwrap();
        let n = Store::open(dir.path()).unwrap().len().unwrap();
        // Every kind of damage: a flipped bit, a cut, the wrong record count (what a node
        // that knows no snapshot would leave after writing), nothing but a checksum.
        let mut flipped = good.clone();
        flipped[good.len() / 2] ^= 4;
        let cut = good[..good.len() - 100].to_vec();
        let mut stale = good.clone();
        stale[8..16].copy_from_slice(&(n + 1).to_le_bytes());
        let body_len = stale.len() - 32;
        let sum = blake3::hash(&stale[..body_len]);
        stale[body_len..].copy_from_slice(sum.as_bytes());
        let empty = blake3::hash(b"").as_bytes().to_vec();
        // A file larger than any snapshot of this store is refused before it is read.
        let mut huge = good.clone();
        huge.resize(usize::try_from(max_len(n)).unwrap() + 1, 0);
        for bad in [flipped, cut, stale, empty, Vec::new(), huge] {
            std::fs::write(dir.path().join(FILE), &bad).unwrap();
            let store = Store::open(dir.path()).unwrap();
            assert!(!store.indexes_restored());
            assert!(!dir.path().join(FILE).exists());
            assert!(describe_tree(&store));
        }
        assert!(parse(&good, n).is_some());
    }
}
