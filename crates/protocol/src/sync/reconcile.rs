//! Range-based set reconciliation (after Meyer, "Range-Based Set Reconciliation", 2023), pure:
//! no I/O, generic over the index that answers range queries.
//!
//! Items are 73-byte **sync keys**, `topic(33) || created_at(8, BE) || id(32)`, compared as
//! bytes: the order of the store's topic/time index, so a topic is a contiguous key range.
//! A range runs from an inclusive lower bound to an exclusive upper [`Bound`]; bounds are key
//! prefixes (`Below(p)`: every key that sorts before `p`), so a splitter can choose the
//! shortest prefix that separates two neighbouring keys.
//!
//! The exchange is a **pull**: the initiator learns which records the responder holds that it
//! lacks (each side of a connection pulls for itself). A message is a list of parts, each
//! covering the range from the previous part's upper bound (or the start) to its own:
//!
//! - `Skip`: nothing to do for this range;
//! - `Fingerprint(fp)`: the sender's fingerprint of the range;
//! - `Have(prefixes)` (initiator only): the initiator's ids in the range, as 8-byte
//!   prefixes; the responder answers with the full ids of its own items that are not listed;
//! - `Ids(ids)` (responder only): ids the responder holds in the range; the initiator
//!   fetches those it lacks, and the range is settled.
//!
//! Only ranges that differ are split, so the cost follows the difference between the sets,
//! not their size: identical sets settle in one round trip of one part each way.
//!
//! The fingerprint of a range is `BLAKE3(count_le64 || sum_le256)` truncated to 16 bytes,
//! where `sum` is the sum of the ids read as little-endian 256-bit numbers, mod 2^256. It
//! is additive (and subtractive), so an index can keep prefix sums.

use std::collections::HashSet;

/// Length of a sync key: topic(33) created_at(8) id(32).
pub const KEY_LEN: usize = 73;
/// Bytes of a fingerprint.
pub const FP_LEN: usize = 16;
/// Bytes of an id prefix in a `Have` list.
pub const PREFIX_LEN: usize = 8;

/// A sync key.
pub type Key = [u8; KEY_LEN];
/// A record id.
pub type Id = [u8; 32];
/// A range fingerprint.
pub type Fingerprint = [u8; FP_LEN];
/// An id prefix.
pub type Prefix = [u8; PREFIX_LEN];

/// The id at the end of a sync key.
pub fn id_of(k: &Key) -> Id {
    let mut id = [0u8; 32];
    id.copy_from_slice(&k[KEY_LEN - 32..]);
    id
}

fn prefix_of(id: &Id) -> Prefix {
    let mut p = [0u8; PREFIX_LEN];
    p.copy_from_slice(&id[..PREFIX_LEN]);
    p
}

/// The exclusive upper bound of a range.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Bound {
    /// Every key that sorts before these bytes.
    Below(Vec<u8>),
    /// Everything.
    End,
}

impl Bound {
    /// Is this key below the bound?
    pub fn includes(&self, key: &[u8]) -> bool {
        match self {
            Bound::Below(b) => key < b.as_slice(),
            Bound::End => true,
        }
    }

    /// Is the bound strictly above an inclusive lower bound?
    fn above(&self, lower: &[u8]) -> bool {
        match self {
            Bound::Below(b) => b.as_slice() > lower,
            Bound::End => true,
        }
    }
}

/// The shortest prefix of `key` that sorts above `prev` (`prev < key`): a split bound.
pub fn separator(prev: &[u8], key: &[u8]) -> Vec<u8> {
    let common = prev.iter().zip(key).take_while(|(a, b)| a == b).count();
    key[..(common + 1).min(key.len())].to_vec()
}

/// What a part says about its range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Nothing to do.
    Skip,
    /// The sender's fingerprint of the range.
    Fingerprint(Fingerprint),
    /// The initiator's ids in the range, as prefixes, in key order.
    Have(Vec<Prefix>),
    /// Ids the responder holds in the range.
    Ids(Vec<Id>),
}

/// One range of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// Exclusive upper bound; the lower bound is the previous part's upper bound.
    pub upper: Bound,
    /// What the sender says about the range.
    pub mode: Mode,
}

/// A message that breaks the rules of the exchange.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    /// Bounds must increase strictly and the last must be `End`.
    #[error("part bounds do not increase to the end")]
    Bounds,
    /// A mode the sender's role may not use.
    #[error("unexpected part mode for this side")]
    Mode,
    /// Over a size limit.
    #[error("message over its size limit")]
    TooLarge,
}

