//! Range-based set reconciliation (after Meyer, "Range-Based Set Reconciliation", 2023), pure:
//! no I/O, generic over the index that answers range queries.
//!
//! Items are `(created_at, id)` pairs, ordered. A message is a list of parts, each covering
//! the range from the previous part's upper bound (or the start) to its own `upper` bound:
//!
//! - `Skip`: nothing to do for this range;
//! - `Fingerprint(fp)`: the sender's fingerprint of the range; the receiver compares it with
//!   its own and answers `Skip` (equal), its item list (few items) or a split into
//!   [`Params::branches`] sub-ranges with fingerprints;
//! - `Items(list, reply)`: the sender's items of the range; the receiver learns which it
//!   lacks, and answers with its own items when `reply` is set.
//!
//! Only ranges that differ are ever split, so the cost follows the difference between the
//! sets, not their size: identical sets settle in one round trip of one part.
//!
//! The fingerprint of a range is `BLAKE3(count || sum of ids mod 2^256)`, truncated to 16
//! bytes; it is additive, so an index can maintain sums incrementally.

use std::collections::BTreeSet;

/// One item: a record's creation time and id.
pub type Item = (u64, [u8; 32]);

/// The upper bound of a range (exclusive), or the end of everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Bound {
    /// Everything below this item.
    Below(Item),
    /// Everything.
    End,
}

impl Bound {
    fn contains(&self, item: &Item) -> bool {
        match self {
            Bound::Below(b) => item < b,
            Bound::End => true,
        }
    }
}

/// A range fingerprint: 16 bytes.
pub type Fingerprint = [u8; 16];

/// What a part says about its range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Nothing to do.
    Skip,
    /// The sender's fingerprint of the range.
    Fingerprint(Fingerprint),
    /// The sender's items of the range; `reply` asks for the receiver's items in return.
    Items(Vec<Item>, bool),
}

/// One range of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// Exclusive upper bound; the lower bound is the previous part's upper bound.
    pub upper: Bound,
    /// What the sender says about the range.
    pub mode: Mode,
}

/// Accumulates a fingerprint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Accumulator {
    count: u64,
    sum: [u64; 4],
}

impl Accumulator {
    /// Adds an item's id (as a little-endian 256-bit number, mod 2^256).
    pub fn add(&mut self, id: &[u8; 32]) {
        self.count += 1;
        let mut carry = 0u128;
        for (i, limb) in self.sum.iter_mut().enumerate() {
            let mut w = [0u8; 8];
            w.copy_from_slice(&id[i * 8..i * 8 + 8]);
            let v = u128::from(*limb) + u128::from(u64::from_le_bytes(w)) + carry;
            *limb = v as u64;
            carry = v >> 64;
        }
    }

    /// Combines two disjoint ranges' accumulators.
    pub fn merge(&mut self, other: &Accumulator) {
        self.count += other.count;
        let mut carry = 0u128;
        for i in 0..4 {
            let v = u128::from(self.sum[i]) + u128::from(other.sum[i]) + carry;
            self.sum[i] = v as u64;
            carry = v >> 64;
        }
    }

    /// Number of items.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The fingerprint.
    pub fn fingerprint(&self) -> Fingerprint {
        let mut h = blake3::Hasher::new();
        h.update(&self.count.to_le_bytes());
        for l in self.sum {
            h.update(&l.to_le_bytes());
        }
        let mut out = [0u8; 16];
        out.copy_from_slice(&h.finalize().as_bytes()[..16]);
        out
    }
}

/// Range queries over one side's items. `lower` is inclusive (`None`: from the start).
pub trait RangeIndex {
    /// Error of the index.
    type Error;
    /// The accumulated fingerprint of a range.
    fn accumulate(&self, lower: Option<&Item>, upper: &Bound) -> Result<Accumulator, Self::Error>;
    /// The items of a range, in order, at most `limit`.
    fn items(
        &self,
        lower: Option<&Item>,
        upper: &Bound,
        limit: usize,
    ) -> Result<Vec<Item>, Self::Error>;
    /// Bounds that split a range of `count` items into `parts` runs of about equal size; the
    /// last one is `upper` itself.
    fn split(
        &self,
        lower: Option<&Item>,
        upper: &Bound,
        count: u64,
        parts: usize,
    ) -> Result<Vec<Bound>, Self::Error>;
}

