//! Catch-up sync, the protocol part (PROTOCOL.md §13): the sync keys records are reconciled
//! by, the pure range-based set reconciliation engine ([`reconcile`]) and the messages on the
//! wire ([`wire`]). When a node pulls and how it answers is the node's business.

pub mod reconcile;
pub mod wire;

pub use reconcile::{
    id_of, separator, Accumulator, Bound, Id, Key, MemoryIndex, Mode, Params, Part, RangeIndex,
    Scope, StepError, KEY_LEN,
};

use crate::record::{RecordId, Topic};

/// The protocol id of catch-up sync (request-response).
pub const PROTOCOL: &str = "/chorus/sync/1";

/// A topic as the first 33 bytes of a sync key: a tag (0 meta, 1 producer, 2 group) and 32
/// bytes (the producer's key, the group's id, zero for meta).
pub fn topic_bytes(t: &Topic) -> [u8; 33] {
    let mut b = [0u8; 33];
    match t {
        Topic::Meta => {}
        Topic::Producer(k) => {
            b[0] = 1;
            b[1..].copy_from_slice(k.as_bytes());
        }
        Topic::Group(g) => {
            b[0] = 2;
            b[1..].copy_from_slice(g.as_bytes());
        }
    }
    b
}

/// A record's sync key: `topic(33) || created_at(8, big-endian) || id(32)`.
pub fn key_of(topic: &Topic, created_at: u64, id: &RecordId) -> Key {
    let mut k = [0u8; KEY_LEN];
    k[..33].copy_from_slice(&topic_bytes(topic));
    k[33..41].copy_from_slice(&created_at.to_be_bytes());
    k[41..].copy_from_slice(id.as_bytes());
    k
}

/// The key range of one topic: from its 33 bytes (inclusive) to the next topic's (every key
/// that starts with them).
pub fn topic_range(topic: &Topic) -> (Vec<u8>, Bound) {
    let t = topic_bytes(topic);
    let mut end = t;
    // The tag byte is at most 2, so the increment never carries out of the first byte.
    for b in end.iter_mut().rev() {
        let (v, carry) = b.overflowing_add(1);
        *b = v;
        if !carry {
            break;
        }
    }
    (t.to_vec(), Bound::Below(end.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::AuthorKey;

    #[test]
    fn a_topic_range_holds_exactly_its_topics_keys() {
        let k = AuthorKey([0xff; 32]);
        let (lo, hi) = topic_range(&Topic::Producer(k));
        let inside = key_of(&Topic::Producer(k), u64::MAX, &RecordId([0xff; 32]));
        assert!(inside.as_slice() >= lo.as_slice() && hi.includes(&inside));
        let next = key_of(&Topic::Group(RecordId([0; 32])), 0, &RecordId([0; 32]));
        assert!(!hi.includes(&next));
        let before = key_of(
            &Topic::Producer(AuthorKey([0xfe; 32])),
            u64::MAX,
            &RecordId([0; 32]),
        );
        assert!(before.as_slice() < lo.as_slice());
        assert_eq!(
            &key_of(&Topic::Meta, 7, &RecordId([9; 32]))[..33],
            &[0u8; 33]
        );
    }
}
