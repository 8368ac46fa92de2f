//! Offline compaction: the store rewritten into a fresh sled database (`chorus compact`, the
//! node stopped).
//!
//! sled's log keeps old versions of pages until its segments are cleaned, and it cleans a
//! segment only when half of it is stale, so a store that grew by ingest takes several times
//! the bytes its keys and values need (BENCHMARKS.md: about 5,800 bytes per record on disk,
//! 2,100 once rewritten). A rewrite copies every tree, key order, in batches, into a new
//! database beside the store, flushes it, and swaps the two directories:
//!
//! 1. `store.compacting/` is made and marked as a compaction's copy, written and flushed,
//!    then marked complete;
//! 2. `store/` is marked and renamed `store.compacted-away/`; 3. `store.compacting/` is
//!    renamed `store/`; 4. the markers and `store.compacted-away/` are removed. Each marker is
//!    synced, and the parent directory after each rename.
//!
//! A crash anywhere leaves a state [`recover`] (run by every open) finishes or undoes: before
//! 2 the partial copy is removed; between 2 and 3 a complete copy is moved into place (an
//! incomplete one is removed and the old store moved back); after 3 the old store is removed.
//! Only directories carrying a compaction's marker are moved or removed (a user's own
//! `store.compacting/` is refused, never deleted). A lock file (`store.lock`) keeps a
//! compaction and a node's open of the same store from overlapping.
//! Nothing in the store changes meaning: the copy holds the same keys and values (intents
//! included), so the index snapshot, if the store has one, is carried over and still holds.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

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

/// Keys per batch written into the copy.
const BATCH: usize = 10_000;

fn sibling(dir: &Path, suffix: &str) -> Result<PathBuf> {
    let name = dir
        .file_name()
        .ok_or_else(|| Error::Config(format!("{} names no directory", dir.display())))?;
    let mut name = name.to_os_string();
    name.push(suffix);
    Ok(dir.with_file_name(name))
}

