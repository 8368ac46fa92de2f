//! The arrival journal: for the topics being watched (a producer's own feedback, and any
//! topic a `watch` asked for), the order in which records arrived here, so a watcher that
//! was away can be shown exactly what arrived since, whatever the records' own times.
//! Journal entries are written in the same write set as their records.

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

    /// For a record being stored: its journal entry (key, value), if its topic is watched.
    pub(crate) fn entry(&self, topic: &Topic, id: &RecordId) -> Option<(u64, Vec<u8>, Vec<u8>)> {
        let t = keys::topic_bytes(topic);
        let watched = self.topics.read().map(|s| s.contains(&t)).unwrap_or(false);
        if !watched {
            return None;
        }
        let seq = self.next.fetch_add(1, Ordering::Relaxed);
        let key = keys::key(keys::JOURNAL, &[&seq.to_be_bytes()]);
        Some((seq, key, id.as_bytes().to_vec()))
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

    /// Entries of `tree` after `seq`, oldest first, at most `limit`: (seq, record id).
    pub(crate) fn after(tree: &sled::Tree, seq: u64, limit: usize) -> Result<Vec<(u64, RecordId)>> {
        let start = keys::key(keys::JOURNAL, &[&(seq.saturating_add(1)).to_be_bytes()]);
        let mut out = Vec::new();
        for kv in tree.range(start..) {
            let (k, v) = kv?;
            if k.first() != Some(&keys::JOURNAL) || out.len() >= limit {
                break;
            }
            let id: [u8; 32] = v
                .as_ref()
                .try_into()
                .map_err(|_| Error::Corrupt("bad journal entry".into()))?;
            out.push((seq_of(&k)?, RecordId(id)));
        }
        Ok(out)
    }
}