/// Errors of a reconciliation step: the index failed, or the message is malformed.
#[derive(Debug, thiserror::Error)]
pub enum StepError<E> {
    /// The index failed.
    #[error("index: {0}")]
    Index(E),
    /// The other side broke the rules.
    #[error("malformed message: {0}")]
    Malformed(#[from] Malformed),
}

/// Accumulates a fingerprint: a count and a sum of ids mod 2^256.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Accumulator {
    count: u64,
    sum: [u64; 4],
}

fn limbs(id: &Id) -> [u64; 4] {
    let mut l = [0u64; 4];
    for (i, limb) in l.iter_mut().enumerate() {
        let mut w = [0u8; 8];
        w.copy_from_slice(&id[i * 8..i * 8 + 8]);
        *limb = u64::from_le_bytes(w);
    }
    l
}

impl Accumulator {
    /// Adds an id (as a little-endian 256-bit number, mod 2^256).
    pub fn add(&mut self, id: &Id) {
        self.merge(&Accumulator {
            count: 1,
            sum: limbs(id),
        });
    }

    /// Combines with a disjoint range's accumulator.
    pub fn merge(&mut self, other: &Accumulator) {
        self.count = self.count.wrapping_add(other.count);
        let mut carry = 0u128;
        for i in 0..4 {
            let v = u128::from(self.sum[i]) + u128::from(other.sum[i]) + carry;
            self.sum[i] = v as u64;
            carry = v >> 64;
        }
    }

    /// Removes a sub-range's accumulator (`self` must include it).
    pub fn subtract(&mut self, other: &Accumulator) {
        self.count = self.count.wrapping_sub(other.count);
        let mut borrow = false;
        for i in 0..4 {
            let (v, b1) = self.sum[i].overflowing_sub(other.sum[i]);
            let (v, b2) = v.overflowing_sub(u64::from(borrow));
            self.sum[i] = v;
            borrow = b1 || b2;
        }
    }

    /// Number of items.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Length of [`Accumulator::to_bytes`].
    pub const BYTES: usize = 40;

    /// The accumulator as bytes (count, then the four limbs of the sum, little-endian), for
    /// a node that keeps its index across restarts.
    pub fn to_bytes(&self) -> [u8; Self::BYTES] {
        let mut out = [0u8; Self::BYTES];
        out[..8].copy_from_slice(&self.count.to_le_bytes());
        for (i, l) in self.sum.iter().enumerate() {
            out[8 + 8 * i..16 + 8 * i].copy_from_slice(&l.to_le_bytes());
        }
        out
    }

    /// The accumulator [`Accumulator::to_bytes`] gave.
    pub fn from_bytes(b: &[u8; Self::BYTES]) -> Self {
        let word = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[8 * i..8 * i + 8]);
            u64::from_le_bytes(w)
        };
        Accumulator {
            count: word(0),
            sum: [word(1), word(2), word(3), word(4)],
        }
    }

    /// The fingerprint.
    pub fn fingerprint(&self) -> Fingerprint {
        let mut h = blake3::Hasher::new();
        h.update(&self.count.to_le_bytes());
        for l in self.sum {
            h.update(&l.to_le_bytes());
        }
        let mut out = [0u8; FP_LEN];
        out.copy_from_slice(&h.finalize().as_bytes()[..FP_LEN]);
        out
    }
}

/// Range queries over one side's keys. `lower` is inclusive (empty: from the start).
pub trait RangeIndex {
    /// Error of the index.
    type Error;
    /// The accumulated fingerprint of a range.
    fn accumulate(&self, lower: &[u8], upper: &Bound) -> Result<Accumulator, Self::Error>;
    /// The keys of a range, in order, at most `limit`.
    fn keys(&self, lower: &[u8], upper: &Bound, limit: usize) -> Result<Vec<Key>, Self::Error>;
    /// Bounds that split a range of `count` keys into about `parts` runs of about equal
    /// size, increasing, each strictly inside the range; the last one is `upper` itself.
    fn split(
        &self,
        lower: &[u8],
        upper: &Bound,
        count: u64,
        parts: usize,
    ) -> Result<Vec<Bound>, Self::Error>;
    /// Is a record with this id held?
    fn contains(&self, id: &Id) -> Result<bool, Self::Error>;
}

