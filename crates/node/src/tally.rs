//! Derived state: a pure function of the *set* of applied records, maintained incrementally.
//!
//! The building block is the **slot**: a place where competing records of one author meet and
//! the latest by `(created_at, id)` wins. A retraction competes in the slot of the record it
//! retracts, as an "off" state. Slots:
//!
//! | class | slot key                | "on" records            | feeds                          |
//! |-------|-------------------------|-------------------------|--------------------------------|
//! | `E`   | petition, author        | endorsements            | petition tally                 |
//! | `V`   | product, author         | reviews                 | product rating                 |
//! | `J`   | group, author           | joins                   | membership                     |
//! | `M`   | group, member           | admits by the founder   | membership (approval groups)   |
//! | `F`   | author                  | profiles                | latest profile                 |
//! | `S`   | target, producer        | responses               | the petition's latest response |
//! | `W`   | petition                | the author's retraction | petition withdrawn             |
//!
//! Because every aggregate is a sum over slot winners, and a slot winner does not depend on
//! the order its candidates arrived in, the aggregates are order independent. The one
//! order statistic, the time a petition reached its threshold, is the `threshold`-th earliest
//! counted endorsement, recomputed from the petition's slots when a change could move it.
//!
//! The same code runs on the sled tree (through an [`Overlay`] of one batch's writes) and on
//! an in-memory map, which is how [`recompute`] rebuilds everything from raw records.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use chorus_protocol::{
    Admission, AuthorKey, Body, Kind, PetitionVariant, RecordId, SignedRecord, Topic,
};
use serde::{Deserialize, Serialize};

use crate::store::codec::{cbor_decode, cbor_encode, is_cbor_map, Reader, Stored, Writer};
use crate::store::keys::{self, key};
use crate::store::{Backing, Overlay, Store};
use crate::{Error, Result};

const COUNT_KEY: &[u8] = b"mcount";

/// A petition's tally: what `chorus tally` shows.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct PetitionTally {
    /// The targeted producer.
    pub producer: AuthorKey,
    /// Endorsements needed.
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
    /// Pledged sums per currency, in hundredths.
    pub pledged: BTreeMap<String, u128>,
    /// Has the number of endorsers reached the threshold?
    pub reached: bool,
    /// `created_at` of the threshold-th earliest counted endorsement.
    pub reached_at: Option<u64>,
    /// Has the petition's author retracted it?
    pub withdrawn: bool,
    /// The producer's latest response.
    pub response: Option<ResponseInfo>,
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
    at: u64,
    id: RecordId,
    on: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rating: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pledge: Option<(u64, String)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    status: Option<String>,
}

impl Slot {
    fn new(rec: &SignedRecord, on: bool) -> Self {
        Slot {
            at: rec.record().created_at,
            id: rec.id(),
            on,
            rating: None,
            pledge: None,
            status: None,
        }
    }
    fn order(&self) -> (u64, RecordId) {
        (self.at, self.id)
    }
}

/// What the node tells subscribers after a batch is durable.
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A new record was stored.
    RecordStored {
        /// Its id.
        id: RecordId,
        /// Its kind.
        kind: String,
        /// Its topic.
        topic: String,
        /// Its author.
        author: AuthorKey,
        /// Its creation time.
        created_at: u64,
        /// The record it points at, if any.
        target: Option<RecordId>,
        /// Its place in the arrival journal, if its topic is journaled (watched).
        seq: Option<u64>,
    },
    /// A petition's tally changed.
    TallyChanged {
        /// The petition.
        petition: RecordId,
        /// Its new tally.
        tally: Box<PetitionTally>,
    },
    /// A petition reached its threshold.
    ThresholdCrossed {
        /// The petition.
        petition: RecordId,
        /// Its tally.
        tally: Box<PetitionTally>,
    },
    /// A product's rating changed.
    RatingChanged {
        /// The producer.
        producer: AuthorKey,
        /// The product code.
        code: String,
        /// The new rating.
        rating: Rating,
    },
    /// A producer answered a petition or review.
    Responded {
        /// The petition or review.
        target: RecordId,
        /// The response record.
        response: RecordId,
        /// The producer.
        producer: AuthorKey,
        /// The status.
        status: String,
    },
}

pub(crate) fn read<T: Stored, B: Backing>(b: &B, k: &[u8]) -> Result<Option<T>> {
    b.get(k)?.map(|v| T::decode(&v)).transpose()
}

