//! The key layout of the one sled tree that holds everything.
//!
//! One tree, so that a record, its index entries and the derived state it changes form one
//! write set, applied crash-atomically through a redo intent (kept in a second tree, see
//! [`super::intent`]). The first byte of a key says what it is:
//!
//! | prefix | key after the prefix                         | value                         |
//! |--------|----------------------------------------------|-------------------------------|
//! | `r`    | id                                           | topic(33) created_at(8): where the record is |
//! | `t`    | topic(33) created_at(8, BE) id               | wire bytes, verbatim: records in topic/time (sync) order |
//! | `a`    | author created_at id                         | empty                         |
//! | `g`    | target created_at id                         | empty                         |
//! | `p`    | product(64) created_at id                    | empty                         |
//! | `w`    | target id                                    | wire of a record waiting for its target |
//! | `s`    | slot class(1) slot key                       | [`crate::tally::Slot`] (latest state wins) |
//! | `T`    | petition id                                  | [`crate::tally::PetitionTally`] |
//! | `R`    | product(64)                                  | [`crate::tally::Rating`]      |
//! | `G`    | group id                                     | [`crate::tally::GroupTally`]  |
//! | `q`    | group id, petition id                        | empty: petitions of a group   |
//! | `e`    | seq(8, BE)                                   | id: arrival journal of watched topics |
//! | `j`    | topic(33)                                    | empty: topics whose arrivals are journaled |
//! | `m`    | `count`                                      | number of records stored      |
//! | `v`    | `format`                                     | [`FORMAT_VERSION`]            |
//!
//! Slots and petition tallies are in the compact encoding of [`super::codec`]; ratings,
//! group tallies and the count are CBOR.
//! Topics are 33 bytes: a tag (0 meta, 1 producer, 2 group) and 32 bytes (zero for meta).
//! Products are 64 bytes: the producer's key and BLAKE3 of the product code.

use chorus_protocol::{AuthorKey, ProductRef, RecordId, Topic};

pub(crate) const RECORD: u8 = b'r';
pub(crate) const TOPIC: u8 = b't';
pub(crate) const AUTHOR: u8 = b'a';
pub(crate) const TARGET: u8 = b'g';
pub(crate) const PRODUCT: u8 = b'p';
pub(crate) const WAITING: u8 = b'w';
pub(crate) const SLOT: u8 = b's';
pub(crate) const PETITION_TALLY: u8 = b'T';
pub(crate) const RATING: u8 = b'R';
pub(crate) const GROUP_TALLY: u8 = b'G';
pub(crate) const GROUP_PETITION: u8 = b'q';
pub(crate) const JOURNAL: u8 = b'e';
pub(crate) const JOURNALED: u8 = b'j';

/// The key marking the store's encoding of derived state.
pub(crate) const FORMAT: &[u8] = b"vformat";
/// 2: slots and petition tallies are compact ([`super::codec`]); 1 (no marker): CBOR maps.
pub(crate) const FORMAT_VERSION: u8 = 2;

/// Prefixes of derived state: what `recompute` rebuilds and compares.
pub(crate) const DERIVED: [u8; 5] = [SLOT, PETITION_TALLY, RATING, GROUP_TALLY, GROUP_PETITION];

pub(crate) fn topic_bytes(t: &Topic) -> [u8; 33] {
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

pub(crate) fn product_bytes(p: &ProductRef) -> [u8; 64] {
    product_bytes_of(&p.producer, &p.code)
}

pub(crate) fn product_bytes_of(producer: &AuthorKey, code: &str) -> [u8; 64] {
    let mut b = [0u8; 64];
    b[..32].copy_from_slice(producer.as_bytes());
    b[32..].copy_from_slice(blake3::hash(code.as_bytes()).as_bytes());
    b
}

/// `prefix || parts...`
pub(crate) fn key(prefix: u8, parts: &[&[u8]]) -> Vec<u8> {
    let len = 1 + parts.iter().map(|p| p.len()).sum::<usize>();
    let mut k = Vec::with_capacity(len);
    k.push(prefix);
    for p in parts {
        k.extend_from_slice(p);
    }
    k
}

/// The id-index key of a record (its value says where the record is).
pub(crate) fn record(id: &RecordId) -> Vec<u8> {
    key(RECORD, &[id.as_bytes()])
}

/// The value of a record's id-index entry.
pub(crate) fn location(topic: &Topic, created_at: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(41);
    v.extend_from_slice(&topic_bytes(topic));
    v.extend_from_slice(&created_at.to_be_bytes());
    v
}

/// The key holding a record's wire bytes, from its id-index value.
pub(crate) fn stored_at(location: &[u8], id: &RecordId) -> Vec<u8> {
    key(TOPIC, &[location, id.as_bytes()])
}

/// An index key ending in `created_at || id`, from which the id is the last 32 bytes.
pub(crate) fn timed(prefix: u8, head: &[u8], created_at: u64, id: &RecordId) -> Vec<u8> {
    key(prefix, &[head, &created_at.to_be_bytes(), id.as_bytes()])
}

/// The `(created_at, id)` at the end of a timed index key.
pub(crate) fn timed_tail(k: &[u8]) -> Option<(u64, RecordId)> {
    let n = k.len();
    if n < 41 {
        return None;
    }
    let at = u64::from_be_bytes(k[n - 40..n - 32].try_into().ok()?);
    let id: [u8; 32] = k[n - 32..].try_into().ok()?;
    Some((at, RecordId(id)))
}
