//! The record and index writes: a record's bytes under its topic/time key, the id index that
//! points there, the author, target, product and group indexes, its journal entry, and the
//! records kept waiting for the record they point at.

use chorus_protocol::{Body, Kind, RecordId, SignedRecord};

use super::journal::{Journaled, Milestone};
use super::keys::{self, ProductKey};
use super::overlay::{Backing, Overlay};
use crate::error::{Error, Result};

impl<B: Backing> Overlay<'_, B> {
    /// Is a record with this id stored (or about to be)?
    pub(crate) fn has_record(&self, id: &RecordId) -> Result<bool> {
        self.contains(&keys::record(id))
    }

    /// The record with this id, decoded.
    pub(crate) fn record(&self, id: &RecordId) -> Result<Option<SignedRecord>> {
        let Some(loc) = self.get(&keys::record(id))? else {
            return Ok(None);
        };
        let Some(wire) = self.get(&keys::stored_at(&loc, id))? else {
            return Err(Error::Corrupt(format!("record {id} indexed but missing")));
        };
        Ok(Some(SignedRecord::from_vec(wire)?))
    }

    /// Stores a record and its index entries, and journals it if its topic is watched;
    /// returns its journal sequence number. (What it changes in derived state is
    /// `crate::tally::apply`'s business.)
    pub(crate) fn put_record(&mut self, rec: &SignedRecord) -> Option<u64> {
        let r = rec.record();
        let id = rec.id();
        let at = r.created_at;
        // The wire bytes live under the topic/time key (sync order, mostly sequential
        // inserts); the id index points there.
        let place = chorus_protocol::sync::place_of(r);
        self.put(keys::record(&id), keys::location(&place, at));
        self.put(
            keys::timed(keys::TOPIC, &place, at, &id),
            rec.wire().to_vec(),
        );
        for k in index_keys(rec) {
            self.put(k, Vec::new());
        }
        for (k, v) in super::search::word_entries(rec) {
            self.put(k, v);
        }
        self.added += 1;
        let (seq, key, value) = self.journal?.entry(&r.topic, Journaled::Record(id))?;
        self.put(key, value);
        Some(seq)
    }

    /// Journals a petition's milestone if its topic is watched; returns its sequence
    /// number.
    pub(crate) fn journal_milestone(
        &mut self,
        m: Milestone,
        petition: &RecordId,
    ) -> Result<Option<u64>> {
        let Some(journal) = self.journal else {
            return Ok(None);
        };
        let Some(rec) = self.record(petition)? else {
            return Ok(None);
        };
        let entry = journal.entry(&rec.record().topic, Journaled::Milestone(m, *petition));
        Ok(entry.map(|(seq, key, value)| {
            self.put(key, value);
            seq
        }))
    }

    /// Notes that a petition with a deadline was stored here at `now` (ms), before it.
    pub(crate) fn mark_held(&mut self, petition: &RecordId, now: u64) {
        self.put(
            keys::key(keys::LATE, &[petition.as_bytes()]),
            now.to_be_bytes().to_vec(),
        );
    }

    /// Has this node noted that this campaign ended?
    pub(crate) fn ended_noted(&self, campaign: &RecordId) -> Result<bool> {
        self.contains(&keys::key(keys::ENDED, &[campaign.as_bytes()]))
    }

    /// Notes that this node saw this campaign end at `now` (ms), and journals the end if
    /// the campaign's topic is watched; returns its journal sequence number.
    pub(crate) fn mark_ended(&mut self, campaign: &RecordId, now: u64) -> Result<Option<u64>> {
        self.put(
            keys::key(keys::ENDED, &[campaign.as_bytes()]),
            now.to_be_bytes().to_vec(),
        );
        self.journal_milestone(Milestone::Ended, campaign)
    }

    /// Was this petition stored here before its deadline ([`Self::mark_held`])?
    pub(crate) fn held_before_deadline(&self, petition: &RecordId) -> Result<bool> {
        self.contains(&keys::key(keys::LATE, &[petition.as_bytes()]))
    }

    /// Notes that an endorsement of `petition` was first stored at `now` (ms), after the
    /// petition's deadline (PROTOCOL.md §9.2); an earlier note is kept.
    pub(crate) fn mark_late(&mut self, petition: &RecordId, endorsement: &RecordId, now: u64) {
        let key = keys::key(keys::LATE, &[petition.as_bytes(), endorsement.as_bytes()]);
        if !self.contains(&key).unwrap_or(false) {
            self.put(key, now.to_be_bytes().to_vec());
        }
    }

    /// The petitions that speak for a group.
    pub(crate) fn group_petitions(&self, group: &RecordId) -> Result<Vec<RecordId>> {
        Ok(self
            .scan_prefix(&keys::key(keys::GROUP_PETITION, &[group.as_bytes()]))?
            .into_iter()
            .filter_map(|(k, _)| keys::id_at(&k, 33))
            .collect())
    }

    /// Is this record already kept waiting for `target`?
    pub(crate) fn is_waiting(&self, target: &RecordId, id: &RecordId) -> Result<bool> {
        self.contains(&keys::key(
            keys::WAITING,
            &[target.as_bytes(), id.as_bytes()],
        ))
    }

    /// Keeps a record until `target` arrives (`value`: `crate::waiting::encode`).
    pub(crate) fn put_waiting(&mut self, target: &RecordId, id: &RecordId, value: Vec<u8>) {
        self.put(
            keys::key(keys::WAITING, &[target.as_bytes(), id.as_bytes()]),
            value,
        );
    }

    /// Drops a waiting record (it waited too long, or made room for another).
    pub(crate) fn remove_waiting(&mut self, target: &RecordId, id: &RecordId) {
        self.remove(keys::key(
            keys::WAITING,
            &[target.as_bytes(), id.as_bytes()],
        ));
    }

    /// Takes the records that waited for `target` out of the waiting area: their stored
    /// values.
    pub(crate) fn take_waiting(&mut self, target: &RecordId) -> Result<Vec<Vec<u8>>> {
        let waiting = self.scan_prefix(&keys::key(keys::WAITING, &[target.as_bytes()]))?;
        Ok(waiting
            .into_iter()
            .map(|(k, wire)| {
                self.remove(k);
                wire
            })
            .collect())
    }
}

