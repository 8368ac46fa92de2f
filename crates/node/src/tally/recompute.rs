//! Derived state rebuilt from the raw records alone, and compared with what the store holds:
//! how a node (and its watchdog's audit) checks that its counts follow from its records.

use chorus_protocol::{Kind, SignedRecord};
use serde::Serialize;

use super::apply::apply;
use super::ctx::Ctx;
use super::ready::{readiness, Readiness};
use crate::error::Result;
use crate::store::keys;
use crate::store::overlay::{Backing, Memory, Overlay};
use crate::store::Store;

/// One disagreement between stored and recomputed derived state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Difference {
    /// The derived-state key, hex (or the id of a record that breaks a kind rule).
    pub key: String,
    /// What the store holds (hex of the encoded value), if anything.
    pub stored: Option<String>,
    /// What recomputing from raw records gives, if anything.
    pub recomputed: Option<String>,
}

/// The order `recompute` applies records in: anything a record may point at comes first.
fn rank(kind: Kind) -> u8 {
    match kind {
        Kind::Profile | Kind::Group | Kind::Petition | Kind::Review | Kind::Attestation => 0,
        Kind::Join | Kind::Admit | Kind::Endorsement | Kind::Response => 1,
        Kind::Retraction => 2,
    }
}

fn is_derived(key: &[u8]) -> bool {
    key == keys::COUNT || key.first().is_some_and(|p| keys::DERIVED.contains(p))
}

/// Derived state built afresh in memory, over the records and indexes of a tree: reads of
/// derived keys see only what has been built, reads of anything else see the tree.
struct Fresh<'a> {
    tree: &'a sled::Tree,
    mem: Memory,
}

impl Backing for Fresh<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if is_derived(key) {
            self.mem.get(key)
        } else {
            Backing::get(self.tree, key)
        }
    }
    fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        if is_derived(prefix) {
            self.mem.scan_prefix(prefix)
        } else {
            Backing::scan_prefix(self.tree, prefix)
        }
    }
}

/// Derives all derived state from the records stored in `tree` alone, streaming them in
/// three passes (by [`rank`], each in topic and time order) so that no more than the
/// derived state is held in memory. Also returns the records that break a kind rule (or
/// point at a record not stored), which are not applied.
pub(crate) fn derive(tree: &sled::Tree) -> Result<(Memory, Vec<Difference>)> {
    let mut fresh = Fresh {
        tree,
        mem: Memory::default(),
    };
    let mut ctx = Ctx::default();
    let mut diffs = Vec::new();
    for pass in 0..=2 {
        for kv in tree.scan_prefix([keys::TOPIC]) {
            let (_, wire) = kv?;
            let rec = SignedRecord::from_vec(wire.to_vec())?;
            if rank(rec.record().kind()) != pass {
                continue;
            }
            let mut ov = Overlay::new(&fresh);
            match readiness(&ov, &mut ctx, &rec)? {
                Readiness::Ready => {
                    ov.put_record(&rec);
                    apply(&mut ov, &mut ctx, &rec)?;
                    ctx.flush(&mut ov);
                }
                other => {
                    diffs.push(Difference {
                        key: rec.id().to_string(),
                        stored: Some("record".into()),
                        recomputed: Some(format!("{other:?}")),
                    });
                    continue;
                }
            }
            ctx.clear_chunk();
            let writes = ov.into_writes()?;
            fresh
                .mem
                .absorb(writes.into_iter().filter(|(k, _)| is_derived(k)).collect());
        }
    }
    Ok((fresh.mem, diffs))
}

/// Rebuilds all derived state from the raw records in the store and compares it with the
/// stored derived state. An empty result means they agree. Records that no longer pass
/// their kind rules are reported as differences too.
pub fn recompute(store: &Store) -> Result<Vec<Difference>> {
    let (mem, mut diffs) = derive(&store.main_tree()?)?;
    for (k, stored, fresh) in store.derived_differences(&mem)? {
        diffs.push(Difference {
            key: hex::encode(k),
            stored: stored.map(hex::encode),
            recomputed: fresh.map(hex::encode),
        });
    }
    Ok(diffs)
}
