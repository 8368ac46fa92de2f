//! The derived values the store keeps, and how each is encoded: a petition's tally, a
//! product's rating, a group's tally, and the slots they are sums over (what each slot class
//! holds is in `super::keys::SlotClass`; how records change them is `crate::tally`).

use std::collections::BTreeMap;

use chorus_protocol::{AuthorKey, RecordId, SignedRecord};
use serde::{Deserialize, Serialize};

use super::codec::{cbor_decode, cbor_encode, is_cbor_map, Reader, Stored, Writer};
use crate::error::{Error, Result};

/// A petition's tally: what `chorus tally` shows. A pure function of the petition's records
/// (PROTOCOL.md §9): what depends on the reader's clock (is the deadline past, has a
/// campaign failed) is judged when it is read (`PetitionTally::state`,
/// `PetitionTally::outcome`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct PetitionTally {
    /// The targeted producer.
    pub producer: AuthorKey,
    /// Endorsements needed (for a campaign: backers needed, besides the goal).
    pub threshold: u64,
    /// Endorsements created after this (ms) do not count.
    pub deadline: Option<u64>,
    /// The group the petition speaks for.
    pub group: Option<RecordId>,
    /// Campaign goal: (hundredths, currency).
    pub goal: Option<(u64, String)>,
    /// Distinct authors whose latest state is "endorsed".
    pub endorsers: u64,
    /// Of those, members of the petition's group.
    pub member_endorsers: u64,
    /// Pledged sums per currency, in hundredths (a campaign's are all in its goal's
    /// currency: PROTOCOL.md §9.1 `currency_mismatch`).
    pub pledged: BTreeMap<String, u128>,
    /// Is the petition reached now: endorsers ≥ threshold and, for a campaign, the pledged
    /// total ≥ the goal?
    pub reached: bool,
    /// A campaign that is reached (goal met, enough backers); always false for others.
    pub funded: bool,
    /// `created_at` of the record at which the petition was first reached, its
    /// endorsements and retractions taken in (`created_at`, id) order (PROTOCOL.md §9).
    /// Stays set when `reached` no longer holds.
    pub first_reached_at: Option<u64>,
    /// Has the petition's author retracted (withdrawn) it?
    pub withdrawn: bool,
    /// `created_at` of its earliest withdrawal: endorsements created after it do not count.
    pub withdrawn_at: Option<u64>,
    /// The producer's latest response.
    pub response: Option<ResponseInfo>,
    /// The greatest `created_at` of the endorsements and retractions of endorsements that
    /// count for this petition (made before it closed): how the node knows that a record
    /// comes after all the others.
    pub latest_at: Option<u64>,
}

/// Where a petition stands at a given time (PROTOCOL.md §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PetitionState {
    /// Endorsements made now count.
    Open,
    /// Its author withdrew it.
    Withdrawn,
    /// Its deadline has passed.
    Closed,
}

impl PetitionState {
    /// `open`, `withdrawn` or `closed`.
    pub fn as_str(self) -> &'static str {
        match self {
            PetitionState::Open => "open",
            PetitionState::Withdrawn => "withdrawn",
            PetitionState::Closed => "closed",
        }
    }
}

impl PetitionTally {
    /// The tally of a petition before any endorsement of it (not yet settled).
    pub(crate) fn new(
        producer: AuthorKey,
        threshold: u64,
        deadline: Option<u64>,
        group: Option<RecordId>,
        goal: Option<(u64, String)>,
    ) -> Self {
        PetitionTally {
            producer,
            threshold,
            deadline,
            group,
            goal,
            endorsers: 0,
            member_endorsers: 0,
            pledged: BTreeMap::new(),
            reached: false,
            funded: false,
            first_reached_at: None,
            withdrawn: false,
            withdrawn_at: None,
            response: None,
            latest_at: None,
        }
    }

    /// The time after which endorsements do not count: the earlier of the deadline and the
    /// first withdrawal.
    pub fn closes_at(&self) -> Option<u64> {
        match (self.deadline, self.withdrawn_at) {
            (Some(d), Some(w)) => Some(d.min(w)),
            (d, w) => d.or(w),
        }
    }

