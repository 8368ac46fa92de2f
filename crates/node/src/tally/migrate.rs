//! Opening a store: one-off rewrites of what older nodes stored, done when a store opens.
//! They are a rebuild of the derived state under this version's rules, which is why the
//! public ways to open a store ([`Store::open`], [`Store::open_rebuilding_above`]) live here,
//! beside the rules, and not in `crate::store`.

use std::path::Path;

use crate::error::{Error, Result};
use crate::store::{keys, Store, BACKGROUND_ABOVE};

impl Store {
    /// Opens (or creates) the store in `dir`. Without a snapshot of its indexes, a store of
    /// more than [`BACKGROUND_ABOVE`] records rebuilds them in the background
    /// ([`Store::indexes_ready`]).
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        Self::open_rebuilding_above(dir, BACKGROUND_ABOVE).map_err(|e| {
            if e.is_corruption() && !matches!(e, Error::DamagedStore { .. }) {
                Error::DamagedStore {
                    path: dir.display().to_string(),
                    cause: e.to_string(),
                }
            } else {
                e
            }
        })
    }

    /// [`Store::open`], rebuilding the indexes in the background when the store holds more
    /// than `records` records (`0`: always; `u64::MAX`: never).
    pub fn open_rebuilding_above(dir: impl AsRef<Path>, records: u64) -> Result<Self> {
        Self::open_with(dir.as_ref(), records, &migrate_derived)
    }
}

/// Brings the derived state of a store written by an older version up to
/// [`keys::FORMAT_VERSION`], once per store (marked by [`keys::FORMAT`]). Derived state is
/// a function of the records, so the rewrite is a rebuild: every derived key is removed and
/// the derived state is computed again from the stored records under this version's rules
/// ([`super::recompute::derive`]), as the audit computes it. A record that breaks a
/// rule it did not break before (a pledge in another currency than its campaign's) stays
/// stored and counts for nothing. The marker is written once the rebuild is durable, so a
/// crash part-way starts it again at the next open. (Plain inserts, not a `sled::Batch`:
/// the first batch would switch on sled's global read lock for the life of the process.)
/// Returns whether it rebuilt anything.
pub(crate) fn migrate_derived(db: &sled::Db, tree: &sled::Tree) -> Result<bool> {
    let version = tree
        .get(keys::FORMAT)?
        .and_then(|v| v.first().copied())
        .unwrap_or(1);
    if version >= keys::FORMAT_VERSION {
        return Ok(false);
    }
    let start = std::time::Instant::now();
    for prefix in keys::DERIVED {
        for k in tree.scan_prefix([prefix]).keys() {
            tree.remove(k?)?;
        }
    }
    let (fresh, refused) = super::recompute::derive(tree)?;
    let mut written = 0u64;
    for (k, v) in fresh.into_entries() {
        if k.first().is_some_and(|p| keys::DERIVED.contains(p)) {
            tree.insert(k, v)?;
            written += 1;
        }
    }
    db.flush()?;
    tree.insert(keys::FORMAT, &[keys::FORMAT_VERSION])?;
    db.flush()?;
    tracing::info!(
        from = version,
        to = keys::FORMAT_VERSION,
        derived_keys = written,
        refused = refused.len(),
        ms = start.elapsed().as_millis() as u64,
        "derived state rebuilt under this version's rules"
    );
    Ok(true)
}
