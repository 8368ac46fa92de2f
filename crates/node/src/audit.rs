//! The watchdog's audit: re-verify every stored record, recompute every tally from raw
//! records, and look for what sybils and forgers leave behind.
//!
//! **Errors** (there should be none on any node): a stored record that does not decode, whose
//! id or signature is wrong; derived state (tallies, ratings, groups, slots) that differs from
//! what the raw records give; a record that breaks a kind rule (`chorus_protocol::rules`) given
//! the record it points at: `wrong-key` for a response not by the targeted producer, an admit
//! not by the group's founder, a retraction not by the target's author, `kind-rule` for the
//! others (each with the rule's code in its evidence).
//!
//! **Warnings** (suspicions; thresholds in `[audit]` of the config):
//! - `sybil-burst`: at least `burst_keys` keys, each with no activity but endorsing, first
//!   seen within `burst_window` of each other, endorsing the same petition;
//! - `idle-keys`: at least `idle_keys` of a petition's endorsers have no other activity at all;
//! - `timestamp`: a record created before the record it points at, or too far in the future;
//! - `late-endorsement`: an endorsement first stored here after its petition's deadline that
//!   says it was made before it (backdated, or delivered late: PROTOCOL.md §9.2). It counts,
//!   as it does on every node; the warning is this node's observation, for people to weigh.
//!
//! Endorsing again (an update: the latest wins) is normal and never a finding.

use std::collections::{BTreeMap, HashMap, HashSet};

use chorus_protocol::{
    rules, verify_batch, AuthorKey, Body, Kind, Pointed, RecordId, SignedRecord,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::Result;
use crate::store::Store;

/// Thresholds of the warnings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// Fresh endorse-only keys first seen within this window count as one burst.
    #[serde(with = "humantime_serde")]
    pub burst_window: std::time::Duration,
    /// Keys in one burst on one petition before it is a finding.
    pub burst_keys: usize,
    /// Endorse-only keys on one petition before it is a finding.
    pub idle_keys: usize,
    /// How far in the future a creation time may be.
    #[serde(with = "humantime_serde")]
    pub future_skew: std::time::Duration,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            burst_window: std::time::Duration::from_secs(600),
            burst_keys: 25,
            idle_keys: 50,
            future_skew: std::time::Duration::from_millis(chorus_protocol::DEFAULT_SKEW_MS),
        }
    }
}

pub use chorus_client::{AuditReport as Report, Finding, Severity};

fn error(code: &str, message: String, evidence: Value) -> Finding {
    Finding {
        severity: Severity::Error,
        code: code.to_string(),
        message,
        evidence,
    }
}

fn warning(code: &str, message: String, evidence: Value) -> Finding {
    Finding {
        severity: Severity::Warning,
        code: code.to_string(),
        message,
        evidence,
    }
}