fn get<T: Stored, B: Backing>(ov: &Overlay<'_, B>, k: &[u8]) -> Result<Option<T>> {
    ov.get(k)?.map(|v| T::decode(&v)).transpose()
}

fn put<T: Stored, B: Backing>(ov: &mut Overlay<'_, B>, k: Vec<u8>, v: &T) -> Result<()> {
    ov.put(k, v.encode());
    Ok(())
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
            | u8::from(self.reached_at.is_some()) << 4
            | u8::from(self.withdrawn) << 5
            | u8::from(self.response.is_some()) << 6;
        let mut w = Writer::new(80);
        w.bytes32(self.producer.as_bytes())
            .u64(self.threshold)
            .u64(self.endorsers)
            .u64(self.member_endorsers)
            .u8(flags);
        if let Some(d) = self.deadline {
            w.u64(d);
        }
        if let Some(g) = &self.group {
            w.bytes32(g.as_bytes());
        }
        if let Some((amount, currency)) = &self.goal {
            w.u64(*amount).str(currency);
        }
        if let Some(at) = self.reached_at {
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
        if flags & 0x80 != 0 {
            return Err(Error::Corrupt("tally: unknown flags".into()));
        }
        let has = |bit: u8| flags & (1 << bit) != 0;
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
        let reached_at = if has(4) { Some(r.u64()?) } else { None };
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
            reached_at,
            withdrawn: has(5),
            response,
        })
    }
}

pub(crate) fn slot_key(class: u8, parts: &[&[u8]]) -> Vec<u8> {
    let mut all: Vec<&[u8]> = vec![std::slice::from_ref(&class)];
    all.extend_from_slice(parts);
    key(keys::SLOT, &all)
}

/// Why a record cannot be applied (yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// Every record it depends on is here and it obeys the kind rules.
    Ready,
    /// It points at a record not yet seen.
    Wait(RecordId),
    /// It breaks a kind rule.
    Reject(&'static str),
}

/// What the kind rules need to know of a record that others point at.
#[derive(Clone, Copy)]
struct TargetInfo {
    kind: Kind,
    author: AuthorKey,
    topic: Topic,
    /// The producer a petition or review is aimed at.
    producer: Option<AuthorKey>,
}

impl TargetInfo {
    fn of(rec: &SignedRecord) -> Self {
        let r = rec.record();
        TargetInfo {
            kind: r.kind(),
            author: r.author,
            topic: r.topic,
            producer: match &r.body {
                Body::Petition(p) => Some(p.producer),
                Body::Review(rv) => Some(rv.product.producer),
                _ => None,
            },
        }
    }
}

/// State kept across the batches of one writer: decoded targets, and the events of the
/// current batch.
#[derive(Default)]
pub(crate) struct Ctx {
    targets: HashMap<RecordId, Arc<SignedRecord>>,
    /// What the kind rules need of recently pointed-at records (mostly petitions, which
    /// nearly every endorsement points at): compact, so many fit.
    infos: HashMap<RecordId, TargetInfo>,
    pub(crate) events: Vec<Event>,
    changed_petitions: BTreeSet<RecordId>,
    crossed: BTreeSet<RecordId>,
    changed_products: BTreeMap<[u8; 64], (AuthorKey, String)>,
    /// Petition tallies read or changed in this batch, decoded once and written once.
    tallies: HashMap<RecordId, (PetitionTally, bool)>,
    /// Records stored in this batch.
    stored: u64,
    /// The store's arrival journal, if records are journaled.
    pub(crate) journal: Option<Arc<crate::store::Journal>>,
}

impl Ctx {
    const MAX_TARGETS: usize = 4096;
    const MAX_INFOS: usize = 65_536;

    /// A context that journals arrivals on watched topics.
    pub(crate) fn with_journal(journal: Arc<crate::store::Journal>) -> Self {
        Ctx {
            journal: Some(journal),
            ..Ctx::default()
        }
    }