/// Tuning.
#[derive(Debug, Clone, Copy)]
pub struct Params {
    /// Sub-ranges a differing range is split into.
    pub branches: usize,
    /// Ranges with at most this many items are sent as item lists.
    pub max_items: u64,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            branches: 16,
            max_items: 32,
        }
    }
}

/// What one side learned from a message.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Learned {
    /// Items the other side has and this side lacks.
    pub need: Vec<Item>,
    /// Items this side has and the other side lacks.
    pub have: Vec<Item>,
}

fn describe<I: RangeIndex>(
    index: &I,
    lower: Option<&Item>,
    upper: Bound,
    p: &Params,
    reply: bool,
    out: &mut Vec<Part>,
) -> Result<(), I::Error> {
    let acc = index.accumulate(lower, &upper)?;
    if acc.count() <= p.max_items {
        let items = index.items(lower, &upper, p.max_items as usize)?;
        out.push(Part {
            upper,
            mode: Mode::Items(items, reply),
        });
    } else {
        out.push(Part {
            upper,
            mode: Mode::Fingerprint(acc.fingerprint()),
        });
    }
    Ok(())
}

/// The initiator's first message: the whole set as one part.
pub fn initiate<I: RangeIndex>(index: &I, p: &Params) -> Result<Vec<Part>, I::Error> {
    let mut out = Vec::new();
    describe(index, None, Bound::End, p, true, &mut out)?;
    Ok(out)
}

/// Processes a message from the other side; returns the answer (empty when both sides are
/// done) and what was learned. Parts must cover increasing, contiguous ranges.
pub fn respond<I: RangeIndex>(
    index: &I,
    msg: &[Part],
    p: &Params,
    learned: &mut Learned,
) -> Result<Vec<Part>, I::Error> {
    let mut out: Vec<Part> = Vec::new();
    let mut lower: Option<Item> = None;
    let mut any = false;
    for part in msg {
        match &part.mode {
            Mode::Skip => out.push(Part {
                upper: part.upper,
                mode: Mode::Skip,
            }),
            Mode::Fingerprint(theirs) => {
                let acc = index.accumulate(lower.as_ref(), &part.upper)?;
                if acc.fingerprint() == *theirs {
                    out.push(Part {
                        upper: part.upper,
                        mode: Mode::Skip,
                    });
                } else if acc.count() <= p.max_items {
                    let items = index.items(lower.as_ref(), &part.upper, p.max_items as usize)?;
                    out.push(Part {
                        upper: part.upper,
                        mode: Mode::Items(items, true),
                    });
                    any = true;
                } else {
                    let bounds =
                        index.split(lower.as_ref(), &part.upper, acc.count(), p.branches)?;
                    let mut sub_lower = lower;
                    for b in bounds {
                        describe(index, sub_lower.as_ref(), b, p, true, &mut out)?;
                        sub_lower = match b {
                            Bound::Below(i) => Some(i),
                            Bound::End => None,
                        };
                    }
                    any = true;
                }
            }
            Mode::Items(theirs, reply) => {
                let mine = index.items(lower.as_ref(), &part.upper, usize::MAX)?;
                let theirs_set: BTreeSet<&Item> = theirs.iter().collect();
                let mine_set: BTreeSet<&Item> = mine.iter().collect();
                learned.need.extend(
                    theirs
                        .iter()
                        .filter(|i| !mine_set.contains(i) && part.upper.contains(i)),
                );
                learned
                    .have
                    .extend(mine.iter().filter(|i| !theirs_set.contains(i)));
                if *reply {
                    out.push(Part {
                        upper: part.upper,
                        mode: Mode::Items(mine, false),
                    });
                    any = true;
                } else {
                    out.push(Part {
                        upper: part.upper,
                        mode: Mode::Skip,
                    });
                }
            }
        }
        lower = match part.upper {
            Bound::Below(i) => Some(i),
            Bound::End => None,
        };
    }
    if !any {
        out.clear();
    }
    Ok(out)
}

/// An in-memory index (tests, and small sets).
#[derive(Debug, Clone, Default)]
pub struct MemoryIndex(pub BTreeSet<Item>);

impl MemoryIndex {
    fn range<'a>(
        &'a self,
        lower: Option<&Item>,
        upper: &'a Bound,
    ) -> impl Iterator<Item = &'a Item> + 'a {
        let start = lower.copied().unwrap_or((0, [0; 32]));
        self.0.range(start..).take_while(move |i| upper.contains(i))
    }
}

