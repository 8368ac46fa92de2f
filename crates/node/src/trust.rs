//! Trusted counts: a node's user lists the watchdogs they trust (`[trust] watchdogs` in the
//! config, changed at run time with `chorus trust add|remove`, kept in `trust.json`); a
//! petition's tally then shows, beside the raw count, the count in which each set of keys
//! those watchdogs judged to be one actor (`one-actor` attestations) counts as one endorser,
//! the pledged total recomputed the same way, and what each watchdog attested about the
//! count (`verified-count`): "vouched" only when its count and root are the current ones.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use chorus_client::{Attested, TrustSet, Trusted};
use chorus_protocol::bundle::merkle_root;
use chorus_protocol::{
    AuthorKey, Body, Kind, PetitionVariant, RecordId, SignedRecord, Subject, Verdict,
};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::store::{PetitionTally, Store};

/// Which watchdogs the user trusts, as the config says (the initial set).
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
                    .map_err(|e| Error::Config(format!("trust.watchdogs {k}: {e}")))
            })
            .collect()
    }
}

/// What the user changed at run time, as `trust.json` keeps it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct TrustChanges {
    /// Trusted besides the config's watchdogs.
    added: BTreeSet<AuthorKey>,
    /// Not trusted, even if the config lists them.
    removed: BTreeSet<AuthorKey>,
}

impl TrustChanges {
    fn apply(&mut self, w: AuthorKey, add: bool) {
        if add {
            self.removed.remove(&w);
            self.added.insert(w);
        } else {
            self.added.remove(&w);
            self.removed.insert(w);
        }
    }
}

/// The watchdogs a running node trusts: the config's `[trust] watchdogs`, plus those added
/// at run time, minus those removed at run time (a run-time change wins over the config,
/// whichever came first). Changes are kept in `trust.json` in the data dir. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Trust {
    config: Arc<Vec<AuthorKey>>,
    changes: Arc<RwLock<TrustChanges>>,
    file: Option<PathBuf>,
}

fn load(path: &Path) -> Result<TrustChanges> {
    match std::fs::read_to_string(path) {
        Ok(t) => {
            serde_json::from_str(&t).map_err(|e| Error::Config(format!("{}: {e}", path.display())))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(TrustChanges::default()),
        Err(e) => Err(e.into()),
    }
}

/// Writes the changes to `path` atomically (a synced temporary file, then a rename).
fn save(path: &Path, c: &TrustChanges) -> Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("json.tmp");
    let bytes = serde_json::to_vec_pretty(c).map_err(|e| Error::Config(e.to_string()))?;
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

impl Trust {
    /// The trust of a node starting with the config's `[trust]` and `file` (`trust.json`,
    /// read if it exists).
    pub fn start(config: &TrustConfig, file: Option<PathBuf>) -> Result<Self> {
        let changes = file.as_deref().map(load).transpose()?.unwrap_or_default();
        Ok(Trust {
            config: Arc::new(config.keys()?),
            changes: Arc::new(RwLock::new(changes)),
            file,
        })
    }

    /// The watchdogs trusted now: the config's (in its order), then those added at run time
    /// (in key order), less those removed.
    pub fn watchdogs(&self) -> Vec<AuthorKey> {
        let c = self.changes.read().map(|c| c.clone()).unwrap_or_default();
        let mut out: Vec<AuthorKey> = Vec::new();
        for w in self.config.iter().chain(c.added.iter()) {
            if !c.removed.contains(w) && !out.contains(w) {
                out.push(*w);
            }
        }
        out
    }

    /// Trusts `watchdog` (`add`) or stops trusting it, and keeps the change across restarts.
    pub fn change(&self, watchdog: AuthorKey, add: bool) -> Result<TrustSet> {
        let now = {
            let mut c = self.changes.write().map_err(|_| Error::NodeStopped)?;
            c.apply(watchdog, add);
            c.clone()
        };
        if let Some(p) = &self.file {
            save(p, &now)?;
        }
        Ok(self.set())
    }

    /// The trusted set as the API shows it.
    pub fn set(&self) -> TrustSet {
        let c = self.changes.read().map(|c| c.clone()).unwrap_or_default();
        let hex = |ks: &mut dyn Iterator<Item = &AuthorKey>| ks.map(|k| k.to_string()).collect();
        TrustSet {
            watchdogs: self.watchdogs().iter().map(|k| k.to_string()).collect(),
            config: hex(&mut self.config.iter()),
            added: hex(&mut c.added.iter()),
            removed: hex(&mut c.removed.iter()),
        }
    }
}

/// One counted endorsement, as the trusted count sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counted {
    /// Its author.
    pub author: AuthorKey,
    /// Its id.
    pub id: RecordId,
    /// Its creation time.
    pub created_at: u64,
    /// Its pledge: (hundredths, currency).
    pub pledge: Option<(u64, String)>,
}

