//! What one writer of derived state keeps across records: decoded pointed-at records and
//! their kind-rule facts, and the current chunk's tallies, changes and events.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use chorus_protocol::{AuthorKey, Pointed, RecordId, SignedRecord};

use super::event::Event;
use crate::error::Result;
use crate::store::keys::ProductKey;
use crate::store::overlay::{Backing, Overlay};
use crate::store::{PetitionTally, Rating};

/// State kept across the chunks of one writer: decoded targets, and the changes and events
/// of the current chunk.
#[derive(Default)]
pub(crate) struct Ctx {
    targets: HashMap<RecordId, Arc<SignedRecord>>,
    /// What the kind rules need of recently pointed-at records (mostly petitions, which
    /// nearly every endorsement points at): compact, so many fit.
    facts: HashMap<RecordId, Pointed>,
    /// The chunk's events so far.
    pub(crate) events: Vec<Event>,
    pub(super) changed_petitions: BTreeSet<RecordId>,
    pub(super) crossed: BTreeSet<RecordId>,
    /// Campaigns first funded in this chunk.
    pub(super) funded: BTreeSet<RecordId>,
    pub(super) changed_products: BTreeMap<ProductKey, (AuthorKey, String)>,
    /// The writer's clock (ms) while it stores records as they arrive; 0 when derived state
    /// is recomputed from a set of records, where arrival means nothing.
    pub(crate) now: u64,
    /// Petition tallies read or changed in this chunk, decoded once and written once.
    tallies: HashMap<RecordId, (PetitionTally, bool)>,
}

impl Ctx {
    const MAX_TARGETS: usize = 4096;
    const MAX_FACTS: usize = 65_536;

    /// A stored record, decoded (kept for the next records that point at it).
    pub(super) fn target<B: Backing>(
        &mut self,
        ov: &Overlay<'_, B>,
        id: &RecordId,
    ) -> Result<Option<Arc<SignedRecord>>> {
        if let Some(t) = self.targets.get(id) {
            return Ok(Some(t.clone()));
        }
        let Some(rec) = ov.record(id)? else {
            return Ok(None);
        };
        let rec = Arc::new(rec);
        if self.targets.len() >= Self::MAX_TARGETS {
            self.targets.clear();
        }
        self.targets.insert(*id, rec.clone());
        Ok(Some(rec))
    }

    /// The kind-rule facts of a stored record (`None`: not stored).
    pub(super) fn facts<B: Backing>(
        &mut self,
        ov: &Overlay<'_, B>,
        id: &RecordId,
    ) -> Result<Option<Pointed>> {
        if let Some(t) = self.facts.get(id) {
            return Ok(Some(*t));
        }
        let Some(rec) = self.target(ov, id)? else {
            return Ok(None);
        };
        let facts = Pointed::of(rec.record());
        if self.facts.len() >= Self::MAX_FACTS {
            self.facts.clear();
        }
        self.facts.insert(*id, facts);
        Ok(Some(facts))
    }

    /// A petition's tally as this chunk has it.
    pub(super) fn take_tally<B: Backing>(
        &mut self,
        ov: &Overlay<'_, B>,
        id: &RecordId,
    ) -> Result<Option<PetitionTally>> {
        if let Some((t, _)) = self.tallies.get(id) {
            return Ok(Some(t.clone()));
        }
        let t = ov.petition_tally(id)?;
        if let Some(t) = &t {
            self.tallies.insert(*id, (t.clone(), false));
        }
        Ok(t)
    }

    /// Changes a petition's tally (written by [`Ctx::flush`]).
    pub(super) fn put_tally(&mut self, id: RecordId, t: PetitionTally) {
        self.tallies.insert(id, (t, true));
    }

    /// Writes the chunk's changed tallies into the overlay.
    pub(crate) fn flush<B: Backing>(&mut self, ov: &mut Overlay<'_, B>) {
        for (id, (t, dirty)) in self.tallies.drain() {
            if dirty {
                ov.put_petition_tally(&id, &t);
            }
        }
    }

    /// Turns the chunk's changes into events (after [`Ctx::flush`]).
    pub(crate) fn finish_events<B: Backing>(&mut self, ov: &Overlay<'_, B>) -> Result<Vec<Event>> {
        let mut events = std::mem::take(&mut self.events);
        for p in std::mem::take(&mut self.changed_petitions) {
            if let Some(t) = ov.petition_tally(&p)? {
                if self.crossed.contains(&p) && t.reached {
                    events.push(Event::ThresholdCrossed {
                        petition: p,
                        tally: Box::new(t.clone()),
                        seq: None,
                    });
                }
                if self.funded.contains(&p) && t.first_reached_at.is_some() {
                    events.push(Event::CampaignFunded {
                        petition: p,
                        tally: Box::new(t.clone()),
                        seq: None,
                    });
                }
                events.push(Event::TallyChanged {
                    petition: p,
                    tally: Box::new(t),
                });
            }
        }
        self.crossed.clear();
        self.funded.clear();
        for (pk, (producer, code)) in std::mem::take(&mut self.changed_products) {
            let rating: Rating = ov.rating(&pk)?.unwrap_or_default();
            events.push(Event::RatingChanged {
                producer,
                code,
                rating,
            });
        }
        Ok(events)
    }

    /// Forgets the chunk's changes (a recomputation applies one record at a time).
    pub(crate) fn clear_chunk(&mut self) {
        self.tallies.clear();
        self.events.clear();
        self.changed_petitions.clear();
        self.crossed.clear();
        self.funded.clear();
        self.changed_products.clear();
    }
}