    /// The state at `now` (ms): withdrawn comes first, then closed by deadline.
    pub fn state(&self, now: u64) -> PetitionState {
        if self.withdrawn {
            PetitionState::Withdrawn
        } else if self.deadline.is_some_and(|d| d < now) {
            PetitionState::Closed
        } else {
            PetitionState::Open
        }
    }

    /// A campaign's pledged total in its goal's currency (hundredths); `None` outside
    /// campaigns.
    pub fn pledged_total(&self) -> Option<u128> {
        let (_, currency) = self.goal.as_ref()?;
        Some(self.pledged.get(currency).copied().unwrap_or(0))
    }

    /// Does a count of `endorsers` with `pledged` (goal currency) reach the petition?
    pub(crate) fn meets(&self, endorsers: u64, pledged: u128) -> bool {
        endorsers >= self.threshold
            && self
                .goal
                .as_ref()
                .is_none_or(|(g, _)| pledged >= u128::from(*g))
    }

    /// Sets `reached` and `funded` from the current count and pledges.
    pub(crate) fn settle(&mut self) {
        self.reached = self.meets(self.endorsers, self.pledged_total().unwrap_or(0));
        self.funded = self.goal.is_some() && self.reached;
    }

    /// A campaign's outcome at `now`: once its deadline has passed, `funded` or `failed`
    /// (the state at the deadline is final, §9); `None` before, or outside campaigns, or for
    /// a campaign without a deadline. A withdrawn campaign fails at its deadline unless it
    /// was funded when withdrawn.
    pub fn outcome(&self, now: u64) -> Option<&'static str> {
        self.goal.as_ref()?;
        let d = self.deadline?;
        if d >= now {
            return None;
        }
        Some(if self.funded { "funded" } else { "failed" })
    }
}

/// A producer's latest answer, as kept in a tally.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ResponseInfo {
    /// The response record.
    pub id: RecordId,
    /// Its status (`acknowledged`, `in-progress`, ...).
    pub status: String,
    /// Its creation time.
    pub created_at: u64,
}

/// A product's rating over the latest unretracted review of each author.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct Rating {
    /// Number of counted reviews.
    pub count: u64,
    /// Sum of their ratings.
    pub sum: u64,
    /// Counts of ratings 1..=5.
    pub histogram: [u64; 5],
}

impl Rating {
    /// The mean rating, 0 when there is none.
    pub fn mean(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum as f64 / self.count as f64
        }
    }
}

/// A group's derived state.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct GroupTally {
    /// The group's creator, who admits members of approval groups.
    pub founder: AuthorKey,
    /// `open` or `approval`.
    pub admission: String,
    /// Number of members, founder included.
    pub members: u64,
}

/// One slot's winning state.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub(crate) struct Slot {
    /// The winning record's `created_at`.
    pub(crate) at: u64,
    /// The winning record.
    pub(crate) id: RecordId,
    /// Does the winner count (a review, endorsement, join...) or not (a retraction)?
    pub(crate) on: bool,
    /// A review's rating.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) rating: Option<u8>,
    /// An endorsement's pledge: (hundredths, currency).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) pledge: Option<(u64, String)>,
    /// A response's status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) status: Option<String>,
}

impl Slot {
    pub(crate) fn new(rec: &SignedRecord, on: bool) -> Self {
        Slot {
            at: rec.record().created_at,
            id: rec.id(),
            on,
            rating: None,
            pledge: None,
            status: None,
        }
    }
    /// Where it stands among its slot's competitors: the latest wins.
    pub(crate) fn order(&self) -> (u64, RecordId) {
        (self.at, self.id)
    }
}

/// Derived values that stay CBOR (small, or rarely written).
macro_rules! stored_as_cbor {
    ($($t:ty => $what:literal),*) => {$(
        impl Stored for $t {
            fn encode(&self) -> Vec<u8> {
                cbor_encode(self)
            }
            fn decode(bytes: &[u8]) -> Result<Self> {
                cbor_decode(bytes, $what)
            }
        }
    )*};
}
stored_as_cbor!(Rating => "rating", GroupTally => "group tally", u64 => "count");

