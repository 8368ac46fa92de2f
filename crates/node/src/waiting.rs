//! The waiting area: valid records whose target has not arrived yet, kept until it does.
//!
//! Anyone can make a record that points at nothing (a throwaway key endorsing a petition
//! that does not exist), so the area is bounded so that nobody can fill it for others:
//! - per **source** (the peer that sent the record; records made on this node have their
//!   own source): at most [`Limits::per_source`] entries;
//! - per **author**: at most [`Limits::per_author`];
//! - in **total**: [`Limits::total`]; when full, the oldest entry of the source holding the
//!   most makes room, unless that source is the newcomer's own (then the newcomer is
//!   refused), so a flood only ever displaces itself;
//! - in **time**: an entry is dropped [`Limits::ttl`] after it arrived.
//!
//! A record that only waits is not forwarded (the gossip verdict ignores it); once its target
//! arrives and it is applied, it is handed back to be gossiped then. A peer whose records
//! mostly never resolve is charged a fault, as for an invalid record: one per
//! [`PENALTY_EVERY`] of its entries that expired, while fewer than one in ten of its entries
//! resolved (an honest peer forwards only records whose target it has, so its entries
//! resolve when the target arrives here too).
//!
//! Stored value of a waiting entry (key `w` target id): `0x01`, the arrival time (u64 BE,
//! ms), the source (`0`: local; `1`, a length byte and the peer id's bytes), then the record's
//! wire bytes. A value written by an older node is the wire alone (it starts with the CBOR
//! array byte `0x82`); it is read as a local entry that arrived when the store opened.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use chorus_protocol::{AuthorKey, RecordId, SignedRecord};

use crate::error::{Error, Result};

/// Where a record came from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    /// Made on this node (the API), or of unknown origin.
    Local,
    /// Sent by this peer (its peer id's bytes): gossip it relayed, or a sync answer.
    Peer(Vec<u8>),
}

/// The bounds of the waiting area.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Entries in all.
    pub total: usize,
    /// Entries from one source.
    pub per_source: usize,
    /// Entries by one author.
    pub per_author: usize,
    /// How long an entry waits at most.
    pub ttl: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            total: 100_000,
            per_source: 10_000,
            per_author: 1_000,
            ttl: Duration::from_secs(3600),
        }
    }
}

/// Expired entries of a source that cost it one fault (while few of its entries resolve).
pub const PENALTY_EVERY: u32 = 100;
/// Sources whose resolved and expired entries are counted at once; beyond, the counts of
/// sources with nothing waiting are forgotten.
const MAX_TRACKED: usize = 10_000;

/// What is known of one waiting record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Meta {
    pub(crate) target: RecordId,
    pub(crate) arrival: u64,
    pub(crate) source: Source,
    pub(crate) author: AuthorKey,
}

/// Whether a record may wait.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Admit {
    /// Yes, once these entries (target, id) are removed to make room.
    Yes(Vec<(RecordId, RecordId)>),
    /// No: its author or source holds its share already, or the area is full of its own
    /// source's entries.
    No,
}

const FORMAT: u8 = 0x01;

/// The stored value of a waiting entry.
pub(crate) fn encode(arrival: u64, source: &Source, wire: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(12 + wire.len());
    out.push(FORMAT);
    out.extend_from_slice(&arrival.to_be_bytes());
    match source {
        Source::Local => out.push(0),
        Source::Peer(p) => {
            out.push(1);
            // Peer ids are under 64 bytes; a longer one is cut (it only names a counter).
            let p = &p[..p.len().min(255)];
            out.push(p.len() as u8);
            out.extend_from_slice(p);
        }
    }
    out.extend_from_slice(wire);
    out
}

/// A stored value: arrival, source and the record's wire bytes. `now` is the arrival of an
/// entry an older node wrote (the bare wire).
pub(crate) fn decode(value: &[u8], now: u64) -> Result<(u64, Source, &[u8])> {
    let bad = || Error::Corrupt("waiting entry".into());
    match value.first() {
        Some(&FORMAT) => {
            let arrival = u64::from_be_bytes(
                value
                    .get(1..9)
                    .ok_or_else(bad)?
                    .try_into()
                    .map_err(|_| bad())?,
            );
            let (source, rest) = match value.get(9) {
                Some(0) => (Source::Local, value.get(10..).ok_or_else(bad)?),
                Some(1) => {
                    let n = *value.get(10).ok_or_else(bad)? as usize;
                    let peer = value.get(11..11 + n).ok_or_else(bad)?;
                    (
                        Source::Peer(peer.to_vec()),
                        value.get(11 + n..).ok_or_else(bad)?,
                    )
                }
                _ => return Err(bad()),
            };
            Ok((arrival, source, rest))
        }
        Some(_) => Ok((now, Source::Local, value)),
        None => Err(bad()),
    }
}