fn sync_parent(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    if let Some(p) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::File::open(p)?.sync_all()?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// The bytes of every file under `dir`.
pub fn disk_bytes(dir: &Path) -> Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() {
            disk_bytes(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}

/// Marks a directory as a copy made by a compaction (written before the copy starts).
const MADE: &str = "CHORUS-COMPACTION-COPY";
/// Marks the copy as complete (written after it is flushed).
const COMPLETE: &str = "CHORUS-COMPACTION-COMPLETE";
/// Marks the old store as set aside by a compaction (written just before it is renamed).
const AWAY: &str = "CHORUS-COMPACTION-OLD";

fn mark(path: &Path) -> Result<()> {
    std::fs::File::create(path)?.sync_all()?;
    sync_parent(path)
}

fn unmark(dir: &Path) -> Result<()> {
    for m in [MADE, COMPLETE, AWAY] {
        match std::fs::remove_file(dir.join(m)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// The lock that keeps a compaction and an open of the same store apart (`STORE.lock`
/// beside the store; held by [`compact`] throughout and by an open until sled holds its own
/// lock). Released when the file is dropped.
pub(crate) fn lock(dir: &Path) -> Result<std::fs::File> {
    let path = sibling(dir, ".lock")?;
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

/// Finishes or undoes a compaction a crash interrupted (see the module doc); nothing to do
/// in the common case. Call under [`lock`]. Only directories a compaction marked as its own
/// are moved or removed.
pub(crate) fn recover(dir: &Path) -> Result<()> {
    let copy = sibling(dir, ".compacting")?;
    let old = sibling(dir, ".compacted-away")?;
    let copy_ours = copy.join(MADE).exists();
    let old_ours = old.join(AWAY).exists();
    if !dir.exists() && old_ours {
        if copy_ours && copy.join(COMPLETE).exists() {
            tracing::warn!("finishing an interrupted compaction of {}", dir.display());
            std::fs::rename(&copy, dir)?;
        } else {
            tracing::warn!("undoing an interrupted compaction of {}", dir.display());
            std::fs::rename(&old, dir)?;
        }
        sync_parent(dir)?;
    }
    if !dir.exists() {
        return Ok(());
    }
    // Markers carried into place, or left by a crash just before the store was set aside.
    unmark(dir)?;
    if copy.join(MADE).exists() {
        std::fs::remove_dir_all(&copy)?;
    }
    if old.join(AWAY).exists() {
        std::fs::remove_dir_all(&old)?;
    }
    Ok(())
}

/// Rewrites the store in `dir` compactly (it must not be open: a running node holds its
/// lock). `progress` is told the keys copied so far, every batch.
pub fn compact(dir: &Path, progress: impl FnMut(u64)) -> Result<Compacted> {
    let _lock = lock(dir)?;
    recover(dir)?;
    if !dir.join("conf").exists() {
        return Err(Error::Config(format!("no store in {}", dir.display())));
    }
    let before = disk_bytes(dir)?;
    let copy = sibling(dir, ".compacting")?;
    let old = sibling(dir, ".compacted-away")?;
    if copy.exists() {
        return Err(Error::Config(format!(
            "{} exists and is not a compaction's: move it away first",
            copy.display()
        )));
    }
    let src = super::open_db(dir).map_err(|e| {
        if super::is_lock_error(&e) {
            Error::Config(format!(
                "the store in {} is in use: stop the node first",
                dir.display()
            ))
        } else {
            e.into()
        }
    })?;
    std::fs::create_dir_all(&copy)?;
    mark(&copy.join(MADE))?;
    let copied = copy_into(&src, dir, &copy, progress);
    let keys = match copied {
        Ok(k) => k,
        Err(e) => {
            // A full disk, say: nothing changed but the copy, which goes.
            let _ = std::fs::remove_dir_all(&copy);
            return Err(e);
        }
    };
    drop(src);
    mark(&dir.join(AWAY))?;
    std::fs::rename(dir, &old)?;
    sync_parent(dir)?;
    std::fs::rename(&copy, dir)?;
    sync_parent(dir)?;
    unmark(dir)?;
    std::fs::remove_dir_all(&old)?;
    Ok(Compacted {
        before,
        after: disk_bytes(dir)?,
        keys,
    })
}

/// Copies every tree of `src` into a new database in `copy`, then the index snapshot of
/// `dir` if it has one; marks the copy complete. Returns the keys copied.
fn copy_into(
    src: &sled::Db,
    dir: &Path,
    copy: &Path,
    mut progress: impl FnMut(u64),
) -> Result<u64> {
    let dst = super::open_db(copy)?;
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
    dst.flush()?;
    drop(dst);
    // Opened once more, sled writes its page-table snapshot: the next open need not replay
    // the whole copy's log (Store::settle).
    drop(super::open_db(copy)?);
    let snapshot = dir.join(super::snapshot::FILE);
    if snapshot.exists() {
        let to = copy.join(super::snapshot::FILE);
        std::fs::copy(&snapshot, &to)?;
        std::fs::File::open(&to)?.sync_all()?;
    }
    mark(&copy.join(COMPLETE))?;
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::tests::ingest_workload;
    use crate::store::Store;

    type Tree = (Vec<u8>, Vec<(Vec<u8>, Vec<u8>)>);

    /// Every key and value of every tree.
    fn contents(dir: &Path) -> Vec<Tree> {
        let db = crate::store::open_db(dir).unwrap();
        let mut out: Vec<_> = db
            .tree_names()
            .into_iter()
            .map(|name| {
                let t = db.open_tree(&name).unwrap();
                let kvs = t
                    .iter()
                    .map(|kv| {
                        let (k, v) = kv.unwrap();
                        (k.to_vec(), v.to_vec())
                    })
                    .collect();
                (name.to_vec(), kvs)
            })
            .collect();
        out.sort();
        out
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
        assert!(!root.path().join("store.compacting").exists());
        assert!(!root.path().join("store.compacted-away").exists());
        for m in [MADE, COMPLETE, AWAY] {
            assert!(!dir.join(m).exists(), "{m} left in the store");
        }
        let store = Store::open(&dir).unwrap();
        assert!(store.indexes_restored(), "the snapshot was carried over");
        assert_eq!(store.len().unwrap(), n);
        // In use: refused, nothing touched.
        let err = compact(&dir, |_| {}).unwrap_err();
        assert!(err.to_string().contains("stop the node"), "{err}");
        assert_eq!(store.len().unwrap(), n);
    }

    #[test]
    fn an_interrupted_compaction_is_finished_or_undone_by_the_next_open() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("store");
        let store = Store::open(&dir).unwrap();
        ingest_workload(&store, 32, 500);
        let n = store.len().unwrap();
        store.close().unwrap();
        drop(store);
        let copy = root.path().join("store.compacting");
        let old = root.path().join("store.compacted-away");
        let copy_tree = |from: &Path, to: &Path| {
            std::fs::create_dir_all(to).unwrap();
            for e in std::fs::read_dir(from).unwrap() {
                let e = e.unwrap();
                if e.metadata().unwrap().is_file() {
                    std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
                }
            }
            std::fs::write(to.join(MADE), b"").unwrap();
        };
        let set_aside = || {
            std::fs::write(dir.join(AWAY), b"").unwrap();
            std::fs::rename(&dir, &old).unwrap();
        };
        // A directory of that name that no compaction made is neither removed nor
        // overwritten.
        std::fs::create_dir_all(&copy).unwrap();
        std::fs::write(copy.join("mine"), b"a user's file").unwrap();
        assert_eq!(Store::open(&dir).unwrap().len().unwrap(), n);
        assert!(copy.join("mine").exists());
        let err = compact(&dir, |_| {}).unwrap_err();
        assert!(err.to_string().contains("not a compaction's"), "{err}");
        std::fs::remove_dir_all(&copy).unwrap();
        // Crashed while copying: the partial copy is removed.
        std::fs::create_dir_all(&copy).unwrap();
        std::fs::write(copy.join(MADE), b"").unwrap();
        std::fs::write(copy.join("db"), b"partial").unwrap();
        assert_eq!(Store::open(&dir).unwrap().len().unwrap(), n);
        assert!(!copy.exists());
        // Crashed just before the store was set aside: its marker goes.
        std::fs::write(dir.join(AWAY), b"").unwrap();
        assert_eq!(Store::open(&dir).unwrap().len().unwrap(), n);
        assert!(!dir.join(AWAY).exists());
        // Crashed between the renames with a complete copy: it is moved into place.
        copy_tree(&dir, &copy);
        std::fs::write(copy.join(COMPLETE), b"").unwrap();
        set_aside();
        assert_eq!(Store::open(&dir).unwrap().len().unwrap(), n);
        assert!(!old.exists() && !copy.exists());
        assert!(!dir.join(MADE).exists() && !dir.join(COMPLETE).exists());
        // The same with an incomplete copy: the old store is moved back.
        copy_tree(&dir, &copy);
        std::fs::remove_file(copy.join("conf")).unwrap();
        set_aside();
        assert_eq!(Store::open(&dir).unwrap().len().unwrap(), n);
        assert!(!old.exists() && !copy.exists());
        assert!(!dir.join(AWAY).exists());
        // While a compaction holds the lock, the store does not open.
        let held = lock(&dir).unwrap();
        let err = Store::open(&dir).err().expect("refused");
        assert!(err.to_string().contains("being compacted"), "{err}");
        drop(held);
        assert_eq!(Store::open(&dir).unwrap().len().unwrap(), n);
    }
}