/// Tuning and limits.
#[derive(Debug, Clone, Copy)]
pub struct Params {
    /// Sub-ranges a large differing range is split into.
    pub branches: usize,
    /// Sub-ranges a differing range of at most `fine_below` keys is split into (few
    /// differences are expected there, so fewer fingerprints are wasted).
    pub fine_branches: usize,
    /// See `fine_branches`.
    pub fine_below: u64,
    /// The initiator lists its ids (as prefixes) for a differing range of at most this many.
    pub have_max: u64,
    /// The responder lists all its ids for a range of at most this many.
    pub ids_max: u64,
    /// The responder answers a `Have` with ids when its range holds at most this many.
    pub list_max: u64,
    /// Most parts in one message (at most [`super::wire::MAX_PARTS`], which decoding
    /// enforces).
    pub max_parts: usize,
    /// Most ids (or prefixes) in one message (at most [`super::wire::MAX_IDS`]).
    pub max_ids: usize,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            branches: 16,
            fine_branches: 4,
            fine_below: 4096,
            have_max: 32,
            ids_max: 2,
            list_max: 4096,
            max_parts: super::wire::MAX_PARTS,
            max_ids: super::wire::MAX_IDS,
        }
    }
}

impl Params {
    fn branches_for(&self, count: u64) -> usize {
        if count > self.fine_below {
            self.branches
        } else {
            self.fine_branches
        }
        .max(2)
    }
}

/// A scope: the ranges to reconcile, as `(inclusive lower, upper)`, sorted and disjoint.
pub type Scope = Vec<(Vec<u8>, Bound)>;

/// Checks a received message: bounds increase strictly to `End`, sizes within limits.
pub fn check(msg: &[Part], p: &Params) -> Result<(), Malformed> {
    if msg.len() > p.max_parts {
        return Err(Malformed::TooLarge);
    }
    let mut ids = 0usize;
    let mut lower: &[u8] = &[];
    let mut ended = false;
    for part in msg {
        if ended || !part.upper.above(lower) {
            return Err(Malformed::Bounds);
        }
        match &part.upper {
            Bound::Below(b) => lower = b,
            Bound::End => ended = true,
        }
        ids += match &part.mode {
            Mode::Have(h) => h.len(),
            Mode::Ids(i) => i.len(),
            _ => 0,
        };
    }
    if !ended && !msg.is_empty() {
        return Err(Malformed::Bounds);
    }
    if ids > p.max_ids {
        return Err(Malformed::TooLarge);
    }
    Ok(())
}

/// Merges neighbouring `Skip` parts; an all-`Skip` message becomes empty (done).
fn finish(parts: Vec<Part>) -> Vec<Part> {
    let mut out: Vec<Part> = Vec::with_capacity(parts.len());
    for part in parts {
        if part.mode == Mode::Skip {
            if let Some(last) = out.last_mut() {
                if last.mode == Mode::Skip {
                    last.upper = part.upper;
                    continue;
                }
            }
        }
        out.push(part);
    }
    if out.iter().all(|p| p.mode == Mode::Skip) {
        out.clear();
    }
    out
}

fn skip(upper: Bound) -> Part {
    Part {
        upper,
        mode: Mode::Skip,
    }
}

fn next_lower(upper: &Bound) -> Vec<u8> {
    match upper {
        Bound::Below(b) => b.clone(),
        // Nothing follows End; an empty lower would be wrong, but no part follows it.
        Bound::End => Vec::new(),
    }
}

/// The initiator's first message over a scope.
pub fn open<I: RangeIndex>(index: &I, scope: &Scope) -> Result<Vec<Part>, I::Error> {
    let mut out = Vec::new();
    let mut at: Vec<u8> = Vec::new();
    for (lo, hi) in scope {
        if lo.as_slice() > at.as_slice() {
            out.push(skip(Bound::Below(lo.clone())));
        }
        let acc = index.accumulate(lo, hi)?;
        let mode = if acc.count() == 0 {
            Mode::Have(Vec::new())
        } else {
            Mode::Fingerprint(acc.fingerprint())
        };
        out.push(Part {
            upper: hi.clone(),
            mode,
        });
        match hi {
            Bound::Below(b) => at = b.clone(),
            Bound::End => return Ok(out),
        }
    }
    out.push(skip(Bound::End));
    Ok(out)
}

