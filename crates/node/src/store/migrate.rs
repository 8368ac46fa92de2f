//! One-off rewrites of what older nodes stored, done when a store opens.

use super::codec::{self, Stored};
use super::keys;
use super::values::{PetitionTally, Slot};
use crate::error::Result;

/// Rewrites the slots and petition tallies an older node stored as CBOR maps in the compact
/// encoding ([`super::codec`]), once per store (marked by [`keys::FORMAT`]): values read the same
/// either way, but `recompute` compares stored bytes with freshly computed ones. Each
/// rewrite is idempotent and the marker is written once they are durable, so a crash
/// part-way is finished at the next open. (Plain inserts, not a `sled::Batch`: the first
/// batch would switch on sled's global read lock for the life of the process.)
pub(crate) fn migrate_derived(db: &sled::Db, tree: &sled::Tree) -> Result<()> {
    if tree.contains_key(keys::FORMAT)? {
        return Ok(());
    }
    for prefix in [keys::SLOT, keys::PETITION_TALLY] {
        for kv in tree.scan_prefix([prefix]) {
            let (k, v) = kv?;
            if !codec::is_cbor_map(&v) {
                continue;
            }
            let fresh = if prefix == keys::SLOT {
                Slot::decode(&v)?.encode()
            } else {
                PetitionTally::decode(&v)?.encode()
            };
            tree.insert(k, fresh)?;
        }
    }
    db.flush()?;
    tree.insert(keys::FORMAT, &[keys::FORMAT_VERSION])?;
    db.flush()?;
    Ok(())
}