    fn target<B: Backing>(
        &mut self,
        ov: &Overlay<'_, B>,
        id: &RecordId,
    ) -> Result<Option<Arc<SignedRecord>>> {
        if let Some(t) = self.targets.get(id) {
            return Ok(Some(t.clone()));
        }
        let Some(loc) = ov.get(&keys::record(id))? else {
            return Ok(None);
        };
        let Some(wire) = ov.get(&keys::stored_at(&loc, id))? else {
            return Err(Error::Corrupt(format!("record {id} indexed but missing")));
        };
        let rec = Arc::new(SignedRecord::from_vec(wire)?);
        if self.targets.len() >= Self::MAX_TARGETS {
            self.targets.clear();
        }
        self.targets.insert(*id, rec.clone());
        Ok(Some(rec))
    }

    /// The kind-rule facts of a stored record (`None`: not stored).
    fn target_info<B: Backing>(
        &mut self,
        ov: &Overlay<'_, B>,
        id: &RecordId,
    ) -> Result<Option<TargetInfo>> {
        if let Some(t) = self.infos.get(id) {
            return Ok(Some(*t));
        }
        let Some(rec) = self.target(ov, id)? else {
            return Ok(None);
        };
        let info = TargetInfo::of(&rec);
        if self.infos.len() >= Self::MAX_INFOS {
            self.infos.clear();
        }
        self.infos.insert(*id, info);
        Ok(Some(info))
    }

    fn take_tally<B: Backing>(
        &mut self,
        ov: &Overlay<'_, B>,
        id: &RecordId,
    ) -> Result<Option<PetitionTally>> {
        if let Some((t, _)) = self.tallies.get(id) {
            return Ok(Some(t.clone()));
        }
        let t: Option<PetitionTally> = get(ov, &key(keys::PETITION_TALLY, &[id.as_bytes()]))?;
        if let Some(t) = &t {
            self.tallies.insert(*id, (t.clone(), false));
        }
        Ok(t)
    }

    fn put_tally(&mut self, id: RecordId, t: PetitionTally) {
        self.tallies.insert(id, (t, true));
    }

    /// Writes the batch's changed tallies and the record count into the overlay.
    pub(crate) fn flush<B: Backing>(&mut self, ov: &mut Overlay<'_, B>) -> Result<()> {
        for (id, (t, dirty)) in self.tallies.drain() {
            if dirty {
                put(ov, key(keys::PETITION_TALLY, &[id.as_bytes()]), &t)?;
            }
        }
        if self.stored > 0 {
            let count: u64 = get(ov, COUNT_KEY)?.unwrap_or(0);
            put(ov, COUNT_KEY.to_vec(), &(count + self.stored))?;
            self.stored = 0;
        }
        Ok(())
    }

    /// Turns the batch's changes into events (after [`Ctx::flush`]).
    pub(crate) fn finish_events<B: Backing>(&mut self, ov: &Overlay<'_, B>) -> Result<Vec<Event>> {
        let mut events = std::mem::take(&mut self.events);
        for p in std::mem::take(&mut self.changed_petitions) {
            if let Some(t) =
                get::<PetitionTally, B>(ov, &key(keys::PETITION_TALLY, &[p.as_bytes()]))?
            {
                if self.crossed.contains(&p) && t.reached {
                    events.push(Event::ThresholdCrossed {
                        petition: p,
                        tally: Box::new(t.clone()),
                    });
                }
                events.push(Event::TallyChanged {
                    petition: p,
                    tally: Box::new(t),
                });
            }
        }
        self.crossed.clear();
        for (pk, (producer, code)) in std::mem::take(&mut self.changed_products) {
            let rating = get::<Rating, B>(ov, &key(keys::RATING, &[&pk]))?.unwrap_or_default();
            events.push(Event::RatingChanged {
                producer,
                code,
                rating,
            });
        }
        Ok(events)
    }

    fn clear_batch(&mut self) {
        self.tallies.clear();
        self.stored = 0;
        self.events.clear();
        self.changed_petitions.clear();
        self.crossed.clear();
        self.changed_products.clear();
    }
}