/// Splits a range into sub-ranges described by `describe`.
fn split_into<I: RangeIndex>(
    index: &I,
    lower: &[u8],
    upper: &Bound,
    count: u64,
    p: &Params,
    out: &mut Vec<Part>,
    mut describe: impl FnMut(&I, Accumulator, &[u8], &Bound) -> Result<Mode, I::Error>,
) -> Result<(), I::Error> {
    let bounds = index.split(lower, upper, count, p.branches_for(count))?;
    let mut sub_lower = lower.to_vec();
    for b in bounds {
        let acc = index.accumulate(&sub_lower, &b)?;
        let mode = describe(index, acc, &sub_lower, &b)?;
        sub_lower = next_lower(&b);
        out.push(Part { upper: b, mode });
    }
    Ok(())
}

/// The initiator's answer to a responder's message; collects the ids it needs. An empty
/// answer means the exchange is over.
pub fn pull<I: RangeIndex>(
    index: &I,
    msg: &[Part],
    p: &Params,
    need: &mut Vec<Id>,
) -> Result<Vec<Part>, StepError<I::Error>> {
    check(msg, p)?;
    let mut out: Vec<Part> = Vec::new();
    let mut lower: Vec<u8> = Vec::new();
    let mut listed = 0usize;
    for (n, part) in msg.iter().enumerate() {
        // Every part still to answer needs at least one part of the answer.
        let full = out.len() + p.branches + (msg.len() - n) >= p.max_parts;
        match &part.mode {
            Mode::Skip => out.push(skip(part.upper.clone())),
            Mode::Have(_) => return Err(Malformed::Mode.into()),
            Mode::Ids(ids) => {
                for id in ids {
                    if !index.contains(id).map_err(StepError::Index)? {
                        need.push(*id);
                    }
                }
                out.push(skip(part.upper.clone()));
            }
            Mode::Fingerprint(theirs) => {
                let acc = index
                    .accumulate(&lower, &part.upper)
                    .map_err(StepError::Index)?;
                if acc.fingerprint() == *theirs {
                    out.push(skip(part.upper.clone()));
                } else if acc.count() <= p.have_max && listed + (acc.count() as usize) <= p.max_ids
                {
                    let keys = index
                        .keys(&lower, &part.upper, p.have_max as usize)
                        .map_err(StepError::Index)?;
                    listed += keys.len();
                    out.push(Part {
                        upper: part.upper.clone(),
                        mode: Mode::Have(keys.iter().map(|k| prefix_of(&id_of(k))).collect()),
                    });
                } else if acc.count() <= p.have_max || full {
                    // Over this message's budget: ask again next round.
                    out.push(Part {
                        upper: part.upper.clone(),
                        mode: Mode::Fingerprint(acc.fingerprint()),
                    });
                } else {
                    split_into(
                        index,
                        &lower,
                        &part.upper,
                        acc.count(),
                        p,
                        &mut out,
                        |_, sub, _, _| {
                            Ok(if sub.count() == 0 {
                                Mode::Have(Vec::new())
                            } else {
                                Mode::Fingerprint(sub.fingerprint())
                            })
                        },
                    )
                    .map_err(StepError::Index)?;
                }
            }
        }
        lower = next_lower(&part.upper);
    }
    Ok(finish(out))
}