/// The waiting area in memory (the entries themselves are in the store).
#[derive(Default)]
pub(crate) struct WaitingArea {
    limits: Limits,
    entries: HashMap<RecordId, Meta>,
    /// The entries waiting for each target.
    targets: HashMap<RecordId, Vec<RecordId>>,
    by_time: BTreeSet<(u64, RecordId)>,
    by_source: HashMap<Source, BTreeSet<(u64, RecordId)>>,
    by_author: HashMap<AuthorKey, usize>,
    /// Per peer: entries that resolved, and that expired, since its last fault.
    fates: HashMap<Vec<u8>, (u32, u32)>,
}

impl WaitingArea {
    /// An empty area with these bounds.
    pub(crate) fn new(limits: Limits) -> Self {
        WaitingArea {
            limits,
            ..Default::default()
        }
    }

    /// Entries waiting.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Does anything wait for `target`?
    pub(crate) fn has_target(&self, target: &RecordId) -> bool {
        self.targets.contains_key(target)
    }

    /// Notes an entry (loading the store, or admitted).
    pub(crate) fn insert(&mut self, id: RecordId, meta: Meta) {
        if self.entries.contains_key(&id) {
            return;
        }
        self.targets.entry(meta.target).or_default().push(id);
        self.by_time.insert((meta.arrival, id));
        self.by_source
            .entry(meta.source.clone())
            .or_default()
            .insert((meta.arrival, id));
        *self.by_author.entry(meta.author).or_default() += 1;
        self.entries.insert(id, meta);
    }

    /// Forgets an entry; returns what it was.
    fn forget(&mut self, id: &RecordId) -> Option<Meta> {
        let meta = self.entries.remove(id)?;
        if let Some(ids) = self.targets.get_mut(&meta.target) {
            ids.retain(|i| i != id);
            if ids.is_empty() {
                self.targets.remove(&meta.target);
            }
        }
        self.by_time.remove(&(meta.arrival, *id));
        if let Some(s) = self.by_source.get_mut(&meta.source) {
            s.remove(&(meta.arrival, *id));
            if s.is_empty() {
                self.by_source.remove(&meta.source);
            }
        }
        if let Some(n) = self.by_author.get_mut(&meta.author) {
            *n -= 1;
            if *n == 0 {
                self.by_author.remove(&meta.author);
            }
        }
        Some(meta)
    }

    /// May record `id` wait, given `meta`? (See the module docs.)
    pub(crate) fn admit(&self, meta: &Meta) -> Admit {
        if self.by_author.get(&meta.author).copied().unwrap_or(0) >= self.limits.per_author {
            return Admit::No;
        }
        let own = self.by_source.get(&meta.source).map_or(0, |s| s.len());
        if own >= self.limits.per_source {
            return Admit::No;
        }
        if self.entries.len() < self.limits.total {
            return Admit::Yes(Vec::new());
        }
        // Full: the largest source makes room, unless it is the newcomer's.
        let largest = self
            .by_source
            .iter()
            .max_by_key(|(s, e)| (e.len(), *s))
            .filter(|(s, e)| **s != meta.source && e.len() > own);
        match largest.and_then(|(_, e)| e.first()) {
            Some((_, id)) => match self.entries.get(id) {
                Some(m) => Admit::Yes(vec![(m.target, *id)]),
                None => Admit::No,
            },
            None => Admit::No,
        }
    }

    /// Forgets entries removed to make room (their source's count of expired ones grows).
    pub(crate) fn evicted(&mut self, ids: &[(RecordId, RecordId)]) {
        for (_, id) in ids {
            if let Some(m) = self.forget(id) {
                self.fate(&m.source, false);
            }
        }
    }

    /// The target arrived: forgets the entries that waited for it (they resolved).
    pub(crate) fn resolved(&mut self, target: &RecordId) {
        // Taken whole first, so that forgetting each entry need not search the list.
        let Some(ids) = self.targets.remove(target) else {
            return;
        };
        for id in ids {
            if let Some(m) = self.forget(&id) {
                self.fate(&m.source, true);
            }
        }
    }

    /// Entries older than the time to live at `now`, at most `max`, forgotten: (target, id)
    /// for the caller to remove from the store.
    pub(crate) fn expire(&mut self, now: u64, max: usize) -> Vec<(RecordId, RecordId)> {
        let ttl = u64::try_from(self.limits.ttl.as_millis()).unwrap_or(u64::MAX);
        let cutoff = now.saturating_sub(ttl);
        let old: Vec<RecordId> = self
            .by_time
            .iter()
            .take_while(|(at, _)| *at < cutoff)
            .take(max)
            .map(|(_, id)| *id)
            .collect();
        let mut out = Vec::with_capacity(old.len());
        for id in old {
            if let Some(m) = self.forget(&id) {
                self.fate(&m.source, false);
                out.push((m.target, id));
            }
        }
        out
    }

    fn fate(&mut self, source: &Source, resolved: bool) {
        let Source::Peer(p) = source else {
            return;
        };
        if !self.fates.contains_key(p) && self.fates.len() >= MAX_TRACKED {
            // Forget the peers that have nothing waiting.
            let by_source = &self.by_source;
            self.fates
                .retain(|k, _| by_source.contains_key(&Source::Peer(k.clone())));
            if self.fates.len() >= MAX_TRACKED {
                return;
            }
        }
        let f = self.fates.entry(p.clone()).or_default();
        if resolved {
            f.0 = f.0.saturating_add(1);
        } else {
            f.1 = f.1.saturating_add(1);
        }
    }

