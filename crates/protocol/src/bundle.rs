//! Verifiable tally bundles and inclusion proofs (`docs/PROTOCOL.md` §14): what lets anyone
//! check a petition's count offline, from signed records alone.
//!
//! **Merkle root** of a set of record ids: sort the ids bytewise; leaves are
//! `BLAKE3(0x00 || id)`; each level pairs neighbours into `BLAKE3(0x01 || left || right)`, an
//! odd last node moving up unchanged; the root is the last node left. The empty set's root
//! is 32 zero bytes.
//!
//! A **bundle** holds a petition, its whole considered history (every endorsement and
//! retraction of one made by its close, verbatim wire bytes), its author's withdrawals, the
//! producer's responses, attestations, and the claimed `count`, `root` (over the counted
//! endorsements' ids) and `first_reached_at`. [`verify`] recomputes all three by replaying
//! the history, as a node does (PROTOCOL.md §9).

use std::collections::{BTreeMap, HashSet};

use ciborium::Value;

use crate::{Body, PetitionVariant, RecordId, SignedRecord};

/// What is wrong with a bundle or a proof; each names its culprit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    /// Not a bundle (CBOR shape, version).
    #[error("not a bundle: {0}")]
    Malformed(String),
    /// A record in the bundle is invalid (decoding, id or signature).
    #[error("{part} #{index} is invalid: {reason}")]
    InvalidRecord {
        /// Which list (`petition`, `endorsements`, ...).
        part: &'static str,
        /// Its position there.
        index: usize,
        /// Why.
        reason: String,
    },
    /// The same record twice.
    #[error("record {0} appears twice")]
    Duplicate(RecordId),
    /// A record that does not belong (wrong kind, petition, topic, author, deadline).
    #[error("record {id} does not belong in this bundle: {reason}")]
    Foreign {
        /// The record.
        id: RecordId,
        /// Why.
        reason: String,
    },
    /// The claimed count is not what the records give.
    #[error("the bundle claims {claimed} endorsers, its records give {actual}")]
    CountMismatch {
        /// In the bundle.
        claimed: u64,
        /// Recomputed.
        actual: u64,
    },
    /// The claimed `first_reached_at` is not what the replay of the history gives.
    #[error("the bundle claims first_reached_at {claimed:?}, its history gives {actual:?}")]
    FirstReachedMismatch {
        /// In the bundle.
        claimed: Option<u64>,
        /// Replayed.
        actual: Option<u64>,
    },
    /// The claimed root is not the root of the counted endorsements.
    #[error("the bundle's root {claimed} is not the root of its counted endorsements ({actual})")]
    RootMismatch {
        /// In the bundle, hex.
        claimed: String,
        /// Recomputed, hex.
        actual: String,
    },
}

fn leaf(id: &[u8; 32]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(&[0]);
    h.update(id);
    *h.finalize().as_bytes()
}

fn node(l: &[u8; 32], r: &[u8; 32]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(&[1]);
    h.update(l);
    h.update(r);
    *h.finalize().as_bytes()
}

fn levels(sorted: &[RecordId]) -> Vec<Vec<[u8; 32]>> {
    let mut out = vec![sorted
        .iter()
        .map(|id| leaf(id.as_bytes()))
        .collect::<Vec<_>>()];
    while out.last().is_some_and(|l| l.len() > 1) {
        let prev = out.last().map(Vec::as_slice).unwrap_or(&[]);
        let next: Vec<[u8; 32]> = prev
            .chunks(2)
            .map(|p| match p {
                [l, r] => node(l, r),
                [one] => *one,
                _ => [0; 32],
            })
            .collect();
        out.push(next);
    }
    out
}

/// The Merkle root of a set of ids (any order; duplicates count once).
pub fn merkle_root(ids: &[RecordId]) -> [u8; 32] {
    let mut sorted = ids.to_vec();
    sorted.sort();
    sorted.dedup();
    levels(&sorted)
        .last()
        .and_then(|l| l.first().copied())
        .unwrap_or([0; 32])
}

/// One step of an inclusion proof: a sibling hash and whether it is on the left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The sibling is the left input of the parent.
    pub left: bool,
    /// The sibling's hash.
    pub hash: [u8; 32],
}

/// The inclusion proof of `id` in the set `ids`, or `None` if it is not a member.
pub fn merkle_proof(ids: &[RecordId], id: &RecordId) -> Option<Vec<Step>> {
    let mut sorted = ids.to_vec();
    sorted.sort();
    sorted.dedup();
    let mut i = sorted.binary_search(id).ok()?;
    let mut path = Vec::new();
    for level in levels(&sorted) {
        if level.len() == 1 {
            break;
        }
        let sibling = i ^ 1;
        if let Some(h) = level.get(sibling) {
            path.push(Step {
                left: sibling < i,
                hash: *h,
            });
        }
        i /= 2;
    }
    Some(path)
}

/// Does this proof show `id` counted under `root`?
pub fn verify_proof(root: &[u8; 32], id: &RecordId, path: &[Step]) -> bool {
    let mut h = leaf(id.as_bytes());
    for s in path {
        h = if s.left {
            node(&s.hash, &h)
        } else {
            node(&h, &s.hash)
        };
    }
    h == *root
}

