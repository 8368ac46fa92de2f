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
//! - `timestamp`: a record created before the record it points at, or too far in the future.
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

    findings.sort_by_key(|f| f.severity);
    report.errors = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .count() as u64;
    report.warnings = findings.len() as u64 - report.errors;
    report.findings = findings;
    Ok(report)
}
