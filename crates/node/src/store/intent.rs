//! Redo intents: how a write set applied key by key stays crash-atomic.
//!
//! A `sled::Batch` is atomic, but while sled applies one, every read in the process waits
//! (sled's global concurrency control, switched on for good by the first batch): the ingest
//! pipeline's lookups stalled behind each chunk's batch, and the committing thread paid for
//! the batch's bookkeeping. So [`crate::store::Store`] applies a write set with plain inserts and
//! removals, and makes it atomic the way databases make page writes atomic, with a redo log
//! kept in sled itself (in its own tree, `chorus/v1/intents`):
//!
//! 1. **intent** — the whole write set, encoded, in parts of at most [`PART_BYTES`] under
//!    the keys `seq(8, BE) part(4, BE)`: parts `1..n` first, then part 0, which carries `n`.
//!    Part 0 present means the intent is whole.
//! 2. **apply** — every write of the set, in key order within five passes: records (`t`),
//!    the id index (`r`), the other indexes and the journal, slots and waiting records, and
//!    last the aggregates (tallies, ratings, group tallies, the count). A reader that finds
//!    an index entry finds its record, and one that sees a new tally sees the slots under
//!    it. (Chunks are atomic for crashes, not for concurrent readers: a reader may see part
//!    of a chunk being written, as it may see one chunk and not the next.)
//! 3. **retire** — once a flush has made the writes durable, the intent is removed (part 0
//!    first), in sequence order.
//!
//! sled recovers a prefix of its log (the same property its own batches rely on), so after
//! a crash any write of step 2 that survived comes with its whole intent. On open,
//! [`replay`] re-applies every whole intent in sequence order before anything reads the
//! tree: re-applying a write is harmless, and applying the sets in order ends with what the
//! last one left. An intent without part 0 needs nothing (step 2 had not begun, or its
//! writes were durable and it was being retired) and is dropped. Retiring in order keeps the invariant replay needs: no
//! intent outlives one written after it.
//!
//! Intent encoding (inside parts, concatenated): `0x01`, the number of writes (u32 BE), then
//! per write its key (u32 BE length, bytes), a flag (1 put, 0 remove) and for a put the
//! value (u32 BE length, bytes). Part 0 is the number of parts (u32 BE) and then its slice.

use std::collections::BTreeMap;

use super::codec::{Reader, Writer};
use super::keys;
use crate::error::{Error, Result};

/// Keys and values to write (`None` removes).
pub(crate) type Writes = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// Largest part: sled writes a node bigger than a quarter of its 512 KiB log segments as a
/// separate blob file, and a leaf holds up to 16 parts.
pub(crate) const PART_BYTES: usize = 6 * 1024;

/// The name of the tree that holds intents.
pub(crate) const TREE: &str = "chorus/v1/intents";

fn part_key(seq: u64, part: u32) -> [u8; 12] {
    let mut k = [0u8; 12];
    k[..8].copy_from_slice(&seq.to_be_bytes());
    k[8..].copy_from_slice(&part.to_be_bytes());
    k
}

fn parse_key(k: &[u8]) -> Result<(u64, u32)> {
    let (Some(s), Some(p)) = (k.get(..8), k.get(8..12)) else {
        return Err(Error::Corrupt("intent key too short".into()));
    };
    if k.len() != 12 {
        return Err(Error::Corrupt("intent key too long".into()));
    }
    let seq = u64::from_be_bytes(s.try_into().map_err(|_| Error::Corrupt("intent".into()))?);
    let part = u32::from_be_bytes(p.try_into().map_err(|_| Error::Corrupt("intent".into()))?);
    Ok((seq, part))
}

/// The encoded write set.
pub(crate) fn encode(writes: &Writes) -> Vec<u8> {
    let size: usize = writes
        .iter()
        .map(|(k, v)| 9 + k.len() + v.as_ref().map_or(0, |v| v.len()))
        .sum();
    let mut w = Writer::new(5 + size);
    w.u32(u32::try_from(writes.len()).unwrap_or(u32::MAX));
    for (k, v) in writes {
        w.bytes(k);
        match v {
            Some(v) => w.u8(1).bytes(v),
            None => w.u8(0),
        };
    }
    w.finish()
}

