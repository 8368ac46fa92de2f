//! Exporting a petition's verifiable bundle from the store (the format and its checks are
//! in `chorus_protocol::bundle`).

use std::collections::HashSet;

use chorus_protocol::bundle::{merkle_root, Bundle};
use chorus_protocol::{Body, Kind, RecordId};

use crate::error::{Error, Result};
use crate::store::Store;

/// What [`export`] found.
#[derive(Debug)]
pub enum Exported {
    /// The petition's bundle.
    Bundle(Bundle),
    /// No record with that id in this store.
    Missing,
    /// The record is of this other kind.
    NotAPetition(Kind),
}

/// Builds the bundle of a petition: the petition, its considered history (every
/// endorsement and retraction of one made by its close, with the endorsement a retraction
/// retracts where that was made later), its author's withdrawals of it, the producer's
/// responses and the attestations about the petition; `count`, `root` and
/// `first_reached_at` as this store has them. Errors are the store's; an id that names no
/// petition is an answer.
pub fn export(store: &Store, petition: &RecordId) -> Result<Exported> {
    let Some(p) = store.record(petition)? else {
        return Ok(Exported::Missing);
    };
    let Body::Petition(body) = &p.record().body else {
        return Ok(Exported::NotAPetition(p.record().kind()));
    };
    let stored = |id: &RecordId| {
        store.record(id)?.ok_or_else(|| {
            Error::Corrupt(format!("petition history names {id}, which is not stored"))
        })
    };
    let mut endorsements = Vec::new();
    let mut retractions = Vec::new();
    let mut held = HashSet::new();
    let mut targets = Vec::new();
    for (_, id) in store.history(petition)? {
        let rec = stored(&id)?;
        match &rec.record().body {
            Body::Endorsement(_) => {
                held.insert(id);
                endorsements.push(rec.wire().to_vec());
            }
            Body::Retraction(r) => {
                targets.push(r.target);
                retractions.push(rec.wire().to_vec());
            }
            _ => {}
        }
    }
    for t in targets {
        if held.insert(t) {
            endorsements.push(stored(&t)?.wire().to_vec());
        }
    }
    let counted: Vec<RecordId> = store
        .winners(petition)?
        .into_iter()
        .filter(|(_, on)| *on)
        .map(|(rec, _)| rec.id())
        .collect();
    let mut responses = Vec::new();
    let mut attestations = Vec::new();
    let mut withdrawals = Vec::new();
    let mut after = None;
    loop {
        let page = store.by_target(petition, after, 1000)?;
        for rec in &page.records {
            match rec.record().kind() {
                Kind::Response if rec.author() == body.producer => {
                    responses.push(rec.wire().to_vec())
                }
                Kind::Retraction if rec.author() == p.author() => {
                    withdrawals.push(rec.wire().to_vec())
                }
                Kind::Attestation => attestations.push(rec.wire().to_vec()),
                _ => {}
            }
        }
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    let first_reached_at = store.tally(petition)?.and_then(|t| t.first_reached_at);
    Ok(Exported::Bundle(Bundle {
        petition: p.wire().to_vec(),
        count: counted.len() as u64,
        root: merkle_root(&counted),
        endorsements,
        retractions,
        responses,
        attestations,
        withdrawals,
        first_reached_at,
    }))
}
