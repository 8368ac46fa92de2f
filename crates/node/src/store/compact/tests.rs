use super::*;
use crate::ingest::tests::ingest_workload;
use crate::ingest::{Ingest, IngestConfig};

type Tree = (Vec<u8>, Vec<(Vec<u8>, Vec<u8>)>);
type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// Every key and value of every tree of the store's active generation.
fn contents(dir: &Path) -> Vec<Tree> {
    let db = open_db(&active_dir(dir).unwrap()).unwrap();
    let mut out: Vec<_> = db
        .tree_names()
        .into_iter()
        .map(|name| {
            let t = db.open_tree(&name).unwrap();
            (name.to_vec(), entries(&t))
        })
        .collect();
    out.sort();
    out
}

fn entries(t: &sled::Tree) -> Entries {
    t.iter()
        .map(|kv| {
            let (k, v) = kv.unwrap();
            (k.to_vec(), v.to_vec())
        })
        .collect()
}

fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[test]
fn a_compacted_store_holds_the_same_keys_in_fewer_bytes_and_keeps_its_snapshot() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("store");
    let store = Store::open(&dir).unwrap();
    ingest_workload(&store, 31, 4_000);
    let n = store.len().unwrap();
    store.close().unwrap();
    drop(store);
    let before = contents(&dir);
    let mut told = Vec::new();
    let c = compact(&dir, |k| told.push(k)).unwrap();
    assert_eq!(contents(&dir), before);
    assert!(c.after < c.before, "{c:?}");
    assert!(!told.is_empty() && told.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(
        c.keys,
        before.iter().map(|(_, kvs)| kvs.len() as u64).sum::<u64>()
    );
    // Only the new generation is left, named by the pointer with what it holds.
    assert_eq!(listing(&dir), ["GENERATION", "g1"]);
    let active = generation::active(&dir).unwrap();
    assert_eq!(active.compacted.map(|(r, _)| r), Some(n));
    let store = Store::open(&dir).unwrap();
    assert!(store.indexes_restored(), "the snapshot was carried over");
    assert_eq!(store.len().unwrap(), n);
    // In use: refused, nothing touched.
    let err = compact(&dir, |_| {}).unwrap_err();
    assert!(err.to_string().contains("stop the node"), "{err}");
    assert_eq!(store.len().unwrap(), n);
    assert_eq!(listing(&dir), ["GENERATION", "g1"]);
    // Compacted again, offline: the next generation replaces it.
    store.close().unwrap();
    drop(store);
    compact(&dir, |_| {}).unwrap();
    assert_eq!(contents(&dir), before);
    assert_eq!(listing(&dir), ["GENERATION", "g2"]);
}

#[test]
fn what_a_crash_leaves_of_a_compaction_is_swept_by_the_next_open() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("store");
    let store = Store::open(&dir).unwrap();
    ingest_workload(&store, 32, 500);
    let n = store.len().unwrap();
    store.close().unwrap();
    drop(store);
    let before = contents(&dir);
    // A copy cut short (no pointer names it): removed, the store as it was.
    std::fs::create_dir_all(dir.join("g1")).unwrap();
    std::fs::write(dir.join("g1/db"), b"partial").unwrap();
    assert_eq!(Store::open(&dir).unwrap().len().unwrap(), n);
    assert!(!dir.join("g1").exists());
    // A crash after the switch, before the old generation was removed: its files go.
    compact(&dir, |_| {}).unwrap();
    for f in ["conf", "db", "snap.0000000000000000"] {
        std::fs::write(dir.join(f), b"old generation").unwrap();
    }
    let store = Store::open(&dir).unwrap();
    assert_eq!(store.len().unwrap(), n);
    assert_eq!(listing(&dir), ["GENERATION", "g1"]);
    drop(store);
    assert_eq!(contents(&dir), before);
    // While a compaction holds the lock, the store does not open.
    let held = lock(&dir).unwrap();
    let err = Store::open(&dir).err().expect("refused");
    assert!(err.to_string().contains("being compacted"), "{err}");
    drop(held);
    assert_eq!(Store::open(&dir).unwrap().len().unwrap(), n);
}

/// Ingests `wires` in `parts` pieces through a running pipeline, one piece per call of the
/// returned closure (false once all are in).
fn portions(wires: Vec<Vec<u8>>, parts: usize) -> Vec<Vec<Vec<u8>>> {
    let per = wires.len().div_ceil(parts);
    wires.chunks(per).map(|c| c.to_vec()).collect()
}