/// The write set of an encoded intent; anything malformed (keys out of order too) is an
/// error.
pub(crate) fn decode(bytes: &[u8]) -> Result<Writes> {
    let mut r = Reader::new(bytes, "intent")?;
    let n = r.u32()? as usize;
    // Every write takes at least 5 bytes: a count beyond that is corrupt, not a reason to
    // reserve memory.
    if n > bytes.len() / 5 {
        return Err(Error::Corrupt("intent: count exceeds its bytes".into()));
    }
    let mut out = Writes::new();
    for _ in 0..n {
        let k = r.bytes()?.to_vec();
        if out.last_key_value().is_some_and(|(last, _)| *last >= k) {
            return Err(Error::Corrupt("intent: keys out of order".into()));
        }
        let v = match r.u8()? {
            0 => None,
            1 => Some(r.bytes()?.to_vec()),
            f => return Err(Error::Corrupt(format!("intent: unknown flag {f}"))),
        };
        out.insert(k, v);
    }
    r.end()?;
    Ok(out)
}

/// The order in which a write set is applied: what others point at before what points at
/// it, and aggregates last (see the module docs).
fn pass(key: &[u8]) -> u8 {
    match key.first() {
        Some(&keys::TOPIC) => 0,
        Some(&keys::RECORD) => 1,
        Some(&keys::AUTHOR)
        | Some(&keys::TARGET)
        | Some(&keys::PRODUCT)
        | Some(&keys::GROUP_PETITION)
        | Some(&keys::JOURNAL) => 2,
        Some(&keys::SLOT) | Some(&keys::WAITING) => 3,
        _ => 4,
    }
}

/// Number of passes of [`apply`].
const PASSES: u8 = 5;

/// Applies a write set to `tree`, key by key (see the module docs for the order).
pub(crate) fn apply<'a>(
    tree: &sled::Tree,
    writes: impl Iterator<Item = (&'a Vec<u8>, &'a Option<Vec<u8>>)> + Clone,
) -> Result<()> {
    for p in 0..PASSES {
        for (k, v) in writes.clone().filter(|(k, _)| pass(k) == p) {
            match v {
                Some(v) => {
                    tree.insert(k.as_slice(), v.as_slice())?;
                }
                None => {
                    tree.remove(k.as_slice())?;
                }
            }
        }
    }
    Ok(())
}

/// The intents of one store.
pub(crate) struct Intents {
    tree: sled::Tree,
    /// The next sequence number.
    next: std::sync::atomic::AtomicU64,
    /// Intents whose writes are applied, oldest first, as (seq, parts): retired after the
    /// next flush.
    written: std::sync::Mutex<Vec<(u64, u32)>>,
    /// Did opening replay any intent (a crash interrupted or followed a write)?
    replayed: bool,
}

impl Intents {
    /// The intents tree of `db`, after replaying into `main` whatever a crash left.
    pub(crate) fn open(db: &sled::Db, main: &sled::Tree) -> Result<Intents> {
        let tree = db.open_tree(TREE)?;
        let last = replay(db, &tree, main)?;
        Ok(Intents {
            tree,
            next: std::sync::atomic::AtomicU64::new(last.map_or(0, |s| s + 1)),
            written: std::sync::Mutex::new(Vec::new()),
            replayed: last.is_some(),
        })
    }

    /// Did opening replay any intent?
    pub(crate) fn replayed(&self) -> bool {
        self.replayed
    }

    /// Writes the intent of `writes` (step 1); returns its sequence number and part count.
    /// The caller serialises writers: sequence order must be the order of application.
    pub(crate) fn begin(&self, writes: &Writes) -> Result<(u64, u32)> {
        let seq = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let bytes = encode(writes);
        let slices: Vec<&[u8]> = bytes.chunks(PART_BYTES).collect();
        let parts = u32::try_from(slices.len())
            .map_err(|_| Error::Corrupt("intent: too many parts".into()))?;
        for (i, s) in slices.iter().enumerate().skip(1) {
            self.tree.insert(part_key(seq, i as u32), *s)?;
        }
        let mut first = Vec::with_capacity(4 + PART_BYTES);
        first.extend_from_slice(&parts.to_be_bytes());
        first.extend_from_slice(slices.first().copied().unwrap_or_default());
        self.tree.insert(part_key(seq, 0), first)?;
        Ok((seq, parts))
    }