/// The count when every set of keys judged to be one actor counts once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedCount {
    /// Endorsers: one per actor.
    pub endorsers: u64,
    /// Counted endorsements left out (the later keys of an actor).
    pub excluded: u64,
    /// The pledged total per currency of the endorsements that count.
    pub pledged: BTreeMap<String, u128>,
}

/// Partitions keys by the one-actor sets: keys in sets that share a key are one actor
/// (transitively). Each key maps to its actor's smallest key, so the partition does not
/// depend on the order of the sets.
fn actors(one_actor: &[Vec<AuthorKey>]) -> HashMap<AuthorKey, AuthorKey> {
    let mut parent: HashMap<AuthorKey, AuthorKey> = HashMap::new();
    fn root(p: &mut HashMap<AuthorKey, AuthorKey>, k: AuthorKey) -> AuthorKey {
        let mut r = k;
        while let Some(&n) = p.get(&r) {
            if n == r {
                break;
            }
            r = n;
        }
        // Path compression: everything on the way now points at the root.
        let mut c = k;
        while c != r {
            let n = p.get(&c).copied().unwrap_or(r);
            p.insert(c, r);
            c = n;
        }
        r
    }
    for set in one_actor {
        let Some(first) = set.first() else { continue };
        let mut a = root(&mut parent, *first);
        for k in &set[1..] {
            let b = root(&mut parent, *k);
            if a != b {
                let (lo, hi) = if a < b { (a, b) } else { (b, a) };
                parent.insert(hi, lo);
                parent.entry(lo).or_insert(lo);
                a = lo;
            }
        }
    }
    let keys: Vec<AuthorKey> = parent.keys().copied().collect();
    keys.into_iter()
        .map(|k| (k, root(&mut parent, k)))
        .collect()
}

/// The trusted count of a petition's counted endorsements: each actor (a set of keys judged
/// one actor, merged where sets share a key) counts once, by its earliest endorsement (by
/// created_at, then id), whose pledge alone counts; with `currency` (a campaign's goal
/// currency), only pledges in it are summed. A function of the sets, whatever their order.
pub fn trusted_count(
    counted: &[Counted],
    one_actor: &[Vec<AuthorKey>],
    currency: Option<&str>,
) -> TrustedCount {
    let actor = actors(one_actor);
    let mut first: HashMap<AuthorKey, &Counted> = HashMap::new();
    for c in counted {
        let a = actor.get(&c.author).copied().unwrap_or(c.author);
        first
            .entry(a)
            .and_modify(|e| {
                if (c.created_at, c.id) < (e.created_at, e.id) {
                    *e = c;
                }
            })
            .or_insert(c);
    }
    let mut pledged: BTreeMap<String, u128> = BTreeMap::new();
    for c in first.values() {
        if let Some((v, cur)) = &c.pledge {
            if currency.is_none_or(|g| g == cur) {
                *pledged.entry(cur.clone()).or_insert(0) += u128::from(*v);
            }
        }
    }
    TrustedCount {
        endorsers: first.len() as u64,
        excluded: (counted.len() - first.len()) as u64,
        pledged,
    }
}

/// Has `w` retracted its record `id`?
fn retracted(store: &Store, w: &AuthorKey, id: &RecordId) -> Result<bool> {
    let mut after = None;
    loop {
        let page = store.by_target(id, after, 1000)?;
        if page
            .records
            .iter()
            .any(|r| r.author() == *w && r.record().kind() == Kind::Retraction)
        {
            return Ok(true);
        }
        match page.next {
            Some(n) => after = Some(n),
            None => return Ok(false),
        }
    }
}