/// Can `rec` be applied now? Checks the kind rules that need the record it points at.
pub(crate) fn readiness<B: Backing>(
    ov: &Overlay<'_, B>,
    ctx: &mut Ctx,
    rec: &SignedRecord,
) -> Result<Readiness> {
    let r = rec.record();
    let need = |id: &RecordId, ctx: &mut Ctx| ctx.target_info(ov, id);
    Ok(match &r.body {
        Body::Join(j) => match need(&j.group, ctx)? {
            None => Readiness::Wait(j.group),
            Some(g) if g.kind == Kind::Group => Readiness::Ready,
            Some(_) => Readiness::Reject("join: target is not a group"),
        },
        Body::Admit(a) => match need(&a.group, ctx)? {
            None => Readiness::Wait(a.group),
            Some(g) if g.kind != Kind::Group => Readiness::Reject("admit: target is not a group"),
            Some(g) if g.author != r.author => {
                Readiness::Reject("admit: only the group's founder admits")
            }
            Some(_) => Readiness::Ready,
        },
        Body::Endorsement(e) => match need(&e.petition, ctx)? {
            None => Readiness::Wait(e.petition),
            Some(p) if p.kind != Kind::Petition => {
                Readiness::Reject("endorsement: target is not a petition")
            }
            Some(p) if p.topic != r.topic => {
                Readiness::Reject("endorsement: topic differs from the petition's")
            }
            Some(_) => Readiness::Ready,
        },
        Body::Retraction(x) => match need(&x.target, ctx)? {
            None => Readiness::Wait(x.target),
            Some(t) if t.author != r.author => {
                Readiness::Reject("retraction: only the author retracts")
            }
            Some(t) if t.kind == Kind::Retraction => {
                Readiness::Reject("retraction: a retraction cannot be retracted")
            }
            Some(t) if t.topic != r.topic => {
                Readiness::Reject("retraction: topic differs from the target's")
            }
            Some(_) => Readiness::Ready,
        },
        Body::Response(x) => match need(&x.target, ctx)? {
            None => Readiness::Wait(x.target),
            Some(t) => match t.producer {
                None => Readiness::Reject("response: target is not a petition or review"),
                Some(p) if p != r.author => {
                    Readiness::Reject("response: only the targeted producer answers")
                }
                Some(_) => Readiness::Ready,
            },
        },
        _ => Readiness::Ready,
    })
}

/// Offers a state to a slot; returns the previous winner if the new state wins.
fn offer<B: Backing>(
    ov: &mut Overlay<'_, B>,
    k: Vec<u8>,
    new: Slot,
) -> Result<Option<Option<Slot>>> {
    let old: Option<Slot> = get(ov, &k)?;
    if let Some(o) = &old {
        if o.order() >= new.order() {
            return Ok(None);
        }
    }
    put(ov, k, &new)?;
    Ok(Some(old))
}

fn slot_on<B: Backing>(ov: &Overlay<'_, B>, k: &[u8]) -> Result<bool> {
    Ok(get::<Slot, B>(ov, k)?.is_some_and(|s| s.on))
}

pub(crate) fn endorse_slot_prefix(petition: &RecordId) -> Vec<u8> {
    slot_key(b'E', &[petition.as_bytes()])
}

/// The winning record of an encoded slot, and whether it is an "on" state.
pub(crate) fn slot_winner(v: &[u8]) -> Result<(RecordId, bool)> {
    let s = Slot::decode(v)?;
    Ok((s.id, s.on))
}

/// Membership, derived: the founder always; others by their latest join, and in approval
/// groups also the founder's latest admit.
pub(crate) fn is_member<B: Backing>(
    ov: &Overlay<'_, B>,
    group: &RecordId,
    member: &AuthorKey,
) -> Result<bool> {
    let Some(g) = get::<GroupTally, B>(ov, &key(keys::GROUP_TALLY, &[group.as_bytes()]))? else {
        return Ok(false);
    };
    if g.founder == *member {
        return Ok(true);
    }
    if !slot_on(ov, &slot_key(b'J', &[group.as_bytes(), member.as_bytes()]))? {
        return Ok(false);
    }
    if g.admission == Admission::Open.as_str() {
        return Ok(true);
    }
    slot_on(ov, &slot_key(b'M', &[group.as_bytes(), member.as_bytes()]))
}

/// The id of an author's latest unretracted profile.
pub(crate) fn profile_id<B: Backing>(b: &B, author: &AuthorKey) -> Result<Option<RecordId>> {
    let s: Option<Slot> = read(b, &slot_key(b'F', &[author.as_bytes()]))?;
    Ok(s.filter(|s| s.on).map(|s| s.id))
}

