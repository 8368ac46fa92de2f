//! The key layout of the one sled tree that holds everything.
//!
//! One tree, so that a record, its index entries and the derived state it changes form one
//! write set, applied crash-atomically through a redo intent (kept in a second tree, see
//! [`super::intent`]). The first byte of a key says what it is:
//!
//! | prefix | key after the prefix                         | value                         |
//! |--------|----------------------------------------------|-------------------------------|
//! | `r`    | id                                           | place(33) created_at(8): where the record is |
//! | `t`    | place(33) created_at(8, BE) id               | wire bytes, verbatim: records in sync order (a place is a topic, or `3 author` for a profile) |
//! | `a`    | author created_at id                         | empty: attestations by author (stores written before 2026-12-07 hold every record's) |
//! | `g`    | target created_at id                         | empty                         |
//! | `p`    | product(64) created_at id                    | empty                         |
//! | `w`    | target id                                    | wire of a record waiting for its target |
//! | `s`    | slot class(1) slot key ([`SlotKey`])         | [`super::values::Slot`] (latest state wins) |
//! | `T`    | petition id                                  | [`super::values::PetitionTally`] |
//! | `R`    | product(64)                                  | [`super::values::Rating`]     |
//! | `G`    | group id                                     | [`super::values::GroupTally`] |
//! | `q`    | group id, petition id                        | empty: petitions of a group   |
//! | `h`    | petition id, created_at(8, BE), id           | author(32) on(1) pledge(8, BE): every endorsement and retraction of one that counts for the petition (made before it closed), in (`created_at`, id) order |
//! | `e`    | seq(8, BE)                                   | id, or a milestone's tag(1) and a petition id: arrival journal of watched topics ([`super::journal`]) |
//! | `j`    | topic(33)                                    | empty: topics whose arrivals are journaled |
//! | `L`    | petition id                                  | stored here (ms, BE), before its deadline |
//! | `L`    | petition id, endorsement id                  | first stored here (ms, BE): an endorsement that arrived well after the deadline of a petition held since before it, made (it says) before it |
//! | `N`    | petition id                                  | noted here (ms, BE): a campaign whose end this node has announced |
//! | `W`    | word(≤24) 0x00 id                            | kinds(1): the words of names, titles and product codes ([`super::search`]) |
//! | `m`    | `count`                                      | number of records stored      |
//! | `v`    | `format`                                     | [`FORMAT_VERSION`]            |
//!
//! Slots and petition tallies are in the compact encoding of [`super::codec`]; ratings,
//! group tallies and the count are CBOR.
//! Topics are 33 bytes: a tag (0 meta, 1 producer, 2 group) and 32 bytes (zero for meta), as
//! in a sync key (`chorus_protocol::sync::topic_bytes`); a place is a topic, or for a profile
//! tag 3 and its author (`chorus_protocol::sync::place_of`): a `t` key is `t` and a record's
//! sync key. Products are 64 bytes ([`ProductKey`]): the producer's key and BLAKE3 of the code.

use chorus_protocol::{AuthorKey, ProductRef, RecordId};

pub(crate) use chorus_protocol::sync::topic_bytes;

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
pub(crate) const LATE: u8 = b'L';
pub(crate) const HISTORY: u8 = b'h';
pub(crate) const ENDED: u8 = b'N';
pub(crate) const WORD: u8 = b'W';

/// The key marking the store's encoding of derived state.
pub(crate) const FORMAT: &[u8] = b"vformat";
/// 5: profiles lie under their author's place (`3 || author`), not under `meta`, in the `t`
/// keys and the sync index (`chorus_protocol::sync::place_of`; moved when an older store
/// opens); 4: the word index (`W`) is kept (written for the stored records when an older store
/// opens); 3: petition tallies carry `first_reached_at`, `withdrawn_at`, `funded` and `latest_at`,
/// and the `h` history of each petition is kept (derived state is rebuilt from the records
/// when a store of an older version opens); 2: slots and petition tallies are compact
/// ([`super::codec`]); 1 (no marker): CBOR maps.
pub(crate) const FORMAT_VERSION: u8 = 5;

/// The key of the number of records stored.
pub(crate) const COUNT: &[u8] = b"mcount";

/// Prefixes of derived state: what a recomputation rebuilds and compares (with [`COUNT`]).
pub(crate) const DERIVED: [u8; 6] = [
    SLOT,
    PETITION_TALLY,
    RATING,
    GROUP_TALLY,
    GROUP_PETITION,
    HISTORY,
];