/// A verifiable bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle {
    /// The petition.
    pub petition: Vec<u8>,
    /// Counted endorsements.
    pub endorsements: Vec<Vec<u8>>,
    /// Retractions of endorsements in the bundle.
    pub retractions: Vec<Vec<u8>>,
    /// The targeted producer's responses.
    pub responses: Vec<Vec<u8>>,
    /// Attestations about the petition.
    pub attestations: Vec<Vec<u8>>,
    /// Claimed number of endorsers.
    pub count: u64,
    /// Claimed root of the counted endorsements' ids.
    pub root: [u8; 32],
    /// The petition's author's retractions of it (its withdrawals).
    pub withdrawals: Vec<Vec<u8>>,
    /// Claimed `first_reached_at` (PROTOCOL.md §9), `None` if never reached.
    pub first_reached_at: Option<u64>,
}

const PARTS: [&str; 5] = [
    "endorsements",
    "retractions",
    "withdrawals",
    "responses",
    "attestations",
];

/// The bundle format this code writes and reads.
pub const VERSION: u64 = 2;

impl Bundle {
    /// Encodes the bundle: a CBOR map with text keys in the canonical order (`v`, then by
    /// length and bytes: `root`, `count`, `petition`, `responses`, `retractions`,
    /// `withdrawals`, `attestations`, `endorsements`, `first_reached_at`).
    pub fn encode(&self) -> Vec<u8> {
        let list =
            |l: &[Vec<u8>]| Value::Array(l.iter().map(|w| Value::Bytes(w.clone())).collect());
        let mut m = vec![
            (Value::Text("v".into()), Value::Integer(VERSION.into())),
            (Value::Text("root".into()), Value::Bytes(self.root.to_vec())),
            (
                Value::Text("count".into()),
                Value::Integer(self.count.into()),
            ),
            (
                Value::Text("petition".into()),
                Value::Bytes(self.petition.clone()),
            ),
            (Value::Text("responses".into()), list(&self.responses)),
            (Value::Text("retractions".into()), list(&self.retractions)),
            (Value::Text("attestations".into()), list(&self.attestations)),
            (Value::Text("endorsements".into()), list(&self.endorsements)),
            (Value::Text("withdrawals".into()), list(&self.withdrawals)),
            (
                Value::Text("first_reached_at".into()),
                self.first_reached_at
                    .map_or(Value::Null, |t| Value::Integer(t.into())),
            ),
        ];
        m.sort_by(|(a, _), (b, _)| {
            let (a, b) = (a.as_text().unwrap_or(""), b.as_text().unwrap_or(""));
            a.len().cmp(&b.len()).then(a.cmp(b))
        });
        let mut out = Vec::new();
        let _ = ciborium::ser::into_writer(&Value::Map(m), &mut out);
        out
    }

    /// Decodes a bundle (its records are checked by [`verify`]).
    pub fn decode(bytes: &[u8]) -> Result<Bundle, BundleError> {
        let bad = |m: &str| BundleError::Malformed(m.to_string());
        let v: Value = ciborium::de::from_reader(bytes).map_err(|_| bad("not CBOR"))?;
        let Value::Map(m) = v else {
            return Err(bad("not a map"));
        };
        let mut fields: BTreeMap<String, Value> = BTreeMap::new();
        for (k, v) in m {
            let Value::Text(k) = k else {
                return Err(bad("a key is not text"));
            };
            if fields.insert(k.clone(), v).is_some() {
                return Err(BundleError::Malformed(format!("key {k} twice")));
            }
        }
        let take = |k: &str| {
            fields
                .get(k)
                .ok_or_else(|| BundleError::Malformed(format!("no {k}")))
        };
        match take("v")?.as_integer().and_then(|i| u64::try_from(i).ok()) {
            Some(VERSION) => {}
            Some(1) => {
                return Err(bad(
                    "a version-1 bundle, made before bundles carried withdrawals and \
                     first_reached_at: export it again from a current node",
                ))
            }
            _ => return Err(bad("unknown version")),
        }
        let bytes_of = |v: &Value| v.as_bytes().cloned().ok_or_else(|| bad("expected bytes"));
        let list = |k: &str| -> Result<Vec<Vec<u8>>, BundleError> {
            take(k)?
                .as_array()
                .ok_or_else(|| BundleError::Malformed(format!("{k} is not a list")))?
                .iter()
                .map(bytes_of)
                .collect()
        };
        if fields.len() != 10 {
            return Err(bad("unknown or missing fields"));
        }
        let root: [u8; 32] = bytes_of(take("root")?)?
            .try_into()
            .map_err(|_| bad("root is not 32 bytes"))?;
        Ok(Bundle {
            petition: bytes_of(take("petition")?)?,
            endorsements: list("endorsements")?,
            retractions: list("retractions")?,
            responses: list("responses")?,
            attestations: list("attestations")?,
            count: take("count")?
                .as_integer()
                .and_then(|i| u64::try_from(i).ok())
                .ok_or_else(|| bad("count is not a number"))?,
            root,
            withdrawals: list("withdrawals")?,
            first_reached_at: match take("first_reached_at")? {
                Value::Null => None,
                v => Some(
                    v.as_integer()
                        .and_then(|i| u64::try_from(i).ok())
                        .ok_or_else(|| bad("first_reached_at is neither a number nor null"))?,
                ),
            },
        })
    }
}