/// Applies one record that is [`Readiness::Ready`]: stores it, indexes it, updates derived
/// state, and queues its events in `ctx`.
pub(crate) fn apply<B: Backing>(
    ov: &mut Overlay<'_, B>,
    ctx: &mut Ctx,
    rec: &SignedRecord,
) -> Result<()> {
    let r = rec.record();
    let id = rec.id();
    let at = r.created_at;
    // The wire bytes live under the topic/time key (sync order, mostly sequential inserts);
    // the id index points there.
    ov.put(keys::record(&id), keys::location(&r.topic, at));
    ov.put(
        keys::timed(keys::TOPIC, &keys::topic_bytes(&r.topic), at, &id),
        rec.wire().to_vec(),
    );
    ov.put(
        keys::timed(keys::AUTHOR, r.author.as_bytes(), at, &id),
        Vec::new(),
    );
    let target = r.body.target();
    if let Some(t) = &target {
        // A petition's endorsements are indexed by their slots (petition, author): the
        // latest state of each endorser, which is what anyone asks of them. One key less
        // for the commonest record.
        if r.kind() != Kind::Endorsement {
            ov.put(keys::timed(keys::TARGET, t.as_bytes(), at, &id), Vec::new());
        }
    }
    ctx.stored += 1;
    let seq = match &ctx.journal {
        Some(j) => j.record(ov, &r.topic, &id),
        None => None,
    };
    ctx.events.push(Event::RecordStored {
        id,
        kind: r.kind().to_string(),
        topic: r.topic.to_string(),
        author: r.author,
        created_at: at,
        target,
        seq,
    });

    match &r.body {
        Body::Profile(_) => {
            offer(
                ov,
                slot_key(b'F', &[r.author.as_bytes()]),
                Slot::new(rec, true),
            )?;
        }
        Body::Review(rv) => {
            let pk = keys::product_bytes(&rv.product);
            ov.put(keys::timed(keys::PRODUCT, &pk, at, &id), Vec::new());
            let mut s = Slot::new(rec, true);
            s.rating = Some(rv.rating);
            review_slot(
                ov,
                ctx,
                &pk,
                &rv.product.producer,
                &rv.product.code,
                &r.author,
                s,
            )?;
        }
        Body::Group(g) => {
            let tally = GroupTally {
                founder: r.author,
                admission: g.admission.as_str().to_string(),
                members: 0,
            };
            put(ov, key(keys::GROUP_TALLY, &[id.as_bytes()]), &tally)?;
            membership_changed(ov, ctx, &id, &r.author, false)?;
        }
        Body::Join(j) => membership_slot(ov, ctx, b'J', &j.group, &r.author, Slot::new(rec, true))?,
        Body::Admit(a) => {
            membership_slot(ov, ctx, b'M', &a.group, &a.member, Slot::new(rec, true))?
        }
        Body::Petition(p) => {
            if let Some(code) = &p.product {
                let pk = keys::product_bytes_of(&p.producer, code);
                ov.put(keys::timed(keys::PRODUCT, &pk, at, &id), Vec::new());
            }
            if let Some(g) = &p.group {
                ov.put(
                    key(keys::GROUP_PETITION, &[g.as_bytes(), id.as_bytes()]),
                    Vec::new(),
                );
            }
            let goal = match &p.variant {
                PetitionVariant::Campaign { goal } => Some((goal.value, goal.currency.clone())),
                _ => None,
            };
            let tally = PetitionTally {
                producer: p.producer,
                threshold: p.threshold,
                deadline: p.deadline,
                group: p.group,
                goal,
                endorsers: 0,
                member_endorsers: 0,
                pledged: BTreeMap::new(),
                reached: false,
                reached_at: None,
                withdrawn: false,
                response: None,
            };
            ctx.put_tally(id, tally);
            ctx.changed_petitions.insert(id);
        }
        Body::Endorsement(e) => {
            let mut s = Slot::new(rec, true);
            s.pledge = e.pledge.as_ref().map(|a| (a.value, a.currency.clone()));
            endorse_slot(ov, ctx, &e.petition, &r.author, s)?;
        }
        Body::Retraction(x) => {
            let Some(t) = ctx.target(ov, &x.target)? else {
                return Err(Error::Corrupt(
                    "retraction applied before its target".into(),
                ));
            };
            let off = Slot::new(rec, false);
            match &t.record().body {
                Body::Endorsement(e) => endorse_slot(ov, ctx, &e.petition, &r.author, off)?,
                Body::Review(rv) => {
                    let pk = keys::product_bytes(&rv.product);
                    review_slot(
                        ov,
                        ctx,
                        &pk,
                        &rv.product.producer,
                        &rv.product.code,
                        &r.author,
                        off,
                    )?;
                }
                Body::Join(j) => membership_slot(ov, ctx, b'J', &j.group, &r.author, off)?,
                Body::Admit(a) => membership_slot(ov, ctx, b'M', &a.group, &a.member, off)?,
                Body::Profile(_) => {
                    offer(ov, slot_key(b'F', &[r.author.as_bytes()]), off)?;
                }
                Body::Response(resp) => response_slot(ov, ctx, &resp.target, &r.author, off)?,
                Body::Petition(_) => {
                    // Withdrawal is final: every retraction is an "on" state of the W slot.
                    let mut s = Slot::new(rec, true);
                    s.on = true;
                    offer(ov, slot_key(b'W', &[x.target.as_bytes()]), s)?;
                    if let Some(mut tally) = ctx.take_tally(ov, &x.target)? {
                        if !tally.withdrawn {
                            tally.withdrawn = true;
                            ctx.put_tally(x.target, tally);
                            ctx.changed_petitions.insert(x.target);
                        }
                    }
                }
                Body::Group(_) | Body::Attestation(_) | Body::Retraction(_) => {}
            }
        }
        Body::Response(resp) => {
            let mut s = Slot::new(rec, true);
            s.status = Some(resp.status.as_str().to_string());
            response_slot(ov, ctx, &resp.target, &r.author, s)?;
            ctx.events.push(Event::Responded {
                target: resp.target,
                response: id,
                producer: r.author,
                status: resp.status.as_str().to_string(),
            });
        }
        Body::Attestation(_) => {}
    }
    Ok(())
}