/// A product as the store keys it: the producer's key and BLAKE3 of the product code (so
/// every product key has the same length whatever the code).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct ProductKey([u8; 64]);

impl ProductKey {
    pub(crate) fn of(producer: &AuthorKey, code: &str) -> Self {
        let mut b = [0u8; 64];
        b[..32].copy_from_slice(producer.as_bytes());
        b[32..].copy_from_slice(blake3::hash(code.as_bytes()).as_bytes());
        ProductKey(b)
    }

    pub(crate) fn of_ref(p: &ProductRef) -> Self {
        Self::of(&p.producer, &p.code)
    }

    pub(crate) fn as_bytes(&self) -> &[u8; 64] {
        &self.0
    }
}

/// What a slot holds the competing states of (each class has its own key space).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SlotClass {
    /// An author's endorsement of a petition (key: petition, author).
    Endorsement,
    /// An author's review of a product (key: product, author).
    Review,
    /// A key's join of a group (key: group, member).
    Join,
    /// The founder's admission of a key to a group (key: group, member).
    Admit,
    /// An author's profile (key: author).
    Profile,
    /// The targeted producer's response to a petition or review (key: target, producer).
    Response,
    /// The withdrawal of a petition by its author (key: petition).
    Withdrawal,
}

impl SlotClass {
    /// The class byte after the `s` prefix.
    const fn byte(self) -> u8 {
        match self {
            SlotClass::Endorsement => b'E',
            SlotClass::Review => b'V',
            SlotClass::Join => b'J',
            SlotClass::Admit => b'M',
            SlotClass::Profile => b'F',
            SlotClass::Response => b'S',
            SlotClass::Withdrawal => b'W',
        }
    }
}

/// The key of one slot.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct SlotKey(Vec<u8>);

impl SlotKey {
    fn new(class: SlotClass, parts: &[&[u8]]) -> Self {
        let mut all: Vec<&[u8]> = vec![std::slice::from_ref(&SLOT)];
        let class = [class.byte()];
        all.push(&class);
        all.extend_from_slice(parts);
        SlotKey(all.concat())
    }
    pub(crate) fn endorsement(petition: &RecordId, author: &AuthorKey) -> Self {
        Self::new(
            SlotClass::Endorsement,
            &[petition.as_bytes(), author.as_bytes()],
        )
    }
    pub(crate) fn review(product: &ProductKey, author: &AuthorKey) -> Self {
        Self::new(SlotClass::Review, &[product.as_bytes(), author.as_bytes()])
    }
    pub(crate) fn join(group: &RecordId, member: &AuthorKey) -> Self {
        Self::new(SlotClass::Join, &[group.as_bytes(), member.as_bytes()])
    }
    pub(crate) fn admit(group: &RecordId, member: &AuthorKey) -> Self {
        Self::new(SlotClass::Admit, &[group.as_bytes(), member.as_bytes()])
    }
    pub(crate) fn profile(author: &AuthorKey) -> Self {
        Self::new(SlotClass::Profile, &[author.as_bytes()])
    }
    pub(crate) fn response(target: &RecordId, producer: &AuthorKey) -> Self {
        Self::new(
            SlotClass::Response,
            &[target.as_bytes(), producer.as_bytes()],
        )
    }
    pub(crate) fn withdrawal(petition: &RecordId) -> Self {
        Self::new(SlotClass::Withdrawal, &[petition.as_bytes()])
    }
    /// The prefix of every join slot of a group (in member order).
    pub(crate) fn joins_of(group: &RecordId) -> Vec<u8> {
        Self::new(SlotClass::Join, &[group.as_bytes()]).0
    }
    /// The prefix of every admit slot of a group (in member order).
    pub(crate) fn admits_of(group: &RecordId) -> Vec<u8> {
        Self::new(SlotClass::Admit, &[group.as_bytes()]).0
    }
    /// The prefix of every endorsement slot of a petition (in author order).
    pub(crate) fn endorsements_of(petition: &RecordId) -> Vec<u8> {
        Self::new(SlotClass::Endorsement, &[petition.as_bytes()]).0
    }
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.0
    }
    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.0
    }
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

/// The value of a record's id-index entry: its place in sync order
/// (`chorus_protocol::sync::place_of`: its topic, or for a profile its author's place) and
/// its time.
pub(crate) fn location(place: &[u8; 33], created_at: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(41);
    v.extend_from_slice(place);
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

/// The id at bytes `at..at + 32` of a key.
pub(crate) fn id_at(k: &[u8], at: usize) -> Option<RecordId> {
    k.get(at..at.checked_add(32)?)
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .map(RecordId)
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
