//! Where in the store's directory the live sled database is: its generations.
//!
//! A store directory (`DATA/store`) holds one sled database that is the store, its
//! *active generation*. A fresh store's database lies in the directory itself (generation
//! 0). A compaction, offline (`chorus compact`) or online ([`super::compact`]), writes a copy
//! into a subdirectory `g<N>` for the next N and, once the copy is complete and durable,
//! makes it the active one by replacing the small file `GENERATION` (the name of the active
//! subdirectory, then the records and bytes the copy held: written to a temporary file,
//! synced, renamed, the directory synced). That rename is the one moment the store changes
//! hands, so a crash leaves either generation whole and active. Everything in the directory
//! that is not the active generation is then removed ([`sweep`], also run by every open): a
//! copy a crash interrupted, or the generation a compaction replaced.
//!
//! No directory is renamed, so a database stays where sled opened it while a node runs.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The file naming the active generation.
pub(crate) const POINTER: &str = "GENERATION";

/// The active generation of a store directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Active {
    /// Its number (0: the database lies in the store directory itself).
    pub(crate) number: u64,
    /// The directory sled opens.
    pub(crate) path: PathBuf,
    /// Records and bytes on disk when a compaction wrote it (none for generation 0): how
    /// small this store can be, which tells when compacting it again is worth it.
    pub(crate) compacted: Option<(u64, u64)>,
}

fn subdir(n: u64) -> String {
    format!("g{n}")
}

/// Reads `GENERATION` (absent: generation 0).
pub(crate) fn active(dir: &Path) -> Result<Active> {
    let text = match std::fs::read_to_string(dir.join(POINTER)) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Active {
                number: 0,
                path: dir.to_path_buf(),
                compacted: None,
            })
        }
        Err(e) => return Err(e.into()),
    };
    let bad = || {
        Error::Corrupt(format!(
            "{} is damaged: restore the store from a backup, or move the store directory \
             away and let the node sync again from its peers",
            dir.join(POINTER).display()
        ))
    };
    let mut words = text.split_ascii_whitespace();
    let number: u64 = words
        .next()
        .and_then(|w| w.strip_prefix('g'))
        .and_then(|n| n.parse().ok())
        .filter(|n| *n > 0)
        .ok_or_else(bad)?;
    let compacted = match (words.next(), words.next()) {
        (Some(r), Some(b)) => Some((r.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?)),
        _ => None,
    };
    let path = dir.join(subdir(number));
    if !path.join("conf").exists() {
        return Err(bad());
    }
    Ok(Active {
        number,
        path,
        compacted,
    })
}

/// A fresh directory for the next generation after `active` (emptied if a crash left one).
pub(crate) fn prepare_next(dir: &Path, active: &Active) -> Result<(u64, PathBuf)> {
    let n = active.number + 1;
    let path = dir.join(subdir(n));
    if path.exists() {
        std::fs::remove_dir_all(&path)?;
    }
    std::fs::create_dir_all(&path)?;
    Ok((n, path))
}

/// Makes generation `n` (complete and durable) the active one, durably.
pub(crate) fn switch(dir: &Path, n: u64, records: u64, bytes: u64) -> Result<()> {
    let tmp = dir.join(format!("{POINTER}.tmp"));
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        writeln!(f, "{} {records} {bytes}", subdir(n))?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, dir.join(POINTER))?;
    sync_dir(dir)
}

/// Removes everything in `dir` that is not the active generation: copies a crash cut short,
/// generations a compaction replaced (for generation 0, the database files in `dir`
/// itself). With generation 0 active, only `g<N>` directories go.
pub(crate) fn sweep(dir: &Path) -> Result<()> {
    let active = active(dir)?;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let is_generation = name
            .strip_prefix('g')
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        let keep = if active.number == 0 {
            !is_generation
        } else {
            name == POINTER || entry.path() == active.path
        };
        if keep {
            continue;
        }
        tracing::debug!(path = %entry.path().display(), "removing an inactive generation");
        if entry.file_type()?.is_dir() {
            std::fs::remove_dir_all(entry.path())?;
        } else {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

/// Bytes of every file under `dir`.
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

/// Syncs a directory (after a rename or removal in it).
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    std::fs::File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pointer_names_the_active_generation_and_sweep_keeps_only_it() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path();
        // Generation 0: the database files in the directory itself.
        std::fs::write(dir.join("conf"), b"0").unwrap();
        std::fs::write(dir.join("db"), b"0").unwrap();
        let a = active(dir).unwrap();
        assert_eq!(
            (a.number, a.path.clone(), a.compacted),
            (0, dir.into(), None)
        );
        // A copy cut short by a crash goes; generation 0 stays.
        let (n, next) = prepare_next(dir, &a).unwrap();
        assert_eq!(n, 1);
        std::fs::write(next.join("db"), b"partial").unwrap();
        sweep(dir).unwrap();
        assert!(!next.exists() && dir.join("db").exists());
        // A complete copy made active: generation 0's files go, the copy stays.
        let (n, next) = prepare_next(dir, &a).unwrap();
        std::fs::write(next.join("conf"), b"1").unwrap();
        switch(dir, n, 10, 2_000).unwrap();
        let a = active(dir).unwrap();
        assert_eq!((a.number, a.compacted), (1, Some((10, 2_000))));
        sweep(dir).unwrap();
        let mut left: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, ["GENERATION", "g1"]);
        // The next one replaces it.
        let (n, next) = prepare_next(dir, &a).unwrap();
        assert_eq!(n, 2);
        std::fs::write(next.join("conf"), b"2").unwrap();
        switch(dir, n, 20, 3_000).unwrap();
        sweep(dir).unwrap();
        assert!(!dir.join("g1").exists() && dir.join("g2/conf").exists());
    }

    #[test]
    fn a_damaged_pointer_is_an_error_that_says_what_to_do() {
        let root = tempfile::tempdir().unwrap();
        for text in ["", "g", "gx 1 2", "g0", "g1 1 x", "g7"] {
            std::fs::write(root.path().join(POINTER), text).unwrap();
            let err = active(root.path()).unwrap_err().to_string();
            assert!(err.contains("backup"), "{text:?}: {err}");
        }
    }
}