    /// Notes that the writes of an intent are applied (step 2 done).
    pub(crate) fn applied(&self, intent: (u64, u32)) {
        self.written
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(intent);
    }

    /// The applied intents so far, to retire once a flush has covered them.
    pub(crate) fn take_applied(&self) -> Vec<(u64, u32)> {
        std::mem::take(&mut *self.written.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Puts intents back (a flush failed), ahead of any applied since.
    pub(crate) fn restore(&self, mut intents: Vec<(u64, u32)>) {
        let mut w = self.written.lock().unwrap_or_else(|e| e.into_inner());
        intents.append(&mut w);
        *w = intents;
    }

    /// Removes intents whose writes are durable (step 3), oldest first, part 0 first.
    pub(crate) fn retire(&self, intents: &[(u64, u32)]) -> Result<()> {
        for &(seq, parts) in intents {
            for p in 0..parts {
                self.tree.remove(part_key(seq, p))?;
            }
        }
        Ok(())
    }

    /// Intents still in the tree (tests).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.tree.len()
    }
}

/// Re-applies every whole intent to `main` in sequence order, makes that durable, then
/// removes all intents; returns the highest sequence number seen.
fn replay(db: &sled::Db, intents: &sled::Tree, main: &sled::Tree) -> Result<Option<u64>> {
    // seq -> parts present
    let mut found: BTreeMap<u64, BTreeMap<u32, sled::IVec>> = BTreeMap::new();
    for kv in intents.iter() {
        let (k, v) = kv?;
        let (seq, part) = parse_key(&k)?;
        found.entry(seq).or_default().insert(part, v);
    }
    let last = found.keys().next_back().copied();
    let mut replayed = 0usize;
    for (seq, parts) in &found {
        let Some(first) = parts.get(&0) else {
            continue;
        };
        let (Some(n), Some(head)) = (first.get(..4), first.get(4..)) else {
            return Err(Error::Corrupt(format!("intent {seq}: part 0 too short")));
        };
        let n = u32::from_be_bytes(n.try_into().map_err(|_| Error::Corrupt("intent".into()))?);
        let mut bytes = head.to_vec();
        for p in 1..n {
            let part = parts
                .get(&p)
                .ok_or_else(|| Error::Corrupt(format!("intent {seq}: part {p} of {n} missing")))?;
            bytes.extend_from_slice(part);
        }
        let writes = decode(&bytes)?;
        apply(main, writes.iter())?;
        replayed += 1;
    }
    if found.is_empty() {
        return Ok(last);
    }
    db.flush()?;
    for (seq, parts) in &found {
        // Part 0 first, as when retiring.
        for p in parts.keys() {
            intents.remove(part_key(*seq, *p))?;
        }
    }
    db.flush()?;
    if replayed > 0 {
        tracing::info!(replayed, "finished write sets interrupted by a crash");
    }
    Ok(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Writes {
        let mut w = Writes::new();
        w.insert(b"t\x01a".to_vec(), Some(vec![7; 20_000]));
        w.insert(b"r\x01".to_vec(), Some(b"loc".to_vec()));
        w.insert(b"s\x02".to_vec(), None);
        w.insert(Vec::new(), Some(Vec::new()));
        w
    }

    #[test]
    fn encoding_round_trips_and_rejects_every_truncation_and_extra_byte() {
        let w = sample();
        let b = encode(&w);
        assert_eq!(decode(&b).unwrap(), w);
        for n in 0..b.len() {
            assert!(decode(&b[..n]).is_err(), "{n} bytes decoded");
        }
        let mut long = b.clone();
        long.push(0);
        assert!(decode(&long).is_err());
        let mut bad_flag = encode(&BTreeMap::from([(b"k".to_vec(), None)]));
        let last = bad_flag.len() - 1;
        bad_flag[last] = 2;
        assert!(decode(&bad_flag).is_err());
        // Keys out of order (or repeated) are corrupt.
        let mut w2 = Writer::new(16);
        w2.u32(2).bytes(b"b").u8(0).bytes(b"a").u8(0);
        assert!(decode(&w2.finish()).is_err());
        // A huge count with few bytes is refused before anything is reserved.
        let mut huge = vec![super::super::codec::COMPACT];
        huge.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(decode(&huge).is_err());
    }

    #[test]
    fn apply_puts_records_first_and_aggregates_last() {
        let order: Vec<u8> = [b"s".as_slice(), b"r", b"a", b"t", b"T", b"m", b"w", b"G"]
            .iter()
            .map(|k| pass(k))
            .collect();
        assert_eq!(order, vec![3, 1, 2, 0, 4, 4, 3, 4]);
        assert!(order.iter().all(|p| *p < PASSES));
    }

    fn open(dir: &std::path::Path) -> (sled::Db, sled::Tree) {
        // A database just dropped may hold its file lock a moment longer (sled's I/O
        // threads finish their last writes with their own handle), as `open_db` knows.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
        let db = loop {
            match sled::Config::new().path(dir).open() {
                Err(e)
                    if super::super::is_lock_error(&e) && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                r => break r.unwrap(),
            }
        };
        let main = db.open_tree("main").unwrap();
        (db, main)
    }

    #[test]
    fn a_whole_intent_is_replayed_a_partial_one_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let w = sample();
        {
            let (db, main) = open(dir.path());
            let i = Intents::open(&db, &main).unwrap();
            main.insert(b"s\x02", b"old".to_vec()).unwrap();
            // A whole intent whose writes never happened (the crash came first) ...
            let (seq, parts) = i.begin(&w).unwrap();
            assert!(parts > 3, "the 20 kB value spans parts");
            // ... and the parts of a later one whose part 0 was never written.
            let later = encode(&BTreeMap::from([(b"x".to_vec(), Some(b"no".to_vec()))]));
            i.tree.insert(part_key(seq + 1, 1), later).unwrap();
            db.flush().unwrap();
        }
        let (db, main) = open(dir.path());
        let i = Intents::open(&db, &main).unwrap();
        for (k, v) in &w {
            assert_eq!(main.get(k).unwrap().map(|v| v.to_vec()), v.clone());
        }
        assert!(
            main.get(b"x").unwrap().is_none(),
            "a partial intent was applied"
        );
        assert_eq!(i.len(), 0, "replayed intents are removed");
        assert_eq!(i.next.load(std::sync::atomic::Ordering::Relaxed), 2);
    }

    #[test]
    fn intents_replay_in_order_and_retired_ones_do_not_come_back() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (db, main) = open(dir.path());
            let i = Intents::open(&db, &main).unwrap();
            for v in [b"1", b"2", b"3"] {
                let w = BTreeMap::from([(b"k".to_vec(), Some(v.to_vec()))]);
                let id = i.begin(&w).unwrap();
                apply(&main, w.iter()).unwrap();
                i.applied(id);
                if v == b"1" {
                    // Flushed and retired: only 2 and 3 are left to replay.
                    db.flush().unwrap();
                    i.retire(&i.take_applied()).unwrap();
                }
            }
            // The crash lost the last write but kept the intents (as sled's prefix can).
            main.insert(b"k", b"2".to_vec()).unwrap();
            db.flush().unwrap();
        }
        let (db, main) = open(dir.path());
        let i = Intents::open(&db, &main).unwrap();
        assert_eq!(main.get(b"k").unwrap().unwrap().as_ref(), b"3");
        assert_eq!(i.len(), 0);
    }

    #[test]
    fn a_corrupt_intent_is_an_error_on_open() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (db, _) = open(dir.path());
            let t = db.open_tree(TREE).unwrap();
            let mut first = 2u32.to_be_bytes().to_vec();
            first.extend_from_slice(&[1, 0, 0]);
            t.insert(part_key(0, 0), first).unwrap(); // part 1 of 2 missing
            db.flush().unwrap();
        }
        let (db, main) = open(dir.path());
        let e = Intents::open(&db, &main).err().unwrap();
        assert!(e.to_string().contains("part 1 of 2 missing"), "{e}");
    }

    /// Keys and value size of the write sets the SIGKILL test writes: about 2 MB per set,
    /// several of sled's 512 KiB log buffers, so a kill lands inside a set's writes.
    const KEYS: u32 = 2_000;
    const VALUE: usize = 1_000;

    fn set_value(set: u64) -> Vec<u8> {
        let mut v = vec![0xab; VALUE];
        v[..8].copy_from_slice(&set.to_be_bytes());
        v
    }

    /// The set every key holds, if they all hold the same one (`None`: no key yet).
    fn whole_set(main: &sled::Tree) -> Result<Option<u64>, String> {
        let mut sets = std::collections::BTreeSet::new();
        let mut n = 0;
        for kv in main.iter() {
            let (_, v) = kv.map_err(|e| e.to_string())?;
            let s: [u8; 8] = v[..8].try_into().map_err(|_| "short value".to_string())?;
            sets.insert(u64::from_be_bytes(s));
            n += 1;
        }
        match (n, sets.len()) {
            (0, _) => Ok(None),
            (n, 1) if n == KEYS as usize => Ok(sets.first().copied()),
            (n, _) => Err(format!("{n} keys holding sets {sets:?}: a torn write set")),
        }
    }

    /// Child of the test below: writes whole sets over the same keys, forever.
    fn sigkill_child(dir: &str) {
        use std::io::Write;
        let (db, main) = open(std::path::Path::new(dir));
        let i = Intents::open(&db, &main).unwrap();
        let mut set = whole_set(&main).unwrap().map_or(0, |s| s + 1);
        let mut out = std::io::stdout().lock();
        loop {
            let w: Writes = (0..KEYS)
                .map(|k| (k.to_be_bytes().to_vec(), Some(set_value(set))))
                .collect();
            let id = i.begin(&w).unwrap();
            apply(&main, w.iter()).unwrap();
            i.applied(id);
            db.flush().unwrap();
            i.retire(&i.take_applied()).unwrap();
            writeln!(out, "durable {set}").unwrap();
            out.flush().unwrap();
            set += 1;
        }
    }

    /// A process writing sets key by key is killed with SIGKILL at random moments; after
    /// reopening (which replays intents), every key holds the same set, at least the last
    /// one reported durable. (Without the replay, keys hold a mix of two sets.)
    #[test]
    fn write_sets_cut_by_sigkill_are_whole_after_reopen() {
        use rand::{Rng, SeedableRng};
        use std::io::BufRead;
        if let Ok(dir) = std::env::var("CHORUS_INTENT_CHILD") {
            sigkill_child(&dir);
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let seed: u64 = rand::rng().random();
        eprintln!("kill-timing seed {seed}");
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        for round in 0..4 {
            let mut child = std::process::Command::new(std::env::current_exe().unwrap())
                .args([
                    "store::intent::tests::write_sets_cut_by_sigkill_are_whole_after_reopen",
                    "--exact",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env("CHORUS_INTENT_CHILD", dir.path())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            let stdout = child.stdout.take().unwrap();
            let (tx, rx) = std::sync::mpsc::channel();
            let reader = std::thread::spawn(move || {
                for line in std::io::BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if let Some(s) = line.strip_prefix("durable ") {
                        let _ = tx.send(s.parse::<u64>().unwrap());
                    }
                }
            });
            // Once a set is durable, kill at a random moment of the sets that follow.
            let first = rx.recv_timeout(std::time::Duration::from_secs(120));
            std::thread::sleep(std::time::Duration::from_millis(rng.random_range(0..700)));
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            reader.join().unwrap();
            let reported = first
                .ok()
                .into_iter()
                .chain(rx.try_iter())
                .max()
                .unwrap_or_else(|| panic!("round {round}: no set became durable"));
            let (db, main) = open(dir.path());
            let i = Intents::open(&db, &main).unwrap();
            let whole = whole_set(&main).unwrap_or_else(|e| panic!("round {round}: {e}"));
            assert!(
                whole >= Some(reported),
                "round {round}: set {whole:?} after set {reported} was reported durable"
            );
            assert_eq!(i.len(), 0, "round {round}: intents left after replay");
        }
    }
}