/// Offers a state to a join (`J`) or admit (`M`) slot and follows the membership change.
fn membership_slot<B: Backing>(
    ov: &mut Overlay<'_, B>,
    ctx: &mut Ctx,
    class: u8,
    group: &RecordId,
    member: &AuthorKey,
    s: Slot,
) -> Result<()> {
    let before = is_member(ov, group, member)?;
    offer(
        ov,
        slot_key(class, &[group.as_bytes(), member.as_bytes()]),
        s,
    )?;
    membership_changed(ov, ctx, group, member, before)
}

fn review_slot<B: Backing>(
    ov: &mut Overlay<'_, B>,
    ctx: &mut Ctx,
    pk: &[u8; 64],
    producer: &AuthorKey,
    code: &str,
    author: &AuthorKey,
    s: Slot,
) -> Result<()> {
    let Some(old) = offer(ov, slot_key(b'V', &[pk, author.as_bytes()]), s.clone())? else {
        return Ok(());
    };
    let rk = key(keys::RATING, &[pk]);
    let mut rating: Rating = get(ov, &rk)?.unwrap_or_default();
    let mut changed = false;
    if let Some(Slot {
        on: true,
        rating: Some(v),
        ..
    }) = old
    {
        rating.count -= 1;
        rating.sum -= u64::from(v);
        rating.histogram[usize::from(v.clamp(1, 5) - 1)] -= 1;
        changed = true;
    }
    if let Slot {
        on: true,
        rating: Some(v),
        ..
    } = s
    {
        rating.count += 1;
        rating.sum += u64::from(v);
        rating.histogram[usize::from(v.clamp(1, 5) - 1)] += 1;
        changed = true;
    }
    if changed {
        put(ov, rk, &rating)?;
        ctx.changed_products
            .insert(*pk, (*producer, code.to_string()));
    }
    Ok(())
}

fn response_slot<B: Backing>(
    ov: &mut Overlay<'_, B>,
    ctx: &mut Ctx,
    target: &RecordId,
    producer: &AuthorKey,
    s: Slot,
) -> Result<()> {
    let k = slot_key(b'S', &[target.as_bytes(), producer.as_bytes()]);
    if offer(ov, k.clone(), s)?.is_none() {
        return Ok(());
    }
    if let Some(mut tally) = ctx.take_tally(ov, target)? {
        let winner: Option<Slot> = get(ov, &k)?;
        tally.response = winner.filter(|w| w.on).map(|w| ResponseInfo {
            id: w.id,
            status: w.status.unwrap_or_default(),
            created_at: w.at,
        });
        ctx.put_tally(*target, tally);
        ctx.changed_petitions.insert(*target);
    }
    Ok(())
}

