//! Trusted counts: a node's user lists the watchdogs they trust (`[trust] watchdogs` in the
//! config); a petition's tally then shows, beside the raw count, the count without the keys
//! those watchdogs flagged as one actor (`one-actor` attestations), and which of them vouched
//! for the current figure (a `verified-count` attestation whose count and root match).

use std::collections::HashSet;

use chorus_client::Trusted;
use chorus_protocol::bundle::merkle_root;
use chorus_protocol::{AuthorKey, Body, Kind, RecordId, Subject, Verdict};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::store::{PetitionTally, Store};

/// Which watchdogs the user trusts.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TrustConfig {
    /// Watchdog author keys (hex).
    pub watchdogs: Vec<String>,
}

impl TrustConfig {
    /// The keys, parsed (invalid entries are a config error at start).
    pub fn keys(&self) -> Result<Vec<AuthorKey>> {
        self.watchdogs
            .iter()
            .map(|k| {
                k.parse()
                    .map_err(|e| crate::error::Error::Config(format!("trust.watchdogs {k}: {e}")))
            })
            .collect()
    }
}

/// The attestations of the trusted watchdogs, oldest first.
fn attestations(
    store: &Store,
    watchdogs: &[AuthorKey],
) -> Result<Vec<chorus_protocol::SignedRecord>> {
    let mut out = Vec::new();
    for w in watchdogs {
        let mut after = None;
        loop {
            let page = store.by_author(w, after, 1000)?;
            out.extend(
                page.records
                    .into_iter()
                    .filter(|r| r.record().kind() == Kind::Attestation),
            );
            match page.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
    }
    Ok(out)
}

/// The trusted view of a petition's tally, or `None` when no watchdog is trusted.
pub fn view(
    store: &Store,
    watchdogs: &[AuthorKey],
    petition: &RecordId,
    t: &PetitionTally,
) -> Result<Option<Trusted>> {
    if watchdogs.is_empty() {
        return Ok(None);
    }
    let atts = attestations(store, watchdogs)?;
    let mut flagged: HashSet<AuthorKey> = HashSet::new();
    for a in &atts {
        if let Body::Attestation(x) = &a.record().body {
            if let (Verdict::OneActor, Subject::Keys(keys)) = (x.verdict, &x.subject) {
                flagged.extend(keys.iter().copied());
            }
        }
    }
    let mut counted = Vec::new();
    let mut excluded = 0u64;
    for (rec, on) in store.winners(petition)? {
        if on {
            counted.push(rec.id());
            if flagged.contains(&rec.author()) {
                excluded += 1;
            }
        }
    }
    let root = merkle_root(&counted);
    let mut vouched: Vec<String> = atts
        .iter()
        .filter(|a| match &a.record().body {
            Body::Attestation(x) => {
                x.verdict == Verdict::VerifiedCount
                    && x.subject == Subject::Record(*petition)
                    && x.count == Some(t.endorsers)
                    && x.root == Some(root)
            }
            _ => false,
        })
        .map(|a| a.author().to_string())
        .collect();
    vouched.sort();
    vouched.dedup();
    Ok(Some(Trusted {
        watchdogs: watchdogs.iter().map(|k| k.to_string()).collect(),
        endorsers: t.endorsers.saturating_sub(excluded),
        excluded,
        root: hex::encode(root),
        vouched_by: vouched,
    }))
}