/// Audits a store (blocking; reads every record).
pub fn audit(store: &Store, cfg: &AuditConfig, now_ms: u64) -> Result<Report> {
    let mut report = Report::default();
    let mut findings = Vec::new();

    // 1. Every record: decodes, id, signature.
    let mut recs: Vec<SignedRecord> = Vec::new();
    for entry in store.all_entries() {
        let (key_id, wire) = entry?;
        report.records += 1;
        match SignedRecord::from_vec(wire.clone()) {
            Ok(r) if r.id() != key_id => findings.push(error(
                "invalid-record",
                format!("the record stored under id {key_id} has id {}", r.id()),
                json!({ "stored_as": key_id.to_string(), "id": r.id().to_string() }),
            )),
            Ok(r) => recs.push(r),
            Err(e) => findings.push(error(
                "invalid-record",
                format!("a stored record does not decode: {e}"),
                json!({ "wire_blake3": blake3::hash(&wire).to_hex().to_string(), "reason": e.to_string() }),
            )),
        }
    }
    let mut valid: Vec<SignedRecord> = Vec::with_capacity(recs.len());
    for chunk in recs.chunks(256) {
        let refs: Vec<&SignedRecord> = chunk.iter().collect();
        for (rec, verdict) in chunk.iter().zip(verify_batch(&refs)) {
            match verdict {
                Ok(()) => {
                    report.verified += 1;
                    valid.push(rec.clone());
                }
                Err(e) => findings.push(error(
                    "invalid-record",
                    format!("record {} fails verification: {e}", rec.id()),
                    json!({ "id": rec.id().to_string(), "author": rec.author().to_string(), "reason": e.to_string() }),
                )),
            }
        }
    }

    // 2. Derived state recomputed from raw records.
    for d in crate::tally::recompute(store)? {
        findings.push(error(
            "tally-mismatch",
            format!(
                "stored derived state {} differs from the recomputed one",
                d.key
            ),
            json!({ "key": d.key, "stored": d.stored, "recomputed": d.recomputed }),
        ));
    }

    // 3. Kind rules (chorus_protocol::rules, as ingest applies them), against the records
    // pointed at.
    let by_id: HashMap<RecordId, &SignedRecord> = valid.iter().map(|r| (r.id(), r)).collect();
    for r in &valid {
        let Some(target) = rules::depends_on(&r.record().body) else {
            continue;
        };
        let Some(t) = by_id.get(&target) else {
            continue;
        };
        let facts = Pointed::of(t.record());
        let Err(broken) = rules::check(r.record(), &facts) else {
            continue;
        };
        let author = r.author();
        findings.push(match broken.entitled(&facts) {
            Some(w) => error(
                "wrong-key",
                format!(
                    "{} {} by {author}: {broken} ({w})",
                    r.record().kind(),
                    r.id()
                ),
                json!({ "id": r.id().to_string(), "author": author.to_string(),
                        "target": target.to_string(), "expected": w.to_string(),
                        "rule": broken.code() }),
            ),
            None => error(
                "kind-rule",
                format!("{} {} by {author}: {broken}", r.record().kind(), r.id()),
                json!({ "id": r.id().to_string(), "author": author.to_string(),
                        "target": target.to_string(), "rule": broken.code() }),
            ),
        });
    }

    // 4. Suspicions.
    let mut first_seen: HashMap<AuthorKey, u64> = HashMap::new();
    let mut only_endorses: HashMap<AuthorKey, bool> = HashMap::new();
    let mut endorsers: BTreeMap<RecordId, HashSet<AuthorKey>> = BTreeMap::new();
    for r in &valid {
        let at = r.record().created_at;
        let a = r.author();
        first_seen
            .entry(a)
            .and_modify(|t| *t = (*t).min(at))
            .or_insert(at);
        let e = only_endorses.entry(a).or_insert(true);
        *e &= r.record().kind() == Kind::Endorsement;
        if let Body::Endorsement(x) = &r.record().body {
            endorsers.entry(x.petition).or_default().insert(a);
        }
        if at > now_ms.saturating_add(cfg.future_skew.as_millis() as u64) {
            findings.push(warning(
                "timestamp",
                format!(
                    "record {} is created {} ms in the future",
                    r.id(),
                    at - now_ms
                ),
                json!({ "id": r.id().to_string(), "created_at": at, "now": now_ms }),
            ));
        }
        if let Some(t) = r.record().body.target().and_then(|t| by_id.get(&t)) {
            if at < t.record().created_at {
                findings.push(warning(
                    "timestamp",
                    format!("record {} is created before the record it points at ({})", r.id(), t.id()),
                    json!({ "id": r.id().to_string(), "created_at": at,
                            "target": t.id().to_string(), "target_created_at": t.record().created_at }),
                ));
            }
        }
    }
    report.petitions = valid
        .iter()
        .filter(|r| r.record().kind() == Kind::Petition)
        .count() as u64;
    let window = cfg.burst_window.as_millis() as u64;
    for (petition, keys) in &endorsers {
        let mut idle: Vec<(u64, AuthorKey)> = keys
            .iter()
            .filter(|k| only_endorses.get(k).copied().unwrap_or(false))
            .map(|k| (first_seen.get(k).copied().unwrap_or(0), *k))
            .collect();
        idle.sort();
        // The largest set of endorse-only keys first seen within one window.
        let (mut best, mut best_at) = (0usize, 0usize);
        let mut lo = 0;
        for hi in 0..idle.len() {
            while idle[hi].0 - idle[lo].0 > window {
                lo += 1;
            }
            if hi + 1 - lo > best {
                best = hi + 1 - lo;
                best_at = lo;
            }
        }
        if best >= cfg.burst_keys {
            let burst = &idle[best_at..best_at + best];
            findings.push(warning(
                "sybil-burst",
                format!(
                    "{best} keys first seen within {}s of each other, doing nothing but endorse, endorse petition {petition}",
                    cfg.burst_window.as_secs()
                ),
                json!({
                    "petition": petition.to_string(),
                    "count": best,
                    "from": burst.first().map(|b| b.0),
                    "to": burst.last().map(|b| b.0),
                    "keys": burst.iter().map(|(_, k)| k.to_string()).collect::<Vec<_>>(),
                }),
            ));
        } else if idle.len() >= cfg.idle_keys {
            findings.push(warning(
                "idle-keys",
                format!(
                    "{} of the {} endorsers of petition {petition} have no other activity",
                    idle.len(),
                    keys.len()
                ),
                json!({
                    "petition": petition.to_string(),
                    "count": idle.len(),
                    "keys": idle.iter().map(|(_, k)| k.to_string()).collect::<Vec<_>>(),
                }),
            ));
        }
    }

    for (petition, id, seen) in store.late_endorsements()? {
        let (Some(e), Some(p)) = (by_id.get(&id), by_id.get(&petition)) else {
            continue;
        };
        let Body::Petition(body) = &p.record().body else {
            continue;
        };
        let Some(deadline) = body.deadline else {
            continue;
        };
        let created = e.record().created_at;
        findings.push(warning(
            "late-endorsement",
            format!(
                "endorsement {id} of petition {petition} was first seen here {}s after the \
                 deadline, though it says it was made {}s before it",
                seen.saturating_sub(deadline) / 1000,
                deadline.saturating_sub(created) / 1000
            ),
            json!({ "petition": petition.to_string(), "id": id.to_string(),
                    "author": e.author().to_string(), "created_at": created,
                    "deadline": deadline, "first_seen": seen }),
        ));
    }

    findings.sort_by_key(|f| f.severity);
    report.errors = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .count() as u64;
    report.warnings = findings.len() as u64 - report.errors;
    report.findings = findings;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use chorus_protocol::testing::{author, key};
    use chorus_protocol::{Endorsement, Petition, PetitionVariant, RecordBuilder};

    use super::*;
    use crate::store::overlay::Overlay;
    use crate::tally::apply::apply;
    use crate::tally::ctx::Ctx;

    const DEADLINE: u64 = 1_800_000_000_000;
    const MIN: u64 = 60_000;

    fn petition(k: u8) -> SignedRecord {
        RecordBuilder::new(Body::Petition(Petition {
            producer: author(1),
            product: None,
            group: None,
            title: "Repairable".into(),
            text: "Sell spare parts.".into(),
            threshold: 10,
            deadline: Some(DEADLINE),
            variant: PetitionVariant::Demand,
        }))
        .created_at(DEADLINE - 100 * MIN)
        .sign(&key(k))
        .unwrap()
    }

    fn endorse(k: u8, at: u64, p: &SignedRecord) -> SignedRecord {
        RecordBuilder::new(Body::Endorsement(Endorsement {
            petition: p.id(),
            comment: None,
            pledge: None,
        }))
        .created_at(at)
        .topic(p.record().topic)
        .sign(&key(k))
        .unwrap()
    }

    /// Stores a record as ingest does, with the writer's clock reading `now`.
    fn arrives(store: &Store, ctx: &mut Ctx, rec: &SignedRecord, now: u64) {
        let none = VecDeque::new();
        let layered = store.layered(&none);
        let mut ov = Overlay::new(&layered);
        ctx.now = now;
        ov.put_record(rec);
        apply(&mut ov, ctx, rec).unwrap();
        ctx.flush(&mut ov);
        ctx.clear_chunk();
        let writes = ov.into_writes().unwrap();
        store.write(&writes).unwrap();
    }

    #[test]
    fn an_endorsement_that_arrives_well_after_the_deadline_of_a_petition_held_before_it_is_a_warning(
    ) {
        let store = Store::temporary().unwrap();
        let mut ctx = Ctx::default();
        // Held since before its deadline.
        let held = petition(2);
        arrives(&store, &mut ctx, &held, DEADLINE - MIN);
        // In time, and gossiped in time.
        let on_time = endorse(3, DEADLINE - 30 * MIN, &held);
        arrives(&store, &mut ctx, &on_time, DEADLINE - 20 * MIN);
        // Made a second before the deadline, here a minute after it: gossip's delay.
        let just = endorse(4, DEADLINE - 1000, &held);
        arrives(&store, &mut ctx, &just, DEADLINE + MIN);
        // Says it was made before the deadline, first seen an hour after it: backdated?
        let backdated = endorse(5, DEADLINE - 10 * MIN, &held);
        arrives(&store, &mut ctx, &backdated, DEADLINE + 60 * MIN);
        // Made after the deadline: not counted, nothing to note.
        let after = endorse(6, DEADLINE + 5 * MIN, &held);
        arrives(&store, &mut ctx, &after, DEADLINE + 61 * MIN);
        // A petition this node first got after its deadline (it caught up): its endorsements
        // all come late here, and say nothing.
        let caught_up = petition(7);
        arrives(&store, &mut ctx, &caught_up, DEADLINE + 90 * MIN);
        let old = endorse(8, DEADLINE - 50 * MIN, &caught_up);
        arrives(&store, &mut ctx, &old, DEADLINE + 91 * MIN);

        assert_eq!(
            store.late_endorsements().unwrap(),
            vec![(held.id(), backdated.id(), DEADLINE + 60 * MIN)]
        );
        assert_eq!(store.tally(&held.id()).unwrap().unwrap().endorsers, 3);
        let report = audit(&store, &AuditConfig::default(), DEADLINE + 100 * MIN).unwrap();
        let late: Vec<&Finding> = report
            .findings
            .iter()
            .filter(|f| f.code == "late-endorsement")
            .collect();
        assert_eq!(late.len(), 1, "{:#?}", report.findings);
        assert_eq!(late[0].severity, Severity::Warning);
        assert_eq!(late[0].evidence["id"], backdated.id().to_string());
        assert_eq!(late[0].evidence["first_seen"], DEADLINE + 60 * MIN);
        assert_eq!(late[0].evidence["created_at"], DEADLINE - 10 * MIN);
        assert!(
            late[0].message.contains("3600s after the deadline"),
            "{}",
            late[0].message
        );
        // The count is not the audit's business here: no errors.
        assert_eq!(report.errors, 0, "{:#?}", report.findings);
    }
}
