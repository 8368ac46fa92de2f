//! The arrival journal: for the topics being watched (a producer's own feedback, and any
//! topic a `watch` asked for), the order in which records arrived here, and the milestones
//! of the petitions on those topics (its threshold reached, a campaign first funded, a
//! campaign's end), so a watcher that was away can be shown exactly what happened since,
//! whatever the records' own times. A record's entry, and the milestone it causes, are
//! written in the same write set as the record; a campaign's end, in the write set of the
//! mark that this node noted it (`Overlay::mark_ended`, from the ingest pipeline, so
//! entries are written in the order of their sequence numbers).
//!
//! An entry's value is the record's id (32 bytes), or a milestone: its tag (1 byte,
//! [`Milestone::tag`]) and the petition's id.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;

use chorus_protocol::{RecordId, Topic};

use super::keys;
use crate::error::{Error, Result};

/// Which topics are journaled, and the next sequence number.
#[derive(Debug, Default)]
pub(crate) struct Journal {
    topics: RwLock<HashSet<[u8; 33]>>,
    next: AtomicU64,
}

/// A moment in a petition's life that a watcher is told of, in the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Milestone {
    /// It reached its threshold (for the first time, or again).
    Threshold,
    /// A campaign was first funded.
    Funded,
    /// A campaign's deadline passed (noticed by this node's clock).
    Ended,
}

impl Milestone {
    /// The tag byte before the petition's id in a journal value.
    const fn tag(self) -> u8 {
        match self {
            Milestone::Threshold => b'T',
            Milestone::Funded => b'F',
            Milestone::Ended => b'E',
        }
    }

    fn of_tag(b: u8) -> Option<Self> {
        match b {
            b'T' => Some(Milestone::Threshold),
            b'F' => Some(Milestone::Funded),
            b'E' => Some(Milestone::Ended),
            _ => None,
        }
    }
}

/// One journal entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Journaled {
    /// A record arrived.
    Record(RecordId),
    /// A petition passed a milestone.
    Milestone(Milestone, RecordId),
}

impl Journaled {
    fn encode(&self) -> Vec<u8> {
        match self {
            Journaled::Record(id) => id.as_bytes().to_vec(),
            Journaled::Milestone(m, p) => {
                let mut v = Vec::with_capacity(33);
                v.push(m.tag());
                v.extend_from_slice(p.as_bytes());
                v
            }
        }
    }

    pub(crate) fn decode(v: &[u8]) -> Result<Self> {
        let bad = || Error::Corrupt("bad journal entry".into());
        match v.len() {
            32 => Ok(Journaled::Record(RecordId(
                v.try_into().map_err(|_| bad())?,
            ))),
            33 => {
                let m = Milestone::of_tag(v[0]).ok_or_else(bad)?;
                Ok(Journaled::Milestone(
                    m,
                    RecordId(v[1..].try_into().map_err(|_| bad())?),
                ))
            }
            _ => Err(bad()),
        }
    }
}

/// The sequence number of a journal key.
fn seq_of(k: &[u8]) -> Result<u64> {
    let seq: [u8; 8] = k
        .get(1..9)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| Error::Corrupt("bad journal key".into()))?;
    Ok(u64::from_be_bytes(seq))
}

impl Journal {
    /// The journal of a tree: its watched topics, and the sequence number after its last
    /// entry.
    pub(crate) fn load(tree: &sled::Tree) -> Result<Self> {
        let next = match tree.scan_prefix([keys::JOURNAL]).next_back() {
            Some(kv) => seq_of(&kv?.0)? + 1,
            None => 1,
        };
        let mut topics = HashSet::new();
        for kv in tree.scan_prefix([keys::JOURNALED]) {
            let (k, _) = kv?;
            if let Some(t) = k.get(1..).and_then(|b| <[u8; 33]>::try_from(b).ok()) {
                topics.insert(t);
            }
        }
        Ok(Journal {
            topics: RwLock::new(topics),
            next: AtomicU64::new(next),
        })
    }

    /// For something that happened on `topic`: its journal entry (sequence number, key,
    /// value), if the topic is watched.
    pub(crate) fn entry(&self, topic: &Topic, what: Journaled) -> Option<(u64, Vec<u8>, Vec<u8>)> {
        if !self.is_watched(topic) {
            return None;
        }
        let seq = self.next.fetch_add(1, Ordering::Relaxed);
        let key = keys::key(keys::JOURNAL, &[&seq.to_be_bytes()]);
        Some((seq, key, what.encode()))
    }

    /// Starts journaling a topic; true if it was not journaled yet (the caller then writes
    /// the marker key durably).
    pub(crate) fn watch(&self, topic: &Topic) -> bool {
        let t = keys::topic_bytes(topic);
        self.topics
            .write()
            .map(|mut s| s.insert(t))
            .unwrap_or(false)
    }

    /// Is the arrival on this topic journaled?
    pub(crate) fn is_watched(&self, topic: &Topic) -> bool {
        let t = keys::topic_bytes(topic);
        self.topics.read().map(|s| s.contains(&t)).unwrap_or(false)
    }

    /// The latest sequence number handed out (0 if none).
    pub(crate) fn last(&self) -> u64 {
        self.next.load(Ordering::Relaxed).saturating_sub(1)
    }

    /// Entries of `tree` after `seq`, oldest first, at most `limit`.
    pub(crate) fn after(
        tree: &sled::Tree,
        seq: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Journaled)>> {
        let start = keys::key(keys::JOURNAL, &[&(seq.saturating_add(1)).to_be_bytes()]);
        let mut out = Vec::new();
        for kv in tree.range(start..) {
            let (k, v) = kv?;
            if k.first() != Some(&keys::JOURNAL) || out.len() >= limit {
                break;
            }
            out.push((seq_of(&k)?, Journaled::decode(&v)?));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_a_bad_value_is_refused() {
        let p = RecordId([7; 32]);
        for e in [
            Journaled::Record(p),
            Journaled::Milestone(Milestone::Threshold, p),
            Journaled::Milestone(Milestone::Funded, p),
            Journaled::Milestone(Milestone::Ended, p),
        ] {
            assert_eq!(Journaled::decode(&e.encode()).unwrap(), e);
        }
        assert_eq!(
            Journaled::Record(p).encode().len(),
            32,
            "as stores before milestones"
        );
        assert!(Journaled::decode(&[b'X'; 33]).is_err());
        assert!(Journaled::decode(&[0; 31]).is_err());
    }

    #[test]
    fn only_watched_topics_get_entries_numbered_in_order() {
        let j = Journal::default();
        let t = Topic::Producer(chorus_protocol::AuthorKey([1; 32]));
        let p = RecordId([2; 32]);
        assert!(j.entry(&t, Journaled::Record(p)).is_none());
        assert!(j.watch(&t));
        j.next.store(1, Ordering::Relaxed);
        let (a, ..) = j.entry(&t, Journaled::Record(p)).unwrap();
        let (b, _, v) = j
            .entry(&t, Journaled::Milestone(Milestone::Ended, p))
            .unwrap();
        assert_eq!((a, b, j.last()), (1, 2, 2));
        assert_eq!(v[0], b'E');
    }
}
