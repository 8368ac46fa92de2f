//! Derived state rebuilt from the raw records alone, and compared with what the store holds:
//! how a node (and its watchdog's audit) checks that its counts follow from its records.

use chorus_protocol::{Kind, SignedRecord};
use serde::Serialize;

use super::apply::apply;
use super::ctx::Ctx;
use super::ready::{readiness, Readiness};
use crate::error::Result;
use crate::store::overlay::{Memory, Overlay};
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

/// Rebuilds all derived state from the raw records in the store and compares it with the
/// stored derived state. An empty result means they agree. Records that no longer pass
/// their kind rules are reported as differences too.
pub fn recompute(store: &Store) -> Result<Vec<Difference>> {
    let mut recs: Vec<SignedRecord> = Vec::new();
    for wire in store.all_wires() {
        recs.push(SignedRecord::from_vec(wire?)?);
    }
    recs.sort_by_key(|r| rank(r.record().kind()));
    let mut mem = Memory::default();
    let mut ctx = Ctx::default();
    let mut diffs = Vec::new();
    for rec in &recs {
        let mut ov = Overlay::new(&mem);
        match readiness(&ov, &mut ctx, rec)? {
            Readiness::Ready => {
                ov.put_record(rec);
                apply(&mut ov, &mut ctx, rec)?;
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
        mem.absorb(writes);
    }
    for (k, stored, fresh) in store.derived_differences(&mem)? {
        diffs.push(Difference {
            key: hex::encode(k),
            stored: stored.map(hex::encode),
            recomputed: fresh.map(hex::encode),
        });
    }
    Ok(diffs)
}