#[test]
fn an_online_compaction_under_writes_ends_with_the_store_it_would_have_been() {
    let recs = crate::workload::generate(43, &crate::workload::Params::realistic(4_400));
    let wires: Vec<Vec<u8>> = recs.iter().map(|r| r.wire().to_vec()).collect();
    let (first, rest) = wires.split_at(3_000);
    let (during, after) = rest.split_at(1_200);

    // The same writes, in the same pieces, into a store never compacted.
    let reference = Store::temporary().unwrap();
    {
        let (ing, threads) = Ingest::start(reference.clone(), IngestConfig::default()).unwrap();
        ing.ingest_blocking(first.to_vec()).unwrap();
        for p in portions(during.to_vec(), 12) {
            ing.ingest_blocking(p).unwrap();
        }
        ing.ingest_blocking(after.to_vec()).unwrap();
        drop(ing);
        threads.join();
    }

    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("store");
    let store = Store::open(&dir).unwrap();
    let (ing, threads) = Ingest::start(store.clone(), IngestConfig::default()).unwrap();
    ing.ingest_blocking(first.to_vec()).unwrap();
    // Between the copy's batches, more records are written: keys behind the copy's cursor
    // and ahead of it.
    let mut pending = portions(during.to_vec(), 12).into_iter();
    let mut batches = 0;
    let c = store
        .compact_online_with(&AtomicBool::new(false), &mut |_| {
            batches += 1;
            if let Some(p) = pending.next() {
                ing.ingest_blocking(p).unwrap();
            }
            true
        })
        .unwrap()
        .expect("not stopped");
    assert!(
        batches >= 12,
        "{batches} batches: the writes did not all land during the copy"
    );
    assert!(pending.next().is_none());
    assert!(c.after < c.before, "{c:?}");
    assert_eq!(listing(&dir), ["GENERATION", "g1"]);
    // Writes after the switch go to the new generation.
    ing.ingest_blocking(after.to_vec()).unwrap();
    drop(ing);
    threads.join();
    assert_eq!(entries(&store.tree()), entries(&reference.tree()));
    assert_eq!(store.pending_intents(), 0);
    let n = store.len().unwrap();
    assert_eq!(n, reference.len().unwrap());
    store.close().unwrap();
    drop(store);

    // Reopened: the same store, from its snapshot, in the new generation.
    let store = Store::open(&dir).unwrap();
    assert!(store.indexes_restored());
    assert_eq!(store.len().unwrap(), n);
    assert_eq!(entries(&store.tree()), entries(&reference.tree()));
    assert_eq!(
        store.derived_snapshot().unwrap(),
        reference.derived_snapshot().unwrap()
    );
}

#[test]
fn a_stopped_online_compaction_leaves_the_store_as_it_was() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("store");
    let store = Store::open(&dir).unwrap();
    ingest_workload(&store, 44, 2_000);
    let before = entries(&store.tree());
    let stop = AtomicBool::new(false);
    let done = store
        .compact_online_with(&stop, &mut |_| {
            stop.store(true, Ordering::Release);
            true
        })
        .unwrap();
    assert!(done.is_none());
    assert!(!dir.join("g1").exists());
    // Abandoned by the caller: the same.
    let done = store
        .compact_online_with(&AtomicBool::new(false), &mut |_| false)
        .unwrap();
    assert!(done.is_none());
    assert!(!dir.join("g1").exists() && !dir.join(generation::POINTER).exists());
    assert_eq!(entries(&store.tree()), before);
    // Nothing is mirrored any more, and the store goes on and can be compacted later.
    ingest_workload(&store, 45, 300);
    let c = store.compact_online(&AtomicBool::new(false)).unwrap();
    assert!(c.is_some());
    let n = store.len().unwrap();
    store.close().unwrap();
    drop(store);
    assert_eq!(Store::open(&dir).unwrap().len().unwrap(), n);
    // A temporary store is not compacted.
    let err = Store::temporary()
        .unwrap()
        .compact_online(&AtomicBool::new(false))
        .unwrap_err();
    assert!(err.to_string().contains("temporary"), "{err}");
}

#[test]
fn the_policy_compacts_a_store_grown_past_its_ratio() {
    let p = Policy {
        ratio: 2.0,
        min_bytes: 1_000,
        every: Duration::from_secs(1),
    };
    // Before any compaction, against 2,000 bytes per record.
    assert!(!p.due(10, 39_000, None));
    assert!(p.due(10, 41_000, None));
    // Never below the minimum.
    assert!(!p.due(0, 999, None));
    // After one, against what it left.
    assert!(!p.due(100, 59_000, Some((50, 15_000))));
    assert!(p.due(100, 61_000, Some((50, 15_000))));
}

#[test]
fn the_policy_waits_for_room_for_the_copy_on_the_disk() {
    let p = Policy::default();
    let mib = 1024 * 1024;
    // A million records at 2,000 bytes each, 1.5 times over, and 64 MiB: about 3.06 GB.
    let need = p.copy_bytes(1_000_000, None);
    assert_eq!(need, 3_000_000_000 + 64 * mib);
    assert!(!p.has_room(Some(need - 1), 1_000_000, None));
    assert!(p.has_room(Some(need), 1_000_000, None));
    // After a compaction that left 1,600 bytes per record, less is needed.
    assert!(p.has_room(Some(need - 1), 1_000_000, Some((1_000, 1_600_000))));
    // A disk whose free space cannot be read does not stop it.
    assert!(p.has_room(None, 1_000_000, None));
}

#[test]
fn a_node_store_compacts_itself_in_the_background_when_due() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("store");
    let policy = Policy {
        ratio: 1.01,
        min_bytes: 0,
        every: Duration::from_millis(50),
    };
    let store = Store::open(&dir).unwrap();
    ingest_workload(&store, 46, 1_000);
    let store = store.with_compaction(policy).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !dir.join(generation::POINTER).exists() {
        assert!(Instant::now() < deadline, "no compaction within a minute");
        std::thread::sleep(Duration::from_millis(20));
    }
    let n = store.len().unwrap();
    store.close().unwrap();
    // Closed: the compactor is stopped and holds nothing, so the store settles.
    assert!(store.settle().unwrap());
    assert_eq!(Store::open(&dir).unwrap().len().unwrap(), n);
}