/// The responder's answer to an initiator's message.
pub fn serve<I: RangeIndex>(
    index: &I,
    msg: &[Part],
    p: &Params,
) -> Result<Vec<Part>, StepError<I::Error>> {
    check(msg, p)?;
    let mut out: Vec<Part> = Vec::new();
    let mut lower: Vec<u8> = Vec::new();
    let mut sent = 0usize;
    let full_at = |out_len: usize, n: usize| out_len + p.branches + (msg.len() - n) >= p.max_parts;
    // Describes a sub-range after a split: small ones as their ids, others by fingerprint.
    let describe = |index: &I,
                    acc: Accumulator,
                    lo: &[u8],
                    hi: &Bound,
                    sent: &mut usize|
     -> Result<Mode, I::Error> {
        if acc.count() <= p.ids_max && *sent + acc.count() as usize <= p.max_ids {
            let keys = index.keys(lo, hi, p.ids_max as usize)?;
            *sent += keys.len();
            Ok(Mode::Ids(keys.iter().map(id_of).collect()))
        } else {
            Ok(Mode::Fingerprint(acc.fingerprint()))
        }
    };
    for (n, part) in msg.iter().enumerate() {
        let full = full_at(out.len(), n);
        let upper = &part.upper;
        match &part.mode {
            Mode::Skip => out.push(skip(upper.clone())),
            Mode::Ids(_) => return Err(Malformed::Mode.into()),
            Mode::Fingerprint(theirs) => {
                let acc = index.accumulate(&lower, upper).map_err(StepError::Index)?;
                if acc.fingerprint() == *theirs {
                    out.push(skip(upper.clone()));
                } else if acc.count() <= p.have_max || full {
                    // Small (the initiator will list its ids) or over budget: echo.
                    let mode =
                        describe(index, acc, &lower, upper, &mut sent).map_err(StepError::Index)?;
                    out.push(Part {
                        upper: upper.clone(),
                        mode,
                    });
                } else {
                    split_into(
                        index,
                        &lower,
                        upper,
                        acc.count(),
                        p,
                        &mut out,
                        |ix, sub, lo, hi| describe(ix, sub, lo, hi, &mut sent),
                    )
                    .map_err(StepError::Index)?;
                }
            }
            Mode::Have(theirs) => {
                let acc = index.accumulate(&lower, upper).map_err(StepError::Index)?;
                if acc.count() <= p.list_max && sent + acc.count() as usize <= p.max_ids {
                    let listed: HashSet<&Prefix> = theirs.iter().collect();
                    let keys = index
                        .keys(&lower, upper, p.list_max as usize)
                        .map_err(StepError::Index)?;
                    let ids: Vec<Id> = keys
                        .iter()
                        .map(id_of)
                        .filter(|id| !listed.contains(&prefix_of(id)))
                        .collect();
                    sent += ids.len();
                    out.push(Part {
                        upper: upper.clone(),
                        mode: Mode::Ids(ids),
                    });
                } else if acc.count() <= p.list_max || full {
                    out.push(Part {
                        upper: upper.clone(),
                        mode: Mode::Fingerprint(acc.fingerprint()),
                    });
                } else {
                    split_into(
                        index,
                        &lower,
                        upper,
                        acc.count(),
                        p,
                        &mut out,
                        |ix, sub, lo, hi| describe(ix, sub, lo, hi, &mut sent),
                    )
                    .map_err(StepError::Index)?;
                }
            }
        }
        lower = next_lower(upper);
    }
    // The responder answers every range, even when nothing is left to say, so the
    // initiator can tell the exchange is over from an all-Skip (empty) answer.
    Ok(finish(out))
}

/// An in-memory index (tests, and small sets).
#[derive(Debug, Clone, Default)]
pub struct MemoryIndex(pub std::collections::BTreeSet<Key>);

impl MemoryIndex {
    fn range<'a>(&'a self, lower: &[u8], upper: &'a Bound) -> impl Iterator<Item = &'a Key> + 'a {
        let mut start = [0u8; KEY_LEN];
        let n = lower.len().min(KEY_LEN);
        start[..n].copy_from_slice(&lower[..n]);
        let lower = lower.to_vec();
        self.0
            .range(start..)
            .skip_while(move |k| k.as_slice() < lower.as_slice())
            .take_while(move |k| upper.includes(k.as_slice()))
    }
}