impl RangeIndex for MemoryIndex {
    type Error = std::convert::Infallible;
    fn accumulate(&self, lower: Option<&Item>, upper: &Bound) -> Result<Accumulator, Self::Error> {
        let mut a = Accumulator::default();
        for i in self.range(lower, upper) {
            a.add(&i.1);
        }
        Ok(a)
    }
    fn items(
        &self,
        lower: Option<&Item>,
        upper: &Bound,
        limit: usize,
    ) -> Result<Vec<Item>, Self::Error> {
        Ok(self.range(lower, upper).take(limit).copied().collect())
    }
    fn split(
        &self,
        lower: Option<&Item>,
        upper: &Bound,
        count: u64,
        parts: usize,
    ) -> Result<Vec<Bound>, Self::Error> {
        let per = (count as usize).div_ceil(parts.max(1)).max(1);
        let mut out: Vec<Bound> = self
            .range(lower, upper)
            .enumerate()
            .filter(|(n, _)| *n > 0 && n % per == 0)
            .map(|(_, i)| Bound::Below(*i))
            .collect();
        out.push(*upper);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn item(n: u64) -> Item {
        let id = *blake3::hash(&n.to_le_bytes()).as_bytes();
        (n / 3, id)
    }

    /// Runs a whole reconciliation; returns (round trips, what the initiator learned).
    fn run(a: &MemoryIndex, b: &MemoryIndex, p: &Params) -> (usize, Learned, usize) {
        let mut learned = Learned::default();
        let mut other = Learned::default();
        let mut msg = initiate(a, p).unwrap();
        let mut rounds = 0;
        let mut parts = msg.len();
        loop {
            rounds += 1;
            let answer = respond(b, &msg, p, &mut other).unwrap();
            parts += answer.len();
            if answer.is_empty() {
                break;
            }
            msg = respond(a, &answer, p, &mut learned).unwrap();
            parts += msg.len();
            if msg.is_empty() {
                break;
            }
            assert!(rounds < 50, "does not converge");
        }
        learned.need.extend(other.have);
        learned.have.extend(other.need);
        learned.need.sort();
        learned.need.dedup();
        learned.have.sort();
        learned.have.dedup();
        (rounds, learned, parts)
    }

    #[test]
    fn identical_sets_settle_in_one_round_trip_of_one_part() {
        let s: BTreeSet<Item> = (0..10_000).map(item).collect();
        let (rounds, learned, parts) =
            run(&MemoryIndex(s.clone()), &MemoryIndex(s), &Params::default());
        assert_eq!(rounds, 1);
        assert_eq!(parts, 1, "one fingerprint, answered by an empty message");
        assert_eq!(learned, Learned::default());
    }

    #[test]
    fn a_few_differences_in_a_large_set_take_few_rounds() {
        let common: Vec<Item> = (0..20_000).map(item).collect();
        let mut a: BTreeSet<Item> = common.iter().copied().collect();
        let mut b = a.clone();
        for n in 0..20 {
            a.insert(item(1_000_000 + n));
            b.insert(item(2_000_000 + n));
        }
        let (rounds, learned, _) = run(&MemoryIndex(a), &MemoryIndex(b), &Params::default());
        assert!(rounds <= 5, "{rounds} round trips");
        assert_eq!(learned.need.len(), 20);
        assert_eq!(learned.have.len(), 20);
    }

    proptest! {
        #[test]
        fn any_two_sets_learn_exactly_their_difference(
            a in proptest::collection::btree_set(0u64..400, 0..300),
            b in proptest::collection::btree_set(0u64..400, 0..300),
            branches in 2usize..20,
            max_items in 1u64..40,
        ) {
            let ia = MemoryIndex(a.iter().map(|n| item(*n)).collect());
            let ib = MemoryIndex(b.iter().map(|n| item(*n)).collect());
            let (_, learned, _) = run(&ia, &ib, &Params { branches, max_items });
            let mut need: Vec<Item> = b.difference(&a).map(|n| item(*n)).collect();
            need.sort();
            let mut have: Vec<Item> = a.difference(&b).map(|n| item(*n)).collect();
            have.sort();
            prop_assert_eq!(learned.need, need);
            prop_assert_eq!(learned.have, have);
        }
    }
}