    /// Peers to charge one fault each (and how many): those with [`PENALTY_EVERY`] or more
    /// expired entries of which fewer than one in ten resolved. Their counts start again.
    pub(crate) fn penalties(&mut self) -> Vec<(Vec<u8>, u32)> {
        let mut out = Vec::new();
        for (peer, (resolved, expired)) in self.fates.iter_mut() {
            if *expired >= PENALTY_EVERY && resolved.saturating_mul(10) < *expired {
                out.push((peer.clone(), *expired / PENALTY_EVERY));
                *resolved = 0;
                *expired = 0;
            }
        }
        out
    }

    /// The meta of a record about to wait.
    pub(crate) fn meta(rec: &SignedRecord, target: RecordId, source: &Source, now: u64) -> Meta {
        Meta {
            target,
            arrival: now,
            source: source.clone(),
            author: rec.author(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> RecordId {
        RecordId([n; 32])
    }

    fn meta(target: u8, arrival: u64, source: &Source, author: u8) -> Meta {
        Meta {
            target: id(target),
            arrival,
            source: source.clone(),
            author: AuthorKey([author; 32]),
        }
    }

    fn peer(n: u8) -> Source {
        Source::Peer(vec![n; 38])
    }

    #[test]
    fn values_round_trip_and_an_older_nodes_bare_wire_reads_as_local() {
        let wire = [0x82, 1, 2, 3];
        for s in [Source::Local, peer(7)] {
            let v = encode(42, &s, &wire);
            assert_eq!(decode(&v, 0).unwrap(), (42, s, &wire[..]));
            for n in 0..v.len().min(11) {
                let cut = &v[..n];
                assert!(
                    n == 10 && v[9] == 0 || decode(cut, 0).is_err(),
                    "{n} bytes decoded"
                );
            }
        }
        assert_eq!(decode(&wire, 9).unwrap(), (9, Source::Local, &wire[..]));
        assert!(decode(&[], 0).is_err());
    }

    #[test]
    fn each_author_and_source_has_its_share_and_a_full_area_displaces_the_largest_source() {
        let mut w = WaitingArea::new(Limits {
            total: 6,
            per_source: 4,
            per_author: 2,
            ttl: Duration::from_secs(60),
        });
        let flood = peer(1);
        // One author: two at most.
        assert_eq!(w.admit(&meta(9, 0, &flood, 1)), Admit::Yes(vec![]));
        w.insert(id(100), meta(9, 0, &flood, 1));
        w.insert(id(101), meta(9, 0, &flood, 1));
        assert_eq!(w.admit(&meta(9, 0, &flood, 1)), Admit::No);
        // One source: four at most, whatever the authors.
        w.insert(id(102), meta(9, 1, &flood, 2));
        w.insert(id(103), meta(9, 2, &flood, 3));
        assert_eq!(w.admit(&meta(9, 3, &flood, 4)), Admit::No);
        // Others still get in; once the area is full, the flood's oldest makes room.
        w.insert(id(104), meta(8, 3, &peer(2), 5));
        w.insert(id(105), meta(8, 3, &Source::Local, 6));
        assert_eq!(w.len(), 6);
        let admit = w.admit(&meta(7, 4, &peer(3), 7));
        assert_eq!(admit, Admit::Yes(vec![(id(9), id(100))]));
        // The largest source is refused rather than displacing others.
        assert_eq!(w.admit(&meta(7, 4, &flood, 8)), Admit::No);
        w.evicted(&[(id(9), id(100))]);
        assert_eq!(w.len(), 5);
    }

    #[test]
    fn entries_expire_and_a_source_whose_entries_never_resolve_is_charged() {
        let mut w = WaitingArea::new(Limits {
            total: 10_000,
            per_source: 10_000,
            per_author: 10_000,
            ttl: Duration::from_millis(100),
        });
        let (bad, good) = (peer(1), peer(2));
        for n in 0..PENALTY_EVERY {
            let i = RecordId([n as u8; 32]);
            let mut m = meta(1, 10, &bad, n as u8);
            m.target = RecordId([200; 32]);
            w.insert(RecordId::of(&[i.0[0], 1]), m);
            w.insert(RecordId::of(&[i.0[0], 2]), meta(2, 10, &good, n as u8));
        }
        // The good peer's target arrives; nothing is old yet.
        w.resolved(&id(2));
        assert!(w.expire(100, usize::MAX).is_empty());
        assert_eq!(w.len(), PENALTY_EVERY as usize);
        // Later, the bad peer's expire, in bounded slices.
        assert_eq!(w.expire(200, 30).len(), 30);
        assert!(w.penalties().is_empty(), "not yet {PENALTY_EVERY} expired");
        assert_eq!(w.expire(200, usize::MAX).len(), 70);
        assert_eq!(w.len(), 0);
        assert!(!w.has_target(&RecordId([200; 32])));
        assert_eq!(w.penalties(), vec![(vec![1; 38], 1)]);
        assert!(w.penalties().is_empty(), "counted once");
    }
}
