//! Catch-up sync, the protocol part (PROTOCOL.md §13): the sync keys records are reconciled
//! by, the pure range-based set reconciliation engine ([`reconcile`]) and the messages on the
//! wire ([`wire`]). When a node pulls and how it answers is the node's business.

pub mod reconcile;
pub mod wire;

pub use reconcile::{
    id_of, separator, Accumulator, Bound, Id, Key, MemoryIndex, Mode, Params, Part, RangeIndex,
    Scope, StepError, KEY_LEN,
};

use crate::record::{AuthorKey, Kind, Record, RecordId, Topic};

/// The protocol id of catch-up sync (request-response). Version 2 places profiles apart
/// from the rest of `meta` ([`place_of`]).
pub const PROTOCOL: &str = "/chorus/sync/2";

/// The tag of the place where profiles lie in sync order: each author's profiles under
/// `3 || author` ([`place_of`]).
pub const PROFILES_TAG: u8 = 3;

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

/// Where a record lies in sync order, the first 33 bytes of its sync key: its topic's bytes
/// ([`topic_bytes`]), except for a profile, which lies under [`PROFILES_TAG`] and its
/// author's key. Profiles travel on `meta` but are reconciled apart from its groups and
/// attestations, so that a node can keep the profiles it uses and not every one
/// (PROTOCOL.md §13.2).
pub fn place_of(record: &Record) -> [u8; 33] {
    if record.kind() == Kind::Profile {
        profiles_place(&record.author)
    } else {
        topic_bytes(&record.topic)
    }
}

/// The place of one author's profiles: [`PROFILES_TAG`] and the key.
pub fn profiles_place(author: &AuthorKey) -> [u8; 33] {
    let mut b = [0u8; 33];
    b[0] = PROFILES_TAG;
    b[1..].copy_from_slice(author.as_bytes());
    b
}

/// A record's sync key: `place(33) || created_at(8, big-endian) || id(32)` ([`place_of`]).
pub fn record_key(record: &Record, id: &RecordId) -> Key {
    key_at(&place_of(record), record.created_at, id)
}

/// The sync key of a record of `topic` that is not a profile ([`record_key`]).
pub fn key_of(topic: &Topic, created_at: u64, id: &RecordId) -> Key {
    key_at(&topic_bytes(topic), created_at, id)
}

fn key_at(place: &[u8; 33], created_at: u64, id: &RecordId) -> Key {
    let mut k = [0u8; KEY_LEN];
    k[..33].copy_from_slice(place);
    k[33..41].copy_from_slice(&created_at.to_be_bytes());
    k[41..].copy_from_slice(id.as_bytes());
    k
}

/// The key range of one topic: from its 33 bytes (inclusive) to the next topic's (every key
/// that starts with them). `meta`'s range holds its groups and attestations, not its
/// profiles ([`profiles_range`]).
pub fn topic_range(topic: &Topic) -> (Vec<u8>, Bound) {
    place_range(topic_bytes(topic))
}

/// The key range of one author's profiles.
pub fn profiles_range(author: &AuthorKey) -> (Vec<u8>, Bound) {
    place_range(profiles_place(author))
}

/// The key range of every profile (what a node that keeps them all reconciles).
pub fn all_profiles_range() -> (Vec<u8>, Bound) {
    (vec![PROFILES_TAG], Bound::Below(vec![PROFILES_TAG + 1]))
}

fn place_range(t: [u8; 33]) -> (Vec<u8>, Bound) {
    let mut end = t;
    // The tag byte is at most 3, so the increment never carries out of the first byte.
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

    #[test]
    fn profiles_lie_apart_from_meta_each_authors_in_its_own_range() {
        use crate::record::{Admission, Body, Group, Profile, RecordBuilder, Role};
        let key = crate::SigningKey::from_bytes(&[7; 32]);
        let me = AuthorKey(key.verifying_key().to_bytes());
        let profile = RecordBuilder::new(Body::Profile(Profile {
            name: "Ada".into(),
            role: Role::Producer,
            about: None,
        }))
        .created_at(5)
        .sign(&key)
        .unwrap();
        let group = RecordBuilder::new(Body::Group(Group {
            name: "Ada's friends".into(),
            charter: None,
            admission: Admission::Open,
        }))
        .created_at(5)
        .sign(&key)
        .unwrap();
        assert_eq!(profile.record().topic, Topic::Meta);
        let p = record_key(profile.record(), &profile.id());
        let g = record_key(group.record(), &group.id());
        assert_eq!(g, key_of(&Topic::Meta, 5, &group.id()));
        let within =
            |(lo, hi): (Vec<u8>, Bound), k: &Key| k.as_slice() >= lo.as_slice() && hi.includes(k);
        assert!(within(topic_range(&Topic::Meta), &g));
        assert!(!within(topic_range(&Topic::Meta), &p));
        assert!(within(profiles_range(&me), &p));
        assert!(!within(profiles_range(&AuthorKey([8; 32])), &p));
        assert!(within(all_profiles_range(), &p));
        assert!(!within(all_profiles_range(), &g));
        assert_eq!(p[0], PROFILES_TAG);
        assert_eq!(&p[1..33], me.as_bytes());
    }
}