fn add_pledge(tally: &mut PetitionTally, p: &Option<(u64, String)>, add: bool) {
    let Some((v, cur)) = p else { return };
    let e = tally.pledged.entry(cur.clone()).or_insert(0);
    *e = if add {
        e.saturating_add(u128::from(*v))
    } else {
        e.saturating_sub(u128::from(*v))
    };
    if *e == 0 {
        tally.pledged.remove(cur);
    }
}

fn endorse_slot<B: Backing>(
    ov: &mut Overlay<'_, B>,
    ctx: &mut Ctx,
    petition: &RecordId,
    author: &AuthorKey,
    s: Slot,
) -> Result<()> {
    let Some(mut tally) = ctx.take_tally(ov, petition)? else {
        return Err(Error::Corrupt(
            "endorsement applied before its petition".into(),
        ));
    };
    // The state at the deadline is final: later endorsements and retractions do not count.
    if tally.deadline.is_some_and(|d| s.at > d) {
        return Ok(());
    }
    let Some(old) = offer(
        ov,
        slot_key(b'E', &[petition.as_bytes(), author.as_bytes()]),
        s.clone(),
    )?
    else {
        return Ok(());
    };
    let old_on = old.as_ref().is_some_and(|o| o.on);
    let mut changed_ats = Vec::new();
    if old_on {
        tally.endorsers -= 1;
        if let Some(o) = &old {
            add_pledge(&mut tally, &o.pledge, false);
            changed_ats.push(o.at);
        }
    }
    if s.on {
        tally.endorsers += 1;
        add_pledge(&mut tally, &s.pledge, true);
        changed_ats.push(s.at);
    }
    if old_on != s.on {
        if let Some(g) = &tally.group {
            if is_member(ov, g, author)? {
                if s.on {
                    tally.member_endorsers += 1;
                } else {
                    tally.member_endorsers -= 1;
                }
            }
        }
    }
    let was = tally.reached;
    update_reached(ov, petition, &mut tally, &changed_ats)?;
    if tally.reached && !was {
        ctx.crossed.insert(*petition);
    }
    ctx.put_tally(*petition, tally);
    ctx.changed_petitions.insert(*petition);
    Ok(())
}

fn update_reached<B: Backing>(
    ov: &Overlay<'_, B>,
    petition: &RecordId,
    tally: &mut PetitionTally,
    changed_ats: &[u64],
) -> Result<()> {
    if tally.endorsers < tally.threshold {
        tally.reached = false;
        tally.reached_at = None;
        return Ok(());
    }
    // Changes after the current threshold-th endorsement cannot move it.
    if let (true, Some(t)) = (tally.reached, tally.reached_at) {
        if changed_ats.iter().all(|a| *a > t) {
            return Ok(());
        }
    }
    let mut ats: Vec<u64> = Vec::with_capacity(tally.endorsers as usize);
    for (_, v) in ov.scan_prefix(&slot_key(b'E', &[petition.as_bytes()]))? {
        let s = Slot::decode(&v)?;
        if s.on {
            ats.push(s.at);
        }
    }
    ats.sort_unstable();
    let k = usize::try_from(tally.threshold).unwrap_or(usize::MAX);
    tally.reached_at = ats.get(k.saturating_sub(1)).copied();
    tally.reached = tally.reached_at.is_some();
    Ok(())
}

/// Membership of `member` in `group` may have changed from `before`: update the group's
/// member count and the member counts of the group's petitions.
fn membership_changed<B: Backing>(
    ov: &mut Overlay<'_, B>,
    ctx: &mut Ctx,
    group: &RecordId,
    member: &AuthorKey,
    before: bool,
) -> Result<()> {
    let after = is_member(ov, group, member)?;
    if before == after {
        return Ok(());
    }
    let gk = key(keys::GROUP_TALLY, &[group.as_bytes()]);
    if let Some(mut g) = get::<GroupTally, B>(ov, &gk)? {
        if after {
            g.members += 1;
        } else {
            g.members -= 1;
        }
        put(ov, gk, &g)?;
    }
    for (k, _) in ov.scan_prefix(&key(keys::GROUP_PETITION, &[group.as_bytes()]))? {
        let Some(p) = k
            .get(33..65)
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .map(RecordId)
        else {
            continue;
        };
        if !slot_on(ov, &slot_key(b'E', &[p.as_bytes(), member.as_bytes()]))? {
            continue;
        }
        if let Some(mut t) = ctx.take_tally(ov, &p)? {
            if after {
                t.member_endorsers += 1;
            } else {
                t.member_endorsers -= 1;
            }
            ctx.put_tally(p, t);
            ctx.changed_petitions.insert(p);
        }
    }
    Ok(())
}