/// A record's index entries (all with empty values): by author for attestations, by target
/// for what points at something (endorsements are found through their slots), by product,
/// and a petition's group. What [`Overlay::put_record`] writes beside the record, and what
/// removing a record removes.
pub(crate) fn index_keys(rec: &SignedRecord) -> Vec<Vec<u8>> {
    let r = rec.record();
    let id = rec.id();
    let at = r.created_at;
    let mut out = Vec::new();
    // Only attestations are looked up by author (a trusted watchdog's, for trusted
    // counts): an author key for every record was a tenth of the store's live bytes.
    if r.kind() == Kind::Attestation {
        out.push(keys::timed(keys::AUTHOR, r.author.as_bytes(), at, &id));
    }
    // A petition's endorsements are indexed by their slots (petition, author): the latest
    // state of each endorser, which is what anyone asks of them. One key less for the
    // commonest record.
    if let Some(t) = r.body.target() {
        if r.kind() != Kind::Endorsement {
            out.push(keys::timed(keys::TARGET, t.as_bytes(), at, &id));
        }
    }
    match &r.body {
        Body::Review(rv) => {
            let pk = ProductKey::of_ref(&rv.product);
            out.push(keys::timed(keys::PRODUCT, pk.as_bytes(), at, &id));
        }
        Body::Petition(p) => {
            if let Some(code) = &p.product {
                let pk = ProductKey::of(&p.producer, code);
                out.push(keys::timed(keys::PRODUCT, pk.as_bytes(), at, &id));
            }
            if let Some(g) = &p.group {
                out.push(keys::key(
                    keys::GROUP_PETITION,
                    &[g.as_bytes(), id.as_bytes()],
                ));
            }
        }
        _ => {}
    }
    out
}