/// What a bundle proves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The petition.
    pub petition: SignedRecord,
    /// Distinct endorsers counted.
    pub count: u64,
    /// Root of the counted endorsements' ids.
    pub root: [u8; 32],
    /// Ids of the counted endorsements.
    pub counted: Vec<RecordId>,
    /// The producer's latest response (status), if any.
    pub response: Option<(RecordId, String)>,
    /// Whether that response cites this bundle's root (`None`: it cites no root), i.e.
    /// whether the producer acknowledged exactly these endorsements.
    pub response_cites_root: Option<bool>,
    /// A campaign's pledged total over the counted endorsements (hundredths) and its
    /// currency; `None` outside campaigns.
    pub pledged: Option<(u128, String)>,
    /// A campaign reached: the pledged total meets the goal and `count` ≥ `threshold`
    /// (PROTOCOL.md §9); always false outside campaigns.
    pub funded: bool,
    /// When the petition was first reached (replayed from the history, §9), if ever.
    pub first_reached_at: Option<u64>,
    /// Its earliest withdrawal's `created_at`, if its author withdrew it.
    pub withdrawn_at: Option<u64>,
}

impl Verified {
    /// A campaign's outcome judged at `now` (ms): `funded` or `failed` once its deadline
    /// has passed (a failed campaign's pledges are void), `running` before; `None` outside
    /// campaigns or for a campaign without a deadline.
    /// A withdrawn campaign keeps the pledges made by its withdrawal and is judged at its
    /// deadline like any other.
    pub fn outcome(&self, now: u64) -> Option<&'static str> {
        self.pledged.as_ref()?;
        let Body::Petition(p) = &self.petition.record().body else {
            return None;
        };
        let d = p.deadline?;
        Some(match (d < now, self.funded) {
            (false, _) => "running",
            (true, true) => "funded",
            (true, false) => "failed",
        })
    }

    /// The petition's state judged at `now` (ms): `withdrawn`, else `closed` once its
    /// deadline has passed, else `open` (§9).
    pub fn state(&self, now: u64) -> &'static str {
        let deadline = match &self.petition.record().body {
            Body::Petition(p) => p.deadline,
            _ => None,
        };
        if self.withdrawn_at.is_some() {
            "withdrawn"
        } else if deadline.is_some_and(|d| d < now) {
            "closed"
        } else {
            "open"
        }
    }
}

fn open(part: &'static str, index: usize, wire: &[u8]) -> Result<SignedRecord, BundleError> {
    let invalid = |reason: String| BundleError::InvalidRecord {
        part,
        index,
        reason,
    };
    let rec = SignedRecord::from_bytes(wire).map_err(|e| invalid(e.to_string()))?;
    rec.verify().map_err(|e| invalid(e.to_string()))?;
    Ok(rec)
}

/// One record of a petition's history, as the replay of [`verify`] sees it.
struct Entry {
    at: u64,
    id: RecordId,
    author: [u8; 32],
    /// An endorsement (with its pledge in hundredths, 0 outside campaigns), or a retraction.
    on: Option<u128>,
}