impl Stored for Slot {
    fn encode(&self) -> Vec<u8> {
        let flags = u8::from(self.on)
            | u8::from(self.rating.is_some()) << 1
            | u8::from(self.pledge.is_some()) << 2
            | u8::from(self.status.is_some()) << 3;
        let mut w = Writer::new(48);
        w.u64(self.at).bytes32(self.id.as_bytes()).u8(flags);
        if let Some(r) = self.rating {
            w.u8(r);
        }
        if let Some((amount, currency)) = &self.pledge {
            w.u64(*amount).str(currency);
        }
        if let Some(status) = &self.status {
            w.str(status);
        }
        w.finish()
    }
    fn decode(bytes: &[u8]) -> Result<Self> {
        if is_cbor_map(bytes) {
            return cbor_decode(bytes, "slot");
        }
        let mut r = Reader::new(bytes, "slot")?;
        let at = r.u64()?;
        let id = RecordId(r.bytes32()?);
        let flags = r.u8()?;
        if flags & !0b1111 != 0 {
            return Err(Error::Corrupt("slot: unknown flags".into()));
        }
        let rating = if flags & 2 != 0 { Some(r.u8()?) } else { None };
        let pledge = if flags & 4 != 0 {
            Some((r.u64()?, r.str()?))
        } else {
            None
        };
        let status = if flags & 8 != 0 { Some(r.str()?) } else { None };
        r.end()?;
        Ok(Slot {
            at,
            id,
            on: flags & 1 != 0,
            rating,
            pledge,
            status,
        })
    }
}

