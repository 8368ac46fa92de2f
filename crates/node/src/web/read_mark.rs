//! How far the producer has read their inbox: the creation time of the newest item they
//! marked read, kept in `web-inbox.json` in the data dir so the marks outlive a restart of
//! the node. An item created after it is unread.
//!
//! One number rather than a set of ids: it stays small whatever the inbox holds. An item
//! that arrives late (by catch-up sync) with a creation time before the mark shows as
//! read, and it is listed by that time too, below newer items.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// The file's name in the data dir.
pub(super) const FILE: &str = "web-inbox.json";

/// Writes go one at a time: two marks at once must not race on the temporary file.
static WRITING: Mutex<()> = Mutex::new(());

#[derive(Serialize, Deserialize, Default)]
struct Marks {
    /// Items created at or before this time (ms) are read.
    read_up_to: u64,
}

/// Where the mark is kept, beside the dashboard's sessions (none for a dashboard kept in
/// memory only: nothing is marked read there).
pub(super) fn path(dir: Option<&Path>) -> Option<PathBuf> {
    dir.map(|d| d.join(FILE))
}

/// The mark (0, all unread, without a file or with an unreadable one).
pub(super) fn read(file: Option<&Path>) -> u64 {
    file.and_then(|f| std::fs::read(f).ok())
        .and_then(|b| serde_json::from_slice::<Marks>(&b).ok())
        .map(|m| m.read_up_to)
        .unwrap_or(0)
}

/// Moves the mark to `up_to` (never back: a page loaded earlier cannot unread what a later
/// one marked). Atomic: a temporary file, synced, renamed over the old one.
pub(super) fn mark(file: Option<&Path>, up_to: u64) -> std::io::Result<()> {
    let Some(file) = file else {
        return Ok(());
    };
    let _one = WRITING.lock().unwrap_or_else(|e| e.into_inner());
    let now = read(Some(file));
    if up_to <= now {
        return Ok(());
    }
    let bytes = serde_json::to_vec(&Marks { read_up_to: up_to }).map_err(std::io::Error::other)?;
    let tmp = file.with_extension("json.tmp");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mark_moves_forward_and_survives_a_bad_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = path(Some(dir.path())).unwrap();
        assert_eq!(read(Some(&file)), 0, "no file: all unread");
        mark(Some(&file), 500).unwrap();
        assert_eq!(read(Some(&file)), 500);
        mark(Some(&file), 200).unwrap();
        assert_eq!(read(Some(&file)), 500, "never back");
        assert!(!file.with_extension("json.tmp").exists());
        std::fs::write(&file, b"garbage").unwrap();
        assert_eq!(read(Some(&file)), 0);
        mark(Some(&file), 700).unwrap();
        assert_eq!(read(Some(&file)), 700, "a bad file is replaced");
        assert_eq!(read(None), 0);
        mark(None, 9).unwrap();
    }
}