/// Checks every piece of a bundle and recomputes what it proves.
pub fn verify(b: &Bundle) -> Result<Verified, BundleError> {
    let petition = open("petition", 0, &b.petition)?;
    let Body::Petition(p) = &petition.record().body else {
        return Err(BundleError::Foreign {
            id: petition.id(),
            reason: "the bundle's petition is not a petition".into(),
        });
    };
    let mut seen = HashSet::from([petition.id()]);
    let mut parts: BTreeMap<&str, Vec<SignedRecord>> = BTreeMap::new();
    for (name, list) in PARTS.iter().zip([
        &b.endorsements,
        &b.retractions,
        &b.withdrawals,
        &b.responses,
        &b.attestations,
    ]) {
        let mut recs = Vec::new();
        for (i, w) in list.iter().enumerate() {
            let r = open(name, i, w)?;
            if !seen.insert(r.id()) {
                return Err(BundleError::Duplicate(r.id()));
            }
            recs.push(r);
        }
        parts.insert(name, recs);
    }
    let foreign = |r: &SignedRecord, reason: &str| BundleError::Foreign {
        id: r.id(),
        reason: reason.to_string(),
    };
    let empty = Vec::new();
    let part = |name: &str| parts.get(name).unwrap_or(&empty);
    let mut withdrawn_at: Option<u64> = None;
    for w in part("withdrawals") {
        match &w.record().body {
            Body::Retraction(x) if x.target == petition.id() && w.author() == petition.author() => {
            }
            _ => return Err(foreign(w, "not its author's withdrawal of this petition")),
        }
        let at = w.record().created_at;
        withdrawn_at = Some(withdrawn_at.map_or(at, |m| m.min(at)));
    }
    let closes_at = match (p.deadline, withdrawn_at) {
        (Some(d), Some(w)) => Some(d.min(w)),
        (d, w) => d.or(w),
    };
    let by_close = |r: &SignedRecord| closes_at.is_none_or(|c| r.record().created_at <= c);
    let goal = match &p.variant {
        PetitionVariant::Campaign { goal } => Some(goal),
        _ => None,
    };
    // Endorsements made after the close do not count; one is only here as the target of
    // a retraction made by then (which does count, §9).
    let retracted: HashSet<RecordId> = part("retractions")
        .iter()
        .filter_map(|r| match &r.record().body {
            Body::Retraction(x) => Some(x.target),
            _ => None,
        })
        .collect();
    let mut history = Vec::new();
    let mut by_id = BTreeMap::new();
    for e in part("endorsements") {
        let pledge = match &e.record().body {
            Body::Endorsement(x) if x.petition == petition.id() => x.pledge.as_ref(),
            _ => return Err(foreign(e, "not an endorsement of this petition")),
        };
        if e.record().topic != petition.record().topic {
            return Err(foreign(e, "not on the petition's topic"));
        }
        if let (Some(goal), Some(a)) = (goal, pledge) {
            if a.currency != goal.currency {
                return Err(foreign(
                    e,
                    "pledges in another currency than the campaign's",
                ));
            }
        }
        by_id.insert(e.id(), e);
        if !by_close(e) {
            if retracted.contains(&e.id()) {
                continue;
            }
            return Err(foreign(
                e,
                "created after the petition closed (its deadline or withdrawal)",
            ));
        }
        history.push(Entry {
            at: e.record().created_at,
            id: e.id(),
            author: *e.author().as_bytes(),
            on: Some(match goal {
                Some(_) => pledge.map_or(0, |a| u128::from(a.value)),
                None => 0,
            }),
        });
    }
    for r in part("retractions") {
        let Body::Retraction(x) = &r.record().body else {
            return Err(foreign(r, "not a retraction"));
        };
        let Some(target) = by_id.get(&x.target) else {
            return Err(foreign(r, "retracts no endorsement of this bundle"));
        };
        if target.author() != r.author() {
            return Err(foreign(r, "retracts someone else's endorsement"));
        }
        if by_close(r) {
            history.push(Entry {
                at: r.record().created_at,
                id: r.id(),
                author: *r.author().as_bytes(),
                on: None,
            });
        }
    }
    let mut response = None;
    let mut response_root: Option<[u8; 32]> = None;
    for r in part("responses") {
        let Body::Response(x) = &r.record().body else {
            return Err(foreign(r, "not a response"));
        };
        if x.target != petition.id() || r.author() != p.producer {
            return Err(foreign(
                r,
                "not the targeted producer's answer to this petition",
            ));
        }
        let newer = response
            .as_ref()
            .is_none_or(|(at, id, _): &(u64, RecordId, String)| {
                (r.record().created_at, r.id()) > (*at, *id)
            });
        if newer {
            response = Some((r.record().created_at, r.id(), x.status.as_str().to_string()));
            response_root = x.root;
        }
    }
    for a in part("attestations") {
        let about = match &a.record().body {
            Body::Attestation(x) => x.subject == crate::Subject::Record(petition.id()),
            _ => false,
        };
        if !about {
            return Err(foreign(a, "not an attestation about this petition"));
        }
    }
    // Replay the history in (created_at, id) order: each record makes its author's state
    // its own; the latest stands, and the first record after which the petition is reached
    // gives `first_reached_at` (§9).
    history.sort_by_key(|s| (s.at, s.id));
    let meets = |n: usize, sum: u128| {
        n as u64 >= p.threshold && goal.is_none_or(|g| sum >= u128::from(g.value))
    };
    let mut standing: BTreeMap<[u8; 32], (RecordId, u128)> = BTreeMap::new();
    let mut total: u128 = 0;
    let mut first_reached_at = None;
    for s in &history {
        if let Some((_, old)) = standing.remove(&s.author) {
            total -= old;
        }
        if let Some(pledge) = s.on {
            standing.insert(s.author, (s.id, pledge));
            total += pledge;
        }
        if first_reached_at.is_none() && meets(standing.len(), total) {
            first_reached_at = Some(s.at);
        }
    }
    let counted: Vec<RecordId> = standing.values().map(|(id, _)| *id).collect();
    let count = counted.len() as u64;
    let root = merkle_root(&counted);
    let pledged = goal.map(|g| (total, g.currency.clone()));
    let funded = goal.is_some() && meets(standing.len(), total);
    if count != b.count {
        return Err(BundleError::CountMismatch {
            claimed: b.count,
            actual: count,
        });
    }
    if root != b.root {
        return Err(BundleError::RootMismatch {
            claimed: hex::encode(b.root),
            actual: hex::encode(root),
        });
    }
    if first_reached_at != b.first_reached_at {
        return Err(BundleError::FirstReachedMismatch {
            claimed: b.first_reached_at,
            actual: first_reached_at,
        });
    }
    Ok(Verified {
        petition,
        count,
        root,
        counted,
        response_cites_root: response
            .as_ref()
            .and_then(|_| response_root.map(|r| r == root)),
        response: response.map(|(_, id, s)| (id, s)),
        pledged,
        funded,
        first_reached_at,
        withdrawn_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: u8) -> Vec<RecordId> {
        (0..n)
            .map(|i| RecordId(*blake3::hash(&[i]).as_bytes()))
            .collect()
    }

    #[test]
    fn proofs_verify_for_members_only_at_every_size() {
        assert_eq!(merkle_root(&[]), [0; 32]);
        for n in 1..=17u8 {
            let set = ids(n);
            let root = merkle_root(&set);
            for id in &set {
                let path = merkle_proof(&set, id).unwrap();
                assert!(verify_proof(&root, id, &path), "n={n}");
                let mut wrong = path.clone();
                if let Some(s) = wrong.first_mut() {
                    s.hash[0] ^= 1;
                    assert!(!verify_proof(&root, id, &wrong));
                }
            }
            let stranger = RecordId([0xee; 32]);
            assert!(merkle_proof(&set, &stranger).is_none());
            assert!(!verify_proof(
                &root,
                &stranger,
                &merkle_proof(&set, &set[0]).unwrap()
            ));
        }
        // Order does not matter.
        let mut rev = ids(9);
        rev.reverse();
        assert_eq!(merkle_root(&rev), merkle_root(&ids(9)));
    }
}

#[cfg(test)]
pub(crate) mod bundle_tests {
    use super::*;
    use crate::testing::key;
    use crate::{
        Endorsement, Petition, PetitionVariant, RecordBuilder, Response, ResponseStatus, Retraction,
    };

    const T0: u64 = 1_700_000_000_000;

    fn petition() -> SignedRecord {
        RecordBuilder::new(Body::Petition(Petition {
            producer: crate::testing::author(1),
            product: None,
            group: None,
            title: "Spare parts".into(),
            text: "Sell them.".into(),
            threshold: 3,
            deadline: Some(T0 + 1_000_000),
            variant: PetitionVariant::Demand,
        }))
        .created_at(T0)
        .sign(&key(2))
        .unwrap()
    }

    pub(crate) fn about(p: &SignedRecord, k: u8, at: u64, body: Body) -> SignedRecord {
        RecordBuilder::new(body)
            .created_at(at)
            .topic(p.record().topic)
            .sign(&key(k))
            .unwrap()
    }

    fn endorse(p: &SignedRecord, k: u8, at: u64) -> SignedRecord {
        about(
            p,
            k,
            at,
            Body::Endorsement(Endorsement {
                petition: p.id(),
                comment: None,
                pledge: None,
            }),
        )
    }

    /// A bundle of 5 endorsers, one of whom retracted, and the producer's answer.
    pub(crate) fn sample() -> (Bundle, Vec<RecordId>) {
        let p = petition();
        let es: Vec<SignedRecord> = (10..15)
            .map(|k| endorse(&p, k, T0 + u64::from(k)))
            .collect();
        let r = about(
            &p,
            14,
            T0 + 100,
            Body::Retraction(Retraction { target: es[4].id() }),
        );
        let resp = RecordBuilder::new(Body::Response(Response {
            target: p.id(),
            status: ResponseStatus::Acknowledged,
            text: "Seen.".into(),
            root: None,
        }))
        .created_at(T0 + 200)
        .sign(&key(1))
        .unwrap();
        let counted: Vec<RecordId> = es[..4].iter().map(|e| e.id()).collect();
        let b = Bundle {
            petition: p.wire().to_vec(),
            endorsements: es.iter().map(|e| e.wire().to_vec()).collect(),
            retractions: vec![r.wire().to_vec()],
            responses: vec![resp.wire().to_vec()],
            attestations: vec![],
            count: 4,
            root: merkle_root(&counted),
            withdrawals: vec![],
            // The third endorser (T0 + 12) met the threshold of 3.
            first_reached_at: Some(T0 + 12),
        };
        (b, counted)
    }

    #[test]
    fn a_bundle_round_trips_and_proves_its_count() {
        let (b, counted) = sample();
        let bytes = b.encode();
        assert_eq!(Bundle::decode(&bytes).unwrap(), b);
        let v = verify(&b).unwrap();
        assert_eq!(v.count, 4);
        let mut c = counted.clone();
        c.sort();
        let mut got = v.counted.clone();
        got.sort();
        assert_eq!(got, c);
        assert_eq!(
            v.response.as_ref().map(|r| r.1.as_str()),
            Some("acknowledged")
        );
    }

    #[test]
    fn a_campaign_bundle_proves_its_pledged_total_and_outcome_and_refuses_other_currencies() {
        let p = RecordBuilder::new(Body::Petition(Petition {
            producer: crate::testing::author(1),
            product: None,
            group: None,
            title: "Tooling".into(),
            text: "Fund the mould.".into(),
            threshold: 2,
            deadline: Some(T0 + 1_000),
            variant: PetitionVariant::Campaign {
                goal: "30EUR".parse().unwrap(),
            },
        }))
        .created_at(T0)
        .sign(&key(2))
        .unwrap();
        let pledge = |k: u8, amount: &str| {
            about(
                &p,
                k,
                T0 + u64::from(k),
                Body::Endorsement(Endorsement {
                    petition: p.id(),
                    comment: None,
                    pledge: Some(amount.parse().unwrap()),
                }),
            )
        };
        let bundle = |es: &[&SignedRecord], first_reached_at| Bundle {
            petition: p.wire().to_vec(),
            endorsements: es.iter().map(|e| e.wire().to_vec()).collect(),
            retractions: vec![],
            responses: vec![],
            attestations: vec![],
            count: es.len() as u64,
            root: merkle_root(&es.iter().map(|e| e.id()).collect::<Vec<_>>()),
            withdrawals: vec![],
            first_reached_at,
        };
        let (a, b) = (pledge(10, "20EUR"), pledge(11, "5EUR"));
        let v = verify(&bundle(&[&a, &b], None)).unwrap();
        assert_eq!(v.pledged, Some((2_500, "EUR".to_string())));
        assert!(!v.funded, "25 of 30 EUR");
        assert_eq!(v.outcome(T0 + 1_000), Some("running"));
        assert_eq!(v.outcome(T0 + 1_001), Some("failed"));
        let c = pledge(12, "10EUR");
        // Two backers were enough from the start; the goal was met by the third (T0 + 12).
        assert!(matches!(
            verify(&bundle(&[&a, &b, &c], Some(T0 + 11))),
            Err(BundleError::FirstReachedMismatch {
                claimed: Some(_),
                actual: Some(at)
            }) if at == T0 + 12
        ));
        let v = verify(&bundle(&[&a, &b, &c], Some(T0 + 12))).unwrap();
        assert_eq!(v.pledged, Some((3_500, "EUR".to_string())));
        assert!(v.funded);
        assert_eq!(v.first_reached_at, Some(T0 + 12));
        assert_eq!(v.outcome(T0 + 5_000), Some("funded"));
        let dollars = pledge(13, "10USD");
        assert!(matches!(
            verify(&bundle(&[&a, &dollars], None)),
            Err(BundleError::Foreign { id, .. }) if id == dollars.id()
        ));
        // Outside campaigns there is no total and no outcome.
        let (plain, _) = sample();
        let v = verify(&plain).unwrap();
        assert_eq!(
            (&v.pledged, v.funded, v.outcome(u64::MAX)),
            (&None, false, None)
        );
    }

    /// A bundle of `p` holding exactly these records, its claims computed by hand.
    fn claim(
        p: &SignedRecord,
        es: &[&SignedRecord],
        rs: &[&SignedRecord],
        ws: &[&SignedRecord],
        counted: &[&SignedRecord],
        first_reached_at: Option<u64>,
    ) -> Bundle {
        let wire = |l: &[&SignedRecord]| l.iter().map(|r| r.wire().to_vec()).collect();
        Bundle {
            petition: p.wire().to_vec(),
            endorsements: wire(es),
            retractions: wire(rs),
            responses: vec![],
            attestations: vec![],
            count: counted.len() as u64,
            root: merkle_root(&counted.iter().map(|e| e.id()).collect::<Vec<_>>()),
            withdrawals: wire(ws),
            first_reached_at,
        }
    }

    #[test]
    fn first_reached_at_is_replayed_from_the_whole_history_and_an_update_never_moves_it() {
        let p = petition(); // threshold 3
        let retract = |k: u8, at: u64, e: &SignedRecord| {
            about(&p, k, at, Body::Retraction(Retraction { target: e.id() }))
        };
        let (a, b, c) = (
            endorse(&p, 10, T0 + 10),
            endorse(&p, 11, T0 + 20),
            endorse(&p, 12, T0 + 30),
        );
        // b drops out, comes back later with a new endorsement; a updates theirs.
        let b_out = retract(11, T0 + 40, &b);
        let b_again = endorse(&p, 11, T0 + 50);
        let a_update = endorse(&p, 10, T0 + 60);
        let es = [&a, &b, &c, &b_again, &a_update];
        let counted = [&a_update, &b_again, &c];
        let v = verify(&claim(&p, &es, &[&b_out], &[], &counted, Some(T0 + 30))).unwrap();
        assert_eq!((v.count, v.first_reached_at), (3, Some(T0 + 30)));
        assert_eq!(v.state(T0), "open");
        // In any order of the lists, the same replay.
        let rev = [&a_update, &b_again, &c, &b, &a];
        assert!(verify(&claim(&p, &rev, &[&b_out], &[], &counted, Some(T0 + 30))).is_ok());
        // Claiming the time of the update, or of the come-back, is caught.
        for wrong in [Some(T0 + 50), Some(T0 + 60), None] {
            assert!(matches!(
                verify(&claim(&p, &es, &[&b_out], &[], &counted, wrong)),
                Err(BundleError::FirstReachedMismatch { .. })
            ));
        }
        // Without b's drop-out the count is still 3 (b counted once), reached at T0 + 30.
        let counted = [&a_update, &b_again, &c];
        assert!(verify(&claim(&p, &es, &[], &[], &counted, Some(T0 + 30))).is_ok());
    }

    #[test]
    fn a_withdrawal_closes_the_petition_for_what_is_made_after_it() {
        let p = petition(); // by key 2, threshold 3, deadline T0 + 1,000,000
        let withdraw =
            |k: u8, at: u64| about(&p, k, at, Body::Retraction(Retraction { target: p.id() }));
        let w = withdraw(2, T0 + 100);
        let (a, b) = (endorse(&p, 10, T0 + 10), endorse(&p, 11, T0 + 20));
        let late = endorse(&p, 12, T0 + 200);
        let v = verify(&claim(&p, &[&a, &b], &[], &[&w], &[&a, &b], None)).unwrap();
        assert_eq!(
            (v.count, v.withdrawn_at, v.state(T0 + 150)),
            (2, Some(T0 + 100), "withdrawn")
        );
        // An endorsement made after the withdrawal does not belong.
        assert!(matches!(
            verify(&claim(&p, &[&a, &b, &late], &[], &[&w], &[&a, &b, &late], Some(T0 + 200))),
            Err(BundleError::Foreign { id, .. }) if id == late.id()
        ));
        // Unless it is there as the target of a retraction made before the close, which
        // counts: its author is out.
        // (Timestamps are the authors' word: here b's retraction says T0 + 50, before the
        // endorsement it retracts.)
        let late_b = endorse(&p, 11, T0 + 300);
        let early_out = about(
            &p,
            11,
            T0 + 50,
            Body::Retraction(Retraction {
                target: late_b.id(),
            }),
        );
        let v = verify(&claim(
            &p,
            &[&a, &b, &late_b],
            &[&early_out],
            &[&w],
            &[&a],
            None,
        ))
        .unwrap();
        assert_eq!(v.count, 1);
        // A retraction of someone else's endorsement is refused, as ever.
        let wrong = about(
            &p,
            11,
            T0 + 50,
            Body::Retraction(Retraction { target: late.id() }),
        );
        assert!(matches!(
            verify(&claim(&p, &[&a, &late], &[&wrong], &[&w], &[&a], None)),
            Err(BundleError::Foreign { id, .. }) if id == wrong.id()
        ));
        // Only the petition's author withdraws it.
        let stranger = withdraw(9, T0 + 100);
        assert!(matches!(
            verify(&claim(&p, &[&a, &b], &[], &[&stranger], &[&a, &b], None)),
            Err(BundleError::Foreign { id, .. }) if id == stranger.id()
        ));
        // Without the withdrawal, the petition is open until its deadline, then closed.
        let v = verify(&claim(&p, &[&a, &b], &[], &[], &[&a, &b], None)).unwrap();
        assert_eq!(
            (v.state(T0 + 1_000_000), v.state(T0 + 1_000_001)),
            ("open", "closed")
        );
    }

    #[test]
    fn a_version_1_bundle_is_refused_with_what_to_do() {
        let (b, _) = sample();
        let mut bytes = b.encode();
        // `v` is the first key: a1 76 02 → a1 76 01 ("v": 1).
        let at = bytes.windows(2).position(|w| w == [0x61, 0x76]).unwrap() + 2;
        assert_eq!(bytes[at], 0x02);
        bytes[at] = 0x01;
        let e = Bundle::decode(&bytes).unwrap_err().to_string();
        assert!(e.contains("export it again"), "{e}");
    }

    #[test]
    fn every_byte_level_tampering_is_detected() {
        let (b, _) = sample();
        let bytes = b.encode();
        // Flip every bit position of one byte at a time, across the whole file.
        for i in 0..bytes.len() {
            let mut t = bytes.clone();
            t[i] ^= 0x01;
            let verdict = Bundle::decode(&t).and_then(|x| verify(&x).map(|_| ()));
            assert!(verdict.is_err(), "flipping byte {i} went unnoticed");
        }
    }

    #[test]
    fn missing_duplicated_forged_and_foreign_pieces_are_named() {
        let (b, _) = sample();
        let mut missing = b.clone();
        missing.endorsements.remove(0);
        assert!(matches!(
            verify(&missing),
            Err(BundleError::CountMismatch {
                claimed: 4,
                actual: 3
            })
        ));
        let mut dup = b.clone();
        dup.endorsements.push(b.endorsements[1].clone());
        assert!(matches!(verify(&dup), Err(BundleError::Duplicate(_))));
        let mut forged = b.clone();
        let n = forged.endorsements[2].len();
        forged.endorsements[2][n - 2] ^= 4;
        assert!(matches!(
            verify(&forged),
            Err(BundleError::InvalidRecord {
                part: "endorsements",
                index: 2,
                ..
            })
        ));
        let mut inflated = b.clone();
        inflated.count = 5;
        assert!(matches!(
            verify(&inflated),
            Err(BundleError::CountMismatch { .. })
        ));
        let mut wrong_root = b.clone();
        wrong_root.root[0] ^= 1;
        assert!(matches!(
            verify(&wrong_root),
            Err(BundleError::RootMismatch { .. })
        ));
        // A response by someone else than the producer.
        let p = petition();
        let fake = RecordBuilder::new(Body::Response(Response {
            target: p.id(),
            status: ResponseStatus::Done,
            text: "Done!".into(),
            root: None,
        }))
        .created_at(T0 + 300)
        .sign(&key(9))
        .unwrap();
        let mut foreign = b.clone();
        foreign.responses.push(fake.wire().to_vec());
        assert!(
            matches!(verify(&foreign), Err(BundleError::Foreign { id, .. }) if id == fake.id())
        );
        // An endorsement after the deadline.
        let late = endorse(&p, 30, T0 + 2_000_000);
        let mut l = b.clone();
        l.endorsements.push(late.wire().to_vec());
        assert!(matches!(verify(&l), Err(BundleError::Foreign { id, .. }) if id == late.id()));
        // An attestation about something else.
        let stray = RecordBuilder::new(Body::Attestation(crate::Attestation {
            subject: crate::Subject::Record(RecordId([5; 32])),
            verdict: crate::Verdict::Valid,
            count: None,
            root: None,
            note: None,
        }))
        .created_at(T0 + 400)
        .topic(p.record().topic)
        .sign(&key(8))
        .unwrap();
        let mut a = b.clone();
        a.attestations.push(stray.wire().to_vec());
        assert!(matches!(verify(&a), Err(BundleError::Foreign { id, .. }) if id == stray.id()));
    }

    #[test]
    fn a_response_citing_the_root_shows_the_producer_saw_every_endorsement() {
        let (mut b, _) = sample();
        assert_eq!(verify(&b).unwrap().response_cites_root, None);
        let p = petition();
        let cite = |root: [u8; 32], at: u64| {
            RecordBuilder::new(Body::Response(Response {
                target: p.id(),
                status: ResponseStatus::Accepted,
                text: "All of you.".into(),
                root: Some(root),
            }))
            .created_at(at)
            .sign(&key(1))
            .unwrap()
        };
        b.responses.push(cite(b.root, T0 + 500).wire().to_vec());
        let v = verify(&b).unwrap();
        assert_eq!(v.response_cites_root, Some(true));
        assert_eq!(v.response.unwrap().1, "accepted");
        b.responses.push(cite([7; 32], T0 + 600).wire().to_vec());
        assert_eq!(verify(&b).unwrap().response_cites_root, Some(false));
    }
}

#[cfg(test)]
mod vectors {
    //! `docs/test-bundle.cbor` and `docs/test-proof.json`: a bundle and an inclusion proof
    //! that other implementations check themselves against. `CHORUS_BLESS=1 cargo test -p
    //! chorus-protocol bundle` rewrites them.
    use super::*;

    fn docs(name: &str) -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../docs")
            .join(name)
    }

    #[test]
    fn the_committed_bundle_and_proof_vectors_match_the_code() {
        let (b, counted) = super::bundle_tests::sample();
        let bytes = b.encode();
        let v = verify(&b).unwrap();
        let mut sorted = counted.clone();
        sorted.sort();
        let id = sorted[1];
        let path = merkle_proof(&counted, &id).unwrap();
        let proof = serde_json::json!({
            "petition": v.petition.id().to_string(),
            "endorsement": id.to_string(),
            "count": v.count,
            "root": hex::encode(v.root),
            "path": path.iter().map(|s| serde_json::json!({"left": s.left, "hash": hex::encode(s.hash)})).collect::<Vec<_>>(),
            "counted_sorted": sorted.iter().map(|i| i.to_string()).collect::<Vec<_>>(),
        });
        let proof_text = serde_json::to_string_pretty(&proof).unwrap() + "\n";
        if std::env::var_os("CHORUS_BLESS").is_some() {
            std::fs::write(docs("test-bundle.cbor"), &bytes).unwrap();
            std::fs::write(docs("test-proof.json"), &proof_text).unwrap();
        }
        let committed = std::fs::read(docs("test-bundle.cbor")).expect(
            "docs/test-bundle.cbor missing: CHORUS_BLESS=1 cargo test -p chorus-protocol bundle",
        );
        assert_eq!(committed, bytes, "docs/test-bundle.cbor is stale");
        let committed = std::fs::read_to_string(docs("test-proof.json")).unwrap();
        assert_eq!(committed, proof_text, "docs/test-proof.json is stale");
        // And the committed bundle verifies on its own.
        let again = verify(&Bundle::decode(&committed_bytes()).unwrap()).unwrap();
        assert_eq!((again.count, again.root), (4, v.root));
    }

    /// A campaign (goal 30EUR, threshold 2) whose pledges reached the goal, an update of a
    /// pledge, a backer who dropped out, its author's withdrawal, and a pledge made after it
    /// that a retraction dated before it names (so it is in the bundle and counts for
    /// nothing).
    fn campaign() -> (Bundle, serde_json::Value) {
        use crate::testing::key;
        use crate::{Petition, Retraction};
        const T0: u64 = 1_767_000_000_000;
        let p = crate::RecordBuilder::new(Body::Petition(Petition {
            producer: crate::testing::author(1),
            product: None,
            group: None,
            title: "Tooling".into(),
            text: "Fund the mould.".into(),
            threshold: 2,
            deadline: Some(T0 + 1_000_000),
            variant: crate::PetitionVariant::Campaign {
                goal: "30EUR".parse().unwrap(),
            },
        }))
        .created_at(T0)
        .sign(&key(2))
        .unwrap();
        let about = |k: u8, at: u64, body: Body| super::bundle_tests::about(&p, k, at, body);
        let pledge =
            |k: u8, at: u64, amount: &str| crate::testing::pledge(&p, &key(k), at, Some(amount));
        let retract = |k: u8, at: u64, id: RecordId| {
            about(k, at, Body::Retraction(Retraction { target: id }))
        };
        let a = pledge(10, T0 + 10, "20EUR");
        let b = pledge(11, T0 + 20, "5EUR");
        let c = pledge(12, T0 + 30, "10EUR"); // 35 of 30: reached here
        let b2 = pledge(11, T0 + 40, "8EUR"); // an update: moves nothing
        let c_out = retract(12, T0 + 50, c.id()); // 28 of 30: no longer reached
        let withdrawal = retract(2, T0 + 60, p.id());
        let late = pledge(13, T0 + 70, "100EUR"); // after the withdrawal
        let late_out = retract(13, T0 + 55, late.id()); // dated before it
        let wire = |l: &[&SignedRecord]| l.iter().map(|r| r.wire().to_vec()).collect();
        let counted = [a.id(), b2.id()];
        let b = Bundle {
            petition: p.wire().to_vec(),
            endorsements: wire(&[&a, &b, &c, &b2, &late]),
            retractions: wire(&[&c_out, &late_out]),
            responses: vec![],
            attestations: vec![],
            count: 2,
            root: merkle_root(&counted),
            withdrawals: wire(&[&withdrawal]),
            first_reached_at: Some(T0 + 30),
        };
        let expect = serde_json::json!({
            "count": 2,
            "root": hex::encode(merkle_root(&counted)),
            "first_reached_at": T0 + 30,
            "pledged": 2_800,
            "withdrawn_at": T0 + 60,
        });
        (b, expect)
    }

    #[test]
    fn the_committed_campaign_bundle_vector_matches_the_code() {
        let (b, expect) = campaign();
        let v = verify(&b).unwrap();
        assert_eq!(v.count, 2);
        assert_eq!(v.first_reached_at, Some(1_767_000_000_030));
        assert_eq!(v.pledged, Some((2_800, "EUR".to_string())));
        assert!(!v.funded, "28 of 30 EUR");
        assert_eq!(v.withdrawn_at, Some(1_767_000_000_060));
        assert_eq!(v.state(0), "withdrawn");
        let bytes = b.encode();
        let text = serde_json::to_string_pretty(&expect).unwrap() + "\n";
        if std::env::var_os("CHORUS_BLESS").is_some() {
            std::fs::write(docs("test-bundle-campaign.cbor"), &bytes).unwrap();
            std::fs::write(docs("test-bundle-campaign.json"), &text).unwrap();
        }
        assert_eq!(
            std::fs::read(docs("test-bundle-campaign.cbor")).unwrap(),
            bytes,
            "docs/test-bundle-campaign.cbor is stale: CHORUS_BLESS=1 cargo test -p chorus-protocol bundle"
        );
        assert_eq!(
            std::fs::read_to_string(docs("test-bundle-campaign.json")).unwrap(),
            text
        );
    }

    fn committed_bytes() -> Vec<u8> {
        std::fs::read(docs("test-bundle.cbor")).unwrap()
    }
}