impl Stored for PetitionTally {
    fn encode(&self) -> Vec<u8> {
        let flags = u8::from(self.deadline.is_some())
            | u8::from(self.group.is_some()) << 1
            | u8::from(self.goal.is_some()) << 2
            | u8::from(self.reached) << 3
            | u8::from(self.first_reached_at.is_some()) << 4
            | u8::from(self.withdrawn) << 5
            | u8::from(self.response.is_some()) << 6;
        let more = u8::from(self.withdrawn_at.is_some())
            | u8::from(self.latest_at.is_some()) << 1
            | u8::from(self.funded) << 2;
        let mut w = Writer::new(96);
        w.bytes32(self.producer.as_bytes())
            .u64(self.threshold)
            .u64(self.endorsers)
            .u64(self.member_endorsers)
            .u8(flags)
            .u8(more);
        if let Some(d) = self.deadline {
            w.u64(d);
        }
        if let Some(g) = &self.group {
            w.bytes32(g.as_bytes());
        }
        if let Some((amount, currency)) = &self.goal {
            w.u64(*amount).str(currency);
        }
        if let Some(at) = self.first_reached_at {
            w.u64(at);
        }
        if let Some(at) = self.withdrawn_at {
            w.u64(at);
        }
        if let Some(at) = self.latest_at {
            w.u64(at);
        }
        if let Some(resp) = &self.response {
            w.bytes32(resp.id.as_bytes())
                .u64(resp.created_at)
                .str(&resp.status);
        }
        w.u64(self.pledged.len() as u64);
        for (currency, sum) in &self.pledged {
            w.str(currency).u128(*sum);
        }
        w.finish()
    }
    fn decode(bytes: &[u8]) -> Result<Self> {
        if is_cbor_map(bytes) {
            return cbor_decode(bytes, "tally");
        }
        let mut r = Reader::new(bytes, "tally")?;
        let producer = AuthorKey(r.bytes32()?);
        let threshold = r.u64()?;
        let endorsers = r.u64()?;
        let member_endorsers = r.u64()?;
        let flags = r.u8()?;
        let more = r.u8()?;
        if flags & 0x80 != 0 || more & !0b111 != 0 {
            return Err(Error::Corrupt("tally: unknown flags".into()));
        }
        let has = |bit: u8| flags & (1 << bit) != 0;
        let also = |bit: u8| more & (1 << bit) != 0;
        let deadline = if has(0) { Some(r.u64()?) } else { None };
        let group = if has(1) {
            Some(RecordId(r.bytes32()?))
        } else {
            None
        };
        let goal = if has(2) {
            Some((r.u64()?, r.str()?))
        } else {
            None
        };
        let first_reached_at = if has(4) { Some(r.u64()?) } else { None };
        let withdrawn_at = if also(0) { Some(r.u64()?) } else { None };
        let latest_at = if also(1) { Some(r.u64()?) } else { None };
        let response = if has(6) {
            Some(ResponseInfo {
                id: RecordId(r.bytes32()?),
                created_at: r.u64()?,
                status: r.str()?,
            })
        } else {
            None
        };
        let n = r.u64()?;
        let mut pledged = BTreeMap::new();
        for _ in 0..n {
            let currency = r.str()?;
            pledged.insert(currency, r.u128()?);
        }
        r.end()?;
        Ok(PetitionTally {
            producer,
            threshold,
            deadline,
            group,
            goal,
            endorsers,
            member_endorsers,
            pledged,
            reached: has(3),
            funded: also(2),
            first_reached_at,
            withdrawn: has(5),
            withdrawn_at,
            response,
            latest_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(b: u8) -> RecordId {
        RecordId([b; 32])
    }

    fn slots() -> Vec<Slot> {
        let plain = Slot {
            at: 1_700_000_000_123,
            id: id(1),
            on: true,
            rating: None,
            pledge: None,
            status: None,
        };
        vec![
            plain.clone(),
            Slot {
                on: false,
                ..plain.clone()
            },
            Slot {
                rating: Some(5),
                ..plain.clone()
            },
            Slot {
                pledge: Some((12_345, "EUR".into())),
                ..plain.clone()
            },
            Slot {
                rating: Some(1),
                pledge: Some((0, String::new())),
                status: Some("in-progress".into()),
                ..plain
            },
        ]
    }

    fn tallies() -> Vec<PetitionTally> {
        let plain = PetitionTally {
            endorsers: 3,
            ..PetitionTally::new(AuthorKey([7; 32]), 100, None, None, None)
        };
        vec![
            plain.clone(),
            PetitionTally {
                deadline: Some(u64::MAX),
                group: Some(id(9)),
                goal: Some((10_000, "USD".into())),
                member_endorsers: 2,
                pledged: BTreeMap::from([("EUR".into(), u128::MAX), ("USD".into(), 5)]),
                reached: true,
                funded: true,
                first_reached_at: Some(42),
                withdrawn: true,
                withdrawn_at: Some(41),
                latest_at: Some(40),
                response: Some(ResponseInfo {
                    id: id(3),
                    status: "accepted".into(),
                    created_at: 77,
                }),
                ..plain
            },
        ]
    }

    #[test]
    fn compact_values_round_trip_and_are_smaller_than_cbor() {
        for s in slots() {
            let b = s.encode();
            assert_eq!(b[0], super::super::codec::COMPACT);
            assert_eq!(Slot::decode(&b).unwrap(), s);
            assert!(b.len() < cbor_encode(&s).len(), "{} bytes", b.len());
        }
        // The commonest values: an endorsement's slot and a plain petition's tally.
        assert_eq!(slots()[0].encode().len(), 42);
        assert!(slots()[0].encode().len() * 2 < cbor_encode(&slots()[0]).len());
        assert_eq!(tallies()[0].encode().len(), 67);
        assert!(tallies()[0].encode().len() * 2 < cbor_encode(&tallies()[0]).len());
        for t in tallies() {
            let b = t.encode();
            assert_eq!(PetitionTally::decode(&b).unwrap(), t);
            assert!(b.len() < cbor_encode(&t).len(), "{} bytes", b.len());
        }
    }

    #[test]
    fn values_written_as_cbor_by_older_nodes_still_read() {
        for s in slots() {
            assert_eq!(Slot::decode(&cbor_encode(&s)).unwrap(), s);
        }
        for t in tallies() {
            assert_eq!(PetitionTally::decode(&cbor_encode(&t)).unwrap(), t);
        }
    }

    #[test]
    fn corrupt_values_are_errors_not_panics() {
        for s in slots() {
            let b = s.encode();
            for n in 0..b.len() {
                assert!(Slot::decode(&b[..n]).is_err());
            }
            let mut flags = b.clone();
            flags[41] |= 0x80;
            assert!(Slot::decode(&flags).is_err());
            let mut long = b;
            long.push(0);
            assert!(Slot::decode(&long).is_err());
        }
        for t in tallies() {
            let b = t.encode();
            for n in 0..b.len() {
                assert!(PetitionTally::decode(&b[..n]).is_err());
            }
        }
        assert!(Slot::decode(&[0x02, 0, 0]).is_err());
        assert!(PetitionTally::decode(&[0xa1, 0x61]).is_err());
    }
}
