//! Exporting a petition's verifiable bundle from the store (the format and its checks are
//! in `chorus_protocol::bundle`).

use chorus_protocol::bundle::{merkle_root, Bundle};
use chorus_protocol::{Body, Kind, RecordId};

use crate::error::Result;
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

/// Builds the bundle of a petition: the petition, every counted endorsement, the
/// retractions that took an endorser out (with the endorsements they retract), the
/// producer's responses and the attestations about the petition; `count` and `root` as this
/// store has them. Errors are the store's; an id that names no petition is an answer.
pub fn export(store: &Store, petition: &RecordId) -> Result<Exported> {
    let Some(p) = store.record(petition)? else {
        return Ok(Exported::Missing);
    };
    let Body::Petition(body) = &p.record().body else {
        return Ok(Exported::NotAPetition(p.record().kind()));
    };
    let mut endorsements = Vec::new();
    let mut retractions = Vec::new();
    let mut counted = Vec::new();
    for (rec, on) in store.winners(petition)? {
        if on {
            counted.push(rec.id());
            endorsements.push(rec.wire().to_vec());
        } else if let Body::Retraction(r) = &rec.record().body {
            // The retraction, and what it retracts: evidence that this author is out.
            if let Some(e) = store.record(&r.target)? {
                endorsements.push(e.wire().to_vec());
                retractions.push(rec.wire().to_vec());
            }
        }
    }
    let mut responses = Vec::new();
    let mut attestations = Vec::new();
    let mut after = None;
    loop {
        let page = store.by_target(petition, after, 1000)?;
        for rec in &page.records {
            match rec.record().kind() {
                Kind::Response if rec.author() == body.producer => {
                    responses.push(rec.wire().to_vec())
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
    Ok(Exported::Bundle(Bundle {
        petition: p.wire().to_vec(),
        count: counted.len() as u64,
        root: merkle_root(&counted),
        endorsements,
        retractions,
        responses,
        attestations,
    }))
}