impl RangeIndex for MemoryIndex {
    type Error = std::convert::Infallible;
    fn accumulate(&self, lower: &[u8], upper: &Bound) -> Result<Accumulator, Self::Error> {
        let mut a = Accumulator::default();
        for k in self.range(lower, upper) {
            a.add(&id_of(k));
        }
        Ok(a)
    }
    fn keys(&self, lower: &[u8], upper: &Bound, limit: usize) -> Result<Vec<Key>, Self::Error> {
        Ok(self.range(lower, upper).take(limit).copied().collect())
    }
    fn split(
        &self,
        lower: &[u8],
        upper: &Bound,
        count: u64,
        parts: usize,
    ) -> Result<Vec<Bound>, Self::Error> {
        let per = (count as usize).div_ceil(parts.max(1)).max(1);
        let keys: Vec<&Key> = self.range(lower, upper).collect();
        let mut out: Vec<Bound> = (1..keys.len())
            .filter(|n| n % per == 0)
            .map(|n| Bound::Below(separator(keys[n - 1], keys[n])))
            .collect();
        out.push(upper.clone());
        Ok(out)
    }
    fn contains(&self, id: &Id) -> Result<bool, Self::Error> {
        Ok(self.0.iter().any(|k| id_of(k) == *id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::sync_key as key;
    use proptest::prelude::*;

    #[test]
    fn accumulator_bytes_round_trip() {
        let mut a = Accumulator::default();
        for i in 0..300u32 {
            let mut id = [0xffu8; 32];
            id[..4].copy_from_slice(&i.to_le_bytes());
            a.add(&id);
        }
        let b = Accumulator::from_bytes(&a.to_bytes());
        assert_eq!(b, a);
        assert_eq!(b.count(), 300);
        assert_eq!(b.fingerprint(), a.fingerprint());
    }

    /// A hashed-id index for fast `contains` in tests.
    struct Fast(MemoryIndex, HashSet<Id>);

    impl Fast {
        fn new(keys: impl IntoIterator<Item = Key>) -> Self {
            let m = MemoryIndex(keys.into_iter().collect());
            let ids = m.0.iter().map(id_of).collect();
            Fast(m, ids)
        }
    }

    impl RangeIndex for Fast {
        type Error = std::convert::Infallible;
        fn accumulate(&self, l: &[u8], u: &Bound) -> Result<Accumulator, Self::Error> {
            self.0.accumulate(l, u)
        }
        fn keys(&self, l: &[u8], u: &Bound, n: usize) -> Result<Vec<Key>, Self::Error> {
            self.0.keys(l, u, n)
        }
        fn split(&self, l: &[u8], u: &Bound, c: u64, n: usize) -> Result<Vec<Bound>, Self::Error> {
            self.0.split(l, u, c, n)
        }
        fn contains(&self, id: &Id) -> Result<bool, Self::Error> {
            Ok(self.1.contains(id))
        }
    }

    /// Runs a whole pull; returns (round trips, parts sent both ways, what was needed).
    fn run<I: RangeIndex<Error = std::convert::Infallible>>(
        a: &I,
        b: &I,
        scope: &Scope,
        p: &Params,
    ) -> (usize, usize, Vec<Id>) {
        let mut need = Vec::new();
        let mut msg = open(a, scope).unwrap();
        let mut rounds = 0;
        let mut parts = msg.len();
        while !msg.is_empty() {
            rounds += 1;
            assert!(rounds < 64, "does not converge");
            assert!(
                msg.len() <= p.max_parts,
                "an initiator message of {} parts",
                msg.len()
            );
            let answer = serve(b, &msg, p).unwrap();
            assert!(
                answer.len() <= p.max_parts,
                "an answer of {} parts",
                answer.len()
            );
            parts += answer.len();
            if answer.is_empty() {
                break;
            }
            msg = pull(a, &answer, p, &mut need).unwrap();
            parts += msg.len();
        }
        need.sort();
        need.dedup();
        (rounds, parts, need)
    }

    fn everything() -> Scope {
        vec![(Vec::new(), Bound::End)]
    }

    #[test]
    fn identical_sets_settle_in_one_round_trip_of_one_part() {
        let s: Vec<Key> = (0..10_000).map(key).collect();
        let (rounds, parts, need) = run(
            &Fast::new(s.clone()),
            &Fast::new(s),
            &everything(),
            &Params::default(),
        );
        assert_eq!(rounds, 1);
        assert_eq!(parts, 1, "one fingerprint, answered by an empty message");
        assert!(need.is_empty());
    }

    #[test]
    fn a_few_differences_in_a_large_set_take_few_rounds() {
        let common: Vec<Key> = (0..20_000).map(key).collect();
        let mut a = common.clone();
        let mut b = common;
        a.extend((0..20).map(|n| key(1_000_000 + n)));
        b.extend((0..20).map(|n| key(2_000_000 + n)));
        let (rounds, _, need) = run(
            &Fast::new(a),
            &Fast::new(b),
            &everything(),
            &Params::default(),
        );
        assert!(rounds <= 6, "{rounds} round trips");
        let mut want: Vec<Id> = (0..20).map(|n| id_of(&key(2_000_000 + n))).collect();
        want.sort();
        assert_eq!(need, want);
    }

    #[test]
    fn an_empty_side_pulls_everything_within_the_limits() {
        let b: Vec<Key> = (0..50_000).map(key).collect();
        let p = Params {
            max_ids: 5_000,
            ..Params::default()
        };
        let (_, _, need) = run(
            &Fast::new(Vec::new()),
            &Fast::new(b.clone()),
            &everything(),
            &p,
        );
        assert_eq!(need.len(), b.len());
    }

    #[test]
    fn many_differences_stay_within_the_message_limits() {
        // A thousand differences in 6,000 keys with room for only 150 parts per message:
        // every message must stay within the limit (run() would fail on a malformed one).
        let a: Vec<Key> = (0..6_000).filter(|n| n % 11 != 0).map(key).collect();
        let b: Vec<Key> = (0..6_000).filter(|n| n % 13 != 0).map(key).collect();
        let p = Params {
            max_parts: 150,
            ..Params::default()
        };
        let (_, _, need) = run(
            &Fast::new(a.clone()),
            &Fast::new(b.clone()),
            &everything(),
            &p,
        );
        let have: HashSet<Key> = a.into_iter().collect();
        let mut want: Vec<Id> = b.iter().filter(|k| !have.contains(*k)).map(id_of).collect();
        want.sort();
        assert_eq!(need, want);
    }

    #[test]
    fn a_scope_limits_the_pull_to_its_topics() {
        let b: Vec<Key> = (0..3_000).map(key).collect();
        // Only topic [1, 1].
        let scope = vec![(vec![1, 1], Bound::Below(vec![1, 2]))];
        let (_, _, need) = run(
            &Fast::new(Vec::new()),
            &Fast::new(b.clone()),
            &scope,
            &Params::default(),
        );
        let mut want: Vec<Id> = b.iter().filter(|k| k[1] == 1).map(id_of).collect();
        want.sort();
        assert_eq!(need, want);
    }

    #[test]
    fn malformed_messages_are_refused() {
        let p = Params::default();
        let ix = Fast::new((0..10).map(key));
        let fp = Mode::Fingerprint([0; FP_LEN]);
        let backwards = vec![
            Part {
                upper: Bound::Below(vec![5]),
                mode: fp.clone(),
            },
            Part {
                upper: Bound::Below(vec![4]),
                mode: fp.clone(),
            },
            Part {
                upper: Bound::End,
                mode: fp.clone(),
            },
        ];
        assert!(matches!(
            serve(&ix, &backwards, &p),
            Err(StepError::Malformed(Malformed::Bounds))
        ));
        let unfinished = vec![Part {
            upper: Bound::Below(vec![5]),
            mode: fp.clone(),
        }];
        assert!(serve(&ix, &unfinished, &p).is_err());
        let wrong_side = vec![Part {
            upper: Bound::End,
            mode: Mode::Ids(vec![[0; 32]]),
        }];
        assert!(matches!(
            serve(&ix, &wrong_side, &p),
            Err(StepError::Malformed(Malformed::Mode))
        ));
        let mut need = Vec::new();
        let wrong_side = vec![Part {
            upper: Bound::End,
            mode: Mode::Have(vec![]),
        }];
        assert!(pull(&ix, &wrong_side, &p, &mut need).is_err());
        let huge = vec![Part {
            upper: Bound::End,
            mode: Mode::Have(vec![[0; 8]; 40_000]),
        }];
        assert!(matches!(
            serve(&ix, &huge, &p),
            Err(StepError::Malformed(Malformed::TooLarge))
        ));
    }

    #[test]
    fn accumulators_subtract() {
        let mut a = Accumulator::default();
        let mut b = Accumulator::default();
        for n in 0..100 {
            a.add(&id_of(&key(n)));
            if n < 40 {
                b.add(&id_of(&key(n)));
            }
        }
        let mut rest = Accumulator::default();
        for n in 40..100 {
            rest.add(&id_of(&key(n)));
        }
        a.subtract(&b);
        assert_eq!(a, rest);
    }

    proptest! {
        #[test]
        fn the_initiator_learns_exactly_what_it_lacks(
            a in proptest::collection::btree_set(0u64..600, 0..400),
            b in proptest::collection::btree_set(0u64..600, 0..400),
            branches in 2usize..20,
            have_max in 1u64..40,
            ids_max in 0u64..4,
            list_max in 1u64..100,
        ) {
            let ia = Fast::new(a.iter().map(|n| key(*n)));
            let ib = Fast::new(b.iter().map(|n| key(*n)));
            let p = Params { branches, fine_branches: 2.max(branches / 4), fine_below: 64,
                have_max, ids_max, list_max, ..Params::default() };
            let (_, _, need) = run(&ia, &ib, &everything(), &p);
            let mut want: Vec<Id> = b.difference(&a).map(|n| id_of(&key(*n))).collect();
            want.sort();
            prop_assert_eq!(need, want);
        }
    }
}