/// The attestations of the trusted watchdogs (not retracted by them), oldest first per
/// watchdog.
fn attestations(store: &Store, watchdogs: &[AuthorKey]) -> Result<Vec<SignedRecord>> {
    let mut out = Vec::new();
    for w in watchdogs {
        let mut after = None;
        loop {
            let page = store.attestations_by(w, after, 1000)?;
            for r in page.records {
                if r.record().kind() == Kind::Attestation && !retracted(store, w, &r.id())? {
                    out.push(r);
                }
            }
            match page.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
    }
    Ok(out)
}

/// Each watchdog's latest `verified-count` attestation of the petition (by created_at, then
/// id), compared with this node's current count and root.
fn attested(
    atts: &[SignedRecord],
    petition: &RecordId,
    count: u64,
    root: &[u8; 32],
) -> Vec<Attested> {
    let mut latest: BTreeMap<AuthorKey, (u64, RecordId, u64, [u8; 32])> = BTreeMap::new();
    for a in atts {
        let Body::Attestation(x) = &a.record().body else {
            continue;
        };
        if x.verdict != Verdict::VerifiedCount || x.subject != Subject::Record(*petition) {
            continue;
        }
        let (Some(c), Some(r)) = (x.count, x.root) else {
            continue;
        };
        let at = a.record().created_at;
        let e = latest.entry(a.author()).or_insert((at, a.id(), c, r));
        if (at, a.id()) > (e.0, e.1) {
            *e = (at, a.id(), c, r);
        }
    }
    latest
        .into_iter()
        .map(|(w, (at, _, c, r))| Attested {
            watchdog: w.to_string(),
            watchdog_name: None,
            count: c,
            root: hex::encode(r),
            created_at: at,
            current: c == count && r == *root,
        })
        .collect()
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
    let one_actor: Vec<Vec<AuthorKey>> = atts
        .iter()
        .filter_map(|a| match &a.record().body {
            Body::Attestation(x) if x.verdict == Verdict::OneActor => match &x.subject {
                Subject::Keys(keys) => Some(keys.clone()),
                _ => None,
            },
            _ => None,
        })
        .collect();
    let mut counted = Vec::new();
    for (rec, on) in store.winners(petition)? {
        if !on {
            continue;
        }
        let pledge = match &rec.record().body {
            Body::Endorsement(e) => e.pledge.as_ref().map(|a| (a.value, a.currency.clone())),
            _ => None,
        };
        counted.push(Counted {
            author: rec.author(),
            id: rec.id(),
            created_at: rec.record().created_at,
            pledge,
        });
    }
    let ids: Vec<RecordId> = counted.iter().map(|c| c.id).collect();
    let root = merkle_root(&ids);
    // A campaign's pledges count in its goal's currency only.
    let currency = match store.record(petition)?.map(|r| r.record().body.clone()) {
        Some(Body::Petition(p)) => match p.variant {
            PetitionVariant::Campaign { goal } => Some(goal.currency),
            _ => None,
        },
        _ => t.goal.as_ref().map(|(_, c)| c.clone()),
    };
    let tc = trusted_count(&counted, &one_actor, currency.as_deref());
    let attested = attested(&atts, petition, t.endorsers, &root);
    let vouched_by = attested
        .iter()
        .filter(|a| a.current)
        .map(|a| a.watchdog.clone())
        .collect();
    Ok(Some(Trusted {
        watchdogs: watchdogs.iter().map(|k| k.to_string()).collect(),
        endorsers: tc.endorsers,
        excluded: tc.excluded,
        pledged: tc
            .pledged
            .iter()
            .map(|(cur, v)| (cur.clone(), format!("{}.{:02}", v / 100, v % 100)))
            .collect(),
        root: hex::encode(root),
        vouched_by,
        attested,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chorus_protocol::testing::author;
    use proptest::prelude::*;

    fn c(i: u8, at: u64, pledge: Option<u64>) -> Counted {
        Counted {
            author: author(i),
            id: RecordId([i; 32]),
            created_at: at,
            pledge: pledge.map(|v| (v, "EUR".to_string())),
        }
    }

    #[test]
    fn keys_judged_one_actor_count_as_one_the_earliest() {
        let counted = [c(1, 30, Some(100)), c(2, 10, Some(500)), c(3, 20, Some(7))];
        let t = trusted_count(&counted, &[vec![author(1), author(2)]], Some("EUR"));
        assert_eq!(t.endorsers, 2);
        assert_eq!(t.excluded, 1);
        // Key 2 endorsed first: its pledge is the actor's.
        assert_eq!(t.pledged, BTreeMap::from([("EUR".to_string(), 507)]));
    }

    #[test]
    fn a_flagged_key_alone_still_counts_once() {
        let counted = [c(1, 5, None)];
        let t = trusted_count(&counted, &[vec![author(1), author(9)]], None);
        assert_eq!((t.endorsers, t.excluded), (1, 0));
    }

    #[test]
    fn sets_sharing_a_key_are_one_actor() {
        let counted = [c(1, 3, None), c(2, 2, None), c(3, 1, None), c(4, 9, None)];
        let sets = [vec![author(1), author(2)], vec![author(2), author(3)]];
        let t = trusted_count(&counted, &sets, None);
        assert_eq!((t.endorsers, t.excluded), (2, 2));
    }

    #[test]
    fn equal_times_pick_the_smaller_id() {
        let counted = [c(2, 7, Some(200)), c(1, 7, Some(100))];
        let t = trusted_count(&counted, &[vec![author(2), author(1)]], None);
        assert_eq!(t.pledged, BTreeMap::from([("EUR".to_string(), 100)]));
    }

    #[test]
    fn a_campaign_counts_pledges_in_its_goal_currency_only() {
        let mut usd = c(2, 1, Some(900));
        usd.pledge = Some((900, "USD".into()));
        let t = trusted_count(&[c(1, 1, Some(100)), usd], &[], Some("EUR"));
        assert_eq!(t.endorsers, 2);
        assert_eq!(t.pledged, BTreeMap::from([("EUR".to_string(), 100)]));
    }

    #[test]
    fn run_time_changes_win_over_the_config_and_persist() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("trust.json");
        let config = TrustConfig {
            watchdogs: vec![author(1).to_string()],
        };
        let t = Trust::start(&config, Some(file.clone())).unwrap();
        assert_eq!(t.watchdogs(), vec![author(1)]);
        t.change(author(2), true).unwrap();
        t.change(author(1), false).unwrap();
        assert_eq!(t.watchdogs(), vec![author(2)]);
        let again = Trust::start(&config, Some(file.clone())).unwrap();
        assert_eq!(again.watchdogs(), vec![author(2)]);
        let set = again.change(author(1), true).unwrap();
        assert_eq!(
            set.watchdogs,
            vec![author(1).to_string(), author(2).to_string()]
        );
        assert!(set.removed.is_empty());
        let bad = dir.path().join("bad.json");
        std::fs::write(&bad, "{\"added\": [\"nope\"]}").unwrap();
        assert!(Trust::start(&config, Some(bad)).is_err());
    }

    proptest! {
        /// The trusted count is a function of the sets: any order of the endorsements, of
        /// the one-actor sets and of the keys within them gives the same figures.
        #[test]
        fn the_trusted_count_does_not_depend_on_order(
            ends in proptest::collection::vec((0u8..12, 0u64..20, proptest::option::of(1u64..1000)), 0..12),
            sets in proptest::collection::vec(proptest::collection::vec(0u8..12, 1..4), 0..5),
            seed in any::<u64>(),
        ) {
            let mut seen = BTreeSet::new();
            let counted: Vec<Counted> = ends
                .into_iter()
                .filter(|(i, _, _)| seen.insert(*i))
                .map(|(i, at, p)| c(i, at, p))
                .collect();
            let sets: Vec<Vec<AuthorKey>> =
                sets.into_iter().map(|s| s.into_iter().map(author).collect()).collect();
            let want = trusted_count(&counted, &sets, None);
            let shuffle = |n: usize, salt: u64| -> Vec<usize> {
                let mut idx: Vec<usize> = (0..n).collect();
                idx.sort_by_key(|i| (*i as u64 ^ seed ^ salt).wrapping_mul(0x9E37_79B9_7F4A_7C15));
                idx
            };
            let c2: Vec<Counted> =
                shuffle(counted.len(), 1).into_iter().map(|i| counted[i].clone()).collect();
            let s2: Vec<Vec<AuthorKey>> = shuffle(sets.len(), 2)
                .into_iter()
                .map(|i| {
                    let s = &sets[i];
                    shuffle(s.len(), 3).into_iter().map(|j| s[j]).collect()
                })
                .collect();
            prop_assert_eq!(trusted_count(&c2, &s2, None), want.clone());
            prop_assert_eq!(want.endorsers + want.excluded, counted.len() as u64);
        }
    }
}