/// One disagreement between stored and recomputed derived state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Difference {
    /// The derived-state key, hex.
    pub key: String,
    /// What the store holds (hex of the encoded value), if anything.
    pub stored: Option<String>,
    /// What recomputing from raw records gives, if anything.
    pub recomputed: Option<String>,
}

/// The order `recompute` applies records in: anything a record may point at comes first.
fn rank(kind: Kind) -> u8 {
    match kind {
        Kind::Profile | Kind::Group | Kind::Petition | Kind::Review | Kind::Attestation => 0,
        Kind::Join | Kind::Admit | Kind::Endorsement | Kind::Response => 1,
        Kind::Retraction => 2,
    }
}

/// Rebuilds all derived state from the raw records in the store and compares it with the
/// stored derived state. An empty result means they agree. Records that no longer pass
/// their kind rules are reported as differences too.
pub fn recompute(store: &Store) -> Result<Vec<Difference>> {
    let mut recs: Vec<SignedRecord> = Vec::new();
    for wire in store.all_wires() {
        recs.push(SignedRecord::from_vec(wire?)?);
    }
    recs.sort_by_key(|r| rank(r.record().kind()));
    let mut mem: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    let mut ctx = Ctx::default();
    let mut diffs = Vec::new();
    for rec in &recs {
        let mut ov = Overlay::new(&mem);
        match readiness(&ov, &mut ctx, rec)? {
            Readiness::Ready => {
                apply(&mut ov, &mut ctx, rec)?;
                ctx.flush(&mut ov)?;
            }
            other => {
                diffs.push(Difference {
                    key: rec.id().to_string(),
                    stored: Some("record".into()),
                    recomputed: Some(format!("{other:?}")),
                });
                continue;
            }
        }
        ctx.clear_batch();
        for (k, v) in ov.into_writes() {
            match v {
                Some(v) => mem.insert(k, v),
                None => mem.remove(&k),
            };
        }
    }
    let mut prefixes = keys::DERIVED.to_vec();
    prefixes.push(COUNT_KEY[0]);
    for prefix in prefixes {
        let stored = store.derived_entries(prefix)?;
        let fresh: BTreeMap<&Vec<u8>, &Vec<u8>> = mem
            .range(vec![prefix]..)
            .take_while(|(k, _)| k.first() == Some(&prefix))
            .collect();
        for (k, v) in &stored {
            if fresh.get(k).map(|f| *f != v).unwrap_or(true) {
                diffs.push(Difference {
                    key: hex::encode(k),
                    stored: Some(hex::encode(v)),
                    recomputed: fresh.get(k).map(hex::encode),
                });
            }
        }
        for (k, v) in &fresh {
            if !stored.contains_key(*k) {
                diffs.push(Difference {
                    key: hex::encode(k),
                    stored: None,
                    recomputed: Some(hex::encode(v)),
                });
            }
        }
    }
    Ok(diffs)
}

/// The number of stored records (one key).
pub(crate) fn record_count<B: Backing>(b: &B) -> Result<u64> {
    Ok(read(b, COUNT_KEY)?.unwrap_or(0))
}

#[cfg(test)]
mod encoding_tests {
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
            producer: AuthorKey([7; 32]),
            threshold: 100,
            deadline: None,
            group: None,
            goal: None,
            endorsers: 3,
            member_endorsers: 0,
            pledged: BTreeMap::new(),
            reached: false,
            reached_at: None,
            withdrawn: false,
            response: None,
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
                reached_at: Some(42),
                withdrawn: true,
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
            assert_eq!(b[0], crate::store::codec::COMPACT);
            assert_eq!(Slot::decode(&b).unwrap(), s);
            assert!(b.len() < cbor_encode(&s).len(), "{} bytes", b.len());
        }
        // The commonest values: an endorsement's slot and a plain petition's tally.
        assert_eq!(slots()[0].encode().len(), 42);
        assert!(slots()[0].encode().len() * 2 < cbor_encode(&slots()[0]).len());
        assert_eq!(tallies()[0].encode().len(), 66);
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
